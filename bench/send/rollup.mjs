// The analytics roll-up's run against a message history (migration 084,
// bench/RESULTS.md "Session 20"): what the roll-up job costs once a server
// has sent for a while. C campaigns of M e-mails each, sent over the last
// 60 days (written as the engine writes, so nothing is marked), then one
// open today on one campaign's message (a tracking event: it marks its
// campaign). Times, in one psql session, each R times:
//   old:   sending.rollup_analytics(yesterday), what the job ran before 084
//          (the days from yesterday on, from every message);
//   due:   sending.rollup_due(1000, true), what it runs now (the marked campaign,
//          every day of it), the mark made again before each run;
//   idle:  sending.rollup_due(1000, true) with nothing marked and nothing sending;
//   old_all_days: sending.rollup_analytics over all 60 days (the work per
//          message counted, for comparison with `due`: C times its messages).
// Also the message rows each read (pg_stat_xact_user_tables). Prints one
// JSON line. Run: CAMPAIGND_BIN=build/campaignd node bench/send/rollup.mjs
// (C=50, M=4000, R=5 by default).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, signUpUser, sql, lit, dbUrl } from '../../tests/integration/helpers.js';

const C = Number(process.env.C || 50);
const M = Number(process.env.M || 4000);
const R = Number(process.env.R || 5);
const server = await startServer({ SEND_ROLLUP_INTERVAL: '0' });
try {
  const owner = await signUpUser(server);
  const uid = lit(owner.user.id);
  await sql(server, `insert into public.campaigns (user_id, name, type, content, status)
      select ${uid}, 'history ' || g, 'email', '<p>Hi</p>', 'sent' from generate_series(1, ${C}) g`);
  await sql(server, `set campaignd.engine_batch = 'on';
    insert into public.email_messages (campaign_id, recipient, subject, status, sent_at, created_at, opened_at)
    select c.id, 'r' || g || '@bench.test', 'Hi', case when g % 7 = 0 then 'opened' else 'delivered' end,
           now() - make_interval(days => 1 + (row_number() over ())::int % 60),
           now() - interval '61 days', case when g % 7 = 0 then now() - interval '1 day' end
    from public.campaigns c cross join generate_series(1, ${M}) g
    where c.user_id = ${uid};
    analyze public.email_messages;`);
  const one = (await sql(server, `select m.id from public.email_messages m
      where m.status = 'delivered' order by m.id limit 1`)).trim();
  // one session: the marks, the runs and their timings and reads
  const script = path.join(os.tmpdir(), `rollup-${process.pid}.sql`);
  // a write outside the engine, as a webhook's (it marks the campaign)
  const mark = `update public.email_messages set updated_at = now() where id = ${lit(one)};`;
  const run = (name, call) => `
    select pg_stat_clear_snapshot();
    insert into t select '${name}', clock_timestamp(),
      (select coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0)), 0) from pg_stat_xact_user_tables where relname = 'email_messages');
    select ${call};
    insert into t select '${name}.end', clock_timestamp(),
      (select coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0)), 0) from pg_stat_xact_user_tables where relname = 'email_messages');
    commit; begin;`;
  let body = `set campaignd.engine_batch = '';
    create temp table t (k text, at timestamptz, rows bigint);
    select sending.rollup_due(1000, true);  -- what the history's insert marked
    begin;`;
  for (let i = 0; i < R; i++) {
    body += run('old', `sending.rollup_analytics((now() at time zone 'UTC')::date - 1)`);
    body += mark + run('due', 'sending.rollup_due(1000, true)');
    body += run('idle', 'sending.rollup_due(1000, true)');
    body += run('old_all_days', `sending.rollup_analytics((now() at time zone 'UTC')::date - 70)`);
  }
  body += `commit;
    select json_object_agg(k, json_build_object('ms', ms, 'rows', rows)) from (
      select split_part(a.k, '.', 1) as k,
             round((percentile_cont(0.5) within group (order by extract(epoch from b.at - a.at) * 1000))::numeric, 1) as ms,
             round(avg(b.rows - a.rows)) as rows
      from (select *, row_number() over (partition by k order by at) n from t where k not like '%.end') a
      join (select *, row_number() over (partition by k order by at) n from t where k like '%.end') b
        on b.k = a.k || '.end' and b.n = a.n
      group by 1) x;`;
  fs.writeFileSync(script, body);
  let out;
  try {
    out = execFileSync('psql', [await dbUrl(server), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-At', '-f', script], { encoding: 'utf8' });
  } finally {
    fs.rmSync(script, { force: true });
  }
  const r = JSON.parse(out.trim().split('\n').pop());
  console.log(JSON.stringify({
    campaigns: C, messages: C * M, runs: R, median_ms_and_message_rows_read: r,
    ratio_old_over_due: +(r.old.ms / r.due.ms).toFixed(1),
    load_average: +os.loadavg()[0].toFixed(1),
  }));
} finally {
  await server.stop();
}
