/* Key files: parsing (pure), loading, change detection by stat() at most once a second, and
 * constant-time matching over SHA-256 digests, so neither a key's content nor its length
 * shows in the time a comparison takes. */
#include "sb_secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "sb_log.h"

#define DIGEST 32

/* What tells one version of the file from another. */
struct file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

struct sb_secret {
    unsigned char (*digests)[DIGEST];
    size_t n;
    char *first; /* NUL-terminated copy of the first key */
    size_t first_len;
    size_t min_len;
    /* file-backed sets only */
    char *path;
    char *option;
    struct file_id seen;   /* the version the keys came from */
    struct file_id failed; /* the last version that did not load (warned once) */
    bool have_failed;
    int64_t checked_at; /* monotonic ms of the last stat(); 0: never */
};

static void digest(const void *p, size_t n, unsigned char out[DIGEST])
{
    unsigned int len = DIGEST;
    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1)
        memset(out, 0, DIGEST); /* cannot happen with the default provider; never matches a key */
}

static void say(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t cap, const char *fmt, ...)
{
    if (why == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

static void free_keys(struct sb_secret *s)
{
    if (s->digests != NULL)
        OPENSSL_cleanse(s->digests, s->n * DIGEST);
    free(s->digests);
    if (s->first != NULL)
        OPENSSL_cleanse(s->first, s->first_len);
    free(s->first);
    s->digests = NULL;
    s->first = NULL;
    s->n = 0;
    s->first_len = 0;
}

enum sb_err sb_secret_parse(const char *text, size_t len, size_t min_len, struct sb_secret **out,
                            char *why, size_t cap)
{
    struct sb_secret *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return SB_ENOMEM;
    s->min_len = min_len;
    enum sb_err rc = SB_OK;
    size_t i = 0;
    int line = 0;
    while (i < len) {
        line++;
        size_t start = i;
        while (i < len && text[i] != '\n')
            i++;
        size_t end = i;
        if (i < len)
            i++; /* the newline */
        while (start < end && is_space(text[start]))
            start++;
        while (end > start && is_space(text[end - 1]))
            end--;
        size_t n = end - start;
        if (n == 0 || text[start] == '#')
            continue;
        const char *k = text + start;
        if (n < min_len) {
            say(why, cap, "line %d: a key must have at least %zu bytes", line, min_len);
            rc = SB_EINVAL;
            break;
        }
        if (n > SB_SECRET_MAX_KEY) {
            say(why, cap, "line %d: a key may have at most %d bytes", line, SB_SECRET_MAX_KEY);
            rc = SB_EINVAL;
            break;
        }
        bool printable = true;
        for (size_t j = 0; j < n; j++)
            printable &= (unsigned char)k[j] > 0x20 && (unsigned char)k[j] < 0x7f;
        if (!printable) {
            say(why, cap, "line %d: a key is printable ASCII without spaces", line);
            rc = SB_EINVAL;
            break;
        }
        if (s->n == SB_SECRET_MAX_KEYS) {
            say(why, cap, "line %d: more than %d keys", line, SB_SECRET_MAX_KEYS);
            rc = SB_EINVAL;
            break;
        }
        unsigned char(*d)[DIGEST] = realloc(s->digests, (s->n + 1) * DIGEST);
        if (d == NULL) {
            rc = SB_ENOMEM;
            break;
        }
        s->digests = d;
        digest(k, n, s->digests[s->n]);
        s->n++;
        if (s->first == NULL) {
            if ((s->first = malloc(n + 1)) == NULL) {
                rc = SB_ENOMEM;
                break;
            }
            memcpy(s->first, k, n);
            s->first[n] = '\0';
            s->first_len = n;
        }
    }
    if (rc == SB_OK && s->n == 0) {
        say(why, cap, "no key in the file");
        rc = SB_EINVAL;
    }
    if (rc != SB_OK) {
        sb_secret_destroy(s);
        return rc;
    }
    *out = s;
    return SB_OK;
}

static void id_of(const struct stat *st, struct file_id *id)
{
    memset(id, 0, sizeof(*id));
    id->dev = st->st_dev;
    id->ino = st->st_ino;
    id->size = st->st_size;
    id->mtime = st->st_mtim;
    id->ctime = st->st_ctim;
}

static bool id_equal(const struct file_id *a, const struct file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* Reads and parses the file; *id is the version read. */
static enum sb_err read_file(const char *path, size_t min_len, struct sb_secret **out,
                             struct file_id *id, mode_t *mode, char *why, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(why, cap, "%s: cannot open: %s", path, strerror(errno));
        return SB_EIO;
    }
    enum sb_err rc = SB_OK;
    char *buf = NULL;
    size_t got = 0;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, cap, "%s: not a regular file", path);
        rc = SB_EIO;
        goto out;
    }
    if (st.st_size > SB_SECRET_MAX_FILE) {
        snprintf(why, cap, "%s: larger than %d bytes", path, SB_SECRET_MAX_FILE);
        rc = SB_EINVAL;
        goto out;
    }
    id_of(&st, id);
    *mode = st.st_mode;
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        rc = SB_ENOMEM;
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size + 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(why, cap, "%s: cannot read: %s", path, strerror(errno));
            rc = SB_EIO;
            goto out;
        }
        if (r == 0)
            break;
        got += (size_t)r;
        if (got > (size_t)st.st_size) {
            /* Growing while we read: a writer is at work; the next check sees the end. */
            snprintf(why, cap, "%s: changed while it was read", path);
            rc = SB_EAGAIN;
            goto out;
        }
    }
    char detail[160];
    rc = sb_secret_parse(buf, got, min_len, out, detail, sizeof(detail));
    if (rc == SB_EINVAL)
        snprintf(why, cap, "%s: %s", path, detail);
