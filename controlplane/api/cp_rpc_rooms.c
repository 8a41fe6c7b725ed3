/* switchboard.v1.Rooms: CreateRoom, GetRoom, ListRooms, DeleteRoom, JoinRoom, LeaveRoom (and
 * kicks), GetRoomMembers, plus the validation helpers every handler uses. The other Rooms
 * methods are in cp_rpc_rooms_admin.c. */
#include "cp_rpc.h"

#include <stdlib.h>
#include <string.h>

#include "cp_json.h"
#include "cp_limits.h"
#include "cp_perm.h"
#include "cp_rooms.h"
#include "sb_ident.h"
#include "sb_json.h"
#include "sb_time.h"
#include "switchboard/v1/rooms.pb-c.h"

#define MAX_NAME        200
#define MAX_DESCRIPTION 2000
#define MAX_METADATA    64
#define MAX_META_KEY    128
#define MAX_META_VALUE  1024

bool cp_rpc_rooms_check_meta_kv(struct cp_call *call, const char *k, const char *v)
{
    return cp_check_text(call, "metadata key", k, MAX_META_KEY) &&
           cp_check_text(call, "metadata value", v, MAX_META_VALUE);
}

/* ---------------------------------------------------------------- conversion */

struct room_pb {
    Switchboard__V1__Room room;
    Switchboard__V1__Room__MetadataEntry *entries;
    Switchboard__V1__Room__MetadataEntry **ptrs;
};

static bool room_to_pb(const struct cp_room *r, struct room_pb *out)
{
    Switchboard__V1__Room init = SWITCHBOARD__V1__ROOM__INIT;
    out->room = init;
    out->entries = NULL;
    out->ptrs = NULL;
    out->room.id = r->id;
    out->room.name = r->name;
    out->room.description = r->description;
    out->room.owner_id = r->owner_id;
    out->room.private_ = r->is_private;
    out->room.max_members = r->max_members;
    out->room.archived = r->archived;
    out->room.member_count = r->member_count;
    out->room.created_at = r->created_at;
    out->room.updated_at = r->updated_at;
    out->room.last_seq = r->last_seq;
    if (r->n_metadata > 0) {
        out->entries = calloc(r->n_metadata, sizeof(*out->entries));
        out->ptrs = calloc(r->n_metadata, sizeof(*out->ptrs));
        if (out->entries == NULL || out->ptrs == NULL) {
            free(out->entries);
            free(out->ptrs);
            return false;
        }
        for (size_t i = 0; i < r->n_metadata; i++) {
            Switchboard__V1__Room__MetadataEntry e = SWITCHBOARD__V1__ROOM__METADATA_ENTRY__INIT;
            e.key = r->metadata[i].key;
            e.value = r->metadata[i].value;
            out->entries[i] = e;
            out->ptrs[i] = &out->entries[i];
        }
        out->room.metadata = out->ptrs;
        out->room.n_metadata = r->n_metadata;
    }
    return true;
}

static void room_pb_fini(struct room_pb *p)
{
    free(p->entries);
    free(p->ptrs);
}

static void reply_room(struct cp_call *call, const struct cp_room *r)
{
    struct room_pb pb;
    if (!room_to_pb(r, &pb)) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    cp_call_reply(call, &pb.room.base);
    room_pb_fini(&pb);
}

void cp_rpc_rooms_room_done(void *arg, const struct cp_status *st, const struct cp_room *room)
{
    struct cp_call *call = arg;
    if (st->code != SB_CODE_NONE)
        cp_call_fail(call, st);
    else
        reply_room(call, room);
}

/* ---------------------------------------------------------------- handlers */

