/* dp_wsrx: message reassembly and its size limits, including declared lengths that would
 * overflow a sum and fragments that add up past the hard limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dp_wsrx.h"

#define SOFT 100
#define HARD 1000

static enum dp_wsrx_verdict feed(struct dp_wsrx *rx, const char *data, size_t len,
                                 uint64_t remaining, bool final, const char **msg, size_t *n)
{
    const struct dp_wsrx_chunk c = {data, len, remaining, final, false};
    return dp_wsrx_feed(rx, SOFT, HARD, &c, msg, n);
}

static void test_dp_wsrx_whole_message_is_not_copied(void **state)
{
    struct dp_wsrx rx = {0};
    const char *m = NULL;
    size_t n = 0;
    const char text[] = "{\"type\":\"ping\"}";
    assert_int_equal(feed(&rx, text, sizeof(text) - 1, 0, true, &m, &n), DP_WSRX_MESSAGE);
    assert_ptr_equal(m, text);
    assert_int_equal(n, sizeof(text) - 1);
    assert_null(rx.buf);
    dp_wsrx_release(&rx);
    dp_wsrx_fini(&rx);
}

/* The reported attack: 9 bytes with FIN=0, then a continuation announcing 2^63-1 bytes. The
 * sum of received and announced bytes would be negative as a signed 64-bit value. */
static void test_dp_wsrx_huge_declared_length_closes(void **state)
{
    struct dp_wsrx rx = {0};
    const char *m = NULL;
    size_t n = 0;
    assert_int_equal(feed(&rx, "{\"type\":\"", 9, 0, false, &m, &n), DP_WSRX_MORE);
    assert_int_equal(feed(&rx, "    ", 4, UINT64_C(0x7FFFFFFFFFFFFFFF) - 4, false, &m, &n),
                     DP_WSRX_CLOSE);
    assert_null(rx.buf);
    /* everything after is refused without being buffered */
    assert_int_equal(feed(&rx, "    ", 4, 0, true, &m, &n), DP_WSRX_CLOSE);
    assert_null(rx.buf);
    /* the largest declared lengths, with and without bytes before them */
    struct dp_wsrx r2 = {0};
    assert_int_equal(feed(&r2, NULL, 0, UINT64_MAX, false, &m, &n), DP_WSRX_CLOSE);
    struct dp_wsrx r3 = {0};
    assert_int_equal(feed(&r3, "x", 1, UINT64_MAX, false, &m, &n), DP_WSRX_CLOSE);
    struct dp_wsrx r4 = {0};
    assert_int_equal(feed(&r4, "x", 1, 0, false, &m, &n), DP_WSRX_MORE);
    assert_int_equal(feed(&r4, "x", 1, UINT64_MAX - 1, false, &m, &n), DP_WSRX_CLOSE);
    dp_wsrx_fini(&rx);
    dp_wsrx_fini(&r2);
    dp_wsrx_fini(&r3);
    dp_wsrx_fini(&r4);
}

/* Many small fragments, each far under every limit, whose total passes the hard limit. */
static void test_dp_wsrx_small_fragments_add_up_to_close(void **state)
{
    struct dp_wsrx rx = {0};
    const char *m = NULL;
    size_t n = 0;
    char chunk[10];
    memset(chunk, ' ', sizeof(chunk));
    int i;
    enum dp_wsrx_verdict v = DP_WSRX_MORE;
    for (i = 0; i < 1000 && v == DP_WSRX_MORE; i++)
        v = feed(&rx, chunk, sizeof(chunk), 0, false, &m, &n);
    assert_int_equal(v, DP_WSRX_CLOSE);
    assert_int_equal(i, HARD / 10 + 1); /* the fragment that passes the limit */
    assert_null(rx.buf);                /* dropped since it passed the soft limit */
    dp_wsrx_fini(&rx);
}

