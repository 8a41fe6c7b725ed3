/* sb_json: the JSON validity scanner, against jansson's own answer on hand-picked and mutated
 * inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sb_json.h"

static void test_sb_json_validation(void **state)
{
    (void)state;
    assert_true(sb_json_is_valid("1", 1));
    assert_true(sb_json_is_valid(" {\"a\":[]} ", 10));
    assert_true(sb_json_is_valid("\"x\"", 3));
    assert_false(sb_json_is_valid("", 0));
    assert_false(sb_json_is_valid("{", 1));
    assert_false(sb_json_is_valid("1 2", 3));
    assert_false(sb_json_is_valid("\"\xff\"", 3));
    assert_false(sb_json_is_valid("nul", 3));
    assert_true(sb_json_is_utf8("h\xc3\xa9"));
    assert_false(sb_json_is_utf8("\xc3"));
}

/* The fast scanner agrees with jansson on edge cases and on many mutations of them. */
static void test_sb_json_validation_matches_jansson(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "0",
        "-0",
        "01",
        "-",
        "1.",
        ".5",
        "1.5",
        "1e5",
        "1E+5",
        "1e",
        "1e-",
        "-1.5e-3",
        "+1",
        "123456789012345678",
        "1234567890123456789",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "1e400",
        "1e-400",
        "true",
        "false",
        "null",
        "tru",
        "nulll",
        "True",
        "[]",
        "{}",
        "[1,]",
        "[,1]",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{a:1}",
        "{\"a\":1 \"b\":2}",
        "[1 2]",
        "[[[[]]]]",
        " \t\r\n1",
        "1 \f",
        "\"\\u0000\"",
        "\"\\u0041\"",
        "\"\\ud83d\\ude00\"",
        "\"\\ud83d\"",
        "\"\\ude00\"",
        "\"\\ud83d\\u0041\"",
        "\"\\uzzzz\"",
        "\"\\u12\"",
        "\"\\x\"",
        "\"\\/\"",
        "\"\\b\\f\\n\\r\\t\\\"\\\\\"",
        "\"\x7f\"",
        "\"\x1f\"",
        "\"\t\"",
        "\"\xc3\xa9\"",
        "\"\xc0\xaf\"",
        "\"\xc1\xbf\"",
        "\"\xe0\x80\xaf\"",
        "\"\xed\xa0\x80\"",
        "\"\xef\xbf\xbf\"",
        "\"\xf0\x9f\x98\x80\"",
        "\"\xf4\x8f\xbf\xbf\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\xf5\x80\x80\x80\"",
        "\"\xe2\x82\"",
        "\"\x80\"",
        "\"abc",
        "\"",
        "{\"a\":[1,{\"b\":null}],\"c\":\"d\"}",
        "[1.0e+2,-0.5,0e0]",
        "\xef\xbb\xbf"
        "1",
        "123456789012345678901234567890.5",
    };
    char buf[128];
    unsigned seed = 12345;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = strlen(cases[i]);
        bool want = sb_json_is_valid_jansson(cases[i], n);
        if (sb_json_is_valid(cases[i], n) != want)
            fail_msg("case %zu \"%s\": jansson says %d", i, cases[i], (int)want);
        /* Mutations: one byte replaced, one dropped, each position. */
        for (size_t k = 0; k < n && n < sizeof(buf); k++) {
            memcpy(buf, cases[i], n);
            seed = seed * 1103515245u + 12345u;
            static const char pool[] = "{}[]\",:\\u0123456789eE.-+ntf\x80\xc3\xed\xff \x01";
            buf[k] = pool[(seed >> 16) % (sizeof(pool) - 1)];
            want = sb_json_is_valid_jansson(buf, n);
            if (sb_json_is_valid(buf, n) != want)
                fail_msg("mutation of case %zu at %zu: jansson says %d", i, k, (int)want);
            memcpy(buf, cases[i], k);
            memcpy(buf + k, cases[i] + k + 1, n - k - 1);
            want = sb_json_is_valid_jansson(buf, n - 1);
            if (sb_json_is_valid(buf, n - 1) != want)
                fail_msg("deletion in case %zu at %zu: jansson says %d", i, k, (int)want);
        }
    }
    /* NUL bytes (jansson may take one for the end of input): the same answer. */
    static const struct {
        const char *s;
        size_t n;
    } nul[] = {{"1\0", 2}, {"1\0xyz", 5}, {"[\"a\"\0]", 6}, {"\"a\0\"", 4}, {"\0", 1}};
    for (size_t i = 0; i < sizeof(nul) / sizeof(nul[0]); i++)
        assert_int_equal(sb_json_is_valid(nul[i].s, nul[i].n),
                         sb_json_is_valid_jansson(nul[i].s, nul[i].n));
    /* Deep nesting: jansson decides past the scanner's depth. */
    char deep[400];
    memset(deep, '[', 200);
    memset(deep + 200, ']', 200);
    assert_int_equal(sb_json_is_valid(deep, 400), sb_json_is_valid_jansson(deep, 400));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sb_json_validation),
        cmocka_unit_test(test_sb_json_validation_matches_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
