/* dp_sse_fmt: event rendering and stream positions (the SSE `id:`). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dp_sse_fmt.h"

static void check_event(const char *json, const char *expect)
{
    char *out;
    size_t n;
    assert_int_equal(dp_sse_fmt_event(json, strlen(json), &out, &n), SB_OK);
    assert_int_equal(n, strlen(expect));
    assert_string_equal(out, expect);
    free(out);
}

static void test_dp_sse_fmt_event_lines(void **state)
{
    check_event("{\"type\":\"message\",\"data\":1}",
                "event: message\ndata: {\"type\":\"message\",\"data\":1}\n\n");
    /* raw line breaks (JSON whitespace) become new data: lines; CRLF counts once */
    check_event("{\"type\":\"ack\",\n\"a\":\r\n1\r}",
                "event: ack\ndata: {\"type\":\"ack\",\ndata: \"a\":\ndata: 1\ndata: }\n\n");
    /* type not first: slow path */
    check_event("{\"a\":1,\"type\":\"presence\"}",
                "event: presence\ndata: {\"a\":1,\"type\":\"presence\"}\n\n");
    /* no usable type: "message" */
    check_event("{\"a\":1}", "event: message\ndata: {\"a\":1}\n\n");
    check_event("{\"type\":\"a\\nb\"}", "event: message\ndata: {\"type\":\"a\\nb\"}\n\n");
}

static void test_dp_sse_fmt_pos_roundtrip(void **state)
{
    struct dp_sse_pos p = {0};
    char buf[256];
    /* the empty position has a value of its own, which parses back to empty */
    assert_int_equal(dp_sse_fmt_pos_encode(&p, buf, sizeof(buf)), 1);
    assert_string_equal(buf, DP_SSE_POS_EMPTY);
    assert_int_equal(dp_sse_fmt_pos_encode(&p, buf, 1), 0); /* does not fit */
    struct dp_sse_pos e = {0};
    assert_int_equal(dp_sse_fmt_pos_set(&e, "x", 1), SB_OK);
    assert_int_equal(dp_sse_fmt_pos_parse(DP_SSE_POS_EMPTY, 1, &e), SB_OK);
    assert_int_equal(e.n, 0);
    dp_sse_fmt_pos_fini(&e);
    assert_int_equal(dp_sse_fmt_pos_set(&p, "r1", 17), SB_OK);
    assert_int_equal(dp_sse_fmt_pos_set(&p, "a:b", 5), SB_OK);
    assert_int_equal(dp_sse_fmt_pos_set(&p, "r1", 3), SB_OK); /* never goes back */
    assert_int_equal(dp_sse_fmt_pos_encode(&p, buf, sizeof(buf)), strlen("r1:17,a:b:5"));
    assert_string_equal(buf, "r1:17,a:b:5");
    assert_int_equal(dp_sse_fmt_pos_encode(&p, buf, 8), 0); /* does not fit */
    struct dp_sse_pos q = {0};
    assert_int_equal(dp_sse_fmt_pos_parse("r1:17,a:b:5", 11, &q), SB_OK);
    assert_int_equal(q.n, 2);
    assert_int_equal(dp_sse_fmt_pos_get(&q, "a:b"), 5);
    assert_int_equal(dp_sse_fmt_pos_get(&q, "r1"), 17);
    assert_int_equal(dp_sse_fmt_pos_get(&q, "zz"), -1);
    assert_int_equal(dp_sse_fmt_pos_parse("r1:1,r1:9", 9, &q), SB_OK);
    assert_int_equal(q.n, 1);
    assert_int_equal(dp_sse_fmt_pos_get(&q, "r1"), 9);
    assert_int_equal(dp_sse_fmt_pos_parse("r1:9223372036854775807", 22, &q), SB_OK);
    dp_sse_fmt_pos_fini(&p);
    dp_sse_fmt_pos_fini(&q);
}

static void test_dp_sse_fmt_pos_parse_rejects(void **state)
{
    const char *bad[] = {"",
                         "r1",
                         "r1:",
                         ":5",
                         "r1:x",
                         "r1:-1",
                         "r1:1,",
                         ",r1:1",
                         "r 1:1",
                         "r1:9223372036854775808",
                         "r1:00000000000000000001",
                         "r1:1;r2:2",
                         "--",
                         "-,r1:1",
                         "r1:1,-"};
    struct dp_sse_pos q = {0};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (dp_sse_fmt_pos_parse(bad[i], strlen(bad[i]), &q) != SB_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(q.n, 0);
    }
    char many[DP_SSE_POS_MAX * 8 + 16] = "";
    size_t o = 0;
    for (int i = 0; i <= DP_SSE_POS_MAX; i++)
        o += (size_t)snprintf(many + o, sizeof(many) - o, "%sr%d:1", i ? "," : "", i);
    assert_int_equal(dp_sse_fmt_pos_parse(many, o, &q), SB_EFULL);
    dp_sse_fmt_pos_fini(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dp_sse_fmt_event_lines),
        cmocka_unit_test(test_dp_sse_fmt_pos_roundtrip),
        cmocka_unit_test(test_dp_sse_fmt_pos_parse_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
