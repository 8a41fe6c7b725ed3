/* Fan-out: one encoded Delivery per event, appended to each concerned node's queue. Nodes are
 * found through the members' connections and de-duplicated with a generation stamp, so a
 * room message costs one lookup per member and one queue append per node. */
#include "cp_fanout.h"

#include <stdlib.h>
#include <string.h>

#include "sb_log.h"

static void mark_dirty(struct cp_fanout *f, struct cp_node *n)
{
    if (n->dirty)
        return;
    n->dirty = true;
    n->dirty_next = f->dirty_head;
    f->dirty_head = n;
}

/* The stream that reaches a connection's node: memory mode keeps the pointer; connections
 * known from etcd name their node, linked here or not (then nothing is sent to it). */
static struct cp_node *conn_node(struct cp_fanout *f, const struct cp_conn *conn)
{
    if (conn->node != NULL)
        return conn->node;
    if (conn->node_id == NULL || conn->node_id[0] == '\0')
        return NULL;
    return sb_map_get(f->nodes, conn->node_id);
}

void cp_fanout_init(struct cp_fanout *f, struct cp_presence *presence, struct sb_map *nodes)
{
    memset(f, 0, sizeof(*f));
    f->presence = presence;
    f->nodes = nodes;
}

struct cp_node *cp_fanout_pop_dirty(struct cp_fanout *f)
{
    struct cp_node *n = f->dirty_head;
    if (n != NULL) {
        f->dirty_head = n->dirty_next;
        n->dirty_next = NULL;
        n->dirty = false;
    }
    return n;
}

void cp_fanout_queue(struct cp_fanout *f, struct cp_node *n,
                     const Switchboard__Internal__V1__ControlItem *item)
{
    if (cp_node_queue(n, item) == SB_OK)
        mark_dirty(f, n);
}

static void queue_raw(struct cp_fanout *f, struct cp_node *n, const struct cp_buf *enc)
{
    if (cp_node_queue_raw(n, enc->data, enc->len) == SB_OK)
        mark_dirty(f, n);
}

static bool encode_delivery(struct cp_buf *enc, Switchboard__Internal__V1__Delivery *d)
{
    Switchboard__Internal__V1__ControlItem item = SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__INIT;
    item.kind_case = SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_DELIVERY;
    item.delivery = d;
    cp_buf_init(enc);
    cp_node_encode_item(enc, &item);
    if (enc->failed) {
        SB_LOG_ERROR("cp", "out of memory encoding a delivery", NULL);
        cp_buf_fini(enc);
        return false;
    }
    return true;
}

/* The frame and the one excluded user (NULL: none; `ex` is the caller's one-slot array) of a
 * Delivery being built. */
static void delivery_frame(Switchboard__Internal__V1__Delivery *d, char *ex[1], const char *exclude,
                           const char *frame, size_t len)
{
    ex[0] = (char *)exclude;
    if (exclude != NULL) {
        d->n_exclude_user_ids = 1;
        d->exclude_user_ids = ex;
    }
    d->frame.data = (uint8_t *)frame;
    d->frame.len = len;
}

/* Queues `enc` to every node that may host a connection (on etcd: every node; a node's
 * connections may be registered with another replica). */
static void queue_all_nodes(struct cp_fanout *f, const struct cp_buf *enc)
{
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(f->nodes, &it);
    while ((e = sb_map_iter_next(f->nodes, &it)) != NULL) {
        struct cp_node *n = e->value;
        if (n->n_conns > 0 || f->by_id)
            queue_raw(f, n, enc);
    }
}

size_t cp_fanout_room(struct cp_fanout *f, const struct cp_member *members, size_t n_members,
                      const char *room_id, const char *exclude, const char *frame, size_t len,
                      int64_t seq)
{
    Switchboard__Internal__V1__Delivery d = SWITCHBOARD__INTERNAL__V1__DELIVERY__INIT;
    d.room_id = (char *)room_id;
    char *ex[1];
    delivery_frame(&d, ex, exclude, frame, len);
    d.seq = seq;
    struct cp_buf enc;
    if (!encode_delivery(&enc, &d))
        return 0;
    uint64_t gen = ++f->mark_gen;
    size_t nodes = 0;
    for (size_t i = 0; i < n_members; i++) {
        struct cp_user *u = cp_presence_user(f->presence, members[i].user_id);
        for (size_t j = 0; u != NULL && j < u->n_conns; j++) {
            struct cp_node *n = conn_node(f, u->conns[j]);
            if (n == NULL || n->mark == gen)
                continue;
            n->mark = gen;
            queue_raw(f, n, &enc);
            nodes++;
        }
        if (u != NULL && (exclude == NULL || strcmp(u->id, exclude) != 0))
            f->messages_delivered += (int64_t)u->n_conns;
    }
    cp_buf_fini(&enc);
    return nodes;
}

