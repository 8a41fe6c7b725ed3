/* JSON Web Tokens: the key set, verification of one compact JWS token (header, signature, then
 * claims, in that order), and HMAC signing for development tokens. Nothing here logs. */
#include "sb_jwt.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "sb_b64url.h"
#include "sb_jwk.h"
#include "sb_strv.h"

/* NumericDates beyond ±1e13 s (300,000 years) are refused as malformed, and the leeway is capped,
 * so the millisecond arithmetic below cannot overflow. */
#define DATE_MAX_S 10000000000000LL
#define LEEWAY_MAX (DATE_MAX_S * 1000)
/* Largest key file read (a PEM bundle of many certificates fits). */
#define FILE_MAX (1024 * 1024)
/* Largest HMAC secret file read. */
#define SECRET_MAX 4096

struct sb_jwt_keys {
    atomic_size_t refs;
    struct sb_jwk *v;
    size_t n;
};

/* ---- the key set ------------------------------------------------------------------------- */

struct sb_jwt_keys *sb_jwt_keys_create(void)
{
    struct sb_jwt_keys *k = calloc(1, sizeof(*k));
    if (k != NULL)
        atomic_init(&k->refs, 1);
    return k;
}

struct sb_jwt_keys *sb_jwt_keys_ref(struct sb_jwt_keys *k)
{
    atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed);
    return k;
}

void sb_jwt_keys_unref(struct sb_jwt_keys *k)
{
    if (k == NULL || atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1)
        return;
    sb_jwk_free_array(k->v, k->n);
    free(k);
}

size_t sb_jwt_keys_count(const struct sb_jwt_keys *k)
{
    return k->n;
}

/* Appends the n keys of v (taken: freed on failure). */
static enum sb_err append(struct sb_jwt_keys *k, struct sb_jwk *v, size_t n, char *err, size_t cap)
{
    if (n == 0) { /* a JWK Set of skipped keys only */
        free(v);
        return SB_OK;
    }
    if (n > SB_JWT_MAX_KEYS - k->n) {
        sb_jwk_errf(err, cap, "too many keys (at most %d in a set)", SB_JWT_MAX_KEYS);
        sb_jwk_free_array(v, n);
        return SB_EFULL;
    }
    struct sb_jwk *nv = realloc(k->v, (k->n + n) * sizeof(*nv));
    if (nv == NULL) {
        sb_jwk_errf(err, cap, "out of memory");
        sb_jwk_free_array(v, n);
        return SB_ENOMEM;
    }
    memcpy(nv + k->n, v, n * sizeof(*v));
    free(v); /* the keys' contents moved to the set */
    k->v = nv;
    k->n += n;
    return SB_OK;
}

enum sb_err sb_jwt_keys_add_hmac(struct sb_jwt_keys *k, const unsigned char *secret, size_t len,
                                 const char *kid, char *err, size_t cap)
{
    struct sb_jwk *v = calloc(1, sizeof(*v));
    if (v == NULL) {
        sb_jwk_errf(err, cap, "out of memory");
        return SB_ENOMEM;
    }
    enum sb_err rc = sb_jwk_init_hmac(v, secret, len, kid, err, cap);
    if (rc != SB_OK) {
        free(v);
        return rc;
    }
    return append(k, v, 1, err, cap);
}

/* The whole file in a new buffer (NUL-terminated, not counted in *n). */
static enum sb_err read_file(const char *path, size_t max, char **out, size_t *n, char *err,
                             size_t cap)
{
    enum sb_err rc = SB_EIO;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        sb_jwk_errf(err, cap, "cannot open %s: %s", path, strerror(errno));
        return SB_EIO;
    }
    if ((buf = malloc(max + 1)) == NULL) {
        rc = SB_ENOMEM;
        sb_jwk_errf(err, cap, "out of memory");
        goto out;
    }
    len = fread(buf, 1, max + 1, f);
    if (ferror(f)) {
        sb_jwk_errf(err, cap, "cannot read %s", path);
        goto out;
    }
    if (len > max) {
        rc = SB_EINVAL;
        sb_jwk_errf(err, cap, "%s is larger than %zu bytes", path, max);
        goto out;
    }
    buf[len] = '\0';
    *out = buf;
    *n = len;
    buf = NULL;
    rc = SB_OK;
