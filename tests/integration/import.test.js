// File imports end to end (issue 10) with the real supabase-js client: upload to
// the `imports` bucket, create the data source through /rest/v1, test it, sync it
// (a job), read the rows through /rest/v1, watch progress through realtime, cancel,
// schedule; csv_url and google_sheets from a local HTTP server (redirects, the
// private-address guard), hostile files, two server processes on one queue, and
// kill -9 of a server mid-sync.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import * as h from './helpers.js';
import { zipBomb } from './fixtures/import-files.js';

// the syncs of these tests wait up to 2 minutes on a busy machine
const waitFor = (fn, what, ms = 120000) => h.eventually(fn, what, ms, 100);

const T = { timeout: 240000 };
let server; // IMPORT_ALLOW_PRIVATE_NETWORKS=true, Sheets at the local server
let files; // the local HTTP server
let filesUrl;
let alice; // owner
let bob; // another user
const routes = new Map(); // path -> handler(req, res)
let gate = null; // a promise the slow route waits for

// Short leases and scheduler passes, so that recovery and schedules are quick.
function serverEnv() {
  return {
    IMPORT_ALLOW_PRIVATE_NETWORKS: 'true',
    GOOGLE_SHEETS_BASE_URL: filesUrl,
    JOB_LEASE_SECONDS: '6',
    JOB_POLL_INTERVAL: '1',
    LOG_LEVEL: 'info',
  };
}

function csv(rows) {
  return rows.map((r) => r.join(',')).join('\r\n') + '\r\n';
}

before(async () => {
  files = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    const fn = routes.get(u.pathname);
    if (!fn) {
      res.writeHead(404);
      res.end('no');
      return;
    }
    fn(req, res, u);
  });
  await new Promise((r) => files.listen(0, '127.0.0.1', r));
  filesUrl = `http://127.0.0.1:${files.address().port}`;
  server = await h.startServer(serverEnv());
  alice = await h.signUpUser(server);
  bob = await h.signUpUser(server);
  alice.client.realtime.setAuth(alice.session.access_token);
});

after(async () => {
  if (server) await server.stop();
  if (files) {
    files.closeAllConnections?.();
    await new Promise((r) => files.close(r));
  }
});

/** After a restart on a new port, the users' clients follow the server. */
async function reconnectUsers() {
  for (const u of [alice, bob]) Object.assign(u, await h.signIn(server, u.email, u.password));
  alice.client.realtime.setAuth(alice.session.access_token);
}

async function upload(user, name, content, contentType = 'text/csv') {
  const path = `${user.user.id}/${name}`;
  const { error } = await user.client.storage.from('imports').upload(path, Buffer.from(content), { contentType, upsert: true });
  h.noError(error, `upload ${name}`);
  return path;
}

async function createSource(user, fields) {
  const { data, error } = await user.client
    .from('data_sources')
    .insert({ name: 'Trade show', type: 'csv_upload', ...fields })
    .select()
    .single();
  h.noError(error, 'create data source');
  return data;
}

async function syncLog(id) {
  const out = await h.sql(server, `select to_jsonb(s) from public.sync_logs s where id = ${h.lit(id)}`);
  return out ? JSON.parse(out) : null;
}

async function startSync(user, sourceId, srv = server) {
  const r = await h.api(srv, user, 'POST', `/api/data-sources/${sourceId}/sync`);
  assert.equal(r.status, 202, r.text);
  assert.match(r.json.sync_log_id, /^[0-9a-f-]{36}$/);
  return r.json.sync_log_id;
}

async function finished(user, logId) {
  return waitFor(async () => {
    const { data, error } = await user.client.from('sync_logs').select('*').eq('id', logId).single();
    h.noError(error, 'read sync log');
    return data.status !== 'running' ? data : null;
  }, `sync ${logId} to finish`);
}

const CONTACTS = csv([
  ['First Name', 'Email', 'Status', 'Score'],
  ['  ada ', ' Ada@Example.COM ', 'Active', '10'],
  ['bob', 'not-an-email', 'Active', '7'],
  ['Cy', 'cy@example.com', 'Inactive', '3'],
  ['Ada again', 'ada@example.com', 'Active', '11'],
  ['dee', 'dee@example.com', 'Active', '5'],
]);

