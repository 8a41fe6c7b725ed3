// stores: memory, etcd
// Credentials on the gRPC port (docs/security.md, "The gRPC port"): API keys for
// switchboard.v1.*, the cluster secret for NodeLink and Peer, node ids bound to their stream,
// key files re-read on change, and the refusal to start an open port beyond loopback. Every
// defence is attacked here; keys and secrets are made by the test in a temporary directory.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const protoLoader = require('@grpc/proto-loader');
const { CP_BIN, DP_BIN, ControlPlane, DataPlane, startSystem, freePort, httpGet, sleep, waitFor, stopsCleanly } =
  require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const grpcApi = require('../lib/grpc');
const { uniq, rejectsWith } = require('../lib/util');

const { grpc, status } = grpcApi;
const hex = (n) => crypto.randomBytes(n).toString('hex');

let dir;

// Writes `text` to dir/name atomically (a rename), mode 0600, as an operator rotating it would.
function writeSecret(name, text) {
  const p = path.join(dir, name);
  fs.writeFileSync(`${p}.tmp`, text, { mode: 0o600 });
  fs.renameSync(`${p}.tmp`, p);
  return p;
}

function internal() {
  const def = protoLoader.loadSync(['switchboard/internal/v1/nodelink.proto'], grpcApi.LOAD_OPTS);
  return grpc.loadPackageDefinition(def).switchboard.internal.v1;
}

function md(token) {
  const m = new grpc.Metadata();
  if (token !== undefined) m.set('authorization', token);
  return m;
}

function call(client, method, req, metadata) {
  return new Promise((resolve, reject) => {
    client[method](req, metadata, { deadline: new Date(Date.now() + 5000) }, (err, res) =>
      err ? reject(err) : resolve(res)
    );
  });
}

// Opens NodeLink/Link with `metadata`, sends a Hello for `nodeId`, and resolves with the first
// thing that happens: {welcome} (a ControlBatch with Welcome), or {code, details} (the stream's
// end). The stream is cancelled afterwards.
function linkAttempt(addr, metadata, nodeId) {
  const nl = new (internal().NodeLink)(addr, grpc.credentials.createInsecure(), grpcApi.CHANNEL_OPTS);
  return new Promise((resolve) => {
    const s = nl.Link(metadata, { deadline: new Date(Date.now() + 10000) });
    let done = false;
    const finish = (r) => {
      if (done) return;
      done = true;
      try {
        s.cancel();
      } catch (_) {
        /* ended */
      }
      nl.close();
      resolve(r);
    };
    s.on('data', (b) => {
      if (b.items.some((i) => i.welcome)) finish({ welcome: b.items.find((i) => i.welcome).welcome });
    });
    s.on('error', (e) => finish({ code: e.code, details: e.details }));
    s.on('end', () => finish({ code: status.OK, details: '' }));
    s.write({ items: [{ hello: { node_id: nodeId, address: '203.0.113.9:1', version: 'x' } }] });
  });
}

