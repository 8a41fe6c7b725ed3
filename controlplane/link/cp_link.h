/* NodeLink server: one bidi stream per data-plane node (docs/nodelink.md). Items of a stream
 * are processed strictly in order (the next waits for an asynchronous Store answer), answers
 * and deliveries are queued per stream and sent as ControlBatch messages, one in flight.
 * Thread: the completion-queue thread. */
#ifndef CP_LINK_H
#define CP_LINK_H

#include <grpc/grpc.h>

#include "cp_ctx.h"

/* Takes a new call on /switchboard.internal.v1.NodeLink/Link and starts serving it. */
void cp_link_accept(struct cp_ctx *c, grpc_completion_queue *cq, grpc_call *call);

/* Sends what `n` has queued if nothing is in flight (called for each dirty node). */
void cp_link_flush(struct cp_node *n);

/* Periodic checks at monotonic `mono_ms`: streams silent for 3 heartbeat intervals are
 * cancelled. */
void cp_link_tick(struct cp_ctx *c, int64_t mono_ms);

/* Server stopping: ends every stream with UNAVAILABLE so data planes fail over. */
void cp_link_stop_all(struct cp_ctx *c);

/* After the completion queue is drained: frees streams whose events can no longer come. */
void cp_link_free_all(struct cp_ctx *c);

#endif
