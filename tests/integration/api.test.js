// The specification's /api endpoints (campaigns, analytics, reports and their
// export) against the real binary, and the retention job. Users are made with
// the service key through supabase-js auth.admin.createUser and sign in with
// supabase-js; fixtures that only the delivery pipeline may write (messages,
// clicks, old audit rows) go in with psql as the database owner. Every figure
// a report shows is computed here again, independently, from the fixture.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  startServer, client, signIn, request, uniqueEmail, sql, lit, noError, sleep, dbUrl, runCmd, PASSWORD, eventually, api as apiAs,
} from './helpers.js';

let server;
const users = {}; // name -> {id, token, email}
const api = (who, method, p, body, opts) => apiAs(server, who && users[who], method, p, body, opts);
const tag = crypto.randomBytes(3).toString('hex');

before(async () => {
  // The retention job runs every second here, so its test does not wait long.
  server = await startServer({ RETENTION_INTERVAL: '1' });
  const service = client(server, server.serviceKey);
  for (const [name, role] of [['alice', 'user'], ['bob', 'user'], ['viewer', 'viewer'], ['boss', 'admin'], ['pager', 'user']]) {
    const email = uniqueEmail(name);
    const { error } = await service.auth.admin.createUser({ email, password: PASSWORD, email_confirm: true, app_metadata: { role } });
    noError(error, `createUser(${name})`);
    const s = await signIn(server, email);
    assert.equal(s.user.app_metadata.role, role);
    users[name] = { id: s.user.id, token: s.session.access_token, email };
  }
});
after(async () => {
  await server?.stop();
});

