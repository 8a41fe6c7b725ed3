/* JOSE keys: the algorithm table and the import of verification keys (HMAC secrets, PEM, JWK
 * Sets) into EVP objects, once, at load, with every refusal the key rules of sb_jwt.h name. */
#include "sb_jwk.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "sb_b64url.h"
#include "sb_jwt.h"

static const struct sb_jwk_alg_info algs[SB_JWK_ALG_COUNT] = {
    [SB_JWK_HS256] = {"HS256", SB_JWK_HMAC, "SHA256", false, 0, 0},
    [SB_JWK_HS384] = {"HS384", SB_JWK_HMAC, "SHA384", false, 0, 1},
    [SB_JWK_HS512] = {"HS512", SB_JWK_HMAC, "SHA512", false, 0, 2},
    [SB_JWK_RS256] = {"RS256", SB_JWK_RSA, "SHA256", false, 0, 0},
    [SB_JWK_RS384] = {"RS384", SB_JWK_RSA, "SHA384", false, 0, 0},
    [SB_JWK_RS512] = {"RS512", SB_JWK_RSA, "SHA512", false, 0, 0},
    [SB_JWK_PS256] = {"PS256", SB_JWK_RSA, "SHA256", true, 0, 0},
    [SB_JWK_PS384] = {"PS384", SB_JWK_RSA, "SHA384", true, 0, 0},
    [SB_JWK_PS512] = {"PS512", SB_JWK_RSA, "SHA512", true, 0, 0},
    [SB_JWK_ES256] = {"ES256", SB_JWK_P256, "SHA256", false, 32, 0},
    [SB_JWK_ES384] = {"ES384", SB_JWK_P384, "SHA384", false, 48, 0},
    [SB_JWK_EDDSA] = {"EdDSA", SB_JWK_ED25519, NULL, false, 0, 0},
};

/* The digests of sb_jwk.mac[], in hmac_index order. */
static const char *const mac_md[3] = {"SHA256", "SHA384", "SHA512"};

/* Longest JWK member we decode (a 16384-bit modulus is 2731 characters). */
#define MEMBER_MAX 4096

const struct sb_jwk_alg_info *sb_jwk_alg_info(enum sb_jwk_alg a)
{
    return &algs[a];
}

enum sb_jwk_alg sb_jwk_alg_parse(const char *name, size_t n)
{
    for (int a = 0; a < SB_JWK_ALG_COUNT; a++)
        if (strlen(algs[a].name) == n && memcmp(algs[a].name, name, n) == 0)
            return (enum sb_jwk_alg)a;
    return SB_JWK_ALG_ANY;
}

