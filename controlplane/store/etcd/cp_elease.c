/* Leases of the etcd Store: this replica's (kept alive, sb/cp/<id> under it, re-granted when
 * lost), the shared idempotency lease (never kept alive, rotated), the presence leader claim,
 * and the nodes' (Adopt: kept alive here while the node is linked, sb/nodes/<node> and its
 * connection records under it). */
#include "cp_estore_int.h"

#include <stdlib.h>
#include <string.h>

#include "cp_ecodec.h"
#include "cp_keys.h"
#include "sb_log.h"

struct nodelease {
    char *node_id;
    char *address;
    int64_t lease;
    struct cp_etcd_keepalive *ka;
};

static void nodelease_free(void *p)
{
    struct nodelease *nl = p;
    free(nl->node_id);
    free(nl->address);
    free(nl);
}

/* ---- this replica */

struct lost {
    struct cp_estore *s;
    int64_t id;
};

static void replica_lost(struct cp_estore *s, int64_t id)
{
    SB_LOG_WARN("cp", "replica lease lost: sequencing and leadership dropped, re-granting",
                "lease=%lld", (long long)id);
    s->lease = 0;
    s->is_leader = false;
    cp_eseq_drop_all(s);
    if (s->lease_ka != NULL)
        cp_etcd_keepalive_close(s->lease_ka, NULL, NULL);
    s->lease_ka = NULL;
    cp_elease_replica_start(s);
}

static void node_lost(struct cp_estore *s, int64_t id)
{
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&s->leases, &it);
    while ((e = sb_map_iter_next(&s->leases, &it)) != NULL) {
        struct nodelease *nl = e->value;
        if (nl->lease != id)
            continue;
        char *node = strdup(nl->node_id);
        cp_store_etcd_release(&s->base, nl->node_id, false);
        SB_LOG_WARN("cp", "node lease lost", "node=%s lease=%lld", node ? node : "-",
                    (long long)id);
        if (node != NULL && s->hooks.node_lease_lost != NULL)
            s->hooks.node_lease_lost(s->hooks.ud, node);
        free(node);
        return;
    }
}

static void lease_lost_run(void *arg)
{
    struct lost *l = arg;
    struct cp_estore *s = l->s;
    int64_t id = l->id;
    free(l);
    if (s->stopped)
        return;
    if (id == s->lease)
        replica_lost(s, id);
    else
        node_lost(s, id);
}

/* On the etcd thread. */
static void lease_lost_cb(void *ud, int64_t id)
{
    struct lost *l = malloc(sizeof(*l));
    if (l == NULL)
        return;
    l->s = ud;
    l->id = id;
    if (cp_handoff_post(l->s->h, lease_lost_run, l) != SB_OK)
        free(l);
}

static struct cp_etcd_keepalive *keep(struct cp_estore *s, int64_t lease)
{
    struct cp_etcd_keepalive *ka = NULL;
    if (cp_etcd_keepalive_start(s->e, lease, s->ttl_s, lease_lost_cb, s, &ka) != SB_OK)
        ka = NULL;
    return ka;
}

static void cp_put_answer(struct cp_estore *s, void *ud, enum sb_err e, const char *body,
                          size_t len)
{
    if (e != SB_OK) {
        SB_LOG_WARN("cp", "cannot register this replica in etcd", "err=%s", sb_err_str(e));
        cp_estore_open_fail(s, e);
        return;
    }
    cp_estore_open_step(s);
    cp_elease_claim_leader(s);
}

static void replica_grant_answer(struct cp_estore *s, void *ud, enum sb_err e,
                                 const struct cp_etcd_lease *l)
{
    s->lease_renewing = false;
    if (e != SB_OK || l->id == 0) {
        SB_LOG_WARN("cp", "cannot grant the replica lease", "err=%s", sb_err_str(e));
        cp_estore_open_fail(s, e != SB_OK ? e : SB_EPROTO);
        return; /* the tick retries */
    }
    s->lease = l->id;
    s->lease_ka = keep(s, s->lease);
    char k[CP_KEYS_MAX];
    cp_keys_cp(s->id, k, sizeof(k));
    cp_ecall_put(s, k, s->advertise, strlen(s->advertise), s->lease, cp_put_answer, NULL);
}

