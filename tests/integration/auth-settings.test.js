// Auth settings take effect: JWT_EXP, JWT_ISSUER, PASSWORD_MIN_LENGTH,
// DEFAULT_USER_ROLE and DISABLE_SIGNUP (also for sign-in with a provider).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, client, signUpUser, signIn, request, decodeJwt, uniqueEmail, noError, sql, lit } from './helpers.js';
import { startFakeOAuth, CLIENT_ID, CLIENT_SECRET } from './fake-oauth.js';

const ISSUER = 'https://auth.example.test/auth/v1';
let tuned; // JWT_EXP=120, JWT_ISSUER, PASSWORD_MIN_LENGTH=12, DEFAULT_USER_ROLE=viewer
let closed; // DISABLE_SIGNUP=true, GitHub sign-in at a local provider
let fake;
before(async () => {
  fake = await startFakeOAuth();
  [tuned, closed] = await Promise.all([
    startServer({ JWT_EXP: '120', JWT_ISSUER: ISSUER, PASSWORD_MIN_LENGTH: '12', DEFAULT_USER_ROLE: 'viewer' }),
    startServer({
      DISABLE_SIGNUP: 'true',
      SITE_URL: 'http://site.example.test',
      EXTERNAL_GITHUB_ENABLED: 'true',
      EXTERNAL_GITHUB_CLIENT_ID: CLIENT_ID,
      EXTERNAL_GITHUB_SECRET: CLIENT_SECRET,
      EXTERNAL_GITHUB_URL: fake.url,
    }),
  ]);
});
after(async () => {
  await Promise.all([tuned?.stop(), closed?.stop(), fake?.stop()]);
});

describe('JWT_EXP, JWT_ISSUER, PASSWORD_MIN_LENGTH, DEFAULT_USER_ROLE', () => {
  it('tokens last JWT_EXP seconds and carry JWT_ISSUER; sign-up gives DEFAULT_USER_ROLE', async () => {
    const u = await signUpUser(tuned, { password: 'twelve chars' });
    assert.equal(u.session.expires_in, 120);
    const claims = decodeJwt(u.session.access_token).payload;
    assert.equal(claims.exp - claims.iat, 120);
    assert.equal(claims.iss, ISSUER);
    assert.equal(claims.app_metadata.role, 'viewer');
    assert.equal(claims.user_metadata.role, 'viewer');
    const { data, error } = await u.client.auth.refreshSession();
    noError(error);
    const again = decodeJwt(data.session.access_token).payload;
    assert.equal(again.exp - again.iat, 120);
    assert.equal(again.iss, ISSUER);
  });

  it('passwords shorter than PASSWORD_MIN_LENGTH are weak, everywhere', async () => {
    const { error } = await client(tuned).auth.signUp({ email: uniqueEmail(), password: 'eleven char' });
    assert.equal(error?.code, 'weak_password');
    assert.match(error.message, /12/);
    const u = await signUpUser(tuned, { password: 'twelve chars' });
    const upd = await u.client.auth.updateUser({ password: 'short pass' });
    assert.equal(upd.error?.code, 'weak_password');
    const admin = client(tuned, tuned.serviceKey);
    const created = await admin.auth.admin.createUser({ email: uniqueEmail(), password: 'short pass' });
    assert.equal(created.error?.status, 422);
    const cli = await tuned.run(['user', 'add', '--email', uniqueEmail(), '--password', 'short pass']);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /at least 12/);
  });
});

describe('DISABLE_SIGNUP=true', () => {
  it('refuses self-service sign-up (both endpoints); admins and the CLI still create users', async () => {
    const settings = await request(`${closed.url}/auth/v1/settings`, { headers: { apikey: closed.anonKey } });
    assert.equal(settings.json.disable_signup, true);
    const { data, error } = await client(closed).auth.signUp({ email: uniqueEmail(), password: 'long enough pw' });
    assert.equal(data.session, null);
    assert.equal(error?.status, 422);
    assert.equal(error?.code, 'signup_disabled');
    const spec = await request(`${closed.url}/auth/sign-up`, {
      method: 'POST', headers: { apikey: closed.anonKey }, body: { email: uniqueEmail(), password: 'long enough pw' },
    });
    assert.equal(spec.status, 422);
    const email = uniqueEmail('by-admin');
    const created = await client(closed, closed.serviceKey).auth.admin.createUser({ email, password: 'long enough pw', email_confirm: true });
    noError(created.error, 'admin createUser');
    await signIn(closed, email, 'long enough pw');
    const cliEmail = uniqueEmail('by-cli');
    const cli = await closed.run(['user', 'add', '--email', cliEmail, '--password', 'long enough pw']);
    assert.equal(cli.code, 0, cli.stderr);
    await signIn(closed, cliEmail, 'long enough pw');
  });
});

describe('DISABLE_SIGNUP=true and sign-in with a provider', () => {
  it('an unknown GitHub user is refused with signup_disabled, and the refusal is audited', async () => {
    const email = uniqueEmail('gh-stranger');
    fake.login('github', { id: 4242, login: 'stranger', email });
    const { data } = await client(closed).auth.signInWithOAuth({ provider: 'github', options: { skipBrowserRedirect: true } });
    const a = await request(data.url);
    const cookie = a.headers['set-cookie'][0].split(';')[0];
    const cb = (await request(a.headers.location)).headers.location;
    const r = await request(cb, { headers: { cookie } });
    assert.equal(r.status, 303);
    const f = Object.fromEntries(new URLSearchParams(new URL(r.headers.location).hash.slice(1)));
    assert.equal(f.error_code, 'signup_disabled');
    assert.equal(f.access_token, undefined);
    assert.equal(await sql(closed, `select count(*) from auth.users where email = ${lit(email)}`), '0');
    const row = JSON.parse(await sql(closed, `select json_build_object('payload', payload, 'ip', ip_address)::text
      from auth.audit_log_entries where payload->>'action' = 'login_failed' order by created_at desc limit 1`));
    assert.equal(row.payload.traits.reason, 'signup_disabled');
    assert.equal(row.payload.traits.provider, 'github');
    assert.ok(row.ip);
  });
});
