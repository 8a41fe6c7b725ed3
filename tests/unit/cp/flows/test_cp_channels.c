/* Channel flows on the memory store without sockets: Membership and Delivery items per node
 * (channel_id alone when every subscriber matches, with user_ids when a filter excludes
 * someone), idempotency, the per-user limit, a subscribe undone after a racing deletion, and
 * leftovers of an unfinished deletion cleared by CreateChannel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_channels.h"
#include "cp_conns.h"
#include "cp_store_memory.h"

typedef Switchboard__Internal__V1__ControlBatch ControlBatch;
typedef Switchboard__Internal__V1__ControlItem ControlItem;

/* A store that is the memory store, except that a doc_write touching "subs/" can be made to
 * delete one channel record right after it commits (a deletion racing with a subscribe). */
struct proxy {
    struct cp_store base;
    struct cp_store *mem;
    const char *race_delete; /* channel id, or NULL */
};

static struct cp_store_ops proxy_ops;
static const struct cp_store_ops *mem_ops;

struct race {
    struct proxy *p;
    cp_store_write_fn *cb;
    void *arg;
};

static void ignore_write(void *arg, const struct cp_status *st, const int64_t *v, size_t n)
{
    (void)arg;
    (void)st;
    (void)v;
    (void)n;
}

static void race_written(void *arg, const struct cp_status *st, const int64_t *v, size_t n)
{
    struct race *r = arg;
    if (st->code == SB_CODE_NONE && r->p->race_delete != NULL) {
        char key[300];
        snprintf(key, sizeof(key), "channels/%s", r->p->race_delete);
        r->p->race_delete = NULL;
        struct cp_doc_op del = {.key = key, .expect = -1};
        mem_ops->doc_write(r->p->mem, &del, 1, ignore_write, NULL);
    }
    r->cb(r->arg, st, v, n);
    free(r);
}

static void proxy_doc_write(struct cp_store *s, const struct cp_doc_op *ops, size_t n,
                            cp_store_write_fn *cb, void *arg)
{
    struct proxy *p = (struct proxy *)s;
    bool subs = false;
    for (size_t i = 0; i < n; i++)
        subs = subs || (ops[i].value != NULL && strncmp(ops[i].key, "subs/", 5) == 0);
    if (!subs || p->race_delete == NULL) {
        mem_ops->doc_write(p->mem, ops, n, cb, arg);
        return;
    }
    struct race *r = malloc(sizeof(*r));
    *r = (struct race){p, cb, arg};
    mem_ops->doc_write(p->mem, ops, n, race_written, r);
}

#define FWD(name, params, args)                                                                    \
    static void proxy_##name params                                                                \
    {                                                                                              \
        struct proxy *p = (struct proxy *)s;                                                       \
        mem_ops->name args;                                                                        \
    }
FWD(doc_get, (struct cp_store * s, const char *key, cp_store_doc_fn *cb, void *arg),
    (p->mem, key, cb, arg))
FWD(doc_list, (struct cp_store * s, const char *prefix, cp_store_docs_fn *cb, void *arg),
    (p->mem, prefix, cb, arg))
FWD(user_rooms, (struct cp_store * s, const char *user, cp_store_ids_fn *cb, void *arg),
    (p->mem, user, cb, arg))
FWD(user_peers, (struct cp_store * s, const char *user, cp_store_ids_fn *cb, void *arg),
    (p->mem, user, cb, arg))

static void proxy_destroy(struct cp_store *s)
{
    struct proxy *p = (struct proxy *)s;
    p->mem->ops->destroy(p->mem);
    free(p);
}

