/* cp_msgext: emoji validation, the edit trail and its limits, reactions (once per user and
 * emoji, removal, empty ext), parsing, tolerance of unreadable text, and the client JSON of
 * edited, deleted and reacted messages (cp_json_message and the update frames). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "cp_json.h"
#include "cp_msgext.h"

static void test_emoji_validation(void **state)
{
    (void)state;
    assert_true(cp_msgext_emoji_valid("+1"));
    assert_true(cp_msgext_emoji_valid("\xf0\x9f\x91\x8d"));                 /* U+1F44D */
    assert_true(cp_msgext_emoji_valid("\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd")); /* + skin tone */
    assert_true(cp_msgext_emoji_valid("party popper"));
    char max[CP_MSGEXT_MAX_EMOJI_BYTES + 2];
    memset(max, 'a', sizeof(max));
    max[CP_MSGEXT_MAX_EMOJI_BYTES] = '\0';
    assert_true(cp_msgext_emoji_valid(max));
    max[CP_MSGEXT_MAX_EMOJI_BYTES] = 'a';
    max[CP_MSGEXT_MAX_EMOJI_BYTES + 1] = '\0';
    assert_false(cp_msgext_emoji_valid(max));
    assert_false(cp_msgext_emoji_valid(NULL));
    assert_false(cp_msgext_emoji_valid(""));
    assert_false(cp_msgext_emoji_valid("a\nb"));
    assert_false(cp_msgext_emoji_valid("\x07"));
    assert_false(cp_msgext_emoji_valid("\x7f"));
    assert_false(cp_msgext_emoji_valid("\xc2\x85"));     /* C1 control U+0085 */
    assert_false(cp_msgext_emoji_valid("\xff"));         /* not UTF-8 */
    assert_false(cp_msgext_emoji_valid("\xc0\xaf"));     /* overlong */
    assert_false(cp_msgext_emoji_valid("\xed\xa0\x80")); /* surrogate */
    assert_false(cp_msgext_emoji_valid("\xf0\x9f\x91")); /* truncated */
}

static void test_edit_trail(void **state)
{
    (void)state;
    char *e1 = NULL, *e2 = NULL;
    assert_int_equal(cp_msgext_add_edit(NULL, "alice", "{\"t\":1}", 7, 1000, &e1), SB_OK);
    assert_string_equal(e1,
                        "{\"edits\":[{\"editor_id\":\"alice\",\"previous_data\":\"{\\\"t\\\":1}\","
                        "\"edited_at\":1000}]}");
    assert_int_equal(cp_msgext_add_edit(e1, "", "2.50", 4, 2000, &e2), SB_OK);
    struct cp_msgext x;
    assert_int_equal(cp_msgext_parse(e2, &x), SB_OK);
    assert_int_equal(x.n_edits, 2);
    assert_int_equal(x.n_reactions, 0);
    assert_string_equal(x.edits[0].editor_id, "alice");
    assert_string_equal(x.edits[0].previous_data, "{\"t\":1}");
    assert_int_equal(x.edits[0].edited_at, 1000);
    assert_string_equal(x.edits[1].editor_id, "");
    assert_string_equal(x.edits[1].previous_data, "2.50"); /* byte for byte */
    assert_int_equal(x.edits[1].previous_len, 4);
    assert_int_equal(x.edits[1].edited_at, 2000);
    cp_msgext_free(&x);
    free(e1);
    free(e2);
}

static void test_edit_trail_limits(void **state)
{
    (void)state;
    char *ext = NULL;
    for (int i = 0; i < CP_MSGEXT_MAX_EDITS + 5; i++) {
        char data[16];
        snprintf(data, sizeof(data), "%d", i);
        char *next = NULL;
        assert_int_equal(cp_msgext_add_edit(ext, "u", data, strlen(data), i, &next), SB_OK);
        free(ext);
        ext = next;
    }
    struct cp_msgext x;
    assert_int_equal(cp_msgext_parse(ext, &x), SB_OK);
    assert_int_equal(x.n_edits, CP_MSGEXT_MAX_EDITS);
    assert_string_equal(x.edits[0].previous_data, "5"); /* the oldest 5 dropped */
    assert_int_equal(x.edits[CP_MSGEXT_MAX_EDITS - 1].edited_at, CP_MSGEXT_MAX_EDITS + 4);
    cp_msgext_free(&x);

    /* Bytes: large previous data push out older edits, the newest always stays. */
    size_t big = CP_MSGEXT_MAX_EDIT_BYTES / 2 + 10;
    char *data = malloc(big + 3);
    data[0] = '"';
    memset(data + 1, 'x', big);
    data[big + 1] = '"';
    data[big + 2] = '\0';
    for (int i = 0; i < 3; i++) {
        char *next = NULL;
        assert_int_equal(cp_msgext_add_edit(ext, "u", data, big + 2, 100 + i, &next), SB_OK);
        free(ext);
        ext = next;
    }
    assert_int_equal(cp_msgext_parse(ext, &x), SB_OK);
    assert_int_equal(x.n_edits, 1);
    assert_int_equal(x.edits[0].edited_at, 102);
    cp_msgext_free(&x);
    free(data);
    free(ext);
}

