// The bare row work of an SMS send, as a budget for the engine's own
// (bench/RESULTS.md "Session 14"): PostgreSQL's CPU per message for what no
// send engine can skip — each recipient's message row inserted (one
// INSERT ... SELECT over the audience, as sending.materialise does) and
// updated once with its result (status, sent_at, the provider's id, the
// body; in groups of G rows with a commit each, as the engine's steps
// settle them) — on campaignd's own schema: the table's indexes, checks,
// foreign keys and triggers, with campaignd.engine_batch on as in the
// engine's functions. Nothing else: no consent or suppression check, no
// lease, no progress or audit row. What sms.mjs measures for PostgreSQL
// above this is the cost of the engine's rules.
//
// CPU is the backend's own (utime + stime from /proc/self/stat, read by the
// superuser with pg_read_file: 10 ms ticks, hence N = 30,000 by default).
// Run once: CAMPAIGND_BIN=build/campaignd node bench/send/floor.mjs
// (N recipients, G messages per settle; prints one JSON line).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, signUpUser, sql, lit, dbUrl } from '../../tests/integration/helpers.js';

const N = Number(process.env.N || 30000);
const G = Number(process.env.G || 16);
const server = await startServer({});
try {
  const owner = await signUpUser(server);
  await sql(server, `insert into public.contacts (user_id, phone, first_name)
      select ${lit(owner.user.id)}, '+1555' || lpad(g::text, 7, '0'), 'C' || g from generate_series(1, ${N}) g`);
  const id = (await sql(server, `insert into public.campaigns (user_id, name, type, content)
      values (${lit(owner.user.id)}, 'floor', 'sms', 'Hi {{first_name}}') returning id`)).split('\n')[0];
  const cpu = `(select (split_part(s, ' ', 14)::bigint + split_part(s, ' ', 15)::bigint) * 10000
                from pg_catalog.pg_read_file('/proc/self/stat') s)`;
  // one psql session, each statement its own transaction (psql -f), so the
  // DO block may commit after each group
  const script = path.join(os.tmpdir(), `floor-${process.pid}.sql`);
  fs.writeFileSync(script, `
    checkpoint;
    create temp table t (k text, us bigint);
    insert into t select 'start', ${cpu};
    set campaignd.engine_batch = 'on';
    insert into public.sms_messages (campaign_id, contact_id, recipient, message, status)
      select ${lit(id)}, k.id, k.phone, '', 'queued' from public.contacts k
      where k.user_id = ${lit(owner.user.id)};
    insert into t select 'insert', ${cpu};
    do $$ declare v uuid[]; begin
      for v in select array_agg(s.id) from (
                 select m.id, (row_number() over (order by m.id) - 1) / ${G} as g
                 from public.sms_messages m where m.campaign_id = ${lit(id)}) s group by s.g loop
        update public.sms_messages m set status = 'sent', updated_at = now(), attempts = m.attempts + 1,
          sent_at = now(), message_sid = 'SM' || md5(m.id::text), segments = 1,
          message = 'Hi C1, this is the spring offer', last_error = null
        where m.id = any (v);
        commit;
      end loop; end $$;
    insert into t select 'settle', ${cpu};
    select json_object_agg(k, d) from (select k, us - lag(us) over (order by us) as d from t) x where d is not null;`);
  let out;
  try {
    out = execFileSync('psql', [await dbUrl(server), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-At', '-f', script], { encoding: 'utf8' });
  } finally {
    fs.rmSync(script, { force: true });
  }
  const us = JSON.parse(out.trim().split('\n').pop());
  console.log(JSON.stringify({
    n: N, group: G,
    postgres_cpu_us_per_msg: { insert: +(us.insert / N).toFixed(1), settle: +(us.settle / N).toFixed(1), both: +((us.insert + us.settle) / N).toFixed(1) },
    load_average: +os.loadavg()[0].toFixed(1),
  }));
} finally {
  await server.stop();
}
