/* switchboard.v1.Rooms administration: UpdateRoom, ArchiveRoom, RestoreRoom,
 * TransferRoomOwnership, BulkJoinRoom, SetMemberRole, BanMember, UnbanMember, ListBans,
 * CreateInvite, AcceptInvite. Actors are checked against cp_perm (docs/permissions.md). */
#include "cp_rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cp_json.h"
#include "cp_perm.h"
#include "cp_rooms.h"
#include "sb_ident.h"
#include "sb_log.h"
#include "sb_time.h"
#include "switchboard/v1/rooms.pb-c.h"

#define MAX_NAME        200
#define MAX_DESCRIPTION 2000
#define MAX_METADATA    64
#define MAX_REASON      500
#define MAX_BULK        1000
#define INVITE_TTL_DEF  (7LL * 24 * 3600 * 1000)
#define INVITE_TTL_MAX  (30LL * 24 * 3600 * 1000)

/* One administrative call in flight. The request (and the strings borrowed from it) lives
 * until the call is finished. */
struct adm {
    struct cp_ctx *c;
    struct cp_call *call;
    const void *req;
    const char *room_id;
    const char *actor_id; /* NULL or "": the backend */
    const char *target_id;
    bool actor_member, target_member;
    enum cp_role actor_role, target_role;
    void (*next)(struct adm *a);
    /* per method */
    unsigned mask;      /* UpdateRoom: fields to write */
    bool archive;       /* Archive (true) / Restore (false) */
    enum cp_role role;  /* SetMemberRole, BulkJoinRoom */
    char *owner_id;     /* TransferRoomOwnership: the owner before */
    char *key;          /* document key */
    int64_t version;    /* document version read */
    int64_t created_at; /* CreateInvite */
    int64_t expires_at; /* BanMember, CreateInvite */
    json_t *doc;        /* AcceptInvite: the invite */
};

static struct adm *adm_new(struct cp_ctx *c, struct cp_call *call, const void *req)
{
    struct adm *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return NULL;
    }
    a->c = c;
    a->call = call;
    a->req = req;
    return a;
}

static void adm_free(struct adm *a)
{
    if (a == NULL)
        return;
    free(a->owner_id);
    free(a->key);
    json_decref(a->doc);
    free(a);
}

static void adm_fail(struct adm *a, const struct cp_status *st)
{
    cp_call_fail(a->call, st);
    adm_free(a);
}

