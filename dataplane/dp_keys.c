/* Token key sources and their refresh thread. Each source keeps the last text that loaded
 * (its "good" copy); a change is read, tried on a scratch set, and only then replaces the good
 * copy, after which the whole set is rebuilt from every good copy and swapped in under the lock.
 * So a half-written or broken file, or a JWKS URL that answers 500, never removes working keys. */
#include "dp_keys.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "dp_config.h"
#include "sb_addr.h"
#include "sb_jwt.h"
#include "sb_log.h"
#include "sb_time.h"

#define MOD "dp_keys"

#define FILE_MAX        (1u << 20) /* a key file or JWK Set larger than this is refused */
#define KICK_MIN_MS     30000      /* unknown kid: at most one extra fetch per 30 s */
#define RETRY_MS        10000      /* a failed fetch is retried this soon (or at the refresh) */
#define FETCH_TIMEOUT   5000
#define FIRST_FETCH_MAX 5000 /* start-up waits this long for the first fetch */

enum src_kind { SRC_HMAC, SRC_PEM, SRC_JWKS_FILE, SRC_JWKS_URL };

struct src {
    enum src_kind kind;
    char *where; /* path or URL */
    char *good;  /* last text that loaded (NULL: none yet) */
    size_t good_len;
    /* files: what stat said when `good` was read */
    bool have_sig;
    struct stat sig;
};

struct dp_keys {
    struct src *src;
    size_t n_src;
    struct src *url; /* the SRC_JWKS_URL source or NULL */
    int64_t refresh_ms;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sb_jwt_keys *cur; /* guarded by mu */
    bool stop;               /* guarded by mu */
    bool first_done;         /* guarded by mu: the first URL fetch was tried */
    atomic_bool kicked;
    atomic_uint_fast64_t generation;
    pthread_t thread;
    bool started;

    /* thread only */
    int64_t next_fetch_ms, last_fetch_ms;
};

static const char *kind_name(enum src_kind k)
{
    switch (k) {
    case SRC_HMAC:
        return "--jwt-hmac-secret-file";
    case SRC_PEM:
        return "--jwt-public-key-file";
    case SRC_JWKS_FILE:
        return "--jwks-file";
    default:
        return "--jwks-url";
    }
}

/* ---------------------------------------------------------------- loading */

static enum sb_err add_text(struct sb_jwt_keys *set, const struct src *s, const char *text,
                            size_t len, char *err, size_t cap)
{
    switch (s->kind) {
    case SRC_HMAC:
        return sb_jwt_keys_add_hmac(set, (const unsigned char *)text, sb_jwt_secret_len(text, len),
                                    NULL, err, cap);
    case SRC_PEM:
        return sb_jwt_keys_add_pem(set, text, len, NULL, err, cap);
    default: {
        size_t skipped = 0;
        enum sb_err e = sb_jwt_keys_add_jwks(set, text, len, &skipped, err, cap);
        if (e == SB_OK && skipped > 0)
            SB_LOG_INFO(MOD, "JWK Set: keys skipped (not for signatures, or unsupported)",
                        "source=%s skipped=%zu", kind_name(s->kind), skipped);
        return e;
    }
    }
}

/* Tries `text` alone on a scratch set: does this source load? */
static enum sb_err try_text(const struct src *s, const char *text, size_t len, char *err,
                            size_t cap)
{
    struct sb_jwt_keys *scratch = sb_jwt_keys_create();
    if (scratch == NULL) {
        snprintf(err, cap, "out of memory");
        return SB_ENOMEM;
    }
    enum sb_err e = add_text(scratch, s, text, len, err, cap);
    sb_jwt_keys_unref(scratch);
    return e;
}

static enum sb_err read_file(const char *path, char **out, size_t *out_len, struct stat *st,
                             char *err, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, cap, "cannot open %s: %s", path, strerror(errno));
        return SB_EIO;
    }
    enum sb_err e = SB_OK;
    char *buf = NULL;
    if (fstat(fileno(f), st) != 0 || st->st_size < 0 || (size_t)st->st_size > FILE_MAX) {
        snprintf(err, cap, "%s is not a readable file of at most %u bytes", path, FILE_MAX);
        e = SB_EIO;
        goto out;
    }
    buf = malloc((size_t)st->st_size + 1);
    if (buf == NULL) {
        snprintf(err, cap, "out of memory");
        e = SB_ENOMEM;
        goto out;
    }
    size_t n = fread(buf, 1, (size_t)st->st_size, f);
    if (ferror(f)) {
        snprintf(err, cap, "cannot read %s", path);
        e = SB_EIO;
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return e;
}

