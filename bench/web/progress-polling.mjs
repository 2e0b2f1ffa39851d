// What the campaign page's progress bar cost the server before it moved
// through realtime alone (web-wizard branch): each refresh was five exact
// counts of the campaign's messages through /rest/v1 (HEAD, count=exact), one
// per second while messages changed and every 5 s while sending, per open
// page. This measures one refresh: wall time and the CPU time (user + sys,
// /proc/<pid>/stat) of campaignd and of the PostgreSQL backends per refresh,
// on a campaign of MESSAGES messages. The realtime-only page makes no request
// per progress step, so its cost per step is 0 requests.
//   CAMPAIGND_BIN=build/campaignd node bench/web/progress-polling.mjs
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as h from '../../tests/integration/helpers.js';

const MESSAGES = Number(process.env.MESSAGES || 20000);
const REFRESHES = Number(process.env.REFRESHES || 200);
const TICK = 100; // USER_HZ

function cpuOf(pids) {
  let t = 0;
  for (const pid of pids) {
    try {
      const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      t += Number(f[11]) + Number(f[12]); // utime + stime
    } catch { /* gone */ }
  }
  return (t * 1000) / TICK; // ms
}

function childrenOf(ppid) {
  return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
    try { return fs.readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1].split(' ')[1] === String(ppid); } catch { return false; }
  });
}

const server = await h.startServer({ LOG_LEVEL: 'warn' });
try {
  const u = await h.signUpUser(server);
  const { data: c } = await u.client.from('campaigns').insert({ name: 'bench', type: 'email', content: 'x' }).select('id').single();
  await h.sql(server, `insert into public.email_messages (campaign_id, recipient, status)
    select '${c.id}', 'r' || g || '@example.com', (array['queued','sent','delivered','failed','bounced'])[1 + g % 5]
    from generate_series(1, ${MESSAGES}) g; analyze public.email_messages;`);
  const postmaster = fs.readFileSync(path.join(server.dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0];
  const groups = [null, ['queued', 'sending', 'deferred'], ['failed', 'bounced', 'spam_reported'], ['dropped'], ['unknown']];
  const refresh = () => Promise.all(groups.map((g) => {
    let b = u.client.from('email_messages').select('id', { count: 'exact', head: true }).eq('campaign_id', c.id);
    if (g) b = b.in('status', g);
    return b.then((r) => { if (r.error) throw new Error(r.error.message); return r.count; });
  }));
  for (let i = 0; i < 10; i++) await refresh(); // warm up
  const backends = childrenOf(postmaster);
  const cd0 = cpuOf([server.process.pid]);
  const pg0 = cpuOf(backends);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < REFRESHES; i++) await refresh();
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  const cd = cpuOf([server.process.pid]) - cd0;
  const pg = cpuOf(childrenOf(postmaster)) - pg0;
  console.log(JSON.stringify({
    messages: MESSAGES, refreshes: REFRESHES,
    wall_ms_per_refresh: +(wall / REFRESHES).toFixed(2),
    campaignd_cpu_ms_per_refresh: +(cd / REFRESHES).toFixed(2),
    postgres_cpu_ms_per_refresh: +(pg / REFRESHES).toFixed(2),
    loadavg: os.loadavg().map((x) => +x.toFixed(1)),
  }));
} finally {
  await server.stop();
}
