/* The authorization metadata of gRPC calls: one check for every credential the control plane
 * takes (docs/security.md, "The gRPC port"). */
#include "cp_auth.h"

#include <stdlib.h>
#include <string.h>

#include <grpc/slice.h>

enum cp_auth cp_auth_check(const struct sb_secret *keys, const grpc_metadata_array *md)
{
    if (keys == NULL)
        return CP_AUTH_OK;
    for (size_t i = 0; i < md->count; i++) {
        const grpc_metadata *m = &md->metadata[i];
        if (grpc_slice_str_cmp(m->key, "authorization") != 0)
            continue;
        const char *tok = NULL;
        size_t n = 0;
        if (!sb_secret_bearer((const char *)GRPC_SLICE_START_PTR(m->value),
                              GRPC_SLICE_LENGTH(m->value), &tok, &n))
            return CP_AUTH_INVALID;
        return sb_secret_match(keys, tok, n) ? CP_AUTH_OK : CP_AUTH_INVALID;
    }
    return CP_AUTH_MISSING;
}

int cp_auth_md(const struct sb_secret *keys, grpc_metadata *md)
{
    memset(md, 0, sizeof(*md));
    if (keys == NULL)
        return 0;
    size_t n = 0;
    const char *k = sb_secret_first(keys, &n);
    md->key = grpc_slice_from_static_string("authorization");
    md->value = grpc_slice_malloc(7 + n);
    memcpy(GRPC_SLICE_START_PTR(md->value), "Bearer ", 7);
    memcpy(GRPC_SLICE_START_PTR(md->value) + 7, k, n);
    return 1;
}

void cp_auth_md_release(grpc_metadata *md)
{
    grpc_slice_unref(md->key);
    grpc_slice_unref(md->value);
    memset(md, 0, sizeof(*md));
}
