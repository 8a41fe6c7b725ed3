/* Cases only the etcd store has (included by test_cp_store.c with CP_TEST_ETCD). */
#ifndef CP_STORE_ETCD_CASES_H
#define CP_STORE_ETCD_CASES_H

#include "cp_keys.h"

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

/* ---- a publish stored by a sequencer that died before answering (docs/failover.md) ---- */

static int64_t redelivered[16];
static size_t n_redelivered;

static void on_redeliver(void *ud, const struct cp_message *m, const struct cp_member *members,
                         size_t n_members)
{
    (void)ud;
    (void)members;
    (void)n_members;
    if (n_redelivered < sizeof(redelivered) / sizeof(redelivered[0]))
        redelivered[n_redelivered++] = m->seq;
}

static struct cp_store *open_store_redeliver(const char *id)
{
    struct cp_store_etcd_config cfg = {.endpoints = endpoint,
                                       .cp_id = id,
                                       .advertise = "127.0.0.1:1",
                                       .lease_ttl_ms = 2000,
                                       .hooks = {.redeliver = on_redeliver}};
    struct cp_store *s = NULL;
    if (cp_store_etcd_open(&cfg, H, &s) != SB_OK)
        return NULL;
    return s;
}

/* POSTs body to path on the test etcd (blocking libcurl call: test only). */
static int etcd_post(const char *path, const char *body)
{
    char url[192];
    snprintf(url, sizeof(url), "%s%s", endpoint, path);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 3000L);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    return rc == CURLE_OK ? 0 : -1;
}

/* Writes, in one txn as a sequencer's commit does, message `id` at `seq` of room r1 with the
 * idempotency record of `key` (and sb/seq when set_last): what a sequencer stored in its last
 * transaction before dying without an answer. */
static void store_as_dead_sequencer(const char *key, const char *id, int64_t seq, bool set_last)
{
    char hk[CP_KEYS_MAX], sk[CP_KEYS_MAX], ik[CP_KEYS_MAX], hash[17], msg[256], rec[256], sv[32];
    assert_int_equal(cp_keys_history("r1", seq, hk, sizeof(hk)), SB_OK);
    cp_keys_seq("r1", sk, sizeof(sk));
    cp_keys_idem_hash(key, hash);
    assert_int_equal(cp_keys_idem("r1", hash, ik, sizeof(ik)), SB_OK);
    snprintf(msg, sizeof(msg),
             "{\"id\":\"%s\",\"seq\":%lld,\"room_id\":\"r1\",\"timestamp\":1,"
             "\"data\":\"{\\\"dead\\\":1}\",\"metadata\":{},\"user_id\":\"alice\"}",
             id, (long long)seq);
    snprintf(rec, sizeof(rec), "{\"k\":\"%s\",\"id\":\"%s\",\"seq\":%lld}", key, id,
             (long long)seq);
    snprintf(sv, sizeof(sv), "%lld", (long long)seq);
    struct cp_etcd_op ops[3];
    memset(ops, 0, sizeof(ops));
    ops[0].type = ops[1].type = ops[2].type = CP_ETCD_OP_PUT;
    ops[0].u.put.key = cp_etcd_json_str(hk);
    ops[0].u.put.value = cp_etcd_json_str(msg);
    ops[1].u.put.key = cp_etcd_json_str(ik);
    ops[1].u.put.value = cp_etcd_json_str(rec);
    ops[2].u.put.key = cp_etcd_json_str(sk);
    ops[2].u.put.value = cp_etcd_json_str(sv);
    struct cp_etcd_txn_req t = {NULL, 0, ops, set_last ? 3 : 2, NULL, 0};
    char *json = NULL;
    assert_int_equal(cp_etcd_json_txn(&t, &json), SB_OK);
    assert_int_equal(etcd_post(CP_ETCD_PATH_TXN, json), 0);
    free(json);
}

static size_t history_count(struct cp_store *s)
{
    struct cp_history_query q = {.room_id = "r1", .limit = 100};
    struct res r = {0};
    S(s->ops->history_query(s, &q, NULL, on_history, &r));
    assert_int_equal(r.code, SB_CODE_NONE);
    return r.n;
}

