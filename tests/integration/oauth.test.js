// Sign-in with GitHub and Google (issue 14) through supabase-js, against a
// local provider that speaks the real authorization-code flow
// (fake-oauth.js): the implicit flow (tokens in the redirect's fragment) and
// PKCE (flowType 'pkce', exchangeCodeForSession), linking by verified e-mail
// only, the default role whatever the provider claims, and the attacks:
// tampered and expired state, a wrong verifier, a reused code, an open
// redirect. Also PKCE for the mailed links (sign-up confirmation, recovery).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, client, request, sql, lit, uniqueEmail, noError, decodeJwt, jwtSecret, PASSWORD } from './helpers.js';
import { startFakeOAuth, CLIENT_ID, CLIENT_SECRET } from './fake-oauth.js';
import { startSmtpSink, linkAndCode } from './mail-sink.js';

const SITE = 'http://site.example.test';
let server;
let fake;
let sink;

before(async () => {
  [fake, sink] = await Promise.all([startFakeOAuth(), startSmtpSink()]);
  server = await startServer({
    SITE_URL: SITE,
    ADDITIONAL_REDIRECT_URLS: 'http://app.example.test/**',
    SMTP_URL: sink.url,
    SMTP_MAX_FREQUENCY: '0',
    RATE_LIMIT_EMAIL_SENT: '100000',
    EXTERNAL_GITHUB_ENABLED: 'true',
    EXTERNAL_GITHUB_CLIENT_ID: CLIENT_ID,
    EXTERNAL_GITHUB_SECRET: CLIENT_SECRET,
    EXTERNAL_GITHUB_URL: fake.url,
    EXTERNAL_GOOGLE_ENABLED: 'true',
    EXTERNAL_GOOGLE_CLIENT_ID: CLIENT_ID,
    EXTERNAL_GOOGLE_SECRET: CLIENT_SECRET,
    EXTERNAL_GOOGLE_URL: fake.url,
    // a generic OIDC provider: configured endpoints (the fake's Google ones)
    EXTERNAL_OIDC_ENABLED: 'true',
    EXTERNAL_OIDC_CLIENT_ID: CLIENT_ID,
    EXTERNAL_OIDC_SECRET: CLIENT_SECRET,
    EXTERNAL_OIDC_AUTHORIZE_URL: `${fake.url}/o/oauth2/v2/auth`,
    EXTERNAL_OIDC_TOKEN_URL: `${fake.url}/token`,
    EXTERNAL_OIDC_USERINFO_URL: `${fake.url}/v1/userinfo`,
    EXTERNAL_OIDC_ISSUER: fake.url,
  });
});
after(async () => {
  await server?.stop();
  await Promise.all([fake?.stop(), sink?.stop()]);
});

let nextId = 1000;
const profile = (over = {}) => {
  const id = nextId++;
  return { id, login: `octo${id}`, email: uniqueEmail('oauth'), ...over };
};

/** A browser's cookies for campaignd (name -> {value, path}), as far as the
 * tests need: Set-Cookie stored, Max-Age=0 deletes, sent when the path fits. */
function cookieJar() {
  const jar = new Map();
  return {
    jar,
    store(headers) {
      for (const line of headers['set-cookie'] || []) {
        const [pair, ...attrs] = line.split(';').map((x) => x.trim());
        const [name, value] = pair.split('=');
        const attr = Object.fromEntries(attrs.map((a) => [a.split('=')[0].toLowerCase(), a.split('=')[1] ?? true]));
        if (attr['max-age'] === '0') jar.delete(name);
        else jar.set(name, { value, path: attr.path || '/', attr });
      }
    },
    header(url) {
      const path = new URL(url).pathname;
      const c = [...jar].filter(([, v]) => path.startsWith(v.path)).map(([k, v]) => `${k}=${v.value}`);
      return c.length ? { cookie: c.join('; ') } : {};
    },
  };
}

/** Follows redirects from url until one leaves for a site (not campaignd, not
 * the provider), carrying campaignd's cookies like a browser (jar); returns
 * that Location, or the last non-redirect answer. */
async function follow(url, jar = cookieJar()) {
  for (let i = 0; i < 10; i++) {
    const mine = url.startsWith(server.url);
    const r = await request(url, { headers: mine ? jar.header(url) : {} });
    if (mine) jar.store(r.headers);
    if (r.status < 300 || r.status > 399) return { status: r.status, body: r.json, url, jar };
    const loc = new URL(r.headers.location, url).toString();
    if (!loc.startsWith(server.url) && !loc.startsWith(fake.url)) return { location: loc, status: r.status, jar };
    url = loc;
  }
  throw new Error('too many redirects');
}

