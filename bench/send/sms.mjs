// SMS campaign throughput against the local Twilio-shaped server
// (tests/integration/fake-twilio.js), issue 12 "Speed":
//
//   1. campaignd sends a 10,000-recipient SMS campaign (SEND_WORKERS jobs,
//      each one kept connection to the fake) and we time it from
//      POST /api/campaigns/:id/send until the fake has received every message;
//   2. a minimal client (node:http with keep-alive) posts the same number of
//      create-Message requests, same shape and auth, over the same number of
//      connections: that server's ceiling on this machine, in this run.
//
// Prints both rates, their ratio, campaignd's RSS (start, peak, end), the
// CPU time (user + system) of campaignd and of its PostgreSQL backends per
// message (bench/send/cpu.mjs: what a shared machine's load distorts far
// less than the wall clock) and the load average, as one JSON line.
// Run once, by hand: CAMPAIGND_BIN=build/campaignd node bench/send/sms.mjs
// (N=10000 by default; status callbacks are off on both sides).
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import { startServer, freePort, signUpUser, sql, lit, request } from '../../tests/integration/helpers.js';
import { startFakeTwilio } from '../../tests/integration/fake-twilio.js';
import { cpuSeconds, usPerMessage, workCounters, workPerMessage, settleStats, workerClock } from './cpu.mjs';

const N = Number(process.env.N || 10000);
const WORKERS = Number(process.env.SEND_WORKERS || 2);
const SID = 'AC' + 'b'.repeat(32);
const TOKEN = 'bench-token';

// BENCH_SEND_ACCOUNT=1: track_functions = all, and the functions' calls and
// time and the tables' rows per message in the output; no minimal client.
const ACCOUNT = Boolean(process.env.BENCH_SEND_ACCOUNT);
// BENCH_SEND_NO_CEILING=1: campaignd's side only (CPU and work per message).
const NO_CEILING = Boolean(process.env.BENCH_SEND_NO_CEILING);

async function functionsAndTables(server) {
  const functions = JSON.parse(await sql(server, `select coalesce(json_agg(x order by x.self_time desc), '[]') from (
    select schemaname || '.' || funcname as fn, calls,
           round((self_time / ${N} * 1000)::numeric, 1) as self_us_per_msg,
           round((total_time / ${N} * 1000)::numeric, 1) as total_us_per_msg, self_time
    from pg_stat_user_functions) x`));
  const tables = JSON.parse(await sql(server, `select coalesce(json_agg(x order by x.n desc), '[]') from (
    select schemaname || '.' || relname as rel,
           round(n_tup_ins::numeric / ${N}, 3) as ins, round(n_tup_upd::numeric / ${N}, 3) as upd,
           round(n_tup_del::numeric / ${N}, 3) as del, round(n_tup_hot_upd::numeric / ${N}, 3) as hot,
           round(seq_tup_read::numeric / ${N}, 1) as seq_read_per_msg,
           round(coalesce(idx_tup_fetch, 0)::numeric / ${N}, 1) as idx_fetch_per_msg,
           n_tup_ins + n_tup_upd + n_tup_del as n
    from pg_stat_all_tables where n_tup_ins + n_tup_upd + n_tup_del > 0) x`));
  return { functions, tables };
}

const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

