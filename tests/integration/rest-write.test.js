// /rest/v1 writes with the real @supabase/supabase-js: insert (single, bulk,
// missing keys -> NULL vs defaultToNull:false -> DEFAULT), upsert (onConflict,
// ignoreDuplicates), update and delete with filters, unfiltered update/delete
// refused, .select() after a mutation (return=representation) and without
// (empty body), status codes 201/204/200, and .single() on a mutation that
// affects two rows: an error AND nothing changed. Every outcome is checked in
// the database as the owner, not only through the API.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from './helpers.js';
import { setupRest, rest, ok, assertPgrstError, snapshot } from './rest-support.js';

let ctx;
before(async () => {
  ctx = await setupRest();
});
after(async () => {
  await ctx?.server.stop();
});

/** One row of fx_items read as the owner: {title, qty, note, done, owner_id} or null. */
async function rowBySku(sku) {
  const out = await sql(
    ctx.server,
    `select coalesce(json_agg(json_build_object('id', id, 'title', title, 'qty', qty, 'note', note, 'done', done,
                              'owner_id', owner_id, 'project_id', project_id) order by id), '[]')
     from public.fx_items where sku = '${sku}'`,
  );
  const rows = JSON.parse(out);
  assert.ok(rows.length <= 1, `sku ${sku} is unique`);
  return rows[0] ?? null;
}

const countWhere = async (where) => Number(await sql(ctx.server, `select count(*) from public.fx_items where ${where}`));

describe('insert', () => {
  it('single insert without .select(): 201, empty body, missing columns take their DEFAULT', async () => {
    const res = await ctx.alice.from('fx_items').insert({ title: 'w1', sku: 'W-1' });
    assert.equal(res.error, null);
    assert.equal(res.status, 201);
    assert.equal(res.data, null);
    const row = await rowBySku('W-1');
    assert.equal(row.title, 'w1');
    assert.equal(row.note, 'n/a', 'DEFAULT, not NULL');
    assert.equal(row.done, false);
    assert.equal(row.owner_id, ctx.aliceId, 'owner_id DEFAULT auth.uid() saw the caller');
    const raw = await rest(ctx.server, 'POST', '/fx_items', { token: ctx.aliceToken, body: { title: 'w1b', sku: 'W-1b' } });
    assert.equal(raw.status, 201);
    assert.equal(raw.text, '');
  });

  it('insert(...).select(): 201 with the rows, shaped by select', async () => {
    const res = await ctx.alice.from('fx_items').insert({ title: 'w2', qty: 4, sku: 'W-2' }).select('title,qty,note,owner_id');
    assert.equal(res.status, 201);
    assert.deepEqual(ok(res), [{ title: 'w2', qty: 4, note: 'n/a', owner_id: ctx.aliceId }]);
  });

  it('insert(...).select().single() gives an object', async () => {
    const res = await ctx.alice.from('fx_items').insert({ title: 'w3', sku: 'W-3' }).select('id,title').single();
    assert.equal(res.status, 201);
    const data = ok(res);
    assert.equal(data.title, 'w3');
    assert.ok(data.id >= 1000, 'identity value from the table');
  });

  it('insert(...).select() can embed a related row', async () => {
    const res = await ctx.alice.from('fx_items').insert({ title: 'w4', sku: 'W-4', project_id: 1 }).select('title,fx_projects(name)');
    assert.deepEqual(ok(res), [{ title: 'w4', fx_projects: { name: 'Apollo' } }]);
  });

  it('bulk insert: keys missing from a row are NULL (columns= is the union of keys)', async () => {
    const res = await ctx.alice
      .from('fx_items')
      .insert([
        { title: 'b1', sku: 'B-1', note: 'given' },
        { title: 'b2', sku: 'B-2' },
      ])
      .select('sku,note,done');
    assert.equal(res.status, 201);
    const data = ok(res).sort((x, y) => x.sku.localeCompare(y.sku));
    assert.deepEqual(data, [
      { sku: 'B-1', note: 'given', done: false },
      { sku: 'B-2', note: null, done: false },
    ]);
    assert.equal((await rowBySku('B-2')).note, null);
  });

  it('bulk insert with defaultToNull: false: missing keys take their DEFAULT', async () => {
    const res = await ctx.alice.from('fx_items').insert(
      [
        { title: 'b3', sku: 'B-3', note: 'given' },
        { title: 'b4', sku: 'B-4' },
      ],
      { defaultToNull: false },
    );
    assert.equal(res.error, null);
    assert.equal(res.status, 201);
    assert.equal((await rowBySku('B-3')).note, 'given');
    assert.equal((await rowBySku('B-4')).note, 'n/a');
  });

  it('columns= picks the columns; keys outside it are ignored', async () => {
    const raw = await rest(ctx.server, 'POST', '/fx_items?columns=title,sku&select=title,sku,note', {
      token: ctx.aliceToken,
      headers: { Prefer: 'return=representation' },
      body: [{ title: 'col1', sku: 'COL-1', note: 'ignored', nope: 1 }],
    });
    assert.equal(raw.status, 201, raw.text);
    assert.deepEqual(raw.json, [{ title: 'col1', sku: 'COL-1', note: 'n/a' }]);
  });

  it('bulk insert is all or nothing', async () => {
    const before = await snapshot(ctx.server, 'fx_items');
    const res = await ctx.alice.from('fx_items').insert([
      { title: 'ok row', sku: 'AON-1' },
      { title: 'dup row', sku: 'SKU-1' },
    ]);
    assertPgrstError(res, { status: 409, code: '23505' });
    assert.equal(await snapshot(ctx.server, 'fx_items'), before);
  });

  it('insert of two rows with .single() is 406 PGRST116 and inserts nothing', async () => {
    const before = await snapshot(ctx.server, 'fx_items');
    const res = await ctx.alice
      .from('fx_items')
      .insert([
        { title: 's1', sku: 'S-1' },
        { title: 's2', sku: 'S-2' },
      ])
      .select()
      .single();
    assertPgrstError(res, { status: 406, code: 'PGRST116' });
    assert.equal(await snapshot(ctx.server, 'fx_items'), before);
  });
});

