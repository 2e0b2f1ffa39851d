// Realtime fan-out benchmark: CLIENTS WebSocket clients (vsn 2.0.0; CLIENT_MODE
// phoenix, supabase-js or mixed, see startChild) subscribed to postgres_changes INSERT on public.campaigns, spread over USERS
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
// INSERTER=sql inserts through one psql session instead of /rest/v1 (one
// transaction per row; the feed's work per commit without the REST path's).
// At most INSERT_CONCURRENCY (default 64) inserts are in flight: when the server
// cannot keep up the inserter falls behind (inserted_per_s) instead of opening
// thousands of HTTP connections. Prints one JSON line; offered_per_s is RATE x
// CLIENTS/USERS; expected counts only the rows whose insert succeeded
// (insert_failed counts the others); of what did not arrive within 30 s after the
// last insert, closed_undelivered is what clients whose socket was closed missed
// (closed_clients; close_codes: 1008 "client too slow" is the server's
// WS_MAX_QUEUED_BYTES, "client heartbeat timeout" is realtime-js dropping its
// own socket when it reads a heartbeat's reply more than 25 s late), and lost
// the rest (clients still open: never sent, or later than LATE_S);
// rows_never_sent counts inserted rows no client got; with FANOUT_WORK=1 also
// commits_per_row and wal_bytes_per_row; late_after_drain counts
// events that came after DRAIN_S (default 30) but within LATE_S (default 60) more
// seconds (events_per_s counts only those within DRAIN_S); server_us_per_event is the CPU time
// (user + system) of campaignd and of its PostgreSQL processes over the run, per
// delivered event (and per inserted row: server_us_per_row, db_us_per_row): the
// figures that hold up on a busy machine.
import { fork, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import WebSocket from 'ws';
import * as h from '../../tests/integration/helpers.js';

const CLIENTS = Number(process.env.CLIENTS || 1000);
const USERS = Number(process.env.USERS || 10);
const RATE = Number(process.env.RATE || 100);
const SECONDS = Number(process.env.SECONDS || 20);
if (!['phoenix', 'supabase-js', 'mixed'].includes(process.env.CLIENT_MODE || 'phoenix')) {
  console.error('CLIENT_MODE is phoenix, supabase-js or mixed');
  process.exit(2);
}
const MODE = process.env.CLIENT_MODE || 'phoenix';
const INSERT_CONCURRENCY = Number(process.env.INSERT_CONCURRENCY || 64);
const WORK = process.env.FANOUT_WORK === '1';
const INSERTER = process.env.INSERTER || 'rest';
const DRAIN_S = Number(process.env.DRAIN_S ?? 30);
const LATE_S = Number(process.env.LATE_S ?? 60);
const CLIENT_PROCS = Math.max(1, Math.min(CLIENTS, Number(process.env.CLIENT_PROCS || os.cpus().length)));

// ---------------------------------------------------------------- a client process
if (process.env.FANOUT_CHILD) startChild();
else await main();

// Gets {server, tokens, from, to, mode, maxRows} from the parent, subscribes its
// clients, says 'ready', counts what arrives while measuring, and on 'report'
// answers with, per client, its count and whether (and how) its socket was closed,
// the deliveries per inserted row (the row's number is in its name) and a latency
// histogram (ms -> count).
//
// Two kinds of client (CLIENT_MODE):
// - phoenix (default): a minimal Phoenix-protocol client on the `ws` package that
//   joins exactly as supabase-js does (vsn 2.0.0 array frames, phx_join with the
//   postgres_changes config and the user's access_token, a heartbeat every 25 s)
//   and only counts: a few µs of client CPU per event, so that the clients do not
//   take the CPU the server needs to be offered the rate;
// - supabase-js: the real library (each event decoded and converted by
//   realtime-js), what a dashboard runs;
// - mixed: half of each user's clients phoenix, half supabase-js (both must see
//   the same rows: per_mode in the result).
function startChild() {
  const clients = []; // {mode, user, got, closed: null | {code, reason}}
  const hist = new Map();
  const rowCount = {}; // mode -> deliveries per inserted row
  let delivered = 0;
  let measuring = false;
  const onEvent = (cl, name, ts) => {
    if (!measuring) return;
    delivered++;
    cl.got++;
    const n = Number(String(name).slice(6)); // "bench N"
    const rc = rowCount[cl.mode];
    if (Number.isInteger(n) && n >= 0 && n < rc.length) rc[n]++;
    const ms = Date.now() - Date.parse(ts);
    hist.set(ms, (hist.get(ms) || 0) + 1);
  };
  const joinSupabase = async (m, cl, i) => {
    const c = h.client(m.server);
    cl.close = () => c.realtime.disconnect();
    // awaited: the join must carry the user's token (else it joins with the anon key)
    await c.realtime.setAuth(m.tokens[cl.user]);
    const ch = c.channel(`bench-${i}`).on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'campaigns' }, (p) =>
      onEvent(cl, p.new && p.new.name, p.commit_timestamp),
    );
    await new Promise((resolve, reject) => ch.subscribe((s, e) => (s === 'SUBSCRIBED' ? resolve() : s !== 'CLOSED' && reject(new Error(`${s} ${e}`)))));
    // realtime-js reconnects and rejoins by itself; what was committed in between
    // is not sent again. Its socket ends either way: closed by the server (1008
    // "client too slow"), or by realtime-js itself when a heartbeat's reply has
    // not been read 25 s after it was sent (a client that reads too slowly; it
    // then drops the socket without an onClose).
    c.realtime.socketAdapter.onClose((ev) => {
      if (measuring && !cl.closed) cl.closed = { code: ev && ev.code, reason: String((ev && ev.reason) || '') };
    });
    c.realtime.onHeartbeat((status) => {
      if (measuring && !cl.closed && status === 'timeout') cl.closed = { code: 'client', reason: 'heartbeat timeout' };
    });
  };
  const joinPhoenix = (m, cl, i) =>
    new Promise((resolve, reject) => {
      const url = `${m.server.url.replace(/^http/, 'ws')}/realtime/v1/websocket?apikey=${encodeURIComponent(m.server.anonKey)}&vsn=2.0.0`;
      const ws = new WebSocket(url);
      const topic = `realtime:bench-${i}`;
      let ref = 2; // 1 is the join's
      let hb = null;
      cl.close = () => {
        clearInterval(hb);
        ws.close();
      };
      ws.on('open', () => {
        const config = {
          broadcast: { ack: false, self: false },
          presence: { key: '', enabled: false },
          postgres_changes: [{ event: 'INSERT', schema: 'public', table: 'campaigns' }],
          private: false,
        };
        ws.send(JSON.stringify(['1', '1', topic, 'phx_join', { config, access_token: m.tokens[cl.user] }]));
        hb = setInterval(() => ws.send(JSON.stringify([null, String(ref++), 'phoenix', 'heartbeat', {}])), 25000);
      });
      ws.on('message', (raw, binary) => {
        if (binary) return;
        const [, r, , event, payload] = JSON.parse(raw.toString());
        if (event === 'postgres_changes') {
          const d = payload && payload.data;
          if (d && d.type === 'INSERT') onEvent(cl, d.record && d.record.name, d.commit_timestamp);
        } else if (event === 'phx_reply' && r === '1') {
          if (payload.status === 'ok') resolve();
          else reject(new Error(`join refused: ${JSON.stringify(payload.response)}`));
        }
      });
      ws.on('error', reject);
      ws.on('close', (code, reason) => {
        clearInterval(hb);
        if (!cl.closed) cl.closed = { code, reason: reason.toString() };
        reject(new Error(`closed ${code} before the join`));
      });
    });
  process.on('message', async (m) => {
    if (m.type === 'start') {
      for (const mode of ['phoenix', 'supabase-js']) rowCount[mode] = new Uint32Array(m.maxRows);
      const joins = [];
      for (let i = m.from; i < m.to; i++) {
        const mode = m.mode === 'mixed' ? (Math.floor(i / m.tokens.length) % 2 ? 'supabase-js' : 'phoenix') : m.mode;
        const cl = { i, mode, user: i % m.tokens.length, got: 0, closed: null, close: () => {} };
        clients.push(cl);
        joins.push(mode === 'phoenix' ? joinPhoenix(m, cl, i) : joinSupabase(m, cl, i));
        if (joins.length % 100 === 0) await Promise.all(joins.slice(-100));
      }
      await Promise.all(joins);
      process.send({ type: 'ready' });
    } else if (m.type === 'measure') {
      measuring = true;
    } else if (m.type === 'count') {
      process.send({ type: 'count', delivered });
    } else if (m.type === 'report') {
      measuring = false;
      process.send({
        type: 'report', delivered, hist: [...hist], rows: Object.fromEntries(Object.entries(rowCount).map(([k, v]) => [k, [...v]])),
        clients: clients.map((c) => ({ i: c.i, mode: c.mode, user: c.user, got: c.got, closed: c.closed })),
      });
      for (const c of clients) c.close();
      setTimeout(() => process.exit(0), 200);
    }
  });
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