const COLUMN_CONFIG = {
  columns: [
    { source_name: 'First Name', target_name: 'first_name', type: 'text', cleaning_rules: [{ type: 'trim' }, { type: 'title_case' }] },
    {
      source_name: 'Email',
      target_name: 'email',
      type: 'text',
      cleaning_rules: [{ type: 'trim' }, { type: 'lowercase' }, { type: 'validate_email', on_invalid: 'skip' }],
    },
    { source_name: 'Status', target_name: 'status', type: 'text', included: false },
    { source_name: 'Score', target_name: 'score', type: 'integer' },
  ],
  row_filters: [{ column: 'Status', operator: 'equals', value: 'Active', action: 'include' }],
  duplicate_handling: 'keep_first',
  duplicate_key_columns: ['email'],
};

test('upload → data source → test → sync → rows through /rest/v1, progress through realtime', T, async () => {
  const path = await upload(alice, 'trade-show.csv', CONTACTS);
  const src = await createSource(alice, { config: { storage_path: path }, column_config: COLUMN_CONFIG });

  // test: the head, cleaned, with proposed names and inferred types
  const t = await h.api(server, alice, 'POST', `/api/data-sources/${src.id}/test`);
  assert.equal(t.status, 200, t.text);
  assert.deepEqual(
    t.json.columns.map((c) => [c.source_name, c.target_name, c.type]),
    [
      ['First Name', 'first_name', 'text'],
      ['Email', 'email', 'text'],
      ['Score', 'score', 'integer'],
    ],
  );
  assert.equal(t.json.columns[1].sample, ' Ada@Example.COM ');
  assert.deepEqual(t.json.rows[0], { first_name: 'Ada', email: 'ada@example.com', score: 10 });
  assert.ok(!t.json.rows.some((r) => r.email === 'cy@example.com'), 'the filter applies to the preview');
  assert.ok(t.json.warnings.some((w) => /e-mail/i.test(w)), `a skipped row is a warning: ${JSON.stringify(t.json.warnings)}`);
  const preview = await syncLog(t.json.sync_log_id);
  assert.deepEqual(preview.preview_data.rows, t.json.rows, 'the preview is stored in sync_logs');

  // realtime: the dashboard watches sync_logs and data_sources
  const events = [];
  const ch = alice.client
    .channel('imports')
    .on('postgres_changes', { event: '*', schema: 'public', table: 'sync_logs' }, (p) => events.push(p))
    .on('postgres_changes', { event: 'UPDATE', schema: 'public', table: 'data_sources' }, (p) => events.push(p));
  await new Promise((resolve, reject) =>
    ch.subscribe((s, e) => (s === 'SUBSCRIBED' ? resolve() : s !== 'CLOSED' && reject(e || new Error(s)))),
  );

  const logId = await startSync(alice, src.id);
  const log = await finished(alice, logId);
  assert.equal(log.status, 'success', JSON.stringify(log));
  assert.equal(log.records_imported, 2); // ada (first), dee
  assert.equal(log.records_skipped, 3); // bob: invalid e-mail, cy: filtered, ada again: duplicate
  assert.equal(log.metadata.skipped_by_reason.invalid_email, 1);
  assert.equal(log.metadata.skipped_by_reason.filtered, 1);
  assert.equal(log.metadata.skipped_by_reason.duplicate, 1);
  assert.ok(log.metadata.errors.some((e) => e.line === 3 && e.reason === 'invalid_email'), JSON.stringify(log.metadata.errors));
  assert.equal(log.metadata.progress.rows_read, 5);

  const { data: ds } = await alice.client.from('data_sources').select('*').eq('id', src.id).single();
  assert.equal(ds.sync_status, 'success');
  assert.match(ds.table_name, /^import_trade_show_[0-9a-f]{8}$/);
  assert.ok(ds.last_sync_at);

  const { data: rows, error } = await alice.client.from(ds.table_name).select('first_name,email,score').order('email');
  h.noError(error, 'read the import table');
  assert.deepEqual(rows, [
    { first_name: 'Ada', email: 'ada@example.com', score: 10 },
    { first_name: 'Dee', email: 'dee@example.com', score: 5 },
  ]);
  // the table is in the OpenAPI document (the service role's)
  const oa = await h.request(`${server.url}/rest/v1/`, { headers: { apikey: server.serviceKey, Authorization: `Bearer ${server.serviceKey}` } });
  assert.ok(JSON.stringify(oa.json).includes(ds.table_name), 'OpenAPI lists the import table');

  // bob sees none of it, and cannot run alice's source
  const { data: bobRows } = await bob.client.from(ds.table_name).select('*');
  assert.deepEqual(bobRows ?? [], []);
  assert.equal((await h.api(server, bob, 'POST', `/api/data-sources/${src.id}/sync`)).status, 404);
  assert.equal((await h.api(server, bob, 'POST', `/api/data-sources/${src.id}/test`)).status, 404);

  await waitFor(() => events.some((e) => e.table === 'sync_logs' && e.new.id === logId && e.new.status === 'success'), 'realtime success');
  assert.ok(events.some((e) => e.table === 'data_sources' && e.new.sync_status === 'syncing'), 'realtime saw syncing');
  assert.ok(events.some((e) => e.table === 'sync_logs' && e.new.id === logId && e.new.metadata?.progress), 'realtime saw progress');
  await alice.client.removeAllChannels();

  // one audit row for the sync, none per imported row
  const audit = await h.sql(server, `select count(*) from public.audit_logs where resource_type = ${h.lit(ds.table_name)}`);
  assert.equal(Number(audit), 1);

  // a second full sync of a changed file replaces the rows
  await upload(alice, 'trade-show.csv', csv([['First Name', 'Email', 'Status', 'Score'], ['eve', 'eve@example.com', 'Active', '1']]));
  const log2 = await finished(alice, await startSync(alice, src.id));
  assert.equal(log2.status, 'success', JSON.stringify(log2));
  const { data: rows2 } = await alice.client.from(ds.table_name).select('email');
  assert.deepEqual(rows2, [{ email: 'eve@example.com' }]);
  // still owner-only after the swap
  const { data: bobRows2 } = await bob.client.from(ds.table_name).select('*');
  assert.deepEqual(bobRows2 ?? [], []);
});

