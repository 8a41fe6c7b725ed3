/* Room administration flows (see cp_roomadmin.h): each keeps one heap context with copies of its
 * inputs, reads the actor's and the target's roles, checks them, then writes and notifies. */
#include "cp_roomadmin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cp_json.h"
#include "cp_notify.h"
#include "cp_perm.h"
#include "sb_ident.h"
#include "sb_time.h"

#define INVITE_PREFIX "invites/"

/* One administrative flow in flight. Exactly one of the callbacks is set. */
struct op {
    struct cp_ctx *c;
    void *arg;
    cp_rooms_room_fn *room_cb;
    cp_roomadmin_member_fn *member_cb;
    cp_rooms_done_fn *done_cb;
    cp_roomadmin_bans_fn *bans_cb;
    cp_roomadmin_invite_fn *invite_cb;
    cp_roomadmin_bulk_fn *bulk_cb;
    char *room_id;
    char *actor_id;  /* "": the backend */
    char *target_id; /* "": none */
    bool actor_member, target_member;
    enum cp_role actor_role, target_role;
    /* The next step after resolve or write_doc, after read_room. */
    void (*next)(struct op *op);
    void (*on_room)(struct op *op, const struct cp_room *room);
    /* per flow */
    struct cp_roomadmin_update u; /* UpdateRoom: strings and metadata owned */
    bool archive;                 /* ArchiveRoom (true) / RestoreRoom (false) */
    enum cp_role role;            /* SetMemberRole, BulkJoinRoom */
    char *owner_id;               /* TransferRoomOwnership: the owner before */
    char *reason;                 /* BanMember */
    char *key;                    /* the invite's document key */
    int64_t version;              /* AcceptInvite: the invite's version */
    int64_t ttl_ms, duration_ms;  /* CreateInvite, BanMember */
    int64_t created_at;           /* CreateInvite */
    int64_t expires_at;           /* BanMember, CreateInvite */
    json_t *doc;                  /* AcceptInvite: the invite */
    /* BulkJoinRoom: joins one user after the other; each answer (inline or later) starts the
     * next join. */
    char **users;
    struct cp_bulk_result *res;
    char **msgs; /* res[i].msg when it could be copied */
    size_t n_users, next_user, n_res;
    bool in_loop, pending;
};

