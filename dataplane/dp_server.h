/* The libwebsockets side: one context, one vhost, one protocol whose callback hands each reason
 * to the transports (dp_ws, dp_sse, dp_http), the periodic timers, and the loop. It builds the
 * hub and the link and wires them together. Main thread (which is the lws thread). */
#ifndef DP_SERVER_H
#define DP_SERVER_H

#include "dp_config.h"

struct dp_server;
struct dp_keys;

/* Creates the context and listener, the hub and the link (not started). `cfg` and `keys` (the
 * token keys, NULL when the node takes none) are borrowed and must outlive the server. NULL on
 * failure (logged). */
struct dp_server *dp_server_create(const struct dp_config *cfg, struct dp_keys *keys);

/* Starts the link and runs the loop until dp_server_stop, then closes every client (1001) and
 * drains for up to 500 ms. Blocks. Returns 0, or 1 on a fatal error. */
int dp_server_run(struct dp_server *srv);

/* Asks the loop to stop; async-signal-safe (any thread, signal handlers). */
void dp_server_stop(struct dp_server *srv);

/* Frees everything, after dp_server_run returned. NULL is ignored. */
void dp_server_destroy(struct dp_server *srv);

#endif
