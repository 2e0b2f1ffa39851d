// MFA (issue 14) through supabase-js's auth.mfa: TOTP enrolment with codes
// computed here (RFC 6238), aal2 and amr in the access token, refresh keeping
// aal2, unenrolment needing aal2, replay and wrong-code limits, another user's
// factor, recovery codes through auth.mfa.recoveryCodes (supabase-js 2.119), and
// MFA_REQUIRED_FOR_ADMIN.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, signUpUser, signIn, client, request, decodeJwt, sql, lit, noError, PASSWORD } from './helpers.js';

let server;
before(async () => {
  server = await startServer({ MFA_REQUIRED_FOR_ADMIN: 'true', MFA_MAX_VERIFY_ATTEMPTS: '3' });
});
after(async () => {
  await server?.stop();
});

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
function base32Decode(s) {
  let bits = 0, value = 0;
  const out = [];
  for (const ch of s.replace(/=+$/, '').toUpperCase()) {
    value = (value << 5) | B32.indexOf(ch);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s) of a base32 secret for time step `step`. */
function totpAt(secret, step) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const mac = crypto.createHmac('sha1', base32Decode(secret)).update(msg).digest();
  const off = mac[19] & 0xf;
  const bin = ((mac[off] & 0x7f) << 24) | (mac[off + 1] << 16) | (mac[off + 2] << 8) | mac[off + 3];
  return String(bin % 1000000).padStart(6, '0');
}
const stepNow = () => Math.floor(Date.now() / 1000 / 30);
const totp = (secret) => totpAt(secret, stepNow());
/** A code that matches none of the steps the server accepts now. */
function wrongCode(secret) {
  const s = stepNow();
  const valid = new Set([-2, -1, 0, 1, 2].map((d) => totpAt(secret, s + d)));
  for (let i = 0; ; i++) {
    const c = String(i).padStart(6, '0');
    if (!valid.has(c)) return c;
  }
}

function api(path, token, { method = 'GET', body } = {}) {
  return request(`${server.url}/auth/v1${path}`, {
    method,
    headers: { apikey: server.anonKey, Authorization: `Bearer ${token}`, 'X-Supabase-Api-Version': '2024-01-01' },
    body,
  });
}

/** Signs a user up, enrols and verifies a TOTP factor; returns {u, factor, secret, session}. */
async function userWithTotp(friendlyName = 'phone') {
  const u = await signUpUser(server);
  const { data: enrolled, error } = await u.client.auth.mfa.enroll({ factorType: 'totp', friendlyName });
  noError(error, 'mfa.enroll');
  const { data: ch, error: chErr } = await u.client.auth.mfa.challenge({ factorId: enrolled.id });
  noError(chErr, 'mfa.challenge');
  const { data: session, error: vErr } = await u.client.auth.mfa.verify({
    factorId: enrolled.id, challengeId: ch.id, code: totp(enrolled.totp.secret),
  });
  noError(vErr, 'mfa.verify');
  return { u, factor: enrolled, secret: enrolled.totp.secret, session };
}

