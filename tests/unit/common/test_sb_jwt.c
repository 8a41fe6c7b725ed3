/* sb_jwt: token verification against keys made at run time (RSA, EC, Ed25519, HMAC), with tokens
 * signed here through OpenSSL: every algorithm, the key and kid rules, the claim rules at their
 * boundaries, malformed input, and the PEM and JWK Set loaders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "sb_b64url.h"
#include "sb_jwt.h"

#define NOW_S  1700000000LL
#define NOW_MS (NOW_S * 1000)

static const unsigned char secret_a[] = "0123456789abcdef0123456789abcdef-a";
static const unsigned char secret_b[] = "0123456789abcdef0123456789abcdef-b";
#define SECRET_LEN (sizeof(secret_a) - 1)

/* Keys made once for the whole run (RSA generation is slow under the sanitizers). */
static EVP_PKEY *rsa, *rsa2, *p256, *p384, *ed;

static const struct sb_jwt_opts no_opts = {0};

/* ---- helpers: encoding and signing ------------------------------------------------------- */

static char *b64(const void *data, size_t n)
{
    char *s = malloc(SB_B64URL_ENCODED_LEN(n) + 1);
    assert_non_null(s);
    s[sb_b64url_encode(data, n, s)] = '\0';
    return s;
}

static char *cat3(const char *a, const char *sep, const char *b)
{
    size_t n = strlen(a) + strlen(sep) + strlen(b) + 1;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "%s%s%s", a, sep, b);
    return s;
}

/* The signature of in[0..n) for `alg` by key pk (or the HMAC secret), in JWS form. */
static char *sign_input(const char *alg, const char *in, EVP_PKEY *pk, const unsigned char *sec,
                        size_t slen)
{
    unsigned char sig[1024];
    size_t sl = sizeof(sig);
    char md[8];
    snprintf(md, sizeof(md), "SHA%s", alg + 2);
    if (alg[0] == 'H') {
        assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, md, NULL, sec, slen,
                                  (const unsigned char *)in, strlen(in), sig, sizeof(sig), &sl));
        return b64(sig, sl);
    }
    bool eddsa = strcmp(alg, "EdDSA") == 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    assert_int_equal(EVP_DigestSignInit_ex(c, &pctx, eddsa ? NULL : md, NULL, NULL, pk, NULL), 1);
    if (alg[0] == 'P') {
        assert_true(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0);
        assert_true(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0);
    }
    assert_int_equal(EVP_DigestSign(c, sig, &sl, (const unsigned char *)in, strlen(in)), 1);
    EVP_MD_CTX_free(c);
    if (alg[0] == 'E' && alg[1] == 'S') {
        /* DER to the JWS's r||s. */
        size_t half = strcmp(alg, "ES256") == 0 ? 32 : 48;
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sl);
        assert_non_null(es);
        unsigned char raw[96];
        BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, (int)half);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + half, (int)half);
        ECDSA_SIG_free(es);
        return b64(raw, 2 * half);
    }
    return b64(sig, sl);
}

/* A token of header and payload JSON texts, signed for `alg`. */
static char *token_raw(const char *header, const char *payload, const char *alg, EVP_PKEY *pk,
                       const unsigned char *sec, size_t slen)
{
    char *h = b64(header, strlen(header)), *p = b64(payload, strlen(payload));
    char *in = cat3(h, ".", p);
    char *s = sign_input(alg, in, pk, sec, slen);
    char *t = cat3(in, ".", s);
    free(h);
    free(p);
    free(in);
    free(s);
    return t;
}

/* A token with the header {"alg":alg,"typ":"JWT"} (and "kid" when not NULL). */
static char *token(const char *alg, const char *kid, const char *payload, EVP_PKEY *pk,
                   const unsigned char *sec)
{
    char header[256];
    if (kid != NULL)
        snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg,
                 kid);
    else
        snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    return token_raw(header, payload, alg, pk, sec, sec ? SECRET_LEN : 0);
}

static const char *const good_payload = "{\"sub\":\"alice\",\"exp\":1700003600}";

/* The PEM text that write() makes of obj, NUL-terminated. */
static char *pem_of(int (*write)(BIO *, void *), void *obj)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(write(b, obj), 1);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *s = malloc((size_t)n + 1);
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    BIO_free(b);
    return s;
}

static int write_pub(BIO *b, void *pk)
{
    return PEM_write_bio_PUBKEY(b, pk);
}

static char *pub_pem(EVP_PKEY *pk)
{
    return pem_of(write_pub, pk);
}

static struct sb_jwt_keys *keys_pem(EVP_PKEY *pk, const char *kid)
{
    struct sb_jwt_keys *k = sb_jwt_keys_create();
    char *pem = pub_pem(pk), err[160];
    assert_int_equal(sb_jwt_keys_add_pem(k, pem, strlen(pem), kid, err, sizeof(err)), SB_OK);
    free(pem);
    return k;
}

static struct sb_jwt_keys *keys_hmac(const unsigned char *sec, const char *kid)
{
    struct sb_jwt_keys *k = sb_jwt_keys_create();
    char err[160];
    assert_int_equal(sb_jwt_keys_add_hmac(k, sec, SECRET_LEN, kid, err, sizeof(err)), SB_OK);
    return k;
}

/* Verifies at NOW_MS with opts and returns the result (the claims are released). */
static enum sb_jwt_result check(const struct sb_jwt_keys *k, const char *tok,
                                const struct sb_jwt_opts *o)
{
    struct sb_jwt_claims c;
    enum sb_jwt_result r = sb_jwt_verify(k, tok, strlen(tok), o, NOW_MS, &c);
    sb_jwt_claims_fini(&c);
    return r;
}

/* An HS256 token of `payload` signed with secret_a, checked against keys of secret_a. */
static enum sb_jwt_result check_payload(const char *payload, const struct sb_jwt_opts *o,
                                        int64_t now, struct sb_jwt_claims *c)
{
    struct sb_jwt_keys *k = keys_hmac(secret_a, NULL);
    char *t = token("HS256", NULL, payload, NULL, secret_a);
    struct sb_jwt_claims mine;
    struct sb_jwt_claims *out = c ? c : &mine;
    enum sb_jwt_result r = sb_jwt_verify(k, t, strlen(t), o, now, out);
    if (c == NULL)
        sb_jwt_claims_fini(&mine);
    free(t);
    sb_jwt_keys_unref(k);
    return r;
}

/* ---- fixtures ------------------------------------------------------------------------------ */

static int setup(void **state)
{
    rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    return rsa && rsa2 && p256 && p384 && ed ? 0 : -1;
}