void cp_elease_replica_start(struct cp_estore *s)
{
    if (s->lease_renewing || s->stopped)
        return;
    s->lease_renewing = true;
    cp_ecall_grant(s, s->ttl_s, replica_grant_answer, NULL);
}

static void leader_answer(struct cp_estore *s, void *ud, const struct cp_etxn_answer *a,
                          const struct cp_status *st)
{
    s->claiming_leader = false;
    if (a->outcome == CP_ETXN_UNKNOWN)
        SB_LOG_DEBUG("cp", "presence leader claim failed", "err=%s", sb_err_str(a->err));
}

void cp_elease_claim_leader(struct cp_estore *s)
{
    if (s->leader != NULL || s->relisting || s->claiming_leader || s->lease == 0 || s->stopped)
        return;
    char k[CP_KEYS_MAX];
    cp_keys_leader(CP_KEYS_ROLE_PRESENCE, k, sizeof(k));
    struct cp_etxn t;
    cp_etxn_init(&t);
    cp_etxn_cmp(&t, k, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, 0);
    cp_etxn_put(&t, k, s->id, strlen(s->id), s->lease);
    s->claiming_leader = true;
    cp_ecall_txn(s, &t, 0, "leader claim", leader_answer, NULL);
}

/* ---- the idempotency lease */

static void idem_grant_answer(struct cp_estore *s, void *ud, enum sb_err e,
                              const struct cp_etcd_lease *l)
{
    s->idem_granting = false;
    if (e != SB_OK) {
        cp_estore_open_fail(s, e);
        return; /* the tick retries */
    }
    if (l->id != 0) {
        s->idem_lease = l->id;
        s->idem_lease_at = cp_estore_mono(s);
        cp_estore_open_step(s);
    }
}

void cp_elease_idem_rotate(struct cp_estore *s, int64_t now)
{
    if (s->idem_granting ||
        (s->idem_lease != 0 && now - s->idem_lease_at <= CP_ESTORE_IDEM_ROTATE_MS))
        return;
    s->idem_granting = true;
    cp_ecall_grant(s, CP_ESTORE_IDEM_LEASE_S, idem_grant_answer, NULL);
}

/* ---- nodes */

struct adopt_op {
    struct cp_eop o; /* first */
    const char *node_id;
    const char *address;
    int64_t lease;
    cp_cluster_adopt_fn *cb;
    bool renewed;
};

static void adopt_end(struct cp_estore *s, struct cp_eop *o, const struct cp_status *st,
                      bool synced)
{
    struct adopt_op *op = (struct adopt_op *)o;
    bool ok = st->code == SB_CODE_NONE;
    op->cb(o->arg, st, ok ? op->lease : 0, ok && op->renewed);
}

static void adopt_unavailable(struct cp_estore *s, struct adopt_op *op, const char *what)
{
    struct cp_status st;
    cp_estore_unavailable(&st, what);
    cp_eop_end(s, &op->o, &st);
}

static void adopt_put_answer(struct cp_estore *s, void *ud, enum sb_err e, const char *body,
                             size_t len)
{
    struct adopt_op *op = ud;
    struct cp_status st;
    cp_status_ok(&st);
    if (e != SB_OK)
        adopt_unavailable(s, op, "node registration");
    else
        cp_eop_end(s, &op->o, &st);
}

