/* The one-replica cluster (see cp_cluster.h). */
#include "cp_cluster.h"

#include "sb_time.h"

static bool is_leader(const struct cp_cluster *cl)
{
    (void)cl;
    return true;
}

static const char *peer_address(const struct cp_cluster *cl, const char *cp_id)
{
    (void)cl;
    (void)cp_id;
    return NULL;
}

static int64_t room_count(const struct cp_cluster *cl)
{
    (void)cl;
    return -1;
}

static bool nodes(const struct cp_cluster *cl, cp_cluster_node_fn *fn, void *arg)
{
    (void)cl;
    (void)fn;
    (void)arg;
    return false;
}

/* One replica keeps connections in memory and drops a node's when its stream ends, so a node
 * adopting it (first start, failover back, a stream cut for silence) must always re-send them:
 * the answer is this process's own lease id, always renewed. */
static void adopt(struct cp_cluster *cl, const char *node_id, const char *address, int64_t lease_id,
                  cp_cluster_adopt_fn *cb, void *arg)
{
    (void)node_id;
    (void)address;
    (void)lease_id;
    static int64_t fake_lease;
    if (fake_lease == 0)
        fake_lease =
            (int64_t)(((uint64_t)sb_time_now_ms() << 16) ^ (uint64_t)(uintptr_t)cl) & INT64_MAX;
    struct cp_status st;
    cp_status_ok(&st);
    cb(arg, &st, fake_lease, true);
}

static int64_t node_lease(const struct cp_cluster *cl, const char *node_id)
{
    (void)cl;
    (void)node_id;
    return 0;
}

static void release(struct cp_cluster *cl, const char *node_id, bool revoke)
{
    (void)cl;
    (void)node_id;
    (void)revoke;
}

static void heartbeat(struct cp_cluster *cl, const char *node_id, const char *address,
                      int64_t connections)
{
    (void)cl;
    (void)node_id;
    (void)address;
    (void)connections;
}

static void done_ok(cp_cluster_done_fn *cb, void *arg)
{
    struct cp_status st;
    cp_status_ok(&st);
    cb(arg, &st);
}

static void conn_put(struct cp_cluster *cl, const char *node_id, const char *user_id,
                     const char *conn_id, const char *session_id, const char *transport,
                     int64_t connected_at, cp_cluster_done_fn *cb, void *arg)
{
    (void)cl;
    (void)node_id;
    (void)user_id;
    (void)conn_id;
    (void)session_id;
    (void)transport;
    (void)connected_at;
    done_ok(cb, arg);
}

static void conn_delete(struct cp_cluster *cl, const char *node_id, const char *user_id,
                        const char *conn_id, cp_cluster_done_fn *cb, void *arg)
{
    (void)cl;
    (void)node_id;
    (void)user_id;
    (void)conn_id;
    done_ok(cb, arg);
}

static void tick(struct cp_cluster *cl, int64_t mono_ms)
{
    (void)cl;
    (void)mono_ms;
}

static const struct cp_cluster_ops single_ops = {
    is_leader, peer_address, room_count, nodes,       adopt, node_lease,
    release,   heartbeat,    conn_put,   conn_delete, tick,
};

struct cp_cluster *cp_cluster_single(void)
{
    static struct cp_cluster single = {&single_ops};
    return &single;
}
