-- 029_provider_webhooks.sql: what SendGrid and Twilio report back (issue 12).
--
-- The webhook handlers (src/api/webhooks.c) only check signatures and parse;
-- every state change is one of the SECURITY DEFINER functions below, run as
-- service_role:
--
--   public.apply_twilio_status(message uuid, sid, status, error_code)
--       a Twilio status callback; statuses only move forward
--       (public.message_status_rank and the forward_only trigger of 026), so a
--       late `sent` never overwrites `delivered`.
--   public.apply_twilio_inbound(sid, from, to, body, keyword)
--       an inbound SMS: STOP-words opt the number out (sms_consent, audited),
--       START-words record new consent through public.record_sms_consent
--       (migration 018: evidence, audited); once per MessageSid.
--   public.apply_sendgrid_events(events jsonb)
--       an Event Webhook batch, each event once by sg_event_id
--       (public.sendgrid_events): delivery states forward only (026's
--       rank and trigger), opens and clicks once, hard bounces,
--       spam reports and unsubscribes suppress the address (public.suppress
--       of 026) and withdraw the subscription.
--
-- Tables: public.sendgrid_events (processed event ids) and public.sms_inbound
-- (inbound SMS, the evidence of STOP / START). Both are facts written by the
-- server: admins read them, nobody else reaches them through the API.
-- Applied once, inside one transaction, by the database owner.

-- ---------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------

create table public.sendgrid_events (
    sg_event_id varchar(100) primary key,
    event varchar(50) not null,
    email_message_id uuid references public.email_messages (id) on delete set null,
    email varchar(255),
    occurred_at timestamptz,
    received_at timestamptz not null default now()
);
comment on table public.sendgrid_events is
    'SendGrid Event Webhook events already applied (idempotency by sg_event_id). Written by the server; admins read.';
create index idx_sendgrid_events_message on public.sendgrid_events (email_message_id);
create index idx_sendgrid_events_received on public.sendgrid_events (received_at);

create table public.sms_inbound (
    id uuid primary key default gen_random_uuid(),
    message_sid varchar(64) not null unique,
    from_number varchar(20) not null,
    to_number varchar(20),
    body text not null
        constraint sms_inbound_body_length check (length(body) <= 1600),
    keyword varchar(10) not null
        constraint sms_inbound_keyword_valid check (keyword in ('stop', 'start', 'help', 'none')),
    received_at timestamptz not null default now()
);
comment on table public.sms_inbound is
    'Inbound SMS replies (Twilio), the evidence of STOP / START. Written by the server; admins read.';
create index idx_sms_inbound_from on public.sms_inbound (from_number);

alter table public.sendgrid_events enable row level security;
alter table public.sms_inbound enable row level security;
revoke all on public.sendgrid_events, public.sms_inbound from public, anon, authenticated;
grant select on public.sendgrid_events, public.sms_inbound to authenticated;
grant all on public.sendgrid_events, public.sms_inbound to service_role;
create policy sendgrid_events_select_admin on public.sendgrid_events for select to app_admin
    using (true);
create policy sms_inbound_select_admin on public.sms_inbound for select to app_admin
    using (true);

-- ---------------------------------------------------------------------------
-- Twilio
-- ---------------------------------------------------------------------------

-- Applies one status callback. The message is named by our id (the
-- ?m=<uuid> of the StatusCallback URL, covered by the signature) or, without
-- it, by Twilio's sid. Returns 'applied', 'ignored' (not a step forward: a
-- repeat or a late callback), 'unknown_message' or 'sid_mismatch' (the id
-- names a message Twilio knows by another sid). An unknown status is 22023.
create function public.apply_twilio_status(p_message_id uuid, p_sid text, p_status text,
                                           p_error_code text)
returns text
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_row public.sms_messages;
    v_rank integer := public.message_status_rank('sms', p_status);