/* Keeps op->lease (replacing a different lease kept for the node) and writes the record. */
static void adopt_finish(struct cp_estore *s, struct adopt_op *op)
{
    struct nodelease *nl = sb_map_get(&s->leases, op->node_id);
    if (nl != NULL && nl->lease != op->lease) {
        cp_store_etcd_release(&s->base, op->node_id, false);
        nl = NULL;
    }
    if (nl == NULL) {
        nl = calloc(1, sizeof(*nl));
        if (nl == NULL || (nl->node_id = strdup(op->node_id)) == NULL ||
            (nl->address = strdup(op->address)) == NULL ||
            sb_map_put(&s->leases, op->node_id, nl) != SB_OK) {
            if (nl != NULL)
                nodelease_free(nl);
            cp_eop_end(s, &op->o, &cp_estore_nomem);
            return;
        }
        nl->lease = op->lease;
        nl->ka = keep(s, nl->lease);
    }
    char k[CP_KEYS_MAX];
    cp_keys_node(op->node_id, k, sizeof(k));
    char *v = cp_ecodec_node_json(op->address, sb_time_now_ms(), 0);
    if (v == NULL) {
        adopt_put_answer(s, op, SB_ENOMEM, "", 0);
        return;
    }
    cp_ecall_put(s, k, v, strlen(v), op->lease, adopt_put_answer, op);
    free(v);
}

static void adopt_grant_answer(struct cp_estore *s, void *ud, enum sb_err e,
                               const struct cp_etcd_lease *l)
{
    struct adopt_op *op = ud;
    if (e != SB_OK || l->id == 0) {
        adopt_unavailable(s, op, "node lease grant");
        return;
    }
    op->lease = l->id;
    op->renewed = true;
    adopt_finish(s, op);
}

static void adopt_keep_answer(struct cp_estore *s, void *ud, enum sb_err e,
                              const struct cp_etcd_lease *l)
{
    struct adopt_op *op = ud;
    if (e == SB_OK && l->ttl > 0) {
        op->renewed = false;
        adopt_finish(s, op);
    } else if (e != SB_OK && e != SB_EPROTO) {
        adopt_unavailable(s, op, "node lease keep-alive");
    } else {
        /* Gone (no TTL, or "lease not found"): a new one. */
        cp_ecall_grant(s, s->ttl_s, adopt_grant_answer, op);
    }
}

/* The node's lease when it still lives, else a new one. */
static void adopt_read(struct cp_estore *s, struct cp_eop *o)
{
    struct adopt_op *op = (struct adopt_op *)o;
    if (op->lease != 0)
        cp_ecall_keepalive(s, op->lease, adopt_keep_answer, op);
    else
        cp_ecall_grant(s, s->ttl_s, adopt_grant_answer, op);
}

void cp_store_etcd_adopt(struct cp_store *st, const char *node_id, const char *address,
                         int64_t lease_id, cp_cluster_adopt_fn *cb, void *arg)
{
    static const struct cp_eop_class c = {NULL, NULL, NULL, adopt_read, adopt_end};
    struct adopt_op op = {.o.arg = arg,
                          .cb = cb,
                          .node_id = node_id,
                          .address = address ? address : "",
                          .lease = lease_id};
    cp_eop_begin(cp_estore_of(st), &op.o, sizeof(op), &c, &op.node_id, &op.address);
}

int64_t cp_store_etcd_node_lease(const struct cp_store *st, const char *node_id)
{
    struct nodelease *nl = sb_map_get(&cp_estore_of_const(st)->leases, node_id);
    return nl ? nl->lease : 0;
}

void cp_store_etcd_release(struct cp_store *st, const char *node_id, bool revoke)
{
    struct cp_estore *s = cp_estore_of(st);
    struct nodelease *nl = sb_map_remove(&s->leases, node_id);
    if (nl == NULL)
        return;
    if (nl->ka != NULL)
        cp_etcd_keepalive_close(nl->ka, NULL, NULL);
    if (revoke && !s->stopped)
        cp_ecall_revoke(s, nl->lease, "lease revoke");
    nodelease_free(nl);
}

void cp_store_etcd_heartbeat(struct cp_store *st, const char *node_id, const char *address,
                             int64_t connections)
{
    struct cp_estore *s = cp_estore_of(st);
    struct nodelease *nl = sb_map_get(&s->leases, node_id);
    if (nl == NULL || s->stopped)
        return;
    char k[CP_KEYS_MAX];
    cp_keys_node(node_id, k, sizeof(k));
    char *v = cp_ecodec_node_json(address ? address : nl->address, sb_time_now_ms(), connections);
    if (v == NULL)
        return;
    cp_ecall_put(s, k, v, strlen(v), nl->lease, cp_ecall_ignore, "node heartbeat");
    free(v);
}

