// Starts the real daemons on free loopback ports, waits for their readiness probes, and stops
// them by PID; a sanitizer report or a crash in a daemon's stderr fails the test that owns it.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const http = require('node:http');
const path = require('node:path');
const { it } = require('node:test');
const grpcApi = require('./grpc');

const REPO = path.resolve(__dirname, '..', '..', '..');
const BUILD_DIR = path.resolve(REPO, process.env.SB_BUILD_DIR || 'build-san');
const CP_BIN =
  process.env.SB_CP_BIN || path.join(BUILD_DIR, 'controlplane', 'switchboard-controlplane');
const DP_BIN = process.env.SB_DP_BIN || path.join(BUILD_DIR, 'dataplane', 'switchboard-dataplane');
const LOG_DIR = process.env.SB_TEST_LOG_DIR || path.join(BUILD_DIR, 'test-logs');

// Sanitizer settings for every daemon we start: stop at the first report, print it to stderr.
const SAN_ENV = {
  ASAN_OPTIONS:
    process.env.ASAN_OPTIONS ||
    'halt_on_error=1:abort_on_error=0:detect_leaks=1:strict_string_checks=1:' +
      'detect_stack_use_after_return=1:check_initialization_order=1',
  UBSAN_OPTIONS: process.env.UBSAN_OPTIONS || 'halt_on_error=1:print_stacktrace=1',
  LSAN_OPTIONS: process.env.LSAN_OPTIONS || '',
};

// What a sanitizer or a crash leaves in stderr.
const SANITIZER_RE =
  /ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer)|WARNING: ThreadSanitizer|runtime error:|SUMMARY: (Address|Undefined|Leak)Sanitizer/;

const live = new Set(); // every child still running, killed on exit whatever happens

process.on('exit', () => {
  for (const d of live) {
    try {
      process.kill(d.pid, 'SIGKILL');
    } catch (_) {
      /* already gone */
    }
  }
});

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Returns a port that was free on 127.0.0.1 a moment ago (bound to 0, read, released).
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function httpGet(url, { timeout = 2000, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

let seqNo = 0;

// One daemon process: stderr (and stdout) captured to a file, exit observed.
class Daemon {
  constructor(name, bin, args, env) {
    this.name = name;
    this.bin = bin;
    this.args = args;
    this.env = env;
    this.proc = null;
    this.exited = null; // {code, signal} once it has exited
    this.stopping = false;
    this.logFile = null;
  }

  start() {
    if (!fs.existsSync(this.bin)) {
      throw new Error(`${this.name}: binary ${this.bin} not found (build first; SB_BUILD_DIR)`);
    }
    fs.mkdirSync(LOG_DIR, { recursive: true });
    seqNo += 1;
    this.logFile = path.join(LOG_DIR, `${process.pid}-${seqNo}-${this.name}.log`);
    const fd = fs.openSync(this.logFile, 'w');
    this.stopping = false;
    this.killed = false;
    this.exited = null;
    this.proc = spawn(this.bin, this.args, {
      env: { ...process.env, ...SAN_ENV, ...this.env },
      stdio: ['ignore', fd, fd],
    });
    fs.closeSync(fd);
    this.pid = this.proc.pid;
    live.add(this);
    this.exitPromise = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        live.delete(this);
        this.exited = { code, signal };
        resolve(this.exited);
      });
    });
  }

  log() {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch (_) {
      return '';
    }
  }

  tail(n = 40) {
    return this.log().split('\n').slice(-n).join('\n');
  }

  // Returns a problem description (sanitizer report, unexpected exit) or null.
  problem() {
    const log = this.log();
    const m = log.match(SANITIZER_RE);
    if (m) {
      const at = Math.max(0, m.index - 200);
      return `${this.name}: sanitizer report in ${this.logFile}:\n${log.slice(at, at + 4000)}`;
    }
    if (this.exited && !this.stopping) {
      return `${this.name}: exited unexpectedly (${JSON.stringify(this.exited)}); log tail:\n${this.tail()}`;
    }
    return null;
  }

  // SIGTERM, wait up to `grace` ms, then SIGKILL. Returns the problem found, or null.
  async stop({ signal = 'SIGTERM', grace = 10000, expectClean = true } = {}) {
    if (!this.proc) return null;
    const before = this.problem();
    if (before) {
      if (!this.exited) this.kill();
      return before;
    }
    this.stopping = true;
    if (!this.exited) {
      try {
        process.kill(this.pid, signal);
      } catch (_) {
        /* gone */
      }
      const res = await Promise.race([this.exitPromise, sleep(grace).then(() => null)]);
      if (!res) {
        this.kill();
        await this.exitPromise;
        return `${this.name}: did not exit within ${grace} ms of ${signal}; log tail:\n${this.tail()}`;
      }
    }
    const after = this.problem();
    if (after) return after;
    if (expectClean && !this.killed && signal === 'SIGTERM' && this.exited.code !== 0) {
      return `${this.name}: exit ${JSON.stringify(this.exited)} after SIGTERM (expected 0); log tail:\n${this.tail()}`;
    }
    return null;
  }

  // SIGKILL by PID (fault tests). No check.
  kill() {
    this.stopping = true;
    this.killed = true;
    if (this.proc && !this.exited) {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch (_) {
        /* gone */
      }
    }
  }
}

