/* Validation of identifiers that clients and backends choose: user, room, channel ids. */
#ifndef SB_IDENT_H
#define SB_IDENT_H

#include <stdbool.h>
#include <stddef.h>

/* Longest identifier accepted, in bytes. */
#define SB_IDENT_MAX 128

/* True if `s` is 1..SB_IDENT_MAX bytes of [A-Za-z0-9._:@-]. Pure; any thread. */
bool sb_ident_is_valid(const char *s);

/* Same for a channel id, which also allows '*' in patterns only: false here for '*'.
 * Kept separate so channel rules can widen without touching room/user ids. */
bool sb_ident_is_valid_channel(const char *s);

#endif
