// A data-plane node dies in a cluster (2 control planes on etcd, 2 data planes): the members on
// the other node see the users whose only connection was there go offline within the lease TTL
// (plus a margin). Nothing else is disturbed: a user who also had a connection on the surviving
// node stays online, and the room keeps working. Prints the times measured.
// - kill -9: the kernel closes the node's sockets, its control planes see the streams end and
//   release its lease at once (docs/failover.md);
// - SIGSTOP (a frozen node, sockets left open): nobody says anything, so the control planes
//   notice the silence (3 heartbeat intervals), stop keeping the lease alive, and it expires.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Cluster } = require('../lib/cluster');
const { stopsCleanly, httpGet } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const { call } = require('../lib/grpc');
const F = require('../lib/frames');

const TTL_MS = 3000;
const HEARTBEAT_MS = 1000;
// Lease expiry lands up to ~0.5 s after the TTL (NOTES.md), then watch + presence fan-out.
const MARGIN_MS = 2500;

describe('fault: kill -9 a data-plane node', { timeout: 120000 }, () => {
  let cl;
  const clients = [];

  before(async () => {
    cl = await new Cluster({ cps: 2, dps: 2, leaseTtlMs: TTL_MS, cpArgs: ['--heartbeat-interval-ms', String(HEARTBEAT_MS), '--presence-grace-ms', '0'] }).start();
  });

  const shutdown = async () => {
    for (const c of clients) await c.close();
    if (cl) await cl.stop();
  };
  after(shutdown);

  it('users only on the dead node go offline for the others within the TTL; nothing else moves', async () => {
    const room = `dpk-room-${process.pid}`;
    const [cp1, cp2] = cl.cps;
    const [dp1, dp2] = cl.dps;
    await call(cp2.api.rooms, 'CreateRoom', { id: room, name: room });
    const watcher = await WsClient.connect(dp1.wsUrl('dpk-watch')); // on the surviving node
    const both1 = await WsClient.connect(dp1.wsUrl('dpk-both')); // bob: on both nodes
    const both2 = await WsClient.connect(dp2.wsUrl('dpk-both'));
    const gone = await WsClient.connect(dp2.wsUrl('dpk-gone')); // only on the node that dies
    const gone2 = await WsClient.connect(dp2.wsUrl('dpk-gone')); // two connections, same node
    clients.push(watcher, both1, both2, gone, gone2);
    for (const c of [watcher, both1, gone]) assert.equal((await c.request({ type: 'join', room_id: room })).type, 'ack');
    const before = await watcher.request({ type: 'message', room_id: room, data: 'before' });
    assert.equal(before.type, 'ack');
    for (const c of [both2, gone, gone2]) await c.next({ type: 'message', data: 'before' }, 5000);
    await new Promise((r) => setTimeout(r, 300));
    watcher.drain();
    both1.drain();

    const t0 = Date.now();
    await cl.killDp(1);
    const offline = await watcher.next({ type: 'presence', user_id: 'dpk-gone' }, TTL_MS + MARGIN_MS + 2000);
    const ms = Date.now() - t0;
    F.assertFrame(offline, { type: 'presence', user_id: 'dpk-gone', status: 'offline' }, { timestamp: F.TS, last_seen: () => true });
    console.log(`# data-plane kill -9: offline seen on the other node after ${ms} ms (lease TTL ${TTL_MS} ms)`);
    assert.ok(ms <= TTL_MS + MARGIN_MS, `offline within TTL + ${MARGIN_MS} ms (took ${ms} ms)`);
    await both1.next({ type: 'presence', user_id: 'dpk-gone', status: 'offline' }, 2000);

    // One offline event per user, none for bob (still connected on dp-1).
    await watcher.none({ type: 'presence', user_id: 'dpk-both' }, 1000);
    await watcher.none({ type: 'presence', user_id: 'dpk-gone' }, 10);
    for (const cp of [cp1, cp2]) {
      const online = await call(cp.api.presence, 'GetOnlineUsers', { room_id: room });
      assert.deepEqual(online.user_ids.slice().sort(), ['dpk-both', 'dpk-watch'], `online per ${cp.id}`);
      const p = await call(cp.api.presence, 'GetPresence', { user_id: 'dpk-both' });
      assert.equal(p.connection_count, 1, `bob has one connection left (${cp.id})`);
    }

    // The survivors were not disturbed: same connections, the room goes on with the next seq.
    assert.equal(watcher.closeInfo, null);
    assert.equal(both1.closeInfo, null);
    const after = await both1.request({ type: 'message', room_id: room, data: 'after' });
    assert.equal(after.seq, before.seq + 1);
    assert.equal((await watcher.next({ type: 'message', data: 'after' })).seq, after.seq);
    assert.equal((await httpGet(`${dp1.base}/readyz`)).status, 200);
    cl.check();
  });

  it('a frozen node (SIGSTOP) goes offline when its lease expires', async () => {
    const room = `dpf-room-${process.pid}`;
    const [cp1] = cl.cps;
    const dp1 = cl.dps[0];
    const dp3 = await cl.addDp();
    await call(cp1.api.rooms, 'CreateRoom', { id: room, name: room });
    const watcher = await WsClient.connect(dp1.wsUrl('dpf-watch'));
    const frozen = await WsClient.connect(dp3.wsUrl('dpf-frozen'));
    clients.push(watcher, frozen);
    for (const c of [watcher, frozen]) assert.equal((await c.request({ type: 'join', room_id: room })).type, 'ack');
    await watcher.next({ type: 'join', user_id: 'dpf-frozen' }, 5000);
    await new Promise((r) => setTimeout(r, 300));
    watcher.drain();

    const t0 = Date.now();
    process.kill(dp3.pid, 'SIGSTOP');
    const limit = 3 * HEARTBEAT_MS + TTL_MS + MARGIN_MS + 1000;
    let offline;
    try {
      offline = await watcher.next({ type: 'presence', user_id: 'dpf-frozen' }, limit + 3000);
    } finally {
      dp3.kill(); // SIGKILL ends a stopped process too
      await dp3.exitPromise;
    }
    const ms = Date.now() - t0;
    F.assertFrame(offline, { type: 'presence', user_id: 'dpf-frozen', status: 'offline' }, { timestamp: F.TS, last_seen: () => true });
    console.log(`# data-plane frozen (SIGSTOP): offline seen on the other node after ${ms} ms (heartbeat ${HEARTBEAT_MS} ms, lease TTL ${TTL_MS} ms)`);
    assert.ok(ms <= limit, `offline within 3 heartbeats + TTL + margin = ${limit} ms (took ${ms} ms)`);
    assert.equal(watcher.closeInfo, null);
    const m = await watcher.request({ type: 'message', room_id: room, data: 'still here' });
    assert.equal(m.type, 'ack');
    cl.check();
  });

  stopsCleanly(shutdown);
});