static void test_reactions(void **state)
{
    (void)state;
    char *e1 = NULL, *e2 = NULL, *e3 = NULL, *same = NULL;
    bool changed = false;
    assert_int_equal(cp_msgext_react(NULL, "+1", "bob", true, &e1, &changed), SB_OK);
    assert_true(changed);
    assert_string_equal(e1, "{\"reactions\":[{\"emoji\":\"+1\",\"user_ids\":[\"bob\"]}]}");
    /* Once per user and emoji. */
    assert_int_equal(cp_msgext_react(e1, "+1", "bob", true, &same, &changed), SB_OK);
    assert_false(changed);
    assert_null(same);
    assert_int_equal(cp_msgext_react(e1, "+1", "alice", true, &e2, &changed), SB_OK);
    assert_true(changed);
    assert_int_equal(cp_msgext_react(e2, "heart", "alice", true, &e3, &changed), SB_OK);
    struct cp_msgext x;
    assert_int_equal(cp_msgext_parse(e3, &x), SB_OK);
    assert_int_equal(x.n_reactions, 2);
    assert_string_equal(x.reactions[0].emoji, "+1");
    assert_int_equal(x.reactions[0].n_users, 2);
    assert_string_equal(x.reactions[0].user_ids[0], "bob");
    assert_string_equal(x.reactions[0].user_ids[1], "alice");
    assert_string_equal(x.reactions[1].emoji, "heart");
    cp_msgext_free(&x);

    /* Removing: a missing one changes nothing; the last user drops the emoji; nothing left
     * gives NULL. */
    assert_int_equal(cp_msgext_react(e3, "heart", "bob", false, &same, &changed), SB_OK);
    assert_false(changed);
    char *r1 = NULL, *r2 = NULL, *r3 = NULL, *r4 = NULL;
    assert_int_equal(cp_msgext_react(e3, "heart", "alice", false, &r1, &changed), SB_OK);
    assert_true(changed);
    assert_string_equal(r1,
                        "{\"reactions\":[{\"emoji\":\"+1\",\"user_ids\":[\"bob\",\"alice\"]}]}");
    assert_int_equal(cp_msgext_react(r1, "+1", "bob", false, &r2, &changed), SB_OK);
    assert_int_equal(cp_msgext_react(r2, "+1", "alice", false, &r3, &changed), SB_OK);
    assert_true(changed);
    assert_null(r3);
    /* Edits survive reactions coming and going. */
    char *ed = NULL;
    assert_int_equal(cp_msgext_add_edit(e1, "bob", "1", 1, 5, &ed), SB_OK);
    assert_int_equal(cp_msgext_react(ed, "+1", "bob", false, &r4, &changed), SB_OK);
    assert_string_equal(
        r4, "{\"edits\":[{\"editor_id\":\"bob\",\"previous_data\":\"1\",\"edited_at\":5}]}");
    free(e1);
    free(e2);
    free(e3);
    free(r1);
    free(r2);
    free(ed);
    free(r4);
}

static void test_reaction_limit(void **state)
{
    (void)state;
    char *ext = NULL;
    bool changed;
    for (int i = 0; i < CP_MSGEXT_MAX_REACTIONS; i++) {
        char em[16];
        snprintf(em, sizeof(em), "e%d", i);
        char *next = NULL;
        assert_int_equal(cp_msgext_react(ext, em, "u", true, &next, &changed), SB_OK);
        free(ext);
        ext = next;
    }
    char *out = NULL;
    assert_int_equal(cp_msgext_react(ext, "one-more", "u", true, &out, &changed), SB_EFULL);
    assert_null(out);
    /* Another user on an existing emoji is fine. */
    assert_int_equal(cp_msgext_react(ext, "e0", "v", true, &out, &changed), SB_OK);
    assert_true(changed);
    free(out);
    free(ext);
}

static void test_unreadable_ext(void **state)
{
    (void)state;
    struct cp_msgext x;
    const char *bad[] = {"", "not json", "[1,2]", "{\"edits\":5,\"reactions\":{\"a\":1}}",
                         "{\"edits\":[{\"editor_id\":1}],\"reactions\":[{\"emoji\":\"x\"}]}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cp_msgext_parse(bad[i], &x), SB_OK);
        assert_int_equal(x.n_edits, 0);
        assert_int_equal(x.n_reactions, 0);
        cp_msgext_free(&x);
    }
    /* A write replaces what cannot be read. */
    char *out = NULL;
    bool changed;
    assert_int_equal(cp_msgext_react("garbage", "+1", "bob", true, &out, &changed), SB_OK);
    assert_string_equal(out, "{\"reactions\":[{\"emoji\":\"+1\",\"user_ids\":[\"bob\"]}]}");
    free(out);
    /* Rendering skips it. */
    struct cp_buf b;
    cp_buf_init(&b);
    cp_msgext_render(&b, "garbage");
    assert_int_equal(b.len, 0);
    cp_buf_fini(&b);
}

