/* String-keyed hash map (separate chaining, power-of-two buckets, grows at load 1).
 * Keys are copied; values are borrowed pointers. Not thread-safe: one owner thread. */
#ifndef CP_MAP_H
#define CP_MAP_H

#include <stddef.h>

#include "sb_err.h"

struct cp_map_entry {
    struct cp_map_entry *next;
    size_t hash;
    void *value;
    char key[]; /* NUL-terminated copy */
};

struct cp_map {
    struct cp_map_entry **buckets;
    size_t nbuckets; /* 0 or a power of two */
    size_t count;
};

void cp_map_init(struct cp_map *m);

/* Frees the entries (not the values). */
void cp_map_fini(struct cp_map *m);

/* Returns the value stored under `key`, or NULL. */
void *cp_map_get(const struct cp_map *m, const char *key);

/* Stores `value` under `key` (replacing any previous value). SB_ENOMEM leaves the map as it was. */
enum sb_err cp_map_put(struct cp_map *m, const char *key, void *value);

/* Removes `key`; returns its value or NULL when absent. */
void *cp_map_remove(struct cp_map *m, const char *key);

/* Iteration: `it` starts at 0; returns the next entry or NULL at the end. The map must not be
 * modified during iteration except by cp_map_remove of the entry just returned. */
struct cp_map_iter {
    size_t bucket;
    struct cp_map_entry *next;
};
void cp_map_iter_init(const struct cp_map *m, struct cp_map_iter *it);
struct cp_map_entry *cp_map_iter_next(const struct cp_map *m, struct cp_map_iter *it);

#endif
