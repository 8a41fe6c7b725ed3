/* cp_access: the token's `rooms` and `channels` claims against ids (exact ids, globs, the
 * entries that must grant nothing), and the channel rules of client frames: the `#user,...`
 * suffix, the grant private- and presence- channels need, client publishing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "cp_access.h"

/* Grants holding only the rooms claim `rooms` (borrowed for the test's lifetime). */
static struct cp_grants with_rooms(char **rooms, size_t n)
{
    struct cp_grants g = {.rooms = rooms, .n_rooms = n};
    return g;
}

static void test_access_has_room_exact_id(void **state)
{
    (void)state;
    char *rooms[] = {"r1", "lobby"};
    struct cp_grants g = with_rooms(rooms, 2);
    assert_true(cp_access_has_room(&g, "r1"));
    assert_true(cp_access_has_room(&g, "lobby"));
    assert_false(cp_access_has_room(&g, "r2"));
    assert_false(cp_access_has_room(&g, "r10"));
    assert_false(cp_access_has_room(&g, "r"));
}

static void test_access_has_room_glob(void **state)
{
    (void)state;
    char *rooms[] = {"team-*", "org.*.ops", "eu.**"};
    struct cp_grants g = with_rooms(rooms, 3);
    assert_true(cp_access_has_room(&g, "team-a"));
    assert_true(cp_access_has_room(&g, "team-"));
    assert_false(cp_access_has_room(&g, "team-a.b"));
    assert_false(cp_access_has_room(&g, "teams"));
    assert_false(cp_access_has_room(&g, "x-team-a"));
    assert_true(cp_access_has_room(&g, "org.acme.ops"));
    assert_false(cp_access_has_room(&g, "org.acme.dev"));
    assert_false(cp_access_has_room(&g, "org.a.b.ops"));
    assert_true(cp_access_has_room(&g, "eu.fr.paris"));
    assert_false(cp_access_has_room(&g, "us.east"));
}

static void test_access_has_room_nothing_without_grants(void **state)
{
    (void)state;
    assert_false(cp_access_has_room(NULL, "r1"));
    struct cp_grants none = with_rooms(NULL, 0);
    assert_false(cp_access_has_room(&none, "r1"));
    char *rooms[] = {"r1"};
    struct cp_grants g = with_rooms(rooms, 1);
    assert_false(cp_access_has_room(&g, NULL));
    assert_false(cp_access_has_room(&g, ""));
}

static void test_access_has_room_empty_or_bad_entry_grants_nothing(void **state)
{
    (void)state;
    /* the empty glob would match everything; a pattern with characters no id has never matches */
    char *rooms[] = {"", "r 1*", NULL};
    struct cp_grants g = with_rooms(rooms, 3);
    assert_false(cp_access_has_room(&g, "r1"));
    assert_false(cp_access_has_room(&g, "anything"));
    char *dstar[] = {"**"};
    struct cp_grants all = with_rooms(dstar, 1);
    assert_true(cp_access_has_room(&all, "any.room"));
}

/* Grants holding only the channels claim `channels`. */
static struct cp_grants with_channels(char **channels, size_t n)
{
    struct cp_grants g = {.channels = channels, .n_channels = n};
    return g;
}

static void test_access_names_user(void **state)
{
    (void)state;
    assert_true(cp_access_names_user("news", "anyone"));
    assert_true(cp_access_names_user("notifications#alice", "alice"));
    assert_false(cp_access_names_user("notifications#alice", "bob"));
    assert_false(cp_access_names_user("notifications#alice", "alic"));
    assert_false(cp_access_names_user("notifications#alice", "alice2"));
    assert_false(cp_access_names_user("notifications#alice", "Alice"));
    assert_true(cp_access_names_user("dm#alice,bob", "alice"));
    assert_true(cp_access_names_user("dm#alice,bob", "bob"));
    assert_false(cp_access_names_user("dm#alice,bob", "carol"));
    assert_false(cp_access_names_user("dm#alice,bob", "alice,bob"));
    assert_false(cp_access_names_user("dm#alice,bob", ""));
    assert_false(cp_access_names_user("dm#alice,bob", NULL));
}

