// /rest/v1 errors as supabase-js sees them: the PostgREST shape {code, message,
// details, hint} and the SQLSTATE -> HTTP mapping (23505 and 23503 -> 409,
// 22P02 -> 400, P0001 -> 400, 42501 -> 401 for anon / 403 for a user), unknown
// table (404 PGRST205), unknown column (400 42703 / PGRST204), bad filter syntax
// (400 PGRST100), bad bodies (PGRST102), unknown schema (406 PGRST106), unknown
// media type (406 PGRST107), and JWT failures (401 PGRST301/PGRST303).
// Expected behaviour is PostgREST's (wire reference 2.7, 2.8, gotcha 6).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql, signJwt, jwtSecret } from './helpers.js';
import { setupRest, rest, qs, ok, assertPgrstError, snapshot } from './rest-support.js';

let ctx;
before(async () => {
  ctx = await setupRest();
});
after(async () => {
  await ctx?.server.stop();
});

/** Asserts a raw response is a PostgREST error with that status and code. */
function assertRawError(raw, status, code) {
  assert.equal(raw.status, status, `status; body ${raw.text.slice(0, 400)}`);
  assert.match(raw.headers['content-type'] ?? '', /^application\/json/);
  assert.ok(raw.json && typeof raw.json === 'object', `JSON body: ${raw.text.slice(0, 200)}`);
  assert.deepEqual(Object.keys(raw.json).sort(), ['code', 'details', 'hint', 'message']);
  if (code) assert.equal(raw.json.code, code, raw.text);
  assert.equal(typeof raw.json.message, 'string');
}

describe('constraint violations', () => {
  it('unique violation: 409 23505; PostgreSQL DETAIL is forwarded in details', async () => {
    const before = await snapshot(ctx.server, 'fx_items');
    const res = await ctx.alice.from('fx_items').insert({ title: 'dup', sku: 'SKU-1' });
    assertPgrstError(res, { status: 409, code: '23505' });
    assert.match(res.error.message, /duplicate key value violates unique constraint "fx_items_sku_key"/);
    // Under RLS PostgreSQL itself leaves the key out of DETAIL; a BYPASSRLS role gets it.
    const svc = await ctx.service.from('fx_items').insert({ title: 'dup', sku: 'SKU-1', owner_id: ctx.aliceId });
    assertPgrstError(svc, { status: 409, code: '23505' });
    assert.equal(svc.error.details, 'Key (sku)=(SKU-1) already exists.');
    assert.equal(await snapshot(ctx.server, 'fx_items'), before);
  });

  it('foreign key violation: 409 23503', async () => {
    const res = await ctx.alice.from('fx_items').insert({ title: 'orphan', sku: 'FK-1', project_id: 999999 });
    assertPgrstError(res, { status: 409, code: '23503' });
    assert.match(res.error.message, /violates foreign key constraint/);
  });

  it('not-null violation: 400 23502', async () => {
    assertPgrstError(await ctx.alice.from('fx_items').insert({ sku: 'NN-1', title: null }), { status: 400, code: '23502' });
  });

  it('invalid text representation: 400 22P02', async () => {
    const res = await ctx.alice.from('fx_items').select('id').eq('qty', 'abc');
    assertPgrstError(res, { status: 400, code: '22P02' });
    assert.match(res.error.message, /invalid input syntax for type integer/);
    assertPgrstError(await ctx.alice.from('fx_items').insert({ title: 'bad', qty: 'many' }), { status: 400, code: '22P02' });
    assertPgrstError(await ctx.alice.from('fx_items').select('id').eq('ext_id', 'not-a-uuid'), { status: 400, code: '22P02' });
  });

  it('RAISE EXCEPTION: 400 P0001 with the message', async () => {
    assertPgrstError(await ctx.alice.rpc('fx_fail', { msg: 'stop right there' }), {
      status: 400,
      code: 'P0001',
      message: 'stop right there',
    });
  });
});

