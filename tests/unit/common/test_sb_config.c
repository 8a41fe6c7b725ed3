/* Unit tests of sb_config: precedence flags > env > file > defaults, and every error path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sb_config.h"

static char *listen_addr;
static int64_t max_size;
static int dev_mode;
static char *endpoints;
static char *token;
static int64_t timeout_ms;
static int64_t typing_users;

static const struct sb_config_opt opts[] = {
    {"listen", SB_CONFIG_STRING, &listen_addr, "127.0.0.1:8080", "address", 0, 0, 0},
    {"max_frame_size", SB_CONFIG_INT, &max_size, "65536", "bytes", 1, 1 << 24, 0},
    {"dev_mode", SB_CONFIG_BOOL, &dev_mode, "false", "dev", 0, 0, 0},
    {"etcd_endpoints", SB_CONFIG_STRING, &endpoints, "http://a:1", "urls", 0, 0, SB_CONFIG_LIST},
    {"jwt_secret", SB_CONFIG_STRING, &token, "", "secret", 0, 0, SB_CONFIG_SECRET},
    {"presence_timeout_ms", SB_CONFIG_INT, &timeout_ms, "300000", "ms", 1000, 86400000, 0},
    {"max_typing_users", SB_CONFIG_INT, &typing_users, "10", "n", 1, 1000, 0},
};
#define N (sizeof(opts) / sizeof(opts[0]))

static enum sb_config_result load(int argc, char **argv)
{
    return sb_config_load(opts, N, "prog", "test", argc, argv);
}

static char *write_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/sb_config_test_%d.yaml", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Runs load() with stderr captured; returns the result, the text in err (cap bytes). */
static enum sb_config_result load_capture(int argc, char **argv, char *err, size_t cap)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/sb_config_err_%d.txt", (int)getpid());
    fflush(stderr);
    int saved = dup(2);
    FILE *f = fopen(path, "w+");
    assert_non_null(f);
    dup2(fileno(f), 2);
    enum sb_config_result r = load(argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(f);
    size_t n = fread(err, 1, cap - 1, f);
    err[n] = '\0';
    fclose(f);
    unlink(path);
    return r;
}

static int teardown(void **state)
{
    (void)state;
    sb_config_fini(opts, N);
    unsetenv("SWITCHBOARD_LISTEN");
    unsetenv("SWITCHBOARD_MAX_FRAME_SIZE");
    unsetenv("SWITCHBOARD_CONFIG");
    unsetenv("SWITCHBOARD_ETCD_ENDPOINTS");
    unsetenv("SWITCHBOARD_CHECK_CONFIG");
    return 0;
}

static void test_sb_config_load_defaults(void **state)
{
    char *argv[] = {"prog", NULL};
    assert_int_equal(load(1, argv), SB_CONFIG_RUN);
    assert_string_equal(listen_addr, "127.0.0.1:8080");
    assert_int_equal(max_size, 65536);
    assert_int_equal(dev_mode, 0);
}

static void test_sb_config_load_precedence(void **state)
{
    char *path = write_file("# comment\nlisten: \"10.0.0.1:1\"\nmax_frame_size: 100 # c\n"
                            "dev_mode: yes\n");
    setenv("SWITCHBOARD_MAX_FRAME_SIZE", "200", 1);
    char *argv[] = {"prog", "--config", path, "--listen=127.0.0.2:9", NULL};
    assert_int_equal(load(4, argv), SB_CONFIG_RUN);
    assert_string_equal(listen_addr, "127.0.0.2:9"); /* flag beats file */
    assert_int_equal(max_size, 200);                 /* env beats file */
    assert_int_equal(dev_mode, 1);                   /* file beats default */
    unlink(path);
}

static void test_sb_config_load_unknown_key_fails(void **state)
{
    char *path = write_file("listen: a\nbogus: 1\n");
    char *argv[] = {"prog", "--config", path, NULL};
    assert_int_equal(load(3, argv), SB_CONFIG_EXIT_ERR);
    unlink(path);
}

