/* Frame JSON: raw data splice, string escaping, optional fields, and that every frame parses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "cp_json.h"

static void assert_parses(const struct cp_buf *b)
{
    assert_false(b->failed);
    json_error_t err;
    json_t *v = json_loadb(b->data, b->len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    assert_non_null(v);
    json_decref(v);
}

static void test_json_message_splices_data_raw(void **state)
{
    (void)state;
    const char *data = "{ \"b\" : [1, 2.50, \"\\u00e9\"] }";
    struct cp_message m = {.id = "m-1",
                           .seq = 17,
                           .room_id = "r1",
                           .user_id = "alice",
                           .timestamp = 1796008767028LL,
                           .data = (char *)data,
                           .data_len = strlen(data)};
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_message(&b, &m);
    assert_string_equal(b.data,
                        "{\"type\":\"message\",\"id\":\"m-1\",\"seq\":17,\"room_id\":\"r1\","
                        "\"user_id\":\"alice\",\"data\":{ \"b\" : [1, 2.50, \"\\u00e9\"] },"
                        "\"timestamp\":\"2026-11-30T03:19:27.028Z\"}");
    assert_parses(&b);
    cp_buf_fini(&b);
}

static void test_json_message_optional_fields(void **state)
{
    (void)state;
    struct cp_kv kv[2] = {{"k", "v\"1"}, {"x\n", "\x01"}};
    struct cp_message m = {.id = "m-2",
                           .seq = 1,
                           .room_id = "r1",
                           .thread_id = "t1",
                           .metadata = kv,
                           .n_metadata = 2,
                           .timestamp = 0,
                           .data = "null",
                           .data_len = 4};
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_message(&b, &m);
    assert_non_null(strstr(b.data, "\"data\":null,\"thread_id\":\"t1\","
                                   "\"metadata\":{\"k\":\"v\\\"1\",\"x\\n\":\"\\u0001\"}"));
    assert_null(strstr(b.data, "user_id"));
    assert_parses(&b);
    cp_buf_fini(&b);
}

static void test_json_escapes_control_quote_backslash(void **state)
{
    (void)state;
    struct cp_buf b;
    cp_buf_init(&b);
    const char s[] = "a\"b\\c\n\r\t\b\f\x1f\xc3\xa9";
    cp_buf_json_str(&b, s, sizeof(s) - 1);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u001f\xc3\xa9\"");
    assert_parses(&b);
    cp_buf_fini(&b);
}

static void test_json_other_frames(void **state)
{
    (void)state;
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_system(&b, "[1]", 3, 0);
    assert_string_equal(
        b.data, "{\"type\":\"system\",\"data\":[1],\"timestamp\":\"1970-01-01T00:00:00.000Z\"}");
    cp_buf_reset(&b);
    cp_json_direct(&b, "m-9", NULL, "\"hi\"", 4, 0);
    assert_string_equal(b.data, "{\"type\":\"message\",\"id\":\"m-9\",\"data\":\"hi\","
                                "\"timestamp\":\"1970-01-01T00:00:00.000Z\"}");
    cp_buf_reset(&b);
    cp_json_membership(&b, "leave", "r1", "bob", 0);
    assert_string_equal(b.data, "{\"type\":\"leave\",\"room_id\":\"r1\",\"user_id\":\"bob\","
                                "\"timestamp\":\"1970-01-01T00:00:00.000Z\"}");
    cp_buf_reset(&b);
    cp_json_typing(&b, "r1", "bob", false);
    assert_string_equal(
        b.data, "{\"type\":\"typing\",\"room_id\":\"r1\",\"user_id\":\"bob\",\"typing\":false}");
    cp_buf_reset(&b);
    struct cp_presence_view p = {.user_id = "a", .status = "away", .device_name = "pixel"};
    cp_json_presence(&b, &p);
    assert_string_equal(b.data, "{\"type\":\"presence\",\"user_id\":\"a\",\"status\":\"away\","
                                "\"device\":{\"name\":\"pixel\"},"
                                "\"timestamp\":\"1970-01-01T00:00:00.000Z\"}");
    assert_parses(&b);
    cp_buf_fini(&b);
}

static void test_json_room_admin_frames(void **state)
{
    (void)state;
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_member_updated(&b, "r1", "bob", CP_ROLE_MODERATOR, 0);
    assert_string_equal(b.data, "{\"type\":\"member_updated\",\"room_id\":\"r1\","
                                "\"user_id\":\"bob\",\"role\":\"moderator\","
                                "\"timestamp\":\"1970-01-01T00:00:00.000Z\"}");
    assert_parses(&b);
    cp_buf_reset(&b);
    struct cp_room r = {.id = "r1",
                        .name = "Gen\"eral",
                        .owner_id = "alice",
                        .is_private = true,
                        .max_members = 25};
    cp_json_room_updated(&b, &r, 1796008767028LL);
    assert_string_equal(b.data, "{\"type\":\"room_updated\",\"room_id\":\"r1\","
                                "\"name\":\"Gen\\\"eral\",\"owner_id\":\"alice\",\"private\":true,"
                                "\"archived\":false,\"max_members\":25,"
                                "\"timestamp\":\"2026-11-30T03:19:27.028Z\"}");
    assert_parses(&b);
    cp_buf_reset(&b);
    cp_json_banned(&b, "r1", "", 0, 0);
    assert_string_equal(b.data, "{\"type\":\"banned\",\"room_id\":\"r1\","
                                "\"timestamp\":\"1970-01-01T00:00:00.000Z\"}");
    cp_buf_reset(&b);
    cp_json_banned(&b, "r1", "spam", 1796008767028LL, 0);
    assert_string_equal(b.data, "{\"type\":\"banned\",\"room_id\":\"r1\",\"reason\":\"spam\","
                                "\"expires_at\":\"2026-11-30T03:19:27.028Z\","
                                "\"timestamp\":\"1970-01-01T00:00:00.000Z\"}");
    assert_parses(&b);
    cp_buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_message_splices_data_raw),
        cmocka_unit_test(test_json_message_optional_fields),
        cmocka_unit_test(test_json_escapes_control_quote_backslash),
        cmocka_unit_test(test_json_other_frames),
        cmocka_unit_test(test_json_room_admin_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
