/* switchboard.v1.Rooms administration: UpdateRoom, ArchiveRoom, RestoreRoom,
 * TransferRoomOwnership, BulkJoinRoom, SetMemberRole, BanMember, UnbanMember, ListBans,
 * CreateInvite, AcceptInvite: the requests' checks and answers around flows/cp_roomadmin.c. */
#include "cp_rpc.h"

#include <stdlib.h>

#include "cp_roomadmin.h"
#include "switchboard/v1/rooms.pb-c.h"

#define MAX_NAME        200
#define MAX_DESCRIPTION 2000
#define MAX_METADATA    64
#define MAX_REASON      500
#define MAX_BULK        1000

/* The `arg` of the flows whose answer needs more than the call: the context for the members'
 * presence, BulkJoinRoom's room (borrowed from the request, alive until the call finishes). */
struct adm {
    struct cp_ctx *c;
    struct cp_call *call;
    const char *room_id; /* BulkJoinRoom: borrowed from the request */
};

static struct adm *adm_new(struct cp_ctx *c, struct cp_call *call, const char *room_id)
{
    struct adm *a = malloc(sizeof(*a));
    if (a == NULL) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return NULL;
    }
    *a = (struct adm){c, call, room_id};
    return a;
}

static bool user_online(struct cp_ctx *c, const char *user_id)
{
    struct cp_user *u = cp_presence_user(&c->presence, user_id);
    return u != NULL && u->online;
}

static bool check_actor(struct cp_call *call, const char *what, const char *v)
{
    return cp_check_optional_id(call, what, v);
}

static Switchboard__V1__Member member_pb(struct cp_ctx *c, const char *room_id, const char *user_id,
                                         enum cp_role role, int64_t joined_at)
{
    Switchboard__V1__Member mem = SWITCHBOARD__V1__MEMBER__INIT;
    mem.room_id = (char *)room_id;
    mem.user_id = (char *)user_id;
    mem.role = (char *)cp_role_name(role);
    mem.joined_at = joined_at;
    mem.online = user_online(c, user_id);
    return mem;
}

/* SetMemberRole, AcceptInvite: the Member. */
static void member_done(void *arg, const struct cp_status *st, const char *room_id,
                        const struct cp_member *m)
{
    struct adm *a = arg;
    if (st->code != SB_CODE_NONE || m == NULL) {
        cp_call_fail(a->call, st);
    } else {
        Switchboard__V1__Member mem = member_pb(a->c, room_id, m->user_id, m->role, m->joined_at);
        cp_call_reply(a->call, &mem.base);
    }
    free(a);
}

/* ---------------------------------------------------------------- UpdateRoom */

void cp_rpc_rooms_update(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__UpdateRoomRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id) ||
        !check_actor(call, "actor_id", req->actor_id) ||
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
    for (size_t i = 0; i < req->n_metadata; i++) {
        if (!cp_rpc_rooms_check_meta_kv(call, req->metadata[i]->key, req->metadata[i]->value))
            return;
    }
    struct cp_kv kv[MAX_METADATA];
    for (size_t i = 0; i < req->n_metadata; i++)
        kv[i] = (struct cp_kv){req->metadata[i]->key, req->metadata[i]->value};
    struct cp_roomadmin_update u = {.name = req->name,
                                    .description = req->description,
                                    .max_members = req->max_members,
                                    .is_private = req->private_,
                                    .metadata = kv,
                                    .n_metadata = req->n_metadata};
    if (req->n_update_fields == 0)
        u.fields = cp_roomadmin_nonzero_fields(&u);
    for (size_t i = 0; i < req->n_update_fields; i++) {
        const char *f = req->update_fields[i] ? req->update_fields[i] : "";
        unsigned bit = cp_roomadmin_field(f);
        if (bit == 0) {
            cp_call_failf(call, SB_CODE_INVALID_MESSAGE,
                          "update_fields: \"%.64s\" is not one of name, description, "
                          "max_members, metadata, private",
                          f);
            return;
        }
        u.fields |= bit;
    }
    cp_roomadmin_update(c, req->room_id, req->actor_id, &u, cp_rpc_rooms_room_done, call);
}

/* ---------------------------------------------------------------- ArchiveRoom / RestoreRoom */

static void archive_start(struct cp_ctx *c, struct cp_call *call, const char *room_id,
                          const char *actor_id, bool archive)
{
    if (!cp_check_id(call, "room_id", room_id) || !check_actor(call, "actor_id", actor_id))
        return;
    cp_roomadmin_archive(c, room_id, actor_id, archive, cp_rpc_rooms_room_done, call);
}

