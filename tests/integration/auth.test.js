// Auth with the real @supabase/supabase-js: sign-up, sign-in, sessions, the
// User and Session JSON and the access-token claims (wire reference 1.3-1.5),
// updateUser, signOut scopes, settings, password rules, roles that cannot be
// forged (SEED-NOTES 1), the specification's /auth/* endpoints and the audit
// trail in auth.audit_log_entries.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  startServer, client, uniqueEmail, signUpUser, signIn, request, decodeJwt, jwtSecret, sql, psql, lit,
  PASSWORD, noError,
} from './helpers.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const GO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

const authUrl = (p) => `${server.url}/auth/v1${p}`;
const apiHeaders = (token) => ({ apikey: server.anonKey, Authorization: `Bearer ${token || server.anonKey}` });

function assertUserJson(user, email) {
  assert.match(user.id, UUID);
  assert.equal(user.aud, 'authenticated');
  assert.equal(user.role, 'authenticated');
  assert.equal(user.email, email.toLowerCase());
  assert.equal(user.phone, '');
  assert.equal(user.is_anonymous, false);
  for (const f of ['created_at', 'updated_at', 'email_confirmed_at', 'confirmed_at', 'last_sign_in_at'])
    assert.match(user[f], GO_TIME, `user.${f} is a GoTrue timestamp`);
  assert.equal(user.app_metadata.provider, 'email');
  assert.deepEqual(user.app_metadata.providers, ['email']);
  assert.ok(Array.isArray(user.identities) && user.identities.length === 1, 'one e-mail identity');
  const idn = user.identities[0];
  assert.match(idn.identity_id, UUID);
  assert.equal(idn.id, user.id, 'identity id is the provider id (= user id for e-mail)');
  assert.equal(idn.user_id, user.id);
  assert.equal(idn.provider, 'email');
  assert.equal(idn.identity_data.sub, user.id);
  assert.equal(idn.identity_data.email, email.toLowerCase());
  assert.equal(idn.email, email.toLowerCase());
}

function assertAccessToken(token, user, { role = 'user' } = {}) {
  const [h, p, s] = token.split('.');
  const { header, payload } = decodeJwt(token);
  assert.equal(header.alg, 'HS256');
  assert.equal(header.typ, 'JWT');
  const mac = crypto.createHmac('sha256', jwtSecret(server)).update(`${h}.${p}`).digest('base64url');
  assert.equal(s, mac, 'signed with HS256 and the server secret');
  assert.equal(payload.iss, `${server.url}/auth/v1`);
  assert.equal(payload.sub, user.id);
  assert.equal(payload.aud, 'authenticated');
  assert.equal(payload.role, 'authenticated');
  assert.equal(payload.email, user.email);
  assert.equal(payload.phone, '');
  assert.ok(Number.isInteger(payload.iat) && Number.isInteger(payload.exp));
  assert.equal(payload.exp - payload.iat, 3600);
  assert.ok(Math.abs(payload.iat - Date.now() / 1000) < 300, 'iat is now');
  assert.match(payload.session_id, UUID);
  assert.equal(payload.aal, 'aal1');
  assert.ok(Array.isArray(payload.amr) && payload.amr.length >= 1);
  assert.equal(payload.amr[0].method, 'password');
  assert.ok(Number.isInteger(payload.amr[0].timestamp));
  assert.equal(payload.app_metadata.role, role);
  assert.equal(payload.user_metadata.role, role);
  assert.equal(payload.app_metadata.provider, 'email');
  assert.equal(payload.is_anonymous, false);
  return payload;
}

function assertSession(session, user) {
  assert.equal(session.token_type, 'bearer');
  assert.equal(session.expires_in, 3600);
  assert.ok(Number.isInteger(session.expires_at));
  assert.ok(Math.abs(session.expires_at - (Date.now() / 1000 + 3600)) < 300, 'expires_at is epoch seconds');
  assert.equal(typeof session.refresh_token, 'string');
  assert.ok(session.refresh_token.length >= 12);
  assert.equal(session.user.id, user.id);
}

