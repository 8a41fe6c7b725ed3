/* Finishing unary calls: one batch {initial metadata, message, status, close} whose completion
 * frees the call (the server's event handler sees `finishing`). */
#include "cp_call.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_log.h"
#include "sb_pb.h"

void cp_call_free(struct cp_call *c)
{
    if (c->req != NULL)
        protobuf_c_message_free_unpacked(c->req, NULL);
    if (c->payload != NULL)
        grpc_byte_buffer_destroy(c->payload);
    if (c->resp != NULL)
        grpc_byte_buffer_destroy(c->resp);
    if (c->finishing)
        grpc_slice_unref(c->status_details);
    grpc_metadata_array_destroy(&c->md);
    if (c->generic)
        grpc_call_details_destroy(&c->details);
    if (c->call != NULL)
        grpc_call_unref(c->call);
    free(c);
}

static void finish(struct cp_call *c, grpc_status_code code, const char *msg,
                   grpc_byte_buffer *resp)
{
    c->finishing = 1;
    c->resp = resp;
    c->status_details = grpc_slice_from_copied_string(msg);
    grpc_op ops[4];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (resp != NULL) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = resp;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = code;
    ops[n++].data.send_status_from_server.status_details = &c->status_details;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    grpc_call_error err = grpc_call_start_batch(c->call, ops, n, &c->tag, NULL);
    if (err != GRPC_CALL_OK) {
        SB_LOG_ERROR("cp", "cannot finish a call", "err=%d", (int)err);
        cp_call_free(c);
    }
}

void cp_call_reply(struct cp_call *call, const ProtobufCMessage *resp)
{
    grpc_byte_buffer *bb = sb_pb_pack(resp);
    if (bb == NULL) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    finish(call, GRPC_STATUS_OK, "", bb);
}

void cp_call_done_empty(void *arg, const struct cp_status *st)
{
    struct cp_call *call = arg;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(call, st);
        return;
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(NULL, 0);
    if (bb == NULL) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    finish(call, GRPC_STATUS_OK, "", bb);
}

grpc_call *cp_call_detach(struct cp_call *call)
{
    grpc_call *g = call->call;
    call->call = NULL;
    cp_call_free(call);
    return g;
}

void cp_call_status(struct cp_call *call, grpc_status_code code, const char *msg)
{
    finish(call, code, msg, NULL);
}

void cp_call_fail(struct cp_call *call, const struct cp_status *st)
{
    char msg[CP_STATUS_MSG_MAX + 64];
    struct cp_status s = *st;
    if (s.code == SB_CODE_NONE)
        cp_status_set(&s, SB_CODE_INTERNAL, "failed without a reason");
    cp_status_grpc_message(&s, msg, sizeof(msg));
    finish(call, cp_status_grpc_code(s.code), msg, NULL);
}

void cp_call_failf(struct cp_call *call, enum sb_code code, const char *fmt, ...)
{
    struct cp_status st;
    st.code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st.msg, sizeof(st.msg), fmt, ap);
    va_end(ap);
    cp_call_fail(call, &st);
}
