// The security review's findings (issue 9 §3), one regression test each, through
// the real binary: stored XSS through storage (inline only for passive types,
// nosniff and CSP sandbox everywhere), storage copy/move obeying the destination
// bucket's limits, schema reloads only for the request's own missing table, the
// encryption key never in a statement (grepped from PostgreSQL's log with
// log_statement = all) nor readable by API roles, an overflowing Range header,
// presence and broadcast memory caps, and the service-role key kept out of the log.
// (CSV injection is unit-tested in tests/unit/test_api.c; the sign-in lock-out in
// auth-attacks.test.js and tests/sql/023_login_throttle.sql.)
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import {
  startServer, client, signUpUser, noError, request, sql, sleep,
} from './helpers.js';

const KEY = 'sec-review-key-0123456789abcdef-DO-NOT-LOG';
let server;
let service;

before(async () => {
  server = await startServer({
    CAMPAIGND_ENCRYPTION_KEY: KEY,
    LOG_LEVEL: 'info',
    REALTIME_MAX_PRESENCE_BYTES: '4096',
    REALTIME_MAX_PRESENCE_PER_TOPIC: '3',
    REALTIME_MAX_PRESENCE_PER_CONNECTION: '2',
    REALTIME_MAX_BROADCAST_BYTES: '8192',
  });
  service = client(server, server.serviceKey);
  for (const [id, opts] of [
    ['xss', { public: true }],
    ['free', { public: false }],
    ['small', { public: false, fileSizeLimit: 10, allowedMimeTypes: ['image/png', 'text/plain'] }],
    ['pngs', { public: false, allowedMimeTypes: ['image/png'] }],
  ]) noError((await service.storage.createBucket(id, opts)).error, `createBucket(${id})`);
});

after(async () => {
  await server?.stop();
});

/** Asserts a storage-js error with Storage's statusCode string. */
function storageError(res, statusCode, what) {
  assert.ok(res.error, `${what}: expected an error, got data ${JSON.stringify(res.data)?.slice(0, 200)}`);
  assert.equal(res.error.statusCode, statusCode, `${what}: ${res.error.message}`);
}

function assertHardened(headers, what) {
  const get = (n) => (typeof headers.get === 'function' ? headers.get(n) : headers[n]);
  assert.equal(get('x-content-type-options'), 'nosniff', `${what}: nosniff`);
  assert.match(get('content-security-policy') || '', /\bsandbox\b/, `${what}: CSP sandbox`);
}

