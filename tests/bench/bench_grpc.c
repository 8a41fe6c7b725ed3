/* Blocking unary gRPC calls (one completion queue, pluck) for benchmark setup only; the daemons
 * have their own asynchronous gRPC code. */
#include "bench_grpc.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "sb_pb.h"
#include "switchboard/v1/rooms.pb-c.h"

#define MAX_REPLY (64u << 20)

struct unary {
    grpc_status_code status;
    char detail[256];
    ProtobufCMessage *reply; /* caller frees */
};

static void seterr(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* Runs one unary call; 0 when the call completed (any status), -1 on a local failure. */
static int call_unary(grpc_channel *ch, grpc_completion_queue *cq, const char *method,
                      const ProtobufCMessage *req, const ProtobufCMessageDescriptor *reply_desc,
                      double timeout_s, struct unary *out)
{
    memset(out, 0, sizeof(*out));
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                     gpr_time_from_millis((int64_t)(timeout_s * 1000), GPR_TIMESPAN));
    grpc_call *call =
        grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                 grpc_slice_from_static_string(method), NULL, deadline, NULL);
    if (!call)
        return -1;
    grpc_byte_buffer *send = sb_pb_pack(req);
    grpc_byte_buffer *recv = NULL;
    grpc_metadata_array md_initial, md_trailing;
    grpc_metadata_array_init(&md_initial);
    grpc_metadata_array_init(&md_trailing);
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &md_initial;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &md_trailing;
    ops[5].data.recv_status_on_client.status = &out->status;
    ops[5].data.recv_status_on_client.status_details = &details;
    int rc = -1;
    void *tag = &rc;
    if (grpc_call_start_batch(call, ops, 6, tag, NULL) == GRPC_CALL_OK) {
        grpc_event ev = grpc_completion_queue_pluck(
            cq, tag, gpr_time_add(deadline, gpr_time_from_seconds(5, GPR_TIMESPAN)), NULL);
        if (ev.type == GRPC_OP_COMPLETE) {
            rc = 0;
            snprintf(out->detail, sizeof(out->detail), "%.*s", (int)GRPC_SLICE_LENGTH(details),
                     (const char *)GRPC_SLICE_START_PTR(details));
            if (out->status == GRPC_STATUS_OK && recv &&
                sb_pb_unpack(recv, reply_desc, MAX_REPLY, &out->reply) != SB_OK) {
                out->status = GRPC_STATUS_INTERNAL;
                snprintf(out->detail, sizeof(out->detail), "reply does not parse");
            }
        } else {
            grpc_call_cancel(call, NULL);
            grpc_completion_queue_pluck(cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        }
    }
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&md_initial);
    grpc_metadata_array_destroy(&md_trailing);
    grpc_byte_buffer_destroy(send);
    if (recv)
        grpc_byte_buffer_destroy(recv);
    grpc_call_unref(call);
    return rc;
}

static int create_room(grpc_channel *ch, grpc_completion_queue *cq, const char *room_id,
                       double timeout_s, char *err, size_t errcap)
{
    Switchboard__V1__CreateRoomRequest req = SWITCHBOARD__V1__CREATE_ROOM_REQUEST__INIT;
    req.id = (char *)room_id;
    req.name = (char *)"benchmark";
    struct unary u;
    if (call_unary(ch, cq, "/switchboard.v1.Rooms/CreateRoom", &req.base,
                   &switchboard__v1__room__descriptor, timeout_s, &u) != 0) {
        seterr(err, errcap, "CreateRoom: call failed or timed out");
        return -1;
    }
    if (u.reply)
        protobuf_c_message_free_unpacked(u.reply, NULL);
    if (u.status != GRPC_STATUS_OK && u.status != GRPC_STATUS_ALREADY_EXISTS) {
        seterr(err, errcap, "CreateRoom: status %d %s", (int)u.status, u.detail);
        return -1;
    }
    return 0;
}

