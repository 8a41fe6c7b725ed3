/* The Store suite: rooms CRUD, membership and the user index, list paging and filters,
 * sequencing, history trimming and member checks, run through the Store vtable. Built twice:
 * test_cp_store runs it on the memory store (which completes inline); test_cp_store_etcd
 * (CP_TEST_ETCD) runs the same cases on the etcd store against a real etcd started by the test
 * (tests/support/etcd.sh), draining the store's handoff until each callback has fired, plus
 * etcd-only cases: idempotency keys and sequencer takeover between two replicas. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_store.h"
#include "cp_store_memory.h"
#ifdef CP_TEST_ETCD
#include "cp_store_etcd_test.h"
#else
static int outstanding;
#define S(expr)                                                                                    \
    do {                                                                                           \
        outstanding++;                                                                             \
        expr;                                                                                      \
        assert_int_equal(outstanding, 0);                                                          \
    } while (0)
#endif

struct res {
    enum sb_code code;
    char ids[64][64];
    size_t n;
    bool more, added, gap;
    int64_t seq;
    int32_t member_count;
    bool duplicate;
};

static void on_room(void *arg, const struct cp_status *st, const struct cp_room *room)
{
    struct res *r = arg;
    outstanding--;
    r->code = st->code;
    r->n = 0;
    if (room != NULL) {
        strcpy(r->ids[r->n++], room->id);
        r->member_count = room->member_count;
        r->seq = room->last_seq;
    }
}

static void on_rooms(void *arg, const struct cp_status *st, const struct cp_room *const *rooms,
                     size_t n, bool more)
{
    struct res *r = arg;
    outstanding--;
    r->code = st->code;
    r->n = n;
    r->more = more;
    for (size_t i = 0; i < n; i++)
        strcpy(r->ids[i], rooms[i]->id);
}

static void on_members(void *arg, const struct cp_status *st, const struct cp_member *m, size_t n)
{
    struct res *r = arg;
    outstanding--;
    r->code = st->code;
    r->n = n;
    for (size_t i = 0; i < n; i++)
        strcpy(r->ids[i], m[i].user_id);
}

static void on_ids(void *arg, const struct cp_status *st, const char *const *ids, size_t n)
{
    struct res *r = arg;
    outstanding--;
    r->code = st->code;
    r->n = n;
    for (size_t i = 0; i < n; i++)
        strcpy(r->ids[i], ids[i]);
}

static void on_join(void *arg, const struct cp_status *st, const struct cp_join_result *j)
{
    struct res *r = arg;
    outstanding--;
    r->code = st->code;
    if (j != NULL) {
        r->added = j->added;
        r->n = j->n_members;
        r->member_count = j->room->member_count;
    }
}

static void on_append(void *arg, const struct cp_status *st, const struct cp_append_result *a)
{
    struct res *r = arg;
    outstanding--;
    r->code = st->code;
    if (a != NULL) {
        r->seq = a->message->seq;
        r->n = a->n_members;
        r->duplicate = a->duplicate;
        snprintf(r->ids[0], sizeof(r->ids[0]), "%s", a->message->id);
    }
}

static void on_history(void *arg, const struct cp_status *st, const struct cp_history_result *h)
{
    struct res *r = arg;
    outstanding--;
    r->code = st->code;
    if (h != NULL) {
        r->n = h->n_messages;
        r->gap = h->gap;
        r->seq = h->n_messages ? h->messages[0]->seq : 0;
    }
}

#ifndef CP_TEST_ETCD
static int setup(void **state)
{
    *state = cp_store_memory_create();
    return *state == NULL;
}

static int teardown(void **state)
{
    struct cp_store *s = *state;
    s->ops->destroy(s);
    return 0;
}
#endif

static void create(struct cp_store *s, const char *id, const char *name, const char *owner,
                   bool priv, int max, enum sb_code expect)
{
    struct cp_room room = {.id = (char *)id,
                           .name = (char *)name,
                           .description = "",
                           .owner_id = (char *)owner,
                           .is_private = priv,
                           .max_members = max};
    struct res r = {0};
    S(s->ops->room_create(s, &room, on_room, &r));
    assert_int_equal(r.code, expect);
}

static struct res join(struct cp_store *s, const char *room, const char *user, bool client,
                       bool autoc)
{
    struct cp_join_req req = {.room_id = room,
                              .user_id = user,
                              .role = CP_ROLE_MEMBER,
                              .deny_private = client,
                              .auto_create = autoc};
    struct res r = {0};
    S(s->ops->member_add(s, &req, on_join, &r));
    return r;
}

static void test_store_rooms_crud(void **state)
{
    struct cp_store *s = *state;
    struct res r = {0};
    create(s, "r1", "General", "alice", false, 0, SB_CODE_NONE);
    create(s, "r1", "Again", "", false, 0, SB_CODE_ROOM_ALREADY_EXISTS);
    S(s->ops->room_get(s, "r1", on_room, &r));
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_int_equal(r.member_count, 1); /* the owner */
    S(s->ops->room_get(s, "nope", on_room, &r));
    assert_int_equal(r.code, SB_CODE_ROOM_NOT_FOUND);
    S(s->ops->room_delete(s, "r1", on_members, &r));
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.ids[0], "alice");
    S(s->ops->room_delete(s, "r1", on_members, &r));
    assert_int_equal(r.code, SB_CODE_ROOM_NOT_FOUND);
    S(s->ops->user_rooms(s, "alice", on_ids, &r));
    assert_int_equal(r.n, 0);
}

