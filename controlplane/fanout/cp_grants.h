/* What a connection's token grants (NodeLink Grants: the `info`, `channels` and `rooms` claims
 * and the token's expiry), kept per connection by the node's stream that opened it, replaced on
 * a refresh (ConnAuth) and dropped when the connection closes or the stream ends. The data
 * plane verified the token; the checks here only keep a faulty peer from handing us something
 * unbounded. Authorization reads them (PROTOCOL.md, "What a user may do").
 * Thread: the completion-queue thread only. */
#ifndef CP_GRANTS_H
#define CP_GRANTS_H

#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"
#include "sb_map.h"
#include "switchboard/internal/v1/nodelink.pb-c.h"

/* Bounds, the same as the data plane's token checks (common/sb_jwt.h). */
#define CP_GRANTS_MAX_INFO  4096
#define CP_GRANTS_MAX_LIST  256
#define CP_GRANTS_MAX_ENTRY 256

struct cp_grants {
    char *info; /* a JSON object's text, NULL when the token had none */
    char **channels;
    size_t n_channels;
    char **rooms;
    size_t n_rooms;
    int64_t expires_at; /* Unix ms, 0: none */
};

/* A copy of `g`. SB_EINVAL (with a sentence in why) when it breaks a bound or `info` is not a
 * JSON object; SB_ENOMEM. Pure. */
enum sb_err cp_grants_from_pb(const Switchboard__Internal__V1__Grants *g, struct cp_grants **out,
                              char *why, size_t cap);

void cp_grants_free(struct cp_grants *g);

/* The table of one node's connections (an sb_map of conn id -> struct cp_grants *). */
enum sb_err cp_grants_put(struct sb_map *table, const char *conn_id, struct cp_grants *g);
const struct cp_grants *cp_grants_get(const struct sb_map *table, const char *conn_id);
void cp_grants_remove(struct sb_map *table, const char *conn_id);
/* Frees every entry and leaves the table empty. */
void cp_grants_clear(struct sb_map *table);

#endif
