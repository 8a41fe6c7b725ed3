/* Unit tests of sb_config: precedence flags > env > file > defaults, and every error path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "sb_config.h"

static char *listen_addr;
static int64_t max_size;
static int dev_mode;

static const struct sb_config_opt opts[] = {
    {"listen", SB_CONFIG_STRING, &listen_addr, "127.0.0.1:8080", "address", 0, 0, 0},
    {"max_frame_size", SB_CONFIG_INT, &max_size, "65536", "bytes", 1, 1 << 24, 0},
    {"dev_mode", SB_CONFIG_BOOL, &dev_mode, "false", "dev", 0, 0, 0},
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

static int teardown(void **state)
{
    (void)state;
    sb_config_fini(opts, N);
    unsetenv("SWITCHBOARD_LISTEN");
    unsetenv("SWITCHBOARD_MAX_FRAME_SIZE");
    unsetenv("SWITCHBOARD_CONFIG");
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_sb_config_load_defaults, teardown),
        cmocka_unit_test_teardown(test_sb_config_load_precedence, teardown),
        cmocka_unit_test_teardown(test_sb_config_load_unknown_key_fails, teardown),
        cmocka_unit_test_teardown(test_sb_config_load_bad_values_fail, teardown),
        cmocka_unit_test_teardown(test_sb_config_load_bool_flag_without_value, teardown),
        cmocka_unit_test_teardown(test_sb_config_load_help_and_version_exit_ok, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