static void test_sb_config_load_bad_values_fail(void **state)
{
    char *argv1[] = {"prog", "--max-frame-size", "12x", NULL};
    assert_int_equal(load(3, argv1), SB_CONFIG_EXIT_ERR);
    char *argv2[] = {"prog", "--max-frame-size", "0", NULL};
    assert_int_equal(load(3, argv2), SB_CONFIG_EXIT_ERR); /* below min */
    char *argv3[] = {"prog", "--nope", NULL};
    assert_int_equal(load(2, argv3), SB_CONFIG_EXIT_ERR);
    char *argv4[] = {"prog", "stray", NULL};
    assert_int_equal(load(2, argv4), SB_CONFIG_EXIT_ERR);
    setenv("SWITCHBOARD_MAX_FRAME_SIZE", "lots", 1);
    char *argv5[] = {"prog", NULL};
    assert_int_equal(load(1, argv5), SB_CONFIG_EXIT_ERR);
    char *argv6[] = {"prog", "--config", "/nonexistent/sb.yaml", NULL};
    unsetenv("SWITCHBOARD_MAX_FRAME_SIZE");
    assert_int_equal(load(3, argv6), SB_CONFIG_EXIT_ERR);
}

static void test_sb_config_load_bool_flag_without_value(void **state)
{
    char *argv[] = {"prog", "--dev-mode", NULL};
    assert_int_equal(load(2, argv), SB_CONFIG_RUN);
    assert_int_equal(dev_mode, 1);
    char *argv2[] = {"prog", "--dev-mode=off", NULL};
    assert_int_equal(load(2, argv2), SB_CONFIG_RUN);
    assert_int_equal(dev_mode, 0);
}

static void test_sb_config_load_help_and_version_exit_ok(void **state)
{
    char *argv[] = {"prog", "--help", NULL};
    assert_int_equal(load(2, argv), SB_CONFIG_EXIT_OK);
    char *argv2[] = {"prog", "--version", NULL};
    assert_int_equal(load(2, argv2), SB_CONFIG_EXIT_OK);
}

static void test_sb_config_load_yaml_nested_lists_aliases_durations(void **state)
{
    char *path = write_file("---\n"
                            "# a real YAML document\n"
                            "listen: '10.0.0.1:1'\n"
                            "etcd:\n"
                            "  endpoints:\n"
                            "    - http://e1:2379\n"
                            "    - \"http://e2:2379\"\n"
                            "presence_timeout: 5m   # seed spelling: a duration\n"
                            "max_typing_users_per_room: 7\n"
                            "dev_mode: on\n"
                            "...\n");
    char *argv[] = {"prog", "--config", path, NULL};
    assert_int_equal(load(3, argv), SB_CONFIG_RUN);
    assert_string_equal(listen_addr, "10.0.0.1:1");
    assert_string_equal(endpoints, "http://e1:2379,http://e2:2379");
    assert_int_equal(timeout_ms, 300000);
    assert_int_equal(typing_users, 7);
    assert_int_equal(dev_mode, 1);
    sb_config_fini(opts, N);

    /* Flow style, a dotted key, a plain number in the NAME spelling counts seconds, a comma
     * string for the list, and an _ms key with a unit. */
    path = write_file("{etcd.endpoints: 'http://x:1,http://y:2', presence_timeout: 90}\n");
    assert_int_equal(load(3, argv), SB_CONFIG_RUN);
    assert_string_equal(endpoints, "http://x:1,http://y:2");
    assert_int_equal(timeout_ms, 90000);
    sb_config_fini(opts, N);
    path = write_file("presence_timeout_ms: 1h30m\n");
    assert_int_equal(load(3, argv), SB_CONFIG_RUN);
    assert_int_equal(timeout_ms, 5400000);
    sb_config_fini(opts, N);

    /* Empty files and empty documents are fine. */
    path = write_file("");
    assert_int_equal(load(3, argv), SB_CONFIG_RUN);
    sb_config_fini(opts, N);
    path = write_file("# nothing\n---\n");
    assert_int_equal(load(3, argv), SB_CONFIG_RUN);
    unlink(path);
}

