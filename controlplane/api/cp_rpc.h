/* Unary gRPC handlers and the call object they finish. A handler gets the unpacked request
 * (borrowed until the call is finished) and must finish the call exactly once, now or later
 * (after an asynchronous Store answer), with cp_call_reply or cp_call_fail.
 * Thread: the completion-queue thread. */
#ifndef CP_RPC_H
#define CP_RPC_H

#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>

#include "cp_ctx.h"
#include "cp_status.h"

struct cp_call;

typedef void cp_rpc_fn(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *req);

/* Finishes the call with OK and `resp` (borrowed; packed before returning). */
void cp_call_reply(struct cp_call *call, const ProtobufCMessage *resp);

/* Finishes the call with the gRPC status mapped from st->code and "code: sentence". */
void cp_call_fail(struct cp_call *call, const struct cp_status *st);

/* Same with a code and a printf sentence. */
void cp_call_failf(struct cp_call *call, enum sb_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Finishes the call with a raw gRPC status (for statuses with no protocol code, such as the
 * health protocol's NOT_FOUND). */
void cp_call_status(struct cp_call *call, grpc_status_code code, const char *msg);

/* STREAM methods: takes the gRPC call out of `call` (the caller now owns it and answers it
 * itself) and frees `call` with its request. */
struct grpc_call;
struct grpc_call *cp_call_detach(struct cp_call *call);

/* Largest page / history limit, and the defaults. */
#define CP_RPC_DEFAULT_LIMIT 50
#define CP_RPC_MAX_LIMIT     1000

/* cp_rpc_rooms.c */
cp_rpc_fn cp_rpc_rooms_create, cp_rpc_rooms_get, cp_rpc_rooms_list, cp_rpc_rooms_delete,
    cp_rpc_rooms_join, cp_rpc_rooms_leave, cp_rpc_rooms_members;
/* cp_rpc_rooms_admin.c */
cp_rpc_fn cp_rpc_rooms_update, cp_rpc_rooms_archive, cp_rpc_rooms_restore, cp_rpc_rooms_transfer,
    cp_rpc_rooms_bulk_join, cp_rpc_rooms_set_role, cp_rpc_rooms_ban, cp_rpc_rooms_unban,
    cp_rpc_rooms_bans, cp_rpc_rooms_invite, cp_rpc_rooms_accept;
/* cp_rpc_messages.c */
cp_rpc_fn cp_rpc_messages_broadcast, cp_rpc_messages_to_room, cp_rpc_messages_to_user,
    cp_rpc_messages_history;
cp_rpc_fn cp_rpc_messages_to_connection;
/* cp_rpc_history.c: calls fn(arg, pm) with the protobuf Message of `msg` (edit trail and
 * reactions included, no data for a tombstone; borrowed during the call). False on ENOMEM or
 * an unreadable ext record (fn is then not called). */
struct Switchboard__V1__Message;
typedef void cp_rpc_message_fn(void *arg, const struct Switchboard__V1__Message *pm);
bool cp_rpc_history_message(const struct cp_message *msg, cp_rpc_message_fn *fn, void *arg);
/* cp_rpc_history.c (GetHistory is cp_rpc_messages_history, declared above) */
cp_rpc_fn cp_rpc_history_save, cp_rpc_history_edit, cp_rpc_history_delete, cp_rpc_history_react,
    cp_rpc_history_unreact, cp_rpc_history_search;
/* cp_rpc_presence.c */
cp_rpc_fn cp_rpc_presence_online, cp_rpc_presence_get, cp_rpc_presence_set,
    cp_rpc_presence_activity, cp_rpc_presence_typing_start, cp_rpc_presence_typing_stop,
    cp_rpc_presence_typing_list;
/* cp_rpc_connections.c */
cp_rpc_fn cp_rpc_connections_stats, cp_rpc_connections_list, cp_rpc_connections_kick;
/* cp_watch.c: Connections.WatchEvents (server stream) */
cp_rpc_fn cp_rpc_connections_watch;
/* cp_rpc_peer.c: switchboard.internal.v1.Peer/Publish (etcd mode, between replicas) */
cp_rpc_fn cp_rpc_peer_publish;
/* cp_rpc_channels.c: Channels.* and Messages.BroadcastToChannel */
cp_rpc_fn cp_rpc_channels_create, cp_rpc_channels_delete, cp_rpc_channels_list,
    cp_rpc_channels_subscribe, cp_rpc_channels_unsubscribe, cp_rpc_channels_subscribers,
    cp_rpc_messages_to_channel;
/* cp_rpc_health.c */
cp_rpc_fn cp_rpc_health_check, cp_rpc_health_watch;

/* Validation helpers shared by the handlers (cp_rpc_rooms.c). Each returns true when the
 * value is fine, else finishes the call with INVALID_ARGUMENT "invalid_message: ..." and
 * returns false. `what` names the field. */
bool cp_rpc_check_id(struct cp_call *call, const char *what, const char *value);
bool cp_rpc_check_optional_id(struct cp_call *call, const char *what, const char *value);
bool cp_rpc_check_text(struct cp_call *call, const char *what, const char *s, size_t max);
bool cp_rpc_check_json(struct cp_call *call, const char *what, const ProtobufCBinaryData *data);
/* Rooms handlers (cp_rpc_rooms*.c): a metadata entry's checks, and a cp_store_room_fn whose
 * `arg` is the call, finishing it with the Room or the status. */
bool cp_rpc_rooms_check_meta_kv(struct cp_call *call, const char *k, const char *v);
void cp_rpc_rooms_room_done(void *call, const struct cp_status *st, const struct cp_room *room);
/* Message data of any method (BroadcastToRoom, SendToUser, Broadcast, BroadcastToChannel,
 * SaveMessage, EditMessage, ...): at most max_message_size bytes (RESOURCE_EXHAUSTED
 * "message_too_large: ..."), then valid JSON. */
bool cp_rpc_check_data(struct cp_ctx *c, struct cp_call *call, const ProtobufCBinaryData *data);

#endif
