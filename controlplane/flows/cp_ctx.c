/* Lifetime of the shared state, and the timers the composition root registers. */
#include "cp_ctx.h"

#include <stdlib.h>
#include <string.h>

enum sb_err cp_ctx_init(struct cp_ctx *c, const struct cp_settings *set, struct cp_store *store)
{
    memset(c, 0, sizeof(*c));
    c->set = *set;
    c->store = store;
    c->cluster = cp_cluster_single();
    sb_id_new("cp", c->id);
    cp_presence_init(&c->presence);
    cp_typers_init(&c->typing, set->typing_timeout_ms);
    sb_map_init(&c->nodes);
    cp_fanout_init(&c->fan, &c->presence, &c->nodes);
    return SB_OK;
}

void cp_ctx_fini(struct cp_ctx *c)
{
    cp_fanout_fini(&c->fan);
    cp_typers_fini(&c->typing);
    cp_presence_fini(&c->presence);
    sb_map_fini(&c->nodes);
    if (c->store != NULL)
        c->store->ops->destroy(c->store);
    c->store = NULL;
}

enum sb_err cp_ctx_add_timer(struct cp_ctx *c, cp_timer_fn *tick, cp_deadline_fn *next, void *ud)
{
    if (c->n_timers >= CP_TIMERS_MAX)
        return SB_EFULL;
    c->timers[c->n_timers].tick = tick;
    c->timers[c->n_timers].next = next;
    c->timers[c->n_timers].ud = ud;
    c->n_timers++;
    return SB_OK;
}

void cp_ctx_tick(struct cp_ctx *c, int64_t mono_ms)
{
    for (size_t i = 0; i < c->n_timers; i++)
        c->timers[i].tick(c->timers[i].ud, mono_ms);
}

int64_t cp_ctx_next_deadline(const struct cp_ctx *c)
{
    int64_t a = 0;
    for (size_t i = 0; i < c->n_timers; i++) {
        int64_t d = c->timers[i].next != NULL ? c->timers[i].next(c->timers[i].ud) : 0;
        if (d != 0 && (a == 0 || d < a))
            a = d;
    }
    return a;
}
