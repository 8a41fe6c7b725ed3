/* Typing flows: typing true/false in a room, its expiry, and GetTypingUsers. The typing state
 * that every replica must agree on is the Store document typing/<room>/<user> {started_at,
 * expires_at}; this replica keeps its own entries with their expiry (cp_typers) and ends the
 * ones it owns. Frames go to the room's other members (cp_notify). */
#include "cp_typing.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cp_json.h"
#include "cp_keys.h"
#include "cp_notify.h"
#include "sb_ident.h"
#include "sb_log.h"
#include "sb_time.h"

#define KEY_MAX      CP_KEYS_DOC_KEY_MAX
#define TYPING_SLACK 500 /* ms: an expiring typing document this close to its end is ours */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void no_docs(struct cp_status *st)
{
    cp_status_set(st, SB_CODE_UNAVAILABLE, "the store does not keep documents yet");
}

static void typing_key(char *out, size_t cap, const char *room_id, const char *user_id)
{
    char k[CP_KEYS_DOC_KEY_MAX];
    cp_keys_doc_typing(k, room_id, user_id);
    snprintf(out, cap, "%s", k);
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
    if (k == NULL || !cp_store_has_docs(c->store)) {
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

/* typing:false for (room, user), sent once its document is gone. The frame carries nothing
 * but the ids, so it is built when it leaves. */
struct end_op {
    struct cp_ctx *c;
    char room_id[SB_IDENT_MAX + 1];
    char user_id[SB_IDENT_MAX + 1];
};

static void end_op_finish(struct end_op *op)
{
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_typing(&b, op->room_id, op->user_id, false);
    if (b.failed)
        SB_LOG_ERROR("cp", "out of memory ending typing", "room=%s user=%s", op->room_id,
                     op->user_id);
    else
        cp_notify_room(op->c, op->room_id, op->user_id, b.data, b.len);
    cp_buf_fini(&b);
    free(op);
}

/* The document is gone (or could not be removed: the frame goes anyway, the document expires
 * by itself): typing:false to the room's other members. */
static void typing_end_deleted(void *arg, const struct cp_status *st, const int64_t *v, size_t n)
{
    struct end_op *op = arg;
    (void)v;
    (void)n;
    if (st->code != SB_CODE_NONE && st->code != SB_CODE_CONFLICT)
        SB_LOG_DEBUG("cp", "typing document not removed", "room=%s user=%s code=%s", op->room_id,
                     op->user_id, sb_code_name(st->code));
    end_op_finish(op);
}

static void typing_end_delete(struct end_op *op, const char *key, int64_t version)
{
    struct cp_doc_op w = {.key = key, .value = NULL, .expect = version > 0 ? version : -1};
    op->c->store->ops->doc_write(op->c->store, &w, 1, typing_end_deleted, op);
}

/* After a local expiry: if another replica refreshed the document since (the user types in a
 * tab served by another replica), that replica owns the end; else the document goes, then
 * typing:false. */
static void typing_expired_doc(void *arg, const struct cp_status *st, const struct cp_doc *doc)
{
    struct end_op *op = arg;
    if (st->code == SB_CODE_NONE && doc != NULL &&
        typing_expires_at(doc) > sb_time_now_ms() + TYPING_SLACK) {
        free(op);
        return;
    }
    if (st->code == SB_CODE_NONE && doc != NULL) {
        typing_end_delete(op, doc->key, doc->version);
        return;
    }
    end_op_finish(op);
}

/* The document removed (only_if_ours: unless another replica refreshed it), then typing:false
 * to the room's other members. */
static void typing_ended(struct cp_ctx *c, const char *room_id, const char *user_id,
                         bool only_if_ours)
{
    struct end_op *op = malloc(sizeof(*op));
    if (op != NULL) {
        op->c = c;
        snprintf(op->room_id, sizeof(op->room_id), "%s", room_id);
        snprintf(op->user_id, sizeof(op->user_id), "%s", user_id);
    }
    char key[KEY_MAX];
    typing_key(key, sizeof(key), room_id, user_id);
    if (op == NULL) {
        SB_LOG_ERROR("cp", "out of memory ending typing", "room=%s user=%s", room_id, user_id);
        typing_doc_delete(c, key, 0);
        return;
    }
    if (!cp_store_has_docs(c->store))
        end_op_finish(op);
    else if (only_if_ours)
        c->store->ops->doc_get(c->store, key, typing_expired_doc, op);
    else
        typing_end_delete(op, key, 0);
}

void cp_typing_stopped(void *ctx, const char *room_id, const char *user_id)
{
    typing_ended(ctx, room_id, user_id, false);
}

static void typing_expired(void *ctx, const char *room_id, const char *user_id)
{
    typing_ended(ctx, room_id, user_id, true);
}

struct typing_op {
    struct cp_ctx *c;
    cp_ctx_done_fn *cb;
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
    struct cp_typers_entry *e = cp_typers_find(&op->c->typing, op->room_id, op->user_id);
    if (st->code != SB_CODE_NONE) {
        /* Not visible to other replicas: undo, so no typing:false follows an unsent true. */
        if (op->deliver)
            cp_typers_stop(&op->c->typing, op->room_id, op->user_id);
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
    if (!cp_store_has_docs(c->store)) {
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
        op->was_local = cp_typers_stop(&c->typing, op->room_id, op->user_id);
        c->store->ops->doc_get(c->store, op->key, typing_stop_read, op);
        return;
    }
    int r = cp_typers_start(&c->typing, op->room_id, op->user_id, sb_time_mono_ms());
    struct cp_typers_entry *e = cp_typers_find(&c->typing, op->room_id, op->user_id);
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

void cp_typing_set(struct cp_ctx *c, const char *room_id, const char *user_id, bool typing,
                   cp_ctx_done_fn *cb, void *arg)
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
    cp_ctx_ids_fn *cb;
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
    if (!cp_store_has_docs(op->c->store)) {
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

void cp_typing_list(struct cp_ctx *c, const char *room_id, cp_ctx_ids_fn *cb, void *arg)
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
    cp_keys_doc_typing(op->prefix, room_id, NULL);
    c->store->ops->members_list(c->store, room_id, typing_list_members, op);
}

void cp_typing_tick(struct cp_ctx *c, int64_t mono_ms)
{
    cp_typers_expire(&c->typing, mono_ms, typing_expired, c);
}

int64_t cp_typing_next_deadline(const struct cp_ctx *c)
{
    return cp_typers_next_deadline(&c->typing);
}
