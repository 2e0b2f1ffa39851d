-- 068_send_db_per_message.sql: less PostgreSQL work per message of a send
-- (issue 12, speed; bench/RESULTS.md "send-db2"). Accounting of a
-- 3,000-message SMS send before this migration (track_functions = all):
-- per message, sending.allowed (PL/pgSQL, three planned lookups) was called
-- twice (6,000 calls: when materialised and in the step), and
-- sending.sms_window_opens (SECURITY DEFINER with SET search_path: a GUC
-- save/restore per call, two lookups) once per SMS in the claim;
-- public.set_updated_at (PL/pgSQL) fired by every settled message row; and
-- migration 067's sending.progress_parts rows stayed forever.
--
--   sending.step         consent and suppression in the step's statement
--                        (the same rule as sending.allowed, written out:
--                        index probes, no function call per message); at
--                        the end of a step of a campaign that no longer
--                        sends, its progress parts are folded (below).
--   sending.materialise  the same rule as (anti-)joins over the audience,
--                        not a call per recipient.
--   sending.claim        quiet hours: sending.sms_window_opens only for a
--                        contact with a time zone of its own; the others
--                        share the application time zone's answer, computed
--                        once per claim (the function's own answer for no
--                        contact, so the same value).
--   sending.settle       one statement per channel (one that named both
--                        message tables opened both, with all their indexes,
--                        at every settle); sets updated_at itself; the message tables'
--                        set_updated_at triggers fire only when the new row's
--                        updated_at is not already now() — what the trigger
--                        would set, so every update stores what it stored.
--   sending.fold_progress (new) adds a campaign's parts to its
--                        sending.progress row and deletes them, in one
--                        statement (the deleted rows' values are added): the
--                        exact counts (sending.progress_counts) never change
--                        by it. It waits for nobody: parts a running step
--                        holds, or the progress row while a copy holds it,
--                        are left for a later fold. Called when the campaign
--                        is marked sent (sending.finish), by a cancel, and
--                        by a step of a campaign that no longer sends (the
--                        late settles after a cancel or a pause).
--   sending.unfinished, sending.audit_batch, sending.current_month
--                        PL/pgSQL instead of LANGUAGE sql with SET or
--                        SECURITY DEFINER, which is never inlined and was
--                        parsed and planned at every call (per batch).
-- sending.allowed stays (same rule; other callers). Same rules, same
-- results; the C<->SQL interface is unchanged.
-- Applied once, inside one transaction, by the database owner.

create function sending.fold_progress(p_campaign uuid)
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
begin
    -- the campaign's row, unless a copy (publish_progress) holds it: then a
    -- later fold does it (never a wait here, so never a lock cycle)
    perform 1 from sending.progress p where p.campaign_id = p_campaign for update skip locked;
    if not found then
        return;
    end if;
    -- the parts no running transaction holds; what is deleted is added
    with gone as (
        delete from sending.progress_parts q
        where q.campaign_id = p_campaign
          and q.part in (select r.part from sending.progress_parts r
                         where r.campaign_id = p_campaign for update skip locked)
        returning q.sent, q.failed, q.dropped)
    update sending.progress p set sent = p.sent + g.sent, failed = p.failed + g.failed,
        dropped = p.dropped + g.dropped
    from (select coalesce(sum(x.sent), 0)::integer as sent, coalesce(sum(x.failed), 0)::integer as failed,
                 coalesce(sum(x.dropped), 0)::integer as dropped, count(*) as n from gone x) g
    where p.campaign_id = p_campaign and g.n > 0;
end
$$;
revoke all on function sending.fold_progress(uuid) from public;

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
    v_app_opens timestamptz;
begin
    perform 1 from public.campaigns k
    where k.id = p_campaign and k.status = 'sending' and k.deleted_at is null
      and k.type = p_channel
    for update;
    if not found then
        return;
    end if;
    perform sending.recover(p_campaign);
    -- when the window opens in the application's time zone (null: open now),
    -- once per claim: sending.sms_window_opens of a contact without a time
    -- zone of its own (or of no contact) answers exactly this
    if p_channel = 'sms' then
        v_app_opens := sending.sms_window_opens(null);
    end if;
    -- the due messages; SMS in the recipient's quiet hours wait for the
    -- window, as a temporary failure does (wait runs whether read or not)
    with due as materialized (
        select d.id, d.recipient, d.contact_id,
               case when p_channel <> 'sms' then null
                    when (select nullif(k.attributes ->> 'timezone', '') from public.contacts k
                          where k.id = d.contact_id) is null then v_app_opens
                    else sending.sms_window_opens(d.contact_id) end as opens
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
            -- sending.allowed's rule (041, 052) written into the statement:
            -- its lookups as index probes of this one statement, not a
            -- PL/pgSQL call (three planned queries) per message
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
    -- a campaign that no longer sends (sent, cancelled, paused): what this
    -- session and idle ones counted on their parts goes into its row
    if step.status is distinct from 'sending' then
        perform sending.fold_progress(p_campaign);
    end if;
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
    -- one statement per channel: a statement naming both message tables
    -- opened and locked both, with their 9 indexes each, at every settle
    if p_channel = 'email' then
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
               count(*) filter (where o.status in ('dropped', 'canceled'))
        into v_unknown, v_unsent, v_sent, v_failed, v_dropped
        from e o;
    else
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
               -- accepted: handed over, whatever status a webhook that came
               -- first left (forward_only keeps a later status)
               count(*) filter (where o.outcome = 'accepted'),
               count(*) filter (where o.status = 'failed'),
               count(*) filter (where o.status in ('dropped', 'canceled'))
        into v_unknown, v_unsent, v_sent, v_failed, v_dropped
        from s o;
    end if;
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
        update public.campaigns c set status = 'sent', send_finished_at = pg_catalog.now()
        where c.id = p_campaign;
        v_status := 'sent';
        perform sending.fold_progress(p_campaign);
        -- its counts reach analytics_data now, not at the next periodic roll-up
        perform jobs.enqueue('send.rollup', '{}'::jsonb, pg_catalog.now(), 'send.rollup', 3,
                             '30 seconds');
    end if;
    return v_status;
end
$$;

create or replace function sending.materialise(p_campaign uuid, out recipients integer, out skipped integer)
language plpgsql volatile
security definer
set search_path = ''
set campaignd.engine_batch = 'on'
as $$
declare
    c public.campaigns%rowtype;
    v_audience integer;
begin
    select * into c from public.campaigns where id = p_campaign;
    create temporary table if not exists sending_audience (id uuid primary key) on commit drop;
    truncate sending_audience;
    insert into sending_audience select distinct a from sending.audience(c.user_id, c.segment_id) a;
    get diagnostics v_audience = row_count;
    if c.type = 'email' then
        insert into public.email_messages (campaign_id, contact_id, recipient, subject, status)
        select distinct on (k.email) c.id, k.id, k.email, c.subject, 'queued'
        from sending_audience a join public.contacts k on k.id = a.id
        -- sending.allowed's rule as (anti-)joins over the whole audience
        where k.email is not null
          and not exists (select 1 from public.email_subscriptions s
                          where s.email = k.email and not s.subscribed)
          and not exists (select 1 from public.suppressions x
                          where x.channel = 'email'
                            and x.address = pg_catalog.lower(pg_catalog.btrim(k.email)))
        order by k.email, k.created_at
        on conflict do nothing;
    else
        insert into public.sms_messages (campaign_id, contact_id, recipient, message, status)
        select distinct on (k.phone) c.id, k.id, k.phone, '', 'queued'
        from sending_audience a join public.contacts k on k.id = a.id
        where k.phone is not null
          and exists (select 1 from public.sms_consent s
                      where s.phone_number = k.phone and s.consent_given)
          and not exists (select 1 from public.suppressions x
                          where x.channel = 'sms' and x.address = pg_catalog.btrim(k.phone))
        order by k.phone, k.created_at
        on conflict do nothing;
    end if;
    get diagnostics recipients = row_count;
    skipped := v_audience - recipients;
    update public.campaigns set materialised_at = pg_catalog.now(),
        recipients_count = recipients, skipped_count = greatest(0, skipped)
    where id = p_campaign;
    perform sending.audit_batch(case when c.type = 'email' then 'email' else 'sms' end, p_campaign,
        pg_catalog.jsonb_build_object('event', 'materialised', 'recipients', recipients,
                                      'skipped', greatest(0, skipped)));
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
    update public.email_messages m set status = 'dropped', last_error = 'campaign cancelled'
    where m.campaign_id = p_campaign
      and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
      and not exists (select 1 from sending.leases l where l.message_id = m.id and l.in_flight);
    get diagnostics n = row_count;
    update public.sms_messages m set status = 'canceled', last_error = 'campaign cancelled'
    where m.campaign_id = p_campaign
      and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
      and not exists (select 1 from sending.leases l where l.message_id = m.id and l.in_flight);
    get diagnostics n_sms = row_count;
    if n + n_sms > 0 then
        perform sending.count_progress(p_campaign, 0, 0, n + n_sms);
        perform sending.publish_progress(p_campaign, true);
    end if;
    perform sending.fold_progress(p_campaign);
    perform sending.audit_batch(case c.type when 'sms' then 'sms' else 'email' end, p_campaign,
        pg_catalog.jsonb_build_object('event', 'cancelled', 'dropped', n + n_sms));
    return pg_catalog.to_jsonb(c);
end
$$;

-- set_updated_at (PL/pgSQL) sets new.updated_at := now(); when the update
-- already sets that (the engine's settle), calling it changes nothing.
drop trigger set_updated_at on public.email_messages;
create trigger set_updated_at before update on public.email_messages
    for each row
    when (new.updated_at is distinct from pg_catalog.now())
    execute function public.set_updated_at();
drop trigger set_updated_at on public.sms_messages;
create trigger set_updated_at before update on public.sms_messages
    for each row
    when (new.updated_at is distinct from pg_catalog.now())
    execute function public.set_updated_at();

-- LANGUAGE sql functions with SET or SECURITY DEFINER are never inlined:
-- fmgr_sql parsed and planned their statement at every call (per batch:
-- the batch end's finish, its audit row, each claim's reservation). As
-- PL/pgSQL the plan is kept per session. Same statements, same results.
create or replace function sending.unfinished(p_campaign uuid)
returns boolean
language plpgsql stable
security definer
set search_path = ''
as $$
begin
    return exists (select 1 from public.email_messages m where m.campaign_id = p_campaign
                   and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null)))
        or exists (select 1 from public.email_messages m where m.campaign_id = p_campaign
                   and m.status = 'sending')
        or exists (select 1 from public.sms_messages m where m.campaign_id = p_campaign
                   and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null)))
        or exists (select 1 from public.sms_messages m where m.campaign_id = p_campaign
                   and m.status = 'sending')
        or exists (select 1 from sending.leases l where l.campaign_id = p_campaign);
end
$$;

create or replace function sending.audit_batch(p_channel text, p_campaign uuid, p_detail jsonb)
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
begin
    insert into public.audit_logs (action, resource_type, resource_id, new_value, status, metadata)
    values ('update', case p_channel when 'email' then 'email_messages' else 'sms_messages' end,
            p_campaign, p_detail, 'success',
            pg_catalog.jsonb_build_object('role', 'service_role', 'batch', true, 'table',
                case p_channel when 'email' then 'public.email_messages' else 'public.sms_messages' end));
end
$$;

create or replace function sending.current_month()
returns date
language plpgsql stable
set search_path = ''
as $$
begin
    return pg_catalog.date_trunc('month', pg_catalog.now() at time zone
        coalesce((select a.timezone::text from public.app_settings a limit 1), 'UTC'))::date;
end
$$;
