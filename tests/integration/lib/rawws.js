// A WebSocket client over a bare TCP socket that writes any frame header it is told to: FIN
// bits, opcodes and 64-bit lengths that no well-behaved library would send. Frames from the
// server are parsed (text, close, pong); everything sent is masked, as RFC 6455 requires.
'use strict';

const net = require('node:net');
const crypto = require('node:crypto');

const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa };

// The header of a client frame: FIN, opcode, mask bit, a length of 7, 16 or 64 bits (the
// 64-bit form for anything past 65535, whatever the value), and the mask key.
function header(fin, opcode, length, mask) {
  const len = BigInt(length);
  let h;
  if (len < 126n) {
    h = Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | Number(len)]);
  } else if (len < 65536n) {
    h = Buffer.alloc(4);
    h[0] = (fin ? 0x80 : 0) | opcode;
    h[1] = 0x80 | 126;
    h.writeUInt16BE(Number(len), 2);
  } else {
    h = Buffer.alloc(10);
    h[0] = (fin ? 0x80 : 0) | opcode;
    h[1] = 0x80 | 127;
    h.writeBigUInt64BE(len, 2);
  }
  return Buffer.concat([h, mask]);
}

class RawWs {
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.texts = [];
    this.pongs = 0;
    this.close = null; // {code, reason} once a close frame arrived
    this.ended = false;
    this.waiters = [];
    this.mask = crypto.randomBytes(4);
    this.offset = 0; // mask position across the payload of the frame being written
    sock.on('data', (d) => this.onData(d));
    sock.on('close', () => {
      this.ended = true;
      this.wake();
    });
    sock.on('error', () => {});
  }

  static connect(port, path) {
    return new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1');
      const key = crypto.randomBytes(16).toString('base64');
      let head = Buffer.alloc(0);
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error('handshake timed out'));
      }, 5000);
      sock.once('error', reject);
      sock.on('connect', () => {
        sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      });
      const onHead = (d) => {
        head = Buffer.concat([head, d]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        sock.removeListener('data', onHead);
        clearTimeout(timer);
        const status = head.subarray(0, end).toString().split('\r\n')[0];
        if (!/^HTTP\/1\.1 101/.test(status)) {
          sock.destroy();
          reject(new Error(`upgrade refused: ${status}`));
          return;
        }
        const ws = new RawWs(sock);
        ws.onData(head.subarray(end + 4));
        resolve(ws);
      };
      sock.on('data', onHead);
    });
  }

  wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  onData(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      if (this.buf.length < 2) return;
      const op = this.buf[0] & 0x0f;
      let len = this.buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      if (this.buf.length < off + len) return;
      const payload = this.buf.subarray(off, off + len);
      this.buf = this.buf.subarray(off + len);
      if (op === OP.TEXT) this.texts.push(JSON.parse(payload.toString()));
      else if (op === OP.PONG) this.pongs += 1;
      else if (op === OP.CLOSE) {
        this.close = {
          code: payload.length >= 2 ? payload.readUInt16BE(0) : 1005,
          reason: payload.subarray(2).toString(),
        };
      }
      this.wake();
    }
  }

  // Resolves when pred() holds, or with false after ms.
  until(pred, ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(pred()), ms);
      const check = () => {
        if (pred()) {
          clearTimeout(timer);
          resolve(true);
        } else this.waiters.push(check);
      };
      check();
    });
  }

  // Writes a frame header (a new mask key each frame); the payload follows with payload().
  frameHeader(fin, opcode, length) {
    this.mask = crypto.randomBytes(4);
    this.offset = 0;
    return this.write(header(fin, opcode, length, this.mask));
  }

  // Writes payload bytes of the current frame, masked.
  payload(data) {
    const b = Buffer.from(data);
    for (let i = 0; i < b.length; i++) b[i] ^= this.mask[(this.offset + i) & 3];
    this.offset += b.length;
    return this.write(b);
  }

  frame(fin, opcode, data) {
    const b = Buffer.from(data);
    return Promise.all([this.frameHeader(fin, opcode, b.length), this.payload(b)]);
  }

  // Resolves once the bytes are handed to the kernel (or the socket is gone: false).
  write(b) {
    if (this.ended || this.sock.destroyed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const ok = this.sock.write(b, (err) => resolve(!err));
      if (!ok) this.sock.once('drain', () => {});
    });
  }

  destroy() {
    this.sock.destroy();
  }
}

module.exports = { RawWs, OP };