begin
    if v_rank is null then
        raise exception 'unknown Twilio message status %', pg_catalog.quote_literal(pg_catalog.left(p_status, 40))
            using errcode = '22023';
    end if;
    if p_sid is null or p_sid !~ '^[A-Za-z0-9]{2,64}$' then
        raise exception 'MessageSid is required' using errcode = '22023';
    end if;
    if p_message_id is not null then
        select * into v_row from public.sms_messages m where m.id = p_message_id for update;
    else
        select * into v_row from public.sms_messages m where m.message_sid = p_sid for update;
    end if;
    if not found then
        return 'unknown_message';
    end if;
    if v_row.message_sid is not null and v_row.message_sid <> p_sid then
        return 'sid_mismatch';
    end if;
    if v_rank <= coalesce(public.message_status_rank('sms', v_row.status), -1) then
        if v_row.message_sid is null then
            update public.sms_messages m set message_sid = p_sid where m.id = v_row.id;
        end if;
        return 'ignored';
    end if;
    update public.sms_messages m
    set status = p_status,
        message_sid = p_sid,
        error_code = coalesce(nullif(pg_catalog.left(p_error_code, 10), ''), m.error_code),
        sent_at = case when p_status in ('sent', 'delivered', 'read')
                       then coalesce(m.sent_at, pg_catalog.now()) else m.sent_at end,
        delivered_at = case when p_status in ('delivered', 'read')
                            then coalesce(m.delivered_at, pg_catalog.now()) else m.delivered_at end,
        failed_at = case when p_status in ('failed', 'undelivered')
                         then coalesce(m.failed_at, pg_catalog.now()) else m.failed_at end
    where m.id = v_row.id;
    return 'applied';
end
$$;

