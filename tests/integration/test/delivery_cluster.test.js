// Delivery features across replicas (2 control planes on etcd, 2 data planes): a watcher on one
// replica sees changes made through the other, an idempotency key holds across replicas,
// ListConnections and KickConnection on either replica reach every connection, and a session
// closed on one node resumes on the other.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Cluster } = require('../lib/cluster');
const { stopsCleanly, waitFor, sleep } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const F = require('../lib/frames');
const { call } = require('../lib/grpc');

const json = (v) => Buffer.from(JSON.stringify(v));

describe('delivery across replicas: 2 control planes, 2 data planes, etcd', { timeout: 120000 }, () => {
  let cl;
  const clients = [];
  const calls = [];

  async function connect(dp, user, extra = '') {
    const c = await WsClient.connect(`${dp.wsUrl(user)}${extra}`);
    clients.push(c);
    return c;
  }

  before(async () => {
    cl = await new Cluster({ cps: 2, dps: 2, leaseTtlMs: 3000 }).start();
  });

  const shutdown = async () => {
    for (const x of calls) x.cancel();
    for (const c of clients) await c.close();
    if (cl) await cl.stop();
  };
  after(shutdown);

  it('a watcher on one replica receives joins and messages made through the other', async () => {
    const [cp1, cp2] = cl.cps;
    const room = `dc-room-${process.pid}`;
    await call(cp1.api.rooms, 'CreateRoom', { id: room, name: room });
    const events = [];
    const w = cp2.api.connections.WatchEvents({ room_ids: [room] });
    calls.push(w);
    w.on('data', (e) => events.push(e));
    w.on('error', () => {});
    await new Promise((resolve) => w.on('metadata', resolve));
    await call(cp1.api.rooms, 'JoinRoom', { room_id: room, user_id: 'dc-alice' });
    const sent = await call(cp1.api.messages, 'BroadcastToRoom', { room_id: room, data: json('via cp1') });
    await waitFor('events on cp2', async () => events.some((e) => e.type === 'message'), { timeout: 5000 });
    assert.deepEqual(events.map((e) => e.type), ['join', 'message']);
    assert.equal(events[0].user_id, 'dc-alice');
    assert.equal(events[1].message.id, sent.message_id);
  });

  it('an idempotency key used on one replica holds on the other', async () => {
    const [cp1, cp2] = cl.cps;
    const [dp1, dp2] = cl.dps;
    const user = `dc-dm-${process.pid}`;
    const a = await connect(dp1, user);
    const b = await connect(dp2, user);
    const req = { user_id: user, data: json({ once: true }), idempotency_key: `dc-key-${process.pid}` };
    const r1 = await call(cp1.api.messages, 'SendToUser', req);
    const r2 = await call(cp2.api.messages, 'SendToUser', req);
    assert.equal(r1.delivered, 2);
    assert.equal(r2.delivered, 2);
    for (const c of [a, b]) await c.next({ type: 'message', data: { once: true } });
    await a.none({ type: 'message' }, 500);
    await b.none({ type: 'message' }, 0);
  });

  it('ListConnections and KickConnection on either replica reach connections on both nodes', async () => {
    const [cp1, cp2] = cl.cps;
    const [dp1, dp2] = cl.dps;
    const user = `dc-list-${process.pid}`;
    const a = await connect(dp1, user);
    const b = await connect(dp2, user);
    for (const cp of [cp1, cp2]) {
      await waitFor('both connections listed', async () => {
        const r = await call(cp.api.connections, 'ListConnections', { user_id: user });
        return r.connections.length === 2;
      });
      const r = await call(cp.api.connections, 'ListConnections', { user_id: user });
      assert.deepEqual(r.connections.map((c) => c.node_id).sort(), ['dp-1', 'dp-2']);
    }
    await call(cp2.api.connections, 'KickConnection', { connection_id: a.connected.connection_id, reason: 'cp2 says so' });
    F.assertFrame(await a.next({ type: 'kicked' }), { type: 'kicked', reason: 'cp2 says so' });
    assert.equal((await a.closed).code, 1008);
    await call(cp1.api.connections, 'KickConnection', { connection_id: b.connected.connection_id });
    assert.equal((await b.closed).code, 1008);
  });

  it('a session closed on one node resumes on the other', async () => {
    const [cp1] = cl.cps;
    const [dp1, dp2] = cl.dps;
    const user = `dc-sess-${process.pid}`;
    const a = await connect(dp1, user);
    const session = a.connected.session_id;
    await a.close();
    await waitFor('connection gone', async () => {
      const r = await call(cp1.api.connections, 'ListConnections', { user_id: user });
      return r.connections.length === 0;
    });
    await sleep(200);
    const b = await connect(dp2, user, `&session_id=${session}`);
    assert.equal(b.connected.node_id, 'dp-2');
    assert.equal(b.connected.session_id, session);
    assert.equal(b.connected.resumed, true);
    cl.check();
  });

  stopsCleanly(shutdown);
});
