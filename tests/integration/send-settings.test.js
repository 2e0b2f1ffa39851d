// An admin's provider settings take precedence at run time (issue 12,
// "Configuration"; migration 039, src/api/provider_settings.c): the environment
// points SMTP_URL at one sink, an admin stores another through supabase-js,
// and the next campaign goes to the admin's; removing it brings the
// environment's back without a restart. A user or viewer can neither set nor
// read the settings, and the answers show the secret masked only.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  startServer, client, signIn, request, uniqueEmail, sql, lit, noError, freePort, PASSWORD, eventually,
} from './helpers.js';
import { startSmtpSink } from './mail-sink.js';
import { startFakeTwilio } from './fake-twilio.js';

let server;
let envSink;
let adminSink;
let twilio;
const SID = 'AC' + '1'.repeat(32);
const TOKEN = 'admin-stored-twilio-token-0123456789';
const users = {}; // name -> {id, token, client}
const tag = crypto.randomBytes(3).toString('hex');

before(async () => {
  envSink = await startSmtpSink();
  adminSink = await startSmtpSink();
  twilio = await startFakeTwilio({ accountSid: SID, authToken: TOKEN });
  const port = await freePort();
  server = await startServer({
    PORT: String(port),
    API_EXTERNAL_URL: `http://127.0.0.1:${port}`,
    CAMPAIGND_ENCRYPTION_KEY: 'send-settings-test-key-0123456789',
    SMTP_URL: envSink.url, // and no TWILIO_* at all
    EMAIL_FROM: 'env-sender@example.org',
    EMAIL_RATE_PER_SECOND: '0',
    SMS_RATE_PER_SECOND: '0',
    SEND_SCHEDULER_INTERVAL: '1',
    SEND_RETRY_SECONDS: '1',
    JOB_POLL_INTERVAL: '1',
  });
  const service = client(server, server.serviceKey);
  for (const [name, role] of [['admin', 'admin'], ['alice', 'user'], ['viewer', 'viewer']]) {
    const email = uniqueEmail(name);
    const { error } = await service.auth.admin.createUser({ email, password: PASSWORD, email_confirm: true, app_metadata: { role } });
    noError(error, `createUser(${name})`);
    const s = await signIn(server, email);
    users[name] = { id: s.user.id, token: s.session.access_token, client: s.client };
  }
  await sql(server, `update public.app_settings set postal_address = ${lit('Acme Inc., 1 Main St, Springfield')}`);
});

after(async () => {
  await server?.stop();
  await envSink?.stop();
  await adminSink?.stop();
  await twilio?.stop();
});

/** Alice's e-mail campaign to one new contact, sent; resolves when it is sent. */
async function sendCampaign(to) {
  const c = users.alice.client;
  noError((await c.from('contacts').insert({ email: to, first_name: 'Ann', attributes: {} })).error, 'contact');
  const { data: camp, error } = await c
    .from('campaigns')
    .insert({ name: `s-${tag}-${crypto.randomBytes(3).toString('hex')}`, type: 'email', subject: 'Hello', content: '<p>Hi {{first_name}}</p>' })
    .select()
    .single();
  noError(error, 'campaign');
  const r = await request(`${server.url}/api/campaigns/${camp.id}/send`, {
    method: 'POST', headers: { apikey: server.anonKey, Authorization: `Bearer ${users.alice.token}` },
  });
  assert.equal(r.status, 200, r.text);
  await eventually(async () => (await sql(server, `select status from public.campaigns where id = ${lit(camp.id)}`)) === 'sent',
    'the campaign being sent');
  return camp.id;
}

