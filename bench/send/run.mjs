// Bench: a BENCH_SEND_RECIPIENTS (default 10,000) recipient e-mail campaign to
// the local SMTP sink (tests/integration/smtp-sink.py, aiosmtpd), against the
// sink's ceiling measured in the same run, on the same sink, by a minimal
// client (bench/send/minimal_client.py: Python on raw sockets, the commands
// pipelined when the sink advertises RFC 2920, as campaignd's sender does)
// sending the same messages over the same number of connections (SEND_WORKERS):
//   1. campaignd sends the campaign once, untimed: the messages it renders
//      (as the sink received them) are what the minimal client replays;
//   2. the minimal client replays them (the ceiling "before");
//   3. campaignd sends the same campaign content to the same recipients
//      again (a second campaign), timed;
//   4. the minimal client replays the same messages again ("after").
// The ratio is campaignd's rate over the higher of the two ceilings (a
// reading that stalled, as the Python sink's does now and then, is not the
// ceiling; until session 13 it was over their mean, which such a stall
// raised); both are printed with their spread (one reading alone moved by
// half between two quiet runs). Also the CPU time (user + system) of campaignd and of its
// PostgreSQL backends per message of the timed send (bench/send/cpu.mjs),
// which the load of a shared machine distorts far less than the wall clock,
// the run-queue waits per message (cpu.mjs: the sink's, campaignd's,
// PostgreSQL's), the sink's own CPU per message in each phase, the minimal
// client's own CPU per message (what campaignd + PostgreSQL per e-mail
// compare with) and the load average. Prints one JSON line (bench/run.sh's send_email part
// turns it into a table). Run once, nice'd:
//   CAMPAIGND_BIN=$PWD/build/campaignd nice node bench/send/run.mjs
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, client, signIn, request, uniqueEmail, sql, lit, sleep, freePort, PASSWORD } from '../../tests/integration/helpers.js';
import { startSmtpSink } from '../../tests/integration/mail-sink.js';
import { cpuSeconds, processCpuSeconds, usPerMessage, workCounters, workPerMessage, settleStats, workerClock, runQueueWaits, waitPerMessage } from './cpu.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const N = Number(process.env.BENCH_SEND_RECIPIENTS || 10000);
const WORKERS = Number(process.env.BENCH_SEND_WORKERS || 2);

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

