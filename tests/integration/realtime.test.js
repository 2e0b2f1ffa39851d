// Realtime (/realtime/v1/websocket) with the real supabase-js client: postgres_changes
// with per-subscriber RLS and filters, broadcast (self, ack, vsn 1.0.0 and 2.0.0),
// presence between two clients, token checks and expiry, channel limits; and raw
// WebSocket frames that break the protocol (unmasked, oversized, invalid UTF-8,
// fragmented control frames), which must close the socket with the right code
// and leave the server serving.
//
// "Did not receive" is asserted with a sentinel: events reach one connection in
// commit order, so once the sentinel that was committed after an event has
// arrived, that event would have arrived too. No timing thresholds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import WebSocket from 'ws';
import * as h from './helpers.js';

let server;
let alice; // {client, user, session}
let bob;

const MAX_MESSAGE = 4096;
// Each test's own bound (a hang fails the test instead of the whole run).
const T = { timeout: 30000 };

before(async () => {
  server = await h.startServer({ REALTIME_MAX_MESSAGE_BYTES: String(MAX_MESSAGE), REALTIME_MAX_CHANNELS: '3' });
  alice = await h.signUpUser(server);
  bob = await h.signUpUser(server);
});

after(async () => {
  for (const u of [alice, bob]) if (u) await u.client.removeAllChannels();
  if (server) await server.stop();
});

/** Polls until pred() is true (the test's own timeout bounds the wait). */
async function waitFor(pred, what = 'condition') {
  for (;;) {
    const v = pred();
    if (v) return v;
    await h.sleep(20);
  }
}

/** Subscribes and resolves the first status other than CLOSED: [status, error]. */
function subscribe(channel) {
  return new Promise((resolve) => {
    channel.subscribe((status, err) => {
      if (status !== 'CLOSED') resolve([status, err]);
    });
  });
}

async function subscribed(channel) {
  const [status, err] = await subscribe(channel);
  assert.equal(status, 'SUBSCRIBED', `subscribe failed: ${err && err.message}`);
  return channel;
}

/** A client signed in as an existing user (its own session and socket). */
async function signedIn(u) {
  const s = await h.signIn(server, u.email);
  // realtime-js takes the session token from the auth client on connect
  s.client.realtime.setAuth(s.session.access_token);
  return s;
}

async function insertCampaign(c, fields) {
  const { data, error } = await c.from('campaigns').insert({ type: 'email', ...fields }).select().single();
  h.noError(error, 'insert campaign');
  return data;
}

