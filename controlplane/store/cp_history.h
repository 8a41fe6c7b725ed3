/* A room's message history: a ring of the newest messages in seq order, and the query
 * semantics of PROTOCOL.md / API.md (exclusive bounds, oldest first, `before` takes the newest
 * below, `after` the oldest above). Pure logic; one owner thread. */
#ifndef CP_HISTORY_H
#define CP_HISTORY_H

#include "cp_store.h"

struct cp_history {
    struct cp_message **ring; /* owned messages */
    size_t cap;               /* allocated slots (grows up to the max) */
    size_t head;              /* index of the oldest */
    size_t count;
    int64_t last_seq; /* newest seq ever given, kept across trimming */
};

void cp_history_init(struct cp_history *h);

/* Frees every message. */
void cp_history_fini(struct cp_history *h);

/* Returns the seq the next message gets. */
int64_t cp_history_next_seq(const struct cp_history *h);

/* Appends `msg` (taken on success; its seq must be cp_history_next_seq) and drops the oldest
 * beyond `max` (0 keeps none: the message is freed but last_seq still advances). SB_ENOMEM:
 * nothing changed and `msg` is still the caller's. */
enum sb_err cp_history_append(struct cp_history *h, struct cp_message *msg, size_t max);

/* Runs `q` (room_id unused). *out gets a new array (caller frees with free(); NULL when
 * empty) of borrowed message pointers, oldest first; *n its length; *gap as in
 * struct cp_history_result. SB_ENOMEM. */
enum sb_err cp_history_query(const struct cp_history *h, const struct cp_history_query *q,
                             const struct cp_message ***out, size_t *n, bool *gap);

/* The message at position i (0 = oldest retained). */
const struct cp_message *cp_history_at(const struct cp_history *h, size_t i);

/* Position of the message whose id is `id` (newest first search); h->count when absent. */
size_t cp_history_find(const struct cp_history *h, const char *id);

/* Replaces the message at position i with `msg` (taken; the old one is freed). The caller
 * keeps its seq. */
void cp_history_replace(struct cp_history *h, size_t i, struct cp_message *msg);

/* Drops the oldest messages while their timestamp is < before_time (retention); returns how
 * many. last_seq is kept. */
size_t cp_history_trim_before(struct cp_history *h, int64_t before_time);

#endif
