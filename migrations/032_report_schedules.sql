-- 032_report_schedules.sql: scheduled reports (issue 12).
--
-- public.report_schedules: a user (role user or admin) schedules a report
-- beyond one campaign (period_summary, channel_comparison, audience), weekly
-- or monthly in the application's time zone (jobs.next_run of
-- 020_job_queue.sql: weekly on day_of_week at time, monthly on day_of_month
-- at time), mailed to chosen users of the instance. On each run the server
-- (src/api/report_schedules.c, job kind report.scheduled) generates the
-- report as the owner (so the owner's row-level security decides what
-- counts), saves its CSV in the private "exports" bucket under the owner's
-- folder, and queues one mail per recipient (mail.send jobs, migration 031)
-- with the CSV attached and a signed, expiring download link.
--
-- Rules held here:
--   * the owner manages their own schedules (admins read all); viewers none;
--   * user_id is the caller, next_run_at and the last_* columns belong to the
--     server (column privileges);
--   * recipients are users of the instance: 1 to 20 distinct user ids of
--     live users (trigger, 23503 otherwise);
--   * next_run_at follows frequency and schedule_config (trigger), NULL
--     while disabled.
-- Applied once, inside one transaction, by the database owner.

create table public.report_schedules (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
    name varchar(200) not null
        constraint report_schedules_name_not_blank check (btrim(name) <> ''),
    report_type varchar(40) not null
        constraint report_schedules_type_valid
        check (report_type in ('period_summary', 'channel_comparison', 'audience')),
    frequency varchar(10) not null
        constraint report_schedules_frequency_valid check (frequency in ('weekly', 'monthly')),
    schedule_config jsonb not null default '{}'::jsonb
        constraint report_schedules_config_object check (jsonb_typeof(schedule_config) = 'object'),
    recipients uuid[] not null
        constraint report_schedules_recipients_count
        check (cardinality(recipients) between 1 and 20 and array_position(recipients, null) is null),
    enabled boolean not null default true,
    next_run_at timestamptz,
    last_run_at timestamptz,
    last_report_id uuid references public.reports (id) on delete set null,
    last_error text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index report_schedules_user_idx on public.report_schedules (user_id);
create index report_schedules_due_idx on public.report_schedules (next_run_at) where enabled;
comment on table public.report_schedules is
    'Scheduled reports: generated weekly or monthly (app time zone) and mailed to users of the instance with the CSV attached and a signed link.';

create trigger report_schedules_updated_at before update on public.report_schedules
    for each row execute function public.set_updated_at();

-- Recipients are distinct live users; next_run_at follows the schedule. The
-- config keys are those of jobs.next_run: day_of_week (weekly), day_of_month
-- (monthly), time "HH:MM"; the zone is always the application's.
create function public.report_schedules_check() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_missing integer;
begin
    -- checked when recipients are written: a recipient deleted later is
    -- skipped by the runs, and never blocks the server's own updates
    if tg_op = 'INSERT' or new.recipients is distinct from old.recipients then
        if (select count(distinct r) from pg_catalog.unnest(new.recipients) r)
           <> pg_catalog.cardinality(new.recipients) then
            raise exception 'recipients must be distinct' using errcode = '23514';
        end if;
        select count(*) into v_missing from pg_catalog.unnest(new.recipients) r
        where not exists (select 1 from auth.users u where u.id = r and u.deleted_at is null);
        if v_missing > 0 then
            raise exception 'recipients must be users of this instance (% are not)', v_missing
                using errcode = '23503';
        end if;
    end if;
    if new.schedule_config ? 'timezone' then
        raise exception 'scheduled reports run in the application''s time zone: schedule_config.timezone is not accepted'
            using errcode = '22023';
    end if;
    if tg_op = 'INSERT' or new.frequency is distinct from old.frequency
       or new.schedule_config is distinct from old.schedule_config
       or new.enabled is distinct from old.enabled then
        new.next_run_at := case when new.enabled
            then jobs.next_run(new.frequency, new.schedule_config, pg_catalog.now(), jobs.default_timezone())
        end;
    end if;
    return new;
end
$$;
create trigger report_schedules_check before insert or update on public.report_schedules
    for each row execute function public.report_schedules_check();
revoke all on function public.report_schedules_check() from public, anon, authenticated;

-- AFTER UPDATE OF timezone on app_settings: schedules follow the new zone at once.
create function public.report_schedules_reschedule() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    update public.report_schedules s
    set next_run_at = jobs.next_run(s.frequency, s.schedule_config, pg_catalog.now(), new.timezone::text)
    where s.enabled;
    return null;
end
$$;
revoke all on function public.report_schedules_reschedule() from public, anon, authenticated;
create trigger report_schedules_reschedule after update of timezone on public.app_settings
    for each row when (old.timezone is distinct from new.timezone)
    execute function public.report_schedules_reschedule();

alter table public.report_schedules enable row level security;
revoke all on public.report_schedules from public, anon, authenticated;
grant select, delete on public.report_schedules to authenticated;
grant insert (name, report_type, frequency, schedule_config, recipients, enabled)
    on public.report_schedules to authenticated;
grant update (name, report_type, frequency, schedule_config, recipients, enabled)
    on public.report_schedules to authenticated;
grant all on public.report_schedules to service_role;

create policy report_schedules_select_own on public.report_schedules for select to app_user
    using (user_id = (select auth.uid()));
create policy report_schedules_insert_own on public.report_schedules for insert to app_user
    with check (user_id = (select auth.uid()));
create policy report_schedules_update_own on public.report_schedules for update to app_user
    using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy report_schedules_delete_own on public.report_schedules for delete to app_user
    using (user_id = (select auth.uid()));
create policy report_schedules_select_admin on public.report_schedules for select to app_admin
    using (true);
create policy report_schedules_insert_admin on public.report_schedules for insert to app_admin
    with check (user_id = (select auth.uid()));
create policy report_schedules_update_admin on public.report_schedules for update to app_admin
    using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy report_schedules_delete_admin on public.report_schedules for delete to app_admin
    using (user_id = (select auth.uid()));

-- "Send now": the owner asks for a run at once (POST /rest/v1/rpc/run_report_schedule).
-- Returns the job id; a run of that schedule still pending or running is not doubled.
create function public.run_report_schedule(p_id uuid)
returns bigint
language plpgsql volatile
security definer
set search_path = ''
as $$
begin
    if not exists (select 1 from public.report_schedules s
                   where s.id = p_id and s.user_id = auth.uid()
                     and auth.db_role_for(auth.uid()::text) in ('app_admin', 'app_user')) then
        raise exception 'no such report schedule of yours' using errcode = '42501';
    end if;
    return jobs.enqueue('report.scheduled',
                        pg_catalog.jsonb_build_object('schedule_id', p_id,
                                                      'slot', pg_catalog.now()),
                        pg_catalog.now(), 'report.scheduled:' || p_id::text, 3, '1 minute');
end
$$;
revoke all on function public.run_report_schedule(uuid) from public, anon;
grant execute on function public.run_report_schedule(uuid) to authenticated, service_role;

-- The scheduler's pass for reports (src/jobs/queue.c calls it with enqueue_due_syncs):
-- every enabled schedule whose next_run_at has come gets one report.scheduled
-- job (payload {schedule_id, slot}: the instant it fires for) and its
-- next_run_at advanced past now, in this transaction, rows locked SKIP LOCKED
-- so concurrent passes enqueue each run once. Returns how many.
create function jobs.enqueue_due_reports(p_limit integer default 100)
returns integer
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v record;
    v_count integer := 0;
    v_next timestamptz;
begin
    for v in
        select s.id, s.frequency, s.schedule_config, s.next_run_at
        from public.report_schedules s
        where s.enabled and s.next_run_at <= pg_catalog.now()
        order by s.next_run_at
        limit p_limit
        for update skip locked
    loop
        begin
            v_next := jobs.next_run(v.frequency, v.schedule_config, pg_catalog.now(), jobs.default_timezone());
            perform jobs.enqueue('report.scheduled',
                                 pg_catalog.jsonb_build_object('schedule_id', v.id, 'slot', v.next_run_at),
                                 pg_catalog.now(), 'report.scheduled:' || v.id::text, 3, '5 minutes');
            v_count := v_count + 1;
        exception when invalid_parameter_value then
            v_next := null;
        end;
        update public.report_schedules s set next_run_at = v_next where s.id = v.id;
    end loop;
    return v_count;
end
$$;
revoke all on function jobs.enqueue_due_reports(integer) from public, anon, authenticated;
grant execute on function jobs.enqueue_due_reports(integer) to service_role;

-- What one run needs (service_role only): the schedule, its owner, the
-- period the run covers (weekly: the 7 days before the run's day; monthly:
-- the previous calendar month; days of the application's zone) and the
-- recipients' addresses (live users only). No row when the schedule is gone,
-- disabled, or this slot already ran (a retried job never mails twice).
create function jobs.report_run_info(p_id uuid, p_slot timestamptz)
returns table (user_id uuid, name text, report_type text, period_from date, period_to date,
               emails text[])
language sql stable
security definer
set search_path = ''
as $$
    select s.user_id, s.name::text, s.report_type::text,
           case s.frequency when 'weekly' then d.today - 7
                else (pg_catalog.date_trunc('month', d.today::timestamp) - interval '1 month')::date end,
           case s.frequency when 'weekly' then d.today - 1
                else (pg_catalog.date_trunc('month', d.today::timestamp) - interval '1 day')::date end,
           array(select u.email::text from auth.users u
                 where u.id = any (s.recipients) and u.deleted_at is null and u.email is not null
                 order by u.email)
    from public.report_schedules s,
         lateral (select (p_slot at time zone jobs.default_timezone())::date as today) d
    where s.id = p_id and s.enabled
      and (s.last_run_at is null or s.last_run_at < p_slot)
$$;
revoke all on function jobs.report_run_info(uuid, timestamptz) from public, anon, authenticated;
grant execute on function jobs.report_run_info(uuid, timestamptz) to service_role;
