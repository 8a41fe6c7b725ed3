// kill -9 of a control-plane replica during a steady publish stream from clients on both data
// planes (2 control planes on etcd, 2 data planes): the clients stay connected, no acked message
// is lost (history and what receivers saw), order and seq stay intact, and the time to recover
// is printed. The replica killed is the room's sequencer (and, normally, the data planes'
// primary): the hardest case.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Cluster, etcdValue, primaryOf } = require('../lib/cluster');
const { stopsCleanly, httpGet, waitFor } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const { call } = require('../lib/grpc');
const T = require('../lib/traffic');

const TTL_MS = 3000;

describe('fault: kill -9 a control-plane replica under load', { timeout: 180000 }, () => {
  let cl;
  let killed = -1;
  const clients = [];

  before(async () => {
    cl = await new Cluster({ cps: 2, dps: 2, leaseTtlMs: TTL_MS }).start();
  });

  const shutdown = async () => {
    for (const c of clients) await c.close();
    if (cl) await cl.stop();
  };
  after(shutdown);

  it('clients stay, nothing acked is lost, one order and gap-free seq; time to recover', async () => {
    const room = `cpk-room-${process.pid}`;
    const [dp1, dp2] = cl.dps;
    await call(cl.cps[0].api.rooms, 'CreateRoom', { id: room, name: room });
    const s1 = await WsClient.connect(dp1.wsUrl('cpk-s1'));
    const s2 = await WsClient.connect(dp2.wsUrl('cpk-s2'));
    const r1 = await WsClient.connect(dp1.wsUrl('cpk-r1'));
    const r2 = await WsClient.connect(dp2.wsUrl('cpk-r2'));
    const all = [s1, s2, r1, r2];
    clients.push(...all);
    for (const c of all) assert.equal((await c.request({ type: 'join', room_id: room })).type, 'ack');
    assert.equal((await s1.request({ type: 'message', room_id: room, data: 'first' })).seq, 1);

    const p1 = T.publisher(s1, room, 's1', { intervalMs: 25 });
    const p2 = T.publisher(s2, room, 's2', { intervalMs: 25 });
    await T.sleep(1500);

    const seqCp = await etcdValue(cl.etcd.members[0].endpoint, `sb/sequencer/${room}`);
    const victim = cl.cps.findIndex((c) => c.id === seqCp);
    assert.ok(victim >= 0, `the room has a sequencer (sb/sequencer/${room} = ${seqCp})`);
    const survivor = cl.cps[1 - victim];
    const roles = `sequencer ${seqCp}; primaries dp-1 ${primaryOf(dp1)}, dp-2 ${primaryOf(dp2)}`;
    const tKill = Date.now();
    await cl.killCp(victim);
    await T.sleep(3 * TTL_MS + 2000);
    const recs = (await Promise.all([p1.stop(), p2.stop()])).flat();

    // Nobody was disconnected; every publish got an answer.
    for (const c of all) assert.equal(c.closeInfo, null, `${c.url} stayed connected`);
    for (const dp of cl.dps) assert.equal((await httpGet(`${dp.base}/readyz`)).status, 200);
    const failed = T.failed(recs);
    const ok = T.acked(recs);

    // Recovery: the first ack for a message sent after the kill; the longest publish latency.
    const afterKill = ok.filter((r) => r.sentAt >= tKill).sort((a, b) => a.at - b.at);
    const recoverMs = afterKill.length ? afterKill[0].at - tKill : NaN;
    const maxLatency = Math.max(...ok.map((r) => r.at - r.sentAt));
    const arrivals = ok.map((r) => r.at).sort((a, b) => a - b);
    let stall = 0;
    for (let i = 1; i < arrivals.length; i += 1) stall = Math.max(stall, arrivals[i] - arrivals[i - 1]);

    const dups = [];
    for (const dp of cl.dps) {
      const m = (await httpGet(`${dp.base}/metrics`)).body.match(/^switchboard_dp_deliveries_duplicate_total (\d+)$/m);
      dups.push(m ? Number(m[1]) : NaN);
    }
    console.log(`# duplicate room deliveries dropped by the data planes: ${dups.join('/')}`);
    const acks = ok.map((r) => ({ id: r.frame.id, seq: r.frame.seq }));
    const last = Math.max(...acks.map((a) => a.seq));
    for (const c of [r1, r2]) await c.next((f) => f.type === 'message' && f.room_id === room && f.seq >= last, 10000);
    const history = await T.fullHistory(survivor.api, room);
    console.log(
      `# control-plane kill -9 (${roles}; killed ${seqCp}): ${recs.length} publishes, ${ok.length} acked, ` +
        `${failed.length} failed; first ack after the kill ${recoverMs} ms, longest ack stall ${stall} ms, ` +
        `max publish latency ${maxLatency} ms; history ${history.length}`
    );
    const sum = T.checkRoom({ history, acks, receivers: [r1, r2, s1, s2], room });
    const orders = [r1, r2].map((c) => T.seen(c, room).map((m) => m.id).join(','));
    assert.equal(orders[1], orders[0], 'both receivers saw the same order');
    console.log(`# history gap-free, every acked message stored once; receivers got ${sum.perReceiver.join('/')}`);
    assert.equal(failed.length, 0, `no publish failed: ${JSON.stringify(failed.slice(0, 3).map((r) => r.frame || r.err))}`);
    assert.equal(sum.stored, acks.length + 1, 'history holds exactly the acked messages');
    killed = victim;
    cl.check();
  });

  it('the killed replica restarts; both data planes link to it again by themselves', async () => {
    assert.ok(killed >= 0, 'the previous test killed a replica');
    await cl.restartCp(killed);
    for (const dp of cl.dps) {
      await waitFor(`${dp.name} has 2 streams again`, async () => /switchboard_dp_link_streams_up 2\b/.test((await httpGet(`${dp.base}/metrics`)).body), {
        timeout: 15000,
      });
    }
    cl.check();
  });

  stopsCleanly(shutdown);
});