async function minimalClient(url) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: WORKERS });
  const auth = 'Basic ' + Buffer.from(`${SID}:${TOKEN}`).toString('base64');
  const u = new URL(`${url}/2010-04-01/Accounts/${SID}/Messages.json`);
  let next = 0;
  const one = (i) => new Promise((resolve, reject) => {
    const body = new URLSearchParams({ To: `+1555${String(i).padStart(7, '0')}`, From: '+15550009999', Body: 'Hi there, this is the spring offer' }).toString();
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent,
      headers: { Authorization: auth, 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': Buffer.byteLength(body) } },
    (res) => { res.resume(); res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`)))); });
    req.on('error', reject);
    req.end(body);
  });
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: WORKERS }, async () => { while (next < N) await one(next++); }));
  agent.destroy();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const twilio = await startFakeTwilio({ accountSid: SID, authToken: TOKEN, callbacks: [] });
const port = String(await freePort());
const server = await startServer({
  PORT: port, API_EXTERNAL_URL: `http://127.0.0.1:${port}`, TWILIO_ACCOUNT_SID: SID, TWILIO_AUTH_TOKEN: TOKEN,
  TWILIO_API_BASE: twilio.url, TWILIO_FROM: '+15550009999', SMS_RATE_PER_SECOND: '0', SEND_WORKERS: String(WORKERS),
  SEND_BATCH_SIZE: '100', JOB_POLL_INTERVAL: '1', DB_STATEMENT_TIMEOUT: '300000',
  // info: each send worker logs where its time went (workerClock)
  LOG_LEVEL: 'info',
  ...(process.env.BENCH_SEND_IN_FLIGHT ? { SEND_IN_FLIGHT: process.env.BENCH_SEND_IN_FLIGHT } : {}),
});
try {
  const owner = await signUpUser(server);
  // a time zone where it is 13:00 now, so quiet hours do not hold messages back
  const off = ((13 - new Date().getUTCHours() + 36) % 24) - 12;
  const tz = off === 0 ? 'UTC' : `Etc/GMT${off > 0 ? '-' : '+'}${Math.abs(off)}`;
  await sql(server, `update public.app_settings set timezone = ${lit(tz)}, monthly_sms_limit = ${N * 2};
    insert into public.contacts (user_id, phone, first_name)
      select ${lit(owner.user.id)}, '+1555' || lpad(g::text, 7, '0'), 'C' || g from generate_series(1, ${N}) g;
    insert into public.sms_consent (phone_number, consent_given, consent_source)
      select '+1555' || lpad(g::text, 7, '0'), true, 'import' from generate_series(1, ${N}) g;`);
  const id = (await sql(server, `insert into public.campaigns (user_id, name, type, content)
    values (${lit(owner.user.id)}, 'bench', 'sms', 'Hi {{first_name}}, this is the spring offer') returning id`)).split('\n')[0];
  const pid = server.process.pid;
  if (ACCOUNT) { // each function's calls and time, each table's rows (as account.mjs)
    await sql(server, `alter system set track_functions = 'all'`);
    await sql(server, 'select pg_reload_conf()');
    await settleStats();
    await sql(server, 'select pg_stat_reset()');
  }
  await settleStats();
  const work0 = await workCounters(sql, server);
  const rssStart = rss(pid);
  let rssPeak = rssStart;
  const cpu0 = cpuSeconds(pid, server.dataDir);
  const t0 = process.hrtime.bigint();
  const r = await request(`${server.url}/api/campaigns/${id}/send`, { method: 'POST', headers: { apikey: server.anonKey, Authorization: `Bearer ${owner.session.access_token}` } });
  if (r.status >= 300) throw new Error(`send: ${r.status} ${r.text}`);
  while (twilio.messages.length < N) {
    await new Promise((res) => setTimeout(res, 100));
    rssPeak = Math.max(rssPeak, rss(pid));
  }
  const engine = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = usPerMessage(cpu0, cpuSeconds(pid, server.dataDir), N);
  const load = os.loadavg()[0];
  const rssEnd = rss(pid);
  await settleStats();
  const work = workPerMessage(work0, await workCounters(sql, server), N);
  // counted before the minimal client adds its own requests to the same server
  const duplicates = twilio.messages.length - new Set(twilio.messages.map((m) => m.params.To)).size;
  const clock = await workerClock(server, N);
  const account = ACCOUNT ? await functionsAndTables(server) : undefined;
  const ceiling = ACCOUNT || NO_CEILING ? NaN : await minimalClient(twilio.url);
  console.log(JSON.stringify({
    n: N, connections: WORKERS,
    campaignd_sms_per_s: +(N / engine).toFixed(1), minimal_client_sms_per_s: +(N / ceiling).toFixed(1),
    ratio: +((N / engine) / (N / ceiling)).toFixed(2), cpu_us_per_msg: cpu, load_average: +load.toFixed(1), work_per_msg: work,
    worker_clock: clock, rss_kib: { start: rssStart, peak: rssPeak, end: rssEnd },
    duplicates, account,
  }));
} finally {
  await server.stop();
  await twilio.stop();
}
