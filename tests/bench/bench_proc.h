/* Reads another process's resident memory and CPU time from /proc, for the load client's report
 * of what the servers under test cost. Linux only; any thread; never blocks beyond a file read. */
#ifndef BENCH_PROC_H
#define BENCH_PROC_H

#include <stdint.h>
#include <sys/types.h>

/* VmRSS of `pid` in KiB into *kib. 0 on success, -1 if the process or the field is missing. */
int bench_proc_rss_kib(pid_t pid, uint64_t *kib);

/* utime + stime of `pid` (all threads) in clock ticks into *ticks. 0 on success, -1 on error. */
int bench_proc_cpu_ticks(pid_t pid, uint64_t *ticks);

/* Clock ticks per second (sysconf(_SC_CLK_TCK)). */
long bench_proc_ticks_per_sec(void);

/* Parses the utime+stime fields out of one /proc/<pid>/stat line (pure, for tests).
 * 0 on success, -1 if the line is malformed. */
int bench_proc_parse_stat(const char *line, uint64_t *ticks);

#endif
