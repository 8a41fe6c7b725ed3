/* The data plane's NodeLink credential: loads --cluster-secret-file, and refuses to link to a
 * control plane beyond loopback without it unless --allow-insecure (docs/security.md). Main
 * thread, at start. */
#ifndef DP_SECURE_H
#define DP_SECURE_H

#include "dp_config.h"

/* Loads cfg->cluster_secret from cfg->cluster_secret_file (none when empty) and applies the
 * refusal. SB_CONFIG_RUN, or SB_CONFIG_EXIT_ERR after a message on stderr naming the option
 * (never the secret); --allow-insecure logs a warning instead of refusing. Blocks (file I/O). */
enum sb_config_result dp_secure_check(struct dp_config *cfg);

/* True when every address of the comma-separated list `endpoints` is loopback-only. Pure. */
bool dp_secure_endpoints_local(const char *endpoints);

#endif
