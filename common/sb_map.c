/* Hash map with FNV-1a hashing. Keys come from clients (ids), but ids are validated to a short
 * alphabet and length, and each map is per process. Buckets start at two, allocated at the first
 * put: the data plane keeps several maps per user, most of them empty or holding one entry. */
#include "sb_map.h"

#include <stdlib.h>
#include <string.h>

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

void sb_map_init(struct sb_map *m)
{
    m->buckets = NULL;
    m->nbuckets = 0;
    m->count = 0;
}

void sb_map_fini(struct sb_map *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct sb_map_entry *e = m->buckets[i];
        while (e != NULL) {
            struct sb_map_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    sb_map_init(m);
}

struct sb_map *sb_map_create(void)
{
    return calloc(1, sizeof(struct sb_map));
}

void sb_map_destroy(struct sb_map *m)
{
    if (m == NULL)
        return;
    sb_map_fini(m);
    free(m);
}

static struct sb_map_entry **slot(const struct sb_map *m, const char *key, uint32_t h)
{
    struct sb_map_entry **pp = &m->buckets[h & (m->nbuckets - 1)];
    while (*pp != NULL && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
        pp = &(*pp)->next;
    return pp;
}

void *sb_map_get(const struct sb_map *m, const char *key)
{
    if (m->nbuckets == 0)
        return NULL;
    struct sb_map_entry *e = *slot(m, key, hash_str(key));
    return e != NULL ? e->value : NULL;
}

/* Doubles the buckets; on ENOMEM the map keeps working with longer chains. */
static void grow(struct sb_map *m)
{
    size_t n = m->nbuckets * 2;
    struct sb_map_entry **nb = calloc(n, sizeof(*nb));
    if (nb == NULL)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct sb_map_entry *e = m->buckets[i];
        while (e != NULL) {
            struct sb_map_entry *next = e->next;
            e->next = nb[e->hash & (n - 1)];
            nb[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = nb;
    m->nbuckets = n;
}

enum sb_err sb_map_put(struct sb_map *m, const char *key, void *value)
{
    if (m->nbuckets == 0) {
        m->buckets = calloc(2, sizeof(*m->buckets));
        if (m->buckets == NULL)
            return SB_ENOMEM;
        m->nbuckets = 2;
    }
    uint32_t h = hash_str(key);
    struct sb_map_entry **pp = slot(m, key, h);
    if (*pp != NULL) {
        (*pp)->value = value;
        return SB_OK;
    }
    size_t klen = strlen(key);
    struct sb_map_entry *e = malloc(sizeof(*e) + klen + 1);
    if (e == NULL)
        return SB_ENOMEM;
    e->next = NULL;
    e->value = value;
    e->hash = h;
    memcpy(e->key, key, klen + 1);
    *pp = e;
    if (++m->count > m->nbuckets)
        grow(m);
    return SB_OK;
}

void *sb_map_remove(struct sb_map *m, const char *key)
{
    if (m->nbuckets == 0)
        return NULL;
    struct sb_map_entry **pp = slot(m, key, hash_str(key));
    struct sb_map_entry *e = *pp;
    if (e == NULL)
        return NULL;
    *pp = e->next;
    void *v = e->value;
    free(e);
    m->count--;
    return v;
}

void sb_map_iter_init(const struct sb_map *m, struct sb_map_iter *it)
{
    (void)m;
    it->bucket = 0;
    it->next = NULL;
}

struct sb_map_entry *sb_map_iter_next(const struct sb_map *m, struct sb_map_iter *it)
{
    struct sb_map_entry *e = it->next;
    while (e == NULL) {
        if (it->bucket >= m->nbuckets)
            return NULL;
        e = m->buckets[it->bucket++];
    }
    it->next = e->next;
    return e;
}
