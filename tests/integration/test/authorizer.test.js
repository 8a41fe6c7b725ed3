// The backend's Authorizer (API.md, `service Authorizer`; docs/security.md): a private or
// presence channel that the token does not grant is asked of the backend, implemented here with
// @grpc/grpc-js. Allow admits (and carries the member info), deny refuses with the backend's
// reason, an answer after --authorizer-timeout and a stopped backend deny (`unavailable`): allow,
// deny, deny, deny. Answers are cached for cache_ttl_ms; a grant by claim never asks.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { REPO, startSystem, freePort, sleep } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const { SseClient } = require('../lib/sseclient');
const F = require('../lib/frames');
const T = require('../lib/tokens');
const { uniq } = require('../lib/util');

const enc = encodeURIComponent;

function loadAuthorizer() {
  const def = protoLoader.loadSync('switchboard/v1/authorizer.proto', {
    includeDirs: [path.join(REPO, 'proto')],
    keepCase: true,
    longs: Number,
    defaults: true,
  });
  return grpc.loadPackageDefinition(def).switchboard.v1.Authorizer;
}

// A backend Authorizer on loopback: `decide(request)` returns {allow, info, reason,
// cache_ttl_ms, delayMs}; every request is recorded.
async function startBackend(decide) {
  const server = new grpc.Server();
  const seen = [];
  server.addService(loadAuthorizer().service, {
    Authorize(callObj, cb) {
      const r = callObj.request;
      seen.push({ ...r, info: r.info && r.info.length ? JSON.parse(Buffer.from(r.info).toString()) : null });
      const d = decide(r);
      const answer = {
        allow: !!d.allow,
        info: d.info ? Buffer.from(JSON.stringify(d.info)) : Buffer.alloc(0),
        reason: d.reason || '',
        cache_ttl_ms: d.cache_ttl_ms || 0,
      };
      if (d.delayMs) setTimeout(() => cb(null, answer), d.delayMs);
      else cb(null, answer);
    },
  });
  const port = await freePort();
  await new Promise((res, rej) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res()))
  );
  return {
    addr: `127.0.0.1:${port}`,
    seen,
    stop: () => new Promise((res) => server.tryShutdown(() => res())),
    kill: () => server.forceShutdown(),
  };
}