static void test_store_membership(void **state)
{
    struct cp_store *s = *state;
    create(s, "r1", "", "", false, 2, SB_CODE_NONE);
    create(s, "priv", "", "", true, 0, SB_CODE_NONE);
    struct res r = join(s, "r1", "bob", true, false);
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_true(r.added);
    r = join(s, "r1", "bob", true, false);
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_false(r.added);
    r = join(s, "r1", "carol", false, false);
    assert_true(r.added);
    assert_int_equal(r.member_count, 2);
    r = join(s, "r1", "dave", false, false);
    assert_int_equal(r.code, SB_CODE_ROOM_FULL);
    r = join(s, "priv", "bob", true, false);
    assert_int_equal(r.code, SB_CODE_PERMISSION_DENIED);
    r = join(s, "priv", "bob", false, false); /* the backend may add to private rooms */
    assert_int_equal(r.code, SB_CODE_NONE);
    r = join(s, "priv", "bob", true, false); /* and then the client join is an ack */
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_false(r.added);
    r = join(s, "ghost", "bob", true, false);
    assert_int_equal(r.code, SB_CODE_ROOM_NOT_FOUND);
    r = join(s, "ghost", "bob", true, true);
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_true(r.added);

    struct res q = {0};
    S(s->ops->user_rooms(s, "bob", on_ids, &q));
    assert_int_equal(q.n, 3);
    assert_string_equal(q.ids[0], "ghost");
    assert_string_equal(q.ids[1], "priv");
    assert_string_equal(q.ids[2], "r1");
    S(s->ops->user_peers(s, "bob", on_ids, &q));
    assert_int_equal(q.n, 1);
    assert_string_equal(q.ids[0], "carol");
    S(s->ops->members_list(s, "r1", on_members, &q));
    assert_int_equal(q.n, 2);
    assert_string_equal(q.ids[0], "bob");
    S(s->ops->member_remove(s, "r1", "bob", on_members, &q));
    assert_int_equal(q.code, SB_CODE_NONE);
    assert_int_equal(q.n, 1);
    S(s->ops->member_remove(s, "r1", "bob", on_members, &q));
    assert_int_equal(q.code, SB_CODE_NOT_ROOM_MEMBER);
    S(s->ops->member_remove(s, "zzz", "bob", on_members, &q));
    assert_int_equal(q.code, SB_CODE_ROOM_NOT_FOUND);
    S(s->ops->user_peers(s, "bob", on_ids, &q));
    assert_int_equal(q.n, 0);
}

static void test_store_list_paging(void **state)
{
    struct cp_store *s = *state;
    char id[16];
    for (int i = 9; i >= 0; i--) {
        snprintf(id, sizeof(id), "room%02d", i);
        create(s, id, i % 2 ? "odd" : "even", "", false, 0, SB_CODE_NONE);
    }
    struct cp_room_query q = {.limit = 4};
    struct res r = {0};
    char seen[10][64];
    size_t n_seen = 0;
    char token[64] = "";
    do {
        q.after_id = token[0] ? token : NULL;
        S(s->ops->room_list(s, &q, on_rooms, &r));
        assert_int_equal(r.code, SB_CODE_NONE);
        for (size_t i = 0; i < r.n; i++)
            strcpy(seen[n_seen++], r.ids[i]);
        if (r.more)
            strcpy(token, r.ids[r.n - 1]);
    } while (r.more);
    assert_int_equal(n_seen, 10);
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "room%02d", i);
        assert_string_equal(seen[i], id);
    }
    q.name_prefix = "od";
    q.after_id = NULL;
    q.limit = 5;
    S(s->ops->room_list(s, &q, on_rooms, &r));
    assert_int_equal(r.n, 5);
    assert_false(r.more);
    assert_string_equal(r.ids[0], "room01");
    q.limit = 2;
    S(s->ops->room_list(s, &q, on_rooms, &r));
    assert_int_equal(r.n, 2);
    assert_true(r.more);
}

static void test_store_sequencing_and_history(void **state)
{
    struct cp_store *s = *state;
    create(s, "r1", "", "alice", false, 0, SB_CODE_NONE);
    struct cp_message draft = {
        .id = "m-x", .room_id = "r1", .user_id = "alice", .data = "{}", .data_len = 2};
    struct res r = {0};
    for (int i = 1; i <= 20; i++) {
        S(s->ops->message_append(s, &draft, "alice", 5, on_append, &r));
        assert_int_equal(r.code, SB_CODE_NONE);
        assert_int_equal(r.seq, i);
        assert_int_equal(r.n, 1);
    }
    S(s->ops->message_append(s, &draft, "mallory", 5, on_append, &r));
    assert_int_equal(r.code, SB_CODE_NOT_ROOM_MEMBER);
    S(s->ops->message_append(s, &draft, NULL, 5, on_append, &r)); /* backend: no member check */
    assert_int_equal(r.seq, 21);
    draft.room_id = "nope";
    S(s->ops->message_append(s, &draft, NULL, 5, on_append, &r));
    assert_int_equal(r.code, SB_CODE_ROOM_NOT_FOUND);

    struct cp_history_query q = {.room_id = "r1", .limit = 100};
    S(s->ops->history_query(s, &q, NULL, on_history, &r));
    assert_int_equal(r.n, 5);
    assert_int_equal(r.seq, 17);
    q.has_after_seq = true;
    q.after_seq = 10;
    S(s->ops->history_query(s, &q, "alice", on_history, &r));
    assert_true(r.gap);
    q.after_seq = 16;
    S(s->ops->history_query(s, &q, "alice", on_history, &r));
    assert_false(r.gap);
    assert_int_equal(r.n, 5);
    S(s->ops->history_query(s, &q, "mallory", on_history, &r));
    assert_int_equal(r.code, SB_CODE_NOT_ROOM_MEMBER);
    struct res g = {0};
    S(s->ops->room_get(s, "r1", on_room, &g));
    assert_int_equal(g.seq, 21);
}

