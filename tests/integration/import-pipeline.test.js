// The import's two threads (src/importer/copy_pipe.c: parse + clean on the job's
// thread, COPY on a writer thread, a bounded queue of buffers between them) on
// files large enough to pass many buffers: rows reach the table in file order
// (keep_first depends on it), import_tables.row_count follows full and
// incremental syncs without a count (migration 047); an error on the parsing
// side or on the writer's side, a cancel and a kill -9 while rows stream each
// leave the previous data as it was.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './helpers.js';

const T = { timeout: 300000 };
const RATE = 100000; // rows per second, each import
let server;
let alice;

function serverEnv() {
  // IMPORT_MAX_ROWS_PER_SECOND: a load of 400,000 rows lasts 4 s however fast
  // the machine, so the tests below can act while rows stream
  return { JOB_LEASE_SECONDS: '6', JOB_POLL_INTERVAL: '1', LOG_LEVEL: 'info', STORAGE_MAX_FILE_BYTES: '104857600',
    IMPORT_MAX_ROWS_PER_SECOND: String(RATE) };
}

before(async () => {
  server = await h.startServer(serverEnv());
  alice = await h.signUpUser(server);
});

after(async () => {
  if (server) await server.stop();
});

async function waitFor(fn, what, ms = 200000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await h.sleep(100);
  }
}

const api = (method, path) =>
  h.request(`${server.url}${path}`, {
    method,
    headers: { apikey: server.anonKey, Authorization: `Bearer ${alice.session.access_token}` },
  });

/** email,pos rows: row i (from 0) has e-mail u<key(i)>@x.com and pos i. */
function bigCsv(n, key = (i) => i, bad = -1) {
  const parts = ['email,pos\r\n'];
  for (let i = 0; i < n; i++) parts.push(i === bad ? `broken,${i}\r\n` : ` U${key(i)}@X.com ,${i}\r\n`);
  return parts.join('');
}

async function upload(name, content) {
  const path = `${alice.user.id}/${name}`;
  const { error } = await alice.client.storage.from('imports').upload(path, Buffer.from(content), { contentType: 'text/csv', upsert: true });
  h.noError(error, `upload ${name}`);
  return path;
}

const CONFIG = (onInvalid = 'skip') => ({
  columns: [
    { source_name: 'email', target_name: 'email', type: 'text',
      cleaning_rules: [{ type: 'trim' }, { type: 'lowercase' }, { type: 'validate_email', on_invalid: onInvalid }] },
    { source_name: 'pos', target_name: 'pos', type: 'integer' },
  ],
  duplicate_handling: 'keep_first',
  duplicate_key_columns: ['email'],
});

async function createSource(name, path, extra = {}) {
  const { data, error } = await alice.client
    .from('data_sources')
    .insert({ name, type: 'csv_upload', config: { storage_path: path }, column_config: CONFIG(), ...extra })
    .select()
    .single();
  h.noError(error, 'create data source');
  return data;
}

async function syncLog(id) {
  const out = await h.sql(server, `select to_jsonb(s) from public.sync_logs s where id = ${h.lit(id)}`);
  return out ? JSON.parse(out) : null;
}

async function startSync(sourceId) {
  const r = await api('POST', `/api/data-sources/${sourceId}/sync`);
  assert.equal(r.status, 202, r.text);
  return r.json.sync_log_id;
}

const finished = (logId) =>
  waitFor(async () => {
    const l = await syncLog(logId);
    return l && l.status !== 'running' ? l : null;
  }, `sync ${logId} to finish`);

/** Waits until the run streams rows (phase loading, some rows read). */
const loading = (logId) =>
  waitFor(async () => {
    const l = await syncLog(logId);
    if (l && l.status !== 'running') throw new Error(`the run ended before the test could act: ${JSON.stringify(l)}`);
    return l?.metadata?.phase === 'loading' && l.metadata.progress?.rows_read > 0;
  }, 'rows to stream', 200000);