out:
    if (buf != NULL)
        OPENSSL_clear_free(buf, max + 1);
    fclose(f);
    return rc;
}

size_t sb_jwt_secret_len(const char *text, size_t len)
{
    if (len > 0 && text[len - 1] == '\n') {
        len--;
        if (len > 0 && text[len - 1] == '\r')
            len--;
    }
    return len;
}

enum sb_err sb_jwt_keys_add_hmac_file(struct sb_jwt_keys *k, const char *path, char *err,
                                      size_t cap)
{
    char *buf;
    size_t n;
    enum sb_err rc = read_file(path, SECRET_MAX, &buf, &n, err, cap);
    if (rc != SB_OK)
        return rc;
    rc = sb_jwt_keys_add_hmac(k, (const unsigned char *)buf, sb_jwt_secret_len(buf, n), NULL, err,
                              cap);
    OPENSSL_clear_free(buf, SECRET_MAX + 1);
    return rc;
}

enum sb_err sb_jwt_keys_add_pem(struct sb_jwt_keys *k, const char *pem, size_t len, const char *kid,
                                char *err, size_t cap)
{
    struct sb_jwk *v;
    size_t n;
    enum sb_err rc = sb_jwk_parse_pem(pem, len, kid, &v, &n, err, cap);
    return rc == SB_OK ? append(k, v, n, err, cap) : rc;
}

enum sb_err sb_jwt_keys_add_pem_file(struct sb_jwt_keys *k, const char *path, char *err, size_t cap)
{
    char *buf;
    size_t n;
    enum sb_err rc = read_file(path, FILE_MAX, &buf, &n, err, cap);
    if (rc != SB_OK)
        return rc;
    rc = sb_jwt_keys_add_pem(k, buf, n, NULL, err, cap);
    /* The file may have held a private key (refused, but its text is in this buffer). */
    OPENSSL_clear_free(buf, FILE_MAX + 1);
    return rc;
}

enum sb_err sb_jwt_keys_add_jwks(struct sb_jwt_keys *k, const char *json, size_t len,
                                 size_t *skipped, char *err, size_t cap)
{
    struct sb_jwk *v;
    size_t n;
    enum sb_err rc = sb_jwk_parse_jwks(json, len, &v, &n, skipped, err, cap);
    return rc == SB_OK ? append(k, v, n, err, cap) : rc;
}

/* ---- results ----------------------------------------------------------------------------- */

const char *sb_jwt_result_name(enum sb_jwt_result r)
{
    static const char *const names[] = {
        [SB_JWT_OK] = "ok",
        [SB_JWT_MALFORMED] = "malformed token",
        [SB_JWT_TOO_LARGE] = "token too large",
        [SB_JWT_ALG_NONE] = "algorithm none is not accepted",
        [SB_JWT_ALG_UNSUPPORTED] = "unsupported algorithm or critical header",
        [SB_JWT_UNKNOWN_KID] = "unknown key id",
        [SB_JWT_NO_KEY] = "no key for the token's algorithm",
        [SB_JWT_BAD_SIGNATURE] = "bad signature",
        [SB_JWT_EXPIRED] = "token expired",
        [SB_JWT_NOT_YET_VALID] = "token not yet valid",
        [SB_JWT_ISSUED_IN_FUTURE] = "token issued in the future",
        [SB_JWT_NO_EXP] = "missing exp",
        [SB_JWT_BAD_SUB] = "invalid sub",
        [SB_JWT_ISSUER_MISMATCH] = "issuer mismatch",
        [SB_JWT_AUDIENCE_MISMATCH] = "audience mismatch",
        [SB_JWT_BAD_INFO] = "invalid info claim",
        [SB_JWT_BAD_GRANTS] = "invalid channels or rooms claim",
        [SB_JWT_NOMEM] = "out of memory",
    };
    if ((unsigned)r >= sizeof(names) / sizeof(names[0]) || names[r] == NULL)
        return "invalid token";
    return names[r];
}

