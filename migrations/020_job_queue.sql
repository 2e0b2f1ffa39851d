-- 020_job_queue.sql: the job queue (schema jobs) and the sync scheduler.
--
-- jobs.jobs is one durable queue shared by every campaignd process on the
-- database (src/jobs/queue.c runs it; docs/jobs.md explains it):
--   pending --claim--> running --finish--> done | failed
--                         |  \--retry-----> pending (run_at = now() + back-off)
--                         \--lease expired-> pending (or failed after max_attempts)
-- A job is claimed with FOR UPDATE SKIP LOCKED and holds a lease (leased_until)
-- that its process renews; a process that dies stops renewing, the lease
-- expires and the next claim takes the job again. NOTIFY campaignd_jobs wakes
-- idle workers when a job becomes due.
--
-- The schema is private: no API role reads or writes the table; service_role
-- (the server's workers) calls the SECURITY DEFINER functions below, which are
-- owned by the database owner. RLS is on, with no policy, as everywhere.
--
-- The scheduler: jobs.next_run() computes when a schedule fires next
-- (hourly, daily, weekly, monthly, cron) in the schedule's IANA time zone with
-- PostgreSQL's tz database, DST-correct; a trigger keeps
-- data_sources.next_sync_at current when a source is created or its schedule
-- changes; jobs.enqueue_due_syncs() turns due sources into import.sync jobs
-- exactly once, whatever the number of processes, and advances next_sync_at
-- in the same transaction.
-- Applied once, inside one transaction, by the database owner.

create schema jobs;
comment on schema jobs is
    'Private: the job queue and the scheduler. No API role may use it; the server calls its functions as service_role.';
revoke all on schema jobs from public;
grant usage on schema jobs to service_role;
-- Functions are executable by PUBLIC by default; nothing in this schema is.
alter default privileges in schema jobs revoke execute on functions from public;

-- ---------------------------------------------------------------------------
-- The queue
-- ---------------------------------------------------------------------------

create table jobs.jobs (
    id bigint generated always as identity primary key,
    kind text not null
        constraint jobs_kind_valid check (kind ~ '^[a-z][a-z0-9_.]{0,62}$'),
    payload jsonb not null default '{}'::jsonb
        constraint jobs_payload_object check (jsonb_typeof(payload) = 'object'),
    status text not null default 'pending'
        constraint jobs_status_valid check (status in ('pending', 'running', 'done', 'failed')),
    run_at timestamptz not null default now(),
    attempts integer not null default 0,
    max_attempts integer not null default 3
        constraint jobs_max_attempts_range check (max_attempts between 1 and 100),
    retry_delay interval not null default '1 minute'
        constraint jobs_retry_delay_range check (retry_delay between '0' and '7 days'),
    leased_until timestamptz,                  -- while running: until when the lease holds
    locked_by text,                            -- the worker that holds (or last held) the job
    last_error text,
    dedupe_key text
        constraint jobs_dedupe_key_length check (length(dedupe_key) between 1 and 200),
    created_at timestamptz not null default now(),
    started_at timestamptz,
    finished_at timestamptz,
    constraint jobs_attempts_range check (attempts between 0 and max_attempts),
    constraint jobs_running_has_lease
        check ((status = 'running') = (leased_until is not null) and (status <> 'running' or locked_by is not null)),
    constraint jobs_finished_has_time check ((status in ('done', 'failed')) = (finished_at is not null))
);
comment on table jobs.jobs is
    'The job queue. Written only through jobs.enqueue/claim/finish; see docs/jobs.md.';

-- At most one pending or running job per dedupe key.
create unique index jobs_dedupe_key on jobs.jobs (dedupe_key)
    where dedupe_key is not null and status in ('pending', 'running');
create index jobs_due on jobs.jobs (run_at, id) where status = 'pending';
create index jobs_leases on jobs.jobs (leased_until) where status = 'running';
create index jobs_finished on jobs.jobs (finished_at) where status in ('done', 'failed');

alter table jobs.jobs enable row level security;
revoke all on jobs.jobs from public, anon, authenticated, service_role;

-- done and failed are final.
create function jobs.jobs_final_states() returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if old.status in ('done', 'failed') and new.status is distinct from old.status then
        raise exception 'job % is % and cannot become %', old.id, old.status, new.status
            using errcode = '23514';
    end if;
    return new;
end
$$;
create trigger final_states before update of status on jobs.jobs
    for each row execute function jobs.jobs_final_states();

-- The delay before retry number n (n = attempts already made, >= 1):
-- retry_delay * 2^(n-1), at most one day (or retry_delay itself if longer).
create function jobs.backoff(retry_delay interval, attempts integer)
returns interval
language sql immutable parallel safe
set search_path = ''
as $$
    select least(retry_delay * pg_catalog.power(2, least(greatest(attempts - 1, 0), 20)),
                 greatest(retry_delay, interval '1 day'))
$$;

-- Adds a job and returns its id. A dedupe_key naming a job that is still
-- pending or running returns that job's id instead of adding a second one.
-- Due jobs wake idle workers (NOTIFY campaignd_jobs, delivered at commit).
-- Invalid arguments raise 22023 (or the table's check constraints, 23514).
create function jobs.enqueue(kind text, payload jsonb,
                             run_at timestamptz default now(),
                             dedupe_key text default null,
                             max_attempts integer default 3,
                             retry_delay interval default '1 minute')
returns bigint
language plpgsql volatile
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
    v_id bigint;
    v_run_at timestamptz := coalesce(enqueue.run_at, pg_catalog.now());
begin
    if enqueue.kind is null or enqueue.kind !~ '^[a-z][a-z0-9_.]{0,62}$' then
        raise exception 'invalid job kind %', pg_catalog.quote_literal(pg_catalog.left(enqueue.kind, 80))
            using errcode = '22023';
    end if;
    if enqueue.dedupe_key is not null then
        select j.id into v_id from jobs.jobs j
        where j.dedupe_key = enqueue.dedupe_key and j.status in ('pending', 'running');
        if found then
            return v_id;
        end if;
    end if;
    insert into jobs.jobs as j (kind, payload, run_at, dedupe_key, max_attempts, retry_delay)
    values (enqueue.kind, coalesce(enqueue.payload, '{}'::jsonb), v_run_at, enqueue.dedupe_key,
            coalesce(enqueue.max_attempts, 3), coalesce(enqueue.retry_delay, interval '1 minute'))
    on conflict (dedupe_key) where dedupe_key is not null and status in ('pending', 'running')
    do nothing
    returning j.id into v_id;
    if v_id is null then
        -- A concurrent transaction added the same key first.
        select j.id into v_id from jobs.jobs j
        where j.dedupe_key = enqueue.dedupe_key and j.status in ('pending', 'running');
        return v_id;
    end if;
    if v_run_at <= pg_catalog.now() then
        perform pg_catalog.pg_notify('campaignd_jobs', enqueue.kind);
    end if;
    return v_id;
end
$$;

-- Claims the next due job of one of p_kinds for worker p_worker, leasing it
-- for p_lease_seconds; returns no row when none is due. First returns jobs
-- whose lease expired (their worker died) to pending with back-off, or fails
-- them when they have used every attempt.
create function jobs.claim(p_worker text, p_kinds text[], p_lease_seconds integer)
returns table (id bigint, kind text, payload jsonb, attempts integer, max_attempts integer)
language sql volatile
security definer
set search_path = ''
as $$
    with expired as (
        select j.id from jobs.jobs j
        where j.status = 'running' and j.leased_until < pg_catalog.now()
        for update skip locked
    )
    update jobs.jobs j
    set status = case when j.attempts >= j.max_attempts then 'failed' else 'pending' end,
        last_error = 'lease expired: worker ' || j.locked_by || ' stopped renewing it during attempt '
                     || j.attempts,
        run_at = pg_catalog.now() + jobs.backoff(j.retry_delay, j.attempts),
        finished_at = case when j.attempts >= j.max_attempts then pg_catalog.now() end,
        leased_until = null
    from expired
    where j.id = expired.id;

    with next as (
        select j.id from jobs.jobs j
        where j.status = 'pending' and j.run_at <= pg_catalog.now() and j.kind = any (p_kinds)
        order by j.run_at, j.id
        limit 1
        for update skip locked
    )
    update jobs.jobs j
    set status = 'running',
        attempts = j.attempts + 1,
        leased_until = pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds),
        locked_by = p_worker,
        started_at = pg_catalog.now()
    from next
    where j.id = next.id
    returning j.id, j.kind, j.payload, j.attempts, j.max_attempts;
$$;

-- Renews the leases of the running jobs held by p_workers (one process's
-- workers) and returns their ids; a job missing from the answer was lost.
create function jobs.renew_leases(p_workers text[], p_lease_seconds integer)
returns setof bigint
language sql volatile
security definer
set search_path = ''
as $$
    update jobs.jobs j
    set leased_until = pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds)
    where j.status = 'running' and j.locked_by = any (p_workers)
    returning j.id;
