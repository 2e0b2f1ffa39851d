// The database connector benchmark (issue 11 "Speed"): one run, ratios.
//
//   1. starts a source PostgreSQL cluster (tests/integration/db-servers.js) with a
//      1,000,000-row table, and campaignd (its embedded PostgreSQL is the other
//      cluster);
//   2. full sync: a `postgres` data source of that table into a dedicated table;
//      the time is from the request (jobs.created_at) to completed_at of its
//      sync_logs row;
//   3. the same rows with `psql -c "\copy (select …) to stdout" | psql -c "\copy …
//      from stdin"` between the same two clusters, into a plain table;
//   4. incremental: a second source with incremental_column updated_at: its first
//      sync reads everything; then, BENCH_RESYNC_RUNS times (default 11), 1,000
//      rows change at the source and the next sync reads only those (and the ties
//      of the last value); the median re-sync, from the request to the finished
//      sync_logs row (the job's wait included), is the figure; before the
//      re-syncs the destination is vacuumed (what autovacuum does long before a
//      real re-sync; it would otherwise start inside one), and each re-sync
//      waits for a running autovacuum worker;
//   5. appends the figures to bench/RESULTS.md, with the CPU seconds (user +
//      system, bench/cputime.py; the destination's per process to the µs,
//      bench/proccpu.py) of campaignd and of both clusters (postmaster and every
//      backend but the bench's own session) per million rows, and of the psql
//      pipe: figures a shared, loaded machine distorts far less than wall time.
//
// Usage: CAMPAIGND_BIN=$PWD/build/campaignd nice node bench/connectors/run.mjs
// BENCH_DB_ROWS (default 1000000), BENCH_RESULTS (default bench/RESULTS.md).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as h from '../../tests/integration/helpers.js';
import * as dbs from '../../tests/integration/db-servers.js';

const rows = Number(process.env.BENCH_DB_ROWS || 1000000);
const results = process.env.BENCH_RESULTS || path.join(h.ROOT, 'bench', 'RESULTS.md');
const log = (m) => console.error(`${new Date().toISOString().slice(11, 19)} ${m}`);

