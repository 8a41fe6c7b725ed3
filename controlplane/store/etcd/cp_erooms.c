/* Rooms and membership of the etcd Store: reads from the cache; writes as txns with compares
 * (room create-if-absent, member create-if-absent under the room's create_revision, member
 * delete if present, room delete under its create_revision with everything of the room),
 * answered once the cache shows them. A join or leave that loses its compare looks again once
 * the cache caught up with what beat it. */
#include "cp_estore_int.h"

#include <stdlib.h>
#include <string.h>

#include "cp_ecodec.h"
#include "cp_keys.h"

#define OP_RETRIES 3

/* Create and delete are decided by their one compare; a join or leave that loses looks again
 * once the cache shows what beat it (OP_RETRIES times). All answer after the barrier. */
static const struct cp_eop_policy creates = {CP_EOP_BARRIER, 1, SB_CODE_ROOM_ALREADY_EXISTS};
static const struct cp_eop_policy deletes = {CP_EOP_BARRIER, 1, SB_CODE_ROOM_NOT_FOUND};
static const struct cp_eop_policy changes = {CP_EOP_BARRIER | CP_EOP_SETTLE, OP_RETRIES,
                                             SB_CODE_UNAVAILABLE};

void cp_erooms_get(struct cp_store *st, const char *room_id, cp_store_room_fn *cb, void *arg)
{
    struct cp_status stt;
    struct cp_ecache_room *r = cp_ecache_room_found(cp_estore_of(st), room_id, NULL, &stt);
    cb(arg, &stt, r != NULL ? &r->room : NULL);
}

/* The ops that make (room, user) a member, with its user index key. */
static void member_put(struct cp_etxn *t, const char *room, const char *user, enum cp_role role,
                       int64_t joined_at)
{
    char k[CP_KEYS_MAX];
    char *v = cp_ecodec_member_json(role, joined_at);
    if (v == NULL || cp_keys_member(room, user, k, sizeof(k)) != SB_OK) {
        free(v);
        t->failed = true;
        return;
    }
    cp_etxn_put(t, k, v, strlen(v), 0);
    free(v);
    if (cp_keys_user_room(user, room, k, sizeof(k)) != SB_OK) {
        t->failed = true;
        return;
    }
    cp_etxn_put(t, k, "", 0, 0);
}

static void member_del(struct cp_etxn *t, const char *room, const char *user)
{
    char k[CP_KEYS_MAX];
    if (cp_keys_member(room, user, k, sizeof(k)) != SB_OK) {
        t->failed = true;
        return;
    }
    cp_etxn_del(t, k, false);
    if (cp_keys_user_room(user, room, k, sizeof(k)) != SB_OK) {
        t->failed = true;
        return;
    }
    cp_etxn_del(t, k, false);
}

/* Creates room `r` (its record `val`, taken; NULL: out of memory) if its key `rk` is absent,
 * with its owner as a member. */
static void room_put_new(struct cp_etxn *t, const char *rk, const struct cp_room *r, char *val)
{
    if (val == NULL)
        t->failed = true;
    cp_etxn_cmp(t, rk, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, 0);
    if (val != NULL)
        cp_etxn_put(t, rk, val, strlen(val), 0);
    free(val);
    if (r->owner_id != NULL && r->owner_id[0] != '\0')
        member_put(t, r->id, r->owner_id, CP_ROLE_OWNER, r->created_at);
}

/* ---- create */

struct create_op {
    struct cp_eop o; /* first */
    const char *room_id;
    const struct cp_room *room; /* the caller's: first read only */
    cp_store_room_fn *cb;
};

static void create_end(struct cp_estore *s, struct cp_eop *o, const struct cp_status *st,
                       bool synced)
{
    struct create_op *op = (struct create_op *)o;
    struct cp_status stt = *st;
    struct cp_ecache_room *r =
        stt.code == SB_CODE_NONE ? cp_ecache_room_live(s, op->room_id) : NULL;
    if (stt.code == SB_CODE_NONE && r == NULL)
        cp_status_set(&stt, SB_CODE_UNAVAILABLE, "room %s was created but is not visible yet",
                      op->room_id);
    op->cb(o->arg, &stt, r != NULL ? &r->room : NULL);
}

static void create_read(struct cp_estore *s, struct cp_eop *o)
{
    struct create_op *op = (struct create_op *)o;
    struct cp_status st;
    char key[CP_KEYS_MAX];
    if (cp_keys_room(op->room_id, key, sizeof(key)) != SB_OK) {
        cp_status_set(&st, SB_CODE_INVALID_MESSAGE, "room id is not valid");
        cp_eop_end(s, o, &st);
        return;
    }
    char *val = cp_ecodec_room_json(op->room);
    if (val == NULL) {
        cp_eop_end(s, o, &cp_estore_nomem);
        return;
    }
    struct cp_etxn t;
    cp_etxn_init(&t);
    room_put_new(&t, key, op->room, val);
    cp_eop_write(s, o, &t);
}

