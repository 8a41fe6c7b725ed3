/* sb_batch: item headers of a NodeLink batch (round trip at varint boundaries, malformed
 * headers) and the whole-item prefix that a send takes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sb_batch.h"

static void test_sb_batch_header_roundtrip(void **state)
{
    const size_t lens[] = {0, 1, 127, 128, 16383, 16384, (size_t)1 << 21, SIZE_MAX};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        uint8_t h[SB_BATCH_HEADER_MAX];
        size_t n = sb_batch_header_put(h, lens[i]);
        assert_int_equal(n, sb_batch_header_len(lens[i]));
        assert_true(n <= SB_BATCH_HEADER_MAX);
        uint64_t got = 0;
        assert_int_equal(sb_batch_header_get(h, n, &got), n);
        assert_true(got == (uint64_t)lens[i]);
        assert_int_equal(sb_batch_header_get(h, n - 1, &got), 0); /* truncated */
    }
    uint8_t wrong_tag[] = {0x12, 0x01};
    uint64_t v;
    assert_int_equal(sb_batch_header_get(wrong_tag, sizeof(wrong_tag), &v), 0);
    uint8_t endless[16];
    memset(endless, 0xff, sizeof(endless));
    endless[0] = 0x0a;
    assert_int_equal(sb_batch_header_get(endless, sizeof(endless), &v), 0);
}

static size_t put(uint8_t *buf, size_t at, size_t len)
{
    at += sb_batch_header_put(buf + at, len);
    memset(buf + at, 'x', len);
    return at + len;
}

static void test_sb_batch_prefix(void **state)
{
    uint8_t buf[1024];
    size_t a = put(buf, 0, 10);  /* 12 bytes */
    size_t b = put(buf, a, 200); /* 203 bytes: ends at 215 */
    size_t c = put(buf, b, 5);   /* ends at 222 */
    assert_int_equal(sb_batch_prefix_len(buf, 0, 100), 0);
    assert_int_equal(sb_batch_prefix_len(buf, c, 1000), c);
    assert_int_equal(sb_batch_prefix_len(buf, c, 100), a);          /* the second does not fit */
    assert_int_equal(sb_batch_prefix_len(buf, c, 5), a);            /* but the first always goes */
    assert_int_equal(sb_batch_prefix_len(buf, c, b), b);            /* exactly two */
    assert_int_equal(sb_batch_prefix_len(buf, c - 1, 1000), c - 1); /* malformed: all */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sb_batch_header_roundtrip),
        cmocka_unit_test(test_sb_batch_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
