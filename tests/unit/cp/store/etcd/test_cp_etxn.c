/* The etcd Store's txn builder and txn answer reading (store/etcd/cp_etxn.h): exact bodies
 * (etcd ignores misspelt fields and refuses a put inside a delete of the same txn), copies kept
 * by the builder, failure-list overflow, and every answer outcome, the write marker included. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_etxn.h"

#define P(s) s, strlen(s)

/* Finalises t and checks its body. */
static void expect_txn(struct cp_etxn *t, const char *want)
{
    char *got = cp_etxn_json(t);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_etxn_json_create_if_absent_with_marker(void **state)
{
    (void)state;
    struct cp_etxn t;
    cp_etxn_init(&t);
    cp_etxn_cmp(&t, "k", CP_ETCD_CMP_CREATE, CP_ETCD_CMP_EQUAL, 0);
    cp_etxn_put(&t, "k", "v", 1, 0);
    cp_etxn_marker(&t, "m", 7);
    /* The marker: a put on the lease, and its read as the only failure op. */
    expect_txn(&t, "{\"compare\":[{\"key\":\"aw==\",\"target\":\"CREATE\",\"result\":\"EQUAL\","
                   "\"create_revision\":\"0\"}],\"success\":[{\"request_put\":{\"key\":\"aw==\","
                   "\"value\":\"dg==\"}},{\"request_put\":{\"key\":\"bQ==\",\"value\":\"\","
                   "\"lease\":\"7\"}}],\"failure\":[{\"request_range\":{\"key\":\"bQ==\"}}]}");
}

static void test_etxn_json_keeps_copies_of_its_inputs(void **state)
{
    (void)state;
    struct cp_etxn t;
    char key[8] = "k", val[8] = "v";
    cp_etxn_init(&t);
    cp_etxn_cmp_value(&t, key, val);
    cp_etxn_put(&t, key, val, strlen(val), 0);
    strcpy(key, "X");
    strcpy(val, "Y");
    expect_txn(&t, "{\"compare\":[{\"key\":\"aw==\",\"target\":\"VALUE\",\"result\":\"EQUAL\","
                   "\"value\":\"dg==\"}],\"success\":[{\"request_put\":{\"key\":\"aw==\","
                   "\"value\":\"dg==\"}}],\"failure\":[]}");
}

static void test_etxn_json_ranges_and_deletes(void **state)
{
    (void)state;
    struct cp_etxn t;
    cp_etxn_init(&t);
    cp_etxn_get_tail(&t, false, "h/", 40);
    cp_etxn_del(&t, "a/", true);
    cp_etxn_del_range(&t, "k", 1, "q\0", 2); /* a bound just after "q" */
    cp_etxn_get(&t, true, "p/", true);
    expect_txn(&t,
               "{\"compare\":[],\"success\":[{\"request_range\":{\"key\":\"aC8=\",\"range_end\":"
               "\"aDA=\",\"limit\":\"40\",\"sort_order\":\"DESCEND\",\"sort_target\":\"KEY\"}},"
               "{\"request_delete_range\":{\"key\":\"YS8=\",\"range_end\":\"YTA=\"}},"
               "{\"request_delete_range\":{\"key\":\"aw==\",\"range_end\":\"cQA=\"}}],"
               "\"failure\":[{\"request_range\":{\"key\":\"cC8=\",\"range_end\":\"cDA=\"}}]}");
}

static void test_etxn_del_except_cuts_around_puts(void **state)
{
    (void)state;
    struct cp_etxn t;
    char *skip[] = {"d/b", "d/d"};
    cp_etxn_init(&t);
    cp_etxn_del_except(&t, "d/", "d0", 2, skip, 2);
    /* [d/, d/b) [d/b\0, d/d) [d/d\0, d0) */
    expect_txn(&t, "{\"compare\":[],\"success\":[{\"request_delete_range\":{\"key\":\"ZC8=\","
                   "\"range_end\":\"ZC9i\"}},{\"request_delete_range\":{\"key\":\"ZC9iAA==\","
                   "\"range_end\":\"ZC9k\"}},{\"request_delete_range\":{\"key\":\"ZC9kAA==\","
                   "\"range_end\":\"ZDA=\"}}],\"failure\":[]}");
    /* A kept key right at the start leaves no empty range behind. */
    char *first[] = {"d/"};
    cp_etxn_init(&t);
    cp_etxn_del_except(&t, "d/", "d0", 2, first, 1);
    expect_txn(&t, "{\"compare\":[],\"success\":[{\"request_delete_range\":{\"key\":\"ZC8A\","
                   "\"range_end\":\"ZDA=\"}}],\"failure\":[]}");
}

static void test_etxn_json_failure_list_overflow_fails(void **state)
{
    (void)state;
    struct cp_etxn t;
    cp_etxn_init(&t);
    for (int i = 0; i < CP_ETXN_MAX_FAILURE; i++)
        cp_etxn_get(&t, true, "k", false);
    assert_false(t.failed);
    cp_etxn_get(&t, true, "k", false);
    assert_true(t.failed);
    assert_null(cp_etxn_json(&t));
}

static void test_etxn_answer_parse_applied_lost_unknown(void **state)
{
    (void)state;
    struct cp_etxn_answer a;
    const char *won = "{\"header\":{\"revision\":\"9\"},\"succeeded\":true,\"responses\":["
                      "{\"response_range\":{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":"
                      "\"aw==\",\"create_revision\":\"4\",\"mod_revision\":\"5\",\"value\":"
                      "\"dg==\"}],\"count\":\"1\"}}]}";
    cp_etxn_answer_parse(SB_OK, P(won), false, &a);
    assert_int_equal(a.outcome, CP_ETXN_APPLIED);
    assert_int_equal(a.revision, 9);
    assert_false(a.by_marker);
    assert_int_equal(cp_etxn_first_kv(cp_etxn_answer_op(&a, 0))->create_revision, 4);
    assert_null(cp_etxn_answer_op(&a, 1));
    cp_etxn_answer_fini(&a);
    /* Lost: no "succeeded" at all. */
    const char *lost = "{\"header\":{\"revision\":\"8\"},\"responses\":[{\"response_range\":"
                       "{\"header\":{\"revision\":\"8\"}}}]}";
    cp_etxn_answer_parse(SB_OK, P(lost), false, &a);
    assert_int_equal(a.outcome, CP_ETXN_LOST);
    assert_int_equal(a.revision, 8);
    assert_null(cp_etxn_first_kv(cp_etxn_answer_op(&a, 0)));
    cp_etxn_answer_fini(&a);
    cp_etxn_answer_parse(SB_EUNAVAIL, "", 0, false, &a);
    assert_int_equal(a.outcome, CP_ETXN_UNKNOWN);
    assert_int_equal(a.err, SB_EUNAVAIL);
    assert_null(cp_etxn_answer_op(&a, 0));
    cp_etxn_answer_fini(&a);
    cp_etxn_answer_parse(SB_OK, P("{\"succeeded\":"), false, &a);
    assert_int_equal(a.outcome, CP_ETXN_UNKNOWN);
    assert_int_equal(a.err, SB_EPROTO);
    cp_etxn_answer_fini(&a);
}

static void test_etxn_answer_parse_marker_means_landed(void **state)
{
    (void)state;
    struct cp_etxn_answer a;
    /* A lost retry whose failure branch found the marker: the first attempt landed at 6. */
    const char *found = "{\"header\":{\"revision\":\"8\"},\"responses\":[{\"response_range\":{"
                        "\"header\":{\"revision\":\"8\"},\"kvs\":[{\"key\":\"bQ==\","
                        "\"create_revision\":\"6\",\"mod_revision\":\"6\"}],\"count\":\"1\"}}]}";
    cp_etxn_answer_parse(SB_OK, P(found), true, &a);
    assert_int_equal(a.outcome, CP_ETXN_APPLIED);
    assert_true(a.by_marker);
    assert_int_equal(a.revision, 6);
    cp_etxn_answer_fini(&a);
    /* Without a marker the same read is just a lost compare. */
    cp_etxn_answer_parse(SB_OK, P(found), false, &a);
    assert_int_equal(a.outcome, CP_ETXN_LOST);
    assert_int_equal(a.revision, 8);
    cp_etxn_answer_fini(&a);
    /* Marker absent: a real conflict. */
    const char *absent = "{\"header\":{\"revision\":\"8\"},\"responses\":[{\"response_range\":{"
                         "\"header\":{\"revision\":\"8\"}}}]}";
    cp_etxn_answer_parse(SB_OK, P(absent), true, &a);
    assert_int_equal(a.outcome, CP_ETXN_LOST);
    assert_false(a.by_marker);
    cp_etxn_answer_fini(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_etxn_json_create_if_absent_with_marker),
        cmocka_unit_test(test_etxn_json_keeps_copies_of_its_inputs),
        cmocka_unit_test(test_etxn_json_ranges_and_deletes),
        cmocka_unit_test(test_etxn_del_except_cuts_around_puts),
        cmocka_unit_test(test_etxn_json_failure_list_overflow_fails),
        cmocka_unit_test(test_etxn_answer_parse_applied_lost_unknown),
        cmocka_unit_test(test_etxn_answer_parse_marker_means_landed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