/* ---------------------------------------------------------------- issue 4 (both stores) */

struct docs {
    enum sb_code code;
    size_t n;
    char keys[16][64];
    char vals[16][128];
    int64_t versions[16];
    bool found;
};

static void on_doc(void *arg, const struct cp_status *st, const struct cp_doc *d)
{
    struct docs *r = arg;
    outstanding--;
    memset(r, 0, sizeof(*r));
    r->code = st->code;
    r->found = d != NULL;
    if (d != NULL) {
        r->n = 1;
        snprintf(r->keys[0], sizeof(r->keys[0]), "%s", d->key);
        snprintf(r->vals[0], sizeof(r->vals[0]), "%s", d->value);
        assert_int_equal(d->len, strlen(d->value));
        r->versions[0] = d->version;
    }
}

static void on_docs(void *arg, const struct cp_status *st, const struct cp_doc *d, size_t n)
{
    struct docs *r = arg;
    outstanding--;
    memset(r, 0, sizeof(*r));
    r->code = st->code;
    r->n = n;
    for (size_t i = 0; i < n && i < 16; i++) {
        snprintf(r->keys[i], sizeof(r->keys[i]), "%s", d[i].key);
        snprintf(r->vals[i], sizeof(r->vals[i]), "%s", d[i].value);
        r->versions[i] = d[i].version;
    }
}

static void on_write(void *arg, const struct cp_status *st, const int64_t *v, size_t n)
{
    struct docs *r = arg;
    outstanding--;
    memset(r, 0, sizeof(*r));
    r->code = st->code;
    r->n = n;
    for (size_t i = 0; i < n && i < 16; i++)
        r->versions[i] = v[i];
}

/* The observer: every event as one line "KIND room user detail" (arg: a struct evlog, NULL:
 * the default one). */
struct evlog {
    char lines[64][160];
    size_t n;
    int64_t last_rev;
};

static struct evlog evs;

static void on_event(void *arg, const struct cp_store_event *ev)
{
    struct evlog *l = arg != NULL ? arg : &evs;
    static const char *const kinds[] = {
        "MESSAGE", "MESSAGE_UPDATE", "MEMBER_ADDED", "MEMBER_REMOVED",
        "ROOM",    "ROOM_DELETED",   "DOC"};
    assert_true(ev->revision >= l->last_rev); /* etcd: one revision per txn */
    l->last_rev = ev->revision;
    char detail[96] = "";
    switch (ev->kind) {
    case CP_STORE_EV_MESSAGE:
    case CP_STORE_EV_MESSAGE_UPDATE:
        snprintf(detail, sizeof(detail), "seq=%lld data=%.*s%s%s", (long long)ev->message->seq,
                 (int)ev->message->data_len, ev->message->data ? ev->message->data : "",
                 ev->message->deleted ? " deleted" : "", ev->message->ext ? ev->message->ext : "");
        break;
    case CP_STORE_EV_MEMBER_ADDED:
        snprintf(detail, sizeof(detail), "%s", cp_role_name(ev->member->role));
        break;
    case CP_STORE_EV_ROOM:
        snprintf(detail, sizeof(detail), "name=%s archived=%d", ev->room->name,
                 (int)ev->room->archived);
        break;
    case CP_STORE_EV_DOC:
        snprintf(detail, sizeof(detail), "%s=%s v%s", ev->doc->key,
                 ev->doc->value ? ev->doc->value : "NULL", ev->doc->version ? ">0" : "0");
        break;
    default:
        break;
    }
    if (l->n < sizeof(l->lines) / sizeof(l->lines[0]))
        snprintf(l->lines[l->n++], sizeof(l->lines[0]), "%s %s %s %s", kinds[ev->kind],
                 ev->room_id ? ev->room_id : "-", ev->user_id ? ev->user_id : "-", detail);
}

static void observe_start(struct cp_store *s)
{
    memset(&evs, 0, sizeof(evs));
    s->ops->observe(s, on_event, NULL);
}

/* Asserts the events of `l` since the last call are exactly `want` (NULL-terminated). */
static void expect_events_in(struct evlog *l, const char *const *want)
{
    size_t n = 0;
    while (want[n] != NULL)
        n++;
    for (size_t i = 0; i < l->n || i < n; i++) {
        const char *got = i < l->n ? l->lines[i] : "(none)";
        const char *w = i < n ? want[i] : "(none)";
        if (strcmp(got, w) != 0)
            fail_msg("event %zu: got \"%s\", want \"%s\"", i, got, w);
    }
    l->n = 0;
}

static void expect_events(const char *const *want)
{
    expect_events_in(&evs, want);
}

#define EVENTS(...) expect_events((const char *const[]){__VA_ARGS__, NULL})

static struct docs doc_put(struct cp_store *s, const char *key, const char *value, int64_t expect)
{
    struct cp_doc_op op = {.key = key, .value = value, .expect = expect};
    struct docs r;
    S(s->ops->doc_write(s, &op, 1, on_write, &r));
    return r;
}

