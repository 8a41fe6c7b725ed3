/* The etcd key scheme: every builder, id validation, prefix range_end, and parsing back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cp_keys.h"

static void test_keys_every_builder_matches_the_table(void **state)
{
    (void)state;
    char k[CP_KEYS_MAX];
    assert_int_equal(cp_keys_node("n1", k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/nodes/n1");
    assert_int_equal(cp_keys_cp("cp-a", k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/cp/cp-a");
    assert_int_equal(cp_keys_room("r1", k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/rooms/r1");
    assert_int_equal(cp_keys_member("r1", "u1", k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/members/r1/u1");
    assert_int_equal(cp_keys_user_room("u1", "r1", k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/user_rooms/u1/r1");
    assert_int_equal(cp_keys_conn("n1", "u1", "c-9", k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/conns/n1/u1/c-9");
    assert_int_equal(cp_keys_seq("r1", k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/seq/r1");
    assert_int_equal(cp_keys_history("r1", 42, k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/history/r1/00000000000000000042");
    assert_int_equal(cp_keys_history("r1", INT64_MAX, k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/history/r1/09223372036854775807");
    assert_int_equal(cp_keys_lock_room("r1", k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/locks/room/r1");
    assert_int_equal(cp_keys_presence("u@x.io", k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/presence/u@x.io");
    assert_int_equal(cp_keys_sequencer("r1", k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/sequencer/r1");
    assert_int_equal(cp_keys_leader(CP_KEYS_ROLE_PRESENCE, k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/leader/presence");
    assert_int_equal(cp_keys_txn("cp-a", 0x2a, k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/txn/cp-a/000000000000002a");
    assert_int_equal(cp_keys_txn("cp a", 1, k, sizeof(k)), SB_EINVAL);
}

static void test_keys_prefixes_end_in_slash(void **state)
{
    (void)state;
    char k[CP_KEYS_MAX];
    assert_int_equal(cp_keys_members_of("r1", k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/members/r1/");
    assert_int_equal(cp_keys_rooms_of_user("u1", k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/user_rooms/u1/");
    assert_int_equal(cp_keys_conns_of_node("n1", k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/conns/n1/");
    assert_int_equal(cp_keys_conns_of_user("n1", "u1", k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/conns/n1/u1/");
    assert_int_equal(cp_keys_history_of("r1", k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/history/r1/");
}

static void test_keys_bad_ids_are_einval(void **state)
{
    (void)state;
    char k[CP_KEYS_MAX];
    strcpy(k, "untouched");
    assert_int_equal(cp_keys_room("", k, sizeof(k)), SB_EINVAL);
    assert_int_equal(cp_keys_room(NULL, k, sizeof(k)), SB_EINVAL);
    assert_int_equal(cp_keys_room("a/b", k, sizeof(k)), SB_EINVAL);
    assert_int_equal(cp_keys_member("r1", "u 1", k, sizeof(k)), SB_EINVAL);
    assert_int_equal(cp_keys_conn("n1", "u1", "c*", k, sizeof(k)), SB_EINVAL);
    assert_int_equal(cp_keys_history("r1", -1, k, sizeof(k)), SB_EINVAL);
    char big[SB_IDENT_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(cp_keys_presence(big, k, sizeof(k)), SB_EINVAL);
    assert_string_equal(k, "untouched");
}

static void test_keys_small_buffer_is_efull_and_max_fits(void **state)
{
    (void)state;
    char k[CP_KEYS_MAX];
    assert_int_equal(cp_keys_room("r1", k, 11), SB_EFULL); /* needs 12 */
    assert_int_equal(cp_keys_room("r1", k, 12), SB_OK);
    assert_int_equal(cp_keys_history("r1", 1, k, 20), SB_EFULL);
    char id[SB_IDENT_MAX + 1];
    memset(id, 'z', SB_IDENT_MAX);
    id[SB_IDENT_MAX] = '\0';
    assert_int_equal(cp_keys_conn(id, id, id, k, sizeof(k)), SB_OK);
    assert_int_equal(cp_keys_conns_of_user(id, id, k, sizeof(k)), SB_OK);
    assert_int_equal(cp_keys_history(id, INT64_MAX, k, sizeof(k)), SB_OK);
    assert_int_equal(cp_keys_user_room(id, id, k, sizeof(k)), SB_OK);
}