/* Sequencer a commits message 4 with key K (stored, never answered) and dies; b takes the room
 * over on the re-sent K itself (queued while b loads the room), gets K again once it holds the
 * room: one history entry, the stored id and seq answered, message 4 delivered again. */
static void test_store_etcd_stored_unanswered_then_takeover(void **state)
{
    struct cp_store *a = *state;
    {
        struct cp_store *s = a; /* for create() */
        create(s, "r1", "", "alice", false, 0, SB_CODE_NONE);
    }
    for (int i = 1; i <= 3; i++)
        assert_int_equal(append_on(a, NULL).seq, i);
    store_as_dead_sequencer("node1/c1/42", "m-stored-by-a", 4, true);
    n_redelivered = 0;
    extra = open_store_redeliver("cp-test-b");
    assert_non_null(extra);
    wait_room(extra, "r1");
    a->ops->destroy(a); /* dies without a word: its lease (2 s) expires */
    *state = NULL;
    int64_t t0 = sb_time_mono_ms();
    struct app k = {0}, k2 = {0}, n = {0};
    while (sb_time_mono_ms() - t0 < 8000) {
        /* The first publish b sees starts its claim; all three wait in the queue meanwhile. */
        struct cp_message draft = {.id = "m-resent",
                                   .room_id = "r1",
                                   .user_id = "alice",
                                   .data = "{\"dead\":1}",
                                   .data_len = 10,
                                   .idem_key = "node1/c1/42"};
        struct cp_message other = {
            .id = "m-new", .room_id = "r1", .user_id = "alice", .data = "2", .data_len = 1};
        outstanding += 3;
        extra->ops->message_append(extra, &draft, NULL, 100, on_app, &k);
        extra->ops->message_append(extra, &other, NULL, 100, on_app, &n);
        draft.id = "m-resent-again";
        extra->ops->message_append(extra, &draft, NULL, 100, on_app, &k2);
        settle(extra);
        assert_int_equal(outstanding, 0);
        if (k.code == SB_CODE_NONE)
            break;
        assert_true(k.forward[0] != '\0' || k.code == SB_CODE_UNAVAILABLE);
        pump(100);
    }
    assert_int_equal(k.code, SB_CODE_NONE);
    assert_true(k.duplicate);
    assert_int_equal(k.seq, 4);
    assert_string_equal(k.id, "m-stored-by-a");
    assert_int_equal(k2.code, SB_CODE_NONE);
    assert_true(k2.duplicate);
    assert_int_equal(k2.seq, 4);
    assert_string_equal(k2.id, "m-stored-by-a");
    assert_int_equal(n.code, SB_CODE_NONE);
    assert_false(n.duplicate);
    assert_int_equal(n.seq, 5);
    /* The previous sequencer's last commits were delivered again, in order, 4 among them. */
    bool four = false;
    for (size_t i = 0; i < n_redelivered; i++) {
        four = four || redelivered[i] == 4;
        if (i > 0)
            assert_true(redelivered[i] > redelivered[i - 1]);
    }
    assert_true(four);
    /* Once b holds the room: K again is answered from its memory. */
    struct app late = append_on(extra, "node1/c1/42");
    assert_true(late.duplicate);
    assert_int_equal(late.seq, 4);
    assert_string_equal(late.id, "m-stored-by-a");
    assert_int_equal(history_count(extra), 5);
}

/* A record the holder never saw (written behind its back): the commit's compare on the key
 * fails, the publish is answered from the record, and the rest of the batch is stored. */