void cp_erooms_create(struct cp_store *st, const struct cp_room *room, cp_store_room_fn *cb,
                      void *arg)
{
    static const struct cp_eop_class c = {&creates, "room create", "room %s already exists",
                                          create_read, create_end};
    struct create_op op = {.o.arg = arg, .cb = cb, .room_id = room->id, .room = room};
    cp_eop_begin(cp_estore_of(st), &op.o, sizeof(op), &c, &op.room_id, NULL);
}

/* ---- list */

static int cmp_room_ptr(const void *a, const void *b)
{
    const struct cp_room *x = *(const struct cp_room *const *)a;
    const struct cp_room *y = *(const struct cp_room *const *)b;
    return strcmp(x->id, y->id);
}

static bool room_matches(const struct cp_ecache_room *r, const struct cp_room_query *q)
{
    if (!r->exists)
        return false;
    if (q->after_id != NULL && q->after_id[0] != '\0' && strcmp(r->room.id, q->after_id) <= 0)
        return false;
    if (q->name_prefix != NULL && q->name_prefix[0] != '\0' &&
        strncmp(r->room.name, q->name_prefix, strlen(q->name_prefix)) != 0)
        return false;
    return !r->room.archived || q->include_archived;
}

void cp_erooms_list(struct cp_store *st, const struct cp_room_query *q, cp_store_rooms_fn *cb,
                    void *arg)
{
    struct cp_estore *s = cp_estore_of(st);
    struct cp_status ok;
    size_t cap = s->rooms.count, n = 0;
    const struct cp_room **all = cap ? malloc(cap * sizeof(*all)) : NULL;
    if (cap > 0 && all == NULL) {
        cp_estore_oom(&ok);
        cb(arg, &ok, NULL, 0, false);
        return;
    }
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&s->rooms, &it);
    while ((e = sb_map_iter_next(&s->rooms, &it)) != NULL && n < cap) {
        struct cp_ecache_room *r = e->value;
        if (!room_matches(r, q))
            continue;
        cp_ecache_room_live(s, r->room.id);
        all[n++] = &r->room;
    }
    if (n > 1)
        qsort(all, n, sizeof(*all), cmp_room_ptr);
    size_t lim = q->limit > 0 ? (size_t)q->limit : n;
    bool more = n > lim;
    cp_status_ok(&ok);
    cb(arg, &ok, (const struct cp_room *const *)all, more ? lim : n, more);
    free(all);
}

/* ---- delete */

/* The former members are answered. */
struct delete_op {
    struct cp_eop o; /* first */
    const char *room_id;
    cp_store_members_fn *cb;
    struct cp_member *former;
    size_t n_former;
};

static void delete_end(struct cp_estore *s, struct cp_eop *o, const struct cp_status *st,
                       bool synced)
{
    struct delete_op *op = (struct delete_op *)o;
    bool ok = st->code == SB_CODE_NONE;
    op->cb(o->arg, st, ok ? op->former : NULL, ok ? op->n_former : 0);
    for (size_t i = 0; i < op->n_former; i++)
        free(op->former[i].user_id);
    free(op->former);
}

/* Every key of the room: its record (under its create_revision), members and their user index
 * keys, history, idempotency records, seq and sequencer key. The former members go to op. */
static void room_del_all(struct cp_etxn *t, const struct cp_ecache_room *r, struct delete_op *op)
{
    const char *room_id = r->room.id;
    char k[CP_KEYS_MAX];
    cp_keys_room(room_id, k, sizeof(k));
    cp_etxn_cmp(t, k, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, r->create_rev);
    cp_etxn_del(t, k, false);
    for (size_t i = 0; i < r->n_members; i++) {
        op->former[i] = r->members[i];
        op->former[i].user_id = strdup(r->members[i].user_id);
        op->n_former = i + 1;
        if (op->former[i].user_id == NULL)
            t->failed = true;
        else if (cp_keys_user_room(r->members[i].user_id, room_id, k, sizeof(k)) == SB_OK)
            cp_etxn_del(t, k, false);
    }
    cp_keys_members_of(room_id, k, sizeof(k));
    cp_etxn_del(t, k, true);
    cp_keys_history_of(room_id, k, sizeof(k));
    cp_etxn_del(t, k, true);
    cp_keys_idem_of(room_id, k, sizeof(k));
    cp_etxn_del(t, k, true);
    cp_keys_seq(room_id, k, sizeof(k));
    cp_etxn_del(t, k, false);
    cp_keys_sequencer(room_id, k, sizeof(k));
    cp_etxn_del(t, k, false);
}

