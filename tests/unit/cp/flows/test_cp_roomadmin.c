/* Room administration flows on the memory store (which answers inline), without sockets: the
 * update_fields names, roles within the permissions matrix, bans with ListBans and the join
 * refusal, invites consumed once, and BulkJoinRoom's per-user outcomes in order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_roomadmin.h"
#include "cp_store_memory.h"

struct fixture {
    struct cp_ctx c;
    int calls;
    enum sb_code code;
    enum cp_role role;
    char user[64];
    char invite[64];
    size_t n;
    struct cp_bulk_result res[4];
    char msgs[4][CP_STATUS_MSG_MAX];
    struct cp_ban ban; /* the first of ListBans, its strings copied below */
    char ban_reason[64];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct cp_settings set = {.typing_timeout_ms = 100, .node_queue_limit = 1 << 20};
    assert_int_equal(cp_ctx_init(&f->c, &set, cp_store_memory_create()), SB_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cp_ctx_fini(&f->c);
    free(f);
    return 0;
}

static void note(struct fixture *f, const struct cp_status *st)
{
    f->calls++;
    f->code = st->code;
}

static void room_cb(void *arg, const struct cp_status *st, const struct cp_room *room)
{
    (void)room;
    note(arg, st);
}

static void join_cb(void *arg, const struct cp_status *st, const struct cp_join_outcome *o)
{
    (void)o;
    note(arg, st);
}

static void done_cb(void *arg, const struct cp_status *st)
{
    note(arg, st);
}

static void member_cb(void *arg, const struct cp_status *st, const char *room_id,
                      const struct cp_member *m)
{
    struct fixture *f = arg;
    (void)room_id;
    note(f, st);
    if (m != NULL) {
        f->role = m->role;
        strcpy(f->user, m->user_id);
    }
}

static void bans_cb(void *arg, const struct cp_status *st, const struct cp_ban *bans, size_t n)
{
    struct fixture *f = arg;
    note(f, st);
    f->n = n;
    if (n > 0) {
        f->ban = bans[0];
        strcpy(f->user, bans[0].user_id);
        strcpy(f->ban_reason, bans[0].reason);
    }
}

static void invite_cb(void *arg, const struct cp_status *st, const struct cp_invite *inv)
{
    struct fixture *f = arg;
    note(f, st);
    if (inv != NULL)
        strcpy(f->invite, inv->id);
}

static void bulk_cb(void *arg, const struct cp_status *st, const struct cp_bulk_result *res,
                    size_t n)
{
    struct fixture *f = arg;
    note(f, st);
    f->n = n;
    for (size_t i = 0; i < n && i < 4; i++) {
        f->res[i] = res[i];
        f->res[i].user_id = NULL; /* borrowed: checked through msgs and codes */
        strcpy(f->msgs[i], res[i].msg ? res[i].msg : "");
    }
}

/* Room r1 owned by alice, with bob (moderator) and carol (member). */
static void room_with_members(struct fixture *f)
{
    struct cp_room room = {
        .id = "r1", .name = "", .description = "", .owner_id = "alice", .created_at = 1};
    cp_rooms_create(&f->c, &room, room_cb, f);
    cp_rooms_join(&f->c, "r1", "bob", CP_ROLE_MODERATOR, false, false, false, 0, join_cb, f);
    cp_rooms_join(&f->c, "r1", "carol", CP_ROLE_MEMBER, false, false, false, 0, join_cb, f);
    assert_int_equal(f->calls, 3);
    assert_int_equal(f->code, SB_CODE_NONE);
    f->calls = 0;
}

static void test_cp_roomadmin_field_names_and_nonzero_fields(void **state)
{
    (void)state;
    assert_int_equal(cp_roomadmin_field("name"), CP_ROOMADMIN_NAME);
    assert_int_equal(cp_roomadmin_field("private"), CP_ROOMADMIN_PRIVATE);
    assert_int_equal(cp_roomadmin_field("metadata"), CP_ROOMADMIN_METADATA);
    assert_int_equal(cp_roomadmin_field("Name"), 0);
    assert_int_equal(cp_roomadmin_field(""), 0);
    assert_int_equal(cp_roomadmin_field(NULL), 0);
    struct cp_roomadmin_update u = {.name = "", .description = "d", .max_members = 3};
    assert_int_equal(cp_roomadmin_nonzero_fields(&u),
                     CP_ROOMADMIN_DESCRIPTION | CP_ROOMADMIN_MAX_MEMBERS);
    struct cp_roomadmin_update none = {0};
    assert_int_equal(cp_roomadmin_nonzero_fields(&none), 0);
}

static void test_cp_roomadmin_set_role_within_the_matrix(void **state)
{
    struct fixture *f = *state;
    room_with_members(f);
    /* A moderator may not make an admin, nor act without being a member. */
    cp_roomadmin_set_role(&f->c, "r1", "bob", "carol", CP_ROLE_ADMIN, member_cb, f);
    assert_int_equal(f->code, SB_CODE_PERMISSION_DENIED);
    cp_roomadmin_set_role(&f->c, "r1", "zed", "carol", CP_ROLE_MEMBER, member_cb, f);
    assert_int_equal(f->code, SB_CODE_PERMISSION_DENIED);
    cp_roomadmin_set_role(&f->c, "r1", "alice", "zed", CP_ROLE_MEMBER, member_cb, f);
    assert_int_equal(f->code, SB_CODE_NOT_ROOM_MEMBER);
    cp_roomadmin_set_role(&f->c, "r1", "bob", "alice", CP_ROLE_MEMBER, member_cb, f);
    assert_int_equal(f->code, SB_CODE_PERMISSION_DENIED);
    cp_roomadmin_set_role(&f->c, "r1", "alice", "carol", CP_ROLE_MODERATOR, member_cb, f);
    assert_int_equal(f->code, SB_CODE_NONE);
    assert_int_equal(f->role, CP_ROLE_MODERATOR);
    assert_string_equal(f->user, "carol");
    assert_int_equal(f->calls, 5);
}

