/* dp_frame: every client frame type, every refusal, the raw `data` span, the builders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dp_frame.h"
#include "sb_ident.h"

static struct dp_frame parse_ok(const char *text)
{
    struct dp_frame f;
    struct dp_frame_error err;
    enum sb_err e = dp_frame_parse(text, strlen(text), &f, &err);
    if (e != SB_OK)
        fail_msg("expected %s to parse, got: %s", text, err.message);
    return f;
}

static struct dp_frame_error parse_bad(const char *text, const char *needle)
{
    struct dp_frame f;
    struct dp_frame_error err;
    enum sb_err e = dp_frame_parse(text, strlen(text), &f, &err);
    assert_int_equal(e, SB_EINVAL);
    assert_string_equal(err.code, "invalid_message");
    if (strstr(err.message, needle) == NULL)
        fail_msg("%s: message \"%s\" lacks \"%s\"", text, err.message, needle);
    return err;
}

static void assert_data(const struct dp_frame *f, const char *expect)
{
    assert_int_equal(f->data_len, strlen(expect));
    assert_memory_equal(f->data, expect, f->data_len);
}

static void test_dp_frame_parse_join_leave(void **state)
{
    struct dp_frame f = parse_ok("{\"type\":\"join\",\"room_id\":\"r1\",\"ref\":\"7\"}");
    assert_int_equal(f.type, DP_FRAME_JOIN);
    assert_string_equal(f.room_id, "r1");
    assert_string_equal(f.ref, "7");
    assert_false(f.has_since);
    dp_frame_fini(&f);
    f = parse_ok("{\"type\":\"join\",\"room_id\":\"r1\",\"since\":17}");
    assert_true(f.has_since);
    assert_int_equal(f.since, 17);
    assert_null(f.ref);
    dp_frame_fini(&f);
    f = parse_ok("{\"type\":\"leave\",\"room_id\":\"a.b_c:d@e-f\"}");
    assert_int_equal(f.type, DP_FRAME_LEAVE);
    dp_frame_fini(&f);
    parse_bad("{\"type\":\"join\",\"room_id\":\"r1\",\"since\":-1}", "since");
    parse_bad("{\"type\":\"join\",\"room_id\":\"r1\",\"since\":1.5}", "since must be an integer");
    parse_bad("{\"type\":\"leave\"}", "missing field room_id");
}

static void test_dp_frame_parse_message_data_span(void **state)
{
    const char *t =
        "{\"type\":\"message\",\"room_id\":\"r1\",\"data\" :  {\"s\":\"a\\\"}b\\\\\","
        "\"u\":\"\\u00e9\xe2\x9c\x93\",\"n\":[1,{\"x\":[]}],\"k\":\"]\"} ,\"ref\":\"x\"}";
    struct dp_frame f = parse_ok(t);
    assert_int_equal(f.type, DP_FRAME_MESSAGE);
    assert_data(&f, "{\"s\":\"a\\\"}b\\\\\",\"u\":\"\\u00e9\xe2\x9c\x93\",\"n\":[1,{\"x\":[]}],"
                    "\"k\":\"]\"}");
    dp_frame_fini(&f);
    f = parse_ok("{\"data\":\"str\",\"type\":\"message\",\"room_id\":\"r1\"}");
    assert_data(&f, "\"str\"");
    dp_frame_fini(&f);
    f = parse_ok("{\"type\":\"message\",\"room_id\":\"r1\",\"data\":-12.5e3}");
    assert_data(&f, "-12.5e3");
    dp_frame_fini(&f);
    f = parse_ok("{\"type\":\"message\",\"room_id\":\"r1\",\"data\":null}");
    assert_data(&f, "null");
    dp_frame_fini(&f);
    /* a nested "data" key is not the frame's data; an escaped top-level key is */
    f = parse_ok("{\"type\":\"message\",\"x\":{\"data\":1},\"room_id\":\"r1\",\"d\\u0061ta\":[2]}");
    assert_data(&f, "[2]");
    dp_frame_fini(&f);
    f = parse_ok("{\"type\":\"message\",\"room_id\":\"r1\",\"data\":{\"a\":\n1},"
                 "\"thread_id\":\"m-1\",\"metadata\":{\"k\":\"v\",\"k2\":\"\"}}");
    assert_data(&f, "{\"a\":\n1}");
    assert_string_equal(f.thread_id, "m-1");
    assert_int_equal(f.n_metadata, 2);
    assert_string_equal(f.metadata[0].key, "k");
    assert_string_equal(f.metadata[0].value, "v");
    dp_frame_fini(&f);
    parse_bad("{\"type\":\"message\",\"room_id\":\"r1\"}", "missing field data");
    parse_bad("{\"type\":\"message\",\"room_id\":\"r1\",\"data\":1,\"metadata\":[]}", "metadata");
    parse_bad("{\"type\":\"message\",\"room_id\":\"r1\",\"data\":1,\"metadata\":{\"a\":1}}",
              "metadata values must be strings");
    parse_bad("{\"type\":\"message\",\"room_id\":\"r1\",\"data\":1,\"thread_id\":5}",
              "thread_id must be a string");
}

