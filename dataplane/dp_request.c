/* Client frames to NodeLink requests and the control plane's replies to client frames. Each
 * forwarded request keeps its packed item in the session's pending list until the Reply with
 * its request id (the control plane answers in order, so the match is nearly always the head);
 * a failover re-sends it with the same id. Local answers (pong, validation errors) and error
 * frames are built here too. */
#include "dp_request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_buf.h"
#include "dp_auth.h"
#include "dp_config.h"
#include "dp_frame.h"
#include "dp_link.h"
#include "dp_metrics.h"
#include "dp_router.h"
#include "dp_session.h"
#include "dp_token.h"
#include "sb_ident.h"

typedef Switchboard__Internal__V1__NodeItem NodeItem;
typedef Switchboard__Internal__V1__ClientRequest ClientRequest;

struct dp_request {
    const struct dp_config *cfg;
    struct dp_router *router;
    struct dp_link *link;
    struct dp_auth *auth; /* for `refresh` (NULL: refused) */
};

int dp_request_http_status(const char *code)
{
    enum sb_code c = sb_code_from_name(code);
    return c == SB_CODE_NONE ? 400 : sb_code_info(c)->http_status;
}

/* ---- answers ---- */

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

void dp_request_send_error(struct dp_session *s, struct dp_post *post, const char *ref,
                           const char *code, const char *message)
{
    char *t = NULL;
    size_t n = 0;
    enum sb_err e = dp_frame_format_error(ref, code, message, &t, &n);
    struct dp_buf *b = take_text(t, n, e);
    if (post != NULL) {
        answer_post(post, dp_request_http_status(code), b);
        return;
    }
    if (s != NULL)
        push(s, b);
    dp_buf_unref(b);
}

