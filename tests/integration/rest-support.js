// Shared set-up of the /rest/v1 integration tests (rest-*.test.js), on top of
// helpers.js: a server with the fixture schema of fixtures/rest.sql loaded, two
// signed-up users (alice and bob) owning the seeded rows, clients for anon, the
// service role and each user, raw HTTP against /rest/v1, and psql snapshots that
// tell whether a request changed data.
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  startServer, client, clientWithToken, signUpUser, uniqueEmail, runCmd, sql, lit, request, sleep, BIN,
} from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const FIXTURE = path.join(here, 'fixtures', 'rest.sql');

/** Ids of alice's seeded fx_items rows (bob owns id 10). */
export const ALICE_ITEMS = [1, 2, 3, 4, 5, 6, 7, 8];
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Starts a server, loads the fixture as the database owner, signs up alice and
 * bob, seeds their rows, asks for a schema reload and waits until the API sees
 * the fixture tables. Returns {server, anon, service, alice, bob, aliceId,
 * bobId, aliceToken, bobToken}; call server.stop() when done.
 */
export async function setupRest(env = {}) {
  const server = await startServer(env);
  try {
    // `campaignd db-url` through execFile (nothing written to its stdin), cached where
    // helpers.psql() looks for it, so that no other run of the binary is needed.
    const r = await runCmd(BIN, ['db-url'], { env: server.env, cwd: server.dataDir });
    assert.equal(r.code, 0, `campaignd db-url failed: ${r.stderr}`);
    const url = r.stdout.trim();
    server.dbUrlCache = url;
    const load = await runCmd('psql', [url, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', FIXTURE]);
    assert.equal(load.code, 0, `loading ${FIXTURE} failed:\n${load.stderr}`);
    const a = await signUpUser(server, { email: uniqueEmail('alice') });
    const b = await signUpUser(server, { email: uniqueEmail('bob') });
    await sql(server, `select public.fx_seed(${lit(a.user.id)}, ${lit(b.user.id)})`);
    await reloadSchema(server);
    await waitForTable(server, 'fx_items');
    return {
      server,
      anon: client(server),
      service: client(server, server.serviceKey),
      alice: clientWithToken(server, a.session.access_token),
      bob: clientWithToken(server, b.session.access_token),
      aliceId: a.user.id,
      bobId: b.user.id,
      aliceToken: a.session.access_token,
      bobToken: b.session.access_token,
    };
  } catch (e) {
    await server.stop({ removeData: false }).catch(() => {});
    throw e;
  }
}

/** NOTIFY pgrst, 'reload schema' as the owner (what PostgREST listens for). */
export async function reloadSchema(server) {
  await sql(server, "notify pgrst, 'reload schema'");
}

/** Polls GET /rest/v1/<table> with the service key until it answers 200
 * (the schema cache has the table), for at most timeoutMs. */
export async function waitForTable(server, table, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await rest(server, 'GET', `/${table}?select=*&limit=1`, { key: server.serviceKey });
    if (last.status === 200) return;
    if (Date.now() > deadline)
      assert.fail(`/rest/v1/${table} still answers ${last.status} ${last.text.slice(0, 300)} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/**
 * One raw request to /rest/v1<pathAndQuery>. `token` is the Bearer (default:
 * the key), `key` the apikey (default anon). Resolves {status, headers, text, json}.
 */
export function rest(server, method, pathAndQuery, { token, key = server.anonKey, headers = {}, body } = {}) {
  const h = { apikey: key, Authorization: `Bearer ${token || key}`, ...headers };
  for (const k of Object.keys(h)) if (h[k] === undefined) delete h[k];
  return request(`${server.url}/rest/v1${pathAndQuery}`, { method, headers: h, body });
}

/** A query string as URLSearchParams (what postgrest-js builds) would encode it. */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Array.isArray(params) ? params : Object.entries(params)) u.append(k, v);
  return u.toString();
}

/** Count and a digest of every row of a table, read as the owner (bypasses RLS). */
export async function snapshot(server, table) {
  return sql(server, `select count(*) || ':' || coalesce(md5(string_agg(t::text, '|' order by t::text)), '') from public.${table} t`);
}

/** Asserts a PostgREST error body: all four keys, and the given code/status. */
export function assertPgrstError(res, { status, code, message } = {}) {
  const { error } = res;
  assert.ok(error, `expected an error, got status ${res.status} data ${JSON.stringify(res.data)?.slice(0, 300)}`);
  if (status !== undefined) assert.equal(res.status, status, `status (error ${JSON.stringify(error)})`);
  if (code !== undefined) assert.equal(error.code, code, `code (error ${JSON.stringify(error)})`);
  if (message !== undefined) {
    if (message instanceof RegExp) assert.match(error.message, message);
    else assert.equal(error.message, message);
  }
  assert.deepEqual(Object.keys(error).sort(), ['code', 'details', 'hint', 'message'], 'PostgREST error keys');
}

/** Asserts no error and returns data, naming the error if there was one. */
export function ok(res, what = 'the request') {
  if (res.error) assert.fail(`${what} failed: status ${res.status} ${JSON.stringify(res.error)}`);
  return res.data;
}

/** The ids of the rows of a supabase-js result, in order. */
export function idsOf(res, what) {
  const data = ok(res, what);
  assert.ok(Array.isArray(data), `${what}: expected an array, got ${JSON.stringify(data)}`);
  return data.map((r) => r.id);
}

/**
 * Requests over ONE kept-alive TCP connection: `send(method, path, opts)` resolves
 * {status, headers, text, socketId}; socketId shows whether the socket was reused.
 * Close with destroy().
 */
export function keepAliveConnection(server) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const u = new URL(server.url);
  let nextId = 1;
  const send = (method, p, { token, key = server.anonKey, headers = {}, body } = {}) =>
    new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
      const h = { apikey: key, Authorization: `Bearer ${token || key}`, ...headers };
      if (data !== undefined) {
        h['Content-Type'] = h['Content-Type'] || 'application/json';
        h['Content-Length'] = Buffer.byteLength(data);
      }
      const req = http.request({ host: u.hostname, port: u.port, path: `/rest/v1${p}`, method, headers: h, agent }, (res) => {
        const sock = res.socket;
        if (!sock.cdId) sock.cdId = nextId++;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text, socketId: sock.cdId }));
      });
      req.on('error', reject);
      if (data !== undefined) req.write(data);
      req.end();
    });
  return { send, destroy: () => agent.destroy() };
}