static struct docs doc_get(struct cp_store *s, const char *key)
{
    struct docs r;
    S(s->ops->doc_get(s, key, on_doc, &r));
    return r;
}

static struct docs doc_list(struct cp_store *s, const char *prefix)
{
    struct docs r;
    S(s->ops->doc_list(s, prefix, on_docs, &r));
    return r;
}

/* A publish's idempotency key, per room: a repeat answers the first message (id and seq) as a
 * duplicate and stores nothing; another key, or the same key in another room, is new. */
static void test_store_publish_idempotency(void **state)
{
    struct cp_store *s = *state;
    create(s, "r1", "", "alice", false, 0, SB_CODE_NONE);
    create(s, "r2", "", "alice", false, 0, SB_CODE_NONE);
    struct cp_message draft = {.id = "m-first",
                               .room_id = "r1",
                               .user_id = "alice",
                               .data = "1",
                               .data_len = 1,
                               .idem_key = "key one"};
    struct res r = {0};
    S(s->ops->message_append(s, &draft, NULL, 10, on_append, &r));
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_false(r.duplicate);
    assert_int_equal(r.seq, 1);
    draft.id = "m-again";
    S(s->ops->message_append(s, &draft, NULL, 10, on_append, &r));
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_true(r.duplicate);
    assert_int_equal(r.seq, 1);
    assert_string_equal(r.ids[0], "m-first");
    draft.id = "m-other";
    draft.idem_key = "key two";
    S(s->ops->message_append(s, &draft, NULL, 10, on_append, &r));
    assert_false(r.duplicate);
    assert_int_equal(r.seq, 2);
    draft.id = "m-r2";
    draft.room_id = "r2";
    draft.idem_key = "key one";
    S(s->ops->message_append(s, &draft, NULL, 10, on_append, &r));
    assert_false(r.duplicate);
    assert_int_equal(r.seq, 1);
    /* nothing was stored by the repeat */
    struct cp_history_query q = {.room_id = "r1", .limit = 100};
    S(s->ops->history_query(s, &q, NULL, on_history, &r));
    assert_int_equal(r.n, 2);
}

static void test_store_docs_versions_and_conflicts(void **state)
{
    struct cp_store *s = *state;
    observe_start(s);
    struct docs r = doc_get(s, "bans/r1/alice");
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_false(r.found);
    r = doc_put(s, "bans/r1/alice", "{\"until\":5}", 0); /* create: must be absent */
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_int_equal(r.n, 1);
    int64_t v1 = r.versions[0];
    assert_true(v1 > 0);
    r = doc_get(s, "bans/r1/alice");
    assert_true(r.found);
    assert_string_equal(r.keys[0], "bans/r1/alice");
    assert_string_equal(r.vals[0], "{\"until\":5}");
    assert_int_equal(r.versions[0], v1);
    r = doc_put(s, "bans/r1/alice", "{}", 0); /* exists now */
    assert_int_equal(r.code, SB_CODE_CONFLICT);
    r = doc_put(s, "bans/r1/alice", "{\"until\":6}", v1); /* compare and swap */
    assert_int_equal(r.code, SB_CODE_NONE);
    int64_t v2 = r.versions[0];
    assert_true(v2 > v1);
    r = doc_put(s, "bans/r1/alice", "{\"until\":7}", v1); /* stale */
    assert_int_equal(r.code, SB_CODE_CONFLICT);
    r = doc_put(s, "bans/r1/alice", "{\"until\":8}", -1); /* blind */
    assert_int_equal(r.code, SB_CODE_NONE);
    int64_t v3 = r.versions[0];
    assert_true(v3 > v2);
    r = doc_put(s, "bans/r1/nobody", NULL, v3); /* delete expecting a version: absent */
    assert_int_equal(r.code, SB_CODE_CONFLICT);

    /* All or nothing: one failed expectation, nothing written. */
    struct cp_doc_op two[] = {{.key = "invites/i1", .value = "{\"room\":\"r1\"}", .expect = 0},
                              {.key = "bans/r1/alice", .value = "{}", .expect = v1}};
    S(s->ops->doc_write(s, two, 2, on_write, &r));
    assert_int_equal(r.code, SB_CODE_CONFLICT);
    assert_false(doc_get(s, "invites/i1").found);
    two[1].expect = v3;
    S(s->ops->doc_write(s, two, 2, on_write, &r));
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_int_equal(r.n, 2);
    assert_true(r.versions[0] > v3);
    assert_true(r.versions[1] >= r.versions[0]);
    int64_t v4 = r.versions[0];
    assert_int_equal(doc_get(s, "invites/i1").versions[0], v4);

    /* Deletes answer version 0; a deleted key is absent (expect 0 holds again). */
    struct cp_doc_op del = {.key = "invites/i1", .value = NULL, .expect = v4};
    S(s->ops->doc_write(s, &del, 1, on_write, &r));
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_int_equal(r.versions[0], 0);
    assert_false(doc_get(s, "invites/i1").found);
    assert_int_equal(doc_put(s, "invites/i1", "{}", 0).code, SB_CODE_NONE);
    EVENTS("DOC - - bans/r1/alice={\"until\":5} v>0", "DOC - - bans/r1/alice={\"until\":6} v>0",
           "DOC - - bans/r1/alice={\"until\":8} v>0", "DOC - - invites/i1={\"room\":\"r1\"} v>0",
           "DOC - - bans/r1/alice={} v>0", "DOC - - invites/i1=NULL v0",
           "DOC - - invites/i1={} v>0");
    s->ops->observe(s, NULL, NULL);
}