// Transactions committed (pg_stat_database, every database of the cluster) and
// the WAL position, and the scans of realtime.changes (the feed's reads). Backends report their counts within 10 s of going idle
// (PostgreSQL 15), so each reading first waits that long (FANOUT_WORK=1 only).
async function dbWork(server) {
  await h.sleep(11000);
  const [commits, wal, reads] = (await h.sql(server, `select (select sum(xact_commit) from pg_catalog.pg_stat_database)::bigint,
    pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), '0/0')::bigint,
    (select seq_scan + coalesce(idx_scan, 0) from pg_catalog.pg_stat_all_tables where relid = 'realtime.changes'::regclass)`)).split('|');
  return { commits: Number(commits), wal: Number(wal), reads: Number(reads) };
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
    MAX_CONNECTIONS: String(CLIENTS + 200), MAX_CONNECTIONS_PER_IP: '0', HTTP_THREADS: '4',
    LOG_LEVEL: process.env.FANOUT_LOG_LEVEL || 'error',
    ...(process.env.REALTIME_CHECK_CONNECTIONS ? { REALTIME_CHECK_CONNECTIONS: process.env.REALTIME_CHECK_CONNECTIONS } : {}),
    ...(process.env.REALTIME_FEED_WINDOW_MS ? { REALTIME_FEED_WINDOW_MS: process.env.REALTIME_FEED_WINDOW_MS } : {}),
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
    const maxRows = Math.ceil(RATE * SECONDS) + 1;
    // client i belongs to user i % USERS, whichever process runs it
    await Promise.all(kids.map((child, k) => {
      const from = Math.floor((CLIENTS * k) / CLIENT_PROCS);
      const to = Math.floor((CLIENTS * (k + 1)) / CLIENT_PROCS);
      return new Promise((resolve, reject) => {
        child.once('error', reject);
        child.once('exit', (code) => reject(new Error(`client process exited (${code}) while joining`)));
        child.on('message', (m) => m.type === 'ready' && resolve());
        child.send({ type: 'start', server: srv, tokens, from, to, mode: MODE, maxRows });
      });
    }));
    console.error(`${CLIENTS} ${MODE} clients subscribed in ${CLIENT_PROCS} processes (${USERS} users); inserting ${RATE} rows/s for ${SECONDS} s`);
    for (const child of kids) child.send({ type: 'measure' });
    await h.sleep(200);
    const work0 = WORK ? await dbWork(server) : null;
    const cpu0 = treeCpuS(server.process.pid);
    const t0 = Date.now();
    let sent = 0;
    const inserted = new Uint8Array(maxRows); // 1: the insert succeeded
    const failures = new Map(); // message -> count
    let inflight = 0;
    let idle = null;
    const insertOne = (seq) => {
      inflight++;
      users[seq % USERS].client.from('campaigns').insert({ name: `bench ${seq}`, type: 'email' }).then(({ error }) => {
        if (error) failures.set(error.message, (failures.get(error.message) || 0) + 1);
        else inserted[seq] = 1;
      }, (e) => failures.set(String(e.message || e), (failures.get(String(e.message || e)) || 0) + 1)).finally(() => {
        inflight--;
        if (idle && inflight === 0) idle();
      });
    };
    // INSERTER=sql: one psql session as the owner, one transaction per row, fed at
    // the rate (it falls behind when the database cannot keep up): commits
    // without the REST path's cost, to measure the feed's work per commit
    // (INSERT_SESSIONS psql sessions, default 1, take the rows in turn)
    const sqlInserters = [];
    if (INSERTER === 'sql') {
      const url = await h.dbUrl(server);
      for (let k = 0; k < Number(process.env.INSERT_SESSIONS || 1); k++) {
        const p = spawn('psql', [url, '-X', '-q', '-v', 'ON_ERROR_STOP=1'], { stdio: ['pipe', 'ignore', 'inherit'] });
        sqlInserters.push({ p, text: '', done: new Promise((resolve) => p.on('exit', resolve)) });
      }
    }
    while (Date.now() - t0 < SECONDS * 1000) {
      const due = Math.min(maxRows - 1, Math.floor(((Date.now() - t0) / 1000) * RATE));
      if (sqlInserters.length) {
        for (; sent < due; sent++)
          sqlInserters[sent % sqlInserters.length].text += `insert into public.campaigns (user_id, name, type) values ('${users[sent % USERS].user.id}', 'bench ${sent}', 'email');\n`;
        for (const q of sqlInserters) if (q.text) (q.p.stdin.write(q.text), (q.text = ''));
      } else {
        while (sent < due && inflight < INSERT_CONCURRENCY) insertOne(sent++);
      }
      await h.sleep(5);
    }
    if (sqlInserters.length) {
      for (const q of sqlInserters) q.p.stdin.end();
      const codes = await Promise.all(sqlInserters.map((q) => q.done));
      if (codes.every((c) => c === 0)) inserted.fill(1, 0, sent);
      else failures.set(`psql exited with ${codes.join(', ')}`, sent);
    }
    if (inflight) await new Promise((resolve) => (idle = resolve));
    const insertS = (Date.now() - t0) / 1000;
    const rowsOk = inserted.reduce((a, b) => a + b, 0);
    const insertFailed = sent - rowsOk;
    // rows per user that reached the database: each of the user's clients should get each
    const okPerUser = new Array(USERS).fill(0);
    for (let n = 0; n < sent; n++) if (inserted[n]) okPerUser[n % USERS]++;
    const expected = rowsOk * (CLIENTS / USERS);
    const countAll = async () => (await Promise.all(kids.map((c) => ask(c, 'count', 'count')))).reduce((a, m) => a + m.delivered, 0);
    const waitFor = async (ms) => {
      const until = Date.now() + ms;
      let n = await countAll();
      while (n < expected && Date.now() < until) {
        await h.sleep(50);
        n = await countAll();
      }
      return n;
    };
    const inTime = await waitFor(DRAIN_S * 1000);
    const elapsed = (Date.now() - t0) / 1000;
    const cpu1 = treeCpuS(server.process.pid);
    // what had not arrived within DRAIN_S: late (arrives within LATE_S more) or not at all
    const late = inTime < expected ? (await waitFor(LATE_S * 1000)) - inTime : 0;
    const work1 = WORK ? await dbWork(server) : null;
    const reports = await Promise.all(kids.map((c) => ask(c, 'report', 'report')));
    const delivered = reports.reduce((a, m) => a + m.delivered, 0);
    const hist = new Map();
    for (const r of reports) for (const [ms, n] of r.hist) hist.set(ms, (hist.get(ms) || 0) + n);
    // what each client missed: closed by the server, or still open (late / never sent)
    let closedClients = 0;
    let closedUndelivered = 0;
    let lost = 0;
    let extra = 0;
    const closeCodes = {};
    const perMode = {};
    for (const r of reports) {
      for (const c of r.clients) {
        const missed = okPerUser[c.user] - c.got;
        if (missed < 0) extra -= missed;
        const pm = (perMode[c.mode] ||= { clients: 0, expected: 0, delivered: 0 });
        pm.clients++;
        pm.expected += okPerUser[c.user];
        pm.delivered += c.got;
        if (c.closed) {
          closedClients++;
          closedUndelivered += Math.max(0, missed);
          const k = `${c.closed.code} ${c.closed.reason}`.trim();
          closeCodes[k] = (closeCodes[k] || 0) + 1;
        } else {
          lost += Math.max(0, missed);
        }
      }
    }
    // per inserted row: how many clients (of each mode) got it
    let rowsNeverSent = 0;
    let rowsPartial = 0;
    const modeRows = {};
    for (const r of reports) for (const [mode, rows] of Object.entries(r.rows)) {
      const acc = (modeRows[mode] ||= new Array(maxRows).fill(0));
      for (let n = 0; n < rows.length; n++) acc[n] += rows[n];
    }
    for (let n = 0; n < sent; n++) {
      if (!inserted[n]) continue;
      const got = Object.values(modeRows).reduce((a, rows) => a + rows[n], 0);
      if (got === 0) rowsNeverSent++;
      else if (got < CLIENTS / USERS) rowsPartial++;
    }
    const sorted = [...hist].sort((a, b) => a[0] - b[0]);
    const q = (f) => {
      let seen = 0;
      for (const [ms, n] of sorted) if ((seen += n) > f * delivered) return ms;
      return sorted.length ? sorted[sorted.length - 1][0] : null;
    };
    const serverCpu = cpu1.server - cpu0.server;
    const dbCpu = cpu1.db - cpu0.db;
    const perEvent = (s) => (inTime ? Number(((s * 1e6) / inTime).toFixed(1)) : null);
    const result = {
      mode: MODE, clients: CLIENTS, users: USERS, client_procs: CLIENT_PROCS, rate: RATE, seconds: SECONDS, inserts: sent,
      inserted_per_s: Number((sent / insertS).toFixed(1)), insert_failed: insertFailed,
      insert_errors: Object.fromEntries(failures), expected, delivered,
      lost, late_after_drain: late, in_time: inTime, closed_clients: closedClients, closed_undelivered: closedUndelivered, close_codes: closeCodes,
      duplicates: extra, rows_never_sent: rowsNeverSent, rows_partly_sent: rowsPartial, per_mode: perMode,
      offered_per_s: RATE * (CLIENTS / USERS),
      events_per_s: Math.round(inTime / elapsed), drain_s: Math.max(0, Math.round(elapsed - SECONDS)),
      p50_ms: q(0.5), p99_ms: q(0.99),
      server_cpu_s: Number(serverCpu.toFixed(2)), db_cpu_s: Number(dbCpu.toFixed(2)),
      server_us_per_event: perEvent(serverCpu), db_us_per_event: perEvent(dbCpu),
      total_us_per_event: perEvent(serverCpu + dbCpu),
      // per inserted row: what a row costs end to end (its REST insert, the
      // feed's read, the visibility checks and the deliveries to its sockets)
      server_us_per_row: rowsOk ? Number(((serverCpu * 1e6) / rowsOk).toFixed(0)) : null,
      db_us_per_row: rowsOk ? Number(((dbCpu * 1e6) / rowsOk).toFixed(0)) : null,
      ...(WORK && rowsOk ? {
        // the database's work per inserted row: transactions (the insert's, each
        // feed read, each claims group's check) and WAL bytes
        commits_per_row: Number(((work1.commits - work0.commits) / rowsOk).toFixed(2)),
        // scans of realtime.changes: the feed's reads (and its early reads)
        feed_reads_per_row: Number(((work1.reads - work0.reads) / rowsOk).toFixed(2)),
        wal_bytes_per_row: Math.round((work1.wal - work0.wal) / rowsOk),
      } : {}),
      load_avg: os.loadavg()[0],
      cpus: os.cpus().length, cpu: os.cpus()[0].model, date: new Date().toISOString(),
    };
    console.log(JSON.stringify(result));
  } finally {
    for (const k of kids) if (k.exitCode === null) k.kill();
    await server.stop();
  }
}