static void test_cp_roomadmin_ban_lists_refuses_joins_until_unban(void **state)
{
    struct fixture *f = *state;
    room_with_members(f);
    cp_roomadmin_ban(&f->c, "r1", "carol", "carol", "", 0, done_cb, f);
    assert_int_equal(f->code, SB_CODE_PERMISSION_DENIED);
    cp_roomadmin_ban(&f->c, "r1", "bob", "alice", "", 0, done_cb, f);
    assert_int_equal(f->code, SB_CODE_PERMISSION_DENIED);
    cp_roomadmin_ban(&f->c, "r1", "bob", "carol", "spam", 0, done_cb, f);
    assert_int_equal(f->code, SB_CODE_NONE);
    cp_roomadmin_bans(&f->c, "r1", bans_cb, f);
    assert_int_equal(f->code, SB_CODE_NONE);
    assert_int_equal(f->n, 1);
    assert_string_equal(f->user, "carol");
    assert_string_equal(f->ban_reason, "spam");
    assert_int_equal(f->ban.expires_at, 0);
    cp_rooms_join(&f->c, "r1", "carol", CP_ROLE_MEMBER, false, false, false, 0, join_cb, f);
    assert_int_equal(f->code, SB_CODE_BANNED);
    cp_roomadmin_unban(&f->c, "r1", NULL, "carol", done_cb, f);
    assert_int_equal(f->code, SB_CODE_NONE);
    cp_roomadmin_bans(&f->c, "r1", bans_cb, f);
    assert_int_equal(f->n, 0);
    cp_rooms_join(&f->c, "r1", "carol", CP_ROLE_MEMBER, false, false, false, 0, join_cb, f);
    assert_int_equal(f->code, SB_CODE_NONE);
    cp_roomadmin_bans(&f->c, "r9", bans_cb, f);
    assert_int_equal(f->code, SB_CODE_ROOM_NOT_FOUND);
    assert_int_equal(f->calls, 9);
}

static void test_cp_roomadmin_invite_is_for_its_invitee_once(void **state)
{
    struct fixture *f = *state;
    room_with_members(f);
    cp_roomadmin_invite(&f->c, "r1", "carol", "dave", 0, invite_cb, f);
    assert_int_equal(f->code, SB_CODE_PERMISSION_DENIED);
    cp_roomadmin_invite(&f->c, "r1", "alice", "bob", 0, invite_cb, f);
    assert_int_equal(f->code, SB_CODE_ALREADY_ROOM_MEMBER);
    cp_roomadmin_invite(&f->c, "r1", "alice", "dave", 0, invite_cb, f);
    assert_int_equal(f->code, SB_CODE_NONE);
    assert_true(strncmp(f->invite, "i", 1) == 0);
    cp_roomadmin_accept(&f->c, f->invite, "erin", member_cb, f);
    assert_int_equal(f->code, SB_CODE_PERMISSION_DENIED);
    cp_roomadmin_accept(&f->c, f->invite, "dave", member_cb, f);
    assert_int_equal(f->code, SB_CODE_NONE);
    assert_string_equal(f->user, "dave");
    assert_int_equal(f->role, CP_ROLE_MEMBER);
    cp_roomadmin_accept(&f->c, f->invite, "dave", member_cb, f);
    assert_int_equal(f->code, SB_CODE_INVITE_NOT_FOUND);
    assert_int_equal(f->calls, 6);
}

static void test_cp_roomadmin_bulk_join_reports_each_user_in_order(void **state)
{
    struct fixture *f = *state;
    room_with_members(f);
    const char *users[] = {"u1", "not valid", "bob", "u2"};
    cp_roomadmin_bulk_join(&f->c, "r1", users, 4, CP_ROLE_MEMBER, bulk_cb, f);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->code, SB_CODE_NONE);
    assert_int_equal(f->n, 4);
    assert_int_equal(f->res[0].code, SB_CODE_NONE);
    assert_int_equal(f->res[1].code, SB_CODE_INVALID_MESSAGE);
    assert_string_equal(f->msgs[1], "user_id is not a valid id");
    assert_int_equal(f->res[2].code, SB_CODE_ALREADY_ROOM_MEMBER);
    assert_string_equal(f->msgs[2], "user bob is already a member of room r1");
    assert_int_equal(f->res[3].code, SB_CODE_NONE);
    cp_roomadmin_bulk_join(&f->c, "r9", users, 1, CP_ROLE_MEMBER, bulk_cb, f);
    assert_int_equal(f->code, SB_CODE_ROOM_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cp_roomadmin_field_names_and_nonzero_fields),
        cmocka_unit_test_setup_teardown(test_cp_roomadmin_set_role_within_the_matrix, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cp_roomadmin_ban_lists_refuses_joins_until_unban,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_cp_roomadmin_invite_is_for_its_invitee_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cp_roomadmin_bulk_join_reports_each_user_in_order,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