/** Asserts a 4xx/5xx in PostgREST's shape, and returns its body. */
function assertError(r, status, { code, field } = {}) {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text}`);
  assert.deepEqual(Object.keys(r.json).sort(), ['code', 'details', 'hint', 'message']);
  assert.equal(typeof r.json.message, 'string');
  assert.ok(r.json.message.length > 0);
  if (code) assert.equal(r.json.code, code);
  if (field) assert.equal(r.json.details, `field: ${field}`, `details of ${r.text}`);
  return r.json;
}

async function createCampaign(who, body) {
  const r = await api(who, 'POST', '/api/campaigns', body);
  assert.equal(r.status, 201, r.text);
  return r.json;
}

const future = () => new Date(Date.now() + 30 * 86400e3).toISOString();

describe('who may call /api', () => {
  it('refuses a request without an apikey', async () => {
    const r = await request(`${server.url}/api/campaigns`, { headers: { Authorization: `Bearer ${users.alice.token}` } });
    assert.equal(r.status, 401);
  });

  it('answers 401 to the anon key alone (RLS: anon has no privilege)', async () => {
    const r = await api(null, 'GET', '/api/campaigns');
    assertError(r, 401, { code: '42501' });
    assert.equal(r.headers['www-authenticate'], 'Bearer');
  });

  it('refuses a forged token', async () => {
    const r = await request(`${server.url}/api/campaigns`, {
      headers: { apikey: server.anonKey, Authorization: `Bearer ${users.alice.token.slice(0, -4)}AAAA` },
    });
    assert.equal(r.status, 401);
  });
});

describe('campaigns: validation', () => {
  const cases = [
    [{}, 400, 'name'],
    [{ name: 'x' }, 400, 'type'],
    [{ name: '   ', type: 'email' }, 400, 'name'],
    [{ name: 'x'.repeat(256), type: 'email' }, 400, 'name'],
    [{ name: 5, type: 'email' }, 400, 'name'],
    [{ name: 'a\u0001b', type: 'email' }, 400, 'name'],
    [{ name: 'x', type: 'fax' }, 400, 'type'],
    [{ name: 'x', type: 'email', colour: 'red' }, 400, 'colour'],
    [{ name: 'x', type: 'email', status: 'bogus' }, 400, 'status'],
    [{ name: 'x', type: 'email', status: 'sent' }, 422, 'status'],
    [{ name: 'x', type: 'email', status: 'scheduled' }, 422, 'scheduled_date'],
    [{ name: 'x', type: 'email', status: 'scheduled', scheduled_date: '2020-01-01T00:00:00Z' }, 422, 'scheduled_date'],
    [{ name: 'x', type: 'email', scheduled_date: 'tomorrow' }, 400, 'scheduled_date'],
    [{ name: 'x', type: 'email', scheduled_date: '2030-01-01T00:00:00' }, 400, 'scheduled_date'],
    [{ name: 'x', type: 'email', content: { html: 1 } }, 400, 'content'],
  ];
  for (const [body, status, field] of cases) {
    it(`${JSON.stringify(body).slice(0, 70)} -> ${status} naming ${field}`, async () => {
      assertError(await api('alice', 'POST', '/api/campaigns', body), status, { field });
    });
  }

  it('refuses a body that is not a JSON object', async () => {
    assertError(await api('alice', 'POST', '/api/campaigns', 'not json'), 400, { code: 'invalid_body' });
    assertError(await api('alice', 'POST', '/api/campaigns', '[1]'), 400, { code: 'invalid_body' });
  });

  it('counts characters, not bytes, and accepts 255 of them', async () => {
    const c = await createCampaign('alice', { name: 'é'.repeat(255), type: 'sms' });
    assert.equal(c.name, 'é'.repeat(255));
    assertError(await api('alice', 'POST', '/api/campaigns', { name: 'é'.repeat(256), type: 'sms' }), 400, { field: 'name' });
  });

  it('refuses a path id that is not a UUID', async () => {
    assertError(await api('alice', 'GET', '/api/campaigns/42'), 400, { field: 'id' });
    assertError(await api('alice', 'PUT', '/api/campaigns/42', { name: 'x' }), 400, { field: 'id' });
    assertError(await api('alice', 'DELETE', '/api/campaigns/42'), 400, { field: 'id' });
  });
});

describe('campaigns: ownership and roles', () => {
  let mine;
  let bobs;
  before(async () => {
    mine = await createCampaign('alice', { name: `alice-${tag}`, type: 'email', content: 'Hello\nthere' });
    bobs = await createCampaign('bob', { name: `bob-${tag}`, type: 'sms' });
  });

  it('creates with defaults, the owner and a Location', async () => {
    assert.equal(mine.user_id, users.alice.id);
    assert.equal(mine.status, 'draft');
    assert.equal(mine.content, 'Hello\nthere');
    assert.equal(mine.deleted_at, null);
    const r = await api('alice', 'GET', `/api/campaigns/${mine.id}`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, mine);
  });

  it('a user neither sees nor changes nor deletes another user\'s campaign', async () => {
    assertError(await api('bob', 'GET', `/api/campaigns/${mine.id}`), 404, { code: 'not_found' });
    assertError(await api('bob', 'PUT', `/api/campaigns/${mine.id}`, { name: 'stolen' }), 404);
    assertError(await api('bob', 'DELETE', `/api/campaigns/${mine.id}`), 404);
    const list = await api('bob', 'GET', '/api/campaigns?per_page=1000');
    assert.equal(list.status, 200);
    assert.ok(list.json.every((c) => c.user_id === users.bob.id));
    assert.ok(list.json.some((c) => c.id === bobs.id));
    const still = await api('alice', 'GET', `/api/campaigns/${mine.id}`);
    assert.equal(still.json.name, mine.name);
    assert.equal(still.json.deleted_at, null);
  });

  it('an admin sees and changes every campaign', async () => {
    const list = await api('boss', 'GET', '/api/campaigns?per_page=1000');
    const ids = list.json.map((c) => c.id);
    assert.ok(ids.includes(mine.id) && ids.includes(bobs.id));
    const r = await api('boss', 'PUT', `/api/campaigns/${bobs.id}`, { name: `bob-${tag}-renamed` });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.name, `bob-${tag}-renamed`);
    assert.equal(r.json.user_id, users.bob.id, 'the owner stays');
  });

  it('a viewer reads every campaign and writes nothing', async () => {
    const list = await api('viewer', 'GET', '/api/campaigns?per_page=1000');
    const ids = list.json.map((c) => c.id);
    assert.ok(ids.includes(mine.id) && ids.includes(bobs.id));
    assert.equal((await api('viewer', 'GET', `/api/campaigns/${mine.id}`)).status, 200);
    assertError(await api('viewer', 'POST', '/api/campaigns', { name: 'v', type: 'email' }), 403, { code: '42501' });
    assertError(await api('viewer', 'PUT', `/api/campaigns/${mine.id}`, { name: 'v' }), 403, { code: '42501' });
    assertError(await api('viewer', 'DELETE', `/api/campaigns/${mine.id}`), 403, { code: '42501' });
    const after = await api('alice', 'GET', `/api/campaigns/${mine.id}`);
    assert.equal(after.json.name, mine.name);
    assert.equal(after.json.deleted_at, null);
  });
});

describe('campaigns: status transitions', () => {
  it('walks draft -> scheduled -> (delivery: sending) -> paused -> scheduled and refuses the rest', async () => {
    const c = await createCampaign('alice', { name: `flow-${tag}`, type: 'email' });
    const put = (body) => api('alice', 'PUT', `/api/campaigns/${c.id}`, body);

    let e = assertError(await put({ status: 'sent' }), 409, { code: 'invalid_transition' });
    assert.match(e.message, /from draft to sent/);
    assert.equal(e.details, 'allowed from draft: scheduled, cancelled');
    assertError(await put({ status: 'scheduled' }), 422, { code: 'scheduled_date_required' });
    assertError(await put({ status: 'scheduled', scheduled_date: '2001-01-01T00:00:00Z' }), 422, { code: 'scheduled_date_in_past' });

    const when = future();
    let r = await put({ status: 'scheduled', scheduled_date: when });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.status, 'scheduled');
    assert.equal(new Date(r.json.scheduled_date).toISOString(), when);
    assertError(await put({ type: 'sms' }), 409, { code: 'type_locked' });
    assertError(await put({ status: 'draft' }), 409, { code: 'invalid_transition' });
    r = await put({ name: `flow-${tag}-2` }); // other fields change in any state
    assert.equal(r.status, 200);
    // sending and sent are the delivery work's (service_role), not the API's
    e = assertError(await put({ status: 'sending' }), 409, { code: 'invalid_transition' });
    assert.equal(e.details, 'allowed from scheduled: paused, cancelled');
    await sql(server, `update public.campaigns set status = 'sending' where id = ${lit(c.id)}`);
    assertError(await put({ status: 'sent' }), 409, { code: 'invalid_transition' });
    r = await put({ status: 'paused' });
    assert.equal(r.status, 200, r.text);
    assertError(await put({ status: 'sending' }), 409, { code: 'invalid_transition' });
    r = await put({ status: 'scheduled', scheduled_date: future() });
    assert.equal(r.status, 200, r.text);
    await sql(server, `update public.campaigns set status = 'sent' where id = ${lit(c.id)}`);
    e = assertError(await put({ status: 'cancelled' }), 409, { code: 'invalid_transition' });
    assert.equal(e.details, 'allowed from sent: none');
    r = await put({ status: 'sent' }); // the same status is not a transition
    assert.equal(r.status, 200);
  });

  it('paused -> scheduled needs a date in the future again; cancelled is final', async () => {
    const c = await createCampaign('alice', { name: `pause-${tag}`, type: 'sms', status: 'scheduled', scheduled_date: future() });
    assert.equal(c.status, 'scheduled');
    const put = (body) => api('alice', 'PUT', `/api/campaigns/${c.id}`, body);
    assert.equal((await put({ status: 'paused' })).status, 200);
    await sql(server, `update public.campaigns set scheduled_date = now() - interval '1 hour' where id = ${lit(c.id)}`);
    assertError(await put({ status: 'scheduled' }), 422, { code: 'scheduled_date_in_past' });
    assert.equal((await put({ status: 'scheduled', scheduled_date: future() })).status, 200);
    assert.equal((await put({ status: 'cancelled' })).status, 200);
    for (const s of ['draft', 'scheduled', 'sending', 'sent', 'paused', 'active', 'completed', 'failed']) {
      const e = assertError(await put({ status: s }), 409, { code: 'invalid_transition' });
      assert.equal(e.details, 'allowed from cancelled: none');
    }
  });

  it('validates update bodies', async () => {
    const c = await createCampaign('alice', { name: `upd-${tag}`, type: 'email' });
    const put = (body) => api('alice', 'PUT', `/api/campaigns/${c.id}`, body);
    assertError(await put({}), 400, { field: '(body)' });
    assertError(await put({ status: 'archived' }), 400, { field: 'status' });
    assertError(await put({ name: null }), 400, { field: 'name' });
    assertError(await put({ user_id: users.bob.id }), 400, { field: 'user_id' });
    const r = await put({ content: null, type: 'social' }); // a draft may change type
    assert.equal(r.status, 200);
    assert.equal(r.json.type, 'social');
    assert.equal(r.json.content, null);
  });
});

describe('campaigns: soft delete', () => {
  it('sets deleted_at, keeps the row and its delivery history, and a second delete is 404', async () => {
    const c = await createCampaign('alice', { name: `gone-${tag}`, type: 'email' });
    await sql(server, `
      insert into public.email_messages (campaign_id, recipient, status, sent_at)
        values (${lit(c.id)}, 'keep1@example.com', 'delivered', now()), (${lit(c.id)}, 'keep2@example.com', 'opened', now());
      insert into public.sms_messages (campaign_id, recipient, message, status)
        values (${lit(c.id)}, '+15550001111', 'hi', 'delivered');`);
    const r = await api('alice', 'DELETE', `/api/campaigns/${c.id}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.id, c.id);
    assert.ok(r.json.deleted_at);
    assertError(await api('alice', 'GET', `/api/campaigns/${c.id}`), 404);
    assertError(await api('alice', 'DELETE', `/api/campaigns/${c.id}`), 404);
    assertError(await api('alice', 'PUT', `/api/campaigns/${c.id}`, { name: 'back' }), 404);
    const list = await api('alice', 'GET', '/api/campaigns?per_page=1000');
    assert.ok(!list.json.some((x) => x.id === c.id));
    const row = await sql(server, `select deleted_at is not null from public.campaigns where id = ${lit(c.id)}`);
    assert.equal(row, 't');
    const kept = await sql(server, `select (select count(*) from public.email_messages where campaign_id = ${lit(c.id)}) || ',' ||
                                           (select count(*) from public.sms_messages where campaign_id = ${lit(c.id)})`);
    assert.equal(kept, '2,1');
    assertError(await api('alice', 'POST', '/api/reports', { campaign_id: c.id }), 404);
  });
});

