/* The etcd Store's cache of sb/: rooms with their sorted members, user -> rooms, nodes,
 * replica addresses, sequencer holders and the presence leader, applied key by key from the
 * listing and the watch (in revision order), and the observer's events derived from them. */
#include "cp_estore_int.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cp_ecodec.h"
#include "cp_keys.h"
#include "sb_log.h"

/* ---- sorted arrays of elements whose first field is a string (members, room ids) */

/* The index of `key` (*found) or where it goes. */
static size_t sorted_find(const void *base, size_t n, size_t size, const char *key, bool *found)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(*(char *const *)((const char *)base + mid * size), key);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* Opens a slot at i of the n elements in *base (capacity *cap, doubling from `first`).
 * False on ENOMEM. */
static bool sorted_open(void *base_ptr, size_t n, size_t *cap, size_t size, size_t first, size_t i)
{
    char *base;
    memcpy(&base, base_ptr, sizeof(base));
    if (n == *cap) {
        size_t nc = *cap ? *cap * 2 : first;
        char *a = realloc(base, nc * size);
        if (a == NULL)
            return false;
        base = a;
        *cap = nc;
        memcpy(base_ptr, &base, sizeof(base));
    }
    memmove(base + (i + 1) * size, base + i * size, (n - i) * size);
    return true;
}

/* Closes the slot at i of the n elements of base. */
static void sorted_close(void *base, size_t n, size_t size, size_t i)
{
    char *b = base;
    memmove(b + i * size, b + (i + 1) * size, (n - i - 1) * size);
}

_Static_assert(offsetof(struct cp_member, user_id) == 0, "members are sorted by user_id");

/* ---- rooms and members */

static void room_free(void *p)
{
    struct cp_ecache_room *r = p;
    for (size_t i = 0; i < r->n_members; i++)
        free(r->members[i].user_id);
    free(r->members);
    cp_room_free(&r->room, false);
    free(r);
}

static struct cp_ecache_room *room_get_or_add(struct cp_estore *s, const char *id)
{
    struct cp_ecache_room *r = sb_map_get(&s->rooms, id);
    if (r != NULL || (r = calloc(1, sizeof(*r))) == NULL)
        return r;
    r->room.id = strdup(id);
    r->room.name = strdup("");
    r->room.description = strdup("");
    r->room.owner_id = strdup("");
    if (!r->room.id || !r->room.name || !r->room.description || !r->room.owner_id ||
        sb_map_put(&s->rooms, id, r) != SB_OK) {
        room_free(r);
        return NULL;
    }
    return r;
}

struct cp_ecache_room *cp_ecache_room_live(struct cp_estore *s, const char *id)
{
    struct cp_ecache_room *r = sb_map_get(&s->rooms, id);
    if (r == NULL || !r->exists)
        return NULL;
    r->room.member_count = (int32_t)r->n_members;
    r->room.last_seq = r->last_seq;
    return r;
}

struct cp_ecache_room *cp_ecache_room_found(struct cp_estore *s, const char *room_id,
                                            const char *user_id, struct cp_status *st)
{
    struct cp_ecache_room *r = cp_ecache_room_live(s, room_id);
    cp_status_ok(st);
    if (r == NULL)
        cp_estore_no_room(st, room_id);
    else if (user_id != NULL && cp_ecache_member_get(r, user_id) == NULL)
        cp_estore_not_member(st, user_id, room_id);
    return st->code == SB_CODE_NONE ? r : NULL;
}

/* A room entry also carries members and the seq: it goes once nothing is left. */
static void room_maybe_drop(struct cp_estore *s, struct cp_ecache_room *r)
{
    if (!r->exists && r->n_members == 0 && r->last_seq == 0) {
        sb_map_remove(&s->rooms, r->room.id);
        room_free(r);
    }
}

static void apply_room_put(struct cp_estore *s, const char *id, const struct cp_etcd_kv *kv)
{
    struct cp_ecache_room *r = room_get_or_add(s, id);
    struct cp_room *d = r ? cp_ecodec_room_parse(id, kv->value, kv->value_len) : NULL;
    if (d == NULL) {
        SB_LOG_WARN("cp", "unreadable room record ignored (or out of memory)", "room=%s", id);
        return;
    }
    cp_room_free(&r->room, false);
    r->room = *d;
    free(d);
    r->exists = true;
    r->create_rev = kv->create_revision;
}

const struct cp_member *cp_ecache_member_get(const struct cp_ecache_room *r, const char *user)
{
    bool found;
    size_t i = sorted_find(r->members, r->n_members, sizeof(*r->members), user, &found);
    return found ? &r->members[i] : NULL;
}

