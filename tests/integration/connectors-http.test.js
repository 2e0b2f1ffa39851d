// HTTP API connectors end to end (issue 11) against local servers that speak
// each API's documented shapes (fake-apis.js): rest_api with page, offset,
// cursor and Link pagination, NDJSON, incremental syncs, 429 + Retry-After, a
// revoked token, the private-address guard; google_analytics, meta_pixel,
// bigquery and snowflake into imported_data (re-runs replace, never double)
// and the analytics_data roll-up that /api/analytics reads.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './helpers.js';
import { startFakeApis } from './fake-apis.js';

const T = { timeout: 240000 };
let server;
let fake;
let alice;

before(async () => {
  fake = await startFakeApis();
  server = await h.startServer({ IMPORT_ALLOW_PRIVATE_NETWORKS: 'true', JOB_POLL_INTERVAL: '1', LOG_LEVEL: 'info' });
  alice = await h.signUpUser(server);
  fake.state.items = [
    { id: 1, name: 'Ada', email: 'ada@example.com', updated_at: '2024-01-01T10:00:00Z', owner: { city: 'Paris' } },
    { id: 2, name: 'Bob', email: 'bob@example.com', updated_at: '2024-01-02T10:00:00Z', owner: { city: 'Lyon' } },
    { id: 3, name: 'Cy', email: 'cy@example.com', updated_at: '2024-01-03T10:00:00Z', owner: { city: 'Nice' } },
    { id: 4, name: 'Dee', email: 'dee@example.com', updated_at: '2024-01-04T10:00:00Z', owner: null },
    { id: 5, name: 'Eve', email: 'eve@example.com', updated_at: '2024-01-05T10:00:00Z', owner: { city: 'Metz' } },
  ];
});

after(async () => {
  if (server) await server.stop();
  if (fake) await fake.stop();
});

async function createSource(fields, credentials) {
  const { data, error } = await alice.client.from('data_sources').insert({ name: 'API', ...fields }).select().single();
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
  const id = r.json.sync_log_id;
  const end = Date.now() + 120000;
  for (;;) {
    const { data, error } = await alice.client.from('sync_logs').select('*').eq('id', id).single();
    h.noError(error, 'read sync log');
    if (data.status !== 'running') return data;
    if (Date.now() > end) throw new Error(`sync ${id} did not finish`);
    await h.sleep(150);
  }
}

async function tableRows(sourceId, order = 'id') {
  const { data: src } = await alice.client.from('data_sources').select('table_name').eq('id', sourceId).single();
  const { data, error } = await alice.client.from(src.table_name).select('*').order(order);
  h.noError(error, 'read import table');
  return data;
}

const REST_COLUMNS = {
  columns: [
    { source_name: 'id', target_name: 'id_ext', type: 'integer' },
    { source_name: 'name', target_name: 'name', type: 'text' },
    { source_name: 'email', target_name: 'email', type: 'text' },
    { source_name: 'updated_at', target_name: 'changed_at', type: 'timestamp' },
    { source_name: 'owner.city', target_name: 'city', type: 'text' },
  ],
  duplicate_key_columns: ['id_ext'],
};

test('rest_api: each pagination type and NDJSON import every record once, with the auth header', T, async () => {
  const cases = [
    ['page', { url: `${fake.url}/rest/page`, records_path: 'data.items', pagination: { type: 'page', page_param: 'page', page_size_param: 'per_page', page_size: 2 } }],
    ['offset', { url: `${fake.url}/rest/offset`, records_path: 'results', pagination: { type: 'offset', limit: 2 } }],
    ['cursor', { url: `${fake.url}/rest/cursor`, records_path: 'data', pagination: { type: 'cursor', cursor_path: 'meta.next_cursor', cursor_param: 'cursor' } }],
    ['link', { url: `${fake.url}/rest/link?p=1`, pagination: { type: 'link' } }],
    ['ndjson', { url: `${fake.url}/rest/ndjson` }],
  ];
  for (const [kind, config] of cases) {
    const before = fake.calls(`/rest/`).length;
    const src = await createSource({ name: `REST ${kind}`, type: 'rest_api', config, column_config: REST_COLUMNS }, { token: 'tok-1' });
    const log = await sync(src.id);
    assert.equal(log.status, 'success', `${kind}: ${log.error_message}`);
    assert.equal(log.records_imported, 5, kind);
    const rows = await tableRows(src.id, 'id_ext');
    assert.deepEqual(rows.map((r) => r.id_ext), [1, 2, 3, 4, 5], kind);
    assert.equal(rows[0].city, 'Paris', `${kind}: nested owner.city`);
    assert.equal(rows[3].city, null, `${kind}: a null owner`);
    const calls = fake.state.calls.slice(before).filter((c) => c.path.startsWith('/rest/'));
    assert.ok(calls.every((c) => c.headers.authorization === 'Bearer tok-1'), `${kind}: the token from the credentials`);
    const want = { page: 3, offset: 3, cursor: 3, link: 3, ndjson: 1 }[kind];
    assert.equal(calls.length, want, `${kind}: requests`);
    if (kind === 'page') assert.deepEqual(calls.map((c) => c.query.page), ['1', '2', '3']);
    if (kind === 'offset') assert.deepEqual(calls.map((c) => c.query.offset), ['0', '2', '4']);
    if (kind === 'link') assert.deepEqual(calls.map((c) => c.query.p), ['1', '2', '3']);
  }
});

