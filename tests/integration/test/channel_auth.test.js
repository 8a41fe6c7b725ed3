// Who may subscribe and publish to a channel from a client (PROTOCOL.md, "What a user may do";
// docs/channels.md, "Who may subscribe and publish"): private- and presence- channels need a
// grant (the token's `channels` claim, by id or glob, or a subscription token on the frame,
// verified by the data plane), `#user,...` channels are for the users they name, and client
// publishing needs the channel's client_publish. The backend's gRPC calls are never restricted.
// stores: memory, etcd
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startSystem } = require('../lib/harness');
const { WsClient } = require('../lib/wsclient');
const { SseClient, ssePost } = require('../lib/sseclient');
const F = require('../lib/frames');
const T = require('../lib/tokens');
const { uniq } = require('../lib/util');
const { call, status } = require('../lib/grpc');

const enc = encodeURIComponent;
const json = (v) => Buffer.from(JSON.stringify(v));

describe('channel authorization', { timeout: 180000 }, () => {
  const K = {};
  let sys;
  const closers = [];

  before(async () => {
    K.dir = T.tempDir();
    K.hmac = T.hmacSecret(K.dir);
    K.es = await T.keyPair('ES256', { dir: K.dir });
    K.stranger = await T.keyPair('ES256'); // configured nowhere
    sys = await startSystem({
      devMode: false,
      cpArgs: ['--auto-create-channels'],
      dpArgs: ['--jwt-hmac-secret-file', K.hmac.file, '--jwt-public-key-file', K.es.pemFile],
    });
  });
  after(async () => {
    for (const c of closers.splice(0)) await c();
    if (sys) await sys.stop();
    T.rmTempDir(K.dir);
  });

  const token = (sub, o = {}) => T.mint({ key: K.hmac, sub, ...o });

  async function ws(sub, o = {}) {
    const t = await token(sub, o);
    const c = await WsClient.connect(`${sys.httpBase.replace(/^http/, 'ws')}/ws?token=${enc(t)}`);
    closers.push(() => c.close());
    return c;
  }

  async function sse(sub, channels, o = {}) {
    const t = await token(sub, o);
    const c = await SseClient.connect(`${sys.httpBase}/sse?token=${enc(t)}&channels=${channels}`);
    closers.push(async () => c.close());
    c.token = t;
    return c;
  }

  async function channel(id, clientPublish = false) {
    return call(sys.api.channels, 'CreateChannel', { channel_id: id, client_publish: clientPublish });
  }

  const subscribers = async (id) => (await call(sys.api.channels, 'ListSubscribers', { channel_id: id })).user_ids;
  const sub = (c, id, extra = {}) => c.request({ type: 'subscribe', channel_id: id, ...extra });
  const acked = (f) => assert.equal(f.type, 'ack', JSON.stringify(f));
  const refused = (f, code) => F.assertError(f, code, f.ref);

  it('private- and presence- channels refuse a subscribe without a grant: WebSocket, SSE ?channels=, POST', async () => {
    for (const kind of ['private', 'presence']) {
      const id = uniq(`${kind}-x`);
      await channel(id);
      const user = uniq('u');
      const c = await ws(user);
      F.assertError(await sub(c, id, { ref: 's1' }), 'permission_denied', 's1');
      // The connection stays open.
      F.assertFrame(await c.request({ type: 'ping', ref: 'p' }), { type: 'pong', ref: 'p' });

      const s = await sse(uniq('u'), enc(id));
      const e = await s.next((x) => x.event === 'error');
      F.assertFrame(e.data, { type: 'error', code: 'permission_denied', message: F.NONEMPTY }, { ref: F.STRING });
      const p = await ssePost(sys.httpBase, s.connected.connection_id, { type: 'subscribe', channel_id: id, ref: 'ps' }, { query: `token=${enc(s.token)}` });
      assert.equal(p.status, 403, p.body);
      F.assertError(p.frame, 'permission_denied', 'ps');
      assert.deepEqual(await subscribers(id), []);

      // A refused subscribe never auto-creates the channel.
      const missing = uniq(`${kind}-missing`);
      refused(await sub(c, missing), 'permission_denied');
      const listed = (await call(sys.api.channels, 'ListChannels', { pattern: missing })).channels;
      assert.deepEqual(listed, []);
    }
  });

  it('the channels claim grants by exact id and by glob; a glob that does not match grants nothing', async () => {
    const exact = uniq('private-exact');
    const team = uniq('team');
    const inGlob = `private-${team}.red`;
    const deeper = `private-${team}.red.x`;
    const presence = uniq('presence-lobby');
    for (const id of [exact, inGlob, deeper, presence]) await channel(id);
    const user = uniq('u');
    const claims = { channels: [exact, `private-${team}.*`, 'presence-nothing-*'] };
    const c = await ws(user, claims);
    acked(await sub(c, exact));
    acked(await sub(c, inGlob));
    refused(await sub(c, deeper), 'permission_denied');
    refused(await sub(c, presence), 'permission_denied');
    assert.deepEqual(await subscribers(exact), [user]);
    assert.deepEqual(await subscribers(deeper), []);
    // The same claim on SSE: ?channels= subscribes.
    const sUser = uniq('u');
    const s = await sse(sUser, enc(exact), claims);
    await s.next((x) => x.event === 'ack', 5000);
    assert.deepEqual((await subscribers(exact)).sort(), [user, sUser].sort());
    // A granted subscriber receives the backend's messages.
    const r = await call(sys.api.messages, 'BroadcastToChannel', { channel_id: exact, data: json({ n: 1 }) });
    await c.next({ type: 'message', id: r.message_id });
    await s.next((x) => x.event === 'message' && x.data.id === r.message_id);
  });

  it('a subscription token on the frame grants; wrong sub, wrong channel, expired, bad signature or an unknown key are unauthorized', async () => {
    const id = uniq('private-tok');
    const pid = uniq('presence-tok');
    await channel(id);
    await channel(pid);
    const user = uniq('u');
    const c = await ws(user);
    const now = T.nowSec();
    const good = await token(user, { channel: id });
    const bad = {
      'wrong sub': await token(uniq('other'), { channel: id }),
      'wrong channel': await token(user, { channel: pid }),
      'no channel claim': await token(user),
      expired: await token(user, { channel: id, exp: now - 3600, iat: now - 7200 }),
      'bad signature': T.tamper(await token(user, { channel: pid }), { channel: id }),
      'unknown key': await T.mint({ key: K.stranger, sub: user, channel: id }),
    };
    for (const [why, t] of Object.entries(bad)) {
      const f = await sub(c, id, { token: t, ref: why.replace(/ /g, '_') });
      F.assertError(f, 'unauthorized', why.replace(/ /g, '_'));
    }
    assert.deepEqual(await subscribers(id), []);
    F.assertFrame(await c.request({ type: 'ping', ref: 'alive' }), { type: 'pong', ref: 'alive' });
    acked(await sub(c, id, { token: good }));
    assert.deepEqual(await subscribers(id), [user]);
    // Signed by the other configured key (ES256) and on a presence channel, through POST.
    const s = await sse(uniq('u'), '');
    const sUser = s.connected.user_id;
    const es = await T.mint({ key: K.es, sub: sUser, channel: pid });
    const p = await ssePost(sys.httpBase, s.connected.connection_id, { type: 'subscribe', channel_id: pid, token: es, ref: 'pt' }, { query: `token=${enc(s.token)}` });
    F.assertFrame(p.frame, { type: 'ack', ref: 'pt' });
    assert.deepEqual(await subscribers(pid), [sUser]);
  });

  it('#user channels: subscribed by the users they name only (any channel kind); gRPC Subscribe is not restricted', async () => {
    const [alice, bob, carol] = [uniq('alice'), uniq('bob'), uniq('carol')];
    const note = `notifications#${alice}`;
    const dm = `${uniq('dm')}#${alice},${bob}`;
    const pdm = `${uniq('private-dm')}#${alice},${bob}`;
    const created = await channel(note);
    assert.equal(created.id, note);
    await channel(dm);
    await channel(pdm);
    const a = await ws(alice);
    const b = await ws(bob);
    const cc = await ws(carol);
    acked(await sub(a, note));
    refused(await sub(b, note), 'permission_denied');
    acked(await sub(a, dm));
    acked(await sub(b, dm));
    refused(await sub(cc, dm), 'permission_denied');
    // On a private channel both rules hold: named and granted.
    refused(await sub(a, pdm), 'permission_denied');
    acked(await sub(a, pdm, { token: await token(alice, { channel: pdm }) }));
    refused(await sub(cc, pdm, { token: await token(carol, { channel: pdm }) }), 'permission_denied');
    assert.deepEqual((await subscribers(dm)).sort(), [alice, bob].sort());
    // SSE ?channels= takes a single-user suffix ('#' sent as %23).
    const s = await sse(alice, enc(note));
    await s.next((x) => x.event === 'ack', 5000);
    const r = await call(sys.api.messages, 'BroadcastToChannel', { channel_id: dm, data: json('hi') });
    await a.next({ type: 'message', id: r.message_id, channel_id: dm });
    await b.next({ type: 'message', id: r.message_id });
    await cc.none({ type: 'message' }, 200);
    // The backend may subscribe anyone.
    await call(sys.api.channels, 'Subscribe', { channel_id: dm, user_id: carol });
    await call(sys.api.channels, 'Subscribe', { channel_id: pdm, user_id: carol });
    assert.ok((await subscribers(dm)).includes(carol));
  });

  it('channel ids: one trailing #user,user part; anything else is invalid_message', async () => {
    const c = await ws(uniq('u'));
    for (const id of ['dm#', 'dm#a,,b', 'dm#a,', '#a', 'dm#a#b', 'dm,a', 'dm#a b']) {
      refused(await sub(c, id), 'invalid_message');
      await assert.rejects(channel(id), (e) => e.code === status.INVALID_ARGUMENT && /invalid_message/.test(e.message));
    }
  });

  it('client_publish: off refuses a client publish; on lets subscribers publish and the others receive', async () => {
    const off = uniq('news-off');
    const on = uniq('news-on');
    const created = await channel(off);
    assert.equal(created.client_publish, false);
    assert.equal((await channel(on, true)).client_publish, true);
    const listed = (await call(sys.api.channels, 'ListChannels', { pattern: on })).channels;
    assert.equal(listed.length, 1);
    assert.equal(listed[0].client_publish, true);
    const [u1, u2, outsider] = [uniq('u1'), uniq('u2'), uniq('out')];
    const a = await ws(u1);
    const b = await ws(u2);
    const o = await ws(outsider);
    for (const id of [off, on]) {
      acked(await sub(a, id));
      acked(await sub(b, id));
    }
    F.assertError(await a.request({ type: 'publish', channel_id: off, data: 1, ref: 'off' }), 'permission_denied', 'off');
    const ack = await a.request({ type: 'publish', channel_id: on, data: { t: 'hi' }, ref: 'on' });
    F.assertFrame(ack, { type: 'ack', ref: 'on', id: F.MSG_ID });
    await b.next({ type: 'message', id: ack.id, channel_id: on, user_id: u1 });
    await a.next({ type: 'message', id: ack.id });
    // A public channel: a publisher need not be subscribed.
    acked(await o.request({ type: 'publish', channel_id: on, data: 2 }));
    // The backend's BroadcastToChannel is never restricted.
    const r = await call(sys.api.messages, 'BroadcastToChannel', { channel_id: off, data: json('svc') });
    await b.next({ type: 'message', id: r.message_id, channel_id: off });
    // A channel created by a client subscribe has client_publish off.
    const auto = uniq('auto');
    acked(await sub(a, auto));
    refused(await a.request({ type: 'publish', channel_id: auto, data: 1 }), 'permission_denied');
    const autoListed = (await call(sys.api.channels, 'ListChannels', { pattern: auto })).channels;
    assert.equal(autoListed[0].client_publish, false);
  });

  it('client_publish on a private channel: its subscribers publish, nobody else', async () => {
    const id = uniq('private-room');
    await channel(id, true);
    const [u1, u2, outsider] = [uniq('u1'), uniq('u2'), uniq('out')];
    const a = await ws(u1, { channels: [id] });
    const b = await ws(u2, { channels: [id] });
    const granted = await ws(outsider, { channels: [id] }); // granted but not subscribed
    acked(await sub(a, id));
    acked(await sub(b, id));
    const ack = await a.request({ type: 'publish', channel_id: id, data: 'p' });
    acked(ack);
    await b.next({ type: 'message', id: ack.id, channel_id: id });
    F.assertError(await granted.request({ type: 'publish', channel_id: id, data: 'x', ref: 'g' }), 'permission_denied', 'g');
    await b.none({ type: 'message', data: 'x' }, 200);
    // #user channels take publishes from the users they name only.
    const dm = `${uniq('dm')}#${u1},${u2}`;
    await channel(dm, true);
    acked(await b.request({ type: 'publish', channel_id: dm, data: 1 }));
    refused(await granted.request({ type: 'publish', channel_id: dm, data: 1 }), 'permission_denied');
  });

  it('public channels: any authenticated user subscribes, as before', async () => {
    const id = uniq('news');
    await channel(id);
    const users = [uniq('u'), uniq('u')];
    for (const u of users) acked(await sub(await ws(u), id));
    assert.deepEqual((await subscribers(id)).sort(), users.sort());
    const s = await sse(uniq('u'), enc(id));
    await s.next((x) => x.event === 'ack', 5000);
    await s.none((x) => x.event === 'error', 100);
  });
});
