// Server-Sent Events: the connected event, ?rooms= joins, POST /sse/<connection_id> answers,
// `id:` on room messages and resumption through Last-Event-ID; the npm `eventsource` client too.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const EventSource = require('eventsource');
const { startSystem, stopsCleanly } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const { SseClient, ssePost } = require('../lib/sseclient');
const F = require('../lib/frames');
const { uniq, createRoom } = require('../lib/util');
const { call } = require('../lib/grpc');
const { withTimeout } = require('../lib/wsclient');

describe('SSE', { timeout: 90000 }, () => {
  let sys;
  const closers = [];

  async function sse(user, query = '', headers = {}) {
    const c = await SseClient.connect(`${sys.httpBase}/sse?user_id=${encodeURIComponent(user)}${query}`, { headers });
    closers.push(() => c.close());
    return c;
  }

  async function ws(user) {
    const c = await WsClient.connect(sys.wsUrl(user));
    closers.push(() => c.close());
    return c;
  }

  before(async () => {
    sys = await startSystem({ dpArgs: ['--ping-interval-ms', '1000'] });
  });

  const shutdown = async () => {
    for (const c of closers) await c();
    if (sys) await sys.stop();
  };
  after(shutdown);

  it('GET /sse answers text/event-stream and a connected event first', async () => {
    const user = uniq('sse');
    const c = await sse(user);
    assert.equal(c.status, 200);
    assert.match(c.headers['content-type'], /^text\/event-stream/);
    assert.equal(c.all[0].event, 'connected');
    F.assertFrame(c.connected, {
      type: 'connected',
      connection_id: F.CONN_ID,
      session_id: F.SESSION_ID,
      user_id: user,
      node_id: F.NONEMPTY,
    });
  });

  it('sends a comment line at the ping interval', async () => {
    const c = await sse(uniq('pinged'));
    const end = Date.now() + 5000;
    while (c.comments.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    assert.ok(c.comments.length > 0, 'no comment line within 5 s (ping interval 1 s)');
    assert.match(c.comments[0], /^:/);
  });

  it('?rooms= joins first; other members hear the join; room messages carry id:', async () => {
    const r1 = uniq('sr');
    const r2 = uniq('sr');
    await createRoom(sys, r1);
    await createRoom(sys, r2);
    const watcher = await ws(uniq('w'));
    await watcher.request({ type: 'join', room_id: r1 });
    const user = uniq('sse');
    const c = await sse(user, `&rooms=${r1},${r2}`);
    F.assertFrame(await watcher.next({ type: 'join' }), { type: 'join', room_id: r1, user_id: user, timestamp: F.TS });

    const ack = await watcher.request({ type: 'message', room_id: r1, data: { hello: 'sse' } });
    const ev = await c.next((e) => e.event === 'message');
    F.assertFrame(ev.data, {
      type: 'message',
      id: ack.id,
      seq: ack.seq,
      room_id: r1,
      user_id: watcher.connected.user_id,
      data: { hello: 'sse' },
      timestamp: F.TS,
    });
    assert.ok(ev.id, `no id: line on a room message: ${JSON.stringify(ev.raw)}`);
    // The SSE user is a member of r2 too: posting there works.
    const p = await ssePost(sys.httpBase, c.connected.connection_id, { type: 'message', room_id: r2, data: 1, ref: 'x' }, { query: `user_id=${user}` });
    assert.equal(p.frame.type, 'ack', p.body);
  });

  it('?rooms= with a missing room: an error event with room_not_found, stream stays up', async () => {
    const user = uniq('sse');
    const c = await SseClient.connect(`${sys.httpBase}/sse?user_id=${user}&rooms=${uniq('ghost')}`);
    closers.push(() => c.close());
    const e = await c.next((x) => x.event === 'error');
    F.assertFrame(e.data, { type: 'error', code: 'room_not_found', message: F.NONEMPTY }, { ref: F.STRING });
    const p = await ssePost(sys.httpBase, c.connected.connection_id, { type: 'ping', ref: 'still' }, { query: `user_id=${user}` });
    F.assertFrame(p.frame, { type: 'pong', ref: 'still' }, { timestamp: F.TS });
  });

  it('POST /sse/<connection_id> answers with the ack or error frame', async () => {
    const room = uniq('sp');
    await createRoom(sys, room);
    const user = uniq('poster');
    const c = await sse(user);
    const cid = c.connected.connection_id;
    const q = { query: `user_id=${user}` };

    const j = await ssePost(sys.httpBase, cid, { type: 'join', room_id: room, ref: 'j1' }, q);
    assert.equal(j.status, 200, j.body);
    assert.match(j.headers['content-type'] || '', /application\/json/);
    F.assertFrame(j.frame, { type: 'ack', ref: 'j1', room_id: room });

    const m = await ssePost(sys.httpBase, cid, { type: 'message', room_id: room, data: { via: 'post' }, ref: 'm1' }, q);
    F.assertFrame(m.frame, { type: 'ack', ref: 'm1', id: F.MSG_ID, seq: 1 });
    // The sender's own stream receives the message.
    const ev = await c.next((e) => e.event === 'message');
    F.assertFrame(ev.data, { type: 'message', id: m.frame.id, seq: 1, room_id: room, user_id: user, data: { via: 'post' }, timestamp: F.TS });

    const h = await ssePost(sys.httpBase, cid, { type: 'history', room_id: room, ref: 'h1' }, q);
    F.assertFrame(h.frame, { type: 'history', ref: 'h1', room_id: room, messages: Array.isArray }, { has_more: () => true });
    assert.deepEqual(h.frame.messages.map((x) => x.seq), [1]);

    const p = await ssePost(sys.httpBase, cid, { type: 'ping', ref: 'pp' }, q);
    F.assertFrame(p.frame, { type: 'pong', ref: 'pp' }, { timestamp: F.TS });

    const pr = await ssePost(sys.httpBase, cid, { type: 'presence', status: 'away', ref: 'pr' }, q);
    F.assertFrame(pr.frame, { type: 'ack', ref: 'pr' });

    // Errors come back as error frames in the POST answer.
    const bad = await ssePost(sys.httpBase, cid, '{"type":', q);
    F.assertError(bad.frame, 'invalid_message');
    const unk = await ssePost(sys.httpBase, cid, { type: 'warp', ref: 'w' }, q);
    F.assertError(unk.frame, 'invalid_message', 'w');
    const nf = await ssePost(sys.httpBase, cid, { type: 'join', room_id: uniq('ghost'), ref: 'g' }, q);
    F.assertError(nf.frame, 'room_not_found', 'g');
    const big = await ssePost(sys.httpBase, cid, { type: 'message', room_id: room, data: 'x'.repeat(70 * 1024), ref: 'big' }, q);
    assert.equal(big.frame && big.frame.code, 'message_too_large', `${big.status} ${big.body.slice(0, 200)}`);

    // Typing has no answer on success: the POST still completes (empty or 204).
    const ty = await ssePost(sys.httpBase, cid, { type: 'typing', room_id: room, typing: true }, q);
    assert.ok(ty.status === 204 || ty.status === 200 || ty.status === 202, `typing POST ${ty.status} ${ty.body}`);
    if (ty.frame) assert.notEqual(ty.frame.type, 'error', ty.body);

    // The stream is still alive after all that.
    const m2 = await ssePost(sys.httpBase, cid, { type: 'message', room_id: room, data: 'still here' }, q);
    assert.equal(m2.frame.type, 'ack', m2.body);
    await c.next((e) => e.event === 'message' && e.data.data === 'still here');
  });

  it('POST to an unknown connection or with other credentials is refused', async () => {
    const user = uniq('owner');
    const c = await sse(user);
    const unknown = await ssePost(sys.httpBase, 'c-doesnotexist000000000', { type: 'ping' }, { query: `user_id=${user}` });
    assert.equal(unknown.status, 404, `unknown connection: ${unknown.status} ${unknown.body}`);
    assert.equal(unknown.frame && unknown.frame.code, 'connection_not_found', unknown.body);
    const thief = await ssePost(sys.httpBase, c.connected.connection_id, { type: 'ping' }, { query: `user_id=${uniq('thief')}` });
    assert.ok(thief.status === 401 || thief.status === 403 || thief.status === 404, `other user: ${thief.status} ${thief.body}`);
    if (thief.frame) assert.ok(['unauthorized', 'permission_denied'].includes(thief.frame.code), thief.body);
  });

  it('Last-Event-ID resumes: a reconnecting stream gets the messages it missed', async () => {
    const room = uniq('resume');
    await createRoom(sys, room);
    const writer = await ws(uniq('writer'));
    await writer.request({ type: 'join', room_id: room });
    const user = uniq('reader');
    const first = await sse(user, `&rooms=${room}`);
    for (let i = 1; i <= 3; i++) await writer.request({ type: 'message', room_id: room, data: { i } });
    const seen = [];
    for (let i = 1; i <= 3; i++) seen.push(await first.next((e) => e.event === 'message'));
    assert.deepEqual(seen.map((e) => e.data.seq), [1, 2, 3]);
    const lastId = seen[1].id; // pretend we saw only up to seq 2
    assert.ok(lastId);
    first.close();
    for (let i = 4; i <= 5; i++) await writer.request({ type: 'message', room_id: room, data: { i } });

    const again = await sse(user, `&rooms=${room}`, { 'Last-Event-ID': lastId });
    const got = [];
    for (let i = 0; i < 3; i++) got.push(await again.next((e) => e.event === 'message', 5000));
    assert.deepEqual(got.map((e) => e.data.seq), [3, 4, 5], 'resumed after seq 2, in order');
    got.forEach((e) => assert.ok(e.id, 'replayed messages carry id:'));
    await again.none((e) => e.event === 'message', 300);
  });

  it('the npm eventsource client connects, receives room messages and sees lastEventId', async () => {
    const room = uniq('es');
    await createRoom(sys, room);
    const user = uniq('es');
    const es = new EventSource(`${sys.httpBase}/sse?user_id=${user}&rooms=${room}`);
    closers.push(() => es.close());
    const connected = await withTimeout(
      new Promise((resolve, reject) => {
        es.addEventListener('connected', (e) => resolve(JSON.parse(e.data)));
        es.onerror = (e) => reject(new Error(`eventsource error ${JSON.stringify(e)}`));
      }),
      5000,
      'eventsource connected'
    );
    assert.equal(connected.user_id, user);
    const writer = await ws(uniq('w'));
    await writer.request({ type: 'join', room_id: room });
    const msg = new Promise((resolve) => es.addEventListener('message', (e) => resolve(e)));
    const ack = await writer.request({ type: 'message', room_id: room, data: 'to eventsource' });
    const e = await withTimeout(msg, 5000, 'eventsource message');
    assert.equal(JSON.parse(e.data).id, ack.id);
    assert.ok(e.lastEventId, 'lastEventId set from id:');
    es.close();
  });

  it('channel messages carry an id: on a stream without rooms, which a reconnect can send back', async () => {
    const ch = uniq('ssech');
    await call(sys.api.channels, 'CreateChannel', { channel_id: ch });
    const user = uniq('chreader');
    const publish = async (n) =>
      (await call(sys.api.messages, 'BroadcastToChannel', { channel_id: ch, data: Buffer.from(JSON.stringify({ n })) }))
        .message_id;
    const subscribed = async (c) => {
      await c.next((e) => e.event === 'ack', 5000);
    };
    const first = await sse(user, `&channels=${ch}`);
    await subscribed(first);
    const id1 = await publish(1);
    const ev = await first.next((e) => e.event === 'message' && e.data.id === id1, 5000);
    assert.ok(ev.id, `no id: value on a channel message: ${JSON.stringify(ev.raw)}`);
    first.close();
    // The reconnect sends it back: no invalid_message, and the channel still delivers.
    const again = await sse(user, `&channels=${ch}`, { 'Last-Event-ID': ev.id });
    await subscribed(again);
    const id2 = await publish(2);
    const ev2 = await again.next((e) => e.event === 'message' && e.data.id === id2, 5000);
    assert.equal(ev2.id, ev.id);
    assert.equal(again.events.filter((e) => e.event === 'error').length, 0, JSON.stringify(again.events));
    // With a room seen on the stream, channel messages repeat the rooms' position.
    const room = uniq('chroom');
    await createRoom(sys, room);
    const mixed = await sse(user, `&rooms=${room}&channels=${ch}`, { 'Last-Event-ID': ev.id });
    await mixed.next((e) => e.event === 'ack', 5000);
    await mixed.next((e) => e.event === 'ack', 5000);
    const writer = await ws(uniq('chwriter'));
    await writer.request({ type: 'join', room_id: room });
    await writer.request({ type: 'message', room_id: room, data: 'r' });
    const rm = await mixed.next((e) => e.event === 'message' && e.data.room_id === room, 5000);
    assert.equal(rm.id, `${room}:1`);
    const id3 = await publish(3);
    const ev3 = await mixed.next((e) => e.event === 'message' && e.data.id === id3, 5000);
    assert.equal(ev3.id, `${room}:1`);
    // And the npm eventsource client sees a lastEventId on a channel-only stream.
    const es = new EventSource(`${sys.httpBase}/sse?user_id=${uniq('eschan')}&channels=${ch}`);
    closers.push(() => es.close());
    await withTimeout(new Promise((resolve) => es.addEventListener('ack', resolve)), 5000, 'eventsource ack');
    const got = new Promise((resolve) => es.addEventListener('message', (e) => resolve(e)));
    const id4 = await publish(4);
    const e4 = await withTimeout(got, 5000, 'eventsource channel message');
    assert.equal(JSON.parse(e4.data).id, id4);
    assert.ok(e4.lastEventId, 'lastEventId set from id:');
    es.close();
  });

  stopsCleanly(shutdown);
});