test('rest_api: re-sync replaces; incremental syncs send last_sync_value and upsert', T, async () => {
  const src = await createSource(
    {
      name: 'REST incremental',
      type: 'rest_api',
      config: { url: `${fake.url}/rest/page`, records_path: 'data.items', incremental_param: 'updated_since', pagination: { type: 'page', page_size_param: 'per_page', page_size: 2 } },
      column_config: REST_COLUMNS,
      schedule_config: { incremental_strategy: 'incremental', incremental_column: 'updated_at' },
    },
    { token: 'tok-1' },
  );
  let log = await sync(src.id);
  assert.equal(log.status, 'success', log.error_message);
  assert.equal(log.records_imported, 5);
  const row = async () => (await alice.client.from('data_sources').select('last_sync_value').eq('id', src.id).single()).data;
  assert.equal((await row()).last_sync_value, '2024-01-05T10:00:00Z');

  // one record changes, one is new: the next sync asks only for what is newer
  fake.state.items[1] = { ...fake.state.items[1], name: 'Bobby', updated_at: '2024-01-06T10:00:00Z' };
  fake.state.items.push({ id: 6, name: 'Fay', email: 'fay@example.com', updated_at: '2024-01-07T10:00:00Z', owner: { city: 'Caen' } });
  const before = fake.state.calls.length;
  log = await sync(src.id);
  assert.equal(log.status, 'success', log.error_message);
  assert.equal(log.records_imported, 2);
  const sent = fake.state.calls.slice(before).filter((c) => c.path === '/rest/page');
  assert.equal(sent[0].query.updated_since, '2024-01-05T10:00:00Z');
  const rows = await tableRows(src.id, 'id_ext');
  assert.deepEqual(rows.map((r) => [r.id_ext, r.name]), [[1, 'Ada'], [2, 'Bobby'], [3, 'Cy'], [4, 'Dee'], [5, 'Eve'], [6, 'Fay']]);
  assert.equal((await row()).last_sync_value, '2024-01-07T10:00:00Z');

  // a failed run leaves last_sync_value where it was
  fake.state.tokens.delete('tok-1');
  try {
    log = await sync(src.id);
    assert.equal(log.status, 'failed');
    assert.equal((await row()).last_sync_value, '2024-01-07T10:00:00Z');
  } finally {
    fake.state.tokens.add('tok-1');
  }
  fake.state.items.splice(5, 1);
  fake.state.items[1] = { ...fake.state.items[1], name: 'Bob', updated_at: '2024-01-02T10:00:00Z' };
});

test('rest_api: 429 answers are waited out as Retry-After says', T, async () => {
  fake.state.limited.set('/rest/ndjson', 2);
  fake.state.retryAfter = '1';
  const before = fake.state.calls.length;
  const src = await createSource({ name: 'REST limited', type: 'rest_api', config: { url: `${fake.url}/rest/ndjson` } }, { token: 'tok-1' });
  const log = await sync(src.id);
  assert.equal(log.status, 'success', log.error_message);
  assert.equal(log.records_imported, 5);
  const calls = fake.state.calls.slice(before).filter((c) => c.path === '/rest/ndjson');
  assert.equal(calls.length, 3, 'two 429 answers, then the data');

  // a Retry-After longer than the connector waits fails the run (retryable), not a hang
  fake.state.limited.set('/rest/ndjson', 100);
  fake.state.retryAfter = '3600';
  try {
    const src2 = await createSource({ name: 'REST throttled', type: 'rest_api', config: { url: `${fake.url}/rest/ndjson` }, schedule_config: { retry_on_failure: false } }, { token: 'tok-1' });
    const log2 = await sync(src2.id);
    assert.equal(log2.status, 'failed');
    assert.match(log2.error_message, /429/);
  } finally {
    fake.state.limited.delete('/rest/ndjson');
    fake.state.retryAfter = '1';
  }
});

