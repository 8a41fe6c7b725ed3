/* Log-linear histogram: values below 64 get one bucket each, above that each power of two is split
 * into 32 equal sub-buckets, so a bucket's width is at most 1/32 of its lower bound. */
#include "bench_hist.h"

#include <string.h>

static unsigned index_of(uint64_t v)
{
    if (v < 64)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* 6..63 */
    if (e > 62)
        return BENCH_HIST_BUCKETS - 1;
    unsigned sub = (unsigned)(v >> (e - BENCH_HIST_SUB_BITS)) & 31u;
    return 64u + (e - 6u) * 32u + sub;
}

/* Largest value that falls into bucket i. */
static uint64_t upper_of(unsigned i)
{
    if (i < 64)
        return i;
    unsigned e = 6u + (i - 64u) / 32u;
    unsigned sub = (i - 64u) % 32u;
    uint64_t width = 1ull << (e - BENCH_HIST_SUB_BITS);
    return (1ull << e) + (uint64_t)(sub + 1u) * width - 1u;
}

void bench_hist_init(struct bench_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

void bench_hist_record(struct bench_hist *h, int64_t v)
{
    uint64_t u = v < 0 ? 0 : (uint64_t)v;
    h->buckets[index_of(u)]++;
    h->count++;
    h->sum += (long double)u;
    if (u < h->min)
        h->min = u;
    if (u > h->max)
        h->max = u;
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->count && src->min < dst->min)
        dst->min = src->min;
    if (src->count && src->max > dst->max)
        dst->max = src->max;
}

uint64_t bench_hist_quantile(const struct bench_hist *h, double q)
{
    if (!h->count)
        return 0;
    if (q <= 0)
        return h->min;
    if (q > 1)
        q = 1;
    /* rank of the sample we want, 1-based: the smallest value with at least q of samples <= it */
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t up = upper_of(i);
            if (up > h->max)
                up = h->max;
            if (up < h->min)
                up = h->min;
            return up;
        }
    }
    return h->max;
}

double bench_hist_mean(const struct bench_hist *h)
{
    return h->count ? (double)(h->sum / (long double)h->count) : 0.0;
}
