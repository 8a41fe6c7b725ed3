/* etcd JSON gateway codecs: exact request bodies (etcd ignores misspelt fields, so every field
 * name is pinned here), answers with zero values omitted, watch lines and the line splitter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_etcd_json.h"

#define B(s) cp_etcd_json_str(s)

/* `got` is read after the builder ran (argument order is unspecified). */
static void expect_json(enum sb_err err, char **got, const char *want)
{
    assert_int_equal(err, SB_OK);
    assert_string_equal(*got, want);
    free(*got);
    *got = NULL;
}

#define P(s) s, strlen(s)

/* ---- base64 ---- */

static void test_b64_round_trip_and_padding(void **state)
{
    (void)state;
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char *o, *d;
        size_t n, m;
        assert_int_equal(cp_etcd_json_b64_encode(in[i], strlen(in[i]), &o, &n), SB_OK);
        assert_string_equal(o, enc[i]);
        assert_int_equal(cp_etcd_json_b64_decode(o, n, &d, &m), SB_OK);
        assert_int_equal(m, strlen(in[i]));
        assert_memory_equal(d, in[i], m);
        free(o);
        free(d);
    }
    char *d;
    size_t m;
    assert_int_equal(cp_etcd_json_b64_decode("/w==", 4, &d, &m), SB_OK); /* 0xff */
    assert_int_equal(m, 1);
    assert_int_equal((unsigned char)d[0], 0xff);
    free(d);
}

static void test_b64_rejects_bad_input(void **state)
{
    (void)state;
    char *d = NULL;
    size_t m;
    const char *bad[] = {"Zg=", "Z===", "Zg=a", "Zm9v!A==", "Zg==Zg==", "Zh==", "=Zg="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cp_etcd_json_b64_decode(bad[i], strlen(bad[i]), &d, &m), SB_EPROTO);
    assert_null(d);
}

/* ---- builders ---- */

static void test_json_range_minimal_omits_zero_values(void **state)
{
    (void)state;
    char *o = NULL;
    struct cp_etcd_range_req r = {.key = B("a")};
    expect_json(cp_etcd_json_range(&r, &o), &o, "{\"key\":\"YQ==\"}");
}

static void test_json_range_all_fields(void **state)
{
    (void)state;
    char *o = NULL;
    struct cp_etcd_range_req r = {.key = B("room/a/"),
                                  .range_end = B("room/a0"),
                                  .limit = 10,
                                  .revision = 9007199254740993LL,
                                  .keys_only = true,
                                  .count_only = true};
    expect_json(cp_etcd_json_range(&r, &o), &o,
                "{\"key\":\"cm9vbS9hLw==\",\"range_end\":\"cm9vbS9hMA==\",\"limit\":\"10\","
                "\"revision\":\"9007199254740993\",\"keys_only\":true,\"count_only\":true}");
    /* range_end "\0": every key >= key. */
    struct cp_etcd_range_req all = {.key = B("a"), .range_end = {"", 1}};
    expect_json(cp_etcd_json_range(&all, &o), &o, "{\"key\":\"YQ==\",\"range_end\":\"AA==\"}");
}

static void test_json_range_rejects_missing_key(void **state)
{
    (void)state;
    char *o = NULL;
    struct cp_etcd_range_req r = {.key = {NULL, 0}};
    assert_int_equal(cp_etcd_json_range(&r, &o), SB_EINVAL);
    struct cp_etcd_range_req neg = {.key = B("a"), .limit = -1};
    assert_int_equal(cp_etcd_json_range(&neg, &o), SB_EINVAL);
    assert_int_equal(cp_etcd_json_range(NULL, &o), SB_EINVAL);
    assert_null(o);
}

static void test_json_put_variants(void **state)
{
    (void)state;
    char *o = NULL;
    struct cp_etcd_put_req p = {.key = B("a"), .value = B("")};
    expect_json(cp_etcd_json_put(&p, &o), &o, "{\"key\":\"YQ==\",\"value\":\"\"}");
    struct cp_etcd_put_req q = {
        .key = B("a"), .value = {"v\0w", 3}, .lease = 7587869213420123456LL, .prev_kv = true};
    expect_json(cp_etcd_json_put(&q, &o), &o,
                "{\"key\":\"YQ==\",\"value\":\"dgB3\",\"lease\":\"7587869213420123456\","
                "\"prev_kv\":true}");
    struct cp_etcd_put_req r = {.key = B("a"), .value = B("x"), .ignore_lease = true};
    expect_json(cp_etcd_json_put(&r, &o), &o,
                "{\"key\":\"YQ==\",\"value\":\"eA==\",\"ignore_lease\":true}");
    struct cp_etcd_put_req bad = {.key = B("a"), .lease = 5, .ignore_lease = true};
    assert_int_equal(cp_etcd_json_put(&bad, &o), SB_EINVAL);
}

