/* switchboard.v1.Connections: GetStats (connections, online users, rooms and the data-plane
 * nodes with their last heartbeat: memory mode reports the nodes linked to this replica, etcd
 * mode every node registered in sb/nodes/, whichever replica keeps its lease), KickConnection
 * and ListConnections. WatchEvents is cp_watch.c. */
#include "cp_rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_channels.h"
#include "cp_keys.h"
#include "cp_rooms.h"
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

static void cluster_node(void *arg, const struct cp_cluster_node *n)
{
    struct stats *st = arg;
    struct cp_node *local = sb_map_get(&st->c->nodes, n->id);
    /* Count the connections the cache holds for the node (the node's own figure lags). */
    int64_t conns = 0;
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&st->c->presence.conns, &it);
    while ((e = sb_map_iter_next(&st->c->presence.conns, &it)) != NULL) {
        struct cp_conn *cn = e->value;
        if (cn->node_id != NULL && strcmp(cn->node_id, n->id) == 0)
            conns++;
    }
    add_node(st, n->id, n->address, conns, n->last_heartbeat,
             local ? local->messages_delivered : 0);
}

static void count_node(void *arg, const struct cp_cluster_node *n)
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
    /* The cluster's node registry when it has one, else the nodes linked here. */
    bool registry = c->cluster->ops->nodes(c->cluster, count_node, &st.cap);
    if (!registry)
        st.cap = c->nodes.count;
    st.infos = st.cap ? calloc(st.cap, sizeof(*st.infos)) : NULL;
    st.ptrs = st.cap ? calloc(st.cap, sizeof(*st.ptrs)) : NULL;
    if (st.cap > 0 && (st.infos == NULL || st.ptrs == NULL)) {
        free(st.infos);
        free(st.ptrs);
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    if (registry) {
        c->cluster->ops->nodes(c->cluster, cluster_node, &st);
    } else {
        struct sb_map_iter it;
        struct sb_map_entry *e;
        sb_map_iter_init(&c->nodes, &it);
        while ((e = sb_map_iter_next(&c->nodes, &it)) != NULL) {
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
    resp.messages_delivered = c->fan.messages_delivered;
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
    int64_t rooms = c->cluster->ops->room_count(c->cluster);
    if (rooms >= 0) {
        reply(c, rc->call, rooms, n);
        free(rc);
        return;
    }
    struct cp_room_query q = {.include_archived = true, .limit = 1 << 30};
    cp_rooms_list(c, &q, rooms_listed, rc);
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

/* ---------------------------------------------------------------- KickConnection */

#define MAX_REASON 256

void cp_rpc_connections_kick(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__KickConnectionRequest *req = (const void *)m;
    if (!cp_check_id(call, "connection_id", req->connection_id) ||
        !cp_check_text(call, "reason", req->reason, MAX_REASON))
        return;
    struct cp_conn *conn = cp_presence_conn(&c->presence, req->connection_id);
    if (conn == NULL) {
        cp_call_failf(call, SB_CODE_CONNECTION_NOT_FOUND, "connection %s is not open",
                      req->connection_id);
        return;
    }
    const char *reason = req->reason != NULL && req->reason[0] != '\0' ? req->reason : "kicked";
    if (!cp_fanout_kick(&c->fan, conn, reason)) {
        cp_call_failf(call, SB_CODE_UNAVAILABLE,
                      "the node of connection %s is not linked to this control plane",
                      req->connection_id);
        return;
    }
    Switchboard__V1__KickConnectionResponse resp = SWITCHBOARD__V1__KICK_CONNECTION_RESPONSE__INIT;
    cp_call_reply(call, &resp.base);
}

/* ---------------------------------------------------------------- ListConnections */

/* A snapshot of the matching connections, then per distinct user its rooms (Store) and
 * channels (documents `user_subs/<user>/<channel>` of the channel flows), one Store call at a
 * time. */
struct lconn {
    char *id, *user_id, *session_id, *node_id, *transport;
    int64_t connected_at, last_activity;
    size_t user; /* index into users */
};

struct luser {
    const char *id; /* borrowed from the first lconn of the user */
    char **rooms, **channels;
    size_t n_rooms, n_channels;
};

struct list_call {
    struct cp_ctx *c;
    struct cp_call *call;
    struct lconn *conns;
    size_t n_conns;
    struct luser *users;
    size_t n_users;
    size_t step; /* see list_run */
    bool pending, in_run, failed;
    struct cp_status st;
};

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void list_free(struct list_call *lc)
{
    for (size_t i = 0; i < lc->n_conns; i++) {
        struct lconn *x = &lc->conns[i];
        free(x->id);
        free(x->user_id);
        free(x->session_id);
        free(x->node_id);
        free(x->transport);
    }
    for (size_t i = 0; i < lc->n_users; i++) {
        strv_free(lc->users[i].rooms, lc->users[i].n_rooms);
        strv_free(lc->users[i].channels, lc->users[i].n_channels);
    }
    free(lc->conns);
    free(lc->users);
    free(lc);
}

/* By user, then connection id: a user's connections are adjacent. */
static int cmp_conn(const void *a, const void *b)
{
    const struct lconn *x = a, *y = b;
    int r = strcmp(x->user_id, y->user_id);
    return r != 0 ? r : strcmp(x->id, y->id);
}

static void list_reply(struct list_call *lc)
{
    size_t n = lc->n_conns;
    Switchboard__V1__Connection *arr = n ? calloc(n, sizeof(*arr)) : NULL;
    Switchboard__V1__Connection **ptrs = n ? calloc(n, sizeof(*ptrs)) : NULL;
    if (n > 0 && (arr == NULL || ptrs == NULL)) {
        cp_call_failf(lc->call, SB_CODE_INTERNAL, "out of memory");
    } else {
        for (size_t i = 0; i < n; i++) {
            const struct lconn *x = &lc->conns[i];
            const struct luser *u = &lc->users[x->user];
            Switchboard__V1__Connection pc = SWITCHBOARD__V1__CONNECTION__INIT;
            pc.id = x->id;
            pc.user_id = x->user_id;
            pc.session_id = x->session_id;
            pc.node_id = x->node_id;
            pc.transport = x->transport;
            pc.rooms = u->rooms;
            pc.n_rooms = u->n_rooms;
            pc.channels = u->channels;
            pc.n_channels = u->n_channels;
            pc.connected_at = x->connected_at;
            pc.last_activity = x->last_activity;
            arr[i] = pc;
            ptrs[i] = &arr[i];
        }
        Switchboard__V1__ListConnectionsResponse resp =
            SWITCHBOARD__V1__LIST_CONNECTIONS_RESPONSE__INIT;
        resp.connections = ptrs;
        resp.n_connections = n;
        cp_call_reply(lc->call, &resp.base);
    }
    free(arr);
    free(ptrs);
}

static void list_run(struct list_call *lc);

static void list_advance(struct list_call *lc)
{
    lc->pending = false;
    lc->step++;
    if (!lc->in_run) /* answered later: continue here; inline answers loop in list_run */
        list_run(lc);
}

static bool strv_dup(char ***out, size_t *n_out, const char *const *v, size_t n)
{
    *out = NULL;
    *n_out = 0;
    if (n == 0)
        return true;
    char **d = calloc(n, sizeof(*d));
    if (d == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        d[i] = strdup(v[i]);
        if (d[i] == NULL) {
            strv_free(d, i);
            return false;
        }
    }
    *out = d;
    *n_out = n;
    return true;
}

static void rooms_of(void *arg, const struct cp_status *st, const char *const *ids, size_t n)
{
    struct list_call *lc = arg;
    struct luser *u = &lc->users[lc->step];
    if (st->code != SB_CODE_NONE) {
        lc->failed = true;
        lc->st = *st;
    } else if (!strv_dup(&u->rooms, &u->n_rooms, ids, n)) {
        lc->failed = true;
        cp_status_set(&lc->st, SB_CODE_INTERNAL, "out of memory");
    }
    list_advance(lc);
}

/* The user of "user_subs/<user>/<channel>" among lc->users (sorted by id), or NULL. */
static struct luser *sub_owner(struct list_call *lc, const char *key, const char **channel)
{
    const char *user = key + strlen("user_subs/");
    const char *slash = strchr(user, '/');
    if (slash == NULL)
        return NULL;
    size_t len = (size_t)(slash - user);
    size_t lo = 0, hi = lc->n_users;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *id = lc->users[mid].id;
        int r = strncmp(id, user, len);
        if (r == 0 && id[len] != '\0')
            r = 1;
        if (r == 0) {
            *channel = slash + 1;
            return &lc->users[mid];
        }
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Subscriptions of every listed user in one range: count, allocate, fill. */
static void channels_of(void *arg, const struct cp_status *st, const struct cp_doc *docs, size_t n)
{
    struct list_call *lc = arg;
    if (st->code != SB_CODE_NONE) {
        lc->failed = true;
        lc->st = *st;
        list_advance(lc);
        return;
    }
    const char *ch;
    size_t *count = lc->n_users ? calloc(lc->n_users, sizeof(*count)) : NULL;
    bool oom = lc->n_users > 0 && count == NULL;
    for (size_t i = 0; !oom && i < n; i++) {
        struct luser *u = sub_owner(lc, docs[i].key, &ch);
        if (u != NULL)
            count[u - lc->users]++;
    }
    for (size_t k = 0; !oom && k < lc->n_users; k++) {
        if (count[k] > 0 && (lc->users[k].channels = calloc(count[k], sizeof(char *))) == NULL)
            oom = true;
    }
    for (size_t i = 0; !oom && i < n; i++) {
        struct luser *u = sub_owner(lc, docs[i].key, &ch);
        if (u != NULL && (u->channels[u->n_channels++] = strdup(ch)) == NULL)
            oom = true;
    }
    free(count);
    if (oom) {
        lc->failed = true;
        cp_status_set(&lc->st, SB_CODE_INTERNAL, "out of memory");
    }
    list_advance(lc);
}

/* Steps 0 .. n_users-1: each user's rooms (the Store's cache in etcd mode); step n_users: the
 * channels of all of them (one document range: a single user's prefix, or all of user_subs/). */
static void list_run(struct list_call *lc)
{
    lc->in_run = true;
    while (!lc->pending) {
        struct cp_store *s = lc->c->store;
        if (lc->failed || lc->step > lc->n_users ||
            (lc->step == lc->n_users && (lc->n_users == 0 || s->ops->doc_list == NULL))) {
            if (lc->failed)
                cp_call_fail(lc->call, &lc->st);
            else
                list_reply(lc);
            list_free(lc);
            return;
        }
        lc->pending = true;
        if (lc->step < lc->n_users) {
            s->ops->user_rooms(s, lc->users[lc->step].id, rooms_of, lc);
        } else {
            /* one user: that user's subscriptions; else every user's */
            char prefix[CP_KEYS_DOC_KEY_MAX];
            cp_keys_doc_user_sub(prefix, lc->n_users == 1 ? lc->users[0].id : "", NULL);
            s->ops->doc_list(s, prefix, channels_of, lc);
        }
    }
    lc->in_run = false;
}

static char *dup0(const char *s)
{
    return strdup(s != NULL ? s : "");
}

void cp_rpc_connections_list(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__ListConnectionsRequest *req = (const void *)m;
    if (!cp_check_optional_id(call, "user_id", req->user_id) ||
        !cp_check_optional_id(call, "node_id", req->node_id))
        return;
    const char *want_user = req->user_id && req->user_id[0] ? req->user_id : NULL;
    const char *want_node = req->node_id && req->node_id[0] ? req->node_id : NULL;
    struct list_call *lc = calloc(1, sizeof(*lc));
    size_t cap = c->presence.n_conns;
    if (lc == NULL || (cap > 0 && ((lc->conns = calloc(cap, sizeof(*lc->conns))) == NULL ||
                                   (lc->users = calloc(cap, sizeof(*lc->users))) == NULL)))
        goto oom;
    lc->c = c;
    lc->call = call;
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&c->presence.conns, &it);
    while ((e = sb_map_iter_next(&c->presence.conns, &it)) != NULL && lc->n_conns < cap) {
        const struct cp_conn *cn = e->value;
        const char *node = cn->node_id != NULL && cn->node_id[0] ? cn->node_id
                           : cn->node != NULL && cn->node->id    ? cn->node->id
                                                                 : "";
        if ((want_user && strcmp(cn->user->id, want_user) != 0) ||
            (want_node && strcmp(node, want_node) != 0))
            continue;
        struct lconn *x = &lc->conns[lc->n_conns++];
        x->id = dup0(cn->id);
        x->user_id = dup0(cn->user->id);
        x->session_id = dup0(cn->session_id);
        x->node_id = dup0(node);
        x->transport = dup0(cn->transport);
        x->connected_at = cn->connected_at;
        x->last_activity =
            cn->last_activity > cn->connected_at ? cn->last_activity : cn->connected_at;
        if (!x->id || !x->user_id || !x->session_id || !x->node_id || !x->transport)
            goto oom;
    }
    if (lc->n_conns > 1)
        qsort(lc->conns, lc->n_conns, sizeof(*lc->conns), cmp_conn);
    for (size_t i = 0; i < lc->n_conns; i++) {
        if (lc->n_users == 0 || strcmp(lc->users[lc->n_users - 1].id, lc->conns[i].user_id) != 0)
            lc->users[lc->n_users++].id = lc->conns[i].user_id;
        lc->conns[i].user = lc->n_users - 1;
    }
    list_run(lc);
    return;
oom:
    if (lc != NULL)
        list_free(lc);
    cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
}