void cp_rpc_rooms_create(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__CreateRoomRequest *req = (const void *)m;
    char gen[SB_ID_LEN];
    const char *id = req->id;
    if (id == NULL || id[0] == '\0') {
        sb_id_new("r", gen);
        id = gen;
    } else if (!cp_check_id(call, "id", id)) {
        return;
    }
    if (!cp_check_optional_id(call, "owner_id", req->owner_id) ||
        !cp_check_text(call, "name", req->name, MAX_NAME) ||
        !cp_check_text(call, "description", req->description, MAX_DESCRIPTION))
        return;
    if (req->max_members < 0) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "max_members must not be negative");
        return;
    }
    if (req->n_metadata > MAX_METADATA) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "metadata has more than %d entries",
                      MAX_METADATA);
        return;
    }
    struct cp_kv *kv = req->n_metadata ? calloc(req->n_metadata, sizeof(*kv)) : NULL;
    if (req->n_metadata > 0 && kv == NULL) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    for (size_t i = 0; i < req->n_metadata; i++) {
        if (!cp_rpc_rooms_check_meta_kv(call, req->metadata[i]->key, req->metadata[i]->value)) {
            free(kv);
            return;
        }
        kv[i].key = req->metadata[i]->key;
        kv[i].value = req->metadata[i]->value;
    }
    int64_t now = sb_time_now_ms();
    struct cp_room room = {.id = (char *)id,
                           .name = req->name ? req->name : "",
                           .description = req->description ? req->description : "",
                           .owner_id = req->owner_id ? req->owner_id : "",
                           .is_private = req->private_,
                           .max_members = req->max_members,
                           .created_at = now,
                           .updated_at = now,
                           .metadata = kv,
                           .n_metadata = req->n_metadata};
    cp_rooms_create(c, &room, cp_rpc_rooms_room_done, call);
    free(kv);
}

void cp_rpc_rooms_get(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__GetRoomRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id))
        return;
    cp_rooms_get(c, req->room_id, cp_rpc_rooms_room_done, call);
}

static void list_done(void *arg, const struct cp_status *st, const struct cp_room *const *rooms,
                      size_t n, bool more)
{
    struct cp_call *call = arg;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(call, st);
        return;
    }
    Switchboard__V1__ListRoomsResponse resp = SWITCHBOARD__V1__LIST_ROOMS_RESPONSE__INIT;
    struct room_pb *pbs = n ? calloc(n, sizeof(*pbs)) : NULL;
    Switchboard__V1__Room **ptrs = n ? calloc(n, sizeof(*ptrs)) : NULL;
    size_t done = 0;
    bool ok = n == 0 || (pbs != NULL && ptrs != NULL);
    for (; ok && done < n; done++) {
        if (!room_to_pb(rooms[done], &pbs[done])) {
            ok = false;
            break;
        }
        ptrs[done] = &pbs[done].room;
    }
    if (!ok) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
    } else {
        resp.rooms = ptrs;
        resp.n_rooms = n;
        resp.next_page_token = (more && n > 0) ? rooms[n - 1]->id : "";
        cp_call_reply(call, &resp.base);
    }
    for (size_t i = 0; i < done; i++)
        room_pb_fini(&pbs[i]);
    free(pbs);
    free(ptrs);
}

void cp_rpc_rooms_list(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__ListRoomsRequest *req = (const void *)m;
    if (req->page_size < 0) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "page_size must not be negative");
        return;
    }
    if (req->page_token != NULL && req->page_token[0] != '\0' &&
        !sb_ident_is_valid(req->page_token)) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "page_token is not one this server gave");
        return;
    }
    if (!cp_check_text(call, "name_prefix", req->name_prefix, MAX_NAME))
        return;
    struct cp_room_query q = {
        .after_id = req->page_token,
        .name_prefix = req->name_prefix,
        .include_archived = req->include_archived,
        .limit = req->page_size == 0
                     ? CP_RPC_DEFAULT_LIMIT
                     : (req->page_size > CP_RPC_MAX_LIMIT ? CP_RPC_MAX_LIMIT : req->page_size)};
    cp_rooms_list(c, &q, list_done, call);
}

void cp_rpc_rooms_delete(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__DeleteRoomRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id) ||
        !cp_check_optional_id(call, "actor_id", req->actor_id))
        return;
    if (req->actor_id != NULL && req->actor_id[0] != '\0')
        cp_rooms_delete_as(c, req->room_id, req->actor_id, cp_call_done_empty, call);
    else
        cp_rooms_delete(c, req->room_id, cp_call_done_empty, call);
}

