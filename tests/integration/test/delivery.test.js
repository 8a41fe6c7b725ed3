// Delivery and connections over gRPC: Broadcast, SendToUser, SendToConnection (idempotency keys),
// KickConnection (kicked, close 1008), ListConnections, GetStats; WS and SSE clients on two nodes.
// stores: memory, etcd
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startSystem, stopsCleanly, waitFor } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const { SseClient } = require('../lib/sseclient');
const F = require('../lib/frames');
const { uniq, createRoom, rejectsWith } = require('../lib/util');
const { call, status } = require('../lib/grpc');

const json = (v) => Buffer.from(JSON.stringify(v));

describe('delivery and connections', { timeout: 120000 }, () => {
  let sys;
  let dp2;
  const clients = [];

  async function connect(user, url) {
    const c = await WsClient.connect(url || sys.wsUrl(user));
    clients.push(c);
    return c;
  }

  async function sse(user) {
    const c = await SseClient.connect(`${sys.httpBase}/sse?user_id=${encodeURIComponent(user)}`);
    clients.push({ close: async () => c.close() });
    return c;
  }

  async function listConns(req) {
    return (await call(sys.api.connections, 'ListConnections', req)).connections;
  }

  before(async () => {
    sys = await startSystem();
    dp2 = await sys.addDataPlane();
  });

  const shutdown = async () => {
    for (const c of clients) await c.close();
    if (sys) await sys.stop();
  };
  after(shutdown);

  it('Broadcast with an idempotency_key delivers the system frame once and repeats the first result', async () => {
    const user = uniq('bcast');
    const a = await connect(user);
    const b = await connect(user, dp2.wsUrl(user));
    const key = uniq('key');
    const req = { data: json({ notice: 'once' }), idempotency_key: key };
    const r1 = await call(sys.api.messages, 'Broadcast', req);
    assert.ok(r1.delivered >= 2, `delivered ${r1.delivered}`);
    for (const c of [a, b]) {
      F.assertFrame(await c.next({ type: 'system' }), { type: 'system', data: { notice: 'once' }, timestamp: F.TS });
    }
    // A third connection opens: the repeat still answers the first result and delivers nothing.
    const late = await connect(user);
    const r2 = await call(sys.api.messages, 'Broadcast', req);
    assert.equal(r2.delivered, r1.delivered);
    for (const c of [a, b, late]) await c.none({ type: 'system' }, c === a ? 400 : 0);
    // Another key is another broadcast.
    const r3 = await call(sys.api.messages, 'Broadcast', { ...req, idempotency_key: uniq('key') });
    assert.equal(r3.delivered, r1.delivered + 1);
    await late.next({ type: 'system' });
    await rejectsWith(call(sys.api.messages, 'Broadcast', { data: json(1), idempotency_key: 'k'.repeat(129) }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(call(sys.api.messages, 'Broadcast', { data: json(1), exclude_user_ids: ['bad user'] }), status.INVALID_ARGUMENT, 'invalid_message');
  });

  it('SendToUser counts the connections of the user on every node; the idempotency_key holds', async () => {
    const user = uniq('dm');
    const a = await connect(user);
    const b = await connect(user, dp2.wsUrl(user));
    const s = await sse(user);
    const other = await connect(uniq('other'));
    const key = uniq('key');
    const r = await call(sys.api.messages, 'SendToUser', { user_id: user, data: json({ hi: 1 }), sender_id: 'support', idempotency_key: key });
    assert.equal(r.delivered, 3);
    const want = { type: 'message', id: F.MSG_ID, user_id: 'support', data: { hi: 1 }, timestamp: F.TS };
    F.assertFrame(await a.next({ type: 'message' }), want);
    F.assertFrame(await b.next({ type: 'message' }), want);
    F.assertFrame((await s.next((e) => e.event === 'message')).data, want);
    const again = await call(sys.api.messages, 'SendToUser', { user_id: user, data: json({ hi: 1 }), sender_id: 'support', idempotency_key: key });
    assert.equal(again.delivered, 3);
    await a.none({ type: 'message' }, 400);
    await b.none({ type: 'message' }, 0);
    await other.none({ type: 'message' }, 0);
    await rejectsWith(call(sys.api.messages, 'SendToUser', { user_id: user, data: Buffer.from('{') }), status.INVALID_ARGUMENT, 'invalid_message');
  });

  it('SendToConnection reaches exactly one connection with a direct message frame', async () => {
    const user = uniq('one');
    const a = await connect(user);
    const b = await connect(user, dp2.wsUrl(user));
    const r = await call(sys.api.messages, 'SendToConnection', { connection_id: b.connected.connection_id, data: json([1, 'two']) });
    assert.deepEqual(r, {});
    F.assertFrame(await b.next({ type: 'message' }), { type: 'message', id: F.MSG_ID, data: [1, 'two'], timestamp: F.TS });
    await a.none({ type: 'message' }, 300);

    // With a sender, and an idempotency key: once.
    const key = uniq('key');
    const req = { connection_id: a.connected.connection_id, data: json('x'), sender_id: 'bot', idempotency_key: key };
    await call(sys.api.messages, 'SendToConnection', req);
    await call(sys.api.messages, 'SendToConnection', req);
    F.assertFrame(await a.next({ type: 'message' }), { type: 'message', id: F.MSG_ID, user_id: 'bot', data: 'x', timestamp: F.TS });
    await a.none({ type: 'message' }, 400);
    await b.none({ type: 'message' }, 0);

    await rejectsWith(call(sys.api.messages, 'SendToConnection', { connection_id: 'c-doesnotexist', data: json(1) }), status.NOT_FOUND, 'connection_not_found');
    await rejectsWith(call(sys.api.messages, 'SendToConnection', { connection_id: '', data: json(1) }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(call(sys.api.messages, 'SendToConnection', { connection_id: a.connected.connection_id, data: Buffer.from('nope') }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(call(sys.api.messages, 'SendToConnection', { connection_id: a.connected.connection_id, data: json(1), sender_id: 'bad id' }), status.INVALID_ARGUMENT, 'invalid_message');
    const big = json('x'.repeat(70000)); // over the 64 KiB max_message_size
    await rejectsWith(call(sys.api.messages, 'SendToConnection', { connection_id: a.connected.connection_id, data: big }), status.RESOURCE_EXHAUSTED, 'message_too_large');
    await rejectsWith(call(sys.api.messages, 'Broadcast', { data: big }), status.RESOURCE_EXHAUSTED, 'message_too_large');
  });

  it('KickConnection sends kicked with the reason, then closes with 1008; the connection is gone', async () => {
    const user = uniq('kick');
    const a = await connect(user);
    const b = await connect(user, dp2.wsUrl(user));
    const id = b.connected.connection_id;
    assert.deepEqual(await call(sys.api.connections, 'KickConnection', { connection_id: id, reason: 'spamming' }), {});
    F.assertFrame(await b.next({ type: 'kicked' }), { type: 'kicked', reason: 'spamming' });
    const closed = await b.closed;
    assert.equal(closed.code, 1008);
    assert.equal(a.isOpen, true, 'the other connection stays');
    await waitFor('kicked connection gone', async () => !(await listConns({ user_id: user })).some((c) => c.id === id));
    await rejectsWith(call(sys.api.connections, 'KickConnection', { connection_id: id }), status.NOT_FOUND, 'connection_not_found');
    await rejectsWith(call(sys.api.connections, 'KickConnection', { connection_id: 'no such!' }), status.INVALID_ARGUMENT, 'invalid_message');
    // Without a reason the frame still says why.
    await call(sys.api.connections, 'KickConnection', { connection_id: a.connected.connection_id });
    F.assertFrame(await a.next({ type: 'kicked' }), { type: 'kicked', reason: 'kicked' });
    assert.equal((await a.closed).code, 1008);
  });

  it('KickConnection of an SSE stream sends the kicked event, then ends the stream', async () => {
    const user = uniq('kick-sse');
    const s = await sse(user);
    await call(sys.api.connections, 'KickConnection', { connection_id: s.connected.connection_id, reason: 'bye' });
    const ev = await s.next((e) => e.event === 'kicked');
    F.assertFrame(ev.data, { type: 'kicked', reason: 'bye' });
    await waitFor('SSE stream ended', async () => s.ended, { timeout: 5000 });
    await waitFor('SSE connection gone', async () => (await listConns({ user_id: user })).length === 0);
  });

  it('ListConnections lists every connection with its fields, filtered by user_id and node_id', async () => {
    const room = uniq('lc-room');
    await createRoom(sys, room);
    const u1 = uniq('lc1');
    const u2 = uniq('lc2');
    const t0 = Date.now();
    const a = await connect(u1);
    const b = await connect(u1, dp2.wsUrl(u1));
    const s = await sse(u2);
    await a.request({ type: 'join', room_id: room });

    const mine = await listConns({ user_id: u1 });
    assert.equal(mine.length, 2);
    const byId = Object.fromEntries(mine.map((c) => [c.id, c]));
    for (const ws of [a, b]) {
      const c = byId[ws.connected.connection_id];
      assert.ok(c, `connection ${ws.connected.connection_id} listed`);
      assert.equal(c.user_id, u1);
      assert.equal(c.session_id, ws.connected.session_id);
      assert.equal(c.node_id, ws.connected.node_id);
      assert.equal(c.transport, 'websocket');
      assert.deepEqual(c.rooms, [room], 'membership belongs to the user: every connection has the room');
      assert.deepEqual(c.channels, []);
      assert.ok(c.connected_at >= t0 - 5000 && c.connected_at <= Date.now() + 5000, `connected_at ${c.connected_at}`);
      assert.ok(c.last_activity >= c.connected_at, `last_activity ${c.last_activity}`);
    }
    // a sent a request: its last activity moved.
    assert.ok(byId[a.connected.connection_id].last_activity >= byId[a.connected.connection_id].connected_at);

    const theirs = await listConns({ user_id: u2 });
    assert.equal(theirs.length, 1);
    assert.equal(theirs[0].id, s.connected.connection_id);
    assert.equal(theirs[0].transport, 'sse');
    assert.deepEqual(theirs[0].rooms, []);

    const node2 = b.connected.node_id;
    assert.notEqual(node2, a.connected.node_id);
    const onNode2 = await listConns({ node_id: node2 });
    assert.ok(onNode2.every((c) => c.node_id === node2));
    assert.ok(onNode2.some((c) => c.id === b.connected.connection_id));
    assert.ok(!onNode2.some((c) => c.id === a.connected.connection_id));
    const both = await listConns({ user_id: u1, node_id: node2 });
    assert.deepEqual(both.map((c) => c.id), [b.connected.connection_id]);
    const all = await listConns({});
    for (const id of [a, b, s].map((c) => c.connected.connection_id)) assert.ok(all.some((c) => c.id === id), `${id} in the full list`);
    assert.deepEqual(await listConns({ user_id: uniq('nobody') }), []);
    await rejectsWith(call(sys.api.connections, 'ListConnections', { user_id: 'bad user' }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(call(sys.api.connections, 'ListConnections', { node_id: 'bad/node' }), status.INVALID_ARGUMENT, 'invalid_message');
  });

  it("ListConnections lists the user's channels (with the channel flows)", async (t) => {
    const ch = uniq('lc-ch');
    try {
      await call(sys.api.channels, 'CreateChannel', { channel_id: ch });
    } catch (e) {
      if (e.code === status.UNIMPLEMENTED) return t.skip('channels are not implemented here');
      throw e;
    }
    const user = uniq('lc-sub');
    const a = await connect(user);
    await call(sys.api.channels, 'Subscribe', { channel_id: ch, user_id: user });
    const other = await connect(uniq('lc-nosub'));
    const [c] = await listConns({ user_id: user });
    assert.equal(c.id, a.connected.connection_id);
    assert.deepEqual(c.channels, [ch]);
    // The whole list reads every user's subscriptions at once.
    const all = await listConns({});
    assert.deepEqual(all.find((x) => x.id === a.connected.connection_id).channels, [ch]);
    assert.deepEqual(all.find((x) => x.id === other.connected.connection_id).channels, []);
  });

  it('GetStats reports totals and per-node figures for both nodes', async () => {
    const a = await connect(uniq('st'));
    const b = await connect(uniq('st'), dp2.wsUrl(uniq('st')));
    const st = await call(sys.api.connections, 'GetStats', {});
    const conns = await listConns({});
    assert.equal(st.active_connections, conns.length);
    assert.ok(st.online_users >= 2);
    assert.ok(st.rooms >= 1);
    assert.equal(typeof st.channels, 'number');
    assert.ok(st.messages_delivered >= 1, `messages_delivered ${st.messages_delivered}`);
    for (const node of [a.connected.node_id, b.connected.node_id]) {
      const n = st.nodes.find((x) => x.id === node);
      assert.ok(n, `node ${node} in ${JSON.stringify(st.nodes)}`);
      assert.match(n.address, /^127\.0\.0\.1:\d+$/);
      assert.equal(n.connections, conns.filter((c) => c.node_id === node).length);
      assert.ok(n.last_heartbeat > Date.now() - 60000, `last_heartbeat ${n.last_heartbeat}`);
      assert.equal(typeof n.messages_delivered, 'number');
    }
    sys.check();
  });

  stopsCleanly(shutdown);
});
