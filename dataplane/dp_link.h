/* NodeLink client: one bidi gRPC stream to EVERY control-plane replica (docs/nodelink.md,
 * docs/distributed.md "Data-plane failover"). Heartbeats go on every stream, and items from
 * every stream are handed to the hub; ConnOpen, ConnClose and requests go to the primary only
 * (the first replica that welcomed the node, kept until its stream ends), which the node asks
 * to keep its lease alive with Adopt.
 * Threads: a pump thread sits in grpc_completion_queue_next (one queue for every channel) and
 * hands each completion to the lws thread through a locked list + lws_cancel_service(); a
 * resolver thread re-resolves DNS names of the list. Everything else (starting batches,
 * dispatching items, timers, redials, failover) runs on the lws thread. */
#ifndef DP_LINK_H
#define DP_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"
#include "sb_secret.h"
#include "switchboard/internal/v1/nodelink.pb-c.h"

struct lws_context;
struct dp_link;

struct dp_link_cbs {
    /* The primary adopted the node (Adopted arrived): requests can flow. `renewed`: the
     * control plane may know none of our connections (a new lease: first link or lease lost;
     * lease 0; or the same replica again after its stream ended), so re-send ConnOpen(resync)
     * for all of them. `gen` grows with every new primary. */
    void (*ready)(void *arg, bool renewed, uint64_t gen);
    /* No control plane is reachable any more: answer pending requests `unavailable`. */
    void (*down)(void *arg);
    /* One control item from any stream, in that stream's order (Welcome and Adopted are
     * handled by the link). */
    void (*item)(void *arg, const Switchboard__Internal__V1__ControlItem *item);
    /* Fills the heartbeat's counters. */
    void (*stats)(void *arg, int32_t *connections, int64_t *delivered);
};

struct dp_link_opts {
    const char *endpoints; /* "host:port[,host:port...]", names allowed (copied) */
    const char *node_id;   /* copied */
    const char *address;   /* where clients reach this node (copied) */
    size_t max_message_bytes;
    size_t max_queue_bytes;      /* per stream: outgoing items waiting */
    int64_t resolve_interval_ms; /* DNS names are re-resolved this often (0: 30 s) */
    int64_t adopt_timeout_ms;    /* no Adopted within this: drop that stream (0: 5 s) */
    /* --cluster-secret-file, or NULL: each new stream sends `authorization: Bearer <first
     * key>`. Borrowed until dp_link_destroy; the lws thread re-reads its file before a dial. */
    struct sb_secret *cluster_secret;
};

/* Returns a new link (not started) or NULL (bad endpoints, ENOMEM). lws thread, before the loop
 * runs. `cbs` are called on the lws thread from dp_link_service. */
struct dp_link *dp_link_create(struct lws_context *ctx, const struct dp_link_opts *opts,
                               const struct dp_link_cbs *cbs, void *arg);

/* Starts the pump and resolver threads and the first dials. SB_EIO if a thread cannot start. */
enum sb_err dp_link_start(struct dp_link *l);

/* Handles completions and resolver results handed over by the threads. Call on the lws thread
 * when the loop is woken (LWS_CALLBACK_EVENT_WAIT_CANCELLED); never blocks. */
void dp_link_service(struct dp_link *l);

/* True while at least one stream has a Welcome (/readyz). */
bool dp_link_is_up(const struct dp_link *l);

/* True when the primary has answered Adopt: dp_link_send works. */
bool dp_link_primary_ready(const struct dp_link *l);

/* The current primary's generation (0 before the first). */
uint64_t dp_link_primary_gen(const struct dp_link *l);

/* Returns a fresh request id (never 0), unique for the node's lifetime. */
uint64_t dp_link_next_id(struct dp_link *l);

/* Packs `item` into a new buffer (*out, *len; the caller frees it). SB_ENOMEM. Pure. */
enum sb_err dp_link_pack(const Switchboard__Internal__V1__NodeItem *item, unsigned char **out,
                         size_t *len);

/* Queues one item for the primary (packed at once; `item` stays the caller's) and starts a send
 * if none is in flight. SB_EUNAVAIL unless the primary is ready, SB_EFULL when its queue is
 * over its bound, SB_ENOMEM. lws thread. */
enum sb_err dp_link_send(struct dp_link *l, const Switchboard__Internal__V1__NodeItem *item);

/* Same with an item packed by dp_link_pack (borrowed). */
enum sb_err dp_link_send_packed(struct dp_link *l, const unsigned char *item, size_t len);

/* Counters for /metrics and logs. */
uint64_t dp_link_reconnects(const struct dp_link *l);
uint64_t dp_link_failovers(const struct dp_link *l);
int dp_link_streams_up(const struct dp_link *l);
/* The primary's address, or "" (borrowed, valid until the next dp_link_service). */
const char *dp_link_endpoint(const struct dp_link *l);

/* Cancels every stream, stops the threads, frees everything. lws thread, after the loop has
 * stopped. NULL is ignored. */
void dp_link_destroy(struct dp_link *l);

#endif
