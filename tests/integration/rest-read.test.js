// /rest/v1 reads with the real @supabase/supabase-js (postgrest-js): select
// (columns, *, aliases, casts, JSON paths), embedded resources through foreign
// keys in both directions (to-one object, to-many array, nested, !inner, hints,
// self-reference, through a view, filters/order/limit on the embed), order,
// limit/offset/range, the Range header, Prefer: count=..., Content-Range and 206,
// max rows, HEAD, .single()/.maybeSingle(), .csv(), and a table created at run
// time. Expected behaviour is PostgREST's (wire reference section 2).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from './helpers.js';
import {
  setupRest, rest, qs, ok, idsOf, assertPgrstError, reloadSchema, waitForTable, ALICE_ITEMS, UUID_RE,
} from './rest-support.js';

let ctx;
before(async () => {
  ctx = await setupRest();
});
after(async () => {
  await ctx?.server.stop();
});

const FX_ITEMS_COLUMNS = [
  'id', 'owner_id', 'project_id', 'title', 'qty', 'big', 'price', 'done', 'due_at', 'ext_id', 'meta', 'tags',
  'span', 'search', 'sku', 'note', 'created_at',
];

describe('select: columns, *, aliases, casts, JSON paths', () => {
  it('selects the named columns only, in order', async () => {
    const res = await ctx.alice.from('fx_items').select('id,title').order('id');
    assert.equal(res.status, 200);
    assert.deepEqual(ok(res), [
      { id: 1, title: 'alpha' }, { id: 2, title: 'beta' }, { id: 3, title: 'gamma, with comma' },
      { id: 4, title: 'delta (paren)' }, { id: 5, title: 'eps "quoted"' }, { id: 6, title: 'zeta 100% + more' },
      { id: 7, title: 'ünïcødé ☃' }, { id: 8, title: "O'Reilly" },
    ]);
  });

  it('select=* returns every column in table order with PostgreSQL JSON types', async () => {
    const [row] = ok(await ctx.alice.from('fx_items').select('*').eq('id', 1));
    assert.deepEqual(Object.keys(row), FX_ITEMS_COLUMNS);
    assert.equal(row.owner_id, ctx.aliceId);
    assert.equal(row.project_id, 1);
    assert.equal(row.title, 'alpha');
    assert.equal(row.qty, 1);
    assert.equal(row.big, 10000000000, 'bigint is a JSON number');
    assert.equal(row.price, 1.5, 'numeric is a JSON number');
    assert.equal(row.done, false);
    assert.equal(row.due_at, '2024-01-01T00:00:00+00:00', 'timestamptz as PostgreSQL JSON');
    assert.match(row.ext_id, UUID_RE);
    assert.deepEqual(row.meta, { color: 'red', size: { w: 1, h: 2 }, n: 5 });
    assert.deepEqual(row.tags, ['a', 'b']);
    assert.equal(row.span, '[1,5)');
    assert.equal(row.search, "'brown':3 'fox':4 'quick':2");
    assert.equal(row.note, 'plain');
  });

  it('select() with no argument is select=*', async () => {
    const [row] = ok(await ctx.alice.from('fx_items').select().eq('id', 2));
    assert.deepEqual(Object.keys(row), FX_ITEMS_COLUMNS);
  });

  it('renames columns with alias:column', async () => {
    assert.deepEqual(ok(await ctx.alice.from('fx_items').select('name:title,amount:qty').eq('id', 2)), [
      { name: 'beta', amount: 2 },
    ]);
  });

  it('casts with ::type, with and without an alias', async () => {
    assert.deepEqual(
      ok(await ctx.alice.from('fx_items').select('id,qty_text:qty::text,price::text,big::text').eq('id', 1)),
      [{ id: 1, qty_text: '1', price: '1.50', big: '10000000000' }],
    );
  });

  it('reads JSON paths with -> (JSON) and ->> (text), named after the last key', async () => {
    const res = await ctx.alice
      .from('fx_items')
      .select('id,color:meta->>color,size:meta->size,w:meta->size->w,meta->>n')
      .in('id', [1, 4])
      .order('id');
    assert.deepEqual(ok(res), [
      { id: 1, color: 'red', size: { w: 1, h: 2 }, w: 1, n: '5' },
      { id: 4, color: null, size: null, w: null, n: null },
    ]);
  });

  it('quoted identifiers: a column name with a space and capitals, in select, filter and order', async () => {
    const res = await ctx.anon.from('fx_public_posts').select('id,"Display Name"').not('"Display Name"', 'is', null).order('"Display Name"');
    assert.deepEqual(ok(res), [
      { id: 1, 'Display Name': 'Ada L.' },
      { id: 3, 'Display Name': 'Grace "Amazing" H.' },
    ]);
    const alias = await ctx.anon.from('fx_public_posts').select('id,shown:"Display Name"').eq('"Display Name"', 'Grace "Amazing" H.');
    assert.deepEqual(ok(alias), [{ id: 3, shown: 'Grace "Amazing" H.' }]);
  });

  it('selects from a view (RLS of the base table applies through it)', async () => {
    assert.deepEqual(idsOf(await ctx.alice.from('fx_open_items').select('id,title').order('id')), [1, 3, 4, 6, 7, 8]);
    assert.deepEqual(idsOf(await ctx.bob.from('fx_open_items').select('id').order('id')), [10]);
  });
});

