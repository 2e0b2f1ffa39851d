-- 031_mail_outbox.sql: durable outgoing mail on the job queue.
--
-- Every mail campaignd sends for itself (Auth's confirmation, recovery, magic
-- link and invitation mails; scheduled reports) is a row of jobs.mail_outbox
-- plus a `mail.send` job (020_job_queue.sql) whose payload names the row by
-- id only: the rendered message, which for Auth holds a live link token and
-- 6-digit code, is never copied into jobs.jobs (kept JOB_KEEP_DAYS) nor into
-- logs. The row is the single copy, readable by service_role only (private
-- schema, RLS on, no policy), and its message is scrubbed (subject, bodies,
-- attachment set to NULL, by trigger) the moment the row reaches a final
-- state: sent, failed or unknown.
--
-- Delivery is at most once (src/jobs/mail.c, docs/auth.md):
--   queued --jobs.mail_claim--> sending --jobs.mail_finish--> sent | failed
--                                  |     \--retry (temporary)--> queued
--                                  \--claimed again while 'sending' (the
--                                     process died mid-send)--> unknown
-- The row is marked 'sending' and committed before the SMTP conversation
-- starts, so a crash after the server may have accepted the mail never sends
-- it a second time: an Auth mail that is lost that way is asked for again by
-- the user (resend), a duplicate login link would be worse.
-- Applied once, inside one transaction, by the database owner.

create table jobs.mail_outbox (
    id bigserial primary key,
    purpose text not null,
    kind text not null,
    recipient text not null,
    subject text,
    body_text text,
    body_html text,
    attachment_name text,
    attachment_type text,
    attachment bytea,
    status text not null default 'queued',
    attempts integer not null default 0,
    last_error text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    sent_at timestamptz,
    constraint mail_outbox_purpose_check check (purpose in ('auth', 'report')),
    constraint mail_outbox_kind_check check (kind ~ '^[a-z][a-z0-9_.-]{0,62}$'),
    constraint mail_outbox_recipient_check check (pg_catalog.length(recipient) between 3 and 254
                                                  and recipient ~ '^[^@\s<>",;:]+@[^@\s<>",;:]+$'),
    constraint mail_outbox_status_check check (status in ('queued', 'sending', 'sent', 'failed', 'unknown')),
    constraint mail_outbox_attempts_check check (attempts >= 0),
    -- a queued or sending row carries its message; a final one never does
    constraint mail_outbox_message_check check (
        (status in ('queued', 'sending') and subject is not null and body_text is not null)
        or (status in ('sent', 'failed', 'unknown') and subject is null and body_text is null
            and body_html is null and attachment is null)),
    constraint mail_outbox_attachment_check check (
        (attachment is null) = (attachment_type is null)
        and (attachment_name is null or pg_catalog.length(attachment_name) between 1 and 200)),
    constraint mail_outbox_sent_at_check check ((status = 'sent') = (sent_at is not null))
);
create index mail_outbox_status_idx on jobs.mail_outbox (status, created_at);
comment on table jobs.mail_outbox is
    'Outgoing mail of campaignd itself (Auth, scheduled reports): one row per mail, sent by a mail.send job, message scrubbed once final.';

alter table jobs.mail_outbox enable row level security;
revoke all on jobs.mail_outbox from public, anon, authenticated;
grant select on jobs.mail_outbox to service_role;

-- Final states scrub the message and are final; sent_at is set once.
create function jobs.mail_outbox_states() returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if old.status in ('sent', 'failed', 'unknown') then
        raise exception 'mail % is already %', old.id, old.status using errcode = '55000';
    end if;
    if new.status in ('sent', 'failed', 'unknown') then
        new.subject := null;
        new.body_text := null;
        new.body_html := null;
        new.attachment := null;
        new.attachment_type := null;
    end if;
    if new.status = 'sent' then
        new.sent_at := coalesce(new.sent_at, pg_catalog.now());
    end if;
    new.updated_at := pg_catalog.now();
    return new;
end
$$;
create trigger mail_outbox_states before update on jobs.mail_outbox
    for each row execute function jobs.mail_outbox_states();
revoke all on function jobs.mail_outbox_states() from public, anon, authenticated, service_role;

-- Queues one mail and its mail.send job in the caller's transaction; returns
-- the outbox id. p_max_attempts and p_retry_delay go to jobs.enqueue (the
-- job retries temporary failures with back-off).
create function jobs.queue_mail(p_purpose text, p_kind text, p_to text, p_subject text,
                                p_text text, p_html text,
                                p_attachment_name text default null,
                                p_attachment_type text default null,
                                p_attachment bytea default null,
                                p_max_attempts integer default 8,
                                p_retry_delay interval default '30 seconds')