static void test_sb_config_load_durations_in_flags_and_env(void **state)
{
    char *argv[] = {"prog", "--presence-timeout-ms", "2m", NULL};
    assert_int_equal(load(3, argv), SB_CONFIG_RUN);
    assert_int_equal(timeout_ms, 120000);
    char *argv2[] = {"prog", "--presence-timeout-ms=1500", NULL};
    assert_int_equal(load(2, argv2), SB_CONFIG_RUN);
    assert_int_equal(timeout_ms, 1500);
    char err[512];
    char *argv3[] = {"prog", "--presence-timeout-ms", "5 minutes", NULL};
    assert_int_equal(load_capture(3, argv3, err, sizeof(err)), SB_CONFIG_EXIT_ERR);
    assert_non_null(strstr(err, "expected a duration"));
    char *argv4[] = {"prog", "--presence-timeout-ms", "2d", NULL}; /* above the max */
    assert_int_equal(load_capture(3, argv4, err, sizeof(err)), SB_CONFIG_EXIT_ERR);
    assert_non_null(strstr(err, "out of range"));
    char *argv5[] = {"prog", "--max-frame-size", "5s", NULL}; /* not a duration option */
    assert_int_equal(load_capture(3, argv5, err, sizeof(err)), SB_CONFIG_EXIT_ERR);
    assert_non_null(strstr(err, "expected an integer"));
}

static void test_sb_config_load_file_errors_name_the_line(void **state)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"listen: a:1\n\nbogus: 1\n", ":3: unknown key 'bogus'"},
        {"etcd:\n  nope: 1\n", ":2: unknown key 'etcd_nope'"},
        {"listen: a:1\nmax_frame_size: 12x\n", ":2: max_frame_size: expected an integer"},
        {"dev_mode: maybe\n", ":1: dev_mode: expected true or false"},
        {"max_frame_size: 1\nmax_frame_size: 2\n", ":2: 'max_frame_size' is given twice"},
        {"max_typing_users: 3\nmax_typing_users_per_room: 2\n", ":2: 'max_typing_users'"},
        {"listen:\n  - a\n  - b\n", ":2: listen: expected a single value, not a list"},
        {"etcd_endpoints:\n  - [nested]\n", ":2: etcd_endpoints: list items"},
        {"listen: \"open\n", ":2: YAML error"},
        {"- a\n- b\n", ":1: expected a mapping"},
        {"just text\n", ":1: expected a mapping"},
        {"a: &x 1\nlisten: *x\n", ":1: unknown key 'a'"},
        {"listen: *x\n", ":1: listen: YAML aliases are not supported"},
        {"listen: a\n---\nlisten: b\n", ":2: one YAML document"},
    };
    char err[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *path = write_file(cases[i].text);
        char *argv[] = {"prog", "--config", path, NULL};
        assert_int_equal(load_capture(3, argv, err, sizeof(err)), SB_CONFIG_EXIT_ERR);
        if (strstr(err, cases[i].want) == NULL || strstr(err, path) == NULL)
            fail_msg("case %zu: wanted \"%s\" with the path, got \"%s\"", i, cases[i].want, err);
        sb_config_fini(opts, N);
        unlink(path);
    }
}

static void test_sb_config_load_env_beats_file_list(void **state)
{
    char *path = write_file("etcd_endpoints: [http://f:1]\n");
    setenv("SWITCHBOARD_ETCD_ENDPOINTS", "http://env:1,http://env:2", 1);
    char *argv[] = {"prog", "--config", path, NULL};
    assert_int_equal(load(3, argv), SB_CONFIG_RUN);
    assert_string_equal(endpoints, "http://env:1,http://env:2");
    char *argv2[] = {"prog", "--config", path, "--etcd-endpoints", "http://flag:1", NULL};
    assert_int_equal(load(5, argv2), SB_CONFIG_RUN);
    assert_string_equal(endpoints, "http://flag:1");
    unlink(path);
}

