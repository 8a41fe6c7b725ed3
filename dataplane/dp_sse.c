/* Server-Sent Events transport: GET /sse opens a stream (rooms/channels joined first, with
 * replay from Last-Event-ID), POST /sse/<connection_id> carries one client frame and is
 * answered with the ack/error frame once the control plane replied. */
#include "dp_sse.h"

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
#include "dp_sse_fmt.h"
#include "sb_log.h"

#define MOD        "dp_sse"
#define BATCH_MAX  65536
#define WRITES_MAX 16
#define LIST_MAX   4096

static void sse_want_write(struct dp_session *s)
{
    struct lws *wsi = s->wsi;
    if (wsi == NULL)
        return;
    /* Reads stay off while idle (a closed SSE client otherwise spins the loop); they are on
     * while output is queued, so a dead client is noticed at the next write or ping. */
    lws_rx_flow_control(wsi, 1);
    lws_callback_on_writable(wsi);
}

static void sse_abort(struct dp_session *s)
{
    struct lws *wsi = s->wsi;
    if (wsi == NULL)
        return;
    SB_LOG_WARN(MOD, "closing slow consumer", "conn=%s user=%s queued=%zu", s->connection_id,
                s->user_id, s->count);
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static const struct dp_session_ops sse_ops = {sse_want_write, sse_abort};

/* ---- stream ---- */

static int stream_writeable(struct lws *wsi, struct dp_pss *pss)
{
    struct dp_ctx *ctx = dp_ctx_of(wsi);
    struct dp_session *s = pss->s;
    if (s == NULL)
        return -1;
    if (s->state == DP_SESSION_OPENING)
        return 0;
    char idline[DP_SSE_POS_MAX * (SB_IDENT_MAX + 22) + 8];
    for (int w = 0; w < WRITES_MAX && dp_session_queued(s) > 0; w++) {
        size_t off = 0, n = 0;
        struct dp_buf *b;
        unsigned char *p = NULL;
        while ((b = dp_session_peek(s, n)) != NULL && (n == 0 || off < BATCH_MAX)) {
            const char *ev;
            size_t evlen;
            if (dp_buf_sse(b, &ev, &evlen) != SB_OK)
                return -1;
            size_t il = 0;
            /* A room message moves the stream position; a channel message (channels have no
             * history) repeats it ("-" before any room message), so Last-Event-ID keeps
             * resuming rooms and never names a channel. */
            bool has_id = b->channel;
            if (b->room_id != NULL && b->seq > 0 &&
                dp_sse_fmt_pos_set(&s->pos, b->room_id, b->seq) != SB_EINVAL)
                has_id = true;
            if (has_id) {
                memcpy(idline, "id: ", 4);
                size_t pl = dp_sse_fmt_pos_encode(&s->pos, idline + 4, sizeof(idline) - 6);
                if (pl > 0) {
                    il = 4 + pl;
                    idline[il++] = '\n';
                }
            }
            p = dp_ctx_scratch(ctx, off + il + evlen);
            if (p == NULL)
                return -1;
            memcpy(p + off, idline, il);
            memcpy(p + off + il, ev, evlen);
            off += il + evlen;
            n++;
        }
        if (lws_write(wsi, p, off, LWS_WRITE_HTTP) < 0)
            return -1;
        for (size_t i = 0; i < n; i++)
            dp_session_pop(s);
        dp_metrics.frames_out_total += n;
        dp_metrics.bytes_out_total += off;
        dp_metrics.writes_out_total++;
        /* not lws_send_pipe_choked(): that is a poll() system call per write */
        if (lws_partial_buffered(wsi))
            break;
    }
    if (dp_session_queued(s) > 0) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (s->close_pending)
        return -1;
    lws_rx_flow_control(wsi, 0);
    return 0;
}

/* Calls fn for each comma-separated item of `list`. */
static void each_item(char *list,
                      void (*fn)(struct dp_ctx *, struct dp_session *, const char *,
                                 const struct dp_sse_pos *),
                      struct dp_ctx *ctx, struct dp_session *s, const struct dp_sse_pos *pos)
{
    char *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save))
        if (t[0] != '\0')
            fn(ctx, s, t, pos);
}

