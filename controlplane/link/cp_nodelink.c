/* NodeLink item handling. Every ClientRequest gets exactly one Reply (typing included, so the
 * node can retire its pending request); every ConnOpen gets one ConnOpened. Client-facing
 * errors travel in those answers; only protocol violations end the stream. */
#include "cp_nodelink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_access.h"
#include "cp_channels.h"
#include "cp_grants.h"
#include "cp_json.h"
#include "cp_limits.h"
#include "cp_msgupdate.h"
#include "cp_rooms.h"
#include "cp_session.h"
#include "cp_conns.h"
#include "cp_online.h"
#include "cp_typing.h"
#include "sb_ident.h"
#include "sb_json.h"
#include "sb_log.h"
#include "sb_strv.h"
#include "sb_time.h"

#define HISTORY_DEFAULT_LIMIT 50
#define HISTORY_MAX_LIMIT     1000
#define MAX_METADATA          64

typedef Switchboard__Internal__V1__NodeItem NodeItem;
typedef Switchboard__Internal__V1__ClientRequest ClientRequest;
typedef Switchboard__Internal__V1__ControlItem ControlItem;
typedef Switchboard__Internal__V1__Reply Reply;

/* One pending item: what its answer needs once the Store has spoken. */
struct op {
    struct cp_ctx *c;
    struct cp_node *n;
    cp_nodelink_done_fn *done;
    void *arg;
    uint64_t request_id;
    char *connection_id;
    struct cp_kv *metadata; /* message: converted map */
    /* ConnOpen: the session chosen (cp_session.c), whether it was resumed, and the item
     * (borrowed until done). */
    char *session_id;
    bool resumed;
    const Switchboard__Internal__V1__ConnOpen *co;
    char *user_id; /* ConnOpen: the user, for the channel list */
};

static struct op *op_new(struct cp_ctx *c, struct cp_node *n, cp_nodelink_done_fn *done, void *arg,
                         uint64_t request_id, const char *conn_id)
{
    struct op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return NULL;
    op->connection_id = strdup(conn_id ? conn_id : "");
    if (op->connection_id == NULL) {
        free(op);
        return NULL;
    }
    op->c = c;
    op->n = n;
    op->done = done;
    op->arg = arg;
    op->request_id = request_id;
    return op;
}

static void op_finish(struct op *op)
{
    cp_nodelink_done_fn *done = op->done;
    void *arg = op->arg;
    free(op->connection_id);
    free(op->metadata);
    free(op->session_id);
    free(op->user_id);
    free(op);
    done(arg, NULL);
}

/* ---------------------------------------------------------------- answers */

static void queue_reply(struct cp_ctx *c, struct cp_node *n, uint64_t request_id,
                        const char *conn_id, const struct cp_status *st, const char *message_id,
                        int64_t seq, ProtobufCBinaryData *messages, size_t n_messages, bool gap)
{
    Reply r = SWITCHBOARD__INTERNAL__V1__REPLY__INIT;
    r.request_id = request_id;
    r.connection_id = (char *)conn_id;
    if (st != NULL && st->code != SB_CODE_NONE) {
        r.error_code = (char *)sb_code_name(st->code);
        r.error_message = (char *)st->msg;
    }
    if (message_id != NULL)
        r.message_id = (char *)message_id;
    r.seq = seq;
    r.messages = messages;
    r.n_messages = n_messages;
    r.history_gap = gap;
    ControlItem item = SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__INIT;
    item.kind_case = SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_REPLY;
    item.reply = &r;
    cp_fanout_queue(&c->fan, n, &item);
}

static void reply_error(struct cp_ctx *c, struct cp_node *n, const ClientRequest *req,
                        enum sb_code code, const char *fmt, const char *arg)
{
    struct cp_status st;
    cp_status_set(&st, code, fmt, arg);
    queue_reply(c, n, req->request_id, req->connection_id, &st, NULL, 0, NULL, 0, false);
}

static void reply_status(struct op *op, const struct cp_status *st)
{
    queue_reply(op->c, op->n, op->request_id, op->connection_id, st, NULL, 0, NULL, 0, false);
}

static void simple_done(void *arg, const struct cp_status *st)
{
    struct op *op = arg;
    reply_status(op, st);
    op_finish(op);
}

/* edit, delete, react (docs/history.md): an ack or an error. */
static void msg_update_done(void *arg, const struct cp_status *st, const struct cp_message *m)
{
    simple_done(arg, st);
}

static void presence_done(void *arg, const struct cp_status *st, const struct cp_online_state *ps)
{
    (void)ps;
    simple_done(arg, st);
}