static bool has(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static void oom(struct cp_status *st)
{
    cp_status_set(st, SB_CODE_INTERNAL, "out of memory");
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free(v[i]);
    free(v);
}

static void kv_free(struct cp_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

/* A deep copy of n entries (NULL strings read as ""); false on ENOMEM. */
static bool kv_dup(const struct cp_kv *src, size_t n, struct cp_kv **out)
{
    struct cp_kv *kv = n ? calloc(n, sizeof(*kv)) : NULL;
    if (n > 0 && kv == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        kv[i].key = strdup(src[i].key ? src[i].key : "");
        kv[i].value = strdup(src[i].value ? src[i].value : "");
        if (kv[i].key == NULL || kv[i].value == NULL) {
            kv_free(kv, i + 1);
            return false;
        }
    }
    *out = kv;
    return true;
}

static void op_free(struct op *op)
{
    json_decref(op->doc);
    kv_free((struct cp_kv *)op->u.metadata, op->u.n_metadata);
    strv_free(op->users, op->n_users);
    strv_free(op->msgs, op->n_res);
    free(op->res);
    free((char *)op->u.name);
    free((char *)op->u.description);
    free(op->room_id);
    free(op->actor_id);
    free(op->target_id);
    free(op->owner_id);
    free(op->reason);
    free(op->key);
    free(op);
}

/* Answers an error through whichever callback `op` carries. */
static void answer_error(const struct op *op, const struct cp_status *st)
{
    if (op->room_cb != NULL)
        op->room_cb(op->arg, st, NULL);
    else if (op->member_cb != NULL)
        op->member_cb(op->arg, st, NULL, NULL);
    else if (op->done_cb != NULL)
        op->done_cb(op->arg, st);
    else if (op->bans_cb != NULL)
        op->bans_cb(op->arg, st, NULL, 0);
    else if (op->invite_cb != NULL)
        op->invite_cb(op->arg, st, NULL);
    else
        op->bulk_cb(op->arg, st, NULL, 0);
}

static void fail(struct op *op, const struct cp_status *st)
{
    answer_error(op, st);
    op_free(op);
}

static void fail_oom(struct op *op)
{
    struct cp_status st;
    oom(&st);
    fail(op, &st);
}

static void failf(struct op *op, enum sb_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void failf(struct op *op, enum sb_code code, const char *fmt, ...)
{
    struct cp_status st = {.code = code};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st.msg, sizeof(st.msg), fmt, ap);
    va_end(ap);
    fail(op, &st);
}

/* The flow of a Store answer, or NULL when `st` is an error (then answered, and freed). */
static struct op *go_on(void *arg, const struct cp_status *st)
{
    struct op *op = arg;
    if (st->code == SB_CODE_NONE)
        return op;
    fail(op, st);
    return NULL;
}

/* A context like `proto` (context, callback, argument) with copies of the ids (NULL reads as
 * ""); NULL after answering out of memory. */
static struct op *op_new(const struct op *proto, const char *room_id, const char *actor_id,
                         const char *target_id)
{
    struct op *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        struct cp_status st;
        oom(&st);
        answer_error(proto, &st);
        return NULL;
    }
    *op = *proto;
    op->room_id = strdup(room_id ? room_id : "");
    op->actor_id = strdup(actor_id ? actor_id : "");
    op->target_id = strdup(target_id ? target_id : "");
    if (op->room_id == NULL || op->actor_id == NULL || op->target_id == NULL) {
        fail_oom(op);
        return NULL;
    }
    return op;
}

/* ---------------------------------------------------------------- steps shared by the flows */

static void roles_read(void *arg, const struct cp_status *st, const struct cp_member *members,
                       size_t n)
{
    struct op *op = go_on(arg, st);
    if (op == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        if (has(op->actor_id) && strcmp(members[i].user_id, op->actor_id) == 0) {
            op->actor_member = true;
            op->actor_role = members[i].role;
        }
        if (has(op->target_id) && strcmp(members[i].user_id, op->target_id) == 0) {
            op->target_member = true;
            op->target_role = members[i].role;
        }
    }
    if (has(op->actor_id) && !op->actor_member) {
        failf(op, SB_CODE_PERMISSION_DENIED, "user %s is not a member of room %s", op->actor_id,
              op->room_id);
        return;
    }
    op->next(op);
}

/* Reads the room's members (room_not_found), notes the actor's and the target's roles, refuses
 * an actor who is not a member, then runs `next`. */
static void resolve(struct op *op, void (*next)(struct op *op))
{
    op->next = next;
    op->c->store->ops->members_list(op->c->store, op->room_id, roles_read, op);
}

/* True when the actor (if any) may do `action` to a member of role `target` (has_target) or
 * at all; else answers permission_denied, frees `op` and returns false. */
static bool allowed(struct op *op, enum cp_perm_action action, bool has_target, enum cp_role target)
{
    if (!has(op->actor_id))
        return true;
    if (cp_perm_allows(op->actor_role, action, has_target ? target : CP_ROLE_MEMBER))
        return true;
    if (has_target)
        failf(op, SB_CODE_PERMISSION_DENIED,
              "user %s (%s of room %s) may not %s a member whose role is %s", op->actor_id,
              cp_role_name(op->actor_role), op->room_id, cp_perm_action_name(action),
              cp_role_name(target));
    else
        failf(op, SB_CODE_PERMISSION_DENIED, "user %s (%s of room %s) may not %s the room",
              op->actor_id, cp_role_name(op->actor_role), op->room_id, cp_perm_action_name(action));
    return false;
}

static void room_read(void *arg, const struct cp_status *st, const struct cp_room *room)
{
    struct op *op = go_on(arg, st);
    if (op != NULL)
        op->on_room(op, room);
}

/* Reads the room (room_not_found), then runs `then` with it. */
static void read_room(struct op *op, void (*then)(struct op *op, const struct cp_room *room))
{
    op->on_room = then;
    op->c->store->ops->room_get(op->c->store, op->room_id, room_read, op);
}

static void doc_written(void *arg, const struct cp_status *st, const int64_t *v, size_t n)
{
    (void)v;
    (void)n;
    struct op *op = go_on(arg, st);
    if (op != NULL)
        op->next(op);
}

/* Writes (value) or deletes (NULL) the document `key` at `expect`, then runs `then`. */
static void write_doc(struct op *op, const char *key, const char *value, int64_t expect,
                      void (*then)(struct op *op))
{
    struct cp_doc_op w = {.key = key, .value = value, .expect = expect};
    op->next = then;
    op->c->store->ops->doc_write(op->c->store, &w, 1, doc_written, op);
}

static void room_answer(void *arg, const struct cp_status *st, const struct cp_room *room)
{
    struct op *op = arg;
    op->room_cb(op->arg, st, room);
    op_free(op);
}

/* The answer of every room_update here: room_updated to the members, then the room. */
static void room_changed(void *arg, const struct cp_status *st, const struct cp_room *room)
{
    struct op *op = arg;
    if (st->code == SB_CODE_NONE) {
        struct cp_buf b;
        cp_buf_init(&b);
        cp_json_room_updated(&b, room, sb_time_now_ms());
        if (!b.failed)
            cp_notify_room(op->c, room->id, NULL, b.data, b.len);
        cp_buf_fini(&b);
    }
    room_answer(arg, st, room);
}

static void update_room(struct op *op, cp_room_edit_fn *edit)
{
    op->c->store->ops->room_update(op->c->store, op->room_id, edit, op, room_changed, op);
}

/* member_updated to the room's members. */
static void notify_role(struct op *op, const char *user_id, enum cp_role role)
{
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_member_updated(&b, op->room_id, user_id, role, sb_time_now_ms());
    if (!b.failed)
        cp_notify_room(op->c, op->room_id, NULL, b.data, b.len);
    cp_buf_fini(&b);
}

static void answer_done(struct op *op)
{
    struct cp_status ok;
    cp_status_ok(&ok);
    op->done_cb(op->arg, &ok);
    op_free(op);
}

/* The string member `k` of `o` ("" when absent or not a string) and the integer one (0). */
static const char *field_str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "";
}

