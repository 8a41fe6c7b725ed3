/* The etcd Store (docs/distributed.md): every write is an etcd transaction, reads of rooms and
 * members are served from an in-memory cache of sb/ fed by one watch (list once, watch from
 * R+1, re-list on compaction), and a writer is answered only when the watch has applied its
 * revision (the revision barrier, cp_barrier.h). Documents, history and the records that
 * updates edit are read straight from etcd (linearizable ranges); the observer is fed by the
 * same watch. Besides the Store vtable it holds what only etcd mode has: this replica's lease
 * and its sb/cp/<id> record, the presence leader claim, room sequencing (sb/sequencer/<room>
 * on the replica's lease, fenced group commits of history), node leases (Adopt), connection
 * and presence records, and the node registry for GetStats. Implemented in store/etcd/ (its
 * cp_estore_int.h lists the files).
 *
 * Threads: libcurl runs on the etcd client's thread (cp_etcd.h); every completion and watch
 * batch is handed to the owner thread through `handoff` (cp_handoff.h), so every callback and
 * hook below runs on the owner thread (the completion-queue thread; the main thread during
 * cp_store_etcd_open). Nothing here blocks except cp_store_etcd_open. */
#ifndef CP_STORE_ETCD_H
#define CP_STORE_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_cluster.h"
#include "cp_handoff.h"
#include "cp_store.h"

struct cp_store_etcd_config {
    const char *endpoints;         /* "http://a:2379,http://b:2379" */
    const char *cp_id;             /* this replica */
    const char *advertise;         /* host:port peers dial (sb/cp/<id>) */
    int64_t lease_ttl_ms;          /* replica and node leases (>= 2000) */
    int op_timeout_ms;             /* per etcd request, 0: 3000 */
    int open_timeout_ms;           /* cp_store_etcd_open, 0: 10000 */
    struct cp_cluster_hooks hooks; /* the watch's changes, in revision order */
};

/* Connects, grants the replica lease, writes sb/cp/<id>, lists sb/ and starts the watch,
 * draining `handoff` on the calling thread until done (the caller becomes the owner thread
 * from then on; `handoff` is borrowed and must outlive the store). SB_EUNAVAIL when etcd does
 * not answer within open_timeout_ms, SB_EINVAL for a bad endpoint list, SB_ENOMEM. */
enum sb_err cp_store_etcd_open(const struct cp_store_etcd_config *cfg, struct cp_handoff *handoff,
                               struct cp_store **out);

/* True when `s` is an etcd store. */
bool cp_store_is_etcd(const struct cp_store *s);

/* Stops the etcd thread (pending requests complete with unavailable through the handoff, which
 * the owner drains afterwards); the store stays usable for destroy only. Owner thread. */
void cp_store_etcd_stop(struct cp_store *s);

/* Clears the cache and lists sb/ again, as when the watch's start revision was compacted
 * (then restarts the watch after the listing). Nothing is reported to the observer for it.
 * Owner thread; for tests and operators. */
void cp_store_etcd_relist(struct cp_store *s);

/* Timers: barrier timeouts, idempotency expiry, lease rotation. Owner thread, every <= 200 ms. */
void cp_store_etcd_tick(struct cp_store *s, int64_t mono_ms);

/* ---- cluster facts from the cache ---- */

bool cp_store_etcd_is_presence_leader(const struct cp_store *s);
/* Address of replica cp_id from sb/cp/<id> (borrowed), NULL when unknown. */
const char *cp_store_etcd_cp_address(const struct cp_store *s, const char *cp_id);
const char *cp_store_etcd_id(const struct cp_store *s);
size_t cp_store_etcd_room_count(const struct cp_store *s);

/* Calls fn for each node registered in sb/nodes/. */
void cp_store_etcd_nodes(const struct cp_store *s, cp_cluster_node_fn *fn, void *arg);

/* ---- node leases and connection records ---- */

/* Keeps the lease of node `node_id` alive from now on: `lease_id` when it still exists
 * (renewed false), else a new lease (renewed true; also for lease_id 0). Writes
 * sb/nodes/<node> {address, last_heartbeat} under it. */
void cp_store_etcd_adopt(struct cp_store *s, const char *node_id, const char *address,
                         int64_t lease_id, cp_cluster_adopt_fn *cb, void *arg);

/* The lease this replica keeps for the node (0: none). */
int64_t cp_store_etcd_node_lease(const struct cp_store *s, const char *node_id);

/* Stops keeping the node's lease alive; `revoke` also revokes it now (a clean node shutdown:
 * its connections go at once), else it expires after the TTL unless adopted elsewhere. */
void cp_store_etcd_release(struct cp_store *s, const char *node_id, bool revoke);

/* Refreshes sb/nodes/<node> (when this replica keeps its lease). Fire and forget. */
void cp_store_etcd_heartbeat(struct cp_store *s, const char *node_id, const char *address,
                             int64_t connections);

/* Writes sb/conns/<node>/<user>/<conn> under the node's lease (which this replica must keep);
 * answers after the barrier, so the cache already shows the connection. */
void cp_store_etcd_conn_put(struct cp_store *s, const char *node_id, const char *user_id,
                            const char *conn_id, const char *session_id, const char *transport,
                            int64_t connected_at, cp_cluster_done_fn *cb, void *arg);

/* Deletes a connection record; answers after the barrier. */
void cp_store_etcd_conn_delete(struct cp_store *s, const char *node_id, const char *user_id,
                               const char *conn_id, cp_cluster_done_fn *cb, void *arg);

#endif