test('rest_api: a revoked token ends the sync as failed with "reconnect the source"', T, async () => {
  const src = await createSource({ name: 'REST revoked', type: 'rest_api', config: { url: `${fake.url}/rest/ndjson` } }, { token: 'tok-revoked' });
  const log = await sync(src.id);
  assert.equal(log.status, 'failed');
  assert.match(log.error_message, /reconnect the source/);
  assert.match(log.error_message, /HTTP 401/);
  const { data } = await alice.client.from('data_sources').select('sync_status, table_name').eq('id', src.id).single();
  assert.equal(data.sync_status, 'failed');
  assert.equal(data.table_name, null, 'no table was made');
});

test('rest_api: the test-connection preview reads the first page; a header injection is refused', T, async () => {
  const src = await createSource(
    { name: 'REST preview', type: 'rest_api', config: { url: `${fake.url}/rest/page`, records_path: 'data.items', pagination: { type: 'page', page_size_param: 'per_page', page_size: 2 } } },
    { token: 'tok-1' },
  );
  const t = await h.api(server, alice, 'POST', `/api/data-sources/${src.id}/test`);
  assert.equal(t.status, 200, t.text);
  assert.deepEqual(t.json.columns.map((c) => c.source_name), ['id', 'name', 'email', 'updated_at', 'owner.city']);
  assert.equal(t.json.rows.length, 2, 'one page only');

  const bad = await createSource({ name: 'REST evil', type: 'rest_api', config: { url: `${fake.url}/rest/page`, headers: { 'X-A': 'b\r\nX-Injected: 1' } } }, { token: 'tok-1' });
  const r = await h.api(server, alice, 'POST', `/api/data-sources/${bad.id}/test`);
  assert.equal(r.status, 400, r.text);
  assert.match(r.json.message, /line breaks/);
});

test('rest_api: a next link to another host is not followed with the credentials', T, async () => {
  const before = fake.state.calls.length;
  const src = await createSource({ name: 'REST away', type: 'rest_api', config: { url: `${fake.url}/rest/link-away`, pagination: { type: 'link' } }, schedule_config: { retry_on_failure: false } }, { token: 'tok-1' });
  const log = await sync(src.id);
  assert.equal(log.status, 'failed');
  assert.match(log.error_message, /another host/);
  const calls = fake.state.calls.slice(before);
  assert.equal(calls.length, 1, 'only the first page was requested');
  assert.equal(calls[0].headers.host, `127.0.0.1:${new URL(fake.url).port}`);
});

test('rest_api: the private-address guard refuses local APIs unless allowed', T, async () => {
  const second = await h.startServer({ CAMPAIGND_DATA_DIR: server.dataDir, DATABASE_URL: await h.dbUrl(server) });
  try {
    const src = await createSource({ name: 'REST private', type: 'rest_api', config: { url: `${fake.url}/rest/ndjson` } }, { token: 'tok-1' });
    const before = fake.state.calls.length;
    const t = await h.api(second, alice, 'POST', `/api/data-sources/${src.id}/test`);
    assert.equal(t.status, 400, t.text);
    assert.match(t.json.message, /private or local network address/);
    assert.equal(fake.state.calls.length, before, 'no request reached the local API');
  } finally {
    await second.stop({ removeData: false }); // the data directory is the first server's
  }
});

function serviceAccount(privatePem, email = 'loader@proj-1.iam.gserviceaccount.com') {
  return JSON.stringify({
    type: 'service_account', project_id: 'proj-1', private_key_id: 'k1', private_key: privatePem,
    client_email: email, token_uri: `${fake.url}/google/token`,
  });
}

async function imported(sourceId) {
  const out = await h.sql(server, `select coalesce(jsonb_agg(jsonb_build_object('m', metric_name, 'v', metric_value, 'd', event_date, 'dims', dimensions) order by event_date, metric_name, dimensions::text), '[]') from public.imported_data where data_source_id = ${h.lit(sourceId)}`);
  return JSON.parse(out);
}

