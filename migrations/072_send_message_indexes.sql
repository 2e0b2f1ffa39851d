-- 072_send_message_indexes.sql: fewer index entries per message of a send
-- (issue 12, speed; bench/RESULTS.md "send-lease").
--
-- Every message of a send writes its message row twice: inserted when the
-- campaign is materialised, updated when the engine settles it (status,
-- sent_at, message_sid / message_id, attempts, ...). The settle cannot be a
-- heap-only (HOT) update: status is in the claim index's predicate and the
-- provider's id gets its unique index entry. So both writes add an entry to
-- every index of the table whose predicate the row matches: 8 at the insert,
-- 7 at the settle, 9 indexes in all on each message table. Five of them no
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
--   idx_email_messages_recipient                            (recipient)
--       No statement reads e-mail messages by address: the webhooks find
--       a message by its id (SendGrid's custom args, the tracking tokens)
--       and compare the address on that row; consent and suppression are
--       looked up in their own tables. An entry per message at the insert
--       and again at the settle (not HOT), for no reader.
--
-- And three are narrowed:
--
--   idx_sms_messages_recipient  (recipient) -> WHERE message_sid IS NOT NULL
--       Its one reader is the claim's "first_to_number" (has anything been
--       sent to this number: `o.recipient = $1 and o.message_sid is not
--       null`), which implies the predicate. A materialised message (no
--       sid yet) no longer gets an entry; a message Twilio accepted gets it
--       at the settle, as before.
--
--   sms_messages.message_sid, email_messages.message_id     UNIQUE (007)
--       The provider's id, unknown until the settle: every materialised
--       message put a NULL into the unique index, which NULLs never
--       conflict in and no lookup reads (`message_sid = $1` never matches
--       NULL). Now unique indexes of the same names WHERE the id is not
--       null: the same uniqueness (23505 on a duplicate), the same
--       lookups (the webhooks' `message_sid = $1` implies the predicate),
--       and an entry only for a message the provider accepted.
--
-- The others stay: the primary key (webhooks, engine), the one per
-- recipient rule, contact_id (the contacts' ON DELETE SET NULL) and 027's
-- partial claim and in-flight indexes. Same rows, same rules. Index entries
-- per message: 4 instead of 8 at the insert; at the settle, instead of 7,
-- 5 for an SMS Twilio accepted, 4 for an accepted e-mail (3 without a
-- provider id), 3 for a message that failed, was dropped or is unknown, 4
-- for one that waits for a retry.
--
-- And the settle's update stays on the row's page: both tables get
-- fillfactor 50 (new pages only; every message row is updated at least
-- once, by the settle, and an SMS usually again by its status callbacks).
-- A non-HOT update that finds no room on its page first marks the old
-- version locked in a WAL record of its own, then writes the new one into
-- another page (two buffers); on the same page that record goes. The table
-- does not grow by it: an update to another page leaves the same dead
-- space behind. (The other lock record per settle stays: any BEFORE UPDATE
-- row trigger — forward_only, set_updated_at — makes PostgreSQL lock the
-- old tuple before the update, whatever the triggers' WHEN clauses say.)
-- Applied once, inside one transaction, by the database owner.

drop index public.idx_sms_messages_campaign;
drop index public.idx_sms_messages_status;
drop index public.idx_email_messages_campaign;
drop index public.idx_email_messages_status;
drop index public.idx_email_messages_recipient;
drop index public.idx_sms_messages_recipient;
create index idx_sms_messages_recipient on public.sms_messages (recipient)
    where message_sid is not null;

alter table public.sms_messages drop constraint sms_messages_message_sid_key;
create unique index sms_messages_message_sid_key on public.sms_messages (message_sid)
    where message_sid is not null;
alter table public.email_messages drop constraint email_messages_message_id_key;
create unique index email_messages_message_id_key on public.email_messages (message_id)
    where message_id is not null;

alter table public.sms_messages set (fillfactor = 50);
alter table public.email_messages set (fillfactor = 50);