test('bad input ends the sync as failed with a clear message and keeps the previous data', T, async () => {
  const path = await upload(alice, 'good.csv', csv([['Email'], ['a@example.com'], ['b@example.com']]));
  const src = await createSource(alice, { name: 'Keep me', config: { storage_path: path } });
  const ok = await finished(alice, await startSync(alice, src.id));
  assert.equal(ok.status, 'success', JSON.stringify(ok));
  const { data: ds } = await alice.client.from('data_sources').select('table_name').eq('id', src.id).single();
  const count = async () => (await alice.client.from(ds.table_name).select('email')).data.length;
  assert.equal(await count(), 2);

  // a mapping naming a column the file does not have
  await alice.client.from('data_sources').update({ column_config: { columns: [{ source_name: 'E-mail', target_name: 'email' }] } }).eq('id', src.id);
  let log = await finished(alice, await startSync(alice, src.id));
  assert.equal(log.status, 'failed');
  assert.match(log.error_message, /E-mail/);
  assert.equal(await count(), 2, 'previous data intact');
  const { data: st } = await alice.client.from('data_sources').select('sync_status').eq('id', src.id).single();
  assert.equal(st.sync_status, 'failed');

  // a "fail" rule that trips
  await alice.client
    .from('data_sources')
    .update({ column_config: { columns: [{ source_name: 'Email', target_name: 'email', cleaning_rules: [{ type: 'validate_email', on_invalid: 'fail' }] }] } })
    .eq('id', src.id);
  await upload(alice, 'good.csv', csv([['Email'], ['a@example.com'], ['broken']]));
  log = await finished(alice, await startSync(alice, src.id));
  assert.equal(log.status, 'failed');
  assert.match(log.error_message, /line 3/);
  assert.equal(await count(), 2, 'previous data intact');

  // binary garbage
  await upload(alice, 'good.csv', Buffer.from([0, 1, 2, 0xff, 0xfe, 0, 0, 7, 8, 0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0, 0, 1]), 'application/octet-stream');
  await alice.client.from('data_sources').update({ column_config: {} }).eq('id', src.id);
  log = await finished(alice, await startSync(alice, src.id));
  assert.equal(log.status, 'failed');
  assert.ok(log.error_message.length > 10);
  assert.equal(await count(), 2, 'previous data intact');

  // a 10 MB single field
  await upload(alice, 'good.csv', 'Email\r\n"' + 'x'.repeat(10 * 1024 * 1024) + '"\r\n');
  log = await finished(alice, await startSync(alice, src.id));
  assert.equal(log.status, 'failed');
  assert.match(log.error_message, /line 2/);
  assert.equal(await count(), 2, 'previous data intact');

  // an xlsx zip bomb: a sheet that inflates far past its compressed size
  await upload(alice, 'good.csv', zipBomb(), 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet');
  log = await finished(alice, await startSync(alice, src.id));
  assert.equal(log.status, 'failed');
  assert.equal(await count(), 2, 'previous data intact');

  // a file that is not there
  await alice.client.from('data_sources').update({ config: { storage_path: `${alice.user.id}/missing.csv` } }).eq('id', src.id);
  const t = await h.api(server, alice, 'POST', `/api/data-sources/${src.id}/test`);
  assert.equal(t.status, 400);
  assert.match(t.json.message, /not in the "imports" bucket/);
  // nor may a path point at another user's folder
  const bobPath = await upload(bob, 'secret.csv', csv([['Email'], ['bob@example.com']]));
  await alice.client.from('data_sources').update({ config: { storage_path: bobPath } }).eq('id', src.id);
  log = await finished(alice, await startSync(alice, src.id));
  assert.equal(log.status, 'failed');
  assert.match(log.error_message, /not in the "imports" bucket/);
  assert.equal(await count(), 2, 'previous data intact');
});

test('csv_url and google_sheets from a local server, with redirects', T, async () => {
  routes.set('/list.csv', (req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/csv' });
    res.end(csv([['name', 'email'], ['Zed', 'zed@example.com'], ['Yan', 'yan@example.com']]));
  });
  for (let i = 1; i <= 4; i++)
    routes.set(`/r${i}`, (req, res) => {
      res.writeHead(302, { Location: i === 1 ? '/list.csv' : `/r${i - 1}` });
      res.end();
    });
  routes.set('/spreadsheets/d/SHEET_id-1/export', (req, res, u) => {
    assert.equal(u.searchParams.get('format'), 'csv');
    res.writeHead(200, { 'Content-Type': 'text/csv' });
    res.end(csv([['Sheet Col'], ['v1'], ['v2'], ['v3']]));
  });

  const viaUrl = await createSource(alice, { name: 'From URL', type: 'csv_url', config: { url: `${filesUrl}/r3` } });
  let log = await finished(alice, await startSync(alice, viaUrl.id));
  assert.equal(log.status, 'success', JSON.stringify(log));
  assert.equal(log.records_imported, 2);

  const tooMany = await createSource(alice, { name: 'Redirects', type: 'csv_url', config: { url: `${filesUrl}/r4` } });
  log = await finished(alice, await startSync(alice, tooMany.id));
  assert.equal(log.status, 'failed');
  assert.match(log.error_message, /redirects more than 3 times/);

  const missing = await createSource(alice, { name: 'Missing', type: 'csv_url', config: { url: `${filesUrl}/nope.csv` } });
  log = await finished(alice, await startSync(alice, missing.id));
  assert.equal(log.status, 'failed');
  assert.match(log.error_message, /HTTP 404/);

  const sheet = await createSource(alice, {
    name: 'Sheet',
    type: 'google_sheets',
    config: { url: 'https://docs.google.com/spreadsheets/d/SHEET_id-1/edit#gid=0' },
  });
  const t = await h.api(server, alice, 'POST', `/api/data-sources/${sheet.id}/test`);
  assert.equal(t.status, 200, t.text);
  assert.deepEqual(t.json.rows.map((r) => r.sheet_col), ['v1', 'v2', 'v3']);
  log = await finished(alice, await startSync(alice, sheet.id));
  assert.equal(log.status, 'success', JSON.stringify(log));
  assert.equal(log.records_imported, 3);
});

test('cancel stops a running sync within a second and keeps the destination as it was', T, async () => {
  let release;
  gate = new Promise((r) => (release = r));
  routes.set('/slow.csv', async (req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/csv' });
    res.write('email\r\n');
    for (let i = 0; i < 1000; i++) res.write(`u${i}@example.com\r\n`);
    await gate; // hangs until the test is over
    res.end();
  });
  const src = await createSource(alice, { name: 'Slow', type: 'csv_url', config: { url: `${filesUrl}/slow.csv` } });
  const logId = await startSync(alice, src.id);
  await waitFor(async () => (await syncLog(logId))?.metadata?.phase === 'downloading', 'download to start');
  const c = await h.api(server, alice, 'POST', `/api/sync-logs/${logId}/cancel`);
  assert.equal(c.status, 202, c.text);
  assert.ok(c.json.cancel_requested_at);
  const log = await finished(alice, logId);
  assert.equal(log.status, 'cancelled');
  const { data: ds } = await alice.client.from('data_sources').select('table_name,sync_status').eq('id', src.id).single();
  assert.equal(ds.table_name, null, 'nothing was created');
  assert.equal(ds.sync_status, 'idle');
  // cancelling again: no longer running
  assert.equal((await h.api(server, alice, 'POST', `/api/sync-logs/${logId}/cancel`)).status, 409);
  // bob cannot cancel alice's syncs
  assert.equal((await h.api(server, bob, 'POST', `/api/sync-logs/${logId}/cancel`)).status, 404);
  release();
});

test('credentials are stored encrypted and never returned', T, async () => {
  const src = await createSource(alice, { name: 'Creds', type: 'csv_url', config: { url: `${filesUrl}/list.csv` } });
  const r = await h.api(server, alice, 'PUT', `/api/data-sources/${src.id}/credentials`, { user: 'marketing', password: 'a very secret password' });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.credentials, { user: '****', password: '****word' });
  assert.ok(!r.text.includes('secret password'));
  const { data } = await alice.client.from('data_sources').select('credentials').eq('id', src.id).single();
  assert.deepEqual(data.credentials, { user: '****', password: '****word' });
  const raw = await h.sql(server, `select credentials_encrypted::text from public.data_source_credentials where data_source_id = ${h.lit(src.id)}`);
  assert.ok(raw.length > 0 && !raw.includes('secret'), 'encrypted at rest');
  assert.equal((await h.api(server, bob, 'PUT', `/api/data-sources/${src.id}/credentials`, { user: 'x' })).status, 403);
  assert.equal((await h.api(server, alice, 'PUT', `/api/data-sources/${src.id}/credentials`, { user: 5 })).status, 400);
  assert.equal((await h.api(server, alice, 'PUT', `/api/data-sources/${src.id}/credentials`, '[1]')).status, 400);
});

