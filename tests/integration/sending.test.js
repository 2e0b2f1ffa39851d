// The send engine (issue 12) against the real binary and a real SMTP server
// (smtp-sink.py, Debian's python3-aiosmtpd): templates checked at save time,
// a campaign sent to its owner's live contacts with consent and suppression
// applied, personalised and HTML-escaped, with the postal address, the
// List-Unsubscribe headers and tracked links; opens, clicks (only to URLs of
// the message) and one-click unsubscribe through signed tokens; monthly
// limits pausing a campaign; and the attacks: forged tokens, another user's
// campaign, a click token pointed elsewhere.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  startServer, client, signIn, request, uniqueEmail, sql, lit, noError, freePort, PASSWORD, eventually, api as apiAs,
} from './helpers.js';
import { startSmtpSink } from './mail-sink.js';

let server;
let sink;
const users = {}; // name -> {id, token, client}
const api = (who, method, p, body) => apiAs(server, who && users[who], method, p, body);
const tag = crypto.randomBytes(3).toString('hex');

before(async () => {
  sink = await startSmtpSink();
  const port = await freePort();
  server = await startServer({
    PORT: String(port),
    API_EXTERNAL_URL: `http://127.0.0.1:${port}`,
    SMTP_URL: sink.url,
    EMAIL_FROM: 'news@example.org',
    EMAIL_RATE_PER_SECOND: '0',
    SEND_SCHEDULER_INTERVAL: '1',
    SEND_RETRY_SECONDS: '1',
    JOB_POLL_INTERVAL: '1',
  });
  const service = client(server, server.serviceKey);
  for (const [name, role] of [['alice', 'user'], ['mallory', 'user'], ['viewer', 'viewer']]) {
    const email = uniqueEmail(name);
    const { error } = await service.auth.admin.createUser({ email, password: PASSWORD, email_confirm: true, app_metadata: { role } });
    noError(error, `createUser(${name})`);
    const s = await signIn(server, email);
    users[name] = { id: s.user.id, token: s.session.access_token, client: s.client };
  }
});

after(async () => {
  await server?.stop();
  await sink?.stop();
});

async function campaignRow(id) {
  return JSON.parse(await sql(server, `select row_to_json(c) from public.campaigns c where id = ${lit(id)}`));
}

async function addContacts(who, rows) {
  const { data, error } = await users[who].client.from('contacts').insert(rows.map((r) => ({ attributes: {}, ...r }))).select();
  noError(error, 'insert contacts');
  return data;
}

async function newCampaign(who, fields) {
  const { data, error } = await users[who].client
    .from('campaigns')
    .insert({ name: `c-${tag}-${crypto.randomBytes(3).toString('hex')}`, type: 'email', ...fields })
    .select()
    .single();
  noError(error, 'insert campaign');
  return data;
}

