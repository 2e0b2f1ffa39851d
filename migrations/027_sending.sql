-- 027_sending.sql — the send engine's rules (issue 12), see docs/sending.md.
--
-- What the database enforces here, for every writer (the engine, /rest/v1,
-- psql):
--   * templates (and a campaign's own content) use only known {{variables}}:
--     checked when saved, by the same grammar as src/sending/template.c;
--   * a message is `sending` with a lease while a worker holds it; one whose
--     lease expired (its worker died) becomes `unknown` (026's forward-only
--     rule keeps it from ever going back to queued), so it is never sent
--     twice;
--   * the monthly e-mail / SMS limits of app_settings are counted in
--     sending.monthly_usage, locked in the same transaction as the claim of the
--     messages it counts, so no two processes can overshoot together;
--   * the engine's campaign columns (pause reason, unknown count, times) are
--     written by the engine (service_role) only.
-- The functions the engine calls live in the private schema `sending`
-- (service_role only).

create schema sending;
comment on schema sending is
    'Private: the send engine''s state and functions. No API role may use it; the server calls them as service_role.';
revoke all on schema sending from public;
grant usage on schema sending to service_role;
alter default privileges in schema sending revoke execute on functions from public;

-- ---------------------------------------------------------------------------
-- Templates: the placeholder grammar, checked at save time
-- ---------------------------------------------------------------------------

alter table public.templates add column text_content text;
comment on column public.templates.text_content is
    'Plain-text part of an e-mail template; NULL: derived from the HTML content when sending.';

-- Raises 22023 naming the first invalid placeholder of p_src ("unknown
-- variable 'frist_name'"). The grammar is src/sending/template.h's: a "{{"
-- must start  {{ name [| "default"] }}  with name one of first_name,
-- last_name, email, phone, contact.<those>, contact.attributes.KEY.
create function public.check_template_placeholders(p_src text, p_what text)
returns void
language plpgsql immutable
set search_path = ''
as $$
declare
    v_rest text := p_src;
    v_pos integer;
    v_match text;
    v_name text;
    v_count integer := 0;
begin
    if p_src is null then
        return;
    end if;
    if pg_catalog.octet_length(p_src) > 512 * 1024 then
        raise exception '% is larger than 512 KiB', p_what using errcode = '22023';
    end if;
    loop
        v_pos := pg_catalog.strpos(v_rest, '{{');
        exit when v_pos = 0;
        v_rest := pg_catalog.substr(v_rest, v_pos);
        v_count := v_count + 1;
        if v_count > 1000 then
            raise exception '% has more than 1000 placeholders', p_what using errcode = '22023';
        end if;
        v_match := pg_catalog.substring(v_rest,
            '^(\{\{[ \t\r\n]*(first_name|last_name|email|phone'
            '|contact\.(first_name|last_name|email|phone)'
            '|contact\.attributes\.[A-Za-z0-9_-]{1,64})[ \t\r\n]*'
            '(\|[ \t\r\n]*"([^"\\]|\\["\\])*"[ \t\r\n]*)?\}\})');
        if v_match is null then
            v_name := pg_catalog.substring(v_rest, '^\{\{[ \t\r\n]*([A-Za-z0-9_.-]*)');
            raise exception 'unknown variable or bad placeholder ''%'' in %',
                pg_catalog.left(coalesce(v_name, ''), 64), p_what
                using errcode = '22023',
                      hint = 'use {{first_name}}, {{last_name}}, {{email}}, {{phone}}, '
                             '{{contact.attributes.KEY}}, optionally with a default: '
                             '{{first_name | "there"}}';
        end if;
        if pg_catalog.octet_length(pg_catalog.substring(v_match, '"(.*)"')) > 512 then
            raise exception 'a default in % is longer than 512 bytes', p_what using errcode = '22023';
        end if;
        v_rest := pg_catalog.substr(v_rest, pg_catalog.length(v_match) + 1);
    end loop;
end
$$;

revoke all on function public.check_template_placeholders(text, text) from public;
grant execute on function public.check_template_placeholders(text, text)
    to anon, authenticated, service_role;

-- BEFORE INSERT OR UPDATE on templates. Runs as the writer (no privilege
-- beyond check_template_placeholders is needed).
create function public.templates_check_placeholders() returns trigger
language plpgsql
set search_path = ''
as $$
begin
    perform public.check_template_placeholders(new.content, 'content');
    perform public.check_template_placeholders(new.subject, 'subject');
    perform public.check_template_placeholders(new.text_content, 'text_content');
    -- variables: the names used, for the dashboard (derived, whatever was written)
    new.variables := coalesce((
        select pg_catalog.array_agg(distinct m[1] order by m[1])
        from pg_catalog.regexp_matches(
            coalesce(new.subject, '') || ' ' || new.content || ' ' || coalesce(new.text_content, ''),
            '\{\{[ \t\r\n]*([A-Za-z0-9_.-]+)', 'g') as m), '{}');
    return new;
end
$$;

revoke all on function public.templates_check_placeholders() from public, anon, authenticated;

create trigger check_placeholders before insert or update of content, subject, text_content, variables
    on public.templates for each row execute function public.templates_check_placeholders();

-- ---------------------------------------------------------------------------
-- The sender's postal address (CAN-SPAM, and the footer of every e-mail)
-- ---------------------------------------------------------------------------

alter table public.app_settings add column postal_address text
    constraint app_settings_postal_address_length check (length(postal_address) <= 500);
grant update (postal_address) on public.app_settings to authenticated;
comment on column public.app_settings.postal_address is
    'The sender''s postal address, printed in the footer of every marketing e-mail; sending e-mail is refused without one.';

-- ---------------------------------------------------------------------------
-- Campaigns: the engine's columns
-- ---------------------------------------------------------------------------

alter table public.campaigns
    add column pause_reason text,
    add column unknown_count integer not null default 0
        constraint campaigns_unknown_count_not_negative check (unknown_count >= 0),
    add column recipients_count integer not null default 0
        constraint campaigns_recipients_count_not_negative check (recipients_count >= 0),
    add column skipped_count integer not null default 0
        constraint campaigns_skipped_count_not_negative check (skipped_count >= 0),
    add column materialised_at timestamptz,
    add column send_started_at timestamptz,
    add column send_finished_at timestamptz;
comment on column public.campaigns.pause_reason is
    'Why the engine paused the campaign (a monthly limit reached); NULL otherwise. Set by the engine only.';
comment on column public.campaigns.unknown_count is
    'Messages in flight when a worker died: they may or may not have arrived and are never resent.';
comment on column public.campaigns.recipients_count is
    'Messages materialised when sending started (consent and suppression applied).';
comment on column public.campaigns.skipped_count is
    'Contacts of the audience left out when sending started: no address, no consent, or suppressed.';

create function public.campaigns_sending_rules() returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if new.type in ('email', 'sms')
       and (tg_op = 'INSERT' or new.content is distinct from old.content
            or new.subject is distinct from old.subject) then
        perform public.check_template_placeholders(new.content, 'content');
        perform public.check_template_placeholders(new.subject, 'subject');
    end if;
    if public.is_api_role() and tg_op = 'UPDATE'
       and (new.pause_reason is distinct from old.pause_reason
            or new.unknown_count is distinct from old.unknown_count
            or new.recipients_count is distinct from old.recipients_count
            or new.skipped_count is distinct from old.skipped_count
            or new.materialised_at is distinct from old.materialised_at
            or new.send_started_at is distinct from old.send_started_at
            or new.send_finished_at is distinct from old.send_finished_at) then
        raise exception 'the delivery columns of a campaign are set by the send engine'
            using errcode = '42501';
    end if;
    if public.is_api_role() and tg_op = 'INSERT'
       and (new.pause_reason is not null or new.unknown_count <> 0 or new.recipients_count <> 0
            or new.skipped_count <> 0 or new.materialised_at is not null
            or new.send_started_at is not null or new.send_finished_at is not null) then
        raise exception 'the delivery columns of a campaign are set by the send engine'
            using errcode = '42501';
    end if;
    return new;
end
$$;

revoke all on function public.campaigns_sending_rules() from public, anon, authenticated;

create trigger sending_rules before insert or update on public.campaigns
    for each row execute function public.campaigns_sending_rules();

-- ---------------------------------------------------------------------------
-- Messages: the engine's columns and the forward-only status
-- ---------------------------------------------------------------------------

alter table public.email_messages
    add column attempts integer not null default 0
        constraint email_messages_attempts_range check (attempts between 0 and 100),
    add column next_attempt_at timestamptz not null default now(),
    add column lease_until timestamptz,
    add column links jsonb
        constraint email_messages_links_array check (links is null or jsonb_typeof(links) = 'array'),
    add column last_error text,
    add column unsubscribed_at timestamptz;
comment on column public.email_messages.links is
    'The URLs of the message''s tracked links, in order: a click token names an index here, and only these URLs are redirected to.';
comment on column public.email_messages.lease_until is
    'While sending: until when the worker that claimed it answers for it; past it the message becomes unknown.';

alter table public.sms_messages
    add column attempts integer not null default 0
        constraint sms_messages_attempts_range check (attempts between 0 and 100),
    add column next_attempt_at timestamptz not null default now(),
    add column lease_until timestamptz,
    add column last_error text;

create index idx_email_messages_claim on public.email_messages (campaign_id, next_attempt_at)
    where status = 'queued' or (status = 'sending' and lease_until is null);
create index idx_email_messages_inflight on public.email_messages (campaign_id, lease_until)
    where status = 'sending';
create index idx_sms_messages_claim on public.sms_messages (campaign_id, next_attempt_at)
    where status = 'queued' or (status = 'sending' and lease_until is null);
create index idx_sms_messages_inflight on public.sms_messages (campaign_id, lease_until)
    where status = 'sending';

-- Status only moves forward: public.messages_forward_only (026) ignores a
-- lower-ranked status. A temporary failure therefore does not go back to
-- queued: the message stays `sending` without a lease (lease_until NULL) and
-- with next_attempt_at set, and is claimed again then. `sending` with a lease
-- is in flight; with an expired lease its worker died (-> unknown).

-- ---------------------------------------------------------------------------
-- Monthly limits
-- ---------------------------------------------------------------------------

create table sending.monthly_usage (
    month date not null,
    channel text not null constraint monthly_usage_channel_valid check (channel in ('email', 'sms')),
    used integer not null default 0 constraint monthly_usage_used_not_negative check (used >= 0),
    primary key (month, channel)
);
comment on table sending.monthly_usage is
    'Messages handed to providers per calendar month (application time zone) and channel; row-locked by each claim.';
revoke all on sending.monthly_usage from public;
grant select on sending.monthly_usage to service_role;

-- The current month in the application's time zone.
create function sending.current_month()
returns date
language sql stable
set search_path = ''
as $$
    select pg_catalog.date_trunc('month', pg_catalog.now() at time zone
        coalesce((select a.timezone::text from public.app_settings a limit 1), 'UTC'))::date
$$;

-- Reserves up to p_want messages of p_channel's monthly limit: locks the
-- month's counter row (so concurrent claims in other processes wait), adds
-- what it grants and returns it (0 when the limit is reached).
create function sending.reserve(p_channel text, p_want integer)
returns integer
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_month date := sending.current_month();
    v_used integer;
    v_limit integer;
    v_grant integer;
begin
    insert into sending.monthly_usage (month, channel) values (v_month, p_channel)
    on conflict do nothing;
    select u.used into v_used from sending.monthly_usage u
    where u.month = v_month and u.channel = p_channel for update;
    select case when p_channel = 'email' then a.monthly_email_limit else a.monthly_sms_limit end
    into v_limit from public.app_settings a limit 1;
    v_grant := greatest(0, least(p_want, coalesce(v_limit, 0) - v_used));
    if v_grant > 0 then
        update sending.monthly_usage u set used = u.used + v_grant
        where u.month = v_month and u.channel = p_channel;
    end if;
    return v_grant;
end
$$;

-- Gives back p_n reservations (messages that were not handed over).
create function sending.release(p_channel text, p_n integer)
returns void
language sql volatile
security definer
set search_path = ''
as $$
    update sending.monthly_usage u set used = greatest(0, u.used - p_n)
    where u.month = sending.current_month() and u.channel = p_channel and p_n > 0
$$;

revoke all on function sending.reserve(text, integer), sending.release(text, integer) from public;
grant execute on function sending.reserve(text, integer), sending.release(text, integer)
    to service_role;

-- ---------------------------------------------------------------------------
-- Consent and suppression, per channel
-- ---------------------------------------------------------------------------

-- Marketing e-mail goes to an address unless it unsubscribed
-- (email_subscriptions.subscribed = false) or is suppressed (026: hard
-- bounce, complaint, unsubscribe; instance-wide). SMS needs recorded consent
-- (sms_consent.consent_given) and no suppression.
create function sending.email_allowed(p_address text)
returns boolean
language sql stable
security definer
set search_path = ''
as $$
    select p_address is not null
       and not exists (select 1 from public.email_subscriptions s
                       where s.email = p_address and not s.subscribed)
       and not public.is_suppressed('email', p_address)
$$;

create function sending.sms_allowed(p_phone text)
returns boolean
language sql stable
security definer
set search_path = ''
as $$
    select p_phone is not null
       and exists (select 1 from public.sms_consent s
                   where s.phone_number = p_phone and s.consent_given)
       and not public.is_suppressed('sms', p_phone)
$$;

-- ---------------------------------------------------------------------------
-- Starting, pausing, resuming, cancelling
-- ---------------------------------------------------------------------------

-- The live contacts of the campaign's audience: its segment's members, or
-- all the owner's live contacts when it has none.
create function sending.audience(p_user uuid, p_segment uuid)
returns setof uuid
language plpgsql stable
security definer
set search_path = ''
as $$
declare
    v_rules jsonb;
begin
    if p_segment is null then
        return query select c.id from public.contacts c
                     where c.user_id = p_user and c.deleted_at is null;
        return;
    end if;
    select s.rules into v_rules from public.audience_segments s where s.id = p_segment;
    if v_rules is null then
        raise exception 'the campaign''s segment does not exist' using errcode = '22023';
    end if;
    -- public.segment_contact_ids comes with the segments work (migration 030);
    -- named dynamically so that this function exists before it does.
    return query execute 'select * from public.segment_contact_ids($1, $2)' using p_user, v_rules;
end
$$;

-- Puts one message per allowed recipient of the audience into email_messages
-- or sms_messages (unique per campaign and recipient), once. Returns
-- (recipients, skipped).
create function sending.materialise(p_campaign uuid, out recipients integer, out skipped integer)
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    c public.campaigns%rowtype;
    v_audience integer;
begin
    select * into c from public.campaigns where id = p_campaign;
    create temporary table if not exists sending_audience (id uuid primary key) on commit drop;
    truncate sending_audience;
    insert into sending_audience select distinct a from sending.audience(c.user_id, c.segment_id) a;
    get diagnostics v_audience = row_count;
    if c.type = 'email' then
        insert into public.email_messages (campaign_id, contact_id, recipient, subject, status)
        select distinct on (k.email) c.id, k.id, k.email, c.subject, 'queued'
        from sending_audience a join public.contacts k on k.id = a.id
        where k.email is not null and sending.email_allowed(k.email)
        order by k.email, k.created_at
        on conflict do nothing;
    else
        insert into public.sms_messages (campaign_id, contact_id, recipient, message, status)
        select distinct on (k.phone) c.id, k.id, k.phone, '', 'queued'
        from sending_audience a join public.contacts k on k.id = a.id
        where k.phone is not null and sending.sms_allowed(k.phone)
        order by k.phone, k.created_at
        on conflict do nothing;
    end if;
    get diagnostics recipients = row_count;
    skipped := v_audience - recipients;
    update public.campaigns set materialised_at = pg_catalog.now(),
        recipients_count = recipients, skipped_count = greatest(0, skipped)
    where id = p_campaign;
end
$$;

-- Enqueues p_workers worker jobs for the campaign (one per slot; a slot
-- whose job is still pending or running is not doubled).
create function sending.enqueue_workers(p_campaign uuid, p_channel text, p_workers integer,
                                        p_run_at timestamptz default pg_catalog.now())
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
begin
    for k in 1..greatest(1, least(p_workers, 64)) loop
        perform jobs.enqueue('send.worker',
            pg_catalog.jsonb_build_object('campaign_id', p_campaign, 'channel', p_channel),
            p_run_at, 'send.worker:' || p_campaign || ':' || k, 100, '5 seconds');
    end loop;
end
$$;

-- Starts a campaign now: draft or scheduled (paused is resumed instead)
-- becomes sending, its recipients are materialised (once), and workers are
-- enqueued. Idempotent for a campaign already sending. Returns the campaign
-- row as JSON. 22023 for a social campaign, 55000 for any other status.
create function sending.start(p_campaign uuid, p_workers integer)
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    c public.campaigns%rowtype;
begin
    select * into c from public.campaigns where id = p_campaign and deleted_at is null for update;
    if not found then
        raise exception 'campaign not found' using errcode = 'P0002';
    end if;
    if c.type not in ('email', 'sms') then
        raise exception 'only e-mail and SMS campaigns are sent' using errcode = '22023';
    end if;
    if c.status = 'sending' then
        return pg_catalog.to_jsonb(c);
    end if;
    if c.status not in ('draft', 'scheduled') then
        raise exception 'a % campaign cannot be sent', c.status using errcode = '55000',
            hint = 'send a draft or scheduled campaign; resume a paused one';
    end if;
    -- The recipients are materialised by the first worker
    -- (sending.ensure_materialised), not here: a large audience takes longer
    -- than a request may.
    update public.campaigns set status = 'sending', send_started_at = pg_catalog.now(),
        pause_reason = null
    where id = p_campaign;
    perform sending.enqueue_workers(p_campaign, c.type, p_workers);
    select * into c from public.campaigns where id = p_campaign;
    return pg_catalog.to_jsonb(c);
end
$$;

-- Materialises a sending campaign's recipients if that was not done yet
-- (once: the campaign row is locked), and marks it sent when there is
-- nobody to send to. Workers call it first, with a long statement timeout.
create function sending.ensure_materialised(p_campaign uuid)
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    c public.campaigns%rowtype;
begin
    select * into c from public.campaigns where id = p_campaign for update;
    if found and c.materialised_at is null and c.status = 'sending' then
        perform sending.materialise(p_campaign);
        perform sending.finish_if_done(p_campaign);
    end if;
end
$$;

revoke all on function sending.ensure_materialised(uuid) from public;
grant execute on function sending.ensure_materialised(uuid) to service_role;

-- Pauses a sending or scheduled campaign (workers stop before their next
-- batch; what is in flight settles). p_reason: NULL for a user's pause.
create function sending.pause(p_campaign uuid, p_reason text)
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    c public.campaigns%rowtype;
begin
    update public.campaigns set status = 'paused', pause_reason = p_reason
    where id = p_campaign and deleted_at is null and status in ('sending', 'scheduled')
    returning * into c;
    if not found then
        select * into c from public.campaigns where id = p_campaign and deleted_at is null;
        if not found then
            raise exception 'campaign not found' using errcode = 'P0002';
        end if;
        if c.status <> 'paused' then
            raise exception 'a % campaign cannot be paused', c.status using errcode = '55000';
        end if;
    end if;
    return pg_catalog.to_jsonb(c);
end
$$;

-- Resumes a paused campaign: sending again (materialised before: the same
-- recipients) or, when it never started and its date is still ahead,
-- scheduled.
create function sending.resume(p_campaign uuid, p_workers integer)
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    c public.campaigns%rowtype;
begin
    select * into c from public.campaigns where id = p_campaign and deleted_at is null for update;
    if not found then
        raise exception 'campaign not found' using errcode = 'P0002';
    end if;
    if c.status <> 'paused' then
        raise exception 'a % campaign cannot be resumed', c.status using errcode = '55000';
    end if;
    if c.materialised_at is null and c.scheduled_date > pg_catalog.now() then
        update public.campaigns set status = 'scheduled', pause_reason = null where id = p_campaign;
    elsif c.materialised_at is null then
        update public.campaigns set status = 'draft' where id = p_campaign;
        return sending.start(p_campaign, p_workers);
    else
        update public.campaigns set status = 'sending', pause_reason = null where id = p_campaign;
        perform sending.enqueue_workers(p_campaign, c.type, p_workers);
        perform sending.finish_if_done(p_campaign);
    end if;
    select * into c from public.campaigns where id = p_campaign;
    return pg_catalog.to_jsonb(c);
end
$$;

-- Cancels a campaign: messages not yet handed over are dropped (e-mail) or
-- canceled (SMS); in-flight ones settle.
create function sending.cancel(p_campaign uuid)
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    c public.campaigns%rowtype;
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
    update public.email_messages set status = 'dropped', last_error = 'campaign cancelled'
    where campaign_id = p_campaign
      and (status = 'queued' or (status = 'sending' and lease_until is null));
    update public.sms_messages set status = 'canceled', last_error = 'campaign cancelled'
    where campaign_id = p_campaign
      and (status = 'queued' or (status = 'sending' and lease_until is null));
    return pg_catalog.to_jsonb(c);
end
$$;

-- Starts the scheduled campaigns whose date has come. Returns how many.
create function sending.start_due(p_workers integer)
returns integer
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_id uuid;
    n integer := 0;
begin
    for v_id in select c.id from public.campaigns c
                where c.status = 'scheduled' and c.deleted_at is null
                  and c.scheduled_date <= pg_catalog.now() and c.type in ('email', 'sms')
                order by c.scheduled_date limit 100
                for update skip locked loop
        perform sending.start(v_id, p_workers);
        n := n + 1;
    end loop;
    return n;
end
$$;

-- ---------------------------------------------------------------------------
-- Claiming and settling (the workers)
-- ---------------------------------------------------------------------------

-- Messages still `sending` after their lease become `unknown` (their worker
-- died: they may or may not have left) and are counted on the campaign.
create function sending.recover(p_campaign uuid)
returns integer
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    n_email integer;
    n_sms integer;
begin
    update public.email_messages set status = 'unknown', lease_until = null,
        last_error = 'in flight when its worker stopped: may or may not have been delivered'
    where campaign_id = p_campaign and status = 'sending' and lease_until < pg_catalog.now();
    get diagnostics n_email = row_count;
    update public.sms_messages set status = 'unknown', lease_until = null,
        last_error = 'in flight when its worker stopped: may or may not have been delivered'
    where campaign_id = p_campaign and status = 'sending' and lease_until < pg_catalog.now();
    get diagnostics n_sms = row_count;
    if n_email + n_sms > 0 then
        update public.campaigns set unknown_count = unknown_count + n_email + n_sms
        where id = p_campaign;
    end if;
    return n_email + n_sms;
end
$$;

-- Marks the campaign sent when nothing is left to send or in flight. Returns
-- the campaign's status, and in next_retry when a worker should look again:
-- the earliest retry of a waiting message or lease end of an in-flight one.
create function sending.finish_if_done(p_campaign uuid, out status text, out next_retry timestamptz)
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_left boolean;
begin
    select c.status into finish_if_done.status from public.campaigns c where c.id = p_campaign;
    v_left := exists (select 1 from public.email_messages m where m.campaign_id = p_campaign
                      and m.status in ('queued', 'sending'))
           or exists (select 1 from public.sms_messages m where m.campaign_id = p_campaign
                      and m.status in ('queued', 'sending'));
    select min(coalesce(x.lease_until + interval '1 second', x.next_attempt_at)) into next_retry
    from (select m.lease_until, m.next_attempt_at from public.email_messages m
          where m.campaign_id = p_campaign and m.status = 'sending'
          union all
          select m.lease_until, m.next_attempt_at from public.sms_messages m
          where m.campaign_id = p_campaign and m.status = 'sending') x;
    if not v_left and finish_if_done.status = 'sending' then
        update public.campaigns c set status = 'sent', send_finished_at = pg_catalog.now()
        where c.id = p_campaign;
        finish_if_done.status := 'sent';
        -- its counts reach analytics_data now, not at the next periodic roll-up
        perform jobs.enqueue('send.rollup', '{}'::jsonb, pg_catalog.now(), 'send.rollup', 3,
                             '30 seconds');
    end if;
end
$$;

-- Claims up to p_limit e-mail messages of a sending campaign that are due:
-- consent and suppression are checked again (those that lost it are dropped),
-- the monthly limit is reserved in the same transaction (reaching it pauses
-- the campaign with a reason), and the rest are marked `sending` with a lease
-- of p_lease_seconds. Returns the claimed messages with their contacts.
create function sending.claim_email(p_campaign uuid, p_limit integer, p_lease_seconds integer)
returns table (id uuid, recipient text, contact jsonb)
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    c public.campaigns%rowtype;
    v_ids uuid[];
    v_grant integer;
begin
    select * into c from public.campaigns k where k.id = p_campaign for update;
    if not found or c.status <> 'sending' or c.deleted_at is not null then
        return;
    end if;
    with due as (
        select m.id, m.recipient from public.email_messages m
        where m.campaign_id = p_campaign
          and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
          and m.next_attempt_at <= pg_catalog.now()
        order by m.next_attempt_at, m.id limit p_limit
        for update skip locked),
    dropped as (
        update public.email_messages m set status = 'dropped',
            last_error = 'unsubscribed or suppressed before sending'
        from due where m.id = due.id and not sending.email_allowed(due.recipient)
        returning m.id)
    select pg_catalog.array_agg(due.id order by due.id) into v_ids
    from due where due.id not in (select d.id from dropped d);
    if v_ids is null then
        return;
    end if;
    v_grant := sending.reserve('email', pg_catalog.cardinality(v_ids));
    if v_grant = 0 then
        update public.campaigns k set status = 'paused',
            pause_reason = pg_catalog.format('monthly e-mail limit of %s messages reached',
                (select a.monthly_email_limit from public.app_settings a limit 1))
        where k.id = p_campaign;
        return;
    end if;
    v_ids := v_ids[1:v_grant];
    return query
    update public.email_messages m set status = 'sending', attempts = m.attempts + 1,
        lease_until = pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds)
    where m.id = any (v_ids)
    returning m.id, m.recipient::text, (
        select pg_catalog.jsonb_build_object(
            'first_name', k.first_name, 'last_name', k.last_name, 'email', k.email,
            'phone', k.phone, 'attributes', k.attributes)
        from public.contacts k where k.id = m.contact_id);
end
$$;

-- Stores the tracked links of rendered messages before they are handed
-- over: p_links = [{"id": uuid, "links": [url, ...]}, ...].
create function sending.store_links(p_links jsonb)
returns void
language sql volatile
security definer
set search_path = ''
as $$
    update public.email_messages m set links = x.links
    from pg_catalog.jsonb_to_recordset(p_links) as x(id uuid, links jsonb)
    where m.id = x.id and m.status = 'sending'
$$;

-- Records what the provider said: p_results = [{"id", "outcome" (accepted |
-- tempfail | permfail | unknown), "provider_id", "error"}, ...]. accepted ->
-- sent; tempfail -> waiting (sending without a lease) with back-off
-- (p_backoff_seconds * 2^(attempt-1), at most an hour) or failed after
-- p_max_attempts; permfail -> failed;
-- unknown -> unknown (counted on the campaign). Reservations of messages that
-- did not leave are given back. Returns the campaign's status afterwards.
create function sending.settle_email(p_campaign uuid, p_results jsonb, p_max_attempts integer,
                                     p_backoff_seconds integer)
returns text
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_unknown integer;
    v_unsent integer;
begin
    create temporary table if not exists sending_results (
        id uuid primary key, outcome text, provider_id text, error text) on commit drop;
    truncate sending_results;
    insert into sending_results
    select x.id, x.outcome, nullif(x.provider_id, ''), nullif(pg_catalog.left(x.error, 500), '')
    from pg_catalog.jsonb_to_recordset(p_results) as x(id uuid, outcome text, provider_id text, error text);

    update public.email_messages m set
        status = case r.outcome
            when 'accepted' then 'sent'
            when 'unknown' then 'unknown'
            when 'tempfail' then case when m.attempts >= p_max_attempts then 'failed' else 'sending' end
            else 'failed' end,
        sent_at = case when r.outcome = 'accepted' then pg_catalog.now() else m.sent_at end,
        message_id = case when r.outcome = 'accepted' then r.provider_id else m.message_id end,
        next_attempt_at = case when r.outcome = 'tempfail' then pg_catalog.now()
            + pg_catalog.make_interval(secs => least(3600, p_backoff_seconds * 2 ^ least(m.attempts - 1, 16)))
            else m.next_attempt_at end,
        last_error = r.error,
        lease_until = null
    from sending_results r
    where m.id = r.id and m.campaign_id = p_campaign and m.status = 'sending';

    select count(*) filter (where r.outcome = 'unknown'),
           count(*) filter (where r.outcome in ('tempfail', 'permfail'))
    into v_unknown, v_unsent from sending_results r;
    perform sending.release('email', v_unsent);
    if v_unknown > 0 then
        update public.campaigns set unknown_count = unknown_count + v_unknown where id = p_campaign;
    end if;
    return (select f.status from sending.finish_if_done(p_campaign) f);
end
$$;

-- The SMS twin of claim_email: consent (sms_consent) and suppression
-- checked again (those that lost it are canceled), the monthly SMS limit
-- reserved, the rest marked `sending` with a lease.
create function sending.claim_sms(p_campaign uuid, p_limit integer, p_lease_seconds integer)
returns table (id uuid, recipient text, contact jsonb)
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    c public.campaigns%rowtype;
    v_ids uuid[];
    v_grant integer;
begin
    select * into c from public.campaigns k where k.id = p_campaign for update;
    if not found or c.status <> 'sending' or c.deleted_at is not null then
        return;
    end if;
    with due as (
        select m.id, m.recipient from public.sms_messages m
        where m.campaign_id = p_campaign
          and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
          and m.next_attempt_at <= pg_catalog.now()
        order by m.next_attempt_at, m.id limit p_limit
        for update skip locked),
    dropped as (
        update public.sms_messages m set status = 'canceled',
            last_error = 'opted out or suppressed before sending'
        from due where m.id = due.id and not sending.sms_allowed(due.recipient)
        returning m.id)
    select pg_catalog.array_agg(due.id order by due.id) into v_ids
    from due where due.id not in (select d.id from dropped d);
    if v_ids is null then
        return;
    end if;
    v_grant := sending.reserve('sms', pg_catalog.cardinality(v_ids));
    if v_grant = 0 then
        update public.campaigns k set status = 'paused',
            pause_reason = pg_catalog.format('monthly SMS limit of %s messages reached',
                (select a.monthly_sms_limit from public.app_settings a limit 1))
        where k.id = p_campaign;
        return;
    end if;
    v_ids := v_ids[1:v_grant];
    return query
    update public.sms_messages m set status = 'sending', attempts = m.attempts + 1,
        lease_until = pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds)
    where m.id = any (v_ids)
    returning m.id, m.recipient::text, (
        select pg_catalog.jsonb_build_object(
            'first_name', k.first_name, 'last_name', k.last_name, 'email', k.email,
            'phone', k.phone, 'attributes', k.attributes)
        from public.contacts k where k.id = m.contact_id);
end
$$;

-- The SMS twin of settle_email: p_results = [{"id", "outcome", "sid",
-- "segments", "cost" (in currency units), "body", "error"}, ...]; accepted ->
-- sent with the provider's sid, segments, cost and the body sent.
create function sending.settle_sms(p_campaign uuid, p_results jsonb, p_max_attempts integer,
                                   p_backoff_seconds integer)
returns text
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_unknown integer;
    v_unsent integer;
begin
    create temporary table if not exists sending_sms_results (
        id uuid primary key, outcome text, sid text, segments integer, cost numeric, body text,
        error text) on commit drop;
    truncate sending_sms_results;
    insert into sending_sms_results
    select x.id, x.outcome, nullif(x.sid, ''), x.segments, x.cost, x.body,
           nullif(pg_catalog.left(x.error, 500), '')
    from pg_catalog.jsonb_to_recordset(p_results)
         as x(id uuid, outcome text, sid text, segments integer, cost numeric, body text, error text);

    update public.sms_messages m set
        status = case r.outcome
            when 'accepted' then 'sent'
            when 'unknown' then 'unknown'
            when 'tempfail' then case when m.attempts >= p_max_attempts then 'failed' else 'sending' end
            else 'failed' end,
        sent_at = case when r.outcome = 'accepted' then pg_catalog.now() else m.sent_at end,
        failed_at = case when r.outcome = 'permfail' then pg_catalog.now() else m.failed_at end,
        message_sid = case when r.outcome = 'accepted' then r.sid else m.message_sid end,
        segments = greatest(1, coalesce(r.segments, m.segments)),
        cost = coalesce(r.cost, m.cost),
        message = coalesce(r.body, m.message),
        next_attempt_at = case when r.outcome = 'tempfail' then pg_catalog.now()
            + pg_catalog.make_interval(secs => least(3600, p_backoff_seconds * 2 ^ least(m.attempts - 1, 16)))
            else m.next_attempt_at end,
        last_error = r.error,
        lease_until = null
    from sending_sms_results r
    where m.id = r.id and m.campaign_id = p_campaign and m.status = 'sending';

    select count(*) filter (where r.outcome = 'unknown'),
           count(*) filter (where r.outcome in ('tempfail', 'permfail'))
    into v_unknown, v_unsent from sending_sms_results r;
    perform sending.release('sms', v_unsent);
    if v_unknown > 0 then
        update public.campaigns set unknown_count = unknown_count + v_unknown where id = p_campaign;
    end if;
    return (select f.status from sending.finish_if_done(p_campaign) f);
end
$$;

revoke all on function sending.claim_sms(uuid, integer, integer),
    sending.settle_sms(uuid, jsonb, integer, integer) from public;
grant execute on function sending.claim_sms(uuid, integer, integer),
    sending.settle_sms(uuid, jsonb, integer, integer) to service_role;

revoke all on function
    sending.email_allowed(text), sending.sms_allowed(text),
    sending.audience(uuid, uuid), sending.materialise(uuid),
    sending.enqueue_workers(uuid, text, integer, timestamptz), sending.start(uuid, integer),
    sending.pause(uuid, text), sending.resume(uuid, integer), sending.cancel(uuid),
    sending.start_due(integer), sending.recover(uuid), sending.finish_if_done(uuid),
    sending.claim_email(uuid, integer, integer), sending.store_links(jsonb),
    sending.settle_email(uuid, jsonb, integer, integer)
from public;
grant execute on function
    sending.email_allowed(text), sending.sms_allowed(text),
    sending.audience(uuid, uuid), sending.materialise(uuid),
    sending.enqueue_workers(uuid, text, integer, timestamptz), sending.start(uuid, integer),
    sending.pause(uuid, text), sending.resume(uuid, integer), sending.cancel(uuid),
    sending.start_due(integer), sending.recover(uuid), sending.finish_if_done(uuid),
    sending.claim_email(uuid, integer, integer), sending.store_links(jsonb),
    sending.settle_email(uuid, jsonb, integer, integer)
to service_role;