static void test_json_delete_variants(void **state)
{
    (void)state;
    char *o = NULL;
    struct cp_etcd_delete_req d = {.key = B("a")};
    expect_json(cp_etcd_json_delete(&d, &o), &o, "{\"key\":\"YQ==\"}");
    struct cp_etcd_delete_req e = {.key = B("a/"), .range_end = B("a0"), .prev_kv = true};
    expect_json(cp_etcd_json_delete(&e, &o), &o,
                "{\"key\":\"YS8=\",\"range_end\":\"YTA=\",\"prev_kv\":true}");
}

static void test_json_txn_create_if_absent(void **state)
{
    (void)state;
    char *o = NULL;
    struct cp_etcd_cmp c = {
        .key = B("k"), .target = CP_ETCD_CMP_CREATE, .result = CP_ETCD_CMP_EQUAL, .num = 0};
    struct cp_etcd_op s = {.type = CP_ETCD_OP_PUT, .u.put = {.key = B("k"), .value = B("v")}};
    struct cp_etcd_op f = {.type = CP_ETCD_OP_RANGE, .u.range = {.key = B("k")}};
    struct cp_etcd_txn_req t = {&c, 1, &s, 1, &f, 1};
    expect_json(cp_etcd_json_txn(&t, &o), &o,
                "{\"compare\":[{\"key\":\"aw==\",\"target\":\"CREATE\",\"result\":\"EQUAL\","
                "\"create_revision\":\"0\"}],\"success\":[{\"request_put\":{\"key\":\"aw==\","
                "\"value\":\"dg==\"}}],\"failure\":[{\"request_range\":{\"key\":\"aw==\"}}]}");
}

static void test_json_txn_every_target_and_result(void **state)
{
    (void)state;
    char *o = NULL;
    struct cp_etcd_cmp c[] = {
        {.key = B("a"), .target = CP_ETCD_CMP_VERSION, .result = CP_ETCD_CMP_GREATER, .num = 1},
        {.key = B("a"), .target = CP_ETCD_CMP_MOD, .result = CP_ETCD_CMP_LESS, .num = 5},
        {.key = B("a"),
         .target = CP_ETCD_CMP_VALUE,
         .result = CP_ETCD_CMP_NOT_EQUAL,
         .value = B("x")},
        {.key = B("a"), .target = CP_ETCD_CMP_LEASE, .result = CP_ETCD_CMP_EQUAL, .num = 9},
    };
    struct cp_etcd_op s[] = {
        {.type = CP_ETCD_OP_DELETE, .u.del = {.key = B("a/"), .range_end = B("a0")}},
        {.type = CP_ETCD_OP_PUT, .u.put = {.key = B("b"), .value = B(""), .lease = 3}},
    };
    struct cp_etcd_txn_req t = {c, 4, s, 2, NULL, 0};
    expect_json(
        cp_etcd_json_txn(&t, &o), &o,
        "{\"compare\":["
        "{\"key\":\"YQ==\",\"target\":\"VERSION\",\"result\":\"GREATER\",\"version\":\"1\"},"
        "{\"key\":\"YQ==\",\"target\":\"MOD\",\"result\":\"LESS\",\"mod_revision\":\"5\"},"
        "{\"key\":\"YQ==\",\"target\":\"VALUE\",\"result\":\"NOT_EQUAL\",\"value\":\"eA==\"},"
        "{\"key\":\"YQ==\",\"target\":\"LEASE\",\"result\":\"EQUAL\",\"lease\":\"9\"}],"
        "\"success\":[{\"request_delete_range\":{\"key\":\"YS8=\",\"range_end\":\"YTA=\"}},"
        "{\"request_put\":{\"key\":\"Yg==\",\"value\":\"\",\"lease\":\"3\"}}],"
        "\"failure\":[]}");
    struct cp_etcd_txn_req empty = {NULL, 0, NULL, 0, NULL, 0};
    expect_json(cp_etcd_json_txn(&empty, &o), &o, "{\"compare\":[],\"success\":[],\"failure\":[]}");
}

