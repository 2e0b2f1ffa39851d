// The PDF export of reports (GET|POST /api/reports/:id/export?format=pdf)
// against the real binary: the file is downloaded with fetch and read back
// with poppler's pdftotext / pdfinfo (Debian poppler-utils): the title, the
// parameters (period, channel, time zone), the KPI numbers and the per-day
// rows are in it, UTF-8 names survive and markup stays text; the headers
// (application/pdf, attachment with a safe file name); the same permissions
// as the CSV (another user: 404, a viewer reads, a stranger's id 404); the
// saved copy in the exports bucket; the audit row; the row bound (422
// pointing at the CSV) and format validation; a scheduled report with
// attachment_format 'pdf' mails the PDF (real SMTP sink) and links to it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { startServer, client, signIn, request, uniqueEmail, sql, lit, noError, PASSWORD, TMP } from './helpers.js';
import { startSmtpSink } from './mail-sink.js';

let server;
let sink;
const users = {}; // name -> {id, token}
const CAMPAIGN = '00000000-0000-4000-8000-00000000c0f1';
const BIG = '00000000-0000-4000-8000-00000000c0f2';
const NAME = 'Café Lumière — 東京 <b>&amp; "sale"';

const headers = (who) => ({ apikey: server.anonKey, ...(who ? { Authorization: `Bearer ${users[who].token}` } : {}) });
const api = (who, method, p, body) => request(`${server.url}${p}`, { method, headers: headers(who), body });
/** Downloads with fetch (binary): {status, headers, bytes, json}. */
async function download(who, p, method = 'GET') {
  const res = await fetch(`${server.url}${p}`, { method, headers: headers(who) });
  const bytes = Buffer.from(await res.arrayBuffer());
  let json;
  try { json = JSON.parse(bytes.toString('utf8')); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, bytes, json };
}
/** pdftotext -layout (or pdfinfo) of a PDF held in memory. */
function poppler(tool, bytes) {
  const file = path.join(fs.mkdtempSync(path.join(TMP, 'pdf-')), 'r.pdf');
  fs.writeFileSync(file, bytes);
  const args = tool === 'pdftotext' ? ['-layout', '-enc', 'UTF-8', file, '-'] : ['-enc', 'UTF-8', file];
  return execFileSync(tool, args, { encoding: 'utf8' });
}

before(async () => {
  sink = await startSmtpSink();
  server = await startServer({ SMTP_URL: sink.url, SMTP_ADMIN_EMAIL: 'reports@campaignd.test', MAIL_RETRY_DELAY: '1', JOB_POLL_INTERVAL: '1' });
  const service = client(server, server.serviceKey);
  for (const [name, role] of [['alice', 'user'], ['bob', 'user'], ['viewer', 'viewer'], ['boss', 'admin']]) {
    const email = uniqueEmail(name);
    const { error } = await service.auth.admin.createUser({ email, password: PASSWORD, email_confirm: true, app_metadata: { role } });
    noError(error, `createUser(${name})`);
    const s = await signIn(server, email);
    users[name] = { id: s.user.id, token: s.session.access_token, email };
  }
  const a = lit(users.alice.id);
  await sql(server, `
    update public.app_settings set timezone = 'Europe/Paris';
    insert into public.campaigns (id, user_id, name, type) values
      ('${CAMPAIGN}', ${a}, ${lit(NAME)}, 'email'), ('${BIG}', ${a}, 'Very long', 'email');
    insert into public.email_messages (campaign_id, recipient, status, sent_at, opened_at) values
      ('${CAMPAIGN}', 'p1@example.com', 'delivered', '2026-11-01 10:00Z', null),
      ('${CAMPAIGN}', 'p2@example.com', 'opened', '2026-11-01 11:00Z', '2026-11-01 12:00Z'),
      ('${CAMPAIGN}', 'p3@example.com', 'bounced', '2026-11-02 10:00Z', null),
      ('${CAMPAIGN}', 'p4@example.com', 'delivered', '2026-11-02 10:00Z', null),
      ('${CAMPAIGN}', 'p5@example.com', 'failed', '2026-11-03 10:00Z', null);
    -- 2,001 days of one message each: more rows than a PDF is drawn for
    insert into public.email_messages (campaign_id, recipient, status, sent_at)
      select '${BIG}', 'big' || i || '@example.com', 'delivered', timestamptz '2020-01-01 12:00Z' + i * interval '1 day'
      from generate_series(0, 2000) i;
  `);
});
after(async () => {
  await server?.stop();
  await sink?.stop();
});

let report; // alice's campaign report