static struct proxy *proxy_create(void)
{
    struct proxy *p = calloc(1, sizeof(*p));
    p->mem = cp_store_memory_create();
    mem_ops = p->mem->ops;
    /* Only what the channel flows use; anything else would crash on NULL, never corrupt. */
    memset(&proxy_ops, 0, sizeof(proxy_ops));
    proxy_ops.destroy = proxy_destroy;
    proxy_ops.doc_write = proxy_doc_write;
    proxy_ops.doc_get = proxy_doc_get;
    proxy_ops.doc_list = proxy_doc_list;
    proxy_ops.user_rooms = proxy_user_rooms;
    proxy_ops.user_peers = proxy_user_peers;
    p->base.ops = &proxy_ops;
    return p;
}

struct fixture {
    struct cp_ctx c;
    struct proxy *store;
    struct cp_node a, b;
};

static void ignore_rooms(void *arg, const struct cp_status *st, const char *const *r, size_t n)
{
    (void)arg;
    (void)st;
    (void)r;
    (void)n;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct cp_settings set = {.typing_timeout_ms = 100,
                              .heartbeat_interval_ms = 5000,
                              .node_queue_limit = 1 << 20,
                              .max_channels_per_user = 2};
    f->store = proxy_create();
    cp_ctx_init(&f->c, &set, &f->store->base);
    cp_node_init(&f->a, set.node_queue_limit);
    cp_node_init(&f->b, set.node_queue_limit);
    f->a.id = strdup("dp-a");
    f->b.id = strdup("dp-b");
    /* alice on both nodes, bob on b, carol on a. */
    cp_conns_open(&f->c, &f->a, "c-a1", "alice", "s", "websocket", 1, ignore_rooms, NULL);
    cp_conns_open(&f->c, &f->b, "c-a2", "alice", "s", "websocket", 1, ignore_rooms, NULL);
    cp_conns_open(&f->c, &f->b, "c-b1", "bob", "s", "websocket", 1, ignore_rooms, NULL);
    cp_conns_open(&f->c, &f->a, "c-c1", "carol", "s", "websocket", 1, ignore_rooms, NULL);
    while (cp_fanout_pop_dirty(&f->c.fan) != NULL)
        ;
    cp_node_consume(&f->a, f->a.out.len);
    cp_node_consume(&f->b, f->b.out.len);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cp_conns_node_gone(&f->c, &f->a);
    cp_conns_node_gone(&f->c, &f->b);
    cp_ctx_fini(&f->c);
    cp_node_fini(&f->a);
    cp_node_fini(&f->b);
    free(f);
    return 0;
}

/* Takes everything queued on `n`, decoded (NULL when nothing; caller frees). */
static ControlBatch *take(struct cp_node *n)
{
    if (n->out.len == 0)
        return NULL;
    ControlBatch *b = switchboard__internal__v1__control_batch__unpack(
        NULL, n->out.len, (const uint8_t *)n->out.data);
    assert_non_null(b);
    cp_node_consume(n, n->out.len);
    return b;
}

static struct cp_status last;
static char last_id[64];
static size_t last_n;
static char last_ids[8][64];

static void done(void *arg, const struct cp_status *st)
{
    (void)arg;
    last = *st;
}

static void one(void *arg, const struct cp_status *st, const struct cp_channel_info *ch)
{
    (void)arg;
    (void)ch;
    last = *st;
}

static void published(void *arg, const struct cp_status *st, const char *id)
{
    (void)arg;
    last = *st;
    snprintf(last_id, sizeof(last_id), "%s", id ? id : "");
}

static void ids(void *arg, const struct cp_status *st, const char *const *v, size_t n)
{
    (void)arg;
    last = *st;
    last_n = n;
    for (size_t i = 0; i < n && i < 8; i++)
        snprintf(last_ids[i], sizeof(last_ids[i]), "%s", v[i]);
}

static void create(struct fixture *f, const char *id)
{
    cp_channels_create(&f->c, id, NULL, 0, false, one, NULL);
    assert_int_equal(last.code, SB_CODE_NONE);
}

