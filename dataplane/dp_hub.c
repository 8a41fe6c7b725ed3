/* Sessions by connection id and their lifecycle with the control plane: ConnOpen when one
 * opens (re-sent on a resync), ConnClose when it goes (kept in a ring for the next primary),
 * ConnOpened, Kick and Membership items, and what a primary's Adopted or the loss of every
 * stream does to them. Requests go through the hub's dp_request, deliveries its dp_delivery. */
#include "dp_hub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_buf.h"
#include "dp_delivery.h"
#include "dp_frame.h"
#include "dp_metrics.h"
#include "dp_router.h"
#include "dp_token.h"
#include "sb_log.h"
#include "sb_map.h"
#include "sb_time.h"

#define MOD "dp_hub"

typedef Switchboard__Internal__V1__NodeItem NodeItem;
typedef Switchboard__Internal__V1__ControlItem ControlItem;

/* Connections closed lately: their ConnClose is re-sent to every new primary, since the old
 * one may have died before applying it (it would leave a connection that never goes). */
#define CLOSED_RING 4096

struct closed {
    char connection_id[SB_ID_LEN];
    char user_id[SB_IDENT_MAX + 1];
};

struct dp_hub {
    const struct dp_config *cfg;
    struct dp_link *link;
    struct closed *closed; /* ring of CLOSED_RING */
    size_t closed_next, closed_n;
    struct sb_map *sessions; /* connection_id -> session */
    struct dp_router *router;
    struct dp_buf *ping; /* shared ": ping" SSE comment */
    struct dp_request *requests;
    struct dp_delivery *deliveries;
};

/* ---- link items out ---- */

static enum sb_err send_item(struct dp_hub *h, const NodeItem *it)
{
    if (h->link == NULL)
        return SB_EUNAVAIL;
    return dp_link_send(h->link, it);
}

/* Sends the session's ConnOpen to the primary; while the primary has not adopted the node yet,
 * it goes out from link_ready instead. */
static void send_conn_open(struct dp_hub *h, struct dp_session *s, bool resync)
{
    if (h->link == NULL || !dp_link_primary_ready(h->link)) {
        s->open_gen = 0;
        return;
    }
    Switchboard__Internal__V1__ConnOpen co = SWITCHBOARD__INTERNAL__V1__CONN_OPEN__INIT;
    s->open_request_id = dp_link_next_id(h->link);
    s->open_gen = dp_link_primary_gen(h->link);
    co.request_id = s->open_request_id;
    co.connection_id = s->connection_id;
    co.user_id = s->user_id;
    co.session_id = s->session_id;
    /* Only until the control plane has decided (a resync re-sends the session it chose). */
    co.resume_session_id = s->state == DP_SESSION_OPENING ? s->resume_session_id : "";
    co.transport = s->transport == DP_TRANSPORT_WS ? "websocket" : "sse";
    co.connected_at = s->connected_at_ms;
    co.resync = resync;
    Switchboard__Internal__V1__Grants g = SWITCHBOARD__INTERNAL__V1__GRANTS__INIT;
    if (s->auth != NULL) {
        dp_token_grants(s->auth, &g);
        co.grants = &g;
    }
    NodeItem it = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__INIT;
    it.kind_case = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_CONN_OPEN;
    it.conn_open = &co;
    if (send_item(h, &it) != SB_OK) {
        dp_request_send_error(s, NULL, NULL, "unavailable", "control plane unavailable; retry");
        dp_session_close_after_drain(s, 1011, "control plane unavailable");
    }
}

static void send_conn_close(struct dp_hub *h, const char *connection_id, const char *user_id)
{
    Switchboard__Internal__V1__ConnClose cc = SWITCHBOARD__INTERNAL__V1__CONN_CLOSE__INIT;
    cc.connection_id = (char *)connection_id;
    cc.user_id = (char *)user_id;
    NodeItem it = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__INIT;
    it.kind_case = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_CONN_CLOSE;
    it.conn_close = &cc;
    send_item(h, &it); /* not ready: re-sent from the ring when a primary adopts us */
}

/* ---- sessions ---- */

