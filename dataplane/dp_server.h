/* The libwebsockets side: one context, one vhost, one protocol whose callback serves
 * WebSocket (/ws), SSE (/sse, POST /sse/<id>) and plain HTTP (/healthz, /readyz, /metrics,
 * the demo page). Shared state of dp_ws, dp_sse and dp_http lives here. lws thread only. */
#ifndef DP_SERVER_H
#define DP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include <libwebsockets.h>

#include "dp_config.h"
#include "dp_hub.h"
#include "dp_link.h"
#include "dp_wsrx.h"

struct dp_server {
    const struct dp_config *cfg;
    struct lws_context *ctx;
    struct dp_hub *hub;
    struct dp_link *link;
    unsigned char *scratch; /* LWS_PRE + batch bytes, for coalesced writes */
    size_t scratch_cap;
    lws_sorted_usec_list_t sul_ping;
    lws_sorted_usec_list_t sul_sweep;     /* stalled-outbox sweep, every second */
    lws_sorted_usec_list_t sul_tick;      /* wakes the loop while draining at stop */
    lws_sorted_usec_list_t sul_keepalive; /* WebSocket pings and idle closes, one sweep */
    lws_sorted_usec_list_t sul_trim;      /* heap trim after a burst, every 100 ms */
    lws_retry_bo_t retry;
    volatile int stop;
};

enum dp_pss_kind { DP_PSS_NONE, DP_PSS_WS, DP_PSS_SSE, DP_PSS_POST };

/* What a request said about who it is: needed from the upgrade (or the POST's headers) until
 * the session is open or the request answered, so it lives on the heap for that time only
 * instead of ~420 bytes in every connection's dp_pss. */
struct dp_pss_ident {
    char user_id[SB_IDENT_MAX + 1];
    char resume[SB_IDENT_MAX + 1]; /* ?session_id= */
    char why[160];
};

/* Per-connection data of our protocol (lws allocates it zeroed). */
struct dp_pss {
    enum dp_pss_kind kind;
    struct dp_session *s;
    /* WebSocket: identity decided at the upgrade (id: until ESTABLISHED opened the session, or
     * until the refusal is written), message reassembly */
    bool authorized;
    struct dp_pss_ident *id;
    const char *reject_code; /* set when the upgrade is refused after the handshake */
    int reject_close;
    struct dp_wsrx rx;
    bool hard_close; /* beyond hard_frame_limit: close with 1009 */
    bool close_sent;
    int64_t last_rx_us;   /* last frame or pong received (idle_timeout_ms) */
    int64_t last_ping_us; /* last keepalive ping queued */
    bool ping_due;        /* a keepalive ping waits for the writeable callback */
    /* SSE POST */
    struct dp_post post;
    char *body;
    size_t body_len;
    bool body_too_large;
    char conn_id[SB_ID_LEN];
    bool answered;
};

/* Returns the connection's identity record, allocating it (zeroed) on first use; NULL on
 * ENOMEM. */
struct dp_pss_ident *dp_pss_ident(struct dp_pss *pss);

/* Frees the identity record (NULL-safe). */
void dp_pss_ident_free(struct dp_pss *pss);

/* Grows the scratch buffer to hold LWS_PRE + n bytes; returns the payload start or NULL. */
unsigned char *dp_server_scratch(struct dp_server *srv, size_t n);

/* Returns the server of a connection's context. */
struct dp_server *dp_server_of(struct lws *wsi);

/* Creates the context and listener, the hub and the link (not started). NULL on failure
 * (logged). */
struct dp_server *dp_server_create(const struct dp_config *cfg);

/* Starts the link and runs the loop until dp_server_stop. Returns 0, or 1 on a fatal error. */
int dp_server_run(struct dp_server *srv);

/* Asks the loop to stop; async-signal-safe. */
void dp_server_stop(struct dp_server *srv);

/* Frees everything. */
void dp_server_destroy(struct dp_server *srv);

/* Transports (dp_ws.c, dp_sse.c, dp_http.c): each handles the callback reasons it owns and
 * returns 1 in *handled when it did. */
int dp_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, struct dp_pss *pss, void *in,
                   size_t len, bool *handled);
int dp_sse_callback(struct lws *wsi, enum lws_callback_reasons reason, struct dp_pss *pss, void *in,
                    size_t len, bool *handled);
int dp_http_callback(struct lws *wsi, enum lws_callback_reasons reason, struct dp_pss *pss,
                     void *in, size_t len, bool *handled);

/* WebSocket keepalive (dp_ws.c): one pass over the sessions (pings, idle closes), and the
 * period the server runs it at. */
void dp_ws_keepalive_sweep(struct dp_server *srv);
lws_usec_t dp_ws_keepalive_period(const struct dp_config *cfg);

/* Writes a complete small HTTP response (status, content type, body) from inside an HTTP
 * callback. Returns what the callback must return. */
int dp_http_respond(struct lws *wsi, unsigned int status, const char *content_type,
                    const char *body, size_t len);

#endif
