/* The request path between client sessions and the control plane: a client frame becomes a
 * NodeLink request (or a local answer: pong, validation errors), each forwarded request waits
 * in its session's pending list (matched by request id; the packed item is kept for a failover
 * re-send), and the control plane's Reply becomes the client's ack/error frame, or an SSE POST's
 * HTTP answer. The hub owns one and hands it to the transports. lws thread only. */
#ifndef DP_REQUEST_H
#define DP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"
#include "switchboard/internal/v1/nodelink.pb-c.h"

struct dp_buf;
struct dp_config;
struct dp_link;
struct dp_pending;
struct dp_router;
struct dp_session;
struct dp_request;

/* An SSE POST waiting for its answer. Owned by the POST's HTTP connection; the request path
 * fills `answer` and `status` and calls `ready`. */
struct dp_post {
    void *wsi;
    struct dp_pending *pending; /* while waiting */
    struct dp_buf *answer;      /* the frame to send (owned) */
    int status;                 /* HTTP status */
    void (*ready)(struct dp_post *p);
};

/* Returns a new request path for `cfg` (limits, node id) that updates `router` (the local index,
 * for successful join/leave/subscribe answers); both borrowed and must outlive it. NULL on
 * ENOMEM. */
struct dp_request *dp_request_create(const struct dp_config *cfg, struct dp_router *router);

/* Frees it (not the pending answers: those belong to their sessions). NULL is ignored. */
void dp_request_destroy(struct dp_request *req);

/* Attaches the link requests go out on (borrowed; NULL: none, every request is answered
 * `unavailable`). */
void dp_request_set_link(struct dp_request *req, struct dp_link *link);

/* The authenticator that checks `refresh` frames (borrowed; set once by the server). */
struct dp_auth;
void dp_request_set_auth(struct dp_request *req, struct dp_auth *auth);

/* One client frame (text, len bytes, borrowed) of session `s`: parsed, then answered locally or
 * forwarded. If `post` is non-NULL the answer goes to that POST instead of the session's
 * outbox. */
void dp_request_client_frame(struct dp_request *req, struct dp_session *s, const char *text,
                             size_t len, struct dp_post *post);

/* SSE: joins `room_id` as if the client sent {"type":"join",...} (since >= 0 for replay), or
 * subscribes to a channel. Errors arrive on the stream. */
void dp_request_sse_join(struct dp_request *req, struct dp_session *s, const char *room_id,
                         int64_t since);
void dp_request_sse_subscribe(struct dp_request *req, struct dp_session *s, const char *channel_id);

/* The control plane answered a request of session `s` (found by the caller from
 * r->connection_id): the pending answer with r->request_id becomes its frames. A request
 * already answered (`unavailable`) is ignored. */
void dp_request_reply(struct dp_request *req, struct dp_session *s,
                      const Switchboard__Internal__V1__Reply *r);

/* A new primary (generation `gen`) adopted the node: re-sends each pending request of `s` not
 * yet sent to it, with the same request id; one that cannot go is answered `unavailable`.
 * Returns how many went out. */
size_t dp_request_resend(struct dp_request *req, struct dp_session *s, uint64_t gen);

/* Answers every pending request of `s` with error `code`/`message`: the POSTs always, the
 * session's outbox only when `to_session` (not for a session being closed). */
void dp_request_fail_pending(struct dp_session *s, const char *code, const char *message,
                             bool to_session);

/* The POST's connection is gone before its answer: forget it. */
void dp_request_post_abandoned(struct dp_post *post);

/* Queues an error frame (`ref` may be NULL) for the session, or answers `post` with the code's
 * HTTP status. */
void dp_request_send_error(struct dp_session *s, struct dp_post *post, const char *ref,
                           const char *code, const char *message);

/* Queues a frame the node built (`text`, len bytes, taken) for the session, or answers `post`
 * with 200. `e` is the builder's result: when it is not SB_OK there is no text, the session
 * gets nothing and a POST gets a 500 `internal` answer. */
void dp_request_send_frame(struct dp_session *s, struct dp_post *post, char *text, size_t len,
                           enum sb_err e);

/* HTTP status for a protocol error code (400, 401, 403, 404, 409, 413, 429, 500, 503). Pure. */
int dp_request_http_status(const char *code);

#endif