static bool has(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static bool user_online(struct cp_ctx *c, const char *user_id)
{
    struct cp_user *u = cp_presence_user(&c->presence, user_id);
    return u != NULL && u->online;
}

static void reply_member(struct adm *a, const char *room_id, const char *user_id, enum cp_role role,
                         int64_t joined_at)
{
    Switchboard__V1__Member mem = SWITCHBOARD__V1__MEMBER__INIT;
    mem.room_id = (char *)room_id;
    mem.user_id = (char *)user_id;
    mem.role = (char *)cp_role_name(role);
    mem.joined_at = joined_at;
    mem.online = user_online(a->c, user_id);
    cp_call_reply(a->call, &mem.base);
}

static void reply_room_done(void *arg, const struct cp_status *st, const struct cp_room *room)
{
    struct adm *a = arg;
    cp_rpc_rooms_room_done(a->call, st, room);
    adm_free(a);
}

/* ---------------------------------------------------------------- frames to members */

/* member_updated (cp_json.c) to members. */
static void notify_role(struct cp_ctx *c, const char *room_id, const char *user_id,
                        enum cp_role role)
{
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_member_updated(&b, room_id, user_id, role, sb_time_now_ms());
    if (!b.failed)
        cp_rooms_notify(c, room_id, b.data, b.len);
    cp_buf_fini(&b);
}

/* room_updated (cp_json.c) to members. */
static void notify_room(struct cp_ctx *c, const struct cp_room *r)
{
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_room_updated(&b, r, sb_time_now_ms());
    if (!b.failed)
        cp_rooms_notify(c, r->id, b.data, b.len);
    cp_buf_fini(&b);
}

/* ---------------------------------------------------------------- actor and target roles */

static void roles_read(void *arg, const struct cp_status *st, const struct cp_member *members,
                       size_t n)
{
    struct adm *a = arg;
    if (st->code != SB_CODE_NONE) {
        adm_fail(a, st);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (has(a->actor_id) && strcmp(members[i].user_id, a->actor_id) == 0) {
            a->actor_member = true;
            a->actor_role = members[i].role;
        }
        if (has(a->target_id) && strcmp(members[i].user_id, a->target_id) == 0) {
            a->target_member = true;
            a->target_role = members[i].role;
        }
    }
    if (has(a->actor_id) && !a->actor_member) {
        cp_call_failf(a->call, SB_CODE_PERMISSION_DENIED, "user %s is not a member of room %s",
                      a->actor_id, a->room_id);
        adm_free(a);
        return;
    }
    a->next(a);
}

/* Reads the room's members (ROOM_NOT_FOUND), notes the actor's and the target's roles, refuses
 * an actor who is not a member, then runs `next`. */
static void resolve(struct adm *a, const char *room_id, const char *actor_id, const char *target_id,
                    void (*next)(struct adm *a))
{
    a->room_id = room_id;
    a->actor_id = actor_id;
    a->target_id = target_id;
    a->next = next;
    a->c->store->ops->members_list(a->c->store, room_id, roles_read, a);
}

/* True when the actor (if any) may do `action` to a member of role `target` (has_target) or
 * at all; else finishes the call with PERMISSION_DENIED, frees `a` and returns false. */
static bool allowed(struct adm *a, enum cp_perm_action action, bool has_target, enum cp_role target)
{
    if (!has(a->actor_id))
        return true;
    if (cp_perm_allows(a->actor_role, action, has_target ? target : CP_ROLE_MEMBER))
        return true;
    if (has_target)
        cp_call_failf(a->call, SB_CODE_PERMISSION_DENIED,
                      "user %s (%s of room %s) may not %s a member whose role is %s", a->actor_id,
                      cp_role_name(a->actor_role), a->room_id, cp_perm_action_name(action),
                      cp_role_name(target));
    else
        cp_call_failf(a->call, SB_CODE_PERMISSION_DENIED,
                      "user %s (%s of room %s) may not %s the room", a->actor_id,
                      cp_role_name(a->actor_role), a->room_id, cp_perm_action_name(action));
    adm_free(a);
    return false;
}

static bool check_actor(struct cp_call *call, const char *what, const char *v)
{
    return cp_check_optional_id(call, what, v);
}

/* ---------------------------------------------------------------- UpdateRoom */

enum { F_NAME = 1, F_DESCRIPTION = 2, F_MAX_MEMBERS = 4, F_METADATA = 8, F_PRIVATE = 16 };

static bool replace_str(char **field, const char *v)
{
    char *d = strdup(v != NULL ? v : "");
    if (d == NULL)
        return false;
    free(*field);
    *field = d;
    return true;
}

static bool replace_metadata(struct cp_room *room, const Switchboard__V1__UpdateRoomRequest *req)
{
    struct cp_kv *kv = req->n_metadata ? calloc(req->n_metadata, sizeof(*kv)) : NULL;
    if (req->n_metadata > 0 && kv == NULL)
        return false;
    for (size_t i = 0; i < req->n_metadata; i++) {
        kv[i].key = strdup(req->metadata[i]->key ? req->metadata[i]->key : "");
        kv[i].value = strdup(req->metadata[i]->value ? req->metadata[i]->value : "");
        if (kv[i].key == NULL || kv[i].value == NULL) {
            for (size_t j = 0; j <= i; j++) {
                free(kv[j].key);
                free(kv[j].value);
            }
            free(kv);
            return false;
        }
    }
    for (size_t i = 0; i < room->n_metadata; i++) {
        free(room->metadata[i].key);
        free(room->metadata[i].value);
    }
    free(room->metadata);
    room->metadata = kv;
    room->n_metadata = req->n_metadata;
    return true;
}

static void update_edit(void *arg, struct cp_room *room, struct cp_status *st)
{
    struct adm *a = arg;
    const Switchboard__V1__UpdateRoomRequest *req = a->req;
    bool ok = true;
    if (a->mask & F_NAME)
        ok = ok && replace_str(&room->name, req->name);
    if (a->mask & F_DESCRIPTION)
        ok = ok && replace_str(&room->description, req->description);
    if (a->mask & F_MAX_MEMBERS)
        room->max_members = req->max_members;
    if (a->mask & F_PRIVATE)
        room->is_private = req->private_;
    if (a->mask & F_METADATA)
        ok = ok && replace_metadata(room, req);
    if (!ok)
        cp_status_set(st, SB_CODE_INTERNAL, "out of memory");
}

static void room_changed(void *arg, const struct cp_status *st, const struct cp_room *room)
{
    struct adm *a = arg;
    if (st->code == SB_CODE_NONE)
        notify_room(a->c, room);
    reply_room_done(arg, st, room);
}

static void update_go(struct adm *a)
{
    if (!allowed(a, CP_PERM_UPDATE_ROOM, false, CP_ROLE_MEMBER))
        return;
    a->c->store->ops->room_update(a->c->store, a->room_id, update_edit, a, room_changed, a);
}

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
    unsigned mask = 0;
    if (req->n_update_fields == 0) {
        mask |= has(req->name) ? F_NAME : 0;
        mask |= has(req->description) ? F_DESCRIPTION : 0;
        mask |= req->max_members != 0 ? F_MAX_MEMBERS : 0;
        mask |= req->n_metadata > 0 ? F_METADATA : 0;
        mask |= req->private_ ? F_PRIVATE : 0;
    }
    static const struct {
        const char *name;
        unsigned bit;
    } fields[] = {{"name", F_NAME},
                  {"description", F_DESCRIPTION},
                  {"max_members", F_MAX_MEMBERS},
                  {"metadata", F_METADATA},
                  {"private", F_PRIVATE}};
    for (size_t i = 0; i < req->n_update_fields; i++) {
        const char *f = req->update_fields[i] ? req->update_fields[i] : "";
        unsigned bit = 0;
        for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]) && bit == 0; k++)
            bit = strcmp(f, fields[k].name) == 0 ? fields[k].bit : 0;
        if (bit == 0) {
            cp_call_failf(call, SB_CODE_INVALID_MESSAGE,
                          "update_fields: \"%.64s\" is not one of name, description, "
                          "max_members, metadata, private",
                          f);
            return;
        }
        mask |= bit;
    }
    struct adm *a = adm_new(c, call, req);
    if (a == NULL)
        return;
    a->mask = mask;
    resolve(a, req->room_id, req->actor_id, NULL, update_go);
}