$$;

-- Ends attempt p_attempt of job p_id held by p_worker: p_outcome 'done',
-- 'fail' (permanent), 'retry' (pending again after back-off, or failed once
-- max_attempts is reached) or 'release' (the process is shutting down: pending
-- again at once, the attempt not counted). p_error goes to last_error (at most 2000
-- characters). With p_reschedule_seconds (only for 'done') the same kind,
-- payload and dedupe key are enqueued again that many seconds from now, in the
-- same transaction: recurring jobs. Returns the job's new status, or NULL when
-- p_worker no longer held the job (its lease was lost).
create function jobs.finish(p_id bigint, p_worker text, p_attempt integer, p_outcome text,
                            p_error text default null, p_reschedule_seconds double precision default null)
returns text
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_job jobs.jobs;
    v_status text;
begin
    if p_outcome is null or p_outcome not in ('done', 'fail', 'retry', 'release') then
        raise exception 'invalid outcome %', pg_catalog.quote_literal(pg_catalog.left(p_outcome, 40))
            using errcode = '22023';
    end if;
    select * into v_job from jobs.jobs j
    where j.id = p_id and j.status = 'running' and j.locked_by = p_worker and j.attempts = p_attempt
    for update;
    if not found then
        return null;
    end if;
    if p_outcome = 'release' then
        update jobs.jobs j
        set status = 'pending', attempts = j.attempts - 1, run_at = pg_catalog.now(),
            leased_until = null
        where j.id = p_id;
        return 'pending';
    end if;
    v_status := case
        when p_outcome = 'done' then 'done'
        when p_outcome = 'fail' or v_job.attempts >= v_job.max_attempts then 'failed'
        else 'pending'
    end;
    update jobs.jobs j
    set status = v_status,
        last_error = case when p_outcome = 'done' then j.last_error
                          else pg_catalog.left(coalesce(p_error, 'failed without a message'), 2000) end,
        run_at = case when v_status = 'pending'
                      then pg_catalog.now() + jobs.backoff(j.retry_delay, j.attempts) else j.run_at end,
        finished_at = case when v_status in ('done', 'failed') then pg_catalog.now() end,
        leased_until = null
    where j.id = p_id;
    if p_outcome = 'done' and p_reschedule_seconds is not null then
        perform jobs.enqueue(v_job.kind, v_job.payload,
                             pg_catalog.now() + pg_catalog.make_interval(secs => p_reschedule_seconds),
                             coalesce(v_job.dedupe_key, v_job.kind), v_job.max_attempts, v_job.retry_delay);
    end if;
    return v_status;
