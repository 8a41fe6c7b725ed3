/* etcd calls of the etcd Store answered on the owner thread: each answer is copied on the etcd
 * thread and posted through the handoff, then read there once for every kind of call (raw,
 * txn, range, lease); and waits on the revision barrier. */
#include "cp_estore_int.h"

#include <stdlib.h>
#include <string.h>

#include "cp_keys.h"
#include "sb_log.h"

enum kind { RAW, TXN, RANGE, LEASE };

struct ecall {
    struct cp_estore *s;
    enum kind kind;
    union {
        cp_ecall_fn *raw;
        cp_ecall_txn_fn *txn;
        cp_ecall_range_fn *range;
        cp_ecall_lease_fn *lease;
    } fn;
    void *ud;
    unsigned flags;   /* TXN: CP_ECALL_* */
    const char *what; /* TXN, RANGE */
    enum sb_err st;
    char *body;
    size_t len;
};

/* What a txn that did not answer (or answered what we cannot read) tells its caller. */
static void txn_failed(const struct ecall *c, const char *body, size_t len, struct cp_status *st)
{
    struct cp_etcd_error er;
    if (!(c->flags & CP_ECALL_REFUSED) || c->st != SB_EPROTO) {
        cp_estore_unavailable(st, c->what);
    } else if (cp_etcd_json_parse_error(body, len, &er) == SB_OK) {
        /* etcd refused the request itself: a bug of ours (keys, sizes). */
        cp_status_set(st, SB_CODE_INTERNAL, "etcd refused the %s: %s", c->what, er.message);
        cp_etcd_json_error_fini(&er);
    } else {
        cp_status_set(st, SB_CODE_INTERNAL, "etcd refused the %s", c->what);
    }
}

static void deliver_txn(struct ecall *c, const char *body, size_t len)
{
    struct cp_etxn_answer a;
    struct cp_status st;
    cp_etxn_answer_parse(c->st, body, len, (c->flags & CP_ECALL_MARKER) != 0, &a);
    cp_status_ok(&st);
    if (a.outcome == CP_ETXN_UNKNOWN)
        txn_failed(c, body, len, &st);
    else if (a.by_marker)
        SB_LOG_INFO("cp", "a write was retried after it landed: answered from its marker",
                    "revision=%lld", (long long)a.revision);
    c->fn.txn(c->s, c->ud, &a, &st);
    cp_etxn_answer_fini(&a);
}

static void deliver_range(struct ecall *c, const char *body, size_t len)
{
    struct cp_etcd_result r;
    struct cp_status st;
    if (c->st == SB_OK && cp_etcd_json_parse_result(body, len, &r) == SB_OK) {
        cp_status_ok(&st);
        c->fn.range(c->s, c->ud, &r, &st);
        cp_etcd_json_result_fini(&r);
        return;
    }
    cp_estore_unavailable(&st, c->what);
    c->fn.range(c->s, c->ud, NULL, &st);
}

/* err: SB_EPROTO for an unreadable answer. */
static void deliver_lease(struct ecall *c, const char *body, size_t len)
{
    struct cp_etcd_lease l;
    enum sb_err err = c->st;
    if (err == SB_OK && cp_etcd_json_parse_lease(body, len, &l) != SB_OK)
        err = SB_EPROTO;
    c->fn.lease(c->s, c->ud, err, err == SB_OK ? &l : NULL);
    if (err == SB_OK)
        cp_etcd_json_lease_fini(&l);
}

static void deliver(struct ecall *c)
{
    const char *body = c->body ? c->body : "";
    switch (c->kind) {
    case RAW:
        c->fn.raw(c->s, c->ud, c->st, body, c->len);
        break;
    case TXN:
        deliver_txn(c, body, c->len);
        break;
    case RANGE:
        deliver_range(c, body, c->len);
        break;
    case LEASE:
        deliver_lease(c, body, c->len);
        break;
    }
}

static void run(void *arg)
{
    struct ecall *c = arg;
    deliver(c);
    free(c->body);
    free(c);
}

/* On the etcd thread. */
static void etcd_cb(void *ud, enum sb_err status, long http, const char *body, size_t len)
{
    struct ecall *c = ud;
    c->st = status;
    if (len > 0) {
        c->body = malloc(len + 1);
        if (c->body == NULL) {
            c->st = SB_ENOMEM;
        } else {
            memcpy(c->body, body, len);
            c->body[len] = '\0';
            c->len = len;
        }
    }
    if (cp_handoff_post(c->s->h, run, c) != SB_OK) {
        /* Cannot reach the owner: nothing safe to do but drop it (logged). */
        SB_LOG_ERROR("cp", "etcd answer lost: out of memory", NULL);
        free(c->body);
        free(c);
    }
}

