/* switchboard.v1.Connections.GetStats: connections, online users, rooms and the data-plane
 * nodes with their last heartbeat. Memory mode reports the nodes linked to this replica; etcd
 * mode every node registered in sb/nodes/ (whichever replica keeps its lease). */
#include "cp_rpc.h"

#include <stdlib.h>
#include <string.h>

#include "cp_channels.h"
#include "cp_store_etcd.h"
#include "switchboard/v1/connections.pb-c.h"

struct stats {
    Switchboard__V1__NodeInfo *infos;
    Switchboard__V1__NodeInfo **ptrs;
    size_t n, cap;
    struct cp_ctx *c;
};

static void add_node(struct stats *st, const char *id, const char *address, int64_t conns,
                     int64_t hb, int64_t delivered)
{
    if (st->n >= st->cap)
        return;
    Switchboard__V1__NodeInfo ni = SWITCHBOARD__V1__NODE_INFO__INIT;
    ni.id = (char *)id;
    ni.address = (char *)(address ? address : "");
    ni.connections = (int32_t)conns;
    ni.last_heartbeat = hb;
    ni.messages_delivered = delivered;
    st->infos[st->n] = ni;
    st->ptrs[st->n] = &st->infos[st->n];
    st->n++;
}

static void etcd_node(void *arg, const struct cp_store_etcd_node *n)
{
    struct stats *st = arg;
    struct cp_node *local = cp_map_get(&st->c->nodes, n->id);
    /* Count the connections the cache holds for the node (the node's own figure lags). */
    int64_t conns = 0;
    struct cp_map_iter it;
    struct cp_map_entry *e;
    cp_map_iter_init(&st->c->presence.conns, &it);
    while ((e = cp_map_iter_next(&st->c->presence.conns, &it)) != NULL) {
        struct cp_conn *cn = e->value;
        if (cn->node_id != NULL && strcmp(cn->node_id, n->id) == 0)
            conns++;
    }
    add_node(st, n->id, n->address, conns, n->last_heartbeat,
             local ? local->messages_delivered : 0);
}

static void count_node(void *arg, const struct cp_store_etcd_node *n)
{
    (void)n;
    (*(size_t *)arg)++;
}

struct rooms_count {
    struct cp_call *call;
    struct cp_ctx *c;
    int64_t channels;
};

static void reply(struct cp_ctx *c, struct cp_call *call, int64_t rooms, int64_t channels)
{
    struct stats st = {0};
    st.c = c;
    if (c->distributed)
        cp_store_etcd_nodes(c->store, count_node, &st.cap);
    else
        st.cap = c->nodes.count;
    st.infos = st.cap ? calloc(st.cap, sizeof(*st.infos)) : NULL;
    st.ptrs = st.cap ? calloc(st.cap, sizeof(*st.ptrs)) : NULL;
    if (st.cap > 0 && (st.infos == NULL || st.ptrs == NULL)) {
        free(st.infos);
        free(st.ptrs);
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    if (c->distributed) {
        cp_store_etcd_nodes(c->store, etcd_node, &st);
    } else {
        struct cp_map_iter it;
        struct cp_map_entry *e;
        cp_map_iter_init(&c->nodes, &it);
        while ((e = cp_map_iter_next(&c->nodes, &it)) != NULL) {
            struct cp_node *n = e->value;
            add_node(&st, n->id, n->address, (int64_t)n->n_conns, n->last_heartbeat,
                     n->messages_delivered);
        }
    }
    Switchboard__V1__Stats resp = SWITCHBOARD__V1__STATS__INIT;
    resp.active_connections = (int64_t)c->presence.n_conns;
    resp.online_users = (int64_t)c->presence.n_online;
    resp.rooms = rooms;
    resp.channels = channels;
    resp.nodes = st.ptrs;
    resp.n_nodes = st.n;
    resp.messages_published = c->messages_published;
    resp.messages_delivered = c->messages_delivered;
    cp_call_reply(call, &resp.base);
    free(st.infos);
    free(st.ptrs);
}

static void rooms_listed(void *arg, const struct cp_status *st, const struct cp_room *const *rooms,
                         size_t n, bool more)
{
    (void)rooms;
    (void)more;
    struct rooms_count *rc = arg;
    if (st->code != SB_CODE_NONE)
        cp_call_fail(rc->call, st);
    else
        reply(rc->c, rc->call, (int64_t)n, rc->channels);
    free(rc);
}

/* Channels are counted first (documents), then rooms. */
static void channels_counted(void *arg, const struct cp_status *st, int64_t n)
{
    struct rooms_count *rc = arg;
    struct cp_ctx *c = rc->c;
    if (st->code != SB_CODE_NONE) {
        cp_call_fail(rc->call, st);
        free(rc);
        return;
    }
    rc->channels = n;
    if (c->distributed) {
        reply(c, rc->call, (int64_t)cp_store_etcd_room_count(c->store), n);
        free(rc);
        return;
    }
    struct cp_room_query q = {.include_archived = true, .limit = 1 << 30};
    c->store->ops->room_list(c->store, &q, rooms_listed, rc);
}

void cp_rpc_connections_stats(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    (void)m;
    struct rooms_count *rc = malloc(sizeof(*rc));
    if (rc == NULL) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    rc->call = call;
    rc->c = c;
    rc->channels = 0;
    cp_channels_count(c, channels_counted, rc);
}
