/* Fuzz target: JWT verification and JWK Set / PEM key import (sb_jwt). The first input byte picks
 * the mode, the rest is its input:
 *   0  a token, verified against a fixed set: an HMAC secret and the RSA and EC keys below;
 *   1  "header\npayload" JSON, signed here with the set's HMAC secret (HS256), so the header,
 *      kid and claim rules past the signature are reached;
 *   2  a JWK Set document, 3  a PEM text, each loaded into a fresh set.
 * A verified token must satisfy the claim rules of sb_jwt.h; a loaded set must respect its cap. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "sb_b64url.h"
#include "sb_ident.h"
#include "sb_jwt.h"

#define NOW_MS 1700000000000LL

static const unsigned char secret[] = "switchboard-fuzz-secret-0123456789abcdef";

/* The public halves of an RSA-2048 and a P-256 key (their private halves made the corpus). */
static const char jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"rsa1\",\"use\":\"sig\",\"n\":\"wgEGFrOkyqWfmuL"
    "X_fQkG48UYUl0n68omHBLBGyqIbAnWgqjJR3N8JZTuMFPG2uECxUcb-xTtvUOdvCMDxI2m8W4n12uY-7g13N"
    "prTynf4tj500Db0JP_pFi1DahWqr_eoMwScnJuoaZ0Rgu_0et_utKbxxnNvw8JjyG7T7oqpR-C1shM40j9Vb"
    "jgon7V8ZiYL0PhHgkfi0XN_Bupd8doO8ARVEasTWXaS0-NGeC8ZQzoNxfdb4euVswG9Gj418qkbL11tvbkGw"
    "a3vXVXrjKWGb3NG1GmmQLQhtVGLYOLjB9DDuXDZbG0I5dBknum-ZaGuAIldkAvDRqMztSVgaSAQ\",\"e\":"
    "\"AQAB\"},{\"kty\":\"EC\",\"kid\":\"ec1\",\"crv\":\"P-256\",\"x\":\"LcU0Toaj6-MYJyq-"
    "SEUSOmdEPlFT2Dfq1Lif9HWUwi0\",\"y\":\"ywQwgGA-ORVL77af32G8uP731D0OnK_4aw3znYsY-1w\"}"
    "]}";

static const struct sb_jwt_opts opts = {
    .issuer = "https://idp.example", .audience = "sb", .leeway_ms = 30000};

static const struct sb_jwt_keys *fixed_keys(void)
{
    static struct sb_jwt_keys *keys;
    if (keys == NULL) {
        keys = sb_jwt_keys_create();
        if (keys == NULL ||
            sb_jwt_keys_add_hmac(keys, secret, sizeof(secret) - 1, "hs", NULL, 0) != SB_OK ||
            sb_jwt_keys_add_jwks(keys, jwks, sizeof(jwks) - 1, NULL, NULL, 0) != SB_OK)
            abort();
    }
    return keys;
}

static void verify(const char *tok, size_t n)
{
    struct sb_jwt_claims c;
    enum sb_jwt_result r = sb_jwt_verify(fixed_keys(), tok, n, &opts, NOW_MS, &c);
    if (sb_jwt_result_name(r)[0] == '\0')
        abort();
    if (r != SB_JWT_OK) {
        if (c.info != NULL || c.channels != NULL || c.rooms != NULL || c.channel != NULL)
            abort(); /* a refusal leaves the claims zeroed */
        return;
    }
    if (!sb_ident_is_valid(c.sub) || c.alg[0] == '\0' || c.n_channels > SB_JWT_MAX_GRANTS ||
        c.n_rooms > SB_JWT_MAX_GRANTS || (c.info != NULL && strlen(c.info) > SB_JWT_MAX_INFO))
        abort();
    sb_jwt_claims_fini(&c);
}

/* header "." payload, base64url-encoded and signed with the HMAC secret. */
static void sign_and_verify(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    if (nl == NULL || size > SB_JWT_MAX_TOKEN)
        return;
    size_t hl = (size_t)(nl - data), pl = size - hl - 1;
    char *tok = malloc(SB_B64URL_ENCODED_LEN(hl) + SB_B64URL_ENCODED_LEN(pl) +
                       SB_B64URL_ENCODED_LEN(32) + 2);
    if (tok == NULL)
        return;
    size_t n = sb_b64url_encode(data, hl, tok);
    tok[n++] = '.';
    n += sb_b64url_encode(nl + 1, pl, tok + n);
    unsigned char mac[32];
    size_t ml = 0;
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, sizeof(secret) - 1,
                  (const unsigned char *)tok, n, mac, sizeof(mac), &ml) != NULL) {
        tok[n++] = '.';
        n += sb_b64url_encode(mac, ml, tok + n);
        verify(tok, n);
    }
    free(tok);
}

static void load(int mode, const char *text, size_t n)
{
    struct sb_jwt_keys *k = sb_jwt_keys_create();
    char err[256];
    size_t skipped = 0;
    if (k == NULL)
        return;
    enum sb_err rc = mode == 2 ? sb_jwt_keys_add_jwks(k, text, n, &skipped, err, sizeof(err))
                               : sb_jwt_keys_add_pem(k, text, n, NULL, err, sizeof(err));
    size_t n_keys = sb_jwt_keys_count(k);
    /* All keys or none; a PEM text that loads adds at least one. */
    if ((rc != SB_OK && n_keys != 0) || (rc == SB_OK && mode == 3 && n_keys == 0) ||
        n_keys > SB_JWT_MAX_KEYS)
        abort();
    sb_jwt_keys_unref(k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *rest = (const char *)data + 1;
    switch (data[0] & 3) {
    case 0:
        verify(rest, size - 1);
        break;
    case 1:
        sign_and_verify(data + 1, size - 1);
        break;
    default:
        load(data[0] & 3, rest, size - 1);
        break;
    }
    return 0;
}
