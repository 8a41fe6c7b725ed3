/* Updates of the etcd Store, each a read-modify-write on the operation driver (cp_eop.c):
 * room_update, member_set_role and message_update read the record straight from etcd, apply the
 * change and write it back with a txn comparing the record's mod_revision (and a write marker); a
 * concurrent change fails the compare and the whole step (read, edit, write) runs again, at
 * most RMW_RETRIES times, then answers UNAVAILABLE "busy". Writers are answered after the
 * barrier (the cache, and this replica's observer, have seen the write). history_trim reads
 * the room's history in pages to find the cut and deletes below it in one range delete. None
 * of them writes sb/seq or the sequencer key: the room's sequencer is never disturbed. */
#include "cp_estore_int.h"

#include <stdlib.h>
#include <string.h>

#include "cp_ecodec.h"
#include "cp_keys.h"

#define RMW_RETRIES 8

/* Room, role and message edits compare the record's mod_revision (with a marker) and answer
 * after the barrier; a trim compares the room's create_revision and has no barrier (its
 * answer is the count, which the cache does not show). */
static const struct cp_eop_policy edits = {CP_ECALL_MARKER | CP_EOP_BARRIER, RMW_RETRIES,
                                           SB_CODE_UNAVAILABLE};
static const struct cp_eop_policy trims = {0, RMW_RETRIES, SB_CODE_UNAVAILABLE};

/* False, and the operation answered ROOM_NOT_FOUND, for an id no room can have. */
static bool room_valid(struct cp_estore *s, struct cp_eop *o, const char *room_id)
{
    char k[CP_KEYS_MAX];
    struct cp_status st;
    if (cp_keys_room(room_id, k, sizeof(k)) == SB_OK)
        return true;
    cp_estore_no_room(&st, room_id);
    cp_eop_end(s, o, &st);
    return false;
}

/* The write of a read record: compare its mod_revision `mod`, put `val` (taken; NULL: out of
 * memory). */
static void write_back(struct cp_estore *s, struct cp_eop *o, const char *key, int64_t mod,
                       char *val)
{
    struct cp_etxn t;
    cp_etxn_init(&t);
    if (val == NULL)
        t.failed = true;
    cp_etxn_cmp(&t, key, CP_ETCD_CMP_MOD, CP_ETCD_CMP_EQUAL, mod);
    if (val != NULL)
        cp_etxn_put(&t, key, val, strlen(val), 0);
    free(val);
    cp_eop_write(s, o, &t);
}

/* Keeps a copy of n bytes (+ `extra_nul` zero bytes counted in *dst_n) in *dst. */
static bool keep_bytes(char **dst, size_t *dst_n, const char *p, size_t n, bool extra_nul)
{
    char *b = malloc(n + 2);
    if (b == NULL)
        return false;
    memcpy(b, p, n);
    b[n] = '\0';
    b[n + 1] = '\0';
    free(*dst);
    *dst = b;
    *dst_n = n + (extra_nul ? 1 : 0);
    return true;
}

/* ---- room_update */

struct ru_op {
    struct cp_eop o; /* first */
    const char *room_id;
    cp_room_edit_fn *edit;
    void *edit_arg;
    cp_store_room_fn *cb;
    struct cp_room *room; /* the edited copy, once written */
};

static void ru_end(struct cp_estore *s, struct cp_eop *o, const struct cp_status *st, bool synced)
{
    struct ru_op *op = (struct ru_op *)o;
    /* The cache (member_count, last_seq) once it shows the write; else what was written. */
    struct cp_ecache_room *r = synced ? cp_ecache_room_live(s, op->room_id) : NULL;
    const struct cp_room *room = r != NULL ? &r->room : op->room;
    op->cb(o->arg, st, st->code == SB_CODE_NONE ? room : NULL);
    if (op->room != NULL)
        cp_room_free(op->room, true);
}

/* Applies the caller's edit to the record read (copy, taken) into op->room; false with *st
 * when refused. */