/* ---- header and signature ---------------------------------------------------------------- */

/* The header's algorithm and kid (*kid points into *doc, which the caller releases). */
static enum sb_jwt_result parse_header(const unsigned char *h, size_t n, json_t **doc,
                                       enum sb_jwk_alg *alg, const char **kid)
{
    json_error_t je;
    json_t *o = json_loadb((const char *)h, n, JSON_REJECT_DUPLICATES, &je);
    *doc = o;
    if (!json_is_object(o))
        return SB_JWT_MALFORMED;
    const json_t *a = json_object_get(o, "alg"), *t = json_object_get(o, "typ");
    const json_t *k = json_object_get(o, "kid");
    if (!json_is_string(a) || (t != NULL && !json_is_string(t)) ||
        (k != NULL && !json_is_string(k)))
        return SB_JWT_MALFORMED;
    if (strcasecmp(json_string_value(a), "none") == 0)
        return SB_JWT_ALG_NONE;
    /* No extension is understood, so any critical one refuses the token (RFC 7515 4.1.11). */
    if (json_object_get(o, "crit") != NULL)
        return SB_JWT_ALG_UNSUPPORTED;
    *alg = sb_jwk_alg_parse(json_string_value(a), json_string_length(a));
    if (*alg == SB_JWK_ALG_ANY)
        return SB_JWT_ALG_UNSUPPORTED;
    *kid = k ? json_string_value(k) : NULL;
    return SB_JWT_OK;
}

static bool hmac_ok(const EVP_MAC_CTX *keyed, const char *in, size_t n, const unsigned char *sig,
                    size_t sl)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t ml = 0;
    /* The keyed template is only read (duplicated), so verifiers share it across threads. */
    EVP_MAC_CTX *c = EVP_MAC_CTX_dup(keyed);
    bool ok = c != NULL && EVP_MAC_update(c, (const unsigned char *)in, n) &&
              EVP_MAC_final(c, mac, &ml, sizeof(mac)) && ml == sl &&
              CRYPTO_memcmp(mac, sig, ml) == 0;
    EVP_MAC_CTX_free(c);
    return ok;
}

static bool pkey_ok(const struct sb_jwk *k, const struct sb_jwk_alg_info *ai, const char *in,
                    size_t n, const unsigned char *sig, size_t sl)
{
    EVP_PKEY_CTX *pctx = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok =
        md != NULL && EVP_DigestVerifyInit_ex(md, &pctx, ai->md, NULL, NULL, k->pkey, NULL) == 1;
    if (ok && k->family == SB_JWK_RSA && ai->pss)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, ai->md, NULL) > 0;
    else if (ok && k->family == SB_JWK_RSA)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0;
    ok = ok && EVP_DigestVerify(md, sig, sl, (const unsigned char *)in, n) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

/* A JWS ECDSA signature is r||s, each `half` bytes; OpenSSL verifies DER. A new buffer, or NULL
 * when the length is wrong (or out of memory). */
static unsigned char *ec_der(const unsigned char *sig, size_t sl, size_t half, size_t *dl)
{
    unsigned char *der = NULL;
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    if (sl != 2 * half || (es = ECDSA_SIG_new()) == NULL ||
        (r = BN_bin2bn(sig, (int)half, NULL)) == NULL ||
        (s = BN_bin2bn(sig + half, (int)half, NULL)) == NULL || !ECDSA_SIG_set0(es, r, s))
        goto out;
    r = s = NULL; /* owned by es */
    int n = i2d_ECDSA_SIG(es, &der);
    if (n <= 0) {
        der = NULL;
        goto out;
    }
    *dl = (size_t)n;
out:
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return der;
}

