/* Development tokens. The payload carries sub, iat and exp, plus iss and aud when the node
 * checks them, so a minted token passes this node's own checks. */
#include "dp_mint.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "dp_config.h"
#include "sb_ident.h"
#include "sb_jwt.h"
#include "sb_time.h"

#define PROG "switchboard-dataplane"

static char *read_secret(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = malloc(65537);
    size_t n = buf != NULL ? fread(buf, 1, 65536, f) : 0;
    fclose(f);
    if (buf == NULL)
        return NULL;
    *len = sb_jwt_secret_len(buf, n);
    return buf;
}

int dp_mint_run(const struct dp_config *cfg, FILE *out)
{
    if (!sb_ident_is_valid(cfg->mint_token)) {
        fprintf(stderr, PROG ": --mint-token needs a user id (1 to %d of [A-Za-z0-9._:@-])\n",
                SB_IDENT_MAX);
        return 2;
    }
    if (cfg->jwt_hmac_secret_file == NULL || cfg->jwt_hmac_secret_file[0] == '\0') {
        fprintf(stderr, PROG ": --mint-token needs --jwt-hmac-secret-file FILE\n");
        return 2;
    }
    size_t len = 0;
    char *secret = read_secret(cfg->jwt_hmac_secret_file, &len);
    if (secret == NULL) {
        fprintf(stderr, PROG ": cannot read %s\n", cfg->jwt_hmac_secret_file);
        return 2;
    }
    int64_t now = sb_time_now_ms() / 1000;
    json_t *p = json_pack("{s:s, s:I, s:I}", "sub", cfg->mint_token, "iat", (json_int_t)now, "exp",
                          (json_int_t)(now + cfg->mint_ttl / 1000));
    if (p != NULL && cfg->jwt_issuer != NULL && cfg->jwt_issuer[0] != '\0')
        json_object_set_new(p, "iss", json_string(cfg->jwt_issuer));
    if (p != NULL && cfg->jwt_audience != NULL && cfg->jwt_audience[0] != '\0')
        json_object_set_new(p, "aud", json_string(cfg->jwt_audience));
    char *payload = p != NULL ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    char *token = NULL;
    enum sb_err e = payload != NULL ? sb_jwt_sign_hmac("HS256", (unsigned char *)secret, len, NULL,
                                                       payload, &token)
                                    : SB_ENOMEM;
    explicit_bzero(secret, len);
    free(secret);
    free(payload);
    if (e != SB_OK) {
        fprintf(stderr, PROG ": cannot sign the token (is the secret at least %d bytes?)\n",
                SB_JWT_MIN_HMAC_SECRET);
        return 2;
    }
    fprintf(out, "%s\n", token);
    free(token);
    return 0;
}
