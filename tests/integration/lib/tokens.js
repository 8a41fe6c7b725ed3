// Test keys and tokens for the client-token tests: key pairs generated at run time (never
// committed) into a temp directory as PEM files, JWK Sets and an HMAC secret file, and JWTs
// minted with npm `jose`, plus the hostile tokens jose will not make (alg none, HS256 keyed with
// a public key's PEM text, a tampered payload).
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const jose = require('jose');

// The asymmetric algorithms the data plane verifies, each with the key type jose makes for it.
const ASYMMETRIC = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];
const HMAC = ['HS256', 'HS384', 'HS512'];

function nowSec() {
  return Math.floor(Date.now() / 1000);
}

function b64url(data) {
  return Buffer.from(data).toString('base64url');
}

function b64json(obj) {
  return b64url(JSON.stringify(obj));
}

// A fresh temp directory for one test file's keys; remove it with `rmTempDir`.
function tempDir(prefix = 'sb-jwt-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

function rmTempDir(dir) {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}

// An HMAC secret as printable text (so no trailing "\n" byte can be trimmed by the server's
// loader and no NUL ends it early): 48 random bytes in base64url, 64 characters. The secret the
// server uses is exactly the file's bytes.
function hmacSecret(dir, name = 'hmac.secret') {
  const text = crypto.randomBytes(48).toString('base64url');
  const file = path.join(dir, name);
  fs.writeFileSync(file, text, { mode: 0o600 });
  return { kind: 'hmac', secret: Buffer.from(text, 'utf8'), file, text };
}

// An HMAC key for a JWKS (kty oct) with its kid.
function octKey(kid) {
  const secret = crypto.randomBytes(32);
  return { kind: 'hmac', kid, secret, jwk: { kty: 'oct', k: b64url(secret), kid, use: 'sig' } };
}

// A key pair for `alg` (RS256, PS256, ES256, ES384, EdDSA): {alg, kid, publicKey, privateKey,
// pem (SPKI text), jwk (public, with kid and alg when given)}. With `dir`, the PEM is written to
// <dir>/<name>.pem and its path is `pemFile`.
async function keyPair(alg, { kid, dir, name, jwkAlg = false } = {}) {
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  const pem = await jose.exportSPKI(publicKey);
  const jwk = await jose.exportJWK(publicKey);
  if (kid !== undefined) jwk.kid = kid;
  jwk.use = 'sig';
  if (jwkAlg) jwk.alg = alg;
  const k = { kind: 'pair', alg, kid, publicKey, privateKey, pem, jwk };
  if (dir) {
    k.pemFile = path.join(dir, `${name || alg.toLowerCase()}${kid ? `-${kid}` : ''}.pem`);
    fs.writeFileSync(k.pemFile, pem);
  }
  return k;
}

// A JWK Set document holding the public JWKs of `keys` (pairs and oct keys).
function jwks(keys) {
  return { keys: keys.map((k) => ({ ...k.jwk })) };
}

// Writes the JWKS atomically (rename), so a reader never sees half a file.
function writeJwks(file, keys) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(jwks(keys)));
  fs.renameSync(tmp, file);
}

// The claims of a test token. Each time claim is absolute (Unix seconds); `undefined` takes the
// default (exp: in an hour, iat: now), `null` leaves the claim out.
function claimsOf(o) {
  const now = nowSec();
  const c = {};
  if (o.sub !== null) c.sub = o.sub === undefined ? 'alice' : o.sub;
  if (o.exp !== null) c.exp = o.exp === undefined ? now + 3600 : o.exp;
  if (o.iat !== null) c.iat = o.iat === undefined ? now : o.iat;
  if (o.nbf !== undefined && o.nbf !== null) c.nbf = o.nbf;
  for (const k of ['iss', 'aud', 'info', 'channels', 'rooms', 'channel']) {
    if (o[k] !== undefined) c[k] = o[k];
  }
  return { ...c, ...(o.claims || {}) };
}

// Mints a signed JWT with jose. `key` is a key pair from keyPair (its private key signs; alg
// defaults to the pair's) or an HMAC key from hmacSecret/octKey (alg defaults to HS256). `kid`
// defaults to the key's kid; `header` adds or overrides protected header members (jku, typ...).
async function mint(o = {}) {
  const key = o.key;
  if (!key) throw new Error('mint: no key');
  const alg = o.alg || (key.kind === 'hmac' ? 'HS256' : key.alg);
  const kid = o.kid !== undefined ? o.kid : key.kid;
  const header = { alg, typ: 'JWT', ...(kid !== undefined && kid !== null ? { kid } : {}), ...(o.header || {}) };
  const signWith = key.kind === 'hmac' ? new Uint8Array(key.secret) : key.privateKey;
  return new jose.SignJWT(claimsOf(o)).setProtectedHeader(header).sign(signWith);
}

// An unsecured token (`alg` none, or a case variant given as `alg`), empty signature.
function noneToken(o = {}) {
  const header = { alg: o.alg || 'none', typ: 'JWT', ...(o.header || {}) };
  return `${b64json(header)}.${b64json(claimsOf(o))}.`;
}

// Algorithm confusion: an HS256 token whose HMAC secret is the text of a public key's PEM, as a
// verifier that feeds "the key" to whatever the header names would accept. Built by hand with
// node:crypto (jose refuses a public key as an HMAC secret).
function confusionToken(pemText, o = {}) {
  const alg = o.alg || 'HS256';
  const header = { alg, typ: 'JWT', ...(o.kid ? { kid: o.kid } : {}), ...(o.header || {}) };
  return hmacRaw(JSON.stringify(header), JSON.stringify(claimsOf(o)), Buffer.from(pemText, 'utf8'), alg);
}

// A correctly HMAC-signed token over any header and payload text (not necessarily JSON): for
// tokens whose signature verifies but whose content is malformed.
function hmacRaw(headerText, payloadText, secret, alg = 'HS256') {
  const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
  const input = `${b64url(headerText)}.${b64url(payloadText)}`;
  return `${input}.${crypto.createHmac(hash, secret).update(input).digest('base64url')}`;
}

// The token with its payload replaced by `claims` merged over the original, the header and the
// signature kept: a forgery whose signature no longer matches.
function tamper(token, claims) {
  const [h, p, s] = token.split('.');
  const payload = { ...JSON.parse(Buffer.from(p, 'base64url').toString('utf8')), ...claims };
  return `${h}.${b64json(payload)}.${s}`;
}

// Decodes a token's parts without verifying (test assertions only).
function decode(token) {
  const [h, p] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
  };
}

module.exports = {
  ASYMMETRIC,
  HMAC,
  nowSec,
  tempDir,
  rmTempDir,
  hmacSecret,
  octKey,
  keyPair,
  jwks,
  writeJwks,
  mint,
  noneToken,
  confusionToken,
  hmacRaw,
  tamper,
  decode,
  claimsOf,
};
