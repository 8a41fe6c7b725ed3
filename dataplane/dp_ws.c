/* WebSocket transport (/ws): authentication at the upgrade, message reassembly with the size
 * limits, and batched writes: queued frames are already WebSocket-framed in their shared
 * buffers, so several are copied back to back into one LWS_WRITE_RAW write. */
#include "dp_ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_auth.h"
#include "dp_config.h"
#include "dp_cred.h"
#include "dp_ctx.h"
#include "dp_http_respond.h"
#include "dp_hub.h"
#include "dp_metrics.h"
#include "dp_pss.h"
#include "dp_request.h"
#include "dp_wsrx.h"
#include "sb_log.h"

#define MOD        "dp_ws"
#define BATCH_MAX  65536
#define WRITES_MAX 16

static void ws_want_write(struct dp_session *s)
{
    struct lws *wsi = s->wsi;
    if (wsi == NULL)
        return;
    lws_callback_on_writable(wsi);
}

static void ws_abort(struct dp_session *s)
{
    struct lws *wsi = s->wsi;
    if (wsi == NULL)
        return;
    SB_LOG_WARN(MOD, "closing slow consumer", "conn=%s user=%s queued=%zu bytes=%zu",
                s->connection_id, s->user_id, s->count, s->bytes);
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static const struct dp_session_ops ws_ops = {ws_want_write, ws_abort};

static int reject_write(struct lws *wsi, struct dp_pss *pss)
{
    char *t;
    size_t n;
    const char *why = pss->id != NULL ? pss->id->why : "";
    if (dp_frame_format_error(NULL, pss->reject_code, why, &t, &n) == SB_OK) {
        unsigned char *p = dp_ctx_scratch(dp_ctx_of(wsi), n);
        if (p != NULL) {
            memcpy(p, t, n);
            lws_write(wsi, p, n, LWS_WRITE_TEXT);
        }
        free(t);
    }
    lws_close_reason(wsi, (enum lws_close_status)pss->reject_close,
                     (unsigned char *)pss->reject_code, strlen(pss->reject_code));
    return -1;
}

static int write_ping(struct lws *wsi, struct dp_pss *pss)
{
    static const char payload[] = "sb";
    pss->ping_due = false;
    unsigned char *p = dp_ctx_scratch(dp_ctx_of(wsi), sizeof(payload) - 1);
    if (p == NULL)
        return -1;
    memcpy(p, payload, sizeof(payload) - 1);
    return lws_write(wsi, p, sizeof(payload) - 1, LWS_WRITE_PING) < 0 ? -1 : 0;
}

static int writeable(struct lws *wsi, struct dp_pss *pss)
{
    struct dp_ctx *ctx = dp_ctx_of(wsi);
    struct dp_session *s = pss->s;
    if (pss->hard_close) {
        if (pss->close_sent)
            return 0;
        /* Send the close frame ourselves and keep reading (and dropping) until the client's
         * close arrives or the timeout fires: returning -1 here would close the socket with
         * unread input, the kernel would answer with a reset and the client would never see
         * 1009. */
        static const char reason[] = "\x88\x11\x03\xf1"
                                     "frame too large"; /* close, 1009 */
        unsigned char *p = dp_ctx_scratch(ctx, sizeof(reason) - 1);
        if (p == NULL)
            return -1;
        memcpy(p, reason, sizeof(reason) - 1);
        if (lws_write(wsi, p, sizeof(reason) - 1, LWS_WRITE_RAW) < 0)
            return -1;
        pss->close_sent = true;
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, 5);
        return 0;
    }
    if (s == NULL)
        return pss->reject_code != NULL ? reject_write(wsi, pss) : 0;
    if (pss->ping_due && write_ping(wsi, pss) != 0)
        return -1;
    if (s->state == DP_SESSION_OPENING)
        return 0; /* `connected` must be the first frame */
    for (int w = 0; w < WRITES_MAX && dp_session_queued(s) > 0; w++) {
        size_t total = 0, n = 0;
        struct dp_buf *b;
        while ((b = dp_session_peek(s, n)) != NULL && (n == 0 || total + b->ws_len <= BATCH_MAX)) {
            total += b->ws_len;
            n++;
        }
        unsigned char *p = dp_ctx_scratch(ctx, total);
        if (p == NULL)
            return -1;
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            b = dp_session_peek(s, i);
            memcpy(p + o, b->ws, b->ws_len);
            o += b->ws_len;
        }
        if (lws_write(wsi, p, total, LWS_WRITE_RAW) < 0)
            return -1;
        for (size_t i = 0; i < n; i++)
            dp_session_pop(s);
        dp_metrics.frames_out_total += n;
        dp_metrics.bytes_out_total += total;
        dp_metrics.writes_out_total++;
        /* not lws_send_pipe_choked(): that is a poll() system call per write */
        if (lws_partial_buffered(wsi))
            break;
    }
    if (dp_session_queued(s) > 0) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (s->close_pending) {
        lws_close_reason(wsi, (enum lws_close_status)s->close_code,
                         (unsigned char *)s->close_reason, strlen(s->close_reason));
        return -1;
    }
    return 0;
}