describe('sign-up, sign-in and the session JSON', () => {
  it('signUp returns a session, a GoTrue user and an HS256 access token with the documented claims', async () => {
    const email = uniqueEmail('MixedCase');
    const c = client(server);
    const { data, error } = await c.auth.signUp({ email, password: PASSWORD, options: { data: { name: 'Ada' } } });
    noError(error);
    assertUserJson(data.user, email);
    assert.equal(data.user.user_metadata.name, 'Ada');
    assert.equal(data.user.user_metadata.role, 'user');
    assert.equal(data.user.app_metadata.role, 'user');
    assertSession(data.session, data.user);
    const claims = assertAccessToken(data.session.access_token, data.user);
    assert.equal(claims.user_metadata.name, 'Ada');
    assert.equal(claims.exp, data.session.expires_at);
  });

  it('signUp with an address that exists (in any case) is 422 user_already_exists', async () => {
    const { email } = await signUpUser(server);
    const { data, error } = await client(server).auth.signUp({ email: email.toUpperCase(), password: PASSWORD });
    assert.equal(data.session, null);
    assert.equal(error?.status, 422);
    assert.equal(error?.code, 'user_already_exists');
  });

  it('signUp refuses a malformed e-mail address and a missing password', async () => {
    let r = await request(authUrl('/signup'), { method: 'POST', headers: apiHeaders(), body: { email: 'not-an-email', password: PASSWORD } });
    assert.equal(r.status, 400);
    assert.equal(r.json.code, 'validation_failed');
    r = await request(authUrl('/signup'), { method: 'POST', headers: apiHeaders(), body: { email: uniqueEmail() } });
    assert.equal(r.status, 400);
    assert.equal(r.json.code, 'validation_failed');
    assert.equal(r.headers['x-supabase-api-version'], '2024-01-01');
  });

  it('signInWithPassword starts a new session for the user (case-insensitive e-mail)', async () => {
    const u = await signUpUser(server);
    const c = client(server);
    const { data, error } = await c.auth.signInWithPassword({ email: u.email.toUpperCase(), password: PASSWORD });
    noError(error);
    assertUserJson(data.user, u.email);
    assertSession(data.session, data.user);
    const claims = assertAccessToken(data.session.access_token, data.user);
    assert.notEqual(claims.session_id, decodeJwt(u.session.access_token).payload.session_id, 'a new session');
    const rows = await sql(server, `select count(*) from auth.sessions where user_id = ${lit(u.user.id)}`);
    assert.equal(rows, '2');
  });

  it('refreshSession rotates the refresh token and keeps the session id', async () => {
    const u = await signUpUser(server);
    const before = decodeJwt(u.session.access_token).payload;
    const { data, error } = await u.client.auth.refreshSession();
    noError(error);
    assertSession(data.session, u.user);
    assert.notEqual(data.session.refresh_token, u.session.refresh_token);
    const after = assertAccessToken(data.session.access_token, data.user);
    assert.equal(after.session_id, before.session_id);
    const { data: g, error: ge } = await client(server).auth.getUser(data.session.access_token);
    noError(ge);
    assert.equal(g.user.id, u.user.id);
  });

  it('getUser with the session and with an explicit JWT returns the bare User object', async () => {
    const u = await signUpUser(server);
    const { data, error } = await u.client.auth.getUser();
    noError(error);
    assertUserJson(data.user, u.email);
    const r = await request(authUrl('/user'), { headers: apiHeaders(u.session.access_token) });
    assert.equal(r.status, 200);
    assert.equal(r.json.id, u.user.id, 'top-level user, not wrapped');
    assert.equal(r.json.user, undefined);
  });

  it('GET /user without a Bearer user token is 401 no_authorization; without apikey 401', async () => {
    let r = await request(authUrl('/user'), { headers: { apikey: server.anonKey } });
    assert.equal(r.status, 401);
    assert.equal(r.json.code, 'no_authorization');
    r = await request(authUrl('/user'), { headers: { apikey: server.anonKey, Authorization: `Bearer ${server.anonKey}` } });
    assert.equal(r.status, 401);
    r = await request(authUrl('/signup'), { method: 'POST', body: { email: uniqueEmail(), password: PASSWORD } });
    assert.equal(r.status, 401);
    assert.equal(r.json.message, 'No API key found in request');
    r = await request(authUrl('/signup'), {
      method: 'POST', headers: { apikey: 'not-a-key' }, body: { email: uniqueEmail(), password: PASSWORD },
    });
    assert.equal(r.status, 401);
    assert.equal(r.json.message, 'Invalid authentication credentials');
  });

  it('GET /settings describes the e-mail provider and autoconfirm', async () => {
    const r = await request(authUrl('/settings'), { headers: { apikey: server.anonKey } });
    assert.equal(r.status, 200);
    assert.equal(r.json.external.email, true);
    assert.equal(r.json.external.phone, false);
    assert.equal(r.json.disable_signup, false);
    assert.equal(r.json.mailer_autoconfirm, true);
  });
});

