/* dp_session: outbox bounds, overflow policies, push-front, pending answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dp_session.h"

static int wakes, aborts;

static void want_write(struct dp_session *s)
{
    wakes++;
}

static void on_abort(struct dp_session *s)
{
    aborts++;
}

static const struct dp_session_ops ops = {want_write, on_abort};

static struct dp_buf *frame(const char *t)
{
    return dp_buf_create(t, strlen(t), NULL, 0);
}

static void test_dp_session_outbox_frame_bound_disconnect(void **state)
{
    wakes = aborts = 0;
    struct dp_session *s =
        dp_session_create(DP_TRANSPORT_WS, "alice", &ops, 3, 1 << 20, DP_OVERFLOW_DISCONNECT);
    assert_non_null(s);
    assert_memory_equal(s->connection_id, "c-", 2);
    assert_memory_equal(s->session_id, "s-", 2);
    struct dp_buf *b = frame("{\"n\":1}");
    for (int i = 0; i < 3; i++)
        assert_int_equal(dp_session_push(s, b), SB_OK);
    assert_int_equal(wakes, 1); /* only on empty -> non-empty */
    assert_int_equal(b->refs, 4);
    assert_int_equal(dp_session_push(s, b), SB_EFULL);
    assert_int_equal(aborts, 1);
    assert_true(s->overflowed);
    assert_int_equal(dp_session_push(s, b), SB_EPERM); /* nothing more once overflowed */
    assert_int_equal(dp_session_queued(s), 3);
    dp_session_destroy(s);
    assert_int_equal(b->refs, 1);
    dp_buf_unref(b);
}

/* A burst moves the outbox to the heap; once drained it is back in the inline slots (an idle
 * connection keeps no ring memory), in order throughout, with push_front working on both. */
static void test_dp_session_outbox_returns_inline_after_burst(void **state)
{
    struct dp_session *s =
        dp_session_create(DP_TRANSPORT_WS, "alice", &ops, 1000, 1 << 20, DP_OVERFLOW_DISCONNECT);
    assert_non_null(s);
    assert_ptr_equal(s->ring, s->inl);
    struct dp_buf *v[40];
    for (int i = 0; i < 40; i++) {
        char t[16];
        snprintf(t, sizeof(t), "{\"n\":%d}", i);
        v[i] = frame(t);
    }
    for (int round = 0; round < 3; round++) {
        for (int i = 1; i < 40; i++)
            assert_int_equal(dp_session_push(s, v[i]), SB_OK);
        assert_int_equal(dp_session_push_front(s, v[0]), SB_OK);
        assert_ptr_not_equal(s->ring, s->inl);
        for (int i = 0; i < 40; i++) {
            assert_ptr_equal(dp_session_peek(s, 0), v[i]);
            dp_session_pop(s);
        }
        assert_ptr_equal(s->ring, s->inl);
        assert_int_equal(s->cap, DP_SESSION_INLINE);
        /* small bursts stay inline */
        assert_int_equal(dp_session_push(s, v[1]), SB_OK);
        assert_int_equal(dp_session_push_front(s, v[0]), SB_OK);
        assert_ptr_equal(s->ring, s->inl);
        assert_ptr_equal(dp_session_peek(s, 0), v[0]);
        assert_ptr_equal(dp_session_peek(s, 1), v[1]);
        dp_session_pop(s);
        dp_session_pop(s);
    }
    assert_int_equal(dp_session_set_ids(s, "s-resumed", "s-asked"), SB_OK);
    assert_string_equal(s->session_id, "s-resumed");
    assert_string_equal(s->resume_session_id, "s-asked");
    assert_int_equal(dp_session_set_ids(s, NULL, ""), SB_OK);
    assert_string_equal(s->session_id, "s-resumed");
    assert_string_equal(s->resume_session_id, "");
    dp_session_destroy(s);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(v[i]->refs, 1);
        dp_buf_unref(v[i]);
    }
}

static void test_dp_session_outbox_byte_bound_drop(void **state)
{
    wakes = aborts = 0;
    struct dp_buf *b = frame("0123456789"); /* ws_len 12 */
    struct dp_session *s =
        dp_session_create(DP_TRANSPORT_SSE, "bob", &ops, 100, 30, DP_OVERFLOW_DROP);
    assert_int_equal(dp_session_push(s, b), SB_OK);
    assert_int_equal(dp_session_push(s, b), SB_OK);
    assert_int_equal(dp_session_push(s, b), SB_EFULL); /* 36 > 30 */
    assert_int_equal(s->dropped, 1);
    assert_int_equal(aborts, 0);
    assert_false(s->overflowed);
    assert_int_equal(s->bytes, 24);
    dp_session_pop(s);
    assert_int_equal(dp_session_push(s, b), SB_OK);
    /* one frame larger than the byte bound still goes into an empty outbox */
    dp_session_pop(s);
    dp_session_pop(s);
    struct dp_buf *big = frame("0123456789012345678901234567890123456789");
    assert_int_equal(dp_session_push(s, big), SB_OK);
    assert_int_equal(dp_session_push(s, b), SB_EFULL);
    dp_session_destroy(s);
    assert_int_equal(b->refs, 1);
    dp_buf_unref(b);
    dp_buf_unref(big);
}

