/* Channel flows over Store documents. Each operation is a small state machine: read what it
 * needs (doc_get / doc_list), write in one doc_write guarded by version compares, then tell
 * the nodes (Membership, Delivery). A CONFLICT answer means another writer got there first:
 * the operation re-reads and decides again, a bounded number of times. */
#include "cp_channels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cp_access.h"
#include "cp_filter.h"
#include "cp_glob.h"
#include "cp_json.h"
#include "cp_keys.h"
#include "cp_once.h"
#include "sb_id.h"
#include "sb_ident.h"
#include "sb_log.h"
#include "sb_time.h"

#define KEY_MAX   CP_KEYS_DOC_KEY_MAX
#define MAX_TRIES 4
#define BATCH_OPS 64 /* doc_write ops per call (the etcd store's limit) */

typedef Switchboard__Internal__V1__ControlItem ControlItem;

/* ---------------------------------------------------------------- small helpers */

/* The last segment of a document key ("subs/news/alice" -> "alice"). */
static const char *last_seg(const char *key)
{
    const char *s = strrchr(key, '/');
    return s != NULL ? s + 1 : key;
}

static void oom(struct cp_status *st)
{
    cp_status_set(st, SB_CODE_INTERNAL, "out of memory");
}

static void copy_id(char dst[SB_IDENT_MAX + 1], const char *src)
{
    snprintf(dst, SB_IDENT_MAX + 1, "%s", src != NULL ? src : "");
}

/* Membership{user, channel, added, revision} to every node hosting one of the user's
 * connections. Revisions are Store versions: a subscription's put version when added, that
 * version + 1 when removed (the delete's own revision is at least that, and any later put is
 * above it), so nodes order copies from several control planes. */
static void send_membership(struct cp_ctx *c, const char *user_id, const char *channel_id,
                            bool added, int64_t revision)
{
    cp_fanout_membership_item(&c->fan, user_id, NULL, channel_id, added, revision);
}

static json_t *meta_json(const struct cp_kv *meta, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; o != NULL && i < n; i++) {
        json_t *v = json_string(meta[i].value ? meta[i].value : "");
        if (v == NULL || json_object_set_new(o, meta[i].key, v) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* ---------------------------------------------------------------- parsed records */

/* A channel record's metadata, parsed (strings point into the json_t kept alongside). */
struct chan_rec {
    json_t *root;
    struct cp_kv *meta;
    size_t n_meta;
    int64_t created_at;
    bool client_publish;
};

static bool chan_parse(const char *value, struct chan_rec *out)
{
    memset(out, 0, sizeof(*out));
    out->root = json_loads(value, 0, NULL);
    if (out->root == NULL)
        return false;
    out->created_at = (int64_t)json_integer_value(json_object_get(out->root, "created_at"));
    /* absent in records older than the option: off, the default */
    out->client_publish = json_is_true(json_object_get(out->root, "client_publish"));
    json_t *m = json_object_get(out->root, "metadata");
    size_t n = json_is_object(m) ? json_object_size(m) : 0;
    if (n > 0) {
        out->meta = calloc(n, sizeof(*out->meta));
        if (out->meta == NULL) {
            json_decref(out->root);
            return false;
        }
        const char *k;
        json_t *val;
        json_object_foreach(m, k, val)
        {
            out->meta[out->n_meta].key = (char *)k;
            out->meta[out->n_meta].value =
                (char *)(json_is_string(val) ? json_string_value(val) : "");
            out->n_meta++;
        }
    }
    return true;
}

static void chan_rec_fini(struct chan_rec *r)
{
    free(r->meta);
    json_decref(r->root);
}

/* A subscription's filter text ("" when none); NULL when the record is unreadable. */
static char *sub_filter(const char *value)
{
    json_t *j = json_loads(value, 0, NULL);
    if (j == NULL)
        return NULL;
    const char *f = json_string_value(json_object_get(j, "filter"));
    char *out = strdup(f != NULL ? f : "");
    json_decref(j);
    return out;
}

/* ---------------------------------------------------------------- removing subscriptions */

/* Removes the subscriptions listed in `subs` (subs/<channel>/<user> documents) of a channel,
 * each with its user_subs/ twin in the same write, so the two indexes never disagree; batches
 * of PAIRS_PER_WRITE. Each user's nodes get Membership(removed). Then calls `then`. */
#define PAIRS_PER_WRITE (BATCH_OPS / 2)

typedef void pairs_then_fn(void *arg, const struct cp_status *st);

struct pairs_op {
    struct cp_ctx *c;
    char ch[SB_IDENT_MAX + 1];
    char **users;
    int64_t *versions;
    size_t n, next, batch;
    pairs_then_fn *then;
    void *arg;
};

static void pairs_free(struct pairs_op *op)
{
    for (size_t i = 0; i < op->n; i++)
        free(op->users[i]);
    free(op->users);
    free(op->versions);
    free(op);
}

static void pairs_end(struct pairs_op *op, const struct cp_status *st)
{
    pairs_then_fn *then = op->then;
    void *arg = op->arg;
    pairs_free(op);
    then(arg, st);
}

static void pairs_write(struct pairs_op *op);

static void pairs_written(void *arg, const struct cp_status *st, const int64_t *v, size_t n)
{
    (void)v;
    (void)n;
    struct pairs_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        pairs_end(op, st);
        return;
    }
    for (size_t i = op->next; i < op->next + op->batch; i++)
        send_membership(op->c, op->users[i], op->ch, false, op->versions[i] + 1);
    op->next += op->batch;
    pairs_write(op);
}

static void pairs_write(struct pairs_op *op)
{
    if (op->next == op->n) {
        struct cp_status ok;
        cp_status_ok(&ok);
        pairs_end(op, &ok);
        return;
    }
    char keys[BATCH_OPS][KEY_MAX];
    struct cp_doc_op ops[BATCH_OPS];
    size_t k = 0;
    op->batch = op->n - op->next < PAIRS_PER_WRITE ? op->n - op->next : PAIRS_PER_WRITE;
    for (size_t i = op->next; i < op->next + op->batch; i++) {
        cp_keys_doc_sub(keys[k], op->ch, op->users[i]);
        ops[k] = (struct cp_doc_op){.key = keys[k], .expect = -1};
        k++;
        cp_keys_doc_user_sub(keys[k], op->users[i], op->ch);
        ops[k] = (struct cp_doc_op){.key = keys[k], .expect = -1};
        k++;
    }
    op->c->store->ops->doc_write(op->c->store, ops, k, pairs_written, op);
}

static void pairs_remove(struct cp_ctx *c, const char *channel_id, const struct cp_doc *subs,
                         size_t n, pairs_then_fn *then, void *arg)
{
    struct cp_status st;
    struct pairs_op *op = calloc(1, sizeof(*op));
    if (op != NULL && n > 0) {
        op->users = calloc(n, sizeof(*op->users));
        op->versions = calloc(n, sizeof(*op->versions));
    }
    bool ok = op != NULL && (n == 0 || (op->users != NULL && op->versions != NULL));
    for (size_t i = 0; ok && i < n; i++) {
        op->users[i] = strdup(last_seg(subs[i].key));
        op->versions[i] = subs[i].version;
        op->n = i + 1;
        ok = op->users[i] != NULL;
    }
    if (!ok) {
        if (op != NULL)
            pairs_free(op);
        oom(&st);
        then(arg, &st);
        return;
    }
    op->c = c;
    copy_id(op->ch, channel_id);
    op->then = then;
    op->arg = arg;
    pairs_write(op);
}

/* ---------------------------------------------------------------- delete */

/* The channel record goes first (with its idempotency records), then its subscriptions: a
 * subscribe that commits after the first write sees the channel gone in its post-check and
 * undoes itself, one that committed before is in the listing made after it. */
struct delete_op {
    struct cp_ctx *c;
    cp_channels_done_fn *cb;
    void *arg;
    char id[SB_IDENT_MAX + 1];
    int tries;
};

static void delete_start(struct delete_op *op);

static void delete_finish(void *arg, const struct cp_status *st)
{
    struct delete_op *op = arg;
    if (st->code == SB_CODE_NONE)
        SB_LOG_INFO("cp", "channel deleted", "channel=%s", op->id);
    op->cb(op->arg, st);
    free(op);
}

static void delete_subs(void *arg, const struct cp_status *st, const struct cp_doc *docs, size_t n)
{
    struct delete_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        delete_finish(op, st);
        return;
    }
    pairs_remove(op->c, op->id, docs, n, delete_finish, op);
}

