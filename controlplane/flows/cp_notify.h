/* Frames to the people around a user or a room, read from the Store: a user's peers (everyone
 * who shares a room with them, never the user: presence) and a room's members (but one:
 * typing, notices). The frame is copied; delivery happens when the Store answers.
 * Thread: the completion-queue thread. */
#ifndef CP_NOTIFY_H
#define CP_NOTIFY_H

#include <stddef.h>

#include "cp_ctx.h"

/* Sends `frame` to every user who shares a room with `user_id`: each node delivers to its local
 * members of the user's rooms (cp_fanout_rooms), or, when some node is an older data plane
 * without that target, to the co-members the Store lists. */
void cp_notify_peers(struct cp_ctx *c, const char *user_id, const char *frame, size_t len);

/* Sends `frame` to the members of `room_id` except `exclude` (may be NULL). */
void cp_notify_room(struct cp_ctx *c, const char *room_id, const char *exclude, const char *frame,
                    size_t len);

#endif
