/* Connection, presence and typing flows. Presence frames go to the peers the Store reports
 * (users sharing a room), grouped per node; typing frames go to the room's other members.
 * Every change of the presence record is a read-modify-write of presence/<user> guarded by its
 * version (a concurrent writer on another replica makes us re-read and redo the edit). */
#include "cp_users.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cp_json.h"
#include "cp_session.h"
#include "sb_ident.h"
#include "sb_log.h"
#include "sb_time.h"

#define RMW_TRIES       5
#define KEY_MAX         (SB_IDENT_MAX * 2 + 32)
#define TYPING_SLACK    500  /* ms: an expiring typing document this close to its end is ours */
#define STALE_MARGIN_MS 2000 /* clock skew allowed between data planes and control planes */

/* A store may lack documents (a Store implementation without the doc_* operations). */
static bool has_docs(const struct cp_ctx *c)
{
    const struct cp_store_ops *o = c->store->ops;
    return o->doc_get != NULL && o->doc_list != NULL && o->doc_write != NULL;
}

static void no_docs(struct cp_status *st)
{
    cp_status_set(st, SB_CODE_UNAVAILABLE, "the store does not keep documents yet");
}

/* Activity is written into the record at most this often per user and replica. */
static int64_t activity_throttle(const struct cp_ctx *c)
{
    int64_t t = c->set.presence_timeout_ms;
    if (t <= 0)
        return 60000;
    t /= 10;
    return t < 100 ? 100 : t;
}

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
        cp_fanout_users(&op->c->fan, ids, n, op->frame, op->len);
    else if (st->code != SB_CODE_NONE)
        SB_LOG_WARN("cp", "presence not announced", "user=%s code=%s", op->user_id,
                    sb_code_name(st->code));
    frame_op_free(op);
}

/* The user's rooms: each node delivers to its local members of them (cp_fanout_rooms). Only if
 * some node is an older data plane without that Delivery target, fall back to listing every
 * co-member (user_peers: a read of every member of every room of the user). */
static void rooms_done(void *arg, const struct cp_status *st, const char *const *ids, size_t n)
{
    struct frame_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        SB_LOG_WARN("cp", "presence not announced", "user=%s code=%s", op->user_id,
                    sb_code_name(st->code));
    } else if (!cp_fanout_rooms(&op->c->fan, ids, n, op->user_id, op->frame, op->len)) {
        op->c->store->ops->user_peers(op->c->store, op->user_id, peers_done, op);
        return;
    }
    frame_op_free(op);
}

/* Sends {"type":"presence",...} to every user who shares a room with `user_id` (never to the
 * user, never to anyone else). The single place presence frames leave from. */
static void announce_view(struct cp_ctx *c, const struct cp_presence_view *v)
{
    const struct cp_user *u = cp_presence_user(&c->presence, v->user_id);
    if (c->hooks.presence != NULL)
        c->hooks.presence(c->hooks.ud, v, u != NULL ? (int)u->n_conns : 0);
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_presence(&b, v);
    struct frame_op *op = frame_op_new(c, &b, NULL, v->user_id);
    cp_buf_fini(&b);
    if (op == NULL) {
        SB_LOG_ERROR("cp", "out of memory announcing presence", "user=%s", v->user_id);
        return;
    }
    c->store->ops->user_rooms(c->store, op->user_id, rooms_done, op);
}

static void announce_rec(struct cp_ctx *c, const char *user_id, const char *status,
                         const struct cp_presence_record *r)
{
    struct cp_presence_view v = {.user_id = user_id,
                                 .status = status,
                                 .custom_status = r->custom_status,
                                 .device_type = r->device_type,
                                 .device_name = r->device_name,
                                 .activity_type = r->activity_type,
                                 .activity_detail = r->activity_detail,
                                 .availability = r->availability,
                                 .timestamp = sb_time_now_ms()};
    announce_view(c, &v);
}

/* The offline announcement, from what this replica knows (no Store read: it must leave before
 * a reconnection's online announcement could). */
static void announce_offline(struct cp_ctx *c, struct cp_user *u)
{
    struct cp_presence_view v = {.user_id = u->id,
                                 .status = "offline",
                                 .custom_status = u->custom_status,
                                 .device_type = u->device_type,
                                 .device_name = u->device_name,
                                 .activity_type = u->activity_type,
                                 .activity_detail = u->activity_detail,
                                 .availability = u->availability,
                                 .timestamp = sb_time_now_ms()};
    announce_view(c, &v);
}

/* Keeps the local copy of the record (offline announcements, timeout candidates). */
static void cache_record(struct cp_user *u, const struct cp_presence_record *r)
{
    char **dst[] = {&u->custom_status, &u->device_type,     &u->device_name,
                    &u->activity_type, &u->activity_detail, &u->availability};
    const char *src[] = {r->custom_status, r->device_type,     r->device_name,
                         r->activity_type, r->activity_detail, r->availability};
    for (size_t i = 0; i < sizeof(dst) / sizeof(dst[0]); i++)
        cp_presence_record_set(dst[i], src[i]); /* ENOMEM: keeps the old copy */
    cp_presence_record_set(&u->status, cp_presence_effective_status(u->online, r));
    u->auto_away = r->auto_away;
    if (r->last_activity > u->last_activity)
        u->last_activity = r->last_activity;
}

