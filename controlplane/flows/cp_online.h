/* Presence flows: statuses, the presence timeout (online -> away without activity), the grace
 * period before a user with no connection left is offline, and the announcements to users who
 * share a room. The user-set part of presence lives in the Store document presence/<user>, so
 * that every replica answers the same (docs/presence.md). Results come through callbacks,
 * exactly once, possibly after the call returns (asynchronous Store).
 * Thread: the completion-queue thread. */
#ifndef CP_ONLINE_H
#define CP_ONLINE_H

#include "cp_ctx.h"

/* A user's presence as others see it (all borrowed for the callback). */
struct cp_online_state {
    const char *user_id;
    const char *status; /* online, away, busy, offline */
    const struct cp_presence_record *rec;
    int64_t last_seen; /* Unix ms */
    int32_t connection_count;
};
typedef void cp_online_state_fn(void *arg, const struct cp_status *st,
                                const struct cp_online_state *ps);

/* What SetPresence / a presence frame sets (NULL counts as ""). The whole user-set state is
 * replaced: a field left empty is cleared, except availability with keep_availability (frames
 * do not carry it). */
struct cp_online_set {
    const char *status; /* required: online, away, busy, offline */
    const char *custom_status;
    const char *device_type, *device_name;
    const char *activity_type, *activity_detail;
    const char *availability;
    bool keep_availability;
};

/* SetPresence and the presence frame. INVALID_MESSAGE for a bad status. A user with no open
 * connection keeps the other fields; the status applies only while connected (it is cleared
 * when the user goes offline). Answers the resulting state. */
void cp_online_set(struct cp_ctx *c, const char *user_id, const struct cp_online_set *set,
                   cp_online_state_fn *cb, void *arg);

/* GetPresence: the record and the connection state. */
void cp_online_get(struct cp_ctx *c, const char *user_id, cp_online_state_fn *cb, void *arg);

/* Activity by the user (any client frame, TrackActivity): resets the presence timeout; a user
 * away by timeout is back online (announced). `cb` may be NULL; it fires once the activity is
 * in the record (or at once when no write was needed). */
void cp_online_activity(struct cp_ctx *c, const char *user_id, cp_ctx_done_fn *cb, void *arg);

/* GetOnlineUsers: online users (connected or within the grace period, not appearing offline),
 * of `room_id` (ROOM_NOT_FOUND) or of the whole system (NULL or ""). Sorted. */
void cp_online_list(struct cp_ctx *c, const char *room_id, cp_ctx_ids_fn *cb, void *arg);

/* The user came online: reads their record and sends the presence frame to the users who
 * share a room with them. */
void cp_online_announce(struct cp_ctx *c, struct cp_user *u);

/* The user's last connection is gone (after the grace period): typing stopped, and on the
 * leader the offline announcement and the reset of the status set while connected. */
void cp_online_went_offline(struct cp_ctx *c, struct cp_user *u);

/* Runs due timers: presence grace ends, the presence timeout (the leader only). */
void cp_online_tick(struct cp_ctx *c, int64_t mono_ms);

/* Monotonic ms of the next presence grace end, 0 when none. */
int64_t cp_online_next_deadline(const struct cp_ctx *c);

#endif
