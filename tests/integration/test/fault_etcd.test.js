// etcd faults under a cluster of 2 control planes and 2 data planes (docs/distributed.md "When
// etcd is unavailable"):
// - the only etcd member is killed and restarted on its data dir: writes answer `unavailable`
//   meanwhile (client connections stay), and the system recovers by itself;
// - a 3-member etcd loses one member, the leader: no interruption at all.
// Both print what they measured.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Cluster } = require('../lib/cluster');
const { stopsCleanly, httpGet } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const { call, status } = require('../lib/grpc');
const F = require('../lib/frames');
const T = require('../lib/traffic');

const TTL_MS = 3000;

describe('fault: etcd restarted', { timeout: 180000 }, () => {
  let cl;
  const clients = [];

  before(async () => {
    cl = await new Cluster({ etcdMembers: 1, cps: 2, dps: 2, leaseTtlMs: TTL_MS }).start();
  });

  const shutdown = async () => {
    for (const c of clients) await c.close();
    if (cl) await cl.stop();
  };
  after(shutdown);

  it('unavailable while etcd is down, recovery by itself once it is back', async () => {
    const room = `etr-room-${process.pid}`;
    const [cp1, cp2] = cl.cps;
    const [dp1, dp2] = cl.dps;
    await call(cp1.api.rooms, 'CreateRoom', { id: room, name: room });
    const a = await WsClient.connect(dp1.wsUrl('etr-a'));
    const b = await WsClient.connect(dp2.wsUrl('etr-b'));
    clients.push(a, b);
    for (const c of [a, b]) assert.equal((await c.request({ type: 'join', room_id: room })).type, 'ack');
    const acks = [];
    const first = await a.request({ type: 'message', room_id: room, data: 'before' });
    assert.equal(first.type, 'ack');
    acks.push({ id: first.id, seq: first.seq });

    const tDown = Date.now();
    await cl.etcd.kill(0);
    // A publish is answered `unavailable` (not acked, not hung), over WebSocket and gRPC.
    const t1 = Date.now();
    const during = await a.request({ type: 'message', room_id: room, data: 'during', ref: 'd1' }, 20000);
    const unavailMs = Date.now() - t1;
    F.assertError(during, 'unavailable', 'd1');
    let grpcErr = null;
    try {
      await call(cp2.api.messages, 'BroadcastToRoom', { room_id: room, data: Buffer.from('"x"'), user_id: 'backend' }, { deadlineMs: 20000 });
    } catch (e) {
      grpcErr = e;
    }
    assert.ok(grpcErr, 'BroadcastToRoom fails while etcd is down');
    assert.equal(grpcErr.code, status.UNAVAILABLE, `gRPC UNAVAILABLE, got ${grpcErr.code} ${grpcErr.details}`);
    // Reads are served from the caches; the clients stay; the data planes stay ready.
    assert.equal((await call(cp1.api.rooms, 'GetRoom', { room_id: room })).id, room);
    for (const c of [a, b]) assert.equal(c.closeInfo, null);
    for (const dp of [dp1, dp2]) assert.equal((await httpGet(`${dp.base}/readyz`)).status, 200);
    assert.equal((await b.request({ type: 'ping' })).type, 'pong');

    await T.sleep(Math.max(0, 2000 - (Date.now() - tDown)));
    const outageMs = Date.now() - tDown;
    await cl.etcd.restart(0);
    const tUp = Date.now();
    let ack = null;
    let tries = 0;
    while (Date.now() - tUp < 30000) {
      tries += 1;
      const f = await a.request({ type: 'message', room_id: room, data: { after: tries } }, 20000);
      if (f.type === 'ack') {
        ack = f;
        break;
      }
      F.assertError(f, 'unavailable');
      await T.sleep(200);
    }
    const recoverMs = Date.now() - tUp;
    assert.ok(ack, 'publishes are acked again after etcd is back');
    acks.push({ id: ack.id, seq: ack.seq });
    const viaB = await b.request({ type: 'message', room_id: room, data: 'after-b' });
    assert.equal(viaB.type, 'ack');
    acks.push({ id: viaB.id, seq: viaB.seq });
    const viaGrpc = await call(cp2.api.messages, 'BroadcastToRoom', { room_id: room, data: Buffer.from('"after-grpc"'), user_id: 'backend' });
    acks.push({ id: viaGrpc.message_id, seq: Number(viaGrpc.seq) });
    for (const c of [a, b]) await c.next({ type: 'message', data: 'after-grpc' }, 5000);
    console.log(
      `# etcd kill -9 + restart: publish answered unavailable after ${unavailMs} ms; outage ${outageMs} ms; ` +
        `first ack ${recoverMs} ms after etcd restarted (${tries} tries)`
    );

    const history = await T.fullHistory(cp1.api, room);
    assert.deepEqual(await T.fullHistory(cp2.api, room), history, 'both replicas agree');
    T.checkRoom({ history, acks, receivers: [a, b], room });
    // The nodes' leases outlived the outage: nobody went offline.
    for (const cp of [cp1, cp2]) {
      const online = await call(cp.api.presence, 'GetOnlineUsers', { room_id: room });
      assert.deepEqual(online.user_ids.slice().sort(), ['etr-a', 'etr-b'], `online per ${cp.id}`);
    }
    await a.none({ type: 'presence', status: 'offline' }, 10);
    cl.check();
  });

  stopsCleanly(shutdown);
});

