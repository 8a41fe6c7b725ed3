/* String-keyed hash map (chained, grows at load 1): the data plane's indexes by id.
 * Keys are copied; values are borrowed pointers the caller owns. Single thread (lws). */
#ifndef DP_MAP_H
#define DP_MAP_H

#include <stdbool.h>
#include <stddef.h>

#include "sb_err.h"

struct dp_map;

struct dp_map_iter {
    size_t bucket;
    void *node;
};

/* Returns a new empty map, or NULL on ENOMEM. */
struct dp_map *dp_map_create(void);

/* Frees the map and its keys (not the values). NULL is ignored. */
void dp_map_destroy(struct dp_map *m);

/* Returns the value stored under `key`, or NULL. */
void *dp_map_get(const struct dp_map *m, const char *key);

/* Stores `value` (non-NULL) under `key`, replacing any previous value. SB_ENOMEM on failure. */
enum sb_err dp_map_put(struct dp_map *m, const char *key, void *value);

/* Removes `key`; returns its value or NULL if absent. */
void *dp_map_remove(struct dp_map *m, const char *key);

size_t dp_map_size(const struct dp_map *m);

/* Iteration: zero the iterator, then call dp_map_next until it returns false. Removing the
 * entry just returned is allowed; other changes during iteration are not. */
bool dp_map_next(const struct dp_map *m, struct dp_map_iter *it, const char **key, void **value);

#endif
