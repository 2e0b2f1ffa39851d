// SMS campaign throughput against the local Twilio-shaped server
// (tests/integration/fake-twilio.js), issue 12 "Speed":
//
//   1. a minimal client (bench/send/sms_client.mjs: node:http with
//      keep-alive, in a process of its own) posts N create-Message requests,
//      the very parameters campaignd sends (To, From, Body with the opt-out
//      line of a first message, StatusCallback) with the same auth, over the
//      same number of connections: that server's ceiling on this machine;
//   2. campaignd sends an N-recipient SMS campaign (SEND_WORKERS jobs, each
//      one kept connection to the fake) and we time it from
//      POST /api/campaigns/:id/send until the fake has received every message;
//   3. the minimal client again, same server, same requests.
// The ratio is campaignd's rate over the higher of the two ceilings (a
// reading that stalled is not the ceiling; until session 13 it was over
// their mean); both are printed with their spread (the ceiling moves with the machine's load: one
// reading alone made the ratio move by half between two quiet runs).
//
// Prints both rates, their ratio, campaignd's RSS (start, peak, end), the
// CPU time (user + system) of campaignd and of its PostgreSQL backends per
// message (bench/send/cpu.mjs: what a shared machine's load distorts far
// less than the wall clock), the run-queue waits per message of the fake,
// campaignd and PostgreSQL (cpu.mjs), the fake's own CPU per request in
// each phase, the minimal client's own CPU per request (what campaignd +
// PostgreSQL per SMS compare with), and the load average, as one JSON line.
// Run once, by hand: CAMPAIGND_BIN=build/campaignd node bench/send/sms.mjs
// (N=10000 by default; status callbacks are off on the server's side).
// BENCH_SEND_BATCH: the engine's SEND_BATCH_SIZE (default: the engine's own,
// what a user gets).
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, freePort, signUpUser, sql, lit, request } from '../../tests/integration/helpers.js';
import { startFakeTwilio } from '../../tests/integration/fake-twilio.js';
import { cpuSeconds, processCpuSeconds, usPerMessage, workCounters, workPerMessage, settleStats, workerClock, runQueueWaits, waitPerMessage } from './cpu.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const N = Number(process.env.N || 10000);
const WORKERS = Number(process.env.SEND_WORKERS || 2);
const SID = 'AC' + 'b'.repeat(32);
const TOKEN = 'bench-token';
const FROM = '+15550009999';

// BENCH_SEND_ACCOUNT=1: track_functions = all, and the functions' calls and
// time and the tables' rows per message in the output; no minimal client.
const ACCOUNT = Boolean(process.env.BENCH_SEND_ACCOUNT);
// BENCH_SEND_NO_CEILING=1: campaignd's side only (CPU and work per message).
const NO_CEILING = Boolean(process.env.BENCH_SEND_NO_CEILING);
// BENCH_SEND_AFTER_SEND=1: a send after a send, as on a server that has sent
// before (the case of migration 080): an untimed first campaign to the same N
// numbers, `vacuum sending.holds` once it is sent (what an autovacuum does
// after a send), then the timed one. campaignd's side only (no minimal client:
// the second message to a number carries no opt-out line).
const AFTER_SEND = Boolean(process.env.BENCH_SEND_AFTER_SEND);

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
const phone = (g) => '+1555' + String(g).padStart(7, '0');

// The parameters campaignd sends to recipient g, message id (checked against
// what the fake received from it below).
const params = (g, callback, id = crypto.randomUUID()) => ({
  To: phone(g), From: FROM, Body: `Hi C${g}, this is the spring offer\nReply STOP to opt out`, StatusCallback: `${callback}?m=${id}`,
});

// Runs the minimal client in its own process (asynchronously: this process's
// event loop serves the fake Twilio meanwhile); resolves its wall time in s.
function minimalClient(url, callback) {
  const list = path.join(os.tmpdir(), `sms-replay-${process.pid}.json`);
  fs.writeFileSync(list, JSON.stringify(Array.from({ length: N }, (_, i) => params(i + 1, callback))));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(here, 'sms_client.mjs'), url, SID, TOKEN, list, String(WORKERS)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => {
      fs.rmSync(list, { force: true });
      const m = /SECONDS ([0-9.]+) CPU_US ([0-9]+)/.exec(out);
      if (code === 0 && m) resolve({ seconds: Number(m[1]), cpuUs: Number(m[2]) });
      else reject(new Error(`minimal client exited with ${code}`));
    });
  });
}