static void test_keys_range_end_increments_last_byte(void **state)
{
    (void)state;
    char out[64];
    size_t n;
    assert_int_equal(cp_keys_range_end("room/a/", 7, out, sizeof(out), &n), SB_OK);
    assert_int_equal(n, 7);
    assert_string_equal(out, "room/a0");
    assert_int_equal(cp_keys_range_end("sb/members/r1/", 14, out, sizeof(out), &n), SB_OK);
    assert_string_equal(out, "sb/members/r10");
    /* "room/10/" must not fall into [room/1/, range_end). */
    assert_true(strcmp("room/10/x", "room/1/") > 0 && strcmp("room/10/x", "room/10") >= 0);
    assert_int_equal(cp_keys_range_end("a\xff\xff", 3, out, sizeof(out), &n), SB_OK);
    assert_int_equal(n, 1);
    assert_string_equal(out, "b");
    assert_int_equal(cp_keys_range_end("\xff", 1, out, sizeof(out), &n), SB_OK);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], '\0');
    assert_int_equal(cp_keys_range_end("", 0, out, sizeof(out), &n), SB_OK);
    assert_int_equal(n, 1);
    assert_int_equal(cp_keys_range_end("abc", 3, out, 3, &n), SB_EFULL);
    assert_int_equal(cp_keys_range_end(NULL, 3, out, 3, &n), SB_EINVAL);
}

static void test_keys_parse_round_trips(void **state)
{
    (void)state;
    char k[CP_KEYS_MAX];
    struct cp_keys_parts p;
    assert_int_equal(cp_keys_conn("n1", "u1", "c-9", k, sizeof(k)), SB_OK);
    assert_int_equal(cp_keys_parse(k, strlen(k), &p), SB_OK);
    assert_int_equal(p.kind, CP_KEYS_KIND_CONN);
    assert_string_equal(p.a, "n1");
    assert_string_equal(p.b, "u1");
    assert_string_equal(p.c, "c-9");
    assert_int_equal(cp_keys_history("r.1", 77, k, sizeof(k)), SB_OK);
    assert_int_equal(cp_keys_parse(k, strlen(k), &p), SB_OK);
    assert_int_equal(p.kind, CP_KEYS_KIND_HISTORY);
    assert_string_equal(p.a, "r.1");
    assert_int_equal(p.seq, 77);
    assert_int_equal(cp_keys_member("r1", "u1", k, sizeof(k)), SB_OK);
    assert_int_equal(cp_keys_parse(k, strlen(k), &p), SB_OK);
    assert_int_equal(p.kind, CP_KEYS_KIND_MEMBER);
    assert_int_equal(cp_keys_user_room("u1", "r1", k, sizeof(k)), SB_OK);
    assert_int_equal(cp_keys_parse(k, strlen(k), &p), SB_OK);
    assert_int_equal(p.kind, CP_KEYS_KIND_USER_ROOM);
    assert_string_equal(p.a, "u1");
    assert_string_equal(p.b, "r1");
    const char *singles[] = {"sb/nodes/n1",     "sb/cp/c1",          "sb/rooms/r1",
                             "sb/seq/r1",       "sb/presence/u1",    "sb/locks/room/r1",
                             "sb/sequencer/r1", "sb/leader/presence"};
    enum cp_keys_kind kinds[] = {
        CP_KEYS_KIND_NODE,     CP_KEYS_KIND_CP,        CP_KEYS_KIND_ROOM,      CP_KEYS_KIND_SEQ,
        CP_KEYS_KIND_PRESENCE, CP_KEYS_KIND_LOCK_ROOM, CP_KEYS_KIND_SEQUENCER, CP_KEYS_KIND_LEADER};
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(cp_keys_parse(singles[i], strlen(singles[i]), &p), SB_OK);
        assert_int_equal(p.kind, kinds[i]);
    }
    const char *lk = "sb/locks/room/r1/694d8a7b1c2d3e4f";
    assert_int_equal(cp_keys_parse(lk, strlen(lk), &p), SB_OK);
    assert_int_equal(p.kind, CP_KEYS_KIND_LOCK_ROOM);
    assert_string_equal(p.a, "r1");
}

