/* The etcd Store's txn builder and txn answer reading (cp_etxn.h). Pure: every key and value
 * is copied into the builder, so callers may build from stack buffers. */
#include "cp_etxn.h"

#include <stdlib.h>
#include <string.h>

#include "cp_keys.h"

void cp_etxn_init(struct cp_etxn *t)
{
    memset(t, 0, sizeof(*t));
}

void cp_etxn_fini(struct cp_etxn *t)
{
    for (size_t i = 0; i < t->nstr; i++)
        free(t->strs[i]);
    free(t->strs);
    free(t->succ);
    free(t->cmp);
    memset(t, 0, sizeof(*t));
}

/* `arr` (n used of *cap) with room for one more element, doubling from `first`; NULL (and
 * failed) on ENOMEM, arr then unchanged. */
static void *room_for(struct cp_etxn *t, void *arr, size_t n, size_t *cap, size_t size,
                      size_t first)
{
    if (n < *cap)
        return arr;
    size_t nc = *cap ? *cap * 2 : first;
    void *a = realloc(arr, nc * size);
    if (a == NULL) {
        t->failed = true;
        return NULL;
    }
    *cap = nc;
    return a;
}

struct cp_etcd_bytes cp_etxn_bytes(struct cp_etxn *t, const char *p, size_t n)
{
    struct cp_etcd_bytes b = {NULL, 0};
    char **a = room_for(t, t->strs, t->nstr, &t->capstr, sizeof(*a), 16);
    if (a == NULL)
        return b;
    t->strs = a;
    char *d = malloc(n + 1);
    if (d == NULL) {
        t->failed = true;
        return b;
    }
    if (n > 0)
        memcpy(d, p, n);
    d[n] = '\0';
    t->strs[t->nstr++] = d;
    b.p = d;
    b.n = n;
    return b;
}

struct cp_etcd_bytes cp_etxn_str(struct cp_etxn *t, const char *s)
{
    return cp_etxn_bytes(t, s, strlen(s));
}

/* The range_end of `prefix`, kept (failed when it cannot be built). */
static struct cp_etcd_bytes prefix_end(struct cp_etxn *t, const char *prefix)
{
    char end[CP_KEYS_DOC_MAX];
    size_t n;
    if (cp_keys_range_end(prefix, strlen(prefix), end, sizeof(end), &n) != SB_OK) {
        t->failed = true;
        return (struct cp_etcd_bytes){NULL, 0};
    }
    return cp_etxn_bytes(t, end, n);
}

struct cp_etcd_op *cp_etxn_op(struct cp_etxn *t)
{
    struct cp_etcd_op *a = room_for(t, t->succ, t->ns, &t->caps, sizeof(*a), 16);
    if (a == NULL)
        return NULL;
    t->succ = a;
    struct cp_etcd_op *op = &t->succ[t->ns++];
    memset(op, 0, sizeof(*op));
    return op;
}

/* A new zeroed failure op (NULL and failed when the list is full). */
static struct cp_etcd_op *fail_op(struct cp_etxn *t)
{
    if (t->nf >= CP_ETXN_MAX_FAILURE) {
        t->failed = true;
        return NULL;
    }
    struct cp_etcd_op *op = &t->fail[t->nf++];
    memset(op, 0, sizeof(*op));
    return op;
}

void cp_etxn_cmp(struct cp_etxn *t, const char *key, enum cp_etcd_cmp_target target,
                 enum cp_etcd_cmp_result result, int64_t num)
{
    struct cp_etcd_cmp *a = room_for(t, t->cmp, t->nc, &t->capc, sizeof(*a), 8);
    if (a == NULL)
        return;
    t->cmp = a;
    struct cp_etcd_cmp *c = &t->cmp[t->nc++];
    memset(c, 0, sizeof(*c));
    c->key = cp_etxn_str(t, key);
    c->target = target;
    c->result = result;
    c->num = num;
}

void cp_etxn_cmp_value(struct cp_etxn *t, const char *key, const char *value)
{
    cp_etxn_cmp(t, key, CP_ETCD_CMP_VALUE, CP_ETCD_CMP_EQUAL, 0);
    if (!t->failed)
        t->cmp[t->nc - 1].value = cp_etxn_str(t, value);
}

void cp_etxn_put(struct cp_etxn *t, const char *key, const char *val, size_t vlen, int64_t lease)
{
    struct cp_etcd_op *op = cp_etxn_op(t);
    if (op == NULL)
        return;
    op->type = CP_ETCD_OP_PUT;
    op->u.put.key = cp_etxn_str(t, key);
    op->u.put.value = cp_etxn_bytes(t, val, vlen);
    op->u.put.lease = lease;
}

/* A delete of [key, end) (end.p NULL: the key), both already kept. */
static void del_op(struct cp_etxn *t, struct cp_etcd_bytes key, struct cp_etcd_bytes end)
{
    struct cp_etcd_op *op = cp_etxn_op(t);
    if (op == NULL)
        return;
    op->type = CP_ETCD_OP_DELETE;
    op->u.del.key = key;
    op->u.del.range_end = end;
}