static enum sb_code subscribe(struct fixture *f, const char *ch, const char *user,
                              const char *filter)
{
    struct cp_subscribe s = {.channel_id = ch, .user_id = user, .filter = filter};
    cp_channels_subscribe(&f->c, &s, done, NULL);
    return last.code;
}

static enum sb_code publish(struct fixture *f, const char *ch, const char *k, const char *v,
                            const char *idem)
{
    struct cp_kv kv = {(char *)k, (char *)v};
    struct cp_channel_publish p = {.channel_id = ch,
                                   .data = "1",
                                   .data_len = 1,
                                   .metadata = k ? &kv : NULL,
                                   .n_metadata = k ? 1 : 0,
                                   .idem_key = idem};
    cp_channels_publish(&f->c, &p, published, NULL);
    return last.code;
}

/* A client `publish` frame of `user` (cp_access_publish decides). */
static enum sb_code client_publish(struct fixture *f, const char *ch, const char *user)
{
    struct cp_channel_publish p = {
        .channel_id = ch, .user_id = user, .data = "1", .data_len = 1, .client = true};
    cp_channels_publish(&f->c, &p, published, NULL);
    return last.code;
}

/* The one Delivery queued on `n` (NULL-checked), and how many there were. */
static const ControlItem *only_delivery(ControlBatch *b)
{
    const ControlItem *d = NULL;
    int count = 0;
    for (size_t i = 0; b != NULL && i < b->n_items; i++)
        if (b->items[i]->kind_case == SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_DELIVERY) {
            d = b->items[i];
            count++;
        }
    assert_int_equal(count, 1);
    return d;
}

static void test_channels_client_publish_needs_the_option(void **state)
{
    struct fixture *f = *state;
    create(f, "news"); /* client_publish off */
    assert_int_equal(client_publish(f, "news", "bob"), SB_CODE_PERMISSION_DENIED);
    assert_int_equal(publish(f, "news", NULL, NULL, NULL), SB_CODE_NONE); /* the backend may */
    cp_channels_create(&f->c, "open", NULL, 0, true, one, NULL);
    assert_int_equal(last.code, SB_CODE_NONE);
    assert_int_equal(client_publish(f, "open", "bob"), SB_CODE_NONE); /* need not subscribe */
    cp_channels_create(&f->c, "private-p", NULL, 0, true, one, NULL);
    assert_int_equal(client_publish(f, "private-p", "bob"), SB_CODE_PERMISSION_DENIED);
    assert_int_equal(subscribe(f, "private-p", "bob", NULL), SB_CODE_NONE);
    assert_int_equal(client_publish(f, "private-p", "bob"), SB_CODE_NONE);
    cp_channels_create(&f->c, "dm#alice,bob", NULL, 0, true, one, NULL);
    assert_int_equal(client_publish(f, "dm#alice,bob", "carol"), SB_CODE_PERMISSION_DENIED);
    assert_int_equal(client_publish(f, "dm#alice,bob", "alice"), SB_CODE_NONE);
    assert_int_equal(client_publish(f, "missing", "bob"), SB_CODE_CHANNEL_NOT_FOUND);
}

static void test_channels_membership_revisions_order_add_and_remove(void **state)
{
    struct fixture *f = *state;
    create(f, "news");
    assert_int_equal(subscribe(f, "news", "alice", NULL), SB_CODE_NONE);
    int64_t added = 0;
    for (struct cp_node *n = &f->a; n != NULL; n = n == &f->a ? &f->b : NULL) {
        ControlBatch *b = take(n);
        assert_non_null(b);
        assert_int_equal(b->n_items, 1);
        const Switchboard__Internal__V1__Membership *m = b->items[0]->membership;
        assert_string_equal(m->channel_id, "news");
        assert_string_equal(m->user_id, "alice");
        assert_true(m->added);
        added = m->revision;
        switchboard__internal__v1__control_batch__free_unpacked(b, NULL);
    }
    cp_channels_unsubscribe(&f->c, "news", "alice", done, NULL);
    assert_int_equal(last.code, SB_CODE_NONE);
    ControlBatch *b = take(&f->a);
    assert_false(b->items[0]->membership->added);
    assert_true(b->items[0]->membership->revision > added);
    switchboard__internal__v1__control_batch__free_unpacked(b, NULL);
    cp_channels_unsubscribe(&f->c, "news", "alice", done, NULL);
    assert_int_equal(last.code, SB_CODE_NOT_SUBSCRIBED);
}

