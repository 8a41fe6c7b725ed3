/* The token's `rooms` claim against room ids (cp_access): exact ids, globs, and the entries that
 * must grant nothing. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_access_has_room_exact_id),
        cmocka_unit_test(test_access_has_room_glob),
        cmocka_unit_test(test_access_has_room_nothing_without_grants),
        cmocka_unit_test(test_access_has_room_empty_or_bad_entry_grants_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