/* ---------------------------------------------------------------- ArchiveRoom / RestoreRoom */

static void archive_edit(void *arg, struct cp_room *room, struct cp_status *st)
{
    struct adm *a = arg;
    (void)st;
    room->archived = a->archive;
}

static void archive_go(struct adm *a)
{
    if (!allowed(a, CP_PERM_ARCHIVE, false, CP_ROLE_MEMBER))
        return;
    a->c->store->ops->room_update(a->c->store, a->room_id, archive_edit, a, room_changed, a);
}

static void archive_start(struct cp_ctx *c, struct cp_call *call, const char *room_id,
                          const char *actor_id, const void *req, bool archive)
{
    if (!cp_check_id(call, "room_id", room_id) || !check_actor(call, "actor_id", actor_id))
        return;
    struct adm *a = adm_new(c, call, req);
    if (a == NULL)
        return;
    a->archive = archive;
    resolve(a, room_id, actor_id, NULL, archive_go);
}

void cp_rpc_rooms_archive(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__ArchiveRoomRequest *req = (const void *)m;
    archive_start(c, call, req->room_id, req->actor_id, req, true);
}

void cp_rpc_rooms_restore(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__RestoreRoomRequest *req = (const void *)m;
    archive_start(c, call, req->room_id, req->actor_id, req, false);
}

/* ---------------------------------------------------------------- TransferRoomOwnership */

static void transfer_edit(void *arg, struct cp_room *room, struct cp_status *st)
{
    struct adm *a = arg;
    if (!replace_str(&room->owner_id, a->target_id))
        cp_status_set(st, SB_CODE_INTERNAL, "out of memory");
}

static void transfer_demoted(void *arg, const struct cp_status *st, const struct cp_member *members,
                             size_t n)
{
    struct adm *a = arg;
    (void)members;
    (void)n;
    /* The former owner may have left the room: nothing to demote then. */
    if (st->code != SB_CODE_NONE && st->code != SB_CODE_NOT_ROOM_MEMBER) {
        adm_fail(a, st);
        return;
    }
    if (st->code == SB_CODE_NONE)
        notify_role(a->c, a->room_id, a->owner_id, CP_ROLE_ADMIN);
    a->c->store->ops->room_update(a->c->store, a->room_id, transfer_edit, a, room_changed, a);
}

static void transfer_promoted(void *arg, const struct cp_status *st,
                              const struct cp_member *members, size_t n)
{
    struct adm *a = arg;
    (void)members;
    (void)n;
    if (st->code != SB_CODE_NONE) {
        adm_fail(a, st);
        return;
    }
    notify_role(a->c, a->room_id, a->target_id, CP_ROLE_OWNER);
    if (has(a->owner_id) && strcmp(a->owner_id, a->target_id) != 0) {
        a->c->store->ops->member_set_role(a->c->store, a->room_id, a->owner_id, CP_ROLE_ADMIN,
                                          transfer_demoted, a);
        return;
    }
    a->c->store->ops->room_update(a->c->store, a->room_id, transfer_edit, a, room_changed, a);
}

static void transfer_go(struct adm *a)
{
    if (!allowed(a, CP_PERM_TRANSFER, false, CP_ROLE_MEMBER))
        return;
    if (!a->target_member) {
        cp_call_failf(a->call, SB_CODE_NOT_ROOM_MEMBER,
                      "user %s is not a member of room %s: only a member can become its owner",
                      a->target_id, a->room_id);
        adm_free(a);
        return;
    }
    if (a->target_role == CP_ROLE_OWNER && strcmp(a->owner_id, a->target_id) == 0) {
        a->c->store->ops->room_get(a->c->store, a->room_id, reply_room_done, a);
        return;
    }
    a->c->store->ops->member_set_role(a->c->store, a->room_id, a->target_id, CP_ROLE_OWNER,
                                      transfer_promoted, a);
}