struct join_call {
    struct cp_call *call;
    struct cp_ctx *c;
    const char *room_id; /* borrowed from the request, alive until the call finishes */
    const char *user_id;
};

static bool user_online(struct cp_ctx *c, const char *user_id)
{
    struct cp_user *u = cp_presence_user(&c->presence, user_id);
    return u != NULL && u->online;
}

static void join_done(void *arg, const struct cp_status *st, const struct cp_join_outcome *o)
{
    struct join_call *jc = arg;
    struct cp_call *call = jc->call;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(call, st);
    } else if (!o->added) {
        cp_call_failf(call, SB_CODE_ALREADY_ROOM_MEMBER, "user %s is already a member of room %s",
                      jc->user_id, jc->room_id);
    } else {
        Switchboard__V1__Member mem = SWITCHBOARD__V1__MEMBER__INIT;
        mem.room_id = (char *)jc->room_id;
        mem.user_id = (char *)jc->user_id;
        mem.role = (char *)cp_role_name(o->role);
        mem.joined_at = o->joined_at;
        mem.online = user_online(jc->c, jc->user_id);
        cp_call_reply(call, &mem.base);
    }
    free(jc);
}

void cp_rpc_rooms_join(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__JoinRoomRequest *req = (const void *)m;
    enum cp_role role;
    if (!cp_check_id(call, "room_id", req->room_id) || !cp_check_id(call, "user_id", req->user_id))
        return;
    if (cp_role_parse(req->role, &role) != SB_OK) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE,
                      "role must be one of owner, admin, moderator, member");
        return;
    }
    struct join_call *jc = malloc(sizeof(*jc));
    if (jc == NULL) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    *jc = (struct join_call){call, c, req->room_id, req->user_id};
    cp_rooms_join(c, req->room_id, req->user_id, role, false, false, false, 0, join_done, jc);
}

void cp_rpc_rooms_leave(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__LeaveRoomRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id) ||
        !cp_check_id(call, "user_id", req->user_id) ||
        !cp_check_optional_id(call, "actor_id", req->actor_id))
        return;
    if (req->actor_id != NULL && req->actor_id[0] != '\0' &&
        strcmp(req->actor_id, req->user_id) != 0)
        cp_rooms_kick(c, req->room_id, req->actor_id, req->user_id, cp_call_done_empty, call);
    else
        cp_rooms_leave(c, req->room_id, req->user_id, cp_call_done_empty, call);
}

struct members_call {
    struct cp_call *call;
    struct cp_ctx *c;
    const char *room_id;
};

static void members_done(void *arg, const struct cp_status *st, const struct cp_member *members,
                         size_t n)
{
    struct members_call *mc = arg;
    struct cp_call *call = mc->call;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(call, st);
        free(mc);
        return;
    }
    Switchboard__V1__GetRoomMembersResponse resp = SWITCHBOARD__V1__GET_ROOM_MEMBERS_RESPONSE__INIT;
    Switchboard__V1__Member *arr = n ? calloc(n, sizeof(*arr)) : NULL;
    Switchboard__V1__Member **ptrs = n ? calloc(n, sizeof(*ptrs)) : NULL;
    if (n > 0 && (arr == NULL || ptrs == NULL)) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
    } else {
        for (size_t i = 0; i < n; i++) {
            Switchboard__V1__Member mem = SWITCHBOARD__V1__MEMBER__INIT;
            mem.room_id = (char *)mc->room_id;
            mem.user_id = members[i].user_id;
            mem.role = (char *)cp_role_name(members[i].role);
            mem.joined_at = members[i].joined_at;
            mem.online = user_online(mc->c, members[i].user_id);
            arr[i] = mem;
            ptrs[i] = &arr[i];
        }
        resp.members = ptrs;
        resp.n_members = n;
        cp_call_reply(call, &resp.base);
    }
    free(arr);
    free(ptrs);
    free(mc);
}

void cp_rpc_rooms_members(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__GetRoomMembersRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id))
        return;
    struct members_call *mc = malloc(sizeof(*mc));
    if (mc == NULL) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    *mc = (struct members_call){call, c, req->room_id};
    cp_rooms_members(c, req->room_id, members_done, mc);
}
