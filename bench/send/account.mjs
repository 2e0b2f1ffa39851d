// Accounting of the database's work per message during an e-mail send
// (bench/RESULTS.md "send-sql"): the same campaign as bench/send/run.mjs
// (BENCH_SEND_RECIPIENTS, default 3,000, to the SMTP sink; no minimal
// client), with track_functions = all. Prints, per message: the cluster's
// CPU and work (cpu.mjs), the PL/pgSQL functions' calls and self/total time
// (pg_stat_user_functions), the cluster's CPU by process title, and the rows each table got inserted / updated /
// deleted, catalogs included (pg_stat_all_tables). BENCH_SEND_PERF=<file>:
// also `perf record -g` of the engine's backends for BENCH_SEND_PERF_SECONDS
// (default 8) from the start of the send. BENCH_SEND_IN_FLIGHT: the
// engine's SEND_IN_FLIGHT (default 4). BENCH_SEND_EXPLAIN=1: auto_explain
// logs every statement's plan into the cluster's postgres.log. Run nice'd:
//   CAMPAIGND_BIN=$PWD/build/campaignd CAMPAIGND_TEST_TMP=$(mktemp -d) nice node bench/send/account.mjs
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { startServer, client, signIn, request, uniqueEmail, sql, lit, sleep, freePort, PASSWORD } from '../../tests/integration/helpers.js';
import { startSmtpSink } from '../../tests/integration/mail-sink.js';
import { cpuSeconds, usPerMessage, workCounters, workPerMessage, settleStats } from './cpu.mjs';

// CPU ticks of each child of the postmaster by its title ("postgres:
// autovacuum worker", "postgres: authenticator campaignd [local] idle" ...),
// and of the children that already exited (the postmaster's cutime+cstime).
function clusterTicks(dataDir) {
  const pm = Number(fs.readFileSync(`${dataDir}/pg/postmaster.pid`, 'utf8').split('\n')[0]);
  const field = (pid) => fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const out = { exited: 0, byPid: {} };
  const f = field(pm);
  out.exited = Number(f[13]) + Number(f[14]);
  out.byPid[pm] = { title: 'postmaster', ticks: Number(f[11]) + Number(f[12]) };
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const g = field(d);
      if (Number(g[1]) !== pm) continue;
      const title = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ')
        .replace(/\[local\].*|\d+\.\d+\.\d+\.\d+.*/, '').trim();
      out.byPid[d] = { title, ticks: Number(g[11]) + Number(g[12]) };
    } catch { /* gone */ }
  }
  return out;
}

/** µs per message by process title between two clusterTicks readings. */
function clusterSplit(a, b, n) {
  const by = { 'exited children': (b.exited - a.exited) * 1e4 / n };
  for (const [pid, x] of Object.entries(b.byPid)) {
    const t = x.ticks - (a.byPid[pid] ? a.byPid[pid].ticks : 0);
    by[x.title] = (by[x.title] || 0) + (t * 1e4) / n;
  }
  for (const k of Object.keys(by)) by[k] = Math.round(by[k]);
  return by;
}

const N = Number(process.env.BENCH_SEND_RECIPIENTS || 3000);
const WORKERS = Number(process.env.BENCH_SEND_WORKERS || 2);
const PERF = process.env.BENCH_SEND_PERF || '';

