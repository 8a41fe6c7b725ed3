/* The embedded Store: everything in this process's memory, for one replica. Rooms are a
 * sorted array (id order gives stable ListRooms pages), members a sorted array per room, and a
 * user -> rooms index answers ConnOpen and presence fan-out. Every operation completes inline. */
#include "cp_store_memory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_history.h"
#include "cp_keys.h"
#include "sb_map.h"
#include "sb_time.h"

struct mroom {
    struct cp_room room;
    struct cp_member *members; /* sorted by user_id */
    size_t n_members, cap_members;
    uint64_t members_rev; /* changes whenever the member set does (cp_append_result) */
    struct cp_history hist;
};

struct muser {
    char **rooms; /* sorted; borrowed from mroom.room.id */
    size_t n, cap;
};

struct mdoc {
    char *key;
    char *value;
    size_t len;
    int64_t version;
};

struct mem {
    struct cp_store base;
    struct mroom **rooms; /* sorted by id */
    size_t n_rooms, cap_rooms;
    struct sb_map users; /* user_id -> struct muser */
    struct mdoc *docs;   /* sorted by key */
    size_t n_docs, cap_docs;
    int64_t rev;               /* change counter: doc versions, event revisions */
    uint64_t members_seq;      /* source of mroom.members_rev: unique across rooms */
    cp_store_event_fn *obs_fn; /* the observer (NULL: none) */
    void *obs_arg;
    struct cp_cluster_hooks hooks; /* member changes (cp_store_memory_set_hooks) */
    /* publish idempotency: "<room>\n<key>" -> struct midem, and a FIFO of them by expiry */
    struct sb_map idem;
    struct midem *idem_head, *idem_tail;
};

/* A keyed publish's first result, kept CP_STORE_IDEM_TTL_MS. */
struct midem {
    struct midem *next;
    int64_t expires;         /* monotonic ms */
    struct cp_message first; /* id, room_id, seq, timestamp only */
    char key[];
};

/* Reports a committed change to the observer. */
static void emit(struct mem *m, struct cp_store_event ev)
{
    ev.revision = ++m->rev;
    if (m->obs_fn != NULL)
        m->obs_fn(m->obs_arg, &ev);
}

/* Reports a member change to the hooks, at the revision of the event just emitted. */
static void member_changed(struct mem *m, const char *room_id, const char *user_id, bool added)
{
    if (m->hooks.member != NULL)
        m->hooks.member(m->hooks.ud, room_id, user_id, added, m->rev);
}

/* ---------------------------------------------------------------- sorted-array helpers */

/* Index of the first room whose id is >= id; *found if equal. */
static size_t room_pos(const struct mem *m, const char *id, bool *found)
{
    size_t lo = 0, hi = m->n_rooms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(m->rooms[mid]->room.id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < m->n_rooms && strcmp(m->rooms[lo]->room.id, id) == 0;
    return lo;
}

static struct mroom *room_find(const struct mem *m, const char *id)
{
    bool found;
    size_t i = room_pos(m, id, &found);
    return found ? m->rooms[i] : NULL;
}

static size_t member_pos(const struct mroom *r, const char *user, bool *found)
{
    size_t lo = 0, hi = r->n_members;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(r->members[mid].user_id, user) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < r->n_members && strcmp(r->members[lo].user_id, user) == 0;
    return lo;
}

static size_t str_pos(char *const *arr, size_t n, const char *s, bool *found)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(arr[mid], s) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < n && strcmp(arr[lo], s) == 0;
    return lo;
}

static int grow_array(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 8;
    while (c < need)
        c *= 2;
    void *p = realloc(*arr, c * elem);
    if (p == NULL)
        return -1;
    *arr = p;
    *cap = c;
    return 0;
}

/* ---------------------------------------------------------------- user index */

static int user_index_add(struct mem *m, const char *user, char *room_id)
{
    struct muser *u = sb_map_get(&m->users, user);
    if (u == NULL) {
        u = calloc(1, sizeof(*u));
        if (u == NULL)
            return -1;
        if (sb_map_put(&m->users, user, u) != SB_OK) {
            free(u);
            return -1;
        }
    }
    bool found;
    size_t i = str_pos(u->rooms, u->n, room_id, &found);
    if (found)
        return 0;
    if (grow_array((void **)&u->rooms, &u->cap, u->n + 1, sizeof(char *)) != 0)
        return -1;
    memmove(&u->rooms[i + 1], &u->rooms[i], (u->n - i) * sizeof(char *));
    u->rooms[i] = room_id;
    u->n++;
    return 0;
}