describe('updateUser', () => {
  it('merges data into user_metadata, null deletes a key, an unchanged role is accepted', async () => {
    const u = await signUpUser(server, { data: { theme: 'dark', lang: 'en' } });
    let { data, error } = await u.client.auth.updateUser({ data: { role: 'user', theme: 'light', tz: 'UTC' } });
    noError(error);
    assert.deepEqual(
      { ...data.user.user_metadata },
      { theme: 'light', lang: 'en', tz: 'UTC', role: 'user' },
    );
    ({ data, error } = await u.client.auth.updateUser({ data: { lang: null } }));
    noError(error);
    assert.equal('lang' in data.user.user_metadata, false, 'null deletes the key');
    assert.equal(data.user.user_metadata.theme, 'light');
    const stored = await sql(server, `select raw_user_meta_data from auth.users where id = ${lit(u.user.id)}`);
    assert.deepEqual(JSON.parse(stored), { theme: 'light', tz: 'UTC' }, 'the role is never stored in user metadata');
  });

  it('a user cannot give themselves another role: 403 not_admin, nothing changes', async () => {
    const u = await signUpUser(server);
    const { error } = await u.client.auth.updateUser({ data: { role: 'admin', theme: 'x' } });
    assert.equal(error?.status, 403);
    assert.equal(error?.code, 'not_admin');
    const r = await request(authUrl('/user'), {
      method: 'PUT', headers: apiHeaders(u.session.access_token), body: { app_metadata: { role: 'admin' } },
    });
    assert.equal(r.status, 403);
    assert.equal(r.json.code, 'not_admin');
    const { data } = await u.client.auth.refreshSession();
    const claims = decodeJwt(data.session.access_token).payload;
    assert.equal(claims.app_metadata.role, 'user');
    assert.equal(claims.user_metadata.role, 'user');
    assert.equal(claims.user_metadata.theme, undefined, 'the refused update changed nothing');
  });

  it('changes the password (not to the same one) and the e-mail address', async () => {
    const u = await signUpUser(server);
    let { error } = await u.client.auth.updateUser({ password: PASSWORD });
    assert.equal(error?.status, 422);
    assert.equal(error?.code, 'same_password');
    ({ error } = await u.client.auth.updateUser({ password: 'short' }));
    assert.equal(error?.status, 422);
    assert.equal(error?.code, 'weak_password');
    ({ error } = await u.client.auth.updateUser({ password: 'a brand new secret' }));
    noError(error);
    const old = await client(server).auth.signInWithPassword({ email: u.email, password: PASSWORD });
    assert.equal(old.error?.code, 'invalid_credentials');
    await signIn(server, u.email, 'a brand new secret');

    const newEmail = uniqueEmail('moved');
    const res = await u.client.auth.updateUser({ email: newEmail });
    noError(res.error);
    assert.equal(res.data.user.email, newEmail);
    assert.equal(res.data.user.identities[0].identity_data.email, newEmail);
    await signIn(server, newEmail, 'a brand new secret');
    const taken = await signUpUser(server);
    const dup = await u.client.auth.updateUser({ email: taken.email });
    assert.equal(dup.error?.status, 422);
    assert.equal(dup.error?.code, 'email_exists');
  });
});

