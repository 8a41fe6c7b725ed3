/* Option table of switchboard-dataplane. listen, controlplane, dev_mode and config are the
 * design's names; the rest follow docs/dataplane.md. */
#include "dp_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_secure.h"
#include "sb_id.h"
#include "sb_log.h"

#ifndef DP_WEB_ROOT
#define DP_WEB_ROOT "dataplane/web"
#endif

#define N_OPTS 29
static struct sb_config_opt opts[N_OPTS];
static char def_node[SB_ID_LEN];

static void build(struct dp_config *c)
{
    sb_id_new("dp", def_node);
    struct sb_config_opt o[N_OPTS] = {
        {"listen", SB_CONFIG_STRING, &c->listen, "127.0.0.1:8080",
         "HOST:PORT for WebSocket, SSE, health, metrics and the demo page", 0, 0, 0},
        {"controlplane", SB_CONFIG_STRING, &c->controlplane, "127.0.0.1:50051",
         "control plane HOST:PORT list (comma separated); the first is dialed, then the next on "
         "failure (a YAML list in the file)",
         0, 0, SB_CONFIG_LIST},
        {"dev_mode", SB_CONFIG_BOOL, &c->dev_mode, "false",
         "DEVELOPMENT ONLY: accept unauthenticated clients naming themselves with ?user_id=", 0, 0,
         0},
        {"node_id", SB_CONFIG_STRING, &c->node_id, def_node,
         "this node's id (a random dp-... when unset)", 0, 0, 0},
        {"web_root", SB_CONFIG_STRING, &c->web_root, DP_WEB_ROOT,
         "directory of the demo page's files served at /", 0, 0, 0},
        {"max_frame_size", SB_CONFIG_INT, &c->max_frame_size, "81920",
         "largest client frame in bytes (data plus envelope; the control plane limits data to "
         "its max_message_size); larger ones get message_too_large",
         64, 16777216, 0},
        {"hard_frame_limit", SB_CONFIG_INT, &c->hard_frame_limit, "1048576",
         "client frames beyond this many bytes close the connection with 1009", 64, 268435456, 0},
        {"outbox_max_bytes", SB_CONFIG_INT, &c->outbox_max_bytes, "1048576",
         "bytes queued per connection before the slow-consumer policy applies", 1024, 1073741824,
         0},
        {"outbox_max_frames", SB_CONFIG_INT, &c->outbox_max_frames, "4096",
         "frames queued per connection before the slow-consumer policy applies", 1, 1048576, 0},
        {"slow_consumer", SB_CONFIG_STRING, &c->slow_consumer, "disconnect",
         "full outbox policy: disconnect (close the connection) or drop (drop the frame, counted)",
         0, 0, 0},
        {"send_timeout_ms", SB_CONFIG_INT, &c->send_timeout_ms, "30000",
         "a connection whose queued output makes no progress for this long is closed", 1000,
         3600000, 0},
        {"ping_interval_ms", SB_CONFIG_INT, &c->ping_interval_ms, "30000",
         "WebSocket ping / SSE comment interval (see idle_timeout_ms)", 1000, 3600000, 0},
        {"idle_timeout_ms", SB_CONFIG_INT, &c->idle_timeout_ms, "120000",
         "a WebSocket that sends nothing (no frame, no pong) for this long is closed (1000 "
         "idle_timeout); 0: never; must exceed ping_interval_ms",
         0, 86400000, 0},
        {"max_pending", SB_CONFIG_INT, &c->max_pending, "4096",
         "requests per connection waiting for the control plane", 1, 65536, 0},
        {"max_connections", SB_CONFIG_INT, &c->max_connections, "100000",
         "client connections this node accepts", 1, 10000000, 0},
        {"log_level", SB_CONFIG_STRING, &c->log_level, "info", "debug, info, warn or error", 0, 0,
         0},
        {"jwt_hmac_secret_file", SB_CONFIG_STRING, &c->jwt_hmac_secret_file, NULL,
         "file holding the HMAC secret (at least 32 bytes) that verifies HS256/HS384/HS512 client "
         "tokens",
         0, 0, 0},
        {"jwt_public_key_file", SB_CONFIG_STRING, &c->jwt_public_key_file, NULL,
         "PEM public keys (RSA, EC P-256/P-384, Ed25519) that verify client tokens, FILE[,FILE...]",
         0, 0, SB_CONFIG_LIST},
        {"jwks_file", SB_CONFIG_STRING, &c->jwks_file, NULL,
         "JWK Set file of token keys, re-read when it changes", 0, 0, 0},
        {"jwks_url", SB_CONFIG_STRING, &c->jwks_url, NULL,
         "JWK Set URL (https, or http on loopback) fetched in the background", 0, 0, 0},
        {"jwks_refresh", SB_CONFIG_INT, &c->jwks_refresh, "5m",
         "how often --jwks-url is fetched again (also at most once per 30s on an unknown kid)",
         1000, 86400000, SB_CONFIG_DURATION},
        {"jwt_issuer", SB_CONFIG_STRING, &c->jwt_issuer, NULL,
         "when set, a token's iss must be exactly this", 0, 0, 0},
        {"jwt_audience", SB_CONFIG_STRING, &c->jwt_audience, NULL,
         "when set, a token's aud must be or hold this", 0, 0, 0},
        {"jwt_leeway", SB_CONFIG_INT, &c->jwt_leeway, "5s",
         "clock skew allowed on a token's exp, nbf and iat", 0, 3600000, SB_CONFIG_DURATION},
        {"jwt_allow_no_exp", SB_CONFIG_BOOL, &c->jwt_allow_no_exp, "false",
         "accept tokens without exp (they never expire: not recommended)", 0, 0, 0},
        {"allow_insecure", SB_CONFIG_BOOL, &c->allow_insecure, "false",
         "start even when unauthenticated access would be reachable beyond loopback", 0, 0, 0},
        {"mint_token", SB_CONFIG_STRING, &c->mint_token, NULL,
         "DEVELOPMENT: print an HS256 token for this user id, signed with --jwt-hmac-secret-file, "
         "and exit",
         0, 0, 0},
        {"mint_ttl", SB_CONFIG_INT, &c->mint_ttl, "1h", "lifetime of a --mint-token token", 1000,
         31536000000LL, SB_CONFIG_DURATION},
        /* NodeLink credentials (dp_secure.c) */
        {"cluster_secret_file", SB_CONFIG_STRING, &c->cluster_secret_file, "",
         "cluster secret sent on NodeLink, the control plane's file (first line sent; >= 32 "
         "bytes; re-read when it changes)",
         0, 0, 0},
    };
    memcpy(opts, o, sizeof(o));
}