test('the scheduler runs a due source', T, async () => {
  const path = await upload(alice, 'scheduled.csv', csv([['email'], ['s@example.com']]));
  const src = await createSource(alice, {
    name: 'Scheduled',
    config: { storage_path: path },
    sync_schedule: 'hourly',
    schedule_config: { frequency: 'hourly', timezone: 'UTC' },
  });
  await h.sql(server, `update public.data_sources set next_sync_at = now() - interval '1 minute' where id = ${h.lit(src.id)}`);
  const log = await waitFor(async () => {
    const { data } = await alice.client.from('sync_logs').select('*').eq('data_source_id', src.id).neq('status', 'running');
    return data?.find((l) => l.metadata?.trigger === 'schedule');
  }, 'the scheduled sync');
  assert.equal(log.status, 'success', JSON.stringify(log));
  assert.equal(log.records_imported, 1);
});

test('a forged sync job whose ids PostgreSQL would read but the worker refuses leaves no run behind', T, async () => {
  // import_begin_run runs in the claim's transaction; ::uuid reads "{…}" and
  // hyphen-less spellings the worker refuses. Begun and then refused, the run
  // would stay "running" and block every later sync of the source.
  const path = await upload(alice, 'forged.csv', csv([['email'], ['f@example.com']]));
  const src = await createSource(alice, { name: 'Forged', config: { storage_path: path } });
  const job = await h.sql(server, `select jobs.enqueue('import.sync', jsonb_build_object(
    'data_source_id', '{' || ${h.lit(src.id)} || '}', 'trigger', 'manual'), max_attempts => 1)`);
  const status = await waitFor(async () => {
    const s = await h.sql(server, `select status from jobs.jobs where id = ${job}`);
    return ['done', 'failed'].includes(s) && s;
  }, 'the forged job ending');
  assert.equal(status, 'failed', 'the worker refused the payload');
  assert.equal(await h.sql(server, `select count(*) from public.sync_logs where data_source_id = ${h.lit(src.id)}`), '0', 'no run begun');
  assert.equal(await h.sql(server, `select sync_status from public.data_sources where id = ${h.lit(src.id)}`) === 'syncing', false);
  // and a real sync of the source still runs
  const log = await finished(alice, await startSync(alice, src.id));
  assert.equal(log.status, 'success', JSON.stringify(log));
});

