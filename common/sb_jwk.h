/* JOSE keys for sb_jwt (internal to the shared library): the algorithm table, and one
 * verification key built from an HMAC secret, a PEM text or a JWK Set. A key is immutable once
 * built; any thread may use it to verify. Pure apart from memory. */
#ifndef SB_JWK_H
#define SB_JWK_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

#include "sb_err.h"

/* What a key is, which decides the algorithms it verifies. */
enum sb_jwk_family {
    SB_JWK_HMAC,
    SB_JWK_RSA,
    SB_JWK_P256,
    SB_JWK_P384,
    SB_JWK_ED25519,
};

enum sb_jwk_alg {
    SB_JWK_HS256,
    SB_JWK_HS384,
    SB_JWK_HS512,
    SB_JWK_RS256,
    SB_JWK_RS384,
    SB_JWK_RS512,
    SB_JWK_PS256,
    SB_JWK_PS384,
    SB_JWK_PS512,
    SB_JWK_ES256,
    SB_JWK_ES384,
    SB_JWK_EDDSA,
    SB_JWK_ALG_COUNT,
    SB_JWK_ALG_ANY = -1, /* a key not restricted to one algorithm */
};

struct sb_jwk_alg_info {
    const char *name;          /* "RS256" */
    enum sb_jwk_family family; /* the one key family that verifies it */
    const char *md;            /* digest name; NULL for EdDSA */
    bool pss;                  /* RSASSA-PSS, salt length = digest length */
    size_t ec_half;            /* ES*: bytes of r (and of s) in the JWS signature; else 0 */
    size_t hmac_index;         /* HS*: index into sb_jwk.mac[] */
};

/* The table row of `a` (a valid enum value). Static. */
const struct sb_jwk_alg_info *sb_jwk_alg_info(enum sb_jwk_alg a);
/* The algorithm named exactly `name` (n bytes), or SB_JWK_ALG_ANY when there is none. */
enum sb_jwk_alg sb_jwk_alg_parse(const char *name, size_t n);

/* One verification key. */
struct sb_jwk {
    enum sb_jwk_family family;
    enum sb_jwk_alg alg; /* SB_JWK_ALG_ANY, or the one algorithm a JWK's `alg` allows */
    char *kid;           /* NULL: the key has no id */
    EVP_PKEY *pkey;      /* the public key; NULL for HMAC */
    /* HMAC: a context keyed with the secret per hash (SHA-256, -384, -512), which verification
     * duplicates, so the secret's pads and the digest fetch are computed once. */
    EVP_MAC_CTX *mac[3];
};

/* A key from an HMAC secret (at least SB_JWT_MIN_HMAC_SECRET bytes). `kid` may be NULL. On SB_OK
 * *out is filled (release with sb_jwk_fini); SB_EINVAL with a sentence in err when too short. */
enum sb_err sb_jwk_init_hmac(struct sb_jwk *out, const unsigned char *secret, size_t len,
                             const char *kid, char *err, size_t cap);

/* Every key of a PEM text (public keys, "RSA PUBLIC KEY" blocks, certificates), each with `kid`
 * (may be NULL). On SB_OK *out is a new array of *n keys (release with sb_jwk_free_array).
 * SB_EINVAL, with a sentence in err, for a private key, a refused key or a malformed block. */
enum sb_err sb_jwk_parse_pem(const char *pem, size_t len, const char *kid, struct sb_jwk **out,
                             size_t *n, char *err, size_t cap);

/* The supported keys of a JWK Set document, as sb_jwt_keys_add_jwks describes; same ownership
 * as sb_jwk_parse_pem. *skipped (not NULL) counts the keys passed over. */
enum sb_err sb_jwk_parse_jwks(const char *json, size_t len, struct sb_jwk **out, size_t *n,
                              size_t *skipped, char *err, size_t cap);

void sb_jwk_fini(struct sb_jwk *k);

/* Writes a sentence into err (cap bytes; nothing when err is NULL): the loaders' error text. */
__attribute__((format(printf, 3, 4))) void sb_jwk_errf(char *err, size_t cap, const char *fmt, ...);
void sb_jwk_free_array(struct sb_jwk *v, size_t n);

#endif
