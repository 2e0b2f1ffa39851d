-- 077_send_cancel_recover.sql: a cancel, a recovery or a slow relay never
-- counts a message twice nor holds it forever (issue 12, correctness; the
-- "Left:" of 075 in docs/architecture.md).
--
-- 1. A cancel racing a step marked a message of the group the step was
--    putting in flight `dropped`/`canceled` and the worker still sent it:
--    the step read the campaign's status without a lock, the cancel read
--    the groups in flight before its updates, neither saw the other. Now
--    the cancel deletes the campaign's reservations (waiting for a step
--    that holds one: its group is then committed and seen) before it reads
--    the groups, and the step takes its reservation first: a reservation
--    the cancel took away sends nothing.
-- 2. Holds given back: the cancel deletes the reservations (their ids are
--    cancelled, their monthly reservations returned) and has a worker look
--    at the campaign when its first group's lease runs out (a group of a
--    dead worker then becomes `unknown` and counted, as for a running
--    campaign; sending.recover schedules the next look while holds remain);
--    the finish deletes the empty reservations a dead worker left.
-- 3. A relay slower than SEND_LEASE_SECONDS: a recovery made its group
--    `unknown` while the worker was still handing it over, and the
--    worker's settle found no group and dropped the results. Now a result
--    for a message a recovery made unknown (its status `unknown` with the
--    recovery's reason) is applied: accepted → sent, a failure → failed
--    (not tried again: it was given up), `unknown` stays; the campaign's
--    unknown count goes down by as many. A message a provider's status
--    callback moved past `sending` first was handed over: counted sent,
--    once (by the recovery, or by the late result that clears the mark).
-- 4. A cancelled campaign's look drops what its settles left queued (a
--    temporary failure of a group the cancel left in flight); the finish
--    sets `sent` only from `sending`; the upgrade looks at the holds 075
--    left to campaigns that no longer send (sending.recover_stranded).
-- 5. A SendGrid event batch locks its messages first (a cycle with a step:
--    message, progress, message); a claim (its recovery) creates the
--    session's progress rows (a cycle across step_edge's two statements).
--
-- The lock order (docs/architecture.md, "sending"): the campaign's row,
-- then its reservations, then message rows, then the progress rows, then
-- the monthly usage row. A step takes its reservation with SKIP LOCKED
-- (whoever else locks a reservation — a cancel, a recovery, a finish —
-- deletes it and gives back what it held) and the campaign's row only before
-- it (the previous group's results are settled before the next group is
-- marked, a batch's finish comes before its reservation goes back); a
-- settle waits for its own groups only on a recovery that took them; the
-- recovery takes the campaign's row first and the holds with SKIP LOCKED.
-- Applied once, inside one transaction, by the database owner.

-- A look at the campaign by a worker when the first hold's lease runs out
-- (+1 s), for a campaign no worker sends any more (cancelled, paused): a
-- dead worker's group then becomes unknown (sending.recover, first thing
-- of a worker's job). The key is the one a worker's last batch uses for its
-- retry (engine.c, after_last_batch): the same look is enqueued once.
create function sending.recover_later(p_campaign uuid)
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_at timestamptz;
    v_channel text;
begin
    -- (not in the past: a hold that is expired but locked, by a step that
    -- is about to delete it, is looked at again a second later)
    select min(h.lease_until), min(h.channel) into v_at, v_channel
    from sending.holds h where h.campaign_id = p_campaign;
    if v_at is not null then
        v_at := greatest(v_at, pg_catalog.now()) + interval '1 second';
        perform jobs.enqueue('send.worker',
            pg_catalog.jsonb_build_object('campaign_id', p_campaign, 'channel', v_channel), v_at,
            'send.retry:' || p_campaign::text || ':' || pg_catalog.date_part('epoch', v_at)::bigint::text,
            100, '5 seconds');
    end if;
end
$$;

create or replace function sending.recover(p_campaign uuid)
returns integer
language plpgsql volatile
security definer
set search_path = ''
set campaignd.engine_batch = 'on'
as $$
declare
    v_lost uuid[];
    v_free integer;
    v_channel text;
    v_status text;
    v_handed integer;
    v_held uuid[];
    v_drop integer := 0;
    n_email integer;
    n_sms integer;
    v_why constant text := 'in flight when its worker stopped: may or may not have been delivered';
begin
    -- the campaign's row first (the lock order): a cancel holds it while it
    -- waits for the reservations, so taking holds first and the row after
    -- was a cycle (in a claim the row is held already: no new lock)
    select c.status into v_status from public.campaigns c where c.id = p_campaign for no key update;
    -- a sending campaign: this session's progress rows exist from here on
    -- (a claim: the campaign's row is held), so that a step's count later
    -- in this session never inserts one, whose foreign key waits for the
    -- campaign's row (held by another worker's claim, which waits for the
    -- usage row that step may hold: step_edge). Nothing is written when
    -- they exist.
    if v_status = 'sending' then
        insert into sending.progress (campaign_id, recipients)
        select p_campaign, c.recipients_count from public.campaigns c where c.id = p_campaign
        on conflict (campaign_id) do nothing;
        insert into sending.progress_parts (campaign_id, part)
        values (p_campaign, pg_catalog.pg_backend_pid())
        on conflict (campaign_id, part) do nothing;
    end if;
    -- only the expired rows no transaction holds: a locked one belongs to a
    -- live worker (its step or settle is running), or to a cancel taking it
    with gone as (
        delete from sending.holds h
        where h.ctid = any (array(
            select k.ctid from sending.holds k
            where k.campaign_id = p_campaign and k.lease_until < pg_catalog.now()
            for update skip locked))
        returning h.channel, h.in_flight, h.ids, h.links),
    g as materialized (
        select gone.channel, gone.in_flight, u.id,
               case when gone.links is not null
                    then nullif(gone.links -> (u.ord::integer - 1), 'null'::jsonb) end as links
        from gone cross join lateral pg_catalog.unnest(gone.ids) with ordinality as u(id, ord)),
    e as (
        update public.email_messages m set status = 'unknown', attempts = m.attempts + 1,
            links = coalesce(g.links, m.links), last_error = v_why
        -- a message already settled (a stale hold) is neither changed nor counted
        from g where g.in_flight and g.channel = 'email' and m.id = g.id
          and m.status in ('queued', 'sending')
        returning m.id),
    s as (
        update public.sms_messages m set status = 'unknown', attempts = m.attempts + 1,
            last_error = v_why
        from g where g.in_flight and g.channel = 'sms' and m.id = g.id
          and m.status in ('queued', 'sending')
        returning m.id),
    -- what a provider's webhook already moved past `sending` (its status
    -- callback came before the worker's settle): handed over, counted sent
    -- (never marked unknown, so a late result for it is not applied again).
    -- Not what 075's cancel dropped under a step (a stale hold, counted).
    handed as (
        select count(*)::integer as n from g
        where g.in_flight and exists (
            select 1 from public.email_messages m
            where g.channel = 'email' and m.id = g.id
              and public.message_status_rank('email', m.status) >= 3
              and m.last_error is distinct from 'campaign cancelled'
            union all
            select 1 from public.sms_messages m
            where g.channel = 'sms' and m.id = g.id
              and public.message_status_rank('sms', m.status) >= 3
              and m.last_error is distinct from 'campaign cancelled'))
    select (select pg_catalog.array_agg(x.id) from (select e.id from e union all select s.id from s) x),
           (select count(*)::integer from g where not g.in_flight),
           (select min(g.channel) from g),
           (select handed.n from handed)
    into v_lost, v_free, v_channel, v_handed;
    update public.email_messages set status = 'unknown', lease_until = null, last_error = v_why
    where campaign_id = p_campaign and status = 'sending' and lease_until < pg_catalog.now();
    get diagnostics n_email = row_count;
    update public.sms_messages set status = 'unknown', lease_until = null, last_error = v_why
    where campaign_id = p_campaign and status = 'sending' and lease_until < pg_catalog.now();
    get diagnostics n_sms = row_count;
    n_email := n_email + n_sms + coalesce(pg_catalog.cardinality(v_lost), 0);
    if n_email > 0 then
        update public.campaigns set unknown_count = unknown_count + n_email where id = p_campaign;
    end if;
    -- no worker sends it any more (cancelled, paused): the next look at what
    -- is still held, when its lease runs out. Before the drop below: a hold
    -- it does not see was deleted by a settle committed before, whose queued
    -- messages the drop then sees
    if v_status is distinct from 'sending' then
        perform sending.recover_later(p_campaign);
    end if;
    -- a cancelled campaign: what its settles left queued (a temporary
    -- failure of a group the cancel left in flight) will never be sent:
    -- dropped and counted, as the cancel does with what nothing holds
    if v_status = 'cancelled' then
        v_held := array(select u.id from sending.holds h cross join lateral pg_catalog.unnest(h.ids) as u(id)
                        where h.campaign_id = p_campaign);
        update public.email_messages m set status = 'dropped', last_error = 'campaign cancelled'
        where m.campaign_id = p_campaign
          and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
          and m.id not in (select pg_catalog.unnest(v_held));
        get diagnostics v_drop = row_count;
        update public.sms_messages m set status = 'canceled', last_error = 'campaign cancelled'
        where m.campaign_id = p_campaign
          and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
          and m.id not in (select pg_catalog.unnest(v_held));
        get diagnostics n_sms = row_count;
        v_drop := v_drop + n_sms;
    end if;
    if v_handed > 0 or v_drop > 0 then
        perform sending.count_progress(p_campaign, v_handed, 0, v_drop);
    end if;
    if v_drop > 0 then
        perform sending.publish_progress(p_campaign, true);
        perform sending.fold_progress(p_campaign);
    end if;
    -- a campaign has one channel: what was only claimed is given back (the
    -- usage row last)
    if v_free > 0 then
        perform sending.release(v_channel, v_free);
    end if;
    if n_email > 0 or v_free > 0 or v_handed > 0 or v_drop > 0 then
        perform sending.audit_batch(
            (select case c.type when 'sms' then 'sms' else 'email' end from public.campaigns c
             where c.id = p_campaign), p_campaign,
            pg_catalog.jsonb_build_object('event', 'recovered', 'unknown', coalesce(v_lost, '{}'),
                                          'unknown_count', n_email, 'released', v_free,
                                          'handed_over', v_handed, 'dropped', v_drop));
    end if;
    return n_email;
end
$$;

-- The rows of a settle: its groups deleted, its messages updated, the
-- campaign's unknown count; what it counts (sent, failed, dropped) and gives
-- back (unsent) is returned, for the caller to count after everything else
-- it locks (the lock order: progress and usage rows last). A result whose
-- group a recovery took (its lease ran out while the worker was still
-- handing it over) is applied to the message the recovery made unknown.
create function sending.settle_rows(p_channel text, p_campaign uuid, p_claim uuid, p_done jsonb,
                                    p_max_attempts integer, p_backoff_seconds integer,
                                    out sent integer, out failed integer, out dropped integer,
                                    out unsent integer)
language plpgsql volatile
security definer
set search_path = ''
set campaignd.engine_batch = 'on'
-- (plan_cache_mode: the step's, whose SET holds for what it calls)
as $$
declare
    v_unknown integer;
    v_matched integer;
    v_late_sent integer := 0;
    v_late_failed integer := 0;
    v_rest uuid[];
    v_rest_links jsonb;
    v_rest_until timestamptz;
    v_why constant text := 'in flight when its worker stopped: may or may not have been delivered';
begin
    -- one statement per channel (see 068). Only results of this claim's
    -- groups in flight settle here; what a group holds without a result
    -- stays held (below). The delete waits only for a recovery that took
    -- the group (then the late results below apply).
    if p_channel = 'email' then
        with x as materialized (
            select * from pg_catalog.jsonb_to_recordset(p_done)
                as x(id uuid, outcome text, provider_id text, sid text, segments integer,
                     cost numeric, body text, error text)),
        gone as (
            delete from sending.holds h
            where h.campaign_id = p_campaign and h.claim = p_claim and h.in_flight
              and h.ids && array(select x.id from x)
            returning h.ids, h.links, h.lease_until),
        g as materialized (
            select u.id, gone.lease_until,
                   case when gone.links is not null
                        then nullif(gone.links -> (u.ord::integer - 1), 'null'::jsonb) end as links
            from gone cross join lateral pg_catalog.unnest(gone.ids) with ordinality as u(id, ord)),
        r as (
            select x.*, g.links from g join x on x.id = g.id),
        e as (
            update public.email_messages m set
                status = sending.settled_status('email', r.outcome, m.status, m.attempts + 1, p_max_attempts),
                updated_at = pg_catalog.now(),
                attempts = m.attempts + 1,
                sent_at = case when r.outcome = 'accepted' then pg_catalog.now() else m.sent_at end,
                message_id = case when r.outcome = 'accepted' then nullif(r.provider_id, '') else m.message_id end,
                next_attempt_at = case when r.outcome = 'tempfail'
                    then sending.retry_at(m.attempts + 1, p_backoff_seconds) else m.next_attempt_at end,
                last_error = nullif(pg_catalog.left(r.error, 500), ''),
                links = coalesce(r.links, m.links)
            from r where m.id = r.id
            returning r.outcome, m.status)
        select count(*) filter (where o.outcome = 'unknown'),
               count(*) filter (where o.outcome not in ('accepted', 'unknown')),
               -- accepted: handed over, whatever status a webhook that came
               -- first left (forward_only keeps a later status)
               count(*) filter (where o.outcome = 'accepted'),
               count(*) filter (where o.status = 'failed'),
               count(*) filter (where o.status in ('dropped', 'canceled')),
               count(*),
               -- what the deleted groups held without a result here
               (select pg_catalog.array_agg(g.id order by g.id) from g
                where not exists (select 1 from x where x.id = g.id)),
               (select pg_catalog.jsonb_agg(coalesce(g.links, 'null'::jsonb) order by g.id) from g
                where not exists (select 1 from x where x.id = g.id)),
               (select min(g.lease_until) from g)
        into v_unknown, settle_rows.unsent, settle_rows.sent, settle_rows.failed, settle_rows.dropped,
             v_matched, v_rest, v_rest_links, v_rest_until
        from e o;
    else
        with x as materialized (
            select * from pg_catalog.jsonb_to_recordset(p_done)
                as x(id uuid, outcome text, provider_id text, sid text, segments integer,
                     cost numeric, body text, error text)),
        gone as (
            delete from sending.holds h
            where h.campaign_id = p_campaign and h.claim = p_claim and h.in_flight
              and h.ids && array(select x.id from x)
            returning h.ids, h.lease_until),
        g as materialized (
            select u.id, gone.lease_until
            from gone cross join lateral pg_catalog.unnest(gone.ids) as u(id)),
        r as (
            select x.* from g join x on x.id = g.id),
        s as (
            update public.sms_messages m set
                status = sending.settled_status('sms', r.outcome, m.status, m.attempts + 1, p_max_attempts),
                updated_at = pg_catalog.now(),
                attempts = m.attempts + 1,
                sent_at = case when r.outcome = 'accepted' then pg_catalog.now() else m.sent_at end,
                failed_at = case when r.outcome = 'permfail' then pg_catalog.now() else m.failed_at end,
                message_sid = case when r.outcome = 'accepted' then nullif(r.sid, '') else m.message_sid end,
                segments = greatest(1, coalesce(r.segments, m.segments)),
                cost = coalesce(r.cost, m.cost),
                message = coalesce(nullif(r.body, ''), m.message),
                next_attempt_at = case when r.outcome = 'tempfail'
                    then sending.retry_at(m.attempts + 1, p_backoff_seconds) else m.next_attempt_at end,
                last_error = nullif(pg_catalog.left(r.error, 500), '')
            from r where m.id = r.id
            returning r.outcome, m.status)
        select count(*) filter (where o.outcome = 'unknown'),
               count(*) filter (where o.outcome not in ('accepted', 'unknown')),
               count(*) filter (where o.outcome = 'accepted'),
               count(*) filter (where o.status = 'failed'),
               count(*) filter (where o.status in ('dropped', 'canceled')),
               count(*),
               (select pg_catalog.array_agg(g.id order by g.id) from g
                where not exists (select 1 from x where x.id = g.id)),
               (select min(g.lease_until) from g)
        into v_unknown, settle_rows.unsent, settle_rows.sent, settle_rows.failed, settle_rows.dropped,
             v_matched, v_rest, v_rest_until
        from s o;
    end if;
    -- a group with results for part of its ids (rare): the rest stays held,
    -- in flight, with the group's lease
    if v_rest is not null then
        insert into sending.holds (campaign_id, claim, channel, in_flight, lease_until, ids, links)
        values (p_campaign, p_claim, p_channel, true, v_rest_until, v_rest, v_rest_links);
    end if;
    -- results without a group (rare): a recovery took the group when its
    -- lease ran out while the worker was still handing it over; the message
    -- is `unknown` with the recovery's reason and counted so. The result the
    -- worker brings is better than unknown: accepted → sent, a failure →
    -- failed (given up, not tried again: unknown never is), unknown stays.
    -- A message a provider's webhook moved past unknown meanwhile (its
    -- status callback came first) was handed over: counted sent, whatever
    -- the worker says, its status kept. The reason is the mark, cleared
    -- here (counted once); a message settled already has another.
    if v_matched < pg_catalog.jsonb_array_length(p_done) then
        if p_channel = 'email' then
            with x as (
                select * from pg_catalog.jsonb_to_recordset(p_done)
                    as x(id uuid, outcome text, provider_id text, error text)),
            l as (
                update public.email_messages m set
                    status = case when public.message_status_rank('email', m.status) >= 3 then m.status
                                  when x.outcome = 'accepted' then 'sent' else 'failed' end,
                    updated_at = pg_catalog.now(),
                    sent_at = case when x.outcome = 'accepted' then pg_catalog.now() else m.sent_at end,
                    message_id = case when x.outcome = 'accepted'
                                      then coalesce(nullif(x.provider_id, ''), m.message_id)
                                      else m.message_id end,
                    -- (null: handed over; the mark goes either way)
                    last_error = case when x.outcome = 'accepted'
                                        or public.message_status_rank('email', m.status) >= 3 then null
                        else coalesce(nullif(pg_catalog.left(x.error, 500), ''), 'failed') end
                from x
                where m.id = x.id and m.campaign_id = p_campaign and m.last_error = v_why
                  and public.message_status_rank('email', m.status) >= 2
                  and x.outcome in ('accepted', 'tempfail', 'permfail')
                returning m.last_error is null as handed)
            select count(*) filter (where l.handed), count(*) filter (where not l.handed)
            into v_late_sent, v_late_failed from l;
        else
            with x as (
                select * from pg_catalog.jsonb_to_recordset(p_done)
                    as x(id uuid, outcome text, sid text, segments integer, cost numeric, body text,
                         error text)),
            l as (
                update public.sms_messages m set
                    status = case when public.message_status_rank('sms', m.status) >= 3 then m.status
                                  when x.outcome = 'accepted' then 'sent' else 'failed' end,
                    updated_at = pg_catalog.now(),
                    sent_at = case when x.outcome = 'accepted' then pg_catalog.now() else m.sent_at end,
                    failed_at = case when x.outcome <> 'accepted'
                                      and public.message_status_rank('sms', m.status) < 3
                                     then pg_catalog.now() else m.failed_at end,
                    message_sid = case when x.outcome = 'accepted'
                                       then coalesce(nullif(x.sid, ''), m.message_sid)
                                       else m.message_sid end,
                    segments = greatest(1, coalesce(x.segments, m.segments)),
                    cost = coalesce(x.cost, m.cost),
                    message = coalesce(nullif(x.body, ''), m.message),
                    -- (null: handed over; the mark goes either way)
                    last_error = case when x.outcome = 'accepted'
                                        or public.message_status_rank('sms', m.status) >= 3 then null
                        else coalesce(nullif(pg_catalog.left(x.error, 500), ''), 'failed') end
                from x
                where m.id = x.id and m.campaign_id = p_campaign and m.last_error = v_why
                  and public.message_status_rank('sms', m.status) >= 2
                  and x.outcome in ('accepted', 'tempfail', 'permfail')
                returning m.last_error is null as handed)
            select count(*) filter (where l.handed), count(*) filter (where not l.handed)
            into v_late_sent, v_late_failed from l;
        end if;
        settle_rows.sent := settle_rows.sent + v_late_sent;
        settle_rows.failed := settle_rows.failed + v_late_failed;
        -- a failure was not handed over: its monthly reservation goes back
        settle_rows.unsent := settle_rows.unsent + v_late_failed;
        v_unknown := v_unknown - v_late_sent - v_late_failed;
    end if;
    if v_unknown <> 0 then
        -- (never below 0: a check would abort the whole step)
        update public.campaigns set unknown_count = greatest(0, unknown_count + v_unknown)
        where id = p_campaign;
    end if;
end
$$;

-- The settle as one call (its rows, then its counts), for callers outside
-- the step (the step counts once for all it settled, at its end).
create or replace function sending.settle(p_channel text, p_campaign uuid, p_claim uuid, p_done jsonb,
                               p_max_attempts integer, p_backoff_seconds integer)
returns void
language plpgsql volatile
security definer
set search_path = ''
set campaignd.engine_batch = 'on'
as $$
declare
    r record;
begin
    select * into r from sending.settle_rows(p_channel, p_campaign, p_claim, p_done, p_max_attempts,
                                             p_backoff_seconds);
    if r.sent > 0 or r.failed > 0 or r.dropped > 0 then
        perform sending.count_progress(p_campaign, r.sent, r.failed, r.dropped);
    end if;
    if r.unsent > 0 then
        perform sending.release(p_channel, r.unsent);
    end if;
end
$$;

create or replace function sending.step(p_channel text, p_campaign uuid, p_claim uuid, p_done jsonb,
                             p_next uuid[], p_links jsonb, p_batch uuid[], p_max_attempts integer,
                             p_backoff_seconds integer, p_lease_seconds integer,
                             out status text, out go uuid[])
language plpgsql volatile
security definer
set search_path = ''
set campaignd.engine_batch = 'on'
-- one plan per statement and backend, kept (see 068's header)
set plan_cache_mode = 'force_generic_plan'
as $$
declare
    v_res uuid[];
    v_dropped uuid[];
    v_sent integer := 0;
    v_failed integer := 0;
    v_drop integer := 0;
    v_unsent integer := 0;
    r record;
begin
    -- the previous group's results first: their rows (groups, messages, the
    -- campaign's unknown count) are locked before this step's reservation,
    -- so that a step holding its reservation never waits for the campaign's
    -- row (a cancel holds it while it waits for the reservations). Their
    -- counts come at the end (progress, usage: last in the lock order).
    if p_done is not null and pg_catalog.jsonb_array_length(p_done) > 0 then
        select * into r from sending.settle_rows(p_channel, p_campaign, p_claim, p_done, p_max_attempts,
                                                 p_backoff_seconds);
        v_sent := r.sent;
        v_failed := r.failed;
        v_drop := r.dropped;
        v_unsent := r.unsent;
    end if;
    -- a batch's end: finished? (the campaign's row, before the reservation
    -- goes back below)
    if p_batch is not null then
        step.status := sending.finish(p_campaign);
    end if;
    if coalesce(pg_catalog.cardinality(p_next), 0) > 0 then
        -- the claim's reservation, locked: what it still holds may go. SKIP
        -- LOCKED: whoever else locks it (a cancel, a recovery of an expired
        -- one) deletes it, so a locked reservation sends nothing; never a
        -- wait for it, so never a lock cycle with a cancel
        v_res := array(
            select u.id
            from (select h.ids from sending.holds h
                  where h.campaign_id = p_campaign and h.claim = p_claim and not h.in_flight
                  for update skip locked) rs
            cross join lateral pg_catalog.unnest(rs.ids) as u(id));
        -- the status after the reservation's lock: a cancel that came first
        -- took the reservation (above) or shows here; one that comes later
        -- waits for this step and sees its group
        select c.status into step.status from public.campaigns c
        where c.id = p_campaign and c.deleted_at is null;
    elsif p_batch is null then
        select c.status into step.status from public.campaigns c
        where c.id = p_campaign and c.deleted_at is null;
    end if;
    if coalesce(pg_catalog.cardinality(v_res), 0) > 0 and step.status = 'sending' then
        -- each id looked up by primary key (a lateral, correlated lookup).
        -- MATERIALIZED: ok's status test must not be pushed into the lookup,
        -- where it matches the claim index's predicate and a plan made while
        -- the table looked empty scanned that index for every id
        with n as materialized (
            select x.id, x.ord, m.recipient, m.mstatus, m.mlease
            from pg_catalog.unnest(p_next) with ordinality as x(id, ord)
            cross join lateral (
                select e.recipient::text as recipient, e.status as mstatus, e.lease_until as mlease
                from public.email_messages e where p_channel = 'email' and e.id = x.id
                union all
                select s.recipient::text, s.status, s.lease_until
                from public.sms_messages s where p_channel = 'sms' and s.id = x.id) m
            where x.id = any (v_res)),
        ok as materialized (
            -- sending.allowed's rule (041, 052) written into the statement
            select n.id, n.ord, n.recipient,
                   n.recipient is not null
                   and case p_channel
                       when 'email' then not exists (
                           select 1 from public.email_subscriptions s
                           where s.email = n.recipient and not s.subscribed)
                       else exists (
                           select 1 from public.sms_consent s
                           where s.phone_number = n.recipient and s.consent_given) end
                   and not exists (
                       select 1 from public.suppressions x
                       where x.channel = p_channel
                         and x.address = case p_channel
                             when 'email' then pg_catalog.lower(pg_catalog.btrim(n.recipient))
                             else pg_catalog.btrim(n.recipient) end) as allowed
            from n where n.mstatus = 'queued' or (n.mstatus = 'sending' and n.mlease is null)),
        -- out of the reservation (a heap-only update: ids is not indexed)
        taken as (
            update sending.holds h set ids = array(
                select u.id from pg_catalog.unnest(h.ids) as u(id)
                where not (u.id = any (array(select ok.id from ok))))
            where h.campaign_id = p_campaign and h.claim = p_claim and not h.in_flight
              and exists (select 1 from ok)
            returning 1),
        -- into a group: what goes, with its links
        flying as (
            insert into sending.holds (campaign_id, claim, channel, in_flight, lease_until, ids, links)
            select p_campaign, p_claim, p_channel, true,
                   pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds),
                   pg_catalog.array_agg(ok.id order by ok.ord),
                   case when p_links is not null then pg_catalog.jsonb_agg(
                       coalesce(p_links -> (ok.ord::integer - 1), 'null'::jsonb) order by ok.ord) end
            from ok where ok.allowed
            having count(*) > 0
            returning holds.ids)
        select (select f.ids from flying f),
               (select pg_catalog.array_agg(ok.id order by ok.ord) from ok where not ok.allowed)
        into step.go, v_dropped;
        -- what is dropped before sending (rare): a group of its own, settled
        -- as dropped right away
        if v_dropped is not null then
            insert into sending.holds (campaign_id, claim, channel, in_flight, lease_until, ids)
            values (p_campaign, p_claim, p_channel, true,
                    pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds), v_dropped);
            select * into r from sending.settle_rows(p_channel, p_campaign, p_claim,
                (select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('id', d, 'outcome', 'dropped',
                     'error', case p_channel when 'email' then 'unsubscribed or suppressed before sending'
                                             else 'opted out or suppressed before sending' end))
                 from pg_catalog.unnest(v_dropped) d),
                p_max_attempts, p_backoff_seconds);
            v_drop := v_drop + r.dropped;
            v_unsent := v_unsent + r.unsent;
        end if;
    end if;
    -- the counts: the progress rows, then the usage row (last in the lock
    -- order), at the end of the step
    if v_sent > 0 or v_failed > 0 or v_drop > 0 then
        perform sending.count_progress(p_campaign, v_sent, v_failed, v_drop);
    end if;
    if p_batch is not null then
        perform sending.publish_progress(p_campaign, true);
        perform sending.end_batch(p_channel, p_campaign, p_claim, p_batch);
    end if;
    if v_unsent > 0 then
        perform sending.release(p_channel, v_unsent);
    end if;
    -- a campaign that no longer sends (sent, cancelled, paused): what this
    -- session and idle ones counted on their parts goes into its row
    if step.status is distinct from 'sending' then
        perform sending.fold_progress(p_campaign);
    end if;
