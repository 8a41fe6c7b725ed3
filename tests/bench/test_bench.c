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

/* A server frame: FIN + opcode, unmasked, with the shortest length form. */
static size_t server_frame(unsigned char *out, uint8_t opcode, const unsigned char *p, size_t len)
{
    size_t hl;
    out[0] = (unsigned char)(0x80u | opcode);
    if (len < 126) {
        out[1] = (unsigned char)len;
        hl = 2;
    } else if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        hl = 4;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (unsigned char)((uint64_t)len >> (8 * (7 - i)));
        hl = 10;
    }
    memcpy(out + hl, p, len);
    return hl + len;
}

static void test_ws_batched_frames(void **state)
{
    (void)state;
    unsigned char buf[256];
    size_t n = server_frame(buf, 1, (const unsigned char *)"hello", 5);
    n += server_frame(buf + n, 9, (const unsigned char *)"pi", 2);
    n += server_frame(buf + n, 1, (const unsigned char *)"", 0);
    struct bench_ws_frame f;
    size_t off = 0;
    assert_int_equal(bench_ws_parse(buf, n, 1 << 20, &f), BENCH_WS_FRAME);
    assert_int_equal(f.opcode, 1);
    assert_int_equal(f.fin, 1);
    assert_int_equal(f.payload_len, 5);
    assert_memory_equal(f.payload, "hello", 5);
    assert_int_equal(f.frame_len, 7);
    off += f.frame_len;
    assert_int_equal(bench_ws_parse(buf + off, n - off, 1 << 20, &f), BENCH_WS_FRAME);
    assert_int_equal(f.opcode, 9);
    assert_memory_equal(f.payload, "pi", 2);
    off += f.frame_len;
    assert_int_equal(bench_ws_parse(buf + off, n - off, 1 << 20, &f), BENCH_WS_FRAME);
    assert_int_equal(f.payload_len, 0);
    off += f.frame_len;
    assert_int_equal(off, n);
    assert_int_equal(bench_ws_parse(buf + off, 0, 1 << 20, &f), BENCH_WS_MORE);
}

static void test_ws_split_frames_need_more(void **state)
{
    (void)state;
    static unsigned char payload[70000], buf[70100];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (unsigned char)('a' + i % 26);
    size_t lens[] = {10, 300, 70000}; /* 7-bit, 16-bit and 64-bit lengths */
    size_t hls[] = {2, 4, 10};
    for (int k = 0; k < 3; k++) {
        size_t n = server_frame(buf, 1, payload, lens[k]);
        assert_int_equal(n, hls[k] + lens[k]);
        struct bench_ws_frame f;
        for (size_t cut = 0; cut < n; cut += (cut < 12 ? 1 : 997))
            assert_int_equal(bench_ws_parse(buf, cut, 1 << 20, &f), BENCH_WS_MORE);
        assert_int_equal(bench_ws_parse(buf, n, 1 << 20, &f), BENCH_WS_FRAME);
        assert_int_equal(f.payload_len, lens[k]);
        assert_int_equal(f.frame_len, n);
        assert_ptr_equal(f.payload, buf + hls[k]);
        assert_memory_equal(f.payload, payload, lens[k]);
    }
}

static void test_ws_bad_frames(void **state)
{
    (void)state;
    struct bench_ws_frame f;
    const unsigned char masked[] = {0x81, 0x81, 1, 2, 3, 4, 'x'};
    assert_int_equal(bench_ws_parse(masked, sizeof(masked), 100, &f), BENCH_WS_BAD);
    const unsigned char rsv[] = {0xc1, 0x01, 'x'};
    assert_int_equal(bench_ws_parse(rsv, sizeof(rsv), 100, &f), BENCH_WS_BAD);
    const unsigned char top[] = {0x81, 127, 0x80, 0, 0, 0, 0, 0, 0, 1};
    assert_int_equal(bench_ws_parse(top, sizeof(top), 100, &f), BENCH_WS_BAD);
    const unsigned char big[] = {0x82, 126, 0x01, 0x00}; /* 256 > max 100 */
    assert_int_equal(bench_ws_parse(big, sizeof(big), 100, &f), BENCH_WS_BAD);
    const unsigned char frag_ping[] = {0x09, 0x00};
    assert_int_equal(bench_ws_parse(frag_ping, sizeof(frag_ping), 100, &f), BENCH_WS_BAD);
    const unsigned char long_ping[] = {0x89, 126, 0x00, 0x80};
    assert_int_equal(bench_ws_parse(long_ping, sizeof(long_ping), 1000, &f), BENCH_WS_BAD);
    const unsigned char cont[] = {0x01, 0x01, 'a', 0x80, 0x01, 'b'}; /* text, then continuation */
    assert_int_equal(bench_ws_parse(cont, sizeof(cont), 100, &f), BENCH_WS_FRAME);
    assert_int_equal(f.fin, 0);
    assert_int_equal(bench_ws_parse(cont + 3, 3, 100, &f), BENCH_WS_FRAME);
    assert_int_equal(f.opcode, 0);
    assert_int_equal(f.fin, 1);
}

