// Client tokens (PROTOCOL.md, "Authentication and authorization"): data planes without
// --dev-mode verify a JWT from `Authorization: Bearer` or ?token= before any upgrade, for every
// algorithm family, with the claim checks, the hostile tokens refused, keys from files, a JWKS
// file and a JWKS URL (rotation, failed refreshes), expiry and refresh on live WebSocket and SSE
// connections, the start-up refusals and --mint-token. Keys are generated at run time.
// stores: memory
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const WebSocket = require('ws');
const EventSource = require('eventsource');
const jose = require('jose');
const { DP_BIN, Daemon, startSystem, stopsCleanly, httpGet, freePort, waitFor, sleep } = require('../lib/harness');
const { WsClient, withTimeout } = require('../lib/wsclient');
const { SseClient, ssePost } = require('../lib/sseclient');
const F = require('../lib/frames');
const T = require('../lib/tokens');
const { uniq } = require('../lib/util');

// ---------------------------------------------------------------- keys for the whole file

const K = {}; // dir, hmac, pairs by algorithm, and the data-plane options naming them

async function makeKeys() {
  K.dir = T.tempDir();
  K.hmac = T.hmacSecret(K.dir);
  K.pair = {};
  for (const alg of T.ASYMMETRIC) K.pair[alg] = await T.keyPair(alg, { dir: K.dir });
  K.stranger = await T.keyPair('ES256'); // configured nowhere
  K.args = [
    '--jwt-hmac-secret-file',
    K.hmac.file,
    '--jwt-public-key-file',
    T.ASYMMETRIC.map((a) => K.pair[a].pemFile).join(','),
  ];
}

// ---------------------------------------------------------------- helpers

const enc = encodeURIComponent;
const iso = (sec) => new Date(sec * 1000).toISOString();

// A token for a fresh user with `key` (default: the HMAC secret); `o` as for tokens.mint.
function tok(o = {}) {
  return T.mint({ key: K.hmac, sub: uniq('user'), ...o });
}

// The URLs of one data plane (the system's own, or one from addDataPlane).
function ends(x) {
  const http = x.httpBase || x.base;
  return { http, ws: http.replace(/^http/, 'ws') };
}

function credentials(token, via) {
  if (token === undefined) return { query: '', headers: {} };
  if (via === 'header') return { query: '', headers: { Authorization: `Bearer ${token}` } };
  return { query: `token=${enc(token)}`, headers: {} };
}

// Tries a WebSocket upgrade and reports {status, body} for a refusal, {status: 101} for an
// accepted one (then closed), or {error}/{timeout}.
function upgrade(url, { headers } = {}) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { handshakeTimeout: 5000, perMessageDeflate: false, headers });
    const timer = setTimeout(() => {
      ws.terminate();
      resolve({ timeout: true });
    }, 6000);
    ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        clearTimeout(timer);
        ws.terminate();
        resolve({ status: res.statusCode, headers: res.headers, body });
      });
    });
    ws.on('open', () => {
      clearTimeout(timer);
      ws.close(1000);
      resolve({ status: 101 });
    });
    ws.on('error', (e) => {
      clearTimeout(timer);
      resolve({ error: e.message });
    });
  });
}

// GET /ws with the token (query or header) and the extra query text.
function wsTry(x, token, { via = 'query', extra = '' } = {}) {
  const c = credentials(token, via);
  const q = [c.query, extra].filter(Boolean).join('&');
  return upgrade(`${ends(x).ws}/ws${q ? `?${q}` : ''}`, { headers: c.headers });
}

// GET /sse with the token; only for refusals (an accepted stream would not end).
function sseTry(x, token, { via = 'query', extra = '' } = {}) {
  const c = credentials(token, via);
  const q = [c.query, extra].filter(Boolean).join('&');
  return httpGet(`${ends(x).http}/sse${q ? `?${q}` : ''}`, {
    timeout: 5000,
    headers: { Accept: 'text/event-stream', ...c.headers },
  });
}

// The refusal of the contract: HTTP 401 before any upgrade, body exactly
// {"type":"error","code":"unauthorized","message":<sentence matching `why`>}, the token not
// echoed.
function assertRefused(r, why, token, what = '') {
  const label = what ? `${what}: ` : '';
  assert.equal(r.status, 401, `${label}expected HTTP 401, got ${JSON.stringify(r).slice(0, 600)}`);
  let frame;
  try {
    frame = JSON.parse(r.body);
  } catch (_) {
    assert.fail(`${label}401 body is not JSON: ${JSON.stringify(r.body)}`);
  }
  F.assertFrame(frame, { type: 'error', code: 'unauthorized', message: why }, {}, `${label}401 body`);
  if (typeof token === 'string') {
    for (const part of token.split('.')) {
      if (part.length >= 8) assert.ok(!r.body.includes(part), `${label}the body echoes the token: ${r.body}`);
    }
  }
  return frame;
}

// Both transports refuse `token` the same way.
async function assertRefusedBoth(x, token, why, what) {
  assertRefused(await wsTry(x, token), why, token, `${what} (WebSocket, ?token=)`);
  assertRefused(await wsTry(x, token, { via: 'header' }), why, token, `${what} (WebSocket, header)`);
  assertRefused(await sseTry(x, token), why, token, `${what} (SSE, ?token=)`);
}

async function assertAccepted(x, token, what) {
  const r = await wsTry(x, token);
  assert.equal(r.status, 101, `${what}: expected the upgrade, got ${JSON.stringify(r).slice(0, 600)}`);
}

