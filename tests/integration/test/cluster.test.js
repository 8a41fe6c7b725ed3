// Two control planes on one etcd, two data planes linked to both (docs/distributed.md): members
// on different nodes share one room, gRPC calls go to either replica, and everyone sees the same
// order, gap-free seq, every message once.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Cluster } = require('../lib/cluster');
const { stopsCleanly } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const { call } = require('../lib/grpc');
const T = require('../lib/traffic');

describe('cluster: 2 control planes, 2 data planes, etcd', { timeout: 120000 }, () => {
  let cl;
  const clients = [];

  before(async () => {
    cl = await new Cluster({ cps: 2, dps: 2, leaseTtlMs: 3000 }).start();
  });

  const shutdown = async () => {
    for (const c of clients) await c.close();
    if (cl) await cl.stop();
  };
  after(shutdown);

  it('clients on both nodes, gRPC on both replicas: one order, gap-free seq, each message once', async () => {
    const room = `cl-room-${process.pid}`;
    const [cp1, cp2] = cl.cps;
    const [dp1, dp2] = cl.dps;
    await call(cp1.api.rooms, 'CreateRoom', { id: room, name: room });
    // Visible through the other replica too (its cache is fed by the watch).
    assert.equal((await call(cp2.api.rooms, 'GetRoom', { room_id: room })).id, room);

    const users = ['a1', 'a2', 'b1', 'b2'].map((u) => `cl-${u}`);
    const a1 = await WsClient.connect(dp1.wsUrl(users[0]));
    const a2 = await WsClient.connect(dp1.wsUrl(users[1]));
    const b1 = await WsClient.connect(dp2.wsUrl(users[2]));
    const b2 = await WsClient.connect(dp2.wsUrl(users[3]));
    const all = [a1, a2, b1, b2];
    clients.push(...all);
    assert.equal(a1.connected.node_id, 'dp-1');
    assert.equal(b1.connected.node_id, 'dp-2');
    // Two join through the client protocol, two through gRPC on different replicas.
    assert.equal((await a1.request({ type: 'join', room_id: room })).type, 'ack');
    assert.equal((await b1.request({ type: 'join', room_id: room })).type, 'ack');
    await call(cp1.api.rooms, 'JoinRoom', { room_id: room, user_id: users[1] });
    await call(cp2.api.rooms, 'JoinRoom', { room_id: room, user_id: users[3] });
    const members = await call(cp2.api.rooms, 'GetRoomMembers', { room_id: room });
    assert.deepEqual(members.members.map((m) => m.user_id).sort(), users.slice().sort());

    // Everyone publishes at once; the backend publishes through both replicas meanwhile.
    const pubs = all.map((c, i) => T.publisher(c, room, users[i], { intervalMs: 10 }));
    const grpcAcks = [];
    for (let i = 0; i < 20; i += 1) {
      const cp = i % 2 ? cp2 : cp1;
      const r = await call(cp.api.messages, 'BroadcastToRoom', { room_id: room, data: Buffer.from(JSON.stringify({ g: i })), user_id: 'backend' });
      grpcAcks.push({ id: r.message_id, seq: Number(r.seq) });
    }
    const records = (await Promise.all(pubs.map((p) => p.stop()))).flat();
    const failed = T.failed(records);
    assert.equal(failed.length, 0, `every publish acked: ${JSON.stringify(failed.slice(0, 3))}`);
    const acks = T.acked(records).map((r) => ({ id: r.frame.id, seq: r.frame.seq })).concat(grpcAcks);

    // Wait until every client has seen the last seq, then compare.
    const last = Math.max(...acks.map((a) => a.seq));
    for (const c of all) await c.next((f) => f.type === 'message' && f.room_id === room && f.seq === last, 10000);
    const h1 = await T.fullHistory(cp1.api, room);
    const h2 = await T.fullHistory(cp2.api, room);
    assert.deepEqual(h2, h1, 'both replicas serve the same history');
    const sum = T.checkRoom({ history: h1, acks, receivers: all, room });
    const orders = all.map((c) => T.seen(c, room).map((m) => m.id).join(','));
    for (const o of orders) assert.equal(o, orders[0], 'every member saw the same order');
    assert.equal(sum.stored, acks.length, 'nothing stored that was not acked');
    console.log(`# cluster: ${sum.acked} messages (${records.length} from 4 clients on 2 nodes, 20 via gRPC on 2 replicas); ` + `history ${sum.stored} gap-free; each member received ${sum.perReceiver.join('/')}`);

    // Presence crosses replicas: a user known only through dp-2 is online on cp-1.
    const online = await call(cp1.api.presence, 'GetOnlineUsers', { room_id: room });
    assert.deepEqual(online.user_ids.slice().sort(), users.slice().sort());
    cl.check();
  });

  stopsCleanly(shutdown);
});
