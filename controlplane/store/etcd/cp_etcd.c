/* etcd client I/O: one thread, one curl multi handle, a locked command queue woken with
 * curl_multi_wakeup. Requests with endpoint failover and deadlines, resumable watch streams,
 * lease keep-alive timers and blocking lock calls all share the multi handle.
 *
 * Everything below the command queue (requests, watches, keepalives, the multi handle) is
 * touched only by the etcd thread; other threads only push commands. */
#include "cp_etcd.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "sb_log.h"
#include "sb_time.h"

#define MOD               "etcd"
#define MAX_ENDPOINTS     16
#define POLL_MAX_MS       1000
#define RETRY_PAUSE_MAX   1000
#define WATCH_BACKOFF_MAX 1000
#define KA_RETRY_MS       500
#define MAX_WATCH_LINE    (64u * 1024 * 1024)

enum tag_kind { TAG_REQ, TAG_WATCH };

struct req {
    enum tag_kind tag; /* first: CURLOPT_PRIVATE points here */
    struct req *prev, *next;
    uint64_t id;
    char *path;
    char *body;
    unsigned flags;
    int64_t deadline; /* monotonic ms; 0: none */
    cp_etcd_call_fn *cb;
    void *ud;
    CURL *easy;
    char *url;
    char *resp;
    size_t resp_len, resp_cap;
    bool too_large;
    size_t max_resp;
    size_t ep;
    size_t failures;
    int pause_ms;
    int64_t retry_at;      /* > 0: waiting to retry */
    enum sb_err last_fail; /* status if the deadline passes while waiting to retry */
    bool counted;          /* holds one of the max_inflight slots */
    struct req *qnext;     /* in the wait FIFO while over max_inflight */
    bool queued;
};

enum watch_state { W_WAIT, W_ACTIVE, W_RESET };

struct cp_etcd_watch {
    enum tag_kind tag;
    struct cp_etcd_watch *prev, *next;
    struct cp_etcd *e;
    char *key, *range_end;
    size_t key_len, range_end_len;
    bool has_range_end;
    bool from_now;
    _Atomic int64_t last_rev;
    cp_etcd_watch_event_fn *event_cb;
    cp_etcd_watch_reset_fn *reset_cb;
    void *ud;
    enum watch_state state;
    CURL *easy;
    char *url;
    size_t ep;
    int64_t reconnect_at;
    int backoff_ms;
    bool failed; /* error line or parse error on this stream */
    bool need_reset;
    int64_t compact_rev;
    struct cp_etcd_lines lines;
};

struct cp_etcd_keepalive {
    struct cp_etcd_keepalive *prev, *next;
    struct cp_etcd *e;
    int64_t id, ttl;
    cp_etcd_lease_lost_fn *lost_cb;
    void *ud;
    int64_t next_at;
    _Atomic int64_t last_ok;
    bool in_flight, lost, closing;
    cp_etcd_closed_fn *closed_cb;
    void *closed_ud;
};

enum cmd_kind { C_CALL, C_CANCEL, C_W_START, C_W_RESTART, C_W_CLOSE, C_K_START, C_K_CLOSE };

struct cmd {
    struct cmd *next;
    enum cmd_kind kind;
    void *p;
    int64_t arg;
    cp_etcd_closed_fn *closed_cb;
    void *closed_ud;
};

struct cp_etcd {
    char *endpoints[MAX_ENDPOINTS];
    size_t n_endpoints;
    _Atomic size_t preferred;
    int connect_timeout_ms, retry_pause_ms, watch_backoff_ms, watch_idle_ms;
    size_t max_response;
    int max_inflight;
    CURLM *multi;
    struct curl_slist *hdrs, *hdrs_expect;
    pthread_t thread;
    bool started, joined;
    pthread_mutex_t mu;
    struct cmd *q_head, *q_tail; /* under mu */
    bool stopping;               /* under mu */
    uint64_t next_id;            /* under mu */
    /* etcd thread only: */
    struct req *reqs;
    struct req *q_first, *q_last; /* waiting for an in-flight slot */
    int inflight;
    struct cp_etcd_watch *watches;
    struct cp_etcd_keepalive *kas;
};

/* ---- list helpers ---------------------------------------------------------------------- */

#define LINK(head, x)                                                                              \
    do {                                                                                           \
        (x)->prev = NULL;                                                                          \
        (x)->next = (head);                                                                        \
        if (head)                                                                                  \
            (head)->prev = (x);                                                                    \
        (head) = (x);                                                                              \
    } while (0)
#define UNLINK(head, x)                                                                            \
    do {                                                                                           \
        if ((x)->prev)                                                                             \
            (x)->prev->next = (x)->next;                                                           \
        else                                                                                       \
            (head) = (x)->next;                                                                    \
        if ((x)->next)                                                                             \
            (x)->next->prev = (x)->prev;                                                           \
        (x)->prev = (x)->next = NULL;                                                              \
    } while (0)

/* ---- commands -------------------------------------------------------------------------- */

/* Queues a command; returns SB_EUNAVAIL (and frees nothing) once stopping. */
static enum sb_err push(struct cp_etcd *e, struct cmd *c, uint64_t *id_out)
{
    pthread_mutex_lock(&e->mu);
    if (e->stopping) {
        pthread_mutex_unlock(&e->mu);
        return SB_EUNAVAIL;
    }
    if (c->kind == C_CALL) {
        struct req *r = c->p;
        r->id = ++e->next_id;
        if (id_out != NULL)
            *id_out = r->id;
    }
    c->next = NULL;
    if (e->q_tail)
        e->q_tail->next = c;
    else
        e->q_head = c;
    e->q_tail = c;
    pthread_mutex_unlock(&e->mu);
    curl_multi_wakeup(e->multi);
    return SB_OK;
}

