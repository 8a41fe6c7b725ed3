// A distributed Switchboard on loopback for the cluster and fault tests: a real etcd (one or three
// members, Debian's etcd-server, temporary data dirs), control planes on `--store etcd`, data
// planes given every control plane's address. Every process is started on free ports, gated by
// its readiness probe and stopped (or killed) by PID; data dirs are removed at the end.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const harness = require('./harness');
const grpcApi = require('./grpc');

const { freePort, sleep, waitFor, ControlPlane, DataPlane } = harness;
// The harness's process wrapper (log capture, exit tracking, kill on exit), base of its daemons.
const Daemon = Object.getPrototypeOf(ControlPlane);
const ETCD_BIN = process.env.ETCD_BIN || '/usr/bin/etcd';

// POST a JSON body to etcd's gateway; resolves {status, json} (json null when not JSON).
function etcdPost(endpoint, p, body, { timeout = 2000 } = {}) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body || {});
    const req = http.request(
      `${endpoint}${p}`,
      { method: 'POST', timeout, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          let json = null;
          try {
            json = JSON.parse(text);
          } catch (_) {
            /* not JSON */
          }
          resolve({ status: res.statusCode, json, text });
        });
      }
    );
    req.on('timeout', () => req.destroy(new Error(`POST ${endpoint}${p} timed out`)));
    req.on('error', reject);
    req.end(data);
  });
}

function etcdGet(endpoint, p, { timeout = 1000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${endpoint}${p}`, { timeout }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

// The value of `key` in etcd (utf8), or null when absent.
async function etcdValue(endpoint, key) {
  const r = await etcdPost(endpoint, '/v3/kv/range', { key: Buffer.from(key).toString('base64') });
  const kv = r.json && r.json.kvs && r.json.kvs[0];
  return kv ? Buffer.from(kv.value || '', 'base64').toString('utf8') : null;
}

// The control-plane id a data plane uses as its primary now (from its log), or null.
function primaryOf(dp) {
  const lines = dp.log().split('\n').filter((l) => /primary control plane chosen/.test(l));
  const m = lines.length ? lines[lines.length - 1].match(/controlplane=(\S+)/) : null;
  return m ? m[1] : null;
}

// One etcd member. Flags from NOTES.md ("etcd ... Tests"): fast elections, no fsync.
class EtcdMember extends Daemon {
  constructor({ name, dir, clientPort, peerPort, initialCluster }) {
    super(`etcd-${name}`, ETCD_BIN, [], {});
    this.member = name;
    this.dir = dir;
    this.clientPort = clientPort;
    this.peerPort = peerPort;
    this.initialCluster = initialCluster;
    this.endpoint = `http://127.0.0.1:${clientPort}`;
    this.peerUrl = `http://127.0.0.1:${peerPort}`;
  }

  // state 'new' the first time; 'existing' when restarted on its data dir.
  async start({ state = 'new', waitHealthy = true } = {}) {
    this.args = [
      '--name', this.member,
      '--data-dir', path.join(this.dir, this.member),
      '--listen-client-urls', this.endpoint,
      '--advertise-client-urls', this.endpoint,
      '--listen-peer-urls', this.peerUrl,
      '--initial-advertise-peer-urls', this.peerUrl,
      '--initial-cluster', this.initialCluster,
      '--initial-cluster-state', state,
      '--initial-cluster-token', 'sb-test',
      '--unsafe-no-fsync',
      '--heartbeat-interval=10',
      '--election-timeout=100',
      '--experimental-watch-progress-notify-interval=2s',
      '--log-level', 'warn',
    ];
    super.start();
    if (waitHealthy) await this.waitHealthy();
  }

  async healthy() {
    try {
      const r = await etcdGet(this.endpoint, '/health');
      return r.status === 200 && /"health":"true"/.test(r.text);
    } catch (_) {
      return false;
    }
  }

  async waitHealthy(timeout = 20000) {
    await waitFor(`etcd ${this.member} /health on ${this.endpoint}`, () => this.healthy(), { daemon: this, timeout, interval: 50 });
  }

  // {memberId, leaderId} from /v3/maintenance/status, or null.
  async status() {
    try {
      const r = await etcdPost(this.endpoint, '/v3/maintenance/status', {});
      if (r.status !== 200 || !r.json) return null;
      return { memberId: r.json.header.member_id, leaderId: r.json.leader };
    } catch (_) {
      return null;
    }
  }

  async stop() {
    // etcd is not ours to judge: a clean exit code is not asserted.
    return super.stop({ expectClean: false });
  }
}

