-- Where the database time of the send engine goes, per function
-- (track_functions), without a provider: materialises 2,000 recipients,
-- then claims 4 batches of 50 and steps through them the way
-- src/sending/engine.c does (one sending.step per message), all in one
-- transaction that is rolled back. Run as the database owner on a test
-- cluster that has tests/sql/support/helpers.sql loaded:
--   psql "$(campaignd db-url)" -X -q -f tests/sql/support/helpers.sql
--   psql "$(campaignd db-url)" -X -q -f bench/send/profile.sql

begin;
set local track_functions = 'all';
set local client_min_messages = warning;
select tests.create_user('prof' || floor(random()*1e9)::text || '@x.test', 'user') as u \gset
insert into public.contacts (user_id, email, first_name) select :'u', 'p' || g || '-' || :'u' || '@prof.test', 'P' from generate_series(1, 2000) g;
insert into public.campaigns (id, user_id, name, type, subject, content) values (gen_random_uuid(), :'u', 'prof', 'email', 's', 'c') returning id as c \gset
select sending.start(:'c', 1) is not null;
\echo materialise 2000
select sending.ensure_materialised(:'c');
select sending.recover(:'c');
\echo claim and step
do $$
declare cid uuid := (select id from public.campaigns where name = 'prof' order by created_at desc limit 1);
  k uuid; ids uuid[]; prev jsonb; t0 timestamptz; t_claim interval := '0'; t_step interval := '0'; i int;
begin
  for b in 1..4 loop
    k := gen_random_uuid();
    t0 := clock_timestamp();
    select array_agg(id) into ids from sending.claim('email', cid, k, 50, 60);
    t_claim := t_claim + (clock_timestamp() - t0);
    prev := null;
    t0 := clock_timestamp();
    for i in 1..array_length(ids, 1) loop
      perform sending.step('email', cid, k, prev, array[ids[i]], '[["https://e.com/a","https://e.com/b"]]', null, 3, 60, 60);
      prev := jsonb_build_array(jsonb_build_object('id', ids[i], 'outcome', 'accepted', 'provider_id', '<' || ids[i] || '@y>', 'error', ''));
    end loop;
    perform sending.step('email', cid, k, prev, null, null, ids, 3, 60, 60);
    t_step := t_step + (clock_timestamp() - t0);
  end loop;
  raise warning 'claim per batch: % ms; step per message: % us',
    extract(epoch from t_claim) * 1000 / 4, extract(epoch from t_step) * 1e6 / 204;
end $$;

select schemaname||'.'||funcname f, calls, round(total_time::numeric,1) total_ms, round(self_time::numeric,1) self_ms from pg_stat_xact_user_functions order by self_time desc limit 15;
rollback;
