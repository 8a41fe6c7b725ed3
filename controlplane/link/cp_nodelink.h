/* NodeLink items, decoded: what the control plane does for each item a data-plane node sends
 * (Hello, Heartbeat, ConnOpen, ConnClose, ClientRequest) and the answers it queues on that
 * node (Welcome, ConnOpened, Reply). No gRPC here: cp_link.c owns the stream, tests call this
 * directly. Thread: the completion-queue thread. */
#ifndef CP_NODELINK_H
#define CP_NODELINK_H

#include "cp_ctx.h"
#include "switchboard/internal/v1/nodelink.pb-c.h"

/* `fatal` is NULL when the item was handled (errors for clients are answered in-band), else a
 * sentence describing why the stream must be ended (borrowed: read it before returning). A
 * sentence that starts with a protocol code ("permission_denied: ...") ends the stream with
 * that code's gRPC status; any other is a protocol violation (INVALID_ARGUMENT). */
typedef void cp_nodelink_done_fn(void *arg, const char *fatal);

/* Handles `item` (borrowed until `done` fires) from node `n` (kept alive by the caller until
 * `done` fires). `done` fires exactly once, maybe after the call returns. */
void cp_nodelink_handle(struct cp_ctx *c, struct cp_node *n,
                        const Switchboard__Internal__V1__NodeItem *item, cp_nodelink_done_fn *done,
                        void *arg);

/* The node's stream ended: unregister it and close its connections (presence offline for
 * users with none left). */
void cp_nodelink_node_ended(struct cp_ctx *c, struct cp_node *n);

#endif
