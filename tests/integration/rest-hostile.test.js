// Hostile input in every /rest/v1 parameter: SQL in identifiers and values,
// huge inputs, NUL and invalid UTF-8, in select, filters (column and value),
// order, columns, on_conflict, function and table names, Prefer, Range,
// Accept, Accept-Profile, Content-Profile and JSON bodies. Each must be refused
// with a 4xx or treated as a plain value, never executed: the fixture tables
// still exist with the same rows, nothing answers 5xx, and the server (its
// worker threads and their database connections, and the same kept-alive HTTP
// connection) still serves a normal request right after.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from './helpers.js';
import { setupRest, rest, qs, ok, idsOf, snapshot, keepAliveConnection, ALICE_ITEMS } from './rest-support.js';

let ctx;
let baseline;
const TABLES = ['fx_people', 'fx_projects', 'fx_items', 'fx_item_notes', 'fx_public_posts', 'fx_bulk'];
const snapshotAll = async () => Promise.all(TABLES.map((t) => snapshot(ctx.server, t)));

before(async () => {
  ctx = await setupRest();
  baseline = await snapshotAll();
});
after(async () => {
  await ctx?.server.stop();
});

// Strings that would do harm if they reached SQL text unquoted.
const SQL_PAYLOADS = [
  'id;drop table fx_items',
  'id; drop table fx_items; --',
  '"x"; --',
  'x)::text--',
  "' or 1=1 --",
  "id' or '1'='1",
  'id/**/or/**/1=1',
  '1); delete from fx_items; --',
  'pg_sleep(5)',
  '(select 1)',
  'id,(select password from auth.users)',
  '"id""; drop table fx_items; --"',
  '$1',
  '$$;drop table fx_items;$$',
  'id\\',
  'fx_items.id',
  'public.fx_items',
  '*,auth.users(*)',
  'ünï;--',
];

/** Asserts the server refused cleanly (4xx, JSON error) or answered normally (2xx). */
function assertNot5xx(raw, what) {
  assert.ok(raw.status >= 200 && raw.status < 500, `${what}: status ${raw.status} ${raw.text.slice(0, 300)}`);
  if (raw.status >= 400 && raw.text) {
    assert.ok(raw.json && typeof raw.json.message === 'string', `${what}: error body is JSON: ${raw.text.slice(0, 200)}`);
  }
}
function assert4xx(raw, what) {
  assert.ok(raw.status >= 400 && raw.status < 500, `${what}: expected a 4xx, got ${raw.status} ${raw.text.slice(0, 300)}`);
}

const get = (pathAndQuery, opts = {}) => rest(ctx.server, 'GET', pathAndQuery, { token: ctx.aliceToken, ...opts });
const post = (pathAndQuery, body, opts = {}) => rest(ctx.server, 'POST', pathAndQuery, { token: ctx.aliceToken, body, ...opts });

describe('SQL in identifiers is refused', () => {
  for (const p of SQL_PAYLOADS) {
    it(`identifier ${JSON.stringify(p)}`, async () => {
      assert4xx(await get(`/fx_items?${qs({ select: p })}`), 'select');
      assert4xx(await get(`/fx_items?${qs({ select: `id,${p}` })}`), 'select item');
      assert4xx(await get(`/fx_items?${qs({ select: `id,fx_projects(${p})` })}`), 'embedded select');
      assert4xx(await get(`/fx_items?${qs([['select', 'id'], [p, 'eq.1']])}`), 'filter column');
      assert4xx(await get(`/fx_items?${qs({ select: 'id', or: `(${p}.eq.1,id.eq.2)` })}`), 'or column');
      assert4xx(await get(`/fx_items?${qs({ select: 'id', order: p })}`), 'order');
      assert4xx(await get(`/fx_items?${qs({ select: 'id', order: `${p}.desc` })}`), 'order.desc');
      assert4xx(await post(`/fx_items?${qs({ columns: p })}`, [{ title: 'x' }]), 'columns');
      assert4xx(await post(`/fx_items?${qs({ on_conflict: p })}`, { title: 'x', sku: 'HX' }, { headers: { Prefer: 'resolution=merge-duplicates' } }), 'on_conflict');
      assert4xx(await post('/fx_items', { [p]: 1, title: 'x' }), 'body key');
      assert4xx(await get(`/${encodeURIComponent(p)}`), 'table name');
      assert4xx(await get(`/rpc/${encodeURIComponent(p)}`), 'function name');
      assert4xx(await post(`/rpc/${encodeURIComponent(p)}`, {}), 'function name (POST)');
      assert4xx(await post('/rpc/fx_greet', { [p]: 'x' }), 'function argument name');
      assert4xx(await get('/fx_items?select=id', { headers: { 'Accept-Profile': p } }), 'Accept-Profile');
      assert4xx(await post('/fx_items', { title: 'x' }, { headers: { 'Content-Profile': p } }), 'Content-Profile');
      assert.deepEqual(await snapshotAll(), baseline, 'no data changed');
    });
  }
});

