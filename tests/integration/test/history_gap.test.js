// Recovery older than retention: with max_history_messages = 5, `join` with an old `since`
// answers ack, then a `history_gap` error with the same ref, then what is retained, in order.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startSystem, stopsCleanly } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const F = require('../lib/frames');
const { createRoom } = require('../lib/util');
const { call } = require('../lib/grpc');

describe('history retention', { timeout: 60000 }, () => {
  let sys;
  const clients = [];

  before(async () => {
    sys = await startSystem({ cpArgs: ['--max-history-messages', '5'] });
  });

  const shutdown = async () => {
    for (const c of clients) await c.close();
    if (sys) await sys.stop();
  };
  after(shutdown);

  it('join since an evicted seq: ack, history_gap, then the retained messages', async () => {
    await createRoom(sys, 'gap');
    const w = await WsClient.connect(sys.wsUrl('gap-writer'));
    clients.push(w);
    await w.request({ type: 'join', room_id: 'gap' });
    for (let i = 1; i <= 10; i++) assert.equal((await w.request({ type: 'message', room_id: 'gap', data: { i } })).seq, i);

    const r = await WsClient.connect(sys.wsUrl('gap-reader'));
    clients.push(r);
    r.send({ type: 'join', room_id: 'gap', since: 2, ref: 'g' });
    F.assertFrame(await r.next(), { type: 'ack', ref: 'g', room_id: 'gap' });
    F.assertError(await r.next(), 'history_gap', 'g');
    for (let s = 6; s <= 10; s++) {
      const m = await r.next();
      assert.equal(m.type, 'message', JSON.stringify(m));
      assert.equal(m.seq, s);
      assert.deepEqual(m.data, { i: s });
    }
    await r.none({ type: 'message' }, 200);

    // since within retention: no gap.
    r.send({ type: 'join', room_id: 'gap', since: 7, ref: 'ok' });
    F.assertFrame(await r.next(), { type: 'ack', ref: 'ok', room_id: 'gap' });
    assert.deepEqual([(await r.next()).seq, (await r.next()).seq, (await r.next()).seq], [8, 9, 10]);

    // History keeps the last 5, over WebSocket and gRPC.
    const h = await r.request({ type: 'history', room_id: 'gap' });
    assert.deepEqual(h.messages.map((m) => m.seq), [6, 7, 8, 9, 10]);
    const g = await call(sys.api.messages, 'GetHistory', { room_id: 'gap' });
    assert.deepEqual(g.messages.map((m) => m.seq), [6, 7, 8, 9, 10]);
  });

  stopsCleanly(shutdown);
});