test('postgres_changes: a user receives own inserts, updates and deletes, never another user\'s rows', T, async () => {
  const a = await signedIn(alice);
  const b = await signedIn(bob);
  const gotA = [];
  const gotB = [];
  const chA = a.client.channel('changes-a').on('postgres_changes', { event: '*', schema: 'public', table: 'campaigns' }, (p) => gotA.push(p));
  const chB = b.client.channel('changes-b').on('postgres_changes', { event: '*', schema: 'public', table: 'campaigns' }, (p) => gotB.push(p));
  await subscribed(chA);
  await subscribed(chB);

  const rowA = await insertCampaign(a.client, { name: 'alice secret' });
  const rowB = await insertCampaign(b.client, { name: 'bob secret' });
  const sentinelA = await insertCampaign(a.client, { name: 'alice sentinel' });
  const sentinelB = await insertCampaign(b.client, { name: 'bob sentinel' });

  await waitFor(() => gotA.some((p) => p.new.id === sentinelA.id));
  await waitFor(() => gotB.some((p) => p.new.id === sentinelB.id));
  const insA = gotA.find((p) => p.new.id === rowA.id);
  assert.ok(insA, 'alice got her insert');
  assert.equal(insA.eventType, 'INSERT');
  assert.equal(insA.schema, 'public');
  assert.equal(insA.table, 'campaigns');
  assert.equal(insA.new.name, 'alice secret');
  assert.equal(insA.new.user_id, alice.user.id);
  assert.deepEqual(insA.old, {});
  assert.match(insA.commit_timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(insA.errors, null);
  assert.ok(!gotA.some((p) => p.new.id === rowB.id || p.new.id === sentinelB.id), 'alice must not see bob\'s rows');
  assert.ok(!gotB.some((p) => p.new.id === rowA.id || p.new.id === sentinelA.id), 'bob must not see alice\'s rows');

  // UPDATE: new row, old_record = primary key (REPLICA IDENTITY DEFAULT)
  const { error: ue } = await a.client.from('campaigns').update({ name: 'alice renamed' }).eq('id', rowA.id);
  h.noError(ue, 'update');
  const upd = await waitFor(() => gotA.find((p) => p.eventType === 'UPDATE' && p.new.id === rowA.id));
  assert.equal(upd.new.name, 'alice renamed');
  assert.deepEqual(upd.old, { id: rowA.id });

  // DELETE: old_record is the primary key only (RLS is on)
  const { error: de } = await a.client.from('campaigns').delete().eq('id', rowA.id);
  h.noError(de, 'delete');
  const del = await waitFor(() => gotA.find((p) => p.eventType === 'DELETE' && p.old.id === rowA.id));
  assert.deepEqual(del.old, { id: rowA.id });
  assert.deepEqual(del.new, {});

  // bob's update of his own row reaches bob only
  const { error: be } = await b.client.from('campaigns').update({ name: 'bob renamed' }).eq('id', rowB.id);
  h.noError(be, 'bob update');
  await waitFor(() => gotB.some((p) => p.eventType === 'UPDATE' && p.new.id === rowB.id));
  const sentinel2 = await insertCampaign(a.client, { name: 'alice sentinel 2' });
  await waitFor(() => gotA.some((p) => p.new.id === sentinel2.id));
  assert.ok(!gotA.some((p) => p.new && p.new.id === rowB.id), 'alice must not see bob\'s update');

  await a.client.removeAllChannels();
  await b.client.removeAllChannels();
});

test('postgres_changes: event types and filters (eq, neq, in) select what is sent', T, async () => {
  const a = await signedIn(alice);
  const inserts = [];
  const activeOnly = [];
  const smsOrSocial = [];
  const notDraft = [];
  const updates = [];
  const ch = a.client
    .channel('filters')
    .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'campaigns' }, (p) => inserts.push(p))
    .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'campaigns', filter: 'status=eq.scheduled' }, (p) => activeOnly.push(p))
    .on('postgres_changes', { event: '*', schema: 'public', table: 'campaigns', filter: 'type=in.(sms,social)' }, (p) => smsOrSocial.push(p))
    .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'campaigns', filter: 'status=neq.draft' }, (p) => notDraft.push(p))
    .on('postgres_changes', { event: 'UPDATE', schema: 'public', table: 'campaigns' }, (p) => updates.push(p));
  await subscribed(ch);

  const draft = await insertCampaign(a.client, { name: 'f draft', status: 'draft' });
  // a new campaign is draft or scheduled (the database's state machine, 018)
  const when = new Date(Date.now() + 86400e3).toISOString();
  const active = await insertCampaign(a.client, { name: 'f scheduled', status: 'scheduled', scheduled_date: when });
  const sms = await insertCampaign(a.client, { name: 'f sms', type: 'sms' });
  const last = await insertCampaign(a.client, { name: 'f last', type: 'social', status: 'draft' });
  await waitFor(() => inserts.some((p) => p.new.id === last.id));
  await waitFor(() => smsOrSocial.some((p) => p.new.id === last.id));

  assert.deepEqual(inserts.map((p) => p.new.id), [draft.id, active.id, sms.id, last.id]);
  assert.deepEqual(activeOnly.map((p) => p.new.id), [active.id]);
  assert.deepEqual(smsOrSocial.map((p) => p.new.id), [sms.id, last.id]);
  assert.deepEqual(notDraft.map((p) => p.new.id), [active.id]);
  assert.equal(updates.length, 0, 'INSERT-only bindings must not fire UPDATE callbacks');
  await a.client.removeAllChannels();
});