describe('embedded resources', () => {
  it('embeds a to-one parent as an object (null when there is none)', async () => {
    const res = await ctx.alice.from('fx_items').select('id,fx_projects(name)').in('id', [1, 6]).order('id');
    assert.deepEqual(ok(res), [
      { id: 1, fx_projects: { name: 'Apollo' } },
      { id: 6, fx_projects: null },
    ]);
  });

  it('aliases an embed', async () => {
    const res = await ctx.alice.from('fx_items').select('id,project:fx_projects(id,name)').eq('id', 4);
    assert.deepEqual(ok(res), [{ id: 4, project: { id: 2, name: 'Borealis' } }]);
  });

  it('embeds to-many children as an array ([] when there are none)', async () => {
    const res = await ctx.alice
      .from('fx_projects')
      .select('id,fx_items(id)')
      .order('id')
      .order('id', { referencedTable: 'fx_items' });
    assert.deepEqual(ok(res), [
      { id: 1, fx_items: [{ id: 1 }, { id: 2 }, { id: 3 }] },
      { id: 2, fx_items: [{ id: 4 }, { id: 5 }] },
      { id: 3, fx_items: [] },
    ]);
  });

  it('nests embeds (to-many inside to-many, to-one inside to-one)', async () => {
    const res = await ctx.alice
      .from('fx_projects')
      .select('name,fx_items(title,fx_item_notes(body))')
      .eq('id', 1)
      .order('id', { referencedTable: 'fx_items' })
      .order('id', { referencedTable: 'fx_items.fx_item_notes' });
    assert.deepEqual(ok(res), [
      {
        name: 'Apollo',
        fx_items: [
          { title: 'alpha', fx_item_notes: [{ body: 'first note on alpha' }, { body: 'second note on alpha' }] },
          { title: 'beta', fx_item_notes: [{ body: 'note on beta' }] },
          { title: 'gamma, with comma', fx_item_notes: [] },
        ],
      },
    ]);
    const up = await ctx.alice.from('fx_item_notes').select('body,fx_items(title,fx_projects(name))').eq('id', 1);
    assert.deepEqual(ok(up), [{ body: 'first note on alpha', fx_items: { title: 'alpha', fx_projects: { name: 'Apollo' } } }]);
  });

  it('!inner drops parents without a matching child', async () => {
    assert.deepEqual(idsOf(await ctx.alice.from('fx_projects').select('id,fx_items!inner(id)').order('id')), [1, 2]);
    const res = await ctx.alice.from('fx_projects').select('id,fx_items!inner(id,qty)').eq('fx_items.qty', 2);
    assert.deepEqual(ok(res), [{ id: 1, fx_items: [{ id: 2, qty: 2 }] }]);
  });

  it('a filter on an embed without !inner filters the children, not the parents', async () => {
    const res = await ctx.alice
      .from('fx_projects')
      .select('id,fx_items(id)')
      .eq('fx_items.done', true)
      .order('id');
    assert.deepEqual(ok(res), [
      { id: 1, fx_items: [{ id: 2 }] },
      { id: 2, fx_items: [{ id: 5 }] },
      { id: 3, fx_items: [] },
    ]);
  });

  it('orders, limits and or-filters embedded resources', async () => {
    const desc = await ctx.alice
      .from('fx_projects')
      .select('id,fx_items(id)')
      .eq('id', 1)
      .order('id', { referencedTable: 'fx_items', ascending: false });
    assert.deepEqual(ok(desc), [{ id: 1, fx_items: [{ id: 3 }, { id: 2 }, { id: 1 }] }]);
    const lim = await ctx.alice
      .from('fx_projects')
      .select('id,fx_items(id)')
      .in('id', [1, 2])
      .order('id')
      .order('id', { referencedTable: 'fx_items' })
      .limit(1, { referencedTable: 'fx_items' });
    assert.deepEqual(ok(lim), [
      { id: 1, fx_items: [{ id: 1 }] },
      { id: 2, fx_items: [{ id: 4 }] },
    ]);
    const or = await ctx.alice
      .from('fx_projects')
      .select('id,fx_items(id)')
      .eq('id', 1)
      .or('id.eq.1,id.eq.3', { referencedTable: 'fx_items' })
      .order('id', { referencedTable: 'fx_items' });
    assert.deepEqual(ok(or), [{ id: 1, fx_items: [{ id: 1 }, { id: 3 }] }]);
  });

  it('two foreign keys to one table: ambiguous without a hint (300 PGRST201)', async () => {
    const res = await ctx.alice.from('fx_projects').select('name,fx_people(name)');
    assertPgrstError(res, { status: 300, code: 'PGRST201' });
    assert.match(res.error.hint, /fx_people!fx_projects_lead_id_fkey/);
    assert.match(res.error.hint, /fx_people!fx_projects_deputy_id_fkey/);
  });

  it('two foreign keys to one table: disambiguated by column or constraint hints', async () => {
    const res = await ctx.alice
      .from('fx_projects')
      .select('name,lead:fx_people!lead_id(name),deputy:fx_people!fx_projects_deputy_id_fkey(name)')
      .order('id');
    assert.deepEqual(ok(res), [
      { name: 'Apollo', lead: { name: 'Ada' }, deputy: { name: 'Grace' } },
      { name: 'Borealis', lead: { name: 'Grace' }, deputy: null },
      { name: 'Empty', lead: { name: 'Linus' }, deputy: { name: 'Ada' } },
    ]);
    const back = await ctx.alice.from('fx_people').select('name,led:fx_projects!lead_id(name)').eq('id', 2);
    assert.deepEqual(ok(back), [{ name: 'Grace', led: [{ name: 'Borealis' }] }]);
  });

  it('self-reference: the FK column embeds the parent, table!column the children', async () => {
    const up = await ctx.alice.from('fx_people').select('name,manager:manager_id(name)').order('id');
    assert.deepEqual(ok(up), [
      { name: 'Ada', manager: null },
      { name: 'Grace', manager: { name: 'Ada' } },
      { name: 'Linus', manager: { name: 'Ada' } },
    ]);
    const down = ok(await ctx.alice.from('fx_people').select('name,reports:fx_people!manager_id(name)').eq('id', 1));
    assert.equal(down.length, 1);
    assert.deepEqual(down[0].reports.map((r) => r.name).sort(), ['Grace', 'Linus']);
  });

  it('embeds through a view (views inherit the base table foreign keys)', async () => {
    const res = await ctx.alice.from('fx_open_items').select('id,fx_projects(name)').eq('id', 1);
    assert.deepEqual(ok(res), [{ id: 1, fx_projects: { name: 'Apollo' } }]);
  });

  it('embedding an unrelated table is 400 PGRST200', async () => {
    assertPgrstError(await ctx.alice.from('fx_items').select('id,fx_public_posts(*)'), { status: 400, code: 'PGRST200' });
  });

  it('spreads a to-one embed into the parent with ...rel(cols)', async () => {
    const res = await ctx.alice.from('fx_items').select('id,...fx_projects(project_name:name)').in('id', [1, 6]).order('id');
    assert.deepEqual(ok(res), [
      { id: 1, project_name: 'Apollo' },
      { id: 6, project_name: null },
    ]);
  });

  it('rel=not.is.null / rel=is.null keep parents with / without children', async () => {
    const withItems = await ctx.alice.from('fx_projects').select('id,fx_items(id)').not('fx_items', 'is', null).order('id');
    assert.deepEqual(idsOf(withItems), [1, 2]);
    const without = await ctx.alice.from('fx_projects').select('id,fx_items()').is('fx_items', null).order('id');
    assert.deepEqual(ok(without), [{ id: 3 }], 'an empty embed filters without adding a key');
  });

  it('a filter on an embed that is not selected is 400 PGRST108', async () => {
    assertPgrstError(await ctx.alice.from('fx_projects').select('id').eq('fx_items.qty', 1), { status: 400, code: 'PGRST108' });
  });

  it('ordering the parent by a to-many embed is 400 PGRST118', async () => {
    const raw = await rest(ctx.server, 'GET', `/fx_projects?${qs({ select: 'id,fx_items(id)', order: 'fx_items(id)' })}`, { token: ctx.aliceToken });
    assert.equal(raw.status, 400, raw.text);
    assert.equal(raw.json.code, 'PGRST118');
  });

  it('embeds see only what RLS lets the caller see', async () => {
    const res = await ctx.bob.from('fx_projects').select('id,fx_items(id,fx_item_notes(body))');
    assert.deepEqual(ok(res), [{ id: 10, fx_items: [{ id: 10, fx_item_notes: [{ body: 'bob note' }] }] }]);
  });
});

