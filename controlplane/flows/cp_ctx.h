/* The control plane's state and settings, shared by the gRPC API and NodeLink: the Store,
 * connections and presence, typing, the registry of data-plane nodes, and fan-out of frames to
 * nodes (cp_fanout.c). Everything here is owned by the completion-queue thread. */
#ifndef CP_CTX_H
#define CP_CTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_map.h"
#include "cp_cluster.h"
#include "cp_fanout.h"
#include "cp_node.h"
#include "cp_presence.h"
#include "cp_store.h"
#include "cp_typers.h"
#include "sb_id.h"
#include "sb_secret.h"

struct cp_settings {
    int max_history_messages;  /* per room; 0 keeps none */
    int64_t typing_timeout_ms; /* > 0 */
    int64_t presence_grace_ms; /* 0: offline at once */
    int64_t heartbeat_interval_ms;
    bool auto_create_rooms;  /* a client join of a missing room creates it */
    size_t node_queue_limit; /* bytes queued per NodeLink stream before it is cancelled */
    /* limits, presence, typing, retention, sessions (docs/configuration.md) */
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

/* Answers of flows that report only an outcome, or a list of ids (borrowed for the call). */
typedef void cp_ctx_done_fn(void *arg, const struct cp_status *st);
typedef void cp_ctx_ids_fn(void *arg, const struct cp_status *st, const char *const *ids, size_t n);

/* A timer of some layer, registered by the composition root: `tick` runs at every loop pass
 * (it returns early when nothing is due); `next` (may be NULL) tells the monotonic ms of its
 * next deadline, 0 when none, so the loop sleeps no longer. */
typedef void cp_timer_fn(void *ud, int64_t mono_ms);
typedef int64_t cp_deadline_fn(const void *ud);
#define CP_TIMERS_MAX 12

/* What flows announce to the layers above them, and the publish path of a distributed store:
 * set by the composition root (app/cp_server.c) and the layers it wires, so that flows never
 * name the API or the link. Every member may be NULL (nothing listens). */
struct cp_presence_view;
struct cp_publish;
struct cp_kv;
typedef void cp_on_presence_fn(void *ud, const struct cp_presence_view *v, int connections);
typedef void cp_on_channel_message_fn(void *ud, const char *channel_id, const char *message_id,
                                      const char *user_id, const char *data, size_t data_len,
                                      const struct cp_kv *metadata, size_t n_metadata,
                                      int64_t timestamp);
/* The backend's Authorizer (--authorizer, link/cp_authorizer.c): may `user_id` do `action`
 * ("subscribe", "join", "publish") on `target`? Answered once, on the loop thread, maybe at
 * once from its cache; `info` is the member info for a presence channel (NULL: none) and
 * `reason` a sentence (never NULL). An error, a missed deadline or an unreachable backend is
 * CP_AUTHZ_UNAVAILABLE: it denies. */
enum cp_authz_answer { CP_AUTHZ_ALLOW, CP_AUTHZ_DENY, CP_AUTHZ_UNAVAILABLE };
struct cp_authz_req {
    const char *user_id, *connection_id, *action, *target;
    const char *info; /* the token's `info` claim (JSON text) or NULL */
};
typedef void cp_authz_fn(void *arg, enum cp_authz_answer answer, const char *info,
                         const char *reason);

struct cp_hooks {
    void *ud;
    cp_on_presence_fn *presence;               /* a presence announcement left (WatchEvents) */
    cp_on_channel_message_fn *channel_message; /* a channel message was published */
};

struct cp_ctx {
    struct cp_settings set;
    char id[SB_ID_LEN]; /* this replica's id, sent in Welcome */
    struct cp_store *store;
    struct cp_cluster *cluster; /* what the store shares with other replicas (borrowed) */
    struct cp_presence presence;
    struct cp_typers typing;
    struct sb_map nodes;      /* node id -> struct cp_node (after Hello) */
    struct cp_fanout fan;     /* over presence and nodes */
    void *links;              /* cp_link.c's open streams */
    void *watchers;           /* cp_watch.c's WatchEvents streams */
    int64_t once_sweep_at;    /* cp_once.c: next sweep of idempotency records (mono ms) */
    int64_t session_sweep_at; /* cp_session.c: next sweep of closed sessions (mono ms) */
    int stopping;             /* the server is shutting down: refuse new streams */
    /* etcd mode (docs/distributed.md): the store is cp_store_etcd, connections and presence
     * come from its watch, Membership is derived from it, publishes may be forwarded. */
    bool distributed;
    uint64_t relist_gen;  /* connections not seen by the latest re-list are gone */
    void *cq;             /* the completion queue (peer calls) */
    void *peers;          /* cp_peer.c: channels and calls in flight */
    int64_t lease_ttl_ms; /* etcd mode: bound for publish forwarding retries */
    int64_t messages_published;
    int64_t retention_next; /* cp_retention.c: monotonic ms of the next pass */
    bool retention_busy;    /* cp_retention.c: a pass is running */
    struct cp_hooks hooks;
    /* --cluster-secret-file (NULL: none): what Peer calls send as `authorization: Bearer`
     * (its first key). Owned by the server, re-read by its timer. */
    struct sb_secret *cluster_secret;
    /* Publishing when the store is distributed (cp_rooms_publish hands every publish to it:
     * the sequencing replica may be another one); NULL: publish into the local store. */
    void (*publish_via)(struct cp_ctx *c, const struct cp_publish *p,
                        void (*cb)(void *arg, const struct cp_status *st, const char *message_id,
                                   int64_t seq),
                        void *arg);
    /* Asks the backend's Authorizer (NULL: no --authorizer; then nothing is granted by it). */
    void (*authorize)(struct cp_ctx *c, const struct cp_authz_req *r, cp_authz_fn *cb, void *arg);
    void *authorizer; /* link/cp_authorizer.c: channel, cache and calls in flight */
    struct {
        cp_timer_fn *tick;
        cp_deadline_fn *next;
        void *ud;
    } timers[CP_TIMERS_MAX];
    size_t n_timers;
};

/* Initializes `c` around `store` (taken: destroyed by cp_ctx_fini). SB_ENOMEM. */
enum sb_err cp_ctx_init(struct cp_ctx *c, const struct cp_settings *set, struct cp_store *store);

/* Frees every state. Nodes must have been unregistered by their owners first. */
void cp_ctx_fini(struct cp_ctx *c);

/* True when this replica announces connection-driven presence changes and runs cluster-wide
 * sweeps: the store is open and this replica is its cluster's leader (one replica: always). */
static inline bool cp_ctx_is_leader(const struct cp_ctx *c)
{
    return c->store != NULL && c->cluster->ops->is_leader(c->cluster);
}

/* Registers a timer (see cp_timer_fn), run in registration order. SB_EFULL beyond
 * CP_TIMERS_MAX. */
enum sb_err cp_ctx_add_timer(struct cp_ctx *c, cp_timer_fn *tick, cp_deadline_fn *next, void *ud);

/* Runs every registered timer at monotonic `mono_ms`. */
void cp_ctx_tick(struct cp_ctx *c, int64_t mono_ms);

/* Monotonic ms of the earliest registered deadline, 0 when none is due. */
int64_t cp_ctx_next_deadline(const struct cp_ctx *c);

#endif
