/* Connection, presence and typing flows. Presence frames go to the peers the Store reports
 * (users sharing a room), grouped per node; typing frames go to the room's other members. */
#include "cp_users.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cp_dist.h"
#include "cp_json.h"
#include "cp_session.h"
#include "cp_watch.h"
#include "sb_log.h"
#include "sb_time.h"

/* ---------------------------------------------------------------- announcements */

struct frame_op {
    struct cp_ctx *c;
    char *room_id; /* typing only */
    char *user_id; /* excluded from room deliveries */
    size_t len;
    char frame[];
};

static struct frame_op *frame_op_new(struct cp_ctx *c, const struct cp_buf *b, const char *room_id,
                                     const char *user_id)
{
    if (b->failed)
        return NULL;
    struct frame_op *op = malloc(sizeof(*op) + b->len + 1);
    if (op == NULL)
        return NULL;
    op->c = c;
    op->len = b->len;
    memcpy(op->frame, b->data, b->len + 1);
    op->room_id = room_id ? strdup(room_id) : NULL;
    op->user_id = user_id ? strdup(user_id) : NULL;
    if ((room_id && !op->room_id) || (user_id && !op->user_id)) {
        free(op->room_id);
        free(op->user_id);
        free(op);
        return NULL;
    }
    return op;
}

static void frame_op_free(struct frame_op *op)
{
    free(op->room_id);
    free(op->user_id);
    free(op);
}

static void peers_done(void *arg, const struct cp_status *st, const char *const *ids, size_t n)
{
    struct frame_op *op = arg;
    if (st->code == SB_CODE_NONE && n > 0)
        cp_fanout_users(op->c, ids, n, op->frame, op->len);
    else if (st->code != SB_CODE_NONE)
        SB_LOG_WARN("cp", "presence not announced", "user=%s code=%s", op->user_id,
                    sb_code_name(st->code));
    frame_op_free(op);
}

void cp_users_announce(struct cp_ctx *c, struct cp_user *u)
{
    struct cp_presence_view v = {.user_id = u->id,
                                 .status = u->status ? u->status : "offline",
                                 .custom_status = u->custom_status,
                                 .device_type = u->device_type,
                                 .device_name = u->device_name,
                                 .activity_type = u->activity_type,
                                 .activity_detail = u->activity_detail,
                                 .timestamp = sb_time_now_ms()};
    cp_watch_presence(c, &v, (int)u->n_conns);
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_presence(&b, &v);
    struct frame_op *op = frame_op_new(c, &b, NULL, u->id);
    cp_buf_fini(&b);
    if (op == NULL) {
        SB_LOG_ERROR("cp", "out of memory announcing presence", "user=%s", u->id);
        return;
    }
    c->store->ops->user_peers(c->store, op->user_id, peers_done, op);
}

static void room_frame_done(void *arg, const struct cp_status *st, const struct cp_member *members,
                            size_t n)
{
    struct frame_op *op = arg;
    if (st->code == SB_CODE_NONE)
        cp_fanout_room(op->c, members, n, op->room_id, op->user_id, op->frame, op->len, 0);
    frame_op_free(op);
}

void cp_users_typing_stopped(void *ctx, const char *room_id, const char *user_id)
{
    struct cp_ctx *c = ctx;
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_typing(&b, room_id, user_id, false);
    struct frame_op *op = frame_op_new(c, &b, room_id, user_id);
    cp_buf_fini(&b);
    if (op == NULL)
        return;
    c->store->ops->members_list(c->store, op->room_id, room_frame_done, op);
}

/* ---------------------------------------------------------------- connections */

struct open_op {
    cp_users_rooms_fn *cb;
    void *arg;
};

static void open_rooms(void *arg, const struct cp_status *st, const char *const *ids, size_t n)
{
    struct open_op *op = arg;
    op->cb(op->arg, st, ids, n);
    free(op);
}

void cp_users_conn_open(struct cp_ctx *c, struct cp_node *node, const char *conn_id,
                        const char *user_id, const char *session_id, const char *transport,
                        int64_t connected_at, cp_users_rooms_fn *cb, void *arg)
{
    struct cp_status st;
    bool came_online = false;
    struct open_op *op = malloc(sizeof(*op));
    if (op == NULL ||
        cp_presence_open(&c->presence, conn_id, user_id, session_id, transport, connected_at, node,
                         sb_time_now_ms(), &came_online) != SB_OK) {
        free(op);
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        cb(arg, &st, NULL, 0);
        return;
    }
    if (came_online)
        cp_users_announce(c, cp_presence_user(&c->presence, user_id));
    op->cb = cb;
    op->arg = arg;
    c->store->ops->user_rooms(c->store, user_id, open_rooms, op);
}

static void went_offline(struct cp_ctx *c, struct cp_user *u)
{
    cp_presence_set_offline(&c->presence, u, sb_time_now_ms());
    cp_typing_stop_matching(&c->typing, NULL, u->id, cp_users_typing_stopped, c);
    /* etcd mode: every replica sees the last connection go; the presence leader speaks. */
    if (cp_dist_announces_presence(c))
        cp_users_announce(c, u);
}

void cp_users_conn_close(struct cp_ctx *c, const char *conn_id)
{
    struct cp_user *u;
    bool last;
    const struct cp_conn *conn = cp_presence_conn(&c->presence, conn_id);
    if (conn != NULL)
        cp_session_closed(c, conn);
    cp_presence_close(&c->presence, conn_id, sb_time_now_ms(), sb_time_mono_ms(),
                      c->set.presence_grace_ms, &u, &last);
    if (u != NULL && last)
        went_offline(c, u);
}

