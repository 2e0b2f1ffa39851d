// Reports beyond one campaign (issue 12): period_summary, channel_comparison
// and audience on a seeded data set (every number asserted exactly, days in
// the application's time zone, row-level security deciding whose rows
// count), their CSV and JSON exports, validation; and scheduled reports: a
// schedule run now mails the report to users of the instance through the real
// SMTP sink with the CSV attached and a signed link that downloads it, a
// tampered link being refused.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, client, signIn, request, uniqueEmail, sql, lit, noError, sleep, PASSWORD, api as apiAs } from './helpers.js';
import { startSmtpSink } from './mail-sink.js';

let server;
let sink;
const users = {}; // name -> {id, token, email}

const api = (who, method, p, body) => apiAs(server, who && users[who], method, p, body);

before(async () => {
  sink = await startSmtpSink();
  server = await startServer({
    SMTP_URL: sink.url,
    SMTP_ADMIN_EMAIL: 'reports@campaignd.test',
    MAIL_RETRY_DELAY: '1',
    JOB_POLL_INTERVAL: '1',
  });
  const service = client(server, server.serviceKey);
  for (const [name, role] of [['alice', 'user'], ['boss', 'admin'], ['viewer', 'viewer'], ['carol', 'user'], ['banned', 'user']]) {
    const email = uniqueEmail(name);
    const { error } = await service.auth.admin.createUser({ email, password: PASSWORD, email_confirm: true, app_metadata: { role } });
    noError(error, `createUser(${name})`);
    const s = await signIn(server, email);
    users[name] = { id: s.user.id, token: s.session.access_token, email };
  }
  // The fixture, as the database owner: days are New York days, so 02:00Z
  // on 3 November is still 2 November there.
  const a = lit(users.alice.id);
  const b = lit(users.boss.id);
  await sql(server, `
    update public.app_settings set timezone = 'America/New_York';
    insert into public.campaigns (id, user_id, name, type) values
      ('00000000-0000-4000-8000-0000000000a1', ${a}, 'Alice mail', 'email'),
      ('00000000-0000-4000-8000-0000000000a2', ${a}, 'Alice sms', 'sms'),
      ('00000000-0000-4000-8000-0000000000b1', ${b}, 'Boss mail', 'email');
    insert into public.email_messages (campaign_id, recipient, status, sent_at, opened_at, clicked_at, bounced_at, bounce_type) values
      ('00000000-0000-4000-8000-0000000000a1', 'e1@example.com', 'delivered', '2026-11-01 15:00Z', null, null, null, null),
      ('00000000-0000-4000-8000-0000000000a1', 'e2@example.com', 'opened', '2026-11-01 16:00Z', '2026-11-01 17:00Z', null, null, null),
      ('00000000-0000-4000-8000-0000000000a1', 'e3@example.com', 'clicked', '2026-11-02 12:00Z', '2026-11-02 13:00Z', '2026-11-02 13:05Z', null, null),
      ('00000000-0000-4000-8000-0000000000a1', 'e4@example.com', 'bounced', '2026-11-03 02:00Z', null, null, '2026-11-03 02:01Z', 'hard'),
      ('00000000-0000-4000-8000-0000000000a1', 'e5@example.com', 'failed', '2026-11-03 14:00Z', null, null, null, null),
      ('00000000-0000-4000-8000-0000000000a1', 'e6@example.com', 'delivered', '2026-11-04 06:00Z', null, null, null, null),
      ('00000000-0000-4000-8000-0000000000b1', 'b1@example.com', 'delivered', '2026-11-02 12:00Z', null, null, null, null);
    insert into public.sms_messages (campaign_id, recipient, message, status, segments, cost, sent_at) values
      ('00000000-0000-4000-8000-0000000000a2', '+15550000001', 'x', 'delivered', 2, -0.0075, '2026-11-01 14:00Z'),
      ('00000000-0000-4000-8000-0000000000a2', '+15550000002', 'x', 'failed', 1, null, '2026-11-02 14:00Z'),
      ('00000000-0000-4000-8000-0000000000a2', '+15550000003', 'x', 'delivered', 1, -0.0075, '2026-11-03 14:00Z');
    insert into public.analytics_data (user_id, metric_type, value, date) values
      (${a}, 'social_impressions', 1000, '2026-11-01'), (${a}, 'social_clicks', 25, '2026-11-01'),
      (${a}, 'social_engagements', 40, '2026-11-01'), (${a}, 'social_impressions', 500, '2026-11-03'),
      (${a}, 'page_views', 77, '2026-11-02'), (${b}, 'social_impressions', 9000, '2026-11-02');
    insert into public.contacts (user_id, email, phone, created_at, deleted_at) values
      (${a}, 'c1@example.com', null, '2026-11-01 15:00Z', null),
      (${a}, 'c2@example.com', null, '2026-11-01 16:00Z', null),
      (${a}, null, '+15550000009', '2026-11-03 15:00Z', null),
      (${a}, 'gone@example.com', null, '2026-11-02 15:00Z', '2026-11-02 16:00Z'),
      (${b}, 'bosscontact@example.com', null, '2026-11-02 15:00Z', null);
    insert into public.email_subscriptions (email, subscribed, subscribed_at, unsubscribed_at) values
      ('c1@example.com', true, '2026-11-01 15:00Z', null),
      ('c2@example.com', false, '2026-10-15 15:00Z', '2026-11-02 15:00Z');
    insert into public.sms_consent (phone_number, consent_given, consented_at, opt_out_at) values
      ('+15550000009', false, '2026-11-02 15:00Z', '2026-11-03 15:00Z');
  `);
});
after(async () => {
  await server?.stop();
  await sink?.stop();
});

