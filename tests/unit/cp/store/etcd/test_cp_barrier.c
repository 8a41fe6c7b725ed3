/* Revision barrier: immediate release at or below the applied revision, release in revision
 * order as the watch advances, timeouts, re-list resets, and failure of waiters at fini. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "cp_barrier.h"

static int order[16];
static bool oks[16];
static int n_done;

static void fired(void *arg, bool ok)
{
    oks[n_done] = ok;
    order[n_done++] = (int)(intptr_t)arg;
}

static void reset_log(void)
{
    n_done = 0;
    memset(order, 0, sizeof(order));
}

static void test_barrier_immediate_when_applied(void **state)
{
    (void)state;
    struct cp_barrier b;
    cp_barrier_init(&b);
    reset_log();
    cp_barrier_advance(&b, 10);
    assert_int_equal(cp_barrier_wait(&b, 10, 0, fired, (void *)1), SB_OK);
    assert_int_equal(cp_barrier_wait(&b, 3, 0, fired, (void *)2), SB_OK);
    assert_int_equal(n_done, 2);
    assert_true(oks[0] && oks[1]);
    cp_barrier_fini(&b);
}

static void test_barrier_releases_in_revision_order(void **state)
{
    (void)state;
    struct cp_barrier b;
    cp_barrier_init(&b);
    reset_log();
    cp_barrier_wait(&b, 7, 0, fired, (void *)7);
    cp_barrier_wait(&b, 5, 0, fired, (void *)5);
    cp_barrier_wait(&b, 9, 0, fired, (void *)9);
    cp_barrier_wait(&b, 5, 0, fired, (void *)55); /* same revision: arrival order */
    cp_barrier_advance(&b, 4);
    assert_int_equal(n_done, 0);
    cp_barrier_advance(&b, 7);
    assert_int_equal(n_done, 3);
    assert_int_equal(order[0], 5);
    assert_int_equal(order[1], 55);
    assert_int_equal(order[2], 7);
    cp_barrier_advance(&b, 6); /* going back changes nothing */
    assert_int_equal(b.applied, 7);
    cp_barrier_advance(&b, 100);
    assert_int_equal(n_done, 4);
    assert_int_equal(order[3], 9);
    assert_int_equal(b.n, 0);
    cp_barrier_fini(&b);
}

static void test_barrier_expire_and_fini_fail_waiters(void **state)
{
    (void)state;
    struct cp_barrier b;
    cp_barrier_init(&b);
    reset_log();
    cp_barrier_wait(&b, 50, 1000, fired, (void *)1);
    cp_barrier_wait(&b, 60, 2500, fired, (void *)2);
    assert_int_equal(cp_barrier_expire(&b, 3500, 2000), 1);
    assert_int_equal(order[0], 1);
    assert_false(oks[0]);
    cp_barrier_fini(&b);
    assert_int_equal(n_done, 2);
    assert_int_equal(order[1], 2);
    assert_false(oks[1]);
}

static void test_barrier_reset_after_relist(void **state)
{
    (void)state;
    struct cp_barrier b;
    cp_barrier_init(&b);
    reset_log();
    cp_barrier_advance(&b, 100);
    cp_barrier_wait(&b, 120, 0, fired, (void *)1);
    cp_barrier_reset(&b, 130);
    assert_int_equal(n_done, 1);
    assert_true(oks[0]);
    cp_barrier_reset(&b, 90); /* a re-list may land lower: applied follows it */
    assert_int_equal(b.applied, 90);
    cp_barrier_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_barrier_immediate_when_applied),
        cmocka_unit_test(test_barrier_releases_in_revision_order),
        cmocka_unit_test(test_barrier_expire_and_fini_fail_waiters),
        cmocka_unit_test(test_barrier_reset_after_relist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
