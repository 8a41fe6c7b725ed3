// unauthorized: a data plane without --dev-mode refuses ?user_id=, and a dev-mode data plane
// refuses a connection that names no user. Either the upgrade is refused with 401/403, or the
// socket gets an `unauthorized` error frame and closes with 1008 (PROTOCOL.md).
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { startSystem, httpGet, stopsCleanly } = require('../lib/harness');
const { SseClient } = require('../lib/sseclient');

// Opens a WebSocket and reports what happened: {status} for a refused upgrade, or the frames
// and the close code of an accepted one.
function attempt(url) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { handshakeTimeout: 5000 });
    const frames = [];
    const timer = setTimeout(() => {
      ws.terminate();
      resolve({ frames, timeout: true });
    }, 5000);
    ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        clearTimeout(timer);
        ws.terminate();
        resolve({ status: res.statusCode, body });
      });
    });
    ws.on('message', (d) => {
      try {
        frames.push(JSON.parse(d.toString()));
      } catch (_) {
        frames.push({ raw: d.toString() });
      }
    });
    ws.on('close', (code) => {
      clearTimeout(timer);
      resolve({ frames, code });
    });
    ws.on('error', () => {});
  });
}

function assertUnauthorized(r, what) {
  if (r.status !== undefined) {
    assert.ok(r.status === 401 || r.status === 403, `${what}: upgrade answered ${r.status}`);
    if (r.body) {
      let f = null;
      try {
        f = JSON.parse(r.body);
      } catch (_) {
        /* a plain body is fine */
      }
      if (f) assert.equal(f.code, 'unauthorized', `${what}: ${r.body}`);
    }
    return;
  }
  assert.ok(!r.timeout, `${what}: neither refused nor closed within 5 s: ${JSON.stringify(r.frames)}`);
  assert.ok(!r.frames.some((f) => f.type === 'connected'), `${what}: got a connected frame`);
  const err = r.frames.find((f) => f.type === 'error');
  assert.ok(err, `${what}: no error frame before close: ${JSON.stringify(r)}`);
  assert.equal(err.code, 'unauthorized', JSON.stringify(err));
  assert.equal(r.code, 1008, `${what}: close code ${r.code}`);
}

describe('unauthorized', { timeout: 60000 }, () => {
  describe('data plane without --dev-mode', () => {
    let sys;
    before(async () => {
      sys = await startSystem({ devMode: false });
    });
    const shutdown = async () => {
      if (sys) await sys.stop();
    };
    after(shutdown);

    it('refuses ?user_id= on /ws', async () => {
      assertUnauthorized(await attempt(sys.wsUrl('mallory')), 'no dev mode');
    });

    it('refuses a connection without credentials', async () => {
      assertUnauthorized(await attempt(`${sys.wsBase}/ws`), 'no credentials');
    });

    it('refuses /sse?user_id= with 401 and an unauthorized body', async () => {
      const c = new SseClient(`${sys.httpBase}/sse?user_id=mallory`);
      await c.response;
      assert.equal(c.status, 401);
      c.close();
    });

    it('still serves health probes', async () => {
      assert.equal((await httpGet(`${sys.httpBase}/healthz`)).status, 200);
      assert.equal((await httpGet(`${sys.httpBase}/readyz`)).status, 200);
    });

    stopsCleanly(shutdown);
  });

  describe('dev-mode data plane', () => {
    let sys;
    before(async () => {
      sys = await startSystem();
    });
    const shutdown = async () => {
      if (sys) await sys.stop();
    };
    after(shutdown);

    it('refuses a WebSocket without user_id', async () => {
      assertUnauthorized(await attempt(`${sys.wsBase}/ws`), 'missing user_id');
    });

    it('refuses an invalid user_id', async () => {
      const r = await attempt(`${sys.wsBase}/ws?user_id=${encodeURIComponent('bad user!')}`);
      assertUnauthorized(r, 'invalid user_id');
    });

    it('refuses an SSE stream without user_id', async () => {
      const c = new SseClient(`${sys.httpBase}/sse`);
      await c.response;
      assert.equal(c.status, 401);
      c.close();
    });

    it('serves /metrics as Prometheus text', async () => {
      const m = await httpGet(`${sys.httpBase}/metrics`);
      assert.equal(m.status, 200);
      assert.match(m.headers['content-type'], /^text\/plain/);
      assert.match(m.body, /^# (HELP|TYPE) /m);
    });

    it('answers 404 for unknown paths and serves the page at /', async () => {
      assert.equal((await httpGet(`${sys.httpBase}/no/such/path`)).status, 404);
      const page = await httpGet(`${sys.httpBase}/`);
      assert.equal(page.status, 200);
      assert.match(page.headers['content-type'], /text\/html/);
      assert.match(page.body, /<script[^>]+src=/);
      assert.ok(!/<script>[^<]/.test(page.body), 'no inline script');
    });

    stopsCleanly(shutdown);
  });
});
