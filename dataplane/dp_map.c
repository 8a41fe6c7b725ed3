/* Separate chaining with FNV-1a; the bucket array doubles when entries exceed buckets. */
#include "dp_map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct node {
    struct node *next;
    uint32_t hash;
    void *value;
    char key[];
};

struct dp_map {
    struct node **b;
    size_t nb, n;
};

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

struct dp_map *dp_map_create(void)
{
    /* No buckets until the first put: the router keeps several maps per user, most of them
     * empty or holding one entry, and 16 empty buckets each cost ~140 bytes per connection. */
    return calloc(1, sizeof(struct dp_map));
}

void dp_map_destroy(struct dp_map *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nb; i++) {
        struct node *n = m->b[i];
        while (n != NULL) {
            struct node *next = n->next;
            free(n);
            n = next;
        }
    }
    free(m->b);
    free(m);
}

static struct node **slot(const struct dp_map *m, const char *key, uint32_t h)
{
    struct node **p = &m->b[h & (m->nb - 1)];
    while (*p != NULL && ((*p)->hash != h || strcmp((*p)->key, key) != 0))
        p = &(*p)->next;
    return p;
}

void *dp_map_get(const struct dp_map *m, const char *key)
{
    if (m->nb == 0)
        return NULL;
    struct node *n = *slot(m, key, hash(key));
    return n != NULL ? n->value : NULL;
}

static void grow(struct dp_map *m)
{
    size_t nb = m->nb * 2;
    struct node **b = calloc(nb, sizeof(*b));
    if (b == NULL)
        return; /* keep working with longer chains */
    for (size_t i = 0; i < m->nb; i++) {
        struct node *n = m->b[i];
        while (n != NULL) {
            struct node *next = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
            n = next;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

enum sb_err dp_map_put(struct dp_map *m, const char *key, void *value)
{
    if (m->nb == 0) {
        m->b = calloc(2, sizeof(*m->b));
        if (m->b == NULL)
            return SB_ENOMEM;
        m->nb = 2;
    }
    uint32_t h = hash(key);
    struct node **p = slot(m, key, h);
    if (*p != NULL) {
        (*p)->value = value;
        return SB_OK;
    }
    size_t kl = strlen(key);
    struct node *n = malloc(sizeof(*n) + kl + 1);
    if (n == NULL)
        return SB_ENOMEM;
    n->next = NULL;
    n->hash = h;
    n->value = value;
    memcpy(n->key, key, kl + 1);
    *p = n;
    if (++m->n > m->nb)
        grow(m);
    return SB_OK;
}

void *dp_map_remove(struct dp_map *m, const char *key)
{
    if (m->nb == 0)
        return NULL;
    struct node **p = slot(m, key, hash(key));
    struct node *n = *p;
    if (n == NULL)
        return NULL;
    *p = n->next;
    void *v = n->value;
    free(n);
    m->n--;
    return v;
}

size_t dp_map_size(const struct dp_map *m)
{
    return m->n;
}

bool dp_map_next(const struct dp_map *m, struct dp_map_iter *it, const char **key, void **value)
{
    struct node *n = it->node;
    while (n == NULL) {
        if (it->bucket >= m->nb)
            return false;
        n = m->b[it->bucket++];
    }
    it->node = n->next;
    if (key != NULL)
        *key = n->key;
    if (value != NULL)
        *value = n->value;
    return true;
}
