/* Channel patterns for ListChannels (cp_glob): `*` stays inside a segment, `**` crosses dots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "cp_glob.h"

static void test_glob_match_literal_is_exact(void **state)
{
    (void)state;
    assert_true(cp_glob_match("news", "news"));
    assert_false(cp_glob_match("news", "news2"));
    assert_false(cp_glob_match("news", "new"));
    assert_false(cp_glob_match("news", ""));
}

static void test_glob_match_star_stays_in_segment(void **state)
{
    (void)state;
    assert_true(cp_glob_match("user.*.notifications", "user.alice.notifications"));
    assert_true(cp_glob_match("user.*.notifications", "user..notifications"));
    assert_false(cp_glob_match("user.*.notifications", "user.a.b.notifications"));
    assert_false(cp_glob_match("user.*.notifications", "user.alice.messages"));
    assert_true(cp_glob_match("user.*", "user.alice"));
    assert_false(cp_glob_match("user.*", "user.alice.notifications"));
    assert_true(cp_glob_match("*", "news"));
    assert_false(cp_glob_match("*", "a.b"));
    assert_true(cp_glob_match("n*s", "news"));
    assert_true(cp_glob_match("n*s", "ns"));
    assert_true(cp_glob_match("*-eu", "sports-eu"));
}

static void test_glob_match_double_star_crosses_dots(void **state)
{
    (void)state;
    assert_true(cp_glob_match("user.**", "user.a.b.c"));
    assert_true(cp_glob_match("**.notifications", "user.alice.notifications"));
    assert_true(cp_glob_match("a.**.z", "a.b.c.z"));
    assert_false(cp_glob_match("a.**.z", "b.c.z"));
    assert_true(cp_glob_match("***", "x.y"));
}

static void test_glob_match_empty_and_double_star_match_all(void **state)
{
    (void)state;
    assert_true(cp_glob_match("", "anything.at.all"));
    assert_true(cp_glob_match("**", "a.b"));
    assert_true(cp_glob_match("**", "a"));
}

static void test_glob_match_many_stars_stay_fast(void **state)
{
    (void)state;
    char pat[CP_GLOB_MAX + 1];
    for (int i = 0; i < CP_GLOB_MAX; i += 2) {
        pat[i] = '*';
        pat[i + 1] = 'a';
    }
    pat[CP_GLOB_MAX] = '\0';
    char text[129];
    memset(text, 'a', 127);
    text[127] = 'b';
    text[128] = '\0';
    assert_false(cp_glob_match(pat, text));
    assert_true(cp_glob_match("*a*a*a*a*a*a*b", text));
}

static void test_glob_is_valid_rejects_bad_characters(void **state)
{
    (void)state;
    assert_true(cp_glob_is_valid(""));
    assert_true(cp_glob_is_valid("user.*.x"));
    assert_true(cp_glob_is_valid("**"));
    assert_false(cp_glob_is_valid("a b"));
    assert_false(cp_glob_is_valid("a/b"));
    assert_false(cp_glob_is_valid("a?"));
    assert_false(cp_glob_is_valid(NULL));
    char big[CP_GLOB_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_false(cp_glob_is_valid(big));
    assert_false(cp_glob_match(big, "a"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glob_match_literal_is_exact),
        cmocka_unit_test(test_glob_match_star_stays_in_segment),
        cmocka_unit_test(test_glob_match_double_star_crosses_dots),
        cmocka_unit_test(test_glob_match_empty_and_double_star_match_all),
        cmocka_unit_test(test_glob_match_many_stars_stay_fast),
        cmocka_unit_test(test_glob_is_valid_rejects_bad_characters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
