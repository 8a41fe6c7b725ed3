/* The etcd Store's record values (store/etcd/cp_ecodec.h): the stored JSON of every record
 * pinned (replicas of different versions read each other's records), round trips, and the
 * defaults of unreadable or partial records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_ecodec.h"

#define P(s) s, strlen(s)

static void expect_text(char *got, const char *want)
{
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_ecodec_room_json_and_back(void **state)
{
    (void)state;
    struct cp_kv md[] = {{"a", "1"}};
    struct cp_room r = {.id = "r1",
                        .name = "R",
                        .description = "d",
                        .owner_id = "o",
                        .is_private = true,
                        .max_members = 5,
                        .member_count = 3,
                        .created_at = 10,
                        .updated_at = 11,
                        .last_seq = 7,
                        .metadata = md,
                        .n_metadata = 1};
    char *j = cp_ecodec_room_json(&r);
    assert_non_null(j);
    assert_string_equal(j,
                        "{\"name\":\"R\",\"description\":\"d\",\"owner_id\":\"o\",\"private\":true,"
                        "\"archived\":false,\"max_members\":5,\"created_at\":10,"
                        "\"updated_at\":11,\"metadata\":{\"a\":\"1\"}}");
    struct cp_room *back = cp_ecodec_room_parse("r1", P(j));
    free(j);
    assert_non_null(back);
    assert_string_equal(back->id, "r1");
    assert_string_equal(back->owner_id, "o");
    assert_true(back->is_private);
    assert_int_equal(back->max_members, 5);
    assert_int_equal(back->member_count, 0); /* the cache's, never stored */
    assert_int_equal(back->last_seq, 0);
    assert_int_equal(back->n_metadata, 1);
    assert_string_equal(back->metadata[0].value, "1");
    cp_room_free(back, true);
    assert_null(cp_ecodec_room_parse("r1", P("not json")));
}

static void test_ecodec_member_parse_defaults(void **state)
{
    (void)state;
    enum cp_role role;
    int64_t joined;
    expect_text(cp_ecodec_member_json(CP_ROLE_ADMIN, 5), "{\"role\":\"admin\",\"joined_at\":5}");
    cp_ecodec_member_parse(P("{\"role\":\"moderator\",\"joined_at\":9}"), &role, &joined);
    assert_int_equal(role, CP_ROLE_MODERATOR);
    assert_int_equal(joined, 9);
    cp_ecodec_member_parse(P("{\"role\":\"king\",\"joined_at\":9}"), &role, &joined);
    assert_int_equal(role, CP_ROLE_MEMBER);
    assert_int_equal(joined, 9);
    cp_ecodec_member_parse("", 0, &role, &joined);
    assert_int_equal(role, CP_ROLE_MEMBER);
    assert_int_equal(joined, 0);
}

static void test_ecodec_message_json_round_trip_omits_zero_edit_fields(void **state)
{
    (void)state;
    /* A record as stored before edits existed reads back and re-encodes byte for byte. */
    const char *stored = "{\"id\":\"m1\",\"seq\":3,\"room_id\":\"r1\",\"timestamp\":9,\"data\":"
                         "\"{\\\"x\\\":1}\",\"metadata\":{},\"user_id\":\"u\"}";
    bool transient = true;
    struct cp_message *m = cp_ecodec_message_parse(P(stored), &transient);
    assert_non_null(m);
    assert_false(transient);
    assert_int_equal(m->data_len, 7);
    expect_text(cp_ecodec_message_json(m, false), stored);
    /* The edit fields, an idempotency key (never stored) and the transient mark. */
    m->thread_id = strdup("t");
    m->deleted = true;
    m->deleted_at = 4;
    m->edited_at = 2;
    m->ext = strdup("{}");
    m->idem_key = strdup("k");
    m->data_len = 0;
    char *j = cp_ecodec_message_json(m, true);
    cp_message_free(m);
    assert_non_null(j);
    assert_string_equal(j, "{\"id\":\"m1\",\"seq\":3,\"room_id\":\"r1\",\"timestamp\":9,\"data\":"
                           "\"\",\"metadata\":{},\"user_id\":\"u\",\"thread_id\":\"t\","
                           "\"deleted\":true,\"deleted_at\":4,\"edited_at\":2,\"ext\":\"{}\","
                           "\"transient\":true}");
    struct cp_message *back = cp_ecodec_message_parse(P(j), &transient);
    assert_non_null(back);
    assert_true(transient);
    assert_string_equal(back->thread_id, "t");
    assert_true(back->deleted);
    assert_int_equal(back->edited_at, 2);
    assert_string_equal(back->ext, "{}");
    assert_null(back->idem_key);
    cp_message_free(back);
    int64_t ts;
    assert_true(cp_ecodec_message_peek(P(j), &ts, &transient));
    assert_int_equal(ts, 9);
    assert_true(transient);
    free(j);
}