void cp_rpc_rooms_archive(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__ArchiveRoomRequest *req = (const void *)m;
    archive_start(c, call, req->room_id, req->actor_id, true);
}

void cp_rpc_rooms_restore(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__RestoreRoomRequest *req = (const void *)m;
    archive_start(c, call, req->room_id, req->actor_id, false);
}

/* ---------------------------------------------------------------- TransferRoomOwnership */

void cp_rpc_rooms_transfer(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__TransferRoomOwnershipRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id) ||
        !cp_check_id(call, "new_owner_id", req->new_owner_id) ||
        !check_actor(call, "actor_id", req->actor_id))
        return;
    cp_roomadmin_transfer(c, req->room_id, req->actor_id, req->new_owner_id, cp_rpc_rooms_room_done,
                          call);
}

/* ---------------------------------------------------------------- SetMemberRole */

void cp_rpc_rooms_set_role(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__SetMemberRoleRequest *req = (const void *)m;
    enum cp_role role;
    if (!cp_check_id(call, "room_id", req->room_id) ||
        !cp_check_id(call, "user_id", req->user_id) ||
        !check_actor(call, "actor_id", req->actor_id))
        return;
    if (cp_role_parse(req->role, &role) != SB_OK) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE,
                      "role must be one of admin, moderator, member");
        return;
    }
    if (role == CP_ROLE_OWNER) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE,
                      "role owner is given only by TransferRoomOwnership");
        return;
    }
    struct adm *a = adm_new(c, call, NULL);
    if (a == NULL)
        return;
    cp_roomadmin_set_role(c, req->room_id, req->actor_id, req->user_id, role, member_done, a);
}

/* ---------------------------------------------------------------- BanMember, UnbanMember */

void cp_rpc_rooms_ban(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__BanMemberRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id) ||
        !cp_check_id(call, "user_id", req->user_id) ||
        !check_actor(call, "moderator_id", req->moderator_id) ||
        !cp_check_text(call, "reason", req->reason, MAX_REASON))
        return;
    if (req->duration_ms < 0) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE,
                      "duration_ms must not be negative (0 means permanent)");
        return;
    }
    cp_roomadmin_ban(c, req->room_id, req->moderator_id, req->user_id, req->reason,
                     req->duration_ms, cp_call_done_empty, call);
}

void cp_rpc_rooms_unban(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__UnbanMemberRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id) ||
        !cp_check_id(call, "user_id", req->user_id) ||
        !check_actor(call, "moderator_id", req->moderator_id))
        return;
    cp_roomadmin_unban(c, req->room_id, req->moderator_id, req->user_id, cp_call_done_empty, call);
}

/* ---------------------------------------------------------------- ListBans */

static void bans_done(void *arg, const struct cp_status *st, const struct cp_ban *bans, size_t n)
{
    struct cp_call *call = arg;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(call, st);
        return;
    }
    Switchboard__V1__Ban *pbs = n ? calloc(n, sizeof(*pbs)) : NULL;
    Switchboard__V1__Ban **ptrs = n ? calloc(n, sizeof(*ptrs)) : NULL;
    if (n > 0 && (pbs == NULL || ptrs == NULL)) {
        free(pbs);
        free(ptrs);
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        Switchboard__V1__Ban b = SWITCHBOARD__V1__BAN__INIT;
        b.room_id = (char *)bans[i].room_id;
        b.user_id = (char *)bans[i].user_id;
        b.reason = (char *)bans[i].reason;
        b.moderator_id = (char *)bans[i].moderator_id;
        b.created_at = bans[i].created_at;
        b.expires_at = bans[i].expires_at;
        pbs[i] = b;
        ptrs[i] = &pbs[i];
    }
    Switchboard__V1__ListBansResponse resp = SWITCHBOARD__V1__LIST_BANS_RESPONSE__INIT;
    resp.bans = ptrs;
    resp.n_bans = n;
    cp_call_reply(call, &resp.base);
    free(pbs);
    free(ptrs);
}

void cp_rpc_rooms_bans(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__ListBansRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id))
        return;
    cp_roomadmin_bans(c, req->room_id, bans_done, call);
}

/* ---------------------------------------------------------------- CreateInvite, AcceptInvite */

