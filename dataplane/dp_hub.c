/* Request/answer plumbing between client sessions and the NodeLink, and fan-out of
 * deliveries. A delivery is wrapped once into a dp_buf and referenced by every target's
 * outbox. Answers are matched to requests through each session's pending list (the control
 * plane answers in order, so the match is nearly always the head). */
#include "dp_hub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_map.h"
#include "dp_metrics.h"
#include "dp_router.h"
#include "sb_log.h"
#include "sb_time.h"

#define MOD "dp_hub"

typedef Switchboard__Internal__V1__NodeItem NodeItem;
typedef Switchboard__Internal__V1__ControlItem ControlItem;
typedef Switchboard__Internal__V1__ClientRequest ClientRequest;

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
    uint64_t gen;
    uint64_t delivered;
};

int dp_hub_http_status(const char *code)
{
    enum sb_code c = sb_code_from_name(code);
    return c == SB_CODE_NONE ? 400 : sb_code_info(c)->http_status;
}

/* ---- output helpers ---- */

static void push(struct dp_session *s, struct dp_buf *b)
{
    if (b == NULL)
        return;
    enum sb_err e = dp_session_push(s, b);
    if (e == SB_EFULL) {
        if (s->policy == DP_OVERFLOW_DROP)
            dp_metrics.outbox_dropped_total++;
    }
}

static struct dp_buf *take_text(char *text, size_t len, enum sb_err e)
{
    if (e != SB_OK)
        return NULL;
    struct dp_buf *b = dp_buf_create(text, len, NULL, 0);
    free(text);
    return b;
}

static void answer_post(struct dp_post *post, int status, struct dp_buf *b)
{
    if (b == NULL) {
        char *t;
        size_t n;
        enum sb_err e = dp_frame_format_error(NULL, "internal", "out of memory", &t, &n);
        b = take_text(t, n, e);
        status = 500;
    }
    dp_buf_unref(post->answer);
    post->answer = b;
    post->status = status;
    post->pending = NULL;
    if (post->ready != NULL)
        post->ready(post);
}

void dp_hub_send_error(struct dp_hub *h, struct dp_session *s, struct dp_post *post,
                       const char *ref, const char *code, const char *message)
{
    (void)h;
    char *t = NULL;
    size_t n = 0;
    enum sb_err e = dp_frame_format_error(ref, code, message, &t, &n);
    struct dp_buf *b = take_text(t, n, e);
    if (post != NULL) {
        answer_post(post, dp_hub_http_status(code), b);
        return;
    }
    if (s != NULL)
        push(s, b);
    dp_buf_unref(b);
}

static void send_frame(struct dp_session *s, struct dp_post *post, char *text, size_t len,
                       enum sb_err e)
{
    struct dp_buf *b = take_text(text, len, e);
    if (post != NULL) {
        answer_post(post, 200, b);
        return;
    }
    push(s, b);
    dp_buf_unref(b);
}

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
    NodeItem it = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__INIT;
    it.kind_case = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_CONN_OPEN;
    it.conn_open = &co;
    if (send_item(h, &it) != SB_OK) {
        dp_hub_send_error(h, s, NULL, NULL, "unavailable", "control plane unavailable; retry");
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
                                       const char *resume, const struct dp_session_ops *ops,
                                       void *wsi)
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
    dp_metrics.connections_total++;
    if (t == DP_TRANSPORT_WS)
        dp_metrics.connections_ws++;
    else
        dp_metrics.connections_sse++;
    SB_LOG_DEBUG(MOD, "session opening", "conn=%s user=%s transport=%s", s->connection_id,
                 s->user_id, t == DP_TRANSPORT_WS ? "websocket" : "sse");
    if (!dp_hub_ready(h)) {
        dp_metrics.connections_rejected_total++;
        dp_hub_send_error(h, s, NULL, NULL, "unavailable", "control plane unavailable; retry");
        dp_session_close_after_drain(s, 1011, "control plane unavailable");
        return s;
    }
    send_conn_open(h, s, false);
    return s;
}

