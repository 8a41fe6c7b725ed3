/* Clock reads and RFC 3339 formatting.
 * Formatting uses gmtime_r only, so it is safe on any thread. */
#include "sb_time.h"

#include <stdio.h>
#include <time.h>

static int64_t read_clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t sb_time_mono_ms(void)
{
    return read_clock_ns(CLOCK_MONOTONIC) / 1000000LL;
}

int64_t sb_time_mono_ns(void)
{
    return read_clock_ns(CLOCK_MONOTONIC);
}

int64_t sb_time_now_ms(void)
{
    return read_clock_ns(CLOCK_REALTIME) / 1000000LL;
}

size_t sb_time_format_rfc3339(int64_t unix_ms, char *out, size_t out_len)
{
    if (out == NULL || out_len == 0)
        return 0;
    int64_t secs = unix_ms / 1000;
    int ms = (int)(unix_ms % 1000);
    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        out[0] = '\0';
        return 0;
    }
    int n = snprintf(out, out_len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    if (n < 0 || (size_t)n >= out_len) {
        out[0] = '\0';
        return 0;
    }
    return (size_t)n;
}