describe('order, limit, offset, range', () => {
  it('orders desc with nulls first / last, asc puts nulls last by default', async () => {
    const q = () => ctx.alice.from('fx_items').select('id');
    assert.deepEqual(idsOf(await q().order('qty', { ascending: false, nullsFirst: true })), [4, 8, 7, 6, 5, 3, 2, 1]);
    assert.deepEqual(idsOf(await q().order('qty', { ascending: false, nullsFirst: false })), [8, 7, 6, 5, 3, 2, 1, 4]);
    assert.deepEqual(idsOf(await q().order('qty')), [1, 2, 3, 5, 6, 7, 8, 4]);
    assert.deepEqual(idsOf(await q().order('qty', { ascending: true, nullsFirst: true })), [4, 1, 2, 3, 5, 6, 7, 8]);
  });

  it('orders by several keys', async () => {
    const res = await ctx.alice.from('fx_items').select('id').order('done').order('id', { ascending: false });
    assert.deepEqual(idsOf(res), [8, 7, 6, 4, 3, 1, 5, 2]);
  });

  it('orders by a JSON path and by a to-one embed column', async () => {
    const res = await ctx.alice.from('fx_items').select('id').not('meta->n', 'is', null).order('meta->n', { ascending: false });
    assert.deepEqual(idsOf(res), [6, 5, 3, 2, 1]);
    const raw = await rest(ctx.server, 'GET', `/fx_items?${qs({ select: 'id,fx_projects(name)', project_id: 'not.is.null', order: 'fx_projects(name).desc,id.asc' })}`, { token: ctx.aliceToken });
    assert.equal(raw.status, 200, raw.text);
    assert.deepEqual(raw.json.map((r) => r.id), [4, 5, 1, 2, 3]);
  });

  it('limit, offset and .range()', async () => {
    const q = () => ctx.alice.from('fx_items').select('id').order('id');
    assert.deepEqual(idsOf(await q().limit(3)), [1, 2, 3]);
    assert.deepEqual(idsOf(await q().range(2, 4)), [3, 4, 5]);
    const raw = await rest(ctx.server, 'GET', `/fx_items?select=id&order=id&limit=2&offset=6`, { token: ctx.aliceToken });
    assert.equal(raw.status, 200);
    assert.deepEqual(raw.json, [{ id: 7 }, { id: 8 }]);
    assert.equal(raw.headers['content-range'], '6-7/*');
  });

  it('honours a Range header (Range-Unit: items)', async () => {
    const raw = await rest(ctx.server, 'GET', '/fx_items?select=id&order=id', {
      token: ctx.aliceToken,
      headers: { Range: '1-2', 'Range-Unit': 'items' },
    });
    assert.equal(raw.status, 200, raw.text);
    assert.deepEqual(raw.json, [{ id: 2 }, { id: 3 }]);
    assert.equal(raw.headers['content-range'], '1-2/*');
    const counted = await rest(ctx.server, 'GET', '/fx_items?select=id&order=id', {
      token: ctx.aliceToken,
      headers: { Range: '1-2', 'Range-Unit': 'items', Prefer: 'count=exact' },
    });
    assert.equal(counted.status, 206);
    assert.equal(counted.headers['content-range'], '1-2/8');
  });

  it('limit=0 and an offset past the end without a count are 200 []', async () => {
    assert.deepEqual(ok(await ctx.alice.from('fx_items').select('id').limit(0)), []);
    const raw = await rest(ctx.server, 'GET', '/fx_items?select=id&offset=100', { token: ctx.aliceToken });
    assert.equal(raw.status, 200);
    assert.equal(raw.text, '[]');
  });

  it('an empty result is 200 [] with Content-Range */*', async () => {
    const raw = await rest(ctx.server, 'GET', '/fx_items?select=id&id=eq.-1', { token: ctx.aliceToken });
    assert.equal(raw.status, 200);
    assert.equal(raw.text, '[]');
    assert.equal(raw.headers['content-range'], '*/*');
    assert.match(raw.headers['content-type'], /^application\/json; ?charset=utf-8$/i);
  });
});

