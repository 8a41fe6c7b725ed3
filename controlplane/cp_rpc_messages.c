/* switchboard.v1.Messages: Broadcast, BroadcastToRoom, SendToUser (history: cp_rpc_history.c). */
#include "cp_rpc.h"

#include <stdlib.h>
#include <string.h>

#include "cp_json.h"
#include "cp_rooms.h"
#include "sb_ident.h"
#include "sb_time.h"
#include "switchboard/v1/messages.pb-c.h"

#define MAX_METADATA   64
#define MAX_META_KEY   128
#define MAX_META_VALUE 1024
#define MAX_IDEM_KEY   128
#define MAX_EXCLUDE    1000

void cp_rpc_messages_broadcast(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__BroadcastRequest *req = (const void *)m;
    if (!cp_rpc_check_data(c, call, &req->data))
        return;
    if (req->n_exclude_user_ids > MAX_EXCLUDE) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "exclude_user_ids has more than %d ids",
                      MAX_EXCLUDE);
        return;
    }
    for (size_t i = 0; i < req->n_exclude_user_ids; i++) {
        if (!cp_rpc_check_id(call, "exclude_user_ids[]", req->exclude_user_ids[i]))
            return;
    }
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_system(&b, (const char *)req->data.data, req->data.len, sb_time_now_ms());
    if (b.failed) {
        cp_buf_fini(&b);
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    size_t delivered = cp_fanout_everyone(c, (const char *const *)req->exclude_user_ids,
                                          req->n_exclude_user_ids, b.data, b.len);
    cp_buf_fini(&b);
    Switchboard__V1__BroadcastResponse resp = SWITCHBOARD__V1__BROADCAST_RESPONSE__INIT;
    resp.delivered = (int64_t)delivered;
    cp_call_reply(call, &resp.base);
}

struct room_call {
    struct cp_call *call;
    struct cp_ctx *c;
    const char *room_id; /* borrowed from the request */
    const char *idem_key;
};

static void reply_published(struct cp_call *call, const char *id, int64_t seq)
{
    Switchboard__V1__BroadcastToRoomResponse resp =
        SWITCHBOARD__V1__BROADCAST_TO_ROOM_RESPONSE__INIT;
    resp.message_id = (char *)id;
    resp.seq = seq;
    cp_call_reply(call, &resp.base);
}

static void published(void *arg, const struct cp_status *st, const char *message_id, int64_t seq)
{
    struct room_call *rc = arg;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(rc->call, st);
    } else {
        if (rc->idem_key != NULL)
            cp_idem_put(rc->c, rc->room_id, rc->idem_key, message_id, seq, sb_time_mono_ms());
        reply_published(rc->call, message_id, seq);
    }
    free(rc);
}

void cp_rpc_messages_to_room(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__BroadcastToRoomRequest *req = (const void *)m;
    if (!cp_rpc_check_id(call, "room_id", req->room_id) ||
        !cp_rpc_check_data(c, call, &req->data) ||
        !cp_rpc_check_optional_id(call, "user_id", req->user_id) ||
        !cp_rpc_check_optional_id(call, "thread_id", req->thread_id) ||
        !cp_rpc_check_text(call, "idempotency_key", req->idempotency_key, MAX_IDEM_KEY))
        return;
    if (req->n_metadata > MAX_METADATA) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "metadata has more than %d entries",
                      MAX_METADATA);
        return;
    }
    for (size_t i = 0; i < req->n_metadata; i++) {
        if (!cp_rpc_check_text(call, "metadata key", req->metadata[i]->key, MAX_META_KEY) ||
            !cp_rpc_check_text(call, "metadata value", req->metadata[i]->value, MAX_META_VALUE))
            return;
    }
    const char *idem =
        (req->idempotency_key && req->idempotency_key[0]) ? req->idempotency_key : NULL;
    if (idem != NULL) {
        const char *id;
        int64_t seq;
        if (cp_idem_get(c, req->room_id, idem, sb_time_mono_ms(), &id, &seq)) {
            reply_published(call, id, seq);
            return;
        }
    }
    struct cp_kv *kv = req->n_metadata ? calloc(req->n_metadata, sizeof(*kv)) : NULL;
    struct room_call *rc = malloc(sizeof(*rc));
    if ((req->n_metadata > 0 && kv == NULL) || rc == NULL) {
        free(kv);
        free(rc);
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    for (size_t i = 0; i < req->n_metadata; i++) {
        kv[i].key = req->metadata[i]->key;
        kv[i].value = req->metadata[i]->value;
    }
    *rc = (struct room_call){call, c, req->room_id, idem};
    struct cp_publish p = {.room_id = req->room_id,
                           .user_id = req->user_id,
                           .require_member = false,
                           .data = (const char *)req->data.data,
                           .data_len = req->data.len,
                           .thread_id = req->thread_id,
                           .metadata = kv,
                           .n_metadata = req->n_metadata,
                           .idem_key = idem};
    /* The store copies the draft before it answers, so kv can go right after the call. */
    cp_rooms_publish(c, &p, published, rc);
    free(kv);
}

void cp_rpc_messages_to_user(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__SendToUserRequest *req = (const void *)m;
    if (!cp_rpc_check_id(call, "user_id", req->user_id) ||
        !cp_rpc_check_optional_id(call, "sender_id", req->sender_id) ||
        !cp_rpc_check_data(c, call, &req->data))
        return;
    char id[SB_ID_LEN];
    sb_id_new("m", id);
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_direct(&b, id, req->sender_id, (const char *)req->data.data, req->data.len,
                   sb_time_now_ms());
    if (b.failed) {
        cp_buf_fini(&b);
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    const char *users[1] = {req->user_id};
    size_t delivered = cp_fanout_users(c, users, 1, b.data, b.len);
    cp_buf_fini(&b);
    Switchboard__V1__SendToUserResponse resp = SWITCHBOARD__V1__SEND_TO_USER_RESPONSE__INIT;
    resp.delivered = (int64_t)delivered;
    cp_call_reply(call, &resp.base);
}
