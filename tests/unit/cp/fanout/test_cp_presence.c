/* Presence bookkeeping and typing, pure parts: the presence record (format, parse, tolerance),
 * the status others see, the presence-timeout decision, connections and the grace list, and
 * typing entries (start, refresh, find, expiry order). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_presence.h"
#include "cp_typers.h"

static void set(char **f, const char *v)
{
    assert_int_equal(cp_presence_record_set(f, v), SB_OK);
}

static void test_presence_record_round_trip(void **state)
{
    (void)state;
    struct cp_presence_record r, back;
    assert_int_equal(cp_presence_record_init(&r), SB_OK);
    set(&r.status, "away");
    r.auto_away = true;
    set(&r.custom_status, "lunch \"out\"");
    set(&r.device_type, "web");
    set(&r.device_name, "Firefox");
    set(&r.activity_detail, "doc-1");
    set(&r.availability, "until 15:00");
    r.last_activity = 1796008767028LL;
    r.updated_at = 1796008767000LL;
    char *txt = cp_presence_record_format(&r);
    assert_non_null(txt);
    assert_string_equal(txt,
                        "{\"activity\":{\"detail\":\"doc-1\"},\"auto_away\":true,"
                        "\"availability\":\"until 15:00\",\"custom_status\":\"lunch \\\"out\\\"\","
                        "\"device\":{\"name\":\"Firefox\",\"type\":\"web\"},"
                        "\"last_activity\":1796008767028,\"status\":\"away\","
                        "\"updated_at\":1796008767000}");
    assert_int_equal(cp_presence_record_parse(txt, strlen(txt), &back), SB_OK);
    assert_string_equal(back.status, "away");
    assert_true(back.auto_away);
    assert_string_equal(back.custom_status, "lunch \"out\"");
    assert_string_equal(back.device_type, "web");
    assert_string_equal(back.device_name, "Firefox");
    assert_string_equal(back.activity_type, "");
    assert_string_equal(back.activity_detail, "doc-1");
    assert_string_equal(back.availability, "until 15:00");
    assert_int_equal(back.last_activity, 1796008767028LL);
    assert_int_equal(back.updated_at, 1796008767000LL);
    free(txt);
    cp_presence_record_fini(&back);
    cp_presence_record_fini(&r);
}

static void test_presence_record_format_omits_empty_fields(void **state)
{
    (void)state;
    struct cp_presence_record r;
    assert_int_equal(cp_presence_record_init(&r), SB_OK);
    char *txt = cp_presence_record_format(&r);
    assert_string_equal(txt, "{}");
    free(txt);
    cp_presence_record_fini(&r);
}

static void test_presence_record_parse_tolerates_junk(void **state)
{
    (void)state;
    struct cp_presence_record r;
    /* Wrong types and an unknown status read as unset; unknown keys are ignored. */
    const char *t = "{\"status\":\"sleeping\",\"custom_status\":7,\"device\":\"x\","
                    "\"last_activity\":\"12\",\"future\":{\"a\":1}}";
    assert_int_equal(cp_presence_record_parse(t, strlen(t), &r), SB_OK);
    assert_string_equal(r.status, "");
    assert_string_equal(r.custom_status, "");
    assert_string_equal(r.device_type, "");
    assert_int_equal(r.last_activity, 0);
    assert_false(r.auto_away);
    cp_presence_record_fini(&r);

    assert_int_equal(cp_presence_record_parse("[1]", 3, &r), SB_EPROTO);
    assert_string_equal(r.status, ""); /* still a valid empty record */
    cp_presence_record_fini(&r);
    assert_int_equal(cp_presence_record_parse("{\"status\":", 10, &r), SB_EPROTO);
    cp_presence_record_fini(&r);
}

static void test_presence_effective_status(void **state)
{
    (void)state;
    struct cp_presence_record r;
    assert_int_equal(cp_presence_record_init(&r), SB_OK);
    assert_string_equal(cp_presence_effective_status(true, &r), "online");
    assert_string_equal(cp_presence_effective_status(false, &r), "offline");
    assert_string_equal(cp_presence_effective_status(true, NULL), "online");
    set(&r.status, "busy");
    assert_string_equal(cp_presence_effective_status(true, &r), "busy");
    assert_string_equal(cp_presence_effective_status(false, &r), "offline");
    cp_presence_record_fini(&r);
}

