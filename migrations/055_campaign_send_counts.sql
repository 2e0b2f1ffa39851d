-- 055_campaign_send_counts.sql: what the engine did with a campaign's
-- messages, counted per step on a row of its own (issue 12, speed;
-- bench/RESULTS.md "send-fast3").
--
-- The dashboard's progress card followed every message row through realtime:
-- each message was captured twice (its insert, its settle) into
-- realtime.changes, with a NOTIFY and the feed's reads per transaction —
-- 0.7-0.8 ms of PostgreSQL CPU per message, a fifth of the total. Now the
-- engine counts the messages it settles in the same statement (so the same
-- transaction) as the settles, and the card follows those counts; the
-- message tables need not be captured (REALTIME_TABLES no longer lists them
-- by default, docs/realtime.md).
--
--   public.campaign_progress   new: one row per campaign that has sent (id =
--       the campaign's id): sent_count (handed to the provider, accepted),
--       failed_count (a permanent failure, or temporary ones until
--       SEND_MAX_ATTEMPTS), dropped_count (consent withdrawn, suppressed,
--       campaign cancelled). With campaigns.recipients_count and
--       unknown_count (027): waiting = recipients - sent - failed - dropped -
--       unknown. Later provider reports (delivered, bounced) do not move
--       them: they count the engine's work. Not columns of campaigns: the
--       campaign row would then change at every engine step, and each change
--       runs campaigns' six triggers (one writes an audit row) and makes
--       every open campaigns list, overview and campaign page refetch. Read
--       under the campaign's own rules (a row is visible to whoever sees its
--       campaign); written only by the engine's functions.
--   sending.progress   new, private (no trigger, not published): the exact
--       counts, added to at every engine step. campaign_progress is its copy,
--       refreshed when the counts grew by 1 % of the recipients (at least
--       one message), at the end of each claimed batch and at a cancel: a
--       realtime change (a NOTIFY, the feed's reads) per 1 % of a campaign,
--       not per message.
--   sending.settle (041)   the same function; also adds the settled
--       messages to the campaign's counts, one update per call (per engine
--       step), in the step's transaction: a kill -9 loses the settles and
--       their counts together.
--   sending.step (052)     the same function; publishes at a batch's end.
--   delivered_count        the provider's and the tracking's later reports
--       (delivered, read, opened, clicked ...), counted by a trigger on the
--       message tables that only runs outside the engine's functions (the
--       webhooks and the tracking write one message per request), published
--       as they come.
--   sending.cancel (041)   the same function; counts the dropped messages
--       (and says how many in its audit row from its own counts).
-- Existing campaigns get their counts from their messages.
-- Applied once, inside one transaction, by the database owner.

create table public.campaign_progress (
    id uuid primary key references public.campaigns (id) on delete cascade,
    sent_count integer not null default 0
        constraint campaign_progress_sent_count_not_negative check (sent_count >= 0),
    failed_count integer not null default 0
        constraint campaign_progress_failed_count_not_negative check (failed_count >= 0),
    dropped_count integer not null default 0
        constraint campaign_progress_dropped_count_not_negative check (dropped_count >= 0),
    delivered_count integer not null default 0
        constraint campaign_progress_delivered_count_not_negative check (delivered_count >= 0)
);
comment on table public.campaign_progress is
    'What the send engine did with a campaign''s messages (id = the campaign), counted in the transactions that settle them. Waiting = campaigns.recipients_count - sent - failed - dropped - campaigns.unknown_count.';
comment on column public.campaign_progress.sent_count is
    'Messages handed to the provider (accepted). Later provider reports (delivered, bounced) do not change it.';
comment on column public.campaign_progress.failed_count is
    'Messages the engine gave up on: a permanent failure, or temporary failures until SEND_MAX_ATTEMPTS.';
comment on column public.campaign_progress.delivered_count is
    'Sent messages the provider or the tracking reported delivered (delivered, read, opened, clicked, spam_reported, unsubscribed): counted as the webhook or the tracking writes them, not by the engine.';
comment on column public.campaign_progress.dropped_count is
    'Messages not sent: consent withdrawn or address suppressed before sending, or the campaign cancelled.';

alter table public.campaign_progress enable row level security;
revoke all on public.campaign_progress from public, anon, authenticated;
grant select on public.campaign_progress to authenticated;
grant all on public.campaign_progress to service_role;
-- Visible with its campaign: the campaigns policies decide inside the EXISTS.
create policy campaign_progress_select on public.campaign_progress for select
    to app_admin, app_user, app_viewer
    using (exists (select 1 from public.campaigns c where c.id = campaign_progress.id));