struct dp_session *dp_hub_session_open(struct dp_hub *h, enum dp_transport t, const char *user_id,
                                       const char *resume, struct sb_jwt_claims **claims,
                                       const struct dp_session_ops *ops, void *wsi)
{
    if ((int64_t)sb_map_size(h->sessions) >= h->cfg->max_connections)
        return NULL;
    struct dp_session *s = dp_session_create(t, user_id, ops, (size_t)h->cfg->outbox_max_frames,
                                             (size_t)h->cfg->outbox_max_bytes, h->cfg->overflow);
    if (s == NULL)
        return NULL;
    s->wsi = wsi;
    s->connected_at_ms = sb_time_now_ms();
    if (resume != NULL && sb_ident_is_valid(resume) && /* anything else: a new session */
        dp_session_set_ids(s, NULL, resume) != SB_OK) {
        dp_session_destroy(s);
        return NULL;
    }
    if (sb_map_put(h->sessions, s->connection_id, s) != SB_OK) {
        dp_session_destroy(s);
        return NULL;
    }
    if (claims != NULL) {
        s->auth = *claims; /* taken */
        *claims = NULL;
    }
    dp_metrics.connections_total++;
    if (t == DP_TRANSPORT_WS)
        dp_metrics.connections_ws++;
    else
        dp_metrics.connections_sse++;
    SB_LOG_DEBUG(MOD, "session opening", "conn=%s user=%s transport=%s", s->connection_id,
                 s->user_id, t == DP_TRANSPORT_WS ? "websocket" : "sse");
    if (!dp_hub_ready(h)) {
        dp_metrics.connections_rejected_total++;
        dp_request_send_error(s, NULL, NULL, "unavailable", "control plane unavailable; retry");
        dp_session_close_after_drain(s, 1011, "control plane unavailable");
        return s;
    }
    send_conn_open(h, s, false);
    return s;
}

void dp_hub_session_closed(struct dp_hub *h, struct dp_session *s)
{
    if (s == NULL)
        return;
    sb_map_remove(h->sessions, s->connection_id);
    if (s->indexed)
        dp_router_remove_session(h->router, s->user_id, s);
    dp_request_fail_pending(s, "unavailable", "connection closed", false);
    if (s->open_request_id != 0) {
        if (h->closed != NULL) {
            struct closed *c = &h->closed[h->closed_next];
            snprintf(c->connection_id, sizeof(c->connection_id), "%s", s->connection_id);
            snprintf(c->user_id, sizeof(c->user_id), "%s", s->user_id);
            h->closed_next = (h->closed_next + 1) % CLOSED_RING;
            if (h->closed_n < CLOSED_RING)
                h->closed_n++;
        }
        send_conn_close(h, s->connection_id, s->user_id);
    }
    if (s->transport == DP_TRANSPORT_WS)
        dp_metrics.connections_ws--;
    else
        dp_metrics.connections_sse--;
    if (s->overflowed && s->policy == DP_OVERFLOW_DISCONNECT)
        dp_metrics.slow_consumer_closes_total++;
    SB_LOG_DEBUG(MOD, "session closed", "conn=%s user=%s", s->connection_id, s->user_id);
    dp_session_destroy(s);
}

void dp_hub_sweep(struct dp_hub *h, int64_t now_ms)
{
    struct sb_map_iter it = {0};
    void *v;
    int64_t wall_ms = sb_time_now_ms();
    while (sb_map_next(h->sessions, &it, NULL, &v)) {
        struct dp_session *s = v;
        if (s->auth != NULL)
            dp_token_check(s, wall_ms, h->cfg->jwt_leeway);
        if (s->count == 0 || s->stall_since_ms == 0 || s->overflowed ||
            now_ms - s->stall_since_ms < h->cfg->send_timeout_ms)
            continue;
        SB_LOG_WARN(MOD, "send stalled: closing", "conn=%s user=%s queued=%zu stalled_ms=%lld",
                    s->connection_id, s->user_id, s->count,
                    (long long)(now_ms - s->stall_since_ms));
        s->overflowed = true;
        if (s->ops != NULL && s->ops->abort != NULL)
            s->ops->abort(s);
    }
}

void dp_hub_visit_sessions(struct dp_hub *h, void (*fn)(struct dp_session *s, void *arg), void *arg)
{
    struct sb_map_iter it = {0};
    void *v;
    while (sb_map_next(h->sessions, &it, NULL, &v))
        fn(v, arg);
}

size_t dp_hub_session_count(const struct dp_hub *h)
{
    return sb_map_size(h->sessions);
}

struct dp_session *dp_hub_find(struct dp_hub *h, const char *connection_id)
{
    return sb_map_get(h->sessions, connection_id);
}

bool dp_hub_ready(const struct dp_hub *h)
{
    return h->link != NULL && dp_link_is_up(h->link);
}

/* ---- control items in ---- */

