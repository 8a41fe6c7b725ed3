/* The control plane's state and settings, shared by the gRPC API and NodeLink: the Store,
 * connections and presence, typing, the registry of data-plane nodes, and fan-out of frames to
 * nodes (cp_fanout.c). Everything here is owned by the completion-queue thread. */
#ifndef CP_CTX_H
#define CP_CTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_map.h"
#include "cp_node.h"
#include "cp_presence.h"
#include "cp_store.h"
#include "cp_typing.h"
#include "sb_id.h"

struct cp_settings {
    int max_history_messages;  /* per room; 0 keeps none */
    int64_t typing_timeout_ms; /* > 0 */
    int64_t presence_grace_ms; /* 0: offline at once */
    int64_t heartbeat_interval_ms;
    bool auto_create_rooms;  /* a client join of a missing room creates it */
    size_t node_queue_limit; /* bytes queued per NodeLink stream before it is cancelled */
    /* issue 4 (docs/configuration.md): limits, presence, typing, retention, sessions */
    int max_connections_per_user;  /* connection_limit_reached beyond; 0: unlimited */
    int max_rooms_per_user;        /* room_limit_reached beyond; 0: unlimited */
    int max_channels_per_user;     /* channel_limit_reached beyond; 0: unlimited */
    int64_t max_message_size;      /* bytes of `data` (gRPC and client) */
    int max_messages_per_second;   /* token bucket refill per user; 0: no rate limit */
    int rate_limit_burst;          /* token bucket size */
    int64_t presence_timeout_ms;   /* no activity this long makes an online user away */
    int max_typing_users;          /* typing users reported per room */
    int64_t message_retention_ms;  /* history older than this is removed; 0: forever */
    int64_t retention_interval_ms; /* how often the cleaner runs */
    bool auto_create_channels;     /* a client subscribe to a missing channel creates it */
    int64_t session_ttl_ms;        /* session resumption window after a disconnect */
    size_t watch_queue_limit;      /* bytes queued per WatchEvents stream before cut off */
};

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

struct cp_ctx {
    struct cp_settings set;
    char id[SB_ID_LEN]; /* this replica's id, sent in Welcome */
    struct cp_store *store;
    struct cp_presence presence;
    struct cp_typing typing;
    struct sb_map nodes;        /* node id -> struct cp_node (after Hello) */
    struct cp_node *dirty_head; /* nodes with queued items to flush */
    uint64_t mark_gen;          /* fan-out de-duplication stamps */
    struct cp_fanout_slot fanout_cache[CP_FANOUT_SLOTS]; /* by room id hash */
    /* Scratch buffers of the publish path (frame text, encoded Delivery), reused from one
     * message to the next (cp_ctx_scratch_done). */
    struct cp_buf scratch_frame, scratch_enc;
    struct sb_map idem;          /* BroadcastToRoom idempotency (cp_rpc_messages.c) */
    void *idem_head, *idem_tail; /* FIFO of idempotency entries, by expiry */
    void *channels;              /* cp_channels.c: channel idempotency records to expire */
    void *links;                 /* cp_link.c's open streams */
    void *watchers;              /* cp_watch.c's WatchEvents streams */
    int64_t once_sweep_at;       /* cp_once.c: next sweep of idempotency records (mono ms) */
    int64_t session_sweep_at;    /* cp_session.c: next sweep of closed sessions (mono ms) */
    int stopping;                /* the server is shutting down: refuse new streams */
    int64_t membership_rev;      /* memory mode: Membership.revision counter */
    int64_t fake_lease;          /* memory mode: the lease id Adopt answers */
    /* etcd mode (docs/distributed.md): the store is cp_store_etcd, connections and presence
     * come from its watch, Membership is derived from it, publishes may be forwarded. */
    bool distributed;
    uint64_t relist_gen;  /* connections not seen by the latest re-list are gone */
    void *cq;             /* the completion queue (peer calls) */
    void *peers;          /* cp_peer.c: channels and calls in flight */
    int64_t lease_ttl_ms; /* etcd mode: bound for publish forwarding retries */
    int64_t messages_published;
    int64_t messages_delivered; /* deliveries handed to nodes */
    int64_t retention_next;     /* cp_retention.c: monotonic ms of the next pass */
    bool retention_busy;        /* cp_retention.c: a pass is running */
};

/* Initializes `c` around `store` (taken: destroyed by cp_ctx_fini). SB_ENOMEM. */
enum sb_err cp_ctx_init(struct cp_ctx *c, const struct cp_settings *set, struct cp_store *store);

/* Frees every state. Nodes must have been unregistered by their owners first. */
void cp_ctx_fini(struct cp_ctx *c);

/* Runs due timers (typing expiry, presence grace) at monotonic `mono_ms`. */
void cp_ctx_tick(struct cp_ctx *c, int64_t mono_ms);

/* Monotonic ms of the next timer, 0 when none is due. */
int64_t cp_ctx_next_deadline(const struct cp_ctx *c);

/* ---------------------------------------------------------------- fan-out (cp_fanout.c) */

/* Queues an item on `n` and puts it on the flush list. Errors mean the node overflowed (its
 * stream is being cancelled); the caller goes on. */