describe('upsert', () => {
  it('onConflict on a unique column merges into the existing row', async () => {
    ok(await ctx.alice.from('fx_items').insert({ title: 'u1', sku: 'U-1', qty: 1, note: 'keep' }));
    const res = await ctx.alice.from('fx_items').upsert({ title: 'u1b', sku: 'U-1', qty: 2 }, { onConflict: 'sku' }).select('sku,title,qty,note');
    assert.ok(res.status === 200 || res.status === 201, `status ${res.status}`);
    assert.deepEqual(ok(res), [{ sku: 'U-1', title: 'u1b', qty: 2, note: 'keep' }]);
    assert.equal(await countWhere(`sku = 'U-1'`), 1);
    const row = await rowBySku('U-1');
    assert.equal(row.title, 'u1b');
    assert.equal(row.note, 'keep', 'columns not in the payload are left alone');
  });

  it('upsert without onConflict uses the primary key', async () => {
    const inserted = ok(await ctx.alice.from('fx_items').insert({ title: 'u2', sku: 'U-2' }).select('id').single());
    const res = await ctx.alice.from('fx_items').upsert({ id: inserted.id, title: 'u2b', sku: 'U-2' }).select('id,title');
    assert.deepEqual(ok(res), [{ id: inserted.id, title: 'u2b' }]);
    assert.equal(await countWhere(`sku = 'U-2'`), 1);
  });

  it('ignoreDuplicates leaves the existing row and returns nothing for it', async () => {
    ok(await ctx.alice.from('fx_items').insert({ title: 'u3', sku: 'U-3' }));
    const res = await ctx.alice
      .from('fx_items')
      .upsert({ title: 'u3-ignored', sku: 'U-3' }, { onConflict: 'sku', ignoreDuplicates: true })
      .select('sku,title');
    assert.deepEqual(ok(res), []);
    assert.equal((await rowBySku('U-3')).title, 'u3');
  });

  it('bulk upsert inserts the new rows and merges the existing ones (201)', async () => {
    ok(await ctx.alice.from('fx_items').insert({ title: 'u4', sku: 'U-4' }));
    const res = await ctx.alice
      .from('fx_items')
      .upsert(
        [
          { title: 'u4b', sku: 'U-4' },
          { title: 'u5', sku: 'U-5' },
        ],
        { onConflict: 'sku' },
      )
      .select('sku,title');
    assert.equal(res.status, 201);
    assert.deepEqual(ok(res).sort((a, b) => a.sku.localeCompare(b.sku)), [
      { sku: 'U-4', title: 'u4b' },
      { sku: 'U-5', title: 'u5' },
    ]);
  });

  it('upsert without .select(): empty body', async () => {
    const res = await ctx.alice.from('fx_items').upsert({ title: 'u6', sku: 'U-6' }, { onConflict: 'sku' });
    assert.equal(res.error, null);
    assert.equal(res.data, null);
    assert.equal((await rowBySku('U-6')).title, 'u6');
  });

  it('on_conflict naming a column without a unique constraint is an error and writes nothing', async () => {
    const before = await snapshot(ctx.server, 'fx_items');
    const res = await ctx.alice.from('fx_items').upsert({ title: 'u7', sku: 'U-7' }, { onConflict: 'title' });
    assert.equal(res.status, 400, JSON.stringify(res.error));
    assert.equal(res.error?.code, '42P10');
    assert.equal(await snapshot(ctx.server, 'fx_items'), before);
  });
});

