/* NodeLink items end to end without sockets: two nodes, Hello/Welcome, ConnOpen/ConnOpened,
 * join (Membership before the join event), message (one delivery per node, ack after),
 * history, since-replay, a private room's join by the rooms grant, typing with expiry, node loss
 * (presence offline), protocol errors, and the queue's batching and overflow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_changes.h"
#include "cp_nodelink.h"
#include "cp_online.h"
#include "cp_store_memory.h"
#include "cp_typing.h"
#include "sb_time.h"

typedef Switchboard__Internal__V1__NodeItem NodeItem;
typedef Switchboard__Internal__V1__ControlBatch ControlBatch;
typedef Switchboard__Internal__V1__ControlItem ControlItem;

struct fixture {
    struct cp_ctx c;
    struct cp_node a, b;
    const char *fatal;
    int done;
    int killed;
};

/* `bytes` fields are not NUL-terminated: search them by length. */
static bool bytes_have(ProtobufCBinaryData d, const char *needle)
{
    return memmem(d.data, d.len, needle, strlen(needle)) != NULL;
}

static void kill_fn(struct cp_node *n, const char *why)
{
    (*(int *)n->owner)++;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct cp_settings set = {.max_history_messages = 3,
                              .typing_timeout_ms = 100,
                              .heartbeat_interval_ms = 5000,
                              .node_queue_limit = 1 << 20};
    cp_ctx_init(&f->c, &set, cp_store_memory_create());
    /* as the server wires it: the store's member changes become Membership items */
    struct cp_cluster_hooks hooks;
    cp_changes_hooks(&f->c, &hooks);
    cp_store_memory_set_hooks(f->c.store, &hooks);
    cp_node_init(&f->a, set.node_queue_limit);
    cp_node_init(&f->b, set.node_queue_limit);
    f->a.owner = f->b.owner = &f->killed;
    f->a.kill = f->b.kill = kill_fn;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cp_nodelink_node_ended(&f->c, &f->a);
    cp_nodelink_node_ended(&f->c, &f->b);
    cp_node_fini(&f->a);
    cp_node_fini(&f->b);
    cp_ctx_fini(&f->c);
    free(f);
    return 0;
}

static void done_fn(void *arg, const char *fatal)
{
    struct fixture *f = arg;
    f->fatal = fatal;
    f->done++;
}

static void handle(struct fixture *f, struct cp_node *n, NodeItem *item)
{
    int before = f->done;
    cp_nodelink_handle(&f->c, n, item, done_fn, f);
    assert_int_equal(f->done, before + 1); /* memory store: inline */
    while (cp_fanout_pop_dirty(&f->c.fan) != NULL)
        ;
}

/* Takes everything queued on `n`, decoded (caller frees). */
static ControlBatch *take(struct cp_node *n)
{
    ControlBatch *b = switchboard__internal__v1__control_batch__unpack(
        NULL, n->out.len, (const uint8_t *)n->out.data);
    assert_non_null(b);
    cp_node_consume(n, n->out.len);
    return b;
}

static void send_hello(struct fixture *f, struct cp_node *n, const char *id)
{
    Switchboard__Internal__V1__Hello h = SWITCHBOARD__INTERNAL__V1__HELLO__INIT;
    h.node_id = (char *)id;
    NodeItem it = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__INIT;
    it.kind_case = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_HELLO;
    it.hello = &h;
    handle(f, n, &it);
}

static void hello(struct fixture *f, struct cp_node *n, const char *id)
{
    send_hello(f, n, id);
    assert_null(f->fatal);
    ControlBatch *b = take(n);
    assert_int_equal(b->n_items, 1);
    assert_int_equal(b->items[0]->kind_case, SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_WELCOME);
    assert_int_equal(b->items[0]->welcome->heartbeat_interval_ms, 5000);
    switchboard__internal__v1__control_batch__free_unpacked(b, NULL);
}

static void open_conn(struct fixture *f, struct cp_node *n, const char *conn, const char *user)
{
    Switchboard__Internal__V1__ConnOpen o = SWITCHBOARD__INTERNAL__V1__CONN_OPEN__INIT;
    o.request_id = 7;
    o.connection_id = (char *)conn;
    o.user_id = (char *)user;
    NodeItem it = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__INIT;
    it.kind_case = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_CONN_OPEN;
    it.conn_open = &o;
    handle(f, n, &it);
}

static void request(struct fixture *f, struct cp_node *n,
                    Switchboard__Internal__V1__ClientRequest *r)
{
    NodeItem it = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__INIT;
    it.kind_case = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_REQUEST;
    it.request = r;
    handle(f, n, &it);
}