/* Encodes messages as frames and replies with them. */
static void reply_messages(struct op *op, const struct cp_status *st,
                           const struct cp_message *const *msgs, size_t n, bool gap)
{
    ProtobufCBinaryData *bin = n ? calloc(n, sizeof(*bin)) : NULL;
    struct cp_buf b;
    cp_buf_init(&b);
    struct cp_status err;
    if (n > 0 && bin == NULL) {
        cp_status_set(&err, SB_CODE_INTERNAL, "out of memory");
        reply_status(op, &err);
        return;
    }
    /* One buffer for all frames, then slice it: offsets first (realloc moves data). */
    size_t *offs = n ? malloc((n + 1) * sizeof(*offs)) : NULL;
    if (n > 0 && offs == NULL) {
        free(bin);
        cp_status_set(&err, SB_CODE_INTERNAL, "out of memory");
        reply_status(op, &err);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (offs != NULL)
            offs[i] = b.len;
        cp_json_message(&b, msgs[i]);
    }
    if (offs != NULL)
        offs[n] = b.len;
    if (b.failed) {
        cp_status_set(&err, SB_CODE_INTERNAL, "out of memory");
        reply_status(op, &err);
    } else {
        for (size_t i = 0; i < n; i++) {
            bin[i].data = (uint8_t *)b.data + offs[i];
            bin[i].len = offs[i + 1] - offs[i];
        }
        queue_reply(op->c, op->n, op->request_id, op->connection_id, st, NULL, 0, bin, n, gap);
    }
    cp_buf_fini(&b);
    free(offs);
    free(bin);
}

/* ---------------------------------------------------------------- client requests */

static void join_done(void *arg, const struct cp_status *st, const struct cp_join_outcome *o)
{
    struct op *op = arg;
    if (st->code != SB_CODE_NONE || (o->n_replay == 0 && !o->history_gap))
        reply_status(op, st);
    else
        reply_messages(op, st, o->replay, o->n_replay, o->history_gap);
    op_finish(op);
}

static void publish_done(void *arg, const struct cp_status *st, const char *message_id, int64_t seq)
{
    struct op *op = arg;
    queue_reply(op->c, op->n, op->request_id, op->connection_id, st, message_id, seq, NULL, 0,
                false);
    op_finish(op);
}

static void history_done(void *arg, const struct cp_status *st, const struct cp_history_result *res)
{
    struct op *op = arg;
    if (st->code != SB_CODE_NONE)
        reply_status(op, st);
    else
        reply_messages(op, st, res->messages, res->n_messages, false);
    op_finish(op);
}

static bool check_room(struct cp_ctx *c, struct cp_node *n, const ClientRequest *req,
                       const char *room_id)
{
    if (sb_ident_is_valid(room_id))
        return true;
    reply_error(c, n, req, SB_CODE_INVALID_MESSAGE, "%s", "room_id is not a valid id");
    return false;
}

static const char *nz(const char *s)
{
    return s != NULL ? s : "";
}

static bool check_channel(struct cp_ctx *c, struct cp_node *n, const ClientRequest *req,
                          const char *channel_id)
{
    if (sb_ident_is_valid_channel(channel_id))
        return true;
    reply_error(c, n, req, SB_CODE_INVALID_MESSAGE, "%s", "channel_id is not a valid id");
    return false;
}

static void channel_published(void *arg, const struct cp_status *st, const char *message_id)
{
    struct op *op = arg;
    queue_reply(op->c, op->n, op->request_id, op->connection_id, st, message_id, 0, NULL, 0, false);
    op_finish(op);
}

/* A client subscribe waiting for the backend's Authorizer. The node's stream goes on meanwhile
 * (a slow backend must not hold up every other client of the node), so the answer finds the
 * node again by id; a node gone since then gets nothing. */
struct asking {
    struct cp_ctx *c;
    char *node_id, *conn_id, *channel_id, *user_id, *filter;
    uint64_t request_id;
};

static void asking_free(struct asking *k)
{
    free(k->node_id);
    free(k->conn_id);
    free(k->channel_id);
    free(k->user_id);
    free(k->filter);
    free(k);
}

static void asked_reply(void *arg, const struct cp_status *st)
{
    struct asking *k = arg;
    struct cp_node *n = sb_map_get(&k->c->nodes, k->node_id);
    if (n != NULL)
        queue_reply(k->c, n, k->request_id, k->conn_id, st, NULL, 0, NULL, 0, false);
    asking_free(k);
}

static void authorized(void *arg, enum cp_authz_answer answer, const char *info, const char *reason)
{
    (void)info; /* the member info of presence rosters */
    struct asking *k = arg;
    if (answer == CP_AUTHZ_ALLOW) {
        struct cp_subscribe sub = {.channel_id = k->channel_id,
                                   .user_id = k->user_id,
                                   .filter = k->filter,
                                   .client = true};
        cp_channels_subscribe(k->c, &sub, asked_reply, k);
        return;
    }
    struct cp_status st;
    cp_status_set(&st, answer == CP_AUTHZ_DENY ? SB_CODE_PERMISSION_DENIED : SB_CODE_UNAVAILABLE,
                  "channel %s: %s", k->channel_id, reason);
    asked_reply(k, &st);
}