async function rollup(sourceId) {
  const out = await h.sql(server, `select coalesce(jsonb_agg(jsonb_build_object('m', metric_type, 'v', value, 'd', date) order by date, metric_type), '[]') from public.analytics_data where dimensions = jsonb_build_object('data_source_id', ${h.lit(sourceId)}::text)`);
  return JSON.parse(out);
}

test('google_analytics: service-account JWT, runReport paging, upsert without doubling, roll-up into /api/analytics', T, async () => {
  const src = await createSource(
    { name: 'GA4', type: 'google_analytics', config: { api_base: `${fake.url}/ga`, property_id: '123456', metrics: ['sessions', 'conversions'], dimensions: ['country'], start_date: '2024-02-01', end_date: '2024-02-03' } },
    { service_account_json: serviceAccount(fake.state.privatePem) },
  );
  // the test-connection preview reads the report and shows its first values
  const t = await h.api(server, alice, 'POST', `/api/data-sources/${src.id}/test`);
  assert.equal(t.status, 200, t.text);
  assert.equal(t.json.values, 12);
  assert.equal(t.json.rows.length, 10);
  assert.deepEqual(t.json.rows[0], { date: '2024-02-01', metric: 'sessions', value: 20, dimensions: { country: 'US' } });
  assert.deepEqual(await imported(src.id), [], 'a preview writes nothing');
  fake.state.calls.length = 0;

  let log = await sync(src.id);
  assert.equal(log.status, 'success', log.error_message);
  // 3 days x 2 countries x 2 metrics
  assert.equal(log.records_imported, 12);
  const reports = fake.calls('/ga/');
  assert.ok(reports.length >= 2, 'paged with limit/offset');
  assert.deepEqual(reports.map((c) => JSON.parse(c.body).offset), [0, 3]);
  let rows = await imported(src.id);
  assert.equal(rows.length, 12);
  assert.deepEqual(rows.filter((r) => r.d === '2024-02-01' && r.m === 'sessions').map((r) => [r.dims.country, Number(r.v)]), [['FR', 10], ['US', 20]]);

  // the same days again, with new values: replaced, not doubled
  fake.state.ga4Values.sessions = 11;
  log = await sync(src.id);
  assert.equal(log.status, 'success', log.error_message);
  rows = await imported(src.id);
  assert.equal(rows.length, 12);
  assert.deepEqual(rows.filter((r) => r.d === '2024-02-01' && r.m === 'sessions').map((r) => Number(r.v)), [11, 22]);
  const roll = await rollup(src.id);
  assert.deepEqual(roll.filter((r) => r.m === 'sessions').map((r) => [r.d, Number(r.v)]), [['2024-02-01', 33], ['2024-02-02', 33], ['2024-02-03', 33]]);

  const a = await h.api(server, alice, 'GET', '/api/analytics?metric=sessions&from=2024-02-01&to=2024-02-03&interval=day');
  assert.equal(a.status, 200, a.text);
  assert.equal(Number(a.json.totals.sessions.sum), 99);
  fake.state.ga4Values.sessions = 10;
});

test('google_analytics: a key the token endpoint refuses (invalid_grant) says "reconnect the source"', T, async () => {
  const { generateKeyPairSync } = await import('node:crypto');
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
  const src = await createSource(
    { name: 'GA4 revoked', type: 'google_analytics', config: { api_base: `${fake.url}/ga`, property_id: '1', metrics: ['sessions'], days: 2 }, schedule_config: { retry_on_failure: false } },
    { service_account_json: serviceAccount(other) },
  );
  const log = await sync(src.id);
  assert.equal(log.status, 'failed');
  assert.match(log.error_message, /reconnect the source/);
  assert.match(log.error_message, /invalid_grant|Invalid JWT Signature/);
  assert.deepEqual(await imported(src.id), []);
});

