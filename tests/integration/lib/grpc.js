// gRPC clients for switchboard.v1 and grpc.health.v1, loaded at run time from proto/ with
// @grpc/proto-loader; call() turns a unary call into a promise with a deadline.
'use strict';

const path = require('node:path');
const fs = require('node:fs');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_DIR = path.resolve(__dirname, '..', '..', '..', 'proto');
const GRPC_PROTO_DIR = process.env.SB_GRPC_PROTO_DIR || '/usr/share/grpc-proto';

const LOAD_OPTS = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR, GRPC_PROTO_DIR],
};

let pkg = null;

function load() {
  if (pkg) return pkg;
  const files = ['rooms', 'channels', 'messages', 'presence', 'connections'].map(
    (s) => `switchboard/v1/${s}.proto`
  );
  files.push('grpc/health/v1/health.proto');
  for (const f of files.slice(0, -1)) {
    if (!fs.existsSync(path.join(PROTO_DIR, f))) throw new Error(`missing ${f} under ${PROTO_DIR}`);
  }
  const def = protoLoader.loadSync(files, LOAD_OPTS);
  pkg = grpc.loadPackageDefinition(def);
  return pkg;
}

const CHANNEL_OPTS = {
  'grpc.enable_retries': 0,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 500,
};

function healthClient(addr) {
  const p = load();
  return new p.grpc.health.v1.Health(addr, grpc.credentials.createInsecure(), CHANNEL_OPTS);
}

// A client interceptor that adds `authorization: Bearer <key>` to every call (--api-key-file).
function bearer(key) {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${key}`);
        next(metadata, listener);
      },
    });
}

// One client per public service, sharing nothing but the address; with `apiKey`, every call
// carries it.
function clients(addr, { apiKey } = {}) {
  const p = load();
  const creds = grpc.credentials.createInsecure();
  const v1 = p.switchboard.v1;
  const opts = apiKey ? { ...CHANNEL_OPTS, interceptors: [bearer(apiKey)] } : CHANNEL_OPTS;
  return {
    rooms: new v1.Rooms(addr, creds, opts),
    channels: new v1.Channels(addr, creds, opts),
    messages: new v1.Messages(addr, creds, opts),
    presence: new v1.Presence(addr, creds, opts),
    connections: new v1.Connections(addr, creds, opts),
    health: healthClient(addr),
  };
}

function closeClients(c) {
  for (const k of Object.keys(c)) c[k].close();
}

// Unary call with a deadline; resolves with the response, rejects with the grpc-js error
// (err.code = status number, err.details = message).
function call(client, method, req, { deadlineMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    if (typeof client[method] !== 'function') {
      reject(new Error(`no method ${method} on client`));
      return;
    }
    const deadline = new Date(Date.now() + deadlineMs);
    client[method](req, { deadline }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

// Calls a method by raw path with an empty request (for unknown methods).
function callRaw(client, pathName, { deadlineMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + deadlineMs);
    client.makeUnaryRequest(
      pathName,
      (x) => x,
      (x) => x,
      Buffer.alloc(0),
      new grpc.Metadata(),
      { deadline },
      (err, res) => (err ? reject(err) : resolve(res))
    );
  });
}

module.exports = {
  grpc,
  status: grpc.status,
  load,
  healthClient,
  clients,
  closeClients,
  call,
  callRaw,
  bearer,
  CHANNEL_OPTS,
  LOAD_OPTS,
  PROTO_DIR,
};