static int64_t field_int(const json_t *o, const char *k)
{
    return (int64_t)json_integer_value(json_object_get(o, k));
}

/* ---------------------------------------------------------------- UpdateRoom */

unsigned cp_roomadmin_field(const char *name)
{
    static const struct {
        const char *name;
        unsigned bit;
    } fields[] = {{"name", CP_ROOMADMIN_NAME},
                  {"description", CP_ROOMADMIN_DESCRIPTION},
                  {"max_members", CP_ROOMADMIN_MAX_MEMBERS},
                  {"metadata", CP_ROOMADMIN_METADATA},
                  {"private", CP_ROOMADMIN_PRIVATE}};
    for (size_t k = 0; name != NULL && k < sizeof(fields) / sizeof(fields[0]); k++)
        if (strcmp(name, fields[k].name) == 0)
            return fields[k].bit;
    return 0;
}

unsigned cp_roomadmin_nonzero_fields(const struct cp_roomadmin_update *u)
{
    unsigned mask = 0;
    mask |= has(u->name) ? CP_ROOMADMIN_NAME : 0;
    mask |= has(u->description) ? CP_ROOMADMIN_DESCRIPTION : 0;
    mask |= u->max_members != 0 ? CP_ROOMADMIN_MAX_MEMBERS : 0;
    mask |= u->n_metadata > 0 ? CP_ROOMADMIN_METADATA : 0;
    mask |= u->is_private ? CP_ROOMADMIN_PRIVATE : 0;
    return mask;
}

/* *field becomes a copy of `v`; false (*field kept) on ENOMEM. */
static bool replace_str(char **field, const char *v)
{
    char *d = strdup(v);
    if (d != NULL) {
        free(*field);
        *field = d;
    }
    return d != NULL;
}

/* May run more than once (etcd: on the fresh record after a concurrent change): copies. */
static void update_edit(void *arg, struct cp_room *room, struct cp_status *st)
{
    struct op *op = arg;
    const struct cp_roomadmin_update *u = &op->u;
    bool ok = true;
    if (u->fields & CP_ROOMADMIN_NAME)
        ok = ok && replace_str(&room->name, u->name);
    if (u->fields & CP_ROOMADMIN_DESCRIPTION)
        ok = ok && replace_str(&room->description, u->description);
    if (u->fields & CP_ROOMADMIN_MAX_MEMBERS)
        room->max_members = u->max_members;
    if (u->fields & CP_ROOMADMIN_PRIVATE)
        room->is_private = u->is_private;
    struct cp_kv *kv = NULL;
    if (ok && (u->fields & CP_ROOMADMIN_METADATA)) {
        ok = kv_dup(u->metadata, u->n_metadata, &kv);
        if (ok) {
            kv_free(room->metadata, room->n_metadata);
            room->metadata = kv;
            room->n_metadata = u->n_metadata;
        }
    }
    if (!ok)
        oom(st);
}

static void update_go(struct op *op)
{
    if (allowed(op, CP_PERM_UPDATE_ROOM, false, CP_ROLE_MEMBER))
        update_room(op, update_edit);
}

