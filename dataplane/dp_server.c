/* libwebsockets context: one vhost on --listen, one protocol serving every path, the SSE ping
 * timer, and the loop. The NodeLink pump wakes the loop with lws_cancel_service(); the wake
 * arrives as EVENT_WAIT_CANCELLED and drains the link's completions. */
#include "dp_server.h"

#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <string.h>

#include <libwebsockets.h>

#include "dp_auth.h"
#include "dp_ctx.h"
#include "dp_http.h"
#include "dp_hub.h"
#include "dp_link.h"
#include "dp_pss.h"
#include "dp_session.h"
#include "dp_sse.h"
#include "dp_ws.h"
#include "sb_log.h"
#include "sb_time.h"

#define MOD "dp_server"

struct dp_server {
    struct lws_context *lws;
    struct dp_ctx ctx; /* the lws context's user: what the transports reach (hub, link) */
    lws_sorted_usec_list_t sul_ping;
    lws_sorted_usec_list_t sul_sweep;     /* stalled-outbox sweep, every second */
    lws_sorted_usec_list_t sul_tick;      /* wakes the loop while draining at stop */
    lws_sorted_usec_list_t sul_keepalive; /* WebSocket pings and idle closes, one sweep */
    lws_sorted_usec_list_t sul_trim;      /* heap trim after a burst, every 100 ms */
    lws_retry_bo_t retry;
    volatile int stop;
};

/* Gives memory freed after a burst back to the kernel. A fan-out storm (every member's join
 * announced to every other member: N^2 frames) grows outboxes to the heap and allocates frames by
 * tens of MiB, all freed a moment later; glibc keeps freed pages resident, so without this an
 * idle connection's share of RSS carries the storm's high-water mark. Checked every 100 ms for
 * two counters; malloc_trim (a walk of the free lists, about a millisecond after a large burst)
 * runs only once the outboxes that went to the heap are back inline. The same tick refreshes the
 * sessions' coarse clock. */
static void trim_cb(lws_sorted_usec_list_t *sul)
{
    struct dp_server *srv = lws_container_of(sul, struct dp_server, sul_trim);
    dp_session_clock_ms = sb_time_mono_ms();
    if (dp_session_rings_released > 0 &&
        (dp_session_heap_rings == 0 || dp_session_rings_released >= 4096)) {
        dp_session_rings_released = 0;
#if defined(__GLIBC__)
        malloc_trim(0);
#endif
    }
    lws_sul_schedule(srv->lws, 0, &srv->sul_trim, trim_cb, 100 * LWS_US_PER_MS);
}

static void keepalive_cb(lws_sorted_usec_list_t *sul)
{
    struct dp_server *srv = lws_container_of(sul, struct dp_server, sul_keepalive);
    dp_ws_keepalive_sweep(&srv->ctx);
    lws_sul_schedule(srv->lws, 0, &srv->sul_keepalive, keepalive_cb,
                     dp_ws_keepalive_period(srv->ctx.cfg));
}

/* Once a second: close the sessions whose outbox made no progress for send_timeout_ms. */
static void sweep_cb(lws_sorted_usec_list_t *sul)
{
    struct dp_server *srv = lws_container_of(sul, struct dp_server, sul_sweep);
    dp_hub_sweep(srv->ctx.hub, sb_time_mono_ms());
    lws_sul_schedule(srv->lws, 0, &srv->sul_sweep, sweep_cb, LWS_US_PER_SEC);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct dp_pss *pss = user;
    if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
        struct dp_ctx *ctx = dp_ctx_of(wsi);
        if (ctx != NULL && ctx->link != NULL)
            dp_link_service(ctx->link);
        return 0; /* nonzero here would break later wakes */
    }
    bool handled = false;
    int r = dp_ws_callback(wsi, reason, pss, in, len, &handled);
    if (!handled)
        r = dp_sse_callback(wsi, reason, pss, in, len, &handled);
    if (!handled)
        r = dp_http_callback(wsi, reason, pss, in, len, &handled);
    if (!handled)
        r = lws_callback_http_dummy(wsi, reason, user, in, len);
    if (reason == LWS_CALLBACK_CLOSED || reason == LWS_CALLBACK_CLOSED_HTTP)
        dp_pss_ident_free(pss);
    return r;
}

/* rx_buffer_size is allocated per WebSocket connection for its whole life (lws' rx_ubuf): it is
 * the largest item of an idle connection's memory (4 KiB at 4096). Frames larger than it arrive
 * in several RECEIVE callbacks, which dp_ws.c reassembles; client frames are small, so 512 bytes
 * costs nothing in throughput. tx_packet_size caps each send() of a batched write: kept at 64
 * KiB (lws allocates nothing per connection for it). */
#define DP_WS_RX_BUFFER 512