static enum sb_err push_simple(struct cp_etcd *e, enum cmd_kind kind, void *p, int64_t arg,
                               cp_etcd_closed_fn *closed_cb, void *closed_ud)
{
    struct cmd *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return SB_ENOMEM;
    c->kind = kind;
    c->p = p;
    c->arg = arg;
    c->closed_cb = closed_cb;
    c->closed_ud = closed_ud;
    enum sb_err err = push(e, c, NULL);
    if (err != SB_OK)
        free(c);
    return err;
}

/* ---- create / destroy ------------------------------------------------------------------ */

static enum sb_err parse_endpoints(struct cp_etcd *e, const char *list)
{
    if (list == NULL)
        return SB_EINVAL;
    const char *p = list;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        while (n > 0 && (p[0] == ' ' || p[0] == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '/'))
            n--;
        if (n == 0 || e->n_endpoints == MAX_ENDPOINTS)
            return SB_EINVAL;
        bool scheme =
            (n > 7 && strncmp(p, "http://", 7) == 0) || (n > 8 && strncmp(p, "https://", 8) == 0);
        if (!scheme && memchr(p, ':', n) != NULL && strstr(p, "://") != NULL &&
            strstr(p, "://") < p + n)
            return SB_EINVAL; /* another scheme */
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)p[i] <= ' ' || p[i] == '"')
                return SB_EINVAL;
        char *ep = malloc(n + 8);
        if (ep == NULL)
            return SB_ENOMEM;
        snprintf(ep, n + 8, "%s%.*s", scheme ? "" : "http://", (int)n, p);
        e->endpoints[e->n_endpoints++] = ep;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return e->n_endpoints > 0 ? SB_OK : SB_EINVAL;
}

enum sb_err cp_etcd_create(const struct cp_etcd_config *cfg, struct cp_etcd **out)
{
    if (cfg == NULL || out == NULL)
        return SB_EINVAL;
    struct cp_etcd *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return SB_ENOMEM;
    pthread_mutex_init(&e->mu, NULL);
    e->joined = true;
    enum sb_err err = parse_endpoints(e, cfg->endpoints);
    if (err != SB_OK)
        goto fail;
    e->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 1000;
    e->retry_pause_ms = cfg->retry_pause_ms > 0 ? cfg->retry_pause_ms : 100;
    e->watch_backoff_ms = cfg->watch_backoff_ms > 0 ? cfg->watch_backoff_ms : 100;
    e->watch_idle_ms = cfg->watch_idle_ms > 0 ? cfg->watch_idle_ms : 30000;
    e->max_response = cfg->max_response > 0 ? cfg->max_response : 64u * 1024 * 1024;
    e->max_inflight = cfg->max_inflight > 0 ? cfg->max_inflight : 64;
    err = SB_ENOMEM;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        goto fail;
    e->multi = curl_multi_init();
    if (e->multi == NULL)
        goto fail_global;
    static const char *const common[] = {"Content-Type: application/json",
                                         "Grpc-Metadata-hasleader: true"};
    for (size_t i = 0; i < 2; i++) {
        struct curl_slist *a = curl_slist_append(e->hdrs, common[i]);
        if (a == NULL)
            goto fail_global;
        e->hdrs = a;
        a = curl_slist_append(e->hdrs_expect, common[i]);
        if (a == NULL)
            goto fail_global;
        e->hdrs_expect = a;
    }
    /* libcurl adds "Expect: 100-continue" to bodies over 1 KiB and then waits up to 1 s; a
     * unary body is sent whole, so it is switched off unless asked for. */
    struct curl_slist *a = curl_slist_append(e->hdrs, "Expect:");
    if (a == NULL)
        goto fail_global;
    e->hdrs = a;
    a = curl_slist_append(e->hdrs_expect, "Expect: 100-continue");
    if (a == NULL)
        goto fail_global;
    e->hdrs_expect = a;
    *out = e;
    return SB_OK;
fail_global:
    curl_slist_free_all(e->hdrs);
    curl_slist_free_all(e->hdrs_expect);
    if (e->multi)
        curl_multi_cleanup(e->multi);
    curl_global_cleanup();
fail:
    for (size_t i = 0; i < e->n_endpoints; i++)
        free(e->endpoints[i]);
    pthread_mutex_destroy(&e->mu);
    free(e);
    return err;
}

size_t cp_etcd_endpoint_count(const struct cp_etcd *e)
{
    return e->n_endpoints;
}

size_t cp_etcd_preferred_endpoint(struct cp_etcd *e)
{
    return atomic_load(&e->preferred);
}

/* Moves the preference off a failed endpoint (once per failure of the preferred one). */
static void endpoint_failed(struct cp_etcd *e, size_t ep)
{
    size_t cur = ep;
    atomic_compare_exchange_strong(&e->preferred, &cur, (ep + 1) % e->n_endpoints);
}

/* ---- requests -------------------------------------------------------------------------- */

static void req_free(struct req *r)
{
    free(r->path);
    free(r->body);
    free(r->url);
    free(r->resp);
    free(r);
}

static void req_finish(struct cp_etcd *e, struct req *r, enum sb_err status, long code)
{
    if (r->easy != NULL) {
        curl_multi_remove_handle(e->multi, r->easy);
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
    }
    UNLINK(e->reqs, r);
    if (r->queued) {
        struct req **pp = &e->q_first;
        while (*pp != r)
            pp = &(*pp)->qnext;
        *pp = r->qnext;
        if (e->q_last == r) {
            e->q_last = NULL;
            for (struct req *q = e->q_first; q != NULL; q = q->qnext)
                e->q_last = q;
        }
    }
    if (r->counted)
        e->inflight--;
    const char *body = r->resp != NULL && status != SB_EAGAIN ? r->resp : "";
    size_t len = r->resp != NULL && status != SB_EAGAIN ? r->resp_len : 0;
    r->cb(r->ud, status, code, body, len);
    req_free(r);
}