end
$$;

-- Deletes done and failed jobs that finished before now() - p_keep; returns
-- how many. Called by the retention job.
create function jobs.purge_finished(p_keep interval)
returns bigint
language sql volatile
security definer
set search_path = ''
as $$
    with gone as (
        delete from jobs.jobs j
        where j.status in ('done', 'failed') and j.finished_at < pg_catalog.now() - p_keep
        returning 1
    )
    select pg_catalog.count(*) from gone;
$$;

-- ---------------------------------------------------------------------------
-- Schedules
-- ---------------------------------------------------------------------------

-- The earliest instant at which the wall clock of zone p_tz shows p_local or,
-- when p_local does not exist there (a spring-forward gap), the first instant
-- after the gap: a repeated local time (fall back) names its first occurrence,
-- a skipped one the moment the clocks jump.
create function jobs.local_instant(p_local timestamp, p_tz text)
returns timestamptz
language plpgsql stable
set search_path = ''
as $$
declare
    v_try timestamp := p_local;
    v_at timestamptz;
begin
    for i in 1 .. 1441 loop
        v_at := v_try at time zone p_tz;
        if (v_at at time zone p_tz) = v_try then
            -- Repeated local times: PostgreSQL picks one reading; take the earlier.
            if ((v_at - interval '1 hour') at time zone p_tz) = v_try then
                v_at := v_at - interval '1 hour';
            elsif ((v_at - interval '30 minutes') at time zone p_tz) = v_try then
                v_at := v_at - interval '30 minutes';
            end if;
            return v_at;
        end if;
        v_try := pg_catalog.date_trunc('minute', v_try) + interval '1 minute';
    end loop;
    raise exception 'no instant in % shows local time %', p_tz, p_local using errcode = '22023';
