/* Option loading for both daemons: defaults, then a flat `key: value` file, then SWITCHBOARD_*
 * environment variables, then command-line flags; each later source overrides the earlier. */
#include "sb_config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_log.h"

#define MAX_OPTS 128

/* Parses `text` into opt->dest. Returns 0 or -1 with a reason in `why`. */
static int set_value(const struct sb_config_opt *opt, const char *text, const char **why)
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
        if (text == NULL || text[0] == '\0') {
            *why = "expected an integer";
            return -1;
        }
        errno = 0;
        char *end = NULL;
        long long v = strtoll(text, &end, 10);
        if (errno != 0 || end == text || *end != '\0') {
            *why = "expected an integer";
            return -1;
        }
        if ((opt->min != 0 || opt->max != 0) && (v < opt->min || v > opt->max)) {
            *why = "out of range";
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

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    return s;
}

/* Strips matching quotes and a trailing comment outside quotes. */
static char *unquote(char *v)
{
    if (v[0] == '"' || v[0] == '\'') {
        char q = v[0];
        char *end = strchr(v + 1, q);
        if (end == NULL)
            return NULL;
        *end = '\0';
        char *rest = trim(end + 1);
        if (rest[0] != '\0' && rest[0] != '#')
            return NULL;
        return v + 1;
    }
    char *hash = strstr(v, " #");
    if (hash != NULL)
        *hash = '\0';
    return trim(v);
}

static int load_file(const struct sb_config_opt *opts, size_t n, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot open config file: %s\n", path, strerror(errno));
        return -1;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            fprintf(stderr, "%s:%d: line too long\n", path, lineno);
            rc = -1;
            break;
        }
        char *s = trim(line);
        if (s[0] == '\0' || s[0] == '#')
            continue;
        if (strcmp(s, "---") == 0)
            continue;
        char *colon = strchr(s, ':');
        if (colon == NULL) {
            fprintf(stderr, "%s:%d: expected 'key: value'\n", path, lineno);
            rc = -1;
            break;
        }
        *colon = '\0';
        char *key = trim(s);
        char *val = unquote(trim(colon + 1));
        const struct sb_config_opt *opt = find_opt(opts, n, key);
        if (opt == NULL) {
            fprintf(stderr, "%s:%d: unknown key '%s'\n", path, lineno, key);
            rc = -1;
            break;
        }
        const char *why = NULL;
        if (val == NULL) {
            fprintf(stderr, "%s:%d: %s: unterminated quote\n", path, lineno, key);
            rc = -1;
            break;
        }
        if (set_value(opt, val, &why) != 0) {
            fprintf(stderr, "%s:%d: %s: %s\n", path, lineno, key, why);
            rc = -1;
            break;
        }
    }
    fclose(f);
    return rc;
}

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
    printf("  --config FILE\n      read options from FILE (flat 'key: value' lines)\n"
           "  --help\n      print this help\n  --version\n      print the version\n");
}

enum sb_config_result sb_config_load(const struct sb_config_opt *opts, size_t n, const char *prog,
                                     const char *summary, int argc, char **argv)
{
    const char *why = NULL;
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

    /* getopt table: every option, plus config/help/version. */
    static struct option long_opts[MAX_OPTS + 4];
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
    long_opts[n + 3] = (struct option){NULL, 0, NULL, 0};

    /* First pass: --help, --version, --config and flag syntax. */
    const char *config_path = getenv("SWITCHBOARD_CONFIG");
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

void sb_config_log(const struct sb_config_opt *opts, size_t n, const char *module)
{
    char buf[1800];
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && len < sizeof(buf) - 1; i++) {
        int w = 0;
        size_t room = sizeof(buf) - len;
        if (opts[i].secret) {
            w = snprintf(buf + len, room, "%s%s=<redacted>", len ? " " : "", opts[i].name);
        } else if (opts[i].type == SB_CONFIG_STRING) {
            const char *s = *(char **)opts[i].dest;
            w = snprintf(buf + len, room, "%s%s=\"%s\"", len ? " " : "", opts[i].name,
                         s != NULL ? s : "");
        } else if (opts[i].type == SB_CONFIG_INT) {
            w = snprintf(buf + len, room, "%s%s=%lld", len ? " " : "", opts[i].name,
                         (long long)*(int64_t *)opts[i].dest);
        } else {
            w = snprintf(buf + len, room, "%s%s=%s", len ? " " : "", opts[i].name,
                         *(int *)opts[i].dest ? "true" : "false");
        }
        if (w < 0 || (size_t)w >= room)
            break;
        len += (size_t)w;
    }
    sb_log(SB_LOG_INFO, module, "effective configuration", "%s", buf);
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
