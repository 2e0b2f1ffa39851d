// /rest/v1/rpc with the real @supabase/supabase-js: named arguments by POST and
// GET ({ get: true }), scalar / composite / setof / void results, select,
// filters, order, limit and count on setof results, a VOLATILE function refused
// on GET, a single unnamed json parameter, overloads, RAISE EXCEPTION, unknown
// functions, privileges and RLS inside functions. Expected behaviour is
// PostgREST's (wire reference 2.1, 2.6, 2.7, 2.9).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from './helpers.js';
import { setupRest, rest, qs, ok, idsOf, assertPgrstError, snapshot } from './rest-support.js';

let ctx;
before(async () => {
  ctx = await setupRest();
});
after(async () => {
  await ctx?.server.stop();
});

const qtyOf = async (id) => sql(ctx.server, `select coalesce(qty::text, 'null') from public.fx_items where id = ${id}`);

describe('scalar, composite, void', () => {
  it('POST with named arguments returns the scalar', async () => {
    const res = await ctx.alice.rpc('fx_add', { a: 2, b: 3 });
    assert.equal(res.status, 200);
    assert.equal(ok(res), 5);
  });

  it('GET ({ get: true }) passes the arguments in the query string', async () => {
    const res = await ctx.alice.rpc('fx_add', { a: 20, b: 22 }, { get: true });
    assert.equal(res.status, 200);
    assert.equal(ok(res), 42);
    const raw = await rest(ctx.server, 'GET', '/rpc/fx_add?a=1&b=2', { token: ctx.aliceToken });
    assert.equal(raw.status, 200);
    assert.equal(raw.text.trim(), '3');
  });

  it('anon may call what anon was granted', async () => {
    assert.equal(ok(await ctx.anon.rpc('fx_add', { a: 1, b: 1 })), 2);
  });

  it('a composite result is one JSON object', async () => {
    const res = await ctx.alice.rpc('fx_project_stats', { p_project_id: 1 });
    assert.deepEqual(ok(res), { item_count: 3, total_qty: 6 });
  });

  it('RLS applies inside a SECURITY INVOKER function', async () => {
    assert.deepEqual(ok(await ctx.bob.rpc('fx_project_stats', { p_project_id: 1 })), { item_count: 0, total_qty: 0 });
  });

  it('a void function answers 204 with no body', async () => {
    const res = await ctx.alice.rpc('fx_noop');
    assert.equal(res.error, null);
    assert.equal(res.status, 204);
    assert.equal(res.data, null);
  });

  it('a single unnamed json parameter receives the whole body', async () => {
    const body = { x: 1, y: [1, 2], z: { k: 'v, (w)' }, u: 'ünï' };
    assert.deepEqual(ok(await ctx.alice.rpc('fx_echo_json', body)), body);
  });

  it('overloads are chosen by argument names', async () => {
    assert.equal(ok(await ctx.alice.rpc('fx_greet')), 'hello');
    assert.equal(ok(await ctx.alice.rpc('fx_greet', { name: 'Ann' })), 'hello Ann');
    assert.equal(ok(await ctx.alice.rpc('fx_greet', { name: 'Bo' }, { get: true })), 'hello Bo');
    assert.equal(ok(await ctx.alice.rpc('fx_greet', {}, { get: true })), 'hello');
  });

  it('argument values with reserved characters are plain values', async () => {
    for (const name of ["' or 1=1 --", 'a,b(c)', 'x&y=z', '100% + more', 'ünïcødé ☃']) {
      assert.equal(ok(await ctx.alice.rpc('fx_greet', { name })), `hello ${name}`);
      assert.equal(ok(await ctx.alice.rpc('fx_greet', { name }, { get: true })), `hello ${name}`, `GET ${name}`);
    }
  });
});