static void test_json_txn_rejects_bad_ops(void **state)
{
    (void)state;
    char *o = NULL;
    struct cp_etcd_cmp c = {.key = {NULL, 0}};
    struct cp_etcd_txn_req t = {&c, 1, NULL, 0, NULL, 0};
    assert_int_equal(cp_etcd_json_txn(&t, &o), SB_EINVAL);
    struct cp_etcd_cmp c2 = {.key = B("a"), .target = (enum cp_etcd_cmp_target)9};
    struct cp_etcd_txn_req t2 = {&c2, 1, NULL, 0, NULL, 0};
    assert_int_equal(cp_etcd_json_txn(&t2, &o), SB_EINVAL);
    struct cp_etcd_op op = {.type = CP_ETCD_OP_PUT, .u.put = {.key = {NULL, 0}}};
    struct cp_etcd_txn_req t3 = {NULL, 0, NULL, 0, &op, 1};
    assert_int_equal(cp_etcd_json_txn(&t3, &o), SB_EINVAL);
    struct cp_etcd_op op2 = {.type = (enum cp_etcd_op_type)7};
    struct cp_etcd_txn_req t4 = {NULL, 0, &op2, 1, NULL, 0};
    assert_int_equal(cp_etcd_json_txn(&t4, &o), SB_EINVAL);
    struct cp_etcd_txn_req t5 = {NULL, 2, NULL, 0, NULL, 0};
    assert_int_equal(cp_etcd_json_txn(&t5, &o), SB_EINVAL);
    assert_null(o);
}

static void test_json_lease_lock_watch_bodies(void **state)
{
    (void)state;
    char *o = NULL;
    expect_json(cp_etcd_json_lease_grant(10, 0, &o), &o, "{\"TTL\":\"10\"}");
    expect_json(cp_etcd_json_lease_grant(2, 77, &o), &o, "{\"TTL\":\"2\",\"ID\":\"77\"}");
    assert_int_equal(cp_etcd_json_lease_grant(0, 0, &o), SB_EINVAL);
    expect_json(cp_etcd_json_lease_id(7587869213420123457LL, &o), &o,
                "{\"ID\":\"7587869213420123457\"}");
    assert_int_equal(cp_etcd_json_lease_id(0, &o), SB_EINVAL);
    expect_json(cp_etcd_json_lease_ttl(5, false, &o), &o, "{\"ID\":\"5\"}");
    expect_json(cp_etcd_json_lease_ttl(5, true, &o), &o, "{\"ID\":\"5\",\"keys\":true}");
    expect_json(cp_etcd_json_lock(B("sb/locks/room/r1"), 5, &o), &o,
                "{\"name\":\"c2IvbG9ja3Mvcm9vbS9yMQ==\",\"lease\":\"5\"}");
    assert_int_equal(cp_etcd_json_lock(B("x"), 0, &o), SB_EINVAL);
    expect_json(cp_etcd_json_unlock(B("x/1"), &o), &o, "{\"key\":\"eC8x\"}");
    expect_json(cp_etcd_json_compact(12, &o), &o, "{\"revision\":\"12\"}");
    expect_json(cp_etcd_json_watch_create(B("a"), (struct cp_etcd_bytes){NULL, 0}, 0, false, &o),
                &o, "{\"create_request\":{\"key\":\"YQ==\"}}");
    expect_json(cp_etcd_json_watch_create(B("a/"), B("a0"), 42, true, &o), &o,
                "{\"create_request\":{\"key\":\"YS8=\",\"range_end\":\"YTA=\","
                "\"start_revision\":\"42\",\"progress_notify\":true}}");
    expect_json(cp_etcd_json_watch_cancel(0, &o), &o, "{\"cancel_request\":{\"watch_id\":\"0\"}}");
    assert_int_equal(cp_etcd_json_watch_create(B(""), B("b"), 0, true, &o), SB_EINVAL);
}

/* ---- parsers (bodies as etcd 3.4.23 answered them) ---- */

#define HDR(rev)                                                                                   \
    "\"header\":{\"cluster_id\":\"15118495548433857066\",\"member_id\":\"13668033151171901709\","  \
    "\"revision\":\"" rev "\",\"raft_term\":\"2\"}"

