/* The data plane's token keys and where they come from: an HMAC secret file, PEM public key
 * files, a JWK Set file and a JWK Set URL. One background thread watches the files (about once a
 * second) and fetches the URL (every --jwks-refresh, and at most once per 30 s when a token
 * names a key id nobody knows), rebuilds the whole set when a source changes, and swaps it in; a
 * source that fails to load keeps its last good keys. The event loop only takes a reference to
 * the current set: nothing here blocks it, and no URL or key ever comes from a token. */
#ifndef DP_KEYS_H
#define DP_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"

struct dp_config;
struct dp_keys;
struct sb_jwt_keys;

/* Loads every configured source once (the URL by the thread, waited for up to a few seconds so
 * that the first clients find its keys) and starts the thread. A file that cannot be loaded at
 * start is an error (err: a sentence naming it). With no source configured *out is NULL and
 * SB_OK is returned: the node takes no tokens. Main thread. */
enum sb_err dp_keys_create(const struct dp_config *cfg, struct dp_keys **out, char *err,
                           size_t cap);

/* Stops the thread and frees everything. NULL is ignored. */
void dp_keys_destroy(struct dp_keys *k);

/* The current key set, with a reference the caller drops with sb_jwt_keys_unref. Any thread. */
struct sb_jwt_keys *dp_keys_get(struct dp_keys *k);

/* Rises each time a new key set is swapped in (from 1): a cache of verified tokens is valid only
 * for the generation it was filled under. Any thread. */
uint64_t dp_keys_generation(struct dp_keys *k);

/* A token named a key id that is not in the set: fetch the URL again soon (at most once per
 * 30 s). Any thread; never blocks. */
void dp_keys_kick(struct dp_keys *k);

/* True when a JWK Set URL may be used: https, or http to a loopback host. Pure. */
bool dp_keys_url_is_allowed(const char *url);

#endif