void sb_jwk_errf(char *err, size_t cap, const char *fmt, ...)
{
    if (err == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

void sb_jwk_fini(struct sb_jwk *k)
{
    if (k == NULL)
        return;
    free(k->kid);
    EVP_PKEY_free(k->pkey);
    for (size_t i = 0; i < 3; i++)
        EVP_MAC_CTX_free(k->mac[i]);
    memset(k, 0, sizeof(*k));
}

void sb_jwk_free_array(struct sb_jwk *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sb_jwk_fini(&v[i]);
    free(v);
}

static enum sb_err set_kid(struct sb_jwk *k, const char *kid)
{
    if (kid == NULL)
        return SB_OK;
    k->kid = strdup(kid);
    return k->kid ? SB_OK : SB_ENOMEM;
}

enum sb_err sb_jwk_init_hmac(struct sb_jwk *out, const unsigned char *secret, size_t len,
                             const char *kid, char *err, size_t cap)
{
    struct sb_jwk k = {.family = SB_JWK_HMAC, .alg = SB_JWK_ALG_ANY};
    enum sb_err rc = SB_ENOMEM;
    EVP_MAC *mac = NULL;
    if (len < SB_JWT_MIN_HMAC_SECRET) {
        sb_jwk_errf(err, cap, "HMAC secret of %zu bytes is too short (at least %d are required)",
                    len, SB_JWT_MIN_HMAC_SECRET);
        return SB_EINVAL;
    }
    if ((mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
        goto out;
    for (size_t i = 0; i < 3; i++) {
        OSSL_PARAM p[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)mac_md[i], 0),
            OSSL_PARAM_construct_end(),
        };
        if ((k.mac[i] = EVP_MAC_CTX_new(mac)) == NULL || !EVP_MAC_init(k.mac[i], secret, len, p))
            goto out;
    }
    if ((rc = set_kid(&k, kid)) != SB_OK)
        goto out;
    *out = k;
    k = (struct sb_jwk){0};
out:
    if (rc == SB_ENOMEM)
        sb_jwk_errf(err, cap, "out of memory");
    EVP_MAC_free(mac);
    sb_jwk_fini(&k);
    ERR_clear_error();
    return rc;
}

/* Checks a public key against the rules (RSA size and exponent, EC curve, type) and fills *out;
 * the key is taken (freed on failure). */
static enum sb_err take_pkey(struct sb_jwk *out, EVP_PKEY *pkey, const char *kid, char *err,
                             size_t cap)
{
    struct sb_jwk k = {.alg = SB_JWK_ALG_ANY, .pkey = pkey};
    enum sb_err rc = SB_EINVAL;
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        int bits = EVP_PKEY_get_bits(pkey);
        BIGNUM *e = NULL;
        if (bits < SB_JWT_MIN_RSA_BITS) {
            sb_jwk_errf(err, cap, "RSA key of %d bits is too small (at least %d are required)",
                        bits, SB_JWT_MIN_RSA_BITS);
            goto out;
        }
        /* An exponent of 1 (or an even one) makes every signature trivial or impossible; a huge
         * one makes each verification as slow as a private-key operation. */
        bool ok = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) && BN_is_odd(e) &&
                  BN_num_bits(e) >= 2 && BN_num_bits(e) <= 64;
        BN_free(e);
        if (!ok) {
            sb_jwk_errf(err, cap, "RSA key with an unusable public exponent");
            goto out;
        }
        k.family = SB_JWK_RSA;
    } else if (EVP_PKEY_is_a(pkey, "EC")) {
        char g[80] = "";
        size_t gl = 0;
        int nid = NID_undef;
        if (EVP_PKEY_get_group_name(pkey, g, sizeof(g), &gl))
            nid = OBJ_txt2nid(g) != NID_undef ? OBJ_txt2nid(g) : EC_curve_nist2nid(g);
        if (nid == NID_X9_62_prime256v1) {
            k.family = SB_JWK_P256;
        } else if (nid == NID_secp384r1) {
            k.family = SB_JWK_P384;
        } else {
            sb_jwk_errf(err, cap, "EC key on curve \"%s\" is not supported (P-256 and P-384 are)",
                        g);
            goto out;
        }
    } else if (EVP_PKEY_is_a(pkey, "ED25519")) {
        k.family = SB_JWK_ED25519;
    } else {
        const char *t = EVP_PKEY_get0_type_name(pkey);
        sb_jwk_errf(err, cap, "key type \"%s\" is not supported", t ? t : "?");
        goto out;
    }
    if ((rc = set_kid(&k, kid)) != SB_OK) {
        sb_jwk_errf(err, cap, "out of memory");
        goto out;
    }
    *out = k;
    k = (struct sb_jwk){0};
out:
    sb_jwk_fini(&k);
    ERR_clear_error();
    return rc;
}

/* A growing array of keys. */
struct keyvec {
    struct sb_jwk *v;
    size_t n, cap;
};