static void ask_authorizer(struct cp_ctx *c, struct cp_node *n, const ClientRequest *req,
                           const Switchboard__Internal__V1__SubscribeOp *so, const char *user,
                           const struct cp_grants *g)
{
    struct asking *k = calloc(1, sizeof(*k));
    if (k != NULL) {
        k->c = c;
        k->request_id = req->request_id;
        k->node_id = strdup(n->id);
        k->conn_id = strdup(nz(req->connection_id));
        k->channel_id = strdup(so->channel_id);
        k->user_id = strdup(user);
        k->filter = so->filter != NULL ? strdup(so->filter) : NULL;
    }
    if (k == NULL || k->node_id == NULL || k->conn_id == NULL || k->channel_id == NULL ||
        k->user_id == NULL || (so->filter != NULL && k->filter == NULL)) {
        if (k != NULL)
            asking_free(k);
        reply_error(c, n, req, SB_CODE_INTERNAL, "%s", "out of memory");
        return;
    }
    struct cp_authz_req r = {.user_id = user,
                             .connection_id = k->conn_id,
                             .action = "subscribe",
                             .target = so->channel_id,
                             .info = g != NULL ? g->info : NULL};
    c->authorize(c, &r, authorized, k);
}

static void handle_request(struct cp_ctx *c, struct cp_node *n, const ClientRequest *req,
                           cp_nodelink_done_fn *done, void *arg)
{
    struct cp_conn *conn = cp_presence_conn(&c->presence, nz(req->connection_id));
    /* this node's: by its stream, or by id for connections known from the store's records */
    bool here = conn != NULL && (conn->node == n || (conn->node == NULL && conn->node_id != NULL &&
                                                     strcmp(conn->node_id, n->id) == 0));
    if (!here) {
        reply_error(c, n, req, SB_CODE_INVALID_MESSAGE, "connection %s is not open on this node",
                    nz(req->connection_id));
        done(arg, NULL);
        return;
    }
    const char *user = conn->user->id;
    conn->last_activity = sb_time_now_ms();
    if (req->user_id != NULL && req->user_id[0] != '\0' && strcmp(req->user_id, user) != 0) {
        reply_error(c, n, req, SB_CODE_UNAUTHORIZED, "connection %s belongs to another user",
                    req->connection_id);
        done(arg, NULL);
        return;
    }
    struct cp_status st;
    if (!cp_limits_client_request(c, conn->user, req, &st)) {
        queue_reply(c, n, req->request_id, req->connection_id, &st, NULL, 0, NULL, 0, false);
        done(arg, NULL);
        return;
    }
    struct op *op = op_new(c, n, done, arg, req->request_id, req->connection_id);
    if (op == NULL) {
        reply_error(c, n, req, SB_CODE_INTERNAL, "%s", "out of memory");
        done(arg, NULL);
        return;
    }
    /* Any frame from the user is activity (the presence timeout); a presence frame records
     * its own. */
    if (req->op_case != SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_PRESENCE)
        cp_online_activity(c, user, NULL, NULL);
    switch (req->op_case) {
    case SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_JOIN: {
        const Switchboard__Internal__V1__JoinOp *j = req->join;
        if (!check_room(c, n, req, nz(j->room_id)))
            break;
        if (j->has_since && j->since < 0) {
            reply_error(c, n, req, SB_CODE_INVALID_MESSAGE, "%s", "since must not be negative");
            break;
        }
        /* a private room: the token's rooms claim (kept with this stream) may grant it */
        bool granted =
            cp_access_has_room(cp_grants_get(&n->grants, nz(req->connection_id)), j->room_id);
        cp_rooms_join(c, j->room_id, user, CP_ROLE_MEMBER, true, granted, j->has_since, j->since,
                      join_done, op);
        return;
    }
    case SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_LEAVE:
        if (!check_room(c, n, req, nz(req->leave->room_id)))
            break;
        cp_rooms_leave(c, req->leave->room_id, user, simple_done, op);
        return;
    case SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_MESSAGE: {
        const Switchboard__Internal__V1__PublishOp *p = req->message;
        if (!check_room(c, n, req, nz(p->room_id)))
            break;
        if (!sb_json_is_valid((const char *)p->data.data, p->data.len)) {
            reply_error(c, n, req, SB_CODE_INVALID_MESSAGE, "%s", "data is not valid JSON");
            break;
        }
        if (p->thread_id != NULL && p->thread_id[0] != '\0' && !sb_ident_is_valid(p->thread_id)) {
            reply_error(c, n, req, SB_CODE_INVALID_MESSAGE, "%s", "thread_id is not a valid id");
            break;
        }
        if (p->n_metadata > MAX_METADATA) {
            reply_error(c, n, req, SB_CODE_INVALID_MESSAGE, "%s", "too many metadata entries");
            break;
        }
        if (p->n_metadata > 0) {
            op->metadata = calloc(p->n_metadata, sizeof(*op->metadata));
            if (op->metadata == NULL) {
                reply_error(c, n, req, SB_CODE_INTERNAL, "%s", "out of memory");
                break;
            }
            for (size_t i = 0; i < p->n_metadata; i++) {
                op->metadata[i].key = (char *)nz(p->metadata[i]->key);
                op->metadata[i].value = (char *)nz(p->metadata[i]->value);
            }
        }
        struct cp_publish pub = {.room_id = p->room_id,
                                 .user_id = user,
                                 .require_member = true,
                                 .data = (const char *)p->data.data,
                                 .data_len = p->data.len,
                                 .thread_id = p->thread_id,
                                 .metadata = op->metadata,
                                 .n_metadata = p->n_metadata,
                                 .request_key = req->idempotency_key};
        cp_rooms_publish(c, &pub, publish_done, op);
        return;
    }
    case SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_TYPING:
        if (!check_room(c, n, req, nz(req->typing->room_id)))
            break;
        cp_typing_set(c, req->typing->room_id, user, req->typing->typing, simple_done, op);
        return;
    case SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_PRESENCE: {
        /* The frame carries the whole user-set state but availability (kept). */
        const Switchboard__Internal__V1__PresenceOp *p = req->presence;
        struct cp_online_set set = {.status = nz(p->status),
                                    .custom_status = p->custom_status,
                                    .device_type = p->device_type,
                                    .device_name = p->device_name,
                                    .activity_type = p->activity_type,
                                    .activity_detail = p->activity_detail,
                                    .keep_availability = true};
        cp_online_set(c, user, &set, presence_done, op);
        return;
    }
    case SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_HISTORY: {
        const Switchboard__Internal__V1__HistoryOp *h = req->history;
        if (!check_room(c, n, req, nz(h->room_id)))
            break;
        if (h->limit < 0) {
            reply_error(c, n, req, SB_CODE_INVALID_MESSAGE, "%s", "limit must not be negative");
            break;
        }
        struct cp_history_query q = {
            .room_id = h->room_id,
            .limit = h->limit == 0 ? HISTORY_DEFAULT_LIMIT
                                   : (h->limit > HISTORY_MAX_LIMIT ? HISTORY_MAX_LIMIT : h->limit),
            .has_before_seq = h->has_before,
            .before_seq = h->before,
            .has_after_seq = h->has_after,
            .after_seq = h->after};
        c->store->ops->history_query(c->store, &q, user, history_done, op);
        return;
    }
    case SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_SUBSCRIBE:
    case SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_UNSUBSCRIBE: {
        const Switchboard__Internal__V1__SubscribeOp *so =
            req->op_case == SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_SUBSCRIBE
                ? req->subscribe
                : req->unsubscribe;
        if (!check_channel(c, n, req, nz(so->channel_id)))
            break;
        if (req->op_case == SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_UNSUBSCRIBE) {
            cp_channels_unsubscribe(c, so->channel_id, user, simple_done, op);
            return;
        }
        /* Decided before the channel is read, so a refused subscribe never auto-creates it. */
        const struct cp_grants *g = cp_grants_get(&n->grants, nz(req->connection_id));
        char why[192];
        if (!cp_access_subscribe(g, so->channel_id, user, so->token_grant != 0, why, sizeof(why))) {
            /* The one refusal a grant can lift (the #user rule is final): ask the backend. */
            if (c->authorize != NULL && cp_access_names_user(so->channel_id, user)) {
                ask_authorizer(c, n, req, so, user, g);
                break;
            }
            reply_error(c, n, req, SB_CODE_PERMISSION_DENIED, "%s", why);
            break;
        }
        struct cp_subscribe sub = {
            .channel_id = so->channel_id, .user_id = user, .filter = so->filter, .client = true};
        cp_channels_subscribe(c, &sub, simple_done, op);
        return;
    }
    case SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_PUBLISH: {
        const Switchboard__Internal__V1__PublishOp *p = req->publish;
        if (!check_channel(c, n, req, nz(p->channel_id)))
            break;
        if (!sb_json_is_valid((const char *)p->data.data, p->data.len)) {
            reply_error(c, n, req, SB_CODE_INVALID_MESSAGE, "%s", "data is not valid JSON");
            break;
        }
        if (p->n_metadata > MAX_METADATA) {
            reply_error(c, n, req, SB_CODE_INVALID_MESSAGE, "%s", "too many metadata entries");
            break;
        }
        if (p->n_metadata > 0) {
            op->metadata = calloc(p->n_metadata, sizeof(*op->metadata));
            if (op->metadata == NULL) {
                reply_error(c, n, req, SB_CODE_INTERNAL, "%s", "out of memory");
                break;
            }
            for (size_t i = 0; i < p->n_metadata; i++) {
                op->metadata[i].key = (char *)nz(p->metadata[i]->key);
                op->metadata[i].value = (char *)nz(p->metadata[i]->value);
            }
        }
        struct cp_channel_publish cpub = {.channel_id = p->channel_id,
                                          .user_id = user,
                                          .data = (const char *)p->data.data,
                                          .data_len = p->data.len,
                                          .metadata = op->metadata,
                                          .n_metadata = p->n_metadata,
                                          .idem_key = NULL,
                                          .client = true};
        /* The node's request key makes a publish re-sent after a failover land once; a memory
         * control plane has no failover (as for room messages, the key is ignored there). */
        if (c->distributed)
            cpub.idem_key = req->idempotency_key;
        cp_channels_publish(c, &cpub, channel_published, op);
        return;
    }
    case SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_EDIT_MESSAGE:
    case SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_DELETE_MESSAGE:
    case SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_REACT:
        if (cp_msgupdate_client(c, req, user, msg_update_done, op, &st)) /* cp_msgupdate.h */
            return;
        reply_status(op, &st);
        break;
    default:
        cp_status_set(&st, SB_CODE_INVALID_MESSAGE, "request carries no operation");
        reply_status(op, &st);
        break;
    }
    op_finish(op);
}

