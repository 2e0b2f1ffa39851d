// Database connectors end to end (issue 11) against real servers started here: a
// second PostgreSQL cluster (not the one campaignd uses) and MariaDB, each on a
// temporary directory and a free port (tests/integration/db-servers.js). Full sync
// with the source's types, incremental sync with ties and updated rows, a failed
// run that leaves last_sync_value, read-only sessions, one statement only, the
// SSRF guard on hosts, Redshift's cursor path, custom_database URLs. SQL Server is
// not tested here (no server runs on this machine): see tests/unit/importer/test_dbconn.c.
import fs from 'node:fs';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './helpers.js';
import * as dbs from './db-servers.js';

// the syncs of these tests wait up to 2 minutes on a busy machine
const waitFor = (fn, what, ms = 120000) => h.eventually(fn, what, ms, 100);

const T = { timeout: 240000 };
let server; // IMPORT_ALLOW_PRIVATE_NETWORKS=true: the sources are on 127.0.0.1
let pg; // the source PostgreSQL
let my; // the source MariaDB
let alice;

before(async () => {
  [pg, my] = await Promise.all([dbs.startPostgres(), dbs.startMariadb()]);
  server = await h.startServer({
    IMPORT_ALLOW_PRIVATE_NETWORKS: 'true',
    JOB_LEASE_SECONDS: '6',
    JOB_POLL_INTERVAL: '1',
    LOG_LEVEL: 'info',
  });
  alice = await h.signUpUser(server);
  await pg.psql(`
    create role reader login password 'reader-pw';
    create table public.leads (id integer primary key, email text not null, score numeric(6,2),
      active boolean, signed_up date, updated_at timestamptz not null, meta jsonb, big bigint);
    insert into public.leads
      select g, 'user' || g || '@example.com', g * 1.5, g % 2 = 0, date '2024-01-01' + g,
             timestamptz '2024-03-01 00:00:00+00' + (g / 10) * interval '1 hour',
             jsonb_build_object('n', g, 'q', 'say "hi"'), g * 10000000000::bigint
      from generate_series(1, 50) g;
    grant select on public.leads to reader;
    create sequence public.s;
    grant usage, select, update on sequence public.s to reader;`);
  await my.sql(`
    create database shop;
    create table shop.customers (id int primary key, email varchar(100), vip boolean,
      amount decimal(8,2), born date, seen_at timestamp(0) not null, note json);
    insert into shop.customers values
      (1, 'a@example.com', true, 10.50, '1990-05-01', '2024-03-01 10:00:00', '{"k": 1}'),
      (2, 'b@example.com', false, 0.25, '1985-12-31', '2024-03-01 11:00:00', null),
      (3, 'c@example.com', null, null, null, '2024-03-01 11:00:00', '[1, 2]');
    create user 'reader'@'%' identified by 'reader-pw';
    grant select on shop.* to 'reader'@'%';`);
}, { timeout: 300000 }); // two initdb-s and a server start on a busy machine

after(async () => {
  if (server) await server.stop();
  if (pg) await pg.stop();
  if (my) await my.stop();
});

async function createSource(fields, credentials = { user: 'reader', password: 'reader-pw' }) {
  const { data, error } = await alice.client.from('data_sources').insert({ name: 'Leads DB', ...fields }).select().single();
  h.noError(error, 'create data source');
  if (credentials) {
    const r = await h.api(server, alice, 'PUT', `/api/data-sources/${data.id}/credentials`, credentials);
    assert.equal(r.status, 200, r.text);
  }
  return data;
}

async function sync(sourceId) {
  const r = await h.api(server, alice, 'POST', `/api/data-sources/${sourceId}/sync`);
  assert.equal(r.status, 202, r.text);
  return waitFor(async () => {
    const { data, error } = await alice.client.from('sync_logs').select('*').eq('id', r.json.sync_log_id).single();
    h.noError(error, 'read sync log');
    return data.status !== 'running' ? data : null;
  }, 'the sync to finish');
}

async function source(id) {
  const { data, error } = await alice.client.from('data_sources').select('*').eq('id', id).single();
  h.noError(error, 'read data source');
  return data;
}

async function columnTypes(table) {
  const out = await h.sql(
    server,
    `select string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' order by attnum)
       from pg_attribute where attrelid = ('public.' || quote_ident(${h.lit(table)}))::regclass
        and attnum > 0 and not attisdropped and attname not in ('id', 'imported_at')`,
  );
  return out;
}

const pgConfig = () => ({ host: '127.0.0.1', port: pg.port, database: 'postgres', schema: 'public', table: 'leads' });