const twilio = await startFakeTwilio({ accountSid: SID, authToken: TOKEN, callbacks: [] });
const port = String(await freePort());
const server = await startServer({
  PORT: port, API_EXTERNAL_URL: `http://127.0.0.1:${port}`, TWILIO_ACCOUNT_SID: SID, TWILIO_AUTH_TOKEN: TOKEN,
  TWILIO_API_BASE: twilio.url, TWILIO_FROM: FROM, SMS_RATE_PER_SECOND: '0', SEND_WORKERS: String(WORKERS),
  ...(process.env.BENCH_SEND_BATCH ? { SEND_BATCH_SIZE: process.env.BENCH_SEND_BATCH } : {}), JOB_POLL_INTERVAL: '1', DB_STATEMENT_TIMEOUT: '300000',
  // info: each send worker logs where its time went (workerClock)
  LOG_LEVEL: 'info',
  ...(process.env.BENCH_SEND_IN_FLIGHT ? { SEND_IN_FLIGHT: process.env.BENCH_SEND_IN_FLIGHT } : {}),
});
try {
  const owner = await signUpUser(server);
  // a time zone where it is 13:00 now, so quiet hours do not hold messages back
  const off = ((13 - new Date().getUTCHours() + 36) % 24) - 12;
  const tz = off === 0 ? 'UTC' : `Etc/GMT${off > 0 ? '-' : '+'}${Math.abs(off)}`;
  await sql(server, `update public.app_settings set timezone = ${lit(tz)}, monthly_sms_limit = ${N * (AFTER_SEND ? 4 : 2)};
    insert into public.contacts (user_id, phone, first_name)
      select ${lit(owner.user.id)}, '+1555' || lpad(g::text, 7, '0'), 'C' || g from generate_series(1, ${N}) g;
    insert into public.sms_consent (phone_number, consent_given, consent_source)
      select '+1555' || lpad(g::text, 7, '0'), true, 'import' from generate_series(1, ${N}) g;`);
  const id = (await sql(server, `insert into public.campaigns (user_id, name, type, content)
    values (${lit(owner.user.id)}, 'bench', 'sms', 'Hi {{first_name}}, this is the spring offer') returning id`)).split('\n')[0];
  const pid = server.process.pid;
  let holdsAfterFirst;
  if (AFTER_SEND) {
    const first = (await sql(server, `insert into public.campaigns (user_id, name, type, content)
      values (${lit(owner.user.id)}, 'first', 'sms', 'Hi {{first_name}}, this is the spring offer') returning id`)).split('\n')[0];
    const base0 = twilio.messages.length;
    const r0 = await request(`${server.url}/api/campaigns/${first}/send`, { method: 'POST', headers: { apikey: server.anonKey, Authorization: `Bearer ${owner.session.access_token}` } });
    if (r0.status >= 300) throw new Error(`first send: ${r0.status} ${r0.text}`);
    // the first campaign must end 'sent' (every message handed over, its last
    // results settled); any other end, or none within a minute plus 1 ms per
    // message, stops the bench with what it saw
    for (const deadline = Date.now() + 60000 + N; ;) {
      const st = await sql(server, `select status from public.campaigns where id = ${lit(first)}`);
      if (st === 'sent' && twilio.messages.length >= base0 + N) break;
      if (['failed', 'cancelled', 'paused'].includes(st) || Date.now() > deadline) {
        throw new Error(`the first send ended '${st}' with ${twilio.messages.length - base0} of ${N} messages received, `
          + `not 'sent' with all (see ${server.dataDir}/server-*.log)`);
      }
      await new Promise((res) => setTimeout(res, 200));
    }
    await sql(server, 'vacuum sending.holds');
    holdsAfterFirst = await sql(server, `select relpages from pg_class where oid = 'sending.holds'::regclass`);
  }
  const callback = `http://127.0.0.1:${port}/webhooks/twilio/status`; // campaignd's (API_EXTERNAL_URL)
  if (ACCOUNT) { // each function's calls and time, each table's rows (as account.mjs)
    await sql(server, `alter system set track_functions = 'all'`);
    await sql(server, 'select pg_reload_conf()');
    await settleStats();
    await sql(server, 'select pg_stat_reset()');
  }
  const noClient = ACCOUNT || NO_CEILING || AFTER_SEND;
  await settleStats(); // the setup's tail (contacts, consent rows) settles, as before campaignd's send
  // the fake's run-queue wait per request while the minimal client runs
  // (the untimed warm-up's 1,000 requests included)
  const fakeWait = [];
  // The fake's CPU per request (this process's: the fake, plus the bench's
  // own look at its count every 100 ms during campaignd's send), during
  // campaignd's send and each minimal-client run: the provider's side of the
  // budget, and a sign of a minute in which the machine itself ran slow (the
  // same server needing much more CPU per request in one phase).
  const fakeCpu = { campaignd_send: null, minimal_client: [] };
  const clientCpu = []; // the minimal client's own CPU per request, each run
  const cpuOfThis = () => processCpuSeconds(process.pid) * 1e6; // µs
  const timedClient = async () => {
    const w0 = runQueueWaits({ fake: process.pid });
    const c0 = cpuOfThis();
    const { seconds: s, cpuUs } = await minimalClient(twilio.url, callback);
    clientCpu.push(Math.round(cpuUs / N));
    const sent = N + Math.min(N, 1000);
    fakeCpu.minimal_client.push(Math.round((cpuOfThis() - c0) / sent));
    fakeWait.push(waitPerMessage(w0, runQueueWaits({ fake: process.pid }), sent).fake);
    return s;
  };
  const before = noClient ? NaN : await timedClient();
  const base = twilio.messages.length;
  const logStart = server.log().length; // the worker clock of this send only
  await settleStats();
  const work0 = await workCounters(sql, server);
  const rssStart = rss(pid);
  let rssPeak = rssStart;
  const cpu0 = cpuSeconds(pid, server.dataDir);
  const wait0 = runQueueWaits({ fake: process.pid, campaignd: pid }, server.dataDir);
  const fake0 = cpuOfThis();
  const t0 = process.hrtime.bigint();
  const r = await request(`${server.url}/api/campaigns/${id}/send`, { method: 'POST', headers: { apikey: server.anonKey, Authorization: `Bearer ${owner.session.access_token}` } });
  if (r.status >= 300) throw new Error(`send: ${r.status} ${r.text}`);
  // the first message's arrival looked for every 2 ms, the last one's every 100 ms
  let first = null;
  while (twilio.messages.length < base + N) {
    await new Promise((res) => setTimeout(res, first === null ? 2 : 100));
    if (first === null && twilio.messages.length > base) first = Number(process.hrtime.bigint() - t0) / 1e9;
    rssPeak = Math.max(rssPeak, rss(pid));
  }
  const engine = Number(process.hrtime.bigint() - t0) / 1e9;
  fakeCpu.campaignd_send = Math.round((cpuOfThis() - fake0) / N);
  const cpu = usPerMessage(cpu0, cpuSeconds(pid, server.dataDir), N);
  const waits = waitPerMessage(wait0, runQueueWaits({ fake: process.pid, campaignd: pid }, server.dataDir), N);
  const load = os.loadavg()[0];
  const rssEnd = rss(pid);
  await settleStats();
  const work = workPerMessage(work0, await workCounters(sql, server), N);
  // counted before the minimal client adds its own requests to the same server
  const mine = twilio.messages.slice(base, base + N);
  const duplicates = mine.length - new Set(mine.map((m) => m.params.To)).size;
  // the minimal client's requests are campaignd's (same parameters, same order of keys)
  const sample = mine.find((m) => m.params.To === phone(1));
  const mid = sample && new URL(sample.params.StatusCallback).searchParams.get('m');
  if (!AFTER_SEND && (!sample || JSON.stringify(sample.params) !== JSON.stringify(params(1, callback, mid)))) {
    throw new Error(`the minimal client's requests differ from campaignd's: ${JSON.stringify(sample && sample.params)}`);
  }
  const clock = await workerClock(server, N, 15000, logStart);
  const account = ACCOUNT ? await functionsAndTables(server) : undefined;
  const after = noClient ? NaN : await timedClient();
  const rates = [N / before, N / after];
  const mean = (rates[0] + rates[1]) / 2;
  const ceiling = Math.max(rates[0], rates[1]); // a reading that stalled is not the ceiling
  console.log(JSON.stringify({
    n: N, connections: WORKERS,
    campaignd_sms_per_s: +(N / engine).toFixed(1), minimal_client_sms_per_s: +ceiling.toFixed(1),
    minimal_client_before_after: rates.map((r) => +r.toFixed(1)),
    minimal_client_spread_pct: +((100 * Math.abs(rates[0] - rates[1])) / mean).toFixed(1),
    ratio: +((N / engine) / ceiling).toFixed(2), first_message_s: first && +first.toFixed(3), cpu_us_per_msg: cpu, load_average: +load.toFixed(1), work_per_msg: work,
    fake_cpu_us_per_msg: fakeCpu, minimal_client_cpu_us_per_msg: clientCpu,
    runqueue_wait_us_per_msg: { campaignd_send: waits, fake_minimal_client: fakeWait },
    worker_clock: clock, rss_kib: { start: rssStart, peak: rssPeak, end: rssEnd },
    duplicates, account,
    ...(AFTER_SEND ? { holds_pages_after_first_send: Number(holdsAfterFirst) } : {}),
  }));
} finally {
  await server.stop();
  await twilio.stop();
}
