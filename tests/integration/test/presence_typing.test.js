// Presence and typing (issue 4): switchboard.v1.Presence over @grpc/grpc-js, the `presence` and
// `typing` frames over WebSocket, the presence timeout, the grace period, two tabs, no leak to
// users sharing no room, typing expiry and the reported limit; across two replicas on etcd.
// stores: memory, etcd
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startSystem, stopsCleanly, freePort, sleep, DataPlane } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const { SseClient, ssePost } = require('../lib/sseclient');
const F = require('../lib/frames');
const { uniq, createRoom, rejectsWith } = require('../lib/util');
const { call, status } = require('../lib/grpc');

const GRACE_MS = 800;
const TIMEOUT_MS = 1000; // presence timeout of the second system
const TYPING_MS = 3000; // the default typing timeout

// A presence frame: every optional field it may carry.
const PRESENCE_OPTIONAL = {
  timestamp: F.TS,
  custom_status: F.STRING,
  availability: F.STRING,
  device: () => true,
  activity: () => true,
};

describe('Presence and typing', { timeout: 180000 }, () => {
  let sys;
  const clients = [];

  async function connect(user) {
    const c = await WsClient.connect(sys.wsUrl(user));
    clients.push(c);
    return c;
  }

  async function joined(c, room) {
    const a = await c.request({ type: 'join', room_id: room });
    assert.equal(a.type, 'ack', JSON.stringify(a));
  }

  // A room with the given connected users as members; returns their clients.
  async function roomWith(room, ...users) {
    await createRoom(sys, room);
    const cs = [];
    for (const u of users) {
      const c = await connect(u);
      await joined(c, room);
      cs.push(c);
    }
    // etcd: a user's online announcement (made when the connection opened) may land after a
    // later join made them share the room; let it land before the assertions start.
    await sleep(150);
    for (const c of cs) c.drain();
    return cs;
  }

  const P = () => sys.api.presence;

  before(async () => {
    sys = await startSystem({
      cpArgs: ['--presence-grace-ms', String(GRACE_MS), '--max-typing-users', '2'],
    });
  });

  const shutdown = async () => {
    for (const c of clients) if (c.close) await c.close();
    if (sys) await sys.stop();
  };
  after(shutdown);

  it('SetPresence sets status, custom status, device, activity, availability; members see it', async () => {
    const room = uniq('room');
    const alice = uniq('alice');
    const bob = uniq('bob');
    const [, b] = await roomWith(room, alice, bob);
    const t0 = Date.now();
    const ps = await call(P(), 'SetPresence', {
      user_id: alice,
      status: 'busy',
      custom_status: 'In a meeting',
      device: { type: 'web', name: 'Firefox' },
      activity: { type: 'editing', detail: 'doc-1' },
      availability: 'until 15:00',
    });
    assert.equal(ps.user_id, alice);
    assert.equal(ps.status, 'busy');
    assert.equal(ps.custom_status, 'In a meeting');
    assert.deepEqual({ ...ps.device }, { type: 'web', name: 'Firefox' });
    assert.deepEqual({ ...ps.activity }, { type: 'editing', detail: 'doc-1' });
    assert.equal(ps.availability, 'until 15:00');
    assert.equal(ps.connection_count, 1);
    assert.ok(Number(ps.last_seen) >= t0 - 1000, `last_seen ${ps.last_seen}`);

    F.assertFrame(await b.next({ type: 'presence', user_id: alice }), {
      type: 'presence',
      user_id: alice,
      status: 'busy',
      custom_status: 'In a meeting',
      device: { type: 'web', name: 'Firefox' },
      activity: { type: 'editing', detail: 'doc-1' },
      availability: 'until 15:00',
      timestamp: F.TS,
    });

    const got = await call(P(), 'GetPresence', { user_id: alice });
    assert.equal(got.status, 'busy');
    assert.equal(got.custom_status, 'In a meeting');
    assert.equal(got.device.name, 'Firefox');
    assert.equal(got.activity.detail, 'doc-1');
    assert.equal(got.availability, 'until 15:00');
    assert.equal(got.connection_count, 1);

    // Set replaces the whole user-set state: fields left out are cleared.
    const ps2 = await call(P(), 'SetPresence', { user_id: alice, status: 'away' });
    assert.equal(ps2.status, 'away');
    assert.equal(ps2.custom_status, '');
    assert.equal(ps2.device, null);
    assert.equal(ps2.availability, '');
    F.assertFrame(await b.next({ type: 'presence', user_id: alice }), {
      type: 'presence',
      user_id: alice,
      status: 'away',
      timestamp: F.TS,
    });
    sys.check();
  });

  it('SetPresence and the other methods refuse bad input with invalid_message', async () => {
    const bad = (m, req) => rejectsWith(call(P(), m, req), status.INVALID_ARGUMENT, 'invalid_message');
    await bad('SetPresence', { user_id: uniq('u'), status: 'sleeping' });
    await bad('SetPresence', { user_id: uniq('u'), status: '' });
    await bad('SetPresence', { user_id: uniq('u'), status: 'ONLINE' });
    await bad('SetPresence', { user_id: '', status: 'online' });
    await bad('SetPresence', { user_id: 'not valid', status: 'online' });
    await bad('SetPresence', { user_id: uniq('u'), status: 'online', custom_status: 'x'.repeat(257) });
    await bad('SetPresence', { user_id: uniq('u'), status: 'online', device: { type: 'y'.repeat(300), name: '' } });
    await bad('GetPresence', { user_id: '' });
    await bad('GetPresence', { user_id: 'a/b' });
    await bad('TrackActivity', { user_id: '' });
    await bad('GetOnlineUsers', { room_id: 'bad room' });
    await bad('StartTyping', { room_id: '', user_id: uniq('u') });
    await bad('StartTyping', { room_id: uniq('r'), user_id: '' });
    await bad('StopTyping', { room_id: 'x y', user_id: uniq('u') });
    await bad('GetTypingUsers', { room_id: '' });
  });

  it('the presence frame sets status, device, activity, custom status (availability kept); bad status refused', async () => {
    const room = uniq('room');
    const alice = uniq('alice');
    const bob = uniq('bob');
    const [a, b] = await roomWith(room, alice, bob);
    await call(P(), 'SetPresence', { user_id: alice, status: 'online', availability: 'weekdays' });
    await b.next({ type: 'presence', user_id: alice });

    const ack = await a.request({
      type: 'presence',
      status: 'away',
      custom_status: 'lunch',
      device: { type: 'mobile', name: 'Pixel' },
      activity: { type: 'listening', detail: 'radio' },
      ref: 'p1',
    });
    F.assertFrame(ack, { type: 'ack', ref: 'p1' });
    F.assertFrame(await b.next({ type: 'presence', user_id: alice }), {
      type: 'presence',
      user_id: alice,
      status: 'away',
      custom_status: 'lunch',
      device: { type: 'mobile', name: 'Pixel' },
      activity: { type: 'listening', detail: 'radio' },
      availability: 'weekdays',
      timestamp: F.TS,
    });
    await a.none({ type: 'presence', user_id: alice }, 100); // never to the user
    const got = await call(P(), 'GetPresence', { user_id: alice });
    assert.equal(got.status, 'away');
    assert.equal(got.device.type, 'mobile');
    assert.equal(got.availability, 'weekdays');

    F.assertError(await a.request({ type: 'presence', status: 'sleeping', ref: 'p2' }), 'invalid_message', 'p2');
  });

  it('presence never reaches a user who shares no room', async () => {
    const room = uniq('room');
    const alice = uniq('alice');
    const bob = uniq('bob');
    const carolId = uniq('carol');
    const [a, b] = await roomWith(room, alice, bob);
    const carol = await connect(carolId);
    const other = uniq('room');
    await createRoom(sys, other);
    await joined(carol, other); // carol has a room, but not alice's
    carol.drain();

    await call(P(), 'SetPresence', { user_id: alice, status: 'busy' });
    assert.equal((await a.request({ type: 'presence', status: 'online' })).type, 'ack');
    const a2 = await connect(alice); // a second tab: no announcement
    await a2.close();
    const dave = await connect(uniq('dave')); // comes online in no room
    await joined(dave, other);
    await b.next({ type: 'presence', user_id: alice, status: 'busy' });
    await b.next({ type: 'presence', user_id: alice, status: 'online' });
    await carol.none((f) => f.type === 'presence' && f.user_id === alice, 300);
    await b.none((f) => f.type === 'presence' && f.user_id !== alice, 0);
  });

  it('two tabs count once: connection_count 2, one online event, offline only after both close', async () => {
    const room = uniq('room');
    const bobId = uniq('bob');
    const alice = uniq('alice');
    const [b] = await roomWith(room, bobId);
    await call(sys.api.rooms, 'JoinRoom', { room_id: room, user_id: alice });
    b.drain();

    const t1 = await connect(alice);
    const t2 = await connect(alice);
    F.assertFrame(await b.next({ type: 'presence', user_id: alice }), { type: 'presence', user_id: alice, status: 'online' }, PRESENCE_OPTIONAL);
    await b.none({ type: 'presence', user_id: alice }, 300);
    const ps = await call(P(), 'GetPresence', { user_id: alice });
    assert.equal(ps.connection_count, 2);
    assert.equal(ps.status, 'online');

    await t1.close();
    await b.none({ type: 'presence', user_id: alice }, GRACE_MS + 400);
    assert.equal((await call(P(), 'GetPresence', { user_id: alice })).connection_count, 1);
    await t2.close();
    F.assertFrame(await b.next({ type: 'presence', user_id: alice }, GRACE_MS + 3000), { type: 'presence', user_id: alice, status: 'offline' }, PRESENCE_OPTIONAL);
    const off = await call(P(), 'GetPresence', { user_id: alice });
    assert.equal(off.status, 'offline');
    assert.equal(off.connection_count, 0);
  });

  it('grace period: a reconnect within it shows nothing; after it, offline arrives', async () => {
    const room = uniq('room');
    const alice = uniq('alice');
    const bob = uniq('bob');
    const [a, b] = await roomWith(room, alice, bob);
    await a.close();
    await sleep(GRACE_MS / 4);
    const a2 = await connect(alice); // a page reload
    await b.none({ type: 'presence', user_id: alice }, GRACE_MS + 400);
    assert.equal((await call(P(), 'GetPresence', { user_id: alice })).status, 'online');

    const t0 = Date.now();
    await a2.close();
    // Within the grace period the user still counts as online.
    assert.deepEqual((await call(P(), 'GetOnlineUsers', { room_id: room })).user_ids.slice().sort(), [alice, bob].sort());
    const off = await b.next({ type: 'presence', user_id: alice }, GRACE_MS + 3000);
    const waited = Date.now() - t0;
    assert.equal(off.status, 'offline');
    assert.ok(waited >= GRACE_MS - 150, `offline after ${waited} ms, before the grace period`);
    assert.deepEqual((await call(P(), 'GetOnlineUsers', { room_id: room })).user_ids, [bob]);
  });

  it('an explicit status sticks while connected (activity leaves busy alone) and ends with the session', async () => {
    const room = uniq('room');
    const alice = uniq('alice');
    const bob = uniq('bob');
    const [a, b] = await roomWith(room, alice, bob);
    assert.equal((await a.request({ type: 'presence', status: 'busy' })).type, 'ack');
    await b.next({ type: 'presence', user_id: alice, status: 'busy' });
    assert.equal((await a.request({ type: 'message', room_id: room, data: 'hi' })).type, 'ack');
    await call(P(), 'TrackActivity', { user_id: alice });
    assert.equal((await call(P(), 'GetPresence', { user_id: alice })).status, 'busy');
    await b.none({ type: 'presence', user_id: alice }, 200);

    await a.close();
    await b.next({ type: 'presence', user_id: alice, status: 'offline' }, GRACE_MS + 3000);
    await connect(alice);
    await b.next({ type: 'presence', user_id: alice, status: 'online' });
    assert.equal((await call(P(), 'GetPresence', { user_id: alice })).status, 'online');
  });

  it('SetPresence for a user with no connection keeps the fields, the status stays offline', async () => {
    const user = uniq('absent');
    const ps = await call(P(), 'SetPresence', { user_id: user, status: 'busy', custom_status: 'travelling' });
    assert.equal(ps.status, 'offline');
    assert.equal(ps.custom_status, 'travelling');
    assert.equal(ps.connection_count, 0);
    const got = await call(P(), 'GetPresence', { user_id: user });
    assert.equal(got.status, 'offline');
    assert.equal(got.custom_status, 'travelling');
    // A user never seen is simply offline.
    const nobody = await call(P(), 'GetPresence', { user_id: uniq('nobody') });
    assert.equal(nobody.status, 'offline');
    assert.equal(nobody.connection_count, 0);
  });

  it('GetOnlineUsers: per room and system-wide; a user appearing offline is left out; room_not_found', async () => {
    const room = uniq('room');
    const alice = uniq('alice');
    const bob = uniq('bob');
    const carol = uniq('carol');
    await roomWith(room, alice, bob);
    await connect(carol); // online, in no room
    await call(sys.api.rooms, 'JoinRoom', { room_id: room, user_id: uniq('member-offline') });
    const inRoom = await call(P(), 'GetOnlineUsers', { room_id: room });
    assert.deepEqual(inRoom.user_ids, [alice, bob].sort());
    const all = await call(P(), 'GetOnlineUsers', { room_id: '' });
    for (const u of [alice, bob, carol]) assert.ok(all.user_ids.includes(u), `${u} in ${all.user_ids}`);
    assert.deepEqual(all.user_ids, all.user_ids.slice().sort());

    await call(P(), 'SetPresence', { user_id: bob, status: 'offline' }); // invisible
    assert.deepEqual((await call(P(), 'GetOnlineUsers', { room_id: room })).user_ids, [alice]);
    assert.ok(!(await call(P(), 'GetOnlineUsers', {})).user_ids.includes(bob));
    assert.equal((await call(P(), 'GetPresence', { user_id: bob })).status, 'offline');
    await call(P(), 'SetPresence', { user_id: bob, status: 'online' });
    assert.deepEqual((await call(P(), 'GetOnlineUsers', { room_id: room })).user_ids, [alice, bob].sort());

    await rejectsWith(call(P(), 'GetOnlineUsers', { room_id: uniq('nope') }), status.NOT_FOUND, 'room_not_found');
  });

  it('StartTyping/StopTyping reach the other members; GetTypingUsers reports them', async () => {
    const room = uniq('room');
    const alice = uniq('alice');
    const bob = uniq('bob');
    const [a, b] = await roomWith(room, alice, bob);
    await call(P(), 'StartTyping', { room_id: room, user_id: alice });
    F.assertFrame(await b.next({ type: 'typing' }), { type: 'typing', room_id: room, user_id: alice, typing: true });
    await a.none({ type: 'typing' }, 100);
    assert.deepEqual((await call(P(), 'GetTypingUsers', { room_id: room })).user_ids, [alice]);
    await call(P(), 'StartTyping', { room_id: room, user_id: alice }); // a refresh: no new frame
    await b.none({ type: 'typing' }, 200);

    await call(P(), 'StopTyping', { room_id: room, user_id: alice });
    F.assertFrame(await b.next({ type: 'typing' }), { type: 'typing', room_id: room, user_id: alice, typing: false });
    assert.deepEqual((await call(P(), 'GetTypingUsers', { room_id: room })).user_ids, []);
    await call(P(), 'StopTyping', { room_id: room, user_id: alice }); // not typing: fine, nothing sent
    await b.none({ type: 'typing' }, 200);

    // The frame path feeds the same state.
    a.send({ type: 'typing', room_id: room, typing: true });
    await b.next({ type: 'typing', user_id: alice, typing: true });
    assert.deepEqual((await call(P(), 'GetTypingUsers', { room_id: room })).user_ids, [alice]);
    a.send({ type: 'typing', room_id: room, typing: false });
    await b.next({ type: 'typing', user_id: alice, typing: false });
    assert.deepEqual((await call(P(), 'GetTypingUsers', { room_id: room })).user_ids, []);
  });

  it('typing errors: room_not_found, not_room_member (gRPC and frame)', async () => {
    const room = uniq('room');
    const alice = uniq('alice');
    await roomWith(room, alice);
    const outsider = await connect(uniq('outsider'));
    await rejectsWith(call(P(), 'StartTyping', { room_id: uniq('nope'), user_id: alice }), status.NOT_FOUND, 'room_not_found');
    await rejectsWith(call(P(), 'StopTyping', { room_id: uniq('nope'), user_id: alice }), status.NOT_FOUND, 'room_not_found');
    await rejectsWith(call(P(), 'GetTypingUsers', { room_id: uniq('nope') }), status.NOT_FOUND, 'room_not_found');
    await rejectsWith(call(P(), 'StartTyping', { room_id: room, user_id: uniq('stranger') }), status.NOT_FOUND, 'not_room_member');
    await rejectsWith(call(P(), 'StopTyping', { room_id: room, user_id: uniq('stranger') }), status.NOT_FOUND, 'not_room_member');
    F.assertError(await outsider.request({ type: 'typing', room_id: room, typing: true, ref: 't1' }), 'not_room_member', 't1');
    F.assertError(await outsider.request({ type: 'typing', room_id: uniq('nope'), typing: true, ref: 't2' }), 'room_not_found', 't2');
  });

  it(`typing expires after ${TYPING_MS} ms with typing:false; GetTypingUsers forgets it`, async () => {
    const room = uniq('room');
    const alice = uniq('alice');
    const bob = uniq('bob');
    const [, b] = await roomWith(room, alice, bob);
    const t0 = Date.now();
    await call(P(), 'StartTyping', { room_id: room, user_id: alice });
    await b.next({ type: 'typing', typing: true });
    const off = await b.next({ type: 'typing' }, TYPING_MS + 3000);
    const waited = Date.now() - t0;
    F.assertFrame(off, { type: 'typing', room_id: room, user_id: alice, typing: false });
    assert.ok(waited >= TYPING_MS - 300, `expired after ${waited} ms`);
    assert.deepEqual((await call(P(), 'GetTypingUsers', { room_id: room })).user_ids, []);
  });

  it('GetTypingUsers reports at most --max-typing-users (2), earliest first; every frame still goes out', async () => {
    const room = uniq('room');
    const users = [uniq('t1'), uniq('t2'), uniq('t3')];
    const watcher = uniq('watcher');
    const cs = await roomWith(room, ...users, watcher);
    const w = cs[3];
    for (const u of users) {
      await call(P(), 'StartTyping', { room_id: room, user_id: u });
      await sleep(20);
    }
    for (const u of users) await w.next({ type: 'typing', user_id: u, typing: true });
    assert.deepEqual((await call(P(), 'GetTypingUsers', { room_id: room })).user_ids, users.slice(0, 2));
    await call(P(), 'StopTyping', { room_id: room, user_id: users[0] });
    assert.deepEqual((await call(P(), 'GetTypingUsers', { room_id: room })).user_ids, users.slice(1));
  });

  it('SSE: presence and typing events on the stream; presence and typing frames by POST', async () => {
    const room = uniq('room');
    const alice = uniq('alice');
    const bob = uniq('bob');
    const [a] = await roomWith(room, alice);
    const s = await SseClient.connect(`${sys.httpBase}/sse?user_id=${encodeURIComponent(bob)}&rooms=${room}`);
    clients.push(s);
    await a.next({ type: 'join', user_id: bob }); // bob was online before sharing the room
    const cid = s.connected.connection_id;
    const q = { query: `user_id=${bob}` };

    await call(P(), 'SetPresence', { user_id: alice, status: 'busy', custom_status: 'deep work' });
    const ev = await s.next((e) => e.event === 'presence');
    F.assertFrame(ev.data, { type: 'presence', user_id: alice, status: 'busy', custom_status: 'deep work', timestamp: F.TS });
    a.send({ type: 'typing', room_id: room, typing: true });
    const ty = await s.next((e) => e.event === 'typing');
    F.assertFrame(ty.data, { type: 'typing', room_id: room, user_id: alice, typing: true });

    const pr = await ssePost(sys.httpBase, cid, { type: 'presence', status: 'away', device: { type: 'tv', name: 'Living room' }, ref: 'sp' }, q);
    F.assertFrame(pr.frame, { type: 'ack', ref: 'sp' });
    // (etcd: bob's own online announcement may arrive late, once he shares the room)
    F.assertFrame(await a.next({ type: 'presence', user_id: bob, status: 'away' }), {
      type: 'presence',
      user_id: bob,
      status: 'away',
      device: { type: 'tv', name: 'Living room' },
      timestamp: F.TS,
    });
    const tp = await ssePost(sys.httpBase, cid, { type: 'typing', room_id: room, typing: true, ref: 'st' }, q);
    F.assertFrame(tp.frame, { type: 'ack', ref: 'st' });
    await a.next({ type: 'typing', user_id: bob, typing: true });
    assert.deepEqual((await call(P(), 'GetTypingUsers', { room_id: room })).user_ids, [alice, bob]);
    const bad = await ssePost(sys.httpBase, cid, { type: 'typing', room_id: uniq('nope'), typing: true, ref: 'sx' }, q);
    F.assertError(bad.frame, 'room_not_found', 'sx');
  });

  it('a user who goes offline stops typing', async () => {
    const room = uniq('room');
    const alice = uniq('alice');
    const bob = uniq('bob');
    const [a, b] = await roomWith(room, alice, bob);
    a.send({ type: 'typing', room_id: room, typing: true });
    await b.next({ type: 'typing', typing: true });
    await a.close();
    await b.next({ type: 'typing', user_id: alice, typing: false }, GRACE_MS + 2500);
    assert.deepEqual((await call(P(), 'GetTypingUsers', { room_id: room })).user_ids, []);
  });

  stopsCleanly(shutdown);
});

