/* NodeLink client: one bidi gRPC stream to a control plane (docs/nodelink.md).
 * Threads: a pump thread sits in grpc_completion_queue_next and hands every completion to the
 * lws thread through a locked list + lws_cancel_service(); everything else (starting batches,
 * dispatching items, timers, reconnects) runs on the lws thread. */
#ifndef DP_LINK_H
#define DP_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"
#include "switchboard/internal/v1/nodelink.pb-c.h"

struct lws_context;
struct dp_link;

enum dp_link_state { DP_LINK_DOWN, DP_LINK_CONNECTING, DP_LINK_UP };

struct dp_link_cbs {
    /* Welcome received: the link is usable. */
    void (*up)(void *arg, const char *controlplane_id);
    /* The stream ended (after CONNECTING or UP): answer pending requests `unavailable`. */
    void (*down)(void *arg);
    /* One control item, in stream order (Welcome is handled by the link). */
    void (*item)(void *arg, const Switchboard__Internal__V1__ControlItem *item);
    /* Fills the heartbeat's counters. */
    void (*stats)(void *arg, int32_t *connections, int64_t *delivered);
};

struct dp_link_opts {
    const char *endpoints; /* "host:port[,host:port...]" (copied) */
    const char *node_id;   /* copied */
    const char *address;   /* where clients reach this node (copied) */
    size_t max_message_bytes;
    size_t max_queue_bytes; /* outgoing items waiting for the stream */
};

/* Returns a new link (not started) or NULL (bad endpoints, ENOMEM). lws thread, before the loop
 * runs. `cbs` are called on the lws thread from dp_link_service. */
struct dp_link *dp_link_create(struct lws_context *ctx, const struct dp_link_opts *opts,
                               const struct dp_link_cbs *cbs, void *arg);

/* Starts the pump thread and the first dial. SB_EIO if the thread cannot start. */
enum sb_err dp_link_start(struct dp_link *l);

/* Handles completions handed over by the pump thread. Call on the lws thread when the loop is
 * woken (LWS_CALLBACK_EVENT_WAIT_CANCELLED); never blocks. */
void dp_link_service(struct dp_link *l);

enum dp_link_state dp_link_state(const struct dp_link *l);

/* Returns a fresh request id (never 0). */
uint64_t dp_link_next_id(struct dp_link *l);

/* Queues one item for the stream (packed at once; `item` stays the caller's) and starts a send
 * if none is in flight. SB_EUNAVAIL unless UP (Hello excepted), SB_EFULL when the queue is over
 * its bound, SB_ENOMEM. lws thread. */
enum sb_err dp_link_send(struct dp_link *l, const Switchboard__Internal__V1__NodeItem *item);

/* Counters for /metrics. */
uint64_t dp_link_reconnects(const struct dp_link *l);
const char *dp_link_endpoint(const struct dp_link *l);

/* Cancels the stream, stops the pump thread, frees everything. lws thread, after the loop has
 * stopped. NULL is ignored. */
void dp_link_destroy(struct dp_link *l);

#endif
