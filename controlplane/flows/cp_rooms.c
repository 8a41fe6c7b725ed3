/* Room flows: Store operation, then events, then the answer. Each flow that may outlive its
 * call keeps a small heap context with copies of what it needs after the Store answers. */
#include "cp_rooms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cp_json.h"
#include "cp_keys.h"
#include "cp_perm.h"
#include "sb_log.h"
#include "sb_time.h"

static void oom(struct cp_status *st)
{
    cp_status_set(st, SB_CODE_INTERNAL, "out of memory");
}

/* Writes whose outcome nobody waits for (lazy clean-up). */
static void ignore_write(void *arg, const struct cp_status *st, const int64_t *v, size_t n)
{
    (void)arg;
    (void)st;
    (void)v;
    (void)n;
}

/* ---------------------------------------------------------------- create */

struct create_op {
    struct cp_ctx *c;
    cp_rooms_room_fn *cb;
    void *arg;
};

static void create_done(void *arg, const struct cp_status *st, const struct cp_room *room)
{
    struct create_op *op = arg;
    op->cb(op->arg, st, room);
    free(op);
}

void cp_rooms_create(struct cp_ctx *c, const struct cp_room *room, cp_rooms_room_fn *cb, void *arg)
{
    struct create_op *op = malloc(sizeof(*op));
    if (op == NULL) {
        struct cp_status st;
        oom(&st);
        cb(arg, &st, NULL);
        return;
    }
    *op = (struct create_op){c, cb, arg};
    c->store->ops->room_create(c->store, room, create_done, op);
}

/* ---------------------------------------------------------------- delete */

struct delete_op {
    struct cp_ctx *c;
    cp_rooms_done_fn *cb;
    void *arg;
    char room_id[];
};

static void delete_done(void *arg, const struct cp_status *st, const struct cp_member *members,
                        size_t n)
{
    struct delete_op *op = arg;
    if (st->code == SB_CODE_NONE) {
        cp_typers_stop_matching(&op->c->typing, op->room_id, NULL, NULL, NULL);
        /* Bans die with the room: a room created again with the id starts clean. */
        char prefix[CP_ROOMS_KEY_MAX];
        cp_keys_doc_ban(prefix, op->room_id, NULL);
        struct cp_doc_op del = {.key = prefix, .value = NULL, .prefix = true, .expect = -1};
        op->c->store->ops->doc_write(op->c->store, &del, 1, ignore_write, NULL);
    }
    op->cb(op->arg, st);
    free(op);
}

void cp_rooms_delete(struct cp_ctx *c, const char *room_id, cp_rooms_done_fn *cb, void *arg)
{
    size_t len = strlen(room_id);
    struct delete_op *op = malloc(sizeof(*op) + len + 1);
    if (op == NULL) {
        struct cp_status st;
        oom(&st);
        cb(arg, &st);
        return;
    }
    op->c = c;
    op->cb = cb;
    op->arg = arg;
    memcpy(op->room_id, room_id, len + 1);
    c->store->ops->room_delete(c->store, op->room_id, delete_done, op);
}

/* ---------------------------------------------------------------- join */

struct join_op {
    struct cp_ctx *c;
    cp_rooms_join_fn *cb;
    void *arg;
    char *room_id;
    char *user_id;
    bool has_since;
    int64_t since;
    enum cp_role role;
    bool client;
    bool granted; /* with client: the token's rooms claim names the room */
    struct cp_join_outcome out;
};

static void join_free(struct join_op *op)
{
    free(op->room_id);
    free(op->user_id);
    free(op);
}

static void join_replayed(void *arg, const struct cp_status *st,
                          const struct cp_history_result *res)
{
    struct join_op *op = arg;
    if (st->code == SB_CODE_NONE) {
        op->out.history_gap = res->gap;
        op->out.replay = res->messages;
        op->out.n_replay = res->n_messages;
    }
    op->cb(op->arg, st, st->code == SB_CODE_NONE ? &op->out : NULL);
    join_free(op);
}

static void join_added(void *arg, const struct cp_status *st, const struct cp_join_result *res)
{
    struct join_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        op->cb(op->arg, st, NULL);
        join_free(op);
        return;
    }
    op->out.role = res->member->role;
    op->out.joined_at = res->member->joined_at;
    op->out.added = res->added;
    if (res->added) {
        /* Membership went first, from the store's member hook (cp_changes.c): the joiner's
         * nodes index the room before any delivery. */
        struct cp_buf b;
        cp_buf_init(&b);
        cp_json_membership(&b, "join", op->room_id, op->user_id, sb_time_now_ms());
        if (!b.failed)
            cp_fanout_room(&op->c->fan, res->members, res->n_members, op->room_id, op->user_id,
                           b.data, b.len, 0);
        cp_buf_fini(&b);
        if (res->created_room)
            SB_LOG_INFO("cp", "room auto-created", "room=%s owner=%s", op->room_id, op->user_id);
    }
    if (!op->has_since) {
        op->cb(op->arg, st, &op->out);
        join_free(op);
        return;
    }
    int limit = op->c->set.max_history_messages > 0 ? op->c->set.max_history_messages : 1;
    struct cp_history_query q = {
        .room_id = op->room_id, .limit = limit, .has_after_seq = true, .after_seq = op->since};
    op->c->store->ops->history_query(op->c->store, &q, NULL, join_replayed, op);
}

