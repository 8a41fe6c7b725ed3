/* switchboard.v1.Messages: Broadcast, BroadcastToRoom, SendToUser, SendToConnection (history:
 * cp_rpc_history.c). */
#include "cp_rpc.h"

#include <stdlib.h>
#include <string.h>

#include "cp_json.h"
#include "cp_once.h"
#include "cp_roommsg.h"
#include "sb_ident.h"
#include "sb_time.h"
#include "switchboard/v1/messages.pb-c.h"

#define MAX_METADATA   64
#define MAX_META_KEY   128
#define MAX_META_VALUE 1024
#define MAX_IDEM_KEY   128
#define MAX_EXCLUDE    1000

/* ---------------------------------------------------------------- Broadcast, SendToUser,
 * SendToConnection: frames built here, delivered through cp_fanout, each with an optional
 * idempotency key (cp_once.c) claimed before anything is delivered. */

enum direct_kind { DIRECT_EVERYONE, DIRECT_USER, DIRECT_CONNECTION };

struct direct_call {
    struct cp_ctx *c;
    struct cp_call *call;
    enum direct_kind kind;
    const ProtobufCMessage *req; /* borrowed until the call is finished */
};

static void reply_delivered(struct cp_call *call, enum direct_kind kind, int64_t delivered)
{
    if (kind == DIRECT_EVERYONE) {
        Switchboard__V1__BroadcastResponse resp = SWITCHBOARD__V1__BROADCAST_RESPONSE__INIT;
        resp.delivered = delivered;
        cp_call_reply(call, &resp.base);
    } else if (kind == DIRECT_USER) {
        Switchboard__V1__SendToUserResponse resp = SWITCHBOARD__V1__SEND_TO_USER_RESPONSE__INIT;
        resp.delivered = delivered;
        cp_call_reply(call, &resp.base);
    } else {
        Switchboard__V1__SendToConnectionResponse resp =
            SWITCHBOARD__V1__SEND_TO_CONNECTION_RESPONSE__INIT;
        cp_call_reply(call, &resp.base);
    }
}

static void fail_no_connection(struct cp_call *call, const char *id)
{
    cp_call_failf(call, SB_CODE_CONNECTION_NOT_FOUND, "connection %s is not open", id);
}

/* Builds the frame and hands it to the nodes; finishes the call. */
static void deliver(struct cp_ctx *c, struct cp_call *call, enum direct_kind kind,
                    const ProtobufCMessage *m)
{
    struct cp_buf b;
    cp_buf_init(&b);
    int64_t now = sb_time_now_ms();
    char id[SB_ID_LEN];
    sb_id_new("m", id);
    const Switchboard__V1__BroadcastRequest *bc = (const void *)m;
    const Switchboard__V1__SendToUserRequest *tu = (const void *)m;
    const Switchboard__V1__SendToConnectionRequest *tc = (const void *)m;
    if (kind == DIRECT_EVERYONE)
        cp_json_system(&b, (const char *)bc->data.data, bc->data.len, now);
    else if (kind == DIRECT_USER)
        cp_json_direct(&b, id, tu->sender_id, (const char *)tu->data.data, tu->data.len, now);
    else
        cp_json_direct(&b, id, tc->sender_id, (const char *)tc->data.data, tc->data.len, now);
    if (b.failed) {
        cp_buf_fini(&b);
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    size_t delivered = 0;
    if (kind == DIRECT_EVERYONE) {
        delivered = cp_fanout_everyone(&c->fan, (const char *const *)bc->exclude_user_ids,
                                       bc->n_exclude_user_ids, b.data, b.len);
    } else if (kind == DIRECT_USER) {
        const char *users[1] = {tu->user_id};
        delivered = cp_fanout_users(&c->fan, users, 1, b.data, b.len);
    } else {
        struct cp_conn *conn = cp_presence_conn(&c->presence, tc->connection_id);
        if (conn == NULL) {
            cp_buf_fini(&b);
            fail_no_connection(call, tc->connection_id);
            return;
        }
        if (!cp_fanout_connection(&c->fan, conn, b.data, b.len)) {
            cp_buf_fini(&b);
            cp_call_failf(call, SB_CODE_UNAVAILABLE,
                          "the node of connection %s is not linked to this control plane",
                          tc->connection_id);
            return;
        }
        delivered = 1;
    }
    cp_buf_fini(&b);
    reply_delivered(call, kind, (int64_t)delivered);
}

static void claimed(void *arg, const struct cp_status *st, bool first, int64_t delivered)
{
    struct direct_call *dc = arg;
    if (st->code != SB_CODE_NONE)
        cp_call_fail(dc->call, st);
    else if (!first)
        reply_delivered(dc->call, dc->kind, delivered); /* seen: the first result, no delivery */
    else
        deliver(dc->c, dc->call, dc->kind, dc->req);
    free(dc);
}

static const char *idem_scope[] = {"broadcast", "send_to_user", "send_to_connection"};

/* With a key: claim it (the result counted now), deliver only if this call is the first. */
static void deliver_once(struct cp_ctx *c, struct cp_call *call, enum direct_kind kind,
                         const ProtobufCMessage *m, const char *key, int64_t count)
{
    if (key == NULL || key[0] == '\0') {
        deliver(c, call, kind, m);
        return;
    }
    struct direct_call *dc = malloc(sizeof(*dc));
    if (dc == NULL) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    *dc = (struct direct_call){c, call, kind, m};
    cp_once_claim(c, idem_scope[kind], key, count, claimed, dc);
}

void cp_rpc_messages_broadcast(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__BroadcastRequest *req = (const void *)m;
    if (!cp_check_data(call, &req->data, c->set.max_message_size) ||
        !cp_check_text(call, "idempotency_key", req->idempotency_key, MAX_IDEM_KEY))
        return;
    if (req->n_exclude_user_ids > MAX_EXCLUDE) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "exclude_user_ids has more than %d ids",
                      MAX_EXCLUDE);
        return;
    }
    for (size_t i = 0; i < req->n_exclude_user_ids; i++) {
        if (!cp_check_id(call, "exclude_user_ids[]", req->exclude_user_ids[i]))
            return;
    }
    int64_t count = (int64_t)cp_fanout_count_everyone(
        &c->fan, (const char *const *)req->exclude_user_ids, req->n_exclude_user_ids);
    deliver_once(c, call, DIRECT_EVERYONE, m, req->idempotency_key, count);
}

