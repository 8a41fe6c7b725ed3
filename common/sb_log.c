/* logfmt writer. The level is read with relaxed atomics so any thread may log without a lock;
 * each line is assembled in a stack buffer and written with one write(2). */
#include "sb_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sb_time.h"

static _Atomic int min_level = SB_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void sb_log_set_level(enum sb_log_level level)
{
    atomic_store_explicit(&min_level, (int)level, memory_order_relaxed);
}

int sb_log_parse_level(const char *s, enum sb_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (s != NULL && strcmp(s, level_names[i]) == 0) {
            *out = (enum sb_log_level)i;
            return 0;
        }
    }
    return -1;
}

int sb_log_enabled(enum sb_log_level level)
{
    return (int)level >= atomic_load_explicit(&min_level, memory_order_relaxed);
}

void sb_log(enum sb_log_level level, const char *module, const char *msg, const char *fmt, ...)
{
    if (!sb_log_enabled(level))
        return;
    char line[2048];
    char ts[SB_TIME_RFC3339_LEN];
    sb_time_format_rfc3339(sb_time_now_ms(), ts, sizeof(ts));
    int lvl = (int)level;
    if (lvl < 0 || lvl > 3)
        lvl = 3;
    int n = snprintf(line, sizeof(line), "ts=%s level=%s module=%s msg=\"", ts, level_names[lvl],
                     module);
    if (n < 0)
        return;
    size_t len = (size_t)n;
    /* Quote the message: escape quotes and backslashes, drop control characters. */
    for (const char *p = msg; p != NULL && *p != '\0' && len < sizeof(line) - 4; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\')
            line[len++] = '\\';
        line[len++] = c < 0x20 ? ' ' : (char)c;
    }
    line[len++] = '"';
    if (fmt != NULL && fmt[0] != '\0' && len < sizeof(line) - 2) {
        line[len++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
        va_end(ap);
        if (m > 0)
            len += (size_t)m < sizeof(line) - len - 1 ? (size_t)m : sizeof(line) - len - 2;
    }
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
