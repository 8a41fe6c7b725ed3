/* Frame JSON: raw data splice, string escaping, optional fields, and that every frame parses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "cp_json.h"

static void assert_parses(const struct cp_buf *b)
{
    assert_false(b->failed);
    json_error_t err;
    json_t *v = json_loadb(b->data, b->len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    assert_non_null(v);
    json_decref(v);
}

static void test_json_message_splices_data_raw(void **state)
{
    (void)state;
    const char *data = "{ \"b\" : [1, 2.50, \"\\u00e9\"] }";
    struct cp_message m = {.id = "m-1",
                           .seq = 17,
                           .room_id = "r1",
                           .user_id = "alice",
                           .timestamp = 1796008767028LL,
                           .data = (char *)data,
                           .data_len = strlen(data)};
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_message(&b, &m);
    assert_string_equal(b.data,
                        "{\"type\":\"message\",\"id\":\"m-1\",\"seq\":17,\"room_id\":\"r1\","
                        "\"user_id\":\"alice\",\"data\":{ \"b\" : [1, 2.50, \"\\u00e9\"] },"
                        "\"timestamp\":\"2026-11-30T03:19:27.028Z\"}");
    assert_parses(&b);
    cp_buf_fini(&b);
}

static void test_json_message_optional_fields(void **state)
{
    (void)state;
    struct cp_kv kv[2] = {{"k", "v\"1"}, {"x\n", "\x01"}};
    struct cp_message m = {.id = "m-2",
                           .seq = 1,
                           .room_id = "r1",
                           .thread_id = "t1",
                           .metadata = kv,
                           .n_metadata = 2,
                           .timestamp = 0,
                           .data = "null",
                           .data_len = 4};
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_message(&b, &m);
    assert_non_null(strstr(b.data, "\"data\":null,\"thread_id\":\"t1\","
                                   "\"metadata\":{\"k\":\"v\\\"1\",\"x\\n\":\"\\u0001\"}"));
    assert_null(strstr(b.data, "user_id"));
    assert_parses(&b);
    cp_buf_fini(&b);
}

static void test_json_escapes_control_quote_backslash(void **state)
{
    (void)state;
    struct cp_buf b;
    cp_buf_init(&b);
    const char s[] = "a\"b\\c\n\r\t\b\f\x1f\xc3\xa9";
    cp_buf_json_str(&b, s, sizeof(s) - 1);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u001f\xc3\xa9\"");
    assert_parses(&b);
    cp_buf_fini(&b);
}

static void test_json_other_frames(void **state)
{
    (void)state;
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_system(&b, "[1]", 3, 0);
    assert_string_equal(
        b.data, "{\"type\":\"system\",\"data\":[1],\"timestamp\":\"1970-01-01T00:00:00.000Z\"}");
    cp_buf_reset(&b);
    cp_json_direct(&b, "m-9", NULL, "\"hi\"", 4, 0);
    assert_string_equal(b.data, "{\"type\":\"message\",\"id\":\"m-9\",\"data\":\"hi\","
                                "\"timestamp\":\"1970-01-01T00:00:00.000Z\"}");
    cp_buf_reset(&b);
    cp_json_membership(&b, "leave", "r1", "bob", 0);
    assert_string_equal(b.data, "{\"type\":\"leave\",\"room_id\":\"r1\",\"user_id\":\"bob\","
                                "\"timestamp\":\"1970-01-01T00:00:00.000Z\"}");
    cp_buf_reset(&b);
    cp_json_typing(&b, "r1", "bob", false);
    assert_string_equal(
        b.data, "{\"type\":\"typing\",\"room_id\":\"r1\",\"user_id\":\"bob\",\"typing\":false}");
    cp_buf_reset(&b);
    struct cp_presence_view p = {.user_id = "a", .status = "away", .device_name = "pixel"};
    cp_json_presence(&b, &p);
    assert_string_equal(b.data, "{\"type\":\"presence\",\"user_id\":\"a\",\"status\":\"away\","
                                "\"device\":{\"name\":\"pixel\"},"
                                "\"timestamp\":\"1970-01-01T00:00:00.000Z\"}");
    assert_parses(&b);
    cp_buf_fini(&b);
}

static void test_json_validation(void **state)
{
    (void)state;
    assert_true(cp_json_is_valid("1", 1));
    assert_true(cp_json_is_valid(" {\"a\":[]} ", 10));
    assert_true(cp_json_is_valid("\"x\"", 3));
    assert_false(cp_json_is_valid("", 0));
    assert_false(cp_json_is_valid("{", 1));
    assert_false(cp_json_is_valid("1 2", 3));
    assert_false(cp_json_is_valid("\"\xff\"", 3));
    assert_false(cp_json_is_valid("nul", 3));
    assert_true(cp_json_is_utf8("h\xc3\xa9"));
    assert_false(cp_json_is_utf8("\xc3"));
}

/* The fast scanner agrees with jansson on edge cases and on many mutations of them. */
static void test_json_validation_matches_jansson(void **state)
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
        bool want = cp_json_is_valid_jansson(cases[i], n);
        if (cp_json_is_valid(cases[i], n) != want)
            fail_msg("case %zu \"%s\": jansson says %d", i, cases[i], (int)want);
        /* Mutations: one byte replaced, one dropped, each position. */
        for (size_t k = 0; k < n && n < sizeof(buf); k++) {
            memcpy(buf, cases[i], n);
            seed = seed * 1103515245u + 12345u;
            static const char pool[] = "{}[]\",:\\u0123456789eE.-+ntf\x80\xc3\xed\xff \x01";
            buf[k] = pool[(seed >> 16) % (sizeof(pool) - 1)];
            want = cp_json_is_valid_jansson(buf, n);
            if (cp_json_is_valid(buf, n) != want)
                fail_msg("mutation of case %zu at %zu: jansson says %d", i, k, (int)want);
            memcpy(buf, cases[i], k);
            memcpy(buf + k, cases[i] + k + 1, n - k - 1);
            want = cp_json_is_valid_jansson(buf, n - 1);
            if (cp_json_is_valid(buf, n - 1) != want)
                fail_msg("deletion in case %zu at %zu: jansson says %d", i, k, (int)want);
        }
    }
    /* NUL bytes (jansson may take one for the end of input): the same answer. */
    static const struct {
        const char *s;
        size_t n;
    } nul[] = {{"1\0", 2}, {"1\0xyz", 5}, {"[\"a\"\0]", 6}, {"\"a\0\"", 4}, {"\0", 1}};
    for (size_t i = 0; i < sizeof(nul) / sizeof(nul[0]); i++)
        assert_int_equal(cp_json_is_valid(nul[i].s, nul[i].n),
                         cp_json_is_valid_jansson(nul[i].s, nul[i].n));
    /* Deep nesting: jansson decides past the scanner's depth. */
    char deep[400];
    memset(deep, '[', 200);
    memset(deep + 200, ']', 200);
    assert_int_equal(cp_json_is_valid(deep, 400), cp_json_is_valid_jansson(deep, 400));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_message_splices_data_raw),
        cmocka_unit_test(test_json_validation_matches_jansson),
        cmocka_unit_test(test_json_message_optional_fields),
        cmocka_unit_test(test_json_escapes_control_quote_backslash),
        cmocka_unit_test(test_json_other_frames),
        cmocka_unit_test(test_json_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