/* ---- connection records */

struct conn_op {
    struct cp_eop o; /* first */
    /* the caller's: first read only */
    const char *node_id, *user_id, *conn_id;
    const char *session_id, *transport; /* NULL: a delete */
    int64_t connected_at;
    cp_cluster_done_fn *cb;
};

static void conn_end(struct cp_estore *s, struct cp_eop *o, const struct cp_status *st, bool synced)
{
    struct conn_op *op = (struct conn_op *)o;
    op->cb(o->arg, st);
}

static void conn_answer(struct cp_estore *s, void *ud, enum sb_err e, const char *body, size_t len)
{
    struct conn_op *op = ud;
    int64_t rev = 0;
    struct cp_status st;
    if (e == SB_OK && cp_etcd_json_parse_revision(body, len, &rev) == SB_OK) {
        cp_eop_sync(s, &op->o, rev);
        return;
    }
    cp_estore_unavailable(&st, "connection record");
    cp_eop_end(s, &op->o, &st);
}

/* A put under the node's lease (which this replica must keep), or a delete. */
static void conn_read(struct cp_estore *s, struct cp_eop *o)
{
    struct conn_op *op = (struct conn_op *)o;
    struct cp_status st;
    struct nodelease *nl = sb_map_get(&s->leases, op->node_id);
    char k[CP_KEYS_MAX];
    cp_status_ok(&st);
    if (op->session_id != NULL && nl == NULL)
        cp_status_set(&st, SB_CODE_UNAVAILABLE, "node %s has no lease on this control plane",
                      op->node_id);
    else if (cp_keys_conn(op->node_id, op->user_id, op->conn_id, k, sizeof(k)) != SB_OK)
        cp_status_set(&st, SB_CODE_INVALID_MESSAGE, "connection or user id is not valid");
    if (st.code != SB_CODE_NONE) {
        cp_eop_end(s, o, &st);
        return;
    }
    if (op->session_id == NULL) {
        struct cp_etcd_delete_req d = {.key = cp_etcd_json_str(k)};
        char *json = NULL;
        cp_etcd_json_delete(&d, &json);
        cp_ecall(s, CP_ETCD_PATH_DELETE, json, conn_answer, op);
        return;
    }
    char *v = cp_ecodec_conn_json(op->session_id, op->transport, op->connected_at);
    if (v == NULL) {
        cp_eop_end(s, o, &cp_estore_nomem);
        return;
    }
    cp_ecall_put(s, k, v, strlen(v), nl->lease, conn_answer, op);
    free(v);
}

static const struct cp_eop_class conn_class = {NULL, NULL, NULL, conn_read, conn_end};

void cp_store_etcd_conn_put(struct cp_store *st, const char *node_id, const char *user_id,
                            const char *conn_id, const char *session_id, const char *transport,
                            int64_t connected_at, cp_cluster_done_fn *cb, void *arg)
{
    struct conn_op op = {.o.arg = arg,
                         .cb = cb,
                         .node_id = node_id,
                         .user_id = user_id,
                         .conn_id = conn_id,
                         .session_id = session_id ? session_id : "",
                         .transport = transport ? transport : "",
                         .connected_at = connected_at};
    cp_eop_begin(cp_estore_of(st), &op.o, sizeof(op), &conn_class, NULL, NULL);
}

void cp_store_etcd_conn_delete(struct cp_store *st, const char *node_id, const char *user_id,
                               const char *conn_id, cp_cluster_done_fn *cb, void *arg)
{
    struct conn_op op = {
        .o.arg = arg, .cb = cb, .node_id = node_id, .user_id = user_id, .conn_id = conn_id};
    cp_eop_begin(cp_estore_of(st), &op.o, sizeof(op), &conn_class, NULL, NULL);
}

void cp_elease_fini(struct cp_estore *s)
{
    cp_estore_map_fini(&s->leases, nodelease_free);
}
