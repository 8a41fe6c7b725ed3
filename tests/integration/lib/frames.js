// Exact-frame assertions: every expected key must match, and no key outside the expected and
// optional sets may appear, so an extra or misspelt field fails the test.
'use strict';

const assert = require('node:assert/strict');

const TS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const MSG_ID = /^m-[0-9A-Za-z_-]{8,}$/;
const CONN_ID = /^c-[0-9A-Za-z_-]{8,}$/;
const SESSION_ID = /^s-[0-9A-Za-z_-]{8,}$/;
const NONEMPTY = (v) => typeof v === 'string' && v.length > 0;
const POS_INT = (v) => Number.isInteger(v) && v > 0;
const STRING = (v) => typeof v === 'string';

function matches(want, got) {
  if (want instanceof RegExp) return typeof got === 'string' && want.test(got);
  if (typeof want === 'function') return want(got) === true;
  try {
    assert.deepStrictEqual(got, want);
    return true;
  } catch (_) {
    return false;
  }
}

function describe(want) {
  if (want instanceof RegExp) return want.toString();
  if (typeof want === 'function') return `<${want.name || 'predicate'}>`;
  return JSON.stringify(want);
}

// Asserts `frame` has exactly the keys of `expected` (plus any of `optional`), each matching.
function assertFrame(frame, expected, optional = {}, what = '') {
  const label = what ? `${what}: ` : '';
  assert.ok(frame && typeof frame === 'object', `${label}expected a frame object, got ${JSON.stringify(frame)}`);
  for (const [k, want] of Object.entries(expected)) {
    assert.ok(k in frame, `${label}missing "${k}" in ${JSON.stringify(frame)}`);
    assert.ok(
      matches(want, frame[k]),
      `${label}"${k}" is ${JSON.stringify(frame[k])}, want ${describe(want)} in ${JSON.stringify(frame)}`
    );
  }
  for (const k of Object.keys(frame)) {
    if (k in expected) continue;
    assert.ok(k in optional, `${label}unexpected key "${k}" in ${JSON.stringify(frame)}`);
    assert.ok(
      matches(optional[k], frame[k]),
      `${label}"${k}" is ${JSON.stringify(frame[k])}, want ${describe(optional[k])} in ${JSON.stringify(frame)}`
    );
  }
}

// The error frame of PROTOCOL.md, with `ref` when the request carried one.
function assertError(frame, code, ref) {
  const exp = { type: 'error', code, message: NONEMPTY };
  if (ref !== undefined) exp.ref = ref;
  assertFrame(frame, exp, {}, `error ${code}`);
}

// Partial-match predicate for ws/sse queues: every key of `want` matches.
function like(want) {
  return (f) => Object.entries(want).every(([k, v]) => matches(v, f[k]));
}

module.exports = {
  TS,
  MSG_ID,
  CONN_ID,
  SESSION_ID,
  NONEMPTY,
  POS_INT,
  STRING,
  assertFrame,
  assertError,
  like,
  matches,
};