describe('counts, HEAD, max rows', () => {
  it('count=exact: total in Content-Range, 206 for a partial page, 200 for all', async () => {
    const part = await ctx.alice.from('fx_items').select('id', { count: 'exact' }).order('id').limit(2);
    assert.equal(part.status, 206);
    assert.equal(part.count, 8);
    assert.deepEqual(idsOf(part), [1, 2]);
    const all = await ctx.alice.from('fx_items').select('id', { count: 'exact' });
    assert.equal(all.status, 200);
    assert.equal(all.count, 8);
    const raw = await rest(ctx.server, 'GET', '/fx_items?select=id&order=id&limit=2&offset=1', {
      token: ctx.aliceToken,
      headers: { Prefer: 'count=exact' },
    });
    assert.equal(raw.status, 206);
    assert.equal(raw.headers['content-range'], '1-2/8');
  });

  it('count=planned and count=estimated give a number', async () => {
    for (const count of ['planned', 'estimated']) {
      const res = await ctx.alice.from('fx_items').select('id', { count }).limit(1);
      ok(res, `count=${count}`);
      assert.equal(typeof res.count, 'number', `count=${count} gives a number`);
      assert.ok(Number.isInteger(res.count) && res.count >= 0);
    }
  });

  it('counts respect filters and RLS', async () => {
    assert.equal((await ctx.alice.from('fx_items').select('id', { count: 'exact' }).eq('done', true)).count, 2);
    assert.equal((await ctx.bob.from('fx_items').select('id', { count: 'exact' })).count, 1);
  });

  it('HEAD with count: no body, the count from Content-Range', async () => {
    const res = await ctx.alice.from('fx_items').select('*', { count: 'exact', head: true });
    assert.equal(res.error, null);
    assert.equal(res.status, 200);
    assert.equal(res.data, null);
    assert.equal(res.count, 8);
    const none = await ctx.alice.from('fx_items').select('*', { count: 'exact', head: true }).eq('id', -1);
    assert.equal(none.count, 0);
    const raw = await rest(ctx.server, 'HEAD', '/fx_items?select=*', { token: ctx.aliceToken, headers: { Prefer: 'count=exact' } });
    assert.equal(raw.status, 200);
    assert.equal(raw.text, '');
    assert.equal(raw.headers['content-range'], '0-7/8');
    const rawNone = await rest(ctx.server, 'HEAD', '/fx_items?select=*&id=eq.-1', { token: ctx.aliceToken, headers: { Prefer: 'count=exact' } });
    assert.equal(rawNone.headers['content-range'], '*/0');
  });

  it('an offset past the total is 416 PGRST103', async () => {
    const res = await ctx.alice.from('fx_items').select('id', { count: 'exact' }).range(20, 30);
    assertPgrstError(res, { status: 416, code: 'PGRST103' });
  });

  it('caps a result at max rows (1000) and says so in Content-Range', async () => {
    const res = await ctx.alice.from('fx_bulk').select('id', { count: 'exact' });
    assert.equal(ok(res).length, 1000);
    assert.equal(res.count, 1005);
    assert.equal(res.status, 206);
    const big = await ctx.alice.from('fx_bulk').select('id').limit(5000);
    assert.equal(ok(big).length, 1000, 'a larger limit is still capped');
    const tail = await ctx.alice.from('fx_bulk').select('n').order('n').range(1000, 1010);
    assert.deepEqual(ok(tail).map((r) => r.n), [1001, 1002, 1003, 1004, 1005]);
    const raw = await rest(ctx.server, 'GET', '/fx_bulk?select=id&order=id', { token: ctx.aliceToken, headers: { Prefer: 'count=exact' } });
    assert.equal(raw.headers['content-range'], '0-999/1005');
  });
});

