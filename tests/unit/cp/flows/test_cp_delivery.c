/* Idempotency records (cp_once.c), direct deliveries (cp_direct.c) and session resumption
 * (cp_session.c) on the memory store: first claim wins, repeats answer the first result (a
 * direct delivery too), expired records are taken over; sessions resume for their user within
 * the TTL, never for another user, an unknown id or after it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_direct.h"
#include "cp_once.h"
#include "cp_session.h"
#include "cp_store_memory.h"
#include "sb_time.h"

struct fixture {
    struct cp_ctx c;
    struct cp_node node;
    /* last answers */
    int calls;
    bool first;
    int64_t delivered;
    enum sb_code code;
    char session[128];
    bool resumed;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct cp_settings set = {.typing_timeout_ms = 100,
                              .heartbeat_interval_ms = 5000,
                              .node_queue_limit = 1 << 20,
                              .session_ttl_ms = 60000};
    cp_ctx_init(&f->c, &set, cp_store_memory_create());
    cp_node_init(&f->node, set.node_queue_limit);
    f->node.id = strdup("dp-1");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cp_ctx_fini(&f->c);
    cp_node_fini(&f->node);
    free(f);
    return 0;
}

static void once_cb(void *arg, const struct cp_status *st, bool first, int64_t delivered,
                    const char *result_id)
{
    (void)result_id;
    struct fixture *f = arg;
    f->calls++;
    f->code = st->code;
    f->first = first;
    f->delivered = delivered;
}

static void session_cb(void *arg, const char *session_id, bool resumed)
{
    struct fixture *f = arg;
    f->calls++;
    snprintf(f->session, sizeof(f->session), "%s", session_id);
    f->resumed = resumed;
}

static void write_cb(void *arg, const struct cp_status *st, const int64_t *v, size_t n)
{
    (void)v;
    (void)n;
    assert_int_equal(st->code, SB_CODE_NONE);
    (*(int *)arg)++;
}

static void put_doc(struct fixture *f, const char *key, const char *value)
{
    int done = 0;
    struct cp_doc_op op = {.key = key, .value = value, .expect = -1};
    f->c.store->ops->doc_write(f->c.store, &op, 1, write_cb, &done);
    assert_int_equal(done, 1);
}

static void test_cp_once_doc_key_is_hex_and_stable(void **state)
{
    (void)state;
    char a[96], b[96], c[96];
    cp_once_doc_key("broadcast", "key-1", a, sizeof(a));
    cp_once_doc_key("broadcast", "key-1", b, sizeof(b));
    cp_once_doc_key("broadcast", "key-2", c, sizeof(c));
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_int_equal(strlen(a), strlen("idem/broadcast/") + 32);
    assert_memory_equal(a, "idem/broadcast/", 15);
    for (const char *p = a + 15; *p; p++)
        assert_non_null(strchr("0123456789abcdef", *p));
    /* Any text is a valid key: the document key stays a valid id. */
    cp_once_doc_key("send_to_user", "with spaces / slashes \xc3\xa9", c, sizeof(c));
    assert_null(strchr(c + strlen("idem/send_to_user/"), '/'));
}

static void test_cp_once_claim_first_then_repeat(void **state)
{
    struct fixture *f = *state;
    cp_once_claim(&f->c, "broadcast", "k1", 7, once_cb, f);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->code, SB_CODE_NONE);
    assert_true(f->first);
    assert_int_equal(f->delivered, 7);
    /* The repeat answers the first result, whatever it would count now. */
    cp_once_claim(&f->c, "broadcast", "k1", 99, once_cb, f);
    assert_int_equal(f->calls, 2);
    assert_int_equal(f->code, SB_CODE_NONE);
    assert_false(f->first);
    assert_int_equal(f->delivered, 7);
    /* Another key, or the same key in another scope, is another call. */
    cp_once_claim(&f->c, "broadcast", "k2", 3, once_cb, f);
    assert_true(f->first);
    cp_once_claim(&f->c, "send_to_user", "k1", 4, once_cb, f);
    assert_true(f->first);
    assert_int_equal(f->delivered, 4);
}

static void test_cp_once_claim_expired_record_is_taken_over(void **state)
{
    struct fixture *f = *state;
    char key[96], val[128];
    cp_once_doc_key("broadcast", "old", key, sizeof(key));
    snprintf(val, sizeof(val), "{\"k\":\"old\",\"at\":%lld,\"delivered\":1}",
             (long long)(sb_time_now_ms() - 121000));
    put_doc(f, key, val);
    cp_once_claim(&f->c, "broadcast", "old", 5, once_cb, f);
    assert_int_equal(f->code, SB_CODE_NONE);
    assert_true(f->first);
    assert_int_equal(f->delivered, 5);
    cp_once_claim(&f->c, "broadcast", "old", 6, once_cb, f);
    assert_false(f->first);
    assert_int_equal(f->delivered, 5);
}