static bool same_sig(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Makes `text` (taken, already tried) the good copy. True when it differs from the last one. */
static bool replace_good(struct src *s, char *text, size_t len)
{
    if (s->good != NULL && s->good_len == len && memcmp(s->good, text, len) == 0) {
        free(text);
        return false; /* touched, not changed */
    }
    free(s->good);
    s->good = text;
    s->good_len = len;
    return true;
}

/* A file source: re-read when stat says it changed. True when its keys changed. With `strict`
 * (at start) a failure is returned in *e. */
static bool check_file(struct src *s, bool strict, enum sb_err *e, char *err, size_t cap)
{
    struct stat st;
    if (stat(s->where, &st) != 0) {
        snprintf(err, cap, "cannot open %s: %s", s->where, strerror(errno));
        if (strict)
            *e = SB_EIO;
        else if (s->have_sig)
            SB_LOG_WARN(MOD, "key file unreadable: keeping its last keys", "source=%s path=%s",
                        kind_name(s->kind), s->where);
        s->have_sig = false; /* warn once; a file that comes back is read again */
        return false;
    }
    if (s->have_sig && same_sig(&st, &s->sig))
        return false;
    char *text = NULL;
    size_t len = 0;
    enum sb_err r = read_file(s->where, &text, &len, &st, err, cap);
    s->sig = st;
    s->have_sig = true;
    if (r != SB_OK) {
        if (strict)
            *e = r;
        return false;
    }
    char why[256];
    if (try_text(s, text, len, why, sizeof(why)) != SB_OK) {
        free(text);
        snprintf(err, cap, "%s %s: %s", kind_name(s->kind), s->where, why);
        if (strict)
            *e = SB_EINVAL;
        else
            SB_LOG_WARN(MOD, "key file does not load: keeping its last keys",
                        "source=%s path=%s error=\"%s\"", kind_name(s->kind), s->where, why);
        return false;
    }
    bool changed = replace_good(s, text, len);
    if (changed && !strict)
        SB_LOG_INFO(MOD, "key file re-read", "source=%s path=%s", kind_name(s->kind), s->where);
    return changed;
}

/* ---------------------------------------------------------------- the URL */

struct body {
    char *p;
    size_t len;
    bool too_big;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct body *b = ud;
    size_t n = size * nmemb;
    if (b->len + n > FILE_MAX) {
        b->too_big = true;
        return 0; /* aborts the transfer */
    }
    char *q = realloc(b->p, b->len + n + 1);
    if (q == NULL)
        return 0;
    memcpy(q + b->len, ptr, n);
    b->len += n;
    q[b->len] = '\0';
    b->p = q;
    return n;
}

/* One GET of the URL on this (the refresh) thread. True when its keys changed. */
static bool fetch(struct src *s)
{
    CURL *h = curl_easy_init();
    if (h == NULL)
        return false;
    struct body b = {0};
    curl_easy_setopt(h, CURLOPT_URL, s->where);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* a redirect could lead anywhere */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)FETCH_TIMEOUT);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "switchboard-dataplane");
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK || status != 200 || b.p == NULL) {
        SB_LOG_WARN(MOD, "JWK Set fetch failed: keeping the last good keys",
                    "url=%s status=%ld error=\"%s\"", s->where, status,
                    b.too_big ? "document too large" : curl_easy_strerror(rc));
        free(b.p);
        return false;
    }
    char why[256];
    char *text = b.p;
    size_t len = b.len;
    if (try_text(s, text, len, why, sizeof(why)) != SB_OK) {
        SB_LOG_WARN(MOD, "JWK Set from the URL does not load: keeping the last good keys",
                    "url=%s error=\"%s\"", s->where, why);
        free(text);
        return false;
    }
    return replace_good(s, text, len);
}

/* ---------------------------------------------------------------- the set */

