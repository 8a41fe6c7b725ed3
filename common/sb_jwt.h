/* JSON Web Tokens (RFC 7519, JWS compact form): a set of verification keys and the check of one
 * token against it. Signatures through OpenSSL 3's EVP API, the JOSE JSON through jansson.
 *
 * The key decides the algorithm: an HMAC secret verifies HS256/384/512 only, an RSA key
 * RS256/384/512 and PS256/384/512, an EC P-256 key ES256, an EC P-384 key ES384, an Ed25519 key
 * EdDSA. The token's header only chooses among the keys' own algorithms; `alg: none`, an
 * algorithm outside every candidate key's family, or a `kid` that names no key is refused. No
 * key or URL is ever taken from a token (`jwk`, `jku`, `x5u`, `x5c` are ignored). A key set is
 * immutable once built and reference-counted, so verifiers on any thread share it while a new
 * set is built elsewhere. Everything here is pure apart from the *_file loaders. */
#ifndef SB_JWT_H
#define SB_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"
#include "sb_ident.h"

/* Longest token accepted, in bytes (it travels in a header or a query string). */
#define SB_JWT_MAX_TOKEN 8192
/* Largest `info` claim, as compact JSON text, in bytes. */
#define SB_JWT_MAX_INFO 4096
/* Most entries of the `channels` or `rooms` claim, and the longest entry in bytes. */
#define SB_JWT_MAX_GRANTS    256
#define SB_JWT_MAX_GRANT_LEN 256
/* Shortest HMAC secret accepted (RFC 7518 3.2: at least the hash size of HS256). */
#define SB_JWT_MIN_HMAC_SECRET 32
/* Smallest RSA modulus accepted, in bits. */
#define SB_JWT_MIN_RSA_BITS 2048
/* Most keys in one set: a token without `kid` may be tried against every key of its family, so
 * the set's size bounds the work one token can cause. */
#define SB_JWT_MAX_KEYS 64

struct sb_jwt_keys;

/* An empty key set with one reference. NULL when out of memory. */
struct sb_jwt_keys *sb_jwt_keys_create(void);
struct sb_jwt_keys *sb_jwt_keys_ref(struct sb_jwt_keys *k);
/* Drops one reference; the last frees the keys. NULL is ignored. Any thread. */
void sb_jwt_keys_unref(struct sb_jwt_keys *k);

/* Adders: only while the set is being built (one thread, before it is shared). Each writes a
 * sentence into err (cap bytes) on failure. `kid` may be NULL (the key has no id). An adder adds
 * all its keys or none; SB_EFULL when the set would exceed SB_JWT_MAX_KEYS. */

/* An HMAC secret (raw bytes, at least SB_JWT_MIN_HMAC_SECRET). SB_EINVAL if too short. */
enum sb_err sb_jwt_keys_add_hmac(struct sb_jwt_keys *k, const unsigned char *secret, size_t len,
                                 const char *kid, char *err, size_t cap);
/* The length of the secret in a secret file's text: `len` less one trailing "\n" or "\r\n"
 * (editors add a line end; the secret is what comes before it). Pure. */
size_t sb_jwt_secret_len(const char *text, size_t len);

/* The whole content of FILE as an HMAC secret (sb_jwt_secret_len of it). SB_EIO when
 * the file cannot be read, SB_EINVAL when too short. */
enum sb_err sb_jwt_keys_add_hmac_file(struct sb_jwt_keys *k, const char *path, char *err,
                                      size_t cap);
/* Public keys in PEM ("PUBLIC KEY" SubjectPublicKeyInfo, "RSA PUBLIC KEY", or a certificate
 * whose key is used). Several PEM blocks in one text add several keys. RSA under
 * SB_JWT_MIN_RSA_BITS, EC curves other than P-256/P-384, private keys and other types are
 * refused with SB_EINVAL. */
enum sb_err sb_jwt_keys_add_pem(struct sb_jwt_keys *k, const char *pem, size_t len, const char *kid,
                                char *err, size_t cap);
enum sb_err sb_jwt_keys_add_pem_file(struct sb_jwt_keys *k, const char *path, char *err,
                                     size_t cap);
/* A JWK Set document (RFC 7517): {"keys":[...]}. Keys of kty RSA, EC (P-256, P-384), OKP
 * (Ed25519) and oct are added with their `kid`; a key's `alg`, when present, restricts it to that
 * one algorithm; keys with `use` other than "sig", or of unsupported types or curves, are skipped
 * (counted in *skipped when not NULL). Private members (d, p, q, ...) are ignored. SB_EINVAL when
 * the document is not a JWK Set or a supported key is malformed. */
