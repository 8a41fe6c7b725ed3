/* Option loading for both daemons: defaults, then a YAML file (libyaml's event parser, so
 * every error names its line), then SWITCHBOARD_* environment variables, then command-line
 * flags; each later source overrides the earlier. */
#include "sb_config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "sb_log.h"

#define MAX_OPTS  128
#define MAX_KEY   256
#define MAX_DEPTH 8

static int check_only;

/* ---------------------------------------------------------------- values */

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Parses a duration: one or more <integer><unit> parts (ms, s, m, h, d), or a plain integer
 * counted in `plain_ms` milliseconds. Returns 0 and *out, or -1. */
static int parse_duration(const char *text, int64_t plain_ms, int64_t *out)
{
    const char *p = text;
    int64_t total = 0;
    bool any = false;
    while (*p != '\0') {
        if (!isdigit((unsigned char)*p))
            return -1;
        errno = 0;
        char *end = NULL;
        long long v = strtoll(p, &end, 10);
        if (errno != 0)
            return -1;
        int64_t unit;
        if (*end == '\0' && !any) {
            unit = plain_ms;
        } else if (strncmp(end, "ms", 2) == 0) {
            unit = 1, end += 2;
        } else if (*end == 's') {
            unit = 1000, end += 1;
        } else if (*end == 'm') {
            unit = 60000, end += 1;
        } else if (*end == 'h') {
            unit = 3600000, end += 1;
        } else if (*end == 'd') {
            unit = 86400000, end += 1;
        } else {
            return -1;
        }
        if (v > INT64_MAX / unit || total > INT64_MAX - v * unit)
            return -1;
        total += v * unit;
        any = true;
        p = end;
    }
    if (!any)
        return -1;
    *out = total;
    return 0;
}

/* Parses `text` into opt->dest. `plain_ms` is what a plain number counts for in a duration
 * option (1: ms; 1000 for the file's NAME spelling of NAME_ms). Returns 0 or -1 with a reason
 * in `why`. */
static int set_value_unit(const struct sb_config_opt *opt, const char *text, int64_t plain_ms,
                          const char **why)
{
    switch (opt->type) {
    case SB_CONFIG_STRING: {
        char *dup = strdup(text != NULL ? text : "");
        if (dup == NULL) {
            *why = "out of memory";
            return -1;
        }
        char **dest = opt->dest;
        free(*dest);
        *dest = dup;
        return 0;
    }
    case SB_CONFIG_INT: {
        bool duration = ends_with(opt->name, "_ms") || (opt->flags & SB_CONFIG_DURATION) != 0;
        if ((opt->flags & SB_CONFIG_DURATION) != 0)
            plain_ms = 1000;
        if (text == NULL || text[0] == '\0') {
            *why =
                duration ? "expected a duration (e.g. 1500, 30s, 5m, 720h)" : "expected an integer";
            return -1;
        }
        long long v;
        if (duration) {
            int64_t d;
            if (parse_duration(text, plain_ms, &d) != 0) {
                *why = "expected a duration (e.g. 1500, 30s, 5m, 720h)";
                return -1;
            }
            v = d;
        } else {
            errno = 0;
            char *end = NULL;
            v = strtoll(text, &end, 10);
            if (errno != 0 || end == text || *end != '\0') {
                *why = "expected an integer";
                return -1;
            }
        }
        if ((opt->min != 0 || opt->max != 0) && (v < opt->min || v > opt->max)) {
            static char range[96];
            snprintf(range, sizeof(range), "out of range (%lld to %lld)", (long long)opt->min,
                     (long long)opt->max);
            *why = range;
            return -1;
        }
        *(int64_t *)opt->dest = (int64_t)v;
        return 0;
    }
    case SB_CONFIG_BOOL: {
        static const char *const yes[] = {"1", "true", "yes", "on"};
        static const char *const no[] = {"0", "false", "no", "off", ""};
        for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
            if (text != NULL && strcasecmp(text, yes[i]) == 0) {
                *(int *)opt->dest = 1;
                return 0;
            }
        }
        for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
            if (text == NULL || strcasecmp(text, no[i]) == 0) {
                *(int *)opt->dest = 0;
                return 0;
            }
        }
        *why = "expected true or false";
        return -1;
    }
    }
    *why = "unknown option type";
    return -1;
}

static int set_value(const struct sb_config_opt *opt, const char *text, const char **why)
{
    return set_value_unit(opt, text, 1, why);
}

static const struct sb_config_opt *find_opt(const struct sb_config_opt *opts, size_t n,
                                            const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    }
    return NULL;
}