test('contacts destination upserts by e-mail and never implies consent', T, async () => {
  const path = await upload(alice, 'contacts.csv', csv([['Email', 'Phone', 'First'], ['New@Example.com', '+14155550100', 'Nia'], ['bad', '', 'X'], ['new@example.com', '', 'Nia B']]));
  const src = await createSource(alice, {
    name: 'Contacts',
    config: { storage_path: path, destination: 'contacts' },
    column_config: {
      columns: [
        { source_name: 'Email', target_name: 'email', cleaning_rules: [{ type: 'trim' }, { type: 'lowercase' }] },
        { source_name: 'Phone', target_name: 'phone' },
        { source_name: 'First', target_name: 'first_name' },
      ],
    },
  });
  const log = await finished(alice, await startSync(alice, src.id));
  assert.equal(log.status, 'success', JSON.stringify(log));
  const { data: contacts } = await alice.client.from('contacts').select('email,phone,first_name,source,sms_consent_id,email_subscription_id').eq('email', 'new@example.com');
  assert.equal(contacts.length, 1);
  assert.equal(contacts[0].source, 'import');
  assert.equal(contacts[0].phone, '+14155550100');
  const consent = await h.sql(server, `select count(*) from public.sms_consent where phone_number = '+14155550100'`);
  assert.equal(Number(consent), 0, 'no consent was created');
});