const fragment = (loc) => Object.fromEntries(new URLSearchParams(new URL(loc).hash.slice(1)));
const query = (loc) => Object.fromEntries(new URL(loc).searchParams);

/** A supabase-js client in PKCE mode with an in-memory storage. */
function pkceClient() {
  const mem = new Map();
  const storage = {
    getItem: (k) => mem.get(k) ?? null,
    setItem: (k, v) => void mem.set(k, v),
    removeItem: (k) => void mem.delete(k),
  };
  const sb = client(server, server.anonKey, { auth: { flowType: 'pkce', storage, persistSession: true } });
  return { sb, mem };
}

/** The implicit flow end to end: the fragment's parameters. */
async function implicitSignIn(provider, p, redirectTo = `${SITE}/welcome`) {
  fake.login(provider, p);
  const { data, error } = await client(server).auth.signInWithOAuth({ provider, options: { redirectTo, skipBrowserRedirect: true } });
  noError(error, 'signInWithOAuth');
  const end = await follow(data.url);
  assert.ok(end.location, `the flow ends in a redirect to the site (got ${JSON.stringify(end)})`);
  return { location: end.location, params: fragment(end.location) };
}

describe('settings', () => {
  it('lists the enabled providers', async () => {
    const r = await request(`${server.url}/auth/v1/settings`, { headers: { apikey: server.anonKey } });
    assert.equal(r.json.external.github, true);
    assert.equal(r.json.external.google, true);
    assert.equal(r.json.external.oidc, true);
    assert.equal(r.json.external.apple, false);
    assert.equal(r.json.external.email, true);
  });

  it('refuses a provider that is not enabled', async () => {
    const r = await request(`${server.url}/auth/v1/authorize?provider=apple`);
    assert.equal(r.status, 400);
    assert.equal(r.json.code, 'validation_failed');
    const r2 = await request(`${server.url}/auth/v1/authorize`);
    assert.equal(r2.status, 400);
  });
});

describe('implicit flow', () => {
  it('GitHub: a new user, session in the fragment, identity and amr oauth', async () => {
    const p = profile();
    const { location, params } = await implicitSignIn('github', p);
    assert.ok(location.startsWith(`${SITE}/welcome#`), location);
    assert.equal(params.token_type, 'bearer');
    assert.ok(params.refresh_token);
    assert.ok(params.provider_token?.startsWith('github_at_'), 'the provider token is handed on');
    assert.ok(Number(params.expires_in) > 0);
    const claims = decodeJwt(params.access_token).payload;
    assert.equal(claims.email, p.email);
    assert.deepEqual(claims.amr.map((a) => a.method), ['oauth']);
    // the provider saw the callback URL and our client id
    const auth = fake.seen.filter((s) => s.path === '/login/oauth/authorize').at(-1);
    assert.equal(auth.query.redirect_uri, `${server.url}/auth/v1/callback`);
    assert.match(auth.query.scope, /user:email/);
    // GET /user shows the identity and the providers
    const { data, error } = await client(server).auth.getUser(params.access_token);
    noError(error, 'getUser');
    assert.equal(data.user.email, p.email);
    assert.deepEqual(data.user.app_metadata.providers, ['github']);
    assert.equal(data.user.app_metadata.provider, 'github');
    assert.equal(data.user.identities.length, 1);
    assert.equal(data.user.identities[0].provider, 'github');
    assert.equal(data.user.identities[0].id, String(p.id));
    assert.equal(data.user.identities[0].identity_data.user_name, p.login);
    // the refresh token works and keeps the amr
    const { data: ref, error: rerr } = await client(server).auth.refreshSession({ refresh_token: params.refresh_token });
    noError(rerr, 'refreshSession');
    assert.deepEqual(decodeJwt(ref.session.access_token).payload.amr.map((a) => a.method), ['oauth']);
  });

  it('signing in again finds the same user', async () => {
    const p = profile();
    const first = await implicitSignIn('github', p);
    const again = await implicitSignIn('github', { ...p, name: 'Renamed' });
    assert.equal(decodeJwt(again.params.access_token).payload.sub, decodeJwt(first.params.access_token).payload.sub);
    const n = await sql(server, `select count(*) from auth.identities where provider = 'github' and provider_id = ${lit(String(p.id))}`);
    assert.equal(Number(n), 1);
  });

  it('a provider claiming role=admin gets the default role', async () => {
    const p = profile({ role: 'admin' });
    const { params } = await implicitSignIn('google', p);
    const claims = decodeJwt(params.access_token).payload;
    assert.equal(claims.app_metadata.role, 'user');
    assert.equal(claims.user_metadata.role, 'user');
    const row = await sql(server, `select (raw_app_meta_data->>'role') || '|' || (raw_user_meta_data ? 'role')::text from auth.users where email = ${lit(p.email)}`);
    assert.equal(row, 'user|false', 'the default role; the provider role is not even stored');
  });

  it('links a verified address to the existing account; never an unverified one', async () => {
    const email = uniqueEmail('owner');
    const { data: su, error } = await client(server, server.serviceKey).auth.admin.createUser({ email, password: PASSWORD, email_confirm: true });
    noError(error, 'createUser');
    const uid = su.user.id;
    // an attacker's GitHub account claims the address without verifying it
    const attacker = profile({ email, email_verified: false });
    const refused = await implicitSignIn('github', attacker);
    const f = fragment(refused.location);
    assert.equal(f.error_code, 'provider_email_needs_verification');
    assert.equal(f.access_token, undefined);
    const ids = () => sql(server, `select string_agg(provider, ',' order by provider) from auth.identities where user_id = ${lit(uid)}`);
    assert.equal(await ids(), 'email');
    // the owner's Google account, verified: linked to the same user
    const owner = profile({ email });
    const ok = await implicitSignIn('google', owner);
    assert.equal(decodeJwt(ok.params.access_token).payload.sub, uid);
    assert.equal(await ids(), 'email,google');
    const { data } = await client(server).auth.getUser(ok.params.access_token);
    assert.deepEqual([...data.user.app_metadata.providers].sort(), ['email', 'google']);
    // the password still works
    const { error: perr } = await client(server).auth.signInWithPassword({ email, password: PASSWORD });
    noError(perr, 'password sign-in after linking');
  });

  it('a generic OIDC provider with configured endpoints', async () => {
    const p = profile();
    // the fake serves OIDC on its Google endpoints, so the login is queued there
    fake.login('google', p);
    const { data } = await client(server).auth.signInWithOAuth({ provider: 'oidc', options: { redirectTo: `${SITE}/o`, skipBrowserRedirect: true } });
    const end = await follow(data.url);
    const f = fragment(end.location);
    assert.ok(f.access_token, end.location);
    const { data: u } = await client(server).auth.getUser(f.access_token);
    assert.equal(u.user.email, p.email);
    assert.ok(u.user.identities.some((i) => i.provider === 'oidc' && i.id === String(p.id)));
  });

  it('the provider refusing the sign-in comes back as an error', async () => {
    // nothing queued: the fake provider answers access_denied
    const { data } = await client(server).auth.signInWithOAuth({ provider: 'github', options: { redirectTo: `${SITE}/x`, skipBrowserRedirect: true } });
    const end = await follow(data.url);
    const f = fragment(end.location);
    assert.equal(f.error, 'access_denied');
    assert.equal(f.access_token, undefined);
  });
});