static int receive(struct lws *wsi, struct dp_pss *pss, const char *in, size_t len)
{
    struct dp_ctx *ctx = dp_ctx_of(wsi);
    struct dp_session *s = pss->s;
    if (s == NULL || pss->hard_close)
        return 0;
    const struct dp_wsrx_chunk c = {in, len, lws_remaining_packet_payload(wsi),
                                    lws_is_final_fragment(wsi) != 0, lws_frame_is_binary(wsi) != 0};
    const char *msg = NULL;
    size_t n = 0;
    enum dp_wsrx_verdict v = dp_wsrx_feed(&pss->rx, (uint64_t)ctx->cfg->max_frame_size,
                                          (uint64_t)ctx->cfg->hard_frame_limit, &c, &msg, &n);
    switch (v) {
    case DP_WSRX_MORE:
        return 0;
    case DP_WSRX_CLOSE:
        dp_metrics.frames_in_total++;
        dp_metrics.frames_invalid_total++;
        SB_LOG_INFO(MOD, "message beyond the hard limit, closing", "conn=%s received=%llu",
                    s->connection_id, (unsigned long long)pss->rx.total);
        /* Close from the writeable callback, reading (and dropping) what still comes: closing
         * with unread input would reset the TCP connection and lose the close frame. */
        pss->hard_close = true;
        lws_callback_on_writable(wsi);
        return 0;
    case DP_WSRX_ENOMEM:
        return -1;
    case DP_WSRX_MESSAGE:
        dp_request_client_frame(ctx->req, s, msg, n, NULL);
        break;
    case DP_WSRX_BINARY:
        dp_metrics.frames_in_total++;
        dp_metrics.frames_invalid_total++;
        dp_request_send_error(s, NULL, NULL, "invalid_message",
                              "binary frames are not supported: send JSON text frames");
        break;
    case DP_WSRX_TOO_LARGE: {
        char why[128];
        snprintf(why, sizeof(why), "frame of %zu bytes exceeds the limit of %lld bytes", n,
                 (long long)ctx->cfg->max_frame_size);
        dp_metrics.frames_in_total++;
        dp_metrics.frames_invalid_total++;
        dp_request_send_error(s, NULL, NULL, "message_too_large", why);
        break;
    }
    }
    dp_wsrx_release(&pss->rx);
    return 0;
}

/* The keepalive of one WebSocket, from the server's keepalive sweep (dp_ws_keepalive_sweep): a
 * connection that sent nothing (no frame, no pong) for idle_timeout_ms is closed (1000
 * idle_timeout); one silent for a ping interval gets a ping, then one per interval while it
 * stays silent. The pings carry a payload: lws does not report empty pongs to the protocol, and
 * the pong is what proves a silent client alive. This used to be one lws timer per connection;
 * in libwebsockets 4.1 arming one is a walk of a sorted list of every armed timer of the
 * thread, and each new connection's deadline lands at its end: O(N^2) over N connects
 * (lws_dll2_add_sorted: 35% of the data plane's samples while 10,000 clients connected). */
static void keepalive(struct dp_ctx *ctx, struct lws *wsi, struct dp_pss *pss, lws_usec_t now)
{
    struct dp_session *s = pss->s;
    if (s == NULL || s->close_pending || pss->hard_close)
        return;
    lws_usec_t idle = (lws_usec_t)ctx->cfg->idle_timeout_ms * LWS_US_PER_MS;
    lws_usec_t iv = (lws_usec_t)ctx->cfg->ping_interval_ms * LWS_US_PER_MS;
    lws_usec_t since = now - pss->last_rx_us;
    if (idle > 0 && since >= idle) {
        SB_LOG_INFO(MOD, "closing idle connection", "conn=%s user=%s silent_ms=%lld",
                    s->connection_id, s->user_id, (long long)(since / LWS_US_PER_MS));
        dp_session_close_after_drain(s, LWS_CLOSE_STATUS_NORMAL, "idle_timeout");
        return;
    }
    if (since >= iv && now - pss->last_ping_us >= iv && !pss->ping_due) {
        pss->ping_due = true;
        pss->last_ping_us = now;
        lws_callback_on_writable(wsi);
    }
}

struct sweep_arg {
    struct dp_ctx *ctx;
    lws_usec_t now;
};

static void keepalive_one(struct dp_session *s, void *arg)
{
    struct sweep_arg *a = arg;
    struct lws *wsi = s->wsi;
    if (s->transport != DP_TRANSPORT_WS || wsi == NULL)
        return;
    struct dp_pss *pss = lws_wsi_user(wsi);
    if (pss != NULL && pss->kind == DP_PSS_WS && pss->s == s)
        keepalive(a->ctx, wsi, pss, a->now);
}