static bool in_list(const char *list, const char *id)
{
    size_t n = strlen(id);
    for (const char *p = list; *p != '\0';) {
        const char *e = strchr(p, ',');
        size_t l = e != NULL ? (size_t)(e - p) : strlen(p);
        if (l == n && memcmp(p, id, n) == 0)
            return true;
        if (e == NULL)
            break;
        p = e + 1;
    }
    return false;
}

static void join_one(struct dp_ctx *ctx, struct dp_session *s, const char *room,
                     const struct dp_sse_pos *pos)
{
    dp_request_sse_join(ctx->req, s, room, dp_sse_fmt_pos_get(pos, room));
}

static void subscribe_one(struct dp_ctx *ctx, struct dp_session *s, const char *channel,
                          const struct dp_sse_pos *pos)
{
    (void)pos;
    dp_request_sse_subscribe(ctx->req, s, channel);
}

static int stream_open(struct lws *wsi, struct dp_pss *pss)
{
    struct dp_ctx *ctx = dp_ctx_of(wsi);
    char user[SB_IDENT_MAX + 1], why[160];
    struct sb_jwt_claims *claims = NULL;
    if (!dp_cred_check(wsi, &ctx->auth, user, &claims, why, sizeof(why))) {
        dp_metrics.connections_rejected_total++;
        return dp_http_respond_error(wsi, HTTP_STATUS_UNAUTHORIZED, "unauthorized", why);
    }
    /* Everything the stream needs from the request is read now: headers go away below. */
    char *rooms = calloc(1, LIST_MAX), *channels = calloc(1, LIST_MAX), *last = calloc(1, LIST_MAX);
    if (rooms == NULL || channels == NULL || last == NULL) {
        free(rooms);
        free(channels);
        free(last);
        dp_auth_claims_free(claims);
        return -1;
    }
    const char *r = lws_get_urlarg_by_name(wsi, "rooms=", rooms, LIST_MAX);
    if (r != NULL)
        memmove(rooms, r, strlen(r) + 1);
    else
        rooms[0] = '\0';
    const char *c = lws_get_urlarg_by_name(wsi, "channels=", channels, LIST_MAX);
    if (c != NULL)
        memmove(channels, c, strlen(c) + 1);
    else
        channels[0] = '\0';
    if (lws_hdr_custom_length(wsi, "last-event-id:", 14) > 0) {
        if (lws_hdr_custom_copy(wsi, last, LIST_MAX, "last-event-id:", 14) < 0)
            last[0] = '\0';
    } else {
        const char *l = lws_get_urlarg_by_name(wsi, "last_event_id=", last, LIST_MAX);
        if (l != NULL)
            memmove(last, l, strlen(l) + 1);
        else
            last[0] = '\0';
    }

    char resume[SB_IDENT_MAX + 16];
    const char *sid = lws_get_urlarg_by_name(wsi, "session_id=", resume, (int)sizeof(resume));
    int ret = 0;
    struct dp_session *s =
        dp_hub_session_open(ctx->hub, DP_TRANSPORT_SSE, user, sid, &claims, &sse_ops, wsi);
    if (s == NULL) {
        dp_metrics.connections_rejected_total++;
        ret = dp_http_respond_error(wsi, 429, "connection_limit_reached",
                                    "this node accepts no more connections");
        goto out;
    }
    pss->kind = DP_PSS_SSE;
    pss->s = s;
    unsigned char hdr[LWS_PRE + 2048];
    unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr) - 1;
    if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK, "text/event-stream",
                                    LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-cache", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end)) {
        ret = -1;
        goto out;
    }
    lws_http_headers_detach(wsi);
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    if (dp_session_queued(s) > 0)
        sse_want_write(s);
    else
        lws_rx_flow_control(wsi, 0);
    if (s->state == DP_SESSION_CLOSING)
        goto out; /* refused (link down): the error event then the end of the stream */

    struct dp_sse_pos pos = {0};
    if (last[0] != '\0' && dp_sse_fmt_pos_parse(last, strlen(last), &pos) != SB_OK) {
        dp_request_send_error(s, NULL, NULL, "invalid_message",
                              "Last-Event-ID is not a stream position (room:seq,...): ignored");
        dp_sse_fmt_pos_fini(&pos);
    }
    /* The stream's position carries on from where the last one stopped. */
    for (size_t i = 0; i < pos.n; i++)
        dp_sse_fmt_pos_set(&s->pos, pos.v[i].room_id, pos.v[i].seq);
    for (size_t i = 0; i < pos.n; i++) {
        /* Rooms of the previous stream that the query leaves out are rejoined too. */
        if (!in_list(rooms, pos.v[i].room_id))
            dp_request_sse_join(ctx->req, s, pos.v[i].room_id, pos.v[i].seq);
    }
    each_item(rooms, join_one, ctx, s, &pos);
    dp_sse_fmt_pos_fini(&pos);
    each_item(channels, subscribe_one, ctx, s, NULL);
