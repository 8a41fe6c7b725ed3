/* Unit tests of sb_bucket: burst, refill rate, cap, disabled limit, retry hint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sb_bucket.h"

static void test_sb_bucket_take_burst_then_refused(void **state)
{
    (void)state;
    struct sb_bucket b = {0};
    for (int i = 0; i < 5; i++)
        assert_true(sb_bucket_take(&b, 5, 5, 1000, NULL));
    int64_t retry = -1;
    assert_false(sb_bucket_take(&b, 5, 5, 1000, &retry));
    assert_int_equal(retry, 200); /* 5/s: one token every 200 ms */
}

static void test_sb_bucket_take_refills_at_rate(void **state)
{
    (void)state;
    struct sb_bucket b = {0};
    for (int i = 0; i < 5; i++)
        assert_true(sb_bucket_take(&b, 5, 5, 0, NULL));
    assert_false(sb_bucket_take(&b, 5, 5, 199, NULL));
    assert_true(sb_bucket_take(&b, 5, 5, 200, NULL)); /* one token after 200 ms */
    assert_false(sb_bucket_take(&b, 5, 5, 200, NULL));
    /* Partial refills add up: 100 + 100 ms is one token. */
    assert_false(sb_bucket_take(&b, 5, 5, 300, NULL));
    assert_true(sb_bucket_take(&b, 5, 5, 400, NULL));
}

static void test_sb_bucket_take_caps_at_burst(void **state)
{
    (void)state;
    struct sb_bucket b = {0};
    assert_true(sb_bucket_take(&b, 100, 3, 0, NULL));
    /* A long pause (and a huge one: no overflow) refills only up to the burst. */
    int64_t times[] = {1000000, INT64_MAX / 2};
    for (size_t t = 0; t < 2; t++) {
        for (int i = 0; i < 3; i++)
            assert_true(sb_bucket_take(&b, 100, 3, times[t], NULL));
        assert_false(sb_bucket_take(&b, 100, 3, times[t], NULL));
    }
}

static void test_sb_bucket_take_disabled_and_odd_inputs(void **state)
{
    (void)state;
    struct sb_bucket b = {0};
    for (int i = 0; i < 10000; i++)
        assert_true(sb_bucket_take(&b, 0, 5, 0, NULL)); /* rate 0: no limit */
    assert_false(b.primed);
    /* burst < 1 counts as 1. */
    assert_true(sb_bucket_take(&b, 1, 0, 0, NULL));
    assert_false(sb_bucket_take(&b, 1, 0, 0, NULL));
    /* A clock going back neither refills nor breaks the bucket. */
    int64_t retry = 0;
    assert_false(sb_bucket_take(&b, 1, 0, -5000, &retry));
    assert_int_equal(retry, 1000);
    assert_true(sb_bucket_take(&b, 1, 0, 1000, NULL));
}

static void test_sb_bucket_take_high_rate(void **state)
{
    (void)state;
    struct sb_bucket b = {0};
    /* 1,000,000/s with burst 1: a token every microsecond, so every ms refills. */
    assert_true(sb_bucket_take(&b, 1000000, 1, 0, NULL));
    int64_t retry = -1;
    assert_false(sb_bucket_take(&b, 1000000, 1, 0, &retry));
    assert_int_equal(retry, 1);
    assert_true(sb_bucket_take(&b, 1000000, 1, 1, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sb_bucket_take_burst_then_refused),
        cmocka_unit_test(test_sb_bucket_take_refills_at_rate),
        cmocka_unit_test(test_sb_bucket_take_caps_at_burst),
        cmocka_unit_test(test_sb_bucket_take_disabled_and_odd_inputs),
        cmocka_unit_test(test_sb_bucket_take_high_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