// One or three etcd members on loopback sharing one temporary directory.
class Etcd {
  constructor({ members = 1 } = {}) {
    this.n = members;
    this.members = [];
  }

  async start() {
    if (!fs.existsSync(ETCD_BIN)) throw new Error(`${ETCD_BIN} not found (Debian package etcd-server)`);
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-etcd-'));
    const ports = new Set();
    const take = async () => {
      let p = await freePort();
      while (ports.has(p)) p = await freePort();
      ports.add(p);
      return p;
    };
    const specs = [];
    for (let i = 0; i < this.n; i += 1) specs.push({ name: `e${i + 1}`, clientPort: await take(), peerPort: await take() });
    const initialCluster = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peerPort}`).join(',');
    this.members = specs.map((s) => new EtcdMember({ ...s, dir: this.dir, initialCluster }));
    // Members of a new cluster wait for each other: start all, then wait.
    await Promise.all(this.members.map((m) => m.start({ waitHealthy: false })));
    await Promise.all(this.members.map((m) => m.waitHealthy()));
    return this;
  }

  get endpoints() {
    return this.members.map((m) => m.endpoint).join(',');
  }

  // The member that leads now (index), or -1.
  async leaderIndex() {
    for (let i = 0; i < this.members.length; i += 1) {
      if (this.members[i].exited) continue;
      const st = await this.members[i].status();
      if (st && st.leaderId && st.leaderId === st.memberId) return i;
    }
    return -1;
  }

  kill(i = 0) {
    this.members[i].kill();
    return this.members[i].exitPromise;
  }

  // Starts a killed member again on its data dir (same ports).
  async restart(i = 0) {
    const old = this.members[i];
    const m = new EtcdMember({ name: old.member, dir: this.dir, clientPort: old.clientPort, peerPort: old.peerPort, initialCluster: old.initialCluster });
    this.members[i] = m;
    await m.start({ state: 'existing' });
    return m;
  }

  async stop() {
    for (const m of this.members) await m.stop();
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
    this.dir = null;
  }
}

// A control plane on the etcd store.
class EtcdControlPlane extends ControlPlane {
  constructor({ id, port, etcd, leaseTtlMs, args = [], env = {} }) {
    super({ port, args, env });
    this.name = `controlplane-${id}`;
    this.id = id;
    this.etcdEndpoints = etcd;
    this.leaseTtlMs = leaseTtlMs;
  }

  async start() {
    // ControlPlane.start() puts `--store memory` first; later flags are ours.
    const args = ['--store', 'etcd', '--etcd-endpoints', this.etcdEndpoints, '--id', this.id];
    if (this.leaseTtlMs) args.push('--lease-ttl-ms', String(this.leaseTtlMs));
    this.extraArgs = [...args, ...this.baseExtra];
    this.args = ['--listen', this.addr, ...this.extraArgs];
    Daemon.prototype.start.call(this);
    this.health = grpcApi.healthClient(this.addr);
    await waitFor(
      `control plane ${this.id} Health/Check on ${this.addr}`,
      async () => (await grpcApi.call(this.health, 'Check', { service: '' }, { deadlineMs: 1000 })).status === 'SERVING',
      { daemon: this, interval: 100, timeout: 30000 }
    );
  }
}

// etcd + N control planes + M data planes (each data plane given every control plane).
class Cluster {
  constructor({ etcdMembers = 1, cps = 2, dps = 2, leaseTtlMs = 3000, cpArgs = [], dpArgs = [], cpEnv = {}, dpEnv = {} } = {}) {
    this.o = { etcdMembers, cps, dps, leaseTtlMs, cpArgs, dpArgs, cpEnv, dpEnv };
    this.cps = [];
    this.dps = [];
    this.retired = [];
    this.problems = [];
  }

  async start() {
    const o = this.o;
    try {
      this.etcd = await new Etcd({ members: o.etcdMembers }).start();
      for (let i = 0; i < o.cps; i += 1) {
        const cp = this._newCp(i, await freePort());
        this.cps.push(cp);
        await cp.start();
        cp.api = grpcApi.clients(cp.addr);
      }
      for (let i = 0; i < o.dps; i += 1) await this.addDp();
    } catch (e) {
      await this.stop().catch(() => {});
      throw e;
    }
    return this;
  }

  // Starts one more data plane (dp-<n>) linked to every control plane; returns it.
  async addDp() {
    const n = this.dps.length + 1;
    const cpList = this.cps.map((c) => c.addr).join(',');
    const dp = new DataPlane({ port: await freePort(), cpAddr: cpList, args: ['--node-id', `dp-${n}`, ...this.o.dpArgs], env: this.o.dpEnv });
    dp.name = `dataplane-dp-${n}`;
    dp.wsUrl = (userId) => `ws://127.0.0.1:${dp.port}/ws?user_id=${encodeURIComponent(userId)}`;
    this.dps.push(dp);
    await dp.start();
    return dp;
  }

  _newCp(i, port) {
    const cp = new EtcdControlPlane({ id: `cp-${i + 1}`, port, etcd: this.etcd.endpoints, leaseTtlMs: this.o.leaseTtlMs, env: this.o.cpEnv });
    cp.baseExtra = this.o.cpArgs;
    return cp;
  }

  // kill -9 control plane i; resolves when it is gone.
  async killCp(i) {
    const cp = this.cps[i];
    if (cp.api) grpcApi.closeClients(cp.api);
    cp.api = null;
    cp.kill();
    await cp.exitPromise;
  }

  // Starts control plane i again on its port.
  async restartCp(i) {
    const old = this.cps[i];
    this.retired.push(old);
    const cp = this._newCp(i, old.port);
    this.cps[i] = cp;
    await cp.start();
    cp.api = grpcApi.clients(cp.addr);
    return cp;
  }

  async killDp(i) {
    const dp = this.dps[i];
    dp.kill();
    await dp.exitPromise;
  }

  // Raises if a daemon crashed or reported something so far.
  check() {
    for (const d of [...this.cps, ...this.dps]) {
      const p = d && d.problem();
      if (p) throw new Error(p);
    }
  }

  // Data planes first, then control planes, then etcd. Throws with every problem found.
  async stop() {
    if (this.stopped) return;
    this.stopped = true;
    const problems = this.problems.slice();
    for (const dp of this.dps) {
      const p = await dp.stop();
      if (p) problems.push(p);
    }
    for (const cp of this.cps) {
      if (cp.api) grpcApi.closeClients(cp.api);
      cp.api = null;
      const p = await cp.stop();
      if (p) problems.push(p);
    }
    for (const old of this.retired) {
      if (harness.SANITIZER_RE.test(old.log())) problems.push(`${old.name}: sanitizer report in ${old.logFile}`);
    }
    if (this.etcd) await this.etcd.stop();
    if (problems.length) throw new Error(problems.join('\n\n'));
  }
}

// Waits until `pred()` holds, polling; resolves with the time it took (ms).
async function timeUntil(desc, pred, { timeout = 30000, interval = 50 } = {}) {
  const t0 = Date.now();
  await waitFor(desc, pred, { timeout, interval });
  return Date.now() - t0;
}

module.exports = { Etcd, EtcdMember, EtcdControlPlane, Cluster, etcdPost, etcdValue, primaryOf, timeUntil, sleep, ETCD_BIN };