static void transfer_room(void *arg, const struct cp_status *st, const struct cp_room *room)
{
    struct adm *a = arg;
    if (st->code != SB_CODE_NONE) {
        adm_fail(a, st);
        return;
    }
    a->owner_id = strdup(room->owner_id);
    if (a->owner_id == NULL) {
        cp_call_failf(a->call, SB_CODE_INTERNAL, "out of memory");
        adm_free(a);
        return;
    }
    const Switchboard__V1__TransferRoomOwnershipRequest *req = a->req;
    resolve(a, req->room_id, req->actor_id, req->new_owner_id, transfer_go);
}

void cp_rpc_rooms_transfer(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__TransferRoomOwnershipRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id) ||
        !cp_check_id(call, "new_owner_id", req->new_owner_id) ||
        !check_actor(call, "actor_id", req->actor_id))
        return;
    struct adm *a = adm_new(c, call, req);
    if (a == NULL)
        return;
    a->room_id = req->room_id;
    c->store->ops->room_get(c->store, req->room_id, transfer_room, a);
}

/* ---------------------------------------------------------------- SetMemberRole */

static void setrole_done(void *arg, const struct cp_status *st, const struct cp_member *members,
                         size_t n)
{
    struct adm *a = arg;
    if (st->code != SB_CODE_NONE || n == 0) {
        adm_fail(a, st);
        return;
    }
    if (a->target_role != a->role)
        notify_role(a->c, a->room_id, a->target_id, a->role);
    reply_member(a, a->room_id, members[0].user_id, members[0].role, members[0].joined_at);
    adm_free(a);
}

static void setrole_go(struct adm *a)
{
    if (!a->target_member) {
        cp_call_failf(a->call, SB_CODE_NOT_ROOM_MEMBER, "user %s is not a member of room %s",
                      a->target_id, a->room_id);
        adm_free(a);
        return;
    }
    if (a->target_role == CP_ROLE_OWNER) {
        cp_call_failf(a->call, SB_CODE_PERMISSION_DENIED,
                      "user %s owns room %s: the owner role changes only through "
                      "TransferRoomOwnership",
                      a->target_id, a->room_id);
        adm_free(a);
        return;
    }
    if (!allowed(a, CP_PERM_SET_ROLE, true, a->target_role))
        return;
    if (has(a->actor_id) && !cp_perm_allows(a->actor_role, CP_PERM_SET_ROLE, a->role)) {
        cp_call_failf(a->call, SB_CODE_PERMISSION_DENIED,
                      "user %s (%s of room %s) may not give the role %s", a->actor_id,
                      cp_role_name(a->actor_role), a->room_id, cp_role_name(a->role));
        adm_free(a);
        return;
    }
    a->c->store->ops->member_set_role(a->c->store, a->room_id, a->target_id, a->role, setrole_done,
                                      a);
}

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
    struct adm *a = adm_new(c, call, req);
    if (a == NULL)
        return;
    a->role = role;
    resolve(a, req->room_id, req->actor_id, req->user_id, setrole_go);
}

/* ---------------------------------------------------------------- BanMember */

static void reply_empty(struct adm *a)
{
    /* The empty responses (Ban, Unban) pack to the same zero bytes. */
    Switchboard__V1__BanMemberResponse resp = SWITCHBOARD__V1__BAN_MEMBER_RESPONSE__INIT;
    cp_call_reply(a->call, &resp.base);
    adm_free(a);
}

/* banned (cp_json.c) to the banned user's connections. */
static void notify_banned(struct adm *a)
{
    const Switchboard__V1__BanMemberRequest *req = a->req;
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_banned(&b, a->room_id, req->reason, a->expires_at, sb_time_now_ms());
    if (!b.failed) {
        const char *users[1] = {a->target_id};
        cp_fanout_users(&a->c->fan, users, 1, b.data, b.len);
    }
    cp_buf_fini(&b);
}

static void ban_left(void *arg, const struct cp_status *st)
{
    struct adm *a = arg;
    /* Gone already (a concurrent leave) is what the ban wanted. */
    if (st->code != SB_CODE_NONE && st->code != SB_CODE_NOT_ROOM_MEMBER) {
        adm_fail(a, st);
        return;
    }
    notify_banned(a);
    reply_empty(a);
}

static void ban_written(void *arg, const struct cp_status *st, const int64_t *v, size_t n)
{
    struct adm *a = arg;
    (void)v;
    (void)n;
    if (st->code != SB_CODE_NONE) {
        adm_fail(a, st);
        return;
    }
    if (a->target_member) {
        cp_rooms_leave(a->c, a->room_id, a->target_id, ban_left, a);
        return;
    }
    reply_empty(a);
}

