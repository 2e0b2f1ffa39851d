// Auth's mail (issue 14): the real defaults (invite-only, autoconfirm only
// without SMTP), sign-up with confirmation, resend, password recovery, magic
// links and 6-digit codes, read from a real SMTP server (smtp-sink.py) and
// followed or typed through supabase-js; expired, reused, wrong-purpose and
// tampered tokens; enumeration; open redirects; mail rate limits; templates.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, client, request, sql, lit, uniqueEmail, noError, decodeJwt, PASSWORD } from './helpers.js';
import { startSmtpSink, linkAndCode } from './mail-sink.js';

const SITE = 'http://site.example.test';
let bare; // no SMTP, every default (DISABLE_SIGNUP unset)
let open; // SMTP, open sign-up, no per-address delay
let strict; // SMTP, default limits, invite-only by default
let sink;
let sink2;

before(async () => {
  [sink, sink2] = await Promise.all([startSmtpSink(), startSmtpSink()]);
  [bare, open, strict] = await Promise.all([
    startServer({ DISABLE_SIGNUP: undefined }),
    startServer({
      SMTP_URL: sink.url,
      SMTP_ADMIN_EMAIL: 'auth@campaignd.test',
      SMTP_SENDER_NAME: 'Équipe campaignd',
      DISABLE_SIGNUP: 'false',
      SMTP_MAX_FREQUENCY: '0',
      RATE_LIMIT_EMAIL_SENT: '100000',
      SITE_URL: SITE,
      ADDITIONAL_REDIRECT_URLS: 'http://app.example.test/**, http://*.preview.test/cb',
    }),
    startServer({ SMTP_URL: sink2.url, DISABLE_SIGNUP: undefined, RATE_LIMIT_EMAIL_SENT: '3', SITE_URL: SITE }),
  ]);
});
after(async () => {
  await Promise.all([bare?.stop(), open?.stop(), strict?.stop()]);
  await Promise.all([sink?.stop(), sink2?.stop()]);
});

const settings = async (s) => (await request(`${s.url}/auth/v1/settings`, { headers: { apikey: s.anonKey } })).json;

/** Signs up on `open` and returns the confirmation mail's link and code. */
async function signUpUnconfirmed(email = uniqueEmail('conf'), options = {}) {
  const { data, error } = await client(open).auth.signUp({ email, password: PASSWORD, options });
  noError(error, 'signUp');
  assert.equal(data.session, null, 'no session before confirmation');
  assert.equal(data.user.email, email);
  assert.equal(data.user.email_confirmed_at ?? null, null);
  const mail = await sink.waitFor(email);
  return { email, user: data.user, mail, ...linkAndCode(mail) };
}

describe('defaults', () => {
  it('without SMTP: invite-only, autoconfirm on; a refused sign-up says signup_disabled', async () => {
    const s = await settings(bare);
    assert.equal(s.disable_signup, true);
    assert.equal(s.mailer_autoconfirm, true);
    const { data, error } = await client(bare).auth.signUp({ email: uniqueEmail(), password: PASSWORD });
    assert.equal(data.user, null);
    assert.equal(error?.status, 422);
    assert.equal(error?.code, 'signup_disabled');
    assert.match(bare.log(), /SMTP_URL is not set/);
  });

  it('with SMTP: autoconfirm off unless set, sign-up still invite-only', async () => {
    const s = await settings(strict);
    assert.equal(s.disable_signup, true);
    assert.equal(s.mailer_autoconfirm, false);
    const { error } = await client(strict).auth.signUp({ email: uniqueEmail(), password: PASSWORD });
    assert.equal(error?.code, 'signup_disabled');
  });
});

