/* Grants: copied out of the NodeLink message (which is freed after the item is handled), with
 * every bound checked again. */
#include "cp_grants.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_strv.h"

void cp_grants_free(struct cp_grants *g)
{
    if (g == NULL)
        return;
    free(g->info);
    sb_strv_free(g->channels, g->n_channels);
    sb_strv_free(g->rooms, g->n_rooms);
    free(g);
}

static enum sb_err copy_list(char *const *in, size_t n, const char *what, char ***out,
                             size_t *n_out, char *why, size_t cap)
{
    if (n > CP_GRANTS_MAX_LIST) {
        snprintf(why, cap, "grants: more than %d %s", CP_GRANTS_MAX_LIST, what);
        return SB_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = in[i] != NULL ? strlen(in[i]) : 0;
        if (len == 0 || len > CP_GRANTS_MAX_ENTRY) {
            snprintf(why, cap, "grants: a %s entry is empty or longer than %d bytes", what,
                     CP_GRANTS_MAX_ENTRY);
            return SB_EINVAL;
        }
    }
    enum sb_err e = sb_strv_dup(in, n, out);
    if (e == SB_OK)
        *n_out = n;
    return e;
}

static bool is_object(const uint8_t *data, size_t len)
{
    json_t *v = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, NULL);
    bool ok = json_is_object(v);
    json_decref(v);
    return ok;
}

enum sb_err cp_grants_from_pb(const Switchboard__Internal__V1__Grants *g, struct cp_grants **out,
                              char *why, size_t cap)
{
    struct cp_grants *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return SB_ENOMEM;
    enum sb_err e = SB_OK;
    if (g->info.len > 0) {
        if (g->info.len > CP_GRANTS_MAX_INFO || !is_object(g->info.data, g->info.len)) {
            snprintf(why, cap, "grants: info must be a JSON object of at most %d bytes",
                     CP_GRANTS_MAX_INFO);
            e = SB_EINVAL;
            goto out;
        }
        /* bytes, not a C string: no strndup (it may read one past the end looking for NUL) */
        r->info = malloc(g->info.len + 1);
        if (r->info == NULL) {
            e = SB_ENOMEM;
            goto out;
        }
        memcpy(r->info, g->info.data, g->info.len);
        r->info[g->info.len] = '\0';
    }
    if ((e = copy_list(g->channels, g->n_channels, "channels", &r->channels, &r->n_channels, why,
                       cap)) != SB_OK ||
        (e = copy_list(g->rooms, g->n_rooms, "rooms", &r->rooms, &r->n_rooms, why, cap)) != SB_OK)
        goto out;
    r->expires_at = g->expires_at;
    *out = r;
    r = NULL;
out:
    cp_grants_free(r);
    return e;
}

enum sb_err cp_grants_put(struct sb_map *table, const char *conn_id, struct cp_grants *g)
{
    cp_grants_free(sb_map_remove(table, conn_id));
    return sb_map_put(table, conn_id, g);
}

const struct cp_grants *cp_grants_get(const struct sb_map *table, const char *conn_id)
{
    return sb_map_get(table, conn_id);
}

void cp_grants_remove(struct sb_map *table, const char *conn_id)
{
    cp_grants_free(sb_map_remove(table, conn_id));
}

void cp_grants_clear(struct sb_map *table)
{
    struct sb_map_iter it = {0};
    void *v;
    while (sb_map_next(table, &it, NULL, &v))
        cp_grants_free(v);
    sb_map_fini(table);
}