describe('campaigns: pagination', () => {
  const made = [];
  before(async () => {
    for (let i = 0; i < 5; i++)
      made.push((await createCampaign('pager', { name: `page-${i}`, type: i < 3 ? 'email' : 'sms' })).id);
  });

  it('pages with X-Total-Count and Link', async () => {
    const seen = [];
    for (let page = 1; page <= 3; page++) {
      const r = await api('pager', 'GET', `/api/campaigns?page=${page}&per_page=2`);
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-total-count'], '5');
      const link = (p, rel) => `</api/campaigns?page=${p}&per_page=2>; rel="${rel}"`;
      const want = [link(1, 'first')];
      if (page > 1) want.push(link(page - 1, 'prev'));
      if (page < 3) want.push(link(page + 1, 'next'));
      want.push(link(3, 'last'));
      assert.equal(r.headers.link, want.join(', '));
      assert.equal(r.json.length, page < 3 ? 2 : 1);
      seen.push(...r.json.map((c) => c.id));
    }
    assert.deepEqual([...seen].sort(), [...made].sort(), 'every campaign exactly once');
    assert.deepEqual(seen, [...made].reverse(), 'newest first');
    const beyond = await api('pager', 'GET', '/api/campaigns?page=4&per_page=2');
    assert.equal(beyond.status, 200);
    assert.deepEqual(beyond.json, []);
  });

  it('filters by type and status and keeps the filters in the links', async () => {
    const r = await api('pager', 'GET', '/api/campaigns?type=sms&per_page=1');
    assert.equal(r.headers['x-total-count'], '2');
    assert.equal(r.headers.link,
      '</api/campaigns?page=1&per_page=1&type=sms>; rel="first", </api/campaigns?page=2&per_page=1&type=sms>; rel="next", ' +
      '</api/campaigns?page=2&per_page=1&type=sms>; rel="last"');
    assert.ok(r.json.every((c) => c.type === 'sms'));
    const s = await api('pager', 'GET', '/api/campaigns?status=sent');
    assert.equal(s.headers['x-total-count'], '0');
    assert.deepEqual(s.json, []);
  });

  it('refuses bad paging and filter values', async () => {
    assertError(await api('pager', 'GET', '/api/campaigns?page=0'), 400, { field: 'page' });
    assertError(await api('pager', 'GET', '/api/campaigns?page=x'), 400, { field: 'page' });
    assertError(await api('pager', 'GET', '/api/campaigns?per_page=1001'), 400, { field: 'per_page' });
    assertError(await api('pager', 'GET', '/api/campaigns?status=bogus'), 400, { field: 'status' });
    assertError(await api('pager', 'GET', '/api/campaigns?type=fax'), 400, { field: 'type' });
  });
});

