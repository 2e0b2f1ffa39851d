// Investigation helper (not part of make bench): one incremental source, its
// first sync, then BENCH_RESYNC_RUNS re-syncs of 1,000 changed rows each, with
// every statement of both clusters logged (log_min_duration_statement = 0) so
// the per-step times of a re-sync can be read from the server logs.
// Usage: CAMPAIGND_BIN=… BENCH_DB_ROWS=1000000 nice node bench/connectors/resync-probe.mjs
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import * as h from '../../tests/integration/helpers.js';
import * as dbs from '../../tests/integration/db-servers.js';

const rows = Number(process.env.BENCH_DB_ROWS || 1000000);
const runs = Number(process.env.BENCH_RESYNC_RUNS || 3);
const log = (m) => console.error(`${new Date().toISOString().slice(11, 23)} ${m}`);
const pg = await dbs.startPostgres({ prefix: 'cd-probe-srcpg-', settings: ['-c log_line_prefix=%m[%p]'] });
let server;
try {
  await pg.psql(`
    create role reader login password 'reader-pw';
    create table public.leads (id integer primary key, email text not null, first_name text,
      score integer, amount numeric(10,2), active boolean, signed_up date, updated_at timestamptz not null);
    insert into public.leads select g, 'user' || g || '@example.com', 'Name ' || (g % 977), g % 1000,
      (g % 10000) / 100.0, g % 3 = 0, date '2020-01-01' + (g % 1500),
      timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' from generate_series(1, ${rows}) g;
    create index leads_updated_at on public.leads (updated_at);
    grant select on public.leads to reader;`);
  await pg.psql('vacuum analyze public.leads');
  server = await h.startServer({ IMPORT_ALLOW_PRIVATE_NETWORKS: 'true', JOB_POLL_INTERVAL: '1', LOG_LEVEL: 'info' });
  const user = await h.signUpUser(server);
  const api = (method, p, body) =>
    h.request(`${server.url}${p}`, { method, headers: { apikey: server.anonKey, Authorization: `Bearer ${user.session.access_token}` }, body });
  const config = { host: '127.0.0.1', port: pg.port, database: 'postgres', schema: 'public', table: 'leads' };
  const { data, error } = await user.client.from('data_sources').insert({
    name: 'probe', type: 'postgres', config,
    column_config: { duplicate_key_columns: ['id_col'] },
    schedule_config: { incremental_strategy: 'incremental', incremental_column: 'updated_at' },
  }).select().single();
  h.noError(error, 'create');
  const r0 = await api('PUT', `/api/data-sources/${data.id}/credentials`, { user: 'reader', password: 'reader-pw' });
  if (r0.status !== 200) throw new Error(r0.text);
  const pmOf = (dir) => {
    const f = execFileSync('find', [dir, '-name', 'postmaster.pid'], { encoding: 'utf8' }).split('\n')[0];
    return fs.readFileSync(f, 'utf8').split('\n')[0].trim();
  };
  const pids = [String(server.process.pid), `tree:${pmOf(server.dataDir)}`, `tree:${pmOf(pg.dir)}`];
  const cpu = () => execFileSync('python3', [path.join(h.ROOT, 'bench', 'cputime.py'), ...pids], { encoding: 'utf8' }).trim().split(' ').map(Number);
  // per process of the destination cluster (bench/proccpu.py): which backend
  // does a re-sync's work
  const dstPm = pids[1].slice(5);
  const procs = () => JSON.parse(execFileSync('python3', [path.join(h.ROOT, 'bench', 'proccpu.py'), dstPm], { encoding: 'utf8' }));
  const procReport = async (a, b) => {
    const act = {};
    for (const line of (await h.sql(server, `select pid || '|' || backend_type || '|' || coalesce(application_name, '') || '|' ||
        coalesce(state, '') || '|' || left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 70) from pg_stat_activity`)).split('\n')) {
      const [pid, ...rest] = line.split('|');
      act[pid] = rest.join(' | ');
    }
    const rows = [];
    for (const [pid, [ms, t]] of Object.entries(b.procs)) {
      const d = ms - (a.procs[pid] ? a.procs[pid][0] : 0);
      if (d >= 0.05) rows.push([d, `${pid}${a.procs[pid] ? '' : ' (new)'} ${act[pid] || t}`]);
    }
    for (const [pid, [, t]] of Object.entries(a.procs)) if (!b.procs[pid]) rows.push([0, `${pid} (ended; CPU in reaped) ${t}`]);
    rows.push([b.reaped_ms - a.reaped_ms, 'backends that ended in the window (10 ms ticks)']);
    rows.sort((x, y) => y[0] - x[0]);
    return rows.map(([d, l]) => `    ${d.toFixed(1).padStart(8)} ms  ${l}`).join('\n');
  };
  const sync = async () => {
    const r = await api('POST', `/api/data-sources/${data.id}/sync`);
    if (r.status !== 202) throw new Error(r.text);
    const logId = h.lit(r.json.sync_log_id);
    await h.sql(server, `do $$ begin loop exit when (select status from public.sync_logs where id = ${logId}) <> 'running';
      perform pg_sleep(0.05); end loop; end $$`);
    const out = JSON.parse(await h.sql(server, `select json_build_object('status', status, 'secs', extract(epoch from completed_at - started_at),
      'read', metadata -> 'progress' -> 'rows_read', 'err', error_message) from public.sync_logs where id = ${logId}`));
    if (out.status !== 'success') throw new Error(`sync ${out.status}: ${out.err}`);
    return out;
  };
  let c0 = cpu();
  const first = await sync();
  log(`first sync ${first.secs}s cpu ${cpu().map((x, i) => (x - c0[i]).toFixed(2))}`);
  if (process.env.PROBE_LOG) {
    const qs = ["load 'auto_explain'", 'alter system set log_min_duration_statement = 0', "alter system set log_line_prefix = '%m[%p] '",
      "alter system set session_preload_libraries = 'auto_explain'", "alter system set auto_explain.log_min_duration = '5ms'",
      'alter system set auto_explain.log_nested_statements = on', 'alter system set auto_explain.log_analyze = on',
      'alter system set auto_explain.log_buffers = on', "alter system set track_functions = 'all'",
      'alter system set log_connections = on', 'select pg_reload_conf()'];
    const args = qs.flatMap((q) => ['-c', q]);
    for (const url of [await h.dbUrl(server), pg.url()]) {
      const r = await h.runCmd('psql', ['-X', '-q', url, ...args]);
      if (r.code !== 0) throw new Error(r.stderr);
    }
  }
  // PROBE_FUNCS=1: track_functions = all on the destination; each re-sync's
  // PL/pgSQL and SQL functions by self time (pg_stat_user_functions, reset
  // before the re-sync)
  if (process.env.PROBE_FUNCS) {
    await h.sql(server, "alter system set track_functions = 'all'");
    await h.sql(server, 'select pg_reload_conf()');
  }
  if (process.env.PROBE_QUIET) await new Promise((res) => setTimeout(res, Number(process.env.PROBE_QUIET) * 1000));
  for (let i = 1; i <= runs; i++) {
    const step = Math.floor(rows / 1000);
    await pg.psql(`update public.leads set updated_at = timestamptz '2040-01-01' + ${i} * interval '1 day' + id * interval '1 ms', email = 'changed${i}-' || id || '@example.com'
                   where id in (select g * ${step} - ${i} from generate_series(1, 1000) g)`);
    const l0 = await h.sql(server, 'select pg_current_wal_lsn()');
    if (process.env.PROBE_FUNCS) { // what the backends still hold from before is flushed first
      await new Promise((res) => setTimeout(res, 1500));
      await h.sql(server, 'select pg_stat_reset()');
    }
    const p0 = procs();
    c0 = cpu();
    const t0 = Date.now();
    const s = await sync();
    const p1 = procs();
    // the destination's WAL of the re-sync by record type, largest first
    const l1 = await h.sql(server, 'select pg_current_wal_lsn()');
    const wd = spawnSync(path.join(h.PG_BIN, 'pg_waldump'), ['-p', path.join(server.dataDir, 'pg', 'pg_wal'), '-s', l0, '-e', l1, '--stats=record'], { encoding: 'utf8' });
    const recs = (wd.stdout || '').split('\n').filter((x) => /^\S+\/\S+/.test(x))
      .map((x) => x.trim().split(/\s+/)).map((f) => [f[0], ...f.slice(1).filter((t) => /^\d+$/.test(t))])
      .map((f) => `${f[0]} n=${f[1]} bytes=${f[4]}${Number(f[3]) ? ` (fpi ${f[3]})` : ''}`);
    const combined = (x) => Number(/bytes=(\d+)/.exec(x)[1]);
    log(`re-sync ${i} WAL by record type: ${recs.sort((a, b) => combined(b) - combined(a)).slice(0, 10).join('; ')}`);
    const c = cpu().map((x, k) => x - c0[k]);
    if (process.env.PROBE_FUNCS) {
      await new Promise((res) => setTimeout(res, 1500)); // idle backends flush their counts within 1 s
      log(`re-sync ${i}: functions by self time (ms; calls; total ms):\n${await h.sql(server, `select string_agg(format('    %8s %6s %8s  %s.%s',
        round(self_time::numeric, 1), calls, round(total_time::numeric, 1), schemaname, funcname), E'\\n' order by self_time desc)
        from (select * from pg_stat_user_functions order by self_time desc limit 25) f`)}`);
    }
    log(`re-sync ${i}: destination CPU per process:\n${await procReport(p0, p1)}`);
    log(`re-sync ${i}: ${(s.secs * 1000).toFixed(1)} ms (${s.read} read), wall incl. queue ${Date.now() - t0} ms, cpu campaignd/dst/src ${c.map((x) => x.toFixed(3)).join(' / ')}`);
  }
  log(`logs: ${server.dataDir} ${pg.dir}/log`);
  // PROBE_KEEP=<dir>: copies both clusters' logs there before they are removed
  const keep = process.env.PROBE_KEEP;
  if (keep) {
    fs.mkdirSync(`${keep}/dst`, { recursive: true });
    fs.copyFileSync(`${pg.dir}/log`, `${keep}/src.log`);
    execFileSync('bash', ['-c', `find "$1" -name '*.log' -exec cp {} "$2/dst/" \\;`, '-', server.dataDir, keep]);
  }
} finally {
  if (server) await server.stop();
  await pg.stop();
}