void cp_etxn_del(struct cp_etxn *t, const char *key, bool prefix)
{
    struct cp_etcd_bytes k = cp_etxn_str(t, key);
    del_op(t, k, prefix ? prefix_end(t, key) : (struct cp_etcd_bytes){NULL, 0});
}

void cp_etxn_del_range(struct cp_etxn *t, const char *from, size_t from_n, const char *to,
                       size_t to_n)
{
    struct cp_etcd_bytes k = cp_etxn_bytes(t, from, from_n);
    del_op(t, k, cp_etxn_bytes(t, to, to_n));
}

void cp_etxn_del_except(struct cp_etxn *t, const char *from, const char *to, size_t to_n,
                        char *const *skip, size_t n_skip)
{
    struct cp_etcd_bytes lo = cp_etxn_str(t, from);
    for (size_t i = 0; i <= n_skip && !t->failed; i++) {
        struct cp_etcd_bytes hi =
            i < n_skip ? cp_etxn_str(t, skip[i]) : cp_etxn_bytes(t, to, to_n); /* exclusive */
        size_t m = lo.n < hi.n ? lo.n : hi.n;
        int c = memcmp(lo.p, hi.p, m);
        bool empty = c > 0 || (c == 0 && lo.n >= hi.n);
        if (!empty)
            del_op(t, lo, hi);
        if (i < n_skip) /* the key + "\0": just after it */
            lo = cp_etxn_bytes(t, skip[i], strlen(skip[i]) + 1);
    }
}

void cp_etxn_range(struct cp_etxn *t, bool failure, struct cp_etcd_bytes key,
                   struct cp_etcd_bytes end, int64_t limit, bool descend)
{
    struct cp_etcd_op *op = failure ? fail_op(t) : cp_etxn_op(t);
    if (op == NULL)
        return;
    op->type = CP_ETCD_OP_RANGE;
    op->u.range.key = cp_etxn_bytes(t, key.p, key.n);
    if (end.p != NULL)
        op->u.range.range_end = cp_etxn_bytes(t, end.p, end.n);
    op->u.range.limit = limit;
    op->u.range.descend = descend;
}

/* [key, range_end of key) or the key alone, with limit and order. */
static void get_op(struct cp_etxn *t, bool failure, const char *key, bool prefix, int64_t limit,
                   bool descend)
{
    char end[CP_KEYS_DOC_MAX];
    size_t n = 0;
    if (prefix && cp_keys_range_end(key, strlen(key), end, sizeof(end), &n) != SB_OK) {
        t->failed = true;
        return;
    }
    cp_etxn_range(t, failure, cp_etcd_json_str(key), (struct cp_etcd_bytes){prefix ? end : NULL, n},
                  limit, descend);
}

void cp_etxn_get(struct cp_etxn *t, bool failure, const char *key, bool prefix)
{
    get_op(t, failure, key, prefix, 0, false);
}

void cp_etxn_get_tail(struct cp_etxn *t, bool failure, const char *prefix, int64_t limit)
{
    get_op(t, failure, prefix, true, limit, true);
}

void cp_etxn_marker(struct cp_etxn *t, const char *marker_key, int64_t lease)
{
    cp_etxn_put(t, marker_key, "", 0, lease);
    cp_etxn_get(t, true, marker_key, false);
}

char *cp_etxn_json(struct cp_etxn *t)
{
    char *out = NULL;
    if (!t->failed) {
        struct cp_etcd_txn_req r = {t->cmp, t->nc, t->succ, t->ns, t->fail, t->nf};
        if (cp_etcd_json_txn(&r, &out) != SB_OK)
            out = NULL;
    }
    cp_etxn_fini(t);
    return out;
}

/* ---- answers */

const struct cp_etcd_result *cp_etxn_answer_op(const struct cp_etxn_answer *a, size_t i)
{
    return i < a->r.n_ops ? &a->r.ops[i].r : NULL;
}

const struct cp_etcd_kv *cp_etxn_first_kv(const struct cp_etcd_result *r)
{
    return r != NULL && r->n_kvs > 0 ? &r->kvs[0] : NULL;
}

void cp_etxn_answer_parse(enum sb_err status, const char *body, size_t len, bool marker,
                          struct cp_etxn_answer *out)
{
    memset(out, 0, sizeof(*out));
    out->err = status;
    if (status == SB_OK)
        out->err = cp_etcd_json_parse_txn(body, len, &out->r);
    if (out->err != SB_OK)
        return;
    out->revision = out->r.revision;
    out->outcome = out->r.succeeded ? CP_ETXN_APPLIED : CP_ETXN_LOST;
    /* The marker is the only failure op: present means an earlier attempt landed. */
    const struct cp_etcd_kv *kv = cp_etxn_first_kv(cp_etxn_answer_op(out, 0));
    if (marker && !out->r.succeeded && kv != NULL) {
        out->outcome = CP_ETXN_APPLIED;
        out->by_marker = true;
        out->revision = kv->mod_revision;
    }
}

void cp_etxn_answer_fini(struct cp_etxn_answer *a)
{
    if (a->err == SB_OK)
        cp_etcd_json_txn_result_fini(&a->r);
    memset(a, 0, sizeof(*a));
}