static void test_store_docs_list_and_prefix_delete(void **state)
{
    struct cp_store *s = *state;
    const char *keys[] = {"subs/news/bob",      "subs/news/alice",      "subs/news.*/carol",
                          "subs/newsroom/dave", "user_subs/alice/news", "subs/new/erin"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        assert_int_equal(doc_put(s, keys[i], "{\"f\":null}", 0).code, SB_CODE_NONE);
    struct docs r = doc_list(s, "subs/news/");
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.keys[0], "subs/news/alice"); /* key order */
    assert_string_equal(r.keys[1], "subs/news/bob");
    assert_string_equal(r.vals[0], "{\"f\":null}");
    assert_true(r.versions[0] > 0);
    r = doc_list(s, "subs/");
    assert_int_equal(r.n, 5);
    r = doc_list(s, "subs/news");
    assert_int_equal(r.n, 4);
    assert_int_equal(doc_list(s, "nothing/").n, 0);
    assert_int_equal(doc_list(s, "").n, 6);

    /* In order: the prefix delete, then a put under it (kept), then a put deleted again by a
     * later single delete, and a key written twice (the last wins). */
    observe_start(s);
    struct cp_doc_op ops[] = {
        {.key = "subs/news/", .prefix = true, .expect = 5},
        {.key = "subs/news/bob", .value = "{\"v\":2}", .expect = -1},
        {.key = "subs/news/zed", .value = "{\"v\":2}", .expect = -1},
        {.key = "subs/news/zed", .value = NULL, .expect = -1},
        {.key = "subs/newsroom/dave", .value = "{\"v\":1}", .expect = -1},
        {.key = "subs/newsroom/dave", .value = "{\"v\":2}", .expect = -1},
    };
    S(s->ops->doc_write(s, ops, 6, on_write, &r));
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_int_equal(r.n, 6);
    assert_int_equal(r.versions[0], 0);
    assert_true(r.versions[1] > 0);
    assert_int_equal(r.versions[3], 0);
    assert_true(r.versions[5] > 0);
    r = doc_list(s, "subs/news/");
    assert_int_equal(r.n, 1);
    assert_string_equal(r.keys[0], "subs/news/bob");
    assert_string_equal(r.vals[0], "{\"v\":2}");
    r = doc_get(s, "subs/newsroom/dave");
    assert_string_equal(r.vals[0], "{\"v\":2}");
    assert_int_equal(doc_list(s, "subs/").n, 4);
    /* Final states reported in order (the memory store also reports intermediate states). */
    bool alice_gone = false, bob_put = false, dave_put = false;
    for (size_t i = 0; i < evs.n; i++) {
        alice_gone |= strcmp(evs.lines[i], "DOC - - subs/news/alice=NULL v0") == 0;
        bob_put |= strcmp(evs.lines[i], "DOC - - subs/news/bob={\"v\":2} v>0") == 0;
        dave_put |= strcmp(evs.lines[i], "DOC - - subs/newsroom/dave={\"v\":2} v>0") == 0;
    }
    assert_true(alice_gone && bob_put && dave_put);
    assert_string_equal(evs.lines[evs.n - 1], "DOC - - subs/newsroom/dave={\"v\":2} v>0");
    s->ops->observe(s, NULL, NULL);

    struct cp_doc_op all = {.key = "subs/", .prefix = true, .expect = -1};
    S(s->ops->doc_write(s, &all, 1, on_write, &r));
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_int_equal(doc_list(s, "").n, 1); /* user_subs/alice/news */
    S(s->ops->doc_write(s, NULL, 0, on_write, &r));
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_int_equal(r.n, 0);
}

/* Both stores take the same document keys and at most 64 ops in one write. */
static void test_store_doc_keys_and_limits(void **state)
{
    struct cp_store *s = *state;
    const char *bad[] = {"",        "Bans/x",  "bans",    "bans/",   "bans//x",
                         "bans/x/", "/bans/x", "ba-ns/x", "bans/a b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct docs r = doc_put(s, bad[i], "{}", -1);
        assert_int_equal(r.code, SB_CODE_INVALID_MESSAGE);
        r = doc_get(s, bad[i]);
        assert_int_equal(r.code, SB_CODE_INVALID_MESSAGE);
    }
    assert_int_equal(doc_list(s, "bans//").code, SB_CODE_INVALID_MESSAGE);
    assert_int_equal(doc_list(s, "/").code, SB_CODE_INVALID_MESSAGE);
    /* Ids beyond sb_ident: channel patterns, UTF-8. */
    assert_int_equal(doc_put(s, "subs/news.*/alice", "{}", 0).code, SB_CODE_NONE);
    assert_int_equal(doc_put(s, "channels/caf\xc3\xa9", "{}", 0).code, SB_CODE_NONE);
    assert_true(doc_get(s, "channels/caf\xc3\xa9").found);
    /* A prefix op with a value is refused. */
    struct cp_doc_op pv = {.key = "subs/", .value = "{}", .prefix = true, .expect = -1};
    struct docs r;
    S(s->ops->doc_write(s, &pv, 1, on_write, &r));
    assert_int_equal(r.code, SB_CODE_INVALID_MESSAGE);
    /* At most 64 ops, and 64 work. */
    struct cp_doc_op ops[65];
    char keys[65][32];
    for (int i = 0; i < 65; i++) {
        snprintf(keys[i], sizeof(keys[i]), "bulk/k%02d", i);
        ops[i] = (struct cp_doc_op){.key = keys[i], .value = "{}", .expect = 0};
    }
    S(s->ops->doc_write(s, ops, 65, on_write, &r));
    assert_int_equal(r.code, SB_CODE_INVALID_MESSAGE);
    S(s->ops->doc_write(s, ops, 64, on_write, &r));
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_int_equal(doc_list(s, "bulk/").n, 64);
}

