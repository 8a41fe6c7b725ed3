/* The table of the public API's gRPC handlers (one thin handler per method: unpack, validate,
 * call a flow, pack), finished through the call object of cp_call.h.
 * Thread: the completion-queue thread. */
#ifndef CP_RPC_H
#define CP_RPC_H

#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>

#include "cp_call.h"
#include "cp_check.h"
#include "cp_ctx.h"
#include "cp_status.h"

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
/* cp_rpc_channels.c: Channels.* and Messages.BroadcastToChannel */
cp_rpc_fn cp_rpc_channels_create, cp_rpc_channels_delete, cp_rpc_channels_list,
    cp_rpc_channels_subscribe, cp_rpc_channels_unsubscribe, cp_rpc_channels_subscribers,
    cp_rpc_messages_to_channel;
/* cp_rpc_health.c */
cp_rpc_fn cp_rpc_health_check, cp_rpc_health_watch;

/* Rooms handlers (cp_rpc_rooms*.c): a metadata entry's checks, and a cp_store_room_fn whose
 * `arg` is the call, finishing it with the Room or the status. */
bool cp_rpc_rooms_check_meta_kv(struct cp_call *call, const char *k, const char *v);
void cp_rpc_rooms_room_done(void *call, const struct cp_status *st, const struct cp_room *room);
#endif
