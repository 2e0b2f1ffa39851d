// The provider webhooks (issue 12) through the real binary: Twilio status
// callbacks and inbound SMS signed as Twilio signs them (fake-twilio.js),
// SendGrid's Event Webhook signed with an ECDSA P-256 key made by node:crypto
// (fake-sendgrid.js). Attacks: forged, missing and re-targeted signatures
// (403, nothing changes), replayed events (no double count), status
// regressions (a late `sent` after `delivered`), an admin's stored auth token
// taking precedence over TWILIO_AUTH_TOKEN.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, freePort, signUpUser, sql, lit, request, client, noError, eventually } from './helpers.js';
import { postTwilioWebhook, twilioSignature, startFakeTwilio, zoneAt } from './fake-twilio.js';
import { makeEventKey, postEvents, signEvents, startFakeSendGrid } from './fake-sendgrid.js';

const TOKEN = 'twilio-test-token-0123456789abcdef';
const SID = 'AC' + '0'.repeat(32);
const key = makeEventKey();
let server, base, campaignSms, campaignMail, owner, twilio;

// The first line of a psql answer (an INSERT ... RETURNING also prints its tag).
const one = async (q) => (await sql(server, q)).split('\n')[0];
const smsRow = async (id) =>
  (await sql(server, `select status || '|' || coalesce(message_sid, '') from public.sms_messages where id = ${lit(id)}`)).split('|');

before(async () => {
  twilio = await startFakeTwilio({ accountSid: SID, authToken: TOKEN });
  const port = String(await freePort());
  base = `http://127.0.0.1:${port}`;
  server = await startServer({
    PORT: port,
    API_EXTERNAL_URL: base,
    TWILIO_ACCOUNT_SID: SID,
    TWILIO_AUTH_TOKEN: TOKEN,
    SENDGRID_WEBHOOK_PUBLIC_KEY: key.publicKey,
    SMS_HELP_TEXT: 'Acme: reply STOP to stop.',
    TWILIO_API_BASE: twilio.url,
    TWILIO_FROM: '+15550009999',
    SMS_RATE_PER_SECOND: '0',
    JOB_POLL_INTERVAL: '1',
    SEND_RETRY_SECONDS: '1',
  });
  owner = await signUpUser(server);
  campaignSms = await one(`insert into public.campaigns (user_id, name, type) values (${lit(owner.user.id)}, 'sms', 'sms') returning id`);
  campaignMail = await one(`insert into public.campaigns (user_id, name, type) values (${lit(owner.user.id)}, 'mail', 'email') returning id`);
});
after(async () => {
  await server?.stop();
  await twilio?.stop();
});

async function newSms(recipient, status = 'sending') {
  return one(`insert into public.sms_messages (campaign_id, recipient, message, status)
                      values (${lit(campaignSms)}, ${lit(recipient)}, 'hello', ${lit(status)}) returning id`);
}

describe('Twilio status callbacks', () => {
  it('apply forward only; a late sent never overwrites delivered; replays are harmless', async () => {
    const id = await newSms('+15550100001');
    const url = `${base}/webhooks/twilio/status?m=${id}`;
    const params = (status) => ({ AccountSid: SID, MessageSid: 'SM' + 'a'.repeat(32), MessageStatus: status, To: '+15550100001' });
    let r = await postTwilioWebhook(url, TOKEN, params('sent'));
    assert.equal(r.status, 200, r.text);
    assert.equal(JSON.parse(r.text).result, 'applied');
    r = await postTwilioWebhook(url, TOKEN, params('delivered'));
    assert.equal(JSON.parse(r.text).result, 'applied');
    r = await postTwilioWebhook(url, TOKEN, params('delivered'));
    assert.equal(JSON.parse(r.text).result, 'ignored', 'a replayed callback changes nothing');
    r = await postTwilioWebhook(url, TOKEN, params('sent'));
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.text).result, 'ignored');
    assert.deepEqual(await smsRow(id), ['delivered', 'SM' + 'a'.repeat(32)]);
  });

  it('refuse forged, missing and re-targeted signatures with 403 and change nothing', async () => {
    const id = await newSms('+15550100002');
    const other = await newSms('+15550100003');
    const url = `${base}/webhooks/twilio/status?m=${id}`;
    const params = { MessageSid: 'SM' + 'b'.repeat(32), MessageStatus: 'delivered' };
    const cases = [
      { signature: 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=' },
      { signature: '' },
      { signature: twilioSignature('wrong-token', url, params) },
      // signed for our message, replayed against another one
      { url: `${base}/webhooks/twilio/status?m=${other}`, signature: twilioSignature(TOKEN, url, params) },
      // signed without the status, then the status added
      { extra: { ErrorCode: '30003' }, signature: twilioSignature(TOKEN, url, params) },
    ];
    for (const c of cases) {
      const r = await postTwilioWebhook(c.url ?? url, TOKEN, { ...params, ...(c.extra ?? {}) }, { signature: c.signature });
      assert.equal(r.status, 403, `${JSON.stringify(c)}: ${r.text}`);
      assert.equal(JSON.parse(r.text).code, 'invalid_signature');
    }
    assert.deepEqual(await smsRow(id), ['sending', '']);
    assert.deepEqual(await smsRow(other), ['sending', '']);
    // no signature header at all, and a body that is not a form
    let r = await request(url, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'MessageSid=SM1&MessageStatus=delivered' });
    assert.equal(r.status, 403);
    r = await request(url, { method: 'POST', body: { MessageSid: 'SM1' } });
    assert.equal(r.status, 415);
    assert.equal(r.json.code, 'unsupported_media_type');
  });

  it('answer 400 naming a missing field of a well-signed callback', async () => {
    const url = `${base}/webhooks/twilio/status`;
    const r = await postTwilioWebhook(url, TOKEN, { MessageSid: 'SM' + 'c'.repeat(32) });
    assert.equal(r.status, 400, r.text);
    assert.match(JSON.parse(r.text).details, /MessageStatus/);
    const bad = await postTwilioWebhook(`${base}/webhooks/twilio/status?m=not-a-uuid`, TOKEN, { MessageSid: 'SM1', MessageStatus: 'sent' });
    assert.equal(bad.status, 400);
  });
});

