// Shared helpers for the integration tests: start the real campaignd binary on
// a throwaway data directory, make @supabase/supabase-js clients for it, and a
// few tools the tests need (raw HTTP, psql, JWT decoding and forging).
//
// Environment: CAMPAIGND_BIN (default build/campaignd of this tree) and
// CAMPAIGND_TEST_TMP (default os.tmpdir()); KEEP_TEST_DATA=1 keeps the data
// directories of servers that stopped cleanly (failed ones are always kept).
import { spawn, execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import WebSocket from 'ws';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '..', '..');
export const BIN = process.env.CAMPAIGND_BIN || path.join(ROOT, 'build', 'campaignd');
export const TMP = process.env.CAMPAIGND_TEST_TMP || os.tmpdir();
export const PG_BIN = '/usr/lib/postgresql/15/bin';

// Settings a developer's shell may carry that would change what the tests see:
// every name in docs/configuration.md (generated from the settings table) and
// a few that are read outside it.
function settingNames() {
  const names = new Set(['CAMPAIGND_ENV_FILE', 'POSTGRES_BIN_DIR', 'DATABASE_URL', 'JWT_SECRET', 'PORT']);
  try {
    const md = fs.readFileSync(path.join(ROOT, 'docs', 'configuration.md'), 'utf8');
    for (const m of md.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)) names.add(m[1]);
  } catch {
    /* no docs: the fixed names above still go */
  }
  return [...names];
}
const SETTINGS = settingNames();

/** The inherited environment without campaignd settings. */
export function baseEnv() {
  const env = { ...process.env };
  for (const k of SETTINGS) delete env[k];
  return env;
}

/** A new empty directory under TMP, mode 0755 (PostgreSQL runs as `postgres`). */
export function makeDataDir(prefix = 'cd-it-') {
  fs.mkdirSync(TMP, { recursive: true });
  const dir = fs.mkdtempSync(path.join(TMP, prefix));
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** A TCP port that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs the binary with args and env; resolves {code, signal, stdout, stderr}. */
export function runBin(args, env, { input, cwd, timeoutMs = 120000 } = {}) {
  return new Promise((resolve) => {
    const child = spawn(BIN, args, { env, cwd: cwd || TMP, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    // A command that exits before reading stdin would make this write fail
    // with EPIPE, an uncaught error that kills the test file: ignore it.
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}

/** Runs a command (not the binary); resolves {code, stdout, stderr}. */
export function runCmd(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 16 << 20, ...opts }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** One plain HTTP request with node:http (so a test can pick the source
 * address with localAddress). Resolves {status, headers, text, json}. */
export function request(url, { method = 'GET', headers = {}, body, localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const data = body === undefined ? undefined : typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    const h = { ...headers };
    if (data !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type'))
      h['Content-Type'] = 'application/json';
    if (data !== undefined) h['Content-Length'] = Buffer.byteLength(data);
    const req = http.request(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: h, localAddress, agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          let json;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode, headers: res.headers, text, json });
        });
      },
    );
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}

/** Writes raw bytes to the server and collects everything it sends back until
 * it closes the connection (or idleMs passes without the socket closing).
 * Resolves {text, closed}. */
export function rawHttp(port, data, { idleMs = 3000 } = {}) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    let done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ text, closed });
    };
    const timer = setTimeout(() => finish(false), idleMs);
    s.setEncoding('latin1');
    s.on('data', (d) => (text += d));
    s.on('end', () => finish(true));
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
    s.write(data);
  });
}

