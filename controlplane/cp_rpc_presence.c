/* switchboard.v1.Presence: GetOnlineUsers and GetPresence (the others land with issue 4). */
#include "cp_rpc.h"

#include <stdlib.h>
#include <string.h>

#include "switchboard/v1/presence.pb-c.h"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void reply_ids(struct cp_call *call, char **ids, size_t n)
{
    Switchboard__V1__GetOnlineUsersResponse resp = SWITCHBOARD__V1__GET_ONLINE_USERS_RESPONSE__INIT;
    resp.user_ids = ids;
    resp.n_user_ids = n;
    cp_call_reply(call, &resp.base);
}

struct online_call {
    struct cp_call *call;
    struct cp_ctx *c;
};

static void members_done(void *arg, const struct cp_status *st, const struct cp_member *members,
                         size_t n)
{
    struct online_call *oc = arg;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(oc->call, st);
        free(oc);
        return;
    }
    char **ids = n ? malloc(n * sizeof(*ids)) : NULL;
    if (n > 0 && ids == NULL) {
        cp_call_failf(oc->call, SB_CODE_INTERNAL, "out of memory");
        free(oc);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        struct cp_user *u = cp_presence_user(&oc->c->presence, members[i].user_id);
        if (u != NULL && u->online)
            ids[k++] = members[i].user_id;
    }
    reply_ids(oc->call, ids, k); /* members come sorted */
    free(ids);
    free(oc);
}

void cp_rpc_presence_online(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__GetOnlineUsersRequest *req = (const void *)m;
    if (req->room_id != NULL && req->room_id[0] != '\0') {
        if (!cp_rpc_check_id(call, "room_id", req->room_id))
            return;
        struct online_call *oc = malloc(sizeof(*oc));
        if (oc == NULL) {
            cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
            return;
        }
        *oc = (struct online_call){call, c};
        c->store->ops->members_list(c->store, req->room_id, members_done, oc);
        return;
    }
    size_t cap = c->presence.n_online;
    char **ids = cap ? malloc(cap * sizeof(*ids)) : NULL;
    if (cap > 0 && ids == NULL) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    size_t n = 0;
    struct cp_map_iter it;
    struct cp_map_entry *e;
    cp_map_iter_init(&c->presence.users, &it);
    while ((e = cp_map_iter_next(&c->presence.users, &it)) != NULL && n < cap) {
        struct cp_user *u = e->value;
        if (u->online)
            ids[n++] = u->id;
    }
    if (n > 1)
        qsort(ids, n, sizeof(*ids), cmp_str);
    reply_ids(call, ids, n);
    free(ids);
}

void cp_rpc_presence_get(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__GetPresenceRequest *req = (const void *)m;
    if (!cp_rpc_check_id(call, "user_id", req->user_id))
        return;
    struct cp_user *u = cp_presence_user(&c->presence, req->user_id);
    Switchboard__V1__PresenceState ps = SWITCHBOARD__V1__PRESENCE_STATE__INIT;
    Switchboard__V1__Device dev = SWITCHBOARD__V1__DEVICE__INIT;
    Switchboard__V1__Activity act = SWITCHBOARD__V1__ACTIVITY__INIT;
    ps.user_id = req->user_id;
    ps.status = "offline";
    if (u != NULL) {
        ps.status = u->status ? u->status : "offline";
        ps.last_seen = u->last_seen;
        ps.connection_count = (int32_t)u->n_conns;
        ps.custom_status = u->custom_status ? u->custom_status : "";
        if (u->device_type || u->device_name) {
            dev.type = u->device_type ? u->device_type : "";
            dev.name = u->device_name ? u->device_name : "";
            ps.device = &dev;
        }
        if (u->activity_type || u->activity_detail) {
            act.type = u->activity_type ? u->activity_type : "";
            act.detail = u->activity_detail ? u->activity_detail : "";
            ps.activity = &act;
        }
    }
    cp_call_reply(call, &ps.base);
}
