/* gRPC core server: the method table, request posting, unary call finishing, the loop.
 *
 * Threads:
 *   - main thread (cp_main.c): parses options, blocks SIGINT/SIGTERM, starts the server, waits
 *     in sigwait, then runs cp_server_stop (shutdown_and_notify, grace, cancel, drain, join).
 *   - the completion-queue thread (loop() below): the ONLY thread that touches control-plane
 *     state (struct cp_ctx: Store, connections, presence, typing, nodes). It handles every
 *     gRPC event (unary calls, WatchEvents server streams (cp_watch.c: a STREAM method's
 *     handler takes the call with cp_call_detach) and all NodeLink streams), runs timers
 *     (session and idempotency sweeps, typing expiry, presence grace, NodeLink heartbeat
 *     checks) by giving grpc_completion_queue_next a deadline no later than the next timer,
 *     and after each event flushes the NodeLink queues it filled.
 *   - gRPC's own internal threads (resolver, executor), which never call into our code.
 *   - the etcd client thread (etcd mode, cp_etcd.c): libcurl only. Every answer and watch
 *     batch is copied and posted to a locked FIFO (cp_handoff.c); posting into an empty FIFO
 *     wakes this loop at once by starting grpc_channel_watch_connectivity_state on a channel
 *     that never connects, with a deadline already passed: gRPC posts the wake tag to our
 *     completion queue from whatever thread asked (measured: see docs/distributed.md). The
 *     loop drains the FIFO after every event, so Store callbacks run here, never there.
 *   Store operations complete through callbacks. The memory store completes inline on the
 *   completion-queue thread. Nothing on this thread may block.
 */
#include "cp_server.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "cp_auth.h"
#include "cp_call.h"
#include "cp_changes.h"
#include "cp_handoff.h"
#include "cp_link.h"
#include "cp_authorizer.h"
#include "cp_peer.h"
#include "cp_rpc.h"
#include "cp_rpc_peer.h"
#include "cp_cluster_etcd.h"
#include "cp_store_etcd.h"
#include "cp_session.h"
#include "cp_online.h"
#include "cp_store_memory.h"
#include "cp_typing.h"
#include "cp_retention.h"
#include "cp_once.h"
#include "cp_tag.h"
#include "cp_watch.h"
#include "sb_log.h"
#include "sb_pb.h"
#include "sb_time.h"

#include "grpc/health/v1/health.pb-c.h"
#include "switchboard/internal/v1/nodelink.pb-c.h"
#include "switchboard/v1/channels.pb-c.h"
#include "switchboard/v1/connections.pb-c.h"
#include "switchboard/v1/messages.pb-c.h"
#include "switchboard/v1/presence.pb-c.h"
#include "switchboard/v1/rooms.pb-c.h"

#define CP_TICK_MS          200
#define CP_MAX_MESSAGE_SIZE (64 * 1024 * 1024)

enum method_kind { UNARY, STREAM, LINK };

struct cp_method {
    const char *path; /* "/switchboard.v1.Rooms/CreateRoom" */
    const char *name; /* "Rooms.CreateRoom" */
    enum method_kind kind;
    const ProtobufCMessageDescriptor *req;
    cp_rpc_fn *fn; /* NULL: unimplemented */
    void *handle;  /* from grpc_server_register_method */
};

#define RPC(svc, m, desc, fn)                                                                      \
    {                                                                                              \
        "/switchboard.v1." svc "/" m, svc "." m, UNARY, &desc, fn, NULL                            \
    }
#define STREAM_RPC(svc, m, desc, fn)                                                               \
    {                                                                                              \
        "/switchboard.v1." svc "/" m, svc "." m, STREAM, &desc, fn, NULL                           \
    }

