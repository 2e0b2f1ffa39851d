// What a campaign cost and what became of its messages, through the real
// binary: Twilio prices an SMS only a while after delivery (the Message
// resource's `price` is null first, then set; fake-twilio.js does the same),
// so a final status callback queues an `sms.price` job that fetches the
// resource with back-off until the price is there, and records cost and
// currency (migration 043); the campaign report and analytics_data sum it.
// The campaign performance report counts `unknown` and `unsubscribed`
// messages, in its JSON and in both exports.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, freePort, signUpUser, sql, lit, request, sleep } from './helpers.js';
import { startFakeTwilio, zoneAt } from './fake-twilio.js';

const TOKEN = 'twilio-cost-token-0123456789abcdef';
const SID = 'AC' + '1'.repeat(32);
let server, twilio, owner;

const one = async (q) => (await sql(server, q)).split('\n')[0];
const auth = () => ({ apikey: server.anonKey, Authorization: `Bearer ${owner.session.access_token}`, 'Content-Type': 'application/json' });

async function eventually(fn, what, ms = 60000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) {
      const jobs = await sql(server, `select kind || ' ' || status || ' ' || attempts || ' ' || coalesce(last_error, '') from jobs.jobs
                                      where kind like 'sms%' or kind like 'send%' order by id`);
      const msgs = await sql(server, `select recipient || ' ' || status || ' ' || coalesce(cost::text, '-') from public.sms_messages`);
      assert.fail(`${what} did not happen within ${ms / 1000} s\njobs:\n${jobs}\nmessages:\n${msgs}\nfetches: ${JSON.stringify(twilio.fetches)}`);
    }
    await sleep(250);
  }
}

before(async () => {
  // priced 2.5 s after delivery: the first fetch (1 s after it) sees null
  twilio = await startFakeTwilio({ accountSid: SID, authToken: TOKEN, price: '-0.00790', priceUnit: 'usd', priceDelayMs: 2500 });
  const port = String(await freePort());
  server = await startServer({
    PORT: port,
    API_EXTERNAL_URL: `http://127.0.0.1:${port}`,
    TWILIO_ACCOUNT_SID: SID,
    TWILIO_AUTH_TOKEN: TOKEN,
    TWILIO_API_BASE: twilio.url,
    TWILIO_FROM: '+15550009999',
    SMS_RATE_PER_SECOND: '0',
    SMS_PRICE_RETRY_SECONDS: '1',
    JOB_POLL_INTERVAL: '1',
    SEND_RETRY_SECONDS: '1',
    // a price recorded while a roll-up runs is counted by the next one
    SEND_ROLLUP_INTERVAL: '2',
  });
  owner = await signUpUser(server);
  await sql(server, `update public.app_settings set timezone = ${lit(zoneAt(13))}`);
});
after(async () => {
  await server?.stop();
  await twilio?.stop();
});

