/* The memory Store: everything in this process (one replica), the default. Completes every
 * operation inline, on the calling thread. */
#ifndef CP_STORE_MEMORY_H
#define CP_STORE_MEMORY_H

#include "cp_cluster.h"
#include "cp_store.h"

/* Returns a new empty memory store (destroy through its ops), or NULL on ENOMEM. */
struct cp_store *cp_store_memory_create(void);

/* Reports the store's member changes (added or removed, with the store's revision) to
 * hooks->member from now on, synchronously, before the operation answers; the other hooks are
 * never called (one replica has no records, re-lists or leases). `hooks` is copied. */
void cp_store_memory_set_hooks(struct cp_store *s, const struct cp_cluster_hooks *hooks);

#endif
