// Two WebSocket clients in one room exchange 1,000 messages: every member sees all of them,
// with strictly increasing, gap-free seq and the same order; every ack matches a delivery.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startSystem, stopsCleanly } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const { createRoom } = require('../lib/util');
const { call } = require('../lib/grpc');

const TOTAL = 1000;
const WINDOW = 50; // requests in flight per sender

describe('ordering', { timeout: 120000 }, () => {
  let sys;
  const clients = [];

  before(async () => {
    // Flat out from two users: no per-user rate limit here (limits.test.js tests it).
    sys = await startSystem({ cpArgs: ['--max-messages-per-second', '0'] });
  });

  const shutdown = async () => {
    for (const c of clients) await c.close();
    if (sys) await sys.stop();
  };
  after(shutdown);

  it(`two clients exchange ${TOTAL} messages: gap-free increasing seq, nothing lost`, async () => {
    await createRoom(sys, 'order');
    const a = await WsClient.connect(sys.wsUrl('ord-a'));
    const b = await WsClient.connect(sys.wsUrl('ord-b'));
    clients.push(a, b);
    for (const c of [a, b]) assert.equal((await c.request({ type: 'join', room_id: 'order' })).type, 'ack');
    a.drain();
    b.drain();

    // Both send concurrently, each with a bounded window of unacknowledged frames.
    async function sender(c, tag, count) {
      const acks = [];
      let next = 0;
      const inflight = new Set();
      while (next < count || inflight.size) {
        while (next < count && inflight.size < WINDOW) {
          const i = next++;
          const p = c.request({ type: 'message', room_id: 'order', data: { from: tag, i } }, 20000).then((ack) => {
            inflight.delete(p);
            assert.equal(ack.type, 'ack', JSON.stringify(ack));
            acks.push({ i, id: ack.id, seq: ack.seq });
          });
          inflight.add(p);
        }
        await Promise.race(inflight);
      }
      return acks;
    }
    const t0 = Date.now();
    const [acksA, acksB] = await Promise.all([sender(a, 'a', TOTAL / 2), sender(b, 'b', TOTAL / 2)]);

    // Both receive all TOTAL deliveries (their own included).
    async function collect(c) {
      const got = [];
      while (got.length < TOTAL) got.push(await c.next({ type: 'message', room_id: 'order' }, 20000));
      return got;
    }
    const [gotA, gotB] = await Promise.all([collect(a), collect(b)]);
    const elapsed = Date.now() - t0;

    for (const [name, got] of [['a', gotA], ['b', gotB]]) {
      const seqs = got.map((m) => m.seq);
      assert.equal(seqs[0], 1, `${name}: first seq`);
      for (let k = 1; k < seqs.length; k++) {
        assert.equal(seqs[k], seqs[k - 1] + 1, `${name}: seq ${seqs[k]} after ${seqs[k - 1]} at #${k}`);
      }
      // Per sender, messages arrive in the order they were sent.
      for (const tag of ['a', 'b']) {
        const is = got.filter((m) => m.data.from === tag).map((m) => m.data.i);
        assert.deepEqual(is, [...Array(TOTAL / 2).keys()], `${name}: ${tag}'s messages in order`);
      }
    }
    assert.deepEqual(gotA.map((m) => m.id), gotB.map((m) => m.id), 'both members see the same order');

    const bySeq = new Map(gotA.map((m) => [m.seq, m]));
    for (const [tag, acks] of [['a', acksA], ['b', acksB]]) {
      assert.equal(acks.length, TOTAL / 2);
      for (const ack of acks) {
        const m = bySeq.get(ack.seq);
        assert.ok(m, `ack seq ${ack.seq} never delivered`);
        assert.equal(m.id, ack.id);
        assert.equal(m.data.from, tag);
        assert.equal(m.data.i, ack.i);
        assert.equal(m.user_id, `ord-${tag}`);
      }
    }
    await a.none({ type: 'message' }, 300);

    // History holds them too, in the same order.
    const h = await call(sys.api.messages, 'GetHistory', { room_id: 'order', limit: TOTAL });
    assert.deepEqual(h.messages.map((m) => m.id), gotA.map((m) => m.id));
    process.stdout.write(`# ${TOTAL} messages, 2 senders, 2 receivers: ${elapsed} ms\n`);
  });

  stopsCleanly(shutdown);
});
