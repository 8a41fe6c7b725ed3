#!/usr/bin/env node
// The plain broadcast server compare.sh measures Switchboard against: every text frame a client
// sends goes to every connected client (the sender included), with the `ws` package's usual
// broadcast loop. Loopback only.
//   node tests/bench/ws_broadcast.js PORT     (NODE_PATH=tests/integration/node_modules)
// Prints `ws_broadcast: pid=<pid> port=<port> ready` once listening; stops on SIGTERM/SIGINT.
'use strict';

const path = require('node:path');

let WebSocketServer;
try {
  ({ WebSocketServer } = require('ws'));
} catch {
  ({ WebSocketServer } = require(
    path.join(__dirname, '..', 'integration', 'node_modules', 'ws'),
  ));
}

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: ws_broadcast.js PORT');
  process.exit(2);
}

const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    for (const c of wss.clients) {
      if (c.readyState === 1) c.send(data, { binary: false });
    }
  });
  ws.on('error', () => {});
});
wss.on('listening', () => {
  console.log(`ws_broadcast: pid=${process.pid} port=${port} ready`);
});
wss.on('error', (e) => {
  console.error(`ws_broadcast: ${e.message}`);
  process.exit(1);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    for (const c of wss.clients) c.terminate();
    wss.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