static void ban_go(struct adm *a)
{
    const Switchboard__V1__BanMemberRequest *req = a->req;
    if (a->target_member && a->target_role == CP_ROLE_OWNER) {
        cp_call_failf(a->call, SB_CODE_PERMISSION_DENIED,
                      "user %s owns room %s and cannot be banned (transfer ownership first)",
                      a->target_id, a->room_id);
        adm_free(a);
        return;
    }
    if (!allowed(a, CP_PERM_BAN, true, a->target_member ? a->target_role : CP_ROLE_MEMBER))
        return;
    int64_t now = sb_time_now_ms();
    a->expires_at = req->duration_ms > 0 ? now + req->duration_ms : 0;
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "room_id", a->room_id, "user_id",
                          a->target_id, "reason", req->reason ? req->reason : "", "moderator_id",
                          req->moderator_id ? req->moderator_id : "", "created_at", (json_int_t)now,
                          "expires_at", (json_int_t)a->expires_at);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    char key[CP_ROOMS_KEY_MAX];
    cp_rooms_ban_key(key, a->room_id, a->target_id);
    if (text == NULL) {
        cp_call_failf(a->call, SB_CODE_INTERNAL, "out of memory");
        adm_free(a);
        return;
    }
    struct cp_doc_op op = {.key = key, .value = text, .expect = -1};
    a->c->store->ops->doc_write(a->c->store, &op, 1, ban_written, a);
    free(text);
}

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
    if (has(req->moderator_id) && strcmp(req->moderator_id, req->user_id) == 0) {
        cp_call_failf(call, SB_CODE_PERMISSION_DENIED, "user %s may not ban themselves",
                      req->user_id);
        return;
    }
    struct adm *a = adm_new(c, call, req);
    if (a == NULL)
        return;
    resolve(a, req->room_id, req->moderator_id, req->user_id, ban_go);
}

/* ---------------------------------------------------------------- UnbanMember */

static void unban_written(void *arg, const struct cp_status *st, const int64_t *v, size_t n)
{
    struct adm *a = arg;
    (void)v;
    (void)n;
    if (st->code != SB_CODE_NONE) {
        adm_fail(a, st);
        return;
    }
    reply_empty(a);
}

static void unban_go(struct adm *a)
{
    if (!allowed(a, CP_PERM_BAN, true, a->target_member ? a->target_role : CP_ROLE_MEMBER))
        return;
    char key[CP_ROOMS_KEY_MAX];
    cp_rooms_ban_key(key, a->room_id, a->target_id);
    /* Deleting an absent key succeeds: unbanning a user who is not banned is a no-op. */
    struct cp_doc_op op = {.key = key, .value = NULL, .expect = -1};
    a->c->store->ops->doc_write(a->c->store, &op, 1, unban_written, a);
}

void cp_rpc_rooms_unban(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__UnbanMemberRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id) ||
        !cp_check_id(call, "user_id", req->user_id) ||
        !check_actor(call, "moderator_id", req->moderator_id))
        return;
    struct adm *a = adm_new(c, call, req);
    if (a == NULL)
        return;
    resolve(a, req->room_id, req->moderator_id, req->user_id, unban_go);
}

/* ---------------------------------------------------------------- ListBans */

static const char *jstr(json_t *j, const char *k)
{
    json_t *v = json_object_get(j, k);
    return json_is_string(v) ? json_string_value(v) : "";
}