static void test_channels_delivery_by_channel_or_by_users(void **state)
{
    struct fixture *f = *state;
    create(f, "alerts");
    assert_int_equal(subscribe(f, "alerts", "alice", NULL), SB_CODE_NONE);
    assert_int_equal(subscribe(f, "alerts", "bob", "priority == high"), SB_CODE_NONE);
    cp_node_consume(&f->a, f->a.out.len);
    cp_node_consume(&f->b, f->b.out.len);

    /* Everyone matches: Delivery{channel_id} once per node hosting a subscriber. */
    assert_int_equal(publish(f, "alerts", "priority", "high", NULL), SB_CODE_NONE);
    ControlBatch *a = take(&f->a), *b = take(&f->b);
    const ControlItem *da = only_delivery(a), *db = only_delivery(b);
    assert_string_equal(da->delivery->channel_id, "alerts");
    assert_int_equal(da->delivery->n_user_ids, 0);
    assert_int_equal(db->delivery->n_user_ids, 0);
    assert_non_null(
        memmem(da->delivery->frame.data, da->delivery->frame.len, "\"channel_id\":\"alerts\"", 21));
    switchboard__internal__v1__control_batch__free_unpacked(a, NULL);
    switchboard__internal__v1__control_batch__free_unpacked(b, NULL);

    /* bob's filter fails: each node gets the matching users it hosts. */
    assert_int_equal(publish(f, "alerts", "priority", "low", NULL), SB_CODE_NONE);
    a = take(&f->a);
    b = take(&f->b);
    da = only_delivery(a);
    db = only_delivery(b);
    assert_int_equal(da->delivery->n_user_ids, 1);
    assert_string_equal(da->delivery->user_ids[0], "alice");
    assert_int_equal(db->delivery->n_user_ids, 1);
    assert_string_equal(db->delivery->user_ids[0], "alice");
    switchboard__internal__v1__control_batch__free_unpacked(a, NULL);
    switchboard__internal__v1__control_batch__free_unpacked(b, NULL);

    assert_int_equal(publish(f, "nope", NULL, NULL, NULL), SB_CODE_CHANNEL_NOT_FOUND);
}

static void test_channels_idempotency_key_delivers_once(void **state)
{
    struct fixture *f = *state;
    create(f, "once");
    assert_int_equal(subscribe(f, "once", "carol", NULL), SB_CODE_NONE);
    cp_node_consume(&f->a, f->a.out.len);
    assert_int_equal(publish(f, "once", NULL, NULL, "k 1"), SB_CODE_NONE);
    char first[64];
    strcpy(first, last_id);
    ControlBatch *a = take(&f->a);
    only_delivery(a);
    switchboard__internal__v1__control_batch__free_unpacked(a, NULL);
    assert_int_equal(publish(f, "once", NULL, NULL, "k 1"), SB_CODE_NONE);
    assert_string_equal(last_id, first);
    assert_null(take(&f->a));
    assert_int_equal(publish(f, "once", NULL, NULL, "k 2"), SB_CODE_NONE);
    assert_string_not_equal(last_id, first);
}

