/* What a store shared by several control-plane replicas adds to the Store (today: etcd), as a
 * second small interface with a one-replica implementation for the memory store, so that the
 * layers above never include the etcd store: who announces presence (the presence leader),
 * where a replica listens, the node registry, node leases and connection records. The etcd
 * implementation is store/etcd/cp_cluster_etcd.c; the composition root picks one.
 * Thread: the store's owner thread (the completion-queue thread). */
#ifndef CP_CLUSTER_H
#define CP_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_status.h"
#include "cp_store.h"

/* Changes a distributed store sees through its watch (or the initial list), in revision
 * order, for the flows to apply (flows/cp_changes.c). All borrowed. */
struct cp_cluster_hooks {
    void *ud;
    /* a room member added or removed at etcd revision `rev` */
    void (*member)(void *ud, const char *room_id, const char *user_id, bool added, int64_t rev);
    /* a connection record put (value: JSON {session_id, transport, connected_at}) or deleted
     * (value NULL) */
    void (*conn)(void *ud, const char *node_id, const char *user_id, const char *conn_id,
                 const char *value, size_t len);
    /* a full re-list starts / ends (every connection not re-announced in between is gone) */
    void (*relist_begin)(void *ud);
    void (*relist_end)(void *ud);
    /* a node lease kept by this replica was found gone while its node is linked here */
    void (*node_lease_lost)(void *ud, const char *node_id);
    /* on taking a room's sequencing: a message the previous sequencer stored, maybe never
     * delivered, to deliver again to the members' nodes (may be NULL) */
    void (*redeliver)(void *ud, const struct cp_message *m, const struct cp_member *members,
                      size_t n_members);
};

struct cp_cluster_node {
    const char *id;
    const char *address;
    int64_t last_heartbeat; /* Unix ms */
    int64_t connections;    /* as last reported by the node */
};

typedef void cp_cluster_adopt_fn(void *arg, const struct cp_status *st, int64_t lease_id,
                                 bool renewed);
typedef void cp_cluster_done_fn(void *arg, const struct cp_status *st);
typedef void cp_cluster_node_fn(void *arg, const struct cp_cluster_node *n);

struct cp_cluster;

struct cp_cluster_ops {
    /* True when this replica announces connection-driven presence changes and runs the
     * cluster-wide sweeps (one replica: always). */
    bool (*is_leader)(const struct cp_cluster *cl);
    /* Address other replicas reach replica `cp_id` at (borrowed), NULL when unknown. */
    const char *(*peer_address)(const struct cp_cluster *cl, const char *cp_id);
    /* Rooms the cluster holds (from its cache); -1 when the caller must count them itself. */
    int64_t (*room_count)(const struct cp_cluster *cl);
    /* Calls fn for each node of the cluster's registry; false when there is no registry (one
     * replica: the linked nodes are all there is). */
    bool (*nodes)(const struct cp_cluster *cl, cp_cluster_node_fn *fn, void *arg);
    /* Keeps node `node_id`'s lease alive from now on: `lease_id` when it still exists (renewed
     * false), else a new one (renewed true; also for lease_id 0). */
    void (*adopt)(struct cp_cluster *cl, const char *node_id, const char *address, int64_t lease_id,
                  cp_cluster_adopt_fn *cb, void *arg);
    /* The lease this replica keeps for the node (0: none). */
    int64_t (*node_lease)(const struct cp_cluster *cl, const char *node_id);
    /* Stops keeping the node's lease; `revoke` ends it now (its connections go at once). */
    void (*release)(struct cp_cluster *cl, const char *node_id, bool revoke);
    /* Refreshes the node's registry record. Fire and forget. */
    void (*heartbeat)(struct cp_cluster *cl, const char *node_id, const char *address,
                      int64_t connections);
    /* Writes / deletes a connection record under the node's lease; answers once this
     * replica's view shows the change. */
    void (*conn_put)(struct cp_cluster *cl, const char *node_id, const char *user_id,
                     const char *conn_id, const char *session_id, const char *transport,
                     int64_t connected_at, cp_cluster_done_fn *cb, void *arg);
    void (*conn_delete)(struct cp_cluster *cl, const char *node_id, const char *user_id,
                        const char *conn_id, cp_cluster_done_fn *cb, void *arg);
    /* Timers (barrier timeouts, idempotency expiry, lease rotation), every <= 200 ms. */
    void (*tick)(struct cp_cluster *cl, int64_t mono_ms);
};

struct cp_cluster {
    const struct cp_cluster_ops *ops;
};

/* The one-replica cluster of the memory store (static; never freed): the leader, no peers, no
 * registry; Adopt answers this process's lease id, always renewed; records answer OK at once. */
struct cp_cluster *cp_cluster_single(void);

#endif