static size_t req_write(char *p, size_t sz, size_t nm, void *ud)
{
    struct req *r = ud;
    size_t n = sz * nm;
    if (r->resp_len + n + 1 > r->max_resp) {
        r->too_large = true;
        return 0;
    }
    if (r->resp_len + n + 1 > r->resp_cap) {
        size_t cap = r->resp_cap ? r->resp_cap : 1024;
        while (cap < r->resp_len + n + 1)
            cap *= 2;
        char *b = realloc(r->resp, cap);
        if (b == NULL)
            return 0;
        r->resp = b;
        r->resp_cap = cap;
    }
    memcpy(r->resp + r->resp_len, p, n);
    r->resp_len += n;
    r->resp[r->resp_len] = '\0';
    return n;
}

static void req_attempt(struct cp_etcd *e, struct req *r)
{
    r->retry_at = 0;
    int64_t now = sb_time_mono_ms();
    if (r->deadline != 0 && now >= r->deadline) {
        req_finish(e, r, r->last_fail, 0);
        return;
    }
    free(r->url);
    size_t ul = strlen(e->endpoints[r->ep]) + strlen(r->path) + 1;
    r->url = malloc(ul);
    r->resp_len = 0;
    r->too_large = false;
    r->max_resp = e->max_response;
    CURL *h = r->url != NULL ? curl_easy_init() : NULL;
    if (h == NULL) {
        req_finish(e, r, SB_EUNAVAIL, 0);
        return;
    }
    snprintf(r->url, ul, "%s%s", e->endpoints[r->ep], r->path);
    curl_easy_setopt(h, CURLOPT_URL, r->url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER,
                     (r->flags & CP_ETCD_EXPECT_CONTINUE) ? e->hdrs_expect : e->hdrs);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, req_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_PRIVATE, &r->tag);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)e->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    if (r->deadline != 0) {
        int64_t left = r->deadline - now;
        /* A frozen endpoint must not eat the whole deadline of a retryable request. */
        if ((r->flags & CP_ETCD_RETRY) && e->n_endpoints > 1 && left > 1000)
            left = left / 2 > 1000 ? left / 2 : 1000;
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(left > 0 ? left : 1));
    }
    r->easy = h;
    if (curl_multi_add_handle(e->multi, h) != CURLM_OK) {
        req_finish(e, r, SB_EUNAVAIL, 0);
        return;
    }
}

static void req_done(struct cp_etcd *e, struct req *r, CURLcode rc)
{
    long code = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(e->multi, r->easy);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    if (r->too_large) {
        req_finish(e, r, SB_EPROTO, code);
        return;
    }
    bool transport = rc != CURLE_OK;
    if (!transport && code != 408 && code < 500) {
        req_finish(e, r, code == 200 ? SB_OK : SB_EPROTO, code);
        return;
    }
    int64_t now = sb_time_mono_ms();
    SB_LOG_DEBUG(MOD, "request failed", "endpoint=%s path=%s curl=\"%s\" http=%ld",
                 e->endpoints[r->ep], r->path, curl_easy_strerror(rc), code);
    endpoint_failed(e, r->ep);
    bool never_sent = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                      rc == CURLE_COULDNT_RESOLVE_PROXY;
    r->last_fail = rc == CURLE_OPERATION_TIMEDOUT ? SB_ETIMEDOUT : SB_EUNAVAIL;
    if (r->deadline != 0 && now >= r->deadline) {
        req_finish(e, r, r->last_fail, code);
        return;
    }
    if (!(r->flags & CP_ETCD_RETRY) && !never_sent) {
        req_finish(e, r, r->last_fail, code);
        return;
    }
    r->ep = (r->ep + 1) % e->n_endpoints;
    r->failures++;
    if (r->failures % e->n_endpoints == 0) {
        r->retry_at = now + r->pause_ms;
        if (r->deadline != 0 && r->retry_at > r->deadline)
            r->retry_at = r->deadline;
        r->pause_ms = r->pause_ms * 2 > RETRY_PAUSE_MAX ? RETRY_PAUSE_MAX : r->pause_ms * 2;
    } else {
        r->retry_at = now; /* at once, next loop turn */
    }
}

static struct req *req_new(const char *path, const char *body, int timeout_ms, unsigned flags,
                           cp_etcd_call_fn *cb, void *ud)
{
    struct req *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->tag = TAG_REQ;
    r->path = strdup(path);
    r->body = strdup(body);
    if (r->path == NULL || r->body == NULL) {
        req_free(r);
        return NULL;
    }
    r->flags = flags;
    r->last_fail = SB_ETIMEDOUT;
    r->deadline = timeout_ms > 0 ? sb_time_mono_ms() + timeout_ms : 0;
    r->cb = cb;
    r->ud = ud;
    return r;
}

enum sb_err cp_etcd_call_id(struct cp_etcd *e, const char *path, const char *json_body,
                            int timeout_ms, unsigned flags, cp_etcd_call_fn *cb, void *ud,
                            uint64_t *id_out)
{
    if (e == NULL || path == NULL || path[0] != '/' || json_body == NULL || cb == NULL ||
        timeout_ms < 0)
        return SB_EINVAL;
    struct req *r = req_new(path, json_body, timeout_ms, flags, cb, ud);
    struct cmd *c = calloc(1, sizeof(*c));
    if (r == NULL || c == NULL) {
        if (r != NULL)
            req_free(r);
        free(c);
        return SB_ENOMEM;
    }
    c->kind = C_CALL;
    c->p = r;
    enum sb_err err = push(e, c, id_out);
    if (err != SB_OK) {
        req_free(r);
        free(c);
    }
    return err;
}

