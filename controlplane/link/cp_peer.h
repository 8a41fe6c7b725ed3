/* Publishing in etcd mode (docs/distributed.md, "Room sequencing"): the Store sequences a room
 * only on the replica that holds its sequencer key; any other replica forwards the publish to
 * the holder over switchboard.internal.v1.Peer/Publish (a gRPC core client call on the
 * completion queue, one channel per peer address from sb/cp/<id>). The holder stores the
 * message, delivers it once per node on its own NodeLink streams, then answers. Failed
 * forwards (holder dead, sequencer moving) are retried every 200 ms until the holder's lease
 * must have expired (lease TTL + 5 s), then answered unavailable. Every publish carries an
 * idempotency key (the caller's, or one made here), so a retry never stores a message twice.
 * Thread: the completion-queue thread. */
#ifndef CP_PEER_H
#define CP_PEER_H

#include "cp_rooms.h"

/* etcd-mode cp_rooms_publish (same contract). */
void cp_peer_publish(struct cp_ctx *c, const struct cp_publish *p, cp_rooms_publish_fn *cb,
                     void *arg);

/* Retries due at monotonic `mono_ms`. */
void cp_peer_tick(struct cp_ctx *c, int64_t mono_ms);

/* Server stopping: cancels calls in flight and answers waiting retries with unavailable. */
void cp_peer_stop(struct cp_ctx *c);

/* After the completion queue is drained: frees the channels. */
void cp_peer_fini(struct cp_ctx *c);

/* True when st is the holder's "not_sequencer: ..." answer (Peer/Publish turns it into
 * FAILED_PRECONDITION). */
bool cp_peer_is_not_sequencer(const struct cp_status *st);

#endif
