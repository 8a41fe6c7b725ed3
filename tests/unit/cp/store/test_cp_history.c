/* History ring: gap-free increasing seqs, trimming at the max, query semantics (exclusive
 * bounds, oldest first, before = newest below, after = oldest above, time and thread filters),
 * and history_gap detection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_history.h"

static struct cp_message *msg(int64_t seq, int64_t ts, const char *thread)
{
    struct cp_message draft = {.id = "m",
                               .room_id = "r",
                               .thread_id = (char *)thread,
                               .timestamp = ts,
                               .data = "1",
                               .data_len = 1};
    struct cp_message *m = cp_message_dup(&draft);
    m->seq = seq;
    return m;
}

static void fill(struct cp_history *h, int n, size_t max)
{
    for (int i = 0; i < n; i++) {
        int64_t seq = cp_history_next_seq(h);
        assert_int_equal(cp_history_append(h, msg(seq, 1000 * seq, seq % 3 == 0 ? "t" : NULL), max),
                         SB_OK);
    }
}

/* Runs a query and checks the seqs returned. */
static void expect(const struct cp_history *h, struct cp_history_query q, const int64_t *seqs,
                   size_t n)
{
    const struct cp_message **out;
    size_t got;
    bool gap;
    assert_int_equal(cp_history_query(h, &q, &out, &got, &gap), SB_OK);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(out[i]->seq, seqs[i]);
    free(out);
}

static void test_history_seq_strictly_increasing_gap_free(void **state)
{
    (void)state;
    struct cp_history h;
    cp_history_init(&h);
    fill(&h, 2500, 1000);
    assert_int_equal(h.count, 1000);
    assert_int_equal(h.last_seq, 2500);
    for (size_t i = 0; i < h.count; i++)
        assert_int_equal(cp_history_at(&h, i)->seq, 1501 + (int64_t)i);
    cp_history_fini(&h);
}

static void test_history_trims_at_max(void **state)
{
    (void)state;
    struct cp_history h;
    cp_history_init(&h);
    fill(&h, 10, 3);
    assert_int_equal(h.count, 3);
    assert_int_equal(cp_history_at(&h, 0)->seq, 8);
    /* max 0: nothing kept, seq still advances */
    fill(&h, 2, 0);
    assert_int_equal(h.count, 0);
    assert_int_equal(h.last_seq, 12);
    cp_history_fini(&h);
}

static void test_history_query_bounds_and_limits(void **state)
{
    (void)state;
    struct cp_history h;
    cp_history_init(&h);
    fill(&h, 10, 100);
    struct cp_history_query q = {.limit = 50};
    expect(&h, q, (int64_t[]){1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 10);
    q.limit = 3; /* no bound: the newest, oldest first */
    expect(&h, q, (int64_t[]){8, 9, 10}, 3);
    q.has_before_seq = true;
    q.before_seq = 5; /* newest below 5 */
    expect(&h, q, (int64_t[]){2, 3, 4}, 3);
    q.has_before_seq = false;
    q.has_after_seq = true;
    q.after_seq = 5; /* oldest above 5 */
    expect(&h, q, (int64_t[]){6, 7, 8}, 3);
    q.has_before_seq = true;
    q.before_seq = 9; /* both: the range (5, 9), newest first taken */
    q.limit = 2;
    expect(&h, q, (int64_t[]){7, 8}, 2);
    q.after_seq = 9; /* empty range */
    expect(&h, q, NULL, 0);
    q.has_before_seq = false;
    q.after_seq = 10; /* exclusive: nothing above the last */
    expect(&h, q, NULL, 0);
    q.has_after_seq = false;
    q.has_before_seq = true;
    q.before_seq = 1;
    expect(&h, q, NULL, 0);
    cp_history_fini(&h);
}

static void test_history_query_time_and_thread(void **state)
{
    (void)state;
    struct cp_history h;
    cp_history_init(&h);
    fill(&h, 10, 100); /* timestamp = 1000 * seq; thread "t" on 3, 6, 9 */
    struct cp_history_query q = {.limit = 50, .before_time = 4000};
    expect(&h, q, (int64_t[]){1, 2, 3}, 3);
    q.before_time = 0;
    q.after_time = 8000;
    expect(&h, q, (int64_t[]){9, 10}, 2);
    q.after_time = 2000;
    q.limit = 2; /* after alone reads upwards */
    expect(&h, q, (int64_t[]){3, 4}, 2);
    q.after_time = 0;
    q.limit = 50;
    q.thread_id = "t";
    expect(&h, q, (int64_t[]){3, 6, 9}, 3);
    q.limit = 1;
    expect(&h, q, (int64_t[]){9}, 1);
    cp_history_fini(&h);
}

static bool gap_for(const struct cp_history *h, int64_t since)
{
    struct cp_history_query q = {.limit = 1000, .has_after_seq = true, .after_seq = since};
    const struct cp_message **out;
    size_t n;
    bool gap;
    assert_int_equal(cp_history_query(h, &q, &out, &n, &gap), SB_OK);
    free(out);
    return gap;
}

static void test_history_gap_detection(void **state)
{
    (void)state;
    struct cp_history h;
    cp_history_init(&h);
    assert_false(gap_for(&h, 0)); /* nothing ever sent */
    fill(&h, 10, 4);              /* keeps 7..10 */
    assert_true(gap_for(&h, 0));
    assert_true(gap_for(&h, 5));
    assert_false(gap_for(&h, 6)); /* wants 7.. : all there */
    assert_false(gap_for(&h, 10));
    assert_false(gap_for(&h, 50)); /* ahead of us: nothing missed */
    fill(&h, 1, 0);                /* history off now: 11 is gone */
    assert_true(gap_for(&h, 10));
    assert_false(gap_for(&h, 11));
    cp_history_fini(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_seq_strictly_increasing_gap_free),
        cmocka_unit_test(test_history_trims_at_max),
        cmocka_unit_test(test_history_query_bounds_and_limits),
        cmocka_unit_test(test_history_query_time_and_thread),
        cmocka_unit_test(test_history_gap_detection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
