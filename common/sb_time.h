/* Clocks and timestamps: monotonic time for timers, wall time for frames and the API. */
#ifndef SB_TIME_H
#define SB_TIME_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic milliseconds (CLOCK_MONOTONIC); for timeouts and expiry. Any thread. */
int64_t sb_time_mono_ms(void);

/* Monotonic nanoseconds; for latency measurement. Any thread. */
int64_t sb_time_mono_ns(void);

/* Wall-clock Unix milliseconds (CLOCK_REALTIME); for timestamps. Any thread. */
int64_t sb_time_now_ms(void);

/* Writes `unix_ms` as RFC 3339 UTC with milliseconds ("2026-11-30T03:04:05.678Z") into `out`
 * (at least SB_TIME_RFC3339_LEN bytes). Returns the length written, without the NUL. Pure. */
#define SB_TIME_RFC3339_LEN 32
size_t sb_time_format_rfc3339(int64_t unix_ms, char *out, size_t out_len);

#endif
