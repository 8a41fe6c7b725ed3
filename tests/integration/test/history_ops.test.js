// History (docs/history.md): SaveMessage, GetHistory by seq/time/thread, EditMessage with its
// trail, DeleteMessage tombstones, reactions, SearchMessages, the live update frames on WebSocket
// and SSE, and the retention cleaner.
// stores: memory, etcd
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startSystem, stopsCleanly } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const { SseClient, ssePost } = require('../lib/sseclient');
const F = require('../lib/frames');
const { uniq, createRoom, rejectsWith } = require('../lib/util');
const { call, status } = require('../lib/grpc');

const json = (v) => Buffer.from(JSON.stringify(v));
const parse = (b) => JSON.parse(Buffer.from(b).toString('utf8'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe('history operations', { timeout: 180000 }, () => {
  let sys;
  const clients = [];

  async function ws(user) {
    const c = await WsClient.connect(sys.wsUrl(user));
    clients.push(c);
    return c;
  }

  async function sse(user, rooms) {
    const c = await SseClient.connect(`${sys.httpBase}/sse?user_id=${encodeURIComponent(user)}&rooms=${rooms}`);
    clients.push(c);
    return c;
  }

  const msgs = (method, req) => call(sys.api.messages, method, req);

  // A room owned by `owner` with members alice (WebSocket) and bob (SSE), all joined.
  async function setup(tag) {
    const room = uniq(tag);
    const owner = uniq('owner');
    const alice = uniq('alice');
    const bob = uniq('bob');
    await createRoom(sys, room, { owner_id: owner });
    const a = await ws(alice);
    assert.equal((await a.request({ type: 'join', room_id: room })).type, 'ack');
    const b = await sse(bob, room);
    await a.next({ type: 'join', user_id: bob });
    return { room, owner, alice, bob, a, b };
  }

  async function post(room, user, data, extra = {}) {
    return msgs('BroadcastToRoom', { room_id: room, user_id: user, data: json(data), ...extra });
  }

  before(async () => {
    sys = await startSystem();
  });

  const shutdown = async () => {
    for (const c of clients) if (c.close) await c.close();
    if (sys) await sys.stop();
  };
  after(shutdown);

  it('SaveMessage stores without delivering; GetHistory returns it; errors', async () => {
    const { room, alice, a, b } = await setup('save');
    const t0 = Date.now();
    const saved = await msgs('SaveMessage', {
      room_id: room,
      user_id: alice,
      data: json({ text: 'imported' }),
      thread_id: 't1',
      metadata: { source: 'import' },
    });
    assert.match(saved.id, /^[A-Za-z0-9._:@-]+$/);
    assert.equal(saved.seq, 1);
    assert.equal(saved.room_id, room);
    assert.equal(saved.user_id, alice);
    assert.equal(saved.thread_id, 't1');
    assert.deepEqual(saved.metadata, { source: 'import' });
    assert.deepEqual(parse(saved.data), { text: 'imported' });
    assert.ok(saved.timestamp >= t0 - 5000 && saved.timestamp <= Date.now() + 5000);
    assert.equal(saved.deleted, false);
    await a.none({ type: 'message' }, 300);
    await b.none((e) => e.event === 'message', 50);

    // It takes a seq like any message: the next broadcast gets 2.
    assert.equal((await post(room, alice, { text: 'live' })).seq, 2);
    await a.next({ type: 'message', seq: 2 });
    const h = await msgs('GetHistory', { room_id: room });
    assert.deepEqual(h.messages.map((m) => m.seq), [1, 2]);
    assert.equal(h.messages[0].id, saved.id);
    assert.equal(h.messages[0].timestamp, saved.timestamp);

    // A sender that is not a member is accepted (the backend is trusted, e.g. imports).
    const outsider = uniq('former');
    assert.equal((await msgs('SaveMessage', { room_id: room, user_id: outsider, data: json(1) })).user_id, outsider);

    await rejectsWith(msgs('SaveMessage', { room_id: uniq('none'), data: json(1) }), status.NOT_FOUND, 'room_not_found');
    await rejectsWith(msgs('SaveMessage', { room_id: room, data: Buffer.from('{nope') }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(msgs('SaveMessage', { room_id: 'bad id', data: json(1) }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(msgs('SaveMessage', { room_id: room, user_id: 'bad user!', data: json(1) }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(
      msgs('SaveMessage', { room_id: room, data: json('x'.repeat(70000)) }),
      status.RESOURCE_EXHAUSTED,
      'message_too_large'
    );
  });

  it('GetHistory by time bounds (exclusive) and by thread', async () => {
    const { room, alice, a } = await setup('hist');
    const ts = [];
    for (let i = 1; i <= 4; i++) {
      await post(room, alice, { i }, { thread_id: i % 2 ? 'odd' : '' });
      const m = await a.next({ type: 'message', seq: i });
      ts.push(Date.parse(m.timestamp));
      await sleep(25);
    }
    const seqs = (r) => r.messages.map((m) => m.seq);
    assert.deepEqual(seqs(await msgs('GetHistory', { room_id: room, after_time: ts[0] })), [2, 3, 4]);
    assert.deepEqual(seqs(await msgs('GetHistory', { room_id: room, before_time: ts[2] })), [1, 2]);
    assert.deepEqual(seqs(await msgs('GetHistory', { room_id: room, after_time: ts[0], before_time: ts[3] })), [2, 3]);
    assert.deepEqual(seqs(await msgs('GetHistory', { room_id: room, thread_id: 'odd' })), [1, 3]);
    assert.deepEqual(seqs(await msgs('GetHistory', { room_id: room, thread_id: 'odd', after_time: ts[0] })), [3]);
    assert.deepEqual(seqs(await msgs('GetHistory', { room_id: room, thread_id: 'none-such' })), []);
    assert.deepEqual(seqs(await msgs('GetHistory', { room_id: room, before_seq: 4, limit: 2 })), [2, 3]);
    assert.deepEqual(seqs(await msgs('GetHistory', { room_id: room, after_seq: 1, limit: 2 })), [2, 3]);
    await rejectsWith(msgs('GetHistory', { room_id: room, after_time: -1 }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(msgs('GetHistory', { room_id: room, thread_id: 'bad thread' }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(msgs('GetHistory', { room_id: uniq('none') }), status.NOT_FOUND, 'room_not_found');
  });

  it('EditMessage: sender, owner and backend edit with a trail; live message_edited on WS and SSE; errors', async () => {
    const { room, owner, alice, bob, a, b } = await setup('edit');
    const carol = uniq('carol');
    await call(sys.api.rooms, 'JoinRoom', { room_id: room, user_id: carol });
    const sent = await post(room, alice, { text: 'helo' });
    await a.next({ type: 'message', seq: sent.seq });

    const t0 = Date.now();
    const e1 = await msgs('EditMessage', { room_id: room, message_id: sent.message_id, editor_id: alice, data: json({ text: 'hello' }) });
    assert.equal(e1.id, sent.message_id);
    assert.equal(e1.seq, sent.seq);
    assert.equal(e1.user_id, alice);
    assert.deepEqual(parse(e1.data), { text: 'hello' });
    assert.equal(e1.edits.length, 1);
    assert.equal(e1.edits[0].editor_id, alice);
    assert.equal(Buffer.from(e1.edits[0].previous_data).toString(), '{"text":"helo"}');
    assert.ok(e1.edits[0].edited_at >= t0 - 5000);

    const live = await a.next({ type: 'message_edited' });
    F.assertFrame(live, {
      type: 'message_edited',
      room_id: room,
      id: sent.message_id,
      seq: sent.seq,
      user_id: alice,
      editor_id: alice,
      data: { text: 'hello' },
      edited_at: F.TS,
    });
    const ev = await b.next((e) => e.event === 'message_edited');
    assert.deepEqual(ev.data, live);
    assert.equal(ev.id, undefined, 'update events carry no stream position');

    // The owner may edit others' messages; the backend (no editor_id) may edit anything.
    await msgs('EditMessage', { room_id: room, message_id: sent.message_id, editor_id: owner, data: json({ text: 'hello!' }) });
    const e3 = await msgs('EditMessage', { room_id: room, message_id: sent.message_id, data: json({ text: 'hello!!' }) });
    assert.deepEqual(e3.edits.map((e) => [e.editor_id, Buffer.from(e.previous_data).toString()]), [
      [alice, '{"text":"helo"}'],
      [owner, '{"text":"hello"}'],
      ['', '{"text":"hello!"}'],
    ]);
    const backendLive = await a.next((f) => f.type === 'message_edited' && f.data.text === 'hello!!');
    assert.equal(backendLive.editor_id, undefined);

    // The history frame shows the edit state and the trail.
    const h = await a.request({ type: 'history', room_id: room });
    const hm = h.messages.find((m) => m.id === sent.message_id);
    assert.deepEqual(hm.data, { text: 'hello!!' });
    assert.match(hm.edited_at, RFC3339);
    assert.equal(hm.edits.length, 3);
    assert.deepEqual(hm.edits[0].previous_data, { text: 'helo' });
    assert.equal(hm.edits[0].editor_id, alice);
    assert.equal(hm.edits[2].editor_id, undefined);
    assert.match(hm.edits[0].edited_at, RFC3339);

    await rejectsWith(
      msgs('EditMessage', { room_id: room, message_id: sent.message_id, editor_id: carol, data: json(1) }),
      status.PERMISSION_DENIED,
      'permission_denied'
    );
    await rejectsWith(
      msgs('EditMessage', { room_id: room, message_id: sent.message_id, editor_id: uniq('stranger'), data: json(1) }),
      status.NOT_FOUND,
      'not_room_member'
    );
    await rejectsWith(
      msgs('EditMessage', { room_id: room, message_id: 'm-missing', editor_id: alice, data: json(1) }),
      status.NOT_FOUND,
      'message_not_found'
    );
    await rejectsWith(
      msgs('EditMessage', { room_id: uniq('none'), message_id: sent.message_id, data: json(1) }),
      status.NOT_FOUND,
      'room_not_found'
    );
    await rejectsWith(
      msgs('EditMessage', { room_id: room, message_id: sent.message_id, data: Buffer.from('nope') }),
      status.INVALID_ARGUMENT,
      'invalid_message'
    );
    await rejectsWith(msgs('EditMessage', { room_id: room, message_id: '', data: json(1) }), status.INVALID_ARGUMENT, 'invalid_message');
    // Nothing changed by the refusals.
    const g = await msgs('GetHistory', { room_id: room });
    assert.deepEqual(parse(g.messages[0].data), { text: 'hello!!' });
    assert.equal(g.messages[0].edits.length, 3);
    void bob;
  });

  it('DeleteMessage leaves a tombstone; live message_deleted; permissions; idempotent', async () => {
    const { room, owner, alice, bob, a, b } = await setup('del');
    const m1 = await post(room, alice, { text: 'secret' });
    const m2 = await post(room, bob, { text: 'bob says' });
    await a.next({ type: 'message', seq: m2.seq });
    await msgs('AddReaction', { room_id: room, message_id: m1.message_id, user_id: bob, emoji: 'x' });
    await msgs('EditMessage', { room_id: room, message_id: m1.message_id, editor_id: alice, data: json({ text: 'secret2' }) });

    await rejectsWith(
      msgs('DeleteMessage', { room_id: room, message_id: m1.message_id, deleter_id: bob }),
      status.PERMISSION_DENIED,
      'permission_denied'
    );
    const t0 = Date.now();
    assert.deepEqual(await msgs('DeleteMessage', { room_id: room, message_id: m1.message_id, deleter_id: alice }), {});
    const live = await a.next({ type: 'message_deleted' });
    F.assertFrame(live, { type: 'message_deleted', room_id: room, id: m1.message_id, seq: m1.seq, deleter_id: alice, deleted_at: F.TS });
    assert.deepEqual((await b.next((e) => e.event === 'message_deleted')).data, live);

    // Tombstone in gRPC history: deleted, deleted_at, no data, no trail, no reactions.
    const g = await msgs('GetHistory', { room_id: room });
    assert.deepEqual(g.messages.map((m) => m.seq), [m1.seq, m2.seq]);
    const t = g.messages[0];
    assert.equal(t.deleted, true);
    assert.ok(t.deleted_at >= t0 - 5000, `deleted_at ${t.deleted_at}`);
    assert.equal(t.data.length, 0);
    assert.deepEqual(t.edits, []);
    assert.deepEqual(t.reactions, []);
    assert.equal(t.user_id, alice);
    assert.equal(g.messages[1].deleted, false);

    // ... and in the client history frame, and in join recovery.
    const h = await a.request({ type: 'history', room_id: room });
    const ht = h.messages[0];
    assert.equal(ht.deleted, true);
    assert.match(ht.deleted_at, RFC3339);
    assert.equal('data' in ht, false);
    assert.equal('edits' in ht, false);
    const late = await ws(uniq('late'));
    late.send({ type: 'join', room_id: room, since: 0, ref: 'j' });
    await late.next({ type: 'ack', ref: 'j' });
    const rec = await late.next({ type: 'message', seq: m1.seq });
    assert.equal(rec.deleted, true);
    assert.equal('data' in rec, false);

    // Deleting again answers OK and sends nothing; editing or reacting to a tombstone: not found.
    assert.deepEqual(await msgs('DeleteMessage', { room_id: room, message_id: m1.message_id }), {});
    await a.none({ type: 'message_deleted' }, 300);
    await rejectsWith(
      msgs('EditMessage', { room_id: room, message_id: m1.message_id, data: json(1) }),
      status.NOT_FOUND,
      'message_not_found'
    );
    await rejectsWith(
      msgs('AddReaction', { room_id: room, message_id: m1.message_id, user_id: bob, emoji: 'x' }),
      status.NOT_FOUND,
      'message_not_found'
    );
    // The owner may delete others' messages; the backend too.
    await msgs('DeleteMessage', { room_id: room, message_id: m2.message_id, deleter_id: owner });
    const byOwner = await a.next({ type: 'message_deleted', id: m2.message_id });
    assert.equal(byOwner.deleter_id, owner);
    const m3 = await post(room, bob, { text: 'third' });
    await msgs('DeleteMessage', { room_id: room, message_id: m3.message_id });
    assert.equal((await a.next({ type: 'message_deleted', id: m3.message_id })).deleter_id, undefined);

    await rejectsWith(msgs('DeleteMessage', { room_id: room, message_id: 'm-missing' }), status.NOT_FOUND, 'message_not_found');
    await rejectsWith(msgs('DeleteMessage', { room_id: uniq('none'), message_id: m1.message_id }), status.NOT_FOUND, 'room_not_found');
    await rejectsWith(
      msgs('DeleteMessage', { room_id: room, message_id: m1.message_id, deleter_id: uniq('stranger') }),
      status.NOT_FOUND,
      'not_room_member'
    );
    await rejectsWith(msgs('DeleteMessage', { room_id: room, message_id: 'bad id' }), status.INVALID_ARGUMENT, 'invalid_message');
  });

  it('AddReaction / RemoveReaction: once per user and emoji; live reaction frames; errors', async () => {
    const { room, alice, bob, a, b } = await setup('react');
    const m = await post(room, alice, { text: 'react to me' });
    await a.next({ type: 'message', seq: m.seq });
    const thumbs = '\u{1F44D}';

    const r1 = await msgs('AddReaction', { room_id: room, message_id: m.message_id, user_id: bob, emoji: thumbs });
    assert.deepEqual(r1.reactions, [{ emoji: thumbs, user_ids: [bob] }]);
    assert.deepEqual(parse(r1.data), { text: 'react to me' });
    const live = await a.next({ type: 'reaction' });
    F.assertFrame(live, {
      type: 'reaction',
      room_id: room,
      id: m.message_id,
      seq: m.seq,
      emoji: thumbs,
      user_id: bob,
      added: true,
      timestamp: F.TS,
    });
    assert.deepEqual((await b.next((e) => e.event === 'reaction')).data, live);

    // Again: unchanged, no frame.
    const again = await msgs('AddReaction', { room_id: room, message_id: m.message_id, user_id: bob, emoji: thumbs });
    assert.deepEqual(again.reactions, [{ emoji: thumbs, user_ids: [bob] }]);
    await a.none({ type: 'reaction' }, 300);

    await msgs('AddReaction', { room_id: room, message_id: m.message_id, user_id: alice, emoji: thumbs });
    const r3 = await msgs('AddReaction', { room_id: room, message_id: m.message_id, user_id: alice, emoji: 'party' });
    assert.deepEqual(r3.reactions, [
      { emoji: thumbs, user_ids: [bob, alice] },
      { emoji: 'party', user_ids: [alice] },
    ]);
    const h = await a.request({ type: 'history', room_id: room });
    assert.deepEqual(h.messages[0].reactions, [
      { emoji: thumbs, user_ids: [bob, alice], count: 2 },
      { emoji: 'party', user_ids: [alice], count: 1 },
    ]);
    a.drain({ type: 'reaction' });

    const r4 = await msgs('RemoveReaction', { room_id: room, message_id: m.message_id, user_id: bob, emoji: thumbs });
    assert.deepEqual(r4.reactions, [
      { emoji: thumbs, user_ids: [alice] },
      { emoji: 'party', user_ids: [alice] },
    ]);
    F.assertFrame(await a.next({ type: 'reaction' }), {
      type: 'reaction',
      room_id: room,
      id: m.message_id,
      seq: m.seq,
      emoji: thumbs,
      user_id: bob,
      added: false,
      timestamp: F.TS,
    });
    // Removing a reaction that is not there: the message unchanged, no frame.
    const r5 = await msgs('RemoveReaction', { room_id: room, message_id: m.message_id, user_id: bob, emoji: thumbs });
    assert.deepEqual(r5.reactions, r4.reactions);
    await a.none({ type: 'reaction' }, 300);
    await msgs('RemoveReaction', { room_id: room, message_id: m.message_id, user_id: alice, emoji: 'party' });
    const g = await msgs('GetHistory', { room_id: room });
    assert.deepEqual(g.messages[0].reactions, [{ emoji: thumbs, user_ids: [alice] }]);

    const bad = (emoji) =>
      rejectsWith(msgs('AddReaction', { room_id: room, message_id: m.message_id, user_id: bob, emoji }), status.INVALID_ARGUMENT, 'invalid_message');
    await bad('');
    await bad('x'.repeat(65));
    await bad('a\u0007b');
    await bad('a\nb');
    await bad('\u0085');
    // 64 bytes is fine.
    await msgs('AddReaction', { room_id: room, message_id: m.message_id, user_id: bob, emoji: 'y'.repeat(64) });
    await rejectsWith(
      msgs('AddReaction', { room_id: room, message_id: m.message_id, user_id: '', emoji: 'x' }),
      status.INVALID_ARGUMENT,
      'invalid_message'
    );
    await rejectsWith(
      msgs('AddReaction', { room_id: room, message_id: m.message_id, user_id: uniq('stranger'), emoji: 'x' }),
      status.NOT_FOUND,
      'not_room_member'
    );
    await rejectsWith(
      msgs('RemoveReaction', { room_id: room, message_id: 'm-missing', user_id: bob, emoji: 'x' }),
      status.NOT_FOUND,
      'message_not_found'
    );
    await rejectsWith(
      msgs('AddReaction', { room_id: uniq('none'), message_id: m.message_id, user_id: bob, emoji: 'x' }),
      status.NOT_FOUND,
      'room_not_found'
    );
  });

  it('SearchMessages: case-insensitive words over data text, newest first, scoped by room or user', async () => {
    const token = `zq${process.pid}x${Date.now() % 100000}`;
    const up = token.toUpperCase();
    const r1 = uniq('search1');
    const r2 = uniq('search2');
    const u1 = uniq('searcher');
    await createRoom(sys, r1);
    await createRoom(sys, r2);
    await call(sys.api.rooms, 'JoinRoom', { room_id: r1, user_id: u1 });
    const a1 = await post(r1, u1, { text: `Hello ${up} world` });
    await post(r1, u1, { text: 'unrelated' });
    await sleep(5);
    const a2 = await post(r2, '', { nested: { list: ['x', `say ${token}!`] } });
    await sleep(5);
    const a3 = await post(r1, u1, `${token} plain string`);
    const gone = await post(r1, u1, { text: `${token} deleted` });
    await msgs('DeleteMessage', { room_id: r1, message_id: gone.message_id });
    // Keys and non-string values are not searched.
    await post(r1, u1, { [token]: 1 });

    const ids = (r) => r.messages.map((m) => m.id);
    const all = await msgs('SearchMessages', { query: token.toLowerCase() });
    assert.deepEqual(ids(all), [a3.message_id, a2.message_id, a1.message_id]);
    assert.deepEqual(parse(all.messages[1].data), { nested: { list: ['x', `say ${token}!`] } });
    assert.deepEqual(ids(await msgs('SearchMessages', { query: up, room_id: r1 })), [a3.message_id, a1.message_id]);
    assert.deepEqual(ids(await msgs('SearchMessages', { query: token, limit: 1 })), [a3.message_id]);
    // user_id: only the rooms that user belongs to.
    assert.deepEqual(ids(await msgs('SearchMessages', { query: token, user_id: u1 })), [a3.message_id, a1.message_id]);
    assert.deepEqual(ids(await msgs('SearchMessages', { query: token, user_id: uniq('nobody') })), []);
    assert.deepEqual(ids(await msgs('SearchMessages', { query: 'no-such-text-anywhere-' + token })), []);

    // Several words: each must appear, in any order, in any string of data.
    const w = await post(r2, '', { title: `brave ${token}`, body: 'NEW world' });
    assert.deepEqual(ids(await msgs('SearchMessages', { query: `world  ${token}\tbrave`, room_id: r2 })), [w.message_id]);
    assert.deepEqual(ids(await msgs('SearchMessages', { query: `world ${token} planet`, room_id: r2 })), []);
    await rejectsWith(msgs('SearchMessages', { query: '  \t ' }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(msgs('SearchMessages', { query: 'a '.repeat(17) }), status.INVALID_ARGUMENT, 'invalid_message');

    await rejectsWith(msgs('SearchMessages', { query: token, room_id: r2, user_id: u1 }), status.NOT_FOUND, 'not_room_member');
    await rejectsWith(msgs('SearchMessages', { query: token, room_id: uniq('none') }), status.NOT_FOUND, 'room_not_found');
    await rejectsWith(msgs('SearchMessages', { query: '' }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(msgs('SearchMessages', { query: 'q'.repeat(257) }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(msgs('SearchMessages', { query: token, limit: -1 }), status.INVALID_ARGUMENT, 'invalid_message');
    await rejectsWith(msgs('SearchMessages', { query: token, room_id: 'bad room' }), status.INVALID_ARGUMENT, 'invalid_message');
  });

  it('client frames edit, delete, react over WebSocket and SSE POST', async () => {
    const { room, alice, bob, a, b } = await setup('frames');
    const q = { query: `user_id=${bob}` };
    const bobPost = (frame) => ssePost(sys.httpBase, b.connected.connection_id, frame, q);
    const ack = await a.request({ type: 'message', room_id: room, data: { text: 'frame me' } });
    const id = ack.id;
    await a.next({ type: 'message', seq: ack.seq });

    // Raw text, so that the number's form is ours: data is spliced exactly as sent.
    a.send(`{"type":"edit","room_id":"${room}","message_id":"${id}","data":{"text":"framed","n":1.50},"ref":"e1"}`);
    F.assertFrame(await a.next({ ref: 'e1' }), { type: 'ack', ref: 'e1' });
    const ed = await b.next((e) => e.event === 'message_edited');
    F.assertFrame(ed.data, {
      type: 'message_edited',
      room_id: room,
      id,
      seq: ack.seq,
      user_id: alice,
      editor_id: alice,
      data: { text: 'framed', n: 1.5 },
      edited_at: F.TS,
    });
    assert.match(ed.raw, /"n":1\.50/, 'data spliced as sent');

    // bob reacts through SSE POST; everyone sees it; remove: true takes it back.
    const r = await bobPost({ type: 'react', room_id: room, message_id: id, emoji: '\u{1F389}', ref: 'r1' });
    assert.equal(r.status, 200, r.body);
    F.assertFrame(r.frame, { type: 'ack', ref: 'r1' });
    F.assertFrame(await a.next({ type: 'reaction' }), {
      type: 'reaction',
      room_id: room,
      id,
      seq: ack.seq,
      emoji: '\u{1F389}',
      user_id: bob,
      added: true,
      timestamp: F.TS,
    });
    assert.equal((await bobPost({ type: 'react', room_id: room, message_id: id, emoji: '\u{1F389}', remove: true })).status, 200);
    assert.equal((await a.next({ type: 'reaction' })).added, false);

    // bob may not edit or delete alice's message; a stranger is not a member.
    const denied = await bobPost({ type: 'delete', room_id: room, message_id: id, ref: 'd0' });
    assert.equal(denied.status, 403, denied.body);
    F.assertError(denied.frame, 'permission_denied', 'd0');
    F.assertError(await a.request({ type: 'edit', room_id: room, message_id: 'm-nothere', data: 1, ref: 'x1' }), 'message_not_found', 'x1');
    const stranger = await ws(uniq('stranger'));
    F.assertError(await stranger.request({ type: 'react', room_id: room, message_id: id, emoji: 'x', ref: 's1' }), 'not_room_member', 's1');
    F.assertError(await a.request({ type: 'edit', room_id: room, data: 1, ref: 'v1' }), 'invalid_message', 'v1');
    F.assertError(await a.request({ type: 'edit', room_id: room, message_id: id, ref: 'v2' }), 'invalid_message', 'v2');
    F.assertError(await a.request({ type: 'react', room_id: room, message_id: id, emoji: 'a\u0001', ref: 'v3' }), 'invalid_message', 'v3');
    F.assertError(await a.request({ type: 'react', room_id: room, message_id: id, emoji: 'x', remove: 1, ref: 'v4' }), 'invalid_message', 'v4');
    F.assertError(await a.request({ type: 'delete', room_id: room, message_id: 'bad id', ref: 'v5' }), 'invalid_message', 'v5');

    F.assertFrame(await a.request({ type: 'delete', room_id: room, message_id: id, ref: 'd1' }), { type: 'ack', ref: 'd1' });
    F.assertFrame((await b.next((e) => e.event === 'message_deleted')).data, {
      type: 'message_deleted',
      room_id: room,
      id,
      seq: ack.seq,
      deleter_id: alice,
      deleted_at: F.TS,
    });
    const h = await a.request({ type: 'history', room_id: room });
    assert.equal(h.messages[0].deleted, true);
  });

  it('archived rooms: history readable, edits, reactions and saves refused, deletion allowed', async (t) => {
    const { room, alice, a } = await setup('arch');
    const m = await post(room, alice, { text: 'before archiving' });
    await a.next({ type: 'message', seq: m.seq });
    try {
      await call(sys.api.rooms, 'ArchiveRoom', { room_id: room });
    } catch (e) {
      if (e.code === status.UNIMPLEMENTED) {
        t.skip('ArchiveRoom is not implemented on this branch');
        return;
      }
      throw e;
    }
    const archived = (p) => rejectsWith(p, status.FAILED_PRECONDITION, 'room_archived');
    await archived(msgs('EditMessage', { room_id: room, message_id: m.message_id, editor_id: alice, data: json(1) }));
    await archived(msgs('AddReaction', { room_id: room, message_id: m.message_id, user_id: alice, emoji: 'x' }));
    await archived(msgs('SaveMessage', { room_id: room, data: json(1) }));
    assert.equal((await msgs('GetHistory', { room_id: room })).messages.length, 1);
    await msgs('DeleteMessage', { room_id: room, message_id: m.message_id });
    assert.equal((await msgs('GetHistory', { room_id: room })).messages[0].deleted, true);
  });

  stopsCleanly(shutdown);
});

describe('history retention cleaner', { timeout: 120000 }, () => {
  let sys;
  const clients = [];

  before(async () => {
    sys = await startSystem({ cpArgs: ['--message-retention-ms', '1500', '--retention-interval-ms', '200'] });
  });

  const shutdown = async () => {
    for (const c of clients) await c.close();
    if (sys) await sys.stop();
  };
  after(shutdown);

  it('removes messages older than message_retention_ms; newer ones stay; recovery reports history_gap', async () => {
    const room = uniq('ret');
    await createRoom(sys, room);
    const send = (i) => call(sys.api.messages, 'BroadcastToRoom', { room_id: room, data: json({ i }) });
    await send(1);
    await send(2);
    await sleep(1000);
    await send(3);
    const seqs = async () => (await call(sys.api.messages, 'GetHistory', { room_id: room })).messages.map((m) => m.seq);
    assert.deepEqual(await seqs(), [1, 2, 3]);
    // 1 and 2 pass 1.5 s about 0.5 s from now; 3 a second later. Poll in between.
    const end = Date.now() + 4000;
    let got;
    while (Date.now() < end) {
      got = await seqs();
      if (got.length < 3) break;
      await sleep(50);
    }
    assert.deepEqual(got, [3], 'the two old messages go together, the new one stays');
    // Search stays within retention too.
    const token = `ret${process.pid}`;
    await call(sys.api.messages, 'BroadcastToRoom', { room_id: room, data: json(token) });
    assert.equal((await call(sys.api.messages, 'SearchMessages', { query: token, room_id: room })).messages.length, 1);

    const c = await WsClient.connect(sys.wsUrl(uniq('reader')));
    clients.push(c);
    c.send({ type: 'join', room_id: room, since: 1, ref: 'g' });
    F.assertFrame(await c.next(), { type: 'ack', ref: 'g', room_id: room });
    F.assertError(await c.next(), 'history_gap', 'g');

    // Eventually everything is gone, seqs keep counting.
    const end2 = Date.now() + 5000;
    while (Date.now() < end2 && (await seqs()).length > 0) await sleep(100);
    assert.deepEqual(await seqs(), []);
    assert.equal((await send(5)).seq, 5);
    assert.deepEqual(await seqs(), [5]);
  });

  stopsCleanly(shutdown);
});

describe('SaveMessage with history off (--max-history-messages 0)', { timeout: 60000 }, () => {
  let sys;
  before(async () => {
    sys = await startSystem({ cpArgs: ['--max-history-messages', '0'] });
  });
  const shutdown = async () => {
    if (sys) await sys.stop();
  };
  after(shutdown);

  it('answers the message it was given (seq advances, nothing kept)', async () => {
    const room = uniq('nohist');
    await createRoom(sys, room);
    const req = { room_id: room, user_id: 'u1', data: json({ a: 1 }), thread_id: 't', metadata: { k: 'v' } };
    const m1 = await call(sys.api.messages, 'SaveMessage', req);
    const m2 = await call(sys.api.messages, 'SaveMessage', req);
    assert.deepEqual([m1.seq, m2.seq], [1, 2]);
    assert.notEqual(m1.id, m2.id);
    assert.deepEqual(m2.metadata, { k: 'v' });
    assert.equal(m2.thread_id, 't');
    assert.deepEqual(parse(m2.data), { a: 1 });
    assert.ok(m2.timestamp > 0);
    assert.deepEqual((await call(sys.api.messages, 'GetHistory', { room_id: room })).messages, []);
  });

  stopsCleanly(shutdown);
});

// etcd only: the replicas share one store; a change made through either replica reaches the
// members on both data planes exactly once (the replica that made it sends the frame).
describe('history operations across 2 control planes (etcd)', { timeout: 120000, skip: process.env.SB_IT_STORE !== 'etcd' && 'needs SB_IT_STORE=etcd' }, () => {
  const { Cluster } = require('../lib/cluster');
  let cl;
  const clients = [];

  before(async () => {
    cl = await new Cluster({
      cps: 2,
      dps: 2,
      leaseTtlMs: 3000,
      cpArgs: ['--message-retention-ms', '4000', '--retention-interval-ms', '200'],
    }).start();
  });

  const shutdown = async () => {
    for (const c of clients) await c.close();
    if (cl) await cl.stop();
  };
  after(shutdown);

  it('edit, react and delete through either replica: each frame once on both nodes', async () => {
    const [cp1, cp2] = cl.cps;
    const [dp1, dp2] = cl.dps;
    const room = uniq('hcl');
    const alice = uniq('alice');
    const bob = uniq('bob');
    await call(cp1.api.rooms, 'CreateRoom', { id: room, name: room });
    const a = await WsClient.connect(dp1.wsUrl(alice));
    const b = await WsClient.connect(dp2.wsUrl(bob));
    clients.push(a, b);
    assert.equal((await a.request({ type: 'join', room_id: room })).type, 'ack');
    assert.equal((await b.request({ type: 'join', room_id: room })).type, 'ack');
    const sent = await call(cp2.api.messages, 'BroadcastToRoom', { room_id: room, user_id: alice, data: json({ t: 1 }) });
    for (const c of [a, b]) await c.next({ type: 'message', seq: sent.seq });

    await call(cp2.api.messages, 'EditMessage', { room_id: room, message_id: sent.message_id, editor_id: alice, data: json({ t: 2 }) });
    await call(cp1.api.messages, 'AddReaction', { room_id: room, message_id: sent.message_id, user_id: bob, emoji: 'ok' });
    F.assertFrame(await b.request({ type: 'react', room_id: room, message_id: sent.message_id, emoji: 'yes', ref: 'r' }), { type: 'ack', ref: 'r' });
    await call(cp1.api.messages, 'DeleteMessage', { room_id: room, message_id: sent.message_id, deleter_id: alice });
    for (const c of [a, b]) {
      assert.deepEqual((await c.next({ type: 'message_edited' })).data, { t: 2 });
      assert.equal((await c.next({ type: 'reaction', emoji: 'ok' })).user_id, bob);
      assert.equal((await c.next({ type: 'reaction', emoji: 'yes' })).user_id, bob);
      assert.equal((await c.next({ type: 'message_deleted' })).id, sent.message_id);
    }
    for (const c of [a, b]) await c.none((f) => ['message_edited', 'reaction', 'message_deleted'].includes(f.type), 400);
    // Both replicas read the tombstone.
    for (const cp of [cp1, cp2]) {
      const h = await call(cp.api.messages, 'GetHistory', { room_id: room });
      assert.equal(h.messages[0].deleted, true);
    }
    const saved = await call(cp1.api.messages, 'SaveMessage', { room_id: room, user_id: bob, data: json('quiet') });
    assert.equal(saved.seq, sent.seq + 1);
    for (const c of [a, b]) await c.none({ type: 'message' }, 300);
  });

  it('the retention cleaner runs on one replica only (the presence leader)', async () => {
    const [cp1, cp2] = cl.cps;
    const room = uniq('hclret');
    await call(cp1.api.rooms, 'CreateRoom', { id: room, name: room });
    await call(cp2.api.messages, 'BroadcastToRoom', { room_id: room, data: json('old') });
    const end = Date.now() + 9000;
    let n = 1;
    while (Date.now() < end && n > 0) {
      await sleep(200);
      n = (await call(cp2.api.messages, 'GetHistory', { room_id: room })).messages.length;
    }
    assert.equal(n, 0, 'trimmed after 4 s');
    assert.equal((await call(cp1.api.messages, 'GetHistory', { room_id: room })).messages.length, 0);
    const cleaned = [cp1, cp2].map((cp) => /retention: old messages removed/.test(cp.log()));
    assert.equal(cleaned.filter(Boolean).length, 1, `replicas that trimmed: ${JSON.stringify(cleaned)}`);
  });

  stopsCleanly(shutdown);
});