describe('§3.1 storage serves only passive types inline', () => {
  const up = async (name, body, contentType) =>
    noError((await service.storage.from('xss').upload(name, Buffer.from(body), { contentType })).error, `upload ${name}`);
  const fetchPublic = (name) => fetch(service.storage.from('xss').getPublicUrl(name).data.publicUrl);

  it('text/xsl with an XHTML script, HTML-ish and unknown types are attachments; images, PDF and text inline', async () => {
    const xsl = '<?xml version="1.0"?><xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">' +
      '<xsl:template match="/"><html xmlns="http://www.w3.org/1999/xhtml"><script>alert(document.domain)</script></html>' +
      '</xsl:template></xsl:stylesheet>';
    const cases = [
      ['a.xsl', xsl, 'text/xsl', false],
      ['a.xml', '<x/>', 'application/xml', false],
      ['a.svg', '<svg xmlns="http://www.w3.org/2000/svg"/>', 'image/svg+xml', false],
      ['a.csv', 'a,b\n1,2\n', 'text/csv', false],
      ['a.bin', 'MZ', 'application/octet-stream', false],
      ['a.js', 'alert(1)', 'text/javascript', false],
      ['a.mp4', 'xx', 'video/mp4', false],
      ['a.png', '\x89PNG\r\n', 'image/png', true],
      ['a.pdf', '%PDF-1.4', 'application/pdf', true],
      ['a.txt', 'hello', 'text/plain', true],
    ];
    for (const [name, body, type, inline] of cases) {
      await up(name, body, type);
      const res = await fetchPublic(name);
      assert.equal(res.status, 200, name);
      const cd = res.headers.get('content-disposition');
      if (inline) assert.equal(cd, null, `${name} (${type}) is served inline`);
      else assert.match(cd || '', /^attachment; filename="a\./, `${name} (${type}) is an attachment`);
      assertHardened(res.headers, name);
      await res.arrayBuffer();
    }
  });

  it('every storage response carries nosniff and CSP sandbox, errors and lists too', async () => {
    const base = `${server.url}/storage/v1`;
    const h = { apikey: server.serviceKey, authorization: `Bearer ${server.serviceKey}` };
    for (const [what, method, url, body] of [
      ['missing object', 'GET', `${base}/object/public/xss/none.html`],
      ['bucket list', 'GET', `${base}/bucket`],
      ['object list', 'POST', `${base}/object/list/xss`, JSON.stringify({ prefix: '' })],
      ['info', 'GET', `${base}/object/info/xss/a.txt`],
      ['bad path', 'GET', `${base}/object/authenticated/xss/..%2f..%2fx`],
    ]) {
      const r = await request(url, { method, headers: { ...h, 'content-type': 'application/json' }, body });
      assertHardened(r.headers, what);
    }
  });
});

describe('§3.3 storage copy and move obey the destination bucket', () => {
  before(async () => {
    const f = service.storage.from('free');
    noError((await f.upload('big.png', Buffer.alloc(100, 1), { contentType: 'image/png' })).error);
    noError((await f.upload('page.html', Buffer.from('<script>1</script>'), { contentType: 'text/html' })).error);
    noError((await f.upload('ok.txt', Buffer.from('tiny'), { contentType: 'text/plain' })).error);
  });

  it('copy: a type the destination does not allow is 415, a size over its limit 413', async () => {
    const f = service.storage.from('free');
    storageError(await f.copy('page.html', 'page.html', { destinationBucket: 'small' }), '415', 'copy html into small');
    storageError(await f.copy('big.png', 'big.png', { destinationBucket: 'small' }), '413', 'copy 100 B into a 10 B bucket');
    noError((await f.copy('ok.txt', 'ok.txt', { destinationBucket: 'small' })).error, 'a copy that fits');
    const l = await service.storage.from('small').list();
    assert.deepEqual(l.data.map((o) => o.name), ['ok.txt']);
  });

  it('move: the same checks, and a refused move leaves the source in place', async () => {
    const f = service.storage.from('free');
    storageError(await f.move('page.html', 'page.html', { destinationBucket: 'pngs' }), '415', 'move html into pngs');
    storageError(await f.move('big.png', 'big.png', { destinationBucket: 'small' }), '413', 'move 100 B into a 10 B bucket');
    noError((await f.download('page.html')).error, 'the source is still there');
    noError((await f.move('big.png', 'big.png', { destinationBucket: 'pngs' })).error, 'a move that fits');
    noError((await service.storage.from('pngs').download('big.png')).error);
  });
});

describe('§3.6 schema reload on demand', () => {
  const reloads = () => (server.log().match(/schema cache loaded .*no longer has an object/g) || []).length;

  it('a 42P01 raised for another table does not reload the schema cache', async () => {
    await sql(server, `
      create table public.sec_reload (id int primary key);
      create function public.sec_reload_trg() returns trigger language plpgsql as
        $$ begin insert into public.sec_no_such_table values (1); return new; end $$;
      create trigger t before insert on public.sec_reload for each row execute function public.sec_reload_trg();
      grant all on public.sec_reload to service_role;`);
    // wait for the DDL's own reload (NOTIFY) to be installed
    for (let i = 0; i < 200; i++) {
      const r = await service.from('sec_reload').select('id');
      if (!r.error) break;
      await sleep(50);
    }
    const before = reloads();
    for (let i = 0; i < 15; i++) {
      const r = await service.from('sec_reload').insert({ id: i });
      assert.equal(r.error?.code, '42P01', JSON.stringify(r.error));
    }
    assert.equal(reloads(), before, 'no reload for a table other than the request\'s own');
  });

  it('the request\'s own table missing reloads at most once per second', async () => {
    await sql(server, `create table public.sec_gone (id int); grant all on public.sec_gone to service_role;`);
    for (let i = 0; i < 200; i++) {
      if (!(await service.from('sec_gone').select('id')).error) break;
      await sleep(50);
    }
    // drop it without the event trigger's NOTIFY, so the cache still lists it
    await sql(server, `alter event trigger pgrst_ddl_watch disable; alter event trigger pgrst_drop_watch disable;
      drop table public.sec_gone;
      alter event trigger pgrst_ddl_watch enable; alter event trigger pgrst_drop_watch enable;`);
    const before = reloads();
    const t0 = Date.now();
    const answers = await Promise.all(Array.from({ length: 40 }, () => service.from('sec_gone').select('id')));
    const seconds = Math.ceil((Date.now() - t0) / 1000);
    for (const a of answers) assert.ok(a.error && ['PGRST205', '42P01'].includes(a.error.code), JSON.stringify(a.error));
    assert.ok(answers.some((a) => a.error.code === 'PGRST205'), 'the stale table is found out');
    const n = reloads() - before;
    assert.ok(n >= 1 && n <= seconds + 1, `${n} reloads in ${seconds} s for 40 requests`);
  });
});

describe('§3.7 the encryption key never travels in a statement', () => {
  it('log_statement = all records no key, and API roles cannot read it', async () => {
    await sql(server, `alter system set log_statement = 'all'`);
    await sql(server, `select pg_reload_conf()`);
    await sleep(500);
    try {
      // new connections are made after the setting: drop the workers' connections
      await sql(server, `select pg_terminate_backend(pid) from pg_stat_activity
        where usename = 'authenticator' and pid <> pg_backend_pid()`);
      // each worker thread reconnects before its next request; go on until
      // a whole round of parallel requests is answered
      for (let round = 0; round < 100; round++) {
        const all = await Promise.all(Array.from({ length: 24 }, () => service.from('campaigns').select('id').limit(1)));
        if (all.every((a) => !a.error)) break;
        await sleep(100);
      }
      // encrypt and decrypt through the server (a write as service_role, then a read)
      const r = await service.rpc('set_app_secret', { name: 'sendgrid_api_key', value: 'SG.secret-value-1234567890' });
      noError(r.error, 'set_app_secret');
      const g = await service.rpc('get_app_secret', { name: 'sendgrid_api_key' });
      noError(g.error, 'get_app_secret');
      assert.equal(g.data, 'SG.secret-value-1234567890');
      // an API role running SQL in a write transaction sees no key
      await sql(server, `
        create function public.sec_peek() returns text language sql volatile as $$
          select coalesce(current_setting('campaignd.encryption_key', true), '') ||
                 coalesce((select reset_val from pg_settings where name = 'campaignd.encryption_key'), '')
        $$;
        create function public.sec_peek_table() returns boolean language sql volatile as $$
          select coalesce((select has_table_privilege(c.oid, 'select')
                                  or has_table_privilege(session_user, c.oid, 'select, insert, update, delete, truncate')
                           from pg_class c where c.oid = to_regclass('pg_temp.campaignd_key')), false)
        $$;
        grant execute on function public.sec_peek(), public.sec_peek_table() to anon, authenticated, service_role;
        notify pgrst, 'reload schema';`);
      await sleep(500);
      const u = await signUpUser(server);
      for (const c of [u.client, service]) {
        const p = await c.rpc('sec_peek');
        noError(p.error, 'sec_peek');
        assert.ok(!String(p.data).includes(KEY), 'an API role read the key');
        const t = await c.rpc('sec_peek_table');
        noError(t.error, 'sec_peek_table');
        assert.equal(t.data, false, 'an API role (or the login role) may read or change the session\'s key table');
      }
    } finally {
      await sql(server, `alter system reset log_statement`);
      await sql(server, `select pg_reload_conf()`);
    }
    const pglog = fs.readFileSync(path.join(server.dataDir, 'postgres.log'), 'utf8');
    assert.match(pglog, /statement: |execute /, 'log_statement = all was in effect');
    assert.ok(!pglog.includes(KEY), 'the encryption key is in the PostgreSQL log');
    assert.ok(!server.log().includes(KEY), 'the encryption key is in the server log');
  });
});

describe('§3.8 Range headers', () => {
  // (a worker whose connection the §3.7 test cut answers 503 once, then reconnects)
  const get = async (range) => {
    for (let i = 0; ; i++) {
      const r = await request(`${server.url}/rest/v1/campaigns?select=id`, {
        headers: { apikey: server.serviceKey, authorization: `Bearer ${server.serviceKey}`, range },
      });
      if (r.status !== 503 || i === 20) return r;
      await sleep(250);
    }
  };
  it('Range: 0-9223372036854775807 does not overflow', async () => {
    const r = await get('0-9223372036854775807');
    assert.equal(r.status, 200, r.text);
    const again = await get('1-9223372036854775807');
    assert.ok([200, 206, 416].includes(again.status), again.text);
    assert.equal(server.exited(), null, 'the server is still running');
  });
});

/** A raw Phoenix (vsn 1.0.0) client: join, push, await the reply. */
async function phoenix(token) {
  const ws = new WebSocket(`${server.url.replace('http', 'ws')}/realtime/v1/websocket?apikey=${server.anonKey}&vsn=1.0.0`);
  await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
  let ref = 0;
  const waiting = new Map();
  const events = [];
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    if (m.event === 'phx_reply' && waiting.has(m.ref)) {
      waiting.get(m.ref)(m.payload);
      waiting.delete(m.ref);
    } else events.push(m);
  });
  const push = (topic, event, payload) => new Promise((resolve) => {
    const r = String(++ref);
    waiting.set(r, resolve);
    ws.send(JSON.stringify({ topic, event, payload, ref: r, join_ref: '1' }));
  });
  const join = (topic, key) => push(topic, 'phx_join', {
    config: { broadcast: { self: true, ack: true }, presence: { key, enabled: true } }, access_token: token,
  });
  return { ws, push, join, events, close: () => ws.close() };
}