/* ---------------------------------------------------------------- record read-modify-write */

enum rmw_kind {
    RMW_GET,      /* read only: answer the state */
    RMW_ANNOUNCE, /* read only: the user came online, announce */
    RMW_SET,      /* SetPresence / presence frame */
    RMW_ACTIVITY, /* last_activity; away by timeout -> online */
    RMW_IDLE,     /* the presence timeout: online -> away */
    RMW_RESET,    /* the user went offline: the status set while connected is over */
};

struct rmw {
    struct cp_ctx *c;
    enum rmw_kind kind;
    int tries;
    int64_t version; /* of the record read; 0: absent */
    bool announce;   /* after the write, when the user is still online */
    bool oom;        /* the edit ran out of memory */
    struct cp_presence_record rec;
    struct cp_presence_record in; /* RMW_SET */
    bool keep_availability;
    cp_users_state_fn *state_cb;
    cp_users_done_fn *done_cb;
    void *arg;
    char *user_id;
    char key[KEY_MAX];
};

static void rmw_start(struct rmw *op);

static void rmw_free(struct rmw *op)
{
    cp_presence_record_fini(&op->rec);
    cp_presence_record_fini(&op->in);
    free(op->user_id);
    free(op);
}

static struct rmw *rmw_new(struct cp_ctx *c, enum rmw_kind kind, const char *user_id)
{
    struct rmw *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return NULL;
    op->c = c;
    op->kind = kind;
    op->user_id = strdup(user_id);
    if (op->user_id == NULL || cp_presence_record_init(&op->rec) != SB_OK ||
        cp_presence_record_init(&op->in) != SB_OK) {
        rmw_free(op);
        return NULL;
    }
    snprintf(op->key, sizeof(op->key), "presence/%s", user_id);
    return op;
}

/* The state answered to GetPresence / SetPresence. */
static void state_of(const struct rmw *op, struct cp_users_state *ps)
{
    struct cp_user *u = cp_presence_user(&op->c->presence, op->user_id);
    bool online = u != NULL && u->online;
    ps->user_id = op->user_id;
    ps->status = cp_presence_effective_status(online, &op->rec);
    ps->rec = &op->rec;
    ps->connection_count = u != NULL ? (int32_t)u->n_conns : 0;
    int64_t seen = op->rec.last_activity;
    if (u != NULL && u->last_seen > seen)
        seen = u->last_seen;
    if (u != NULL && u->last_activity > seen)
        seen = u->last_activity;
    ps->last_seen = seen;
}

static void rmw_finish(struct rmw *op, const struct cp_status *st)
{
    struct cp_ctx *c = op->c;
    struct cp_user *u = cp_presence_user(&c->presence, op->user_id);
    if (st->code == SB_CODE_NONE && u != NULL) {
        cache_record(u, &op->rec);
        if (op->announce && u->online)
            announce_rec(c, u->id, cp_presence_effective_status(true, &op->rec), &op->rec);
    } else if (op->kind == RMW_ANNOUNCE && u != NULL && u->online) {
        /* The record could not be read: the user is online all the same. */
        struct cp_presence_record empty;
        if (cp_presence_record_init(&empty) == SB_OK)
            announce_rec(c, u->id, "online", &empty);
        cp_presence_record_fini(&empty);
    } else if (st->code != SB_CODE_NONE && op->state_cb == NULL && op->done_cb == NULL) {
        SB_LOG_WARN("cp", "presence record not updated", "user=%s kind=%d code=%s msg=\"%s\"",
                    op->user_id, (int)op->kind, sb_code_name(st->code), st->msg);
    }
    if (op->state_cb != NULL) {
        struct cp_users_state ps;
        state_of(op, &ps);
        op->state_cb(op->arg, st, &ps);
    } else if (op->done_cb != NULL) {
        op->done_cb(op->arg, st);
    }
    rmw_free(op);
}