static void join_fail(struct join_op *op, const struct cp_status *st)
{
    op->cb(op->arg, st, NULL);
    join_free(op);
}

static void join_add(struct join_op *op)
{
    struct cp_ctx *c = op->c;
    struct cp_join_req req = {.room_id = op->room_id,
                              .user_id = op->user_id,
                              .role = op->role,
                              .now = sb_time_now_ms(),
                              .deny_private = op->client && !op->granted,
                              .auto_create = op->client && c->set.auto_create_rooms};
    c->store->ops->member_add(c->store, &req, join_added, op);
}

/* The user's rooms: at max_rooms_per_user, only a room they are in already may be joined. */
static void join_rooms_read(void *arg, const struct cp_status *st, const char *const *ids, size_t n)
{
    struct join_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        join_fail(op, st);
        return;
    }
    int max = op->c->set.max_rooms_per_user;
    if (max > 0 && n >= (size_t)max) {
        bool member = false;
        for (size_t i = 0; i < n && !member; i++)
            member = strcmp(ids[i], op->room_id) == 0;
        if (!member) {
            struct cp_status lim;
            cp_status_set(&lim, SB_CODE_ROOM_LIMIT_REACHED,
                          "user %s is already in %d rooms, the most one user may join", op->user_id,
                          max);
            join_fail(op, &lim);
            return;
        }
    }
    join_add(op);
}

void cp_rooms_doc_delete(struct cp_ctx *c, const char *key, int64_t version)
{
    struct cp_doc_op del = {.key = key, .value = NULL, .expect = version};
    c->store->ops->doc_write(c->store, &del, 1, ignore_write, NULL);
}

static void join_ban_read(void *arg, const struct cp_status *st, const struct cp_doc *doc)
{
    struct join_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        join_fail(op, st);
        return;
    }
    if (doc != NULL) {
        int64_t expires_at = 0;
        if (cp_rooms_ban_active(doc->value, sb_time_now_ms(), &expires_at)) {
            struct cp_status ban;
            char until[64] = "";
            if (expires_at > 0) {
                char ts[40];
                sb_time_format_rfc3339(expires_at, ts, sizeof(ts));
                snprintf(until, sizeof(until), " until %s", ts);
            }
            cp_status_set(&ban, SB_CODE_BANNED, "user %s is banned from room %s%s", op->user_id,
                          op->room_id, until);
            join_fail(op, &ban);
            return;
        }
        /* An ended ban is removed lazily (a newer write of it makes this delete a no-op). */
        cp_rooms_doc_delete(op->c, doc->key, doc->version);
    }
    if (op->c->set.max_rooms_per_user > 0)
        op->c->store->ops->user_rooms(op->c->store, op->user_id, join_rooms_read, op);
    else
        join_add(op);
}

void cp_rooms_join(struct cp_ctx *c, const char *room_id, const char *user_id, enum cp_role role,
                   bool client, bool granted, bool has_since, int64_t since, cp_rooms_join_fn *cb,
                   void *arg)
{
    struct join_op *op = calloc(1, sizeof(*op));
    if (op != NULL) {
        op->room_id = strdup(room_id);
        op->user_id = strdup(user_id);
    }
    if (op == NULL || op->room_id == NULL || op->user_id == NULL) {
        if (op != NULL)
            join_free(op);
        struct cp_status st;
        oom(&st);
        cb(arg, &st, NULL);
        return;
    }
    op->c = c;
    op->cb = cb;
    op->arg = arg;
    op->has_since = has_since;
    op->since = since;
    op->role = role;
    op->client = client;
    op->granted = granted;
    char key[CP_ROOMS_KEY_MAX];
    cp_rooms_ban_key(key, op->room_id, op->user_id);
    c->store->ops->doc_get(c->store, key, join_ban_read, op);
}

/* ---------------------------------------------------------------- leave */

struct leave_op {
    struct cp_ctx *c;
    cp_rooms_done_fn *cb;
    void *arg;
    char *room_id;
    char *user_id;
};