describe('SQL in values is only a value', () => {
  for (const p of SQL_PAYLOADS) {
    it(`value ${JSON.stringify(p)}`, async () => {
      for (const op of ['eq', 'neq', 'gt', 'lt', 'like', 'ilike']) {
        const raw = await get(`/fx_items?${qs({ select: 'id', title: `${op}.${p}`, id: 'lt.0' })}`);
        if (op.endsWith('like') && p.endsWith('\\')) {
          // "LIKE pattern must not end with escape character" (22025) is a fair answer.
          assertNot5xx(raw, op);
          if (raw.status === 200) assert.deepEqual(raw.json, []);
          continue;
        }
        assert.equal(raw.status, 200, `${op}: ${raw.text.slice(0, 200)}`);
        assert.deepEqual(raw.json, []);
      }
      const inRaw = await get(`/fx_items?${qs({ select: 'id', title: `in.("${p.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}")` })}`);
      assert.equal(inRaw.status, 200, `in: ${inRaw.text.slice(0, 200)}`);
      assert.deepEqual(inRaw.json, []);
      const orRaw = await get(`/fx_items?${qs({ select: 'id', or: `(title.eq."${p.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}",id.eq.-1)` })}`);
      assert.equal(orRaw.status, 200, `or: ${orRaw.text.slice(0, 200)}`);
      assert.deepEqual(orRaw.json, []);
      assertNot5xx(await get(`/fx_items?${qs({ select: 'id', qty: `eq.${p}` })}`), 'integer column');
      assertNot5xx(await get(`/fx_items?${qs({ select: 'id', tags: `cs.{${p}}` })}`), 'array value');
      assertNot5xx(await get(`/fx_items?${qs({ select: 'id', search: `fts.${p}` })}`), 'fts value');
      assertNot5xx(await get(`/fx_items?${qs({ select: 'id', 'meta->>color': `eq.${p}` })}`), 'json path value');
      const rpc = await ctx.alice.rpc('fx_greet', { name: p });
      assert.equal(ok(rpc), `hello ${p}`);
      const rpcGet = await ctx.alice.rpc('fx_greet', { name: p }, { get: true });
      assert.equal(ok(rpcGet), `hello ${p}`);
      assert.deepEqual(await snapshotAll(), baseline, 'no data changed');
    });
  }

  it('stored as given in a body, and read back unchanged', async () => {
    try {
      for (const [i, p] of SQL_PAYLOADS.entries()) {
        const res = await ctx.alice.from('fx_item_notes').insert({ item_id: 1, body: p }).select('id,body').single();
        assert.equal(ok(res, `insert ${JSON.stringify(p)}`).body, p);
        const back = await ctx.alice.from('fx_item_notes').select('body').eq('id', res.data.id).single();
        assert.equal(ok(back).body, p, `round trip ${i}`);
        assert.equal(await sql(ctx.server, `select body from public.fx_item_notes where id = ${res.data.id}`), p);
        ok(await ctx.alice.from('fx_item_notes').delete().eq('id', res.data.id));
      }
    } finally {
      await sql(ctx.server, 'delete from public.fx_item_notes where id >= 1000');
    }
    assert.deepEqual(await snapshotAll(), baseline);
  });
});

