/* The data plane's core on the lws thread: all sessions by connection id, the fan-out index,
 * client requests to the control plane and its answers, deliveries, link up/down behaviour.
 * Transports (dp_ws, dp_sse) call in; dp_link calls back. lws thread only. */
#ifndef DP_HUB_H
#define DP_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_buf.h"
#include "dp_config.h"
#include "dp_link.h"
#include "dp_session.h"

struct dp_hub;

/* An SSE POST waiting for its answer. Owned by the POST's HTTP connection; the hub fills
 * `answer` and `status` and calls `ready`. */
struct dp_post {
    void *wsi;
    struct dp_pending *pending; /* while waiting */
    struct dp_buf *answer;      /* the frame to send (owned) */
    int status;                 /* HTTP status */
    void (*ready)(struct dp_post *p);
};

/* Returns a new hub for `cfg` (borrowed, must outlive the hub), or NULL on ENOMEM. */
struct dp_hub *dp_hub_create(const struct dp_config *cfg);

/* Attaches the link (borrowed) and returns the callbacks it must be created with. */
void dp_hub_set_link(struct dp_hub *h, struct dp_link *link);
const struct dp_link_cbs *dp_hub_link_cbs(void);

/* Closes every session and frees the hub. */
void dp_hub_destroy(struct dp_hub *h);

/* A new authenticated client. Returns its session (owned by the hub until
 * dp_hub_session_closed) or NULL on ENOMEM / connection limit. If the link is not up the
 * session gets an `unavailable` error and a close (1011) queued. `resume` (NULL or "": none)
 * is the session id the client asked to resume; the control plane decides. */
struct dp_session *dp_hub_session_open(struct dp_hub *h, enum dp_transport t, const char *user_id,
                                       const char *resume, const struct dp_session_ops *ops,
                                       void *wsi);

/* The transport is gone: forget and free the session. */
void dp_hub_session_closed(struct dp_hub *h, struct dp_session *s);

/* One client frame (text, len bytes). If `post` is non-NULL the answer goes to that POST
 * instead of the session's outbox. */
void dp_hub_client_frame(struct dp_hub *h, struct dp_session *s, const char *text, size_t len,
                         struct dp_post *post);

/* Queues an error frame for the session (or answers `post`). */
void dp_hub_send_error(struct dp_hub *h, struct dp_session *s, struct dp_post *post,
                       const char *ref, const char *code, const char *message);

/* SSE: joins `room_id` as if the client sent {"type":"join",...} (since >= 0 for replay), or
 * subscribes to a channel. Errors arrive on the stream. */
void dp_hub_sse_join(struct dp_hub *h, struct dp_session *s, const char *room_id, int64_t since);
void dp_hub_sse_subscribe(struct dp_hub *h, struct dp_session *s, const char *channel_id);

/* Finds a session by connection id (borrowed) or NULL. */
struct dp_session *dp_hub_find(struct dp_hub *h, const char *connection_id);

/* The POST's connection is gone before its answer: forget it. */
void dp_hub_post_abandoned(struct dp_hub *h, struct dp_post *post);

/* Queues the shared `: ping` comment on every SSE stream. */
void dp_hub_sse_ping(struct dp_hub *h);

/* True when the link has a Welcome. */
bool dp_hub_ready(const struct dp_hub *h);

/* Sends an error frame and closes every session with `code` (shutdown: 1001). */
void dp_hub_close_all(struct dp_hub *h, int code, const char *reason);

/* Closes (ops->abort) every session whose outbox has made no progress for the configured
 * send timeout at monotonic time `now_ms`. lws thread. */
void dp_hub_sweep(struct dp_hub *h, int64_t now_ms);

/* Calls fn for every session (all transports); fn must not open or free sessions. lws
 * thread. */
void dp_hub_visit_sessions(struct dp_hub *h, void (*fn)(struct dp_session *s, void *arg),
                           void *arg);

/* Number of open client sessions (all transports). lws thread. */
size_t dp_hub_session_count(const struct dp_hub *h);

/* HTTP status for a protocol error code (400, 401, 403, 404, 409, 413, 429, 500, 503). Pure. */
int dp_hub_http_status(const char *code);

#endif