describe('SMS cost', () => {
  it('is fetched from the Message resource after delivery, with back-off while Twilio has no price, and summed by the report and analytics', async () => {
    const phones = ['+15550300001', '+15550300002'];
    for (const phone of phones) {
      await sql(server, `insert into public.contacts (user_id, phone, first_name) values (${lit(owner.user.id)}, ${lit(phone)}, 'P')`);
      await sql(server, `insert into public.sms_consent (phone_number, consent_given, consent_source) values (${lit(phone)}, true, 'web_form')`);
    }
    const cid = await one(`insert into public.campaigns (user_id, name, type, content)
                           values (${lit(owner.user.id)}, 'priced', 'sms', 'Sale today') returning id`);
    const r = await request(`${server.url}/api/campaigns/${cid}/send`, { method: 'POST', headers: auth() });
    assert.ok(r.status === 200 || r.status === 202, `send: ${r.status} ${r.text}`);
    const costs = () => sql(server, `select recipient || ':' || status || ':' || coalesce(cost::text, '-') || ':' || coalesce(cost_currency, '-')
                                     from public.sms_messages where campaign_id = ${lit(cid)} order by recipient`);
    await eventually(async () => (await costs()).split('\n').filter((l) => l.endsWith(':-0.0079:USD')).length === 2,
      'both prices recorded');
    assert.deepEqual((await costs()).split('\n'), phones.map((p) => `${p}:delivered:-0.0079:USD`));
    for (const m of twilio.messages) {
      const seen = twilio.fetches.filter((f) => f.sid === m.sid).map((f) => f.price);
      assert.ok(seen.length >= 2, `${m.sid} fetched again after a null price: ${JSON.stringify(seen)}`);
      assert.equal(seen[0], null, 'the first fetch found no price yet');
      assert.equal(seen.at(-1), '-0.00790');
      assert.equal(seen.filter((p) => p !== null).length, 1, 'no fetch once the price is recorded');
    }
    // the report and the analytics roll-up sum abs(cost)
    const rep = await request(`${server.url}/api/reports`, { method: 'POST', headers: auth(), body: JSON.stringify({ campaign_id: cid }) });
    assert.equal(rep.status, 201, rep.text);
    const data = JSON.parse(rep.text).data;
    assert.equal(Number(data.totals.cost), 0.0158);
    assert.equal(Number(data.sms.cost), 0.0158);
    await eventually(async () => Number(await sql(server, `select coalesce(sum(value), 0)::text from public.analytics_data
                                                      where metric_type = 'sms_cost' and dimensions->>'campaign_id' = ${lit(cid)}`)) === 0.0158,
      'sms_cost rolled up into analytics_data');
  });

  it('taken from the create answer when Twilio prices at once: as Twilio writes it, sign and digits exact', async () => {
    const phone = '+15550300011';
    await sql(server, `insert into public.contacts (user_id, phone, first_name) values (${lit(owner.user.id)}, ${lit(phone)}, 'P')`);
    await sql(server, `insert into public.sms_consent (phone_number, consent_given, consent_source) values (${lit(phone)}, true, 'web_form')`);
    const cid = await one(`insert into public.campaigns (user_id, name, type, content)
                           values (${lit(owner.user.id)}, 'priced at once', 'sms', 'Sale today') returning id`);
    twilio.live.priceAtCreation = true;
    try {
      const r = await request(`${server.url}/api/campaigns/${cid}/send`, { method: 'POST', headers: auth() });
      assert.ok(r.status === 200 || r.status === 202, `send: ${r.status} ${r.text}`);
      // the same value record_sms_price stores from a fetch: negative (money spent), exact
      await eventually(async () => (await one(`select coalesce(cost::text, '-') from public.sms_messages
                                              where campaign_id = ${lit(cid)}`)) === '-0.0079', 'the price of the create answer recorded');
    } finally {
      twilio.live.priceAtCreation = false;
    }
  });

  it('records a price once, refuses a malformed one, and is only for the server', async () => {
    const cid = await one(`insert into public.campaigns (user_id, name, type) values (${lit(owner.user.id)}, 'manual', 'sms') returning id`);
    const id = await one(`insert into public.sms_messages (campaign_id, recipient, message, status, message_sid)
                          values (${lit(cid)}, '+15550300009', 'x', 'delivered', 'SM${'e'.repeat(32)}') returning id`);
    const call = (sid, price, unit) => sql(server, `set role service_role; select public.record_sms_price(${lit(id)}, ${lit(sid)}, ${price === null ? 'null' : lit(price)}, ${lit(unit)})`);
    assert.match(await call('SM' + 'e'.repeat(32), null, 'USD'), /pending/);
    assert.match(await call('SM' + 'f'.repeat(32), '-0.01', 'USD'), /unknown_message/, 'another sid names no message');
    await assert.rejects(call('SM' + 'e'.repeat(32), '1;drop', 'USD'), /not a decimal number/);
    assert.match(await call('SM' + 'e'.repeat(32), '-0.0420', 'eur'), /recorded/);
    assert.match(await call('SM' + 'e'.repeat(32), '-9.0000', 'USD'), /already_priced/);
    assert.equal(await sql(server, `select cost || ' ' || cost_currency from public.sms_messages where id = ${lit(id)}`), '-0.0420 EUR');
    await assert.rejects(sql(server, `set role authenticated; select public.record_sms_price(${lit(id)}, 'SMx', '1', 'USD')`), /permission denied/);
  });
});

describe('the campaign performance report', () => {
  it('counts unknown and unsubscribed messages, in JSON, CSV and the JSON export', async () => {
    const cid = await one(`insert into public.campaigns (user_id, name, type) values (${lit(owner.user.id)}, 'counted', 'email') returning id`);
    const t = Date.now();
    await sql(server, `
      insert into public.email_messages (message_id, campaign_id, recipient, status, sent_at, unsubscribed_at) values
        ('u1-${t}', ${lit(cid)}, 'u1@example.com', 'unknown', now(), null),
        ('u2-${t}', ${lit(cid)}, 'u2@example.com', 'unsubscribed', now(), now()),
        ('u3-${t}', ${lit(cid)}, 'u3@example.com', 'clicked', now(), now()),
        ('u4-${t}', ${lit(cid)}, 'u4@example.com', 'delivered', now(), null);
      insert into public.sms_messages (campaign_id, recipient, message, status) values
        (${lit(cid)}, '+15550300011', 'x', 'unknown'),
        (${lit(cid)}, '+15550300012', 'x', 'delivered');`);
    const rep = await request(`${server.url}/api/reports`, { method: 'POST', headers: auth(), body: JSON.stringify({ campaign_id: cid }) });
    assert.equal(rep.status, 201, rep.text);
    const report = JSON.parse(rep.text);
    const d = report.data;
    assert.deepEqual([d.totals.unknown, d.totals.unsubscribed], [2, 2]);
    assert.deepEqual([d.email.unknown, d.email.unsubscribed], [1, 2]);
    assert.deepEqual([d.sms.unknown, d.sms.unsubscribed], [1, 0]);
    assert.deepEqual([d.daily[0].unknown, d.daily[0].unsubscribed], [2, 2]);

    const csv = await request(`${server.url}/api/reports/${report.id}/export?format=csv`, { headers: auth() });
    assert.equal(csv.status, 200, csv.text);
    const lines = csv.text.trim().split('\r\n').map((l) => l.split(','));
    const total = Object.fromEntries(lines[0].map((h, i) => [h, lines.at(-1)[i]]));
    assert.equal(total.date, 'total');
    assert.deepEqual([total.unknown, total.unsubscribed], ['2', '2']);

    const json = await request(`${server.url}/api/reports/${report.id}/export?format=json`, { headers: auth() });
    assert.equal(json.status, 200, json.text);
    assert.deepEqual([JSON.parse(json.text).data.totals.unknown, JSON.parse(json.text).data.totals.unsubscribed], [2, 2]);
  });
});