// ------------------------------------------------------------------ reports

const DAY1 = '2026-03-10';
const DAY2 = '2026-03-11';
// e-mail fixture: status, day, opened, clicks (email_clicks rows), recipient
const EMAILS = [
  { to: 'r1@example.com', status: 'clicked', day: DAY1, opened: true, clicks: 2 },
  { to: 'r2@example.com', status: 'opened', day: DAY1, opened: true, clicks: 0 },
  { to: 'r3@example.com', status: 'delivered', day: DAY1, opened: false, clicks: 0 },
  { to: 'r4@example.com', status: 'bounced', day: DAY2, opened: false, clicks: 0 },
  { to: 'r5@example.com', status: 'failed', day: DAY2, opened: false, clicks: 0 },
  { to: 'r6@example.com', status: 'delivered', day: DAY2, opened: false, clicks: 1 },
  // one message per campaign and recipient (migration 026): a second recipient
  { to: 'r9@example.com', status: 'delivered', day: DAY2, opened: true, clicks: 0 },
  { to: 'r7@example.com', status: 'dropped', day: DAY2, opened: false, clicks: 0 },
  { to: 'r8@example.com', status: 'spam_reported', day: DAY2, opened: false, clicks: 0 },
];
// SMS fixture: status, day, cost as Twilio reports it (negative), segments
const SMSES = [
  { to: '+15550000001', status: 'delivered', day: DAY1, cost: '-0.0075', segments: 1 },
  { to: '+15550000002', status: 'delivered', day: DAY1, cost: '-0.0150', segments: 2 },
  { to: '+15550000003', status: 'undelivered', day: DAY2, cost: '-0.0075', segments: 1 },
  { to: '+15550000004', status: 'failed', day: DAY2, cost: null, segments: 1 },
  { to: '+15550000005', status: 'sent', day: DAY2, cost: '-0.0075', segments: 1 },
  { to: '+15550000006', status: 'read', day: DAY2, cost: '-0.0100', segments: 3 },
];

/** The report figures of docs/api.md, computed from the fixture rows. */
function expectedFigures(emails, smses) {
  const pct = (a, b) => (b === 0 ? null : Math.round((10000 * a) / b) / 100);
  const E = {
    sent: ['sent', 'deferred', 'delivered', 'bounced', 'opened', 'clicked', 'spam_reported', 'unsubscribed'],
    delivered: ['delivered', 'opened', 'clicked', 'spam_reported', 'unsubscribed'],
    failed: ['failed', 'dropped'],
  };
  const S = { sent: ['sent', 'delivered', 'undelivered', 'read'], delivered: ['delivered', 'read'], failed: ['failed', 'undelivered'] };
  const fig = (em, sm) => {
    const opened = em.filter((m) => m.opened || m.clicks > 0 || ['opened', 'clicked'].includes(m.status));
    const clickedMsgs = em.filter((m) => m.clicks > 0 || m.status === 'clicked');
    const eSent = em.filter((m) => E.sent.includes(m.status)).length;
    const eDelivered = em.filter((m) => E.delivered.includes(m.status)).length;
    const sent = eSent + sm.filter((m) => S.sent.includes(m.status)).length;
    const delivered = eDelivered + sm.filter((m) => S.delivered.includes(m.status)).length;
    const bounced = em.filter((m) => m.status === 'bounced').length;
    return {
      messages: em.length + sm.length,
      sent,
      delivered,
      failed: em.filter((m) => E.failed.includes(m.status)).length + sm.filter((m) => S.failed.includes(m.status)).length,
      bounced,
      opened: opened.length,
      clicked: em.reduce((n, m) => n + m.clicks, 0),
      unique_opens: new Set(opened.map((m) => m.to)).size,
      unique_clicks: new Set(clickedMsgs.map((m) => m.to)).size,
      clicked_messages: clickedMsgs.length,
      segments: sm.reduce((n, m) => n + m.segments, 0),
      cost: sm.reduce((n, m) => n + Math.abs(Number(m.cost ?? 0)), 0),
      delivery_rate: pct(delivered, sent),
      bounce_rate: pct(bounced, eSent),
      open_rate: pct(opened.length, eDelivered),
      click_rate: pct(clickedMsgs.length, eDelivered),
      unknown: em.filter((m) => m.status === 'unknown').length + sm.filter((m) => m.status === 'unknown').length,
      unsubscribed: em.filter((m) => m.status === 'unsubscribed').length,
    };
  };
  const days = [...new Set([...emails, ...smses].map((m) => m.day))].sort();
  return {
    totals: fig(emails, smses),
    email: fig(emails, []),
    sms: fig([], smses),
    daily: days.map((d) => ({ date: d, ...fig(emails.filter((m) => m.day === d), smses.filter((m) => m.day === d)) })),
  };
}