describe('TOTP factors', () => {
  it('enrol, challenge and verify with a computed code: the session becomes aal2', async () => {
    const u = await signUpUser(server);
    const { data: enrolled, error } = await u.client.auth.mfa.enroll({ factorType: 'totp', friendlyName: 'phone', issuer: 'Acme Mail' });
    noError(error, 'mfa.enroll');
    assert.equal(enrolled.type, 'totp');
    assert.equal(enrolled.friendly_name, 'phone');
    assert.match(enrolled.totp.secret, /^[A-Z2-7]{32}$/);
    assert.match(enrolled.totp.qr_code, /^data:image\/svg\+xml;utf-8,<svg /, 'auth-js turns the SVG into a data URI');
    assert.ok(enrolled.totp.uri.startsWith(`otpauth://totp/Acme%20Mail:${encodeURIComponent(u.email)}?secret=${enrolled.totp.secret}&issuer=Acme%20Mail`), enrolled.totp.uri);
    const stored = await sql(server, `select position(convert_to(${lit(enrolled.totp.secret)}, 'UTF8') in secret_encrypted) from auth.mfa_factors where id = ${lit(enrolled.id)}`);
    assert.equal(stored, '0', 'the secret is encrypted at rest');

    let { data: listed } = await u.client.auth.mfa.listFactors();
    assert.equal(listed.all.length, 1);
    assert.equal(listed.all[0].status, 'unverified');
    assert.equal(listed.totp.length, 0, 'unverified factors are not in the totp bucket');

    const { data: ch, error: chErr } = await u.client.auth.mfa.challenge({ factorId: enrolled.id });
    noError(chErr, 'mfa.challenge');
    assert.ok(ch.expires_at > Date.now() / 1000);
    const { data: session, error: vErr } = await u.client.auth.mfa.verify({ factorId: enrolled.id, challengeId: ch.id, code: totp(enrolled.totp.secret) });
    noError(vErr, 'mfa.verify');
    const claims = decodeJwt(session.access_token).payload;
    assert.equal(claims.aal, 'aal2');
    assert.deepEqual(claims.amr.map((a) => a.method).sort(), ['password', 'totp']);
    assert.equal(claims.session_id, decodeJwt(u.session.access_token).payload.session_id, 'the same session, raised');

    ({ data: listed } = await u.client.auth.mfa.listFactors());
    assert.equal(listed.totp.length, 1);
    assert.equal(listed.totp[0].status, 'verified');
    const { data: aal } = await u.client.auth.mfa.getAuthenticatorAssuranceLevel();
    assert.equal(aal.currentLevel, 'aal2');
    assert.equal(aal.nextLevel, 'aal2');

    // a refresh keeps the session's aal
    const { data: refreshed, error: rErr } = await u.client.auth.refreshSession();
    noError(rErr, 'refreshSession');
    assert.equal(decodeJwt(refreshed.session.access_token).payload.aal, 'aal2');
    const audit = await sql(server, `select count(*) from auth.audit_log_entries where payload->>'actor_id' = ${lit(u.user.id)} and payload->>'action' in ('mfa_factor_enrolled', 'mfa_challenge_created', 'mfa_factor_verified')`);
    assert.equal(audit, '3');
  });

  it('a new sign-in is aal1 with nextLevel aal2, and cannot unenrol the factor', async () => {
    const { u, factor } = await userWithTotp();
    const again = await signIn(server, u.email);
    const { data: aal } = await again.client.auth.mfa.getAuthenticatorAssuranceLevel();
    assert.equal(aal.currentLevel, 'aal1');
    assert.equal(aal.nextLevel, 'aal2');
    const { error } = await again.client.auth.mfa.unenroll({ factorId: factor.id });
    assert.ok(error, 'unenrol at aal1 must fail');
    assert.equal(error.status, 422);
    assert.equal(error.code, 'insufficient_aal');
    // after verifying on this session, it can
    const { data: ch } = await again.client.auth.mfa.challenge({ factorId: factor.id });
    const code = totpAt(factor.totp.secret, stepNow() + 1); // the first session used this step's code
    const { error: vErr } = await again.client.auth.mfa.verify({ factorId: factor.id, challengeId: ch.id, code });
    noError(vErr, 'mfa.verify on the second session');
    const { data: gone, error: uErr } = await again.client.auth.mfa.unenroll({ factorId: factor.id });
    noError(uErr, 'mfa.unenroll at aal2');
    assert.equal(gone.id, factor.id);
    const { data: listed } = await again.client.auth.mfa.listFactors();
    assert.equal(listed.all.length, 0);
  });

  it('a code is never accepted twice (replay within its window)', async () => {
    const u = await signUpUser(server);
    const { data: f } = await u.client.auth.mfa.enroll({ factorType: 'totp', friendlyName: 'replay' });
    const s = stepNow();
    const code = totpAt(f.totp.secret, s);
    const { data: c1 } = await u.client.auth.mfa.challenge({ factorId: f.id });
    noError((await u.client.auth.mfa.verify({ factorId: f.id, challengeId: c1.id, code })).error, 'first use');
    const { data: c2 } = await u.client.auth.mfa.challenge({ factorId: f.id });
    const { error } = await u.client.auth.mfa.verify({ factorId: f.id, challengeId: c2.id, code });
    assert.ok(error, 'the same code again must fail');
    assert.equal(error.status, 422);
    assert.equal(error.code, 'mfa_verification_failed');
    // and a used challenge cannot be verified again either
    const r = await api(`/factors/${f.id}/verify`, u.session.access_token, { method: 'POST', body: { challenge_id: c1.id, code: totpAt(f.totp.secret, s + 1) } });
    assert.equal(r.status, 422, r.text);
    assert.equal(r.json.code, 'mfa_challenge_expired');
  });

  it('wrong codes lock the factor after MFA_MAX_VERIFY_ATTEMPTS, even for the right code', async () => {
    const u = await signUpUser(server);
    const { data: f } = await u.client.auth.mfa.enroll({ factorType: 'totp', friendlyName: 'locked' });
    const { data: ch } = await u.client.auth.mfa.challenge({ factorId: f.id });
    for (let i = 0; i < 3; i++) {
      const { error } = await u.client.auth.mfa.verify({ factorId: f.id, challengeId: ch.id, code: wrongCode(f.totp.secret) });
      assert.equal(error?.code, 'mfa_verification_failed', `attempt ${i + 1}`);
    }
    const r = await api(`/factors/${f.id}/verify`, u.session.access_token, { method: 'POST', body: { challenge_id: ch.id, code: totp(f.totp.secret) } });
    assert.equal(r.status, 429, r.text);
    assert.ok(Number(r.headers['retry-after']) > 0);
    const failures = await sql(server, `select count(*) from auth.audit_log_entries where payload->>'actor_id' = ${lit(u.user.id)} and payload->>'action' = 'mfa_verify_failed'`);
    assert.equal(failures, '3', 'every failure is audited');
    // malformed input is a 400, not an attempt
    const bad = await api(`/factors/${f.id}/verify`, u.session.access_token, { method: 'POST', body: { challenge_id: 'nope', code: '123456' } });
    assert.equal(bad.status, 400);
  });

  it('another user\'s factor id is refused everywhere', async () => {
    const { factor, secret } = await userWithTotp();
    const mallory = await signUpUser(server);
    const { error: chErr } = await mallory.client.auth.mfa.challenge({ factorId: factor.id });
    assert.equal(chErr?.status, 404);
    assert.equal(chErr?.code, 'mfa_factor_not_found');
    const { data: own } = await mallory.client.auth.mfa.enroll({ factorType: 'totp' });
    const { data: ownCh } = await mallory.client.auth.mfa.challenge({ factorId: own.id });
    const v = await api(`/factors/${factor.id}/verify`, mallory.session.access_token, { method: 'POST', body: { challenge_id: ownCh.id, code: totp(secret) } });
    assert.equal(v.status, 404, v.text);
    const { error: unErr } = await mallory.client.auth.mfa.unenroll({ factorId: factor.id });
    assert.equal(unErr?.status, 404);
    const still = await sql(server, `select count(*) from auth.mfa_factors where id = ${lit(factor.id)}`);
    assert.equal(still, '1');
    const notUuid = await api('/factors/not-a-uuid/challenge', mallory.session.access_token, { method: 'POST', body: {} });
    assert.equal(notUuid.status, 404);
  });

  it('refuses unknown factor types, anonymous callers and a second enrolment at aal1', async () => {
    const u = await signUpUser(server);
    const r = await api('/factors', u.session.access_token, { method: 'POST', body: { factor_type: 'sms' } });
    assert.equal(r.status, 400);
    const anon = await api('/factors', server.anonKey, { method: 'POST', body: { factor_type: 'totp' } });
    assert.equal(anon.status, 401, 'the anon key is not a signed-in user');
    const { u: owner } = await userWithTotp();
    const again = await signIn(server, owner.email);
    const { error } = await again.client.auth.mfa.enroll({ factorType: 'totp', friendlyName: 'second' });
    assert.equal(error?.code, 'insufficient_aal');
  });
});

