/* Command-line, environment and config-file options for both daemons.
 * Precedence: flags > SWITCHBOARD_* environment > --config FILE > compiled-in defaults. */
#ifndef SB_CONFIG_H
#define SB_CONFIG_H

#include <stddef.h>
#include <stdint.h>

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
    int secret;       /* redacted when the effective configuration is logged */
};

enum sb_config_result {
    SB_CONFIG_RUN = 0, /* options loaded: go on */
    SB_CONFIG_EXIT_OK, /* --help or --version was printed: exit 0 */
    SB_CONFIG_EXIT_ERR /* a bad flag, value, env var or file line: a message went to stderr; exit 2
                        */
};

/* Loads every option of `opts` (n entries) from defaults, then the file named by --config (or
 * SWITCHBOARD_CONFIG), then the environment, then argv. The file holds flat `key: value` lines
 * (a YAML subset: '#' comments, blank lines, optional quotes); an unknown key or a bad value is
 * an error naming FILE:LINE. `prog` and `summary` head the --help text. Main thread, at start;
 * may print to stdout (help/version) and stderr (errors). */
enum sb_config_result sb_config_load(const struct sb_config_opt *opts, size_t n, const char *prog,
                                     const char *summary, int argc, char **argv);

/* Logs the effective configuration as one info line (secrets shown as "<redacted>"). */
void sb_config_log(const struct sb_config_opt *opts, size_t n, const char *module);

/* Frees the strings sb_config_load allocated into the SB_CONFIG_STRING destinations. */
void sb_config_fini(const struct sb_config_opt *opts, size_t n);

#endif