describe('attacks', () => {
  /** The callback URL the provider sends the browser to, and the browser's
   * cookie header for it (set by /authorize). */
  async function callbackUrl(provider, p) {
    fake.login(provider, p);
    const { data } = await client(server).auth.signInWithOAuth({ provider, options: { redirectTo: `${SITE}/cb`, skipBrowserRedirect: true } });
    const jar = cookieJar();
    const r = await request(data.url);
    jar.store(r.headers);
    const cb = (await request(r.headers.location)).headers.location;
    return { cb, headers: jar.header(cb) };
  }

  it('a tampered state is refused', async () => {
    const { cb: at, headers } = await callbackUrl('github', profile());
    const cb = new URL(at);
    const state = cb.searchParams.get('state');
    const [payload, mac] = state.split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    claims.redirect_to = 'https://evil.test/steal';
    const forged = `${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${mac}`;
    cb.searchParams.set('state', forged);
    const r = await request(cb.toString(), { headers });
    assert.equal(r.status, 303);
    assert.ok(r.headers.location.startsWith(SITE), r.headers.location);
    const f = fragment(r.headers.location);
    assert.equal(f.error_code, 'bad_oauth_state');
    assert.equal(f.access_token, undefined);
    // no state at all
    cb.searchParams.delete('state');
    const r2 = await request(cb.toString(), { headers });
    assert.equal(fragment(r2.headers.location).error_code, 'bad_oauth_state');
  });

  it('an expired state is refused, even correctly signed', async () => {
    const { cb: at, headers } = await callbackUrl('github', profile());
    const cb = new URL(at);
    const key = crypto.createHmac('sha256', jwtSecret(server)).update('campaignd:oauth-state').digest('base64url');
    const [payload] = cb.searchParams.get('state').split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    claims.exp = Math.floor(Date.now() / 1000) - 1;
    const p2 = Buffer.from(JSON.stringify(claims)).toString('base64url');
    cb.searchParams.set('state', `${p2}.${crypto.createHmac('sha256', key).update(p2).digest('base64url')}`);
    const r = await request(cb.toString(), { headers });
    const f = fragment(r.headers.location);
    assert.equal(f.error_code, 'bad_oauth_state');
    assert.match(f.error_description, /expired/);
    // the same forgery with a fresh exp is accepted: the check above was the expiry
    claims.exp = Math.floor(Date.now() / 1000) + 300;
    const p3 = Buffer.from(JSON.stringify(claims)).toString('base64url');
    cb.searchParams.set('state', `${p3}.${crypto.createHmac('sha256', key).update(p3).digest('base64url')}`);
    const ok = await request(cb.toString(), { headers });
    assert.ok(fragment(ok.headers.location).access_token, ok.headers.location);
  });

  it('an open redirect is refused: redirect_to outside the allow list becomes SITE_URL', async () => {
    const { location, params } = await implicitSignIn('github', profile(), 'https://evil.test/steal');
    assert.ok(location.startsWith(`${SITE}#`) || location.startsWith(`${SITE}/#`), location);
    assert.ok(params.access_token);
    // an allowed one is kept
    const ok = await implicitSignIn('github', profile(), 'http://app.example.test/after/login');
    assert.ok(ok.location.startsWith('http://app.example.test/after/login#'), ok.location);
  });

  it('a replayed provider code is refused by the provider and reported', async () => {
    const { cb, headers } = await callbackUrl('github', profile());
    const first = await request(cb, { headers });
    assert.ok(fragment(first.headers.location).access_token);
    const again = await request(cb, { headers });
    const f = fragment(again.headers.location);
    assert.equal(f.access_token, undefined);
    assert.equal(f.error, 'server_error');
  });
});