describe('Presence timeout', { timeout: 120000 }, () => {
  let sys;
  const clients = [];
  const P = () => sys.api.presence;

  async function connect(user) {
    const c = await WsClient.connect(sys.wsUrl(user));
    clients.push(c);
    return c;
  }

  before(async () => {
    sys = await startSystem({
      cpArgs: ['--presence-timeout-ms', String(TIMEOUT_MS), '--presence-grace-ms', '0'],
    });
  });

  const shutdown = async () => {
    for (const c of clients) if (c.close) await c.close();
    if (sys) await sys.stop();
  };
  after(shutdown);

  async function pair() {
    const room = uniq('room');
    await createRoom(sys, room);
    const alice = uniq('alice');
    const bob = uniq('bob');
    const a = await connect(alice);
    const b = await connect(bob);
    for (const c of [a, b]) assert.equal((await c.request({ type: 'join', room_id: room })).type, 'ack');
    await sleep(150); // a late online announcement lands before the assertions (see roomWith)
    a.drain();
    b.drain();
    return { room, alice, a, b };
  }

  it('no activity makes an online user away; TrackActivity and any frame bring them back', async () => {
    const { room, alice, a, b } = await pair();
    const t0 = Date.now();
    const away = await b.next({ type: 'presence', user_id: alice, status: 'away' }, TIMEOUT_MS + 3000);
    const waited = Date.now() - t0;
    F.assertFrame(away, { type: 'presence', user_id: alice, status: 'away' }, PRESENCE_OPTIONAL);
    assert.ok(waited >= TIMEOUT_MS - 400, `away after ${waited} ms`);
    assert.equal((await call(P(), 'GetPresence', { user_id: alice })).status, 'away');

    await call(P(), 'TrackActivity', { user_id: alice });
    await b.next({ type: 'presence', user_id: alice, status: 'online' }, 2000);
    assert.equal((await call(P(), 'GetPresence', { user_id: alice })).status, 'online');

    await b.next({ type: 'presence', user_id: alice, status: 'away' }, TIMEOUT_MS + 3000);
    const h = await a.request({ type: 'history', room_id: room }); // any frame is activity
    assert.equal(h.type, 'history');
    await b.next({ type: 'presence', user_id: alice, status: 'online' }, 2000);
  });

  it('steady activity keeps the user online', async () => {
    const { room, alice, a, b } = await pair();
    const end = Date.now() + TIMEOUT_MS * 2.5;
    while (Date.now() < end) {
      a.send({ type: 'typing', room_id: room, typing: true });
      await sleep(TIMEOUT_MS / 4);
    }
    await b.none({ type: 'presence', user_id: alice, status: 'away' }, 0);
    assert.equal((await call(P(), 'GetPresence', { user_id: alice })).status, 'online');
  });

  it('busy does not time out; an explicit away is not undone by activity', async () => {
    const { alice, a, b } = await pair();
    assert.equal((await a.request({ type: 'presence', status: 'busy' })).type, 'ack');
    await b.next({ type: 'presence', user_id: alice, status: 'busy' });
    await b.none({ type: 'presence', user_id: alice }, TIMEOUT_MS * 2);
    assert.equal((await call(P(), 'GetPresence', { user_id: alice })).status, 'busy');

    assert.equal((await a.request({ type: 'presence', status: 'away' })).type, 'ack');
    await b.next({ type: 'presence', user_id: alice, status: 'away' });
    await call(P(), 'TrackActivity', { user_id: alice });
    await b.none({ type: 'presence', user_id: alice }, 400);
    assert.equal((await call(P(), 'GetPresence', { user_id: alice })).status, 'away');
  });

  stopsCleanly(shutdown);
});