test('two server processes share one queue; kill -9 mid-sync is recovered', { timeout: 300000 }, async () => {
  // a second process on the same database, with private networks refused
  // (DATABASE_URL: the second process uses the first one's embedded PostgreSQL
  // without managing it; the same data directory: the same keys and files)
  const second = await h.startServer({
    CAMPAIGND_DATA_DIR: server.dataDir,
    DATABASE_URL: await h.dbUrl(server),
    JOB_LEASE_SECONDS: '6',
    JOB_POLL_INTERVAL: '1',
    LOG_LEVEL: 'info',
  });
  try {
    // the private-address guard (the test runs in the request, on the second server)
    const priv = await createSource(alice, { name: 'Private', type: 'csv_url', config: { url: `${filesUrl}/list.csv` } });
    const t = await h.api(second, alice, 'POST', `/api/data-sources/${priv.id}/test`);
    assert.equal(t.status, 400, t.text);
    assert.match(t.json.message, /private or local network address \(127\.0\.0\.1\)/);

    // several syncs, spread over both processes, each run exactly once
    const ids = [];
    for (let i = 0; i < 6; i++) {
      const path = await upload(alice, `shared-${i}.csv`, csv([['email'], [`s${i}@example.com`], [`t${i}@example.com`]]));
      const src = await createSource(alice, { name: `Shared ${i}`, config: { storage_path: path } });
      ids.push(await startSync(alice, src.id, i % 2 ? second : server));
    }
    for (const id of ids) {
      const log = await finished(alice, id);
      assert.equal(log.status, 'success', JSON.stringify(log));
      const audit = await h.sql(server, `select count(*) from public.audit_logs where action = 'import' and metadata->>'sync_log_id' = ${h.lit(id)}`);
      assert.equal(Number(audit), 1, 'ran exactly once');
    }
  } finally {
    await second.stop({ removeData: false }); // the data directory is the first server's
  }

  // kill -9 of the server while a sync is downloading; after a restart the job
  // is retried: the dead run is closed as "interrupted", the retry succeeds
  let release;
  const hang = new Promise((r) => (release = r));
  let hanging = true;
  routes.set('/kill.csv', async (req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/csv' });
    res.write('email\r\nk1@example.com\r\n');
    if (hanging) await hang;
    res.end('k2@example.com\r\n');
  });
  const src = await createSource(alice, { name: 'Killed', type: 'csv_url', config: { url: `${filesUrl}/kill.csv` } });
  const logId = await startSync(alice, src.id);
  await waitFor(async () => (await syncLog(logId))?.metadata?.phase === 'downloading', 'download to start');
  server.process.kill('SIGKILL');
  await new Promise((r) => (server.exited() ? r() : server.process.once('exit', r)));
  hanging = false;
  release();
  files.closeAllConnections?.();
  const dataDir = server.dataDir;
  server = await h.startServer({ ...serverEnv(), CAMPAIGND_DATA_DIR: dataDir });
  await reconnectUsers();
  const dead = await waitFor(async () => {
    const l = await syncLog(logId);
    return l.status !== 'running' ? l : null;
  }, 'the dead run to be closed', 180000);
  assert.equal(dead.status, 'failed');
  assert.match(dead.error_message, /interrupted/);
  const retry = await waitFor(async () => {
    const out = await h.sql(server, `select to_jsonb(s) from public.sync_logs s where data_source_id = ${h.lit(src.id)} and metadata->>'retry_of' = ${h.lit(logId)} and status <> 'running'`);
    return out ? JSON.parse(out) : null;
  }, 'the retry to finish', 180000);
  assert.equal(retry.status, 'success', JSON.stringify(retry));
  assert.equal(retry.records_imported, 2);
});

