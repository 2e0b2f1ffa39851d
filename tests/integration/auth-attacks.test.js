// Attacks on Auth: forged and altered JWTs (tampered payload, wrong secret,
// alg none, HS384/HS512, expired, privileged role claims, duplicate claims),
// keys in the wrong place, sign-in throttling per (e-mail, client address) with a
// growing delay, a high cap per e-mail that one stranger cannot reach, per client
// address (SEED-NOTES 12, issue 9 §3.4), and the per-address request budget
// (AUTH_RATE_LIMIT).
// Different client addresses come from binding the client socket to
// 127.0.0.x (Linux routes all of 127/8 to the loopback interface).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  startServer, client, signUpUser, request, decodeJwt, signJwt, jwtSecret, uniqueEmail, sql, lit, PASSWORD,
} from './helpers.js';

let server; // defaults
let throttled; // LOGIN_MAX_FAILURES_PER_EMAIL=3, _GLOBAL=6, LOGIN_MAX_FAILURES_PER_IP=5, TRUSTED_PROXIES=127.0.0.30
let limited; // AUTH_RATE_LIMIT=5
before(async () => {
  [server, throttled, limited] = await Promise.all([
    startServer(),
    startServer({
      LOGIN_MAX_FAILURES_PER_EMAIL: '3', LOGIN_MAX_FAILURES_PER_EMAIL_GLOBAL: '6', LOGIN_MAX_FAILURES_PER_IP: '5',
      TRUSTED_PROXIES: '127.0.0.30',
    }),
    startServer({ AUTH_RATE_LIMIT: '5' }),
  ]);
});
after(async () => {
  await Promise.all([server?.stop(), throttled?.stop(), limited?.stop()]);
});

const now = () => Math.floor(Date.now() / 1000);

/** GET /auth/v1/user with the anon apikey and the given Bearer token. */
const getUserRaw = (token, srv = server) =>
  request(`${srv.url}/auth/v1/user`, { headers: { apikey: srv.anonKey, Authorization: `Bearer ${token}` } });

/** Claims like the server's, for a real user's session, to forge variants of. */
function claimsOf(session) {
  return decodeJwt(session.access_token).payload;
}

async function assertRejected(token, what) {
  const raw = await getUserRaw(token);
  assert.equal(raw.status, 403, `${what}: GET /user status (${raw.text})`);
  assert.equal(raw.json.code, 'bad_jwt', what);
  const { data, error } = await client(server).auth.getUser(token);
  assert.equal(data.user, null, what);
  assert.equal(error?.status, 403, `${what}: supabase-js getUser error status`);
}

