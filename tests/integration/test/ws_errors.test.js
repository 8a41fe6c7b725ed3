// Every error code the walking skeleton implements, over WebSocket. A bad frame gets an error
// frame and the socket stays open and usable; only the hard size limit closes it (1009).
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startSystem, stopsCleanly } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const F = require('../lib/frames');
const { uniq, createRoom } = require('../lib/util');
const grpcApi = require('../lib/grpc');

const KiB = 1024;

describe('websocket errors', { timeout: 90000 }, () => {
  let sys;
  let room; // an existing public room
  const clients = [];

  async function connect(user) {
    const c = await WsClient.connect(sys.wsUrl(user || uniq('err')));
    clients.push(c);
    return c;
  }

  // The socket is still open and a request still gets its answer.
  async function stillWorks(c) {
    assert.equal(c.closeInfo, null, `socket closed: ${JSON.stringify(c.closeInfo)}`);
    const p = await c.request({ type: 'ping' });
    assert.equal(p.type, 'pong', JSON.stringify(p));
  }

  before(async () => {
    sys = await startSystem();
    room = uniq('room');
    await createRoom(sys, room);
  });

  const shutdown = async () => {
    await Promise.all(clients.map((c) => c.close()));
    if (sys) await sys.stop();
  };
  after(shutdown);

  it('malformed JSON and non-object frames: invalid_message, socket stays open', async () => {
    const c = await connect();
    for (const text of ['{"type":', 'not json', '[1,2,3]', '"ping"', '42', 'null', '{"type":"ping"} trailing', '']) {
      c.send(text);
      const e = await c.next({ type: 'error' });
      F.assertError(e, 'invalid_message');
    }
    await stillWorks(c);
  });

  it('unknown or missing type: invalid_message with the ref', async () => {
    const c = await connect();
    F.assertError(await c.request({ type: 'dance', ref: 'u1' }), 'invalid_message', 'u1');
    F.assertError(await c.request({ ref: 'u2', room_id: room }), 'invalid_message', 'u2');
    F.assertError(await c.request({ type: 42, ref: 'u3' }), 'invalid_message', 'u3');
    // Server-only frame types are not client frames.
    for (const type of ['connected', 'ack', 'error', 'system', 'pong', 'kicked']) {
      F.assertError(await c.request({ type, ref: `srv-${type}` }), 'invalid_message', `srv-${type}`);
    }
    await stillWorks(c);
  });

  it('missing required field: invalid_message with the ref', async () => {
    const c = await connect();
    const cases = [
      { type: 'join' },
      { type: 'leave' },
      { type: 'message', room_id: room },
      { type: 'message', data: 'x' },
      { type: 'typing', room_id: room },
      { type: 'typing', typing: true },
      { type: 'presence' },
      { type: 'history' },
      { type: 'subscribe' },
      { type: 'unsubscribe' },
      { type: 'publish', data: 1 },
      { type: 'publish', channel_id: 'news' },
    ];
    let i = 0;
    for (const frame of cases) {
      const ref = `mf-${i++}`;
      F.assertError(await c.request({ ...frame, ref }), 'invalid_message', ref);
    }
    await stillWorks(c);
  });

  it('wrong field type: invalid_message with the ref', async () => {
    const c = await connect();
    const cases = [
      { type: 'join', room_id: 5 },
      { type: 'join', room_id: room, since: '3' },
      { type: 'join', room_id: room, since: -1 },
      { type: 'join', room_id: room, since: 1.5 },
      { type: 'leave', room_id: ['x'] },
      { type: 'message', room_id: { id: room }, data: 1 },
      { type: 'message', room_id: room, data: 1, thread_id: 7 },
      { type: 'message', room_id: room, data: 1, metadata: 'k=v' },
      { type: 'typing', room_id: room, typing: 'yes' },
      { type: 'presence', status: 3 },
      { type: 'presence', status: 'sleeping' },
      { type: 'history', room_id: room, limit: '10' },
      { type: 'history', room_id: room, limit: -1 },
      { type: 'history', room_id: room, before: 'x' },
      { type: 'subscribe', channel_id: false },
    ];
    let i = 0;
    for (const frame of cases) {
      const ref = `wt-${i++}`;
      const e = await c.request({ ...frame, ref });
      try {
        F.assertError(e, 'invalid_message', ref);
      } catch (err) {
        err.message = `${JSON.stringify(frame)}: ${err.message}`;
        throw err;
      }
    }
    // A ref that is not a string is itself invalid.
    c.send({ type: 'ping', ref: 5 });
    const e = await c.next({ type: 'error' });
    assert.equal(e.code, 'invalid_message', JSON.stringify(e));
    await stillWorks(c);
  });

  it('bad identifiers: invalid_message', async () => {
    const c = await connect();
    const bad = ['bad room!', '', 'x'.repeat(129), 'a/b', 'caf\u00e9', 'sp ace', 'new\nline'];
    let i = 0;
    for (const id of bad) {
      const ref = `id-${i++}`;
      const e = await c.request({ type: 'join', room_id: id, ref });
      try {
        F.assertError(e, 'invalid_message', ref);
      } catch (err) {
        err.message = `room_id ${JSON.stringify(id)}: ${err.message}`;
        throw err;
      }
    }
    F.assertError(await c.request({ type: 'subscribe', channel_id: 'no way', ref: 'ch' }), 'invalid_message', 'ch');
    await stillWorks(c);
  });

  it('binary frame: invalid_message, socket stays open', async () => {
    const c = await connect();
    c.sendBinary(Buffer.from('{"type":"ping"}'));
    F.assertError(await c.next({ type: 'error' }), 'invalid_message');
    c.sendBinary(Buffer.from([0, 1, 2, 255]));
    F.assertError(await c.next({ type: 'error' }), 'invalid_message');
    await stillWorks(c);
  });

  it('frame over 64 KiB: message_too_large, socket stays open and still delivers', async () => {
    const c = await connect();
    await c.request({ type: 'join', room_id: room });
    // Just under the limit goes through.
    const okData = 'a'.repeat(60 * KiB);
    const ok = await c.request({ type: 'message', room_id: room, data: okData }, 5000);
    assert.equal(ok.type, 'ack', JSON.stringify(ok).slice(0, 300));
    const got = await c.next({ type: 'message', seq: ok.seq });
    assert.equal(got.data, okData);

    c.send({ type: 'message', room_id: room, ref: 'big', data: 'b'.repeat(70 * KiB) });
    const e = await c.next({ type: 'error' }, 5000);
    F.assertFrame(e, { type: 'error', code: 'message_too_large', message: F.NONEMPTY }, { ref: 'big' });
    // Many oversize frames in a row do not hurt either.
    for (let i = 0; i < 5; i++) c.send('x'.repeat(200 * KiB));
    for (let i = 0; i < 5; i++) F.assertError(await c.next({ type: 'error' }, 5000), 'message_too_large');
    await stillWorks(c);
    const again = await c.request({ type: 'message', room_id: room, data: 'after' });
    assert.equal(again.type, 'ack');
    await c.next({ type: 'message', data: 'after' });
  });

  it('frame beyond the hard limit (1 MiB): close 1009, other clients unaffected', async () => {
    const bystander = await connect();
    const c = await connect();
    c.send('{"type":"message","data":"' + 'z'.repeat(1100 * KiB) + '"}');
    const info = await Promise.race([c.closed, new Promise((r) => setTimeout(() => r(null), 5000))]);
    assert.ok(info, 'socket not closed within 5 s');
    assert.equal(info.code, 1009, JSON.stringify(info));
    await stillWorks(bystander);
    const fresh = await connect();
    await stillWorks(fresh);
  });

  it('room_not_found for join, message, history, leave and typing on a missing room', async () => {
    const c = await connect();
    const ghost = uniq('ghost');
    F.assertError(await c.request({ type: 'join', room_id: ghost, ref: 'g1' }), 'room_not_found', 'g1');
    F.assertError(await c.request({ type: 'message', room_id: ghost, data: 1, ref: 'g2' }), 'room_not_found', 'g2');
    F.assertError(await c.request({ type: 'history', room_id: ghost, ref: 'g3' }), 'room_not_found', 'g3');
    F.assertError(await c.request({ type: 'leave', room_id: ghost, ref: 'g4' }), 'room_not_found', 'g4');
    c.send({ type: 'typing', room_id: ghost, typing: true, ref: 'g5' });
    F.assertError(await c.next({ ref: 'g5' }), 'room_not_found', 'g5');
    await stillWorks(c);
  });

  it('not_room_member for message, history, leave and typing without joining', async () => {
    const c = await connect();
    F.assertError(await c.request({ type: 'message', room_id: room, data: 1, ref: 'n1' }), 'not_room_member', 'n1');
    F.assertError(await c.request({ type: 'history', room_id: room, ref: 'n2' }), 'not_room_member', 'n2');
    F.assertError(await c.request({ type: 'leave', room_id: room, ref: 'n3' }), 'not_room_member', 'n3');
    c.send({ type: 'typing', room_id: room, typing: true, ref: 'n4' });
    F.assertError(await c.next({ ref: 'n4' }), 'not_room_member', 'n4');
    await stillWorks(c);
  });

  it('permission_denied joining a private room; a member added over gRPC may talk', async () => {
    const priv = uniq('private');
    await createRoom(sys, priv, { private: true });
    const user = uniq('outsider');
    const c = await connect(user);
    F.assertError(await c.request({ type: 'join', room_id: priv, ref: 'pd' }), 'permission_denied', 'pd');
    await stillWorks(c);
    await grpcApi.call(sys.api.rooms, 'JoinRoom', { room_id: priv, user_id: user });
    const ack = await c.request({ type: 'message', room_id: priv, data: 'inside' });
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    await c.next({ type: 'message', room_id: priv, data: 'inside' });
    // Joining again as a member is fine.
    const j = await c.request({ type: 'join', room_id: priv });
    assert.equal(j.type, 'ack', JSON.stringify(j));
  });

  it('a burst of mixed bad frames never closes the socket nor crashes a daemon', async () => {
    const c = await connect();
    const junk = [
      '{', '}', '{}', '{"type":null}', '{"type":"message","room_id":"' + room + '","data":}',
      '{"type":"join","room_id":"' + room + '","room_id":"dup"}', '\u0000',
      JSON.stringify({ type: 'history', room_id: room, limit: 1e300 }),
      JSON.stringify({ type: 'join', room_id: room, since: 1e300 }),
      '{"type":"join","room_id":"' + room + '","since":99999999999999999999999}',
      JSON.stringify({ type: 'message', room_id: room, data: JSON.parse('[' .repeat(500) + ']'.repeat(500)) }),
    ];
    for (const j of junk) c.send(j);
    for (let i = 0; i < junk.length; i++) {
      const f = await c.next((x) => x.type === 'error' || x.type === 'pong' || x.type === 'ack', 5000);
      assert.ok(f.type === 'error', `junk #${i} answered ${JSON.stringify(f).slice(0, 200)}`);
    }
    await stillWorks(c);
    sys.check();
  });

  stopsCleanly(shutdown);
});
