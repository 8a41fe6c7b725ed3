// Session resumption: ?session_id=<id> within the TTL gives the same session back (resumed) with
// its rooms, on WebSocket and SSE; another user's, unknown, malformed or expired ids a new one.
// stores: memory, etcd
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startSystem, stopsCleanly, waitFor, sleep } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const { SseClient } = require('../lib/sseclient');
const F = require('../lib/frames');
const { uniq, createRoom } = require('../lib/util');
const { call } = require('../lib/grpc');

const json = (v) => Buffer.from(JSON.stringify(v));
const TTL_MS = 1500;

describe('session resumption', { timeout: 120000 }, () => {
  let sys;
  const clients = [];

  async function connect(user, session) {
    const extra = session === undefined ? '' : `&session_id=${encodeURIComponent(session)}`;
    const c = await WsClient.connect(sys.wsUrl(user, extra));
    clients.push(c);
    return c;
  }

  // Closes the client and waits until the control plane no longer lists the connection.
  async function closeAndForget(c) {
    await c.close();
    const id = c.connected.connection_id;
    await waitFor(`connection ${id} gone`, async () => {
      const r = await call(sys.api.connections, 'ListConnections', { user_id: c.connected.user_id });
      return !r.connections.some((x) => x.id === id);
    });
    await sleep(100); // the session record is written when the close is applied
  }

  before(async () => {
    sys = await startSystem({ cpArgs: ['--session-ttl-ms', String(TTL_MS)], dpArgs: ['--ping-interval-ms', '1000'] });
  });

  const shutdown = async () => {
    for (const c of clients) await c.close();
    if (sys) await sys.stop();
  };
  after(shutdown);

  it('a new connection has a new session: no resumed member', async () => {
    const c = await connect(uniq('fresh'));
    F.assertFrame(c.connected, {
      type: 'connected',
      connection_id: F.CONN_ID,
      session_id: F.SESSION_ID,
      user_id: c.connected.user_id,
      node_id: F.NONEMPTY,
    });
  });

  it('reconnecting with the session_id within the TTL resumes it, rooms included', async () => {
    const room = uniq('s-room');
    await createRoom(sys, room);
    const user = uniq('resume');
    const first = await connect(user);
    await first.request({ type: 'join', room_id: room });
    const session = first.connected.session_id;
    await closeAndForget(first);

    const again = await connect(user, session);
    assert.equal(again.connected.session_id, session);
    assert.equal(again.connected.resumed, true);
    assert.notEqual(again.connected.connection_id, first.connected.connection_id);
    // No join needed: the room's messages arrive and the client may publish.
    const sent = await call(sys.api.messages, 'BroadcastToRoom', { room_id: room, data: json('back') });
    const f = await again.next({ type: 'message', room_id: room });
    assert.equal(f.id, sent.message_id);
    const ack = await again.request({ type: 'message', room_id: room, data: 1 });
    assert.equal(ack.type, 'ack');
    // ListConnections shows the resumed session.
    const r = await call(sys.api.connections, 'ListConnections', { user_id: user });
    assert.deepEqual(r.connections.map((x) => x.session_id), [session]);

    // Resumed again after the resumed connection closes.
    await closeAndForget(again);
    const third = await connect(user, session);
    assert.equal(third.connected.session_id, session);
    assert.equal(third.connected.resumed, true);
  });

  it('a session still open on another connection of the same user is resumed', async () => {
    const user = uniq('twotabs');
    const a = await connect(user);
    const b = await connect(user, a.connected.session_id);
    assert.equal(b.connected.session_id, a.connected.session_id);
    assert.equal(b.connected.resumed, true);
  });

  it("another user's, an unknown or a malformed session id gives a new session", async () => {
    const owner = uniq('owner');
    const a = await connect(owner);
    const session = a.connected.session_id;
    await closeAndForget(a);
    const thief = await connect(uniq('thief'), session);
    assert.notEqual(thief.connected.session_id, session);
    assert.equal(thief.connected.resumed, undefined);
    const open = await connect(uniq('thief2'), thief.connected.session_id); // open, other user
    assert.notEqual(open.connected.session_id, thief.connected.session_id);
    assert.equal(open.connected.resumed, undefined);
    const unknown = await connect(owner, 's-neverissued0000');
    assert.notEqual(unknown.connected.session_id, 's-neverissued0000');
    assert.equal(unknown.connected.resumed, undefined);
    const bad = await connect(owner, 'not a valid id!');
    assert.equal(bad.connected.resumed, undefined);
    assert.match(bad.connected.session_id, F.SESSION_ID);
    // The owner can still resume the original one.
    const back = await connect(owner, session);
    assert.equal(back.connected.session_id, session);
    assert.equal(back.connected.resumed, true);
  });

  it('after the TTL the session is gone: a new session', async () => {
    const user = uniq('expire');
    const a = await connect(user);
    const session = a.connected.session_id;
    await closeAndForget(a);
    await sleep(TTL_MS + 500);
    const b = await connect(user, session);
    assert.notEqual(b.connected.session_id, session);
    assert.equal(b.connected.resumed, undefined);
  });

  it('SSE resumes with ?session_id= too', async () => {
    const room = uniq('sse-room');
    await createRoom(sys, room);
    const user = uniq('sse');
    const url = (extra = '') => `${sys.httpBase}/sse?user_id=${user}${extra}`;
    const first = await SseClient.connect(url(`&rooms=${room}`));
    const session = first.connected.session_id;
    assert.equal(first.connected.resumed, undefined);
    first.close();
    await waitFor('sse connection gone', async () => {
      const r = await call(sys.api.connections, 'ListConnections', { user_id: user });
      return r.connections.length === 0;
    });
    await sleep(100);
    const again = await SseClient.connect(url(`&session_id=${session}`));
    clients.push({ close: async () => again.close() });
    assert.equal(again.connected.session_id, session);
    assert.equal(again.connected.resumed, true);
    const sent = await call(sys.api.messages, 'BroadcastToRoom', { room_id: room, data: json('sse back') });
    const ev = await again.next((e) => e.event === 'message');
    assert.equal(ev.data.id, sent.message_id);
    sys.check();
  });

  stopsCleanly(shutdown);
});
