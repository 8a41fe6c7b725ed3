/* The Store suite: rooms CRUD, membership and the user index, list paging and filters,
 * sequencing, history trimming and member checks, run through the Store vtable. Built twice:
 * test_cp_store runs it on the memory store (which completes inline); test_cp_store_etcd
 * (CP_TEST_ETCD) runs the same cases on the etcd store against a real etcd started by the test
 * (tests/support/etcd.sh), draining the store's handoff until each callback has fired, plus
 * etcd-only cases: idempotency keys and sequencer takeover between two replicas. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_store.h"
#ifdef CP_TEST_ETCD
#include "cp_store_etcd_test.h"
#else
static int outstanding;
#define S(expr)                                                                                    \
    do {                                                                                           \
        outstanding++;                                                                             \
        expr;                                                                                      \
        assert_int_equal(outstanding, 0);                                                          \
    } while (0)
#endif

struct res {
    enum sb_code code;
    char ids[64][64];
    size_t n;
    bool more, added, gap;
    int64_t seq;
    int32_t member_count;
};

static void on_room(void *arg, const struct cp_status *st, const struct cp_room *room)
{
    struct res *r = arg;
    outstanding--;
    r->code = st->code;
    r->n = 0;
    if (room != NULL) {
        strcpy(r->ids[r->n++], room->id);
        r->member_count = room->member_count;
        r->seq = room->last_seq;
    }
}

static void on_rooms(void *arg, const struct cp_status *st, const struct cp_room *const *rooms,
                     size_t n, bool more)
{
    struct res *r = arg;
    outstanding--;
    r->code = st->code;
    r->n = n;
    r->more = more;
    for (size_t i = 0; i < n; i++)
        strcpy(r->ids[i], rooms[i]->id);
}

static void on_members(void *arg, const struct cp_status *st, const struct cp_member *m, size_t n)
{
    struct res *r = arg;
    outstanding--;
    r->code = st->code;
    r->n = n;
    for (size_t i = 0; i < n; i++)
        strcpy(r->ids[i], m[i].user_id);
}

static void on_ids(void *arg, const struct cp_status *st, const char *const *ids, size_t n)
{
    struct res *r = arg;
    outstanding--;
    r->code = st->code;
    r->n = n;
    for (size_t i = 0; i < n; i++)
        strcpy(r->ids[i], ids[i]);
}

static void on_join(void *arg, const struct cp_status *st, const struct cp_join_result *j)
{
    struct res *r = arg;
    outstanding--;
    r->code = st->code;
    if (j != NULL) {
        r->added = j->added;
        r->n = j->n_members;
        r->member_count = j->room->member_count;
    }
}

static void on_append(void *arg, const struct cp_status *st, const struct cp_append_result *a)
{
    struct res *r = arg;
    outstanding--;
    r->code = st->code;
    if (a != NULL) {
        r->seq = a->message->seq;
        r->n = a->n_members;
    }
}

static void on_history(void *arg, const struct cp_status *st, const struct cp_history_result *h)
{
    struct res *r = arg;
    outstanding--;
    r->code = st->code;
    if (h != NULL) {
        r->n = h->n_messages;
        r->gap = h->gap;
        r->seq = h->n_messages ? h->messages[0]->seq : 0;
    }
}

#ifndef CP_TEST_ETCD
static int setup(void **state)
{
    *state = cp_store_memory_create();
    return *state == NULL;
}

static int teardown(void **state)
{
    struct cp_store *s = *state;
    s->ops->destroy(s);
    return 0;
}
#endif

static void create(struct cp_store *s, const char *id, const char *name, const char *owner,
                   bool priv, int max, enum sb_code expect)
{
    struct cp_room room = {.id = (char *)id,
                           .name = (char *)name,
                           .description = "",
                           .owner_id = (char *)owner,
                           .is_private = priv,
                           .max_members = max};
    struct res r = {0};
    S(s->ops->room_create(s, &room, on_room, &r));
    assert_int_equal(r.code, expect);
}

static struct res join(struct cp_store *s, const char *room, const char *user, bool client,
                       bool autoc)
{
    struct cp_join_req req = {.room_id = room,
                              .user_id = user,
                              .role = CP_ROLE_MEMBER,
                              .deny_private = client,
                              .auto_create = autoc};
    struct res r = {0};
    S(s->ops->member_add(s, &req, on_join, &r));
    return r;
}

static void test_store_rooms_crud(void **state)
{
    struct cp_store *s = *state;
    struct res r = {0};
    create(s, "r1", "General", "alice", false, 0, SB_CODE_NONE);
    create(s, "r1", "Again", "", false, 0, SB_CODE_ROOM_ALREADY_EXISTS);
    S(s->ops->room_get(s, "r1", on_room, &r));
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_int_equal(r.member_count, 1); /* the owner */
    S(s->ops->room_get(s, "nope", on_room, &r));
    assert_int_equal(r.code, SB_CODE_ROOM_NOT_FOUND);
    S(s->ops->room_delete(s, "r1", on_members, &r));
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.ids[0], "alice");
    S(s->ops->room_delete(s, "r1", on_members, &r));
    assert_int_equal(r.code, SB_CODE_ROOM_NOT_FOUND);
    S(s->ops->user_rooms(s, "alice", on_ids, &r));
    assert_int_equal(r.n, 0);
}