static void env_name(const char *name, char *out, size_t out_len)
{
    size_t len = (size_t)snprintf(out, out_len, "SWITCHBOARD_");
    for (const char *p = name; *p != '\0' && len + 1 < out_len; p++)
        out[len++] = (char)toupper((unsigned char)*p);
    out[len] = '\0';
}

static void flag_name(const char *name, char *out, size_t out_len)
{
    size_t len = 0;
    for (const char *p = name; *p != '\0' && len + 1 < out_len; p++)
        out[len++] = *p == '_' ? '-' : *p;
    out[len] = '\0';
}

/* ---------------------------------------------------------------- the YAML file */

/* Names the seeds use for our options (file only; the target must be one of `opts`). */
static const struct {
    const char *alias, *name;
} aliases[] = {
    {"max_typing_users_per_room", "max_typing_users"},
    {"rate_limit_requests_per_second", "max_messages_per_second"},
    {"rate_limit_burst_size", "rate_limit_burst"},
};

/* Resolves a (flattened) file key to its option; *plain_ms gets the unit of a plain number. */
static const struct sb_config_opt *resolve_key(const struct sb_config_opt *opts, size_t n,
                                               const char *key, int64_t *plain_ms)
{
    *plain_ms = 1;
    const struct sb_config_opt *o = find_opt(opts, n, key);
    if (o != NULL)
        return o;
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
        if (strcmp(key, aliases[i].alias) == 0)
            return find_opt(opts, n, aliases[i].name);
    }
    char ms[MAX_KEY + 4];
    snprintf(ms, sizeof(ms), "%s_ms", key);
    o = find_opt(opts, n, ms);
    if (o != NULL && o->type == SB_CONFIG_INT) {
        *plain_ms = 1000;
        return o;
    }
    return NULL;
}

struct yfile {
    const struct sb_config_opt *opts;
    size_t n;
    const char *path;
    yaml_parser_t parser;
    unsigned char seen[MAX_OPTS];
};

static void ferr(const struct yfile *y, size_t line, const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "%s:%zu: ", y->path, line);
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
}

/* Next event; on a parse error prints it and returns -1. */
static int next_event(struct yfile *y, yaml_event_t *ev)
{
    if (yaml_parser_parse(&y->parser, ev))
        return 0;
    const char *problem = y->parser.problem ? y->parser.problem : "cannot parse";
    if (y->parser.error == YAML_READER_ERROR) {
        fprintf(stderr, "%s: YAML error: %s at byte %zu\n", y->path, problem,
                y->parser.problem_offset);
        return -1;
    }
    fprintf(stderr, "%s:%zu: YAML error: %s%s%s\n", y->path, y->parser.problem_mark.line + 1,
            problem, y->parser.context ? " " : "", y->parser.context ? y->parser.context : "");
    return -1;
}

static bool is_null_scalar(const yaml_event_t *ev)
{
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)ev->data.scalar.value;
    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* A sequence of scalars for a list option: joined with ','. The SEQUENCE_START is consumed. */
static int read_list(struct yfile *y, const char *key, char **out)
{
    size_t len = 0, cap = 64;
    char *s = malloc(cap);
    if (s == NULL)
        return -1;
    s[0] = '\0';
    for (;;) {
        yaml_event_t ev;
        if (next_event(y, &ev) != 0) {
            free(s);
            return -1;
        }
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            ferr(y, ev.start_mark.line + 1, "%s: list items must be plain values%s", key, "");
            yaml_event_delete(&ev);
            free(s);
            return -1;
        }
        const char *v = (const char *)ev.data.scalar.value;
        size_t vl = strlen(v);
        if (strchr(v, ',') != NULL || vl == 0) {
            ferr(y, ev.start_mark.line + 1, "%s: empty list item or item with a comma%s", key, "");
            yaml_event_delete(&ev);
            free(s);
            return -1;
        }
        if (len + vl + 2 > cap) {
            while (len + vl + 2 > cap)
                cap *= 2;
            char *t = realloc(s, cap);
            if (t == NULL) {
                yaml_event_delete(&ev);
                free(s);
                return -1;
            }
            s = t;
        }
        if (len > 0)
            s[len++] = ',';
        memcpy(s + len, v, vl + 1);
        len += vl;
        yaml_event_delete(&ev);
    }
    *out = s;
    return 0;
}

/* Reads a mapping's entries up to its MAPPING_END (the MAPPING_START is consumed); keys are
 * prefixed with `prefix` and '_'. */