void cp_roomadmin_update(struct cp_ctx *c, const char *room_id, const char *actor_id,
                         const struct cp_roomadmin_update *u, cp_rooms_room_fn *cb, void *arg)
{
    struct op *op =
        op_new(&(struct op){.c = c, .room_cb = cb, .arg = arg}, room_id, actor_id, NULL);
    if (op == NULL)
        return;
    op->u.fields = u->fields;
    op->u.max_members = u->max_members;
    op->u.is_private = u->is_private;
    op->u.name = strdup(u->name ? u->name : "");
    op->u.description = strdup(u->description ? u->description : "");
    struct cp_kv *kv = NULL;
    if (!kv_dup(u->metadata, u->n_metadata, &kv) || op->u.name == NULL ||
        op->u.description == NULL) {
        kv_free(kv, kv != NULL ? u->n_metadata : 0);
        fail_oom(op);
        return;
    }
    op->u.metadata = kv;
    op->u.n_metadata = u->n_metadata;
    resolve(op, update_go);
}

/* ---------------------------------------------------------------- ArchiveRoom / RestoreRoom */

static void archive_edit(void *arg, struct cp_room *room, struct cp_status *st)
{
    struct op *op = arg;
    (void)st;
    room->archived = op->archive;
}

static void archive_go(struct op *op)
{
    if (allowed(op, CP_PERM_ARCHIVE, false, CP_ROLE_MEMBER))
        update_room(op, archive_edit);
}

void cp_roomadmin_archive(struct cp_ctx *c, const char *room_id, const char *actor_id,
                          bool archived, cp_rooms_room_fn *cb, void *arg)
{
    struct op *op = op_new(&(struct op){.c = c, .room_cb = cb, .arg = arg, .archive = archived},
                           room_id, actor_id, NULL);
    if (op != NULL)
        resolve(op, archive_go);
}

/* ---------------------------------------------------------------- TransferRoomOwnership */

static void transfer_edit(void *arg, struct cp_room *room, struct cp_status *st)
{
    struct op *op = arg;
    if (!replace_str(&room->owner_id, op->target_id))
        oom(st);
}

static void transfer_demoted(void *arg, const struct cp_status *st, const struct cp_member *members,
                             size_t n)
{
    struct op *op = arg;
    (void)members;
    (void)n;
    /* The former owner may have left the room: nothing to demote then. */
    if (st->code != SB_CODE_NONE && st->code != SB_CODE_NOT_ROOM_MEMBER) {
        fail(op, st);
        return;
    }
    if (st->code == SB_CODE_NONE)
        notify_role(op, op->owner_id, CP_ROLE_ADMIN);
    update_room(op, transfer_edit);
}

static void transfer_promoted(void *arg, const struct cp_status *st,
                              const struct cp_member *members, size_t n)
{
    (void)members;
    (void)n;
    struct op *op = go_on(arg, st);
    if (op == NULL)
        return;
    notify_role(op, op->target_id, CP_ROLE_OWNER);
    if (has(op->owner_id) && strcmp(op->owner_id, op->target_id) != 0)
        op->c->store->ops->member_set_role(op->c->store, op->room_id, op->owner_id, CP_ROLE_ADMIN,
                                           transfer_demoted, op);
    else
        update_room(op, transfer_edit);
}

static void transfer_go(struct op *op)
{
    if (!allowed(op, CP_PERM_TRANSFER, false, CP_ROLE_MEMBER))
        return;
    if (!op->target_member) {
        failf(op, SB_CODE_NOT_ROOM_MEMBER,
              "user %s is not a member of room %s: only a member can become its owner",
              op->target_id, op->room_id);
        return;
    }
    if (op->target_role == CP_ROLE_OWNER && strcmp(op->owner_id, op->target_id) == 0) {
        op->c->store->ops->room_get(op->c->store, op->room_id, room_answer, op);
        return;
    }
    op->c->store->ops->member_set_role(op->c->store, op->room_id, op->target_id, CP_ROLE_OWNER,
                                       transfer_promoted, op);
}

static void transfer_room(struct op *op, const struct cp_room *room)
{
    op->owner_id = strdup(room->owner_id);
    if (op->owner_id == NULL)
        fail_oom(op);
    else
        resolve(op, transfer_go);
}

void cp_roomadmin_transfer(struct cp_ctx *c, const char *room_id, const char *actor_id,
                           const char *new_owner_id, cp_rooms_room_fn *cb, void *arg)
{
    struct op *op =
        op_new(&(struct op){.c = c, .room_cb = cb, .arg = arg}, room_id, actor_id, new_owner_id);
    if (op != NULL)
        read_room(op, transfer_room);
}

/* ---------------------------------------------------------------- SetMemberRole */