function assertFigures(got, want, what) {
  for (const [k, v] of Object.entries(want)) {
    if (k === 'cost') assert.ok(Math.abs(Number(got.cost) - v) < 1e-9, `${what}.cost: ${got.cost} != ${v}`);
    else assert.equal(got[k], v, `${what}.${k}`);
  }
}

/** A small RFC 4180 reader (quoted fields, doubled quotes, CRLF). */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let f = '';
  let q = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (q) {
      if (ch === '"' && text[i + 1] === '"') { f += '"'; i++; } else if (ch === '"') q = false; else f += ch;
    } else if (ch === '"') q = true;
    else if (ch === ',') { row.push(f); f = ''; } else if (ch === '\r' && text[i + 1] === '\n') { row.push(f); rows.push(row); row = []; f = ''; i++; } else f += ch;
  }
  assert.equal(q, false, 'unterminated quote');
  assert.equal(f, '', 'the last line ends with CRLF');
  return rows;
}

describe('reports', () => {
  const campaignName = `=HYPERLINK("http://evil.example","x") ${tag}`;
  let camp;
  let report;
  before(async () => {
    camp = await createCampaign('alice', { name: campaignName, type: 'email' });
    const ts = (day) => lit(`${day}T15:00:00Z`); // mid-day in America/New_York too
    const ev = EMAILS.map((m, i) => `(${lit(`e${i}-${tag}`)}, ${lit(camp.id)}, ${lit(m.to)}, ${lit(m.status)}, ${ts(m.day)}, ${m.opened ? ts(m.day) : 'null'})`);
    const sv = SMSES.map((m) => `(${lit(camp.id)}, ${lit(m.to)}, 'hello', ${lit(m.status)}, ${m.cost === null ? 'null' : m.cost}, ${m.segments}, ${ts(m.day)})`);
    const clicks = EMAILS.flatMap((m, i) => Array.from({ length: m.clicks }, (_, k) =>
      `((select id from public.email_messages where message_id = ${lit(`e${i}-${tag}`)}), ${lit(`https://example.com/${k}`)})`));
    await sql(server, `
      insert into public.email_messages (message_id, campaign_id, recipient, status, sent_at, opened_at) values ${ev.join(', ')};
      insert into public.sms_messages (campaign_id, recipient, message, status, cost, segments, sent_at) values ${sv.join(', ')};
      insert into public.email_clicks (message_id, url) values ${clicks.join(', ')};`);
  });

  it('generates a campaign performance report from the message tables', async () => {
    const r = await api('alice', 'POST', '/api/reports', { campaign_id: camp.id, name: `=cmd|' /C calc'!A0, "q" ${tag}` });
    assert.equal(r.status, 201, r.text);
    report = r.json;
    assert.equal(r.headers.location, `/api/reports/${report.id}`);
    assert.equal(report.campaign_id, camp.id);
    assert.equal(report.user_id, users.alice.id);
    assert.equal(report.report_type, 'campaign_performance');
    const d = report.data;
    assert.equal(d.name, `=cmd|' /C calc'!A0, "q" ${tag}`);
    assert.deepEqual(d.campaign, { id: camp.id, name: campaignName, type: 'email', status: 'draft' });
    assert.deepEqual(d.period, { from: null, to: null, timezone: 'America/New_York' });
    const want = expectedFigures(EMAILS, SMSES);
    assertFigures(d.totals, want.totals, 'totals');
    assertFigures(d.email, want.email, 'email');
    assertFigures(d.sms, want.sms, 'sms');
    assert.deepEqual(d.daily.map((x) => x.date), [DAY1, DAY2]);
    d.daily.forEach((x, i) => assertFigures(x, want.daily[i], `daily[${i}]`));
    // spot checks of the fixture, so the independent computation cannot drift silently
    assert.equal(d.totals.sent, 12);
    assert.equal(d.totals.unique_opens, 4);
    assert.equal(d.email.open_rate, 66.67);
    const stored = await sql(server, `select data->'totals'->>'sent' from public.reports where id = ${lit(report.id)}`);
    assert.equal(stored, '12');
  });

  it('restricts to from..to (days in the settings time zone)', async () => {
    const r = await api('alice', 'POST', '/api/reports', { campaign_id: camp.id, from: DAY2, to: DAY2 });
    assert.equal(r.status, 201, r.text);
    const want = expectedFigures(EMAILS.filter((m) => m.day === DAY2), SMSES.filter((m) => m.day === DAY2));
    assertFigures(r.json.data.totals, want.totals, 'totals');
    assert.deepEqual(r.json.data.period, { from: DAY2, to: DAY2, timezone: 'America/New_York' });
    assert.equal(r.json.data.daily.length, 1);
    assert.match(r.json.data.name, / performance$/);
  });

  it('follows RLS: another user gets 404, a viewer 403, an admin sees the same figures', async () => {
    assertError(await api('bob', 'POST', '/api/reports', { campaign_id: camp.id }), 404, { code: 'not_found' });
    assertError(await api('viewer', 'POST', '/api/reports', { campaign_id: camp.id }), 403, { code: '42501' });
    const r = await api('boss', 'POST', '/api/reports', { campaign_id: camp.id });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.user_id, users.boss.id);
    assert.deepEqual(r.json.data.totals, report.data.totals);
  });

  it('lists and reads reports as RLS allows', async () => {
    const mine = await api('alice', 'GET', `/api/reports?campaign_id=${camp.id}&per_page=1`);
    assert.equal(mine.status, 200);
    assert.equal(mine.headers['x-total-count'], '2', 'alice sees her two reports, not the admin\'s');
    assert.match(mine.headers.link, /rel="next"/);
    assert.match(mine.headers.link, new RegExp(`campaign_id=${camp.id}`));
    const bobs = await api('bob', 'GET', `/api/reports?campaign_id=${camp.id}`);
    assert.equal(bobs.headers['x-total-count'], '0');
    const viewer = await api('viewer', 'GET', `/api/reports?campaign_id=${camp.id}`);
    assert.equal(viewer.headers['x-total-count'], '3', 'a viewer reads every report');
    assert.equal((await api('viewer', 'GET', `/api/reports/${report.id}`)).status, 200);
    assertError(await api('bob', 'GET', `/api/reports/${report.id}`), 404);
    assertError(await api('alice', 'GET', '/api/reports?campaign_id=nope'), 400, { field: 'campaign_id' });
  });

  it('validates report requests', async () => {
    const post = (body) => api('alice', 'POST', '/api/reports', body);
    assertError(await post({}), 400, { field: 'campaign_id' });
    assertError(await post({ campaign_id: 'x' }), 400, { field: 'campaign_id' });
    assertError(await post({ campaign_id: camp.id, from: '2026-03-12', to: '2026-03-11' }), 400, { field: 'from' });
    assertError(await post({ campaign_id: camp.id, to: '2026-02-30' }), 400, { field: 'to' });
    assertError(await post({ campaign_id: camp.id, name: '' }), 400, { field: 'name' });
    assertError(await post({ campaign_id: camp.id, kind: 'x' }), 400, { field: 'kind' });
    assertError(await post({ campaign_id: crypto.randomUUID() }), 404);
  });

  it('exports CSV: RFC 4180 quoting, formulas neutralised, attachment headers', async () => {
    const r = await api('viewer', 'GET', `/api/reports/${report.id}/export?format=csv`);
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers['content-type'], /^text\/csv; charset=utf-8/);
    assert.match(r.headers['content-disposition'], /^attachment; filename="report-\d{4}-\d{2}-\d{2}-[a-z0-9-]+\.csv"$/);
    assert.ok(r.headers['content-disposition'].includes('cmd-c-calc-a0-q'), r.headers['content-disposition']);
    const rows = parseCsv(r.text);
    assert.deepEqual(rows[0], ['report_id', 'report_name', 'campaign_id', 'campaign_name', 'date', 'messages', 'sent',
      'delivered', 'failed', 'bounced', 'opened', 'clicked', 'unique_opens', 'unique_clicks', 'clicked_messages',
      'segments', 'cost', 'delivery_rate', 'open_rate', 'click_rate', 'bounce_rate', 'unknown', 'unsubscribed']);
    assert.equal(rows.length, 1 + 2 + 1, 'header, two days, total');
    for (const row of rows.slice(1)) {
      assert.equal(row.length, rows[0].length);
      assert.equal(row[0], report.id);
      assert.equal(row[1], `'=cmd|' /C calc'!A0, "q" ${tag}`, 'formula neutralised, text kept');
      assert.equal(row[3], `'${campaignName}`);
    }
    // the raw text shows the quoting itself
    assert.ok(r.text.includes(`"'=cmd|' /C calc'!A0, ""q"" ${tag}"`));
    assert.ok(r.text.includes(`"'=HYPERLINK(""http://evil.example"",""x"") ${tag}"`));
    const total = Object.fromEntries(rows[0].map((h, i) => [h, rows.at(-1)[i]]));
    assert.equal(total.date, 'total');
    const want = expectedFigures(EMAILS, SMSES).totals;
    for (const k of ['messages', 'sent', 'delivered', 'failed', 'bounced', 'opened', 'clicked', 'unique_opens', 'unique_clicks'])
      assert.equal(Number(total[k]), want[k], k);
    assert.ok(Math.abs(Number(total.cost) - want.cost) < 1e-9);
    assert.equal(Number(total.open_rate), want.open_rate);
    assert.deepEqual(rows.slice(1, 3).map((x) => x[4]), [DAY1, DAY2]);
  });

  it('exports JSON, and refuses bad formats, ids and other users', async () => {
    const r = await api('alice', 'GET', `/api/reports/${report.id}/export?format=json`);
    assert.equal(r.status, 200);
    assert.match(r.headers['content-disposition'], /^attachment; filename="report-[a-z0-9-]+\.json"$/);
    assert.equal(r.json.id, report.id);
    assert.deepEqual(r.json.data, report.data);
    assertError(await api('alice', 'GET', `/api/reports/${report.id}/export?format=xlsx`), 400, { field: 'format' });
    assertError(await api('alice', 'GET', '/api/reports/abc/export'), 400, { field: 'id' });
    assertError(await api('bob', 'GET', `/api/reports/${report.id}/export?format=csv`), 404);
    const other = await sql(server, `with i as (insert into public.reports (user_id, report_type, data)
      values (${lit(users.alice.id)}, 'custom', '{"x":1}') returning id) select id from i`);
    assertError(await api('alice', 'GET', `/api/reports/${other}/export?format=csv`), 422, { code: 'unsupported_report_type' });
    assert.equal((await api('alice', 'GET', `/api/reports/${other}/export?format=json`)).status, 200);
  });

  it('saves an export to the exports bucket and hands out a signed URL (POST)', async () => {
    const direct = await api('alice', 'GET', `/api/reports/${report.id}/export?format=csv`);
    assert.equal(direct.status, 200, direct.text);
    const r = await api('alice', 'POST', `/api/reports/${report.id}/export?format=csv`);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.bucket, 'exports');
    assert.equal(r.json.path, `${users.alice.id}/reports/${report.id}.csv`);
    assert.equal(r.json.expires_in, 3600);
    assert.match(r.json.signedURL, /\/storage\/v1\/object\/sign\/exports\//);
    // fetched with no headers at all, as a browser link would be
    const file = await fetch(r.json.signedURL.replace(/^https?:\/\/[^/]+/, server.url));
    assert.equal(file.status, 200);
    assert.equal(await file.text(), direct.text, 'the saved file is the export');
    // the token is bound to that object: another path with the same token is refused
    const other = r.json.signedURL.replace(/\/exports\/[^?]+/, `/exports/${users.bob.id}/x.csv`);
    const bad = await fetch(other.replace(/^https?:\/\/[^/]+/, server.url));
    assert.notEqual(bad.status, 200);
    // bob cannot export alice's report at all
    assertError(await api('bob', 'POST', `/api/reports/${report.id}/export?format=csv`), 404);
  });
});

