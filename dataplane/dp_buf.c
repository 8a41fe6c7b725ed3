/* Shared outgoing frames: one allocation per frame, the WebSocket header written once into the
 * headroom so every receiver's write is a plain copy of ws[0..ws_len). */
#include "dp_buf.h"

#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "dp_sse_fmt.h"

_Static_assert(DP_BUF_PRE >= LWS_PRE, "DP_BUF_PRE must cover LWS_PRE");
_Static_assert(DP_BUF_PRE >= 10, "DP_BUF_PRE must hold a WebSocket header");

size_t dp_buf_ws_header(size_t len, unsigned char hdr[10])
{
    hdr[0] = 0x81; /* FIN + text */
    if (len < 126) {
        hdr[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xffff) {
        hdr[1] = 126;
        hdr[2] = (unsigned char)(len >> 8);
        hdr[3] = (unsigned char)len;
        return 4;
    }
    hdr[1] = 127;
    uint64_t l = (uint64_t)len;
    for (int i = 0; i < 8; i++)
        hdr[2 + i] = (unsigned char)(l >> (56 - 8 * i));
    return 10;
}

struct dp_buf *dp_buf_create(const char *json, size_t len, const char *room_id, int64_t seq)
{
    if (len > SIZE_MAX - sizeof(struct dp_buf) - DP_BUF_PRE - 1)
        return NULL;
    struct dp_buf *b = malloc(sizeof(*b) + DP_BUF_PRE + len + 1);
    if (b == NULL)
        return NULL;
    memset(b, 0, sizeof(*b));
    b->refs = 1;
    b->len = len;
    b->json = (char *)b->mem + DP_BUF_PRE;
    if (len > 0)
        memcpy(b->json, json, len);
    b->json[len] = '\0';
    unsigned char hdr[10];
    size_t hl = dp_buf_ws_header(len, hdr);
    b->ws = b->mem + DP_BUF_PRE - hl;
    memcpy(b->ws, hdr, hl);
    b->ws_len = hl + len;
    b->seq = seq;
    if (room_id != NULL) {
        b->room_id = strdup(room_id);
        if (b->room_id == NULL) {
            free(b);
            return NULL;
        }
    }
    return b;
}

struct dp_buf *dp_buf_ref(struct dp_buf *b)
{
    b->refs++;
    return b;
}

void dp_buf_unref(struct dp_buf *b)
{
    if (b == NULL || --b->refs > 0)
        return;
    free(b->sse);
    free(b->room_id);
    free(b);
}

enum sb_err dp_buf_sse(struct dp_buf *b, const char **out, size_t *out_len)
{
    if (b->sse == NULL) {
        char *s;
        size_t n;
        enum sb_err err = dp_sse_fmt_event(b->json, b->len, &s, &n);
        if (err != SB_OK)
            return err;
        b->sse = s;
        b->sse_len = n;
    }
    *out = b->sse;
    *out_len = b->sse_len;
    return SB_OK;
}
