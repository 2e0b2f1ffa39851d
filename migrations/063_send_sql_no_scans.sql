-- 063_send_sql_no_scans.sql: the database's work per message of a send, cut
-- where it did not depend on the message (issue 12, speed; bench/RESULTS.md
-- "send-sql"). Accounting of a 3,000-message e-mail send (track_functions =
-- all, pg_stat_all_tables; bench/send/account.mjs) before this migration:
--   * a temporary table (sending_due) created and dropped by every claim:
--     0.49 pg_attribute rows inserted and 0.48 deleted per message, with
--     pg_depend, pg_class, pg_type, pg_index, pg_constraint, pg_shdepend —
--     about 1.1 catalog rows inserted and 0.9 deleted per message (half of
--     the "1.8 deletes per message"), and every plan that names the table
--     replanned at every claim;
--   * sending.finish_if_done at every batch end: min() over all the
--     campaign's queued messages (its next_retry, which the step throws
--     away): O(recipients) per batch, O(recipients^2 / batch) per campaign;
--   * sending.leases read by sequential scans from the settle's, the step's
--     and the batch end's joins (25 rows read per message).
--
--   sending.claim (041)          the due messages in a CTE and arrays, no
--                                temporary table; each channel's first due
--                                rows in the claim index's order (a LIMIT
--                                per branch of the UNION: it sorted all of
--                                the campaign's waiting rows, 31 rows read
--                                per message). Same rules, same results.
--   sending.settle (055)         the leases looked up by primary key (= ANY
--                                of the ids), never a join that may scan.
--   sending.end_batch (041)      the claim's leftover leases looked up by
--                                the batch's ids (primary key).
--   sending.unfinished (new)     whether anything of a campaign is left to
--                                send or in flight: index probes only.
--   sending.finish_if_done (041) uses it; next_retry as before.
--   sending.step (055)           the next messages looked up by primary
--                                key only (a cached plan looked each one up
--                                by scanning the claim index: 35 rows read
--                                per message), the flying update by primary
--                                key; at a batch end the campaign finishes
--                                through sending.unfinished, no next_retry;
--                                the previous group settles after the next
--                                one's mark, so the progress row (055) that
--                                all workers' settles update is locked for
--                                the end of the step only (the workers
--                                waited for each other there: count_progress
--                                had 0.8 ms of wall time per message).
--   plan_cache_mode      claim and step (and what they call) keep one
--                        generic plan per statement: PL/pgSQL otherwise
--                        replanned most of their statements at every call
--                        (the custom plans, which prune the other channel's
--                        branch, always looked cheaper than the generic
--                        one): 8 % of the engine backends' CPU in the
--                        planner. Each statement looks rows up by key, so
--                        its generic plan is the custom plan with one more
--                        one-time filter.
-- Applied once, inside one transaction, by the database owner.

create or replace function sending.claim(p_channel text, p_campaign uuid, p_claim uuid, p_limit integer,
                                         p_lease_seconds integer)
returns table (id uuid, recipient text, contact jsonb)
language plpgsql volatile
security definer
set search_path = ''
set campaignd.engine_batch = 'on'
-- one plan per statement and backend, kept (see the header)
set plan_cache_mode = 'force_generic_plan'
as $$
declare
    v_ids uuid[];
    v_rcpt text[];
    v_contacts uuid[];
    v_grant integer;
