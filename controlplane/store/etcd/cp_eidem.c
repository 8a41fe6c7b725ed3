/* Publish idempotency records of the etcd Store (docs/distributed.md): sb/idem/<room>/<hash> =
 * {k, id, seq} on the shared idempotency lease, written in the same fenced txn as the message
 * (which fails when the key has a record already, whoever wrote it), and known in memory for
 * two minutes: loaded with a claim, after a failed commit, and from this replica's commits. */
#include "cp_estore_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_ecodec.h"
#include "cp_keys.h"

#define IDEM_TTL_MS 120000

char *cp_eidem_key(const char *room_id, const char *key)
{
    char *k;
    return asprintf(&k, "%s\n%s", room_id, key) < 0 ? NULL : k;
}

static void record_free(void *p)
{
    struct cp_eidem *x = p;
    cp_message_free(x->stored);
    free(x);
}

void cp_eidem_add(struct cp_estore *s, const char *room_id, const char *key, const char *id,
                  int64_t seq)
{
    char *k = cp_eidem_key(room_id, key);
    if (k == NULL || sb_map_get(&s->idem, k) != NULL) {
        free(k);
        return;
    }
    size_t n = strlen(id) + 1;
    struct cp_eidem *e = malloc(sizeof(*e) + n);
    if (e != NULL) {
        *e = (struct cp_eidem){.seq = seq, .expires = cp_estore_mono(s) + IDEM_TTL_MS};
        memcpy(e->message_id, id, n);
        if (sb_map_put(&s->idem, k, e) != SB_OK)
            free(e);
    }
    free(k);
}

void cp_eidem_load(struct cp_estore *s, const struct cp_etcd_result *r)
{
    for (size_t i = 0; i < r->n_kvs; i++) {
        struct cp_keys_parts p;
        struct cp_ecodec_idem x;
        if (cp_keys_parse(r->kvs[i].key, r->kvs[i].key_len, &p) != SB_OK ||
            cp_ecodec_idem_parse(r->kvs[i].value, r->kvs[i].value_len, &x) != SB_OK)
            continue;
        cp_eidem_add(s, p.a, x.key, x.message_id, x.seq);
        cp_ecodec_idem_fini(&x);
    }
}

struct cp_eidem *cp_eidem_find(struct cp_estore *s, const char *room_id, const char *key)
{
    if (key == NULL)
        return NULL;
    char *k = cp_eidem_key(room_id, key);
    struct cp_eidem *e = k ? sb_map_get(&s->idem, k) : NULL;
    free(k);
    return e != NULL && e->expires > cp_estore_mono(s) ? e : NULL;
}

void cp_eidem_keep_stored(struct cp_estore *s, const char *room_id, const struct cp_etcd_result *r,
                          struct cp_message *const *msgs, size_t n)
{
    for (size_t i = 0; r != NULL && i < r->n_kvs; i++) {
        struct cp_ecodec_idem x;
        if (cp_ecodec_idem_parse(r->kvs[i].value, r->kvs[i].value_len, &x) != SB_OK)
            continue;
        char *k = cp_eidem_key(room_id, x.key);
        struct cp_eidem *e = k ? sb_map_get(&s->idem, k) : NULL;
        for (size_t m = 0; e != NULL && e->stored == NULL && m < n; m++)
            if (msgs[m] != NULL && msgs[m]->seq == x.seq && strcmp(msgs[m]->id, e->message_id) == 0)
                e->stored = cp_message_dup(msgs[m]);
        free(k);
        cp_ecodec_idem_fini(&x);
    }
}

bool cp_eidem_collides(const char *room_id, const char *key, const struct cp_etcd_result *r)
{
    char hash[17], ik[CP_KEYS_MAX];
    cp_keys_idem_hash(key, hash);
    if (r == NULL || cp_keys_idem(room_id, hash, ik, sizeof(ik)) != SB_OK)
        return false;
    for (size_t i = 0; i < r->n_kvs; i++) {
        if (r->kvs[i].key_len != strlen(ik) || memcmp(r->kvs[i].key, ik, r->kvs[i].key_len) != 0)
            continue;
        struct cp_ecodec_idem x;
        if (cp_ecodec_idem_parse(r->kvs[i].value, r->kvs[i].value_len, &x) != SB_OK)
            return true;
        bool other = strcmp(x.key, key) != 0;
        cp_ecodec_idem_fini(&x);
        return other;
    }
    return false;
}

void cp_eidem_put(struct cp_estore *s, struct cp_etxn *t, const char *room_id, const char *key,
                  const char *message_id, int64_t seq)
{
    char hash[17], ik[CP_KEYS_MAX];
    cp_keys_idem_hash(key, hash);
    char *v = cp_ecodec_idem_json(key, message_id, seq);
    if (v == NULL || cp_keys_idem(room_id, hash, ik, sizeof(ik)) != SB_OK) {
        t->failed = true;
    } else {
        cp_etxn_cmp(t, ik, CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, 0);
        cp_etxn_put(t, ik, v, strlen(v), s->idem_lease != 0 ? s->idem_lease : s->lease);
    }
    free(v);
}

void cp_eidem_purge(struct cp_estore *s, int64_t now)
{
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&s->idem, &it);
    while ((e = sb_map_iter_next(&s->idem, &it)) != NULL) {
        struct cp_eidem *x = e->value;
        if (x != NULL && x->expires <= now) {
            record_free(x);
            e->value = NULL;
        }
    }
    /* Remove the freed entries (cannot remove while iterating). */
    for (;;) {
        const char *dead = NULL;
        sb_map_iter_init(&s->idem, &it);
        while ((e = sb_map_iter_next(&s->idem, &it)) != NULL)
            if (e->value == NULL) {
                dead = e->key;
                break;
            }
        if (dead == NULL)
            break;
        sb_map_remove(&s->idem, dead);
    }
}

void cp_eidem_fini(struct cp_estore *s)
{
    cp_estore_map_fini(&s->idem, record_free);
}
