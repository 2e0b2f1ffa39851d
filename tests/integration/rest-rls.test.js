// Row-level security through /rest/v1 with the real @supabase/supabase-js: a
// user cannot read, change, delete or insert another user's rows (checked in
// the database: zero rows changed, not just "no error"), anon sees only what it
// was granted, service_role sees everything, and the role comes from the
// Authorization token, not from the apikey header.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from './helpers.js';
import { setupRest, rest, ok, idsOf, assertPgrstError, snapshot, ALICE_ITEMS } from './rest-support.js';

let ctx;
before(async () => {
  ctx = await setupRest();
});
after(async () => {
  await ctx?.server.stop();
});

const TABLES = ['fx_people', 'fx_projects', 'fx_items', 'fx_item_notes', 'fx_bulk', 'fx_public_posts'];
const snapshotAll = async () => Promise.all(TABLES.map((t) => snapshot(ctx.server, t)));

describe('reads', () => {
  it('each user sees only their own rows', async () => {
    assert.deepEqual(idsOf(await ctx.alice.from('fx_items').select('id').order('id')), ALICE_ITEMS);
    assert.deepEqual(idsOf(await ctx.bob.from('fx_items').select('id').order('id')), [10]);
    assert.deepEqual(idsOf(await ctx.bob.from('fx_items').select('id').eq('id', 1)), []);
    assert.deepEqual(idsOf(await ctx.bob.from('fx_item_notes').select('id')), [10]);
    assert.deepEqual(idsOf(await ctx.bob.from('fx_people').select('id')), [10]);
  });

  it('filters cannot widen what RLS allows', async () => {
    assert.deepEqual(idsOf(await ctx.bob.from('fx_items').select('id').or(`owner_id.eq.${ctx.aliceId},id.gt.0`).order('id')), [10]);
    assert.deepEqual(idsOf(await ctx.bob.from('fx_items').select('id').eq('owner_id', ctx.aliceId)), []);
  });

  it('counts and HEAD count only visible rows', async () => {
    const head = await ctx.bob.from('fx_items').select('*', { count: 'exact', head: true });
    assert.equal(head.count, 1);
    const bulk = await ctx.bob.from('fx_bulk').select('id', { count: 'exact', head: true });
    assert.equal(bulk.count, 0);
  });

  it('embeds do not leak rows of another user', async () => {
    const res = await ctx.bob.from('fx_items').select('id,fx_projects(name),fx_item_notes(body)').order('id');
    assert.deepEqual(ok(res), [{ id: 10, fx_projects: { name: 'Bobs project' }, fx_item_notes: [{ body: 'bob note' }] }]);
    const proj = await ctx.alice.from('fx_projects').select('id,fx_items(id)').eq('id', 10);
    assert.deepEqual(ok(proj), []);
  });

  it("a row pointing at another user's row: the embed shows null, !inner drops it", async () => {
    // Foreign key checks bypass RLS, so bob can attach a note to alice's item 1.
    const note = ok(await ctx.bob.from('fx_item_notes').insert({ item_id: 1, body: 'bob on alice' }).select('id').single());
    try {
      const res = await ctx.bob.from('fx_item_notes').select('body,fx_items(title)').eq('id', note.id);
      assert.deepEqual(ok(res), [{ body: 'bob on alice', fx_items: null }]);
      const inner = await ctx.bob.from('fx_item_notes').select('body,fx_items!inner(title)').eq('id', note.id);
      assert.deepEqual(ok(inner), []);
      const alice = await ctx.alice.from('fx_items').select('id,fx_item_notes(body)').eq('id', 1).order('id', { referencedTable: 'fx_item_notes' });
      assert.deepEqual(ok(alice), [{ id: 1, fx_item_notes: [{ body: 'first note on alpha' }, { body: 'second note on alpha' }] }]);
    } finally {
      await sql(ctx.server, `delete from public.fx_item_notes where id = ${note.id}`);
    }
  });

  it('service_role sees every row', async () => {
    assert.deepEqual(idsOf(await ctx.service.from('fx_items').select('id').order('id')), [...ALICE_ITEMS, 10]);
    const count = await ctx.service.from('fx_bulk').select('id', { count: 'exact', head: true });
    assert.equal(count.count, 1005);
  });

  it('anon reads the public table only', async () => {
    assert.deepEqual(idsOf(await ctx.anon.from('fx_public_posts').select('id,title').order('id')), [1, 2, 3]);
    for (const t of ['fx_items', 'fx_projects', 'fx_people', 'fx_item_notes', 'fx_bulk', 'fx_open_items']) {
      const res = await ctx.anon.from(t).select('*');
      assert.equal(res.status, 401, `anon on ${t}: ${res.status} ${JSON.stringify(res.data)?.slice(0, 100)}`);
      assert.equal(res.data, null);
    }
    assertPgrstError(await ctx.anon.rpc('fx_items_in_project', { pid: 1 }), { status: 401, code: '42501' });
  });

  it('anon cannot reach another table through an embed of the public one', async () => {
    const res = await ctx.anon.from('fx_public_posts').select('id,fx_items(id)');
    assert.ok(res.error, 'refused');
    assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
  });
});