static struct cp_method methods[] = {
    RPC("Rooms", "CreateRoom", switchboard__v1__create_room_request__descriptor,
        cp_rpc_rooms_create),
    RPC("Rooms", "GetRoom", switchboard__v1__get_room_request__descriptor, cp_rpc_rooms_get),
    RPC("Rooms", "ListRooms", switchboard__v1__list_rooms_request__descriptor, cp_rpc_rooms_list),
    RPC("Rooms", "UpdateRoom", switchboard__v1__update_room_request__descriptor,
        cp_rpc_rooms_update),
    RPC("Rooms", "DeleteRoom", switchboard__v1__delete_room_request__descriptor,
        cp_rpc_rooms_delete),
    RPC("Rooms", "ArchiveRoom", switchboard__v1__archive_room_request__descriptor,
        cp_rpc_rooms_archive),
    RPC("Rooms", "RestoreRoom", switchboard__v1__restore_room_request__descriptor,
        cp_rpc_rooms_restore),
    RPC("Rooms", "TransferRoomOwnership",
        switchboard__v1__transfer_room_ownership_request__descriptor, cp_rpc_rooms_transfer),
    RPC("Rooms", "JoinRoom", switchboard__v1__join_room_request__descriptor, cp_rpc_rooms_join),
    RPC("Rooms", "BulkJoinRoom", switchboard__v1__bulk_join_room_request__descriptor,
        cp_rpc_rooms_bulk_join),
    RPC("Rooms", "LeaveRoom", switchboard__v1__leave_room_request__descriptor, cp_rpc_rooms_leave),
    RPC("Rooms", "GetRoomMembers", switchboard__v1__get_room_members_request__descriptor,
        cp_rpc_rooms_members),
    RPC("Rooms", "SetMemberRole", switchboard__v1__set_member_role_request__descriptor,
        cp_rpc_rooms_set_role),
    RPC("Rooms", "BanMember", switchboard__v1__ban_member_request__descriptor, cp_rpc_rooms_ban),
    RPC("Rooms", "UnbanMember", switchboard__v1__unban_member_request__descriptor,
        cp_rpc_rooms_unban),
    RPC("Rooms", "ListBans", switchboard__v1__list_bans_request__descriptor, cp_rpc_rooms_bans),
    RPC("Rooms", "CreateInvite", switchboard__v1__create_invite_request__descriptor,
        cp_rpc_rooms_invite),
    RPC("Rooms", "AcceptInvite", switchboard__v1__accept_invite_request__descriptor,
        cp_rpc_rooms_accept),
    RPC("Channels", "CreateChannel", switchboard__v1__create_channel_request__descriptor,
        cp_rpc_channels_create),
    RPC("Channels", "DeleteChannel", switchboard__v1__delete_channel_request__descriptor,
        cp_rpc_channels_delete),
    RPC("Channels", "ListChannels", switchboard__v1__list_channels_request__descriptor,
        cp_rpc_channels_list),
    RPC("Channels", "Subscribe", switchboard__v1__subscribe_request__descriptor,
        cp_rpc_channels_subscribe),
    RPC("Channels", "Unsubscribe", switchboard__v1__unsubscribe_request__descriptor,
        cp_rpc_channels_unsubscribe),
    RPC("Channels", "ListSubscribers", switchboard__v1__list_subscribers_request__descriptor,
        cp_rpc_channels_subscribers),
    RPC("Messages", "Broadcast", switchboard__v1__broadcast_request__descriptor,
        cp_rpc_messages_broadcast),
    RPC("Messages", "BroadcastToRoom", switchboard__v1__broadcast_to_room_request__descriptor,
        cp_rpc_messages_to_room),
    RPC("Messages", "BroadcastToChannel", switchboard__v1__broadcast_to_channel_request__descriptor,
        cp_rpc_messages_to_channel),
    RPC("Messages", "SendToUser", switchboard__v1__send_to_user_request__descriptor,
        cp_rpc_messages_to_user),
    RPC("Messages", "SendToConnection", switchboard__v1__send_to_connection_request__descriptor,
        cp_rpc_messages_to_connection),
    RPC("Messages", "SaveMessage", switchboard__v1__save_message_request__descriptor,
        cp_rpc_history_save),
    RPC("Messages", "GetHistory", switchboard__v1__get_history_request__descriptor,
        cp_rpc_messages_history),
    RPC("Messages", "EditMessage", switchboard__v1__edit_message_request__descriptor,
        cp_rpc_history_edit),
    RPC("Messages", "DeleteMessage", switchboard__v1__delete_message_request__descriptor,
        cp_rpc_history_delete),
    RPC("Messages", "AddReaction", switchboard__v1__add_reaction_request__descriptor,
        cp_rpc_history_react),
    RPC("Messages", "RemoveReaction", switchboard__v1__remove_reaction_request__descriptor,
        cp_rpc_history_unreact),
    RPC("Messages", "SearchMessages", switchboard__v1__search_messages_request__descriptor,
        cp_rpc_history_search),
    RPC("Presence", "SetPresence", switchboard__v1__set_presence_request__descriptor,
        cp_rpc_presence_set),
    RPC("Presence", "GetPresence", switchboard__v1__get_presence_request__descriptor,
        cp_rpc_presence_get),
    RPC("Presence", "GetOnlineUsers", switchboard__v1__get_online_users_request__descriptor,
        cp_rpc_presence_online),
    RPC("Presence", "TrackActivity", switchboard__v1__track_activity_request__descriptor,
        cp_rpc_presence_activity),
    RPC("Presence", "StartTyping", switchboard__v1__start_typing_request__descriptor,
        cp_rpc_presence_typing_start),
    RPC("Presence", "StopTyping", switchboard__v1__stop_typing_request__descriptor,
        cp_rpc_presence_typing_stop),
    RPC("Presence", "GetTypingUsers", switchboard__v1__get_typing_users_request__descriptor,
        cp_rpc_presence_typing_list),
    RPC("Connections", "ListConnections", switchboard__v1__list_connections_request__descriptor,
        cp_rpc_connections_list),
    RPC("Connections", "KickConnection", switchboard__v1__kick_connection_request__descriptor,
        cp_rpc_connections_kick),
    RPC("Connections", "GetStats", switchboard__v1__get_stats_request__descriptor,
        cp_rpc_connections_stats),
    STREAM_RPC("Connections", "WatchEvents", switchboard__v1__watch_events_request__descriptor,
               cp_rpc_connections_watch),
    {"/grpc.health.v1.Health/Check", "Health.Check", UNARY,
     &grpc__health__v1__health_check_request__descriptor, cp_rpc_health_check, NULL},
    {"/grpc.health.v1.Health/Watch", "Health.Watch", STREAM,
     &grpc__health__v1__health_check_request__descriptor, cp_rpc_health_watch, NULL},
    {"/switchboard.internal.v1.NodeLink/Link", "NodeLink.Link", LINK, NULL, NULL, NULL},
    {"/switchboard.internal.v1.Peer/Publish", "Peer.Publish", UNARY,
     &switchboard__internal__v1__peer_publish_request__descriptor, cp_rpc_peer_publish, NULL},
};