// Two replicas, two data planes each using a different replica as its primary: one user with a
// tab on each is one user (etcd only: the memory store has one replica).
describe('Presence and typing across replicas (etcd)', { timeout: 180000, skip: process.env.SB_IT_STORE !== 'etcd' }, () => {
  let cl;
  let dpB;
  const clients = [];

  before(async () => {
    const { Cluster } = require('../lib/cluster');
    cl = await new Cluster({
      cps: 2,
      dps: 1,
      leaseTtlMs: 3000,
      cpArgs: ['--presence-grace-ms', '0', '--presence-timeout-ms', String(TIMEOUT_MS)],
    }).start();
    // dp-B lists the replicas the other way round: its primary is cp-2.
    const port = await freePort();
    dpB = new DataPlane({ port, cpAddr: `${cl.cps[1].addr},${cl.cps[0].addr}`, args: ['--node-id', 'dp-b'] });
    dpB.name = 'dataplane-dp-b';
    dpB.wsUrl = (u) => `ws://127.0.0.1:${port}/ws?user_id=${encodeURIComponent(u)}`;
    cl.dps.push(dpB);
    await dpB.start();
  });

  const shutdown = async () => {
    for (const c of clients) if (c.close) await c.close();
    if (cl) await cl.stop();
  };
  after(shutdown);

  async function on(dp, user) {
    const c = await WsClient.connect(dp.wsUrl(user));
    clients.push(c);
    return c;
  }

  it('two tabs through different replicas: connection_count 2 on both, one online event, one offline', async () => {
    const [cp1, cp2] = cl.cps;
    const room = uniq('room');
    await call(cp1.api.rooms, 'CreateRoom', { id: room, name: room });
    const alice = uniq('alice');
    const bobId = uniq('bob');
    await call(cp1.api.rooms, 'JoinRoom', { room_id: room, user_id: alice });
    const b = await on(cl.dps[0], bobId);
    assert.equal((await b.request({ type: 'join', room_id: room })).type, 'ack');
    b.drain();
    const t1 = await on(cl.dps[0], alice);
    const t2 = await on(dpB, alice);
    await b.next({ type: 'presence', user_id: alice, status: 'online' });
    for (const cp of [cp1, cp2]) {
      const ps = await call(cp.api.presence, 'GetPresence', { user_id: alice });
      assert.equal(ps.connection_count, 2, `connection_count on ${cp.id}`);
      assert.equal(ps.status, 'online');
    }
    await b.none({ type: 'presence', user_id: alice, status: 'online' }, 300);

    // Set on one replica, read on the other at once.
    await call(cp2.api.presence, 'SetPresence', { user_id: alice, status: 'busy', custom_status: 'x' });
    const got = await call(cp1.api.presence, 'GetPresence', { user_id: alice });
    assert.equal(got.status, 'busy');
    assert.equal(got.custom_status, 'x');
    await b.next({ type: 'presence', user_id: alice, status: 'busy' });
    await b.none({ type: 'presence', user_id: alice, status: 'busy' }, 300);

    await t1.close();
    await t2.close();
    await b.next({ type: 'presence', user_id: alice, status: 'offline' }, 5000);
    await b.none({ type: 'presence', user_id: alice, status: 'offline' }, 500);
    for (const cp of [cp1, cp2]) assert.equal((await call(cp.api.presence, 'GetPresence', { user_id: alice })).status, 'offline');
    cl.check();
  });

  it('a status left over from an earlier session does not carry over (its reset was missed)', async () => {
    const { etcdPost } = require('../lib/cluster');
    const [cp1] = cl.cps;
    const put = (user, rec) =>
      etcdPost(cl.etcd.endpoints.split(',')[0], '/v3/kv/put', {
        key: Buffer.from(`sb/doc/presence/${user}`).toString('base64'),
        value: Buffer.from(JSON.stringify(rec)).toString('base64'),
      });
    const stale = uniq('stale');
    const fresh = uniq('fresh');
    await put(stale, { status: 'busy', custom_status: 'old', updated_at: Date.now() - 60000 });
    await put(fresh, { status: 'busy', updated_at: Date.now() });
    await on(cl.dps[0], stale);
    await on(dpB, fresh);
    await sleep(300);
    const s = await call(cp1.api.presence, 'GetPresence', { user_id: stale });
    assert.equal(s.status, 'online');
    assert.equal(s.custom_status, 'old'); // the other fields are kept across sessions
    assert.equal((await call(cp1.api.presence, 'GetPresence', { user_id: fresh })).status, 'busy');
  });

  it('typing through one replica is reported and stopped through the other', async () => {
    const [cp1, cp2] = cl.cps;
    const room = uniq('room');
    await call(cp1.api.rooms, 'CreateRoom', { id: room, name: room });
    const alice = uniq('alice');
    const bobId = uniq('bob');
    const a = await on(dpB, alice); // requests go to cp-2
    const b = await on(cl.dps[0], bobId);
    for (const c of [a, b]) assert.equal((await c.request({ type: 'join', room_id: room })).type, 'ack');
    a.send({ type: 'typing', room_id: room, typing: true });
    await b.next({ type: 'typing', user_id: alice, typing: true });
    assert.deepEqual((await call(cp1.api.presence, 'GetTypingUsers', { room_id: room })).user_ids, [alice]);
    assert.deepEqual((await call(cp2.api.presence, 'GetTypingUsers', { room_id: room })).user_ids, [alice]);
    await call(cp1.api.presence, 'StopTyping', { room_id: room, user_id: alice });
    await b.next({ type: 'typing', user_id: alice, typing: false });
    assert.deepEqual((await call(cp2.api.presence, 'GetTypingUsers', { room_id: room })).user_ids, []);
    cl.check();
  });

  it('activity seen by one replica keeps the user online for the other; idle makes away, activity online', async () => {
    const [cp1] = cl.cps;
    const room = uniq('room');
    await call(cp1.api.rooms, 'CreateRoom', { id: room, name: room });
    const alice = uniq('alice');
    const bobId = uniq('bob');
    const a = await on(dpB, alice);
    const b = await on(cl.dps[0], bobId);
    for (const c of [a, b]) assert.equal((await c.request({ type: 'join', room_id: room })).type, 'ack');
    const end = Date.now() + TIMEOUT_MS * 2.5;
    while (Date.now() < end) {
      a.send({ type: 'typing', room_id: room, typing: true });
      await sleep(TIMEOUT_MS / 4);
    }
    await b.none({ type: 'presence', user_id: alice, status: 'away' }, 0);
    await b.next({ type: 'presence', user_id: alice, status: 'away' }, TIMEOUT_MS + 4000);
    assert.equal((await a.request({ type: 'history', room_id: room })).type, 'history');
    await b.next({ type: 'presence', user_id: alice, status: 'online' }, 3000);
    cl.check();
  });

  stopsCleanly(shutdown);
});