/* ---------------------------------------------------------------- connections */

static void send_conn_opened(struct op *op, const struct cp_status *st, const char *const *rooms,
                             size_t n_rooms, const char *const *channels, size_t n_channels)
{
    Switchboard__Internal__V1__ConnOpened o = SWITCHBOARD__INTERNAL__V1__CONN_OPENED__INIT;
    o.request_id = op->request_id;
    o.connection_id = op->connection_id;
    if (st->code != SB_CODE_NONE)
        cp_grants_remove(&op->n->grants, op->connection_id); /* not opened: nothing to keep */
    if (st->code != SB_CODE_NONE) {
        o.error_code = (char *)sb_code_name(st->code);
        o.error_message = (char *)st->msg;
    } else {
        o.rooms = (char **)rooms;
        o.n_rooms = n_rooms;
        o.session_id = op->session_id;
        o.resumed = op->resumed;
        o.channels = (char **)channels;
        o.n_channels = n_channels;
    }
    ControlItem item = SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__INIT;
    item.kind_case = SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_CONN_OPENED;
    item.conn_opened = &o;
    cp_fanout_queue(&op->c->fan, op->n, &item);
    op_finish(op);
}

/* The user's rooms are known; their channels come next (both go in ConnOpened). */
struct opened {
    struct op *op;
    char **rooms;
    size_t n_rooms;
};