async function waitFor(desc, fn, { timeout = 20000, interval = 50, daemon = null } = {}) {
  const end = Date.now() + timeout;
  let lastErr = null;
  while (Date.now() < end) {
    if (daemon && daemon.exited) {
      throw new Error(`${desc}: ${daemon.name} exited ${JSON.stringify(daemon.exited)}:\n${daemon.tail()}`);
    }
    try {
      if (await fn()) return;
    } catch (e) {
      lastErr = e;
    }
    await sleep(interval);
  }
  const extra = daemon ? `\nlog tail:\n${daemon.tail()}` : '';
  throw new Error(`timed out after ${timeout} ms waiting for ${desc}${lastErr ? ` (${lastErr.message})` : ''}${extra}`);
}

class ControlPlane extends Daemon {
  constructor({ port, args = [], env = {} }) {
    super('controlplane', CP_BIN, [], env);
    this.port = port;
    this.extraArgs = args;
    this.addr = `127.0.0.1:${port}`;
  }

  async start() {
    this.args = ['--listen', this.addr, '--store', 'memory', ...this.extraArgs];
    super.start();
    this.health = grpcApi.healthClient(this.addr);
    await waitFor(
      `control plane Health/Check on ${this.addr}`,
      async () => {
        const r = await grpcApi.call(this.health, 'Check', { service: '' }, { deadlineMs: 1000 });
        return r.status === 'SERVING';
      },
      { daemon: this, interval: 100 }
    );
  }

  async stop(opts) {
    if (this.health) this.health.close();
    this.health = null;
    return super.stop(opts);
  }
}

class DataPlane extends Daemon {
  constructor({ port, cpAddr, devMode = true, args = [], env = {} }) {
    super('dataplane', DP_BIN, [], env);
    this.port = port;
    this.cpAddr = cpAddr;
    this.devMode = devMode;
    this.extraArgs = args;
    this.base = `http://127.0.0.1:${port}`;
  }

  async start({ waitReady = true } = {}) {
    this.args = ['--listen', `127.0.0.1:${this.port}`, '--controlplane', this.cpAddr];
    this.args.push('--web-root', path.join(REPO, 'dataplane', 'web'));
    if (this.devMode) this.args.push('--dev-mode');
    this.args.push(...this.extraArgs);
    super.start();
    if (waitReady) await this.waitReady();
  }

  async waitReady(timeout = 20000) {
    await waitFor(
      `data plane GET /readyz on ${this.base}`,
      async () => (await httpGet(`${this.base}/readyz`, { timeout: 1000 })).status === 200,
      { daemon: this, timeout }
    );
  }
}

// A control plane and one data plane linked to it, plus gRPC clients for the public API.
class System {
  constructor(opts) {
    this.opts = opts;
    this.problems = [];
  }

  // The store under test: opts.store, else SB_IT_STORE (test.sh runs the files marked
  // `// stores: memory, etcd` a second time with SB_IT_STORE=etcd), else memory.
  get store() {
    return this.opts.store || process.env.SB_IT_STORE || 'memory';
  }

  cpArgs() {
    const extra = this.opts.cpArgs || [];
    if (this.store !== 'etcd') return extra;
    return ['--store', 'etcd', '--etcd-endpoints', this.etcd.endpoints, '--lease-ttl-ms', '3000', ...extra];
  }