test('a clean stop mid-sync puts the run back in the queue; the restart finishes the same run', T, async () => {
  let release;
  const hang = new Promise((r) => (release = r));
  let hanging = true;
  routes.set('/stop.csv', async (req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/csv' });
    res.write('email\r\nq1@example.com\r\n');
    if (hanging) await hang;
    res.end('q2@example.com\r\n');
  });
  const src = await createSource(alice, { name: 'Stopped', type: 'csv_url', config: { url: `${filesUrl}/stop.csv` } });
  const logId = await startSync(alice, src.id);
  await waitFor(async () => (await syncLog(logId))?.metadata?.phase === 'downloading', 'download to start');
  const dataDir = server.dataDir;
  await server.stop({ removeData: false }); // SIGTERM: a clean stop, asserted clean
  hanging = false;
  release();
  files.closeAllConnections?.();
  server = await h.startServer({ ...serverEnv(), CAMPAIGND_DATA_DIR: dataDir });
  await reconnectUsers();
  const done = await waitFor(async () => {
    const l = await syncLog(logId);
    return l && l.status !== 'running' ? l : null;
  }, 'the same run to finish', 180000);
  assert.equal(done.status, 'success', JSON.stringify(done));
  assert.equal(done.records_imported, 2);
  const others = await h.sql(server, `select count(*) from public.sync_logs where data_source_id = ${h.lit(src.id)}`);
  assert.equal(Number(others), 1, 'no second row: the stop did not fail the run');
});

