/* User flows: connections opening and closing, presence changes and their announcements to
 * users who share a room, typing with expiry. Results come through callbacks, exactly once,
 * possibly after the call returns (asynchronous Store). Thread: the completion-queue thread. */
#ifndef CP_USERS_H
#define CP_USERS_H

#include "cp_ctx.h"

typedef void cp_users_done_fn(void *arg, const struct cp_status *st);
typedef void cp_users_rooms_fn(void *arg, const struct cp_status *st, const char *const *rooms,
                               size_t n);

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

/* A presence change by the user (status online/away/busy/offline; NULL fields unchanged). */
void cp_users_presence(struct cp_ctx *c, const char *user_id, const char *status,
                       const char *custom_status, const char *device_type, const char *device_name,
                       const char *activity_type, const char *activity_detail, cp_users_done_fn *cb,
                       void *arg);

/* typing true/false in a room the user belongs to (NOT_ROOM_MEMBER otherwise). */
void cp_users_typing(struct cp_ctx *c, const char *room_id, const char *user_id, bool typing,
                     cp_users_done_fn *cb, void *arg);

/* Sends the user's current presence frame to the users who share a room with them. */
void cp_users_announce(struct cp_ctx *c, struct cp_user *u);

/* Runs due timers: typing expiry (typing:false to the others), presence grace ends. */
void cp_users_tick(struct cp_ctx *c, int64_t mono_ms);

/* Delivers typing:false for (room, user) to the room's other members. */
void cp_users_typing_stopped(void *ctx, const char *room_id, const char *user_id);

#endif