static int teardown(void **state)
{
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(ed);
    return 0;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_sb_b64url_strict(void **state)
{
    unsigned char out[16];
    size_t n = 0;
    assert_int_equal(sb_b64url_decode("QQ", 2, out, sizeof(out), &n), SB_OK);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 'A');
    assert_int_equal(sb_b64url_decode("QR", 2, out, sizeof(out), &n), SB_EINVAL);
    assert_int_equal(sb_b64url_decode("QUI", 3, out, sizeof(out), &n), SB_OK);
    assert_int_equal(sb_b64url_decode("QUJ", 3, out, sizeof(out), &n), SB_EINVAL);
    assert_int_equal(sb_b64url_decode("QQ==", 4, out, sizeof(out), &n), SB_EINVAL);
    assert_int_equal(sb_b64url_decode("Q", 1, out, sizeof(out), &n), SB_EINVAL);
    assert_int_equal(sb_b64url_decode("a+b/", 4, out, sizeof(out), &n), SB_EINVAL);
    assert_int_equal(sb_b64url_decode("-_-_", 4, out, sizeof(out), &n), SB_OK);
    assert_int_equal(sb_b64url_decode("AAAAAAAA", 8, out, 5, &n), SB_EFULL);
    assert_int_equal(sb_b64url_decode("", 0, out, 0, &n), SB_OK);
    assert_int_equal(n, 0);
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    for (size_t len = 0; len < 8; len++) {
        char *e = b64(all + 250 - len, len);
        unsigned char back[8];
        assert_int_equal(sb_b64url_decode(e, strlen(e), back, sizeof(back), &n), SB_OK);
        assert_int_equal(n, len);
        assert_memory_equal(back, all + 250 - len, len);
        free(e);
    }
}

static void test_sb_jwt_verify_every_alg(void **state)
{
    static const char *const hs[] = {"HS256", "HS384", "HS512"};
    static const char *const rs[] = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"};
    struct sb_jwt_claims c;
    struct sb_jwt_keys *k = keys_hmac(secret_a, NULL);
    for (size_t i = 0; i < 3; i++) {
        char *t = token(hs[i], NULL, good_payload, NULL, secret_a);
        assert_int_equal(sb_jwt_verify(k, t, strlen(t), &no_opts, NOW_MS, &c), SB_JWT_OK);
        assert_string_equal(c.alg, hs[i]);
        assert_string_equal(c.sub, "alice");
        assert_int_equal(c.exp_ms, 1700003600000LL);
        sb_jwt_claims_fini(&c);
        free(t);
    }
    sb_jwt_keys_unref(k);
    k = keys_pem(rsa, NULL);
    for (size_t i = 0; i < 6; i++) {
        char *t = token(rs[i], NULL, good_payload, rsa, NULL);
        assert_int_equal(sb_jwt_verify(k, t, strlen(t), &no_opts, NOW_MS, &c), SB_JWT_OK);
        assert_string_equal(c.alg, rs[i]);
        sb_jwt_claims_fini(&c);
        free(t);
    }
    sb_jwt_keys_unref(k);
    struct {
        const char *alg;
        EVP_PKEY **pk;
    } other[] = {{"ES256", &p256}, {"ES384", &p384}, {"EdDSA", &ed}};
    for (size_t i = 0; i < 3; i++) {
        k = keys_pem(*other[i].pk, NULL);
        char *t = token(other[i].alg, NULL, good_payload, *other[i].pk, NULL);
        assert_int_equal(sb_jwt_verify(k, t, strlen(t), &no_opts, NOW_MS, &c), SB_JWT_OK);
        assert_string_equal(c.alg, other[i].alg);
        sb_jwt_claims_fini(&c);
        free(t);
        sb_jwt_keys_unref(k);
    }
}

static void test_sb_jwt_key_type_pins_alg(void **state)
{
    struct sb_jwt_keys *k = keys_pem(p256, NULL);
    char *t = token("RS256", NULL, good_payload, rsa, NULL);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_NO_KEY);
    free(t);
    sb_jwt_keys_unref(k);
    k = keys_pem(p384, NULL);
    t = token("ES256", NULL, good_payload, p256, NULL);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_NO_KEY);
    free(t);
    /* An EdDSA token against RSA and HMAC keys. */
    sb_jwt_keys_unref(k);
    k = keys_pem(rsa, NULL);
    char err[160];
    assert_int_equal(sb_jwt_keys_add_hmac(k, secret_a, SECRET_LEN, NULL, err, sizeof(err)), SB_OK);
    t = token("EdDSA", NULL, good_payload, ed, NULL);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_NO_KEY);
    free(t);
    sb_jwt_keys_unref(k);
}

static void test_sb_jwt_alg_none_refused(void **state)
{
    struct sb_jwt_keys *k = keys_hmac(secret_a, NULL);
    static const char *const nones[] = {"none", "None", "NONE", "nOnE"};
    for (size_t i = 0; i < 4; i++) {
        char h[64];
        snprintf(h, sizeof(h), "{\"alg\":\"%s\"}", nones[i]);
        char *hb = b64(h, strlen(h)), *pb = b64(good_payload, strlen(good_payload));
        char *a = cat3(hb, ".", pb), *t = cat3(a, ".", "");
        assert_int_equal(check(k, t, &no_opts), SB_JWT_ALG_NONE);
        free(hb);
        free(pb);
        free(a);
        free(t);
    }
    char *t = token_raw("{\"alg\":\"HS1\"}", good_payload, "HS256", NULL, secret_a, SECRET_LEN);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_ALG_UNSUPPORTED);
    free(t);
    t = token_raw("{\"alg\":\"hs256\"}", good_payload, "HS256", NULL, secret_a, SECRET_LEN);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_ALG_UNSUPPORTED);
    free(t);
    t = token_raw("{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", good_payload, "HS256", NULL,
                  secret_a, SECRET_LEN);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_ALG_UNSUPPORTED);
    free(t);
    /* Keys offered by the token are ignored: the set's key decides. */
    t = token_raw(
        "{\"alg\":\"HS256\",\"jku\":\"http://x/\",\"jwk\":{\"kty\":\"oct\"},\"x5u\":\"u\","
        "\"x5c\":[\"AA\"]}",
        good_payload, "HS256", NULL, secret_b, SECRET_LEN);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_BAD_SIGNATURE);
    free(t);
    sb_jwt_keys_unref(k);
}

