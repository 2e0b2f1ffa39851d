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
// Prints one JSON line; offered_per_s is RATE x CLIENTS/USERS, lost is what did not
// arrive within 30 s after the last insert.
import fs from 'node:fs';
import os from 'node:os';
import * as h from '../../tests/integration/helpers.js';

const CLIENTS = Number(process.env.CLIENTS || 1000);
const USERS = Number(process.env.USERS || 10);
const RATE = Number(process.env.RATE || 100);
const SECONDS = Number(process.env.SECONDS || 20);

const server = await h.startServer({
  MAX_CONNECTIONS: String(CLIENTS + 200), MAX_CONNECTIONS_PER_IP: '0', HTTP_THREADS: '4', LOG_LEVEL: 'error',
});
// CPU seconds the server process has used (user + system): its cost per delivered
// event holds up on a busy machine better than events/s does.
const ticks = 100; // sysconf(_SC_CLK_TCK) on Linux
function serverCpuS() {
  const f = fs.readFileSync(`/proc/${server.process.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / ticks;
}
const lat = [];
let delivered = 0;
let measuring = false;
try {
  const users = [];
  for (let i = 0; i < USERS; i++) users.push(await h.signUpUser(server));
  const clients = [];
  const subs = [];
  for (let i = 0; i < CLIENTS; i++) {
    const u = users[i % USERS];
    const c = h.client(server);
    c.realtime.setAuth(u.session.access_token);
    const ch = c.channel(`bench-${i}`).on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'campaigns' }, (p) => {
      if (!measuring) return;
      delivered++;
      lat.push(Date.now() - Date.parse(p.commit_timestamp));
    });
    subs.push(new Promise((resolve, reject) => ch.subscribe((s, e) => (s === 'SUBSCRIBED' ? resolve() : s !== 'CLOSED' && reject(new Error(`${s} ${e}`))))));
    clients.push(c);
    if (subs.length % 100 === 0) await Promise.all(subs.slice(-100));
  }
  await Promise.all(subs);
  console.error(`${CLIENTS} clients subscribed (${USERS} users); inserting ${RATE} rows/s for ${SECONDS} s`);
  measuring = true;
  const cpu0 = serverCpuS();
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
  const expected = sent * (CLIENTS / USERS);
  const deadline = Date.now() + 30000;
  while (delivered < expected && Date.now() < deadline) await h.sleep(50);
  const elapsed = (Date.now() - t0) / 1000;
  const cpu = serverCpuS() - cpu0;
  measuring = false;
  lat.sort((a, b) => a - b);
  const q = (f) => lat[Math.min(lat.length - 1, Math.floor(f * lat.length))];
  const result = {
    clients: CLIENTS, users: USERS, rate: RATE, seconds: SECONDS, inserts: sent, expected, delivered,
    lost: expected - delivered, offered_per_s: RATE * (CLIENTS / USERS),
    events_per_s: Math.round(delivered / elapsed), drain_s: Math.max(0, Math.round(elapsed - SECONDS)),
    p50_ms: q(0.5), p99_ms: q(0.99),
    server_cpu_s: Number(cpu.toFixed(2)), server_us_per_event: delivered ? Number(((cpu * 1e6) / delivered).toFixed(1)) : null,
    load_avg: os.loadavg()[0],
    cpus: os.cpus().length, cpu: os.cpus()[0].model, date: new Date().toISOString(),
  };
  console.log(JSON.stringify(result));
  for (const c of clients) c.realtime.disconnect();
} finally {
  await server.stop();
}
