// Small helpers shared by the integration tests.
'use strict';

const grpcApi = require('./grpc');

let n = 0;

// A fresh identifier (valid per sb_ident: [A-Za-z0-9._:@-]) so tests never share rooms/users.
function uniq(prefix) {
  n += 1;
  return `${prefix}-${process.pid}-${n}`;
}

async function createRoom(sys, id, extra = {}) {
  return grpcApi.call(sys.api.rooms, 'CreateRoom', { id, name: id, ...extra });
}

// Expects a rejected gRPC call with `status` and a details string starting with "<code>: ".
async function rejectsWith(promise, status, code) {
  let err = null;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  if (!err) throw new Error(`expected gRPC status ${status} (${code}), call succeeded`);
  if (err.code !== status) {
    throw new Error(`expected gRPC status ${status} (${code}), got ${err.code}: ${err.details}`);
  }
  if (code !== undefined && !(typeof err.details === 'string' && err.details.startsWith(`${code}: `))) {
    throw new Error(`expected details "${code}: ...", got ${JSON.stringify(err.details)}`);
  }
  if (code !== undefined && err.details.length <= code.length + 2) {
    throw new Error(`details ${JSON.stringify(err.details)} lack a human sentence`);
  }
  return err;
}

module.exports = { uniq, createRoom, rejectsWith };