describe('§3.2 presence and broadcast memory caps', () => {
  it('an over-size presence payload is refused with an error reply, not kept', async () => {
    const c = await phoenix(server.anonKey);
    try {
      assert.equal((await c.join('realtime:cap1', 'k1')).status, 'ok');
      const big = await c.push('realtime:cap1', 'presence', { type: 'presence', event: 'track', payload: { blob: 'x'.repeat(5000) } });
      assert.equal(big.status, 'error', JSON.stringify(big));
      assert.match(JSON.stringify(big.response), /presence payload/i);
      const small = await c.push('realtime:cap1', 'presence', { type: 'presence', event: 'track', payload: { n: 1 } });
      assert.equal(small.status, 'ok');
    } finally { c.close(); }
  });

  it('presence entries per connection and per topic are capped', async () => {
    const c = await phoenix(server.anonKey);
    const others = [];
    try {
      for (const t of ['a', 'b', 'c']) assert.equal((await c.join(`realtime:capc-${t}`, 'me')).status, 'ok');
      const track = (cl, t) => cl.push(t, 'presence', { type: 'presence', event: 'track', payload: { t } });
      assert.equal((await track(c, 'realtime:capc-a')).status, 'ok');
      assert.equal((await track(c, 'realtime:capc-b')).status, 'ok');
      const third = await track(c, 'realtime:capc-c');
      assert.equal(third.status, 'error', 'a 3rd tracked channel on one connection');
      assert.match(JSON.stringify(third.response), /per connection/i);
      // re-tracking a channel that already tracks is not a new entry
      assert.equal((await track(c, 'realtime:capc-a')).status, 'ok');
      // per topic: 3 entries, the 4th connection is refused
      for (let i = 0; i < 4; i++) {
        const o = await phoenix(server.anonKey);
        others.push(o);
        assert.equal((await o.join('realtime:capt', `k${i}`)).status, 'ok');
        const r = await track(o, 'realtime:capt');
        if (i < 3) assert.equal(r.status, 'ok', `entry ${i}`);
        else {
          assert.equal(r.status, 'error', 'a 4th entry in one topic');
          assert.match(JSON.stringify(r.response), /per topic/i);
        }
      }
      // an untrack frees a place
      assert.equal((await others[0].push('realtime:capt', 'presence', { type: 'presence', event: 'untrack' })).status, 'ok');
      assert.equal((await track(others[3], 'realtime:capt')).status, 'ok');
    } finally {
      c.close();
      for (const o of others) o.close();
    }
  });

  it('an over-size broadcast gets an error reply and reaches no one', async () => {
    const a = await phoenix(server.anonKey);
    const b = await phoenix(server.anonKey);
    try {
      assert.equal((await a.join('realtime:capb', 'a')).status, 'ok');
      assert.equal((await b.join('realtime:capb', 'b')).status, 'ok');
      const big = await a.push('realtime:capb', 'broadcast', { type: 'broadcast', event: 'e', payload: { x: 'y'.repeat(9000) } });
      assert.equal(big.status, 'error', JSON.stringify(big).slice(0, 200));
      assert.match(JSON.stringify(big.response), /broadcast/i);
      const ok = await a.push('realtime:capb', 'broadcast', { type: 'broadcast', event: 'e', payload: { x: 'sentinel' } });
      assert.equal(ok.status, 'ok');
      for (;;) {
        const got = b.events.filter((m) => m.event === 'broadcast');
        if (got.length) {
          assert.equal(got.length, 1, 'only the sentinel arrived');
          assert.equal(got[0].payload.payload.x, 'sentinel');
          break;
        }
        await sleep(20);
      }
    } finally { a.close(); b.close(); }
  });
});

describe('§3.9 the service-role key', () => {
  it('is not in the log of a first start; `campaignd keys` prints it', async () => {
    assert.ok(fs.existsSync(path.join(server.dataDir, 'jwt_secret')), 'the JWT secret was generated (a first start)');
    assert.ok(!server.log().includes(server.serviceKey), 'SERVICE_ROLE_KEY is in the server log');
    assert.match(server.log(), /campaignd keys/);
    const k = await server.run(['keys']);
    assert.equal(k.code, 0);
    assert.match(k.stdout, new RegExp(`^SERVICE_ROLE_KEY=${server.serviceKey.replace(/\./g, '\\.')}$`, 'm'));
  });
});
