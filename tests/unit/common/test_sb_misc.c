/* Unit tests of the small shared pieces: error code names, identifiers, ids, time format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sb_err.h"
#include "sb_id.h"
#include "sb_ident.h"
#include "sb_time.h"

static void test_sb_code_name_roundtrip(void **state)
{
    for (int i = 1; i < SB_CODE_COUNT; i++) {
        const char *name = sb_code_name((enum sb_code)i);
        assert_true(strlen(name) > 0);
        assert_int_equal(sb_code_from_name(name), i);
    }
    assert_string_equal(sb_code_name(SB_CODE_ROOM_FULL), "room_full");
    assert_string_equal(sb_code_name(SB_CODE_HISTORY_GAP), "history_gap");
    assert_string_equal(sb_code_name((enum sb_code)999), "internal");
    assert_int_equal(sb_code_from_name("no_such_code"), SB_CODE_NONE);
    assert_int_equal(sb_code_from_name(NULL), SB_CODE_NONE);
}

static void test_sb_ident_is_valid_rules(void **state)
{
    assert_true(sb_ident_is_valid("alice"));
    assert_true(sb_ident_is_valid("room-1.a_b:c@d"));
    assert_false(sb_ident_is_valid(""));
    assert_false(sb_ident_is_valid(NULL));
    assert_false(sb_ident_is_valid("a b"));
    assert_false(sb_ident_is_valid("a/b"));
    assert_false(sb_ident_is_valid("caf\xc3\xa9"));
    char longid[SB_IDENT_MAX + 2];
    memset(longid, 'x', sizeof(longid));
    longid[SB_IDENT_MAX] = '\0';
    assert_true(sb_ident_is_valid(longid));
    longid[SB_IDENT_MAX] = 'x';
    longid[SB_IDENT_MAX + 1] = '\0';
    assert_false(sb_ident_is_valid(longid));
}

static void test_sb_ident_is_valid_channel_rules(void **state)
{
    assert_true(sb_ident_is_valid_channel("news"));
    assert_true(sb_ident_is_valid_channel("private-x"));
    assert_true(sb_ident_is_valid_channel("notifications#alice"));
    assert_true(sb_ident_is_valid_channel("dm#alice,bob"));
    assert_true(sb_ident_is_valid_channel("dm#a.b@c:d_e-f,g"));
    assert_false(sb_ident_is_valid_channel(NULL));
    assert_false(sb_ident_is_valid_channel(""));
    assert_false(sb_ident_is_valid_channel("#alice"));    /* no base */
    assert_false(sb_ident_is_valid_channel("dm#"));       /* no user */
    assert_false(sb_ident_is_valid_channel("dm#alice,")); /* empty entry */
    assert_false(sb_ident_is_valid_channel("dm#,alice"));
    assert_false(sb_ident_is_valid_channel("dm#alice,,bob"));
    assert_false(sb_ident_is_valid_channel("dm#alice#bob")); /* one '#' part only */
    assert_false(sb_ident_is_valid_channel("dm,alice"));     /* ',' only after '#' */
    assert_false(sb_ident_is_valid_channel("dm#al ice"));
    assert_false(sb_ident_is_valid_channel("news.*"));
    assert_false(sb_ident_is_valid_channel("a/b"));
    char longid[SB_IDENT_MAX + 2];
    memset(longid, 'x', sizeof(longid));
    memcpy(longid, "dm#", 3);
    longid[SB_IDENT_MAX] = '\0';
    assert_true(sb_ident_is_valid_channel(longid));
    longid[SB_IDENT_MAX] = 'x';
    longid[SB_IDENT_MAX + 1] = '\0';
    assert_false(sb_ident_is_valid_channel(longid));
    /* room and user ids stay without '#' and ',' */
    assert_false(sb_ident_is_valid("dm#alice"));
    assert_false(sb_ident_is_valid("a,b"));
    assert_null(sb_ident_channel_users("news"));
    assert_string_equal(sb_ident_channel_users("dm#alice,bob"), "alice,bob");
}

static void test_sb_id_new_unique_and_prefixed(void **state)
{
    char a[SB_ID_LEN], b[SB_ID_LEN];
    sb_id_new("c", a);
    sb_id_new("c", b);
    assert_int_equal(strncmp(a, "c-", 2), 0);
    assert_int_equal(strlen(a), 24);
    assert_string_not_equal(a, b);
    assert_true(sb_ident_is_valid(a));
}

static void test_sb_time_format_rfc3339_known_values(void **state)
{
    char out[SB_TIME_RFC3339_LEN];
    assert_int_equal(sb_time_format_rfc3339(0, out, sizeof(out)), 24);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
    sb_time_format_rfc3339(1764471845678LL, out, sizeof(out));
    assert_string_equal(out, "2025-11-30T03:04:05.678Z");
    sb_time_format_rfc3339(-1, out, sizeof(out));
    assert_string_equal(out, "1969-12-31T23:59:59.999Z");
    assert_int_equal(sb_time_format_rfc3339(0, out, 10), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sb_code_name_roundtrip),
        cmocka_unit_test(test_sb_ident_is_valid_rules),
        cmocka_unit_test(test_sb_ident_is_valid_channel_rules),
        cmocka_unit_test(test_sb_id_new_unique_and_prefixed),
        cmocka_unit_test(test_sb_time_format_rfc3339_known_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