describe('set-returning functions', () => {
  it('returns an array of rows', async () => {
    const res = await ctx.alice.rpc('fx_items_in_project', { pid: 1 }).select('id,title').order('id');
    assert.deepEqual(ok(res), [
      { id: 1, title: 'alpha' },
      { id: 2, title: 'beta' },
      { id: 3, title: 'gamma, with comma' },
    ]);
  });

  it('filters, order and limit apply to the result', async () => {
    assert.deepEqual(idsOf(await ctx.alice.rpc('fx_items_in_project', { pid: 1 }).select('id').eq('qty', 2)), [2]);
    assert.deepEqual(
      idsOf(await ctx.alice.rpc('fx_items_in_project', { pid: 1 }).select('id').gte('qty', 2).order('id', { ascending: false })),
      [3, 2],
    );
    assert.deepEqual(idsOf(await ctx.alice.rpc('fx_items_in_project', { pid: 1 }).select('id').order('id').limit(1)), [1]);
    assert.deepEqual(
      idsOf(await ctx.alice.rpc('fx_items_in_project', { pid: 1 }).select('id').or('id.eq.1,id.eq.3').order('id')),
      [1, 3],
    );
  });

  it('the same by GET', async () => {
    const res = await ctx.alice.rpc('fx_items_in_project', { pid: 2 }, { get: true }).select('id,qty').order('id');
    assert.deepEqual(ok(res), [
      { id: 4, qty: null },
      { id: 5, qty: 5 },
    ]);
    const raw = await rest(ctx.server, 'GET', `/rpc/fx_items_in_project?${qs({ pid: '1', select: 'id', qty: 'gt.1', order: 'id.desc' })}`, {
      token: ctx.aliceToken,
    });
    assert.equal(raw.status, 200, raw.text);
    assert.deepEqual(raw.json, [{ id: 3 }, { id: 2 }]);
  });

  it('embeds related rows of the result type', async () => {
    const res = await ctx.alice.rpc('fx_items_in_project', { pid: 1 }).select('id,fx_projects(name)').eq('id', 1);
    assert.deepEqual(ok(res), [{ id: 1, fx_projects: { name: 'Apollo' } }]);
  });

  it('count and single work on the result', async () => {
    const counted = await ctx.alice.rpc('fx_items_in_project', { pid: 1 }, { count: 'exact' }).select('id').limit(1);
    assert.equal(counted.count, 3);
    const one = await ctx.alice.rpc('fx_items_in_project', { pid: 1 }).select('id,title').eq('id', 2).single();
    assert.deepEqual(ok(one), { id: 2, title: 'beta' });
    const head = await ctx.alice.rpc('fx_items_in_project', { pid: 1 }, { head: true, count: 'exact' });
    assert.equal(head.error, null);
    assert.equal(head.count, 3);
    assert.equal(head.data, null);
  });

  it('RLS decides which rows a function returns', async () => {
    assert.deepEqual(ok(await ctx.bob.rpc('fx_items_in_project', { pid: 1 })), []);
    assert.deepEqual(idsOf(await ctx.bob.rpc('fx_items_in_project', { pid: 10 }).select('id')), [10]);
  });
});

describe('VOLATILE functions', () => {
  it('POST runs a volatile function and its writes commit', async () => {
    const before = Number(await qtyOf(1));
    const res = await ctx.alice.rpc('fx_bump_qty', { p_id: 1, p_by: 10 });
    assert.equal(ok(res), before + 10);
    assert.equal(Number(await qtyOf(1)), before + 10);
    ok(await ctx.alice.rpc('fx_bump_qty', { p_id: 1, p_by: -10 }));
    assert.equal(Number(await qtyOf(1)), before);
  });

  it('GET of a volatile function that writes is refused (405, read-only transaction) and writes nothing', async () => {
    const before = await snapshot(ctx.server, 'fx_items');
    const res = await ctx.alice.rpc('fx_bump_qty', { p_id: 1, p_by: 100 }, { get: true });
    assertPgrstError(res, { status: 405, code: '25006' });
    assert.equal(await snapshot(ctx.server, 'fx_items'), before);
  });

  it('a volatile function cannot write rows RLS hides', async () => {
    const before = await snapshot(ctx.server, 'fx_items');
    const res = await ctx.bob.rpc('fx_bump_qty', { p_id: 1, p_by: 1000 });
    assert.equal(res.error, null);
    assert.equal(res.data, null, 'UPDATE ... RETURNING saw no row');
    assert.equal(await snapshot(ctx.server, 'fx_items'), before);
  });
});

describe('errors', () => {
  it('RAISE EXCEPTION is 400 P0001 with the message', async () => {
    const res = await ctx.alice.rpc('fx_fail', { msg: 'custom failure: ünï, "quoted"' });
    assertPgrstError(res, { status: 400, code: 'P0001', message: 'custom failure: ünï, "quoted"' });
  });

  it('an unknown function is 404 PGRST202', async () => {
    assertPgrstError(await ctx.alice.rpc('fx_nope'), { status: 404, code: 'PGRST202' });
    assertPgrstError(await ctx.alice.rpc('fx_nope', {}, { get: true }), { status: 404, code: 'PGRST202' });
  });

  it('arguments that match no overload are 404 PGRST202', async () => {
    assertPgrstError(await ctx.alice.rpc('fx_add', { a: 1 }), { status: 404, code: 'PGRST202' });
    assertPgrstError(await ctx.alice.rpc('fx_add', { a: 1, b: 2, c: 3 }), { status: 404, code: 'PGRST202' });
  });

  it('an argument of the wrong type is 400 22P02', async () => {
    assertPgrstError(await ctx.alice.rpc('fx_add', { a: 'one', b: 2 }), { status: 400, code: '22P02' });
  });

  it('anon calling a function it was not granted: 401 42501', async () => {
    assertPgrstError(await ctx.anon.rpc('fx_project_stats', { p_project_id: 1 }), { status: 401, code: '42501' });
  });

  it('a function revoked from everyone cannot be called, and does nothing', async () => {
    const before = await snapshot(ctx.server, 'fx_items');
    for (const c of [ctx.anon, ctx.alice, ctx.service]) {
      const res = await c.rpc('fx_seed', { alice: ctx.aliceId, bob: ctx.bobId });
      assert.ok(res.error, 'refused');
      assert.ok([401, 403, 404].includes(res.status), `status ${res.status}`);
    }
    assert.equal(await snapshot(ctx.server, 'fx_items'), before);
  });

  it('RPC with a verb other than GET/POST is 405', async () => {
    const raw = await rest(ctx.server, 'DELETE', '/rpc/fx_add?a=1&b=2', { token: ctx.aliceToken });
    assert.equal(raw.status, 405);
    assert.equal(raw.json?.code, 'PGRST101');
  });
});