static int64_t jint(json_t *j, const char *k)
{
    json_t *v = json_object_get(j, k);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static void bans_listed(void *arg, const struct cp_status *st, const struct cp_doc *docs, size_t n)
{
    struct adm *a = arg;
    if (st->code != SB_CODE_NONE) {
        adm_fail(a, st);
        return;
    }
    int64_t now = sb_time_now_ms();
    json_t **parsed = n ? calloc(n, sizeof(*parsed)) : NULL;
    struct cp_doc_op *dels = n ? calloc(n, sizeof(*dels)) : NULL;
    Switchboard__V1__Ban *bans = n ? calloc(n, sizeof(*bans)) : NULL;
    Switchboard__V1__Ban **ptrs = n ? calloc(n, sizeof(*ptrs)) : NULL;
    if (n > 0 && (parsed == NULL || dels == NULL || bans == NULL || ptrs == NULL)) {
        free(parsed);
        free(dels);
        free(bans);
        free(ptrs);
        cp_call_failf(a->call, SB_CODE_INTERNAL, "out of memory");
        adm_free(a);
        return;
    }
    size_t n_bans = 0, n_dels = 0;
    const char *prefix_end = NULL;
    for (size_t i = 0; i < n; i++) {
        int64_t expires_at;
        if (!cp_rooms_ban_active(docs[i].value, now, &expires_at)) {
            dels[n_dels].key = strdup(docs[i].key);
            dels[n_dels].expect = docs[i].version;
            if (dels[n_dels].key != NULL)
                n_dels++;
            continue;
        }
        json_t *j = json_loads(docs[i].value, 0, NULL);
        if (j == NULL)
            continue;
        parsed[n_bans] = j;
        /* The user id is the key's last segment, whatever the record says. */
        prefix_end = strrchr(docs[i].key, '/');
        json_object_set_new(j, "user_id", json_string(prefix_end ? prefix_end + 1 : ""));
        Switchboard__V1__Ban b = SWITCHBOARD__V1__BAN__INIT;
        b.room_id = (char *)a->room_id;
        b.user_id = (char *)jstr(j, "user_id");
        b.reason = (char *)jstr(j, "reason");
        b.moderator_id = (char *)jstr(j, "moderator_id");
        b.created_at = jint(j, "created_at");
        b.expires_at = expires_at;
        bans[n_bans] = b;
        ptrs[n_bans] = &bans[n_bans];
        n_bans++;
    }
    /* Ended bans go now (their docs are not touched after this: the write may free them). */
    if (n_dels > 0)
        for (size_t i = 0; i < n_dels; i++)
            cp_rooms_doc_delete(a->c, dels[i].key, dels[i].expect);
    Switchboard__V1__ListBansResponse resp = SWITCHBOARD__V1__LIST_BANS_RESPONSE__INIT;
    resp.bans = ptrs;
    resp.n_bans = n_bans;
    cp_call_reply(a->call, &resp.base);
    for (size_t i = 0; i < n_bans; i++)
        json_decref(parsed[i]);
    for (size_t i = 0; i < n_dels; i++)
        free((char *)dels[i].key);
    free(parsed);
    free(dels);
    free(bans);
    free(ptrs);
    adm_free(a);
}

static void bans_room(void *arg, const struct cp_status *st, const struct cp_room *room)
{
    struct adm *a = arg;
    (void)room;
    if (st->code != SB_CODE_NONE) {
        adm_fail(a, st);
        return;
    }
    char prefix[CP_ROOMS_KEY_MAX];
    snprintf(prefix, sizeof(prefix), "bans/%s/", a->room_id);
    a->c->store->ops->doc_list(a->c->store, prefix, bans_listed, a);
}

void cp_rpc_rooms_bans(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__ListBansRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id))
        return;
    struct adm *a = adm_new(c, call, req);
    if (a == NULL)
        return;
    a->room_id = req->room_id;
    c->store->ops->room_get(c->store, req->room_id, bans_room, a);
}

/* ---------------------------------------------------------------- CreateInvite */

static void invite_written(void *arg, const struct cp_status *st, const int64_t *v, size_t n)
{
    struct adm *a = arg;
    (void)v;
    (void)n;
    if (st->code != SB_CODE_NONE) {
        adm_fail(a, st);
        return;
    }
    const Switchboard__V1__CreateInviteRequest *req = a->req;
    Switchboard__V1__Invite inv = SWITCHBOARD__V1__INVITE__INIT;
    inv.id = a->key + strlen("invites/");
    inv.room_id = (char *)a->room_id;
    inv.inviter_id = req->inviter_id ? req->inviter_id : "";
    inv.invitee_id = (char *)a->target_id;
    inv.created_at = a->created_at;
    inv.expires_at = a->expires_at;
    cp_call_reply(a->call, &inv.base);
    adm_free(a);
}

static void invite_go(struct adm *a)
{
    const Switchboard__V1__CreateInviteRequest *req = a->req;
    if (!allowed(a, CP_PERM_INVITE, false, CP_ROLE_MEMBER))
        return;
    if (a->target_member) {
        cp_call_failf(a->call, SB_CODE_ALREADY_ROOM_MEMBER,
                      "user %s is already a member of room %s", a->target_id, a->room_id);
        adm_free(a);
        return;
    }
    char id[SB_ID_LEN];
    sb_id_new("i", id);
    size_t klen = strlen("invites/") + strlen(id) + 1;
    a->key = malloc(klen);
    int64_t now = sb_time_now_ms();
    a->created_at = now;
    a->expires_at = now + (req->ttl_ms > 0 ? req->ttl_ms : INVITE_TTL_DEF);
    json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:I}", "room_id", a->room_id, "inviter_id",
                          req->inviter_id ? req->inviter_id : "", "invitee_id", a->target_id,
                          "created_at", (json_int_t)now, "expires_at", (json_int_t)a->expires_at);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (a->key == NULL || text == NULL) {
        free(text);
        cp_call_failf(a->call, SB_CODE_INTERNAL, "out of memory");
        adm_free(a);
        return;
    }
    snprintf(a->key, klen, "invites/%s", id);
    struct cp_doc_op op = {.key = a->key, .value = text, .expect = 0};
    a->c->store->ops->doc_write(a->c->store, &op, 1, invite_written, a);
    free(text);
}

