/* A live connection's token (PROTOCOL.md, "Expiry on a live connection"): the grants it carries
 * to the control plane, the `token_expiring` notice 60 s before `exp`, the `refresh` frame that
 * replaces it, and the close with 4001 once it has expired. lws thread only. */
#ifndef DP_TOKEN_H
#define DP_TOKEN_H

#include <stdint.h>

#include "switchboard/internal/v1/nodelink.pb-c.h"

struct dp_auth;
struct dp_frame;
struct dp_link;
struct dp_post;
struct dp_session;
struct sb_jwt_claims;

/* How long before exp the notice goes out. */
#define DP_TOKEN_NOTICE_MS 60000

/* Fills *g (initialised by the caller) with the claims' grants, borrowing their strings; `c`
 * NULL leaves it empty. */
void dp_token_grants(const struct sb_jwt_claims *c, Switchboard__Internal__V1__Grants *g);

/* The `refresh` frame `f` of session `s` (answered on `post` for SSE, else on the session):
 * verifies the new token, and on success makes it the connection's, sends its grants to the
 * control plane (ConnAuth) and acks with the new expires_at; else answers `unauthorized` and
 * the connection stays on its old token. */
void dp_token_refresh(struct dp_auth *a, struct dp_link *link, struct dp_session *s,
                      struct dp_post *post, const struct dp_frame *f);

/* Periodic (and right after `connected`): sends token_expiring once per token when less than
 * DP_TOKEN_NOTICE_MS remain, and closes the connection (an `unauthorized` error, then 4001
 * token_expired) once now_ms (wall clock) is past exp + leeway_ms. */
void dp_token_check(struct dp_session *s, int64_t now_ms, int64_t leeway_ms);

#endif