describe('password change and sessions', () => {
  it('changing the password ends the user\'s other sessions; an admin change ends all of them', async () => {
    const status = async (t) => (await request(authUrl('/user'), { headers: apiHeaders(t) })).status;
    const u = await signUpUser(server);
    const other = await signIn(server, u.email);
    const { error } = await u.client.auth.updateUser({ password: 'changed password 1' });
    noError(error, 'updateUser(password)');
    assert.equal(await status(u.session.access_token), 200, 'the session that changed it stays');
    assert.equal(await status(other.session.access_token), 403, 'another session (maybe the thief) ends');
    const ref = await client(server).auth.refreshSession({ refresh_token: other.session.refresh_token });
    assert.equal(ref.error?.status, 400);
    const admin = client(server, server.serviceKey);
    const upd = await admin.auth.admin.updateUserById(u.user.id, { password: 'changed password 2' });
    noError(upd.error, 'admin password change');
    assert.equal(await status(u.session.access_token), 403, 'an admin reset ends every session');
  });
});

describe('signOut scopes', () => {
  const getUserStatus = async (token) => (await request(authUrl('/user'), { headers: apiHeaders(token) })).status;
  const refreshStatus = async (rt) =>
    (await request(authUrl('/token?grant_type=refresh_token'), { method: 'POST', headers: apiHeaders(), body: { refresh_token: rt } })).status;

  it('others ends every other session, local only this one, global all of them', async () => {
    const u = await signUpUser(server);
    const a = await signIn(server, u.email);
    const b = await signIn(server, u.email);
    const c = await signIn(server, u.email);

    let { error } = await a.client.auth.signOut({ scope: 'others' });
    noError(error);
    assert.equal(await getUserStatus(a.session.access_token), 200, 'scope=others keeps this session');
    for (const s of [b, c, u]) {
      assert.equal(await getUserStatus(s.session.access_token), 403);
      assert.equal(await refreshStatus(s.session.refresh_token), 400);
    }
    const missing = await b.client.auth.getUser(b.session.access_token);
    assert.equal(missing.error?.name, 'AuthSessionMissingError', 'session_not_found makes supabase-js drop the session');

    const d = await signIn(server, u.email);
    ({ error } = await a.client.auth.signOut({ scope: 'local' }));
    noError(error);
    assert.equal(await getUserStatus(a.session.access_token), 403);
    assert.equal(await getUserStatus(d.session.access_token), 200, 'scope=local leaves other sessions');
    assert.equal((await a.client.auth.getSession()).data.session, null, 'the client dropped its session');

    const e = await signIn(server, u.email);
    ({ error } = await d.client.auth.signOut());
    noError(error);
    for (const s of [d, e]) {
      assert.equal(await getUserStatus(s.session.access_token), 403, 'global signOut ends every session');
      assert.equal(await refreshStatus(s.session.refresh_token), 400);
    }
    const rows = await sql(server, `select count(*) from auth.sessions where user_id = ${lit(u.user.id)}`);
    assert.equal(rows, '0');
  });

  it('POST /logout answers 204 with an empty body and refuses an unknown scope', async () => {
    const u = await signUpUser(server);
    let r = await request(authUrl('/logout?scope=everything'), { method: 'POST', headers: apiHeaders(u.session.access_token) });
    assert.equal(r.status, 400);
    r = await request(authUrl('/logout?scope=local'), { method: 'POST', headers: apiHeaders(u.session.access_token) });
    assert.equal(r.status, 204);
    assert.equal(r.text, '');
  });
});

