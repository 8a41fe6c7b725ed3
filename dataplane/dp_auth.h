/* Who is this client? A JSON Web Token verified against the node's keys (dp_keys), or, in
 * development mode only, the ?user_id= the client names itself with. The same decision serves
 * the WebSocket upgrade, GET /sse, POST /sse/<id> and the `refresh` frame. lws thread (the
 * keys are shared with the refresh thread through dp_keys). */
#ifndef DP_AUTH_H
#define DP_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_ident.h"
#include "sb_jwt.h"

struct dp_config;
struct dp_keys;
struct dp_auth_cached;

/* Verified tokens remembered, so that a reconnect storm (clients coming back with the token they
 * had) costs a SHA-256 and a lookup instead of a signature check each. Direct-mapped by the
 * token's digest; only tokens that passed every check are kept, and only for the key set
 * generation they were verified under. */
#define DP_AUTH_CACHE_SLOTS 4096

struct dp_auth {
    bool dev_mode;
    struct dp_keys *keys; /* NULL: no token is accepted (development mode only) */
    struct sb_jwt_opts jwt;
    /* development-mode connections logged, and left out of the log by the rate limit */
    int64_t dev_log_at_ms;
    uint64_t dev_suppressed;
    struct dp_auth_cached *cache; /* DP_AUTH_CACHE_SLOTS, allocated at the first token */
    uint64_t cache_hits, cache_misses;
};

/* Fills *a from the configuration; `keys` is borrowed (may be NULL). */
void dp_auth_init(struct dp_auth *a, const struct dp_config *cfg, struct dp_keys *keys);

/* Decides on the credentials of one request: `token` is the bearer token or ?token= value
 * (NULL or "" when none), `user_id_arg` the ?user_id= value or NULL. On success copies the user
 * id into `user` and, for a token, sets *claims to a heap copy of its claims (free with
 * dp_auth_claims_free; NULL in development mode) and returns true; else writes the sentence
 * of the `unauthorized` error into `why` (never a part of the token) and returns false. */
bool dp_auth_check(struct dp_auth *a, const char *token, const char *user_id_arg,
                   char user[SB_IDENT_MAX + 1], struct sb_jwt_claims **claims, char *why,
                   size_t cap);

/* The `refresh` frame: `token` must verify and name `user`. Same results as dp_auth_check. */
bool dp_auth_refresh(struct dp_auth *a, const char *token, const char *user,
                     struct sb_jwt_claims **claims, char *why, size_t cap);

/* A subscription token on a `subscribe` frame: true when `token` verifies (same keys and
 * checks as dp_auth_check), names `user` in `sub` and `channel_id` in its `channel` claim; else
 * false with the sentence of the `unauthorized` error in `why`. lws thread. */
bool dp_auth_subscription(struct dp_auth *a, const char *token, const char *user,
                          const char *channel_id, char *why, size_t cap);

/* Frees the cache. */
void dp_auth_fini(struct dp_auth *a);

/* Frees claims from dp_auth_check (NULL-safe). */
void dp_auth_claims_free(struct sb_jwt_claims *c);

/* Start-up: refuses an unsafe or useless configuration (no way in for clients; development
 * mode reachable beyond loopback without --allow-insecure). Returns false with the sentence in
 * `why`. Pure. */
bool dp_auth_config_ok(const struct dp_config *cfg, char *why, size_t cap);

/* Logs the loud start-up warning of development mode, or which key sources are in use. */
void dp_auth_log_mode(const struct dp_config *cfg);

#endif