static void test_dp_frame_parse_channels(void **state)
{
    struct dp_frame f =
        parse_ok("{\"type\":\"subscribe\",\"channel_id\":\"news\",\"filter\":\"x\"}");
    assert_int_equal(f.type, DP_FRAME_SUBSCRIBE);
    assert_string_equal(f.channel_id, "news");
    assert_string_equal(f.filter, "x");
    assert_null(f.token);
    dp_frame_fini(&f);
    f = parse_ok("{\"type\":\"unsubscribe\",\"channel_id\":\"news\"}");
    assert_int_equal(f.type, DP_FRAME_UNSUBSCRIBE);
    dp_frame_fini(&f);
    f = parse_ok("{\"type\":\"publish\",\"channel_id\":\"news\",\"data\":[true]}");
    assert_int_equal(f.type, DP_FRAME_PUBLISH);
    assert_data(&f, "[true]");
    dp_frame_fini(&f);
    f = parse_ok("{\"type\":\"subscribe\",\"channel_id\":\"dm#alice,bob\",\"token\":\"a.b.c\"}");
    assert_string_equal(f.channel_id, "dm#alice,bob");
    assert_string_equal(f.token, "a.b.c");
    dp_frame_fini(&f);
    parse_bad("{\"type\":\"subscribe\",\"channel_id\":\"news\",\"token\":7}",
              "token must be a string");
    parse_bad("{\"type\":\"subscribe\",\"channel_id\":\"ne*ws\"}", "invalid channel_id");
    parse_bad("{\"type\":\"subscribe\",\"channel_id\":\"dm#alice,\"}", "invalid channel_id");
    parse_bad("{\"type\":\"publish\",\"channel_id\":\"news\"}", "missing field data");
}

static void test_dp_frame_parse_typing_presence(void **state)
{
    struct dp_frame f = parse_ok("{\"type\":\"typing\",\"room_id\":\"r1\",\"typing\":false}");
    assert_int_equal(f.type, DP_FRAME_TYPING);
    assert_false(f.typing);
    dp_frame_fini(&f);
    parse_bad("{\"type\":\"typing\",\"room_id\":\"r1\"}", "missing field typing");
    parse_bad("{\"type\":\"typing\",\"room_id\":\"r1\",\"typing\":1}", "typing must be a boolean");
    f = parse_ok("{\"type\":\"presence\",\"status\":\"busy\",\"device\":{\"type\":\"web\","
                 "\"name\":\"ff\"},\"activity\":{\"type\":\"call\",\"detail\":\"d\"},"
                 "\"custom_status\":\"lunch\"}");
    assert_string_equal(f.status, "busy");
    assert_string_equal(f.device_type, "web");
    assert_string_equal(f.device_name, "ff");
    assert_string_equal(f.activity_type, "call");
    assert_string_equal(f.activity_detail, "d");
    assert_string_equal(f.custom_status, "lunch");
    dp_frame_fini(&f);
    const char *ok[] = {"online", "away", "busy", "offline"};
    for (int i = 0; i < 4; i++) {
        char t[64];
        snprintf(t, sizeof(t), "{\"type\":\"presence\",\"status\":\"%s\"}", ok[i]);
        f = parse_ok(t);
        dp_frame_fini(&f);
    }
    parse_bad("{\"type\":\"presence\",\"status\":\"sleepy\"}", "online, away, busy, offline");
    parse_bad("{\"type\":\"presence\"}", "missing field status");
    parse_bad("{\"type\":\"presence\",\"status\":\"away\",\"device\":\"web\"}",
              "device must be an object");
    parse_bad("{\"type\":\"presence\",\"status\":\"away\",\"activity\":{\"type\":1}}",
              "activity.type");
}