enum sb_err cp_etcd_call(struct cp_etcd *e, const char *path, const char *json_body, int timeout_ms,
                         unsigned flags, cp_etcd_call_fn *cb, void *ud)
{
    return cp_etcd_call_id(e, path, json_body, timeout_ms, flags, cb, ud, NULL);
}

void cp_etcd_cancel(struct cp_etcd *e, uint64_t id)
{
    if (e != NULL && id != 0)
        push_simple(e, C_CANCEL, NULL, (int64_t)id, NULL, NULL);
}

/* ---- watches --------------------------------------------------------------------------- */

static void watch_detach(struct cp_etcd *e, struct cp_etcd_watch *w)
{
    if (w->easy != NULL) {
        curl_multi_remove_handle(e->multi, w->easy);
        curl_easy_cleanup(w->easy);
        w->easy = NULL;
    }
    cp_etcd_json_lines_reset(&w->lines);
}

static void watch_free(struct cp_etcd_watch *w)
{
    cp_etcd_json_lines_fini(&w->lines);
    free(w->key);
    free(w->range_end);
    free(w->url);
    free(w);
}

static enum sb_err watch_line(void *ud, const char *line, size_t len)
{
    struct cp_etcd_watch *w = ud;
    struct cp_etcd_watch_msg m;
    enum sb_err err = cp_etcd_json_parse_watch(line, len, &m);
    if (err != SB_OK) {
        SB_LOG_WARN(MOD, "watch stream: unparsable line", "endpoint=%s bytes=%zu",
                    w->e->endpoints[w->ep], len);
        w->failed = true;
        return SB_EPROTO;
    }
    int64_t last = atomic_load(&w->last_rev);
    switch (m.kind) {
    case CP_ETCD_WATCH_ERROR:
        SB_LOG_WARN(MOD, "watch stream error", "endpoint=%s grpc_code=%d error=\"%s\"",
                    w->e->endpoints[w->ep], m.grpc_code, m.message ? m.message : "");
        w->failed = true;
        err = SB_EIO;
        break;
    case CP_ETCD_WATCH_CANCELED:
        if (m.compact_revision > 0) {
            w->need_reset = true;
            w->compact_rev = m.compact_revision;
        } else {
            SB_LOG_WARN(MOD, "watch cancelled by etcd", "endpoint=%s reason=\"%s\"",
                        w->e->endpoints[w->ep], m.cancel_reason ? m.cancel_reason : "");
            w->failed = true;
        }
        err = SB_EAGAIN; /* drop the stream */
        break;
    case CP_ETCD_WATCH_CREATED:
        w->backoff_ms = w->e->watch_backoff_ms;
        if (w->from_now) {
            w->from_now = false;
            atomic_store(&w->last_rev, m.revision);
        }
        break;
    case CP_ETCD_WATCH_PROGRESS:
        /* etcd sends progress only to watchers that caught up: nothing below is missing. */
        if (!w->from_now && m.revision > last)
            atomic_store(&w->last_rev, m.revision);
        break;
    case CP_ETCD_WATCH_EVENTS: {
        size_t i = 0;
        while (i < m.n_events && m.events[i].kv.mod_revision <= last)
            i++; /* already delivered before a reconnect */
        if (i < m.n_events) {
            atomic_store(&w->last_rev, m.events[m.n_events - 1].kv.mod_revision);
            w->from_now = false;
            w->event_cb(w->ud, m.events + i, m.n_events - i);
        }
        break;
    }
    }
    cp_etcd_json_watch_msg_fini(&m);
    return err;
}

static size_t watch_write(char *p, size_t sz, size_t nm, void *ud)
{
    struct cp_etcd_watch *w = ud;
    size_t n = sz * nm;
    if (w->need_reset || w->failed)
        return 0;
    if (cp_etcd_json_lines_feed(&w->lines, p, n, watch_line, w) != SB_OK) {
        w->failed = w->failed || !w->need_reset;
        return 0; /* aborts the transfer */
    }
    return n;
}

static void watch_connect(struct cp_etcd *e, struct cp_etcd_watch *w)
{
    w->reconnect_at = 0;
    w->failed = false;
    w->need_reset = false;
    cp_etcd_json_lines_reset(&w->lines);
    int64_t last = atomic_load(&w->last_rev);
    struct cp_etcd_bytes re = {w->has_range_end ? w->range_end : NULL, w->range_end_len};
    struct cp_etcd_bytes key = {w->key, w->key_len};
    char *body = NULL;
    w->ep = atomic_load(&e->preferred);
    free(w->url);
    size_t ul = strlen(e->endpoints[w->ep]) + sizeof(CP_ETCD_PATH_WATCH);
    w->url = malloc(ul);
    CURL *h = NULL;
    if (w->url == NULL ||
        cp_etcd_json_watch_create(key, re, w->from_now ? 0 : last + 1, true, &body) != SB_OK ||
        (h = curl_easy_init()) == NULL) {
        free(body);
        w->state = W_WAIT;
        w->reconnect_at = sb_time_mono_ms() + WATCH_BACKOFF_MAX;
        return;
    }
    snprintf(w->url, ul, "%s%s", e->endpoints[w->ep], CP_ETCD_PATH_WATCH);
    curl_easy_setopt(h, CURLOPT_URL, w->url);
    curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, e->hdrs);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, watch_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(h, CURLOPT_PRIVATE, &w->tag);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)e->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 5L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 5L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)((e->watch_idle_ms + 999) / 1000));
    free(body);
    w->easy = h;
    w->state = W_ACTIVE;
    if (curl_multi_add_handle(e->multi, h) != CURLM_OK) {
        curl_easy_cleanup(h);
        w->easy = NULL;
        w->state = W_WAIT;
        w->reconnect_at = sb_time_mono_ms() + WATCH_BACKOFF_MAX;
    }
}

