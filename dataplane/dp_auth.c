/* Client identity. Everything here is deliberately strict: a missing or invalid credential is
 * refused, never defaulted, and a token that fails any check is refused with the check's name
 * alone (the token itself never reaches a message or a log line). */
#include "dp_auth.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_config.h"
#include "dp_keys.h"
#include "sb_addr.h"
#include "sb_log.h"
#include "sb_time.h"

#define MOD "dp_auth"

void dp_auth_init(struct dp_auth *a, const struct dp_config *cfg, struct dp_keys *keys)
{
    memset(a, 0, sizeof(*a));
    a->dev_mode = cfg->dev_mode != 0;
    a->keys = keys;
    a->jwt.issuer = cfg->jwt_issuer;
    a->jwt.audience = cfg->jwt_audience;
    a->jwt.leeway_ms = cfg->jwt_leeway;
    a->jwt.allow_no_exp = cfg->jwt_allow_no_exp != 0;
}

void dp_auth_claims_free(struct sb_jwt_claims *c)
{
    if (c == NULL)
        return;
    sb_jwt_claims_fini(c);
    free(c);
}

struct dp_auth_cached {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    uint64_t generation; /* 0: empty */
    struct sb_jwt_claims claims;
};

void dp_auth_fini(struct dp_auth *a)
{
    for (size_t i = 0; a->cache != NULL && i < DP_AUTH_CACHE_SLOTS; i++)
        sb_jwt_claims_fini(&a->cache[i].claims);
    free(a->cache);
    a->cache = NULL;
}

/* The cache's answer for a token of this digest: SB_JWT_OK with a copy in *c, the time check
 * that now fails, or SB_JWT_NOMEM for "not cached" (verify it). */
static enum sb_jwt_result cached(struct dp_auth *a, struct dp_auth_cached *e, uint64_t gen,
                                 const unsigned char *digest, int64_t now, struct sb_jwt_claims *c)
{
    if (e->generation != gen || memcmp(e->digest, digest, sizeof(e->digest)) != 0)
        return SB_JWT_NOMEM;
    const struct sb_jwt_claims *k = &e->claims;
    if (k->exp_ms != 0 && now > k->exp_ms + a->jwt.leeway_ms)
        return SB_JWT_EXPIRED;
    if (sb_jwt_claims_copy(k, c) != SB_OK)
        return SB_JWT_NOMEM;
    return SB_JWT_OK;
}

static void remember(struct dp_auth_cached *e, uint64_t gen, const unsigned char *digest,
                     const struct sb_jwt_claims *c)
{
    sb_jwt_claims_fini(&e->claims);
    e->generation = 0;
    if (sb_jwt_claims_copy(c, &e->claims) != SB_OK)
        return;
    memcpy(e->digest, digest, sizeof(e->digest));
    e->generation = gen;
}

static bool verify(struct dp_auth *a, const char *token, struct sb_jwt_claims **claims, char *why,
                   size_t cap)
{
    if (a->keys == NULL) {
        snprintf(why, cap, "this node is configured without token keys (development mode only)");
        return false;
    }
    struct sb_jwt_claims *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(why, cap, "out of memory");
        return false;
    }
    size_t len = strlen(token);
    int64_t now = sb_time_now_ms();
    unsigned char digest[SHA256_DIGEST_LENGTH];
    uint64_t gen = dp_keys_generation(a->keys);
    struct dp_auth_cached *e = NULL;
    if (a->cache == NULL)
        a->cache = calloc(DP_AUTH_CACHE_SLOTS, sizeof(*a->cache));
    if (a->cache != NULL && len <= SB_JWT_MAX_TOKEN &&
        EVP_Digest(token, len, digest, NULL, EVP_sha256(), NULL) == 1) {
        uint32_t slot;
        memcpy(&slot, digest, sizeof(slot));
        e = &a->cache[slot & (DP_AUTH_CACHE_SLOTS - 1)];
    }
    enum sb_jwt_result r = e != NULL ? cached(a, e, gen, digest, now, c) : SB_JWT_NOMEM;
    if (r == SB_JWT_NOMEM) {
        a->cache_misses++;
        struct sb_jwt_keys *keys = dp_keys_get(a->keys);
        r = sb_jwt_verify(keys, token, len, &a->jwt, now, c);
        sb_jwt_keys_unref(keys);
        if (r == SB_JWT_OK && e != NULL)
            remember(e, gen, digest, c);
    } else {
        a->cache_hits++;
    }
    if (r != SB_JWT_OK) {
        free(c);
        if (r == SB_JWT_UNKNOWN_KID || r == SB_JWT_NO_KEY)
            dp_keys_kick(a->keys); /* perhaps a key published since the last fetch */
        snprintf(why, cap, "%s", sb_jwt_result_name(r));
        return false;
    }
    *claims = c;
    return true;
}

/* "logged loudly on every such connection": one warning a second at most, with the count of
 * the ones it stands for, so that a connect storm in development cannot flood the log. */