static void test_store_membership(void **state)
{
    struct cp_store *s = *state;
    create(s, "r1", "", "", false, 2, SB_CODE_NONE);
    create(s, "priv", "", "", true, 0, SB_CODE_NONE);
    struct res r = join(s, "r1", "bob", true, false);
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_true(r.added);
    r = join(s, "r1", "bob", true, false);
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_false(r.added);
    r = join(s, "r1", "carol", false, false);
    assert_true(r.added);
    assert_int_equal(r.member_count, 2);
    r = join(s, "r1", "dave", false, false);
    assert_int_equal(r.code, SB_CODE_ROOM_FULL);
    r = join(s, "priv", "bob", true, false);
    assert_int_equal(r.code, SB_CODE_PERMISSION_DENIED);
    r = join(s, "priv", "bob", false, false); /* the backend may add to private rooms */
    assert_int_equal(r.code, SB_CODE_NONE);
    r = join(s, "priv", "bob", true, false); /* and then the client join is an ack */
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_false(r.added);
    r = join(s, "ghost", "bob", true, false);
    assert_int_equal(r.code, SB_CODE_ROOM_NOT_FOUND);
    r = join(s, "ghost", "bob", true, true);
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_true(r.added);

    struct res q = {0};
    S(s->ops->user_rooms(s, "bob", on_ids, &q));
    assert_int_equal(q.n, 3);
    assert_string_equal(q.ids[0], "ghost");
    assert_string_equal(q.ids[1], "priv");
    assert_string_equal(q.ids[2], "r1");
    S(s->ops->user_peers(s, "bob", on_ids, &q));
    assert_int_equal(q.n, 1);
    assert_string_equal(q.ids[0], "carol");
    S(s->ops->members_list(s, "r1", on_members, &q));
    assert_int_equal(q.n, 2);
    assert_string_equal(q.ids[0], "bob");
    S(s->ops->member_remove(s, "r1", "bob", on_members, &q));
    assert_int_equal(q.code, SB_CODE_NONE);
    assert_int_equal(q.n, 1);
    S(s->ops->member_remove(s, "r1", "bob", on_members, &q));
    assert_int_equal(q.code, SB_CODE_NOT_ROOM_MEMBER);
    S(s->ops->member_remove(s, "zzz", "bob", on_members, &q));
    assert_int_equal(q.code, SB_CODE_ROOM_NOT_FOUND);
    S(s->ops->user_peers(s, "bob", on_ids, &q));
    assert_int_equal(q.n, 0);
}