// ---------------------------------------------------------------- analytics

describe('analytics', () => {
  const visits = `visits_${tag}`;
  const signups = `signups_${tag}`;
  before(async () => {
    for (const [metric_type, value, date] of [[visits, 10, '2026-01-05'], [visits, 5.5, '2026-01-06'], [visits, 2, '2026-01-20'], [signups, 1, '2026-01-06']]) {
      const r = await api('pager', 'POST', '/api/analytics', { metric_type, value, date });
      assert.equal(r.status, 201, r.text);
      assert.equal(r.json.user_id, users.pager.id);
      assert.equal(r.json.date, date);
    }
  });

  it('keeps decimal values exact and defaults the date to today', async () => {
    const r = await api('alice', 'POST', '/api/analytics', { metric_type: `exact_${tag}`, value: 0.1 });
    assert.equal(r.status, 201);
    assert.ok(r.text.includes('"value":0.1,'), r.text);
    assert.match(r.json.date, /^\d{4}-\d{2}-\d{2}$/);
  });

  it('validates records', async () => {
    const post = (body) => api('alice', 'POST', '/api/analytics', body);
    assertError(await post({ value: 1 }), 400, { field: 'metric_type' });
    assertError(await post({ metric_type: 'page views', value: 1 }), 400, { field: 'metric_type' });
    assertError(await post({ metric_type: 'x'.repeat(101), value: 1 }), 400, { field: 'metric_type' });
    assertError(await post({ metric_type: 'x' }), 400, { field: 'value' });
    assertError(await post({ metric_type: 'x', value: '1' }), 400, { field: 'value' });
    assertError(await post({ metric_type: 'x', value: 1, date: '2026-13-01' }), 400, { field: 'date' });
    assertError(await post({ metric_type: 'x', value: 1, date: 20260101 }), 400, { field: 'date' });
    assertError(await post({ metric_type: 'x', value: 1, user_id: users.bob.id }), 400, { field: 'user_id' });
    assertError(await api('viewer', 'POST', '/api/analytics', { metric_type: 'x', value: 1 }), 403, { code: '42501' });
  });

  it('aggregates totals and a weekly series with empty weeks filled', async () => {
    const r = await api('pager', 'GET', '/api/analytics?from=2026-01-05&to=2026-01-25&interval=week');
    assert.equal(r.status, 200, r.text);
    const j = r.json;
    assert.equal(j.interval, 'week');
    assert.equal(j.from, '2026-01-05');
    assert.equal(j.to, '2026-01-25');
    assert.deepEqual(j.totals[visits], { count: 3, sum: 17.5, avg: 5.833333, min: 2, max: 10 });
    assert.deepEqual(j.totals[signups], { count: 1, sum: 1, avg: 1, min: 1, max: 1 });
    assert.deepEqual(j.series[visits], [
      { period: '2026-01-05', count: 2, sum: 15.5 },
      { period: '2026-01-12', count: 0, sum: 0 },
      { period: '2026-01-19', count: 1, sum: 2 },
    ]);
    assert.equal(j.truncated, false);
  });

  it('filters by metric, buckets by day and month', async () => {
    const d = await api('pager', 'GET', `/api/analytics?metric=${visits}&from=2026-01-05&to=2026-01-07`);
    assert.deepEqual(Object.keys(d.json.totals), [visits]);
    assert.deepEqual(d.json.series[visits].map((p) => [p.period, p.sum]), [['2026-01-05', 10], ['2026-01-06', 5.5], ['2026-01-07', 0]]);
    const m = await api('pager', 'GET', `/api/analytics?metric=${visits}&from=2026-01-01&to=2026-02-28&interval=month`);
    assert.deepEqual(m.json.series[visits].map((p) => [p.period, p.count]), [['2026-01-01', 3], ['2026-02-01', 0]]);
  });

  it('follows RLS: others do not see a user\'s metrics, viewers and admins do', async () => {
    const q = `/api/analytics?metric=${visits}&from=2026-01-01&to=2026-01-31`;
    assert.deepEqual((await api('bob', 'GET', q)).json.totals, {});
    assert.equal((await api('viewer', 'GET', q)).json.totals[visits].count, 3);
    assert.equal((await api('boss', 'GET', q)).json.totals[visits].count, 3);
  });

  it('refuses bad query parameters', async () => {
    assertError(await api('pager', 'GET', '/api/analytics?interval=year'), 400, { field: 'interval' });
    assertError(await api('pager', 'GET', '/api/analytics?from=2026-02-01&to=2026-01-01'), 400, { field: 'from' });
    assertError(await api('pager', 'GET', '/api/analytics?from=01/02/2026'), 400, { field: 'from' });
    assertError(await api('pager', 'GET', '/api/analytics?metric=a%20b'), 400, { field: 'metric' });
    assertError(await api('pager', 'GET', '/api/analytics?from=2020-01-01&to=2026-01-01&interval=day'), 400, { field: 'from' });
    assert.equal((await api('pager', 'GET', '/api/analytics?from=2020-01-01&to=2026-01-01&interval=week')).status, 200);
  });
});