describe('the backend Authorizer', { timeout: 120000 }, () => {
  let sys, dir, hmac, backend;
  const closers = [];

  before(async () => {
    dir = T.tempDir();
    hmac = T.hmacSecret(dir);
    backend = await startBackend((r) => {
      const t = r.target;
      if (t.startsWith('private-allow')) return { allow: true, reason: 'member of the team' };
      if (t.startsWith('private-cached')) return { allow: true, cache_ttl_ms: 60000 };
      if (t.startsWith('private-slow')) return { allow: true, delayMs: 2500 };
      return { allow: false, reason: 'not in your plan' };
    });
    sys = await startSystem({
      cpArgs: ['--auto-create-channels', '--authorizer', backend.addr, '--authorizer-timeout', '500ms'],
      dpArgs: ['--jwt-hmac-secret-file', hmac.file],
    });
  });
  after(async () => {
    for (const c of closers.splice(0)) await c();
    if (sys) await sys.stop();
    if (backend) backend.kill();
    T.rmTempDir(dir);
  });

  async function wsAs(user, claims = {}) {
    const token = await T.mint({ key: hmac, sub: user, ...claims });
    const c = await WsClient.connect(`${sys.wsBase}/ws?token=${enc(token)}`);
    closers.push(() => c.close());
    return c;
  }
  const subscribe = (c, ch, ref) => c.request({ type: 'subscribe', channel_id: ch, ref });
  const callsFor = (ch) => backend.seen.filter((r) => r.target === ch);

  it('allow: subscribed; the request names the user, the connection, the action and the info claim', async () => {
    const user = uniq('al');
    const ch = uniq('private-allow');
    const c = await wsAs(user, { info: { team: 'blue' } });
    F.assertFrame(await subscribe(c, ch, 's1'), { type: 'ack', ref: 's1' });
    const r = callsFor(ch);
    assert.equal(r.length, 1);
    assert.equal(r[0].user_id, user);
    assert.equal(r[0].connection_id, c.connected.connection_id);
    assert.equal(r[0].action, 'subscribe');
    assert.deepEqual(r[0].info, { team: 'blue' });
  });

  it('deny: permission_denied with the backend reason; still open', async () => {
    const c = await wsAs(uniq('dn'));
    const ch = uniq('private-nope');
    const e = await subscribe(c, ch, 's2');
    F.assertError(e, 'permission_denied', 's2');
    assert.match(e.message, /not in your plan/);
    F.assertFrame(await c.request({ type: 'ping', ref: 'p' }), { type: 'pong', ref: 'p' }, { timestamp: F.TS });
  });

  it('an answer after the deadline denies (unavailable), it does not allow late', async () => {
    const c = await wsAs(uniq('sl'));
    const ch = uniq('private-slow');
    const t0 = Date.now();
    const e = await subscribe(c, ch, 's3');
    F.assertError(e, 'unavailable', 's3');
    assert.ok(Date.now() - t0 < 2400, `answered after ${Date.now() - t0} ms: the deadline is 500 ms`);
    await sleep(2500); // the backend's late "allow" arrives at nobody
    const again = await c.request({ type: 'publish', channel_id: ch, data: 1, ref: 'pub' });
    assert.equal(again.type, 'error', 'not subscribed after the late answer');
  });

  it('a grant by the channels claim is not asked of the backend', async () => {
    const ch = uniq('private-claimed');
    const c = await wsAs(uniq('cl'), { channels: [ch] });
    F.assertFrame(await subscribe(c, ch, 's4'), { type: 'ack', ref: 's4' });
    assert.equal(callsFor(ch).length, 0);
  });

  it('cache_ttl_ms: the same (user, action, target) is answered from the cache', async () => {
    const user = uniq('ca');
    const ch = uniq('private-cached');
    const c1 = await wsAs(user);
    F.assertFrame(await subscribe(c1, ch, 'a'), { type: 'ack', ref: 'a' });
    F.assertFrame(await c1.request({ type: 'unsubscribe', channel_id: ch, ref: 'u' }), { type: 'ack', ref: 'u' });
    F.assertFrame(await subscribe(c1, ch, 'b'), { type: 'ack', ref: 'b' });
    assert.equal(callsFor(ch).length, 1, 'asked once');
    // another user is asked on their own
    const c2 = await wsAs(uniq('cb'));
    F.assertFrame(await subscribe(c2, ch, 'c'), { type: 'ack', ref: 'c' });
    assert.equal(callsFor(ch).length, 2);
    // allow answers without a TTL are asked every time
    const ch2 = uniq('private-allow');
    F.assertFrame(await subscribe(c1, ch2, 'd'), { type: 'ack', ref: 'd' });
    F.assertFrame(await c1.request({ type: 'unsubscribe', channel_id: ch2, ref: 'u2' }), { type: 'ack', ref: 'u2' });
    F.assertFrame(await subscribe(c1, ch2, 'e'), { type: 'ack', ref: 'e' });
    assert.equal(callsFor(ch2).length, 2);
  });

  it('SSE ?channels= follows the same rule', async () => {
    const user = uniq('ss');
    const ok = uniq('private-allow');
    const no = uniq('private-nope');
    const token = await T.mint({ key: hmac, sub: user });
    const s = await SseClient.connect(`${sys.httpBase}/sse?token=${enc(token)}&channels=${enc(ok)},${enc(no)}`);
    closers.push(async () => s.close());
    const err = await s.next((e) => e.event === 'error');
    assert.equal(err.data.code, 'permission_denied');
    assert.equal(callsFor(ok).length, 1);
    assert.equal(callsFor(no).length, 1);
  });

  it('the backend stopped: deny (unavailable), never allow', { timeout: 30000 }, async () => {
    await backend.stop();
    const c = await wsAs(uniq('st'));
    const ch = uniq('private-allow');
    const e = await subscribe(c, ch, 's5');
    F.assertError(e, 'unavailable', 's5');
  });

  it('daemons stop cleanly', async () => {
    for (const c of closers.splice(0)) await c();
    const s = sys;
    sys = null;
    await s.stop();
  });
});