static void delete_read(struct cp_estore *s, struct cp_eop *o)
{
    struct delete_op *op = (struct delete_op *)o;
    struct cp_status st;
    struct cp_ecache_room *r = cp_ecache_room_found(s, op->room_id, NULL, &st);
    if (r == NULL) {
        cp_eop_end(s, o, &st);
        return;
    }
    if (r->n_members > 0 && (op->former = calloc(r->n_members, sizeof(*op->former))) == NULL) {
        cp_eop_end(s, o, &cp_estore_nomem);
        return;
    }
    struct cp_etxn t;
    cp_etxn_init(&t);
    room_del_all(&t, r, op);
    cp_eop_write(s, o, &t);
}

void cp_erooms_delete(struct cp_store *st, const char *room_id, cp_store_members_fn *cb, void *arg)
{
    static const struct cp_eop_class c = {&deletes, "room delete", "room %s does not exist",
                                          delete_read, delete_end};
    struct delete_op op = {.o.arg = arg, .cb = cb, .room_id = room_id};
    cp_eop_begin(cp_estore_of(st), &op.o, sizeof(op), &c, &op.room_id, NULL);
}

/* ---- membership: join and leave */

/* A join (cb.join) or a leave (cb.leave). */
struct member_op {
    struct cp_eop o; /* first */
    const char *room_id;
    const char *user_id;
    enum cp_role role; /* a join's */
    int64_t now;
    bool deny_private, auto_create;
    union {
        cp_store_join_fn *join;
        cp_store_members_fn *leave;
    } cb;
    bool created, added; /* the write created the room, made the user a member */
};

/* Answers from the cache, which shows the membership once written. */
static void join_end(struct cp_estore *s, struct cp_eop *o, const struct cp_status *st, bool synced)
{
    struct member_op *op = (struct member_op *)o;
    struct cp_status stt = *st;
    struct cp_ecache_room *r = cp_ecache_room_live(s, op->room_id);
    const struct cp_member *m = r ? cp_ecache_member_get(r, op->user_id) : NULL;
    if (stt.code == SB_CODE_NONE && m == NULL)
        cp_status_set(&stt, SB_CODE_UNAVAILABLE, "membership of %s in %s is not visible yet",
                      op->user_id, op->room_id);
    struct cp_join_result res = {.room = r ? &r->room : NULL,
                                 .member = m,
                                 .added = op->added,
                                 .created_room = op->created && op->added,
                                 .members = r ? r->members : NULL,
                                 .n_members = r ? r->n_members : 0};
    op->cb.join(o->arg, &stt, stt.code == SB_CODE_NONE ? &res : NULL);
}

/* Why the user may not join room r (false: may). */
static bool join_refused(const struct member_op *op, const struct cp_ecache_room *r,
                         struct cp_status *st)
{
    if (op->deny_private && r->room.is_private)
        cp_status_set(st, SB_CODE_PERMISSION_DENIED, "room %s is private", op->room_id);
    else if (r->room.archived)
        cp_status_set(st, SB_CODE_ROOM_ARCHIVED, "room %s is archived", op->room_id);
    else if (r->room.max_members > 0 && r->n_members >= (size_t)r->room.max_members)
        cp_status_set(st, SB_CODE_ROOM_FULL, "room %s is full", op->room_id);
    else
        return false;
    return true;
}

/* The read of a join is the cache (caught up with whatever beat the last attempt). */
static void join_read(struct cp_estore *s, struct cp_eop *o)
{
    struct member_op *op = (struct member_op *)o;
    struct cp_status st;
    struct cp_ecache_room *r = cp_ecache_room_live(s, op->room_id);
    bool member = r != NULL && cp_ecache_member_get(r, op->user_id) != NULL;
    char rk[CP_KEYS_MAX], mk[CP_KEYS_MAX];
    op->created = op->added = false;
    cp_keys_room(op->room_id, rk, sizeof(rk));
    cp_status_ok(&st);
    if (cp_keys_member(op->room_id, op->user_id, mk, sizeof(mk)) != SB_OK)
        cp_status_set(&st, SB_CODE_INVALID_MESSAGE, "room or user id is not valid");
    else if (r == NULL && !op->auto_create)
        cp_estore_no_room(&st, op->room_id);
    else if (r != NULL && !member)
        join_refused(op, r, &st);
    if (st.code != SB_CODE_NONE || member) {
        cp_eop_end(s, o, &st); /* refused, or a member already */
        return;
    }
    struct cp_etxn t;
    cp_etxn_init(&t);
    if (r == NULL) {
        struct cp_room nr = {.id = (char *)op->room_id,
                             .name = (char *)op->room_id,
                             .description = "",
                             .owner_id = (char *)op->user_id,
                             .created_at = op->now,
                             .updated_at = op->now};
        room_put_new(&t, rk, &nr, cp_ecodec_room_json(&nr));
        op->created = true;
    } else {
        cp_etxn_cmp(&t, rk, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, r->create_rev);
        cp_etxn_cmp(&t, mk, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, 0);
        member_put(&t, op->room_id, op->user_id, op->role, op->now);
    }
    op->added = true;
    cp_eop_write(s, o, &t);
}

