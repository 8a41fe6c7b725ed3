/* switchboard.internal.v1.Peer/Publish, the handler a replica answers forwarded publishes
 * with (etcd mode, between replicas). Thread: the completion-queue thread. */
#ifndef CP_RPC_PEER_H
#define CP_RPC_PEER_H

#include "cp_call.h"

cp_rpc_fn cp_rpc_peer_publish;

#endif