static void delete_written(void *arg, const struct cp_status *st, const int64_t *versions, size_t n)
{
    (void)versions;
    (void)n;
    struct delete_op *op = arg;
    if (st->code == SB_CODE_CONFLICT && ++op->tries < MAX_TRIES) {
        delete_start(op);
        return;
    }
    if (st->code != SB_CODE_NONE) {
        delete_finish(op, st);
        return;
    }
    char prefix[KEY_MAX];
    cp_keys_doc_sub(prefix, op->id, NULL);
    op->c->store->ops->doc_list(op->c->store, prefix, delete_subs, op);
}

static void delete_got(void *arg, const struct cp_status *st, const struct cp_doc *doc)
{
    struct delete_op *op = arg;
    struct cp_status e;
    if (st->code != SB_CODE_NONE) {
        delete_finish(op, st);
        return;
    }
    if (doc == NULL) {
        cp_status_set(&e, SB_CODE_CHANNEL_NOT_FOUND, "channel %s does not exist", op->id);
        delete_finish(op, &e);
        return;
    }
    char ckey[KEY_MAX], ikey[KEY_MAX];
    cp_keys_doc_channel(ckey, op->id);
    cp_keys_doc_channel_idem(ikey, op->id, NULL);
    struct cp_doc_op ops[2] = {{.key = ckey, .expect = doc->version},
                               {.key = ikey, .prefix = true, .expect = -1}};
    op->c->store->ops->doc_write(op->c->store, ops, 2, delete_written, op);
}

static void delete_start(struct delete_op *op)
{
    char key[KEY_MAX];
    cp_keys_doc_channel(key, op->id);
    op->c->store->ops->doc_get(op->c->store, key, delete_got, op);
}

void cp_channels_delete(struct cp_ctx *c, const char *channel_id, cp_channels_done_fn *cb,
                        void *arg)
{
    struct delete_op *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        struct cp_status st;
        oom(&st);
        cb(arg, &st);
        return;
    }
    op->c = c;
    op->cb = cb;
    op->arg = arg;
    copy_id(op->id, channel_id);
    delete_start(op);
}

/* ---------------------------------------------------------------- create */

struct create_op {
    struct cp_ctx *c;
    cp_channels_one_fn *cb;
    void *arg;
    char id[SB_IDENT_MAX + 1];
    int64_t created_at;
    bool client_publish;
    size_t n_metadata;
    struct cp_kv *meta_copy;
    char *text;      /* the record */
    int64_t version; /* its version once written */
};