describe('PKCE flow', () => {
  async function pkceCode(provider, p) {
    fake.login(provider, p);
    const { sb, mem } = pkceClient();
    const { data, error } = await sb.auth.signInWithOAuth({ provider, options: { redirectTo: `${SITE}/welcome`, skipBrowserRedirect: true } });
    noError(error, 'signInWithOAuth');
    assert.match(data.url, /code_challenge=/);
    const end = await follow(data.url);
    assert.ok(end.location?.startsWith(`${SITE}/welcome?code=`), JSON.stringify(end));
    const verifier = JSON.parse([...mem.entries()].find(([k]) => k.endsWith('-code-verifier'))[1]);
    return { sb, code: query(end.location).code, verifier };
  }

  it('Google: ?code= then exchangeCodeForSession gives the session', async () => {
    const p = profile();
    const { sb, code } = await pkceCode('google', p);
    const { data, error } = await sb.auth.exchangeCodeForSession(code);
    noError(error, 'exchangeCodeForSession');
    assert.equal(data.user.email, p.email);
    assert.equal(data.session.provider_token.startsWith('google_at_'), true);
    assert.ok(data.session.provider_refresh_token.startsWith('google_rt_'));
    assert.deepEqual(decodeJwt(data.session.access_token).payload.amr.map((a) => a.method), ['oauth']);
    assert.equal(data.user.identities[0].provider, 'google');
    const { data: got } = await sb.auth.getUser();
    assert.equal(got.user.id, data.user.id);
  });

  it('a code is used once', async () => {
    const { code, verifier } = await pkceCode('github', profile());
    const body = { auth_code: code, code_verifier: verifier };
    const headers = { apikey: server.anonKey };
    const first = await request(`${server.url}/auth/v1/token?grant_type=pkce`, { method: 'POST', headers, body });
    assert.equal(first.status, 200);
    assert.ok(first.json.access_token);
    const again = await request(`${server.url}/auth/v1/token?grant_type=pkce`, { method: 'POST', headers, body });
    assert.equal(again.status, 404);
    assert.equal(again.json.code, 'flow_state_not_found');
  });

  it('a wrong verifier is refused, and the code dies with it', async () => {
    const { code, verifier } = await pkceCode('github', profile());
    const headers = { apikey: server.anonKey };
    const wrong = `${verifier.slice(0, -1)}${verifier.endsWith('A') ? 'B' : 'A'}`;
    const bad = await request(`${server.url}/auth/v1/token?grant_type=pkce`, { method: 'POST', headers, body: { auth_code: code, code_verifier: wrong } });
    assert.equal(bad.status, 403);
    assert.equal(bad.json.code, 'bad_code_verifier');
    const late = await request(`${server.url}/auth/v1/token?grant_type=pkce`, { method: 'POST', headers, body: { auth_code: code, code_verifier: verifier } });
    assert.equal(late.status, 404);
    const missing = await request(`${server.url}/auth/v1/token?grant_type=pkce`, { method: 'POST', headers, body: { auth_code: code } });
    assert.equal(missing.status, 400);
  });

  it('an expired auth code is refused', async () => {
    const { code, verifier } = await pkceCode('github', profile());
    const hash = crypto.createHash('sha256').update(code).digest('hex');
    await sql(server, `update auth.flow_state set auth_code_issued_at = now() - interval '10 minutes' where auth_code = ${lit(hash)}`);
    const r = await request(`${server.url}/auth/v1/token?grant_type=pkce`, { method: 'POST', headers: { apikey: server.anonKey }, body: { auth_code: code, code_verifier: verifier } });
    assert.equal(r.status, 404);
  });

  it('a bad code_challenge is refused at /authorize', async () => {
    const r = await request(`${server.url}/auth/v1/authorize?provider=github&code_challenge=short&code_challenge_method=s256`);
    assert.equal(r.status, 400);
    const r2 = await request(`${server.url}/auth/v1/authorize?provider=github&code_challenge=${'a'.repeat(43)}&code_challenge_method=md5`);
    assert.equal(r2.status, 400);
  });
});