const sink = await startSmtpSink();
const port = await freePort();
const server = await startServer({
  PORT: String(port),
  API_EXTERNAL_URL: `http://127.0.0.1:${port}`,
  SMTP_URL: sink.url,
  EMAIL_FROM: 'bench@example.org',
  EMAIL_RATE_PER_SECOND: '0',
  SEND_WORKERS: String(WORKERS),
  // BENCH_SEND_BATCH: the engine's SEND_BATCH_SIZE (messages claimed at
  // once; default: the engine's own, what a user gets)
  ...(process.env.BENCH_SEND_BATCH ? { SEND_BATCH_SIZE: process.env.BENCH_SEND_BATCH } : {}),
  JOB_WORKERS: String(WORKERS + 2),
  JOB_POLL_INTERVAL: '1',
  // info: each send worker logs where its time went (provider busy, waiting
  // for the database), read back below
  LOG_LEVEL: 'info',
  ...(process.env.BENCH_SEND_IN_FLIGHT ? { SEND_IN_FLIGHT: process.env.BENCH_SEND_IN_FLIGHT } : {}),
});
let engine;
let firstMessage;
let rss;
let cpu;
let load;
let work;
let clock;
let mine;
let replayed;
const ceilings = [];
// The sink's own CPU per message: during campaignd's timed send and during each replay.
const sinkCpu = { campaignd: 0, minimal_client: [] };
// The minimal client's own CPU per message, each replay (what campaignd +
// PostgreSQL per e-mail compare with).
const clientCpu = [];
// Run-queue waits per message (cpu.mjs): the sink's during each replay;
// the sink's, campaignd's and PostgreSQL's during campaignd's timed send.
const waits = { campaignd_send: null, sink_minimal_client: [] };
const timedReplay = (list) => {
  const c0 = processCpuSeconds(sink.pid);
  const w0 = runQueueWaits({ sink: sink.pid });
  const { seconds: s, cpuUs } = replay(list);
  clientCpu.push(Math.round(cpuUs / replayed.length));
  sinkCpu.minimal_client.push(Math.round(((processCpuSeconds(sink.pid) - c0) * 1e6) / replayed.length));
  waits.sink_minimal_client.push(waitPerMessage(w0, runQueueWaits({ sink: sink.pid }), replayed.length).sink);
  return s;
};
const jsonFiles = () => new Set(fs.readdirSync(sink.dir).filter((f) => f.endsWith('.json')));
// The minimal client replays the listed messages on the same sink: its wall
// time in s and its own CPU time in µs.
const replay = (list) => {
  const py = spawnSync('/usr/bin/python3', [path.join(here, 'minimal_client.py'), '127.0.0.1', String(sink.port), String(WORKERS), list], { encoding: 'utf8' });
  if (py.status !== 0) throw new Error(`minimal client: ${py.stderr}`);
  const m = /SECONDS ([0-9.]+) CPU_US ([0-9]+)/.exec(py.stdout);
  return { seconds: Number(m[1]), cpuUs: Number(m[2]) };
};
try {
  const service = client(server, server.serviceKey);
  const email = uniqueEmail('bench');
  await service.auth.admin.createUser({ email, password: PASSWORD, email_confirm: true, app_metadata: { role: 'user' } });
  const me = await signIn(server, email);
  await sql(server, `update public.app_settings set postal_address = '1 Bench Road', monthly_email_limit = 100000000`);
  await sql(server, `insert into public.contacts (user_id, email, first_name, attributes)
    select ${lit(me.user.id)}, 'r' || i || '@bench.example', 'R' || i, jsonb_build_object('company', 'Co ' || i)
    from generate_series(1, ${N}) i`);
  const campaign = async (name) => (await me.client.from('campaigns').insert({
    name, type: 'email', subject: 'News for {{first_name}}',
    content: '<html><body><h1>Hello {{first_name | "there"}}</h1><p>News from {{contact.attributes.company}}.</p>'
      + '<p><a href="https://example.com/a">A</a> and <a href="https://example.com/b">B</a></p></body></html>',
  }).select().single()).data;
  // Sends campaign c; resolves once the sink holds its N messages (no psql
  // polling meanwhile: its backends would count as the engine's CPU) and the
  // campaign is sent. The sink numbers its files in order and writes each
  // whole before the next (one event loop, no await inside), so the last
  // one's name is enough: no listing of a directory of thousands each look.
  // base: how many messages the sink held before; onPoll runs at each look.
  // Resolves the seconds from the POST to the sink's first message (looked
  // for every 2 ms until it is there, then every 100 ms for the last).
  const send = async (c, base, onPoll = () => {}) => {
    const last = path.join(sink.dir, `${String(base + N).padStart(6, '0')}.json`);
    const firstFile = path.join(sink.dir, `${String(base + 1).padStart(6, '0')}.json`);
    const posted = process.hrtime.bigint();
    let first = null;
    const r = await request(`${server.url}/api/campaigns/${c.id}/send`, {
      method: 'POST', headers: { apikey: server.anonKey, Authorization: `Bearer ${me.session.access_token}` },
    });
    if (r.status !== 200) throw new Error(`send: ${r.status} ${r.text}`);
    for (;;) {
      onPoll();
      if (first === null && fs.existsSync(firstFile)) first = Number(process.hrtime.bigint() - posted) / 1e9;
      if (fs.existsSync(last)) break;
      await sleep(first === null ? 2 : 100);
    }
    for (;;) {
      if ((await sql(server, `select status from public.campaigns where id = ${lit(c.id)}`)) === 'sent') break;
      await sleep(20);
    }
    return first;
  };
  // 1. the messages to replay
  await send(await campaign('bench (the messages the minimal client replays)'), 0);
  replayed = [...jsonFiles()].map((f) => path.join(sink.dir, f.replace(/\.json$/, '.eml')));
  const list = path.join(sink.dir, 'replay.list');
  fs.writeFileSync(list, replayed.join('\n'));
  // 2. the ceiling before (once the first send's tail has settled, as before the timed send)
  await settleStats();
  ceilings.push(timedReplay(list));
  // 3. campaignd, timed
  const c = await campaign('bench');
  await settleStats();
  const seen = jsonFiles();
  const since = server.log().length;
  const work0 = await workCounters(sql, server);
  const rss0 = rssKiB(server.process.pid);
  const cpu0 = cpuSeconds(server.process.pid, server.dataDir);
  let peak = rss0;
  const sink0 = processCpuSeconds(sink.pid);
  const sendWaits = () => runQueueWaits({ sink: sink.pid, campaignd: server.process.pid }, server.dataDir);
  const wait0 = sendWaits();
  const t0 = process.hrtime.bigint();
  firstMessage = await send(c, seen.size, () => { peak = Math.max(peak, rssKiB(server.process.pid)); });
  engine = Number(process.hrtime.bigint() - t0) / 1e9;
  sinkCpu.campaignd = Math.round(((processCpuSeconds(sink.pid) - sink0) * 1e6) / N);
  waits.campaignd_send = waitPerMessage(wait0, sendWaits(), N);
  cpu = usPerMessage(cpu0, cpuSeconds(server.process.pid, server.dataDir), N);
  load = os.loadavg()[0];
  rss = { start: rss0, peak, end: rssKiB(server.process.pid) };
  mine = [...jsonFiles()].filter((f) => !seen.has(f));
  await settleStats();
  work = workPerMessage(work0, await workCounters(sql, server), N);
  clock = await workerClock(server, N, 15000, since);
  // BENCH_SEND_WORKER_LINES=1: each send worker's own line (its time split,
  // the steps overlapped with a group included) on stderr
  if (process.env.BENCH_SEND_WORKER_LINES) {
    for (const l of server.log().slice(since).split('\n')) if (/send worker /.test(l)) console.error(l);
  }
  // 4. the ceiling after
  ceilings.push(timedReplay(list));
} finally {
  await server.stop();
}
// Receipts per recipient of the timed send only (the replays reuse its addresses).
const receipts = new Map();
for (const f of mine) {
  for (const to of JSON.parse(fs.readFileSync(path.join(sink.dir, f), 'utf8')).to) receipts.set(to, (receipts.get(to) || 0) + 1);
}
await sink.stop();
const sent = mine.length;
const rates = ceilings.map((s) => replayed.length / s);
const mean = (rates[0] + rates[1]) / 2;
const ceiling = Math.max(rates[0], rates[1]); // a reading that stalled is not the ceiling
console.log(JSON.stringify({
  n: sent, connections: WORKERS,
  campaignd_msg_per_s: +(sent / engine).toFixed(1), minimal_client_msg_per_s: +ceiling.toFixed(1),
  minimal_client_before_after: rates.map((r) => +r.toFixed(1)),
  minimal_client_spread_pct: +((100 * Math.abs(rates[0] - rates[1])) / mean).toFixed(1),
  ratio: +((sent / engine) / ceiling).toFixed(2), first_message_s: firstMessage && +firstMessage.toFixed(3),
  cpu_us_per_msg: cpu, sink_cpu_us_per_msg: sinkCpu, minimal_client_cpu_us_per_msg: clientCpu, runqueue_wait_us_per_msg: waits, load_average: +load.toFixed(1), work_per_msg: work,
  worker_clock: clock, rss_kib: rss, duplicates: [...receipts.values()].filter((k) => k > 1).length,
}));