static void invite_room(void *arg, const struct cp_status *st, const struct cp_room *room)
{
    struct adm *a = arg;
    if (st->code != SB_CODE_NONE) {
        adm_fail(a, st);
        return;
    }
    if (room->archived) {
        cp_call_failf(a->call, SB_CODE_ROOM_ARCHIVED, "room %s is archived", a->room_id);
        adm_free(a);
        return;
    }
    const Switchboard__V1__CreateInviteRequest *req = a->req;
    resolve(a, req->room_id, req->inviter_id, req->invitee_id, invite_go);
}

void cp_rpc_rooms_invite(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__CreateInviteRequest *req = (const void *)m;
    if (!cp_check_id(call, "room_id", req->room_id) ||
        !cp_check_id(call, "invitee_id", req->invitee_id) ||
        !check_actor(call, "inviter_id", req->inviter_id))
        return;
    if (req->ttl_ms < 0 || req->ttl_ms > INVITE_TTL_MAX) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE,
                      "ttl_ms must be 0 (7 days) or up to %lld (30 days)",
                      (long long)INVITE_TTL_MAX);
        return;
    }
    struct adm *a = adm_new(c, call, req);
    if (a == NULL)
        return;
    a->room_id = req->room_id;
    c->store->ops->room_get(c->store, req->room_id, invite_room, a);
}

/* ---------------------------------------------------------------- AcceptInvite */

static void accept_joined(void *arg, const struct cp_status *st, const struct cp_join_outcome *o)
{
    struct adm *a = arg;
    const Switchboard__V1__AcceptInviteRequest *req = a->req;
    if (st->code != SB_CODE_NONE) {
        adm_fail(a, st);
        return;
    }
    /* Used (or pointless, the user being in already): the invite is consumed either way. */
    cp_rooms_doc_delete(a->c, a->key, a->version);
    if (!o->added) {
        cp_call_failf(a->call, SB_CODE_ALREADY_ROOM_MEMBER,
                      "user %s is already a member of room %s", req->user_id, a->room_id);
        adm_free(a);
        return;
    }
    reply_member(a, a->room_id, req->user_id, o->role, o->joined_at);
    adm_free(a);
}

static void accept_read(void *arg, const struct cp_status *st, const struct cp_doc *doc)
{
    struct adm *a = arg;
    const Switchboard__V1__AcceptInviteRequest *req = a->req;
    if (st->code != SB_CODE_NONE) {
        adm_fail(a, st);
        return;
    }
    if (doc == NULL) {
        cp_call_failf(a->call, SB_CODE_INVITE_NOT_FOUND,
                      "invite %s does not exist (or was used already)", req->invite_id);
        adm_free(a);
        return;
    }
    a->doc = json_loads(doc->value, 0, NULL);
    const char *room_id = a->doc ? jstr(a->doc, "room_id") : "";
    if (!sb_ident_is_valid(room_id)) {
        cp_call_failf(a->call, SB_CODE_INTERNAL, "invite %s is unreadable", req->invite_id);
        adm_free(a);
        return;
    }
    a->room_id = room_id;
    a->version = doc->version;
    if (strcmp(jstr(a->doc, "invitee_id"), req->user_id) != 0) {
        cp_call_failf(a->call, SB_CODE_PERMISSION_DENIED,
                      "invite %s was made for another user than %s", req->invite_id, req->user_id);
        adm_free(a);
        return;
    }
    int64_t expires_at = jint(a->doc, "expires_at");
    if (expires_at > 0 && expires_at <= sb_time_now_ms()) {
        char ts[SB_TIME_RFC3339_LEN];
        sb_time_format_rfc3339(expires_at, ts, sizeof(ts));
        cp_rooms_doc_delete(a->c, a->key, a->version);
        cp_call_failf(a->call, SB_CODE_INVITE_EXPIRED, "invite %s expired at %s", req->invite_id,
                      ts);
        adm_free(a);
        return;
    }
    cp_rooms_join(a->c, a->room_id, req->user_id, CP_ROLE_MEMBER, false, false, 0, accept_joined,
                  a);
}

void cp_rpc_rooms_accept(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__AcceptInviteRequest *req = (const void *)m;
    if (!cp_check_id(call, "invite_id", req->invite_id) ||
        !cp_check_id(call, "user_id", req->user_id))
        return;
    struct adm *a = adm_new(c, call, req);
    if (a == NULL)
        return;
    size_t klen = strlen("invites/") + strlen(req->invite_id) + 1;
    a->key = malloc(klen);
    if (a->key == NULL) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        adm_free(a);
        return;
    }
    snprintf(a->key, klen, "invites/%s", req->invite_id);
    c->store->ops->doc_get(c->store, a->key, accept_read, a);
}

/* ---------------------------------------------------------------- BulkJoinRoom */