end
$$;

-- One value of a cron field: a number in [p_min, p_max] or one of p_names
-- (index 0 = p_names[1] + p_name_base).
create function jobs.cron_value(p_text text, p_min integer, p_max integer, p_names text[], p_name_base integer)
returns integer
language plpgsql immutable
set search_path = ''
as $$
declare
    v integer;
begin
    if p_text ~ '^[0-9]{1,2}$' then
        v := p_text::integer;
    elsif p_names is not null and pg_catalog.array_position(p_names, p_text) is not null then
        v := pg_catalog.array_position(p_names, p_text) - 1 + p_name_base;
    else
        raise exception 'invalid cron value %', pg_catalog.quote_literal(pg_catalog.left(p_text, 40))
            using errcode = '22023';
    end if;
    if v < p_min or v > p_max then
        raise exception 'cron value % is outside %-%', v, p_min, p_max using errcode = '22023';
    end if;
    return v;
end
$$;

-- The sorted values a cron field allows: a comma list of *, N, N-M, with an
-- optional /STEP (*/S, N-M/S, and N/S meaning N-max/S); names (jan-dec,
-- sun-sat) where p_names is given. Raises 22023 on anything else.
create function jobs.cron_field(p_field text, p_min integer, p_max integer, p_names text[],
                                p_name_base integer)
returns integer[]
language plpgsql immutable
set search_path = ''
as $$
declare
    v_part text;
    v_m text[];
    v_lo integer;
    v_hi integer;
    v_step integer;
    v_out integer[] := '{}';
begin
    if p_field is null or p_field = '' then
        raise exception 'empty cron field' using errcode = '22023';
    end if;
    foreach v_part in array pg_catalog.string_to_array(p_field, ',') loop
        v_m := pg_catalog.regexp_match(v_part, '^(\*|([a-z0-9]+)(-([a-z0-9]+))?)(/([0-9]{1,2}))?$');
        if v_m is null then
            raise exception 'invalid cron field %', pg_catalog.quote_literal(pg_catalog.left(p_field, 60))
                using errcode = '22023';
        end if;
        if v_m[1] = '*' then
            v_lo := p_min;
            v_hi := p_max;
        else
            v_lo := jobs.cron_value(v_m[2], p_min, p_max, p_names, p_name_base);
            v_hi := case when v_m[4] is not null then jobs.cron_value(v_m[4], p_min, p_max, p_names, p_name_base)
                         when v_m[6] is not null then p_max
                         else v_lo end;
        end if;
        v_step := coalesce(v_m[6]::integer, 1);
        if v_step < 1 then
            raise exception 'cron step must be at least 1 in %', pg_catalog.quote_literal(v_part)
                using errcode = '22023';
        end if;
        if v_lo > v_hi then
            raise exception 'cron range % goes backwards', pg_catalog.quote_literal(v_part)
                using errcode = '22023';
        end if;
        v_out := v_out || array(select pg_catalog.generate_series(v_lo, v_hi, v_step));
    end loop;
    return array(select distinct x from pg_catalog.unnest(v_out) as x order by x);
end
$$;

-- The next instant strictly after p_after at which the 5-field cron expression
-- fires in zone p_tz (minute hour day-of-month month day-of-week; day-of-week
-- 0 or 7 is Sunday; @hourly, @daily, @midnight, @weekly, @monthly, @yearly and
-- @annually too). As in Vixie cron, when both day fields are restricted (do
-- not start with *) a day matches either; otherwise it must match both. Times
-- are wall-clock times: one in a DST gap fires when the clocks jump, a
-- repeated one fires once. Raises 22023 for an invalid expression or one that
-- never fires (e.g. 30 February).
create function jobs.cron_next(p_expr text, p_after timestamptz, p_tz text)
returns timestamptz
language plpgsql stable
set search_path = ''
as $$
declare
    c_months constant text[] := '{jan,feb,mar,apr,may,jun,jul,aug,sep,oct,nov,dec}';
    c_days constant text[] := '{sun,mon,tue,wed,thu,fri,sat}';
    v_expr text := pg_catalog.lower(pg_catalog.btrim(coalesce(p_expr, '')));
    v_f text[];
    v_min integer[];
    v_hour integer[];
    v_dom integer[];
    v_mon integer[];
    v_dow integer[];
    v_dom_star boolean;
    v_dow_star boolean;
    v_t timestamp;
    v_limit timestamp;
    v_day_ok boolean;
    v_next integer;
    v_at timestamptz;
