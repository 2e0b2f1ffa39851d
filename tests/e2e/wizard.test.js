// End-to-end test of the import wizard for database and API sources in
// Debian's chromium: a user configures a PostgreSQL source (a second cluster
// started here, as tests/integration/connectors-db.test.js does) and a
// rest_api source (the local JSON API of tests/integration/fake-apis.js)
// through the wizard — a refused login shown with what to do, the password
// masked once stored, the preview, the mapping, an incremental key — runs
// them, and reads the rows and the sync history. The progress of a slow sync
// is proven to arrive through realtime alone: the bar takes at least two
// intermediate values while the page makes no HTTP request for the sync's
// row, and each value shown was in a realtime frame. A viewer sees the
// sources and the wizard read-only; the wizard works at 360 px.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, sql } from '../integration/helpers.js';
import * as dbs from '../integration/db-servers.js';
import { startFakeApis } from '../integration/fake-apis.js';
import { launch, pageSet, step, signIn, WEB_DIR, PASSWORD, requireWebBuild, addUsers, recordTraffic, WAIT } from './browser.js';

const stamp = Date.now();
const alice = `wz-alice-${stamp}@example.com`;
const viewer = `wz-viewer-${stamp}@example.com`;
const SLOW_ROWS = 20000;
const run = {}; // what the realtime test saw, for the test of its intermediate values
let server, browser, pg, fake;
const opened = pageSet();
const { pages, watches } = opened;
const newPage = (viewport = { width: 1280, height: 900 }) => opened.newPage(browser, server.url, viewport);

before(async () => {
  requireWebBuild();
  [pg, fake] = await Promise.all([dbs.startPostgres({ prefix: 'cd-wzpg-' }), startFakeApis()]);
  await pg.psql(`
    create role reader login password 'reader-secret-pw';
    create table public.leads (id integer primary key, email text not null, score numeric(6,2), updated_at timestamptz not null);
    insert into public.leads select g, 'lead' || g || '@example.com', g * 1.5,
      timestamptz '2024-03-01 00:00:00+00' + g * interval '1 minute' from generate_series(1, 30) g;
    grant select on public.leads to reader;`);
  fake.state.items = ['Ada', 'Bob', 'Cy', 'Dee', 'Eve'].map((name, i) => ({
    id: i + 1, name, email: `${name.toLowerCase()}@example.com`, updated_at: `2024-01-0${i + 1}T10:00:00Z`, owner: { city: 'Paris' },
  }));
  server = await startServer({ WEB_DIR, IMPORT_ALLOW_PRIVATE_NETWORKS: 'true', JOB_POLL_INTERVAL: '1' });
  await addUsers(server, [[alice, 'user'], [viewer, 'viewer']]);
  browser = await launch();
}, { timeout: 300000 });

after(async () => {
  await browser?.close();
  await server?.stop();
  await pg?.stop();
  await fake?.stop?.();
});

/** Step 1 of the wizard for a database: the connection fields. */
async function fillDatabase(page, { name, user, password, table = 'leads' }) {
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByLabel('Where the data is').selectOption('postgres');
  await page.getByLabel('Host', { exact: true }).fill('127.0.0.1');
  await page.getByLabel('Port', { exact: true }).fill(String(pg.port));
  await page.getByLabel('Database', { exact: true }).fill('postgres');
  await page.getByLabel('Encryption (SSL)').selectOption('disable');
  await page.getByLabel('User', { exact: true }).fill(user);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByLabel('Table', { exact: true }).fill(table);
}

/** The preview's "Column in the source" cells. */
function sourceColumns(page) {
  return page.locator('table.list tbody tr td:nth-child(2)').allInnerTexts();
}

/** Runs the wizard's last steps and waits for the run's result. */
async function runNow(page) {
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByRole('button', { name: 'Save and run now' }).click();
  return page.getByTestId('sync-result').innerText();
}