describe('PKCE for mailed links', () => {
  it('sign-up confirmation: the link redirects with ?code=, exchanged for the session', async () => {
    const { sb } = pkceClient();
    const email = uniqueEmail('pkce-signup');
    // MAILER_AUTOCONFIRM is off with SMTP set: the sign-up waits for the link
    const { data, error } = await sb.auth.signUp({ email, password: PASSWORD, options: { emailRedirectTo: 'http://app.example.test/confirmed' } });
    noError(error, 'signUp');
    assert.equal(data.session, null);
    const { link } = linkAndCode(await sink.waitFor(email));
    const r = await request(link);
    assert.equal(r.status, 303);
    const loc = r.headers.location;
    assert.ok(loc.startsWith('http://app.example.test/confirmed?code='), loc);
    assert.equal(new URL(loc).hash, '', 'no tokens in the fragment');
    const { data: ex, error: exErr } = await sb.auth.exchangeCodeForSession(query(loc).code);
    noError(exErr, 'exchangeCodeForSession');
    assert.equal(ex.user.email, email);
    assert.ok(ex.user.email_confirmed_at);
  });

  it('recovery: the link gives a code, the exchange says recovery', async () => {
    const email = uniqueEmail('pkce-recover');
    await client(server, server.serviceKey).auth.admin.createUser({ email, password: PASSWORD, email_confirm: true });
    const { sb } = pkceClient();
    const { error } = await sb.auth.resetPasswordForEmail(email, { redirectTo: `${SITE}/reset` });
    noError(error, 'resetPasswordForEmail');
    const { link } = linkAndCode(await sink.waitFor(email));
    const loc = (await request(link)).headers.location;
    assert.ok(loc.startsWith(`${SITE}/reset?code=`), loc);
    const { data, error: exErr } = await sb.auth.exchangeCodeForSession(query(loc).code);
    noError(exErr, 'exchangeCodeForSession');
    assert.equal(data.redirectType, 'recovery');
    assert.equal(data.user.email, email);
    // another client (without the verifier) cannot use a code
    const { sb: other } = pkceClient();
    const { error: e2 } = await other.auth.exchangeCodeForSession(query(loc).code);
    assert.ok(e2, 'no verifier, no session');
  });

  it('resend({type: email_change}) mails both halves again and voids the old links', async () => {
    const email = uniqueEmail('mover');
    await client(server, server.serviceKey).auth.admin.createUser({ email, password: PASSWORD, email_confirm: true });
    const c = client(server);
    noError((await c.auth.signInWithPassword({ email, password: PASSWORD })).error, 'signIn');
    const next = uniqueEmail('moved');
    noError((await c.auth.updateUser({ email: next })).error, 'updateUser');
    const oldNew = linkAndCode(await sink.waitFor(next));
    await sink.waitFor(email);
    const { error } = await client(server).auth.resend({ type: 'email_change', email: next });
    noError(error, 'resend email_change');
    const toNew = linkAndCode(await sink.waitFor(next, { after: 1 }));
    const toOld = linkAndCode(await sink.waitFor(email, { after: 1 }));
    assert.notEqual(toNew.token, oldNew.token);
    const stale = await client(server).auth.verifyOtp({ token_hash: oldNew.token, type: 'email_change' });
    assert.ok(stale.error, 'the first mail\'s link is void');
    noError((await client(server).auth.verifyOtp({ token_hash: toNew.token, type: 'email_change' })).error, 'new half');
    noError((await client(server).auth.verifyOtp({ token_hash: toOld.token, type: 'email_change' })).error, 'old half');
    assert.equal(await sql(server, `select email from auth.users where email = ${lit(next)}`), next);
    // nobody with a pending change: the same answer, no mail
    const ghost = uniqueEmail('ghost');
    noError((await client(server).auth.resend({ type: 'email_change', email: ghost })).error, 'resend for nobody');
    assert.equal(sink.count(ghost), 0);
  });
});

