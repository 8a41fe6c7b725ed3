/* Three maps: user -> {sessions, rooms, channels}, room -> users, channel -> users. A user entry
 * exists while the user has a local session; its memberships go with it. */
#include "dp_router.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_map.h"

#define PREFETCH_AHEAD 8

struct user {
    char *id;
    struct dp_session **s;
    size_t n, cap;
    struct sb_map *rooms;    /* room_id -> user (marker) */
    struct sb_map *channels; /* channel_id -> user (marker) */
    struct sb_map *revs;     /* "r:<room>" / "c:<channel>" -> struct rev: Membership revisions */
};

struct rev {
    int64_t v;
};

struct dp_router {
    struct sb_map *users; /* user_id -> struct user */
    struct sb_map *rooms; /* room_id -> struct set */
    struct sb_map *channels;
    struct sb_map *seqs; /* room_id -> struct rev: last room seq delivered here */
};

static void free_revs(struct sb_map *m)
{
    if (m == NULL)
        return;
    struct sb_map_iter it = {0};
    const char *k;
    void *v;
    while (sb_map_next(m, &it, &k, &v)) {
        sb_map_remove(m, k);
        free(v);
    }
    sb_map_destroy(m);
}

struct dp_router *dp_router_create(void)
{
    struct dp_router *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->users = sb_map_create();
    r->rooms = sb_map_create();
    r->channels = sb_map_create();
    r->seqs = sb_map_create();
    if (r->users == NULL || r->rooms == NULL || r->channels == NULL || r->seqs == NULL) {
        dp_router_destroy(r);
        return NULL;
    }
    return r;
}

/* The local members of one room (or subscribers of one channel): the users, and every session
 * of theirs in one flat array, which is what a fan-out walks. Walking the users map instead
 * cost three dependent cache misses per member (map node, user, session array) before the
 * session itself: at 10,000 members that walk was a quarter of the data plane's time. The
 * array is kept up to date as members and sessions come and go (removal scans it: one
 * sequential pass per change). If it cannot grow, it is marked stale and rebuilt at the next
 * visit, or the walk falls back to the map. */
struct set {
    struct sb_map *users; /* user_id -> struct user */
    struct dp_session **flat;
    size_t n_flat, cap_flat;
    bool stale;
};

static void set_free(struct set *set)
{
    sb_map_destroy(set->users);
    free(set->flat);
    free(set);
}

static bool flat_reserve(struct set *set, size_t more)
{
    if (set->n_flat + more <= set->cap_flat)
        return true;
    size_t cap = set->cap_flat ? set->cap_flat : 4;
    while (cap < set->n_flat + more)
        cap *= 2;
    struct dp_session **v = realloc(set->flat, cap * sizeof(*v));
    if (v == NULL)
        return false;
    set->flat = v;
    set->cap_flat = cap;
    return true;
}

static void flat_add(struct set *set, struct dp_session *const *ss, size_t n)
{
    if (set->stale || n == 0)
        return;
    if (!flat_reserve(set, n)) {
        set->stale = true;
        return;
    }
    memcpy(set->flat + set->n_flat, ss, n * sizeof(*ss));
    set->n_flat += n;
}

static void flat_remove(struct set *set, const struct dp_session *s)
{
    for (size_t i = 0; i < set->n_flat; i++) {
        if (set->flat[i] == s) {
            set->flat[i] = set->flat[--set->n_flat];
            return;
        }
    }
}

static void set_remove(struct sb_map *index, const char *key, struct user *u, struct sb_map *seqs)
{
    struct set *set = sb_map_get(index, key);
    if (set == NULL)
        return;
    if (sb_map_remove(set->users, u->id) != NULL)
        for (size_t i = 0; i < u->n; i++)
            flat_remove(set, u->s[i]);
    if (sb_map_size(set->users) == 0) {
        sb_map_remove(index, key);
        set_free(set);
        /* No local member left: the room's seq is forgotten with it (a room deleted and
         * created again starts from 1). */
        if (seqs != NULL)
            free(sb_map_remove(seqs, key));
    }
}

static enum sb_err set_add(struct sb_map *index, const char *key, struct user *u)
{
    struct set *set = sb_map_get(index, key);
    if (set == NULL) {
        set = calloc(1, sizeof(*set));
        if (set == NULL)
            return SB_ENOMEM;
        set->users = sb_map_create();
        if (set->users == NULL || sb_map_put(index, key, set) != SB_OK) {
            set_free(set);
            return SB_ENOMEM;
        }
    }
    if (sb_map_get(set->users, u->id) != NULL)
        return SB_OK;
    if (sb_map_put(set->users, u->id, u) != SB_OK) {
        if (sb_map_size(set->users) == 0) {
            sb_map_remove(index, key);
            set_free(set);
        }
        return SB_ENOMEM;
    }
    flat_add(set, u->s, u->n);
    return SB_OK;
}