static void fail_pending(struct dp_hub *h, struct dp_session *s, const char *code,
                         const char *message, bool to_session)
{
    struct dp_pending *p;
    while ((p = dp_session_pending_take_first(s)) != NULL) {
        dp_metrics.requests_unavailable_total++;
        if (p->post != NULL)
            dp_hub_send_error(h, s, p->post, p->has_ref ? p->ref : NULL, code, message);
        else if (to_session)
            dp_hub_send_error(h, s, NULL, p->has_ref ? p->ref : NULL, code, message);
        dp_session_pending_free(p);
    }
}

void dp_hub_session_closed(struct dp_hub *h, struct dp_session *s)
{
    if (s == NULL)
        return;
    sb_map_remove(h->sessions, s->connection_id);
    if (s->indexed)
        dp_router_remove_session(h->router, s->user_id, s);
    fail_pending(h, s, "unavailable", "connection closed", false);
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
    while (sb_map_next(h->sessions, &it, NULL, &v)) {
        struct dp_session *s = v;
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

void dp_hub_post_abandoned(struct dp_hub *h, struct dp_post *post)
{
    (void)h;
    if (post->pending != NULL) {
        post->pending->post = NULL;
        post->pending = NULL;
    }
}

bool dp_hub_ready(const struct dp_hub *h)
{
    return h->link != NULL && dp_link_is_up(h->link);
}

/* ---- client frames ---- */

static void forward(struct dp_hub *h, struct dp_session *s, struct dp_post *post,
                    const struct dp_frame *f)
{
    const char *ref = f->ref;
    if (!dp_hub_ready(h)) {
        dp_metrics.requests_unavailable_total++;
        dp_hub_send_error(h, s, post, ref, "unavailable", "control plane unavailable; retry");
        return;
    }
    struct dp_pending *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        dp_hub_send_error(h, s, post, ref, "internal", "out of memory");
        return;
    }
    p->request_id = dp_link_next_id(h->link);
    p->type = f->type;
    if (ref != NULL) {
        p->has_ref = true;
        snprintf(p->ref, sizeof(p->ref), "%s", ref);
    }
    if (f->room_id != NULL)
        snprintf(p->room_id, sizeof(p->room_id), "%s", f->room_id);
    else if (f->channel_id != NULL)
        snprintf(p->room_id, sizeof(p->room_id), "%s", f->channel_id);

    ClientRequest rq = SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__INIT;
    rq.request_id = p->request_id;
    rq.connection_id = s->connection_id;
    rq.user_id = s->user_id;
    /* Publishes may be re-sent to another control plane after a failover: the key lets the
     * sequencer recognise one it already stored. */
    char idem[SB_IDENT_MAX + SB_ID_LEN + 32];
    if (f->type == DP_FRAME_MESSAGE || f->type == DP_FRAME_PUBLISH) {
        snprintf(idem, sizeof(idem), "%s/%s/%llu", h->cfg->node_id, s->connection_id,
                 (unsigned long long)p->request_id);
        rq.idempotency_key = idem;
    }
    Switchboard__Internal__V1__JoinOp join = SWITCHBOARD__INTERNAL__V1__JOIN_OP__INIT;
    Switchboard__Internal__V1__LeaveOp leave = SWITCHBOARD__INTERNAL__V1__LEAVE_OP__INIT;
    Switchboard__Internal__V1__PublishOp pub = SWITCHBOARD__INTERNAL__V1__PUBLISH_OP__INIT;
    Switchboard__Internal__V1__TypingOp typing = SWITCHBOARD__INTERNAL__V1__TYPING_OP__INIT;
    Switchboard__Internal__V1__PresenceOp pres = SWITCHBOARD__INTERNAL__V1__PRESENCE_OP__INIT;
    Switchboard__Internal__V1__HistoryOp hist = SWITCHBOARD__INTERNAL__V1__HISTORY_OP__INIT;
    Switchboard__Internal__V1__SubscribeOp sub = SWITCHBOARD__INTERNAL__V1__SUBSCRIBE_OP__INIT;
    Switchboard__Internal__V1__MessageUpdateOp mu =
        SWITCHBOARD__INTERNAL__V1__MESSAGE_UPDATE_OP__INIT;
    Switchboard__Internal__V1__PublishOp__MetadataEntry meta[DP_FRAME_META_MAX];
    Switchboard__Internal__V1__PublishOp__MetadataEntry *metap[DP_FRAME_META_MAX];
#define S(x) ((char *)((x) != NULL ? (x) : ""))
    switch (f->type) {
    case DP_FRAME_JOIN:
        join.room_id = S(f->room_id);
        join.has_since = f->has_since;
        join.since = f->since;
        rq.op_case = SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_JOIN;
        rq.join = &join;
        break;
    case DP_FRAME_LEAVE:
        leave.room_id = S(f->room_id);
        rq.op_case = SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_LEAVE;
        rq.leave = &leave;
        break;
    case DP_FRAME_MESSAGE:
    case DP_FRAME_PUBLISH:
        pub.room_id = S(f->room_id);
        pub.channel_id = S(f->channel_id);
        pub.data.data = (uint8_t *)f->data;
        pub.data.len = f->data_len;
        pub.thread_id = S(f->thread_id);
        for (size_t i = 0; i < f->n_metadata && i < DP_FRAME_META_MAX; i++) {
            Switchboard__Internal__V1__PublishOp__MetadataEntry e =
                SWITCHBOARD__INTERNAL__V1__PUBLISH_OP__METADATA_ENTRY__INIT;
            e.key = S(f->metadata[i].key);
            e.value = S(f->metadata[i].value);
            meta[i] = e;
            metap[i] = &meta[i];
        }
        pub.n_metadata = f->n_metadata;
        pub.metadata = metap;
        if (f->type == DP_FRAME_MESSAGE) {
            rq.op_case = SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_MESSAGE;
            rq.message = &pub;
        } else {
            rq.op_case = SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_PUBLISH;
            rq.publish = &pub;
        }
        break;
    case DP_FRAME_TYPING:
        typing.room_id = S(f->room_id);
        typing.typing = f->typing;
        rq.op_case = SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_TYPING;
        rq.typing = &typing;
        break;
    case DP_FRAME_PRESENCE:
        pres.status = S(f->status);
        pres.device_type = S(f->device_type);
        pres.device_name = S(f->device_name);
        pres.activity_type = S(f->activity_type);
        pres.activity_detail = S(f->activity_detail);
        pres.custom_status = S(f->custom_status);
        rq.op_case = SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_PRESENCE;
        rq.presence = &pres;
        break;
    case DP_FRAME_HISTORY:
        hist.room_id = S(f->room_id);
        hist.limit = f->limit;
        hist.has_before = f->has_before;
        hist.before = f->before;
        hist.has_after = f->has_after;
        hist.after = f->after;
        rq.op_case = SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_HISTORY;
        rq.history = &hist;
        break;
    case DP_FRAME_SUBSCRIBE:
    case DP_FRAME_UNSUBSCRIBE:
        sub.channel_id = S(f->channel_id);
        sub.filter = S(f->filter);
        if (f->type == DP_FRAME_SUBSCRIBE) {
            rq.op_case = SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_SUBSCRIBE;
            rq.subscribe = &sub;
        } else {
            rq.op_case = SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_UNSUBSCRIBE;
            rq.unsubscribe = &sub;
        }
        break;
    case DP_FRAME_EDIT:
    case DP_FRAME_DELETE:
    case DP_FRAME_REACT:
        mu.room_id = S(f->room_id);
        mu.message_id = S(f->message_id);
        mu.data.data = (uint8_t *)f->data;
        mu.data.len = f->data_len;
        mu.emoji = S(f->emoji);
        mu.remove = f->remove;
        if (f->type == DP_FRAME_EDIT) {
            rq.op_case = SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_EDIT_MESSAGE;
            rq.edit_message = &mu;
        } else if (f->type == DP_FRAME_DELETE) {
            rq.op_case = SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_DELETE_MESSAGE;
            rq.delete_message = &mu;
        } else {
            rq.op_case = SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_REACT;
            rq.react = &mu;
        }
        break;
    case DP_FRAME_PING:
        free(p);
        return;
    }
#undef S
    NodeItem it = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__INIT;
    it.kind_case = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_REQUEST;
    it.request = &rq;
    if (dp_link_pack(&it, &p->item, &p->item_len) != SB_OK) {
        free(p);
        dp_hub_send_error(h, s, post, ref, "internal", "out of memory");
        return;
    }
    if (dp_session_pending_add(s, p, (size_t)h->cfg->max_pending) != SB_OK) {
        dp_session_pending_free(p);
        dp_hub_send_error(h, s, post, ref, "rate_limited",
                          "too many requests waiting for an answer on this connection");
        return;
    }
    /* While a new primary is adopting the node, the request waits here and goes out from
     * link_ready (after the session's ConnOpen). */
    enum sb_err e = SB_OK;
    if (dp_link_primary_ready(h->link)) {
        e = dp_link_send_packed(h->link, p->item, p->item_len);
        p->sent_gen = dp_link_primary_gen(h->link);
    }
    if (e != SB_OK) {
        dp_session_pending_free(dp_session_pending_take(s, p->request_id));
        dp_metrics.requests_unavailable_total++;
        dp_hub_send_error(h, s, post, ref, "unavailable",
                          e == SB_EFULL ? "control plane link congested; retry"
                                        : "control plane unavailable; retry");
        return;
    }
    dp_metrics.requests_total++;
    if (post != NULL) {
        p->post = post;
        post->pending = p;
    }
}

void dp_hub_client_frame(struct dp_hub *h, struct dp_session *s, const char *text, size_t len,
                         struct dp_post *post)
{
    dp_metrics.frames_in_total++;
    if (s->state == DP_SESSION_CLOSING && post == NULL)
        return;
    struct dp_frame f;
    struct dp_frame_error err;
    if (dp_frame_parse(text, len, &f, &err) != SB_OK) {
        dp_metrics.frames_invalid_total++;
        dp_hub_send_error(h, s, post, err.has_ref ? err.ref : NULL, err.code, err.message);
        return;
    }
    if (f.type == DP_FRAME_PING) {
        char *t;
        size_t n;
        enum sb_err e = dp_frame_format_pong(f.ref, &t, &n);
        send_frame(s, post, t, n, e);
    } else {
        forward(h, s, post, &f);
    }
    dp_frame_fini(&f);
}

static void sse_request(struct dp_hub *h, struct dp_session *s, enum dp_frame_type type,
                        const char *id, int64_t since)
{
    struct dp_frame f;
    memset(&f, 0, sizeof(f));
    f.type = type;
    if (type == DP_FRAME_JOIN) {
        f.room_id = id;
        f.has_since = since >= 0;
        f.since = since >= 0 ? since : 0;
        if (!sb_ident_is_valid(id)) {
            dp_hub_send_error(h, s, NULL, NULL, "invalid_message",
                              "invalid room_id in ?rooms=: 1 to 128 characters of A-Z a-z 0-9 . _ "
                              ": @ -");
            return;
        }
    } else {
        f.channel_id = id;
        if (!sb_ident_is_valid_channel(id)) {
            dp_hub_send_error(h, s, NULL, NULL, "invalid_message",
                              "invalid channel_id in ?channels=: 1 to 128 characters of A-Z a-z "
                              "0-9 . _ : @ -");
            return;
        }
    }
    forward(h, s, NULL, &f);
}

void dp_hub_sse_join(struct dp_hub *h, struct dp_session *s, const char *room_id, int64_t since)
{
    sse_request(h, s, DP_FRAME_JOIN, room_id, since);
}

void dp_hub_sse_subscribe(struct dp_hub *h, struct dp_session *s, const char *channel_id)
{
    sse_request(h, s, DP_FRAME_SUBSCRIBE, channel_id, -1);
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
        dp_hub_send_error(h, s, NULL, NULL, co->error_code, co->error_message);
        bool internal =
            strcmp(co->error_code, "internal") == 0 || strcmp(co->error_code, "unavailable") == 0;
        s->open_request_id = 0; /* the control plane does not hold it */
        dp_session_close_after_drain(s, internal ? 1011 : 1008, co->error_code);
        return;
    }
    if (!s->indexed) {
        if (dp_router_add_session(h->router, s->user_id, s) != SB_OK) {
            dp_hub_send_error(h, s, NULL, NULL, "internal", "out of memory");
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
        struct dp_buf *b = take_text(t, n, e);
        if (b != NULL)
            dp_session_push_front(s, b);
        dp_buf_unref(b);
        SB_LOG_DEBUG(MOD, "session open", "conn=%s user=%s rooms=%zu", s->connection_id, s->user_id,
                     co->n_rooms);
    }
}

static void push_replay(struct dp_session *s, const ProtobufCBinaryData *m)
{
    char room[SB_IDENT_MAX + 1];
    int64_t seq = 0;
    bool tagged =
        dp_frame_peek_room_seq((const char *)m->data, m->len, room, sizeof(room), &seq) == SB_OK;
    struct dp_buf *b =
        dp_buf_create((const char *)m->data, m->len, tagged ? room : NULL, tagged ? seq : 0);
    push(s, b);
    dp_buf_unref(b);
}

static void on_reply(struct dp_hub *h, const Switchboard__Internal__V1__Reply *r)
{
    struct dp_session *s = sb_map_get(h->sessions, r->connection_id);
    if (s == NULL)
        return;
    struct dp_pending *p = dp_session_pending_take(s, r->request_id);
    if (p == NULL)
        return; /* answered `unavailable` already */
    const char *ref = p->has_ref ? p->ref : NULL;
    struct dp_post *post = p->post;
    if (post != NULL)
        post->pending = NULL;
    /* A request re-sent after a failover may have been applied by the control plane that
     * died: its "already done" answer is the success the client is owed. */
    bool done_before =
        p->resent &&
        ((p->type == DP_FRAME_LEAVE && strcmp(r->error_code, "not_room_member") == 0) ||
         (p->type == DP_FRAME_JOIN && strcmp(r->error_code, "already_room_member") == 0) ||
         (p->type == DP_FRAME_SUBSCRIBE && strcmp(r->error_code, "already_subscribed") == 0) ||
         (p->type == DP_FRAME_UNSUBSCRIBE && strcmp(r->error_code, "not_subscribed") == 0));
    if (r->error_code[0] != '\0' && !done_before) {
        dp_hub_send_error(h, s, post, ref, r->error_code, r->error_message);
        dp_session_pending_free(p);
        return;
    }
    char *t = NULL;
    size_t n = 0;
    enum sb_err e = SB_OK;
    switch (p->type) {
    case DP_FRAME_JOIN:
        dp_router_set_room(h->router, s->user_id, p->room_id, true);
        e = dp_frame_format_ack(ref, p->room_id, NULL, false, 0, &t, &n);
        send_frame(s, post, t, n, e);
        if (r->history_gap)
            dp_hub_send_error(h, s, NULL, ref, "history_gap",
                              "some messages asked for are older than the room's history");
        for (size_t i = 0; i < r->n_messages; i++)
            push_replay(s, &r->messages[i]);
        break;
    case DP_FRAME_LEAVE:
        dp_router_set_room(h->router, s->user_id, p->room_id, false);
        e = dp_frame_format_ack(ref, NULL, NULL, false, 0, &t, &n);
        send_frame(s, post, t, n, e);
        break;
    case DP_FRAME_SUBSCRIBE:
    case DP_FRAME_UNSUBSCRIBE:
        dp_router_set_channel(h->router, s->user_id, p->room_id, p->type == DP_FRAME_SUBSCRIBE);
        e = dp_frame_format_ack(ref, NULL, NULL, false, 0, &t, &n);
        send_frame(s, post, t, n, e);
        break;
    case DP_FRAME_MESSAGE:
        e = dp_frame_format_ack(ref, NULL, r->message_id, true, r->seq, &t, &n);
        send_frame(s, post, t, n, e);
        break;
    case DP_FRAME_PUBLISH:
        e = dp_frame_format_ack(ref, NULL, r->message_id[0] ? r->message_id : NULL, false, 0, &t,
                                &n);
        send_frame(s, post, t, n, e);
        break;
    case DP_FRAME_TYPING:
        /* No answer on success over WebSocket; a POST still needs one. */
        if (post != NULL) {
            e = dp_frame_format_ack(ref, NULL, NULL, false, 0, &t, &n);
            send_frame(s, post, t, n, e);
        }
        break;
    case DP_FRAME_PRESENCE:
    case DP_FRAME_EDIT:
    case DP_FRAME_DELETE:
    case DP_FRAME_REACT:
        e = dp_frame_format_ack(ref, NULL, NULL, false, 0, &t, &n);
        send_frame(s, post, t, n, e);
        break;
    case DP_FRAME_HISTORY: {
        const char **msgs = calloc(r->n_messages + 1, sizeof(*msgs));
        size_t *lens = calloc(r->n_messages + 1, sizeof(*lens));
        if (msgs == NULL || lens == NULL) {
            e = SB_ENOMEM;
        } else {
            for (size_t i = 0; i < r->n_messages; i++) {
                msgs[i] = (const char *)r->messages[i].data;
                lens[i] = r->messages[i].len;
            }
            e = dp_frame_format_history(ref, p->room_id, msgs, lens, r->n_messages, &t, &n);
        }
        free(msgs);
        free(lens);
        send_frame(s, post, t, n, e);
        break;
    }
    case DP_FRAME_PING:
        break;
    }
    dp_session_pending_free(p);
}

struct fan {
    struct dp_hub *h;
    const Switchboard__Internal__V1__Delivery *d;
    struct dp_buf *b;
};

static void mark_served(struct dp_session *s, void *arg)
{
    s->mark = ((struct dp_hub *)arg)->gen;
}

static void fan_one(struct dp_session *s, void *arg)
{
    struct fan *f = arg;
    if (s->mark == f->h->gen || s->state != DP_SESSION_OPEN)
        return;
    s->mark = f->h->gen;
    if (dp_session_push(s, f->b) == SB_OK) {
        dp_metrics.delivery_targets_total++;
        f->h->delivered++;
    } else if (s->policy == DP_OVERFLOW_DROP) {
        dp_metrics.outbox_dropped_total++;
    }
}

static void on_delivery(struct dp_hub *h, const Switchboard__Internal__V1__Delivery *d)
{
    dp_metrics.deliveries_total++;
    bool room_msg = d->room_id[0] != '\0' && d->seq > 0;
    if (room_msg && !dp_router_seq_is_new(h->router, d->room_id, d->seq)) {
        dp_metrics.deliveries_duplicate_total++;
        SB_LOG_DEBUG(MOD, "duplicate room delivery dropped", "room=%s seq=%lld", d->room_id,
                     (long long)d->seq);
        return;
    }
    struct dp_buf *b = dp_buf_create((const char *)d->frame.data, d->frame.len,
                                     room_msg ? d->room_id : NULL, room_msg ? d->seq : 0);
    if (b == NULL) {
        SB_LOG_ERROR(MOD, "out of memory framing a delivery", NULL);
        return;
    }
    b->channel = d->channel_id[0] != '\0';
    struct fan f = {h, d, b};
    h->gen++;
    /* The excluded users' sessions are marked as already served: one lookup per excluded user
     * instead of a string compare per member (a cache miss on every session's user id). */
    for (size_t i = 0; i < d->n_exclude_user_ids; i++)
        dp_router_visit_user(h->router, d->exclude_user_ids[i], mark_served, h);
    if (d->room_id[0] != '\0') {
        dp_router_visit_room(h->router, d->room_id, fan_one, &f);
    } else if (d->n_room_ids > 0) {
        /* presence: the members of the subject's rooms, each connection once (marks) */
        for (size_t i = 0; i < d->n_room_ids; i++)
            dp_router_visit_room(h->router, d->room_ids[i], fan_one, &f);
    } else if (d->channel_id[0] != '\0' && d->n_user_ids == 0) {
        dp_router_visit_channel(h->router, d->channel_id, fan_one, &f);
    } else if (d->n_user_ids > 0) {
        /* Direct messages, and channel messages for the subscribers whose filter matched. */
        for (size_t i = 0; i < d->n_user_ids; i++)
            dp_router_visit_user(h->router, d->user_ids[i], fan_one, &f);
    } else if (d->n_connection_ids > 0) {
        for (size_t i = 0; i < d->n_connection_ids; i++) {
            struct dp_session *s = sb_map_get(h->sessions, d->connection_ids[i]);
            if (s != NULL)
                fan_one(s, &f);
        }
    } else if (d->everyone) {
        struct sb_map_iter it = {0};
        void *v;
        while (sb_map_next(h->sessions, &it, NULL, &v))
            fan_one(v, &f);
    }
    dp_buf_unref(b);
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
    send_frame(s, NULL, t, n, e);
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
        on_delivery(h, it->delivery);
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
        for (struct dp_pending *p = s->pending_head; p != NULL;) {
            struct dp_pending *next = p->next;
            if (p->sent_gen != gen) {
                p->resent = p->sent_gen != 0;
                p->sent_gen = gen;
                if (dp_link_send_packed(h->link, p->item, p->item_len) != SB_OK) {
                    struct dp_pending *q = dp_session_pending_take(s, p->request_id);
                    dp_metrics.requests_unavailable_total++;
                    dp_hub_send_error(h, s, q->post, q->has_ref ? q->ref : NULL, "unavailable",
                                      "control plane unavailable; retry");
                    dp_session_pending_free(q);
                } else {
                    n_sent++;
                }
            }
            p = next;
        }
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
        fail_pending(h, s, "unavailable", "control plane unavailable; retry", true);
        if (s->state == DP_SESSION_OPENING) {
            dp_metrics.connections_rejected_total++;
            dp_hub_send_error(h, s, NULL, NULL, "unavailable", "control plane unavailable; retry");
            s->open_request_id = 0;
            dp_session_close_after_drain(s, 1011, "control plane unavailable");
        }
    }
}

static void link_stats(void *arg, int32_t *connections, int64_t *delivered)
{
    struct dp_hub *h = arg;
    *connections = (int32_t)sb_map_size(h->sessions);
    *delivered = (int64_t)h->delivered;
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
    if (h->ping != NULL) {
        h->ping->sse = strdup(": ping\n\n");
        h->ping->sse_len = 8;
    }
    if (h->sessions == NULL || h->router == NULL || h->ping == NULL || h->ping->sse == NULL ||
        h->closed == NULL) {
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
    sb_map_destroy(h->sessions);
    dp_router_destroy(h->router);
    dp_buf_unref(h->ping);
    free(h->closed);
    free(h);
}