const sink = await startSmtpSink();
const port = await freePort();
const server = await startServer({
  PORT: String(port),
  API_EXTERNAL_URL: `http://127.0.0.1:${port}`,
  SMTP_URL: sink.url,
  EMAIL_FROM: 'bench@example.org',
  EMAIL_RATE_PER_SECOND: '0',
  SEND_WORKERS: String(WORKERS),
  SEND_BATCH_SIZE: '50',
  SEND_IN_FLIGHT: process.env.BENCH_SEND_IN_FLIGHT || '4',
  JOB_WORKERS: String(WORKERS + 2),
  JOB_POLL_INTERVAL: '1',
  LOG_LEVEL: 'warn',
});
const out = {};
try {
  await sql(server, `alter system set track_functions = 'all'`);
  if (process.env.BENCH_SEND_EXPLAIN) { // every plan of the new sessions into postgres.log
    const pgdir = fs.existsSync(`${server.dataDir}/pg`) ? `${server.dataDir}/pg` : server.dataDir;
    fs.appendFileSync(`${pgdir}/postgresql.auto.conf`, "session_preload_libraries = 'auto_explain'\n"
      + 'auto_explain.log_min_duration = 0\nauto_explain.log_nested_statements = on\n');
  }
  await sql(server, 'select pg_reload_conf()');
  const service = client(server, server.serviceKey);
  const email = uniqueEmail('bench');
  await service.auth.admin.createUser({ email, password: PASSWORD, email_confirm: true, app_metadata: { role: 'user' } });
  const me = await signIn(server, email);
  await sql(server, `update public.app_settings set postal_address = '1 Bench Road', monthly_email_limit = 100000000`);
  await sql(server, `insert into public.contacts (user_id, email, first_name, attributes)
    select ${lit(me.user.id)}, 'r' || i || '@bench.example', 'R' || i, jsonb_build_object('company', 'Co ' || i)
    from generate_series(1, ${N}) i`);
  const { data: c } = await me.client.from('campaigns').insert({
    name: 'bench', type: 'email', subject: 'News for {{first_name}}',
    content: '<html><body><h1>Hello {{first_name | "there"}}</h1><p>News from {{contact.attributes.company}}.</p>'
      + '<p><a href="https://example.com/a">A</a> and <a href="https://example.com/b">B</a></p></body></html>',
  }).select().single();
  await settleStats();
  await sql(server, 'select pg_stat_reset()');
  await settleStats();
  const work0 = await workCounters(sql, server);
  const cpu0 = cpuSeconds(server.process.pid, server.dataDir);
  const split0 = clusterTicks(server.dataDir);
  const t0 = process.hrtime.bigint();
  const r = await request(`${server.url}/api/campaigns/${c.id}/send`, {
    method: 'POST', headers: { apikey: server.anonKey, Authorization: `Bearer ${me.session.access_token}` },
  });
  if (r.status !== 200) throw new Error(`send: ${r.status} ${r.text}`);
  let perf = null;
  if (PERF) {
    await sleep(1500); // the engine's connections are open by now
    const pids = (await sql(server, `select string_agg(pid::text, ',') from pg_stat_activity
      where usename = 'authenticator' or backend_type <> 'client backend'`)).trim();
    perf = spawn('perf', ['record', '-g', '-o', PERF, '-p', pids, '--', 'sleep',
      process.env.BENCH_SEND_PERF_SECONDS || '8'], { stdio: 'ignore' });
    perf.done = new Promise((res) => perf.on('exit', res));
  }
  const received = () => fs.readdirSync(sink.dir).filter((f) => f.endsWith('.json')).length;
  for (let k = 0; received() < N; k++) {
    if (k % 50 === 0) console.error(`received ${received()} of ${N}`);
    await sleep(100);
  }
  for (;;) {
    if ((await sql(server, `select status from public.campaigns where id = ${lit(c.id)}`)) === 'sent') break;
    await sleep(20);
  }
  out.seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  out.cpu_us_per_msg = usPerMessage(cpu0, cpuSeconds(server.process.pid, server.dataDir), N);
  out.postgres_us_per_msg_by_process = clusterSplit(split0, clusterTicks(server.dataDir), N);
  if (perf) await perf.done;
  await settleStats();
  out.work_per_msg = workPerMessage(work0, await workCounters(sql, server), N);
  out.functions = JSON.parse(await sql(server, `select coalesce(json_agg(x order by x.self_ms desc), '[]') from (
    select schemaname || '.' || funcname as fn, calls,
           round((self_time / ${N} * 1000)::numeric, 1) as self_us_per_msg,
           round((total_time / ${N} * 1000)::numeric, 1) as total_us_per_msg,
           round(self_time::numeric, 1) as self_ms
    from pg_stat_user_functions) x`));
  out.tables = JSON.parse(await sql(server, `select coalesce(json_agg(x order by x.n desc), '[]') from (
    select schemaname || '.' || relname as rel,
           round(n_tup_ins::numeric / ${N}, 3) as ins, round(n_tup_upd::numeric / ${N}, 3) as upd,
           round(n_tup_del::numeric / ${N}, 3) as del,
           round(n_tup_hot_upd::numeric / ${N}, 3) as hot,
           round(seq_tup_read::numeric / ${N}, 1) as seq_read_per_msg,
           round(coalesce(idx_tup_fetch, 0)::numeric / ${N}, 1) as idx_fetch_per_msg,
           n_tup_ins + n_tup_upd + n_tup_del + seq_tup_read / 100 + coalesce(idx_tup_fetch, 0) / 100 as n
    from pg_stat_all_tables
    where n_tup_ins + n_tup_upd + n_tup_del > 0 or seq_tup_read + coalesce(idx_tup_fetch, 0) > ${N}) x`));
} finally {
  await server.stop();
  await sink.stop();
}
console.log(JSON.stringify(out, null, 1));
