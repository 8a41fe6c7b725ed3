// Keys and tokens for tests/bench/tokens.sh: generates a key for one algorithm into a directory
// (HS*: DIR/hmac.secret; others: DIR/<alg>.pem) and mints COUNT tokens for the users
// <prefix>0..<prefix>COUNT-1, one a line, into DIR/<alg>.tokens. Prints the data-plane options
// naming the key, one per line. Uses tests/integration/lib/tokens.js (npm jose).
//
//   node tests/bench/mint_tokens.js --dir DIR --alg ES256 --count 5001 [--prefix u] [--ttl 3600]
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const T = require(path.join(__dirname, '..', 'integration', 'lib', 'tokens'));

function args(argv) {
  const o = { prefix: 'u', ttl: 3600 };
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    if (!['dir', 'alg', 'count', 'prefix', 'ttl'].includes(k) || argv[i + 1] === undefined) {
      throw new Error(`mint_tokens.js: bad option ${argv[i]}`);
    }
    o[k] = argv[i + 1];
  }
  if (!o.dir || !o.alg || !o.count) throw new Error('mint_tokens.js: --dir, --alg and --count are required');
  o.count = Number(o.count);
  o.ttl = Number(o.ttl);
  if (!Number.isInteger(o.count) || o.count < 1) throw new Error('mint_tokens.js: --count must be a positive integer');
  return o;
}

async function main() {
  const o = args(process.argv);
  fs.mkdirSync(o.dir, { recursive: true });
  let key;
  let opts;
  if (T.HMAC.includes(o.alg)) {
    key = T.hmacSecret(o.dir);
    opts = ['--jwt-hmac-secret-file', key.file];
  } else if (T.ASYMMETRIC.includes(o.alg)) {
    key = await T.keyPair(o.alg, { dir: o.dir });
    opts = ['--jwt-public-key-file', key.pemFile];
  } else {
    throw new Error(`mint_tokens.js: --alg must be one of ${[...T.HMAC, ...T.ASYMMETRIC].join(' ')}`);
  }
  const exp = T.nowSec() + o.ttl;
  const lines = [];
  for (let i = 0; i < o.count; i++) lines.push(await T.mint({ key, alg: o.alg, sub: `${o.prefix}${i}`, exp }));
  fs.writeFileSync(path.join(o.dir, `${o.alg}.tokens`), `${lines.join('\n')}\n`);
  process.stdout.write(`${opts.join('\n')}\n`);
}

main().catch((e) => {
  process.stderr.write(`${e.message}\n`);
  process.exit(2);
});