describe('hostile headers', () => {
  const values = [...SQL_PAYLOADS, 'x'.repeat(4000), '', ',,,', '=', 'count=exact;drop', 'return=representation, return=minimal'];
  it('Prefer, Range, Range-Unit, Accept: ignored or 4xx, never 5xx', async () => {
    try {
      await hostileHeaders();
    } finally {
      await sql(ctx.server, "delete from public.fx_item_notes where body = 'pref'");
    }
    assert.deepEqual(await snapshotAll(), baseline);
  });

  async function hostileHeaders() {
    for (const v of values) {
      assertNot5xx(await get('/fx_items?select=id', { headers: { Prefer: v } }), `Prefer ${v.slice(0, 40)}`);
      assertNot5xx(await post('/fx_item_notes', { item_id: 1, body: 'pref' }, { headers: { Prefer: `return=minimal, ${v}` } }), `POST Prefer ${v.slice(0, 40)}`);
      assertNot5xx(await get('/fx_items?select=id', { headers: { Range: v } }), `Range ${v.slice(0, 40)}`);
      assertNot5xx(await get('/fx_items?select=id', { headers: { Range: '0-1', 'Range-Unit': v } }), `Range-Unit ${v.slice(0, 40)}`);
      assertNot5xx(await get('/fx_items?select=id', { headers: { Accept: v } }), `Accept ${v.slice(0, 40)}`);
    }
  }

  it('odd Range values', async () => {
    for (const v of ['5-2', '-1-3', '0-99999999999999999999', '99999999999999999999-', 'items=0-1', '0-', '1-1,2-3']) {
      assertNot5xx(await get('/fx_items?select=id&order=id', { headers: { Range: v } }), `Range ${v}`);
    }
  });

  it('hostile apikey or Authorization: 401', async () => {
    for (const v of ["' or 1=1 --", 'eyJhbGciOiJub25lIn0.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.', 'a.b.c', 'x'.repeat(5000)]) {
      const r1 = await rest(ctx.server, 'GET', '/fx_public_posts?select=id', { key: v });
      assert.equal(r1.status, 401, `apikey ${v.slice(0, 30)}: ${r1.status}`);
      const r2 = await rest(ctx.server, 'GET', '/fx_public_posts?select=id', { token: v });
      assert.equal(r2.status, 401, `Bearer ${v.slice(0, 30)}: ${r2.status}`);
    }
  });
});

describe('huge and malformed input', () => {
  it('a huge select, filter value, or list is refused with a 4xx', async () => {
    const huge = 'a'.repeat(100000);
    for (const q of [
      { select: huge },
      { select: 'id', title: `eq.${huge}` },
      { select: 'id', id: `in.(${Array.from({ length: 20000 }, (_, i) => i).join(',')})` },
      { select: Array.from({ length: 2000 }, () => 'id').join(',') },
      { select: 'id', order: Array.from({ length: 2000 }, () => 'id').join(',') },
    ]) {
      const raw = await get(`/fx_items?${qs(q)}`);
      assert4xx(raw, `huge ${Object.keys(q).join(',')}`);
    }
  });

  it('deep nesting is refused with a 4xx', async () => {
    const depth = 200;
    const deepOr = `${'or('.repeat(depth)}id.eq.1${')'.repeat(depth)}`;
    assert4xx(await get(`/fx_items?${qs({ select: 'id', or: `(${deepOr})` })}`), 'deep or');
    const deepSelect = `${'fx_projects(fx_items('.repeat(100)}id${'))'.repeat(100)}`;
    assert4xx(await get(`/fx_items?${qs({ select: `id,${deepSelect}` })}`), 'deep embed');
    const deepPath = `meta${'->a'.repeat(500)}`;
    assert4xx(await get(`/fx_items?${qs({ select: deepPath })}`), 'deep JSON path');
  });

  it('a moderately large in-list is a normal request', async () => {
    const raw = await get(`/fx_items?${qs({ select: 'id', order: 'id', id: `in.(${Array.from({ length: 500 }, (_, i) => i).join(',')})` })}`);
    assert.equal(raw.status, 200, raw.text.slice(0, 200));
    assert.deepEqual(raw.json.map((r) => r.id), ALICE_ITEMS);
  });

  it('a body larger than the limit is 413 and writes nothing', async () => {
    const body = JSON.stringify([{ title: 'x'.repeat(2 * 1024 * 1024), sku: 'HUGE' }]);
    let raw;
    try {
      raw = await post('/fx_items', body);
    } catch (e) {
      raw = { status: 0, text: String(e) };
    }
    assert.ok(raw.status === 413 || raw.status === 0, `status ${raw.status}`);
    assert.deepEqual(await snapshotAll(), baseline);
  });

  it('deeply nested JSON bodies are refused or stored, never 5xx', async () => {
    const deep = `${'['.repeat(5000)}${']'.repeat(5000)}`;
    try {
      assertNot5xx(await post('/fx_items', `{"title":"deep","sku":"DEEP","meta":${deep}}`), 'deep JSON');
    } finally {
      await sql(ctx.server, "delete from public.fx_items where sku = 'DEEP'");
    }
  });

  it('NUL: %00 in the query is 400; \\u0000 in a body is 400 (PostgreSQL text cannot hold it)', async () => {
    for (const q of ['select=id%00', 'select=id&title=eq.a%00b', 'select=id&ti%00tle=eq.a', 'select=id&order=id%00']) {
      assert.equal((await get(`/fx_items?${q}`)).status, 400, q);
    }
    const res = await ctx.alice.from('fx_items').insert({ title: 'a\u0000b', sku: 'NUL-1' });
    assert.equal(res.status, 400, JSON.stringify(res.error));
    const key = await ctx.alice.from('fx_items').insert({ 'ti\u0000tle': 'x', sku: 'NUL-2' });
    assert.equal(key.status, 400);
    assert.deepEqual(await snapshotAll(), baseline);
  });

  it('invalid UTF-8 is 400; a broken %-escape is 400 or a plain value', async () => {
    for (const q of ['select=id&title=eq.%FF', 'select=id&title=eq.%C3', 'select=%E2%82', 'select=id&tit%FFle=eq.a']) {
      assert.equal((await get(`/fx_items?${q}`)).status, 400, q);
    }
    for (const q of ['select=id&title=eq.%G1', 'select=id&title=eq.%', 'select=id&title=eq.%2']) {
      const raw = await get(`/fx_items?${q}`);
      assert.ok(raw.status === 400 || (raw.status === 200 && raw.text === '[]'), `${q}: ${raw.status} ${raw.text.slice(0, 100)}`);
    }
  });

  it('a body that is not JSON, or JSON of the wrong shape, is 400', async () => {
    for (const b of ['', 'null', '"text"', '42', '[1,2]', '{"title":', '\u0000', '[[]]', '{"title": "x"} trailing']) {
      const raw = await post('/fx_items', b);
      assert4xx(raw, `body ${JSON.stringify(b)}`);
    }
    assert.deepEqual(await snapshotAll(), baseline);
  });
});