describe('credentials on the gRPC port', { timeout: 180000 }, () => {
  const K1 = `k1-${hex(16)}`;
  const K2 = `k2-${hex(16)}`;
  const K3 = `k3-${hex(16)}`;
  const S1 = `s1-${hex(24)}`;
  let sys;
  let keyFile;
  let secretFile;
  let nodeId;
  const extra = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-grpcauth-'));
    keyFile = writeSecret('api-keys', `# backend keys\n${K1}\n\n  ${K2}  \n`);
    secretFile = writeSecret('cluster-secret', `${S1}\n`);
    nodeId = uniq('dp');
    sys = await startSystem({
      cpArgs: ['--api-key-file', keyFile, '--cluster-secret-file', secretFile, '--auto-create-rooms'],
      dpArgs: ['--cluster-secret-file', secretFile, '--node-id', nodeId],
      apiKey: K1,
    });
  });

  const shutdown = async () => {
    for (const d of extra) await d.stop({ expectClean: false });
    extra.length = 0;
    if (sys) {
      // No key and no secret ever reaches a log line.
      for (const d of [sys.cp, sys.dp]) {
        const log = d.log();
        for (const k of [K1, K2, K3, S1]) assert.ok(!log.includes(k), `${d.name} logged a key`);
      }
      const s = sys;
      sys = null;
      await s.stop();
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    dir = null;
  };
  after(shutdown);

  it('the data plane links with the cluster secret: ready, and a client chats', async () => {
    const a = await WsClient.connect(sys.wsUrl(uniq('alice')));
    assert.equal(a.connected.node_id, nodeId);
    const room = uniq('room');
    await a.request({ type: 'join', room_id: room });
    const ack = await a.request({ type: 'message', room_id: room, data: 'hi' });
    assert.equal(ack.type, 'ack');
    a.close();
  });

  it('switchboard.v1 without a key, with a wrong one or another scheme: UNAUTHENTICATED', async () => {
    const c = grpcApi.clients(sys.cp.addr);
    try {
      await rejectsWith(grpcApi.call(c.connections, 'GetStats', {}), status.UNAUTHENTICATED, 'unauthorized');
      const e = await grpcApi.call(c.rooms, 'GetRoom', { room_id: 'x' }).catch((err) => err);
      assert.equal(e.code, status.UNAUTHENTICATED);
      assert.equal(e.details, 'unauthorized: missing API key');
      for (const bad of [`Bearer ${K1}x`, `Bearer ${K1.slice(0, -1)}`, `Basic ${K1}`, K1, 'Bearer ', `Bearer ${S1}`]) {
        const err = await call(c.connections, 'GetStats', {}, md(bad)).catch((x) => x);
        assert.equal(err.code, status.UNAUTHENTICATED, bad);
        assert.equal(err.details, 'unauthorized: invalid API key');
      }
      // A write refused leaves no trace: the room was never created.
      await rejectsWith(call(c.rooms, 'CreateRoom', { id: 'never' }, md('Bearer nope')), status.UNAUTHENTICATED);
      await rejectsWith(grpcApi.call(sys.api.rooms, 'GetRoom', { room_id: 'never' }), status.NOT_FOUND, 'room_not_found');
      // The server stream too.
      const w = c.connections.WatchEvents({}, md());
      const end = await new Promise((resolve) => {
        w.on('error', resolve);
        w.on('data', () => resolve(new Error('an event without a key')));
      });
      assert.equal(end.code, status.UNAUTHENTICATED);
    } finally {
      grpcApi.closeClients(c);
    }
  });

  it('either key of the file works; Health stays open', async () => {
    const c = grpcApi.clients(sys.cp.addr);
    try {
      const s1 = await call(c.connections, 'GetStats', {}, md(`Bearer ${K1}`));
      assert.ok(s1.active_connections >= 0);
      await call(c.connections, 'GetStats', {}, md(`bearer ${K2}`));
      const h = await grpcApi.call(c.health, 'Check', { service: '' });
      assert.equal(h.status, 'SERVING');
    } finally {
      grpcApi.closeClients(c);
    }
  });

  it('unknown methods: UNAUTHENTICATED without a key under switchboard.*, else UNIMPLEMENTED', async () => {
    const h = grpcApi.healthClient(sys.cp.addr);
    try {
      const raw = (p, m) =>
        new Promise((resolve) => {
          h.makeUnaryRequest(p, (x) => x, (x) => x, Buffer.alloc(0), m, { deadline: new Date(Date.now() + 5000) },
            (err) => resolve(err));
        });
      assert.equal((await raw('/switchboard.v1.Rooms/NoSuchMethod', md())).code, status.UNAUTHENTICATED);
      assert.equal((await raw('/switchboard.v1.Nope/X', md())).code, status.UNAUTHENTICATED);
      assert.equal((await raw('/switchboard.internal.v1.Nope/X', md())).code, status.UNAUTHENTICATED);
      assert.equal((await raw('/switchboard.v1.Rooms/NoSuchMethod', md(`Bearer ${K1}`))).code, status.UNIMPLEMENTED);
      assert.equal((await raw('/other.v1.Svc/X', md())).code, status.UNIMPLEMENTED);
    } finally {
      h.close();
    }
  });

  it('NodeLink without the cluster secret or with a wrong one: UNAUTHENTICATED before Hello', async () => {
    let r = await linkAttempt(sys.cp.addr, md(), uniq('intruder'));
    assert.deepEqual(r, { code: status.UNAUTHENTICATED, details: 'unauthorized: missing cluster secret' });
    r = await linkAttempt(sys.cp.addr, md(`Bearer ${S1}x`), uniq('intruder'));
    assert.deepEqual(r, { code: status.UNAUTHENTICATED, details: 'unauthorized: invalid cluster secret' });
    // An API key is not a cluster secret.
    r = await linkAttempt(sys.cp.addr, md(`Bearer ${K1}`), uniq('intruder'));
    assert.equal(r.code, status.UNAUTHENTICATED);
    // The control: with the secret and a fresh node id, the stream is welcomed.
    r = await linkAttempt(sys.cp.addr, md(`Bearer ${S1}`), uniq('fresh'));
    assert.ok(r.welcome, JSON.stringify(r));
  });

  it('a Hello naming the live node id is refused; the real node and its clients go on', async () => {
    const user = uniq('alice');
    const a = await WsClient.connect(sys.wsUrl(user));
    const victim = a.connected.node_id;
    const room = uniq('room');
    await a.request({ type: 'join', room_id: room });
    const r = await linkAttempt(sys.cp.addr, md(`Bearer ${S1}`), victim);
    assert.equal(r.code, status.PERMISSION_DENIED, JSON.stringify(r));
    assert.equal(r.details, `permission_denied: node id ${victim} is linked by another stream`);
    // The live node still serves its client both ways, and still owns its connections.
    const ack = await a.request({ type: 'message', room_id: room, data: 'still here' });
    assert.equal(ack.type, 'ack');
    await a.next({ type: 'message', data: 'still here' });
    await grpcApi.call(sys.api.messages, 'BroadcastToRoom', { room_id: room, data: Buffer.from('"from api"') });
    await a.next({ type: 'message', data: 'from api' });
    const list = await grpcApi.call(sys.api.connections, 'ListConnections', { user_id: user });
    assert.equal(list.connections.length, 1);
    assert.equal(list.connections[0].node_id, victim);
    assert.equal((await httpGet(`${sys.dp.base}/readyz`)).status, 200);
    a.close();
    sys.check();
  });

  it('Peer/Publish without the cluster secret: UNAUTHENTICATED', async () => {
    const peer = new (internal().Peer)(sys.cp.addr, grpc.credentials.createInsecure(), grpcApi.CHANNEL_OPTS);
    try {
      const req = { room_id: uniq('room'), user_id: 'u', data: Buffer.from('"x"'), from_cp: 'evil' };
      let e = await call(peer, 'Publish', req, md()).catch((x) => x);
      assert.equal(e.code, status.UNAUTHENTICATED);
      assert.equal(e.details, 'unauthorized: missing cluster secret');
      e = await call(peer, 'Publish', req, md(`Bearer ${K1}`)).catch((x) => x);
      assert.equal(e.details, 'unauthorized: invalid cluster secret');
      // The control: with the secret the call gets past the check (whatever the room says).
      e = await call(peer, 'Publish', req, md(`Bearer ${S1}`)).then(() => ({ code: 0 }), (x) => x);
      assert.notEqual(e.code, status.UNAUTHENTICATED);
    } finally {
      peer.close();
    }
  });

  it('a data plane without the secret never becomes ready and says why', async () => {
    const dp = new DataPlane({ port: await freePort(), cpAddr: sys.cp.addr, args: ['--node-id', uniq('nosecret')] });
    extra.push(dp);
    await dp.start({ waitReady: false });
    await waitFor('the refusal in the log', () => /control plane refused the link/.test(dp.log()), { timeout: 10000 });
    assert.match(dp.log(), /unauthorized: missing cluster secret/);
    assert.equal((await httpGet(`${dp.base}/readyz`)).status, 503);
    await sleep(1500); // a retry or two, still refused
    assert.equal((await httpGet(`${dp.base}/readyz`)).status, 503);
    // Given the wrong secret, the same.
    const bad = writeSecret('wrong-secret', `${hex(32)}\n`);
    const dp2 = new DataPlane({ port: await freePort(), cpAddr: sys.cp.addr, args: ['--cluster-secret-file', bad] });
    extra.push(dp2);
    await dp2.start({ waitReady: false });
    await waitFor('the refusal in the log', () => /unauthorized: invalid cluster secret/.test(dp2.log()), { timeout: 10000 });
    assert.equal((await httpGet(`${dp2.base}/readyz`)).status, 503);
  });

  it('rotation: a rewritten key file takes effect within seconds; a bad rewrite keeps the keys', async () => {
    const c = grpcApi.clients(sys.cp.addr);
    try {
      writeSecret('api-keys', `${K2}\n${K3}\n`);
      await waitFor('the new key accepted', () =>
        call(c.connections, 'GetStats', {}, md(`Bearer ${K3}`)).then(() => true, () => false), { timeout: 5000 });
      await rejectsWith(call(c.connections, 'GetStats', {}, md(`Bearer ${K1}`)), status.UNAUTHENTICATED, 'unauthorized');
      await call(c.connections, 'GetStats', {}, md(`Bearer ${K2}`));
      // A broken file (a short key) is refused: the last good keys stay, with a warning.
      writeSecret('api-keys', `short\n`);
      await waitFor('the warning', () => /key file re-read failed/.test(sys.cp.log()), { timeout: 5000 });
      await call(c.connections, 'GetStats', {}, md(`Bearer ${K3}`));
      writeSecret('api-keys', `${K3}\n`);
      await waitFor('K2 removed', () =>
        call(c.connections, 'GetStats', {}, md(`Bearer ${K2}`)).then(() => false, () => true), { timeout: 5000 });
      await call(c.connections, 'GetStats', {}, md(`Bearer ${K3}`));
    } finally {
      grpcApi.closeClients(c);
    }
  });

  it('cluster secret rotation: a second line is accepted, the first is what the data plane sends', async () => {
    const S2 = `s2-${hex(24)}`;
    writeSecret('cluster-secret', `${S1}\n${S2}\n`);
    await waitFor('the second secret accepted', async () => (await linkAttempt(sys.cp.addr, md(`Bearer ${S2}`), uniq('n'))).welcome,
      { timeout: 5000 });
    // Then the new one first, the old one gone: the control plane takes the new one only.
    writeSecret('cluster-secret', `${S2}\n`);
    await waitFor('the old secret refused', async () =>
      (await linkAttempt(sys.cp.addr, md(`Bearer ${S1}`), uniq('n'))).code === status.UNAUTHENTICATED, { timeout: 5000 });
    // A data plane started now sends S2 and links.
    const dp = new DataPlane({ port: await freePort(), cpAddr: sys.cp.addr, args: ['--cluster-secret-file', secretFile] });
    extra.push(dp);
    await dp.start();
    // The running data plane's stream, opened with S1, stays up (checked when a stream opens).
    assert.equal((await httpGet(`${sys.dp.base}/readyz`)).status, 200);
  });

  stopsCleanly(shutdown);
});

