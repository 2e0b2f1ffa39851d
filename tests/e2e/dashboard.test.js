// End-to-end tests of the dashboard in Debian's chromium (playwright-core):
// admin, user and viewer sign in and see what their role allows; a user
// creates a template and a campaign and moves it through the state machine;
// a realtime change reaches a second browser context; a viewer finds no write
// button and a write forged from the page's console is refused by RLS; the
// page makes no request to another host and breaks no CSP rule. Measures the
// bundle size and first paint into build/e2e/RESULTS.md (`make bench` publishes them).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { startServer, request, ROOT } from '../integration/helpers.js';
import { launch, pageSet, step, signIn, navItems, WEB_DIR, PASSWORD, requireWebBuild, addUsers } from './browser.js';

const people = {
  admin: `admin-${Date.now()}@example.com`,
  user: `user-${Date.now()}@example.com`,
  viewer: `viewer-${Date.now()}@example.com`,
};
let server, browser;
const metrics = {};
const opened = pageSet(); // pages, for screenshots on failure
const { pages, watches } = opened;
const newPage = (viewport) => opened.newPage(browser, server.url, viewport);

before(async () => {
  requireWebBuild();
  server = await startServer({ WEB_DIR });
  await addUsers(server, Object.entries(people).map(([role, email]) => [email, role]));
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (Object.keys(metrics).length) writeResults();
});