/* A session of `u` came or went: every set of the user follows. */
static void sets_session(struct dp_router *r, struct user *u, struct dp_session *s, bool add)
{
    struct sb_map *idx[2] = {r->rooms, r->channels};
    struct sb_map *mine[2] = {u->rooms, u->channels};
    for (int k = 0; k < 2; k++) {
        struct sb_map_iter it = {0};
        const char *key;
        while (sb_map_next(mine[k], &it, &key, NULL)) {
            struct set *set = sb_map_get(idx[k], key);
            if (set == NULL)
                continue;
            if (add)
                flat_add(set, &s, 1);
            else
                flat_remove(set, s);
        }
    }
}

static void clear_user(struct dp_router *r, struct user *u)
{
    struct sb_map_iter it = {0};
    const char *k;
    while (sb_map_next(u->rooms, &it, &k, NULL)) {
        set_remove(r->rooms, k, u, r->seqs);
        sb_map_remove(u->rooms, k);
    }
    memset(&it, 0, sizeof(it));
    while (sb_map_next(u->channels, &it, &k, NULL)) {
        set_remove(r->channels, k, u, NULL);
        sb_map_remove(u->channels, k);
    }
}

static void free_user(struct user *u)
{
    sb_map_destroy(u->rooms);
    sb_map_destroy(u->channels);
    free_revs(u->revs);
    free(u->s);
    free(u->id);
    free(u);
}

void dp_router_destroy(struct dp_router *r)
{
    if (r == NULL)
        return;
    if (r->users != NULL) {
        struct sb_map_iter it = {0};
        void *v;
        while (sb_map_next(r->users, &it, NULL, &v)) {
            clear_user(r, v);
            free_user(v);
        }
    }
    sb_map_destroy(r->users);
    sb_map_destroy(r->rooms); /* empty now: every set went with its last user */
    sb_map_destroy(r->channels);
    free_revs(r->seqs);
    free(r);
}

enum sb_err dp_router_add_session(struct dp_router *r, const char *user_id, struct dp_session *s)
{
    struct user *u = sb_map_get(r->users, user_id);
    if (u == NULL) {
        u = calloc(1, sizeof(*u));
        if (u == NULL)
            return SB_ENOMEM;
        u->id = strdup(user_id);
        u->rooms = sb_map_create();
        u->channels = sb_map_create();
        if (u->id == NULL || u->rooms == NULL || u->channels == NULL ||
            sb_map_put(r->users, user_id, u) != SB_OK) {
            free_user(u);
            return SB_ENOMEM;
        }
    }
    for (size_t i = 0; i < u->n; i++)
        if (u->s[i] == s)
            return SB_OK;
    if (u->n == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 2;
        struct dp_session **v = realloc(u->s, cap * sizeof(*v));
        if (v == NULL) {
            if (u->n == 0) {
                sb_map_remove(r->users, user_id);
                free_user(u);
            }
            return SB_ENOMEM;
        }
        u->s = v;
        u->cap = cap;
    }
    u->s[u->n++] = s;
    sets_session(r, u, s, true);
    return SB_OK;
}

void dp_router_remove_session(struct dp_router *r, const char *user_id, struct dp_session *s)
{
    struct user *u = sb_map_get(r->users, user_id);
    if (u == NULL)
        return;
    for (size_t i = 0; i < u->n; i++) {
        if (u->s[i] == s) {
            u->s[i] = u->s[--u->n];
            sets_session(r, u, s, false);
            break;
        }
    }
    if (u->n == 0) {
        clear_user(r, u);
        sb_map_remove(r->users, user_id);
        free_user(u);
    }
}

static enum sb_err set_member(struct dp_router *r, struct sb_map *index, bool rooms,
                              const char *user_id, const char *key, bool member)
{
    struct user *u = sb_map_get(r->users, user_id);
    if (u == NULL)
        return SB_OK;
    struct sb_map *mine = rooms ? u->rooms : u->channels;
    if (!member) {
        if (sb_map_remove(mine, key) != NULL)
            set_remove(index, key, u, rooms ? r->seqs : NULL);
        return SB_OK;
    }
    if (sb_map_get(mine, key) != NULL)
        return SB_OK;
    if (sb_map_put(mine, key, u) != SB_OK)
        return SB_ENOMEM;
    if (set_add(index, key, u) != SB_OK) {
        sb_map_remove(mine, key);
        return SB_ENOMEM;
    }
    return SB_OK;
}