describe('provider settings an admin stores', () => {
  let mask;

  it('a user and a viewer can neither set nor read them', async () => {
    for (const who of ['alice', 'viewer']) {
      const c = users[who].client;
      const set = await c.rpc('set_app_secret', { name: 'smtp_url', value: 'smtp://127.0.0.1:1' });
      assert.ok(set.error, `${who} set SMTP_URL`);
      assert.equal(set.error.code, '42501');
      const upd = await c.from('app_settings').update({ email_from: 'evil@example.org' }).not('id', 'is', null).select('id');
      assert.deepEqual(upd.data ?? [], [], `${who} changed EMAIL_FROM`);
      const read = await c.from('app_settings').select('*');
      assert.deepEqual(read.data ?? [], [], `${who} read app_settings`);
      assert.ok((await c.rpc('provider_settings')).error, `${who} read the clear settings`);
      assert.ok((await c.rpc('get_app_secret', { name: 'smtp_url' })).error, `${who} read SMTP_URL`);
    }
    const anon = await client(server).rpc('set_app_secret', { name: 'smtp_url', value: 'smtp://127.0.0.1:1' });
    assert.ok(anon.error, 'anon set SMTP_URL');
    assert.equal(await sql(server, 'select count(*) from public.app_secrets'), '0');
    assert.equal(await sql(server, 'select email_from is null from public.app_settings'), 't');
  });

  it('an admin sets SMTP_URL (answered masked) and EMAIL_FROM through supabase-js', async () => {
    const c = users.admin.client;
    const set = await c.rpc('set_app_secret', { name: 'smtp_url', value: adminSink.url });
    noError(set.error, 'set_app_secret(smtp_url)');
    mask = set.data;
    assert.equal(mask, `****${adminSink.url.slice(-4)}`);
    const upd = await c.from('app_settings').update({ email_from: 'admin-sender@example.org' }).not('id', 'is', null).select('email_from');
    noError(upd.error, 'update email_from');
    assert.equal(upd.data[0].email_from, 'admin-sender@example.org');
    const bad = await c.from('app_settings').update({ email_from: 'x@example.org\r\nBcc: all@example.org' }).not('id', 'is', null);
    assert.ok(bad.error, 'a sender with a line break was accepted');
    const direct = await c.from('app_settings').update({ smtp_url: '****0000' }).not('id', 'is', null);
    assert.ok(direct.error, 'the masked column was written directly');
    const { data, error } = await c.from('app_settings').select('*').single();
    noError(error, 'read app_settings');
    assert.equal(data.smtp_url, mask);
    assert.ok(!JSON.stringify(data).includes(adminSink.url), 'the clear SMTP_URL is in the answer');
  });

  it("the next campaign goes through the admin's SMTP server, from the admin's sender", async () => {
    const to = `ann-${tag}@example.com`;
    await sendCampaign(to);
    const mail = await adminSink.waitFor(to);
    assert.match(mail.from, /admin-sender@example\.org/);
    assert.equal(envSink.count(to), 0, "the environment's SMTP server got the campaign");
    assert.ok(!server.log().includes(adminSink.url), 'the stored SMTP_URL is in the log');
  });

  it("removing them brings the environment's values back, without a restart", async () => {
    const c = users.admin.client;
    const clear = await c.rpc('set_app_secret', { name: 'smtp_url', value: '' });
    noError(clear.error, 'clear smtp_url');
    assert.equal(clear.data, null);
    noError((await c.from('app_settings').update({ email_from: null }).not('id', 'is', null)).error, 'clear email_from');
    const to = `bob-${tag}@example.com`;
    await sendCampaign(to);
    const mail = await envSink.waitFor(to);
    assert.match(mail.from, /env-sender@example\.org/);
    assert.equal(adminSink.count(to), 0, "the admin's old SMTP server got the campaign");
  });
});

// An Etc/GMT zone where it is now about `hour` o'clock (SMS quiet hours).
function zoneAt(hour) {
  let off = hour - new Date().getUTCHours();
  if (off > 14) off -= 24;
  if (off < -12) off += 24;
  return off === 0 ? 'UTC' : `Etc/GMT${off > 0 ? '-' : '+'}${Math.abs(off)}`;
}

describe('Twilio settings an admin stores', () => {
  it('turn 409 provider_not_configured into SMS through them, and the webhooks verify with the stored token', async () => {
    await sql(server, `update public.app_settings set timezone = ${lit(zoneAt(13))}`);
    const phone = '+15550300001';
    const c = users.alice.client;
    noError((await c.from('contacts').insert({ phone, first_name: 'Sam', attributes: {} })).error, 'contact');
    await sql(server, `insert into public.sms_consent (phone_number, consent_given, consent_source) values (${lit(phone)}, true, 'web_form')`);
    const { data: camp, error } = await c.from('campaigns').insert({ name: `sms-${tag}`, type: 'sms', content: 'Hi {{first_name}}' }).select().single();
    noError(error, 'sms campaign');
    const send = () => request(`${server.url}/api/campaigns/${camp.id}/send`, {
      method: 'POST', headers: { apikey: server.anonKey, Authorization: `Bearer ${users.alice.token}` },
    });
    const before = await send();
    assert.equal(before.status, 409, before.text);
    assert.equal(before.json.code, 'provider_not_configured');

    const a = users.admin.client;
    for (const [name, value] of [['twilio_account_sid', SID], ['twilio_auth_token', TOKEN]]) {
      const set = await a.rpc('set_app_secret', { name, value });
      noError(set.error, `set_app_secret(${name})`);
      assert.equal(set.data, `****${value.slice(-4)}`);
    }
    const upd = await a.from('app_settings').update({ twilio_from: '+15550001111', twilio_api_base: twilio.url }).not('id', 'is', null);
    noError(upd.error, 'twilio_from, twilio_api_base');
    const shown = await a.from('app_settings').select('twilio_auth_token, twilio_account_sid').single();
    assert.deepEqual(shown.data, { twilio_auth_token: `****${TOKEN.slice(-4)}`, twilio_account_sid: `****${SID.slice(-4)}` });

    const r = await send();
    assert.equal(r.status, 200, r.text);
    await eventually(() => twilio.messages.length >= 1, 'the SMS at the admin\'s Twilio');
    assert.equal(twilio.messages[0].params.To, phone);
    assert.equal(twilio.messages[0].params.From, '+15550001111', "the admin's TWILIO_FROM");
    await twilio.callbacksDone();
    await eventually(async () => (await sql(server, `select status from public.sms_messages where recipient = ${lit(phone)}`)) === 'delivered',
      'the status callback, signed with the stored token, being applied');
    assert.ok(!server.log().includes(TOKEN), 'the stored token is in the log');
  });
});
