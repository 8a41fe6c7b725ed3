/* Validation of identifiers that clients and backends choose: user, room, channel ids. */
#ifndef SB_IDENT_H
#define SB_IDENT_H

#include <stdbool.h>
#include <stddef.h>

/* Longest identifier accepted, in bytes. */
#define SB_IDENT_MAX 128

/* True if `s` is 1..SB_IDENT_MAX bytes of [A-Za-z0-9._:@-]. Pure; any thread. */
bool sb_ident_is_valid(const char *s);

/* True for a channel id: 1..SB_IDENT_MAX bytes in all, a base of [A-Za-z0-9._:@-] optionally
 * followed by one '#' and a comma-separated list of user ids (each non-empty, same alphabet):
 * "news", "notifications#alice", "dm#alice,bob". '*' (patterns only) is refused. The total
 * stays within SB_IDENT_MAX so every buffer sized for an id holds a channel id. Pure. */
bool sb_ident_is_valid_channel(const char *s);

/* The user list of a valid channel id: the part after '#' ("alice,bob"), or NULL when the id
 * has none. Borrows from `s`. Pure. */
const char *sb_ident_channel_users(const char *s);

#endif