describe('login CSRF: the implicit flow is bound to the browser that started it', () => {
  it('/authorize sets a short-lived HttpOnly SameSite=Lax cookie for the callback only; PKCE needs none', async () => {
    const r = await request(`${server.url}/auth/v1/authorize?provider=github&redirect_to=${encodeURIComponent(`${SITE}/x`)}`);
    assert.equal(r.status, 302);
    const [line] = r.headers['set-cookie'];
    assert.match(line, /^cd-oauth-nonce=[A-Za-z0-9_-]{43};/);
    assert.match(line, /; Path=\/auth\/v1\/callback;/);
    assert.match(line, /; Max-Age=600;/);
    assert.match(line, /; HttpOnly/);
    assert.match(line, /; SameSite=Lax/);
    assert.doesNotMatch(line, /Secure/, 'plain http here: Secure only when served over https');
    // the state carries the cookie's hash, never the cookie
    const state = new URL(r.headers.location).searchParams.get('state');
    const claims = JSON.parse(Buffer.from(state.split('.')[0], 'base64url').toString());
    const nonce = line.split(';')[0].split('=')[1];
    assert.equal(claims.browser, crypto.createHash('sha256').update(nonce).digest('hex'));
    assert.ok(!state.includes(nonce));
    const pkce = await request(`${server.url}/auth/v1/authorize?provider=github&code_challenge=${'a'.repeat(43)}&code_challenge_method=s256`);
    assert.equal(pkce.status, 302);
    assert.equal(pkce.headers['set-cookie'], undefined);
  });

  it("an attacker's completed callback URL opened in the victim's browser does not sign the victim in", async () => {
    // the attacker signs in at the provider with their own account and stops
    // before campaignd's callback: they hold a valid code and state
    const attacker = profile();
    fake.login('github', attacker);
    const { data } = await client(server).auth.signInWithOAuth({ provider: 'github', options: { redirectTo: `${SITE}/cb`, skipBrowserRedirect: true } });
    const toProvider = (await request(data.url)).headers.location;
    const planted = (await request(toProvider)).headers.location;
    const exchanges = fake.seen.filter((x) => x.path === '/login/oauth/access_token').length;
    // the victim's browser: no cookie at all, or the cookie of its own sign-in
    const victim = cookieJar();
    const own = await request(`${server.url}/auth/v1/authorize?provider=github&redirect_to=${encodeURIComponent(`${SITE}/cb`)}`);
    victim.store(own.headers);
    for (const headers of [{}, victim.header(planted)]) {
      const r = await request(planted, { headers });
      assert.equal(r.status, 303);
      const f = fragment(r.headers.location);
      assert.equal(f.access_token, undefined, 'no session for the victim');
      assert.equal(f.error_code, 'bad_oauth_state');
      assert.match(f.error_description, /browser/);
      assert.match(r.headers['set-cookie'][0], /^cd-oauth-nonce=; .*Max-Age=0/, 'the cookie is cleared');
    }
    assert.equal(fake.seen.filter((x) => x.path === '/login/oauth/access_token').length, exchanges,
      'the code is not even exchanged');
    assert.equal(await sql(server, `select count(*) from auth.users where email = ${lit(attacker.email)}`), '0');
    const audit = JSON.parse(await sql(server, `select payload::text from auth.audit_log_entries
      where payload->>'action' = 'login_failed' and payload->'traits'->>'reason' = 'state_not_bound_to_browser'
      order by created_at desc limit 1`));
    assert.equal(audit.traits.provider, 'github');
  });

  it('the cookie works once: the same browser replaying its callback is refused', async () => {
    fake.login('github', profile());
    const { data } = await client(server).auth.signInWithOAuth({ provider: 'github', options: { redirectTo: `${SITE}/cb`, skipBrowserRedirect: true } });
    const end = await follow(data.url);
    assert.ok(fragment(end.location).access_token, end.location);
    assert.equal(end.jar.jar.size, 0, 'the callback cleared the cookie');
  });
});

