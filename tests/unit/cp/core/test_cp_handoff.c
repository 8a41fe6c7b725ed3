/* Handoff FIFO: order, wake only on empty -> non-empty, posts from other threads, waits. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cp_handoff.h"

static atomic_int wakes;
static int seen[2000];
static int n_seen;

static void wake(void *ud)
{
    (void)ud;
    atomic_fetch_add(&wakes, 1);
}

static void record(void *arg)
{
    seen[n_seen++] = (int)(intptr_t)arg;
}

static void test_handoff_order_and_wake(void **state)
{
    (void)state;
    struct cp_handoff *h;
    assert_int_equal(cp_handoff_create(wake, NULL, &h), SB_OK);
    atomic_store(&wakes, 0);
    n_seen = 0;
    for (int i = 0; i < 5; i++)
        cp_handoff_post(h, record, (void *)(intptr_t)i);
    assert_int_equal(atomic_load(&wakes), 1);
    assert_int_equal(cp_handoff_drain(h), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(seen[i], i);
    cp_handoff_post(h, record, (void *)(intptr_t)9);
    assert_int_equal(atomic_load(&wakes), 2);
    cp_handoff_destroy(h); /* undrained item dropped */
}

static void *poster(void *arg)
{
    struct cp_handoff *h = arg;
    for (int i = 0; i < 1000; i++)
        cp_handoff_post(h, record, (void *)(intptr_t)i);
    return NULL;
}

static void test_handoff_other_thread(void **state)
{
    (void)state;
    struct cp_handoff *h;
    assert_int_equal(cp_handoff_create(NULL, NULL, &h), SB_OK);
    n_seen = 0;
    assert_false(cp_handoff_wait(h, 10));
    pthread_t t;
    pthread_create(&t, NULL, poster, h);
    while (n_seen < 1000) {
        cp_handoff_wait(h, 100);
        cp_handoff_drain(h);
    }
    pthread_join(t, NULL);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(seen[i], i);
    cp_handoff_destroy(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handoff_order_and_wake),
        cmocka_unit_test(test_handoff_other_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