test('postgres: a full sync streams the table with its types; the credentials stay masked', T, async () => {
  const src = await createSource({ type: 'postgres', config: pgConfig() });
  const masked = await source(src.id);
  assert.deepEqual(Object.keys(masked.credentials).sort(), ['password', 'user']);
  assert.match(masked.credentials.password, /^\*{4}/);
  assert.ok(!JSON.stringify(masked.credentials).includes('reader'), 'masked');

  const t = await h.api(server, alice, 'POST', `/api/data-sources/${src.id}/test`);
  assert.equal(t.status, 200, t.text);
  assert.deepEqual(t.json.columns.map((c) => c.source_name), ['id', 'email', 'score', 'active', 'signed_up', 'updated_at', 'meta', 'big']);

  const log = await sync(src.id);
  assert.equal(log.status, 'success', JSON.stringify(log));
  assert.equal(log.records_imported, 50);
  const ds = await source(src.id);
  assert.equal(ds.last_sync_value, null, 'not an incremental source');
  assert.equal(
    await columnTypes(ds.table_name),
    'id_col integer, email text, score numeric, active boolean, signed_up date, updated_at_col timestamp with time zone, meta text, big numeric',
  );
  const { data: rows, error } = await alice.client.from(ds.table_name).select('*').order('id_col').limit(2);
  h.noError(error, 'read the import table');
  assert.equal(rows[0].email, 'user1@example.com');
  assert.equal(Number(rows[0].score), 1.5);
  assert.equal(rows[0].active, false);
  assert.equal(rows[1].active, true);
  assert.equal(rows[0].signed_up, '2024-01-02');
  assert.equal(new Date(rows[0].updated_at_col).toISOString(), '2024-03-01T00:00:00.000Z');
  assert.deepEqual(JSON.parse(rows[0].meta), { n: 1, q: 'say "hi"' });
  assert.equal(String(rows[0].big), '10000000000');
});

test('postgres: incremental syncs read ties again, upsert by key, and a failed run leaves last_sync_value', T, async () => {
  const src = await createSource({
    name: 'Incremental',
    type: 'postgres',
    config: pgConfig(),
    column_config: { duplicate_key_columns: ['id_col'] },
    schedule_config: { incremental_strategy: 'incremental', incremental_column: 'updated_at' },
  });
  let log = await sync(src.id);
  assert.equal(log.status, 'success', JSON.stringify(log));
  assert.equal(log.records_imported, 50);
  let ds = await source(src.id);
  assert.equal(ds.last_sync_value, '2024-03-01 05:00:00+00');

  // rows that arrive later with the last value (a tie), an updated row, a new one
  await pg.psql(`
    insert into public.leads select g, 'late' || g || '@example.com', 1, true, date '2024-02-01',
      timestamptz '2024-03-01 05:00:00+00', null, 1 from generate_series(51, 55) g;
    update public.leads set email = 'changed@example.com', updated_at = timestamptz '2024-03-01 06:00:00+00' where id = 3;
    insert into public.leads values (56, 'new@example.com', 2, false, date '2024-02-02', timestamptz '2024-03-01 06:00:00+00', null, 2);`);
  log = await sync(src.id);
  assert.equal(log.status, 'success', JSON.stringify(log));
  assert.equal(log.metadata.mode, 'upsert');
  assert.equal(log.metadata.progress.rows_read, 8, 'row 50 and the five ties at 05:00, rows 3 and 56 at 06:00');
  ds = await source(src.id);
  assert.equal(ds.last_sync_value, '2024-03-01 06:00:00+00');
  const counts = await h.sql(server, `select count(*) || ' ' || count(distinct id_col) from public.${ds.table_name}`);
  assert.equal(counts, '56 56', 'every row once: none skipped, none doubled');
  assert.equal(await h.sql(server, `select email from public.${ds.table_name} where id_col = 3`), 'changed@example.com');

  // a run that fails after reading rows (a 'fail' rule) keeps the position and the rows
  await pg.psql(`insert into public.leads values (57, 'not-an-email', 1, true, date '2024-02-03', timestamptz '2024-03-01 07:00:00+00', null, 3);`);
  const { error } = await alice.client
    .from('data_sources')
    .update({
      column_config: {
        columns: [
          { source_name: 'id', target_name: 'id_col', type: 'integer' },
          { source_name: 'email', target_name: 'email', type: 'text', cleaning_rules: [{ type: 'validate_email', on_invalid: 'fail' }] },
          { source_name: 'score', target_name: 'score', type: 'number' },
          { source_name: 'active', target_name: 'active', type: 'boolean' },
          { source_name: 'signed_up', target_name: 'signed_up', type: 'date' },
          { source_name: 'updated_at', target_name: 'updated_at_col', type: 'timestamp' },
          { source_name: 'meta', target_name: 'meta', type: 'text' },
          { source_name: 'big', target_name: 'big', type: 'number' },
        ],
        duplicate_key_columns: ['id_col'],
      },
    })
    .eq('id', src.id);
  h.noError(error, 'update column_config');
  log = await sync(src.id);
  assert.equal(log.status, 'failed', JSON.stringify(log));
  assert.match(log.error_message, /not-an-email|e-mail/);
  ds = await source(src.id);
  assert.equal(ds.last_sync_value, '2024-03-01 06:00:00+00', 'a failed run leaves the position');
  assert.equal(await h.sql(server, `select count(*) from public.${ds.table_name}`), '56');
});