// One system (control plane with --auto-create-rooms, data plane without --dev-mode) per
// describe block; `opts()` (may be async: it prepares files and servers the options name) is
// called in `before`, once the keys exist. Returns the live state;
// t.ws/t.sse open clients that are closed at the end.
function jwtSystem(opts = () => ({})) {
  const t = { sys: null, closers: [] };
  before(async () => {
    const o = await opts();
    t.sys = await startSystem({
      devMode: false,
      cpArgs: ['--auto-create-rooms', ...(o.cpArgs || [])],
      dpArgs: o.dpArgs || K.args,
    });
  });
  t.shutdown = async () => {
    for (const c of t.closers.splice(0)) await c();
    if (t.sys) await t.sys.stop();
  };
  after(t.shutdown);
  t.ws = async (token, { via = 'query', x = t.sys, timeout } = {}) => {
    const c = credentials(token, via);
    const conn = await WsClient.connect(`${ends(x).ws}/ws${c.query ? `?${c.query}` : ''}`, {
      headers: c.headers,
      timeout,
    });
    t.closers.push(() => conn.close());
    return conn;
  };
  t.sse = async (token, { via = 'query', x = t.sys, extra = '' } = {}) => {
    const c = credentials(token, via);
    const q = [c.query, extra].filter(Boolean).join('&');
    const conn = await SseClient.connect(`${ends(x).http}/sse${q ? `?${q}` : ''}`, { headers: c.headers });
    t.closers.push(() => conn.close());
    return conn;
  };
  // Another data plane on the same control plane (closed by sys.stop).
  t.addDataPlane = (args) => t.sys.addDataPlane({ args });
  return t;
}

// Runs the data plane binary to completion (it must not start, or --mint-token).
function runDp(args) {
  const clean = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SWITCHBOARD_')) clean[k] = v;
  const r = spawnSync(DP_BIN, args, { env: clean, encoding: 'utf8', timeout: 10000 });
  const timedOut = r.error && r.error.code === 'ETIMEDOUT';
  return {
    code: timedOut ? `still running after 10 s (killed)` : r.status,
    signal: r.signal,
    out: r.stdout,
    err: r.stderr,
  };
}

// A loopback HTTP server answering every request with `doc` as JSON (or `status` when not 200),
// counting requests: a JWKS endpoint, or an attacker's.
function jsonServer(doc = { keys: [] }) {
  const s = { doc, status: 200, hits: 0, paths: [] };
  s.server = http.createServer((req, res) => {
    s.hits += 1;
    s.paths.push(req.url);
    if (s.status !== 200) {
      res.writeHead(s.status, { 'Content-Type': 'text/plain' });
      res.end('unavailable');
      return;
    }
    const body = JSON.stringify(s.doc);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  });
  s.start = (port = 0) =>
    new Promise((resolve, reject) => {
      s.server.once('error', reject);
      s.server.listen(port, '127.0.0.1', () => {
        s.port = s.server.address().port;
        s.url = `http://127.0.0.1:${s.port}/jwks.json`;
        resolve(s);
      });
    });
  s.stop = () =>
    new Promise((resolve) => {
      if (!s.server.listening) return resolve();
      s.server.close(() => resolve());
      s.server.closeAllConnections();
    });
  return s;
}

// ---------------------------------------------------------------- the tests