static void test_dp_frame_parse_history_ping(void **state)
{
    struct dp_frame f = parse_ok("{\"type\":\"history\",\"room_id\":\"r1\"}");
    assert_int_equal(f.limit, DP_FRAME_HISTORY_DEF);
    assert_false(f.has_before);
    dp_frame_fini(&f);
    f = parse_ok("{\"type\":\"history\",\"room_id\":\"r1\",\"limit\":1000,\"before\":17}");
    assert_int_equal(f.limit, 1000);
    assert_true(f.has_before);
    assert_int_equal(f.before, 17);
    dp_frame_fini(&f);
    f = parse_ok("{\"type\":\"history\",\"room_id\":\"r1\",\"limit\":1,\"after\":3}");
    assert_true(f.has_after);
    assert_int_equal(f.after, 3);
    dp_frame_fini(&f);
    parse_bad("{\"type\":\"history\",\"room_id\":\"r1\",\"limit\":0}", "limit");
    parse_bad("{\"type\":\"history\",\"room_id\":\"r1\",\"limit\":1001}", "limit");
    parse_bad("{\"type\":\"history\",\"room_id\":\"r1\",\"limit\":\"5\"}", "integer");
    f = parse_ok("{\"type\":\"ping\",\"ref\":\"\xc3\xa9\"}");
    assert_int_equal(f.type, DP_FRAME_PING);
    assert_string_equal(f.ref, "\xc3\xa9");
    dp_frame_fini(&f);
}

static void test_dp_frame_parse_edit_delete_react(void **state)
{
    const char *edit = "{\"type\":\"edit\",\"room_id\":\"r1\",\"message_id\":\"m-1\","
                       "\"data\": {\"n\":1.50} }";
    struct dp_frame f = parse_ok(edit);
    assert_int_equal(f.type, DP_FRAME_EDIT);
    assert_string_equal(f.room_id, "r1");
    assert_string_equal(f.message_id, "m-1");
    assert_int_equal(f.data_len, strlen("{\"n\":1.50}"));
    assert_memory_equal(f.data, "{\"n\":1.50}", f.data_len);
    assert_string_equal(dp_frame_type_name(f.type), "edit");
    dp_frame_fini(&f);
    f = parse_ok("{\"type\":\"delete\",\"room_id\":\"r1\",\"message_id\":\"m-1\"}");
    assert_int_equal(f.type, DP_FRAME_DELETE);
    dp_frame_fini(&f);
    f = parse_ok("{\"type\":\"react\",\"room_id\":\"r1\",\"message_id\":\"m-1\","
                 "\"emoji\":\"\xf0\x9f\x91\x8d\"}");
    assert_int_equal(f.type, DP_FRAME_REACT);
    assert_string_equal(f.emoji, "\xf0\x9f\x91\x8d");
    assert_false(f.remove);
    assert_string_equal(dp_frame_type_name(f.type), "react");
    dp_frame_fini(&f);
    f = parse_ok("{\"type\":\"react\",\"room_id\":\"r1\",\"message_id\":\"m-1\","
                 "\"emoji\":\"x\",\"remove\":true}");
    assert_true(f.remove);
    dp_frame_fini(&f);
    parse_bad("{\"type\":\"edit\",\"room_id\":\"r1\",\"data\":1}", "missing field message_id");
    parse_bad("{\"type\":\"edit\",\"room_id\":\"r1\",\"message_id\":\"m-1\"}", "data");
    parse_bad("{\"type\":\"delete\",\"message_id\":\"m-1\"}", "missing field room_id");
    parse_bad("{\"type\":\"delete\",\"room_id\":\"r1\",\"message_id\":\"a b\"}",
              "invalid message_id");
    parse_bad("{\"type\":\"react\",\"room_id\":\"r1\",\"message_id\":\"m-1\"}",
              "missing field emoji");
    parse_bad("{\"type\":\"react\",\"room_id\":\"r1\",\"message_id\":\"m-1\",\"emoji\":"
              "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
              "emoji");
    parse_bad("{\"type\":\"react\",\"room_id\":\"r1\",\"message_id\":\"m-1\",\"emoji\":\"x\","
              "\"remove\":1}",
              "remove must be a boolean");
}

