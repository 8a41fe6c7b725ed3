/* Typing flows: typing true/false in a room the user belongs to, its expiry after the typing
 * timeout, and GetTypingUsers. The typing state is the Store document typing/<room>/<user>, so
 * every replica answers the same (docs/presence.md); frames go to the room's other members.
 * Thread: the completion-queue thread. */
#ifndef CP_TYPING_H
#define CP_TYPING_H

#include "cp_ctx.h"

/* typing true/false in a room the user belongs to (NOT_ROOM_MEMBER otherwise, ROOM_NOT_FOUND). */
void cp_typing_set(struct cp_ctx *c, const char *room_id, const char *user_id, bool typing,
                   cp_ctx_done_fn *cb, void *arg);

/* GetTypingUsers: members typing in `room_id` now, earliest start first, at most
 * c->set.max_typing_users. ROOM_NOT_FOUND. */
void cp_typing_list(struct cp_ctx *c, const char *room_id, cp_ctx_ids_fn *cb, void *arg);

/* Delivers typing:false for (room, user) to the room's other members and removes the typing
 * document. */
void cp_typing_stopped(void *ctx, const char *room_id, const char *user_id);

/* Runs due typing expiries (typing:false to the others) at monotonic `mono_ms`. */
void cp_typing_tick(struct cp_ctx *c, int64_t mono_ms);

/* Monotonic ms of the next typing expiry, 0 when none. */
int64_t cp_typing_next_deadline(const struct cp_ctx *c);

#endif