/* HS256 "signed" with the RSA public key's PEM text as the HMAC secret. */
static void test_sb_jwt_alg_confusion_refused(void **state)
{
    char *pem = pub_pem(rsa);
    char h[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char *t = token_raw(h, good_payload, "HS256", NULL, (const unsigned char *)pem, strlen(pem));
    struct sb_jwt_keys *k = keys_pem(rsa, NULL);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_NO_KEY);
    char err[160];
    assert_int_equal(sb_jwt_keys_add_hmac(k, secret_a, SECRET_LEN, NULL, err, sizeof(err)), SB_OK);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_BAD_SIGNATURE);
    free(t);
    free(pem);
    sb_jwt_keys_unref(k);
}

static void test_sb_jwt_kid_selection(void **state)
{
    char err[160];
    struct sb_jwt_keys *k = keys_hmac(secret_a, "a");
    assert_int_equal(sb_jwt_keys_add_hmac(k, secret_b, SECRET_LEN, "b", err, sizeof(err)), SB_OK);
    char *t = token("HS256", "b", good_payload, NULL, secret_b);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_OK);
    free(t);
    /* kid "a" selects key a only, which does not verify b's signature. */
    t = token("HS256", "a", good_payload, NULL, secret_b);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_BAD_SIGNATURE);
    free(t);
    /* No kid: every key of the family is tried. */
    t = token("HS256", NULL, good_payload, NULL, secret_b);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_OK);
    free(t);
    t = token("HS256", "zzz", good_payload, NULL, secret_b);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_UNKNOWN_KID);
    free(t);
    sb_jwt_keys_unref(k);
    /* A kid naming no key falls back on the keys without an id. */
    k = keys_hmac(secret_a, "a");
    assert_int_equal(sb_jwt_keys_add_hmac(k, secret_b, SECRET_LEN, NULL, err, sizeof(err)), SB_OK);
    t = token("HS256", "zzz", good_payload, NULL, secret_b);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_OK);
    free(t);
    t = token("HS256", "zzz", good_payload, NULL, secret_a);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_BAD_SIGNATURE);
    free(t);
    sb_jwt_keys_unref(k);
    /* Two RSA keys told apart by kid; a kid of another family's key is unknown here. */
    k = keys_pem(rsa, "r1");
    char *pem = pub_pem(rsa2);
    assert_int_equal(sb_jwt_keys_add_pem(k, pem, strlen(pem), "r2", err, sizeof(err)), SB_OK);
    free(pem);
    assert_int_equal(sb_jwt_keys_add_hmac(k, secret_a, SECRET_LEN, "h", err, sizeof(err)), SB_OK);
    t = token("RS256", "r2", good_payload, rsa2, NULL);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_OK);
    free(t);
    t = token("RS256", "r1", good_payload, rsa2, NULL);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_BAD_SIGNATURE);
    free(t);
    t = token("RS256", "h", good_payload, rsa2, NULL); /* names the HMAC key */
    assert_int_equal(check(k, t, &no_opts), SB_JWT_NO_KEY);
    free(t);
    sb_jwt_keys_unref(k);
}

static void test_sb_jwt_times_at_leeway_boundaries(void **state)
{
    struct sb_jwt_opts o = {.leeway_ms = 5000};
    const char *exp = "{\"sub\":\"u\",\"exp\":1700000000}";
    assert_int_equal(check_payload(exp, &o, NOW_MS + 5000, NULL), SB_JWT_OK);
    assert_int_equal(check_payload(exp, &o, NOW_MS + 5001, NULL), SB_JWT_EXPIRED);
    assert_int_equal(check_payload(exp, &no_opts, NOW_MS, NULL), SB_JWT_OK);
    assert_int_equal(check_payload(exp, &no_opts, NOW_MS + 1, NULL), SB_JWT_EXPIRED);
    const char *nbf = "{\"sub\":\"u\",\"exp\":1800000000,\"nbf\":1700000000}";
    assert_int_equal(check_payload(nbf, &o, NOW_MS - 5000, NULL), SB_JWT_OK);
    assert_int_equal(check_payload(nbf, &o, NOW_MS - 5001, NULL), SB_JWT_NOT_YET_VALID);
    const char *iat = "{\"sub\":\"u\",\"exp\":1800000000,\"iat\":1700000000}";
    assert_int_equal(check_payload(iat, &o, NOW_MS - 5000, NULL), SB_JWT_OK);
    assert_int_equal(check_payload(iat, &o, NOW_MS - 5001, NULL), SB_JWT_ISSUED_IN_FUTURE);
    /* Real seconds. */
    struct sb_jwt_claims c;
    assert_int_equal(
        check_payload("{\"sub\":\"u\",\"exp\":1700000000.5}", &no_opts, NOW_MS + 500, &c),
        SB_JWT_OK);
    assert_int_equal(c.exp_ms, NOW_MS + 500);
    sb_jwt_claims_fini(&c);
    assert_int_equal(
        check_payload("{\"sub\":\"u\",\"exp\":1700000000.5}", &no_opts, NOW_MS + 501, NULL),
        SB_JWT_EXPIRED);
    /* exp required unless allowed. */
    struct sb_jwt_opts noexp = {.allow_no_exp = true};
    assert_int_equal(check_payload("{\"sub\":\"u\"}", &no_opts, NOW_MS, NULL), SB_JWT_NO_EXP);
    assert_int_equal(check_payload("{\"sub\":\"u\"}", &noexp, NOW_MS, &c), SB_JWT_OK);
    assert_int_equal(c.exp_ms, 0);
    sb_jwt_claims_fini(&c);
    /* Wrong types and absurd values are malformed. */
    assert_int_equal(check_payload("{\"sub\":\"u\",\"exp\":\"1800000000\"}", &o, NOW_MS, NULL),
                     SB_JWT_MALFORMED);
    assert_int_equal(check_payload("{\"sub\":\"u\",\"exp\":1e300}", &o, NOW_MS, NULL),
                     SB_JWT_MALFORMED);
    assert_int_equal(check_payload("{\"sub\":\"u\",\"exp\":9223372036854775807}", &o, NOW_MS, NULL),
                     SB_JWT_MALFORMED);
    assert_int_equal(
        check_payload("{\"sub\":\"u\",\"exp\":1800000000,\"nbf\":null}", &o, NOW_MS, NULL),
        SB_JWT_MALFORMED);
    /* sub is checked first. */
    assert_int_equal(check_payload("{\"exp\":1}", &o, NOW_MS, NULL), SB_JWT_BAD_SUB);
}

