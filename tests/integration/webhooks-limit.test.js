// The provider webhooks have a per-address budget (WEBHOOK_RATE_LIMIT per 5
// minutes, the auth routes' limiter): beyond it a signed request is answered
// 429 with Retry-After and a JSON body, and changes nothing; the signature is
// still checked first (a forged request is 403, never 429, and costs no
// budget); another address keeps its own budget.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, freePort, signUpUser, sql, lit, request } from './helpers.js';
import { twilioSignature } from './fake-twilio.js';
import { makeEventKey, signEvents } from './fake-sendgrid.js';

const TOKEN = 'twilio-limit-token-0123456789abcdef';
const SID = 'AC' + '2'.repeat(32);
const LIMIT = 3;
const key = makeEventKey();
let server, base, campaign;

const one = async (q) => (await sql(server, q)).split('\n')[0];

before(async () => {
  const port = String(await freePort());
  base = `http://127.0.0.1:${port}`;
  server = await startServer({
    PORT: port,
    API_EXTERNAL_URL: base,
    TWILIO_ACCOUNT_SID: SID,
    TWILIO_AUTH_TOKEN: TOKEN,
    SENDGRID_WEBHOOK_PUBLIC_KEY: key.publicKey,
    WEBHOOK_RATE_LIMIT: String(LIMIT),
  });
  const owner = await signUpUser(server);
  campaign = await one(`insert into public.campaigns (user_id, name, type) values (${lit(owner.user.id)}, 'limit', 'sms') returning id`);
});
after(async () => server?.stop());

/** Posts a Twilio status callback from localAddress; signature: override. */
function postStatus(path, params, { localAddress = '127.0.0.1', signature } = {}) {
  const body = new URLSearchParams(params).toString();
  return request(`${base}${path}`, {
    method: 'POST',
    localAddress,
    body,
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      'X-Twilio-Signature': signature ?? twilioSignature(TOKEN, `${base}${path}`, params),
    },
  });
}

describe('webhook rate limit', () => {
  it('answers 429 JSON with Retry-After past the budget, after the signature check, per address', async () => {
    const ids = [];
    for (let i = 0; i < LIMIT + 1; i++)
      ids.push(await one(`insert into public.sms_messages (campaign_id, recipient, message, status)
                          values (${lit(campaign)}, '+1555040000${i}', 'x', 'sending') returning id`));
    const params = (i) => ({ MessageSid: `SM${String(i).repeat(32)}`, MessageStatus: 'sent' });
    // forged requests first: 403, and they do not use the budget
    for (let i = 0; i < LIMIT + 2; i++) {
      const r = await postStatus(`/webhooks/twilio/status?m=${ids[0]}`, params(0), { signature: 'A'.repeat(27) + '=' });
      assert.equal(r.status, 403, r.text);
    }
    for (let i = 0; i < LIMIT; i++) {
      const r = await postStatus(`/webhooks/twilio/status?m=${ids[i]}`, params(i));
      assert.equal(r.status, 200, `signed request ${i}: ${r.text}`);
    }
    const over = await postStatus(`/webhooks/twilio/status?m=${ids[LIMIT]}`, params(LIMIT));
    assert.equal(over.status, 429, over.text);
    assert.match(over.headers['content-type'], /^application\/json/);
    assert.equal(JSON.parse(over.text).code, 'over_request_rate_limit');
    assert.ok(Number(over.headers['retry-after']) > 0, 'Retry-After');
    assert.equal(await sql(server, `select status from public.sms_messages where id = ${lit(ids[LIMIT])}`), 'sending', 'nothing changed');
    // still 403 for a forgery past the budget: the signature comes first
    const forged = await postStatus(`/webhooks/twilio/status?m=${ids[LIMIT]}`, params(LIMIT), { signature: 'B'.repeat(27) + '=' });
    assert.equal(forged.status, 403);
    // the same budget covers the other webhooks of that address
    const events = [{ event: 'delivered', sg_event_id: 'limit-1', timestamp: 1, email: 'a@example.com' }];
    const body = JSON.stringify(events);
    const signed = signEvents(key.privateKey, body);
    const sg = await request(`${base}/webhooks/sendgrid/events`, {
      method: 'POST', body, headers: { 'Content-Type': 'application/json', ...signed },
    });
    assert.equal(sg.status, 429, sg.text);
    const inbound = { MessageSid: 'SM' + '9'.repeat(32), From: '+15550400099', To: '+15550009999', Body: 'STOP' };
    assert.equal((await postStatus('/webhooks/twilio/inbound', inbound)).status, 429);
    assert.equal(await sql(server, `select count(*) from public.sms_inbound where from_number = '+15550400099'`), '0');
    // another address has its own budget
    const other = await postStatus(`/webhooks/twilio/status?m=${ids[LIMIT]}`, params(LIMIT), { localAddress: '127.0.0.2' });
    assert.equal(other.status, 200, other.text);
    assert.equal(await sql(server, `select status from public.sms_messages where id = ${lit(ids[LIMIT])}`), 'sent');
  });
});