/* Applies the operation to op->rec (just read). Returns true when it must be written. */
static bool rmw_edit(struct rmw *op)
{
    struct cp_ctx *c = op->c;
    struct cp_presence_record *r = &op->rec;
    struct cp_user *u = cp_presence_user(&c->presence, op->user_id);
    bool online = u != NULL && u->online;
    int64_t now = sb_time_now_ms();
    op->announce = false;
    switch (op->kind) {
    case RMW_GET:
        return false;
    case RMW_ANNOUNCE: {
        op->announce = true;
        /* A status left from an earlier session (its reset at offline never happened: the
         * replica died, the store was down) does not carry over. Set within the skew margin of
         * this session's first connection: kept. */
        int64_t since = INT64_MAX;
        for (size_t i = 0; u != NULL && i < u->n_conns; i++)
            if (u->conns[i]->connected_at < since)
                since = u->conns[i]->connected_at;
        /* Or set before this replica saw the user go offline: the reset at offline may still
         * be on its way to the store when the user comes back. */
        bool before_offline =
            u != NULL && u->offline_since > 0 && r->updated_at <= u->offline_since;
        bool stale_set =
            r->status[0] != '\0' && !r->auto_away &&
            ((since != INT64_MAX && r->updated_at < since - STALE_MARGIN_MS) || before_offline);
        if (!stale_set && !r->auto_away)
            return false;
        if (cp_presence_record_set(&r->status, "") != SB_OK) {
            op->oom = true;
            return false;
        }
        r->auto_away = false;
        return true;
    }
    case RMW_SET: {
        const struct cp_presence_record *in = &op->in;
        bool bad = cp_presence_record_set(&r->status, online ? in->status : "") != SB_OK ||
                   cp_presence_record_set(&r->custom_status, in->custom_status) != SB_OK ||
                   cp_presence_record_set(&r->device_type, in->device_type) != SB_OK ||
                   cp_presence_record_set(&r->device_name, in->device_name) != SB_OK ||
                   cp_presence_record_set(&r->activity_type, in->activity_type) != SB_OK ||
                   cp_presence_record_set(&r->activity_detail, in->activity_detail) != SB_OK ||
                   (!op->keep_availability &&
                    cp_presence_record_set(&r->availability, in->availability) != SB_OK);
        if (bad) {
            op->oom = true; /* never write a half-applied state */
            return false;
        }
        r->auto_away = false;
        r->updated_at = now;
        if (r->last_activity < now)
            r->last_activity = now;
        op->announce = online;
        return true;
    }
    case RMW_ACTIVITY:
        if (r->last_activity < now)
            r->last_activity = now;
        if (r->auto_away && online && u->n_conns > 0) {
            if (cp_presence_record_set(&r->status, "") != SB_OK) {
                op->oom = true;
                return false;
            }
            r->auto_away = false;
            op->announce = true;
        }
        return true;
    case RMW_IDLE:
        if (!online || u->n_conns == 0 ||
            !cp_presence_is_idle(r, u->last_activity, now, c->set.presence_timeout_ms))
            return false;
        if (cp_presence_record_set(&r->status, "away") != SB_OK)
            return false;
        r->auto_away = true;
        op->announce = true;
        return true;
    case RMW_RESET:
        if (online || (r->status[0] == '\0' && !r->auto_away))
            return false;
        if (cp_presence_record_set(&r->status, "") != SB_OK) {
            op->oom = true;
            return false;
        }
        r->auto_away = false;
        return true;
    }
    return false;
}

static void rmw_written(void *arg, const struct cp_status *st, const int64_t *versions, size_t n)
{
    struct rmw *op = arg;
    (void)versions;
    (void)n;
    if (st->code == SB_CODE_CONFLICT && op->tries < RMW_TRIES) {
        rmw_start(op); /* someone else wrote it: re-read, edit again */
        return;
    }
    rmw_finish(op, st);
}

static void rmw_read(void *arg, const struct cp_status *st0, const struct cp_doc *doc)
{
    struct rmw *op = arg;
    struct cp_status st;
    if (st0->code != SB_CODE_NONE) {
        rmw_finish(op, st0);
        return;
    }
    cp_presence_record_fini(&op->rec);
    op->version = 0;
    enum sb_err e;
    if (doc != NULL) {
        op->version = doc->version;
        e = cp_presence_record_parse(doc->value, doc->len, &op->rec);
        if (e == SB_EPROTO)
            SB_LOG_WARN("cp", "presence record is not a JSON object: rewritten", "user=%s",
                        op->user_id);
    } else {
        e = cp_presence_record_init(&op->rec);
    }
    if (e == SB_ENOMEM || op->rec.status == NULL) {
        if (op->rec.status == NULL)
            cp_presence_record_init(&op->rec); /* rmw_free needs a valid record */
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        rmw_finish(op, &st);
        return;
    }
    if (!rmw_edit(op)) {
        if (op->oom)
            cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        else
            cp_status_ok(&st);
        rmw_finish(op, &st);
        return;
    }
    char *txt = cp_presence_record_format(&op->rec);
    if (txt == NULL) {
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        rmw_finish(op, &st);
        return;
    }
    struct cp_doc_op w = {.key = op->key, .value = txt, .expect = op->version};
    op->tries++;
    op->c->store->ops->doc_write(op->c->store, &w, 1, rmw_written, op);
    free(txt);
}

static void rmw_start(struct rmw *op)
{
    if (!has_docs(op->c) && (op->kind == RMW_GET || op->kind == RMW_ANNOUNCE)) {
        struct cp_status ok;
        cp_status_ok(&ok);
        rmw_read(op, &ok, NULL); /* no record anywhere: connection state only */
        return;
    }
    if (!has_docs(op->c)) {
        struct cp_status st;
        no_docs(&st);
        rmw_finish(op, &st);
        return;
    }
    op->c->store->ops->doc_get(op->c->store, op->key, rmw_read, op);
}

