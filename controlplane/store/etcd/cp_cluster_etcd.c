/* The etcd store seen through the cluster interface (see cp_cluster_etcd.h). */
#include "cp_cluster_etcd.h"

#include <stdlib.h>

struct ecluster {
    struct cp_cluster base;
    struct cp_store *store;
};

#define STORE(cl) (((const struct ecluster *)(cl))->store)

static bool is_leader(const struct cp_cluster *cl)
{
    return cp_store_etcd_is_presence_leader(STORE(cl));
}

static const char *peer_address(const struct cp_cluster *cl, const char *cp_id)
{
    return cp_store_etcd_cp_address(STORE(cl), cp_id);
}

static int64_t room_count(const struct cp_cluster *cl)
{
    return (int64_t)cp_store_etcd_room_count(STORE(cl));
}

static bool nodes(const struct cp_cluster *cl, cp_cluster_node_fn *fn, void *arg)
{
    cp_store_etcd_nodes(STORE(cl), fn, arg);
    return true;
}

static void adopt(struct cp_cluster *cl, const char *node_id, const char *address, int64_t lease_id,
                  cp_cluster_adopt_fn *cb, void *arg)
{
    cp_store_etcd_adopt(STORE(cl), node_id, address, lease_id, cb, arg);
}

static int64_t node_lease(const struct cp_cluster *cl, const char *node_id)
{
    return cp_store_etcd_node_lease(STORE(cl), node_id);
}

static void release(struct cp_cluster *cl, const char *node_id, bool revoke)
{
    cp_store_etcd_release(STORE(cl), node_id, revoke);
}

static void heartbeat(struct cp_cluster *cl, const char *node_id, const char *address,
                      int64_t connections)
{
    cp_store_etcd_heartbeat(STORE(cl), node_id, address, connections);
}

static void conn_put(struct cp_cluster *cl, const char *node_id, const char *user_id,
                     const char *conn_id, const char *session_id, const char *transport,
                     int64_t connected_at, cp_cluster_done_fn *cb, void *arg)
{
    cp_store_etcd_conn_put(STORE(cl), node_id, user_id, conn_id, session_id, transport,
                           connected_at, cb, arg);
}

static void conn_delete(struct cp_cluster *cl, const char *node_id, const char *user_id,
                        const char *conn_id, cp_cluster_done_fn *cb, void *arg)
{
    cp_store_etcd_conn_delete(STORE(cl), node_id, user_id, conn_id, cb, arg);
}

static void tick(struct cp_cluster *cl, int64_t mono_ms)
{
    cp_store_etcd_tick(STORE(cl), mono_ms);
}

static const struct cp_cluster_ops etcd_ops = {
    is_leader, peer_address, room_count, nodes,       adopt, node_lease,
    release,   heartbeat,    conn_put,   conn_delete, tick,
};

struct cp_cluster *cp_cluster_etcd_create(struct cp_store *store)
{
    struct ecluster *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->base.ops = &etcd_ops;
    e->store = store;
    return &e->base;
}

void cp_cluster_etcd_destroy(struct cp_cluster *cl)
{
    free(cl);
}
