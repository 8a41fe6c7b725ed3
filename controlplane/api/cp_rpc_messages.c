/* switchboard.v1.Messages: Broadcast, BroadcastToRoom, SendToUser, SendToConnection (history:
 * cp_rpc_history.c): the requests' checks and answers around flows/cp_direct.c and
 * flows/cp_roommsg.c. */
#include "cp_rpc.h"

#include <stdlib.h>

#include "cp_direct.h"
#include "cp_roommsg.h"
#include "switchboard/v1/messages.pb-c.h"

#define MAX_METADATA   64
#define MAX_META_KEY   128
#define MAX_META_VALUE 1024
#define MAX_IDEM_KEY   128
#define MAX_EXCLUDE    1000

/* ---------------------------------------------------------------- Broadcast, SendToUser,
 * SendToConnection: delivered by flows/cp_direct.c. */

struct direct_call {
    struct cp_call *call;
    enum cp_direct_kind kind;
};

static void delivered_done(void *arg, const struct cp_status *st, int64_t delivered)
{
    struct direct_call *dc = arg;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(dc->call, st);
    } else if (dc->kind == CP_DIRECT_EVERYONE) {
        Switchboard__V1__BroadcastResponse resp = SWITCHBOARD__V1__BROADCAST_RESPONSE__INIT;
        resp.delivered = delivered;
        cp_call_reply(dc->call, &resp.base);
    } else if (dc->kind == CP_DIRECT_USER) {
        Switchboard__V1__SendToUserResponse resp = SWITCHBOARD__V1__SEND_TO_USER_RESPONSE__INIT;
        resp.delivered = delivered;
        cp_call_reply(dc->call, &resp.base);
    } else {
        Switchboard__V1__SendToConnectionResponse resp =
            SWITCHBOARD__V1__SEND_TO_CONNECTION_RESPONSE__INIT;
        cp_call_reply(dc->call, &resp.base);
    }
    free(dc);
}

static void send_direct(struct cp_ctx *c, struct cp_call *call, const struct cp_direct *d)
{
    struct direct_call *dc = malloc(sizeof(*dc));
    if (dc == NULL) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    *dc = (struct direct_call){call, d->kind};
    cp_direct_send(c, d, delivered_done, dc);
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
    struct cp_direct d = {.kind = CP_DIRECT_EVERYONE,
                          .exclude = (const char *const *)req->exclude_user_ids,
                          .n_exclude = req->n_exclude_user_ids,
                          .data = (const char *)req->data.data,
                          .data_len = req->data.len,
                          .idem_key = req->idempotency_key};
    send_direct(c, call, &d);
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

/* SendToUser, SendToConnection: one recipient, `to`, checked as the field `what`. */
static void send_one(struct cp_ctx *c, struct cp_call *call, enum cp_direct_kind kind,
                     const char *what, const char *to, const char *sender,
                     const ProtobufCBinaryData *data, const char *key)
{
    if (!cp_check_id(call, what, to) || !cp_check_optional_id(call, "sender_id", sender) ||
        !cp_check_data(call, data, c->set.max_message_size) ||
        !cp_check_text(call, "idempotency_key", key, MAX_IDEM_KEY))
        return;
    struct cp_direct d = {.kind = kind,
                          .to = to,
                          .sender = sender,
                          .data = (const char *)data->data,
                          .data_len = data->len,
                          .idem_key = key};
    send_direct(c, call, &d);
}

void cp_rpc_messages_to_user(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__SendToUserRequest *req = (const void *)m;
    send_one(c, call, CP_DIRECT_USER, "user_id", req->user_id, req->sender_id, &req->data,
             req->idempotency_key);
}

void cp_rpc_messages_to_connection(struct cp_ctx *c, struct cp_call *call,
                                   const ProtobufCMessage *m)
{
    const Switchboard__V1__SendToConnectionRequest *req = (const void *)m;
    send_one(c, call, CP_DIRECT_CONNECTION, "connection_id", req->connection_id, req->sender_id,
             &req->data, req->idempotency_key);
}