static int read_mapping(struct yfile *y, const char *prefix, int depth)
{
    for (;;) {
        yaml_event_t kev;
        if (next_event(y, &kev) != 0)
            return -1;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            return 0;
        }
        size_t kline = kev.start_mark.line + 1;
        if (kev.type != YAML_SCALAR_EVENT) {
            ferr(y, kline, "keys must be plain names%s%s", "", "");
            yaml_event_delete(&kev);
            return -1;
        }
        char key[MAX_KEY];
        int kl = snprintf(key, sizeof(key), "%s%s%s", prefix, prefix[0] ? "_" : "",
                          (const char *)kev.data.scalar.value);
        yaml_event_delete(&kev);
        if (kl < 0 || (size_t)kl >= sizeof(key)) {
            ferr(y, kline, "key too long%s%s", "", "");
            return -1;
        }
        for (char *p = key; *p != '\0'; p++) {
            if (*p == '.' || *p == '-')
                *p = '_';
        }

        yaml_event_t vev;
        if (next_event(y, &vev) != 0)
            return -1;
        size_t vline = vev.start_mark.line + 1;
        if (vev.type == YAML_ALIAS_EVENT) {
            ferr(y, vline, "%s: YAML aliases are not supported%s", key, "");
            yaml_event_delete(&vev);
            return -1;
        }
        if (vev.type == YAML_MAPPING_START_EVENT) {
            yaml_event_delete(&vev);
            if (depth >= MAX_DEPTH) {
                ferr(y, vline, "%s: nested too deeply%s", key, "");
                return -1;
            }
            if (read_mapping(y, key, depth + 1) != 0)
                return -1;
            continue;
        }
        int64_t plain_ms;
        const struct sb_config_opt *opt = resolve_key(y->opts, y->n, key, &plain_ms);
        if (opt == NULL) {
            ferr(y, kline, "unknown key '%s'%s", key, "");
            yaml_event_delete(&vev);
            return -1;
        }
        size_t idx = (size_t)(opt - y->opts);
        if (y->seen[idx]) {
            ferr(y, kline, "'%s' is given twice (as %s)", opt->name, key);
            yaml_event_delete(&vev);
            return -1;
        }
        y->seen[idx] = 1;
        const char *why = NULL;
        int rc;
        if (vev.type == YAML_SEQUENCE_START_EVENT) {
            yaml_event_delete(&vev);
            if (!(opt->flags & SB_CONFIG_LIST) || opt->type != SB_CONFIG_STRING) {
                ferr(y, vline, "%s: expected a single value, not a list%s", key, "");
                return -1;
            }
            char *joined = NULL;
            if (read_list(y, key, &joined) != 0)
                return -1;
            rc = set_value(opt, joined, &why);
            free(joined);
        } else if (vev.type == YAML_SCALAR_EVENT) {
            const char *v = is_null_scalar(&vev) ? "" : (const char *)vev.data.scalar.value;
            rc = set_value_unit(opt, v, plain_ms, &why);
            yaml_event_delete(&vev);
        } else {
            yaml_event_delete(&vev);
            ferr(y, vline, "%s: unexpected value%s", key, "");
            return -1;
        }
        if (rc != 0) {
            ferr(y, vline, "%s: %s", key, why);
            return -1;
        }
    }
}

static int load_file(const struct sb_config_opt *opts, size_t n, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot open config file: %s\n", path, strerror(errno));
        return -1;
    }
    struct yfile y = {.opts = opts, .n = n, .path = path};
    if (!yaml_parser_initialize(&y.parser)) {
        fclose(f);
        fprintf(stderr, "%s: out of memory\n", path);
        return -1;
    }
    yaml_parser_set_input_file(&y.parser, f);
    int rc = 0, docs = 0;
    for (bool done = false; !done && rc == 0;) {
        yaml_event_t ev;
        if (next_event(&y, &ev) != 0) {
            rc = -1;
            break;
        }
        size_t line = ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                ferr(&y, line, "one YAML document expected, found another%s%s", "", "");
                rc = -1;
            }
            break;
        case YAML_MAPPING_START_EVENT:
            rc = read_mapping(&y, "", 0);
            break;
        case YAML_SCALAR_EVENT:
            if (!is_null_scalar(&ev)) {
                ferr(&y, line, "expected a mapping of option names to values%s%s", "", "");
                rc = -1;
            }
            break;
        default:
            ferr(&y, line, "expected a mapping of option names to values%s%s", "", "");
            rc = -1;
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&y.parser);
    fclose(f);
    return rc;
}

/* ---------------------------------------------------------------- help, load */