static void test_dp_frame_parse_envelope_errors(void **state)
{
    parse_bad("", "malformed JSON");
    parse_bad("{\"type\":\"ping\"", "malformed JSON");
    parse_bad("{\"type\":\"ping\"} x", "malformed JSON");
    parse_bad("{\"type\":\"ping\",\"type\":\"ping\"}", "malformed JSON"); /* duplicate key */
    parse_bad("\"ping\"", "malformed JSON");                              /* not an object */
    parse_bad("[{\"type\":\"ping\"}]", "JSON object");
    parse_bad("{}", "missing field type");
    parse_bad("{\"type\":7}", "type must be a string");
    parse_bad("{\"type\":\"Ping\"}", "unknown type \"Ping\"");
    parse_bad("{\"type\":\"ping\",\"ref\":1}", "ref must be a string");
    char longref[300];
    snprintf(longref, sizeof(longref), "{\"type\":\"ping\",\"ref\":\"%0200d\"}", 0);
    parse_bad(longref, "ref");
    parse_bad("{\"type\":\"join\",\"room_id\":\"a b\"}", "invalid room_id");
    parse_bad("{\"type\":\"join\",\"room_id\":\"\"}", "invalid room_id");
    /* invalid UTF-8 is refused by jansson */
    parse_bad("{\"type\":\"ping\",\"ref\":\"\xff\"}", "malformed JSON");
    /* NUL inside the text */
    struct dp_frame f;
    struct dp_frame_error err;
    assert_int_equal(dp_frame_parse("{\"type\":\"ping\"}\0", 16, &f, &err), SB_EINVAL);
}

static void test_dp_frame_error_echoes_ref(void **state)
{
    struct dp_frame_error err = parse_bad("{\"type\":\"join\",\"ref\":\"abc\"}", "room_id");
    assert_true(err.has_ref);
    assert_string_equal(err.ref, "abc");
    err = parse_bad("{\"type\":\"nope\"}", "unknown type");
    assert_false(err.has_ref);
}

