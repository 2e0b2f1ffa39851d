// A provider slower than SEND_LEASE_SECONDS, through the real binary
// (migration 077): the worker is handing an SMS over while its group's lease
// runs out and a recovery (what another worker's claim runs) marks the
// message `unknown`; when the provider finally accepts it, the worker's
// settle applies the answer — the message is `sent`, with its sid, the
// campaign's unknown count goes back down — instead of dropping it (main:
// the message stayed `unknown` and counted so although it went). Nothing is
// sent twice. With Twilio's status callbacks on: a callback that reaches the
// message before the worker's answer (after the recovery, or before it)
// leaves each message counted exactly once, as sent (it was handed over).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, freePort, signUpUser, sql, lit, request, sleep } from './helpers.js';
import { startFakeTwilio, zoneAt } from './fake-twilio.js';

const TOKEN = 'twilio-late-token-0123456789abcdef';
const SID = 'AC' + '7'.repeat(32);
let server, twilio, owner;
// what the test does with a create request (params, early) before it is
// answered; null: answered at once
let onCreate = null;
let release;

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
    accountSid: SID, authToken: TOKEN, callbacks: ['sent', 'delivered'],
    hold: async (params, early) => {
      const f = onCreate;
      onCreate = null; // the first create request of a test only
      if (f) await f(params, early);
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

// An SMS campaign to phones whose first SMS is held by hold(params, early,
// message id) until the test calls release(); resolves { cid, held (the
// phone), id (its message) } once the held request reached the provider.
async function heldCampaign(name, phones, hold) {
  for (const phone of phones) {
    await sql(server, `insert into public.contacts (user_id, phone, first_name) values (${lit(owner.user.id)}, ${lit(phone)}, 'L')`);
    await sql(server, `insert into public.sms_consent (phone_number, consent_given, consent_source) values (${lit(phone)}, true, 'web_form')`);
  }
  const cid = await one(`insert into public.campaigns (user_id, name, type, content)
                         values (${lit(owner.user.id)}, ${lit(name)}, 'sms', 'Hello') returning id`);
  let held = null;
  let id = null;
  const before = twilio.messages.length;
  const gate = new Promise((r) => (release = r));
  onCreate = async (params, early) => {
    id = await one(`select id from public.sms_messages where campaign_id = ${lit(cid)} and recipient = ${lit(params.To)}`);
    held = params.To;
    await hold(gate, early, id);
  };
  const r = await request(`${server.url}/api/campaigns/${cid}/send`, { method: 'POST', headers: auth() });
  assert.ok(r.status === 200 || r.status === 202, `send: ${r.status} ${r.text}`);
  await eventually(() => held, 'the first SMS reaches the provider');
  return { cid, held, id, before };
}

// its group's lease runs out while the provider still holds the request
async function leaseRunsOut(cid) {
  await eventually(async () => (await one(`select count(*) from sending.holds
                                           where campaign_id = ${lit(cid)} and in_flight and lease_until < now()`)) === '1',
    'the lease runs out');
}

// (a campaign goes to all the owner's contacts: those of the earlier tests too)
async function countedOnce({ cid, before }) {
  const n = Number(await one(`select count(*) from public.sms_messages where campaign_id = ${lit(cid)}`));
  await eventually(async () => (await one(`select status from public.campaigns where id = ${lit(cid)}`)) === 'sent',
    'the campaign is sent');
  await twilio.callbacksDone();
  assert.equal(await one(`select unknown_count from public.campaigns where id = ${lit(cid)}`), '0', 'nothing is unknown');
  assert.equal(await one(`select p.sent || ' ' || p.failed || ' ' || p.dropped from sending.progress_counts p
                          where p.campaign_id = ${lit(cid)}`), `${n} 0 0`, 'each message counted once, as sent');
  assert.equal(await one(`select sent_count || ' ' || failed_count || ' ' || dropped_count
                          from public.campaign_progress where id = ${lit(cid)}`), `${n} 0 0`, 'and published so');
  assert.equal(await one(`select count(*) from sending.holds where campaign_id = ${lit(cid)}`), '0', 'nothing is held');
  assert.equal(await one(`select count(*) from public.sms_messages where campaign_id = ${lit(cid)}
                          and status = 'delivered' and last_error is null`), String(n), 'all delivered, no error left');
  const to = twilio.messages.slice(before).map((m) => m.params.To);
  assert.equal(to.length, n, 'every SMS went once');
  assert.equal(new Set(to).size, n);
}

describe('a provider slower than the lease', () => {
  it('applies the late answer to the message a recovery made unknown', async () => {
    const c = await heldCampaign('late', ['+15550770001', '+15550770002', '+15550770003'],
      (gate) => gate);
    const { cid, held } = c;
    await leaseRunsOut(cid);
    assert.equal(await one(`select sending.recover(${lit(cid)})`), '1', 'a recovery takes the group for lost');
    assert.equal(await one(`select status || ' ' || (select unknown_count from public.campaigns where id = ${lit(cid)})
                            from public.sms_messages where campaign_id = ${lit(cid)} and recipient = ${lit(held)}`), 'unknown 1');
    release();
    await countedOnce(c);
    const late = twilio.messages.slice(c.before).find((m) => m.params.To === held);
    assert.equal(await one(`select status || ' ' || coalesce(message_sid, '-') || ' ' || coalesce(last_error, '-')
                            from public.sms_messages where campaign_id = ${lit(cid)} and recipient = ${lit(held)}`),
      `delivered ${late.sid} -`, 'the late answer is applied: sent (then delivered), with its sid');
  });

  it('a status callback after the recovery, before the late answer: counted once, as sent', async () => {
    const c = await heldCampaign('late-cb-after', ['+15550771001', '+15550771002', '+15550771003', '+15550771004'],
      async (gate, early, id) => {
        await gate;
        await early(`${server.url}/webhooks/twilio/status?m=${id}`);
      });
    const { cid, held } = c;
    await leaseRunsOut(cid);
    assert.equal(await one(`select sending.recover(${lit(cid)})`), '1', 'a recovery takes the group for lost');
    release();
    await countedOnce(c);
    const late = twilio.messages.slice(c.before).find((m) => m.params.To === held);
    assert.equal(await one(`select status || ' ' || coalesce(message_sid, '-')
                            from public.sms_messages where campaign_id = ${lit(cid)} and recipient = ${lit(held)}`),
      `delivered ${late.sid}`, 'the callback\'s status stays, with the sid');
  });

  it('a status callback before the recovery: the recovery counts the message as handed over', async () => {
    const c = await heldCampaign('late-cb-before', ['+15550772001', '+15550772002', '+15550772003', '+15550772004'],
      async (gate, early, id) => {
        await early(`${server.url}/webhooks/twilio/status?m=${id}`);
        await gate;
      });
    const { cid, held } = c;
    await eventually(async () => (await one(`select status from public.sms_messages
                                             where campaign_id = ${lit(cid)} and recipient = ${lit(held)}`)) === 'delivered',
      'the callback reaches the message');
    await leaseRunsOut(cid);
    assert.equal(await one(`select sending.recover(${lit(cid)})`), '0', 'the recovery makes nothing unknown');
    assert.equal(await one(`select sent from sending.progress_counts where campaign_id = ${lit(cid)}`), '1',
      'it counts the message a callback moved as sent');
    release();
    await countedOnce(c);
  });
});
