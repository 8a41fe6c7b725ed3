// WebSocket message reassembly against hostile frame sequences (raw sockets, real data plane):
// a continuation frame announcing 2^63-1 bytes, many small fragments past the hard limit, a
// fragmented message at the soft limit, control frames between fragments. The data plane must
// close with 1009 past the hard limit (counting the whole fragmented message) and never buffer
// what it will not accept: its RSS stays flat while the attacker keeps streaming.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { startSystem, stopsCleanly } = require('../lib/harness');
const { RawWs, OP } = require('../lib/rawws');
const { uniq } = require('../lib/util');

const MAX_FRAME = 81920; // the data plane's default max_frame_size
const HARD = 1048576; // and hard_frame_limit

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

// A `ping` frame padded with JSON whitespace to exactly n bytes.
function pingOf(n, ref) {
  const head = `{"type":"ping","ref":"${ref}"`;
  return Buffer.from(head + ' '.repeat(n - head.length - 1) + '}');
}

describe('websocket reassembly limits', { timeout: 120000 }, () => {
  let sys;
  let port;
  const socks = [];

  async function open() {
    const ws = await RawWs.connect(port, `/ws?user_id=${uniq('raw')}`);
    socks.push(ws);
    assert.ok(await ws.until(() => ws.texts.some((t) => t.type === 'connected'), 5000), 'no connected frame');
    return ws;
  }

  before(async () => {
    sys = await startSystem();
    port = Number(new URL(sys.httpBase).port);
  });

  const shutdown = async () => {
    for (const s of socks) s.destroy();
    if (sys) await sys.stop();
  };
  after(shutdown);

  it('a continuation announcing 2^63-1 bytes: closed with 1009 at once, RSS stays flat while the client streams', async () => {
    const ws = await open();
    // Warm up the allocator so the baseline is not the first large buffer ever made.
    await ws.frame(true, OP.TEXT, pingOf(MAX_FRAME, 'warm'));
    assert.ok(await ws.until(() => ws.texts.some((t) => t.type === 'pong' && t.ref === 'warm'), 5000));
    const before = rssKiB(sys.dp.pid);
    await ws.frame(false, OP.TEXT, '{"type":"'); // 9 bytes, FIN=0
    await ws.frameHeader(true, OP.CONT, 0x7fffffffffffffffn);
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let sent = 0;
    const LIMIT = 256 * 1024 * 1024;
    const t0 = Date.now();
    // Stream spaces as the reported attacker did, until the close frame arrives, the socket
    // ends, or 256 MiB went out (which only an unfixed data plane takes in).
    while (!ws.close && !ws.ended && sent < LIMIT && Date.now() - t0 < 30000) {
      if (!(await ws.payload(chunk))) break;
      sent += chunk.length;
    }
    const after = rssKiB(sys.dp.pid);
    assert.ok(await ws.until(() => ws.close !== null, 5000), `no close frame after ${sent} bytes`);
    assert.equal(ws.close.code, 1009, JSON.stringify(ws.close));
    assert.ok(sent < 64 * 1024 * 1024, `the data plane took ${sent} bytes before closing`);
    assert.ok(after - before < 16 * 1024, `RSS grew from ${before} KiB to ${after} KiB`);
  });

  it('many small fragments adding up past the hard limit: closed with 1009', async () => {
    const ws = await open();
    const before = rssKiB(sys.dp.pid);
    await ws.frame(false, OP.TEXT, '{"type":"ping","ref":"f"');
    const frag = Buffer.alloc(1000, 0x20);
    let n = 0;
    while (!ws.close && !ws.ended && n < 2 * HARD / frag.length) {
      await ws.frame(false, OP.CONT, frag);
      n += 1;
    }
    assert.ok(await ws.until(() => ws.close !== null, 5000), `no close after ${n} fragments`);
    assert.equal(ws.close.code, 1009);
    // The close comes once the total passes the limit, not at the first fragment.
    assert.ok(n * frag.length >= HARD - MAX_FRAME, `closed after only ${n} fragments`);
    assert.ok(rssKiB(sys.dp.pid) - before < 16 * 1024, 'RSS grew');
    assert.ok(!ws.texts.some((t) => t.type === 'pong' && t.ref === 'f'));
  });

  it('a fragmented message at the soft limit is answered; one byte more is message_too_large and the socket stays open', async () => {
    const ws = await open();
    const exact = pingOf(MAX_FRAME, 'exact');
    const step = 7001; // fragments of odd sizes, the last one short
    for (let o = 0; o < exact.length; o += step) {
      const end = Math.min(o + step, exact.length);
      await ws.frame(end === exact.length, o === 0 ? OP.TEXT : OP.CONT, exact.subarray(o, end));
    }
    assert.ok(await ws.until(() => ws.texts.some((t) => t.type === 'pong' && t.ref === 'exact'), 5000), 'no pong');
    const over = pingOf(MAX_FRAME + 1, 'over');
    await ws.frame(false, OP.TEXT, over.subarray(0, 50000));
    await ws.frame(true, OP.CONT, over.subarray(50000));
    assert.ok(await ws.until(() => ws.texts.some((t) => t.type === 'error'), 5000), 'no error');
    const err = ws.texts.find((t) => t.type === 'error');
    assert.equal(err.code, 'message_too_large');
    // Just under the hard limit, fragmented: refused the same way, not closed.
    const big = pingOf(HARD, 'big');
    for (let o = 0; o < big.length; o += 65536) {
      const end = Math.min(o + 65536, big.length);
      await ws.frame(end === big.length, o === 0 ? OP.TEXT : OP.CONT, big.subarray(o, end));
    }
    assert.ok(await ws.until(() => ws.texts.filter((t) => t.type === 'error').length === 2, 5000));
    await ws.frame(true, OP.TEXT, pingOf(40, 'still'));
    assert.ok(await ws.until(() => ws.texts.some((t) => t.type === 'pong' && t.ref === 'still'), 5000));
    assert.equal(ws.close, null);
  });

  it('control frames between fragments are answered and do not break the message', async () => {
    const ws = await open();
    const msg = pingOf(3000, 'mixed');
    await ws.frame(false, OP.TEXT, msg.subarray(0, 1000));
    await ws.frame(true, OP.PING, 'a');
    await ws.frame(false, OP.CONT, msg.subarray(1000, 2000));
    await ws.frame(true, OP.PONG, 'b'); // unsolicited pong: allowed, ignored
    await ws.frame(true, OP.PING, 'c');
    await ws.frame(true, OP.CONT, msg.subarray(2000));
    assert.ok(await ws.until(() => ws.pongs >= 2, 5000), `pongs: ${ws.pongs}`);
    assert.ok(await ws.until(() => ws.texts.some((t) => t.type === 'pong' && t.ref === 'mixed'), 5000), JSON.stringify(ws.texts));
    assert.equal(ws.texts.filter((t) => t.type === 'error').length, 0, JSON.stringify(ws.texts));
    assert.equal(ws.close, null);
  });

  stopsCleanly(shutdown);
});
