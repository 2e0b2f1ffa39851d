// End-to-end tests of the providers in Debian's chromium:
//  - an admin sets the provider settings of migration 039 on the Admin page:
//    the plain columns (e-mail provider, sender, API bases, Twilio sender) and
//    the write-only secrets (SMTP URL, SendGrid key, Twilio SID and token),
//    shown only as "Set" / "Not set", replaced and cleared; no secret ever
//    reaches the page;
//  - SMS end to end (issue 13): a user writes an SMS template and a campaign
//    in the dashboard and sends it to the Twilio-shaped server
//    (tests/integration/fake-twilio.js, started here like the e-mail tests
//    start the SMTP sink); Twilio's signed status callbacks mark the messages
//    delivered, the page counts them live, and the campaign's report counts
//    them, with the price Twilio set after delivery.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, signIn as apiSignIn, noError, sql, lit, freePort } from '../integration/helpers.js';
import { startFakeTwilio, zoneAt } from '../integration/fake-twilio.js';
import { launch, pageSet, step, signIn, WEB_DIR } from './browser.js';

const PASSWORD = 'e2e password 123';
const stamp = Date.now();
const alice = `prov-alice-${stamp}@example.com`;
const admin = `prov-admin-${stamp}@example.com`;
const TOKEN = 'twilio-e2e-token-0123456789abcdef';
const SID = 'AC' + '3'.repeat(32);
const PHONES = [['Ann', '+15550500001'], ['Bo', '+15550500002']];
let server, twilio, browser;
const opened = pageSet();
const { pages, watches } = opened;
const newPage = () => opened.newPage(browser, server.url, { width: 1280, height: 900 });

/** Waits until the SQL query answers want (the page's flash stays up from an
 * earlier save, so the database tells when a save has landed). */
async function dbEventually(query, want, what) {
  const deadline = Date.now() + 30000;
  for (;;) {
    const got = await sql(server, query);
    if (got === want) return;
    assert.ok(Date.now() < deadline, `${what}: ${got} != ${want}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

before(async () => {
  assert.ok(fs.existsSync(path.join(WEB_DIR, 'index.html')), `no dashboard build in ${WEB_DIR} (run: node scripts/build-web.mjs ${WEB_DIR})`);
  twilio = await startFakeTwilio({ accountSid: SID, authToken: TOKEN, price: '-0.00790', priceDelayMs: 500 });
  const port = await freePort();
  server = await startServer({
    WEB_DIR,
    PORT: String(port),
    API_EXTERNAL_URL: `http://127.0.0.1:${port}`,
    TWILIO_ACCOUNT_SID: SID,
    TWILIO_AUTH_TOKEN: TOKEN,
    TWILIO_API_BASE: twilio.url,
    TWILIO_FROM: '+15550009999',
    SMS_RATE_PER_SECOND: '0',
    SMS_PRICE_RETRY_SECONDS: '1',
    SEND_SCHEDULER_INTERVAL: '1',
    SEND_RETRY_SECONDS: '1',
    JOB_POLL_INTERVAL: '1',
  });
  for (const [email, role] of [[alice, 'user'], [admin, 'admin']]) {
    const r = await server.run(['user', 'add', '--email', email, '--password', PASSWORD, '--role', role]);
    assert.equal(r.code, 0, r.stderr);
  }
  const { client } = await apiSignIn(server, alice, PASSWORD);
  const { error } = await client.from('contacts').insert(PHONES.map(([first_name, phone]) => ({ first_name, phone })));
  noError(error, 'contacts of alice');
  for (const [, phone] of PHONES)
    await sql(server, `insert into public.sms_consent (phone_number, consent_given, consent_source) values (${lit(phone)}, true, 'web_form')`);
  await sql(server, `update public.app_settings set timezone = ${lit(zoneAt(13))}`);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await twilio?.stop();
});

