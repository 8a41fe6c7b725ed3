// A test client over the npm `ws` package: queues every frame it receives and lets a test wait
// (with a timeout) for the next frame matching a predicate, or assert that none arrives.
'use strict';

const WebSocket = require('ws');
const { like } = require('./frames');

let refCounter = 0;

function toPred(p) {
  if (p === undefined) return () => true;
  if (typeof p === 'function') return p;
  return like(p);
}

class WsClient {
  // `headers`: extra request headers for the upgrade (e.g. Authorization).
  constructor(url, { headers } = {}) {
    this.url = url;
    this.queue = []; // unconsumed frames (parsed JSON, or {__raw} when not JSON)
    this.all = []; // every frame received, in order
    this.waiters = [];
    this.closeInfo = null;
    this.upgradeStatus = null;
    this.ws = new WebSocket(url, { handshakeTimeout: 5000, perMessageDeflate: false, headers });
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        this._wake();
        resolve(this.closeInfo);
      });
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (req, res) => {
        this.upgradeStatus = res.statusCode;
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => {
          this.upgradeBody = body;
          const err = new Error(`upgrade refused: HTTP ${res.statusCode} ${body}`);
          err.status = res.statusCode;
          err.body = body;
          reject(err);
          this.ws.terminate();
        });
      });
    });
    this.ws.on('error', () => {}); // reported through opened/closed
    this.ws.on('message', (data, isBinary) => {
      let f;
      const text = data.toString('utf8');
      try {
        f = JSON.parse(text);
      } catch (_) {
        f = { __raw: text, __binary: isBinary };
      }
      // The exact text stays reachable (not enumerable: exact-key assertions ignore it).
      if (f && typeof f === 'object') Object.defineProperty(f, '__text', { value: text });
      this.all.push(f);
      this.queue.push(f);
      this._wake();
    });
  }

  // Connects and waits for the `connected` frame (returned). Throws on refusal or timeout.
  static async connect(url, { timeout = 5000, expectConnected = true, headers } = {}) {
    const c = new WsClient(url, { headers });
    await withTimeout(c.opened, timeout, `WebSocket open ${url}`);
    if (expectConnected) c.connected = await c.next({ type: 'connected' }, timeout);
    return c;
  }

  _wake() {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' || Buffer.isBuffer(obj) ? obj : JSON.stringify(obj));
  }

  sendBinary(buf) {
    this.ws.send(buf, { binary: true });
  }

  // Removes and returns the first queued frame matching `pred` (object = partial match),
  // waiting up to `timeout` ms. Throws with the frames seen when none comes.
  async next(pred, timeout = 3000) {
    const p = toPred(pred);
    const end = Date.now() + timeout;
    for (;;) {
      const i = this.queue.findIndex(p);
      if (i >= 0) return this.queue.splice(i, 1)[0];
      const left = end - Date.now();
      if (left <= 0 || this.closeInfo) {
        const what = typeof pred === 'function' ? pred.toString() : JSON.stringify(pred);
        throw new Error(
          `no frame matching ${what} within ${timeout} ms` +
            (this.closeInfo ? ` (socket closed ${JSON.stringify(this.closeInfo)})` : '') +
            `; queued: ${JSON.stringify(this.queue).slice(0, 1500)}`
        );
      }
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  // Asserts that no frame matching `pred` arrives (or is queued) within `ms`.
  async none(pred, ms = 300) {
    const p = toPred(pred);
    await new Promise((r) => setTimeout(r, ms));
    const hit = this.queue.find(p);
    if (hit) throw new Error(`unexpected frame ${JSON.stringify(hit)}`);
  }

  // Sends `frame` with a fresh ref (unless it has one) and returns the answer carrying that ref.
  async request(frame, timeout = 3000) {
    const f = { ...frame };
    if (f.ref === undefined) f.ref = `r${++refCounter}`;
    this.send(f);
    return this.next((x) => x.ref === f.ref, timeout);
  }

  // Drops every queued frame (e.g. presence noise before an exact assertion).
  drain(pred) {
    const p = toPred(pred);
    this.queue = this.queue.filter((f) => !p(f));
  }

  async close() {
    if (this.closeInfo) return this.closeInfo;
    if (this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.terminate();
    } else {
      this.ws.close(1000);
    }
    return withTimeout(this.closed, 3000, 'WebSocket close').catch(() => {
      this.ws.terminate();
      return this.closed;
    });
  }
}

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

module.exports = { WsClient, withTimeout };
