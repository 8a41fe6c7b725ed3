/* The control plane's gRPC server: the public API, grpc.health.v1 and NodeLink on one port,
 * served by one completion-queue thread (see the top of cp_server.c). */
#ifndef CP_SERVER_H
#define CP_SERVER_H

#include <stdint.h>

#include "cp_ctx.h"
#include "sb_err.h"
#include "sb_secret.h"

struct cp_server_opts {
    const char *listen; /* HOST:PORT */
    /* etcd mode when etcd_endpoints is non-NULL (docs/distributed.md). */
    const char *etcd_endpoints; /* "http://a:2379,http://b:2379" */
    const char *id;             /* replica id; NULL or "": cp-<random> */
    const char *advertise;      /* address peers dial; NULL or "": listen */
    int64_t lease_ttl_ms;       /* replica and node leases */
    struct cp_settings settings;
    int64_t shutdown_grace_ms; /* calls still running after this are cancelled */
    /* Credentials (docs/security.md), NULL: none asked. Borrowed until cp_server_stop returns;
     * from the start on only the server's thread touches them (it re-reads their files). */
    struct sb_secret *api_keys;       /* switchboard.v1.*: --api-key-file */
    struct sb_secret *cluster_secret; /* switchboard.internal.v1.*: --cluster-secret-file */
    /* The backend's switchboard.v1.Authorizer (--authorizer; NULL or "": none) and the deadline
     * of each call. */
    const char *authorizer;
    int64_t authorizer_timeout_ms;
};

struct cp_server;

/* Builds the store (memory, or etcd when etcd_endpoints is set: connects, lists, watches,
 * SB_EUNAVAIL when etcd does not answer) and state, binds `listen` and starts the
 * completion-queue thread.
 * Call grpc_init first, on the main thread with SIGINT/SIGTERM blocked (threads inherit the
 * mask). SB_EIO when the address cannot be bound (e.g. in use), SB_ENOMEM. Blocks briefly. */
enum sb_err cp_server_start(const struct cp_server_opts *o, struct cp_server **out);

/* Graceful stop: no new calls, NodeLink streams ended with UNAVAILABLE, running calls given
 * the grace period then cancelled, the thread joined and everything freed. Main thread;
 * blocks up to about the grace period. */
void cp_server_stop(struct cp_server *s);

#endif
