/* etcd mode glue between the etcd Store's watch and the control plane's state: connections and
 * presence records become cp_presence entries (online/offline announced by the presence leader
 * only), member changes become Membership items with their etcd revision, node leases lost
 * while a node is linked are re-granted and pushed as Adopted{renewed}. See
 * docs/distributed.md. Thread: the completion-queue thread (the main thread while the store
 * opens, before the loop starts). */
#ifndef CP_DIST_H
#define CP_DIST_H

#include "cp_ctx.h"

/* The cluster hooks (the distributed store's watch) that feed `c`. */
void cp_dist_hooks(struct cp_ctx *c, struct cp_cluster_hooks *out);

#endif