/* Starts a background operation (no answer awaited); out of memory is logged. */
static void rmw_background(struct cp_ctx *c, enum rmw_kind kind, const char *user_id)
{
    struct rmw *op = rmw_new(c, kind, user_id);
    if (op == NULL) {
        SB_LOG_ERROR("cp", "out of memory updating presence", "user=%s", user_id);
        return;
    }
    rmw_start(op);
}

void cp_users_announce(struct cp_ctx *c, struct cp_user *u)
{
    if (u != NULL)
        rmw_background(c, RMW_ANNOUNCE, u->id);
}

/* ---------------------------------------------------------------- typing documents */

static void typing_key(char *out, size_t cap, const char *room_id, const char *user_id)
{
    snprintf(out, cap, "typing/%s/%s", room_id, user_id);
}

static void typing_frame(struct cp_ctx *c, const struct cp_member *members, size_t n,
                         const char *room_id, const char *user_id, bool typing)
{
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_typing(&b, room_id, user_id, typing);
    if (!b.failed)
        cp_fanout_room(&c->fan, members, n, room_id, user_id, b.data, b.len, 0);
    cp_buf_fini(&b);
}

static void ignore_write(void *arg, const struct cp_status *st, const int64_t *v, size_t n)
{
    (void)v;
    (void)n;
    if (st->code != SB_CODE_NONE && st->code != SB_CODE_CONFLICT)
        SB_LOG_DEBUG("cp", "typing document not removed", "key=%s code=%s", (char *)arg,
                     sb_code_name(st->code));
    free(arg);
}

/* Deletes a typing document, only at `version` when > 0. Fire and forget. */
static void typing_doc_delete(struct cp_ctx *c, const char *key, int64_t version)
{
    char *k = strdup(key);
    if (k == NULL || !has_docs(c)) {
        free(k);
        return;
    }
    struct cp_doc_op w = {.key = k, .value = NULL, .expect = version > 0 ? version : -1};
    c->store->ops->doc_write(c->store, &w, 1, ignore_write, k);
}

/* A typing document's field (Unix ms), 0 when absent. */
static int64_t typing_field(const struct cp_doc *d, const char *name)
{
    json_t *j = json_loadb(d->value, d->len, 0, NULL);
    json_t *v = json_object_get(j, name);
    int64_t at = json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
    json_decref(j);
    return at;
}

static int64_t typing_expires_at(const struct cp_doc *d)
{
    return typing_field(d, "expires_at");
}

static void room_frame_done(void *arg, const struct cp_status *st, const struct cp_member *members,
                            size_t n)
{
    struct frame_op *op = arg;
    if (st->code == SB_CODE_NONE)
        cp_fanout_room(&op->c->fan, members, n, op->room_id, op->user_id, op->frame, op->len, 0);
    frame_op_free(op);
}

/* The document is gone (or could not be removed: the frame goes anyway, the document expires
 * by itself): typing:false to the room's other members. */
static void typing_end_deleted(void *arg, const struct cp_status *st, const int64_t *v, size_t n)
{
    struct frame_op *op = arg;
    (void)v;
    (void)n;
    if (st->code != SB_CODE_NONE && st->code != SB_CODE_CONFLICT)
        SB_LOG_DEBUG("cp", "typing document not removed", "room=%s user=%s code=%s", op->room_id,
                     op->user_id, sb_code_name(st->code));
    op->c->store->ops->members_list(op->c->store, op->room_id, room_frame_done, op);
}

static void typing_end_delete(struct frame_op *op, const char *key, int64_t version)
{
    struct cp_doc_op w = {.key = key, .value = NULL, .expect = version > 0 ? version : -1};
    op->c->store->ops->doc_write(op->c->store, &w, 1, typing_end_deleted, op);
}

/* After a local expiry: if another replica refreshed the document since (the user types in a
 * tab served by another replica), that replica owns the end; else the document goes, then
 * typing:false. */
static void typing_expired_doc(void *arg, const struct cp_status *st, const struct cp_doc *doc)
{
    struct frame_op *op = arg;
    if (st->code == SB_CODE_NONE && doc != NULL &&
        typing_expires_at(doc) > sb_time_now_ms() + TYPING_SLACK) {
        frame_op_free(op);
        return;
    }
    if (st->code == SB_CODE_NONE && doc != NULL) {
        typing_end_delete(op, doc->key, doc->version);
        return;
    }
    op->c->store->ops->members_list(op->c->store, op->room_id, room_frame_done, op);
}

/* The document removed (only_if_ours: unless another replica refreshed it), then typing:false
 * to the room's other members. */
static void typing_ended(struct cp_ctx *c, const char *room_id, const char *user_id,
                         bool only_if_ours)
{
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_typing(&b, room_id, user_id, false);
    struct frame_op *op = frame_op_new(c, &b, room_id, user_id);
    cp_buf_fini(&b);
    char key[KEY_MAX];
    typing_key(key, sizeof(key), room_id, user_id);
    if (op == NULL) {
        SB_LOG_ERROR("cp", "out of memory ending typing", "room=%s user=%s", room_id, user_id);
        typing_doc_delete(c, key, 0);
        return;
    }
    if (!has_docs(c))
        c->store->ops->members_list(c->store, op->room_id, room_frame_done, op);
    else if (only_if_ours)
        c->store->ops->doc_get(c->store, key, typing_expired_doc, op);
    else
        typing_end_delete(op, key, 0);
}