void dp_request_send_frame(struct dp_session *s, struct dp_post *post, char *text, size_t len,
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

void dp_request_fail_pending(struct dp_session *s, const char *code, const char *message,
                             bool to_session)
{
    struct dp_pending *p;
    while ((p = dp_session_pending_take_first(s)) != NULL) {
        dp_metrics.requests_unavailable_total++;
        if (p->post != NULL)
            dp_request_send_error(s, p->post, p->has_ref ? p->ref : NULL, code, message);
        else if (to_session)
            dp_request_send_error(s, NULL, p->has_ref ? p->ref : NULL, code, message);
        dp_session_pending_free(p);
    }
}

void dp_request_post_abandoned(struct dp_post *post)
{
    if (post->pending != NULL) {
        post->pending->post = NULL;
        post->pending = NULL;
    }
}

/* ---- client frames ---- */

/* `token_grant`: a subscribe whose subscription token verified here (SubscribeOp). */
static void forward(struct dp_request *req, struct dp_session *s, struct dp_post *post,
                    const struct dp_frame *f, bool token_grant)
{
    const char *ref = f->ref;
    if (req->link == NULL || !dp_link_is_up(req->link)) {
        dp_metrics.requests_unavailable_total++;
        dp_request_send_error(s, post, ref, "unavailable", "control plane unavailable; retry");
        return;
    }
    struct dp_pending *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        dp_request_send_error(s, post, ref, "internal", "out of memory");
        return;
    }
    p->request_id = dp_link_next_id(req->link);
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
        snprintf(idem, sizeof(idem), "%s/%s/%llu", req->cfg->node_id, s->connection_id,
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
        sub.token_grant = token_grant;
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
    case DP_FRAME_REFRESH:
        free(p);
        return;
    }
#undef S
    NodeItem it = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__INIT;
    it.kind_case = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_REQUEST;
    it.request = &rq;
    if (dp_link_pack(&it, &p->item, &p->item_len) != SB_OK) {
        free(p);
        dp_request_send_error(s, post, ref, "internal", "out of memory");
        return;
    }
    if (dp_session_pending_add(s, p, (size_t)req->cfg->max_pending) != SB_OK) {
        dp_session_pending_free(p);
        dp_request_send_error(s, post, ref, "rate_limited",
                              "too many requests waiting for an answer on this connection");
        return;
    }
    /* While a new primary is adopting the node, the request waits here and goes out from
     * dp_request_resend once it has (after the session's ConnOpen). */
    enum sb_err e = SB_OK;
    if (dp_link_primary_ready(req->link)) {
        e = dp_link_send_packed(req->link, p->item, p->item_len);
        p->sent_gen = dp_link_primary_gen(req->link);
    }
    if (e != SB_OK) {
        dp_session_pending_free(dp_session_pending_take(s, p->request_id));
        dp_metrics.requests_unavailable_total++;
        dp_request_send_error(s, post, ref, "unavailable",
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

void dp_request_client_frame(struct dp_request *req, struct dp_session *s, const char *text,
                             size_t len, struct dp_post *post)
{
    dp_metrics.frames_in_total++;
    if (s->state == DP_SESSION_CLOSING && post == NULL)
        return;
    struct dp_frame f;
    struct dp_frame_error err;
    if (dp_frame_parse(text, len, &f, &err) != SB_OK) {
        dp_metrics.frames_invalid_total++;
        dp_request_send_error(s, post, err.has_ref ? err.ref : NULL, err.code, err.message);
        return;
    }
    if (f.type == DP_FRAME_PING) {
        char *t;
        size_t n;
        enum sb_err e = dp_frame_format_pong(f.ref, &t, &n);
        dp_request_send_frame(s, post, t, n, e);
    } else if (f.type == DP_FRAME_REFRESH) {
        if (req->auth != NULL)
            dp_token_refresh(req->auth, req->link, s, post, &f);
        else
            dp_request_send_error(s, post, f.ref, "unauthorized", "this node takes no tokens");
    } else if (f.type == DP_FRAME_SUBSCRIBE && f.token != NULL) {
        /* The node holds the keys: a subscription token is checked here, and only the verdict
         * travels (the control plane trusts its authenticated peers). */
        char why[160];
        if (req->auth == NULL)
            dp_request_send_error(s, post, f.ref, "unauthorized", "this node takes no tokens");
        else if (!dp_auth_subscription(req->auth, f.token, s->user_id, f.channel_id, why,
                                       sizeof(why)))
            dp_request_send_error(s, post, f.ref, "unauthorized", why);
        else
            forward(req, s, post, &f, true);
    } else {
        forward(req, s, post, &f, false);
    }
    dp_frame_fini(&f);
}

static void sse_request(struct dp_request *req, struct dp_session *s, enum dp_frame_type type,
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
            dp_request_send_error(
                s, NULL, NULL, "invalid_message",
                "invalid room_id in ?rooms=: 1 to 128 characters of A-Z a-z 0-9 . _ "
                ": @ -");
            return;
        }
    } else {
        f.channel_id = id;
        if (!sb_ident_is_valid_channel(id)) {
            dp_request_send_error(
                s, NULL, NULL, "invalid_message",
                "invalid channel_id in ?channels=: 1 to 128 characters of A-Z a-z "
                "0-9 . _ : @ -, optionally ending in #<user_id>");
            return;
        }
    }
    forward(req, s, NULL, &f, false);
}

void dp_request_sse_join(struct dp_request *req, struct dp_session *s, const char *room_id,
                         int64_t since)
{
    sse_request(req, s, DP_FRAME_JOIN, room_id, since);
}

void dp_request_sse_subscribe(struct dp_request *req, struct dp_session *s, const char *channel_id)
{
    sse_request(req, s, DP_FRAME_SUBSCRIBE, channel_id, -1);
}

/* ---- replies ---- */

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

void dp_request_reply(struct dp_request *req, struct dp_session *s,
                      const Switchboard__Internal__V1__Reply *r)
{
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
        dp_request_send_error(s, post, ref, r->error_code, r->error_message);
        dp_session_pending_free(p);
        return;
    }
    char *t = NULL;
    size_t n = 0;
    enum sb_err e = SB_OK;
    switch (p->type) {
    case DP_FRAME_JOIN:
        dp_router_set_room(req->router, s->user_id, p->room_id, true);
        e = dp_frame_format_ack(ref, p->room_id, NULL, false, 0, &t, &n);
        dp_request_send_frame(s, post, t, n, e);
        if (r->history_gap)
            dp_request_send_error(s, NULL, ref, "history_gap",
                                  "some messages asked for are older than the room's history");
        for (size_t i = 0; i < r->n_messages; i++)
            push_replay(s, &r->messages[i]);
        break;
    case DP_FRAME_LEAVE:
        dp_router_set_room(req->router, s->user_id, p->room_id, false);
        e = dp_frame_format_ack(ref, NULL, NULL, false, 0, &t, &n);
        dp_request_send_frame(s, post, t, n, e);
        break;
    case DP_FRAME_SUBSCRIBE:
    case DP_FRAME_UNSUBSCRIBE:
        dp_router_set_channel(req->router, s->user_id, p->room_id, p->type == DP_FRAME_SUBSCRIBE);
        e = dp_frame_format_ack(ref, NULL, NULL, false, 0, &t, &n);
        dp_request_send_frame(s, post, t, n, e);
        break;
    case DP_FRAME_MESSAGE:
        e = dp_frame_format_ack(ref, NULL, r->message_id, true, r->seq, &t, &n);
        dp_request_send_frame(s, post, t, n, e);
        break;
    case DP_FRAME_PUBLISH:
        e = dp_frame_format_ack(ref, NULL, r->message_id[0] ? r->message_id : NULL, false, 0, &t,
                                &n);
        dp_request_send_frame(s, post, t, n, e);
        break;
    case DP_FRAME_TYPING:
        /* No answer on success over WebSocket; a POST still needs one. */
        if (post != NULL) {
            e = dp_frame_format_ack(ref, NULL, NULL, false, 0, &t, &n);
            dp_request_send_frame(s, post, t, n, e);
        }
        break;
    case DP_FRAME_PRESENCE:
    case DP_FRAME_EDIT:
    case DP_FRAME_DELETE:
    case DP_FRAME_REACT:
        e = dp_frame_format_ack(ref, NULL, NULL, false, 0, &t, &n);
        dp_request_send_frame(s, post, t, n, e);
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
        dp_request_send_frame(s, post, t, n, e);
        break;
    }
    case DP_FRAME_PING:
    case DP_FRAME_REFRESH:
        break;
    }
    dp_session_pending_free(p);
}