void cp_users_node_gone(struct cp_ctx *c, struct cp_node *node)
{
    /* Collect first: closing edits the map being walked. */
    size_t n = 0, cap = node->n_conns;
    char **ids = cap ? malloc(cap * sizeof(*ids)) : NULL;
    if (cap > 0 && ids == NULL) {
        SB_LOG_ERROR("cp", "out of memory dropping a node's connections", "node=%s",
                     node->id ? node->id : "-");
        return;
    }
    struct cp_map_iter it;
    struct cp_map_entry *e;
    cp_map_iter_init(&c->presence.conns, &it);
    while ((e = cp_map_iter_next(&c->presence.conns, &it)) != NULL && n < cap) {
        struct cp_conn *conn = e->value;
        if (conn->node == node)
            ids[n++] = conn->id;
    }
    /* ids point into records that cp_users_conn_close frees: copy each before closing. */
    for (size_t i = 0; i < n; i++) {
        char *id = strdup(ids[i]);
        ids[i] = id;
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] != NULL)
            cp_users_conn_close(c, ids[i]);
        free(ids[i]);
    }
    free(ids);
}

/* ---------------------------------------------------------------- presence and typing */

void cp_users_presence(struct cp_ctx *c, const char *user_id, const char *status,
                       const char *custom_status, const char *device_type, const char *device_name,
                       const char *activity_type, const char *activity_detail, cp_users_done_fn *cb,
                       void *arg)
{
    struct cp_status st;
    struct cp_user *u = cp_presence_user(&c->presence, user_id);
    if (status == NULL || !cp_presence_status_valid(status)) {
        cp_status_set(&st, SB_CODE_INVALID_MESSAGE,
                      "status must be one of online, away, busy, offline");
        cb(arg, &st);
        return;
    }
    if (u == NULL || u->n_conns == 0) {
        cp_status_set(&st, SB_CODE_INVALID_MESSAGE, "user %s has no open connection", user_id);
        cb(arg, &st);
        return;
    }
    if (cp_presence_update(u, status, custom_status, device_type, device_name, activity_type,
                           activity_detail, sb_time_now_ms()) != SB_OK) {
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        cb(arg, &st);
        return;
    }
    cp_users_announce(c, u);
    if (c->distributed) {
        /* Other replicas learn the status from sb/presence/<user> (not announced again). */
        json_t *j = json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "status", u->status ? u->status : "",
            "custom_status", u->custom_status ? u->custom_status : "", "device_type",
            u->device_type ? u->device_type : "", "device_name",
            u->device_name ? u->device_name : "", "activity_type",
            u->activity_type ? u->activity_type : "", "activity_detail",
            u->activity_detail ? u->activity_detail : "", "last_seen", (json_int_t)u->last_seen);
        char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (txt != NULL)
            cp_store_etcd_presence_put(c->store, u->id, txt);
        free(txt);
    }
    cp_status_ok(&st);
    cb(arg, &st);
}

struct typing_op {
    struct cp_ctx *c;
    cp_users_done_fn *cb;
    void *arg;
    bool typing;
    char *room_id;
    char *user_id;
};

static void typing_members(void *arg, const struct cp_status *st0, const struct cp_member *members,
                           size_t n)
{
    struct typing_op *op = arg;
    struct cp_status st = *st0;
    if (st.code == SB_CODE_NONE) {
        bool member = false;
        for (size_t i = 0; i < n && !member; i++)
            member = strcmp(members[i].user_id, op->user_id) == 0;
        if (!member) {
            cp_status_set(&st, SB_CODE_NOT_ROOM_MEMBER, "user %s is not a member of room %s",
                          op->user_id, op->room_id);
        } else {
            bool deliver;
            if (op->typing) {
                int r =
                    cp_typing_start(&op->c->typing, op->room_id, op->user_id, sb_time_mono_ms());
                if (r < 0)
                    cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
                deliver = r == 1;
            } else {
                deliver = cp_typing_stop(&op->c->typing, op->room_id, op->user_id);
            }
            if (deliver) {
                struct cp_buf b;
                cp_buf_init(&b);
                cp_json_typing(&b, op->room_id, op->user_id, op->typing);
                if (!b.failed)
                    cp_fanout_room(op->c, members, n, op->room_id, op->user_id, b.data, b.len, 0);
                cp_buf_fini(&b);
            }
        }
    }
    op->cb(op->arg, &st);
    free(op->room_id);
    free(op->user_id);
    free(op);
}

void cp_users_typing(struct cp_ctx *c, const char *room_id, const char *user_id, bool typing,
                     cp_users_done_fn *cb, void *arg)
{
    struct typing_op *op = calloc(1, sizeof(*op));
    if (op != NULL) {
        op->room_id = strdup(room_id);
        op->user_id = strdup(user_id);
    }
    if (op == NULL || op->room_id == NULL || op->user_id == NULL) {
        if (op != NULL) {
            free(op->room_id);
            free(op->user_id);
        }
        free(op);
        struct cp_status st;
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        cb(arg, &st);
        return;
    }
    op->c = c;
    op->cb = cb;
    op->arg = arg;
    op->typing = typing;
    c->store->ops->members_list(c->store, op->room_id, typing_members, op);
}

/* ---------------------------------------------------------------- timers */

void cp_users_tick(struct cp_ctx *c, int64_t mono_ms)
{
    cp_typing_expire(&c->typing, mono_ms, cp_users_typing_stopped, c);
    struct cp_user *u;
    while ((u = cp_presence_grace_due(&c->presence, mono_ms)) != NULL)
        went_offline(c, u);
}