void cp_users_typing_stopped(void *ctx, const char *room_id, const char *user_id)
{
    typing_ended(ctx, room_id, user_id, false);
}

static void typing_expired(void *ctx, const char *room_id, const char *user_id)
{
    typing_ended(ctx, room_id, user_id, true);
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
    if (cp_ctx_is_leader(c)) {
        announce_offline(c, u);
        rmw_background(c, RMW_RESET, u->id);
    }
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
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&c->presence.conns, &it);
    while ((e = sb_map_iter_next(&c->presence.conns, &it)) != NULL && n < cap) {
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

/* ---------------------------------------------------------------- presence */

void cp_users_presence(struct cp_ctx *c, const char *user_id,
                       const struct cp_users_presence_set *set, cp_users_state_fn *cb, void *arg)
{
    struct cp_status st;
    if (set->status == NULL || !cp_presence_status_valid(set->status)) {
        cp_status_set(&st, SB_CODE_INVALID_MESSAGE,
                      "status must be one of online, away, busy, offline");
        cb(arg, &st, NULL);
        return;
    }
    struct rmw *op = rmw_new(c, RMW_SET, user_id);
    struct cp_presence_record *in = op != NULL ? &op->in : NULL;
    if (op == NULL || cp_presence_record_set(&in->status, set->status) != SB_OK ||
        cp_presence_record_set(&in->custom_status, set->custom_status) != SB_OK ||
        cp_presence_record_set(&in->device_type, set->device_type) != SB_OK ||
        cp_presence_record_set(&in->device_name, set->device_name) != SB_OK ||
        cp_presence_record_set(&in->activity_type, set->activity_type) != SB_OK ||
        cp_presence_record_set(&in->activity_detail, set->activity_detail) != SB_OK ||
        cp_presence_record_set(&in->availability, set->availability) != SB_OK) {
        if (op != NULL)
            rmw_free(op);
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        cb(arg, &st, NULL);
        return;
    }
    op->keep_availability = set->keep_availability;
    op->state_cb = cb;
    op->arg = arg;
    struct cp_user *u = cp_presence_user(&c->presence, user_id);
    if (u != NULL) {
        int64_t now = sb_time_now_ms();
        u->last_activity = now; /* written by the set itself */
        u->activity_written = now;
    }
    rmw_start(op);
}

void cp_users_get(struct cp_ctx *c, const char *user_id, cp_users_state_fn *cb, void *arg)
{
    struct rmw *op = rmw_new(c, RMW_GET, user_id);
    if (op == NULL) {
        struct cp_status st;
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        cb(arg, &st, NULL);
        return;
    }
    op->state_cb = cb;
    op->arg = arg;
    rmw_start(op);
}

void cp_users_activity(struct cp_ctx *c, const char *user_id, cp_users_done_fn *cb, void *arg)
{
    struct cp_status st;
    cp_status_ok(&st);
    int64_t now = sb_time_now_ms();
    struct cp_user *u = cp_presence_user(&c->presence, user_id);
    if (u != NULL && u->last_activity < now)
        u->last_activity = now;
    if (!has_docs(c)) {
        if (cb != NULL)
            cb(arg, &st);
        return;
    }
    if (u != NULL) {
        /* Written when this replica has not written it lately, or to undo away-by-timeout. */
        if (!u->auto_away && now - u->activity_written < activity_throttle(c)) {
            if (cb != NULL)
                cb(arg, &st);
            return;
        }
        u->activity_written = now;
        u->auto_away = false;
    }
    struct rmw *op = rmw_new(c, RMW_ACTIVITY, user_id);
    if (op == NULL) {
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        if (cb != NULL)
            cb(arg, &st);
        return;
    }
    op->done_cb = cb;
    op->arg = arg;
    rmw_start(op);
}

/* ---------------------------------------------------------------- online users */

struct online_op {
    struct cp_ctx *c;
    cp_users_ids_fn *cb;
    void *arg;
    char **ids; /* candidates (owned), sorted */
    size_t n;
};

static void online_op_free(struct online_op *op)
{
    for (size_t i = 0; i < op->n; i++)
        free(op->ids[i]);
    free(op->ids);
    free(op);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Drops the candidates whose record says they appear offline. */
static void online_docs(void *arg, const struct cp_status *st, const struct cp_doc *docs, size_t n)
{
    struct online_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        op->cb(op->arg, st, NULL, 0);
        online_op_free(op);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < op->n; i++) {
        char key[KEY_MAX];
        snprintf(key, sizeof(key), "presence/%s", op->ids[i]);
        bool hidden = false;
        size_t lo = 0, hi = n;
        while (lo < hi) { /* docs come by key order */
            size_t mid = lo + (hi - lo) / 2;
            int r = strcmp(docs[mid].key, key);
            if (r == 0) {
                struct cp_presence_record rec;
                if (cp_presence_record_parse(docs[mid].value, docs[mid].len, &rec) == SB_OK)
                    hidden = strcmp(rec.status, "offline") == 0;
                cp_presence_record_fini(&rec);
                break;
            }
            if (r < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (hidden)
            free(op->ids[i]);
        else
            op->ids[k++] = op->ids[i];
    }
    op->n = k;
    struct cp_status ok;
    cp_status_ok(&ok);
    op->cb(op->arg, &ok, (const char *const *)op->ids, op->n);
    online_op_free(op);
}

static void online_filter(struct online_op *op)
{
    if (op->n > 1)
        qsort(op->ids, op->n, sizeof(*op->ids), cmp_str);
    if (op->n == 0 || !has_docs(op->c)) {
        struct cp_status st;
        cp_status_ok(&st);
        op->cb(op->arg, &st, (const char *const *)op->ids, op->n);
        online_op_free(op);
        return;
    }
    op->c->store->ops->doc_list(op->c->store, "presence/", online_docs, op);
}

static bool online_add(struct online_op *op, const char *id)
{
    char *d = strdup(id);
    if (d == NULL)
        return false;
    op->ids[op->n++] = d;
    return true;
}

static void online_members(void *arg, const struct cp_status *st, const struct cp_member *members,
                           size_t n)
{
    struct online_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        op->cb(op->arg, st, NULL, 0);
        online_op_free(op);
        return;
    }
    op->ids = n ? calloc(n, sizeof(*op->ids)) : NULL;
    bool ok = n == 0 || op->ids != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        struct cp_user *u = cp_presence_user(&op->c->presence, members[i].user_id);
        if (u != NULL && u->online)
            ok = online_add(op, members[i].user_id);
    }
    if (!ok) {
        struct cp_status e;
        cp_status_set(&e, SB_CODE_INTERNAL, "out of memory");
        op->cb(op->arg, &e, NULL, 0);
        online_op_free(op);
        return;
    }
    online_filter(op);
}

void cp_users_online(struct cp_ctx *c, const char *room_id, cp_users_ids_fn *cb, void *arg)
{
    struct cp_status st;
    struct online_op *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        cb(arg, &st, NULL, 0);
        return;
    }
    op->c = c;
    op->cb = cb;
    op->arg = arg;
    if (room_id != NULL && room_id[0] != '\0') {
        c->store->ops->members_list(c->store, room_id, online_members, op);
        return;
    }
    size_t cap = c->presence.n_online;
    op->ids = cap ? calloc(cap, sizeof(*op->ids)) : NULL;
    bool ok = cap == 0 || op->ids != NULL;
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&c->presence.users, &it);
    while (ok && (e = sb_map_iter_next(&c->presence.users, &it)) != NULL && op->n < cap) {
        struct cp_user *u = e->value;
        if (u->online)
            ok = online_add(op, u->id);
    }
    if (!ok) {
        online_op_free(op);
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        cb(arg, &st, NULL, 0);
        return;
    }
    online_filter(op);
}

