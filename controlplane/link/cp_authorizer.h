/* The client of the backend's `switchboard.v1.Authorizer` (API.md): one channel to --authorizer,
 * unary calls with the --authorizer-timeout deadline on the server's completion queue, answers
 * cached per (user, action, target) for the cache_ttl_ms the backend gives. Sets
 * cp_ctx.authorize. Thread: the completion-queue thread (start and fini: before and after it). */
#ifndef CP_AUTHORIZER_H
#define CP_AUTHORIZER_H

#include <stdint.h>

#include "cp_ctx.h"

/* Longest answer kept in the cache, whatever the backend says; entries kept at most. */
#define CP_AUTHORIZER_MAX_TTL_MS 3600000
#define CP_AUTHORIZER_MAX_CACHED 65536

/* Creates the channel (it connects lazily) and sets c->authorize. SB_ENOMEM. */
enum sb_err cp_authorizer_start(struct cp_ctx *c, const char *address, int64_t timeout_ms);

/* Server stopping: cancels the calls in flight (their askers hear CP_AUTHZ_UNAVAILABLE). */
void cp_authorizer_stop(struct cp_ctx *c);

/* After the completion queue is drained: frees the channel and the cache. */
void cp_authorizer_fini(struct cp_ctx *c);

#endif