describe('access token verification', () => {
  let u;
  before(async () => {
    u = await signUpUser(server);
  });

  it('control: a token signed HS256 with the server secret and real claims is accepted', async () => {
    const forged = signJwt({ ...claimsOf(u.session), iat: now(), exp: now() + 600 }, jwtSecret(server));
    const r = await getUserRaw(forged);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.id, u.user.id);
  });

  it('a tampered payload (signature kept) is rejected', async () => {
    const [h, , s] = u.session.access_token.split('.');
    const other = await signUpUser(server);
    const p = Buffer.from(JSON.stringify({ ...claimsOf(u.session), sub: other.user.id })).toString('base64url');
    await assertRejected(`${h}.${p}.${s}`, 'sub swapped');
    const p2 = Buffer.from(JSON.stringify({ ...claimsOf(u.session), exp: now() + 86400 * 365 })).toString('base64url');
    await assertRejected(`${h}.${p2}.${s}`, 'exp extended');
    const flipped = s.slice(0, -2) + (s.at(-2) === 'A' ? 'B' : 'A') + s.at(-1);
    await assertRejected(`${h}.${u.session.access_token.split('.')[1]}.${flipped}`, 'signature altered');
  });

  it('a token verified before (each HTTP thread keeps the last one) does not let a look-alike through', async () => {
    // Many requests with the good token, so every worker thread has it cached,
    // then variants that share all but a few bytes with it, then the good one again.
    const good = signJwt({ ...claimsOf(u.session), iat: now(), exp: now() + 600 }, jwtSecret(server));
    for (let i = 0; i < 24; i++) {
      const r = await getUserRaw(good);
      assert.equal(r.status, 200, r.text);
    }
    const [h, p, s] = good.split('.');
    const flipped = s.slice(0, -2) + (s.at(-2) === 'A' ? 'B' : 'A') + s.at(-1);
    await assertRejected(`${h}.${p}.${flipped}`, 'the cached token with its signature altered');
    await assertRejected(`${good}x`, 'the cached token with a byte appended');
    await assertRejected(good.slice(0, -1), 'the cached token cut short');
    const other = await signUpUser(server);
    const swapped = Buffer.from(JSON.stringify({ ...decodeJwt(good).payload, sub: other.user.id })).toString('base64url');
    await assertRejected(`${h}.${swapped}.${s}`, 'the cached token with another sub');
    const again = await getUserRaw(good);
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.id, u.user.id, 'the cached token still names its own user');
  });

  it('a token signed with another secret is rejected', async () => {
    await assertRejected(signJwt(claimsOf(u.session), crypto.randomBytes(48).toString('base64url')), 'wrong secret');
  });

  it('alg none (any spelling, with or without a signature) is rejected', async () => {
    const claims = claimsOf(u.session);
    for (const alg of ['none', 'None', 'NONE', '']) {
      await assertRejected(signJwt(claims, '', { alg }), `alg ${JSON.stringify(alg)} without signature`);
      const [, , realSig] = u.session.access_token.split('.');
      const t = signJwt(claims, '', { alg }).split('.').slice(0, 2).join('.') + '.' + realSig;
      await assertRejected(t, `alg ${JSON.stringify(alg)} with a signature`);
    }
  });

  it('HS384 and HS512 tokens signed with the right secret are rejected (algorithm pinned)', async () => {
    await assertRejected(signJwt(claimsOf(u.session), jwtSecret(server), { alg: 'HS512' }), 'HS512');
    await assertRejected(signJwt(claimsOf(u.session), jwtSecret(server), { alg: 'HS384' }), 'HS384');
  });

  it('expired, not-yet-valid and exp-less tokens are rejected', async () => {
    const secret = jwtSecret(server);
    const c = claimsOf(u.session);
    await assertRejected(signJwt({ ...c, iat: now() - 7200, exp: now() - 3600 }, secret), 'expired an hour ago');
    await assertRejected(signJwt({ ...c, iat: now() - 600, exp: now() - 120 }, secret), 'expired two minutes ago');
    const { exp, ...noExp } = c;
    assert.ok(exp);
    await assertRejected(signJwt(noExp, secret), 'no exp');
    await assertRejected(signJwt({ ...c, nbf: now() + 3600 }, secret), 'nbf in the future');
    await assertRejected(signJwt({ ...c, exp: String(now() + 600) }, secret), 'exp as a string');
  });

  it('role claims other than anon/authenticated/service_role are rejected as Bearer and as apikey', async () => {
    const secret = jwtSecret(server);
    for (const role of ['postgres', 'supabase_admin', 'authenticator', 'campaignd', 'pg_read_server_files']) {
      await assertRejected(signJwt({ ...claimsOf(u.session), role }, secret), `role ${role}`);
      const key = signJwt({ role, iss: 'campaignd', iat: now(), exp: now() + 3600 }, secret);
      const r = await request(`${server.url}/auth/v1/admin/users`, { headers: { apikey: key, Authorization: `Bearer ${key}` } });
      assert.equal(r.status, 401, `apikey with role ${role} on /admin/users: ${r.text}`);
      const { error } = await client(server, key).auth.admin.listUsers();
      assert.equal(error?.status, 401, `supabase-js admin.listUsers with role ${role}`);
    }
  });

  it('duplicate claims in the payload are rejected (no parser confusion)', async () => {
    const secret = jwtSecret(server);
    const base = JSON.stringify({ ...claimsOf(u.session), role: 'authenticated' });
    const dup = `${base.slice(0, -1)},"role":"service_role"}`;
    const h = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
    const p = Buffer.from(dup).toString('base64url');
    const s = crypto.createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url');
    await assertRejected(`${h}.${p}.${s}`, 'duplicate role claim');
  });

  it('non-canonical encodings (padding, standard alphabet, extra parts) are rejected', async () => {
    const [h, p, s] = u.session.access_token.split('.');
    await assertRejected(`${h}.${p}.${s}=`, 'padded signature');
    await assertRejected(`${h}.${p}.${Buffer.from(s, 'base64url').toString('base64')}x`, 'standard alphabet');
    await assertRejected(`${h}.${p}.${s}.${s}`, 'four parts');
    await assertRejected(`${h}.${p}`, 'two parts');
  });

  it('a valid token for a user or session that does not exist is 403 user_not_found / session_not_found', async () => {
    const secret = jwtSecret(server);
    const c = claimsOf(u.session);
    let r = await getUserRaw(signJwt({ ...c, sub: crypto.randomUUID() }, secret));
    assert.equal(r.status, 403);
    assert.equal(r.json.code, 'user_not_found');
    r = await getUserRaw(signJwt({ ...c, session_id: crypto.randomUUID() }, secret));
    assert.equal(r.status, 403);
    assert.equal(r.json.code, 'session_not_found');
  });

  it('a user access token is not an API key; a garbage apikey is 401', async () => {
    const t = u.session.access_token;
    let r = await request(`${server.url}/auth/v1/user`, { headers: { apikey: t, Authorization: `Bearer ${t}` } });
    assert.equal(r.status, 401);
    r = await request(`${server.url}/auth/v1/user`, { headers: { apikey: 'garbage', Authorization: `Bearer ${t}` } });
    assert.equal(r.status, 401);
    assert.equal(r.json.message, 'Invalid authentication credentials');
    const { error } = await client(server, 'garbage').auth.signInWithPassword({ email: u.email, password: PASSWORD });
    assert.equal(error?.status, 401);
    r = await request(`${server.url}/auth/v1/user?apikey=${server.anonKey}`, { headers: { Authorization: `Bearer ${t}` } });
    assert.equal(r.status, 200, 'the apikey may come as a query parameter');
  });

  it('the service key as Bearer on a user endpoint is refused (no sub)', async () => {
    const r = await request(`${server.url}/auth/v1/user`, {
      method: 'PUT', headers: { apikey: server.anonKey, Authorization: `Bearer ${server.serviceKey}` }, body: { data: { x: 1 } },
    });
    assert.equal(r.status, 403, r.text);
    assert.equal(r.json.code, 'bad_jwt');
  });
});