begin
    perform 1 from public.campaigns k
    where k.id = p_campaign and k.status = 'sending' and k.deleted_at is null
      and k.type = p_channel
    for update;
    if not found then
        return;
    end if;
    perform sending.recover(p_campaign);
    -- the due messages; SMS in the recipient's quiet hours wait for the
    -- window, as a temporary failure does (wait runs whether read or not)
    with due as materialized (
        select d.id, d.recipient, d.contact_id,
               case when p_channel = 'sms' then sending.sms_window_opens(d.contact_id) end as opens
        -- each branch in the claim index's order with its own LIMIT: the
        -- first due rows, not all of them sorted (O(recipients) per claim)
        from ((select m.id, m.recipient::text, m.contact_id, m.next_attempt_at from public.email_messages m
              where p_channel = 'email' and m.campaign_id = p_campaign
                and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
                and m.next_attempt_at <= pg_catalog.now()
                and not exists (select 1 from sending.leases l where l.message_id = m.id)
              order by m.next_attempt_at limit p_limit)
              union all
              (select m.id, m.recipient::text, m.contact_id, m.next_attempt_at from public.sms_messages m
              where p_channel = 'sms' and m.campaign_id = p_campaign
                and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
                and m.next_attempt_at <= pg_catalog.now()
                and not exists (select 1 from sending.leases l where l.message_id = m.id)
              order by m.next_attempt_at limit p_limit)
              order by 4 limit p_limit) d),
    wait as (
        update public.sms_messages m set next_attempt_at = due.opens
        from due where due.opens is not null and m.id = due.id
        returning m.id)
    select pg_catalog.array_agg(due.id order by due.id),
           pg_catalog.array_agg(due.recipient order by due.id),
           pg_catalog.array_agg(due.contact_id order by due.id)
    into v_ids, v_rcpt, v_contacts
    from due where due.opens is null;
    if v_ids is null then
        return;
    end if;
    v_grant := sending.reserve(p_channel, pg_catalog.cardinality(v_ids));
    if v_grant = 0 then
        update public.campaigns k set status = 'paused',
            pause_reason = pg_catalog.format('monthly %s limit of %s messages reached',
                case p_channel when 'email' then 'e-mail' else 'SMS' end,
                (select case p_channel when 'email' then a.monthly_email_limit else a.monthly_sms_limit end
                 from public.app_settings a limit 1))
        where k.id = p_campaign;
        return;
    end if;
    v_ids := v_ids[1:v_grant];
    insert into sending.leases (message_id, channel, campaign_id, claim, lease_until)
    select x, p_channel, p_campaign, p_claim,
           pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds)
    from pg_catalog.unnest(v_ids) x;
    return query
    select d.id, d.recipient, coalesce((
        select pg_catalog.jsonb_build_object(
            'first_name', k.first_name, 'last_name', k.last_name, 'email', k.email,
            'phone', k.phone, 'attributes', k.attributes)
        from public.contacts k where k.id = d.contact_id), '{}'::jsonb)
        || case when p_channel = 'sms' then pg_catalog.jsonb_build_object('first_to_number',
               not exists (select 1 from public.sms_messages o
                           where o.recipient = d.recipient and o.id <> d.id and o.message_sid is not null))
           else '{}'::jsonb end
    from rows from (pg_catalog.unnest(v_ids), pg_catalog.unnest(v_rcpt[1:v_grant]),
                   pg_catalog.unnest(v_contacts[1:v_grant])) as d(id, recipient, contact_id)
    order by d.id;
end
$$;

create or replace function sending.settle(p_channel text, p_campaign uuid, p_claim uuid, p_done jsonb,
                               p_max_attempts integer, p_backoff_seconds integer)
returns void
language plpgsql volatile
security definer
set search_path = ''
set campaignd.engine_batch = 'on'
as $$
declare
    v_unknown integer;
    v_unsent integer;
    v_sent integer;
    v_failed integer;
    v_dropped integer;
begin
    with x as materialized (
        select * from pg_catalog.jsonb_to_recordset(p_done)
            as x(id uuid, outcome text, provider_id text, sid text, segments integer,
                 cost numeric, body text, error text)),
    -- by primary key: = ANY of the ids, never a join that may scan the table
    gone as (
        delete from sending.leases l
        where l.message_id = any (array(select x.id from x)) and l.claim = p_claim
          and (l.in_flight or l.message_id = any (array(select x.id from x where x.outcome = 'dropped')))
        returning l.message_id, l.links),
    r as (
        select x.*, gone.links from gone join x on x.id = gone.message_id),
    e as (
        update public.email_messages m set
            status = sending.settled_status('email', r.outcome, m.status, m.attempts + 1, p_max_attempts),
            attempts = m.attempts + 1,
            sent_at = case when r.outcome = 'accepted' then pg_catalog.now() else m.sent_at end,
            message_id = case when r.outcome = 'accepted' then nullif(r.provider_id, '') else m.message_id end,
            next_attempt_at = case when r.outcome = 'tempfail'
                then sending.retry_at(m.attempts + 1, p_backoff_seconds) else m.next_attempt_at end,
            last_error = nullif(pg_catalog.left(r.error, 500), ''),
            links = coalesce(r.links, m.links)
        from r where p_channel = 'email' and m.id = r.id
        returning r.outcome, m.status),
    s as (
        update public.sms_messages m set
            status = sending.settled_status('sms', r.outcome, m.status, m.attempts + 1, p_max_attempts),
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
        from r where p_channel = 'sms' and m.id = r.id
        returning r.outcome, m.status)
    select count(*) filter (where o.outcome = 'unknown'),
           count(*) filter (where o.outcome not in ('accepted', 'unknown')),
           -- accepted: handed over, whatever status a webhook that came
           -- first left (forward_only keeps a later status)
           count(*) filter (where o.outcome = 'accepted'),
           count(*) filter (where o.status = 'failed'),
           count(*) filter (where o.status in ('dropped', 'canceled'))
    into v_unknown, v_unsent, v_sent, v_failed, v_dropped
    from (select e.outcome, e.status from e union all select s.outcome, s.status from s) o;
    if v_unsent > 0 then
        perform sending.release(p_channel, v_unsent);
    end if;
    if v_unknown > 0 then
        update public.campaigns set unknown_count = unknown_count + v_unknown where id = p_campaign;
    end if;
    if v_sent > 0 or v_failed > 0 or v_dropped > 0 then
        perform sending.count_progress(p_campaign, v_sent, v_failed, v_dropped);
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
    -- p_batch is what the claim returned, i.e. all its leases: by primary key
    delete from sending.leases l
    where l.message_id = any (p_batch) and l.claim = p_claim and not l.in_flight;
    get diagnostics v_left = row_count;
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

