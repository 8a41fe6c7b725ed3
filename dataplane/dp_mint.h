/* --mint-token USER: a development token signed with --jwt-hmac-secret-file, printed for people
 * trying Switchboard (docs/security.md). Main thread, before anything starts. */
#ifndef DP_MINT_H
#define DP_MINT_H

#include <stdio.h>

struct dp_config;

/* Writes the token and a newline to `out`; returns 0, or 2 with a message on stderr. */
int dp_mint_run(const struct dp_config *cfg, FILE *out);

#endif
