// Subscribes per second with channel authorization: N clients (one WebSocket each, tokens minted
// by npm jose) subscribe at once to one channel, and the time from the first subscribe frame to
// the last ack gives subscribes/s. Four runs, each on fresh daemons (Release build):
//   public     a public channel (no grant needed): the baseline
//   claim      a private channel granted by the token's `channels` claim
//   authorizer a private channel granted by a backend Authorizer (@grpc/grpc-js, in this
//              process), every user asked once
//   cached     the same clients unsubscribe and subscribe again: the Authorizer's answers come
//              from the control plane's cache (cache_ttl_ms 60000)
// Prints one line per run and exits non-zero when an ack is missing.
//
//   node tests/bench/subscribe.js [--conns 2000] [--build-dir build-bench]
// Loopback only; the harness starts and stops the daemons (by PID).
'use strict';

const path = require('node:path');
const o = { conns: 2000, buildDir: 'build-bench' };
for (let i = 2; i < process.argv.length; i += 2) {
  const [k, v] = [process.argv[i], process.argv[i + 1]];
  if (k === '--conns') o.conns = Number(v);
  else if (k === '--build-dir') o.buildDir = v;
  else {
    console.error(`subscribe.js: unknown option ${k}`);
    process.exit(2);
  }
}
process.env.SB_BUILD_DIR = o.buildDir;

const IT = path.join(__dirname, '..', 'integration');
const grpc = require(path.join(IT, 'node_modules', '@grpc/grpc-js'));
const protoLoader = require(path.join(IT, 'node_modules', '@grpc/proto-loader'));
const { REPO, startSystem, freePort } = require(path.join(IT, 'lib', 'harness'));
const { WsClient } = require(path.join(IT, 'lib', 'wsclient'));
const T = require(path.join(IT, 'lib', 'tokens'));

async function startAuthorizer() {
  const def = protoLoader.loadSync('switchboard/v1/authorizer.proto', {
    includeDirs: [path.join(REPO, 'proto')],
    keepCase: true,
    longs: Number,
    defaults: true,
  });
  const svc = grpc.loadPackageDefinition(def).switchboard.v1.Authorizer.service;
  const server = new grpc.Server();
  const stats = { calls: 0 };
  server.addService(svc, {
    Authorize(c, cb) {
      stats.calls++;
      cb(null, { allow: true, info: Buffer.alloc(0), reason: '', cache_ttl_ms: 60000 });
    },
  });
  const port = await freePort();
  await new Promise((res, rej) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res()))
  );
  return { addr: `127.0.0.1:${port}`, stats, stop: () => server.forceShutdown() };
}

// Connects n clients; returns them.
async function connectAll(sys, hmac, n, claims) {
  const clients = [];
  const batch = 100;
  for (let i = 0; i < n; i += batch) {
    const part = [];
    for (let j = i; j < Math.min(n, i + batch); j++) {
      const token = await T.mint({ key: hmac, sub: `b${j}`, ...claims });
      part.push(WsClient.connect(`${sys.wsBase}/ws?token=${encodeURIComponent(token)}`, { timeout: 20000 }));
    }
    clients.push(...(await Promise.all(part)));
  }
  return clients;
}

// Every client subscribes at once; resolves with subscribes/s and the number of acks.
async function blast(clients, channel, type = 'subscribe') {
  const t0 = process.hrtime.bigint();
  const answers = await Promise.all(
    clients.map((c, i) => c.request({ type, channel_id: channel, ref: `s${i}` }, 30000).catch((e) => ({ type: 'timeout', e })))
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const acks = answers.filter((a) => a.type === 'ack').length;
  return { rate: Math.round(clients.length / secs), acks, secs };
}

async function run(label, hmac, { claims = {}, channel, authorizer = null, again = false }) {
  const cpArgs = ['--auto-create-channels', '--max-messages-per-second', '0', '--max-connections-per-user', '0'];
  if (authorizer) cpArgs.push('--authorizer', authorizer.addr);
  const sys = await startSystem({ cpArgs, dpArgs: ['--jwt-hmac-secret-file', hmac.file], devMode: false });
  const results = [];
  try {
    const clients = await connectAll(sys, hmac, o.conns, claims);
    const before = authorizer ? authorizer.stats.calls : 0;
    const r = await blast(clients, channel);
    results.push({ label, ...r, calls: authorizer ? authorizer.stats.calls - before : 0 });
    if (again) {
      await blast(clients, channel, 'unsubscribe');
      const b2 = authorizer.stats.calls;
      const r2 = await blast(clients, channel);
      results.push({ label: 'cached', ...r2, calls: authorizer.stats.calls - b2 });
    }
    for (const c of clients) c.close();
  } finally {
    await sys.stop();
  }
  return results;
}

async function main() {
  const dir = T.tempDir('sb-bench-sub-');
  const hmac = T.hmacSecret(dir);
  const authorizer = await startAuthorizer();
  const out = [];
  let failed = false;
  try {
    out.push(...(await run('public', hmac, { channel: 'bench-public' })));
    out.push(...(await run('claim', hmac, { channel: 'private-bench', claims: { channels: ['private-*'] } })));
    out.push(...(await run('authorizer', hmac, { channel: 'private-bench', authorizer, again: true })));
  } finally {
    authorizer.stop();
    T.rmTempDir(dir);
  }
  console.log(`\n${'grant'.padEnd(12)} ${'conns'.padStart(6)} ${'subscribes/s'.padStart(13)} ${'acks'.padStart(6)} ${'authorizer calls'.padStart(17)}`);
  for (const r of out) {
    console.log(`${r.label.padEnd(12)} ${String(o.conns).padStart(6)} ${String(r.rate).padStart(13)} ${String(r.acks).padStart(6)} ${String(r.calls).padStart(17)}`);
    if (r.acks !== o.conns) failed = true;
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(3);
});