static void test_sb_jwt_sub_rules(void **state)
{
    assert_int_equal(check_payload("{\"exp\":1800000000}", &no_opts, NOW_MS, NULL), SB_JWT_BAD_SUB);
    assert_int_equal(check_payload("{\"sub\":7,\"exp\":1800000000}", &no_opts, NOW_MS, NULL),
                     SB_JWT_BAD_SUB);
    assert_int_equal(check_payload("{\"sub\":\"a b\",\"exp\":1800000000}", &no_opts, NOW_MS, NULL),
                     SB_JWT_BAD_SUB);
    assert_int_equal(check_payload("{\"sub\":\"\",\"exp\":1800000000}", &no_opts, NOW_MS, NULL),
                     SB_JWT_BAD_SUB);
    char p[512], id[SB_IDENT_MAX + 2];
    memset(id, 'x', sizeof(id));
    id[SB_IDENT_MAX] = '\0';
    snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"exp\":1800000000}", id);
    struct sb_jwt_claims c;
    assert_int_equal(check_payload(p, &no_opts, NOW_MS, &c), SB_JWT_OK);
    assert_string_equal(c.sub, id);
    sb_jwt_claims_fini(&c);
    id[SB_IDENT_MAX] = 'x';
    id[SB_IDENT_MAX + 1] = '\0';
    snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"exp\":1800000000}", id);
    assert_int_equal(check_payload(p, &no_opts, NOW_MS, NULL), SB_JWT_BAD_SUB);
}

static void test_sb_jwt_issuer_and_audience(void **state)
{
    struct sb_jwt_opts o = {.issuer = "https://idp", .audience = "sb"};
    const char *ok = "{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://idp\",\"aud\":\"sb\"}";
    assert_int_equal(check_payload(ok, &o, NOW_MS, NULL), SB_JWT_OK);
    assert_int_equal(
        check_payload("{\"sub\":\"u\",\"exp\":1800000000,\"aud\":\"sb\"}", &o, NOW_MS, NULL),
        SB_JWT_ISSUER_MISMATCH);
    assert_int_equal(check_payload("{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://idp2\","
                                   "\"aud\":\"sb\"}",
                                   &o, NOW_MS, NULL),
                     SB_JWT_ISSUER_MISMATCH);
    assert_int_equal(check_payload("{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://idp\","
                                   "\"aud\":[\"x\",\"sb\"]}",
                                   &o, NOW_MS, NULL),
                     SB_JWT_OK);
    assert_int_equal(check_payload("{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://idp\","
                                   "\"aud\":[\"x\",\"y\"]}",
                                   &o, NOW_MS, NULL),
                     SB_JWT_AUDIENCE_MISMATCH);
    assert_int_equal(check_payload("{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://idp\","
                                   "\"aud\":\"sbx\"}",
                                   &o, NOW_MS, NULL),
                     SB_JWT_AUDIENCE_MISMATCH);
    assert_int_equal(check_payload("{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://idp\"}", &o,
                                   NOW_MS, NULL),
                     SB_JWT_AUDIENCE_MISMATCH);
    assert_int_equal(check_payload("{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"https://idp\","
                                   "\"aud\":[\"sb\",3]}",
                                   &o, NOW_MS, NULL),
                     SB_JWT_MALFORMED);
    /* Not configured: not checked, but still typed. */
    struct sb_jwt_opts none = {.issuer = "", .audience = NULL};
    assert_int_equal(check_payload("{\"sub\":\"u\",\"exp\":1800000000,\"iss\":\"x\",\"aud\":[]}",
                                   &none, NOW_MS, NULL),
                     SB_JWT_OK);
    assert_int_equal(
        check_payload("{\"sub\":\"u\",\"exp\":1800000000,\"iss\":5}", &none, NOW_MS, NULL),
        SB_JWT_MALFORMED);
    /* The order: an expired token with the wrong issuer is expired. */
    assert_int_equal(check_payload("{\"sub\":\"u\",\"exp\":1,\"iss\":\"z\"}", &o, NOW_MS, NULL),
                     SB_JWT_EXPIRED);
}

static void test_sb_jwt_info_claim(void **state)
{
    struct sb_jwt_claims c;
    assert_int_equal(check_payload("{\"sub\":\"u\",\"exp\":1800000000,\"info\":{ \"name\" : "
                                   "\"Al\", \"n\": [1, 2]}}",
                                   &no_opts, NOW_MS, &c),
                     SB_JWT_OK);
    assert_string_equal(c.info, "{\"name\":\"Al\",\"n\":[1,2]}");
    sb_jwt_claims_fini(&c);
    assert_int_equal(
        check_payload("{\"sub\":\"u\",\"exp\":1800000000,\"info\":\"x\"}", &no_opts, NOW_MS, NULL),
        SB_JWT_BAD_INFO);
    assert_int_equal(
        check_payload("{\"sub\":\"u\",\"exp\":1800000000,\"info\":null}", &no_opts, NOW_MS, NULL),
        SB_JWT_BAD_INFO);
    /* {"s":"xxx..."} is 8 bytes around the string: at the limit, then one over. */
    for (int over = 0; over < 2; over++) {
        size_t sl = SB_JWT_MAX_INFO - 8 + (size_t)over;
        char *p = malloc(sl + 128);
        int n = snprintf(p, sl + 128, "{\"sub\":\"u\",\"exp\":1800000000,\"info\":{\"s\":\"");
        memset(p + n, 'x', sl);
        strcpy(p + n + sl, "\"}}");
        assert_int_equal(check_payload(p, &no_opts, NOW_MS, NULL),
                         over ? SB_JWT_BAD_INFO : SB_JWT_OK);
        free(p);
    }
}

static void test_sb_jwt_grants(void **state)
{
    struct sb_jwt_claims c;
    assert_int_equal(check_payload("{\"sub\":\"u\",\"exp\":1800000000,\"channels\":[\"news\","
                                   "\"chat.*\"],\"rooms\":[],\"channel\":\"news\"}",
                                   &no_opts, NOW_MS, &c),
                     SB_JWT_OK);
    assert_int_equal(c.n_channels, 2);
    assert_string_equal(c.channels[1], "chat.*");
    assert_int_equal(c.n_rooms, 0);
    assert_string_equal(c.channel, "news");
    sb_jwt_claims_fini(&c);
    static const char *const bad[] = {
        "\"channels\":\"news\"",   "\"channels\":[1]",      "\"rooms\":[\"\"]",
        "\"rooms\":[\"a b\"]",     "\"rooms\":[\"a\\\"\"]", "\"rooms\":[\"a\\\\\"]",
        "\"rooms\":[\"\\u00e9\"]", "\"channel\":5",         "\"channel\":\"a\\tb\"",
        "\"rooms\":null",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char p[256];
        snprintf(p, sizeof(p), "{\"sub\":\"u\",\"exp\":1800000000,%s}", bad[i]);
        assert_int_equal(check_payload(p, &no_opts, NOW_MS, NULL), SB_JWT_BAD_GRANTS);
    }
    /* Length and count limits, at and over. */
    for (int over = 0; over < 2; over++) {
        char p[4096];
        int n = snprintf(p, sizeof(p), "{\"sub\":\"u\",\"exp\":1800000000,\"rooms\":[\"");
        memset(p + n, 'r', SB_JWT_MAX_GRANT_LEN + (size_t)over);
        strcpy(p + n + SB_JWT_MAX_GRANT_LEN + over, "\"]}");
        assert_int_equal(check_payload(p, &no_opts, NOW_MS, NULL),
                         over ? SB_JWT_BAD_GRANTS : SB_JWT_OK);
        n = snprintf(p, sizeof(p), "{\"sub\":\"u\",\"exp\":1800000000,\"channels\":[");
        for (int i = 0; i < SB_JWT_MAX_GRANTS + over; i++)
            n += snprintf(p + n, sizeof(p) - (size_t)n, "%s\"c\"", i ? "," : "");
        snprintf(p + n, sizeof(p) - (size_t)n, "]}");
        assert_int_equal(check_payload(p, &no_opts, NOW_MS, &c),
                         over ? SB_JWT_BAD_GRANTS : SB_JWT_OK);
        if (!over)
            assert_int_equal(c.n_channels, SB_JWT_MAX_GRANTS);
        sb_jwt_claims_fini(&c);
    }
}