struct room_edit {
    const char *name;
    bool archive;
    enum sb_code refuse;
    int calls;
};

static void edit_room(void *arg, struct cp_room *room, struct cp_status *st)
{
    struct room_edit *e = arg;
    e->calls++;
    if (e->refuse != SB_CODE_NONE) {
        cp_status_set(st, e->refuse, "refused by the edit");
        return;
    }
    free(room->name);
    room->name = strdup(e->name);
    room->archived = e->archive;
    room->member_count = 999; /* ignored */
}

struct room_res {
    enum sb_code code;
    char name[64];
    bool archived;
    int32_t member_count;
    int64_t created_at, updated_at;
};

static void on_room_full(void *arg, const struct cp_status *st, const struct cp_room *room)
{
    struct room_res *r = arg;
    outstanding--;
    memset(r, 0, sizeof(*r));
    r->code = st->code;
    if (room != NULL) {
        snprintf(r->name, sizeof(r->name), "%s", room->name);
        r->archived = room->archived;
        r->member_count = room->member_count;
        r->created_at = room->created_at;
        r->updated_at = room->updated_at;
    }
}

static void on_role(void *arg, const struct cp_status *st, const struct cp_member *m, size_t n)
{
    struct res *r = arg;
    outstanding--;
    r->code = st->code;
    r->n = n;
    if (n == 1) {
        strcpy(r->ids[0], m->user_id);
        r->seq = m->role;
    }
}

static void test_store_room_update_and_roles(void **state)
{
    struct cp_store *s = *state;
    observe_start(s);
    struct cp_room room = {.id = "r1",
                           .name = "General",
                           .description = "",
                           .owner_id = "alice",
                           .created_at = 1000,
                           .updated_at = 1000};
    struct res r = {0};
    S(s->ops->room_create(s, &room, on_room, &r));
    assert_int_equal(join(s, "r1", "bob", false, false).code, SB_CODE_NONE);
    EVENTS("ROOM r1 - name=General archived=0", "MEMBER_ADDED r1 alice owner",
           "MEMBER_ADDED r1 bob member");

    struct room_edit e = {.name = "Renamed", .archive = true};
    struct room_res rr;
    S(s->ops->room_update(s, "r1", edit_room, &e, on_room_full, &rr));
    assert_int_equal(rr.code, SB_CODE_NONE);
    assert_string_equal(rr.name, "Renamed");
    assert_true(rr.archived);
    assert_int_equal(rr.member_count, 2);
    assert_int_equal(rr.created_at, 1000);
    assert_true(rr.updated_at > 1000);
    assert_int_equal(e.calls, 1);
    EVENTS("ROOM r1 - name=Renamed archived=1");
    S(s->ops->room_get(s, "r1", on_room_full, &rr));
    assert_string_equal(rr.name, "Renamed");
    assert_true(rr.archived);
    /* Archived: joins and messages refused, history readable. */
    assert_int_equal(join(s, "r1", "carol", false, false).code, SB_CODE_ROOM_ARCHIVED);
    struct cp_message draft = {.id = "m1", .room_id = "r1", .data = "1", .data_len = 1};
    S(s->ops->message_append(s, &draft, NULL, 10, on_append, &r));
    assert_int_equal(r.code, SB_CODE_ROOM_ARCHIVED);
    struct cp_history_query q = {.room_id = "r1", .limit = 10};
    S(s->ops->history_query(s, &q, NULL, on_history, &r));
    assert_int_equal(r.code, SB_CODE_NONE);

    e.refuse = SB_CODE_PERMISSION_DENIED;
    S(s->ops->room_update(s, "r1", edit_room, &e, on_room_full, &rr));
    assert_int_equal(rr.code, SB_CODE_PERMISSION_DENIED);
    S(s->ops->room_get(s, "r1", on_room_full, &rr));
    assert_string_equal(rr.name, "Renamed"); /* unchanged */
    e.refuse = SB_CODE_NONE;
    e.calls = 0;
    S(s->ops->room_update(s, "nope", edit_room, &e, on_room_full, &rr));
    assert_int_equal(rr.code, SB_CODE_ROOM_NOT_FOUND);
    assert_int_equal(e.calls, 0);

    S(s->ops->member_set_role(s, "r1", "bob", CP_ROLE_ADMIN, on_role, &r));
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.ids[0], "bob");
    assert_int_equal(r.seq, CP_ROLE_ADMIN);
    S(s->ops->member_set_role(s, "r1", "bob", CP_ROLE_ADMIN, on_role, &r)); /* same again */
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_int_equal(r.seq, CP_ROLE_ADMIN);
    S(s->ops->member_set_role(s, "r1", "zed", CP_ROLE_ADMIN, on_role, &r));
    assert_int_equal(r.code, SB_CODE_NOT_ROOM_MEMBER);
    S(s->ops->member_set_role(s, "nope", "bob", CP_ROLE_ADMIN, on_role, &r));
    assert_int_equal(r.code, SB_CODE_ROOM_NOT_FOUND);
    struct res m = {0};
    S(s->ops->members_list(s, "r1", on_members, &m));
    assert_int_equal(m.n, 2); /* alice, bob */
    EVENTS(NULL);             /* a role change is not an event */

    S(s->ops->member_remove(s, "r1", "bob", on_members, &m));
    EVENTS("MEMBER_REMOVED r1 bob ");
    S(s->ops->room_delete(s, "r1", on_members, &m));
    EVENTS("ROOM_DELETED r1 - "); /* not each member leaving */
    s->ops->observe(s, NULL, NULL);
}