static size_t slot_index(const char *room_id)
{
    uint32_t h = 2166136261u;
    for (const char *p = room_id; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % CP_FANOUT_SLOTS;
}

/* Recomputes `sl` for `room_id` from the members' connections; false on ENOMEM (then the
 * slot is left empty). */
static bool slot_fill(struct cp_fanout *f, struct cp_fanout_slot *sl,
                      const struct cp_member *members, size_t n_members, uint64_t members_rev,
                      const char *room_id)
{
    if (sl->room_id == NULL || strcmp(sl->room_id, room_id) != 0) {
        free(sl->room_id);
        sl->room_id = strdup(room_id);
        if (sl->room_id == NULL)
            return false;
    }
    sl->members_rev = 0;
    sl->n_nodes = 0;
    sl->conns = 0;
    uint64_t gen = ++f->mark_gen;
    for (size_t i = 0; i < n_members; i++) {
        struct cp_user *u = cp_presence_user(f->presence, members[i].user_id);
        for (size_t j = 0; u != NULL && j < u->n_conns; j++) {
            struct cp_node *n = conn_node(f, u->conns[j]);
            if (n == NULL || n->mark == gen)
                continue;
            n->mark = gen;
            if (sl->n_nodes == sl->cap_nodes) {
                size_t nc = sl->cap_nodes ? sl->cap_nodes * 2 : 4;
                struct cp_node **p = realloc(sl->nodes, nc * sizeof(*p));
                if (p == NULL) {
                    sl->n_nodes = 0;
                    return false;
                }
                sl->nodes = p;
                sl->cap_nodes = nc;
            }
            sl->nodes[sl->n_nodes++] = n;
        }
        if (u != NULL)
            sl->conns += (int64_t)u->n_conns;
    }
    sl->members_rev = members_rev;
    sl->conn_gen = f->presence->conn_gen;
    return true;
}

size_t cp_fanout_room_cached(struct cp_fanout *f, const struct cp_member *members, size_t n_members,
                             uint64_t members_rev, const char *room_id, const char *frame,
                             size_t len, int64_t seq)
{
    if (members_rev == 0 || f->by_id)
        return cp_fanout_room(f, members, n_members, room_id, NULL, frame, len, seq);
    struct cp_fanout_slot *sl = &f->cache[slot_index(room_id)];
    bool hit = sl->room_id != NULL && sl->members_rev == members_rev &&
               sl->conn_gen == f->presence->conn_gen && strcmp(sl->room_id, room_id) == 0;
    if (!hit && !slot_fill(f, sl, members, n_members, members_rev, room_id))
        return cp_fanout_room(f, members, n_members, room_id, NULL, frame, len, seq);
    Switchboard__Internal__V1__Delivery d = SWITCHBOARD__INTERNAL__V1__DELIVERY__INIT;
    d.room_id = (char *)room_id;
    d.frame.data = (uint8_t *)frame;
    d.frame.len = len;
    d.seq = seq;
    Switchboard__Internal__V1__ControlItem item = SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__INIT;
    item.kind_case = SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_DELIVERY;
    item.delivery = &d;
    struct cp_buf *enc = &f->scratch_enc;
    cp_buf_reset(enc);
    cp_node_encode_item(enc, &item);
    if (enc->failed) {
        SB_LOG_ERROR("cp", "out of memory encoding a delivery", NULL);
        cp_fanout_scratch_done(enc);
        return 0;
    }
    for (size_t k = 0; k < sl->n_nodes; k++)
        queue_raw(f, sl->nodes[k], enc);
    cp_fanout_scratch_done(enc);
    f->messages_delivered += sl->conns;
    return sl->n_nodes;
}

void cp_fanout_scratch_done(struct cp_buf *b)
{
    if (b->cap > (1u << 20) || b->failed)
        cp_buf_fini(b);
    else
        cp_buf_reset(b);
}

void cp_fanout_fini(struct cp_fanout *f)
{
    cp_buf_fini(&f->scratch_frame);
    cp_buf_fini(&f->scratch_enc);
    for (size_t i = 0; i < CP_FANOUT_SLOTS; i++) {
        free(f->cache[i].room_id);
        free(f->cache[i].nodes);
        memset(&f->cache[i], 0, sizeof(f->cache[i]));
    }
}

/* Delivery{user_ids: those of `users` each node hosts, channel_id when set} to every node
 * hosting one of their connections; with `all` (a channel whose every subscriber receives),
 * no user_ids: each node fans out through its channel index. Returns the connections reached. */
static size_t to_users(struct cp_fanout *f, const char *const *users, size_t n_users,
                       const char *channel_id, bool all, const char *frame, size_t len)
{
    /* Group the users by node: mark the nodes, then build one id list per node. */
    uint64_t gen = ++f->mark_gen;
    struct cp_node **nodes = NULL;
    char **ids = NULL;
    size_t n_nodes = 0, cap = 0, conns = 0;
    for (size_t i = 0; i < n_users; i++) {
        struct cp_user *u = cp_presence_user(f->presence, users[i]);
        for (size_t j = 0; u != NULL && j < u->n_conns; j++) {
            struct cp_node *n = conn_node(f, u->conns[j]);
            conns++;
            if (n == NULL || n->mark == gen)
                continue;
            n->mark = gen;
            if (n_nodes == cap) {
                size_t nc = cap ? cap * 2 : 4;
                struct cp_node **p = realloc(nodes, nc * sizeof(*p));
                if (p == NULL) {
                    SB_LOG_ERROR("cp", "out of memory delivering to users", NULL);
                    goto out;
                }
                nodes = p;
                cap = nc;
            }
            nodes[n_nodes++] = n;
        }
    }
    if (n_nodes == 0)
        goto out;
    if (!all && (ids = malloc(n_users * sizeof(*ids))) == NULL)
        goto out;
    for (size_t k = 0; k < n_nodes; k++) {
        Switchboard__Internal__V1__Delivery d = SWITCHBOARD__INTERNAL__V1__DELIVERY__INIT;
        d.channel_id = (char *)channel_id;
        d.frame.data = (uint8_t *)frame;
        d.frame.len = len;
        if (!all) {
            size_t n_ids = 0;
            for (size_t i = 0; i < n_users; i++) {
                struct cp_user *u = cp_presence_user(f->presence, users[i]);
                for (size_t j = 0; u != NULL && j < u->n_conns; j++) {
                    if (conn_node(f, u->conns[j]) == nodes[k]) {
                        ids[n_ids++] = (char *)users[i];
                        break;
                    }
                }
            }
            d.user_ids = ids;
            d.n_user_ids = n_ids;
        }
        struct cp_buf enc;
        if (encode_delivery(&enc, &d)) {
            queue_raw(f, nodes[k], &enc);
            cp_buf_fini(&enc);
        }
    }
    f->messages_delivered += (int64_t)conns;
out:
    free(ids);
    free(nodes);
    return conns;
}

size_t cp_fanout_users(struct cp_fanout *f, const char *const *users, size_t n_users,
                       const char *frame, size_t len)
{
    return to_users(f, users, n_users, NULL, false, frame, len);
}

size_t cp_fanout_count_everyone(struct cp_fanout *f, const char *const *exclude, size_t n_exclude)
{
    /* Every connection, minus those of excluded users (each user counted once). */
    size_t total = f->presence->n_conns;
    for (size_t i = 0; i < n_exclude; i++) {
        struct cp_user *u = cp_presence_user(f->presence, exclude[i]);
        if (u == NULL || u->n_conns == 0)
            continue;
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(exclude[k], exclude[i]) == 0;
        if (!seen && total >= u->n_conns)
            total -= u->n_conns;
    }
    return total;
}

size_t cp_fanout_count_users(struct cp_fanout *f, const char *const *users, size_t n_users)
{
    size_t conns = 0;
    for (size_t i = 0; i < n_users; i++) {
        struct cp_user *u = cp_presence_user(f->presence, users[i]);
        if (u != NULL)
            conns += u->n_conns;
    }
    return conns;
}

size_t cp_fanout_everyone(struct cp_fanout *f, const char *const *exclude, size_t n_exclude,
                          const char *frame, size_t len)
{
    Switchboard__Internal__V1__Delivery d = SWITCHBOARD__INTERNAL__V1__DELIVERY__INIT;
    d.everyone = 1;
    d.n_exclude_user_ids = n_exclude;
    d.exclude_user_ids = (char **)exclude;
    d.frame.data = (uint8_t *)frame;
    d.frame.len = len;
    struct cp_buf enc;
    if (!encode_delivery(&enc, &d))
        return 0;
    queue_all_nodes(f, &enc);
    cp_buf_fini(&enc);
    size_t total = cp_fanout_count_everyone(f, exclude, n_exclude);
    f->messages_delivered += (int64_t)total;
    return total;
}

bool cp_fanout_rooms(struct cp_fanout *f, const char *const *rooms, size_t n_rooms,
                     const char *exclude, const char *frame, size_t len)
{
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(f->nodes, &it);
    while ((e = sb_map_iter_next(f->nodes, &it)) != NULL)
        if (!((struct cp_node *)e->value)->room_ids)
            return false;
    if (n_rooms == 0)
        return true;
    Switchboard__Internal__V1__Delivery d = SWITCHBOARD__INTERNAL__V1__DELIVERY__INIT;
    d.n_room_ids = n_rooms;
    d.room_ids = (char **)rooms;
    char *ex[1];
    delivery_frame(&d, ex, exclude, frame, len);
    struct cp_buf enc;
    if (!encode_delivery(&enc, &d))
        return true; /* logged; as if sent, like the other fan-outs */
    queue_all_nodes(f, &enc);
    cp_buf_fini(&enc);
    return true;
}

bool cp_fanout_connection(struct cp_fanout *f, const struct cp_conn *conn, const char *frame,
                          size_t len)
{
    struct cp_node *n = conn_node(f, conn);
    if (n == NULL)
        return false;
    Switchboard__Internal__V1__Delivery d = SWITCHBOARD__INTERNAL__V1__DELIVERY__INIT;
    char *ids[1] = {conn->id};
    d.n_connection_ids = 1;
    d.connection_ids = ids;
    d.frame.data = (uint8_t *)frame;
    d.frame.len = len;
    struct cp_buf enc;
    if (!encode_delivery(&enc, &d))
        return false;
    queue_raw(f, n, &enc);
    cp_buf_fini(&enc);
    f->messages_delivered++;
    return true;
}

bool cp_fanout_kick(struct cp_fanout *f, const struct cp_conn *conn, const char *reason)
{
    struct cp_node *n = conn_node(f, conn);
    if (n == NULL)
        return false;
    Switchboard__Internal__V1__Kick k = SWITCHBOARD__INTERNAL__V1__KICK__INIT;
    k.connection_id = conn->id;
    k.reason = (char *)reason;
    Switchboard__Internal__V1__ControlItem item = SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__INIT;
    item.kind_case = SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_KICK;
    item.kick = &k;
    cp_fanout_queue(f, n, &item);
    return true;
}

void cp_fanout_membership_rev(struct cp_fanout *f, const char *user_id, const char *room_id,
                              bool added, int64_t revision)
{
    cp_fanout_membership_item(f, user_id, room_id, NULL, added, revision);
}

void cp_fanout_membership_item(struct cp_fanout *f, const char *user_id, const char *room_id,
                               const char *channel_id, bool added, int64_t revision)
{
    struct cp_user *u = cp_presence_user(f->presence, user_id);
    if (u == NULL || u->n_conns == 0)
        return;
    Switchboard__Internal__V1__Membership m = SWITCHBOARD__INTERNAL__V1__MEMBERSHIP__INIT;
    m.user_id = (char *)user_id;
    if (room_id != NULL)
        m.room_id = (char *)room_id;
    if (channel_id != NULL)
        m.channel_id = (char *)channel_id;
    m.added = added;
    m.revision = revision;
    Switchboard__Internal__V1__ControlItem item = SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__INIT;
    item.kind_case = SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_MEMBERSHIP;
    item.membership = &m;
    uint64_t gen = ++f->mark_gen;
    for (size_t j = 0; j < u->n_conns; j++) {
        struct cp_node *n = conn_node(f, u->conns[j]);
        if (n == NULL || n->mark == gen)
            continue;
        n->mark = gen;
        cp_fanout_queue(f, n, &item);
    }
}

size_t cp_fanout_channel(struct cp_fanout *f, const char *channel_id, const char *const *users,
                         size_t n_users, bool all, const char *frame, size_t len)
{
    return to_users(f, users, n_users, channel_id, all, frame, len);
}