describe('templates', () => {
  it('refuses an unknown variable when the template is saved (through /rest/v1 too)', async () => {
    const c = users.alice.client;
    const bad = await c.from('templates').insert({ name: 'bad', type: 'email', content: 'Hi {{frist_name}}' }).select();
    assert.ok(bad.error, 'an unknown variable was accepted');
    assert.match(bad.error.message, /frist_name/);
    const unclosed = await c.from('templates').insert({ name: 'bad2', type: 'email', content: 'Hi {{first_name' }).select();
    assert.ok(unclosed.error, 'an unclosed placeholder was accepted');
    const good = await c
      .from('templates')
      .insert({ name: 'good', type: 'email', subject: 'Hello {{first_name | "friend"}}', content: '<p>Hi {{ first_name | "there" }} from {{contact.attributes.company}}</p>' })
      .select()
      .single();
    noError(good.error, 'a valid template');
    assert.deepEqual(good.data.variables.sort(), ['contact.attributes.company', 'first_name']);
    const upd = await c.from('templates').update({ content: '{{contact.phone_number}}' }).eq('id', good.data.id).select();
    assert.ok(upd.error, 'an update with an unknown variable was accepted');
  });

  it('previews a template for a contact, HTML-escaped in HTML and raw in text', async () => {
    const c = users.alice.client;
    const { data: t, error } = await c
      .from('templates')
      .insert({ name: 'prev', type: 'email', subject: 'For {{first_name}}', content: '<p>Dear {{first_name | "there"}} of {{contact.attributes.company}}</p>' })
      .select()
      .single();
    noError(error, 'template');
    const [k] = await addContacts('alice', [{ email: `prev-${tag}@example.com`, first_name: '<b>Zoë</b>', attributes: { company: 'A&B' } }]);
    const r = await api('alice', 'POST', `/api/templates/${t.id}/preview`, { contact_id: k.id });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.subject, 'For <b>Zoë</b>');
    assert.match(r.json.html, /Dear &lt;b&gt;Zoë&lt;\/b&gt; of A&amp;B/);
    assert.match(r.json.text, /Dear <b>Zoë<\/b> of A&B/);
    const other = await api('mallory', 'POST', `/api/templates/${t.id}/preview`, { contact_id: k.id });
    assert.equal(other.status, 404, 'another user previewed alice\'s template');
    const badBody = await api('alice', 'POST', `/api/templates/${t.id}/preview`, { contact_id: 'nope' });
    assert.equal(badBody.status, 400);
  });
});

