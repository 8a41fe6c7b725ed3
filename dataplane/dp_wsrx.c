/* WebSocket message reassembly (see dp_wsrx.h). Every size test is written as a comparison
 * against what is left under the limit, so no operand can wrap or turn negative whatever a
 * frame header declares. */
#include "dp_wsrx.h"

#include <stdlib.h>
#include <string.h>

static void drop_buffer(struct dp_wsrx *rx)
{
    free(rx->buf);
    rx->buf = NULL;
    rx->len = 0;
    rx->cap = 0;
}

/* Returns true when `have` + `more` exceeds `limit`, for any values. */
static bool over(uint64_t have, uint64_t more, uint64_t limit)
{
    return have > limit || more > limit - have;
}

static bool append(struct dp_wsrx *rx, const char *data, size_t len, uint64_t max_size)
{
    if (len > rx->cap - rx->len) {
        /* the message is known to fit max_size: the buffer never grows past it */
        size_t need = rx->len + len;
        size_t cap = rx->cap ? rx->cap : 1024;
        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        if ((uint64_t)cap > max_size && need <= max_size)
            cap = (size_t)max_size;
        char *b = realloc(rx->buf, cap);
        if (b == NULL)
            return false;
        rx->buf = b;
        rx->cap = cap;
    }
    memcpy(rx->buf + rx->len, data, len);
    rx->len += len;
    return true;
}

enum dp_wsrx_verdict dp_wsrx_feed(struct dp_wsrx *rx, uint64_t max_size, uint64_t hard_limit,
                                  const struct dp_wsrx_chunk *c, const char **msg, size_t *msg_len)
{
    if (rx->closed)
        return DP_WSRX_CLOSE;
    if (max_size > hard_limit)
        max_size = hard_limit;
    if (!rx->in_message) {
        rx->in_message = true;
        rx->total = 0;
        rx->binary = c->binary;
        rx->discard = c->binary;
        rx->len = 0;
    }
    if (over(rx->total, c->len, hard_limit) || over(rx->total + c->len, c->remaining, hard_limit)) {
        rx->closed = true;
        rx->in_message = false;
        drop_buffer(rx);
        return DP_WSRX_CLOSE;
    }
    rx->total += c->len;
    /* received + announced, both within hard_limit now: no overflow */
    if (!rx->discard && rx->total + c->remaining > max_size) {
        rx->discard = true;
        drop_buffer(rx);
    }
    bool whole = c->final && rx->len == 0 && rx->total == c->len;
    if (!rx->discard && !whole && c->len > 0 && !append(rx, c->data, c->len, max_size)) {
        rx->closed = true;
        rx->in_message = false;
        drop_buffer(rx);
        return DP_WSRX_ENOMEM;
    }
    if (!c->final)
        return DP_WSRX_MORE;
    rx->in_message = false;
    if (rx->binary) {
        *msg_len = (size_t)rx->total;
        return DP_WSRX_BINARY;
    }
    if (rx->discard) {
        *msg_len = (size_t)rx->total;
        return DP_WSRX_TOO_LARGE;
    }
    if (whole) {
        *msg = c->data != NULL ? c->data : "";
        *msg_len = c->len;
    } else {
        *msg = rx->buf != NULL ? rx->buf : "";
        *msg_len = rx->len;
    }
    return DP_WSRX_MESSAGE;
}

void dp_wsrx_release(struct dp_wsrx *rx)
{
    drop_buffer(rx);
}

void dp_wsrx_fini(struct dp_wsrx *rx)
{
    drop_buffer(rx);
    *rx = (struct dp_wsrx){0};
}
