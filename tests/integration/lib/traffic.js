// Steady room traffic for the cluster and fault tests, and the checks of what the invariants
// promise about it: every acked message stored and delivered once, one order, gap-free seq.
'use strict';

const assert = require('node:assert/strict');
const grpcApi = require('./grpc');

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Sends a `message` to `room` every `intervalMs` from WsClient `c` (without waiting for the
// previous answer) until stop() is called; every answer is recorded with its send and answer
// times. `done` resolves with the records once every answer has come (or timed out).
function publisher(c, room, tag, { intervalMs = 25, answerTimeoutMs = 30000 } = {}) {
  const records = [];
  const inflight = [];
  let stopped = false;
  let n = 0;
  const loop = (async () => {
    while (!stopped) {
      n += 1;
      const rec = { tag, n, sentAt: Date.now(), at: null, frame: null, err: null };
      records.push(rec);
      inflight.push(
        c.request({ type: 'message', room_id: room, data: { tag, n } }, answerTimeoutMs).then(
          (f) => {
            rec.at = Date.now();
            rec.frame = f;
          },
          (e) => {
            rec.at = Date.now();
            rec.err = e.message;
          }
        )
      );
      await sleep(intervalMs);
    }
    await Promise.all(inflight);
    return records;
  })();
  return {
    records,
    stop() {
      stopped = true;
      return loop;
    },
  };
}

function acked(records) {
  return records.filter((r) => r.frame && r.frame.type === 'ack');
}

function failed(records) {
  return records.filter((r) => !r.frame || r.frame.type !== 'ack');
}

// Every message of `room` in history (after_seq paging), oldest first.
async function fullHistory(api, room) {
  const out = [];
  let after = 0;
  for (let i = 0; i < 1000; i += 1) {
    const r = await grpcApi.call(api.messages, 'GetHistory', { room_id: room, limit: 1000, after_seq: after });
    if (!r.messages.length) break;
    for (const m of r.messages) out.push({ id: m.id, seq: Number(m.seq), data: m.data.toString() });
    after = out[out.length - 1].seq;
  }
  return out;
}

// The room's message frames a client received, in arrival order.
function seen(c, room) {
  return c.all.filter((f) => f && f.type === 'message' && f.room_id === room).map((f) => ({ id: f.id, seq: f.seq }));
}

// Asserts the invariants over history and what each receiver saw; returns a summary.
// `acks`: [{id, seq}] acknowledged to publishers; `receivers`: WsClients that were members all
// along (from before the first ack of `acks`).
function checkRoom({ history, acks, receivers, room }) {
  const seqs = history.map((m) => m.seq);
  for (let i = 0; i < seqs.length; i += 1) assert.equal(seqs[i], i + 1, `history seq gap-free from 1: position ${i} has seq ${seqs[i]}`);
  const byId = new Map(history.map((m) => [m.id, m.seq]));
  assert.equal(byId.size, history.length, 'history ids unique');
  // Every publish carries a unique payload: one stored twice means a re-sent publish was not
  // recognised by its idempotency key.
  const byData = new Map();
  for (const m of history) byData.set(m.data, (byData.get(m.data) || []).concat([m.seq]));
  const twice = [...byData].filter(([, v]) => v.length > 1);
  assert.equal(twice.length, 0, `publishes stored twice (data -> seqs): ${JSON.stringify(twice.slice(0, 5))}`);
  for (const a of acks) {
    assert.ok(byId.has(a.id), `acked message ${a.id} (seq ${a.seq}) is in history`);
    assert.equal(byId.get(a.id), a.seq, `acked message ${a.id}: history seq equals the ack's`);
  }
  const ackSeqs = new Set(acks.map((a) => a.seq));
  assert.equal(ackSeqs.size, acks.length, 'no seq acked twice');
  const perReceiver = [];
  for (const c of receivers) {
    const got = seen(c, room);
    const gotSeqs = got.map((m) => m.seq);
    for (let i = 1; i < gotSeqs.length; i += 1) {
      assert.ok(gotSeqs[i] > gotSeqs[i - 1], `${c.url}: seq order ${gotSeqs[i - 1]} then ${gotSeqs[i]}`);
    }
    const ids = new Set(got.map((m) => m.id));
    const holes = history.filter((m) => !ids.has(m.id) && gotSeqs.length && m.seq > gotSeqs[0] && m.seq < gotSeqs[gotSeqs.length - 1]);
    assert.equal(ids.size, got.length, `${c.url}: no message twice`);
    for (const m of got) assert.equal(byId.get(m.id), m.seq, `${c.url}: message ${m.id} seq ${m.seq} matches history`);
    const missing = acks.filter((a) => !ids.has(a.id));
    assert.equal(missing.length, 0, `${c.url}: missed acked messages ${JSON.stringify(missing.slice(0, 5))}`);
    // Everything from its first to its last message, with no hole.
    assert.equal(holes.length, 0, `${c.url}: stored messages never delivered (not acked either): ${JSON.stringify(holes.slice(0, 5))}`);
    perReceiver.push(got.length);
  }
  return { stored: history.length, acked: acks.length, perReceiver };
}

module.exports = { publisher, acked, failed, fullHistory, seen, checkRoom, sleep };