static struct sb_jwk *keyvec_push(struct keyvec *kv)
{
    if (kv->n == kv->cap) {
        size_t cap = kv->cap ? kv->cap * 2 : 4;
        struct sb_jwk *v = realloc(kv->v, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        kv->v = v;
        kv->cap = cap;
    }
    struct sb_jwk *k = &kv->v[kv->n];
    memset(k, 0, sizeof(*k));
    return k;
}

/* Takes pkey, checks it and appends it. */
static enum sb_err keyvec_add_pkey(struct keyvec *kv, EVP_PKEY *pkey, const char *kid, char *err,
                                   size_t cap)
{
    struct sb_jwk *k = keyvec_push(kv);
    if (k == NULL) {
        EVP_PKEY_free(pkey);
        sb_jwk_errf(err, cap, "out of memory");
        return SB_ENOMEM;
    }
    enum sb_err rc = take_pkey(k, pkey, kid, err, cap);
    if (rc == SB_OK)
        kv->n++;
    return rc;
}

/* The key of one PEM block appended to kv; a block that holds no key (EC PARAMETERS) adds
 * nothing. */
static enum sb_err pem_block(struct keyvec *kv, const char *name, const unsigned char *data,
                             long dlen, const char *kid, char *err, size_t cap)
{
    const unsigned char *p = data;
    EVP_PKEY *pk = NULL;
    if (strstr(name, "PRIVATE KEY") != NULL) {
        sb_jwk_errf(err, cap,
                    "a private key was given; only public keys and certificates are loaded");
        return SB_EINVAL;
    }
    if (strcmp(name, "PUBLIC KEY") == 0) {
        pk = d2i_PUBKEY(NULL, &p, dlen);
    } else if (strcmp(name, "RSA PUBLIC KEY") == 0) {
        pk = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, dlen);
    } else if (strcmp(name, "CERTIFICATE") == 0) {
        X509 *x = d2i_X509(NULL, &p, dlen);
        pk = x ? X509_get_pubkey(x) : NULL;
        X509_free(x);
    } else if (strcmp(name, "EC PARAMETERS") == 0) {
        return SB_OK; /* `openssl ecparam -genkey` writes it ahead of the key */
    } else {
        sb_jwk_errf(err, cap, "PEM block \"%.40s\" is not a public key or a certificate", name);
        return SB_EINVAL;
    }
    if (pk == NULL || p != data + dlen) {
        EVP_PKEY_free(pk);
        sb_jwk_errf(err, cap, "malformed PEM block \"%s\"", name);
        return SB_EINVAL;
    }
    return keyvec_add_pkey(kv, pk, kid, err, cap);
}

enum sb_err sb_jwk_parse_pem(const char *pem, size_t len, const char *kid, struct sb_jwk **out,
                             size_t *n, char *err, size_t cap)
{
    struct keyvec kv = {0};
    enum sb_err rc = SB_EINVAL;
    BIO *bio = NULL;
    if (len > INT_MAX) {
        sb_jwk_errf(err, cap, "PEM text too large");
        goto out;
    }
    if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
        rc = SB_ENOMEM;
        sb_jwk_errf(err, cap, "out of memory");
        goto out;
    }
    for (;;) {
        char *name = NULL, *hdr = NULL;
        unsigned char *data = NULL;
        long dlen = 0;
        if (!PEM_read_bio(bio, &name, &hdr, &data, &dlen)) {
            unsigned long e = ERR_peek_last_error();
            /* No further "-----BEGIN" line: the text is done; anything else is a broken block. */
            if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
                break;
            sb_jwk_errf(err, cap, "malformed PEM text");
            rc = SB_EINVAL;
            goto out;
        }
        rc = pem_block(&kv, name, data, dlen, kid, err, cap);
        OPENSSL_free(name);
        OPENSSL_free(hdr);
        OPENSSL_clear_free(data, (size_t)dlen); /* it may have been a private key */
        if (rc != SB_OK)
            goto out;
    }
    rc = SB_EINVAL;
    if (kv.n == 0) {
        sb_jwk_errf(err, cap, "no public key or certificate found in the PEM text");
        goto out;
    }
    *out = kv.v;
    *n = kv.n;
    kv = (struct keyvec){0};
    rc = SB_OK;
out:
    BIO_free(bio);
    sb_jwk_free_array(kv.v, kv.n);
    ERR_clear_error();
    return rc;
}

/* ---- JWK Sets ---------------------------------------------------------------------------- */

