// Configuration (docs/configuration.md): the YAML file, SWITCHBOARD_* environment and flags with
// precedence flags > env > file > defaults, unknown keys and bad values rejected with FILE:LINE
// (exit 2), --check-config for both daemons, the effective configuration logged at start.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { REPO, CP_BIN, DP_BIN, startSystem, sleep } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const { uniq } = require('../lib/util');

let dir;

function file(name, text) {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
}

// Runs a daemon to completion (it must not start: --check-config, --help or an error).
// A data plane refuses to start without a way for clients to authenticate: these runs are about
// configuration loading, so they are given development mode (on loopback) unless they say.
function run(bin, args, env = {}) {
  const clean = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SWITCHBOARD_')) clean[k] = v;
  if (bin === DP_BIN && !('SWITCHBOARD_DEV_MODE' in env)) env = { SWITCHBOARD_DEV_MODE: 'true', ...env };
  const r = spawnSync(bin, args, { env: { ...clean, ...env }, encoding: 'utf8', timeout: 20000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// The printed configuration (`name: value` lines) as an object of raw value texts.
function parsed(out) {
  const o = {};
  for (const line of out.split('\n')) {
    const m = /^([a-z_]+): (.*)$/.exec(line);
    if (m) o[m[1]] = m[2];
  }
  return o;
}

describe('configuration', { timeout: 120000 }, () => {
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-config-'));
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('--check-config prints the effective configuration and exits 0 without starting', () => {
    const cp = run(CP_BIN, ['--check-config', '--listen', '127.0.0.1:1']);
    assert.equal(cp.code, 0, cp.err);
    const c = parsed(cp.out);
    assert.equal(c.listen, '"127.0.0.1:1"');
    assert.equal(c.max_connections_per_user, '5');
    assert.equal(c.max_message_size, '65536');
    assert.equal(c.max_messages_per_second, '100');
    assert.equal(c.rate_limit_burst, '200');
    assert.equal(c.store, '"memory"');
    assert.doesNotMatch(cp.err, /effective configuration/); // printed, not started
    const dp = run(DP_BIN, ['--check-config']);
    assert.equal(dp.code, 0, dp.err);
    const d = parsed(dp.out);
    assert.equal(d.idle_timeout_ms, '120000');
    assert.equal(d.max_frame_size, '81920');
    // The printout is itself a valid config file.
    const back = file('back.yaml', cp.out);
    assert.equal(run(CP_BIN, ['--config', back, '--check-config']).code, 0);
    // SWITCHBOARD_CHECK_CONFIG does the same.
    assert.equal(run(DP_BIN, [], { SWITCHBOARD_CHECK_CONFIG: 'true' }).code, 0);
  });

  it('the example files in deploy/config pass --check-config', () => {
    for (const [bin, f] of [[CP_BIN, 'controlplane.yaml'], [DP_BIN, 'dataplane.yaml']]) {
      const r = run(bin, ['--config', path.join(REPO, 'deploy', 'config', f), '--check-config']);
      assert.equal(r.code, 0, `${f}: ${r.err}`);
    }
  });

  it('YAML file honoured: nested keys, lists, durations, seed key names', () => {
    const p = file('cp.yaml', [
      '# control plane',
      'store: etcd',
      'etcd:',
      '  endpoints:',
      '    - http://127.0.0.1:2379',
      '    - http://127.0.0.1:22379',
      'max_connections_per_user: 3',
      'presence_timeout: 10m        # seed spelling: NAME for NAME_ms',
      'message_retention: 720h',
      'rate_limit:',
      '  requests_per_second: 7',
      '  burst_size: 9',
      'max_typing_users_per_room: 4',
      'typing_timeout_ms: 2s',
      '',
    ].join('\n'));
    const r = run(CP_BIN, ['--config', p, '--check-config']);
    assert.equal(r.code, 0, r.err);
    const c = parsed(r.out);
    assert.equal(c.store, '"etcd"');
    assert.equal(c.etcd_endpoints, '"http://127.0.0.1:2379,http://127.0.0.1:22379"');
    assert.equal(c.max_connections_per_user, '3');
    assert.equal(c.presence_timeout_ms, '600000');
    assert.equal(c.message_retention_ms, String(720 * 3600 * 1000));
    assert.equal(c.max_messages_per_second, '7');
    assert.equal(c.rate_limit_burst, '9');
    assert.equal(c.max_typing_users, '4');
    assert.equal(c.typing_timeout_ms, '2000');
    // The data plane's list of control planes, through SWITCHBOARD_CONFIG.
    const d = file('dp.yaml', 'controlplane: [127.0.0.1:1, "127.0.0.1:2"]\nping_interval_ms: 5s\nidle_timeout_ms: 20s\n');
    const rd = run(DP_BIN, ['--check-config'], { SWITCHBOARD_CONFIG: d });
    assert.equal(rd.code, 0, rd.err);
    const dd = parsed(rd.out);
    assert.equal(dd.controlplane, '"127.0.0.1:1,127.0.0.1:2"');
    assert.equal(dd.ping_interval_ms, '5000');
    assert.equal(dd.idle_timeout_ms, '20000');
  });

  it('precedence: env beats file, flag beats env', () => {
    const p = file('prec.yaml', 'max_message_size: 1000\nmax_rooms_per_user: 11\nlog_level: warn\n');
    const env = { SWITCHBOARD_MAX_MESSAGE_SIZE: '2000', SWITCHBOARD_MAX_ROOMS_PER_USER: '22' };
    const r = run(CP_BIN, ['--config', p, '--check-config', '--max-rooms-per-user', '33'], env);
    assert.equal(r.code, 0, r.err);
    const c = parsed(r.out);
    assert.equal(c.max_message_size, '2000'); // env > file
    assert.equal(c.max_rooms_per_user, '33'); // flag > env > file
    assert.equal(c.log_level, '"warn"'); // file > default
    const d = file('prec_dp.yaml', 'max_pending: 10\n');
    const rd = run(DP_BIN, ['--config', d, '--check-config', '--max-pending=30'], { SWITCHBOARD_MAX_PENDING: '20' });
    assert.equal(parsed(rd.out).max_pending, '30', rd.err);
    const rd2 = run(DP_BIN, ['--config', d, '--check-config'], { SWITCHBOARD_MAX_PENDING: '20' });
    assert.equal(parsed(rd2.out).max_pending, '20', rd2.err);
  });

  it('unknown key: exit 2 naming FILE:LINE, for both daemons, also with --check-config', () => {
    const p = file('unknown.yaml', 'listen: 127.0.0.1:1\n\n# comment\nmax_conections_per_user: 5\n');
    for (const bin of [CP_BIN, DP_BIN]) {
      for (const extra of [[], ['--check-config']]) {
        const r = run(bin, ['--config', p, ...extra]);
        assert.equal(r.code, 2, `${bin} ${extra}: ${r.out} ${r.err}`);
        assert.ok(r.err.includes(`${p}:4: unknown key 'max_conections_per_user'`), r.err);
        assert.equal(r.out, '');
      }
    }
    const nested = file('nested.yaml', 'etcd:\n  endpoints: http://a:1\n  password: x\n');
    const r = run(CP_BIN, ['--config', nested, '--check-config']);
    assert.equal(r.code, 2);
    assert.ok(r.err.includes(`${nested}:3: unknown key 'etcd_password'`), r.err);
  });

  it('--check-config fails (exit 2, the reason on stderr) on bad values and daemon checks', () => {
    const cases = [
      [CP_BIN, 'max_message_size: lots\n', ':1: max_message_size: expected an integer'],
      [CP_BIN, 'listen: 127.0.0.1:1\nmax_connections_per_user: -1\n', ':2: max_connections_per_user: out of range'],
      [CP_BIN, 'presence_timeout_ms: soon\n', ':1: presence_timeout_ms: expected a duration'],
      [CP_BIN, 'auto_create_rooms: perhaps\n', 'auto_create_rooms: expected true or false'],
      [CP_BIN, 'store: redis\n', '--store must be memory or etcd'],
      [CP_BIN, 'store: etcd\netcd_endpoints: [127.0.0.1:2379]\n', '--etcd-endpoints must be'],
      [CP_BIN, 'log_level: loud\n', '--log-level must be'],
      [CP_BIN, 'listen: nowhere\n', '--listen must be HOST:PORT'],
      [CP_BIN, 'listen: [a, b]\n', ':1: listen: expected a single value, not a list'],
      [CP_BIN, 'listen: "127.0.0.1:1\n', 'YAML error'],
      [CP_BIN, 'max_rooms_per_user: 1\nmax_rooms_per_user: 2\n', ':2: \'max_rooms_per_user\' is given twice'],
      [DP_BIN, 'ping_interval_ms: 30s\nidle_timeout_ms: 10s\n', '--idle-timeout-ms must be 0 or more than --ping-interval-ms'],
      [DP_BIN, 'slow_consumer: explode\n', '--slow-consumer must be disconnect or drop'],
      [DP_BIN, 'controlplane: [nowhere]\n', '--controlplane must be HOST:PORT'],
      [DP_BIN, 'max_frame_size: 2000000\nhard_frame_limit: 1000000\n', '--hard-frame-limit must be >= --max-frame-size'],
    ];
    for (const [bin, text, want] of cases) {
      const p = file('bad.yaml', text);
      const r = run(bin, ['--config', p, '--check-config']);
      assert.equal(r.code, 2, `${JSON.stringify(text)}: exit ${r.code}\n${r.out}\n${r.err}`);
      assert.ok(r.err.includes(want), `${JSON.stringify(text)}: wanted ${want}, got ${r.err}`);
      assert.equal(r.out, '', 'nothing printed on stdout when invalid');
    }
    // Bad env and flags too.
    let r = run(CP_BIN, ['--check-config'], { SWITCHBOARD_RATE_LIMIT_BURST: '0' });
    assert.equal(r.code, 2);
    assert.match(r.err, /SWITCHBOARD_RATE_LIMIT_BURST: out of range/);
    r = run(CP_BIN, ['--check-config', '--max-message-size', 'big']);
    assert.equal(r.code, 2);
    assert.match(r.err, /--max-message-size: expected an integer/);
    r = run(CP_BIN, ['--check-config', '--config', path.join(dir, 'missing.yaml')]);
    assert.equal(r.code, 2);
    assert.match(r.err, /cannot open config file/);
  });

  describe('a running system configured by files', () => {
    let sys;
    before(async () => {
      const cpFile = file('run_cp.yaml', 'max_connections_per_user: 1\nrate_limit: {requests_per_second: 0}\n');
      const dpFile = file('run_dp.yaml', 'ping_interval_ms: 1s\nidle_timeout_ms: 30s\n');
      sys = await startSystem({ cpArgs: ['--config', cpFile], dpArgs: ['--config', dpFile] });
    });
    after(async () => {
      if (sys) await sys.stop();
    });

    it('the file settings take effect and the effective configuration is logged', async () => {
      const user = uniq('cfg');
      const a = await WsClient.connect(sys.wsUrl(user));
      const b = new WsClient(sys.wsUrl(user));
      await b.opened;
      const e = await b.next({ type: 'error' }, 5000);
      assert.equal(e.code, 'connection_limit_reached');
      await b.closed;
      for (let i = 0; i < 20; i++) {
        assert.equal((await a.request({ type: 'ping' })).type, 'pong');
      }
      await a.close();
      await sleep(100);
      const cpLog = sys.cp.log();
      assert.match(cpLog, /effective configuration.*max_connections_per_user=1 /);
      assert.match(cpLog, /max_messages_per_second=0 /);
      const dpLog = sys.dp.log();
      assert.match(dpLog, /effective configuration.*ping_interval_ms=1000 idle_timeout_ms=30000 /);
    });
  });
});
