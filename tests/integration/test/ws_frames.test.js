// WebSocket client frames against the real daemons: every frame type of PROTOCOL.md and the
// receivers chosen in docs/nodelink.md ("Who receives what", "Request answers").
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startSystem, stopsCleanly, httpGet } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const F = require('../lib/frames');
const { uniq, createRoom } = require('../lib/util');

const TYPING_TIMEOUT_MS = 1000;
const PRESENCE_OPTIONAL = {
  timestamp: F.TS,
  device: () => true,
  activity: () => true,
  custom_status: F.STRING,
  last_seen: () => true,
};

describe('websocket frames', { timeout: 90000 }, () => {
  let sys;
  const clients = [];

  async function connect(user) {
    const c = await WsClient.connect(sys.wsUrl(user));
    clients.push(c);
    return c;
  }

  async function joined(c, room) {
    const a = await c.request({ type: 'join', room_id: room });
    F.assertFrame(a, { type: 'ack', ref: F.NONEMPTY, room_id: room }, {}, 'join ack');
    return a;
  }

  function msgFrame(room, user, data, extra = {}) {
    return { type: 'message', id: F.MSG_ID, seq: F.POS_INT, room_id: room, user_id: user, data, timestamp: F.TS, ...extra };
  }

  before(async () => {
    sys = await startSystem({ cpArgs: ['--typing-timeout-ms', String(TYPING_TIMEOUT_MS), '--presence-grace-ms', '0'] });
  });

  const shutdown = async () => {
    await Promise.all(clients.map((c) => c.close()));
    if (sys) await sys.stop();
  };
  after(shutdown);

  it('sends the connected frame first, with connection, session, user and node ids', async () => {
    const user = uniq('conn');
    const c = await WsClient.connect(sys.wsUrl(user));
    clients.push(c);
    assert.equal(c.all[0].type, 'connected', 'connected must be the first frame');
    F.assertFrame(c.connected, {
      type: 'connected',
      connection_id: F.CONN_ID,
      session_id: F.SESSION_ID,
      user_id: user,
      node_id: F.NONEMPTY,
    });
    const c2 = await connect(user);
    assert.notEqual(c2.connected.connection_id, c.connected.connection_id, 'connection ids are unique');
  });

  it('frames sent right after the upgrade are answered after the connected frame', async () => {
    const room = uniq('early');
    await createRoom(sys, room);
    const user = uniq('early');
    const c = new WsClient(sys.wsUrl(user));
    clients.push(c);
    await c.opened;
    c.send({ type: 'join', room_id: room, ref: 'e1' });
    c.send({ type: 'message', room_id: room, data: 'early bird', ref: 'e2' });
    c.send({ type: 'ping', ref: 'e3' });
    F.assertFrame(await c.next(), { type: 'connected', connection_id: F.CONN_ID, session_id: F.SESSION_ID, user_id: user, node_id: F.NONEMPTY });
    F.assertFrame(await c.next({ ref: 'e1' }), { type: 'ack', ref: 'e1', room_id: room });
    F.assertFrame(await c.next({ ref: 'e2' }), { type: 'ack', ref: 'e2', id: F.MSG_ID, seq: 1 });
    await c.next({ type: 'message', data: 'early bird' });
    assert.equal((await c.next({ ref: 'e3' })).type, 'pong');
  });

  it('answers ping with pong carrying the ref', async () => {
    const c = await connect(uniq('ping'));
    const p = await c.request({ type: 'ping', ref: 'p-1' });
    F.assertFrame(p, { type: 'pong', ref: 'p-1' }, { timestamp: F.TS });
    c.send({ type: 'ping' });
    const p2 = await c.next({ type: 'pong' });
    F.assertFrame(p2, { type: 'pong' }, { timestamp: F.TS });
  });

  it('join acks with room_id and tells other members; leave acks and tells remaining members', async () => {
    const room = uniq('room');
    await createRoom(sys, room);
    const alice = await connect(uniq('alice'));
    const bob = await connect(uniq('bob'));
    const aliceId = alice.connected.user_id;
    const bobId = bob.connected.user_id;

    await joined(alice, room);
    await joined(bob, room);
    const ev = await alice.next({ type: 'join', room_id: room });
    F.assertFrame(ev, { type: 'join', room_id: room, user_id: bobId, timestamp: F.TS });
    await bob.none({ type: 'join', user_id: bobId }, 200);

    // Already a member: acked again, no event for anyone.
    await joined(bob, room);
    await alice.none({ type: 'join' }, 300);

    const ack = await bob.request({ type: 'leave', room_id: room, ref: 'lv-1' });
    F.assertFrame(ack, { type: 'ack', ref: 'lv-1' });
    const lv = await alice.next({ type: 'leave', room_id: room });
    F.assertFrame(lv, { type: 'leave', room_id: room, user_id: bobId, timestamp: F.TS });
    await bob.none({ type: 'leave' }, 200);
    // After leaving, bob no longer receives the room's messages.
    const m = await alice.request({ type: 'message', room_id: room, data: 'after-leave' });
    assert.equal(m.type, 'ack', JSON.stringify(m));
    await alice.next({ type: 'message', data: 'after-leave' });
    await bob.none({ type: 'message' }, 300);
    assert.ok(aliceId);
  });

  it('message: ack with id and seq, delivered to the other member and the sender, data exact', async () => {
    const room = uniq('room');
    await createRoom(sys, room);
    const alice = await connect(uniq('alice'));
    const bob = await connect(uniq('bob'));
    await joined(alice, room);
    await joined(bob, room);
    alice.drain();
    const aliceId = alice.connected.user_id;

    // data is spliced as raw JSON text: formatting of numbers and unicode survives.
    const rawData = '{"text":"h\\u00e9llo \u{1F600}","n":1.50,"list":[1,{"x":null}]}';
    alice.send(`{"type":"message","room_id":"${room}","ref":"m-1","data":${rawData}}`);
    const ack = await alice.next({ ref: 'm-1' });
    F.assertFrame(ack, { type: 'ack', ref: 'm-1', id: F.MSG_ID, seq: 1 });

    const expected = msgFrame(room, aliceId, JSON.parse(rawData), { id: ack.id, seq: 1 });
    const atBob = await bob.next({ type: 'message', room_id: room });
    F.assertFrame(atBob, expected, {}, 'delivery to other member');
    assert.ok(atBob.__text.includes(`"data":${rawData}`), `data not spliced verbatim: ${atBob.__text}`);
    const atAlice = await alice.next({ type: 'message', room_id: room });
    F.assertFrame(atAlice, expected, {}, 'delivery to sender');
    assert.ok(!('ref' in atAlice), 'delivered frames carry no ref');

    // Second message gets the next seq; thread_id and metadata travel with it.
    const ack2 = await alice.request({ type: 'message', room_id: room, data: [1, 2], thread_id: 't-1', metadata: { k: 'v' } });
    F.assertFrame(ack2, { type: 'ack', ref: F.NONEMPTY, id: F.MSG_ID, seq: 2 });
    assert.notEqual(ack2.id, ack.id);
    const m2 = await bob.next({ type: 'message', seq: 2 });
    F.assertFrame(m2, msgFrame(room, aliceId, [1, 2], { id: ack2.id, seq: 2, thread_id: 't-1', metadata: { k: 'v' } }));

    // Any JSON value is valid data: string, number, boolean, null.
    for (const data of ['plain', 42, false, null]) {
      const a = await alice.request({ type: 'message', room_id: room, data });
      assert.equal(a.type, 'ack', `data ${JSON.stringify(data)}: ${JSON.stringify(a)}`);
      const d = await bob.next({ type: 'message', seq: a.seq });
      assert.deepEqual(d.data, data);
    }
  });

  it('data keeps numbers beyond 2^53 and exponents verbatim (spliced, never re-encoded)', async () => {
    const room = uniq('room');
    await createRoom(sys, room);
    const alice = await connect(uniq('alice'));
    await joined(alice, room);
    const rawData = '{"big":9007199254740993,"e":1E+2,"neg":-0.0,"s":"\\u00e9\\/"}';
    alice.send(`{"type":"message","room_id":"${room}","ref":"big-1","data":${rawData}}`);
    const ack = await alice.next({ ref: 'big-1' });
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    const m = await alice.next({ type: 'message', seq: ack.seq });
    assert.ok(m.__text.includes(`"data":${rawData}`), `data not spliced verbatim: ${m.__text}`);
  });

  it('join with since replays the missed messages in order after the ack', async () => {
    const room = uniq('room');
    await createRoom(sys, room);
    const alice = await connect(uniq('alice'));
    const aliceId = alice.connected.user_id;
    await joined(alice, room);
    const acks = [];
    for (let i = 1; i <= 5; i++) acks.push(await alice.request({ type: 'message', room_id: room, data: { i } }));
    assert.deepEqual(acks.map((a) => a.seq), [1, 2, 3, 4, 5]);

    // A new member recovers from seq 2: gets 3, 4, 5.
    const bob = await connect(uniq('bob'));
    bob.send({ type: 'join', room_id: room, since: 2, ref: 'j-since' });
    const ack = await bob.next();
    F.assertFrame(ack, { type: 'ack', ref: 'j-since', room_id: room }, {}, 'first frame after join is the ack');
    for (let s = 3; s <= 5; s++) {
      const m = await bob.next();
      F.assertFrame(m, msgFrame(room, aliceId, { i: s }, { seq: s, id: acks[s - 1].id }), {}, `replay seq ${s}`);
    }
    await bob.none({ type: 'message' }, 200);

    // An existing member re-joins with since: acked (no error), replays, and nobody hears a join.
    alice.drain();
    alice.send({ type: 'join', room_id: room, since: 4, ref: 'j-again' });
    F.assertFrame(await alice.next(), { type: 'ack', ref: 'j-again', room_id: room });
    F.assertFrame(await alice.next(), msgFrame(room, aliceId, { i: 5 }, { seq: 5, id: acks[4].id }));
    await bob.none({ type: 'join' }, 200);

    // since at the head replays nothing.
    bob.send({ type: 'join', room_id: room, since: 5, ref: 'j-head' });
    F.assertFrame(await bob.next(), { type: 'ack', ref: 'j-head', room_id: room });
    await bob.none({ type: 'message' }, 300);
  });

  it('history pages with limit, before and after (exclusive bounds, oldest first)', async () => {
    const room = uniq('room');
    await createRoom(sys, room);
    const alice = await connect(uniq('alice'));
    const aliceId = alice.connected.user_id;
    await joined(alice, room);
    const ids = {};
    for (let i = 1; i <= 10; i++) {
      const a = await alice.request({ type: 'message', room_id: room, data: { i } });
      ids[a.seq] = a.id;
    }
    const seqs = (h) => h.messages.map((m) => m.seq);

    const all = await alice.request({ type: 'history', room_id: room, ref: 'h-all' });
    F.assertFrame(all, { type: 'history', ref: 'h-all', room_id: room, messages: Array.isArray }, { has_more: () => true });
    assert.deepEqual(seqs(all), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    all.messages.forEach((m) => F.assertFrame(m, msgFrame(room, aliceId, { i: m.seq }, { id: ids[m.seq] }), {}, 'history entry'));

    const newest = await alice.request({ type: 'history', room_id: room, limit: 3 });
    assert.deepEqual(seqs(newest), [8, 9, 10], 'limit alone: the newest, oldest first');
    const before = await alice.request({ type: 'history', room_id: room, limit: 2, before: 5 });
    assert.deepEqual(seqs(before), [3, 4], 'before: newest below the bound');
    const after = await alice.request({ type: 'history', room_id: room, limit: 2, after: 5 });
    assert.deepEqual(seqs(after), [6, 7], 'after: oldest above the bound');
    const tail = await alice.request({ type: 'history', room_id: room, after: 8 });
    assert.deepEqual(seqs(tail), [9, 10]);
    const head = await alice.request({ type: 'history', room_id: room, before: 3 });
    assert.deepEqual(seqs(head), [1, 2]);
    const none = await alice.request({ type: 'history', room_id: room, before: 1 });
    assert.deepEqual(seqs(none), []);
    const beyond = await alice.request({ type: 'history', room_id: room, after: 10 });
    assert.deepEqual(seqs(beyond), []);
    // Paging backwards from the newest visits every message once.
    const seen = [];
    let bound;
    for (let guard = 0; guard < 10; guard++) {
      const req = { type: 'history', room_id: room, limit: 4 };
      if (bound !== undefined) req.before = bound;
      const page = await alice.request(req);
      if (page.messages.length === 0) break;
      seen.unshift(...seqs(page));
      bound = page.messages[0].seq;
    }
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('typing reaches the other members only, and typing:false follows on stop and on expiry', async () => {
    const room = uniq('room');
    await createRoom(sys, room);
    const alice = await connect(uniq('alice'));
    const bob = await connect(uniq('bob'));
    const aliceId = alice.connected.user_id;
    await joined(alice, room);
    await joined(bob, room);
    alice.drain();
    bob.drain();

    alice.send({ type: 'typing', room_id: room, typing: true, ref: 'ty-1' });
    F.assertFrame(await bob.next({ type: 'typing' }), { type: 'typing', room_id: room, user_id: aliceId, typing: true });
    await alice.none({ ref: 'ty-1' }, 200); // no answer on success
    await alice.none({ type: 'typing' }, 0);

    alice.send({ type: 'typing', room_id: room, typing: false });
    F.assertFrame(await bob.next({ type: 'typing' }), { type: 'typing', room_id: room, user_id: aliceId, typing: false });

    // Expiry: typing:false arrives after the typing timeout with no further frame.
    const t0 = Date.now();
    alice.send({ type: 'typing', room_id: room, typing: true });
    await bob.next({ type: 'typing', typing: true });
    const off = await bob.next({ type: 'typing' }, TYPING_TIMEOUT_MS + 3000);
    const waited = Date.now() - t0;
    F.assertFrame(off, { type: 'typing', room_id: room, user_id: aliceId, typing: false });
    assert.ok(waited >= TYPING_TIMEOUT_MS * 0.8, `typing expired too early (${waited} ms)`);
    await alice.none({ type: 'typing' }, 0);
  });

  it('presence status reaches users who share a room (not the user), acked with ref', async () => {
    const room = uniq('room');
    await createRoom(sys, room);
    const alice = await connect(uniq('alice'));
    const bob = await connect(uniq('bob'));
    const carol = await connect(uniq('carol')); // shares no room with alice
    const aliceId = alice.connected.user_id;
    await joined(alice, room);
    await joined(bob, room);
    alice.drain();
    bob.drain();
    carol.drain();

    const ack = await alice.request({ type: 'presence', status: 'away', ref: 'pr-1' });
    F.assertFrame(ack, { type: 'ack', ref: 'pr-1' });
    F.assertFrame(
      await bob.next({ type: 'presence', user_id: aliceId }),
      { type: 'presence', user_id: aliceId, status: 'away' },
      PRESENCE_OPTIONAL
    );
    await alice.none({ type: 'presence' }, 200);
    await carol.none({ type: 'presence' }, 0);

    for (const status of ['busy', 'online']) {
      assert.equal((await alice.request({ type: 'presence', status })).type, 'ack');
      const p = await bob.next({ type: 'presence', user_id: aliceId });
      assert.equal(p.status, status);
    }
  });

  it('presence offline reaches co-members when the last connection closes', async () => {
    const room = uniq('room');
    await createRoom(sys, room);
    const alice = await connect(uniq('alice'));
    const bobId = uniq('bob');
    const bob1 = await connect(bobId);
    const bob2 = await connect(bobId);
    await joined(alice, room);
    await joined(bob1, room);
    alice.drain();

    await bob1.close();
    await alice.none({ type: 'presence', user_id: bobId }, 500); // bob2 still open
    await bob2.close();
    const p = await alice.next({ type: 'presence', user_id: bobId }, 8000);
    F.assertFrame(p, { type: 'presence', user_id: bobId, status: 'offline' }, PRESENCE_OPTIONAL);
  });

  it('membership belongs to the user: every connection of a member receives room events', async () => {
    const room = uniq('room');
    await createRoom(sys, room);
    const userId = uniq('multi');
    const c1 = await connect(userId);
    const c2 = await connect(userId);
    await joined(c1, room);
    const a = await c1.request({ type: 'message', room_id: room, data: 'both' });
    assert.equal(a.type, 'ack');
    await c1.next({ type: 'message', data: 'both' });
    await c2.next({ type: 'message', data: 'both' });
    // A connection opened after the join is a member too.
    const c3 = await connect(userId);
    const b = await c2.request({ type: 'message', room_id: room, data: 'late' });
    assert.equal(b.type, 'ack');
    await c3.next({ type: 'message', data: 'late', seq: b.seq });
  });

  it('a channel that does not exist: subscribe/publish say channel_not_found, unsubscribe too (or not_subscribed)', async () => {
    const c = await connect(uniq('chan'));
    F.assertError(await c.request({ type: 'subscribe', channel_id: 'news', ref: 's1' }), 'channel_not_found', 's1');
    F.assertError(await c.request({ type: 'publish', channel_id: 'news', data: { x: 1 }, ref: 'p1' }), 'channel_not_found', 'p1');
    const u = await c.request({ type: 'unsubscribe', channel_id: 'news', ref: 'u1' });
    assert.ok(['not_subscribed', 'channel_not_found'].includes(u.code), JSON.stringify(u));
    F.assertError(u, u.code, 'u1');
    assert.ok(c.isOpen);
  });

  it('/metrics counts the socket writes that carry the frames written', async () => {
    const m = await httpGet(`${sys.httpBase}/metrics`);
    assert.equal(m.status, 200);
    const value = (name) => Number((m.body.match(new RegExp(`^${name} (\\d+)$`, 'm')) || [])[1]);
    const frames = value('switchboard_dp_frames_out_total');
    const writes = value('switchboard_dp_writes_out_total');
    assert.ok(frames > 0, `frames_out_total ${frames}`); // the tests above had frames written
    assert.ok(writes > 0 && writes <= frames, `writes ${writes}, frames ${frames}`);
  });

  stopsCleanly(shutdown);
});