/* ---------------------------------------------------------------- typing */

struct typing_op {
    struct cp_ctx *c;
    cp_users_done_fn *cb;
    void *arg;
    bool typing;
    bool deliver;              /* start: typing:true is due (a new entry) */
    bool was_local;            /* stop: this replica had the entry */
    int64_t until;             /* start: the expires_at written */
    struct cp_member *members; /* copies (user ids owned) for the fan-out after the write */
    size_t n_members;
    char *room_id;
    char *user_id;
    char key[KEY_MAX];
};

static void typing_op_free(struct typing_op *op)
{
    for (size_t i = 0; i < op->n_members; i++)
        free(op->members[i].user_id);
    free(op->members);
    free(op->room_id);
    free(op->user_id);
    free(op);
}

static void typing_finish(struct typing_op *op, const struct cp_status *st)
{
    op->cb(op->arg, st);
    typing_op_free(op);
}

static void typing_start_written(void *arg, const struct cp_status *st, const int64_t *v, size_t n)
{
    struct typing_op *op = arg;
    (void)v;
    (void)n;
    struct cp_typing_entry *e = cp_typing_find(&op->c->typing, op->room_id, op->user_id);
    if (st->code != SB_CODE_NONE) {
        /* Not visible to other replicas: undo, so no typing:false follows an unsent true. */
        if (op->deliver)
            cp_typing_stop(&op->c->typing, op->room_id, op->user_id);
        typing_finish(op, st);
        return;
    }
    if (e != NULL && e->written_until < op->until)
        e->written_until = op->until;
    if (op->deliver)
        typing_frame(op->c, op->members, op->n_members, op->room_id, op->user_id, true);
    typing_finish(op, st);
}

static void typing_stop_deleted(void *arg, const struct cp_status *st, const int64_t *v, size_t n)
{
    struct typing_op *op = arg;
    (void)v;
    (void)n;
    if (st->code == SB_CODE_NONE && op->deliver)
        typing_frame(op->c, op->members, op->n_members, op->room_id, op->user_id, false);
    typing_finish(op, st);
}

