/* SearchMessages (docs/history.md): the messages whose data has every word of a query in some
 * JSON string (case-insensitively), newest first, from one room, the rooms of a user or every
 * room. History is read through the Store a page at a time, newest first, each room until it
 * gave `limit` hits or reached the retention cutoff (message_retention_ms); tombstones never
 * match. The query parser and the matcher are pure; cp_search_run is a flow.
 * Thread: the completion-queue thread (the pure functions: any). */
#ifndef CP_SEARCH_H
#define CP_SEARCH_H

#include <stdbool.h>
#include <stddef.h>

#include "cp_ctx.h"

/* Most words in a query. */
#define CP_SEARCH_MAX_WORDS 16

struct cp_search_query {
    char *words[CP_SEARCH_MAX_WORDS]; /* owned */
    size_t n_words;
};

/* Splits `text` at spaces, tabs, CRs and LFs into *q (words copied; free with
 * cp_search_query_fini). False with *st set when it has no word or more than
 * CP_SEARCH_MAX_WORDS (invalid_message), or on ENOMEM (internal); *q is then empty. */
bool cp_search_parse(const char *text, struct cp_search_query *q, struct cp_status *st);

void cp_search_query_fini(struct cp_search_query *q);

/* True when every word of `q` appears, case-insensitively, in some string of m's JSON data
 * (strings nested up to 64 deep count). False for a tombstone or unreadable data. */
bool cp_search_matches(const struct cp_message *m, const struct cp_search_query *q);

/* The hits, newest first (ties: room id, then seq descending); borrowed for the callback. */
typedef void cp_search_fn(void *arg, const struct cp_status *st,
                          const struct cp_message *const *hits, size_t n);

/* Searches with `q` (taken: emptied, whatever happens) for at most `limit` (> 0) hits:
 * in `room_id` if non-empty (with `user_id`: that user must be a member, not_room_member), else
 * in the rooms of `user_id` if non-empty, else in every room. A room gone or left while the
 * search runs is skipped; a named room's error is the answer. Ids are copied. Answers through
 * `cb` exactly once, possibly before returning. */
void cp_search_run(struct cp_ctx *c, struct cp_search_query *q, const char *room_id,
                   const char *user_id, size_t limit, cp_search_fn *cb, void *arg);

#endif
