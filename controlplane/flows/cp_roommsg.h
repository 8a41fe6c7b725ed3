/* Room messages from the backend (docs/history.md, docs/delivery.md): BroadcastToRoom with its
 * idempotency key, SaveMessage (stored in history, delivered to nobody, read back) and
 * GetHistory (a page of a room's history, no membership needed), over cp_rooms_publish and the
 * Store. Inputs are validated by the caller, borrowed during the call and copied as needed;
 * each function answers through its callback exactly once, possibly before it returns; what
 * the callback gets is borrowed for the callback only. Thread: the completion-queue thread. */
#ifndef CP_ROOMMSG_H
#define CP_ROOMMSG_H

#include "cp_ctx.h"
#include "cp_rooms.h"

/* Publishes `p` (cp_rooms_publish). With p->idem_key, a key seen for the room within
 * CP_STORE_IDEM_TTL_MS answers the first message's id and seq and publishes nothing: the Store
 * deduplicates it with the append, so the answer holds across replicas. */
void cp_roommsg_broadcast(struct cp_ctx *c, const struct cp_publish *p, cp_rooms_publish_fn *cb,
                          void *arg);

/* `stored`: the message as history keeps it (timestamp included); NULL when it could not be
 * read back (trimmed at once, or the read failed): the answer is then made of id and seq. */
typedef void cp_roommsg_saved_fn(void *arg, const struct cp_status *st, const char *message_id,
                                 int64_t seq, const struct cp_message *stored);

/* Stores `p` in history without delivering it (p->no_deliver is implied). */
void cp_roommsg_save(struct cp_ctx *c, const struct cp_publish *p, cp_roommsg_saved_fn *cb,
                     void *arg);

/* A page of history (struct cp_history_query); room_not_found. */
void cp_roommsg_history(struct cp_ctx *c, const struct cp_history_query *q, cp_store_history_fn *cb,
                        void *arg);

#endif