static bool usable(const struct sb_jwk *k, enum sb_jwk_alg alg, const struct sb_jwk_alg_info *ai)
{
    return k->family == ai->family && (k->alg == SB_JWK_ALG_ANY || k->alg == alg);
}

/* Picks the candidate keys (the kid rules of sb_jwt.h) and tries each on the signature of
 * in[0..n). */
static enum sb_jwt_result check_signature(const struct sb_jwt_keys *keys, enum sb_jwk_alg alg,
                                          const char *kid, const char *in, size_t n,
                                          const unsigned char *sig, size_t sl)
{
    const struct sb_jwk_alg_info *ai = sb_jwk_alg_info(alg);
    bool family = false, named = false, named_other = false, tried = false, ok = false;
    for (size_t i = 0; i < keys->n; i++) {
        const struct sb_jwk *k = &keys->v[i];
        named_other = named_other || (kid != NULL && k->kid != NULL && strcmp(k->kid, kid) == 0);
        if (usable(k, alg, ai)) {
            family = true;
            named = named || (kid != NULL && k->kid != NULL && strcmp(k->kid, kid) == 0);
        }
    }
    if (!family)
        return SB_JWT_NO_KEY;
    unsigned char *der = NULL;
    size_t dl = 0;
    if (ai->ec_half != 0 && (der = ec_der(sig, sl, ai->ec_half, &dl)) == NULL) {
        ERR_clear_error();
        return SB_JWT_BAD_SIGNATURE; /* r||s of the wrong length */
    }
    for (size_t i = 0; i < keys->n && !ok; i++) {
        const struct sb_jwk *k = &keys->v[i];
        if (!usable(k, alg, ai))
            continue;
        /* A kid that names keys selects them; one that names none falls back on the keys
         * without an id. */
        if (kid != NULL && (named ? (k->kid == NULL || strcmp(k->kid, kid) != 0) : k->kid != NULL))
            continue;
        tried = true;
        if (k->family == SB_JWK_HMAC)
            ok = hmac_ok(k->mac[ai->hmac_index], in, n, sig, sl);
        else
            ok = pkey_ok(k, ai, in, n, der ? der : sig, der ? dl : sl);
    }
    OPENSSL_free(der);
    ERR_clear_error(); /* failed verifications leave entries in this thread's queue */
    if (ok)
        return SB_JWT_OK;
    if (tried)
        return SB_JWT_BAD_SIGNATURE;
    /* the kid names a key, but of another algorithm family: say so rather than "unknown" */
    return named_other ? SB_JWT_NO_KEY : SB_JWT_UNKNOWN_KID;
}

/* ---- claims ------------------------------------------------------------------------------ */

/* A NumericDate claim in ms (0 and *present false when absent). */
static enum sb_jwt_result numeric_date(const json_t *c, const char *name, int64_t *ms,
                                       bool *present)
{
    const json_t *v = json_object_get(c, name);
    *ms = 0;
    *present = v != NULL;
    if (v == NULL)
        return SB_JWT_OK;
    if (json_is_integer(v)) {
        json_int_t s = json_integer_value(v);
        if (s < -DATE_MAX_S || s > DATE_MAX_S)
            return SB_JWT_MALFORMED;
        *ms = (int64_t)s * 1000;
    } else if (json_is_real(v)) {
        double s = json_real_value(v);
        if (!(s >= (double)-DATE_MAX_S && s <= (double)DATE_MAX_S))
            return SB_JWT_MALFORMED;
        *ms = (int64_t)(s * 1000.0);
    } else {
        return SB_JWT_MALFORMED;
    }
    return SB_JWT_OK;
}