describe('the import wizard for databases and APIs', () => {
  let pgSourceUrl;

  it('a PostgreSQL source: a refused login says what to do, the password is stored masked, the rows and history show', async () => {
    const page = await newPage();
    await step('wizard-postgres', pages, async () => {
      await signIn(page, server.url, alice, PASSWORD);
      await page.goto(`${server.url}/#/data-sources`);
      await page.getByRole('link', { name: 'Import data' }).click();
      await fillDatabase(page, { name: 'CRM leads', user: 'reader', password: 'wrong-password' });
      await page.getByLabel('Each sync reads').selectOption('incremental');
      await page.getByLabel('Incremental column').fill('updated_at');
      await page.getByRole('button', { name: 'Save and test connection' }).click();
      const alert = page.getByRole('alert');
      await alert.getByText(/password authentication failed/).waitFor();
      assert.match(await alert.innerText(), /check the user name and password/);

      // Back to the connection: the stored login is masked, the fields are empty.
      await page.getByRole('button', { name: 'Change the connection' }).click();
      assert.equal(await page.getByLabel('Password', { exact: true }).inputValue(), '', 'the password is never shown again');
      assert.equal(await page.getByLabel('Password', { exact: true }).getAttribute('type'), 'password');
      await page.getByText(/stored: \*{4}word — leave empty to keep/).waitFor();
      await page.getByLabel('User', { exact: true }).fill('reader');
      await page.getByLabel('Password', { exact: true }).fill('reader-secret-pw');
      await page.getByRole('button', { name: 'Save and test connection' }).click();
      await page.getByText('Connection works.').waitFor();
      assert.match(await page.getByTestId('masked-credentials').innerText(), /password \*{4}t-pw/);
      assert.equal(await page.getByText('reader-secret-pw').count(), 0, 'the clear password is nowhere on the page');
      assert.deepEqual(await sourceColumns(page), ['id', 'email', 'score', 'updated_at']);
      const stored = await sql(server, "select credentials::text from public.data_sources where name = 'CRM leads'");
      assert.doesNotMatch(stored, /reader-secret-pw/);

      // An incremental sync needs a duplicate key: the wizard says so before running.
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByRole('button', { name: 'Save and run now' }).click();
      await page.getByRole('alert').getByText('An incremental sync needs a duplicate key.').waitFor();
      await page.getByRole('button', { name: 'Back' }).click();
      await page.getByLabel('Duplicate key').selectOption('id_col');
      assert.match(await runNow(page), /^30 imported, 0 skipped\./);
      await page.getByRole('link', { name: /Open the source/ }).click();
      await page.getByRole('heading', { name: 'CRM leads' }).waitFor();
      pgSourceUrl = page.url();
      assert.match(await page.getByTestId('row-count').innerText(), /^30 rows in import_/);
      await page.getByRole('cell', { name: 'lead1@example.com' }).waitFor();
      const history = page.getByRole('table', { name: 'Sync history' });
      await history.getByRole('cell', { name: 'success' }).waitFor();
      assert.equal(await history.getByRole('row').count(), 2, 'one run (a header and a row): the preview is not a sync');

      // New rows in the source; "Sync now" reads only what is new, live in the history.
      await pg.psql(`insert into public.leads values (31, 'lead31@example.com', 1, '2024-04-01'), (32, 'lead32@example.com', 2, '2024-04-02')`);
      await page.getByRole('button', { name: 'Sync now' }).click();
      await page.getByText('Sync started.').waitFor();
      await history.getByRole('row').nth(2).waitFor();
      await page.getByTestId('row-count').getByText(/^32 rows/).waitFor();
      await page.getByText(/incremental on updated_at, last value 2024-04-02/).waitFor();
    });
  });

  it('a rest_api source at 360 px, by keyboard: a revoked token says what to do, then the records import', async () => {
    const page = await newPage({ width: 360, height: 780 });
    await step('wizard-rest', pages, async () => {
      await signIn(page, server.url, alice, PASSWORD);
      await page.goto(`${server.url}/#/data-sources/import`);
      // the keyboard: Name, then where the data is, in that order
      await page.getByLabel('Name', { exact: true }).focus();
      await page.keyboard.type('CRM API');
      await page.keyboard.press('Tab');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'wz-kind');
      await page.getByLabel('Where the data is').selectOption('rest_api');
      await page.getByLabel('API address').focus();
      await page.keyboard.type(`${fake.url}/rest/page`);
      await page.keyboard.press('Tab');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'cx-method');
      await page.getByLabel('Records at').fill('data.items');
      await page.getByLabel('Pages').selectOption('page');
      await page.getByLabel('API token').fill('tok-revoked-7788');
      const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(over <= 0, `the wizard overflows by ${over}px at 360px`);
      await page.getByLabel('API token').press('Enter'); // submits the form
      const alert = page.getByRole('alert');
      await alert.getByText(/reconnect the source/).waitFor();
      assert.match(await alert.innerText(), /type them again and test again/);

      await page.getByRole('button', { name: 'Change the connection' }).click();
      await page.getByText(/stored: \*{4}7788 — leave empty to keep/).waitFor();
      await page.getByLabel('API token').fill('tok-1');
      await page.getByRole('button', { name: 'Save and test connection' }).click();
      await page.getByText('Connection works.').waitFor();
      assert.deepEqual((await sourceColumns(page)).sort(), ['email', 'id', 'name', 'owner.city', 'updated_at']);
      assert.match(await runNow(page), /^5 imported, 0 skipped\./);
      await page.getByRole('link', { name: /Open the source/ }).click();
      await page.getByRole('heading', { name: 'CRM API' }).waitFor();
      assert.match(await page.getByTestId('row-count').innerText(), /^5 rows in import_/);
      await page.getByRole('cell', { name: 'eve@example.com' }).waitFor();
      await page.getByRole('table', { name: 'Sync history' }).getByRole('cell', { name: 'success' }).waitFor();
    });
    const calls = fake.state.calls.filter((c) => c.path === '/rest/page');
    assert.ok(calls.some((c) => c.headers.authorization === 'Bearer tok-1'), 'the stored token was sent');
  });

  it('the progress of a sync arrives through realtime alone: no request for its row, every state shown came in a frame', async () => {
    const page = await newPage();
    const traffic = recordTraffic(page); // before the page opens its websocket
    await step('wizard-realtime', pages, async () => {
      await signIn(page, server.url, alice, PASSWORD);
      await page.goto(`${server.url}/#/data-sources/import`);
      await page.getByLabel('Name', { exact: true }).fill('Slow leads');
      await page.getByLabel('Where the data is').selectOption('postgres');
      await page.getByLabel('Host', { exact: true }).fill('127.0.0.1');
      await page.getByLabel('Port', { exact: true }).fill(String(pg.port));
      await page.getByLabel('Database', { exact: true }).fill('postgres');
      await page.getByLabel('Encryption (SSL)').selectOption('disable');
      await page.getByLabel('User', { exact: true }).fill('reader');
      await page.getByLabel('Password', { exact: true }).fill('reader-secret-pw');
      await page.getByLabel('A read-only query').check();
      // rows that take a while to come: the sync reports progress every 0.5 s
      await page.getByLabel('Query', { exact: true }).fill(`select g as n, 'slow' || g || '@example.com' as email from generate_series(1, ${SLOW_ROWS}) g where pg_sleep(0.0002) is not null`);
      await page.getByRole('button', { name: 'Save and test connection' }).click();
      await page.getByText('Connection works.').waitFor();
      await page.getByRole('button', { name: 'Continue' }).click();

      // From here on: every state the bar shows, and every request.
      await page.evaluate(() => {
        window.seen = [];
        new MutationObserver(() => {
          const bar = document.querySelector('[role="progressbar"][aria-label="Sync"]');
          if (!bar) return;
          const v = { rows: Number(bar.dataset.rows), text: bar.getAttribute('aria-valuetext') };
          const last = window.seen[window.seen.length - 1];
          if (!last || last.text !== v.text) window.seen.push(v);
        }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-rows', 'aria-valuetext'] });
      });
      const from = Date.now();
      await page.getByRole('button', { name: 'Save and run now' }).click();
      const result = await page.getByTestId('sync-result').innerText({ timeout: 4 * WAIT });
      assert.match(result, new RegExp(`^${SLOW_ROWS.toLocaleString('en-US')} imported`));
      run.seen = await page.evaluate(() => window.seen);
      const during = traffic.requests.filter((r) => r.at >= from);
      assert.deepEqual(during.map((r) => `${r.method} ${r.path.split('?')[0].replace(/[0-9a-f-]{36}/, ':id')}`),
        ['PATCH /rest/v1/data_sources', 'POST /api/data-sources/:id/sync'], 'the run: save and start, no request for the progress row');
      run.frames = traffic.frames.filter((f) => f.at >= from && f.text.includes('sync_logs')).map((f) => f.text);
      // the first state is the answer of POST …/sync ("queued"); every later one came over the websocket
      for (const st of run.seen.slice(1)) {
        const [phase] = st.text.split(':');
        // (a run's first state, written when the job starts, has no count yet: 0)
        const rowsOk = (t) => new RegExp(`"rows_read":\\s*${st.rows}\\b`).test(t) || (st.rows === 0 && !/"rows_read"/.test(t));
        assert.ok(run.frames.some((t) => new RegExp(`"phase":\\s*"${phase}"`).test(t) && rowsOk(t)),
          `"${st.text}" arrived over the websocket`);
      }
      assert.ok(run.seen.length >= 2, `the bar followed the sync (${JSON.stringify(run.seen)})`);
      assert.ok(run.frames.some((t) => /"status":\s*"success"/.test(t)), 'the end arrived over the websocket');
    });
  });

  // The sync loads its rows in ONE transaction; its progress reports are
  // committed on their own meanwhile, and the realtime feed delivers a
  // transaction that committed while an older one is still open
  // (src/realtime/changes.c, early_sql), so the bar moves during the load.
  it('the bar takes at least two intermediate row counts during the load', () => {
    assert.ok(run.seen, 'the run of the previous test');
    const between = [...new Set(run.seen.map((v) => v.rows).filter((n) => n > 0 && n < SLOW_ROWS))];
    assert.ok(between.length >= 2, `the bar took at least two intermediate values (saw ${JSON.stringify(run.seen)})`);
    for (const n of between) assert.ok(run.frames.some((t) => new RegExp(`"rows_read":\\s*${n}\\b`).test(t)), `${n} rows read arrived over the websocket`);
  });

  it('a viewer sees the sources, their history and the wizard, read-only', async () => {
    assert.ok(pgSourceUrl, 'the source of the first test');
    const page = await newPage();
    await step('wizard-viewer', pages, async () => {
      await signIn(page, server.url, viewer, PASSWORD);
      await page.goto(`${server.url}/#/data-sources`);
      await page.getByRole('link', { name: 'CRM leads' }).waitFor();
      assert.equal(await page.getByRole('link', { name: 'Import data' }).count(), 0);
      assert.equal(await page.getByRole('button', { name: 'New data source' }).count(), 0);
      await page.goto(pgSourceUrl);
      await page.getByRole('table', { name: 'Sync history' }).getByRole('cell', { name: 'success' }).first().waitFor();
      assert.match(await page.getByTestId('masked-credentials').innerText(), /\*{4}t-pw/);
      assert.equal(await page.getByRole('button', { name: /Test connection|Sync now|Cancel/ }).count(), 0);
      await page.goto(`${server.url}/#/data-sources/import`);
      await page.getByText('Your role can look at the wizard but not add data sources.').waitFor();
      assert.equal(await page.getByLabel('Name', { exact: true }).isDisabled(), true);
      assert.equal(await page.getByRole('button', { name: 'Continue' }).isDisabled(), true);
    });
  });

  it('loads nothing from another host and breaks no CSP rule', () => {
    assert.deepEqual(watches.flatMap((w) => w.foreign), []);
    assert.deepEqual(watches.flatMap((w) => w.errors).filter((e) => /Content Security Policy|pageerror/i.test(e)), []);
  });
});
