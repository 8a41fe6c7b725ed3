/* Unit tests of sb_secret: key-file parsing, matching, Bearer headers, re-reading on change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sb_secret.h"

#define K1 "0123456789abcdef"        /* 16 bytes */
#define K2 "fedcba9876543210-second" /* 23 bytes */

static struct sb_secret *parse(const char *text, size_t min, enum sb_err *rc, char *why)
{
    struct sb_secret *s = NULL;
    *rc = sb_secret_parse(text, strlen(text), min, &s, why, 128);
    return s;
}

static bool match(const struct sb_secret *s, const char *k)
{
    return sb_secret_match(s, k, strlen(k));
}

static void test_sb_secret_parse_comments_blank_trim(void **state)
{
    enum sb_err rc;
    char why[128] = "";
    struct sb_secret *s =
        parse("# API keys\n\n   " K1 " \t\r\n#" K2 "\n\t" K2 "\n\n", 16, &rc, why);
    assert_int_equal(rc, SB_OK);
    assert_int_equal(sb_secret_count(s), 2);
    size_t n = 0;
    assert_string_equal(sb_secret_first(s, &n), K1);
    assert_int_equal(n, 16);
    assert_true(match(s, K1));
    assert_true(match(s, K2));
    sb_secret_destroy(s);
    /* No final newline, CRLF lines. */
    s = parse(K2 "\r\n" K1, 16, &rc, why);
    assert_int_equal(rc, SB_OK);
    assert_string_equal(sb_secret_first(s, NULL), K2);
    assert_true(match(s, K1));
    sb_secret_destroy(s);
}

static void test_sb_secret_parse_refuses_bad_files(void **state)
{
    enum sb_err rc;
    char why[128];
    assert_null(parse("", 16, &rc, why));
    assert_int_equal(rc, SB_EINVAL);
    assert_null(parse("# only a comment\n\n  \n", 16, &rc, why));
    assert_int_equal(rc, SB_EINVAL);
    /* A short key names its line, never its content. */
    assert_null(parse(K1 "\n\nshort-key\n", 16, &rc, why));
    assert_int_equal(rc, SB_EINVAL);
    assert_non_null(strstr(why, "line 3"));
    assert_null(strstr(why, "short-key"));
    assert_null(parse(K1 "\n", 32, &rc, why));
    assert_int_equal(rc, SB_EINVAL);
    /* Spaces inside or control bytes: not a header-safe token. */
    assert_null(parse("0123456789 abcdef0123\n", 16, &rc, why));
    assert_int_equal(rc, SB_EINVAL);
    assert_null(parse("0123456789\x01"
                      "abcdef0123\n",
                      16, &rc, why));
    assert_int_equal(rc, SB_EINVAL);
    assert_null(parse("0123456789\xc3\xa9"
                      "abcdef0123\n",
                      16, &rc, why));
    assert_int_equal(rc, SB_EINVAL);
    /* An embedded NUL byte is refused too (parse takes a length). */
    struct sb_secret *s = NULL;
    assert_int_equal(sb_secret_parse(K1 "\0" K1, 33, 16, &s, why, sizeof(why)), SB_EINVAL);
    assert_null(s);
}

static void test_sb_secret_match_exact_only(void **state)
{
    enum sb_err rc;
    char why[128];
    struct sb_secret *s = parse(K1 "\n" K2 "\n", 16, &rc, why);
    assert_true(match(s, K1));
    assert_false(match(s, "0123456789abcde"));  /* a prefix */
    assert_false(match(s, K1 "0"));             /* longer */
    assert_false(match(s, "0123456789abcdeF")); /* one byte off */
    assert_false(match(s, ""));
    assert_false(sb_secret_match(s, NULL, 0));
    assert_false(sb_secret_match(NULL, K1, 16));
    sb_secret_destroy(s);
}