static void test_store_etcd_idem_compare_in_commit(void **state)
{
    struct cp_store *s = *state;
    create(s, "r1", "", "alice", false, 0, SB_CODE_NONE);
    assert_int_equal(append_on(s, "first").seq, 1); /* s holds the room now */
    store_as_dead_sequencer("behind-its-back", "m-behind", 1000, false);
    pump(100);
    struct app x = {0}, y = {0};
    struct cp_message draft = {.id = "m-x",
                               .room_id = "r1",
                               .user_id = "alice",
                               .data = "1",
                               .data_len = 1,
                               .idem_key = "behind-its-back"};
    struct cp_message other = {.id = "m-y",
                               .room_id = "r1",
                               .user_id = "alice",
                               .data = "2",
                               .data_len = 1,
                               .idem_key = "fresh"};
    outstanding += 2;
    s->ops->message_append(s, &draft, NULL, 100, on_app, &x);
    s->ops->message_append(s, &other, NULL, 100, on_app, &y);
    settle(s);
    assert_int_equal(outstanding, 0);
    assert_int_equal(x.code, SB_CODE_NONE);
    assert_true(x.duplicate);
    assert_int_equal(x.seq, 1000);
    assert_string_equal(x.id, "m-behind");
    assert_int_equal(y.code, SB_CODE_NONE);
    assert_false(y.duplicate);
    assert_int_equal(y.seq, 2);
}

/* The holder's own commit of seq 2 (key K) landed but its answer was lost (seen in a 3-member
 * etcd losing its leader: the retry on another endpoint failed on the idempotency compare).
 * Simulated by storing seq 2 + K's record + sb/seq = 2 behind the holder's back. The re-sent K
 * is answered from its record, and the next message gets seq 3: seq 2 is never reused, the
 * message stored under it never overwritten. */
static void test_store_etcd_lost_answer_never_reuses_seq(void **state)
{
    struct cp_store *s = *state;
    create(s, "r1", "", "alice", false, 0, SB_CODE_NONE);
    assert_int_equal(append_on(s, "first").seq, 1); /* s holds the room, believes last seq 1 */
    store_as_dead_sequencer("lost-answer", "m-lost", 2, true);
    pump(100);
    struct app y = {0}, x = {0};
    struct cp_message fresh = {.id = "m-y",
                               .room_id = "r1",
                               .user_id = "alice",
                               .data = "2",
                               .data_len = 1,
                               .idem_key = "fresh-after-loss"};
    outstanding += 1;
    s->ops->message_append(s, &fresh, NULL, 100, on_app, &y);
    settle(s);
    assert_int_equal(outstanding, 0);
    assert_int_equal(y.code, SB_CODE_NONE);
    assert_false(y.duplicate);
    assert_int_equal(y.seq, 3);
    struct cp_message again = {.id = "m-x",
                               .room_id = "r1",
                               .user_id = "alice",
                               .data = "1",
                               .data_len = 1,
                               .idem_key = "lost-answer"};
    outstanding += 1;
    s->ops->message_append(s, &again, NULL, 100, on_app, &x);
    settle(s);
    assert_int_equal(x.code, SB_CODE_NONE);
    assert_true(x.duplicate);
    assert_int_equal(x.seq, 2);
    assert_string_equal(x.id, "m-lost");
    assert_int_equal(history_count(s), 3);
}

/* ---- issue 4: etcd only ---- */

/* Every replica observes every change, at the same revisions; a document written and answered
 * on one replica is read at once on the other. */
static void test_store_etcd_observe_on_every_replica(void **state)
{
    struct cp_store *s = *state;
    static struct evlog la, lb;
    memset(&la, 0, sizeof(la));
    memset(&lb, 0, sizeof(lb));
    extra = open_store("cp-test-b");
    assert_non_null(extra);
    s->ops->observe(s, on_event, &la);
    extra->ops->observe(extra, on_event, &lb);
    create(s, "r1", "", "alice", false, 0, SB_CODE_NONE);
    wait_room(extra, "r1");
    assert_int_equal(append_on(s, NULL).seq, 1);
    struct docs w = doc_put(s, "presence/alice", "{\"status\":\"busy\"}", 0);
    assert_int_equal(w.code, SB_CODE_NONE);
    struct docs g = doc_get(extra, "presence/alice"); /* linearizable: no wait */
    assert_true(g.found);
    assert_int_equal(g.versions[0], w.versions[0]);
    struct msg_edit e = {.data = "{\"n\":2}"};
    struct msg_res m;
    {
        struct cp_store *s2 = s;
        s = extra;
        S(s->ops->message_update(s, "r1", "m-new", edit_msg, &e, on_message, &m));
        s = s2;
    }
    assert_int_equal(m.code, SB_CODE_NONE);
    struct cp_doc_op del = {.key = "presence/alice", .expect = w.versions[0]};
    S(s->ops->doc_write(s, &del, 1, on_write, &w));
    assert_int_equal(w.code, SB_CODE_NONE);
    for (int i = 0; i < 100 && (la.n < 6 || lb.n < 6); i++)
        pump(20);
    assert_int_equal(la.last_rev, lb.last_rev);
    static const char *const want[] = {"ROOM r1 - name= archived=0",
                                       "MEMBER_ADDED r1 alice owner",
                                       "MESSAGE r1 - seq=1 data={\"n\":1}",
                                       "DOC - - presence/alice={\"status\":\"busy\"} v>0",
                                       "MESSAGE_UPDATE r1 - seq=1 data={\"n\":2}",
                                       "DOC - - presence/alice=NULL v0",
                                       NULL};
    expect_events_in(&la, want);
    expect_events_in(&lb, want);
    s->ops->observe(s, NULL, NULL);
    extra->ops->observe(extra, NULL, NULL);
}

