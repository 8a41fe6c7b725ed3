/* Credential extraction. Buffers are sized for the longest token accepted, plus the name and
 * scheme; a longer value is treated as "too large" by the verifier, never truncated into a
 * different token. */
#include "dp_cred.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libwebsockets.h>

#include "dp_auth.h"
#include "sb_jwt.h"

#define CRED_CAP (SB_JWT_MAX_TOKEN + 32)

/* The bearer token of the Authorization header into buf, or "" when there is none. False when
 * the header is too long to be a token we accept. */
static bool bearer(struct lws *wsi, char *buf, size_t cap)
{
    buf[0] = '\0';
    int len = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (len <= 0)
        return true;
    if ((size_t)len >= cap)
        return false;
    if (lws_hdr_copy(wsi, buf, (int)cap, WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
        return false;
    if (strncasecmp(buf, "Bearer ", 7) != 0) {
        buf[0] = '\0'; /* another scheme: no token from the header */
        return true;
    }
    size_t skip = 7;
    while (buf[skip] == ' ')
        skip++;
    memmove(buf, buf + skip, strlen(buf + skip) + 1);
    return true;
}

bool dp_cred_check(struct lws *wsi, struct dp_auth *a, char user[SB_IDENT_MAX + 1],
                   struct sb_jwt_claims **claims, char *why, size_t cap)
{
    char *buf = malloc(CRED_CAP);
    if (buf == NULL) {
        snprintf(why, cap, "out of memory");
        return false;
    }
    const char *token = buf;
    bool ok = bearer(wsi, buf, CRED_CAP);
    if (ok && buf[0] == '\0') {
        token = lws_get_urlarg_by_name(wsi, "token=", buf, CRED_CAP);
        if (token == NULL && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) >= CRED_CAP)
            ok = false; /* the query is too long to have been read whole */
    }
    if (!ok) {
        free(buf);
        snprintf(why, cap, "%s", sb_jwt_result_name(SB_JWT_TOO_LARGE));
        return false;
    }
    char arg[SB_IDENT_MAX + 16];
    const char *uid = lws_get_urlarg_by_name(wsi, "user_id=", arg, (int)sizeof(arg));
    bool r = dp_auth_check(a, token, uid, user, claims, why, cap);
    free(buf);
    return r;
}