static enum sb_jwt_result check_times(const json_t *c, const struct sb_jwt_opts *opts, int64_t now,
                                      struct sb_jwt_claims *out)
{
    bool has_exp, has_nbf, has_iat;
    int64_t lw = opts->leeway_ms < 0            ? 0
                 : opts->leeway_ms > LEEWAY_MAX ? LEEWAY_MAX
                                                : opts->leeway_ms;
    if (numeric_date(c, "exp", &out->exp_ms, &has_exp) != SB_JWT_OK ||
        numeric_date(c, "nbf", &out->nbf_ms, &has_nbf) != SB_JWT_OK ||
        numeric_date(c, "iat", &out->iat_ms, &has_iat) != SB_JWT_OK)
        return SB_JWT_MALFORMED;
    if (!has_exp && !opts->allow_no_exp)
        return SB_JWT_NO_EXP;
    /* Written as differences so that an extreme now_ms cannot overflow. */
    if (has_exp && now - lw > out->exp_ms)
        return SB_JWT_EXPIRED;
    if (has_nbf && out->nbf_ms - lw > now)
        return SB_JWT_NOT_YET_VALID;
    if (has_iat && out->iat_ms - lw > now)
        return SB_JWT_ISSUED_IN_FUTURE;
    return SB_JWT_OK;
}

static enum sb_jwt_result check_aud(const json_t *aud, const char *want)
{
    bool listed = false;
    if (json_is_array(aud)) {
        size_t i;
        const json_t *e;
        json_array_foreach(aud, i, e)
        {
            if (!json_is_string(e))
                return SB_JWT_MALFORMED;
            listed = listed || (want && strcmp(json_string_value(e), want) == 0);
        }
    } else if (json_is_string(aud)) {
        listed = want && strcmp(json_string_value(aud), want) == 0;
    } else if (aud != NULL) {
        return SB_JWT_MALFORMED;
    }
    return want == NULL || listed ? SB_JWT_OK : SB_JWT_AUDIENCE_MISMATCH;
}

/* A grant: 1..SB_JWT_MAX_GRANT_LEN printable ASCII bytes without space, quote or backslash. */
static bool grant_ok(const json_t *v)
{
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n > SB_JWT_MAX_GRANT_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\\')
            return false;
    return true;
}

static enum sb_jwt_result grants(const json_t *c, const char *name, char ***out, size_t *n)
{
    const json_t *v = json_object_get(c, name), *e;
    size_t i;
    if (v == NULL)
        return SB_JWT_OK;
    if (!json_is_array(v) || json_array_size(v) > SB_JWT_MAX_GRANTS)
        return SB_JWT_BAD_GRANTS;
    json_array_foreach(v, i, e) if (!grant_ok(e)) return SB_JWT_BAD_GRANTS;
    if (json_array_size(v) == 0)
        return SB_JWT_OK;
    if ((*out = calloc(json_array_size(v), sizeof(char *))) == NULL)
        return SB_JWT_NOMEM;
    json_array_foreach(v, i, e)
    {
        if (((*out)[i] = strdup(json_string_value(e))) == NULL)
            return SB_JWT_NOMEM; /* the caller's fini frees the copies made */
        (*n)++;
    }
    return SB_JWT_OK;
}