static void on_conn_opened(struct dp_hub *h, const Switchboard__Internal__V1__ConnOpened *co)
{
    struct dp_session *s = sb_map_get(h->sessions, co->connection_id);
    if (s == NULL || s->open_request_id != co->request_id)
        return; /* closed meanwhile (its ConnClose follows) or a stale answer */
    if (co->error_code[0] != '\0') {
        dp_metrics.connections_rejected_total++;
        SB_LOG_INFO(MOD, "connection refused by control plane", "conn=%s user=%s code=%s",
                    s->connection_id, s->user_id, co->error_code);
        dp_request_send_error(s, NULL, NULL, co->error_code, co->error_message);
        bool internal =
            strcmp(co->error_code, "internal") == 0 || strcmp(co->error_code, "unavailable") == 0;
        s->open_request_id = 0; /* the control plane does not hold it */
        dp_session_close_after_drain(s, internal ? 1011 : 1008, co->error_code);
        return;
    }
    if (!s->indexed) {
        if (dp_router_add_session(h->router, s->user_id, s) != SB_OK) {
            dp_request_send_error(s, NULL, NULL, "internal", "out of memory");
            dp_session_close_after_drain(s, 1011, "internal");
            return;
        }
        s->indexed = true;
    }
    for (size_t i = 0; i < co->n_rooms; i++)
        dp_router_set_room(h->router, s->user_id, co->rooms[i], true);
    for (size_t i = 0; i < co->n_channels; i++)
        dp_router_set_channel(h->router, s->user_id, co->channels[i], true);
    if (s->state == DP_SESSION_OPENING) {
        s->state = DP_SESSION_OPEN;
        if (co->session_id[0] != '\0' && sb_ident_is_valid(co->session_id))
            dp_session_set_ids(s, co->session_id, ""); /* ENOMEM: keeps the fresh id */
        char *t;
        size_t n;
        enum sb_err e = dp_frame_format_connected(s->connection_id, s->session_id, s->user_id,
                                                  h->cfg->node_id, co->resumed, &t, &n);
        if (e == SB_OK) {
            struct dp_buf *b = dp_buf_create(t, n, NULL, 0);
            free(t);
            if (b != NULL)
                dp_session_push_front(s, b);
            dp_buf_unref(b);
        }
        SB_LOG_DEBUG(MOD, "session open", "conn=%s user=%s rooms=%zu", s->connection_id, s->user_id,
                     co->n_rooms);
        dp_token_check(s, sb_time_now_ms(), h->cfg->jwt_leeway); /* under a minute left */
    }
}

static void on_reply(struct dp_hub *h, const Switchboard__Internal__V1__Reply *r)
{
    struct dp_session *s = sb_map_get(h->sessions, r->connection_id);
    if (s != NULL)
        dp_request_reply(h->requests, s, r);
}

static void on_kick(struct dp_hub *h, const Switchboard__Internal__V1__Kick *k)
{
    struct dp_session *s = sb_map_get(h->sessions, k->connection_id);
    if (s == NULL)
        return;
    SB_LOG_INFO(MOD, "connection kicked", "conn=%s user=%s", s->connection_id, s->user_id);
    char *t;
    size_t n;
    enum sb_err e = dp_frame_format_kicked(k->reason, &t, &n);
    dp_request_send_frame(s, NULL, t, n, e);
    dp_session_close_after_drain(s, 1008, "kicked");
}

static void link_item(void *arg, const ControlItem *it)
{
    struct dp_hub *h = arg;
    switch (it->kind_case) {
    case SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_CONN_OPENED:
        on_conn_opened(h, it->conn_opened);
        break;
    case SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_REPLY:
        on_reply(h, it->reply);
        break;
    case SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_DELIVERY:
        dp_delivery_fan_out(h->deliveries, it->delivery);
        break;
    case SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_MEMBERSHIP: {
        const Switchboard__Internal__V1__Membership *m = it->membership;
        if (m->room_id[0] != '\0') {
            if (dp_router_membership_is_newer(h->router, m->user_id, true, m->room_id, m->revision))
                dp_router_set_room(h->router, m->user_id, m->room_id, m->added);
            else
                dp_metrics.memberships_stale_total++;
        }
        if (m->channel_id[0] != '\0') {
            if (dp_router_membership_is_newer(h->router, m->user_id, false, m->channel_id,
                                              m->revision))
                dp_router_set_channel(h->router, m->user_id, m->channel_id, m->added);
            else
                dp_metrics.memberships_stale_total++;
        }
        break;
    }
    case SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_KICK:
        on_kick(h, it->kick);
        break;
    default:
        break;
    }
}

