// Support for the end-to-end tests: Debian's chromium driven by
// playwright-core (no Playwright browser download), one fresh profile per
// run, screenshots of every open page when a step fails (under
// build/e2e-failures/), a record of requests to any other host, and the
// set-up every e2e file shares (the dashboard build, accounts with roles).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT } from '../integration/helpers.js';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const WEB_DIR = process.env.CAMPAIGND_WEB_DIR || path.join(ROOT, 'build', 'web');
export const FAIL_DIR = path.join(ROOT, 'build', 'e2e-failures');
const WAIT = 30000; // bound for every wait on a condition (ASan builds are slow)

/** Launches chromium. Playwright gives every launch a fresh temporary
 * user-data-dir and removes it at close; browser.newContext() makes isolated
 * sessions (separate storage), one per signed-in person. */
export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage'],
  });
}

/** Watches a page: console errors (CSP violations among them), page errors,
 * and requests to any host other than the server's. */
export function watch(page, baseUrl) {
  const origin = new URL(baseUrl).origin;
  const w = { errors: [], foreign: [] };
  page.on('console', (m) => { if (m.type() === 'error') w.errors.push(m.text()); });
  page.on('pageerror', (e) => w.errors.push(`pageerror: ${e.message}`));
  page.on('request', (r) => {
    const u = r.url();
    if (u.startsWith('data:') || u.startsWith('blob:')) return;
    const o = new URL(u);
    const same = o.host === new URL(origin).host && (o.protocol === 'http:' || o.protocol === 'ws:');
    if (!same) w.foreign.push(u);
  });
  return w;
}

/** The pages of one test file: each in a new context (its own session),
 * watched (see watch) and remembered, so that step() can screenshot every
 * open one. */
export function pageSet() {
  const open = [];
  const watches = [];
  return {
    watches,
    pages: () => open.filter((p) => !p.isClosed()),
    async newPage(browser, baseUrl, viewport = { width: 1280, height: 800 }) {
      const ctx = await browser.newContext({ viewport });
      const page = await ctx.newPage();
      page.setDefaultTimeout(WAIT);
      open.push(page);
      watches.push(watch(page, baseUrl));
      return page;
    },
  };
}

/** Runs fn; on failure saves a full-page screenshot of every open page. */
export async function step(name, pages, fn) {
  try {
    return await fn();
  } catch (err) {
    fs.mkdirSync(FAIL_DIR, { recursive: true });
    let i = 0;
    for (const p of pages()) {
      i++;
      const file = path.join(FAIL_DIR, `${name.replace(/[^a-z0-9]+/gi, '-')}-${i}.png`);
      await p.screenshot({ path: file, fullPage: true }).catch(() => {});
      err.message += `\n  screenshot: ${file} (${p.url()})`;
    }
    throw err;
  }
}

export async function signIn(page, baseUrl, email, password) {
  await page.goto(`${baseUrl}/`);
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor({ timeout: WAIT });
}

/** The visible labels of the main navigation. */
export async function navItems(page) {
  return page.getByRole('navigation', { name: 'Main' }).getByRole('link').allInnerTexts();
}

export { WAIT };

/** The password of the accounts the e2e tests create. */
export const PASSWORD = 'e2e password 123';

/** Fails clearly when the dashboard has not been built into WEB_DIR. */
export function requireWebBuild() {
  assert.ok(fs.existsSync(path.join(WEB_DIR, 'index.html')), `no dashboard build in ${WEB_DIR} (run: node scripts/build-web.mjs ${WEB_DIR})`);
}

/** Creates accounts with `campaignd user add`: [[email, role], ...]. */
export async function addUsers(server, accounts) {
  for (const [email, role] of accounts) {
    const r = await server.run(['user', 'add', '--email', email, '--password', PASSWORD, '--role', role]);
    assert.equal(r.code, 0, r.stderr);
  }
}

/** Records what a page sends and receives from now on: HTTP requests
 * ({method, path, at}) and the realtime websocket's received frames ({text, at}).
 * Attach it before the page opens its websocket. */
export function recordTraffic(page) {
  const t = { requests: [], frames: [] };
  page.on('request', (r) => {
    const u = new URL(r.url());
    t.requests.push({ method: r.method(), path: u.pathname + u.search, at: Date.now() });
  });
  page.on('websocket', (ws) => {
    if (!ws.url().includes('/realtime/')) return;
    ws.on('framereceived', (f) => t.frames.push({ text: String(f.payload), at: Date.now() }));
  });
  return t;
}