// auth.mfa.recoveryCodes of auth-js 2.119 is behind this option (it throws
// without it); nothing else of the library is changed.
const RECOVERY = { auth: { experimental: { recoveryCodes: true } } };

/** A supabase-js client with the recovery-code API on, signed in by password (aal1). */
async function recoveryClient(email) {
  const c = client(server, server.anonKey, RECOVERY);
  const { data, error } = await c.auth.signInWithPassword({ email, password: PASSWORD });
  noError(error, `signInWithPassword(${email})`);
  return { client: c, session: data.session };
}

/** The same, holding an existing (aal2) session. */
async function recoveryClientWith(session) {
  const c = client(server, server.anonKey, RECOVERY);
  const { error } = await c.auth.setSession({ access_token: session.access_token, refresh_token: session.refresh_token });
  noError(error, 'setSession');
  return c;
}

/** Asserts a supabase-js error result: no data, the HTTP status and GoTrue's error code. */
function apiError(result, status, code, what) {
  assert.equal(result.data, null, `${what}: ${JSON.stringify(result.data)}`);
  assert.equal(result.error?.name, 'AuthApiError', `${what}: ${result.error}`);
  assert.deepEqual([result.error.status, result.error.code], [status, code], what);
}

describe('recovery codes (auth.mfa.recoveryCodes of supabase-js)', () => {
  it('need the experimental option in supabase-js', async () => {
    const u = await signUpUser(server);
    await assert.rejects(u.client.auth.mfa.recoveryCodes.getStatus(), /experimental: \{ recoveryCodes: true \}/);
  });

  it('ten codes shown once, single use, raising an aal1 session to aal2 with amr mfa/recovery_code', async () => {
    const { u, factor, session } = await userWithTotp();
    const owner = await recoveryClientWith(session);
    apiError(await owner.auth.mfa.recoveryCodes.getStatus(), 404, 'mfa_factor_not_found', 'status before any set');

    const gen = await owner.auth.mfa.recoveryCodes.generate({ friendlyName: 'paper' });
    noError(gen.error, 'recoveryCodes.generate');
    assert.deepEqual([gen.data.type, gen.data.friendly_name, gen.data.total], ['recovery_code', 'paper', 10]);
    assert.equal(gen.data.codes.length, 10);
    assert.equal(new Set(gen.data.codes).size, 10);
    for (const c of gen.data.codes) assert.match(c, /^[a-z2-7]{16}$/, 'canonical form');
    const stored = await sql(server, `select count(*) from auth.mfa_recovery_codes where code_hash = any(array[${gen.data.codes.map(lit).join(',')}])`);
    assert.equal(stored, '0', 'codes are stored hashed');
    apiError(await owner.auth.mfa.recoveryCodes.generate(), 422, 'mfa_verified_factor_exists', 'a second set');

    const status = await owner.auth.mfa.recoveryCodes.getStatus();
    noError(status.error, 'recoveryCodes.getStatus');
    assert.deepEqual(status.data, { id: gen.data.id, type: 'recovery_code', total: 10, remaining: 10 }, 'status never shows the codes');
    const { data: listed, error: lErr } = await owner.auth.mfa.listFactors();
    noError(lErr, 'listFactors');
    assert.deepEqual(listed.recovery_code.map((f) => [f.id, f.friendly_name, f.status]), [[gen.data.id, 'paper', 'verified']],
      'user.factors lists the recovery-code factor, in its own bucket');
    assert.deepEqual(listed.totp.map((f) => f.id), [factor.id]);

    const other = await recoveryClient(u.email);
    const before = decodeJwt(other.session.access_token).payload;
    assert.equal(before.aal, 'aal1');
    apiError(await other.client.auth.mfa.recoveryCodes.regenerate(), 403, 'insufficient_aal', 'regenerate at aal1');
    apiError(await other.client.auth.mfa.recoveryCodes.unenroll(), 403, 'insufficient_aal', 'unenroll at aal1');
    const aal1Status = await other.client.auth.mfa.recoveryCodes.getStatus();
    noError(aal1Status.error, 'getStatus at aal1');
    assert.equal(aal1Status.data.remaining, 10);

    const typed = gen.data.codes[0].toUpperCase().replace(/(.{4})/g, '$1-').slice(0, -1);
    const v = await other.client.auth.mfa.recoveryCodes.verify({ code: typed });
    noError(v.error, 'recoveryCodes.verify');
    const { data: { session: raised } } = await other.client.auth.getSession();
    assert.equal(raised.access_token, v.data.access_token, 'the client stores the raised session');
    assert.equal(raised.refresh_token, v.data.refresh_token);
    const claims = decodeJwt(raised.access_token).payload;
    assert.equal(claims.aal, 'aal2');
    assert.deepEqual(claims.amr.map((a) => a.method).sort(), ['mfa/recovery_code', 'password']);
    assert.equal(claims.session_id, before.session_id, 'the same session, raised');
    const { data: aal } = await other.client.auth.mfa.getAuthenticatorAssuranceLevel();
    assert.equal(aal.currentLevel, 'aal2');
    assert.ok(aal.currentAuthenticationMethods.some((a) => a.method === 'mfa/recovery_code'), JSON.stringify(aal));
    assert.ok(raised.user.factors.some((f) => f.factor_type === 'recovery_code' && f.id === gen.data.id), 'the session user lists the factor');

    apiError(await other.client.auth.mfa.recoveryCodes.verify({ code: gen.data.codes[0] }), 422, 'mfa_verification_failed', 'a used code');
    assert.equal((await other.client.auth.getSession()).data.session.access_token, raised.access_token, 'a failure keeps the session');
    assert.equal((await other.client.auth.mfa.recoveryCodes.getStatus()).data.remaining, 9);

    const regen = await other.client.auth.mfa.recoveryCodes.regenerate();
    noError(regen.error, 'recoveryCodes.regenerate');
    assert.deepEqual([regen.data.id, regen.data.friendly_name, regen.data.codes.length], [gen.data.id, 'paper', 10], 'same factor, new codes');
    assert.ok(!regen.data.codes.some((c) => gen.data.codes.includes(c)));
    apiError(await other.client.auth.mfa.recoveryCodes.verify({ code: gen.data.codes[1] }), 422, 'mfa_verification_failed', 'regenerate voids the old set');
    const audit = await sql(server, `select string_agg(payload->>'action', ',' order by created_at) from auth.audit_log_entries where payload->>'actor_id' = ${lit(u.user.id)} and payload->>'action' like 'recovery_code%'`);
    assert.equal(audit, 'recovery_codes_generated,recovery_code_verified,recovery_code_failed,recovery_codes_regenerated,recovery_code_failed');

    const del = await other.client.auth.mfa.recoveryCodes.unenroll();
    noError(del.error, 'recoveryCodes.unenroll');
    assert.deepEqual(del.data, { id: gen.data.id });
    apiError(await owner.auth.mfa.recoveryCodes.getStatus(), 404, 'mfa_factor_not_found', 'status after unenroll');
    apiError(await owner.auth.mfa.recoveryCodes.unenroll(), 404, 'mfa_factor_not_found', 'unenroll twice');
    apiError(await owner.auth.mfa.recoveryCodes.regenerate(), 404, 'mfa_factor_not_found', 'regenerate without a set');
  });

  it('a set without a name is called Recovery codes; a name another factor has is refused', async () => {
    const { session } = await userWithTotp('phone');
    const owner = await recoveryClientWith(session);
    apiError(await owner.auth.mfa.recoveryCodes.generate({ friendlyName: 'phone' }), 422, 'mfa_factor_name_conflict', 'the TOTP factor\'s name');
    const gen = await owner.auth.mfa.recoveryCodes.generate();
    noError(gen.error, 'generate without a name');
    assert.equal(gen.data.friendly_name, 'Recovery codes');
  });

  it('locks after repeated wrong codes', async () => {
    const { u, session } = await userWithTotp();
    const gen = await (await recoveryClientWith(session)).auth.mfa.recoveryCodes.generate();
    noError(gen.error, 'generate');
    const { client: c, session: aal1 } = await recoveryClient(u.email);
    for (let i = 0; i < 3; i++)
      apiError(await c.auth.mfa.recoveryCodes.verify({ code: 'aaaaaaaaaaaaaaaa' }), 422, 'mfa_verification_failed', `attempt ${i + 1}`);
    apiError(await c.auth.mfa.recoveryCodes.verify({ code: gen.data.codes[0] }), 429, 'mfa_recovery_codes_locked', 'a right code while locked');
    apiError(await c.auth.mfa.recoveryCodes.verify({ code: '' }), 400, 'validation_failed', 'an empty code');
    assert.equal((await c.auth.getSession()).data.session.access_token, aal1.access_token, 'still the aal1 session');
  });

  it('count towards the factor limit (ten factors per user, as GoTrue)', async () => {
    const { session } = await userWithTotp('phone');
    const owner = await recoveryClientWith(session);
    for (let i = 1; i < 10; i++) // nine more (unverified) TOTP factors: ten in all
      noError((await owner.auth.mfa.enroll({ factorType: 'totp', friendlyName: `spare ${i}` })).error, `enroll ${i}`);
    apiError(await owner.auth.mfa.recoveryCodes.generate(), 422, 'too_many_enrolled_mfa_factors', 'recovery codes at the limit');
    const { data: listed } = await owner.auth.mfa.listFactors();
    assert.equal(listed.all.length, 10, 'no eleventh factor');
    // one factor less: the recovery codes fit and take the last place
    noError((await owner.auth.mfa.unenroll({ factorId: listed.all.find((f) => f.friendly_name === 'spare 9').id })).error, 'unenroll');
    noError((await owner.auth.mfa.recoveryCodes.generate()).error, 'recovery codes below the limit');
    apiError(await owner.auth.mfa.enroll({ factorType: 'totp', friendlyName: 'one more' }), 422, 'too_many_enrolled_mfa_factors', 'a TOTP factor after them');
    noError((await owner.auth.mfa.recoveryCodes.regenerate()).error, 'regenerating at the limit adds no factor');
  });

  it('cannot be the only second factor', async () => {
    const u = await signUpUser(server);
    const c = await recoveryClientWith(u.session);
    apiError(await c.auth.mfa.recoveryCodes.generate(), 403, 'insufficient_aal', 'an aal1 session without factors has no aal2');
  });
});

