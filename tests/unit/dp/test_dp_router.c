/* dp_router: users' sessions, room and channel membership, visits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dp_router.h"

/* Sessions are opaque to the router: any distinct addresses do. */
static char s1, s2, s3;

struct seen {
    struct dp_session *v[8];
    int n;
};

static void collect(struct dp_session *s, void *arg)
{
    struct seen *seen = arg;
    if (seen->n < 8)
        seen->v[seen->n++] = s;
}

static bool has(const struct seen *seen, void *s)
{
    for (int i = 0; i < seen->n; i++)
        if (seen->v[i] == s)
            return true;
    return false;
}

static void test_dp_router_room_membership_per_user(void **state)
{
    struct dp_router *r = dp_router_create();
    assert_non_null(r);
    assert_int_equal(dp_router_add_session(r, "alice", (struct dp_session *)&s1), SB_OK);
    assert_int_equal(dp_router_add_session(r, "alice", (struct dp_session *)&s2), SB_OK);
    assert_int_equal(dp_router_add_session(r, "alice", (struct dp_session *)&s2), SB_OK); /* dup */
    assert_int_equal(dp_router_add_session(r, "bob", (struct dp_session *)&s3), SB_OK);
    assert_int_equal(dp_router_set_room(r, "alice", "r1", true), SB_OK);
    assert_int_equal(dp_router_set_room(r, "alice", "r1", true), SB_OK);
    assert_int_equal(dp_router_set_room(r, "bob", "r1", true), SB_OK);
    assert_int_equal(dp_router_set_room(r, "carol", "r1", true), SB_OK); /* no local session */
    struct seen seen = {0};
    dp_router_visit_room(r, "r1", collect, &seen);
    assert_int_equal(seen.n, 3);
    assert_true(has(&seen, &s1) && has(&seen, &s2) && has(&seen, &s3));
    assert_true(dp_router_is_member(r, "alice", "r1"));
    assert_false(dp_router_is_member(r, "carol", "r1"));
    assert_int_equal(dp_router_set_room(r, "bob", "r1", false), SB_OK);
    memset(&seen, 0, sizeof(seen));
    dp_router_visit_room(r, "r1", collect, &seen);
    assert_int_equal(seen.n, 2);
    memset(&seen, 0, sizeof(seen));
    dp_router_visit_room(r, "nope", collect, &seen);
    assert_int_equal(seen.n, 0);
    dp_router_destroy(r);
}

static void test_dp_router_last_session_forgets_memberships(void **state)
{
    struct dp_router *r = dp_router_create();
    dp_router_add_session(r, "alice", (struct dp_session *)&s1);
    dp_router_add_session(r, "alice", (struct dp_session *)&s2);
    dp_router_set_room(r, "alice", "r1", true);
    dp_router_set_channel(r, "alice", "news", true);
    dp_router_remove_session(r, "alice", (struct dp_session *)&s1);
    assert_true(dp_router_is_member(r, "alice", "r1"));
    struct seen seen = {0};
    dp_router_visit_channel(r, "news", collect, &seen);
    assert_int_equal(seen.n, 1);
    assert_ptr_equal(seen.v[0], &s2);
    dp_router_remove_session(r, "alice", (struct dp_session *)&s2);
    assert_false(dp_router_is_member(r, "alice", "r1"));
    assert_int_equal(dp_router_room_count(r), 0);
    assert_int_equal(dp_router_user_count(r), 0);
    dp_router_remove_session(r, "ghost", (struct dp_session *)&s3); /* harmless */
    dp_router_destroy(r);
}

static void test_dp_router_clear_and_visit_user(void **state)
{
    struct dp_router *r = dp_router_create();
    dp_router_add_session(r, "alice", (struct dp_session *)&s1);
    dp_router_add_session(r, "bob", (struct dp_session *)&s2);
    char room[16];
    for (int i = 0; i < 100; i++) {
        snprintf(room, sizeof(room), "room%d", i);
        dp_router_set_room(r, i % 2 ? "alice" : "bob", room, true);
    }
    assert_int_equal(dp_router_room_count(r), 100);
    dp_router_clear_memberships(r);
    assert_int_equal(dp_router_room_count(r), 0);
    assert_int_equal(dp_router_user_count(r), 2);
    struct seen seen = {0};
    dp_router_visit_user(r, "bob", collect, &seen);
    assert_int_equal(seen.n, 1);
    assert_ptr_equal(seen.v[0], &s2);
    dp_router_destroy(r);
}

static void test_dp_router_membership_revision_keeps_newest(void **state)
{
    (void)state;
    struct dp_router *r = dp_router_create();
    assert_int_equal(dp_router_add_session(r, "alice", (struct dp_session *)&s1), SB_OK);
    /* Two control planes send the same changes: join at 10, leave at 11. */
    assert_true(dp_router_membership_is_newer(r, "alice", true, "r1", 10));
    assert_true(dp_router_membership_is_newer(r, "alice", true, "r1", 11));
    assert_false(dp_router_membership_is_newer(r, "alice", true, "r1", 10));
    assert_false(dp_router_membership_is_newer(r, "alice", true, "r1", 11));
    /* Rooms and channels of one name are apart; revision 0 (memory store) always applies. */
    assert_true(dp_router_membership_is_newer(r, "alice", false, "r1", 5));
    assert_true(dp_router_membership_is_newer(r, "alice", true, "r1", 0));
    assert_true(dp_router_membership_is_newer(r, "alice", true, "r1", 0));
    /* A user with no local session: nothing recorded. */
    assert_true(dp_router_membership_is_newer(r, "bob", true, "r1", 3));
    assert_true(dp_router_membership_is_newer(r, "bob", true, "r1", 3));
    /* Forgotten with the last session. */
    dp_router_remove_session(r, "alice", (struct dp_session *)&s1);
    assert_int_equal(dp_router_add_session(r, "alice", (struct dp_session *)&s1), SB_OK);
    assert_true(dp_router_membership_is_newer(r, "alice", true, "r1", 10));
    dp_router_destroy(r);
}

static void test_dp_router_seq_drops_repeats(void **state)
{
    (void)state;
    struct dp_router *r = dp_router_create();
    assert_int_equal(dp_router_add_session(r, "alice", (struct dp_session *)&s1), SB_OK);
    /* No local member: not tracked. */
    assert_true(dp_router_seq_is_new(r, "r1", 5));
    assert_true(dp_router_seq_is_new(r, "r1", 5));
    assert_int_equal(dp_router_set_room(r, "alice", "r1", true), SB_OK);
    assert_true(dp_router_seq_is_new(r, "r1", 1));
    assert_true(dp_router_seq_is_new(r, "r1", 2));
    assert_false(dp_router_seq_is_new(r, "r1", 2));
    assert_false(dp_router_seq_is_new(r, "r1", 1));
    assert_true(dp_router_seq_is_new(r, "r1", 3));
    /* The room's last local member leaves: a room created again starts from 1. */
    assert_int_equal(dp_router_set_room(r, "alice", "r1", false), SB_OK);
    assert_int_equal(dp_router_set_room(r, "alice", "r1", true), SB_OK);
    assert_true(dp_router_seq_is_new(r, "r1", 1));
    dp_router_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dp_router_room_membership_per_user),
        cmocka_unit_test(test_dp_router_last_session_forgets_memberships),
        cmocka_unit_test(test_dp_router_clear_and_visit_user),
        cmocka_unit_test(test_dp_router_membership_revision_keeps_newest),
        cmocka_unit_test(test_dp_router_seq_drops_repeats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