static void test_parse_range_with_kvs(void **state)
{
    (void)state;
    const char *b = "{" HDR("2") ",\"kvs\":[{\"key\":\"YQ==\",\"create_revision\":\"2\","
                                 "\"mod_revision\":\"3\",\"version\":\"2\",\"value\":\"djE=\","
                                 "\"lease\":\"7587869213420123457\"}],\"count\":\"1\"}";
    struct cp_etcd_result r;
    assert_int_equal(cp_etcd_json_parse_result(P(b), &r), SB_OK);
    assert_int_equal(r.revision, 2);
    assert_int_equal(r.count, 1);
    assert_false(r.more);
    assert_int_equal(r.n_kvs, 1);
    assert_string_equal(r.kvs[0].key, "a");
    assert_string_equal(r.kvs[0].value, "v1");
    assert_int_equal(r.kvs[0].create_revision, 2);
    assert_int_equal(r.kvs[0].mod_revision, 3);
    assert_int_equal(r.kvs[0].version, 2);
    assert_true(r.kvs[0].lease == 7587869213420123457LL); /* > 2^53, exact */
    cp_etcd_json_result_fini(&r);
}

static void test_parse_range_empty_omits_everything(void **state)
{
    (void)state;
    const char *b = "{" HDR("8") "}";
    struct cp_etcd_result r;
    assert_int_equal(cp_etcd_json_parse_result(P(b), &r), SB_OK);
    assert_int_equal(r.revision, 8);
    assert_int_equal(r.n_kvs, 0);
    assert_null(r.kvs);
    assert_int_equal(r.count, 0);
    cp_etcd_json_result_fini(&r);
    /* count_only: a count, no kvs; more:true when a limit cut it. */
    const char *c = "{" HDR("8") ",\"count\":\"3\",\"more\":true}";
    assert_int_equal(cp_etcd_json_parse_result(P(c), &r), SB_OK);
    assert_int_equal(r.count, 3);
    assert_true(r.more);
    cp_etcd_json_result_fini(&r);
    /* A kv whose value is empty and version/lease zero: fields absent. */
    const char *d = "{" HDR("4") ",\"kvs\":[{\"key\":\"YQ==\",\"create_revision\":\"4\","
                                 "\"mod_revision\":\"4\",\"version\":\"1\"}],\"count\":\"1\"}";
    assert_int_equal(cp_etcd_json_parse_result(P(d), &r), SB_OK);
    assert_int_equal(r.kvs[0].value_len, 0);
    assert_string_equal(r.kvs[0].value, "");
    assert_int_equal(r.kvs[0].lease, 0);
    cp_etcd_json_result_fini(&r);
}

static void test_parse_put_prev_kv_and_delete(void **state)
{
    (void)state;
    struct cp_etcd_result r;
    const char *p = "{" HDR("5") ",\"prev_kv\":{\"key\":\"bDE=\",\"create_revision\":\"4\","
                                 "\"mod_revision\":\"4\",\"version\":\"1\",\"lease\":\"41\"}}";
    assert_int_equal(cp_etcd_json_parse_result(P(p), &r), SB_OK);
    assert_int_equal(r.revision, 5);
    assert_int_equal(r.n_kvs, 1);
    assert_string_equal(r.kvs[0].key, "l1");
    assert_int_equal(r.kvs[0].lease, 41);
    cp_etcd_json_result_fini(&r);
    const char *d = "{" HDR("8") ",\"deleted\":\"1\",\"prev_kvs\":[{\"key\":\"YQ==\","
                                 "\"create_revision\":\"2\",\"mod_revision\":\"2\","
                                 "\"version\":\"1\",\"value\":\"djE=\"}]}";
    assert_int_equal(cp_etcd_json_parse_result(P(d), &r), SB_OK);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.n_kvs, 1);
    cp_etcd_json_result_fini(&r);
    const char *none = "{" HDR("8") "}"; /* deleted nothing: no "deleted" */
    assert_int_equal(cp_etcd_json_parse_result(P(none), &r), SB_OK);
    assert_int_equal(r.count, 0);
    cp_etcd_json_result_fini(&r);
}

