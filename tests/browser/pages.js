// What the browser tests share: Debian's chromium through npm playwright-core (never a
// downloaded browser), and opening the demo page as one person in one room (by name in
// development mode, or with a token).
'use strict';

const assert = require('node:assert/strict');
const path = require('node:path');

const IT_DIR = path.resolve(__dirname, '..', 'integration');
const { chromium } = require(require.resolve('playwright-core', { paths: [IT_DIR] }));

const CHROMIUM = process.env.SB_CHROMIUM || '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true, timeout: 30000 });
}

// A fresh context and page at `url`; console errors, CSP violations and page exceptions are
// pushed to `problems` under `label`.
async function newPage(browser, url, label, problems) {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(10000);
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`${label} console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`${label} pageerror: ${e.message}`));
  const res = await page.goto(url);
  assert.equal(res.status(), 200);
  return page;
}

// Fills the room, joins, and waits for the chat view (and, with `joined`, for the connection).
async function join(page, room, joined) {
  await page.fill('#room', room);
  await page.click('#join-btn');
  await page.waitForSelector('#chat-view:not([hidden])');
  if (joined) {
    await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('connected as'));
  }
  return page;
}

// Opens `base`'s page in a new context, fills the form and joins. With `joined` false, returns
// once the chat view shows (the join may still be refused).
async function openAs(browser, base, user, room, problems, { joined = true } = {}) {
  const page = await newPage(browser, `${base}/`, user, problems);
  await page.fill('#name', user);
  return join(page, room, joined);
}

// Opens the page with a token: in the address (?token=, the default) or pasted into the form
// (`pasted`). The name field is left empty: the server names the user after the token's sub.
async function openWithToken(browser, base, token, room, problems, { joined = true, pasted = false, label = 'token' } = {}) {
  const q = pasted ? '' : `?token=${encodeURIComponent(token)}`;
  const page = await newPage(browser, `${base}/${q}`, label, problems);
  if (pasted) await page.fill('#token', token);
  assert.equal(await page.inputValue('#token'), token);
  await page.fill('#name', '');
  return join(page, room, joined);
}

function people(page) {
  return page.$$eval('#online li', (lis) => lis.map((li) => `${li.dataset.user}:${li.dataset.status}`));
}

module.exports = { IT_DIR, launch, openAs, openWithToken, people };
