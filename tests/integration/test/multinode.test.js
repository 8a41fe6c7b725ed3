// Two data planes on one control plane: room messages, typing and presence cross nodes, and a
// data plane that dies takes its users offline for the members on the other node.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startSystem, stopsCleanly } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const F = require('../lib/frames');
const { createRoom } = require('../lib/util');
const { call } = require('../lib/grpc');

describe('two data planes', { timeout: 60000 }, () => {
  let sys;
  let dp2;
  const clients = [];

  before(async () => {
    sys = await startSystem({ cpArgs: ['--presence-grace-ms', '0'] });
    dp2 = await sys.addDataPlane();
  });

  const shutdown = async () => {
    for (const c of clients) await c.close();
    if (sys) await sys.stop();
  };
  after(shutdown);

  it('members on different nodes talk; a dead node takes its users offline', async () => {
    await createRoom(sys, 'span');
    const a = await WsClient.connect(sys.wsUrl('span-a'));
    const b = await WsClient.connect(dp2.wsUrl('span-b'));
    const b2 = await WsClient.connect(sys.wsUrl('span-b')); // bob on both nodes
    clients.push(a, b, b2);
    assert.notEqual(a.connected.node_id, b.connected.node_id, 'two nodes, two node ids');
    await a.request({ type: 'join', room_id: 'span' });
    await b.request({ type: 'join', room_id: 'span' });
    F.assertFrame(await a.next({ type: 'join' }), { type: 'join', room_id: 'span', user_id: 'span-b', timestamp: F.TS });

    const ack = await b.request({ type: 'message', room_id: 'span', data: 'across' });
    for (const c of [a, b, b2]) {
      const m = await c.next({ type: 'message', data: 'across' });
      assert.equal(m.id, ack.id);
    }
    const ack2 = await a.request({ type: 'message', room_id: 'span', data: 'back' });
    assert.equal(ack2.seq, ack.seq + 1);
    assert.equal((await b.next({ type: 'message', data: 'back' })).seq, ack2.seq);

    a.send({ type: 'typing', room_id: 'span', typing: true });
    F.assertFrame(await b.next({ type: 'typing' }), { type: 'typing', room_id: 'span', user_id: 'span-a', typing: true });
    await b2.next({ type: 'typing', typing: true });

    const r = await call(sys.api.messages, 'Broadcast', { data: Buffer.from('"all"') });
    assert.equal(r.delivered, 3);

    // Bob's second node dies: bob is still online through the first one.
    a.drain();
    dp2.kill();
    await dp2.exitPromise;
    await a.none({ type: 'presence', user_id: 'span-b' }, 500);
    const p = await call(sys.api.presence, 'GetPresence', { user_id: 'span-b' });
    assert.equal(p.connection_count, 1);
    // His last connection closes: offline for alice.
    await b2.close();
    F.assertFrame(await a.next({ type: 'presence', user_id: 'span-b' }, 5000), { type: 'presence', user_id: 'span-b', status: 'offline' }, {
      timestamp: F.TS,
      last_seen: () => true,
    });
  });

  it('a node killed with connections: their users go offline for the other node', async () => {
    await createRoom(sys, 'span2');
    const dp3 = await sys.addDataPlane();
    const a = await WsClient.connect(sys.wsUrl('span2-a'));
    const c = await WsClient.connect(dp3.wsUrl('span2-c'));
    clients.push(a, c);
    await a.request({ type: 'join', room_id: 'span2' });
    await c.request({ type: 'join', room_id: 'span2' });
    await a.next({ type: 'join', user_id: 'span2-c' });
    dp3.kill();
    await dp3.exitPromise;
    F.assertFrame(await a.next({ type: 'presence', user_id: 'span2-c' }, 10000), { type: 'presence', user_id: 'span2-c', status: 'offline' }, {
      timestamp: F.TS,
      last_seen: () => true,
    });
    const online = await call(sys.api.presence, 'GetOnlineUsers', { room_id: 'span2' });
    assert.deepEqual(online.user_ids, ['span2-a']);
  });

  stopsCleanly(shutdown);
});
