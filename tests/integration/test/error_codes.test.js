// Every protocol error code of common/sb_err.c (PROTOCOL.md's list plus our extensions) must be
// produced and asserted by at least one integration test: this file reads the code table and
// looks for each code, quoted, in the other test files. It starts no daemon.
'use strict';

const { it } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..', '..');
const INTERNAL = new Set(['conflict']); // never sent to clients or gRPC callers

function protocolCodes() {
  const src = fs.readFileSync(path.join(REPO, 'common', 'sb_err.c'), 'utf8');
  // [SB_CODE_X] = {"name", gRPC status, HTTP status}
  const entry = /\[SB_CODE_[A-Z_]+\]\s*=\s*\{\s*"([a-z_]+)"/g;
  const codes = [...src.matchAll(entry)].map((m) => m[1]);
  assert.ok(codes.length >= 23, `expected the code table in sb_err.c, found ${codes.length} codes`);
  return codes.filter((c) => !INTERNAL.has(c));
}

function testSources() {
  const dir = __dirname;
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.test.js') && f !== path.basename(__filename))
    .map((f) => fs.readFileSync(path.join(dir, f), 'utf8'))
    .join('\n');
}

it('every error code is asserted by some integration test', () => {
  const text = testSources();
  // `internal` cannot be provoked from outside without a fault; it is checked by unit tests.
  const missing = protocolCodes().filter(
    (c) => c !== 'internal' && !new RegExp(`['"\`]${c}['"\`:]`).test(text)
  );
  assert.deepEqual(missing, [], `codes no integration test mentions: ${missing.join(', ')}`);
});
