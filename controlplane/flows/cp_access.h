/* What a connection's token grants, read for authorization (PROTOCOL.md, "What a user may do"):
 * the `rooms` claim's ids and globs tested against a room id. Pure; any thread. */
#ifndef CP_ACCESS_H
#define CP_ACCESS_H

#include <stdbool.h>

#include "cp_grants.h"

/* True when `g` (borrowed, NULL: no token, nothing granted) has, in its `rooms` claim, the room
 * id `room_id` itself or a glob matching it (cp_glob.h: `*` within a dot segment, `**` across).
 * An empty entry or an invalid pattern grants nothing (the empty glob would match every id). */
bool cp_access_has_room(const struct cp_grants *g, const char *room_id);

#endif