static bool ru_edit(struct cp_estore *s, struct ru_op *op, struct cp_room *copy,
                    struct cp_status *st)
{
    struct cp_ecache_room *cached = cp_ecache_room_live(s, op->room_id);
    if (cached != NULL) {
        copy->member_count = cached->room.member_count;
        copy->last_seq = cached->room.last_seq;
    }
    int64_t created_at = copy->created_at;
    cp_status_ok(st);
    op->edit(op->edit_arg, copy, st);
    /* What the store owns: the id and the times. */
    char *id = st->code == SB_CODE_NONE ? strdup(op->room_id) : NULL;
    if (id == NULL) {
        if (st->code == SB_CODE_NONE)
            cp_estore_oom(st);
        cp_room_free(copy, true);
        return false;
    }
    free(copy->id);
    copy->id = id;
    copy->created_at = created_at;
    copy->updated_at = sb_time_now_ms();
    if (cached != NULL) {
        copy->member_count = cached->room.member_count;
        copy->last_seq = cached->room.last_seq;
    }
    op->room = copy;
    return true;
}

static void ru_read_answer(struct cp_estore *s, void *ud, const struct cp_etcd_result *r,
                           const struct cp_status *st)
{
    struct ru_op *op = ud;
    struct cp_status stt = *st;
    const struct cp_etcd_kv *kv = cp_etxn_first_kv(r);
    struct cp_room *copy = kv ? cp_ecodec_room_parse(op->room_id, kv->value, kv->value_len) : NULL;
    if (r != NULL && kv == NULL)
        cp_estore_no_room(&stt, op->room_id);
    else if (kv != NULL && copy == NULL)
        cp_status_set(&stt, SB_CODE_INTERNAL, "room %s: unreadable record", op->room_id);
    if (copy == NULL || !ru_edit(s, op, copy, &stt)) {
        cp_eop_end(s, &op->o, &stt);
        return;
    }
    char k[CP_KEYS_MAX];
    cp_keys_room(op->room_id, k, sizeof(k));
    write_back(s, &op->o, k, kv->mod_revision, cp_ecodec_room_json(op->room));
}

static void ru_read(struct cp_estore *s, struct cp_eop *o)
{
    struct ru_op *op = (struct ru_op *)o;
    if (!room_valid(s, o, op->room_id))
        return;
    if (op->room != NULL)
        cp_room_free(op->room, true);
    op->room = NULL;
    char k[CP_KEYS_MAX];
    cp_keys_room(op->room_id, k, sizeof(k));
    struct cp_etcd_range_req q = {.key = cp_etcd_json_str(k)};
    cp_ecall_range(s, &q, "room read", ru_read_answer, op);
}

/* ---- member_set_role */

struct role_op {
    struct cp_eop o; /* first */
    const char *room_id;
    const char *user_id;
    enum cp_role role;
    cp_store_members_fn *cb;
    int64_t joined_at;
};

/* Answers that one member: the cache's when it shows the role, else what was written. */
static void role_end(struct cp_estore *s, struct cp_eop *o, const struct cp_status *st, bool synced)
{
    struct role_op *op = (struct role_op *)o;
    struct cp_ecache_room *r = cp_ecache_room_live(s, op->room_id);
    const struct cp_member *m = r != NULL ? cp_ecache_member_get(r, op->user_id) : NULL;
    struct cp_member mine = {(char *)op->user_id, op->role, op->joined_at};
    if (st->code != SB_CODE_NONE)
        op->cb(o->arg, st, NULL, 0);
    else
        op->cb(o->arg, st, m != NULL && m->role == op->role ? m : &mine, 1);
}

static void role_read_answer(struct cp_estore *s, void *ud, const struct cp_etxn_answer *a,
                             const struct cp_status *st)
{
    struct role_op *op = ud;
    struct cp_status stt = *st;
    const struct cp_etcd_kv *rkv = cp_etxn_first_kv(cp_etxn_answer_op(a, 0));
    const struct cp_etcd_kv *mkv = cp_etxn_first_kv(cp_etxn_answer_op(a, 1));
    if (a->outcome != CP_ETXN_UNKNOWN && rkv == NULL)
        cp_estore_no_room(&stt, op->room_id);
    else if (a->outcome != CP_ETXN_UNKNOWN && mkv == NULL)
        cp_estore_not_member(&stt, op->user_id, op->room_id);
    enum cp_role cur = op->role;
    if (stt.code == SB_CODE_NONE)
        cp_ecodec_member_parse(mkv->value, mkv->value_len, &cur, &op->joined_at);
    if (stt.code != SB_CODE_NONE || cur == op->role) {
        cp_eop_end(s, &op->o, &stt); /* failed, or nothing to write */
        return;
    }
    char k[CP_KEYS_MAX];
    cp_keys_member(op->room_id, op->user_id, k, sizeof(k));
    write_back(s, &op->o, k, mkv->mod_revision, cp_ecodec_member_json(op->role, op->joined_at));
}