static const struct lws_protocols protocols[] = {
    {"switchboard", callback, sizeof(struct dp_pss), DP_WS_RX_BUFFER, 0, NULL, 65536},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void ping_cb(lws_sorted_usec_list_t *sul)
{
    struct dp_server *srv = lws_container_of(sul, struct dp_server, sul_ping);
    dp_hub_sse_ping(srv->ctx.hub);
    lws_sul_schedule(srv->lws, 0, &srv->sul_ping, ping_cb,
                     (lws_usec_t)srv->ctx.cfg->ping_interval_ms * LWS_US_PER_MS);
}

/* lws_service() sleeps until the next scheduled timer whatever timeout it is given, so the
 * drain at stop keeps a short timer armed to come back and check the clock. */
static void tick_cb(lws_sorted_usec_list_t *sul)
{
    struct dp_server *srv = lws_container_of(sul, struct dp_server, sul_tick);
    lws_sul_schedule(srv->lws, 0, &srv->sul_tick, tick_cb, 20 * LWS_US_PER_MS);
}

static void lws_log(int level, const char *line)
{
    char buf[256];
    size_t n = strnlen(line, sizeof(buf) - 1);
    memcpy(buf, line, n);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    sb_log(level == LLL_ERR ? SB_LOG_ERROR : SB_LOG_WARN, "lws", buf, NULL);
}

struct dp_server *dp_server_create(const struct dp_config *cfg, struct dp_keys *keys)
{
    struct dp_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return NULL;
    srv->ctx.cfg = cfg;
    dp_auth_init(&srv->ctx.auth, cfg, keys);
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);

    /* WebSocket keepalive and idle cleanup are dp_ws.c's timer (pings with a payload, a clean
     * 1000 idle_timeout close). A policy with no hang-up time turns lws's own validity timer
     * off: no second timer per connection (see docs/benchmarks.md on timer costs). */
    srv->retry.secs_since_valid_ping = 0;
    srv->retry.secs_since_valid_hangup = 0;

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = cfg->port;
    info.iface =
        strcmp(cfg->host, "0.0.0.0") == 0 || strcmp(cfg->host, "*") == 0 ? NULL : cfg->host;
    info.protocols = protocols;
    info.user = &srv->ctx;
    info.vhost_name = "switchboard";
    info.max_http_header_data = 8192;
    info.pt_serv_buf_size = 65536;
    info.keepalive_timeout = 10;
    info.retry_and_idle_policy = &srv->retry;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 |
                   LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;
    if (strchr(cfg->host, ':') == NULL)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    srv->lws = lws_create_context(&info);
    if (srv->lws == NULL) {
        SB_LOG_ERROR(MOD, "cannot listen", "addr=%s", cfg->listen);
        free(srv);
        return NULL;
    }
    srv->ctx.hub = dp_hub_create(cfg);
    struct dp_link_opts lo = {
        .endpoints = cfg->controlplane,
        .node_id = cfg->node_id,
        .address = cfg->listen,
        .max_message_bytes = 256u << 20,
        .max_queue_bytes = 64u << 20,
        .cluster_secret = cfg->cluster_secret,
    };
    srv->ctx.link = srv->ctx.hub != NULL
                        ? dp_link_create(srv->lws, &lo, dp_hub_link_cbs(), srv->ctx.hub)
                        : NULL;
    if (srv->ctx.hub == NULL || srv->ctx.link == NULL) {
        SB_LOG_ERROR(MOD, "cannot set up the hub or the link", NULL);
        dp_server_destroy(srv);
        return NULL;
    }
    dp_hub_set_link(srv->ctx.hub, srv->ctx.link);
    srv->ctx.req = dp_hub_request(srv->ctx.hub);
    dp_request_set_auth(srv->ctx.req, &srv->ctx.auth);
    SB_LOG_INFO(MOD, "listening", "addr=%s node=%s web_root=\"%s\"", cfg->listen, cfg->node_id,
                cfg->web_root);
    return srv;
}

int dp_server_run(struct dp_server *srv)
{
    if (dp_link_start(srv->ctx.link) != SB_OK) {
        SB_LOG_ERROR(MOD, "cannot start the link thread", NULL);
        return 1;
    }
    lws_sul_schedule(srv->lws, 0, &srv->sul_ping, ping_cb,
                     (lws_usec_t)srv->ctx.cfg->ping_interval_ms * LWS_US_PER_MS);
    lws_sul_schedule(srv->lws, 0, &srv->sul_sweep, sweep_cb, LWS_US_PER_SEC);
    lws_sul_schedule(srv->lws, 0, &srv->sul_keepalive, keepalive_cb,
                     dp_ws_keepalive_period(srv->ctx.cfg));
    dp_session_clock_ms = sb_time_mono_ms();
    lws_sul_schedule(srv->lws, 0, &srv->sul_trim, trim_cb, 100 * LWS_US_PER_MS);
    while (!srv->stop) {
        if (lws_service(srv->lws, 0) < 0)
            break;
    }
    SB_LOG_INFO(MOD, "stopping: closing client connections (1001)", NULL);
    dp_hub_close_all(srv->ctx.hub, 1001, "server going away");
    lws_sul_schedule(srv->lws, 0, &srv->sul_tick, tick_cb, 20 * LWS_US_PER_MS);
    int64_t until = lws_now_usecs() + 500 * LWS_US_PER_MS;
    while (lws_now_usecs() < until && dp_hub_session_count(srv->ctx.hub) > 0)
        lws_service(srv->lws, 0);
    lws_sul_cancel(&srv->sul_tick);
    return 0;
}

void dp_server_stop(struct dp_server *srv)
{
    srv->stop = 1;
    if (srv->lws != NULL)
        lws_cancel_service(srv->lws);
}

void dp_server_destroy(struct dp_server *srv)
{
    if (srv == NULL)
        return;
    if (srv->lws != NULL) {
        lws_sul_cancel(&srv->sul_ping);
        lws_sul_cancel(&srv->sul_sweep);
        lws_sul_cancel(&srv->sul_trim);
        lws_sul_cancel(&srv->sul_keepalive);
    }
    /* The link goes first: its pump thread wakes the context. Sessions closed afterwards send
     * nothing on it. */
    if (srv->ctx.hub != NULL)
        dp_hub_set_link(srv->ctx.hub, NULL);
    dp_link_destroy(srv->ctx.link);
    srv->ctx.link = NULL;
    if (srv->lws != NULL)
        lws_context_destroy(srv->lws);
    dp_hub_destroy(srv->ctx.hub);
    dp_auth_fini(&srv->ctx.auth);
    dp_ctx_fini(&srv->ctx);
    free(srv);
}
