// End-to-end test of the dashboard's long lists in Debian's chromium: the
// Templates, Segments, Data sources and Scheduled reports lists show 25 rows
// a page with a pager and the total (they used to stop silently at 200 or 500
// rows), a search goes back to the first page, and the campaign editor's
// template picker offers every active template even past the rows /rest/v1
// answers per request (it reads page by page; DB_MAX_ROWS is 400 here), and a
// page emptied by a deletion elsewhere moves back to the last page with rows.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, sql, lit } from '../integration/helpers.js';
import { launch, pageSet, step, signIn, WEB_DIR, PASSWORD, requireWebBuild, addUsers } from './browser.js';

const alice = `lists-alice-${Date.now()}@example.com`;
const bob = `lists-bob-${Date.now()}@example.com`;
const TEMPLATES = 1003;
let server, browser;
const opened = pageSet();
const { pages } = opened;
const newPage = () => opened.newPage(browser, server.url, { width: 1280, height: 900 });

before(async () => {
  requireWebBuild();
  server = await startServer({ WEB_DIR, DB_MAX_ROWS: '400' });
  await addUsers(server, [[alice, 'user'], [bob, 'user']]);
  const owner = `(select id from auth.users where email = ${lit(alice)})`;
  // Rows of the names T0001…, S01…, D01…, R01… created one second apart, the
  // first oldest, so that the lists' newest-first order is known. Bob's rows
  // are never counted for Alice (row-level security).
  await sql(server, `
    insert into public.templates (user_id, name, type, content, created_at, updated_at)
    select ${owner}, 'T' || lpad(i::text, 4, '0'), 'sms', 'Hello from the spring offer',
           now() - make_interval(secs => ${TEMPLATES} - i), now() - make_interval(secs => ${TEMPLATES} - i)
      from generate_series(1, ${TEMPLATES}) i;
    insert into public.audience_segments (user_id, name, created_at, updated_at)
    select ${owner}, 'S' || lpad(i::text, 2, '0'), now() - make_interval(secs => 27 - i), now() - make_interval(secs => 27 - i)
      from generate_series(1, 27) i;
    insert into public.data_sources (user_id, name, type, created_at)
    select ${owner}, 'D' || lpad(i::text, 2, '0'), 'csv_upload', now() - make_interval(secs => 26 - i)
      from generate_series(1, 26) i;
    insert into public.report_schedules (user_id, name, report_type, frequency, recipients, created_at)
    select ${owner}, 'R' || lpad(i::text, 2, '0'), 'period_summary', 'weekly', array[${owner}], now() - make_interval(secs => 26 - i)
      from generate_series(1, 26) i;
    insert into public.templates (user_id, name, type, content)
    select id, 'Bob template', 'sms', 'Hi' from auth.users where email = ${lit(bob)};`);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** The first cells of a list's body rows. */
const firstCells = (table) => table.locator('tbody tr td:first-child').allInnerTexts();

describe('long lists in a browser', () => {
  it('lists page through every row, and the template picker offers all of them', async () => {
    const page = await newPage();
    await step('lists', pages, async () => {
      await signIn(page, server.url, alice, PASSWORD);

      // Templates: newest first, 25 a page, 1,003 in all (none of Bob's)
      await page.goto(`${server.url}/#/templates`);
      const pager = page.getByRole('navigation', { name: 'Pages' });
      await pager.getByText(`Page 1 of 41 · 1,003 total`).waitFor();
      const list = page.locator('table.list');
      assert.deepEqual((await firstCells(list)).slice(0, 2), ['T1003', 'T1002']);
      assert.equal((await firstCells(list)).length, 25);
      await pager.getByRole('button', { name: 'Next' }).click();
      await pager.getByText('Page 2 of 41').waitFor();
      await list.getByText('T0978', { exact: true }).waitFor();
      assert.equal((await firstCells(list))[0], 'T0978');
      // a search starts again at page 1
      await page.getByLabel('Search').fill('T0001');
      await pager.getByText('Page 1 of 1 · 1 total').waitFor();
      assert.deepEqual(await firstCells(list), ['T0001']);

      // Segments: 27 → the second page has the two oldest
      await page.goto(`${server.url}/#/segments`);
      await pager.getByText('Page 1 of 2 · 27 total').waitFor();
      await pager.getByRole('button', { name: 'Next' }).click();
      await pager.getByText('Page 2 of 2').waitFor();
      await list.getByText('S01', { exact: true }).waitFor();
      assert.deepEqual(await firstCells(list), ['S02', 'S01']);
      assert.equal(await pager.getByRole('button', { name: 'Next' }).isDisabled(), true);

      // Data sources: 26 → D01 alone on page 2
      await page.goto(`${server.url}/#/data-sources`);
      await pager.getByText('Page 1 of 2 · 26 total').waitFor();
      await pager.getByRole('button', { name: 'Next' }).click();
      await list.getByText('D01', { exact: true }).waitFor();
      assert.deepEqual(await firstCells(list), ['D01']);

      // Scheduled reports (oldest first): 26 → R26 alone on page 2
      await page.goto(`${server.url}/#/reports`);
      const section = page.getByRole('region', { name: 'Scheduled reports' });
      const spager = section.getByRole('navigation', { name: 'Pages' });
      await spager.getByText('Page 1 of 2 · 26 total').waitFor();
      const stable = section.getByRole('table', { name: 'Scheduled reports' });
      assert.equal((await firstCells(stable))[0], 'R01');
      await spager.getByRole('button', { name: 'Next' }).click();
      await stable.getByText('R26', { exact: true }).waitFor();
      assert.deepEqual(await firstCells(stable), ['R26']);
      // R26 deleted elsewhere: realtime reloads the list, page 2 is empty, the
      // list moves to page 1 (25 rows) instead of showing "no schedules"
      await sql(server, `delete from public.report_schedules where name = 'R26'`);
      await spager.getByText('Page 1 of 1 · 25 total').waitFor();
      assert.equal((await firstCells(stable)).length, 25);

      // The campaign editor's picker: every active SMS template, past 1,000
      await page.goto(`${server.url}/#/campaigns/new`);
      await page.locator('#c-type').selectOption('sms');
      const picker = page.locator('#c-template');
      await page.waitForFunction((n) => document.querySelectorAll('#c-template option').length > n, TEMPLATES);
      const names = await picker.locator('option').allInnerTexts();
      assert.equal(names.filter((n) => /^T\d{4}$/.test(n)).length, TEMPLATES);
      assert.ok(names.includes('T1003') && names.includes('T0001'));
      assert.ok(!names.includes('Bob template'));
    });
  });
});
