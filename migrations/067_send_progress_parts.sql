-- 067_send_progress_parts.sql: the send workers stop waiting for each
-- other's commits on the campaign's progress row (issue 12, speed;
-- bench/RESULTS.md "send-edge").
--
-- Every engine step adds what it settled to the campaign's one row of
-- sending.progress (055, 064). With SEND_WORKERS 2 the two workers' steps
-- update that row, and the second waits for the first one's whole step and
-- commit: the step, and the worker behind it, is as slow as both.
--
--   sending.progress_parts   new, private: a campaign's counts added by one
--       database session (part = pg_backend_pid(): the engine's connection of
--       one worker, or the API session of a cancel). A step updates only its
--       own session's row, which no other session writes: no wait.
--   sending.progress         keeps the campaign's published mark
--       (published, serialising the copies), recipients, delivered (written
--       by the webhooks), and, in sent/failed/dropped, the counts from
--       before this migration; the exact counts are those plus the parts'.
--   sending.progress_counts  new view: the exact counts per campaign (the
--       shape of sending.progress), what public.campaign_progress copies.
-- The copy (sending.publish_progress) still happens per 1 % of the
-- recipients, at each batch end and at a cancel; it locks the campaign's
-- row, then sums the parts in a new snapshot, so it includes every copy made
-- before it: copies only grow, and the last one is exact.
-- Applied once, inside one transaction, by the database owner.

create table sending.progress_parts (
    campaign_id uuid not null references public.campaigns (id) on delete cascade,
    part integer not null,
    sent integer not null default 0,
    failed integer not null default 0,
    dropped integer not null default 0,
    primary key (campaign_id, part)
);
comment on table sending.progress_parts is
    'The send engine''s counts per campaign and database session (part: its backend pid), so that concurrent workers do not wait for each other; sending.progress_counts sums them.';
revoke all on sending.progress_parts from public;
grant select on sending.progress_parts to service_role;

create view sending.progress_counts as
select p.campaign_id,
       p.sent + coalesce(s.sent, 0) as sent,
       p.failed + coalesce(s.failed, 0) as failed,
       p.dropped + coalesce(s.dropped, 0) as dropped,
       p.delivered, p.recipients, p.published
from sending.progress p
left join lateral (select sum(q.sent)::integer as sent, sum(q.failed)::integer as failed,
                          sum(q.dropped)::integer as dropped
                   from sending.progress_parts q where q.campaign_id = p.campaign_id) s on true;
comment on view sending.progress_counts is
    'The send engine''s exact counts per campaign: sending.progress plus its parts; published: sent + failed + dropped at the last copy to public.campaign_progress.';
revoke all on sending.progress_counts from public;
grant select on sending.progress_counts to service_role;

-- Copies a campaign's exact counts to its published row (p_always: whatever
-- they are; else only when they grew by 1 % of the recipients, at least
-- one, since the last copy). The campaign's row is locked first, so copies
-- are serialised; the counts are read after the lock, in a new snapshot
-- that holds every transaction that copied before.
create or replace function sending.publish_progress(p_campaign uuid, p_always boolean)
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    r sending.progress_counts%rowtype;
begin
    perform 1 from sending.progress p where p.campaign_id = p_campaign for update;
    if not found then
        return;
    end if;
    select c.* into r from sending.progress_counts c where c.campaign_id = p_campaign;
    if r.sent + r.failed + r.dropped = r.published
       or (not p_always
           and r.sent + r.failed + r.dropped - r.published < greatest(1, r.recipients / 100)) then
        return;
    end if;
    update sending.progress p set published = r.sent + r.failed + r.dropped
    where p.campaign_id = p_campaign;
    insert into public.campaign_progress as q (id, sent_count, failed_count, dropped_count,
                                               delivered_count)
    values (p_campaign, r.sent, r.failed, r.dropped, r.delivered)
    on conflict (id) do update set sent_count = excluded.sent_count,
        failed_count = excluded.failed_count, dropped_count = excluded.dropped_count,
        delivered_count = excluded.delivered_count;
end
$$;

-- Adds to a campaign's exact counts (this session's part), and publishes
-- them when they grew by 1 % of the recipients since the last copy (read
-- without a lock; publish_progress checks again under it).
create or replace function sending.count_progress(p_campaign uuid, p_sent integer, p_failed integer,
                                                  p_dropped integer)
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_due boolean;
begin
    update sending.progress_parts q set sent = q.sent + p_sent, failed = q.failed + p_failed,
        dropped = q.dropped + p_dropped
    where q.campaign_id = p_campaign and q.part = pg_catalog.pg_backend_pid();
    if not found then
        insert into sending.progress as p (campaign_id, recipients)
        values (p_campaign, (select c.recipients_count from public.campaigns c where c.id = p_campaign))
        on conflict (campaign_id) do nothing;
        insert into sending.progress_parts (campaign_id, part, sent, failed, dropped)
        values (p_campaign, pg_catalog.pg_backend_pid(), p_sent, p_failed, p_dropped);
    end if;
    select c.sent + c.failed + c.dropped - c.published >= greatest(1, c.recipients / 100)
    into v_due
    from sending.progress_counts c where c.campaign_id = p_campaign;
    if v_due then
        perform sending.publish_progress(p_campaign, false);
    end if;
end
$$;
revoke all on function sending.count_progress(uuid, integer, integer, integer),
    sending.publish_progress(uuid, boolean) from public;