describe('fault: 3-member etcd loses its leader', { timeout: 180000 }, () => {
  let cl;
  const clients = [];

  before(async () => {
    cl = await new Cluster({ etcdMembers: 3, cps: 2, dps: 2, leaseTtlMs: TTL_MS }).start();
  });

  const shutdown = async () => {
    for (const c of clients) await c.close();
    if (cl) await cl.stop();
  };
  after(shutdown);

  it('no interruption: every publish acked, nothing lost, one order', async () => {
    const room = `etl-room-${process.pid}`;
    const [cp1] = cl.cps;
    const [dp1, dp2] = cl.dps;
    await call(cp1.api.rooms, 'CreateRoom', { id: room, name: room });
    const s1 = await WsClient.connect(dp1.wsUrl('etl-s1'));
    const s2 = await WsClient.connect(dp2.wsUrl('etl-s2'));
    const r1 = await WsClient.connect(dp1.wsUrl('etl-r1'));
    const r2 = await WsClient.connect(dp2.wsUrl('etl-r2'));
    const all = [s1, s2, r1, r2];
    clients.push(...all);
    for (const c of all) assert.equal((await c.request({ type: 'join', room_id: room })).type, 'ack');

    const p1 = T.publisher(s1, room, 's1', { intervalMs: 25 });
    const p2 = T.publisher(s2, room, 's2', { intervalMs: 25 });
    await T.sleep(1500);
    const leader = await cl.etcd.leaderIndex();
    assert.ok(leader >= 0, 'etcd has a leader');
    const tKill = Date.now();
    await cl.etcd.kill(leader);
    await T.sleep(5000);
    const recs = (await Promise.all([p1.stop(), p2.stop()])).flat();
    const ok = T.acked(recs);
    const failed = T.failed(recs);
    const around = ok.filter((r) => r.sentAt >= tKill - 500 && r.sentAt <= tKill + 3000);
    const maxLatency = Math.max(...around.map((r) => r.at - r.sentAt));
    const newLeader = await cl.etcd.leaderIndex();
    console.log(
      `# etcd leader (e${leader + 1}) kill -9 of 3 members: ${recs.length} publishes, ${ok.length} acked, ` +
        `${failed.length} failed; max publish latency around the kill ${maxLatency} ms; new leader e${newLeader + 1}`
    );
    assert.equal(failed.length, 0, `no publish failed: ${JSON.stringify(failed.slice(0, 3).map((r) => r.frame || r.err))}`);
    for (const c of all) assert.equal(c.closeInfo, null);

    const acks = ok.map((r) => ({ id: r.frame.id, seq: r.frame.seq }));
    const last = Math.max(...acks.map((a) => a.seq));
    for (const c of [r1, r2]) await c.next((f) => f.type === 'message' && f.room_id === room && f.seq >= last, 10000);
    const history = await T.fullHistory(cp1.api, room);
    const sum = T.checkRoom({ history, acks, receivers: all, room });
    assert.equal(sum.stored, acks.length);

    // The member comes back on its data dir and rejoins.
    await cl.etcd.restart(leader);
    cl.check();
  });

  stopsCleanly(shutdown);
});