static void test_sb_jwt_malformed_inputs(void **state)
{
    struct sb_jwt_keys *k = keys_hmac(secret_a, NULL);
    char *t = token("HS256", NULL, good_payload, NULL, secret_a);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_OK);
    char *dot2 = strrchr(t, '.');
    /* Two parts, four parts, empty. */
    char *two = strndup(t, (size_t)(dot2 - t));
    assert_int_equal(check(k, two, &no_opts), SB_JWT_MALFORMED);
    char *four = cat3(t, ".", "AAAA");
    assert_int_equal(check(k, four, &no_opts), SB_JWT_MALFORMED);
    assert_int_equal(check(k, "", &no_opts), SB_JWT_MALFORMED);
    assert_int_equal(check(k, "..", &no_opts), SB_JWT_MALFORMED);
    /* Padding and characters outside the alphabet, in each part. */
    char *pad = cat3(t, "", "=");
    assert_int_equal(check(k, pad, &no_opts), SB_JWT_MALFORMED);
    char *bad = strdup(t);
    bad[3] = '+';
    assert_int_equal(check(k, bad, &no_opts), SB_JWT_MALFORMED);
    strcpy(bad, t);
    bad[strlen(bad) - 2] = '/';
    assert_int_equal(check(k, bad, &no_opts), SB_JWT_MALFORMED);
    /* A NUL inside the token (len covers it). */
    struct sb_jwt_claims c;
    strcpy(bad, t);
    bad[5] = '\0';
    assert_int_equal(sb_jwt_verify(k, bad, strlen(t), &no_opts, NOW_MS, &c), SB_JWT_MALFORMED);
    free(two);
    free(four);
    free(pad);
    free(bad);
    free(t);
    /* Headers: not an object, no alg, wrong types, duplicate keys; payload the same. */
    static const char *const headers[] = {
        "[\"HS256\"]",
        "\"HS256\"",
        "{}",
        "{\"alg\":256}",
        "{\"alg\":\"HS256\",\"typ\":1}",
        "{\"alg\":\"HS256\",\"kid\":[]}",
        "{\"alg\":\"HS256\",\"alg\":\"HS256\"}",
        "{\"alg\":\"HS256\"} x",
        "{\"alg\":\"HS256\"",
    };
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        t = token_raw(headers[i], good_payload, "HS256", NULL, secret_a, SECRET_LEN);
        assert_int_equal(check(k, t, &no_opts), SB_JWT_MALFORMED);
        free(t);
    }
    t = token_raw("{\"alg\":\"HS256\",\"typ\":\"anything\"}", good_payload, "HS256", NULL, secret_a,
                  SECRET_LEN);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_OK);
    free(t);
    static const char *const payloads[] = {
        "[]",
        "{\"sub\":\"u\",\"sub\":\"v\",\"exp\":1800000000}",
        "{\"sub\":\"u\"",
        "",
    };
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        t = token("HS256", NULL, payloads[i], NULL, secret_a);
        assert_int_equal(check(k, t, &no_opts), SB_JWT_MALFORMED);
        free(t);
    }
    /* Too large, at the length alone. */
    char *big = malloc(SB_JWT_MAX_TOKEN + 2);
    memset(big, 'A', SB_JWT_MAX_TOKEN + 1);
    big[SB_JWT_MAX_TOKEN + 1] = '\0';
    assert_int_equal(check(k, big, &no_opts), SB_JWT_TOO_LARGE);
    free(big);
    sb_jwt_keys_unref(k);
}

static void test_sb_jwt_tampered_token_refused(void **state)
{
    struct sb_jwt_keys *k = keys_pem(rsa, NULL);
    char *t = token("RS256", NULL, good_payload, rsa, NULL);
    char *evil = token("RS256", NULL, "{\"sub\":\"admin\",\"exp\":1700003600}", rsa2, NULL);
    /* rsa's header and signature with another payload. */
    char *d1 = strchr(t, '.'), *d2 = strrchr(t, '.');
    char *e1 = strchr(evil, '.'), *e2 = strrchr(evil, '.');
    char mixed[4096];
    snprintf(mixed, sizeof(mixed), "%.*s%.*s%s", (int)(d1 - t), t, (int)(e2 - e1), e1, d2);
    assert_int_equal(check(k, mixed, &no_opts), SB_JWT_BAD_SIGNATURE);
    assert_int_equal(check(k, evil, &no_opts), SB_JWT_BAD_SIGNATURE);
    /* One bit of the signature flipped ('A' -> 'B' in its middle). */
    char *flip = strdup(t);
    char *s = flip + (d2 - t) + 10;
    *s = *s == 'A' ? 'B' : 'A';
    assert_int_equal(check(k, flip, &no_opts), SB_JWT_BAD_SIGNATURE);
    free(flip);
    free(t);
    free(evil);
    sb_jwt_keys_unref(k);
    /* HMAC with a truncated signature. */
    k = keys_hmac(secret_a, NULL);
    t = token("HS256", NULL, good_payload, NULL, secret_a);
    d2 = strrchr(t, '.');
    unsigned char mac[32];
    size_t ml;
    assert_int_equal(sb_b64url_decode(d2 + 1, strlen(d2 + 1), mac, sizeof(mac), &ml), SB_OK);
    d2[1 + sb_b64url_encode(mac, 31, d2 + 1)] = '\0';
    assert_int_equal(check(k, t, &no_opts), SB_JWT_BAD_SIGNATURE);
    free(t);
    sb_jwt_keys_unref(k);
}

