/* One data-plane node as the control plane sees it: its id and a bounded queue of encoded
 * ControlItems waiting to go out on its NodeLink stream. The queue's bytes are a serialized
 * ControlBatch (each item is field 1, length-delimited), so sending is one copy-free slice.
 * Pure state: no gRPC here (cp_link owns the stream), so tests drive it without sockets.
 * Thread: the completion-queue thread only. */
#ifndef CP_NODE_H
#define CP_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_buf.h"
#include "sb_err.h"
#include "sb_map.h"
#include "switchboard/internal/v1/nodelink.pb-c.h"

struct cp_node;

/* Ends the node's stream (the link cancels it with UNAVAILABLE and `why`); events follow later
 * on the completion queue, never inside this call. Called once on queue overflow, and when a
 * new stream of the same node id replaces this one (silent for two heartbeat intervals). */
typedef void cp_node_kill_fn(struct cp_node *n, const char *why);

struct cp_node {
    char *id;          /* from Hello; NULL before it (owned) */
    char *address;     /* owned */
    char *version;     /* owned */
    bool room_ids;     /* Hello.features has "delivery_room_ids" */
    struct cp_buf out; /* encoded items not yet handed to gRPC */
    size_t out_limit;  /* bytes; overflow -> `overflowed` and kill */
    bool overflowed;   /* nothing is queued any more */
    bool dirty;        /* on the owner's flush list */
    struct cp_node *dirty_next;
    size_t n_conns;         /* connections this node hosts */
    int64_t last_heartbeat; /* Unix ms of the last Heartbeat */
    int64_t last_rx_mono;   /* monotonic ms of the last batch received */
    int64_t messages_delivered;
    uint64_t mark;   /* fan-out de-duplication stamp */
    bool registered; /* in cp_ctx.nodes under id */
    bool clean_end;  /* the node half-closed its stream (a clean shutdown) */
    cp_node_kill_fn *kill;
    void *owner;          /* the cp_link stream, or a test's pointer */
    struct sb_map grants; /* conn id -> struct cp_grants * (cp_grants.h), owned */
};

/* Initializes `n` with an empty queue bounded by `limit` bytes. */
void cp_node_init(struct cp_node *n, size_t limit);

/* Frees the queue, strings and grants (not `n`). */
void cp_node_fini(struct cp_node *n);

/* Appends one encoded item (as produced by cp_node_encode_item). Returns SB_EFULL when the
 * queue overflowed (now or before; the item is dropped and kill called once), SB_ENOMEM. */
enum sb_err cp_node_queue_raw(struct cp_node *n, const void *encoded, size_t len);

/* Encodes `item` and queues it (see cp_node_queue_raw). */
enum sb_err cp_node_queue(struct cp_node *n, const Switchboard__Internal__V1__ControlItem *item);

/* Appends `item` encoded as one ControlBatch entry (tag, length, bytes) to `b`. */
void cp_node_encode_item(struct cp_buf *b, const Switchboard__Internal__V1__ControlItem *item);

/* Length of the longest prefix of the queue that holds whole items and is at most `max` bytes
 * (at least one item, even when that item alone is larger). 0 when the queue is empty. */
size_t cp_node_batch_len(const struct cp_node *n, size_t max);

/* Drops the first `len` bytes of the queue (after they were handed to gRPC). */
void cp_node_consume(struct cp_node *n, size_t len);

#endif