static void test_sb_secret_bearer_parsing(void **state)
{
    const char *t = NULL;
    size_t n = 0;
    const char *v = "Bearer " K1;
    assert_true(sb_secret_bearer(v, strlen(v), &t, &n));
    assert_int_equal(n, 16);
    assert_memory_equal(t, K1, 16);
    v = "bearer   " K1 "  ";
    assert_true(sb_secret_bearer(v, strlen(v), &t, &n));
    assert_int_equal(n, 16);
    v = "BEARER x";
    assert_true(sb_secret_bearer(v, strlen(v), &t, &n));
    assert_int_equal(n, 1);
    v = "Bearer ";
    assert_false(sb_secret_bearer(v, strlen(v), &t, &n));
    v = "Bearer    ";
    assert_false(sb_secret_bearer(v, strlen(v), &t, &n));
    v = "Basic " K1;
    assert_false(sb_secret_bearer(v, strlen(v), &t, &n));
    v = "Bearer" K1;
    assert_false(sb_secret_bearer(v, strlen(v), &t, &n));
    v = K1;
    assert_false(sb_secret_bearer(v, strlen(v), &t, &n));
    assert_false(sb_secret_bearer(NULL, 0, &t, &n));
}

static char dir[64];

static void write_file(const char *name, const char *text)
{
    char tmp[128], path[128];
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(tmp, 0600);
    assert_int_equal(rename(tmp, path), 0); /* a new inode: seen as a change */
}

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/sb-secret-XXXXXX");
    return mkdtemp(dir) == NULL;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

static void test_sb_secret_load_and_refresh_rotation(void **state)
{
    char path[128], why[256];
    snprintf(path, sizeof(path), "%s/keys", dir);
    struct sb_secret *s = NULL;
    assert_int_equal(sb_secret_load(path, "api_key_file", 16, &s, why, sizeof(why)), SB_EIO);
    assert_non_null(strstr(why, path));
    write_file("keys", K1 "\n");
    assert_int_equal(sb_secret_load(path, "api_key_file", 16, &s, why, sizeof(why)), SB_OK);
    assert_true(match(s, K1));
    int64_t t = 10000;
    assert_int_equal(sb_secret_refresh(s, t), 0); /* unchanged */
    /* Rotation: the new key is added, then the old one removed. */
    write_file("keys", K1 "\n" K2 "\n");
    assert_int_equal(sb_secret_refresh(s, t + 10), 0); /* checked less than a second ago */
    assert_int_equal(sb_secret_refresh(s, t + 1000), 1);
    assert_true(match(s, K1));
    assert_true(match(s, K2));
    write_file("keys", K2 "\n");
    assert_int_equal(sb_secret_refresh(s, t + 2000), 1);
    assert_false(match(s, K1));
    assert_true(match(s, K2));
    assert_string_equal(sb_secret_first(s, NULL), K2);
    /* A bad file keeps the last good keys; warned once, then quiet until it changes. */
    write_file("keys", "short\n");
    assert_int_equal(sb_secret_refresh(s, t + 3000), -1);
    assert_true(match(s, K2));
    assert_int_equal(sb_secret_refresh(s, t + 4000), -1);
    assert_true(match(s, K2));
    /* A removed file too. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(sb_secret_refresh(s, t + 5000), -1);
    assert_true(match(s, K2));
    write_file("keys", "# back\n" K1 "\n");
    assert_int_equal(sb_secret_refresh(s, t + 6000), 1);
    assert_true(match(s, K1));
    assert_false(match(s, K2));
    sb_secret_destroy(s);
    /* A directory is not a key file. */
    assert_int_equal(sb_secret_load(dir, "x", 16, &s, why, sizeof(why)), SB_EIO);
}

static void test_sb_secret_parse_set_never_refreshes(void **state)
{
    enum sb_err rc;
    char why[128];
    struct sb_secret *s = parse(K1, 16, &rc, why);
    assert_int_equal(sb_secret_refresh(s, 5000), 0);
    assert_int_equal(sb_secret_refresh(NULL, 5000), 0);
    sb_secret_destroy(s);
    sb_secret_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sb_secret_parse_comments_blank_trim),
        cmocka_unit_test(test_sb_secret_parse_refuses_bad_files),
        cmocka_unit_test(test_sb_secret_match_exact_only),
        cmocka_unit_test(test_sb_secret_bearer_parsing),
        cmocka_unit_test(test_sb_secret_load_and_refresh_rotation),
        cmocka_unit_test(test_sb_secret_parse_set_never_refreshes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
