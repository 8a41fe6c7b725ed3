// Connections/WatchEvents: join/message/leave/presence events, filters, many watchers, cancel, a
// slow watcher cut off (RESOURCE_EXHAUSTED) slowing nobody, a clean stop with a watcher open.
// stores: memory, etcd
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startSystem, stopsCleanly, sleep } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const { uniq, createRoom } = require('../lib/util');
const grpcApi = require('../lib/grpc');

const { call, status } = grpcApi;
const json = (v) => Buffer.from(JSON.stringify(v));

// A WatchEvents call whose events queue up; next() waits for one matching a predicate.
function watch(client, req = {}) {
  const w = { events: [], all: [], error: null, ended: false, waiters: [] };
  const wake = () => {
    const ws = w.waiters;
    w.waiters = [];
    for (const f of ws) f();
  };
  w.call = client.WatchEvents(req);
  w.ready = new Promise((resolve, reject) => {
    w.call.on('metadata', resolve);
    w.call.on('error', reject);
  });
  w.ready.catch(() => {});
  w.call.on('data', (ev) => {
    w.events.push(ev);
    w.all.push(ev);
    wake();
  });
  w.call.on('error', (e) => {
    w.error = e;
    wake();
  });
  w.call.on('end', () => {
    w.ended = true;
    wake();
  });
  w.next = async (pred, timeout = 5000) => {
    const end = Date.now() + timeout;
    for (;;) {
      const i = w.events.findIndex(pred);
      if (i >= 0) return w.events.splice(i, 1)[0];
      if (Date.now() >= end || w.error || w.ended) {
        throw new Error(`no event matching ${pred} within ${timeout} ms (error: ${w.error && w.error.details}); queued: ${JSON.stringify(w.events).slice(0, 1500)}`);
      }
      await new Promise((resolve) => {
        const t = setTimeout(resolve, end - Date.now());
        w.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  };
  w.failed = async (timeout = 5000) => {
    const end = Date.now() + timeout;
    while (!w.error && Date.now() < end) await sleep(20);
    if (!w.error) throw new Error('the watch did not fail');
    return w.error;
  };
  return w;
}

const type = (t, extra = () => true) => (ev) => ev.type === t && extra(ev);

describe('WatchEvents', { timeout: 120000 }, () => {
  let sys;
  const clients = [];
  const watches = [];

  async function connect(user) {
    const c = await WsClient.connect(sys.wsUrl(user));
    clients.push(c);
    return c;
  }

  async function open(req) {
    const w = watch(sys.api.connections, req);
    watches.push(w);
    await w.ready;
    return w;
  }

  before(async () => {
    // Grace 0: offline is announced as soon as the last connection closes.
    sys = await startSystem({ cpArgs: ['--presence-grace-ms', '0'] });
  });

  const shutdown = async () => {
    for (const w of watches) w.call.cancel();
    for (const c of clients) await c.close();
    if (sys) await sys.stop();
  };
  after(shutdown);

  it('a watcher without filters receives presence, join, message and leave events', async () => {
    const w = await open({});
    const room = uniq('w-room');
    await createRoom(sys, room);
    const user = uniq('w-user');
    const ws = await connect(user);
    const online = await w.next(type('presence', (e) => e.user_id === user));
    assert.equal(online.presence.user_id, user);
    assert.equal(online.presence.status, 'online');
    assert.equal(online.presence.connection_count, 1);
    assert.ok(online.timestamp > 0);

    await call(sys.api.rooms, 'JoinRoom', { room_id: room, user_id: user });
    const join = await w.next(type('join', (e) => e.room_id === room));
    assert.equal(join.user_id, user);
    assert.ok(join.timestamp > Date.now() - 60000);
    assert.equal(join.message, null);

    const sent = await call(sys.api.messages, 'BroadcastToRoom', {
      room_id: room,
      data: json({ n: 1 }),
      user_id: 'backend',
      thread_id: 't1',
      metadata: { priority: 'high' },
    });
    const msg = await w.next(type('message', (e) => e.room_id === room));
    assert.equal(msg.user_id, 'backend');
    assert.equal(msg.message.id, sent.message_id);
    assert.equal(msg.message.seq, sent.seq);
    assert.equal(msg.message.room_id, room);
    assert.equal(msg.message.thread_id, 't1');
    assert.deepEqual(msg.message.metadata, { priority: 'high' });
    assert.deepEqual(JSON.parse(msg.message.data.toString()), { n: 1 });
    assert.equal(msg.timestamp, msg.message.timestamp);

    // A client's own message and presence change.
    const ack = await ws.request({ type: 'message', room_id: room, data: 'from the client' });
    const m2 = await w.next(type('message', (e) => e.room_id === room));
    assert.equal(m2.message.id, ack.id);
    assert.equal(m2.user_id, user);
    await ws.request({ type: 'presence', status: 'busy' });
    const busy = await w.next(type('presence', (e) => e.user_id === user));
    assert.equal(busy.presence.status, 'busy');

    await call(sys.api.rooms, 'LeaveRoom', { room_id: room, user_id: user });
    const leave = await w.next(type('leave', (e) => e.room_id === room));
    assert.equal(leave.user_id, user);

    await ws.close();
    const offline = await w.next(type('presence', (e) => e.user_id === user));
    assert.equal(offline.presence.status, 'offline');
    assert.equal(offline.presence.connection_count, 0);
  });

  it('filters by room_ids and by types; empty lists mean everything', async () => {
    const r1 = uniq('f1');
    const r2 = uniq('f2');
    await createRoom(sys, r1);
    await createRoom(sys, r2);
    const byRoom = await open({ room_ids: [r1] });
    const presenceOnly = await open({ types: ['presence'] });
    const joinsOfR1 = await open({ room_ids: [r1], types: ['join'] });
    const byChannel = await open({ channel_ids: ['news'] });
    const user = uniq('f-user');
    const ws = await connect(user);
    await call(sys.api.rooms, 'JoinRoom', { room_id: r2, user_id: user });
    await call(sys.api.rooms, 'JoinRoom', { room_id: r1, user_id: user });
    await call(sys.api.messages, 'BroadcastToRoom', { room_id: r2, data: json('r2') });
    const sent = await call(sys.api.messages, 'BroadcastToRoom', { room_id: r1, data: json('r1') });

    // byRoom: r1's join and message, nothing of r2 (events arrive in order: r2's came first).
    const j = await byRoom.next(type('join'));
    assert.equal(j.room_id, r1);
    const m = await byRoom.next(type('message'));
    assert.equal(m.message.id, sent.message_id);
    assert.ok(!byRoom.all.some((e) => e.room_id === r2), 'no r2 event for a watcher of r1');

    const pj = await joinsOfR1.next(() => true);
    assert.equal(pj.type, 'join');
    assert.equal(pj.room_id, r1);

    const p = await presenceOnly.next(type('presence', (e) => e.user_id === user));
    assert.equal(p.presence.status, 'online');
    await ws.close();
    await presenceOnly.next(type('presence', (e) => e.user_id === user && e.presence.status === 'offline'));
    await sleep(200);
    assert.ok(presenceOnly.all.every((e) => e.type === 'presence'), 'only presence events');
    assert.ok(joinsOfR1.all.every((e) => e.type === 'join' && e.room_id === r1), 'only joins of r1');
    // A channel filter leaves room events out (presence belongs to no room or channel).
    assert.ok(!byChannel.all.some((e) => e.room_id), 'no room event for a channel watcher');
    assert.ok(byChannel.all.some((e) => e.type === 'presence'));
  });

  it('refuses bad filters with INVALID_ARGUMENT invalid_message', async () => {
    for (const req of [{ types: ['message', 'nonsense'] }, { room_ids: ['bad room'] }, { channel_ids: [''] }]) {
      const w = watch(sys.api.connections, req);
      const err = await w.failed();
      assert.equal(err.code, status.INVALID_ARGUMENT, `${JSON.stringify(req)}: ${err.code} ${err.details}`);
      assert.match(err.details, /^invalid_message: ./);
    }
  });

  it('many watchers get the same event; a cancelled watcher is dropped', async () => {
    const room = uniq('many');
    await createRoom(sys, room);
    const ws = [];
    for (let i = 0; i < 8; i++) ws.push(await open({ room_ids: [room], types: ['message'] }));
    const gone = await open({ room_ids: [room] });
    gone.call.cancel();
    await sleep(100);
    const sent = await call(sys.api.messages, 'BroadcastToRoom', { room_id: room, data: json({ many: true }) });
    for (const w of ws) assert.equal((await w.next(type('message'))).message.id, sent.message_id);
    assert.equal(gone.all.length, 0);
    sys.check();
  });

  // These two need the history and channel flows (other parts of issue 4): skipped while their
  // methods answer UNIMPLEMENTED.
  it('message_updated follows an edit (with the history flows)', async (t) => {
    const room = uniq('edit');
    await createRoom(sys, room);
    const w = await open({ room_ids: [room], types: ['message_updated'] });
    const sent = await call(sys.api.messages, 'BroadcastToRoom', { room_id: room, data: json('v1') });
    try {
      await call(sys.api.messages, 'EditMessage', { room_id: room, message_id: sent.message_id, data: json('v2') });
    } catch (e) {
      if (e.code === status.UNIMPLEMENTED) return t.skip('EditMessage is not implemented here');
      throw e;
    }
    const ev = await w.next(type('message_updated'));
    assert.equal(ev.room_id, room);
    assert.equal(ev.message.id, sent.message_id);
    assert.equal(ev.message.seq, sent.seq);
    assert.deepEqual(JSON.parse(ev.message.data.toString()), 'v2');
    assert.equal(ev.message.edits.length, 1, 'the edit trail comes with the event');
    assert.deepEqual(JSON.parse(ev.message.edits[0].previous_data.toString()), 'v1');
    // A deletion: a tombstone without data.
    await call(sys.api.messages, 'DeleteMessage', { room_id: room, message_id: sent.message_id });
    const del = await w.next(type('message_updated', (e) => e.message.deleted));
    assert.equal(del.message.data.length, 0);
    assert.ok(del.message.deleted_at > 0);
    assert.equal(del.timestamp, del.message.deleted_at);
  });

  it('channel_message follows a channel publish (with the channel flows)', async (t) => {
    const ch = uniq('ch');
    try {
      await call(sys.api.channels, 'CreateChannel', { channel_id: ch });
    } catch (e) {
      if (e.code === status.UNIMPLEMENTED) return t.skip('channels are not implemented here');
      throw e;
    }
    const w = await open({ channel_ids: [ch] });
    const other = await open({ channel_ids: [uniq('other-ch')], types: ['channel_message'] });
    const sent = await call(sys.api.messages, 'BroadcastToChannel', { channel_id: ch, data: json({ c: 1 }), user_id: 'svc' });
    const ev = await w.next(type('channel_message'));
    assert.equal(ev.channel_id, ch);
    assert.equal(ev.user_id, 'svc');
    assert.equal(ev.message.id, sent.message_id);
    assert.equal(ev.message.channel_id, ch);
    assert.deepEqual(JSON.parse(ev.message.data.toString()), { c: 1 });
    await sleep(200);
    assert.equal(other.all.length, 0);
  });

  it('grpc.health.v1.Health/Watch streams the serving status and stays open', async () => {
    for (const [service, want] of [['', 'SERVING'], ['switchboard.v1.Connections', 'SERVING'], ['no.such.Service', 'SERVICE_UNKNOWN']]) {
      const h = sys.api.health.Watch({ service });
      const got = await new Promise((resolve, reject) => {
        h.on('data', resolve);
        h.on('error', reject);
      });
      assert.equal(got.status, want, service);
      let ended = false;
      h.on('error', () => (ended = true));
      h.on('end', () => (ended = true));
      await sleep(300);
      assert.equal(ended, false, 'the health stream stays open');
      h.cancel();
    }
    sys.check();
  });

  stopsCleanly(shutdown);
});

describe('WatchEvents: a slow watcher', { timeout: 180000 }, () => {
  let sys;
  let extra; // a client of its own: its watch stays open while the control plane stops
  const clients = [];

  before(async () => {
    sys = await startSystem({ cpArgs: ['--watch-queue-bytes', '262144'] });
    extra = grpcApi.clients(sys.cp.addr);
  });

  const shutdown = async () => {
    for (const c of clients) await c.close();
    if (sys) await sys.stop();
    if (extra) grpcApi.closeClients(extra);
    extra = null;
  };
  after(shutdown);

  it('is cut off with RESOURCE_EXHAUSTED rate_limited; clients and other watchers get every message', async () => {
    const room = uniq('slow');
    await createRoom(sys, room);
    const user = uniq('member');
    const ws = await WsClient.connect(sys.wsUrl(user));
    clients.push(ws);
    await ws.request({ type: 'join', room_id: room });

    const slow = watch(extra.connections, { room_ids: [room] });
    await slow.ready;
    slow.call.pause(); // never reads
    const fast = watch(sys.api.connections, { room_ids: [room], types: ['message'] });
    await fast.ready;

    // 1.2 MB of events for a 256 KiB queue, in bursts of 10 (20 KB: a watcher that reads
    // keeps up).
    const N = 600;
    const blob = 'x'.repeat(2000);
    for (let i = 0; i < N; i += 10) {
      const batch = [];
      for (let k = i; k < Math.min(N, i + 10); k++) {
        batch.push(call(sys.api.messages, 'BroadcastToRoom', { room_id: room, data: json({ k, blob }) }));
      }
      await Promise.all(batch);
    }
    // The member gets every message, in order.
    const seen = [];
    while (seen.length < N) {
      const f = await ws.next({ type: 'message', room_id: room }, 10000);
      seen.push(f.seq);
    }
    for (let i = 1; i < seen.length; i++) assert.equal(seen[i], seen[i - 1] + 1, 'gap-free seqs');
    // The other watcher too.
    for (let i = 0; i < N; i++) await fast.next(type('message'), 10000);

    slow.call.resume();
    const err = await slow.failed(10000);
    assert.equal(err.code, status.RESOURCE_EXHAUSTED, `${err.code} ${err.details}`);
    assert.match(err.details, /^rate_limited: ./);
    assert.ok(slow.all.length < N, `the slow watcher got ${slow.all.length} events`);
    fast.call.cancel();
    sys.check();
  });

  it('a watcher still open when the control plane stops ends with UNAVAILABLE', async () => {
    const open = watch(extra.connections, {});
    await open.ready;
    await shutdown(); // throws on an unclean exit or a sanitizer report
    const err = await open.failed(5000);
    assert.ok([status.UNAVAILABLE, status.CANCELLED].includes(err.code), `${err.code} ${err.details}`);
  });
});