const RANGE = { from: '2026-11-01', to: '2026-11-03' };
const num = (v) => Number(v);
/** The rows of a flat report keyed "date|channel" (or channel, or date). */
const byKey = (rows, ...keys) => Object.fromEntries(rows.map((r) => [keys.map((k) => r[k]).join('|'), r]));
const pick = (r, cols) => Object.fromEntries(cols.map((c) => [c, num(r[c])]));
const MSG = ['messages', 'sent', 'delivered', 'failed', 'bounced', 'opened', 'clicked', 'segments', 'cost', 'impressions', 'engagements'];

describe('report types', () => {
  it('period_summary: every channel per day, RLS-scoped, app time zone', async () => {
    const r = await api('alice', 'POST', '/api/reports', { report_type: 'period_summary', ...RANGE });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.report_type, 'period_summary');
    assert.equal(r.json.user_id, users.alice.id);
    assert.equal(r.json.campaign_id, null);
    assert.equal(r.headers.location, `/api/reports/${r.json.id}`);
    const d = r.json.data;
    assert.equal(d.name, 'Period summary 2026-11-01 to 2026-11-03');
    assert.deepEqual(d.period, { from: '2026-11-01', to: '2026-11-03', timezone: 'America/New_York' });
    assert.equal(d.rows.length, 9, 'three days by three channels, empty days included');
    const rows = byKey(d.rows, 'date', 'channel');
    const z = Object.fromEntries(MSG.map((k) => [k, 0]));
    assert.deepEqual(pick(rows['2026-11-01|email'], MSG), { ...z, messages: 2, sent: 2, delivered: 2, opened: 1 });
    assert.deepEqual(pick(rows['2026-11-02|email'], MSG), { ...z, messages: 2, sent: 2, delivered: 1, bounced: 1, opened: 1, clicked: 1 });
    assert.deepEqual(pick(rows['2026-11-03|email'], MSG), { ...z, messages: 1, failed: 1 });
    assert.deepEqual(pick(rows['2026-11-01|sms'], MSG), { ...z, messages: 1, sent: 1, delivered: 1, segments: 2, cost: 0.0075 });
    assert.deepEqual(pick(rows['2026-11-02|sms'], MSG), { ...z, messages: 1, failed: 1, segments: 1 });
    assert.deepEqual(pick(rows['2026-11-01|social'], MSG), { ...z, clicked: 25, impressions: 1000, engagements: 40 });
    assert.deepEqual(pick(rows['2026-11-02|social'], MSG), z, 'page_views and the boss\'s metrics do not count');
    assert.deepEqual(pick(rows['2026-11-03|social'], MSG), { ...z, impressions: 500 });
    const tot = byKey(d.totals, 'channel');
    assert.deepEqual(pick(tot.email, MSG), { ...z, messages: 5, sent: 4, delivered: 3, failed: 1, bounced: 1, opened: 2, clicked: 1 });
    assert.deepEqual(pick(tot.sms, MSG), { ...z, messages: 3, sent: 2, delivered: 2, failed: 1, segments: 4, cost: 0.015 });
    assert.deepEqual(pick(tot.social, MSG), { ...z, clicked: 25, impressions: 1500, engagements: 40 });

    // an admin's report counts everyone's rows
    const boss = await api('boss', 'POST', '/api/reports', { report_type: 'period_summary', ...RANGE, name: 'All' });
    assert.equal(boss.status, 201, boss.text);
    const bt = byKey(boss.json.data.totals, 'channel');
    assert.equal(num(bt.email.messages), 6);
    assert.equal(num(bt.social.impressions), 10500);
  });

  it('channel_comparison: totals and rates per channel', async () => {
    const r = await api('alice', 'POST', '/api/reports', { report_type: 'channel_comparison', ...RANGE });
    assert.equal(r.status, 201, r.text);
    const rows = byKey(r.json.data.rows, 'channel');
    assert.deepEqual(Object.keys(rows), ['email', 'sms', 'social']);
    const RATES = ['delivery_rate', 'open_rate', 'click_rate', 'cost_per_delivered', 'engagement_rate'];
    const rates = (c) => Object.fromEntries(RATES.map((k) => [k, rows[c][k] === null ? null : num(rows[c][k])]));
    assert.deepEqual(rates('email'), { delivery_rate: 75, open_rate: 66.67, click_rate: 33.33, cost_per_delivered: 0, engagement_rate: null });
    assert.deepEqual(rates('sms'), { delivery_rate: 100, open_rate: 0, click_rate: 0, cost_per_delivered: 0.0075, engagement_rate: null });
    assert.deepEqual(rates('social'), { delivery_rate: null, open_rate: null, click_rate: 1.67, cost_per_delivered: null, engagement_rate: 2.67 });
    assert.equal(num(rows.email.sent), 4);
    assert.equal(num(rows.sms.segments), 4);
  });

  it('audience: contacts added, opt-ins and opt-outs per channel, bounces, per day', async () => {
    const r = await api('alice', 'POST', '/api/reports', { report_type: 'audience', ...RANGE, name: 'Audience Nov' });
    assert.equal(r.status, 201, r.text);
    const d = r.json.data;
    assert.equal(d.name, 'Audience Nov');
    const COLS = ['contacts_added', 'email_opt_ins', 'email_opt_outs', 'sms_opt_ins', 'sms_opt_outs', 'bounces', 'hard_bounces'];
    const rows = byKey(d.rows, 'date');
    const z = Object.fromEntries(COLS.map((k) => [k, 0]));
    assert.deepEqual(pick(rows['2026-11-01'], COLS), { ...z, contacts_added: 2, email_opt_ins: 1 });
    assert.deepEqual(pick(rows['2026-11-02'], COLS), { ...z, email_opt_outs: 1, sms_opt_ins: 1, bounces: 1, hard_bounces: 1 });
    assert.deepEqual(pick(rows['2026-11-03'], COLS), { ...z, contacts_added: 1, sms_opt_outs: 1 });
    assert.deepEqual(pick(d.totals[0], COLS), { contacts_added: 3, email_opt_ins: 1, email_opt_outs: 1, sms_opt_ins: 1, sms_opt_outs: 1, bounces: 1, hard_bounces: 1 });
  });

  it('CSV and JSON exports', async () => {
    const r = await api('alice', 'POST', '/api/reports', { report_type: 'channel_comparison', ...RANGE, name: '=evil()' });
    const csv = await api('alice', 'GET', `/api/reports/${r.json.id}/export?format=csv`);
    assert.equal(csv.status, 200);
    assert.match(csv.headers['content-type'], /^text\/csv/);
    const lines = csv.text.split('\r\n');
    assert.equal(lines[0], 'channel,messages,sent,delivered,failed,bounced,opened,clicked,segments,cost,impressions,engagements,delivery_rate,open_rate,click_rate,cost_per_delivered,engagement_rate');
    assert.equal(lines[1], 'email,5,4,3,1,1,2,1,0,0,0,0,75.00,66.67,33.33,0.0000,');
    assert.equal(lines[2], 'sms,3,2,2,1,0,0,0,4,0.0150,0,0,100.00,0.00,0.00,0.0075,');
    assert.equal(lines.length, 5, 'header, three channels, final CRLF');
    const sum = await api('alice', 'POST', '/api/reports', { report_type: 'audience', ...RANGE });
    const acsv = (await api('alice', 'GET', `/api/reports/${sum.json.id}/export?format=csv`)).text.split('\r\n');
    assert.equal(acsv[0], 'date,contacts_added,email_opt_ins,email_opt_outs,sms_opt_ins,sms_opt_outs,bounces,hard_bounces');
    assert.equal(acsv[2], '2026-11-02,0,0,1,1,0,1,1');
    assert.equal(acsv[4], 'total,3,1,1,1,1,1,1');
    const json = await api('alice', 'GET', `/api/reports/${r.json.id}/export?format=json`);
    assert.equal(json.status, 200);
    assert.equal(json.json.data.name, '=evil()');
  });

  it('validation errors name the field; viewers and anon cannot generate', async () => {
    const post = (body, who = 'alice') => api(who, 'POST', '/api/reports', body);
    const bad = async (body, field, status = 400) => {
      const r = await post(body);
      assert.equal(r.status, status, r.text);
      assert.equal(r.json.details, `field: ${field}`, r.text);
    };
    await bad({ report_type: 'weekly_magic', ...RANGE }, 'report_type');
    await bad({ report_type: 'audience', to: '2026-11-03' }, 'from');
    await bad({ report_type: 'audience', from: '2026-11-03' }, 'to');
    await bad({ report_type: 'audience', from: '2026-11-04', to: '2026-11-03' }, 'from');
    await bad({ report_type: 'audience', from: '2024-01-01', to: '2026-11-03' }, 'to');
    await bad({ report_type: 'audience', from: '2026-02-30', to: '2026-11-03' }, 'from');
    await bad({ report_type: 'audience', ...RANGE, campaign_id: '00000000-0000-4000-8000-0000000000a1' }, 'campaign_id');
    await bad({ report_type: 'audience', ...RANGE, extra: 1 }, 'extra');
    const v = await post({ report_type: 'audience', ...RANGE }, 'viewer');
    assert.equal(v.status, 403);
    assert.equal((await api(null, 'POST', '/api/reports', { report_type: 'audience', ...RANGE })).status, 401);
    // a banned user's token still verifies, but runs as anon: refused, not a 500
    const service = client(server, server.serviceKey);
    noError((await service.auth.admin.updateUserById(users.banned.id, { ban_duration: '24h' })).error, 'ban');
    assert.equal((await post({ report_type: 'audience', ...RANGE }, 'banned')).status, 403);
  });
});