  async start() {
    const o = this.opts;
    if (this.store === 'etcd') {
      const { Etcd } = require('./cluster'); // cluster.js requires this file: load it late
      this.etcd = new Etcd();
      await this.etcd.start();
    }
    const cpPort = await freePort();
    let dpPort = await freePort();
    while (dpPort === cpPort) dpPort = await freePort();
    this.cp = new ControlPlane({ port: cpPort, args: this.cpArgs(), env: o.cpEnv || {} });
    this.dp = new DataPlane({
      port: dpPort,
      cpAddr: this.cp.addr,
      devMode: o.devMode !== false,
      args: o.dpArgs || [],
      env: o.dpEnv || {},
    });
    try {
      await this.cp.start();
      await this.dp.start();
    } catch (e) {
      await this.stop().catch(() => {});
      throw e;
    }
    this.api = grpcApi.clients(this.cp.addr, { apiKey: o.apiKey });
    this.wsBase = `ws://127.0.0.1:${dpPort}`;
    this.httpBase = this.dp.base;
    return this;
  }

  // Starts one more data plane linked to the same control plane; returns it with its URLs.
  async addDataPlane({ args = [], env = {} } = {}) {
    const port = await freePort();
    const dp = new DataPlane({ port, cpAddr: this.cp.addr, devMode: this.opts.devMode !== false, args, env });
    this.extraDps = (this.extraDps || []).concat([dp]);
    await dp.start();
    dp.wsUrl = (userId) => `ws://127.0.0.1:${port}/ws?user_id=${encodeURIComponent(userId)}`;
    return dp;
  }

  wsUrl(userId, extra = '') {
    const q = userId === undefined ? '' : `?user_id=${encodeURIComponent(userId)}`;
    return `${this.wsBase}/ws${q}${extra}`;
  }

  // Raises if a daemon has crashed or reported something so far (call between steps).
  check() {
    for (const d of [this.cp, this.dp, ...(this.extraDps || [])]) {
      const p = d && d.problem();
      if (p) throw new Error(p);
    }
  }

  // Restarts the control plane on the same port (after a kill in a fault test).
  async restartControlPlane() {
    const p = this.cp.problem();
    if (p && !/exited unexpectedly/.test(p)) this.problems.push(p);
    const next = new ControlPlane({ port: this.cp.port, args: this.cpArgs(), env: this.opts.cpEnv || {} });
    this.oldCps = (this.oldCps || []).concat([this.cp]);
    this.cp = next;
    await this.cp.start();
    if (this.api) grpcApi.closeClients(this.api);
    this.api = grpcApi.clients(this.cp.addr, { apiKey: this.opts.apiKey });
  }

  // Stops the data plane first (so it can say goodbye), then the control plane. Throws with
  // every problem found (sanitizer reports, crashes, unclean exits).
  async stop() {
    if (this.stopped) return;
    this.stopped = true;
    if (this.api) grpcApi.closeClients(this.api);
    this.api = null;
    const problems = this.problems.slice();
    for (const dp of this.extraDps || []) {
      const p = await dp.stop();
      if (p) problems.push(p);
    }
    if (this.dp) {
      const p = await this.dp.stop();
      if (p) problems.push(p);
    }
    if (this.cp) {
      const p = await this.cp.stop();
      if (p) problems.push(p);
    }
    for (const old of this.oldCps || []) {
      const log = old.log();
      if (SANITIZER_RE.test(log)) problems.push(`old controlplane: sanitizer report in ${old.logFile}`);
    }
    if (this.etcd) await this.etcd.stop();
    this.etcd = null;
    if (problems.length) throw new Error(problems.join('\n\n'));
  }
}

// Declares the last test of a describe block: `shutdown` closes the clients and stops the
// daemons, throwing on a sanitizer report, a crash or an unclean exit, so that this shows up as a
// failed test. The block's `after` hook calls the same function, which is then a no-op, or does
// the cleanup when an earlier failure skipped this test.
function stopsCleanly(shutdown) {
  it('daemons stop cleanly: exit 0 after SIGTERM, no sanitizer report', { timeout: 30000 }, shutdown);
}

async function startSystem(opts = {}) {
  return new System(opts).start();
}

module.exports = {
  REPO,
  BUILD_DIR,
  CP_BIN,
  DP_BIN,
  SANITIZER_RE,
  freePort,
  httpGet,
  sleep,
  waitFor,
  Daemon,
  ControlPlane,
  DataPlane,
  System,
  startSystem,
  stopsCleanly,
};
