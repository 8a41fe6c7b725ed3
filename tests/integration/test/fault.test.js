// Control plane killed under a live data plane: requests get `unavailable` error frames, client
// connections stay open, new clients are told `unavailable`, and everything recovers when the
// control plane is back (docs/nodelink.md, Lifecycle 4).
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { startSystem, httpGet, waitFor, sleep, stopsCleanly } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const F = require('../lib/frames');
const { createRoom } = require('../lib/util');

describe('control plane failure', { timeout: 90000 }, () => {
  let sys;
  const clients = [];

  before(async () => {
    sys = await startSystem({ cpArgs: ['--auto-create-rooms'] });
  });

  const shutdown = async () => {
    for (const c of clients) await c.close();
    if (sys) await sys.stop();
  };
  after(shutdown);

  it('unavailable while the control plane is down; recovery when it is back', async () => {
    await createRoom(sys, 'fault-room');
    const alice = await WsClient.connect(sys.wsUrl('fault-alice'));
    const bob = await WsClient.connect(sys.wsUrl('fault-bob'));
    clients.push(alice, bob);
    for (const c of [alice, bob]) assert.equal((await c.request({ type: 'join', room_id: 'fault-room' })).type, 'ack');
    assert.equal((await alice.request({ type: 'message', room_id: 'fault-room', data: 'before' })).type, 'ack');

    sys.cp.kill();
    await sys.cp.exitPromise;
    await waitFor('/readyz 503 after the control plane died', async () => (await httpGet(`${sys.httpBase}/readyz`)).status === 503, {
      timeout: 10000,
    });
    assert.equal((await httpGet(`${sys.httpBase}/healthz`)).status, 200, 'the data plane itself is alive');

    // A request gets an error frame with its ref; the connection stays open.
    F.assertError(await alice.request({ type: 'message', room_id: 'fault-room', data: 'during', ref: 'u1' }, 5000), 'unavailable', 'u1');
    F.assertError(await bob.request({ type: 'join', room_id: 'fault-room', ref: 'u2' }, 5000), 'unavailable', 'u2');
    F.assertError(await bob.request({ type: 'history', room_id: 'fault-room', ref: 'u3' }, 5000), 'unavailable', 'u3');
    const pong = await alice.request({ type: 'ping' });
    assert.equal(pong.type, 'pong', 'ping is answered by the data plane itself');
    assert.equal(alice.closeInfo, null);
    assert.equal(bob.closeInfo, null);

    // A new client is told unavailable and closed with 1011 (or refused with 503).
    const fresh = await new Promise((resolve) => {
      const ws = new WebSocket(sys.wsUrl('fault-carol'));
      const frames = [];
      const t = setTimeout(() => {
        ws.terminate();
        resolve({ frames, timeout: true });
      }, 5000);
      ws.on('unexpected-response', (req, res) => {
        clearTimeout(t);
        ws.terminate();
        resolve({ status: res.statusCode });
      });
      ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
      ws.on('close', (code) => {
        clearTimeout(t);
        resolve({ frames, code });
      });
      ws.on('error', () => {});
    });
    if (fresh.status !== undefined) {
      assert.equal(fresh.status, 503, JSON.stringify(fresh));
    } else {
      assert.ok(!fresh.timeout, `new client neither told nor closed: ${JSON.stringify(fresh)}`);
      const e = fresh.frames.find((f) => f.type === 'error');
      assert.ok(e, JSON.stringify(fresh));
      assert.equal(e.code, 'unavailable');
      assert.equal(fresh.code, 1011);
    }

    // Back up (empty memory store): the data plane relinks, resyncs its connections.
    await sleep(300);
    await sys.restartControlPlane();
    await sys.dp.waitReady(15000);
    // The old connections are known again: they can join (auto-create) and talk.
    let ack;
    await waitFor(
      'alice joins again after the restart',
      async () => {
        ack = await alice.request({ type: 'join', room_id: 'fault-room' }, 3000);
        return ack.type === 'ack';
      },
      { timeout: 15000, interval: 200 }
    );
    assert.equal((await bob.request({ type: 'join', room_id: 'fault-room' })).type, 'ack');
    alice.drain();
    bob.drain();
    const m = await alice.request({ type: 'message', room_id: 'fault-room', data: 'after' });
    assert.equal(m.type, 'ack', JSON.stringify(m));
    await bob.next({ type: 'message', data: 'after' });
    // Presence/online state was rebuilt from the resync.
    const { call } = require('../lib/grpc');
    const online = await call(sys.api.presence, 'GetOnlineUsers', { room_id: 'fault-room' });
    assert.deepEqual([...online.user_ids].sort(), ['fault-alice', 'fault-bob']);
    // And a new client connects normally.
    const carol = await WsClient.connect(sys.wsUrl('fault-carol'));
    clients.push(carol);
    assert.equal(carol.connected.user_id, 'fault-carol');
  });

  stopsCleanly(shutdown);
});