out:
    if (buf != NULL) {
        OPENSSL_cleanse(buf, (size_t)st.st_size + 1);
        free(buf);
    }
    close(fd);
    return rc;
}

enum sb_err sb_secret_load(const char *path, const char *option, size_t min_len,
                           struct sb_secret **out, char *why, size_t cap)
{
    char tmp[1];
    if (why == NULL || cap == 0) {
        why = tmp;
        cap = sizeof(tmp);
    }
    why[0] = '\0';
    struct sb_secret *s = NULL;
    struct file_id id;
    mode_t mode = 0;
    enum sb_err rc = read_file(path, min_len, &s, &id, &mode, why, cap);
    if (rc != SB_OK)
        return rc == SB_EAGAIN ? SB_EIO : rc;
    s->path = strdup(path);
    s->option = strdup(option != NULL ? option : "secret");
    if (s->path == NULL || s->option == NULL) {
        sb_secret_destroy(s);
        return SB_ENOMEM;
    }
    s->seen = id;
    if (mode & (S_IRWXG | S_IRWXO))
        SB_LOG_WARN("secret", "key file is readable by other users: chmod 600 it",
                    "option=%s "
                    "path=\"%s\" mode=%04o",
                    s->option, path, (unsigned)(mode & 07777));
    *out = s;
    return SB_OK;
}

int sb_secret_refresh(struct sb_secret *s, int64_t mono_ms)
{
    if (s == NULL || s->path == NULL)
        return 0;
    if (s->checked_at != 0 && mono_ms - s->checked_at < SB_SECRET_CHECK_MS)
        return 0;
    s->checked_at = mono_ms != 0 ? mono_ms : 1;
    struct stat st;
    struct file_id now;
    char why[256];
    if (stat(s->path, &st) != 0) {
        memset(&now, 0, sizeof(now));
        snprintf(why, sizeof(why), "%s: %s", s->path, strerror(errno));
    } else {
        id_of(&st, &now);
        if (id_equal(&now, &s->seen))
            return 0;
        why[0] = '\0';
    }
    if (s->have_failed && id_equal(&now, &s->failed))
        return -1; /* still the version that failed: warned already */
    struct sb_secret *fresh = NULL;
    struct file_id id = now;
    mode_t mode = 0;
    enum sb_err rc = why[0] != '\0'
                         ? SB_EIO
                         : read_file(s->path, s->min_len, &fresh, &id, &mode, why, sizeof(why));
    if (rc != SB_OK) {
        if (rc == SB_EAGAIN)
            return -1; /* mid-write: look again next time, without a warning */
        s->failed = now;
        s->have_failed = true;
        SB_LOG_WARN("secret", "key file re-read failed: keeping the previous keys",
                    "option=%s reason=\"%s\" keys=%zu", s->option, why, s->n);
        return -1;
    }
    free_keys(s);
    s->digests = fresh->digests;
    s->n = fresh->n;
    s->first = fresh->first;
    s->first_len = fresh->first_len;
    fresh->digests = NULL;
    fresh->first = NULL;
    fresh->n = 0;
    sb_secret_destroy(fresh);
    s->seen = id;
    s->have_failed = false;
    SB_LOG_INFO("secret", "key file reloaded", "option=%s path=\"%s\" keys=%zu", s->option, s->path,
                s->n);
    return 1;
}

bool sb_secret_match(const struct sb_secret *s, const void *cred, size_t len)
{
    if (s == NULL || cred == NULL)
        return false;
    unsigned char d[DIGEST];
    digest(cred, len, d);
    int hit = 0;
    for (size_t i = 0; i < s->n; i++)
        hit |= CRYPTO_memcmp(d, s->digests[i], DIGEST) == 0;
    OPENSSL_cleanse(d, sizeof(d));
    return hit != 0;
}

bool sb_secret_bearer(const char *value, size_t len, const char **tok, size_t *tok_len)
{
    if (value == NULL || len < 7 || strncasecmp(value, "bearer", 6) != 0 || value[6] != ' ')
        return false;
    size_t i = 7;
    while (i < len && value[i] == ' ')
        i++;
    size_t end = len;
    while (end > i && is_space(value[end - 1]))
        end--;
    if (end == i)
        return false;
    *tok = value + i;
    *tok_len = end - i;
    return true;
}

const char *sb_secret_first(const struct sb_secret *s, size_t *len)
{
    if (len != NULL)
        *len = s->first_len;
    return s->first;
}

size_t sb_secret_count(const struct sb_secret *s)
{
    return s != NULL ? s->n : 0;
}

void sb_secret_destroy(struct sb_secret *s)
{
    if (s == NULL)
        return;
    free_keys(s);
    free(s->path);
    free(s->option);
    free(s);
}