static void test_parse_txn_won_and_lost(void **state)
{
    (void)state;
    struct cp_etcd_txn_result t;
    const char *won =
        "{" HDR("3") ",\"succeeded\":true,\"responses\":[{\"response_put\":{\"header\":{"
                     "\"revision\":\"3\"}}},{\"response_delete_range\":{\"header\":{\"revision\":"
                     "\"3\"}}},{\"response_range\":{\"header\":{\"revision\":\"3\"},\"kvs\":[{"
                     "\"key\":\"Yg==\",\"create_revision\":\"3\",\"mod_revision\":\"3\","
                     "\"version\":\"1\",\"value\":\"eA==\"}],\"count\":\"1\"}}]}";
    assert_int_equal(cp_etcd_json_parse_txn(P(won), &t), SB_OK);
    assert_true(t.succeeded);
    assert_int_equal(t.revision, 3);
    assert_int_equal(t.n_ops, 3);
    assert_int_equal(t.ops[0].type, CP_ETCD_OP_PUT);
    assert_int_equal(t.ops[1].type, CP_ETCD_OP_DELETE);
    assert_int_equal(t.ops[1].r.count, 0);
    assert_int_equal(t.ops[2].type, CP_ETCD_OP_RANGE);
    assert_string_equal(t.ops[2].r.kvs[0].value, "x");
    cp_etcd_json_txn_result_fini(&t);
    /* A lost txn has no "succeeded" field at all. */
    const char *lost = "{" HDR("2") ",\"responses\":[{\"response_range\":{\"header\":{"
                                    "\"revision\":\"2\"},\"kvs\":[{\"key\":\"YQ==\","
                                    "\"create_revision\":\"2\",\"mod_revision\":\"2\","
                                    "\"version\":\"1\",\"value\":\"djE=\"}],\"count\":\"1\"}}]}";
    assert_int_equal(cp_etcd_json_parse_txn(P(lost), &t), SB_OK);
    assert_false(t.succeeded);
    assert_int_equal(t.ops[0].r.kvs[0].create_revision, 2);
    cp_etcd_json_txn_result_fini(&t);
    const char *bare = "{" HDR("2") "}"; /* lost, no failure ops */
    assert_int_equal(cp_etcd_json_parse_txn(P(bare), &t), SB_OK);
    assert_false(t.succeeded);
    assert_int_equal(t.n_ops, 0);
    cp_etcd_json_txn_result_fini(&t);
    const char *two = "{\"responses\":[{\"response_put\":{},\"response_range\":{}}]}";
    assert_int_equal(cp_etcd_json_parse_txn(P(two), &t), SB_EPROTO);
    const char *unk = "{\"responses\":[{\"response_txn\":{}}]}";
    assert_int_equal(cp_etcd_json_parse_txn(P(unk), &t), SB_EPROTO);
}

static void test_parse_lease_answers(void **state)
{
    (void)state;
    struct cp_etcd_lease l;
    const char *g = "{" HDR("3") ",\"ID\":\"4111120338269599756\",\"TTL\":\"5\"}";
    assert_int_equal(cp_etcd_json_parse_lease(P(g), &l), SB_OK);
    assert_true(l.id == 4111120338269599756LL);
    assert_int_equal(l.ttl, 5);
    cp_etcd_json_lease_fini(&l);
    const char *ka = "{\"result\":{" HDR("5") ",\"ID\":\"9223372036854775807\",\"TTL\":\"5\"}}";
    assert_int_equal(cp_etcd_json_parse_lease(P(ka), &l), SB_OK);
    assert_true(l.id == INT64_MAX);
    assert_int_equal(l.ttl, 5);
    cp_etcd_json_lease_fini(&l);
    /* Keep-alive of a dead lease: no TTL. */
    const char *dead = "{\"result\":{" HDR("7") ",\"ID\":\"4111120338269599758\"}}";
    assert_int_equal(cp_etcd_json_parse_lease(P(dead), &l), SB_OK);
    assert_int_equal(l.ttl, 0);
    cp_etcd_json_lease_fini(&l);
    const char *ttl = "{" HDR("5") ",\"ID\":\"41\",\"TTL\":\"4\",\"grantedTTL\":\"5\","
                                   "\"keys\":[\"bDE=\",\"bDI=\"]}";
    assert_int_equal(cp_etcd_json_parse_lease(P(ttl), &l), SB_OK);
    assert_int_equal(l.granted_ttl, 5);
    assert_int_equal(l.n_keys, 2);
    assert_string_equal(l.keys[1], "l2");
    cp_etcd_json_lease_fini(&l);
    const char *gone = "{" HDR("7") ",\"ID\":\"41\",\"TTL\":\"-1\"}";
    assert_int_equal(cp_etcd_json_parse_lease(P(gone), &l), SB_OK);
    assert_int_equal(l.ttl, -1);
    cp_etcd_json_lease_fini(&l);
    const char *big = "{\"ID\":\"9223372036854775808\"}"; /* overflow */
    assert_int_equal(cp_etcd_json_parse_lease(P(big), &l), SB_EPROTO);
    const char *num = "{\"ID\":\"12x\"}";
    assert_int_equal(cp_etcd_json_parse_lease(P(num), &l), SB_EPROTO);
    const char *flt = "{\"ID\":1.5}";
    assert_int_equal(cp_etcd_json_parse_lease(P(flt), &l), SB_EPROTO);
}

