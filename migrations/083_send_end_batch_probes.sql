-- 083_send_end_batch_probes.sql: a batch's end reads its messages' statuses
-- by the primary key, never by scanning the message table (issue 12).
--
-- sending.end_batch (077) writes the batch's 'sent_batch' audit event with
-- the statuses of its messages, read as `m.id = any (p_batch)`. It runs in
-- the step's transaction, under the step's plan_cache_mode =
-- force_generic_plan (063): one plan per engine connection, made at its
-- first batch end and kept until the table's statistics change (an
-- analyse), and since session 18 the engine's connection lives from one
-- send job to the next. When that first batch end found the message table
-- small (a new installation's first campaign, a worker alone writing the
-- audience 500 recipients at a time), the generic plan of `= any ($1)` (an
-- array of unknown length) was a sequential scan: every later batch end
-- read the whole table as it grew, O(recipients) per batch until an
-- autovacuum's analyse replaced the plan. The 10,000-SMS bench with one
-- worker read ~50 message rows per SMS that way, and its batch ends took
-- 2.4 ms each, ~10 % of the engine backend's CPU.
--
-- Now the statuses are read by sending.batch_statuses, whose one statement
-- is planned with sequential scans disabled: the primary key's index with
-- the batch's ids as its keys, whatever the statistics say. (Per-id probes,
-- a LATERAL as the step's lookups, were tried first: as robust, but dearer
-- than one index scan of all the ids: 0.41 against 0.33-0.36 ms per batch
-- end of 100 with one worker.) The event is the same object.
-- Applied once, inside one transaction, by the database owner.

-- The statuses of a batch's messages: each status with its messages' ids
-- in id order (null for none). Only this statement runs with enable_seqscan
-- off (a whole function of the engine under it planned worse elsewhere:
-- bench/RESULTS.md "send-pg").
create function sending.batch_statuses(p_channel text, p_batch uuid[])
returns jsonb
language plpgsql stable
security definer
set search_path = ''
set enable_seqscan = off
as $$
begin
    return (select pg_catalog.jsonb_object_agg(x.status, x.ids) from (
        select m.status, pg_catalog.jsonb_agg(m.id order by m.id) as ids
        from public.email_messages m where p_channel = 'email' and m.id = any (p_batch)
        group by m.status
        union all
        select m.status, pg_catalog.jsonb_agg(m.id order by m.id)
        from public.sms_messages m where p_channel = 'sms' and m.id = any (p_batch)
        group by m.status) x);
end
$$;
revoke all on function sending.batch_statuses(text, uuid[]) from public;

create or replace function sending.end_batch(p_channel text, p_campaign uuid, p_claim uuid, p_batch uuid[])
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_left integer;
begin
    -- the claim's reservation: what no step took is given back. SKIP
    -- LOCKED: a cancel or a recovery that holds it deletes it and gives back
    -- what it held itself (never a wait for it here, at the end of a step
    -- that holds progress rows a cancel waits for)
    with gone as (
        delete from sending.holds h
        where h.ctid = any (array(
            select k.ctid from sending.holds k
            where k.campaign_id = p_campaign and k.claim = p_claim and not k.in_flight
            for update skip locked))
        returning pg_catalog.cardinality(h.ids) as n)
    select coalesce(sum(gone.n), 0)::integer into v_left from gone;
    if v_left > 0 then
        perform sending.release(p_channel, v_left);
    end if;
    perform sending.audit_batch(p_channel, p_campaign, pg_catalog.jsonb_build_object(
        'event', 'sent_batch', 'claim', p_claim, 'returned', v_left,
        'messages', sending.batch_statuses(p_channel, p_batch)));
end
$$;