void dp_ws_keepalive_sweep(struct dp_ctx *ctx)
{
    struct sweep_arg a = {ctx, lws_now_usecs()};
    dp_hub_visit_sessions(ctx->hub, keepalive_one, &a);
}

lws_usec_t dp_ws_keepalive_period(const struct dp_config *cfg)
{
    /* a quarter of the ping interval, within 100 ms .. 1 s: pings and idle closes happen at
     * most that late */
    int64_t ms = cfg->ping_interval_ms / 4;
    ms = ms < 100 ? 100 : ms > 1000 ? 1000 : ms;
    return (lws_usec_t)ms * LWS_US_PER_MS;
}

int dp_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, struct dp_pss *pss, void *in,
                   size_t len, bool *handled)
{
    struct dp_ctx *ctx = dp_ctx_of(wsi);
    *handled = true;
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
        /* Before the 101: a client that is not authenticated gets the HTTP 401 and its JSON
         * body, and never reaches the control plane (PROTOCOL.md). lws has no per-connection
         * data yet here, so the identity waits in the context's one-slot handoff for the
         * FILTER callback that follows in the same call. */
        char uri[16];
        if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 || strcmp(uri, "/ws") != 0)
            return -1; /* WebSocket only on /ws */
        struct dp_pss_ident *id = calloc(1, sizeof(*id));
        if (id == NULL)
            return -1;
        if (!dp_cred_check(wsi, &ctx->auth, id->user_id, &id->claims, id->why, sizeof(id->why))) {
            dp_metrics.connections_rejected_total++;
            dp_http_respond_refusal(wsi, HTTP_STATUS_UNAUTHORIZED, "unauthorized", id->why);
            dp_pss_ident_destroy(id);
            return 1; /* refused with our own answer; lws completes the transaction */
        }
        char arg[SB_IDENT_MAX + 16];
        const char *sid = lws_get_urlarg_by_name(wsi, "session_id=", arg, (int)sizeof(arg));
        snprintf(id->resume, sizeof(id->resume), "%s",
                 sid != NULL && sb_ident_is_valid(sid) ? sid : "");
        dp_pss_ident_destroy(ctx->upgrading);
        ctx->upgrading = id;
        ctx->upgrading_wsi = wsi;
        return 0;
    }
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        struct dp_pss_ident *id = ctx->upgrading_wsi == wsi ? ctx->upgrading : NULL;
        if (id == NULL || pss == NULL)
            return 1; /* not through CONFIRM_UPGRADE (never happens in 4.1): refuse */
        ctx->upgrading = NULL;
        ctx->upgrading_wsi = NULL;
        dp_pss_ident_free(pss);
        pss->id = id;
        pss->authorized = true;
        return 0;
    }
    case LWS_CALLBACK_ESTABLISHED:
        pss->kind = DP_PSS_WS;
        if (!pss->authorized || pss->id == NULL) {
            dp_metrics.connections_rejected_total++;
            pss->reject_code = "unauthorized";
            pss->reject_close = LWS_CLOSE_STATUS_POLICY_VIOLATION;
            lws_callback_on_writable(wsi);
            return 0;
        }
        pss->s = dp_hub_session_open(ctx->hub, DP_TRANSPORT_WS, pss->id->user_id, pss->id->resume,
                                     &pss->id->claims, &ws_ops, wsi);
        pss->last_rx_us = lws_now_usecs();
        pss->last_ping_us = pss->last_rx_us;
        if (pss->s != NULL)
            dp_pss_ident_free(pss); /* the session has the ids now */
        if (pss->s == NULL) {
            dp_metrics.connections_rejected_total++;
            pss->reject_code = "connection_limit_reached";
            snprintf(pss->id->why, sizeof(pss->id->why), "this node accepts no more connections");
            pss->reject_close = LWS_CLOSE_STATUS_POLICY_VIOLATION;
            lws_callback_on_writable(wsi);
        }
        return 0;
    case LWS_CALLBACK_RECEIVE:
        pss->last_rx_us = lws_now_usecs();
        return receive(wsi, pss, in, len);
    case LWS_CALLBACK_RECEIVE_PONG:
        pss->last_rx_us = lws_now_usecs();
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return writeable(wsi, pss);
    case LWS_CALLBACK_CLOSED:
        if (pss != NULL && pss->s != NULL) {
            pss->s->wsi = NULL;
            dp_hub_session_closed(ctx->hub, pss->s);
            pss->s = NULL;
        }
        if (pss != NULL)
            dp_wsrx_fini(&pss->rx);
        return 0;
    default:
        *handled = false;
        return 0;
    }
}