describe('sending a campaign', () => {
  let campaign;
  let contacts;
  let html;
  let mail;

  before(async () => {
    contacts = await addContacts('alice', [
      { email: `ann-${tag}@example.com`, first_name: 'Ann', attributes: { company: 'Acme & Co' } },
      { email: `bob-${tag}@example.com`, first_name: '<script>x</script>' },
      { email: `gone-${tag}@example.com`, first_name: 'Gone' },
      { email: `supp-${tag}@example.com`, first_name: 'Supp' },
      { email: `deleted-${tag}@example.com`, first_name: 'Deleted' },
      { phone: '+14155550100', first_name: 'Phone only' },
    ]);
    // Mallory's contact never receives Alice's campaign.
    await addContacts('mallory', [{ email: `mallory-contact-${tag}@example.com`, first_name: 'M' }]);
    await sql(server, `insert into public.email_subscriptions (email, subscribed) values (${lit(`gone-${tag}@example.com`)}, false)
                        on conflict (email) do update set subscribed = false`);
    await sql(server, `select public.suppress('email', ${lit(`supp-${tag}@example.com`)}, 'hard_bounce')`);
    await sql(server, `update public.contacts set deleted_at = now() where email = ${lit(`deleted-${tag}@example.com`)}`);
    const { data: t, error } = await users.alice.client
      .from('templates')
      .insert({
        name: 'news',
        type: 'email',
        subject: 'News for {{first_name | "you"}}',
        content: '<html><body><p>Hi {{first_name | "there"}} at {{contact.attributes.company | "home"}}</p>'
          + '<p><a href="https://example.com/offer?a=1&amp;b=2">Offer</a> <a href="mailto:x@example.com">mail</a></p></body></html>',
      })
      .select()
      .single();
    noError(error, 'template');
    campaign = await newCampaign('alice', { template_id: t.id, from_name: 'Acme News' });
  });

  it('refuses without a postal address (409) and for a user who may not send it', async () => {
    await sql(server, `update public.app_settings set postal_address = null`);
    const r = await api('alice', 'POST', `/api/campaigns/${campaign.id}/send`);
    assert.equal(r.status, 409, r.text);
    assert.equal(r.json.code, 'postal_address_missing');
    await sql(server, `update public.app_settings set postal_address = ${lit('Acme Inc., 1 Main St\nSpringfield')}`);
    const m = await api('mallory', 'POST', `/api/campaigns/${campaign.id}/send`);
    assert.equal(m.status, 404, `another user's campaign: ${m.text}`);
    const v = await api('viewer', 'POST', `/api/campaigns/${campaign.id}/send`);
    assert.equal(v.status, 403, `a viewer: ${v.text}`);
    const anon = await api(null, 'POST', `/api/campaigns/${campaign.id}/send`);
    assert.ok([401, 404].includes(anon.status), `anon: ${anon.status}`);
    assert.equal((await campaignRow(campaign.id)).status, 'draft');
  });

  it('sends once to each allowed live contact and marks the campaign sent', async () => {
    const r = await api('alice', 'POST', `/api/campaigns/${campaign.id}/send`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.status, 'sending');
    await eventually(async () => (await campaignRow(campaign.id)).status === 'sent', 'the campaign being sent');
    const row = await campaignRow(campaign.id);
    assert.equal(row.recipients_count, 3, 'ann, bob and the preview test\'s contact');
    assert.equal(row.skipped_count, 3, 'unsubscribed, suppressed and the phone-only contact were skipped');
    assert.equal(row.unknown_count, 0);
    assert.equal(sink.count(`ann-${tag}@example.com`), 1);
    assert.equal(sink.count(`bob-${tag}@example.com`), 1);
    for (const who of ['gone', 'supp', 'deleted', 'mallory-contact'])
      assert.equal(sink.count(`${who}-${tag}@example.com`), 0, `${who} got the campaign`);
    assert.equal(await sql(server, `select string_agg(status, ',' order by status) from public.email_messages where campaign_id = ${lit(campaign.id)}`), 'sent,sent,sent');
    // Sending again is not a second send.
    const again = await api('alice', 'POST', `/api/campaigns/${campaign.id}/send`);
    assert.equal(again.status, 409, again.text);
  });

  it('personalises, escapes, and carries the footer and the RFC 8058 headers', async () => {
    mail = await sink.waitFor(`ann-${tag}@example.com`);
    assert.equal(mail.subject, 'News for Ann');
    assert.match(mail.from, /Acme News/);
    assert.match(mail.from, /news@example\.org/);
    html = mail.html;
    assert.match(html, /Hi Ann at Acme &amp; Co/);
    assert.match(html, /Acme Inc\., 1 Main St<br>Springfield/);
    assert.match(mail.text, /Hi Ann at Acme & Co/);
    assert.match(mail.text, /Acme Inc\., 1 Main St\nSpringfield/);
    assert.match(mail.headers['list-unsubscribe'], new RegExp(`^<${server.url}/u/[A-Za-z0-9_-]{42}>$`));
    assert.equal(mail.headers['list-unsubscribe-post'], 'List-Unsubscribe=One-Click');
    assert.ok(!html.includes('https://example.com/offer'), 'the link was not rewritten');
    assert.match(html, /mailto:x@example\.com/, 'a mailto link was rewritten');
    const bob = await sink.waitFor(`bob-${tag}@example.com`);
    assert.match(bob.html, /Hi &lt;script&gt;x&lt;\/script&gt; at home/);
    assert.match(bob.text, /Hi <script>x<\/script> at home/);
  });

  it('records an open once and redirects a click only to the message\'s URL', async () => {
    const pixel = new RegExp(`${server.url}/t/o/([A-Za-z0-9_-]{42})\\.gif`).exec(html)[1];
    const click = new RegExp(`${server.url}/t/c/([A-Za-z0-9_-]{42})`).exec(html)[1];
    const o = await request(`${server.url}/t/o/${pixel}.gif`);
    assert.equal(o.status, 200);
    assert.equal(o.headers['content-type'], 'image/gif');
    for (const [h, v] of [['cache-control', 'no-store, max-age=0'], ['referrer-policy', 'no-referrer'], ['x-robots-tag', 'noindex']])
      assert.equal(o.headers[h], v, h);
    const msg = `(select id from public.email_messages where recipient = ${lit(`ann-${tag}@example.com`)})`;
    const opened = await sql(server, `select opened_at from public.email_messages where id = ${msg}`);
    assert.ok(opened, 'opened_at not set');
    await request(`${server.url}/t/o/${pixel}.gif`);
    assert.equal(await sql(server, `select opened_at from public.email_messages where id = ${msg}`), opened, 'opened_at changed');
    const c = await request(`${server.url}/t/c/${click}`);
    assert.equal(c.status, 302);
    assert.equal(c.headers.location, 'https://example.com/offer?a=1&b=2');
    assert.equal(c.headers['x-robots-tag'], 'noindex');
    await request(`${server.url}/t/c/${click}`);
    assert.equal(await sql(server, `select count(*) from public.email_clicks where message_id = ${msg}`), '2');
    assert.equal(await sql(server, `select status from public.email_messages where id = ${msg}`), 'clicked');
  });

  it('refuses forged and re-purposed tokens (no open redirect)', async () => {
    const click = new RegExp(`${server.url}/t/c/([A-Za-z0-9_-]{42})`).exec(html)[1];
    const pixel = new RegExp(`${server.url}/t/o/([A-Za-z0-9_-]{42})\\.gif`).exec(html)[1];
    // one character changed
    const flipped = click.slice(0, 10) + (click[10] === 'A' ? 'B' : 'A') + click.slice(11);
    assert.equal((await request(`${server.url}/t/c/${flipped}`)).status, 404);
    // a token of another kind (the open pixel's) is not a click token
    assert.equal((await request(`${server.url}/t/c/${pixel}`)).status, 404);
    // a URL in the query is ignored: the redirect comes from the message only
    const r = await request(`${server.url}/t/c/${click}?url=https://evil.example`);
    assert.equal(r.headers.location, 'https://example.com/offer?a=1&b=2');
    assert.equal((await request(`${server.url}/t/c/${'A'.repeat(42)}`)).status, 404);
    assert.equal((await request(`${server.url}/u/${'A'.repeat(42)}`, { method: 'POST' })).status, 404);
    assert.equal((await request(`${server.url}/t/c/..%2f..%2fapi`)).status, 404);
  });

  it('unsubscribes in one click, idempotently, only the message\'s recipient', async () => {
    const token = /\/u\/([A-Za-z0-9_-]{42})>/.exec(mail.headers['list-unsubscribe'])[1];
    const page = await request(`${server.url}/u/${token}`);
    assert.equal(page.status, 200);
    assert.match(page.headers['content-type'], /text\/html/);
    assert.match(page.text, /<form method="post"/);
    assert.equal(await sql(server, `select count(*) from public.suppressions where address = ${lit(`ann-${tag}@example.com`)}`), '0',
      'GET unsubscribed (a mail scanner would)');
    const post = { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' };
    assert.equal((await request(`${server.url}/u/${token}`, post)).status, 200);
    assert.equal((await request(`${server.url}/u/${token}`, post)).status, 200);
    assert.equal(await sql(server, `select reason from public.suppressions where address = ${lit(`ann-${tag}@example.com`)}`), 'unsubscribe');
    assert.equal(await sql(server, `select subscribed from public.email_subscriptions where email = ${lit(`ann-${tag}@example.com`)}`), 'f');
    assert.equal(await sql(server, `select count(*) from public.suppressions where address = ${lit(`bob-${tag}@example.com`)}`), '0',
      'another recipient was unsubscribed');
    assert.match((await request(`${server.url}/u/${token}`)).text, /You are unsubscribed/);
  });

  it('rolls the counts up into analytics_data', async () => {
    await sql(server, `select sending.rollup_analytics(current_date - 1)`);
    const sent = await sql(server, `select sum(value) from public.analytics_data
      where metric_type = 'email_sent' and dimensions = jsonb_build_object('campaign_id', ${lit(campaign.id)}::uuid)`);
    assert.equal(Number(sent), 3);
    const clicked = await sql(server, `select sum(value) from public.analytics_data
      where metric_type = 'email_clicked' and dimensions = jsonb_build_object('campaign_id', ${lit(campaign.id)}::uuid)`);
    assert.equal(Number(clicked), 1);
  });

  it('the roll-up job recounts every day of a campaign that changed, also days before yesterday', async () => {
    // As if the campaign had gone out ten days ago (rewritten without
    // triggers: no change is marked, sent_at is set-once), and Bob opened it
    // today. The job's old roll-up (the days from yesterday on) never looked
    // at those days again, and kept today's rows of the test above.
    const dims = `jsonb_build_object('campaign_id', ${lit(campaign.id)}::uuid)`;
    await sql(server, `set session_replication_role = replica;
      update public.email_messages set sent_at = sent_at - interval '10 days', created_at = created_at - interval '10 days'
      where campaign_id = ${lit(campaign.id)}`);
    const bob = await sink.waitFor(`bob-${tag}@example.com`);
    const pixel = new RegExp(`${server.url}/t/o/([A-Za-z0-9_-]{42})\\.gif`).exec(bob.html)[1];
    assert.equal((await request(`${server.url}/t/o/${pixel}.gif`)).status, 200);
    await sql(server, `select jobs.enqueue('send.rollup', '{}'::jsonb, now(), 'send.rollup', 3, '1 second')`);
    // metric@days ago=value, the days counted back from the messages' own day + 10 (today)
    const days = () => sql(server, `select coalesce(string_agg(a.metric_type || '@' || (d.day - a.date) || '=' || a.value,
        ',' order by a.metric_type, a.date), '')
      from public.analytics_data a,
           (select (max(m.sent_at) at time zone coalesce((select timezone::text from public.app_settings limit 1), 'UTC'))::date + 10 as day
            from public.email_messages m where m.campaign_id = ${lit(campaign.id)}) d
      where a.metric_type in ('email_sent', 'email_opened', 'email_clicked') and a.dimensions = ${dims}`);
    const want = 'email_clicked@10=1,email_opened@10=2,email_sent@10=3';
    await eventually(async () => (await days()) === want, 'the roll-up job', 20000)
      .catch(async (e) => { throw new Error(`${e.message}: ${await days()}`); });
  });
});

describe('limits, pause, cancel, test sends', () => {
  it('pauses a campaign that reaches the monthly limit, with a reason, and resumes it', async () => {
    await sql(server, `update public.app_settings set monthly_email_limit =
      coalesce((select used from sending.monthly_usage where month = sending.current_month() and channel = 'email'), 0) + 1`);
    const owner = 'mallory';
    await addContacts(owner, [1, 2, 3].map((i) => ({ email: `lim${i}-${tag}@example.com`, first_name: `L${i}` })));
    const c = await newCampaign(owner, { subject: 'Limited', content: '<p>Hello {{first_name}}</p>' });
    const r = await api(owner, 'POST', `/api/campaigns/${c.id}/send`);
    assert.equal(r.status, 200, r.text);
    await eventually(async () => (await campaignRow(c.id)).status === 'paused', 'the campaign pausing at the limit');
    const row = await campaignRow(c.id);
    assert.match(row.pause_reason, /monthly e-mail limit/);
    const sentSoFar = Number(await sql(server, `select count(*) from public.email_messages where campaign_id = ${lit(c.id)} and status = 'sent'`));
    assert.ok(sentSoFar <= 1, `${sentSoFar} messages went out past the limit`);
    // A user cannot clear the reason through /rest/v1.
    const hack = await users[owner].client.from('campaigns').update({ pause_reason: null }).eq('id', c.id).select();
    assert.ok(hack.error, 'a user changed the pause reason');
    await sql(server, `update public.app_settings set monthly_email_limit = 1000000`);
    const res = await api(owner, 'POST', `/api/campaigns/${c.id}/resume`);
    assert.equal(res.status, 200, res.text);
    await eventually(async () => (await campaignRow(c.id)).status === 'sent', 'the resumed campaign finishing');
    for (const i of [1, 2, 3]) assert.equal(sink.count(`lim${i}-${tag}@example.com`), 1);
  });

  it('cancels a paused campaign: what was not sent is dropped; deleted only once cancelled', async () => {
    await addContacts('alice', [{ email: `cx-${tag}@example.com`, first_name: 'Cx' }]);
    const c = await newCampaign('alice', { subject: 'Cancelled', content: 'Plain {{first_name}}' });
    await sql(server, `update public.campaigns set status = 'paused' where id = ${lit(c.id)}`);
    await sql(server, `select sending.materialise(${lit(c.id)})`);
    // a paused campaign is not deleted (its messages would stay queued): 409, saying what to do
    const del = await api('alice', 'DELETE', `/api/campaigns/${c.id}`);
    assert.equal(del.status, 409, del.text);
    assert.match(del.text, /a paused campaign cannot be deleted/);
    assert.match(del.text, /Cancel the campaign first/);
    const r = await api('alice', 'POST', `/api/campaigns/${c.id}/cancel`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.status, 'cancelled');
    assert.equal((await api('alice', 'DELETE', `/api/campaigns/${c.id}`)).status, 200, 'deleted once cancelled');
    assert.equal(await sql(server, `select count(*) from public.email_messages where campaign_id = ${lit(c.id)} and status <> 'dropped'`), '0');
    assert.equal((await api('mallory', 'POST', `/api/campaigns/${c.id}/cancel`)).status, 404);
  });

  it('sends a test message to a given address without recording it', async () => {
    const c = await newCampaign('alice', { subject: 'Test {{first_name | "friend"}}', content: 'Hello {{first_name | "friend"}}' });
    const bad = await api('alice', 'POST', `/api/campaigns/${c.id}/test`, { to: 'not an address' });
    assert.equal(bad.status, 400);
    const to = `tester-${tag}@example.com`;
    const r = await api('alice', 'POST', `/api/campaigns/${c.id}/test`, { to });
    assert.equal(r.status, 202, r.text);
    const m = await sink.waitFor(to);
    assert.equal(m.subject, '[Test] Test friend');
    assert.match(m.text, /Hello friend/);
    assert.equal(await sql(server, `select count(*) from public.email_messages where campaign_id = ${lit(c.id)}`), '0');
    assert.equal((await api('mallory', 'POST', `/api/campaigns/${c.id}/test`, { to })).status, 404);
  });

  it('starts a scheduled campaign when its date comes', async () => {
    await addContacts('alice', [{ email: `sched-${tag}@example.com`, first_name: 'S' }]);
    const c = await newCampaign('alice', { subject: 'Scheduled', content: '<p>Scheduled for {{first_name}}</p>' });
    const when = new Date(Date.now() + 2000).toISOString();
    const { error } = await users.alice.client.from('campaigns').update({ status: 'scheduled', scheduled_date: when }).eq('id', c.id);
    noError(error, 'schedule');
    await eventually(async () => (await campaignRow(c.id)).status === 'sent', 'the scheduled campaign being sent');
    assert.equal(sink.count(`sched-${tag}@example.com`), 1);
  });
});

// Sends an e-mail campaign to n new addresses (`<prefix>-<i>-<tag>@example.com`)
// on a server of its own (env: its settings beside SMTP at smtpUrl) and waits
// until it is sent; returns the server (the caller stops it), the campaign's
// id and the addresses.
async function sendOnOwnServer(smtpUrl, env, prefix, n) {
  const own = await startServer({ API_EXTERNAL_URL: 'http://127.0.0.1:1', SMTP_URL: smtpUrl, EMAIL_FROM: 'news@example.org', JOB_POLL_INTERVAL: '1', ...env });
  try {
    const service = client(own, own.serviceKey);
    const email = uniqueEmail(prefix);
    noError((await service.auth.admin.createUser({ email, password: PASSWORD, email_confirm: true, app_metadata: { role: 'user' } })).error);
    const s = await signIn(own, email);
    await sql(own, `update public.app_settings set postal_address = 'x'`);
    const to = Array.from({ length: n }, (_, i) => `${prefix}-${i}-${tag}@example.com`);
    noError((await s.client.from('contacts').insert(to.map((e) => ({ email: e, attributes: {} })))).error);
    const { data: c, error } = await s.client.from('campaigns').insert({ name: prefix, type: 'email', subject: 's', content: '<p>c</p>' }).select().single();
    noError(error);
    const r = await request(`${own.url}/api/campaigns/${c.id}/send`, {
      method: 'POST', headers: { apikey: own.anonKey, Authorization: `Bearer ${s.session.access_token}` },
    });
    assert.equal(r.status, 200, r.text);
    await eventually(async () => JSON.parse(await sql(own, `select row_to_json(c) from public.campaigns c where id = ${lit(c.id)}`)).status === 'sent', 'the campaign being sent');
    return { own, id: c.id, to };
  } catch (e) {
    await own.stop();
    throw e;
  }
}

describe('a server without PIPELINING', () => {
  it('gets every message once, its commands one at a time', async () => {
    const plain = await startSmtpSink({ pipelining: false });
    let own;
    try {
      const sent = await sendOnOwnServer(plain.url, { EMAIL_RATE_PER_SECOND: '0' }, 'plain', 12);
      own = sent.own;
      for (const e of sent.to) assert.equal(plain.count(e), 1, e);
      assert.equal(await sql(own, `select string_agg(distinct status, ',') from public.email_messages where campaign_id = ${lit(sent.id)}`), 'sent');
    } finally {
      await own?.stop();
      await plain.stop();
    }
  });
});

describe('a rate limit', () => {
  // SEND_BATCH_SIZE is at most a second of the rate: a worker claims that many
  // and hands them over as fast as the server takes them, so a claim is the
  // largest burst the provider sees. Each batch's audit row names its messages.
  it('claims at most a second of EMAIL_RATE_PER_SECOND at once, whatever SEND_BATCH_SIZE says', async () => {
    let own;
    try {
      const sent = await sendOnOwnServer(sink.url, { EMAIL_RATE_PER_SECOND: '4', SEND_BATCH_SIZE: '100', SEND_WORKERS: '1' }, 'rate', 10);
      own = sent.own;
      for (const e of sent.to) assert.equal(sink.count(e), 1, e);
      const sizes = (await sql(own, `select string_agg(n::text, ',' order by n desc) from (
          select (select sum(jsonb_array_length(v)) from jsonb_each(a.new_value -> 'messages') e(k, v)) as n
          from public.audit_logs a
          where a.resource_id = ${lit(sent.id)} and a.new_value ->> 'event' = 'sent_batch') x where n > 0`)).split(',').map(Number);
      assert.deepEqual(sizes, [4, 4, 2], 'claims of at most 4 (the rate), not one of 10');
    } finally {
      await own?.stop();
    }
  });
});

describe('without a provider', () => {
  it('answers 409 provider_not_configured', async () => {
    const bare = await startServer({ API_EXTERNAL_URL: 'http://127.0.0.1:1' });
    try {
      const service = client(bare, bare.serviceKey);
      const email = uniqueEmail('np');
      noError((await service.auth.admin.createUser({ email, password: PASSWORD, email_confirm: true, app_metadata: { role: 'user' } })).error);
      const s = await signIn(bare, email);
      await sql(bare, `update public.app_settings set postal_address = 'x'`);
      const { data: c, error } = await s.client.from('campaigns').insert({ name: 'np', type: 'email', subject: 's', content: 'c' }).select().single();
      noError(error);
      const r = await request(`${bare.url}/api/campaigns/${c.id}/send`, {
        method: 'POST', headers: { apikey: bare.anonKey, Authorization: `Bearer ${s.session.access_token}` },
      });
      assert.equal(r.status, 409, r.text);
      assert.equal(r.json.code, 'provider_not_configured');
    } finally {
      await bare.stop();
    }
  });
});