#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

struct cp_server {
    grpc_server *server;
    grpc_completion_queue *cq;
    pthread_t thread;
    struct cp_ctx ctx;
    atomic_int stopping; /* set by the main thread: stop re-posting requests */
    int links_stopped;   /* the loop ended the NodeLink streams */
    int64_t grace_ms;
    struct cp_tag shutdown_tag;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int shutdown_done; /* guarded by mu */
    struct cp_handoff *handoff;
    grpc_channel *wake_ch; /* never connects: its connectivity watch is our wake-up */
    struct cp_tag wake_tag;
    atomic_int wake_armed;
    atomic_int wake_closed;     /* no more wakes (the queue is shutting down) */
    struct sb_secret *api_keys; /* borrowed from the options; re-read by secrets_tick */
};

static void call_event(struct cp_tag *t, bool ok);

/* ---------------------------------------------------------------- posting requests */

static void post(struct cp_server *s, struct cp_method *m)
{
    if (atomic_load(&s->stopping))
        return;
    struct cp_call *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        SB_LOG_ERROR("cp", "out of memory posting a request", "method=%s", m ? m->name : "*");
        return;
    }
    c->tag.fn = call_event;
    c->owner = s;
    c->method = m;
    c->generic = m == NULL;
    grpc_metadata_array_init(&c->md);
    grpc_call_error err;
    if (m == NULL) {
        grpc_call_details_init(&c->details);
        err = grpc_server_request_call(s->server, &c->call, &c->details, &c->md, s->cq, s->cq,
                                       &c->tag);
    } else {
        err = grpc_server_request_registered_call(s->server, m->handle, &c->call, &c->deadline,
                                                  &c->md, m->kind == LINK ? NULL : &c->payload,
                                                  s->cq, s->cq, &c->tag);
    }
    if (err != GRPC_CALL_OK) {
        SB_LOG_ERROR("cp", "cannot post a request", "method=%s err=%d", m ? m->name : "*",
                     (int)err);
        grpc_metadata_array_destroy(&c->md);
        if (m == NULL)
            grpc_call_details_destroy(&c->details);
        free(c);
    }
}