begin
    if pg_catalog.length(v_expr) > 200 then
        raise exception 'a cron expression has at most 200 characters' using errcode = '22023';
    end if;
    v_expr := case v_expr
        when '@yearly' then '0 0 1 1 *'
        when '@annually' then '0 0 1 1 *'
        when '@monthly' then '0 0 1 * *'
        when '@weekly' then '0 0 * * 0'
        when '@daily' then '0 0 * * *'
        when '@midnight' then '0 0 * * *'
        when '@hourly' then '0 * * * *'
        else v_expr
    end;
    v_f := pg_catalog.regexp_split_to_array(v_expr, '\s+');
    if v_expr = '' or pg_catalog.cardinality(v_f) <> 5 then
        raise exception 'invalid cron expression %: it needs 5 fields (minute hour day-of-month month day-of-week)',
            pg_catalog.quote_literal(pg_catalog.left(p_expr, 100))
            using errcode = '22023';
    end if;
    v_min := jobs.cron_field(v_f[1], 0, 59, null, 0);
    v_hour := jobs.cron_field(v_f[2], 0, 23, null, 0);
    v_dom := jobs.cron_field(v_f[3], 1, 31, null, 0);
    v_mon := jobs.cron_field(v_f[4], 1, 12, c_months, 1);
    v_dow := array(select distinct x % 7 from pg_catalog.unnest(jobs.cron_field(v_f[5], 0, 7, c_days, 0)) as x);
    v_dom_star := pg_catalog.left(v_f[3], 1) = '*';
    v_dow_star := pg_catalog.left(v_f[5], 1) = '*';

    v_t := pg_catalog.date_trunc('minute', p_after at time zone p_tz) + interval '1 minute';
    -- Every day-of-month/month combination recurs within 8 years (29 February).
    v_limit := v_t + interval '8 years 1 day';
    while v_t < v_limit loop
        if not (pg_catalog.date_part('month', v_t)::integer = any (v_mon)) then
            v_t := pg_catalog.date_trunc('month', v_t) + interval '1 month';
            continue;
        end if;
        if v_dom_star or v_dow_star then
            v_day_ok := pg_catalog.date_part('day', v_t)::integer = any (v_dom)
                        and pg_catalog.date_part('dow', v_t)::integer = any (v_dow);
        else
            v_day_ok := pg_catalog.date_part('day', v_t)::integer = any (v_dom)
                        or pg_catalog.date_part('dow', v_t)::integer = any (v_dow);
        end if;
        if not v_day_ok then
            v_t := pg_catalog.date_trunc('day', v_t) + interval '1 day';
            continue;
        end if;
        if not (pg_catalog.date_part('hour', v_t)::integer = any (v_hour)) then
            v_t := pg_catalog.date_trunc('hour', v_t) + interval '1 hour';
            continue;
        end if;
        if not (pg_catalog.date_part('minute', v_t)::integer = any (v_min)) then
            select pg_catalog.min(x) into v_next from pg_catalog.unnest(v_min) as x
            where x > pg_catalog.date_part('minute', v_t)::integer;
            if v_next is null then
                v_t := pg_catalog.date_trunc('hour', v_t) + interval '1 hour';
            else
                v_t := pg_catalog.date_trunc('hour', v_t) + pg_catalog.make_interval(mins => v_next);
            end if;
            continue;
        end if;
        v_at := jobs.local_instant(v_t, p_tz);
        if v_at > p_after then
            return v_at;
        end if;
        v_t := v_t + interval '1 minute';  -- the first of a repeated time has passed
    end loop;
    raise exception 'cron expression % never fires', pg_catalog.quote_literal(pg_catalog.left(p_expr, 100))
        using errcode = '22023';
