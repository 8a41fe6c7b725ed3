/* Protocol code -> gRPC status mapping and the "code: sentence" message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "cp_status.h"

static void test_status_maps_api_md_classes(void **state)
{
    (void)state;
    assert_int_equal(cp_status_grpc_code(SB_CODE_NONE), GRPC_STATUS_OK);
    assert_int_equal(cp_status_grpc_code(SB_CODE_ROOM_NOT_FOUND), GRPC_STATUS_NOT_FOUND);
    assert_int_equal(cp_status_grpc_code(SB_CODE_NOT_ROOM_MEMBER), GRPC_STATUS_NOT_FOUND);
    assert_int_equal(cp_status_grpc_code(SB_CODE_CHANNEL_NOT_FOUND), GRPC_STATUS_NOT_FOUND);
    assert_int_equal(cp_status_grpc_code(SB_CODE_ROOM_ALREADY_EXISTS), GRPC_STATUS_ALREADY_EXISTS);
    assert_int_equal(cp_status_grpc_code(SB_CODE_ALREADY_ROOM_MEMBER), GRPC_STATUS_ALREADY_EXISTS);
    assert_int_equal(cp_status_grpc_code(SB_CODE_ALREADY_SUBSCRIBED), GRPC_STATUS_ALREADY_EXISTS);
    assert_int_equal(cp_status_grpc_code(SB_CODE_ROOM_FULL), GRPC_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(cp_status_grpc_code(SB_CODE_RATE_LIMITED), GRPC_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(cp_status_grpc_code(SB_CODE_ROOM_LIMIT_REACHED),
                     GRPC_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(cp_status_grpc_code(SB_CODE_BANNED), GRPC_STATUS_PERMISSION_DENIED);
    assert_int_equal(cp_status_grpc_code(SB_CODE_PERMISSION_DENIED), GRPC_STATUS_PERMISSION_DENIED);
    assert_int_equal(cp_status_grpc_code(SB_CODE_INVALID_MESSAGE), GRPC_STATUS_INVALID_ARGUMENT);
    assert_int_equal(cp_status_grpc_code(SB_CODE_ROOM_ARCHIVED), GRPC_STATUS_FAILED_PRECONDITION);
    assert_int_equal(cp_status_grpc_code(SB_CODE_INVITE_EXPIRED), GRPC_STATUS_FAILED_PRECONDITION);
    assert_int_equal(cp_status_grpc_code(SB_CODE_UNAVAILABLE), GRPC_STATUS_UNAVAILABLE);
    assert_int_equal(cp_status_grpc_code(SB_CODE_UNAUTHORIZED), GRPC_STATUS_UNAUTHENTICATED);
    assert_int_equal(cp_status_grpc_code(SB_CODE_INTERNAL), GRPC_STATUS_INTERNAL);
}

static void test_status_every_code_maps_to_a_real_status(void **state)
{
    (void)state;
    for (int c = 1; c < SB_CODE_COUNT; c++) {
        grpc_status_code g = cp_status_grpc_code((enum sb_code)c);
        assert_true(g > GRPC_STATUS_OK && g <= GRPC_STATUS_UNAUTHENTICATED);
    }
    assert_int_equal(cp_status_grpc_code((enum sb_code)999), GRPC_STATUS_INTERNAL);
}

static void test_status_message_is_code_colon_sentence(void **state)
{
    (void)state;
    struct cp_status st;
    char out[300];
    cp_status_set(&st, SB_CODE_ROOM_NOT_FOUND, "room %s does not exist", "r1");
    assert_string_equal(cp_status_grpc_message(&st, out, sizeof(out)),
                        "room_not_found: room r1 does not exist");
    cp_status_ok(&st);
    assert_string_equal(cp_status_grpc_message(&st, out, sizeof(out)), "");
}

static void test_status_long_sentence_is_truncated(void **state)
{
    (void)state;
    struct cp_status st;
    char big[1000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cp_status_set(&st, SB_CODE_INTERNAL, "%s", big);
    assert_int_equal(strlen(st.msg), CP_STATUS_MSG_MAX - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_maps_api_md_classes),
        cmocka_unit_test(test_status_every_code_maps_to_a_real_status),
        cmocka_unit_test(test_status_message_is_code_colon_sentence),
        cmocka_unit_test(test_status_long_sentence_is_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