test('meta_pixel: insights per day with paging; the pixel\'s actions become metrics; an expired token fails', T, async () => {
  const src = await createSource(
    { name: 'Pixel', type: 'meta_pixel', config: { api_base: `${fake.url}/meta`, ad_account_id: 'act_42', metrics: ['impressions', 'spend', 'actions'], start_date: '2024-03-01', end_date: '2024-03-03' } },
    { access_token: 'meta-ok' },
  );
  let log = await sync(src.id);
  assert.equal(log.status, 'success', log.error_message);
  const calls = fake.calls('/meta/');
  assert.equal(calls.length, 2, 'two pages (paging.next)');
  assert.equal(calls[0].headers.authorization, 'Bearer meta-ok');
  assert.equal(calls[0].query.time_increment, '1');
  let rows = await imported(src.id);
  // 3 days x (impressions, spend, 2 action types)
  assert.equal(rows.length, 12);
  assert.ok(rows.some((r) => r.m === 'actions.offsite_conversion.fb_pixel_purchase' && Number(r.v) === 3));
  assert.ok(rows.some((r) => r.m === 'spend' && Number(r.v) === 12.5));
  log = await sync(src.id);
  assert.equal(log.status, 'success');
  rows = await imported(src.id);
  assert.equal(rows.length, 12, 're-run does not double');

  const r = await h.api(server, alice, 'PUT', `/api/data-sources/${src.id}/credentials`, { access_token: 'meta-expired' });
  assert.equal(r.status, 200, r.text);
  await alice.client.from('data_sources').update({ schedule_config: { retry_on_failure: false } }).eq('id', src.id);
  log = await sync(src.id);
  assert.equal(log.status, 'failed');
  assert.match(log.error_message, /reconnect the source/);
  assert.equal((await imported(src.id)).length, 12, 'a failed run changes nothing');
});

test('bigquery: jobs.query, getQueryResults until complete and through pageToken', T, async () => {
  const src = await createSource(
    { name: 'BQ', type: 'bigquery', config: { api_base: `${fake.url}/bq`, project_id: 'proj-1', query: 'select date, campaign, clicks, cost from ads.daily', metrics: ['clicks', 'cost'], dimensions: ['campaign'] } },
    { service_account_json: serviceAccount(fake.state.privatePem) },
  );
  const log = await sync(src.id);
  assert.equal(log.status, 'success', log.error_message);
  const calls = fake.calls('/bq/');
  assert.equal(calls[0].method, 'POST');
  assert.equal(JSON.parse(calls[0].body).useLegacySql, false);
  assert.deepEqual(calls.slice(1).map((c) => c.query.pageToken ?? null), [null, 'tok2', 'tok4']);
  const rows = await imported(src.id);
  assert.equal(rows.length, 10); // 5 rows x 2 metrics
  assert.deepEqual(rows.filter((r) => r.d === '2024-03-02' && r.m === 'cost').map((r) => [r.dims.campaign, r.v === null ? null : Number(r.v)]), [['brand', null], ['spring', 2]]);
  const token = fake.calls('/google/token').at(-1);
  assert.match(new URLSearchParams(token.body).get('assertion'), /^[\w-]+\.[\w-]+\.[\w-]+$/);
});

test('snowflake: key-pair JWT, 202 then the result, every partition', T, async () => {
  const src = await createSource(
    { name: 'SF', type: 'snowflake', config: { api_base: `${fake.url}/sf`, account: 'acme', user: 'loader', warehouse: 'WH', query: 'select day, channel, sent from stats', date_column: 'day', metrics: ['sent'], dimensions: ['channel'] } },
    { private_key: fake.state.privatePem.replaceAll('\n', ' ').trim() }, // credentials hold no line breaks
  );
  const log = await sync(src.id);
  assert.equal(log.status, 'success', log.error_message);
  const calls = fake.calls('/sf/');
  assert.equal(calls[0].headers['x-snowflake-authorization-token-type'], 'KEYPAIR_JWT');
  assert.equal(JSON.parse(calls[0].body).warehouse, 'WH');
  assert.ok(calls.some((c) => c.query.partition === '1'), 'the second partition was read');
  const rows = await imported(src.id);
  assert.deepEqual(rows.map((r) => [r.d, r.dims.channel, Number(r.v)]), [['2024-03-01', 'EMAIL', 30], ['2024-03-01', 'SMS', 5], ['2024-03-02', 'EMAIL', 31]]);

  const { generateKeyPairSync } = await import('node:crypto');
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
  const bad = await createSource(
    { name: 'SF wrong key', type: 'snowflake', config: { api_base: `${fake.url}/sf`, account: 'acme', user: 'loader', query: 'select 1', date_column: 'day', metrics: ['sent'] }, schedule_config: { retry_on_failure: false } },
    { private_key: other.replaceAll('\n', '\\n') },
  );
  const log2 = await sync(bad.id);
  assert.equal(log2.status, 'failed');
  assert.match(log2.error_message, /reconnect the source/);
});
