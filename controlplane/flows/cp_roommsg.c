/* Backend room messages (see cp_roommsg.h): a small heap context per SaveMessage keeps what the
 * answer needs after the Store (the room, the id and seq). */
#include "cp_roommsg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_time.h"

/* One SaveMessage in flight: what its answer needs after the Store. */
struct pub {
    struct cp_ctx *c;
    cp_roommsg_saved_fn *saved;
    void *arg;
    int64_t seq;
    char id[SB_ID_LEN];
    char room_id[];
};

/* A copy of `proto` with the room; NULL on ENOMEM. */
static struct pub *pub_new(const struct pub *proto, const char *room_id)
{
    size_t len = strlen(room_id);
    struct pub *b = malloc(sizeof(*b) + len + 1);
    if (b == NULL)
        return NULL;
    *b = *proto;
    memcpy(b->room_id, room_id, len + 1);
    return b;
}

static void pub_free(struct pub *b)
{
    free(b);
}

static void oom(struct cp_status *st)
{
    cp_status_set(st, SB_CODE_INTERNAL, "out of memory");
}

/* ---------------------------------------------------------------- BroadcastToRoom */

void cp_roommsg_broadcast(struct cp_ctx *c, const struct cp_publish *p, cp_rooms_publish_fn *cb,
                          void *arg)
{
    /* The Store deduplicates (room, idempotency key) with the append itself, on every replica
     * (struct cp_message.idem_key): nothing to remember here. */
    cp_rooms_publish(c, p, cb, arg);
}

/* ---------------------------------------------------------------- SaveMessage */

static void save_read(void *arg, const struct cp_status *st, const struct cp_history_result *res)
{
    struct pub *b = arg;
    const struct cp_message *m = NULL;
    if (st->code == SB_CODE_NONE && res->n_messages == 1 && res->messages[0]->seq == b->seq)
        m = res->messages[0];
    struct cp_status ok;
    cp_status_ok(&ok);
    b->saved(b->arg, &ok, b->id, b->seq, m);
    pub_free(b);
}

static void save_stored(void *arg, const struct cp_status *st, const char *message_id, int64_t seq)
{
    struct pub *b = arg;
    if (st->code != SB_CODE_NONE) {
        b->saved(b->arg, st, NULL, 0, NULL);
        pub_free(b);
        return;
    }
    snprintf(b->id, sizeof(b->id), "%s", message_id);
    b->seq = seq;
    /* Read it back for the stored timestamp (the publish answer has only id and seq). */
    struct cp_history_query q = {
        .room_id = b->room_id, .limit = 1, .has_after_seq = true, .after_seq = seq - 1};
    b->c->store->ops->history_query(b->c->store, &q, NULL, save_read, b);
}

void cp_roommsg_save(struct cp_ctx *c, const struct cp_publish *p, cp_roommsg_saved_fn *cb,
                     void *arg)
{
    struct pub *b = pub_new(&(struct pub){.c = c, .saved = cb, .arg = arg}, p->room_id);
    if (b == NULL) {
        struct cp_status st;
        oom(&st);
        cb(arg, &st, NULL, 0, NULL);
        return;
    }
    struct cp_publish q = *p;
    q.no_deliver = true;
    cp_rooms_publish(c, &q, save_stored, b);
}

/* ---------------------------------------------------------------- GetHistory */

void cp_roommsg_history(struct cp_ctx *c, const struct cp_history_query *q, cp_store_history_fn *cb,
                        void *arg)
{
    c->store->ops->history_query(c->store, q, NULL, cb, arg);
}