/* A concurrent change between the read and the write: the compare fails and the edit runs
 * again on the fresh record; a record that keeps changing answers UNAVAILABLE "busy". */
static int intrusions; /* how many edits write behind the store's back (-1: every one) */

static void put_behind(const char *key, const char *value)
{
    struct cp_etcd_put_req p = {.key = cp_etcd_json_str(key), .value = cp_etcd_json_str(value)};
    char *json = NULL;
    assert_int_equal(cp_etcd_json_put(&p, &json), SB_OK);
    assert_int_equal(etcd_post(CP_ETCD_PATH_PUT, json), 0);
    free(json);
}

static void edit_room_intruded(void *arg, struct cp_room *room, struct cp_status *st)
{
    (void)st;
    int *calls = arg;
    (*calls)++;
    char desc[64];
    snprintf(desc, sizeof(desc), "%s+edit", room->description);
    free(room->description);
    room->description = strdup(desc);
    if (intrusions != 0) {
        if (intrusions > 0)
            intrusions--;
        char rec[256];
        snprintf(rec, sizeof(rec),
                 "{\"name\":\"n\",\"description\":\"intruder%d\",\"owner_id\":\"alice\","
                 "\"private\":false,\"archived\":false,\"max_members\":0,\"created_at\":1,"
                 "\"updated_at\":1,\"metadata\":{}}",
                 *calls);
        put_behind("sb/rooms/r1", rec);
    }
}

static void edit_msg_intruded(void *arg, struct cp_message *m, struct cp_status *st)
{
    (void)st;
    int *calls = arg;
    (*calls)++;
    free(m->ext);
    m->ext = strdup("{\"reactions\":{}}");
    if (intrusions != 0) {
        if (intrusions > 0)
            intrusions--;
        char hk[CP_KEYS_MAX], rec[256];
        cp_keys_history("r1", 1, hk, sizeof(hk));
        snprintf(rec, sizeof(rec),
                 "{\"id\":\"m-new\",\"seq\":1,\"room_id\":\"r1\",\"timestamp\":1,"
                 "\"data\":\"{\\\"intruder\\\":%d}\",\"metadata\":{}}",
                 *calls);
        put_behind(hk, rec);
    }
}

