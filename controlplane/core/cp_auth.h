/* Credentials of an incoming gRPC call: the `authorization: Bearer <key>` metadata checked
 * against a key set (the API keys of switchboard.v1.*, the cluster secret of
 * switchboard.internal.v1.*), and the metadata an outgoing call carries. The answer names what
 * was wrong without repeating what was sent. Thread: the completion-queue thread. */
#ifndef CP_AUTH_H
#define CP_AUTH_H

#include <grpc/grpc.h>

#include "sb_secret.h"

enum cp_auth {
    CP_AUTH_OK = 0,
    CP_AUTH_MISSING, /* no authorization metadata */
    CP_AUTH_INVALID, /* not "Bearer <token>", or a token that is none of the keys */
};

/* Checks the received metadata `md` (borrowed) against `keys` (NULL: nothing configured, OK).
 * Only the first `authorization` entry counts. Constant time in the token's content. Pure. */
enum cp_auth cp_auth_check(const struct sb_secret *keys, const grpc_metadata_array *md);

/* Fills *md with `authorization: Bearer <first key of keys>` and returns 1, or returns 0 when
 * `keys` is NULL. The slices are new: release them with cp_auth_md_release. */
int cp_auth_md(const struct sb_secret *keys, grpc_metadata *md);

/* Releases what cp_auth_md made (a zeroed *md is fine). */
void cp_auth_md_release(grpc_metadata *md);

#endif