/* POSTs json (taken) for the call described by `proto`. */
static void submit(const struct ecall *proto, const char *path, char *json)
{
    struct cp_estore *s = proto->s;
    struct ecall *c = json != NULL ? malloc(sizeof(*c)) : NULL;
    if (c == NULL) {
        free(json);
        struct ecall now = *proto;
        now.st = SB_ENOMEM;
        deliver(&now);
        return;
    }
    *c = *proto;
    enum sb_err err = cp_etcd_call(s->e, path, json, s->timeout_ms, CP_ETCD_RETRY, etcd_cb, c);
    free(json);
    if (err != SB_OK) {
        c->st = err;
        if (cp_handoff_post(s->h, run, c) != SB_OK) {
            deliver(c);
            free(c);
        }
    }
}

void cp_ecall(struct cp_estore *s, const char *path, char *json, cp_ecall_fn *fn, void *ud)
{
    submit(&(struct ecall){.s = s, .kind = RAW, .fn.raw = fn, .ud = ud}, path, json);
}

void cp_ecall_txn(struct cp_estore *s, struct cp_etxn *t, unsigned flags, const char *what,
                  cp_ecall_txn_fn *fn, void *ud)
{
    if ((flags & CP_ECALL_MARKER) && t->nc > 0) {
        /* Unique per replica (s->txn_marker starts from the clock), on the short lease; a txn
         * without compares cannot lose, so it needs none. */
        char k[CP_KEYS_MAX];
        if (cp_keys_txn(s->id, s->txn_marker++, k, sizeof(k)) != SB_OK)
            t->failed = true;
        else
            cp_etxn_marker(t, k, s->idem_lease != 0 ? s->idem_lease : s->lease);
    }
    struct ecall c = {.s = s, .kind = TXN, .fn.txn = fn, .ud = ud, .flags = flags, .what = what};
    submit(&c, CP_ETCD_PATH_TXN, cp_etxn_json(t));
}

void cp_ecall_range(struct cp_estore *s, const struct cp_etcd_range_req *q, const char *what,
                    cp_ecall_range_fn *fn, void *ud)
{
    char *json = NULL;
    cp_etcd_json_range(q, &json);
    submit(&(struct ecall){.s = s, .kind = RANGE, .fn.range = fn, .ud = ud, .what = what},
           CP_ETCD_PATH_RANGE, json);
}

void cp_ecall_put(struct cp_estore *s, const char *key, const char *val, size_t vlen, int64_t lease,
                  cp_ecall_fn *fn, void *ud)
{
    struct cp_etcd_put_req p = {.key = cp_etcd_json_str(key), .value = {val, vlen}, .lease = lease};
    char *json = NULL;
    cp_etcd_json_put(&p, &json);
    cp_ecall(s, CP_ETCD_PATH_PUT, json, fn, ud);
}

void cp_ecall_grant(struct cp_estore *s, int64_t ttl_s, cp_ecall_lease_fn *fn, void *ud)
{
    char *json = NULL;
    cp_etcd_json_lease_grant(ttl_s, 0, &json);
    submit(&(struct ecall){.s = s, .kind = LEASE, .fn.lease = fn, .ud = ud}, CP_ETCD_PATH_GRANT,
           json);
}

void cp_ecall_keepalive(struct cp_estore *s, int64_t id, cp_ecall_lease_fn *fn, void *ud)
{
    char *json = NULL;
    cp_etcd_json_lease_id(id, &json);
    submit(&(struct ecall){.s = s, .kind = LEASE, .fn.lease = fn, .ud = ud}, CP_ETCD_PATH_KEEPALIVE,
           json);
}

void cp_ecall_ignore(struct cp_estore *s, void *ud, enum sb_err e, const char *body, size_t len)
{
    if (e != SB_OK)
        SB_LOG_DEBUG("cp", "etcd write failed", "what=%s err=%s", (const char *)ud, sb_err_str(e));
}

void cp_ecall_revoke(struct cp_estore *s, int64_t id, const char *what)
{
    char *json = NULL;
    cp_etcd_json_lease_id(id, &json);
    cp_ecall(s, CP_ETCD_PATH_REVOKE, json, cp_ecall_ignore, (void *)what);
}

/* ---- the barrier */

struct after {
    struct cp_estore *s;
    cp_ecall_after_fn *fn;
    void *ud;
};

static void after_run(void *arg, bool ok)
{
    struct after *a = arg;
    a->fn(a->s, a->ud, ok);
    free(a);
}

void cp_ecall_after(struct cp_estore *s, int64_t rev, cp_ecall_after_fn *fn, void *ud)
{
    struct after *a = malloc(sizeof(*a));
    if (a == NULL) {
        fn(s, ud, false);
        return;
    }
    *a = (struct after){s, fn, ud};
    if (cp_barrier_wait(&s->barrier, rev, cp_estore_mono(s), after_run, a) != SB_OK) {
        free(a);
        fn(s, ud, false);
    }
}