static enum sb_jwt_result check_claims(const json_t *c, const struct sb_jwt_opts *opts, int64_t now,
                                       struct sb_jwt_claims *out)
{
    enum sb_jwt_result r;
    const json_t *sub = json_object_get(c, "sub"), *iss = json_object_get(c, "iss");
    const json_t *info = json_object_get(c, "info"), *ch = json_object_get(c, "channel");
    const char *want_iss = opts->issuer && opts->issuer[0] ? opts->issuer : NULL;
    const char *want_aud = opts->audience && opts->audience[0] ? opts->audience : NULL;
    if (!json_is_string(sub) || !sb_ident_is_valid(json_string_value(sub)))
        return SB_JWT_BAD_SUB;
    memcpy(out->sub, json_string_value(sub), json_string_length(sub) + 1);
    if ((r = check_times(c, opts, now, out)) != SB_JWT_OK)
        return r;
    if (iss != NULL && !json_is_string(iss))
        return SB_JWT_MALFORMED;
    if (want_iss && (iss == NULL || strcmp(json_string_value(iss), want_iss) != 0))
        return SB_JWT_ISSUER_MISMATCH;
    if ((r = check_aud(json_object_get(c, "aud"), want_aud)) != SB_JWT_OK)
        return r;
    if (info != NULL) {
        if (!json_is_object(info))
            return SB_JWT_BAD_INFO;
        if ((out->info = json_dumps(info, JSON_COMPACT)) == NULL)
            return SB_JWT_NOMEM;
        if (strlen(out->info) > SB_JWT_MAX_INFO)
            return SB_JWT_BAD_INFO;
    }
    if ((r = grants(c, "channels", &out->channels, &out->n_channels)) != SB_JWT_OK ||
        (r = grants(c, "rooms", &out->rooms, &out->n_rooms)) != SB_JWT_OK)
        return r;
    if (ch != NULL) {
        if (!grant_ok(ch))
            return SB_JWT_BAD_GRANTS;
        if ((out->channel = strdup(json_string_value(ch))) == NULL)
            return SB_JWT_NOMEM;
    }
    return SB_JWT_OK;
}

/* ---- verification ------------------------------------------------------------------------ */

enum sb_jwt_result sb_jwt_verify(const struct sb_jwt_keys *keys, const char *token, size_t len,
                                 const struct sb_jwt_opts *opts, int64_t now_ms,
                                 struct sb_jwt_claims *out)
{
    /* The three decoded parts together are at most 3/4 of the token. */
    unsigned char buf[SB_JWT_MAX_TOKEN / 4 * 3 + 8];
    size_t hl, sl, pl;
    json_t *hdr = NULL, *claims = NULL;
    enum sb_jwk_alg alg = SB_JWK_ALG_ANY;
    const char *kid = NULL;
    enum sb_jwt_result r = SB_JWT_MALFORMED;
    memset(out, 0, sizeof(*out));
    if (len > SB_JWT_MAX_TOKEN)
        return SB_JWT_TOO_LARGE;
    const char *end = token + len, *d1 = memchr(token, '.', len), *d2 = NULL;
    if (d1 != NULL)
        d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1));
    if (d2 == NULL || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) != NULL)
        return SB_JWT_MALFORMED;
    unsigned char *sig = NULL, *payload = NULL;
    if (sb_b64url_decode(token, (size_t)(d1 - token), buf, sizeof(buf), &hl) != SB_OK)
        goto out;
    sig = buf + hl;
    if (sb_b64url_decode(d2 + 1, (size_t)(end - d2 - 1), sig, sizeof(buf) - hl, &sl) != SB_OK)
        goto out;
    /* All three parts must be base64url before anything else (a broken payload is malformed,
     * not a bad signature); its JSON is read only once the signature is verified. */
    payload = sig + sl;
    if (sb_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), payload, sizeof(buf) - hl - sl, &pl) !=
        SB_OK)
        goto out;
    if ((r = parse_header(buf, hl, &hdr, &alg, &kid)) != SB_JWT_OK)
        goto out;
    if ((r = check_signature(keys, alg, kid, token, (size_t)(d2 - token), sig, sl)) != SB_JWT_OK)
        goto out;
    r = SB_JWT_MALFORMED;
    json_error_t je;
    claims = json_loadb((const char *)payload, pl, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(claims))
        goto out;
    if ((r = check_claims(claims, opts, now_ms, out)) != SB_JWT_OK)
        goto out;
    memcpy(out->alg, sb_jwk_alg_info(alg)->name, strlen(sb_jwk_alg_info(alg)->name) + 1);