static void create_done(void *arg, const struct cp_status *st0)
{
    struct create_op *op = arg;
    struct cp_status st = *st0;
    if (st.code == SB_CODE_CONFLICT)
        cp_status_set(&st, SB_CODE_CHANNEL_ALREADY_EXISTS, "channel %s already exists", op->id);
    struct cp_channel_info ch = {.id = op->id,
                                 .metadata = op->meta_copy,
                                 .n_metadata = op->n_metadata,
                                 .created_at = op->created_at,
                                 .client_publish = op->client_publish};
    op->cb(op->arg, &st, st.code == SB_CODE_NONE ? &ch : NULL);
    for (size_t i = 0; i < op->n_metadata && op->meta_copy != NULL; i++) {
        free(op->meta_copy[i].key);
        free(op->meta_copy[i].value);
    }
    free(op->meta_copy);
    free(op->text);
    free(op);
}

/* Subscriptions older than the new record were left by a deletion cut short (a crash between
 * its writes): they are removed so the new channel starts empty. Newer ones are subscriptions
 * to the new channel, made since. */
static void create_orphans(void *arg, const struct cp_status *st, const struct cp_doc *docs,
                           size_t n)
{
    struct create_op *op = arg;
    struct cp_status ok;
    cp_status_ok(&ok);
    if (st->code != SB_CODE_NONE || n == 0) {
        create_done(op, &ok); /* the channel exists: a failed look for leftovers is not fatal */
        return;
    }
    struct cp_doc *old = calloc(n, sizeof(*old));
    size_t k = 0;
    for (size_t i = 0; old != NULL && i < n; i++)
        if (docs[i].version < op->version)
            old[k++] = docs[i];
    if (k == 0) {
        free(old);
        create_done(op, &ok);
        return;
    }
    SB_LOG_WARN("cp", "removing subscriptions left by an unfinished channel deletion",
                "channel=%s count=%zu", op->id, k);
    pairs_remove(op->c, op->id, old, k, create_done, op);
    free(old);
}

static void create_written(void *arg, const struct cp_status *st, const int64_t *versions, size_t n)
{
    struct create_op *op = arg;
    if (st->code != SB_CODE_NONE || n < 1) {
        create_done(op, st);
        return;
    }
    op->version = versions[0];
    char prefix[KEY_MAX];
    cp_keys_doc_sub(prefix, op->id, NULL);
    op->c->store->ops->doc_list(op->c->store, prefix, create_orphans, op);
}

void cp_channels_create(struct cp_ctx *c, const char *channel_id, const struct cp_kv *metadata,
                        size_t n_metadata, bool client_publish, cp_channels_one_fn *cb, void *arg)
{
    struct cp_status st;
    struct create_op *op = calloc(1, sizeof(*op));
    json_t *meta = meta_json(metadata, n_metadata);
    json_t *v = meta ? json_pack("{s:I, s:o, s:b}", "created_at", (json_int_t)sb_time_now_ms(),
                                 "metadata", meta, "client_publish", client_publish)
                     : NULL;
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    if (op != NULL && n_metadata > 0)
        op->meta_copy = calloc(n_metadata, sizeof(*op->meta_copy));
    bool ok = op != NULL && text != NULL && (n_metadata == 0 || op->meta_copy != NULL);
    for (size_t i = 0; ok && i < n_metadata; i++) {
        op->meta_copy[i].key = strdup(metadata[i].key);
        op->meta_copy[i].value = strdup(metadata[i].value ? metadata[i].value : "");
        ok = op->meta_copy[i].key != NULL && op->meta_copy[i].value != NULL;
    }
    if (!ok) {
        if (op != NULL) {
            for (size_t i = 0; i < n_metadata && op->meta_copy != NULL; i++) {
                free(op->meta_copy[i].key);
                free(op->meta_copy[i].value);
            }
            free(op->meta_copy);
        }
        free(op);
        free(text);
        json_decref(v);
        oom(&st);
        cb(arg, &st, NULL);
        return;
    }
    op->c = c;
    op->cb = cb;
    op->arg = arg;
    copy_id(op->id, channel_id);
    op->created_at = (int64_t)json_integer_value(json_object_get(v, "created_at"));
    op->n_metadata = n_metadata;
    op->client_publish = client_publish;
    json_decref(v);
    op->text = text;
    char key[KEY_MAX];
    cp_keys_doc_channel(key, op->id);
    struct cp_doc_op w = {.key = key, .value = op->text, .expect = 0};
    c->store->ops->doc_write(c->store, &w, 1, create_written, op);
}

/* ---------------------------------------------------------------- list */

struct list_op {
    struct cp_ctx *c;
    cp_channels_list_fn *cb;
    void *arg;
    char *pattern;
    struct chan_rec *recs;
    struct cp_channel_info *infos;
    char **ids;
    size_t n;
};

static void list_free(struct list_op *op)
{
    for (size_t i = 0; i < op->n; i++) {
        chan_rec_fini(&op->recs[i]);
        free(op->ids[i]);
    }
    free(op->recs);
    free(op->infos);
    free(op->ids);
    free(op->pattern);
    free(op);
}