describe('sign-up with confirmation', () => {
  it('the mail is a proper RFC 5322 message with the link and the code', async () => {
    const { mail, link, code, email } = await signUpUnconfirmed();
    assert.equal(mail.from, 'Équipe campaignd <auth@campaignd.test>');
    assert.match(mail.headers['message-id'], /^<[0-9a-f]{32}@campaignd\.test>$/);
    assert.ok(!Number.isNaN(Date.parse(mail.headers.date)));
    assert.equal(mail.subject, 'Confirm your sign-up');
    assert.ok(link.startsWith(`${open.url}/auth/v1/verify?token=`));
    assert.match(code, /^\d{6}$/);
    assert.ok(mail.html.includes(code));
    assert.deepEqual(mail.to, [email]);
  });

  it('an unconfirmed user cannot sign in (email_not_confirmed); the link confirms and signs in', async () => {
    const { email, link } = await signUpUnconfirmed();
    const before = await client(open).auth.signInWithPassword({ email, password: PASSWORD });
    assert.equal(before.error?.code, 'email_not_confirmed');
    const r = await request(link);
    assert.equal(r.status, 303);
    const loc = new URL(r.headers.location);
    assert.equal(loc.origin, SITE);
    const frag = new URLSearchParams(loc.hash.slice(1));
    assert.equal(frag.get('type'), 'signup');
    assert.equal(decodeJwt(frag.get('access_token')).payload.email, email);
    assert.ok(frag.get('refresh_token'));
    const afterwards = await client(open).auth.signInWithPassword({ email, password: PASSWORD });
    noError(afterwards.error, 'signIn after confirmation');
    assert.ok(afterwards.data.user.email_confirmed_at);
    // the link is single-use
    const again = await request(link);
    assert.equal(again.status, 303);
    assert.match(again.headers.location, /#error=access_denied&error_code=otp_expired/);
  });

  it('typing the code confirms (verifyOtp type signup); the link then is dead too', async () => {
    const { email, code, link } = await signUpUnconfirmed();
    const { data, error } = await client(open).auth.verifyOtp({ email, token: code, type: 'signup' });
    noError(error, 'verifyOtp');
    assert.equal(data.session.user.email, email);
    assert.ok(data.user.email_confirmed_at);
    const r = await request(link);
    assert.match(r.headers.location, /error_code=otp_expired/);
  });

  it('resend voids the old token and mails a new one', async () => {
    const { email, code: oldCode } = await signUpUnconfirmed();
    const { error } = await client(open).auth.resend({ type: 'signup', email });
    noError(error, 'resend');
    const second = linkAndCode(await sink.waitFor(email, { after: 1 }));
    const stale = await client(open).auth.verifyOtp({ email, token: oldCode, type: 'signup' });
    if (oldCode !== second.code) assert.equal(stale.error?.code, 'otp_expired');
    const ok = await client(open).auth.verifyOtp({ email, token: second.code, type: 'signup' });
    noError(ok.error, 'verifyOtp with the new code');
  });

  it('codes allow a few wrong attempts, then die', async () => {
    const { email, code } = await signUpUnconfirmed();
    const wrong = code === '000000' ? '111111' : '000000';
    for (let i = 0; i < 5; i++) {
      const { error } = await client(open).auth.verifyOtp({ email, token: wrong, type: 'signup' });
      assert.equal(error?.status, 403);
      assert.equal(error?.code, 'otp_expired');
    }
    const late = await client(open).auth.verifyOtp({ email, token: code, type: 'signup' });
    assert.equal(late.error?.code, 'otp_expired', 'the right code after 5 wrong ones is refused');
  });

  it('expired, tampered and wrong-purpose tokens are refused; a refused token stays usable', async () => {
    const { email, token, code } = await signUpUnconfirmed();
    const tampered = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
    let r = await client(open).auth.verifyOtp({ token_hash: tampered, type: 'signup' });
    assert.equal(r.error?.code, 'otp_expired');
    r = await client(open).auth.verifyOtp({ token_hash: token, type: 'recovery' });
    assert.equal(r.error?.code, 'otp_expired', 'a sign-up token is not a recovery token');
    r = await client(open).auth.verifyOtp({ email, token: code, type: 'magiclink' });
    assert.equal(r.error?.code, 'otp_expired', 'nor a magic link code');
    await sql(open, `update auth.email_tokens set expires_at = now() - interval '1 second' where lower(email) = lower(${lit(email)})`);
    r = await client(open).auth.verifyOtp({ token_hash: token, type: 'signup' });
    assert.equal(r.error?.code, 'otp_expired', 'expired');
    // a fresh one works by token_hash
    await client(open).auth.resend({ type: 'signup', email });
    const fresh = linkAndCode(await sink.waitFor(email, { after: 1 }));
    r = await client(open).auth.verifyOtp({ token_hash: fresh.token, type: 'signup' });
    noError(r.error, 'verifyOtp by token_hash');
  });

  it('tokens are stored hashed', async () => {
    const { email, token, code } = await signUpUnconfirmed();
    const rows = await sql(open, `select token_hash || ' ' || code_hash from auth.email_tokens where lower(email) = lower(${lit(email)})`);
    assert.ok(rows.length > 0);
    assert.ok(!rows.includes(token));
    assert.ok(!rows.includes(code));
  });
});

describe('recovery and magic links', () => {
  it('resetPasswordForEmail: known and unknown addresses get the same answer; only the known one gets mail', async () => {
    const { email, code } = await signUpUnconfirmed();
    await client(open).auth.verifyOtp({ email, token: code, type: 'signup' });
    const unknown = uniqueEmail('nobody');
    const known = await request(`${open.url}/auth/v1/recover`, { method: 'POST', headers: { apikey: open.anonKey }, body: { email } });
    const other = await request(`${open.url}/auth/v1/recover`, { method: 'POST', headers: { apikey: open.anonKey }, body: { email: unknown } });
    assert.equal(known.status, 200);
    assert.equal(other.status, known.status);
    assert.equal(other.text, known.text);
    const mail = await sink.waitFor(email, { after: 1 });
    assert.equal(mail.subject, 'Reset your password');
    assert.equal(sink.count(unknown), 0);
    // the code signs in as recovery; the new password then works
    const rec = linkAndCode(mail);
    const c = client(open);
    const { data, error } = await c.auth.verifyOtp({ email, token: rec.code, type: 'recovery' });
    noError(error, 'verifyOtp recovery');
    assert.ok(data.session.access_token);
    await c.auth.setSession(data.session);
    noError((await c.auth.updateUser({ password: 'a brand new password' })).error, 'updateUser');
    noError((await client(open).auth.signInWithPassword({ email, password: 'a brand new password' })).error, 'signIn');
  });

  it('signInWithOtp: the magic link and the code both sign in (each once)', async () => {
    const { email, code } = await signUpUnconfirmed();
    await client(open).auth.verifyOtp({ email, token: code, type: 'signup' });
    noError((await client(open).auth.signInWithOtp({ email })).error, 'signInWithOtp');
    const first = linkAndCode(await sink.waitFor(email, { after: 1 }));
    const r = await request(first.link);
    assert.equal(r.status, 303);
    assert.match(r.headers.location, /#access_token=.+&type=magiclink/);
    noError((await client(open).auth.signInWithOtp({ email })).error, 'signInWithOtp again');
    const second = linkAndCode(await sink.waitFor(email, { after: 2 }));
    const { data, error } = await client(open).auth.verifyOtp({ email, token: second.code, type: 'email' });
    noError(error, 'verifyOtp email');
    const claims = decodeJwt(data.session.access_token).payload;
    assert.equal(claims.email, email);
    const reuse = await client(open).auth.verifyOtp({ email, token: second.code, type: 'email' });
    assert.equal(reuse.error?.code, 'otp_expired');
  });

  it('signInWithOtp for a new address signs up (open sign-up) and confirms with the code', async () => {
    const email = uniqueEmail('otpnew');
    noError((await client(open).auth.signInWithOtp({ email })).error, 'signInWithOtp');
    const { code } = linkAndCode(await sink.waitFor(email));
    const { data, error } = await client(open).auth.verifyOtp({ email, token: code, type: 'email' });
    noError(error, 'verifyOtp');
    assert.equal(data.user.email, email);
    assert.equal(data.user.app_metadata.role, 'user');
  });

  it('signInWithOtp with shouldCreateUser false for an unknown address: 200 and no mail', async () => {
    const email = uniqueEmail('ghost');
    const { error } = await client(open).auth.signInWithOtp({ email, options: { shouldCreateUser: false } });
    noError(error, 'signInWithOtp');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(sink.count(email), 0);
  });
});

describe('invites, generated links and e-mail changes', () => {
  it('admin.inviteUserByEmail mails an invite; the code signs the invitee in, who then sets a password', async () => {
    const email = uniqueEmail('invitee');
    const admin = client(open, open.serviceKey);
    const { data, error } = await admin.auth.admin.inviteUserByEmail(email, { data: { name: 'Ann', role: 'admin' } });
    noError(error, 'inviteUserByEmail');
    assert.equal(data.user.email, email);
    assert.ok(data.user.invited_at);
    assert.equal(data.user.app_metadata.role, 'user', 'an invite never grants a role from data');
    const mail = await sink.waitFor(email);
    assert.equal(mail.subject, 'You have been invited');
    const { code } = linkAndCode(mail);
    const c = client(open);
    const v = await c.auth.verifyOtp({ email, token: code, type: 'invite' });
    noError(v.error, 'verifyOtp invite');
    await c.auth.setSession(v.data.session);
    noError((await c.auth.updateUser({ password: PASSWORD })).error, 'set password');
    noError((await client(open).auth.signInWithPassword({ email, password: PASSWORD })).error, 'signIn');
    const again = await admin.auth.admin.inviteUserByEmail(email);
    assert.equal(again.error?.code, 'email_exists');
    const anon = await client(open).auth.admin.inviteUserByEmail(uniqueEmail('x'));
    assert.equal(anon.error?.status, 403, 'the anon key cannot invite');
    const audit = await sql(open, `select count(*) from auth.audit_log_entries where payload->>'action' = 'user_invited' and payload->'traits'->>'user_email' = ${lit(email)}`);
    assert.equal(audit, '1');
  });

  it('admin.generateLink returns a working link and code and mails nothing', async () => {
    const email = uniqueEmail('gen');
    const admin = client(open, open.serviceKey);
    const { data, error } = await admin.auth.admin.generateLink({ type: 'signup', email, password: PASSWORD, options: { redirectTo: 'http://app.example.test/in' } });
    noError(error, 'generateLink');
    assert.equal(data.user.email, email);
    assert.equal(data.properties.verification_type, 'signup');
    assert.equal(data.properties.redirect_to, 'http://app.example.test/in');
    assert.match(data.properties.email_otp, /^\d{6}$/);
    const r = await request(data.properties.action_link);
    assert.ok(r.headers.location.startsWith('http://app.example.test/in#access_token='));
    const rec = await admin.auth.admin.generateLink({ type: 'recovery', email });
    noError(rec.error, 'generateLink recovery');
    const v = await client(open).auth.verifyOtp({ email, token: rec.data.properties.email_otp, type: 'recovery' });
    noError(v.error, 'verifyOtp with the generated code');
    const missing = await admin.auth.admin.generateLink({ type: 'magiclink', email: uniqueEmail('none') });
    assert.equal(missing.error?.status, 404);
    assert.equal(sink.count(email), 0);
  });

  it('updateUser({email}) needs both the current and the new address to confirm', async () => {
    const { email, code } = await signUpUnconfirmed();
    const c = client(open);
    const v = await c.auth.verifyOtp({ email, token: code, type: 'signup' });
    noError(v.error);
    await c.auth.setSession(v.data.session);
    const next = uniqueEmail('moved');
    const { data, error } = await c.auth.updateUser({ email: next });
    noError(error, 'updateUser email');
    assert.equal(data.user.email, email, 'nothing changes yet');
    assert.equal(data.user.new_email, next);
    const toOld = linkAndCode(await sink.waitFor(email, { after: 1 }));
    const toNew = linkAndCode(await sink.waitFor(next));
    const first = await client(open).auth.verifyOtp({ token_hash: toNew.token, type: 'email_change' });
    noError(first.error, 'first half');
    assert.equal(first.data.session, null);
    let me = await sql(open, `select email from auth.users where id = ${lit(v.data.user.id)}`);
    assert.equal(me, email, 'one half is not enough');
    const r = await request(toOld.link);
    assert.match(r.headers.location, /#access_token=/);
    me = await sql(open, `select email from auth.users where id = ${lit(v.data.user.id)}`);
    assert.equal(me, next);
    noError((await client(open).auth.signInWithPassword({ email: next, password: PASSWORD })).error, 'signIn with the new address');
    // another user's address cannot be claimed
    const taken = await c.auth.updateUser({ email: (await signUpUnconfirmed()).email });
    assert.equal(taken.error?.code, 'email_exists');
  });
});

describe('redirects', () => {
  it('an allowed redirect_to (glob) is kept; a foreign one is replaced by SITE_URL', async () => {
    const good = await signUpUnconfirmed(uniqueEmail('redir'), { emailRedirectTo: 'http://app.example.test/welcome/x' });
    let r = await request(good.link);
    assert.ok(r.headers.location.startsWith('http://app.example.test/welcome/x#access_token='));
    const glob = await signUpUnconfirmed(uniqueEmail('redir'), { emailRedirectTo: 'http://pr-7.preview.test/cb' });
    r = await request(glob.link);
    assert.ok(r.headers.location.startsWith('http://pr-7.preview.test/cb#access_token='));
    for (const evil of ['https://evil.test/', 'http://app.example.test.evil.test/', 'http://a.b.preview.test/cb', `${SITE}@evil.test/`, 'javascript:alert(1)//']) {
      const bad = await signUpUnconfirmed(uniqueEmail('evil'), { emailRedirectTo: evil });
      assert.ok(!bad.link.includes(encodeURIComponent(evil)), `${evil} must not reach the mail`);
      r = await request(bad.link);
      assert.equal(new URL(r.headers.location).origin, SITE, `${evil} was followed`);
    }
    // a redirect_to added to the link by hand is not followed either
    const hand = await signUpUnconfirmed();
    r = await request(`${hand.link.replace(/redirect_to=[^&]*/, '')}&redirect_to=${encodeURIComponent('https://evil.test/')}`);
    assert.equal(new URL(r.headers.location).origin, SITE);
  });
});

describe('mail rate limits (defaults) and templates', () => {
  it('one mail per address per SMTP_MAX_FREQUENCY, known or not: the same 429', async () => {
    const email = uniqueEmail('limited');
    const add = await strict.run(['user', 'add', '--email', email, '--password', PASSWORD]);
    assert.equal(add.code, 0, add.stderr);
    const send = (e, ip) => request(`${strict.url}/auth/v1/recover`, { method: 'POST', headers: { apikey: strict.anonKey }, body: { email: e }, localAddress: ip });
    assert.equal((await send(email, '127.0.0.21')).status, 200);
    const second = await send(email, '127.0.0.22');
    assert.equal(second.status, 429);
    assert.equal(second.json.code, 'over_email_send_rate_limit');
    const unknown = uniqueEmail('nobody');
    assert.equal((await send(unknown, '127.0.0.23')).status, 200);
    const unknown2 = await send(unknown, '127.0.0.24');
    assert.equal(unknown2.status, 429);
    assert.equal(unknown2.json.code, second.json.code);
    await sink2.waitFor(email);
    assert.equal(sink2.count(email), 1);
  });

  it('RATE_LIMIT_EMAIL_SENT mails per client address per hour', async () => {
    const ip = '127.0.0.31';
    const send = (e) => request(`${strict.url}/auth/v1/recover`, { method: 'POST', headers: { apikey: strict.anonKey }, body: { email: e }, localAddress: ip });
    for (let i = 0; i < 3; i++) assert.equal((await send(uniqueEmail('ip'))).status, 200);
    const over = await send(uniqueEmail('ip'));
    assert.equal(over.status, 429);
    assert.ok(Number(over.headers['retry-after']) > 0);
  });

  it('an admin changes a template through /rest/v1; the next mail uses it', async () => {
    const admin = uniqueEmail('tpladmin');
    assert.equal((await open.run(['user', 'add', '--email', admin, '--password', PASSWORD, '--role', 'admin'])).code, 0);
    const c = client(open);
    noError((await c.auth.signInWithPassword({ email: admin, password: PASSWORD })).error, 'admin signIn');
    const { error } = await c
      .from('auth_mail_templates')
      .update({ subject: 'Réinitialiser — {{ .Email }}', content_text: 'Code {{ .Token }} <{{ .Email }}>', content_html: '<p>{{ .Email }}</p>' })
      .eq('kind', 'recovery');
    noError(error, 'update template');
    const plain = uniqueEmail('plainuser');
    assert.equal((await open.run(['user', 'add', '--email', plain, '--password', PASSWORD])).code, 0);
    const pc = client(open);
    noError((await pc.auth.signInWithPassword({ email: plain, password: PASSWORD })).error);
    const denied = await pc.from('auth_mail_templates').update({ subject: 'pwned' }).eq('kind', 'recovery').select();
    assert.equal(denied.data?.length ?? 0, 0, 'a non-admin changes nothing');
    noError((await client(open).auth.resetPasswordForEmail(plain)).error);
    const mail = await sink.waitFor(plain);
    assert.equal(mail.subject, `Réinitialiser — ${plain}`);
    assert.match(mail.text, /^Code \d{6} </);
    assert.equal(mail.html, `<p>${plain.replace('@', '@')}</p>`);
  });
});

describe('durable mail (mail.send jobs)', () => {
  it('a mail accepted while the SMTP server is down is delivered once after a restart', async () => {
    // a free port where no SMTP server listens yet
    const probe = await startSmtpSink();
    const port = probe.port;
    await probe.stop();
    const env = {
      SMTP_URL: `smtp://127.0.0.1:${port}`,
      SMTP_ADMIN_EMAIL: 'auth@campaignd.test',
      DISABLE_SIGNUP: 'false',
      SMTP_MAX_FREQUENCY: '0',
      MAIL_RETRY_DELAY: '1',
      SITE_URL: SITE,
    };
    let server = await startServer(env);
    let late;
    try {
      const email = uniqueEmail('durable');
      const { error } = await client(server).auth.signUp({ email, password: PASSWORD });
      noError(error, 'signUp while the SMTP server is down');
      // the delivery fails (connection refused) and is queued again, not lost
      let row = '';
      for (let i = 0; i < 200 && !/^queued\|[1-9]/.test(row); i++) {
        row = await sql(server, `select status || '|' || attempts || '|' || coalesce(last_error, '')
                                 from jobs.mail_outbox where recipient = ${lit(email)}`);
        if (!/^queued\|[1-9]/.test(row)) await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(row, /^queued\|[1-9]\d*\|.*SMTP delivery failed/);
      // the job names the row; the message with its token is not in jobs.jobs
      const payload = await sql(server, `select j.payload::text from jobs.jobs j join jobs.mail_outbox m
                                         on (j.payload ->> 'mail_id')::bigint = m.id where m.recipient = ${lit(email)}`);
      assert.match(payload, /^\{"mail_id": \d+\}$/);
      await server.stop({ removeData: false });

      late = await startSmtpSink({ port });
      server = await startServer({ ...env, CAMPAIGND_DATA_DIR: server.dataDir });
      const mail = await late.waitFor(email);
      const { code } = linkAndCode(mail);
      assert.match(code, /^\d{6}$/);
      // delivered once: the row is final and scrubbed, no second copy follows
      let status = '';
      for (let i = 0; i < 100 && status !== 'sent|scrubbed'; i++) {
        status = await sql(server, `select status || '|' || case when body_text is null and subject is null
                                    then 'scrubbed' else 'kept' end from jobs.mail_outbox where recipient = ${lit(email)}`);
        if (status !== 'sent|scrubbed') await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(status, 'sent|scrubbed');
      const jobs = await sql(server, `select count(*) from jobs.jobs where kind = 'mail.send' and status in ('pending', 'running')`);
      assert.equal(jobs, '0');
      assert.equal(late.count(email), 1);
      // and the code it carries still works
      const v = await client(server).auth.verifyOtp({ email, token: code, type: 'signup' });
      noError(v.error, 'verifyOtp with the delivered code');
    } finally {
      await server.stop();
      await late?.stop();
    }
  });
});