static void watch_done(struct cp_etcd *e, struct cp_etcd_watch *w, CURLcode rc)
{
    long code = 0;
    curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &code);
    bool aborted = w->failed || w->need_reset;
    curl_multi_remove_handle(e->multi, w->easy);
    curl_easy_cleanup(w->easy);
    w->easy = NULL;
    /* A stream error arrives without a trailing newline: parse what is left. */
    if (!aborted)
        cp_etcd_json_lines_finish(&w->lines, watch_line, w);
    cp_etcd_json_lines_reset(&w->lines);
    if (w->need_reset) {
        w->need_reset = false;
        w->state = W_RESET;
        SB_LOG_INFO(MOD, "watch compacted: reset", "key=\"%.*s\" compact_revision=%lld",
                    (int)(w->key_len > 64 ? 64 : w->key_len), w->key, (long long)w->compact_rev);
        w->reset_cb(w->ud, w->compact_rev);
        return;
    }
    bool failed = w->failed || rc != CURLE_OK || code != 200;
    if (failed)
        endpoint_failed(e, w->ep);
    SB_LOG_DEBUG(MOD, "watch disconnected", "endpoint=%s curl=\"%s\" http=%ld last_rev=%lld",
                 e->endpoints[w->ep], curl_easy_strerror(rc), code,
                 (long long)atomic_load(&w->last_rev));
    w->state = W_WAIT;
    w->reconnect_at = sb_time_mono_ms() + w->backoff_ms;
    w->backoff_ms = w->backoff_ms * 2 > WATCH_BACKOFF_MAX ? WATCH_BACKOFF_MAX : w->backoff_ms * 2;
}

static enum sb_err dup_bytes(const char *s, char **out, size_t *len)
{
    *len = strlen(s);
    *out = malloc(*len + 1);
    if (*out == NULL)
        return SB_ENOMEM;
    memcpy(*out, s, *len + 1);
    return SB_OK;
}

enum sb_err cp_etcd_watch_start(struct cp_etcd *e, const char *key, const char *range_end,
                                int64_t start_rev, cp_etcd_watch_event_fn *event_cb,
                                cp_etcd_watch_reset_fn *reset_cb, void *ud,
                                struct cp_etcd_watch **out)
{
    if (e == NULL || key == NULL || key[0] == '\0' || start_rev < 0 || event_cb == NULL ||
        reset_cb == NULL || out == NULL)
        return SB_EINVAL;
    struct cp_etcd_watch *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return SB_ENOMEM;
    w->tag = TAG_WATCH;
    w->e = e;
    cp_etcd_json_lines_init(&w->lines, MAX_WATCH_LINE);
    enum sb_err err = dup_bytes(key, &w->key, &w->key_len);
    if (err == SB_OK && range_end != NULL) {
        w->has_range_end = true;
        /* "" is etcd's "\0": every key >= key. */
        err = range_end[0] == '\0' ? (w->range_end = calloc(1, 1)) != NULL ? SB_OK : SB_ENOMEM
                                   : dup_bytes(range_end, &w->range_end, &w->range_end_len);
        if (err == SB_OK && range_end[0] == '\0')
            w->range_end_len = 1;
    }
    if (err != SB_OK) {
        watch_free(w);
        return err;
    }
    w->from_now = start_rev == 0;
    atomic_store(&w->last_rev, start_rev > 0 ? start_rev - 1 : 0);
    w->event_cb = event_cb;
    w->reset_cb = reset_cb;
    w->ud = ud;
    w->backoff_ms = e->watch_backoff_ms;
    w->state = W_WAIT;
    err = push_simple(e, C_W_START, w, 0, NULL, NULL);
    if (err != SB_OK) {
        watch_free(w);
        return err;
    }
    *out = w;
    return SB_OK;
}

void cp_etcd_watch_restart(struct cp_etcd_watch *w, int64_t rev)
{
    if (w != NULL && rev > 0)
        push_simple(w->e, C_W_RESTART, w, rev, NULL, NULL);
}

int64_t cp_etcd_watch_last_revision(struct cp_etcd_watch *w)
{
    return w != NULL ? atomic_load(&w->last_rev) : 0;
}

void cp_etcd_watch_close(struct cp_etcd_watch *w, cp_etcd_closed_fn *closed_cb, void *ud)
{
    if (w != NULL)
        push_simple(w->e, C_W_CLOSE, w, 0, closed_cb, ud);
}

/* ---- keep-alive ------------------------------------------------------------------------ */

static void ka_free(struct cp_etcd *e, struct cp_etcd_keepalive *k)
{
    UNLINK(e->kas, k);
    if (k->closed_cb)
        k->closed_cb(k->closed_ud);
    free(k);
}

static int64_t ka_interval_ms(const struct cp_etcd_keepalive *k)
{
    int64_t ms = k->ttl * 1000 / 3;
    return ms < 200 ? 200 : ms;
}