describe('scheduled reports', () => {
  let schedule;
  const rest = (who) => client(server, server.anonKey, { global: { headers: { Authorization: `Bearer ${users[who].token}` } } });

  it('a user schedules a report for users of the instance; rules hold', async () => {
    const alice = rest('alice');
    const { data, error } = await alice
      .from('report_schedules')
      .insert({ name: 'Weekly channels', report_type: 'channel_comparison', frequency: 'weekly', recipients: [users.alice.id, users.carol.id], schedule_config: { day_of_week: 1, time: '08:00' } })
      .select()
      .single();
    noError(error, 'insert schedule');
    schedule = data;
    assert.equal(schedule.user_id, users.alice.id);
    assert.ok(Date.parse(schedule.next_run_at) > Date.now(), 'next run computed');
    // a Monday at 08:00 in New York
    const local = new Date(new Date(schedule.next_run_at).toLocaleString('en-US', { timeZone: 'America/New_York' }));
    assert.equal(local.getDay(), 1);
    assert.equal(local.getHours(), 8);
    // recipients must be users of the instance
    const stranger = await alice.from('report_schedules').insert({ name: 'x', report_type: 'audience', frequency: 'monthly', recipients: ['00000000-0000-4000-8000-00000000dead'] });
    assert.equal(stranger.error?.code, '23503');
    // the server's columns are not the user's
    const forged = await alice.from('report_schedules').update({ next_run_at: '2000-01-01T00:00:00Z' }).eq('id', schedule.id);
    assert.equal(forged.error?.code, '42501');
    // others see nothing and cannot run it; viewers cannot schedule
    const carol = rest('carol');
    assert.equal((await carol.from('report_schedules').select('id')).data.length, 0);
    assert.equal((await carol.rpc('run_report_schedule', { p_id: schedule.id })).error?.code, '42501');
    const v = await rest('viewer').from('report_schedules').insert({ name: 'v', report_type: 'audience', frequency: 'weekly', recipients: [users.viewer.id] });
    assert.equal(v.error?.code, '42501');
    // an admin reads every schedule
    assert.equal((await rest('boss').from('report_schedules').select('id').eq('id', schedule.id)).data.length, 1);
  });

  it('run now: each recipient gets the mail with the CSV attached and a signed link; a tampered link is refused', async () => {
    const alice = rest('alice');
    const run = await alice.rpc('run_report_schedule', { p_id: schedule.id });
    noError(run.error, 'run_report_schedule');
    const mailA = await sink.waitFor(users.alice.email);
    const mailC = await sink.waitFor(users.carol.email);
    for (const m of [mailA, mailC]) {
      assert.match(m.subject, /^Weekly channels \(\d{4}-\d{2}-\d{2} to \d{4}-\d{2}-\d{2}\)$/);
      assert.match(m.headers['content-type'], /^multipart\/mixed; boundary=/);
    }
    // the attachment, decoded from the raw message
    const raw = mailA.raw;
    const att = /Content-Type: text\/csv; name="([^"]+)"\r\nContent-Disposition: attachment; filename="[^"]+"\r\nContent-Transfer-Encoding: base64\r\n\r\n([A-Za-z0-9+/=\r\n]+?)\r\n--/.exec(raw);
    assert.ok(att, `an attachment in:\n${raw.slice(0, 3000)}`);
    assert.match(att[1], /^report-\d{4}-\d{2}-\d{2}-weekly-channels\.csv$/);
    const csv = Buffer.from(att[2].replace(/\s+/g, ''), 'base64').toString('utf8');
    assert.match(csv, /^channel,messages,sent,delivered,/);
    assert.equal(csv.split('\r\n').length, 5);
    // the stored report and the mailed CSV are the same
    const row = await sql(server, `select last_report_id || '|' || (last_error is null)::text from public.report_schedules where id = ${lit(schedule.id)}`);
    const [reportId, clean] = row.split('|');
    assert.equal(clean, 'true');
    const exported = await api('alice', 'GET', `/api/reports/${reportId}/export?format=csv`);
    assert.equal(exported.text, csv);
    // the link downloads it, without signing in
    const link = /(http:\/\/\S+\/storage\/v1\/object\/sign\/exports\/\S+\?token=\S+)/.exec(mailA.text)?.[1];
    assert.ok(link, mailA.text);
    const got = await request(link);
    assert.equal(got.status, 200);
    assert.equal(got.text, csv);
    // a tampered token, or the token on another path, is refused
    const u = new URL(link);
    const token = u.searchParams.get('token');
    const flipped = token.slice(0, -2) + (token.at(-2) === 'A' ? 'B' : 'A') + token.at(-1);
    u.searchParams.set('token', flipped);
    assert.ok([400, 401, 403].includes((await request(u.toString())).status));
    const other = new URL(link.replace(`${reportId}.csv`, `${'0'.repeat(8)}-0000-4000-8000-000000000000.csv`));
    assert.ok([400, 401, 403].includes((await request(other.toString())).status));
    // one mail per recipient, and a retried job (same slot) mails nobody again
    const slot = await sql(server, `select last_run_at from public.report_schedules where id = ${lit(schedule.id)}`);
    await sql(server, `select jobs.enqueue('report.scheduled', jsonb_build_object('schedule_id', ${lit(schedule.id)}::uuid, 'slot', ${lit(slot)}::timestamptz))`);
    await sleep(3000);
    assert.equal(sink.count(users.alice.email), 1);
    assert.equal(sink.count(users.carol.email), 1);
  });

  it('the scheduler runs a due schedule by itself', async () => {
    await sql(server, `update public.report_schedules set next_run_at = now() - interval '1 second' where id = ${lit(schedule.id)}`);
    const mail = await sink.waitFor(users.carol.email, { after: 1 });
    assert.match(mail.subject, /^Weekly channels/);
    const next = await sql(server, `select next_run_at > now() from public.report_schedules where id = ${lit(schedule.id)}`);
    assert.equal(next, 't');
  });
});