/** POST /auth/v1/token?grant_type=password from a given client address. */
function signInFrom(srv, ip, email, password) {
  return request(`${srv.url}/auth/v1/token?grant_type=password`, {
    method: 'POST', localAddress: ip, headers: { apikey: srv.anonKey, 'X-Supabase-Api-Version': '2024-01-01' }, body: { email, password },
  });
}

function assert429(r, what) {
  assert.equal(r.status, 429, `${what}: ${r.status} ${r.text}`);
  assert.equal(r.json.code, 'over_request_rate_limit');
  const wait = Number(r.headers['retry-after']);
  assert.ok(Number.isInteger(wait) && wait >= 1, `${what}: Retry-After ${r.headers['retry-after']}`);
  return wait;
}

describe('sign-in throttling (LOGIN_MAX_FAILURES_PER_EMAIL=3, _GLOBAL=6, LOGIN_MAX_FAILURES_PER_IP=5)', () => {
  it('the 4th failure for one e-mail from one address is 429 with Retry-After there; the owner signs in from elsewhere', async () => {
    const u = await signUpUser(throttled);
    const ip = '127.0.0.11';
    const variants = [u.email, u.email.toUpperCase(), ` ${u.email}`];
    for (const e of variants) {
      const r = await signInFrom(throttled, ip, e, 'wrong password');
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.code, 'invalid_credentials');
    }
    const wait = assert429(await signInFrom(throttled, ip, u.email, 'wrong password'), '4th failure');
    assert.ok(wait <= 60, `the first delay is 60 s (Retry-After ${wait})`);
    assert429(await signInFrom(throttled, ip, u.email, PASSWORD), 'right password from the locked address');
    // five wrong passwords from anywhere no longer lock the real owner out
    const owner = await signInFrom(throttled, '127.0.0.12', u.email, PASSWORD);
    assert.equal(owner.status, 200, `the owner from another address: ${owner.text}`);
    const { error } = await client(throttled).auth.signInWithPassword({ email: u.email, password: PASSWORD });
    assert.equal(error, null, 'supabase-js from another address signs in');
    assert429(await signInFrom(throttled, ip, u.email, PASSWORD), 'the stranger\'s address still waits');
  });

  it('many addresses together reach the cap per e-mail (LOGIN_MAX_FAILURES_PER_EMAIL_GLOBAL): then every address waits', async () => {
    const u = await signUpUser(throttled);
    for (const ip of ['127.0.0.19', '127.0.0.20']) {
      for (let i = 0; i < 3; i++) assert.equal((await signInFrom(throttled, ip, u.email, 'wrong password')).status, 400);
      assert429(await signInFrom(throttled, ip, u.email, 'wrong password'), `${ip} after 3 failures`);
    }
    const wait = assert429(await signInFrom(throttled, '127.0.0.21', u.email, PASSWORD), 'a third address at the cap');
    assert.ok(wait <= 900, 'at most LOGIN_WINDOW_SECONDS');
  });

  it('parallel guesses cannot all pass one count: at most 3 failures are answered, the rest 429', async () => {
    const u = await signUpUser(throttled);
    const ip = '127.0.0.18';
    const answers = await Promise.all(
      Array.from({ length: 24 }, () => signInFrom(throttled, ip, u.email, 'wrong password')));
    const tried = answers.filter((r) => r.status === 400).length;
    const locked = answers.filter((r) => r.status === 429).length;
    assert.equal(tried + locked, answers.length, answers.map((r) => r.status).join(','));
    assert.ok(tried <= 3, `${tried} guesses were checked against the password; the limit is 3`);
    assert.ok(locked >= 21);
  });

  it('a successful sign-in ends the e-mail failure streak', async () => {
    const u = await signUpUser(throttled);
    const ip = '127.0.0.13';
    for (let i = 0; i < 2; i++) assert.equal((await signInFrom(throttled, ip, u.email, 'nope nope')).status, 400);
    assert.equal((await signInFrom(throttled, ip, u.email, PASSWORD)).status, 200);
    const ip2 = '127.0.0.14';
    for (let i = 0; i < 2; i++) assert.equal((await signInFrom(throttled, ip2, u.email, 'nope nope')).status, 400);
    assert.equal((await signInFrom(throttled, ip2, u.email, PASSWORD)).status, 200, 'only failures since the last success count');
  });

  it('per address: failures across different e-mails lock the address, not other addresses', async () => {
    const u = await signUpUser(throttled);
    const ip = '127.0.0.15';
    for (let i = 0; i < 5; i++) {
      const r = await signInFrom(throttled, ip, uniqueEmail('spray'), 'password123');
      assert.equal(r.status, 400, `failure ${i + 1}: ${r.text}`);
    }
    assert429(await signInFrom(throttled, ip, u.email, PASSWORD), 'a valid sign-in from the sprayed address');
    const other = await signInFrom(throttled, '127.0.0.16', u.email, PASSWORD);
    assert.equal(other.status, 200, 'another address is not affected');
  });

  it('X-Forwarded-For from an untrusted client does not change the counted address', async () => {
    const u = await signUpUser(throttled);
    const ip = '127.0.0.17';
    for (let i = 0; i < 5; i++) {
      const r = await request(`${throttled.url}/auth/v1/token?grant_type=password`, {
        method: 'POST', localAddress: ip,
        headers: { apikey: throttled.anonKey, 'X-Forwarded-For': `10.9.8.${i}`, 'X-Real-IP': `10.9.9.${i}` },
        body: { email: uniqueEmail('xff'), password: 'password123' },
      });
      assert.equal(r.status, 400);
    }
    assert429(await signInFrom(throttled, ip, u.email, PASSWORD), 'spoofed headers did not spread the failures');
  });
});