static void ka_done(void *ud, enum sb_err status, long code, const char *body, size_t len)
{
    struct cp_etcd_keepalive *k = ud;
    struct cp_etcd *e = k->e;
    k->in_flight = false;
    if (k->closing) {
        ka_free(e, k);
        return;
    }
    int64_t now = sb_time_mono_ms();
    bool lost = false;
    if (status == SB_OK) {
        struct cp_etcd_lease l;
        if (cp_etcd_json_parse_lease(body, len, &l) == SB_OK) {
            lost = l.ttl <= 0;
            cp_etcd_json_lease_fini(&l);
        }
    } else if (status == SB_EPROTO) {
        struct cp_etcd_error er;
        if (cp_etcd_json_parse_error(body, len, &er) == SB_OK) {
            lost = er.grpc_code == 5; /* NotFound: lease not found */
            cp_etcd_json_error_fini(&er);
        }
    }
    if (lost) {
        k->lost = true;
        SB_LOG_WARN(MOD, "lease lost", "lease=%lld", (long long)k->id);
        k->lost_cb(k->ud, k->id);
        return;
    }
    if (status == SB_OK) {
        atomic_store(&k->last_ok, now);
        k->next_at = now + ka_interval_ms(k);
    } else {
        SB_LOG_DEBUG(MOD, "keep-alive failed", "lease=%lld status=%s http=%ld", (long long)k->id,
                     sb_err_str(status), code);
        k->next_at = now + KA_RETRY_MS;
    }
}

static void start_req(struct cp_etcd *e, struct req *r)
{
    LINK(e->reqs, r);
    r->ep = atomic_load(&e->preferred);
    r->pause_ms = e->retry_pause_ms;
    if (!(r->flags & CP_ETCD_UNQUEUED)) {
        if (e->inflight >= e->max_inflight || e->q_first != NULL) {
            r->queued = true;
            r->qnext = NULL;
            if (e->q_last)
                e->q_last->qnext = r;
            else
                e->q_first = r;
            e->q_last = r;
            return;
        }
        r->counted = true;
        e->inflight++;
    }
    req_attempt(e, r);
}

/* Starts queued requests while slots are free (called from the loop, never recursively). */
static void pump_queue(struct cp_etcd *e)
{
    while (e->q_first != NULL && e->inflight < e->max_inflight) {
        struct req *r = e->q_first;
        e->q_first = r->qnext;
        if (e->q_first == NULL)
            e->q_last = NULL;
        r->queued = false;
        r->qnext = NULL;
        r->counted = true;
        e->inflight++;
        req_attempt(e, r);
    }
}

static void ka_tick(struct cp_etcd *e, struct cp_etcd_keepalive *k)
{
    k->next_at = 0;
    char *body = NULL;
    struct req *r = NULL;
    int64_t to = ka_interval_ms(k);
    if (cp_etcd_json_lease_id(k->id, &body) == SB_OK)
        r = req_new(CP_ETCD_PATH_KEEPALIVE, body, (int)(to > 3000 ? 3000 : to),
                    CP_ETCD_RETRY | CP_ETCD_UNQUEUED, ka_done, k);
    free(body);
    if (r == NULL) {
        k->next_at = sb_time_mono_ms() + KA_RETRY_MS;
        return;
    }
    k->in_flight = true;
    pthread_mutex_lock(&e->mu);
    r->id = ++e->next_id;
    pthread_mutex_unlock(&e->mu);
    start_req(e, r);
}

enum sb_err cp_etcd_keepalive_start(struct cp_etcd *e, int64_t id, int64_t ttl_s,
                                    cp_etcd_lease_lost_fn *lost_cb, void *ud,
                                    struct cp_etcd_keepalive **out)
{
    if (e == NULL || id == 0 || ttl_s <= 0 || lost_cb == NULL || out == NULL)
        return SB_EINVAL;
    struct cp_etcd_keepalive *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return SB_ENOMEM;
    k->e = e;
    k->id = id;
    k->ttl = ttl_s;
    k->lost_cb = lost_cb;
    k->ud = ud;
    enum sb_err err = push_simple(e, C_K_START, k, 0, NULL, NULL);
    if (err != SB_OK) {
        free(k);
        return err;
    }
    *out = k;
    return SB_OK;
}

int64_t cp_etcd_keepalive_last_ok_ms(struct cp_etcd_keepalive *k)
{
    return k != NULL ? atomic_load(&k->last_ok) : 0;
}

void cp_etcd_keepalive_close(struct cp_etcd_keepalive *k, cp_etcd_closed_fn *closed_cb, void *ud)
{
    if (k != NULL)
        push_simple(k->e, C_K_CLOSE, k, 0, closed_cb, ud);
}

/* ---- the loop -------------------------------------------------------------------------- */

static void run_cmd(struct cp_etcd *e, struct cmd *c, bool stopping)
{
    switch (c->kind) {
    case C_CALL: {
        struct req *r = c->p;
        if (stopping) {
            LINK(e->reqs, r);
            req_finish(e, r, SB_EUNAVAIL, 0);
        } else {
            start_req(e, r);
        }
        break;
    }
    case C_CANCEL:
        for (struct req *r = e->reqs; r != NULL; r = r->next) {
            if (r->id == (uint64_t)c->arg) {
                req_finish(e, r, SB_EAGAIN, 0);
                break;
            }
        }
        break;
    case C_W_START: {
        struct cp_etcd_watch *w = c->p;
        LINK(e->watches, w);
        if (!stopping)
            watch_connect(e, w);
        break;
    }
    case C_W_RESTART: {
        struct cp_etcd_watch *w = c->p;
        watch_detach(e, w);
        w->from_now = false;
        atomic_store(&w->last_rev, c->arg - 1);
        w->backoff_ms = e->watch_backoff_ms;
        w->state = W_WAIT;
        w->reconnect_at = sb_time_mono_ms();
        break;
    }
    case C_W_CLOSE: {
        struct cp_etcd_watch *w = c->p;
        watch_detach(e, w);
        UNLINK(e->watches, w);
        watch_free(w);
        if (c->closed_cb)
            c->closed_cb(c->closed_ud);
        break;
    }
    case C_K_START: {
        struct cp_etcd_keepalive *k = c->p;
        LINK(e->kas, k);
        k->next_at = sb_time_mono_ms();
        break;
    }
    case C_K_CLOSE: {
        struct cp_etcd_keepalive *k = c->p;
        k->closing = true;
        k->closed_cb = c->closed_cb;
        k->closed_ud = c->closed_ud;
        if (!k->in_flight)
            ka_free(e, k);
        break;
    }
    }
    free(c);
}