// One psql session kept open for the bench's own queries (waiting for a sync,
// reading its result, WAL positions): a psql per query would start a backend
// each time inside the measured window, and that backend's CPU would be
// counted as the destination's (20–50 ms each under load). Its backend's CPU
// is left out of the destination's figure.
function psqlSession(url) {
  const p = spawn('psql', ['-X', '-q', '-A', '-t', url], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiting = [];
  p.stdout.on('data', (d) => {
    out += d;
    let i;
    while ((i = out.indexOf('__bench_done__\n')) >= 0) {
      const text = out.slice(0, i).trim();
      out = out.slice(i + 15);
      const w = waiting.shift();
      if (err) w.reject(new Error(`psql: ${err}`));
      else w.resolve(text);
      err = '';
    }
  });
  p.stderr.on('data', (d) => { err += d; });
  return {
    sql: (text) => new Promise((resolve, reject) => {
      waiting.push({ resolve, reject });
      p.stdin.write(`${text.trim().replace(/;$/, '')};\n\\echo __bench_done__\n`);
    }),
    close: () => p.stdin.end(),
  };
}

const pg = await dbs.startPostgres({ prefix: 'cd-bench-srcpg-' });
let server;
let bench;
try {
  log(`source: ${rows} rows`);
  await pg.psql(`
    create role reader login password 'reader-pw';
    create table public.leads (id integer primary key, email text not null, first_name text,
      score integer, amount numeric(10,2), active boolean, signed_up date,
      updated_at timestamptz not null);
    insert into public.leads
      select g, 'user' || g || '@example.com', 'Name ' || (g % 977), g % 1000, (g % 10000) / 100.0,
             g % 3 = 0, date '2020-01-01' + (g % 1500),
             timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
      from generate_series(1, ${rows}) g;
    create index leads_updated_at on public.leads (updated_at);
    grant select on public.leads to reader;`);
  // a real source table is long vacuumed; autovacuum of this new one would
  // otherwise run during the syncs and count as the source's CPU
  await pg.psql('vacuum (analyze) public.leads');

  server = await h.startServer({ IMPORT_ALLOW_PRIVATE_NETWORKS: 'true', JOB_POLL_INTERVAL: '1', LOG_LEVEL: 'warn' });
  const user = await h.signUpUser(server);
  const api = (method, p, body) =>
    h.request(`${server.url}${p}`, { method, headers: { apikey: server.anonKey, Authorization: `Bearer ${user.session.access_token}` }, body });
  const config = { host: '127.0.0.1', port: pg.port, database: 'postgres', schema: 'public', table: 'leads' };
  const create = async (name, extra) => {
    const { data, error } = await user.client.from('data_sources').insert({ name, type: 'postgres', config, ...extra }).select().single();
    h.noError(error, 'create source');
    const r = await api('PUT', `/api/data-sources/${data.id}/credentials`, { user: 'reader', password: 'reader-pw' });
    if (r.status !== 200) throw new Error(r.text);
    return data.id;
  };
  const pmOf = (dir) => {
    const f = execFileSync('find', [dir, '-name', 'postmaster.pid'], { encoding: 'utf8' }).split('\n')[0];
    return fs.readFileSync(f, 'utf8').split('\n')[0].trim();
  };
  const pids = [String(server.process.pid), `tree:${pmOf(pg.dir)}`];
  bench = psqlSession(await h.dbUrl(server));
  const benchPid = await bench.sql('select pg_backend_pid()');
  // the destination cluster per process, to the µs (bench/proccpu.py), without
  // the bench's own session
  const dstPm = pmOf(server.dataDir);
  const dstCpu = () => {
    const snap = JSON.parse(execFileSync('python3', [path.join(h.ROOT, 'bench', 'proccpu.py'), dstPm], { encoding: 'utf8' }));
    let ms = snap.reaped_ms;
    for (const [pid, [x]] of Object.entries(snap.procs)) if (pid !== benchPid) ms += x;
    return ms / 1000;
  };
  // [campaignd, destination cluster, source cluster] CPU seconds so far
  const cpu = () => {
    const [c, src] = execFileSync('python3', [path.join(h.ROOT, 'bench', 'cputime.py'), ...pids], { encoding: 'utf8' })
      .trim().split(' ').map(Number);
    return [c, dstCpu(), src];
  };
  const cpuSince = (a) => cpu().map((x, i) => x - a[i]);
  const sync = async (id) => {
    const tSent = Date.now();
    const r = await api('POST', `/api/data-sources/${id}/sync`);
    const tAnswered = Date.now();
    if (r.status !== 202) throw new Error(r.text);
    // waited for in ONE database session: a psql per poll would be a new
    // backend each time, counted in the cluster's CPU
    const logId = h.lit(r.json.sync_log_id);
    await bench.sql(`do $$ begin loop
      exit when (select status from public.sync_logs where id = ${logId}) <> 'running';
      perform pg_sleep(0.05); end loop; end $$`);
    // total: from the request (the job's created_at, in the request's
    // transaction) to the finished sync_logs row, so a job that waits for a
    // poll interval, or a slow claim, counts
    const out = await bench.sql(`select json_build_object('status', l.status, 'secs', extract(epoch from l.completed_at - l.started_at),
      'total', extract(epoch from l.completed_at - j.created_at),
      'imported', l.records_imported, 'read', l.metadata -> 'progress' -> 'rows_read', 'err', l.error_message,
      'created_ms', extract(epoch from j.created_at) * 1000, 'claimed_ms', extract(epoch from j.started_at) * 1000,
      'begun_ms', extract(epoch from l.started_at) * 1000, 'completed_ms', extract(epoch from l.completed_at) * 1000)
      from public.sync_logs l left join jobs.jobs j on j.id = (l.metadata ->> 'job_id')::bigint where l.id = ${logId}`);
    const o = JSON.parse(out);
    const { status, secs, total, imported, read, err } = o;
    if (status !== 'success') throw new Error(`sync ${status}: ${err}`);
    // the timeline, ms after the request was sent: the request's transaction
    // began (jobs.created_at), the HTTP answer, the claim's transaction began
    // (jobs.started_at), import_begin_run's began (sync_logs.started_at), done
    const at = (x) => (x == null ? null : Math.round(Number(x) - tSent));
    const timeline = { created: at(o.created_ms), answered: tAnswered - tSent, claimed: at(o.claimed_ms),
      begun: at(o.begun_ms), completed: at(o.completed_ms) };
    return { secs: Number(total ?? secs), run: Number(secs), imported: Number(imported), read: Number(read), timeline };
  };

  log('full sync (campaignd)');
  const fullId = await create('bench full');
  let c0 = cpu();
  const full = await sync(fullId);
  const fullCpu = cpuSince(c0);
  log(`full: ${full.secs}s, ${full.imported} rows`);

  log('psql \\copy | psql \\copy');
  const dst = await h.dbUrl(server);
  execFileSync('psql', ['-X', '-q', dst, '-c', 'create table public.bench_plain (id integer, email text, first_name text, score integer, amount numeric(10,2), active boolean, signed_up date, updated_at timestamptz)']);
  c0 = cpu();
  const t0 = process.hrtime.bigint();
  const pipe = spawnSync('python3', [path.join(h.ROOT, 'bench', 'cputime.py'), '--run', 'bash', '-o', 'pipefail', '-c',
    `psql -X -q "$SRC" -c "\\copy (select * from public.leads) to stdout" | psql -X -q "$DST" -c "\\copy public.bench_plain from stdin"`],
  { env: { ...process.env, SRC: pg.url('reader', 'reader-pw'), DST: dst }, encoding: 'utf8' });
  const copySecs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (pipe.status !== 0) throw new Error(`psql pipe: ${pipe.stderr}`);
  const copyCpu = cpuSince(c0);
  copyCpu[0] = Number(/cpu_s=([0-9.]+)/.exec(pipe.stderr)[1]); // the two psql processes, not campaignd
  log(`psql: ${copySecs}s`);

  log('incremental: first (full) sync, 1000 changes, second sync');
  const inc = await create('bench incremental', {
    column_config: { duplicate_key_columns: ['id_col'] },
    schedule_config: { incremental_strategy: 'incremental', incremental_column: 'updated_at' },
  });
  c0 = cpu();
  const first = await sync(inc);
  const firstCpu = cpuSince(c0);
  // BENCH_RESYNC_RUNS re-syncs (default 11: a median of 5 moved with one slow
  // sample), each after 1,000 other rows changed
  // at the source (past every earlier value of updated_at); the median is the
  // figure (one re-sync is well under a second: a single one is at the mercy of
  // whatever else the machine does in that second).
  const resyncs = [];
  const runs = Math.max(1, Number(process.env.BENCH_RESYNC_RUNS || 11));
  const lsn = async () => bench.sql('select pg_current_wal_lsn()');
  // A user's re-sync comes long after the source's first sync, when autovacuum
  // has long done the 1M-row tables that sync (and the ones before it) wrote.
  // Here it would start in the middle of a re-sync (it wakes up every
  // autovacuum_naptime, so waiting for a running worker is not enough): do its
  // work now, outside the measured windows. Re-syncs still carry what they
  // leave themselves (the pruning of the rows the one before replaced).
  log('vacuum (analyze) of the destination: what autovacuum does after the big syncs');
  await bench.sql('vacuum (analyze)');
  // ... and long after the kernel has written the full syncs' gigabytes out:
  // right after them, a re-sync's commits (each an fdatasync of the WAL) queued
  // behind that writeback for 100-200 ms (session 8's trace). A checkpoint
  // writes and syncs it all now. Its cost stays in the figure where a real
  // re-sync pays it too: the first change of each page after a checkpoint
  // logs the whole page (full-page images, counted below).
  log('checkpoint: the full syncs written out to disk, as long before a real re-sync');
  await bench.sql('checkpoint');
  // the full-page images in a WAL range (pg_waldump --stats): after a checkpoint
  // the first change of each page logs the whole page; null when unreadable
  const walFpi = (from, to) => {
    const r = spawnSync(path.join(h.PG_BIN, 'pg_waldump'), ['-p', path.join(server.dataDir, 'pg', 'pg_wal'), '-s', from, '-e', to, '--stats'],
      { encoding: 'utf8' });
    const m = /Total\s+(\d+)\s+(\d+)\s+\[[^\]]*\]\s+(\d+)/.exec(r.stdout || '');
    // commit records: the transactions that wrote (each a WAL flush)
    const c = /^Transaction\s+(\d+)/m.exec(r.stdout || '');
    return m ? { records: Number(m[1]), fpi: Number(m[3]), commits: c ? Number(c[1]) : null } : null;
  };
  // BENCH_WAL_COMPRESSION=lz4 (or pglz, zstd, off): the destination's
  // wal_compression for the re-syncs (full-page images compressed)
  if (process.env.BENCH_WAL_COMPRESSION) {
    await bench.sql(`alter system set wal_compression = '${process.env.BENCH_WAL_COMPRESSION.replace(/[^a-z0-9]/g, '')}'`);
    await bench.sql('select pg_reload_conf()');
    log(`wal_compression = ${await bench.sql('show wal_compression')}`);
  }
  // BENCH_RESYNC_TRACE=1: every statement of the destination with its end
  // time, duration and application in the cluster's log (pg_ctl.log under
  // the server's data dir), to follow a re-sync from the request to the end
  if (process.env.BENCH_RESYNC_TRACE === '1') {
    await bench.sql("alter system set log_min_duration_statement = 0");
    await bench.sql("alter system set log_line_prefix = '%m [%p] %a: '");
    await bench.sql("alter system set track_functions = 'all'");
    // lock waits longer than 20 ms, and every checkpoint and autovacuum, with
    // their times: the waits a slow re-sync may sit behind
    await bench.sql("alter system set log_lock_waits = on");
    await bench.sql("alter system set deadlock_timeout = '20ms'");
    await bench.sql("alter system set log_checkpoints = on");
    await bench.sql("alter system set log_autovacuum_min_duration = 0");
    await bench.sql('select pg_reload_conf()');
    // the source's side of a re-sync too (session settings, describe, COPY),
    // with the same prefix, in the log under the source cluster's directory
    await pg.psql('alter system set log_min_duration_statement = 0');
    await pg.psql("alter system set log_line_prefix = '%m [%p] %a: '");
    await pg.psql('select pg_reload_conf()');
    log(`tracing statements into the log under ${server.dataDir} and ${pg.dir}`);
  }
  for (let i = 1; i <= runs; i++) {
    await pg.psql(`update public.leads set updated_at = timestamptz '2040-01-01' + ${i} * interval '1 day' + id * interval '1 ms',
                   email = 'changed' || ${i} || '-' || id || '@example.com'
                   where id in (select g * ${Math.floor(rows / 1000)} - ${i - 1} from generate_series(1, 1000) g)`);
    // A user's re-sync comes long after the first sync, when autovacuum has
    // done the tables that sync wrote; here it would run during the re-syncs
    // (a vacuum of 1M-row tables: seconds of CPU on 2 CPUs), so wait for it
    // (at most BENCH_AUTOVACUUM_WAIT seconds, default 120).
    await bench.sql(`do $$ begin for i in 1..${Number(process.env.BENCH_AUTOVACUUM_WAIT || 120) * 5} loop
      exit when not exists (select 1 from pg_stat_activity where backend_type = 'autovacuum worker');
      perform pg_sleep(0.2); end loop; end $$`);
    const waited = await bench.sql("select count(*) from pg_stat_activity where backend_type = 'autovacuum worker'");
    if (waited !== '0') log(`re-sync ${i}: autovacuum still running`);
    // BENCH_RESYNC_CHECKPOINT=1: a checkpoint of the destination before each
    // re-sync (outside its window), as for a real re-sync that comes more than
    // checkpoint_timeout (5 min) after the last one: its first change of each
    // page logs the whole page (full-page images)
    if (process.env.BENCH_RESYNC_CHECKPOINT === '1') await bench.sql('checkpoint');
    const l0 = await lsn();
    c0 = cpu();
    const one = await sync(inc);
    one.cpu = cpuSince(c0);
    const l1 = await lsn();
    one.wal = Number(await bench.sql(`select pg_wal_lsn_diff('${l1}', '${l0}')`));
    one.fpi = walFpi(l0, l1);
    resyncs.push(one);
    log(`re-sync ${i}: ${one.secs}s from the request (${one.run}s from the job's start; ${one.read} rows read), CPU ${one.cpu.map((x) => x.toFixed(3)).join(' / ')} s, WAL ${one.wal} bytes` +
      (one.fpi ? ` (${one.fpi.records} records, full-page images ${one.fpi.fpi} bytes, ${one.fpi.commits} transaction records)` : ''));
    const t = one.timeline;
    log(`re-sync ${i} timeline, ms after the request was sent: its transaction began ${t.created}, answered ${t.answered}, claim began ${t.claimed}, import_begin_run began ${t.begun}, finished ${t.completed}`);
  }
  if (process.env.BENCH_RESYNC_TRACE === '1') {
    const top = await bench.sql(`select string_agg(format('%s.%s calls %s self %s ms total %s ms', schemaname, funcname, calls,
        round(self_time::numeric, 1), round(total_time::numeric, 1)), E'\n' order by self_time desc)
      from (select * from pg_stat_user_functions order by self_time desc limit 30) f`);
    log(`functions by self time (the whole bench, track_functions = all from the re-syncs on):\n${top}`);
  }
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor((a.length - 1) / 2)];
  const second = { secs: median(resyncs.map((x) => x.secs)), run: median(resyncs.map((x) => x.run)), read: median(resyncs.map((x) => x.read)) };
  const secondCpu = [0, 1, 2].map((k) => median(resyncs.map((x) => x.cpu[k])));
  const secondWal = median(resyncs.map((x) => x.wal));
  log(`incremental: first ${first.secs}s, re-sync (median of ${runs}) ${second.secs}s (${second.read} rows read)`);
  log(`re-sync / full sync: ${((100 * second.secs) / full.secs).toFixed(2)} % (goal < 2 %)`);

  const rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim() ? ' (with uncommitted changes)' : '';
  const model = (os.cpus()[0] || {}).model || '?';
  const f = (x) => x.toFixed(2);
  const m = rows / 1e6;
  const sum = (a) => a.reduce((x, y) => x + y, 0);
  const perM = (a) => `${a.map((x) => f(x / m)).join(' + ')} = ${f(sum(a) / m)}`;
  const lines = [
    '',
    '## Database connector: PostgreSQL → dedicated table, 1,000,000 rows; incremental re-sync (issue 11)',
    '',
    `- Command: \`CAMPAIGND_BIN=${process.env.CAMPAIGND_BIN || h.BIN} nice node bench/connectors/run.mjs\` (BENCH_DB_ROWS=${rows}${['BENCH_RESYNC_CHECKPOINT', 'BENCH_WAL_COMPRESSION'].filter((k) => process.env[k]).map((k) => `, ${k}=${process.env[k]}`).join('')}), ${new Date().toISOString().slice(0, 19)}Z`,
    `- Machine: ${os.cpus().length} CPUs (${model.trim()}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB memory, other work running: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} load`,
    `- campaignd ${rev}${dirty}; source: a second PostgreSQL 15 cluster on 127.0.0.1 (8 columns: integer key, text ×2, integer, numeric, boolean, date, timestamptz; index on updated_at)`,
    '',
    '| measure | value |',
    '| --- | ---: |',
    `| campaignd full sync (COPY TO STDOUT → CSV reader → types → COPY → index → swap), s | ${f(full.secs)} |`,
    `| rows imported | ${full.imported} |`,
    `| \`psql \\copy (select …) to stdout \\| psql \\copy … from stdin\`, same two clusters, s | ${f(copySecs)} |`,
    `| **ratio psql / campaignd** (goal ≥ 0.5) | **${f(copySecs / full.secs)}** |`,
    `| incremental source, first sync (reads all, builds the key index), s | ${f(first.secs)} |`,
    `| incremental re-sync after 1,000 changed rows, request → finished sync_logs row, median of ${runs} (rows read: ${second.read}), s | ${second.secs.toFixed(3)} (each: ${resyncs.map((x) => x.secs.toFixed(3)).join(', ')}) |`,
    `| the same, from the job's start (sync_logs.started_at), s | ${second.run.toFixed(3)} (each: ${resyncs.map((x) => x.run.toFixed(3)).join(', ')}) |`,
    `| re-sync timeline, ms after the request was sent (median of each step): request's transaction begins / HTTP answer / claim begins / import_begin_run begins / finished | ${['created', 'answered', 'claimed', 'begun', 'completed'].map((k) => median(resyncs.map((x) => x.timeline[k] ?? NaN))).join(' / ')} |`,
    `| request's transaction begins → claim begins, ms (each: where the slow re-syncs lose their time) | ${resyncs.map((x) => x.timeline.claimed - x.timeline.created).join(', ')} |`,
    `| **re-sync / full sync** (goal < 2 %) | **${((100 * second.secs) / full.secs).toFixed(2)} %** (vs the incremental source's own first sync: ${((100 * second.secs) / first.secs).toFixed(2)} %) |`,
  ];
  lines.push(
    `| CPU s per million rows, full sync: campaignd + destination cluster + source cluster | ${perM(fullCpu)} |`,
    `| CPU s per million rows, psql pipe: the two psql + destination cluster + source cluster | ${perM(copyCpu)} |`,
    `| **ratio of CPU, psql pipe / full sync** (load-robust) | **${f(sum(copyCpu) / sum(fullCpu))}** |`,
    `| CPU s, incremental first sync / re-sync (campaignd + both clusters; re-sync: medians) | ${f(sum(firstCpu))} / ${secondCpu.map((x) => x.toFixed(3)).join(' + ')} (${((100 * sum(secondCpu)) / sum(fullCpu)).toFixed(2)} % of the full sync's) |`,
    `| WAL written by the destination per re-sync (median), bytes | ${secondWal} |`,
    `| of which full-page images, bytes (each re-sync; pg_waldump --stats) | ${resyncs.map((x) => (x.fpi ? `${x.fpi.fpi} of ${x.fpi.records} records` : '?')).join(', ')} |`,
    `| transaction (commit) records in the destination's WAL per re-sync (each) | ${resyncs.map((x) => (x.fpi ? x.fpi.commits : '?')).join(', ')} |`,
    `| load average (1/5/15 min) at the end | ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} |`,
  );
  fs.appendFileSync(results, lines.join('\n') + '\n');
  log(`appended to ${results}`);
  console.log(lines.join('\n'));
} finally {
  if (bench) bench.close();
  if (server) await server.stop();
  await pg.stop();
}