/* Joins one user after the other; each answer (inline or later) starts the next join. */
struct bulk {
    struct adm *a;
    size_t next; /* index of the next user to start */
    bool in_loop, pending;
    Switchboard__V1__Member *members;
    Switchboard__V1__Member **member_ptrs;
    size_t n_members;
    Switchboard__V1__BulkJoinFailure *failures;
    Switchboard__V1__BulkJoinFailure **failure_ptrs;
    char **failure_msgs;
    size_t n_failures;
};

static void bulk_free(struct bulk *b)
{
    for (size_t i = 0; i < b->n_failures; i++)
        free(b->failure_msgs[i]);
    free(b->failure_msgs);
    free(b->members);
    free(b->member_ptrs);
    free(b->failures);
    free(b->failure_ptrs);
    adm_free(b->a);
    free(b);
}

static void bulk_failure(struct bulk *b, const char *user_id, enum sb_code code, const char *msg)
{
    Switchboard__V1__BulkJoinFailure f = SWITCHBOARD__V1__BULK_JOIN_FAILURE__INIT;
    f.user_id = (char *)user_id;
    f.code = (char *)sb_code_name(code);
    b->failure_msgs[b->n_failures] = strdup(msg);
    f.message = b->failure_msgs[b->n_failures] ? b->failure_msgs[b->n_failures] : "";
    b->failures[b->n_failures] = f;
    b->n_failures++;
}

static void bulk_step(struct bulk *b);

static void bulk_joined(void *arg, const struct cp_status *st, const struct cp_join_outcome *o)
{
    struct bulk *b = arg;
    const Switchboard__V1__BulkJoinRoomRequest *req = b->a->req;
    const char *user = req->user_ids[b->next - 1];
    if (st->code != SB_CODE_NONE) {
        bulk_failure(b, user, st->code, st->msg);
    } else if (!o->added) {
        char msg[CP_STATUS_MSG_MAX];
        snprintf(msg, sizeof(msg), "user %s is already a member of room %s", user, req->room_id);
        bulk_failure(b, user, SB_CODE_ALREADY_ROOM_MEMBER, msg);
    } else {
        Switchboard__V1__Member mem = SWITCHBOARD__V1__MEMBER__INIT;
        mem.room_id = req->room_id;
        mem.user_id = (char *)user;
        mem.role = (char *)cp_role_name(o->role);
        mem.joined_at = o->joined_at;
        mem.online = user_online(b->a->c, user);
        b->members[b->n_members++] = mem;
    }
    b->pending = false;
    if (!b->in_loop)
        bulk_step(b);
}

static void bulk_step(struct bulk *b)
{
    const Switchboard__V1__BulkJoinRoomRequest *req = b->a->req;
    while (b->next < req->n_user_ids) {
        const char *user = req->user_ids[b->next++];
        if (!sb_ident_is_valid(user)) {
            bulk_failure(b, user, SB_CODE_INVALID_MESSAGE, "user_id is not a valid id");
            continue;
        }
        b->in_loop = true;
        b->pending = true;
        cp_rooms_join(b->a->c, req->room_id, user, b->a->role, false, false, 0, bulk_joined, b);
        b->in_loop = false;
        if (b->pending)
            return; /* answered later: bulk_joined continues */
    }
    Switchboard__V1__BulkJoinRoomResponse resp = SWITCHBOARD__V1__BULK_JOIN_ROOM_RESPONSE__INIT;
    for (size_t i = 0; i < b->n_members; i++)
        b->member_ptrs[i] = &b->members[i];
    for (size_t i = 0; i < b->n_failures; i++)
        b->failure_ptrs[i] = &b->failures[i];
    resp.members = b->member_ptrs;
    resp.n_members = b->n_members;
    resp.failures = b->failure_ptrs;
    resp.n_failures = b->n_failures;
    cp_call_reply(b->a->call, &resp.base);
    bulk_free(b);
}

static void bulk_room(void *arg, const struct cp_status *st, const struct cp_room *room)
{
    struct bulk *b = arg;
    (void)room;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(b->a->call, st);
        bulk_free(b);
        return;
    }
    bulk_step(b);
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
    struct bulk *b = calloc(1, sizeof(*b));
    size_t n = req->n_user_ids;
    if (b != NULL) {
        b->members = calloc(n, sizeof(*b->members));
        b->member_ptrs = calloc(n, sizeof(*b->member_ptrs));
        b->failures = calloc(n, sizeof(*b->failures));
        b->failure_ptrs = calloc(n, sizeof(*b->failure_ptrs));
        b->failure_msgs = calloc(n, sizeof(*b->failure_msgs));
        b->a = adm_new(c, call, req);
    }
    if (b == NULL || b->a == NULL || !b->members || !b->member_ptrs || !b->failures ||
        !b->failure_ptrs || !b->failure_msgs) {
        if (b == NULL || b->a != NULL)
            cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        if (b != NULL)
            bulk_free(b);
        return;
    }
    b->a->role = role;
    b->a->room_id = req->room_id;
    c->store->ops->room_get(c->store, req->room_id, bulk_room, b);
}
