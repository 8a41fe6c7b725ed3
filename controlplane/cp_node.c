/* Per-node outgoing queue. Items are encoded once and appended; a batch is a prefix of whole
 * items, found by walking the (tag, varint length) headers. */
#include "cp_node.h"

#include <stdlib.h>
#include <string.h>

void cp_node_init(struct cp_node *n, size_t limit)
{
    memset(n, 0, sizeof(*n));
    cp_buf_init(&n->out);
    n->out_limit = limit;
}

void cp_node_fini(struct cp_node *n)
{
    cp_buf_fini(&n->out);
    free(n->id);
    free(n->address);
    free(n->version);
    n->id = n->address = n->version = NULL;
}

enum sb_err cp_node_queue_raw(struct cp_node *n, const void *encoded, size_t len)
{
    if (n->overflowed)
        return SB_EFULL;
    if (n->out.len + len > n->out_limit) {
        n->overflowed = true;
        if (n->kill != NULL)
            n->kill(n, "outgoing queue overflow (slow or stuck data plane)");
        return SB_EFULL;
    }
    cp_buf_append(&n->out, encoded, len);
    if (n->out.failed) {
        /* Losing an item silently would break ordering guarantees: treat as overflow. */
        n->overflowed = true;
        if (n->kill != NULL)
            n->kill(n, "out of memory queueing for the data plane");
        return SB_ENOMEM;
    }
    return SB_OK;
}

static size_t cp_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

void cp_node_encode_item(struct cp_buf *b, const Switchboard__Internal__V1__ControlItem *item)
{
    size_t len = protobuf_c_message_get_packed_size(&item->base);
    cp_buf_putc(b, 0x0a); /* field 1 (items), wire type 2 */
    cp_buf_varint(b, len);
    uint8_t *dst = cp_buf_extend(b, len);
    if (dst != NULL)
        protobuf_c_message_pack(&item->base, dst);
}

enum sb_err cp_node_queue(struct cp_node *n, const Switchboard__Internal__V1__ControlItem *item)
{
    /* Encoded in place at the end of the queue (no temporary copy). */
    if (n->overflowed)
        return SB_EFULL;
    size_t len = protobuf_c_message_get_packed_size(&item->base);
    size_t total = 1 + cp_varint_len(len) + len;
    if (n->out.len + total > n->out_limit) {
        n->overflowed = true;
        if (n->kill != NULL)
            n->kill(n, "outgoing queue overflow (slow or stuck data plane)");
        return SB_EFULL;
    }
    cp_buf_putc(&n->out, 0x0a); /* field 1 (items), wire type 2 */
    cp_buf_varint(&n->out, len);
    uint8_t *dst = cp_buf_extend(&n->out, len);
    if (dst == NULL) {
        n->overflowed = true;
        if (n->kill != NULL)
            n->kill(n, "out of memory queueing for the data plane");
        return SB_ENOMEM;
    }
    protobuf_c_message_pack(&item->base, dst);
    return SB_OK;
}

/* Reads the header at `p`; returns the header length and sets *body, or 0 if malformed. */
static size_t header(const uint8_t *p, size_t avail, uint64_t *body)
{
    if (avail < 2 || p[0] != 0x0a)
        return 0;
    uint64_t v = 0;
    for (size_t i = 1; i < avail && i < 11; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * (i - 1));
        if ((p[i] & 0x80) == 0) {
            *body = v;
            return i + 1;
        }
    }
    return 0;
}

size_t cp_node_batch_len(const struct cp_node *n, size_t max)
{
    const uint8_t *p = (const uint8_t *)n->out.data;
    size_t total = n->out.len, at = 0;
    while (at < total) {
        uint64_t body;
        size_t h = header(p + at, total - at, &body);
        if (h == 0 || body > total - at - h)
            return total; /* cannot happen: we wrote it; send all rather than stall */
        size_t next = at + h + (size_t)body;
        if (next > max && at > 0)
            break;
        at = next;
        if (at >= max)
            break;
    }
    return at;
}

void cp_node_consume(struct cp_node *n, size_t len)
{
    if (len >= n->out.len) {
        cp_buf_reset(&n->out);
        return;
    }
    memmove(n->out.data, n->out.data + len, n->out.len - len);
    n->out.len -= len;
    n->out.data[n->out.len] = '\0';
}
