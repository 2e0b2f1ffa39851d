// End-to-end test of the PDF export in Debian's chromium: a user opens a
// campaign's performance, clicks "Export PDF" and gets a file named
// report-<date>-<slug>.pdf whose text (poppler's pdftotext) has the report's
// title and its key figures; the same from the Reports list's "PDF" link,
// and a viewer's download works too (the CSV's permissions). A report too
// large for a PDF shows the server's refusal and its advice (use the CSV).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { startServer, request, signIn as apiSignIn, sql, lit } from '../integration/helpers.js';
import { launch, pageSet, step, signIn, WEB_DIR } from './browser.js';

const PASSWORD = 'e2e password 123';
const people = { user: `pdf-user-${Date.now()}@example.com`, viewer: `pdf-viewer-${Date.now()}@example.com` };
const CAMPAIGN = '00000000-0000-4000-8000-00000000e2f1';
const LONG = '00000000-0000-4000-8000-00000000e2f2';
const NAME = 'Rentrée Überraschung';
let server, browser, report;
const opened = pageSet();
const { pages } = opened;
const newPage = () => opened.newPage(browser, server.url);

before(async () => {
  assert.ok(fs.existsSync(`${WEB_DIR}/index.html`), `no dashboard build in ${WEB_DIR} (run: node scripts/build-web.mjs ${WEB_DIR})`);
  server = await startServer({ WEB_DIR });
  for (const [role, email] of Object.entries(people)) {
    const r = await server.run(['user', 'add', '--email', email, '--password', PASSWORD, '--role', role]);
    assert.equal(r.code, 0, r.stderr);
  }
  const s = await apiSignIn(server, people.user, PASSWORD);
  await sql(server, `
    insert into public.campaigns (id, user_id, name, type) values ('${CAMPAIGN}', ${lit(s.user.id)}, ${lit(NAME)}, 'email');
    insert into public.email_messages (campaign_id, recipient, status, sent_at) values
      ('${CAMPAIGN}', 'a@example.com', 'delivered', '2026-11-01 10:00Z'),
      ('${CAMPAIGN}', 'b@example.com', 'delivered', '2026-11-01 11:00Z'),
      ('${CAMPAIGN}', 'c@example.com', 'failed', '2026-11-02 10:00Z');
    insert into public.campaigns (id, user_id, name, type) values ('${LONG}', ${lit(s.user.id)}, 'Five years', 'email');
    insert into public.email_messages (campaign_id, recipient, status, sent_at)
      select '${LONG}', 'l' || i || '@example.com', 'delivered', timestamptz '2020-01-01 12:00Z' + i * interval '1 day'
      from generate_series(0, 2000) i;`);
  const generate = async (id) => {
    const r = await request(`${server.url}/api/reports`, {
      method: 'POST',
      headers: { apikey: server.anonKey, Authorization: `Bearer ${s.session.access_token}` },
      body: { campaign_id: id },
    });
    assert.equal(r.status, 201, r.text);
    return r.json;
  };
  report = await generate(CAMPAIGN);
  await generate(LONG);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Clicks the button and returns {name, text} of the downloaded PDF. */
async function downloadPdf(page, button) {
  const [download] = await Promise.all([page.waitForEvent('download'), button.click()]);
  const file = await download.path();
  assert.equal(fs.readFileSync(file).subarray(0, 5).toString(), '%PDF-');
  return { name: download.suggestedFilename(), text: execFileSync('pdftotext', ['-layout', '-enc', 'UTF-8', file, '-'], { encoding: 'utf8' }) };
}

describe('PDF export in the dashboard', () => {
  it('a user exports a campaign\'s performance and a report of the list as PDF', async () => {
    const page = await newPage();
    await step('pdf-user', pages, async () => {
      await signIn(page, server.url, people.user, PASSWORD);
      await page.goto(`${server.url}/#/campaigns/${CAMPAIGN}`);
      await page.getByRole('heading', { name: NAME }).waitFor();
      const pdf = await downloadPdf(page, page.getByRole('button', { name: 'Export PDF' }));
      assert.match(pdf.name, /^report-\d{4}-\d\d-\d\d-rentr-e-berraschung-performance\.pdf$/);
      assert.ok(pdf.text.includes(`${NAME} performance`), pdf.text);
      assert.match(pdf.text, /Key figures/);
      assert.match(pdf.text, new RegExp(`^\\s*sent\\s+${report.data.totals.sent}\\s*$`, 'm'));
      assert.match(pdf.text, new RegExp(`^\\s*failed\\s+${report.data.totals.failed}\\s*$`, 'm'));

      await page.goto(`${server.url}/#/reports`);
      const link = page.getByRole('button', { name: `PDF of ${NAME} performance` });
      const listed = await downloadPdf(page, link);
      assert.equal(listed.name, pdf.name);
      assert.match(listed.text, /Per day/);
    });
  });

  it('a report too large for a PDF shows the refusal and what to do', async () => {
    const page = await newPage();
    await step('pdf-too-large', pages, async () => {
      await signIn(page, server.url, people.user, PASSWORD);
      await page.goto(`${server.url}/#/campaigns/${LONG}`);
      await page.getByRole('heading', { name: 'Five years' }).waitFor();
      let downloads = 0;
      page.on('download', () => downloads++);
      await page.getByRole('button', { name: 'Export PDF' }).click();
      const alert = page.getByRole('alert').filter({ hasText: 'too many rows' });
      await alert.waitFor();
      assert.match(await alert.innerText(), /Export it as CSV/);
      assert.equal(downloads, 0);
    });
  });

  it('a viewer downloads the PDF too (the CSV\'s permissions)', async () => {
    const page = await newPage();
    await step('pdf-viewer', pages, async () => {
      await signIn(page, server.url, people.viewer, PASSWORD);
      await page.goto(`${server.url}/#/reports`);
      const pdf = await downloadPdf(page, page.getByRole('button', { name: `PDF of ${NAME} performance` }));
      assert.ok(pdf.text.includes(`${NAME} performance`));
    });
  });
});
