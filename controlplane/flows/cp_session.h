/* Session resumption: a client that reconnects with `?session_id=<id>` within session_ttl_ms
 * after its previous connection closed gets the same session id back (`resumed`). Closed
 * sessions are Store documents `sessions/<id>` = {"user_id":..,"closed_at":ms}, written by the
 * replica that announces presence (every replica in memory mode, the presence leader in etcd
 * mode), so a reconnect to any replica finds them. Membership belongs to the user, so a
 * resumed session has its rooms and channels without re-joining. docs/delivery.md.
 * Thread: the completion-queue thread. */
#ifndef CP_SESSION_H
#define CP_SESSION_H

#include <stdbool.h>

#include "cp_ctx.h"

/* session_id: borrowed during the call (the requested id when resumed, else `fresh`). */
typedef void cp_session_fn(void *arg, const char *session_id, bool resumed);

/* Decides the session of a new connection of `user_id`: `requested` (may be NULL or "") is
 * resumed when it belongs to the user and is open on another connection or closed less than
 * session_ttl_ms ago; otherwise `fresh`. Never an error. Inputs are borrowed until `cb`. */
void cp_session_resolve(struct cp_ctx *c, const char *user_id, const char *requested,
                        const char *fresh, cp_session_fn *cb, void *arg);

/* A connection is closing (called before it leaves cp_presence): records its session. */
void cp_session_closed(struct cp_ctx *c, const struct cp_conn *conn);

/* Deletes expired session records now and then; runs cp_once_tick too. */
void cp_session_tick(struct cp_ctx *c, int64_t mono_ms);

#endif
