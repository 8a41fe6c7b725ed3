// Channels: switchboard.v1.Channels, Messages.BroadcastToChannel, the subscribe / unsubscribe /
// publish frames, metadata filters, SSE ?channels=, the channels-per-user limit.
// stores: memory, etcd
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startSystem, stopsCleanly } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const { SseClient, ssePost } = require('../lib/sseclient');
const F = require('../lib/frames');
const { uniq, rejectsWith } = require('../lib/util');
const { call, status } = require('../lib/grpc');

const json = (v) => Buffer.from(JSON.stringify(v));
const LIMIT = 2; // --max-channels-per-user

// A channel message frame as PROTOCOL.md gives it (metadata when the message carries some).
function channelFrame(want) {
  return { type: 'message', id: F.MSG_ID, timestamp: F.TS, ...want };
}

describe('channels', { timeout: 180000 }, () => {
  let sys;
  const clients = [];

  async function connect(user) {
    const c = await WsClient.connect(sys.wsUrl(user));
    clients.push(c);
    return c;
  }

  async function sse(user, query = '') {
    const c = await SseClient.connect(`${sys.httpBase}/sse?user_id=${encodeURIComponent(user)}${query}`);
    clients.push({ close: async () => c.close() });
    return c;
  }

  // clientPublish: clients may send publish frames (off by default; channel_auth.test.js).
  async function channel(prefix = 'ch', metadata = {}, clientPublish = false) {
    const id = uniq(prefix);
    await call(sys.api.channels, 'CreateChannel', { channel_id: id, metadata, client_publish: clientPublish });
    return id;
  }

  before(async () => {
    sys = await startSystem({ cpArgs: ['--max-channels-per-user', String(LIMIT)] });
  });

  const shutdown = async () => {
    for (const c of clients) if (c.close) await c.close();
    if (sys) await sys.stop();
  };
  after(shutdown);

  it('CreateChannel returns the channel; a second create is channel_already_exists', async () => {
    const id = uniq('create');
    const t0 = Date.now();
    const ch = await call(sys.api.channels, 'CreateChannel', { channel_id: id, metadata: { team: 'ops' } });
    assert.equal(ch.id, id);
    assert.deepEqual(ch.metadata, { team: 'ops' });
    assert.equal(ch.subscriber_count, 0);
    assert.ok(ch.created_at >= t0 - 5000 && ch.created_at <= Date.now() + 5000, `created_at ${ch.created_at}`);
    await rejectsWith(call(sys.api.channels, 'CreateChannel', { channel_id: id }), status.ALREADY_EXISTS, 'channel_already_exists');
    await rejectsWith(call(sys.api.channels, 'CreateChannel', { channel_id: 'bad id!' }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(call(sys.api.channels, 'CreateChannel', { channel_id: '' }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(
      call(sys.api.channels, 'CreateChannel', { channel_id: uniq('meta'), metadata: { '': 'x' } }),
      status.INVALID_ARGUMENT,
      'invalid_message'
    );
  });

  it('ListChannels matches glob patterns: * inside a segment, ** across segments', async () => {
    const p = uniq('g');
    const ids = [`${p}.user.alice.notifications`, `${p}.user.bob.notifications`, `${p}.user.a.b.notifications`, `${p}.news`];
    for (const id of ids) await call(sys.api.channels, 'CreateChannel', { channel_id: id, metadata: { n: id } });
    const list = async (pattern) => (await call(sys.api.channels, 'ListChannels', { pattern })).channels.map((c) => c.id);

    assert.deepEqual(await list(`${p}.user.*.notifications`), [ids[0], ids[1]]);
    assert.deepEqual(await list(`${p}.user.**.notifications`), [ids[2], ids[0], ids[1]]);
    assert.deepEqual(await list(`${p}.**`), [...ids].sort());
    assert.deepEqual(await list(`${p}.n*s`), [ids[3]]);
    assert.deepEqual(await list(`${p}.news`), [ids[3]]);
    assert.deepEqual(await list(`${p}.nothing*`), []);
    for (const all of ['', '**']) {
      const got = await list(all);
      for (const id of ids) assert.ok(got.includes(id), `pattern "${all}" lists ${id}`);
    }
    const full = (await call(sys.api.channels, 'ListChannels', { pattern: `${p}.news` })).channels[0];
    assert.deepEqual(full.metadata, { n: ids[3] });
    assert.ok(full.created_at > 0);
    await rejectsWith(call(sys.api.channels, 'ListChannels', { pattern: 'a b' }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(call(sys.api.channels, 'ListChannels', { pattern: 'a/b' }), status.INVALID_ARGUMENT, 'invalid_message');
  });

  it('Subscribe / Unsubscribe / ListSubscribers and their errors', async () => {
    const id = await channel('subs');
    const u1 = uniq('u');
    const u2 = uniq('u');
    await call(sys.api.channels, 'Subscribe', { channel_id: id, user_id: u2 });
    await call(sys.api.channels, 'Subscribe', { channel_id: id, user_id: u1, filter: 'priority == high' });
    assert.deepEqual((await call(sys.api.channels, 'ListSubscribers', { channel_id: id })).user_ids, [u1, u2].sort());
    const listed = (await call(sys.api.channels, 'ListChannels', { pattern: id })).channels;
    assert.equal(listed[0].subscriber_count, 2);

    await rejectsWith(call(sys.api.channels, 'Subscribe', { channel_id: id, user_id: u1 }), status.ALREADY_EXISTS, 'already_subscribed');
    const missing = uniq('missing');
    await rejectsWith(call(sys.api.channels, 'Subscribe', { channel_id: missing, user_id: u1 }), status.NOT_FOUND, 'channel_not_found');
    await rejectsWith(call(sys.api.channels, 'Unsubscribe', { channel_id: missing, user_id: u1 }), status.NOT_FOUND, 'channel_not_found');
    await rejectsWith(call(sys.api.channels, 'ListSubscribers', { channel_id: missing }), status.NOT_FOUND, 'channel_not_found');
    await rejectsWith(call(sys.api.channels, 'Subscribe', { channel_id: id, user_id: 'bad user' }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(
      call(sys.api.channels, 'Subscribe', { channel_id: id, user_id: uniq('u'), filter: 'priority = high' }),
      status.INVALID_ARGUMENT,
      'invalid_message'
    );
    await rejectsWith(
      call(sys.api.channels, 'Subscribe', { channel_id: id, user_id: uniq('u'), filter: 'priority in [high' }),
      status.INVALID_ARGUMENT,
      'invalid_message'
    );

    await call(sys.api.channels, 'Unsubscribe', { channel_id: id, user_id: u1 });
    await rejectsWith(call(sys.api.channels, 'Unsubscribe', { channel_id: id, user_id: u1 }), status.NOT_FOUND, 'not_subscribed');
    assert.deepEqual((await call(sys.api.channels, 'ListSubscribers', { channel_id: id })).user_ids, [u2]);
    // Subscribing again works once unsubscribed.
    await call(sys.api.channels, 'Subscribe', { channel_id: id, user_id: u1 });
    assert.deepEqual((await call(sys.api.channels, 'ListSubscribers', { channel_id: id })).user_ids, [u1, u2].sort());
  });

  it('BroadcastToChannel reaches every connection of every subscriber, WebSocket and SSE', async () => {
    const id = await channel('bc');
    const a = uniq('a');
    const s = uniq('s');
    const a1 = await connect(a);
    const a2 = await connect(a);
    const outsider = await connect(uniq('out'));
    // gRPC Subscribe of a connected user: their open connections receive from now on.
    await call(sys.api.channels, 'Subscribe', { channel_id: id, user_id: a });
    await call(sys.api.channels, 'Subscribe', { channel_id: id, user_id: s });
    const sc = await sse(s);

    const data = { headline: 'hello', n: 1 };
    const r = await call(sys.api.messages, 'BroadcastToChannel', { channel_id: id, data: json(data), user_id: 'newsroom' });
    assert.match(r.message_id, F.MSG_ID);
    const expected = channelFrame({ id: r.message_id, channel_id: id, user_id: 'newsroom', data });
    F.assertFrame(await a1.next({ type: 'message' }), expected, {}, 'first connection');
    F.assertFrame(await a2.next({ type: 'message' }), expected, {}, 'second connection');
    const ev = await sc.next((e) => e.event === 'message');
    F.assertFrame(ev.data, expected, {}, 'SSE subscriber');
    assert.notEqual(ev.id, undefined, `SSE channel message without an id: line: ${ev.raw}`);
    await outsider.none({ type: 'message' }, 200);

    // A connection opened later by a subscribed user receives too (ConnOpened carries channels).
    const a3 = await connect(a);
    const r2 = await call(sys.api.messages, 'BroadcastToChannel', { channel_id: id, data: json('second') });
    F.assertFrame(await a3.next({ type: 'message' }), channelFrame({ id: r2.message_id, channel_id: id, data: 'second' }));
    await a1.next({ type: 'message', id: r2.message_id });

    await rejectsWith(call(sys.api.messages, 'BroadcastToChannel', { channel_id: uniq('nope'), data: json(1) }), status.NOT_FOUND, 'channel_not_found');
    await rejectsWith(call(sys.api.messages, 'BroadcastToChannel', { channel_id: id, data: Buffer.from('{not json') }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(call(sys.api.messages, 'BroadcastToChannel', { channel_id: id, data: Buffer.alloc(0) }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(call(sys.api.messages, 'BroadcastToChannel', { channel_id: 'bad id!', data: json(1) }), status.INVALID_ARGUMENT, 'invalid_message');
    await a1.none({ type: 'message' }, 200);
  });

  it('BroadcastToChannel with an idempotency_key delivers once and repeats the first message_id', async () => {
    const id = await channel('idem');
    const user = uniq('idem');
    await call(sys.api.channels, 'Subscribe', { channel_id: id, user_id: user });
    const ws = await connect(user);
    const req = { channel_id: id, data: json({ once: true }), idempotency_key: `key with spaces/${uniq('k')}` };
    const r1 = await call(sys.api.messages, 'BroadcastToChannel', req);
    const r2 = await call(sys.api.messages, 'BroadcastToChannel', req);
    assert.equal(r2.message_id, r1.message_id);
    await ws.next({ type: 'message', id: r1.message_id });
    await ws.none({ type: 'message' }, 400);
    const r3 = await call(sys.api.messages, 'BroadcastToChannel', { ...req, idempotency_key: uniq('other') });
    assert.notEqual(r3.message_id, r1.message_id);
    await ws.next({ type: 'message', id: r3.message_id });
    // The same key on another channel is another message.
    const id2 = await channel('idem2');
    const r4 = await call(sys.api.messages, 'BroadcastToChannel', { ...req, channel_id: id2 });
    assert.notEqual(r4.message_id, r1.message_id);
  });

  it('filters: a subscriber receives only the messages whose metadata match', async () => {
    const id = await channel('flt', {}, true);
    const hi = uniq('hi');
    const low = uniq('low');
    const all = uniq('all');
    const notEu = uniq('noteu');
    await call(sys.api.channels, 'Subscribe', { channel_id: id, user_id: hi, filter: 'priority in [high, medium]' });
    await call(sys.api.channels, 'Subscribe', { channel_id: id, user_id: low, filter: 'priority == low' });
    await call(sys.api.channels, 'Subscribe', { channel_id: id, user_id: all });
    const wsHi = await connect(hi);
    const wsLow = await connect(low);
    const wsAll = await connect(all);
    // A client frame subscribes with a filter too.
    const wsNotEu = await connect(notEu);
    const ack = await wsNotEu.request({ type: 'subscribe', channel_id: id, filter: 'region != eu and priority in [high, low]' });
    F.assertFrame(ack, { type: 'ack', ref: F.NONEMPTY });

    const r = await call(sys.api.messages, 'BroadcastToChannel', {
      channel_id: id,
      data: json({ alert: 1 }),
      metadata: { priority: 'high', region: 'eu' },
    });
    const exp = channelFrame({ id: r.message_id, channel_id: id, data: { alert: 1 }, metadata: { priority: 'high', region: 'eu' } });
    F.assertFrame(await wsHi.next({ type: 'message' }), exp);
    F.assertFrame(await wsAll.next({ type: 'message' }), exp);
    await wsLow.none({ type: 'message' }, 300);
    await wsNotEu.none({ type: 'message' }, 0);

    // A publish frame carries metadata as well.
    const pub = await connect(uniq('pub'));
    const pa = await pub.request({ type: 'publish', channel_id: id, data: { alert: 2 }, metadata: { priority: 'low', region: 'us' } });
    F.assertFrame(pa, { type: 'ack', ref: F.NONEMPTY, id: F.MSG_ID });
    for (const c of [wsLow, wsAll, wsNotEu]) {
      F.assertFrame(
        await c.next({ type: 'message' }),
        channelFrame({ id: pa.id, channel_id: id, user_id: pub.connected.user_id, data: { alert: 2 }, metadata: { priority: 'low', region: 'us' } })
      );
    }
    await wsHi.none({ type: 'message' }, 300);

    // No metadata at all: `==` and `in` fail, `!=` alone would pass.
    const r3 = await call(sys.api.messages, 'BroadcastToChannel', { channel_id: id, data: json(3) });
    await wsAll.next({ type: 'message', id: r3.message_id });
    await wsHi.none({ type: 'message' }, 300);
    await wsLow.none({ type: 'message' }, 0);
    await wsNotEu.none({ type: 'message' }, 0);

    // A client re-subscribe replaces the filter (acked, not an error).
    await wsLow.request({ type: 'subscribe', channel_id: id });
    const r4 = await call(sys.api.messages, 'BroadcastToChannel', { channel_id: id, data: json(4), metadata: { priority: 'high' } });
    await wsLow.next({ type: 'message', id: r4.message_id });

    const bad = await wsAll.request({ type: 'subscribe', channel_id: id, filter: 'priority ~ high' });
    F.assertError(bad, 'invalid_message', bad.ref);
  });

  it('client frames: subscribe, publish (no subscription needed), unsubscribe, and their errors', async () => {
    const id = await channel('frames', {}, true);
    const sub = uniq('sub');
    const pubUser = uniq('pub');
    const s1 = await connect(sub);
    const s2 = await connect(sub);
    const p = await connect(pubUser);

    F.assertFrame(await s1.request({ type: 'subscribe', channel_id: id, ref: 'sub1' }), { type: 'ack', ref: 'sub1' });
    assert.deepEqual((await call(sys.api.channels, 'ListSubscribers', { channel_id: id })).user_ids, [sub]);

    const ack = await p.request({ type: 'publish', channel_id: id, data: { text: 'hi' }, ref: 'p1' });
    F.assertFrame(ack, { type: 'ack', ref: 'p1', id: F.MSG_ID });
    const exp = channelFrame({ id: ack.id, channel_id: id, user_id: pubUser, data: { text: 'hi' } });
    // Membership belongs to the user: the other connection receives too.
    F.assertFrame(await s1.next({ type: 'message' }), exp, {}, 'subscribing connection');
    F.assertFrame(await s2.next({ type: 'message' }), exp, {}, 'other connection of the user');
    await p.none({ type: 'message' }, 200);

    // A subscriber may publish and receives its own message.
    const own = await s2.request({ type: 'publish', channel_id: id, data: [1, 2] });
    await s1.next({ type: 'message', id: own.id });
    await s2.next({ type: 'message', id: own.id });

    F.assertFrame(await s2.request({ type: 'unsubscribe', channel_id: id, ref: 'u1' }), { type: 'ack', ref: 'u1' });
    const after = await p.request({ type: 'publish', channel_id: id, data: 'gone' });
    assert.equal(after.type, 'ack');
    await s1.none({ type: 'message' }, 300);
    await s2.none({ type: 'message' }, 0);

    const missing = uniq('missing');
    F.assertError(await s1.request({ type: 'subscribe', channel_id: missing, ref: 'e1' }), 'channel_not_found', 'e1');
    F.assertError(await s1.request({ type: 'publish', channel_id: missing, data: 1, ref: 'e2' }), 'channel_not_found', 'e2');
    F.assertError(await s1.request({ type: 'unsubscribe', channel_id: id, ref: 'e3' }), 'not_subscribed', 'e3');
    F.assertError(await s1.request({ type: 'unsubscribe', channel_id: missing, ref: 'e4' }), 'channel_not_found', 'e4');
    F.assertError(await s1.request({ type: 'subscribe', channel_id: 'bad id!', ref: 'e5' }), 'invalid_message', 'e5');
    F.assertError(await s1.request({ type: 'publish', channel_id: id, ref: 'e6' }), 'invalid_message', 'e6');
    s1.send('{"type":"publish","channel_id":"x","data":{not json},"ref":"e7"}');
    F.assertError(await s1.next({ type: 'error' }), 'invalid_message');
    F.assertError(await s1.request({ type: 'publish', channel_id: id, data: 1, metadata: { k: 1 }, ref: 'e8' }), 'invalid_message', 'e8');
    assert.ok(s1.isOpen, 'bad frames leave the connection open');
  });

  it('channel_limit_reached beyond --max-channels-per-user, over gRPC and frames', async () => {
    const user = uniq('limit');
    const ids = [];
    for (let i = 0; i <= LIMIT; i++) ids.push(await channel('lim'));
    for (let i = 0; i < LIMIT; i++) await call(sys.api.channels, 'Subscribe', { channel_id: ids[i], user_id: user });
    await rejectsWith(
      call(sys.api.channels, 'Subscribe', { channel_id: ids[LIMIT], user_id: user }),
      status.RESOURCE_EXHAUSTED,
      'channel_limit_reached'
    );
    const ws = await connect(user);
    F.assertError(await ws.request({ type: 'subscribe', channel_id: ids[LIMIT], ref: 'lim' }), 'channel_limit_reached', 'lim');
    // Re-subscribing to a channel the user already has is not a new one.
    F.assertFrame(await ws.request({ type: 'subscribe', channel_id: ids[0], ref: 'again' }), { type: 'ack', ref: 'again' });
    // Leaving one makes room.
    await call(sys.api.channels, 'Unsubscribe', { channel_id: ids[0], user_id: user });
    F.assertFrame(await ws.request({ type: 'subscribe', channel_id: ids[LIMIT], ref: 'now' }), { type: 'ack', ref: 'now' });
  });

  it('DeleteChannel removes subscriptions: subscribers stop receiving, even if the id comes back', async () => {
    const id = await channel('del');
    const user = uniq('del');
    const ws = await connect(user);
    await ws.request({ type: 'subscribe', channel_id: id });
    await call(sys.api.channels, 'DeleteChannel', { channel_id: id });
    await rejectsWith(call(sys.api.channels, 'DeleteChannel', { channel_id: id }), status.NOT_FOUND, 'channel_not_found');
    await rejectsWith(call(sys.api.messages, 'BroadcastToChannel', { channel_id: id, data: json(1) }), status.NOT_FOUND, 'channel_not_found');
    assert.deepEqual((await call(sys.api.channels, 'ListChannels', { pattern: id })).channels, []);

    await call(sys.api.channels, 'CreateChannel', { channel_id: id });
    assert.deepEqual((await call(sys.api.channels, 'ListSubscribers', { channel_id: id })).user_ids, []);
    await call(sys.api.messages, 'BroadcastToChannel', { channel_id: id, data: json('after') });
    await ws.none({ type: 'message' }, 400);
    // The deleted subscription no longer counts: the user subscribes afresh.
    F.assertFrame(await ws.request({ type: 'subscribe', channel_id: id, ref: 's' }), { type: 'ack', ref: 's' });
    const r = await call(sys.api.messages, 'BroadcastToChannel', { channel_id: id, data: json('back') });
    await ws.next({ type: 'message', id: r.message_id });
  });

  it('SSE: ?channels= subscribes first, with the subscribe frame errors; POST publishes', async () => {
    const id = await channel('sse', {}, true);
    const user = uniq('sse');
    const c = await sse(user, `&channels=${id}`);
    // The subscription is in place once listed.
    for (let i = 0; ; i++) {
      const subs = (await call(sys.api.channels, 'ListSubscribers', { channel_id: id })).user_ids;
      if (subs.includes(user)) break;
      assert.ok(i < 50, 'SSE ?channels= did not subscribe');
      await new Promise((r) => setTimeout(r, 50));
    }
    const r = await call(sys.api.messages, 'BroadcastToChannel', { channel_id: id, data: json({ s: 1 }) });
    const ev = await c.next((e) => e.event === 'message');
    F.assertFrame(ev.data, channelFrame({ id: r.message_id, channel_id: id, data: { s: 1 } }));
    assert.ok(ev.id, `no id: line with a value: ${ev.raw}`);

    const p = await ssePost(sys.httpBase, c.connected.connection_id, { type: 'publish', channel_id: id, data: 'via post', ref: 'pp' }, { query: `user_id=${user}` });
    F.assertFrame(p.frame, { type: 'ack', ref: 'pp', id: F.MSG_ID });
    const own = await c.next((e) => e.event === 'message');
    assert.equal(own.data.id, p.frame.id);

    // Reconnecting with the same query is fine: the user is already subscribed (acked).
    const again = await sse(user, `&channels=${id}`);
    await again.none((e) => e.event === 'error', 300);
    const r2 = await call(sys.api.messages, 'BroadcastToChannel', { channel_id: id, data: json(2) });
    await again.next((e) => e.event === 'message' && e.data.id === r2.message_id);

    const bad = await sse(uniq('sse'), `&channels=${uniq('ghost')}`);
    const e = await bad.next((x) => x.event === 'error');
    F.assertFrame(e.data, { type: 'error', code: 'channel_not_found', message: F.NONEMPTY }, { ref: F.STRING });
  });

  it('GetStats counts channels', async () => {
    const before = (await call(sys.api.connections, 'GetStats', {})).channels;
    await channel('stats');
    const now = (await call(sys.api.connections, 'GetStats', {})).channels;
    assert.equal(now, before + 1);
  });

  stopsCleanly(shutdown);
});

describe('channels with --auto-create-channels', { timeout: 120000 }, () => {
  let sys;
  const clients = [];

  before(async () => {
    sys = await startSystem({ cpArgs: ['--auto-create-channels'] });
  });

  const shutdown = async () => {
    for (const c of clients) await c.close();
    if (sys) await sys.stop();
  };
  after(shutdown);

  it('a client subscribe creates a missing channel; gRPC Subscribe and publish do not', async () => {
    const user = uniq('auto');
    const ws = await WsClient.connect(sys.wsUrl(user));
    clients.push(ws);
    const id = uniq('auto');
    F.assertFrame(await ws.request({ type: 'subscribe', channel_id: id, ref: 'a' }), { type: 'ack', ref: 'a' });
    const listed = (await call(sys.api.channels, 'ListChannels', { pattern: id })).channels;
    assert.equal(listed.length, 1);
    assert.equal(listed[0].subscriber_count, 1);
    const r = await call(sys.api.messages, 'BroadcastToChannel', { channel_id: id, data: json('made') });
    await ws.next({ type: 'message', id: r.message_id });

    const other = uniq('auto');
    await rejectsWith(call(sys.api.channels, 'Subscribe', { channel_id: other, user_id: user }), status.NOT_FOUND, 'channel_not_found');
    F.assertError(await ws.request({ type: 'publish', channel_id: other, data: 1, ref: 'p' }), 'channel_not_found', 'p');
  });

  stopsCleanly(shutdown);
});

// etcd only: two control-plane replicas, two data planes linked to both.
describe('channels across two control-plane replicas', { timeout: 120000, skip: process.env.SB_IT_STORE !== 'etcd' && 'etcd store only' }, () => {
  let cl;
  const clients = [];

  before(async () => {
    const { Cluster } = require('../lib/cluster');
    cl = await new Cluster({ cps: 2, dps: 2, leaseTtlMs: 3000 }).start();
  });

  const shutdown = async () => {
    for (const c of clients) await c.close();
    if (cl) await cl.stop();
  };
  after(shutdown);

  async function connect(dp, user) {
    const c = await WsClient.connect(dp.wsUrl(user));
    clients.push(c);
    return c;
  }

  it('subscriptions, publishes and idempotency keys hold whichever replica serves them', async () => {
    const [cp1, cp2] = cl.cps;
    const [dp1, dp2] = cl.dps;
    const id = uniq('repl');
    await call(cp1.api.channels, 'CreateChannel', { channel_id: id, client_publish: true });
    const user = uniq('ru');
    const onDp1 = await connect(dp1, user);
    const onDp2 = await connect(dp2, user);
    await call(cp2.api.channels, 'Subscribe', { channel_id: id, user_id: user });
    assert.deepEqual((await call(cp1.api.channels, 'ListSubscribers', { channel_id: id })).user_ids, [user]);

    for (const cp of [cp1, cp2]) {
      const r = await call(cp.api.messages, 'BroadcastToChannel', { channel_id: id, data: json('x') });
      await onDp1.next({ type: 'message', id: r.message_id }, 5000);
      await onDp2.next({ type: 'message', id: r.message_id }, 5000);
    }

    // One key on both replicas, one after the other and at the same time: one id, one delivery.
    const req = { channel_id: id, data: json('once'), idempotency_key: uniq('key') };
    const r1 = await call(cp1.api.messages, 'BroadcastToChannel', req);
    const r2 = await call(cp2.api.messages, 'BroadcastToChannel', req);
    assert.equal(r2.message_id, r1.message_id);
    const req2 = { ...req, idempotency_key: uniq('key') };
    const [c1, c2] = await Promise.all([
      call(cp1.api.messages, 'BroadcastToChannel', req2),
      call(cp2.api.messages, 'BroadcastToChannel', req2),
    ]);
    assert.equal(c1.message_id, c2.message_id);
    for (const c of [onDp1, onDp2]) {
      await c.next({ type: 'message', id: r1.message_id }, 5000);
      await c.next({ type: 'message', id: c1.message_id }, 5000);
      await c.none({ type: 'message' }, 500);
    }

    // A client subscribe on one node, a publish from the other.
    const sub = uniq('rs');
    const s = await connect(dp2, sub);
    F.assertFrame(await s.request({ type: 'subscribe', channel_id: id, ref: 's' }), { type: 'ack', ref: 's' });
    const p = await connect(dp1, uniq('rp'));
    const ack = await p.request({ type: 'publish', channel_id: id, data: { from: 'dp1' } });
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    await s.next({ type: 'message', id: ack.id }, 5000);
    await onDp1.next({ type: 'message', id: ack.id }, 5000);
  });

  stopsCleanly(shutdown);
});