async function tableOf(sourceId) {
  return h.sql(server, `select table_name from public.data_sources where id = ${h.lit(sourceId)}`);
}

async function counts(table) {
  const [rows, registry] = (await h.sql(server,
    `select (select count(*) from public.${table}) || ',' || (select row_count from public.import_tables where table_name = ${h.lit(table)})`)).split(',');
  return { rows: Number(rows), registry: Number(registry) };
}

test('a large file streams through the writer thread in file order; row_count follows full and incremental syncs', T, async () => {
  // 200,000 rows; the last 50,000 repeat e-mails of the first rows (other case)
  const path = await upload('big.csv', bigCsv(200000, (i) => i % 150000));
  const src = await createSource('Big', path, { schedule_config: { incremental_strategy: 'incremental' } });
  const log = await finished(await startSync(src.id));
  assert.equal(log.status, 'success', JSON.stringify(log));
  assert.equal(log.records_imported, 150000);
  assert.equal(log.metadata.skipped_by_reason.duplicate, 50000);
  // IMPORT_MAX_ROWS_PER_SECOND paced the load: 200,000 rows read at RATE rows/s
  const secs = Number(await h.sql(server,
    `select extract(epoch from completed_at - started_at) from public.sync_logs where id = ${h.lit(log.id)}`));
  assert.ok(secs >= (200000 - 1024) / RATE, `${secs} s for 200,000 rows at ${RATE} rows/s`);
  const table = await tableOf(src.id);
  // keep_first keeps the first row of each e-mail in file order: only if the
  // buffers reached PostgreSQL in the order the parser filled them
  assert.equal(Number(await h.sql(server, `select count(*) from public.${table} where pos >= 150000`)), 0);
  assert.equal(Number(await h.sql(server, `select count(distinct pos) from public.${table}`)), 150000);
  assert.deepEqual(await counts(table), { rows: 150000, registry: 150000 });

  // incremental (upsert by e-mail): 1,000 rows, 500 known and 500 new
  await upload('big.csv', bigCsv(1000, (i) => (i < 500 ? i : 1000000 + i)));
  const inc = await finished(await startSync(src.id));
  assert.equal(inc.status, 'success', JSON.stringify(inc));
  assert.equal(inc.metadata.mode, 'upsert');
  assert.equal(inc.metadata.rows_in_table, 150500);
  assert.deepEqual(await counts(table), { rows: 150500, registry: 150500 });
  const audit = JSON.parse(await h.sql(server,
    `select metadata from public.audit_logs where action = 'import' and metadata->>'sync_log_id' = ${h.lit(inc.id)}`));
  // the 500 known rows come again unchanged: not rewritten (migration 065)
  assert.deepEqual([audit.rows_deleted, audit.rows_updated, audit.rows_inserted, audit.rows_unchanged], [0, 0, 500, 500],
    'the upsert inserted the 500 new rows and left the 500 known ones alone');
  assert.deepEqual([inc.metadata.updated, inc.metadata.inserted, inc.metadata.unchanged], [0, 500, 500]);

  // a row deleted through /rest/v1 is counted by the table's trigger
  const { error } = await alice.client.from(table).delete().eq('pos', 0).eq('email', 'u0@x.com');
  h.noError(error, 'delete through /rest/v1');
  assert.deepEqual(await counts(table), { rows: 150499, registry: 150499 });
});

test('an error late in a large file (parsing thread) fails the sync with its line; the previous data stays', T, async () => {
  const path = await upload('late.csv', bigCsv(1000));
  const src = await createSource('Late error', path);
  assert.equal((await finished(await startSync(src.id))).status, 'success');
  const table = await tableOf(src.id);

  await alice.client.from('data_sources').update({ column_config: CONFIG('fail') }).eq('id', src.id);
  await upload('late.csv', bigCsv(150000, (i) => i, 140000)); // row 140,000 is on line 140,002
  const log = await finished(await startSync(src.id));
  assert.equal(log.status, 'failed');
  assert.match(log.error_message, /line 140002/);
  assert.deepEqual(await counts(table), { rows: 1000, registry: 1000 }, 'previous data intact');
});