static void test_presence_is_idle(void **state)
{
    (void)state;
    struct cp_presence_record r;
    assert_int_equal(cp_presence_record_init(&r), SB_OK);
    r.last_activity = 1000;
    /* Newest of the record's and the local activity counts. */
    assert_false(cp_presence_is_idle(&r, 0, 1999, 1000));
    assert_true(cp_presence_is_idle(&r, 0, 2000, 1000));
    assert_false(cp_presence_is_idle(&r, 1500, 2000, 1000));
    assert_true(cp_presence_is_idle(&r, 1500, 2500, 1000));
    /* Disabled timeout. */
    assert_false(cp_presence_is_idle(&r, 0, 999999, 0));
    /* An explicit online still times out; busy, away and offline stick. */
    set(&r.status, "online");
    assert_true(cp_presence_is_idle(&r, 0, 5000, 1000));
    const char *sticky[] = {"busy", "away", "offline"};
    for (size_t i = 0; i < 3; i++) {
        set(&r.status, sticky[i]);
        assert_false(cp_presence_is_idle(&r, 0, 5000, 1000));
    }
    cp_presence_record_fini(&r);
}

static void test_presence_status_valid(void **state)
{
    (void)state;
    assert_true(cp_presence_status_valid("online"));
    assert_true(cp_presence_status_valid("away"));
    assert_true(cp_presence_status_valid("busy"));
    assert_true(cp_presence_status_valid("offline"));
    assert_false(cp_presence_status_valid("Online"));
    assert_false(cp_presence_status_valid(""));
    assert_false(cp_presence_status_valid(NULL));
}

static void test_presence_two_connections_one_user_grace(void **state)
{
    (void)state;
    struct cp_presence p;
    cp_presence_init(&p);
    bool came;
    assert_int_equal(
        cp_presence_open_remote(&p, "c1", "alice", "s1", "websocket", 1, "dp-1", 0, 100, &came),
        SB_OK);
    assert_true(came);
    assert_int_equal(
        cp_presence_open_remote(&p, "c2", "alice", "s2", "sse", 1, "dp-2", 0, 110, &came), SB_OK);
    assert_false(came); /* two tabs: one user */
    struct cp_user *u = cp_presence_user(&p, "alice");
    assert_int_equal(u->n_conns, 2);
    assert_int_equal(u->last_activity, 110); /* connecting is activity */
    assert_int_equal(p.n_online, 1);

    struct cp_user *out;
    bool last;
    cp_presence_close(&p, "c1", 200, 1000, 800, &out, &last);
    assert_ptr_equal(out, u);
    assert_false(last);
    assert_null(cp_presence_grace_due(&p, 999999));
    cp_presence_close(&p, "c2", 210, 1000, 800, &out, &last);
    assert_false(last); /* announced after the grace period */
    assert_true(u->online);
    assert_int_equal(cp_presence_next_deadline(&p), 1800);
    assert_null(cp_presence_grace_due(&p, 1799));
    /* A reconnect within the grace period cancels it, without a new online. */
    assert_int_equal(
        cp_presence_open_remote(&p, "c3", "alice", "s3", "websocket", 1, "dp-1", 0, 300, &came),
        SB_OK);
    assert_false(came);
    assert_int_equal(cp_presence_next_deadline(&p), 0);
    cp_presence_close(&p, "c3", 400, 2000, 800, &out, &last);
    assert_ptr_equal(cp_presence_grace_due(&p, 2800), u);
    cp_presence_set_offline(&p, u, 2800);
    assert_false(u->online);
    assert_string_equal(u->status, "offline");
    assert_int_equal(p.n_online, 0);
    assert_null(cp_presence_grace_due(&p, 99999));
    cp_presence_fini(&p);
}

static void test_typing_start_refresh_find_expire(void **state)
{
    (void)state;
    struct cp_typers t;
    cp_typers_init(&t, 3000);
    assert_int_equal(cp_typers_start(&t, "r1", "alice", 100), 1);
    assert_int_equal(cp_typers_start(&t, "r1", "bob", 200), 1);
    assert_int_equal(cp_typers_start(&t, "r1", "alice", 300), 0); /* refresh */
    struct cp_typers_entry *e = cp_typers_find(&t, "r1", "alice");
    assert_non_null(e);
    assert_int_equal(e->expires, 3300);
    assert_null(cp_typers_find(&t, "r2", "alice"));
    assert_int_equal(cp_typers_next_deadline(&t), 3200); /* bob, now first */
    cp_typers_expire(&t, 3250, NULL, NULL);
    assert_null(cp_typers_find(&t, "r1", "bob"));
    assert_non_null(cp_typers_find(&t, "r1", "alice"));
    assert_true(cp_typers_stop(&t, "r1", "alice"));
    assert_false(cp_typers_stop(&t, "r1", "alice"));
    assert_int_equal(cp_typers_next_deadline(&t), 0);
    cp_typers_fini(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presence_record_round_trip),
        cmocka_unit_test(test_presence_record_format_omits_empty_fields),
        cmocka_unit_test(test_presence_record_parse_tolerates_junk),
        cmocka_unit_test(test_presence_effective_status),
        cmocka_unit_test(test_presence_is_idle),
        cmocka_unit_test(test_presence_status_valid),
        cmocka_unit_test(test_presence_two_connections_one_user_grace),
        cmocka_unit_test(test_typing_start_refresh_find_expire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
