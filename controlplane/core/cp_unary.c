/* The unary client batch: SEND_INITIAL_METADATA, SEND_MESSAGE, SEND_CLOSE_FROM_CLIENT,
 * RECV_INITIAL_METADATA, RECV_MESSAGE, RECV_STATUS_ON_CLIENT in one grpc_call_start_batch. */
#include "cp_unary.h"

#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/support/time.h>

void cp_unary_init(struct cp_unary *u)
{
    memset(u, 0, sizeof(*u));
    grpc_metadata_array_init(&u->init_md);
    grpc_metadata_array_init(&u->trail_md);
    u->details = grpc_empty_slice();
}

enum sb_err cp_unary_start(struct cp_unary *u, grpc_channel *ch, grpc_completion_queue *cq,
                           const char *method, int64_t timeout_ms, grpc_byte_buffer *send,
                           grpc_metadata *md, size_t n_md, void *tag)
{
    u->send = send;
    if (send == NULL)
        return SB_ENOMEM;
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
    u->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                       grpc_slice_from_static_string(method), NULL, deadline, NULL);
    if (u->call == NULL)
        return SB_ENOMEM;
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = n_md;
    ops[0].data.send_initial_metadata.metadata = n_md > 0 ? md : NULL;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &u->init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &u->recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &u->trail_md;
    ops[5].data.recv_status_on_client.status = &u->status;
    ops[5].data.recv_status_on_client.status_details = &u->details;
    return grpc_call_start_batch(u->call, ops, 6, tag, NULL) == GRPC_CALL_OK ? SB_OK : SB_ENOMEM;
}

void cp_unary_fini(struct cp_unary *u)
{
    if (u->send)
        grpc_byte_buffer_destroy(u->send);
    if (u->recv)
        grpc_byte_buffer_destroy(u->recv);
    grpc_metadata_array_destroy(&u->init_md);
    grpc_metadata_array_destroy(&u->trail_md);
    grpc_slice_unref(u->details);
    if (u->call)
        grpc_call_unref(u->call);
    memset(u, 0, sizeof(*u));
}