static void log_dev_connection(struct dp_auth *a, const char *user)
{
    int64_t now = sb_time_mono_ms();
    if (a->dev_log_at_ms != 0 && now - a->dev_log_at_ms < 1000) {
        a->dev_suppressed++;
        return;
    }
    SB_LOG_WARN(MOD, "UNAUTHENTICATED development-mode connection", "user=%s also_since_last=%llu",
                user, (unsigned long long)a->dev_suppressed);
    a->dev_log_at_ms = now;
    a->dev_suppressed = 0;
}

bool dp_auth_check(struct dp_auth *a, const char *token, const char *user_id_arg,
                   char user[SB_IDENT_MAX + 1], struct sb_jwt_claims **claims, char *why,
                   size_t cap)
{
    *claims = NULL;
    if (token != NULL && token[0] != '\0') {
        if (!verify(a, token, claims, why, cap))
            return false;
        strcpy(user, (*claims)->sub);
        return true;
    }
    if (!a->dev_mode) {
        snprintf(why, cap,
                 user_id_arg != NULL
                     ? "?user_id= is accepted only in development mode: send a token"
                     : "missing token: send Authorization: Bearer <jwt> or ?token=");
        return false;
    }
    if (user_id_arg == NULL || user_id_arg[0] == '\0') {
        snprintf(why, cap, "development mode: pass ?user_id=<id> or a token");
        return false;
    }
    if (!sb_ident_is_valid(user_id_arg)) {
        snprintf(why, cap, "invalid user_id: 1 to %d characters of A-Z a-z 0-9 . _ : @ -",
                 SB_IDENT_MAX);
        return false;
    }
    strcpy(user, user_id_arg);
    log_dev_connection(a, user);
    return true;
}

bool dp_auth_refresh(struct dp_auth *a, const char *token, const char *user,
                     struct sb_jwt_claims **claims, char *why, size_t cap)
{
    *claims = NULL;
    if (token == NULL || token[0] == '\0') {
        snprintf(why, cap, "refresh needs a token");
        return false;
    }
    struct sb_jwt_claims *c = NULL;
    if (!verify(a, token, &c, why, cap))
        return false;
    if (strcmp(c->sub, user) != 0) {
        dp_auth_claims_free(c);
        snprintf(why, cap, "the new token names another user (sub must be the connection's user)");
        return false;
    }
    *claims = c;
    return true;
}

bool dp_auth_subscription(struct dp_auth *a, const char *token, const char *user,
                          const char *channel_id, char *why, size_t cap)
{
    struct sb_jwt_claims *c = NULL;
    if (!verify(a, token, &c, why, cap))
        return false;
    bool ok = false;
    if (strcmp(c->sub, user) != 0)
        snprintf(why, cap,
                 "subscription token names another user (sub must be the connection's "
                 "user)");
    else if (c->channel == NULL || strcmp(c->channel, channel_id) != 0)
        snprintf(why, cap,
                 "subscription token is for another channel (its channel claim must "
                 "be the channel id)");
    else
        ok = true;
    dp_auth_claims_free(c);
    return ok;
}

static bool has(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static bool any_key_source(const struct dp_config *cfg)
{
    return has(cfg->jwt_hmac_secret_file) || has(cfg->jwt_public_key_file) || has(cfg->jwks_file) ||
           has(cfg->jwks_url);
}

bool dp_auth_config_ok(const struct dp_config *cfg, char *why, size_t cap)
{
    if (!cfg->dev_mode && !any_key_source(cfg)) {
        snprintf(why, cap,
                 "no way for clients to authenticate: give --jwt-hmac-secret-file, "
                 "--jwt-public-key-file, --jwks-file or --jwks-url (or --dev-mode on loopback "
                 "for development)");
        return false;
    }
    if (has(cfg->jwks_url) && !dp_keys_url_is_allowed(cfg->jwks_url)) {
        snprintf(why, cap, "--jwks-url must be https://..., or http:// to a loopback host");
        return false;
    }
    if (cfg->dev_mode && !sb_addr_is_loopback(cfg->host) && !cfg->allow_insecure) {
        snprintf(why, cap,
                 "refusing to start: --dev-mode on %s would let anyone who reaches it act as any "
                 "user; listen on 127.0.0.1, use tokens, or give --allow-insecure",
                 cfg->listen);
        return false;
    }
    return true;
}

void dp_auth_log_mode(const struct dp_config *cfg)
{
    if (cfg->dev_mode) {
        SB_LOG_WARN(MOD,
                    "DEVELOPMENT MODE: clients without a token are NOT authenticated; anyone "
                    "reaching this port can act as any user with ?user_id=. Never run this in "
                    "production.",
                    "dev_mode=true listen=%s", cfg->listen);
        if (!sb_addr_is_loopback(cfg->host))
            SB_LOG_WARN(MOD, "INSECURE: development mode beyond loopback (--allow-insecure)",
                        "listen=%s", cfg->listen);
    }
    if (any_key_source(cfg))
        SB_LOG_INFO(MOD, "client tokens required",
                    "hmac=%s public_keys=%s jwks_file=%s jwks_url=%s",
                    has(cfg->jwt_hmac_secret_file) ? "yes" : "no",
                    has(cfg->jwt_public_key_file) ? "yes" : "no",
                    has(cfg->jwks_file) ? "yes" : "no", has(cfg->jwks_url) ? cfg->jwks_url : "no");
}
