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
    // fields after comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    return { ppid: Number(f[1]), self: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
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

/** { campaignd, postgres } CPU seconds so far. */
export function cpuSeconds(serverPid, dataDir) {
  const me = stat(serverPid);
  const pm = postmaster(dataDir);
  let pg = 0;
  const top = pm ? stat(pm) : null;
  if (top) {
    pg = top.self + top.children;
    for (const d of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      const s = stat(d);
      if (s && s.ppid === pm) pg += s.self;
    }
  }
  return { campaignd: (me ? me.self : 0) / TICK, postgres: pg / TICK };
}

/** CPU µs per message between two readings. */
export function usPerMessage(before, after, n) {
  return {
    campaignd: Math.round(((after.campaignd - before.campaignd) * 1e6) / n),
    postgres: Math.round(((after.postgres - before.postgres) * 1e6) / n),
  };
}
