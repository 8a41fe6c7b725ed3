/* Room flows: Store operation, then events, then the answer. Each flow that may outlive its
 * call keeps a small heap context with copies of what it needs after the Store answers. */
#include "cp_rooms.h"

#include <stdlib.h>
#include <string.h>

#include "cp_json.h"
#include "cp_peer.h"
#include "sb_log.h"
#include "sb_time.h"

static void oom(struct cp_status *st)
{
    cp_status_set(st, SB_CODE_INTERNAL, "out of memory");
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
    if (st->code == SB_CODE_NONE && room->owner_id[0] != '\0' && !op->c->distributed)
        cp_fanout_membership(op->c, room->owner_id, room->id, true);
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
        for (size_t i = 0; i < n && !op->c->distributed; i++)
            cp_fanout_membership(op->c, members[i].user_id, op->room_id, false);
        cp_typing_stop_matching(&op->c->typing, op->room_id, NULL, NULL, NULL);
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
        /* Membership first: the joiner's nodes index the room before any delivery (etcd
         * mode: sent from the watch, which the store's barrier already passed). */
        if (!op->c->distributed)
            cp_fanout_membership(op->c, op->user_id, op->room_id, true);
        struct cp_buf b;
        cp_buf_init(&b);
        cp_json_membership(&b, "join", op->room_id, op->user_id, sb_time_now_ms());
        if (!b.failed)
            cp_fanout_room(op->c, res->members, res->n_members, op->room_id, op->user_id, b.data,
                           b.len, 0);
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

void cp_rooms_join(struct cp_ctx *c, const char *room_id, const char *user_id, enum cp_role role,
                   bool client, bool has_since, int64_t since, cp_rooms_join_fn *cb, void *arg)
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
    struct cp_join_req req = {.room_id = op->room_id,
                              .user_id = op->user_id,
                              .role = role,
                              .now = sb_time_now_ms(),
                              .deny_private = client,
                              .auto_create = client && c->set.auto_create_rooms};
    c->store->ops->member_add(c->store, &req, join_added, op);
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
        if (!c->distributed)
            cp_fanout_membership(c, op->user_id, op->room_id, false);
        struct cp_buf b;
        cp_buf_init(&b);
        if (cp_typing_stop(&c->typing, op->room_id, op->user_id)) {
            cp_json_typing(&b, op->room_id, op->user_id, false);
            if (!b.failed)
                cp_fanout_room(c, members, n, op->room_id, op->user_id, b.data, b.len, 0);
            cp_buf_reset(&b);
        }
        cp_json_membership(&b, "leave", op->room_id, op->user_id, sb_time_now_ms());
        if (!b.failed)
            cp_fanout_room(c, members, n, op->room_id, op->user_id, b.data, b.len, 0);
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

/* ---------------------------------------------------------------- publish */

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
    if (op->no_deliver) {
        op->cb(op->arg, st, res->message->id, res->message->seq);
        free(op);
        return;
    }
    c->messages_published++;
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_message(&b, res->message);
    if (b.failed) {
        /* Stored but not delivered: members recover it from history. */
        SB_LOG_ERROR("cp", "out of memory building a message frame", "room=%s seq=%lld",
                     res->message->room_id, (long long)res->message->seq);
    } else {
        cp_fanout_room(c, res->members, res->n_members, res->message->room_id, NULL, b.data, b.len,
                       res->message->seq);
    }
    cp_buf_fini(&b);
    op->cb(op->arg, st, res->message->id, res->message->seq);
    free(op);
}

void cp_rooms_publish(struct cp_ctx *c, const struct cp_publish *p, cp_rooms_publish_fn *cb,
                      void *arg)
{
    struct cp_status st;
    if (c->distributed) {
        cp_peer_publish(c, p, cb, arg);
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
    sb_id_new("m", id);
    struct cp_message draft = {
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
    };
    c->store->ops->message_append(c->store, &draft, p->require_member ? p->user_id : NULL,
                                  c->set.max_history_messages, publish_done, op);
}
