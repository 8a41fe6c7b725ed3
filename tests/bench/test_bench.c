/* Unit tests of the load client's pure parts: frame scanning, the latency histogram and the
 * /proc/<pid>/stat parser, so the benchmark tool does not rot between runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bench_hist.h"
#include "bench_proc.h"
#include "bench_scan.h"

#define S(lit) lit, sizeof(lit) - 1

static void test_scan_type_message(void **state)
{
    (void)state;
    assert_int_equal(bench_scan_type(S("{\"type\":\"message\",\"seq\":3}")), BENCH_FRAME_MESSAGE);
    assert_int_equal(bench_scan_type(S("{\"type\": \"ack\",\"ref\":\"p1\"}")), BENCH_FRAME_ACK);
    assert_int_equal(bench_scan_type(S("{\"type\":\"connected\"}")), BENCH_FRAME_CONNECTED);
    assert_int_equal(bench_scan_type(S("{\"type\":\"join\"}")), BENCH_FRAME_JOIN);
    assert_int_equal(bench_scan_type(S("{\"type\":\"presence\"}")), BENCH_FRAME_PRESENCE);
    assert_int_equal(bench_scan_type(S("{\"type\":\"error\"}")), BENCH_FRAME_ERROR);
}

static void test_scan_type_unknown_or_truncated(void **state)
{
    (void)state;
    assert_int_equal(bench_scan_type(S("{\"type\":\"pong\"}")), BENCH_FRAME_OTHER);
    assert_int_equal(bench_scan_type(S("{\"type\":\"mess")), BENCH_FRAME_OTHER);
    assert_int_equal(bench_scan_type(S("{\"type\"")), BENCH_FRAME_OTHER);
    assert_int_equal(bench_scan_type(S("")), BENCH_FRAME_OTHER);
}

static void test_scan_i64_reads_fields(void **state)
{
    (void)state;
    const char f[] = "{\"type\":\"message\",\"id\":\"m-1\",\"seq\":17,\"user_id\":\"seq\","
                     "\"data\":{\"sbt\":123456789012345,\"sbn\":-4,\"pad\":\"xx\"}}";
    int64_t v = 0;
    assert_int_equal(bench_scan_i64(f, sizeof(f) - 1, "seq", &v), 0);
    assert_int_equal(v, 17);
    assert_int_equal(bench_scan_i64(f, sizeof(f) - 1, "sbt", &v), 0);
    assert_int_equal(v, 123456789012345LL);
    assert_int_equal(bench_scan_i64(f, sizeof(f) - 1, "sbn", &v), 0);
    assert_int_equal(v, -4);
    assert_int_equal(bench_scan_i64(f, sizeof(f) - 1, "pad", &v), -1);
    assert_int_equal(bench_scan_i64(f, sizeof(f) - 1, "nope", &v), -1);
}

static void test_scan_i64_value_equal_to_key_is_skipped(void **state)
{
    (void)state;
    /* "seq" first appears as a string value, then as the key */
    const char f[] = "{\"user_id\":\"seq\",\"seq\":5}";
    int64_t v = 0;
    assert_int_equal(bench_scan_i64(f, sizeof(f) - 1, "seq", &v), 0);
    assert_int_equal(v, 5);
}

static void test_scan_i64_rejects_overflow_and_truncation(void **state)
{
    (void)state;
    int64_t v = 0;
    assert_int_equal(bench_scan_i64(S("{\"seq\":99999999999999999999}"), "seq", &v), -1);
    assert_int_equal(bench_scan_i64(S("{\"seq\":"), "seq", &v), -1);
    assert_int_equal(bench_scan_i64(S("{\"seq\":-"), "seq", &v), -1);
}

static void test_scan_str_reads_and_bounds(void **state)
{
    (void)state;
    char out[8];
    assert_int_equal(bench_scan_str(S("{\"ref\":\"p42\"}"), "ref", out, sizeof(out)), 0);
    assert_string_equal(out, "p42");
    assert_int_equal(bench_scan_str(S("{\"ref\":\"p1234567890\"}"), "ref", out, sizeof(out)), -1);
    assert_int_equal(bench_scan_str(S("{\"ref\":7}"), "ref", out, sizeof(out)), -1);
    assert_int_equal(bench_scan_str(S("{\"ref\":\"open"), "ref", out, sizeof(out)), -1);
}

static void test_hist_quantiles_within_precision(void **state)
{
    (void)state;
    static struct bench_hist h;
    bench_hist_init(&h);
    for (int64_t v = 1; v <= 100000; v++)
        bench_hist_record(&h, v * 1000); /* 1 us .. 100 ms */
    assert_int_equal(h.count, 100000);
    double p50 = (double)bench_hist_quantile(&h, 0.5);
    double p99 = (double)bench_hist_quantile(&h, 0.99);
    assert_true(p50 >= 50000000.0 && p50 <= 50000000.0 * 1.04);
    assert_true(p99 >= 99000000.0 && p99 <= 99000000.0 * 1.04);
    assert_int_equal(bench_hist_quantile(&h, 1.0), 100000000);
    assert_int_equal(bench_hist_quantile(&h, 0.0), 1000);
}