static void test_sb_jwt_es_signature_length(void **state)
{
    struct sb_jwt_keys *k = keys_pem(p256, NULL);
    char *t = token("ES256", NULL, good_payload, p256, NULL);
    char *d2 = strrchr(t, '.');
    unsigned char raw[96];
    size_t n;
    assert_int_equal(sb_b64url_decode(d2 + 1, strlen(d2 + 1), raw, sizeof(raw), &n), SB_OK);
    assert_int_equal(n, 64);
    for (size_t len = 63; len <= 65; len += 2) {
        unsigned char sig[96] = {0};
        memcpy(sig, raw, 64);
        char *s = b64(sig, len);
        *d2 = '\0';
        char *bad = cat3(t, ".", s);
        *d2 = '.';
        assert_int_equal(check(k, bad, &no_opts), SB_JWT_BAD_SIGNATURE);
        free(s);
        free(bad);
    }
    /* A DER signature (what OpenSSL makes) is not a JWS signature. */
    char *hdr_pl = strndup(t, (size_t)(d2 - t));
    unsigned char der[128];
    size_t dl = sizeof(der);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit_ex(c, NULL, "SHA256", NULL, NULL, p256, NULL), 1);
    assert_int_equal(EVP_DigestSign(c, der, &dl, (const unsigned char *)hdr_pl, strlen(hdr_pl)), 1);
    EVP_MD_CTX_free(c);
    char *s = b64(der, dl), *bad = cat3(hdr_pl, ".", s);
    assert_int_equal(check(k, bad, &no_opts), SB_JWT_BAD_SIGNATURE);
    free(s);
    free(bad);
    free(hdr_pl);
    free(t);
    sb_jwt_keys_unref(k);
}

static int write_private(BIO *b, void *pk)
{
    return PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL);
}

/* PKCS#1 RSAPublicKey, as "RSA PUBLIC KEY". */
static int write_rsa_pkcs1(BIO *b, void *pk)
{
    unsigned char *der = NULL;
    int n = i2d_PublicKey(pk, &der);
    int ok = n > 0 && PEM_write_bio(b, "RSA PUBLIC KEY", "", der, n) > 0;
    OPENSSL_free(der);
    return ok;
}

/* A self-signed certificate of the key. */
static int write_cert(BIO *b, void *pk)
{
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pk);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"sb", -1, -1, 0);
    X509_set_issuer_name(x, name);
    int ok = X509_sign(x, pk, EVP_sha256()) > 0 && PEM_write_bio_X509(b, x);
    X509_free(x);
    return ok;
}

static void test_sb_jwt_pem_loading(void **state)
{
    char err[160];
    struct sb_jwt_keys *k = sb_jwt_keys_create();
    /* SPKI RSA + SPKI EC + "RSA PUBLIC KEY" + a certificate, in one text. */
    char *a = pub_pem(rsa), *b = pub_pem(p256);
    char *c = pem_of(write_rsa_pkcs1, rsa2), *d = pem_of(write_cert, p384);
    char *ab = cat3(a, "\n", b), *cd = cat3(c, "", d), *all = cat3(ab, "", cd);
    assert_int_equal(sb_jwt_keys_add_pem(k, all, strlen(all), "x", err, sizeof(err)), SB_OK);
    assert_int_equal(sb_jwt_keys_count(k), 4);
    char *t = token("RS256", "x", good_payload, rsa2, NULL);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_OK);
    free(t);
    t = token("ES384", NULL, good_payload, p384, NULL);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_OK);
    free(t);
    free(a);
    free(b);
    free(c);
    free(d);
    free(ab);
    free(cd);
    /* A private key refuses the whole text: nothing is added. */
    char *priv = pem_of(write_private, p256), *mixed = cat3(all, "", priv);
    err[0] = '\0';
    assert_int_equal(sb_jwt_keys_add_pem(k, mixed, strlen(mixed), NULL, err, sizeof(err)),
                     SB_EINVAL);
    assert_non_null(strstr(err, "private key"));
    assert_int_equal(sb_jwt_keys_count(k), 4);
    free(priv);
    free(mixed);
    free(all);
    /* Small RSA, other curves, other types, garbage. */
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    EVP_PKEY *p521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    EVP_PKEY *x25519 = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    EVP_PKEY *refused[] = {small, p521, x25519};
    for (size_t i = 0; i < 3; i++) {
        char *p = pub_pem(refused[i]);
        assert_int_equal(sb_jwt_keys_add_pem(k, p, strlen(p), NULL, err, sizeof(err)), SB_EINVAL);
        free(p);
        EVP_PKEY_free(refused[i]);
    }
    static const char *const junk[] = {
        "",
        "hello",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n",
        "-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n",
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        assert_int_equal(sb_jwt_keys_add_pem(k, junk[i], strlen(junk[i]), NULL, err, sizeof(err)),
                         SB_EINVAL);
    /* A good block followed by a broken one adds nothing either. */
    char *good = pub_pem(ed), *broken = cat3(good, "", junk[3]);
    assert_int_equal(sb_jwt_keys_add_pem(k, broken, strlen(broken), NULL, err, sizeof(err)),
                     SB_EINVAL);
    free(good);
    free(broken);
    assert_int_equal(sb_jwt_keys_count(k), 4);
    /* Short HMAC secret. */
    assert_int_equal(
        sb_jwt_keys_add_hmac(k, secret_a, SB_JWT_MIN_HMAC_SECRET - 1, NULL, err, sizeof(err)),
        SB_EINVAL);
    assert_non_null(strstr(err, "too short"));
    sb_jwt_keys_unref(k);
}

static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/test_sb_jwt_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_sb_jwt_key_files(void **state)
{
    char err[160];
    struct sb_jwt_keys *k = sb_jwt_keys_create();
    char text[64];
    snprintf(text, sizeof(text), "%s\r\n", (const char *)secret_a);
    char *hpath = write_temp(text);
    assert_int_equal(sb_jwt_keys_add_hmac_file(k, hpath, err, sizeof(err)), SB_OK);
    char *pem = pub_pem(ed);
    char *ppath = write_temp(pem);
    assert_int_equal(sb_jwt_keys_add_pem_file(k, ppath, err, sizeof(err)), SB_OK);
    assert_int_equal(sb_jwt_keys_count(k), 2);
    char *t = token("HS512", NULL, good_payload, NULL, secret_a);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_OK);
    free(t);
    t = token("EdDSA", NULL, good_payload, ed, NULL);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_OK);
    free(t);
    assert_int_equal(sb_jwt_keys_add_pem_file(k, "/nonexistent/key.pem", err, sizeof(err)), SB_EIO);
    assert_int_equal(sb_jwt_keys_add_hmac_file(k, "/nonexistent/secret", err, sizeof(err)), SB_EIO);
    char *spath = write_temp("short\n");
    assert_int_equal(sb_jwt_keys_add_hmac_file(k, spath, err, sizeof(err)), SB_EINVAL);
    unlink(hpath);
    unlink(ppath);
    unlink(spath);
    free(hpath);
    free(ppath);
    free(spath);
    free(pem);
    sb_jwt_keys_unref(k);
}