describe('provider settings on the Admin page', () => {
  it('an admin sets, replaces and clears the SMTP URL and the provider columns; secrets are never shown', async () => {
    const page = await newPage();
    page.on('dialog', (d) => d.accept()); // "Clear the SMTP URL?"
    const secretUrl = 'smtp://news:pa55-first-secret@mail.example.org:587';
    const replaced = 'smtps://news:pa55-second-secret@mail.example.org:465';
    const bodies = [];
    page.on('response', async (r) => { if (/\/rest\/v1\//.test(r.url())) bodies.push(await r.text().catch(() => '')); });
    await step('admin-providers', pages, async () => {
      await signIn(page, server.url, admin, PASSWORD);
      await page.goto(`${server.url}/#/admin`);
      await page.getByRole('tab', { name: 'Settings' }).click();
      const smtp = page.getByTestId('secret-smtp_url');
      await smtp.getByTestId('secret-state').getByText('Not set', { exact: true }).waitFor();
      for (const name of ['sendgrid_api_key', 'twilio_account_sid', 'twilio_auth_token'])
        assert.equal(await page.getByTestId(`secret-${name}`).getByTestId('secret-state').innerText(), 'Not set');

      await page.getByLabel('E-mail provider').selectOption('smtp');
      await page.getByLabel('Sender address').fill('news@acme.example');
      await page.getByLabel('Twilio API base').fill(twilio.url);
      await page.getByLabel('SMTP URL').fill(secretUrl);
      await page.getByRole('button', { name: 'Save settings' }).click();
      await page.getByText('Settings saved.').waitFor();
      await smtp.getByTestId('secret-state').getByText('Set', { exact: true }).waitFor();
      assert.equal(await page.getByLabel('SMTP URL').inputValue(), '', 'the field is empty again: write-only');
      assert.equal(await sql(server, `select email_provider || ' ' || email_from || ' ' || twilio_api_base || ' ' || smtp_url
                                      from public.app_settings`), `smtp news@acme.example ${twilio.url} ****:587`);
      const first = await sql(server, `select encode(value_encrypted, 'hex') from public.app_secrets where name = 'smtp_url'`);
      assert.ok(first.length > 0, 'stored encrypted');

      // replace: a new value, still only "Set" on the page
      await page.getByLabel('SMTP URL').fill(replaced);
      await page.getByRole('button', { name: 'Save settings' }).click();
      await dbEventually('select smtp_url from public.app_settings', '****:465', 'the replaced SMTP URL');
      const second = await sql(server, `select encode(value_encrypted, 'hex') from public.app_secrets where name = 'smtp_url'`);
      assert.notEqual(second, first, 'replaced');
      await smtp.getByTestId('secret-state').getByText('Set', { exact: true }).waitFor();

      // an emptied column goes back to the environment's value (null)
      await page.getByLabel('Sender address').fill('');
      await page.getByLabel('E-mail provider').selectOption('');
      await page.getByRole('button', { name: 'Save settings' }).click();
      await dbEventually(`select coalesce(email_from, 'null') || ' ' || coalesce(email_provider, 'null') from public.app_settings`,
        'null null', 'emptied columns');

      // clear the secret
      await page.getByRole('button', { name: 'Clear SMTP URL' }).click();
      await page.getByText('SMTP URL cleared.').waitFor();
      await smtp.getByTestId('secret-state').getByText('Not set', { exact: true }).waitFor();
      assert.equal(await page.getByRole('button', { name: 'Clear SMTP URL' }).count(), 0);
      assert.equal(await sql(server, `select count(*) from public.app_secrets where name = 'smtp_url'`), '0');
      assert.equal(await sql(server, `select coalesce(smtp_url, 'null') from public.app_settings`), 'null');
    });
    const html = await page.content();
    for (const secret of ['pa55-first-secret', 'pa55-second-secret'])
      assert.ok(!bodies.some((b) => b.includes(secret)) && !html.includes(secret), `${secret} never reached the page`);
    assert.deepEqual(watches.at(-1).errors.filter((e) => !/Failed to load resource/.test(e)), [], 'no console error');
  });
});

describe('SMS from the dashboard', () => {
  it('a user writes an SMS template and campaign, sends it through Twilio, and sees the messages delivered, counted and priced', async () => {
    const page = await newPage();
    page.on('dialog', (d) => d.accept()); // "Send now?"
    const tplName = `Flash sms ${stamp}`;
    const campaign = `Flash sale ${stamp}`;
    await step('sms-e2e', pages, async () => {
      await signIn(page, server.url, alice, PASSWORD);
      await page.goto(`${server.url}/#/templates/new`);
      await page.getByLabel('Name').fill(tplName);
      await page.getByLabel('Channel').selectOption('sms');
      assert.equal(await page.getByLabel('Subject').count(), 0, 'no subject for SMS');
      await page.getByLabel('Content').fill('Hi {{first_name | "there"}}, flash sale today');
      await page.getByRole('button', { name: 'Create template' }).click();
      await page.waitForURL(/#\/templates\/[0-9a-f-]{36}$/);

      await page.goto(`${server.url}/#/campaigns/new`);
      await page.getByLabel('Name', { exact: true }).fill(campaign);
      await page.getByLabel('Type').selectOption('sms');
      await page.getByLabel('Template').selectOption({ label: tplName });
      await page.getByLabel('SMS sender ID').fill('AcmeShop');
      await page.getByRole('button', { name: 'Create campaign' }).click();
      await page.getByRole('heading', { name: campaign }).waitFor();
      const status = page.getByRole('group', { name: 'Status' });
      await status.getByRole('button', { name: 'Send now' }).click();
      // the progress bar ends at 2 of 2; Twilio's callbacks make both delivered
      await page.locator('[role="progressbar"][data-done="2"][data-total="2"]').waitFor();
      await page.locator('.page-head .badge', { hasText: /^sent$/ }).waitFor();
      await page.getByTestId('send-counts').getByText('2 delivered').waitFor();
    });
    const byTo = Object.fromEntries(twilio.messages.map((m) => [m.params.To, m.params]));
    for (const [first, phone] of PHONES) {
      assert.ok(byTo[phone], `an SMS to ${phone}`);
      assert.equal(byTo[phone].From, 'AcmeShop', "the campaign's sender");
      assert.equal(byTo[phone].Body, `Hi ${first}, flash sale today\nReply STOP to opt out`);
    }
    assert.equal(twilio.messages.length, PHONES.length, 'one SMS per recipient');
    // the price arrives after delivery; then the report counts and prices them
    const cid = await sql(server, `select id from public.campaigns where name = ${lit(campaign)}`);
    const deadline = Date.now() + 60000;
    while (await sql(server, `select count(*) from public.sms_messages where campaign_id = ${lit(cid)} and cost is not null`) !== '2') { // (NULL: not priced yet, 051)
      assert.ok(Date.now() < deadline, 'both prices recorded within 60 s');
      await new Promise((r) => setTimeout(r, 250));
    }
    await step('sms-report', pages, async () => {
      await page.getByRole('button', { name: 'Generate report' }).click();
      await page.locator('[data-fig="delivered"] .kpi-value', { hasText: /^2$/ }).waitFor();
      await page.locator('[data-fig="sent"] .kpi-value', { hasText: /^2$/ }).waitFor();
      await page.locator('[data-fig="cost"] .kpi-value', { hasText: '0.0158' }).waitFor();
      await page.locator('[data-fig="unknown"] .kpi-value', { hasText: /^0$/ }).waitFor();
    });
    const w = watches.at(-1);
    assert.deepEqual(w.foreign, [], 'no request to another host');
    assert.deepEqual(w.errors.filter((e) => !/Failed to load resource/.test(e)), [], 'no console error');
  });
});
