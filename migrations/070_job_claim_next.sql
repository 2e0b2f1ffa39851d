-- 070_job_claim_next.sql: the claim with a cached plan, and whether more is due.
--
-- jobs.claim (020) is LANGUAGE sql and not inlinable (SECURITY DEFINER, a
-- set-returning UPDATE): PostgreSQL parses and plans its two statements at
-- every call, and every idle worker calls it on every wake-up and poll. A
-- PL/pgSQL body keeps its plans for the life of the connection.
--
-- jobs.claim_next is the same claim (same lease sweep, same FOR UPDATE SKIP
-- LOCKED pick, same lease) and also answers `more`: whether another job of
-- p_kinds was due and pending when it claimed. The process wakes one idle
-- worker per notification and passes the wake-up on only when `more` says so
-- (src/jobs/queue.c), instead of waking every idle worker to claim once each
-- when one job was added. `more` may say true for a job another worker is
-- claiming at that moment (one empty claim); a job committed after this claim's
-- snapshot comes with its own NOTIFY.
--
-- jobs.claim keeps its signature and result for the callers that use it, and
-- now runs jobs.claim_next.

create function jobs.claim_next(p_worker text, p_kinds text[], p_lease_seconds integer)
returns table (id bigint, kind text, payload jsonb, attempts integer, max_attempts integer,
               more boolean)
language plpgsql volatile
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
    v_now timestamptz := pg_catalog.now();
begin
    -- jobs whose lease expired (their worker died): pending again with
    -- back-off, or failed after their last attempt
    update jobs.jobs j
    set status = case when j.attempts >= j.max_attempts then 'failed' else 'pending' end,
        last_error = 'lease expired: worker ' || j.locked_by || ' stopped renewing it during attempt '
                     || j.attempts,
        run_at = v_now + jobs.backoff(j.retry_delay, j.attempts),
        finished_at = case when j.attempts >= j.max_attempts then v_now end,
        leased_until = null
    from (select e.id from jobs.jobs e
          where e.status = 'running' and e.leased_until < v_now
          for update skip locked) expired
    where j.id = expired.id;

    return query
    with next as (
        select n.id from jobs.jobs n
        where n.status = 'pending' and n.run_at <= v_now and n.kind = any (p_kinds)
        order by n.run_at, n.id
        limit 1
        for update skip locked
    ), claimed as (
        update jobs.jobs j
        set status = 'running',
            attempts = j.attempts + 1,
            leased_until = v_now + pg_catalog.make_interval(secs => p_lease_seconds),
            locked_by = p_worker,
            started_at = v_now
        from next
        where j.id = next.id
        returning j.id, j.kind, j.payload, j.attempts, j.max_attempts
    )
    select c.id, c.kind, c.payload, c.attempts, c.max_attempts,
           exists (select 1 from jobs.jobs m
                   where m.status = 'pending' and m.run_at <= v_now and m.kind = any (p_kinds)
                     and m.id <> c.id)
    from claimed c;
end
$$;
revoke all on function jobs.claim_next(text, text[], integer) from public;
grant execute on function jobs.claim_next(text, text[], integer) to service_role;

create or replace function jobs.claim(p_worker text, p_kinds text[], p_lease_seconds integer)
returns table (id bigint, kind text, payload jsonb, attempts integer, max_attempts integer)
language plpgsql volatile
security definer
set search_path = ''
as $$
begin
    return query
    select c.id, c.kind, c.payload, c.attempts, c.max_attempts
    from jobs.claim_next(p_worker, p_kinds, p_lease_seconds) c;
end
$$;