-- The exact counts, written at every engine step: a private row without
-- triggers (not published), so that a step costs one small update and no
-- realtime change. public.campaign_progress is a copy of it, refreshed by
-- sending.publish_progress: when the counts have grown by 1 % of the
-- recipients (at least one message) since the last copy, at the end of each
-- claimed batch, and at a cancel — about a hundred realtime changes per
-- campaign, not one per message.
create table sending.progress (
    campaign_id uuid primary key references public.campaigns (id) on delete cascade,
    sent integer not null default 0,
    failed integer not null default 0,
    dropped integer not null default 0,
    delivered integer not null default 0,
    recipients integer not null default 0,
    published integer not null default 0
);
comment on table sending.progress is
    'The send engine''s exact counts per campaign (see public.campaign_progress, their published copy); published: sent + failed + dropped at the last copy.';
revoke all on sending.progress from public;
grant select on sending.progress to service_role;

-- The counts of the campaigns that sent before this migration.
insert into sending.progress (campaign_id, sent, failed, dropped, delivered, published)
select x.campaign_id, x.sent, x.failed, x.dropped, x.delivered, x.sent + x.failed + x.dropped
from (select m.campaign_id,
             count(*) filter (where m.sent_at is not null and m.status <> 'unknown')::integer as sent,
             count(*) filter (where m.sent_at is null and m.status = 'failed')::integer as failed,
             count(*) filter (where m.status = 'dropped')::integer as dropped,
             count(*) filter (where m.status in ('delivered', 'read', 'opened', 'clicked',
                                                 'spam_reported', 'unsubscribed'))::integer as delivered
      from public.email_messages m group by m.campaign_id
      union all
      select m.campaign_id,
             count(*) filter (where m.sent_at is not null and m.status <> 'unknown')::integer,
             count(*) filter (where m.sent_at is null and m.status = 'failed')::integer,
             count(*) filter (where m.status = 'canceled')::integer,
             count(*) filter (where m.status in ('delivered', 'read', 'opened', 'clicked',
                                                 'spam_reported', 'unsubscribed'))::integer
      from public.sms_messages m group by m.campaign_id) x
where x.sent > 0 or x.failed > 0 or x.dropped > 0 or x.delivered > 0;
update sending.progress p set recipients = c.recipients_count
from public.campaigns c where c.id = p.campaign_id;
insert into public.campaign_progress (id, sent_count, failed_count, dropped_count, delivered_count)
select p.campaign_id, p.sent, p.failed, p.dropped, p.delivered from sending.progress p;

-- Copies a campaign's exact counts to its published row (p_always: whatever
-- they are; else only when they grew by 1 % of the recipients, at least
-- one, since the last copy). Called with the private row locked by the
-- caller's update, so copies of one campaign are serialised and only grow.
create function sending.publish_progress(p_campaign uuid, p_always boolean)
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    r sending.progress%rowtype;
begin
    if p_always then
        update sending.progress p set published = p.sent + p.failed + p.dropped
        where p.campaign_id = p_campaign and p.published <> p.sent + p.failed + p.dropped
        returning p.* into r;
    else
        update sending.progress p set published = p.sent + p.failed + p.dropped
        where p.campaign_id = p_campaign
          and p.sent + p.failed + p.dropped - p.published >= greatest(1, p.recipients / 100)
        returning p.* into r;
    end if;
    if found then
        insert into public.campaign_progress as q (id, sent_count, failed_count, dropped_count,
                                                   delivered_count)
        values (p_campaign, r.sent, r.failed, r.dropped, r.delivered)
        on conflict (id) do update set sent_count = excluded.sent_count,
            failed_count = excluded.failed_count, dropped_count = excluded.dropped_count,
            delivered_count = excluded.delivered_count;
    end if;
end
$$;