static void opened_channels(void *arg, const struct cp_status *st, const char *const *channels,
                            size_t n)
{
    struct opened *o = arg;
    send_conn_opened(o->op, st, (const char *const *)o->rooms, o->n_rooms, channels, n);
    sb_strv_free(o->rooms, o->n_rooms);
    free(o);
}

static void conn_opened(void *arg, const struct cp_status *st, const char *const *rooms,
                        size_t n_rooms)
{
    struct op *op = arg;
    if (st->code != SB_CODE_NONE || op->user_id == NULL) {
        send_conn_opened(op, st, rooms, n_rooms, NULL, 0);
        return;
    }
    struct opened *o = calloc(1, sizeof(*o));
    if (o == NULL || sb_strv_dup((char *const *)rooms, n_rooms, &o->rooms) != SB_OK) {
        free(o);
        struct cp_status e;
        cp_status_set(&e, SB_CODE_INTERNAL, "out of memory");
        send_conn_opened(op, &e, NULL, 0, NULL, 0);
        return;
    }
    o->n_rooms = n_rooms;
    o->op = op;
    cp_channels_of_user(op->c, op->user_id, opened_channels, o);
}

/* etcd mode: the connection is written under the node's lease (granted first if the node
 * never sent Adopt); the watch puts it into cp_presence before the write is answered. */
struct dconn {
    struct op *op;
    char *conn_id, *user_id, *session_id, *transport;
    int64_t at;
};

static void dconn_free(struct dconn *d)
{
    free(d->conn_id);
    free(d->user_id);
    free(d->session_id);
    free(d->transport);
    free(d);
}

