/* Connection flows: a connection opening on a node (a user's first one announces them online)
 * and closing (a user's last one makes them offline after the grace period), a node's stream
 * ending. The registry is fanout/cp_presence; presence is cp_online. */
#include "cp_conns.h"

#include <stdlib.h>
#include <string.h>

#include "cp_online.h"
#include "cp_session.h"
#include "sb_log.h"
#include "sb_time.h"

struct open_op {
    cp_conns_rooms_fn *cb;
    void *arg;
};

static void open_rooms(void *arg, const struct cp_status *st, const char *const *ids, size_t n)
{
    struct open_op *op = arg;
    op->cb(op->arg, st, ids, n);
    free(op);
}

void cp_conns_open(struct cp_ctx *c, struct cp_node *node, const char *conn_id, const char *user_id,
                   const char *session_id, const char *transport, int64_t connected_at,
                   cp_conns_rooms_fn *cb, void *arg)
{
    struct cp_status st;
    bool came_online = false;
    struct open_op *op = malloc(sizeof(*op));
    if (op == NULL ||
        cp_presence_open(&c->presence, conn_id, user_id, session_id, transport, connected_at, node,
                         sb_time_now_ms(), &came_online) != SB_OK) {
        free(op);
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        cb(arg, &st, NULL, 0);
        return;
    }
    if (came_online)
        cp_online_announce(c, cp_presence_user(&c->presence, user_id));
    op->cb = cb;
    op->arg = arg;
    c->store->ops->user_rooms(c->store, user_id, open_rooms, op);
}

void cp_conns_close(struct cp_ctx *c, const char *conn_id)
{
    struct cp_user *u;
    bool last;
    const struct cp_conn *conn = cp_presence_conn(&c->presence, conn_id);
    if (conn != NULL)
        cp_session_closed(c, conn);
    cp_presence_close(&c->presence, conn_id, sb_time_now_ms(), sb_time_mono_ms(),
                      c->set.presence_grace_ms, &u, &last);
    if (u != NULL && last)
        cp_online_went_offline(c, u);
}

void cp_conns_node_gone(struct cp_ctx *c, struct cp_node *node)
{
    /* Collect first: closing edits the map being walked. */
    size_t n = 0, cap = node->n_conns;
    char **ids = cap ? malloc(cap * sizeof(*ids)) : NULL;
    if (cap > 0 && ids == NULL) {
        SB_LOG_ERROR("cp", "out of memory dropping a node's connections", "node=%s",
                     node->id ? node->id : "-");
        return;
    }
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&c->presence.conns, &it);
    while ((e = sb_map_iter_next(&c->presence.conns, &it)) != NULL && n < cap) {
        struct cp_conn *conn = e->value;
        if (conn->node == node)
            ids[n++] = conn->id;
    }
    /* ids point into records that cp_conns_close frees: copy each before closing. */
    for (size_t i = 0; i < n; i++) {
        char *id = strdup(ids[i]);
        ids[i] = id;
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] != NULL)
            cp_conns_close(c, ids[i]);
        free(ids[i]);
    }
    free(ids);
}
