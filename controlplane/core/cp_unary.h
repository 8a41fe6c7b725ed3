/* One unary gRPC call made by the control plane (to a peer replica, to the backend's
 * Authorizer): the whole call in one batch on the server's completion queue, its answer and
 * status kept here until the caller's tag fires. Thread: the completion-queue thread. */
#ifndef CP_UNARY_H
#define CP_UNARY_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "sb_err.h"

struct cp_unary {
    grpc_call *call;
    grpc_byte_buffer *send, *recv; /* recv: the answer (NULL when none came) */
    grpc_metadata_array init_md, trail_md;
    grpc_status_code status;
    grpc_slice details;
};

/* Zeroes *u, ready for cp_unary_start and always safe to cp_unary_fini. */
void cp_unary_init(struct cp_unary *u);

/* Calls `method` (a static string) on `ch` within timeout_ms, sending `send` (taken: freed by
 * cp_unary_fini) and the n_md entries of `md` (borrowed until the tag fires) as initial
 * metadata; `tag` fires once on `cq` when the status is in. SB_ENOMEM when the request could
 * not be packed or the call not started (the tag then never fires). */
enum sb_err cp_unary_start(struct cp_unary *u, grpc_channel *ch, grpc_completion_queue *cq,
                           const char *method, int64_t timeout_ms, grpc_byte_buffer *send,
                           grpc_metadata *md, size_t n_md, void *tag);

/* Frees what the call holds (not `u`). */
void cp_unary_fini(struct cp_unary *u);

#endif
