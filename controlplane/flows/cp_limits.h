/* Per-user limits of docs/configuration.md "Limits": connections per user (counted over every
 * connection this replica knows: its own in memory mode, the whole cluster's from the watch in
 * etcd mode), the size of message data (client frames and gRPC), and the client message rate
 * (a token bucket per user, per control-plane replica). Each check returns true when the
 * action may go on, else fills *st with the protocol code and a sentence.
 * Thread: the completion-queue thread. */
#ifndef CP_LIMITS_H
#define CP_LIMITS_H

#include <stdbool.h>
#include <stddef.h>

#include "cp_ctx.h"
#include "switchboard/internal/v1/nodelink.pb-c.h"

/* ConnOpen of `conn_id` by `user_id`: connection_limit_reached when the user already has
 * max_connections_per_user other connections. A connection id already known (a resync after a
 * link reconnect or failover) is always allowed. */
bool cp_limits_conn_ok(struct cp_ctx *c, const char *user_id, const char *conn_id,
                       struct cp_status *st);

/* `len` bytes of message data: message_too_large beyond max_message_size. */
bool cp_limits_size_ok(const struct cp_ctx *c, size_t len, struct cp_status *st);

/* A client request of user `u`: message and publish must carry data within max_message_size
 * (message_too_large) and find a token in the user's bucket (rate_limited). Other operations
 * pass untouched. */
bool cp_limits_client_request(struct cp_ctx *c, struct cp_user *u,
                              const Switchboard__Internal__V1__ClientRequest *req,
                              struct cp_status *st);

#endif