static void test_parse_lock_and_errors(void **state)
{
    (void)state;
    char *k;
    size_t kn;
    int64_t rev;
    const char *b = "{" HDR("6") ",\"key\":\"bXlsb2NrLzM5MGRhMjJhN2Y3MTc4MGU=\"}";
    assert_int_equal(cp_etcd_json_parse_lock(P(b), &k, &kn, &rev), SB_OK);
    assert_string_equal(k, "mylock/390da22a7f71780e");
    assert_int_equal(rev, 6);
    free(k);
    const char *nokey = "{" HDR("6") "}";
    assert_int_equal(cp_etcd_json_parse_lock(P(nokey), &k, &kn, &rev), SB_EPROTO);
    struct cp_etcd_error e;
    const char *unary = "{\"error\":\"etcdserver: requested lease not found\",\"message\":"
                        "\"etcdserver: requested lease not found\",\"code\":5}";
    assert_int_equal(cp_etcd_json_parse_error(P(unary), &e), SB_OK);
    assert_int_equal(e.grpc_code, 5);
    assert_string_equal(e.message, "etcdserver: requested lease not found");
    cp_etcd_json_error_fini(&e);
    const char *stream = "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":"
                         "\"etcdserver: no leader\",\"http_status\":\"Service Unavailable\"}}";
    assert_int_equal(cp_etcd_json_parse_error(P(stream), &e), SB_OK);
    assert_int_equal(e.grpc_code, 14);
    assert_string_equal(e.message, "etcdserver: no leader");
    cp_etcd_json_error_fini(&e);
    assert_int_equal(cp_etcd_json_parse_error(P(b), &e), SB_EPROTO);
    struct cp_etcd_result r;
    assert_int_equal(cp_etcd_json_parse_result(P(unary), &r), SB_EPROTO);
    int64_t v;
    assert_int_equal(cp_etcd_json_parse_revision(P(b), &v), SB_OK);
    assert_int_equal(v, 6);
}