end
$$;

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
        'messages', (select pg_catalog.jsonb_object_agg(x.status, x.ids) from (
            select m.status, pg_catalog.jsonb_agg(m.id order by m.id) as ids
            from public.email_messages m where p_channel = 'email' and m.id = any (p_batch)
            group by m.status
            union all
            select m.status, pg_catalog.jsonb_agg(m.id order by m.id)
            from public.sms_messages m where p_channel = 'sms' and m.id = any (p_batch)
            group by m.status) x)));
end
$$;

create or replace function sending.finish(p_campaign uuid)
returns text
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_status text;
begin
    select c.status into v_status from public.campaigns c where c.id = p_campaign;
    if v_status = 'sending' and not sending.unfinished(p_campaign) then
        -- only from 'sending': a cancel or a pause that committed since the
        -- read above (the update waited for it) stays
        update public.campaigns c set status = 'sent', send_finished_at = pg_catalog.now()
        where c.id = p_campaign and c.status = 'sending';
        if not found then
            select c.status into v_status from public.campaigns c where c.id = p_campaign;
            return v_status;
        end if;
        v_status := 'sent';
        -- nothing is held any more: the empty reservations (a dead worker's,
        -- or a live one's between its last step and its batch's end) go;
        -- one a step holds right now is deleted by its batch's end
        delete from sending.holds h
        where h.ctid = any (array(
            select k.ctid from sending.holds k
            where k.campaign_id = p_campaign and pg_catalog.cardinality(k.ids) = 0
            for update skip locked));
        perform sending.fold_progress(p_campaign);
        -- its counts reach analytics_data now, not at the next periodic roll-up
        perform jobs.enqueue('send.rollup', '{}'::jsonb, pg_catalog.now(), 'send.rollup', 3,
                             '30 seconds');
    end if;
    return v_status;