describe('.single(), .maybeSingle(), .csv()', () => {
  it('.single() with one row gives an object', async () => {
    const res = await ctx.alice.from('fx_items').select('id,title').eq('id', 1).single();
    assert.equal(res.status, 200);
    assert.deepEqual(ok(res), { id: 1, title: 'alpha' });
    const raw = await rest(ctx.server, 'GET', '/fx_items?select=id&id=eq.1', {
      token: ctx.aliceToken,
      headers: { Accept: 'application/vnd.pgrst.object+json' },
    });
    assert.equal(raw.status, 200);
    assert.deepEqual(raw.json, { id: 1 });
    assert.match(raw.headers['content-type'], /^application\/vnd\.pgrst\.object\+json/);
  });

  it('.single() with zero or several rows is 406 PGRST116 and data null', async () => {
    for (const q of [
      ctx.alice.from('fx_items').select('id').eq('id', -1).single(),
      ctx.alice.from('fx_items').select('id').in('id', [1, 2]).single(),
      ctx.bob.from('fx_items').select('id').eq('id', 1).single(),
    ]) {
      const res = await q;
      assertPgrstError(res, { status: 406, code: 'PGRST116' });
      assert.equal(res.data, null);
    }
  });

  it('.maybeSingle(): 0 rows -> data null and no error; 1 row -> object; 2 rows -> PGRST116', async () => {
    const zero = await ctx.alice.from('fx_items').select('id').eq('id', -1).maybeSingle();
    assert.equal(zero.error, null);
    assert.equal(zero.data, null);
    const one = await ctx.alice.from('fx_items').select('id').eq('id', 3).maybeSingle();
    assert.deepEqual(ok(one), { id: 3 });
    const two = await ctx.alice.from('fx_items').select('id').in('id', [1, 2]).maybeSingle();
    assert.equal(two.status, 406);
    assert.equal(two.error?.code, 'PGRST116');
    assert.equal(two.data, null);
  });

  it('.csv() returns a header row and the rows, quoted where needed', async () => {
    const res = await ctx.alice.from('fx_items').select('id,title').in('id', [1, 2, 3]).order('id').csv();
    assert.equal(ok(res), 'id,title\n1,alpha\n2,beta\n3,"gamma, with comma"');
    const raw = await rest(ctx.server, 'GET', '/fx_items?select=id,qty&id=in.(1,4)&order=id', {
      token: ctx.aliceToken,
      headers: { Accept: 'text/csv' },
    });
    assert.equal(raw.status, 200);
    assert.match(raw.headers['content-type'], /^text\/csv/);
    assert.equal(raw.text, 'id,qty\n1,1\n4,');
  });
});

