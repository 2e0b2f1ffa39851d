-- 028_tracking.sql — what comes back from sent e-mail (issue 12): opens,
-- clicks and one-click unsubscribes reached through signed tokens
-- (src/sending/track.c; the server verifies the signature, these functions
-- act on the one message it names), and the roll-up of delivery counts into
-- analytics_data. See docs/sending.md.

-- Records an open of a message: opened_at is set once; the status moves to
-- opened when that is forward. Returns whether the message exists.
create function sending.record_open(p_message uuid)
returns boolean
language plpgsql volatile
security definer
set search_path = ''
as $$
begin
    update public.email_messages m set
        opened_at = coalesce(m.opened_at, pg_catalog.now()),
        status = case when m.status in ('sent', 'delivered') then 'opened' else m.status end
    where m.id = p_message and m.opened_at is null;
    return exists (select 1 from public.email_messages m where m.id = p_message);
end
$$;

-- Records a click on link p_index of a message and returns that link's URL
-- (NULL when the message or the index does not exist: nothing is recorded).
-- A click is also an open.
create function sending.record_click(p_message uuid, p_index integer)
returns text
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_url text;
begin
    select m.links ->> p_index into v_url from public.email_messages m where m.id = p_message;
    if v_url is null or p_index < 0 then
        return null;
    end if;
    insert into public.email_clicks (message_id, url) values (p_message, v_url);
    update public.email_messages m set
        clicked_at = coalesce(m.clicked_at, pg_catalog.now()),
        opened_at = coalesce(m.opened_at, pg_catalog.now()),
        status = case when m.status in ('sent', 'delivered', 'opened') then 'clicked' else m.status end
    where m.id = p_message and (m.clicked_at is null or m.status in ('sent', 'delivered', 'opened'));
    return v_url;
end
$$;

-- 'subscribed' or 'unsubscribed' for the recipient of a message, as the
-- unsubscribe page shows it; NULL when the message does not exist.
create function sending.unsubscribe_state(p_message uuid)
returns text
language sql stable
security definer
set search_path = ''
as $$
    select case when m.unsubscribed_at is not null
                  or public.is_suppressed('email', m.recipient)
                then 'unsubscribed' else 'subscribed' end
    from public.email_messages m
    where m.id = p_message
$$;

-- One-click unsubscribe of the recipient of a message (idempotent): the
-- address is suppressed (public.suppressions, instance-wide as 026 says), its
-- e-mail consent withdrawn (email_subscriptions, audited like every consent
-- change), and the message marked unsubscribed. Nothing else can be named:
-- the token only carries the message. Returns whether the message exists.
create function sending.unsubscribe(p_message uuid)
returns boolean
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    m public.email_messages%rowtype;
begin
    select * into m from public.email_messages x where x.id = p_message;
    if not found then
        return false;
    end if;
    if m.unsubscribed_at is not null then
        return true;
    end if;
    perform public.suppress('email', m.recipient, 'unsubscribe', 'one-click unsubscribe link',
                            m.campaign_id);
    insert into public.email_subscriptions as s (email, subscribed, unsubscribe_reason)
    values (m.recipient, false, 'one-click unsubscribe (campaign e-mail)')
    on conflict (email) do update
        set subscribed = false, unsubscribe_reason = excluded.unsubscribe_reason
        where s.subscribed;
    update public.email_messages x set unsubscribed_at = pg_catalog.now(),
        status = 'unsubscribed'  -- kept when not forward (026's forward-only rule)
    where x.id = p_message;
    return true;
end
$$;

-- ---------------------------------------------------------------------------
-- Roll-up into analytics_data
-- ---------------------------------------------------------------------------

-- Recomputes, for every campaign with messages on or after p_since (in the
-- application's time zone), one analytics_data row per (owner, metric, day)
-- with dimensions {"campaign_id": ...}: email_sent, email_delivered,
-- email_failed, email_bounced, email_opened, email_clicked,
-- email_unsubscribed, email_unknown, sms_sent, sms_delivered, sms_failed,
-- sms_cost. The same definitions as the campaign_performance report.
-- Returns the number of rows written.
create function sending.rollup_analytics(p_since date)
returns integer
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_tz text := coalesce((select a.timezone::text from public.app_settings a limit 1), 'UTC');
    n integer;
begin
    with em as (
        select c.user_id, c.id as campaign_id,
               (coalesce(m.sent_at, m.created_at) at time zone v_tz)::date as day,
               m.status, m.opened_at, m.clicked_at, m.unsubscribed_at
        from public.email_messages m join public.campaigns c on c.id = m.campaign_id
        where (coalesce(m.sent_at, m.created_at) at time zone v_tz)::date >= p_since),
    sm as (
        select c.user_id, c.id as campaign_id,
               (coalesce(s.sent_at, s.created_at) at time zone v_tz)::date as day, s.status, s.cost
        from public.sms_messages s join public.campaigns c on c.id = s.campaign_id
        where (coalesce(s.sent_at, s.created_at) at time zone v_tz)::date >= p_since),
    counts as (
        select em.user_id, em.campaign_id, em.day, v.metric, v.value
        from em, lateral (values
            ('email_sent', (em.status in ('sent', 'deferred', 'delivered', 'bounced', 'opened',
                                          'clicked', 'spam_reported', 'unsubscribed'))::int::numeric),
            ('email_delivered', (em.status in ('delivered', 'opened', 'clicked', 'spam_reported',
                                               'unsubscribed'))::int::numeric),
            ('email_failed', (em.status in ('failed', 'dropped'))::int::numeric),
            ('email_bounced', (em.status = 'bounced')::int::numeric),
            ('email_opened', (em.opened_at is not null)::int::numeric),
            ('email_clicked', (em.clicked_at is not null)::int::numeric),
            ('email_unsubscribed', (em.unsubscribed_at is not null
                                    or em.status = 'unsubscribed')::int::numeric),
            ('email_unknown', (em.status = 'unknown')::int::numeric)) as v(metric, value)
        union all
        select sm.user_id, sm.campaign_id, sm.day, v.metric, v.value
        from sm, lateral (values
            ('sms_sent', (sm.status in ('sent', 'delivered', 'undelivered', 'read'))::int::numeric),
            ('sms_delivered', (sm.status in ('delivered', 'read'))::int::numeric),
            ('sms_failed', (sm.status in ('failed', 'undelivered'))::int::numeric),
            ('sms_cost', pg_catalog.abs(coalesce(sm.cost, 0)))) as v(metric, value)),
    agg as (
        select user_id, campaign_id, day, metric, sum(value) as value
        from counts where user_id is not null
        group by user_id, campaign_id, day, metric)
    insert into public.analytics_data as a (user_id, metric_type, value, date, dimensions)
    select agg.user_id, agg.metric, agg.value, agg.day,
           pg_catalog.jsonb_build_object('campaign_id', agg.campaign_id)
    from agg
    on conflict on constraint analytics_data_user_metric_day_key
    do update set value = excluded.value where a.value is distinct from excluded.value;
    get diagnostics n = row_count;
    return n;
end
$$;

revoke all on function sending.record_open(uuid), sending.record_click(uuid, integer),
    sending.unsubscribe_state(uuid), sending.unsubscribe(uuid), sending.rollup_analytics(date)
from public;
grant execute on function sending.record_open(uuid), sending.record_click(uuid, integer),
    sending.unsubscribe_state(uuid), sending.unsubscribe(uuid), sending.rollup_analytics(date)
to service_role;
