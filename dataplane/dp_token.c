/* Token lifecycle of an open session. The notice and the close are driven by the hub's
 * once-a-second sweep over the sessions (no timer per connection), plus one check when the
 * session opens, so a token with less than a minute left hears of it at once. */
#include "dp_token.h"

#include <stdlib.h>
#include <string.h>

#include "dp_auth.h"
#include "dp_frame.h"
#include "dp_link.h"
#include "dp_metrics.h"
#include "dp_request.h"
#include "dp_session.h"
#include "sb_jwt.h"
#include "sb_log.h"
#include "sb_time.h"

#define MOD "dp_token"

typedef Switchboard__Internal__V1__NodeItem NodeItem;

void dp_token_grants(const struct sb_jwt_claims *c, Switchboard__Internal__V1__Grants *g)
{
    if (c == NULL)
        return;
    if (c->info != NULL) {
        g->info.data = (uint8_t *)c->info;
        g->info.len = strlen(c->info);
    }
    g->channels = c->channels;
    g->n_channels = c->n_channels;
    g->rooms = c->rooms;
    g->n_rooms = c->n_rooms;
    g->expires_at = c->exp_ms;
}

static void send_conn_auth(struct dp_link *link, const struct dp_session *s)
{
    if (link == NULL)
        return;
    Switchboard__Internal__V1__Grants g = SWITCHBOARD__INTERNAL__V1__GRANTS__INIT;
    dp_token_grants(s->auth, &g);
    Switchboard__Internal__V1__ConnAuth ca = SWITCHBOARD__INTERNAL__V1__CONN_AUTH__INIT;
    ca.connection_id = (char *)s->connection_id;
    ca.user_id = s->user_id;
    ca.grants = &g;
    NodeItem it = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__INIT;
    it.kind_case = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_CONN_AUTH;
    it.conn_auth = &ca;
    /* Not ready: a primary that adopts us later gets the grants with the resync's ConnOpen. */
    dp_link_send(link, &it);
}

void dp_token_refresh(struct dp_auth *a, struct dp_link *link, struct dp_session *s,
                      struct dp_post *post, const struct dp_frame *f)
{
    char why[160];
    struct sb_jwt_claims *c = NULL;
    if (!dp_auth_refresh(a, f->token, s->user_id, &c, why, sizeof(why))) {
        dp_metrics.token_refresh_refused_total++;
        dp_request_send_error(s, post, f->ref, "unauthorized", why);
        return;
    }
    if (s->auth != NULL)
        dp_auth_claims_free(s->auth);
    s->auth = c;
    s->expiring_sent = false;
    dp_metrics.token_refreshed_total++;
    send_conn_auth(link, s);
    char *t;
    size_t n;
    enum sb_err e = dp_frame_format_refreshed(f->ref, c->exp_ms, &t, &n);
    dp_request_send_frame(s, post, t, n, e);
}

void dp_token_check(struct dp_session *s, int64_t now_ms, int64_t leeway_ms)
{
    if (s->auth == NULL || s->auth->exp_ms == 0 || s->state != DP_SESSION_OPEN)
        return;
    int64_t exp = s->auth->exp_ms;
    if (now_ms > exp + leeway_ms) {
        dp_metrics.token_expired_closes_total++;
        SB_LOG_INFO(MOD, "token expired: closing (4001)", "conn=%s user=%s", s->connection_id,
                    s->user_id);
        dp_request_send_error(s, NULL, NULL, "unauthorized",
                              "token expired: reconnect with a new token");
        dp_session_close_after_drain(s, 4001, "token_expired");
        return;
    }
    if (!s->expiring_sent && exp - now_ms <= DP_TOKEN_NOTICE_MS) {
        s->expiring_sent = true;
        char *t;
        size_t n;
        enum sb_err e = dp_frame_format_token_expiring(exp, &t, &n);
        dp_request_send_frame(s, NULL, t, n, e);
    }
}