/* ---------------------------------------------------------------- dispatch */

static void dispatch(struct cp_call *c)
{
    struct cp_server *s = c->owner;
    struct cp_method *m = c->method;
    char msg[512];
    if (m == NULL) {
        char path[256];
        size_t len = GRPC_SLICE_LENGTH(c->details.method);
        if (len >= sizeof(path))
            len = sizeof(path) - 1;
        memcpy(path, GRPC_SLICE_START_PTR(c->details.method), len);
        path[len] = '\0';
        for (size_t i = 0; i < len; i++) {
            if ((unsigned char)path[i] < 0x20 || (unsigned char)path[i] >= 0x7f)
                path[i] = '?';
        }
        snprintf(msg, sizeof(msg), "unimplemented: unknown method %s", path);
        SB_LOG_DEBUG("cp", "unknown method", "path=\"%s\"", path);
        cp_call_status(c, GRPC_STATUS_UNIMPLEMENTED, msg);
        return;
    }
    if (m->fn == NULL) {
        snprintf(msg, sizeof(msg), "unimplemented: %s", m->name);
        cp_call_status(c, GRPC_STATUS_UNIMPLEMENTED, msg);
        return;
    }
    enum sb_err err = sb_pb_unpack(c->payload, m->req, CP_MAX_MESSAGE_SIZE, &c->req);
    if (err != SB_OK) {
        cp_call_failf(c, SB_CODE_INVALID_MESSAGE, "the request is not a valid %s", m->req->name);
        return;
    }
    m->fn(&s->ctx, c, c->req);
}

/* ---------------------------------------------------------------- credentials */

static bool has_prefix(const char *s, size_t len, const char *p)
{
    size_t n = strlen(p);
    return len >= n && memcmp(s, p, n) == 0;
}

/* The credential check every call passes before anything else sees it (docs/security.md):
 * switchboard.v1.* needs an API key, switchboard.internal.v1.* (NodeLink, Peer) the cluster
 * secret, when they are configured. An unknown method under those prefixes is checked the
 * same way, so a caller without the credential cannot tell which methods exist; other paths
 * (grpc.health.v1, unknown services) pass. True when the call may go on; otherwise the call
 * is finished with UNAUTHENTICATED "unauthorized: ...". */