/* The room key and the member key in one read-only txn, so "room not found" and "not a
 * member" come from one revision. */
static void role_read(struct cp_estore *s, struct cp_eop *o)
{
    struct role_op *op = (struct role_op *)o;
    char rk[CP_KEYS_MAX], mk[CP_KEYS_MAX];
    struct cp_status st;
    if (!room_valid(s, o, op->room_id))
        return;
    cp_keys_room(op->room_id, rk, sizeof(rk));
    if (cp_keys_member(op->room_id, op->user_id, mk, sizeof(mk)) != SB_OK) {
        cp_estore_not_member(&st, op->user_id, op->room_id);
        cp_eop_end(s, o, &st);
        return;
    }
    o->id = op->user_id;
    struct cp_etxn t;
    cp_etxn_init(&t);
    cp_etxn_get(&t, false, rk, false);
    cp_etxn_get(&t, false, mk, false);
    cp_ecall_txn(s, &t, 0, "member read", role_read_answer, op);
}

/* ---- message_update */

struct mu_op {
    struct cp_eop o; /* first */
    const char *room_id;
    const char *message_id;
    cp_message_edit_fn *edit;
    void *edit_arg;
    cp_store_message_fn *cb;
    char *below; /* next page: keys below this one */
    size_t below_n;
    struct cp_message *msg; /* the edited copy, once written */
};

static void mu_end(struct cp_estore *s, struct cp_eop *o, const struct cp_status *st, bool synced)
{
    struct mu_op *op = (struct mu_op *)o;
    op->cb(o->arg, st, st->code == SB_CODE_NONE ? op->msg : NULL);
    cp_message_free(op->msg);
    free(op->below);
}

/* True when the stored JSON of a message may be the one with id `id` (a cheap filter before
 * parsing: ids need no JSON escaping unless they hold '"', '\\' or control bytes). */
