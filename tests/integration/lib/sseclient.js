// A raw-HTTP Server-Sent Events reader (so tests see every line, `id:` and comments included),
// and the POST /sse/<connection_id> sender.
'use strict';

const http = require('node:http');
const { like } = require('./frames');

function toPred(p) {
  if (p === undefined) return () => true;
  if (typeof p === 'function') return p;
  const m = like(p);
  return (ev) => m(ev.data || {});
}

class SseClient {
  constructor(url, headers = {}) {
    this.url = url;
    this.events = []; // unconsumed {event, data, id, raw}
    this.all = [];
    this.comments = [];
    this.waiters = [];
    this.ended = false;
    this.buf = '';
    this.response = new Promise((resolve, reject) => {
      this.req = http.get(url, { headers: { Accept: 'text/event-stream', ...headers } }, (res) => {
        this.status = res.statusCode;
        this.headers = res.headers;
        res.setEncoding('utf8');
        res.on('data', (chunk) => this._feed(chunk));
        res.on('end', () => {
          this.ended = true;
          this._wake();
        });
        res.on('error', () => {
          this.ended = true;
          this._wake();
        });
        resolve(res);
      });
      this.req.on('error', (e) => {
        this.ended = true;
        this._wake();
        reject(e);
      });
    });
  }

  static async connect(url, { headers = {}, timeout = 5000, expectConnected = true } = {}) {
    const c = new SseClient(url, headers);
    await c.response;
    if (expectConnected) {
      const ev = await c.next((e) => e.event === 'connected', timeout);
      c.connected = ev.data;
    }
    return c;
  }

  _feed(chunk) {
    this.buf += chunk;
    // Events end with a blank line; accept \n and \r\n line ends.
    for (;;) {
      const m = this.buf.match(/\r?\n\r?\n/);
      if (!m) break;
      const block = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      this._block(block);
    }
  }

  _block(block) {
    const ev = { event: 'message', data: undefined, id: undefined, raw: block };
    const dataLines = [];
    let any = false;
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(':')) {
        this.comments.push(line);
        continue;
      }
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      any = true;
      if (field === 'event') ev.event = value;
      else if (field === 'data') dataLines.push(value);
      else if (field === 'id') ev.id = value;
      else if (field === 'retry') ev.retry = value;
    }
    if (!any) return;
    const text = dataLines.join('\n');
    ev.text = text;
    try {
      ev.data = JSON.parse(text);
    } catch (_) {
      ev.data = undefined;
    }
    this.all.push(ev);
    this.events.push(ev);
    this._wake();
  }

  _wake() {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  // Removes and returns the first event matching `pred` (a function of the event, or an
  // object matched against the event's parsed data).
  async next(pred, timeout = 3000) {
    const p = toPred(pred);
    const end = Date.now() + timeout;
    for (;;) {
      const i = this.events.findIndex(p);
      if (i >= 0) return this.events.splice(i, 1)[0];
      const left = end - Date.now();
      if (left <= 0 || this.ended) {
        throw new Error(
          `no SSE event matching ${typeof pred === 'function' ? pred.toString() : JSON.stringify(pred)} ` +
            `within ${timeout} ms${this.ended ? ' (stream ended)' : ''}; queued: ` +
            JSON.stringify(this.events.map((e) => e.raw)).slice(0, 1500)
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

  async none(pred, ms = 300) {
    const p = toPred(pred);
    await new Promise((r) => setTimeout(r, ms));
    const hit = this.events.find(p);
    if (hit) throw new Error(`unexpected SSE event ${hit.raw}`);
  }

  close() {
    this.req.destroy();
  }
}

// POST /sse/<connection_id>?<query> with a JSON (or raw string) body. Returns
// {status, headers, body, frame}.
function ssePost(base, connectionId, body, { query = '', headers = {}, timeout = 5000 } = {}) {
  const text = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const url = `${base}/sse/${encodeURIComponent(connectionId)}${query ? `?${query}` : ''}`;
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        timeout,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers },
      },
      (res) => {
        let out = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (out += c));
        res.on('end', () => {
          let frame;
          try {
            frame = JSON.parse(out);
          } catch (_) {
            frame = undefined;
          }
          resolve({ status: res.statusCode, headers: res.headers, body: out, frame });
        });
      }
    );
    req.on('timeout', () => req.destroy(new Error(`POST ${url} timed out`)));
    req.on('error', reject);
    req.end(text);
  });
}

module.exports = { SseClient, ssePost };