describe("writes to another user's rows change nothing", () => {
  it('update: no error, zero rows, the row is unchanged', async () => {
    const before = await snapshotAll();
    const res = await ctx.bob.from('fx_items').update({ title: 'pwned' }).eq('id', 1);
    assert.equal(res.error, null);
    assert.equal(res.status, 204);
    const sel = await ctx.bob.from('fx_items').update({ title: 'pwned' }).eq('id', 1).select();
    assert.deepEqual(ok(sel), []);
    const wide = await ctx.bob.from('fx_items').update({ note: 'pwned' }).gt('id', 0).select('id');
    assert.deepEqual(idsOf(wide), [10], 'a wide filter reaches only his own row');
    ok(await ctx.bob.from('fx_items').update({ note: 'secret' }).eq('id', 10));
    assert.deepEqual(await snapshotAll(), before);
    assert.equal(await sql(ctx.server, 'select title from public.fx_items where id = 1'), 'alpha');
  });

  it("update cannot move one's own row to another user", async () => {
    const before = await snapshotAll();
    const res = await ctx.bob.from('fx_items').update({ owner_id: ctx.aliceId }).eq('id', 10);
    assertPgrstError(res, { status: 403, code: '42501' });
    assert.deepEqual(await snapshotAll(), before);
  });

  it('delete: no error, zero rows, the row is still there', async () => {
    const before = await snapshotAll();
    const res = await ctx.bob.from('fx_items').delete().eq('id', 1);
    assert.equal(res.error, null);
    const sel = await ctx.bob.from('fx_items').delete().in('id', [1, 2, 3]).select('id');
    assert.deepEqual(ok(sel), []);
    const notes = await ctx.bob.from('fx_item_notes').delete().lt('id', 10).select('id');
    assert.deepEqual(ok(notes), []);
    assert.deepEqual(await snapshotAll(), before);
  });

  it("insert as another user: 403 42501 and no row", async () => {
    const before = await snapshotAll();
    assertPgrstError(await ctx.bob.from('fx_items').insert({ title: 'forged', sku: 'F-1', owner_id: ctx.aliceId }), {
      status: 403,
      code: '42501',
    });
    assertPgrstError(
      await ctx.bob.from('fx_items').insert([
        { title: 'mine', sku: 'F-2' },
        { title: 'forged', sku: 'F-3', owner_id: ctx.aliceId },
      ]),
      { status: 403, code: '42501' },
    );
    assert.deepEqual(await snapshotAll(), before, 'the bulk insert was rolled back as a whole');
  });

  it("upsert onto another user's row: refused and the row is unchanged", async () => {
    const before = await snapshotAll();
    const merge = await ctx.bob.from('fx_items').upsert({ id: 1, title: 'taken over', sku: 'SKU-1' });
    assert.ok(merge.error, 'merge-duplicates onto a hidden row is an error');
    assert.equal(merge.status, 403);
    assert.equal(merge.error.code, '42501');
    const ignore = await ctx.bob.from('fx_items').upsert({ id: 1, title: 'taken over', sku: 'SKU-1' }, { ignoreDuplicates: true }).select();
    assert.deepEqual(ok(ignore), []);
    assert.deepEqual(await snapshotAll(), before);
  });

  it("a user cannot change the public table, nor anon anything", async () => {
    const before = await snapshotAll();
    assert.equal((await ctx.alice.from('fx_public_posts').update({ title: 'x' }).eq('id', 1)).status, 403);
    assert.equal((await ctx.anon.from('fx_public_posts').delete().eq('id', 1)).status, 401);
    assert.equal((await ctx.anon.from('fx_items').update({ title: 'x' }).eq('id', 1)).status, 401);
    assert.equal((await ctx.anon.from('fx_items').insert({ title: 'x' })).status, 401);
    assert.deepEqual(await snapshotAll(), before);
  });

  it('a function run by another user cannot touch hidden rows', async () => {
    const before = await snapshotAll();
    const res = await ctx.bob.rpc('fx_bump_qty', { p_id: 2, p_by: 5 });
    assert.equal(res.data, null);
    assert.deepEqual(await snapshotAll(), before);
  });
});

describe('service_role bypasses RLS', () => {
  it('updates any row', async () => {
    const res = await ctx.service.from('fx_items').update({ note: 'by service' }).eq('id', 10).select('id,note');
    assert.deepEqual(ok(res), [{ id: 10, note: 'by service' }]);
    assert.equal(await sql(ctx.server, 'select note from public.fx_items where id = 10'), 'by service');
  });
});

describe('the role comes from the Authorization token, not the apikey', () => {
  it('apikey = service key with a user token acts as the user', async () => {
    const raw = await rest(ctx.server, 'GET', '/fx_items?select=id&order=id', { key: ctx.server.serviceKey, token: ctx.bobToken });
    assert.equal(raw.status, 200, raw.text);
    assert.deepEqual(raw.json, [{ id: 10 }]);
  });

  it('apikey = anon key with the service key as Bearer acts as service_role', async () => {
    const raw = await rest(ctx.server, 'GET', '/fx_items?select=id&order=id', { key: ctx.server.anonKey, token: ctx.server.serviceKey });
    assert.equal(raw.status, 200, raw.text);
    assert.equal(raw.json.length, 9);
  });

  it('apikey = service key with the anon key as Bearer acts as anon', async () => {
    const raw = await rest(ctx.server, 'GET', '/fx_items?select=id', { key: ctx.server.serviceKey, token: ctx.server.anonKey });
    assert.equal(raw.status, 401, raw.text);
  });

  it('no Authorization header: the apikey decides (anon)', async () => {
    const raw = await rest(ctx.server, 'GET', '/fx_public_posts?select=id', { headers: { Authorization: undefined } });
    assert.equal(raw.status, 200, raw.text);
    assert.equal(raw.json.length, 3);
    const denied = await rest(ctx.server, 'GET', '/fx_items?select=id', { headers: { Authorization: undefined } });
    assert.equal(denied.status, 401);
  });

  it('no apikey at all is refused', async () => {
    const raw = await rest(ctx.server, 'GET', '/fx_public_posts?select=id', { key: undefined, headers: { apikey: undefined, Authorization: undefined } });
    assert.equal(raw.status, 401, raw.text);
  });
});
