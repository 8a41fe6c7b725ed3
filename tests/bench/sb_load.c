/* sb_load: WebSocket load client for the Switchboard data plane, and for the servers it is compared
 * with (--proto nats: nats-server's websocket listener; --proto ws: a plain broadcast server).
 * One lws context, one thread: opens N connections, joins them to one room (Switchboard: `join`
 * frames or SSE `rooms=`; NATS: SUB + PING/PONG; ws: nothing to join), publishes timestamped
 * messages, reports figures.
 *
 * Phases: CONNECT (every connection until its `connected` frame) -> JOIN (a `join` per connection,
 * every ack) -> SETTLE (until the join/presence events the joins caused stop arriving) -> PUBLISH
 * (one extra member connection publishes at --rate or flat out) -> DRAIN (until every delivery
 * arrived or --timeout) -> report. Every phase is bounded in time. Exit status: 0 complete,
 * 1 incomplete (lost, duplicated or reordered deliveries, errors, unexpected closes),
 * 2 usage, 3 setup failed (connect/join/timeout). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "bench_grpc.h"
#include "bench_hist.h"
#include "bench_proc.h"
#include "bench_scan.h"

#define RING_SIZE       (1u << 16) /* in-flight message slots (send times, delivery counts) */
#define RING_MASK       (RING_SIZE - 1u)
#define MAX_FRAME       (1u << 20) /* largest server frame the client reassembles */
#define SETTLE_QUIET_NS (300 * 1000000LL)
#define TICK_US_IDLE    10000
#define TICK_US_PUBLISH 1000
#define MAX_BURST       64 /* frames written in one writeable callback */
#define ERRORS_SHOWN    5
#define RX_READ         (1u << 16) /* lean receive path: bytes per read() */
#define HS_MAX          8192       /* longest HTTP upgrade answer accepted */
#define EPOLL_BATCH     512
#define TOKEN_MAX       8192 /* longest token the data plane accepts (SB_JWT_MAX_TOKEN) */
#define PATH_CAP        (TOKEN_MAX + 512) /* request path: --url's path, credential, rooms= */
#define TOKENS_MAX      2000000           /* lines read from --token-file at most */

enum phase { PH_CONNECT, PH_JOIN, PH_SETTLE, PH_PUBLISH, PH_DRAIN, PH_DONE };
static const char *phase_name[] = {"connect", "join", "settle", "publish", "drain", "done"};

enum proto { PROTO_SB, PROTO_NATS, PROTO_WS };
static const char *proto_name[] = {"switchboard", "nats", "ws"};

enum conn_state {
    CS_IDLE,
    CS_CONNECTING,
    CS_UPGRADED,
    CS_CONNECTED,
    CS_JOINING,
    CS_JOINED,
    CS_CLOSED
};

struct conn {
    struct lws *wsi;
    uint32_t idx;
    uint8_t state;
    uint8_t want_join;
    uint8_t bad_order;    /* a counter went backwards or repeated */
    uint8_t bad_gap;      /* a counter or a seq skipped */
    uint8_t sse;          /* Switchboard over SSE (receivers with --transport sse) */
    uint8_t want_hello;   /* nats: CONNECT + SUB + PING to send */
    uint32_t want_pong;   /* nats: PONGs owed to the server's PINGs */
    int64_t t_start;      /* connect or join start, ns */
    int64_t t_upgrade;    /* WebSocket upgrade done, ns */
    int64_t next_n;       /* next expected publisher counter */
    int64_t last_seq;     /* last server seq seen, 0 = none */
    uint64_t received;    /* bench messages */
    int fd;               /* lean receive path: the raw socket, -1 when none */
    uint8_t hs;           /* lean path: HS_TCP (connecting), HS_HEADERS (upgrade sent), HS_OPEN */
    unsigned char *carry; /* lean path: the bytes of an incomplete frame (or upgrade answer) */
    uint32_t carry_len, carry_cap;
    char *frag; /* reassembly of a frame split across callbacks (rare); nats/SSE: the
                 * unparsed tail of the byte stream */
    size_t frag_len, frag_cap;
};

struct options {
    char host[256];
    int port;
    char path[256];
    int conns;
    char room[129];
    char user_prefix[64];
    double rate; /* messages/s; 0 = flat out */
    double duration;
    int64_t count;
    int size;
    pid_t dp_pid, cp_pid;
    double timeout;
    int window;         /* published, not yet acked */
    int max_lag;        /* published, not yet delivered to every receiver (flat out only) */
    int connect_window; /* connects (and joins) in progress at once */
    bool no_join;
    char cp[256]; /* control plane HOST:PORT for --prejoin */
    bool prejoin;
    bool connect_only; /* stop after connect (+join) and settle: connect rate and idle RSS */
    enum proto proto;
    double then_frac;       /* after a flat-out run, publish again at this fraction of its msg/s */
    bool sse;               /* --transport sse: receivers use GET /sse?rooms=R (Switchboard only) */
    bool recv_lws;          /* --recv lws: receivers on libwebsockets (the old path) */
    const char *token_file; /* --token-file: ?token= from its lines instead of ?user_id= */
};

enum { HS_TCP = 0, HS_HEADERS, HS_OPEN };

static struct {
    struct options o;
    struct lws_context *ctx;
    bool raw; /* receivers on the lean path (raw sockets on one epoll) */
    int ep;   /* its epoll instance */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    uint32_t mask_rng;
    struct conn *conns; /* o.conns receivers + 1 publisher (last) */
    uint32_t total;     /* o.conns + 1 */
    char **tokens;      /* --token-file lines; connection i uses tokens[i % n_tokens] */
    uint32_t n_tokens;
    lws_sorted_usec_list_t tick;
    enum phase phase;
    int64_t phase_deadline;
    int exit_code;
    volatile sig_atomic_t interrupted;

    /* connect / join */
    uint32_t next_connect, in_progress, connected, joined, failed;
    uint32_t next_join;
    int64_t t_connect0, t_connect1, t_join0, t_join1, t_settle1, t_last_other;
    struct bench_hist h_upgrade, h_cp, h_connected, h_join;

    /* publish */
    int64_t t_pub0, t_pub1, t_last_recv;
    int64_t sent, acked, refused, fully_delivered; /* acked: answered (ack or error) */
    int64_t t_sent[RING_SIZE];
    int64_t max_sched_lag; /* fixed rate: how late the worst publish left against its slot */
    uint32_t delivered[RING_SIZE];
    struct bench_hist h_latency, h_ack;
    uint64_t received_total, frames_other, frames_join, frames_presence;
    uint64_t errors, closed_unexpected, bad_frames;
    char *pad; /* o.size 'x' bytes */

    /* resources */
    uint64_t conn_cpu0[3], conn_cpu1[3]; /* dp, cp, client ticks over the connect phase */
    uint64_t join_cpu1[3];               /* ... at the end of the join phase */
    uint64_t dp_rss0, dp_rss_conn, dp_rss1, dp_cpu0, dp_cpu1, cp_cpu0, cp_cpu1, self_cpu0,
        self_cpu1;
    bool dp_rss_ok, dp_cpu_ok, cp_cpu_ok;

    /* --then-fraction: the second publish phase counts from these; the flat-out figures */
    bool second;
    int64_t sent0;
    uint64_t received0;
    double flat_msg_s, flat_deliv_s, flat_p50, flat_p90, flat_p99, flat_p999, flat_dp_cpu,
        flat_cp_cpu, flat_cli_cpu;
} g;

static unsigned char txbuf[LWS_PRE + MAX_FRAME];

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void set_phase(enum phase p, double timeout_s)
{
    g.phase = p;
    g.phase_deadline = timeout_s > 0 ? now_ns() + (int64_t)(timeout_s * 1e9) : INT64_MAX;
}

static void fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sb_load: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (!g.exit_code)
        g.exit_code = code;
    g.phase = PH_DONE;
}

/* ---- frames the client sends (Switchboard protocol v1) ---- */