// Runs a daemon that must not start (or --check-config): exit code and stderr.
function run(bin, args) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SWITCHBOARD_')) env[k] = v;
  const r = spawnSync(bin, args, { env, encoding: 'utf8', timeout: 20000 });
  return { code: r.status, err: r.stderr, out: r.stdout };
}

describe('no unsafe start', { timeout: 120000 }, () => {
  let tmp;
  let keys;
  let secret;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-unsafe-'));
    keys = path.join(tmp, 'keys');
    secret = path.join(tmp, 'secret');
    fs.writeFileSync(keys, `${hex(16)}\n`, { mode: 0o600 });
    fs.writeFileSync(secret, `${hex(32)}\n`, { mode: 0o600 });
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('a control plane beyond loopback without credentials exits 2 naming the options', async () => {
    const port = await freePort();
    let r = run(CP_BIN, ['--listen', `0.0.0.0:${port}`]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, new RegExp(`refusing to start: the public API on 0\\.0\\.0\\.0:${port} would accept calls from anyone; give --api-key-file FILE or --allow-insecure`));
    assert.match(r.err, /NodeLink and Peer .* give --cluster-secret-file FILE or --allow-insecure/);
    r = run(CP_BIN, ['--listen', `[::]:${port}`, '--cluster-secret-file', secret]);
    assert.equal(r.code, 2);
    assert.match(r.err, /--api-key-file/);
    assert.doesNotMatch(r.err, /--cluster-secret-file/);
    r = run(CP_BIN, ['--listen', `10.0.0.1:${port}`, '--api-key-file', keys]);
    assert.equal(r.code, 2);
    assert.match(r.err, /--cluster-secret-file FILE/);
    assert.doesNotMatch(r.err, /--api-key-file/);
    // With both, or on loopback, it would start.
    assert.equal(run(CP_BIN, ['--listen', `0.0.0.0:${port}`, '--api-key-file', keys, '--cluster-secret-file', secret, '--check-config']).code, 0);
    assert.equal(run(CP_BIN, ['--listen', `localhost:${port}`, '--check-config']).code, 0);
  });

  it('bad key files exit 2 naming the file and line, never the content', () => {
    const short = path.join(tmp, 'short');
    fs.writeFileSync(short, '# ok\nshort-key-text\n', { mode: 0o600 });
    let r = run(CP_BIN, ['--api-key-file', short, '--check-config']);
    assert.equal(r.code, 2);
    assert.match(r.err, /--api_key_file: .*short: line 2: a key must have at least 16 bytes/);
    assert.doesNotMatch(r.err, /short-key-text/);
    r = run(CP_BIN, ['--cluster-secret-file', keys, '--check-config']); // 32 hex characters: enough
    assert.equal(r.code, 0, r.err);
    fs.writeFileSync(short, `${hex(12)}\n`, { mode: 0o600 });
    r = run(CP_BIN, ['--cluster-secret-file', short, '--check-config']);
    assert.equal(r.code, 2);
    assert.match(r.err, /at least 32 bytes/);
    r = run(CP_BIN, ['--api-key-file', path.join(tmp, 'missing')]);
    assert.equal(r.code, 2);
    assert.match(r.err, /cannot open/);
    r = run(DP_BIN, ['--cluster-secret-file', short, '--check-config']);
    assert.equal(r.code, 2);
    assert.match(r.err, /--cluster-secret-file: .* at least 32 bytes/);
  });

  it('--allow-insecure starts it beyond loopback, with a loud warning', async () => {
    const port = await freePort();
    const cp = new ControlPlane({ port, args: ['--listen', `0.0.0.0:${port}`, '--allow-insecure'] });
    await cp.start();
    try {
      assert.match(cp.log(), /level=warn .*INSECURE .*surface="the public API".*missing=--api-key-file/);
      assert.match(cp.log(), /INSECURE .*missing=--cluster-secret-file/);
      const c = grpcApi.clients(cp.addr);
      await grpcApi.call(c.connections, 'GetStats', {});
      grpcApi.closeClients(c);
    } finally {
      assert.equal(await cp.stop(), null);
    }
  });

  it('a data plane linking beyond loopback without the secret exits 2 unless --allow-insecure', () => {
    let r = run(DP_BIN, ['--controlplane', '127.0.0.1:1,cp.example.com:50051', '--dev-mode']);
    assert.equal(r.code, 2);
    assert.match(r.err, /refusing to start: NodeLink to 127\.0\.0\.1:1,cp\.example\.com:50051 would carry no credential; give --cluster-secret-file FILE/);
    r = run(DP_BIN, ['--controlplane', 'cp.example.com:50051', '--allow-insecure', '--dev-mode', '--check-config']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /INSECURE/);
    r = run(DP_BIN, ['--controlplane', 'cp.example.com:50051', '--cluster-secret-file', secret, '--dev-mode', '--check-config']);
    assert.equal(r.code, 0, r.err);
    r = run(DP_BIN, ['--controlplane', 'localhost:50051,[::1]:2', '--dev-mode', '--check-config']);
    assert.equal(r.code, 0, r.err);
  });
});
