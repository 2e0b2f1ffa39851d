// The job queue with several `campaignd serve` processes on one database: a
// job runs once whatever the number of processes, a process killed with
// kill -9 mid-job loses its lease (its statement is cancelled by PostgreSQL,
// not committed later), and the job is retried by another process or failed
// after max_attempts; the scheduler enqueues a due sync once.
//
// One server ("host") owns the embedded database and runs no jobs
// (JOBS_ENABLED=false: an API-only process); the job processes point at
// its database with DATABASE_URL, so any of them may be killed. The job is
// the real "retention" kind; to hold one mid-run, the test locks
// public.audit_logs (SHARE mode), which the purge must wait for.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { startServer, sql, dbUrl, jwtSecret, stopClusterIfRunning, signUpUser, noError, client, eventually } from './helpers.js';

let host;
let url;
const procs = []; // job processes still running

const JOB_ENV = {
  JOB_LEASE_SECONDS: '2',
  JOB_POLL_INTERVAL: '1',
  JOB_WORKERS: '2',
  RETENTION_INTERVAL: '3600',
  LOG_LEVEL: 'debug',
};

async function startJobProcess() {
  const s = await startServer({ ...JOB_ENV, DATABASE_URL: url, JWT_SECRET: jwtSecret(host) });
  procs.push(s);
  return s;
}

/** The job's row as an object. */
async function job(id) {
  const row = await sql(host, `select row_to_json(j) from jobs.jobs j where id = ${Number(id)}`);
  return JSON.parse(row);
}

/** The process (of procs) whose worker is named in locked_by. */
function holder(lockedBy) {
  const pid = Number(/^[^:]+:(\d+):/.exec(lockedBy || '')?.[1]);
  return procs.find((p) => p.process.pid === pid);
}

/** How many times a process's log says it started the job. */
function runsIn(server, id) {
  return server.log().split('\n').filter((l) => l.includes(`running job ${id} (retention)`)).length;
}

/** Holds a SHARE lock on public.audit_logs from a psql session until released. */
async function lockAuditLogs() {
  const child = spawn('psql', [url, '-X', '-q', '-c', 'begin; lock table public.audit_logs in share mode; select pg_sleep(600);'], {
    env: { ...process.env, PGAPPNAME: 'jobs-test-locker' },
    stdio: 'ignore',
  });
  await eventually(
    async () => (await sql(host, `select count(*) from pg_locks l join pg_stat_activity a using (pid)
      where a.application_name = 'jobs-test-locker' and l.relation = 'public.audit_logs'::regclass and l.granted`)) === '1',
    'the test lock',
  );
  return async () => {
    await sql(host, `select count(pg_terminate_backend(pid)) from pg_stat_activity where application_name = 'jobs-test-locker'`);
    child.kill('SIGKILL');
  };
}

/** Backends of a process's job workers that are waiting for a lock. */
async function waitingBackendsOf(server) {
  return Number(await sql(host, `select count(*) from pg_stat_activity
    where application_name like ${"'campaignd job %:" + server.process.pid + ":%'"} and wait_event_type = 'Lock'`));
}

/** Kills a job process with SIGKILL and waits for its exit. */
async function kill9(server) {
  procs.splice(procs.indexOf(server), 1);
  server.process.kill('SIGKILL');
  await eventually(() => server.exited(), 'the killed process exiting');
  // Its data dir holds only its log (the database is the host's).
  if (!process.env.KEEP_TEST_DATA) fs.rmSync(server.dataDir, { recursive: true, force: true });
}

before(async () => {
  host = await startServer({ JOBS_ENABLED: 'false' });
  url = await dbUrl(host);
  await Promise.all([startJobProcess(), startJobProcess()]);
  // The recurring retention job ran once at start; nothing is running now.
  await eventually(
    async () => (await sql(host, `select count(*) from jobs.jobs where status = 'running'`)) === '0'
      && (await sql(host, `select count(*) from jobs.jobs where kind = 'retention' and status = 'done'`)) !== '0',
    'the first retention run',
  );
});

after(async () => {
  for (const p of procs) await p.stop();
  await host?.stop();
  await stopClusterIfRunning(host?.dataDir);
});