-- Adds to a campaign's exact counts, and publishes them when they grew
-- enough (the engine's functions only, in the transaction of the settles).
create function sending.count_progress(p_campaign uuid, p_sent integer, p_failed integer,
                                       p_dropped integer)
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
begin
    update sending.progress p set sent = p.sent + p_sent, failed = p.failed + p_failed,
        dropped = p.dropped + p_dropped
    where p.campaign_id = p_campaign;
    if not found then
        insert into sending.progress as p (campaign_id, sent, failed, dropped, recipients)
        values (p_campaign, p_sent, p_failed, p_dropped,
                (select c.recipients_count from public.campaigns c where c.id = p_campaign))
        on conflict (campaign_id) do update set sent = p.sent + excluded.sent,
            failed = p.failed + excluded.failed, dropped = p.dropped + excluded.dropped;
    end if;
    perform sending.publish_progress(p_campaign, false);
end
$$;
revoke all on function sending.count_progress(uuid, integer, integer, integer),
    sending.publish_progress(uuid, boolean) from public;

-- Delivered: written by the webhooks and the tracking (one message per
-- request, never inside the engine's functions), counted and published as
-- they come, so that the dashboard sees them live without the message
-- tables in REALTIME_TABLES. Only a status change outside the engine runs it.
create function sending.count_delivered() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_delta integer := (new.status in ('delivered', 'read', 'opened', 'clicked', 'spam_reported',
                                       'unsubscribed'))::integer
                     - (old.status in ('delivered', 'read', 'opened', 'clicked', 'spam_reported',
                                       'unsubscribed'))::integer;
    v_delivered integer;
begin
    if v_delta <> 0 then
        update sending.progress p set delivered = greatest(0, p.delivered + v_delta)
        where p.campaign_id = new.campaign_id
        returning p.delivered into v_delivered;
        if found then
            update public.campaign_progress q set delivered_count = v_delivered
            where q.id = new.campaign_id;
        end if;
    end if;
    return null;
end
$$;
revoke all on function sending.count_delivered() from public;
create trigger count_delivered after update of status on public.email_messages
    for each row
    when (old.status is distinct from new.status
          and pg_catalog.current_setting('campaignd.engine_batch', true) is distinct from 'on')
    execute function sending.count_delivered();
create trigger count_delivered after update of status on public.sms_messages
    for each row
    when (old.status is distinct from new.status
          and pg_catalog.current_setting('campaignd.engine_batch', true) is distinct from 'on')
    execute function sending.count_delivered();

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
    with r as (
        delete from sending.leases l
        using pg_catalog.jsonb_to_recordset(p_done)
              as x(id uuid, outcome text, provider_id text, sid text, segments integer,
                   cost numeric, body text, error text)
        where l.message_id = x.id and l.claim = p_claim and (l.in_flight or x.outcome = 'dropped')
        returning x.*, l.links),
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
    perform sending.audit_batch(case c.type when 'sms' then 'sms' else 'email' end, p_campaign,
        pg_catalog.jsonb_build_object('event', 'cancelled', 'dropped', n + n_sms));
    return pg_catalog.to_jsonb(c);
end
$$;

-- 052's step, and at the end of a batch its counts are published.
create or replace function sending.step(p_channel text, p_campaign uuid, p_claim uuid, p_done jsonb,
                             p_next uuid[], p_links jsonb, p_batch uuid[], p_max_attempts integer,
                             p_backoff_seconds integer, p_lease_seconds integer,
                             out status text, out go uuid[])
language plpgsql volatile
security definer
set search_path = ''
set campaignd.engine_batch = 'on'
as $$
declare
    v_dropped uuid[];
begin
    if p_done is not null and pg_catalog.jsonb_array_length(p_done) > 0 then
        perform sending.settle(p_channel, p_campaign, p_claim, p_done, p_max_attempts,
                               p_backoff_seconds);
    end if;
    select c.status into step.status from public.campaigns c
    where c.id = p_campaign and c.deleted_at is null;
    if coalesce(pg_catalog.cardinality(p_next), 0) > 0 and step.status = 'sending' then
        -- each id looked up by primary key (a lateral, correlated lookup), never
        -- a hash of a seq scan of sending.leases or of the message table
        with n as (
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
        ok as (
            select n.id, n.ord, n.recipient,
                   sending.allowed(p_channel, n.recipient) as allowed
            from n where n.mstatus = 'queued' or (n.mstatus = 'sending' and n.mlease is null)),
        flying as (
            update sending.leases l set in_flight = true,
                lease_until = pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds),
                links = nullif(p_links -> (ok.ord::integer - 1), 'null'::jsonb)
            from ok where ok.allowed and l.message_id = ok.id
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
    if p_batch is not null then
        perform sending.publish_progress(p_campaign, true);
        perform sending.end_batch(p_channel, p_campaign, p_claim, p_batch);
        step.status := (select f.status from sending.finish_if_done(p_campaign) f);
    end if;
end
$$;