describe('behind a trusted proxy (TRUSTED_PROXIES=127.0.0.30)', () => {
  const viaProxy = (xff, email, password) =>
    request(`${throttled.url}/auth/v1/token?grant_type=password`, {
      method: 'POST', localAddress: '127.0.0.30', headers: { apikey: throttled.anonKey, 'X-Forwarded-For': xff }, body: { email, password },
    });

  it('the right-most X-Forwarded-For address is the client: counted and audited per client', async () => {
    const u = await signUpUser(throttled);
    for (let i = 0; i < 5; i++) assert.equal((await viaProxy('10.1.1.1', uniqueEmail('p'), 'password123')).status, 400);
    assert429(await viaProxy('10.1.1.1', u.email, PASSWORD), 'the client behind the proxy is locked');
    assert429(await viaProxy('6.6.6.6, 10.1.1.1', u.email, PASSWORD), 'a spoofed left-most entry changes nothing');
    const other = await viaProxy('10.1.1.2', u.email, PASSWORD);
    assert.equal(other.status, 200, 'another client of the same proxy is not locked');
    const ip = await sql(throttled, `select ip_address from auth.audit_log_entries where payload->>'action' = 'login' and payload->>'actor_id' = ${lit(u.user.id)} order by created_at desc limit 1`);
    assert.equal(ip, '10.1.1.2');
  });
});

