/* SSE rendering and stream positions. No I/O: unit-tested and fuzzed (fuzz_dp_sse_id). */
#include "dp_sse_fmt.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* Fast path: control-plane frames start with {"type":"<lower-case word>". */
static size_t quick_type(const char *json, size_t len, const char **type)
{
    static const char pfx[] = "{\"type\":\"";
    size_t pl = sizeof(pfx) - 1;
    if (len <= pl || memcmp(json, pfx, pl) != 0)
        return 0;
    size_t i = pl;
    while (i < len && i - pl < 32 && ((json[i] >= 'a' && json[i] <= 'z') || json[i] == '_'))
        i++;
    if (i >= len || json[i] != '"' || i == pl)
        return 0;
    *type = json + pl;
    return i - pl;
}

static bool event_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

enum sb_err dp_sse_fmt_event(const char *json, size_t len, char **out, size_t *out_len)
{
    char tbuf[33];
    const char *type = NULL;
    size_t tlen = quick_type(json, len, &type);
    if (tlen == 0) {
        /* Slow path: any other layout; fall back to "message" for anything odd. */
        json_t *root = json_loadb(json, len, 0, NULL);
        const char *t = root != NULL ? json_string_value(json_object_get(root, "type")) : NULL;
        size_t n = 0;
        if (t != NULL) {
            while (t[n] != '\0' && n < 32 && event_char(t[n]))
                n++;
            if (t[n] != '\0')
                n = 0;
        }
        if (n > 0) {
            memcpy(tbuf, t, n);
        } else {
            n = 7;
            memcpy(tbuf, "message", 7);
        }
        json_decref(root);
        type = tbuf;
        tlen = n;
    }
    size_t breaks = 0;
    for (size_t i = 0; i < len; i++)
        if (json[i] == '\n' || json[i] == '\r')
            breaks++;
    /* "event: " T "\n" + ("data: " ... "\n") per line + "\n" */
    size_t cap = 7 + tlen + 1 + (breaks + 1) * 7 + len + 2;
    char *s = malloc(cap + 1);
    if (s == NULL)
        return SB_ENOMEM;
    size_t o = 0;
    memcpy(s + o, "event: ", 7);
    o += 7;
    memcpy(s + o, type, tlen);
    o += tlen;
    s[o++] = '\n';
    memcpy(s + o, "data: ", 6);
    o += 6;
    for (size_t i = 0; i < len; i++) {
        char c = json[i];
        if (c == '\r' || c == '\n') {
            if (c == '\r' && i + 1 < len && json[i + 1] == '\n')
                i++;
            memcpy(s + o, "\ndata: ", 7);
            o += 7;
        } else {
            s[o++] = c;
        }
    }
    s[o++] = '\n';
    s[o++] = '\n';
    s[o] = '\0';
    *out = s;
    *out_len = o;
    return SB_OK;
}

static struct dp_sse_pos_entry *find(const struct dp_sse_pos *pos, const char *room_id)
{
    for (size_t i = 0; i < pos->n; i++)
        if (strcmp(pos->v[i].room_id, room_id) == 0)
            return &pos->v[i];
    return NULL;
}

enum sb_err dp_sse_fmt_pos_set(struct dp_sse_pos *pos, const char *room_id, int64_t seq)
{
    if (!sb_ident_is_valid(room_id) || seq < 0)
        return SB_EINVAL;
    struct dp_sse_pos_entry *e = find(pos, room_id);
    if (e != NULL) {
        if (seq > e->seq)
            e->seq = seq;
        return SB_OK;
    }
    if (pos->n >= DP_SSE_POS_MAX)
        return SB_EFULL;
    if (pos->n == pos->cap) {
        size_t cap = pos->cap ? pos->cap * 2 : 4;
        struct dp_sse_pos_entry *v = realloc(pos->v, cap * sizeof(*v));
        if (v == NULL)
            return SB_ENOMEM;
        pos->v = v;
        pos->cap = cap;
    }
    e = &pos->v[pos->n++];
    strcpy(e->room_id, room_id);
    e->seq = seq;
    return SB_OK;
}

int64_t dp_sse_fmt_pos_get(const struct dp_sse_pos *pos, const char *room_id)
{
    const struct dp_sse_pos_entry *e = find(pos, room_id);
    return e != NULL ? e->seq : -1;
}

size_t dp_sse_fmt_pos_encode(const struct dp_sse_pos *pos, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return 0;
    if (pos->n == 0) {
        if (cap < sizeof(DP_SSE_POS_EMPTY))
            return 0;
        memcpy(out, DP_SSE_POS_EMPTY, sizeof(DP_SSE_POS_EMPTY));
        return sizeof(DP_SSE_POS_EMPTY) - 1;
    }
    for (size_t i = 0; i < pos->n; i++) {
        char num[24];
        int nl = snprintf(num, sizeof(num), "%lld", (long long)pos->v[i].seq);
        size_t rl = strlen(pos->v[i].room_id);
        size_t need = (i > 0) + rl + 1 + (size_t)nl;
        if (o + need + 1 > cap) {
            out[0] = '\0';
            return 0;
        }
        if (i > 0)
            out[o++] = ',';
        memcpy(out + o, pos->v[i].room_id, rl);
        o += rl;
        out[o++] = ':';
        memcpy(out + o, num, (size_t)nl);
        o += (size_t)nl;
    }
    out[o] = '\0';
    return o;
}

static enum sb_err parse_entry(const char *s, size_t len, struct dp_sse_pos *pos)
{
    size_t colon = len;
    for (size_t i = len; i > 0; i--) {
        if (s[i - 1] == ':') {
            colon = i - 1;
            break;
        }
    }
    if (colon == len || colon == 0 || colon > SB_IDENT_MAX || colon + 1 == len)
        return SB_EINVAL;
    size_t dl = len - colon - 1;
    if (dl > 19)
        return SB_EINVAL;
    int64_t seq = 0;
    for (size_t i = colon + 1; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return SB_EINVAL;
        int d = s[i] - '0';
        if (seq > (INT64_MAX - d) / 10)
            return SB_EINVAL;
        seq = seq * 10 + d;
    }
    char room[SB_IDENT_MAX + 1];
    memcpy(room, s, colon);
    room[colon] = '\0';
    return dp_sse_fmt_pos_set(pos, room, seq);
}

enum sb_err dp_sse_fmt_pos_parse(const char *s, size_t len, struct dp_sse_pos *pos)
{
    pos->n = 0;
    if (s == NULL || len == 0)
        return SB_EINVAL;
    if (len == sizeof(DP_SSE_POS_EMPTY) - 1 && memcmp(s, DP_SSE_POS_EMPTY, len) == 0)
        return SB_OK;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != ',')
            continue;
        enum sb_err err = parse_entry(s + start, i - start, pos);
        if (err != SB_OK) {
            pos->n = 0;
            return err;
        }
        start = i + 1;
    }
    return SB_OK;
}

void dp_sse_fmt_pos_fini(struct dp_sse_pos *pos)
{
    free(pos->v);
    pos->v = NULL;
    pos->n = pos->cap = 0;
}