/** Counts the HTTP responses (status lines) in a raw reply. */
export function statusLines(text) {
  return [...text.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
}

// Servers still running when the test process exits (a crashed test file)
// get SIGTERM, so that they stop their PostgreSQL instead of lingering.
const live = new Set();
process.on('exit', () => {
  for (const child of live) child.kill('SIGTERM');
});

/** Starts `campaignd serve` on a new data dir and waits for GET /ready. */
export async function startServer(env = {}) {
  const dataDir = env.CAMPAIGND_DATA_DIR || makeDataDir();
  const port = env.PORT || String(await freePort());
  const fullEnv = {
    ...baseEnv(),
    CAMPAIGND_DATA_DIR: dataDir,
    PORT: String(port),
    LOG_LEVEL: 'warn',
    BCRYPT_COST: '10',
    AUTH_RATE_LIMIT: '100000',
    // campaignd is invite-only by default (DISABLE_SIGNUP=true); most tests sign
    // users up through supabase-js, so test servers open sign-up unless a test
    // passes DISABLE_SIGNUP itself (auth-mail.test.js tests the real default).
    DISABLE_SIGNUP: 'false',
    ...env,
  };
  const url = `http://127.0.0.1:${port}`;
  const logPath = path.join(dataDir, `server-${port}.log`);
  const logFd = fs.openSync(logPath, 'a');
  const child = spawn(BIN, ['serve'], { env: fullEnv, cwd: dataDir, stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  live.add(child);
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      live.delete(child);
      exited = { code, signal };
      resolve(exited);
    });
  });
  const log = () => {
    try {
      return fs.readFileSync(logPath, 'utf8');
    } catch {
      return '';
    }
  };

  // On a failed start, stop the server the gentle way first (it then stops
  // its PostgreSQL), and only then by force.
  const abort = async () => {
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 30000);
    await exitPromise;
    clearTimeout(t);
  };

  // CAMPAIGND_READY_SECONDS: more for benchmarks on a crowded machine
  const deadline = Date.now() + Number(process.env.CAMPAIGND_READY_SECONDS || 60) * 1000;
  for (;;) {
    if (exited) throw new Error(`campaignd exited (${JSON.stringify(exited)}) before it was ready:\n${log()}`);
    try {
      const r = await request(`${url}/ready`);
      if (r.status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      await abort();
      throw new Error(`campaignd was not ready within 60 s:\n${log()}`);
    }
    await sleep(100);
  }

  const run = (args, opts = {}) => runBin(args, { ...fullEnv, ...(opts.env || {}) }, { cwd: dataDir, ...opts });
  const keys = await run(['keys']);
  const anonKey = /^ANON_KEY=(.+)$/m.exec(keys.stdout)?.[1];
  const serviceKey = /^SERVICE_ROLE_KEY=(.+)$/m.exec(keys.stdout)?.[1];
  if (keys.code !== 0 || !anonKey || !serviceKey) {
    await abort();
    throw new Error(`campaignd keys failed (${keys.code}): ${keys.stdout}${keys.stderr}`);
  }

  let stopped = null;
  const server = {
    url,
    port: Number(port),
    anonKey,
    serviceKey,
    dataDir,
    env: fullEnv,
    process: child,
    log,
    run,
    exited: () => exited,
    /** SIGTERM, wait for the exit, assert it was clean (exit code 0). */
    async stop({ removeData = !process.env.KEEP_TEST_DATA } = {}) {
      if (!stopped) {
        stopped = (async () => {
          if (!exited) child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 60000);
          const res = await exitPromise;
          clearTimeout(timer);
          return res;
        })();
      }
      const res = await stopped;
      assert.equal(
        res.code,
        0,
        `campaignd did not exit cleanly (${JSON.stringify(res)}); log:\n${log().slice(-8000)}`,
      );
      if (removeData) fs.rmSync(dataDir, { recursive: true, force: true });
      return res;
    },
  };
  return server;
}

/** A supabase-js client for the server that never persists or refreshes on its own. */
export function client(server, key = server.anonKey, options = {}) {
  return createClient(server.url, key, {
    ...options,
    // node 20 has no global WebSocket; realtime-js needs one at construction.
    realtime: { transport: WebSocket, ...(options.realtime || {}) },
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false, ...(options.auth || {}) },
  });
}

/** A supabase-js client that acts with a user's access token (e.g. an admin's). */
export function clientWithToken(server, accessToken) {
  return client(server, server.anonKey, { global: { headers: { Authorization: `Bearer ${accessToken}` } } });
}

/** Asserts a supabase-js call returned no error, naming the error if it did. */
export function noError(error, what = 'the call') {
  if (error)
    assert.fail(`${what} failed: ${error.name} status=${error.status} code=${error.code} message=${error.message}`);
}

/** A unique, valid e-mail address. */
export function uniqueEmail(tag = 'user') {
  return `${tag}-${crypto.randomBytes(6).toString('hex')}@example.com`;
}

export const PASSWORD = 'correct horse battery';

/** Signs up a user through supabase-js; returns {client, session, user, email, password}. */
export async function signUpUser(server, { email = uniqueEmail(), password = PASSWORD, data } = {}) {
  const c = client(server);
  const { data: d, error } = await c.auth.signUp({ email, password, options: data ? { data } : undefined });
  noError(error, 'signUp');
  assert.ok(d.session, 'signUp returned no session');
  return { client: c, session: d.session, user: d.user, email, password };
}