describe('failed sign-ins are audited', () => {
  /** The newest login_failed row: {payload, ip}. */
  async function lastFailure() {
    return JSON.parse(await sql(server, `select json_build_object('payload', payload, 'ip', ip_address)::text
      from auth.audit_log_entries where payload->>'action' = 'login_failed' order by created_at desc limit 1`));
  }
  function assertAudit(row, provider, reason, flow = 'implicit') {
    assert.equal(row.payload.traits.reason, reason, JSON.stringify(row));
    assert.equal(row.payload.traits.provider, provider);
    assert.equal(row.payload.traits.flow, flow);
    assert.ok(row.ip, 'with the client address');
  }

  it('the provider refusing, a bad or expired state, a replayed code', async () => {
    const { data } = await client(server).auth.signInWithOAuth({ provider: 'github', options: { redirectTo: `${SITE}/x`, skipBrowserRedirect: true } });
    await follow(data.url); // nothing queued: the provider answers access_denied
    assertAudit(await lastFailure(), 'github', 'provider_error');

    const r = await request(`${server.url}/auth/v1/callback?code=abc&state=not.valid`);
    assert.equal(fragment(r.headers.location).error_code, 'bad_oauth_state');
    assertAudit(await lastFailure(), '', 'bad_state');

    fake.login('google', profile());
    const { data: d2 } = await client(server).auth.signInWithOAuth({ provider: 'google', options: { redirectTo: `${SITE}/x`, skipBrowserRedirect: true } });
    const jar = cookieJar();
    const a = await request(d2.url);
    jar.store(a.headers);
    const cb = new URL((await request(a.headers.location)).headers.location);
    const key = crypto.createHmac('sha256', jwtSecret(server)).update('campaignd:oauth-state').digest('base64url');
    const claims = JSON.parse(Buffer.from(cb.searchParams.get('state').split('.')[0], 'base64url').toString());
    claims.exp = Math.floor(Date.now() / 1000) - 5;
    const p = Buffer.from(JSON.stringify(claims)).toString('base64url');
    const expired = new URL(cb);
    expired.searchParams.set('state', `${p}.${crypto.createHmac('sha256', key).update(p).digest('base64url')}`);
    await request(expired.toString(), { headers: jar.header(cb.toString()) });
    assertAudit(await lastFailure(), '', 'state_expired');

    const code = cb.searchParams.get('code');
    const first = await request(cb.toString(), { headers: jar.header(cb.toString()) });
    assert.ok(fragment(first.headers.location).access_token);
    await request(cb.toString(), { headers: jar.header(cb.toString()) });
    const row = await lastFailure();
    assertAudit(row, 'google', 'code_exchange_failed');
    assert.ok(!JSON.stringify(row).includes(code), 'never the code');
  });

  it('an e-mail the provider did not verify, a banned user', async () => {
    const p = profile({ email_verified: false });
    await implicitSignIn('github', p);
    assertAudit(await lastFailure(), 'github', 'email_not_verified');

    const owner = profile();
    const ok = await implicitSignIn('github', owner);
    const uid = decodeJwt(ok.params.access_token).payload.sub;
    noError((await client(server, server.serviceKey).auth.admin.updateUserById(uid, { ban_duration: '24h' })).error, 'ban');
    const refused = await implicitSignIn('github', owner);
    assert.equal(fragment(refused.location).error_code, 'user_banned');
    const row = await lastFailure();
    assertAudit(row, 'github', 'user_banned');
    assert.equal(row.payload.actor_id, uid);
    assert.equal(row.payload.actor_username, owner.email);
  });

  it('PKCE: an unknown code and a wrong verifier at /token', async () => {
    const headers = { apikey: server.anonKey };
    const none = await request(`${server.url}/auth/v1/token?grant_type=pkce`, { method: 'POST', headers, body: { auth_code: 'nope', code_verifier: 'v'.repeat(43) } });
    assert.equal(none.status, 404);
    assertAudit(await lastFailure(), '', 'flow_state_not_found', 'pkce');

    const p = profile();
    fake.login('github', p);
    const { sb, mem } = pkceClient();
    const { data } = await sb.auth.signInWithOAuth({ provider: 'github', options: { redirectTo: `${SITE}/welcome`, skipBrowserRedirect: true } });
    const end = await follow(data.url);
    const code = query(end.location).code;
    const verifier = JSON.parse([...mem.entries()].find(([k]) => k.endsWith('-code-verifier'))[1]);
    const wrong = `${verifier.slice(0, -1)}${verifier.endsWith('A') ? 'B' : 'A'}`;
    const bad = await request(`${server.url}/auth/v1/token?grant_type=pkce`, { method: 'POST', headers, body: { auth_code: code, code_verifier: wrong } });
    assert.equal(bad.status, 403);
    const row = await lastFailure();
    assertAudit(row, 'github', 'bad_code_verifier', 'pkce');
    assert.equal(row.payload.actor_username, p.email);
    assert.ok(!JSON.stringify(row).includes(code) && !JSON.stringify(row).includes(wrong), 'never the code or verifier');
  });
});