static void setrole_done(void *arg, const struct cp_status *st, const struct cp_member *members,
                         size_t n)
{
    struct op *op = arg;
    if (st->code != SB_CODE_NONE || n == 0) {
        fail(op, st);
        return;
    }
    if (op->target_role != op->role)
        notify_role(op, op->target_id, op->role);
    op->member_cb(op->arg, st, op->room_id, &members[0]);
    op_free(op);
}

static void setrole_go(struct op *op)
{
    if (!op->target_member) {
        failf(op, SB_CODE_NOT_ROOM_MEMBER, "user %s is not a member of room %s", op->target_id,
              op->room_id);
        return;
    }
    if (op->target_role == CP_ROLE_OWNER) {
        failf(op, SB_CODE_PERMISSION_DENIED,
              "user %s owns room %s: the owner role changes only through "
              "TransferRoomOwnership",
              op->target_id, op->room_id);
        return;
    }
    if (!allowed(op, CP_PERM_SET_ROLE, true, op->target_role))
        return;
    if (has(op->actor_id) && !cp_perm_allows(op->actor_role, CP_PERM_SET_ROLE, op->role)) {
        failf(op, SB_CODE_PERMISSION_DENIED, "user %s (%s of room %s) may not give the role %s",
              op->actor_id, cp_role_name(op->actor_role), op->room_id, cp_role_name(op->role));
        return;
    }
    op->c->store->ops->member_set_role(op->c->store, op->room_id, op->target_id, op->role,
                                       setrole_done, op);
}

void cp_roomadmin_set_role(struct cp_ctx *c, const char *room_id, const char *actor_id,
                           const char *user_id, enum cp_role role, cp_roomadmin_member_fn *cb,
                           void *arg)
{
    struct op *op = op_new(&(struct op){.c = c, .member_cb = cb, .arg = arg, .role = role}, room_id,
                           actor_id, user_id);
    if (op != NULL)
        resolve(op, setrole_go);
}

/* ---------------------------------------------------------------- BanMember, UnbanMember */

static void ban_left(void *arg, const struct cp_status *st)
{
    struct op *op = arg;
    /* Gone already (a concurrent leave) is what the ban wanted. */
    if (st->code != SB_CODE_NONE && st->code != SB_CODE_NOT_ROOM_MEMBER) {
        fail(op, st);
        return;
    }
    /* `banned` to the user's connections. */
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_banned(&b, op->room_id, op->reason, op->expires_at, sb_time_now_ms());
    if (!b.failed) {
        const char *users[1] = {op->target_id};
        cp_fanout_users(&op->c->fan, users, 1, b.data, b.len);
    }
    cp_buf_fini(&b);
    answer_done(op);
}

static void ban_written(struct op *op)
{
    if (op->target_member)
        cp_rooms_leave(op->c, op->room_id, op->target_id, ban_left, op);
    else
        answer_done(op);
}

/* The role a ban or an unban acts on: the target's, or member for a user not in the room. */
static enum cp_role ban_target_role(const struct op *op)
{
    return op->target_member ? op->target_role : CP_ROLE_MEMBER;
}

static void ban_go(struct op *op)
{
    if (op->target_member && op->target_role == CP_ROLE_OWNER) {
        failf(op, SB_CODE_PERMISSION_DENIED,
              "user %s owns room %s and cannot be banned (transfer ownership first)", op->target_id,
              op->room_id);
        return;
    }
    if (!allowed(op, CP_PERM_BAN, true, ban_target_role(op)))
        return;
    int64_t now = sb_time_now_ms();
    op->expires_at = op->duration_ms > 0 ? now + op->duration_ms : 0;
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "room_id", op->room_id, "user_id",
                          op->target_id, "reason", op->reason, "moderator_id", op->actor_id,
                          "created_at", (json_int_t)now, "expires_at", (json_int_t)op->expires_at);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL) {
        fail_oom(op);
        return;
    }
    char key[CP_ROOMS_KEY_MAX];
    cp_rooms_ban_key(key, op->room_id, op->target_id);
    write_doc(op, key, text, -1, ban_written);
    free(text);
}

void cp_roomadmin_ban(struct cp_ctx *c, const char *room_id, const char *moderator_id,
                      const char *user_id, const char *reason, int64_t duration_ms,
                      cp_rooms_done_fn *cb, void *arg)
{
    if (has(moderator_id) && strcmp(moderator_id, user_id) == 0) {
        struct cp_status st;
        cp_status_set(&st, SB_CODE_PERMISSION_DENIED, "user %s may not ban themselves", user_id);
        cb(arg, &st);
        return;
    }
    struct op *op =
        op_new(&(struct op){.c = c, .done_cb = cb, .arg = arg, .duration_ms = duration_ms}, room_id,
               moderator_id, user_id);
    if (op == NULL)
        return;
    op->reason = strdup(reason ? reason : "");
    if (op->reason == NULL)
        fail_oom(op);
    else
        resolve(op, ban_go);
}