static void leave_done(void *arg, const struct cp_status *st, const struct cp_member *members,
                       size_t n)
{
    struct leave_op *op = arg;
    if (st->code == SB_CODE_NONE) {
        struct cp_ctx *c = op->c;
        struct cp_buf b;
        cp_buf_init(&b);
        if (cp_typers_stop(&c->typing, op->room_id, op->user_id)) {
            cp_json_typing(&b, op->room_id, op->user_id, false);
            if (!b.failed)
                cp_fanout_room(&c->fan, members, n, op->room_id, op->user_id, b.data, b.len, 0);
            cp_buf_reset(&b);
        }
        cp_json_membership(&b, "leave", op->room_id, op->user_id, sb_time_now_ms());
        if (!b.failed)
            cp_fanout_room(&c->fan, members, n, op->room_id, op->user_id, b.data, b.len, 0);
        cp_buf_fini(&b);
    }
    op->cb(op->arg, st);
    free(op->room_id);
    free(op->user_id);
    free(op);
}

void cp_rooms_leave(struct cp_ctx *c, const char *room_id, const char *user_id,
                    cp_rooms_done_fn *cb, void *arg)
{
    struct leave_op *op = calloc(1, sizeof(*op));
    if (op != NULL) {
        op->room_id = strdup(room_id);
        op->user_id = strdup(user_id);
    }
    if (op == NULL || op->room_id == NULL || op->user_id == NULL) {
        if (op != NULL) {
            free(op->room_id);
            free(op->user_id);
            free(op);
        }
        struct cp_status st;
        oom(&st);
        cb(arg, &st);
        return;
    }
    *op = (struct leave_op){c, cb, arg, op->room_id, op->user_id};
    c->store->ops->member_remove(c->store, op->room_id, op->user_id, leave_done, op);
}

/* ---------------------------------------------------------------- reads, acting members */

void cp_rooms_get(struct cp_ctx *c, const char *room_id, cp_rooms_room_fn *cb, void *arg)
{
    c->store->ops->room_get(c->store, room_id, cb, arg);
}

void cp_rooms_list(struct cp_ctx *c, const struct cp_room_query *q, cp_store_rooms_fn *cb,
                   void *arg)
{
    c->store->ops->room_list(c->store, q, cb, arg);
}

void cp_rooms_members(struct cp_ctx *c, const char *room_id, cp_store_members_fn *cb, void *arg)
{
    c->store->ops->members_list(c->store, room_id, cb, arg);
}

struct acting {
    struct cp_ctx *c;
    cp_rooms_done_fn *cb;
    void *arg;
    enum cp_perm_action action;
    char *target_id; /* NULL: the room itself */
    char room_id[SB_IDENT_MAX + 1];
    char actor_id[SB_IDENT_MAX + 1];
};

static void acting_members(void *arg, const struct cp_status *st0, const struct cp_member *members,
                           size_t n)
{
    struct acting *ac = arg;
    struct cp_status st;
    if (st0->code != SB_CODE_NONE) {
        ac->cb(ac->arg, st0);
        goto out;
    }
    const struct cp_member *actor = NULL, *target = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(members[i].user_id, ac->actor_id) == 0)
            actor = &members[i];
        if (ac->target_id != NULL && strcmp(members[i].user_id, ac->target_id) == 0)
            target = &members[i];
    }
    if (actor == NULL) {
        cp_status_set(&st, SB_CODE_PERMISSION_DENIED, "user %s is not a member of room %s",
                      ac->actor_id, ac->room_id);
        ac->cb(ac->arg, &st);
    } else if (ac->target_id != NULL && target == NULL) {
        cp_status_set(&st, SB_CODE_NOT_ROOM_MEMBER, "user %s is not a member of room %s",
                      ac->target_id, ac->room_id);
        ac->cb(ac->arg, &st);
    } else if (!cp_perm_allows(actor->role, ac->action,
                               target != NULL ? target->role : CP_ROLE_MEMBER)) {
        cp_status_set(&st, SB_CODE_PERMISSION_DENIED, "user %s (%s of room %s) may not %s%s%s",
                      ac->actor_id, cp_role_name(actor->role), ac->room_id,
                      cp_perm_action_name(ac->action), target ? " a member whose role is " : "",
                      target ? cp_role_name(target->role) : "");
        ac->cb(ac->arg, &st);
    } else if (ac->target_id != NULL) {
        cp_rooms_leave(ac->c, ac->room_id, ac->target_id, ac->cb, ac->arg);
    } else {
        cp_rooms_delete(ac->c, ac->room_id, ac->cb, ac->arg);
    }
out:
    free(ac->target_id);
    free(ac);
}

static void acting_start(struct cp_ctx *c, const char *room_id, const char *actor_id,
                         const char *target_id, enum cp_perm_action action, cp_rooms_done_fn *cb,
                         void *arg)
{
    struct acting *ac = calloc(1, sizeof(*ac));
    if (ac == NULL || (target_id != NULL && (ac->target_id = strdup(target_id)) == NULL)) {
        free(ac);
        struct cp_status st;
        oom(&st);
        cb(arg, &st);
        return;
    }
    ac->c = c;
    ac->cb = cb;
    ac->arg = arg;
    ac->action = action;
    snprintf(ac->room_id, sizeof(ac->room_id), "%s", room_id);
    snprintf(ac->actor_id, sizeof(ac->actor_id), "%s", actor_id);
    c->store->ops->members_list(c->store, room_id, acting_members, ac);
}

