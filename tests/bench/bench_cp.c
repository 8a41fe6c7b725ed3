/* bench_cp: the control plane alone under room publishes. It speaks NodeLink itself, as a fake
 * data plane: one Link stream, `--conns` connections (users <prefix>0..N-1, members of one room
 * created over gRPC), then NodeBatch messages of `--batch` ClientRequest{message} items, with at
 * most `--window` requests unanswered (or paced at `--rate` requests/s). It counts the Reply
 * items (acks) and Delivery items that come back, records request -> Reply latency, and reads
 * the control plane's CPU time from /proc (`--cp-pid`) to print publishes/s per core.
 *
 *   bench_cp --cp 127.0.0.1:50051 --cp-pid PID [--conns 100] [--batch 64] [--window 4096]
 *            [--duration 5] [--rate 0] [--data-bytes 64] [--room bench-cp] [--prefix bcp]
 *
 * Single threaded: one completion queue, at most one send and one receive in flight. */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "bench_grpc.h"
#include "bench_hist.h"
#include "bench_proc.h"
#include "sb_pb.h"
#include "switchboard/internal/v1/nodelink.pb-c.h"
#include "switchboard/v1/messages.pb-c.h"

typedef Switchboard__Internal__V1__NodeItem NodeItem;
typedef Switchboard__Internal__V1__ClientRequest ClientRequest;

enum { TAG_START = 1, TAG_META, TAG_RECV, TAG_SEND, TAG_STATUS };

struct opts {
    const char *cp;
    pid_t cp_pid;
    int conns, batch, window;
    double duration, rate;
    int data_bytes;
    const char *room, *prefix;
    int grpc; /* > 0: publish with this many BroadcastToRoom calls in flight instead */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_cp --cp HOST:PORT [--cp-pid PID] [--conns N] [--batch B] "
                    "[--window W] [--duration S] [--rate R] [--data-bytes N] [--room ID] "
                    "[--prefix P] [--grpc CALLS]\n");
    exit(2);
}

static void parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.cp = NULL,
                       .conns = 100,
                       .batch = 64,
                       .window = 4096,
                       .duration = 5,
                       .data_bytes = 64,
                       .room = "bench-cp",
                       .prefix = "bcp"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--cp"))
            o->cp = v;
        else if (!strcmp(a, "--cp-pid"))
            o->cp_pid = (pid_t)atoi(v);
        else if (!strcmp(a, "--conns"))
            o->conns = atoi(v);
        else if (!strcmp(a, "--batch"))
            o->batch = atoi(v);
        else if (!strcmp(a, "--window"))
            o->window = atoi(v);
        else if (!strcmp(a, "--duration"))
            o->duration = atof(v);
        else if (!strcmp(a, "--rate"))
            o->rate = atof(v);
        else if (!strcmp(a, "--data-bytes"))
            o->data_bytes = atoi(v);
        else if (!strcmp(a, "--room"))
            o->room = v;
        else if (!strcmp(a, "--prefix"))
            o->prefix = v;
        else if (!strcmp(a, "--grpc"))
            o->grpc = atoi(v);
        else
            usage();
    }
    if (o->cp == NULL || o->conns < 1 || o->batch < 1 || o->window < o->batch || o->duration <= 0 ||
        o->data_bytes < 2)
        usage();
}

struct link {
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_byte_buffer *recv_bb, *send_bb;
    bool sending, recv_armed, over;
    grpc_metadata_array md;
    grpc_status_code status;
    grpc_slice details;
};

static bool send_items(struct link *l, NodeItem **items, size_t n)
{
    Switchboard__Internal__V1__NodeBatch b = SWITCHBOARD__INTERNAL__V1__NODE_BATCH__INIT;
    b.items = items;
    b.n_items = n;
    l->send_bb = sb_pb_pack(&b.base);
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = l->send_bb;
    l->sending = true;
    return grpc_call_start_batch(l->call, &op, 1, (void *)(intptr_t)TAG_SEND, NULL) == GRPC_CALL_OK;
}

static void arm_recv(struct link *l)
{
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &l->recv_bb;
    l->recv_armed = true;
    if (grpc_call_start_batch(l->call, &op, 1, (void *)(intptr_t)TAG_RECV, NULL) != GRPC_CALL_OK)
        l->recv_armed = false;
}

struct counts {
    uint64_t replies, errors, deliveries, opened, welcome, other;
    char first_error[160];
};

