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
--   * sending.rollup_marks: a row per change that may move a campaign's
--     counts, written by a row trigger of the message tables for every
--     writer except the engine's batches (the webhooks, tracking,
--     unsubscribe, the price follow-up, psql; the engine's functions run
--     with campaignd.engine_batch on, which its WHEN skips as the per-row
--     audit does), and by a trigger of campaigns when a campaign stops
--     sending (sent, paused, cancelled). No key and no index: a webhook
--     burst for one campaign never waits for another transaction's mark
--     (an ON CONFLICT on a key would wait for each uncommitted one), and a
--     run takes the whole table;
--   * sending.rollup_campaigns(ids): every day of those campaigns from their
--     messages, upserted, and the campaign's rows of days that no longer
--     have a message deleted (an `unknown` message counts on the day it was
--     written until a late result gives it a sent_at);
--   * sending.rollup_due(): takes the marks, adds the campaigns sending now,
--     and rolls them up. The recurring job and the job queued when a
--     campaign finishes or a price comes call it (src/sending/engine.c).
-- sending.rollup_analytics(date) stays as it was: a full recomputation from
-- a day on, for an operator. Every campaign that has sent anything is
-- marked here, so the first run after the upgrade mends the days the old
-- roll-up left behind. Applied once, inside one transaction, by the
-- database owner.

create table sending.rollup_marks (
    campaign_id uuid not null
);
comment on table sending.rollup_marks is
    'Campaigns whose delivery counts may have changed since the last roll-up into analytics_data (a row per change; sending.rollup_due takes them all).';
revoke all on sending.rollup_marks from public;
grant select on sending.rollup_marks to service_role;

create function sending.mark_rollup_due() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    insert into sending.rollup_marks (campaign_id) values (new.id);
    return null;
end
$$;

create function sending.mark_message_rollup_due() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    insert into sending.rollup_marks (campaign_id) values (new.campaign_id);
    return null;
end
$$;
revoke all on function sending.mark_rollup_due(), sending.mark_message_rollup_due() from public;

create trigger rollup_due after insert or update on public.email_messages
    for each row
    when (new.campaign_id is not null
          and pg_catalog.current_setting('campaignd.engine_batch', true) is distinct from 'on')
    execute function sending.mark_message_rollup_due();
create trigger rollup_due after insert or update on public.sms_messages
    for each row
    when (new.campaign_id is not null
          and pg_catalog.current_setting('campaignd.engine_batch', true) is distinct from 'on')
    execute function sending.mark_message_rollup_due();
create trigger rollup_due after update of status on public.campaigns
    for each row
    when (old.status = 'sending' and new.status is distinct from 'sending')
    execute function sending.mark_rollup_due();

-- Every day of the campaigns p_campaigns into analytics_data (028's metrics
-- and definitions, the same as the campaign_performance report's); the
-- campaigns' rows of days without a message any more are deleted. Returns
-- the number of rows written or deleted.
create function sending.rollup_campaigns(p_campaigns uuid[])
returns integer
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_tz text := coalesce((select a.timezone::text from public.app_settings a limit 1), 'UTC');
    n integer;
begin
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
          and a.metric_type in ('email_sent', 'email_delivered', 'email_failed', 'email_bounced',
                                'email_opened', 'email_clicked', 'email_unsubscribed',
                                'email_unknown', 'sms_sent', 'sms_delivered', 'sms_failed',
                                'sms_cost')
          and not exists (select 1 from agg
                          where agg.campaign_id = c.id and agg.day = a.date
                            and agg.metric = a.metric_type)
        returning 1)
    select (select count(*) from written) + (select count(*) from gone) into n;
    return n;
end
$$;

-- The roll-up's run: the marked campaigns and those sending now. A mark
-- made after the marks are taken (a webhook committing meanwhile) stays for
-- the next run; one taken here is rolled up by the next statement, which
-- sees the change that made it (committed with it).
create function sending.rollup_due()
returns integer
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_campaigns uuid[];
begin
    with taken as (
        delete from sending.rollup_marks returning campaign_id)
    select array(select t.campaign_id from taken t
                 union
                 select c.id from public.campaigns c where c.status = 'sending')
    into v_campaigns;
    if pg_catalog.cardinality(v_campaigns) = 0 then
        return 0;
    end if;
    return sending.rollup_campaigns(v_campaigns);
end
$$;

revoke all on function sending.rollup_campaigns(uuid[]), sending.rollup_due() from public;
grant execute on function sending.rollup_campaigns(uuid[]), sending.rollup_due() to service_role;

-- What the old roll-up left behind: every campaign that has messages is
-- rolled up whole by the first run.
insert into sending.rollup_marks (campaign_id)
select c.id from public.campaigns c
where exists (select 1 from public.email_messages m where m.campaign_id = c.id)
   or exists (select 1 from public.sms_messages s where s.campaign_id = c.id);
