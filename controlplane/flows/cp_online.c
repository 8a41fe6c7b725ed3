/* Presence flows: statuses, the presence timeout, the grace period, announcements to users who
 * share a room. Every change of the presence record is a read-modify-write of presence/<user>
 * guarded by its version (a concurrent writer on another replica makes us re-read and redo the
 * edit). Announcements go through cp_notify. */
#include "cp_online.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cp_json.h"
#include "cp_keys.h"
#include "cp_notify.h"
#include "cp_typing.h"
#include "sb_ident.h"
#include "sb_log.h"
#include "sb_time.h"

#define RMW_TRIES       5
#define KEY_MAX         CP_KEYS_DOC_KEY_MAX
#define STALE_MARGIN_MS 2000 /* clock skew allowed between data planes and control planes */

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

/* Sends {"type":"presence",...} to every user who shares a room with `user_id` (never to the
 * user, never to anyone else), and tells the hooks (WatchEvents). The single place presence
 * frames leave from. */
static void announce_view(struct cp_ctx *c, const struct cp_presence_view *v)
{
    const struct cp_user *u = cp_presence_user(&c->presence, v->user_id);
    if (c->hooks.presence != NULL)
        c->hooks.presence(c->hooks.ud, v, u != NULL ? (int)u->n_conns : 0);
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_presence(&b, v);
    if (b.failed)
        SB_LOG_ERROR("cp", "out of memory announcing presence", "user=%s", v->user_id);
    else
        cp_notify_peers(c, v->user_id, b.data, b.len);
    cp_buf_fini(&b);
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
    cp_online_state_fn *state_cb;
    cp_ctx_done_fn *done_cb;
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
    cp_keys_doc_presence(op->key, user_id);
    return op;
}

/* The state answered to GetPresence / SetPresence. */
static void state_of(const struct rmw *op, struct cp_online_state *ps)
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
        struct cp_online_state ps;
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
    if (!cp_store_has_docs(op->c->store) && (op->kind == RMW_GET || op->kind == RMW_ANNOUNCE)) {
        struct cp_status ok;
        cp_status_ok(&ok);
        rmw_read(op, &ok, NULL); /* no record anywhere: connection state only */
        return;
    }
    if (!cp_store_has_docs(op->c->store)) {
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

void cp_online_announce(struct cp_ctx *c, struct cp_user *u)
{
    if (u != NULL)
        rmw_background(c, RMW_ANNOUNCE, u->id);
}

/* ---------------------------------------------------------------- presence */

void cp_online_set(struct cp_ctx *c, const char *user_id, const struct cp_online_set *set,
                   cp_online_state_fn *cb, void *arg)
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

void cp_online_get(struct cp_ctx *c, const char *user_id, cp_online_state_fn *cb, void *arg)
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

void cp_online_activity(struct cp_ctx *c, const char *user_id, cp_ctx_done_fn *cb, void *arg)
{
    struct cp_status st;
    cp_status_ok(&st);
    int64_t now = sb_time_now_ms();
    struct cp_user *u = cp_presence_user(&c->presence, user_id);
    if (u != NULL && u->last_activity < now)
        u->last_activity = now;
    if (!cp_store_has_docs(c->store)) {
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
    cp_ctx_ids_fn *cb;
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
        cp_keys_doc_presence(key, op->ids[i]);
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
    if (op->n == 0 || !cp_store_has_docs(op->c->store)) {
        struct cp_status st;
        cp_status_ok(&st);
        op->cb(op->arg, &st, (const char *const *)op->ids, op->n);
        online_op_free(op);
        return;
    }
    char all[CP_KEYS_DOC_KEY_MAX];
    cp_keys_doc_presence(all, NULL);
    op->c->store->ops->doc_list(op->c->store, all, online_docs, op);
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

void cp_online_list(struct cp_ctx *c, const char *room_id, cp_ctx_ids_fn *cb, void *arg)
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

/* ---------------------------------------------------------------- going offline */

void cp_online_went_offline(struct cp_ctx *c, struct cp_user *u)
{
    cp_presence_set_offline(&c->presence, u, sb_time_now_ms());
    cp_typers_stop_matching(&c->typing, NULL, u->id, cp_typing_stopped, c);
    /* etcd mode: every replica sees the last connection go; the presence leader speaks. */
    if (cp_ctx_is_leader(c)) {
        announce_offline(c, u);
        rmw_background(c, RMW_RESET, u->id);
    }
}

/* ---------------------------------------------------------------- timers */

/* The presence timeout: online users without activity for presence_timeout_ms become away.
 * Run by the announcing replica; each candidate's record is read (activity seen by other
 * replicas is there) before anything changes. */
static void idle_scan(struct cp_ctx *c)
{
    int64_t timeout = c->set.presence_timeout_ms;
    if (timeout <= 0 || !cp_ctx_is_leader(c) || !cp_store_has_docs(c->store))
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

void cp_online_tick(struct cp_ctx *c, int64_t mono_ms)
{
    struct cp_user *u;
    while ((u = cp_presence_grace_due(&c->presence, mono_ms)) != NULL)
        cp_online_went_offline(c, u);
    idle_scan(c);
}

int64_t cp_online_next_deadline(const struct cp_ctx *c)
{
    return cp_presence_next_deadline(&c->presence);
}
