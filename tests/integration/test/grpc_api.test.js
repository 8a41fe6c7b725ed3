// The public gRPC API (switchboard.v1) from @grpc/grpc-js: every method implemented in the
// walking skeleton, its effects on WebSocket/SSE clients, and its errors (status + "code: ...").
// stores: memory, etcd
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startSystem, stopsCleanly } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const { SseClient } = require('../lib/sseclient');
const F = require('../lib/frames');
const { uniq, createRoom, rejectsWith } = require('../lib/util');
const { call, callRaw, status } = require('../lib/grpc');

const json = (v) => Buffer.from(JSON.stringify(v));

describe('gRPC API', { timeout: 120000 }, () => {
  let sys;
  const clients = [];

  async function connect(user) {
    const c = await WsClient.connect(sys.wsUrl(user));
    clients.push(c);
    return c;
  }

  before(async () => {
    sys = await startSystem({ cpArgs: ['--presence-grace-ms', '0'] });
  });

  const shutdown = async () => {
    for (const c of clients) if (c.close) await c.close();
    if (sys) await sys.stop();
  };
  after(shutdown);

  it('grpc.health.v1.Health/Check answers SERVING', async () => {
    const r = await call(sys.api.health, 'Check', { service: '' });
    assert.equal(r.status, 'SERVING');
    await rejectsWith(call(sys.api.health, 'Check', { service: 'no.such.Service' }), status.NOT_FOUND);
  });

  it('CreateRoom returns the room; GetRoom reads it back; errors map to statuses', async () => {
    const id = uniq('create');
    const t0 = Date.now();
    const room = await call(sys.api.rooms, 'CreateRoom', {
      id,
      name: 'Lobby',
      description: 'the front room',
      owner_id: '',
      private: false,
      max_members: 50,
      metadata: { topic: 'tests' },
    });
    assert.equal(room.id, id);
    assert.equal(room.name, 'Lobby');
    assert.equal(room.description, 'the front room');
    assert.equal(room.private, false);
    assert.equal(room.max_members, 50);
    assert.equal(room.archived, false);
    assert.equal(room.member_count, 0);
    assert.deepEqual(room.metadata, { topic: 'tests' });
    assert.ok(room.created_at >= t0 - 5000 && room.created_at <= Date.now() + 5000, `created_at ${room.created_at}`);

    const got = await call(sys.api.rooms, 'GetRoom', { room_id: id });
    for (const k of ['id', 'name', 'description', 'private', 'max_members', 'archived', 'member_count', 'created_at']) {
      assert.deepEqual(got[k], room[k], k);
    }
    assert.deepEqual(got.metadata, { topic: 'tests' });

    // A generated id is a valid identifier.
    const gen = await call(sys.api.rooms, 'CreateRoom', { name: 'no id given' });
    assert.match(gen.id, /^[A-Za-z0-9._:@-]{1,128}$/);
    assert.equal((await call(sys.api.rooms, 'GetRoom', { room_id: gen.id })).name, 'no id given');

    await rejectsWith(call(sys.api.rooms, 'CreateRoom', { id, name: 'again' }), status.ALREADY_EXISTS, 'room_already_exists');
    await rejectsWith(call(sys.api.rooms, 'CreateRoom', { id: 'bad id!', name: 'x' }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(call(sys.api.rooms, 'GetRoom', { room_id: uniq('missing') }), status.NOT_FOUND, 'room_not_found');
    await rejectsWith(call(sys.api.rooms, 'GetRoom', { room_id: '' }), status.INVALID_ARGUMENT, 'invalid_message');
  });

  it('ListRooms pages with page_size/page_token and filters by name_prefix', async () => {
    const prefix = uniq('list');
    const ids = [];
    for (let i = 0; i < 5; i++) {
      const id = `${prefix}-${i}`;
      ids.push(id);
      await call(sys.api.rooms, 'CreateRoom', { id, name: `${prefix} room ${i}` });
    }
    await call(sys.api.rooms, 'CreateRoom', { id: uniq('other'), name: 'unrelated' });
    const seen = [];
    let token = '';
    let pages = 0;
    for (;;) {
      const r = await call(sys.api.rooms, 'ListRooms', { page_size: 2, page_token: token, name_prefix: prefix });
      pages += 1;
      assert.ok(r.rooms.length <= 2, `page of ${r.rooms.length}`);
      seen.push(...r.rooms.map((x) => x.id));
      token = r.next_page_token;
      if (!token) break;
      assert.ok(pages < 10, 'paging does not end');
    }
    assert.equal(pages, 3);
    assert.deepEqual([...seen].sort(), ids.sort(), 'every room exactly once');
    const everything = await call(sys.api.rooms, 'ListRooms', { page_size: 1000 });
    assert.ok(everything.rooms.length >= 6);
    await rejectsWith(call(sys.api.rooms, 'ListRooms', { page_size: 2, page_token: '!!garbage!!' }), status.INVALID_ARGUMENT, 'invalid_message');
  });

  it('DeleteRoom removes the room; deleting again is room_not_found', async () => {
    const id = uniq('del');
    await createRoom(sys, id);
    await call(sys.api.rooms, 'DeleteRoom', { room_id: id });
    await rejectsWith(call(sys.api.rooms, 'GetRoom', { room_id: id }), status.NOT_FOUND, 'room_not_found');
    await rejectsWith(call(sys.api.rooms, 'DeleteRoom', { room_id: id }), status.NOT_FOUND, 'room_not_found');
    // The id can be used again.
    await createRoom(sys, id);
  });

  it('JoinRoom / LeaveRoom / GetRoomMembers with the online flag', async () => {
    const id = uniq('members');
    await createRoom(sys, id);
    const onlineUser = uniq('on');
    const offlineUser = uniq('off');
    const ws = await connect(onlineUser);

    const m = await call(sys.api.rooms, 'JoinRoom', { room_id: id, user_id: offlineUser });
    assert.equal(m.room_id, id);
    assert.equal(m.user_id, offlineUser);
    assert.equal(m.role, 'member');
    assert.ok(m.joined_at > 0);
    await rejectsWith(call(sys.api.rooms, 'JoinRoom', { room_id: id, user_id: offlineUser }), status.ALREADY_EXISTS, 'already_room_member');
    await rejectsWith(call(sys.api.rooms, 'JoinRoom', { room_id: uniq('nope'), user_id: offlineUser }), status.NOT_FOUND, 'room_not_found');
    await rejectsWith(call(sys.api.rooms, 'JoinRoom', { room_id: id, user_id: 'bad user' }), status.INVALID_ARGUMENT, 'invalid_message');

    const ack = await ws.request({ type: 'join', room_id: id });
    assert.equal(ack.type, 'ack');
    const admin = await call(sys.api.rooms, 'JoinRoom', { room_id: id, user_id: uniq('adm'), role: 'admin' });
    assert.equal(admin.role, 'admin');

    const res = await call(sys.api.rooms, 'GetRoomMembers', { room_id: id });
    const byUser = Object.fromEntries(res.members.map((x) => [x.user_id, x]));
    assert.equal(res.members.length, 3);
    assert.equal(byUser[onlineUser].online, true, 'connected member is online');
    assert.equal(byUser[offlineUser].online, false, 'member without connection is offline');
    assert.equal((await call(sys.api.rooms, 'GetRoom', { room_id: id })).member_count, 3);

    // The online member hears the gRPC leave of another member.
    await call(sys.api.rooms, 'LeaveRoom', { room_id: id, user_id: offlineUser });
    F.assertFrame(await ws.next({ type: 'leave' }), { type: 'leave', room_id: id, user_id: offlineUser, timestamp: F.TS });
    const err = await rejectsWith(call(sys.api.rooms, 'LeaveRoom', { room_id: id, user_id: offlineUser }), status.NOT_FOUND, undefined);
    assert.match(err.details, /^not_room_member: ./);
    await rejectsWith(call(sys.api.rooms, 'GetRoomMembers', { room_id: uniq('nope') }), status.NOT_FOUND, 'room_not_found');

    // The online user closes: the flag follows (after the presence grace period).
    await ws.close();
    const end = Date.now() + 10000;
    for (;;) {
      const r = await call(sys.api.rooms, 'GetRoomMembers', { room_id: id });
      if (!r.members.find((x) => x.user_id === onlineUser).online) break;
      assert.ok(Date.now() < end, 'online flag still true 10 s after close');
      await new Promise((r2) => setTimeout(r2, 100));
    }
  });

  it('JoinRoom over gRPC of a connected user makes their connections receive the room', async () => {
    const id = uniq('grpcjoin');
    await createRoom(sys, id);
    const user = uniq('gj');
    const ws = await connect(user);
    const watcher = await connect(uniq('watch'));
    await watcher.request({ type: 'join', room_id: id });
    await call(sys.api.rooms, 'JoinRoom', { room_id: id, user_id: user });
    F.assertFrame(await watcher.next({ type: 'join' }), { type: 'join', room_id: id, user_id: user, timestamp: F.TS });
    const r = await call(sys.api.messages, 'BroadcastToRoom', { room_id: id, data: json({ hi: 1 }) });
    const m = await ws.next({ type: 'message', room_id: id });
    assert.equal(m.id, r.message_id);
    // And the user may now send to the room.
    const ack = await ws.request({ type: 'message', room_id: id, data: 'me too' });
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
  });

  it('BroadcastToRoom reaches WebSocket and SSE members with id and seq', async () => {
    const id = uniq('btr');
    await createRoom(sys, id);
    const wsUser = uniq('wsu');
    const sseUser = uniq('sseu');
    const ws = await connect(wsUser);
    await ws.request({ type: 'join', room_id: id });
    const sse = await SseClient.connect(`${sys.httpBase}/sse?user_id=${sseUser}&rooms=${id}`);
    clients.push({ close: async () => sse.close() });
    await ws.next({ type: 'join', user_id: sseUser });

    const data = { alert: 'deploy', n: 3 };
    const r = await call(sys.api.messages, 'BroadcastToRoom', { room_id: id, data: json(data), user_id: 'backend' });
    assert.match(r.message_id, F.MSG_ID);
    assert.equal(r.seq, 1);
    const expected = { type: 'message', id: r.message_id, seq: 1, room_id: id, user_id: 'backend', data, timestamp: F.TS };
    F.assertFrame(await ws.next({ type: 'message' }), expected, {}, 'WebSocket member');
    const ev = await sse.next((e) => e.event === 'message');
    F.assertFrame(ev.data, expected, {}, 'SSE member');
    assert.ok(ev.id && ev.id.length > 0, `SSE room message without id: line: ${ev.raw}`);

    // Without a sender the frame has no user_id (or an empty one); seq goes on.
    const r2 = await call(sys.api.messages, 'BroadcastToRoom', { room_id: id, data: json('anon') });
    assert.equal(r2.seq, 2);
    const m2 = await ws.next({ type: 'message', seq: 2 });
    F.assertFrame(m2, { type: 'message', id: r2.message_id, seq: 2, room_id: id, data: 'anon', timestamp: F.TS }, { user_id: '' });

    await rejectsWith(call(sys.api.messages, 'BroadcastToRoom', { room_id: uniq('nope'), data: json(1) }), status.NOT_FOUND, 'room_not_found');
    await rejectsWith(call(sys.api.messages, 'BroadcastToRoom', { room_id: id, data: Buffer.from('{not json') }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(call(sys.api.messages, 'BroadcastToRoom', { room_id: id, data: Buffer.alloc(0) }), status.INVALID_ARGUMENT, 'invalid_message');
    await ws.none({ type: 'message' }, 200);
  });

  it('BroadcastToRoom with an idempotency_key delivers once and repeats the first result', async () => {
    const id = uniq('idem');
    await createRoom(sys, id);
    const ws = await connect(uniq('idem'));
    await ws.request({ type: 'join', room_id: id });
    const req = { room_id: id, data: json({ once: true }), idempotency_key: uniq('key') };
    const r1 = await call(sys.api.messages, 'BroadcastToRoom', req);
    const r2 = await call(sys.api.messages, 'BroadcastToRoom', req);
    assert.equal(r2.message_id, r1.message_id);
    assert.equal(r2.seq, r1.seq);
    await ws.next({ type: 'message', id: r1.message_id });
    await ws.none({ type: 'message' }, 300);
    const r3 = await call(sys.api.messages, 'BroadcastToRoom', { ...req, idempotency_key: uniq('key') });
    assert.equal(r3.seq, r1.seq + 1);
  });

  it('SendToUser reaches every connection of the user; delivered counts connections', async () => {
    const user = uniq('dm');
    const a = await connect(user);
    const b = await connect(user);
    const other = await connect(uniq('other'));
    const r = await call(sys.api.messages, 'SendToUser', { user_id: user, data: json({ dm: true }), sender_id: 'support' });
    assert.equal(r.delivered, 2);
    for (const c of [a, b]) {
      const m = await c.next({ type: 'message' });
      F.assertFrame(m, { type: 'message', id: F.MSG_ID, user_id: 'support', data: { dm: true }, timestamp: F.TS });
    }
    await other.none({ type: 'message' }, 200);
    const r2 = await call(sys.api.messages, 'SendToUser', { user_id: user, data: json(7) });
    assert.equal(r2.delivered, 2);
    F.assertFrame(await a.next({ type: 'message' }), { type: 'message', id: F.MSG_ID, data: 7, timestamp: F.TS }, { user_id: '' });
    const none = await call(sys.api.messages, 'SendToUser', { user_id: uniq('nobody'), data: json(1) });
    assert.equal(none.delivered, 0);
    await rejectsWith(call(sys.api.messages, 'SendToUser', { user_id: user, data: Buffer.from('nope') }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(call(sys.api.messages, 'SendToUser', { user_id: '', data: json(1) }), status.INVALID_ARGUMENT, 'invalid_message');
  });

  it('GetHistory: oldest first, limit, exclusive before_seq/after_seq', async () => {
    const id = uniq('hist');
    await createRoom(sys, id);
    const user = uniq('writer');
    const ws = await connect(user);
    await ws.request({ type: 'join', room_id: id });
    const t0 = Date.now();
    for (let i = 1; i <= 8; i++) {
      const a = await ws.request({ type: 'message', room_id: id, data: { i } });
      assert.equal(a.seq, i);
    }
    const seqs = (r) => r.messages.map((m) => m.seq);
    const all = await call(sys.api.messages, 'GetHistory', { room_id: id });
    assert.deepEqual(seqs(all), [1, 2, 3, 4, 5, 6, 7, 8]);
    const m = all.messages[0];
    assert.match(m.id, F.MSG_ID);
    assert.equal(m.room_id, id);
    assert.equal(m.user_id, user);
    assert.deepEqual(JSON.parse(m.data.toString()), { i: 1 });
    assert.ok(m.timestamp >= t0 - 5000 && m.timestamp <= Date.now() + 5000, `timestamp ${m.timestamp}`);
    assert.deepEqual(seqs(await call(sys.api.messages, 'GetHistory', { room_id: id, limit: 3 })), [6, 7, 8]);
    assert.deepEqual(seqs(await call(sys.api.messages, 'GetHistory', { room_id: id, limit: 2, before_seq: 4 })), [2, 3]);
    assert.deepEqual(seqs(await call(sys.api.messages, 'GetHistory', { room_id: id, limit: 2, after_seq: 4 })), [5, 6]);
    assert.deepEqual(seqs(await call(sys.api.messages, 'GetHistory', { room_id: id, after_seq: 3, before_seq: 6 })), [4, 5]);
    assert.deepEqual(seqs(await call(sys.api.messages, 'GetHistory', { room_id: id, after_seq: 8 })), []);
    await rejectsWith(call(sys.api.messages, 'GetHistory', { room_id: uniq('nope') }), status.NOT_FOUND, 'room_not_found');
  });

  it('GetOnlineUsers per room and system-wide; GetPresence with status and connection count', async () => {
    const id = uniq('online');
    await createRoom(sys, id);
    const u1 = uniq('o1');
    const u2 = uniq('o2');
    const c1 = await connect(u1);
    const c1b = await connect(u1);
    await connect(u2);
    await c1.request({ type: 'join', room_id: id });
    await call(sys.api.rooms, 'JoinRoom', { room_id: id, user_id: uniq('ghost') });

    const inRoom = await call(sys.api.presence, 'GetOnlineUsers', { room_id: id });
    assert.deepEqual(inRoom.user_ids, [u1]);
    const everywhere = await call(sys.api.presence, 'GetOnlineUsers', { room_id: '' });
    assert.ok(everywhere.user_ids.includes(u1) && everywhere.user_ids.includes(u2), JSON.stringify(everywhere));
    assert.equal(new Set(everywhere.user_ids).size, everywhere.user_ids.length, 'no duplicates');
    await rejectsWith(call(sys.api.presence, 'GetOnlineUsers', { room_id: uniq('nope') }), status.NOT_FOUND, 'room_not_found');

    const p = await call(sys.api.presence, 'GetPresence', { user_id: u1 });
    assert.equal(p.user_id, u1);
    assert.equal(p.status, 'online');
    assert.equal(p.connection_count, 2);
    assert.equal((await c1b.request({ type: 'presence', status: 'busy' })).type, 'ack');
    assert.equal((await call(sys.api.presence, 'GetPresence', { user_id: u1 })).status, 'busy');

    const nobody = uniq('nobody');
    const off = await call(sys.api.presence, 'GetPresence', { user_id: nobody });
    assert.equal(off.status, 'offline');
    assert.equal(off.connection_count, 0);
    await rejectsWith(call(sys.api.presence, 'GetPresence', { user_id: '' }), status.INVALID_ARGUMENT, 'invalid_message');
  });

  it('GetStats counts connections, online users and rooms, and lists the node with its heartbeat', async () => {
    const id = uniq('stats');
    await createRoom(sys, id);
    const before = await call(sys.api.connections, 'GetStats', {});
    const u = uniq('st');
    await connect(u);
    await connect(u);
    const after = await call(sys.api.connections, 'GetStats', {});
    assert.equal(Number(after.active_connections) - Number(before.active_connections), 2, JSON.stringify(after));
    assert.equal(Number(after.online_users) - Number(before.online_users), 1, 'one user with two connections counts once');
    assert.ok(Number(after.rooms) >= 1);
    assert.ok(after.nodes.length >= 1, JSON.stringify(after.nodes));
    for (const n of after.nodes) {
      assert.ok(n.id.length > 0);
      assert.ok(Number(n.last_heartbeat) > Date.now() - 60000, `heartbeat of ${n.id} is recent`);
    }
  });

  it('the README example works: buf curl (npm @bufbuild/buf) against the control plane', async () => {
    const { execFile } = require('node:child_process');
    const path = require('node:path');
    const buf = path.join(__dirname, '..', 'node_modules', '.bin', 'buf');
    const repo = path.join(__dirname, '..', '..', '..');
    const curl = (method, body) =>
      new Promise((resolve, reject) => {
        execFile(
          buf,
          ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', '--schema', 'proto', '-d', JSON.stringify(body),
            `http://${sys.cp.addr}/${method}`],
          { cwd: repo, timeout: 30000 },
          (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stdout}${stderr}`)) : resolve(JSON.parse(stdout)))
        );
      });
    const id = uniq('buf');
    const room = await curl('switchboard.v1.Rooms/CreateRoom', { id, name: 'Lobby' });
    assert.equal(room.id, id);
    assert.equal(room.name, 'Lobby');
    const data = Buffer.from(JSON.stringify({ text: 'hello from the backend' })).toString('base64');
    const sent = await curl('switchboard.v1.Messages/BroadcastToRoom', { room_id: id, data, user_id: 'backend' });
    assert.equal(sent.seq, '1');
    const hist = await curl('switchboard.v1.Messages/GetHistory', { room_id: id, limit: 10 });
    assert.equal(hist.messages.length, 1);
    assert.equal(Buffer.from(hist.messages[0].data, 'base64').toString(), '{"text":"hello from the backend"}');
  });

  it('methods not implemented yet answer UNIMPLEMENTED; unknown paths too, promptly', async () => {
    const t0 = Date.now();
    await rejectsWith(callRaw(sys.api.rooms, '/switchboard.v1.Rooms/NoSuchMethod', { deadlineMs: 4000 }), status.UNIMPLEMENTED);
    await rejectsWith(callRaw(sys.api.rooms, '/no.such.Service/Method', { deadlineMs: 4000 }), status.UNIMPLEMENTED);
    assert.ok(Date.now() - t0 < 3000, 'unknown methods must not wait for the deadline');
  });

  it('an undecodable request is INVALID_ARGUMENT, not a crash', async () => {
    const bad = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]);
    const err = await new Promise((resolve) => {
      sys.api.rooms.makeUnaryRequest(
        '/switchboard.v1.Rooms/GetRoom',
        (x) => x,
        (x) => x,
        bad,
        { deadline: new Date(Date.now() + 4000) },
        (e) => resolve(e)
      );
    });
    assert.ok(err, 'garbage request succeeded');
    assert.equal(err.code, status.INVALID_ARGUMENT, `${err.code} ${err.details}`);
    sys.check();
  });

  stopsCleanly(shutdown);
});

describe('gRPC Broadcast', { timeout: 60000 }, () => {
  let sys;
  const clients = [];

  before(async () => {
    sys = await startSystem(); // fresh: delivered counts every connection of the system
  });

  const shutdown = async () => {
    for (const c of clients) await c.close();
    if (sys) await sys.stop();
  };
  after(shutdown);

  it('Broadcast sends a system frame to every connection; delivered counts them; exclude works', async () => {
    const a1 = await WsClient.connect(sys.wsUrl('bc-alice'));
    const a2 = await WsClient.connect(sys.wsUrl('bc-alice'));
    const b = await WsClient.connect(sys.wsUrl('bc-bob'));
    clients.push(a1, a2, b);
    const sse = await SseClient.connect(`${sys.httpBase}/sse?user_id=bc-carol`);
    clients.push({ close: async () => sse.close() });

    const r = await call(sys.api.messages, 'Broadcast', { data: json({ notice: 'maintenance' }) });
    assert.equal(r.delivered, 4);
    for (const c of [a1, a2, b]) {
      F.assertFrame(await c.next({ type: 'system' }), { type: 'system', data: { notice: 'maintenance' }, timestamp: F.TS });
    }
    const ev = await sse.next((e) => e.event === 'system');
    F.assertFrame(ev.data, { type: 'system', data: { notice: 'maintenance' }, timestamp: F.TS });

    const r2 = await call(sys.api.messages, 'Broadcast', { data: json('second'), exclude_user_ids: ['bc-alice'] });
    assert.equal(r2.delivered, 2);
    await b.next({ type: 'system', data: 'second' });
    await sse.next((e) => e.event === 'system');
    await a1.none({ type: 'system' }, 300);
    await a2.none({ type: 'system' }, 0);

    await rejectsWith(call(sys.api.messages, 'Broadcast', { data: Buffer.from('{"a":') }), status.INVALID_ARGUMENT, 'invalid_message');
  });

  stopsCleanly(shutdown);
});