struct msg_edit {
    const char *data;
    const char *ext;
    bool delete_it;
    int calls;
};

static void edit_msg(void *arg, struct cp_message *m, struct cp_status *st)
{
    (void)st;
    struct msg_edit *e = arg;
    e->calls++;
    free(m->data);
    free(m->id);
    m->id = strdup("forged"); /* ignored: the identity never changes */
    m->seq = 77;
    if (e->delete_it) {
        m->data = strdup("");
        m->data_len = 0;
        m->deleted = true;
        m->deleted_at = 5000;
    } else {
        m->data = strdup(e->data);
        m->data_len = strlen(e->data);
        m->edited_at = 4000;
    }
    free(m->ext);
    m->ext = e->ext ? strdup(e->ext) : NULL;
}

struct msg_res {
    enum sb_code code;
    char id[32];
    int64_t seq, timestamp, edited_at, deleted_at;
    char data[64];
    char ext[96];
    bool deleted, has_ext;
};

static void fill_msg(struct msg_res *r, const struct cp_message *m)
{
    snprintf(r->id, sizeof(r->id), "%s", m->id);
    r->seq = m->seq;
    r->timestamp = m->timestamp;
    r->edited_at = m->edited_at;
    r->deleted_at = m->deleted_at;
    r->deleted = m->deleted;
    snprintf(r->data, sizeof(r->data), "%.*s", (int)m->data_len, m->data ? m->data : "");
    r->has_ext = m->ext != NULL;
    snprintf(r->ext, sizeof(r->ext), "%s", m->ext ? m->ext : "");
}

static void on_message(void *arg, const struct cp_status *st, const struct cp_message *m)
{
    struct msg_res *r = arg;
    outstanding--;
    memset(r, 0, sizeof(*r));
    r->code = st->code;
    if (m != NULL)
        fill_msg(r, m);
}

static struct msg_res hist[8];
static size_t n_hist;

static void on_history_full(void *arg, const struct cp_status *st,
                            const struct cp_history_result *h)
{
    (void)arg;
    outstanding--;
    assert_int_equal(st->code, SB_CODE_NONE);
    n_hist = h->n_messages;
    for (size_t i = 0; i < h->n_messages && i < 8; i++)
        fill_msg(&hist[i], h->messages[i]);
}

static void read_history(struct cp_store *s, const char *room)
{
    struct cp_history_query q = {.room_id = room, .limit = 100};
    S(s->ops->history_query(s, &q, NULL, on_history_full, NULL));
}

static int64_t append_at(struct cp_store *s, const char *id, int64_t ts)
{
    struct cp_message d = {
        .id = (char *)id, .room_id = "r1", .user_id = "alice", .data = "0", .data_len = 1};
    d.timestamp = ts;
    struct res r = {0};
    S(s->ops->message_append(s, &d, NULL, 1000, on_append, &r));
    assert_int_equal(r.code, SB_CODE_NONE);
    return r.seq;
}

static void on_count(void *arg, const struct cp_status *st, int64_t n)
{
    struct res *r = arg;
    outstanding--;
    r->code = st->code;
    r->seq = n;
}