test('postgres_changes: an admin (RLS lets admins read every campaign) sees other users\' rows', T, async () => {
  const email = h.uniqueEmail('rtadmin');
  const add = await server.run(['user', 'add', '--email', email, '--password', h.PASSWORD, '--role', 'admin']);
  assert.equal(add.code, 0, add.stderr);
  const admin = await h.signIn(server, email);
  admin.client.realtime.setAuth(admin.session.access_token);
  const got = [];
  await subscribed(admin.client.channel('admin-watch').on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'campaigns' }, (p) => got.push(p)));
  const b = await signedIn(bob);
  const row = await insertCampaign(b.client, { name: 'seen by admin' });
  await waitFor(() => got.some((p) => p.new.id === row.id));
  await admin.client.removeAllChannels();
});

test('broadcast: to others (self false), to self with ack, across vsn 1.0.0 and 2.0.0', T, async () => {
  const c1 = h.client(server); // vsn 2.0.0 (default): binary broadcast frames
  const c2 = h.client(server, server.anonKey, { realtime: { params: { vsn: '1.0.0' }, vsn: '1.0.0' } });
  const got1 = [];
  const got2 = [];
  const ch1 = c1.channel('chat', { config: { broadcast: { self: false } } }).on('broadcast', { event: 'msg' }, (p) => got1.push(p));
  const ch2 = c2.channel('chat').on('broadcast', { event: 'msg' }, (p) => got2.push(p));
  await subscribed(ch1);
  await subscribed(ch2);
  assert.equal(c2.realtime.vsn, '1.0.0');
  assert.equal(c1.realtime.vsn, '2.0.0');

  assert.equal(await ch1.send({ type: 'broadcast', event: 'msg', payload: { from: 1, text: 'héllo' } }), 'ok');
  const m = await waitFor(() => got2.find((p) => p.payload.from === 1));
  assert.deepEqual(m, { type: 'broadcast', event: 'msg', payload: { from: 1, text: 'héllo' } });
  assert.equal(await ch2.send({ type: 'broadcast', event: 'msg', payload: { from: 2 } }), 'ok');
  await waitFor(() => got1.some((p) => p.payload.from === 2));
  assert.ok(!got1.some((p) => p.payload.from === 1), 'self:false must not echo to the sender');
  assert.ok(!got2.some((p) => p.payload.from === 2), 'default self:false');

  // self + ack
  const c3 = h.client(server);
  const got3 = [];
  const ch3 = c3.channel('chat', { config: { broadcast: { self: true, ack: true } } }).on('broadcast', { event: 'msg' }, (p) => got3.push(p));
  await subscribed(ch3);
  assert.equal(await ch3.send({ type: 'broadcast', event: 'msg', payload: { from: 3 } }), 'ok');
  await waitFor(() => got3.some((p) => p.payload.from === 3));
  await waitFor(() => got1.some((p) => p.payload.from === 3));
  await waitFor(() => got2.some((p) => p.payload.from === 3));
  for (const c of [c1, c2, c3]) await c.removeAllChannels();
});

