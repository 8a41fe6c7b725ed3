/* Reads a request's credentials from lws, the same way for GET /ws, GET /sse and POST /sse/<id>:
 * a bearer token from `Authorization: Bearer <jwt>` (preferred) or `?token=<jwt>`, and the
 * development-mode `?user_id=`, then decides with dp_auth. lws thread, while the request's
 * headers are still attached. */
#ifndef DP_CRED_H
#define DP_CRED_H

#include <stdbool.h>
#include <stddef.h>

#include "sb_ident.h"

struct lws;
struct dp_auth;
struct sb_jwt_claims;

/* dp_auth_check on the request's credentials: see dp_auth.h for the results. */
bool dp_cred_check(struct lws *wsi, struct dp_auth *a, char user[SB_IDENT_MAX + 1],
                   struct sb_jwt_claims **claims, char *why, size_t cap);

#endif