void cp_erooms_member_add(struct cp_store *st, const struct cp_join_req *req, cp_store_join_fn *cb,
                          void *arg)
{
    static const struct cp_eop_class c = {&changes, "join", "join of room %s kept conflicting",
                                          join_read, join_end};
    struct member_op op = {.o.arg = arg,
                           .cb.join = cb,
                           .room_id = req->room_id,
                           .user_id = req->user_id,
                           .role = req->role,
                           .now = req->now ? req->now : sb_time_now_ms(),
                           .deny_private = req->deny_private,
                           .auto_create = req->auto_create};
    cp_eop_begin(cp_estore_of(st), &op.o, sizeof(op), &c, &op.room_id, &op.user_id);
}

/* Answers the remaining members. */
static void leave_end(struct cp_estore *s, struct cp_eop *o, const struct cp_status *st,
                      bool synced)
{
    struct member_op *op = (struct member_op *)o;
    struct cp_ecache_room *r =
        st->code == SB_CODE_NONE ? cp_ecache_room_live(s, op->room_id) : NULL;
    op->cb.leave(o->arg, st, r ? r->members : NULL, r ? r->n_members : 0);
}

static void leave_read(struct cp_estore *s, struct cp_eop *o)
{
    struct member_op *op = (struct member_op *)o;
    struct cp_status st;
    if (cp_ecache_room_found(s, op->room_id, op->user_id, &st) == NULL) {
        cp_eop_end(s, o, &st);
        return;
    }
    char mk[CP_KEYS_MAX];
    cp_keys_member(op->room_id, op->user_id, mk, sizeof(mk));
    struct cp_etxn t;
    cp_etxn_init(&t);
    cp_etxn_cmp(&t, mk, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_GREATER, 0);
    member_del(&t, op->room_id, op->user_id);
    cp_eop_write(s, o, &t);
}

void cp_erooms_member_remove(struct cp_store *st, const char *room_id, const char *user_id,
                             cp_store_members_fn *cb, void *arg)
{
    static const struct cp_eop_class c = {&changes, "leave", "leave of room %s kept conflicting",
                                          leave_read, leave_end};
    struct member_op op = {.o.arg = arg, .cb.leave = cb, .room_id = room_id, .user_id = user_id};
    cp_eop_begin(cp_estore_of(st), &op.o, sizeof(op), &c, &op.room_id, &op.user_id);
}

/* ---- reads */

void cp_erooms_members_list(struct cp_store *st, const char *room_id, cp_store_members_fn *cb,
                            void *arg)
{
    struct cp_status stt;
    struct cp_ecache_room *r = cp_ecache_room_found(cp_estore_of(st), room_id, NULL, &stt);
    cb(arg, &stt, r != NULL ? r->members : NULL, r != NULL ? r->n_members : 0);
}

void cp_erooms_user_rooms(struct cp_store *st, const char *user_id, cp_store_ids_fn *cb, void *arg)
{
    struct cp_status ok;
    cp_status_ok(&ok);
    struct cp_ecache_ids *x = sb_map_get(&cp_estore_of(st)->user_rooms, user_id);
    cb(arg, &ok, x ? (const char *const *)x->ids : NULL, x ? x->n : 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void cp_erooms_user_peers(struct cp_store *st, const char *user_id, cp_store_ids_fn *cb, void *arg)
{
    struct cp_estore *s = cp_estore_of(st);
    struct cp_status ok;
    struct cp_ecache_ids *x = sb_map_get(&s->user_rooms, user_id);
    size_t cap = 0;
    for (size_t i = 0; x != NULL && i < x->n; i++) {
        struct cp_ecache_room *r = cp_ecache_room_live(s, x->ids[i]);
        if (r != NULL)
            cap += r->n_members;
    }
    const char **ids = cap ? malloc(cap * sizeof(*ids)) : NULL;
    if (cap > 0 && ids == NULL) {
        cp_estore_oom(&ok);
        cb(arg, &ok, NULL, 0);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; x != NULL && i < x->n; i++) {
        struct cp_ecache_room *r = cp_ecache_room_live(s, x->ids[i]);
        for (size_t j = 0; r != NULL && j < r->n_members; j++)
            if (strcmp(r->members[j].user_id, user_id) != 0)
                ids[n++] = r->members[j].user_id;
    }
    if (n > 1)
        qsort(ids, n, sizeof(*ids), cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || strcmp(ids[u - 1], ids[i]) != 0)
            ids[u++] = ids[i];
    cp_status_ok(&ok);
    cb(arg, &ok, (const char *const *)ids, u);
    free(ids);
}