test('presence: two clients see each other join, sync and leave', T, async () => {
  const c1 = h.client(server);
  const c2 = h.client(server, server.anonKey, { realtime: { vsn: '1.0.0' } });
  const ch1 = c1.channel('lobby', { config: { presence: { key: 'one' } } });
  const ch2 = c2.channel('lobby', { config: { presence: { key: 'two' } } });
  const leaves1 = [];
  let syncs1 = 0;
  ch1.on('presence', { event: 'sync' }, () => syncs1++).on('presence', { event: 'leave' }, (p) => leaves1.push(p));
  ch2.on('presence', { event: 'sync' }, () => {});
  await subscribed(ch1);
  await subscribed(ch2);
  assert.equal(await ch1.track({ name: 'Ada' }), 'ok');
  assert.equal(await ch2.track({ name: 'Grace' }), 'ok');
  await waitFor(() => Object.keys(ch1.presenceState()).length === 2 && Object.keys(ch2.presenceState()).length === 2);
  const s1 = ch1.presenceState();
  assert.equal(s1.one[0].name, 'Ada');
  assert.equal(s1.two[0].name, 'Grace');
  assert.ok(s1.two[0].presence_ref, 'metas carry a presence_ref');
  assert.ok(syncs1 > 0);

  // re-track replaces the meta, untrack removes it
  assert.equal(await ch2.track({ name: 'Grace H.' }), 'ok');
  await waitFor(() => ch1.presenceState().two?.length === 1 && ch1.presenceState().two[0].name === 'Grace H.');
  assert.equal(await ch2.untrack(), 'ok');
  await waitFor(() => !ch1.presenceState().two);
  assert.ok(leaves1.some((p) => p.key === 'two'));

  // a late joiner gets the current state
  const c3 = h.client(server);
  const ch3 = c3.channel('lobby', { config: { presence: { key: 'three' } } }).on('presence', { event: 'sync' }, () => {});
  await subscribed(ch3);
  await waitFor(() => ch3.presenceState().one?.[0]?.name === 'Ada');
  // leaving the channel is a leave for the others
  await c1.removeAllChannels();
  await waitFor(() => !ch3.presenceState().one);
  for (const c of [c2, c3]) await c.removeAllChannels();
});

test('tokens: a join with an expired token is refused; a token that expires closes the channel', T, async () => {
  const secret = h.jwtSecret(server);
  const now = Math.floor(Date.now() / 1000);
  const claims = (exp) => ({ sub: alice.user.id, role: 'authenticated', aud: 'authenticated', exp, iat: now, email: alice.email, session_id: crypto.randomUUID() });

  const c1 = h.client(server);
  await c1.realtime.setAuth(h.signJwt(claims(now - 120), secret));
  const [st, err] = await subscribe(c1.channel('expired'));
  assert.equal(st, 'CHANNEL_ERROR');
  assert.match(String(err && err.message), /Token has expired/);
  await c1.removeAllChannels();

  const c2 = h.client(server);
  await c2.realtime.setAuth(h.signJwt(claims(now + 3), secret));
  const statuses = [];
  const systems = [];
  const ch = c2.channel('short-lived').on('system', {}, (p) => systems.push(p));
  ch.subscribe((s) => statuses.push(s));
  await waitFor(() => statuses.includes('SUBSCRIBED'));
  await waitFor(() => statuses.includes('CLOSED') || statuses.includes('CHANNEL_ERROR'));
  assert.ok(systems.some((p) => p.status === 'error' && /Token has expired/.test(p.message)), JSON.stringify(systems));

  // a forged token (wrong secret) is refused at join
  const c3 = h.client(server);
  await c3.realtime.setAuth(h.signJwt(claims(now + 3600), 'not-the-secret-not-the-secret-123'));
  const [st3, err3] = await subscribe(c3.channel('forged'));
  assert.equal(st3, 'CHANNEL_ERROR');
  assert.match(String(err3 && err3.message), /not a valid JWT/);
  for (const c of [c2, c3]) await c.removeAllChannels();
});

test('access_token: a refreshed token keeps the channel and its RLS identity', T, async () => {
  const a = await signedIn(alice);
  const got = [];
  const ch = a.client.channel('refresh').on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'campaigns' }, (p) => got.push(p));
  await subscribed(ch);
  const again = await h.signIn(server, alice.email);
  await a.client.realtime.setAuth(again.session.access_token); // pushes access_token on the channel
  const row = await insertCampaign(a.client, { name: 'after refresh' });
  await waitFor(() => got.some((p) => p.new.id === row.id));
  await a.client.removeAllChannels();
});

