// Source databases for the connector tests (tests/integration/connectors-db.test.js,
// bench/connectors/): a second PostgreSQL cluster and a MariaDB server, each on a
// temporary directory, a free port on 127.0.0.1 and a private socket, started by
// the test and stopped by it. Root-safe as the embedded PostgreSQL is: when run as
// root, the servers run as the `postgres` and `mysql` OS users (runuser /
// mariadbd --user), on directories chowned to them.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import * as h from './helpers.js';

const isRoot = process.getuid && process.getuid() === 0;

function chownTo(dir, user) {
  if (!isRoot) return;
  const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
  fs.chownSync(dir, uid, gid);
}

function asUser(user, bin, args) {
  if (isRoot) return h.runCmd('runuser', ['-u', user, '--', bin, ...args]);
  return h.runCmd(bin, args);
}

async function must(p, what) {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stdout}${r.stderr}`);
  return r;
}

/** A PostgreSQL 15 cluster: {port, url(user, password, db), psql(sql), stop()}. Owner
 * `owner` with password `owner-pw`; scram-sha-256 over TCP on 127.0.0.1 only. */
export async function startPostgres({ prefix = 'cd-srcpg-', settings = [] } = {}) {
  const dir = fs.mkdtempSync(path.join(h.TMP, prefix));
  fs.chmodSync(dir, 0o755);
  chownTo(dir, 'postgres');
  const pgdata = path.join(dir, 'data');
  const pwfile = path.join(dir, 'pw');
  fs.writeFileSync(pwfile, 'owner-pw\n', { mode: 0o600 });
  chownTo(pwfile, 'postgres');
  await must(
    asUser('postgres', path.join(h.PG_BIN, 'initdb'), [
      '-D', pgdata, '-U', 'owner', '--auth=scram-sha-256', `--pwfile=${pwfile}`, '-E', 'UTF8', '--no-sync',
    ]),
    'initdb',
  );
  const port = await h.freePort();
  const opts = [
    '-c listen_addresses=127.0.0.1', `-c port=${port}`, `-c unix_socket_directories=${dir}`,
    '-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off', ...settings,
  ].join(' ');
  await must(
    asUser('postgres', path.join(h.PG_BIN, 'pg_ctl'), ['-D', pgdata, '-w', '-t', '60', '-o', opts, '-l', path.join(dir, 'log'), 'start']),
    'pg_ctl start',
  );
  const url = (user = 'owner', password = 'owner-pw', db = 'postgres') =>
    `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${db}`;
  return {
    dir,
    port,
    url,
    async psql(sql, { user, password, db } = {}) {
      const r = await h.runCmd('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', url(user, password, db), '-c', sql]);
      if (r.code !== 0) throw new Error(`psql failed: ${r.stderr}`);
      return r.stdout.trim();
    },
    async stop() {
      await asUser('postgres', path.join(h.PG_BIN, 'pg_ctl'), ['-D', pgdata, '-m', 'fast', '-w', 'stop']);
      if (!process.env.KEEP_TEST_DATA) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A MariaDB server: {port, sql(text), stop()}; root has no password and is
 * reached over the private socket only. */
export async function startMariadb({ prefix = 'cd-srcmy-' } = {}) {
  const dir = fs.mkdtempSync(path.join(h.TMP, prefix));
  fs.chmodSync(dir, 0o755);
  chownTo(dir, 'mysql');
  const datadir = path.join(dir, 'data');
  const sock = path.join(dir, 'mysqld.sock');
  const userArgs = isRoot ? ['--user=mysql'] : [];
  // its own temporary directory: /tmp may not be writable by the mysql user
  const tmpdir = path.join(dir, 'tmp');
  fs.mkdirSync(tmpdir);
  chownTo(tmpdir, 'mysql');
  await must(
    h.runCmd('mariadb-install-db', [
      '--no-defaults', `--datadir=${datadir}`, `--tmpdir=${tmpdir}`, ...userArgs, '--auth-root-authentication-method=normal',
      '--skip-test-db', '--skip-name-resolve',
    ]),
    'mariadb-install-db',
  );
  const port = await h.freePort();
  const child = spawn('/usr/sbin/mariadbd', [
    '--no-defaults', `--datadir=${datadir}`, `--tmpdir=${tmpdir}`, `--socket=${sock}`, `--port=${port}`, '--bind-address=127.0.0.1',
    `--pid-file=${path.join(dir, 'mysqld.pid')}`, `--log-error=${path.join(dir, 'error.log')}`, ...userArgs,
    '--skip-name-resolve', '--innodb-buffer-pool-size=32M', '--innodb-log-file-size=16M',
    '--innodb-flush-log-at-trx-commit=0', '--skip-log-bin', '--max-connections=50',
  ], { stdio: 'ignore' });
  let exited = false;
  const exit = new Promise((resolve) => child.on('exit', () => { exited = true; resolve(); }));
  const sql = async (text) => {
    const r = await h.runCmd('mariadb', ['--no-defaults', '-S', sock, '-uroot', '-N', '-B', '-e', text]);
    if (r.code !== 0) throw new Error(`mariadb failed: ${r.stderr}`);
    return r.stdout.trim();
  };
  const deadline = Date.now() + 60000;
  for (;;) {
    if (exited) throw new Error(`mariadbd exited: ${fs.readFileSync(path.join(dir, 'error.log'), 'utf8').slice(-3000)}`);
    try {
      await sql('select 1');
      break;
    } catch (e) {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw e;
      }
      await h.sleep(200);
    }
  }
  return {
    dir,
    port,
    sql,
    async stop() {
      if (!exited) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 30000);
      await exit;
      clearTimeout(t);
      if (!process.env.KEEP_TEST_DATA) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