static void test_store_list_paging(void **state)
{
    struct cp_store *s = *state;
    char id[16];
    for (int i = 9; i >= 0; i--) {
        snprintf(id, sizeof(id), "room%02d", i);
        create(s, id, i % 2 ? "odd" : "even", "", false, 0, SB_CODE_NONE);
    }
    struct cp_room_query q = {.limit = 4};
    struct res r = {0};
    char seen[10][64];
    size_t n_seen = 0;
    char token[64] = "";
    do {
        q.after_id = token[0] ? token : NULL;
        S(s->ops->room_list(s, &q, on_rooms, &r));
        assert_int_equal(r.code, SB_CODE_NONE);
        for (size_t i = 0; i < r.n; i++)
            strcpy(seen[n_seen++], r.ids[i]);
        if (r.more)
            strcpy(token, r.ids[r.n - 1]);
    } while (r.more);
    assert_int_equal(n_seen, 10);
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "room%02d", i);
        assert_string_equal(seen[i], id);
    }
    q.name_prefix = "od";
    q.after_id = NULL;
    q.limit = 5;
    S(s->ops->room_list(s, &q, on_rooms, &r));
    assert_int_equal(r.n, 5);
    assert_false(r.more);
    assert_string_equal(r.ids[0], "room01");
    q.limit = 2;
    S(s->ops->room_list(s, &q, on_rooms, &r));
    assert_int_equal(r.n, 2);
    assert_true(r.more);
}

static void test_store_sequencing_and_history(void **state)
{
    struct cp_store *s = *state;
    create(s, "r1", "", "alice", false, 0, SB_CODE_NONE);
    struct cp_message draft = {
        .id = "m-x", .room_id = "r1", .user_id = "alice", .data = "{}", .data_len = 2};
    struct res r = {0};
    for (int i = 1; i <= 20; i++) {
        S(s->ops->message_append(s, &draft, "alice", 5, on_append, &r));
        assert_int_equal(r.code, SB_CODE_NONE);
        assert_int_equal(r.seq, i);
        assert_int_equal(r.n, 1);
    }
    S(s->ops->message_append(s, &draft, "mallory", 5, on_append, &r));
    assert_int_equal(r.code, SB_CODE_NOT_ROOM_MEMBER);
    S(s->ops->message_append(s, &draft, NULL, 5, on_append, &r)); /* backend: no member check */
    assert_int_equal(r.seq, 21);
    draft.room_id = "nope";
    S(s->ops->message_append(s, &draft, NULL, 5, on_append, &r));
    assert_int_equal(r.code, SB_CODE_ROOM_NOT_FOUND);

    struct cp_history_query q = {.room_id = "r1", .limit = 100};
    S(s->ops->history_query(s, &q, NULL, on_history, &r));
    assert_int_equal(r.n, 5);
    assert_int_equal(r.seq, 17);
    q.has_after_seq = true;
    q.after_seq = 10;
    S(s->ops->history_query(s, &q, "alice", on_history, &r));
    assert_true(r.gap);
    q.after_seq = 16;
    S(s->ops->history_query(s, &q, "alice", on_history, &r));
    assert_false(r.gap);
    assert_int_equal(r.n, 5);
    S(s->ops->history_query(s, &q, "mallory", on_history, &r));
    assert_int_equal(r.code, SB_CODE_NOT_ROOM_MEMBER);
    struct res g = {0};
    S(s->ops->room_get(s, "r1", on_room, &g));
    assert_int_equal(g.seq, 21);
}

#ifdef CP_TEST_ETCD
#include "cp_store_etcd_cases.h"
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_rooms_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_membership, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_list_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_sequencing_and_history, setup, teardown),
#ifdef CP_TEST_ETCD
        ETCD_ONLY_CASES
#endif
    };
#ifndef CP_TEST_ETCD
#define GROUP_SETUP    NULL
#define GROUP_TEARDOWN NULL
#endif
    return cmocka_run_group_tests(tests, GROUP_SETUP, GROUP_TEARDOWN);
}