test('postgres_changes: a row written while private and made visible before the feed runs is never sent with its old contents', T, async () => {
  const b = await signedIn(bob);
  const got = [];
  await subscribed(b.client.channel('stale').on('postgres_changes', { event: '*', schema: 'public', table: 'campaigns' }, (p) => got.push(p)));
  const secret = `stale-secret-${crypto.randomUUID()}`;
  // An open transaction whose xid is older than both writes holds the feed's
  // window back, so the feed reads the INSERT only after the UPDATE committed.
  const holder = spawn('psql', [await h.dbUrl(server), '-X', '-At', '-v', 'ON_ERROR_STOP=1'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let held = '';
  holder.stdout.on('data', (d) => (held += d));
  const holderExit = new Promise((resolve) => holder.on('exit', resolve));
  holder.stdin.write('begin;\nselect pg_current_xact_id();\n');
  await waitFor(() => /^\d+$/m.test(held), 'the holding transaction');
  // As the owner: a campaign bob may not see (alice's), with a secret name...
  const id = await h.sql(server, `with i as (insert into public.campaigns (type, name, user_id) values ('email', ${h.lit(secret)}, ${h.lit(alice.user.id)}) returning id) select id from i`);
  // ...then, in another transaction, given to bob with the secret removed.
  await h.sql(server, `update public.campaigns set user_id = ${h.lit(bob.user.id)}, name = 'now public' where id = ${h.lit(id)}`);
  holder.stdin.end('commit;\n');
  assert.equal(await holderExit, 0);
  const upd = await waitFor(() => got.find((p) => p.eventType === 'UPDATE' && p.new.id === id));
  assert.equal(upd.new.name, 'now public');
  // The INSERT came before the UPDATE in the same window: had it been sent it
  // would have arrived first.
  assert.ok(!got.some((p) => p.eventType === 'INSERT' && p.new.id === id), 'the stale INSERT must not be delivered');
  assert.ok(!JSON.stringify(got).includes(secret), 'bob must never receive the secret');
  await b.client.removeAllChannels();
});

test('limits: channels per socket (REALTIME_MAX_CHANNELS=3)', T, async () => {
  const c = h.client(server);
  for (let i = 0; i < 3; i++) await subscribed(c.channel(`limit-${i}`));
  const [st, err] = await subscribe(c.channel('limit-3'));
  assert.equal(st, 'CHANNEL_ERROR');
  assert.match(String(err && err.message), /Too many channels/);
  await c.removeAllChannels();
});

// ------------------------------------------------------------------ raw protocol

function wsUrl(params = {}) {
  const q = new URLSearchParams({ apikey: server.anonKey, vsn: '1.0.0', ...params });
  return `ws://127.0.0.1:${server.port}/realtime/v1/websocket?${q}`;
}

/** Opens a ws client and resolves it once open. */
function openWs(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    ws.once('error', reject);
  });
}

function nextMessage(ws) {
  return new Promise((resolve) => ws.once('message', (d, isBinary) => resolve(isBinary ? d : JSON.parse(d.toString()))));
}

