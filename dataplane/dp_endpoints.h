/* The `--controlplane` list: HOST:PORT items, each an IP literal or a DNS name that may resolve
 * to several control-plane replicas. Turns it into the ordered list of addresses to dial.
 * Not thread-bound: the link's resolver thread owns one dp_endpoints. */
#ifndef DP_ENDPOINTS_H
#define DP_ENDPOINTS_H

#include <stdbool.h>
#include <stddef.h>

#include "sb_err.h"

struct dp_endpoints;

/* Resolves a name: writes a new array of new "addr" strings (no port) to *out and its length to
 * *n. Blocking. A seam for tests; NULL means getaddrinfo. */
typedef enum sb_err dp_endpoints_lookup_fn(const char *host, char ***out, size_t *n);

/* Parses "host:port[,host:port...]" (IPv6 literals in brackets). Returns a new set or NULL with
 * *err set (SB_EINVAL: empty list or a malformed item; SB_ENOMEM). */
struct dp_endpoints *dp_endpoints_parse(const char *list, dp_endpoints_lookup_fn *lookup,
                                        enum sb_err *err);

/* True when some item is a name (the list must be re-resolved from time to time). */
bool dp_endpoints_has_names(const struct dp_endpoints *e);

/* Resolves every name item (blocking) and writes the addresses to dial to *out (a new array of
 * new strings "a.b.c.d:port" / "[v6]:port"), in list order; the addresses of one name are
 * sorted, IPv4 only when the name has any (so "localhost" is one replica, not two), and
 * duplicates are dropped. A name that fails to resolve keeps the addresses it had last time.
 * Returns SB_OK (even when *n is 0) or SB_ENOMEM. */
enum sb_err dp_endpoints_resolve(struct dp_endpoints *e, char ***out, size_t *n);

/* Frees an address array from dp_endpoints_resolve. */
void dp_endpoints_free_list(char **v, size_t n);

void dp_endpoints_destroy(struct dp_endpoints *e);

#endif