/* Counts subscriptions per listed channel: subs/<channel>/<user>, by key order. */
static void list_subs(void *arg, const struct cp_status *st, const struct cp_doc *docs, size_t n)
{
    struct list_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        op->cb(op->arg, st, NULL, 0);
        list_free(op);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *ch = docs[i].key + 5; /* after "subs/" */
        const char *slash = strchr(ch, '/');
        if (slash == NULL)
            continue;
        size_t len = (size_t)(slash - ch);
        /* op->infos is sorted by id: binary search. */
        size_t lo = 0, hi = op->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int cmp = strncmp(op->infos[mid].id, ch, len);
            if (cmp == 0 && op->infos[mid].id[len] != '\0')
                cmp = 1;
            if (cmp < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < op->n && strncmp(op->infos[lo].id, ch, len) == 0 && op->infos[lo].id[len] == '\0')
            op->infos[lo].subscriber_count++;
    }
    op->cb(op->arg, st, op->infos, op->n);
    list_free(op);
}

static int info_cmp(const void *a, const void *b)
{
    return strcmp(((const struct cp_channel_info *)a)->id, ((const struct cp_channel_info *)b)->id);
}

static void list_channels(void *arg, const struct cp_status *st, const struct cp_doc *docs,
                          size_t n)
{
    struct list_op *op = arg;
    struct cp_status e;
    if (st->code != SB_CODE_NONE) {
        op->cb(op->arg, st, NULL, 0);
        list_free(op);
        return;
    }
    op->recs = n ? calloc(n, sizeof(*op->recs)) : NULL;
    op->infos = n ? calloc(n, sizeof(*op->infos)) : NULL;
    op->ids = n ? calloc(n, sizeof(*op->ids)) : NULL;
    if (n > 0 && (op->recs == NULL || op->infos == NULL || op->ids == NULL)) {
        oom(&e);
        op->cb(op->arg, &e, NULL, 0);
        list_free(op);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *id = last_seg(docs[i].key);
        if (!cp_glob_match(op->pattern, id))
            continue;
        struct chan_rec *r = &op->recs[op->n];
        char *idc = strdup(id);
        if (idc == NULL || !chan_parse(docs[i].value, r)) {
            free(idc);
            if (idc == NULL) {
                oom(&e);
                op->cb(op->arg, &e, NULL, 0);
                list_free(op);
                return;
            }
            continue; /* an unreadable record is skipped, never fatal */
        }
        op->ids[op->n] = idc;
        op->infos[op->n] = (struct cp_channel_info){.id = idc,
                                                    .metadata = r->meta,
                                                    .n_metadata = r->n_meta,
                                                    .created_at = r->created_at,
                                                    .client_publish = r->client_publish};
        op->n++;
    }
    /* Key order is id order already ("channels/" + id); sort anyway for any store. */
    qsort(op->infos, op->n, sizeof(*op->infos), info_cmp);
    if (op->n == 0) {
        op->cb(op->arg, st, NULL, 0);
        list_free(op);
        return;
    }
    char all[CP_KEYS_DOC_KEY_MAX];
    cp_keys_doc_sub(all, NULL, NULL);
    op->c->store->ops->doc_list(op->c->store, all, list_subs, op);
}

void cp_channels_list(struct cp_ctx *c, const char *pattern, cp_channels_list_fn *cb, void *arg)
{
    struct cp_status st;
    if (pattern != NULL && !cp_glob_is_valid(pattern)) {
        cp_status_set(&st, SB_CODE_INVALID_MESSAGE,
                      "pattern must be at most %d characters of A-Z a-z 0-9 . _ : @ - and *",
                      CP_GLOB_MAX);
        cb(arg, &st, NULL, 0);
        return;
    }
    struct list_op *op = calloc(1, sizeof(*op));
    if (op != NULL)
        op->pattern = strdup(pattern != NULL ? pattern : "");
    if (op == NULL || op->pattern == NULL) {
        free(op);
        oom(&st);
        cb(arg, &st, NULL, 0);
        return;
    }
    op->c = c;
    op->cb = cb;
    op->arg = arg;
    char all[CP_KEYS_DOC_KEY_MAX];
    cp_keys_doc_channel(all, NULL);
    c->store->ops->doc_list(c->store, all, list_channels, op);
}

/* ---------------------------------------------------------------- subscribe */

struct sub_op {
    struct cp_ctx *c;
    cp_channels_done_fn *cb;
    void *arg;
    char ch[SB_IDENT_MAX + 1];
    char user[SB_IDENT_MAX + 1];
    char *filter; /* normalized: "" for none */
    bool client;
    bool create;          /* the channel is missing and is created with the subscription */
    int64_t sub_version;  /* existing subscription (client re-subscribe), 0: none */
    bool filter_only;     /* only the filter of an existing subscription changes */
    int64_t chan_version; /* the channel record read (or written) */
    int64_t put_version;  /* the subscription written */
    int tries;
};

static void sub_start(struct sub_op *op);

static void sub_finish(struct sub_op *op, const struct cp_status *st)
{
    op->cb(op->arg, st);
    free(op->filter);
    free(op);
}

static void sub_undone(void *arg, const struct cp_status *st, const int64_t *versions, size_t n)
{
    (void)st; /* if the undo failed, DeleteChannel's listing or a re-create removes the pair */
    (void)versions;
    (void)n;
    struct sub_op *op = arg;
    struct cp_status e;
    cp_status_set(&e, SB_CODE_CHANNEL_NOT_FOUND, "channel %s does not exist", op->ch);
    sub_finish(op, &e);
}

/* Post-check: the channel must still be the one read before the write. A deletion that
 * committed in between would not have listed this subscription: undo it. */