static void test_access_needs_grant(void **state)
{
    (void)state;
    assert_true(cp_access_needs_grant("private-x"));
    assert_true(cp_access_needs_grant("presence-lobby"));
    assert_true(cp_access_needs_grant("private-dm#alice,bob"));
    assert_false(cp_access_needs_grant("news"));
    assert_false(cp_access_needs_grant("private"));
    assert_false(cp_access_needs_grant("xprivate-x"));
    assert_false(cp_access_needs_grant("Private-x"));
}

static void test_access_has_channel(void **state)
{
    (void)state;
    char *claims[] = {"private-a", "private-team.*", NULL, "", "presence-**"};
    struct cp_grants g = with_channels(claims, 5);
    assert_true(cp_access_has_channel(&g, "private-a"));
    assert_false(cp_access_has_channel(&g, "private-ab"));
    assert_true(cp_access_has_channel(&g, "private-team.red"));
    assert_false(cp_access_has_channel(&g, "private-team.red.x"));
    assert_true(cp_access_has_channel(&g, "presence-a.b"));
    assert_false(cp_access_has_channel(&g, "private-b"));
    assert_false(cp_access_has_channel(NULL, "private-a"));
    /* the rooms claim grants no channel */
    char *rooms[] = {"private-a"};
    struct cp_grants r = with_rooms(rooms, 1);
    assert_false(cp_access_has_channel(&r, "private-a"));
    /* an exact entry may hold a '#' part; as a pattern it would be invalid */
    char *hash[] = {"private-dm#alice,bob"};
    struct cp_grants h = with_channels(hash, 1);
    assert_true(cp_access_has_channel(&h, "private-dm#alice,bob"));
    assert_false(cp_access_has_channel(&h, "private-dm#alice"));
}

static void test_access_subscribe(void **state)
{
    (void)state;
    char why[192];
    char *claims[] = {"private-*"};
    struct cp_grants g = with_channels(claims, 1);
    assert_true(cp_access_subscribe(NULL, "news", "bob", false, why, sizeof(why)));
    assert_false(cp_access_subscribe(NULL, "private-x", "bob", false, why, sizeof(why)));
    assert_non_null(strstr(why, "needs a grant"));
    assert_true(cp_access_subscribe(&g, "private-x", "bob", false, why, sizeof(why)));
    assert_true(cp_access_subscribe(NULL, "presence-x", "bob", true, why, sizeof(why)));
    assert_false(cp_access_subscribe(&g, "presence-x", "bob", false, why, sizeof(why)));
    /* the user list holds even with a grant */
    assert_false(cp_access_subscribe(NULL, "private-x#alice", "bob", true, why, sizeof(why)));
    assert_non_null(strstr(why, "users it names"));
    assert_true(cp_access_subscribe(NULL, "private-x#alice", "alice", true, why, sizeof(why)));
    assert_false(cp_access_subscribe(NULL, "private-x#alice", "alice", false, why, sizeof(why)));
    assert_true(cp_access_subscribe(NULL, "notifications#alice", "alice", false, why, sizeof(why)));
    assert_false(cp_access_subscribe(NULL, "notifications#alice", "bob", false, why, sizeof(why)));
}

static void test_access_publish(void **state)
{
    (void)state;
    char why[192];
    assert_false(cp_access_publish("news", "bob", false, true, why, sizeof(why)));
    assert_non_null(strstr(why, "does not take publishes from clients"));
    /* public channels: a publisher need not be subscribed */
    assert_true(cp_access_publish("news", "bob", true, false, why, sizeof(why)));
    assert_false(cp_access_publish("private-x", "bob", true, false, why, sizeof(why)));
    assert_true(cp_access_publish("private-x", "bob", true, true, why, sizeof(why)));
    assert_false(cp_access_publish("presence-x", "bob", true, false, why, sizeof(why)));
    assert_true(cp_access_publish("dm#alice,bob", "bob", true, false, why, sizeof(why)));
    assert_false(cp_access_publish("dm#alice,bob", "carol", true, true, why, sizeof(why)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_access_has_room_exact_id),
        cmocka_unit_test(test_access_has_room_glob),
        cmocka_unit_test(test_access_has_room_nothing_without_grants),
        cmocka_unit_test(test_access_has_room_empty_or_bad_entry_grants_nothing),
        cmocka_unit_test(test_access_names_user),
        cmocka_unit_test(test_access_needs_grant),
        cmocka_unit_test(test_access_has_channel),
        cmocka_unit_test(test_access_subscribe),
        cmocka_unit_test(test_access_publish),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
