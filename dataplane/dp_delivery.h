/* Fan-out of the control plane's Delivery items to the local sessions they target (a room's
 * members, a channel's subscribers, users, connections, everyone). Each is framed once into a
 * shared dp_buf that every target's outbox references; duplicate room deliveries (a message
 * re-delivered after a failover) are dropped. The hub owns one. lws thread only. */
#ifndef DP_DELIVERY_H
#define DP_DELIVERY_H

#include <stdint.h>

#include "switchboard/internal/v1/nodelink.pb-c.h"

struct dp_delivery;
struct dp_router;
struct sb_map;

/* Returns a new fan-out over `router` (the local index) and `sessions` (connection id ->
 * session, for connection targets and `everyone`), both borrowed and owned by the caller, who
 * keeps them alive longer. NULL on ENOMEM. */
struct dp_delivery *dp_delivery_create(struct dp_router *router, struct sb_map *sessions);

/* Frees it. NULL is ignored. */
void dp_delivery_destroy(struct dp_delivery *dl);

/* Queues `d`'s frame on every open target session, each at most once, none of an excluded
 * user. Never blocks; allocates one buffer per delivery, nothing per target. */
void dp_delivery_fan_out(struct dp_delivery *dl, const Switchboard__Internal__V1__Delivery *d);

/* References queued by deliveries since creation (the heartbeat's `delivered`). */
uint64_t dp_delivery_count(const struct dp_delivery *dl);

#endif
