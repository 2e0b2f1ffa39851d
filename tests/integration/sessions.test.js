// Refresh-token rotation (wire reference 1.7 and gotcha 12): every use
// rotates; a parent presented again inside REFRESH_TOKEN_REUSE_INTERVAL gets
// the same live token; outside it the whole session is revoked; parallel
// refreshes of one token never fork the chain.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, signUpUser, signIn, request, decodeJwt, sql, lit, noError } from './helpers.js';

let server; // default REFRESH_TOKEN_REUSE_INTERVAL (10 s)
let strict; // REFRESH_TOKEN_REUSE_INTERVAL=0
before(async () => {
  [server, strict] = await Promise.all([startServer(), startServer({ REFRESH_TOKEN_REUSE_INTERVAL: '0' })]);
});
after(async () => {
  await Promise.all([server?.stop(), strict?.stop()]);
});

function refresh(srv, token) {
  return request(`${srv.url}/auth/v1/token?grant_type=refresh_token`, {
    method: 'POST',
    headers: { apikey: srv.anonKey, Authorization: `Bearer ${srv.anonKey}`, 'X-Supabase-Api-Version': '2024-01-01' },
    body: { refresh_token: token },
  });
}

describe('refresh token rotation', () => {
  it('every use hands out a new refresh token in the same session', async () => {
    const u = await signUpUser(server);
    const sid = decodeJwt(u.session.access_token).payload.session_id;
    const seen = new Set([u.session.refresh_token]);
    let token = u.session.refresh_token;
    for (let i = 0; i < 3; i++) {
      const r = await refresh(server, token);
      assert.equal(r.status, 200, r.text);
      assert.ok(!seen.has(r.json.refresh_token), 'a fresh token each time');
      seen.add(r.json.refresh_token);
      assert.equal(decodeJwt(r.json.access_token).payload.session_id, sid);
      assert.equal(r.json.user.id, u.user.id);
      token = r.json.refresh_token;
    }
    const stored = await sql(server, `select count(*), count(*) filter (where not revoked) from auth.refresh_tokens where session_id = ${lit(sid)}`);
    assert.equal(stored, '4|1', 'one live token per session; the used ones are revoked');
    const clear = await sql(server, `select count(*) from auth.refresh_tokens where token = ${lit(token)}`);
    assert.equal(clear, '0', 'refresh tokens are not stored in clear');
  });

  it('within the reuse interval, the parent of the live token gets the SAME live token', async () => {
    const u = await signUpUser(server);
    const a = u.session.refresh_token;
    const r1 = await refresh(server, a);
    assert.equal(r1.status, 200);
    const b = r1.json.refresh_token;
    const again = await refresh(server, a);
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.refresh_token, b, 'no new token for a reused parent');
    const r2 = await refresh(server, b);
    assert.equal(r2.status, 200);
    const c = r2.json.refresh_token;
    const grand = await refresh(server, a);
    assert.equal(grand.status, 200, grand.text);
    assert.equal(grand.json.refresh_token, c, 'an older token of the chain also gets the live one');
    const live = await refresh(server, c);
    assert.equal(live.status, 200, 'the live token still works');
  });

  it('N parallel refreshes of one token all succeed with the same new token (no fork)', async () => {
    const u = await signUpUser(server);
    const sid = decodeJwt(u.session.access_token).payload.session_id;
    const results = await Promise.all(Array.from({ length: 8 }, () => refresh(server, u.session.refresh_token)));
    for (const r of results) assert.equal(r.status, 200, r.text);
    const tokens = new Set(results.map((r) => r.json.refresh_token));
    assert.equal(tokens.size, 1, `one new token, got ${tokens.size}`);
    const live = await sql(server, `select count(*) from auth.refresh_tokens where session_id = ${lit(sid)} and not revoked`);
    assert.equal(live, '1');
    const next = await refresh(server, [...tokens][0]);
    assert.equal(next.status, 200);
  });

  it('supabase-js refreshSession works through several rotations', async () => {
    const u = await signUpUser(server);
    let last = u.session.refresh_token;
    for (let i = 0; i < 3; i++) {
      const { data, error } = await u.client.auth.refreshSession();
      noError(error, 'refreshSession');
      assert.notEqual(data.session.refresh_token, last);
      last = data.session.refresh_token;
    }
    const { data, error } = await u.client.auth.getUser();
    noError(error, 'getUser');
    assert.equal(data.user.id, u.user.id);
  });

  it('an unknown or malformed refresh token is 400 refresh_token_not_found', async () => {
    for (const t of ['nope', 'x'.repeat(300), '']) {
      const r = await refresh(server, t);
      assert.equal(r.status, 400);
      assert.match(r.json.code, /refresh_token_not_found|validation_failed/);
    }
    const r = await refresh(server, 'A'.repeat(43));
    assert.equal(r.json.code, 'refresh_token_not_found');
    assert.equal(r.json.message, 'Invalid Refresh Token: Refresh Token Not Found');
  });
});

describe('refresh token reuse outside the interval (REFRESH_TOKEN_REUSE_INTERVAL=0)', () => {
  it('revokes the whole session: the newest token and the access token stop working', async () => {
    const u = await signUpUser(strict);
    const other = await signIn(strict, u.email); // another session of the same user survives
    const a = u.session.refresh_token;
    const r1 = await refresh(strict, a);
    assert.equal(r1.status, 200);
    const b = r1.json.refresh_token;
    const reuse = await refresh(strict, a);
    assert.equal(reuse.status, 400);
    assert.equal(reuse.json.code, 'refresh_token_already_used');
    assert.equal(reuse.json.message, 'Invalid Refresh Token: Already Used');
    const newest = await refresh(strict, b);
    assert.equal(newest.status, 400, 'the newest token of the chain is revoked too');
    const user = await request(`${strict.url}/auth/v1/user`, {
      headers: { apikey: strict.anonKey, Authorization: `Bearer ${r1.json.access_token}` },
    });
    assert.equal(user.status, 403);
    assert.equal(user.json.code, 'session_not_found');
    const sid = decodeJwt(u.session.access_token).payload.session_id;
    assert.equal(await sql(strict, `select count(*) from auth.sessions where id = ${lit(sid)}`), '0');
    const { error } = await other.client.auth.refreshSession();
    noError(error, 'the other session');
  });

  it('supabase-js sees the reuse as an error and drops the session', async () => {
    const u = await signUpUser(strict);
    const stale = u.session.refresh_token;
    const first = await u.client.auth.refreshSession();
    noError(first.error);
    const { data, error } = await u.client.auth.refreshSession({ refresh_token: stale });
    assert.equal(data.session, null);
    assert.equal(error?.status, 400);
    assert.equal(error?.code, 'refresh_token_already_used');
  });
});