static void user_index_remove(struct mem *m, const char *user, const char *room_id)
{
    struct muser *u = sb_map_get(&m->users, user);
    if (u == NULL)
        return;
    bool found;
    size_t i = str_pos(u->rooms, u->n, room_id, &found);
    if (found) {
        memmove(&u->rooms[i], &u->rooms[i + 1], (u->n - i - 1) * sizeof(char *));
        u->n--;
    }
    if (u->n == 0) {
        sb_map_remove(&m->users, user);
        free(u->rooms);
        free(u);
    }
}

/* ---------------------------------------------------------------- members */

/* Adds a member; returns its index or -1 on ENOMEM. */
static long member_insert(struct mem *m, struct mroom *r, const char *user, enum cp_role role,
                          int64_t now)
{
    bool found;
    size_t i = member_pos(r, user, &found);
    if (found)
        return (long)i;
    if (grow_array((void **)&r->members, &r->cap_members, r->n_members + 1,
                   sizeof(struct cp_member)) != 0)
        return -1;
    char *uid = strdup(user);
    if (uid == NULL)
        return -1;
    if (user_index_add(m, user, r->room.id) != 0) {
        free(uid);
        return -1;
    }
    memmove(&r->members[i + 1], &r->members[i], (r->n_members - i) * sizeof(struct cp_member));
    r->members[i] = (struct cp_member){.user_id = uid, .role = role, .joined_at = now};
    r->n_members++;
    r->room.member_count = (int32_t)r->n_members;
    r->members_rev = ++m->members_seq;
    return (long)i;
}

static void mroom_free(struct mem *m, struct mroom *r)
{
    for (size_t i = 0; i < r->n_members; i++) {
        user_index_remove(m, r->members[i].user_id, r->room.id);
        free(r->members[i].user_id);
    }
    free(r->members);
    cp_history_fini(&r->hist);
    cp_room_free(&r->room, false);
    free(r);
}

/* ---------------------------------------------------------------- operations */

/* Inserts a copy of `in` at its sorted place; NULL on ENOMEM. The id must be free. */
static struct mroom *room_insert(struct mem *m, const struct cp_room *in)
{
    bool found;
    size_t pos = room_pos(m, in->id, &found);
    struct mroom *r = calloc(1, sizeof(*r));
    struct cp_room *copy = r ? cp_room_dup(in) : NULL;
    if (copy == NULL ||
        grow_array((void **)&m->rooms, &m->cap_rooms, m->n_rooms + 1, sizeof(*m->rooms)) != 0) {
        if (copy != NULL)
            cp_room_free(copy, true);
        free(r);
        return NULL;
    }
    r->room = *copy;
    free(copy);
    r->room.member_count = 0;
    r->room.last_seq = 0;
    r->members_rev = ++m->members_seq;
    cp_history_init(&r->hist);
    memmove(&m->rooms[pos + 1], &m->rooms[pos], (m->n_rooms - pos) * sizeof(*m->rooms));
    m->rooms[pos] = r;
    m->n_rooms++;
    return r;
}

static void room_unlink(struct mem *m, struct mroom *r)
{
    bool found;
    size_t pos = room_pos(m, r->room.id, &found);
    if (!found)
        return;
    memmove(&m->rooms[pos], &m->rooms[pos + 1], (m->n_rooms - pos - 1) * sizeof(*m->rooms));
    m->n_rooms--;
}

static void room_create(struct cp_store *s, const struct cp_room *in, cp_store_room_fn *cb,
                        void *arg)
{
    struct mem *m = (struct mem *)s;
    struct cp_status st;
    if (room_find(m, in->id) != NULL) {
        cp_status_set(&st, SB_CODE_ROOM_ALREADY_EXISTS, "room %s already exists", in->id);
        cb(arg, &st, NULL);
        return;
    }
    struct mroom *r = room_insert(m, in);
    if (r != NULL && r->room.owner_id[0] != '\0' &&
        member_insert(m, r, r->room.owner_id, CP_ROLE_OWNER, r->room.created_at) < 0) {
        room_unlink(m, r);
        mroom_free(m, r);
        r = NULL;
    }
    if (r == NULL) {
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        cb(arg, &st, NULL);
        return;
    }
    emit(m, (struct cp_store_event){
                .kind = CP_STORE_EV_ROOM, .room_id = r->room.id, .room = &r->room});
    if (r->n_members > 0) {
        emit(m, (struct cp_store_event){.kind = CP_STORE_EV_MEMBER_ADDED,
                                        .room_id = r->room.id,
                                        .user_id = r->members[0].user_id,
                                        .member = &r->members[0]});
        member_changed(m, r->room.id, r->members[0].user_id, true);
    }
    cp_status_ok(&st);
    cb(arg, &st, &r->room);
}