describe('job queue shared by several processes', () => {
  it('runs each job once, whatever the number of processes', async () => {
    const ids = (await sql(host, `select string_agg(jobs.enqueue('retention', '{}')::text, ',') from generate_series(1, 20)`)).split(',');
    assert.equal(ids.length, 20);
    const list = ids.join(',');
    await eventually(
      async () => (await sql(host, `select count(*) from jobs.jobs where id in (${list}) and status = 'done'`)) === '20',
      'the 20 jobs finishing',
    );
    assert.equal(await sql(host, `select count(*) from jobs.jobs where id in (${list}) and attempts <> 1`), '0',
      'every job took exactly one attempt');
    for (const id of ids) {
      const runs = procs.reduce((n, p) => n + runsIn(p, id), 0);
      assert.equal(runs, 1, `job ${id} started ${runs} times across the processes`);
      const j = await job(id);
      assert.ok(holder(j.locked_by), `job ${id} was run by one of the two processes (${j.locked_by})`);
    }
    assert.equal(await sql(host, `select count(*) from jobs.jobs where kind = 'retention' and status in ('pending', 'running')`), '1',
      'the recurring retention job is still queued once');
  });

  it('fails a job whose only attempt died with its process (kill -9), and never runs it again', async () => {
    const release = await lockAuditLogs();
    try {
      const id = await sql(host, `select jobs.enqueue('retention', '{}', now(), null, 1, '0')`);
      const running = await eventually(async () => {
        const j = await job(id);
        return j.status === 'running' && holder(j.locked_by) && (await waitingBackendsOf(holder(j.locked_by))) === 1 && j;
      }, 'a process blocked in the job');
      const victim = holder(running.locked_by);
      const survivor = procs.find((p) => p !== victim);
      await kill9(victim);
      const failed = await eventually(async () => {
        const j = await job(id);
        return j.status === 'failed' && j;
      }, 'the job failing once its lease expired');
      assert.equal(failed.attempts, 1);
      assert.match(failed.last_error, /^lease expired: worker /);
      assert.equal(failed.locked_by, running.locked_by, 'nobody else ever held it');
      assert.equal(runsIn(survivor, id), 0, 'the other process never ran it');
      // PostgreSQL cancelled the dead process's statement (client_connection_check_interval):
      // it will not run on, and commit, when the lock goes away.
      await eventually(async () => (await waitingBackendsOf(victim)) === 0, 'the dead process\'s statement being cancelled');
    } finally {
      await release();
    }
  });

  it('retries a job whose process was killed mid-run on another process, one holder at a time', async () => {
    await startJobProcess(); // two processes again
    const release = await lockAuditLogs();
    let released = false;
    try {
      const id = await sql(host, `select jobs.enqueue('retention', '{}', now(), null, 3, '0')`);
      const first = await eventually(async () => {
        const j = await job(id);
        return j.status === 'running' && holder(j.locked_by) && (await waitingBackendsOf(holder(j.locked_by))) === 1 && j;
      }, 'a process blocked in the job');
      const victim = holder(first.locked_by);
      const survivor = procs.find((p) => p !== victim);
      await kill9(victim);
      // (Attempt 2 may finish at once: while the dead process's transaction
      // still holds the retention advisory lock, the run skips the purge.)
      const second = await eventually(async () => {
        const j = await job(id);
        return j.attempts === 2 && j;
      }, 'the other process taking the job over');
      assert.equal(holder(second.locked_by), survivor, 'the survivor holds attempt 2');
      assert.match(second.last_error, /^lease expired: worker /);
      await eventually(async () => (await waitingBackendsOf(victim)) === 0, 'the dead process\'s statement being cancelled');
      await release();
      released = true;
      const done = await eventually(async () => {
        const j = await job(id);
        return j.status === 'done' && j;
      }, 'the retried job finishing');
      assert.equal(done.attempts, 2, 'two attempts: the killed one and the retry');
      assert.equal(runsIn(survivor, id), 1, 'the survivor ran it once');
    } finally {
      if (!released) await release();
    }
  });

  it('hands a running job back at once when its process stops with SIGTERM, without counting the attempt', async () => {
    await startJobProcess(); // two processes again
    const release = await lockAuditLogs();
    let released = false;
    try {
      const id = await sql(host, `select jobs.enqueue('retention', '{}', now(), null, 3, '1 hour')`);
      const first = await eventually(async () => {
        const j = await job(id);
        return j.status === 'running' && holder(j.locked_by) && (await waitingBackendsOf(holder(j.locked_by))) === 1 && j;
      }, 'a process blocked in the job');
      const leaving = holder(first.locked_by);
      const staying = procs.find((p) => p !== leaving);
      procs.splice(procs.indexOf(leaving), 1);
      await leaving.stop(); // SIGTERM: exits cleanly (exit code 0, no sanitizer report)
      assert.equal(await waitingBackendsOf(leaving), 0, 'its statement was cancelled');
      // Released, not retried: the other process may take it at once (a retry
      // would wait retry_delay, an hour here) and it is still attempt 1.
      const next = await eventually(async () => {
        const j = await job(id);
        return j.status === 'running' && holder(j.locked_by) === staying && j;
      }, 'the other process taking the job');
      assert.equal(next.attempts, 1, 'the interrupted attempt was not counted');
      await release();
      released = true;
      const done = await eventually(async () => {
        const j = await job(id);
        return j.status === 'done' && j;
      }, 'the job finishing');
      assert.equal(done.attempts, 1);
      assert.equal(runsIn(staying, id), 1);
    } finally {
      if (!released) await release();
    }
  });

  it('enqueues a due scheduled sync once although every process runs the scheduler', async () => {
    const src = (await sql(host, `insert into public.data_sources (name, type, sync_schedule, schedule_config)
      values ('Scheduled list', 'csv_url', 'daily', '{"time": "09:00", "timezone": "Europe/London", "retry_on_failure": true, "max_retries": 1}')
      returning id`)).split('\n')[0];
    const next = await sql(host, `select next_sync_at > now() from public.data_sources where id = '${src}'`);
    assert.equal(next, 't', 'a new scheduled source gets its next sync time');
    await sql(host, `update public.data_sources set next_sync_at = now() - interval '1 second' where id = '${src}'`);
    await eventually(
      async () => (await sql(host, `select next_sync_at > now() from public.data_sources where id = '${src}'`)) === 't',
      'the scheduler advancing next_sync_at',
    );
    const jobsOf = () => sql(host, `select count(*) || ' ' || min(max_attempts) || ' ' || min(payload->>'trigger')
      from jobs.jobs where kind = 'import.sync' and payload->>'data_source_id' = '${src}'`);
    assert.equal(await jobsOf(), '1 2 schedule', 'one import.sync job, 1 + max_retries attempts, trigger schedule');
    // Due again: at most one more job (none while the first is still queued,
    // which it is unless a process here runs import.sync), never two at once.
    await sql(host, `update public.data_sources set next_sync_at = now() - interval '1 second' where id = '${src}'`);
    await eventually(
      async () => (await sql(host, `select next_sync_at > now() from public.data_sources where id = '${src}'`)) === 't',
      'the scheduler advancing next_sync_at again',
    );
    const counts = await sql(host, `select count(*) || ' ' || count(*) filter (where status in ('pending', 'running'))
      from jobs.jobs where kind = 'import.sync' and payload->>'data_source_id' = '${src}'`);
    assert.ok(['1 1', '1 0', '2 1', '2 0'].includes(counts), `jobs for the source (all, queued): ${counts}`);
  });

  it('shows a user next_sync_at for the schedule they save, and refuses a schedule that cannot run', async () => {
    const u = await signUpUser(host);
    const { data, error } = await u.client.from('data_sources').insert({
      name: 'Trade show list', type: 'csv_url', sync_schedule: 'cron',
      schedule_config: { cron_expression: '0 9 * * mon', timezone: 'America/New_York' },
    }).select('id, next_sync_at').single();
    noError(error, 'insert data source');
    const expected = await sql(host, `select to_json(jobs.next_run('cron',
      '{"cron_expression": "0 9 * * mon", "timezone": "America/New_York"}', now(), null))#>>'{}'`);
    assert.equal(new Date(data.next_sync_at).getTime(), new Date(expected).getTime(), 'Monday 09:00 New York');
    assert.equal(new Date(data.next_sync_at).getUTCDay(), 1);
    assert.ok([13, 14].includes(new Date(data.next_sync_at).getUTCHours()), 'at 9:00 EDT or EST');

    const bad = await u.client.from('data_sources').insert({
      name: 'Bad', type: 'csv_url', sync_schedule: 'cron', schedule_config: { cron_expression: '0 9 * *' },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.error.message, /cron expression .* 5 fields/);
    const bad2 = await u.client.from('data_sources').update({ schedule_config: { time: '25:00' }, sync_schedule: 'daily' })
      .eq('id', data.id);
    assert.equal(bad2.status, 400);
    assert.match(bad2.error.message, /schedule_config\.time/);
    const { data: after } = await u.client.from('data_sources').select('sync_schedule, next_sync_at').eq('id', data.id).single();
    assert.equal(after.sync_schedule, 'cron', 'the refused update changed nothing');
    assert.equal(after.next_sync_at, data.next_sync_at);
  });

  it('keeps the queue out of reach of every API key, the service key included', async () => {
    // the forged calls carry a marker: the server's own recurring jobs (the
    // keeper's, the scheduler's) may be added meanwhile and are not counted
    const forged = "select count(*) from jobs.jobs where payload ? 'forged'";
    const u = await signUpUser(host);
    const service = client(host, host.serviceKey);
    for (const [who, c] of [['a user', u.client], ['the service key', service]]) {
      const read = await c.schema('jobs').from('jobs').select('*');
      assert.ok(read.error, `${who} cannot read jobs.jobs through /rest/v1`);
      assert.ok(read.status >= 400 && read.status < 500, `${who}: a 4xx, not ${read.status}`);
      assert.equal(read.data, null);
      const rpc = await c.schema('jobs').rpc('enqueue', { kind: 'retention', payload: { forged: who } });
      assert.ok(rpc.error, `${who} cannot call jobs.enqueue through /rest/v1/rpc`);
      assert.ok(rpc.status >= 400 && rpc.status < 500, `${who}: a 4xx, not ${rpc.status}`);
      const pub = await c.rpc('enqueue', { kind: 'retention', payload: { forged: who } });
      assert.ok(pub.error, `${who} finds no enqueue function in the public schema`);
      assert.equal(pub.status, 404);
    }
    assert.equal(await sql(host, forged), '0', 'no job was added');
  });
});