describe('privileges: 42501 is 401 for anon, 403 for a signed-in user', () => {
  it('anon reading a table it has no grant on: 401 42501', async () => {
    const res = await ctx.anon.from('fx_items').select('id');
    assertPgrstError(res, { status: 401, code: '42501' });
    assert.match(res.error.message, /permission denied/);
  });

  it('anon writing the public read-only table: 401 42501', async () => {
    const before = await snapshot(ctx.server, 'fx_public_posts');
    assertPgrstError(await ctx.anon.from('fx_public_posts').insert({ title: 'spam' }), { status: 401, code: '42501' });
    assert.equal(await snapshot(ctx.server, 'fx_public_posts'), before);
  });

  it('a user writing a table without the grant: 403 42501', async () => {
    const before = await snapshot(ctx.server, 'fx_public_posts');
    assertPgrstError(await ctx.alice.from('fx_public_posts').insert({ title: 'nope' }), { status: 403, code: '42501' });
    assertPgrstError(await ctx.alice.from('fx_public_posts').update({ title: 'nope' }).eq('id', 1), { status: 403, code: '42501' });
    assertPgrstError(await ctx.alice.from('fx_public_posts').delete().eq('id', 1), { status: 403, code: '42501' });
    assert.equal(await snapshot(ctx.server, 'fx_public_posts'), before);
  });

  it('a row that fails the RLS WITH CHECK: 403 42501', async () => {
    const res = await ctx.alice.from('fx_items').insert({ title: 'as bob', sku: 'RLS-1', owner_id: ctx.bobId });
    assertPgrstError(res, { status: 403, code: '42501' });
    assert.match(res.error.message, /row-level security/);
    assert.equal(await sql(ctx.server, `select count(*) from public.fx_items where sku = 'RLS-1'`), '0');
  });
});

describe('unknown things', () => {
  it('unknown table: 404 PGRST205', async () => {
    const res = await ctx.alice.from('fx_nope').select('*');
    assertPgrstError(res, { status: 404, code: 'PGRST205' });
    assert.match(res.error.message, /fx_nope/);
    assertPgrstError(await ctx.alice.from('fx_nope').insert({ a: 1 }), { status: 404, code: 'PGRST205' });
  });

  it('a table of a schema that is not exposed is unknown (auth.users)', async () => {
    assertPgrstError(await ctx.service.from('users').select('*'), { status: 404, code: 'PGRST205' });
  });

  it('unknown column in select, filter or order: 400 42703', async () => {
    assertPgrstError(await ctx.alice.from('fx_items').select('id,nope'), { status: 400, code: '42703' });
    assertPgrstError(await ctx.alice.from('fx_items').select('id').eq('nope', 1), { status: 400, code: '42703' });
    assertPgrstError(await ctx.alice.from('fx_items').select('id').order('nope'), { status: 400, code: '42703' });
    assertPgrstError(await ctx.alice.from('fx_items').select('id,fx_projects(nope)'), { status: 400, code: '42703' });
  });

  it('unknown column in a body: 400 PGRST204', async () => {
    const res = await ctx.alice.from('fx_items').insert({ title: 'x', nope: 1 });
    assertPgrstError(res, { status: 400, code: 'PGRST204' });
    assert.match(res.error.message, /nope/);
    assertPgrstError(await ctx.alice.from('fx_items').update({ nope: 1 }).eq('id', 1), { status: 400, code: 'PGRST204' });
  });

  it('unknown schema: 406 PGRST106', async () => {
    assertPgrstError(await ctx.alice.schema('nope').from('fx_items').select('*'), { status: 406, code: 'PGRST106' });
    assertPgrstError(await ctx.alice.schema('auth').from('users').select('*'), { status: 406, code: 'PGRST106' });
  });

  it('unsupported Accept: 406 PGRST107', async () => {
    const raw = await rest(ctx.server, 'GET', '/fx_items?select=id', { token: ctx.aliceToken, headers: { Accept: 'application/xml' } });
    assertRawError(raw, 406, 'PGRST107');
  });
});

describe('bad syntax and bodies', () => {
  for (const [name, query] of [
    ['unknown operator', { qty: 'eqq.1' }],
    ['operator without a dot', { qty: 'eq1' }],
    ['unclosed or', { or: '(qty.eq.1' }],
    ['or without parentheses', { or: 'qty.eq.1' }],
    ['unclosed embed in select', { select: 'id,fx_projects(' }],
    ['bad is value', { qty: 'is.maybe' }],
    ['bad order direction', { order: 'id.sideways' }],
    ['empty in list item', { id: 'in.(1,,' }],
  ]) {
    it(`${name}: 400 PGRST100`, async () => {
      const raw = await rest(ctx.server, 'GET', `/fx_items?${qs(query)}`, { token: ctx.aliceToken });
      assertRawError(raw, 400, 'PGRST100');
    });
  }

  it('invalid JSON body: 400 PGRST102', async () => {
    const raw = await rest(ctx.server, 'POST', '/fx_items', { token: ctx.aliceToken, body: '{"title": ' });
    assertRawError(raw, 400, 'PGRST102');
  });

  it('bulk body whose rows have different keys, without columns=: 400 PGRST102', async () => {
    const before = await snapshot(ctx.server, 'fx_items');
    const raw = await rest(ctx.server, 'POST', '/fx_items', {
      token: ctx.aliceToken,
      body: [{ title: 'k1', sku: 'K-1' }, { title: 'k2' }],
    });
    assertRawError(raw, 400, 'PGRST102');
    assert.equal(await snapshot(ctx.server, 'fx_items'), before);
  });

  it('limit that is not a number: 400', async () => {
    const raw = await rest(ctx.server, 'GET', '/fx_items?select=id&limit=ten', { token: ctx.aliceToken });
    assert.equal(raw.status, 400, raw.text);
  });
});

