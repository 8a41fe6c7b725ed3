/* Documents of the etcd Store (sb/doc/<key>), never cached: doc_get and doc_list are range
 * reads straight from etcd (linearizable: they see every write answered before they started,
 * on any replica); doc_write is one txn, its ops normalised to what etcd accepts, answered
 * after the barrier (so this replica's observer has seen it). */
#include "cp_estore_int.h"

#include <stdlib.h>
#include <string.h>

#include "cp_keys.h"

#define DOC_MAX_OPS     64
#define DOC_MAX_TXN_OPS 128 /* etcd's --max-txn-ops default */

static void set_bad_key(struct cp_status *st, const char *what, const char *key)
{
    cp_status_set(st, SB_CODE_INVALID_MESSAGE, "document %s \"%.64s\" is not valid", what,
                  key ? key : "(null)");
}

/* ---- reads */

/* Exactly one of the callbacks is set. */
struct docread_op {
    struct cp_eop o; /* first */
    const char *key; /* the caller's: first read only */
    bool prefix;
    cp_store_doc_fn *doc_cb;
    cp_store_docs_fn *docs_cb;
    const struct cp_doc *docs; /* the answer, while it ends */
    size_t n;
};

static void docread_end(struct cp_estore *s, struct cp_eop *o, const struct cp_status *st,
                        bool synced)
{
    struct docread_op *op = (struct docread_op *)o;
    bool ok = st->code == SB_CODE_NONE;
    if (op->doc_cb != NULL)
        op->doc_cb(o->arg, st, ok && op->n > 0 ? &op->docs[0] : NULL);
    else
        op->docs_cb(o->arg, st, ok ? op->docs : NULL, ok ? op->n : 0);
}

/* A range answer's documents: etcd keys minus "sb/doc/". */
static void docread_answer(struct cp_estore *s, void *ud, const struct cp_etcd_result *r,
                           const struct cp_status *st)
{
    struct docread_op *op = ud;
    size_t skip = strlen(CP_KEYS_DOC);
    struct cp_doc *docs = r != NULL && r->n_kvs ? calloc(r->n_kvs, sizeof(*docs)) : NULL;
    if (r != NULL && r->n_kvs > 0 && docs == NULL) {
        cp_eop_end(s, &op->o, &cp_estore_nomem);
        return;
    }
    for (size_t i = 0; r != NULL && i < r->n_kvs; i++) {
        const struct cp_etcd_kv *kv = &r->kvs[i];
        if (kv->key_len <= skip)
            continue;
        docs[op->n++] = (struct cp_doc){.key = kv->key + skip,
                                        .value = kv->value,
                                        .len = kv->value_len,
                                        .version = kv->mod_revision};
    }
    op->docs = docs;
    cp_eop_end(s, &op->o, st);
    free(docs);
}

/* Reads the document key (or every key under the prefix). */
static void docread_read(struct cp_estore *s, struct cp_eop *o)
{
    struct docread_op *op = (struct docread_op *)o;
    struct cp_status st;
    char k[CP_KEYS_DOC_MAX], end[CP_KEYS_DOC_MAX];
    size_t en = 0;
    if ((op->prefix ? cp_keys_doc_prefix(op->key, k, sizeof(k))
                    : cp_keys_doc(op->key, k, sizeof(k))) != SB_OK) {
        set_bad_key(&st, op->prefix ? "prefix" : "key", op->key);
        cp_eop_end(s, o, &st);
        return;
    }
    struct cp_etcd_range_req q = {.key = cp_etcd_json_str(k)};
    if (op->prefix && cp_keys_range_end(k, strlen(k), end, sizeof(end), &en) == SB_OK)
        q.range_end = (struct cp_etcd_bytes){end, en};
    cp_ecall_range(s, &q, "document read", docread_answer, op);
}

/* ---- writes */

struct docwrite_op {
    struct cp_eop o;             /* first */
    const struct cp_doc_op *ops; /* the caller's: first read only */
    size_t n;
    cp_store_write_fn *cb;
    int64_t *versions;
    char *first_expect; /* the first key with an expectation, for the CONFLICT message */
};