-- Withdraws SMS consent for a number (the recipient's STOP), keeping the
-- first opt-out time when it is already withdrawn. Returns the consent row id.
create function public.sms_opt_out(p_phone text, p_reason text)
returns uuid
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_row public.sms_consent;
begin
    select * into v_row from public.sms_consent c where c.phone_number = p_phone for update;
    if not found then
        insert into public.sms_consent (phone_number, consent_given, opt_out_at, opt_out_reason)
        values (p_phone, false, pg_catalog.now(), p_reason)
        returning * into v_row;
    elsif v_row.consent_given or v_row.opt_out_at is null then
        update public.sms_consent c
        set consent_given = false, opt_out_at = pg_catalog.now(), opt_out_reason = p_reason
        where c.id = v_row.id
        returning * into v_row;
    end if;
    return v_row.id;
end
$$;

-- Applies one inbound SMS, once per MessageSid. p_keyword is what the server
-- classified ('stop', 'start', 'help', 'none'). Returns 'opted_out',
-- 'opted_in', 'help', 'none' or 'duplicate'.
create function public.apply_twilio_inbound(p_sid text, p_from text, p_to text, p_body text,
                                            p_keyword text)
returns text
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_consent uuid;
    v_evidence text;
begin
    if p_from is null or p_from !~ '^\+[1-9][0-9]{1,14}$' then
        raise exception 'From must be an E.164 number' using errcode = '22023';
    end if;
    insert into public.sms_inbound (message_sid, from_number, to_number, body, keyword)
    values (p_sid, p_from, pg_catalog.left(p_to, 20), coalesce(p_body, ''), p_keyword)
    on conflict (message_sid) do nothing;
    if not found then
        return 'duplicate';
    end if;
    v_evidence := pg_catalog.format('%s reply %s from %s: %s', pg_catalog.upper(p_keyword), p_sid,
                                    p_from, pg_catalog.left(coalesce(p_body, ''), 160));
    if p_keyword = 'stop' then
        v_consent := public.sms_opt_out(p_from, v_evidence);
        perform public.record_audit('opt_out', 'sms_consent', v_consent, 'success',
            pg_catalog.jsonb_build_object('channel', 'sms', 'evidence', v_evidence,
                                          'recorded_by', 'recipient'),
            null, true);
        return 'opted_out';
    elsif p_keyword = 'start' then
        perform public.record_sms_consent(p_from, 'api', pg_catalog.now(), v_evidence);
        return 'opted_in';
    end if;
    return case p_keyword when 'help' then 'help' else 'none' end;
end
$$;

-- ---------------------------------------------------------------------------
-- SendGrid
-- ---------------------------------------------------------------------------

-- Withdraws the e-mail subscription of an address and suppresses it, for
-- the recipient's own action or a hard bounce. p_reason is the suppression
-- reason of 026 ('hard_bounce', 'complaint', 'unsubscribe').
create function public.email_suppress(p_email text, p_reason text, p_evidence text,
                                      p_campaign_id uuid)
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_email text := pg_catalog.lower(pg_catalog.btrim(p_email));
    v_id uuid;
begin
    if v_email !~ '^[^@[:space:]]+@[^@[:space:]]+$' then
        return;
    end if;
    perform public.suppress('email', v_email, p_reason, p_evidence, p_campaign_id);
    if p_reason in ('complaint', 'unsubscribe') then
        insert into public.email_subscriptions as s (email, subscribed, unsubscribed_at, unsubscribe_reason)
        values (v_email, false, pg_catalog.now(), p_evidence)
        on conflict (email) do update
            set subscribed = false, unsubscribed_at = pg_catalog.now(),
                unsubscribe_reason = excluded.unsubscribe_reason
            where s.subscribed
        returning s.id into v_id;
        if v_id is not null then
            perform public.record_audit('opt_out', 'email_subscriptions', v_id, 'success',
                pg_catalog.jsonb_build_object('channel', 'email', 'evidence', p_evidence,
                                              'recorded_by', 'recipient'),
                null, true);
        end if;
    end if;
end
$$;

-- Moves an e-mail message to p_status; 026's forward_only trigger keeps the
-- old status when the new one would be a step back.
create function public.email_advance(p_id uuid, p_status text)
returns void
language sql volatile
security definer
set search_path = ''
as $$
    update public.email_messages m set status = p_status
    where m.id = p_id and m.status is distinct from p_status;
$$;

-- Applies one event to its message (when it names one) and its address.
create function public.apply_sendgrid_event(p_event jsonb, p_message uuid)
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_kind text := p_event ->> 'event';
    v_email text := p_event ->> 'email';
    v_at timestamptz := pg_catalog.to_timestamp((p_event ->> 'timestamp')::double precision);
    v_reason text := pg_catalog.left(coalesce(p_event ->> 'reason', p_event ->> 'response', ''), 1000);
    v_hard boolean := coalesce(p_event ->> 'type', 'bounce') <> 'blocked';
    v_campaign uuid := (select m.campaign_id from public.email_messages m where m.id = p_message);
begin
    if v_kind = 'delivered' then
        update public.email_messages m set delivered_at = coalesce(m.delivered_at, v_at)
        where m.id = p_message;
        perform public.email_advance(p_message, 'delivered');
    elsif v_kind = 'deferred' then
        update public.email_messages m set status = 'deferred'
        where m.id = p_message and m.status in ('queued', 'sending', 'unknown', 'sent');
    elsif v_kind = 'bounce' then
        update public.email_messages m
        set bounced_at = coalesce(m.bounced_at, v_at),
            bounce_type = case when v_hard then 'hard' else 'soft' end,
            bounce_reason = nullif(v_reason, '')
        where m.id = p_message;
        perform public.email_advance(p_message, 'bounced');
        if v_hard then
            perform public.email_suppress(v_email, 'hard_bounce', 'SendGrid bounce: ' || v_reason, v_campaign);
        end if;
    elsif v_kind = 'dropped' then
        update public.email_messages m set bounce_reason = coalesce(m.bounce_reason, nullif(v_reason, ''))
        where m.id = p_message;
        perform public.email_advance(p_message, 'dropped');
    elsif v_kind in ('open', 'click') then
        update public.email_messages m
        set opened_at = coalesce(m.opened_at, v_at),
            clicked_at = case when v_kind = 'click' then coalesce(m.clicked_at, v_at) else m.clicked_at end
        where m.id = p_message;
        if v_kind = 'click' and p_message is not null
           and pg_catalog.length(coalesce(p_event ->> 'url', '')) between 1 and 8192 then
            insert into public.email_clicks (message_id, url, clicked_at)
            values (p_message, p_event ->> 'url', v_at);
        end if;
        perform public.email_advance(p_message, case v_kind when 'open' then 'opened' else 'clicked' end);
    elsif v_kind = 'spamreport' then
        perform public.email_advance(p_message, 'spam_reported');
        perform public.email_suppress(v_email, 'complaint', 'SendGrid spam report', v_campaign);
    elsif v_kind in ('unsubscribe', 'group_unsubscribe') then
        perform public.email_advance(p_message, 'unsubscribed');
        perform public.email_suppress(v_email, 'unsubscribe', 'SendGrid ' || v_kind, v_campaign);
    end if;
end
$$;

-- Applies an Event Webhook batch (a JSON array checked by the server), each
-- event once by sg_event_id. An event names its message by the custom arg
-- campaignd_message_id; a message whose recipient is not the event's address
-- is not touched. Returns {"applied": n, "duplicates": n}.
create function public.apply_sendgrid_events(p_events jsonb)
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_event jsonb;
    v_message uuid;
    v_applied integer := 0;
    v_dups integer := 0;
begin
    if pg_catalog.jsonb_typeof(p_events) <> 'array' then
        raise exception 'events must be a JSON array' using errcode = '22023';
    end if;
    for v_event in select e from pg_catalog.jsonb_array_elements(p_events) e loop
        v_message := null;
        if v_event ->> 'campaignd_message_id'
           ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
            select m.id into v_message from public.email_messages m
            where m.id = (v_event ->> 'campaignd_message_id')::uuid
              and m.recipient = pg_catalog.lower(v_event ->> 'email')
            for update;
        end if;
        insert into public.sendgrid_events (sg_event_id, event, email_message_id, email, occurred_at)
        values (v_event ->> 'sg_event_id', pg_catalog.left(v_event ->> 'event', 50), v_message,
                pg_catalog.left(v_event ->> 'email', 255),
                pg_catalog.to_timestamp((v_event ->> 'timestamp')::double precision))
        on conflict (sg_event_id) do nothing;
        if not found then
            v_dups := v_dups + 1;
            continue;
        end if;
        perform public.apply_sendgrid_event(v_event, v_message);
        v_applied := v_applied + 1;
    end loop;
    return pg_catalog.jsonb_build_object('applied', v_applied, 'duplicates', v_dups);
end
$$;

revoke all on function public.apply_twilio_status(uuid, text, text, text),
    public.sms_opt_out(text, text),
    public.apply_twilio_inbound(text, text, text, text, text),
    public.email_suppress(text, text, text, uuid),
    public.email_advance(uuid, text),
    public.apply_sendgrid_event(jsonb, uuid),
    public.apply_sendgrid_events(jsonb)
    from public, anon, authenticated;
grant execute on function public.apply_twilio_status(uuid, text, text, text),
    public.apply_twilio_inbound(text, text, text, text, text),
    public.apply_sendgrid_events(jsonb)
    to service_role;

-- ---------------------------------------------------------------------------
-- Quiet hours and STOP instructions for the SMS path of the send engine (027)
-- ---------------------------------------------------------------------------

-- When an SMS to this contact may go: NULL now (08:00 to 21:00 in the
-- contact's time zone, contacts.attributes->>'timezone' when it is one
-- PostgreSQL knows, else the application's app_settings.timezone), else the
-- next 08:00 there.
create function sending.sms_window_opens(p_contact uuid)
returns timestamptz
language plpgsql stable
security definer
set search_path = ''
as $$
declare
    v_tz text;
    v_local timestamp;
begin
    select nullif(k.attributes ->> 'timezone', '') into v_tz from public.contacts k where k.id = p_contact;
    if v_tz is not null then
        begin
            v_local := pg_catalog.now() at time zone v_tz;
        exception when others then
            v_tz := null;  -- not a time zone: the application's applies
        end;
    end if;
    if v_tz is null then
        v_tz := coalesce((select a.timezone::text from public.app_settings a limit 1), 'UTC');
        v_local := pg_catalog.now() at time zone v_tz;
    end if;
    if v_local::time >= time '08:00' and v_local::time < time '21:00' then
        return null;
    end if;
    return (case when v_local::time < time '08:00' then v_local::date else v_local::date + 1 end
            + time '08:00') at time zone v_tz;
end
$$;

-- sending.claim_sms of 027 with quiet hours and the first-message flag:
-- messages in the recipient's quiet hours wait, as a temporary failure does
-- (`sending` without a lease, next_attempt_at = when the window opens, so
-- that sending.finish_if_done schedules the worker for then); the contact
-- JSON of each claimed message carries "first_to_number": true when nothing
-- was ever handed to the provider for that number (the engine then appends
-- the opt-out instructions).
create or replace function sending.claim_sms(p_campaign uuid, p_limit integer, p_lease_seconds integer)
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
        select m.id, m.recipient, sending.sms_window_opens(m.contact_id) as opens
        from public.sms_messages m
        where m.campaign_id = p_campaign
          and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
          and m.next_attempt_at <= pg_catalog.now()
        order by m.next_attempt_at, m.id limit p_limit
        for update skip locked),
    waiting as (
        update public.sms_messages m set status = 'sending', lease_until = null,
            next_attempt_at = due.opens
        from due where m.id = due.id and due.opens is not null
        returning m.id),
    dropped as (
        update public.sms_messages m set status = 'canceled',
            last_error = 'opted out or suppressed before sending'
        from due where m.id = due.id and due.opens is null and not sending.sms_allowed(due.recipient)
        returning m.id)
    select pg_catalog.array_agg(due.id order by due.id) into v_ids
    from due
    where due.opens is null and due.id not in (select d.id from dropped d);
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
    returning m.id, m.recipient::text, coalesce((
        select pg_catalog.jsonb_build_object(
            'first_name', k.first_name, 'last_name', k.last_name, 'email', k.email,
            'phone', k.phone, 'attributes', k.attributes)
        from public.contacts k where k.id = m.contact_id), '{}'::jsonb)
        || pg_catalog.jsonb_build_object('first_to_number',
               not exists (select 1 from public.sms_messages o
                           where o.recipient = m.recipient and o.id <> m.id and o.message_sid is not null));
end
$$;

revoke all on function sending.sms_window_opens(uuid) from public, anon, authenticated;
grant execute on function sending.sms_window_opens(uuid) to service_role;