static void test_hist_empty_small_and_negative(void **state)
{
    (void)state;
    static struct bench_hist h, m;
    bench_hist_init(&h);
    assert_int_equal(bench_hist_quantile(&h, 0.5), 0);
    bench_hist_record(&h, -5);
    bench_hist_record(&h, 3);
    assert_int_equal(bench_hist_quantile(&h, 0.5), 0);
    assert_int_equal(bench_hist_quantile(&h, 1.0), 3);
    bench_hist_init(&m);
    bench_hist_record(&m, 1000000);
    bench_hist_merge(&m, &h);
    assert_int_equal(m.count, 3);
    assert_int_equal(m.max, 1000000);
    assert_int_equal(m.min, 0);
}

static void test_proc_parse_stat_with_spaces_in_comm(void **state)
{
    (void)state;
    uint64_t t = 0;
    const char line[] = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 "
                        "20 0 3 0 100 1000000 200 18446744073709551615";
    assert_int_equal(bench_proc_parse_stat(line, &t), 0);
    assert_int_equal(t, 325);
    assert_int_equal(bench_proc_parse_stat("1234 (x) S 1 2", &t), -1);
    assert_int_equal(bench_proc_parse_stat("garbage", &t), -1);
}

static void test_nats_ops_and_batching(void **state)
{
    (void)state;
    const char b[] = "INFO {\"server_id\":\"x\"}\r\nPING\r\nMSG bench 3 5\r\nhello\r\n"
                     "MSG bench 3 reply.to 2\r\nhi\r\nPONG\r\n+OK\r\n-ERR 'Unknown'\r\nXYZ\r\n";
    size_t off = 0, used, dl;
    const char *d;
    assert_int_equal(bench_nats_next(b + off, sizeof(b) - 1 - off, 1000, &used, &d, &dl),
                     BENCH_NATS_INFO);
    off += used;
    assert_int_equal(bench_nats_next(b + off, sizeof(b) - 1 - off, 1000, &used, &d, &dl),
                     BENCH_NATS_PING);
    off += used;
    assert_int_equal(bench_nats_next(b + off, sizeof(b) - 1 - off, 1000, &used, &d, &dl),
                     BENCH_NATS_MSG);
    assert_int_equal(dl, 5);
    assert_memory_equal(d, "hello", 5);
    off += used;
    assert_int_equal(bench_nats_next(b + off, sizeof(b) - 1 - off, 1000, &used, &d, &dl),
                     BENCH_NATS_MSG);
    assert_int_equal(dl, 2);
    assert_memory_equal(d, "hi", 2);
    off += used;
    assert_int_equal(bench_nats_next(b + off, sizeof(b) - 1 - off, 1000, &used, &d, &dl),
                     BENCH_NATS_PONG);
    off += used;
    assert_int_equal(bench_nats_next(b + off, sizeof(b) - 1 - off, 1000, &used, &d, &dl),
                     BENCH_NATS_OK);
    off += used;
    assert_int_equal(bench_nats_next(b + off, sizeof(b) - 1 - off, 1000, &used, &d, &dl),
                     BENCH_NATS_ERR);
    assert_int_equal(dl, 14);
    off += used;
    assert_int_equal(bench_nats_next(b + off, sizeof(b) - 1 - off, 1000, &used, &d, &dl),
                     BENCH_NATS_OTHER);
    off += used;
    assert_int_equal(off, sizeof(b) - 1);
    assert_int_equal(bench_nats_next(b + off, 0, 1000, &used, &d, &dl), BENCH_NATS_MORE);
}

static void test_nats_split_msg_needs_more(void **state)
{
    (void)state;
    const char b[] = "MSG bench 1 5\r\nhello\r\n";
    size_t used, dl;
    const char *d;
    /* every proper prefix is incomplete: nothing consumed */
    for (size_t n = 0; n < sizeof(b) - 1; n++) {
        assert_int_equal(bench_nats_next(b, n, 1000, &used, &d, &dl), BENCH_NATS_MORE);
        assert_int_equal(used, 0);
    }
    assert_int_equal(bench_nats_next(b, sizeof(b) - 1, 1000, &used, &d, &dl), BENCH_NATS_MSG);
    assert_int_equal(used, sizeof(b) - 1);
}

static void test_nats_bad_size(void **state)
{
    (void)state;
    size_t used, dl;
    const char *d;
    assert_int_equal(bench_nats_next(S("MSG bench 1 x5\r\n"), 1000, &used, &d, &dl),
                     BENCH_NATS_BAD);
    assert_int_equal(bench_nats_next(S("MSG bench 1 5000\r\n"), 1000, &used, &d, &dl),
                     BENCH_NATS_BAD);
    assert_int_equal(
        bench_nats_next(S("MSG bench 1 99999999999999999999999\r\n"), 1000, &used, &d, &dl),
        BENCH_NATS_BAD);
    assert_int_equal(bench_nats_next(S("MSG bench 1 \r\n"), 1000, &used, &d, &dl), BENCH_NATS_BAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_type_message),
        cmocka_unit_test(test_scan_type_unknown_or_truncated),
        cmocka_unit_test(test_scan_i64_reads_fields),
        cmocka_unit_test(test_scan_i64_value_equal_to_key_is_skipped),
        cmocka_unit_test(test_scan_i64_rejects_overflow_and_truncation),
        cmocka_unit_test(test_scan_str_reads_and_bounds),
        cmocka_unit_test(test_hist_quantiles_within_precision),
        cmocka_unit_test(test_hist_empty_small_and_negative),
        cmocka_unit_test(test_proc_parse_stat_with_spaces_in_comm),
        cmocka_unit_test(test_nats_ops_and_batching),
        cmocka_unit_test(test_nats_split_msg_needs_more),
        cmocka_unit_test(test_nats_bad_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