describe('media types and CORS', () => {
  it('.stripNulls() leaves out null values', async () => {
    const res = await ctx.alice.from('fx_items').select('id,qty,meta').eq('id', 4).stripNulls();
    assert.deepEqual(ok(res), [{ id: 4 }]);
  });

  it('a browser preflight allows the headers supabase-js sends; Content-Range is exposed', async () => {
    const pre = await rest(ctx.server, 'OPTIONS', '/fx_items', {
      headers: {
        Origin: 'http://localhost:3000',
        'Access-Control-Request-Method': 'PATCH',
        'Access-Control-Request-Headers': 'apikey,authorization,prefer,range,accept-profile,content-profile,x-client-info,content-type',
      },
    });
    assert.ok(pre.status === 200 || pre.status === 204, `preflight status ${pre.status}`);
    assert.ok(pre.headers['access-control-allow-origin'], 'Access-Control-Allow-Origin');
    const allowed = (pre.headers['access-control-allow-headers'] ?? '').toLowerCase();
    for (const h of ['apikey', 'authorization', 'prefer', 'range', 'accept-profile', 'content-profile', 'x-client-info', 'content-type'])
      assert.ok(allowed.includes(h), `allows ${h}: ${allowed}`);
    assert.match(pre.headers['access-control-allow-methods'] ?? 'PATCH', /PATCH/);
    const get = await rest(ctx.server, 'GET', '/fx_items?select=id&limit=1', {
      token: ctx.aliceToken,
      headers: { Origin: 'http://localhost:3000', Prefer: 'count=exact' },
    });
    assert.match(get.headers['access-control-expose-headers'] ?? '', /content-range/i);
  });
});

