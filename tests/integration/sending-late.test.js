// A provider slower than SEND_LEASE_SECONDS, through the real binary
// (migration 077): the worker is handing an SMS over while its group's lease
// runs out and a recovery (what another worker's claim runs) marks the
// message `unknown`; when the provider finally accepts it, the worker's
// settle applies the answer — the message is `sent`, with its sid, the
// campaign's unknown count goes back down — instead of dropping it (main:
// the message stayed `unknown` and counted so although it went). Nothing is
// sent twice.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, freePort, signUpUser, sql, lit, request, sleep } from './helpers.js';
import { startFakeTwilio, zoneAt } from './fake-twilio.js';

const TOKEN = 'twilio-late-token-0123456789abcdef';
const SID = 'AC' + '7'.repeat(32);
let server, twilio, owner;
let held = null; // the first create request, held until the test lets it go
let release;
const gate = new Promise((r) => (release = r));

const one = async (q) => (await sql(server, q)).split('\n')[0];
const auth = () => ({ apikey: server.anonKey, Authorization: `Bearer ${owner.session.access_token}`, 'Content-Type': 'application/json' });

async function eventually(fn, what, ms = 60000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) {
      const msgs = await sql(server, `select recipient || ' ' || status || ' ' || coalesce(last_error, '') from public.sms_messages`);
      assert.fail(`${what} did not happen within ${ms / 1000} s\nmessages:\n${msgs}`);
    }
    await sleep(100);
  }
}

before(async () => {
  twilio = await startFakeTwilio({
    accountSid: SID, authToken: TOKEN, callbacks: [],
    hold: async (params) => {
      if (held) return;
      held = params.To;
      await gate;
    },
  });
  const port = String(await freePort());
  server = await startServer({
    PORT: port,
    API_EXTERNAL_URL: `http://127.0.0.1:${port}`,
    TWILIO_ACCOUNT_SID: SID,
    TWILIO_AUTH_TOKEN: TOKEN,
    TWILIO_API_BASE: twilio.url,
    TWILIO_FROM: '+15550009998',
    SMS_RATE_PER_SECOND: '0',
    JOB_POLL_INTERVAL: '1',
    SEND_WORKERS: '1',
    SEND_IN_FLIGHT: '1',
    SEND_LEASE_SECONDS: '2',
  });
  owner = await signUpUser(server);
  await sql(server, `update public.app_settings set timezone = ${lit(zoneAt(13))}`);
});
after(async () => {
  release?.();
  await server?.stop();
  await twilio?.stop();
});

describe('a provider slower than the lease', () => {
  it('applies the late answer to the message a recovery made unknown', async () => {
    const phones = ['+15550770001', '+15550770002', '+15550770003'];
    for (const phone of phones) {
      await sql(server, `insert into public.contacts (user_id, phone, first_name) values (${lit(owner.user.id)}, ${lit(phone)}, 'L')`);
      await sql(server, `insert into public.sms_consent (phone_number, consent_given, consent_source) values (${lit(phone)}, true, 'web_form')`);
    }
    const cid = await one(`insert into public.campaigns (user_id, name, type, content)
                           values (${lit(owner.user.id)}, 'late', 'sms', 'Hello') returning id`);
    const r = await request(`${server.url}/api/campaigns/${cid}/send`, { method: 'POST', headers: auth() });
    assert.ok(r.status === 200 || r.status === 202, `send: ${r.status} ${r.text}`);
    await eventually(() => held, 'the first SMS reaches the provider');
    // its group's lease runs out while the provider still holds the request
    await eventually(async () => (await one(`select count(*) from sending.holds
                                             where campaign_id = ${lit(cid)} and in_flight and lease_until < now()`)) === '1',
      'the lease runs out');
    assert.equal(await one(`select sending.recover(${lit(cid)})`), '1', 'a recovery takes the group for lost');
    assert.equal(await one(`select status || ' ' || (select unknown_count from public.campaigns where id = ${lit(cid)})
                            from public.sms_messages where recipient = ${lit(held)}`), 'unknown 1');
    release();
    await eventually(async () => (await one(`select status from public.campaigns where id = ${lit(cid)}`)) === 'sent',
      'the campaign is sent');
    const late = twilio.messages.find((m) => m.params.To === held);
    assert.equal(await one(`select status || ' ' || coalesce(message_sid, '-') || ' ' || coalesce(last_error, '-')
                            from public.sms_messages where recipient = ${lit(held)}`), `sent ${late.sid} -`,
      'the late answer is applied: sent, with its sid');
    assert.equal(await one(`select unknown_count from public.campaigns where id = ${lit(cid)}`), '0', 'nothing is unknown');
    assert.equal(await one(`select sent_count || ' ' || failed_count || ' ' || dropped_count
                            from public.campaign_progress where id = ${lit(cid)}`), '3 0 0', 'each message counted once');
    assert.equal(twilio.messages.length, 3, 'every SMS went once');
    assert.equal(new Set(twilio.messages.map((m) => m.params.To)).size, 3);
    assert.equal(await one(`select count(*) from sending.holds where campaign_id = ${lit(cid)}`), '0', 'nothing is held');
  });
});