describe('Twilio inbound SMS', () => {
  const inbound = (sid, from, body) =>
    postTwilioWebhook(`${base}/webhooks/twilio/inbound`, TOKEN, {
      AccountSid: SID, MessageSid: sid, SmsSid: sid, From: from, To: '+15559990000', Body: body, NumMedia: '0',
    });
  const consent = async (phone) => sql(server, `select consent_given::text || '|' || (opt_out_at is not null)::text from public.sms_consent where phone_number = ${lit(phone)}`);

  it('STOP words in any case with punctuation opt out, once per MessageSid, answered in TwiML', async () => {
    const phone = '+15550100010';
    let r = await inbound('SM' + '1'.repeat(32), phone, '  Stop!! ');
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers['content-type'], /^text\/xml/);
    assert.match(r.text, /^<\?xml version="1.0" encoding="UTF-8"\?><Response><Message>You are unsubscribed/);
    assert.equal(await consent(phone), 'false|true');
    r = await inbound('SM' + '1'.repeat(32), phone, '  Stop!! ');
    assert.equal(r.status, 200, 'a redelivered webhook is answered the same way');
    const audits = await sql(server, `select count(*) from public.audit_logs a join public.sms_consent c on c.id = a.resource_id
                                      where a.action = 'opt_out' and c.phone_number = ${lit(phone)}`);
    assert.equal(audits, '1', 'one opt-out recorded, not two');
    for (const [i, word] of ['opt out', 'UNSUBSCRIBE', 'quit.', 'Cancel', 'end', 'revoke', 'OptOut', 'STOPALL'].entries()) {
      const p = `+1555010002${i}`;
      const rr = await inbound(`SM${String(i).padStart(32, '2')}`, p, word);
      assert.equal(rr.status, 200);
      assert.equal(await consent(p), 'false|true', `${word} opts out`);
    }
    r = await inbound('SM' + '3'.repeat(32), '+15550100030', 'please stop sending');
    assert.equal(r.text, '<?xml version="1.0" encoding="UTF-8"?><Response/>', 'a sentence is not a keyword');
    assert.equal(await consent('+15550100030'), '', 'and changes no consent');
  });

  it('START opts back in with new, audited evidence; HELP answers the help text', async () => {
    const phone = '+15550100040';
    await inbound('SM' + '4'.repeat(32), phone, 'STOP');
    await sql(server, `update public.sms_consent set opt_out_at = opt_out_at - interval '1 second' where phone_number = ${lit(phone)}`);
    let r = await inbound('SM' + '5'.repeat(32), phone, 'Start');
    assert.equal(r.status, 200, r.text);
    assert.match(r.text, /subscribed again/);
    assert.equal(await consent(phone), 'true|true');
    const evidence = await sql(server, `select a.metadata ->> 'evidence' from public.audit_logs a join public.sms_consent c on c.id = a.resource_id
                                        where a.action = 'consent' and c.phone_number = ${lit(phone)}`);
    assert.match(evidence, /^START reply SM5+ from \+15550100040/);
    r = await inbound('SM' + '6'.repeat(32), phone, 'help');
    assert.equal(r.text, '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Acme: reply STOP to stop.</Message></Response>');
  });

  it('refuse an unsigned STOP (403): nobody can opt a number out for someone else', async () => {
    const phone = '+15550100050';
    const r = await postTwilioWebhook(`${base}/webhooks/twilio/inbound`, TOKEN,
      { MessageSid: 'SM' + '7'.repeat(32), From: phone, Body: 'STOP' }, { signature: twilioSignature('guess', `${base}/webhooks/twilio/inbound`, {}) });
    assert.equal(r.status, 403);
    assert.equal(await consent(phone), '');
  });
});