static void test_sb_config_check_only_flag_and_env(void **state)
{
    char *argv[] = {"prog", NULL};
    assert_int_equal(load(1, argv), SB_CONFIG_RUN);
    assert_false(sb_config_check_only());
    char *argv2[] = {"prog", "--check-config", NULL};
    assert_int_equal(load(2, argv2), SB_CONFIG_RUN);
    assert_true(sb_config_check_only());
    setenv("SWITCHBOARD_CHECK_CONFIG", "true", 1);
    assert_int_equal(load(1, argv), SB_CONFIG_RUN);
    assert_true(sb_config_check_only());
    setenv("SWITCHBOARD_CHECK_CONFIG", "perhaps", 1);
    assert_int_equal(load(1, argv), SB_CONFIG_EXIT_ERR);
}

static void test_sb_config_format_redacts_secrets(void **state)
{
    char *argv[] = {"prog", "--jwt-secret", "hunter2", "--listen", "h:1", NULL};
    assert_int_equal(load(5, argv), SB_CONFIG_RUN);
    assert_string_equal(token, "hunter2");
    char buf[1024];
    size_t need = sb_config_format(opts, N, " ", buf, sizeof(buf));
    assert_int_equal(need, strlen(buf));
    assert_null(strstr(buf, "hunter2"));
    assert_non_null(strstr(buf, "jwt_secret=\"<redacted>\""));
    assert_non_null(strstr(buf, "listen=\"h:1\""));
    assert_non_null(strstr(buf, "max_frame_size=65536"));
    assert_non_null(strstr(buf, "dev_mode=false"));
    /* Truncation keeps the buffer terminated and reports the full length. */
    char small[16];
    assert_int_equal(sb_config_format(opts, N, " ", small, sizeof(small)), need);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    /* The YAML print: secrets redacted, quotes escaped, readable back by --config. */
    char *argv2[] = {"prog", "--jwt-secret", "hunter2", "--listen", "a\"b\\c", NULL};
    assert_int_equal(load(5, argv2), SB_CONFIG_RUN);
    char path[64];
    snprintf(path, sizeof(path), "/tmp/sb_config_print_%d.yaml", (int)getpid());
    FILE *f = fopen(path, "w+");
    assert_non_null(f);
    sb_config_print(opts, N, f);
    rewind(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_null(strstr(buf, "hunter2"));
    assert_non_null(strstr(buf, "jwt_secret: \"<redacted>\"\n"));
    sb_config_fini(opts, N);
    char *argv3[] = {"prog", "--config", path, NULL};
    assert_int_equal(load(3, argv3), SB_CONFIG_RUN);
    assert_string_equal(listen_addr, "a\"b\\c");
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_sb_config_load_defaults, teardown),
        cmocka_unit_test_teardown(test_sb_config_load_precedence, teardown),
        cmocka_unit_test_teardown(test_sb_config_load_unknown_key_fails, teardown),
        cmocka_unit_test_teardown(test_sb_config_load_bad_values_fail, teardown),
        cmocka_unit_test_teardown(test_sb_config_load_bool_flag_without_value, teardown),
        cmocka_unit_test_teardown(test_sb_config_load_help_and_version_exit_ok, teardown),
        cmocka_unit_test_teardown(test_sb_config_load_yaml_nested_lists_aliases_durations,
                                  teardown),
        cmocka_unit_test_teardown(test_sb_config_load_durations_in_flags_and_env, teardown),
        cmocka_unit_test_teardown(test_sb_config_load_file_errors_name_the_line, teardown),
        cmocka_unit_test_teardown(test_sb_config_load_env_beats_file_list, teardown),
        cmocka_unit_test_teardown(test_sb_config_check_only_flag_and_env, teardown),
        cmocka_unit_test_teardown(test_sb_config_format_redacts_secrets, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
