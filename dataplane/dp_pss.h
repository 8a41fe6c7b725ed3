/* Per-connection data of our lws protocol (lws allocates it zeroed, sizeof(struct dp_pss), and
 * frees it after the closed callback): which transport the connection turned out to be, its
 * session, the WebSocket upgrade's identity and reassembly, and an SSE POST's body and answer.
 * lws thread only. */
#ifndef DP_PSS_H
#define DP_PSS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_request.h"
#include "dp_wsrx.h"
#include "sb_id.h"
#include "sb_ident.h"
#include "sb_jwt.h"

enum dp_pss_kind { DP_PSS_NONE, DP_PSS_WS, DP_PSS_SSE, DP_PSS_POST };

/* What a request said about who it is: needed from the upgrade (or the POST's headers) until
 * the session is open or the request answered, so it lives on the heap for that time only
 * instead of ~420 bytes in every connection's dp_pss. */
struct dp_pss_ident {
    char user_id[SB_IDENT_MAX + 1];
    char resume[SB_IDENT_MAX + 1]; /* ?session_id= */
    char why[160];
    struct sb_jwt_claims *claims; /* the token's, until the session takes them (NULL: none) */
};

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

/* Returns the connection's identity record (owned by pss), allocating it zeroed on first use;
 * NULL on ENOMEM. */
struct dp_pss_ident *dp_pss_ident(struct dp_pss *pss);

/* Frees the identity record (NULL-safe, pss NULL too). */
void dp_pss_ident_free(struct dp_pss *pss);

/* Frees an identity record that no pss holds (NULL-safe). */
void dp_pss_ident_destroy(struct dp_pss_ident *id);

#endif
