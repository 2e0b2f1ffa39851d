-- 072_send_message_indexes.sql: fewer index entries per message of a send
-- (issue 12, speed; bench/RESULTS.md "send-lease").
--
-- Every message of a send writes its message row twice: inserted when the
-- campaign is materialised, updated when the engine settles it (status,
-- sent_at, message_sid / message_id, attempts, ...). The settle cannot be a
-- heap-only (HOT) update: status is in the claim index's predicate and the
-- provider's id gets its unique index entry. So both writes add an entry to
-- every index of the table whose predicate the row matches: 8 at the insert,
-- 7 at the settle, 9 indexes in all on each message table. Two of them no
-- reader needs:
--
--   idx_sms_messages_campaign, idx_email_messages_campaign  (campaign_id)
--       Every reader that selects a campaign's messages (the engine's
--       unfinished / finish_if_done / recover / cancel / claim, the
--       campaign reports, a /rest/v1 read filtered by campaign_id, the
--       foreign key's check when a campaign row is deleted) is served by
--       026's unique index *_one_per_recipient (campaign_id, recipient)
--       WHERE campaign_id IS NOT NULL: `campaign_id = x` implies its
--       predicate, also as a join or generic-plan parameter, and the
--       engine's status-filtered reads use 027's claim / in-flight indexes.
--   idx_sms_messages_status, idx_email_messages_status      (status)
--       A global index on a column with a dozen values: no statement reads
--       the message tables by status alone (every status filter comes with
--       the message's id, its campaign or the provider's id), and status
--       changes at every settle, so it cost an entry per message twice.
--
-- The other seven stay: the primary key (webhooks, engine), the provider's
-- unique ids (message_sid / message_id: the webhooks' lookups), the one per
-- recipient rule, contact_id (the contacts' ON DELETE SET NULL), recipient
-- (consent, STOP, first_to_number), and 027's partial claim and in-flight
-- indexes. Same rows, same rules: 6 index entries at the insert and 5 at the
-- settle instead of 8 and 7.
-- Applied once, inside one transaction, by the database owner.

drop index public.idx_sms_messages_campaign;
drop index public.idx_sms_messages_status;
drop index public.idx_email_messages_campaign;
drop index public.idx_email_messages_status;