describe('SendGrid Event Webhook', () => {
  const hook = () => `${base}/webhooks/sendgrid/events`;
  let msg;
  before(async () => {
    msg = await one(`insert into public.email_messages (campaign_id, recipient, subject, status)
                             values (${lit(campaignMail)}, 'ann@example.test', 's', 'sent') returning id`);
  });
  const ev = (id, event, extra = {}) => ({
    email: 'ann@example.test', timestamp: 1700000000, event, sg_event_id: id, sg_message_id: 'x.filter0001',
    campaignd_message_id: msg, category: ['spring'], ...extra,
  });

  it('apply delivered, open and click once; a replayed batch counts nothing twice', async () => {
    const batch = [ev('ev-1', 'processed'), ev('ev-2', 'delivered'), ev('ev-3', 'open'),
      ev('ev-4', 'click', { url: 'https://example.test/offer', timestamp: 1700000100 })];
    let r = await postEvents(hook(), key.privateKey, batch);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { applied: 4, duplicates: 0 });
    r = await postEvents(hook(), key.privateKey, batch);
    assert.deepEqual(r.json, { applied: 0, duplicates: 4 });
    const row = await sql(server, `select status || '|' || (delivered_at is not null) || '|' || (opened_at is not null) || '|' ||
                                   (select count(*) from public.email_clicks c where c.message_id = m.id)
                                   from public.email_messages m where id = ${lit(msg)}`);
    assert.equal(row, 'clicked|true|true|1');
    // a late delivered is recorded but moves nothing back
    r = await postEvents(hook(), key.privateKey, [ev('ev-5', 'delivered')]);
    assert.deepEqual(r.json, { applied: 1, duplicates: 0 });
    assert.equal(await sql(server, `select status from public.email_messages where id = ${lit(msg)}`), 'clicked');
  });

  it('suppress on a hard bounce and on a spam report', async () => {
    const bob = await one(`insert into public.email_messages (campaign_id, recipient, subject, status)
                                   values (${lit(campaignMail)}, 'bob@example.test', 's', 'sent') returning id`);
    let r = await postEvents(hook(), key.privateKey, [{ email: 'bob@example.test', timestamp: 1700000200, event: 'bounce', type: 'bounce',
      reason: '550 5.1.1 unknown user', sg_event_id: 'ev-b1', campaignd_message_id: bob }]);
    assert.equal(r.status, 200, r.text);
    assert.equal(await sql(server, `select reason from public.suppressions where channel = 'email' and address = 'bob@example.test'`), 'hard_bounce');
    r = await postEvents(hook(), key.privateKey, [ev('ev-s1', 'spamreport')]);
    assert.equal(r.status, 200);
    assert.equal(await sql(server, `select reason from public.suppressions where channel = 'email' and address = 'ann@example.test'`), 'complaint');
    assert.equal(await sql(server, `select subscribed from public.email_subscriptions where email = 'ann@example.test'`), 'f');
  });

  it('refuse forged, tampered and unsigned posts with 403; malformed signed batches with 400', async () => {
    const body = JSON.stringify([ev('ev-f1', 'unsubscribe', { email: 'carol@example.test' })]);
    const other = makeEventKey();
    const attempts = [
      { headers: signEvents(other.privateKey, body) },                                    // another key
      { headers: { 'X-Twilio-Email-Event-Webhook-Signature': '' } },                     // empty
      { headers: { 'X-Twilio-Email-Event-Webhook-Timestamp': '1' } },                    // timestamp changed
      { headers: { 'X-Twilio-Email-Event-Webhook-Signature': signEvents(key.privateKey, body + ' ')['X-Twilio-Email-Event-Webhook-Signature'] } },
    ];
    for (const a of attempts) {
      const r = await postEvents(hook(), key.privateKey, body, a);
      assert.equal(r.status, 403, `${JSON.stringify(a.headers)}: ${r.text}`);
      assert.equal(r.json.code, 'invalid_signature');
    }
    // the body changed after signing
    const sig = signEvents(key.privateKey, body);
    const r = await request(hook(), { method: 'POST', headers: sig, body: body.replace('unsubscribe', 'spamreport') });
    assert.equal(r.status, 403);
    assert.equal(await sql(server, `select count(*) from public.suppressions where address = 'carol@example.test'`), '0');
    assert.equal(await sql(server, `select count(*) from public.sendgrid_events where sg_event_id = 'ev-f1'`), '0');
    for (const bad of ['{}', '[]', '[{"event":"open"}]', 'not json']) {
      const rr = await postEvents(hook(), key.privateKey, bad);
      assert.equal(rr.status, 400, bad);
      assert.equal(rr.json.code, 'invalid_body');
    }
  });
});

