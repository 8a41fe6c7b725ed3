/* Command-line, environment and YAML config-file options for both daemons.
 * Precedence: flags > SWITCHBOARD_* environment > --config FILE > compiled-in defaults. */
#ifndef SB_CONFIG_H
#define SB_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum sb_config_type {
    SB_CONFIG_STRING, /* char * (heap, owned by the table; freed by sb_config_fini) */
    SB_CONFIG_INT,    /* int64_t; decimal */
    SB_CONFIG_BOOL,   /* int; flag without value sets 1; values true/false/1/0/yes/no/on/off */
};

/* One option. `name` is the file key and, with '_' turned into '-', the long flag
 * ("max_frame_size" -> --max-frame-size); the environment variable is SWITCHBOARD_ + upper-case
 * name (SWITCHBOARD_MAX_FRAME_SIZE). `dest` points at the caller's storage of the right type. */
struct sb_config_opt {
    const char *name;
    enum sb_config_type type;
    void *dest;
    const char *def; /* default as text (NULL: empty string / 0 / false) */
    const char *help;
    int64_t min, max; /* bounds for SB_CONFIG_INT (ignored when min == max == 0) */
    int flags;        /* SB_CONFIG_SECRET | SB_CONFIG_LIST (0: none) */
};

/* flags: */
#define SB_CONFIG_SECRET 1 /* shown as "<redacted>" when the configuration is logged or printed */
#define SB_CONFIG_LIST   2 /* SB_CONFIG_STRING: the file may give a YAML sequence (joined by ',') */
#define SB_CONFIG_DURATION                                                                         \
    4 /* SB_CONFIG_INT named without _ms: a duration stored in ms, a plain number in seconds       \
         (--jwt-leeway 5 is five seconds) */

enum sb_config_result {
    SB_CONFIG_RUN = 0, /* options loaded: go on */
    SB_CONFIG_EXIT_OK, /* --help or --version was printed: exit 0 */
    SB_CONFIG_EXIT_ERR /* a bad flag, value, env var or file line: a message went to stderr; exit 2
                        */
};

/* Loads every option of `opts` (n entries) from defaults, then the YAML file named by --config
 * (or SWITCHBOARD_CONFIG), then the environment, then argv. The file is one YAML mapping of
 * option names to values; nested mappings are flattened with '_' (`etcd: {endpoints: X}` is
 * etcd_endpoints); a `list` option also takes a sequence. A few other spellings are accepted
 * in the file (docs/configuration.md): NAME for an option NAME_ms (a duration, plain numbers
 * in seconds) and the seed names max_typing_users_per_room, rate_limit.requests_per_second,
 * rate_limit.burst_size. SB_CONFIG_INT options whose name ends in _ms accept durations
 * everywhere ("250ms", "30s", "5m", "720h", "1d", "1h30m"; a plain number is ms). An unknown
 * key, a key given twice or a bad value is an error naming FILE:LINE. `prog` and `summary`
 * head the --help text. Main thread, at start; may print to stdout (help/version) and stderr
 * (errors). */
enum sb_config_result sb_config_load(const struct sb_config_opt *opts, size_t n, const char *prog,
                                     const char *summary, int argc, char **argv);

/* True when the last sb_config_load saw --check-config (or SWITCHBOARD_CHECK_CONFIG=true): the
 * daemon validates everything, prints the effective configuration with sb_config_print and
 * exits 0 without starting (or exits 2 on the first error). */
int sb_config_check_only(void);

/* Writes the effective configuration as `name=value` pairs separated by `sep` into buf (cap
 * bytes, always NUL-terminated; truncated if short). Secrets appear as "<redacted>", strings
 * quoted. Returns the length it needed (like snprintf). Pure. */
size_t sb_config_format(const struct sb_config_opt *opts, size_t n, const char *sep, char *buf,
                        size_t cap);

/* Prints the effective configuration to `f`, one `name: value` YAML line per option (a file
 * --config accepts back, secrets redacted). */
void sb_config_print(const struct sb_config_opt *opts, size_t n, FILE *f);

/* Logs the effective configuration as one info line (secrets shown as "<redacted>"). */
void sb_config_log(const struct sb_config_opt *opts, size_t n, const char *module);

/* Frees the strings sb_config_load allocated into the SB_CONFIG_STRING destinations. */
void sb_config_fini(const struct sb_config_opt *opts, size_t n);

#endif