enum sb_err dp_config_split_hostport(const char *s, char *host, size_t cap, int *port)
{
    if (s == NULL)
        return SB_EINVAL;
    const char *colon;
    const char *h = s;
    size_t hl;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':')
            return SB_EINVAL;
        h = s + 1;
        hl = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return SB_EINVAL;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= cap)
        return SB_EINVAL;
    char *endp;
    long p = strtol(colon + 1, &endp, 10);
    if (colon[1] == '\0' || *endp != '\0' || p < 0 || p > 65535)
        return SB_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return SB_OK;
}

enum sb_config_result dp_config_load(struct dp_config *c, int argc, char **argv)
{
    memset(c, 0, sizeof(*c));
    build(c);
    enum sb_config_result r = sb_config_load(
        opts, N_OPTS, "switchboard-dataplane",
        "Switchboard data plane: WebSocket /ws and SSE /sse for clients, linked to a control "
        "plane over NodeLink.",
        argc, argv);
    if (r != SB_CONFIG_RUN)
        return r;
    enum sb_log_level lvl;
    if (sb_log_parse_level(c->log_level, &lvl) != 0) {
        fprintf(stderr, "switchboard-dataplane: --log-level must be debug, info, warn or error\n");
        return SB_CONFIG_EXIT_ERR;
    }
    sb_log_set_level(lvl);
    if (dp_config_split_hostport(c->listen, c->host, sizeof(c->host), &c->port) != SB_OK) {
        fprintf(stderr, "switchboard-dataplane: --listen must be HOST:PORT, got \"%s\"\n",
                c->listen);
        return SB_CONFIG_EXIT_ERR;
    }
    char h[256];
    int p;
    char *list = strdup(c->controlplane != NULL ? c->controlplane : "");
    int bad = list == NULL || list[0] == '\0';
    char *save = NULL;
    for (char *t = list ? strtok_r(list, ",", &save) : NULL; t != NULL && !bad;
         t = strtok_r(NULL, ",", &save))
        bad = dp_config_split_hostport(t, h, sizeof(h), &p) != SB_OK;
    free(list);
    if (bad) {
        fprintf(stderr,
                "switchboard-dataplane: --controlplane must be HOST:PORT[,HOST:PORT...], got "
                "\"%s\"\n",
                c->controlplane != NULL ? c->controlplane : "");
        return SB_CONFIG_EXIT_ERR;
    }
    if (strcmp(c->slow_consumer, "disconnect") == 0) {
        c->overflow = DP_OVERFLOW_DISCONNECT;
    } else if (strcmp(c->slow_consumer, "drop") == 0) {
        c->overflow = DP_OVERFLOW_DROP;
    } else {
        fprintf(stderr, "switchboard-dataplane: --slow-consumer must be disconnect or drop\n");
        return SB_CONFIG_EXIT_ERR;
    }
    if (c->hard_frame_limit < c->max_frame_size) {
        fprintf(stderr, "switchboard-dataplane: --hard-frame-limit must be >= --max-frame-size\n");
        return SB_CONFIG_EXIT_ERR;
    }
    if (c->idle_timeout_ms != 0 && c->idle_timeout_ms <= c->ping_interval_ms) {
        fprintf(stderr, "switchboard-dataplane: --idle-timeout-ms must be 0 or more than "
                        "--ping-interval-ms (a live client answers a ping within the timeout)\n");
        return SB_CONFIG_EXIT_ERR;
    }
    if (c->node_id == NULL || !sb_ident_is_valid(c->node_id)) {
        fprintf(stderr, "switchboard-dataplane: --node-id must be 1 to %d of [A-Za-z0-9._:@-]\n",
                SB_IDENT_MAX);
        return SB_CONFIG_EXIT_ERR;
    }
    return dp_secure_check(c);
}

void dp_config_log(struct dp_config *c)
{
    (void)c;
    sb_config_log(opts, N_OPTS, "dp");
}

void dp_config_print(struct dp_config *c, FILE *f)
{
    (void)c;
    sb_config_print(opts, N_OPTS, f);
}

void dp_config_fini(struct dp_config *c)
{
    sb_secret_destroy(c->cluster_secret);
    c->cluster_secret = NULL;
    sb_config_fini(opts, N_OPTS);
}
