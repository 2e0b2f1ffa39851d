// The command line: --help, settings errors (exit 2), .env files, the JWT
// secret rules, `keys`, `migrate [--status]` and `db-url` with and without a
// running server (and `serve` adopting a cluster that `db-url` started).
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  ROOT, runBin, runCmd, baseEnv, makeDataDir, startServer, decodeJwt, request, stopClusterIfRunning,
} from './helpers.js';

const dirs = [];
function freshDir() {
  const d = makeDataDir();
  dirs.push(d);
  return d;
}
after(async () => {
  for (const d of dirs) {
    await stopClusterIfRunning(d);
    if (!process.env.KEEP_TEST_DATA) fs.rmSync(d, { recursive: true, force: true });
  }
});

/** Runs the binary with a clean environment plus env, in cwd (default: a fresh dir). */
function cli(args, env = {}, opts = {}) {
  const cwd = opts.cwd || freshDir();
  return runBin(args, { ...baseEnv(), CAMPAIGND_DATA_DIR: path.join(cwd, 'var'), LOG_LEVEL: 'warn', ...env }, { cwd, ...opts });
}

function settingNames() {
  const md = fs.readFileSync(path.join(ROOT, 'docs', 'configuration.md'), 'utf8');
  return [...md.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((m) => m[1]);
}

describe('help and version', () => {
  it('--help lists the commands and every setting', async () => {
    for (const flag of ['--help', '-h', 'help']) {
      const r = await cli([flag]);
      assert.equal(r.code, 0, flag);
      for (const cmd of ['serve', 'migrate [--status]', 'user add', 'user set-role', 'user list', 'keys', 'db-url', 'config'])
        assert.ok(r.stdout.includes(cmd), `${flag} mentions ${cmd}`);
      const names = settingNames();
      assert.ok(names.length > 20);
      for (const n of names) assert.match(r.stdout, new RegExp(`^\\s+${n}\\s`, 'm'), `${flag} lists ${n}`);
    }
    const v = await cli(['--version']);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^campaignd \d+\.\d+\.\d+/);
  });

  it('--help prints the usage before the settings when stdout is a pipe', async () => {
    const r = await cli(['--help']);
    assert.ok(r.stdout.indexOf('Usage:') >= 0);
    assert.ok(r.stdout.indexOf('Usage:') < r.stdout.indexOf('Settings'), 'Usage comes first');
  });

  it('an unknown command exits 2 and says so', async () => {
    const r = await cli(['frobnicate']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command 'frobnicate'/);
    const u = await cli(['user']);
    assert.equal(u.code, 2);
  });
});

describe('settings', () => {
  it('a bad setting exits 2 with a message naming it', async () => {
    const cases = [
      ['PORT', 'abc'], ['PORT', '70000'], ['PORT', '-1'], ['PORT', '80x'], ['LOG_LEVEL', 'loud'],
      ['DEFAULT_USER_ROLE', 'admin'], ['BCRYPT_COST', '4'], ['JWT_EXP', '0'], ['DISABLE_SIGNUP', 'maybe'],
      ['REFRESH_TOKEN_REUSE_INTERVAL', '1e3'],
    ];
    for (const [name, value] of cases) {
      const r = await cli(['serve'], { [name]: value });
      assert.equal(r.code, 2, `${name}=${value}: exit ${r.code} ${r.stderr}`);
      assert.match(r.stderr, new RegExp(name), `${name}=${value} is named`);
    }
  });

  it('.env in the working directory is read; the environment wins; CAMPAIGND_ENV_FILE must exist', async () => {
    const cwd = freshDir();
    fs.writeFileSync(path.join(cwd, '.env'), '# comment\n\nexport PORT="4321"\nJWT_EXP=120\nUNKNOWN_THING=1\n');
    let r = await cli(['config'], {}, { cwd });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^PORT=4321$/m);
    assert.match(r.stdout, /^JWT_EXP=120$/m);
    r = await cli(['config'], { PORT: '5555' }, { cwd });
    assert.match(r.stdout, /^PORT=5555$/m, 'the environment wins');
    fs.writeFileSync(path.join(cwd, '.env'), 'PORT=abc\n');
    r = await cli(['config'], {}, { cwd });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /\.env:1: PORT/);
    r = await cli(['config'], { CAMPAIGND_ENV_FILE: path.join(cwd, 'missing.env') }, { cwd });
    assert.equal(r.code, 2);
  });

  it('config masks secrets', async () => {
    const secret = 's3cret-'.repeat(6);
    const r = await cli(['config'], { JWT_SECRET: secret, CAMPAIGND_ADMIN_PASSWORD: 'admin-pass-123' });
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^JWT_SECRET=\(set, 42 bytes\)$/m);
    assert.ok(!r.stdout.includes(secret));
    assert.ok(!r.stdout.includes('admin-pass-123'));
  });
});

