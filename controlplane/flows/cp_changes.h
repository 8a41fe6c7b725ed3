/* What a store reports it changed, applied to the control plane's state: member changes become
 * Membership items to the member's nodes (both stores); with a distributed store also
 * connection and presence records (they become cp_presence entries; online/offline is announced
 * by the leader only), re-lists, node leases lost while a node is linked here (re-granted and
 * pushed as Adopted{renewed}) and redeliveries after a sequencer change. See
 * docs/distributed.md. Thread: the completion-queue thread (the main thread while a store
 * opens, before the loop starts). */
#ifndef CP_CHANGES_H
#define CP_CHANGES_H

#include "cp_ctx.h"

/* The hooks that feed `c`, for cp_store_memory_set_hooks and the etcd store's config. */
void cp_changes_hooks(struct cp_ctx *c, struct cp_cluster_hooks *out);

#endif