static void sub_checked(void *arg, const struct cp_status *st, const struct cp_doc *doc)
{
    struct sub_op *op = arg;
    if (st->code == SB_CODE_NONE && (doc == NULL || doc->version != op->chan_version)) {
        char skey[KEY_MAX], ukey[KEY_MAX];
        cp_keys_doc_sub(skey, op->ch, op->user);
        cp_keys_doc_user_sub(ukey, op->user, op->ch);
        struct cp_doc_op ops[2] = {{.key = skey, .expect = op->put_version},
                                   {.key = ukey, .expect = -1}};
        op->c->store->ops->doc_write(op->c->store, ops, 2, sub_undone, op);
        return;
    }
    /* The store failing the read says nothing against the write that succeeded. */
    send_membership(op->c, op->user, op->ch, true, op->put_version);
    struct cp_status ok;
    cp_status_ok(&ok);
    sub_finish(op, &ok);
}

static void sub_written(void *arg, const struct cp_status *st, const int64_t *versions, size_t n)
{
    struct sub_op *op = arg;
    if (st->code == SB_CODE_CONFLICT && ++op->tries < MAX_TRIES) {
        sub_start(op); /* decide again on fresh records */
        return;
    }
    if (st->code != SB_CODE_NONE || op->filter_only || n == 0) {
        sub_finish(op, st);
        return;
    }
    op->put_version = versions[0];
    if (op->create)
        op->chan_version = versions[n - 1];
    char key[KEY_MAX];
    cp_keys_doc_channel(key, op->ch);
    op->c->store->ops->doc_get(op->c->store, key, sub_checked, op);
}

static void sub_write(struct sub_op *op)
{
    int64_t now = sb_time_now_ms();
    json_t *sv = json_pack("{s:s, s:I}", "filter", op->filter, "subscribed_at", (json_int_t)now);
    json_t *uv = json_pack("{s:I}", "subscribed_at", (json_int_t)now);
    json_t *cv = op->create ? json_pack("{s:I, s:{}, s:b}", "created_at", (json_int_t)now,
                                        "metadata", "client_publish", 0)
                            : NULL;
    char *s = sv ? json_dumps(sv, JSON_COMPACT) : NULL;
    char *u = uv ? json_dumps(uv, JSON_COMPACT) : NULL;
    char *cs = cv ? json_dumps(cv, JSON_COMPACT) : NULL;
    json_decref(sv);
    json_decref(uv);
    json_decref(cv);
    if (s == NULL || u == NULL || (op->create && cs == NULL)) {
        free(s);
        free(u);
        free(cs);
        struct cp_status e;
        oom(&e);
        sub_finish(op, &e);
        return;
    }
    char skey[KEY_MAX], ukey[KEY_MAX], ckey[KEY_MAX];
    cp_keys_doc_sub(skey, op->ch, op->user);
    cp_keys_doc_user_sub(ukey, op->user, op->ch);
    cp_keys_doc_channel(ckey, op->ch);
    struct cp_doc_op ops[3];
    size_t k = 0;
    ops[k++] = (struct cp_doc_op){.key = skey, .value = s, .expect = op->sub_version};
    if (!op->filter_only)
        ops[k++] = (struct cp_doc_op){.key = ukey, .value = u, .expect = -1};
    if (op->create)
        ops[k++] = (struct cp_doc_op){.key = ckey, .value = cs, .expect = 0};
    op->c->store->ops->doc_write(op->c->store, ops, k, sub_written, op);
    free(s);
    free(u);
    free(cs);
}

static void sub_counted(void *arg, const struct cp_status *st, const struct cp_doc *docs, size_t n)
{
    struct sub_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        sub_finish(op, st);
        return;
    }
    int max = op->c->set.max_channels_per_user;
    if (max > 0 && n >= (size_t)max) {
        /* A stale entry of this very channel does not count against it. */
        bool self = false;
        for (size_t i = 0; i < n && !self; i++)
            self = strcmp(last_seg(docs[i].key), op->ch) == 0;
        if (!self || n > (size_t)max) {
            struct cp_status e;
            cp_status_set(&e, SB_CODE_CHANNEL_LIMIT_REACHED,
                          "user %s is subscribed to %d channels, the most allowed", op->user, max);
            sub_finish(op, &e);
            return;
        }
    }
    sub_write(op);
}

static void sub_got_sub(void *arg, const struct cp_status *st, const struct cp_doc *doc)
{
    struct sub_op *op = arg;
    struct cp_status e;
    if (st->code != SB_CODE_NONE) {
        sub_finish(op, st);
        return;
    }
    if (doc != NULL) {
        if (!op->client) {
            cp_status_set(&e, SB_CODE_ALREADY_SUBSCRIBED, "user %s is already subscribed to %s",
                          op->user, op->ch);
            sub_finish(op, &e);
            return;
        }
        /* A client subscribe of an existing subscription is acked; a new filter replaces the
         * old one. */
        char *old = sub_filter(doc->value);
        bool same = old != NULL && strcmp(old, op->filter) == 0;
        free(old);
        if (same) {
            cp_status_ok(&e);
            sub_finish(op, &e);
            return;
        }
        op->sub_version = doc->version;
        op->filter_only = true;
        sub_write(op);
        return;
    }
    op->sub_version = 0;
    op->filter_only = false;
    char prefix[KEY_MAX];
    cp_keys_doc_user_sub(prefix, op->user, NULL);
    op->c->store->ops->doc_list(op->c->store, prefix, sub_counted, op);
}