describe('passwords', () => {
  it('are stored as bcrypt $2b$ hashes with BCRYPT_COST', async () => {
    const u = await signUpUser(server);
    const hash = await sql(server, `select encrypted_password from auth.users where id = ${lit(u.user.id)}`);
    assert.match(hash, /^\$2b\$10\$[./A-Za-z0-9]{53}$/);
  });

  it('a $2a$10$ hash imported through admin createUser(password_hash) signs in with the original password', async () => {
    const u = await signUpUser(server, { password: 'imported password 1' });
    const hash = await sql(server, `select encrypted_password from auth.users where id = ${lit(u.user.id)}`);
    const legacy = hash.replace(/^\$2b\$/, '$2a$');
    const admin = client(server, server.serviceKey);
    const email = uniqueEmail('imported');
    const { data, error } = await admin.auth.admin.createUser({ email, password_hash: legacy, email_confirm: true });
    noError(error);
    assert.equal(data.user.email, email);
    assert.equal(await sql(server, `select encrypted_password from auth.users where id = ${lit(data.user.id)}`), legacy);
    await signIn(server, email, 'imported password 1');
    const wrong = await client(server).auth.signInWithPassword({ email, password: 'imported password 2' });
    assert.equal(wrong.error?.code, 'invalid_credentials');
    const bad = await admin.auth.admin.createUser({ email: uniqueEmail(), password_hash: 'md5abcdef' });
    assert.equal(bad.error?.status, 422);
  });

  it('shorter than PASSWORD_MIN_LENGTH is 422 weak_password with reasons', async () => {
    const { data, error } = await client(server).auth.signUp({ email: uniqueEmail(), password: '1234567' });
    assert.equal(data.session, null);
    assert.equal(error?.name, 'AuthWeakPasswordError');
    assert.equal(error.status, 422);
    assert.equal(error.code, 'weak_password');
    assert.deepEqual(error.reasons, ['length']);
    assert.match(error.message, /8/);
  });

  it('over 72 bytes is refused at sign-up, never truncated', async () => {
    const p72 = 'p'.repeat(72);
    let r = await client(server).auth.signUp({ email: uniqueEmail(), password: `${p72}X` });
    assert.equal(r.error?.status, 422, '73 bytes');
    r = await client(server).auth.signUp({ email: uniqueEmail(), password: 'é'.repeat(37) });
    assert.equal(r.error?.status, 422, '37 characters but 74 bytes');
    const email = uniqueEmail();
    r = await client(server).auth.signUp({ email, password: p72 });
    noError(r.error, 'exactly 72 bytes is fine');
    r = await client(server).auth.signInWithPassword({ email, password: `${p72}X` });
    assert.equal(r.error?.code, 'invalid_credentials', 'the 73rd byte is not ignored at sign-in');
    await signIn(server, email, p72);
  });

  it('a NUL byte in the password or e-mail is refused, not cut off', async () => {
    const email = uniqueEmail('nul');
    const h = { apikey: server.anonKey };
    let r = await request(authUrl('/signup'), { method: 'POST', headers: h, body: JSON.stringify({ email, password: 'abcdefgh\u0000 and the rest of it' }) });
    const cut = await request(authUrl('/token?grant_type=password'), { method: 'POST', headers: h, body: { email, password: 'abcdefgh' } });
    assert.notEqual(cut.status, 200, 'signing in with the part before the NUL must not work');
    assert.equal(r.status, 422, `sign-up: ${r.text}`);
    const e2 = uniqueEmail('nulmail');
    r = await request(authUrl('/signup'), { method: 'POST', headers: h, body: JSON.stringify({ email: `${e2}\u0000@evil.example`, password: PASSWORD }) });
    assert.equal(r.status, 400, `e-mail with NUL: ${r.text}`);
  });

  it('unknown e-mail and wrong password get the same status and body', async () => {
    const u = await signUpUser(server);
    const post = (email) =>
      request(authUrl('/token?grant_type=password'), {
        method: 'POST', headers: { ...apiHeaders(), 'X-Supabase-Api-Version': '2024-01-01' }, body: { email, password: 'wrong password!' },
      });
    const wrong = await post(u.email);
    const unknown = await post(uniqueEmail('nobody'));
    assert.equal(wrong.status, 400);
    assert.equal(unknown.status, wrong.status);
    assert.equal(unknown.text, wrong.text);
    assert.equal(wrong.json.code, 'invalid_credentials');
    assert.equal(wrong.json.message, 'Invalid login credentials');
    assert.equal(unknown.headers['x-sb-error-code'], wrong.headers['x-sb-error-code']);
    const viaJs = await client(server).auth.signInWithPassword({ email: uniqueEmail(), password: 'x'.repeat(10) });
    assert.equal(viaJs.error?.status, 400);
    assert.equal(viaJs.error?.code, 'invalid_credentials');
  });
});

