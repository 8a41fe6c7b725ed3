/* String-keyed hash map of both planes: separate chaining, FNV-1a, power-of-two buckets that
 * are allocated at the first put and double at load 1. Keys are copied; values are borrowed
 * pointers the caller owns. Not thread-safe: one owner thread. */
#ifndef SB_MAP_H
#define SB_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"

struct sb_map_entry {
    struct sb_map_entry *next;
    void *value;
    uint32_t hash;
    char key[]; /* NUL-terminated copy */
};

/* Embed it (sb_map_init/fini) or allocate it (sb_map_create/destroy); zeroed storage is an
 * empty map that owns no memory. */
struct sb_map {
    struct sb_map_entry **buckets;
    size_t nbuckets; /* 0 or a power of two */
    size_t count;
};

void sb_map_init(struct sb_map *m);

/* Frees the entries (not the values) and leaves `m` empty. */
void sb_map_fini(struct sb_map *m);

/* Returns a new empty map, or NULL on ENOMEM. */
struct sb_map *sb_map_create(void);

/* Frees the map and its keys (not the values). NULL is ignored. */
void sb_map_destroy(struct sb_map *m);

/* Returns the value stored under `key`, or NULL. */
void *sb_map_get(const struct sb_map *m, const char *key);

/* Stores `value` under `key`, replacing any previous value. SB_ENOMEM leaves the map as it
 * was. */
enum sb_err sb_map_put(struct sb_map *m, const char *key, void *value);

/* Removes `key`; returns its value or NULL when absent. */
void *sb_map_remove(struct sb_map *m, const char *key);

static inline size_t sb_map_size(const struct sb_map *m)
{
    return m->count;
}

/* Iteration: a zeroed iterator (or sb_map_iter_init) starts it; sb_map_iter_next returns the
 * next entry or NULL at the end. The map must not change during iteration except by
 * sb_map_remove of the entry just returned. */
struct sb_map_iter {
    size_t bucket;
    struct sb_map_entry *next;
};

void sb_map_iter_init(const struct sb_map *m, struct sb_map_iter *it);
struct sb_map_entry *sb_map_iter_next(const struct sb_map *m, struct sb_map_iter *it);

/* The same walk as key/value out-parameters (either may be NULL): false at the end. */
static inline bool sb_map_next(const struct sb_map *m, struct sb_map_iter *it, const char **key,
                               void **value)
{
    struct sb_map_entry *e = sb_map_iter_next(m, it);
    if (e == NULL)
        return false;
    if (key != NULL)
        *key = e->key;
    if (value != NULL)
        *value = e->value;
    return true;
}

#endif