static void join(struct fixture *f, struct cp_node *n, const char *conn, const char *room,
                 bool has_since, int64_t since)
{
    Switchboard__Internal__V1__JoinOp j = SWITCHBOARD__INTERNAL__V1__JOIN_OP__INIT;
    j.room_id = (char *)room;
    j.has_since = has_since;
    j.since = since;
    Switchboard__Internal__V1__ClientRequest r = SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__INIT;
    r.request_id = 1;
    r.connection_id = (char *)conn;
    r.op_case = SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_JOIN;
    r.join = &j;
    request(f, n, &r);
}

static void publish(struct fixture *f, struct cp_node *n, const char *conn, const char *room,
                    const char *data)
{
    Switchboard__Internal__V1__PublishOp p = SWITCHBOARD__INTERNAL__V1__PUBLISH_OP__INIT;
    p.room_id = (char *)room;
    p.data.data = (uint8_t *)data;
    p.data.len = strlen(data);
    Switchboard__Internal__V1__ClientRequest r = SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__INIT;
    r.request_id = 2;
    r.connection_id = (char *)conn;
    r.op_case = SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_MESSAGE;
    r.message = &p;
    request(f, n, &r);
}

static void ignore_room(void *arg, const struct cp_status *st, const struct cp_room *r)
{
}

static void test_nodelink_hello_must_come_first(void **state)
{
    struct fixture *f = *state;
    Switchboard__Internal__V1__Heartbeat hb = SWITCHBOARD__INTERNAL__V1__HEARTBEAT__INIT;
    NodeItem it = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__INIT;
    it.kind_case = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_HEARTBEAT;
    it.heartbeat = &hb;
    handle(f, &f->a, &it);
    assert_non_null(f->fatal);
    hello(f, &f->a, "dp-1");
    handle(f, &f->a, &it);
    assert_null(f->fatal);
    Switchboard__Internal__V1__Hello h = SWITCHBOARD__INTERNAL__V1__HELLO__INIT;
    h.node_id = "dp-1";
    it.kind_case = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_HELLO;
    it.hello = &h;
    handle(f, &f->a, &it);
    assert_non_null(f->fatal); /* twice */
}

static void test_nodelink_hello_for_a_live_node_id_refused(void **state)
{
    struct fixture *f = *state;
    hello(f, &f->a, "dp-1");
    f->a.last_rx_mono = sb_time_mono_ms(); /* it just sent something: live */
    /* Another stream naming the same node id is refused with permission_denied; the live
     * stream is not touched and keeps the id. */
    send_hello(f, &f->b, "dp-1");
    assert_string_equal(f->fatal, "permission_denied: node id dp-1 is linked by another stream");
    assert_int_equal(sb_code_from_status_message(f->fatal, NULL), SB_CODE_PERMISSION_DENIED);
    assert_int_equal(f->killed, 0);
    assert_true(f->a.registered);
    assert_false(f->b.registered);
    assert_null(f->b.id);
    assert_ptr_equal(sb_map_get(&f->c.nodes, "dp-1"), &f->a);
    /* The refused stream ending does not unregister the live one. */
    cp_nodelink_node_ended(&f->c, &f->b);
    assert_ptr_equal(sb_map_get(&f->c.nodes, "dp-1"), &f->a);
    /* Silent for more than two heartbeat intervals: taken for dead, and replaced. */
    f->a.last_rx_mono = sb_time_mono_ms() - 2 * 5000 - 1;
    hello(f, &f->b, "dp-1");
    assert_int_equal(f->killed, 1);
    assert_false(f->a.registered);
    assert_ptr_equal(sb_map_get(&f->c.nodes, "dp-1"), &f->b);
}