static bool authorized(struct cp_server *s, struct cp_call *c)
{
    const char *path;
    size_t len;
    if (c->method != NULL) {
        path = c->method->path;
        len = strlen(path);
    } else {
        path = (const char *)GRPC_SLICE_START_PTR(c->details.method);
        len = GRPC_SLICE_LENGTH(c->details.method);
    }
    const struct sb_secret *keys;
    const char *what;
    if (has_prefix(path, len, "/switchboard.v1.")) {
        keys = s->api_keys;
        what = "API key";
    } else if (has_prefix(path, len, "/switchboard.internal.v1.")) {
        keys = s->ctx.cluster_secret;
        what = "cluster secret";
    } else {
        return true;
    }
    enum cp_auth a = cp_auth_check(keys, &c->md);
    if (a == CP_AUTH_OK)
        return true;
    const char *why = a == CP_AUTH_MISSING ? "missing" : "invalid";
    char *peer = c->call != NULL ? grpc_call_get_peer(c->call) : NULL;
    SB_LOG_DEBUG("cp", "call refused: no valid credential",
                 "method=%s credential=\"%s %s\" peer=%s",
                 c->method != NULL ? c->method->name : "*", why, what, peer != NULL ? peer : "-");
    gpr_free(peer);
    cp_call_failf(c, SB_CODE_UNAUTHORIZED, "%s %s", why, what);
    return false;
}

static void call_event(struct cp_tag *t, bool ok)
{
    struct cp_call *c = CP_CONTAINER_OF(t, struct cp_call, tag);
    struct cp_server *s = c->owner;
    if (c->finishing) {
        cp_call_free(c);
        return;
    }
    if (!ok) {
        /* The server is shutting down: the request was never matched. */
        cp_call_free(c);
        return;
    }
    post(s, c->method); /* keep one request posted per method (and the generic one) */
    if (!authorized(s, c))
        return;
    if (c->method != NULL && c->method->kind == LINK) {
        grpc_call *call = c->call;
        c->call = NULL;
        cp_call_free(c);
        cp_link_accept(&s->ctx, s->cq, call);
        return;
    }
    dispatch(c);
}

/* ---------------------------------------------------------------- the loop */