static void assert_parses(const struct cp_buf *b)
{
    assert_false(b->failed);
    json_t *v = json_loadb(b->data, b->len, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(v);
    json_decref(v);
}

static void test_message_json_edited_and_reacted(void **state)
{
    (void)state;
    char *ext = NULL, *ext2 = NULL;
    bool changed;
    assert_int_equal(cp_msgext_add_edit(NULL, "alice", "{ \"t\" : 1 }", 11, 1796008767028LL, &ext),
                     SB_OK);
    assert_int_equal(cp_msgext_react(ext, "+1", "bob", true, &ext2, &changed), SB_OK);
    struct cp_message m = {.id = "m-1",
                           .seq = 3,
                           .room_id = "r1",
                           .user_id = "alice",
                           .timestamp = 1796008767028LL,
                           .data = "{\"t\":2}",
                           .data_len = 7,
                           .edited_at = 1796008767028LL,
                           .ext = ext2};
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_message(&b, &m);
    assert_string_equal(
        b.data,
        "{\"type\":\"message\",\"id\":\"m-1\",\"seq\":3,\"room_id\":\"r1\",\"user_id\":\"alice\","
        "\"data\":{\"t\":2},\"timestamp\":\"2026-11-30T03:19:27.028Z\","
        "\"edited_at\":\"2026-11-30T03:19:27.028Z\","
        "\"edits\":[{\"editor_id\":\"alice\",\"previous_data\":{ \"t\" : 1 },"
        "\"edited_at\":\"2026-11-30T03:19:27.028Z\"}],"
        "\"reactions\":[{\"emoji\":\"+1\",\"user_ids\":[\"bob\"],\"count\":1}]}");
    assert_parses(&b);

    cp_buf_reset(&b);
    cp_json_message_edited(&b, &m, "alice");
    assert_string_equal(b.data,
                        "{\"type\":\"message_edited\",\"room_id\":\"r1\",\"id\":\"m-1\",\"seq\":3,"
                        "\"user_id\":\"alice\",\"editor_id\":\"alice\",\"data\":{\"t\":2},"
                        "\"edited_at\":\"2026-11-30T03:19:27.028Z\"}");
    cp_buf_reset(&b);
    cp_json_message_edited(&b, &m, ""); /* the backend */
    assert_null(strstr(b.data, "editor_id"));
    assert_parses(&b);
    cp_buf_reset(&b);
    cp_json_reaction(&b, &m, "+1", "bob", false, 1796008767028LL);
    assert_string_equal(b.data,
                        "{\"type\":\"reaction\",\"room_id\":\"r1\",\"id\":\"m-1\",\"seq\":3,"
                        "\"emoji\":\"+1\",\"user_id\":\"bob\",\"added\":false,"
                        "\"timestamp\":\"2026-11-30T03:19:27.028Z\"}");
    cp_buf_fini(&b);
    free(ext);
    free(ext2);
}

static void test_message_json_tombstone(void **state)
{
    (void)state;
    struct cp_message m = {.id = "m-1",
                           .seq = 3,
                           .room_id = "r1",
                           .user_id = "alice",
                           .timestamp = 1796008767028LL,
                           .data = NULL,
                           .data_len = 0,
                           .deleted = true,
                           .deleted_at = 1796008767028LL,
                           .edited_at = 5};
    struct cp_buf b;
    cp_buf_init(&b);
    cp_json_message(&b, &m);
    assert_string_equal(b.data, "{\"type\":\"message\",\"id\":\"m-1\",\"seq\":3,\"room_id\":\"r1\","
                                "\"user_id\":\"alice\",\"timestamp\":\"2026-11-30T03:19:27.028Z\","
                                "\"deleted\":true,\"deleted_at\":\"2026-11-30T03:19:27.028Z\"}");
    cp_buf_reset(&b);
    cp_json_message_deleted(&b, &m, "mod");
    assert_string_equal(b.data, "{\"type\":\"message_deleted\",\"room_id\":\"r1\",\"id\":\"m-1\","
                                "\"seq\":3,\"deleter_id\":\"mod\","
                                "\"deleted_at\":\"2026-11-30T03:19:27.028Z\"}");
    cp_buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emoji_validation),
        cmocka_unit_test(test_edit_trail),
        cmocka_unit_test(test_edit_trail_limits),
        cmocka_unit_test(test_reactions),
        cmocka_unit_test(test_reaction_limit),
        cmocka_unit_test(test_unreadable_ext),
        cmocka_unit_test(test_message_json_edited_and_reacted),
        cmocka_unit_test(test_message_json_tombstone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