/* `sent_at[request_id % cap]` is the request's send time. */
static void on_batch(grpc_byte_buffer *bb, struct counts *k, struct bench_hist *h,
                     const int64_t *sent_at, size_t cap)
{
    ProtobufCMessage *msg = NULL;
    if (sb_pb_unpack(bb, &switchboard__internal__v1__control_batch__descriptor, 64u << 20, &msg) !=
        SB_OK) {
        fprintf(stderr, "bench_cp: a ControlBatch does not parse\n");
        exit(1);
    }
    int64_t t = now_ns();
    Switchboard__Internal__V1__ControlBatch *b = (Switchboard__Internal__V1__ControlBatch *)msg;
    for (size_t i = 0; i < b->n_items; i++) {
        Switchboard__Internal__V1__ControlItem *it = b->items[i];
        switch (it->kind_case) {
        case SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_REPLY:
            k->replies++;
            if (it->reply->error_code != NULL && it->reply->error_code[0] != '\0') {
                if (k->errors++ == 0)
                    snprintf(k->first_error, sizeof(k->first_error), "%s: %s",
                             it->reply->error_code, it->reply->error_message);
            }
            if (h != NULL && sent_at != NULL && it->reply->request_id > 0)
                bench_hist_record(h, t - sent_at[it->reply->request_id % cap]);
            break;
        case SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_DELIVERY:
            k->deliveries++;
            break;
        case SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_CONN_OPENED:
            k->opened++;
            if (it->conn_opened->error_code != NULL && it->conn_opened->error_code[0] != '\0') {
                fprintf(stderr, "bench_cp: ConnOpen refused: %s %s\n", it->conn_opened->error_code,
                        it->conn_opened->error_message);
                exit(1);
            }
            break;
        case SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_WELCOME:
            k->welcome++;
            break;
        default:
            k->other++;
        }
    }
    protobuf_c_message_free_unpacked(msg, NULL);
}

/* --grpc: unary BroadcastToRoom calls on the stream's completion queue, tags GRPC_TAG0+slot. */
#define GRPC_TAG0 1000
struct ucall {
    grpc_call *call;
    grpc_byte_buffer *send, *recv;
    grpc_metadata_array md0, md1;
    grpc_status_code status;
    grpc_slice details;
    int64_t sent_at;
};
static struct {
    grpc_channel *ch;
    grpc_completion_queue *cq;
    struct ucall *calls;
    const char *room;
    const char *data;
    size_t data_len;
    uint64_t started, done, failed;
    bool stop;
    char first_error[160];
} G;

static void ucall_start(size_t slot)
{
    struct ucall *u = &G.calls[slot];
    memset(u, 0, sizeof(*u));
    u->call = grpc_channel_create_call(
        G.ch, NULL, GRPC_PROPAGATE_DEFAULTS, G.cq,
        grpc_slice_from_static_string("/switchboard.v1.Messages/BroadcastToRoom"), NULL,
        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    Switchboard__V1__BroadcastToRoomRequest req = SWITCHBOARD__V1__BROADCAST_TO_ROOM_REQUEST__INIT;
    req.room_id = (char *)G.room;
    req.data.data = (uint8_t *)G.data;
    req.data.len = G.data_len;
    u->send = sb_pb_pack(&req.base);
    grpc_metadata_array_init(&u->md0);
    grpc_metadata_array_init(&u->md1);
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = u->send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &u->md0;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &u->recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &u->md1;
    ops[5].data.recv_status_on_client.status = &u->status;
    ops[5].data.recv_status_on_client.status_details = &u->details;
    u->sent_at = now_ns();
    G.started++;
    if (grpc_call_start_batch(u->call, ops, 6, (void *)(intptr_t)(GRPC_TAG0 + slot), NULL) !=
        GRPC_CALL_OK) {
        fprintf(stderr, "bench_cp: BroadcastToRoom could not start\n");
        exit(1);
    }
}

static void ucall_done(size_t slot, struct bench_hist *h)
{
    struct ucall *u = &G.calls[slot];
    G.done++;
    if (h != NULL)
        bench_hist_record(h, now_ns() - u->sent_at);
    if (u->status != GRPC_STATUS_OK && G.failed++ == 0)
        snprintf(G.first_error, sizeof(G.first_error), "status %d %.*s", (int)u->status,
                 (int)GRPC_SLICE_LENGTH(u->details),
                 (const char *)GRPC_SLICE_START_PTR(u->details));
    grpc_slice_unref(u->details);
    grpc_metadata_array_destroy(&u->md0);
    grpc_metadata_array_destroy(&u->md1);
    grpc_byte_buffer_destroy(u->send);
    if (u->recv != NULL)
        grpc_byte_buffer_destroy(u->recv);
    grpc_call_unref(u->call);
    if (!G.stop)
        ucall_start(slot);
}

/* One completion (or a timeout after `wait_ms`); returns false when the stream is over. */
static bool pump(struct link *l, int wait_ms, struct counts *k, struct bench_hist *h,
                 const int64_t *sent_at, size_t cap)
{
    gpr_timespec dl =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(wait_ms, GPR_TIMESPAN));
    grpc_event ev = grpc_completion_queue_next(l->cq, dl, NULL);
    if (ev.type != GRPC_OP_COMPLETE)
        return true;
    switch ((intptr_t)ev.tag) {
    case TAG_RECV:
        l->recv_armed = false;
        if (!ev.success || l->recv_bb == NULL) {
            l->over = true;
            return false;
        }
        on_batch(l->recv_bb, k, h, sent_at, cap);
        grpc_byte_buffer_destroy(l->recv_bb);
        l->recv_bb = NULL;
        arm_recv(l);
        break;
    case TAG_SEND:
        l->sending = false;
        grpc_byte_buffer_destroy(l->send_bb);
        l->send_bb = NULL;
        if (!ev.success) {
            l->over = true;
            return false;
        }
        break;
    case TAG_STATUS:
        l->over = true;
        return false;
    default:
        if ((intptr_t)ev.tag >= GRPC_TAG0)
            ucall_done((size_t)((intptr_t)ev.tag - GRPC_TAG0), h);
        break;
    }
    return true;
}

