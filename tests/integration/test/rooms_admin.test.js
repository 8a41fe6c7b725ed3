// Rooms administration (issue 4, item 1): UpdateRoom, Archive/Restore, TransferRoomOwnership,
// BulkJoinRoom, SetMemberRole, kicks, bans, invites, private rooms, room_full and the rooms-per-user limit.
// stores: memory, etcd
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startSystem, stopsCleanly, sleep } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const { SseClient, ssePost } = require('../lib/sseclient');
const F = require('../lib/frames');
const { uniq, createRoom, rejectsWith } = require('../lib/util');
const { call, status } = require('../lib/grpc');

const json = (v) => Buffer.from(JSON.stringify(v));
const LIMIT = 3; // --max-rooms-per-user for this file

describe('Rooms administration', { timeout: 180000 }, () => {
  let sys;
  const clients = [];

  async function connect(user) {
    const c = await WsClient.connect(sys.wsUrl(user));
    clients.push(c);
    return c;
  }

  const rooms = (method, req) => call(sys.api.rooms, method, req);

  async function roles(room) {
    const r = await rooms('GetRoomMembers', { room_id: room });
    return Object.fromEntries(r.members.map((m) => [m.user_id, m.role]));
  }

  // A room owned by a fresh user, with members of the given roles: {owner, admin, mod, member}.
  async function staffedRoom(prefix, extra = {}) {
    const room = uniq(prefix);
    const u = { owner: uniq('own'), admin: uniq('adm'), mod: uniq('mod'), member: uniq('mem') };
    await createRoom(sys, room, { owner_id: u.owner, ...extra });
    await rooms('JoinRoom', { room_id: room, user_id: u.admin, role: 'admin' });
    await rooms('JoinRoom', { room_id: room, user_id: u.mod, role: 'moderator' });
    await rooms('JoinRoom', { room_id: room, user_id: u.member });
    return { room, ...u };
  }

  before(async () => {
    sys = await startSystem({ cpArgs: ['--max-rooms-per-user', String(LIMIT)] });
  });

  const shutdown = async () => {
    for (const c of clients) if (c.close) await c.close();
    if (sys) await sys.stop();
  };
  after(shutdown);

  it('UpdateRoom writes the fields named in update_fields (or the non-zero ones) and tells members', async () => {
    const s = await staffedRoom('upd');
    const ws = await connect(s.member);
    const r1 = await rooms('UpdateRoom', {
      room_id: s.room,
      name: 'New name',
      description: 'ignored: not in update_fields',
      update_fields: ['name', 'max_members', 'metadata', 'private'],
      max_members: 0,
      metadata: { topic: 'ops' },
      private: true,
    });
    assert.equal(r1.name, 'New name');
    assert.equal(r1.description, '', 'description not in update_fields: untouched');
    assert.equal(r1.max_members, 0);
    assert.equal(r1.private, true);
    assert.deepEqual(r1.metadata, { topic: 'ops' });
    assert.equal(r1.member_count, 4);
    F.assertFrame(
      await ws.next({ type: 'room_updated' }),
      { type: 'room_updated', room_id: s.room, name: 'New name', owner_id: s.owner, private: true, archived: false, max_members: 0, timestamp: F.TS },
      {},
      'room_updated'
    );
    // No update_fields: every non-zero field is written, the others stay.
    const r2 = await rooms('UpdateRoom', { room_id: s.room, description: 'about', max_members: 10, actor_id: s.admin });
    assert.equal(r2.name, 'New name');
    assert.equal(r2.description, 'about');
    assert.equal(r2.max_members, 10);
    assert.equal(r2.private, true);
    assert.deepEqual(r2.metadata, { topic: 'ops' });
    const got = await rooms('GetRoom', { room_id: s.room });
    assert.equal(got.description, 'about');
    assert.equal(got.max_members, 10);

    await rejectsWith(rooms('UpdateRoom', { room_id: s.room, name: 'x', actor_id: s.mod }), status.PERMISSION_DENIED, 'permission_denied');
    await rejectsWith(rooms('UpdateRoom', { room_id: s.room, name: 'x', actor_id: uniq('stranger') }), status.PERMISSION_DENIED, 'permission_denied');
    await rejectsWith(rooms('UpdateRoom', { room_id: uniq('nope'), name: 'x' }), status.NOT_FOUND, 'room_not_found');
    await rejectsWith(rooms('UpdateRoom', { room_id: s.room, update_fields: ['colour'] }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(rooms('UpdateRoom', { room_id: s.room, max_members: -1 }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(rooms('UpdateRoom', { room_id: 'bad id!', name: 'x' }), status.INVALID_ARGUMENT, 'invalid_message');
    assert.equal((await rooms('GetRoom', { room_id: s.room })).name, 'New name', 'refused updates changed nothing');
  });

  it('ArchiveRoom refuses joins and messages with room_archived; history stays readable; RestoreRoom reopens', async () => {
    const s = await staffedRoom('arch');
    const ws = await connect(s.member);
    const first = await ws.request({ type: 'message', room_id: s.room, data: { n: 1 } });
    assert.equal(first.type, 'ack', JSON.stringify(first));
    const stranger = uniq('str');
    const sws = await connect(stranger);

    await rejectsWith(rooms('ArchiveRoom', { room_id: s.room, actor_id: s.mod }), status.PERMISSION_DENIED, 'permission_denied');
    const a = await rooms('ArchiveRoom', { room_id: s.room, actor_id: s.admin });
    assert.equal(a.archived, true);
    assert.equal((await rooms('GetRoom', { room_id: s.room })).archived, true);
    F.assertFrame(await ws.next({ type: 'room_updated' }), { type: 'room_updated', room_id: s.room, name: s.room, owner_id: s.owner, private: false, archived: true, max_members: 0, timestamp: F.TS });

    // ListRooms hides it unless asked.
    const listed = (await rooms('ListRooms', { page_size: 1000, name_prefix: s.room })).rooms.map((r) => r.id);
    assert.ok(!listed.includes(s.room));
    const all = (await rooms('ListRooms', { page_size: 1000, name_prefix: s.room, include_archived: true })).rooms.map((r) => r.id);
    assert.ok(all.includes(s.room));

    // Messages: client frame and gRPC.
    F.assertError(await ws.request({ type: 'message', room_id: s.room, data: 2, ref: 'am' }), 'room_archived', 'am');
    await rejectsWith(call(sys.api.messages, 'BroadcastToRoom', { room_id: s.room, data: json(2) }), status.FAILED_PRECONDITION, 'room_archived');
    // Joins: client frame, JoinRoom, BulkJoinRoom.
    F.assertError(await sws.request({ type: 'join', room_id: s.room, ref: 'aj' }), 'room_archived', 'aj');
    await rejectsWith(rooms('JoinRoom', { room_id: s.room, user_id: stranger }), status.FAILED_PRECONDITION, 'room_archived');
    const bulk = await rooms('BulkJoinRoom', { room_id: s.room, user_ids: [stranger] });
    assert.deepEqual(bulk.failures.map((f) => [f.user_id, f.code]), [[stranger, 'room_archived']]);
    // An SSE client: ?rooms= join and a POSTed message are refused the same way.
    const sse = await SseClient.connect(`${sys.httpBase}/sse?user_id=${stranger}&rooms=${s.room}`);
    clients.push({ close: async () => sse.close() });
    const ev = await sse.next((e) => e.event === 'error');
    F.assertFrame(ev.data, { type: 'error', code: 'room_archived', message: F.NONEMPTY }, { ref: F.STRING });
    const sm = await SseClient.connect(`${sys.httpBase}/sse?user_id=${s.mod}`);
    clients.push({ close: async () => sm.close() });
    const post = await ssePost(sys.httpBase, sm.connected.connection_id, { type: 'message', room_id: s.room, data: 1, ref: 'sp' }, { query: `user_id=${s.mod}` });
    F.assertError(post.frame, 'room_archived', 'sp');

    // History stays readable: GetHistory and the client frame.
    const h = await call(sys.api.messages, 'GetHistory', { room_id: s.room });
    assert.deepEqual(h.messages.map((m) => m.seq), [1]);
    const hf = await ws.request({ type: 'history', room_id: s.room, ref: 'ah' });
    assert.equal(hf.type, 'history', JSON.stringify(hf));
    assert.deepEqual(hf.messages.map((m) => m.seq), [1]);

    await rejectsWith(rooms('RestoreRoom', { room_id: s.room, actor_id: s.member }), status.PERMISSION_DENIED, 'permission_denied');
    const r = await rooms('RestoreRoom', { room_id: s.room, actor_id: s.owner });
    assert.equal(r.archived, false);
    const again = await ws.request({ type: 'message', room_id: s.room, data: 3 });
    assert.equal(again.type, 'ack', JSON.stringify(again));
    assert.equal(again.seq, 2);
    assert.equal((await sws.request({ type: 'join', room_id: s.room })).type, 'ack');
    // Archive and restore are idempotent; a missing room is room_not_found.
    assert.equal((await rooms('RestoreRoom', { room_id: s.room })).archived, false);
    await rejectsWith(rooms('ArchiveRoom', { room_id: uniq('nope') }), status.NOT_FOUND, 'room_not_found');
    await rejectsWith(rooms('RestoreRoom', { room_id: uniq('nope') }), status.NOT_FOUND, 'room_not_found');
    await rejectsWith(rooms('ArchiveRoom', { room_id: '' }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(rooms('RestoreRoom', { room_id: s.room, actor_id: 'bad id!' }), status.INVALID_ARGUMENT, 'invalid_message');
  });

  it('TransferRoomOwnership: the new owner must be a member; the old owner becomes admin', async () => {
    const s = await staffedRoom('xfer');
    const ws = await connect(s.member);
    await rejectsWith(rooms('TransferRoomOwnership', { room_id: s.room, new_owner_id: uniq('out') }), status.NOT_FOUND, 'not_room_member');
    await rejectsWith(rooms('TransferRoomOwnership', { room_id: s.room, new_owner_id: s.member, actor_id: s.admin }), status.PERMISSION_DENIED, 'permission_denied');
    await rejectsWith(rooms('TransferRoomOwnership', { room_id: uniq('nope'), new_owner_id: s.member }), status.NOT_FOUND, 'room_not_found');
    await rejectsWith(rooms('TransferRoomOwnership', { room_id: s.room, new_owner_id: '' }), status.INVALID_ARGUMENT, 'invalid_message');

    const r = await rooms('TransferRoomOwnership', { room_id: s.room, new_owner_id: s.member, actor_id: s.owner });
    assert.equal(r.owner_id, s.member);
    assert.equal((await rooms('GetRoom', { room_id: s.room })).owner_id, s.member);
    const rs = await roles(s.room);
    assert.equal(rs[s.member], 'owner');
    assert.equal(rs[s.owner], 'admin');
    assert.equal(rs[s.admin], 'admin');
    const seen = [await ws.next({ type: 'member_updated' }), await ws.next({ type: 'member_updated' })];
    F.assertFrame(seen.find((f) => f.user_id === s.member), { type: 'member_updated', room_id: s.room, user_id: s.member, role: 'owner', timestamp: F.TS });
    F.assertFrame(seen.find((f) => f.user_id === s.owner), { type: 'member_updated', room_id: s.room, user_id: s.owner, role: 'admin', timestamp: F.TS });
    // The former owner is no owner any more.
    await rejectsWith(rooms('TransferRoomOwnership', { room_id: s.room, new_owner_id: s.owner, actor_id: s.owner }), status.PERMISSION_DENIED, 'permission_denied');
    // Transferring to the current owner changes nothing.
    assert.equal((await rooms('TransferRoomOwnership', { room_id: s.room, new_owner_id: s.member })).owner_id, s.member);
  });

  it('BulkJoinRoom joins each user it can and reports the others with their code', async () => {
    const room = uniq('bulk');
    await createRoom(sys, room, { max_members: 4 });
    const [u1, u2, u3, u4, banned, existing] = ['b1', 'b2', 'b3', 'b4', 'bb', 'bx'].map(uniq);
    await rooms('JoinRoom', { room_id: room, user_id: existing });
    await rooms('BanMember', { room_id: room, user_id: banned });
    const ws = await connect(existing);
    const r = await rooms('BulkJoinRoom', { room_id: room, user_ids: [u1, 'bad id!', banned, existing, u2, u1, u3, u4], role: 'moderator' });
    assert.deepEqual(r.members.map((m) => [m.user_id, m.role]), [[u1, 'moderator'], [u2, 'moderator'], [u3, 'moderator']]);
    for (const m of r.members) {
      assert.equal(m.room_id, room);
      assert.ok(m.joined_at > 0);
    }
    assert.deepEqual(
      r.failures.map((f) => [f.user_id, f.code]),
      [
        ['bad id!', 'invalid_message'],
        [banned, 'banned'],
        [existing, 'already_room_member'],
        [u1, 'already_room_member'],
        [u4, 'room_full'],
      ]
    );
    for (const f of r.failures) assert.ok(f.message.length > 0);
    for (const u of [u1, u2, u3]) await ws.next({ type: 'join', user_id: u });
    assert.equal((await rooms('GetRoom', { room_id: room })).member_count, 4);

    await rejectsWith(rooms('BulkJoinRoom', { room_id: uniq('nope'), user_ids: [u1] }), status.NOT_FOUND, 'room_not_found');
    await rejectsWith(rooms('BulkJoinRoom', { room_id: room, user_ids: [] }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(rooms('BulkJoinRoom', { room_id: room, user_ids: [u4], role: 'king' }), status.INVALID_ARGUMENT, 'invalid_message');
  });

  it('SetMemberRole follows the permissions matrix and tells members', async () => {
    const s = await staffedRoom('role');
    const other = uniq('oth');
    await rooms('JoinRoom', { room_id: s.room, user_id: other });
    const ws = await connect(s.member);

    const m = await rooms('SetMemberRole', { room_id: s.room, user_id: other, role: 'moderator', actor_id: s.admin });
    assert.equal(m.user_id, other);
    assert.equal(m.role, 'moderator');
    assert.equal(m.room_id, s.room);
    F.assertFrame(await ws.next({ type: 'member_updated' }), { type: 'member_updated', room_id: s.room, user_id: other, role: 'moderator', timestamp: F.TS });
    // An admin may not make admins, nor touch another admin; a moderator may set no role.
    await rejectsWith(rooms('SetMemberRole', { room_id: s.room, user_id: s.member, role: 'admin', actor_id: s.admin }), status.PERMISSION_DENIED, 'permission_denied');
    await rejectsWith(rooms('SetMemberRole', { room_id: s.room, user_id: s.admin, role: 'member', actor_id: s.admin }), status.PERMISSION_DENIED, 'permission_denied');
    await rejectsWith(rooms('SetMemberRole', { room_id: s.room, user_id: s.member, role: 'moderator', actor_id: s.mod }), status.PERMISSION_DENIED, 'permission_denied');
    await rejectsWith(rooms('SetMemberRole', { room_id: s.room, user_id: s.member, role: 'moderator', actor_id: s.member }), status.PERMISSION_DENIED, 'permission_denied');
    // The owner may; the owner role itself moves only through TransferRoomOwnership.
    assert.equal((await rooms('SetMemberRole', { room_id: s.room, user_id: s.member, role: 'admin', actor_id: s.owner })).role, 'admin');
    await rejectsWith(rooms('SetMemberRole', { room_id: s.room, user_id: s.member, role: 'owner' }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(rooms('SetMemberRole', { room_id: s.room, user_id: s.owner, role: 'member' }), status.PERMISSION_DENIED, 'permission_denied');
    await rejectsWith(rooms('SetMemberRole', { room_id: s.room, user_id: uniq('out'), role: 'member' }), status.NOT_FOUND, 'not_room_member');
    await rejectsWith(rooms('SetMemberRole', { room_id: uniq('nope'), user_id: other, role: 'member' }), status.NOT_FOUND, 'room_not_found');
    await rejectsWith(rooms('SetMemberRole', { room_id: s.room, user_id: other, role: 'wizard' }), status.INVALID_ARGUMENT, 'invalid_message');
    const rs = await roles(s.room);
    assert.equal(rs[s.member], 'admin');
    assert.equal(rs[other], 'moderator');
    assert.equal(rs[s.owner], 'owner');
  });

  it('LeaveRoom with an actor is a kick (moderator and up, lower roles only); DeleteRoom with an actor needs the owner', async () => {
    const s = await staffedRoom('kick');
    const ws = await connect(s.admin);
    await rejectsWith(rooms('LeaveRoom', { room_id: s.room, user_id: s.mod, actor_id: s.member }), status.PERMISSION_DENIED, 'permission_denied');
    await rejectsWith(rooms('LeaveRoom', { room_id: s.room, user_id: s.admin, actor_id: s.mod }), status.PERMISSION_DENIED, 'permission_denied');
    await rejectsWith(rooms('LeaveRoom', { room_id: s.room, user_id: uniq('out'), actor_id: s.mod }), status.NOT_FOUND, 'not_room_member');
    await rooms('LeaveRoom', { room_id: s.room, user_id: s.member, actor_id: s.mod });
    F.assertFrame(await ws.next({ type: 'leave' }), { type: 'leave', room_id: s.room, user_id: s.member, timestamp: F.TS });
    // Leaving oneself with actor_id = user_id needs no permission.
    await rooms('LeaveRoom', { room_id: s.room, user_id: s.mod, actor_id: s.mod });
    assert.deepEqual(Object.keys(await roles(s.room)).sort(), [s.admin, s.owner].sort());

    await rejectsWith(rooms('DeleteRoom', { room_id: s.room, actor_id: s.admin }), status.PERMISSION_DENIED, 'permission_denied');
    await rooms('DeleteRoom', { room_id: s.room, actor_id: s.owner });
    await rejectsWith(rooms('GetRoom', { room_id: s.room }), status.NOT_FOUND, 'room_not_found');
  });

  it('BanMember removes the member, refuses every join with banned until UnbanMember; ListBans lists it', async () => {
    const s = await staffedRoom('ban');
    const victim = uniq('vic');
    await rooms('JoinRoom', { room_id: s.room, user_id: victim });
    const vws = await connect(victim);
    const ows = await connect(s.owner);

    await rejectsWith(rooms('BanMember', { room_id: s.room, user_id: victim, moderator_id: s.member }), status.PERMISSION_DENIED, 'permission_denied');
    await rejectsWith(rooms('BanMember', { room_id: s.room, user_id: s.admin, moderator_id: s.mod }), status.PERMISSION_DENIED, 'permission_denied');
    await rejectsWith(rooms('BanMember', { room_id: s.room, user_id: s.owner }), status.PERMISSION_DENIED, 'permission_denied');
    await rejectsWith(rooms('BanMember', { room_id: s.room, user_id: s.mod, moderator_id: s.mod }), status.PERMISSION_DENIED, 'permission_denied');
    await rejectsWith(rooms('BanMember', { room_id: s.room, user_id: victim, duration_ms: -5 }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(rooms('BanMember', { room_id: uniq('nope'), user_id: victim }), status.NOT_FOUND, 'room_not_found');

    const t0 = Date.now();
    await rooms('BanMember', { room_id: s.room, user_id: victim, reason: 'spam', moderator_id: s.mod });
    F.assertFrame(await vws.next({ type: 'banned' }), { type: 'banned', room_id: s.room, reason: 'spam', timestamp: F.TS });
    F.assertFrame(await ows.next({ type: 'leave', user_id: victim }), { type: 'leave', room_id: s.room, user_id: victim, timestamp: F.TS });
    assert.ok(!(victim in (await roles(s.room))), 'banned user removed');
    // The membership went from the victim's connection too.
    F.assertError(await vws.request({ type: 'message', room_id: s.room, data: 1, ref: 'bm' }), 'not_room_member', 'bm');
    await ows.request({ type: 'message', room_id: s.room, data: 'after ban' });
    await vws.none({ type: 'message', room_id: s.room }, 300);

    const bans = (await rooms('ListBans', { room_id: s.room })).bans;
    assert.equal(bans.length, 1);
    assert.equal(bans[0].room_id, s.room);
    assert.equal(bans[0].user_id, victim);
    assert.equal(bans[0].reason, 'spam');
    assert.equal(bans[0].moderator_id, s.mod);
    assert.equal(bans[0].expires_at, 0);
    assert.ok(bans[0].created_at >= t0 - 5000 && bans[0].created_at <= Date.now() + 5000);

    // Every way in is refused.
    F.assertError(await vws.request({ type: 'join', room_id: s.room, ref: 'bj' }), 'banned', 'bj');
    await rejectsWith(rooms('JoinRoom', { room_id: s.room, user_id: victim }), status.PERMISSION_DENIED, 'banned');
    const inv = await rooms('CreateInvite', { room_id: s.room, invitee_id: victim, inviter_id: s.owner });
    await rejectsWith(rooms('AcceptInvite', { invite_id: inv.id, user_id: victim }), status.PERMISSION_DENIED, 'banned');
    // An SSE client asking for the room is refused too.
    const sse = await SseClient.connect(`${sys.httpBase}/sse?user_id=${victim}&rooms=${s.room}`);
    clients.push({ close: async () => sse.close() });
    F.assertFrame((await sse.next((e) => e.event === 'error')).data, { type: 'error', code: 'banned', message: F.NONEMPTY }, { ref: F.STRING });

    await rejectsWith(rooms('UnbanMember', { room_id: s.room, user_id: victim, moderator_id: s.member }), status.PERMISSION_DENIED, 'permission_denied');
    await rooms('UnbanMember', { room_id: s.room, user_id: victim, moderator_id: s.mod });
    assert.deepEqual((await rooms('ListBans', { room_id: s.room })).bans, []);
    // Unbanning someone who is not banned is fine (idempotent).
    await rooms('UnbanMember', { room_id: s.room, user_id: victim });
    await rooms('UnbanMember', { room_id: s.room, user_id: uniq('never') });
    await rejectsWith(rooms('UnbanMember', { room_id: uniq('nope'), user_id: victim }), status.NOT_FOUND, 'room_not_found');
    await rejectsWith(rooms('ListBans', { room_id: uniq('nope') }), status.NOT_FOUND, 'room_not_found');
    await rejectsWith(rooms('ListBans', { room_id: 'bad id!' }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(rooms('UnbanMember', { room_id: s.room, user_id: '' }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(rooms('BanMember', { room_id: s.room, user_id: victim, moderator_id: 'bad id!' }), status.INVALID_ARGUMENT, 'invalid_message');
    // Back in through the invite made while banned (still valid), then the join frame acks.
    assert.equal((await rooms('AcceptInvite', { invite_id: inv.id, user_id: victim })).user_id, victim);
    assert.equal((await vws.request({ type: 'join', room_id: s.room })).type, 'ack');
  });

  it('a ban with duration_ms ends by itself: the user may join again, ListBans drops it', async () => {
    const room = uniq('tban');
    await createRoom(sys, room);
    const user = uniq('tb');
    const ws = await connect(user);
    assert.equal((await ws.request({ type: 'join', room_id: room })).type, 'ack');
    await rooms('BanMember', { room_id: room, user_id: user, duration_ms: 400, reason: 'cool off' });
    const b = await ws.next({ type: 'banned' });
    F.assertFrame(b, { type: 'banned', room_id: room, reason: 'cool off', expires_at: F.TS, timestamp: F.TS });
    const [ban] = (await rooms('ListBans', { room_id: room })).bans;
    assert.ok(ban.expires_at > Date.now() - 1000 && ban.expires_at <= Date.now() + 1000, `expires_at ${ban.expires_at}`);
    F.assertError(await ws.request({ type: 'join', room_id: room, ref: 'tj' }), 'banned', 'tj');
    await sleep(600);
    assert.deepEqual((await rooms('ListBans', { room_id: room })).bans, [], 'an ended ban is not listed');
    assert.equal((await ws.request({ type: 'join', room_id: room })).type, 'ack');
    // A second timed ban ends while nobody lists it: the join still passes afterwards.
    await rooms('LeaveRoom', { room_id: room, user_id: user });
    await rooms('BanMember', { room_id: room, user_id: user, duration_ms: 300 });
    await rejectsWith(rooms('JoinRoom', { room_id: room, user_id: user }), status.PERMISSION_DENIED, 'banned');
    await sleep(500);
    assert.equal((await rooms('JoinRoom', { room_id: room, user_id: user })).user_id, user);
  });

  it('private rooms: client join refused; CreateInvite / AcceptInvite by the invitee admits and is consumed', async () => {
    const s = await staffedRoom('priv', { private: true });
    const guest = uniq('guest');
    const gws = await connect(guest);
    F.assertError(await gws.request({ type: 'join', room_id: s.room, ref: 'pj' }), 'permission_denied', 'pj');

    await rejectsWith(rooms('CreateInvite', { room_id: s.room, invitee_id: guest, inviter_id: s.member }), status.PERMISSION_DENIED, 'permission_denied');
    await rejectsWith(rooms('CreateInvite', { room_id: s.room, invitee_id: guest, inviter_id: uniq('out') }), status.PERMISSION_DENIED, 'permission_denied');
    await rejectsWith(rooms('CreateInvite', { room_id: s.room, invitee_id: s.member, inviter_id: s.mod }), status.ALREADY_EXISTS, 'already_room_member');
    await rejectsWith(rooms('CreateInvite', { room_id: uniq('nope'), invitee_id: guest }), status.NOT_FOUND, 'room_not_found');
    await rejectsWith(rooms('CreateInvite', { room_id: s.room, invitee_id: '' }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(rooms('CreateInvite', { room_id: s.room, invitee_id: guest, ttl_ms: -1 }), status.INVALID_ARGUMENT, 'invalid_message');

    const t0 = Date.now();
    const inv = await rooms('CreateInvite', { room_id: s.room, invitee_id: guest, inviter_id: s.mod, ttl_ms: 60000 });
    assert.match(inv.id, /^[A-Za-z0-9._:@-]+$/);
    assert.equal(inv.room_id, s.room);
    assert.equal(inv.inviter_id, s.mod);
    assert.equal(inv.invitee_id, guest);
    assert.ok(inv.created_at >= t0 - 5000);
    assert.equal(inv.expires_at, inv.created_at + 60000);
    // Holding an invite does not open the join frame: the invite is accepted through the API.
    F.assertError(await gws.request({ type: 'join', room_id: s.room, ref: 'pj2' }), 'permission_denied', 'pj2');
    await rejectsWith(rooms('AcceptInvite', { invite_id: inv.id, user_id: s.member }), status.PERMISSION_DENIED, 'permission_denied');
    const m = await rooms('AcceptInvite', { invite_id: inv.id, user_id: guest });
    assert.equal(m.room_id, s.room);
    assert.equal(m.user_id, guest);
    assert.equal(m.role, 'member');
    assert.equal(m.online, true);
    // Now a member: messages reach the guest's connection, and the join frame acks.
    const r = await call(sys.api.messages, 'BroadcastToRoom', { room_id: s.room, data: json('welcome') });
    assert.equal((await gws.next({ type: 'message', room_id: s.room })).id, r.message_id);
    assert.equal((await gws.request({ type: 'join', room_id: s.room })).type, 'ack');
    // Consumed.
    await rejectsWith(rooms('AcceptInvite', { invite_id: inv.id, user_id: guest }), status.NOT_FOUND, 'invite_not_found');
    await rejectsWith(rooms('AcceptInvite', { invite_id: uniq('i-none'), user_id: guest }), status.NOT_FOUND, 'invite_not_found');
    await rejectsWith(rooms('AcceptInvite', { invite_id: '', user_id: guest }), status.INVALID_ARGUMENT, 'invalid_message');
    // An admin (the backend) may add anyone to a private room. An invite whose invitee got in
    // another way answers already_room_member and is consumed.
    const added = uniq('added');
    const late = await rooms('CreateInvite', { room_id: s.room, invitee_id: added });
    assert.equal((await rooms('JoinRoom', { room_id: s.room, user_id: added })).user_id, added);
    await rejectsWith(rooms('AcceptInvite', { invite_id: late.id, user_id: added }), status.ALREADY_EXISTS, 'already_room_member');
    await rejectsWith(rooms('AcceptInvite', { invite_id: late.id, user_id: added }), status.NOT_FOUND, 'invite_not_found');
  });

  it('an invite expires after ttl_ms (invite_expired); an invite to a full or archived room fails at accept', async () => {
    const room = uniq('exp');
    await createRoom(sys, room, { private: true, max_members: 1 });
    const [u1, u2, u3] = ['e1', 'e2', 'e3'].map(uniq);
    const short = await rooms('CreateInvite', { room_id: room, invitee_id: u1, ttl_ms: 300 });
    await sleep(450);
    await rejectsWith(rooms('AcceptInvite', { invite_id: short.id, user_id: u1 }), status.FAILED_PRECONDITION, 'invite_expired');
    // Accepting into a full room.
    await rooms('JoinRoom', { room_id: room, user_id: u2 });
    const full = await rooms('CreateInvite', { room_id: room, invitee_id: u3 });
    assert.ok(full.expires_at - full.created_at > 24 * 3600 * 1000, 'default ttl is days');
    await rejectsWith(rooms('AcceptInvite', { invite_id: full.id, user_id: u3 }), status.RESOURCE_EXHAUSTED, 'room_full');
    // Archived: no invites, and an older one fails at accept.
    await rooms('UpdateRoom', { room_id: room, max_members: 5 });
    await rooms('ArchiveRoom', { room_id: room });
    await rejectsWith(rooms('CreateInvite', { room_id: room, invitee_id: u1 }), status.FAILED_PRECONDITION, 'room_archived');
    await rejectsWith(rooms('AcceptInvite', { invite_id: full.id, user_id: u3 }), status.FAILED_PRECONDITION, 'room_archived');
    await rooms('RestoreRoom', { room_id: room });
    assert.equal((await rooms('AcceptInvite', { invite_id: full.id, user_id: u3 })).user_id, u3);
  });

  it('max_members: room_full for JoinRoom and the client join frame', async () => {
    const room = uniq('full');
    await createRoom(sys, room, { max_members: 2 });
    const [a, b, c] = ['f1', 'f2', 'f3'].map(uniq);
    await rooms('JoinRoom', { room_id: room, user_id: a });
    const bws = await connect(b);
    assert.equal((await bws.request({ type: 'join', room_id: room })).type, 'ack');
    const cws = await connect(c);
    const e = await cws.request({ type: 'join', room_id: room, ref: 'fj' });
    F.assertError(e, 'room_full', 'fj');
    assert.ok(e.message.includes(room), e.message);
    await rejectsWith(rooms('JoinRoom', { room_id: room, user_id: c }), status.RESOURCE_EXHAUSTED, 'room_full');
    // A member re-joining a full room is acked.
    assert.equal((await bws.request({ type: 'join', room_id: room })).type, 'ack');
  });

  it(`rooms per user: the ${LIMIT + 1}th room is room_limit_reached on every join path`, async () => {
    const user = uniq('lim');
    const ids = [];
    for (let i = 0; i < LIMIT + 2; i++) {
      ids.push(uniq(`lr${i}`));
      await createRoom(sys, ids[i]);
    }
    const ws = await connect(user);
    await rooms('JoinRoom', { room_id: ids[0], user_id: user });
    await rooms('BulkJoinRoom', { room_id: ids[1], user_ids: [user] });
    assert.equal((await ws.request({ type: 'join', room_id: ids[2] })).type, 'ack');
    // Full: every path refuses a new room...
    const e = await ws.request({ type: 'join', room_id: ids[3], ref: 'lj' });
    F.assertError(e, 'room_limit_reached', 'lj');
    await rejectsWith(rooms('JoinRoom', { room_id: ids[3], user_id: user }), status.RESOURCE_EXHAUSTED, 'room_limit_reached');
    const bulk = await rooms('BulkJoinRoom', { room_id: ids[3], user_ids: [user] });
    assert.deepEqual(bulk.failures.map((f) => [f.user_id, f.code]), [[user, 'room_limit_reached']]);
    const inv = await rooms('CreateInvite', { room_id: ids[4], invitee_id: user });
    await rejectsWith(rooms('AcceptInvite', { invite_id: inv.id, user_id: user }), status.RESOURCE_EXHAUSTED, 'room_limit_reached');
    // ...but a room the user is in already is not a new one.
    assert.equal((await ws.request({ type: 'join', room_id: ids[0] })).type, 'ack');
    await rejectsWith(rooms('JoinRoom', { room_id: ids[0], user_id: user }), status.ALREADY_EXISTS, 'already_room_member');
    // Leaving one makes room for another; the invite was not consumed by the refusal.
    assert.equal((await ws.request({ type: 'leave', room_id: ids[1] })).type, 'ack');
    assert.equal((await rooms('AcceptInvite', { invite_id: inv.id, user_id: user })).room_id, ids[4]);
    F.assertError(await ws.request({ type: 'join', room_id: ids[3], ref: 'lj2' }), 'room_limit_reached', 'lj2');
  });

  stopsCleanly(shutdown);
});
