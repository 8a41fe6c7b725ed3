/* WatchEvents streams on gRPC core. Per stream at most one SEND_MESSAGE is in flight, fed from
 * the stream's queue of packed Events; RECV_CLOSE_ON_SERVER fires when the call is over
 * (client cancel, deadline, our cancel). An Event is packed once and shared by every watcher it
 * matches (a reference-counted blob). The stream is freed when no batch is outstanding. */
#include "cp_watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>

#include "cp_tag.h"
#include "sb_ident.h"
#include "sb_log.h"
#include "sb_time.h"
#include "switchboard/v1/connections.pb-c.h"

#define MAX_FILTER 1000

const char *const cp_watch_types[] = {"message",  "message_updated", "join", "leave",
                                      "presence", "channel_message", NULL};

enum ev_type { T_MESSAGE, T_MESSAGE_UPDATED, T_JOIN, T_LEAVE, T_PRESENCE, T_CHANNEL_MESSAGE };

struct blob {
    int refs;
    size_t len;
    uint8_t data[];
};

struct qent {
    struct qent *next;
    struct blob *b;
};

struct watcher {
    struct cp_ctx *c;
    grpc_call *call;
    struct cp_tag meta_tag, send_tag, close_tag;
    int refs;
    char **rooms, **channels;
    size_t n_rooms, n_channels;
    unsigned types; /* bit per enum ev_type; 0: every type */
    bool no_events; /* Health/Watch: only the first message */
    struct qent *head, *tail;
    size_t queued; /* bytes in the queue */
    grpc_byte_buffer *send_bb;
    bool sending;
    bool over;   /* RECV_CLOSE_ON_SERVER fired */
    bool killed; /* cancelled by us */
    int cancelled;
    struct watcher *prev, *next; /* c->watchers */
};

static void blob_unref(struct blob *b)
{
    if (b != NULL && --b->refs == 0)
        free(b);
}