describe('settings', () => {
  it("an admin's stored Twilio auth token takes precedence over TWILIO_AUTH_TOKEN", async () => {
    const service = client(server, server.serviceKey);
    const stored = 'stored-token-9876543210';
    const set = await service.rpc('set_app_secret', { name: 'twilio_auth_token', value: stored });
    noError(set.error, 'set_app_secret');
    try {
      const id = await newSms('+15550100060');
      const url = `${base}/webhooks/twilio/status?m=${id}`;
      const params = { MessageSid: 'SM' + 'd'.repeat(32), MessageStatus: 'sent' };
      assert.equal((await postTwilioWebhook(url, TOKEN, params)).status, 403, 'the environment token no longer verifies');
      const r = await postTwilioWebhook(url, stored, params);
      assert.equal(r.status, 200, r.text);
    } finally {
      noError((await service.rpc('set_app_secret', { name: 'twilio_auth_token', value: '' })).error, 'clear');
    }
  });
});

describe('an SMS campaign through Twilio', () => {
  it('sends in the recipients\' waking hours with the STOP footer on the first message, then follows the callbacks', async () => {
    const day = zoneAt(13), night = zoneAt(3);
    await sql(server, `update public.app_settings set timezone = ${lit(day)}`);
    const phones = { ann: '+15550200001', bob: '+15550200002', cid: '+15550200003' };
    for (const [name, phone, tz] of [['Ann', phones.ann, null], ['Bob', phones.bob, night], ['Cid', phones.cid, day]]) {
      await sql(server, `insert into public.contacts (user_id, phone, first_name, attributes)
                         values (${lit(owner.user.id)}, ${lit(phone)}, ${lit(name)}, ${lit(JSON.stringify(tz ? { timezone: tz } : {}))}::jsonb)`);
      await sql(server, `insert into public.sms_consent (phone_number, consent_given, consent_source) values (${lit(phone)}, true, 'web_form')`);
    }
    const send = async (content) => {
      const id = await one(`insert into public.campaigns (user_id, name, type, content) values (${lit(owner.user.id)}, 'sms-${Date.now()}', 'sms', ${lit(content)}) returning id`);
      const r = await request(`${server.url}/api/campaigns/${id}/send`, {
        method: 'POST', headers: { apikey: server.anonKey, Authorization: `Bearer ${owner.session.access_token}` } });
      assert.ok(r.status === 200 || r.status === 202, `send: ${r.status} ${r.text}`);
      return id;
    };
    const first = await send('Hi {{first_name | "there"}} & co');
    await eventually(() => twilio.messages.length >= 2, 'two SMS at Twilio');
    await twilio.callbacksDone();
    const byTo = Object.fromEntries(twilio.messages.map((m) => [m.params.To, m.params]));
    assert.equal(byTo[phones.ann].Body, 'Hi Ann & co\nReply STOP to opt out', 'raw values, the footer on a first message');
    assert.equal(byTo[phones.ann].From, '+15550009999');
    assert.match(byTo[phones.ann].StatusCallback, new RegExp(`^${base}/webhooks/twilio/status\\?m=[0-9a-f-]{36}$`));
    assert.equal(byTo[phones.bob], undefined, 'Bob is in his night: his message waits');
    const rows = async (cid) => sql(server, `select recipient || ':' || status || ':' || segments || ':' || coalesce(message_sid, '-')
                                             from public.sms_messages where campaign_id = ${lit(cid)} order by recipient`);
    await eventually(async () => (await rows(first)).split('\n').filter((l) => l.includes(':delivered:')).length === 2,
      'the signed callbacks to deliver both');
    const bob = await sql(server, `select status || ' ' || (next_attempt_at > now() + interval '3 hours')
                                   from public.sms_messages where campaign_id = ${lit(first)} and recipient = ${lit(phones.bob)}`);
    assert.equal(bob, 'queued true', 'Bob\'s message waits (queued, not leased) for 08:00 in his time zone');
    assert.equal(await sql(server, `select status from public.campaigns where id = ${lit(first)}`), 'sending');

    // a second campaign: numbers that already got a message get no footer
    const n = twilio.messages.length;
    await send('Second for {{first_name}}');
    await eventually(() => twilio.messages.length >= n + 2, 'the second campaign at Twilio');
    const again = twilio.messages.slice(n).find((m) => m.params.To === phones.ann);
    assert.equal(again.params.Body, 'Second for Ann');
  });
});