/* Returns true when the member is new. */
static bool apply_member_put(struct cp_estore *s, const char *room, const char *user,
                             const struct cp_etcd_kv *kv)
{
    struct cp_ecache_room *r = room_get_or_add(s, room);
    if (r == NULL)
        return false;
    enum cp_role role;
    int64_t joined;
    cp_ecodec_member_parse(kv->value, kv->value_len, &role, &joined);
    bool found;
    size_t i = sorted_find(r->members, r->n_members, sizeof(*r->members), user, &found);
    if (found) {
        r->members[i].role = role;
        r->members[i].joined_at = joined;
        return false;
    }
    char *uid = strdup(user);
    if (uid == NULL ||
        !sorted_open(&r->members, r->n_members, &r->cap_members, sizeof(*r->members), 8, i)) {
        free(uid);
        return false;
    }
    r->members[i] = (struct cp_member){uid, role, joined};
    r->n_members++;
    return true;
}

static bool apply_member_del(struct cp_estore *s, const char *room, const char *user)
{
    struct cp_ecache_room *r = sb_map_get(&s->rooms, room);
    if (r == NULL)
        return false;
    bool found;
    size_t i = sorted_find(r->members, r->n_members, sizeof(*r->members), user, &found);
    if (!found)
        return false;
    free(r->members[i].user_id);
    sorted_close(r->members, r->n_members, sizeof(*r->members), i);
    r->n_members--;
    room_maybe_drop(s, r);
    return true;
}

static void ids_free(void *p)
{
    struct cp_ecache_ids *x = p;
    while (x->n > 0)
        free(x->ids[--x->n]);
    free(x->ids);
    free(x);
}

static void apply_user_room(struct cp_estore *s, const struct cp_keys_parts *p, bool put,
                            const struct cp_etcd_kv *kv)
{
    const char *user = p->a, *room = p->b;
    struct cp_ecache_ids *x = sb_map_get(&s->user_rooms, user);
    if (x == NULL) {
        if (!put)
            return;
        x = calloc(1, sizeof(*x));
        if (x == NULL || sb_map_put(&s->user_rooms, user, x) != SB_OK) {
            free(x);
            return;
        }
    }
    bool found;
    size_t i = sorted_find(x->ids, x->n, sizeof(*x->ids), room, &found);
    if (put && !found) {
        char *d = strdup(room);
        if (d == NULL || !sorted_open(&x->ids, x->n, &x->cap, sizeof(*x->ids), 4, i)) {
            free(d);
            return;
        }
        x->ids[i] = d;
        x->n++;
    } else if (!put && found) {
        free(x->ids[i]);
        sorted_close(x->ids, x->n, sizeof(*x->ids), i);
        x->n--;
        if (x->n == 0) {
            sb_map_remove(&s->user_rooms, user);
            ids_free(x);
        }
    }
}

/* ---- events for the observer */

/* Reports a change applied from the watch (nothing while listing). */
static void emit(struct cp_estore *s, struct cp_store_event ev, int64_t rev)
{
    if (!s->live || s->obs_fn == NULL)
        return;
    ev.revision = rev;
    s->obs_fn(s->obs_arg, &ev);
}

/* A watched history key: a new message (the key's first version since it was created) or an
 * overwritten one (message_update). Deletes (trimming) are not reported. */
static void emit_history(struct cp_estore *s, const struct cp_keys_parts *p, bool put,
                         const struct cp_etcd_kv *kv)
{
    const char *room = p->a;
    if (!put || !s->live || s->obs_fn == NULL)
        return;
    struct cp_message *m = cp_ecodec_message_parse(kv->value, kv->value_len, NULL);
    if (m == NULL) {
        SB_LOG_WARN("cp", "unreadable history message not reported", "room=%s", room);
        return;
    }
    bool fresh = kv->create_revision == kv->mod_revision;
    emit(s,
         (struct cp_store_event){.kind = fresh ? CP_STORE_EV_MESSAGE : CP_STORE_EV_MESSAGE_UPDATE,
                                 .room_id = room,
                                 .message = m},
         kv->mod_revision);
    cp_message_free(m);
}

static void emit_doc(struct cp_estore *s, const struct cp_keys_parts *p, bool put,
                     const struct cp_etcd_kv *kv)
{
    if (!s->live || s->obs_fn == NULL)
        return;
    char key[CP_KEYS_DOC_KEY_MAX + 1];
    memcpy(key, p->doc, p->doc_len);
    key[p->doc_len] = '\0';
    struct cp_doc d = {.key = key,
                       .value = put ? kv->value : NULL,
                       .len = put ? kv->value_len : 0,
                       .version = put ? kv->mod_revision : 0};
    emit(s, (struct cp_store_event){.kind = CP_STORE_EV_DOC, .doc = &d}, kv->mod_revision);
}

