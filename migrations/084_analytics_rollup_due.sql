-- 084_analytics_rollup_due.sql: the delivery roll-up into analytics_data
-- follows what changed (issue 12, "Delivery counts roll up into
-- analytics_data"; docs/sending.md "Counts").
--
-- sending.rollup_analytics(p_since) (028) is what the roll-up job ran, every
-- SEND_ROLLUP_INTERVAL seconds and after each campaign, with p_since =
-- yesterday: it recomputed the days from yesterday on, from every message.
--   * An open, click, delivery, bounce, unsubscribe or price that came for a
--     message sent before yesterday never reached analytics_data: opens of an
--     e-mail come over days, and the chart of last week's campaign stopped
--     counting after its first two days.
--   * Its filter is an expression (coalesce(sent_at, created_at) in the
--     app's time zone) that no index serves: each run read both message
--     tables whole, all the messages ever sent, every five minutes.
--
-- Now the roll-up recomputes whole campaigns, those whose counts may have
-- changed, each read by its own index (026's one-per-recipient index leads
-- with campaign_id):
--   * sending.rollup_marks: a row per statement that wrote the messages of
--     a campaign that is not sending (a campaign sending now is rolled up by
--     every run anyway): statement triggers of the message tables, for every
--     writer (the webhooks, tracking, unsubscribe, the price follow-up, and
--     the engine's own writes after a pause or a cancel: the groups still in
--     flight settling, a cancel's dropped messages, a recovery's unknown);
--     and a trigger of campaigns when a campaign's status or owner changes
--     (the old owner's rows of the campaign go then). No key and no index:
--     a burst of webhooks for one campaign never waits for another
--     transaction's uncommitted mark (an ON CONFLICT on a key would), and a
--     run takes what it rolls up;
--   * sending.rollup_campaigns(ids): every day of those campaigns from their
--     messages, upserted, and the campaigns' rows of days that no longer
--     have a message deleted (an `unknown` message counts on the day it was
--     written until a late result gives it a sent_at);
--   * sending.rollup_due(limit, sending): the marks of up to `limit`
--     campaigns and (a job's first call) every campaign sending now, rolled
--     up; `more` says marks are left. The recurring job and the job queued when a campaign finishes or a price
--     comes call it until nothing is left, each call a transaction
--     (src/sending/engine.c). Runs take one advisory lock, so two processes'
--     runs never cross (an older snapshot's counts written over newer ones).
-- sending.rollup_analytics(date) stays as it was: a full recomputation from
-- a day on, for an operator. Every campaign that has messages is marked
-- here, so the first runs after the upgrade mend the days the old roll-up
-- left behind (`limit` campaigns a transaction). Applied once, inside one
-- transaction, by the database owner.

create table sending.rollup_marks (
    campaign_id uuid not null
);
comment on table sending.rollup_marks is
    'Campaigns whose delivery counts may have changed since the last roll-up into analytics_data (a row per writing statement or campaign change; sending.rollup_due takes them).';
revoke all on sending.rollup_marks from public;
grant select on sending.rollup_marks to service_role;

-- The metrics a roll-up writes (028's), for the deletes of a campaign's rows.
create function sending.rollup_metric_types() returns text[]
language sql immutable
set search_path = ''
as $$
    select array['email_sent', 'email_delivered', 'email_failed', 'email_bounced', 'email_opened',
                 'email_clicked', 'email_unsubscribed', 'email_unknown', 'sms_sent',
                 'sms_delivered', 'sms_failed', 'sms_cost']
$$;

-- The messages a statement wrote (changed: its transition table), their
-- campaigns that are not sending now.
create function sending.mark_messages_rollup_due() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    insert into sending.rollup_marks (campaign_id)
    select d.campaign_id
    from (select distinct n.campaign_id from changed n where n.campaign_id is not null) d
    where not exists (select 1 from public.campaigns c where c.id = d.campaign_id and c.status = 'sending');
    return null;
end
$$;

-- A campaign whose status or owner changed; its old owner's rows go (the
-- run deletes only the current owner's rows of days without messages).
create function sending.mark_campaign_rollup_due() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    if old.user_id is not null and old.user_id is distinct from new.user_id then
        delete from public.analytics_data a
        where a.user_id = old.user_id
          and a.dimensions = pg_catalog.jsonb_build_object('campaign_id', old.id)
          and a.metric_type = any (sending.rollup_metric_types());
    end if;
    insert into sending.rollup_marks (campaign_id) values (new.id);
    return null;
end
$$;
revoke all on function sending.mark_messages_rollup_due(), sending.mark_campaign_rollup_due() from public;

-- (A trigger with a transition table has one event: two per table.)
create trigger rollup_due_insert after insert on public.email_messages
    referencing new table as changed
    for each statement execute function sending.mark_messages_rollup_due();
create trigger rollup_due_update after update on public.email_messages
    referencing new table as changed
    for each statement execute function sending.mark_messages_rollup_due();
create trigger rollup_due_insert after insert on public.sms_messages
    referencing new table as changed
    for each statement execute function sending.mark_messages_rollup_due();
create trigger rollup_due_update after update on public.sms_messages
    referencing new table as changed
    for each statement execute function sending.mark_messages_rollup_due();
create trigger rollup_due after update of status, user_id on public.campaigns
    for each row
    when (old.status is distinct from new.status or old.user_id is distinct from new.user_id)
    execute function sending.mark_campaign_rollup_due();

-- Every day of the campaigns p_campaigns into analytics_data (028's metrics
-- and definitions, the same as the campaign_performance report's); the
-- campaigns' rows of days without a message any more are deleted. Returns
-- the number of rows written or deleted.
--
-- enable_seqscan off: the campaigns' messages are read by the campaign's
-- index whatever the planner guesses of p_campaigns (an array it cannot
-- see: ten elements, so with few campaigns on the server it read both
-- message tables whole for one campaign; bench-send.test.js), the rows of
-- analytics_data by its key's index (as 083 does for a batch's end). jit
-- off: what must still be read whole (app_settings' one row) costs 10^10
-- under enable_seqscan off, and that cost had PostgreSQL compile the
-- statement with LLVM for tens of seconds (bench-send.test.js hung there).
create function sending.rollup_campaigns(p_campaigns uuid[])
returns integer
language plpgsql volatile
security definer
set search_path = ''
set enable_seqscan = off
set jit = off
as $$
declare
    v_tz text := coalesce((select a.timezone::text from public.app_settings a limit 1), 'UTC');
    n integer;
begin
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('campaignd.rollup'));
    with c as materialized (
        select c.id, c.user_id, pg_catalog.jsonb_build_object('campaign_id', c.id) as dims
        from public.campaigns c
        where c.id = any (p_campaigns) and c.user_id is not null),
    -- a campaign's day: its counts in one pass over its messages, then a
    -- row per metric (a row per message and metric before aggregating cost
    -- ~5x more: bench/send/rollup.mjs)
    em as (
        select m.campaign_id, (coalesce(m.sent_at, m.created_at) at time zone v_tz)::date as day,
               count(*) filter (where m.status in ('sent', 'deferred', 'delivered', 'bounced', 'opened',
                                                   'clicked', 'spam_reported', 'unsubscribed')) as sent,
               count(*) filter (where m.status in ('delivered', 'opened', 'clicked', 'spam_reported',
                                                   'unsubscribed')) as delivered,
               count(*) filter (where m.status in ('failed', 'dropped')) as failed,
               count(*) filter (where m.status = 'bounced') as bounced,
               count(m.opened_at) as opened,
               count(m.clicked_at) as clicked,
               count(*) filter (where m.unsubscribed_at is not null
                                   or m.status = 'unsubscribed') as unsubscribed,
               count(*) filter (where m.status = 'unknown') as unknown
        from public.email_messages m
        where m.campaign_id = any (array(select c.id from c))
        group by 1, 2),
    sm as (
        select s.campaign_id, (coalesce(s.sent_at, s.created_at) at time zone v_tz)::date as day,
               count(*) filter (where s.status in ('sent', 'delivered', 'undelivered', 'read')) as sent,
               count(*) filter (where s.status in ('delivered', 'read')) as delivered,
               count(*) filter (where s.status in ('failed', 'undelivered')) as failed,
               coalesce(sum(pg_catalog.abs(s.cost)), 0) as cost
        from public.sms_messages s
        where s.campaign_id = any (array(select c.id from c))
        group by 1, 2),
    agg as materialized (
        select c.user_id, em.campaign_id, em.day, v.metric, v.value
        from em join c on c.id = em.campaign_id, lateral (values
            ('email_sent', em.sent::numeric), ('email_delivered', em.delivered::numeric),
            ('email_failed', em.failed::numeric), ('email_bounced', em.bounced::numeric),
            ('email_opened', em.opened::numeric), ('email_clicked', em.clicked::numeric),
            ('email_unsubscribed', em.unsubscribed::numeric),
            ('email_unknown', em.unknown::numeric)) as v(metric, value)
        union all
        select c.user_id, sm.campaign_id, sm.day, v.metric, v.value
        from sm join c on c.id = sm.campaign_id, lateral (values
            ('sms_sent', sm.sent::numeric), ('sms_delivered', sm.delivered::numeric),
            ('sms_failed', sm.failed::numeric), ('sms_cost', sm.cost)) as v(metric, value)),
    written as (
        insert into public.analytics_data as a (user_id, metric_type, value, date, dimensions)
        select agg.user_id, agg.metric, agg.value, agg.day, c.dims
        from agg join c on c.id = agg.campaign_id
        -- what holds its value already is not written (most of an old
        -- campaign's days: a probe of the key's index, not an insert's
        -- speculative try and row lock)
        where not exists (
            select 1 from public.analytics_data b
            where b.user_id = agg.user_id and b.metric_type = agg.metric and b.date = agg.day
              and b.dimensions = c.dims and b.value = agg.value)
        on conflict on constraint analytics_data_user_metric_day_key
        do update set value = excluded.value where a.value is distinct from excluded.value
        returning 1),
    -- (disjoint from the rows written: a (day, metric) that agg has not)
    gone as (
        delete from public.analytics_data a
        using c
        where a.user_id = c.user_id and a.dimensions = c.dims
          and a.metric_type = any (sending.rollup_metric_types())
          and not exists (select 1 from agg
                          where agg.campaign_id = c.id and agg.day = a.date
                            and agg.metric = a.metric_type)
        returning 1)
    select (select count(*) from written) + (select count(*) from gone) into n;
    return n;
end
$$;

-- The roll-up's run: the marks of up to p_limit campaigns, and with
-- p_sending the campaigns sending now (a job's first call; its further calls
-- only take the marks left). The lock first: a run that waited for another's sees what
-- that one committed. A mark made after the marks are taken (a webhook
-- committing meanwhile) stays for the next run; one taken here is rolled
-- up by the next statement, which sees the change that made it (committed
-- with it).
create function sending.rollup_due(p_limit integer, p_sending boolean,
                                   out written integer, out more boolean)
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_campaigns uuid[];
begin
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('campaignd.rollup'));
    with pick as (
        select distinct m.campaign_id from sending.rollup_marks m
        limit greatest(1, p_limit)),
    taken as (
        delete from sending.rollup_marks m using pick
        where m.campaign_id = pick.campaign_id
        returning m.campaign_id)
    select array(select t.campaign_id from taken t
                 union
                 select c.id from public.campaigns c where p_sending and c.status = 'sending')
    into v_campaigns;
    written := case when pg_catalog.cardinality(v_campaigns) = 0 then 0
                    else sending.rollup_campaigns(v_campaigns) end;
    more := exists (select 1 from sending.rollup_marks);
end
$$;

revoke all on function sending.rollup_campaigns(uuid[]), sending.rollup_due(integer, boolean) from public;
grant execute on function sending.rollup_campaigns(uuid[]), sending.rollup_due(integer, boolean) to service_role;

-- What the old roll-up left behind: every campaign that has messages is
-- rolled up whole by the first run.
insert into sending.rollup_marks (campaign_id)
select c.id from public.campaigns c
where exists (select 1 from public.email_messages m where m.campaign_id = c.id)
   or exists (select 1 from public.sms_messages s where s.campaign_id = c.id);