static void drain_cmds(struct cp_etcd *e, bool *stopping)
{
    pthread_mutex_lock(&e->mu);
    struct cmd *c = e->q_head;
    e->q_head = e->q_tail = NULL;
    *stopping = e->stopping;
    pthread_mutex_unlock(&e->mu);
    while (c != NULL) {
        struct cmd *next = c->next;
        run_cmd(e, c, *stopping);
        c = next;
    }
}

/* Runs due timers; returns the ms until the next one (capped). */
static int timers(struct cp_etcd *e)
{
    pump_queue(e);
    int64_t now = sb_time_mono_ms();
    int64_t next = now + POLL_MAX_MS;
    for (struct req *r = e->reqs, *nr; r != NULL; r = nr) {
        nr = r->next;
        if (r->retry_at > 0 && r->retry_at <= now)
            req_attempt(e, r); /* may free r */
        else if (r->retry_at > 0 && r->retry_at < next)
            next = r->retry_at;
    }
    for (struct cp_etcd_watch *w = e->watches; w != NULL; w = w->next) {
        if (w->state != W_WAIT)
            continue;
        if (w->reconnect_at <= now)
            watch_connect(e, w);
        else if (w->reconnect_at < next)
            next = w->reconnect_at;
    }
    for (struct cp_etcd_keepalive *k = e->kas; k != NULL; k = k->next) {
        if (k->in_flight || k->lost || k->closing || k->next_at == 0)
            continue;
        if (k->next_at <= now)
            ka_tick(e, k);
        else if (k->next_at < next)
            next = k->next_at;
    }
    /* A retry scheduled "at once" by a completion above runs next turn without sleeping. */
    for (struct req *r = e->reqs; r != NULL; r = r->next)
        if (r->retry_at > 0 && r->retry_at < next)
            next = r->retry_at;
    int64_t d = next - sb_time_mono_ms();
    return d < 0 ? 0 : (int)d;
}

static void completions(struct cp_etcd *e)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(e->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURLcode rc = m->data.result;
        enum tag_kind *tag = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&tag);
        if (tag == NULL)
            continue;
        if (*tag == TAG_REQ)
            req_done(e, (struct req *)tag, rc);
        else
            watch_done(e, (struct cp_etcd_watch *)tag, rc);
    }
}

static void *run(void *arg)
{
    struct cp_etcd *e = arg;
    bool stopping = false;
    for (;;) {
        drain_cmds(e, &stopping);
        if (stopping)
            break;
        int wait = timers(e);
        int running = 0;
        curl_multi_perform(e->multi, &running);
        completions(e);
        /* Completions may have queued commands or immediate retries. */
        pthread_mutex_lock(&e->mu);
        bool queued = e->q_head != NULL;
        pthread_mutex_unlock(&e->mu);
        if (queued)
            continue;
        int w2 = timers(e);
        if (w2 < wait)
            wait = w2;
        curl_multi_poll(e->multi, NULL, 0, wait, NULL);
    }
    /* Stopping: fail requests (keep-alive completions free closing keepers), drop streams. */
    while (e->reqs != NULL)
        req_finish(e, e->reqs, SB_EUNAVAIL, 0);
    for (struct cp_etcd_watch *w = e->watches; w != NULL; w = w->next)
        watch_detach(e, w);
    return NULL;
}

enum sb_err cp_etcd_start(struct cp_etcd *e)
{
    if (e == NULL || e->started)
        return SB_EINVAL;
    if (pthread_create(&e->thread, NULL, run, e) != 0)
        return SB_EIO;
    e->started = true;
    e->joined = false;
    return SB_OK;
}

void cp_etcd_stop(struct cp_etcd *e)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    pthread_mutex_unlock(&e->mu);
    curl_multi_wakeup(e->multi);
    if (!e->joined) {
        pthread_join(e->thread, NULL);
        e->joined = true;
    }
}