int main(int argc, char **argv)
{
    struct opts o;
    parse(argc, argv, &o);
    signal(SIGPIPE, SIG_IGN);
    grpc_init();
    struct link l;
    memset(&l, 0, sizeof(l));
    l.cq = grpc_completion_queue_create_for_next(NULL);
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel_args args;
    grpc_arg arg = {.type = GRPC_ARG_INTEGER,
                    .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                    .value.integer = 64 << 20};
    args.num_args = 1;
    args.args = &arg;
    grpc_channel *ch = grpc_channel_create(o.cp, creds, &args);
    grpc_channel_credentials_release(creds);
    l.call = grpc_channel_create_call(
        ch, NULL, GRPC_PROPAGATE_DEFAULTS, l.cq,
        grpc_slice_from_static_string("/switchboard.internal.v1.NodeLink/Link"), NULL,
        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_metadata_array_init(&l.md);
    grpc_metadata_array trailing;
    grpc_metadata_array_init(&trailing);
    grpc_op ops[3];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    grpc_call_start_batch(l.call, ops, 1, (void *)(intptr_t)TAG_START, NULL);
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[0].data.recv_initial_metadata.recv_initial_metadata = &l.md;
    grpc_call_start_batch(l.call, ops, 1, (void *)(intptr_t)TAG_META, NULL);
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &trailing;
    ops[0].data.recv_status_on_client.status = &l.status;
    ops[0].data.recv_status_on_client.status_details = &l.details;
    grpc_call_start_batch(l.call, ops, 1, (void *)(intptr_t)TAG_STATUS, NULL);
    arm_recv(&l);

    /* Hello + one ConnOpen per connection, in one NodeBatch. */
    size_t n_setup = 1 + (size_t)o.conns;
    NodeItem *setup = calloc(n_setup, sizeof(*setup));
    NodeItem **setup_p = calloc(n_setup, sizeof(*setup_p));
    Switchboard__Internal__V1__ConnOpen *co = calloc((size_t)o.conns, sizeof(*co));
    char **ids = calloc((size_t)o.conns, sizeof(*ids));
    char **users = calloc((size_t)o.conns, sizeof(*users));
    Switchboard__Internal__V1__Hello hello = SWITCHBOARD__INTERNAL__V1__HELLO__INIT;
    char node_id[64];
    snprintf(node_id, sizeof(node_id), "bench-node-%d", (int)getpid());
    hello.node_id = node_id;
    hello.address = (char *)"127.0.0.1:1";
    hello.version = (char *)"bench";
    for (size_t i = 0; i < n_setup; i++) {
        switchboard__internal__v1__node_item__init(&setup[i]);
        setup_p[i] = &setup[i];
    }
    setup[0].kind_case = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_HELLO;
    setup[0].hello = &hello;
    for (int i = 0; i < o.conns; i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%sc%d", o.prefix, i);
        ids[i] = strdup(buf);
        snprintf(buf, sizeof(buf), "%s%d", o.prefix, i);
        users[i] = strdup(buf);
        switchboard__internal__v1__conn_open__init(&co[i]);
        co[i].request_id = (uint64_t)i + 1;
        co[i].connection_id = ids[i];
        co[i].user_id = users[i];
        co[i].transport = (char *)"websocket";
        co[i].connected_at = (int64_t)time(NULL) * 1000;
        setup[i + 1].kind_case = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_CONN_OPEN;
        setup[i + 1].conn_open = &co[i];
    }
    struct counts k;
    memset(&k, 0, sizeof(k));
    send_items(&l, setup_p, n_setup);
    int64_t t_dl = now_ns() + 60 * (int64_t)1000000000;
    while ((k.opened < (uint64_t)o.conns || l.sending) && now_ns() < t_dl)
        if (!pump(&l, 100, &k, NULL, NULL, 1))
            break;
    if (k.opened < (uint64_t)o.conns) {
        fprintf(stderr, "bench_cp: %" PRIu64 "/%d connections opened (stream over: %d)\n", k.opened,
                o.conns, (int)l.over);
        return 1;
    }

    /* The room and its members come after the connections: members that connect would each
     * announce their presence to every other member (user-targeted deliveries). The answers
     * (join events, Membership) wait in the stream meanwhile and are drained here. */
    char err[256];
    if (bench_grpc_prepare_room(o.cp, o.room, o.prefix, o.conns, 1000, 60, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_cp: room setup: %s\n", err);
        return 1;
    }
    t_dl = now_ns() + 2 * (int64_t)1000000000;
    while (!l.over && now_ns() < t_dl)
        pump(&l, 100, &k, NULL, NULL, 1);

    /* The publish items: one reusable array of `batch` requests. */
    char *data = malloc((size_t)o.data_bytes + 1);
    memset(data, 'x', (size_t)o.data_bytes);
    data[0] = '"';
    data[o.data_bytes - 1] = '"';
    data[o.data_bytes] = '\0';
    NodeItem *items = calloc((size_t)o.batch, sizeof(*items));
    NodeItem **items_p = calloc((size_t)o.batch, sizeof(*items_p));
    ClientRequest *reqs = calloc((size_t)o.batch, sizeof(*reqs));
    Switchboard__Internal__V1__PublishOp *pubs = calloc((size_t)o.batch, sizeof(*pubs));
    for (int i = 0; i < o.batch; i++) {
        switchboard__internal__v1__node_item__init(&items[i]);
        switchboard__internal__v1__client_request__init(&reqs[i]);
        switchboard__internal__v1__publish_op__init(&pubs[i]);
        pubs[i].room_id = (char *)o.room;
        pubs[i].data.data = (uint8_t *)data;
        pubs[i].data.len = (size_t)o.data_bytes;
        reqs[i].op_case = SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_MESSAGE;
        reqs[i].message = &pubs[i];
        items[i].kind_case = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_REQUEST;
        items[i].request = &reqs[i];
        items_p[i] = &items[i];
    }
    size_t cap = (size_t)o.window * 2;
    int64_t *sent_at = calloc(cap, sizeof(*sent_at));
    struct bench_hist *h = malloc(sizeof(*h));
    bench_hist_init(h);

    memset(&k, 0, sizeof(k));
    if (o.grpc > 0) {
        /* BroadcastToRoom calls; the stream only drains the deliveries. */
        G.ch = ch;
        G.cq = l.cq;
        G.room = o.room;
        G.data = data;
        G.data_len = (size_t)o.data_bytes;
        G.calls = calloc((size_t)o.grpc, sizeof(*G.calls));
        uint64_t t0g = 0, t1g = 0;
        if (o.cp_pid > 0)
            bench_proc_cpu_ticks(o.cp_pid, &t0g);
        int64_t g0 = now_ns(), gend = g0 + (int64_t)(o.duration * 1e9);
        for (int i = 0; i < o.grpc; i++)
            ucall_start((size_t)i);
        while (!l.over && now_ns() < gend)
            pump(&l, 100, &k, h, NULL, 1);
        G.stop = true;
        int64_t gdl = now_ns() + 10 * (int64_t)1000000000;
        while (!l.over && G.done < G.started && now_ns() < gdl)
            pump(&l, 100, &k, h, NULL, 1);
        int64_t g1 = now_ns();
        if (o.cp_pid > 0)
            bench_proc_cpu_ticks(o.cp_pid, &t1g);
        double secs = (double)(g1 - g0) / 1e9, rate = (double)G.done / secs;
        double cpu = o.cp_pid > 0
                         ? (double)(t1g - t0g) / (double)bench_proc_ticks_per_sec() / secs * 100.0
                         : 0;
        printf("bench_cp: BroadcastToRoom conns=%d calls_in_flight=%d data=%dB duration=%.2fs\n",
               o.conns, o.grpc, o.data_bytes, secs);
        printf("  calls=%" PRIu64 " failed=%" PRIu64 " deliveries=%" PRIu64 "\n", G.done, G.failed,
               k.deliveries);
        if (G.failed > 0)
            printf("  first error: %s\n", G.first_error);
        printf("  publishes/s=%.0f  cp_cpu=%.1f%%  publishes/s per core=%.0f\n", rate, cpu,
               cpu > 0 ? rate / (cpu / 100.0) : 0);
        printf("  call latency us: p50=%.0f p99=%.0f\n", (double)bench_hist_quantile(h, 0.5) / 1e3,
               (double)bench_hist_quantile(h, 0.99) / 1e3);
        return G.failed == 0 && G.done > 0 ? 0 : 1;
    }
    uint64_t next_id = 1000000, sent = 0;
    uint64_t ticks0 = 0, ticks1 = 0;
    if (o.cp_pid > 0)
        bench_proc_cpu_ticks(o.cp_pid, &ticks0);
    int64_t t0 = now_ns(), t_end = t0 + (int64_t)(o.duration * 1e9);
    size_t conn_rr = 0;
    while (!l.over) {
        int64_t t = now_ns();
        if (t >= t_end)
            break;
        bool may = !l.sending && sent - k.replies + (uint64_t)o.batch <= (uint64_t)o.window;
        if (may && o.rate > 0)
            may = (double)(sent + (uint64_t)o.batch) <= o.rate * (double)(t - t0) / 1e9;
        if (may) {
            for (int i = 0; i < o.batch; i++) {
                reqs[i].request_id = next_id;
                reqs[i].connection_id = ids[conn_rr];
                reqs[i].user_id = users[conn_rr];
                conn_rr = (conn_rr + 1) % (size_t)o.conns;
                sent_at[next_id % cap] = t;
                next_id++;
            }
            sent += (uint64_t)o.batch;
            if (!send_items(&l, items_p, (size_t)o.batch))
                break;
        }
        pump(&l, o.rate > 0 ? 1 : 100, &k, h, sent_at, cap);
    }
    /* Drain the answers of what was sent (bounded). */
    int64_t t_stop = now_ns();
    t_dl = t_stop + 10 * (int64_t)1000000000;
    while (!l.over && (k.replies < sent || l.sending) && now_ns() < t_dl)
        pump(&l, 100, &k, h, sent_at, cap);
    int64_t t_done = now_ns();
    if (o.cp_pid > 0)
        bench_proc_cpu_ticks(o.cp_pid, &ticks1);

    double secs = (double)(t_done - t0) / 1e9;
    double rate = (double)k.replies / secs;
    double cpu = o.cp_pid > 0
                     ? (double)(ticks1 - ticks0) / (double)bench_proc_ticks_per_sec() / secs * 100.0
                     : 0;
    printf("bench_cp: conns=%d batch=%d window=%d rate=%s data=%dB duration=%.2fs\n", o.conns,
           o.batch, o.window, o.rate > 0 ? "paced" : "flat-out", o.data_bytes, secs);
    printf("  sent=%" PRIu64 " acked=%" PRIu64 " errors=%" PRIu64 " deliveries=%" PRIu64 "\n", sent,
           k.replies, k.errors, k.deliveries);
    if (k.errors > 0)
        printf("  first error: %s\n", k.first_error);
    printf("  publishes/s=%.0f  cp_cpu=%.1f%%  publishes/s per core=%.0f\n", rate, cpu,
           cpu > 0 ? rate / (cpu / 100.0) : 0);
    printf("  ack latency us: p50=%.0f p90=%.0f p99=%.0f p99.9=%.0f max=%.0f\n",
           (double)bench_hist_quantile(h, 0.5) / 1e3, (double)bench_hist_quantile(h, 0.9) / 1e3,
           (double)bench_hist_quantile(h, 0.99) / 1e3, (double)bench_hist_quantile(h, 0.999) / 1e3,
           (double)h->max / 1e3);

    grpc_call_cancel(l.call, NULL);
    int64_t t_q = now_ns() + 2 * (int64_t)1000000000;
    while (!l.over && now_ns() < t_q)
        pump(&l, 100, &k, NULL, sent_at, cap);
    return (k.replies == sent && k.errors == 0) ? 0 : 1;
}