describe('roles cannot be forged (SEED-NOTES 1)', () => {
  it('signUp with data.role = admin yields role user everywhere', async () => {
    const u = await signUpUser(server, { data: { role: 'admin', team: 'red' } });
    assert.equal(u.user.app_metadata.role, 'user');
    assert.equal(u.user.user_metadata.role, 'user');
    assert.equal(u.user.user_metadata.team, 'red');
    const claims = decodeJwt(u.session.access_token).payload;
    assert.equal(claims.app_metadata.role, 'user');
    assert.equal(claims.user_metadata.role, 'user');
    const stored = await sql(server, `select raw_app_meta_data->>'role', raw_user_meta_data ? 'role' from auth.users where id = ${lit(u.user.id)}`);
    assert.equal(stored, 'user|f');
    const roleFn = await sql(server, `select public.get_user_role() from (select set_config('request.jwt.claims', ${lit(JSON.stringify(claims))}, false)) s`);
    assert.equal(roleFn, 'user');
  });

  it('a role set with `campaignd user set-role` is in the claims from the next refresh on', async () => {
    const u = await signUpUser(server);
    const r = await server.run(['user', 'set-role', '--email', u.email, '--role', 'viewer']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /user -> viewer/);
    const { data, error } = await u.client.auth.refreshSession();
    noError(error);
    const claims = decodeJwt(data.session.access_token).payload;
    assert.equal(claims.app_metadata.role, 'viewer');
    assert.equal(claims.user_metadata.role, 'viewer');
    assert.equal(data.user.user_metadata.role, 'viewer');
    const upd = await u.client.auth.updateUser({ data: { role: 'user' } });
    assert.equal(upd.error?.code, 'not_admin', 'a viewer cannot go back to user either');
  });
});

