// End-to-end test of the segment builder in Debian's chromium: a user builds
// rules with the visual builder (a condition, a nested "any" group, a consent
// picker), watches the live size follow every change (counting only their own
// live contacts), sees the database's message for an incomplete condition,
// saves the segment, finds it with its size in the list, picks it as the
// audience of a campaign, and cannot delete it while the campaign targets it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, signIn as apiSignIn, noError } from '../integration/helpers.js';
import { launch, pageSet, step, signIn, navItems, WEB_DIR, PASSWORD, requireWebBuild, addUsers } from './browser.js';

const alice = `seg-alice-${Date.now()}@example.com`;
const bob = `seg-bob-${Date.now()}@example.com`;
let server, browser;
const opened = pageSet();
const { pages, watches } = opened;
const newPage = (viewport = { width: 1280, height: 900 }) => opened.newPage(browser, server.url, viewport);

/** Adds contacts as their owner, through /rest/v1. */
async function addContacts(email, rows) {
  const { client } = await apiSignIn(server, email, PASSWORD);
  // one shape for every row: a key missing from one row would be NULL in it
  const full = rows.map((r) => ({ email: null, phone: null, attributes: {}, ...r }));
  const { error } = await client.from('contacts').insert(full);
  noError(error, `contacts of ${email}`);
}

