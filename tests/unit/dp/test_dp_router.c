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

/* The flat list of sessions a room or channel visit walks is kept in step with sessions coming
 * and going and members joining and leaving: random operations against a model. */
#define M_USERS 12
#define M_SESS  40
#define M_SETS  4 /* rooms 0-1, channels 2-3 */

struct model {
    int owner[M_SESS]; /* user of a live session, -1: not live */
    bool member[M_USERS][M_SETS];
};

static bool user_live(const struct model *m, int u)
{
    for (int i = 0; i < M_SESS; i++)
        if (m->owner[i] == u)
            return true;
    return false;
}

struct seen_big {
    struct dp_session *v[M_SESS * 2];
    int n;
};

static void collect_big(struct dp_session *s, void *arg)
{
    struct seen_big *seen = arg;
    if (seen->n < M_SESS * 2)
        seen->v[seen->n++] = s;
}

static void check_sets(struct dp_router *r, const struct model *m, char *base)
{
    for (int k = 0; k < M_SETS; k++) {
        char key[16];
        snprintf(key, sizeof(key), "s%d", k % 2);
        struct seen_big seen = {0};
        if (k < 2)
            dp_router_visit_room(r, key, collect_big, &seen);
        else
            dp_router_visit_channel(r, key, collect_big, &seen);
        int want = 0;
        for (int i = 0; i < M_SESS; i++) {
            bool in = m->owner[i] >= 0 && m->member[m->owner[i]][k];
            int times = 0;
            for (int j = 0; j < seen.n; j++)
                times += seen.v[j] == (struct dp_session *)(base + i);
            assert_int_equal(times, in ? 1 : 0);
            want += in;
        }
        assert_int_equal(seen.n, want);
    }
}

static void test_dp_router_visits_follow_sessions_and_members(void **state)
{
    (void)state;
    static char sess[M_SESS];
    struct model m;
    for (int i = 0; i < M_SESS; i++)
        m.owner[i] = -1;
    memset(m.member, 0, sizeof(m.member));
    struct dp_router *r = dp_router_create();
    assert_non_null(r);
    uint32_t x = 12345;
    for (int step = 0; step < 4000; step++) {
        x = x * 1103515245u + 12345u;
        uint32_t v = x >> 8;
        int u = (int)(v % M_USERS), i = (int)((v / M_USERS) % M_SESS);
        int k = (int)((v / (M_USERS * M_SESS)) % M_SETS);
        char uid[16], key[16];
        snprintf(uid, sizeof(uid), "u%d", u);
        snprintf(key, sizeof(key), "s%d", k % 2);
        switch ((v >> 16) % 4) {
        case 0: /* a session opens */
            if (m.owner[i] < 0) {
                assert_int_equal(dp_router_add_session(r, uid, (struct dp_session *)&sess[i]),
                                 SB_OK);
                m.owner[i] = u;
            }
            break;
        case 1: /* a session closes; the user's memberships go with the last one */
            if (m.owner[i] >= 0) {
                int o = m.owner[i];
                snprintf(uid, sizeof(uid), "u%d", o);
                dp_router_remove_session(r, uid, (struct dp_session *)&sess[i]);
                m.owner[i] = -1;
                if (!user_live(&m, o))
                    memset(m.member[o], 0, sizeof(m.member[o]));
            }
            break;
        default: { /* join or leave */
            bool join = ((v >> 16) % 4) == 2;
            if (k < 2)
                assert_int_equal(dp_router_set_room(r, uid, key, join), SB_OK);
            else
                assert_int_equal(dp_router_set_channel(r, uid, key, join), SB_OK);
            if (user_live(&m, u))
                m.member[u][k] = join;
            break;
        }
        }
        check_sets(r, &m, sess);
    }
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
        cmocka_unit_test(test_dp_router_visits_follow_sessions_and_members),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