size_t dp_request_resend(struct dp_request *req, struct dp_session *s, uint64_t gen)
{
    size_t n_sent = 0;
    for (struct dp_pending *p = s->pending_head; p != NULL;) {
        struct dp_pending *next = p->next;
        if (p->sent_gen != gen) {
            p->resent = p->sent_gen != 0;
            p->sent_gen = gen;
            if (dp_link_send_packed(req->link, p->item, p->item_len) != SB_OK) {
                struct dp_pending *q = dp_session_pending_take(s, p->request_id);
                dp_metrics.requests_unavailable_total++;
                dp_request_send_error(s, q->post, q->has_ref ? q->ref : NULL, "unavailable",
                                      "control plane unavailable; retry");
                dp_session_pending_free(q);
            } else {
                n_sent++;
            }
        }
        p = next;
    }
    return n_sent;
}

struct dp_request *dp_request_create(const struct dp_config *cfg, struct dp_router *router)
{
    struct dp_request *req = malloc(sizeof(*req));
    if (req != NULL)
        *req = (struct dp_request){.cfg = cfg, .router = router};
    return req;
}

void dp_request_set_auth(struct dp_request *req, struct dp_auth *auth)
{
    req->auth = auth;
}

void dp_request_set_link(struct dp_request *req, struct dp_link *link)
{
    req->link = link;
}

void dp_request_destroy(struct dp_request *req)
{
    free(req);
}
