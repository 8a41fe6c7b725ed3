/* Room fan-out with the per-room node cache (cp_fanout_room_cached, memory store): one Delivery
 * per node hosting a member's connection, the same as the uncached cp_fanout_room, and the
 * cache follows every change: a connection opened or closed, a member added or removed, a
 * room deleted and re-created under the same id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_ctx.h"
#include "cp_store_memory.h"

struct fixture {
    struct cp_ctx c;
    struct cp_node n1, n2;
    /* the last append */
    const struct cp_member *members;
    size_t n_members;
    uint64_t rev;
    int64_t seq;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct cp_settings set = {
        .typing_timeout_ms = 100, .heartbeat_interval_ms = 5000, .node_queue_limit = 1 << 20};
    cp_ctx_init(&f->c, &set, cp_store_memory_create());
    cp_node_init(&f->n1, set.node_queue_limit);
    cp_node_init(&f->n2, set.node_queue_limit);
    f->n1.id = strdup("dp-1");
    f->n2.id = strdup("dp-2");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cp_ctx_fini(&f->c);
    cp_node_fini(&f->n1);
    cp_node_fini(&f->n2);
    free(f);
    return 0;
}

static void ok_room(void *arg, const struct cp_status *st, const struct cp_room *room)
{
    (void)arg;
    (void)room;
    assert_int_equal(st->code, SB_CODE_NONE);
}

static void ok_join(void *arg, const struct cp_status *st, const struct cp_join_result *res)
{
    (void)arg;
    (void)res;
    assert_int_equal(st->code, SB_CODE_NONE);
}

static void ok_members(void *arg, const struct cp_status *st, const struct cp_member *m, size_t n)
{
    (void)arg;
    (void)m;
    (void)n;
    assert_int_equal(st->code, SB_CODE_NONE);
}

static void appended(void *arg, const struct cp_status *st, const struct cp_append_result *res)
{
    struct fixture *f = arg;
    assert_int_equal(st->code, SB_CODE_NONE);
    f->members = res->members;
    f->n_members = res->n_members;
    f->rev = res->members_rev;
    f->seq = res->message->seq;
}

static void create(struct fixture *f, const char *room)
{
    struct cp_room r = {.id = (char *)room, .name = "", .description = "", .owner_id = ""};
    f->c.store->ops->room_create(f->c.store, &r, ok_room, f);
}

static void join(struct fixture *f, const char *room, const char *user)
{
    struct cp_join_req req = {.room_id = room, .user_id = user, .role = CP_ROLE_MEMBER, .now = 1};
    f->c.store->ops->member_add(f->c.store, &req, ok_join, f);
}

static void open_conn(struct fixture *f, const char *conn, const char *user, struct cp_node *n)
{
    bool online;
    assert_int_equal(
        cp_presence_open(&f->c.presence, conn, user, "", "websocket", 1, n, 1, &online), SB_OK);
}

static void close_conn(struct fixture *f, const char *conn)
{
    struct cp_user *u;
    bool last;
    cp_presence_close(&f->c.presence, conn, 1, 1, 0, &u, &last);
}

/* Appends a message to `room` and fans it out with the cache; returns the nodes reached and
 * checks the uncached fan-out agrees. */
static size_t publish(struct fixture *f, const char *room)
{
    char id[] = "m-1";
    struct cp_message draft = {.id = id, .room_id = (char *)room, .data = "1", .data_len = 1};
    f->c.store->ops->message_append(f->c.store, &draft, NULL, 100, appended, f);
    assert_true(f->rev != 0);
    size_t cached =
        cp_fanout_room_cached(&f->c.fan, f->members, f->n_members, f->rev, room, "{}", 2, f->seq);
    size_t plain = cp_fanout_room(&f->c.fan, f->members, f->n_members, room, NULL, "{}", 2, f->seq);
    assert_int_equal(cached, plain);
    return cached;
}

static void test_cache_follows_connections_and_members(void **state)
{
    struct fixture *f = *state;
    create(f, "r1");
    join(f, "r1", "alice");
    join(f, "r1", "bob");
    assert_int_equal(publish(f, "r1"), 0); /* nobody connected */
    open_conn(f, "c-a", "alice", &f->n1);
    assert_int_equal(publish(f, "r1"), 1);
    int64_t before = f->c.fan.messages_delivered;
    size_t len1 = f->n1.out.len;
    assert_int_equal(publish(f, "r1"), 1); /* cached: same answer, one Delivery more */
    assert_true(f->n1.out.len > len1);
    /* cached + plain each counted alice's connection once */
    assert_int_equal(f->c.fan.messages_delivered - before, 2);
    open_conn(f, "c-b", "bob", &f->n2);
    assert_int_equal(publish(f, "r1"), 2);
    open_conn(f, "c-b2", "bob", &f->n1);
    assert_int_equal(publish(f, "r1"), 2);
    close_conn(f, "c-b");
    assert_int_equal(publish(f, "r1"), 1);
    open_conn(f, "c-c", "carol", &f->n2); /* not a member */
    assert_int_equal(publish(f, "r1"), 1);
    join(f, "r1", "carol");
    assert_int_equal(publish(f, "r1"), 2);
    f->c.store->ops->member_remove(f->c.store, "r1", "carol", ok_members, f);
    assert_int_equal(publish(f, "r1"), 1);
}

