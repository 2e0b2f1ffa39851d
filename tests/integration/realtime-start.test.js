// realtime.set_tables() when several campaignd processes start at once on one
// database (issue 9 leftovers): each process applies REALTIME_TABLES at start.
// It used to drop and re-create every capture trigger, so two processes
// starting together could deadlock (or fail on the trigger's unique name) and
// one of them exited. Now the call is serialised by an advisory lock, and a
// table whose capture trigger is already the wanted one keeps it (no DROP, no
// ACCESS EXCLUSIVE lock on a table the application writes).
//
// One server ("host") owns the embedded database; the others point at it with
// DATABASE_URL (as in jobs.test.js). No timing thresholds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './helpers.js';

let host;
let url;
const T = { timeout: 240000 };

before(async () => {
  host = await h.startServer({ JOBS_ENABLED: 'false' });
  url = await h.dbUrl(host);
});

after(async () => {
  if (host) await host.stop();
});

/** Capture triggers as "table:oid" lines, sorted by table. */
async function captureTriggers() {
  return h.sql(host, `select string_agg(tgrelid::regclass::text || ':' || oid, ',' order by tgrelid::regclass::text)
                        from pg_trigger where tgname = 'campaignd_realtime'`);
}

/** Starts n servers on the host's database at the same moment. */
function startTogether(n, env) {
  const jobEnv = { JOBS_ENABLED: 'false', DATABASE_URL: url, JWT_SECRET: h.jwtSecret(host), ...env };
  return Promise.allSettled(Array.from({ length: n }, () => h.startServer(jobEnv)));
}

async function stopAll(results) {
  for (const r of results) if (r.status === 'fulfilled') await r.value.stop();
}

test('a restart with the same REALTIME_TABLES keeps the capture triggers (no drop and create)', T, async () => {
  const first = await captureTriggers();
  assert.match(first, /(^|,)campaigns:\d+/);
  const started = await startTogether(1, {});
  try {
    assert.equal(started[0].status, 'fulfilled', String(started[0].reason));
    assert.equal(await captureTriggers(), first, 'the same trigger rows (same oids) after another start');
  } finally {
    await stopAll(started);
  }
});

test('three servers starting at once with new REALTIME_TABLES all start, and each table has one trigger', T, async () => {
  const rounds = [
    'campaigns,reports,templates',
    'campaigns,contacts',
    'campaigns,analytics_data,reports,sms_messages,email_messages,contacts,data_sources,sync_logs',
  ];
  for (const tables of rounds) {
    const started = await startTogether(3, { REALTIME_TABLES: tables });
    try {
      for (const r of started) assert.equal(r.status, 'fulfilled', `a server failed to start: ${r.reason}`);
      for (const r of started)
        assert.doesNotMatch(r.value.log(), /cannot enable change capture|deadlock/, r.value.log().slice(-4000));
      const have = (await captureTriggers()).split(',').map((s) => s.split(':')[0]);
      assert.deepEqual(have, tables.split(',').sort(), `round ${tables}`);
    } finally {
      await stopAll(started);
    }
  }
});

test('after the concurrent starts, a change reaches a subscriber of another process', T, async () => {
  const [started] = await startTogether(1, {});
  assert.equal(started.status, 'fulfilled', String(started.reason));
  const other = started.value;
  try {
    const u = await h.signUpUser(host);
    const c = h.client(other);
    await c.realtime.setAuth(u.session.access_token);
    const got = [];
    const ch = c.channel('start-sub').on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'campaigns' },
      (p) => got.push(p.new.name));
    const [status, err] = await new Promise((resolve) => ch.subscribe((s, e) => s !== 'CLOSED' && resolve([s, e])));
    assert.equal(status, 'SUBSCRIBED', err && err.message);
    const writer = h.clientWithToken(host, u.session.access_token);
    const { error } = await writer.from('campaigns').insert({ name: 'after concurrent start', type: 'email' });
    h.noError(error, 'insert');
    await h.eventually(() => got.includes('after concurrent start'), 'the insert event');
    assert.deepEqual(got, ['after concurrent start']);
    await c.removeAllChannels();
  } finally {
    await other.stop();
  }
});