describe('an e-mail campaign through SendGrid', () => {
  let sg, mailServer, user;
  before(async () => {
    sg = await startFakeSendGrid({ apiKey: 'SG.test-key' });
    const port = String(await freePort());
    mailServer = await startServer({
      PORT: port,
      API_EXTERNAL_URL: `http://127.0.0.1:${port}`,
      EMAIL_PROVIDER: 'sendgrid',
      SENDGRID_API_KEY: 'SG.test-key',
      SENDGRID_API_BASE: sg.url,
      SENDGRID_WEBHOOK_PUBLIC_KEY: key.publicKey,
      EMAIL_FROM: 'news@example.org',
      EMAIL_RATE_PER_SECOND: '0',
      JOB_POLL_INTERVAL: '1',
    });
    user = await signUpUser(mailServer);
  });
  after(async () => {
    await mailServer?.stop();
    await sg?.stop();
  });

  it('hands the messages to Mail Send with our ids in custom_args, then applies the signed events', async () => {
    const q = async (t) => (await sql(mailServer, t)).split('\n')[0];
    await sql(mailServer, `update public.app_settings set postal_address = '1 Main St, Springfield'`);
    for (const [email, name] of [['dee@example.test', 'Dee'], ['eve@example.test', 'Eve']])
      await sql(mailServer, `insert into public.contacts (user_id, email, first_name) values (${lit(user.user.id)}, ${lit(email)}, ${lit(name)})`);
    const id = await q(`insert into public.campaigns (user_id, name, type, subject, content)
                        values (${lit(user.user.id)}, 'sg', 'email', 'Hello {{first_name}}', '<p>Hi {{first_name}}</p>') returning id`);
    const r = await request(`${mailServer.url}/api/campaigns/${id}/send`, {
      method: 'POST', headers: { apikey: mailServer.anonKey, Authorization: `Bearer ${user.session.access_token}` } });
    assert.ok(r.status === 200 || r.status === 202, `send: ${r.status} ${r.text}`);
    await eventually(() => sg.requests.reduce((n, x) => n + x.body.personalizations.length, 0) >= 2, 'two personalizations at SendGrid');
    const ps = sg.requests.flatMap((x) => x.body.personalizations.map((p) => ({ p, body: x.body })));
    const dee = ps.find((x) => x.p.to[0].email === 'dee@example.test');
    assert.equal(dee.body.subject, 'Hello Dee');
    assert.equal(dee.body.from.email, 'news@example.org');
    assert.equal(dee.body.content[0].type, 'text/plain');
    assert.match(dee.p.headers['List-Unsubscribe'], /^<http:\/\/127\.0\.0\.1:\d+\/u\/.+>$/);
    const msg = dee.p.custom_args.campaignd_message_id;
    assert.equal(await q(`select recipient from public.email_messages where id = ${lit(msg)}`), 'dee@example.test');
    await eventually(async () => (await q(`select status from public.email_messages where id = ${lit(msg)}`)) === 'sent', 'Dee sent');
    const ev = await postEvents(`${mailServer.url}/webhooks/sendgrid/events`, key.privateKey, [
      { email: 'dee@example.test', timestamp: Math.floor(Date.now() / 1000), event: 'delivered', sg_event_id: 'sg-e2e-1', campaignd_message_id: msg }]);
    assert.equal(ev.status, 200, ev.text);
    assert.equal(await q(`select status from public.email_messages where id = ${lit(msg)}`), 'delivered');
  });
});

