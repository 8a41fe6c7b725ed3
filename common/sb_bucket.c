/* Token bucket in milli-tokens: `rate` tokens per second is `rate` milli-tokens per ms. */
#include "sb_bucket.h"

#include <stddef.h>

bool sb_bucket_take(struct sb_bucket *b, int64_t rate, int64_t burst, int64_t now_ms,
                    int64_t *retry_ms)
{
    if (rate <= 0)
        return true;
    if (burst < 1)
        burst = 1;
    const int64_t cap = burst * 1000;
    if (!b->primed) {
        b->primed = true;
        b->milli = cap;
        b->last_ms = now_ms;
    }
    int64_t elapsed = now_ms - b->last_ms;
    if (elapsed > 0) {
        /* Clamp before multiplying: a long pause only ever fills the bucket. */
        int64_t full_after = (cap - b->milli) / rate + 1;
        if (elapsed > full_after)
            elapsed = full_after;
        b->milli += elapsed * rate;
        if (b->milli > cap)
            b->milli = cap;
        b->last_ms = now_ms;
    }
    /* elapsed <= 0 (same ms, or a clock going back): no refill, last_ms kept. */
    if (b->milli >= 1000) {
        b->milli -= 1000;
        return true;
    }
    if (retry_ms != NULL)
        *retry_ms = (1000 - b->milli + rate - 1) / rate;
    return false;
}