describe('JWT secret and keys', () => {
  it('a JWT_SECRET shorter than 32 bytes refuses to start', async () => {
    const r = await cli(['serve'], { JWT_SECRET: 'x'.repeat(31), PORT: '0' });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /JWT_SECRET must be at least 32 bytes/);
    const k = await cli(['keys'], { JWT_SECRET: 'short' });
    assert.notEqual(k.code, 0);
    assert.equal(k.stdout, '', 'no keys printed');
  });

  it('keys prints HS256 anon and service_role keys signed with JWT_SECRET, stable across runs', async () => {
    const secret = crypto.randomBytes(16).toString('hex'); // exactly 32 bytes
    const cwd = freshDir();
    const a = await cli(['keys'], { JWT_SECRET: secret }, { cwd });
    assert.equal(a.code, 0, a.stderr);
    const anon = /^ANON_KEY=(\S+)$/m.exec(a.stdout)?.[1];
    const service = /^SERVICE_ROLE_KEY=(\S+)$/m.exec(a.stdout)?.[1];
    assert.ok(anon && service);
    for (const [key, role] of [[anon, 'anon'], [service, 'service_role']]) {
      const [h, p, s] = key.split('.');
      assert.equal(crypto.createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url'), s, `${role} key signature`);
      const { header, payload } = decodeJwt(key);
      assert.equal(header.alg, 'HS256');
      assert.equal(payload.role, role);
      assert.equal(payload.sub, undefined, 'no sub: auth.uid() is null for key callers');
      assert.ok(payload.exp > Date.now() / 1000 + 365 * 86400, 'long-lived');
    }
    const b = await cli(['keys'], { JWT_SECRET: secret }, { cwd });
    assert.equal(b.stdout, a.stdout, 'same keys every time');
    const c = await cli(['keys'], { JWT_SECRET: crypto.randomBytes(32).toString('hex') }, { cwd });
    assert.notEqual(c.stdout, a.stdout);
  });

  it('without JWT_SECRET a secret is generated into the data dir (0600) and reused', async () => {
    const cwd = freshDir();
    const a = await cli(['keys'], {}, { cwd });
    assert.equal(a.code, 0, a.stderr);
    const file = path.join(cwd, 'var', 'jwt_secret');
    const st = fs.statSync(file);
    assert.equal(st.mode & 0o777, 0o600);
    assert.ok(fs.readFileSync(file, 'utf8').trim().length >= 32);
    const b = await cli(['keys'], {}, { cwd });
    assert.equal(b.stdout, a.stdout);
    fs.writeFileSync(file, 'too-short\n');
    const c = await cli(['keys'], {}, { cwd });
    assert.notEqual(c.code, 0, 'a short stored secret is refused too');
  });
});

describe('database commands', () => {
  it('migrate --status, migrate, db-url without a server, serve adopting that cluster, db-url with a server', async () => {
    const cwd = freshDir();
    const dataDir = path.join(cwd, 'var');
    fs.mkdirSync(dataDir, { mode: 0o755 });
    fs.chmodSync(dataDir, 0o755);
    const env = { CAMPAIGND_DATA_DIR: dataDir };

    let r = await cli(['migrate', '--status'], env, { cwd });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.ok(lines.length >= 3);
    for (const l of lines) assert.match(l, /^pending {2}\d{3}_\w+$/, l);
    const names = lines.map((l) => l.split(/\s+/)[1]);
    assert.ok(names.includes('000_platform_auth') && names.includes('001_rate_limiting'));
    const files = fs.readdirSync(path.join(ROOT, 'migrations')).map((f) => f.replace(/\.sql$/, ''));
    for (const n of names) assert.ok(files.includes(n), `${n} is a file in migrations/`);
    assert.equal(fs.existsSync(path.join(dataDir, 'pg', 'postmaster.pid')), false, 'the CLI stopped the cluster it started');

    r = await cli(['migrate'], env, { cwd });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`database is up to date \\(${names.length} migrations\\)`));
    r = await cli(['migrate', '--status'], env, { cwd });
    const applied = r.stdout.trim().split('\n');
    assert.equal(applied.length, names.length);
    for (const l of applied) assert.match(l, /^applied {2}\d{3}_\w+ {2}\(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+\)$/, l);
    r = await cli(['migrate'], env, { cwd });
    assert.equal(r.code, 0, 'migrate again is a no-op');

    r = await cli(['db-url'], env, { cwd });
    assert.equal(r.code, 0, r.stderr);
    const url = r.stdout.trim();
    assert.match(url, /^postgresql:\/\//);
    let q = await runCmd('psql', [url, '-XAtc', 'select current_database(), count(*) from campaignd.schema_migrations']);
    assert.equal(q.code, 0, q.stderr);
    assert.equal(q.stdout.trim(), `campaignd|${names.length}`);

    const server = await startServer({ CAMPAIGND_DATA_DIR: dataDir });
    try {
      r = await server.run(['db-url']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), url, 'the same URL with a server running');
      q = await runCmd('psql', [url, '-XAtc', 'select 1']);
      assert.equal(q.stdout.trim(), '1');
      r = await server.run(['migrate', '--status']);
      assert.equal(r.code, 0);
      assert.ok(r.stdout.trim().split('\n').every((l) => l.startsWith('applied')));
      assert.equal((await request(`${server.url}/ready`)).status, 200);
    } finally {
      await server.stop({ removeData: false });
    }
    assert.equal(
      fs.existsSync(path.join(dataDir, 'pg', 'postmaster.pid')),
      false,
      'serve stopped the cluster it adopted from db-url',
    );
  });

  it('db-url with DATABASE_URL prints it as is', async () => {
    const r = await cli(['db-url'], { DATABASE_URL: 'postgresql://someone@db.example/x' });
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), 'postgresql://someone@db.example/x');
  });
});