static void shutdown_event(struct cp_tag *t, bool ok)
{
    struct cp_server *s = CP_CONTAINER_OF(t, struct cp_server, shutdown_tag);
    pthread_mutex_lock(&s->mu);
    s->shutdown_done = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---------------------------------------------------------------- cross-thread wake */

/* Any thread: make grpc_completion_queue_next return now (one wake in flight at a time). */
static void wake(void *ud)
{
    struct cp_server *s = ud;
    if (atomic_load(&s->wake_closed) || atomic_exchange(&s->wake_armed, 1))
        return;
    grpc_connectivity_state st = grpc_channel_check_connectivity_state(s->wake_ch, 0);
    grpc_channel_watch_connectivity_state(s->wake_ch, st, gpr_time_0(GPR_CLOCK_MONOTONIC), s->cq,
                                          &s->wake_tag);
}

static void wake_event(struct cp_tag *t, bool ok)
{
    (void)ok;
    struct cp_server *s = CP_CONTAINER_OF(t, struct cp_server, wake_tag);
    atomic_store(&s->wake_armed, 0);
    /* The loop drains the handoff after every event. */
}

static void flush_links(struct cp_server *s)
{
    struct cp_node *n;
    while ((n = cp_fanout_pop_dirty(&s->ctx.fan)) != NULL)
        cp_link_flush(n);
}

/* ---------------------------------------------------------------- composition */

/* The timers of every layer, in the order they run at each loop pass. */
static void typing_tick(void *c, int64_t now)
{
    cp_typing_tick(c, now);
}

static int64_t typing_next(const void *c)
{
    return cp_typing_next_deadline(c);
}

static void online_tick(void *c, int64_t now)
{
    cp_online_tick(c, now);
}

static int64_t online_next(const void *c)
{
    return cp_online_next_deadline(c);
}

static void retention_tick(void *c, int64_t now)
{
    cp_retention_tick(c, now);
}

static int64_t retention_next(const void *c)
{
    return cp_retention_next_deadline(c);
}

static void cluster_tick(void *c, int64_t now)
{
    struct cp_cluster *cl = ((struct cp_ctx *)c)->cluster;
    cl->ops->tick(cl, now);
}

static void peer_tick(void *c, int64_t now)
{
    cp_peer_tick(c, now);
}

static void link_tick(void *c, int64_t now)
{
    cp_link_tick(c, now);
}

static void session_tick(void *c, int64_t now)
{
    cp_session_tick(c, now);
}

static void once_tick(void *c, int64_t now)
{
    cp_once_tick(c, now);
}

/* Key files are looked at (stat) at most once a second, never per call. */
static void secrets_tick(void *ud, int64_t now)
{
    struct cp_server *s = ud;
    sb_secret_refresh(s->api_keys, now);
    sb_secret_refresh(s->ctx.cluster_secret, now);
}

/* Registers what flows up from the flows (timers, WatchEvents, publish forwarding) once the
 * store is open: the only place that knows every layer. */
static void wire(struct cp_server *s)
{
    struct cp_ctx *c = &s->ctx;
    cp_ctx_add_timer(c, typing_tick, typing_next, c);
    cp_ctx_add_timer(c, online_tick, online_next, c);
    cp_ctx_add_timer(c, retention_tick, retention_next, c);
    cp_ctx_add_timer(c, cluster_tick, NULL, c);
    if (c->distributed) {
        cp_ctx_add_timer(c, peer_tick, NULL, c);
        c->publish_via = cp_peer_publish;
    }
    cp_ctx_add_timer(c, link_tick, NULL, c);
    cp_ctx_add_timer(c, once_tick, NULL, c);
    cp_ctx_add_timer(c, session_tick, NULL, c);
    if (s->api_keys != NULL || c->cluster_secret != NULL)
        cp_ctx_add_timer(c, secrets_tick, NULL, s);
    cp_watch_attach(c);
}

static void *loop(void *arg)
{
    struct cp_server *s = arg;
    for (;;) {
        int64_t now = sb_time_mono_ms();
        int64_t wake = now + CP_TICK_MS;
        int64_t next = cp_ctx_next_deadline(&s->ctx);
        if (next != 0 && next < wake)
            wake = next;
        gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                             gpr_time_from_millis(wake - now, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(s->cq, deadline, NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type == GRPC_OP_COMPLETE) {
            struct cp_tag *t = ev.tag;
            t->fn(t, ev.success != 0);
        }
        if (s->handoff != NULL)
            cp_handoff_drain(s->handoff);
        now = sb_time_mono_ms();
        cp_ctx_tick(&s->ctx, now);
        if (atomic_load(&s->stopping) && !s->links_stopped) {
            s->links_stopped = 1;
            s->ctx.stopping = 1;
            cp_link_stop_all(&s->ctx);
            cp_watch_stop_all(&s->ctx);
            cp_peer_stop(&s->ctx);
            cp_authorizer_stop(&s->ctx);
        }
        flush_links(s);
    }
    return NULL;
}

/* ---------------------------------------------------------------- start and stop */

static void grpc_log(gpr_log_func_args *args)
{
    enum sb_log_level level = SB_LOG_INFO;
    if (args->severity == GPR_LOG_SEVERITY_DEBUG)
        level = SB_LOG_DEBUG;
    else if (args->severity == GPR_LOG_SEVERITY_ERROR)
        level = SB_LOG_ERROR;
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", args->message ? args->message : "");
    sb_log(level, "grpc", msg, "file=%s line=%d", args->file ? args->file : "-", args->line);
}

enum sb_err cp_server_start(const struct cp_server_opts *o, struct cp_server **out)
{
    gpr_set_log_function(grpc_log);
    struct cp_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return SB_ENOMEM;
    s->wake_tag.fn = wake_event;
    s->cq = grpc_completion_queue_create_for_next(NULL);
    struct cp_store *store = NULL;
    cp_ctx_init(&s->ctx, &o->settings, NULL);
    if (o->id != NULL && o->id[0] != '\0')
        snprintf(s->ctx.id, sizeof(s->ctx.id), "%s", o->id);
    s->ctx.cq = s->cq;
    enum sb_err serr = SB_OK;
    if (o->authorizer != NULL && o->authorizer[0] != '\0')
        serr = cp_authorizer_start(&s->ctx, o->authorizer, o->authorizer_timeout_ms);
    if (o->etcd_endpoints != NULL) {
        grpc_channel_credentials *wc = grpc_insecure_credentials_create();
        s->wake_ch = grpc_channel_create("unix:/nonexistent/switchboard-wake", wc, NULL);
        grpc_channel_credentials_release(wc);
        serr = cp_handoff_create(wake, s, &s->handoff);
        struct cp_store_etcd_config ec = {
            .endpoints = o->etcd_endpoints,
            .cp_id = s->ctx.id,
            .advertise = (o->advertise && o->advertise[0]) ? o->advertise : o->listen,
            .lease_ttl_ms = o->lease_ttl_ms > 0 ? o->lease_ttl_ms : 10000};
        cp_changes_hooks(&s->ctx, &ec.hooks);
        s->ctx.distributed = true;
        s->ctx.fan.by_id = true;
        s->ctx.lease_ttl_ms = ec.lease_ttl_ms;
        if (serr == SB_OK)
            serr = cp_store_etcd_open(&ec, s->handoff, &store);
        if (serr == SB_OK && (s->ctx.cluster = cp_cluster_etcd_create(store)) == NULL) {
            store->ops->destroy(store);
            serr = SB_ENOMEM;
        }
    } else {
        store = cp_store_memory_create();
        serr = store ? SB_OK : SB_ENOMEM;
        if (store != NULL) {
            struct cp_cluster_hooks hooks;
            cp_changes_hooks(&s->ctx, &hooks);
            cp_store_memory_set_hooks(store, &hooks);
        }
    }
    if (serr != SB_OK) {
        SB_LOG_ERROR("cp", "cannot open the store", "err=%s", sb_err_str(serr));
        cp_ctx_fini(&s->ctx);
        cp_handoff_destroy(s->handoff);
        if (s->wake_ch != NULL)
            grpc_channel_destroy(s->wake_ch);
        grpc_completion_queue_shutdown(s->cq);
        while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(s->cq);
        free(s);
        return serr;
    }
    s->ctx.store = store;
    s->api_keys = o->api_keys;
    s->ctx.cluster_secret = o->cluster_secret;
    wire(s);
    s->grace_ms = o->shutdown_grace_ms;
    s->shutdown_tag.fn = shutdown_event;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);

    grpc_arg args[] = {
        /* A second server on the same port must fail, not share it silently. */
        {GRPC_ARG_INTEGER, GRPC_ARG_ALLOW_REUSEPORT, {.integer = 0}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = CP_MAX_MESSAGE_SIZE}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, {.integer = CP_MAX_MESSAGE_SIZE}},
        /* Data planes ping on NodeLink (every >= 1 s); allow it, even between calls. */
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, {.integer = 1}},
        {GRPC_ARG_INTEGER,
         GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
         {.integer = 1000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_MAX_PING_STRIKES, {.integer = 0}},
        /* And find dead data planes ourselves. */
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIME_MS, {.integer = 20000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIMEOUT_MS, {.integer = 10000}},
    };
    grpc_channel_args chargs = {sizeof(args) / sizeof(args[0]), args};
    s->server = grpc_server_create(&chargs, NULL);
    grpc_server_register_completion_queue(s->server, s->cq, NULL);
    for (size_t i = 0; i < N_METHODS; i++) {
        struct cp_method *m = &methods[i];
        grpc_server_register_method_payload_handling ph =
            m->kind == LINK ? GRPC_SRM_PAYLOAD_NONE : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER;
        m->handle = grpc_server_register_method(s->server, m->path, NULL, ph, 0);
    }
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(s->server, o->listen, creds);
    grpc_server_credentials_release(creds);
    if (port == 0) {
        SB_LOG_ERROR("cp", "cannot listen (address in use or invalid)", "addr=%s", o->listen);
        grpc_server_destroy(s->server);
        if (s->handoff != NULL) {
            cp_store_etcd_stop(s->ctx.store);
            cp_handoff_drain(s->handoff);
            grpc_channel_destroy(s->wake_ch);
        }
        grpc_completion_queue_shutdown(s->cq);
        while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(s->cq);
        cp_ctx_fini(&s->ctx);
        cp_handoff_destroy(s->handoff);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s);
        return SB_EIO;
    }
    grpc_server_start(s->server);
    for (size_t i = 0; i < N_METHODS; i++)
        post(s, &methods[i]);
    post(s, NULL);
    if (pthread_create(&s->thread, NULL, loop, s) != 0) {
        SB_LOG_ERROR("cp", "cannot start the completion-queue thread", NULL);
        atomic_store(&s->stopping, 1);
        grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
        grpc_server_cancel_all_calls(s->server);
        grpc_completion_queue_shutdown(s->cq);
        grpc_event ev;
        while ((ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL))
                   .type != GRPC_QUEUE_SHUTDOWN) {
            struct cp_tag *t = ev.tag;
            if (ev.type == GRPC_OP_COMPLETE)
                t->fn(t, false);
        }
        grpc_server_destroy(s->server);
        grpc_completion_queue_destroy(s->cq);
        cp_ctx_fini(&s->ctx);
        free(s);
        return SB_EIO;
    }
    SB_LOG_INFO("cp", "listening", "addr=%s port=%d id=%s store=%s api_keys=%zu cluster_secret=%d",
                o->listen, port, s->ctx.id, s->ctx.distributed ? "etcd" : "memory",
                sb_secret_count(s->api_keys), s->ctx.cluster_secret != NULL);
    *out = s;
    return SB_OK;
}