// ---------------------------------------------------------------- retention

async function plantOldRows(label) {
  return sql(server, `
    insert into public.audit_logs (action, resource_type, created_at) values
      (${lit(`old-${label}`)}, 'test', now() - interval '400 days'),
      (${lit(`new-${label}`)}, 'test', now() - interval '1 day');
    insert into auth.login_attempts (email, succeeded, attempted_at) values
      (${lit(`old-${label}@example.com`)}, false, now() - interval '400 days'),
      (${lit(`new-${label}@example.com`)}, false, now() - interval '1 hour');
    select 1`);
}

async function remaining(label) {
  return sql(server, `select (select string_agg(action, ',' order by action) from public.audit_logs where action like ${lit(`%-${label}`)})
    || '|' || (select string_agg(email, ',' order by email) from auth.login_attempts where email like ${lit(`%-${label}@example.com`)})`);
}

describe('retention job', () => {
  it('purges audit rows older than data_retention_days and old sign-in attempts, keeping recent ones', async () => {
    const label = `r1${tag}`;
    await plantOldRows(label);
    await eventually(async () => !(await remaining(label)).includes('old-'), 'the purge');
    assert.equal(await remaining(label), `new-${label}|new-${label}@example.com`);
  });

  it('answers 503 while the database refuses connections, and the job carries on afterwards', async () => {
    // The "outage": the database stops accepting connections and every session
    // to it is ended, so the request workers and the retention thread lose
    // theirs and cannot reconnect. The cluster itself keeps running (a restart
    // would change its pid, and campaignd stops the cluster by its pid).
    const url = await dbUrl(server);
    const maintenance = url.replace(/@\/campaignd\?/, '@/postgres?');
    assert.notEqual(maintenance, url);
    const psqlTo = async (u, text) => {
      const r = await runCmd('psql', [u, '-X', '-v', 'ON_ERROR_STOP=1', '-Atc', text]);
      assert.equal(r.code, 0, r.stderr);
    };
    await psqlTo(maintenance, 'alter database campaignd allow_connections false');
    try {
      await psqlTo(maintenance, "select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = 'campaignd'");
      const r = await api('alice', 'GET', '/api/campaigns');
      assertError(r, 503, { code: 'database_unavailable' });
      assert.ok(Number(r.headers['retry-after']) >= 1);
      await sleep(1500); // at least one retention round fails meanwhile
    } finally {
      await psqlTo(maintenance, 'alter database campaignd allow_connections true');
    }
    await eventually(async () => (await api('alice', 'GET', '/api/campaigns')).status === 200, 'the API coming back');
    const label = `r2${tag}`;
    await plantOldRows(label);
    await eventually(async () => !(await remaining(label)).includes('old-'), 'the purge after the outage');
    assert.equal(server.exited(), null, 'the server kept running');
  });
});
