/* Message search: the query's words, matching in nested JSON strings, and the walk over rooms on
 * the memory store (newest first, the limit, a named room's membership, retention). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_rooms.h"
#include "cp_search.h"
#include "cp_store_memory.h"

static void test_cp_search_parse_splits_words(void **state)
{
    (void)state;
    struct cp_search_query q;
    struct cp_status st;
    assert_true(cp_search_parse("  hello\tWorld\r\nx ", &q, &st));
    assert_int_equal(q.n_words, 3);
    assert_string_equal(q.words[0], "hello");
    assert_string_equal(q.words[1], "World");
    assert_string_equal(q.words[2], "x");
    cp_search_query_fini(&q);
    assert_false(cp_search_parse(" \t ", &q, &st));
    assert_int_equal(st.code, SB_CODE_INVALID_MESSAGE);
    assert_string_equal(st.msg, "query has no words");
    assert_int_equal(q.n_words, 0);
    assert_false(cp_search_parse("a b c d e f g h i j k l m n o p q", &q, &st));
    assert_string_equal(st.msg, "query has more than 16 words");
    assert_int_equal(q.n_words, 0);
    assert_true(cp_search_parse("a b c d e f g h i j k l m n o p", &q, &st));
    assert_int_equal(q.n_words, 16);
    cp_search_query_fini(&q);
}

static bool matches(const char *data, const char *query, bool deleted)
{
    struct cp_search_query q;
    struct cp_status st;
    assert_true(cp_search_parse(query, &q, &st));
    struct cp_message m = {
        .data = (char *)data, .data_len = data ? strlen(data) : 0, .deleted = deleted};
    bool ok = cp_search_matches(&m, &q);
    cp_search_query_fini(&q);
    return ok;
}

static void test_cp_search_matches_every_word_in_some_string(void **state)
{
    (void)state;
    assert_true(matches("{\"text\":\"Hello there\"}", "hello", false));
    assert_true(matches("{\"a\":[{\"b\":\"lunch\"}],\"c\":\"at noon\"}", "NOON lunch", false));
    assert_false(matches("{\"a\":\"lunch\"}", "lunch noon", false));
    assert_false(matches("{\"lunch\":1}", "lunch", false)); /* keys and numbers do not count */
    assert_true(matches("\"plain string\"", "plain", false));
    assert_false(matches("{\"text\":\"hello\"}", "hello", true));
    assert_false(matches("{not json", "json", false));
    assert_false(matches(NULL, "x", false));
}

struct fixture {
    struct cp_ctx c;
    int calls;
    enum sb_code code;
    size_t n;
    int64_t seqs[8];
    char rooms[8][16];
};

static void room_cb(void *arg, const struct cp_status *st, const struct cp_room *room)
{
    (void)room;
    assert_int_equal(st->code, SB_CODE_NONE);
    (void)arg;
}

static void published(void *arg, const struct cp_status *st, const char *id, int64_t seq)
{
    (void)arg;
    (void)id;
    (void)seq;
    assert_int_equal(st->code, SB_CODE_NONE);
}

static void found(void *arg, const struct cp_status *st, const struct cp_message *const *hits,
                  size_t n)
{
    struct fixture *f = arg;
    f->calls++;
    f->code = st->code;
    f->n = n;
    for (size_t i = 0; i < n && i < 8; i++) {
        f->seqs[i] = hits[i]->seq;
        snprintf(f->rooms[i], sizeof(f->rooms[i]), "%s", hits[i]->room_id);
    }
}

static void post(struct fixture *f, const char *room, const char *data)
{
    struct cp_publish p = {.room_id = room, .data = data, .data_len = strlen(data)};
    cp_rooms_publish(&f->c, &p, published, f);
}

static void search(struct fixture *f, const char *text, const char *room, const char *user,
                   size_t limit)
{
    struct cp_search_query q;
    struct cp_status st;
    assert_true(cp_search_parse(text, &q, &st));
    cp_search_run(&f->c, &q, room, user, limit, found, f);
    assert_int_equal(q.n_words, 0);
}

static void test_cp_search_run_rooms_limit_and_membership(void **state)
{
    (void)state;
    static struct fixture fx;
    struct fixture *f = &fx;
    struct cp_settings set = {
        .typing_timeout_ms = 100, .node_queue_limit = 1 << 20, .max_history_messages = 1000};
    assert_int_equal(cp_ctx_init(&f->c, &set, cp_store_memory_create()), SB_OK);
    struct cp_room r1 = {.id = "r1", .name = "", .description = "", .owner_id = "alice"};
    struct cp_room r2 = {.id = "r2", .name = "", .description = "", .owner_id = ""};
    cp_rooms_create(&f->c, &r1, room_cb, f);
    cp_rooms_create(&f->c, &r2, room_cb, f);
    post(f, "r1", "{\"t\":\"pizza one\"}");
    post(f, "r1", "{\"t\":\"salad\"}");
    post(f, "r2", "{\"t\":\"Pizza two\"}");
    post(f, "r1", "{\"t\":\"pizza three\"}");
    /* Every room, newest first by timestamp, then room id, then seq. */
    search(f, "pizza", NULL, NULL, 10);
    assert_int_equal(f->code, SB_CODE_NONE);
    assert_int_equal(f->n, 3);
    search(f, "pizza", "r1", NULL, 10);
    assert_int_equal(f->n, 2);
    assert_int_equal(f->seqs[0], 3);
    assert_int_equal(f->seqs[1], 1);
    search(f, "pizza", "r1", NULL, 1);
    assert_int_equal(f->n, 1);
    assert_int_equal(f->seqs[0], 3);
    /* A user's rooms: alice owns r1 only; in a named room the user must be a member. */
    search(f, "pizza", NULL, "alice", 10);
    assert_int_equal(f->n, 2);
    assert_string_equal(f->rooms[0], "r1");
    search(f, "pizza", "r2", "alice", 10);
    assert_int_equal(f->code, SB_CODE_NOT_ROOM_MEMBER);
    search(f, "pizza", "r9", NULL, 10);
    assert_int_equal(f->code, SB_CODE_ROOM_NOT_FOUND);
    search(f, "pizza", NULL, "nobody", 10);
    assert_int_equal(f->code, SB_CODE_NONE);
    assert_int_equal(f->n, 0);
    assert_int_equal(f->calls, 7);
    cp_ctx_fini(&f->c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cp_search_parse_splits_words),
        cmocka_unit_test(test_cp_search_matches_every_word_in_some_string),
        cmocka_unit_test(test_cp_search_run_rooms_limit_and_membership),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
