/* The cluster interface (cp_cluster.h) of the etcd store: each operation is the etcd store's
 * own (cp_store_etcd.h). Thread: the store's owner thread. */
#ifndef CP_CLUSTER_ETCD_H
#define CP_CLUSTER_ETCD_H

#include "cp_cluster.h"
#include "cp_store_etcd.h"

/* Returns the cluster view of `store` (an etcd store, borrowed: it must outlive the view), or
 * NULL on ENOMEM. Free with cp_cluster_etcd_destroy. */
struct cp_cluster *cp_cluster_etcd_create(struct cp_store *store);

void cp_cluster_etcd_destroy(struct cp_cluster *cl);

#endif