describe('SendGrid and SEND_IN_FLIGHT', () => {
  // One step puts a group in flight and the provider call carries it (a
  // request per message here: each body has its own unsubscribe link). At
  // most SEND_IN_FLIGHT are in flight at once, so that a crash leaves at most
  // SEND_WORKERS x SEND_IN_FLIGHT messages unknown, as with SMTP and Twilio,
  // however many a worker claims at once (SEND_BATCH_SIZE).
  it('holds at most SEND_IN_FLIGHT messages in flight, whatever SEND_BATCH_SIZE says', async () => {
    const sg = await startFakeSendGrid({ apiKey: 'SG.test-key' });
    const port = String(await freePort());
    const s = await startServer({
      PORT: port, API_EXTERNAL_URL: `http://127.0.0.1:${port}`, EMAIL_PROVIDER: 'sendgrid',
      SENDGRID_API_KEY: 'SG.test-key', SENDGRID_API_BASE: sg.url, EMAIL_FROM: 'news@example.org',
      EMAIL_RATE_PER_SECOND: '0', SEND_IN_FLIGHT: '3', SEND_BATCH_SIZE: '100', SEND_WORKERS: '1', JOB_POLL_INTERVAL: '1',
    });
    try {
      const u = await signUpUser(s);
      await sql(s, `update public.app_settings set postal_address = '1 Main St, Springfield';
        insert into public.contacts (user_id, email) select ${lit(u.user.id)}, 'p' || g || '@example.test' from generate_series(1, 7) g`);
      const id = (await sql(s, `insert into public.campaigns (user_id, name, type, subject, content)
        values (${lit(u.user.id)}, 'sg-if', 'email', 'News', '<p>News</p>') returning id`)).split('\n')[0];
      sg.pause();
      const r = await request(`${s.url}/api/campaigns/${id}/send`, {
        method: 'POST', headers: { apikey: s.anonKey, Authorization: `Bearer ${u.session.access_token}` } });
      assert.ok(r.status === 200 || r.status === 202, `send: ${r.status} ${r.text}`);
      await eventually(() => sg.requests.length >= 1, 'the first request at SendGrid');
      // the worker waits for SendGrid's answer: what it holds in flight now
      assert.equal(await sql(s, `select coalesce(sum(cardinality(ids)), 0) from sending.holds
        where campaign_id = ${lit(id)} and in_flight`), '3', 'one group of SEND_IN_FLIGHT in flight, not the batch of 7');
      sg.resume();
      await eventually(async () => {
        sg.resume(); // the requests of the next groups
        return (await sql(s, `select status from public.campaigns where id = ${lit(id)}`)) === 'sent';
      }, 'the campaign sent');
      const to = sg.requests.flatMap((x) => x.body.personalizations.map((p) => p.to[0].email)).sort();
      assert.deepEqual(to, Array.from({ length: 7 }, (_, i) => `p${i + 1}@example.test`).sort(), 'every message once');
    } finally {
      sg.resume();
      await s.stop();
      await sg.stop();
    }
  });
});