enum sb_err dp_router_set_room(struct dp_router *r, const char *user_id, const char *room_id,
                               bool member)
{
    return set_member(r, r->rooms, true, user_id, room_id, member);
}

enum sb_err dp_router_set_channel(struct dp_router *r, const char *user_id, const char *channel_id,
                                  bool subscribed)
{
    return set_member(r, r->channels, false, user_id, channel_id, subscribed);
}

void dp_router_clear_memberships(struct dp_router *r)
{
    struct sb_map_iter it = {0};
    void *v;
    while (sb_map_next(r->users, &it, NULL, &v))
        clear_user(r, v);
}

static void visit_set(struct set *set, dp_router_visit_fn *fn, void *arg)
{
    if (set == NULL)
        return;
    if (set->stale) {
        /* rebuild; if that fails too, walk the users */
        set->n_flat = 0;
        set->stale = false;
        struct sb_map_iter it = {0};
        void *v;
        while (!set->stale && sb_map_next(set->users, &it, NULL, &v)) {
            struct user *u = v;
            flat_add(set, u->s, u->n);
        }
    }
    if (!set->stale) {
        /* The walk is bound by cache misses on the sessions (one per member at 10,000): fetch
         * the hot head of a session (its first two cache lines, see struct dp_session) a few
         * members ahead, so the loads overlap instead of waiting one after another. */
        for (size_t i = 0; i < set->n_flat; i++) {
            if (i + PREFETCH_AHEAD < set->n_flat) {
                const char *p = (const char *)set->flat[i + PREFETCH_AHEAD];
                __builtin_prefetch(p, 1);
                __builtin_prefetch(p + 64, 1);
            }
            fn(set->flat[i], arg);
        }
        return;
    }
    struct sb_map_iter it = {0};
    void *v;
    while (sb_map_next(set->users, &it, NULL, &v)) {
        struct user *u = v;
        for (size_t i = 0; i < u->n; i++)
            fn(u->s[i], arg);
    }
}

void dp_router_visit_room(struct dp_router *r, const char *room_id, dp_router_visit_fn *fn,
                          void *arg)
{
    visit_set(sb_map_get(r->rooms, room_id), fn, arg);
}

void dp_router_visit_channel(struct dp_router *r, const char *channel_id, dp_router_visit_fn *fn,
                             void *arg)
{
    visit_set(sb_map_get(r->channels, channel_id), fn, arg);
}

void dp_router_visit_user(struct dp_router *r, const char *user_id, dp_router_visit_fn *fn,
                          void *arg)
{
    struct user *u = sb_map_get(r->users, user_id);
    if (u == NULL)
        return;
    for (size_t i = 0; i < u->n; i++)
        fn(u->s[i], arg);
}

bool dp_router_is_member(const struct dp_router *r, const char *user_id, const char *room_id)
{
    struct user *u = sb_map_get(r->users, user_id);
    return u != NULL && sb_map_get(u->rooms, room_id) != NULL;
}

size_t dp_router_room_count(const struct dp_router *r)
{
    return sb_map_size(r->rooms);
}

size_t dp_router_user_count(const struct dp_router *r)
{
    return sb_map_size(r->users);
}

/* Records `v` under `key` in *m (created on demand) when it is above what is there. */
static enum sb_err note(struct sb_map **m, const char *key, int64_t v, bool *newer)
{
    *newer = true;
    if (*m == NULL && (*m = sb_map_create()) == NULL)
        return SB_ENOMEM;
    struct rev *x = sb_map_get(*m, key);
    if (x != NULL) {
        *newer = v > x->v;
        if (*newer)
            x->v = v;
        return SB_OK;
    }
    if ((x = malloc(sizeof(*x))) == NULL)
        return SB_ENOMEM;
    x->v = v;
    if (sb_map_put(*m, key, x) != SB_OK) {
        free(x);
        return SB_ENOMEM;
    }
    return SB_OK;
}

bool dp_router_membership_is_newer(struct dp_router *r, const char *user_id, bool room,
                                   const char *id, int64_t revision)
{
    if (revision <= 0)
        return true;
    struct user *u = sb_map_get(r->users, user_id);
    if (u == NULL)
        return true; /* nothing local to change anyway */
    char key[2 + 256];
    snprintf(key, sizeof(key), "%c:%s", room ? 'r' : 'c', id);
    bool newer = true;
    note(&u->revs, key, revision, &newer); /* ENOMEM: apply, as without revisions */
    return newer;
}

bool dp_router_seq_is_new(struct dp_router *r, const char *room_id, int64_t seq)
{
    if (seq <= 0 || sb_map_get(r->rooms, room_id) == NULL)
        return true;
    bool newer = true;
    note(&r->seqs, room_id, seq, &newer);
    return newer;
}
