/* NodeLink stream mechanics on gRPC core. Per stream, at most one batch of each kind is in
 * flight: RECV_MESSAGE (re-armed only after every item of the previous NodeBatch is handled,
 * so items are processed strictly in order), SEND_MESSAGE (fed from the node's queue: all
 * queued items go out as one ControlBatch when the previous send completes), and
 * RECV_CLOSE_ON_SERVER (fires when the stream is over, cancelled or not). The stream is freed
 * when no batch and no item is outstanding (a reference count). */
#include "cp_link.h"

#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>

#include "cp_nodelink.h"
#include "cp_tag.h"
#include "sb_log.h"
#include "sb_pb.h"
#include "sb_time.h"

#define MAX_BATCH_IN  (64 * 1024 * 1024)
#define MAX_BATCH_OUT (4 * 1024 * 1024)

struct stream {
    struct cp_node node; /* first: node->owner points back here */
    struct cp_ctx *c;
    grpc_call *call;
    struct cp_tag meta_tag, recv_tag, send_tag, close_tag, status_tag;
    int refs;
    grpc_byte_buffer *recv_bb;
    grpc_byte_buffer *send_bb;
    bool sending;
    bool rx_done;     /* the node half-closed, or receiving failed */
    bool half_closed; /* receiving ended without an error */
    bool over;        /* RECV_CLOSE_ON_SERVER fired: nothing more can be sent */
    bool ended;       /* cp_nodelink_node_ended ran */
    bool killed;      /* cancelled by us */
    bool status_sent;
    int cancelled;
    grpc_slice status_details;
    Switchboard__Internal__V1__NodeBatch *batch;
    size_t next_item;
    bool waiting;               /* an item is being handled */
    bool processing;            /* inside process() */
    struct stream *prev, *next; /* all streams, in c->links */
};

static void unref(struct stream *s);
static void process(struct stream *s);
static void arm_recv(struct stream *s);

static void list_add(struct stream *s)
{
    struct stream *head = s->c->links;
    s->next = head;
    s->prev = NULL;
    if (head != NULL)
        head->prev = s;
    s->c->links = s;
}

