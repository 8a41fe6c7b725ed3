/* User flows: connections opening and closing, presence (statuses, the presence timeout, the
 * grace period) and its announcements to users who share a room, typing with expiry. The
 * user-set part of presence lives in the Store document presence/<user> and typing in
 * typing/<room>/<user>, so that every replica answers the same (docs/presence.md). Results come
 * through callbacks, exactly once, possibly after the call returns (asynchronous Store).
 * Thread: the completion-queue thread. */
#ifndef CP_USERS_H
#define CP_USERS_H

#include "cp_ctx.h"

typedef void cp_users_done_fn(void *arg, const struct cp_status *st);
typedef void cp_users_rooms_fn(void *arg, const struct cp_status *st, const char *const *rooms,
                               size_t n);
typedef void cp_users_ids_fn(void *arg, const struct cp_status *st, const char *const *ids,
                             size_t n);

/* A user's presence as others see it (all borrowed for the callback). */
struct cp_users_state {
    const char *user_id;
    const char *status; /* online, away, busy, offline */
    const struct cp_presence_record *rec;
    int64_t last_seen; /* Unix ms */
    int32_t connection_count;
};
typedef void cp_users_state_fn(void *arg, const struct cp_status *st,
                               const struct cp_users_state *ps);

/* What SetPresence / a presence frame sets (NULL counts as ""). The whole user-set state is
 * replaced: a field left empty is cleared, except availability with keep_availability (frames
 * do not carry it). */
struct cp_users_presence_set {
    const char *status; /* required: online, away, busy, offline */
    const char *custom_status;
    const char *device_type, *device_name;
    const char *activity_type, *activity_detail;
    const char *availability;
    bool keep_availability;
};

/* Records a connection on `node`; a user's first connection announces them online. Answers
 * the user's rooms (for ConnOpened). */
void cp_users_conn_open(struct cp_ctx *c, struct cp_node *node, const char *conn_id,
                        const char *user_id, const char *session_id, const char *transport,
                        int64_t connected_at, cp_users_rooms_fn *cb, void *arg);

/* Removes a connection; a user's last one makes them offline (after the grace period):
 * typing stopped, presence announced. Unknown ids are ignored. */
void cp_users_conn_close(struct cp_ctx *c, const char *conn_id);

/* Closes every connection hosted by `node` (its stream ended). */
void cp_users_node_gone(struct cp_ctx *c, struct cp_node *node);

/* SetPresence and the presence frame. INVALID_MESSAGE for a bad status. A user with no open
 * connection keeps the other fields; the status applies only while connected (it is cleared
 * when the user goes offline). Answers the resulting state. */
void cp_users_presence(struct cp_ctx *c, const char *user_id,
                       const struct cp_users_presence_set *set, cp_users_state_fn *cb, void *arg);

/* GetPresence: the record and the connection state. */
void cp_users_get(struct cp_ctx *c, const char *user_id, cp_users_state_fn *cb, void *arg);

/* Activity by the user (any client frame, TrackActivity): resets the presence timeout; a user
 * away by timeout is back online (announced). `cb` may be NULL; it fires once the activity is
 * in the record (or at once when no write was needed). */
void cp_users_activity(struct cp_ctx *c, const char *user_id, cp_users_done_fn *cb, void *arg);

/* GetOnlineUsers: online users (connected or within the grace period, not appearing offline),
 * of `room_id` (ROOM_NOT_FOUND) or of the whole system (NULL or ""). Sorted. */
void cp_users_online(struct cp_ctx *c, const char *room_id, cp_users_ids_fn *cb, void *arg);

/* typing true/false in a room the user belongs to (NOT_ROOM_MEMBER otherwise, ROOM_NOT_FOUND). */
void cp_users_typing(struct cp_ctx *c, const char *room_id, const char *user_id, bool typing,
                     cp_users_done_fn *cb, void *arg);

/* GetTypingUsers: members typing in `room_id` now, earliest start first, at most
 * c->set.max_typing_users. ROOM_NOT_FOUND. */
void cp_users_typing_list(struct cp_ctx *c, const char *room_id, cp_users_ids_fn *cb, void *arg);

/* The user came online: reads their record and sends the presence frame to the users who
 * share a room with them. */
void cp_users_announce(struct cp_ctx *c, struct cp_user *u);

/* Runs due timers: typing expiry (typing:false to the others), presence grace ends, the
 * presence timeout (announcing replica only). */
void cp_users_tick(struct cp_ctx *c, int64_t mono_ms);

/* Monotonic ms of the next typing expiry or presence grace end, 0 when none. */
int64_t cp_users_next_deadline(const struct cp_ctx *c);

/* Delivers typing:false for (room, user) to the room's other members and removes the typing
 * document. */
void cp_users_typing_stopped(void *ctx, const char *room_id, const char *user_id);

#endif