static void dconn_rooms(void *arg, const struct cp_status *st, const char *const *rooms, size_t n)
{
    struct dconn *d = arg;
    conn_opened(d->op, st, rooms, n);
    dconn_free(d);
}

static void dconn_put(void *arg, const struct cp_status *st)
{
    struct dconn *d = arg;
    if (st->code != SB_CODE_NONE) {
        conn_opened(d->op, st, NULL, 0);
        dconn_free(d);
        return;
    }
    struct cp_ctx *c = d->op->c;
    c->store->ops->user_rooms(c->store, d->user_id, dconn_rooms, d);
}

static void dconn_write(struct dconn *d)
{
    struct cp_ctx *c = d->op->c;
    c->cluster->ops->conn_put(c->cluster, d->op->n->id, d->user_id, d->conn_id, d->session_id,
                              d->transport, d->at, dconn_put, d);
}

static void dconn_adopted(void *arg, const struct cp_status *st, int64_t lease, bool renewed)
{
    (void)lease;
    (void)renewed;
    struct dconn *d = arg;
    if (st->code != SB_CODE_NONE) {
        conn_opened(d->op, st, NULL, 0);
        dconn_free(d);
        return;
    }
    dconn_write(d);
}

static void dist_conn_open(struct op *op, const Switchboard__Internal__V1__ConnOpen *co, int64_t at)
{
    struct dconn *d = calloc(1, sizeof(*d));
    if (d != NULL) {
        d->op = op;
        d->conn_id = strdup(co->connection_id);
        d->user_id = strdup(co->user_id);
        d->session_id = strdup(nz(op->session_id));
        d->transport = strdup(nz(co->transport));
        d->at = at;
    }
    if (d == NULL || !d->conn_id || !d->user_id || !d->session_id || !d->transport) {
        if (d != NULL)
            dconn_free(d);
        struct cp_status st;
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        conn_opened(op, &st, NULL, 0);
        return;
    }
    struct cp_ctx *c = op->c;
    if (c->cluster->ops->node_lease(c->cluster, op->n->id) == 0)
        c->cluster->ops->adopt(c->cluster, op->n->id, op->n->address, 0, dconn_adopted, d);
    else
        dconn_write(d);
}

/* The session is decided (new or resumed): record the connection. */
static void session_chosen(void *arg, const char *session_id, bool resumed)
{
    struct op *op = arg;
    const Switchboard__Internal__V1__ConnOpen *co = op->co;
    struct cp_ctx *c = op->c;
    op->session_id = strdup(session_id);
    op->resumed = resumed;
    if (op->session_id == NULL) {
        struct cp_status st;
        cp_status_set(&st, SB_CODE_INTERNAL, "out of memory");
        conn_opened(op, &st, NULL, 0);
        return;
    }
    int64_t at = co->connected_at ? co->connected_at : sb_time_now_ms();
    if (c->distributed) {
        dist_conn_open(op, co, at);
        return;
    }
    cp_conns_open(c, op->n, co->connection_id, co->user_id, op->session_id, nz(co->transport), at,
                  conn_opened, op);
}

/* Keeps what the connection's token grants with its stream (replacing an older set). */
static bool keep_grants(struct cp_node *n, const char *conn_id,
                        const Switchboard__Internal__V1__Grants *g, struct cp_status *st)
{
    char why[160];
    struct cp_grants *kept = NULL;
    enum sb_err e = cp_grants_from_pb(g, &kept, why, sizeof(why));
    if (e == SB_OK && (e = cp_grants_put(&n->grants, conn_id, kept)) != SB_OK)
        cp_grants_free(kept);
    if (e == SB_EINVAL)
        cp_status_set(st, SB_CODE_INVALID_MESSAGE, why);
    else if (e != SB_OK)
        cp_status_set(st, SB_CODE_INTERNAL, "out of memory");
    return e == SB_OK;
}

static void conn_open(struct cp_ctx *c, struct cp_node *n,
                      const Switchboard__Internal__V1__ConnOpen *co, cp_nodelink_done_fn *done,
                      void *arg)
{
    struct op *op = op_new(c, n, done, arg, co->request_id, nz(co->connection_id));
    if (op == NULL) {
        done(arg, "out of memory");
        return;
    }
    struct cp_status st;
    op->user_id = strdup(nz(co->user_id));
    if (!sb_ident_is_valid(nz(co->connection_id)) || !sb_ident_is_valid(nz(co->user_id))) {
        cp_status_set(&st, SB_CODE_INVALID_MESSAGE, "connection_id and user_id must be valid ids");
        conn_opened(op, &st, NULL, 0);
        return;
    }
    if (!cp_limits_conn_ok(c, co->user_id, co->connection_id, &st)) {
        conn_opened(op, &st, NULL, 0);
        return;
    }
    if (co->grants != NULL && !keep_grants(n, co->connection_id, co->grants, &st)) {
        conn_opened(op, &st, NULL, 0);
        return;
    }
    op->co = co;
    cp_session_resolve(c, co->user_id, co->resume_session_id, nz(co->session_id), session_chosen,
                       op);
}