static void unban_go(struct op *op)
{
    if (!allowed(op, CP_PERM_BAN, true, ban_target_role(op)))
        return;
    char key[CP_ROOMS_KEY_MAX];
    cp_rooms_ban_key(key, op->room_id, op->target_id);
    /* Deleting an absent key succeeds: unbanning a user who is not banned is a no-op. */
    write_doc(op, key, NULL, -1, answer_done);
}

void cp_roomadmin_unban(struct cp_ctx *c, const char *room_id, const char *moderator_id,
                        const char *user_id, cp_rooms_done_fn *cb, void *arg)
{
    struct op *op =
        op_new(&(struct op){.c = c, .done_cb = cb, .arg = arg}, room_id, moderator_id, user_id);
    if (op != NULL)
        resolve(op, unban_go);
}

/* ---------------------------------------------------------------- ListBans */

/* The bans in force of `docs` (the room's ban documents) into `bans` (strings borrowed from
 * `parsed`, which gets the records read: json_decref each); the ended ones' keys and versions
 * into `dels` (keys owned). Returns how many bans. */
static size_t bans_sort(const struct op *op, const struct cp_doc *docs, size_t n, int64_t now,
                        struct cp_ban *bans, json_t **parsed, struct cp_doc_op *dels,
                        size_t *n_dels)
{
    size_t n_bans = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t expires_at;
        if (!cp_rooms_ban_active(docs[i].value, now, &expires_at)) {
            dels[*n_dels].key = strdup(docs[i].key);
            dels[*n_dels].expect = docs[i].version;
            if (dels[*n_dels].key != NULL)
                (*n_dels)++;
            continue;
        }
        json_t *j = json_loads(docs[i].value, 0, NULL);
        if (j == NULL)
            continue;
        parsed[n_bans] = j;
        /* The user id is the key's last segment, whatever the record says. */
        const char *slash = strrchr(docs[i].key, '/');
        json_object_set_new(j, "user_id", json_string(slash ? slash + 1 : ""));
        bans[n_bans++] = (struct cp_ban){.room_id = op->room_id,
                                         .user_id = field_str(j, "user_id"),
                                         .reason = field_str(j, "reason"),
                                         .moderator_id = field_str(j, "moderator_id"),
                                         .created_at = field_int(j, "created_at"),
                                         .expires_at = expires_at};
    }
    return n_bans;
}

static void bans_listed(void *arg, const struct cp_status *st, const struct cp_doc *docs, size_t n)
{
    struct op *op = go_on(arg, st);
    if (op == NULL)
        return;
    json_t **parsed = n ? calloc(n, sizeof(*parsed)) : NULL;
    struct cp_doc_op *dels = n ? calloc(n, sizeof(*dels)) : NULL;
    struct cp_ban *bans = n ? calloc(n, sizeof(*bans)) : NULL;
    if (n > 0 && (parsed == NULL || dels == NULL || bans == NULL)) {
        free(parsed);
        free(dels);
        free(bans);
        fail_oom(op);
        return;
    }
    size_t n_dels = 0;
    size_t n_bans = bans_sort(op, docs, n, sb_time_now_ms(), bans, parsed, dels, &n_dels);
    /* Ended bans go now (their docs are not touched after this: the write may free them). */
    for (size_t i = 0; i < n_dels; i++)
        cp_rooms_doc_delete(op->c, dels[i].key, dels[i].expect);
    op->bans_cb(op->arg, st, bans, n_bans);
    for (size_t i = 0; i < n_bans; i++)
        json_decref(parsed[i]);
    for (size_t i = 0; i < n_dels; i++)
        free((char *)dels[i].key);
    free(parsed);
    free(dels);
    free(bans);
    op_free(op);
}

static void bans_room(struct op *op, const struct cp_room *room)
{
    (void)room;
    char prefix[CP_ROOMS_KEY_MAX];
    snprintf(prefix, sizeof(prefix), "bans/%s/", op->room_id);
    op->c->store->ops->doc_list(op->c->store, prefix, bans_listed, op);
}