static void sub_got_channel(void *arg, const struct cp_status *st, const struct cp_doc *doc)
{
    struct sub_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        sub_finish(op, st);
        return;
    }
    op->create = false;
    op->chan_version = doc != NULL ? doc->version : 0;
    if (doc == NULL) {
        if (!(op->client && op->c->set.auto_create_channels)) {
            struct cp_status e;
            cp_status_set(&e, SB_CODE_CHANNEL_NOT_FOUND, "channel %s does not exist", op->ch);
            sub_finish(op, &e);
            return;
        }
        op->create = true;
    }
    char key[KEY_MAX];
    cp_keys_doc_sub(key, op->ch, op->user);
    op->c->store->ops->doc_get(op->c->store, key, sub_got_sub, op);
}

static void sub_start(struct sub_op *op)
{
    char key[KEY_MAX];
    cp_keys_doc_channel(key, op->ch);
    op->c->store->ops->doc_get(op->c->store, key, sub_got_channel, op);
}

void cp_channels_subscribe(struct cp_ctx *c, const struct cp_subscribe *req,
                           cp_channels_done_fn *cb, void *arg)
{
    struct cp_status st;
    const char *ftext = req->filter != NULL ? req->filter : "";
    struct cp_filter *f = NULL;
    char why[160];
    enum sb_err e = cp_filter_parse(ftext, strlen(ftext), &f, why, sizeof(why));
    if (e != SB_OK) {
        if (e == SB_ENOMEM)
            oom(&st);
        else
            cp_status_set(&st, SB_CODE_INVALID_MESSAGE, "%s", why);
        cb(arg, &st);
        return;
    }
    bool blank = f == NULL;
    cp_filter_free(f);
    struct sub_op *op = calloc(1, sizeof(*op));
    if (op != NULL)
        op->filter = strdup(blank ? "" : ftext);
    if (op == NULL || op->filter == NULL) {
        free(op);
        oom(&st);
        cb(arg, &st);
        return;
    }
    op->c = c;
    op->cb = cb;
    op->arg = arg;
    op->client = req->client;
    copy_id(op->ch, req->channel_id);
    copy_id(op->user, req->user_id);
    sub_start(op);
}

/* ---------------------------------------------------------------- unsubscribe */

struct unsub_op {
    struct cp_ctx *c;
    cp_channels_done_fn *cb;
    void *arg;
    char ch[SB_IDENT_MAX + 1];
    char user[SB_IDENT_MAX + 1];
    int64_t sub_version;
    int tries;
};

static void unsub_start(struct unsub_op *op);

static void unsub_finish(struct unsub_op *op, const struct cp_status *st)
{
    op->cb(op->arg, st);
    free(op);
}

static void unsub_written(void *arg, const struct cp_status *st, const int64_t *versions, size_t n)
{
    (void)versions;
    (void)n;
    struct unsub_op *op = arg;
    if (st->code == SB_CODE_CONFLICT && ++op->tries < MAX_TRIES) {
        unsub_start(op);
        return;
    }
    if (st->code == SB_CODE_NONE)
        send_membership(op->c, op->user, op->ch, false, op->sub_version + 1);
    unsub_finish(op, st);
}

static void unsub_got_sub(void *arg, const struct cp_status *st, const struct cp_doc *doc)
{
    struct unsub_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        unsub_finish(op, st);
        return;
    }
    if (doc == NULL) {
        struct cp_status e;
        cp_status_set(&e, SB_CODE_NOT_SUBSCRIBED, "user %s is not subscribed to %s", op->user,
                      op->ch);
        unsub_finish(op, &e);
        return;
    }
    op->sub_version = doc->version;
    char skey[KEY_MAX], ukey[KEY_MAX];
    cp_keys_doc_sub(skey, op->ch, op->user);
    cp_keys_doc_user_sub(ukey, op->user, op->ch);
    struct cp_doc_op ops[2] = {{.key = skey, .value = NULL, .expect = doc->version},
                               {.key = ukey, .value = NULL, .expect = -1}};
    op->c->store->ops->doc_write(op->c->store, ops, 2, unsub_written, op);
}

static void unsub_got_channel(void *arg, const struct cp_status *st, const struct cp_doc *doc)
{
    struct unsub_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        unsub_finish(op, st);
        return;
    }
    if (doc == NULL) {
        struct cp_status e;
        cp_status_set(&e, SB_CODE_CHANNEL_NOT_FOUND, "channel %s does not exist", op->ch);
        unsub_finish(op, &e);
        return;
    }
    char key[KEY_MAX];
    cp_keys_doc_sub(key, op->ch, op->user);
    op->c->store->ops->doc_get(op->c->store, key, unsub_got_sub, op);
}

static void unsub_start(struct unsub_op *op)
{
    char key[KEY_MAX];
    cp_keys_doc_channel(key, op->ch);
    op->c->store->ops->doc_get(op->c->store, key, unsub_got_channel, op);
}

void cp_channels_unsubscribe(struct cp_ctx *c, const char *channel_id, const char *user_id,
                             cp_channels_done_fn *cb, void *arg)
{
    struct unsub_op *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        struct cp_status st;
        oom(&st);
        cb(arg, &st);
        return;
    }
    op->c = c;
    op->cb = cb;
    op->arg = arg;
    copy_id(op->ch, channel_id);
    copy_id(op->user, user_id);
    unsub_start(op);
}

/* ---------------------------------------------------------------- subscribers, user channels */

struct ids_op {
    struct cp_ctx *c;
    cp_channels_ids_fn *cb;
    void *arg;
    char ch[SB_IDENT_MAX + 1];
};

