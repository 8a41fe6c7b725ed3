/* dp_buf: reference counting, WebSocket pre-framing, lazy SSE rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dp_buf.h"

static void test_dp_buf_refcount_and_ws_header(void **state)
{
    struct dp_buf *b = dp_buf_create("{\"a\":1}", 7, "r1", 5);
    assert_non_null(b);
    assert_int_equal(b->refs, 1);
    assert_ptr_equal(dp_buf_ref(b), b);
    assert_int_equal(b->refs, 2);
    dp_buf_unref(b);
    assert_int_equal(b->refs, 1);
    assert_string_equal(b->json, "{\"a\":1}");
    assert_string_equal(b->room_id, "r1");
    assert_int_equal(b->seq, 5);
    assert_int_equal(b->ws_len, 9);
    assert_int_equal(b->ws[0], 0x81);
    assert_int_equal(b->ws[1], 7);
    assert_memory_equal(b->ws + 2, "{\"a\":1}", 7);
    assert_true(b->ws >= b->mem && (size_t)(b->ws - b->mem) + b->ws_len <= DP_BUF_PRE + 7);
    dp_buf_unref(b);
    dp_buf_unref(NULL);
}

static void test_dp_buf_ws_header_sizes(void **state)
{
    unsigned char h[10];
    assert_int_equal(dp_buf_ws_header(125, h), 2);
    assert_int_equal(h[1], 125);
    assert_int_equal(dp_buf_ws_header(126, h), 4);
    assert_int_equal(h[1], 126);
    assert_int_equal(h[2], 0);
    assert_int_equal(h[3], 126);
    assert_int_equal(dp_buf_ws_header(65535, h), 4);
    assert_int_equal(dp_buf_ws_header(65536, h), 10);
    assert_int_equal(h[1], 127);
    assert_int_equal(h[7], 1);
    assert_int_equal(h[8], 0);
    assert_int_equal(h[9], 0);
    char *big = malloc(70000);
    memset(big, 'x', 70000);
    struct dp_buf *b = dp_buf_create(big, 70000, NULL, 0);
    assert_int_equal(b->ws_len, 70010);
    assert_int_equal(b->ws[1], 127);
    dp_buf_unref(b);
    free(big);
}

static void test_dp_buf_sse_lazy_once(void **state)
{
    struct dp_buf *b = dp_buf_create("{\"type\":\"message\"}", 18, NULL, 0);
    assert_null(b->sse);
    const char *s1, *s2;
    size_t n1, n2;
    assert_int_equal(dp_buf_sse(b, &s1, &n1), SB_OK);
    assert_int_equal(dp_buf_sse(b, &s2, &n2), SB_OK);
    assert_ptr_equal(s1, s2);
    assert_int_equal(n1, strlen("event: message\ndata: {\"type\":\"message\"}\n\n"));
    assert_memory_equal(s1, "event: message\ndata: {\"type\":\"message\"}\n\n", n1);
    dp_buf_unref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dp_buf_refcount_and_ws_header),
        cmocka_unit_test(test_dp_buf_ws_header_sizes),
        cmocka_unit_test(test_dp_buf_sse_lazy_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