static void queue_clear(struct watcher *w)
{
    while (w->head != NULL) {
        struct qent *e = w->head;
        w->head = e->next;
        blob_unref(e->b);
        free(e);
    }
    w->tail = NULL;
    w->queued = 0;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void watcher_free(struct watcher *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else if (w->c->watchers == w)
        w->c->watchers = w->next;
    if (w->next)
        w->next->prev = w->prev;
    queue_clear(w);
    free_list(w->rooms, w->n_rooms);
    free_list(w->channels, w->n_channels);
    if (w->send_bb != NULL)
        grpc_byte_buffer_destroy(w->send_bb);
    if (w->call != NULL)
        grpc_call_unref(w->call);
    free(w);
}

static void unref(struct watcher *w)
{
    if (--w->refs == 0)
        watcher_free(w);
}

static bool start(struct watcher *w, grpc_op *ops, size_t n, struct cp_tag *tag)
{
    w->refs++;
    if (grpc_call_start_batch(w->call, ops, n, tag, NULL) != GRPC_CALL_OK) {
        SB_LOG_ERROR("cp", "WatchEvents batch refused", NULL);
        w->refs--;
        return false;
    }
    return true;
}

static void kill_watcher(struct watcher *w, grpc_status_code code, const char *why)
{
    if (w->killed || w->over)
        return;
    w->killed = true;
    queue_clear(w);
    grpc_call_cancel_with_status(w->call, code, why, NULL);
}

/* ---------------------------------------------------------------- sending */

static void flush(struct watcher *w)
{
    if (w->sending || w->over || w->killed || w->head == NULL)
        return;
    struct qent *e = w->head;
    w->head = e->next;
    if (w->head == NULL)
        w->tail = NULL;
    w->queued -= e->b->len;
    grpc_slice slice = grpc_slice_from_copied_buffer((const char *)e->b->data, e->b->len);
    blob_unref(e->b);
    free(e);
    w->send_bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_MESSAGE;
    /* More queued: let gRPC coalesce the writes (the last of a burst goes out at once). */
    op.flags = w->head != NULL ? GRPC_WRITE_BUFFER_HINT : 0;
    op.data.send_message.send_message = w->send_bb;
    w->sending = true;
    if (!start(w, &op, 1, &w->send_tag)) {
        w->sending = false;
        grpc_byte_buffer_destroy(w->send_bb);
        w->send_bb = NULL;
    }
}

static void on_send(struct cp_tag *t, bool ok)
{
    struct watcher *w = CP_CONTAINER_OF(t, struct watcher, send_tag);
    w->sending = false;
    grpc_byte_buffer_destroy(w->send_bb);
    w->send_bb = NULL;
    if (ok)
        flush(w);
    unref(w);
}

static void on_meta(struct cp_tag *t, bool ok)
{
    (void)ok;
    unref(CP_CONTAINER_OF(t, struct watcher, meta_tag));
}

static void on_close(struct cp_tag *t, bool ok)
{
    (void)ok;
    struct watcher *w = CP_CONTAINER_OF(t, struct watcher, close_tag);
    w->over = true;
    queue_clear(w);
    SB_LOG_DEBUG("cp", "watcher gone", "cancelled=%d", w->cancelled);
    unref(w);
}

/* Appends `b` to the watcher's queue, or cuts the watcher off when the queue would exceed the
 * limit: a slow watcher costs nothing but its own queue. An empty queue takes any one event
 * (one larger than the limit must not cut off a watcher that keeps up). */
static void push(struct watcher *w, struct blob *b)
{
    if (w->over || w->killed)
        return;
    size_t limit = w->c->set.watch_queue_limit;
    if (limit > 0 && w->queued > 0 && w->queued + b->len > limit) {
        char why[160];
        snprintf(why, sizeof(why),
                 "rate_limited: the watcher fell behind (more than %zu bytes of events queued); "
                 "reconnect and catch up",
                 limit);
        SB_LOG_WARN("cp", "watcher cut off: too slow", "queued=%zu limit=%zu", w->queued, limit);
        kill_watcher(w, GRPC_STATUS_RESOURCE_EXHAUSTED, why);
        return;
    }
    struct qent *e = malloc(sizeof(*e));
    if (e == NULL) {
        kill_watcher(w, GRPC_STATUS_RESOURCE_EXHAUSTED, "internal: out of memory");
        return;
    }
    e->next = NULL;
    e->b = b;
    b->refs++;
    if (w->tail != NULL)
        w->tail->next = e;
    else
        w->head = e;
    w->tail = e;
    w->queued += b->len;
    flush(w);
}

/* ---------------------------------------------------------------- matching and publishing */

static bool in_list(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

/* Room and channel filters restrict events that belong to a room or a channel; events of
 * neither (presence) pass them and are chosen by `types` alone. */
static bool matches(const struct watcher *w, enum ev_type type, const char *room_id,
                    const char *channel_id)
{
    if (w->no_events || (w->types != 0 && (w->types & (1u << type)) == 0))
        return false;
    if (w->n_rooms == 0 && w->n_channels == 0)
        return true;
    if (room_id != NULL && room_id[0] != '\0')
        return in_list(w->rooms, w->n_rooms, room_id);
    if (channel_id != NULL && channel_id[0] != '\0')
        return in_list(w->channels, w->n_channels, channel_id);
    return true;
}

/* Packs `ev` once, for the first watcher that wants it, and queues it on every such watcher. */
static void publish(struct cp_ctx *c, enum ev_type type, Switchboard__V1__Event *ev)
{
    struct blob *b = NULL;
    for (struct watcher *w = c->watchers; w != NULL; w = w->next) {
        if (w->over || w->killed || !matches(w, type, ev->room_id, ev->channel_id))
            continue;
        if (b == NULL) {
            size_t len = protobuf_c_message_get_packed_size(&ev->base);
            b = malloc(sizeof(*b) + len);
            if (b == NULL) {
                SB_LOG_ERROR("cp", "out of memory packing an event", "type=%s",
                             cp_watch_types[type]);
                return;
            }
            b->refs = 1; /* ours, dropped below */
            b->len = protobuf_c_message_pack(&ev->base, b->data);
        }
        push(w, b);
    }
    blob_unref(b);
}

static Switchboard__V1__Event event_init(enum ev_type type, int64_t ts)
{
    Switchboard__V1__Event ev = SWITCHBOARD__V1__EVENT__INIT;
    ev.type = (char *)cp_watch_types[type];
    ev.timestamp = ts;
    return ev;
}

/* Points pm->metadata at entries for `kv` (allocated: free *ents and pm->metadata after use).
 * False on ENOMEM. */
static bool set_metadata(Switchboard__V1__Message *pm, const struct cp_kv *kv, size_t n,
                         Switchboard__V1__Message__MetadataEntry **ents)
{
    *ents = NULL;
    if (n == 0)
        return true;
    Switchboard__V1__Message__MetadataEntry *e = calloc(n, sizeof(*e));
    Switchboard__V1__Message__MetadataEntry **p = calloc(n, sizeof(*p));
    if (e == NULL || p == NULL) {
        free(e);
        free(p);
        SB_LOG_ERROR("cp", "out of memory building an event", NULL);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        Switchboard__V1__Message__MetadataEntry me = SWITCHBOARD__V1__MESSAGE__METADATA_ENTRY__INIT;
        me.key = kv[i].key;
        me.value = kv[i].value;
        e[i] = me;
        p[i] = &e[i];
    }
    *ents = e;
    pm->metadata = p;
    pm->n_metadata = n;
    return true;
}

struct message_ev {
    struct cp_ctx *c;
    enum ev_type type;
    const struct cp_message *m;
};

static void message_pb(void *arg, const Switchboard__V1__Message *pm)
{
    const struct message_ev *me = arg;
    const struct cp_message *m = me->m;
    int64_t ts = m->timestamp;
    if (me->type == T_MESSAGE_UPDATED)
        ts = m->deleted ? m->deleted_at : (m->edited_at ? m->edited_at : sb_time_now_ms());
    Switchboard__V1__Event ev = event_init(me->type, ts);
    ev.room_id = m->room_id;
    ev.user_id = pm->user_id;
    ev.message = (Switchboard__V1__Message *)pm;
    publish(me->c, me->type, &ev);
}

/* The message as the history methods show it (cp_rpc_history.c): edits and reactions
 * included. */
static void message_event(struct cp_ctx *c, enum ev_type type, const struct cp_message *m)
{
    struct message_ev me = {c, type, m};
    if (!cp_rpc_history_message(m, message_pb, &me))
        SB_LOG_ERROR("cp", "message event not built", "room=%s seq=%lld", m->room_id,
                     (long long)m->seq);
}

void cp_watch_store_event(void *ctx, const struct cp_store_event *sev)
{
    struct cp_ctx *c = ctx;
    if (c->watchers == NULL)
        return;
    switch (sev->kind) {
    case CP_STORE_EV_MESSAGE:
    case CP_STORE_EV_MESSAGE_UPDATE:
        if (sev->message != NULL)
            message_event(c, sev->kind == CP_STORE_EV_MESSAGE ? T_MESSAGE : T_MESSAGE_UPDATED,
                          sev->message);
        break;
    case CP_STORE_EV_MEMBER_ADDED:
    case CP_STORE_EV_MEMBER_REMOVED: {
        if (sev->room_id == NULL || sev->user_id == NULL)
            break;
        bool added = sev->kind == CP_STORE_EV_MEMBER_ADDED;
        int64_t ts = added && sev->member != NULL && sev->member->joined_at > 0
                         ? sev->member->joined_at
                         : sb_time_now_ms();
        Switchboard__V1__Event ev = event_init(added ? T_JOIN : T_LEAVE, ts);
        ev.room_id = (char *)sev->room_id;
        ev.user_id = (char *)sev->user_id;
        publish(c, added ? T_JOIN : T_LEAVE, &ev);
        break;
    }
    default:
        break;
    }
}

void cp_watch_presence(void *ud, const struct cp_presence_view *v, int connections)
{
    struct cp_ctx *c = ud;
    if (c->watchers == NULL)
        return;
    Switchboard__V1__PresenceState ps = SWITCHBOARD__V1__PRESENCE_STATE__INIT;
    Switchboard__V1__Device dev = SWITCHBOARD__V1__DEVICE__INIT;
    Switchboard__V1__Activity act = SWITCHBOARD__V1__ACTIVITY__INIT;
    ps.user_id = (char *)v->user_id;
    ps.status = (char *)(v->status ? v->status : "offline");
    ps.last_seen = v->timestamp;
    ps.custom_status = (char *)(v->custom_status ? v->custom_status : "");
    ps.availability = (char *)(v->availability ? v->availability : "");
    ps.connection_count = connections;
    if ((v->device_type && v->device_type[0]) || (v->device_name && v->device_name[0])) {
        dev.type = (char *)(v->device_type ? v->device_type : "");
        dev.name = (char *)(v->device_name ? v->device_name : "");
        ps.device = &dev;
    }
    if ((v->activity_type && v->activity_type[0]) ||
        (v->activity_detail && v->activity_detail[0])) {
        act.type = (char *)(v->activity_type ? v->activity_type : "");
        act.detail = (char *)(v->activity_detail ? v->activity_detail : "");
        ps.activity = &act;
    }
    Switchboard__V1__Event ev = event_init(T_PRESENCE, v->timestamp);
    ev.user_id = ps.user_id;
    ev.presence = &ps;
    publish(c, T_PRESENCE, &ev);
}

void cp_watch_channel_message(void *ud, const char *channel_id, const char *message_id,
                              const char *user_id, const char *data, size_t data_len,
                              const struct cp_kv *metadata, size_t n_metadata, int64_t timestamp)
{
    struct cp_ctx *c = ud;
    if (c->watchers == NULL)
        return;
    Switchboard__V1__Message__MetadataEntry *ents;
    Switchboard__V1__Message pm = SWITCHBOARD__V1__MESSAGE__INIT;
    if (!set_metadata(&pm, metadata, n_metadata, &ents))
        return;
    pm.id = (char *)(message_id ? message_id : "");
    pm.channel_id = (char *)channel_id;
    pm.user_id = (char *)(user_id ? user_id : "");
    pm.data.data = (uint8_t *)data;
    pm.data.len = data_len;
    pm.timestamp = timestamp;
    Switchboard__V1__Event ev = event_init(T_CHANNEL_MESSAGE, timestamp);
    ev.channel_id = pm.channel_id;
    ev.user_id = pm.user_id;
    ev.message = &pm;
    publish(c, T_CHANNEL_MESSAGE, &ev);
    free(ents);
    free(pm.metadata);
}

void cp_watch_attach(struct cp_ctx *c)
{
    c->hooks.ud = c;
    c->hooks.presence = cp_watch_presence;
    c->hooks.channel_message = cp_watch_channel_message;
    if (c->store != NULL && c->store->ops->observe != NULL)
        c->store->ops->observe(c->store, cp_watch_store_event, c);
    else
        SB_LOG_WARN("cp", "the store reports no changes: WatchEvents sees presence only", NULL);
}

/* ---------------------------------------------------------------- the call */

static bool copy_list(char *const *src, size_t n, char ***out)
{
    *out = NULL;
    if (n == 0)
        return true;
    char **v = calloc(n, sizeof(*v));
    if (v == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        v[i] = strdup(src[i]);
        if (v[i] == NULL) {
            free_list(v, i);
            return false;
        }
    }
    *out = v;
    return true;
}

/* Takes the call as a watcher (filters already set in `w`), sends the headers and `first`
 * (NULL: none) at once. */
static void open_watcher(struct cp_ctx *c, struct watcher *w, struct cp_call *call,
                         const ProtobufCMessage *first)
{
    w->c = c;
    w->meta_tag.fn = on_meta;
    w->send_tag.fn = on_send;
    w->close_tag.fn = on_close;
    w->call = cp_call_detach(call); /* frees the request: the caller copied what it needs */
    w->refs = 1;                    /* dropped at the end of this function */
    w->next = c->watchers;
    if (c->watchers != NULL)
        ((struct watcher *)c->watchers)->prev = w;
    c->watchers = w;

    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &w->cancelled;
    start(w, &op, 1, &w->close_tag);
    /* Headers now: the client knows the watch is in place before the first event. */
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_INITIAL_METADATA;
    start(w, &op, 1, &w->meta_tag);
    if (c->stopping) {
        kill_watcher(w, GRPC_STATUS_UNAVAILABLE, "unavailable: control plane shutting down");
    } else if (first != NULL) {
        size_t len = protobuf_c_message_get_packed_size(first);
        struct blob *b = malloc(sizeof(*b) + len);
        if (b == NULL) {
            kill_watcher(w, GRPC_STATUS_RESOURCE_EXHAUSTED, "internal: out of memory");
        } else {
            b->refs = 1;
            b->len = protobuf_c_message_pack(first, b->data);
            push(w, b);
            blob_unref(b);
        }
    }
    SB_LOG_DEBUG("cp", "watcher added", "rooms=%zu channels=%zu types=0x%x", w->n_rooms,
                 w->n_channels, w->types);
    unref(w);
}

void cp_watch_health(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *status)
{
    struct watcher *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    w->no_events = true;
    open_watcher(c, w, call, status);
}

void cp_rpc_connections_watch(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Switchboard__V1__WatchEventsRequest *req = (const void *)m;
    if (req->n_room_ids > MAX_FILTER || req->n_channel_ids > MAX_FILTER ||
        req->n_types > MAX_FILTER) {
        cp_call_failf(call, SB_CODE_INVALID_MESSAGE,
                      "room_ids, channel_ids and types take at most %d entries each", MAX_FILTER);
        return;
    }
    for (size_t i = 0; i < req->n_room_ids; i++)
        if (!cp_check_id(call, "room_ids[]", req->room_ids[i]))
            return;
    for (size_t i = 0; i < req->n_channel_ids; i++) {
        if (!sb_ident_is_valid_channel(req->channel_ids[i])) {
            cp_call_failf(call, SB_CODE_INVALID_MESSAGE, "channel_ids[] is not a valid channel id");
            return;
        }
    }
    unsigned types = 0;
    for (size_t i = 0; i < req->n_types; i++) {
        size_t k = 0;
        while (cp_watch_types[k] != NULL && strcmp(cp_watch_types[k], req->types[i]) != 0)
            k++;
        if (cp_watch_types[k] == NULL) {
            cp_call_failf(call, SB_CODE_INVALID_MESSAGE,
                          "unknown event type in types (known: message, message_updated, join, "
                          "leave, presence, channel_message)");
            return;
        }
        types |= 1u << k;
    }
    struct watcher *w = calloc(1, sizeof(*w));
    if (w == NULL || !copy_list(req->room_ids, req->n_room_ids, &w->rooms) ||
        !copy_list(req->channel_ids, req->n_channel_ids, &w->channels)) {
        if (w != NULL) {
            free_list(w->rooms, w->rooms ? req->n_room_ids : 0);
            free(w);
        }
        cp_call_failf(call, SB_CODE_INTERNAL, "out of memory");
        return;
    }
    w->n_rooms = req->n_room_ids;
    w->n_channels = req->n_channel_ids;
    w->types = types;
    open_watcher(c, w, call, NULL);
}

size_t cp_watch_count(const struct cp_ctx *c)
{
    size_t n = 0;
    for (const struct watcher *w = c->watchers; w != NULL; w = w->next)
        if (!w->over && !w->killed)
            n++;
    return n;
}

void cp_watch_stop_all(struct cp_ctx *c)
{
    for (struct watcher *w = c->watchers; w != NULL; w = w->next)
        kill_watcher(w, GRPC_STATUS_UNAVAILABLE, "unavailable: control plane shutting down");
}

void cp_watch_free_all(struct cp_ctx *c)
{
    while (c->watchers != NULL) {
        struct watcher *w = c->watchers;
        SB_LOG_WARN("cp", "freeing a watcher left after shutdown", "refs=%d", w->refs);
        watcher_free(w);
    }
}
