/* Hash map with FNV-1a hashing. Keys come from clients (ids), but the map is per process and
 * ids are validated to a short alphabet, so a seeded hash is left for a later issue. */
#include "cp_map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return (size_t)(h ^ (h >> 32));
}

void cp_map_init(struct cp_map *m)
{
    m->buckets = NULL;
    m->nbuckets = 0;
    m->count = 0;
}

void cp_map_fini(struct cp_map *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct cp_map_entry *e = m->buckets[i];
        while (e != NULL) {
            struct cp_map_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    cp_map_init(m);
}

static struct cp_map_entry **find(const struct cp_map *m, const char *key, size_t h)
{
    if (m->nbuckets == 0)
        return NULL;
    struct cp_map_entry **pp = &m->buckets[h & (m->nbuckets - 1)];
    for (; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
            return pp;
    }
    return pp;
}

void *cp_map_get(const struct cp_map *m, const char *key)
{
    struct cp_map_entry **pp = find(m, key, hash_str(key));
    return (pp != NULL && *pp != NULL) ? (*pp)->value : NULL;
}

static enum sb_err grow(struct cp_map *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
    struct cp_map_entry **nb = calloc(n, sizeof(*nb));
    if (nb == NULL)
        return SB_ENOMEM;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct cp_map_entry *e = m->buckets[i];
        while (e != NULL) {
            struct cp_map_entry *next = e->next;
            e->next = nb[e->hash & (n - 1)];
            nb[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = nb;
    m->nbuckets = n;
    return SB_OK;
}

enum sb_err cp_map_put(struct cp_map *m, const char *key, void *value)
{
    size_t h = hash_str(key);
    struct cp_map_entry **pp = find(m, key, h);
    if (pp != NULL && *pp != NULL) {
        (*pp)->value = value;
        return SB_OK;
    }
    if (m->count >= m->nbuckets && grow(m) != SB_OK && m->nbuckets == 0)
        return SB_ENOMEM;
    size_t klen = strlen(key);
    struct cp_map_entry *e = malloc(sizeof(*e) + klen + 1);
    if (e == NULL)
        return SB_ENOMEM;
    memcpy(e->key, key, klen + 1);
    e->hash = h;
    e->value = value;
    size_t b = h & (m->nbuckets - 1);
    e->next = m->buckets[b];
    m->buckets[b] = e;
    m->count++;
    return SB_OK;
}

void *cp_map_remove(struct cp_map *m, const char *key)
{
    struct cp_map_entry **pp = find(m, key, hash_str(key));
    if (pp == NULL || *pp == NULL)
        return NULL;
    struct cp_map_entry *e = *pp;
    void *v = e->value;
    *pp = e->next;
    free(e);
    m->count--;
    return v;
}

void cp_map_iter_init(const struct cp_map *m, struct cp_map_iter *it)
{
    it->bucket = 0;
    it->next = m->nbuckets ? m->buckets[0] : NULL;
}

struct cp_map_entry *cp_map_iter_next(const struct cp_map *m, struct cp_map_iter *it)
{
    while (it->next == NULL) {
        it->bucket++;
        if (it->bucket >= m->nbuckets)
            return NULL;
        it->next = m->buckets[it->bucket];
    }
    struct cp_map_entry *e = it->next;
    it->next = e->next;
    return e;
}