describe('PDF export', () => {
  it('downloads a readable A4 PDF: title, parameters, KPI numbers, per-day rows', async () => {
    const r = await api('alice', 'POST', '/api/reports', { campaign_id: CAMPAIGN });
    assert.equal(r.status, 201, r.text);
    report = r.json;
    assert.equal(report.data.totals.sent, 4);
    const pdf = await download('alice', `/api/reports/${report.id}/export?format=pdf`);
    assert.equal(pdf.status, 200, pdf.bytes.toString());
    assert.equal(pdf.headers.get('content-type'), 'application/pdf');
    assert.match(pdf.headers.get('content-disposition'), /^attachment; filename="report-\d{4}-\d\d-\d\d-[a-z0-9-]+\.pdf"$/);
    assert.equal(pdf.headers.get('cache-control'), 'no-store');
    assert.equal(pdf.bytes.subarray(0, 5).toString(), '%PDF-');

    const text = poppler('pdftotext', pdf.bytes);
    // accents and markup characters print as typed; CJK (no CJK font on a
    // bare Debian) falls back to pango's hex boxes, the text around it intact
    assert.ok(text.includes('Café Lumière —'), `the title:\n${text}`);
    assert.ok(text.includes('<b>&amp; "sale" performance'), `markup is text:\n${text}`);
    assert.match(text, /Campaign performance/);
    assert.match(text, /Channel\s+email/);
    assert.match(text, /Period\s+all time/);
    assert.match(text, /Time zone\s+Europe\/Paris/);
    assert.match(text, /Key figures/);
    const t = report.data.totals;
    for (const k of ['messages', 'sent', 'delivered', 'failed', 'bounced', 'opened']) {
      assert.match(text, new RegExp(`^\\s*${k}\\s+${t[k]}\\s*$`, 'm'), `KPI ${k} = ${t[k]}`);
    }
    assert.match(text, new RegExp(`delivery_rate\\s+${t.delivery_rate.toFixed(2)}`));
    // the per-day table: one line per day with its date
    for (const d of report.data.daily) assert.match(text, new RegExp(`^\\s*${d.date}\\s+${d.messages}\\s+${d.sent}\\s`, 'm'));

    const info = poppler('pdfinfo', pdf.bytes);
    // the metadata title keeps every character, CJK included
    assert.equal(/^Title:\s+(.*)$/m.exec(info)?.[1], `${NAME} performance`, info);
    assert.match(info, /Creator:\s+campaignd/);
    assert.match(info, /CreationDate:\s+\S/);
    assert.match(info, /Page size:\s+.*\(A4\)/);
  });

  it('a period summary: totals per channel and one row per day and channel', async () => {
    const r = await api('alice', 'POST', '/api/reports', { report_type: 'period_summary', from: '2026-11-01', to: '2026-11-03', name: 'Novembre été' });
    assert.equal(r.status, 201, r.text);
    const pdf = await download('alice', `/api/reports/${r.json.id}/export?format=pdf`);
    assert.equal(pdf.status, 200, pdf.bytes.toString());
    const text = poppler('pdftotext', pdf.bytes);
    assert.match(text, /Novembre été/);
    assert.match(text, /Period summary/);
    assert.match(text, /Period\s+2026-11-01 to 2026-11-03/);
    const email = r.json.data.totals.find((x) => x.channel === 'email');
    assert.match(text, new RegExp(`^\\s*email\\s+${email.messages}\\s+${email.sent}\\s+${email.delivered}\\s+${email.failed}\\s+${email.bounced}\\s`, 'm'));
    assert.equal((text.match(/^\s*2026-11-0[123]\s+(email|sms|social)\s/gm) || []).length, 9);
  });

  it('follows the CSV\'s permissions: owner and viewer read, another user gets 404', async () => {
    for (const who of ['alice', 'viewer', 'boss', 'bob']) {
      const csv = await download(who, `/api/reports/${report.id}/export?format=csv`);
      const pdf = await download(who, `/api/reports/${report.id}/export?format=pdf`);
      assert.equal(pdf.status, csv.status, `${who}: PDF ${pdf.status}, CSV ${csv.status}`);
    }
    const viewer = await download('viewer', `/api/reports/${report.id}/export?format=pdf`);
    assert.equal(viewer.status, 200);
    assert.match(poppler('pdftotext', viewer.bytes), /Key figures/);
    const bob = await download('bob', `/api/reports/${report.id}/export?format=pdf`);
    assert.equal(bob.status, 404);
    assert.equal(bob.json.code, 'not_found');
    assert.notEqual(bob.headers.get('content-type'), 'application/pdf');
    const none = await download('alice', `/api/reports/${crypto.randomUUID()}/export?format=pdf`);
    assert.equal(none.status, 404);
    const noToken = await download(null, `/api/reports/${report.id}/export?format=pdf`);
    assert.ok([401, 404].includes(noToken.status), `anon: ${noToken.status}`);
    assert.ok(noToken.json, 'an error is JSON');
    const bad = await download('alice', '/api/reports/nope/export?format=pdf');
    assert.equal(bad.status, 400);
    assert.equal(bad.json.details, 'field: id');
    const fmt = await download('alice', `/api/reports/${report.id}/export?format=xlsx`);
    assert.equal(fmt.status, 400);
    assert.match(fmt.json.message, /pdf/);
    // every download is in the audit log with its format
    const audited = await sql(server, `select count(*) from public.audit_logs where action = 'export'
      and resource_id = ${lit(report.id)} and (metadata->>'format' = 'pdf' or new_value->>'format' = 'pdf')`);
    assert.ok(Number(audited) >= 4, `audit rows: ${audited}`);
  });

  it('saves a PDF to the exports bucket behind a signed URL (POST)', async () => {
    const r = await api('alice', 'POST', `/api/reports/${report.id}/export?format=pdf`);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.path, `${users.alice.id}/reports/${report.id}.pdf`);
    const file = await fetch(r.json.signedURL.replace(/^https?:\/\/[^/]+/, server.url));
    assert.equal(file.status, 200);
    assert.equal(file.headers.get('content-type'), 'application/pdf');
    const bytes = Buffer.from(await file.arrayBuffer());
    assert.match(poppler('pdftotext', bytes), /Key figures/);
    const bob = await api('bob', 'POST', `/api/reports/${report.id}/export?format=pdf`);
    assert.equal(bob.status, 404);
  });

  it('refuses a report with more rows than a PDF holds, pointing at the CSV', async () => {
    const r = await api('alice', 'POST', '/api/reports', { campaign_id: BIG });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.data.daily.length, 2001);
    const pdf = await download('alice', `/api/reports/${r.json.id}/export?format=pdf`);
    assert.equal(pdf.status, 422);
    assert.equal(pdf.json.code, 'report_too_large_for_pdf');
    assert.match(pdf.json.hint, /csv/i);
    assert.equal((await download('alice', `/api/reports/${r.json.id}/export?format=csv`)).status, 200);
  });
});