/* One JoinRoom per user: the fallback while a control plane does not implement BulkJoinRoom. */
static int join_each(grpc_channel *ch, grpc_completion_queue *cq, const char *room_id, char **ids,
                     size_t n, double timeout_s, char *err, size_t errcap)
{
    for (size_t i = 0; i < n; i++) {
        Switchboard__V1__JoinRoomRequest req = SWITCHBOARD__V1__JOIN_ROOM_REQUEST__INIT;
        req.room_id = (char *)room_id;
        req.user_id = ids[i];
        req.role = (char *)"member";
        struct unary u;
        if (call_unary(ch, cq, "/switchboard.v1.Rooms/JoinRoom", &req.base,
                       &switchboard__v1__member__descriptor, timeout_s, &u) != 0) {
            seterr(err, errcap, "JoinRoom: call failed or timed out");
            return -1;
        }
        if (u.reply)
            protobuf_c_message_free_unpacked(u.reply, NULL);
        if (u.status != GRPC_STATUS_OK && u.status != GRPC_STATUS_ALREADY_EXISTS) {
            seterr(err, errcap, "JoinRoom %s: status %d %s", ids[i], (int)u.status, u.detail);
            return -1;
        }
    }
    return 0;
}

static int bulk_join(grpc_channel *ch, grpc_completion_queue *cq, const char *room_id, char **ids,
                     size_t n, double timeout_s, char *err, size_t errcap)
{
    Switchboard__V1__BulkJoinRoomRequest req = SWITCHBOARD__V1__BULK_JOIN_ROOM_REQUEST__INIT;
    req.room_id = (char *)room_id;
    req.user_ids = ids;
    req.n_user_ids = n;
    req.role = (char *)"member";
    struct unary u;
    if (call_unary(ch, cq, "/switchboard.v1.Rooms/BulkJoinRoom", &req.base,
                   &switchboard__v1__bulk_join_room_response__descriptor, timeout_s, &u) != 0) {
        seterr(err, errcap, "BulkJoinRoom: call failed or timed out");
        return -1;
    }
    int rc = 0;
    if (u.status == GRPC_STATUS_UNIMPLEMENTED) {
        rc = join_each(ch, cq, room_id, ids, n, timeout_s, err, errcap);
    } else if (u.status != GRPC_STATUS_OK) {
        seterr(err, errcap, "BulkJoinRoom: status %d %s", (int)u.status, u.detail);
        rc = -1;
    } else if (u.reply) {
        Switchboard__V1__BulkJoinRoomResponse *r = (Switchboard__V1__BulkJoinRoomResponse *)u.reply;
        for (size_t i = 0; i < r->n_failures; i++) {
            if (strcmp(r->failures[i]->code, "already_room_member") == 0)
                continue;
            seterr(err, errcap, "BulkJoinRoom: user %s: %s %s", r->failures[i]->user_id,
                   r->failures[i]->code, r->failures[i]->message);
            rc = -1;
            break;
        }
    }
    if (u.reply)
        protobuf_c_message_free_unpacked(u.reply, NULL);
    return rc;
}

int bench_grpc_prepare_room(const char *target, const char *room_id, const char *prefix, int n,
                            int chunk, double timeout_s, char *err, size_t errcap)
{
    int rc = -1;
    grpc_init();
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(target, creds, NULL);
    grpc_channel_credentials_release(creds);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    size_t cap = (size_t)(chunk > 0 ? chunk : 1000);
    char **ids = calloc(cap, sizeof(*ids));
    char *store = calloc(cap, 96);
    if (!ids || !store) {
        seterr(err, errcap, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < cap; i++)
        ids[i] = store + i * 96;
    if (create_room(ch, cq, room_id, timeout_s, err, errcap) != 0)
        goto out;
    /* users 0..n-1, then the publisher (index n) */
    for (int first = 0; first <= n; first += (int)cap) {
        size_t k = 0;
        for (int i = first; i <= n && k < cap; i++, k++) {
            if (i == n)
                snprintf(ids[k], 96, "%spub", prefix);
            else
                snprintf(ids[k], 96, "%s%d", prefix, i);
        }
        if (bulk_join(ch, cq, room_id, ids, k, timeout_s, err, errcap) != 0)
            goto out;
    }
    rc = 0;
out:
    free(ids);
    free(store);
    grpc_completion_queue_shutdown(cq);
    /* every call above has completed, so the shutdown event is the only one left */
    grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_completion_queue_destroy(cq);
    grpc_channel_destroy(ch);
    grpc_shutdown();
    return rc;
}