/* ---- applying keys */

static void apply_room(struct cp_estore *s, const struct cp_keys_parts *p, bool put,
                       const struct cp_etcd_kv *kv)
{
    const char *id = p->a;
    int64_t rev = kv->mod_revision;
    if (put) {
        apply_room_put(s, id, kv);
        struct cp_ecache_room *r = cp_ecache_room_live(s, id);
        if (r != NULL)
            emit(s,
                 (struct cp_store_event){
                     .kind = CP_STORE_EV_ROOM, .room_id = r->room.id, .room = &r->room},
                 rev);
        return;
    }
    struct cp_ecache_room *r = sb_map_get(&s->rooms, id);
    bool existed = r != NULL && r->exists;
    if (r != NULL) {
        r->exists = false;
        r->create_rev = 0;
        room_maybe_drop(s, r);
    }
    if (existed)
        emit(s, (struct cp_store_event){.kind = CP_STORE_EV_ROOM_DELETED, .room_id = id}, rev);
}

static void apply_member(struct cp_estore *s, const struct cp_keys_parts *p, bool put,
                         const struct cp_etcd_kv *kv)
{
    const char *room = p->a, *user = p->b;
    /* A room delete removes the room key first, then its members: like the memory store,
     * only the room's deletion is reported, not each member leaving. */
    int64_t rev = kv->mod_revision;
    struct cp_ecache_room *r0 = sb_map_get(&s->rooms, room);
    bool room_exists = r0 != NULL && r0->exists;
    if (!(put ? apply_member_put(s, room, user, kv) : apply_member_del(s, room, user)))
        return;
    if (s->hooks.member != NULL)
        s->hooks.member(s->hooks.ud, room, user, put, rev);
    struct cp_ecache_room *r = put ? sb_map_get(&s->rooms, room) : NULL;
    const struct cp_member *m = r != NULL ? cp_ecache_member_get(r, user) : NULL;
    if (m != NULL)
        emit(s,
             (struct cp_store_event){.kind = CP_STORE_EV_MEMBER_ADDED,
                                     .room_id = r->room.id,
                                     .user_id = m->user_id,
                                     .member = m},
             rev);
    else if (!put && room_exists)
        emit(s,
             (struct cp_store_event){
                 .kind = CP_STORE_EV_MEMBER_REMOVED, .room_id = room, .user_id = user},
             rev);
}

static void apply_seq(struct cp_estore *s, const struct cp_keys_parts *p, bool put,
                      const struct cp_etcd_kv *kv)
{
    const char *room = p->a;
    struct cp_ecache_room *r = put ? room_get_or_add(s, room) : sb_map_get(&s->rooms, room);
    if (r == NULL)
        return;
    r->last_seq = put ? cp_ecodec_seq_parse(kv->value, kv->value_len) : 0;
    if (!put)
        room_maybe_drop(s, r);
}

static void apply_node(struct cp_estore *s, const struct cp_keys_parts *p, bool put,
                       const struct cp_etcd_kv *kv)
{
    free(sb_map_remove(&s->nodes, p->a));
    int64_t hb, conns;
    char *address = put ? cp_ecodec_node_parse(kv->value, kv->value_len, &hb, &conns) : NULL;
    size_t n = address != NULL ? strlen(address) : 0;
    struct cp_ecache_node *node = address != NULL ? malloc(sizeof(*node) + n + 1) : NULL;
    if (node != NULL) {
        node->last_heartbeat = hb;
        node->connections = conns;
        memcpy(node->address, address, n + 1);
        if (sb_map_put(&s->nodes, p->a, node) != SB_OK)
            free(node);
    }
    free(address);
}

static void apply_cp(struct cp_estore *s, const struct cp_keys_parts *p, bool put,
                     const struct cp_etcd_kv *kv)
{
    free(sb_map_remove(&s->cps, p->a));
    char *a = put ? cp_ecodec_dup(kv->value, kv->value_len) : NULL;
    if (a != NULL && sb_map_put(&s->cps, p->a, a) != SB_OK)
        free(a);
}

