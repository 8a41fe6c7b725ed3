/* The data plane's options (CLI flags, SWITCHBOARD_* environment, --config file) through
 * common/sb_config. Main thread at start; read-only afterwards. */
#ifndef DP_CONFIG_H
#define DP_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dp_session.h"
#include "sb_config.h"
#include "sb_secret.h"

struct dp_config {
    char *listen;       /* HOST:PORT */
    char *controlplane; /* HOST:PORT[,HOST:PORT...] */
    int dev_mode;
    char *node_id;
    char *web_root;
    int64_t max_frame_size;
    int64_t hard_frame_limit;
    int64_t outbox_max_bytes;
    int64_t outbox_max_frames;
    char *slow_consumer; /* "disconnect" or "drop" */
    int64_t send_timeout_ms;
    int64_t ping_interval_ms;
    int64_t idle_timeout_ms; /* 0: no idle cleanup */
    int64_t max_pending;
    int64_t max_connections;
    char *log_level;
    /* client tokens (PROTOCOL.md, "Authentication and authorization") */
    char *jwt_hmac_secret_file;
    char *jwt_public_key_file; /* FILE[,FILE...] */
    char *jwks_file;
    char *jwks_url;
    int64_t jwks_refresh; /* ms */
    char *jwt_issuer;
    char *jwt_audience;
    int64_t jwt_leeway; /* ms */
    int jwt_allow_no_exp;
    int allow_insecure;
    char *mint_token; /* a user id: print a development token and exit */
    int64_t mint_ttl; /* ms */
    /* credentials of NodeLink (docs/security.md, "The gRPC port") */
    char *cluster_secret_file;

    /* derived by dp_config_load */
    struct sb_secret *cluster_secret; /* loaded from cluster_secret_file (dp_secure.c); NULL */
    enum dp_overflow overflow;
    char host[256];
    int port;
};

/* Loads the options (see sb_config_load for precedence) into *cfg and validates them.
 * Returns SB_CONFIG_RUN, or SB_CONFIG_EXIT_OK / SB_CONFIG_EXIT_ERR (message printed). */
enum sb_config_result dp_config_load(struct dp_config *cfg, int argc, char **argv);

/* Logs the effective configuration. */
void dp_config_log(struct dp_config *cfg);

/* Prints the effective configuration as YAML (--check-config). */
void dp_config_print(struct dp_config *cfg, FILE *f);

/* Frees the strings dp_config_load allocated. */
void dp_config_fini(struct dp_config *cfg);

/* Splits "host:port" (or "[v6]:port") into host (cap bytes) and port. SB_EINVAL if malformed.
 * Pure. */
enum sb_err dp_config_split_hostport(const char *s, char *host, size_t cap, int *port);

#endif