/* A primary adopted the node: bring it up to date, then send what waited for it. */
static void link_ready(void *arg, bool renewed, uint64_t gen)
{
    struct dp_hub *h = arg;
    dp_metrics.link_up = 1;
    /* A renewed lease means the control plane knows none of our connections: its view is
     * rebuilt from our resync, and memberships come back with each ConnOpened. */
    if (renewed)
        dp_router_clear_memberships(h->router);
    if (gen > 1 && h->closed != NULL) {
        for (size_t i = 0; i < h->closed_n; i++) {
            const struct closed *c =
                &h->closed[(h->closed_next + CLOSED_RING - h->closed_n + i) % CLOSED_RING];
            send_conn_close(h, c->connection_id, c->user_id);
        }
    }
    struct sb_map_iter it = {0};
    void *v;
    size_t n_open = 0, n_sent = 0;
    while (sb_map_next(h->sessions, &it, NULL, &v)) {
        struct dp_session *s = v;
        if (s->state == DP_SESSION_OPEN && renewed) {
            send_conn_open(h, s, true);
            n_open++;
        } else if (s->state == DP_SESSION_OPENING && s->open_gen != gen) {
            send_conn_open(h, s, s->open_request_id != 0);
        }
        n_sent += dp_request_resend(h->requests, s, gen);
    }
    if (n_open > 0 || n_sent > 0 || gen > 1)
        SB_LOG_INFO(MOD, "link ready",
                    "gen=%llu renewed=%d resynced=%zu resent_requests=%zu "
                    "resent_closes=%zu",
                    (unsigned long long)gen, renewed, n_open, n_sent,
                    gen > 1 ? h->closed_n : (size_t)0);
}

static void link_down(void *arg)
{
    struct dp_hub *h = arg;
    dp_metrics.link_up = 0;
    struct sb_map_iter it = {0};
    void *v;
    while (sb_map_next(h->sessions, &it, NULL, &v)) {
        struct dp_session *s = v;
        dp_request_fail_pending(s, "unavailable", "control plane unavailable; retry", true);
        if (s->state == DP_SESSION_OPENING) {
            dp_metrics.connections_rejected_total++;
            dp_request_send_error(s, NULL, NULL, "unavailable", "control plane unavailable; retry");
            s->open_request_id = 0;
            dp_session_close_after_drain(s, 1011, "control plane unavailable");
        }
    }
}

static void link_stats(void *arg, int32_t *connections, int64_t *delivered)
{
    struct dp_hub *h = arg;
    *connections = (int32_t)sb_map_size(h->sessions);
    *delivered = (int64_t)dp_delivery_count(h->deliveries);
}

static const struct dp_link_cbs cbs = {
    .ready = link_ready,
    .down = link_down,
    .item = link_item,
    .stats = link_stats,
};

const struct dp_link_cbs *dp_hub_link_cbs(void)
{
    return &cbs;
}

void dp_hub_set_link(struct dp_hub *h, struct dp_link *link)
{
    h->link = link;
    dp_request_set_link(h->requests, link);
}

struct dp_request *dp_hub_request(struct dp_hub *h)
{
    return h->requests;
}

void dp_hub_sse_ping(struct dp_hub *h)
{
    struct sb_map_iter it = {0};
    void *v;
    while (sb_map_next(h->sessions, &it, NULL, &v)) {
        struct dp_session *s = v;
        if (s->transport == DP_TRANSPORT_SSE && s->state != DP_SESSION_CLOSING)
            dp_session_push(s, h->ping);
    }
}

void dp_hub_close_all(struct dp_hub *h, int code, const char *reason)
{
    struct sb_map_iter it = {0};
    void *v;
    while (sb_map_next(h->sessions, &it, NULL, &v))
        dp_session_close_after_drain(v, code, reason);
}

struct dp_hub *dp_hub_create(const struct dp_config *cfg)
{
    struct dp_hub *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->cfg = cfg;
    h->sessions = sb_map_create();
    h->router = dp_router_create();
    h->ping = dp_buf_create("", 0, NULL, 0);
    h->closed = calloc(CLOSED_RING, sizeof(*h->closed));
    if (h->sessions != NULL && h->router != NULL) {
        h->requests = dp_request_create(cfg, h->router);
        h->deliveries = dp_delivery_create(h->router, h->sessions);
    }
    if (h->ping != NULL) {
        h->ping->sse = strdup(": ping\n\n");
        h->ping->sse_len = 8;
    }
    if (h->sessions == NULL || h->router == NULL || h->ping == NULL || h->ping->sse == NULL ||
        h->closed == NULL || h->requests == NULL || h->deliveries == NULL) {
        dp_hub_destroy(h);
        return NULL;
    }
    return h;
}

void dp_hub_destroy(struct dp_hub *h)
{
    if (h == NULL)
        return;
    if (h->sessions != NULL) {
        struct sb_map_iter it = {0};
        void *v;
        while (sb_map_next(h->sessions, &it, NULL, &v)) {
            struct dp_session *s = v;
            sb_map_remove(h->sessions, s->connection_id);
            if (s->indexed)
                dp_router_remove_session(h->router, s->user_id, s);
            dp_session_destroy(s);
        }
    }
    dp_delivery_destroy(h->deliveries);
    dp_request_destroy(h->requests);
    sb_map_destroy(h->sessions);
    dp_router_destroy(h->router);
    dp_buf_unref(h->ping);
    free(h->closed);
    free(h);
}