static void not_found(struct cp_status *st, const char *room_id)
{
    cp_status_set(st, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist", room_id);
}

static void room_get(struct cp_store *s, const char *room_id, cp_store_room_fn *cb, void *arg)
{
    struct mem *m = (struct mem *)s;
    struct cp_status st;
    struct mroom *r = room_find(m, room_id);
    if (r == NULL) {
        not_found(&st, room_id);
        cb(arg, &st, NULL);
        return;
    }
    cp_status_ok(&st);
    cb(arg, &st, &r->room);
}

static bool list_match(const struct mroom *r, const struct cp_room_query *q)
{
    if (r->room.archived && !q->include_archived)
        return false;
    if (q->name_prefix != NULL && q->name_prefix[0] != '\0' &&
        strncmp(r->room.name, q->name_prefix, strlen(q->name_prefix)) != 0)
        return false;
    return true;
}

static void room_list(struct cp_store *s, const struct cp_room_query *q, cp_store_rooms_fn *cb,
                      void *arg)
{
    struct mem *m = (struct mem *)s;
    struct cp_status st;
    size_t start = 0;
    if (q->after_id != NULL && q->after_id[0] != '\0') {
        bool found;
        start = room_pos(m, q->after_id, &found);
        if (found)
            start++;
    }
    size_t limit = q->limit > 0 ? (size_t)q->limit : 1;
    /* Callers may ask for "everything" (GetStats): never allocate beyond what exists. */
    size_t room_left = m->n_rooms - start;
    const struct cp_room **out = malloc((limit < room_left ? limit : room_left) * sizeof(*out) + 1);
    if (out == NULL) {
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        cb(arg, &st, NULL, 0, false);
        return;
    }
    size_t n = 0;
    bool more = false;
    for (size_t i = start; i < m->n_rooms; i++) {
        if (!list_match(m->rooms[i], q))
            continue;
        if (n == limit) {
            more = true;
            break;
        }
        out[n++] = &m->rooms[i]->room;
    }
    cp_status_ok(&st);
    cb(arg, &st, out, n, more);
    free(out);
}

static void room_delete(struct cp_store *s, const char *room_id, cp_store_members_fn *cb, void *arg)
{
    struct mem *m = (struct mem *)s;
    struct cp_status st;
    struct mroom *r = room_find(m, room_id);
    if (r == NULL) {
        not_found(&st, room_id);
        cb(arg, &st, NULL, 0);
        return;
    }
    room_unlink(m, r);
    /* Drop the index first, answer with the member list, then free it. */
    for (size_t i = 0; i < r->n_members; i++)
        user_index_remove(m, r->members[i].user_id, r->room.id);
    emit(m, (struct cp_store_event){.kind = CP_STORE_EV_ROOM_DELETED, .room_id = r->room.id});
    for (size_t i = 0; i < r->n_members; i++)
        member_changed(m, r->room.id, r->members[i].user_id, false);
    cp_status_ok(&st);
    cb(arg, &st, r->members, r->n_members);
    for (size_t i = 0; i < r->n_members; i++)
        free(r->members[i].user_id);
    r->n_members = 0;
    r->members_rev = ++m->members_seq;
    mroom_free(m, r);
}

static void member_add(struct cp_store *s, const struct cp_join_req *req, cp_store_join_fn *cb,
                       void *arg)
{
    struct mem *m = (struct mem *)s;
    struct cp_status st;
    struct cp_join_result res = {0};
    struct mroom *r = room_find(m, req->room_id);
    if (r == NULL && req->auto_create) {
        struct cp_room draft = {.id = (char *)req->room_id,
                                .name = "",
                                .description = "",
                                .owner_id = (char *)req->user_id,
                                .created_at = req->now,
                                .updated_at = req->now};
        r = room_insert(m, &draft);
        if (r == NULL) {
            cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
            cb(arg, &st, NULL);
            return;
        }
        res.created_room = true;
    }
    if (r == NULL) {
        not_found(&st, req->room_id);
        cb(arg, &st, NULL);
        return;
    }
    bool found;
    size_t i = member_pos(r, req->user_id, &found);
    if (!found) {
        if (r->room.archived) {
            cp_status_set(&st, SB_CODE_ROOM_ARCHIVED, "room %s is archived", r->room.id);
            cb(arg, &st, NULL);
            return;
        }
        if (req->deny_private && r->room.is_private) {
            cp_status_set(&st, SB_CODE_PERMISSION_DENIED, "room %s is private", r->room.id);
            cb(arg, &st, NULL);
            return;
        }
        if (r->room.max_members > 0 && r->n_members >= (size_t)r->room.max_members) {
            cp_status_set(&st, SB_CODE_ROOM_FULL, "room %s has reached %d members", r->room.id,
                          (int)r->room.max_members);
            cb(arg, &st, NULL);
            return;
        }
        enum cp_role role = res.created_room ? CP_ROLE_OWNER : req->role;
        long idx = member_insert(m, r, req->user_id, role, req->now);
        if (idx < 0) {
            cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
            cb(arg, &st, NULL);
            return;
        }
        i = (size_t)idx;
        res.added = true;
        r->room.updated_at = req->now;
        if (res.created_room)
            emit(m, (struct cp_store_event){
                        .kind = CP_STORE_EV_ROOM, .room_id = r->room.id, .room = &r->room});
        emit(m, (struct cp_store_event){.kind = CP_STORE_EV_MEMBER_ADDED,
                                        .room_id = r->room.id,
                                        .user_id = r->members[i].user_id,
                                        .member = &r->members[i]});
        member_changed(m, r->room.id, r->members[i].user_id, true);
    }
    res.room = &r->room;
    res.member = &r->members[i];
    res.members = r->members;
    res.n_members = r->n_members;
    cp_status_ok(&st);
    cb(arg, &st, &res);
}

static void member_remove(struct cp_store *s, const char *room_id, const char *user_id,
                          cp_store_members_fn *cb, void *arg)
{
    struct mem *m = (struct mem *)s;
    struct cp_status st;
    struct mroom *r = room_find(m, room_id);
    if (r == NULL) {
        not_found(&st, room_id);
        cb(arg, &st, NULL, 0);
        return;
    }
    bool found;
    size_t i = member_pos(r, user_id, &found);
    if (!found) {
        cp_status_set(&st, SB_CODE_NOT_ROOM_MEMBER, "user %s is not a member of room %s", user_id,
                      room_id);
        cb(arg, &st, NULL, 0);
        return;
    }
    user_index_remove(m, user_id, r->room.id);
    free(r->members[i].user_id);
    memmove(&r->members[i], &r->members[i + 1], (r->n_members - i - 1) * sizeof(*r->members));
    r->n_members--;
    r->room.member_count = (int32_t)r->n_members;
    r->members_rev = ++m->members_seq;
    emit(m, (struct cp_store_event){
                .kind = CP_STORE_EV_MEMBER_REMOVED, .room_id = r->room.id, .user_id = user_id});
    member_changed(m, r->room.id, user_id, false);
    cp_status_ok(&st);
    cb(arg, &st, r->members, r->n_members);
}

static void members_list(struct cp_store *s, const char *room_id, cp_store_members_fn *cb,
                         void *arg)
{
    struct mem *m = (struct mem *)s;
    struct cp_status st;
    struct mroom *r = room_find(m, room_id);
    if (r == NULL) {
        not_found(&st, room_id);
        cb(arg, &st, NULL, 0);
        return;
    }
    cp_status_ok(&st);
    cb(arg, &st, r->members, r->n_members);
}

static void user_rooms(struct cp_store *s, const char *user_id, cp_store_ids_fn *cb, void *arg)
{
    struct mem *m = (struct mem *)s;
    struct cp_status st;
    cp_status_ok(&st);
    struct muser *u = sb_map_get(&m->users, user_id);
    if (u == NULL)
        cb(arg, &st, NULL, 0);
    else
        cb(arg, &st, (const char *const *)u->rooms, u->n);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void user_peers(struct cp_store *s, const char *user_id, cp_store_ids_fn *cb, void *arg)
{
    struct mem *m = (struct mem *)s;
    struct cp_status st;
    struct muser *u = sb_map_get(&m->users, user_id);
    size_t total = 0;
    for (size_t i = 0; u != NULL && i < u->n; i++) {
        struct mroom *r = room_find(m, u->rooms[i]);
        total += r ? r->n_members : 0;
    }
    if (total == 0) {
        cp_status_ok(&st);
        cb(arg, &st, NULL, 0);
        return;
    }
    const char **ids = malloc(total * sizeof(*ids));
    if (ids == NULL) {
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        cb(arg, &st, NULL, 0);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < u->n; i++) {
        struct mroom *r = room_find(m, u->rooms[i]);
        for (size_t j = 0; r != NULL && j < r->n_members; j++) {
            if (strcmp(r->members[j].user_id, user_id) != 0)
                ids[n++] = r->members[j].user_id;
        }
    }
    qsort(ids, n, sizeof(*ids), cmp_str);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (w == 0 || strcmp(ids[w - 1], ids[i]) != 0)
            ids[w++] = ids[i];
    }
    cp_status_ok(&st);
    cb(arg, &st, ids, w);
    free(ids);
}

/* The room `room_id`, if it exists and (when `user` is not NULL) has `user` as a member;
 * else NULL with `st` saying which. */
static struct mroom *room_for(struct mem *m, const char *room_id, const char *user,
                              struct cp_status *st)
{
    struct mroom *r = room_find(m, room_id);
    if (r == NULL) {
        not_found(st, room_id);
        return NULL;
    }
    if (user == NULL)
        return r;
    bool found;
    member_pos(r, user, &found);
    if (!found) {
        cp_status_set(st, SB_CODE_NOT_ROOM_MEMBER, "user %s is not a member of room %s", user,
                      r->room.id);
        return NULL;
    }
    return r;
}

/* ---------------------------------------------------------------- publish idempotency */

static void midem_free(struct midem *e)
{
    free(e->first.id);
    free(e->first.room_id);
    free(e);
}

static void idem_purge(struct mem *m, int64_t mono_ms)
{
    struct midem *e = m->idem_head;
    while (e != NULL && e->expires <= mono_ms) {
        struct midem *next = e->next;
        sb_map_remove(&m->idem, e->key);
        midem_free(e);
        e = next;
    }
    m->idem_head = e;
    if (e == NULL)
        m->idem_tail = NULL;
}

/* "<room>\n<key>" into a new string (no id holds a newline), NULL on ENOMEM. */
static char *idem_key(const char *room_id, const char *key)
{
    size_t n = strlen(room_id) + strlen(key) + 2;
    char *k = malloc(n);
    if (k != NULL)
        snprintf(k, n, "%s\n%s", room_id, key);
    return k;
}

/* The first result of (room, key) within the window, or NULL. */
static const struct cp_message *idem_seen(struct mem *m, const char *room_id, const char *key)
{
    idem_purge(m, sb_time_mono_ms());
    char *k = idem_key(room_id, key);
    struct midem *e = k != NULL ? sb_map_get(&m->idem, k) : NULL;
    free(k);
    return e != NULL ? &e->first : NULL;
}

/* Remembers the result of (room, key); out of memory forgets it (a repeat then publishes
 * again, as without a key). */
static void idem_remember(struct mem *m, const struct cp_message *msg, const char *key)
{
    char *k = idem_key(msg->room_id, key);
    size_t kl = k != NULL ? strlen(k) : 0;
    struct midem *e = k != NULL ? calloc(1, sizeof(*e) + kl + 1) : NULL;
    if (e == NULL) {
        free(k);
        return;
    }
    memcpy(e->key, k, kl + 1);
    free(k);
    e->expires = sb_time_mono_ms() + CP_STORE_IDEM_TTL_MS;
    e->first.id = strdup(msg->id);
    e->first.room_id = strdup(msg->room_id);
    e->first.seq = msg->seq;
    e->first.timestamp = msg->timestamp;
    if (e->first.id == NULL || e->first.room_id == NULL ||
        sb_map_put(&m->idem, e->key, e) != SB_OK) {
        midem_free(e);
        return;
    }
    if (m->idem_tail != NULL)
        m->idem_tail->next = e;
    else
        m->idem_head = e;
    m->idem_tail = e;
}

static void message_append(struct cp_store *s, const struct cp_message *draft,
                           const char *require_member, int max_history, cp_store_append_fn *cb,
                           void *arg)
{
    struct mem *m = (struct mem *)s;
    struct cp_status st;
    struct mroom *r = room_for(m, draft->room_id, require_member, &st);
    if (r == NULL) {
        cb(arg, &st, NULL);
        return;
    }
    if (r->room.archived) {
        cp_status_set(&st, SB_CODE_ROOM_ARCHIVED, "room %s is archived", r->room.id);
        cb(arg, &st, NULL);
        return;
    }
    const char *key =
        draft->idem_key != NULL && draft->idem_key[0] != '\0' ? draft->idem_key : NULL;
    const struct cp_message *first = key != NULL ? idem_seen(m, r->room.id, key) : NULL;
    if (first != NULL) {
        struct cp_append_result dup = {.room = &r->room,
                                       .message = first,
                                       .members = r->members,
                                       .n_members = r->n_members,
                                       .members_rev = r->members_rev,
                                       .duplicate = true};
        cp_status_ok(&st);
        cb(arg, &st, &dup);
        return;
    }
    struct cp_message *msg = cp_message_dup(draft);
    if (msg == NULL) {
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        cb(arg, &st, NULL);
        return;
    }
    msg->seq = cp_history_next_seq(&r->hist);
    /* With history off the message lives only for the callback. */
    struct cp_message *keep = max_history > 0 ? msg : NULL;
    if (keep != NULL && cp_history_append(&r->hist, msg, (size_t)max_history) != SB_OK) {
        cp_message_free(msg);
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        cb(arg, &st, NULL);
        return;
    }
    if (keep == NULL)
        r->hist.last_seq = msg->seq;
    r->room.last_seq = msg->seq;
    struct cp_append_result res = {.room = &r->room,
                                   .message = msg,
                                   .members = r->members,
                                   .n_members = r->n_members,
                                   .members_rev = r->members_rev};
    if (key != NULL)
        idem_remember(m, msg, key);
    emit(m, (struct cp_store_event){
                .kind = CP_STORE_EV_MESSAGE, .room_id = r->room.id, .message = msg});
    cp_status_ok(&st);
    cb(arg, &st, &res);
    if (keep == NULL)
        cp_message_free(msg);
}

static void history_query(struct cp_store *s, const struct cp_history_query *q,
                          const char *require_member, cp_store_history_fn *cb, void *arg)
{
    struct mem *m = (struct mem *)s;
    struct cp_status st;
    struct mroom *r = room_for(m, q->room_id, require_member, &st);
    if (r == NULL) {
        cb(arg, &st, NULL);
        return;
    }
    struct cp_history_result res = {0};
    const struct cp_message **msgs = NULL;
    if (cp_history_query(&r->hist, q, &msgs, &res.n_messages, &res.gap) != SB_OK) {
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        cb(arg, &st, NULL);
        return;
    }
    res.messages = msgs;
    res.last_seq = r->hist.last_seq;
    cp_status_ok(&st);
    cb(arg, &st, &res);
    free(msgs);
}

/* ---------------------------------------------------------------- updates */

static void oom(struct cp_status *st)
{
    cp_status_set(st, SB_CODE_INTERNAL, "out of memory");
}

static void room_update(struct cp_store *s, const char *room_id, cp_room_edit_fn *edit,
                        void *edit_arg, cp_store_room_fn *cb, void *arg)
{
    struct mem *m = (struct mem *)s;
    struct cp_status st;
    struct mroom *r = room_find(m, room_id);
    if (r == NULL) {
        not_found(&st, room_id);
        cb(arg, &st, NULL);
        return;
    }
    struct cp_room *copy = cp_room_dup(&r->room);
    if (copy == NULL) {
        oom(&st);
        cb(arg, &st, NULL);
        return;
    }
    cp_status_ok(&st);
    edit(edit_arg, copy, &st);
    if (st.code != SB_CODE_NONE) {
        cp_room_free(copy, true);
        cb(arg, &st, NULL);
        return;
    }
    /* Keep what the store owns; take the rest from the edited copy. */
    struct cp_room old = r->room;
    free(copy->id);
    copy->id = old.id;
    copy->member_count = old.member_count;
    copy->created_at = old.created_at;
    copy->last_seq = old.last_seq;
    copy->updated_at = sb_time_now_ms();
    old.id = NULL;
    r->room = *copy;
    free(copy);
    cp_room_free(&old, false);
    emit(m, (struct cp_store_event){
                .kind = CP_STORE_EV_ROOM, .room_id = r->room.id, .room = &r->room});
    cb(arg, &st, &r->room);
}

static void member_set_role(struct cp_store *s, const char *room_id, const char *user_id,
                            enum cp_role role, cp_store_members_fn *cb, void *arg)
{
    struct mem *m = (struct mem *)s;
    struct cp_status st;
    struct mroom *r = room_for(m, room_id, user_id, &st);
    if (r == NULL) {
        cb(arg, &st, NULL, 0);
        return;
    }
    bool found;
    size_t i = member_pos(r, user_id, &found);
    r->members[i].role = role;
    cp_status_ok(&st);
    cb(arg, &st, &r->members[i], 1);
}

static void message_update(struct cp_store *s, const char *room_id, const char *message_id,
                           cp_message_edit_fn *edit, void *edit_arg, cp_store_message_fn *cb,
                           void *arg)
{
    struct mem *m = (struct mem *)s;
    struct cp_status st;
    struct mroom *r = room_for(m, room_id, NULL, &st);
    if (r == NULL) {
        cb(arg, &st, NULL);
        return;
    }
    size_t i = cp_history_find(&r->hist, message_id);
    if (i == r->hist.count) {
        cp_status_set(&st, SB_CODE_MESSAGE_NOT_FOUND, "message %s is not in the history of room %s",
                      message_id, room_id);
        cb(arg, &st, NULL);
        return;
    }
    struct cp_message *copy = cp_message_edited(cp_history_at(&r->hist, i), edit, edit_arg, &st);
    if (copy == NULL) {
        cb(arg, &st, NULL);
        return;
    }
    cp_history_replace(&r->hist, i, copy);
    emit(m, (struct cp_store_event){
                .kind = CP_STORE_EV_MESSAGE_UPDATE, .room_id = r->room.id, .message = copy});
    cb(arg, &st, copy);
}

static void history_trim(struct cp_store *s, const char *room_id, int64_t before_time,
                         cp_store_count_fn *cb, void *arg)
{
    struct mem *m = (struct mem *)s;
    struct cp_status st;
    struct mroom *r = room_for(m, room_id, NULL, &st);
    if (r == NULL) {
        cb(arg, &st, 0);
        return;
    }
    size_t n = cp_history_trim_before(&r->hist, before_time);
    cp_status_ok(&st);
    cb(arg, &st, (int64_t)n);
}

/* ---------------------------------------------------------------- documents */

static size_t doc_pos(const struct mem *m, const char *key, bool *found)
{
    size_t lo = 0, hi = m->n_docs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(m->docs[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < m->n_docs && strcmp(m->docs[lo].key, key) == 0;
    return lo;
}

static struct cp_doc doc_view(const struct mdoc *d)
{
    return (struct cp_doc){.key = d->key, .value = d->value, .len = d->len, .version = d->version};
}

/* Keys and prefixes as the etcd store takes them (cp_keys_doc), so that a key only etcd would
 * refuse fails in memory mode too. */
static bool doc_key_ok(const char *key, bool prefix, struct cp_status *st)
{
    char k[CP_KEYS_DOC_MAX];
    if ((prefix ? cp_keys_doc_prefix(key, k, sizeof(k)) : cp_keys_doc(key, k, sizeof(k))) == SB_OK)
        return true;
    cp_status_set(st, SB_CODE_INVALID_MESSAGE, "document %s \"%.64s\" is not valid",
                  prefix ? "prefix" : "key", key ? key : "(null)");
    return false;
}

static void doc_get(struct cp_store *s, const char *key, cp_store_doc_fn *cb, void *arg)
{
    struct mem *m = (struct mem *)s;
    struct cp_status st;
    if (!doc_key_ok(key, false, &st)) {
        cb(arg, &st, NULL);
        return;
    }
    cp_status_ok(&st);
    bool found;
    size_t i = doc_pos(m, key, &found);
    if (!found) {
        cb(arg, &st, NULL);
        return;
    }
    struct cp_doc d = doc_view(&m->docs[i]);
    cb(arg, &st, &d);
}

static void doc_list(struct cp_store *s, const char *prefix, cp_store_docs_fn *cb, void *arg)
{
    struct mem *m = (struct mem *)s;
    struct cp_status st;
    if (!doc_key_ok(prefix, true, &st)) {
        cb(arg, &st, NULL, 0);
        return;
    }
    bool found;
    size_t plen = strlen(prefix);
    size_t start = doc_pos(m, prefix, &found), end = start;
    while (end < m->n_docs && strncmp(m->docs[end].key, prefix, plen) == 0)
        end++;
    struct cp_doc *out = end > start ? malloc((end - start) * sizeof(*out)) : NULL;
    if (end > start && out == NULL) {
        oom(&st);
        cb(arg, &st, NULL, 0);
        return;
    }
    for (size_t i = start; i < end; i++)
        out[i - start] = doc_view(&m->docs[i]);
    cp_status_ok(&st);
    cb(arg, &st, out, end - start);
    free(out);
}

/* Removes doc i and reports it. */
static void doc_remove_at(struct mem *m, size_t i)
{
    struct mdoc d = m->docs[i];
    memmove(&m->docs[i], &m->docs[i + 1], (m->n_docs - i - 1) * sizeof(*m->docs));
    m->n_docs--;
    struct cp_doc gone = {.key = d.key, .value = NULL, .len = 0, .version = 0};
    emit(m, (struct cp_store_event){.kind = CP_STORE_EV_DOC, .doc = &gone});
    free(d.key);
    free(d.value);
}

static void doc_write(struct cp_store *s, const struct cp_doc_op *ops, size_t n,
                      cp_store_write_fn *cb, void *arg)
{
    struct mem *m = (struct mem *)s;
    struct cp_status st;
    /* The etcd store's limits: one txn of at most 64 ops, valid keys. */
    if (n > 64) {
        cp_status_set(&st, SB_CODE_INVALID_MESSAGE, "a document write takes at most 64 ops");
        cb(arg, &st, NULL, 0);
        return;
    }
    for (size_t k = 0; k < n; k++) {
        if (!doc_key_ok(ops[k].key, ops[k].prefix, &st)) {
            cb(arg, &st, NULL, 0);
            return;
        }
        if (ops[k].prefix && ops[k].value != NULL) {
            cp_status_set(&st, SB_CODE_INVALID_MESSAGE, "a prefix delete takes no value");
            cb(arg, &st, NULL, 0);
            return;
        }
    }
    int64_t *versions = calloc(n ? n : 1, sizeof(*versions));
    if (versions == NULL) {
        oom(&st);
        cb(arg, &st, NULL, 0);
        return;
    }
    /* Check every expectation first: all or nothing. */
    for (size_t k = 0; k < n; k++) {
        if (ops[k].prefix || ops[k].expect < 0)
            continue;
        bool found;
        size_t i = doc_pos(m, ops[k].key, &found);
        int64_t have = found ? m->docs[i].version : 0;
        if (have != ops[k].expect) {
            cp_status_set(&st, SB_CODE_CONFLICT, "%s changed concurrently", ops[k].key);
            free(versions);
            cb(arg, &st, NULL, 0);
            return;
        }
    }
    /* Reserve room for every put so that nothing fails half-way. */
    if (grow_array((void **)&m->docs, &m->cap_docs, m->n_docs + n, sizeof(*m->docs)) != 0) {
        free(versions);
        oom(&st);
        cb(arg, &st, NULL, 0);
        return;
    }
    for (size_t k = 0; k < n; k++) {
        const struct cp_doc_op *op = &ops[k];
        bool found;
        size_t i = doc_pos(m, op->key, &found);
        if (op->prefix) {
            size_t plen = strlen(op->key);
            while (i < m->n_docs && strncmp(m->docs[i].key, op->key, plen) == 0)
                doc_remove_at(m, i);
            continue;
        }
        if (op->value == NULL) {
            if (found)
                doc_remove_at(m, i);
            continue;
        }
        char *val = strdup(op->value);
        char *key = found ? NULL : strdup(op->key);
        if (val == NULL || (!found && key == NULL)) {
            /* Out of memory half-way: rare enough to report as internal after partial work. */
            free(val);
            free(key);
            free(versions);
            oom(&st);
            cb(arg, &st, NULL, 0);
            return;
        }
        if (found) {
            free(m->docs[i].value);
        } else {
            memmove(&m->docs[i + 1], &m->docs[i], (m->n_docs - i) * sizeof(*m->docs));
            m->n_docs++;
            m->docs[i].key = key;
        }
        m->docs[i].value = val;
        m->docs[i].len = strlen(val);
        m->docs[i].version = m->rev + 1;
        versions[k] = m->docs[i].version;
        struct cp_doc d = doc_view(&m->docs[i]);
        emit(m, (struct cp_store_event){.kind = CP_STORE_EV_DOC, .doc = &d});
    }
    cp_status_ok(&st);
    cb(arg, &st, versions, n);
    free(versions);
}

static void observe(struct cp_store *s, cp_store_event_fn *fn, void *arg)
{
    struct mem *m = (struct mem *)s;
    m->obs_fn = fn;
    m->obs_arg = arg;
}

static void destroy(struct cp_store *s)
{
    struct mem *m = (struct mem *)s;
    for (size_t i = 0; i < m->n_rooms; i++)
        mroom_free(m, m->rooms[i]);
    free(m->rooms);
    for (size_t i = 0; i < m->n_docs; i++) {
        free(m->docs[i].key);
        free(m->docs[i].value);
    }
    free(m->docs);
    sb_map_fini(&m->users);
    while (m->idem_head != NULL) {
        struct midem *e = m->idem_head;
        m->idem_head = e->next;
        midem_free(e);
    }
    sb_map_fini(&m->idem);
    free(m);
}

static const struct cp_store_ops memory_ops = {
    .destroy = destroy,
    .room_create = room_create,
    .room_get = room_get,
    .room_list = room_list,
    .room_delete = room_delete,
    .member_add = member_add,
    .member_remove = member_remove,
    .members_list = members_list,
    .user_rooms = user_rooms,
    .user_peers = user_peers,
    .message_append = message_append,
    .history_query = history_query,
    .room_update = room_update,
    .member_set_role = member_set_role,
    .message_update = message_update,
    .history_trim = history_trim,
    .doc_get = doc_get,
    .doc_list = doc_list,
    .doc_write = doc_write,
    .observe = observe,
};

struct cp_store *cp_store_memory_create(void)
{
    struct mem *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->base.ops = &memory_ops;
    sb_map_init(&m->users);
    sb_map_init(&m->idem);
    return &m->base;
}

void cp_store_memory_set_hooks(struct cp_store *s, const struct cp_cluster_hooks *hooks)
{
    ((struct mem *)s)->hooks = *hooks;
}