/* A JWK of a public key (kty from the key), with `extra` members appended. */
static char *jwk_of(EVP_PKEY *pk, const char *kid, const char *extra)
{
    char *out = malloc(4096), *m1 = NULL, *m2 = NULL;
    if (EVP_PKEY_is_a(pk, "RSA")) {
        BIGNUM *n = NULL, *e = NULL;
        EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n);
        EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e);
        unsigned char nb[1024], eb[16];
        int nl = BN_bn2bin(n, nb), el = BN_bn2bin(e, eb);
        m1 = b64(nb, (size_t)nl);
        m2 = b64(eb, (size_t)el);
        snprintf(out, 4096, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"%s}", kid, m1,
                 m2, extra);
        BN_free(n);
        BN_free(e);
    } else if (EVP_PKEY_is_a(pk, "EC")) {
        unsigned char pt[133];
        size_t pl = 0;
        EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &pl);
        size_t half = (pl - 1) / 2;
        m1 = b64(pt + 1, half);
        m2 = b64(pt + 1 + half, half);
        snprintf(out, 4096,
                 "{\"kty\":\"EC\",\"crv\":\"%s\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"%s}",
                 half == 32   ? "P-256"
                 : half == 48 ? "P-384"
                              : "P-521",
                 kid, m1, m2, extra);
    } else {
        unsigned char x[32];
        size_t xl = sizeof(x);
        EVP_PKEY_get_raw_public_key(pk, x, &xl);
        m1 = b64(x, xl);
        snprintf(out, 4096, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"%s\",\"x\":\"%s\"%s}",
                 kid, m1, extra);
    }
    free(m1);
    free(m2);
    return out;
}

static void test_sb_jwt_jwks(void **state)
{
    char err[160], doc[16384];
    char *j_rsa = jwk_of(rsa, "rsa", ",\"use\":\"sig\",\"alg\":\"RS256\",\"d\":\"ignored\"");
    char *j_rsa2 = jwk_of(rsa2, "rsa2", "");
    char *j_p256 = jwk_of(p256, "ec", "");
    char *j_p384 = jwk_of(p384, "ec384", ",\"alg\":\"ES384\"");
    char *j_ed = jwk_of(ed, "ed", "");
    char *j_enc = jwk_of(rsa2, "enc", ",\"use\":\"enc\"");
    char *k_oct = b64(secret_a, SECRET_LEN);
    EVP_PKEY *p521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    char *j_p521 = jwk_of(p521, "p521", "");
    EVP_PKEY_free(p521);
    snprintf(doc, sizeof(doc),
             "{\"keys\":[%s,%s,%s,%s,%s,%s,{\"kty\":\"oct\",\"kid\":\"hs\",\"k\":\"%s\"},"
             "{\"kty\":\"foo\"},%s,{\"kty\":\"RSA\",\"alg\":\"RSA-OAEP\"}]}",
             j_rsa, j_rsa2, j_p256, j_p384, j_ed, j_enc, k_oct, j_p521);
    struct sb_jwt_keys *k = sb_jwt_keys_create();
    size_t skipped = 99;
    assert_int_equal(sb_jwt_keys_add_jwks(k, doc, strlen(doc), &skipped, err, sizeof(err)), SB_OK);
    assert_int_equal(sb_jwt_keys_count(k), 6);
    assert_int_equal(skipped, 4);
    struct {
        const char *alg, *kid;
        EVP_PKEY *pk;
        enum sb_jwt_result want;
    } cases[] = {
        {"RS256", "rsa", rsa, SB_JWT_OK},
        {"PS256", "rsa", rsa, SB_JWT_NO_KEY}, /* rsa is RS256 only */
        {"PS256", NULL, rsa2, SB_JWT_OK},
        {"PS512", "rsa2", rsa2, SB_JWT_OK},
        {"ES256", "ec", p256, SB_JWT_OK},
        {"ES384", "ec384", p384, SB_JWT_OK},
        {"EdDSA", "ed", ed, SB_JWT_OK},
        {"HS384", "hs", NULL, SB_JWT_OK},
        {"RS256", "enc", rsa2, SB_JWT_UNKNOWN_KID},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *t = token(cases[i].alg, cases[i].kid, good_payload, cases[i].pk,
                        cases[i].pk ? NULL : secret_a);
        assert_int_equal(check(k, t, &no_opts), cases[i].want);
        free(t);
    }
    sb_jwt_keys_unref(k);
    /* Only skipped keys: loaded, and nothing added. */
    k = sb_jwt_keys_create();
    static const char only_skipped[] =
        "{\"keys\":[{\"kty\":\"foo\"},{\"kty\":\"oct\",\"use\":\"enc\"}]}";
    assert_int_equal(
        sb_jwt_keys_add_jwks(k, only_skipped, strlen(only_skipped), &skipped, err, sizeof(err)),
        SB_OK);
    assert_int_equal(skipped, 2);
    assert_int_equal(sb_jwt_keys_count(k), 0);
    sb_jwt_keys_unref(k);
    /* The alg restriction alone: PS256 has no key when the only RSA key is RS256-only. */
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", j_rsa);
    k = sb_jwt_keys_create();
    assert_int_equal(sb_jwt_keys_add_jwks(k, doc, strlen(doc), NULL, err, sizeof(err)), SB_OK);
    char *t = token("PS256", NULL, good_payload, rsa, NULL);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_NO_KEY);
    free(t);
    /* Malformed documents and keys add nothing. */
    char *j_bad_alg = jwk_of(rsa2, "x", ",\"alg\":\"ES256\"");
    char *j_short_x = strdup(j_p256);
    char *x = strstr(j_short_x, "\"x\":\"") + 5;
    memmove(x, x + 4, strlen(x + 4) + 1);
    const char *bad[] = {
        "",
        "[]",
        "{}",
        "{\"keys\":{}}",
        "{\"keys\":[1]}",
        "{\"keys\":[{}]}",
        "{\"keys\":[{\"kty\":\"RSA\"}]}",
        "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
        "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB=\",\"e\":\"AQAB\"}]}",
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}]}",
        "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2hvcnQ\"}]}",
        "{\"keys\":[{\"kty\":\"oct\",\"kid\":7,\"k\":\"c2hvcnQ\"}]}",
        "{\"keys\":[],\"keys\":[]}",
        j_bad_alg,
        j_short_x,
    };
    char wrapped[8192];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *d = bad[i];
        if (bad[i][0] == '{' && bad[i][2] == 'k' && bad[i][3] == 't') {
            snprintf(wrapped, sizeof(wrapped), "{\"keys\":[%s,%s]}", j_rsa2, bad[i]);
            d = wrapped;
        }
        assert_int_equal(sb_jwt_keys_add_jwks(k, d, strlen(d), NULL, err, sizeof(err)), SB_EINVAL);
    }
    assert_int_equal(sb_jwt_keys_count(k), 1);
    /* A point off the curve: y changed by one bit. */
    char *off = strdup(j_p256);
    char *y = strstr(off, "\"y\":\"") + 5;
    y[10] = y[10] == 'A' ? 'B' : 'A';
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", off);
    assert_int_equal(sb_jwt_keys_add_jwks(k, doc, strlen(doc), NULL, err, sizeof(err)), SB_EINVAL);
    free(off);
    sb_jwt_keys_unref(k);
    free(j_bad_alg);
    free(j_short_x);
    free(j_rsa);
    free(j_rsa2);
    free(j_p256);
    free(j_p384);
    free(j_ed);
    free(j_enc);
    free(j_p521);
    free(k_oct);
}