out:
    free(rooms);
    free(channels);
    free(last);
    dp_auth_claims_free(claims); /* NULL once the session took them */
    return ret;
}

/* ---- POST /sse/<connection_id> ---- */

static void post_ready(struct dp_post *post)
{
    struct lws *wsi = post->wsi;
    if (wsi != NULL)
        lws_callback_on_writable(wsi);
}

static void post_reset(struct dp_ctx *ctx, struct dp_pss *pss)
{
    dp_request_post_abandoned(&pss->post);
    dp_buf_unref(pss->post.answer);
    free(pss->body);
    pss->body = NULL;
    pss->body_len = 0;
    pss->body_too_large = false;
    pss->answered = false;
    memset(&pss->post, 0, sizeof(pss->post));
    dp_pss_ident_free(pss); /* lws frees the pss itself after the transaction */
}

static int post_open(struct lws *wsi, struct dp_pss *pss, const char *id)
{
    struct dp_ctx *ctx = dp_ctx_of(wsi);
    post_reset(ctx, pss);
    pss->kind = DP_PSS_POST;
    snprintf(pss->conn_id, sizeof(pss->conn_id), "%s", id);
    struct dp_pss_ident *who = dp_pss_ident(pss);
    if (who == NULL)
        return -1;
    struct sb_jwt_claims *claims = NULL;
    pss->authorized =
        dp_cred_check(wsi, &ctx->auth, who->user_id, &claims, who->why, sizeof(who->why));
    dp_auth_claims_free(claims); /* a POST only proves who sends it */
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
        char cl[32];
        lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH);
        if (strtoll(cl, NULL, 10) > ctx->cfg->max_frame_size)
            pss->body_too_large = true;
    }
    return 0;
}

static int post_body(struct lws *wsi, struct dp_pss *pss, const char *in, size_t len)
{
    struct dp_ctx *ctx = dp_ctx_of(wsi);
    if (pss->body_too_large)
        return 0;
    if ((int64_t)(pss->body_len + len) > ctx->cfg->max_frame_size) {
        pss->body_too_large = true;
        free(pss->body);
        pss->body = NULL;
        return 0;
    }
    char *b = realloc(pss->body, pss->body_len + len + 1);
    if (b == NULL)
        return -1;
    memcpy(b + pss->body_len, in, len);
    pss->body = b;
    pss->body_len += len;
    return 0;
}