static void test_ecodec_message_parse_unreadable_or_without_id(void **state)
{
    (void)state;
    assert_null(cp_ecodec_message_parse(P("{\"seq\":1}"), NULL));
    assert_null(cp_ecodec_message_parse(P("{"), NULL));
    /* Without data: the JSON null, as stored messages always had data. */
    struct cp_message *m = cp_ecodec_message_parse(P("{\"id\":\"a\"}"), NULL);
    assert_non_null(m);
    assert_int_equal(m->data_len, 4);
    assert_memory_equal(m->data, "null", 4);
    assert_null(m->user_id);
    cp_message_free(m);
    int64_t ts = 1;
    bool transient = true;
    assert_false(cp_ecodec_message_peek(P("x"), &ts, &transient));
    assert_int_equal(ts, 0);
    assert_false(transient);
}

static void test_ecodec_node_conn_idem_records(void **state)
{
    (void)state;
    expect_text(cp_ecodec_node_json("a:1", 5, 6),
                "{\"address\":\"a:1\",\"last_heartbeat\":5,\"connections\":6}");
    int64_t hb, conns;
    char *address =
        cp_ecodec_node_parse(P("{\"address\":\"a:1\",\"last_heartbeat\":5}"), &hb, &conns);
    assert_string_equal(address, "a:1");
    assert_int_equal(hb, 5);
    assert_int_equal(conns, 0);
    free(address);
    address = cp_ecodec_node_parse(P("?"), &hb, &conns);
    assert_string_equal(address, "");
    free(address);
    expect_text(cp_ecodec_conn_json(NULL, "ws", 7),
                "{\"session_id\":\"\",\"transport\":\"ws\",\"connected_at\":7}");
    expect_text(cp_ecodec_idem_json("k", "m1", 3), "{\"k\":\"k\",\"id\":\"m1\",\"seq\":3}");
    struct cp_ecodec_idem x;
    assert_int_equal(cp_ecodec_idem_parse(P("{\"k\":\"k\",\"id\":\"m1\",\"seq\":3}"), &x), SB_OK);
    assert_string_equal(x.key, "k");
    assert_string_equal(x.message_id, "m1");
    assert_int_equal(x.seq, 3);
    cp_ecodec_idem_fini(&x);
    assert_int_equal(cp_ecodec_idem_parse(P("[1"), &x), SB_EPROTO);
}

static void test_ecodec_seq_parse_bounds(void **state)
{
    (void)state;
    assert_int_equal(cp_ecodec_seq_parse(P("42")), 42);
    assert_int_equal(cp_ecodec_seq_parse(P("9223372036854775807")), INT64_MAX);
    assert_int_equal(cp_ecodec_seq_parse("", 0), 0);
    assert_int_equal(cp_ecodec_seq_parse(NULL, 0), 0);
    assert_int_equal(cp_ecodec_seq_parse(P("123456789012345678901")), 0); /* 21 bytes */
    char *d = cp_ecodec_dup("a\0b", 3);
    assert_memory_equal(d, "a\0b\0", 4);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ecodec_room_json_and_back),
        cmocka_unit_test(test_ecodec_member_parse_defaults),
        cmocka_unit_test(test_ecodec_message_json_round_trip_omits_zero_edit_fields),
        cmocka_unit_test(test_ecodec_message_parse_unreadable_or_without_id),
        cmocka_unit_test(test_ecodec_node_conn_idem_records),
        cmocka_unit_test(test_ecodec_seq_parse_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
