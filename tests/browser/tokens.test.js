// The demo page with client tokens in a real browser (Debian's chromium through npm
// playwright-core), against a data plane without --dev-mode that verifies HS256 tokens minted by
// the test with jose: ?token= in the address names the user, two token users chat, the expiry
// notice and the 4001 close, a refused token, and a pasted token refreshed before it expires.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');

const { IT_DIR, launch, openWithToken } = require('./pages');
const { startSystem, stopsCleanly, BUILD_DIR } = require(path.join(IT_DIR, 'lib', 'harness'));
const T = require(path.join(IT_DIR, 'lib', 'tokens'));

const SHOTS = process.env.SB_TEST_LOG_DIR || path.join(BUILD_DIR, 'test-logs');

// Console errors chromium prints for a refusal the page handles on purpose: the WebSocket
// upgrade answered 401, and the page's GET /sse that reads the reason.
const REFUSAL = /WebSocket connection to '[^']+' failed|status of 401/;

describe('demo page with tokens in chromium', { timeout: 120000 }, () => {
  const t = { sys: null, browser: null, dir: null, hmac: null, problems: [] };
  before(async () => {
    t.dir = T.tempDir('sb-browser-jwt-');
    t.hmac = T.hmacSecret(t.dir);
    t.sys = await startSystem({
      devMode: false,
      cpArgs: ['--auto-create-rooms'],
      dpArgs: ['--jwt-hmac-secret-file', t.hmac.file, '--jwt-leeway', '0'],
    });
    t.browser = await launch();
  });
  t.shutdown = async () => {
    if (t.browser) await t.browser.close().catch(() => {});
    t.browser = null;
    if (t.sys) await t.sys.stop();
    T.rmTempDir(t.dir);
    t.dir = null;
  };
  after(t.shutdown);
  const open = (token, room, o = {}) => openWithToken(t.browser, t.sys.httpBase, token, room, t.problems, o);
  const mint = (sub, o = {}) => T.mint({ key: t.hmac, sub, ...o });
  const notice = (page, text, timeout) => page.waitForSelector(`#messages li.notice:has-text("${text}")`, { timeout });

  it('?token= names the user after the token; two token users chat', async () => {
    const alice = await open(await mint('tok-alice'), 'token-room', { label: 'alice' });
    const bob = await open(await mint('tok-bob'), 'token-room', { label: 'bob' });
    assert.equal(await alice.textContent('#status'), 'connected as tok-alice');
    assert.equal(await alice.inputValue('#name'), 'tok-alice');
    await alice.waitForFunction(() => !!document.querySelector('#online li[data-user="tok-bob"][data-status="online"]'));

    await alice.fill('#message-input', 'hello with a token');
    await alice.press('#message-input', 'Enter');
    const got = await bob.waitForSelector('#messages li.message:has-text("hello with a token")');
    assert.equal(await got.$eval('.msg-user', (e) => e.textContent), 'tok-alice');
    await alice.waitForSelector('#messages li.message.mine:has-text("hello with a token")');
    await bob.fill('#message-input', 'hi back');
    await bob.press('#message-input', 'Enter');
    await alice.waitForSelector('#messages li.message:has-text("hi back")');
    await alice.screenshot({ path: path.join(SHOTS, 'browser-token-alice.png') }).catch(() => {});
    // The token never lands in storage.
    const stored = await alice.evaluate(() => JSON.stringify(localStorage));
    assert.ok(!stored.includes('eyJ'), `token in localStorage: ${stored}`);
    assert.deepEqual(t.problems, [], 'no console errors, CSP violations or page exceptions');
  });

  it('a token from the address about to expire: the page says it cannot refresh it, then 4001 ends it', { timeout: 30000 }, async () => {
    const exp = T.nowSec() + 3;
    const page = await open(await mint('tok-carol', { exp }), 'token-room', { label: 'carol' });
    const warn = await notice(page, 'nothing to refresh');
    assert.match(await warn.textContent(), /reload with a new \?token=/);
    assert.ok(await page.isHidden('#refresh-form'), 'no refresh form for a token from the address');
    await notice(page, 'Token expired: reload with a new token', 10000);
    await page.waitForFunction(() => document.querySelector('#status').textContent === 'token expired');
    // It does not reconnect with the dead token.
    await page.waitForTimeout(1500);
    assert.equal(await page.textContent('#status'), 'token expired');
    assert.deepEqual(t.problems, []);
  });

  it('a refused token: the page says why and stops retrying', { timeout: 30000 }, async () => {
    const expired = await mint('tok-dave', { exp: T.nowSec() - 60 });
    const page = await open(expired, 'token-room', { joined: false, label: 'dave' });
    const n = await notice(page, 'The server refused the token');
    assert.match(await n.textContent(), /expired/);
    await page.waitForFunction(() => document.querySelector('#status').textContent === 'token refused');
    await page.waitForTimeout(1500);
    assert.equal(await page.textContent('#status'), 'token refused', 'no reconnect loop');
    const others = t.problems.filter((p) => !REFUSAL.test(p));
    assert.deepEqual(others, []);
    t.problems.length = 0;
  });

  it('a pasted token is refreshed from the form before it expires and the chat goes on', { timeout: 30000 }, async () => {
    const exp = T.nowSec() + 3;
    const page = await open(await mint('tok-erin', { exp }), 'token-room', { pasted: true, label: 'erin' });
    await notice(page, 'paste a new one below');
    await page.waitForSelector('#refresh-form:not([hidden])');
    await page.fill('#refresh-token', await mint('tok-erin', { exp: T.nowSec() + 3600 }));
    await page.click('#refresh-btn');
    await notice(page, 'Token refreshed');
    assert.ok(await page.isHidden('#refresh-form'));
    await page.waitForTimeout(Math.max(0, exp * 1000 - Date.now()) + 1500);
    assert.equal(await page.textContent('#status'), 'connected as tok-erin');
    await page.fill('#message-input', 'still here after the old exp');
    await page.press('#message-input', 'Enter');
    await page.waitForSelector('#messages li.message.mine:has-text("still here after the old exp")');
    assert.equal(await page.$$eval('#messages li.notice:has-text("Token expired")', (l) => l.length), 0);
    assert.deepEqual(t.problems, []);
  });

  stopsCleanly(t.shutdown);
});