void cp_roomadmin_bans(struct cp_ctx *c, const char *room_id, cp_roomadmin_bans_fn *cb, void *arg)
{
    struct op *op = op_new(&(struct op){.c = c, .bans_cb = cb, .arg = arg}, room_id, NULL, NULL);
    if (op != NULL)
        read_room(op, bans_room);
}

/* ---------------------------------------------------------------- CreateInvite, AcceptInvite */

/* op->key = "invites/<id>"; false on ENOMEM. */
static bool invite_key(struct op *op, const char *id)
{
    size_t klen = strlen(INVITE_PREFIX) + strlen(id) + 1;
    op->key = malloc(klen);
    if (op->key != NULL)
        snprintf(op->key, klen, INVITE_PREFIX "%s", id);
    return op->key != NULL;
}

static const char *invite_id(const struct op *op)
{
    return op->key + strlen(INVITE_PREFIX);
}

static void invite_written(struct op *op)
{
    struct cp_invite inv = {.id = invite_id(op),
                            .room_id = op->room_id,
                            .inviter_id = op->actor_id,
                            .invitee_id = op->target_id,
                            .created_at = op->created_at,
                            .expires_at = op->expires_at};
    struct cp_status ok;
    cp_status_ok(&ok);
    op->invite_cb(op->arg, &ok, &inv);
    op_free(op);
}

static void invite_go(struct op *op)
{
    if (!allowed(op, CP_PERM_INVITE, false, CP_ROLE_MEMBER))
        return;
    if (op->target_member) {
        failf(op, SB_CODE_ALREADY_ROOM_MEMBER, "user %s is already a member of room %s",
              op->target_id, op->room_id);
        return;
    }
    char id[SB_ID_LEN];
    sb_id_new("i", id);
    int64_t now = sb_time_now_ms();
    op->created_at = now;
    op->expires_at = now + (op->ttl_ms > 0 ? op->ttl_ms : CP_ROOMADMIN_INVITE_TTL_DEF);
    json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:I}", "room_id", op->room_id, "inviter_id",
                          op->actor_id, "invitee_id", op->target_id, "created_at", (json_int_t)now,
                          "expires_at", (json_int_t)op->expires_at);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!invite_key(op, id) || text == NULL) {
        free(text);
        fail_oom(op);
        return;
    }
    write_doc(op, op->key, text, 0, invite_written);
    free(text);
}

static void invite_room(struct op *op, const struct cp_room *room)
{
    if (room->archived)
        failf(op, SB_CODE_ROOM_ARCHIVED, "room %s is archived", op->room_id);
    else
        resolve(op, invite_go);
}

void cp_roomadmin_invite(struct cp_ctx *c, const char *room_id, const char *inviter_id,
                         const char *invitee_id, int64_t ttl_ms, cp_roomadmin_invite_fn *cb,
                         void *arg)
{
    struct op *op = op_new(&(struct op){.c = c, .invite_cb = cb, .arg = arg, .ttl_ms = ttl_ms},
                           room_id, inviter_id, invitee_id);
    if (op != NULL)
        read_room(op, invite_room);
}

static void accept_joined(void *arg, const struct cp_status *st, const struct cp_join_outcome *o)
{
    struct op *op = go_on(arg, st);
    if (op == NULL)
        return;
    /* Used (or pointless, the user being in already): the invite is consumed either way. */
    cp_rooms_doc_delete(op->c, op->key, op->version);
    if (!o->added) {
        failf(op, SB_CODE_ALREADY_ROOM_MEMBER, "user %s is already a member of room %s",
              op->target_id, op->room_id);
        return;
    }
    struct cp_member m = {.user_id = op->target_id, .role = o->role, .joined_at = o->joined_at};
    op->member_cb(op->arg, st, op->room_id, &m);
    op_free(op);
}

/* The invite read: op->target_id is the accepting user. */
static void accept_read(void *arg, const struct cp_status *st, const struct cp_doc *doc)
{
    struct op *op = go_on(arg, st);
    if (op == NULL)
        return;
    if (doc == NULL) {
        failf(op, SB_CODE_INVITE_NOT_FOUND, "invite %s does not exist (or was used already)",
              invite_id(op));
        return;
    }
    op->doc = json_loads(doc->value, 0, NULL);
    const char *room_id = field_str(op->doc, "room_id");
    if (!sb_ident_is_valid(room_id)) {
        failf(op, SB_CODE_INTERNAL, "invite %s is unreadable", invite_id(op));
        return;
    }
    if (!replace_str(&op->room_id, room_id)) {
        fail_oom(op);
        return;
    }
    op->version = doc->version;
    if (strcmp(field_str(op->doc, "invitee_id"), op->target_id) != 0) {
        failf(op, SB_CODE_PERMISSION_DENIED, "invite %s was made for another user than %s",
              invite_id(op), op->target_id);
        return;
    }
    int64_t expires_at = field_int(op->doc, "expires_at");
    if (expires_at > 0 && expires_at <= sb_time_now_ms()) {
        char ts[SB_TIME_RFC3339_LEN];
        sb_time_format_rfc3339(expires_at, ts, sizeof(ts));
        cp_rooms_doc_delete(op->c, op->key, op->version);
        failf(op, SB_CODE_INVITE_EXPIRED, "invite %s expired at %s", invite_id(op), ts);
        return;
    }
    cp_rooms_join(op->c, op->room_id, op->target_id, CP_ROLE_MEMBER, false, false, false, 0,
                  accept_joined, op);
}

