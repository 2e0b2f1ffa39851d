// Realtime fan-out benchmark: CLIENTS WebSocket clients (supabase-js, vsn 2.0.0)
// subscribed to postgres_changes INSERT on public.campaigns, spread over USERS
// signed-in users (so RLS is checked per distinct claims: USERS groups), while
// each user inserts its own campaigns through /rest/v1 at a steady total RATE
// (rows/s) for SECONDS. Every insert is delivered to the CLIENTS/USERS sockets
// of its owner. Reports delivered events/s and the p50/p99 latency from the
// row's commit_timestamp (set in the inserting transaction) to the client.
//
//   node bench/realtime/fanout.mjs            (defaults below; env overrides)
//   CLIENTS=1000 USERS=10 RATE=100 SECONDS=20 node bench/realtime/fanout.mjs
// CAMPAIGND_BIN picks the binary (default build/campaignd). The server gets the
// settings the bench needs: all clients come from 127.0.0.1, so the per-address
// connection limit is off (MAX_CONNECTIONS_PER_IP=0), and MAX_CONNECTIONS has room.
// The clients run in CLIENT_PROCS Node processes (default: the number of CPUs),
// so that one process decoding every socket is not what the bench measures.
// Prints one JSON line; offered_per_s is RATE x CLIENTS/USERS, lost is what did not
// arrive within 30 s after the last insert; server_us_per_event is the CPU time
// (user + system) of campaignd and of its PostgreSQL processes over the run, per
// delivered event (and per inserted row: server_us_per_row, db_us_per_row): the
// figures that hold up on a busy machine.
import { fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import * as h from '../../tests/integration/helpers.js';

const CLIENTS = Number(process.env.CLIENTS || 1000);
const USERS = Number(process.env.USERS || 10);
const RATE = Number(process.env.RATE || 100);
const SECONDS = Number(process.env.SECONDS || 20);
const CLIENT_PROCS = Math.max(1, Math.min(CLIENTS, Number(process.env.CLIENT_PROCS || os.cpus().length)));

// ---------------------------------------------------------------- a client process
// Gets {server, tokens, from, to} from the parent, subscribes its clients, says
// 'ready', counts what arrives while measuring, and on 'report' answers with its
// count and a latency histogram (ms -> count).
if (process.env.FANOUT_CHILD) {
  const clients = [];
  const hist = new Map();
  let delivered = 0;
  let measuring = false;
  process.on('message', async (m) => {
    if (m.type === 'start') {
      const subs = [];
      for (let i = m.from; i < m.to; i++) {
        const c = h.client(m.server);
        // awaited: the join must carry the user's token (else it joins with the anon key)
        await c.realtime.setAuth(m.tokens[i % m.tokens.length]);
        const ch = c.channel(`bench-${i}`).on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'campaigns' }, (p) => {
          if (!measuring) return;
          delivered++;
          const ms = Date.now() - Date.parse(p.commit_timestamp);
          hist.set(ms, (hist.get(ms) || 0) + 1);
        });
        subs.push(new Promise((resolve, reject) => ch.subscribe((s, e) => (s === 'SUBSCRIBED' ? resolve() : s !== 'CLOSED' && reject(new Error(`${s} ${e}`))))));
        clients.push(c);
        if (subs.length % 100 === 0) await Promise.all(subs.slice(-100));
      }
      await Promise.all(subs);
      process.send({ type: 'ready' });
    } else if (m.type === 'measure') {
      measuring = true;
    } else if (m.type === 'count') {
      process.send({ type: 'count', delivered });
    } else if (m.type === 'report') {
      measuring = false;
      process.send({ type: 'report', delivered, hist: [...hist] });
      for (const c of clients) c.realtime.disconnect();
      setTimeout(() => process.exit(0), 200);
    }
  });
} else {
  await main();
}

// CPU seconds (user + system) of a process and, with kids, of every process
// below it (PostgreSQL's postmaster and backends are campaignd's children);
// cutime/cstime keep what exited children used.
function procStat(pid) {
  try {
    const t = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = t.slice(t.lastIndexOf(') ') + 2).split(' ');
    return { ppid: Number(f[1]), cpu: Number(f[11]) + Number(f[12]), dead: Number(f[13]) + Number(f[14]) };
  } catch {
    return null;
  }
}
function treeCpuS(root) {
  const ticks = 100; // sysconf(_SC_CLK_TCK) on Linux
  const kids = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const s = procStat(d);
    if (s) kids.set(Number(d), s);
  }
  let server = 0;
  let db = 0;
  const walk = (pid, isRoot) => {
    const s = kids.get(pid);
    if (!s) return;
    if (isRoot) server += s.cpu;
    else db += s.cpu + s.dead;
    for (const [p, k] of kids) if (k.ppid === pid) walk(p, false);
  };
  walk(root, true);
  return { server: server / ticks, db: db / ticks };
}

function ask(child, type, want) {
  return new Promise((resolve) => {
    const on = (m) => {
      if (m.type === want) {
        child.off('message', on);
        resolve(m);
      }
    };
    child.on('message', on);
    child.send({ type });
  });
}

