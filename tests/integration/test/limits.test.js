// Limits (docs/configuration.md "Limits"): connections per user, message size on WebSocket,
// SSE and gRPC, the per-user message rate (token bucket) and the WebSocket idle cleanup.
// stores: memory, etcd
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { startSystem, stopsCleanly, sleep } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const { SseClient, ssePost } = require('../lib/sseclient');
const F = require('../lib/frames');
const { uniq, createRoom, rejectsWith } = require('../lib/util');
const { call, status } = require('../lib/grpc');

const MAX_DATA = 1024; // --max-message-size
const json = (v) => Buffer.from(JSON.stringify(v));
// A JSON string whose text is exactly n bytes ("aaa...").
const strOf = (n) => 'a'.repeat(n - 2);

describe('limits', { timeout: 120000 }, () => {
  let sys;
  let room;
  const clients = [];

  async function connect(user, opts) {
    const c = await WsClient.connect(sys.wsUrl(user), opts);
    clients.push(c);
    return c;
  }

  async function joined(user) {
    const c = await connect(user);
    assert.equal((await c.request({ type: 'join', room_id: room })).type, 'ack');
    return c;
  }

  before(async () => {
    sys = await startSystem({
      cpArgs: [
        '--max-connections-per-user', '2',
        '--max-messages-per-second', '5',
        '--rate-limit-burst', '5',
        '--max-message-size', String(MAX_DATA),
      ],
      dpArgs: ['--ping-interval-ms', '1000', '--idle-timeout-ms', '2500', '--max-frame-size', '8192',
        '--hard-frame-limit', '65536'],
    });
    room = uniq('limits');
    await createRoom(sys, room);
  });

  const shutdown = async () => {
    await Promise.all(clients.map((c) => c.close()));
    if (sys) await sys.stop();
  };
  after(shutdown);

  it('connections per user: the 3rd of a user gets connection_limit_reached then close 1008', async () => {
    const user = uniq('conn');
    const a = await connect(user);
    await connect(user);
    const c = new WsClient(sys.wsUrl(user));
    clients.push(c);
    await c.opened;
    F.assertFrame(await c.next({ type: 'error' }, 5000), {
      type: 'error',
      code: 'connection_limit_reached',
      message: F.NONEMPTY,
    });
    const info = await Promise.race([c.closed, sleep(5000).then(() => null)]);
    assert.ok(info, 'refused socket not closed');
    assert.equal(info.code, 1008, JSON.stringify(info));
    assert.equal(c.all.filter((f) => f.type === 'connected').length, 0, 'a refused connection never gets connected');

    // SSE counts too: the stream answers 200, its only event is the error, then it ends.
    const s = new SseClient(`${sys.httpBase}/sse?user_id=${encodeURIComponent(user)}`);
    await s.response;
    const ev = await s.next((e) => e.event === 'error', 5000);
    F.assertFrame(ev.data, { type: 'error', code: 'connection_limit_reached', message: F.NONEMPTY });
    for (let i = 0; i < 50 && !s.ended; i++) await sleep(100);
    assert.ok(s.ended, 'refused SSE stream did not end');
    assert.equal(s.all.filter((e) => e.event === 'connected').length, 0);

    // Another user is not affected; after a close the user may connect again.
    await connect(uniq('other'));
    await a.close();
    let again = null;
    for (let i = 0; i < 30 && !again; i++) {
      const t = new WsClient(sys.wsUrl(user));
      clients.push(t);
      await t.opened;
      const f = await t.next((x) => x.type === 'connected' || x.type === 'error', 5000);
      if (f.type === 'connected') again = t;
      else await sleep(100); // the close is still on its way (etcd: through the watch)
    }
    assert.ok(again, 'no connection accepted after one of the two closed');
    const p = await again.request({ type: 'ping' });
    assert.equal(p.type, 'pong');
  });

  it('message size on WebSocket: data over max_message_size gets message_too_large, socket stays open', async () => {
    const c = await joined(uniq('size'));
    const ok = await c.request({ type: 'message', room_id: room, data: strOf(MAX_DATA) });
    assert.equal(ok.type, 'ack', JSON.stringify(ok).slice(0, 300));
    const big = await c.request({ type: 'message', room_id: room, data: strOf(MAX_DATA + 1), ref: 'big' });
    F.assertFrame(big, { type: 'error', code: 'message_too_large', message: F.NONEMPTY }, { ref: 'big' });
    assert.match(big.message, /1025/);
    // publish is checked the same way (before the channel is looked up).
    const pub = await c.request({ type: 'publish', channel_id: uniq('ch'), data: strOf(MAX_DATA + 1), ref: 'pb' });
    F.assertError(pub, 'message_too_large', 'pb');
    // Beyond the data plane's frame limit: refused there, still open.
    c.send({ type: 'message', room_id: room, data: 'z'.repeat(9000) });
    F.assertError(await c.next({ type: 'error' }, 5000), 'message_too_large');
    assert.equal(c.closeInfo, null);
    const after = await c.request({ type: 'message', room_id: room, data: 'after' });
    assert.equal(after.type, 'ack');
    // Beyond the hard limit: close 1009.
    c.send('{"type":"message","data":"' + 'z'.repeat(70 * 1024) + '"}');
    const info = await Promise.race([c.closed, sleep(5000).then(() => null)]);
    assert.ok(info, 'not closed');
    assert.equal(info.code, 1009, JSON.stringify(info));
  });

  it('message size on SSE POST: message_too_large in the answer', async () => {
    const user = uniq('ssesize');
    const s = await SseClient.connect(`${sys.httpBase}/sse?user_id=${user}&rooms=${room}`);
    clients.push(s);
    const cid = s.connected.connection_id;
    const r = await ssePost(sys.httpBase, cid, { type: 'message', room_id: room, data: strOf(MAX_DATA + 1), ref: 'b' },
      { query: `user_id=${user}` });
    F.assertError(r.frame, 'message_too_large', 'b');
    const ok = await ssePost(sys.httpBase, cid, { type: 'message', room_id: room, data: strOf(MAX_DATA), ref: 'o' },
      { query: `user_id=${user}` });
    assert.equal(ok.frame && ok.frame.type, 'ack', ok.body);
  });

  it('message size on gRPC: RESOURCE_EXHAUSTED message_too_large for every data-carrying method', async () => {
    const target = uniq('target');
    const t = await connect(target);
    const tooBig = json('a'.repeat(MAX_DATA)); // MAX_DATA + 2 bytes with the quotes
    await rejectsWith(call(sys.api.messages, 'BroadcastToRoom', { room_id: room, data: tooBig }),
      status.RESOURCE_EXHAUSTED, 'message_too_large');
    await rejectsWith(call(sys.api.messages, 'SendToUser', { user_id: target, data: tooBig }),
      status.RESOURCE_EXHAUSTED, 'message_too_large');
    await rejectsWith(call(sys.api.messages, 'Broadcast', { data: tooBig }),
      status.RESOURCE_EXHAUSTED, 'message_too_large');
    // Exactly at the limit passes.
    const exact = json('a'.repeat(MAX_DATA - 2));
    assert.equal(exact.length, MAX_DATA);
    const r = await call(sys.api.messages, 'BroadcastToRoom', { room_id: room, data: exact });
    assert.ok(r.seq > 0);
    await call(sys.api.messages, 'SendToUser', { user_id: target, data: exact });
    await t.next({ type: 'message', data: 'a'.repeat(MAX_DATA - 2) }, 5000);
  });

  it('rate limit: the 6th message of a burst gets rate_limited, later ones pass again', async () => {
    const user = uniq('rate');
    const a = await joined(user);
    const b = await connect(user); // same user, second connection: one bucket per user
    const other = await joined(uniq('calm'));
    // Pipelined on one connection (answered in order of arrival) so that the burst reaches the
    // control plane well within one refill (200 ms).
    for (let i = 0; i < 6; i++) a.send({ type: 'message', room_id: room, data: i, ref: `m${i}` });
    const limited = await a.next({ ref: 'm5' }, 5000);
    F.assertError(limited, 'rate_limited', 'm5');
    assert.match(limited.message, /retry in \d+ ms/);
    // The user's other connection shares the (empty) bucket: publish is counted too.
    F.assertError(await b.request({ type: 'publish', channel_id: uniq('ch'), data: 5, ref: 'p5' }, 5000),
      'rate_limited', 'p5');
    for (let i = 0; i < 5; i++) {
      const f = await a.next({ ref: `m${i}` }, 5000);
      assert.equal(f.type, 'ack', JSON.stringify(f));
    }
    // The connections stay open; other frames are not limited; another user is not limited.
    assert.equal((await a.request({ type: 'ping' })).type, 'pong');
    assert.equal((await a.request({ type: 'history', room_id: room })).type, 'history');
    assert.equal((await other.request({ type: 'message', room_id: room, data: 'x' })).type, 'ack');
    // A token comes back every 200 ms.
    await sleep(450);
    const again = await a.request({ type: 'message', room_id: room, data: 'again' });
    assert.equal(again.type, 'ack', JSON.stringify(again));
    // Backend calls are never rate limited.
    for (let i = 0; i < 12; i++) await call(sys.api.messages, 'BroadcastToRoom', { room_id: room, data: json(i), user_id: user });
  });

  it('idle cleanup: a WebSocket that answers no ping is closed 1000 idle_timeout; one that does stays', async () => {
    const live = await connect(uniq('live'));
    const t0 = Date.now();
    const mute = new WebSocket(sys.wsUrl(uniq('mute')), { autoPong: false });
    let pings = 0;
    mute.on('ping', () => pings++);
    mute.on('error', () => {});
    const closing = new Promise((r) => mute.once('close', (code, reason) => r({ code, reason: reason.toString() })));
    const closed = await Promise.race([closing, sleep(8000).then(() => null)]);
    if (!closed) mute.terminate();
    const took = Date.now() - t0;
    assert.ok(closed, 'silent socket not closed within 8 s');
    assert.equal(closed.code, 1000);
    assert.equal(closed.reason, 'idle_timeout');
    assert.ok(took >= 2000 && took < 6000, `closed after ${took} ms (idle timeout 2500)`);
    assert.ok(pings >= 1, 'no ping was sent before the close');
    // The live client (ws answers pings) has been silent just as long and is still served.
    assert.equal(live.closeInfo, null, JSON.stringify(live.closeInfo));
    await sleep(1000);
    assert.equal(live.closeInfo, null, JSON.stringify(live.closeInfo));
    assert.equal((await live.request({ type: 'ping' })).type, 'pong');
  });

  stopsCleanly(shutdown);
});