describe('the server is still usable', () => {
  it('the fixture tables exist with the same rows', async () => {
    for (const t of TABLES) assert.notEqual(await sql(ctx.server, `select to_regclass('public.${t}')`), '', `${t} exists`);
    assert.deepEqual(await snapshotAll(), baseline);
  });

  it('a hostile request and then a normal one on the same kept-alive connection', async () => {
    const conn = keepAliveConnection(ctx.server);
    try {
      const first = await conn.send('GET', `/fx_items?${qs({ select: 'id;drop table fx_items' })}`, { token: ctx.aliceToken });
      assert4xx(first, 'hostile');
      const badValue = await conn.send('GET', `/fx_items?${qs({ select: 'id', qty: "eq.' or 1=1 --" })}`, { token: ctx.aliceToken });
      assert.equal(badValue.status, 400, 'a failed statement (22P02)');
      const next = await conn.send('GET', '/fx_items?select=id&order=id', { token: ctx.aliceToken });
      assert.equal(next.status, 200, next.text);
      assert.deepEqual(JSON.parse(next.text).map((r) => r.id), ALICE_ITEMS);
      assert.equal(next.socketId, first.socketId, 'same TCP connection');
    } finally {
      conn.destroy();
    }
  });

  it('every worker connection recovered: many normal requests in parallel succeed', async () => {
    // Errors inside the database (22P02, 42703, 42501) on every worker first...
    await Promise.all(
      Array.from({ length: 32 }, (_, i) =>
        get(`/fx_items?${qs({ select: 'id', qty: `eq.bad${i}` })}`).then((r) => assert.equal(r.status, 400)),
      ),
    );
    // ...then normal requests on every worker.
    const results = await Promise.all(Array.from({ length: 32 }, () => ctx.alice.from('fx_items').select('id').order('id')));
    for (const r of results) assert.deepEqual(idsOf(r), ALICE_ITEMS);
    const writes = await Promise.all(
      Array.from({ length: 16 }, (_, i) => ctx.alice.from('fx_item_notes').insert({ item_id: 1, body: `after-${i}` }).select('id').single()),
    );
    for (const w of writes) ok(w);
    assert.equal(await sql(ctx.server, "select count(*) from public.fx_item_notes where body like 'after-%'"), '16');
  });
});