-- Whether anything of the campaign is left to send (queued, or 027's
-- `sending` without a lease) or in flight (a lease, or 027's `sending` with
-- one). Each EXISTS is an index probe: the claim's and the in-flight
-- partial indexes (027), the leases' campaign index (041).
create function sending.unfinished(p_campaign uuid)
returns boolean
language sql stable
security definer
set search_path = ''
as $$
    select exists (select 1 from public.email_messages m where m.campaign_id = p_campaign
                   and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null)))
        or exists (select 1 from public.email_messages m where m.campaign_id = p_campaign
                   and m.status = 'sending')
        or exists (select 1 from public.sms_messages m where m.campaign_id = p_campaign
                   and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null)))
        or exists (select 1 from public.sms_messages m where m.campaign_id = p_campaign
                   and m.status = 'sending')
        or exists (select 1 from sending.leases l where l.campaign_id = p_campaign)
$$;
revoke all on function sending.unfinished(uuid) from public;

-- Marks the campaign sent when nothing is left; returns its status. Without
-- 041's next_retry, which the step's batch end threw away and which reads
-- all of the campaign's waiting messages.
create function sending.finish(p_campaign uuid)
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
        update public.campaigns c set status = 'sent', send_finished_at = pg_catalog.now()
        where c.id = p_campaign;
        v_status := 'sent';
        -- its counts reach analytics_data now, not at the next periodic roll-up
        perform jobs.enqueue('send.rollup', '{}'::jsonb, pg_catalog.now(), 'send.rollup', 3,
                             '30 seconds');
    end if;
    return v_status;
end
$$;
revoke all on function sending.finish(uuid) from public;

-- 041's function: sending.finish, then when a worker should look again
-- (the earliest retry of a waiting message or lease end of a held one).
create or replace function sending.finish_if_done(p_campaign uuid, out status text, out next_retry timestamptz)
language plpgsql volatile
security definer
set search_path = ''
as $$
begin
    finish_if_done.status := sending.finish(p_campaign);
    select min(x.at) into next_retry
    from (select min(l.lease_until) + interval '1 second' as at from sending.leases l
          where l.campaign_id = p_campaign
          union all
          select min(coalesce(m.lease_until + interval '1 second', m.next_attempt_at))
          from public.email_messages m
          where m.campaign_id = p_campaign and (m.status = 'queued' or (m.status = 'sending'))
          union all
          select min(coalesce(m.lease_until + interval '1 second', m.next_attempt_at))
          from public.sms_messages m
          where m.campaign_id = p_campaign and (m.status = 'queued' or (m.status = 'sending'))) x;
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
-- one plan per statement and backend, kept (see the header)
set plan_cache_mode = 'force_generic_plan'
as $$
declare
    v_dropped uuid[];
begin
    select c.status into step.status from public.campaigns c
    where c.id = p_campaign and c.deleted_at is null;
    if coalesce(pg_catalog.cardinality(p_next), 0) > 0 and step.status = 'sending' then
        -- each id looked up by primary key (a lateral, correlated lookup), never
        -- a hash of a seq scan of sending.leases or of the message table.
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
            where exists (select 1 from sending.leases l
                          where l.message_id = x.id and l.claim = p_claim and not l.in_flight)),
        ok as materialized (
            select n.id, n.ord, n.recipient,
                   sending.allowed(p_channel, n.recipient) as allowed
            from n where n.mstatus = 'queued' or (n.mstatus = 'sending' and n.mlease is null)),
        flying as (
            update sending.leases l set in_flight = true,
                lease_until = pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds),
                links = nullif(p_links -> ((select ok.ord from ok where ok.id = l.message_id)::integer - 1),
                               'null'::jsonb)
            where l.message_id = any (array(select ok.id from ok where ok.allowed))
            returning l.message_id)
        select (select pg_catalog.array_agg(f.message_id) from flying f),
               (select pg_catalog.array_agg(ok.id) from ok where not ok.allowed)
        into step.go, v_dropped;
        if v_dropped is not null then
            perform sending.settle(p_channel, p_campaign, p_claim,
                (select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('id', d, 'outcome', 'dropped',
                     'error', case p_channel when 'email' then 'unsubscribed or suppressed before sending'
                                             else 'opted out or suppressed before sending' end))
                 from pg_catalog.unnest(v_dropped) d),
                p_max_attempts, p_backoff_seconds);
        end if;
    end if;
    -- the previous group's results after the next group's mark (one
    -- transaction: the same outcome), so that the campaign's progress row,
    -- which every worker's settle updates, stays locked for the end of the
    -- step only, not for its lookups
    if p_done is not null and pg_catalog.jsonb_array_length(p_done) > 0 then
        perform sending.settle(p_channel, p_campaign, p_claim, p_done, p_max_attempts,
                               p_backoff_seconds);
    end if;
    if p_batch is not null then
        perform sending.publish_progress(p_campaign, true);
        perform sending.end_batch(p_channel, p_campaign, p_claim, p_batch);
        step.status := sending.finish(p_campaign);
    end if;
end
$$;
