/* Per-node outgoing queue. Items are encoded once and appended; a batch is a prefix of whole
 * items, found by walking the (tag, varint length) headers. */
#include "cp_node.h"

#include "cp_grants.h"

#include <stdlib.h>
#include <string.h>

#include "sb_batch.h"

void cp_node_init(struct cp_node *n, size_t limit)
{
    memset(n, 0, sizeof(*n));
    cp_buf_init(&n->out);
    n->out_limit = limit;
}

void cp_node_fini(struct cp_node *n)
{
    cp_buf_fini(&n->out);
    cp_grants_clear(&n->grants);
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

/* Appends the item's header and its encoding at the end of `b`; false on ENOMEM. */
static bool put_item(struct cp_buf *b, const Switchboard__Internal__V1__ControlItem *item,
                     size_t len)
{
    uint8_t hdr[SB_BATCH_HEADER_MAX];
    cp_buf_append(b, hdr, sb_batch_header_put(hdr, len));
    uint8_t *dst = cp_buf_extend(b, len);
    if (dst == NULL)
        return false;
    protobuf_c_message_pack(&item->base, dst);
    return true;
}

void cp_node_encode_item(struct cp_buf *b, const Switchboard__Internal__V1__ControlItem *item)
{
    put_item(b, item, protobuf_c_message_get_packed_size(&item->base));
}

enum sb_err cp_node_queue(struct cp_node *n, const Switchboard__Internal__V1__ControlItem *item)
{
    /* Encoded in place at the end of the queue (no temporary copy). */
    if (n->overflowed)
        return SB_EFULL;
    size_t len = protobuf_c_message_get_packed_size(&item->base);
    size_t total = sb_batch_header_len(len) + len;
    if (n->out.len + total > n->out_limit) {
        n->overflowed = true;
        if (n->kill != NULL)
            n->kill(n, "outgoing queue overflow (slow or stuck data plane)");
        return SB_EFULL;
    }
    if (!put_item(&n->out, item, len) || n->out.failed) {
        n->overflowed = true;
        if (n->kill != NULL)
            n->kill(n, "out of memory queueing for the data plane");
        return SB_ENOMEM;
    }
    return SB_OK;
}

size_t cp_node_batch_len(const struct cp_node *n, size_t max)
{
    return sb_batch_prefix_len((const uint8_t *)n->out.data, n->out.len, max);
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