describe('update', () => {
  it('update().eq(): 204, empty body, only the filtered row changes', async () => {
    ok(await ctx.alice.from('fx_items').insert([{ title: 'p1', sku: 'P-1' }, { title: 'p2', sku: 'P-2' }]));
    const res = await ctx.alice.from('fx_items').update({ note: 'updated' }).eq('sku', 'P-1');
    assert.equal(res.error, null);
    assert.equal(res.status, 204);
    assert.equal(res.data, null);
    assert.equal((await rowBySku('P-1')).note, 'updated');
    assert.equal((await rowBySku('P-2')).note, 'n/a', 'untouched (note was in no row: DEFAULT)');
  });

  it('update().select(): 200 with the updated rows', async () => {
    const res = await ctx.alice.from('fx_items').update({ qty: 42 }).eq('sku', 'P-2').select('sku,qty');
    assert.equal(res.status, 200);
    assert.deepEqual(ok(res), [{ sku: 'P-2', qty: 42 }]);
    assert.equal((await rowBySku('P-2')).qty, 42);
  });

  it('update with a filter matching nothing: 204, nothing changes; with select: []', async () => {
    const before = await snapshot(ctx.server, 'fx_items');
    const res = await ctx.alice.from('fx_items').update({ note: 'x' }).eq('id', -1);
    assert.equal(res.status, 204);
    const sel = await ctx.alice.from('fx_items').update({ note: 'x' }).eq('id', -1).select();
    assert.deepEqual(ok(sel), []);
    assert.equal(await snapshot(ctx.server, 'fx_items'), before);
  });

  it('update with several filters and JSON values', async () => {
    ok(await ctx.alice.from('fx_items').insert({ title: 'p3', sku: 'P-3', qty: 3 }));
    const res = await ctx.alice
      .from('fx_items')
      .update({ meta: { k: [1, 'two'] }, tags: ['t1', 't,2'] })
      .eq('sku', 'P-3')
      .gte('qty', 3)
      .select('meta,tags');
    assert.deepEqual(ok(res), [{ meta: { k: [1, 'two'] }, tags: ['t1', 't,2'] }]);
  });

  it('an unfiltered update is refused (400) and changes nothing', async () => {
    const before = await snapshot(ctx.server, 'fx_items');
    const res = await ctx.alice.from('fx_items').update({ note: 'everything' });
    assert.equal(res.status, 400, JSON.stringify(res.error));
    assert.ok(res.error?.code, 'an error code');
    assert.match(res.error.message, /where/i);
    assert.equal(await snapshot(ctx.server, 'fx_items'), before);
    assert.equal(await countWhere(`note = 'everything'`), 0);
  });

  it('.single() on an update that matches two rows: 406 PGRST116 and nothing changed', async () => {
    ok(await ctx.alice.from('fx_items').insert([{ title: 'two', sku: 'T-1', note: 'two' }, { title: 'two', sku: 'T-2', note: 'two' }]));
    const before = await snapshot(ctx.server, 'fx_items');
    const res = await ctx.alice.from('fx_items').update({ note: 'changed' }).eq('title', 'two').select().single();
    assertPgrstError(res, { status: 406, code: 'PGRST116' });
    assert.equal(await snapshot(ctx.server, 'fx_items'), before, 'the update was rolled back');
    assert.equal(await countWhere(`note = 'changed'`), 0);
  });

  it('.single() on an update that matches one row returns the object', async () => {
    const res = await ctx.alice.from('fx_items').update({ note: 'one' }).eq('sku', 'T-1').select('sku,note').single();
    assert.deepEqual(ok(res), { sku: 'T-1', note: 'one' });
  });
});