end
$$;

create or replace function sending.cancel(p_campaign uuid)
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
set campaignd.engine_batch = 'on'
as $$
declare
    c public.campaigns%rowtype;
    n integer;
    n_sms integer;
    v_free integer;
    v_flying uuid[];
begin
    update public.campaigns set status = 'cancelled', send_finished_at = pg_catalog.now()
    where id = p_campaign and deleted_at is null
      and status in ('draft', 'scheduled', 'sending', 'paused')
    returning * into c;
    if not found then
        select * into c from public.campaigns where id = p_campaign and deleted_at is null;
        if not found then
            raise exception 'campaign not found' using errcode = 'P0002';
        end if;
        if c.status <> 'cancelled' then
            raise exception 'a % campaign cannot be cancelled', c.status using errcode = '55000';
        end if;
        return pg_catalog.to_jsonb(c);
    end if;
    -- the reservations go (under the campaign's row, so no claim adds one):
    -- the delete waits for a step that holds one, whose group is then
    -- committed and read below; a step that comes later finds none and
    -- sends nothing. Their ids are cancelled below, their monthly
    -- reservations given back.
    with gone as (
        delete from sending.holds h
        where h.campaign_id = p_campaign and not h.in_flight
        returning pg_catalog.cardinality(h.ids) as k)
    select coalesce(sum(gone.k), 0)::integer into v_free from gone;
    -- what is in flight now settles as its provider answers (or becomes
    -- unknown when its lease runs out: see recover_later below)
    v_flying := array(select u.id from sending.holds h cross join lateral pg_catalog.unnest(h.ids) as u(id)
                      where h.campaign_id = p_campaign and h.in_flight);
    update public.email_messages m set status = 'dropped', last_error = 'campaign cancelled'
    where m.campaign_id = p_campaign
      and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
      and m.id not in (select pg_catalog.unnest(v_flying));
    get diagnostics n = row_count;
    update public.sms_messages m set status = 'canceled', last_error = 'campaign cancelled'
    where m.campaign_id = p_campaign
      and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
      and m.id not in (select pg_catalog.unnest(v_flying));
    get diagnostics n_sms = row_count;
    if n + n_sms > 0 then
        perform sending.count_progress(p_campaign, 0, 0, n + n_sms);
        perform sending.publish_progress(p_campaign, true);
    end if;
    perform sending.fold_progress(p_campaign);
    if v_free > 0 then
        perform sending.release(case c.type when 'sms' then 'sms' else 'email' end, v_free);
    end if;
    perform sending.audit_batch(case c.type when 'sms' then 'sms' else 'email' end, p_campaign,
        pg_catalog.jsonb_build_object('event', 'cancelled', 'dropped', n + n_sms, 'returned', v_free,
                                      'in_flight', coalesce(pg_catalog.cardinality(v_flying), 0)));
    -- a group of a worker that dies now: a look when its lease runs out
    if v_flying is not null and pg_catalog.cardinality(v_flying) > 0 then
        perform sending.recover_later(p_campaign);
    end if;
    return pg_catalog.to_jsonb(c);
end
$$;

-- A SendGrid event batch (029) with the messages it names locked first, in
-- id order: 029 locked each message as its event came, after an earlier
-- event of the batch had counted a delivery (sending.progress): message,
-- progress, message — a cycle with a step that settles the later message
-- and then publishes its progress. Otherwise as 029.
create or replace function public.apply_sendgrid_events(p_events jsonb)
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_event jsonb;
    v_message uuid;
    v_applied integer := 0;
    v_dups integer := 0;
begin
    if pg_catalog.jsonb_typeof(p_events) <> 'array' then
        raise exception 'events must be a JSON array' using errcode = '22023';
    end if;
    -- the lock order: message rows before the progress rows
    perform 1 from public.email_messages m
    where m.id in (select (e ->> 'campaignd_message_id')::uuid
                   from pg_catalog.jsonb_array_elements(p_events) e
                   where e ->> 'campaignd_message_id'
                         ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
    order by m.id
    for update;
    for v_event in select e from pg_catalog.jsonb_array_elements(p_events) e loop
        v_message := null;
        if v_event ->> 'campaignd_message_id'
           ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
            select m.id into v_message from public.email_messages m
            where m.id = (v_event ->> 'campaignd_message_id')::uuid
              and m.recipient = pg_catalog.lower(v_event ->> 'email')
            for update;
        end if;
        insert into public.sendgrid_events (sg_event_id, event, email_message_id, email, occurred_at)
        values (v_event ->> 'sg_event_id', pg_catalog.left(v_event ->> 'event', 50), v_message,
                pg_catalog.left(v_event ->> 'email', 255),
                pg_catalog.to_timestamp((v_event ->> 'timestamp')::double precision))
        on conflict (sg_event_id) do nothing;
        if not found then
            v_dups := v_dups + 1;
            continue;
        end if;
        perform public.apply_sendgrid_event(v_event, v_message);
        v_applied := v_applied + 1;
    end loop;
    return pg_catalog.jsonb_build_object('applied', v_applied, 'duplicates', v_dups);
end
$$;

-- The holds 075 stranded: a campaign cancelled (or paused) before this
-- migration kept its reservations (their monthly usage reserved) and a dead
-- worker's groups (never made unknown); nobody looked at them again. A look
-- for each such campaign, when its first hold's lease runs out. Returns how
-- many campaigns; run once below (the upgrade), and harmless again.
create function sending.recover_stranded()
returns integer
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    n integer := 0;
    v_id uuid;
begin
    for v_id in
        select c.id from public.campaigns c
        where c.status <> 'sending'
          and exists (select 1 from sending.holds h where h.campaign_id = c.id)
        order by c.id
    loop
        perform sending.recover_later(v_id);
        n := n + 1;
    end loop;
    return n;
end
$$;

revoke all on function sending.recover_later(uuid), sending.recover_stranded(),
    sending.settle_rows(text, uuid, uuid, jsonb, integer, integer) from public;

select sending.recover_stranded();