describe('the dashboard in a browser', () => {
  it('bundle: the first page is at most 250 KB of gzipped JavaScript and CSS', () => {
    // build-info.json (scripts/build-web.mjs) lists the entry, its stylesheet and
    // the chunks the entry imports statically; the pages are lazy chunks.
    const info = JSON.parse(fs.readFileSync(path.join(WEB_DIR, 'build-info.json'), 'utf8'));
    const index = fs.readFileSync(path.join(WEB_DIR, 'index.html'), 'utf8');
    const referenced = [...index.matchAll(/\/assets\/([A-Za-z0-9._-]+\.(?:js|css))/g)].map((m) => m[1]);
    assert.deepEqual([...referenced].sort(), [...info.firstPage].sort(), 'index.html loads exactly the first page');
    let gz = 0, raw = 0, all = 0;
    for (const f of info.firstPage) {
      const buf = fs.readFileSync(path.join(WEB_DIR, 'assets', f));
      raw += buf.length;
      gz += zlib.gzipSync(buf, { level: 9 }).length;
    }
    for (const f of fs.readdirSync(path.join(WEB_DIR, 'assets'))) {
      if (!/\.(js|css)$/.test(f)) continue;
      const text = fs.readFileSync(path.join(WEB_DIR, 'assets', f));
      all += zlib.gzipSync(text, { level: 9 }).length;
      assert.doesNotMatch(text.toString('utf8'), /eyJhbGciOi/, `no key is compiled into ${f}`);
    }
    metrics.bundle = { files: info.firstPage, raw, gzip: gz, all };
    assert.ok(gz <= 250 * 1024, `first page is ${gz} bytes gzipped`);
  });

  it('admin signs in with the keyboard alone and sees every page', async () => {
    const page = await newPage();
    await step('admin', pages, async () => {
      await page.goto(`${server.url}/`);
      await page.getByLabel('E-mail').waitFor();
      await page.getByLabel('E-mail').focus();
      await page.keyboard.type(people.admin);
      await page.keyboard.press('Tab');
      await page.keyboard.type(PASSWORD);
      await page.keyboard.press('Enter');
      await page.getByRole('navigation', { name: 'Main' }).waitFor();
      assert.deepEqual(await navItems(page), ['Overview', 'Campaigns', 'Templates', 'Contacts', 'Segments', 'Reports', 'Data sources', 'Admin']);
      await page.locator('[data-kpi="sent"]').waitFor();

      // A signed-in reload of the overview: first paint and the KPIs on screen.
      await page.reload();
      await page.locator('[data-kpi="sent"]').waitFor();
      metrics.overview = await page.evaluate(() => {
        const fcp = performance.getEntriesByName('first-contentful-paint')[0];
        return { fcp: fcp ? Math.round(fcp.startTime) : null, kpisBy: Math.round(performance.now()) };
      });

      await page.goto(`${server.url}/#/admin`);
      const users = page.getByRole('tabpanel');
      for (const email of Object.values(people)) await users.getByRole('cell', { name: email, exact: true }).waitFor();
      await page.getByRole('tab', { name: 'Settings' }).click();
      assert.equal(await page.getByLabel('Time zone').inputValue(), 'America/New_York');
      const secret = page.getByLabel('Twilio auth token');
      assert.equal(await secret.getAttribute('type'), 'password');
      assert.equal(await secret.inputValue(), '', 'secrets are write-only');
      await page.getByRole('tab', { name: 'Audit log' }).click();
      await page.getByLabel('Action').waitFor();
    });
  });

  it('first paint of the sign-in page with an empty cache (measured, no threshold)', async () => {
    // Three loads, each in a new context (empty cache) of the running browser;
    // the machine is shared, so the median and the best are reported.
    const runs = [];
    for (let i = 0; i < 3; i++) {
      const page = await newPage();
      await step('first-paint', pages, async () => {
        await page.goto(`${server.url}/`);
        await page.getByLabel('E-mail').waitFor();
        runs.push(await page.evaluate(() => {
          const fcp = performance.getEntriesByName('first-contentful-paint')[0];
          const bytes = performance.getEntriesByType('resource').reduce((n, r) => n + (r.transferSize || 0), 0)
            + (performance.getEntriesByType('navigation')[0].transferSize || 0);
          return { fcp: fcp ? Math.round(fcp.startTime) : null, bytes };
        }));
      });
      await page.context().close();
    }
    const fcps = runs.map((r) => r.fcp).sort((a, b) => a - b);
    assert.ok(fcps.every((x) => x > 0), 'the browser reports a first contentful paint');
    metrics.signInPaint = { median: fcps[1], best: fcps[0], all: runs.map((r) => r.fcp), bytes: runs[0].bytes };
  });

  it('works at 360 px: no sideways scrolling, the menu opens and closes', async () => {
    const page = await newPage({ width: 360, height: 740 });
    await step('mobile', pages, async () => {
      await signIn(page, server.url, people.admin, PASSWORD);
      // the navigation is behind the menu button on small screens
      assert.equal(await page.getByRole('navigation', { name: 'Main' }).isVisible(), false);
      for (const route of ['#/', '#/campaigns', '#/contacts', '#/admin']) {
        await page.goto(`${server.url}/${route}`);
        await page.locator('main h1').first().waitFor();
        const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(over <= 0, `${route} overflows by ${over}px at 360px`);
      }
      const menu = page.getByRole('button', { name: 'Menu' });
      assert.equal(await menu.getAttribute('aria-expanded'), 'false');
      await menu.click();
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Campaigns' }).click();
      await page.getByRole('heading', { name: 'Campaigns' }).waitFor();
      assert.equal(await menu.getAttribute('aria-expanded'), 'false');
    });
  });

  let campaignName;
  it('a user creates a template and a campaign, then schedules it', async () => {
    const page = await newPage();
    await step('user', pages, async () => {
      await signIn(page, server.url, people.user, PASSWORD);
      assert.deepEqual(await navItems(page), ['Overview', 'Campaigns', 'Templates', 'Contacts', 'Segments', 'Reports', 'Data sources']);

      await page.goto(`${server.url}/#/templates/new`);
      await page.getByLabel('Name').fill('Winter SMS');
      await page.getByLabel('Channel').selectOption('sms');
      await page.getByLabel('Content').fill(`Hi {{first_name}}, ${'x'.repeat(150)}`);
      await page.getByText('2 segments · GSM-7').waitFor();
      await page.getByLabel('Content').fill('Hi {{first_name}} 🎉 winter sale');
      await page.getByText('1 segment · UCS-2').waitFor();
      await page.getByText('Hi Ana 🎉 winter sale').waitFor(); // the preview fills the variables
      await page.getByRole('button', { name: 'Create template' }).click();
      await page.waitForURL(/#\/templates\/[0-9a-f-]{36}$/);
      await page.goto(`${server.url}/#/templates`);
      await page.getByRole('link', { name: 'Winter SMS' }).waitFor();

      campaignName = `Winter launch ${Date.now()}`;
      await page.goto(`${server.url}/#/campaigns`);
      await page.getByRole('link', { name: 'New campaign' }).click();
      await page.getByLabel('Name').fill(campaignName);
      await page.getByLabel('Type').selectOption('email');
      await page.getByLabel('Content').fill('Hello {{first_name}}');
      await page.getByRole('button', { name: 'Create campaign' }).click();
      await page.getByRole('heading', { name: campaignName }).waitFor();
      const status = page.getByRole('group', { name: 'Status' });
      assert.deepEqual(await status.getByRole('button').allInnerTexts(), ['Schedule', 'Send now', 'Cancel campaign']);

      await status.getByRole('button', { name: 'Schedule' }).click();
      const next = new Date(Date.now() + 7 * 86400000).toISOString().slice(0, 10);
      await page.getByLabel(/Send at/).fill(`${next}T09:30`);
      await page.getByRole('button', { name: 'Confirm schedule' }).click();
      await page.getByText('Campaign is now scheduled.').waitFor();
      // 'Pause' exists only once the page shows the scheduled state ('Send now' exists in both)
      await status.getByRole('button', { name: 'Pause' }).waitFor();
      assert.deepEqual(await status.getByRole('button').allInnerTexts(), ['Send now', 'Pause', 'Cancel campaign']);
    });
  });

  it('the import wizard creates a source and says so when the server has no import engine', async () => {
    const page = await newPage();
    await step('wizard', pages, async () => {
      // Is the import engine (its /api routes) in this server?
      const probe = await request(`${server.url}/api/data-sources/00000000-0000-4000-8000-000000000000/test`, { method: 'POST', headers: { apikey: server.anonKey } });
      const engine = !(probe.status === 404 && probe.json?.message === 'No such endpoint.');
      await signIn(page, server.url, people.user, PASSWORD);
      await page.goto(`${server.url}/#/data-sources`);
      await page.getByRole('link', { name: 'Import data' }).click();
      await page.getByLabel('Name').fill('Agency list');
      await page.getByLabel('Where the data is').selectOption('csv_url');
      await page.getByLabel('Link').fill('https://example.invalid/list.csv');
      await page.getByRole('button', { name: 'Continue' }).click();
      const alert = page.getByRole('alert');
      if (!engine) await alert.getByText('The import engine is not available on this server yet.').waitFor();
      else await alert.waitFor(); // the engine cannot read that link: an error that says so
      await page.goto(`${server.url}/#/data-sources`);
      await page.getByRole('link', { name: 'Agency list' }).click();
      await page.getByRole('heading', { name: 'Agency list' }).waitFor();
      await page.getByText('This source has not synced yet.').or(page.getByRole('cell', { name: /failed|running|success/ }).first()).waitFor();
    });
  });

  it('a realtime change reaches a second browser context', async () => {
    const adminPage = await newPage();
    const userPage = await newPage();
    await step('realtime', pages, async () => {
      await signIn(adminPage, server.url, people.admin, PASSWORD);
      await adminPage.goto(`${server.url}/#/campaigns`);
      await adminPage.getByRole('link', { name: campaignName }).waitFor();
      await signIn(userPage, server.url, people.user, PASSWORD);
      const live = `Live ${Date.now()}`;
      await userPage.goto(`${server.url}/#/campaigns/new`);
      await userPage.getByLabel('Name').fill(live);
      await userPage.getByRole('button', { name: 'Create campaign' }).click();
      await userPage.getByRole('heading', { name: live }).waitFor();
      // the admin's list was loaded before: only the realtime change can add the row
      await adminPage.getByRole('link', { name: live }).waitFor();
    });
  });

  it('a viewer finds no write button, and a write forged from the console is refused by RLS', async () => {
    const page = await newPage();
    await step('viewer', pages, async () => {
      await signIn(page, server.url, people.viewer, PASSWORD);
      assert.deepEqual(await navItems(page), ['Overview', 'Campaigns', 'Reports', 'Data sources']);
      const WRITE = /new|create|save|delete|schedule|send|pause|resume|cancel|generate|edit|add/i;
      // (the status chips of the campaign list are filters, not writes)
      const writeButtons = async () => (await page.locator('main button:not(.chip)').allInnerTexts()).concat(
        await page.locator('main a.button').allInnerTexts()).filter((t) => WRITE.test(t));

      await page.goto(`${server.url}/#/campaigns`);
      await page.getByRole('button', { name: /^1 scheduled$/ }).waitFor(); // the chips count what the viewer may read
      await page.getByRole('link', { name: campaignName }).click();
      await page.getByRole('heading', { name: campaignName }).waitFor();
      await page.getByText(/No report has been generated/).waitFor();
      assert.deepEqual(await writeButtons(), []);
      assert.equal(await page.getByText('Edit campaign').count(), 0);
      const id = page.url().split('/').pop();
      for (const route of ['#/campaigns', '#/reports', '#/data-sources', '#/']) {
        await page.goto(`${server.url}/${route}`);
        await page.locator('main h1').first().waitFor();
        await page.locator('.state').first().waitFor({ state: 'detached' }).catch(() => {});
        assert.deepEqual(await writeButtons(), [], `${route} shows a write button to a viewer`);
      }
      await page.goto(`${server.url}/#/admin`);
      await page.getByRole('heading', { name: 'Not found' }).waitFor();

      // The console of the signed-in page: the viewer's own token, straight to the API.
      const forged = await page.evaluate(async (campaignId) => {
        const { access_token: tok } = JSON.parse(localStorage.getItem('campaignd-auth'));
        const h = { apikey: window.CAMPAIGND.anonKey, Authorization: `Bearer ${tok}`, 'Content-Type': 'application/json' };
        const out = {};
        let r = await fetch('/api/campaigns', { method: 'POST', headers: h, body: JSON.stringify({ name: 'forged', type: 'email' }) });
        out.apiCreate = [r.status, (await r.json()).code];
        r = await fetch(`/api/campaigns/${campaignId}`, { method: 'PUT', headers: h, body: JSON.stringify({ status: 'cancelled' }) });
        out.apiUpdate = [r.status, (await r.json()).code];
        r = await fetch('/rest/v1/campaigns', { method: 'POST', headers: { ...h, Prefer: 'return=representation' }, body: JSON.stringify({ name: 'forged', type: 'email' }) });
        out.restInsert = [r.status, (await r.json()).code];
        r = await fetch(`/rest/v1/campaigns?id=eq.${campaignId}`, { method: 'PATCH', headers: { ...h, Prefer: 'return=representation' }, body: JSON.stringify({ name: 'forged' }) });
        out.restUpdate = [r.status, await r.json()];
        r = await fetch(`/rest/v1/campaigns?id=eq.${campaignId}&select=name,status`, { headers: h });
        out.after = await r.json();
        return out;
      }, id);
      assert.deepEqual(forged.apiCreate, [403, '42501']);
      assert.deepEqual(forged.apiUpdate, [403, '42501']);
      assert.deepEqual(forged.restInsert, [403, '42501']);
      assert.ok(forged.restUpdate[0] >= 400 || (Array.isArray(forged.restUpdate[1]) && forged.restUpdate[1].length === 0), JSON.stringify(forged.restUpdate));
      assert.deepEqual(forged.after, [{ name: campaignName, status: 'scheduled' }], 'the campaign is unchanged');
    });
  });

  it('signing out everywhere shows "you were signed out" in the other tab', async () => {
    const page = await newPage();
    await step('signed-out', pages, async () => {
      await signIn(page, server.url, people.user, PASSWORD);
      // revoke every session of this user from the console, as another device would
      await page.evaluate(async () => {
        const { access_token: tok } = JSON.parse(localStorage.getItem('campaignd-auth'));
        await fetch('/auth/v1/logout?scope=global', { method: 'POST', headers: { apikey: window.CAMPAIGND.anonKey, Authorization: `Bearer ${tok}` } });
      });
      // The access token stays valid until it expires: make the client refresh
      // at its next start, by editing the stored session in the reloaded
      // document before the app's script runs. Edited in the running page
      // instead, the app's own client could find the expired session first,
      // refresh it (refused: revoked) and clear it before the reload, and the
      // reloaded app then saw no stored session at all (the flake of sessions
      // 9 and 10: the sign-in page without the message).
      await page.addInitScript(() => {
        const s = JSON.parse(localStorage.getItem('campaignd-auth') || 'null');
        if (s) {
          s.expires_at = Math.floor(Date.now() / 1000) - 10;
          localStorage.setItem('campaignd-auth', JSON.stringify(s));
        }
      });
      await page.reload();
      await page.getByText(/You were signed out/).waitFor();
      await page.getByRole('button', { name: 'Sign in' }).waitFor();
    });
  });

  it('loads nothing from another host and breaks no CSP rule', () => {
    const foreign = watches.flatMap((w) => w.foreign);
    assert.deepEqual(foreign, []);
    const csp = watches.flatMap((w) => w.errors).filter((e) => /Content Security Policy|pageerror/i.test(e));
    assert.deepEqual(csp, []);
  });
});

function writeResults() {
  const at = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const b = metrics.bundle;
  const lines = [
    '## Dashboard (e2e run)',
    '',
    `Measured by \`tests/e2e/dashboard.test.js\` (\`make test\`, layer e2e) on ${at}: Debian's chromium`,
    'headless, the server on 127.0.0.1 (the ASan build under `make test`), no network throttling;',
    `${os.cpus().length} CPUs, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' / ')} (1/5/15 min) when written — paint times`,
    'grow with the load of the machine (the best of three is the closest to an idle machine).',
    'Goals (issue 13): at most 250 KB gzipped for the first page; first meaningful paint under 1 s.',
    '',
    '| measure | value |',
    '| --- | ---: |',
  ];
  if (b) {
    lines.push(`| first page (sign-in): ${b.files.join(' + ')} | ${(b.raw / 1024).toFixed(1)} KiB, **${(b.gzip / 1024).toFixed(1)} KiB gzipped** |`);
    lines.push(`| every page loaded (all chunks, gzipped) | ${(b.all / 1024).toFixed(1)} KiB |`);
  }
  if (metrics.signInPaint) {
    lines.push(`| sign-in page, empty cache: first contentful paint, the form (median of 3; best; all) | **${metrics.signInPaint.median} ms**; ${metrics.signInPaint.best} ms; ${metrics.signInPaint.all.join(', ')} ms |`);
    lines.push(`| sign-in page, empty cache: bytes transferred (gzip) | ${(metrics.signInPaint.bytes / 1024).toFixed(1)} KiB |`);
  }
  if (metrics.overview) {
    lines.push(`| signed-in overview: first contentful paint | ${metrics.overview.fcp} ms |`);
    lines.push(`| signed-in overview: KPIs from /api/analytics on screen by | ${metrics.overview.kpisBy} ms |`);
  }
  const text = `${lines.join('\n')}\n`;
  // Written under build/ (a test run must not change tracked files);
  // `make bench` copies the latest into bench/web/RESULTS.md and bench/RESULTS.md.
  const dir = process.env.E2E_RESULTS_DIR || path.join(ROOT, 'build', 'e2e');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'RESULTS.md'), text);
}
