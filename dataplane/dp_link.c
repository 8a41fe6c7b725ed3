/* NodeLink client over gRPC core. The pump thread only moves completion tags to the lws
 * thread; the lws thread owns the call and starts every batch (at most one op of each type in
 * flight). Outgoing items are packed as they come and concatenated as NodeBatch field 1, so a
 * flush is one SEND_MESSAGE carrying everything queued since the last one. */
#include "dp_link.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <libwebsockets.h>

#include "sb_log.h"
#include "sb_pb.h"
#include "sb_time.h"

#define MOD "dp_link"

typedef Switchboard__Internal__V1__NodeItem NodeItem;
typedef Switchboard__Internal__V1__ControlItem ControlItem;
typedef Switchboard__Internal__V1__ControlBatch ControlBatch;

enum op_kind { OP_START, OP_RECV, OP_SEND, OP_STATUS };

struct call;

struct tag {
    enum op_kind kind;
    struct call *call;
};

struct call {
    grpc_call *c;
    int outstanding; /* batches started and not completed */
    bool ended;      /* status received */
    grpc_metadata_array md_init, md_trail;
    grpc_status_code status;
    grpc_slice details;
    grpc_byte_buffer *recv_bb;
    grpc_byte_buffer *send_bb;
    bool sending;
    struct tag t_start, t_recv, t_send, t_status;
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
    char **eps;
    size_t n_eps, ep_idx;
    grpc_channel **channels;
    char *node_id, *address;
    size_t max_msg, max_queue;

    grpc_completion_queue *cq;
    pthread_t pump;
    bool pump_started;

    pthread_mutex_t mu; /* guards evs */
    struct ev *evs_head, *evs_tail;

    enum dp_link_state state;
    struct call *call;
    bool stopping;
    uint64_t next_id;
    uint64_t reconnects;
    int64_t backoff_ms;
    int64_t heartbeat_ms;

    unsigned char *q; /* packed NodeBatch items waiting */
    size_t q_len, q_cap;

    lws_sorted_usec_list_t sul_retry, sul_heartbeat;
};

static void dial(struct dp_link *l);

/* ---- pump thread ---- */

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

/* ---- helpers ---- */

static char *xstrdup(const char *s)
{
    return strdup(s != NULL ? s : "");
}

static enum sb_err split_endpoints(struct dp_link *l, const char *list)
{
    char *copy = xstrdup(list);
    if (copy == NULL)
        return SB_ENOMEM;
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        if (*t == '\0')
            continue;
        char **v = realloc(l->eps, (l->n_eps + 1) * sizeof(*v));
        if (v == NULL) {
            free(copy);
            return SB_ENOMEM;
        }
        l->eps = v;
        if ((l->eps[l->n_eps] = xstrdup(t)) == NULL) {
            free(copy);
            return SB_ENOMEM;
        }
        l->n_eps++;
    }
    free(copy);
    return l->n_eps > 0 ? SB_OK : SB_EINVAL;
}