static void test_parse_rejects_malformed_bodies(void **state)
{
    (void)state;
    struct cp_etcd_result r;
    const char *bad[] = {
        "",
        "[]",
        "{",
        "{\"header\":[]}",
        "{\"header\":{\"revision\":\"x\"}}",
        "{\"header\":{\"revision\":\"\"}}",
        "{\"header\":{\"revision\":true}}",
        "{\"kvs\":{\"key\":1}}",
        "{\"kvs\":[{\"key\":\"!!!!\"}]}",
        "{\"kvs\":[1]}",
        "{\"kvs\":\"x\"}",
        "{\"more\":\"yes\"}",
        "{\"count\":\"1\",\"count\":\"2\"}",
        "{\"count\":\" 1\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cp_etcd_json_parse_result(P(bad[i]), &r), SB_EPROTO);
    /* Not NUL-terminated: only len bytes count. */
    const char *b = "{\"count\":\"4\"}garbage";
    assert_int_equal(cp_etcd_json_parse_result(b, 13, &r), SB_OK);
    assert_int_equal(r.count, 4);
    cp_etcd_json_result_fini(&r);
}

/* ---- watch ---- */

static void test_watch_created_events_progress(void **state)
{
    (void)state;
    struct cp_etcd_watch_msg m;
    const char *c = "{\"result\":{" HDR("8") ",\"created\":true}}";
    assert_int_equal(cp_etcd_json_parse_watch(P(c), &m), SB_OK);
    assert_int_equal(m.kind, CP_ETCD_WATCH_CREATED);
    assert_int_equal(m.revision, 8);
    assert_int_equal(m.watch_id, 0);
    cp_etcd_json_watch_msg_fini(&m);
    /* A catch-up line spanning revisions 2 and 8; PUT has no "type". */
    const char *ev = "{\"result\":{" HDR("8") ",\"events\":[{\"kv\":{\"key\":\"YQ==\","
                                              "\"create_revision\":\"2\",\"mod_revision\":\"2\","
                                              "\"version\":\"1\",\"value\":\"djE=\"}},{\"type\":"
                                              "\"DELETE\",\"kv\":{\"key\":\"YQ==\","
                                              "\"mod_revision\":\"8\"}}]}}";
    assert_int_equal(cp_etcd_json_parse_watch(P(ev), &m), SB_OK);
    assert_int_equal(m.kind, CP_ETCD_WATCH_EVENTS);
    assert_int_equal(m.n_events, 2);
    assert_int_equal(m.events[0].type, CP_ETCD_EVENT_PUT);
    assert_string_equal(m.events[0].kv.value, "v1");
    assert_int_equal(m.events[0].kv.mod_revision, 2);
    assert_int_equal(m.events[1].type, CP_ETCD_EVENT_DELETE);
    assert_string_equal(m.events[1].kv.key, "a");
    assert_int_equal(m.events[1].kv.value_len, 0);
    assert_int_equal(m.events[1].kv.mod_revision, 8);
    cp_etcd_json_watch_msg_fini(&m);
    const char *pr = "{\"result\":{" HDR("9") "}}";
    assert_int_equal(cp_etcd_json_parse_watch(P(pr), &m), SB_OK);
    assert_int_equal(m.kind, CP_ETCD_WATCH_PROGRESS);
    assert_int_equal(m.revision, 9);
    cp_etcd_json_watch_msg_fini(&m);
    const char *id = "{\"result\":{" HDR("9") ",\"watch_id\":\"3\"}}";
    assert_int_equal(cp_etcd_json_parse_watch(P(id), &m), SB_OK);
    assert_int_equal(m.watch_id, 3);
    cp_etcd_json_watch_msg_fini(&m);
}

static void test_watch_canceled_compacted_and_error(void **state)
{
    (void)state;
    struct cp_etcd_watch_msg m;
    /* The header of a cancel has no revision. */
    const char *cc = "{\"result\":{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\","
                     "\"raft_term\":\"2\"},\"canceled\":true,\"compact_revision\":\"5\"}}";
    assert_int_equal(cp_etcd_json_parse_watch(P(cc), &m), SB_OK);
    assert_int_equal(m.kind, CP_ETCD_WATCH_CANCELED);
    assert_int_equal(m.compact_revision, 5);
    assert_int_equal(m.revision, 0);
    cp_etcd_json_watch_msg_fini(&m);
    const char *cr = "{\"result\":{\"canceled\":true,\"cancel_reason\":\"mvcc: required "
                     "revision is a future revision\"}}";
    assert_int_equal(cp_etcd_json_parse_watch(P(cr), &m), SB_OK);
    assert_int_equal(m.kind, CP_ETCD_WATCH_CANCELED);
    assert_int_equal(m.compact_revision, 0);
    assert_non_null(strstr(m.cancel_reason, "future"));
    cp_etcd_json_watch_msg_fini(&m);
    const char *er = "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: "
                     "no leader\",\"http_status\":\"Service Unavailable\"}}";
    assert_int_equal(cp_etcd_json_parse_watch(P(er), &m), SB_OK);
    assert_int_equal(m.kind, CP_ETCD_WATCH_ERROR);
    assert_int_equal(m.grpc_code, 14);
    assert_string_equal(m.message, "etcdserver: no leader");
    cp_etcd_json_watch_msg_fini(&m);
}

static void test_watch_rejects_malformed_lines(void **state)
{
    (void)state;
    struct cp_etcd_watch_msg m;
    const char *bad[] = {
        "{}",
        "{\"result\":1}",
        "{\"result\":{\"events\":{}}}",
        "{\"result\":{\"events\":[1]}}",
        "{\"result\":{\"events\":[{\"type\":\"PATCH\",\"kv\":{\"key\":\"YQ==\","
        "\"mod_revision\":\"2\"}}]}}",
        "{\"result\":{\"events\":[{\"type\":\"DELETE\"}]}}",
        "{\"result\":{\"events\":[{\"kv\":{\"mod_revision\":\"2\"}}]}}",
        "{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQ==\"}}]}}",
        "{\"result\":{\"created\":true,\"events\":[{\"kv\":{\"key\":\"YQ==\","
        "\"mod_revision\":\"2\"}}]}}",
        "{\"result\":{\"canceled\":\"true\"}}",
        "{\"error\":{\"grpc_code\":\"x\"}}",
        "{\"error\":42}",
        "not json",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cp_etcd_json_parse_watch(P(bad[i]), &m), SB_EPROTO);
}

/* ---- line splitter ---- */

struct collect {
    char lines[8][64];
    int n;
    int fail_at; /* return SB_EIO at this line index (-1: never) */
};

static enum sb_err collect_line(void *ud, const char *line, size_t len)
{
    struct collect *c = ud;
    if (c->n == c->fail_at)
        return SB_EIO;
    assert_true(c->n < 8 && len < 64);
    memcpy(c->lines[c->n], line, len);
    c->lines[c->n][len] = '\0';
    c->n++;
    return SB_OK;
}

static void test_lines_split_any_chunking(void **state)
{
    (void)state;
    const char *s = "{\"a\":1}\n{\"b\":2}\r\n\n  \n{\"c\":3}\n{\"tail\":4}";
    size_t n = strlen(s);
    for (size_t chunk = 1; chunk <= n; chunk++) {
        struct cp_etcd_lines l;
        struct collect c = {.fail_at = -1};
        cp_etcd_json_lines_init(&l, 1024);
        for (size_t i = 0; i < n; i += chunk) {
            size_t k = n - i < chunk ? n - i : chunk;
            assert_int_equal(cp_etcd_json_lines_feed(&l, s + i, k, collect_line, &c), SB_OK);
        }
        assert_int_equal(c.n, 3);
        assert_int_equal(cp_etcd_json_lines_finish(&l, collect_line, &c), SB_OK);
        assert_int_equal(c.n, 4);
        assert_string_equal(c.lines[0], "{\"a\":1}");
        assert_string_equal(c.lines[1], "{\"b\":2}");
        assert_string_equal(c.lines[2], "{\"c\":3}");
        assert_string_equal(c.lines[3], "{\"tail\":4}");
        assert_int_equal(cp_etcd_json_lines_finish(&l, collect_line, &c), SB_OK);
        assert_int_equal(c.n, 4);
        cp_etcd_json_lines_fini(&l);
    }
}

static void test_lines_too_long_and_callback_error(void **state)
{
    (void)state;
    struct cp_etcd_lines l;
    struct collect c = {.fail_at = -1};
    cp_etcd_json_lines_init(&l, 8);
    assert_int_equal(cp_etcd_json_lines_feed(&l, "12345678\n", 9, collect_line, &c), SB_OK);
    assert_int_equal(cp_etcd_json_lines_feed(&l, "123456789\n", 10, collect_line, &c), SB_EFULL);
    cp_etcd_json_lines_reset(&l);
    assert_int_equal(cp_etcd_json_lines_feed(&l, "12345", 5, collect_line, &c), SB_OK);
    assert_int_equal(cp_etcd_json_lines_feed(&l, "6789", 4, collect_line, &c), SB_EFULL);
    cp_etcd_json_lines_reset(&l);
    struct collect d = {.fail_at = 1};
    assert_int_equal(cp_etcd_json_lines_feed(&l, "a\nb\nc\n", 6, collect_line, &d), SB_EIO);
    assert_int_equal(d.n, 1);
    cp_etcd_json_lines_fini(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_round_trip_and_padding),
        cmocka_unit_test(test_b64_rejects_bad_input),
        cmocka_unit_test(test_json_range_minimal_omits_zero_values),
        cmocka_unit_test(test_json_range_all_fields),
        cmocka_unit_test(test_json_range_rejects_missing_key),
        cmocka_unit_test(test_json_put_variants),
        cmocka_unit_test(test_json_delete_variants),
        cmocka_unit_test(test_json_txn_create_if_absent),
        cmocka_unit_test(test_json_txn_every_target_and_result),
        cmocka_unit_test(test_json_txn_rejects_bad_ops),
        cmocka_unit_test(test_json_lease_lock_watch_bodies),
        cmocka_unit_test(test_parse_range_with_kvs),
        cmocka_unit_test(test_parse_range_empty_omits_everything),
        cmocka_unit_test(test_parse_put_prev_kv_and_delete),
        cmocka_unit_test(test_parse_txn_won_and_lost),
        cmocka_unit_test(test_parse_lease_answers),
        cmocka_unit_test(test_parse_lock_and_errors),
        cmocka_unit_test(test_parse_rejects_malformed_bodies),
        cmocka_unit_test(test_watch_created_events_progress),
        cmocka_unit_test(test_watch_canceled_compacted_and_error),
        cmocka_unit_test(test_watch_rejects_malformed_lines),
        cmocka_unit_test(test_lines_split_any_chunking),
        cmocka_unit_test(test_lines_too_long_and_callback_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
