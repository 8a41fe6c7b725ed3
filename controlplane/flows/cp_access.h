/* What a connection may do, read for authorization (PROTOCOL.md, "What a user may do"): the
 * token's `rooms` and `channels` claims (ids and globs) against a room or channel id, and who
 * may subscribe and publish to a channel from a client (docs/channels.md, "Who may subscribe and
 * publish": private- and presence- channels, the `#user,...` suffix, client_publish). Pure; any
 * thread. */
#ifndef CP_ACCESS_H
#define CP_ACCESS_H

#include <stdbool.h>
#include <stddef.h>

#include "cp_grants.h"

/* True when `g` (borrowed, NULL: no token, nothing granted) has, in its `rooms` claim, the room
 * id `room_id` itself or a glob matching it (cp_glob.h: `*` within a dot segment, `**` across).
 * An empty entry or an invalid pattern grants nothing (the empty glob would match every id). */
bool cp_access_has_room(const struct cp_grants *g, const char *room_id);

/* The same for the `channels` claim and a channel id (an entry with a `#user` part can only be
 * an exact id: '#' is no pattern character). */
bool cp_access_has_channel(const struct cp_grants *g, const char *channel_id);

/* True for ids that need a grant to subscribe: "private-..." and "presence-...". */
bool cp_access_needs_grant(const char *channel_id);

/* True when the channel id carries no "#user,..." suffix, or `user_id` is one of the users it
 * names (exact, case-sensitive). */
bool cp_access_names_user(const char *channel_id, const char *user_id);

/* A client `subscribe`: true when allowed; else false with the sentence of the
 * permission_denied error in `why`. `g`: the connection's grants (NULL: none); `token_grant`:
 * the frame carried a subscription token the data plane verified for this user and channel. */
bool cp_access_subscribe(const struct cp_grants *g, const char *channel_id, const char *user_id,
                         bool token_grant, char *why, size_t cap);

/* A client `publish`: the channel must have client_publish; a "#user,..." channel takes
 * publishes from the users it names only; a private or presence channel from its
 * subscribers only (`subscribed`). True when allowed; else false with the sentence in `why`. */
bool cp_access_publish(const char *channel_id, const char *user_id, bool client_publish,
                       bool subscribed, char *why, size_t cap);

#endif