/* A string member: SB_OK with *s (NULL when absent and !required), SB_EINVAL when of another
 * type or required and absent. */
static enum sb_err member_str(const json_t *o, const char *name, bool required, const char **s)
{
    const json_t *v = json_object_get(o, name);
    *s = NULL;
    if (v == NULL)
        return required ? SB_EINVAL : SB_OK;
    if (!json_is_string(v))
        return SB_EINVAL;
    *s = json_string_value(v);
    return SB_OK;
}

/* A required base64url member decoded into a new buffer of *n bytes (at least 1). */
static enum sb_err member_bytes(const json_t *o, const char *name, unsigned char **out, size_t *n)
{
    const json_t *v = json_object_get(o, name);
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > MEMBER_MAX)
        return SB_EINVAL;
    size_t len = json_string_length(v);
    unsigned char *b = malloc(SB_B64URL_DECODED_MAX(len));
    if (b == NULL)
        return SB_ENOMEM;
    enum sb_err rc = sb_b64url_decode(json_string_value(v), len, b, SB_B64URL_DECODED_MAX(len), n);
    if (rc != SB_OK || *n == 0) {
        free(b);
        return rc == SB_ENOMEM ? rc : SB_EINVAL;
    }
    *out = b;
    return SB_OK;
}

/* A public key of `type` from parameters. NULL when OpenSSL refuses them. */
static EVP_PKEY *fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pk = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pk;
}

static EVP_PKEY *rsa_from_jwk(const json_t *o)
{
    unsigned char *nb = NULL, *eb = NULL;
    size_t nl = 0, el = 0;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    EVP_PKEY *pk = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    if (member_bytes(o, "n", &nb, &nl) != SB_OK || member_bytes(o, "e", &eb, &el) != SB_OK)
        goto out;
    bn_n = BN_bin2bn(nb, (int)nl, NULL);
    bn_e = BN_bin2bn(eb, (int)el, NULL);
    if (bn_n == NULL || bn_e == NULL || (bld = OSSL_PARAM_BLD_new()) == NULL ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e))
        goto out;
    pk = fromdata("RSA", bld);
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    free(nb);
    free(eb);
    return pk;
}

/* An EC public key on `group` from x and y, each exactly `half` bytes (RFC 7518 6.2.1.2). */
static EVP_PKEY *ec_from_jwk(const json_t *o, const char *group, size_t half)
{
    unsigned char *x = NULL, *y = NULL, pt[1 + 2 * 48];
    size_t xl = 0, yl = 0;
    EVP_PKEY *pk = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    if (member_bytes(o, "x", &x, &xl) != SB_OK || member_bytes(o, "y", &y, &yl) != SB_OK ||
        xl != half || yl != half)
        goto out;
    pt[0] = 0x04; /* uncompressed point */
    memcpy(pt + 1, x, half);
    memcpy(pt + 1 + half, y, half);
    if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * half))
        goto out;
    pk = fromdata("EC", bld); /* refuses a point off the curve */
out:
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return pk;
}

static EVP_PKEY *ed25519_from_jwk(const json_t *o)
{
    unsigned char *x = NULL;
    size_t xl = 0;
    EVP_PKEY *pk = NULL;
    if (member_bytes(o, "x", &x, &xl) == SB_OK && xl == 32)
        pk = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x, xl);
    free(x);
    return pk;
}

