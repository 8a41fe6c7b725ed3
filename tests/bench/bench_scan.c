/* Key scanning over server frames. A key is matched as `"key"` followed by optional blanks and a
 * colon, so a string value equal to the key name is not mistaken for it. */
#include "bench_scan.h"

#include <string.h>

static const char *skip_blanks(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

const char *bench_scan_value(const char *buf, size_t len, const char *key)
{
    char pat[40];
    size_t klen = strlen(key);
    if (klen + 2 >= sizeof(pat))
        return NULL;
    pat[0] = '"';
    memcpy(pat + 1, key, klen);
    pat[klen + 1] = '"';
    size_t plen = klen + 2;
    const char *end = buf + len;
    const char *p = buf;
    while (p < end) {
        /* memchr + memcmp rather than memmem: memmem's set-up per call was the load client's
         * largest cost (16% of its samples at 10,000 connections, three scans per frame) */
        const char *hit = memchr(p, '"', (size_t)(end - p));
        if (!hit || (size_t)(end - hit) < plen)
            return NULL;
        /* most quotes in a frame start other keys or strings: two byte checks reject them */
        if (hit[1] != pat[1] || hit[plen - 1] != '"' || memcmp(hit, pat, plen) != 0) {
            p = hit + 1;
            continue;
        }
        const char *q = skip_blanks(hit + plen, end);
        if (q < end && *q == ':') {
            q = skip_blanks(q + 1, end);
            return q < end ? q : NULL;
        }
        p = hit + 1;
    }
    return NULL;
}

size_t bench_scan_keys(const char *buf, size_t len, const char *const *keys, size_t n,
                       const char **vals)
{
    size_t found = 0, klen[BENCH_SCAN_KEYS_MAX];
    if (n > BENCH_SCAN_KEYS_MAX)
        n = BENCH_SCAN_KEYS_MAX;
    for (size_t k = 0; k < n; k++) {
        vals[k] = NULL;
        klen[k] = strlen(keys[k]);
    }
    const char *end = buf + len, *p = buf;
    while (found < n && p < end) {
        const char *open = memchr(p, '"', (size_t)(end - p));
        if (!open)
            break;
        const char *close = memchr(open + 1, '"', (size_t)(end - open - 1));
        if (!close)
            break;
        const char *q = skip_blanks(close + 1, end);
        if (q >= end || *q != ':') { /* a string value: skipped whole */
            p = close + 1;
            continue;
        }
        size_t tl = (size_t)(close - open - 1);
        const char *v = skip_blanks(q + 1, end);
        for (size_t k = 0; k < n; k++) {
            if (vals[k] == NULL && klen[k] == tl && memcmp(open + 1, keys[k], tl) == 0) {
                if (v < end) {
                    vals[k] = v;
                    found++;
                }
                break;
            }
        }
        p = v;
    }
    return found;
}

int bench_scan_i64(const char *buf, size_t len, const char *key, int64_t *out)
{
    const char *p = bench_scan_value(buf, len, key);
    return p ? bench_parse_i64(p, buf + len, out) : -1;
}

int bench_parse_i64(const char *p, const char *end, int64_t *out)
{
    if (!p || p >= end)
        return -1;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end || *p < '0' || *p > '9')
        return -1;
    uint64_t v = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (++digits > 19)
            return -1;
        v = v * 10u + (uint64_t)(*p - '0');
        p++;
    }
    if (v > (uint64_t)INT64_MAX)
        return -1;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

int bench_scan_str(const char *buf, size_t len, const char *key, char *out, size_t cap)
{
    const char *end = buf + len;
    const char *p = bench_scan_value(buf, len, key);
    if (!p || *p != '"')
        return -1;
    p++;
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (!q || (size_t)(q - p) + 1 > cap)
        return -1;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = '\0';
    return 0;
}

enum bench_frame bench_scan_type(const char *buf, size_t len)
{
    char t[16];
    if (bench_scan_str(buf, len, "type", t, sizeof(t)) != 0)
        return BENCH_FRAME_OTHER;
    if (strcmp(t, "message") == 0)
        return BENCH_FRAME_MESSAGE;
    if (strcmp(t, "ack") == 0)
        return BENCH_FRAME_ACK;
    if (strcmp(t, "connected") == 0)
        return BENCH_FRAME_CONNECTED;
    if (strcmp(t, "error") == 0)
        return BENCH_FRAME_ERROR;
    if (strcmp(t, "join") == 0)
        return BENCH_FRAME_JOIN;
    if (strcmp(t, "presence") == 0)
        return BENCH_FRAME_PRESENCE;
    return BENCH_FRAME_OTHER;
}

