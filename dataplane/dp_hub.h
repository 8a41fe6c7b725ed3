/* The data plane's sessions on the lws thread: every session by connection id, its open and
 * close (ConnOpen/ConnClose, ConnOpened, Kick, Membership into the local index), and the
 * link's up/down and failover resync. Client requests and their answers are its dp_request,
 * deliveries its dp_delivery. Transports (dp_ws, dp_sse) call in; dp_link calls back. lws
 * thread only. */
#ifndef DP_HUB_H
#define DP_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_config.h"
#include "dp_link.h"
#include "dp_request.h"
#include "dp_session.h"

struct dp_hub;

/* Returns a new hub for `cfg` (borrowed, must outlive the hub), or NULL on ENOMEM. */
struct dp_hub *dp_hub_create(const struct dp_config *cfg);

/* Attaches the link (borrowed; NULL detaches it) and returns the callbacks it must be created
 * with. */
void dp_hub_set_link(struct dp_hub *h, struct dp_link *link);
const struct dp_link_cbs *dp_hub_link_cbs(void);

/* Closes every session and frees the hub. */
void dp_hub_destroy(struct dp_hub *h);

/* The hub's request path (borrowed, lives as long as the hub): where transports hand client
 * frames. */
struct dp_request *dp_hub_request(struct dp_hub *h);

/* A new authenticated client. Returns its session (owned by the hub until
 * dp_hub_session_closed) or NULL on ENOMEM / connection limit. If the link is not up the
 * session gets an `unavailable` error and a close (1011) queued. `resume` (NULL or "": none)
 * is the session id the client asked to resume; the control plane decides. `claims` (NULL, or
 * *claims NULL, in development mode) is the client's token: the session takes it on success. */
struct sb_jwt_claims;
struct dp_session *dp_hub_session_open(struct dp_hub *h, enum dp_transport t, const char *user_id,
                                       const char *resume, struct sb_jwt_claims **claims,
                                       const struct dp_session_ops *ops, void *wsi);

/* The transport is gone: forget and free the session. */
void dp_hub_session_closed(struct dp_hub *h, struct dp_session *s);

/* Finds a session by connection id (borrowed) or NULL. */
struct dp_session *dp_hub_find(struct dp_hub *h, const char *connection_id);

/* Queues the shared `: ping` comment on every SSE stream. */
void dp_hub_sse_ping(struct dp_hub *h);

/* True when the link has a Welcome. */
bool dp_hub_ready(const struct dp_hub *h);

/* Closes every session with `code` and `reason` once its outbox drained (shutdown: 1001). */
void dp_hub_close_all(struct dp_hub *h, int code, const char *reason);

/* Closes (ops->abort) every session whose outbox has made no progress for the configured
 * send timeout at monotonic time `now_ms`. */
void dp_hub_sweep(struct dp_hub *h, int64_t now_ms);

/* Calls fn for every session (all transports); fn must not open or free sessions. */
void dp_hub_visit_sessions(struct dp_hub *h, void (*fn)(struct dp_session *s, void *arg),
                           void *arg);

/* Number of open client sessions (all transports). */
size_t dp_hub_session_count(const struct dp_hub *h);

#endif