async function main() {
  const server = await h.startServer({
    MAX_CONNECTIONS: String(CLIENTS + 200), MAX_CONNECTIONS_PER_IP: '0', HTTP_THREADS: '4', LOG_LEVEL: 'error',
    ...(process.env.REALTIME_CHECK_CONNECTIONS ? { REALTIME_CHECK_CONNECTIONS: process.env.REALTIME_CHECK_CONNECTIONS } : {}),
  });
  const kids = [];
  try {
    const users = [];
    for (let i = 0; i < USERS; i++) users.push(await h.signUpUser(server));
    const tokens = users.map((u) => u.session.access_token);
    const srv = { url: server.url, anonKey: server.anonKey };
    for (let k = 0; k < CLIENT_PROCS; k++) {
      const child = fork(new URL(import.meta.url).pathname, [], { env: { ...process.env, FANOUT_CHILD: '1' } });
      kids.push(child);
    }
    // client i belongs to user i % USERS, whichever process runs it
    await Promise.all(kids.map((child, k) => {
      const from = Math.floor((CLIENTS * k) / CLIENT_PROCS);
      const to = Math.floor((CLIENTS * (k + 1)) / CLIENT_PROCS);
      return new Promise((resolve, reject) => {
        child.once('error', reject);
        child.on('message', (m) => m.type === 'ready' && resolve());
        child.send({ type: 'start', server: srv, tokens, from, to });
      });
    }));
    console.error(`${CLIENTS} clients subscribed in ${CLIENT_PROCS} processes (${USERS} users); inserting ${RATE} rows/s for ${SECONDS} s`);
    for (const child of kids) child.send({ type: 'measure' });
    await h.sleep(200);
    const cpu0 = treeCpuS(server.process.pid);
    const t0 = Date.now();
    let sent = 0;
    const inflight = new Set();
    while (Date.now() - t0 < SECONDS * 1000) {
      const due = Math.floor(((Date.now() - t0) / 1000) * RATE);
      while (sent < due) {
        const u = users[sent % USERS];
        const p = u.client.from('campaigns').insert({ name: `bench ${sent}`, type: 'email' }).then(({ error }) => {
          if (error) console.error('insert failed', error.message);
          inflight.delete(p);
        });
        inflight.add(p);
        sent++;
      }
      await h.sleep(5);
    }
    await Promise.all(inflight);
    const insertS = (Date.now() - t0) / 1000;
    const expected = sent * (CLIENTS / USERS);
    const deadline = Date.now() + 30000;
    let delivered = 0;
    for (;;) {
      const counts = await Promise.all(kids.map((c) => ask(c, 'count', 'count')));
      delivered = counts.reduce((a, m) => a + m.delivered, 0);
      if (delivered >= expected || Date.now() > deadline) break;
      await h.sleep(50);
    }
    const elapsed = (Date.now() - t0) / 1000;
    const cpu1 = treeCpuS(server.process.pid);
    const reports = await Promise.all(kids.map((c) => ask(c, 'report', 'report')));
    delivered = reports.reduce((a, m) => a + m.delivered, 0);
    const hist = new Map();
    for (const r of reports) for (const [ms, n] of r.hist) hist.set(ms, (hist.get(ms) || 0) + n);
    const sorted = [...hist].sort((a, b) => a[0] - b[0]);
    const q = (f) => {
      let seen = 0;
      for (const [ms, n] of sorted) if ((seen += n) > f * delivered) return ms;
      return sorted.length ? sorted[sorted.length - 1][0] : null;
    };
    const serverCpu = cpu1.server - cpu0.server;
    const dbCpu = cpu1.db - cpu0.db;
    const perEvent = (s) => (delivered ? Number(((s * 1e6) / delivered).toFixed(1)) : null);
    const result = {
      clients: CLIENTS, users: USERS, client_procs: CLIENT_PROCS, rate: RATE, seconds: SECONDS, inserts: sent,
      inserted_per_s: Number((sent / insertS).toFixed(1)), expected, delivered,
      lost: expected - delivered, offered_per_s: RATE * (CLIENTS / USERS),
      events_per_s: Math.round(delivered / elapsed), drain_s: Math.max(0, Math.round(elapsed - SECONDS)),
      p50_ms: q(0.5), p99_ms: q(0.99),
      server_cpu_s: Number(serverCpu.toFixed(2)), db_cpu_s: Number(dbCpu.toFixed(2)),
      server_us_per_event: perEvent(serverCpu), db_us_per_event: perEvent(dbCpu),
      total_us_per_event: perEvent(serverCpu + dbCpu),
      // per inserted row: what a row costs end to end (its REST insert, the
      // feed's read, the visibility checks and the deliveries to its sockets)
      server_us_per_row: sent ? Number(((serverCpu * 1e6) / sent).toFixed(0)) : null,
      db_us_per_row: sent ? Number(((dbCpu * 1e6) / sent).toFixed(0)) : null,
      load_avg: os.loadavg()[0],
      cpus: os.cpus().length, cpu: os.cpus()[0].model, date: new Date().toISOString(),
    };
    console.log(JSON.stringify(result));
  } finally {
    for (const k of kids) if (k.exitCode === null) k.kill();
    await server.stop();
  }
}