describe('a rate limit and the messages in flight', () => {
  // A group's step marks its messages in flight; a worker that then waited
  // for the rate before handing them over (to claim the next batch ahead)
  // would leave them `unknown`, never sent, if it died meanwhile. Under a
  // rate, the next batch is claimed after the last group went, not before.
  it('hands a group over before it waits for the rate to claim the next batch', async () => {
    let release;
    let atTwilio = null;
    const twilio = await startFakeTwilio({
      accountSid: 'ACrate', authToken: 'rate-token', callbacks: [],
      hold: async () => {
        if (atTwilio) return; // the first create request only
        await new Promise((r) => { atTwilio = r; release = r; });
      },
    });
    const port = String(await freePort());
    const s = await startServer({
      PORT: port, API_EXTERNAL_URL: `http://127.0.0.1:${port}`, TWILIO_ACCOUNT_SID: 'ACrate', TWILIO_AUTH_TOKEN: 'rate-token',
      TWILIO_API_BASE: twilio.url, TWILIO_FROM: '+15550009997', SMS_RATE_PER_SECOND: '2', SEND_BATCH_SIZE: '2',
      SEND_WORKERS: '1', JOB_POLL_INTERVAL: '1',
    });
    try {
      const u = await signUpUser(s);
      await sql(s, `update public.app_settings set timezone = ${lit(zoneAt(13))};
        insert into public.contacts (user_id, phone) select ${lit(u.user.id)}, '+1555030000' || g from generate_series(1, 6) g;
        insert into public.sms_consent (phone_number, consent_given, consent_source) select '+1555030000' || g, true, 'web_form' from generate_series(1, 6) g`);
      const id = (await sql(s, `insert into public.campaigns (user_id, name, type, content)
        values (${lit(u.user.id)}, 'rated-sms', 'sms', 'News') returning id`)).split('\n')[0];
      const r = await request(`${s.url}/api/campaigns/${id}/send`, {
        method: 'POST', headers: { apikey: s.anonKey, Authorization: `Bearer ${u.session.access_token}` } });
      assert.ok(r.status === 200 || r.status === 202, `send: ${r.status} ${r.text}`);
      await eventually(() => atTwilio !== null, 'the first request at Twilio');
      // the worker waits for Twilio's answer to the first batch's group: the
      // next batch (which the rate lets go a second after the first) is not
      // claimed yet, so nothing waited between the step and the hand-over
      assert.equal(await sql(s, `select coalesce(sum(cardinality(ids)), 0) from sending.holds
        where campaign_id = ${lit(id)} and not in_flight`), '0', 'no message claimed ahead while the rate says wait');
      release();
      await eventually(async () => (await sql(s, `select status from public.campaigns where id = ${lit(id)}`)) === 'sent', 'the campaign sent');
      const to = twilio.messages.map((m) => m.params.To).sort();
      assert.deepEqual(to, Array.from({ length: 6 }, (_, i) => `+1555030000${i + 1}`), 'every message once');
    } finally {
      release?.();
      await s.stop();
      await twilio.stop();
    }
  });

  // A campaign of 2,500 SMS recipients sent through a fake Twilio that holds
  // its first answer until release(); workers: SEND_WORKERS.
  async function heldSlicedSend(workers) {
    const held = { at: null, release: null };
    const twilio = await startFakeTwilio({
      accountSid: 'ACslice', authToken: 'slice-token', callbacks: [],
      hold: async () => {
        if (held.at) return; // the first create request only
        await new Promise((r) => { held.at = r; held.release = r; });
      },
    });
    const port = String(await freePort());
    const s = await startServer({
      PORT: port, API_EXTERNAL_URL: `http://127.0.0.1:${port}`, TWILIO_ACCOUNT_SID: 'ACslice', TWILIO_AUTH_TOKEN: 'slice-token',
      TWILIO_API_BASE: twilio.url, TWILIO_FROM: '+15550009996', SMS_RATE_PER_SECOND: '0', SEND_WORKERS: String(workers),
      JOB_POLL_INTERVAL: '1',
    });
    const u = await signUpUser(s);
    await sql(s, `update public.app_settings set timezone = ${lit(zoneAt(13))};
      insert into public.contacts (user_id, phone) select ${lit(u.user.id)}, '+1555040' || lpad(g::text, 4, '0') from generate_series(1, 2500) g;
      insert into public.sms_consent (phone_number, consent_given, consent_source) select '+1555040' || lpad(g::text, 4, '0'), true, 'web_form' from generate_series(1, 2500) g`);
    const id = (await sql(s, `insert into public.campaigns (user_id, name, type, content)
      values (${lit(u.user.id)}, 'sliced-sms', 'sms', 'News') returning id`)).split('\n')[0];
    const auth = { apikey: s.anonKey, Authorization: `Bearer ${u.session.access_token}` };
    const r = await request(`${s.url}/api/campaigns/${id}/send`, { method: 'POST', headers: auth });
    assert.ok(r.status === 200 || r.status === 202, `send: ${r.status} ${r.text}`);
    await eventually(() => held.at !== null, 'the first request at Twilio');
    const written = async () => (await sql(s, `select materialised_at is not null, recipients_count,
      (select count(*) from public.sms_messages where campaign_id = c.id) from public.campaigns c where id = ${lit(id)}`)).split('|');
    return { s, twilio, id, auth, held, written };
  }

  it('sends before a large audience is all written, and a cancel does not wait for the rest', async () => {
    const { s, twilio, id, auth, held, written } = await heldSlicedSend(1);
    try {
      // the first message left after the worker's first look wrote a slice
      // of 500 (its claims write more only when that is all taken), not
      // after all 2,500
      assert.deepEqual(await written(), ['f', '500', '500'], 'one slice written when the first message leaves');
      // a cancel now waits for no materialisation (the worker holds no lock
      // while Twilio holds its answer); nothing more is written or sent
      const c = await request(`${s.url}/api/campaigns/${id}/cancel`, { method: 'POST', headers: auth });
      assert.equal(c.status, 200, c.text);
      assert.equal(JSON.parse(c.text).status, 'cancelled');
      held.release();
      await eventually(async () => (await sql(s, `select count(*) from sending.holds where campaign_id = ${lit(id)}`)) === '0',
        'the worker settling what it had in flight');
      assert.equal(await sql(s, `select status from public.campaigns where id = ${lit(id)}`), 'cancelled');
      assert.equal(await sql(s, `select count(*) from public.sms_messages where campaign_id = ${lit(id)}`), '500',
        'the rest of the audience never written');
      const sent = twilio.messages.length;
      assert.ok(sent >= 1 && sent <= 32, `${sent} messages left: at most what was in flight (SEND_IN_FLIGHT)`);
      assert.equal(new Set(twilio.messages.map((m) => m.params.To)).size, sent, 'each once');
    } finally {
      held.release?.();
      await s.stop();
      await twilio.stop();
    }
  });

  it('a campaign\'s other worker writes and sends the rest of the audience while the first waits, each recipient once', async () => {
    const { s, twilio, id, held, written } = await heldSlicedSend(2);
    try {
      // the first worker waits for Twilio's first answer; the second wrote
      // the whole audience meanwhile (slices of its own, then sent)
      await eventually(async () => (await written())[0] === 't', 'the audience all written');
      assert.deepEqual((await written()).slice(1), ['2500', '2500']);
      held.release();
      await eventually(async () => (await sql(s, `select status from public.campaigns where id = ${lit(id)}`)) === 'sent',
        'the campaign sent');
      const to = twilio.messages.map((m) => m.params.To);
      assert.equal(to.length, 2500, 'every recipient');
      assert.equal(new Set(to).size, 2500, 'each once');
    } finally {
      held.release?.();
      await s.stop();
      await twilio.stop();
    }
  });
});

