/* Local fan-out index: which local sessions belong to a user, and which users (with at least
 * one local session) are members of a room or subscribed to a channel. Membership belongs to
 * the user (PROTOCOL.md), so rooms map to users and users to their sessions. lws thread only. */
#ifndef DP_ROUTER_H
#define DP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"

struct dp_router;
struct dp_session;

typedef void dp_router_visit_fn(struct dp_session *s, void *arg);

/* Returns a new empty index, or NULL on ENOMEM. */
struct dp_router *dp_router_create(void);

/* Frees the index (not the sessions). NULL is ignored. */
void dp_router_destroy(struct dp_router *r);

/* Indexes session `s` (borrowed until removed) under `user_id`. SB_ENOMEM on failure. */
enum sb_err dp_router_add_session(struct dp_router *r, const char *user_id, struct dp_session *s);

/* Removes `s`; the user's memberships are forgotten with its last local session. */
void dp_router_remove_session(struct dp_router *r, const char *user_id, struct dp_session *s);

/* Adds or removes the user's membership of `room_id` (ignored when the user has no local
 * session). SB_ENOMEM on failure. */
enum sb_err dp_router_set_room(struct dp_router *r, const char *user_id, const char *room_id,
                               bool member);

/* Same for a channel subscription. */
enum sb_err dp_router_set_channel(struct dp_router *r, const char *user_id, const char *channel_id,
                                  bool subscribed);

/* Forgets every room and channel membership (sessions stay): before a link resync. */
void dp_router_clear_memberships(struct dp_router *r);

/* Calls fn for every local session of the room's members / channel's subscribers / the user.
 * `fn` must not change the index. */
void dp_router_visit_room(struct dp_router *r, const char *room_id, dp_router_visit_fn *fn,
                          void *arg);
void dp_router_visit_channel(struct dp_router *r, const char *channel_id, dp_router_visit_fn *fn,
                             void *arg);
void dp_router_visit_user(struct dp_router *r, const char *user_id, dp_router_visit_fn *fn,
                          void *arg);

/* Membership items come from every control plane: true when `revision` (etcd revision of the
 * change) is above the last one seen for (user, room) or (user, channel), which it records;
 * false for an older or repeated copy, to be ignored. Revision 0 (memory store) is always
 * applied, in stream order. Revisions are forgotten with the user's last local session. */
bool dp_router_membership_is_newer(struct dp_router *r, const char *user_id, bool room,
                                   const char *id, int64_t revision);

/* Room message deliveries: true when `seq` is above the last one delivered to this node for the
 * room (recorded), false for a duplicate (a message re-delivered after a control-plane
 * failover). Rooms without local members are not tracked. */
bool dp_router_seq_is_new(struct dp_router *r, const char *room_id, int64_t seq);

bool dp_router_is_member(const struct dp_router *r, const char *user_id, const char *room_id);
size_t dp_router_room_count(const struct dp_router *r);
size_t dp_router_user_count(const struct dp_router *r);

#endif