static int post_complete(struct lws *wsi, struct dp_pss *pss)
{
    struct dp_ctx *ctx = dp_ctx_of(wsi);
    if (pss->id == NULL)
        return -1;
    if (!pss->authorized)
        return dp_http_respond_error(wsi, HTTP_STATUS_UNAUTHORIZED, "unauthorized", pss->id->why);
    struct dp_session *s = dp_hub_find(ctx->hub, pss->conn_id);
    if (s == NULL || s->transport != DP_TRANSPORT_SSE) {
        char msg[96];
        snprintf(msg, sizeof(msg), "no SSE connection %.40s on this node", pss->conn_id);
        return dp_http_respond_error(wsi, HTTP_STATUS_NOT_FOUND, "connection_not_found", msg);
    }
    if (strcmp(s->user_id, pss->id->user_id) != 0)
        return dp_http_respond_error(wsi, HTTP_STATUS_UNAUTHORIZED, "unauthorized",
                                     "this connection belongs to another user");
    if (pss->body_too_large) {
        char msg[96];
        dp_metrics.frames_in_total++;
        dp_metrics.frames_invalid_total++;
        snprintf(msg, sizeof(msg), "frame exceeds the limit of %lld bytes",
                 (long long)ctx->cfg->max_frame_size);
        return dp_http_respond_error(wsi, HTTP_STATUS_REQ_ENTITY_TOO_LARGE, "message_too_large",
                                     msg);
    }
    pss->post.wsi = wsi;
    pss->post.ready = post_ready;
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, (int)(ctx->cfg->send_timeout_ms / 1000));
    dp_request_client_frame(ctx->req, s, pss->body != NULL ? pss->body : "", pss->body_len,
                            &pss->post);
    free(pss->body); /* the request went out packed, or was answered */
    pss->body = NULL;
    pss->body_len = 0;
    return 0;
}

static int post_writeable(struct lws *wsi, struct dp_pss *pss)
{
    if (pss->post.answer == NULL || pss->answered)
        return 0;
    pss->answered = true;
    struct dp_buf *b = pss->post.answer;
    pss->post.answer = NULL;
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    int r =
        dp_http_respond(wsi, (unsigned int)pss->post.status, "application/json", b->json, b->len);
    dp_buf_unref(b);
    return r;
}

int dp_sse_callback(struct lws *wsi, enum lws_callback_reasons reason, struct dp_pss *pss, void *in,
                    size_t len, bool *handled)
{
    struct dp_ctx *ctx = dp_ctx_of(wsi);
    *handled = true;
    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        const char *path = in;
        bool post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
        if (strcmp(path, "/sse") == 0 && !post)
            return stream_open(wsi, pss);
        if (strncmp(path, "/sse/", 5) == 0 && post)
            return post_open(wsi, pss, path + 5);
        if (strcmp(path, "/sse") == 0 || strncmp(path, "/sse/", 5) == 0)
            return dp_http_respond_error(
                wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, "invalid_message",
                "use GET /sse to listen and POST /sse/<connection_id> to send");
        *handled = false;
        return 0;
    }
    case LWS_CALLBACK_HTTP_BODY:
        if (pss->kind != DP_PSS_POST)
            break;
        return post_body(wsi, pss, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (pss->kind != DP_PSS_POST)
            break;
        return post_complete(wsi, pss);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (pss->kind == DP_PSS_SSE)
            return stream_writeable(wsi, pss);
        if (pss->kind == DP_PSS_POST)
            return post_writeable(wsi, pss);
        break;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        /* The transaction is over (keep-alive connections go on with another one). */
        if (pss != NULL && pss->kind == DP_PSS_POST)
            post_reset(ctx, pss);
        break;
    case LWS_CALLBACK_CLOSED_HTTP:
        if (pss == NULL)
            break;
        if (pss->kind == DP_PSS_SSE && pss->s != NULL) {
            pss->s->wsi = NULL;
            dp_hub_session_closed(ctx->hub, pss->s);
            pss->s = NULL;
        } else if (pss->kind == DP_PSS_POST) {
            post_reset(ctx, pss);
        }
        break;
    default:
        break;
    }
    *handled = false;
    return 0;
}