static grpc_channel *channel_for(struct dp_link *l, size_t i)
{
    if (l->channels[i] != NULL)
        return l->channels[i];
    /* Keepalive pings find a frozen control plane (one that keeps TCP open but stopped
     * answering) in about time + timeout; the control plane permits pings every 1 s. */
    grpc_arg args[] = {
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = (int)l->max_msg}},
        {GRPC_ARG_INTEGER, GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, {.integer = 100}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, {.integer = 100}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, {.integer = 5000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIME_MS, {.integer = 5000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIMEOUT_MS, {.integer = 3000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, {.integer = 1}},
        {GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, {.integer = 0}},
    };
    grpc_channel_args ca = {sizeof(args) / sizeof(args[0]), args};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    l->channels[i] = grpc_channel_create(l->eps[i], creds, &ca);
    grpc_channel_credentials_release(creds);
    return l->channels[i];
}

static void call_free(struct call *c)
{
    if (c->c != NULL)
        grpc_call_unref(c->c);
    grpc_metadata_array_destroy(&c->md_init);
    grpc_metadata_array_destroy(&c->md_trail);
    grpc_slice_unref(c->details);
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

static void flush(struct dp_link *l)
{
    struct call *c = l->call;
    if (c == NULL || c->ended || c->sending || l->q_len == 0)
        return;
    grpc_slice s = grpc_slice_from_copied_buffer((const char *)l->q, l->q_len);
    c->send_bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    l->q_len = 0;
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = c->send_bb;
    if (start(c, &op, 1, &c->t_send))
        c->sending = true;
    else
        grpc_call_cancel(c->c, NULL);
}

static enum sb_err queue_item(struct dp_link *l, const NodeItem *item)
{
    size_t n = protobuf_c_message_get_packed_size(&item->base);
    size_t need = l->q_len + 1 + 10 + n;
    if (l->q_len > 0 && need > l->max_queue)
        return SB_EFULL;
    if (need > l->q_cap) {
        size_t cap = l->q_cap ? l->q_cap : 4096;
        while (cap < need)
            cap *= 2;
        unsigned char *q = realloc(l->q, cap);
        if (q == NULL)
            return SB_ENOMEM;
        l->q = q;
        l->q_cap = cap;
    }
    l->q[l->q_len++] = 0x0a; /* NodeBatch.items, field 1, length-delimited */
    uint64_t v = n;
    do {
        unsigned char b = v & 0x7f;
        v >>= 7;
        l->q[l->q_len++] = v ? (b | 0x80) : b;
    } while (v);
    protobuf_c_message_pack(&item->base, l->q + l->q_len);
    l->q_len += n;
    return SB_OK;
}

/* ---- timers ---- */

static void retry_cb(lws_sorted_usec_list_t *sul)
{
    struct dp_link *l = lws_container_of(sul, struct dp_link, sul_retry);
    dial(l);
}

static void heartbeat_cb(lws_sorted_usec_list_t *sul)
{
    struct dp_link *l = lws_container_of(sul, struct dp_link, sul_heartbeat);
    if (l->state != DP_LINK_UP)
        return;
    Switchboard__Internal__V1__Heartbeat hb = SWITCHBOARD__INTERNAL__V1__HEARTBEAT__INIT;
    hb.sent_at = sb_time_now_ms();
    if (l->cbs.stats != NULL)
        l->cbs.stats(l->arg, &hb.connections, &hb.messages_delivered);
    NodeItem it = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__INIT;
    it.kind_case = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_HEARTBEAT;
    it.heartbeat = &hb;
    dp_link_send(l, &it);
    lws_sul_schedule(l->ctx, 0, &l->sul_heartbeat, heartbeat_cb,
                     (lws_usec_t)l->heartbeat_ms * LWS_US_PER_MS);
}

static void schedule_retry(struct dp_link *l)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
        r = (uint32_t)sb_time_mono_ns();
    /* Full jitter on the upper half: [backoff/2, backoff]. */
    int64_t wait = l->backoff_ms / 2 + (int64_t)(r % (uint32_t)(l->backoff_ms / 2 + 1));
    l->backoff_ms = l->backoff_ms * 2 > 5000 ? 5000 : l->backoff_ms * 2;
    lws_sul_schedule(l->ctx, 0, &l->sul_retry, retry_cb, (lws_usec_t)wait * LWS_US_PER_MS);
}

/* ---- stream lifecycle (lws thread) ---- */

static void dial(struct dp_link *l)
{
    if (l->stopping || l->call != NULL)
        return;
    struct call *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        schedule_retry(l);
        return;
    }
    grpc_metadata_array_init(&c->md_init);
    grpc_metadata_array_init(&c->md_trail);
    c->details = grpc_empty_slice();
    c->t_start = (struct tag){OP_START, c};
    c->t_recv = (struct tag){OP_RECV, c};
    c->t_send = (struct tag){OP_SEND, c};
    c->t_status = (struct tag){OP_STATUS, c};
    const char *ep = l->eps[l->ep_idx];
    c->c = grpc_channel_create_call(
        channel_for(l, l->ep_idx), NULL, GRPC_PROPAGATE_DEFAULTS, l->cq,
        grpc_slice_from_static_string("/switchboard.internal.v1.NodeLink/Link"), NULL,
        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (c->c == NULL) {
        call_free(c);
        schedule_retry(l);
        return;
    }
    l->call = c;
    l->state = DP_LINK_CONNECTING;
    l->q_len = 0;
    SB_LOG_INFO(MOD, "dialing control plane", "endpoint=%s node=%s", ep, l->node_id);

    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
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
    NodeItem it = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__INIT;
    it.kind_case = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_HELLO;
    it.hello = &hello;
    if (!ok || queue_item(l, &it) != SB_OK)
        grpc_call_cancel(c->c, NULL);
    else
        flush(l);
}

static void link_down(struct dp_link *l, struct call *c)
{
    bool was_up = l->state == DP_LINK_UP;
    char *det = grpc_slice_to_c_string(c->details);
    SB_LOG_WARN(MOD, "control plane link ended", "endpoint=%s status=%d details=\"%s\" was_up=%d",
                l->eps[l->ep_idx], (int)c->status, det != NULL ? det : "", was_up);
    gpr_free(det);
    l->state = DP_LINK_DOWN;
    l->q_len = 0;
    lws_sul_cancel(&l->sul_heartbeat);
    /* Try the next replica of the list on every failure (full failover is issue 3). */
    l->ep_idx = (l->ep_idx + 1) % l->n_eps;
    l->reconnects++;
    if (l->cbs.down != NULL && !l->stopping)
        l->cbs.down(l->arg);
    if (!l->stopping)
        schedule_retry(l);
}

static void handle_batch(struct dp_link *l, grpc_byte_buffer *bb)
{
    ControlBatch *b = NULL;
    enum sb_err e = sb_pb_unpack(bb, &switchboard__internal__v1__control_batch__descriptor,
                                 l->max_msg, (ProtobufCMessage **)&b);
    if (e != SB_OK) {
        SB_LOG_ERROR(MOD, "bad ControlBatch; dropping the stream", "error=%s", sb_err_str(e));
        grpc_call_cancel(l->call->c, NULL);
        return;
    }
    for (size_t i = 0; i < b->n_items && !l->stopping; i++) {
        ControlItem *it = b->items[i];
        if (it->kind_case == SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_WELCOME) {
            if (l->state == DP_LINK_UP)
                continue;
            l->state = DP_LINK_UP;
            l->backoff_ms = 100;
            l->heartbeat_ms =
                it->welcome->heartbeat_interval_ms > 0 ? it->welcome->heartbeat_interval_ms : 5000;
            SB_LOG_INFO(MOD, "control plane link up",
                        "endpoint=%s controlplane=%s heartbeat_ms=%lld", l->eps[l->ep_idx],
                        it->welcome->controlplane_id, (long long)l->heartbeat_ms);
            lws_sul_schedule(l->ctx, 0, &l->sul_heartbeat, heartbeat_cb,
                             (lws_usec_t)l->heartbeat_ms * LWS_US_PER_MS);
            if (l->cbs.up != NULL)
                l->cbs.up(l->arg, it->welcome->controlplane_id);
            continue;
        }
        if (l->state != DP_LINK_UP) {
            SB_LOG_WARN(MOD, "control item before Welcome ignored", "kind=%d", (int)it->kind_case);
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
        else if (!c->ended && l->call == c && !l->stopping)
            flush(l);
        break;
    case OP_RECV: {
        grpc_byte_buffer *bb = c->recv_bb;
        c->recv_bb = NULL;
        if (ok && bb != NULL && l->call == c && !l->stopping) {
            handle_batch(l, bb);
            if (!c->ended && l->call == c)
                arm_recv(c);
        }
        if (bb != NULL)
            grpc_byte_buffer_destroy(bb);
        break;
    }
    case OP_STATUS:
        c->ended = true;
        if (l->call == c) {
            l->call = NULL;
            link_down(l, c);
        }
        break;
    }
    if (c->outstanding == 0 && c->ended)
        call_free(c);
}

void dp_link_service(struct dp_link *l)
{
    for (;;) {
        pthread_mutex_lock(&l->mu);
        struct ev *ev = l->evs_head;
        l->evs_head = NULL;
        l->evs_tail = NULL;
        pthread_mutex_unlock(&l->mu);
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
    l->backoff_ms = 100;
    l->heartbeat_ms = 5000;
    pthread_mutex_init(&l->mu, NULL);
    if (split_endpoints(l, opts->endpoints) != SB_OK ||
        (l->channels = calloc(l->n_eps, sizeof(*l->channels))) == NULL ||
        (l->node_id = xstrdup(opts->node_id)) == NULL ||
        (l->address = xstrdup(opts->address)) == NULL) {
        dp_link_destroy(l);
        return NULL;
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
    dial(l);
    return SB_OK;
}

enum dp_link_state dp_link_state(const struct dp_link *l)
{
    return l->state;
}

uint64_t dp_link_next_id(struct dp_link *l)
{
    return ++l->next_id;
}

enum sb_err dp_link_send(struct dp_link *l, const NodeItem *item)
{
    if (l->state != DP_LINK_UP)
        return SB_EUNAVAIL;
    enum sb_err e = queue_item(l, item);
    if (e != SB_OK)
        return e;
    flush(l);
    return SB_OK;
}

uint64_t dp_link_reconnects(const struct dp_link *l)
{
    return l->reconnects;
}

const char *dp_link_endpoint(const struct dp_link *l)
{
    return l->eps[l->ep_idx];
}

void dp_link_destroy(struct dp_link *l)
{
    if (l == NULL)
        return;
    l->stopping = true;
    if (l->ctx != NULL) {
        lws_sul_cancel(&l->sul_retry);
        lws_sul_cancel(&l->sul_heartbeat);
    }
    if (l->cq != NULL) {
        if (l->call != NULL)
            grpc_call_cancel(l->call->c, NULL);
        /* Let every batch of the call complete before the queue goes. */
        int64_t deadline = sb_time_mono_ms() + 5000;
        while (l->call != NULL && sb_time_mono_ms() < deadline) {
            dp_link_service(l);
            if (l->call != NULL && l->call->ended)
                break;
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        struct call *c = l->call;
        grpc_completion_queue_shutdown(l->cq);
        if (l->pump_started)
            pthread_join(l->pump, NULL);
        dp_link_service(l);
        if (l->call == c && c != NULL && c->outstanding == 0)
            call_free(c);
        grpc_completion_queue_destroy(l->cq);
    }
    for (size_t i = 0; l->channels != NULL && i < l->n_eps; i++)
        if (l->channels[i] != NULL)
            grpc_channel_destroy(l->channels[i]);
    free(l->channels);
    for (size_t i = 0; i < l->n_eps; i++)
        free(l->eps[i]);
    free(l->eps);
    free(l->node_id);
    free(l->address);
    free(l->q);
    pthread_mutex_destroy(&l->mu);
    if (l->cq != NULL)
        grpc_shutdown();
    free(l);
}