static void test_store_message_update_and_trim(void **state)
{
    struct cp_store *s = *state;
    create(s, "r1", "", "alice", false, 0, SB_CODE_NONE);
    observe_start(s);
    assert_int_equal(append_at(s, "m1", 100), 1);
    assert_int_equal(append_at(s, "m2", 200), 2);
    assert_int_equal(append_at(s, "m3", 300), 3);
    EVENTS("MESSAGE r1 - seq=1 data=0", "MESSAGE r1 - seq=2 data=0", "MESSAGE r1 - seq=3 data=0");

    struct msg_edit e = {.data = "{\"v\":2}", .ext = "{\"edits\":[{\"at\":4000}]}"};
    struct msg_res m;
    S(s->ops->message_update(s, "r1", "m2", edit_msg, &e, on_message, &m));
    assert_int_equal(m.code, SB_CODE_NONE);
    assert_string_equal(m.id, "m2");
    assert_int_equal(m.seq, 2);
    assert_int_equal(m.timestamp, 200);
    assert_int_equal(m.edited_at, 4000);
    assert_string_equal(m.data, "{\"v\":2}");
    assert_string_equal(m.ext, "{\"edits\":[{\"at\":4000}]}");
    EVENTS("MESSAGE_UPDATE r1 - seq=2 data={\"v\":2}{\"edits\":[{\"at\":4000}]}");
    struct msg_edit del = {.delete_it = true, .ext = "{\"reactions\":{\"+1\":[\"bob\"]}}"};
    S(s->ops->message_update(s, "r1", "m3", edit_msg, &del, on_message, &m));
    assert_int_equal(m.code, SB_CODE_NONE);
    assert_true(m.deleted);
    assert_int_equal(m.data[0], '\0');
    EVENTS("MESSAGE_UPDATE r1 - seq=3 data= deleted{\"reactions\":{\"+1\":[\"bob\"]}}");

    /* The new fields round-trip through history reads. */
    read_history(s, "r1");
    assert_int_equal(n_hist, 3);
    assert_false(hist[0].has_ext);
    assert_int_equal(hist[0].edited_at, 0);
    assert_false(hist[0].deleted);
    assert_string_equal(hist[1].data, "{\"v\":2}");
    assert_int_equal(hist[1].edited_at, 4000);
    assert_string_equal(hist[1].ext, "{\"edits\":[{\"at\":4000}]}");
    assert_true(hist[2].deleted);
    assert_int_equal(hist[2].deleted_at, 5000);
    assert_string_equal(hist[2].data, "");
    assert_string_equal(hist[2].id, "m3");

    S(s->ops->message_update(s, "r1", "nope", edit_msg, &e, on_message, &m));
    assert_int_equal(m.code, SB_CODE_MESSAGE_NOT_FOUND);
    S(s->ops->message_update(s, "zz", "m1", edit_msg, &e, on_message, &m));
    assert_int_equal(m.code, SB_CODE_ROOM_NOT_FOUND);
    /* The sequencer goes on where it was. */
    assert_int_equal(append_at(s, "m4", 400), 4);

    struct res r = {0};
    S(s->ops->history_trim(s, "r1", 250, on_count, &r));
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_int_equal(r.seq, 2);
    read_history(s, "r1");
    assert_int_equal(n_hist, 2);
    assert_int_equal(hist[0].seq, 3);
    S(s->ops->history_trim(s, "r1", 250, on_count, &r));
    assert_int_equal(r.seq, 0);
    S(s->ops->message_update(s, "r1", "m1", edit_msg, &e, on_message, &m));
    assert_int_equal(m.code, SB_CODE_MESSAGE_NOT_FOUND); /* trimmed */
    S(s->ops->history_trim(s, "nope", 250, on_count, &r));
    assert_int_equal(r.code, SB_CODE_ROOM_NOT_FOUND);
    S(s->ops->history_trim(s, "r1", 1000000, on_count, &r));
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_int_equal(r.seq, 2);
    read_history(s, "r1");
    assert_int_equal(n_hist, 0);
    assert_int_equal(append_at(s, "m5", 500), 5); /* seqs never go back */
    struct res g = {0};
    S(s->ops->room_get(s, "r1", on_room, &g));
    assert_int_equal(g.seq, 5);
    s->ops->observe(s, NULL, NULL);
}

/* More than one page of history (HIST_PAGE in the etcd store is 64). */
static void test_store_trim_and_update_span_pages(void **state)
{
    struct cp_store *s = *state;
    create(s, "r1", "", "alice", false, 0, SB_CODE_NONE);
    char id[16];
    for (int i = 1; i <= 150; i++) {
        snprintf(id, sizeof(id), "m%d", i);
        assert_int_equal(append_at(s, id, 1000 + i), i);
    }
    struct msg_edit e = {.data = "\"old one\""};
    struct msg_res m;
    S(s->ops->message_update(s, "r1", "m3", edit_msg, &e, on_message, &m));
    assert_int_equal(m.code, SB_CODE_NONE);
    assert_int_equal(m.seq, 3);
    struct res r = {0};
    S(s->ops->history_trim(s, "r1", 1000 + 131, on_count, &r)); /* 1..130 go */
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_int_equal(r.seq, 130);
    read_history(s, "r1");
    assert_int_equal(n_hist, 20);
    assert_int_equal(hist[0].seq, 131);
}

/* History off (max_history 0): nothing readable, but every message is still reported. */
static void test_store_no_history_still_reports(void **state)
{
    struct cp_store *s = *state;
    create(s, "r1", "", "alice", false, 0, SB_CODE_NONE);
    observe_start(s);
    struct cp_message d = {.id = "m1", .room_id = "r1", .data = "1", .data_len = 1};
    struct res r = {0};
    for (int i = 1; i <= 3; i++) {
        S(s->ops->message_append(s, &d, NULL, 0, on_append, &r));
        assert_int_equal(r.code, SB_CODE_NONE);
        assert_int_equal(r.seq, i);
    }
    EVENTS("MESSAGE r1 - seq=1 data=1", "MESSAGE r1 - seq=2 data=1", "MESSAGE r1 - seq=3 data=1");
    read_history(s, "r1");
    assert_int_equal(n_hist, 0);
    struct msg_edit e = {.data = "2"};
    struct msg_res m;
    S(s->ops->message_update(s, "r1", "m1", edit_msg, &e, on_message, &m));
    assert_int_equal(m.code, SB_CODE_MESSAGE_NOT_FOUND);
    S(s->ops->history_trim(s, "r1", INT64_MAX, on_count, &r));
    assert_int_equal(r.code, SB_CODE_NONE);
    assert_int_equal(r.seq, 0);
    struct res g = {0};
    S(s->ops->room_get(s, "r1", on_room, &g));
    assert_int_equal(g.seq, 3);
    s->ops->observe(s, NULL, NULL);
}

#ifdef CP_TEST_ETCD
#include "cp_store_etcd_cases.h"
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_rooms_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_membership, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_list_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_sequencing_and_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_publish_idempotency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_docs_versions_and_conflicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_docs_list_and_prefix_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_doc_keys_and_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_room_update_and_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_message_update_and_trim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_trim_and_update_span_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_no_history_still_reports, setup, teardown),
#ifdef CP_TEST_ETCD
        ETCD_ONLY_CASES
#endif
    };
#ifndef CP_TEST_ETCD
#define GROUP_SETUP    NULL
#define GROUP_TEARDOWN NULL
#endif
    return cmocka_run_group_tests(tests, GROUP_SETUP, GROUP_TEARDOWN);
}