void cp_roomadmin_accept(struct cp_ctx *c, const char *invite_id, const char *user_id,
                         cp_roomadmin_member_fn *cb, void *arg)
{
    /* No room yet: the invite names it. */
    struct op *op = op_new(&(struct op){.c = c, .member_cb = cb, .arg = arg}, NULL, NULL, user_id);
    if (op == NULL)
        return;
    if (!invite_key(op, invite_id)) {
        fail_oom(op);
        return;
    }
    c->store->ops->doc_get(c->store, op->key, accept_read, op);
}

/* ---------------------------------------------------------------- BulkJoinRoom */

static void bulk_outcome(struct op *op, const char *user_id, enum sb_code code, const char *msg)
{
    struct cp_bulk_result *r = &op->res[op->n_res];
    r->user_id = user_id;
    r->code = code;
    /* Without memory for the sentence the code still says what happened. */
    op->msgs[op->n_res] = msg != NULL ? strdup(msg) : NULL;
    r->msg = op->msgs[op->n_res] ? op->msgs[op->n_res] : "";
    op->n_res++;
}

static void bulk_step(struct op *op);

static void bulk_joined(void *arg, const struct cp_status *st, const struct cp_join_outcome *o)
{
    struct op *op = arg;
    const char *user = op->users[op->next_user - 1];
    if (st->code != SB_CODE_NONE) {
        bulk_outcome(op, user, st->code, st->msg);
    } else if (!o->added) {
        char msg[CP_STATUS_MSG_MAX];
        snprintf(msg, sizeof(msg), "user %s is already a member of room %s", user, op->room_id);
        bulk_outcome(op, user, SB_CODE_ALREADY_ROOM_MEMBER, msg);
    } else {
        op->res[op->n_res].role = o->role;
        op->res[op->n_res].joined_at = o->joined_at;
        bulk_outcome(op, user, SB_CODE_NONE, NULL);
    }
    op->pending = false;
    if (!op->in_loop)
        bulk_step(op);
}

static void bulk_step(struct op *op)
{
    while (op->next_user < op->n_users) {
        const char *user = op->users[op->next_user++];
        if (!sb_ident_is_valid(user)) {
            bulk_outcome(op, user, SB_CODE_INVALID_MESSAGE, "user_id is not a valid id");
            continue;
        }
        op->in_loop = true;
        op->pending = true;
        cp_rooms_join(op->c, op->room_id, user, op->role, false, false, false, 0, bulk_joined, op);
        op->in_loop = false;
        if (op->pending)
            return; /* answered later: bulk_joined continues */
    }
    struct cp_status ok;
    cp_status_ok(&ok);
    op->bulk_cb(op->arg, &ok, op->res, op->n_res);
    op_free(op);
}

static void bulk_room(struct op *op, const struct cp_room *room)
{
    (void)room;
    bulk_step(op);
}

void cp_roomadmin_bulk_join(struct cp_ctx *c, const char *room_id, const char *const *user_ids,
                            size_t n, enum cp_role role, cp_roomadmin_bulk_fn *cb, void *arg)
{
    struct op *op =
        op_new(&(struct op){.c = c, .bulk_cb = cb, .arg = arg, .role = role}, room_id, NULL, NULL);
    if (op == NULL)
        return;
    op->users = calloc(n, sizeof(*op->users));
    op->res = calloc(n, sizeof(*op->res));
    op->msgs = calloc(n, sizeof(*op->msgs));
    bool ok = op->users != NULL && op->res != NULL && op->msgs != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        op->users[i] = strdup(user_ids[i] ? user_ids[i] : "");
        op->n_users = i + 1;
        ok = op->users[i] != NULL;
    }
    if (ok)
        read_room(op, bulk_room);
    else
        fail_oom(op);
}