out:
    json_decref(hdr);
    json_decref(claims);
    if (r != SB_JWT_OK)
        sb_jwt_claims_fini(out);
    return r;
}

void sb_jwt_claims_fini(struct sb_jwt_claims *c)
{
    if (c == NULL)
        return;
    free(c->info);
    sb_strv_free(c->channels, c->n_channels);
    sb_strv_free(c->rooms, c->n_rooms);
    free(c->channel);
    memset(c, 0, sizeof(*c));
}

enum sb_err sb_jwt_claims_copy(const struct sb_jwt_claims *src, struct sb_jwt_claims *dst)
{
    *dst = *src;
    dst->info = dst->channel = NULL;
    dst->channels = dst->rooms = NULL;
    if ((src->info != NULL && (dst->info = strdup(src->info)) == NULL) ||
        (src->channel != NULL && (dst->channel = strdup(src->channel)) == NULL) ||
        sb_strv_dup(src->channels, src->n_channels, &dst->channels) != SB_OK ||
        sb_strv_dup(src->rooms, src->n_rooms, &dst->rooms) != SB_OK) {
        if (dst->channels == NULL)
            dst->n_channels = 0;
        if (dst->rooms == NULL)
            dst->n_rooms = 0;
        sb_jwt_claims_fini(dst);
        return SB_ENOMEM;
    }
    return SB_OK;
}

/* ---- signing ----------------------------------------------------------------------------- */

enum sb_err sb_jwt_sign_hmac(const char *alg, const unsigned char *secret, size_t len,
                             const char *kid, const char *payload_json, char **out)
{
    enum sb_jwk_alg a = alg ? sb_jwk_alg_parse(alg, strlen(alg)) : SB_JWK_ALG_ANY;
    enum sb_err rc = SB_EINVAL;
    json_t *payload = NULL, *hdr = NULL;
    char *h = NULL, *p = NULL, *tok = NULL;
    if (a == SB_JWK_ALG_ANY || sb_jwk_alg_info(a)->family != SB_JWK_HMAC ||
        len < SB_JWT_MIN_HMAC_SECRET)
        return SB_EINVAL;
    const struct sb_jwk_alg_info *ai = sb_jwk_alg_info(a);
    payload = json_loads(payload_json, JSON_REJECT_DUPLICATES, NULL);
    hdr = json_pack("{s:s,s:s}", "alg", ai->name, "typ", "JWT");
    if (!json_is_object(payload) || hdr == NULL)
        goto out;
    if (kid != NULL && json_object_set_new(hdr, "kid", json_string(kid)) != 0)
        goto out; /* not UTF-8 */
    rc = SB_ENOMEM;
    if ((h = json_dumps(hdr, JSON_COMPACT)) == NULL ||
        (p = json_dumps(payload, JSON_COMPACT)) == NULL)
        goto out;
    size_t hl = strlen(h), pl = strlen(p);
    size_t cap = SB_B64URL_ENCODED_LEN(hl) + SB_B64URL_ENCODED_LEN(pl) +
                 SB_B64URL_ENCODED_LEN(EVP_MAX_MD_SIZE) + 3;
    if ((tok = malloc(cap)) == NULL)
        goto out;
    size_t n = sb_b64url_encode((const unsigned char *)h, hl, tok);
    tok[n++] = '.';
    n += sb_b64url_encode((const unsigned char *)p, pl, tok + n);
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t ml = 0;
    if (EVP_Q_mac(NULL, "HMAC", NULL, ai->md, NULL, secret, len, (const unsigned char *)tok, n, mac,
                  sizeof(mac), &ml) == NULL)
        goto out;
    tok[n++] = '.';
    n += sb_b64url_encode(mac, ml, tok + n);
    tok[n] = '\0';
    *out = tok;
    tok = NULL;
    rc = SB_OK;
out:
    ERR_clear_error();
    free(tok);
    free(h);
    free(p);
    json_decref(hdr);
    json_decref(payload);
    return rc;
}