/** Signs in through supabase-js; returns {client, session, user}. */
export async function signIn(server, email, password = PASSWORD) {
  const c = client(server);
  const { data, error } = await c.auth.signInWithPassword({ email, password });
  noError(error, `signInWithPassword(${email})`);
  return { client: c, session: data.session, user: data.user };
}

/** The psql connection string from `campaignd db-url`. */
export async function dbUrl(server) {
  const r = await server.run(['db-url']);
  assert.equal(r.code, 0, `db-url failed: ${r.stderr}`);
  return r.stdout.trim();
}

/** Runs SQL with psql as the database owner; resolves {code, stdout, stderr}. */
export async function psql(server, sql) {
  const url = server.dbUrlCache || (server.dbUrlCache = await dbUrl(server));
  return runCmd('psql', [url, '-X', '-v', 'ON_ERROR_STOP=1', '-Atc', sql]);
}

/** Like psql() but asserts success and returns the trimmed output. */
export async function sql(server, text) {
  const r = await psql(server, text);
  assert.equal(r.code, 0, `psql failed: ${r.stderr}\n${text}`);
  return r.stdout.trim();
}

/** A SQL string literal. */
export const lit = (s) => `'${String(s).replace(/'/g, "''")}'`;

/** Header and payload of a JWT, decoded (no verification). */
export function decodeJwt(token) {
  const [h, p] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
  };
}

const b64url = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

/** A JWT signed with HMAC (alg HS256 by default; HS384/HS512 for attacks). */
export function signJwt(payload, secret, { alg = 'HS256', header = {} } = {}) {
  const h = b64url({ alg, typ: 'JWT', ...header });
  const p = b64url(payload);
  const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
  const sig = hash ? crypto.createHmac(hash, secret).update(`${h}.${p}`).digest('base64url') : '';
  return `${h}.${p}.${sig}`;
}

/** The server's JWT secret (generated into the data dir on first start). */
export function jwtSecret(server) {
  return server.env.JWT_SECRET || fs.readFileSync(path.join(server.dataDir, 'jwt_secret'), 'utf8').trim();
}

/** Runs a PostgreSQL binary as the `postgres` OS user (when root). */
export function pgAsOwner(tool, args) {
  const bin = path.join(PG_BIN, tool);
  if (process.getuid && process.getuid() === 0) return runCmd('runuser', ['-u', 'postgres', '--', bin, ...args]);
  return runCmd(bin, args);
}

/** The options src/db/pgembed.c starts the embedded PostgreSQL with. */
export function pgembedOptions(dataDir) {
  return [
    '-c listen_addresses=',
    `-c unix_socket_directories=${path.join(dataDir, 'run')}`,
    '-c unix_socket_permissions=0700',
    '-c port=5432',
    '-c max_connections=300',
    '-c wal_level=replica',
    '-c max_replication_slots=16',
    '-c max_wal_senders=16',
    '-c logging_collector=off',
  ].join(' ');
}

/** Stops a PostgreSQL cluster of a data dir if one is running on it (cleanup
 * after tests that start it by hand or with `campaignd db-url`). */
export async function stopClusterIfRunning(dataDir) {
  const pgdata = path.join(dataDir, 'pg');
  if (!fs.existsSync(path.join(pgdata, 'postmaster.pid'))) return;
  await pgAsOwner('pg_ctl', ['-D', pgdata, '-m', 'fast', '-w', 'stop']);
}

/** Polls fn every `every` ms until it returns a truthy value, and returns that
 * value; fails the test naming `what` when ms pass without one. (The shared
 * copy of the loop each test file used to carry.) */
export async function eventually(fn, what = 'condition', ms = 60000, every = 200) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`${what} did not happen within ${ms / 1000} s`);
    await sleep(every);
  }
}

/** The access token of `who`: a token string, a signUpUser()/signIn() result
 * ({session}), an object with `token`, or null (the anon key only). */
function tokenOf(who) {
  if (!who) return null;
  if (typeof who === 'string') return who;
  return who.token || who.session?.access_token || null;
}

/** A request to the server (`/api/...` or any path) with the anon key and, for
 * `who` (see tokenOf), its bearer token. Resolves as request() does. */
export function api(server, who, method, p, body, { headers = {} } = {}) {
  const h = { apikey: server.anonKey, ...headers };
  const token = tokenOf(who);
  if (token) h.Authorization = `Bearer ${token}`;
  return request(`${server.url}${p}`, { method, headers: h, body });
}
