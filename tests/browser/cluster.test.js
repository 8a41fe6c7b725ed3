// The local cluster as README's "Several replicas on etcd" starts it (deploy/local/cluster.sh:
// etcd, two control planes, two data planes), with the demo page in chromium: two people on two
// data planes join a room by its name as printed, chat, and see each other online and typing.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const { IT_DIR, launch, openAs, people } = require('./pages');
const { REPO, BUILD_DIR, SANITIZER_RE, freePort } = require(path.join(IT_DIR, 'lib', 'harness'));

const CLUSTER = path.join(REPO, 'deploy', 'local', 'cluster.sh');
const LOG_DIR = process.env.SB_TEST_LOG_DIR || path.join(BUILD_DIR, 'test-logs');
const STATE = path.join(LOG_DIR, `cluster-${process.pid}`);

function cluster(cmd, env) {
  return new Promise((resolve) => {
    execFile('bash', [CLUSTER, cmd], { env: { ...process.env, ...env }, timeout: 90000 }, (err, stdout, stderr) =>
      resolve({ code: err ? err.code || 1 : 0, stdout, stderr })
    );
  });
}

function portFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

// Two consecutive free ports (etcd's client port and its peer port, which cluster.sh takes as +1).
async function freePair() {
  for (let i = 0; i < 50; i++) {
    const p = await freePort();
    if (p < 65535 && (await portFree(p + 1))) return p;
  }
  throw new Error('no two consecutive free ports');
}

// Kills whatever the pid files name, synchronously: the last resort when the test process exits
// before `cluster.sh stop` ran.
function killByPidFiles() {
  let files = [];
  try {
    files = fs.readdirSync(STATE).filter((f) => f.endsWith('.pid'));
  } catch (_) {
    return;
  }
  for (const f of files) {
    try {
      process.kill(Number(fs.readFileSync(path.join(STATE, f), 'utf8')), 'SIGKILL');
    } catch (_) {
      /* gone */
    }
  }
}
process.on('exit', killByPidFiles);

describe('local cluster in chromium', { timeout: 180000 }, () => {
  let env;
  let dps;
  let browser;
  let started = false;
  const problems = [];

  before(async () => {
    const etcd = await freePair();
    const cps = [await freePort(), await freePort()];
    dps = [await freePort(), await freePort()];
    env = {
      SB_BUILD_DIR: BUILD_DIR,
      SB_CLUSTER_DIR: STATE,
      SB_ETCD_PORT: String(etcd),
      SB_CP_PORTS: cps.join(','),
      SB_DP_PORTS: dps.join(','),
    };
    const r = await cluster('start', env);
    started = true;
    assert.equal(r.code, 0, `cluster.sh start failed:\n${r.stdout}\n${r.stderr}`);
    // The printed instructions name both pages.
    for (const p of dps) assert.ok(r.stdout.includes(`http://127.0.0.1:${p}/`), r.stdout);
    browser = await launch();
  });

  const shutdown = async () => {
    if (browser) await browser.close().catch(() => {});
    browser = null;
    if (!started) return;
    started = false;
    const r = await cluster('stop', env);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /SIGKILL/, 'a daemon ignored SIGTERM');
    for (const f of fs.readdirSync(path.join(STATE, 'logs'))) {
      const log = fs.readFileSync(path.join(STATE, 'logs', f), 'utf8');
      assert.doesNotMatch(log, SANITIZER_RE, `${f}:\n${log.slice(-4000)}`);
    }
  };
  after(shutdown);

  it('two pages on two data planes join a room by name and chat, see each other online and typing', async () => {
    const room = 'lobby';
    const alice = await openAs(browser, `http://127.0.0.1:${dps[0]}`, 'alice', room, problems);
    const bob = await openAs(browser, `http://127.0.0.1:${dps[1]}`, 'bob', room, problems);
    await alice.waitForFunction(() => !!document.querySelector('#online li[data-user="bob"][data-status="online"]'));

    await alice.click('#message-input');
    await alice.keyboard.type('hello fr', { delay: 20 });
    await bob.waitForFunction(() => document.querySelector('#typing').textContent.includes('alice is typing'));
    await alice.keyboard.type('om dp-1');
    await alice.keyboard.press('Enter');
    await bob.waitForSelector('#messages li.message:has-text("hello from dp-1")');

    await bob.fill('#message-input', 'hi from dp-2');
    await bob.press('#message-input', 'Enter');
    await alice.waitForSelector('#messages li.message:has-text("hi from dp-2")');
    for (const page of [alice, bob]) {
      assert.equal(await page.$$eval('#messages li.message', (l) => l.length), 2);
      await page.waitForFunction(() => document.querySelectorAll('#online li[data-status="online"]').length === 2);
      assert.deepEqual((await people(page)).sort(), ['alice:online', 'bob:online']);
    }
    assert.deepEqual(problems, []);
  });

  it('daemons stop cleanly: cluster.sh stop, no SIGKILL, no sanitizer report', { timeout: 60000 }, shutdown);
});