static void test_keys_parse_rejects_foreign_keys(void **state)
{
    (void)state;
    struct cp_keys_parts p;
    p.kind = CP_KEYS_KIND_ROOM;
    const char *bad[] = {"",
                         "sb/",
                         "sb/rooms/",
                         "sb/rooms/r1/",
                         "sb/rooms/r 1",
                         "sb/members/r1",
                         "sb/members/r1/u1/x",
                         "sb/conns/n1/u1",
                         "sb/history/r1/42",
                         "sb/history/r1/0000000000000000004x",
                         "sb/history/r1/99999999999999999999",
                         "sb/locks/room/r1/",
                         "sb/locks/room/r1/XYZ",
                         "other/rooms/r1",
                         "sb/unknown/r1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cp_keys_parse(bad[i], strlen(bad[i]), &p), SB_EINVAL);
    /* Not NUL-terminated: only n bytes count. */
    assert_int_equal(cp_keys_parse("sb/rooms/r1XYZ", 11, &p), SB_OK);
    assert_string_equal(p.a, "r1");
}

static void test_keys_documents(void **state)
{
    (void)state;
    char k[CP_KEYS_DOC_MAX];
    struct cp_keys_parts p;
    assert_int_equal(cp_keys_doc("bans/r1/alice", k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/doc/bans/r1/alice");
    assert_int_equal(cp_keys_parse(k, strlen(k), &p), SB_OK);
    assert_int_equal(p.kind, CP_KEYS_KIND_DOC);
    assert_int_equal(p.doc_len, strlen("bans/r1/alice"));
    assert_memory_equal(p.doc, "bans/r1/alice", p.doc_len);
    assert_int_equal(cp_keys_doc("user_subs/alice/news.*", k, sizeof(k)), SB_OK);
    assert_int_equal(cp_keys_doc("presence/u@x.io", k, sizeof(k)), SB_OK);
    assert_int_equal(cp_keys_doc("channels/caf\xc3\xa9", k, sizeof(k)), SB_OK);
    const char *bad[] = {"",        "bans",    "bans/",    "Bans/x",    "ba-ns/x", "/bans/x",
                         "bans//x", "bans/x/", "bans/a b", "bans/a\tb", "9/x"};
    strcpy(k, "untouched");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cp_keys_doc(bad[i], k, sizeof(k)), SB_EINVAL);
    assert_int_equal(cp_keys_doc(NULL, k, sizeof(k)), SB_EINVAL);
    assert_string_equal(k, "untouched");
    char big[CP_KEYS_DOC_KEY_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[4] = '/';
    big[CP_KEYS_DOC_KEY_MAX] = '\0'; /* exactly the max */
    assert_int_equal(cp_keys_doc(big, k, sizeof(k)), SB_OK);
    big[CP_KEYS_DOC_KEY_MAX] = 'a';
    big[CP_KEYS_DOC_KEY_MAX + 1] = '\0';
    assert_int_equal(cp_keys_doc(big, k, sizeof(k)), SB_EINVAL);
    assert_int_equal(cp_keys_doc("bans/x", k, 10), SB_EFULL);

    assert_int_equal(cp_keys_doc_prefix("", k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/doc/");
    assert_int_equal(cp_keys_doc_prefix("bans/r1/", k, sizeof(k)), SB_OK);
    assert_string_equal(k, "sb/doc/bans/r1/");
    assert_int_equal(cp_keys_doc_prefix("user_subs/al", k, sizeof(k)), SB_OK);
    assert_int_equal(cp_keys_doc_prefix("/", k, sizeof(k)), SB_EINVAL);
    assert_int_equal(cp_keys_doc_prefix("bans//", k, sizeof(k)), SB_EINVAL);
    assert_int_equal(cp_keys_doc_prefix("bans/a b", k, sizeof(k)), SB_EINVAL);
    assert_int_equal(cp_keys_doc_prefix(NULL, k, sizeof(k)), SB_EINVAL);

    const char *foreign[] = {"sb/doc/", "sb/doc/bans", "sb/doc/bans/", "sb/doc/Bans/x"};
    for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++)
        assert_int_equal(cp_keys_parse(foreign[i], strlen(foreign[i]), &p), SB_EINVAL);
}

static void test_keys_idem_hash128_is_stable_hex(void **state)
{
    (void)state;
    char a[33], b[33], c[33];
    cp_keys_idem_hash128("key-1", a);
    cp_keys_idem_hash128("key-1", b);
    cp_keys_idem_hash128("key-2", c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_int_equal(strlen(a), 32);
    for (const char *p = a; *p; p++)
        assert_non_null(strchr("0123456789abcdef", *p));
    cp_keys_idem_hash128("", c); /* any text, the empty one too */
    assert_int_equal(strlen(c), 32);
    assert_true(sb_ident_is_valid(a));
}

/* Every Store document kind, and its listing prefixes. */
static void test_keys_document_kinds(void **state)
{
    (void)state;
    char k[CP_KEYS_DOC_KEY_MAX];
    cp_keys_doc_channel(k, "news");
    assert_string_equal(k, "channels/news");
    cp_keys_doc_channel(k, NULL);
    assert_string_equal(k, "channels/");
    cp_keys_doc_sub(k, "news", "alice");
    assert_string_equal(k, "subs/news/alice");
    cp_keys_doc_sub(k, "news", NULL);
    assert_string_equal(k, "subs/news/");
    cp_keys_doc_sub(k, NULL, NULL);
    assert_string_equal(k, "subs/");
    cp_keys_doc_user_sub(k, "alice", "news");
    assert_string_equal(k, "user_subs/alice/news");
    cp_keys_doc_user_sub(k, "", NULL);
    assert_string_equal(k, "user_subs/");
    cp_keys_doc_channel_idem(k, "news", "00ff");
    assert_string_equal(k, "idem_ch/news/00ff");
    cp_keys_doc_idem(k, "send_to_user", NULL);
    assert_string_equal(k, "idem/send_to_user/");
    cp_keys_doc_ban(k, "r1", "bob");
    assert_string_equal(k, "bans/r1/bob");
    cp_keys_doc_invite(k, "i-1");
    assert_string_equal(k, "invites/i-1");
    cp_keys_doc_presence(k, "bob");
    assert_string_equal(k, "presence/bob");
    cp_keys_doc_session(k, NULL);
    assert_string_equal(k, "sessions/");
    cp_keys_doc_typing(k, "r1", NULL);
    assert_string_equal(k, "typing/r1/");
    /* the longest ids fit, and every such key is a valid document key */
    char id[SB_IDENT_MAX + 1];
    memset(id, 'x', SB_IDENT_MAX);
    id[SB_IDENT_MAX] = '\0';
    cp_keys_doc_user_sub(k, id, id);
    assert_int_equal(strlen(k), strlen("user_subs/") + 2 * SB_IDENT_MAX + 1);
    char full[CP_KEYS_DOC_MAX];
    assert_int_equal(cp_keys_doc(k, full, sizeof(full)), SB_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_every_builder_matches_the_table),
        cmocka_unit_test(test_keys_prefixes_end_in_slash),
        cmocka_unit_test(test_keys_bad_ids_are_einval),
        cmocka_unit_test(test_keys_small_buffer_is_efull_and_max_fits),
        cmocka_unit_test(test_keys_range_end_increments_last_byte),
        cmocka_unit_test(test_keys_parse_round_trips),
        cmocka_unit_test(test_keys_parse_rejects_foreign_keys),
        cmocka_unit_test(test_keys_documents),
        cmocka_unit_test(test_keys_document_kinds),
        cmocka_unit_test(test_keys_idem_hash128_is_stable_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