describe("the engine's connection", () => {
  // A new backend's first claim plans the engine's statements (50-100 ms of
  // PostgreSQL's CPU): a job thread keeps its engine connection from one
  // send job to the next. One job thread, one worker: the backends that
  // count a campaign's progress (sending.progress_parts, one row per
  // backend) are the same for both campaigns. Twilio holds its answer to each
  // campaign's fifth message while the test looks.
  it('is kept from one send job to the next: a second campaign runs on the same backend', async () => {
    const held = { n: 0, at: 0, release: null };
    const twilio = await startFakeTwilio({
      accountSid: 'ACkeep', authToken: 'keep-token', callbacks: [],
      hold: async () => {
        held.n += 1;
        if (held.n !== 5 && held.n !== 25 && held.n !== 45) return;
        await new Promise((r) => { held.release = r; held.at = held.n; });
      },
    });
    const port = String(await freePort());
    const s = await startServer({
      PORT: port, API_EXTERNAL_URL: `http://127.0.0.1:${port}`, TWILIO_ACCOUNT_SID: 'ACkeep', TWILIO_AUTH_TOKEN: 'keep-token',
      TWILIO_API_BASE: twilio.url, TWILIO_FROM: '+15550009994', SMS_RATE_PER_SECOND: '0', SEND_WORKERS: '1',
      JOB_WORKERS: '1', JOB_POLL_INTERVAL: '1',
    });
    try {
      const u = await signUpUser(s);
      await sql(s, `update public.app_settings set timezone = ${lit(zoneAt(13))};
        insert into public.contacts (user_id, phone) select ${lit(u.user.id)}, '+155506000' || lpad(g::text, 2, '0') from generate_series(1, 20) g;
        insert into public.sms_consent (phone_number, consent_given, consent_source) select '+155506000' || lpad(g::text, 2, '0'), true, 'web_form' from generate_series(1, 20) g`);
      const send = async (name, at) => {
        const id = (await sql(s, `insert into public.campaigns (user_id, name, type, content)
          values (${lit(u.user.id)}, ${lit(name)}, 'sms', 'News') returning id`)).split('\n')[0];
        const r = await request(`${s.url}/api/campaigns/${id}/send`, {
          method: 'POST', headers: { apikey: s.anonKey, Authorization: `Bearer ${u.session.access_token}` } });
        assert.ok(r.status === 200 || r.status === 202, `send: ${r.status} ${r.text}`);
        await eventually(() => held.at === at, `${name}'s fifth message at Twilio`);
        const parts = await sql(s, `select string_agg(part::text, ',') from sending.progress_parts where campaign_id = ${lit(id)}`);
        held.release();
        await eventually(async () => (await sql(s, `select status from public.campaigns where id = ${lit(id)}`)) === 'sent',
          `${name} sent`, 20000);
        return parts;
      };
      // the job's connection (the worker's first look, sending.recover) and
      // the engine's (claims, steps)
      const first = await send('keep-1', 5);
      assert.match(first, /^\d+,\d+$/, `two backends count the first campaign: ${first}`);
      const second = await send('keep-2', 25);
      assert.equal(second, first, 'the second campaign ran on the same backends');
      // the server closes the engine's (the later of the two) while it is
      // idle (a restart, an idle timeout): the next campaign's worker opens
      // a new one, and its job does not fail into its back-off (a minute)
      assert.equal(await sql(s, `select pg_terminate_backend(pid) from pg_stat_activity
        where pid in (${second}) order by backend_start desc limit 1`), 't');
      const third = await send('keep-3', 45);
      assert.match(third, /^\d+,\d+$/);
      assert.notEqual(third, second, 'a new engine backend');
      assert.equal(await sql(s, `select coalesce(string_agg(attempts || ' ' || coalesce(last_error, ''), '; '), '')
        from jobs.jobs where kind = 'send.worker'
          and payload ->> 'campaign_id' in (select id::text from public.campaigns where name = 'keep-3')
          and (attempts > 1 or last_error is not null)`), '', 'no attempt of the third campaign failed');
      const to = twilio.messages.map((m) => m.params.To);
      assert.equal(to.length, 60, 'the three campaigns, every recipient');
      assert.equal(new Set(to).size, 20);
    } finally {
      held.release?.();
      await s.stop();
      await twilio.stop();
    }
  });
});