describe('delete', () => {
  it('delete().eq(): 204, empty body, the row is gone', async () => {
    ok(await ctx.alice.from('fx_items').insert([{ title: 'd1', sku: 'D-1' }, { title: 'd2', sku: 'D-2' }]));
    const res = await ctx.alice.from('fx_items').delete().eq('sku', 'D-1');
    assert.equal(res.error, null);
    assert.equal(res.status, 204);
    assert.equal(res.data, null);
    assert.equal(await rowBySku('D-1'), null);
    assert.notEqual(await rowBySku('D-2'), null);
  });

  it('delete().select(): 200 with the deleted rows', async () => {
    const res = await ctx.alice.from('fx_items').delete().eq('sku', 'D-2').select('sku,title');
    assert.equal(res.status, 200);
    assert.deepEqual(ok(res), [{ sku: 'D-2', title: 'd2' }]);
    assert.equal(await rowBySku('D-2'), null);
  });

  it('an unfiltered delete is refused (400) and deletes nothing', async () => {
    const before = await snapshot(ctx.server, 'fx_items');
    const res = await ctx.alice.from('fx_items').delete();
    assert.equal(res.status, 400, JSON.stringify(res.error));
    assert.match(res.error?.message ?? '', /where/i);
    assert.equal(await snapshot(ctx.server, 'fx_items'), before);
  });

  it('.single() on a delete that matches two rows: 406 PGRST116 and nothing deleted', async () => {
    ok(await ctx.alice.from('fx_items').insert([{ title: 'dd', sku: 'DD-1' }, { title: 'dd', sku: 'DD-2' }]));
    const before = await snapshot(ctx.server, 'fx_items');
    const res = await ctx.alice.from('fx_items').delete().eq('title', 'dd').select().single();
    assertPgrstError(res, { status: 406, code: 'PGRST116' });
    assert.equal(await snapshot(ctx.server, 'fx_items'), before, 'the delete was rolled back');
    assert.equal(await countWhere(`title = 'dd'`), 2);
  });

  it('delete cascades through the foreign key (fx_item_notes)', async () => {
    const item = ok(await ctx.alice.from('fx_items').insert({ title: 'c1', sku: 'C-1' }).select('id').single());
    ok(await ctx.alice.from('fx_item_notes').insert({ item_id: item.id, body: 'will go' }));
    ok(await ctx.alice.from('fx_items').delete().eq('id', item.id));
    assert.equal(await sql(ctx.server, `select count(*) from public.fx_item_notes where item_id = ${item.id}`), '0');
  });
});

describe('Content-Range and Prefer on writes', () => {
  it('POST with count=exact and return=representation', async () => {
    const raw = await rest(ctx.server, 'POST', '/fx_items?select=sku', {
      token: ctx.aliceToken,
      headers: { Prefer: 'return=representation, count=exact' },
      body: [{ title: 'cr1', sku: 'CR-1' }, { title: 'cr2', sku: 'CR-2' }],
    });
    assert.equal(raw.status, 201, raw.text);
    assert.deepEqual(raw.json, [{ sku: 'CR-1' }, { sku: 'CR-2' }]);
    assert.match(raw.headers['content-range'] ?? '', /^\*\/2$/);
  });

  it('Prefer sent as two headers is the same as one comma-joined header', async () => {
    const raw = await rest(ctx.server, 'PATCH', '/fx_items?sku=eq.CR-1&select=sku,note', {
      token: ctx.aliceToken,
      headers: { Prefer: ['return=representation', 'count=exact'] },
      body: { note: 'two prefer headers' },
    });
    assert.equal(raw.status, 200, raw.text);
    assert.deepEqual(raw.json, [{ sku: 'CR-1', note: 'two prefer headers' }]);
  });

  it('PATCH with an empty object changes nothing and is not an error', async () => {
    const before = await snapshot(ctx.server, 'fx_items');
    const res = await ctx.alice.from('fx_items').update({}).eq('sku', 'CR-2');
    assert.ok(res.status < 300, `status ${res.status} ${JSON.stringify(res.error)}`);
    assert.equal(await snapshot(ctx.server, 'fx_items'), before);
  });
});