/* ---------------------------------------------------------------- items */

static void hello(struct cp_ctx *c, struct cp_node *n, const Switchboard__Internal__V1__Hello *h,
                  cp_nodelink_done_fn *done, void *arg)
{
    if (n->id != NULL) {
        done(arg, "Hello sent twice");
        return;
    }
    if (!sb_ident_is_valid(nz(h->node_id))) {
        done(arg, "Hello.node_id is not a valid id");
        return;
    }
    /* A node id belongs to the stream that registered it until that stream ends (API.md): a
     * second stream naming it is refused, and the live one is left alone. A stream silent for
     * two heartbeat intervals is taken for dead (its peer reconnected before our keepalive or
     * the silence check of cp_link_tick noticed): the new stream replaces it. */
    struct cp_node *old = sb_map_get(&c->nodes, h->node_id);
    if (old != NULL && old != n) {
        int64_t hb = c->set.heartbeat_interval_ms > 0 ? c->set.heartbeat_interval_ms : 5000;
        int64_t silent = sb_time_mono_ms() - old->last_rx_mono;
        if (silent <= 2 * hb) {
            /* Static: `done` reads it at once; only this thread writes it. */
            static char refused[SB_IDENT_MAX + 96];
            snprintf(refused, sizeof(refused),
                     "permission_denied: node id %s is linked by another stream", h->node_id);
            SB_LOG_WARN("cp", "Hello refused: the node id is linked by a live stream",
                        "node=%s address=\"%s\" silent_ms=%lld", h->node_id, nz(h->address),
                        (long long)silent);
            done(arg, refused);
            return;
        }
        SB_LOG_WARN("cp", "node reconnected: replacing its silent old stream",
                    "node=%s silent_ms=%lld", h->node_id, (long long)silent);
        old->registered = false;
        sb_map_remove(&c->nodes, h->node_id);
        if (old->kill != NULL)
            old->kill(old, "replaced by a newer stream of the same node");
    }
    n->id = strdup(h->node_id);
    n->address = strdup(nz(h->address));
    n->version = strdup(nz(h->version));
    if (n->id == NULL || n->address == NULL || n->version == NULL) {
        done(arg, "out of memory");
        return;
    }
    for (size_t i = 0; i < h->n_features; i++)
        if (strcmp(nz(h->features[i]), "delivery_room_ids") == 0)
            n->room_ids = true;
    n->last_heartbeat = sb_time_now_ms(); /* Hello is the first sign of life */
    if (sb_map_put(&c->nodes, n->id, n) != SB_OK) {
        done(arg, "out of memory");
        return;
    }
    n->registered = true;
    Switchboard__Internal__V1__Welcome w = SWITCHBOARD__INTERNAL__V1__WELCOME__INIT;
    w.controlplane_id = c->id;
    w.heartbeat_interval_ms = c->set.heartbeat_interval_ms;
    ControlItem item = SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__INIT;
    item.kind_case = SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_WELCOME;
    item.welcome = &w;
    cp_fanout_queue(&c->fan, n, &item);
    SB_LOG_INFO("cp", "node linked", "node=%s address=%s version=\"%s\"", n->id, n->address,
                n->version);
    done(arg, NULL);
}

struct closing {
    cp_nodelink_done_fn *done;
    void *arg;
};

static void closed(void *arg, const struct cp_status *st)
{
    (void)st; /* a failed delete leaves the key to the node's lease */
    struct closing *cl = arg;
    cl->done(cl->arg, NULL);
    free(cl);
}

struct adopting {
    struct cp_ctx *c;
    struct cp_node *n;
    cp_nodelink_done_fn *done;
    void *arg;
};

static void queue_adopted(struct cp_ctx *c, struct cp_node *n, int64_t lease, bool renewed)
{
    Switchboard__Internal__V1__Adopted a = SWITCHBOARD__INTERNAL__V1__ADOPTED__INIT;
    a.lease_id = lease;
    a.renewed = renewed;
    ControlItem item = SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__INIT;
    item.kind_case = SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_ADOPTED;
    item.adopted = &a;
    cp_fanout_queue(&c->fan, n, &item);
}