test('raw: heartbeat, join reply echo with ids, leave, unmatched topic (vsn 1.0.0 and 2.0.0)', T, async () => {
  const ws = await openWs(wsUrl());
  ws.send(JSON.stringify({ topic: 'phoenix', event: 'heartbeat', payload: {}, ref: '1' }));
  assert.deepEqual(await nextMessage(ws), { topic: 'phoenix', event: 'phx_reply', payload: { status: 'ok', response: {} }, ref: '1', join_ref: null });
  const bindings = [
    { event: '*', schema: 'public', table: 'campaigns', filter: 'status=eq.active' },
    { event: 'INSERT', schema: 'public', table: 'reports' },
  ];
  ws.send(JSON.stringify({ topic: 'realtime:raw', event: 'phx_join', payload: { config: { postgres_changes: bindings }, access_token: server.anonKey }, ref: '2', join_ref: '2' }));
  const r = await nextMessage(ws);
  assert.equal(r.event, 'phx_reply');
  assert.equal(r.ref, '2');
  assert.equal(r.payload.status, 'ok');
  const echo = r.payload.response.postgres_changes;
  assert.equal(echo.length, 2);
  for (let i = 0; i < 2; i++) {
    const { id, ...rest } = echo[i];
    assert.deepEqual(rest, bindings[i]);
    assert.ok(Number.isInteger(id) && id > 0);
  }
  assert.notEqual(echo[0].id, echo[1].id);
  const sys = await nextMessage(ws);
  assert.equal(sys.event, 'system');
  assert.equal(sys.payload.status, 'ok');
  ws.send(JSON.stringify({ topic: 'realtime:nope', event: 'broadcast', payload: { type: 'broadcast', event: 'x', payload: {} }, ref: '3' }));
  const un = await nextMessage(ws);
  assert.equal(un.payload.status, 'error');
  ws.send(JSON.stringify({ topic: 'realtime:raw', event: 'phx_leave', payload: {}, ref: '4', join_ref: '2' }));
  const lv = await nextMessage(ws);
  assert.equal(lv.event, 'phx_reply');
  assert.equal(lv.payload.status, 'ok');
  assert.equal((await nextMessage(ws)).event, 'phx_close');
  ws.close();

  const ws2 = await openWs(wsUrl({ vsn: '2.0.0' }));
  ws2.send(JSON.stringify([null, '9', 'phoenix', 'heartbeat', {}]));
  assert.deepEqual(await nextMessage(ws2), [null, '9', 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);
  ws2.close();
});

test('raw: the upgrade needs a valid apikey', T, async () => {
  await assert.rejects(openWs(`ws://127.0.0.1:${server.port}/realtime/v1/websocket?vsn=1.0.0`), (e) => e.status === 401);
  await assert.rejects(openWs(wsUrl({ apikey: 'not.a.jwt' })), (e) => e.status === 401);
  const r = await h.request(`${server.url}/realtime/v1/websocket?apikey=${server.anonKey}`);
  assert.equal(r.status, 426, 'plain GET without Upgrade');
});

/** Does the WebSocket handshake by hand on a raw socket; resolves {sock, data()}. */
function rawWs() {
  return new Promise((resolve, reject) => {
    const sock = net.connect(server.port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let upgraded = false;
    let closed = false;
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        if (!/^HTTP\/1\.1 101 /.test(head)) return reject(new Error(head));
        upgraded = true;
        buf = buf.subarray(end + 4);
        resolve({ sock, data: () => buf, closed: () => closed });
      }
    });
    sock.on('close', () => (closed = true));
    sock.on('error', () => (closed = true));
    const key = crypto.randomBytes(16).toString('base64');
    sock.write(`GET /realtime/v1/websocket?apikey=${server.anonKey}&vsn=1.0.0 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  });
}

function frame(opcode, payload, { fin = true, mask = true } = {}) {
  const len = payload.length;
  const head = [((fin ? 0x80 : 0) | opcode)];
  const m = mask ? 0x80 : 0;
  if (len < 126) head.push(m | len);
  else if (len < 65536) head.push(m | 126, len >> 8, len & 255);
  else {
    head.push(m | 127, 0, 0, 0, 0);
    head.push((len >>> 24) & 255, (len >>> 16) & 255, (len >>> 8) & 255, len & 255);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = crypto.randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ key[i % 4]));
  return Buffer.concat([Buffer.from(head), key, body]);
}

/** Sends bytes and waits for the server's close frame; returns its status code. */
async function closeCodeAfter(bytes) {
  const c = await rawWs();
  c.sock.write(bytes);
  const code = await waitFor(() => {
    const d = c.data();
    for (let i = 0; i + 1 < d.length; ) {
      const op = d[i] & 15;
      let len = d[i + 1] & 127;
      let off = i + 2;
      if (len === 126) {
        len = d.readUInt16BE(off);
        off += 2;
      }
      if (op === 8 && off + 2 <= d.length) return d.readUInt16BE(off);
      i = off + len;
    }
    if (c.closed()) return -1;
    return 0;
  });
  c.sock.destroy();
  return code;
}

test('raw: protocol violations close the socket with RFC 6455 codes and the server keeps serving', T, async () => {
  const text = (s) => Buffer.from(s);
  assert.equal(await closeCodeAfter(frame(1, text('{"topic":"phoenix"}'), { mask: false })), 1002, 'unmasked client frame');
  assert.equal(await closeCodeAfter(frame(1, Buffer.alloc(MAX_MESSAGE + 1, 0x61))), 1009, 'message over the limit');
  assert.equal(await closeCodeAfter(frame(1, Buffer.from([0x7b, 0xc3, 0x28, 0x7d]))), 1007, 'invalid UTF-8 text');
  assert.equal(await closeCodeAfter(frame(9, text('ping'), { fin: false })), 1002, 'fragmented ping');
  assert.equal(await closeCodeAfter(frame(3, text('x'))), 1002, 'reserved opcode');
  assert.equal(await closeCodeAfter(frame(1, text('this is not json'))), 1007, 'not a Phoenix message');
  const health = await h.request(`${server.url}/health`);
  assert.equal(health.status, 200);
  // and realtime still works
  const ws = await openWs(wsUrl());
  ws.send(JSON.stringify({ topic: 'phoenix', event: 'heartbeat', payload: {}, ref: '1' }));
  assert.equal((await nextMessage(ws)).payload.status, 'ok');
  ws.close();
});

/** The socket fds the server process has open (as "socket:[inode]" links). */
function serverSockets() {
  const dir = `/proc/${server.process.pid}/fd`;
  const out = new Set();
  for (const fd of fs.readdirSync(dir)) {
    try {
      const l = fs.readlinkSync(`${dir}/${fd}`);
      if (l.startsWith('socket:')) out.add(l);
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

test('raw: a ping flood from a client that never reads is cut off, and the closing socket is freed', { timeout: 60000 }, async () => {
  const before = serverSockets();
  const c = await rawWs();
  c.sock.pause(); // never read again, never close
  const ping = frame(9, Buffer.alloc(125, 0x70));
  const chunk = Buffer.concat(Array(512).fill(ping));
  // 3x the 8 MiB output bound in pongs (node buffers what the server does not take)
  for (let sent = 0; sent < 3 * 8 * 1048576; sent += chunk.length) c.sock.write(chunk);
  const mine = await waitFor(() => {
    const now = [...serverSockets()].filter((s) => !before.has(s));
    return now.length ? now : null;
  }, 'the upgraded socket');
  // The server stops reading (cut off with 1008, its close frame stuck behind
  // the pongs): what node still has to write then stops shrinking.
  let last = -1;
  await waitFor(() => {
    const w = c.sock.writableLength;
    const stalled = w > 0 && w === last;
    last = w;
    if (!stalled) return false;
    return true;
  }, 'the server to stop reading');
  assert.ok(c.sock.writableLength > 0, 'the server must not read the whole flood');
  // That the loop does not spin meanwhile (level-triggered EPOLLIN on a socket
  // whose reads are shut down) is a CPU measurement: bench/realtime/ping_flood.mjs.
  // The closing connection is freed (about 5 s after the close began) although
  // the client neither reads nor closes.
  await waitFor(() => {
    const now = serverSockets();
    return mine.every((s) => !now.has(s));
  }, 'the server to free the connection');
  c.sock.destroy();
  assert.equal((await h.request(`${server.url}/health`)).status, 200);
});
