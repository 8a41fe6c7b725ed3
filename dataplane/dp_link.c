/* NodeLink client over gRPC core, one stream per control-plane replica. The pump thread only
 * moves completion tags to the lws thread; the lws thread owns every call and starts every
 * batch (at most one op of each type in flight per call). Outgoing items are packed as they
 * come and concatenated as NodeBatch field 1 in the stream's queue, so a flush is one
 * SEND_MESSAGE carrying everything queued since the last one. */
#include "dp_link.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <libwebsockets.h>

#include "dp_endpoints.h"
#include "sb_batch.h"
#include "sb_log.h"
#include "sb_pb.h"
#include "sb_time.h"

#define MOD "dp_link"

typedef Switchboard__Internal__V1__NodeItem NodeItem;
typedef Switchboard__Internal__V1__ControlItem ControlItem;
typedef Switchboard__Internal__V1__ControlBatch ControlBatch;

enum op_kind { OP_START, OP_RECV, OP_SEND, OP_STATUS, OP_CLOSE };
enum ep_state { EP_DOWN, EP_CONNECTING, EP_UP };

struct call;
struct ep;

struct tag {
    enum op_kind kind;
    struct call *call;
};

struct call {
    grpc_call *c;
    struct ep *ep;
    int outstanding; /* batches started and not completed */
    bool ended;      /* status received */
    grpc_metadata_array md_init, md_trail;
    grpc_status_code status;
    grpc_slice details;
    grpc_byte_buffer *recv_bb;
    grpc_byte_buffer *send_bb;
    bool sending;
    bool half_closed;   /* SEND_CLOSE_FROM_CLIENT started (shutdown) */
    grpc_metadata auth; /* authorization: Bearer <cluster secret>; zeroed without one */
    struct tag t_start, t_recv, t_send, t_status, t_close;
};

/* One control-plane replica. Removed replicas (gone from DNS) are kept until destroy, so a late
 * completion never points at freed memory. */
struct ep {
    struct dp_link *l;
    char *addr;
    grpc_channel *ch;
    struct call *call; /* the current stream, or NULL */
    enum ep_state st;
    bool removed;
    char cp_id[129];
    int64_t heartbeat_ms, backoff_ms;
    unsigned char *q; /* packed NodeBatch items waiting */
    size_t q_len, q_cap;
    lws_sorted_usec_list_t sul_retry, sul_heartbeat;
};

struct ev {
    struct ev *next;
    struct tag *tag;
    int ok;
};

struct dp_link {
    struct lws_context *ctx;
    struct dp_link_cbs cbs;
    void *arg;
    char *node_id, *address;
    size_t max_msg, max_queue;
    int64_t resolve_ms, adopt_timeout_ms;
    struct sb_secret *secret; /* borrowed; NULL: none */

    struct ep **eps; /* list order */
    size_t n_eps;
    struct ep **dead;
    size_t n_dead;

    struct ep *primary;
    char lost_primary[129]; /* id of the primary whose stream ended last ("" once replaced) */
    bool primary_ready;
    uint64_t gen;
    int64_t lease_id;

    grpc_completion_queue *cq;
    pthread_t pump;
    bool pump_started;

    pthread_mutex_t mu; /* guards evs, new_addrs, res_stop */
    struct ev *evs_head, *evs_tail;
    char **new_addrs;
    size_t n_new;
    bool have_new;

    struct dp_endpoints *endpoints; /* the resolver thread's */
    pthread_t resolver;
    bool resolver_started;
    pthread_cond_t res_cv;
    bool res_stop;

    bool started, stopping;
    uint64_t next_id;
    uint64_t reconnects, failovers;

    lws_sorted_usec_list_t sul_adopt;
};

static void dial(struct ep *e);

/* ---- threads ---- */

