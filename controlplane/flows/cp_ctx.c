/* Lifetime of the shared state and the timer tick. */
#include "cp_ctx.h"

#include <stdlib.h>
#include <string.h>

#include "cp_channels.h"
#include "cp_peer.h"
#include "cp_retention.h"
#include "cp_store_etcd.h"
#include "cp_users.h"

enum sb_err cp_ctx_init(struct cp_ctx *c, const struct cp_settings *set, struct cp_store *store)
{
    memset(c, 0, sizeof(*c));
    c->set = *set;
    c->store = store;
    sb_id_new("cp", c->id);
    cp_presence_init(&c->presence);
    cp_typing_init(&c->typing, set->typing_timeout_ms);
    sb_map_init(&c->nodes);
    sb_map_init(&c->idem);
    return SB_OK;
}

void cp_ctx_fini(struct cp_ctx *c)
{
    cp_idem_fini(c);
    cp_fanout_cache_fini(c);
    cp_channels_fini(c);
    cp_typing_fini(&c->typing);
    cp_presence_fini(&c->presence);
    sb_map_fini(&c->nodes);
    if (c->store != NULL)
        c->store->ops->destroy(c->store);
    c->store = NULL;
}

void cp_ctx_tick(struct cp_ctx *c, int64_t mono_ms)
{
    cp_users_tick(c, mono_ms);
    cp_retention_tick(c, mono_ms);
    if (c->distributed && c->store != NULL) {
        cp_store_etcd_tick(c->store, mono_ms);
        cp_peer_tick(c, mono_ms);
    }
}

int64_t cp_ctx_next_deadline(const struct cp_ctx *c)
{
    int64_t a = cp_typing_next_deadline(&c->typing);
    int64_t b = cp_presence_next_deadline(&c->presence);
    int64_t r = cp_retention_next_deadline(c);
    if (a == 0 || (b != 0 && b < a))
        a = b;
    if (a == 0 || (r != 0 && r < a))
        a = r;
    return a;
}