static size_t build_join(char *out, size_t cap)
{
    int n = snprintf(out, cap, "{\"type\":\"join\",\"room_id\":\"%s\",\"ref\":\"j\"}", g.o.room);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* The benchmark payload, the same for every protocol: {"sbt":<ns>,"sbn":<n>,"pad":"xxx"} sized to
 * o.size bytes when possible. */
static size_t build_data(char *out, size_t cap, int64_t n, int64_t t)
{
    char head[160];
    int hl =
        snprintf(head, sizeof(head), "{\"sbt\":%" PRId64 ",\"sbn\":%" PRId64 ",\"pad\":\"", t, n);
    int padn = g.o.size - hl - 2;
    if (padn < 0)
        padn = 0;
    int w = snprintf(out, cap, "%s%.*s\"}", head, padn, g.pad);
    return w > 0 && (size_t)w < cap ? (size_t)w : 0;
}

static char databuf[MAX_FRAME];

/* One publish in the protocol's dialect: a Switchboard `message` frame, a NATS PUB, or the bare
 * payload for the broadcast server. */
static size_t build_message(char *out, size_t cap, int64_t n, int64_t t)
{
    size_t dl = build_data(databuf, sizeof(databuf), n, t);
    if (!dl)
        return 0;
    int w;
    switch (g.o.proto) {
    case PROTO_NATS:
        w = snprintf(out, cap, "PUB %s %zu\r\n%s\r\n", g.o.room, dl, databuf);
        break;
    case PROTO_WS:
        w = snprintf(out, cap, "%s", databuf);
        break;
    default:
        w = snprintf(out, cap,
                     "{\"type\":\"message\",\"room_id\":\"%s\",\"ref\":\"p%" PRId64
                     "\",\"data\":%s}",
                     g.o.room, n, databuf);
        break;
    }
    return w > 0 && (size_t)w < cap ? (size_t)w : 0;
}

/* ---- connection management ---- */

/* No keepalive pings: with lws's default policy every connection keeps a validity timer in one
 * sorted list, and inserting each new one walks all the others (O(N) per connection). */
static const lws_retry_bo_t no_validity = {NULL, 0, 0, 0, 0, 0};

static void conn_path(const struct conn *c, char *path, size_t cap)
{
    bool is_pub = c->idx + 1 == g.total;
    const char *sep = strchr(g.o.path, '?') ? "&" : "?";
    if (g.o.proto != PROTO_SB)
        snprintf(path, cap, "%s", g.o.path);
    else if (g.n_tokens > 0 && c->sse) /* tokens are base64url and dots: no escaping needed */
        snprintf(path, cap, "/sse?token=%s&rooms=%s", g.tokens[c->idx % g.n_tokens], g.o.room);
    else if (g.n_tokens > 0)
        snprintf(path, cap, "%s%stoken=%s", g.o.path, sep, g.tokens[c->idx % g.n_tokens]);
    else if (c->sse)
        snprintf(path, cap, "/sse?user_id=%s%u&rooms=%s", g.o.user_prefix, c->idx, g.o.room);
    else if (is_pub)
        snprintf(path, cap, "%s%suser_id=%spub", g.o.path, strchr(g.o.path, '?') ? "&" : "?",
                 g.o.user_prefix);
    else
        snprintf(path, cap, "%s%suser_id=%s%u", g.o.path, strchr(g.o.path, '?') ? "&" : "?",
                 g.o.user_prefix, c->idx);
}

static int raw_connect(struct conn *c);
static void conn_flush(struct conn *c, struct lws *wsi);

static void start_connects(void)
{
    while (g.phase == PH_CONNECT && g.next_connect < g.total &&
           g.in_progress < (uint32_t)g.o.connect_window) {
        struct conn *c = &g.conns[g.next_connect++];
        char path[PATH_CAP];
        bool is_pub = c->idx + 1 == g.total;
        c->sse = g.o.sse && !is_pub; /* the publisher always uses WebSocket */
        conn_path(c, path, sizeof(path));
        if (g.raw && !is_pub) {
            c->state = CS_CONNECTING;
            c->t_start = now_ns();
            g.in_progress++;
            if (raw_connect(c) != 0) {
                if (g.failed < ERRORS_SHOWN)
                    fprintf(stderr, "sb_load: connection %u failed: %s\n", c->idx, strerror(errno));
                c->state = CS_CLOSED;
                g.in_progress--;
                g.failed++;
            }
            continue;
        }
        struct lws_client_connect_info ci;
        memset(&ci, 0, sizeof(ci));
        ci.context = g.ctx;
        ci.address = g.o.host;
        ci.port = g.o.port;
        ci.path = path;
        ci.host = g.o.host;
        ci.origin = g.o.host;
        ci.ietf_version_or_minus_one = -1;
        ci.userdata = c;
        ci.local_protocol_name = "sb-bench";
        ci.pwsi = &c->wsi;
        ci.retry_and_idle_policy = &no_validity;
        if (c->sse)
            ci.method = "GET";
        c->state = CS_CONNECTING;
        c->t_start = now_ns();
        g.in_progress++;
        if (!lws_client_connect_via_info(&ci)) {
            /* lws may already have called CONNECTION_ERROR (which counted the failure) */
            if (c->state == CS_CONNECTING) {
                c->state = CS_CLOSED;
                g.in_progress--;
                g.failed++;
            }
        }
    }
}

static void start_joins(void)
{
    while (g.phase == PH_JOIN && g.next_join < g.total &&
           g.in_progress < (uint32_t)g.o.connect_window) {
        struct conn *c = &g.conns[g.next_join++];
        if (c->sse || c->state != CS_CONNECTED || (!c->wsi && c->fd < 0))
            continue; /* SSE streams join through `rooms=`: their ack counts them */
        c->state = CS_JOINING;
        c->want_join = 1;
        c->t_start = now_ns();
        g.in_progress++;
        conn_flush(c, c->wsi);
    }
}

static bool can_publish(void)
{
    if (g.phase != PH_PUBLISH)
        return false;
    if (g.o.count > 0 && g.sent >= g.o.count)
        return false;
    if (g.sent - g.acked >= g.o.window)
        return false;
    if (g.o.rate > 0) {
        double due = g.o.rate * (double)(now_ns() - g.t_pub0) / 1e9;
        if ((double)(g.sent - g.sent0) >= due)
            return false;
    } else if (g.o.max_lag > 0 && g.sent - g.fully_delivered >= g.o.max_lag) {
        return false;
    }
    return true;
}

static struct conn *publisher(void)
{
    return &g.conns[g.total - 1];
}

static void kick_publisher(void)
{
    struct conn *p = publisher();
    if (p->wsi && can_publish())
        lws_callback_on_writable(p->wsi);
}

/* ---- phase machine, run from the tick and after events ---- */

static void sample_cpu(uint64_t out[3])
{
    if (g.o.dp_pid <= 0 || bench_proc_cpu_ticks(g.o.dp_pid, &out[0]) != 0)
        out[0] = 0;
    if (g.o.cp_pid <= 0 || bench_proc_cpu_ticks(g.o.cp_pid, &out[1]) != 0)
        out[1] = 0;
    bench_proc_cpu_ticks(getpid(), &out[2]);
}

static void read_resources_before_publish(void)
{
    if (g.o.dp_pid > 0) {
        if (!g.second)
            g.dp_rss_ok = g.dp_rss_ok && bench_proc_rss_kib(g.o.dp_pid, &g.dp_rss1) == 0;
        g.dp_cpu_ok = bench_proc_cpu_ticks(g.o.dp_pid, &g.dp_cpu0) == 0;
    }
    if (g.o.cp_pid > 0)
        g.cp_cpu_ok = bench_proc_cpu_ticks(g.o.cp_pid, &g.cp_cpu0) == 0;
    bench_proc_cpu_ticks(getpid(), &g.self_cpu0);
}

static void read_resources_after_publish(void)
{
    if (g.dp_cpu_ok)
        g.dp_cpu_ok = bench_proc_cpu_ticks(g.o.dp_pid, &g.dp_cpu1) == 0;
    if (g.cp_cpu_ok)
        g.cp_cpu_ok = bench_proc_cpu_ticks(g.o.cp_pid, &g.cp_cpu1) == 0;
    bench_proc_cpu_ticks(getpid(), &g.self_cpu1);
}

static uint64_t expected_deliveries(void)
{
    return (uint64_t)(g.acked - g.refused) * g.total;
}

static bool publish_finished(int64_t t)
{
    if (g.o.count > 0 && g.sent >= g.o.count)
        return true;
    return g.o.duration > 0 && t - g.t_pub0 >= (int64_t)(g.o.duration * 1e9);
}

static double pct_cpu(uint64_t t0, uint64_t t1, double secs);

/* --then-fraction: the flat-out run drained; keep its figures and publish again, on the same
 * connections, at a fixed fraction of the rate it reached (latency at a sustainable load). */
static void start_second_phase(void)
{
    int64_t t_end = g.t_last_recv > g.t_pub1 ? g.t_last_recv : g.t_pub1;
    double pub_s = (double)(g.t_pub1 - g.t_pub0) / 1e9;
    double recv_s = (double)(t_end - g.t_pub0) / 1e9;
    g.flat_msg_s = pub_s > 0 ? (double)g.sent / pub_s : 0;
    g.flat_deliv_s = recv_s > 0 ? (double)g.received_total / recv_s : 0;
    g.flat_p50 = bench_hist_quantile(&g.h_latency, 0.5) / 1e3;
    g.flat_p90 = bench_hist_quantile(&g.h_latency, 0.9) / 1e3;
    g.flat_p99 = bench_hist_quantile(&g.h_latency, 0.99) / 1e3;
    g.flat_p999 = bench_hist_quantile(&g.h_latency, 0.999) / 1e3;
    g.flat_dp_cpu = g.dp_cpu_ok ? pct_cpu(g.dp_cpu0, g.dp_cpu1, recv_s) : -1;
    g.flat_cp_cpu = g.cp_cpu_ok ? pct_cpu(g.cp_cpu0, g.cp_cpu1, recv_s) : -1;
    g.flat_cli_cpu = pct_cpu(g.self_cpu0, g.self_cpu1, recv_s);
    printf("  flat out: %" PRId64 " sent in %.3f s = %.0f msg/s; %" PRIu64
           " deliveries = %.0f deliveries/s; publish->receive p50=%.1f p90=%.1f p99=%.1f "
           "p99.9=%.1f us; cpu server %.0f%% control plane %.0f%% client %.0f%%\n",
           g.sent, pub_s, g.flat_msg_s, g.received_total, g.flat_deliv_s, g.flat_p50, g.flat_p90,
           g.flat_p99, g.flat_p999, g.flat_dp_cpu, g.flat_cp_cpu, g.flat_cli_cpu);
    g.second = true;
    g.o.rate = g.flat_msg_s * g.o.then_frac;
    if (g.o.rate < 1)
        g.o.rate = 1;
    g.sent0 = g.sent;
    g.received0 = g.received_total;
    g.max_sched_lag = 0;
    bench_hist_init(&g.h_latency);
    bench_hist_init(&g.h_ack);
    read_resources_before_publish();
    g.t_pub0 = now_ns();
    g.t_pub1 = 0;
    set_phase(PH_PUBLISH, g.o.duration + 1);
    kick_publisher();
}

static void advance(void)
{
    int64_t t = now_ns();
    if (g.interrupted && g.phase != PH_DONE) {
        fail(3, "interrupted in phase %s", phase_name[g.phase]);
        return;
    }
    switch (g.phase) {
    case PH_CONNECT:
        if (g.failed) {
            fail(3, "%u connection(s) failed (%u of %u connected)", g.failed, g.connected, g.total);
            return;
        }
        if (g.connected == g.total) {
            g.t_connect1 = t;
            sample_cpu(g.conn_cpu1);
            if (g.o.dp_pid > 0)
                g.dp_rss_ok = g.dp_rss_ok && bench_proc_rss_kib(g.o.dp_pid, &g.dp_rss_conn) == 0;
            g.t_join0 = t;
            g.in_progress = 0;
            if (g.o.no_join) {
                g.joined = g.total;
                g.t_join1 = t;
                set_phase(PH_SETTLE, g.o.timeout);
                g.t_last_other = t;
            } else {
                set_phase(PH_JOIN, g.o.timeout);
                start_joins();
            }
            return;
        }
        if (t > g.phase_deadline)
            fail(3, "timeout: %u of %u connected after %.1f s", g.connected, g.total, g.o.timeout);
        return;
    case PH_JOIN:
        if (g.failed) {
            fail(3, "%u join(s) failed or connections closed (%u of %u joined)", g.failed, g.joined,
                 g.total);
            return;
        }
        if (g.joined == g.total) {
            g.t_join1 = t;
            sample_cpu(g.join_cpu1);
            g.t_last_other = t;
            set_phase(PH_SETTLE, g.o.timeout);
            return;
        }
        if (t > g.phase_deadline)
            fail(3, "timeout: %u of %u joined after %.1f s", g.joined, g.total, g.o.timeout);
        return;
    case PH_SETTLE:
        if (g.closed_unexpected) {
            fail(3, "%" PRIu64 " connection(s) closed by the server before publishing",
                 g.closed_unexpected);
            return;
        }
        if (t - g.t_last_other >= SETTLE_QUIET_NS || t > g.phase_deadline) {
            g.t_settle1 = t;
            read_resources_before_publish();
            if (g.o.connect_only) {
                g.phase = PH_DONE;
                return;
            }
            g.t_pub0 = now_ns();
            double bound = g.o.duration > 0 ? g.o.duration : g.o.timeout;
            set_phase(PH_PUBLISH, bound + 1);
            kick_publisher();
        }
        return;
    case PH_PUBLISH:
        if (publish_finished(t) || t > g.phase_deadline) {
            g.t_pub1 = t;
            set_phase(PH_DRAIN, g.o.timeout);
            return;
        }
        kick_publisher();
        return;
    case PH_DRAIN: {
        bool drained = g.acked == g.sent && g.received_total >= expected_deliveries();
        if (drained || t > g.phase_deadline || (publisher()->wsi == NULL)) {
            read_resources_after_publish();
            if (drained && g.o.then_frac > 0 && !g.second && g.sent > 0)
                start_second_phase();
            else
                g.phase = PH_DONE;
        }
        return;
    }
    case PH_DONE:
        return;
    }
}

/* Every wakeup polls all N sockets, so tick only as often as the publish rate needs. */
static lws_usec_t tick_us(void)
{
    if (g.phase != PH_PUBLISH || g.o.rate <= 0)
        return TICK_US_IDLE;
    double us = 1e6 / g.o.rate / 4;
    if (us < TICK_US_PUBLISH)
        us = TICK_US_PUBLISH;
    if (us > TICK_US_IDLE)
        us = TICK_US_IDLE;
    return (lws_usec_t)us;
}

static void tick_cb(lws_sorted_usec_list_t *sul)
{
    advance();
    if (g.phase == PH_CONNECT)
        start_connects();
    if (g.phase != PH_DONE)
        lws_sul_schedule(g.ctx, 0, &g.tick, tick_cb, tick_us());
    else
        lws_cancel_service(g.ctx);
}

/* ---- frames the client receives ---- */

/* Counts `k` deliveries of message n and moves the fully-delivered mark (the flat-out window). */
static void count_delivery(int64_t n, uint32_t k)
{
    if (n < g.fully_delivered || n >= g.fully_delivered + (int64_t)RING_SIZE)
        return;
    g.delivered[n & RING_MASK] += k;
    bool moved = false;
    while (g.fully_delivered < g.sent && g.delivered[g.fully_delivered & RING_MASK] >= g.total) {
        g.delivered[g.fully_delivered & RING_MASK] = 0;
        g.fully_delivered++;
        moved = true;
    }
    if (moved && g.o.rate == 0)
        kick_publisher();
}

static void on_message(struct conn *c, const char *buf, size_t len, int64_t t)
{
    static const char *const keys[] = {BENCH_KEY_SENT_NS, BENCH_KEY_COUNTER, "seq"};
    const char *v[3];
    int64_t sent_ns, n, seq;
    bench_scan_keys(buf, len, keys, 3, v); /* one pass over the frame for the three */
    const char *end = buf + len;
    if (bench_parse_i64(v[0], end, &sent_ns) != 0 || bench_parse_i64(v[1], end, &n) != 0) {
        g.frames_other++; /* a message that is not ours */
        g.t_last_other = t;
        return;
    }
    g.received_total++;
    c->received++;
    g.t_last_recv = t;
    bench_hist_record(&g.h_latency, t - sent_ns);
    if (n != c->next_n) {
        if (n < c->next_n)
            c->bad_order = 1;
        else
            c->bad_gap = 1;
    }
    c->next_n = n + 1;
    if (bench_parse_i64(v[2], end, &seq) == 0) {
        if (c->last_seq != 0 && seq != c->last_seq + 1) {
            if (seq <= c->last_seq)
                c->bad_order = 1;
            else
                c->bad_gap = 1;
        }
        c->last_seq = seq;
    }
    count_delivery(n, 1);
    if (g.phase == PH_DRAIN && g.received_total >= expected_deliveries())
        advance();
}

static void show_error(struct conn *c, const char *buf, size_t len)
{
    g.errors++;
    if (g.errors <= ERRORS_SHOWN)
        fprintf(stderr, "sb_load: error frame on connection %u (phase %s): %.*s\n", c->idx,
                phase_name[g.phase], (int)(len > 300 ? 300 : len), buf);
}

/* The connection is ready: Switchboard's `connected` frame, NATS's PONG after SUB, or the upgrade
 * of the plain broadcast server. */
static void mark_connected(struct conn *c, int64_t t)
{
    if (c->state != CS_UPGRADED && c->state != CS_CONNECTING)
        return;
    c->state = CS_CONNECTED;
    g.connected++;
    g.in_progress--;
    bench_hist_record(&g.h_connected, t - c->t_start);
    if (c->t_upgrade)
        bench_hist_record(&g.h_cp, t - c->t_upgrade);
    start_connects();
    if (g.connected == g.total)
        advance();
}

static void on_frame(struct conn *c, const char *buf, size_t len)
{
    int64_t t = now_ns();
    if (g.o.proto == PROTO_WS) { /* the broadcast server echoes bare payloads */
        on_message(c, buf, len, t);
        return;
    }
    enum bench_frame type = bench_scan_type(buf, len);
    switch (type) {
    case BENCH_FRAME_MESSAGE:
        on_message(c, buf, len, t);
        return;
    case BENCH_FRAME_CONNECTED:
        mark_connected(c, t);
        return;
    case BENCH_FRAME_ACK: {
        char ref[32];
        if (bench_scan_str(buf, len, "ref", ref, sizeof(ref)) != 0) {
            if (c->sse && c->state == CS_CONNECTED) { /* the join of `rooms=` */
                c->state = CS_JOINED;
                g.joined++;
                if (g.joined == g.total)
                    advance();
                return;
            }
            g.bad_frames++;
            return;
        }
        if (ref[0] == 'j' && c->state == CS_JOINING) {
            c->state = CS_JOINED;
            g.joined++;
            g.in_progress--;
            bench_hist_record(&g.h_join, t - c->t_start);
            start_joins();
            if (g.joined == g.total)
                advance();
        } else if (ref[0] == 'p') {
            int64_t n = strtoll(ref + 1, NULL, 10);
            g.acked++;
            if (g.sent - n < (int64_t)RING_SIZE && n < g.sent)
                bench_hist_record(&g.h_ack, t - g.t_sent[n & RING_MASK]);
            kick_publisher();
            if (g.phase == PH_DRAIN)
                advance();
        }
        return;
    }
    case BENCH_FRAME_ERROR: {
        show_error(c, buf, len);
        char ref[32];
        if (bench_scan_str(buf, len, "ref", ref, sizeof(ref)) == 0) {
            if (ref[0] == 'j' && c->state == CS_JOINING) {
                c->state = CS_CONNECTED;
                g.failed++;
                g.in_progress--;
            } else if (ref[0] == 'p') {
                /* a refused publish is answered but never delivered; the error is reported */
                g.acked++;
                g.refused++;
                count_delivery(strtoll(ref + 1, NULL, 10), g.total); /* never coming */
                kick_publisher();
            }
        }
        return;
    }
    case BENCH_FRAME_JOIN:
        g.frames_join++;
        g.t_last_other = t;
        return;
    case BENCH_FRAME_PRESENCE:
        g.frames_presence++;
        g.t_last_other = t;
        return;
    case BENCH_FRAME_OTHER:
        g.frames_other++;
        g.t_last_other = t;
        return;
    }
}

/* NATS: parses the complete protocol lines (and MSG payloads) at the head of buf; returns the
 * bytes consumed. A MSG may be split across WebSocket frames or many batched in one. */
static size_t nats_parse(struct lws *wsi, struct conn *c, const char *buf, size_t len, int64_t t)
{
    size_t off = 0;
    while (off < len) {
        size_t used;
        const char *d;
        size_t dl;
        enum bench_nats_op op = bench_nats_next(buf + off, len - off, MAX_FRAME, &used, &d, &dl);
        if (op == BENCH_NATS_MORE)
            break;
        off += used;
        switch (op) {
        case BENCH_NATS_MSG:
            on_message(c, d, dl, t);
            break;
        case BENCH_NATS_PING:
            c->want_pong++;
            conn_flush(c, wsi);
            break;
        case BENCH_NATS_PONG:
            mark_connected(c, t); /* our PING after SUB: the subscription is registered */
            break;
        case BENCH_NATS_INFO:
            if (c->state == CS_UPGRADED && !c->want_hello) {
                c->want_hello = 1;
                conn_flush(c, wsi);
            }
            break;
        case BENCH_NATS_ERR:
            show_error(c, d, dl);
            break;
        case BENCH_NATS_OK:
            break;
        case BENCH_NATS_OTHER:
            if (dl > 0)
                g.bad_frames++;
            break;
        case BENCH_NATS_BAD:
        default:
            fprintf(stderr, "sb_load: unreadable MSG line on connection %u\n", c->idx);
            g.bad_frames++;
            break;
        }
    }
    return off;
}

/* SSE: every `data:` line carries one Switchboard frame (the same JSON as over WebSocket, with its
 * `type`); `event:`, `id:` and comment lines are not needed. */
static size_t sse_parse(struct lws *wsi, struct conn *c, const char *buf, size_t len, int64_t t)
{
    (void)wsi;
    (void)t;
    size_t off = 0;
    while (off < len) {
        const char *p = buf + off;
        const char *nl = memchr(p, '\n', len - off);
        if (!nl)
            break;
        size_t ll = (size_t)(nl - p);
        size_t l = ll && p[ll - 1] == '\r' ? ll - 1 : ll;
        if (l > 5 && memcmp(p, "data:", 5) == 0) {
            size_t skip = p[5] == ' ' ? 6 : 5;
            on_frame(c, p + skip, l - skip);
        }
        off += ll + 1;
    }
    return off;
}

typedef size_t (*stream_parser)(struct lws *, struct conn *, const char *, size_t, int64_t);

/* A byte stream (NATS over WebSocket, SSE): parses in place when nothing is pending, keeps the
 * incomplete tail in c->frag for the next read. */
static int on_stream(struct lws *wsi, struct conn *c, const char *in, size_t len, stream_parser f)
{
    int64_t t = now_ns();
    const char *buf = in;
    size_t blen = len;
    if (c->frag_len) {
        if (c->frag_len + len > c->frag_cap) {
            size_t cap = c->frag_cap ? c->frag_cap : 4096;
            while (cap < c->frag_len + len)
                cap *= 2;
            if (cap > 2 * MAX_FRAME) {
                fprintf(stderr, "sb_load: unparsable stream on connection %u\n", c->idx);
                g.bad_frames++;
                return -1;
            }
            char *p = realloc(c->frag, cap);
            if (!p)
                return -1;
            c->frag = p;
            c->frag_cap = cap;
        }
        memcpy(c->frag + c->frag_len, in, len);
        c->frag_len += len;
        buf = c->frag;
        blen = c->frag_len;
    }
    size_t used = f(wsi, c, buf, blen, t);
    size_t left = blen - used;
    if (buf == c->frag) {
        memmove(c->frag, c->frag + used, left);
        c->frag_len = left;
        return 0;
    }
    if (left) {
        if (left > c->frag_cap) {
            size_t cap = left < 4096 ? 4096 : left;
            char *p = realloc(c->frag, cap);
            if (!p)
                return -1;
            c->frag = p;
            c->frag_cap = cap;
        }
        memcpy(c->frag, buf + used, left);
        c->frag_len = left;
    }
    return 0;
}

/* Appends a data frame's payload to the message being reassembled (fragmented messages). */
static int frag_append(struct conn *c, const unsigned char *p, size_t n)
{
    if (c->frag_len + n > MAX_FRAME) {
        fprintf(stderr, "sb_load: message over %u bytes on connection %u\n", MAX_FRAME, c->idx);
        g.bad_frames++;
        return -1;
    }
    if (c->frag_len + n > c->frag_cap) {
        size_t cap = c->frag_cap ? c->frag_cap : 4096;
        while (cap < c->frag_len + n)
            cap *= 2;
        char *q = realloc(c->frag, cap);
        if (!q)
            return -1;
        c->frag = q;
        c->frag_cap = cap;
    }
    memcpy(c->frag + c->frag_len, p, n);
    c->frag_len += n;
    return 0;
}

static int on_receive(struct lws *wsi, struct conn *c, const char *in, size_t len)
{
    if (g.o.proto == PROTO_NATS)
        return on_stream(wsi, c, in, len, nats_parse);
    bool final = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
    if (final && c->frag_len == 0) {
        on_frame(c, in, len);
        return 0;
    }
    if (frag_append(c, (const unsigned char *)in, len) != 0)
        return -1;
    if (final) {
        on_frame(c, c->frag, c->frag_len);
        c->frag_len = 0;
    }
    return 0;
}

static int on_writeable(struct lws *wsi, struct conn *c)
{
    unsigned char *p = txbuf + LWS_PRE;
    if (c->want_hello) { /* NATS: CONNECT, SUB, and a PING whose PONG says SUB is registered */
        int n = snprintf((char *)p, MAX_FRAME,
                         "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\n"
                         "SUB %s %u\r\nPING\r\n",
                         g.o.room, c->idx + 1);
        c->want_hello = 0;
        if (n <= 0 || lws_write(wsi, p, (size_t)n, LWS_WRITE_TEXT) < n)
            return -1;
        if (c->want_pong)
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (c->want_pong) {
        memcpy(p, "PONG\r\n", 6);
        c->want_pong--;
        if (lws_write(wsi, p, 6, LWS_WRITE_TEXT) < 6)
            return -1;
        if (c->want_pong || (c == publisher() && can_publish()))
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (c->want_join) {
        size_t n = build_join((char *)p, MAX_FRAME);
        c->want_join = 0;
        if (!n || lws_write(wsi, p, n, LWS_WRITE_TEXT) < (int)n)
            return -1;
        return 0;
    }
    if (c != publisher())
        return 0;
    int burst = 0;
    while (can_publish() && burst < MAX_BURST && !lws_send_pipe_choked(wsi)) {
        int64_t t = now_ns();
        size_t n = build_message((char *)p, MAX_FRAME, g.sent, t);
        if (!n) {
            fail(2, "message frame does not fit in %u bytes", MAX_FRAME);
            return -1;
        }
        g.t_sent[g.sent & RING_MASK] = t;
        if (g.o.rate > 0) {
            int64_t due = g.t_pub0 + (int64_t)((double)(g.sent - g.sent0) * 1e9 / g.o.rate);
            if (t - due > g.max_sched_lag)
                g.max_sched_lag = t - due;
        }
        g.delivered[g.sent & RING_MASK] = 0;
        if (lws_write(wsi, p, n, LWS_WRITE_TEXT) < (int)n)
            return -1;
        g.sent++;
        if (g.o.proto != PROTO_SB)
            g.acked++; /* no ack in these protocols: the publish is "answered" once written */
        burst++;
    }
    if (can_publish())
        lws_callback_on_writable(wsi);
    return 0;
}

/* A connection ended (either path). */
static void on_closed(struct conn *c)
{
    if (c->state == CS_CONNECTING) { /* e.g. an SSE answer that was not 200 */
        c->state = CS_CLOSED;
        c->wsi = NULL;
        g.in_progress--;
        g.failed++;
        return;
    }
    if (c->state != CS_CLOSED) {
        if (g.phase != PH_DONE) {
            g.closed_unexpected++;
            if (g.closed_unexpected <= ERRORS_SHOWN)
                fprintf(stderr, "sb_load: connection %u closed by the server in phase %s\n", c->idx,
                        phase_name[g.phase]);
            if (c->state == CS_UPGRADED || c->state == CS_JOINING)
                g.in_progress--;
            if (g.phase == PH_CONNECT || g.phase == PH_JOIN)
                g.failed++;
        }
        c->state = CS_CLOSED;
        c->wsi = NULL;
    }
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (c && c->state == CS_CONNECTING) {
            if (g.failed < ERRORS_SHOWN)
                fprintf(stderr, "sb_load: connection %u failed: %s\n", c->idx,
                        in ? (const char *)in : "(no reason)");
            c->state = CS_CLOSED;
            c->wsi = NULL;
            g.in_progress--;
            g.failed++;
        }
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (c && c->state == CS_CONNECTING) {
            c->state = CS_UPGRADED;
            c->t_upgrade = now_ns();
            bench_hist_record(&g.h_upgrade, c->t_upgrade - c->t_start);
            if (g.raw) { /* the publisher's socket wakes the lean path's epoll_wait too */
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
                epoll_ctl(g.ep, EPOLL_CTL_ADD, lws_get_socket_fd(wsi), &ev);
            }
            if (g.o.proto == PROTO_WS)
                mark_connected(c, c->t_upgrade); /* nothing more to wait for */
        }
        return 0;
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP: /* SSE: response headers (also seen on upgrades) */
        if (c && c->sse && c->state == CS_CONNECTING) {
            unsigned int status = lws_http_client_http_response(wsi);
            if (status != 200) {
                if (g.failed < ERRORS_SHOWN)
                    fprintf(stderr, "sb_load: SSE connection %u: HTTP %u\n", c->idx, status);
                return -1; /* counted when closed */
            }
            c->state = CS_UPGRADED;
            c->t_upgrade = now_ns();
            bench_hist_record(&g.h_upgrade, c->t_upgrade - c->t_start);
        }
        return 0;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
        char rb[LWS_PRE + 16384];
        char *px = rb + LWS_PRE;
        int lenx = (int)sizeof(rb) - LWS_PRE;
        if (lws_http_client_read(wsi, &px, &lenx) < 0)
            return -1;
        return 0;
    }
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
        if (!c)
            return 0;
        return on_stream(wsi, c, in, len, sse_parse);
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (!c)
            return 0;
        return on_receive(wsi, c, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (!c || g.phase == PH_DONE)
            return 0;
        return on_writeable(wsi, c);
    case LWS_CALLBACK_COMPLETED_CLIENT_HTTP: /* SSE stream ended */
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (c)
            on_closed(c);
        return 0;
    default:
        return 0;
    }
}

/* ---- the lean receive path: raw non-blocking sockets on one epoll, no libwebsockets ----
 * One shared read buffer: a connection's carry (the head of an incomplete frame, usually empty)
 * is copied in front of each read, so a connection holds only that carry between reads. */

static unsigned char rxbuf[MAX_FRAME + 16 + RX_READ];

static int raw_resolve(void)
{
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    char port[16];
    snprintf(port, sizeof(port), "%d", g.o.port);
    int rc = getaddrinfo(g.o.host, port, &hints, &ai);
    if (rc != 0 || !ai) {
        fprintf(stderr, "sb_load: cannot resolve %s: %s\n", g.o.host, gai_strerror(rc));
        return -1;
    }
    memcpy(&g.addr, ai->ai_addr, ai->ai_addrlen);
    g.addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

static int raw_connect(struct conn *c)
{
    int fd = socket(g.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&g.addr, g.addrlen) != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    c->fd = fd;
    c->hs = HS_TCP;
    c->carry_len = 0;
    return 0;
}

static void raw_close(struct conn *c)
{
    if (c->fd >= 0) {
        close(c->fd); /* also leaves the epoll set */
        c->fd = -1;
    }
    c->carry_len = 0;
    c->frag_len = 0;
}

/* The server ended the connection (or broke the protocol). */
static void raw_lost(struct conn *c, const char *why)
{
    if (c->state == CS_CONNECTING && g.failed < ERRORS_SHOWN)
        fprintf(stderr, "sb_load: connection %u failed: %s\n", c->idx, why);
    raw_close(c);
    on_closed(c);
}

/* Sends one small masked client frame; the socket's buffer has room for it in practice (join,
 * CONNECT/SUB, PONG, close): a short write is reported as a failure. */
static int raw_send(struct conn *c, uint8_t opcode, const void *p, size_t len)
{
    unsigned char out[2048];
    unsigned char mask[4];
    uint32_t x = g.mask_rng; /* xorshift32: masking keys need not be strong here */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    g.mask_rng = x;
    memcpy(mask, &x, 4);
    size_t n = bench_ws_client_frame(out, sizeof(out), opcode, p, len, mask);
    if (!n)
        return -1;
    ssize_t w = send(c->fd, out, n, MSG_NOSIGNAL);
    if (w != (ssize_t)n) {
        fprintf(stderr, "sb_load: connection %u: short write of a %zu-byte frame\n", c->idx, n);
        g.bad_frames++;
        return -1;
    }
    return 0;
}

/* Sends what the connection owes: NATS CONNECT/SUB/PING, PONGs, a join. */
static void raw_flush(struct conn *c)
{
    char buf[1024];
    if (c->want_hello) {
        int n = snprintf(buf, sizeof(buf),
                         "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\n"
                         "SUB %s %u\r\nPING\r\n",
                         g.o.room, c->idx + 1);
        c->want_hello = 0;
        if (n <= 0 || raw_send(c, 1, buf, (size_t)n) != 0)
            goto lost;
    }
    while (c->want_pong) {
        c->want_pong--;
        if (raw_send(c, 1, "PONG\r\n", 6) != 0)
            goto lost;
    }
    if (c->want_join) {
        size_t n = build_join(buf, sizeof(buf));
        c->want_join = 0;
        if (!n || raw_send(c, 1, buf, n) != 0)
            goto lost;
    }
    return;
lost:
    raw_lost(c, "write failed");
}

static void conn_flush(struct conn *c, struct lws *wsi)
{
    if (c->fd >= 0)
        raw_flush(c);
    else if (wsi)
        lws_callback_on_writable(wsi);
}

static void raw_send_upgrade(struct conn *c)
{
    int err = 0;
    socklen_t el = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err) {
        raw_lost(c, strerror(err ? err : errno));
        return;
    }
    char path[PATH_CAP], req[PATH_CAP + 512];
    conn_path(c, path, sizeof(path));
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\nOrigin: http://%s\r\n\r\n",
                     path, g.o.host, g.o.port, g.o.host);
    if (n <= 0 || (size_t)n >= sizeof(req) || send(c->fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        raw_lost(c, "cannot send the upgrade request");
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->hs = HS_HEADERS;
}

/* One server frame; -1 when the connection is gone. */
static int raw_frame(struct conn *c, const struct bench_ws_frame *f)
{
    switch (f->opcode) {
    case 0:                          /* continuation */
    case 1:                          /* text */
    case 2:                          /* binary */
        if (g.o.proto == PROTO_NATS) /* a byte stream: frame boundaries do not matter */
            return on_stream(NULL, c, (const char *)f->payload, f->payload_len, nats_parse) == 0 &&
                           c->fd >= 0
                       ? 0
                       : -1;
        if (f->fin && f->opcode != 0 && c->frag_len == 0) {
            on_frame(c, (const char *)f->payload, f->payload_len);
            return c->fd >= 0 ? 0 : -1;
        }
        if (frag_append(c, f->payload, f->payload_len) != 0)
            return -1;
        if (f->fin) {
            on_frame(c, c->frag, c->frag_len);
            c->frag_len = 0;
        }
        return c->fd >= 0 ? 0 : -1;
    case 9: /* ping */
        return raw_send(c, 10, f->payload, f->payload_len);
    case 10: /* pong */
        return 0;
    case 8: /* close: answer with the same status, then the connection is over */
        raw_send(c, 8, f->payload, f->payload_len < 2 ? f->payload_len : 2);
        return -1;
    default:
        g.bad_frames++;
        return -1;
    }
}

/* Readable: one read of up to RX_READ bytes behind the carry, then every whole frame in it. */
static void raw_read(struct conn *c)
{
    size_t have = c->carry_len;
    if (have)
        memcpy(rxbuf, c->carry, have);
    ssize_t r = read(c->fd, rxbuf + have, RX_READ);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        raw_lost(c, r == 0 ? "closed by the server" : strerror(errno));
        return;
    }
    size_t len = have + (size_t)r, off = 0;
    if (c->hs == HS_HEADERS) {
        const unsigned char *end = memmem(rxbuf, len, "\r\n\r\n", 4);
        if (!end) {
            if (len > HS_MAX) {
                raw_lost(c, "upgrade answer too long");
                return;
            }
            goto keep;
        }
        if (len < 12 || memcmp(rxbuf, "HTTP/1.1 101", 12) != 0) {
            char why[128];
            const unsigned char *nl = memchr(rxbuf, '\r', len);
            snprintf(why, sizeof(why), "upgrade refused: %.*s", (int)(nl ? nl - rxbuf : 40),
                     (const char *)rxbuf);
            raw_lost(c, why);
            return;
        }
        off = (size_t)(end - rxbuf) + 4;
        c->hs = HS_OPEN;
        if (c->state == CS_CONNECTING) {
            c->state = CS_UPGRADED;
            c->t_upgrade = now_ns();
            bench_hist_record(&g.h_upgrade, c->t_upgrade - c->t_start);
            if (g.o.proto == PROTO_WS)
                mark_connected(c, c->t_upgrade);
        }
    }
    while (off < len) {
        struct bench_ws_frame f;
        enum bench_ws_res res = bench_ws_parse(rxbuf + off, len - off, MAX_FRAME, &f);
        if (res == BENCH_WS_MORE)
            break;
        if (res == BENCH_WS_BAD) {
            fprintf(stderr, "sb_load: bad WebSocket frame on connection %u\n", c->idx);
            g.bad_frames++;
            raw_lost(c, "bad frame");
            return;
        }
        off += f.frame_len;
        if (raw_frame(c, &f) != 0) {
            if (c->fd >= 0)
                raw_lost(c, "closed");
            return;
        }
    }
keep:
    len -= off;
    if (len > c->carry_cap) {
        size_t cap = len < 256 ? 256 : len;
        unsigned char *q = realloc(c->carry, cap);
        if (!q) {
            raw_lost(c, "out of memory");
            return;
        }
        c->carry = q;
        c->carry_cap = (uint32_t)cap;
    }
    if (len)
        memmove(c->carry, rxbuf + off, len);
    c->carry_len = (uint32_t)len;
}

static void raw_event(struct conn *c, uint32_t events)
{
    if (c->fd < 0)
        return;
    if (c->hs == HS_TCP) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            raw_send_upgrade(c);
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        raw_read(c);
}

/* The main loop of the lean path: epoll over the receivers (and the publisher's socket), then
 * one non-blocking lws service for the publisher and the timers. */
static void raw_loop(void)
{
    struct epoll_event evs[EPOLL_BATCH];
    while (g.phase != PH_DONE) {
        int n = epoll_wait(g.ep, evs, EPOLL_BATCH, 1);
        for (int i = 0; i < n && g.phase != PH_DONE; i++)
            if (evs[i].data.ptr)
                raw_event(evs[i].data.ptr, evs[i].events);
        if (lws_service(g.ctx, -1) < 0)
            break;
    }
}

static const struct lws_protocols protocols[] = {
    {"sb-bench", callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- report ---- */

static double pct_cpu(uint64_t t0, uint64_t t1, double secs)
{
    if (secs <= 0)
        return 0;
    return 100.0 * (double)(t1 - t0) / (double)bench_proc_ticks_per_sec() / secs;
}

static void print_hist(const char *name, const struct bench_hist *h)
{
    if (!h->count) {
        printf("  %-22s (no samples)\n", name);
        return;
    }
    printf("  %-22s n=%" PRIu64 " p50=%.1f p90=%.1f p99=%.1f p99.9=%.1f max=%.1f mean=%.1f "
           "(us)\n",
           name, h->count, bench_hist_quantile(h, 0.5) / 1e3, bench_hist_quantile(h, 0.9) / 1e3,
           bench_hist_quantile(h, 0.99) / 1e3, bench_hist_quantile(h, 0.999) / 1e3,
           (double)h->max / 1e3, bench_hist_mean(h) / 1e3);
}

static int report(void)
{
    uint32_t bad_order = 0, bad_gap = 0, short_conns = 0;
    uint64_t acked = (uint64_t)g.acked;
    for (uint32_t i = 0; i < g.total; i++) {
        struct conn *c = &g.conns[i];
        bad_order += c->bad_order;
        bad_gap += c->bad_gap;
        if (c->received != acked - (uint64_t)g.refused)
            short_conns++;
    }
    int64_t t_now = now_ns();
    /* a run that stopped early reports its phases up to now */
    double connect_s = (double)((g.t_connect1 ? g.t_connect1 : t_now) - g.t_connect0) / 1e9;
    double join_s = g.t_join0 ? (double)((g.t_join1 ? g.t_join1 : t_now) - g.t_join0) / 1e9 : 0;
    double pub_s = (double)(g.t_pub1 - g.t_pub0) / 1e9;
    int64_t t_end = g.t_last_recv > g.t_pub1 ? g.t_last_recv : g.t_pub1;
    double recv_s = (double)(t_end - g.t_pub0) / 1e9;
    uint64_t expected = expected_deliveries();
    bool published = g.t_pub0 != 0;
    bool setup_ok = g.connected == g.total && g.joined == g.total && g.t_settle1 != 0 &&
                    !g.errors && !g.closed_unexpected && !g.bad_frames;
    bool complete = g.o.connect_only
                        ? setup_ok
                        : (published && g.acked == g.sent && g.sent > 0 &&
                           g.received_total == expected && !bad_order && !bad_gap && !g.errors &&
                           !g.closed_unexpected && !g.bad_frames && short_conns == 0);
    double rss_per_conn = 0;
    bool rss = g.dp_rss_ok && g.dp_rss1 >= g.dp_rss0;
    if (rss)
        rss_per_conn = (double)(g.dp_rss1 - g.dp_rss0) / g.total;
    double cpu_s = (double)(t_end - g.t_pub0) / 1e9;

    printf("sb_load: %s %s%s ws://%s:%d%s conns=%d(+1 publisher) room=%s size=%d rate=%s\n",
           complete ? "COMPLETE" : "INCOMPLETE", proto_name[g.o.proto], g.o.sse ? " (SSE)" : "",
           g.o.host, g.o.port, g.o.path, g.o.conns, g.o.room, g.o.size,
           g.o.rate > 0 ? "fixed" : "flat-out");
    printf("  connect: %u connections in %.3f s = %.0f conn/s (to the `connected` frame)\n",
           g.connected, connect_s, connect_s > 0 ? g.connected / connect_s : 0.0);
    if (g.t_connect1) {
        printf("  cpu over the connect phase:");
        if (g.o.dp_pid > 0)
            printf(" data plane %.0f%%", pct_cpu(g.conn_cpu0[0], g.conn_cpu1[0], connect_s));
        if (g.o.cp_pid > 0)
            printf(" control plane %.0f%%", pct_cpu(g.conn_cpu0[1], g.conn_cpu1[1], connect_s));
        printf(" load client %.0f%%\n", pct_cpu(g.conn_cpu0[2], g.conn_cpu1[2], connect_s));
    }
    print_hist("connect->upgraded", &g.h_upgrade);
    print_hist("upgraded->connected", &g.h_cp);
    print_hist("connect->connected", &g.h_connected);
    if (!g.o.no_join && g.t_join0) {
        printf("  join: %u joins in %.3f s = %.0f joins/s; settle %.3f s; join events %" PRIu64
               ", presence %" PRIu64 "\n",
               g.joined, join_s, join_s > 0 ? g.joined / join_s : 0.0,
               g.t_settle1 ? (double)(g.t_settle1 - g.t_join1) / 1e9 : 0.0, g.frames_join,
               g.frames_presence);
        if (g.t_join1 && join_s > 0) {
            printf("  cpu over the join phase:");
            if (g.o.dp_pid > 0)
                printf(" data plane %.0f%%", pct_cpu(g.conn_cpu1[0], g.join_cpu1[0], join_s));
            if (g.o.cp_pid > 0)
                printf(" control plane %.0f%%", pct_cpu(g.conn_cpu1[1], g.join_cpu1[1], join_s));
            printf(" load client %.0f%%\n", pct_cpu(g.conn_cpu1[2], g.join_cpu1[2], join_s));
        }
        print_hist("join ack", &g.h_join);
    }
    if (rss)
        printf("  data plane RSS: %" PRIu64 " KiB before, %" PRIu64 " KiB connected, %" PRIu64
               " KiB connected+joined = %.2f KiB per connection\n",
               g.dp_rss0, g.dp_rss_conn, g.dp_rss1, rss_per_conn);
    if (published) {
        printf("  publish: %" PRId64 " sent, %" PRId64 " acked in %.3f s = %.0f msg/s (%s)\n",
               g.sent - g.sent0, g.acked - g.sent0, pub_s,
               pub_s > 0 ? (g.sent - g.sent0) / pub_s : 0.0,
               g.second       ? "fixed rate, the given fraction of flat out"
               : g.o.rate > 0 ? "fixed rate"
                              : "flat out");
        if (g.o.rate > 0)
            printf("  schedule: the latest publish left %.1f ms after its slot (latency is "
                   "measured from the actual send)\n",
                   (double)g.max_sched_lag / 1e6);
        printf("  deliveries: %" PRIu64 " of %" PRIu64 " expected (all phases); %.0f deliveries/s "
               "over the last %.3f s\n",
               g.received_total, expected,
               recv_s > 0 ? (g.received_total - g.received0) / recv_s : 0.0, recv_s);
        print_hist("publish->receive", &g.h_latency);
        print_hist("publish->ack", &g.h_ack);
        printf("  order: %u connection(s) reordered/duplicated, %u with gaps, %u short; "
               "refused %" PRId64 ", errors %" PRIu64 ", unexpected closes %" PRIu64
               ", other frames %" PRIu64 "\n",
               bad_order, bad_gap, short_conns, g.refused, g.errors, g.closed_unexpected,
               g.frames_other);
        printf("  cpu over %.3f s:", cpu_s);
        if (g.dp_cpu_ok)
            printf(" data plane %.0f%%", pct_cpu(g.dp_cpu0, g.dp_cpu1, cpu_s));
        if (g.cp_cpu_ok)
            printf(" control plane %.0f%%", pct_cpu(g.cp_cpu0, g.cp_cpu1, cpu_s));
        printf(" load client %.0f%%\n", pct_cpu(g.self_cpu0, g.self_cpu1, cpu_s));
    }
    /* one machine-readable line for scripts (run.sh, later compare.sh) */
    printf(
        "RESULT proto=%s transport=%s complete=%d conns=%d size=%d rate=%.0f connect_s=%.3f "
        "conn_per_s=%.0f "
        "join_s=%.3f sent=%" PRId64 " acked=%" PRId64 " expected=%" PRIu64 " received=%" PRIu64
        " pub_s=%.3f msg_per_s=%.0f deliveries_per_s=%.0f "
        "p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "
        "dp_rss0_kib=%" PRIu64 " dp_rss1_kib=%" PRIu64 " rss_per_conn_kib=%.2f "
        "dp_cpu_pct=%.0f cp_cpu_pct=%.0f client_cpu_pct=%.0f errors=%" PRIu64 " closed=%" PRIu64
        " bad_order=%u bad_gap=%u flat_msg_per_s=%.0f flat_deliveries_per_s=%.0f flat_p50_us=%.1f "
        "flat_p90_us=%.1f flat_p99_us=%.1f flat_p999_us=%.1f flat_dp_cpu_pct=%.0f "
        "flat_cp_cpu_pct=%.0f flat_client_cpu_pct=%.0f\n",
        proto_name[g.o.proto], g.o.sse ? "sse" : "ws", complete, g.o.conns, g.o.size, g.o.rate,
        connect_s, connect_s > 0 ? g.connected / connect_s : 0.0, join_s, g.sent, g.acked, expected,
        g.received_total, pub_s, pub_s > 0 ? (g.sent - g.sent0) / pub_s : 0.0,
        recv_s > 0 ? (g.received_total - g.received0) / recv_s : 0.0,
        bench_hist_quantile(&g.h_latency, 0.5) / 1e3, bench_hist_quantile(&g.h_latency, 0.9) / 1e3,
        bench_hist_quantile(&g.h_latency, 0.99) / 1e3,
        bench_hist_quantile(&g.h_latency, 0.999) / 1e3, (double)g.h_latency.max / 1e3, g.dp_rss0,
        g.dp_rss1, rss_per_conn, g.dp_cpu_ok ? pct_cpu(g.dp_cpu0, g.dp_cpu1, cpu_s) : -1.0,
        g.cp_cpu_ok ? pct_cpu(g.cp_cpu0, g.cp_cpu1, cpu_s) : -1.0,
        pct_cpu(g.self_cpu0, g.self_cpu1, cpu_s), g.errors, g.closed_unexpected, bad_order, bad_gap,
        g.flat_msg_s, g.flat_deliv_s, g.flat_p50, g.flat_p90, g.flat_p99, g.flat_p999,
        g.flat_dp_cpu, g.flat_cp_cpu, g.flat_cli_cpu);
    fflush(stdout);
    if (g.exit_code)
        return g.exit_code;
    return complete ? 0 : 1;
}

/* ---- options ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: sb_load [options]\n"
            "  --url URL            ws://HOST:PORT[/PATH] (default ws://127.0.0.1:8080/ws)\n"
            "  --conns N            receiving connections (default 100); one publisher is added\n"
            "  --room R             room id (default bench)\n"
            "  --user-prefix P      user ids are P0..P<N-1> and Ppub (default u)\n"
            "  --rate MSG_PER_S     publish rate; 0 = flat out with an ack window (default 0)\n"
            "  --duration S         publish for S seconds (default 5)\n"
            "  --count M            publish at most M messages (default 0 = no limit)\n"
            "  --size BYTES         size of each message's data JSON (default 128)\n"
            "  --window W           publishes in flight without an ack (default 64)\n"
            "  --max-lag L          flat out: publishes not yet delivered to every connection\n"
            "                       (default 16, 0 = off)\n"
            "  --connect-window C   connects/joins in progress at once (default 256)\n"
            "  --no-join            skip the join phase (members joined beforehand)\n"
            "  --connect-only       stop after connect, join and settle (connect rate, idle RSS)\n"
            "  --prejoin            before connecting, create the room and add every user over\n"
            "                       gRPC (Rooms/CreateRoom, BulkJoinRoom or JoinRoom on --cp);\n"
            "                       WebSocket joins are then acked without join events (but\n"
            "                       members coming online announce presence to each other)\n"
            "  --cp HOST:PORT       control plane gRPC address for --prejoin "
            "(default 127.0.0.1:50051)\n"
            "  --dp-pid PID         data plane process: RSS per connection and CPU%%\n"
            "  --cp-pid PID         control plane process: CPU%%\n"
            "  --timeout S          bound for each wait: connect, join, settle, drain "
            "(default 60)\n"
            "  --proto P            switchboard (default), nats (nats-server's websocket\n"
            "                       listener: SUB to the room as subject, PUB, MSG; no acks:\n"
            "                       flat out is paced by --max-lag), ws (a server that sends\n"
            "                       every text frame to every client; the frame is the payload)\n"
            "  --transport T        switchboard receivers over ws (default) or sse\n"
            "                       (GET /sse?user_id=..&rooms=R; the publisher stays on ws)\n"
            "  --then-fraction F    after the flat-out run (--rate 0), publish again for\n"
            "                       --duration at F x its msg/s (e.g. 0.5: latency at half the\n"
            "                       peak); RESULT's flat_* fields are the flat-out run's\n"
            "  --recv R             receivers' WebSocket path: lean (default: raw sockets on\n"
            "                       one epoll, 64 KiB reads, own frame parser) or lws\n"
            "                       (libwebsockets, the old path); SSE always uses lws\n"
            "  --token-file FILE    one token (JWT) per line: connection i connects with\n"
            "                       ?token=<line i mod count> instead of ?user_id= (the\n"
            "                       publisher is the last connection); not with --prejoin\n"
            "  --dp-pid is the server's PID for the other protocols\n");
}

static int parse_url(const char *url, struct options *o)
{
    const char *p = url;
    if (strncmp(p, "ws://", 5) != 0)
        return -1;
    p += 5;
    const char *colon = strchr(p, ':');
    const char *slash = strchr(p, '/');
    if (!colon || (slash && slash < colon))
        return -1;
    size_t hl = (size_t)(colon - p);
    if (hl == 0 || hl >= sizeof(o->host))
        return -1;
    memcpy(o->host, p, hl);
    o->host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (port <= 0 || port > 65535 || (*end && *end != '/'))
        return -1;
    o->port = (int)port;
    snprintf(o->path, sizeof(o->path), "%s", *end ? end : "/ws");
    return 0;
}

static int parse_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
    memset(o, 0, sizeof(*o));
    parse_url("ws://127.0.0.1:8080/ws", o);
    o->conns = 100;
    snprintf(o->room, sizeof(o->room), "bench");
    snprintf(o->user_prefix, sizeof(o->user_prefix), "u");
    o->duration = 5;
    o->size = 128;
    o->timeout = 60;
    o->window = 64;
    o->max_lag = 16;
    o->connect_window = 256;
    snprintf(o->cp, sizeof(o->cp), "127.0.0.1:50051");
    static const struct option lo[] = {
        {"url", required_argument, 0, 'u'},
        {"conns", required_argument, 0, 'n'},
        {"room", required_argument, 0, 'r'},
        {"rate", required_argument, 0, 'R'},
        {"duration", required_argument, 0, 'd'},
        {"count", required_argument, 0, 'c'},
        {"size", required_argument, 0, 's'},
        {"dp-pid", required_argument, 0, 'D'},
        {"cp-pid", required_argument, 0, 'C'},
        {"timeout", required_argument, 0, 't'},
        {"window", required_argument, 0, 'w'},
        {"max-lag", required_argument, 0, 'l'},
        {"connect-window", required_argument, 0, 'W'},
        {"user-prefix", required_argument, 0, 'P'},
        {"no-join", no_argument, 0, 'J'},
        {"help", no_argument, 0, 'h'},
        {"connect-only", no_argument, 0, 'O'},
        {"prejoin", no_argument, 0, 'j'},
        {"cp", required_argument, 0, 'p'},
        {"proto", required_argument, 0, 'X'},
        {"transport", required_argument, 0, 'T'},
        {"then-fraction", required_argument, 0, 'F'},
        {"recv", required_argument, 0, 'Q'},
        {"token-file", required_argument, 0, 'K'},
        {0, 0, 0, 0},
    };
    int ch, li = -1;
    double v;
    while ((ch = getopt_long(argc, argv, "h", lo, &li)) != -1) {
        int bad = 0;
        switch (ch) {
        case 'u':
            bad = parse_url(optarg, o);
            break;
        case 'n':
            bad = parse_num(optarg, 1, 1000000, &v);
            o->conns = (int)v;
            break;
        case 'r':
            bad = strlen(optarg) == 0 || strlen(optarg) >= sizeof(o->room) ||
                  strpbrk(optarg, "\"\\") != NULL;
            if (!bad)
                snprintf(o->room, sizeof(o->room), "%s", optarg);
            break;
        case 'P':
            bad = strlen(optarg) >= sizeof(o->user_prefix) || strpbrk(optarg, "&?#/ ") != NULL;
            if (!bad)
                snprintf(o->user_prefix, sizeof(o->user_prefix), "%s", optarg);
            break;
        case 'R':
            bad = parse_num(optarg, 0, 1e8, &o->rate);
            break;
        case 'd':
            bad = parse_num(optarg, 0, 86400, &o->duration);
            break;
        case 'c':
            bad = parse_num(optarg, 0, 1e12, &v);
            o->count = (int64_t)v;
            break;
        case 's':
            bad = parse_num(optarg, 0, MAX_FRAME / 2, &v);
            o->size = (int)v;
            break;
        case 'D':
            bad = parse_num(optarg, 1, INT_MAX, &v);
            o->dp_pid = (pid_t)v;
            break;
        case 'C':
            bad = parse_num(optarg, 1, INT_MAX, &v);
            o->cp_pid = (pid_t)v;
            break;
        case 't':
            bad = parse_num(optarg, 0.1, 86400, &o->timeout);
            break;
        case 'w':
            bad = parse_num(optarg, 1, RING_SIZE / 2, &v);
            o->window = (int)v;
            break;
        case 'l':
            bad = parse_num(optarg, 0, RING_SIZE / 2, &v);
            o->max_lag = (int)v;
            break;
        case 'W':
            bad = parse_num(optarg, 1, 100000, &v);
            o->connect_window = (int)v;
            break;
        case 'J':
            o->no_join = true;
            break;
        case 'j':
            o->prejoin = true;
            break;
        case 'O':
            o->connect_only = true;
            break;
        case 'p':
            bad = strlen(optarg) == 0 || strlen(optarg) >= sizeof(o->cp);
            if (!bad)
                snprintf(o->cp, sizeof(o->cp), "%s", optarg);
            break;
        case 'X':
            if (strcmp(optarg, "switchboard") == 0 || strcmp(optarg, "sb") == 0)
                o->proto = PROTO_SB;
            else if (strcmp(optarg, "nats") == 0)
                o->proto = PROTO_NATS;
            else if (strcmp(optarg, "ws") == 0)
                o->proto = PROTO_WS;
            else
                bad = 1;
            break;
        case 'Q':
            if (strcmp(optarg, "lws") == 0)
                o->recv_lws = true;
            else if (strcmp(optarg, "lean") == 0)
                o->recv_lws = false;
            else
                bad = 1;
            break;
        case 'F':
            bad = parse_num(optarg, 0.001, 1, &o->then_frac);
            break;
        case 'K':
            bad = optarg[0] == '\0';
            o->token_file = optarg;
            break;
        case 'T':
            if (strcmp(optarg, "ws") == 0)
                o->sse = false;
            else if (strcmp(optarg, "sse") == 0)
                o->sse = true;
            else
                bad = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "sb_load: bad value for --%s: %s\n", li >= 0 ? lo[li].name : "?",
                    optarg ? optarg : "");
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sb_load: unexpected argument %s\n", argv[optind]);
        return -1;
    }
    if (o->token_file != NULL && (o->proto != PROTO_SB || o->prejoin)) {
        fprintf(stderr, "sb_load: --token-file is for --proto switchboard without --prejoin (the "
                        "users are the tokens' subjects)\n");
        return -1;
    }
    if (o->proto != PROTO_SB && (o->sse || o->prejoin)) {
        fprintf(stderr, "sb_load: --transport sse and --prejoin are for --proto switchboard\n");
        return -1;
    }
    if (o->then_frac > 0 && (o->rate > 0 || o->count > 0 || o->duration <= 0)) {
        fprintf(stderr, "sb_load: --then-fraction needs --rate 0 and --duration\n");
        return -1;
    }
    if (o->proto != PROTO_SB)
        o->no_join = true; /* NATS subscribes while connecting; the broadcast server has no rooms */
    if (!o->connect_only && o->duration <= 0 && o->count <= 0) {
        fprintf(stderr, "sb_load: give --duration or --count (publishing must be bounded)\n");
        return -1;
    }
    return 0;
}

/* A token as it may go into a query string unescaped: base64url parts and dots. */
static bool token_ok(const char *t, size_t len)
{
    if (len == 0 || len > TOKEN_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = t[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return false;
    }
    return true;
}

/* Reads --token-file into g.tokens: one token a line, "\r\n" or "\n", blank lines skipped. */
static int load_tokens(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "sb_load: cannot open --token-file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0, n_cap = 0, lineno = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        if (!token_ok(line, (size_t)len) || g.n_tokens >= TOKENS_MAX) {
            fprintf(stderr,
                    "sb_load: %s:%zu: not a token (base64url and dots, at most %d bytes; "
                    "at most %d lines)\n",
                    path, lineno, TOKEN_MAX, TOKENS_MAX);
            rc = -1;
            break;
        }
        if (g.n_tokens == n_cap) {
            size_t nc = n_cap ? n_cap * 2 : 1024;
            char **nt = realloc(g.tokens, nc * sizeof(*nt));
            if (nt == NULL) {
                rc = -1;
                break;
            }
            g.tokens = nt;
            n_cap = nc;
        }
        g.tokens[g.n_tokens] = strdup(line);
        if (g.tokens[g.n_tokens] == NULL) {
            rc = -1;
            break;
        }
        g.n_tokens++;
    }
    free(line);
    fclose(f);
    if (rc == 0 && g.n_tokens == 0) {
        fprintf(stderr, "sb_load: --token-file %s holds no token\n", path);
        rc = -1;
    }
    return rc;
}

static void free_tokens(void)
{
    for (uint32_t i = 0; i < g.n_tokens; i++)
        free(g.tokens[i]);
    free(g.tokens);
    g.tokens = NULL;
    g.n_tokens = 0;
}

static int raise_nofile(uint32_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur >= need)
        return 0;
    rlim_t want = need;
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
        want = rl.rlim_max;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    return want >= need ? 0 : -1;
}

static void on_signal(int sig)
{
    (void)sig;
    g.interrupted = 1;
}

int main(int argc, char **argv)
{
    if (parse_options(argc, argv, &g.o) != 0)
        return 2;
    if (g.o.token_file != NULL && load_tokens(g.o.token_file) != 0) {
        free_tokens();
        return 2;
    }
    g.total = (uint32_t)g.o.conns + 1;
    if (raise_nofile(g.total + 64) != 0) {
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        fprintf(stderr, "sb_load: need %u file descriptors, limit is %llu (raise ulimit -n)\n",
                g.total + 64, (unsigned long long)rl.rlim_max);
        return 3;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    g.conns = calloc(g.total, sizeof(*g.conns));
    g.pad = malloc((size_t)g.o.size + 1);
    if (!g.conns || !g.pad) {
        fprintf(stderr, "sb_load: out of memory\n");
        return 3;
    }
    memset(g.pad, 'x', (size_t)g.o.size);
    for (uint32_t i = 0; i < g.total; i++) {
        g.conns[i].idx = i;
        g.conns[i].fd = -1;
    }
    g.raw = !g.o.recv_lws && !g.o.sse;
    if (g.raw) {
        g.mask_rng = (uint32_t)now_ns() | 1u;
        g.ep = epoll_create1(EPOLL_CLOEXEC);
        if (g.ep < 0 || raw_resolve() != 0) {
            fprintf(stderr, "sb_load: cannot set up the lean receive path\n");
            return 3;
        }
    }
    bench_hist_init(&g.h_upgrade);
    bench_hist_init(&g.h_connected);
    bench_hist_init(&g.h_cp);
    bench_hist_init(&g.h_join);
    bench_hist_init(&g.h_latency);
    bench_hist_init(&g.h_ack);

    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    info.count_threads = 1;
    info.connect_timeout_secs = (unsigned)(g.o.timeout < 1 ? 1 : g.o.timeout);
    info.timeout_secs = (unsigned)(g.o.timeout < 1 ? 1 : g.o.timeout);
    g.ctx = lws_create_context(&info);
    if (!g.ctx) {
        fprintf(stderr, "sb_load: lws_create_context failed\n");
        return 3;
    }

    if (g.o.prejoin) {
        char err[512];
        int64_t t0 = now_ns();
        if (bench_grpc_prepare_room(g.o.cp, g.o.room, g.o.user_prefix, g.o.conns, 1000, g.o.timeout,
                                    err, sizeof(err)) != 0) {
            fprintf(stderr, "sb_load: prejoin over gRPC at %s failed: %s\n", g.o.cp, err);
            lws_context_destroy(g.ctx);
            return 3;
        }
        printf("  prejoin: room %s created/found and %u users added over gRPC in %.3f s\n",
               g.o.room, g.total, (double)(now_ns() - t0) / 1e9);
    }
    if (g.o.dp_pid > 0)
        g.dp_rss_ok = bench_proc_rss_kib(g.o.dp_pid, &g.dp_rss0) == 0;
    if (g.o.dp_pid > 0 && !g.dp_rss_ok)
        fprintf(stderr, "sb_load: cannot read /proc/%ld/status\n", (long)g.o.dp_pid);
    sample_cpu(g.conn_cpu0);
    g.t_connect0 = now_ns();
    set_phase(PH_CONNECT, g.o.timeout);
    start_connects();
    lws_sul_schedule(g.ctx, 0, &g.tick, tick_cb, TICK_US_IDLE);

    if (g.raw) {
        raw_loop();
    } else {
        while (g.phase != PH_DONE) {
            if (lws_service(g.ctx, 0) < 0)
                break;
        }
    }
    if (g.t_pub0 && !g.t_pub1)
        g.t_pub1 = now_ns();
    if (g.t_pub0 && !g.self_cpu1)
        read_resources_after_publish();
    int rc = report();
    lws_sul_cancel(&g.tick);
    lws_context_destroy(g.ctx);
    for (uint32_t i = 0; i < g.total; i++) {
        raw_close(&g.conns[i]);
        free(g.conns[i].frag);
        free(g.conns[i].carry);
    }
    if (g.raw)
        close(g.ep);
    free(g.conns);
    free(g.pad);
    free_tokens();
    return rc;
}