static void test_sb_jwt_sign_hmac_round_trip(void **state)
{
    static const char *const algs[] = {"HS256", "HS384", "HS512"};
    struct sb_jwt_keys *k = keys_hmac(secret_a, "dev");
    for (size_t i = 0; i < 3; i++) {
        char *t = NULL;
        assert_int_equal(
            sb_jwt_sign_hmac(algs[i], secret_a, SECRET_LEN, i ? "dev" : NULL,
                             "{\"sub\":\"bob\", \"exp\":1800000000, \"rooms\":[\"r\"]}", &t),
            SB_OK);
        struct sb_jwt_claims c;
        assert_int_equal(sb_jwt_verify(k, t, strlen(t), &no_opts, NOW_MS, &c), SB_JWT_OK);
        assert_string_equal(c.sub, "bob");
        assert_string_equal(c.alg, algs[i]);
        assert_int_equal(c.n_rooms, 1);
        sb_jwt_claims_fini(&c);
        free(t);
    }
    char *t = NULL;
    assert_int_equal(sb_jwt_sign_hmac("RS256", secret_a, SECRET_LEN, NULL, "{}", &t), SB_EINVAL);
    assert_int_equal(sb_jwt_sign_hmac("HS256", secret_a, SECRET_LEN, NULL, "[]", &t), SB_EINVAL);
    assert_int_equal(sb_jwt_sign_hmac("HS256", secret_a, SECRET_LEN, NULL, "{", &t), SB_EINVAL);
    assert_int_equal(sb_jwt_sign_hmac("HS256", secret_a, 8, NULL, "{}", &t), SB_EINVAL);
    assert_null(t);
    sb_jwt_keys_unref(k);
}

static void test_sb_jwt_keys_refcount_and_limit(void **state)
{
    char err[160];
    struct sb_jwt_keys *k = sb_jwt_keys_create();
    assert_int_equal(sb_jwt_keys_count(k), 0);
    assert_ptr_equal(sb_jwt_keys_ref(k), k);
    for (int i = 0; i < SB_JWT_MAX_KEYS; i++)
        assert_int_equal(sb_jwt_keys_add_hmac(k, secret_a, SECRET_LEN, NULL, err, sizeof(err)),
                         SB_OK);
    assert_int_equal(sb_jwt_keys_add_hmac(k, secret_a, SECRET_LEN, NULL, err, sizeof(err)),
                     SB_EFULL);
    sb_jwt_keys_unref(k);
    /* Still alive through the second reference. */
    char *t = token("HS256", NULL, good_payload, NULL, secret_a);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_OK);
    free(t);
    sb_jwt_keys_unref(k);
    sb_jwt_keys_unref(NULL);
    /* An empty set has no key for anything. */
    k = sb_jwt_keys_create();
    t = token("HS256", NULL, good_payload, NULL, secret_a);
    assert_int_equal(check(k, t, &no_opts), SB_JWT_NO_KEY);
    free(t);
    sb_jwt_keys_unref(k);
}

static void test_sb_jwt_result_names(void **state)
{
    for (int r = SB_JWT_OK; r <= SB_JWT_NOMEM; r++)
        assert_true(strlen(sb_jwt_result_name((enum sb_jwt_result)r)) > 0);
    assert_string_equal(sb_jwt_result_name(SB_JWT_EXPIRED), "token expired");
    assert_string_equal(sb_jwt_result_name(SB_JWT_BAD_SIGNATURE), "bad signature");
    assert_string_equal(sb_jwt_result_name(SB_JWT_UNKNOWN_KID), "unknown key id");
    assert_string_equal(sb_jwt_result_name(SB_JWT_ALG_NONE), "algorithm none is not accepted");
    assert_string_equal(sb_jwt_result_name((enum sb_jwt_result)999), "invalid token");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sb_b64url_strict),
        cmocka_unit_test(test_sb_jwt_verify_every_alg),
        cmocka_unit_test(test_sb_jwt_key_type_pins_alg),
        cmocka_unit_test(test_sb_jwt_alg_none_refused),
        cmocka_unit_test(test_sb_jwt_alg_confusion_refused),
        cmocka_unit_test(test_sb_jwt_kid_selection),
        cmocka_unit_test(test_sb_jwt_times_at_leeway_boundaries),
        cmocka_unit_test(test_sb_jwt_sub_rules),
        cmocka_unit_test(test_sb_jwt_issuer_and_audience),
        cmocka_unit_test(test_sb_jwt_info_claim),
        cmocka_unit_test(test_sb_jwt_grants),
        cmocka_unit_test(test_sb_jwt_malformed_inputs),
        cmocka_unit_test(test_sb_jwt_tampered_token_refused),
        cmocka_unit_test(test_sb_jwt_es_signature_length),
        cmocka_unit_test(test_sb_jwt_pem_loading),
        cmocka_unit_test(test_sb_jwt_key_files),
        cmocka_unit_test(test_sb_jwt_jwks),
        cmocka_unit_test(test_sb_jwt_sign_hmac_round_trip),
        cmocka_unit_test(test_sb_jwt_keys_refcount_and_limit),
        cmocka_unit_test(test_sb_jwt_result_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
