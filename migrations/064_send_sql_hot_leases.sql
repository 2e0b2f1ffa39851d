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
-- something to normalise (below).
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