static int wait_shutdown(struct cp_server *s, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (!s->shutdown_done) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0)
            break;
    }
    int done = s->shutdown_done;
    pthread_mutex_unlock(&s->mu);
    return done;
}

void cp_server_stop(struct cp_server *s)
{
    SB_LOG_INFO("cp", "stopping", "grace_ms=%lld", (long long)s->grace_ms);
    atomic_store(&s->stopping, 1);
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
    if (!wait_shutdown(s, s->grace_ms)) {
        SB_LOG_WARN("cp", "grace period over: cancelling the remaining calls", NULL);
        grpc_server_cancel_all_calls(s->server);
        if (!wait_shutdown(s, 10000))
            SB_LOG_ERROR("cp", "calls did not end after cancel", NULL);
    }
    if (s->ctx.distributed) {
        /* Pending etcd answers become "unavailable" and run on the loop, which still turns. */
        cp_store_etcd_stop(s->ctx.store);
        int64_t t0 = sb_time_mono_ms();
        while (sb_time_mono_ms() - t0 < 300)
            usleep(10000);
        atomic_store(&s->wake_closed, 1);
        grpc_channel_destroy(s->wake_ch);
        s->wake_ch = NULL;
    }
    grpc_completion_queue_shutdown(s->cq);
    pthread_join(s->thread, NULL);
    grpc_server_destroy(s->server);
    grpc_completion_queue_destroy(s->cq);
    if (s->handoff != NULL)
        cp_handoff_drain(s->handoff);
    cp_link_free_all(&s->ctx);
    cp_watch_free_all(&s->ctx);
    cp_peer_fini(&s->ctx);
    cp_authorizer_fini(&s->ctx);
    if (s->ctx.distributed)
        cp_cluster_etcd_destroy(s->ctx.cluster);
    s->ctx.cluster = cp_cluster_single();
    cp_ctx_fini(&s->ctx);
    cp_handoff_destroy(s->handoff);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    SB_LOG_INFO("cp", "stopped", NULL);
}