static void test_channels_limit_per_user(void **state)
{
    struct fixture *f = *state;
    create(f, "l1");
    create(f, "l2");
    create(f, "l3");
    assert_int_equal(subscribe(f, "l1", "bob", NULL), SB_CODE_NONE);
    assert_int_equal(subscribe(f, "l2", "bob", NULL), SB_CODE_NONE);
    assert_int_equal(subscribe(f, "l3", "bob", NULL), SB_CODE_CHANNEL_LIMIT_REACHED);
    assert_int_equal(subscribe(f, "l1", "bob", NULL), SB_CODE_ALREADY_SUBSCRIBED);
    assert_int_equal(subscribe(f, "l1", "bob", "a =="), SB_CODE_INVALID_MESSAGE);
    cp_channels_of_user(&f->c, "bob", ids, NULL);
    assert_int_equal(last_n, 2);
    assert_string_equal(last_ids[0], "l1");
    assert_string_equal(last_ids[1], "l2");
}

static void test_channels_subscribe_undone_after_a_racing_delete(void **state)
{
    struct fixture *f = *state;
    create(f, "race");
    f->store->race_delete = "race";
    assert_int_equal(subscribe(f, "race", "carol", NULL), SB_CODE_CHANNEL_NOT_FOUND);
    /* Nothing is left of the subscription, and carol's nodes were never told of it. */
    cp_channels_of_user(&f->c, "carol", ids, NULL);
    assert_int_equal(last_n, 0);
    assert_null(take(&f->a));
    create(f, "race");
    cp_channels_subscribers(&f->c, "race", ids, NULL);
    assert_int_equal(last_n, 0);
}

static void test_channels_create_clears_leftovers_of_a_deletion(void **state)
{
    struct fixture *f = *state;
    /* What a deletion cut short between its two writes leaves: pairs, no channel record. */
    struct cp_doc_op ops[2] = {
        {.key = "subs/old/bob", .value = "{\"filter\":\"\",\"subscribed_at\":1}", .expect = 0},
        {.key = "user_subs/bob/old", .value = "{\"subscribed_at\":1}", .expect = 0}};
    f->c.store->ops->doc_write(f->c.store, ops, 2, ignore_write, NULL);
    create(f, "old");
    cp_channels_subscribers(&f->c, "old", ids, NULL);
    assert_int_equal(last.code, SB_CODE_NONE);
    assert_int_equal(last_n, 0);
    cp_channels_of_user(&f->c, "bob", ids, NULL);
    assert_int_equal(last_n, 0);
    ControlBatch *b = take(&f->b);
    assert_non_null(b);
    assert_false(b->items[0]->membership->added);
    switchboard__internal__v1__control_batch__free_unpacked(b, NULL);
    cp_channels_create(&f->c, "old", NULL, 0, false, one, NULL);
    assert_int_equal(last.code, SB_CODE_CHANNEL_ALREADY_EXISTS);
}

static void test_channels_delete_removes_pairs_and_tells_nodes(void **state)
{
    struct fixture *f = *state;
    create(f, "gone");
    assert_int_equal(subscribe(f, "gone", "bob", NULL), SB_CODE_NONE);
    cp_node_consume(&f->b, f->b.out.len);
    cp_channels_delete(&f->c, "gone", done, NULL);
    assert_int_equal(last.code, SB_CODE_NONE);
    ControlBatch *b = take(&f->b);
    assert_non_null(b);
    assert_false(b->items[0]->membership->added);
    switchboard__internal__v1__control_batch__free_unpacked(b, NULL);
    cp_channels_of_user(&f->c, "bob", ids, NULL);
    assert_int_equal(last_n, 0);
    cp_channels_delete(&f->c, "gone", done, NULL);
    assert_int_equal(last.code, SB_CODE_CHANNEL_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_channels_membership_revisions_order_add_and_remove,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_channels_delivery_by_channel_or_by_users, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_channels_idempotency_key_delivers_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_channels_limit_per_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channels_subscribe_undone_after_a_racing_delete, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_channels_create_clears_leftovers_of_a_deletion, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_channels_client_publish_needs_the_option, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_channels_delete_removes_pairs_and_tells_nodes, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