static void ids_listed(void *arg, const struct cp_status *st, const struct cp_doc *docs, size_t n)
{
    struct ids_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        op->cb(op->arg, st, NULL, 0);
        free(op);
        return;
    }
    const char **ids = n ? calloc(n, sizeof(*ids)) : NULL;
    if (n > 0 && ids == NULL) {
        struct cp_status e;
        oom(&e);
        op->cb(op->arg, &e, NULL, 0);
        free(op);
        return;
    }
    for (size_t i = 0; i < n; i++)
        ids[i] = last_seg(docs[i].key);
    op->cb(op->arg, st, ids, n);
    free(ids);
    free(op);
}

static void subscribers_got_channel(void *arg, const struct cp_status *st, const struct cp_doc *doc)
{
    struct ids_op *op = arg;
    if (st->code != SB_CODE_NONE || doc == NULL) {
        struct cp_status e = *st;
        if (st->code == SB_CODE_NONE)
            cp_status_set(&e, SB_CODE_CHANNEL_NOT_FOUND, "channel %s does not exist", op->ch);
        op->cb(op->arg, &e, NULL, 0);
        free(op);
        return;
    }
    char prefix[KEY_MAX];
    cp_keys_doc_sub(prefix, op->ch, NULL);
    op->c->store->ops->doc_list(op->c->store, prefix, ids_listed, op);
}

static struct ids_op *ids_op_new(struct cp_ctx *c, const char *id, cp_channels_ids_fn *cb,
                                 void *arg)
{
    struct ids_op *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        struct cp_status st;
        oom(&st);
        cb(arg, &st, NULL, 0);
        return NULL;
    }
    op->c = c;
    op->cb = cb;
    op->arg = arg;
    copy_id(op->ch, id);
    return op;
}

void cp_channels_subscribers(struct cp_ctx *c, const char *channel_id, cp_channels_ids_fn *cb,
                             void *arg)
{
    struct ids_op *op = ids_op_new(c, channel_id, cb, arg);
    if (op == NULL)
        return;
    char key[KEY_MAX];
    cp_keys_doc_channel(key, channel_id);
    c->store->ops->doc_get(c->store, key, subscribers_got_channel, op);
}

void cp_channels_of_user(struct cp_ctx *c, const char *user_id, cp_channels_ids_fn *cb, void *arg)
{
    struct ids_op *op = ids_op_new(c, user_id, cb, arg);
    if (op == NULL)
        return;
    char prefix[KEY_MAX];
    cp_keys_doc_user_sub(prefix, user_id, NULL);
    c->store->ops->doc_list(c->store, prefix, ids_listed, op);
}

/* ---------------------------------------------------------------- count */

struct count_op {
    cp_channels_count_fn *cb;
    void *arg;
};

static void counted(void *arg, const struct cp_status *st, const struct cp_doc *docs, size_t n)
{
    (void)docs;
    struct count_op *op = arg;
    op->cb(op->arg, st, (int64_t)n);
    free(op);
}

void cp_channels_count(struct cp_ctx *c, cp_channels_count_fn *cb, void *arg)
{
    struct count_op *op = malloc(sizeof(*op));
    if (op == NULL) {
        struct cp_status st;
        oom(&st);
        cb(arg, &st, 0);
        return;
    }
    op->cb = cb;
    op->arg = arg;
    char all[CP_KEYS_DOC_KEY_MAX];
    cp_keys_doc_channel(all, NULL);
    c->store->ops->doc_list(c->store, all, counted, op);
}

/* ---------------------------------------------------------------- publish */

/* A keyed publish is claimed first (cp_once_claim_channel, with the message id chosen for it):
 * a repeat within the idempotency window answers the first publish's id and publishes
 * nothing. */

struct pub_op {
    struct cp_ctx *c;
    cp_channels_publish_fn *cb;
    void *arg;
    char ch[SB_IDENT_MAX + 1];
    char user[SB_IDENT_MAX + 1];
    char *data;
    size_t data_len;
    struct cp_kv *meta;
    size_t n_meta;
    char *idem; /* NULL: none */
    char id[SB_ID_LEN];
    bool client;         /* a client frame: cp_access_publish decides */
    bool client_publish; /* the channel record's option */
};

static void pub_free(struct pub_op *op)
{
    for (size_t i = 0; i < op->n_meta; i++) {
        free(op->meta[i].key);
        free(op->meta[i].value);
    }
    free(op->meta);
    free(op->data);
    free(op->idem);
    free(op);
}

static void pub_finish(struct pub_op *op, const struct cp_status *st, const char *id)
{
    op->cb(op->arg, st, st->code == SB_CODE_NONE ? id : NULL);
    pub_free(op);
}

static void pub_deliver(void *arg, const struct cp_status *st, const struct cp_doc *docs, size_t n)
{
    struct pub_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        pub_finish(op, st, NULL);
        return;
    }
    const char **users = n ? calloc(n, sizeof(*users)) : NULL;
    if (n > 0 && users == NULL) {
        struct cp_status e;
        oom(&e);
        pub_finish(op, &e, NULL);
        return;
    }
    size_t n_users = 0;
    for (size_t i = 0; i < n; i++) {
        char *ftext = sub_filter(docs[i].value);
        struct cp_filter *f = NULL;
        bool ok = ftext != NULL && cp_filter_parse(ftext, strlen(ftext), &f, NULL, 0) == SB_OK &&
                  cp_filter_match(f, op->meta, op->n_meta);
        cp_filter_free(f);
        free(ftext);
        if (ok)
            users[n_users++] = last_seg(docs[i].key);
    }
    struct cp_buf b;
    cp_buf_init(&b);
    int64_t now = sb_time_now_ms();
    cp_json_channel_message(&b, op->id, op->ch, op->user, op->data, op->data_len, op->meta,
                            op->n_meta, now);
    if (b.failed) {
        cp_buf_fini(&b);
        free(users);
        struct cp_status e;
        oom(&e);
        pub_finish(op, &e, NULL);
        return;
    }
    if (n_users > 0)
        cp_fanout_channel(&op->c->fan, op->ch, users, n_users, n_users == n, b.data, b.len);
    op->c->messages_published++;
    if (op->c->hooks.channel_message != NULL)
        op->c->hooks.channel_message(op->c->hooks.ud, op->ch, op->id, op->user, op->data,
                                     op->data_len, op->meta, op->n_meta, now);
    cp_buf_fini(&b);
    free(users);
    pub_finish(op, st, op->id);
}