static void docwrite_end(struct cp_estore *s, struct cp_eop *o, const struct cp_status *st,
                         bool synced)
{
    struct docwrite_op *op = (struct docwrite_op *)o;
    bool ok = st->code == SB_CODE_NONE;
    for (size_t i = 0; ok && op->versions != NULL && i < op->n; i++)
        if (op->versions[i] != 0)
            op->versions[i] = o->rev;
    op->cb(o->arg, st, ok ? op->versions : NULL, ok && op->versions != NULL ? op->n : 0);
    free(op->versions);
    free(op->first_expect);
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The etcd keys of the ops (ek[i]); false with *st for a key outside the document alphabet. */
static bool doc_keys(const struct cp_doc_op *ops, size_t n, char **ek, bool *nomem,
                     struct cp_status *st)
{
    for (size_t i = 0; i < n; i++) {
        char k[CP_KEYS_DOC_MAX];
        enum sb_err e = ops[i].prefix ? cp_keys_doc_prefix(ops[i].key, k, sizeof(k))
                                      : cp_keys_doc(ops[i].key, k, sizeof(k));
        if (e != SB_OK || (ops[i].prefix && ops[i].value != NULL)) {
            set_bad_key(st, ops[i].prefix ? "prefix" : "key", ops[i].key);
            return false;
        }
        if ((ek[i] = strdup(k)) == NULL) {
            *nomem = true;
            return false;
        }
    }
    return true;
}

/* The txn of ops with etcd keys ek: every expectation compared (against the state before the
 * write, as in memory), each key written once in its final state. keep and skip: scratch
 * arrays of n. */
static void doc_txn(struct cp_etxn *t, struct docwrite_op *op, const struct cp_doc_op *ops,
                    size_t n, char **ek, bool *keep, char **skip)
{
    /* An op touched again by a later one (same key, or under a later prefix delete) is
     * superseded: only the last write of a key goes to etcd (it takes no duplicates). */
    for (size_t i = 0; i < n; i++) {
        keep[i] = true;
        for (size_t j = i + 1; keep[i] && !ops[i].prefix && j < n; j++)
            if (ops[j].prefix ? has_prefix(ek[i], ek[j]) : strcmp(ek[i], ek[j]) == 0)
                keep[i] = false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!ops[i].prefix && ops[i].expect >= 0) {
            if (op->first_expect == NULL)
                op->first_expect = strdup(ops[i].key);
            if (ops[i].expect == 0)
                cp_etxn_cmp(t, ek[i], CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, 0);
            else
                cp_etxn_cmp(t, ek[i], CP_ETCD_CMP_MOD, CP_ETCD_CMP_EQUAL, ops[i].expect);
        }
        op->versions[i] = ops[i].value != NULL ? 1 : 0; /* set to the revision on success */
        if (!keep[i])
            continue;
        if (ops[i].prefix) {
            size_t ns = 0;
            for (size_t j = i + 1; j < n; j++)
                if (keep[j] && !ops[j].prefix && ops[j].value != NULL && has_prefix(ek[j], ek[i]))
                    skip[ns++] = ek[j];
            if (ns > 1)
                qsort(skip, ns, sizeof(*skip), cmp_cstr);
            char end[CP_KEYS_DOC_MAX];
            size_t en;
            if (cp_keys_range_end(ek[i], strlen(ek[i]), end, sizeof(end), &en) != SB_OK)
                t->failed = true;
            else
                cp_etxn_del_except(t, ek[i], end, en, skip, ns);
        } else if (ops[i].value == NULL) {
            cp_etxn_del(t, ek[i], false);
        } else {
            cp_etxn_put(t, ek[i], ops[i].value, strlen(ops[i].value), 0);
        }
    }
}

/* Normalises the ops into one txn (at most DOC_MAX_OPS ops, DOC_MAX_TXN_OPS etcd ops). */
static void docwrite_read(struct cp_estore *s, struct cp_eop *o)
{
    struct docwrite_op *op = (struct docwrite_op *)o;
    const struct cp_doc_op *ops = op->ops;
    size_t n = op->n;
    struct cp_status st;
    cp_status_ok(&st);
    if (n == 0 || n > DOC_MAX_OPS) {
        if (n > 0)
            cp_status_set(&st, SB_CODE_INVALID_MESSAGE, "a document write takes at most %d ops",
                          DOC_MAX_OPS);
        cp_eop_end(s, o, &st);
        return;
    }
    char **ek = calloc(n, sizeof(*ek));
    bool *keep = calloc(n, sizeof(*keep));
    char **skip = calloc(n, sizeof(*skip));
    op->versions = calloc(n, sizeof(*op->versions));
    bool nomem = ek == NULL || keep == NULL || skip == NULL || op->versions == NULL;
    bool bad = !nomem && !doc_keys(ops, n, ek, &nomem, &st);
    struct cp_etxn t;
    cp_etxn_init(&t);
    if (!nomem && !bad) {
        doc_txn(&t, op, ops, n, ek, keep, skip);
        if (t.ns + 1 > DOC_MAX_TXN_OPS) {
            cp_status_set(&st, SB_CODE_INVALID_MESSAGE,
                          "document write too large: %zu etcd operations (at most %d)", t.ns + 1,
                          DOC_MAX_TXN_OPS);
            bad = true;
        }
    }
    for (size_t i = 0; ek != NULL && i < n; i++)
        free(ek[i]);
    free(ek);
    free(keep);
    free(skip);
    if (nomem || bad) {
        cp_etxn_fini(&t);
        cp_eop_end(s, o, nomem ? &cp_estore_nomem : &st);
        return;
    }
    o->id = op->first_expect ? op->first_expect : "a document";
    cp_eop_write(s, o, &t);
}

/* ---- the operations */

static const struct cp_eop_class read_class = {NULL, NULL, NULL, docread_read, docread_end};

/* A failed expectation answers CONFLICT at once (the caller re-reads); with compares, a marker
 * tells a retried txn that had landed from a real conflict. */
static const struct cp_eop_policy writes = {CP_ECALL_REFUSED | CP_ECALL_MARKER | CP_EOP_BARRIER, 1,
                                            SB_CODE_CONFLICT};

void cp_edoc_get(struct cp_store *st, const char *key, cp_store_doc_fn *cb, void *arg)
{
    struct docread_op op = {.o.arg = arg, .doc_cb = cb, .key = key};
    cp_eop_begin(cp_estore_of(st), &op.o, sizeof(op), &read_class, NULL, NULL);
}

void cp_edoc_list(struct cp_store *st, const char *prefix, cp_store_docs_fn *cb, void *arg)
{
    struct docread_op op = {.o.arg = arg, .docs_cb = cb, .key = prefix, .prefix = true};
    cp_eop_begin(cp_estore_of(st), &op.o, sizeof(op), &read_class, NULL, NULL);
}

void cp_edoc_write(struct cp_store *st, const struct cp_doc_op *ops, size_t n,
                   cp_store_write_fn *cb, void *arg)
{
    static const struct cp_eop_class c = {&writes, "document write", "%s changed concurrently",
                                          docwrite_read, docwrite_end};
    struct docwrite_op op = {.o.arg = arg, .cb = cb, .ops = ops, .n = n};
    cp_eop_begin(cp_estore_of(st), &op.o, sizeof(op), &c, NULL, NULL);
}
