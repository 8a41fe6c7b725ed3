/* The memory Store: everything in this process (one replica), the default. Completes every
 * operation inline, on the calling thread. */
#ifndef CP_STORE_MEMORY_H
#define CP_STORE_MEMORY_H

#include "cp_store.h"

/* Returns a new empty memory store (destroy through its ops), or NULL on ENOMEM. */
struct cp_store *cp_store_memory_create(void);

#endif
