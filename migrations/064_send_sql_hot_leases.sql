-- 064_send_sql_hot_leases.sql: a message put in flight updates its lease in
-- place (issue 12, speed; bench/RESULTS.md "send-sql").
--
-- Every message's lease is written three times: inserted by the claim,
-- marked in flight by the step (the committed mark before the hand-off),
-- deleted by the settle. The mark changed lease_until, a column of 041's
-- index leases_campaign (campaign_id, lease_until), so it was never a HOT
-- update: a new tuple and an entry in both indexes (the primary key and
-- leases_campaign) per message, and as many dead entries to skip.
--
--   sending.leases.leases_campaign   now on campaign_id alone: the readers
--       (sending.recover, sending.finish_if_done, sending.unfinished) select
--       a campaign's leases, at most SEND_WORKERS x SEND_BATCH_SIZE rows, and
--       filter or aggregate lease_until among them. The in-flight mark
--       (in_flight, lease_until, links) then touches no indexed column.
--   sending.leases fillfactor 50     room on the page for that new version,
--       so the mark is a heap-only (HOT) update: no index entry at all.
-- Same rows, same rules; only how they are stored and found changes.
-- Also public.email_messages' normalize_email trigger only when it has
-- something to normalise, forward_only only when it would change something,
-- and sending.count_progress calls publish_progress only when there is
-- something to publish (below).
-- Applied once, inside one transaction, by the database owner.

drop index sending.leases_campaign;
create index leases_campaign on sending.leases (campaign_id);
alter table sending.leases set (fillfactor = 50);

-- public.email_messages.normalize_email (007): a PL/pgSQL trigger per
-- inserted message (to_jsonb of the row, jsonb_populate_record back) that
-- materialising 10,000 recipients ran 10,000 times for addresses that
-- contacts' own normalize_email (006) had already lowered and trimmed. Now it
-- runs only when there is something to change; what it stores is the same.
drop trigger normalize_email on public.email_messages;
create trigger normalize_email before insert or update of recipient on public.email_messages
    for each row
    when (new.recipient::text is distinct from pg_catalog.lower(pg_catalog.btrim(new.recipient::text)))
    execute function public.normalize_email('recipient');

-- sending.count_progress (055), called by every settle (per engine step):
-- the same update, which now also says whether the counts grew by 1 % of
-- the recipients since the last copy; sending.publish_progress (which checks
-- again, under the same row lock) is called only then, not at every step.
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
    update sending.progress p set sent = p.sent + p_sent, failed = p.failed + p_failed,
        dropped = p.dropped + p_dropped
    where p.campaign_id = p_campaign
    returning p.sent + p.failed + p.dropped - p.published >= greatest(1, p.recipients / 100)
    into v_due;
    if not found then
        insert into sending.progress as p (campaign_id, sent, failed, dropped, recipients)
        values (p_campaign, p_sent, p_failed, p_dropped,
                (select c.recipients_count from public.campaigns c where c.id = p_campaign))
        on conflict (campaign_id) do update set sent = p.sent + excluded.sent,
            failed = p.failed + excluded.failed, dropped = p.dropped + excluded.dropped;
        v_due := true;
    end if;
    if v_due then
        perform sending.publish_progress(p_campaign, false);
    end if;
end
$$;

-- public.messages_forward_only (026), a PL/pgSQL BEFORE UPDATE trigger per
-- message row, can only change something when the row already has a status
-- above the lowest rank (0: queued; for SMS also accepted, scheduled) or a
-- milestone time: a status cannot move below rank 0, and a time not yet set
-- is the update's own. Its WHEN now says so, with plain comparisons (a WHEN
-- is prepared for every statement: one that called message_status_rank was
-- inlined and parsed per statement and cost more than the call it saved), so
-- the engine's settle of a queued message no longer calls it; what it does
-- when called is unchanged.
drop trigger forward_only on public.email_messages;
create trigger forward_only before update on public.email_messages
    for each row
    when (old.status <> 'queued' or old.sent_at is not null or old.delivered_at is not null
          or old.opened_at is not null or old.clicked_at is not null or old.bounced_at is not null)
    execute function public.messages_forward_only();
drop trigger forward_only on public.sms_messages;
create trigger forward_only before update on public.sms_messages
    for each row
    when (old.status not in ('queued', 'accepted', 'scheduled') or old.sent_at is not null
          or old.delivered_at is not null or old.failed_at is not null)
    execute function public.messages_forward_only();
