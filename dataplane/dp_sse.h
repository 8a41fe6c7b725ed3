/* Server-Sent Events transport: GET /sse streams and POST /sse/<connection_id> requests, as its
 * share of the protocol callback. lws thread only. */
#ifndef DP_SSE_H
#define DP_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include <libwebsockets.h>

struct dp_pss;

/* Handles the HTTP callback reasons of /sse and /sse/...: sets *handled and returns what the
 * callback must return; leaves *handled false for other paths and reasons. */
int dp_sse_callback(struct lws *wsi, enum lws_callback_reasons reason, struct dp_pss *pss, void *in,
                    size_t len, bool *handled);

#endif