end
$$;

-- An integer key of a schedule config, or p_default when absent; 22023 when
-- present but not an integer in [p_min, p_max].
create function jobs.schedule_int(p_config jsonb, p_key text, p_min integer, p_max integer, p_default integer)
returns integer
language plpgsql immutable
set search_path = ''
as $$
declare
    v jsonb := p_config -> p_key;
begin
    if v is null or pg_catalog.jsonb_typeof(v) = 'null' then
        return p_default;
    end if;
    if pg_catalog.jsonb_typeof(v) = 'string' and (v #>> '{}') ~ '^[0-9]{1,4}$' then
        v := pg_catalog.to_jsonb((v #>> '{}')::integer);
    end if;
    if pg_catalog.jsonb_typeof(v) <> 'number' or (v #>> '{}') !~ '^[0-9]{1,4}$'
       or (v #>> '{}')::integer not between p_min and p_max then
        raise exception 'schedule_config.% must be an integer from % to %', p_key, p_min, p_max
            using errcode = '22023';
    end if;
    return (v #>> '{}')::integer;
end
$$;

-- When a schedule fires next, strictly after p_after, or NULL for 'manual'.
--   hourly:  at minute 0 of every hour of the zone (every elapsed hour, so
--            both repeated hours of a fall-back night run);
--   daily:   every day at schedule_config.time ("HH:MM", default "00:00");
--   weekly:  on day_of_week (0 = Sunday .. 6 = Saturday, 7 = Sunday; default
--            1, Monday) at time;
--   monthly: on day_of_month (1-31, default 1; past the month's last day it
--            runs on the last day) at time;
--   cron:    cron_expression (see jobs.cron_next).
-- All in schedule_config.timezone (an IANA name), else p_default_tz, else UTC;
-- a time in a DST gap runs when the clocks jump forward, a repeated one once.
-- Raises 22023 naming the bad key for an invalid schedule.
create function jobs.next_run(p_schedule text, p_config jsonb, p_after timestamptz, p_default_tz text)
returns timestamptz
language plpgsql stable
set search_path = ''
as $$
declare
    v_config jsonb := coalesce(p_config, '{}'::jsonb);
    v_tz text;
    v_local timestamp;
    v_time_text text;
    v_time interval;
    v_day date;
    v_month date;
    v_dow integer;
    v_dom integer;
    v_at timestamptz;
begin
    if p_schedule is null or p_schedule = 'manual' then
        return null;
    end if;
    if pg_catalog.jsonb_typeof(v_config -> 'timezone') not in ('string', 'null') then
        raise exception 'schedule_config.timezone must be a time zone name' using errcode = '22023';
    end if;
    v_tz := coalesce(nullif(v_config ->> 'timezone', ''), nullif(p_default_tz, ''), 'UTC');
    -- (pg_timezone_names would read the whole tz database on every call.)
    begin
        if pg_catalog.length(v_tz) > 64 then
            raise exception using errcode = '22023';
        end if;
        v_local := p_after at time zone v_tz;
    exception when invalid_parameter_value then
        raise exception 'unknown time zone %', pg_catalog.quote_literal(pg_catalog.left(v_tz, 80))
            using errcode = '22023', hint = 'use an IANA name such as America/New_York';
    end;

    if p_schedule = 'hourly' then
        -- Every zone's offset is a multiple of 15 minutes.
        v_at := pg_catalog.to_timestamp(pg_catalog.floor(pg_catalog.date_part('epoch', p_after) / 900) * 900 + 900);
        while pg_catalog.date_part('minute', v_at at time zone v_tz) <> 0 loop
            v_at := v_at + interval '15 minutes';
        end loop;
        return v_at;
    elsif p_schedule = 'cron' then
        if pg_catalog.jsonb_typeof(v_config -> 'cron_expression') is distinct from 'string' then
            raise exception 'schedule_config.cron_expression must be a string such as "0 9 * * 1-5"'
                using errcode = '22023';
        end if;
        return jobs.cron_next(v_config ->> 'cron_expression', p_after, v_tz);
    elsif p_schedule not in ('daily', 'weekly', 'monthly') then
        raise exception 'unknown schedule %', pg_catalog.quote_literal(pg_catalog.left(p_schedule, 40))
            using errcode = '22023';
    end if;

    if pg_catalog.jsonb_typeof(v_config -> 'time') not in ('string', 'null') then
        raise exception 'schedule_config.time must be a string "HH:MM"' using errcode = '22023';
    end if;
    v_time_text := coalesce(v_config ->> 'time', '00:00');
    if v_time_text !~ '^([01]?[0-9]|2[0-3]):[0-5][0-9]$' then
        raise exception 'schedule_config.time must be "HH:MM" (00:00 to 23:59), not %',
            pg_catalog.quote_literal(pg_catalog.left(v_time_text, 20))
            using errcode = '22023';
    end if;
    v_time := pg_catalog.make_interval(hours => pg_catalog.split_part(v_time_text, ':', 1)::integer,
                                       mins => pg_catalog.split_part(v_time_text, ':', 2)::integer);

    if p_schedule = 'daily' then
        v_day := v_local::date - 1;
        loop
            v_at := jobs.local_instant(v_day + v_time, v_tz);
            exit when v_at > p_after;
            v_day := v_day + 1;
        end loop;
    elsif p_schedule = 'weekly' then
        v_dow := jobs.schedule_int(v_config, 'day_of_week', 0, 7, 1) % 7;
        v_day := v_local::date - 1;
        loop
            if pg_catalog.date_part('dow', v_day)::integer = v_dow then
                v_at := jobs.local_instant(v_day + v_time, v_tz);
                exit when v_at > p_after;
            end if;
            v_day := v_day + 1;
        end loop;
    else
        v_dom := jobs.schedule_int(v_config, 'day_of_month', 1, 31, 1);
        v_month := pg_catalog.date_trunc('month', v_local)::date - interval '1 month';
        loop
            v_day := least(v_month + (v_dom - 1), (v_month + interval '1 month')::date - 1);
            v_at := jobs.local_instant(v_day + v_time, v_tz);
            exit when v_at > p_after;
            v_month := v_month + interval '1 month';
        end loop;
    end if;
    return v_at;
end
$$;

-- The time zone schedules use when their config names none.
create function jobs.default_timezone()
returns text
language sql stable
set search_path = ''
as $$
    select coalesce((select a.timezone::text from public.app_settings a limit 1), 'UTC')
$$;

-- What jobs a due sync asks for: max_attempts = 1 + max_retries (0-10,
-- default 3) when retry_on_failure is true (default false), else 1; the
-- retry delay is retry_delay_minutes (0-1440, default 15).
create function jobs.sync_max_attempts(p_config jsonb)
returns integer
language plpgsql immutable
set search_path = ''
as $$
begin
    if pg_catalog.jsonb_typeof(p_config -> 'retry_on_failure') not in ('boolean', 'null') then
        raise exception 'schedule_config.retry_on_failure must be true or false' using errcode = '22023';
    end if;
    if coalesce((p_config ->> 'retry_on_failure')::boolean, false) then
        return 1 + jobs.schedule_int(p_config, 'max_retries', 0, 10, 3);
    end if;
    return 1;
end
$$;

create function jobs.sync_retry_delay(p_config jsonb)
returns interval
language sql immutable
set search_path = ''
as $$
    select pg_catalog.make_interval(mins => jobs.schedule_int(p_config, 'retry_delay_minutes', 0, 1440, 15))
$$;

-- BEFORE INSERT/UPDATE on data_sources: next_sync_at follows the schedule
-- (NULL for manual, inactive or deleted sources); an invalid schedule_config
-- is refused with 22023 naming the key. An update that leaves the schedule as
-- it was keeps next_sync_at.
create function jobs.data_sources_next_sync() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    if tg_op = 'UPDATE'
       and new.sync_schedule is not distinct from old.sync_schedule
       and new.schedule_config is not distinct from old.schedule_config
       and new.is_active is not distinct from old.is_active
       and new.deleted_at is not distinct from old.deleted_at then
        return new;
    end if;
    if new.sync_schedule = 'cron' and not (new.schedule_config ? 'cron_expression') then
        return new;  -- the data_sources_cron_has_expression check refuses the row
    end if;
    if new.sync_schedule <> 'manual' then
        -- Validate even an inactive source's schedule, so it cannot fail later.
        perform jobs.sync_max_attempts(new.schedule_config), jobs.sync_retry_delay(new.schedule_config);
        new.next_sync_at := jobs.next_run(new.sync_schedule, new.schedule_config, pg_catalog.now(),
                                          jobs.default_timezone());
    end if;
    if new.sync_schedule = 'manual' or not new.is_active or new.deleted_at is not null then
        new.next_sync_at := null;
    end if;
    return new;
end
$$;
create trigger next_sync_at before insert or update of sync_schedule, schedule_config, is_active, deleted_at
    on public.data_sources
    for each row execute function jobs.data_sources_next_sync();

-- AFTER UPDATE OF timezone on app_settings: sources whose schedule names no
-- zone of their own follow the new default at once.
create function jobs.app_settings_reschedule() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    if new.timezone is distinct from old.timezone then
        update public.data_sources ds
        set next_sync_at = jobs.next_run(ds.sync_schedule, ds.schedule_config, pg_catalog.now(),
                                         new.timezone)
        where ds.is_active and ds.deleted_at is null and ds.sync_schedule <> 'manual'
          and coalesce(ds.schedule_config ->> 'timezone', '') = '';
    end if;
    return null;
end
$$;
create trigger reschedule_syncs after update of timezone on public.app_settings
    for each row execute function jobs.app_settings_reschedule();

-- Sources that exist already get their next_sync_at now; one whose schedule
-- cannot be computed stays unscheduled (NULL) until it is edited.
do $$
declare
    v_src record;
begin
    for v_src in
        select ds.id, ds.sync_schedule, ds.schedule_config from public.data_sources ds
        where ds.is_active and ds.deleted_at is null and ds.sync_schedule <> 'manual'
    loop
        begin
            update public.data_sources ds
            set next_sync_at = jobs.next_run(v_src.sync_schedule, v_src.schedule_config,
                                             pg_catalog.now(), jobs.default_timezone())
            where ds.id = v_src.id;
        exception when invalid_parameter_value then
            update public.data_sources ds set next_sync_at = null where ds.id = v_src.id;
        end;
    end loop;
end
$$;

-- The scheduler's pass: every active source whose next_sync_at has come gets
-- one import.sync job (payload {"data_source_id", "trigger": "schedule"},
-- dedupe key import.sync:<id>, so a sync still pending or running is not
-- doubled) and its next_sync_at advanced past now, in this transaction. Rows
-- are locked with SKIP LOCKED, so concurrent passes from several processes
-- enqueue each due sync once. At most p_limit sources per pass; returns how
-- many were enqueued. A source whose schedule can no longer be computed (its
-- time zone vanished from the tz database) is paused: next_sync_at NULL.
create function jobs.enqueue_due_syncs(p_limit integer default 100)
returns integer
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_tz text := jobs.default_timezone();
    v_src record;
    v_next timestamptz;
    v_count integer := 0;
begin
    for v_src in
        select ds.id, ds.sync_schedule, ds.schedule_config
        from public.data_sources ds
        where ds.is_active and ds.deleted_at is null and ds.sync_schedule <> 'manual'
          and ds.next_sync_at <= pg_catalog.now()
        order by ds.next_sync_at
        limit p_limit
        for update skip locked
    loop
        begin
            v_next := jobs.next_run(v_src.sync_schedule, v_src.schedule_config, pg_catalog.now(), v_tz);
            perform jobs.enqueue('import.sync',
                                 pg_catalog.jsonb_build_object('data_source_id', v_src.id, 'trigger', 'schedule'),
                                 pg_catalog.now(), 'import.sync:' || v_src.id::text,
                                 jobs.sync_max_attempts(v_src.schedule_config),
                                 jobs.sync_retry_delay(v_src.schedule_config));
            v_count := v_count + 1;
        exception when invalid_parameter_value then
            v_next := null;
        end;
        update public.data_sources ds set next_sync_at = v_next where ds.id = v_src.id;
    end loop;
    return v_count;
end
$$;

revoke all on all functions in schema jobs from public, anon, authenticated, service_role;
grant execute on function jobs.enqueue(text, jsonb, timestamptz, text, integer, interval),
    jobs.claim(text, text[], integer),
    jobs.renew_leases(text[], integer),
    jobs.finish(bigint, text, integer, text, text, double precision),
    jobs.purge_finished(interval),
    jobs.enqueue_due_syncs(integer),
    jobs.next_run(text, jsonb, timestamptz, text)
    to service_role;
