/* Connections/WatchEvents: server-streaming calls that receive the control plane's events
 * (messages, joins, leaves, presence, ...) filtered by rooms, channels and types. Each stream
 * has its own bounded queue; a watcher that does not keep up is cut off with
 * RESOURCE_EXHAUSTED, so delivery to clients never waits for it. docs/delivery.md.
 * Thread: the completion-queue thread only. */
#ifndef CP_WATCH_H
#define CP_WATCH_H

#include <stdint.h>

#include <grpc/grpc.h>

#include "cp_ctx.h"
#include "cp_json.h"
#include "cp_rpc.h"

/* The event types a watcher may ask for (`types`), NULL-terminated. */
extern const char *const cp_watch_types[];

/* cp_rpc_connections_watch (cp_rpc.h) is Connections.WatchEvents, a STREAM method: it
 * validates the filters (INVALID_ARGUMENT "invalid_message: ..." finishes the call), then keeps
 * the call as a watcher. */

/* Makes the Store's observer and the flows' presence and channel-message hooks (struct
 * cp_hooks) feed the watchers (the Store has one observer: this). */
void cp_watch_attach(struct cp_ctx *c);

/* Store observer (set by cp_watch_attach; exposed for tests). */
void cp_watch_store_event(void *ctx, const struct cp_store_event *ev);

/* A presence change that the control plane announces (the cp_hooks presence hook; `ud` is
 * the cp_ctx): a "presence" event. `connections` is the user's open connection count. */
void cp_watch_presence(void *ud, const struct cp_presence_view *v, int connections);

/* A channel message that was delivered (the cp_hooks channel_message hook; `ud` is the
 * cp_ctx): a "channel_message" event (user_id may be NULL; data is the JSON text as given). */
void cp_watch_channel_message(void *ud, const char *channel_id, const char *message_id,
                              const char *user_id, const char *data, size_t data_len,
                              const struct cp_kv *metadata, size_t n_metadata, int64_t timestamp);

/* grpc.health.v1.Health/Watch: keeps the call open after sending `status` (a
 * HealthCheckResponse, packed now) until the client goes or the server stops. */
void cp_watch_health(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *status);

/* Number of open watchers. */
size_t cp_watch_count(const struct cp_ctx *c);

/* Server stopping: ends every watcher with UNAVAILABLE. */
void cp_watch_stop_all(struct cp_ctx *c);

/* After the completion queue is drained: frees what is left. */
void cp_watch_free_all(struct cp_ctx *c);

#endif