/* A fragmented message just under the soft limit is delivered whole; one byte more is
 * answered with message_too_large, and the connection goes on. */
static void test_dp_wsrx_fragmented_under_limit(void **state)
{
    struct dp_wsrx rx = {0};
    const char *m = NULL;
    size_t n = 0;
    char data[SOFT];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)('a' + i % 26);
    /* three fragments: 40, 40 (of which 10 announced in a later callback), 20 */
    assert_int_equal(feed(&rx, data, 40, 0, false, &m, &n), DP_WSRX_MORE);
    assert_int_equal(feed(&rx, data + 40, 30, 10, false, &m, &n), DP_WSRX_MORE);
    assert_int_equal(feed(&rx, data + 70, 10, 0, false, &m, &n), DP_WSRX_MORE);
    assert_int_equal(feed(&rx, data + 80, 20, 0, true, &m, &n), DP_WSRX_MESSAGE);
    assert_int_equal(n, SOFT);
    assert_memory_equal(m, data, SOFT);
    dp_wsrx_release(&rx);
    assert_null(rx.buf);
    /* one byte over, announced by the last frame's header: dropped, answered at the end */
    assert_int_equal(feed(&rx, data, 50, 0, false, &m, &n), DP_WSRX_MORE);
    assert_int_equal(feed(&rx, data, 10, 41, false, &m, &n), DP_WSRX_MORE);
    assert_null(rx.buf);
    assert_int_equal(feed(&rx, data, 41, 0, true, &m, &n), DP_WSRX_TOO_LARGE);
    assert_int_equal(n, SOFT + 1);
    dp_wsrx_release(&rx);
    /* and the next message is fine */
    assert_int_equal(feed(&rx, "{}", 2, 0, true, &m, &n), DP_WSRX_MESSAGE);
    assert_int_equal(n, 2);
    dp_wsrx_fini(&rx);
}

/* Exactly at the hard limit is not past it; one byte more closes. */
static void test_dp_wsrx_hard_limit_boundary(void **state)
{
    struct dp_wsrx rx = {0};
    const char *m = NULL;
    size_t n = 0;
    assert_int_equal(feed(&rx, NULL, 0, HARD, false, &m, &n), DP_WSRX_MORE);
    char *big = calloc(1, HARD + 1);
    assert_non_null(big);
    assert_int_equal(feed(&rx, big, HARD, 0, true, &m, &n), DP_WSRX_TOO_LARGE);
    dp_wsrx_release(&rx);
    assert_int_equal(feed(&rx, big, HARD, 1, false, &m, &n), DP_WSRX_CLOSE);
    free(big);
    dp_wsrx_fini(&rx);
}

static void test_dp_wsrx_binary_is_counted_not_buffered(void **state)
{
    struct dp_wsrx rx = {0};
    const char *m = NULL;
    size_t n = 0;
    const struct dp_wsrx_chunk a = {"\x01\x02", 2, 0, false, true};
    /* a continuation frame carries no type of its own: the message's first frame decides */
    const struct dp_wsrx_chunk b = {"\x03", 1, 0, true, false};
    assert_int_equal(dp_wsrx_feed(&rx, SOFT, HARD, &a, &m, &n), DP_WSRX_MORE);
    assert_null(rx.buf);
    assert_int_equal(dp_wsrx_feed(&rx, SOFT, HARD, &b, &m, &n), DP_WSRX_BINARY);
    assert_int_equal(n, 3);
    dp_wsrx_fini(&rx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dp_wsrx_whole_message_is_not_copied),
        cmocka_unit_test(test_dp_wsrx_huge_declared_length_closes),
        cmocka_unit_test(test_dp_wsrx_small_fragments_add_up_to_close),
        cmocka_unit_test(test_dp_wsrx_fragmented_under_limit),
        cmocka_unit_test(test_dp_wsrx_hard_limit_boundary),
        cmocka_unit_test(test_dp_wsrx_binary_is_counted_not_buffered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