void cp_rooms_delete_as(struct cp_ctx *c, const char *room_id, const char *actor_id,
                        cp_rooms_done_fn *cb, void *arg)
{
    acting_start(c, room_id, actor_id, NULL, CP_PERM_DELETE_ROOM, cb, arg);
}

void cp_rooms_kick(struct cp_ctx *c, const char *room_id, const char *actor_id,
                   const char *target_id, cp_rooms_done_fn *cb, void *arg)
{
    acting_start(c, room_id, actor_id, target_id, CP_PERM_KICK, cb, arg);
}

/* ---------------------------------------------------------------- publish */

void cp_rooms_draft(const struct cp_publish *p, char id[SB_ID_LEN], struct cp_message *out)
{
    sb_id_new("m", id);
    *out = (struct cp_message){
        .id = id,
        .room_id = (char *)p->room_id,
        .user_id = (p->user_id != NULL && p->user_id[0] != '\0') ? (char *)p->user_id : NULL,
        .thread_id =
            (p->thread_id != NULL && p->thread_id[0] != '\0') ? (char *)p->thread_id : NULL,
        .metadata = (struct cp_kv *)p->metadata,
        .n_metadata = p->n_metadata,
        .timestamp = sb_time_now_ms(),
        .data = (char *)p->data,
        .data_len = p->data_len,
        .idem_key = (char *)p->idem_key,
    };
}

void cp_rooms_deliver(struct cp_ctx *c, const struct cp_message *m, const struct cp_member *members,
                      size_t n_members, uint64_t members_rev)
{
    struct cp_buf *fb = &c->fan.scratch_frame;
    cp_buf_reset(fb);
    cp_json_message(fb, m);
    if (fb->failed) {
        /* Stored but not delivered: members recover it from history. */
        SB_LOG_ERROR("cp", "out of memory building a message frame", "room=%s seq=%lld", m->room_id,
                     (long long)m->seq);
    } else {
        cp_fanout_room_cached(&c->fan, members, n_members, members_rev, m->room_id, fb->data,
                              fb->len, m->seq);
    }
    cp_fanout_scratch_done(fb);
}

struct publish_op {
    struct cp_ctx *c;
    cp_rooms_publish_fn *cb;
    void *arg;
    bool no_deliver;
};

static void publish_done(void *arg, const struct cp_status *st, const struct cp_append_result *res)
{
    struct publish_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        op->cb(op->arg, st, NULL, 0);
        free(op);
        return;
    }
    struct cp_ctx *c = op->c;
    if (op->no_deliver || res->duplicate) {
        /* SaveMessage, or a repeated idempotency key: the (first) message, delivered before */
        op->cb(op->arg, st, res->message->id, res->message->seq);
        free(op);
        return;
    }
    c->messages_published++;
    cp_rooms_deliver(c, res->message, res->members, res->n_members, res->members_rev);
    op->cb(op->arg, st, res->message->id, res->message->seq);
    free(op);
}

void cp_rooms_publish(struct cp_ctx *c, const struct cp_publish *p, cp_rooms_publish_fn *cb,
                      void *arg)
{
    struct cp_status st;
    if (c->publish_via != NULL) {
        c->publish_via(c, p, cb, arg);
        return;
    }
    struct publish_op *op = malloc(sizeof(*op));
    if (op == NULL) {
        oom(&st);
        cb(arg, &st, NULL, 0);
        return;
    }
    *op = (struct publish_op){c, cb, arg, p->no_deliver};
    char id[SB_ID_LEN];
    struct cp_message draft;
    cp_rooms_draft(p, id, &draft);
    c->store->ops->message_append(c->store, &draft, p->require_member ? p->user_id : NULL,
                                  c->set.max_history_messages, publish_done, op);
}

/* ---------------------------------------------------------------- bans */

void cp_rooms_ban_key(char out[CP_ROOMS_KEY_MAX], const char *room_id, const char *user_id)
{
    cp_keys_doc_ban(out, room_id, user_id);
}

bool cp_rooms_ban_active(const char *value, int64_t now, int64_t *expires_at)
{
    json_t *j = json_loads(value, 0, NULL);
    json_t *e = j ? json_object_get(j, "expires_at") : NULL;
    /* A record we cannot read is kept in force: refusing is the safe side. */
    int64_t at = json_is_integer(e) ? (int64_t)json_integer_value(e) : 0;
    json_decref(j);
    *expires_at = at;
    return at == 0 || at > now;
}