static void typing_stop_read(void *arg, const struct cp_status *st, const struct cp_doc *doc)
{
    struct typing_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        typing_finish(op, st);
        return;
    }
    op->deliver = op->was_local || (doc != NULL && typing_expires_at(doc) > sb_time_now_ms());
    if (doc == NULL) {
        typing_stop_deleted(op, st, NULL, 0);
        return;
    }
    /* Answered once the document is gone: GetTypingUsers anywhere then agrees. */
    struct cp_doc_op w = {.key = op->key, .value = NULL, .expect = -1};
    op->c->store->ops->doc_write(op->c->store, &w, 1, typing_stop_deleted, op);
}

static void typing_members(void *arg, const struct cp_status *st0, const struct cp_member *members,
                           size_t n)
{
    struct typing_op *op = arg;
    struct cp_ctx *c = op->c;
    struct cp_status st = *st0;
    if (st.code != SB_CODE_NONE) {
        typing_finish(op, &st);
        return;
    }
    bool member = false;
    for (size_t i = 0; i < n && !member; i++)
        member = strcmp(members[i].user_id, op->user_id) == 0;
    if (!member) {
        cp_status_set(&st, SB_CODE_NOT_ROOM_MEMBER, "user %s is not a member of room %s",
                      op->user_id, op->room_id);
        typing_finish(op, &st);
        return;
    }
    if (!has_docs(c)) {
        no_docs(&st);
        typing_finish(op, &st);
        return;
    }
    /* The fan-out happens after the Store answers: keep the member ids. */
    op->members = n ? calloc(n, sizeof(*op->members)) : NULL;
    for (size_t i = 0; op->members != NULL && i < n; i++) {
        op->members[i] = members[i];
        op->members[i].user_id = strdup(members[i].user_id);
        op->n_members = i + 1;
        if (op->members[i].user_id == NULL)
            break;
    }
    if (n > 0 && (op->members == NULL || op->members[n - 1].user_id == NULL)) {
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        typing_finish(op, &st);
        return;
    }
    int64_t now = sb_time_now_ms();
    typing_key(op->key, sizeof(op->key), op->room_id, op->user_id);
    if (!op->typing) {
        op->was_local = cp_typing_stop(&c->typing, op->room_id, op->user_id);
        c->store->ops->doc_get(c->store, op->key, typing_stop_read, op);
        return;
    }
    int r = cp_typing_start(&c->typing, op->room_id, op->user_id, sb_time_mono_ms());
    struct cp_typing_entry *e = cp_typing_find(&c->typing, op->room_id, op->user_id);
    if (r < 0 || e == NULL) {
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        typing_finish(op, &st);
        return;
    }
    op->deliver = r == 1;
    if (r == 1) {
        e->written_until = 0;
        e->started_at = now;
    }
    /* A refresh rewrites the document when it moves the end by a tenth of the timeout or
     * more: GetTypingUsers on any replica stays within that of this replica's expiry. */
    op->until = now + c->set.typing_timeout_ms;
    if (!op->deliver && op->until - e->written_until < c->set.typing_timeout_ms / 10) {
        typing_finish(op, &st);
        return;
    }
    char val[96];
    snprintf(val, sizeof(val), "{\"expires_at\":%lld,\"started_at\":%lld}", (long long)op->until,
             (long long)e->started_at);
    struct cp_doc_op w = {.key = op->key, .value = val, .expect = -1};
    c->store->ops->doc_write(c->store, &w, 1, typing_start_written, op);
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

/* GetTypingUsers */

struct typing_list_op {
    struct cp_ctx *c;
    cp_users_ids_fn *cb;
    void *arg;
    char **members; /* sorted user ids (owned) */
    size_t n_members;
    char prefix[KEY_MAX];
};

struct typer {
    const char *user_id; /* borrowed from the document key */
    int64_t started_at;
};

static void typing_list_free(struct typing_list_op *op)
{
    for (size_t i = 0; i < op->n_members; i++)
        free(op->members[i]);
    free(op->members);
    free(op);
}

static int cmp_typer(const void *a, const void *b)
{
    const struct typer *x = a, *y = b;
    /* Earliest start first: over the limit, those who started last are left out. */
    if (x->started_at != y->started_at)
        return x->started_at < y->started_at ? -1 : 1;
    return strcmp(x->user_id, y->user_id);
}

static void typing_list_docs(void *arg, const struct cp_status *st, const struct cp_doc *docs,
                             size_t n)
{
    struct typing_list_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        op->cb(op->arg, st, NULL, 0);
        typing_list_free(op);
        return;
    }
    struct typer *t = n ? calloc(n, sizeof(*t)) : NULL;
    if (n > 0 && t == NULL) {
        struct cp_status e;
        cp_status_set(&e, SB_CODE_INTERNAL, "out of memory");
        op->cb(op->arg, &e, NULL, 0);
        typing_list_free(op);
        return;
    }
    int64_t now = sb_time_now_ms();
    size_t plen = strlen(op->prefix), k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *user = docs[i].key + plen;
        int64_t at = typing_expires_at(&docs[i]);
        if (at <= now - TYPING_SLACK) {
            typing_doc_delete(op->c, docs[i].key, docs[i].version); /* left by a dead replica */
            continue;
        }
        if (at <= now || op->n_members == 0 ||
            bsearch(&user, op->members, op->n_members, sizeof(char *), cmp_str) == NULL)
            continue;
        t[k].user_id = user;
        t[k].started_at = typing_field(&docs[i], "started_at");
        k++;
    }
    if (k > 1)
        qsort(t, k, sizeof(*t), cmp_typer);
    size_t max = op->c->set.max_typing_users > 0 ? (size_t)op->c->set.max_typing_users : k;
    if (k > max)
        k = max;
    const char **ids = k ? malloc(k * sizeof(*ids)) : NULL;
    struct cp_status ok;
    if (k > 0 && ids == NULL) {
        cp_status_set(&ok, SB_CODE_INTERNAL, "out of memory");
        op->cb(op->arg, &ok, NULL, 0);
    } else {
        for (size_t i = 0; i < k; i++)
            ids[i] = t[i].user_id;
        cp_status_ok(&ok);
        op->cb(op->arg, &ok, ids, k);
    }
    free(ids);
    free(t);
    typing_list_free(op);
}