static void print_help(const struct sb_config_opt *opts, size_t n, const char *prog,
                       const char *summary)
{
    printf("Usage: %s [options]\n%s\n\nOptions (each also SWITCHBOARD_<NAME> in the environment "
           "and <name> in the --config file):\n",
           prog, summary);
    char flag[96];
    for (size_t i = 0; i < n; i++) {
        flag_name(opts[i].name, flag, sizeof(flag));
        const char *arg = opts[i].type == SB_CONFIG_BOOL ? "" : " VALUE";
        printf("  --%s%s\n      %s", flag, arg, opts[i].help != NULL ? opts[i].help : "");
        if (opts[i].def != NULL && opts[i].def[0] != '\0')
            printf(" (default: %s)", opts[i].def);
        printf("\n");
    }
    printf("  --config FILE\n      read options from the YAML file FILE (SWITCHBOARD_CONFIG)\n"
           "  --check-config\n      validate the configuration, print it and exit (0: valid, "
           "2: not)\n"
           "  --help\n      print this help\n  --version\n      print the version\n"
           "Options ending in _ms take durations: 1500 (ms), 250ms, 30s, 5m, 720h, 1d.\n");
}

enum sb_config_result sb_config_load(const struct sb_config_opt *opts, size_t n, const char *prog,
                                     const char *summary, int argc, char **argv)
{
    const char *why = NULL;
    check_only = 0;
    if (n > MAX_OPTS) {
        fprintf(stderr, "%s: too many options\n", prog);
        return SB_CONFIG_EXIT_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        if (set_value(&opts[i], opts[i].def != NULL ? opts[i].def : "", &why) != 0 &&
            opts[i].type != SB_CONFIG_INT) {
            fprintf(stderr, "%s: bad default for %s: %s\n", prog, opts[i].name, why);
            return SB_CONFIG_EXIT_ERR;
        }
        if (opts[i].type == SB_CONFIG_INT && (opts[i].def == NULL || opts[i].def[0] == '\0'))
            *(int64_t *)opts[i].dest = 0;
    }

    /* getopt table: every option, plus config/check-config/help/version. */
    static struct option long_opts[MAX_OPTS + 5];
    static char names[MAX_OPTS][96];
    for (size_t i = 0; i < n; i++) {
        flag_name(opts[i].name, names[i], sizeof(names[i]));
        long_opts[i].name = names[i];
        long_opts[i].has_arg =
            opts[i].type == SB_CONFIG_BOOL ? optional_argument : required_argument;
        long_opts[i].flag = NULL;
        long_opts[i].val = 1000 + (int)i;
    }
    long_opts[n] = (struct option){"config", required_argument, NULL, 'c'};
    long_opts[n + 1] = (struct option){"help", no_argument, NULL, 'h'};
    long_opts[n + 2] = (struct option){"version", no_argument, NULL, 'V'};
    long_opts[n + 3] = (struct option){"check-config", no_argument, NULL, 'C'};
    long_opts[n + 4] = (struct option){NULL, 0, NULL, 0};

    /* First pass: --help, --version, --config, --check-config and flag syntax. */
    const char *config_path = getenv("SWITCHBOARD_CONFIG");
    const char *chk = getenv("SWITCHBOARD_CHECK_CONFIG");
    if (chk != NULL && chk[0] != '\0') {
        int v = 0;
        struct sb_config_opt o = {"check_config", SB_CONFIG_BOOL, &v, NULL, NULL, 0, 0, 0};
        if (set_value(&o, chk, &why) != 0) {
            fprintf(stderr, "%s: SWITCHBOARD_CHECK_CONFIG: %s\n", prog, why);
            return SB_CONFIG_EXIT_ERR;
        }
        check_only = v;
    }
    opterr = 0;
    optind = 1;
    int c, idx;
    while ((c = getopt_long(argc, argv, "", long_opts, &idx)) != -1) {
        if (c == 'h') {
            print_help(opts, n, prog, summary);
            return SB_CONFIG_EXIT_OK;
        } else if (c == 'V') {
            printf("%s %s\n", prog, SB_VERSION);
            return SB_CONFIG_EXIT_OK;
        } else if (c == 'c') {
            config_path = optarg;
        } else if (c == 'C') {
            check_only = 1;
        } else if (c == '?' || c == ':') {
            const char *bad = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
            fprintf(stderr, "%s: unknown option or missing value: %s (see --help)\n", prog, bad);
            return SB_CONFIG_EXIT_ERR;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument: %s (see --help)\n", prog, argv[optind]);
        return SB_CONFIG_EXIT_ERR;
    }
    if (config_path != NULL && config_path[0] != '\0' && load_file(opts, n, config_path) != 0)
        return SB_CONFIG_EXIT_ERR;

    char env[160];
    for (size_t i = 0; i < n; i++) {
        env_name(opts[i].name, env, sizeof(env));
        const char *v = getenv(env);
        if (v == NULL)
            continue;
        if (set_value(&opts[i], v, &why) != 0) {
            fprintf(stderr, "%s: %s: %s\n", prog, env, why);
            return SB_CONFIG_EXIT_ERR;
        }
    }

    optind = 1;
    while ((c = getopt_long(argc, argv, "", long_opts, &idx)) != -1) {
        if (c < 1000)
            continue;
        const struct sb_config_opt *opt = &opts[c - 1000];
        const char *v = optarg;
        if (opt->type == SB_CONFIG_BOOL && v == NULL)
            v = "true";
        if (set_value(opt, v, &why) != 0) {
            fprintf(stderr, "%s: --%s: %s\n", prog, names[c - 1000], why);
            return SB_CONFIG_EXIT_ERR;
        }
    }
    return SB_CONFIG_RUN;
}

int sb_config_check_only(void)
{
    return check_only;
}

/* ---------------------------------------------------------------- output */

/* Appends one value as text (quoted string, number, bool, or the redaction mark). */
static int format_value(const struct sb_config_opt *o, char *buf, size_t room)
{
    if (o->flags & SB_CONFIG_SECRET)
        return snprintf(buf, room, "\"<redacted>\"");
    if (o->type == SB_CONFIG_STRING) {
        /* Double-quoted YAML: backslash and quote escaped, control characters as \xHH. */
        const char *s = *(char **)o->dest;
        size_t len = 0;
        char esc[8];
        for (const char *p = s != NULL ? s : "";; p++) {
            const char *piece = esc;
            if (*p == '\0')
                break;
            if (*p == '"' || *p == '\\')
                snprintf(esc, sizeof(esc), "\\%c", *p);
            else if ((unsigned char)*p < 0x20)
                snprintf(esc, sizeof(esc), "\\x%02x", (unsigned char)*p);
            else
                esc[0] = *p, esc[1] = '\0';
            size_t pl = strlen(piece);
            if (len + 1 + pl < room)
                memcpy(buf + 1 + len, piece, pl);
            len += pl;
        }
        if (room > 0)
            buf[0] = '"';
        if (len + 2 < room) {
            buf[1 + len] = '"';
            buf[2 + len] = '\0';
        } else if (room > 0) {
            buf[room - 1] = '\0';
        }
        return (int)(len + 2);
    }
    if (o->type == SB_CONFIG_INT && (o->flags & SB_CONFIG_DURATION))
        return snprintf(buf, room, "%lldms", (long long)*(int64_t *)o->dest);
    if (o->type == SB_CONFIG_INT)
        return snprintf(buf, room, "%lld", (long long)*(int64_t *)o->dest);
    return snprintf(buf, room, "%s", *(int *)o->dest ? "true" : "false");
}

size_t sb_config_format(const struct sb_config_opt *opts, size_t n, const char *sep, char *buf,
                        size_t cap)
{
    size_t len = 0;
    char tmp[1];
    if (cap > 0)
        buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t room = len < cap ? cap - len : 0;
        char *at = room > 0 ? buf + len : tmp;
        int w = snprintf(at, room > 0 ? room : 1, "%s%s=", i ? sep : "", opts[i].name);
        if (w < 0)
            return len;
        len += (size_t)w;
        room = len < cap ? cap - len : 0;
        at = room > 0 ? buf + len : tmp;
        w = format_value(&opts[i], at, room > 0 ? room : 1);
        if (w < 0)
            return len;
        len += (size_t)w;
    }
    return len;
}

void sb_config_log(const struct sb_config_opt *opts, size_t n, const char *module)
{
    char buf[8192];
    sb_config_format(opts, n, " ", buf, sizeof(buf));
    sb_log(SB_LOG_INFO, module, "effective configuration", "%s", buf);
}

void sb_config_print(const struct sb_config_opt *opts, size_t n, FILE *f)
{
    char v[4096];
    for (size_t i = 0; i < n; i++) {
        format_value(&opts[i], v, sizeof(v));
        fprintf(f, "%s: %s\n", opts[i].name, v);
    }
}

void sb_config_fini(const struct sb_config_opt *opts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (opts[i].type == SB_CONFIG_STRING) {
            char **dest = opts[i].dest;
            free(*dest);
            *dest = NULL;
        }
    }
}