test('the writer thread losing its connection fails the sync; the previous data stays', T, async () => {
  const path = await upload('lost.csv', bigCsv(1000));
  const src = await createSource('Lost', path, { schedule_config: { retry_on_failure: false } });
  assert.equal((await finished(await startSync(src.id))).status, 'success');
  const table = await tableOf(src.id);

  await upload('lost.csv', bigCsv(600000));
  const logId = await startSync(src.id);
  await loading(logId);
  // the backend the writer thread streams to
  const killed = await h.sql(server,
    `select count(pg_terminate_backend(pid)) from pg_stat_activity where query like 'copy import_staging.%'`);
  assert.equal(Number(killed), 1, 'the COPY was running');
  const log = await finished(logId);
  assert.equal(log.status, 'failed', JSON.stringify(log));
  assert.match(log.error_message, /connection|terminat/);
  assert.deepEqual(await counts(table), { rows: 1000, registry: 1000 }, 'previous data intact');
  assert.equal(Number(await h.sql(server,
    `select count(*) from pg_tables where schemaname = 'import_staging' and tablename like 'stg\\_%'`)), 0,
  'no staging table of a run left');
  // the lasting staging tables of incremental syncs (migration 050) hold no rows between runs
  assert.equal(Number(await h.sql(server, `select coalesce(sum((xpath('/row/c/text()', query_to_xml(
      format('select count(*) as c from import_staging.%I', tablename), false, true, '')))[1]::text::int), 0)
    from pg_tables where schemaname = 'import_staging' and tablename like 'dlt\\_%'`)), 0,
  'the lasting staging tables are empty');
});

test('cancel while rows stream stops the sync and keeps the destination', T, async () => {
  const path = await upload('cancel.csv', bigCsv(1000));
  const src = await createSource('Cancelled', path);
  assert.equal((await finished(await startSync(src.id))).status, 'success');
  const table = await tableOf(src.id);

  await upload('cancel.csv', bigCsv(600000));
  const logId = await startSync(src.id);
  await loading(logId);
  const c = await api('POST', `/api/sync-logs/${logId}/cancel`);
  assert.equal(c.status, 202, c.text);
  const log = await finished(logId);
  assert.equal(log.status, 'cancelled');
  assert.deepEqual(await counts(table), { rows: 1000, registry: 1000 }, 'destination as before');
});

test('kill -9 while rows stream loses nothing: the retry imports the whole file', T, async () => {
  const path = await upload('killed.csv', bigCsv(1000));
  const src = await createSource('Killed', path);
  assert.equal((await finished(await startSync(src.id))).status, 'success');
  const table = await tableOf(src.id);

  await upload('killed.csv', bigCsv(400000));
  const logId = await startSync(src.id);
  await loading(logId);
  server.process.kill('SIGKILL');
  await new Promise((r) => (server.exited() ? r() : server.process.once('exit', r)));
  // while no server runs, the old rows are all there
  const dataDir = server.dataDir;
  server = await h.startServer({ ...serverEnv(), CAMPAIGND_DATA_DIR: dataDir });
  Object.assign(alice, await h.signIn(server, alice.email, alice.password));
  const dead = await finished(logId);
  assert.equal(dead.status, 'failed');
  assert.match(dead.error_message, /interrupted/);
  const retry = await waitFor(async () => {
    const out = await h.sql(server, `select to_jsonb(s) from public.sync_logs s where data_source_id = ${h.lit(src.id)} and metadata->>'retry_of' = ${h.lit(logId)} and status <> 'running'`);
    return out ? JSON.parse(out) : null;
  }, 'the retry to finish');
  assert.equal(retry.status, 'success', JSON.stringify(retry));
  assert.equal(retry.records_imported, 400000);
  assert.deepEqual(await counts(table), { rows: 400000, registry: 400000 });
});