static void typing_list_members(void *arg, const struct cp_status *st,
                                const struct cp_member *members, size_t n)
{
    struct typing_list_op *op = arg;
    struct cp_status e;
    if (st->code != SB_CODE_NONE) {
        op->cb(op->arg, st, NULL, 0);
        typing_list_free(op);
        return;
    }
    if (!has_docs(op->c)) {
        no_docs(&e);
        op->cb(op->arg, &e, NULL, 0);
        typing_list_free(op);
        return;
    }
    op->members = n ? calloc(n, sizeof(*op->members)) : NULL;
    bool ok = n == 0 || op->members != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        op->members[i] = strdup(members[i].user_id);
        ok = op->members[i] != NULL;
        op->n_members = i + 1;
    }
    if (!ok) {
        cp_status_set(&e, SB_CODE_INTERNAL, "out of memory");
        op->cb(op->arg, &e, NULL, 0);
        typing_list_free(op);
        return;
    }
    if (op->n_members > 1) /* the store answers by user id; sort anyway for bsearch */
        qsort(op->members, op->n_members, sizeof(*op->members), cmp_str);
    op->c->store->ops->doc_list(op->c->store, op->prefix, typing_list_docs, op);
}

void cp_users_typing_list(struct cp_ctx *c, const char *room_id, cp_users_ids_fn *cb, void *arg)
{
    struct typing_list_op *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        struct cp_status st;
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        cb(arg, &st, NULL, 0);
        return;
    }
    op->c = c;
    op->cb = cb;
    op->arg = arg;
    snprintf(op->prefix, sizeof(op->prefix), "typing/%s/", room_id);
    c->store->ops->members_list(c->store, room_id, typing_list_members, op);
}

/* ---------------------------------------------------------------- timers */

/* The presence timeout: online users without activity for presence_timeout_ms become away.
 * Run by the announcing replica; each candidate's record is read (activity seen by other
 * replicas is there) before anything changes. */
static void idle_scan(struct cp_ctx *c)
{
    int64_t timeout = c->set.presence_timeout_ms;
    if (timeout <= 0 || !cp_ctx_is_leader(c) || !has_docs(c))
        return;
    int64_t mono = sb_time_mono_ms(), recheck = activity_throttle(c);
    if (mono < c->presence.idle_scan_at)
        return;
    c->presence.idle_scan_at = mono + recheck;
    int64_t now = sb_time_now_ms();
    size_t n = 0, cap = c->presence.n_online;
    char **ids = cap ? malloc(cap * sizeof(*ids)) : NULL;
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&c->presence.users, &it);
    while (ids != NULL && n < cap && (e = sb_map_iter_next(&c->presence.users, &it)) != NULL) {
        struct cp_user *u = e->value;
        if (!u->online || u->n_conns == 0 || now - u->last_activity < timeout)
            continue;
        /* A status that does not time out (busy, away, offline) is re-read once a timeout. */
        bool plain = u->status == NULL || strcmp(u->status, "online") == 0;
        if (now - u->idle_checked < (plain ? recheck : timeout))
            continue;
        u->idle_checked = now;
        ids[n++] = u->id;
    }
    /* Memory store: the reads complete inline and may announce; ids stay valid (users are
     * never freed before cp_presence_fini). */
    for (size_t i = 0; i < n; i++)
        rmw_background(c, RMW_IDLE, ids[i]);
    free(ids);
}

void cp_users_tick(struct cp_ctx *c, int64_t mono_ms)
{
    cp_typing_expire(&c->typing, mono_ms, typing_expired, c);
    struct cp_user *u;
    while ((u = cp_presence_grace_due(&c->presence, mono_ms)) != NULL)
        went_offline(c, u);
    idle_scan(c);
}

int64_t cp_users_next_deadline(const struct cp_ctx *c)
{
    int64_t a = cp_typing_next_deadline(&c->typing);
    int64_t b = cp_presence_next_deadline(&c->presence);
    return a == 0 || (b != 0 && b < a) ? b : a;
}
