/* Deliveries to local sessions: the frame is copied once into a dp_buf and every target's
 * outbox gets a reference. A generation mark on each session serves it at most once per
 * delivery; the excluded users' sessions are marked before the walk. */
#include "dp_delivery.h"

#include <stdlib.h>

#include "dp_buf.h"
#include "dp_metrics.h"
#include "dp_router.h"
#include "dp_session.h"
#include "sb_log.h"
#include "sb_map.h"

#define MOD "dp_delivery"

struct dp_delivery {
    struct dp_router *router;
    struct sb_map *sessions;
    uint64_t gen;       /* of the delivery being fanned out: sessions marked with it are served */
    uint64_t delivered; /* references queued */
};

struct fan {
    struct dp_delivery *dl;
    const Switchboard__Internal__V1__Delivery *d;
    struct dp_buf *b;
};

static void mark_served(struct dp_session *s, void *arg)
{
    s->mark = ((struct dp_delivery *)arg)->gen;
}

static void fan_one(struct dp_session *s, void *arg)
{
    struct fan *f = arg;
    if (s->mark == f->dl->gen || s->state != DP_SESSION_OPEN)
        return;
    s->mark = f->dl->gen;
    if (dp_session_push(s, f->b) == SB_OK) {
        dp_metrics.delivery_targets_total++;
        f->dl->delivered++;
    } else if (s->policy == DP_OVERFLOW_DROP) {
        dp_metrics.outbox_dropped_total++;
    }
}

void dp_delivery_fan_out(struct dp_delivery *dl, const Switchboard__Internal__V1__Delivery *d)
{
    dp_metrics.deliveries_total++;
    bool room_msg = d->room_id[0] != '\0' && d->seq > 0;
    if (room_msg && !dp_router_seq_is_new(dl->router, d->room_id, d->seq)) {
        dp_metrics.deliveries_duplicate_total++;
        SB_LOG_DEBUG(MOD, "duplicate room delivery dropped", "room=%s seq=%lld", d->room_id,
                     (long long)d->seq);
        return;
    }
    struct dp_buf *b = dp_buf_create((const char *)d->frame.data, d->frame.len,
                                     room_msg ? d->room_id : NULL, room_msg ? d->seq : 0);
    if (b == NULL) {
        SB_LOG_ERROR(MOD, "out of memory framing a delivery", NULL);
        return;
    }
    b->channel = d->channel_id[0] != '\0';
    struct fan f = {dl, d, b};
    dl->gen++;
    /* The excluded users' sessions are marked as already served: one lookup per excluded user
     * instead of a string compare per member (a cache miss on every session's user id). */
    for (size_t i = 0; i < d->n_exclude_user_ids; i++)
        dp_router_visit_user(dl->router, d->exclude_user_ids[i], mark_served, dl);
    if (d->room_id[0] != '\0') {
        dp_router_visit_room(dl->router, d->room_id, fan_one, &f);
    } else if (d->n_room_ids > 0) {
        /* presence: the members of the subject's rooms, each connection once (marks) */
        for (size_t i = 0; i < d->n_room_ids; i++)
            dp_router_visit_room(dl->router, d->room_ids[i], fan_one, &f);
    } else if (d->channel_id[0] != '\0' && d->n_user_ids == 0) {
        dp_router_visit_channel(dl->router, d->channel_id, fan_one, &f);
    } else if (d->n_user_ids > 0) {
        /* Direct messages, and channel messages for the subscribers whose filter matched. */
        for (size_t i = 0; i < d->n_user_ids; i++)
            dp_router_visit_user(dl->router, d->user_ids[i], fan_one, &f);
    } else if (d->n_connection_ids > 0) {
        for (size_t i = 0; i < d->n_connection_ids; i++) {
            struct dp_session *s = sb_map_get(dl->sessions, d->connection_ids[i]);
            if (s != NULL)
                fan_one(s, &f);
        }
    } else if (d->everyone) {
        struct sb_map_iter it = {0};
        void *v;
        while (sb_map_next(dl->sessions, &it, NULL, &v))
            fan_one(v, &f);
    }
    dp_buf_unref(b);
}

uint64_t dp_delivery_count(const struct dp_delivery *dl)
{
    return dl->delivered;
}

struct dp_delivery *dp_delivery_create(struct dp_router *router, struct sb_map *sessions)
{
    struct dp_delivery *dl = malloc(sizeof(*dl));
    if (dl != NULL)
        *dl = (struct dp_delivery){.router = router, .sessions = sessions};
    return dl;
}

void dp_delivery_destroy(struct dp_delivery *dl)
{
    free(dl);
}