static void pub_list_subs(struct pub_op *op)
{
    char prefix[KEY_MAX];
    cp_keys_doc_sub(prefix, op->ch, NULL);
    op->c->store->ops->doc_list(op->c->store, prefix, pub_deliver, op);
}

/* The record is written first with "must be absent": fresh keys (nearly all) cost one write.
 * A conflict means the key was used: read the record and answer its id, or take an expired
 * one over (guarded by its version). */
static void pub_claimed(void *arg, const struct cp_status *st, bool first, int64_t n,
                        const char *first_id)
{
    (void)n;
    struct pub_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        pub_finish(op, st, NULL);
        return;
    }
    if (!first) {
        pub_finish(op, st, first_id != NULL ? first_id : op->id);
        return;
    }
    pub_list_subs(op);
}

static void pub_claim(struct pub_op *op)
{
    if (op->idem != NULL) {
        cp_once_claim_channel(op->c, op->ch, op->idem, op->id, pub_claimed, op);
    } else {
        pub_list_subs(op);
    }
}

/* Decides a client publish once whether the user is subscribed is known. */
static void pub_check(struct pub_op *op, bool subscribed)
{
    char why[160];
    if (op->client &&
        !cp_access_publish(op->ch, op->user, op->client_publish, subscribed, why, sizeof(why))) {
        struct cp_status e;
        cp_status_set(&e, SB_CODE_PERMISSION_DENIED, "%s", why);
        pub_finish(op, &e, NULL);
        return;
    }
    pub_claim(op);
}

static void pub_got_sub(void *arg, const struct cp_status *st, const struct cp_doc *doc)
{
    struct pub_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        pub_finish(op, st, NULL);
        return;
    }
    pub_check(op, doc != NULL);
}

static void pub_got_channel(void *arg, const struct cp_status *st, const struct cp_doc *doc)
{
    struct pub_op *op = arg;
    if (st->code != SB_CODE_NONE) {
        pub_finish(op, st, NULL);
        return;
    }
    if (doc == NULL) {
        struct cp_status e;
        cp_status_set(&e, SB_CODE_CHANNEL_NOT_FOUND, "channel %s does not exist", op->ch);
        pub_finish(op, &e, NULL);
        return;
    }
    if (!op->client) {
        pub_claim(op);
        return;
    }
    struct chan_rec r;
    if (!chan_parse(doc->value, &r)) {
        struct cp_status e;
        cp_status_set(&e, SB_CODE_INTERNAL, "channel %s: unreadable record", op->ch);
        pub_finish(op, &e, NULL);
        return;
    }
    op->client_publish = r.client_publish;
    chan_rec_fini(&r);
    /* Only private and presence channels ask whether the publisher is subscribed. */
    if (op->client_publish && cp_access_needs_grant(op->ch)) {
        char key[KEY_MAX];
        cp_keys_doc_sub(key, op->ch, op->user);
        op->c->store->ops->doc_get(op->c->store, key, pub_got_sub, op);
        return;
    }
    pub_check(op, false);
}

void cp_channels_publish(struct cp_ctx *c, const struct cp_channel_publish *p,
                         cp_channels_publish_fn *cb, void *arg)
{
    struct cp_status st;
    struct pub_op *op = calloc(1, sizeof(*op));
    bool ok = op != NULL;
    if (ok) {
        op->data = malloc(p->data_len + 1);
        op->meta = p->n_metadata ? calloc(p->n_metadata, sizeof(*op->meta)) : NULL;
        ok = op->data != NULL && (p->n_metadata == 0 || op->meta != NULL);
    }
    for (size_t i = 0; ok && i < p->n_metadata; i++) {
        op->meta[i].key = strdup(p->metadata[i].key ? p->metadata[i].key : "");
        op->meta[i].value = strdup(p->metadata[i].value ? p->metadata[i].value : "");
        op->n_meta = i + 1;
        ok = op->meta[i].key != NULL && op->meta[i].value != NULL;
    }
    if (ok && p->idem_key != NULL && p->idem_key[0] != '\0')
        ok = (op->idem = strdup(p->idem_key)) != NULL;
    if (!ok) {
        if (op != NULL)
            pub_free(op);
        oom(&st);
        cb(arg, &st, NULL);
        return;
    }
    memcpy(op->data, p->data, p->data_len);
    op->data[p->data_len] = '\0';
    op->data_len = p->data_len;
    op->c = c;
    op->cb = cb;
    op->arg = arg;
    copy_id(op->ch, p->channel_id);
    copy_id(op->user, p->user_id);
    op->client = p->client;
    sb_id_new("m", op->id);
    char key[KEY_MAX];
    cp_keys_doc_channel(key, op->ch);
    c->store->ops->doc_get(c->store, key, pub_got_channel, op);
}
