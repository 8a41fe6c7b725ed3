/* What every connection callback reaches from its wsi: the configuration, the hub, its request
 * path, the link and one scratch write buffer shared by all connections. The server owns it and
 * makes it the lws context's user pointer, so transports need nothing of the server. lws thread
 * only. */
#ifndef DP_CTX_H
#define DP_CTX_H

#include <stddef.h>

#include "dp_auth.h"

struct lws;
struct dp_config;
struct dp_hub;
struct dp_link;
struct dp_request;
struct dp_pss_ident;

struct dp_ctx {
    const struct dp_config *cfg; /* borrowed, outlives the server */
    struct dp_hub *hub;          /* the server's */
    struct dp_request *req;      /* the hub's */
    struct dp_link *link;        /* the server's; NULL once it is torn down */
    unsigned char *scratch;      /* LWS_PRE + batch bytes, for coalesced writes (owned) */
    struct dp_auth auth;         /* who a request is (its keys borrowed from main) */
    /* A WebSocket upgrade's identity, from HTTP_CONFIRM_UPGRADE (no per-connection data yet)
     * to the FILTER_PROTOCOL_CONNECTION callback of the same wsi that follows in the same
     * call (dp_ws.c). Owned; freed by dp_ctx_fini. */
    struct dp_pss_ident *upgrading;
    struct lws *upgrading_wsi;
    size_t scratch_cap;
};

/* Returns the shared context of a connection's lws context (borrowed), or NULL before the
 * server set it. */
struct dp_ctx *dp_ctx_of(struct lws *wsi);

/* Grows the scratch buffer to hold LWS_PRE + n bytes and returns the payload start (borrowed:
 * valid until the next call), or NULL on ENOMEM. A buffer grown past 1 MiB shrinks back to
 * 64 KiB at the next small write. */
unsigned char *dp_ctx_scratch(struct dp_ctx *c, size_t n);

/* Frees the scratch buffer. */
void dp_ctx_fini(struct dp_ctx *c);

#endif