describe('client tokens (JWT)', { timeout: 300000 }, () => {
  before(makeKeys);
  after(() => T.rmTempDir(K.dir));

  describe('keys from files: an HMAC secret and PEM public keys', () => {
    const t = jwtSystem();

    describe('every algorithm family connects as the token subject', () => {
      const algs = [...T.HMAC, ...T.ASYMMETRIC];
      for (const alg of algs) {
        it(`${alg}: WebSocket and SSE, connected.user_id is sub`, async () => {
          const key = alg.startsWith('HS') ? K.hmac : K.pair[alg];
          const sub = uniq(alg.toLowerCase());
          const token = await T.mint({ key, alg, sub });
          assert.equal(T.decode(token).header.alg, alg);
          const w = await t.ws(token);
          F.assertFrame(
            w.connected,
            { type: 'connected', connection_id: F.CONN_ID, session_id: F.SESSION_ID, user_id: sub, node_id: F.NONEMPTY },
            { expires_at: F.TS }
          );
          const s = await t.sse(token);
          assert.equal(s.connected.user_id, sub);
          await w.close();
          s.close();
        });
      }

      it('the RSA keys verify RS384, RS512, PS384 and PS512 too', async () => {
        for (const alg of ['RS384', 'RS512']) {
          const sub = uniq('rs');
          const w = await t.ws(await T.mint({ key: K.pair.RS256, alg, sub }));
          assert.equal(w.connected.user_id, sub, alg);
          await w.close();
        }
        for (const alg of ['PS384', 'PS512']) {
          const sub = uniq('ps');
          const w = await t.ws(await T.mint({ key: K.pair.PS256, alg, sub }));
          assert.equal(w.connected.user_id, sub, alg);
          await w.close();
        }
      });

      it('a room message goes between two token users (HS256 and EdDSA)', async () => {
        const room = uniq('jr');
        const alice = uniq('alice');
        const bob = uniq('bob');
        const a = await t.ws(await T.mint({ key: K.hmac, sub: alice }));
        const b = await t.ws(await T.mint({ key: K.pair.EdDSA, sub: bob }));
        assert.equal((await a.request({ type: 'join', room_id: room })).type, 'ack');
        assert.equal((await b.request({ type: 'join', room_id: room })).type, 'ack');
        const ack = await a.request({ type: 'message', room_id: room, data: { text: 'signed hello' } });
        assert.equal(ack.type, 'ack', JSON.stringify(ack));
        const m = await b.next({ type: 'message', room_id: room });
        F.assertFrame(m, {
          type: 'message',
          id: ack.id,
          seq: ack.seq,
          room_id: room,
          user_id: alice,
          data: { text: 'signed hello' },
          timestamp: F.TS,
        });
        await a.close();
        await b.close();
      });
    });

    describe('credentials: query, header, and what is not a credential', () => {
      it('the token in Authorization: Bearer (WebSocket and SSE) and in ?token=', async () => {
        const sub = uniq('hdr');
        const token = await tok({ sub });
        const w = await t.ws(token, { via: 'header' });
        assert.equal(w.connected.user_id, sub);
        const s = await t.sse(token, { via: 'header' });
        assert.equal(s.connected.user_id, sub);
        const q = await t.ws(token, { via: 'query' });
        assert.equal(q.connected.user_id, sub);
        for (const c of [w, q]) await c.close();
        s.close();
      });

      it('the npm eventsource client connects with an Authorization header', async () => {
        const sub = uniq('es');
        const token = await tok({ sub, key: K.pair.ES256 });
        const es = new EventSource(`${t.sys.httpBase}/sse`, { headers: { Authorization: `Bearer ${token}` } });
        try {
          const connected = await withTimeout(
            new Promise((resolve, reject) => {
              es.addEventListener('connected', (e) => resolve(JSON.parse(e.data)));
              es.onerror = (e) => reject(new Error(`eventsource error ${JSON.stringify(e)}`));
            }),
            5000,
            'eventsource connected'
          );
          assert.equal(connected.user_id, sub);
        } finally {
          es.close();
        }
        // And a refused one is reported with status 401.
        const bad = new EventSource(`${t.sys.httpBase}/sse`, { headers: { Authorization: 'Bearer nonsense' } });
        try {
          const err = await withTimeout(
            new Promise((resolve) => {
              bad.onerror = (e) => resolve(e);
            }),
            5000,
            'eventsource refusal'
          );
          assert.equal(err.status, 401, JSON.stringify(err));
        } finally {
          bad.close();
        }
      });

      it('?user_id= without --dev-mode is refused with 401 (WebSocket and SSE)', async () => {
        const why = F.NONEMPTY;
        assertRefused(await wsTry(t.sys, undefined, { extra: 'user_id=mallory' }), why, null, 'ws ?user_id=');
        assertRefused(await sseTry(t.sys, undefined, { extra: 'user_id=mallory' }), why, null, 'sse ?user_id=');
      });

      it('no credentials at all: 401 on /ws and /sse', async () => {
        assertRefused(await wsTry(t.sys, undefined), F.NONEMPTY, null, 'ws');
        assertRefused(await sseTry(t.sys, undefined), F.NONEMPTY, null, 'sse');
      });

      it('health probes and /metrics need no token', async () => {
        assert.equal((await httpGet(`${t.sys.httpBase}/healthz`)).status, 200);
        assert.equal((await httpGet(`${t.sys.httpBase}/readyz`)).status, 200);
        assert.equal((await httpGet(`${t.sys.httpBase}/metrics`)).status, 200);
      });
    });

    describe('POST /sse/<connection_id> carries the same credentials', () => {
      it('the connection user token (query or header) gets the answer frame', async () => {
        const sub = uniq('poster');
        const token = await tok({ sub });
        const s = await t.sse(token);
        const cid = s.connected.connection_id;
        const p1 = await ssePost(t.sys.httpBase, cid, { type: 'ping', ref: 'q' }, { query: `token=${enc(token)}` });
        assert.equal(p1.status, 200, p1.body);
        F.assertFrame(p1.frame, { type: 'pong', ref: 'q' }, { timestamp: F.TS });
        // Another token of the same user (another key) is as good.
        const other = await tok({ sub, key: K.pair.ES384 });
        const p2 = await ssePost(t.sys.httpBase, cid, { type: 'ping', ref: 'h' }, { headers: { Authorization: `Bearer ${other}` } });
        assert.equal(p2.status, 200, p2.body);
        F.assertFrame(p2.frame, { type: 'pong', ref: 'h' }, { timestamp: F.TS });
        s.close();
      });

      it('without a token, with ?user_id=, or with a bad token: 401 unauthorized', async () => {
        const sub = uniq('poster');
        const token = await tok({ sub });
        const s = await t.sse(token);
        const cid = s.connected.connection_id;
        const ping = { type: 'ping', ref: 'x' };
        assertRefused(await ssePost(t.sys.httpBase, cid, ping), F.NONEMPTY, null, 'no token');
        assertRefused(await ssePost(t.sys.httpBase, cid, ping, { query: `user_id=${sub}` }), F.NONEMPTY, null, '?user_id=');
        const forged = T.tamper(token, { exp: T.nowSec() + 7200 });
        assertRefused(await ssePost(t.sys.httpBase, cid, ping, { query: `token=${enc(forged)}` }), /bad signature/, forged, 'tampered');
        const expired = await tok({ sub, exp: T.nowSec() - 120 });
        assertRefused(await ssePost(t.sys.httpBase, cid, ping, { query: `token=${enc(expired)}` }), /expired/, expired, 'expired');
        // The stream is unaffected.
        const ok = await ssePost(t.sys.httpBase, cid, ping, { query: `token=${enc(token)}` });
        F.assertFrame(ok.frame, { type: 'pong', ref: 'x' }, { timestamp: F.TS });
        s.close();
      });

      it("another user's valid token: 401 unauthorized, nothing done for them", async () => {
        const room = uniq('pr');
        const owner = uniq('owner');
        const ownerToken = await tok({ sub: owner });
        const s = await t.sse(ownerToken);
        const cid = s.connected.connection_id;
        const mallory = await tok({ sub: uniq('mallory') });
        const r = await ssePost(t.sys.httpBase, cid, { type: 'join', room_id: room, ref: 'm' }, { query: `token=${enc(mallory)}` });
        assertRefused(r, F.NONEMPTY, mallory, "another user's token");
        await s.none((e) => e.event === 'ack', 300);
        s.close();
      });
    });

    describe('claims', () => {
      it('refresh after exp, inside the 5 s leeway: acked, and the connection outlives exp + leeway', { timeout: 20000 }, async () => {
        const sub = uniq('late');
        const exp = T.nowSec() + 1;
        const c = await t.ws(await tok({ sub, exp }));
        await c.next({ type: 'token_expiring' }, 2000);
        await sleep(Math.max(0, exp * 1000 - Date.now()) + 1500); // expired now, still within the leeway
        assert.equal(c.closeInfo, null, `closed inside the leeway: ${JSON.stringify(c.closeInfo)}`);
        const newExp = T.nowSec() + 3600;
        const ack = await c.request({ type: 'refresh', token: await tok({ sub, exp: newExp }), ref: 'late' });
        F.assertFrame(ack, { type: 'ack', ref: 'late', expires_at: iso(newExp) });
        await sleep(Math.max(0, (exp + 5) * 1000 - Date.now()) + 1500);
        assert.equal(c.closeInfo, null, `closed after a refresh inside the leeway: ${JSON.stringify(c.closeInfo)}`);
        F.assertFrame(await c.request({ type: 'ping', ref: 'alive' }), { type: 'pong', ref: 'alive' }, { timestamp: F.TS });
        await c.close();
      });

      it('exp in the past: refused with "expired"; within the 5 s leeway: accepted', async () => {
        const now = T.nowSec();
        await assertRefusedBoth(t.sys, await tok({ exp: now - 60 }), /expired/, 'exp 60 s ago');
        const w = await t.ws(await tok({ exp: now - 2 }));
        assert.ok(w.connected.user_id);
        await w.close();
      });

      it('nbf in the future: refused with "not yet valid"; within the leeway: accepted', async () => {
        const now = T.nowSec();
        await assertRefusedBoth(t.sys, await tok({ nbf: now + 60 }), /not yet valid/, 'nbf in 60 s');
        const w = await t.ws(await tok({ nbf: now + 2 }));
        assert.ok(w.connected.user_id);
        await w.close();
      });

      it('iat in the future: refused; within the leeway: accepted', async () => {
        const now = T.nowSec();
        await assertRefusedBoth(t.sys, await tok({ iat: now + 120 }), /issued|future|iat/i, 'iat in 120 s');
        const w = await t.ws(await tok({ iat: now + 2 }));
        assert.ok(w.connected.user_id);
        await w.close();
      });

      it('no exp: refused (this data plane has no --jwt-allow-no-exp)', async () => {
        await assertRefusedBoth(t.sys, await tok({ exp: null }), /exp/i, 'no exp');
      });

      it('sub missing or not a valid user id: refused', async () => {
        const why = /sub|user/i;
        await assertRefusedBoth(t.sys, await tok({ sub: null }), why, 'no sub');
        await assertRefusedBoth(t.sys, await tok({ sub: 'bad user!' }), why, 'sub with a space');
        await assertRefusedBoth(t.sys, await tok({ sub: '' }), why, 'empty sub');
        await assertRefusedBoth(t.sys, await tok({ sub: 'x'.repeat(200) }), why, 'sub of 200 characters');
        assertRefused(await wsTry(t.sys, await tok({ sub: 42 })), F.NONEMPTY, null, 'numeric sub');
      });

      it('iss and aud are not checked when --jwt-issuer / --jwt-audience are not set', async () => {
        const w = await t.ws(await tok({ iss: 'https://anyone.example', aud: ['whatever'] }));
        assert.ok(w.connected.user_id);
        await w.close();
      });

      it('info: an object up to 4 KiB is accepted; over 4 KiB or not an object is refused', async () => {
        const small = await t.ws(await tok({ info: { name: 'Alice', note: 'x'.repeat(3000) } }));
        assert.ok(small.connected.user_id);
        await small.close();
        const big = await tok({ info: { note: 'x'.repeat(4200) } });
        assertRefused(await wsTry(t.sys, big, { via: 'header' }), /info/i, big, 'info over 4 KiB');
        const notObject = await tok({ info: 'just a string' });
        assertRefused(await wsTry(t.sys, notObject), /info/i, notObject, 'info a string');
      });

      it('channels and rooms claims of the right shape are accepted; wrong shapes refused', async () => {
        const w = await t.ws(await tok({ channels: ['private-team', 'news.*'], rooms: ['r-*'] }));
        assert.ok(w.connected.user_id);
        await w.close();
        assertRefused(await wsTry(t.sys, await tok({ channels: 'private-team' })), F.NONEMPTY, null, 'channels a string');
        assertRefused(await wsTry(t.sys, await tok({ rooms: [1, 2] })), F.NONEMPTY, null, 'rooms of numbers');
      });
    });

    describe('hostile and broken tokens', () => {
      it('alg none (any case) is refused with "algorithm none"', async () => {
        for (const alg of ['none', 'None', 'NONE']) {
          const token = T.noneToken({ alg, sub: uniq('none') });
          await assertRefusedBoth(t.sys, token, /algorithm none/, `alg ${alg}`);
        }
      });

      it('a tampered payload is refused with "bad signature"', async () => {
        for (const key of [K.hmac, K.pair.RS256, K.pair.ES256, K.pair.EdDSA]) {
          const token = await tok({ key, sub: uniq('victim') });
          const forged = T.tamper(token, { sub: 'admin' });
          await assertRefusedBoth(t.sys, forged, /bad signature/, `tampered ${T.decode(token).header.alg}`);
        }
      });

      it('a token signed by a key that is configured nowhere: "bad signature"', async () => {
        const token = await tok({ key: K.stranger });
        await assertRefusedBoth(t.sys, token, /bad signature/, 'stranger ES256');
        const otherSecret = { kind: 'hmac', secret: Buffer.from('s'.repeat(64)) };
        await assertRefusedBoth(t.sys, await tok({ key: otherSecret }), /bad signature/, 'other HMAC secret');
      });

      it('HS256 signed with the RSA public key PEM as the secret is refused (an HMAC key is configured)', async () => {
        const token = T.confusionToken(K.pair.RS256.pem, { sub: uniq('confused') });
        await assertRefusedBoth(t.sys, token, /bad signature|no key for the token's algorithm/, 'confusion');
      });

      it('malformed tokens: refused with "malformed"', async () => {
        const b64 = (text) => Buffer.from(text).toString('base64url');
        const h = b64('{"alg":"HS256","typ":"JWT"}');
        const p = b64('{"sub":"a","exp":9999999999}');
        const sig = b64('not a signature');
        const hs = '{"alg":"HS256","typ":"JWT"}';
        const cases = [
          // not three base64url parts
          'garbage',
          'a.b',
          `${h}.${p}`,
          `${h}.${p}.${sig}.extra`,
          `${h}.!!!.${sig}`,
          `!!!.${p}.${sig}`,
          // a header that is not a JSON object
          `${b64('{')}.${p}.${sig}`,
          `${b64('[1]')}.${p}.${sig}`,
          // signed with the right secret, but the payload is not a JSON object or its claims have
          // the wrong types
          T.hmacRaw(hs, '[1]', K.hmac.secret),
          T.hmacRaw(hs, '{"sub":"a","exp":', K.hmac.secret),
          T.hmacRaw(hs, '{"sub":"a","exp":"tomorrow"}', K.hmac.secret),
          T.hmacRaw(hs, '{"sub":"a","exp":9999999999,"nbf":"now"}', K.hmac.secret),
        ];
        const wrong = [];
        for (const token of cases) {
          for (const [how, r] of [
            ['WebSocket', await wsTry(t.sys, token)],
            ['SSE header', await sseTry(t.sys, token, { via: 'header' })],
          ]) {
            assertRefused(r, F.NONEMPTY, token, `malformed ${JSON.stringify(token)} (${how})`);
            const m = JSON.parse(r.body).message;
            if (!/malformed/.test(m)) wrong.push(`${JSON.stringify(token)} (${how}): ${JSON.stringify(m)}`);
          }
        }
        assert.deepEqual(wrong, [], 'every malformed token is refused with "malformed"');
      });

      it('jku, x5u and jwk in the header are never followed: refused, the attacker server gets no request', async () => {
        const attacker = await T.keyPair('ES256', { kid: 'attacker-1' });
        const srv = await jsonServer(T.jwks([attacker])).start();
        try {
          const viaJku = await T.mint({ key: attacker, sub: uniq('jku'), header: { jku: srv.url } });
          await assertRefusedBoth(t.sys, viaJku, F.NONEMPTY, 'jku');
          const viaX5u = await T.mint({ key: attacker, sub: uniq('x5u'), header: { x5u: srv.url } });
          assertRefused(await wsTry(t.sys, viaX5u), F.NONEMPTY, viaX5u, 'x5u');
          const jwk = { ...attacker.jwk };
          delete jwk.kid;
          const viaJwk = await T.mint({ key: attacker, kid: null, sub: uniq('jwk'), header: { jwk } });
          assertRefused(await wsTry(t.sys, viaJwk), /bad signature/, viaJwk, 'embedded jwk');
          await sleep(1500);
          assert.equal(srv.hits, 0, `the data plane fetched ${JSON.stringify(srv.paths)} from the attacker`);
        } finally {
          await srv.stop();
        }
      });
    });

    describe('--mint-token', () => {
      it('prints an HS256 token for the user that this data plane accepts', async () => {
        const user = uniq('minted');
        const t0 = T.nowSec();
        const r = runDp(['--mint-token', user, '--jwt-hmac-secret-file', K.hmac.file, '--mint-ttl', '10m']);
        assert.equal(r.code, 0, `exit ${r.code} ${r.signal || ''}\n${r.out}\n${r.err}`);
        const token = r.out.trim();
        assert.match(token, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, `stdout: ${JSON.stringify(r.out)}`);
        assert.ok(!r.err.includes(token), 'the token is not logged on stderr');
        const { header, payload } = T.decode(token);
        assert.equal(header.alg, 'HS256');
        assert.equal(payload.sub, user);
        assert.ok(Math.abs(payload.exp - (t0 + 600)) <= 5, `exp ${payload.exp}, want about ${t0 + 600}`);
        // A real HS256 signature over the secret file's bytes.
        await jose.jwtVerify(token, new Uint8Array(K.hmac.secret), { algorithms: ['HS256'] });
        const w = await t.ws(token);
        assert.equal(w.connected.user_id, user);
        await w.close();
      });

      it('without --mint-ttl the token lives an hour', () => {
        const now = T.nowSec();
        const r = runDp(['--mint-token', 'ttl-default', '--jwt-hmac-secret-file', K.hmac.file]);
        assert.equal(r.code, 0, r.err);
        const { payload } = T.decode(r.out.trim());
        assert.ok(Math.abs(payload.exp - (now + 3600)) <= 5, `exp ${payload.exp}, want about ${now + 3600}`);
      });
    });

    stopsCleanly(t.shutdown);
  });

  describe('--jwt-issuer and --jwt-audience', () => {
    const ISS = 'https://auth.example.test/';
    const AUD = 'switchboard';
    const t = jwtSystem(() => ({ dpArgs: [...K.args, '--jwt-issuer', ISS, '--jwt-audience', AUD] }));

    it('the right iss and aud (a string, or a list holding it): accepted', async () => {
      for (const aud of [AUD, ['other', AUD]]) {
        const sub = uniq('aud');
        const w = await t.ws(await tok({ sub, iss: ISS, aud }));
        assert.equal(w.connected.user_id, sub);
        await w.close();
      }
    });

    it('iss wrong or missing: refused naming the issuer', async () => {
      await assertRefusedBoth(t.sys, await tok({ iss: 'https://evil.example/', aud: AUD }), /issuer/, 'wrong iss');
      await assertRefusedBoth(t.sys, await tok({ aud: AUD }), /issuer/, 'no iss');
    });

    it('aud wrong, missing, or a list without it: refused naming the audience', async () => {
      await assertRefusedBoth(t.sys, await tok({ iss: ISS, aud: 'someone-else' }), /audience/, 'wrong aud');
      await assertRefusedBoth(t.sys, await tok({ iss: ISS }), /audience/, 'no aud');
      await assertRefusedBoth(t.sys, await tok({ iss: ISS, aud: ['a', 'b'] }), /audience/, 'aud list without it');
    });

    stopsCleanly(t.shutdown);
  });

  describe('--jwt-allow-no-exp and public keys only', () => {
    const t = jwtSystem(() => ({ dpArgs: ['--jwt-public-key-file', K.pair.RS256.pemFile] }));
    let noExp;

    before(async () => {
      noExp = await t.addDataPlane([...K.args, '--jwt-allow-no-exp']);
    });

    it('a token without exp is accepted with --jwt-allow-no-exp; an expired one is still refused', async () => {
      const sub = uniq('forever');
      const w = await t.ws(await tok({ sub, exp: null }), { x: noExp });
      assert.equal(w.connected.user_id, sub);
      await w.close();
      await assertRefusedBoth(noExp, await tok({ exp: T.nowSec() - 60 }), /expired/, 'expired');
    });

    it('algorithm confusion: HS256 keyed with the RSA PEM text, with no HMAC key configured', async () => {
      const token = T.confusionToken(K.pair.RS256.pem, { sub: uniq('confused') });
      await assertRefusedBoth(t.sys, token, /no key for the token's algorithm/, 'confusion');
      // Same for a proper HS256 token and for an EC token: this node has an RSA key only.
      await assertRefusedBoth(t.sys, await tok(), /no key for the token's algorithm/, 'HS256');
      await assertRefusedBoth(t.sys, await tok({ key: K.pair.ES256 }), /no key for the token's algorithm/, 'ES256');
      // The RSA key itself works.
      const sub = uniq('rsa');
      const w = await t.ws(await tok({ key: K.pair.RS256, sub }));
      assert.equal(w.connected.user_id, sub);
      await w.close();
    });

    stopsCleanly(t.shutdown);
  });

  describe('--jwks-file: keys with kids, re-read when the file changes', () => {
    let file;
    const J = {};
    const t = jwtSystem(async () => {
      J.k1 = await T.keyPair('ES256', { kid: 'k1' });
      J.k2 = await T.keyPair('RS256', { kid: 'k2', jwkAlg: true });
      J.k3 = await T.keyPair('EdDSA', { kid: 'k3' });
      J.h1 = T.octKey('h1');
      file = path.join(K.dir, 'jwks.json');
      T.writeJwks(file, [J.k1, J.k2, J.h1]);
      return { dpArgs: ['--jwks-file', file, '--jwt-leeway', '5s'] };
    });

    it('tokens of each key, by kid, are accepted (EC, RSA, and an oct HMAC key)', async () => {
      for (const key of [J.k1, J.k2, J.h1]) {
        const sub = uniq(key.kid);
        const w = await t.ws(await T.mint({ key, sub }));
        assert.equal(w.connected.user_id, sub, key.kid);
        await w.close();
      }
    });

    it('a kid that names no key: refused with "unknown key id"', async () => {
      const token = await T.mint({ key: J.k1, kid: 'k9', sub: uniq('kid') });
      await assertRefusedBoth(t.sys, token, /unknown key id/, 'kid k9');
    });

    it("a token signed by k1 but naming k2's kid is refused", async () => {
      const token = await T.mint({ key: J.k1, kid: 'k2', sub: uniq('kid') });
      await assertRefusedBoth(t.sys, token, /bad signature|no key|algorithm/, 'wrong kid');
    });

    it('a key with alg RS256 in the JWKS does not verify RS512', async () => {
      const token = await T.mint({ key: J.k2, alg: 'RS512', sub: uniq('alg') });
      assertRefused(await wsTry(t.sys, token), F.NONEMPTY, token, 'RS512 with an RS256-only key');
    });

    it('rotation: a rewritten file adds k3 and drops k1 within a few seconds', { timeout: 20000 }, async () => {
      const old = await T.mint({ key: J.k1, sub: uniq('old') });
      await assertAccepted(t.sys, old, 'k1 before the rotation');
      T.writeJwks(file, [J.k2, J.k3, J.h1]);
      const fresh = await T.mint({ key: J.k3, sub: uniq('new') });
      await waitFor('a k3 token to be accepted after the JWKS file changed', async () => (await wsTry(t.sys, fresh)).status === 101, {
        timeout: 8000,
        interval: 250,
        daemon: t.sys.dp,
      });
      // The kid names no key and no EC key is left: either sentence is right.
      assertRefused(await wsTry(t.sys, old), /unknown key id|no key for the token's algorithm/, old, 'k1 after the rotation');
      await assertAccepted(t.sys, await T.mint({ key: J.k2, sub: uniq('kept') }), 'k2 kept');
    });

    stopsCleanly(t.shutdown);
  });

  describe('--jwks-url: fetched in the background, refreshed, last good set kept', () => {
    const J = {};
    let srv;
    const t = jwtSystem(async () => {
      J.k1 = await T.keyPair('ES256', { kid: 'u1' });
      J.k2 = await T.keyPair('RS256', { kid: 'u2' });
      srv = await jsonServer(T.jwks([J.k1])).start();
      return { dpArgs: ['--jwks-url', srv.url, '--jwks-refresh', '1s'] };
    });
    after(async () => {
      if (srv) await srv.stop();
    });

    it('the set is fetched from the URL and its key admits tokens', { timeout: 15000 }, async () => {
      const token = await T.mint({ key: J.k1, sub: uniq('url') });
      await waitFor('a u1 token to be accepted', async () => (await wsTry(t.sys, token)).status === 101, {
        timeout: 8000,
        interval: 250,
        daemon: t.sys.dp,
      });
      assert.ok(srv.hits >= 1);
      assert.ok(srv.paths.every((p) => p === '/jwks.json'), JSON.stringify(srv.paths));
    });

    it('rotation at the URL is picked up with --jwks-refresh 1s', { timeout: 15000 }, async () => {
      const old = await T.mint({ key: J.k1, sub: uniq('old') });
      const fresh = await T.mint({ key: J.k2, sub: uniq('new') });
      srv.doc = T.jwks([J.k2]);
      await waitFor('a u2 token to be accepted', async () => (await wsTry(t.sys, fresh)).status === 101, {
        timeout: 8000,
        interval: 250,
        daemon: t.sys.dp,
      });
      assertRefused(await wsTry(t.sys, old), /unknown key id|no key for the token's algorithm/, old, 'u1 after the rotation');
    });

    it('a failed refresh (HTTP 500, then the server gone) keeps the last good set', { timeout: 20000 }, async () => {
      const token = await T.mint({ key: J.k2, sub: uniq('kept') });
      await assertAccepted(t.sys, token, 'u2 before the failures');
      srv.status = 500;
      const hits = srv.hits;
      await sleep(3000);
      assert.ok(srv.hits > hits, `no refresh attempt in 3 s (hits ${srv.hits})`);
      await assertAccepted(t.sys, await T.mint({ key: J.k2, sub: uniq('kept') }), 'u2 while the URL answers 500');
      srv.doc = { keys: 'not a list' };
      srv.status = 200;
      await sleep(2500);
      await assertAccepted(t.sys, await T.mint({ key: J.k2, sub: uniq('kept') }), 'u2 while the URL serves a broken document');
      await srv.stop();
      await sleep(2500);
      await assertAccepted(t.sys, await T.mint({ key: J.k2, sub: uniq('kept') }), 'u2 with the URL unreachable');
      t.sys.check();
    });

    stopsCleanly(t.shutdown);
  });

  describe('expiry and refresh on live connections (--jwt-leeway 0)', () => {
    const t = jwtSystem(() => ({ dpArgs: [...K.args, '--jwt-leeway', '0'] }));

    // A WebSocket on a token for `sub` that expires in `secs` seconds.
    async function shortWs(sub, secs) {
      const exp = T.nowSec() + secs;
      const c = await t.ws(await tok({ sub, exp }));
      return { c, exp };
    }

    describe('WebSocket', () => {
      it('token_expiring arrives at once when less than 60 s remain', { timeout: 15000 }, async () => {
        const { c, exp } = await shortWs(uniq('short'), 30);
        const f = await c.next({ type: 'token_expiring' }, 2000);
        F.assertFrame(f, { type: 'token_expiring', expires_at: iso(exp) });
        await c.close();
      });

      it('token_expiring comes 60 s before exp, not earlier', { timeout: 15000 }, async () => {
        const exp = T.nowSec() + 63; // due 2-3 s from now
        const c = await t.ws(await tok({ exp }));
        await c.none({ type: 'token_expiring' }, 1000);
        const f = await c.next({ type: 'token_expiring' }, 5000);
        F.assertFrame(f, { type: 'token_expiring', expires_at: iso(exp) });
        assert.ok(Date.now() >= (exp - 60) * 1000 - 1000, 'token_expiring well before exp - 60 s');
        await c.close();
      });

      it('refresh with a new token: ack with the new expires_at; the connection outlives the old exp', { timeout: 20000 }, async () => {
        const sub = uniq('refresher');
        const { c, exp } = await shortWs(sub, 3);
        await c.next({ type: 'token_expiring' }, 2000);
        const newExp = T.nowSec() + 3600;
        const ack = await c.request({ type: 'refresh', token: await tok({ sub, exp: newExp, key: K.pair.ES256 }), ref: 'r1' });
        F.assertFrame(ack, { type: 'ack', ref: 'r1', expires_at: iso(newExp) });
        await sleep(Math.max(0, exp * 1000 - Date.now()) + 2000);
        assert.equal(c.closeInfo, null, `closed after a successful refresh: ${JSON.stringify(c.closeInfo)}`);
        F.assertFrame(await c.request({ type: 'ping', ref: 'alive' }), { type: 'pong', ref: 'alive' }, { timestamp: F.TS });
        await c.close();
      });

      it('a refreshed token that is short too gets its own token_expiring', { timeout: 15000 }, async () => {
        const sub = uniq('again');
        const { c, exp } = await shortWs(sub, 30);
        F.assertFrame(await c.next({ type: 'token_expiring' }, 2000), { type: 'token_expiring', expires_at: iso(exp) });
        const exp2 = T.nowSec() + 40;
        const ack = await c.request({ type: 'refresh', token: await tok({ sub, exp: exp2 }), ref: 'r2' });
        F.assertFrame(ack, { type: 'ack', ref: 'r2', expires_at: iso(exp2) });
        F.assertFrame(await c.next({ type: 'token_expiring' }, 2000), { type: 'token_expiring', expires_at: iso(exp2) });
        await c.close();
      });

      it("refresh with another user's token: error unauthorized; the old token still rules", { timeout: 20000 }, async () => {
        const sub = uniq('victim');
        const { c, exp } = await shortWs(sub, 3);
        await c.next({ type: 'token_expiring' }, 2000);
        const e = await c.request({ type: 'refresh', token: await tok({ sub: uniq('mallory') }), ref: 'r1' });
        F.assertError(e, 'unauthorized', 'r1');
        F.assertFrame(await c.request({ type: 'ping', ref: 'p' }), { type: 'pong', ref: 'p' }, { timestamp: F.TS });
        // Still on the old token: closed when it expires.
        const info = await withTimeout(c.closed, Math.max(0, exp * 1000 - Date.now()) + 4000, 'close after exp');
        assert.deepEqual(info, { code: 4001, reason: 'token_expired' });
      });

      it('refresh with a bad token (tampered, expired, alg none, malformed): error unauthorized, still open', { timeout: 20000 }, async () => {
        const sub = uniq('bad-refresh');
        const c = await t.ws(await tok({ sub }));
        const good = await tok({ sub, exp: T.nowSec() + 7200 });
        const cases = [
          [T.tamper(good, { exp: T.nowSec() + 99999 }), /bad signature/],
          [await tok({ sub, exp: T.nowSec() - 30 }), /expired/],
          [T.noneToken({ sub }), /algorithm none/],
          ['not.a.token', /malformed/],
          [await tok({ sub, key: K.stranger }), /bad signature/],
        ];
        let i = 0;
        for (const [token, why] of cases) {
          const ref = `b${++i}`;
          const e = await c.request({ type: 'refresh', token, ref });
          F.assertFrame(e, { type: 'error', ref, code: 'unauthorized', message: why }, {}, `refresh case ${i}`);
          for (const part of token.split('.')) if (part.length >= 8) assert.ok(!e.message.includes(part), e.message);
        }
        const missing = await c.request({ type: 'refresh', ref: 'nt' });
        assert.equal(missing.type, 'error', JSON.stringify(missing));
        assert.ok(['unauthorized', 'invalid_message'].includes(missing.code), JSON.stringify(missing));
        F.assertFrame(await c.request({ type: 'ping', ref: 'p' }), { type: 'pong', ref: 'p' }, { timestamp: F.TS });
        await c.close();
      });

      it('no refresh: closed with 4001 token_expired shortly after exp', { timeout: 15000 }, async () => {
        const { c, exp } = await shortWs(uniq('lapsed'), 2);
        const info = await withTimeout(c.closed, Math.max(0, exp * 1000 - Date.now()) + 4000, 'close after exp');
        const at = Date.now();
        assert.deepEqual(info, { code: 4001, reason: 'token_expired' });
        assert.ok(at >= exp * 1000 - 250, `closed ${exp * 1000 - at} ms before exp`);
      });
    });

    describe('SSE', () => {
      it('token_expiring event; refresh through POST /sse/<id>; the stream outlives the old exp', { timeout: 20000 }, async () => {
        const sub = uniq('sse-refresh');
        const exp = T.nowSec() + 3;
        const old = await tok({ sub, exp });
        const s = await t.sse(old);
        const cid = s.connected.connection_id;
        const ev = await s.next((e) => e.event === 'token_expiring', 2000);
        F.assertFrame(ev.data, { type: 'token_expiring', expires_at: iso(exp) });
        const newExp = T.nowSec() + 3600;
        const fresh = await tok({ sub, exp: newExp, key: K.pair.RS256 });
        const p = await ssePost(t.sys.httpBase, cid, { type: 'refresh', token: fresh, ref: 'r1' }, { query: `token=${enc(old)}` });
        assert.equal(p.status, 200, p.body);
        F.assertFrame(p.frame, { type: 'ack', ref: 'r1', expires_at: iso(newExp) });
        await sleep(Math.max(0, exp * 1000 - Date.now()) + 2000);
        assert.equal(s.ended, false, 'the stream ended after a successful refresh');
        await s.none((e) => e.event === 'error', 10);
        // The old token is no credential any more; the new one is.
        assertRefused(await ssePost(t.sys.httpBase, cid, { type: 'ping' }, { query: `token=${enc(old)}` }), /expired/, old, 'old token on POST');
        const ping = await ssePost(t.sys.httpBase, cid, { type: 'ping', ref: 'alive' }, { headers: { Authorization: `Bearer ${fresh}` } });
        F.assertFrame(ping.frame, { type: 'pong', ref: 'alive' }, { timestamp: F.TS });
        s.close();
      });

      it("refresh through POST with another user's token: error unauthorized", { timeout: 10000 }, async () => {
        const sub = uniq('sse-victim');
        const token = await tok({ sub });
        const s = await t.sse(token);
        const p = await ssePost(
          t.sys.httpBase,
          s.connected.connection_id,
          { type: 'refresh', token: await tok({ sub: uniq('mallory') }), ref: 'r1' },
          { query: `token=${enc(token)}` }
        );
        F.assertError(p.frame, 'unauthorized', 'r1');
        s.close();
      });

      it('expiry without refresh: an error event (unauthorized, expired), then the stream ends', { timeout: 15000 }, async () => {
        const exp = T.nowSec() + 2;
        const s = await t.sse(await tok({ exp }));
        const ev = await s.next((e) => e.event === 'error', Math.max(0, exp * 1000 - Date.now()) + 4000);
        F.assertFrame(ev.data, { type: 'error', code: 'unauthorized', message: /expired/ });
        await waitFor('the SSE stream to end after expiry', async () => s.ended, { timeout: 3000 });
      });
    });

    stopsCleanly(t.shutdown);
  });

  describe('start-up refusals', () => {
    it('no key source and no --dev-mode: exit 2 naming the options', () => {
      const r = runDp(['--listen', '127.0.0.1:1', '--controlplane', '127.0.0.1:2']);
      assert.equal(r.code, 2, `exit ${r.code} ${r.signal || ''}\n${r.err}`);
      assert.match(r.err, /jwt|jwks|dev-mode/);
      assert.equal(r.out, '');
    });

    it('--dev-mode listening beyond loopback: exit 2 mentioning --allow-insecure', () => {
      for (const listen of ['0.0.0.0:1']) {
        const r = runDp(['--dev-mode', '--listen', listen, '--controlplane', '127.0.0.1:2']);
        assert.equal(r.code, 2, `${listen}: exit ${r.code} ${r.signal || ''}\n${r.err}`);
        assert.match(r.err, /--allow-insecure/, listen);
      }
    });

    it('--dev-mode --allow-insecure on 0.0.0.0 starts (and stops cleanly)', { timeout: 30000 }, async () => {
      const port = await freePort();
      const d = new Daemon('dataplane-insecure', DP_BIN, ['--dev-mode', '--allow-insecure', '--listen', `0.0.0.0:${port}`, '--controlplane', '127.0.0.1:1'], {});
      d.start();
      try {
        await waitFor('GET /healthz of the insecure data plane', async () => (await httpGet(`http://127.0.0.1:${port}/healthz`, { timeout: 1000 })).status === 200, {
          daemon: d,
          timeout: 15000,
        });
        assert.match(d.log(), /dev/i, 'development mode is announced in the log');
      } finally {
        const p = await d.stop();
        assert.equal(p, null, p);
      }
    });

    it('a key source without --dev-mode on loopback starts', { timeout: 30000 }, async () => {
      const port = await freePort();
      const d = new Daemon('dataplane-keys', DP_BIN, ['--listen', `127.0.0.1:${port}`, '--controlplane', '127.0.0.1:1', '--jwt-hmac-secret-file', K.hmac.file], {});
      d.start();
      try {
        await waitFor('GET /healthz', async () => (await httpGet(`http://127.0.0.1:${port}/healthz`, { timeout: 1000 })).status === 200, {
          daemon: d,
          timeout: 15000,
        });
        assert.ok(!d.log().includes(K.hmac.text), 'the secret is not logged');
      } finally {
        const p = await d.stop();
        assert.equal(p, null, p);
      }
    });
  });
});
