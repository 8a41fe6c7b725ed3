/* Structured logging: one logfmt line per event on stderr.
 * Example: ts=2026-11-30T03:04:05.678Z level=info module=dp msg="listening" addr=127.0.0.1:8080 */
#ifndef SB_LOG_H
#define SB_LOG_H

enum sb_log_level {
    SB_LOG_DEBUG = 0,
    SB_LOG_INFO,
    SB_LOG_WARN,
    SB_LOG_ERROR,
};

/* Sets the lowest level written (default SB_LOG_INFO). Call before threads start. */
void sb_log_set_level(enum sb_log_level level);

/* Parses "debug", "info", "warn" or "error". Returns 0 on success, -1 otherwise. Pure. */
int sb_log_parse_level(const char *s, enum sb_log_level *out);

/* True if `level` would be written; guards expensive argument preparation. Any thread. */
int sb_log_enabled(enum sb_log_level level);

/* Writes one line: ts, level, module, msg (quoted), then `fmt` expanded verbatim as further
 * logfmt pairs (the caller writes `key=value key2="quoted value"`; may be NULL). Any thread;
 * each line is one write(2), so lines from threads never interleave. Never logs bodies/tokens:
 * that is the caller's duty. */
void sb_log(enum sb_log_level level, const char *module, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define SB_LOG_DEBUG(mod, msg, ...) sb_log(SB_LOG_DEBUG, mod, msg, __VA_ARGS__)
#define SB_LOG_INFO(mod, msg, ...)  sb_log(SB_LOG_INFO, mod, msg, __VA_ARGS__)
#define SB_LOG_WARN(mod, msg, ...)  sb_log(SB_LOG_WARN, mod, msg, __VA_ARGS__)
#define SB_LOG_ERROR(mod, msg, ...) sb_log(SB_LOG_ERROR, mod, msg, __VA_ARGS__)

#endif
