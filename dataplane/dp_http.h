/* Plain HTTP: /healthz, /readyz, /metrics and the demo page's files, as the last share of the
 * protocol callback. lws thread only. */
#ifndef DP_HTTP_H
#define DP_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <libwebsockets.h>

struct dp_pss;

/* Answers every HTTP request that reaches it (404 for unknown files) and completes file
 * transfers: sets *handled and returns what the callback must return; leaves *handled false
 * for other reasons. */
int dp_http_callback(struct lws *wsi, enum lws_callback_reasons reason, struct dp_pss *pss,
                     void *in, size_t len, bool *handled);

#endif
