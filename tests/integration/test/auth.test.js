// unauthorized: a data plane without --dev-mode (it needs a key source to start) refuses
// ?user_id= and a connection without a token, and a dev-mode data plane refuses a connection
// that names no user; always with HTTP 401 before any upgrade and the body
// {"type":"error","code":"unauthorized","message":...} (PROTOCOL.md). In development mode a
// token works too. The token checks themselves are in jwt.test.js.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { startSystem, httpGet, stopsCleanly } = require('../lib/harness');
const { SseClient } = require('../lib/sseclient');
const { WsClient } = require('../lib/wsclient');
const F = require('../lib/frames');
const T = require('../lib/tokens');

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

// The refusal of the contract: 401 before the upgrade, the exact JSON body.
function assertUnauthorized(r, what) {
  assert.equal(r.status, 401, `${what}: expected HTTP 401 before the upgrade, got ${JSON.stringify(r).slice(0, 500)}`);
  let f;
  try {
    f = JSON.parse(r.body);
  } catch (_) {
    assert.fail(`${what}: the 401 body is not JSON: ${JSON.stringify(r.body)}`);
  }
  F.assertFrame(f, { type: 'error', code: 'unauthorized', message: F.NONEMPTY }, {}, what);
}

// GET /sse (or any URL) for a refusal: status and body.
async function sseAttempt(url) {
  return httpGet(url, { timeout: 5000, headers: { Accept: 'text/event-stream' } });
}

describe('unauthorized', { timeout: 60000 }, () => {
  describe('data plane without --dev-mode', () => {
    let sys;
    let dir;
    before(async () => {
      dir = T.tempDir();
      const hmac = T.hmacSecret(dir);
      sys = await startSystem({ devMode: false, dpArgs: ['--jwt-hmac-secret-file', hmac.file] });
    });
    const shutdown = async () => {
      if (sys) await sys.stop();
      T.rmTempDir(dir);
      dir = null;
    };
    after(shutdown);

    it('refuses ?user_id= on /ws', async () => {
      assertUnauthorized(await attempt(sys.wsUrl('mallory')), 'no dev mode');
    });

    it('refuses a connection without credentials', async () => {
      assertUnauthorized(await attempt(`${sys.wsBase}/ws`), 'no credentials');
    });

    it('refuses /sse?user_id= and /sse without credentials with 401 and an unauthorized body', async () => {
      assertUnauthorized(await sseAttempt(`${sys.httpBase}/sse?user_id=mallory`), 'sse ?user_id=');
      assertUnauthorized(await sseAttempt(`${sys.httpBase}/sse`), 'sse without credentials');
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
      assertUnauthorized(await sseAttempt(`${sys.httpBase}/sse`), 'sse without user_id');
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

  describe('dev-mode data plane with a key source', () => {
    let sys;
    let dir;
    let hmac;
    before(async () => {
      dir = T.tempDir();
      hmac = T.hmacSecret(dir);
      sys = await startSystem({ dpArgs: ['--jwt-hmac-secret-file', hmac.file] });
    });
    const shutdown = async () => {
      if (sys) await sys.stop();
      T.rmTempDir(dir);
      dir = null;
    };
    after(shutdown);

    it('admits ?user_id= and tokens alike; a bad token is still refused', async () => {
      const a = await WsClient.connect(sys.wsUrl('dev-alice'));
      assert.equal(a.connected.user_id, 'dev-alice');
      const token = await T.mint({ key: hmac, sub: 'dev-bob' });
      const b = await WsClient.connect(`${sys.wsBase}/ws?token=${encodeURIComponent(token)}`);
      assert.equal(b.connected.user_id, 'dev-bob');
      await a.close();
      await b.close();
      const expired = await T.mint({ key: hmac, sub: 'dev-bob', exp: T.nowSec() - 3600 });
      assertUnauthorized(await attempt(`${sys.wsBase}/ws?token=${encodeURIComponent(expired)}`), 'expired token in dev mode');
    });

    stopsCleanly(shutdown);
  });
});