returns bigint
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_id bigint;
begin
    insert into jobs.mail_outbox (purpose, kind, recipient, subject, body_text, body_html,
                                  attachment_name, attachment_type, attachment)
    values (p_purpose, p_kind, pg_catalog.btrim(p_to), p_subject, p_text, p_html,
            p_attachment_name, p_attachment_type, p_attachment)
    returning id into v_id;
    perform jobs.enqueue('mail.send', pg_catalog.jsonb_build_object('mail_id', v_id),
                         pg_catalog.now(), null, p_max_attempts, p_retry_delay);
    return v_id;
end
$$;

-- Marks mail p_id 'sending' (committed before the SMTP conversation) and
-- returns it with outcome 'send'. A row already 'sending' was being sent by a
-- process that died: it becomes 'unknown' (at most once) and the outcome is
-- 'unknown'. A final or missing row: outcome 'gone'.
create function jobs.mail_claim(p_id bigint)
returns table (outcome text, recipient text, subject text, body_text text, body_html text,
               attachment_name text, attachment_type text, attachment bytea, attempts integer)
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v jobs.mail_outbox;
begin
    select * into v from jobs.mail_outbox m where m.id = p_id for update;
    if not found or v.status not in ('queued', 'sending') then
        return query select 'gone'::text, null::text, null::text, null::text, null::text,
                            null::text, null::text, null::bytea, null::integer;
        return;
    end if;
    if v.status = 'sending' then
        update jobs.mail_outbox m
        set status = 'unknown',
            last_error = 'the process sending it stopped mid-delivery; not sent again (at most once)'
        where m.id = p_id;
        return query select 'unknown'::text, v.recipient, null::text, null::text, null::text,
                            null::text, null::text, null::bytea, v.attempts;
        return;
    end if;
    update jobs.mail_outbox m set status = 'sending', attempts = m.attempts + 1 where m.id = p_id;
    return query select 'send'::text, v.recipient, v.subject, v.body_text, v.body_html,
                        v.attachment_name, v.attachment_type, v.attachment, v.attempts + 1;
end
$$;

-- Ends a delivery attempt of mail p_id: 'sent', 'retry' (queued again: a
-- temporary failure, the job retries) or 'failed' (final). Returns the new
-- status, or NULL when the row was not 'sending'.
create function jobs.mail_finish(p_id bigint, p_outcome text, p_error text default null)
returns text
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_status text;
begin
    if p_outcome is null or p_outcome not in ('sent', 'retry', 'failed') then
        raise exception 'mail outcome must be sent, retry or failed' using errcode = '22023';
    end if;
    update jobs.mail_outbox m
    set status = case p_outcome when 'retry' then 'queued' else p_outcome end,
        last_error = pg_catalog.left(p_error, 2000)
    where m.id = p_id and m.status = 'sending'
    returning m.status into v_status;
    return v_status;
end
$$;

-- Housekeeping, called by the retention job: a mail whose job ended without
-- recording an outcome (a lease that expired on the last attempt) is closed
-- ('failed' if it was queued, 'unknown' if it was being sent) so its message
-- is erased; final rows older than p_keep are deleted. Returns how many rows
-- were deleted.
create function jobs.purge_mail_outbox(p_keep interval)
returns integer
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_count integer;
begin
    update jobs.mail_outbox m
    set status = case m.status when 'queued' then 'failed' else 'unknown' end,
        last_error = coalesce(m.last_error, 'its job ended without an outcome')
    where m.status in ('queued', 'sending')
      and not exists (select 1 from jobs.jobs j
                      where j.kind = 'mail.send' and j.status in ('pending', 'running')
                        and j.payload ->> 'mail_id' = m.id::text);
    delete from jobs.mail_outbox m
    where m.status in ('sent', 'failed', 'unknown') and m.updated_at < pg_catalog.now() - p_keep;
    get diagnostics v_count = row_count;
    return v_count;
end
$$;

revoke all on function jobs.queue_mail(text, text, text, text, text, text, text, text, bytea, integer, interval),
    jobs.mail_claim(bigint), jobs.mail_finish(bigint, text, text), jobs.purge_mail_outbox(interval)
    from public, anon, authenticated;
grant execute on function jobs.queue_mail(text, text, text, text, text, text, text, text, bytea, integer, interval),
    jobs.mail_claim(bigint), jobs.mail_finish(bigint, text, text), jobs.purge_mail_outbox(interval)
    to service_role;