enum sb_err sb_jwt_keys_add_jwks(struct sb_jwt_keys *k, const char *json, size_t len,
                                 size_t *skipped, char *err, size_t cap);

/* Number of keys in the set. */
size_t sb_jwt_keys_count(const struct sb_jwt_keys *k);

/* What a verification checks besides the signature. */
struct sb_jwt_opts {
    const char *issuer;   /* NULL or "": `iss` not checked; else it must be equal */
    const char *audience; /* NULL or "": `aud` not checked; else a string equal to it or a list
                             holding it */
    int64_t leeway_ms;    /* allowed clock skew for exp, nbf and iat */
    bool allow_no_exp;    /* a token without `exp` is accepted */
};

/* Why a token was refused. sb_jwt_result_name gives the sentence used in error messages. */
enum sb_jwt_result {
    SB_JWT_OK = 0,
    SB_JWT_MALFORMED,         /* not three base64url parts, bad JSON, wrong claim types */
    SB_JWT_TOO_LARGE,         /* over SB_JWT_MAX_TOKEN */
    SB_JWT_ALG_NONE,          /* alg "none" (any case) */
    SB_JWT_ALG_UNSUPPORTED,   /* an alg outside the list above, or `crit` present */
    SB_JWT_UNKNOWN_KID,       /* a kid that matches no key */
    SB_JWT_NO_KEY,            /* no key of the alg's family (algorithm confusion lands here) */
    SB_JWT_BAD_SIGNATURE,     /* no candidate key verified the signature */
    SB_JWT_EXPIRED,           /* now > exp + leeway */
    SB_JWT_NOT_YET_VALID,     /* nbf > now + leeway */
    SB_JWT_ISSUED_IN_FUTURE,  /* iat > now + leeway */
    SB_JWT_NO_EXP,            /* exp missing and not allowed */
    SB_JWT_BAD_SUB,           /* sub missing or not a valid user id */
    SB_JWT_ISSUER_MISMATCH,   /* iss missing or different */
    SB_JWT_AUDIENCE_MISMATCH, /* aud missing or without the audience */
    SB_JWT_BAD_INFO,          /* info not an object, or over SB_JWT_MAX_INFO */
    SB_JWT_BAD_GRANTS,        /* channels/rooms not a list of short strings, or too many */
    SB_JWT_NOMEM,
};

/* A short sentence for the result ("token expired", "bad signature", "unknown key id", ...),
 * never holding any part of the token. Pure. */
const char *sb_jwt_result_name(enum sb_jwt_result r);

/* What a verified token says. Strings are heap copies owned by the struct. */
struct sb_jwt_claims {
    char sub[SB_IDENT_MAX + 1];
    int64_t exp_ms; /* 0: no exp */
    int64_t nbf_ms; /* 0: none */
    int64_t iat_ms; /* 0: none */
    char *info;     /* compact JSON object text, NULL when the claim is absent */
    char **channels;
    size_t n_channels;
    char **rooms;
    size_t n_rooms;
    char *channel; /* the `channel` claim of a subscription token, NULL when absent */
    char alg[8];   /* the algorithm that verified it, e.g. "RS256" */
};

/* Verifies `token` (len bytes, need not be NUL-terminated) against `keys` at time now_ms (Unix
 * ms) with `opts`. On SB_JWT_OK fills *out (release with sb_jwt_claims_fini); otherwise *out is
 * left zeroed. Constant-time comparison for HMAC. Any thread (the keys are only read). */
enum sb_jwt_result sb_jwt_verify(const struct sb_jwt_keys *keys, const char *token, size_t len,
                                 const struct sb_jwt_opts *opts, int64_t now_ms,
                                 struct sb_jwt_claims *out);

void sb_jwt_claims_fini(struct sb_jwt_claims *c);

/* A deep copy of *src into *dst (release with sb_jwt_claims_fini). SB_ENOMEM leaves *dst
 * empty. Pure. */
enum sb_err sb_jwt_claims_copy(const struct sb_jwt_claims *src, struct sb_jwt_claims *dst);

/* Signs `payload_json` (a JSON object text) with an HMAC secret: alg "HS256", "HS384" or
 * "HS512", header {"alg":..,"typ":"JWT"} (with "kid" when kid is not NULL). On SB_OK *out is a
 * heap string the caller frees. For development tokens (--mint-token) and tests. */
enum sb_err sb_jwt_sign_hmac(const char *alg, const unsigned char *secret, size_t len,
                             const char *kid, const char *payload_json, char **out);

#endif
