// The PDF export's cost against the CSV export of the same report, in one
// run (not part of `make bench`; run once by hand):
//   CAMPAIGND_BIN=build/campaignd node bench/report_pdf/run.mjs [rounds]
// Seeds a 366-day period summary (1,101 rows: 366 days x 3 channels + 3
// totals) and a 30-day campaign report, then downloads each N times as CSV
// and as PDF, sequentially. Prints wall time per export and the CPU time
// (user + sys from /proc/<pid>/stat, in clock ticks turned into ms) of
// campaignd and of the PostgreSQL backends per export and per row, and the
// PDF/CSV ratios of the same run, with the load average.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, client, signIn, request, uniqueEmail, sql, lit, noError, PASSWORD } from '../../tests/integration/helpers.js';

const ROUNDS = Number(process.argv[2] || 20);
const TICK_MS = 10; // CLK_TCK 100 on Linux

function cpuTicks(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return Number(rest[11]) + Number(rest[12]); // utime, stime
  } catch {
    return 0;
  }
}
/** Children of the postmaster (the backends and helpers) with their CPU. */
function pgTicks(postmaster) {
  const out = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const f = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[1]) === postmaster) out.set(d, Number(rest[11]) + Number(rest[12]));
    } catch { /* gone */ }
  }
  return out;
}
function findPostmaster(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.name === 'postmaster.pid') return Number(fs.readFileSync(path.join(e.parentPath ?? e.path, e.name), 'utf8').split('\n')[0]);
  }
  throw new Error('no postmaster.pid');
}

const server = await startServer({ LOG_LEVEL: 'error' });
try {
  const service = client(server, server.serviceKey);
  const email = uniqueEmail('bench');
  noError((await service.auth.admin.createUser({ email, password: PASSWORD, email_confirm: true, app_metadata: { role: 'user' } })).error);
  const s = await signIn(server, email);
  const h = { apikey: server.anonKey, Authorization: `Bearer ${s.session.access_token}` };
  const camp = '00000000-0000-4000-8000-0000000be0c1';
  await sql(server, `
    insert into public.campaigns (id, user_id, name, type) values ('${camp}', ${lit(s.user.id)}, 'Bench', 'email');
    insert into public.email_messages (campaign_id, recipient, status, sent_at)
      select '${camp}', 'r' || i || '@example.com', (array['delivered','opened','bounced','failed'])[1 + i % 4],
             timestamptz '2026-01-01 12:00Z' + (i % 366) * interval '1 day'
      from generate_series(1, 20000) i;`);
  const gen = async (body) => {
    const r = await request(`${server.url}/api/reports`, { method: 'POST', headers: h, body });
    if (r.status !== 201) throw new Error(r.text);
    return r.json;
  };
  const reports = [
    ['period_summary, 366 days', await gen({ report_type: 'period_summary', from: '2026-01-01', to: '2027-01-01' })],
    ['campaign_performance, 366 days', await gen({ campaign_id: camp })],
  ];
  const pm = findPostmaster(server.dataDir);
  const cdPid = server.process.pid;
  const lines = [];
  for (const [label, rep] of reports) {
    const rows = rep.data.rows ? rep.data.rows.length + rep.data.totals.length : rep.data.daily.length + 1;
    const res = {};
    for (const format of ['csv', 'pdf', 'csv', 'pdf']) { // warm, then measure each twice interleaved
      const pg0 = pgTicks(pm), cd0 = cpuTicks(cdPid), t0 = process.hrtime.bigint();
      let bytes = 0;
      for (let i = 0; i < ROUNDS; i++) {
        const r = await fetch(`${server.url}/api/reports/${rep.id}/export?format=${format}`, { headers: h });
        if (r.status !== 200) throw new Error(`${format}: ${r.status} ${await r.text()}`);
        bytes = (await r.arrayBuffer()).byteLength;
      }
      const wall = Number(process.hrtime.bigint() - t0) / 1e6 / ROUNDS;
      const pg1 = pgTicks(pm);
      let pg = 0;
      for (const [pid, t] of pg1) pg += t - (pg0.get(pid) || 0);
      const cd = cpuTicks(cdPid) - cd0;
      res[format] = { wall, cd: (cd * TICK_MS) / ROUNDS, pg: (pg * TICK_MS) / ROUNDS, bytes };
    }
    const { csv, pdf } = res;
    lines.push(`| ${label} | ${rows} | CSV | ${csv.bytes} | ${csv.wall.toFixed(1)} | ${csv.cd.toFixed(1)} | ${csv.pg.toFixed(1)} | ${(((csv.cd + csv.pg) * 1000) / rows).toFixed(1)} |`);
    lines.push(`| ${label} | ${rows} | PDF | ${pdf.bytes} | ${pdf.wall.toFixed(1)} | ${pdf.cd.toFixed(1)} | ${pdf.pg.toFixed(1)} | ${(((pdf.cd + pdf.pg) * 1000) / rows).toFixed(1)} |`);
    lines.push(`| ${label} | | PDF / CSV | | ${(pdf.wall / csv.wall).toFixed(2)} | ${(pdf.cd / Math.max(csv.cd, 0.01)).toFixed(1)} | ${(pdf.pg / Math.max(csv.pg, 0.01)).toFixed(2)} | ${((pdf.cd + pdf.pg) / Math.max(csv.cd + csv.pg, 0.01)).toFixed(1)} |`);
  }
  console.log(`rounds per format: ${ROUNDS}; load average at the end: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log('| report | rows | format | bytes | wall ms / export | campaignd CPU ms / export | PostgreSQL CPU ms / export | CPU µs / row (both) |');
  console.log('| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |');
  for (const l of lines) console.log(l);
} finally {
  await server.stop();
}