before(async () => {
  requireWebBuild();
  server = await startServer({ WEB_DIR });
  await addUsers(server, [[alice, 'user'], [bob, 'user']]);
  await addContacts(alice, [
    { email: 'ann@shop.example', first_name: 'Ann', attributes: { plan: 'pro' } },
    { email: 'dee@shop.example', first_name: 'Dee', attributes: { plan: 'free' } },
    { email: 'bo@mail.example', first_name: 'Bo', attributes: { plan: 'pro' } },
    { phone: '+15550100001', first_name: 'Cy' },
  ]);
  // Bob's contacts match the same rules; they are never counted for Alice.
  await addContacts(bob, [
    { email: 'fay@shop.example', first_name: 'Fay', attributes: { plan: 'pro' } },
    { email: 'gus@shop.example', first_name: 'Gus' },
  ]);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

describe('the segment builder in a browser', () => {
  it('a user builds a segment, sees its live size, saves it and targets a campaign with it', async () => {
    const page = await newPage();
    const name = `Shop pros ${Date.now()}`;
    const count = page.locator('[data-segment-count]');
    await step('segments', pages, async () => {
      await signIn(page, server.url, alice, PASSWORD);
      assert.ok((await navItems(page)).includes('Segments'), 'Segments is in the menu');
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Segments' }).click();
      await page.getByText('No segments yet.').waitFor();
      await page.getByRole('link', { name: 'New segment' }).click();
      await page.getByLabel('Name').fill(name);

      // No condition: every live contact of Alice's (4), none of Bob's.
      await page.locator('[data-segment-count="4"]').waitFor();

      // E-mail contains "SHOP" (case-insensitive): Ann and Dee.
      await page.getByRole('button', { name: 'Add condition' }).click();
      const first = page.getByRole('group', { name: 'Condition' }).nth(0);
      await first.getByLabel('Field').selectOption('email');
      await first.getByLabel('Operator').selectOption('contains');
      assert.deepEqual(await first.getByLabel('Operator').locator('option').allInnerTexts(),
        ['is', 'is not', 'contains', 'starts with', 'ends with', 'is one of', 'is empty', 'is not empty'],
        'the operators of a text field');
      await first.getByLabel('Value').fill('SHOP');
      await page.locator('[data-segment-count="2"]').waitFor();
      assert.equal(await count.getAttribute('data-segment-count'), '2');
      await page.getByRole('list', { name: 'Sample of matching contacts' }).getByText('Ann').waitFor();

      // A nested "any" group with an incomplete attribute condition: the
      // database's message names the bad path, then the fixed rule counts.
      await page.getByRole('button', { name: 'Add group' }).click();
      const group = page.locator('fieldset.rule-group fieldset.rule-group');
      await group.getByLabel('Match').selectOption('any');
      await group.getByRole('button', { name: 'Add condition' }).click();
      const attr = group.getByRole('group', { name: 'Condition' }).nth(0);
      await attr.getByLabel('Field').selectOption('attributes');
      await page.getByRole('alert').getByText('rules.all[1].any[0].field: an attribute name has 1 to 100 characters').waitFor();
      await attr.getByLabel('Attribute name').fill('plan');
      await attr.getByLabel('Value').fill('PRO');
      await page.locator('[data-segment-count="1"]').waitFor(); // Ann (shop, pro); not Fay (Bob's)

      // A second condition in the group: consent.email "none" (a value picker, not free text).
      await group.getByRole('button', { name: 'Add condition' }).click();
      const consent = group.getByRole('group', { name: 'Condition' }).nth(1);
      await consent.getByLabel('Field').selectOption('consent.email');
      assert.deepEqual(await consent.getByLabel('Value').locator('option').allInnerTexts(), ['subscribed', 'unsubscribed', 'none']);
      await consent.getByLabel('Value').selectOption('none');
      await page.locator('[data-segment-count="2"]').waitFor(); // shop and (pro or no consent record): Ann, Dee

      await page.getByRole('button', { name: 'Create segment' }).click();
      await page.waitForURL(/#\/segments\/[0-9a-f-]{36}$/);
      await page.getByRole('heading', { name }).waitFor();
      await page.getByText(/^Saved size: 2 /).waitFor();
      // the saved rules load back into the builder
      await page.locator('fieldset.rule-group fieldset.rule-group').getByLabel('Attribute name').waitFor();
      assert.equal(await page.locator('fieldset.rule-group fieldset.rule-group').getByLabel('Attribute name').inputValue(), 'plan');
      await page.locator('[data-segment-count="2"]').waitFor();

      await page.getByRole('link', { name: '← Segments' }).click();
      const row = page.getByRole('row', { name: new RegExp(name) });
      await row.waitFor();
      assert.equal(await row.getByRole('cell').nth(2).innerText(), '2');

      // The campaign editor's audience picker.
      const campaign = `Pros only ${Date.now()}`;
      await page.goto(`${server.url}/#/campaigns/new`);
      await page.getByLabel('Name').fill(campaign);
      await page.getByLabel('Audience').selectOption({ label: `${name} (2 contacts)` });
      await page.getByRole('button', { name: 'Create campaign' }).click();
      await page.getByRole('heading', { name: campaign }).waitFor();
      await page.getByText('Audience:').getByRole('link', { name }).waitFor();

      // A segment that a campaign targets cannot be deleted (it would widen the campaign).
      await page.getByText('Audience:').getByRole('link', { name }).click();
      await page.getByRole('heading', { name }).waitFor();
      page.once('dialog', (d) => d.accept());
      await page.getByRole('button', { name: 'Delete segment' }).click();
      await page.getByRole('alert').getByText(/violates foreign key constraint/).waitFor();
      await page.goto(`${server.url}/#/segments`);
      await page.getByRole('row', { name: new RegExp(name) }).waitFor();
    });

    // At 360 px the builder stacks: nothing is wider than the screen.
    const small = await newPage({ width: 360, height: 740 });
    await step('segments-360', pages, async () => {
      await signIn(small, server.url, alice, PASSWORD);
      await small.goto(`${server.url}/#/segments`);
      await small.getByRole('link', { name }).click();
      await small.locator('[data-segment-count="2"]').waitFor();
      const { scroll, client } = await small.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
      assert.ok(scroll <= client, `the page is ${scroll} px wide on a ${client} px screen`);
    });
    const w = watches[0];
    assert.deepEqual(w.foreign, [], 'no request to another host');
    assert.deepEqual(w.errors.filter((e) => !/status of (400|409)/.test(e)), [], 'no console error besides the refused preview and delete');
  });
});