static void test_dp_session_outbox_order_and_growth(void **state)
{
    struct dp_session *s =
        dp_session_create(DP_TRANSPORT_WS, "alice", &ops, 1000, 1 << 20, DP_OVERFLOW_DROP);
    struct dp_buf *v[100];
    for (int i = 0; i < 100; i++) {
        char t[16];
        snprintf(t, sizeof(t), "%d", i);
        v[i] = frame(t);
        assert_int_equal(dp_session_push(s, v[i]), SB_OK);
    }
    for (int i = 0; i < 100; i++) {
        assert_ptr_equal(dp_session_peek(s, 0), v[i]);
        dp_session_pop(s);
    }
    assert_null(dp_session_peek(s, 0));
    /* wrap the ring: pop one, push one, many times */
    for (int i = 0; i < 100; i++)
        dp_session_push(s, v[i % 10]);
    for (int i = 0; i < 1000; i++) {
        assert_ptr_equal(dp_session_peek(s, 0), v[i % 10]);
        dp_session_pop(s);
        dp_session_push(s, v[i % 10]);
    }
    while (dp_session_queued(s) > 0)
        dp_session_pop(s);
    struct dp_buf *first = frame("first");
    dp_session_push(s, v[1]);
    dp_session_push(s, v[2]);
    assert_int_equal(dp_session_push_front(s, first), SB_OK);
    assert_ptr_equal(dp_session_peek(s, 0), first);
    assert_ptr_equal(dp_session_peek(s, 1), v[1]);
    assert_ptr_equal(dp_session_peek(s, 2), v[2]);
    dp_session_close_after_drain(s, 1001, "bye");
    assert_int_equal(s->state, DP_SESSION_CLOSING);
    assert_int_equal(dp_session_push(s, first), SB_EPERM);
    dp_session_destroy(s);
    for (int i = 0; i < 100; i++)
        dp_buf_unref(v[i]);
    dp_buf_unref(first);
}

static void test_dp_session_stall_clock_tracks_progress(void **state)
{
    struct dp_session *s =
        dp_session_create(DP_TRANSPORT_WS, "alice", &ops, 10, 1 << 20, DP_OVERFLOW_DROP);
    struct dp_buf *a = frame("a"), *b = frame("b");
    assert_int_equal(s->stall_since_ms, 0); /* empty: not stalled */
    dp_session_push(s, a);
    int64_t first = s->stall_since_ms;
    assert_true(first > 0);
    dp_session_push(s, b); /* more output is not progress: the clock keeps running */
    assert_int_equal(s->stall_since_ms, first);
    dp_session_pop(s); /* progress with output left: the clock restarts */
    assert_true(s->stall_since_ms >= first);
    dp_session_pop(s); /* empty again */
    assert_int_equal(s->stall_since_ms, 0);
    dp_session_destroy(s);
    dp_buf_unref(a);
    dp_buf_unref(b);
}

static void test_dp_session_pending_fifo_and_bound(void **state)
{
    struct dp_session *s =
        dp_session_create(DP_TRANSPORT_WS, "alice", &ops, 10, 1 << 20, DP_OVERFLOW_DROP);
    for (uint64_t i = 1; i <= 3; i++) {
        struct dp_pending *p = calloc(1, sizeof(*p));
        p->request_id = i;
        assert_int_equal(dp_session_pending_add(s, p, 3), SB_OK);
    }
    struct dp_pending extra = {0};
    assert_int_equal(dp_session_pending_add(s, &extra, 3), SB_EFULL);
    struct dp_pending *p = dp_session_pending_take(s, 2);
    assert_non_null(p);
    assert_int_equal(p->request_id, 2);
    free(p);
    assert_null(dp_session_pending_take(s, 2));
    p = dp_session_pending_take_first(s);
    assert_int_equal(p->request_id, 1);
    free(p);
    p = calloc(1, sizeof(*p));
    p->request_id = 4;
    assert_int_equal(dp_session_pending_add(s, p, 3), SB_OK);
    assert_int_equal(s->n_pending, 2);
    dp_session_destroy(s); /* frees the rest */
}

static void test_dp_session_create_rejects_bad_user(void **state)
{
    assert_null(dp_session_create(DP_TRANSPORT_WS, "bad user", &ops, 10, 100, DP_OVERFLOW_DROP));
    assert_null(dp_session_create(DP_TRANSPORT_WS, "", &ops, 10, 100, DP_OVERFLOW_DROP));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dp_session_outbox_frame_bound_disconnect),
        cmocka_unit_test(test_dp_session_outbox_byte_bound_drop),
        cmocka_unit_test(test_dp_session_outbox_returns_inline_after_burst),
        cmocka_unit_test(test_dp_session_outbox_order_and_growth),
        cmocka_unit_test(test_dp_session_stall_clock_tracks_progress),
        cmocka_unit_test(test_dp_session_pending_fifo_and_bound),
        cmocka_unit_test(test_dp_session_create_rejects_bad_user),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