test('mapped consent columns with evidence record consent and withdrawals; an opt-out stands', T, async () => {
  // an earlier opt-out of one address, newer than the file's consent date
  await h.sql(server, `insert into public.email_subscriptions (email, subscribed, unsubscribed_at)
                       values ('late@example.com', false, '2026-02-01T00:00:00Z')`);
  const rows = [
    ['Email', 'Phone', 'News', 'NewsDate', 'Sms'],
    ['yes@example.com', '+14155550111', 'Yes', '2026-01-15', 'opt-in'],
    ['no@example.com', '+14155550112', 'no', '2026-01-15', 'STOP?'],
    ['late@example.com', '', 'y', '2026-01-15', ''],
    ['future@example.com', '', 'yes', '2999-01-01', ''],
    ['blank@example.com', '+14155550113', '', '', 'n'],
  ];
  const path = await upload(alice, 'consent.csv', csv(rows));
  const columns = [
    { source_name: 'Email', target_name: 'email' },
    { source_name: 'Phone', target_name: 'phone' },
    { source_name: 'News', target_name: 'newsletter' },
    { source_name: 'NewsDate', target_name: 'newsletter_date' },
    { source_name: 'Sms', target_name: 'sms_ok' },
  ];
  const consent = {
    email: { column: 'newsletter', date_column: 'newsletter_date', evidence: 'Spring webinar sign-up form' },
    sms: { column: 'sms_ok', evidence: 'in-store opt-in cards' },
  };
  // a consent entry naming a column the import does not have fails the sync, naming it
  const bad = await createSource(alice, {
    name: 'Consent bad',
    config: { storage_path: path, destination: 'contacts', consent: { email: { column: 'nope', evidence: 'x' } } },
    column_config: { columns },
  });
  const badLog = await finished(alice, await startSync(alice, bad.id));
  assert.equal(badLog.status, 'failed');
  assert.match(badLog.error_message, /config\.consent\.email\.column: "nope" is not a column of the import/);
  const none = await h.sql(server, `select count(*) from public.email_subscriptions where email = 'yes@example.com'`);
  assert.equal(Number(none), 0, 'a failed run records no consent');

  const src = await createSource(alice, { name: 'Consent', config: { storage_path: path, destination: 'contacts', consent }, column_config: { columns } });
  const log = await finished(alice, await startSync(alice, src.id));
  assert.equal(log.status, 'success', JSON.stringify(log));
  assert.deepEqual(log.metadata.consent, {
    email: { consented: 1, opted_out: 1, unchanged: 2 }, // late: opt-out stands; future: not a usable date
    sms: { consented: 1, opted_out: 1, unchanged: 0 }, // 'STOP?' is not a recognised value
  });
  const subs = JSON.parse(await h.sql(server, `select jsonb_object_agg(email, jsonb_build_object('s', subscribed, 'src', consent_source, 'at', to_char(subscribed_at at time zone 'UTC', 'YYYY-MM-DD')))
                                              from public.email_subscriptions where email like '%@example.com' and email in ('yes@example.com','no@example.com','late@example.com','future@example.com','blank@example.com')`));
  assert.deepEqual(subs['yes@example.com'], { s: true, src: 'import', at: '2026-01-15' });
  assert.equal(subs['no@example.com'].s, false);
  assert.equal(subs['late@example.com'].s, false, 'consent older than the opt-out is not applied');
  assert.equal(subs['future@example.com'], undefined);
  assert.equal(subs['blank@example.com'], undefined, 'an empty cell changes nothing');
  const sms = JSON.parse(await h.sql(server, `select jsonb_object_agg(phone_number, consent_given) from public.sms_consent where phone_number in ('+14155550111','+14155550112','+14155550113')`));
  assert.deepEqual(sms, { '+14155550111': true, '+14155550113': false });
  const { data: c } = await alice.client.from('contacts').select('attributes,email_subscription_id').eq('email', 'yes@example.com').single();
  assert.deepEqual(c.attributes, {}, 'consent columns are not copied into attributes');
  assert.ok(c.email_subscription_id, 'the contact is linked to its consent record');
  const audit = await h.sql(server, `select metadata->>'evidence' from public.audit_logs where action = 'consent' and resource_type = 'email_subscriptions' and metadata->>'sync_log_id' = ${h.lit(log.id)}`);
  assert.equal(audit, 'Spring webinar sign-up form');
});
