/* Store changes applied to the flows (see cp_changes.h). */
#include "cp_changes.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cp_conns.h"
#include "cp_online.h"
#include "cp_rooms.h"
#include "sb_log.h"
#include "sb_time.h"

static void on_member(void *ud, const char *room_id, const char *user_id, bool added, int64_t rev)
{
    cp_fanout_membership_rev(&((struct cp_ctx *)ud)->fan, user_id, room_id, added, rev);
}

static void on_conn(void *ud, const char *node_id, const char *user_id, const char *conn_id,
                    const char *value, size_t len)
{
    struct cp_ctx *c = ud;
    if (value == NULL) {
        cp_conns_close(c, conn_id);
        return;
    }
    json_t *j = json_loadb(value, len, 0, NULL);
    const char *session = j ? json_string_value(json_object_get(j, "session_id")) : NULL;
    const char *transport = j ? json_string_value(json_object_get(j, "transport")) : NULL;
    json_t *at = j ? json_object_get(j, "connected_at") : NULL;
    bool came_online = false;
    if (cp_presence_open_remote(&c->presence, conn_id, user_id, session, transport,
                                json_is_integer(at) ? json_integer_value(at) : sb_time_now_ms(),
                                node_id, c->relist_gen, sb_time_now_ms(), &came_online) != SB_OK)
        SB_LOG_ERROR("cp", "out of memory recording a connection", "conn=%s", conn_id);
    json_decref(j);
    if (came_online && cp_ctx_is_leader(c))
        cp_online_announce(c, cp_presence_user(&c->presence, user_id));
}

static void on_relist_begin(void *ud)
{
    struct cp_ctx *c = ud;
    c->relist_gen++;
}

static void on_relist_end(void *ud)
{
    struct cp_ctx *c = ud;
    /* Connections the new listing did not show are gone. */
    size_t n = 0, cap = c->presence.n_conns;
    char **ids = cap ? calloc(cap, sizeof(*ids)) : NULL;
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&c->presence.conns, &it);
    while (ids != NULL && (e = sb_map_iter_next(&c->presence.conns, &it)) != NULL && n < cap) {
        struct cp_conn *conn = e->value;
        if (conn->node == NULL && conn->gen != c->relist_gen)
            ids[n++] = strdup(conn->id);
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] != NULL)
            cp_conns_close(c, ids[i]);
        free(ids[i]);
    }
    free(ids);
}

struct relost {
    struct cp_ctx *c;
    char node_id[];
};

static void readopted(void *arg, const struct cp_status *st, int64_t lease, bool renewed)
{
    struct relost *r = arg;
    struct cp_node *n = sb_map_get(&r->c->nodes, r->node_id);
    if (st->code == SB_CODE_NONE && n != NULL) {
        Switchboard__Internal__V1__Adopted a = SWITCHBOARD__INTERNAL__V1__ADOPTED__INIT;
        a.lease_id = lease;
        a.renewed = renewed;
        Switchboard__Internal__V1__ControlItem item = SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__INIT;
        item.kind_case = SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_ADOPTED;
        item.adopted = &a;
        cp_fanout_queue(&r->c->fan, n, &item);
        SB_LOG_INFO("cp", "node lease re-granted after loss", "node=%s lease=%lld", r->node_id,
                    (long long)lease);
    }
    free(r);
}

static void on_node_lease_lost(void *ud, const char *node_id)
{
    struct cp_ctx *c = ud;
    struct cp_node *n = sb_map_get(&c->nodes, node_id);
    if (n == NULL)
        return;
    size_t len = strlen(node_id);
    struct relost *r = malloc(sizeof(*r) + len + 1);
    if (r == NULL)
        return;
    r->c = c;
    memcpy(r->node_id, node_id, len + 1);
    c->cluster->ops->adopt(c->cluster, node_id, n->address, 0, readopted, r);
}

/* A message the previous sequencer of its room stored, maybe without delivering it: once more to
 * the members' nodes (a node drops a room seq it has seen). */
static void on_redeliver(void *ud, const struct cp_message *m, const struct cp_member *members,
                         size_t n_members)
{
    cp_rooms_deliver(ud, m, members, n_members, 0);
}

void cp_changes_hooks(struct cp_ctx *c, struct cp_cluster_hooks *out)
{
    memset(out, 0, sizeof(*out));
    out->ud = c;
    out->member = on_member;
    out->conn = on_conn;
    out->relist_begin = on_relist_begin;
    out->relist_end = on_relist_end;
    out->node_lease_lost = on_node_lease_lost;
    out->redeliver = on_redeliver;
}
