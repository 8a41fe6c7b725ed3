/* Subscription filters (cp_filter): grammar, evaluation on metadata, refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "cp_filter.h"

static struct cp_filter *parse_ok(const char *text)
{
    struct cp_filter *f = NULL;
    char err[128] = "";
    enum sb_err e = cp_filter_parse(text, strlen(text), &f, err, sizeof(err));
    if (e != SB_OK)
        fail_msg("%s: %s", text, err);
    return f;
}

static bool parse_fails(const char *text)
{
    struct cp_filter *f = NULL;
    char err[128] = "";
    enum sb_err e = cp_filter_parse(text, strlen(text), &f, err, sizeof(err));
    if (e == SB_OK)
        cp_filter_free(f);
    else
        assert_true(err[0] != '\0');
    return e == SB_EINVAL;
}

static bool matches(const char *text, const char *k1, const char *v1, const char *k2,
                    const char *v2)
{
    struct cp_kv kv[2] = {{(char *)k1, (char *)v1}, {(char *)k2, (char *)v2}};
    size_t n = k2 != NULL ? 2 : k1 != NULL ? 1 : 0;
    struct cp_filter *f = parse_ok(text);
    bool m = cp_filter_match(f, kv, n);
    cp_filter_free(f);
    return m;
}

static void test_filter_parse_blank_is_no_filter(void **state)
{
    (void)state;
    struct cp_filter *f = (struct cp_filter *)1;
    assert_int_equal(cp_filter_parse("  ", 2, &f, NULL, 0), SB_OK);
    assert_null(f);
    assert_true(cp_filter_match(NULL, NULL, 0));
}

static void test_filter_match_eq_and_ne(void **state)
{
    (void)state;
    assert_true(matches("priority == high", "priority", "high", NULL, NULL));
    assert_false(matches("priority == high", "priority", "low", NULL, NULL));
    assert_false(matches("priority == high", NULL, NULL, NULL, NULL));
    assert_true(matches("region != eu", "region", "us", NULL, NULL));
    assert_false(matches("region != eu", "region", "eu", NULL, NULL));
    assert_true(matches("region != eu", NULL, NULL, NULL, NULL));
    assert_true(matches("priority==high", "priority", "high", NULL, NULL));
    assert_false(matches("priority == High", "priority", "high", NULL, NULL));
}

static void test_filter_match_in_lists(void **state)
{
    (void)state;
    const char *f = "priority in [high, medium]";
    assert_true(matches(f, "priority", "high", NULL, NULL));
    assert_true(matches(f, "priority", "medium", NULL, NULL));
    assert_false(matches(f, "priority", "low", NULL, NULL));
    assert_false(matches(f, NULL, NULL, NULL, NULL));
    assert_true(matches("priority in [high]", "priority", "high", NULL, NULL));
    assert_true(matches("region not in [eu,us]", "region", "apac", NULL, NULL));
    assert_false(matches("region not in [eu,us]", "region", "us", NULL, NULL));
    assert_true(matches("region not in [eu]", NULL, NULL, NULL, NULL));
}

static void test_filter_match_and_combines(void **state)
{
    (void)state;
    const char *f = "priority in [high, medium] and region != eu";
    assert_true(matches(f, "priority", "high", "region", "us"));
    assert_false(matches(f, "priority", "high", "region", "eu"));
    assert_false(matches(f, "priority", "low", "region", "us"));
    assert_true(matches(f, "region", "us", "priority", "medium"));
}

static void test_filter_match_quoted_values(void **state)
{
    (void)state;
    assert_true(matches("region == \"us west\"", "region", "us west", NULL, NULL));
    assert_true(matches("tag in ['a b', \"c,d\"]", "tag", "c,d", NULL, NULL));
    assert_true(matches("tag == ''", "tag", "", NULL, NULL));
    assert_true(matches("v == 1.5", "v", "1.5", NULL, NULL));
}

static void test_filter_parse_refuses_bad_syntax(void **state)
{
    (void)state;
    assert_true(parse_fails("priority"));
    assert_true(parse_fails("priority ="));
    assert_true(parse_fails("priority = high"));
    assert_true(parse_fails("priority == "));
    assert_true(parse_fails("== high"));
    assert_true(parse_fails("priority in high"));
    assert_true(parse_fails("priority in [high"));
    assert_true(parse_fails("priority in []"));
    assert_true(parse_fails("priority in [high,]"));
    assert_true(parse_fails("priority not [high]"));
    assert_true(parse_fails("a == b and"));
    assert_true(parse_fails("a == b or c == d"));
    assert_true(parse_fails("a == b c == d"));
    assert_true(parse_fails("a == \"unterminated"));
    assert_true(parse_fails("a == b; drop"));
    assert_true(parse_fails("and == b"));
    assert_true(parse_fails("a == b\x01"));
}

static void test_filter_parse_enforces_limits(void **state)
{
    (void)state;
    char buf[CP_FILTER_MAX + 64] = "";
    for (int i = 0; i <= CP_FILTER_MAX_CONDS; i++)
        strcat(buf, i ? " and a==b" : "a==b");
    assert_true(parse_fails(buf));
    strcpy(buf, "a in [");
    for (int i = 0; i <= CP_FILTER_MAX_VALUES; i++)
        strcat(buf, i ? ",v" : "v");
    strcat(buf, "]");
    assert_true(parse_fails(buf));
    memset(buf, 'a', CP_FILTER_MAX + 1);
    buf[CP_FILTER_MAX + 1] = '\0';
    assert_true(parse_fails(buf));
    struct cp_filter *f;
    assert_int_equal(cp_filter_parse("a == b\0c", 8, &f, NULL, 0), SB_EINVAL);
}

static void test_filter_parse_does_not_need_nul(void **state)
{
    (void)state;
    const char text[] = "k == vXYZ";
    struct cp_filter *f = NULL;
    assert_int_equal(cp_filter_parse(text, 6, &f, NULL, 0), SB_OK);
    struct cp_kv kv = {"k", "v"};
    assert_true(cp_filter_match(f, &kv, 1));
    cp_filter_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_parse_blank_is_no_filter),
        cmocka_unit_test(test_filter_match_eq_and_ne),
        cmocka_unit_test(test_filter_match_in_lists),
        cmocka_unit_test(test_filter_match_and_combines),
        cmocka_unit_test(test_filter_match_quoted_values),
        cmocka_unit_test(test_filter_parse_refuses_bad_syntax),
        cmocka_unit_test(test_filter_parse_enforces_limits),
        cmocka_unit_test(test_filter_parse_does_not_need_nul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