describe('JWT failures', () => {
  it('a token that does not verify: 401 PGRST301 with WWW-Authenticate', async () => {
    const forged = signJwt({ sub: ctx.aliceId, role: 'service_role', exp: Math.floor(Date.now() / 1000) + 600 }, 'not-the-secret-not-the-secret-123');
    const raw = await rest(ctx.server, 'GET', '/fx_items?select=id', { token: forged });
    assertRawError(raw, 401, 'PGRST301');
    assert.match(raw.headers['www-authenticate'] ?? '', /^Bearer/);
    const garbage = await rest(ctx.server, 'GET', '/fx_items?select=id', { token: 'garbage' });
    assertRawError(garbage, 401, 'PGRST301');
  });

  it('an expired token: 401 PGRST303 "JWT expired"', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = signJwt({ sub: ctx.aliceId, role: 'authenticated', aud: 'authenticated', iat: now - 7200, exp: now - 3600 }, jwtSecret(ctx.server));
    const raw = await rest(ctx.server, 'GET', '/fx_items?select=id', { token: expired });
    assertRawError(raw, 401, 'PGRST303');
    assert.match(raw.json.message, /JWT expired/);
  });

  it('each JWT failure gets its own PostgREST code and message (carried as a status, not a string)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const secret = jwtSecret(ctx.server);
    const cases = [
      [{ sub: ctx.aliceId, role: 'authenticated', iat: now, nbf: now + 3600, exp: now + 7200 }, secret, 'PGRST303', /JWT not yet valid/],
      [{ sub: ctx.aliceId, role: 'authenticated', iat: now, exp: now + 600 }, 'not-the-secret-not-the-secret-123', 'PGRST301', /cryptographic operation failed/],
    ];
    for (const [claims, key, code, message] of cases) {
      const raw = await rest(ctx.server, 'GET', '/fx_items?select=id', { token: signJwt(claims, key) });
      assertRawError(raw, 401, code);
      assert.match(raw.json.message, message);
      assert.match(raw.headers['www-authenticate'] ?? '', /invalid_token/);
    }
    const garbage = await rest(ctx.server, 'GET', '/fx_items?select=id', { token: 'garbage' });
    assert.match(garbage.json.message, /JWT cannot be decoded/);
  });

  it('a valid token for a role the server may not become is refused and reads nothing', async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const role of ['postgres', 'campaignd', 'authenticator', 'pg_read_all_data', 'nobody_role']) {
      const tok = signJwt({ sub: ctx.aliceId, role, iat: now, exp: now + 600 }, jwtSecret(ctx.server));
      const raw = await rest(ctx.server, 'GET', '/fx_items?select=id', { token: tok });
      assert.ok([401, 403].includes(raw.status), `role ${role}: status ${raw.status} ${raw.text.slice(0, 200)}`);
      assert.ok(!Array.isArray(raw.json), `role ${role} read rows`);
    }
  });
});

describe('the server stays usable after errors', () => {
  it('a normal request succeeds after each error above', async () => {
    const res = await ctx.alice.from('fx_items').select('id').order('id');
    assert.deepEqual(ok(res).map((r) => r.id), [1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('the first requests after the database ended every connection are answered, not 503', async () => {
    // What a database restart does to the request threads' idle connections:
    // each backend says goodbye (57P01) and closes. A thread finds that out
    // before its next request's statements and connects again. (Raw
    // requests: postgrest-js retries a GET that got a 503, which would hide one.)
    const round = () => Promise.all(Array.from({ length: 32 }, () =>
      rest(ctx.server, 'GET', '/fx_items?select=id&limit=1', { token: ctx.aliceToken })));
    for (const r of await round()) assert.equal(r.status, 200, r.text); // every request thread has its connection
    const ended = await sql(ctx.server, `select count(pg_terminate_backend(pid)) from pg_stat_activity
      where usename = 'authenticator' and pid <> pg_backend_pid()`);
    assert.ok(Number(ended) >= 2, `ended ${ended} connections`);
    // the goodbyes arrive (pg_terminate_backend only signals)
    await sql(ctx.server, `select pg_sleep(0.3)`);
    const after = await round();
    assert.deepEqual(after.map((r) => r.status), after.map(() => 200), after.find((r) => r.status !== 200)?.text);
  });
});