test('postgres: the session is read-only and runs one statement', T, async () => {
  const writes = await createSource({
    name: 'Writes',
    type: 'postgres',
    config: { ...pgConfig(), table: undefined, query: "select nextval('public.s') as n, id from public.leads" },
  });
  const log = await sync(writes.id);
  assert.equal(log.status, 'failed', JSON.stringify(log));
  assert.match(log.error_message, /read-only transaction/);
  assert.equal(await pg.psql('select is_called from public.s'), 'f', 'the sequence never moved');

  const two = await createSource({
    name: 'Two statements',
    type: 'postgres',
    config: { ...pgConfig(), table: undefined, query: 'select 1 as x; drop table public.leads' },
  });
  const t = await h.api(server, alice, 'POST', `/api/data-sources/${two.id}/test`);
  assert.equal(t.status, 400, t.text);
  assert.match(t.json.message, /one SELECT statement/);
  // a query that closes the derived table early is one broken statement, not two
  const sneaky = await createSource({
    name: 'Sneaky',
    type: 'postgres',
    config: { ...pgConfig(), table: undefined, query: 'select 1 as x) as q, lateral (select pg_sleep(0)' },
  });
  const t2 = await h.api(server, alice, 'POST', `/api/data-sources/${sneaky.id}/test`);
  assert.equal(t2.status, 400, t2.text);
  assert.equal(await pg.psql('select count(*) from public.leads'), '57', 'the table is intact');

  const badIdent = await createSource({ name: 'Bad table', type: 'postgres', config: { ...pgConfig(), table: 'leads"; drop table leads; --' } });
  const t3 = await h.api(server, alice, 'POST', `/api/data-sources/${badIdent.id}/test`);
  assert.equal(t3.status, 400, t3.text);
  assert.match(t3.json.message, /does not exist/);

  const wrongPw = await createSource({ name: 'Wrong password', type: 'postgres', config: pgConfig() }, { user: 'reader', password: 'nope' });
  const t4 = await h.api(server, alice, 'POST', `/api/data-sources/${wrongPw.id}/test`);
  assert.equal(t4.status, 400, t4.text);
  assert.match(t4.json.message, /password authentication failed/);
});