enum bench_nats_op bench_nats_next(const char *buf, size_t len, size_t max_payload, size_t *used,
                                   const char **data, size_t *data_len)
{
    *used = 0;
    *data = NULL;
    *data_len = 0;
    const char *nl = memchr(buf, '\n', len);
    if (!nl)
        return BENCH_NATS_MORE;
    size_t ll = (size_t)(nl - buf); /* line without \n */
    size_t l = ll && buf[ll - 1] == '\r' ? ll - 1 : ll;
    if (l > 4 && memcmp(buf, "MSG ", 4) == 0) {
        const char *q = buf + l; /* the size is the last field */
        while (q > buf + 4 && q[-1] != ' ')
            q--;
        if (q == buf + l) {
            *used = len;
            return BENCH_NATS_BAD;
        }
        size_t n = 0;
        for (const char *d = q; d < buf + l; d++) {
            if (*d < '0' || *d > '9' || n > max_payload) {
                *used = len;
                return BENCH_NATS_BAD;
            }
            n = n * 10 + (size_t)(*d - '0');
        }
        if (n > max_payload) {
            *used = len;
            return BENCH_NATS_BAD;
        }
        if (len - (ll + 1) < n + 2)
            return BENCH_NATS_MORE; /* the payload (and its \r\n) has not all arrived */
        *data = nl + 1;
        *data_len = n;
        *used = ll + 1 + n + 2;
        return BENCH_NATS_MSG;
    }
    *used = ll + 1;
    *data = buf;
    *data_len = l;
    if (l == 4 && memcmp(buf, "PING", 4) == 0)
        return BENCH_NATS_PING;
    if (l == 4 && memcmp(buf, "PONG", 4) == 0)
        return BENCH_NATS_PONG;
    if (l >= 4 && memcmp(buf, "INFO", 4) == 0)
        return BENCH_NATS_INFO;
    if (l == 3 && memcmp(buf, "+OK", 3) == 0)
        return BENCH_NATS_OK;
    if (l >= 4 && memcmp(buf, "-ERR", 4) == 0)
        return BENCH_NATS_ERR;
    return BENCH_NATS_OTHER;
}

enum bench_ws_res bench_ws_parse(const unsigned char *buf, size_t len, size_t max_payload,
                                 struct bench_ws_frame *f)
{
    if (len < 2)
        return BENCH_WS_MORE;
    uint8_t b0 = buf[0], b1 = buf[1];
    if (b0 & 0x70u) /* RSV1-3: no extension was negotiated */
        return BENCH_WS_BAD;
    if (b1 & 0x80u) /* a server must not mask */
        return BENCH_WS_BAD;
    uint8_t opcode = b0 & 0x0fu;
    size_t hl = 2;
    uint64_t pl = b1 & 0x7fu;
    if (pl == 126) {
        if (len < 4)
            return BENCH_WS_MORE;
        pl = ((uint64_t)buf[2] << 8) | buf[3];
        hl = 4;
    } else if (pl == 127) {
        if (len < 10)
            return BENCH_WS_MORE;
        pl = 0;
        for (int i = 0; i < 8; i++)
            pl = (pl << 8) | buf[2 + i];
        if (pl >> 63)
            return BENCH_WS_BAD;
        hl = 10;
    }
    if (opcode & 0x8u) { /* control frames: short and never fragmented */
        if (pl > 125 || !(b0 & 0x80u))
            return BENCH_WS_BAD;
    }
    if (pl > max_payload)
        return BENCH_WS_BAD;
    if (len - hl < pl)
        return BENCH_WS_MORE;
    f->opcode = opcode;
    f->fin = (b0 & 0x80u) ? 1 : 0;
    f->payload = buf + hl;
    f->payload_len = (size_t)pl;
    f->frame_len = hl + (size_t)pl;
    return BENCH_WS_FRAME;
}

size_t bench_ws_client_frame(unsigned char *out, size_t cap, uint8_t opcode, const void *payload,
                             size_t len, const unsigned char mask[4])
{
    size_t hl = len < 126 ? 2 : len <= 0xffff ? 4 : 10;
    if (cap < hl + 4 || cap - hl - 4 < len)
        return 0;
    out[0] = (unsigned char)(0x80u | (opcode & 0x0fu));
    if (len < 126) {
        out[1] = (unsigned char)(0x80u | len);
    } else if (len <= 0xffff) {
        out[1] = 0x80u | 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
    } else {
        out[1] = 0x80u | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (unsigned char)((uint64_t)len >> (8 * (7 - i)));
    }
    memcpy(out + hl, mask, 4);
    const unsigned char *p = payload;
    unsigned char *d = out + hl + 4;
    for (size_t i = 0; i < len; i++)
        d[i] = p[i] ^ mask[i & 3];
    return hl + 4 + len;
}