static bool may_hold_id(const struct cp_etcd_kv *kv, const char *id)
{
    for (const char *p = id; *p != '\0'; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            return true;
    size_t n = strlen(id);
    for (size_t i = 0; i + n <= kv->value_len; i++)
        if (memcmp(kv->value + i, id, n) == 0)
            return true;
    return false;
}

/* The stored message with op's id in page h (new) and its kv in *at; NULL when none. */
static struct cp_message *mu_find(const struct mu_op *op, const struct cp_etcd_result *h,
                                  const struct cp_etcd_kv **at)
{
    for (size_t i = 0; h != NULL && i < h->n_kvs; i++) {
        const struct cp_etcd_kv *kv = &h->kvs[i];
        if (!may_hold_id(kv, op->message_id))
            continue;
        bool transient = false;
        struct cp_message *m = cp_ecodec_message_parse(kv->value, kv->value_len, &transient);
        if (m != NULL && !transient && strcmp(m->id, op->message_id) == 0) {
            *at = kv;
            return m;
        }
        cp_message_free(m);
    }
    return NULL;
}

static void mu_read_answer(struct cp_estore *s, void *ud, const struct cp_etxn_answer *a,
                           const struct cp_status *st);

/* The page below op->below (NULL: the newest). */
static void mu_page(struct cp_estore *s, struct mu_op *op)
{
    cp_ehist_page(s, op->room_id, NULL, 0, op->below, op->below_n, mu_read_answer, op);
}

/* Searches a page of the history, newest first; the next one below it when there is more. */
static void mu_read_answer(struct cp_estore *s, void *ud, const struct cp_etxn_answer *a,
                           const struct cp_status *st)
{
    struct mu_op *op = ud;
    struct cp_status stt = *st;
    if (a->outcome != CP_ETXN_UNKNOWN && cp_etxn_first_kv(cp_etxn_answer_op(a, 0)) == NULL)
        cp_estore_no_room(&stt, op->room_id);
    if (stt.code != SB_CODE_NONE) {
        cp_eop_end(s, &op->o, &stt);
        return;
    }
    const struct cp_etcd_result *h = cp_etxn_answer_op(a, 1);
    const struct cp_etcd_kv *kv = NULL;
    struct cp_message *cur = mu_find(op, h, &kv);
    if (cur != NULL) {
        op->msg = cp_message_edited(cur, op->edit, op->edit_arg, &stt);
        cp_message_free(cur);
        if (op->msg == NULL)
            cp_eop_end(s, &op->o, &stt);
        else
            write_back(s, &op->o, kv->key, kv->mod_revision,
                       cp_ecodec_message_json(op->msg, false));
    } else if (h != NULL && h->more && h->n_kvs > 0) {
        const struct cp_etcd_kv *low = &h->kvs[h->n_kvs - 1];
        if (keep_bytes(&op->below, &op->below_n, low->key, low->key_len, false))
            mu_page(s, op);
        else
            cp_eop_end(s, &op->o, &cp_estore_nomem);
    } else {
        cp_status_set(&stt, SB_CODE_MESSAGE_NOT_FOUND,
                      "message %s is not in the history of room %s", op->message_id, op->room_id);
        cp_eop_end(s, &op->o, &stt);
    }
}

/* From the newest page again. */
static void mu_read(struct cp_estore *s, struct cp_eop *o)
{
    struct mu_op *op = (struct mu_op *)o;
    struct cp_status st;
    if (!room_valid(s, o, op->room_id))
        return;
    if (op->message_id == NULL || op->message_id[0] == '\0') {
        cp_status_set(&st, SB_CODE_MESSAGE_NOT_FOUND, "message \"\" does not exist");
        cp_eop_end(s, o, &st);
        return;
    }
    o->id = op->message_id;
    cp_message_free(op->msg);
    op->msg = NULL;
    free(op->below);
    op->below = NULL;
    op->below_n = 0;
    mu_page(s, op);
}

/* ---- history_trim */

struct trim_op {
    struct cp_eop o; /* first */
    const char *room_id;
    int64_t before_time;
    cp_store_count_fn *cb;
    int64_t room_rev; /* create_revision of the room at the first page */
    char *from;       /* next page starts here (a full key) */
    size_t from_n;
    char *cut; /* delete below this key (exclusive) */
    size_t cut_n;
    int64_t count;
};

static void trim_end(struct cp_estore *s, struct cp_eop *o, const struct cp_status *st, bool synced)
{
    struct trim_op *op = (struct trim_op *)o;
    op->cb(o->arg, st, st->code == SB_CODE_NONE ? op->count : 0);
    free(op->from);
    free(op->cut);
}

static void trim_read_answer(struct cp_estore *s, void *ud, const struct cp_etxn_answer *a,
                             const struct cp_status *st);

static void trim_page(struct cp_estore *s, struct trim_op *op)
{
    cp_ehist_page(s, op->room_id, op->from, op->from_n, NULL, 0, trim_read_answer, op);
}

/* Deletes [history/<room>/0, cut) under the room's create_revision (no marker: deleting again
 * is harmless, and the count is the one read). */
static void trim_write(struct cp_estore *s, struct trim_op *op)
{
    char rk[CP_KEYS_MAX], from[CP_KEYS_MAX];
    cp_keys_room(op->room_id, rk, sizeof(rk));
    cp_keys_history(op->room_id, 0, from, sizeof(from));
    struct cp_etxn t;
    cp_etxn_init(&t);
    cp_etxn_cmp(&t, rk, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, op->room_rev);
    cp_etxn_del_range(&t, from, strlen(from), op->cut, op->cut_n);
    cp_eop_write(s, &op->o, &t);
}

/* Counts a page oldest first up to the first message at or after before_time (the cut; the
 * memory store's rule: it stops at the first recent message). *found_cut when reached; false
 * on ENOMEM. */
static bool trim_scan(struct trim_op *op, const struct cp_etcd_result *h, bool *found_cut)
{
    *found_cut = false;
    for (size_t i = 0; h != NULL && i < h->n_kvs; i++) {
        const struct cp_etcd_kv *kv = &h->kvs[i];
        int64_t ts;
        bool transient;
        cp_ecodec_message_peek(kv->value, kv->value_len, &ts, &transient);
        if (ts >= op->before_time) {
            *found_cut = true;
            return keep_bytes(&op->cut, &op->cut_n, kv->key, kv->key_len, false);
        }
        op->count += transient ? 0 : 1;
        /* Everything up to this key goes: the cut is just after it. */
        if (!keep_bytes(&op->cut, &op->cut_n, kv->key, kv->key_len, true))
            return false;
    }
    return true;
}

static void trim_read_answer(struct cp_estore *s, void *ud, const struct cp_etxn_answer *a,
                             const struct cp_status *st)
{
    struct trim_op *op = ud;
    struct cp_status stt = *st;
    const struct cp_etcd_kv *rkv = cp_etxn_first_kv(cp_etxn_answer_op(a, 0));
    if (a->outcome != CP_ETXN_UNKNOWN && rkv == NULL)
        cp_estore_no_room(&stt, op->room_id);
    if (stt.code != SB_CODE_NONE) {
        cp_eop_end(s, &op->o, &stt);
        return;
    }
    if (op->room_rev == 0) {
        op->room_rev = rkv->create_revision;
    } else if (op->room_rev != rkv->create_revision) {
        cp_eop_lost(s, &op->o, 0); /* deleted and re-created between two pages */
        return;
    }
    const struct cp_etcd_result *h = cp_etxn_answer_op(a, 1);
    bool found_cut;
    bool ok = trim_scan(op, h, &found_cut);
    bool more = h != NULL && h->more && h->n_kvs > 0;
    if (ok && !found_cut && more) {
        const struct cp_etcd_kv *last = &h->kvs[h->n_kvs - 1];
        ok = keep_bytes(&op->from, &op->from_n, last->key, last->key_len, true);
    }
    if (!ok)
        cp_eop_end(s, &op->o, &cp_estore_nomem);
    else if (!found_cut && more)
        trim_page(s, op);
    else if (op->count == 0)
        cp_eop_end(s, &op->o, &stt); /* nothing to delete */
    else
        trim_write(s, op);
}

/* From the oldest key again (the room was deleted or re-created meanwhile). */
static void trim_read(struct cp_estore *s, struct cp_eop *o)
{
    struct trim_op *op = (struct trim_op *)o;
    if (!room_valid(s, o, op->room_id))
        return;
    free(op->cut);
    op->cut = NULL;
    op->room_rev = 0;
    op->count = 0;
    char k[CP_KEYS_MAX];
    cp_keys_history(op->room_id, 0, k, sizeof(k));
    if (keep_bytes(&op->from, &op->from_n, k, strlen(k), false))
        trim_page(s, op);
    else
        cp_eop_end(s, o, &cp_estore_nomem);
}

/* ---- the operations */

void cp_eupdate_room(struct cp_store *st, const char *room_id, cp_room_edit_fn *edit,
                     void *edit_arg, cp_store_room_fn *cb, void *arg)
{
    static const struct cp_eop_class c = {&edits, "room update", "room %s" CP_EOP_BUSY, ru_read,
                                          ru_end};
    struct ru_op op = {
        .o.arg = arg, .cb = cb, .edit = edit, .edit_arg = edit_arg, .room_id = room_id};
    cp_eop_begin(cp_estore_of(st), &op.o, sizeof(op), &c, &op.room_id, NULL);
}

void cp_eupdate_member_role(struct cp_store *st, const char *room_id, const char *user_id,
                            enum cp_role role, cp_store_members_fn *cb, void *arg)
{
    static const struct cp_eop_class c = {&edits, "member role", "membership of %s" CP_EOP_BUSY,
                                          role_read, role_end};
    struct role_op op = {
        .o.arg = arg, .cb = cb, .room_id = room_id, .user_id = user_id, .role = role};
    cp_eop_begin(cp_estore_of(st), &op.o, sizeof(op), &c, &op.room_id, &op.user_id);
}

void cp_eupdate_message(struct cp_store *st, const char *room_id, const char *message_id,
                        cp_message_edit_fn *edit, void *edit_arg, cp_store_message_fn *cb,
                        void *arg)
{
    static const struct cp_eop_class c = {&edits, "message update", "message %s" CP_EOP_BUSY,
                                          mu_read, mu_end};
    struct mu_op op = {.o.arg = arg,
                       .cb = cb,
                       .edit = edit,
                       .edit_arg = edit_arg,
                       .room_id = room_id,
                       .message_id = message_id};
    cp_eop_begin(cp_estore_of(st), &op.o, sizeof(op), &c, &op.room_id, &op.message_id);
}

void cp_eupdate_history_trim(struct cp_store *st, const char *room_id, int64_t before_time,
                             cp_store_count_fn *cb, void *arg)
{
    static const struct cp_eop_class c = {&trims, "history trim", "room %s" CP_EOP_BUSY, trim_read,
                                          trim_end};
    struct trim_op op = {.o.arg = arg, .cb = cb, .room_id = room_id, .before_time = before_time};
    cp_eop_begin(cp_estore_of(st), &op.o, sizeof(op), &c, &op.room_id, NULL);
}
