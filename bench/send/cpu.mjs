// CPU time for the sending benches (bench/send/run.mjs, sms.mjs): user +
// system seconds of one campaignd process and of the PostgreSQL cluster it
// runs on (the postmaster, its live children — the backends — and the
// children that already exited, which the postmaster's cutime/cstime hold).
// Differences of two readings, per message, are the load-robust figure the
// benches print next to the wall-clock ratio: on a shared machine other
// work stretches the wall clock, not the CPU a message costs.
import fs from 'node:fs';
import path from 'node:path';

const TICK = 100; // USER_HZ: /proc reports clock ticks of 1/100 s on Linux

function stat(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // fields after comm: state(0) ppid(1) ... minflt(7) ... utime(11) stime(12) cutime(13) cstime(14)
    return { ppid: Number(f[1]), minflt: Number(f[7]), self: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
  } catch {
    return null;
  }
}

function postmaster(dataDir) {
  for (const p of [path.join(dataDir, 'pg', 'postmaster.pid'), path.join(dataDir, 'postmaster.pid')]) {
    try {
      return Number(fs.readFileSync(p, 'utf8').split('\n')[0]);
    } catch { /* not there */ }
  }
  return 0;
}

// The live children of process pm (the postmaster's: the backends), each
// with its stat().
function children(pm) {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const s = stat(d);
    if (s && s.ppid === pm) out.push({ pid: d, s });
  }
  return out;
}

// A live backend of the database owner's connections (the realtime feed:
// "postgres: campaignd campaignd ..."), not a request's or the engine's
// (authenticator) nor a background process.
function ownerBackend(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('postgres: campaignd campaignd');
  } catch {
    return false;
  }
}

/** { campaignd, postgres, owner (part of postgres: the owner's live backends) } CPU seconds so
 * far, and campaignd's minor page faults (minflt: memory the allocator gave back and took again). */
export function cpuSeconds(serverPid, dataDir) {
  const me = stat(serverPid);
  const pm = postmaster(dataDir);
  let pg = 0;
  let owner = 0;
  const top = pm ? stat(pm) : null;
  if (top) {
    pg = top.self + top.children;
    for (const { pid, s } of children(pm)) {
      pg += s.self;
      if (ownerBackend(pid)) owner += s.self;
    }
  }
  return { campaignd: (me ? me.self : 0) / TICK, postgres: pg / TICK, owner: owner / TICK, minflt: me ? me.minflt : 0 };
}

/** CPU seconds a process (all its threads) has used so far, e.g. the SMTP sink's. */
export function processCpuSeconds(pid) {
  const s = stat(pid);
  return s ? s.self / TICK : 0;
}

// Time spent runnable but waiting for a CPU (the scheduler's run queue,
// /proc/<pid>/task/<tid>/schedstat: ns on a CPU, ns waiting, time slices):
// what shows that parties of a send take the CPU from each other on a
// small machine, which CPU time alone does not. Summed over the threads of
// the given processes that are alive at the reading (a thread that ended in
// between drops out: read around one send, whose threads all live on).
function waitOf(pid) {
  let wait = 0;
  let tasks = [];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  for (const t of tasks) {
    try {
      wait += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[1]);
    } catch { /* ended meanwhile */ }
  }
  return wait;
}

/** Run-queue waits so far, in s: { <name>: wait } for each named pid, and
 * postgres: the PostgreSQL cluster's live backends (the postmaster's children). */
export function runQueueWaits(pids, dataDir) {
  const out = {};
  for (const [name, pid] of Object.entries(pids)) out[name] = waitOf(pid) / 1e9;
  const pm = dataDir ? postmaster(dataDir) : 0;
  if (pm) out.postgres = children(pm).reduce((w, c) => w + waitOf(c.pid), 0) / 1e9;
  return out;
}

/** Run-queue wait µs per message between two runQueueWaits readings. */
export function waitPerMessage(before, after, n) {
  const out = {};
  for (const k of Object.keys(after)) out[k] = Math.round(((after[k] - (before[k] || 0)) * 1e6) / n);
  return out;
}

/** CPU µs per message between two readings. */
export function usPerMessage(before, after, n) {
  return {
    campaignd: Math.round(((after.campaignd - before.campaignd) * 1e6) / n),
    postgres: Math.round(((after.postgres - before.postgres) * 1e6) / n),
    postgres_owner_feed: Math.round(((after.owner - before.owner) * 1e6) / n),
    campaignd_minor_faults: +((after.minflt - before.minflt) / n).toFixed(2),
  };
}

// The work the database did, the most load-robust evidence: WAL bytes
// written (pg_current_wal_lsn), transactions committed and rows inserted,
// updated and deleted (pg_stat_database, all databases of the cluster).
// Read with the given sql(server, text) helper (one psql call: its own
// transaction counts as 1 of thousands).
const WORK_SQL = `select json_build_object('wal', pg_current_wal_lsn() - '0/0'::pg_lsn,
  'xact', sum(xact_commit), 'ins', sum(tup_inserted), 'upd', sum(tup_updated), 'del', sum(tup_deleted))
  from pg_stat_database`;

/** { wal, xact, ins, upd, del } so far. */
export async function workCounters(sql, server) {
  return JSON.parse(await sql(server, WORK_SQL));
}

/** Work per message between two readings (wal: bytes, the rest: counts). */
export function workPerMessage(before, after, n) {
  const out = {};
  for (const k of ['wal', 'xact', 'ins', 'upd', 'del']) out[k] = +((Number(after[k]) - Number(before[k])) / n).toFixed(2);
  return out;
}

/** Waits until the backends have flushed their statistics (PostgreSQL 15
 * reports them when a backend goes idle, at most about once a second). */
export async function settleStats() {
  await new Promise((res) => setTimeout(res, 2500));
}

// Where the send workers' time went, from the line each logs at info level
// when its run ends (sending/engine.c, send_loop): the share of their wall
// clock spent in the provider's conversations (the connection busy) and
// waiting for the database, weighted by each run's length. Waits up to
// timeoutMs for runs that account for n messages (a worker logs after its
// last claim comes back empty). null when no line was logged (a binary
// without the line, or LOG_LEVEL above info). since: the length the log had
// when the send began (lines before it are an earlier send's).
export async function workerClock(server, n, timeoutMs = 15000, since = 0) {
  const re = /send worker \S+ \w+: (\d+) messages in ([0-9.]+) s: provider busy ([0-9.]+) %, waiting for the database ([0-9.]+) %/g;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let msgs = 0;
    let wall = 0;
    let busy = 0;
    let db = 0;
    for (const m of server.log().slice(since).matchAll(re)) {
      const w = Number(m[2]);
      msgs += Number(m[1]);
      wall += w;
      busy += (w * Number(m[3])) / 100;
      db += (w * Number(m[4])) / 100;
    }
    if (msgs >= n || Date.now() > deadline) {
      if (!wall) return null;
      return { runs_messages: msgs, provider_busy_pct: +((100 * busy) / wall).toFixed(1), db_wait_pct: +((100 * db) / wall).toFixed(1) };
    }
    await new Promise((res) => setTimeout(res, 200));
  }
}