static void test_ws_client_frame_masks(void **state)
{
    (void)state;
    static unsigned char payload[70000], out[70100];
    const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    size_t lens[] = {5, 200, 70000};
    size_t hls[] = {2, 4, 10};
    for (int k = 0; k < 3; k++) {
        memset(payload, 'q', lens[k]);
        size_t n = bench_ws_client_frame(out, sizeof(out), 1, payload, lens[k], mask);
        assert_int_equal(n, hls[k] + 4 + lens[k]);
        assert_int_equal(out[0], 0x81);
        assert_true(out[1] & 0x80);
        assert_memory_equal(out + hls[k], mask, 4);
        for (size_t i = 0; i < lens[k]; i++)
            assert_int_equal(out[hls[k] + 4 + i] ^ mask[i & 3], 'q');
    }
    assert_int_equal(out[1] & 0x7f, 127);
    assert_int_equal(bench_ws_client_frame(out, 10, 1, payload, 5, mask), 0);
    assert_int_equal(bench_ws_client_frame(out, 11, 1, payload, 5, mask), 11);
}

/* The one-pass scan agrees with bench_scan_value key by key, on a real frame and on odd ones. */
static void test_scan_keys_matches_scan_value(void **state)
{
    (void)state;
    static const char *const frames[] = {
        "{\"type\":\"message\",\"room_id\":\"bench\",\"seq\":42,\"user_id\":\"u-sbt\","
        "\"data\":{\"sbt\":123456789,\"sbn\":7,\"pad\":\"xxxx\\\"seq\\\":1\"},\"ts\":5}",
        "{\"sbn\" : 3, \"sbt\":\t9}",
        "{\"note\":\"sbt\",\"sbt\":1}",
        "{\"seq\":",
        "{\"sbt\":5,\"sbt\":6,\"seq\"",
        "\"",
        "",
    };
    static const char *const keys[] = {"sbt", "sbn", "seq"};
    for (size_t f = 0; f < sizeof(frames) / sizeof(frames[0]); f++) {
        const char *v[3];
        size_t len = strlen(frames[f]);
        size_t found = bench_scan_keys(frames[f], len, keys, 3, v);
        size_t want = 0;
        for (size_t k = 0; k < 3; k++) {
            const char *w = bench_scan_value(frames[f], len, keys[k]);
            assert_ptr_equal(v[k], w);
            want += w != NULL;
        }
        assert_int_equal(found, want);
    }
    const char *v[3];
    const char *fr = frames[0];
    bench_scan_keys(fr, strlen(fr), keys, 3, v);
    int64_t x = 0;
    assert_int_equal(bench_parse_i64(v[0], fr + strlen(fr), &x), 0);
    assert_int_equal(x, 123456789);
    assert_int_equal(bench_parse_i64(v[2], fr + strlen(fr), &x), 0);
    assert_int_equal(x, 42);
    assert_int_equal(bench_parse_i64(NULL, fr, &x), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_type_message),
        cmocka_unit_test(test_scan_type_unknown_or_truncated),
        cmocka_unit_test(test_scan_i64_reads_fields),
        cmocka_unit_test(test_scan_keys_matches_scan_value),
        cmocka_unit_test(test_scan_i64_value_equal_to_key_is_skipped),
        cmocka_unit_test(test_scan_i64_rejects_overflow_and_truncation),
        cmocka_unit_test(test_scan_str_reads_and_bounds),
        cmocka_unit_test(test_hist_quantiles_within_precision),
        cmocka_unit_test(test_hist_empty_small_and_negative),
        cmocka_unit_test(test_proc_parse_stat_with_spaces_in_comm),
        cmocka_unit_test(test_nats_ops_and_batching),
        cmocka_unit_test(test_nats_split_msg_needs_more),
        cmocka_unit_test(test_nats_bad_size),
        cmocka_unit_test(test_ws_batched_frames),
        cmocka_unit_test(test_ws_split_frames_need_more),
        cmocka_unit_test(test_ws_bad_frames),
        cmocka_unit_test(test_ws_client_frame_masks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