// IMPORT_DB_KEEP_SECONDS (default 60): the source session of a sync that read
// everything is kept for the source's next sync — reset first, so nothing a
// query did to its session survives — and never handed to another target.
test('postgres: a sync soon after reuses the source session, reset; new credentials get a new one', T, async () => {
  // roles of this test alone: the other tests' sources keep sessions as reader
  await pg.psql(`create role keep1 login password 'keep1-pw'; create role keep2 login password 'keep2-pw';
    grant select on public.leads to keep1, keep2; grant usage, select, update on sequence public.s to keep1`);
  const src = await createSource({
    name: 'Kept session',
    type: 'postgres',
    // a session-level advisory lock and a session setting, taken by the query itself
    config: { ...pgConfig(), table: undefined,
      query: "select id, pg_advisory_lock(4242)::text as l, set_config('work_mem', '7MB', false) as wm from public.leads" },
  }, { user: 'keep1', password: 'keep1-pw' });
  const sessions = async (user) => pg.psql(`select coalesce(string_agg(pid::text || ' ' || state, ','), '')
    from pg_stat_activity where application_name = 'campaignd-import' and usename = '${user}'`);
  let log = await sync(src.id);
  assert.equal(log.status, 'success', JSON.stringify(log));
  const kept = await sessions('keep1');
  assert.match(kept, /^\d+ idle$/, 'one idle session kept');
  assert.equal(await pg.psql("select count(*) from pg_locks where locktype = 'advisory'"), '0', 'DISCARD ALL let the lock go');

  log = await sync(src.id);
  assert.equal(log.status, 'success', JSON.stringify(log));
  assert.equal(await sessions('keep1'), kept, 'the same backend served the second sync');
  assert.equal(await pg.psql("select count(*) from pg_locks where locktype = 'advisory'"), '0');

  // the session is still read-only when reused: a writing query fails there too
  const { error } = await alice.client.from('data_sources')
    .update({ config: { ...pgConfig(), table: undefined, query: "select nextval('public.s') as n" } }).eq('id', src.id);
  h.noError(error, 'update config');
  log = await sync(src.id);
  assert.equal(log.status, 'failed', JSON.stringify(log));
  assert.match(log.error_message, /read-only transaction/);
  assert.equal(await pg.psql('select is_called from public.s'), 'f', 'the sequence never moved');

  // other credentials: a new session as the new user; the old one is closed
  const { error: e2 } = await alice.client.from('data_sources').update({ config: pgConfig() }).eq('id', src.id);
  h.noError(e2, 'update config');
  log = await sync(src.id);
  assert.equal(log.status, 'success', JSON.stringify(log));
  const r = await h.api(server, alice, 'PUT', `/api/data-sources/${src.id}/credentials`, { user: 'keep2', password: 'keep2-pw' });
  assert.equal(r.status, 200, r.text);
  log = await sync(src.id);
  assert.equal(log.status, 'success', JSON.stringify(log));
  assert.match(await sessions('keep2'), /^\d+ idle$/);
  await waitFor(async () => (await sessions('keep1')) === '', 'the old session to close', 30000);
});

test('redshift (cursor) and custom_database URLs read the same rows', T, async () => {
  const rs = await createSource({ name: 'Redshift-ish', type: 'redshift', config: pgConfig() });
  let log = await sync(rs.id);
  assert.equal(log.status, 'success', JSON.stringify(log));
  assert.equal(log.records_imported, 57);

  const url = await createSource(
    { name: 'URL', type: 'custom_database', config: { schema: 'public', table: 'leads', columns: ['id', 'email'] } },
    { url: `postgres://reader:reader-pw@127.0.0.1:${pg.port}/postgres` },
  );
  log = await sync(url.id);
  assert.equal(log.status, 'success', JSON.stringify(log));
  assert.equal(log.records_imported, 57);
  const ds = await source(url.id);
  assert.equal(await columnTypes(ds.table_name), 'id_col integer, email text');

  const myUrl = await createSource(
    { name: 'MySQL URL', type: 'custom_database', config: { url: `mysql://reader@127.0.0.1:${my.port}/shop`, table: 'customers' } },
    { password: 'reader-pw' },
  );
  log = await sync(myUrl.id);
  assert.equal(log.status, 'success', JSON.stringify(log));
  assert.equal(log.records_imported, 3);
});

