// A data plane given two control planes keeps a stream to each and fails over between them
// (docs/distributed.md "Data-plane failover"). The control planes here use the memory store, so
// they share nothing: what is checked is the data plane's side. Clients stay connected when the
// primary dies, requests keep being answered by the other replica without an `unavailable`, and
// `unavailable` comes only when no control plane is left.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { ControlPlane, DataPlane, freePort, httpGet, waitFor, stopsCleanly } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const F = require('../lib/frames');
const grpcApi = require('../lib/grpc');

async function metric(dp, name) {
  const r = await httpGet(`${dp.base}/metrics`);
  const m = r.body.match(new RegExp(`^${name} (\\d+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

describe('data plane with two control planes (memory store)', { timeout: 120000 }, () => {
  let cp1;
  let cp2;
  let dp;
  const clients = [];

  before(async () => {
    cp1 = new ControlPlane({ port: await freePort(), args: ['--auto-create-rooms'] });
    cp2 = new ControlPlane({ port: await freePort(), args: ['--auto-create-rooms'] });
    await cp1.start();
    await cp2.start();
    dp = new DataPlane({ port: await freePort(), cpAddr: `${cp1.addr},${cp2.addr}` });
    await dp.start();
    await waitFor('two NodeLink streams up', async () => (await metric(dp, 'switchboard_dp_link_streams_up')) === 2);
  });

  const shutdown = async () => {
    for (const c of clients) await c.close();
    const problems = [];
    for (const d of [dp, cp1, cp2]) {
      if (!d) continue;
      const p = await d.stop();
      if (p) problems.push(p);
    }
    dp = cp1 = cp2 = null;
    if (problems.length) throw new Error(problems.join('\n\n'));
  };
  after(shutdown);

  it('the primary dies: clients stay, requests are answered by the other replica', async () => {
    const a = await WsClient.connect(`ws://127.0.0.1:${dp.port}/ws?user_id=fo-a`);
    const b = await WsClient.connect(`ws://127.0.0.1:${dp.port}/ws?user_id=fo-b`);
    clients.push(a, b);
    for (const c of [a, b]) assert.equal((await c.request({ type: 'join', room_id: 'fo-room' })).type, 'ack');
    const ack = await a.request({ type: 'message', room_id: 'fo-room', data: 'one' });
    assert.equal(ack.seq, 1);
    await b.next({ type: 'message', data: 'one' });

    // Which one is the primary: the one that has the node's connections.
    const onCp = async (cp) => {
      const h = grpcApi.clients(cp.addr);
      try {
        return (await grpcApi.call(h.presence, 'GetPresence', { user_id: 'fo-a' })).connection_count || 0;
      } finally {
        grpcApi.closeClients(h);
      }
    };
    const primary = (await onCp(cp1)) === 1 ? cp1 : cp2;
    const other = primary === cp1 ? cp2 : cp1;
    assert.equal(await onCp(other), 0, 'requests and connections go to the primary only');

    const t0 = Date.now();
    primary.kill();
    await primary.exitPromise;
    // A request sent right after the death is answered (after the failover), not refused.
    const join = await a.request({ type: 'join', room_id: 'fo-room2' }, 10000);
    const ms = Date.now() - t0;
    assert.equal(join.type, 'ack', `join after failover: ${JSON.stringify(join)}`);
    console.log(`# failover (memory store): first request answered ${ms} ms after the primary's kill -9`);
    assert.equal(a.closeInfo, null);
    assert.equal(b.closeInfo, null);
    assert.equal((await httpGet(`${dp.base}/readyz`)).status, 200);
    await waitFor('connections resynced to the other replica', async () => (await onCp(other)) === 1);
    assert.equal((await b.request({ type: 'join', room_id: 'fo-room2' })).type, 'ack');
    const m = await b.request({ type: 'message', room_id: 'fo-room2', data: 'two' });
    assert.equal(m.type, 'ack');
    await a.next({ type: 'message', data: 'two' });
    assert.equal(await metric(dp, 'switchboard_dp_link_failovers_total'), 1);

    // The last one dies: now requests get `unavailable`, and the clients still stay.
    other.kill();
    await other.exitPromise;
    await waitFor('/readyz 503', async () => (await httpGet(`${dp.base}/readyz`)).status === 503, { timeout: 10000 });
    F.assertError(await a.request({ type: 'history', room_id: 'fo-room2', ref: 'u1' }, 5000), 'unavailable', 'u1');
    assert.equal(a.closeInfo, null);

    // One comes back: the node links again by itself and serves requests.
    const back = new ControlPlane({ port: primary.port, args: ['--auto-create-rooms'] });
    await back.start();
    if (primary === cp1) cp1 = back;
    else cp2 = back;
    await dp.waitReady(15000);
    await waitFor('requests served again', async () => (await a.request({ type: 'join', room_id: 'fo-room3' }, 3000)).type === 'ack', {
      timeout: 15000,
      interval: 200,
    });
    assert.equal(a.closeInfo, null);
    assert.equal(b.closeInfo, null);
  });

  stopsCleanly(shutdown);
});

describe('one control plane (memory store) drops a frozen node and takes it back', { timeout: 60000 }, () => {
  let cp;
  let dp;
  const clients = [];

  before(async () => {
    cp = new ControlPlane({ port: await freePort(), args: ['--auto-create-rooms', '--heartbeat-interval-ms', '1000'] });
    await cp.start();
    dp = new DataPlane({ port: await freePort(), cpAddr: cp.addr });
    await dp.start();
  });

  const shutdown = async () => {
    for (const c of clients) await c.close();
    const problems = [];
    for (const d of [dp, cp]) {
      if (!d) continue;
      const p = await d.stop();
      if (p) problems.push(p);
    }
    dp = cp = null;
    if (problems.length) throw new Error(problems.join('\n\n'));
  };
  after(shutdown);

  it('the node, silent past 3 heartbeats, is dropped; back, it resyncs and its clients carry on', async () => {
    const a = await WsClient.connect(`ws://127.0.0.1:${dp.port}/ws?user_id=frz-a`);
    clients.push(a);
    assert.equal((await a.request({ type: 'join', room_id: 'frz-room' })).type, 'ack');
    process.kill(dp.pid, 'SIGSTOP');
    await new Promise((r) => setTimeout(r, 4500)); // > 3 heartbeats of 1 s: the CP ends the stream
    process.kill(dp.pid, 'SIGCONT');
    // The same replica adopts the node again; it forgot the node's connections with the stream.
    await waitFor('cp dropped and re-linked the node', async () => /same_replica=1/.test(dp.log()), { timeout: 15000 });
    await waitFor('requests served again', async () => (await a.request({ type: 'message', room_id: 'frz-room', data: 'back' }, 3000)).type === 'ack', {
      timeout: 15000,
      interval: 200,
    });
    assert.equal(a.closeInfo, null);
    await a.next({ type: 'message', data: 'back' }, 3000);
  });

  stopsCleanly(shutdown);
});