static void test_nodelink_join_message_flow(void **state)
{
    struct fixture *f = *state;
    struct cp_room room = {.id = "r1", .name = "", .description = "", .owner_id = ""};
    f->c.store->ops->room_create(f->c.store, &room, ignore_room, NULL);
    hello(f, &f->a, "dp-1");
    hello(f, &f->b, "dp-2");
    open_conn(f, &f->a, "c-a", "alice");
    open_conn(f, &f->b, "c-b", "bob");
    open_conn(f, &f->b, "c-b2", "bob");
    ControlBatch *b = take(&f->a);
    assert_int_equal(b->n_items, 1);
    assert_int_equal(b->items[0]->conn_opened->n_rooms, 0);
    assert_string_equal(b->items[0]->conn_opened->error_code, "");
    switchboard__internal__v1__control_batch__free_unpacked(b, NULL);
    switchboard__internal__v1__control_batch__free_unpacked(take(&f->b), NULL);

    join(f, &f->a, "c-a", "r1", false, 0);
    join(f, &f->b, "c-b", "r1", false, 0);
    /* Node a: Membership(alice), join event, ack; then bob's join event. */
    b = take(&f->a);
    assert_int_equal(b->n_items, 4);
    assert_int_equal(b->items[0]->kind_case,
                     SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_MEMBERSHIP);
    assert_int_equal(b->items[1]->kind_case,
                     SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_DELIVERY);
    assert_int_equal(b->items[2]->kind_case, SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_REPLY);
    assert_true(bytes_have(b->items[3]->delivery->frame, "\"user_id\":\"bob\""));
    switchboard__internal__v1__control_batch__free_unpacked(b, NULL);
    b = take(&f->b);
    assert_int_equal(b->items[0]->kind_case,
                     SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_MEMBERSHIP);
    switchboard__internal__v1__control_batch__free_unpacked(b, NULL);

    for (int i = 1; i <= 5; i++)
        publish(f, &f->a, "c-a", "r1", "{\"n\":1}");
    b = take(&f->b); /* one delivery per message to node b, even with two connections */
    assert_int_equal(b->n_items, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(b->items[i]->delivery->seq, i + 1);
    switchboard__internal__v1__control_batch__free_unpacked(b, NULL);
    b = take(&f->a); /* delivery then ack, for each */
    assert_int_equal(b->n_items, 10);
    assert_int_equal(b->items[9]->reply->seq, 5);
    assert_string_equal(b->items[9]->reply->error_code, "");
    switchboard__internal__v1__control_batch__free_unpacked(b, NULL);

    publish(f, &f->a, "c-a", "r1", "{bad");
    b = take(&f->a);
    assert_string_equal(b->items[0]->reply->error_code, "invalid_message");
    switchboard__internal__v1__control_batch__free_unpacked(b, NULL);

    /* since 1 with 3 kept (3..5): gap, replay 3..5 */
    join(f, &f->b, "c-b", "r1", true, 1);
    b = take(&f->b);
    assert_int_equal(b->n_items, 1);
    assert_true(b->items[0]->reply->history_gap);
    assert_int_equal(b->items[0]->reply->n_messages, 3);
    assert_true(bytes_have(b->items[0]->reply->messages[0], "\"seq\":3"));
    switchboard__internal__v1__control_batch__free_unpacked(b, NULL);

    /* typing: delivered once, expires to false */
    Switchboard__Internal__V1__TypingOp t = SWITCHBOARD__INTERNAL__V1__TYPING_OP__INIT;
    t.room_id = "r1";
    t.typing = 1;
    Switchboard__Internal__V1__ClientRequest r = SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__INIT;
    r.connection_id = "c-a";
    r.op_case = SWITCHBOARD__INTERNAL__V1__CLIENT_REQUEST__OP_TYPING;
    r.typing = &t;
    request(f, &f->a, &r);
    request(f, &f->a, &r);
    b = take(&f->b);
    assert_int_equal(b->n_items, 1);
    switchboard__internal__v1__control_batch__free_unpacked(b, NULL);
    cp_typing_tick(&f->c, sb_time_mono_ms() + 1000);
    cp_online_tick(&f->c, sb_time_mono_ms() + 1000);
    b = take(&f->b);
    assert_int_equal(b->n_items, 1);
    assert_true(bytes_have(b->items[0]->delivery->frame, "\"typing\":false"));
    switchboard__internal__v1__control_batch__free_unpacked(b, NULL);
    switchboard__internal__v1__control_batch__free_unpacked(take(&f->a), NULL);

    /* node b goes away: bob offline, alice's node hears it */
    cp_nodelink_node_ended(&f->c, &f->b);
    assert_null(cp_presence_conn(&f->c.presence, "c-b"));
    assert_false(cp_presence_user(&f->c.presence, "bob")->online);
    b = take(&f->a);
    assert_int_equal(b->n_items, 1);
    assert_true(bytes_have(b->items[0]->delivery->frame, "\"status\":\"offline\""));
    assert_int_equal(b->items[0]->delivery->n_user_ids, 1);
    switchboard__internal__v1__control_batch__free_unpacked(b, NULL);
}

static void test_nodelink_requests_need_an_open_connection(void **state)
{
    struct fixture *f = *state;
    hello(f, &f->a, "dp-1");
    join(f, &f->a, "c-nope", "r1", false, 0);
    ControlBatch *b = take(&f->a);
    assert_string_equal(b->items[0]->reply->error_code, "invalid_message");
    switchboard__internal__v1__control_batch__free_unpacked(b, NULL);
    open_conn(f, &f->a, "c-a", "alice");
    switchboard__internal__v1__control_batch__free_unpacked(take(&f->a), NULL);
    join(f, &f->a, "c-a", "bad room", false, 0);
    join(f, &f->a, "c-a", "missing", false, 0);
    b = take(&f->a);
    assert_string_equal(b->items[0]->reply->error_code, "invalid_message");
    assert_string_equal(b->items[1]->reply->error_code, "room_not_found");
    switchboard__internal__v1__control_batch__free_unpacked(b, NULL);
}

/* A private room: the client join needs the ConnOpen's rooms grant (id or glob); none, or one
 * for other rooms, is permission_denied. */
static void test_nodelink_private_join_needs_rooms_grant(void **state)
{
    struct fixture *f = *state;
    struct cp_room room = {
        .id = "team-a", .name = "", .description = "", .owner_id = "", .is_private = true};
    f->c.store->ops->room_create(f->c.store, &room, ignore_room, NULL);
    hello(f, &f->a, "dp-1");
    open_conn(f, &f->a, "c-none", "alice");
    char *rooms[] = {"eng-*", "team-*"};
    Switchboard__Internal__V1__Grants g = SWITCHBOARD__INTERNAL__V1__GRANTS__INIT;
    g.rooms = rooms;
    g.n_rooms = 1;
    Switchboard__Internal__V1__ConnOpen o = SWITCHBOARD__INTERNAL__V1__CONN_OPEN__INIT;
    o.request_id = 8;
    o.connection_id = "c-other";
    o.user_id = "bob";
    o.grants = &g;
    NodeItem it = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__INIT;
    it.kind_case = SWITCHBOARD__INTERNAL__V1__NODE_ITEM__KIND_CONN_OPEN;
    it.conn_open = &o;
    handle(f, &f->a, &it);
    g.n_rooms = 2;
    o.connection_id = "c-team";
    o.user_id = "carol";
    handle(f, &f->a, &it);
    switchboard__internal__v1__control_batch__free_unpacked(take(&f->a), NULL);

    join(f, &f->a, "c-none", "team-a", false, 0);
    join(f, &f->a, "c-other", "team-a", false, 0);
    ControlBatch *b = take(&f->a);
    assert_int_equal(b->n_items, 2);
    assert_string_equal(b->items[0]->reply->error_code, "permission_denied");
    assert_string_equal(b->items[1]->reply->error_code, "permission_denied");
    switchboard__internal__v1__control_batch__free_unpacked(b, NULL);
    join(f, &f->a, "c-team", "team-a", false, 0);
    b = take(&f->a); /* Membership, the join event, the ack */
    assert_int_equal(b->n_items, 3);
    assert_int_equal(b->items[0]->kind_case,
                     SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_MEMBERSHIP);
    assert_int_equal(b->items[2]->kind_case, SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_REPLY);
    assert_string_equal(b->items[2]->reply->error_code, "");
    switchboard__internal__v1__control_batch__free_unpacked(b, NULL);
}

static void test_node_queue_batches_and_overflow(void **state)
{
    (void)state;
    int killed = 0;
    struct cp_node n;
    cp_node_init(&n, 100);
    n.owner = &killed;
    n.kill = kill_fn;
    Switchboard__Internal__V1__Kick k = SWITCHBOARD__INTERNAL__V1__KICK__INIT;
    k.connection_id = "c-123456789";
    ControlItem item = SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__INIT;
    item.kind_case = SWITCHBOARD__INTERNAL__V1__CONTROL_ITEM__KIND_KICK;
    item.kick = &k;
    assert_int_equal(cp_node_queue(&n, &item), SB_OK);
    size_t one = n.out.len;
    for (int i = 0; i < 4; i++)
        assert_int_equal(cp_node_queue(&n, &item), SB_OK);
    assert_int_equal(cp_node_batch_len(&n, 2 * one + 1), 2 * one); /* whole items only */
    assert_int_equal(cp_node_batch_len(&n, 1), one);               /* at least one */
    while (cp_node_queue(&n, &item) == SB_OK)
        ;
    assert_int_equal(killed, 1);
    assert_int_equal(cp_node_queue(&n, &item), SB_EFULL);
    assert_int_equal(killed, 1); /* once */
    cp_node_fini(&n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nodelink_hello_must_come_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nodelink_hello_for_a_live_node_id_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_nodelink_join_message_flow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nodelink_requests_need_an_open_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_nodelink_private_join_needs_rooms_grant, setup,
                                        teardown),
        cmocka_unit_test(test_node_queue_batches_and_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
