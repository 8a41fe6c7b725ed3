/* Fan-out: every event leaves the control plane as one encoded Delivery (or Membership,
 * Kick) appended to the queue of each node concerned, found through the connection registry
 * (cp_presence) and the linked nodes. Pure state over borrowed registries; no gRPC (cp_link
 * sends the queues). Thread: the completion-queue thread. */
#ifndef CP_FANOUT_H
#define CP_FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_buf.h"
#include "cp_node.h"
#include "cp_presence.h"
#include "cp_store.h"
#include "sb_map.h"

/* cp_fanout_room_cached: the nodes a room's message goes to, derived from its members'
 * connections, valid while the store's members_rev and presence.conn_gen are unchanged. */
#define CP_FANOUT_SLOTS 64
struct cp_fanout_slot {
    char *room_id; /* NULL: empty */
    uint64_t members_rev, conn_gen;
    struct cp_node **nodes;
    size_t n_nodes, cap_nodes;
    int64_t conns; /* connections of the members (messages_delivered per message) */
};

struct cp_fanout {
    struct cp_presence *presence; /* borrowed: who has which connection on which node */
    struct sb_map *nodes;         /* borrowed: node id -> struct cp_node (after Hello) */
    bool by_id; /* a distributed store: nodes are reached by id, each node gets room traffic */
    struct cp_node *dirty_head;                   /* nodes with queued items to flush */
    uint64_t mark_gen;                            /* de-duplication stamps */
    struct cp_fanout_slot cache[CP_FANOUT_SLOTS]; /* by room id hash */
    /* Scratch buffers of the publish path (frame text, encoded Delivery), reused from one
     * message to the next (cp_fanout_scratch_done). */
    struct cp_buf scratch_frame, scratch_enc;
    int64_t messages_delivered; /* deliveries handed to nodes */
};

/* Initializes `f` over `presence` and `nodes` (borrowed; they outlive it). */
void cp_fanout_init(struct cp_fanout *f, struct cp_presence *presence, struct sb_map *nodes);

/* Pops the next node of the flush list (NULL when empty). */
struct cp_node *cp_fanout_pop_dirty(struct cp_fanout *f);

/* Queues an item on `n` and puts it on the flush list. Errors mean the node overflowed (its
 * stream is being cancelled); the caller goes on. */
void cp_fanout_queue(struct cp_fanout *f, struct cp_node *n,
                     const Switchboard__Internal__V1__ControlItem *item);

/* Sends a Delivery {room_id, exclude_user_ids: exclude (may be NULL), frame, seq} once to each
 * node hosting a connection of one of `members`. Returns the number of nodes reached. */
size_t cp_fanout_room(struct cp_fanout *f, const struct cp_member *members, size_t n_members,
                      const char *room_id, const char *exclude, const char *frame, size_t len,
                      int64_t seq);

/* cp_fanout_room (exclude NULL) for a message whose `members` come with the store's
 * `members_rev` (0: unknown, then it is cp_fanout_room): the set of nodes derived from the
 * members' connections is kept per room and reused while neither the member set nor any
 * connection changed, so a message costs one append per node instead of one lookup per
 * member. Memory mode only (etcd mode reaches nodes by id and falls back). */
size_t cp_fanout_room_cached(struct cp_fanout *f, const struct cp_member *members, size_t n_members,
                             uint64_t members_rev, const char *room_id, const char *frame,
                             size_t len, int64_t seq);

/* Empties a scratch buffer after use; frees its storage when it grew past 1 MiB. */
void cp_fanout_scratch_done(struct cp_buf *b);

/* Frees the cache slots and scratch buffers (not the registry or the nodes). */
void cp_fanout_fini(struct cp_fanout *f);

/* Sends a Delivery {user_ids: those of `users` with a connection on the node, frame} to each
 * node concerned. Returns the number of connections reached. */
size_t cp_fanout_users(struct cp_fanout *f, const char *const *users, size_t n_users,
                       const char *frame, size_t len);

/* Sends a Delivery {everyone, exclude_user_ids} to every node with connections. Returns the
 * number of connections reached (all connections minus those of excluded users). */
size_t cp_fanout_everyone(struct cp_fanout *f, const char *const *exclude, size_t n_exclude,
                          const char *frame, size_t len);

/* Sends a Delivery {room_ids, exclude_user_ids: [exclude]} to every node: each delivers to its
 * local members of those rooms, each connection once. Presence goes this way: the control plane
 * needs the subject's rooms, not every co-member (O(rooms of one user) instead of O(the rooms'
 * sizes) per announcement). False when some node lacks the feature (an older data plane during
 * a rolling upgrade): then nothing is sent and the caller uses cp_fanout_users. */
bool cp_fanout_rooms(struct cp_fanout *f, const char *const *rooms, size_t n_rooms,
                     const char *exclude, const char *frame, size_t len);

/* What cp_fanout_everyone / cp_fanout_users would return, without sending anything. */
size_t cp_fanout_count_everyone(struct cp_fanout *f, const char *const *exclude, size_t n_exclude);
size_t cp_fanout_count_users(struct cp_fanout *f, const char *const *users, size_t n_users);

/* Sends a Delivery {connection_ids: [conn], frame} to the connection's node; false when that
 * node has no stream to this replica. */
bool cp_fanout_connection(struct cp_fanout *f, const struct cp_conn *conn, const char *frame,
                          size_t len);

/* Sends Kick {connection_id, reason} to the connection's node; false as above. */
bool cp_fanout_kick(struct cp_fanout *f, const struct cp_conn *conn, const char *reason);

/* Sends Membership {user_id, room_id, added, revision} to every node hosting a connection of
 * the user, at the store's revision of the change (every replica of a shared store sends the
 * same change with the same revision). */
void cp_fanout_membership_rev(struct cp_fanout *f, const char *user_id, const char *room_id,
                              bool added, int64_t revision);

/* The same for a room (channel_id NULL) or a channel (room_id NULL): Membership{user_id,
 * room_id or channel_id, added, revision} once to every node hosting one of the user's
 * connections. */
void cp_fanout_membership_item(struct cp_fanout *f, const char *user_id, const char *room_id,
                               const char *channel_id, bool added, int64_t revision);

/* Sends the frame to the nodes hosting connections of `users`. When every subscriber is a
 * receiver (`all`), each node gets Delivery{channel_id} and fans out through its channel
 * index; otherwise Delivery{channel_id, user_ids: the receivers it hosts}, so a filtered-out
 * subscriber's connections never see the frame. Returns the connections reached. */
size_t cp_fanout_channel(struct cp_fanout *f, const char *channel_id, const char *const *users,
                         size_t n_users, bool all, const char *frame, size_t len);

#endif