void cp_etcd_destroy(struct cp_etcd *e)
{
    if (e == NULL)
        return;
    cp_etcd_stop(e);
    /* Commands never run (the thread was not started): fail calls, free the rest. */
    bool stopping;
    drain_cmds(e, &stopping);
    while (e->reqs != NULL)
        req_finish(e, e->reqs, SB_EUNAVAIL, 0);
    while (e->watches != NULL) {
        struct cp_etcd_watch *w = e->watches;
        watch_detach(e, w);
        UNLINK(e->watches, w);
        watch_free(w);
    }
    while (e->kas != NULL) {
        struct cp_etcd_keepalive *k = e->kas;
        UNLINK(e->kas, k);
        free(k);
    }
    curl_multi_cleanup(e->multi);
    curl_slist_free_all(e->hdrs);
    curl_slist_free_all(e->hdrs_expect);
    curl_global_cleanup();
    for (size_t i = 0; i < e->n_endpoints; i++)
        free(e->endpoints[i]);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

/* ---- lease and lock helpers ------------------------------------------------------------ */

/* SB_ENOTFOUND for an answer that is gRPC NotFound (code 5), else status unchanged. */
static enum sb_err not_found(enum sb_err status, const char *body, size_t len)
{
    if (status != SB_EPROTO)
        return status;
    struct cp_etcd_error er;
    if (cp_etcd_json_parse_error(body, len, &er) != SB_OK)
        return status;
    bool nf = er.grpc_code == 5;
    cp_etcd_json_error_fini(&er);
    return nf ? SB_ENOTFOUND : status;
}

struct helper {
    struct cp_etcd *e;
    cp_etcd_lease_fn *lease_cb;
    cp_etcd_done_fn *done_cb;
    cp_etcd_lock_fn *lock_cb;
    void *ud;
    char *key;
    size_t key_len;
};

/* Starts `path` with `body` (taken) for a heap copy of `init`, which `fn` frees. */
static enum sb_err helper_call(struct cp_etcd *e, const char *path, char *body, int timeout_ms,
                               unsigned flags, cp_etcd_call_fn *fn, struct helper init,
                               uint64_t *id_out)
{
    struct helper *h = malloc(sizeof(*h));
    if (h == NULL) {
        free(body);
        return SB_ENOMEM;
    }
    *h = init;
    enum sb_err err = body != NULL ? cp_etcd_call_id(e, path, body, timeout_ms,
                                                     CP_ETCD_RETRY | flags, fn, h, id_out)
                                   : SB_EINVAL;
    free(body);
    if (err != SB_OK) {
        free(h->key);
        free(h);
    }
    return err;
}

static void grant_done(void *ud, enum sb_err status, long code, const char *body, size_t len)
{
    struct helper *h = ud;
    struct cp_etcd_lease l = {0};
    if (status == SB_OK) {
        status = cp_etcd_json_parse_lease(body, len, &l);
        if (status == SB_OK && (l.id == 0 || l.ttl <= 0))
            status = SB_EPROTO;
    }
    h->lease_cb(h->ud, status, status == SB_OK ? l.id : 0, status == SB_OK ? l.ttl : 0);
    cp_etcd_json_lease_fini(&l);
    free(h);
}

enum sb_err cp_etcd_lease_grant(struct cp_etcd *e, int64_t ttl_s, int timeout_ms,
                                cp_etcd_lease_fn *cb, void *ud)
{
    char *body = NULL;
    if (e == NULL || cb == NULL || cp_etcd_json_lease_grant(ttl_s, 0, &body) != SB_OK)
        return SB_EINVAL;
    return helper_call(e, CP_ETCD_PATH_GRANT, body, timeout_ms, 0, grant_done,
                       (struct helper){.lease_cb = cb, .ud = ud}, NULL);
}

static void done_done(void *ud, enum sb_err status, long code, const char *body, size_t len)
{
    struct helper *h = ud;
    h->done_cb(h->ud, not_found(status, body, len));
    free(h);
}

enum sb_err cp_etcd_lease_revoke(struct cp_etcd *e, int64_t id, int timeout_ms, cp_etcd_done_fn *cb,
                                 void *ud)
{
    char *body = NULL;
    if (e == NULL || cb == NULL || cp_etcd_json_lease_id(id, &body) != SB_OK)
        return SB_EINVAL;
    return helper_call(e, CP_ETCD_PATH_REVOKE, body, timeout_ms, 0, done_done,
                       (struct helper){.done_cb = cb, .ud = ud}, NULL);
}

static void lock_range_done(void *ud, enum sb_err status, long code, const char *body, size_t len)
{
    struct helper *h = ud;
    struct cp_etcd_result r = {0};
    int64_t crev = 0;
    if (status == SB_OK) {
        status = cp_etcd_json_parse_result(body, len, &r);
        if (status == SB_OK && r.n_kvs != 1)
            status = SB_ENOTFOUND; /* the lease ended between acquiring and reading */
        if (status == SB_OK)
            crev = r.kvs[0].create_revision;
    }
    h->lock_cb(h->ud, status, status == SB_OK ? h->key : NULL, status == SB_OK ? h->key_len : 0,
               crev);
    cp_etcd_json_result_fini(&r);
    free(h->key);
    free(h);
}

static void lock_done(void *ud, enum sb_err status, long code, const char *body, size_t len)
{
    struct helper *h = ud;
    status = not_found(status, body, len);
    if (status == SB_OK)
        status = cp_etcd_json_parse_lock(body, len, &h->key, &h->key_len, NULL);
    if (status == SB_OK) {
        struct cp_etcd_range_req rr = {.key = {h->key, h->key_len}};
        char *rb = NULL;
        status = cp_etcd_json_range(&rr, &rb);
        if (status == SB_OK)
            status =
                cp_etcd_call(h->e, CP_ETCD_PATH_RANGE, rb, 3000, CP_ETCD_RETRY, lock_range_done, h);
        free(rb);
        if (status == SB_OK)
            return;
    }
    h->lock_cb(h->ud, status, NULL, 0, 0);
    free(h->key);
    free(h);
}

enum sb_err cp_etcd_lock(struct cp_etcd *e, const char *name, int64_t lease, int timeout_ms,
                         cp_etcd_lock_fn *cb, void *ud, uint64_t *id_out)
{
    char *body = NULL;
    if (e == NULL || cb == NULL || cp_etcd_json_lock(cp_etcd_json_str(name), lease, &body) != SB_OK)
        return SB_EINVAL;
    return helper_call(e, CP_ETCD_PATH_LOCK, body, timeout_ms, CP_ETCD_UNQUEUED, lock_done,
                       (struct helper){.e = e, .lock_cb = cb, .ud = ud}, id_out);
}

enum sb_err cp_etcd_unlock(struct cp_etcd *e, const char *key, size_t key_len, int timeout_ms,
                           cp_etcd_done_fn *cb, void *ud)
{
    char *body = NULL;
    struct cp_etcd_bytes k = {key, key_len};
    if (e == NULL || cb == NULL || cp_etcd_json_unlock(k, &body) != SB_OK)
        return SB_EINVAL;
    return helper_call(e, CP_ETCD_PATH_UNLOCK, body, timeout_ms, 0, done_done,
                       (struct helper){.done_cb = cb, .ud = ud}, NULL);
}