test('mysql: types, UTC timestamps, incremental by id', T, async () => {
  const src = await createSource({
    name: 'Shop',
    type: 'mysql',
    config: { host: '127.0.0.1', port: my.port, database: 'shop', table: 'customers' },
    column_config: { duplicate_key_columns: ['id_col'] },
    schedule_config: { incremental_strategy: 'incremental', incremental_column: 'id' },
  });
  let log = await sync(src.id);
  assert.equal(log.status, 'success', JSON.stringify(log));
  assert.equal(log.records_imported, 3);
  let ds = await source(src.id);
  assert.equal(ds.last_sync_value, '3');
  assert.equal(
    await columnTypes(ds.table_name),
    'id_col integer, email text, vip boolean, amount numeric, born date, seen_at timestamp with time zone, note text',
  );
  const { data: rows } = await alice.client.from(ds.table_name).select('*').order('id_col');
  assert.equal(rows[0].vip, true);
  assert.equal(Number(rows[0].amount), 10.5);
  assert.equal(rows[0].born, '1990-05-01');
  assert.equal(new Date(rows[0].seen_at).toISOString(), '2024-03-01T10:00:00.000Z');
  assert.equal(rows[2].vip, null);

  await my.sql(`insert into shop.customers values (4, 'd@example.com', 0, 1, null, '2024-03-02 00:00:00', null);
                update shop.customers set email = 'c2@example.com' where id = 3;`);
  log = await sync(src.id);
  assert.equal(log.status, 'success', JSON.stringify(log));
  assert.equal(log.metadata.progress.rows_read, 2, 'id >= 3: the last one again and the new one');
  ds = await source(src.id);
  assert.equal(ds.last_sync_value, '4');
  assert.equal(await h.sql(server, `select string_agg(email, ',' order by id_col) from public.${ds.table_name}`),
    'a@example.com,b@example.com,c2@example.com,d@example.com');

  // one full sync reads everything again, replaces the table and records the position
  const { error: e2 } = await alice.client.from('data_sources')
    .update({ schedule_config: { incremental_strategy: 'full', incremental_column: 'id' } }).eq('id', src.id);
  h.noError(e2, 'switch to full');
  log = await sync(src.id);
  assert.equal(log.status, 'success', JSON.stringify(log));
  assert.equal(log.metadata.mode, 'replace');
  assert.equal(log.metadata.progress.rows_read, 4);
  assert.equal((await source(src.id)).last_sync_value, '4');

  const wrongTable = await createSource({ name: 'Shop bad', type: 'mysql', config: { host: '127.0.0.1', port: my.port, database: 'shop', table: 'nope' } });
  const t = await h.api(server, alice, 'POST', `/api/data-sources/${wrongTable.id}/test`);
  assert.equal(t.status, 400, t.text);
  assert.match(t.json.message, /doesn't exist/);
});

test('hosts: private addresses are refused unless allowed; socket paths always', T, async () => {
  const sock = await createSource({ name: 'Socket', type: 'postgres', config: { ...pgConfig(), host: '/var/run/postgresql' } });
  const t = await h.api(server, alice, 'POST', `/api/data-sources/${sock.id}/test`);
  assert.equal(t.status, 400, t.text);
  assert.match(t.json.message, /one host name or IP address/);

  // a second process on the same database, with private networks refused (the default)
  const second = await h.startServer({ CAMPAIGND_DATA_DIR: server.dataDir, DATABASE_URL: await h.dbUrl(server) });
  try {
    const src = await createSource({ name: 'Private', type: 'postgres', config: pgConfig() });
    const r = await h.api(second, alice, 'POST', `/api/data-sources/${src.id}/test`);
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.message, /private or local network address \(127\.0\.0\.1\)/);
    const meta = await createSource({ name: 'Metadata', type: 'mysql', config: { host: '169.254.169.254', database: 'x', table: 't' } });
    const r2 = await h.api(second, alice, 'POST', `/api/data-sources/${meta.id}/test`);
    assert.equal(r2.status, 400, r2.text);
    assert.match(r2.json.message, /private or local network address \(169\.254\.169\.254\)/);
  } finally {
    await second.stop({ removeData: false });
  }
});

// Must stay the LAST test of this file: it stops the file's server. A kept
// source session (IMPORT_DB_KEEP_SECONDS) is closed at shutdown with a
// Terminate message: the source's backend ends cleanly, not on a dropped
// socket ("unexpected EOF on client connection", logged at DEBUG1 — turned on
// for this test's role alone; log_disconnections shows that the session ended).
test('postgres: at shutdown the kept source sessions are closed', T, async () => {
  await pg.psql(`create role keep3 login password 'keep3-pw'; grant select on public.leads to keep3;
    alter role keep3 set log_min_messages = 'debug1'`);
  await pg.psql('alter system set log_disconnections = on'); // for backends started from now on
  await pg.psql('select pg_reload_conf()');
  const src = await createSource({ name: 'Kept at shutdown', type: 'postgres', config: pgConfig() },
    { user: 'keep3', password: 'keep3-pw' });
  const log = await sync(src.id);
  assert.equal(log.status, 'success', JSON.stringify(log));
  const pid = await pg.psql("select pid from pg_stat_activity where usename = 'keep3' and state = 'idle'");
  assert.match(pid, /^\d+$/, 'one idle session kept');
  const logFile = `${pg.dir}/log`;
  const from = fs.statSync(logFile).size;
  await server.stop({ removeData: false });
  await waitFor(async () => (await pg.psql("select count(*) from pg_stat_activity where usename = 'keep3'")) === '0',
    'the kept session to end', 30000);
  let tail = '';
  await waitFor(async () => {
    tail = fs.readFileSync(logFile, 'utf8').slice(from);
    return tail.includes(`[${pid}] LOG:  disconnection`);
  }, 'the session end in the source log', 30000);
  const mine = tail.split('\n').filter((l) => l.includes(`[${pid}]`)).join('\n');
  assert.doesNotMatch(mine, /unexpected EOF/, 'a Terminate, not a dropped connection');
});