describe('scheduled reports as PDF', () => {
  it('a schedule with attachment_format pdf mails the PDF and a signed link to it', async () => {
    const alice = client(server, server.anonKey, { global: { headers: { Authorization: `Bearer ${users.alice.token}` } } });
    const { data: schedule, error } = await alice
      .from('report_schedules')
      .insert({ name: 'Monthly PDF', report_type: 'period_summary', frequency: 'monthly', recipients: [users.alice.id, users.bob.id], attachment_format: 'pdf' })
      .select()
      .single();
    noError(error, 'insert schedule');
    assert.equal(schedule.attachment_format, 'pdf');
    const bad = await alice.from('report_schedules').update({ attachment_format: 'xlsx' }).eq('id', schedule.id);
    assert.equal(bad.error?.code, '23514');
    noError((await alice.rpc('run_report_schedule', { p_id: schedule.id })).error, 'run_report_schedule');
    const mail = await sink.waitFor(users.bob.email);
    assert.match(mail.subject, /^Monthly PDF \(\d{4}-\d{2}-\d{2} to \d{4}-\d{2}-\d{2}\)$/);
    assert.match(mail.text, /attached as PDF/);
    const att = /Content-Type: application\/pdf; name="([^"]+)"\r\nContent-Disposition: attachment; filename="[^"]+"\r\nContent-Transfer-Encoding: base64\r\n\r\n([A-Za-z0-9+/=\r\n]+?)\r\n--/.exec(mail.raw);
    assert.ok(att, `a PDF attachment in:\n${mail.raw.slice(0, 3000)}`);
    assert.match(att[1], /^report-\d{4}-\d{2}-\d{2}-monthly-pdf\.pdf$/);
    const bytes = Buffer.from(att[2].replace(/\s+/g, ''), 'base64');
    const text = poppler('pdftotext', bytes);
    assert.match(text, /Monthly PDF/);
    assert.match(text, /Period summary/);
    assert.match(text, /Key figures/);
    const reportId = await sql(server, `select last_report_id from public.report_schedules where id = ${lit(schedule.id)} and last_error is null`);
    assert.ok(reportId, 'the run is recorded without error');
    // the signed link downloads the same kind of file, without signing in
    const link = /(http:\/\/\S+\/storage\/v1\/object\/sign\/exports\/\S+\.pdf\?token=\S+)/.exec(mail.text)?.[1];
    assert.ok(link, mail.text);
    const got = await fetch(link);
    assert.equal(got.status, 200);
    assert.equal(Buffer.from(await got.arrayBuffer()).subarray(0, 5).toString(), '%PDF-');
    await sink.waitFor(users.alice.email);
  });
});