static void invite_done(void *arg, const struct cp_status *st, const struct cp_invite *inv)
{
    struct cp_call *call = arg;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(call, st);
        return;
    }
    Switchboard__V1__Invite pb = SWITCHBOARD__V1__INVITE__INIT;
    pb.id = (char *)inv->id;
    pb.room_id = (char *)inv->room_id;
    pb.inviter_id = (char *)inv->inviter_id;
    pb.invitee_id = (char *)inv->invitee_id;
    pb.created_at = inv->created_at;
    pb.expires_at = inv->expires_at;
    cp_call_reply(call, &pb.base);
}

void cp_rpc_rooms_invite(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__CreateInviteRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id) ||
        !cp_check_id(call, "invitee_id", req->invitee_id) ||
        !check_actor(call, "inviter_id", req->inviter_id))
        return;
    if (req->ttl_ms < 0 || req->ttl_ms > CP_ROOMADMIN_INVITE_TTL_MAX) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE,
                      "ttl_ms must be 0 (7 days) or up to %lld (30 days)",
                      (long long)CP_ROOMADMIN_INVITE_TTL_MAX);
        return;
    }
    cp_roomadmin_invite(c, req->room_id, req->inviter_id, req->invitee_id, req->ttl_ms, invite_done,
                        call);
}

void cp_rpc_rooms_accept(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__AcceptInviteRequest *req = (const void *)m;
    if (!cp_check_id(call, "invite_id", req->invite_id) ||
        !cp_check_id(call, "user_id", req->user_id))
        return;
    struct adm *a = adm_new(c, call, NULL);
    if (a == NULL)
        return;
    cp_roomadmin_accept(c, req->invite_id, req->user_id, member_done, a);
}

/* ---------------------------------------------------------------- BulkJoinRoom */

static void bulk_done(void *arg, const struct cp_status *st, const struct cp_bulk_result *res,
                      size_t n)
{
    struct adm *a = arg;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(a->call, st);
        free(a);
        return;
    }
    Switchboard__V1__Member *members = calloc(n, sizeof(*members));
    Switchboard__V1__Member **member_ptrs = calloc(n, sizeof(*member_ptrs));
    Switchboard__V1__BulkJoinFailure *failures = calloc(n, sizeof(*failures));
    Switchboard__V1__BulkJoinFailure **failure_ptrs = calloc(n, sizeof(*failure_ptrs));
    Switchboard__V1__BulkJoinRoomResponse resp = SWITCHBOARD__V1__BULK_JOIN_ROOM_RESPONSE__INIT;
    if (!members || !member_ptrs || !failures || !failure_ptrs) {
        cp_call_failf(a->call, SB_CODE_INTERNAL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (res[i].code == SB_CODE_NONE) {
            members[resp.n_members] =
                member_pb(a->c, a->room_id, res[i].user_id, res[i].role, res[i].joined_at);
            member_ptrs[resp.n_members] = &members[resp.n_members];
            resp.n_members++;
            continue;
        }
        Switchboard__V1__BulkJoinFailure f = SWITCHBOARD__V1__BULK_JOIN_FAILURE__INIT;
        f.user_id = (char *)res[i].user_id;
        f.code = (char *)sb_code_name(res[i].code);
        f.message = (char *)res[i].msg;
        failures[resp.n_failures] = f;
        failure_ptrs[resp.n_failures] = &failures[resp.n_failures];
        resp.n_failures++;
    }
    resp.members = member_ptrs;
    resp.failures = failure_ptrs;
    cp_call_reply(a->call, &resp.base);
out:
    free(members);
    free(member_ptrs);
    free(failures);
    free(failure_ptrs);
    free(a);
}

void cp_rpc_rooms_bulk_join(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__BulkJoinRoomRequest *req = (const void *)m;
    enum cp_role role;
    if (!cp_check_id(call, "room_id", req->room_id))
        return;
    if (cp_role_parse(req->role, &role) != SB_OK) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE,
                      "role must be one of owner, admin, moderator, member");
        return;
    }
    if (req->n_user_ids == 0 || req->n_user_ids > MAX_BULK) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "user_ids must hold 1 to %d ids", MAX_BULK);
        return;
    }
    struct adm *a = adm_new(c, call, req->room_id);
    if (a == NULL)
        return;
    cp_roomadmin_bulk_join(c, req->room_id, (const char *const *)req->user_ids, req->n_user_ids,
                           role, bulk_done, a);
}
