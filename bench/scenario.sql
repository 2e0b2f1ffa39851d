-- Data of the "list campaigns" benchmark (bench/run.sh), loaded by the database
-- owner in one transaction. psql variable uid: the signed-up bench user, who is
-- owner 0 of 1,000 and so owns 100 of the 100,000 campaigns.
--   public.campaigns       the table of migration 004 with its own RLS policies;
--   public.bench_campaigns the same rows and columns (LIKE public.campaigns, so
--                          the two answers are the same bytes) with the owner
--                          policy only and an index that serves "my campaigns,
--                          newest first": the two lists differ only in their
--                          policies and triggers, which is what the ratio is for.
--                          (Until 2026-12-05 it had the specification's 9
--                          columns; campaigns has 23 since the sending work, so
--                          the ratio also measured 14 more columns of JSON.)

-- Skip the audit triggers while loading (100,000 audit rows would only slow this down).
set session_replication_role = replica;

create temp table bench_owners (n integer primary key, id uuid not null);
insert into bench_owners values (0, :'uid');
insert into bench_owners select n, gen_random_uuid() from generate_series(1, 999) n;

insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data)
    select id, 'authenticated', 'authenticated', 'bench-owner-' || n || '@example.com', now(),
           '{"provider": "email", "providers": ["email"], "role": "user"}'
    from bench_owners where n > 0;

insert into public.campaigns (user_id, name, type, status, content, created_at, updated_at)
    select o.id, 'Campaign ' || g, (array['email', 'sms', 'social'])[1 + g % 3], 'draft',
           'Hello, this is campaign ' || g, now() - make_interval(secs => g),
           now() - make_interval(secs => g)
    from generate_series(1, 100000) g
    join bench_owners o on o.n = g % 1000;

reset session_replication_role;

drop table if exists public.bench_campaigns;
create table public.bench_campaigns (like public.campaigns including defaults, primary key (id));
insert into public.bench_campaigns select * from public.campaigns;
create index bench_campaigns_user_created on public.bench_campaigns (user_id, created_at desc);

alter table public.bench_campaigns enable row level security;
revoke all on public.bench_campaigns from public, anon, authenticated;
grant select on public.bench_campaigns to authenticated;
grant all on public.bench_campaigns to service_role;
create policy bench_campaigns_select_own on public.bench_campaigns
    for select to authenticated using (user_id = (select auth.uid()));
