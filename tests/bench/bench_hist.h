/* Fixed-size log-linear histogram of non-negative 64-bit values (latencies in ns) for the load
 * client: ~3% relative precision, no allocation after init, O(1) record. */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

/* 32 sub-buckets per power of two above 64; values up to 2^62 fit. */
#define BENCH_HIST_SUB_BITS 5
#define BENCH_HIST_BUCKETS  (64 + (62 - 6 + 1) * 32)

struct bench_hist {
    uint64_t count;
    uint64_t min, max;
    long double sum; /* for the mean; long double keeps ns sums exact enough over 1e9 samples */
    uint64_t buckets[BENCH_HIST_BUCKETS];
};

/* Resets `h` (caller's storage). Any thread that owns `h`. */
void bench_hist_init(struct bench_hist *h);

/* Records one value; negative values are clamped to 0. */
void bench_hist_record(struct bench_hist *h, int64_t v);

/* Adds every sample of `src` (borrowed) into `dst`. */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);

/* Value at quantile q in [0,1]: the upper bound of the bucket holding it, clamped to [min,max]
 * (q <= 0 gives min); 0 when empty. Pure. */
uint64_t bench_hist_quantile(const struct bench_hist *h, double q);

/* Mean of the recorded values; 0 when empty. */
double bench_hist_mean(const struct bench_hist *h);

#endif
