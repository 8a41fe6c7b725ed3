/* Ring buffer of messages by seq. Seqs are gap-free and increasing, so position i holds
 * seq (oldest + i) and the seq bounds become index bounds found by binary search. */
#include "cp_history.h"

#include <stdlib.h>
#include <string.h>

void cp_history_init(struct cp_history *h)
{
    memset(h, 0, sizeof(*h));
}

const struct cp_message *cp_history_at(const struct cp_history *h, size_t i)
{
    return h->ring[(h->head + i) % h->cap];
}

void cp_history_fini(struct cp_history *h)
{
    for (size_t i = 0; i < h->count; i++)
        cp_message_free((struct cp_message *)cp_history_at(h, i));
    free(h->ring);
    cp_history_init(h);
}

int64_t cp_history_next_seq(const struct cp_history *h)
{
    return h->last_seq + 1;
}

static enum sb_err grow(struct cp_history *h, size_t max)
{
    size_t cap = h->cap ? h->cap * 2 : 16;
    if (cap > max)
        cap = max;
    struct cp_message **ring = malloc(cap * sizeof(*ring));
    if (ring == NULL)
        return SB_ENOMEM;
    for (size_t i = 0; i < h->count; i++)
        ring[i] = (struct cp_message *)cp_history_at(h, i);
    free(h->ring);
    h->ring = ring;
    h->cap = cap;
    h->head = 0;
    return SB_OK;
}

enum sb_err cp_history_append(struct cp_history *h, struct cp_message *msg, size_t max)
{
    if (max == 0) {
        h->last_seq = msg->seq;
        cp_message_free(msg);
        /* Drop anything kept under an earlier, larger max. */
        while (h->count > 0) {
            cp_message_free(h->ring[h->head]);
            h->head = (h->head + 1) % h->cap;
            h->count--;
        }
        return SB_OK;
    }
    while (h->count > max - 1 && h->count > 0) {
        cp_message_free(h->ring[h->head]);
        h->head = (h->head + 1) % h->cap;
        h->count--;
    }
    if (h->count == h->cap && grow(h, max) != SB_OK)
        return SB_ENOMEM;
    h->ring[(h->head + h->count) % h->cap] = msg;
    h->count++;
    h->last_seq = msg->seq;
    return SB_OK;
}

/* First position whose seq is > seq (count when none). */
static size_t upper_bound(const struct cp_history *h, int64_t seq)
{
    size_t lo = 0, hi = h->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp_history_at(h, mid)->seq <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool matches(const struct cp_message *m, const struct cp_history_query *q)
{
    if (q->before_time != 0 && m->timestamp >= q->before_time)
        return false;
    if (q->after_time != 0 && m->timestamp <= q->after_time)
        return false;
    if (q->thread_id != NULL && q->thread_id[0] != '\0' &&
        (m->thread_id == NULL || strcmp(m->thread_id, q->thread_id) != 0))
        return false;
    return true;
}

enum sb_err cp_history_query(const struct cp_history *h, const struct cp_history_query *q,
                             const struct cp_message ***out, size_t *n, bool *gap)
{
    size_t lo = 0, hi = h->count;
    if (q->has_after_seq)
        lo = upper_bound(h, q->after_seq);
    if (q->has_before_seq) {
        size_t b = q->before_seq <= 0 ? 0 : upper_bound(h, q->before_seq - 1);
        if (b < hi)
            hi = b;
    }
    bool g = false;
    if (q->has_after_seq && h->last_seq > q->after_seq) {
        int64_t oldest = h->count > 0 ? cp_history_at(h, 0)->seq : h->last_seq + 1;
        g = oldest > q->after_seq + 1;
    }
    /* `after` alone reads upwards from the bound; everything else takes the newest. */
    bool upward =
        (q->has_after_seq || q->after_time != 0) && !(q->has_before_seq || q->before_time != 0);
    size_t limit = q->limit > 0 ? (size_t)q->limit : 0;
    const struct cp_message **res = NULL;
    size_t got = 0;
    if (lo < hi && limit > 0) {
        size_t span = hi - lo;
        res = malloc((span < limit ? span : limit) * sizeof(*res));
        if (res == NULL)
            return SB_ENOMEM;
        if (upward) {
            for (size_t i = lo; i < hi && got < limit; i++) {
                const struct cp_message *m = cp_history_at(h, i);
                if (matches(m, q))
                    res[got++] = m;
            }
        } else {
            for (size_t i = hi; i > lo && got < limit; i--) {
                const struct cp_message *m = cp_history_at(h, i - 1);
                if (matches(m, q))
                    res[got++] = m;
            }
            for (size_t i = 0; i < got / 2; i++) {
                const struct cp_message *t = res[i];
                res[i] = res[got - 1 - i];
                res[got - 1 - i] = t;
            }
        }
        if (got == 0) {
            free(res);
            res = NULL;
        }
    }
    *out = res;
    *n = got;
    *gap = g;
    return SB_OK;
}

size_t cp_history_find(const struct cp_history *h, const char *id)
{
    for (size_t i = h->count; i > 0; i--) {
        const struct cp_message *m = cp_history_at(h, i - 1);
        if (m->id != NULL && strcmp(m->id, id) == 0)
            return i - 1;
    }
    return h->count;
}

void cp_history_replace(struct cp_history *h, size_t i, struct cp_message *msg)
{
    size_t slot = (h->head + i) % h->cap;
    cp_message_free(h->ring[slot]);
    h->ring[slot] = msg;
}

size_t cp_history_trim_before(struct cp_history *h, int64_t before_time)
{
    size_t n = 0;
    while (h->count > 0 && h->ring[h->head]->timestamp < before_time) {
        cp_message_free(h->ring[h->head]);
        h->head = (h->head + 1) % h->cap;
        h->count--;
        n++;
    }
    return n;
}