static void test_cp_session_resolve_without_request_is_fresh(void **state)
{
    struct fixture *f = *state;
    cp_session_resolve(&f->c, "alice", NULL, "s-new", session_cb, f);
    assert_int_equal(f->calls, 1);
    assert_string_equal(f->session, "s-new");
    assert_false(f->resumed);
    cp_session_resolve(&f->c, "alice", "", "s-new", session_cb, f);
    assert_false(f->resumed);
    cp_session_resolve(&f->c, "alice", "not valid!", "s-new", session_cb, f);
    assert_string_equal(f->session, "s-new");
    assert_false(f->resumed);
    cp_session_resolve(&f->c, "alice", "s-unknown", "s-new", session_cb, f);
    assert_string_equal(f->session, "s-new");
    assert_false(f->resumed);
    assert_int_equal(f->calls, 4);
}

static void test_cp_session_closed_resumes_for_its_user_only(void **state)
{
    struct fixture *f = *state;
    bool came = false;
    assert_int_equal(cp_presence_open(&f->c.presence, "c-1", "alice", "s-old", "websocket",
                                      sb_time_now_ms(), &f->node, sb_time_now_ms(), &came),
                     SB_OK);
    /* Open: the same user resumes it, another user does not. */
    cp_session_resolve(&f->c, "alice", "s-old", "s-new", session_cb, f);
    assert_string_equal(f->session, "s-old");
    assert_true(f->resumed);
    cp_session_resolve(&f->c, "mallory", "s-old", "s-new", session_cb, f);
    assert_string_equal(f->session, "s-new");
    assert_false(f->resumed);
    /* Closed: the record keeps it for the TTL. */
    cp_session_closed(&f->c, cp_presence_conn(&f->c.presence, "c-1"));
    struct cp_user *u;
    bool last;
    cp_presence_close(&f->c.presence, "c-1", sb_time_now_ms(), sb_time_mono_ms(), 0, &u, &last);
    cp_session_resolve(&f->c, "alice", "s-old", "s-new", session_cb, f);
    assert_string_equal(f->session, "s-old");
    assert_true(f->resumed);
    cp_session_resolve(&f->c, "mallory", "s-old", "s-new", session_cb, f);
    assert_string_equal(f->session, "s-new");
    assert_false(f->resumed);
}

static void test_cp_session_expired_or_disabled_is_fresh(void **state)
{
    struct fixture *f = *state;
    char val[128];
    snprintf(val, sizeof(val), "{\"user_id\":\"alice\",\"closed_at\":%lld}",
             (long long)(sb_time_now_ms() - 61000));
    put_doc(f, "sessions/s-gone", val);
    cp_session_resolve(&f->c, "alice", "s-gone", "s-new", session_cb, f);
    assert_string_equal(f->session, "s-new");
    assert_false(f->resumed);
    snprintf(val, sizeof(val), "{\"user_id\":\"alice\",\"closed_at\":%lld}",
             (long long)sb_time_now_ms());
    put_doc(f, "sessions/s-recent", val);
    cp_session_resolve(&f->c, "alice", "s-recent", "s-new", session_cb, f);
    assert_true(f->resumed);
    f->c.set.session_ttl_ms = 0; /* resumption off */
    cp_session_resolve(&f->c, "alice", "s-recent", "s-new", session_cb, f);
    assert_false(f->resumed);
}

static void direct_cb(void *arg, const struct cp_status *st, int64_t delivered)
{
    struct fixture *f = arg;
    f->calls++;
    f->code = st->code;
    f->delivered = delivered;
}

static void test_cp_direct_connection_not_open(void **state)
{
    struct fixture *f = *state;
    struct cp_direct d = {
        .kind = CP_DIRECT_CONNECTION, .to = "c-gone", .data = "{}", .data_len = 2, .idem_key = "k"};
    cp_direct_send(&f->c, &d, direct_cb, f);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->code, SB_CODE_CONNECTION_NOT_FOUND);
}

static void test_cp_direct_seen_key_answers_first_count(void **state)
{
    struct fixture *f = *state;
    const char *exclude[] = {"bob"};
    struct cp_direct d = {.kind = CP_DIRECT_EVERYONE,
                          .exclude = exclude,
                          .n_exclude = 1,
                          .data = "{\"n\":1}",
                          .data_len = 7,
                          .idem_key = "k1"};
    cp_direct_send(&f->c, &d, direct_cb, f);
    assert_int_equal(f->code, SB_CODE_NONE);
    assert_int_equal(f->delivered, 0); /* nobody is connected */
    char key[96], val[128];
    cp_once_doc_key("send_to_user", "k2", key, sizeof(key));
    snprintf(val, sizeof(val), "{\"k\":\"k2\",\"at\":%lld,\"delivered\":3}",
             (long long)sb_time_now_ms());
    put_doc(f, key, val);
    d = (struct cp_direct){
        .kind = CP_DIRECT_USER, .to = "alice", .data = "1", .data_len = 1, .idem_key = "k2"};
    cp_direct_send(&f->c, &d, direct_cb, f);
    assert_int_equal(f->code, SB_CODE_NONE);
    assert_int_equal(f->delivered, 3);
    assert_int_equal(f->calls, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cp_direct_connection_not_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cp_direct_seen_key_answers_first_count, setup,
                                        teardown),
        cmocka_unit_test(test_cp_once_doc_key_is_hex_and_stable),
        cmocka_unit_test_setup_teardown(test_cp_once_claim_first_then_repeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cp_once_claim_expired_record_is_taken_over, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cp_session_resolve_without_request_is_fresh, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cp_session_closed_resumes_for_its_user_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cp_session_expired_or_disabled_is_fresh, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