static void adopted(void *arg, const struct cp_status *st, int64_t lease, bool renewed)
{
    struct adopting *ad = arg;
    if (st->code == SB_CODE_NONE) {
        queue_adopted(ad->c, ad->n, lease, renewed);
        SB_LOG_INFO("cp", "node lease adopted", "node=%s lease=%lld renewed=%d", ad->n->id,
                    (long long)lease, renewed);
    } else {
        /* No answer: the node keeps its lease id and asks again (or fails over). */
        SB_LOG_WARN("cp", "node lease not adopted", "node=%s code=%s", ad->n->id,
                    sb_code_name(st->code));
    }
    ad->done(ad->arg, NULL);
    free(ad);
}

/* Adopt: the cluster keeps (or grants) the node's lease (one replica: its own lease id, always
 * renewed, see cp_cluster.c). */
static void adopt(struct cp_ctx *c, struct cp_node *n, int64_t lease, cp_nodelink_done_fn *done,
                  void *arg)
{
    struct adopting *ad = malloc(sizeof(*ad));
    if (ad == NULL) {
        done(arg, "out of memory");
        return;
    }
    *ad = (struct adopting){c, n, done, arg};
    c->cluster->ops->adopt(c->cluster, n->id, n->address, lease, adopted, ad);
}

void cp_nodelink_handle(struct cp_ctx *c, struct cp_node *n, const NodeItem *item,
                        cp_nodelink_done_fn *done, void *arg)
{
    if (item->kind_case == SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_HELLO) {
        hello(c, n, item->hello, done, arg);
        return;
    }
    if (n->id == NULL) {
        done(arg, "Hello must come first");
        return;
    }
    switch (item->kind_case) {
    case SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_HEARTBEAT:
        n->last_heartbeat = sb_time_now_ms();
        n->messages_delivered = item->heartbeat->messages_delivered;
        c->cluster->ops->heartbeat(c->cluster, n->id, n->address, item->heartbeat->connections);
        done(arg, NULL);
        return;
    case SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_ADOPT:
        adopt(c, n, item->adopt->lease_id, done, arg);
        return;
    case SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_CONN_OPEN:
        conn_open(c, n, item->conn_open, done, arg);
        return;
    case SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_CONN_AUTH: {
        const Switchboard__Internal__V1__ConnAuth *ca = item->conn_auth;
        struct cp_status st;
        /* Only for a connection this stream opened; anything else is ignored. */
        if (cp_grants_get(&n->grants, nz(ca->connection_id)) != NULL && ca->grants != NULL &&
            !keep_grants(n, ca->connection_id, ca->grants, &st))
            SB_LOG_WARN("cp", "refresh grants refused", "node=%s conn=%s why=\"%s\"", n->id,
                        nz(ca->connection_id), st.msg);
        done(arg, NULL);
        return;
    }
    case SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_CONN_CLOSE: {
        cp_grants_remove(&n->grants, nz(item->conn_close->connection_id));
        struct cp_conn *conn = cp_presence_conn(&c->presence, nz(item->conn_close->connection_id));
        if (c->distributed) {
            const char *user = conn != NULL ? conn->user->id : nz(item->conn_close->user_id);
            if (conn != NULL && strcmp(conn->node_id, n->id) != 0) {
                done(arg, NULL);
                return;
            }
            struct closing *cl = malloc(sizeof(*cl));
            if (cl == NULL || !sb_ident_is_valid(user)) {
                free(cl);
                done(arg, NULL);
                return;
            }
            cl->done = done;
            cl->arg = arg;
            c->cluster->ops->conn_delete(c->cluster, n->id, user, item->conn_close->connection_id,
                                         closed, cl);
            return;
        }
        /* A connection that moved to a newer stream is not this node's to close. */
        if (conn != NULL && conn->node == n)
            cp_conns_close(c, item->conn_close->connection_id);
        done(arg, NULL);
        return;
    }
    case SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_REQUEST:
        handle_request(c, n, item->request, done, arg);
        return;
    default:
        done(arg, "unknown NodeItem");
        return;
    }
}

void cp_nodelink_node_ended(struct cp_ctx *c, struct cp_node *n)
{
    bool current = n->registered && n->id != NULL && sb_map_get(&c->nodes, n->id) == n;
    if (current)
        sb_map_remove(&c->nodes, n->id);
    n->registered = false;
    if (c->distributed) {
        /* The node's connections live under its lease: a clean shutdown revokes it (they go
         * at once); otherwise it expires after the TTL unless another replica adopts it. */
        if (current)
            c->cluster->ops->release(c->cluster, n->id, n->clean_end);
        SB_LOG_INFO("cp", "node unlinked", "node=%s clean=%d", n->id ? n->id : "-", n->clean_end);
        return;
    }
    cp_conns_node_gone(c, n);
    SB_LOG_INFO("cp", "node unlinked", "node=%s", n->id ? n->id : "-");
}