static void test_store_etcd_update_conflicts_rerun_the_edit(void **state)
{
    struct cp_store *s = *state;
    create(s, "r1", "", "alice", false, 0, SB_CODE_NONE);
    int calls = 0;
    struct room_res rr;
    intrusions = 1;
    S(s->ops->room_update(s, "r1", edit_room_intruded, &calls, on_room_full, &rr));
    assert_int_equal(rr.code, SB_CODE_NONE);
    assert_int_equal(calls, 2);
    assert_string_equal(rr.name, "n"); /* the intruder's record, edited again */
    S(s->ops->room_get(s, "r1", on_room_full, &rr));
    assert_string_equal(rr.name, "n");
    calls = 0;
    intrusions = -1;
    S(s->ops->room_update(s, "r1", edit_room_intruded, &calls, on_room_full, &rr));
    assert_int_equal(rr.code, SB_CODE_UNAVAILABLE);
    assert_int_equal(calls, 8);

    assert_int_equal(append_on(s, NULL).seq, 1);
    calls = 0;
    intrusions = 1;
    struct msg_res m;
    S(s->ops->message_update(s, "r1", "m-new", edit_msg_intruded, &calls, on_message, &m));
    assert_int_equal(m.code, SB_CODE_NONE);
    assert_int_equal(calls, 2);
    assert_string_equal(m.data, "{\"intruder\":1}");
    assert_string_equal(m.ext, "{\"reactions\":{}}");
    calls = 0;
    intrusions = -1;
    S(s->ops->message_update(s, "r1", "m-new", edit_msg_intruded, &calls, on_message, &m));
    assert_int_equal(m.code, SB_CODE_UNAVAILABLE);
    assert_int_equal(calls, 8);
    intrusions = 0;
    assert_int_equal(append_on(s, NULL).seq, 2); /* the sequencer never noticed */
}

static void noop_room_edit(void *arg, struct cp_room *room, struct cp_status *st)
{
    (void)arg;
    (void)room;
    (void)st;
}

static void noop_msg_edit(void *arg, struct cp_message *m, struct cp_status *st)
{
    (void)arg;
    (void)m;
    (void)st;
}

/* etcd out of reach: every new op answers UNAVAILABLE. */
static void test_store_etcd_unreachable_is_unavailable(void **state)
{
    struct cp_store *s = *state;
    create(s, "r1", "", "alice", false, 0, SB_CODE_NONE);
    cp_store_etcd_stop(s);
    struct docs d;
    S(s->ops->doc_get(s, "bans/r1/x", on_doc, &d));
    assert_int_equal(d.code, SB_CODE_UNAVAILABLE);
    S(s->ops->doc_list(s, "bans/", on_docs, &d));
    assert_int_equal(d.code, SB_CODE_UNAVAILABLE);
    assert_int_equal(doc_put(s, "bans/r1/x", "{}", -1).code, SB_CODE_UNAVAILABLE);
    struct room_res rr;
    S(s->ops->room_update(s, "r1", noop_room_edit, NULL, on_room_full, &rr));
    assert_int_equal(rr.code, SB_CODE_UNAVAILABLE);
    struct res r = {0};
    S(s->ops->member_set_role(s, "r1", "alice", CP_ROLE_ADMIN, on_role, &r));
    assert_int_equal(r.code, SB_CODE_UNAVAILABLE);
    struct msg_res m;
    S(s->ops->message_update(s, "r1", "m1", noop_msg_edit, NULL, on_message, &m));
    assert_int_equal(m.code, SB_CODE_UNAVAILABLE);
    S(s->ops->history_trim(s, "r1", 5, on_count, &r));
    assert_int_equal(r.code, SB_CODE_UNAVAILABLE);
}

/* ---- write markers: a retried txn that had landed is answered as applied ---- */

struct body {
    char buf[8192];
    size_t n;
};

static size_t keep_body(void *p, size_t sz, size_t n, void *ud)
{
    struct body *b = ud;
    size_t len = sz * n;
    if (b->n + len < sizeof(b->buf)) {
        memcpy(b->buf + b->n, p, len);
        b->n += len;
        b->buf[b->n] = '\0';
    }
    return len;
}

/* The newest write marker of replica cp-test-a (its key), "" when none. */
static void newest_marker(char *out, size_t cap)
{
    char end[64];
    size_t en;
    const char *prefix = "sb/txn/cp-test-a/";
    assert_int_equal(cp_keys_range_end(prefix, strlen(prefix), end, sizeof(end), &en), SB_OK);
    struct cp_etcd_range_req q = {.key = cp_etcd_json_str(prefix),
                                  .range_end = {end, en},
                                  .limit = 1,
                                  .descend = true,
                                  .keys_only = true};
    char *json = NULL;
    assert_int_equal(cp_etcd_json_range(&q, &json), SB_OK);
    char url[192];
    snprintf(url, sizeof(url), "%s%s", endpoint, CP_ETCD_PATH_RANGE);
    struct body b = {.n = 0};
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 3000L);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_cleanup(h);
    free(json);
    struct cp_etcd_result r;
    assert_int_equal(cp_etcd_json_parse_result(b.buf, b.n, &r), SB_OK);
    snprintf(out, cap, "%s", r.n_kvs ? r.kvs[0].key : "");
    cp_etcd_json_result_fini(&r);
}

