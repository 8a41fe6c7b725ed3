/* WebSocket transport (/ws): its share of the protocol callback, and the keepalive sweep the
 * server runs on a timer. lws thread only. */
#ifndef DP_WS_H
#define DP_WS_H

#include <stdbool.h>
#include <stddef.h>

#include <libwebsockets.h>

struct dp_config;
struct dp_ctx;
struct dp_pss;

/* Handles the callback reasons of a WebSocket connection (the upgrade's filter, established,
 * receive, writeable, closed): sets *handled and returns what the callback must return; leaves
 * *handled false for any other reason. */
int dp_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, struct dp_pss *pss, void *in,
                   size_t len, bool *handled);

/* One pass over the sessions: pings the WebSockets silent for a ping interval, closes those
 * silent for idle_timeout_ms. Never blocks. */
void dp_ws_keepalive_sweep(struct dp_ctx *ctx);

/* The period to run the sweep at: a quarter of the ping interval, within 100 ms .. 1 s. Pure. */
lws_usec_t dp_ws_keepalive_period(const struct dp_config *cfg);

#endif
