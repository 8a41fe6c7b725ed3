/* The permissions matrix of docs/permissions.md, cell by cell: every actor role, every action,
 * every target role. The expected table is written out here, not derived from cp_perm.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "cp_perm.h"

/* One row per actor (member, moderator, admin, owner); in each string one character per
 * target role (member, moderator, admin, owner): Y allowed, - refused. */
struct expect {
    enum cp_perm_action action;
    const char *rows[4];
};

static const struct expect matrix[] = {
    {CP_PERM_INVITE, {"----", "Y---", "YY--", "YYYY"}},
    {CP_PERM_KICK, {"----", "Y---", "YY--", "YYYY"}},
    {CP_PERM_BAN, {"----", "Y---", "YY--", "YYYY"}},
    {CP_PERM_SET_ROLE, {"----", "----", "YY--", "YYY-"}},
    {CP_PERM_ARCHIVE, {"----", "----", "YY--", "YYYY"}},
    {CP_PERM_UPDATE_ROOM, {"----", "----", "YY--", "YYYY"}},
    {CP_PERM_TRANSFER, {"----", "----", "----", "YYYY"}},
    {CP_PERM_DELETE_ROOM, {"----", "----", "----", "YYYY"}},
    {CP_PERM_EDIT_OTHERS, {"----", "----", "YY--", "YYYY"}},
    {CP_PERM_DELETE_OTHERS, {"----", "Y---", "YY--", "YYYY"}},
};

static void test_perm_matrix_every_cell(void **state)
{
    (void)state;
    assert_int_equal(sizeof(matrix) / sizeof(matrix[0]), CP_PERM_COUNT);
    bool seen[CP_PERM_COUNT] = {false};
    for (size_t i = 0; i < CP_PERM_COUNT; i++) {
        const struct expect *e = &matrix[i];
        seen[e->action] = true;
        for (int actor = CP_ROLE_MEMBER; actor <= CP_ROLE_OWNER; actor++) {
            for (int target = CP_ROLE_MEMBER; target <= CP_ROLE_OWNER; target++) {
                bool want = e->rows[actor][target] == 'Y';
                bool got = cp_perm_allows((enum cp_role)actor, e->action, (enum cp_role)target);
                if (got != want)
                    fail_msg("%s: actor %s on target %s: got %d, want %d",
                             cp_perm_action_name(e->action), cp_role_name((enum cp_role)actor),
                             cp_role_name((enum cp_role)target), got, want);
            }
        }
    }
    for (size_t i = 0; i < CP_PERM_COUNT; i++)
        assert_true(seen[i]);
}

static void test_perm_members_may_do_nothing_to_others(void **state)
{
    (void)state;
    for (int a = 0; a < CP_PERM_COUNT; a++)
        for (int t = CP_ROLE_MEMBER; t <= CP_ROLE_OWNER; t++)
            assert_false(cp_perm_allows(CP_ROLE_MEMBER, (enum cp_perm_action)a, (enum cp_role)t));
}

static void test_perm_equal_role_refused_below_owner(void **state)
{
    (void)state;
    for (int a = 0; a < CP_PERM_COUNT; a++) {
        for (int r = CP_ROLE_MEMBER; r < CP_ROLE_OWNER; r++)
            assert_false(cp_perm_allows((enum cp_role)r, (enum cp_perm_action)a, (enum cp_role)r));
    }
}

static void test_perm_owner_role_never_set_through_set_role(void **state)
{
    (void)state;
    for (int r = CP_ROLE_MEMBER; r <= CP_ROLE_OWNER; r++)
        assert_false(cp_perm_allows((enum cp_role)r, CP_PERM_SET_ROLE, CP_ROLE_OWNER));
}

static void test_perm_out_of_range_refused(void **state)
{
    (void)state;
    assert_false(cp_perm_allows(CP_ROLE_OWNER, CP_PERM_COUNT, CP_ROLE_MEMBER));
    assert_false(cp_perm_allows(CP_ROLE_OWNER, (enum cp_perm_action) - 1, CP_ROLE_MEMBER));
    assert_false(cp_perm_allows((enum cp_role)7, CP_PERM_KICK, CP_ROLE_MEMBER));
    assert_false(cp_perm_allows(CP_ROLE_OWNER, CP_PERM_KICK, (enum cp_role) - 1));
    assert_string_equal(cp_perm_action_name(CP_PERM_COUNT), "unknown");
}

static void test_perm_action_names_unique(void **state)
{
    (void)state;
    for (int a = 0; a < CP_PERM_COUNT; a++) {
        const char *n = cp_perm_action_name((enum cp_perm_action)a);
        assert_non_null(n);
        assert_true(n[0] != '\0' && strcmp(n, "unknown") != 0);
        for (int b = 0; b < a; b++)
            assert_string_not_equal(n, cp_perm_action_name((enum cp_perm_action)b));
    }
    assert_string_equal(cp_perm_action_name(CP_PERM_BAN), "ban");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_perm_matrix_every_cell),
        cmocka_unit_test(test_perm_members_may_do_nothing_to_others),
        cmocka_unit_test(test_perm_equal_role_refused_below_owner),
        cmocka_unit_test(test_perm_owner_role_never_set_through_set_role),
        cmocka_unit_test(test_perm_out_of_range_refused),
        cmocka_unit_test(test_perm_action_names_unique),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