describe('MFA_REQUIRED_FOR_ADMIN', () => {
  it('an admin at aal1 has no admin rights; after verifying a factor they return', async () => {
    const settings = await request(`${server.url}/auth/v1/settings`, { headers: { apikey: server.anonKey } });
    assert.equal(settings.json.mfa_enabled, true);
    assert.equal(settings.json.mfa.required_for_admin, true);
    assert.equal(await sql(server, 'select mfa_required_for_admin from public.app_settings'), 't');

    const a = await signUpUser(server);
    await sql(server, `update auth.users set raw_app_meta_data = raw_app_meta_data || '{"role":"admin"}' where id = ${lit(a.user.id)}`);
    const admin = await signIn(server, a.email);
    const list = await api('/admin/users', admin.session.access_token);
    assert.equal(list.status, 403, list.text);
    assert.equal(list.json.code, 'insufficient_aal');
    const off = await admin.client.from('app_settings').update({ mfa_required_for_admin: false }).not('id', 'is', null).select('id');
    assert.deepEqual(off.data ?? [], [], 'an aal1 admin cannot turn the requirement off');
    assert.equal(await sql(server, 'select mfa_required_for_admin from public.app_settings'), 't');
    const rows = await admin.client.from('app_settings').select('id');
    assert.deepEqual(rows.data, [], `admin-only rows are invisible at aal1 ${JSON.stringify(rows.error)}`);

    const { data: f } = await admin.client.auth.mfa.enroll({ factorType: 'totp' });
    const { data: ch } = await admin.client.auth.mfa.challenge({ factorId: f.id });
    noError((await admin.client.auth.mfa.verify({ factorId: f.id, challengeId: ch.id, code: totp(f.totp.secret) })).error, 'admin verify');
    const list2 = await api('/admin/users', (await admin.client.auth.getSession()).data.session.access_token);
    assert.equal(list2.status, 200, list2.text);
    const rows2 = await admin.client.from('app_settings').select('id');
    noError(rows2.error, 'app_settings at aal2');
    assert.equal(rows2.data.length, 1);
    const toggled = await admin.client.from('app_settings').update({ mfa_required_for_admin: false }).not('id', 'is', null).select('mfa_required_for_admin');
    noError(toggled.error, 'an aal2 admin changes the setting');
    assert.equal(await sql(server, 'select mfa_required_for_admin from public.app_settings'), 'f');
    // the service key is not affected
    const svc = await client(server, server.serviceKey).auth.admin.listUsers();
    noError(svc.error, 'service listUsers');
  });
});