void cp_fanout_queue(struct cp_ctx *c, struct cp_node *n,
                     const Switchboard__Internal__V1__ControlItem *item);

/* Sends a Delivery {room_id, exclude_user_ids: exclude (may be NULL), frame, seq} once to each
 * node hosting a connection of one of `members`. Returns the number of nodes reached. */
size_t cp_fanout_room(struct cp_ctx *c, const struct cp_member *members, size_t n_members,
                      const char *room_id, const char *exclude, const char *frame, size_t len,
                      int64_t seq);

/* cp_fanout_room (exclude NULL) for a message whose `members` come with the store's
 * `members_rev` (0: unknown, then it is cp_fanout_room): the set of nodes derived from the
 * members' connections is kept per room and reused while neither the member set nor any
 * connection changed, so a message costs one append per node instead of one lookup per
 * member. Memory mode only (etcd mode reaches nodes by id and falls back). */
size_t cp_fanout_room_cached(struct cp_ctx *c, const struct cp_member *members, size_t n_members,
                             uint64_t members_rev, const char *room_id, const char *frame,
                             size_t len, int64_t seq);

/* Empties a scratch buffer after use; frees its storage when it grew past 1 MiB. */
void cp_ctx_scratch_done(struct cp_buf *b);

/* Frees the cp_fanout_room_cached slots (cp_ctx_fini). */
void cp_fanout_cache_fini(struct cp_ctx *c);

/* Sends a Delivery {user_ids: those of `users` with a connection on the node, frame} to each
 * node concerned. Returns the number of connections reached. */
size_t cp_fanout_users(struct cp_ctx *c, const char *const *users, size_t n_users,
                       const char *frame, size_t len);

/* Sends a Delivery {everyone, exclude_user_ids} to every node with connections. Returns the
 * number of connections reached (all connections minus those of excluded users). */
size_t cp_fanout_everyone(struct cp_ctx *c, const char *const *exclude, size_t n_exclude,
                          const char *frame, size_t len);

/* Sends a Delivery {room_ids, exclude_user_ids: [exclude]} to every node: each delivers to its
 * local members of those rooms, each connection once. Presence goes this way: the control plane
 * needs the subject's rooms, not every co-member (O(rooms of one user) instead of O(the rooms'
 * sizes) per announcement). False when some node lacks the feature (an older data plane during
 * a rolling upgrade): then nothing is sent and the caller uses cp_fanout_users. */
bool cp_fanout_rooms(struct cp_ctx *c, const char *const *rooms, size_t n_rooms,
                     const char *exclude, const char *frame, size_t len);

/* What cp_fanout_everyone / cp_fanout_users would return, without sending anything. */
size_t cp_fanout_count_everyone(struct cp_ctx *c, const char *const *exclude, size_t n_exclude);
size_t cp_fanout_count_users(struct cp_ctx *c, const char *const *users, size_t n_users);

/* Sends a Delivery {connection_ids: [conn], frame} to the connection's node; false when that
 * node has no stream to this replica. */
bool cp_fanout_connection(struct cp_ctx *c, const struct cp_conn *conn, const char *frame,
                          size_t len);

/* Sends Kick {connection_id, reason} to the connection's node; false as above. */
bool cp_fanout_kick(struct cp_ctx *c, const struct cp_conn *conn, const char *reason);

/* Sends Membership {user_id, room_id, added, revision} to every node hosting a connection of
 * the user. The memory store numbers changes with a counter; etcd mode passes the watch
 * event's revision (every replica sends the same change with the same revision). */
void cp_fanout_membership(struct cp_ctx *c, const char *user_id, const char *room_id, bool added);
void cp_fanout_membership_rev(struct cp_ctx *c, const char *user_id, const char *room_id,
                              bool added, int64_t revision);

/* The same for a room (channel_id NULL) or a channel (room_id NULL): Membership{user_id,
 * room_id or channel_id, added, revision} once to every node hosting one of the user's
 * connections. */
void cp_fanout_membership_item(struct cp_ctx *c, const char *user_id, const char *room_id,
                               const char *channel_id, bool added, int64_t revision);

/* ---------------------------------------------------------------- idempotency (cp_idem.c) */

/* How long BroadcastToRoom remembers an idempotency key (API.md: two minutes). */
#define CP_IDEM_TTL_MS 120000

/* The first result of (room_id, key) if seen within the TTL: 1 and *id_out (borrowed until the
 * next cp_idem_* call) / *seq_out set; 0 otherwise. */
int cp_idem_get(struct cp_ctx *c, const char *room_id, const char *key, int64_t mono_ms,
                const char **id_out, int64_t *seq_out);

/* Remembers the result of (room_id, key). SB_ENOMEM (the key is then simply not remembered). */
enum sb_err cp_idem_put(struct cp_ctx *c, const char *room_id, const char *key,
                        const char *message_id, int64_t seq, int64_t mono_ms);

/* Frees every entry. */
void cp_idem_fini(struct cp_ctx *c);

/* Pops the next node of the flush list (NULL when empty). */
struct cp_node *cp_ctx_pop_dirty(struct cp_ctx *c);

#endif