/* The next marker: the newest one plus one (16 hex digits). */
static void next_marker(const char *cur, char *out, size_t cap)
{
    const char *hex = strrchr(cur, '/') + 1;
    unsigned long long n = strtoull(hex, NULL, 16);
    snprintf(out, cap, "%.*s%016llx", (int)(hex - cur), cur, n + 1);
}

static void test_store_etcd_retried_write_that_landed(void **state)
{
    struct cp_store *s = *state;
    struct docs w = doc_put(s, "invites/i1", "{}", 0);
    assert_int_equal(w.code, SB_CODE_NONE);
    char cur[128], next[128];
    newest_marker(cur, sizeof(cur));
    assert_true(strncmp(cur, "sb/txn/cp-test-a/", 17) == 0);
    /* A blind write has no compare: no marker. */
    assert_int_equal(doc_put(s, "invites/i2", "{}", -1).code, SB_CODE_NONE);
    char again[128];
    newest_marker(again, sizeof(again));
    assert_string_equal(again, cur);
    /* Pretend the next write already landed once (its marker exists): its compare fails,
     * and it is answered as applied, not as a conflict. */
    next_marker(cur, next, sizeof(next));
    put_behind(next, "");
    w = doc_put(s, "invites/i1", "{\"v\":2}", 0);
    assert_int_equal(w.code, SB_CODE_NONE);
    assert_true(w.versions[0] > 0);
    /* Without a marker the same failed compare is a conflict. */
    w = doc_put(s, "invites/i1", "{\"v\":3}", 0);
    assert_int_equal(w.code, SB_CODE_CONFLICT);
}

/* A re-list (after a compacted watch start) rebuilds the cache silently: nothing old is
 * reported again, and changes after it are reported once. */
static void test_store_etcd_relist_reports_nothing_old(void **state)
{
    struct cp_store *s = *state;
    create(s, "r1", "", "alice", false, 0, SB_CODE_NONE);
    assert_int_equal(append_on(s, NULL).seq, 1);
    assert_int_equal(doc_put(s, "bans/r1/bob", "{}", 0).code, SB_CODE_NONE);
    observe_start(s);
    cp_store_etcd_relist(s);
    pump(300);
    struct res r = {0};
    S(s->ops->room_get(s, "r1", on_room, &r));
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_int_equal(r.member_count, 1);
    assert_int_equal(r.seq, 1);
    EVENTS(NULL);
    assert_int_equal(doc_put(s, "bans/r1/carol", "{}", 0).code, SB_CODE_NONE);
    assert_int_equal(append_on(s, NULL).seq, 2);
    EVENTS("DOC - - bans/r1/carol={} v>0", "MESSAGE r1 - seq=2 data={\"n\":1}");
    s->ops->observe(s, NULL, NULL);
}

#define ETCD_ONLY_CASES                                                                            \
    cmocka_unit_test_setup_teardown(test_store_etcd_idempotency, setup, teardown),                 \
        cmocka_unit_test_setup_teardown(test_store_etcd_sequencer_takeover, setup, teardown),      \
        cmocka_unit_test_setup_teardown(test_store_etcd_stored_unanswered_then_takeover, setup,    \
                                        teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_store_etcd_idem_compare_in_commit, setup, teardown),  \
        cmocka_unit_test_setup_teardown(test_store_etcd_lost_answer_never_reuses_seq, setup,       \
                                        teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_store_etcd_observe_on_every_replica, setup,           \
                                        teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_store_etcd_update_conflicts_rerun_the_edit, setup,    \
                                        teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_store_etcd_unreachable_is_unavailable, setup,         \
                                        teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_store_etcd_retried_write_that_landed, setup,          \
                                        teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_store_etcd_relist_reports_nothing_old, setup,         \
                                        teardown),

#endif