static void list_remove(struct stream *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        s->c->links = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

static void stream_free(struct stream *s)
{
    /* Off the flush list: it may still name this node. */
    struct cp_node **pp = &s->c->fan.dirty_head;
    while (*pp != NULL) {
        if (*pp == &s->node) {
            *pp = s->node.dirty_next;
            break;
        }
        pp = &(*pp)->dirty_next;
    }
    list_remove(s);
    s->c->presence.conn_gen++; /* fan-out caches may name this node */
    if (s->batch != NULL)
        protobuf_c_message_free_unpacked(&s->batch->base, NULL);
    if (s->recv_bb != NULL)
        grpc_byte_buffer_destroy(s->recv_bb);
    if (s->send_bb != NULL)
        grpc_byte_buffer_destroy(s->send_bb);
    if (s->status_sent)
        grpc_slice_unref(s->status_details);
    if (s->call != NULL)
        grpc_call_unref(s->call);
    cp_node_fini(&s->node);
    free(s);
}

static void unref(struct stream *s)
{
    if (--s->refs == 0)
        stream_free(s);
}

/* The node is gone for the control plane: connections closed, presence announced. */
static void end(struct stream *s)
{
    if (s->ended)
        return;
    s->ended = true;
    cp_nodelink_node_ended(s->c, &s->node);
}

static void kill_stream(struct stream *s, grpc_status_code code, const char *why)
{
    if (s->killed || s->over)
        return;
    s->killed = true;
    SB_LOG_WARN("cp", "ending node stream", "node=%s reason=\"%s\"", s->node.id ? s->node.id : "-",
                why);
    grpc_call_cancel_with_status(s->call, code, why, NULL);
}

static void node_kill(struct cp_node *n, const char *why)
{
    kill_stream((struct stream *)n->owner, GRPC_STATUS_UNAVAILABLE, why);
}

static bool start(struct stream *s, grpc_op *ops, size_t n, struct cp_tag *tag)
{
    s->refs++;
    grpc_call_error err = grpc_call_start_batch(s->call, ops, n, tag, NULL);
    if (err != GRPC_CALL_OK) {
        SB_LOG_ERROR("cp", "NodeLink batch refused", "node=%s err=%d",
                     s->node.id ? s->node.id : "-", (int)err);
        s->refs--;
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------- sending */

static void send_status(struct stream *s)
{
    if (s->status_sent || s->over || s->sending)
        return;
    s->status_sent = true;
    s->status_details = grpc_slice_from_static_string("");
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    op.data.send_status_from_server.status = GRPC_STATUS_OK;
    op.data.send_status_from_server.status_details = &s->status_details;
    start(s, &op, 1, &s->status_tag);
}

void cp_link_flush(struct cp_node *n)
{
    struct stream *s = n->owner;
    if (s == NULL || s->sending || s->over || s->status_sent || n->out.len == 0)
        return;
    size_t len = cp_node_batch_len(n, MAX_BATCH_OUT);
    grpc_slice slice;
    if (len == n->out.len && !n->out.failed) {
        /* The whole queue goes: hand its storage to gRPC instead of copying it. */
        size_t taken = 0;
        char *p = cp_buf_take(&n->out, &taken);
        slice = grpc_slice_new(p, taken, free);
    } else {
        slice = grpc_slice_from_copied_buffer(n->out.data, len);
        cp_node_consume(n, len);
    }
    s->send_bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = s->send_bb;
    s->sending = true;
    if (!start(s, &op, 1, &s->send_tag)) {
        s->sending = false;
        grpc_byte_buffer_destroy(s->send_bb);
        s->send_bb = NULL;
    }
}

static void on_send(struct cp_tag *t, bool ok)
{
    struct stream *s = CP_CONTAINER_OF(t, struct stream, send_tag);
    s->sending = false;
    grpc_byte_buffer_destroy(s->send_bb);
    s->send_bb = NULL;
    if (ok) {
        cp_link_flush(&s->node);
        if (s->rx_done && !s->sending)
            send_status(s);
    }
    unref(s);
}

/* ---------------------------------------------------------------- receiving */

static void item_done(void *arg, const char *fatal)
{
    struct stream *s = arg;
    if (fatal != NULL) {
        /* "permission_denied: ..." ends the stream with that code's status; a bare sentence
         * is a protocol violation. */
        enum sb_code code = sb_code_from_status_message(fatal, NULL);
        kill_stream(s,
                    code != SB_CODE_NONE ? (grpc_status_code)sb_code_info(code)->grpc_status
                                         : GRPC_STATUS_INVALID_ARGUMENT,
                    fatal);
    }
    s->waiting = false;
    if (!s->processing)
        process(s);
    unref(s);
}

static void process(struct stream *s)
{
    s->processing = true;
    while (s->batch != NULL && !s->waiting) {
        if (s->killed || s->over || s->next_item >= s->batch->n_items) {
            protobuf_c_message_free_unpacked(&s->batch->base, NULL);
            s->batch = NULL;
            if (!s->killed && !s->over)
                arm_recv(s);
            break;
        }
        Switchboard__Internal__V1__NodeItem *item = s->batch->items[s->next_item++];
        s->waiting = true;
        s->refs++;
        cp_nodelink_handle(s->c, &s->node, item, item_done, s);
    }
    s->processing = false;
}

static void on_recv(struct cp_tag *t, bool ok)
{
    struct stream *s = CP_CONTAINER_OF(t, struct stream, recv_tag);
    grpc_byte_buffer *bb = s->recv_bb;
    s->recv_bb = NULL;
    if (!ok || bb == NULL) {
        /* Half-close (or failure): the node is gone; answer with a status once idle. */
        /* A killed peer also looks like a half-close here: etcd mode decides "clean" only
         * when RECV_CLOSE_ON_SERVER says the call was not cancelled (on_close). */
        if (ok)
            s->half_closed = true;
        s->rx_done = true;
        if (!s->c->distributed)
            end(s);
        send_status(s);
        unref(s);
        return;
    }
    s->node.last_rx_mono = sb_time_mono_ms();
    ProtobufCMessage *msg = NULL;
    enum sb_err err =
        sb_pb_unpack(bb, &switchboard__internal__v1__node_batch__descriptor, MAX_BATCH_IN, &msg);
    grpc_byte_buffer_destroy(bb);
    if (err != SB_OK) {
        kill_stream(s, GRPC_STATUS_INVALID_ARGUMENT, "invalid_message: not a NodeBatch");
        unref(s);
        return;
    }
    s->batch = (Switchboard__Internal__V1__NodeBatch *)msg;
    s->next_item = 0;
    process(s);
    unref(s);
}

static void arm_recv(struct stream *s)
{
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &s->recv_bb;
    start(s, &op, 1, &s->recv_tag);
}

/* ---------------------------------------------------------------- lifecycle */

static void on_meta(struct cp_tag *t, bool ok)
{
    unref(CP_CONTAINER_OF(t, struct stream, meta_tag));
}

static void on_status(struct cp_tag *t, bool ok)
{
    unref(CP_CONTAINER_OF(t, struct stream, status_tag));
}

static void on_close(struct cp_tag *t, bool ok)
{
    struct stream *s = CP_CONTAINER_OF(t, struct stream, close_tag);
    s->over = true;
    s->node.clean_end = s->half_closed && !s->cancelled;
    end(s);
    unref(s);
}

void cp_link_accept(struct cp_ctx *c, grpc_completion_queue *cq, grpc_call *call)
{
    (void)cq;
    struct stream *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        SB_LOG_ERROR("cp", "out of memory accepting a node stream", NULL);
        grpc_call_cancel_with_status(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
        grpc_call_unref(call);
        return;
    }
    cp_node_init(&s->node, c->set.node_queue_limit);
    s->node.owner = s;
    s->node.kill = node_kill;
    s->node.last_rx_mono = sb_time_mono_ms();
    s->c = c;
    s->call = call;
    s->meta_tag.fn = on_meta;
    s->recv_tag.fn = on_recv;
    s->send_tag.fn = on_send;
    s->close_tag.fn = on_close;
    s->status_tag.fn = on_status;
    s->refs = 1; /* dropped at the end of this function */
    list_add(s);

    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &s->cancelled;
    start(s, &op, 1, &s->close_tag);
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_INITIAL_METADATA;
    start(s, &op, 1, &s->meta_tag);
    if (c->stopping)
        kill_stream(s, GRPC_STATUS_UNAVAILABLE, "unavailable: control plane shutting down");
    else
        arm_recv(s);
    unref(s);
}

void cp_link_tick(struct cp_ctx *c, int64_t mono_ms)
{
    int64_t limit = 3 * (c->set.heartbeat_interval_ms > 0 ? c->set.heartbeat_interval_ms : 5000);
    for (struct stream *s = c->links; s != NULL; s = s->next) {
        /* Only while waiting for input: a long Store answer is not the node's silence. */
        if (!s->killed && !s->over && s->batch == NULL && mono_ms - s->node.last_rx_mono > limit)
            kill_stream(s, GRPC_STATUS_UNAVAILABLE, "no heartbeat for 3 intervals");
    }
}

void cp_link_stop_all(struct cp_ctx *c)
{
    for (struct stream *s = c->links; s != NULL; s = s->next)
        kill_stream(s, GRPC_STATUS_UNAVAILABLE, "unavailable: control plane shutting down");
}

void cp_link_free_all(struct cp_ctx *c)
{
    while (c->links != NULL) {
        struct stream *s = c->links;
        SB_LOG_WARN("cp", "freeing a node stream left after shutdown", "refs=%d", s->refs);
        end(s);
        stream_free(s);
    }
}