static void published(void *arg, const struct cp_status *st, const char *message_id, int64_t seq)
{
    struct cp_call *call = arg;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(call, st);
        return;
    }
    Switchboard__V1__BroadcastToRoomResponse resp =
        SWITCHBOARD__V1__BROADCAST_TO_ROOM_RESPONSE__INIT;
    resp.message_id = (char *)message_id;
    resp.seq = seq;
    cp_call_reply(call, &resp.base);
}

void cp_rpc_messages_to_room(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__BroadcastToRoomRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id) ||
        !cp_check_data(call, &req->data, c->set.max_message_size) ||
        !cp_check_optional_id(call, "user_id", req->user_id) ||
        !cp_check_optional_id(call, "thread_id", req->thread_id) ||
        !cp_check_text(call, "idempotency_key", req->idempotency_key, MAX_IDEM_KEY))
        return;
    if (req->n_metadata > MAX_METADATA) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "metadata has more than %d entries",
                      MAX_METADATA);
        return;
    }
    for (size_t i = 0; i < req->n_metadata; i++) {
        if (!cp_check_text(call, "metadata key", req->metadata[i]->key, MAX_META_KEY) ||
            !cp_check_text(call, "metadata value", req->metadata[i]->value, MAX_META_VALUE))
            return;
    }
    struct cp_kv kv[MAX_METADATA];
    for (size_t i = 0; i < req->n_metadata; i++)
        kv[i] = (struct cp_kv){req->metadata[i]->key, req->metadata[i]->value};
    struct cp_publish p = {.room_id = req->room_id,
                           .user_id = req->user_id,
                           .data = (const char *)req->data.data,
                           .data_len = req->data.len,
                           .thread_id = req->thread_id,
                           .metadata = kv,
                           .n_metadata = req->n_metadata,
                           .idem_key = req->idempotency_key};
    cp_roommsg_broadcast(c, &p, published, call);
}

void cp_rpc_messages_to_user(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__SendToUserRequest *req = (const void *)m;
    if (!cp_check_id(call, "user_id", req->user_id) ||
        !cp_check_optional_id(call, "sender_id", req->sender_id) ||
        !cp_check_data(call, &req->data, c->set.max_message_size) ||
        !cp_check_text(call, "idempotency_key", req->idempotency_key, MAX_IDEM_KEY))
        return;
    const char *users[1] = {req->user_id};
    deliver_once(c, call, DIRECT_USER, m, req->idempotency_key,
                 (int64_t)cp_fanout_count_users(&c->fan, users, 1));
}

void cp_rpc_messages_to_connection(struct cp_ctx *c, struct cp_call *call,
                                   const ProtobufCMessage *m)
{
    const Switchboard__V1__SendToConnectionRequest *req = (const void *)m;
    if (!cp_check_id(call, "connection_id", req->connection_id) ||
        !cp_check_optional_id(call, "sender_id", req->sender_id) ||
        !cp_check_data(call, &req->data, c->set.max_message_size) ||
        !cp_check_text(call, "idempotency_key", req->idempotency_key, MAX_IDEM_KEY))
        return;
    if (cp_presence_conn(&c->presence, req->connection_id) == NULL) {
        fail_no_connection(call, req->connection_id);
        return;
    }
    deliver_once(c, call, DIRECT_CONNECTION, m, req->idempotency_key, 1);
}