describe('schema changes at run time', () => {
  it('a table created with psql DDL is queryable after NOTIFY pgrst, without a restart', async () => {
    await sql(
      ctx.server,
      `create table public.fx_late (id bigint primary key, label text);
       alter table public.fx_late enable row level security;
       grant all on public.fx_late to service_role;
       insert into public.fx_late values (1, 'late');`,
    );
    await reloadSchema(ctx.server);
    await waitForTable(ctx.server, 'fx_late');
    const res = await ctx.service.from('fx_late').select('id,label');
    assert.deepEqual(ok(res), [{ id: 1, label: 'late' }]);

    await sql(ctx.server, `alter table public.fx_late add column extra integer default 7`);
    await reloadSchema(ctx.server);
    const deadline = Date.now() + 20000;
    let last;
    do {
      last = await ctx.service.from('fx_late').select('id,extra');
      if (!last.error) break;
      await new Promise((r) => setTimeout(r, 100));
    } while (Date.now() < deadline);
    assert.deepEqual(ok(last, 'the new column'), [{ id: 1, extra: 7 }]);
  });

  // A NOTIFY that arrives while the listener reloads (its catalog query
  // started before the change committed) is read by libpq with that query's
  // results: the listener must still act on it, though its socket has
  // nothing more to say. Each round announces a reload, then changes the
  // table a few milliseconds later, while that reload runs.
  it('a change announced while a reload runs is not missed', async () => {
    await sql(ctx.server, `create table public.fx_race (id bigint primary key);
      grant all on public.fx_race to service_role; insert into public.fx_race values (1);`);
    await reloadSchema(ctx.server);
    await waitForTable(ctx.server, 'fx_race');
    for (const [k, ms] of [[1, 0], [2, 2], [3, 5], [4, 10], [5, 20], [6, 40]]) {
      await sql(ctx.server, `notify pgrst, 'reload schema'; commit; select pg_sleep(${ms / 1000}); commit;
        alter table public.fx_race add column c${k} integer default ${k}; commit;`);
      const deadline = Date.now() + 10000;
      let last;
      do {
        last = await ctx.service.from('fx_race').select(`id,c${k}`);
        if (!last.error) break;
        await new Promise((r) => setTimeout(r, 50));
      } while (Date.now() < deadline);
      assert.deepEqual(ok(last, `column c${k} (${ms} ms after the NOTIFY)`), [{ id: 1, [`c${k}`]: k }]);
    }
    await sql(ctx.server, 'drop table public.fx_race');
  });

  it('a dropped table is gone after NOTIFY pgrst (404 PGRST205)', async () => {
    await sql(ctx.server, 'drop table if exists public.fx_late');
    await reloadSchema(ctx.server);
    const deadline = Date.now() + 20000;
    let res;
    do {
      res = await ctx.service.from('fx_late').select('id');
      if (res.status === 404) break;
      await new Promise((r) => setTimeout(r, 100));
    } while (Date.now() < deadline);
    assertPgrstError(res, { status: 404, code: 'PGRST205' });
  });
});

// Sanity of the fixture itself: if this fails, the other failures mean nothing.
describe('fixture', () => {
  it('alice owns items 1-8 and bob item 10 (checked as the owner, not through the API)', async () => {
    assert.equal(
      await sql(ctx.server, `select string_agg(id::text, ',' order by id) from public.fx_items where owner_id = '${ctx.aliceId}'`),
      ALICE_ITEMS.join(','),
    );
    assert.equal(await sql(ctx.server, `select string_agg(id::text, ',') from public.fx_items where owner_id = '${ctx.bobId}'`), '10');
  });
});