/* The holder first, then the hook (sequencing looks the holder up). */
static void apply_holder(struct cp_estore *s, const struct cp_keys_parts *p, bool put,
                         const struct cp_etcd_kv *kv)
{
    free(sb_map_remove(&s->holders, p->a));
    struct cp_ecache_holder *h = put ? malloc(sizeof(*h) + kv->value_len + 1) : NULL;
    if (h != NULL) {
        h->create_rev = kv->create_revision;
        h->lease = kv->lease;
        memcpy(h->cp_id, kv->value, kv->value_len);
        h->cp_id[kv->value_len] = '\0';
        if (sb_map_put(&s->holders, p->a, h) != SB_OK)
            free(h);
    }
    if (s->holder_changed != NULL)
        s->holder_changed(s, p->a, put ? kv : NULL);
}

static void apply_leader(struct cp_estore *s, const struct cp_keys_parts *p, bool put,
                         const struct cp_etcd_kv *kv)
{
    if (strcmp(p->a, CP_KEYS_ROLE_PRESENCE) != 0)
        return;
    free(s->leader);
    s->leader = put ? cp_ecodec_dup(kv->value, kv->value_len) : NULL;
    bool was = s->is_leader;
    s->is_leader =
        put && s->leader != NULL && strcmp(s->leader, s->id) == 0 && kv->lease == s->lease;
    if (was != s->is_leader)
        SB_LOG_INFO("cp",
                    s->is_leader ? "presence leader: this replica"
                                 : "presence leader: another replica",
                    "leader=%s", s->leader ? s->leader : "-");
    if (!put && s->leader_gone != NULL)
        s->leader_gone(s);
}

static void apply_conn(struct cp_estore *s, const struct cp_keys_parts *p, bool put,
                       const struct cp_etcd_kv *kv)
{
    if (s->hooks.conn != NULL)
        s->hooks.conn(s->hooks.ud, p->a, p->b, p->c, put ? kv->value : NULL,
                      put ? kv->value_len : 0);
}

typedef void apply_fn(struct cp_estore *s, const struct cp_keys_parts *p, bool put,
                      const struct cp_etcd_kv *kv);

/* By kind of key. None for sb/presence/<user>, written by versions before presence records
 * became presence/<user> documents (docs/presence.md): nothing writes or reads them now. */
static apply_fn *const appliers[] = {
    [CP_KEYS_KIND_ROOM] = apply_room,
    [CP_KEYS_KIND_MEMBER] = apply_member,
    [CP_KEYS_KIND_HISTORY] = emit_history,
    [CP_KEYS_KIND_DOC] = emit_doc,
    [CP_KEYS_KIND_USER_ROOM] = apply_user_room,
    [CP_KEYS_KIND_CONN] = apply_conn,
    [CP_KEYS_KIND_SEQ] = apply_seq,
    [CP_KEYS_KIND_NODE] = apply_node,
    [CP_KEYS_KIND_CP] = apply_cp,
    [CP_KEYS_KIND_SEQUENCER] = apply_holder,
    [CP_KEYS_KIND_LEADER] = apply_leader,
};

void cp_ecache_apply(struct cp_estore *s, enum cp_etcd_event_type type, const struct cp_etcd_kv *kv)
{
    struct cp_keys_parts p;
    if (cp_keys_parse(kv->key, kv->key_len, &p) != SB_OK ||
        (size_t)p.kind >= sizeof(appliers) / sizeof(appliers[0]) || appliers[p.kind] == NULL)
        return;
    appliers[p.kind](s, &p, type == CP_ETCD_EVENT_PUT, kv);
}

/* ---- the maps */

void cp_ecache_init(struct cp_estore *s)
{
    sb_map_init(&s->rooms);
    sb_map_init(&s->user_rooms);
    sb_map_init(&s->nodes);
    sb_map_init(&s->cps);
    sb_map_init(&s->holders);
}

/* Frees every value of m with fn, then empties it. */
static void map_clear(struct sb_map *m, void (*fn)(void *))
{
    cp_estore_map_fini(m, fn);
    sb_map_init(m);
}

void cp_ecache_clear(struct cp_estore *s)
{
    map_clear(&s->rooms, room_free);
    map_clear(&s->user_rooms, ids_free);
    map_clear(&s->nodes, free);
    map_clear(&s->cps, free);
    map_clear(&s->holders, free);
}

void cp_ecache_fini(struct cp_estore *s)
{
    cp_ecache_clear(s);
    sb_map_fini(&s->rooms);
    sb_map_fini(&s->user_rooms);
    sb_map_fini(&s->nodes);
    sb_map_fini(&s->cps);
    sb_map_fini(&s->holders);
    free(s->leader);
    s->leader = NULL;
}

size_t cp_ecache_room_count(const struct cp_estore *s)
{
    size_t n = 0;
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&s->rooms, &it);
    while ((e = sb_map_iter_next(&s->rooms, &it)) != NULL)
        n += ((struct cp_ecache_room *)e->value)->exists ? 1 : 0;
    return n;
}
