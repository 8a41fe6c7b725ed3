/* /proc readers: VmRSS from status, utime+stime from stat. The comm field of stat may hold spaces
 * and parentheses, so parsing starts after the last ')'. */
#include "bench_proc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int bench_proc_rss_kib(pid_t pid, uint64_t *kib)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int rc = -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            char *end;
            unsigned long long v = strtoull(line + 6, &end, 10);
            if (end != line + 6) {
                *kib = v;
                rc = 0;
            }
            break;
        }
    }
    fclose(f);
    return rc;
}

int bench_proc_parse_stat(const char *line, uint64_t *ticks)
{
    const char *p = strrchr(line, ')');
    if (!p)
        return -1;
    p++;
    /* after comm: field 3 (state) ... utime is field 14, stime field 15 */
    unsigned long long ut = 0, st = 0;
    int field = 2;
    while (*p && field < 15) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        field++;
        if (field == 14 || field == 15) {
            char *end;
            unsigned long long v = strtoull(p, &end, 10);
            if (end == p)
                return -1;
            if (field == 14)
                ut = v;
            else
                st = v;
            p = end;
        } else {
            while (*p && *p != ' ')
                p++;
        }
    }
    if (field != 15)
        return -1;
    *ticks = ut + st;
    return 0;
}

int bench_proc_cpu_ticks(pid_t pid, uint64_t *ticks)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int rc = -1;
    if (fgets(line, sizeof(line), f))
        rc = bench_proc_parse_stat(line, ticks);
    fclose(f);
    return rc;
}

long bench_proc_ticks_per_sec(void)
{
    long t = sysconf(_SC_CLK_TCK);
    return t > 0 ? t : 100;
}
