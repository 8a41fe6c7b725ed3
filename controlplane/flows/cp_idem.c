/* Idempotency keys of BroadcastToRoom: (room, key) -> first message id and seq, kept for two
 * minutes in a map plus a FIFO for expiry (one fixed TTL). Checked and recorded on the
 * completion-queue thread; with the inline memory store no second call can run between the
 * check and the record (a distributed store must mark the key pending first). */
#include "cp_ctx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct idem {
    struct idem *next;
    char *message_id;
    int64_t seq;
    int64_t expires;
    char key[];
};

static char *make_key(const char *room_id, const char *key)
{
    size_t n = strlen(room_id) + strlen(key) + 2;
    char *k = malloc(n);
    if (k != NULL)
        snprintf(k, n, "%s\n%s", room_id, key);
    return k;
}

static void purge(struct cp_ctx *c, int64_t mono_ms)
{
    struct idem *e = c->idem_head;
    while (e != NULL && e->expires <= mono_ms) {
        struct idem *next = e->next;
        sb_map_remove(&c->idem, e->key);
        free(e->message_id);
        free(e);
        e = next;
    }
    c->idem_head = e;
    if (e == NULL)
        c->idem_tail = NULL;
}

int cp_idem_get(struct cp_ctx *c, const char *room_id, const char *key, int64_t mono_ms,
                const char **id_out, int64_t *seq_out)
{
    purge(c, mono_ms);
    char *k = make_key(room_id, key);
    if (k == NULL)
        return 0;
    struct idem *e = sb_map_get(&c->idem, k);
    free(k);
    if (e == NULL)
        return 0;
    *id_out = e->message_id;
    *seq_out = e->seq;
    return 1;
}

enum sb_err cp_idem_put(struct cp_ctx *c, const char *room_id, const char *key,
                        const char *message_id, int64_t seq, int64_t mono_ms)
{
    char *k = make_key(room_id, key);
    if (k == NULL)
        return SB_ENOMEM;
    size_t klen = strlen(k);
    struct idem *e = malloc(sizeof(*e) + klen + 1);
    if (e == NULL) {
        free(k);
        return SB_ENOMEM;
    }
    memcpy(e->key, k, klen + 1);
    free(k);
    e->message_id = strdup(message_id);
    e->seq = seq;
    e->expires = mono_ms + CP_IDEM_TTL_MS;
    e->next = NULL;
    if (e->message_id == NULL || sb_map_get(&c->idem, e->key) != NULL ||
        sb_map_put(&c->idem, e->key, e) != SB_OK) {
        free(e->message_id);
        free(e);
        return SB_ENOMEM;
    }
    struct idem *tail = c->idem_tail;
    if (tail != NULL)
        tail->next = e;
    else
        c->idem_head = e;
    c->idem_tail = e;
    return SB_OK;
}

void cp_idem_fini(struct cp_ctx *c)
{
    struct idem *e = c->idem_head;
    while (e != NULL) {
        struct idem *next = e->next;
        free(e->message_id);
        free(e);
        e = next;
    }
    c->idem_head = c->idem_tail = NULL;
    sb_map_fini(&c->idem);
}