static void test_cache_survives_room_recreation(void **state)
{
    struct fixture *f = *state;
    create(f, "r2");
    join(f, "r2", "alice");
    open_conn(f, "c-a", "alice", &f->n1);
    open_conn(f, "c-b", "bob", &f->n2);
    assert_int_equal(publish(f, "r2"), 1);
    uint64_t rev = f->rev;
    f->c.store->ops->room_delete(f->c.store, "r2", ok_members, f);
    create(f, "r2");
    join(f, "r2", "bob");
    assert_int_equal(publish(f, "r2"), 1);
    assert_true(f->rev != rev);
    /* Only bob's node now. */
    size_t len1 = f->n1.out.len, len2 = f->n2.out.len;
    publish(f, "r2");
    assert_int_equal(f->n1.out.len, len1);
    assert_true(f->n2.out.len > len2);
}

static void test_unknown_rev_falls_back(void **state)
{
    struct fixture *f = *state;
    create(f, "r3");
    join(f, "r3", "alice");
    open_conn(f, "c-a", "alice", &f->n1);
    publish(f, "r3");
    assert_int_equal(
        cp_fanout_room_cached(&f->c.fan, f->members, f->n_members, 0, "r3", "{}", 2, f->seq), 1);
}

/* Presence by rooms (cp_fanout_rooms): one Delivery {room_ids, exclude_user_ids} to every node,
 * which resolves the members itself; nothing, and false, while some node is an older data
 * plane without that Delivery target (the caller then lists the users). */
static void test_fanout_rooms_needs_every_node(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(sb_map_put(&f->c.nodes, "dp-1", &f->n1), SB_OK);
    assert_int_equal(sb_map_put(&f->c.nodes, "dp-2", &f->n2), SB_OK);
    open_conn(f, "c-a", "alice", &f->n1);
    open_conn(f, "c-b", "bob", &f->n2);
    const char *rooms[] = {"r1", "r2"};
    f->n1.room_ids = true;
    assert_false(cp_fanout_rooms(&f->c.fan, rooms, 2, "alice", "{}", 2)); /* dp-2 is older */
    assert_int_equal(f->n1.out.len, 0);
    assert_int_equal(f->n2.out.len, 0);
    f->n2.room_ids = true;
    assert_true(cp_fanout_rooms(&f->c.fan, rooms, 2, "alice", "{}", 2));
    struct cp_node *nodes[] = {&f->n1, &f->n2};
    for (int k = 0; k < 2; k++) {
        Switchboard__Internal__V1__ControlBatch *b =
            switchboard__internal__v1__control_batch__unpack(NULL, nodes[k]->out.len,
                                                             (const uint8_t *)nodes[k]->out.data);
        assert_non_null(b);
        assert_int_equal(b->n_items, 1);
        const Switchboard__Internal__V1__Delivery *d = b->items[0]->delivery;
        assert_non_null(d);
        assert_int_equal(d->n_room_ids, 2);
        assert_string_equal(d->room_ids[0], "r1");
        assert_string_equal(d->room_ids[1], "r2");
        assert_int_equal(d->n_exclude_user_ids, 1);
        assert_string_equal(d->exclude_user_ids[0], "alice");
        assert_int_equal(d->n_user_ids, 0);
        assert_string_equal(d->room_id, "");
        switchboard__internal__v1__control_batch__free_unpacked(b, NULL);
    }
    /* a user in no room: nothing to send, and not a reason to fall back */
    size_t l1 = f->n1.out.len;
    assert_true(cp_fanout_rooms(&f->c.fan, rooms, 0, "alice", "{}", 2));
    assert_int_equal(f->n1.out.len, l1);
    sb_map_remove(&f->c.nodes, "dp-1");
    sb_map_remove(&f->c.nodes, "dp-2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cache_follows_connections_and_members, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cache_survives_room_recreation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_rev_falls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fanout_rooms_needs_every_node, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
