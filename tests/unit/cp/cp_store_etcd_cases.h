/* Cases only the etcd store has (included by test_cp_store.c with CP_TEST_ETCD). */
#ifndef CP_STORE_ETCD_CASES_H
#define CP_STORE_ETCD_CASES_H

struct app {
    enum sb_code code;
    char id[64];
    int64_t seq;
    bool duplicate;
    char forward[64];
};

static void on_app(void *arg, const struct cp_status *st, const struct cp_append_result *a)
{
    struct app *r = arg;
    outstanding--;
    memset(r, 0, sizeof(*r));
    r->code = st->code;
    if (a != NULL && a->forward_to != NULL)
        snprintf(r->forward, sizeof(r->forward), "%s", a->forward_to);
    if (a != NULL && a->message != NULL) {
        snprintf(r->id, sizeof(r->id), "%s", a->message->id);
        r->seq = a->message->seq;
        r->duplicate = a->duplicate;
    }
}

static struct app append_on(struct cp_store *s, const char *key)
{
    struct cp_message draft = {.id = "m-new",
                               .room_id = "r1",
                               .user_id = "alice",
                               .data = "{\"n\":1}",
                               .data_len = 7,
                               .idem_key = (char *)key};
    struct app a;
    S(s->ops->message_append(s, &draft, NULL, 100, on_app, &a));
    return a;
}

/* Waits until `s` has the room in its cache (its watch caught up). */
static void wait_room(struct cp_store *s, const char *room)
{
    for (int i = 0; i < 200; i++) {
        struct res r = {0};
        S(s->ops->room_get(s, room, on_room, &r));
        if (r.code == SB_CODE_NONE)
            return;
        pump(20);
    }
    fail_msg("room %s never reached the second replica", room);
}

static void test_store_etcd_idempotency(void **state)
{
    struct cp_store *s = *state;
    create(s, "r1", "", "alice", false, 0, SB_CODE_NONE);
    struct app a = append_on(s, "node1/c1/7");
    assert_int_equal(a.code, SB_CODE_NONE);
    assert_int_equal(a.seq, 1);
    assert_false(a.duplicate);
    struct app b = append_on(s, "node1/c1/7");
    assert_int_equal(b.code, SB_CODE_NONE);
    assert_int_equal(b.seq, 1);
    assert_true(b.duplicate);
    assert_string_equal(a.id, b.id);
    struct app c = append_on(s, "node1/c1/8");
    assert_int_equal(c.seq, 2);
    assert_false(c.duplicate);
    /* Two identical keys in flight at once: one message. */
    struct cp_message draft = {.id = "m-a",
                               .room_id = "r1",
                               .user_id = "alice",
                               .data = "1",
                               .data_len = 1,
                               .idem_key = "same"};
    struct app x, y;
    outstanding += 2;
    s->ops->message_append(s, &draft, NULL, 100, on_app, &x);
    draft.id = "m-b";
    s->ops->message_append(s, &draft, NULL, 100, on_app, &y);
    settle(s);
    assert_int_equal(outstanding, 0);
    assert_int_equal(x.seq, 3);
    assert_int_equal(y.seq, 3);
    assert_true(x.duplicate != y.duplicate);
    assert_string_equal(x.id, y.id);
}

static void test_store_etcd_sequencer_takeover(void **state)
{
    struct cp_store *a = *state;
    struct cp_store *s = a;
    create(a, "r1", "", "alice", false, 0, SB_CODE_NONE);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(append_on(a, NULL).seq, i);
    struct app k = append_on(a, "key-before-failover");
    assert_int_equal(k.seq, 4);

    extra = open_store("cp-test-b");
    assert_non_null(extra);
    s = extra;
    wait_room(extra, "r1");
    struct app f = append_on(extra, NULL);
    assert_int_equal(f.code, SB_CODE_UNAVAILABLE);
    assert_string_equal(f.forward, "cp-test-a");

    /* Replica a dies without a word: its lease (2 s) expires, b takes the room over. */
    int64_t t0 = sb_time_mono_ms();
    a->ops->destroy(a);
    *state = NULL;
    struct app g = {0};
    while (sb_time_mono_ms() - t0 < 8000) {
        g = append_on(extra, NULL);
        if (g.code == SB_CODE_NONE)
            break;
        pump(100);
    }
    assert_int_equal(g.code, SB_CODE_NONE);
    assert_int_equal(g.seq, 5);
    fprintf(stderr, "sequencer takeover after the holder died: %lld ms (lease TTL 2 s)\n",
            (long long)(sb_time_mono_ms() - t0));
    struct app d = append_on(extra, "key-before-failover");
    assert_true(d.duplicate);
    assert_int_equal(d.seq, 4);
    struct cp_history_query q = {.room_id = "r1", .limit = 100};
    struct res r = {0};
    S(extra->ops->history_query(extra, &q, NULL, on_history, &r));
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_int_equal(r.n, 5);
    assert_int_equal(r.seq, 1);
}

#define ETCD_ONLY_CASES                                                                            \
    cmocka_unit_test_setup_teardown(test_store_etcd_idempotency, setup, teardown),                 \
        cmocka_unit_test_setup_teardown(test_store_etcd_sequencer_takeover, setup, teardown),

#endif