/* One JWK (index i) appended to kv, or counted in *skipped. */
static enum sb_err jwk_one(struct keyvec *kv, const json_t *o, size_t i, size_t *skipped, char *err,
                           size_t cap)
{
    const char *kty, *use, *kid, *alg, *crv = NULL;
    enum sb_jwk_alg a = SB_JWK_ALG_ANY;
    EVP_PKEY *pk = NULL;
    enum sb_err rc;
    if (!json_is_object(o) || member_str(o, "kty", true, &kty) != SB_OK ||
        member_str(o, "use", false, &use) != SB_OK || member_str(o, "kid", false, &kid) != SB_OK ||
        member_str(o, "alg", false, &alg) != SB_OK || member_str(o, "crv", false, &crv) != SB_OK) {
        sb_jwk_errf(err, cap, "JWK Set key %zu: not an object with string kty, use, kid, alg, crv",
                    i);
        return SB_EINVAL;
    }
    if (alg != NULL)
        a = sb_jwk_alg_parse(alg, strlen(alg));
    /* Encryption keys, algorithms we do not verify, and unsupported types or curves are another
     * party's business: passed over, not an error. */
    bool is_rsa = strcmp(kty, "RSA") == 0, is_ec = strcmp(kty, "EC") == 0;
    bool is_okp = strcmp(kty, "OKP") == 0, is_oct = strcmp(kty, "oct") == 0;
    bool p256 = is_ec && crv && strcmp(crv, "P-256") == 0;
    bool p384 = is_ec && crv && strcmp(crv, "P-384") == 0;
    bool ed = is_okp && crv && strcmp(crv, "Ed25519") == 0;
    if ((use != NULL && strcmp(use, "sig") != 0) || (alg != NULL && a == SB_JWK_ALG_ANY) ||
        !(is_rsa || p256 || p384 || ed || is_oct)) {
        (*skipped)++;
        return SB_OK;
    }
    struct sb_jwk *k = keyvec_push(kv);
    char e2[128];
    if (k == NULL) {
        sb_jwk_errf(err, cap, "out of memory");
        return SB_ENOMEM;
    }
    if (is_oct) {
        unsigned char *secret = NULL;
        size_t sl = 0;
        if ((rc = member_bytes(o, "k", &secret, &sl)) == SB_OK) {
            rc = sb_jwk_init_hmac(k, secret, sl, kid, e2, sizeof(e2));
            OPENSSL_clear_free(secret, sl);
        } else {
            snprintf(e2, sizeof(e2), "malformed oct key");
        }
    } else {
        if (is_rsa)
            pk = rsa_from_jwk(o);
        else if (ed)
            pk = ed25519_from_jwk(o);
        else
            pk = ec_from_jwk(o, p256 ? "P-256" : "P-384", p256 ? 32 : 48);
        ERR_clear_error();
        if (pk != NULL) {
            rc = take_pkey(k, pk, kid, e2, sizeof(e2));
        } else {
            rc = SB_EINVAL;
            snprintf(e2, sizeof(e2), "malformed %s key", kty);
        }
    }
    if (rc != SB_OK) {
        sb_jwk_errf(err, cap, "JWK Set key %zu: %s", i, rc == SB_ENOMEM ? "out of memory" : e2);
        return rc;
    }
    if (a != SB_JWK_ALG_ANY && algs[a].family != k->family) {
        sb_jwk_errf(err, cap, "JWK Set key %zu: alg %s does not fit a key of type %s", i, alg, kty);
        sb_jwk_fini(k);
        return SB_EINVAL;
    }
    k->alg = a;
    kv->n++;
    return SB_OK;
}

enum sb_err sb_jwk_parse_jwks(const char *json, size_t len, struct sb_jwk **out, size_t *n,
                              size_t *skipped, char *err, size_t cap)
{
    struct keyvec kv = {0};
    size_t skip = 0;
    enum sb_err rc = SB_EINVAL;
    json_error_t je;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    const json_t *keys = json_is_object(doc) ? json_object_get(doc, "keys") : NULL;
    if (!json_is_array(keys)) {
        sb_jwk_errf(err, cap, "not a JWK Set (a JSON object with a \"keys\" list)");
        goto out;
    }
    for (size_t i = 0; i < json_array_size(keys); i++)
        if ((rc = jwk_one(&kv, json_array_get(keys, i), i, &skip, err, cap)) != SB_OK)
            goto out;
    *out = kv.v;
    *n = kv.n;
    if (skipped != NULL)
        *skipped = skip;
    kv = (struct keyvec){0};
    rc = SB_OK;
out:
    json_decref(doc);
    sb_jwk_free_array(kv.v, kv.n);
    return rc;
}