static struct sb_jwt_keys *build(struct dp_keys *k)
{
    struct sb_jwt_keys *set = sb_jwt_keys_create();
    if (set == NULL)
        return NULL;
    for (size_t i = 0; i < k->n_src; i++) {
        struct src *s = &k->src[i];
        char why[256];
        if (s->good != NULL && add_text(set, s, s->good, s->good_len, why, sizeof(why)) != SB_OK)
            SB_LOG_WARN(MOD, "keys dropped", "source=%s error=\"%s\"", kind_name(s->kind), why);
    }
    return set;
}

static void swap_in(struct dp_keys *k)
{
    struct sb_jwt_keys *set = build(k);
    if (set == NULL)
        return;
    pthread_mutex_lock(&k->mu);
    struct sb_jwt_keys *old = k->cur;
    k->cur = set;
    atomic_fetch_add(&k->generation, 1);
    pthread_mutex_unlock(&k->mu);
    sb_jwt_keys_unref(old);
    SB_LOG_INFO(MOD, "token keys in use", "keys=%zu", sb_jwt_keys_count(set));
}

static void *thread_main(void *arg)
{
    struct dp_keys *k = arg;
    pthread_mutex_lock(&k->mu);
    while (!k->stop) {
        pthread_mutex_unlock(&k->mu);
        bool changed = false;
        char err[256];
        enum sb_err ignored;
        for (size_t i = 0; i < k->n_src; i++)
            if (k->src[i].kind != SRC_JWKS_URL)
                changed |= check_file(&k->src[i], false, &ignored, err, sizeof(err));
        int64_t now = sb_time_mono_ms();
        bool kick = atomic_load(&k->kicked);
        if (k->url != NULL &&
            (now >= k->next_fetch_ms || (kick && now - k->last_fetch_ms >= KICK_MIN_MS))) {
            atomic_store(&k->kicked, false);
            k->last_fetch_ms = now;
            bool had = k->url->good != NULL;
            bool got = fetch(k->url);
            changed |= got;
            bool ok = got || (had && k->url->good != NULL);
            int64_t again = k->refresh_ms;
            if (!ok && k->url->good == NULL && again > RETRY_MS)
                again = RETRY_MS;
            k->next_fetch_ms = sb_time_mono_ms() + again;
        } else if (kick && k->url == NULL) {
            atomic_store(&k->kicked, false);
        }
        if (changed)
            swap_in(k);
        pthread_mutex_lock(&k->mu);
        if (!k->first_done) {
            k->first_done = true;
            pthread_cond_broadcast(&k->cv);
        }
        if (k->stop)
            break;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&k->cv, &k->mu, &until);
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

/* ---------------------------------------------------------------- API */

bool dp_keys_url_is_allowed(const char *url)
{
    if (url == NULL)
        return false;
    if (strncmp(url, "https://", 8) == 0)
        return url[8] != '\0' && url[8] != '/';
    if (strncmp(url, "http://", 7) != 0)
        return false;
    const char *h = url + 7;
    size_t auth = strcspn(h, "/?#"); /* the authority: [user@]host[:port] */
    if (memchr(h, '@', auth) != NULL)
        return false; /* user@host: the host is not where it seems */
    char host[256];
    size_t len = h[0] == '[' ? strcspn(h, "]") : strcspn(h, ":/?#");
    if (h[0] == '[') {
        if (len >= auth)
            return false;
        h++, len--; /* [::1] -> ::1 */
    }
    if (len >= sizeof(host))
        return false;
    memcpy(host, h, len);
    host[len] = '\0';
    return sb_addr_is_loopback(host);
}

static enum sb_err add_src(struct dp_keys *k, enum src_kind kind, const char *where)
{
    struct src *s = &k->src[k->n_src];
    s->kind = kind;
    s->where = strdup(where);
    if (s->where == NULL)
        return SB_ENOMEM;
    k->n_src++;
    return SB_OK;
}

static size_t count_list(const char *list)
{
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    return n;
}

static bool set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

enum sb_err dp_keys_create(const struct dp_config *cfg, struct dp_keys **out, char *err, size_t cap)
{
    *out = NULL;
    size_t n = (size_t)set(cfg->jwt_hmac_secret_file) + (size_t)set(cfg->jwks_file) +
               (size_t)set(cfg->jwks_url) +
               (set(cfg->jwt_public_key_file) ? count_list(cfg->jwt_public_key_file) : 0);
    if (n == 0)
        return SB_OK;
    if (set(cfg->jwks_url) && !dp_keys_url_is_allowed(cfg->jwks_url)) {
        snprintf(err, cap, "--jwks-url must be https://..., or http:// to a loopback host");
        return SB_EINVAL;
    }
    struct dp_keys *k = calloc(1, sizeof(*k));
    if (k == NULL || (k->src = calloc(n, sizeof(*k->src))) == NULL) {
        free(k);
        snprintf(err, cap, "out of memory");
        return SB_ENOMEM;
    }
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    atomic_init(&k->kicked, false);
    atomic_init(&k->generation, 1);
    k->refresh_ms = cfg->jwks_refresh;
    enum sb_err e = SB_OK;
    if (set(cfg->jwt_hmac_secret_file))
        e = add_src(k, SRC_HMAC, cfg->jwt_hmac_secret_file);
    if (e == SB_OK && set(cfg->jwt_public_key_file)) {
        char *list = strdup(cfg->jwt_public_key_file), *save = NULL;
        e = list != NULL ? SB_OK : SB_ENOMEM;
        for (char *t = list ? strtok_r(list, ",", &save) : NULL; t != NULL && e == SB_OK;
             t = strtok_r(NULL, ",", &save))
            e = add_src(k, SRC_PEM, t);
        free(list);
    }
    if (e == SB_OK && set(cfg->jwks_file))
        e = add_src(k, SRC_JWKS_FILE, cfg->jwks_file);
    if (e == SB_OK && set(cfg->jwks_url)) {
        e = add_src(k, SRC_JWKS_URL, cfg->jwks_url);
        if (e == SB_OK)
            k->url = &k->src[k->n_src - 1];
    }
    if (e != SB_OK) {
        snprintf(err, cap, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < k->n_src && e == SB_OK; i++)
        if (k->src[i].kind != SRC_JWKS_URL)
            check_file(&k->src[i], true, &e, err, cap);
    if (e != SB_OK)
        goto fail;
    k->cur = build(k);
    if (k->cur == NULL) {
        e = SB_ENOMEM;
        snprintf(err, cap, "out of memory");
        goto fail;
    }
    if (k->url != NULL)
        curl_global_init(CURL_GLOBAL_DEFAULT); /* before any thread uses curl */
    if (pthread_create(&k->thread, NULL, thread_main, k) != 0) {
        e = SB_ENOMEM;
        snprintf(err, cap, "cannot start the key refresh thread");
        goto fail;
    }
    k->started = true;
    if (k->url != NULL) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += FIRST_FETCH_MAX / 1000;
        pthread_mutex_lock(&k->mu);
        while (!k->first_done)
            if (pthread_cond_timedwait(&k->cv, &k->mu, &until) != 0)
                break;
        pthread_mutex_unlock(&k->mu);
    }
    *out = k;
    return SB_OK;
fail:
    dp_keys_destroy(k);
    return e;
}

void dp_keys_destroy(struct dp_keys *k)
{
    if (k == NULL)
        return;
    if (k->started) {
        pthread_mutex_lock(&k->mu);
        k->stop = true;
        pthread_cond_broadcast(&k->cv);
        pthread_mutex_unlock(&k->mu);
        pthread_join(k->thread, NULL);
    }
    for (size_t i = 0; i < k->n_src; i++) {
        free(k->src[i].where);
        free(k->src[i].good);
    }
    free(k->src);
    sb_jwt_keys_unref(k->cur);
    if (k->url != NULL)
        curl_global_cleanup();
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    free(k);
}

struct sb_jwt_keys *dp_keys_get(struct dp_keys *k)
{
    pthread_mutex_lock(&k->mu);
    struct sb_jwt_keys *set = sb_jwt_keys_ref(k->cur);
    pthread_mutex_unlock(&k->mu);
    return set;
}

uint64_t dp_keys_generation(struct dp_keys *k)
{
    return atomic_load(&k->generation);
}

void dp_keys_kick(struct dp_keys *k)
{
    if (k == NULL || k->url == NULL || atomic_exchange(&k->kicked, true))
        return;
    pthread_cond_signal(&k->cv); /* a missed signal costs at most the 1 s tick */
}
