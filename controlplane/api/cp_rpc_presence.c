/* switchboard.v1.Presence: SetPresence, GetPresence, GetOnlineUsers, TrackActivity,
 * StartTyping, StopTyping, GetTypingUsers. Validation here; the flows are in cp_online.c and
 * cp_typing.c. */
#include "cp_rpc.h"

#include <stdlib.h>
#include <string.h>

#include "cp_online.h"
#include "cp_typing.h"

#include "switchboard/v1/presence.pb-c.h"

#define TEXT_MAX 256 /* custom status, device and activity fields, availability */

static void reply_state(void *arg, const struct cp_status *st, const struct cp_online_state *s)
{
    struct cp_call *call = arg;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(call, st);
        return;
    }
    const struct cp_presence_record *r = s->rec;
    Switchboard__V1__PresenceState ps = SWITCHBOARD__V1__PRESENCE_STATE__INIT;
    Switchboard__V1__Device dev = SWITCHBOARD__V1__DEVICE__INIT;
    Switchboard__V1__Activity act = SWITCHBOARD__V1__ACTIVITY__INIT;
    ps.user_id = (char *)s->user_id;
    ps.status = (char *)s->status;
    ps.last_seen = s->last_seen;
    ps.connection_count = s->connection_count;
    ps.custom_status = r->custom_status;
    ps.availability = r->availability;
    if (r->device_type[0] != '\0' || r->device_name[0] != '\0') {
        dev.type = r->device_type;
        dev.name = r->device_name;
        ps.device = &dev;
    }
    if (r->activity_type[0] != '\0' || r->activity_detail[0] != '\0') {
        act.type = r->activity_type;
        act.detail = r->activity_detail;
        ps.activity = &act;
    }
    cp_call_reply(call, &ps.base);
}

static void reply_ids(void *arg, const struct cp_status *st, const char *const *ids, size_t n)
{
    struct cp_call *call = arg;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(call, st);
        return;
    }
    /* GetOnlineUsersResponse and GetTypingUsersResponse have the same shape. */
    Switchboard__V1__GetOnlineUsersResponse resp = SWITCHBOARD__V1__GET_ONLINE_USERS_RESPONSE__INIT;
    resp.user_ids = (char **)ids;
    resp.n_user_ids = n;
    cp_call_reply(call, &resp.base);
}

static void reply_typing_ids(void *arg, const struct cp_status *st, const char *const *ids,
                             size_t n)
{
    struct cp_call *call = arg;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(call, st);
        return;
    }
    Switchboard__V1__GetTypingUsersResponse resp = SWITCHBOARD__V1__GET_TYPING_USERS_RESPONSE__INIT;
    resp.user_ids = (char **)ids;
    resp.n_user_ids = n;
    cp_call_reply(call, &resp.base);
}

void cp_rpc_presence_online(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__GetOnlineUsersRequest *req = (const void *)m;
    if (!cp_check_optional_id(call, "room_id", req->room_id))
        return;
    cp_online_list(c, req->room_id, reply_ids, call);
}

void cp_rpc_presence_get(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__GetPresenceRequest *req = (const void *)m;
    if (!cp_check_id(call, "user_id", req->user_id))
        return;
    cp_online_get(c, req->user_id, reply_state, call);
}

void cp_rpc_presence_set(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__SetPresenceRequest *req = (const void *)m;
    if (!cp_check_id(call, "user_id", req->user_id))
        return;
    if (req->status == NULL || !cp_presence_status_valid(req->status)) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE,
                      "status must be one of online, away, busy, offline");
        return;
    }
    const Switchboard__V1__Device *d = req->device;
    const Switchboard__V1__Activity *a = req->activity;
    struct cp_online_set set = {.status = req->status,
                                .custom_status = req->custom_status,
                                .device_type = d ? d->type : NULL,
                                .device_name = d ? d->name : NULL,
                                .activity_type = a ? a->type : NULL,
                                .activity_detail = a ? a->detail : NULL,
                                .availability = req->availability};
    if (!cp_check_text(call, "custom_status", set.custom_status, TEXT_MAX) ||
        !cp_check_text(call, "device.type", set.device_type, TEXT_MAX) ||
        !cp_check_text(call, "device.name", set.device_name, TEXT_MAX) ||
        !cp_check_text(call, "activity.type", set.activity_type, TEXT_MAX) ||
        !cp_check_text(call, "activity.detail", set.activity_detail, TEXT_MAX) ||
        !cp_check_text(call, "availability", set.availability, TEXT_MAX))
        return;
    cp_online_set(c, req->user_id, &set, reply_state, call);
}

void cp_rpc_presence_activity(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__TrackActivityRequest *req = (const void *)m;
    if (!cp_check_id(call, "user_id", req->user_id))
        return;
    cp_online_activity(c, req->user_id, cp_call_done_empty, call);
}

static void typing(struct cp_ctx *c, struct cp_call *call, const char *room_id, const char *user_id,
                   bool on)
{
    if (!cp_check_id(call, "room_id", room_id) || !cp_check_id(call, "user_id", user_id))
        return;
    if (on)
        cp_online_activity(c, user_id, NULL, NULL);
    cp_typing_set(c, room_id, user_id, on, cp_call_done_empty, call);
}

void cp_rpc_presence_typing_start(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__StartTypingRequest *req = (const void *)m;
    typing(c, call, req->room_id, req->user_id, true);
}

void cp_rpc_presence_typing_stop(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__StopTypingRequest *req = (const void *)m;
    typing(c, call, req->room_id, req->user_id, false);
}

void cp_rpc_presence_typing_list(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__GetTypingUsersRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id))
        return;
    cp_typing_list(c, req->room_id, reply_typing_ids, call);
}