describe("the specification's /auth endpoints", () => {
  it('sign-up, sign-in, user and sign-out with plain fetch', async () => {
    const email = uniqueEmail('spec');
    const h = { apikey: server.anonKey };
    let r = await request(`${server.url}/auth/sign-up`, { method: 'POST', headers: h, body: { email, password: PASSWORD } });
    assert.equal(r.status, 200);
    assert.equal(r.json.user.email, email);
    assert.ok(r.json.access_token && r.json.refresh_token);
    r = await request(`${server.url}/auth/sign-in`, { method: 'POST', headers: h, body: { email, password: PASSWORD } });
    assert.equal(r.status, 200);
    const token = r.json.access_token;
    assert.equal(decodeJwt(token).payload.email, email);
    r = await request(`${server.url}/auth/sign-in`, { method: 'POST', headers: h, body: { email, password: 'wrong password' } });
    assert.equal(r.status, 400);
    assert.equal(r.json.code, 'invalid_credentials');
    r = await request(`${server.url}/auth/user`, { headers: { ...h, Authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200);
    assert.equal(r.json.email, email);
    r = await request(`${server.url}/auth/sign-out`, { method: 'POST', headers: { ...h, Authorization: `Bearer ${token}` } });
    assert.equal(r.status, 204);
    r = await request(`${server.url}/auth/user`, { headers: { ...h, Authorization: `Bearer ${token}` } });
    assert.equal(r.status, 403);
    assert.equal(r.json.code, 'session_not_found');
    r = await request(`${server.url}/auth/sign-in`, { method: 'POST', body: { email, password: PASSWORD } });
    assert.equal(r.status, 401, 'the apikey is required');
  });
});

describe('audit trail', () => {
  const auditRows = async (u) =>
    JSON.parse(
      await sql(
        server,
        `select coalesce(json_agg(json_build_object('action', payload->>'action', 'actor', payload->>'actor_id',
           'email', payload->>'actor_username', 'traits', payload->'traits', 'ip', ip_address) order by created_at, id), '[]')
         from auth.audit_log_entries
         where payload->>'actor_id' = ${lit(u.user.id)} or payload->>'actor_username' = ${lit(u.email)}
            or payload->'traits'->>'user_id' = ${lit(u.user.id)}`,
      ),
    );

  it('auth.audit_log_entries records sign-up, sign-in, failed sign-in, refresh and CLI role changes', async () => {
    const u = await signUpUser(server);
    const bad = await client(server).auth.signInWithPassword({ email: u.email, password: 'not the password' });
    assert.equal(bad.error?.code, 'invalid_credentials');
    const s = await signIn(server, u.email);
    const ref = await s.client.auth.refreshSession();
    noError(ref.error);
    const cli = await server.run(['user', 'set-role', '--email', u.email, '--role', 'viewer']);
    assert.equal(cli.code, 0, cli.stderr);

    const rows = await auditRows(u);
    const actions = rows.map((r) => r.action);
    for (const a of ['user_signedup', 'login_failed', 'login', 'token_refreshed', 'user_role_changed'])
      assert.ok(actions.includes(a), `audit has ${a}: ${actions.join(', ')}`);
    const failed = rows.find((r) => r.action === 'login_failed');
    assert.equal(failed.actor, u.user.id);
    assert.equal(failed.ip, '127.0.0.1');
    const login = rows.find((r) => r.action === 'login');
    assert.equal(login.email, u.email);
    const refreshed = rows.find((r) => r.action === 'token_refreshed');
    assert.equal(refreshed.actor, u.user.id);
    const changed = rows.find((r) => r.action === 'user_role_changed');
    assert.equal(changed.traits.from, 'user');
    assert.equal(changed.traits.to, 'viewer');

    const unknown = uniqueEmail('ghost');
    await client(server).auth.signInWithPassword({ email: unknown, password: 'whatever123' });
    assert.equal(
      await sql(server, `select count(*) from auth.audit_log_entries where payload->>'action' = 'login_failed' and payload->>'actor_username' = ${lit(unknown)}`),
      '1',
      'a failed sign-in for an unknown e-mail is audited too',
    );
  });

  it('records sign-out and role changes made through the admin API', async () => {
    const u = await signUpUser(server);
    const out = await u.client.auth.signOut({ scope: 'local' });
    noError(out.error, 'signOut');
    const admin = client(server, server.serviceKey);
    const upd = await admin.auth.admin.updateUserById(u.user.id, { app_metadata: { role: 'admin' } });
    noError(upd.error, 'admin.updateUserById');
    const rows = await auditRows(u);
    const logout = rows.find((r) => r.action === 'logout');
    assert.ok(logout, `a logout row: ${rows.map((r) => r.action).join(', ')}`);
    assert.equal(logout.traits.scope, 'local');
    const modified = rows.find((r) => r.action === 'user_modified' && r.traits?.role);
    assert.equal(modified?.traits.role, 'admin', 'admin API role change is audited with the new role');
  });

  it('is not readable by anon or authenticated', async () => {
    for (const role of ['anon', 'authenticated']) {
      const r = await psql(server, `set role ${role}; select * from auth.audit_log_entries limit 1`);
      assert.notEqual(r.code, 0, `${role} must not read the audit log`);
      assert.match(r.stderr, /permission denied/);
    }
  });
});