describe('request budget per address (AUTH_RATE_LIMIT=5)', () => {
  const signUpFrom = (ip, email) =>
    request(`${limited.url}/auth/v1/signup`, {
      method: 'POST', localAddress: ip, headers: { apikey: limited.anonKey }, body: { email, password: PASSWORD },
    });

  it('the 6th sign-up/sign-in from one address is 429 with Retry-After; other addresses and other endpoints go on', async () => {
    const ip = '127.0.0.21';
    const email = uniqueEmail('budget');
    assert.equal((await signUpFrom(ip, email)).status, 200);
    for (let i = 0; i < 4; i++) assert.equal((await signInFrom(limited, ip, email, PASSWORD)).status, 200, `request ${i + 2}`);
    const wait = assert429(await signInFrom(limited, ip, email, PASSWORD), '6th request');
    assert.ok(wait <= 300, 'a 5-minute window');
    assert429(await signUpFrom(ip, uniqueEmail()), 'sign-up from the same address');
    assert.equal((await signInFrom(limited, '127.0.0.22', email, PASSWORD)).status, 200, 'another address');
    const settings = await request(`${limited.url}/auth/v1/settings`, { localAddress: ip, headers: { apikey: limited.anonKey } });
    assert.equal(settings.status, 200, 'endpoints outside the budget still answer');
  });

  it('refreshes count against the budget', async () => {
    const email = uniqueEmail('refresher');
    const s = await signUpFrom('127.0.0.23', email);
    assert.equal(s.status, 200);
    let token = s.json.refresh_token;
    const ip = '127.0.0.24';
    for (let i = 0; i < 5; i++) {
      const r = await request(`${limited.url}/auth/v1/token?grant_type=refresh_token`, {
        method: 'POST', localAddress: ip, headers: { apikey: limited.anonKey }, body: { refresh_token: token },
      });
      assert.equal(r.status, 200, `refresh ${i + 1}: ${r.text}`);
      token = r.json.refresh_token;
    }
    const r = await request(`${limited.url}/auth/v1/token?grant_type=refresh_token`, {
      method: 'POST', localAddress: ip, headers: { apikey: limited.anonKey }, body: { refresh_token: token },
    });
    assert429(r, '6th refresh');
  });
});

describe('supabase-js error surface', () => {
  it('a 429 reaches supabase-js as an AuthApiError with status 429', async () => {
    // the budget server: 127.0.0.1 has made no auth requests yet
    const c = client(limited);
    let last;
    for (let i = 0; i < 6; i++) last = await c.auth.signInWithPassword({ email: uniqueEmail(), password: 'password123' });
    assert.equal(last.error?.status, 429);
    assert.equal(last.error?.code, 'over_request_rate_limit');
  });
});