describe('OIDC id_token verification (Google, generic OIDC)', () => {
  /** The implicit flow with the next id_token bent by o; the fragment. */
  async function withIdToken(provider, o, p = profile()) {
    if (o) fake.nextIdToken(o);
    fake.login('google', p); // the fake serves OIDC on its Google endpoints
    const { data } = await client(server).auth.signInWithOAuth({ provider, options: { redirectTo: `${SITE}/o`, skipBrowserRedirect: true } });
    const end = await follow(data.url);
    return { f: fragment(end.location), p };
  }
  const userinfoCalls = () => fake.seen.filter((x) => x.path === '/v1/userinfo').length;
  const jwksCalls = () => fake.seen.filter((x) => x.path === '/jwks').length;
  async function lastReason() {
    return JSON.parse(await sql(server, `select payload::text from auth.audit_log_entries
      where payload->>'action' = 'login_failed' order by created_at desc limit 1`)).traits.reason;
  }

  it('a valid RS256 or ES256 id_token signs in without userinfo, and carries our nonce', async () => {
    for (const provider of ['google', 'oidc']) {
      for (const alg of ['RS256', 'ES256']) {
        const before = userinfoCalls();
        const { f, p } = await withIdToken(provider, { alg });
        assert.ok(f.access_token, `${provider} ${alg}: ${JSON.stringify(f)}`);
        assert.equal(decodeJwt(f.access_token).payload.email, p.email);
        assert.equal(userinfoCalls(), before, 'the id_token decided; userinfo was not asked');
      }
    }
    const auth = fake.seen.filter((x) => x.path === '/o/oauth2/v2/auth').at(-1);
    assert.match(auth.query.nonce, /^[A-Za-z0-9_-]{43}$/, 'a nonce is sent to OIDC providers');
    const gh = fake.seen.filter((x) => x.path === '/login/oauth/authorize').at(-1);
    assert.equal(gh.query.nonce, undefined, 'but not to GitHub');
  });

  for (const [name, o] of [
    ['a wrong signature', { wrongKey: true }],
    ['a wrong audience', { aud: 'someone-else' }],
    ['another issuer', { iss: 'https://evil.test' }],
    ['an expired token', { exp: Math.floor(Date.now() / 1000) - 60 }],
    ['an unknown kid', { kid: 'no-such-key' }],
    ['another nonce', { nonce: 'replayed-from-elsewhere' }],
  ]) {
    it(`refuses ${name}`, async () => {
      const { f, p } = await withIdToken('google', o);
      assert.equal(f.access_token, undefined, JSON.stringify(f));
      assert.equal(f.error_code, 'bad_id_token');
      assert.equal(await lastReason(), 'id_token_invalid');
      assert.equal(await sql(server, `select count(*) from auth.users where email = ${lit(p.email)}`), '0');
    });
  }

  it('an unknown kid refetches the JWKS once: a rotated key works, a stranger key does not', async () => {
    await withIdToken('google', null); // the set is cached
    const before = jwksCalls();
    await withIdToken('google', { kid: 'no-such-key' });
    assert.equal(jwksCalls(), before + 1, 'one refetch for the unknown kid');
    const again = jwksCalls();
    await withIdToken('google', null);
    assert.equal(jwksCalls(), again, 'a known kid uses the cache');
    fake.rotateKey();
    const { f } = await withIdToken('google', null);
    assert.ok(f.access_token, 'the rotated key is fetched and accepted');
    assert.equal(jwksCalls(), again + 1);
  });

  it('without an id_token the user comes from userinfo', async () => {
    const before = userinfoCalls();
    const { f, p } = await withIdToken('google', { omit: true });
    assert.ok(f.access_token);
    assert.equal(decodeJwt(f.access_token).payload.email, p.email);
    assert.equal(userinfoCalls(), before + 1);
  });
});

describe('abandoned PKCE flows', () => {
  it('are purged by the retention job', async () => {
    await sql(server, `insert into auth.flow_state (code_challenge_method, code_challenge, provider_type, authentication_method, created_at)
      values ('s256', ${lit('z'.repeat(43))}, 'github', 'oauth', now() - interval '3 hours'),
             ('s256', ${lit('y'.repeat(43))}, 'github', 'oauth', now())`);
    const id = await sql(server, `select jobs.enqueue('retention', '{}')`);
    for (let i = 0; i < 300; i++) {
      if ((await sql(server, `select status from jobs.jobs where id = ${id}`)) === 'done') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(await sql(server, `select status from jobs.jobs where id = ${id}`), 'done');
    assert.equal(await sql(server, `select string_agg(left(code_challenge, 1), ',') from auth.flow_state
      where code_challenge in (${lit('z'.repeat(43))}, ${lit('y'.repeat(43))})`), 'y', 'the old flow went, the fresh one stays');
  });
});