static void *pump_main(void *arg)
{
    struct dp_link *l = arg;
    for (;;) {
        grpc_event e = grpc_completion_queue_next(l->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (e.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (e.type != GRPC_OP_COMPLETE)
            continue;
        struct ev *ev = malloc(sizeof(*ev));
        if (ev == NULL) {
            /* Cannot happen in practice; losing a tag would leak a call, never crash. */
            SB_LOG_ERROR(MOD, "out of memory handing over a completion", NULL);
            continue;
        }
        ev->next = NULL;
        ev->tag = e.tag;
        ev->ok = e.success;
        pthread_mutex_lock(&l->mu);
        if (l->evs_tail != NULL)
            l->evs_tail->next = ev;
        else
            l->evs_head = ev;
        l->evs_tail = ev;
        pthread_mutex_unlock(&l->mu);
        lws_cancel_service(l->ctx);
    }
    return NULL;
}

/* Resolves the list now and then (getaddrinfo blocks, so never on the lws thread) and hands the
 * result over; the lws thread diffs it against the streams it has. */
static void *resolver_main(void *arg)
{
    struct dp_link *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->res_stop) {
        pthread_mutex_unlock(&l->mu);
        char **v = NULL;
        size_t n = 0;
        bool ok = dp_endpoints_resolve(l->endpoints, &v, &n) == SB_OK;
        pthread_mutex_lock(&l->mu);
        if (ok) {
            dp_endpoints_free_list(l->new_addrs, l->n_new);
            l->new_addrs = v;
            l->n_new = n;
            l->have_new = true;
        }
        pthread_mutex_unlock(&l->mu);
        if (ok)
            lws_cancel_service(l->ctx);
        /* Nothing resolved yet: try again soon. */
        int64_t wait = ok && n > 0 ? l->resolve_ms : 1000;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (wait % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_mutex_lock(&l->mu);
        while (!l->res_stop) {
            if (pthread_cond_timedwait(&l->res_cv, &l->mu, &ts) != 0)
                break;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* ---- helpers ---- */

static char *xstrdup(const char *s)
{
    return strdup(s != NULL ? s : "");
}

static grpc_channel *channel_for(struct ep *e)
{
    if (e->ch != NULL)
        return e->ch;
    /* Keepalive pings find a frozen control plane (one that keeps TCP open but stopped
     * answering) in about time + timeout; the control plane permits pings every 1 s. */
    grpc_arg args[] = {
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = (int)e->l->max_msg}},
        {GRPC_ARG_INTEGER, GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, {.integer = 100}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, {.integer = 100}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, {.integer = 5000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIME_MS, {.integer = 5000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIMEOUT_MS, {.integer = 3000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, {.integer = 1}},
        {GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, {.integer = 0}},
        /* One channel per replica: never share a subchannel with another replica's channel. */
        {GRPC_ARG_INTEGER, GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, {.integer = 1}},
    };
    grpc_channel_args ca = {sizeof(args) / sizeof(args[0]), args};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    e->ch = grpc_channel_create(e->addr, creds, &ca);
    grpc_channel_credentials_release(creds);
    return e->ch;
}

static void call_free(struct call *c)
{
    if (c->c != NULL)
        grpc_call_unref(c->c);
    grpc_metadata_array_destroy(&c->md_init);
    grpc_metadata_array_destroy(&c->md_trail);
    grpc_slice_unref(c->details);
    grpc_slice_unref(c->auth.key);
    grpc_slice_unref(c->auth.value);
    if (c->recv_bb != NULL)
        grpc_byte_buffer_destroy(c->recv_bb);
    if (c->send_bb != NULL)
        grpc_byte_buffer_destroy(c->send_bb);
    free(c);
}

static bool start(struct call *c, grpc_op *ops, size_t n, struct tag *t)
{
    grpc_call_error e = grpc_call_start_batch(c->c, ops, n, t, NULL);
    if (e != GRPC_CALL_OK) {
        SB_LOG_ERROR(MOD, "grpc_call_start_batch failed", "error=%d op=%d", (int)e, (int)t->kind);
        return false;
    }
    c->outstanding++;
    return true;
}

static void arm_recv(struct call *c)
{
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv_bb;
    if (!start(c, &op, 1, &c->t_recv))
        grpc_call_cancel(c->c, NULL);
}

static void flush(struct ep *e)
{
    struct call *c = e->call;
    if (c == NULL || c->ended || c->sending || e->q_len == 0)
        return;
    grpc_slice s = grpc_slice_from_copied_buffer((const char *)e->q, e->q_len);
    c->send_bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    e->q_len = 0;
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = c->send_bb;
    if (start(c, &op, 1, &c->t_send))
        c->sending = true;
    else
        grpc_call_cancel(c->c, NULL);
}

/* Appends one packed item to the stream's queue as NodeBatch.items (field 1). */
static enum sb_err queue_packed(struct ep *e, const unsigned char *item, size_t n)
{
    size_t need = e->q_len + SB_BATCH_HEADER_MAX + n;
    if (e->q_len > 0 && need > e->l->max_queue)
        return SB_EFULL;
    if (need > e->q_cap) {
        size_t cap = e->q_cap ? e->q_cap : 4096;
        while (cap < need)
            cap *= 2;
        unsigned char *q = realloc(e->q, cap);
        if (q == NULL)
            return SB_ENOMEM;
        e->q = q;
        e->q_cap = cap;
    }
    e->q_len += sb_batch_header_put(e->q + e->q_len, n);
    memcpy(e->q + e->q_len, item, n);
    e->q_len += n;
    return SB_OK;
}

/* Shutdown: once everything queued is sent, half-close the stream, which tells the control
 * plane the node is leaving (it releases the node's lease at once instead of letting it
 * expire). Called again from each send completion until done. */
static void close_when_flushed(struct ep *e)
{
    struct call *c = e->call;
    if (c == NULL || c->ended || c->sending || c->half_closed)
        return;
    if (e->q_len > 0) {
        flush(e);
        return;
    }
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    c->half_closed = true;
    if (!start(c, &op, 1, &c->t_close))
        grpc_call_cancel(c->c, NULL);
}

static enum sb_err queue_item(struct ep *e, const NodeItem *item)
{
    unsigned char *b = NULL;
    size_t n = 0;
    enum sb_err rc = dp_link_pack(item, &b, &n);
    if (rc == SB_OK)
        rc = queue_packed(e, b, n);
    free(b);
    return rc;
}

static bool any_up(const struct dp_link *l)
{
    for (size_t i = 0; i < l->n_eps; i++)
        if (l->eps[i]->st == EP_UP)
            return true;
    return false;
}

/* ---- timers ---- */

static void retry_cb(lws_sorted_usec_list_t *sul)
{
    struct ep *e = lws_container_of(sul, struct ep, sul_retry);
    dial(e);
}

static void heartbeat_cb(lws_sorted_usec_list_t *sul)
{
    struct ep *e = lws_container_of(sul, struct ep, sul_heartbeat);
    struct dp_link *l = e->l;
    if (e->st != EP_UP || e->removed)
        return;
    Switchboard__Internal__V1__Heartbeat hb = SWITCHBOARD__INTERNAL__V1__HEARTBEAT__INIT;
    hb.sent_at = sb_time_now_ms();
    if (l->cbs.stats != NULL)
        l->cbs.stats(l->arg, &hb.connections, &hb.messages_delivered);
    NodeItem it = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__INIT;
    it.kind_case = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_HEARTBEAT;
    it.heartbeat = &hb;
    if (queue_item(e, &it) == SB_OK)
        flush(e);
    lws_sul_schedule(l->ctx, 0, &e->sul_heartbeat, heartbeat_cb,
                     (lws_usec_t)e->heartbeat_ms * LWS_US_PER_MS);
}

static void schedule_retry(struct ep *e)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
        r = (uint32_t)sb_time_mono_ns();
    /* Full jitter on the upper half: [backoff/2, backoff]. */
    int64_t wait = e->backoff_ms / 2 + (int64_t)(r % (uint32_t)(e->backoff_ms / 2 + 1));
    e->backoff_ms = e->backoff_ms * 2 > 5000 ? 5000 : e->backoff_ms * 2;
    lws_sul_schedule(e->l->ctx, 0, &e->sul_retry, retry_cb, (lws_usec_t)wait * LWS_US_PER_MS);
}

static void adopt_timeout_cb(lws_sorted_usec_list_t *sul)
{
    struct dp_link *l = lws_container_of(sul, struct dp_link, sul_adopt);
    struct ep *p = l->primary;
    if (p == NULL || l->primary_ready || p->call == NULL)
        return;
    SB_LOG_WARN(MOD, "no Adopted from the primary in time: dropping its stream",
                "endpoint=%s controlplane=%s timeout_ms=%lld", p->addr, p->cp_id,
                (long long)l->adopt_timeout_ms);
    grpc_call_cancel(p->call->c, NULL);
}

/* ---- primary choice ---- */

static void set_primary(struct dp_link *l, struct ep *e)
{
    l->primary = e;
    l->primary_ready = false;
    l->gen++;
    Switchboard__Internal__V1__Adopt a = SWITCHBOARD__INTERNAL__V1__ADOPT__INIT;
    a.lease_id = l->lease_id;
    NodeItem it = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__INIT;
    it.kind_case = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_ADOPT;
    it.adopt = &a;
    SB_LOG_INFO(MOD, "primary control plane chosen",
                "endpoint=%s controlplane=%s lease=%lld gen=%llu", e->addr, e->cp_id,
                (long long)l->lease_id, (unsigned long long)l->gen);
    if (queue_item(e, &it) != SB_OK) {
        grpc_call_cancel(e->call->c, NULL);
        return;
    }
    flush(e);
    lws_sul_schedule(l->ctx, 0, &l->sul_adopt, adopt_timeout_cb,
                     (lws_usec_t)l->adopt_timeout_ms * LWS_US_PER_MS);
}

/* The first welcomed replica in list order, or NULL. */
static struct ep *first_up(struct dp_link *l)
{
    for (size_t i = 0; i < l->n_eps; i++)
        if (l->eps[i]->st == EP_UP && !l->eps[i]->removed)
            return l->eps[i];
    return NULL;
}

/* ---- stream lifecycle (lws thread) ---- */

static void dial(struct ep *e)
{
    struct dp_link *l = e->l;
    if (l->stopping || e->removed || e->call != NULL)
        return;
    struct call *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        schedule_retry(e);
        return;
    }
    grpc_metadata_array_init(&c->md_init);
    grpc_metadata_array_init(&c->md_trail);
    c->details = grpc_empty_slice();
    c->ep = e;
    c->t_start = (struct tag){OP_START, c};
    c->t_recv = (struct tag){OP_RECV, c};
    c->t_send = (struct tag){OP_SEND, c};
    c->t_status = (struct tag){OP_STATUS, c};
    c->t_close = (struct tag){OP_CLOSE, c};
    c->c = grpc_channel_create_call(
        channel_for(e), NULL, GRPC_PROPAGATE_DEFAULTS, l->cq,
        grpc_slice_from_static_string("/switchboard.internal.v1.NodeLink/Link"), NULL,
        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (c->c == NULL) {
        call_free(c);
        schedule_retry(e);
        return;
    }
    e->call = c;
    e->st = EP_CONNECTING;
    e->q_len = 0;
    SB_LOG_DEBUG(MOD, "dialing control plane", "endpoint=%s node=%s", e->addr, l->node_id);

    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (l->secret != NULL) {
        /* The file is looked at once a second at most; a stream is checked when it opens. */
        sb_secret_refresh(l->secret, sb_time_mono_ms());
        size_t n = 0;
        const char *k = sb_secret_first(l->secret, &n);
        c->auth.key = grpc_slice_from_static_string("authorization");
        c->auth.value = grpc_slice_malloc(7 + n);
        memcpy(GRPC_SLICE_START_PTR(c->auth.value), "Bearer ", 7);
        memcpy(GRPC_SLICE_START_PTR(c->auth.value) + 7, k, n);
        ops[0].data.send_initial_metadata.count = 1;
        ops[0].data.send_initial_metadata.metadata = &c->auth;
    }
    ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[1].data.recv_initial_metadata.recv_initial_metadata = &c->md_init;
    bool ok = start(c, ops, 2, &c->t_start);
    grpc_op st;
    memset(&st, 0, sizeof(st));
    st.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    st.data.recv_status_on_client.trailing_metadata = &c->md_trail;
    st.data.recv_status_on_client.status = &c->status;
    st.data.recv_status_on_client.status_details = &c->details;
    ok = ok && start(c, &st, 1, &c->t_status);
    if (ok)
        arm_recv(c);

    Switchboard__Internal__V1__Hello hello = SWITCHBOARD__INTERNAL__V1__HELLO__INIT;
    hello.node_id = l->node_id;
    hello.address = l->address;
    hello.version = SB_VERSION;
    static char *features[] = {"delivery_room_ids"};
    hello.n_features = sizeof(features) / sizeof(features[0]);
    hello.features = features;
    NodeItem it = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__INIT;
    it.kind_case = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_HELLO;
    it.hello = &hello;
    if (!ok || queue_item(e, &it) != SB_OK)
        grpc_call_cancel(c->c, NULL);
    else
        flush(e);
}

static void ep_down(struct ep *e, struct call *c)
{
    struct dp_link *l = e->l;
    bool was_up = e->st == EP_UP;
    if (!l->stopping &&
        (c->status == GRPC_STATUS_UNAUTHENTICATED || c->status == GRPC_STATUS_PERMISSION_DENIED)) {
        /* Refused before Welcome: say why on every attempt (they are backed off to 5 s). */
        char *det = grpc_slice_to_c_string(c->details);
        SB_LOG_WARN(MOD,
                    c->status == GRPC_STATUS_UNAUTHENTICATED
                        ? "control plane refused the link: check --cluster-secret-file"
                        : "control plane refused the link: is another node using this --node-id?",
                    "endpoint=%s node=%s status=%d details=\"%s\" cluster_secret=%d", e->addr,
                    l->node_id, (int)c->status, det != NULL ? det : "", l->secret != NULL);
        gpr_free(det);
    }
    if (was_up || e == l->primary) {
        char *det = grpc_slice_to_c_string(c->details);
        sb_log(l->stopping ? SB_LOG_INFO : SB_LOG_WARN, MOD, "control plane link ended",
               "endpoint=%s controlplane=%s status=%d details=\"%s\" was_up=%d primary=%d", e->addr,
               e->cp_id, (int)c->status, det != NULL ? det : "", was_up, e == l->primary);
        gpr_free(det);
    }
    e->st = EP_DOWN;
    e->q_len = 0;
    lws_sul_cancel(&e->sul_heartbeat);
    if (was_up)
        l->reconnects++;
    if (e == l->primary && !l->stopping) {
        snprintf(l->lost_primary, sizeof(l->lost_primary), "%s", e->cp_id);
        l->primary = NULL;
        l->primary_ready = false;
        lws_sul_cancel(&l->sul_adopt);
        struct ep *next = first_up(l);
        if (next != NULL) {
            l->failovers++;
            set_primary(l, next);
        } else if (l->cbs.down != NULL) {
            SB_LOG_WARN(MOD, "no control plane reachable", NULL);
            l->cbs.down(l->arg);
        }
    }
    if (!l->stopping && !e->removed)
        schedule_retry(e);
}

static void on_welcome(struct ep *e, const Switchboard__Internal__V1__Welcome *w)
{
    struct dp_link *l = e->l;
    if (e->st == EP_UP)
        return;
    e->st = EP_UP;
    e->backoff_ms = 100;
    e->heartbeat_ms = w->heartbeat_interval_ms > 0 ? w->heartbeat_interval_ms : 5000;
    snprintf(e->cp_id, sizeof(e->cp_id), "%s",
             w->controlplane_id != NULL ? w->controlplane_id : "");
    SB_LOG_INFO(MOD, "control plane link up", "endpoint=%s controlplane=%s heartbeat_ms=%lld",
                e->addr, e->cp_id, (long long)e->heartbeat_ms);
    lws_sul_schedule(l->ctx, 0, &e->sul_heartbeat, heartbeat_cb,
                     (lws_usec_t)e->heartbeat_ms * LWS_US_PER_MS);
    if (l->primary == NULL)
        set_primary(l, e);
}

static void on_adopted(struct ep *e, const Switchboard__Internal__V1__Adopted *a)
{
    struct dp_link *l = e->l;
    if (e != l->primary || l->primary_ready)
        return; /* a stale answer from a former primary */
    lws_sul_cancel(&l->sul_adopt);
    l->primary_ready = true;
    l->lease_id = a->lease_id;
    /* Lease 0: a memory-store control plane, which forgets a node's connections with its
     * stream; treat it as a new lease. The same replica again after its stream ended: it may
     * have dropped our connections with that stream whatever its lease says (the memory store
     * does), so resync too; it costs one upsert per connection, only in that case. */
    bool again = e->cp_id[0] != '\0' && strcmp(e->cp_id, l->lost_primary) == 0;
    bool renewed = a->renewed || a->lease_id == 0 || again;
    l->lost_primary[0] = '\0';
    SB_LOG_INFO(MOD, "adopted by the primary control plane",
                "endpoint=%s controlplane=%s lease=%lld renewed=%d same_replica=%d gen=%llu",
                e->addr, e->cp_id, (long long)a->lease_id, a->renewed, again,
                (unsigned long long)l->gen);
    if (l->cbs.ready != NULL)
        l->cbs.ready(l->arg, renewed, l->gen);
}

static void handle_batch(struct ep *e, grpc_byte_buffer *bb)
{
    struct dp_link *l = e->l;
    ControlBatch *b = NULL;
    enum sb_err err = sb_pb_unpack(bb, &switchboard__internal__v1__control_batch__descriptor,
                                   l->max_msg, (ProtobufCMessage **)&b);
    if (err != SB_OK) {
        SB_LOG_ERROR(MOD, "bad ControlBatch; dropping the stream", "endpoint=%s error=%s", e->addr,
                     sb_err_str(err));
        grpc_call_cancel(e->call->c, NULL);
        return;
    }
    for (size_t i = 0; i < b->n_items && !l->stopping && e->call != NULL; i++) {
        ControlItem *it = b->items[i];
        if (it->kind_case == SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_WELCOME) {
            on_welcome(e, it->welcome);
            continue;
        }
        if (e->st != EP_UP) {
            SB_LOG_WARN(MOD, "control item before Welcome ignored", "endpoint=%s kind=%d", e->addr,
                        (int)it->kind_case);
            continue;
        }
        if (it->kind_case == SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_ADOPTED) {
            on_adopted(e, it->adopted);
            continue;
        }
        if (l->cbs.item != NULL)
            l->cbs.item(l->arg, it);
    }
    protobuf_c_message_free_unpacked(&b->base, NULL);
}

static void complete(struct dp_link *l, struct tag *t, int ok)
{
    struct call *c = t->call;
    struct ep *e = c->ep;
    bool current = e->call == c && !l->stopping;
    c->outstanding--;
    switch (t->kind) {
    case OP_START:
        if (!ok && !c->ended)
            grpc_call_cancel(c->c, NULL);
        break;
    case OP_SEND:
        c->sending = false;
        grpc_byte_buffer_destroy(c->send_bb);
        c->send_bb = NULL;
        if (!ok)
            grpc_call_cancel(c->c, NULL);
        else if (!c->ended && current)
            flush(e);
        else if (!c->ended && e->call == c && l->stopping)
            close_when_flushed(e);
        break;
    case OP_CLOSE:
        if (!ok && !c->ended)
            grpc_call_cancel(c->c, NULL);
        break;
    case OP_RECV: {
        grpc_byte_buffer *bb = c->recv_bb;
        c->recv_bb = NULL;
        if (ok && bb != NULL && current) {
            handle_batch(e, bb);
            if (!c->ended && e->call == c)
                arm_recv(c);
        }
        if (bb != NULL)
            grpc_byte_buffer_destroy(bb);
        break;
    }
    case OP_STATUS:
        c->ended = true;
        if (e->call == c) {
            e->call = NULL;
            ep_down(e, c);
        }
        break;
    }
    if (c->outstanding == 0 && c->ended)
        call_free(c);
}

/* ---- endpoint set changes (DNS) ---- */

static struct ep *ep_create(struct dp_link *l, const char *addr)
{
    struct ep *e = calloc(1, sizeof(*e));
    if (e == NULL || (e->addr = strdup(addr)) == NULL) {
        free(e);
        return NULL;
    }
    e->l = l;
    e->backoff_ms = 100;
    e->heartbeat_ms = 5000;
    return e;
}

static void ep_retire(struct dp_link *l, struct ep *e)
{
    e->removed = true;
    lws_sul_cancel(&e->sul_retry);
    lws_sul_cancel(&e->sul_heartbeat);
    if (e->call != NULL)
        grpc_call_cancel(e->call->c, NULL);
    struct ep **v = realloc(l->dead, (l->n_dead + 1) * sizeof(*v));
    if (v != NULL) {
        l->dead = v;
        l->dead[l->n_dead++] = e;
    } /* else leaked: harmless, and keeps late completions safe */
}

static void apply_addrs(struct dp_link *l, char **addrs, size_t n)
{
    struct ep **next = calloc(n + 1, sizeof(*next));
    if (next == NULL)
        return;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        struct ep *found = NULL;
        for (size_t j = 0; j < l->n_eps; j++) {
            if (l->eps[j] != NULL && strcmp(l->eps[j]->addr, addrs[i]) == 0) {
                found = l->eps[j];
                l->eps[j] = NULL;
                break;
            }
        }
        if (found == NULL && (found = ep_create(l, addrs[i])) != NULL)
            SB_LOG_INFO(MOD, "control plane endpoint added", "endpoint=%s", addrs[i]);
        if (found != NULL)
            next[k++] = found;
    }
    for (size_t j = 0; j < l->n_eps; j++) {
        if (l->eps[j] != NULL) {
            SB_LOG_INFO(MOD, "control plane endpoint removed", "endpoint=%s", l->eps[j]->addr);
            ep_retire(l, l->eps[j]);
        }
    }
    free(l->eps);
    l->eps = next;
    l->n_eps = k;
    if (l->started)
        for (size_t i = 0; i < l->n_eps; i++)
            if (l->eps[i]->call == NULL && l->eps[i]->st == EP_DOWN)
                dial(l->eps[i]);
}

void dp_link_service(struct dp_link *l)
{
    for (;;) {
        pthread_mutex_lock(&l->mu);
        struct ev *ev = l->evs_head;
        l->evs_head = NULL;
        l->evs_tail = NULL;
        char **addrs = NULL;
        size_t n = 0;
        bool have = l->have_new;
        if (have) {
            addrs = l->new_addrs;
            n = l->n_new;
            l->new_addrs = NULL;
            l->n_new = 0;
            l->have_new = false;
        }
        pthread_mutex_unlock(&l->mu);
        if (have) {
            if (!l->stopping)
                apply_addrs(l, addrs, n);
            dp_endpoints_free_list(addrs, n);
        }
        if (ev == NULL)
            return;
        while (ev != NULL) {
            struct ev *next = ev->next;
            complete(l, ev->tag, ev->ok);
            free(ev);
            ev = next;
        }
    }
}

/* ---- public ---- */

enum sb_err dp_link_pack(const NodeItem *item, unsigned char **out, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(&item->base);
    unsigned char *b = malloc(n > 0 ? n : 1);
    if (b == NULL)
        return SB_ENOMEM;
    protobuf_c_message_pack(&item->base, b);
    *out = b;
    *len = n;
    return SB_OK;
}

struct dp_link *dp_link_create(struct lws_context *ctx, const struct dp_link_opts *opts,
                               const struct dp_link_cbs *cbs, void *arg)
{
    struct dp_link *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->ctx = ctx;
    l->cbs = *cbs;
    l->arg = arg;
    l->max_msg = opts->max_message_bytes;
    l->max_queue = opts->max_queue_bytes;
    l->resolve_ms = opts->resolve_interval_ms > 0 ? opts->resolve_interval_ms : 30000;
    l->adopt_timeout_ms = opts->adopt_timeout_ms > 0 ? opts->adopt_timeout_ms : 5000;
    l->secret = opts->cluster_secret;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->res_cv, NULL);
    enum sb_err err;
    l->endpoints = dp_endpoints_parse(opts->endpoints, NULL, &err);
    if (l->endpoints == NULL || (l->node_id = xstrdup(opts->node_id)) == NULL ||
        (l->address = xstrdup(opts->address)) == NULL) {
        dp_link_destroy(l);
        return NULL;
    }
    if (!dp_endpoints_has_names(l->endpoints)) {
        /* Literal addresses only: no lookup, no resolver thread. */
        char **v = NULL;
        size_t n = 0;
        if (dp_endpoints_resolve(l->endpoints, &v, &n) != SB_OK) {
            dp_link_destroy(l);
            return NULL;
        }
        apply_addrs(l, v, n);
        dp_endpoints_free_list(v, n);
    }
    grpc_init();
    l->cq = grpc_completion_queue_create_for_next(NULL);
    return l;
}

enum sb_err dp_link_start(struct dp_link *l)
{
    if (pthread_create(&l->pump, NULL, pump_main, l) != 0)
        return SB_EIO;
    l->pump_started = true;
    if (dp_endpoints_has_names(l->endpoints)) {
        if (pthread_create(&l->resolver, NULL, resolver_main, l) != 0)
            return SB_EIO;
        l->resolver_started = true;
    }
    l->started = true;
    for (size_t i = 0; i < l->n_eps; i++)
        dial(l->eps[i]);
    return SB_OK;
}

bool dp_link_is_up(const struct dp_link *l)
{
    return any_up(l);
}

bool dp_link_primary_ready(const struct dp_link *l)
{
    return l->primary != NULL && l->primary_ready && l->primary->st == EP_UP;
}

uint64_t dp_link_primary_gen(const struct dp_link *l)
{
    return l->gen;
}

uint64_t dp_link_next_id(struct dp_link *l)
{
    return ++l->next_id;
}

enum sb_err dp_link_send_packed(struct dp_link *l, const unsigned char *item, size_t len)
{
    if (!dp_link_primary_ready(l))
        return SB_EUNAVAIL;
    enum sb_err e = queue_packed(l->primary, item, len);
    if (e != SB_OK)
        return e;
    flush(l->primary);
    return SB_OK;
}

enum sb_err dp_link_send(struct dp_link *l, const NodeItem *item)
{
    if (!dp_link_primary_ready(l))
        return SB_EUNAVAIL;
    enum sb_err e = queue_item(l->primary, item);
    if (e != SB_OK)
        return e;
    flush(l->primary);
    return SB_OK;
}

uint64_t dp_link_reconnects(const struct dp_link *l)
{
    return l->reconnects;
}

uint64_t dp_link_failovers(const struct dp_link *l)
{
    return l->failovers;
}

int dp_link_streams_up(const struct dp_link *l)
{
    int n = 0;
    for (size_t i = 0; i < l->n_eps; i++)
        n += l->eps[i]->st == EP_UP;
    return n;
}

const char *dp_link_endpoint(const struct dp_link *l)
{
    return l->primary != NULL ? l->primary->addr : "";
}

static bool calls_live(const struct dp_link *l)
{
    for (size_t i = 0; i < l->n_eps; i++)
        if (l->eps[i]->call != NULL)
            return true;
    for (size_t i = 0; i < l->n_dead; i++)
        if (l->dead[i]->call != NULL)
            return true;
    return false;
}

static void ep_free(struct ep *e)
{
    if (e->ch != NULL)
        grpc_channel_destroy(e->ch);
    free(e->addr);
    free(e->q);
    free(e);
}

void dp_link_destroy(struct dp_link *l)
{
    if (l == NULL)
        return;
    l->stopping = true;
    if (l->resolver_started) {
        pthread_mutex_lock(&l->mu);
        l->res_stop = true;
        pthread_cond_signal(&l->res_cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->resolver, NULL);
    }
    if (l->ctx != NULL) {
        lws_sul_cancel(&l->sul_adopt);
        for (size_t i = 0; i < l->n_eps; i++) {
            lws_sul_cancel(&l->eps[i]->sul_retry);
            lws_sul_cancel(&l->eps[i]->sul_heartbeat);
        }
    }
    if (l->cq != NULL) {
        /* Say goodbye first (what is queued, e.g. the last ConnCloses, then a half-close);
         * cancel what has not ended within a second. */
        for (size_t i = 0; i < l->n_eps; i++)
            close_when_flushed(l->eps[i]);
        int64_t polite = sb_time_mono_ms() + 1000;
        while (calls_live(l) && sb_time_mono_ms() < polite) {
            dp_link_service(l);
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        for (size_t i = 0; i < l->n_eps; i++)
            if (l->eps[i]->call != NULL)
                grpc_call_cancel(l->eps[i]->call->c, NULL);
        /* Let every batch of every call complete before the queue goes. */
        int64_t deadline = sb_time_mono_ms() + 5000;
        while (calls_live(l) && sb_time_mono_ms() < deadline) {
            dp_link_service(l);
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        grpc_completion_queue_shutdown(l->cq);
        if (l->pump_started)
            pthread_join(l->pump, NULL);
        dp_link_service(l);
        grpc_completion_queue_destroy(l->cq);
    }
    for (size_t i = 0; i < l->n_eps; i++)
        ep_free(l->eps[i]);
    free(l->eps);
    for (size_t i = 0; i < l->n_dead; i++)
        ep_free(l->dead[i]);
    free(l->dead);
    dp_endpoints_free_list(l->new_addrs, l->n_new);
    dp_endpoints_destroy(l->endpoints);
    free(l->node_id);
    free(l->address);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->res_cv);
    if (l->cq != NULL)
        grpc_shutdown();
    free(l);
}