static void test_dp_frame_format_all(void **state)
{
    char *t;
    size_t n;
    assert_int_equal(dp_frame_format_connected("c-1", "s-1", "alice", "dp-1", false, &t, &n),
                     SB_OK);
    assert_string_equal(t, "{\"type\":\"connected\",\"connection_id\":\"c-1\",\"session_id\":"
                           "\"s-1\",\"user_id\":\"alice\",\"node_id\":\"dp-1\"}");
    assert_int_equal(n, strlen(t));
    free(t);
    assert_int_equal(dp_frame_format_connected("c-2", "s-0", "bob", "dp-1", true, &t, &n), SB_OK);
    assert_string_equal(t, "{\"type\":\"connected\",\"connection_id\":\"c-2\",\"session_id\":"
                           "\"s-0\",\"user_id\":\"bob\",\"node_id\":\"dp-1\",\"resumed\":true}");
    assert_int_equal(n, strlen(t));
    free(t);
    assert_int_equal(dp_frame_format_ack("7", NULL, "m-1", true, 17, &t, &n), SB_OK);
    assert_string_equal(t, "{\"type\":\"ack\",\"ref\":\"7\",\"id\":\"m-1\",\"seq\":17}");
    free(t);
    assert_int_equal(dp_frame_format_ack(NULL, "r1", NULL, false, 0, &t, &n), SB_OK);
    assert_string_equal(t, "{\"type\":\"ack\",\"room_id\":\"r1\"}");
    free(t);
    assert_int_equal(dp_frame_format_error("q\"", "room_full", "full", &t, &n), SB_OK);
    assert_string_equal(t, "{\"type\":\"error\",\"ref\":\"q\\\"\",\"code\":\"room_full\","
                           "\"message\":\"full\"}");
    free(t);
    assert_int_equal(dp_frame_format_pong("p", &t, &n), SB_OK);
    assert_string_equal(t, "{\"type\":\"pong\",\"ref\":\"p\"}");
    free(t);
    assert_int_equal(dp_frame_format_kicked("bye", &t, &n), SB_OK);
    assert_string_equal(t, "{\"type\":\"kicked\",\"reason\":\"bye\"}");
    free(t);
    const char *msgs[] = {"{\"seq\":1}", "{\"seq\":2}"};
    size_t lens[] = {9, 9};
    assert_int_equal(dp_frame_format_history("h", "r1", msgs, lens, 2, &t, &n), SB_OK);
    assert_string_equal(t, "{\"type\":\"history\",\"ref\":\"h\",\"room_id\":\"r1\",\"messages\":"
                           "[{\"seq\":1},{\"seq\":2}]}");
    assert_int_equal(n, strlen(t));
    free(t);
    assert_int_equal(dp_frame_format_history(NULL, "r1", NULL, NULL, 0, &t, &n), SB_OK);
    assert_string_equal(t, "{\"type\":\"history\",\"room_id\":\"r1\",\"messages\":[]}");
    free(t);
}

static void test_dp_frame_find_member_edges(void **state)
{
    size_t off, len;
    const char *t = "  { \"a\" : \"data\" , \"data\" : [ \"]\" ] }  ";
    assert_int_equal(dp_frame_find_member(t, strlen(t), "data", &off, &len), SB_OK);
    assert_int_equal(len, 7);
    assert_memory_equal(t + off, "[ \"]\" ]", 7);
    assert_int_equal(dp_frame_find_member("{}", 2, "data", &off, &len), SB_ENOTFOUND);
    assert_int_equal(dp_frame_find_member("[]", 2, "data", &off, &len), SB_EINVAL);
    assert_int_equal(dp_frame_find_member("{\"a\"", 4, "data", &off, &len), SB_EINVAL);
    char room[SB_IDENT_MAX + 1];
    int64_t seq;
    const char *m = "{\"type\":\"message\",\"room_id\":\"r9\",\"seq\":42}";
    assert_int_equal(dp_frame_peek_room_seq(m, strlen(m), room, sizeof(room), &seq), SB_OK);
    assert_string_equal(room, "r9");
    assert_int_equal(seq, 42);
    assert_int_equal(dp_frame_peek_room_seq("{}", 2, room, sizeof(room), &seq), SB_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dp_frame_parse_join_leave),
        cmocka_unit_test(test_dp_frame_parse_message_data_span),
        cmocka_unit_test(test_dp_frame_parse_channels),
        cmocka_unit_test(test_dp_frame_parse_typing_presence),
        cmocka_unit_test(test_dp_frame_parse_history_ping),
        cmocka_unit_test(test_dp_frame_parse_edit_delete_react),
        cmocka_unit_test(test_dp_frame_parse_envelope_errors),
        cmocka_unit_test(test_dp_frame_error_echoes_ref),
        cmocka_unit_test(test_dp_frame_format_all),
        cmocka_unit_test(test_dp_frame_find_member_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
