// Private rooms and the token's `rooms` claim (PROTOCOL.md, "What a user may do"; docs/rooms.md,
// "Invites and private rooms"): a client `join` (WebSocket frame or SSE ?rooms=) of a private
// room succeeds only when the connection's token names the room or a glob matching it; public
// rooms need no grant; the backend's JoinRoom still adds anyone. Each test also checks a grant
// that admits, so it fails on a control plane that ignores the claim.
// stores: memory, etcd
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startSystem } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const { SseClient } = require('../lib/sseclient');
const F = require('../lib/frames');
const T = require('../lib/tokens');
const { uniq, createRoom } = require('../lib/util');
const { call } = require('../lib/grpc');

const enc = encodeURIComponent;
const json = (v) => Buffer.from(JSON.stringify(v));

describe('private rooms granted by the rooms claim', { timeout: 180000 }, () => {
  let sys;
  let dir;
  let hmac;
  const closers = [];

  // One data plane that verifies tokens (HMAC secret) and, in development mode, admits
  // ?user_id= without one: both kinds of connection on one system.
  before(async () => {
    dir = T.tempDir();
    hmac = T.hmacSecret(dir);
    sys = await startSystem({ dpArgs: ['--jwt-hmac-secret-file', hmac.file] });
  });
  after(async () => {
    for (const c of closers.splice(0)) await c();
    if (sys) await sys.stop();
    T.rmTempDir(dir);
  });

  const rooms = (method, req) => call(sys.api.rooms, method, req);
  const members = async (room) => (await rooms('GetRoomMembers', { room_id: room })).members.map((m) => m.user_id).sort();
  const privateRoom = async (prefix = 'priv') => {
    const room = uniq(prefix);
    await createRoom(sys, room, { private: true });
    return room;
  };

  // A WebSocket for `user` with a token whose rooms claim is `grant` (undefined: no claim).
  async function wsAs(user, grant) {
    const token = await T.mint({ key: hmac, sub: user, rooms: grant });
    const c = await WsClient.connect(`${sys.wsBase}/ws?token=${enc(token)}`);
    closers.push(() => c.close());
    assert.equal(c.connected.user_id, user);
    return c;
  }
  // A development-mode WebSocket (no token, so no grants).
  async function wsDev(user) {
    const c = await WsClient.connect(sys.wsUrl(user));
    closers.push(() => c.close());
    return c;
  }
  // An SSE stream for `user` with a token (rooms claim `grant`) joining `joins` by ?rooms=.
  async function sseAs(user, grant, joins) {
    const token = await T.mint({ key: hmac, sub: user, rooms: grant });
    const c = await SseClient.connect(`${sys.httpBase}/sse?token=${enc(token)}&rooms=${joins.map(enc).join(',')}`);
    closers.push(async () => c.close());
    return c;
  }

  it('no grant: the join frame and SSE ?rooms= are refused permission_denied; the exact id admits', async () => {
    const room = await privateRoom();
    const [u1, u2, u3] = ['n1', 'n2', 'n3'].map(uniq);
    // A token without a rooms claim, and one naming other rooms.
    const bare = await wsAs(u1, undefined);
    F.assertError(await bare.request({ type: 'join', room_id: room, ref: 'j1' }), 'permission_denied', 'j1');
    const other = await wsAs(u2, [uniq('elsewhere'), `${room}x`, room.slice(0, -1)]);
    F.assertError(await other.request({ type: 'join', room_id: room, ref: 'j2' }), 'permission_denied', 'j2');
    const sse = await sseAs(u3, [uniq('elsewhere')], [room]);
    const ev = await sse.next((e) => e.event === 'error');
    F.assertFrame(ev.data, { type: 'error', code: 'permission_denied', message: F.NONEMPTY }, { ref: F.STRING });
    assert.deepEqual(await members(room), []);

    // The claim naming the room itself admits, as a member.
    const u4 = uniq('n4');
    const granted = await wsAs(u4, [uniq('elsewhere'), room]);
    F.assertFrame(await granted.request({ type: 'join', room_id: room, ref: 'j4' }), { type: 'ack', ref: 'j4', room_id: room });
    const r = await rooms('GetRoomMembers', { room_id: room });
    assert.deepEqual(r.members.map((m) => [m.user_id, m.role]), [[u4, 'member']]);
  });

  it('a glob grants the rooms it matches (team-*), and only those', async () => {
    const team = await privateRoom('team');
    const nested = `${uniq('team')}.ops`; // `*` stays inside one dot segment
    await createRoom(sys, nested, { private: true });
    const eng = await privateRoom('eng');
    const u = uniq('g');
    const c = await wsAs(u, ['team-*']);
    F.assertFrame(await c.request({ type: 'join', room_id: team, ref: 'gt' }), { type: 'ack', ref: 'gt', room_id: team });
    F.assertError(await c.request({ type: 'join', room_id: nested, ref: 'gn' }), 'permission_denied', 'gn');
    F.assertError(await c.request({ type: 'join', room_id: eng, ref: 'ge' }), 'permission_denied', 'ge');
    assert.deepEqual(await members(team), [u]);
    assert.deepEqual(await members(nested), []);
    assert.deepEqual(await members(eng), []);
    // `**` crosses dots.
    const deep = await wsAs(uniq('g2'), ['team-**']);
    F.assertFrame(await deep.request({ type: 'join', room_id: nested, ref: 'gd' }), { type: 'ack', ref: 'gd', room_id: nested });
  });

  it('a public room needs no grant; a development-mode user (no token) is refused a private room', async () => {
    const pub = uniq('pub');
    await createRoom(sys, pub);
    const room = await privateRoom();
    const dev = uniq('dev');
    const d = await wsDev(dev);
    F.assertFrame(await d.request({ type: 'join', room_id: pub, ref: 'dp' }), { type: 'ack', ref: 'dp', room_id: pub });
    F.assertError(await d.request({ type: 'join', room_id: room, ref: 'dr' }), 'permission_denied', 'dr');
    const tk = uniq('tk');
    const t = await wsAs(tk, [room]);
    F.assertFrame(await t.request({ type: 'join', room_id: pub, ref: 'tp' }), { type: 'ack', ref: 'tp', room_id: pub });
    F.assertFrame(await t.request({ type: 'join', room_id: room, ref: 'tr' }), { type: 'ack', ref: 'tr', room_id: room });
    assert.deepEqual(await members(room), [tk]);
    assert.deepEqual(await members(pub), [dev, tk].sort());
  });

  it('a claim-granted member receives the room messages and may send; the members hear the join', async () => {
    const room = await privateRoom();
    const owner = uniq('own');
    await rooms('JoinRoom', { room_id: room, user_id: owner });
    const o = await wsDev(owner);
    const u = uniq('m');
    const c = await wsAs(u, ['priv-*']);
    assert.equal((await c.request({ type: 'join', room_id: room })).type, 'ack');
    F.assertFrame(await o.next({ type: 'join', room_id: room }), { type: 'join', room_id: room, user_id: u, timestamp: F.TS });
    const b = await call(sys.api.messages, 'BroadcastToRoom', { room_id: room, data: json({ hi: 1 }) });
    assert.equal((await c.next({ type: 'message', room_id: room })).id, b.message_id);
    const ack = await c.request({ type: 'message', room_id: room, data: { from: 'member' } });
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    F.assertFrame(await o.next({ type: 'message', room_id: room, user_id: u }), {
      type: 'message',
      id: ack.id,
      seq: ack.seq,
      room_id: room,
      user_id: u,
      data: { from: 'member' },
      timestamp: F.TS,
    });
  });

  it('SSE ?rooms= joins a claim-granted private room (and is refused one it is not granted)', async () => {
    const room = await privateRoom();
    const refused = await privateRoom();
    const u = uniq('s');
    const s = await sseAs(u, [room], [room, refused]);
    const ev = await s.next((e) => e.event === 'error');
    F.assertFrame(ev.data, { type: 'error', code: 'permission_denied', message: F.NONEMPTY }, { ref: F.STRING });
    assert.match(ev.data.message, new RegExp(refused));
    assert.deepEqual(await members(room), [u]);
    assert.deepEqual(await members(refused), []);
    const b = await call(sys.api.messages, 'BroadcastToRoom', { room_id: room, data: json('to sse') });
    const m = await s.next((e) => e.event === 'message');
    F.assertFrame(m.data, { type: 'message', id: b.message_id, seq: F.POS_INT, room_id: room, data: 'to sse', timestamp: F.TS }, { user_id: F.STRING });
  });

  it('history and join with since: a non-member without a grant is refused; with one, join since replays', async () => {
    const room = await privateRoom();
    const owner = uniq('own');
    await rooms('JoinRoom', { room_id: room, user_id: owner });
    const ids = [];
    for (const n of [1, 2]) ids.push((await call(sys.api.messages, 'BroadcastToRoom', { room_id: room, data: json(n) })).message_id);
    const out = await wsAs(uniq('out'), ['priv-other-*']);
    F.assertError(await out.request({ type: 'history', room_id: room, ref: 'h' }), 'not_room_member', 'h');
    F.assertError(await out.request({ type: 'join', room_id: room, since: 0, ref: 's' }), 'permission_denied', 's');
    await out.none({ type: 'message' });
    const dev = await wsDev(uniq('dev'));
    F.assertError(await dev.request({ type: 'history', room_id: room, ref: 'dh' }), 'not_room_member', 'dh');
    F.assertError(await dev.request({ type: 'join', room_id: room, since: 0, ref: 'ds' }), 'permission_denied', 'ds');
    await dev.none({ type: 'message' });

    // Granted: join with since replays what was missed, then history answers.
    const u = uniq('in');
    const c = await wsAs(u, [room]);
    F.assertFrame(await c.request({ type: 'join', room_id: room, since: 0, ref: 'gs' }), { type: 'ack', ref: 'gs', room_id: room });
    assert.deepEqual([(await c.next({ type: 'message' })).id, (await c.next({ type: 'message' })).id], ids);
    const h = await c.request({ type: 'history', room_id: room });
    assert.equal(h.type, 'history', JSON.stringify(h));
    assert.deepEqual(h.messages.map((m) => m.id), ids);
  });

  it('a ban still refuses a claim-granted join; a refresh replaces the claim for later joins', async () => {
    const room = await privateRoom();
    const later = await privateRoom();
    const u = uniq('r');
    const c = await wsAs(u, [room, later]);
    await rooms('BanMember', { room_id: room, user_id: u, reason: 'spam' });
    F.assertError(await c.request({ type: 'join', room_id: room, ref: 'rb' }), 'banned', 'rb');
    // The refreshed token names another room only: `later` is no longer granted.
    const narrow = await T.mint({ key: hmac, sub: u, rooms: [uniq('elsewhere')] });
    assert.equal((await c.request({ type: 'refresh', token: narrow, ref: 'rf' })).type, 'ack');
    F.assertError(await c.request({ type: 'join', room_id: later, ref: 'rl' }), 'permission_denied', 'rl');
    const wide = await T.mint({ key: hmac, sub: u, rooms: ['priv-*'] });
    assert.equal((await c.request({ type: 'refresh', token: wide, ref: 'rw' })).type, 'ack');
    F.assertFrame(await c.request({ type: 'join', room_id: later, ref: 'rj' }), { type: 'ack', ref: 'rj', room_id: later });
    assert.deepEqual(await members(room), []);
    assert.deepEqual(await members(later), [u]);
  });

  it("the backend's JoinRoom and BulkJoinRoom still add users without grants to a private room", async () => {
    const room = await privateRoom();
    const [a, b, g] = ['ja', 'jb', 'jg'].map(uniq);
    const dev = await wsDev(a);
    F.assertError(await dev.request({ type: 'join', room_id: room, ref: 'b1' }), 'permission_denied', 'b1');
    assert.equal((await rooms('JoinRoom', { room_id: room, user_id: a })).user_id, a);
    const bulk = await rooms('BulkJoinRoom', { room_id: room, user_ids: [b] });
    assert.deepEqual(bulk.failures, []);
    // Once added, the join frame acks (already a member) and messages arrive.
    F.assertFrame(await dev.request({ type: 'join', room_id: room, ref: 'b2' }), { type: 'ack', ref: 'b2', room_id: room });
    const bc = await call(sys.api.messages, 'BroadcastToRoom', { room_id: room, data: json('x') });
    assert.equal((await dev.next({ type: 'message', room_id: room })).id, bc.message_id);
    // A granted user joins alongside.
    const gw = await wsAs(g, ['priv-*']);
    F.assertFrame(await gw.request({ type: 'join', room_id: room, ref: 'b3' }), { type: 'ack', ref: 'b3', room_id: room });
    assert.deepEqual(await members(room), [a, b, g].sort());
  });
});
