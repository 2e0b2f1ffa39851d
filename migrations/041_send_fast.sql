-- 041_send_fast.sql — the send engine's speed and crash bound (issue 12), see
-- docs/sending.md ("What unknown means", "The audit log").
--
--   * One claim and one step function for both channels
--     (sending.claim / sending.step), replacing 027's claim_email,
--     claim_sms, settle_email, settle_sms, store_links and 029's claim_sms
--     that overrode 027's. Each rule is written once: consent and suppression
--     (sending.allowed), quiet hours (029's sending.sms_window_opens, applied
--     in the claim), the monthly limit (027's reserve/release), the lease,
--     the retry back-off and the outcome -> status mapping.
--   * In flight means in flight: a claim only leases its messages
--     (sending.leases, a small table without triggers) and their rows stay
--     `queued`; the engine's step marks the next message in flight in the
--     same transaction that settles the previous one, so after kill -9 at
--     most one message per worker (SEND_WORKERS workers per campaign, held
--     by a session advisory lock per slot) is `unknown`. Leases that were
--     never in flight just run out, and the messages are claimed again.
--   * A message row is written twice in its life (materialised, settled)
--     instead of four times, and the engine's writes are audited per batch
--     (one audit_logs row per claim, per materialisation, per recovery),
--     not per row: the engine's functions run with campaignd.engine_batch
--     set, which the per-row audit trigger of the message tables skips.
--     Deletes and every other writer (webhooks, tracking, psql) are still
--     audited per row.

-- ---------------------------------------------------------------------------
-- Per-row audit of the message tables: skipped inside the engine's functions
-- ---------------------------------------------------------------------------

drop trigger audit on public.email_messages;
create trigger audit after insert or update or delete on public.email_messages
    for each row
    when (pg_catalog.current_setting('campaignd.engine_batch', true) is distinct from 'on')
    execute function public.audit_trigger();
drop trigger audit on public.sms_messages;
create trigger audit after insert or update or delete on public.sms_messages
    for each row
    when (pg_catalog.current_setting('campaignd.engine_batch', true) is distinct from 'on')
    execute function public.audit_trigger();

-- One audit row for a batch of the engine's writes: resource_type is the
-- message table, resource_id the campaign, new_value what happened.
create function sending.audit_batch(p_channel text, p_campaign uuid, p_detail jsonb)
returns void
language sql volatile
security definer
set search_path = ''
as $$
    insert into public.audit_logs (action, resource_type, resource_id, new_value, status, metadata)
    values ('update', case p_channel when 'email' then 'email_messages' else 'sms_messages' end,
            p_campaign, p_detail, 'success',
            pg_catalog.jsonb_build_object('role', 'service_role', 'batch', true, 'table',
                case p_channel when 'email' then 'public.email_messages' else 'public.sms_messages' end))
$$;

-- ---------------------------------------------------------------------------
-- Leases
-- ---------------------------------------------------------------------------

create table sending.leases (
    message_id uuid primary key,
    channel text not null constraint leases_channel_valid check (channel in ('email', 'sms')),
    campaign_id uuid not null,
    claim uuid not null,
    in_flight boolean not null default false,
    lease_until timestamptz not null,
    links jsonb
);
comment on table sending.leases is
    'Messages a worker holds: claimed (in_flight false: nothing left yet, the lease may simply run out) or handed to the provider right now (in_flight true: unknown if the lease runs out).';
create index leases_campaign on sending.leases (campaign_id, lease_until);
revoke all on sending.leases from public;
grant select on sending.leases to service_role;

-- ---------------------------------------------------------------------------
-- The rules, once for both channels
-- ---------------------------------------------------------------------------

-- Whether marketing may go to this address now: e-mail unless unsubscribed
-- (email_subscriptions) or suppressed; SMS only with recorded consent
-- (sms_consent) and not suppressed.
create function sending.allowed(p_channel text, p_address text)
returns boolean
language sql stable
-- Neither SECURITY DEFINER nor SET: PostgreSQL inlines it into the queries
-- of the engine's functions (called once per message). Every name is
-- qualified; its callers are SECURITY DEFINER with an empty search_path.
as $$
    select p_address is not null
       and case p_channel
           when 'email' then not exists (select 1 from public.email_subscriptions s
                                         where s.email = p_address and not s.subscribed)
           else exists (select 1 from public.sms_consent s
                        where s.phone_number = p_address and s.consent_given) end
       and not exists (select 1 from public.suppressions x
                       where x.channel = p_channel
                         and x.address = case p_channel when 'email' then pg_catalog.lower(pg_catalog.btrim(p_address))
                                                        else pg_catalog.btrim(p_address) end)
$$;

-- The status an outcome leaves a message in after its p_attempts-th attempt.
create function sending.settled_status(p_channel text, p_outcome text, p_status text,
                                       p_attempts integer, p_max_attempts integer)
returns text
language sql immutable
-- no SET clause: inlined into the settle's UPDATE
as $$
    select case p_outcome
        when 'accepted' then 'sent'
        when 'unknown' then 'unknown'
        when 'dropped' then case p_channel when 'email' then 'dropped' else 'canceled' end
        when 'tempfail' then case when p_attempts >= p_max_attempts then 'failed' else p_status end
        else 'failed' end
$$;

-- When a temporary failure is tried again: p_backoff_seconds * 2^(attempt-1),
-- at most an hour.
create function sending.retry_at(p_attempts integer, p_backoff_seconds integer)
returns timestamptz
language sql stable
-- no SET clause: inlined into the settle's UPDATE (names are qualified)
as $$
    select pg_catalog.now() + pg_catalog.make_interval(
        secs => least(3600, p_backoff_seconds * 2 ^ least(greatest(p_attempts, 1) - 1, 16)))
$$;

-- ---------------------------------------------------------------------------
-- Materialising: one audit row per campaign
-- ---------------------------------------------------------------------------

create or replace function sending.materialise(p_campaign uuid, out recipients integer, out skipped integer)
language plpgsql volatile
security definer
set search_path = ''
set campaignd.engine_batch = 'on'
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
        where k.email is not null and sending.allowed('email', k.email)
        order by k.email, k.created_at
        on conflict do nothing;
    else
        insert into public.sms_messages (campaign_id, contact_id, recipient, message, status)
        select distinct on (k.phone) c.id, k.id, k.phone, '', 'queued'
        from sending_audience a join public.contacts k on k.id = a.id
        where k.phone is not null and sending.allowed('sms', k.phone)
        order by k.phone, k.created_at
        on conflict do nothing;
    end if;
    get diagnostics recipients = row_count;
    skipped := v_audience - recipients;
    update public.campaigns set materialised_at = pg_catalog.now(),
        recipients_count = recipients, skipped_count = greatest(0, skipped)
    where id = p_campaign;
    perform sending.audit_batch(case when c.type = 'email' then 'email' else 'sms' end, p_campaign,
        pg_catalog.jsonb_build_object('event', 'materialised', 'recipients', recipients,
                                      'skipped', greatest(0, skipped)));
end
$$;

-- ---------------------------------------------------------------------------
-- Recovery: expired leases
-- ---------------------------------------------------------------------------

-- Leases that ran out: a message that was in flight becomes `unknown` (its
-- worker died while the provider had it: never resent), counted on the
-- campaign; one that was only claimed is free again (its monthly
-- reservation given back). Also 027's in-flight rows (`sending` with a lease)
-- from before this migration. Returns the number of unknown messages.
create or replace function sending.recover(p_campaign uuid)
returns integer
language plpgsql volatile
security definer
set search_path = ''
set campaignd.engine_batch = 'on'
as $$
declare
    v_lost uuid[];
    v_free integer;
    v_channel text;
    n_email integer;
    n_sms integer;
    v_why constant text := 'in flight when its worker stopped: may or may not have been delivered';
begin
    with gone as (
        delete from sending.leases l
        where l.campaign_id = p_campaign and l.lease_until < pg_catalog.now()
        returning l.message_id, l.channel, l.in_flight, l.links),
    e as (
        update public.email_messages m set status = 'unknown', attempts = m.attempts + 1,
            links = coalesce(g.links, m.links), last_error = v_why
        from gone g where g.in_flight and g.channel = 'email' and m.id = g.message_id
        returning m.id),
    s as (
        update public.sms_messages m set status = 'unknown', attempts = m.attempts + 1,
            last_error = v_why
        from gone g where g.in_flight and g.channel = 'sms' and m.id = g.message_id
        returning m.id)
    select (select pg_catalog.array_agg(x.id) from (select e.id from e union all select s.id from s) x),
           (select count(*)::integer from gone g where not g.in_flight),
           (select min(g.channel) from gone g)
    into v_lost, v_free, v_channel;
    -- a campaign has one channel: what was only claimed is given back
    if v_free > 0 then
        perform sending.release(v_channel, v_free);
    end if;
    update public.email_messages set status = 'unknown', lease_until = null, last_error = v_why
    where campaign_id = p_campaign and status = 'sending' and lease_until < pg_catalog.now();
    get diagnostics n_email = row_count;
    update public.sms_messages set status = 'unknown', lease_until = null, last_error = v_why
    where campaign_id = p_campaign and status = 'sending' and lease_until < pg_catalog.now();
    get diagnostics n_sms = row_count;
    n_email := n_email + n_sms + coalesce(pg_catalog.cardinality(v_lost), 0);
    if n_email > 0 then
        update public.campaigns set unknown_count = unknown_count + n_email where id = p_campaign;
    end if;
    if n_email > 0 or v_free > 0 then
        perform sending.audit_batch(
            (select case c.type when 'sms' then 'sms' else 'email' end from public.campaigns c
             where c.id = p_campaign), p_campaign,
            pg_catalog.jsonb_build_object('event', 'recovered', 'unknown', coalesce(v_lost, '{}'),
                                          'unknown_count', n_email, 'released', v_free));
    end if;
    return n_email;
end
$$;

-- Marks the campaign sent when nothing is left to send or in flight. Returns
-- its status, and in next_retry when a worker should look again: the
-- earliest retry of a waiting message or lease end of a held one.
create or replace function sending.finish_if_done(p_campaign uuid, out status text, out next_retry timestamptz)
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_left boolean;
begin
    select c.status into finish_if_done.status from public.campaigns c where c.id = p_campaign;
    v_left := exists (select 1 from public.email_messages m where m.campaign_id = p_campaign
                      and (m.status = 'queued' or m.status = 'sending'))
           or exists (select 1 from public.sms_messages m where m.campaign_id = p_campaign
                      and (m.status = 'queued' or m.status = 'sending'))
           or exists (select 1 from sending.leases l where l.campaign_id = p_campaign);
    select min(x.at) into next_retry
    from (select min(l.lease_until) + interval '1 second' as at from sending.leases l
          where l.campaign_id = p_campaign
          union all
          select min(coalesce(m.lease_until + interval '1 second', m.next_attempt_at))
          from public.email_messages m
          where m.campaign_id = p_campaign and (m.status = 'queued' or (m.status = 'sending'))
          union all
          select min(coalesce(m.lease_until + interval '1 second', m.next_attempt_at))
          from public.sms_messages m
          where m.campaign_id = p_campaign and (m.status = 'queued' or (m.status = 'sending'))) x;
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

-- ---------------------------------------------------------------------------
-- Claim
-- ---------------------------------------------------------------------------

-- Leases up to p_limit due messages of a sending campaign of p_channel to
-- claim p_claim for p_lease_seconds: expired leases are recovered first; SMS
-- in the recipient's quiet hours wait for the window (next_attempt_at); the
-- monthly limit is reserved for the rest (reaching it pauses the campaign
-- with a reason). The rows stay `queued`: nothing is in flight yet. Returns
-- the leased messages with their contacts (SMS: "first_to_number" when
-- nothing was ever handed over for that number). Claims of one campaign are
-- serialised by its row lock.
create function sending.claim(p_channel text, p_campaign uuid, p_claim uuid, p_limit integer,
                              p_lease_seconds integer)
returns table (id uuid, recipient text, contact jsonb)
language plpgsql volatile
security definer
set search_path = ''
set campaignd.engine_batch = 'on'
as $$
declare
    v_ids uuid[];
    v_wait integer;
    v_grant integer;
begin
    perform 1 from public.campaigns k
    where k.id = p_campaign and k.status = 'sending' and k.deleted_at is null
      and k.type = p_channel
    for update;
    if not found then
        return;
    end if;
    perform sending.recover(p_campaign);
    create temporary table if not exists sending_due (
        id uuid primary key, recipient text, contact_id uuid, opens timestamptz) on commit drop;
    truncate sending_due;
    insert into sending_due
    select d.id, d.recipient, d.contact_id,
           case when p_channel = 'sms' then sending.sms_window_opens(d.contact_id) end
    from (select m.id, m.recipient::text, m.contact_id, m.next_attempt_at from public.email_messages m
          where p_channel = 'email' and m.campaign_id = p_campaign
            and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
            and m.next_attempt_at <= pg_catalog.now()
            and not exists (select 1 from sending.leases l where l.message_id = m.id)
          union all
          select m.id, m.recipient::text, m.contact_id, m.next_attempt_at from public.sms_messages m
          where p_channel = 'sms' and m.campaign_id = p_campaign
            and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
            and m.next_attempt_at <= pg_catalog.now()
            and not exists (select 1 from sending.leases l where l.message_id = m.id)
          order by 4 limit p_limit) d;
    -- quiet hours: wait for the window, as a temporary failure does
    update public.sms_messages m set next_attempt_at = d.opens
    from sending_due d where d.opens is not null and m.id = d.id;
    get diagnostics v_wait = row_count;
    select pg_catalog.array_agg(d.id order by d.id) into v_ids from sending_due d where d.opens is null;
    if v_ids is null then
        return;
    end if;
    v_grant := sending.reserve(p_channel, pg_catalog.cardinality(v_ids));
    if v_grant = 0 then
        update public.campaigns k set status = 'paused',
            pause_reason = pg_catalog.format('monthly %s limit of %s messages reached',
                case p_channel when 'email' then 'e-mail' else 'SMS' end,
                (select case p_channel when 'email' then a.monthly_email_limit else a.monthly_sms_limit end
                 from public.app_settings a limit 1))
        where k.id = p_campaign;
        return;
    end if;
    v_ids := v_ids[1:v_grant];
    insert into sending.leases (message_id, channel, campaign_id, claim, lease_until)
    select x, p_channel, p_campaign, p_claim,
           pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds)
    from pg_catalog.unnest(v_ids) x;
    return query
    select d.id, d.recipient, coalesce((
        select pg_catalog.jsonb_build_object(
            'first_name', k.first_name, 'last_name', k.last_name, 'email', k.email,
            'phone', k.phone, 'attributes', k.attributes)
        from public.contacts k where k.id = d.contact_id), '{}'::jsonb)
        || case when p_channel = 'sms' then pg_catalog.jsonb_build_object('first_to_number',
               not exists (select 1 from public.sms_messages o
                           where o.recipient = d.recipient and o.id <> d.id and o.message_sid is not null))
           else '{}'::jsonb end
    from sending_due d where d.id = any (v_ids)
    order by d.id;
end
$$;

-- ---------------------------------------------------------------------------
-- Step: settle what came back, put the next in flight
-- ---------------------------------------------------------------------------

-- Records what the provider said about the messages of p_done (a JSON array
-- of {"id", "outcome" (accepted | tempfail | permfail | unknown),
-- "provider_id", "error"} for e-mail, with "sid", "segments", "cost" (in
-- currency units) and "body" for SMS), held in flight by claim p_claim:
-- accepted -> sent, unknown -> unknown (counted on the campaign), tempfail ->
-- retried after sending.retry_at (the row stays queued) or failed after
-- p_max_attempts, permfail -> failed. Their monthly reservations are given
-- back unless they left.
create function sending.settle(p_channel text, p_campaign uuid, p_claim uuid, p_done jsonb,
                               p_max_attempts integer, p_backoff_seconds integer)
returns void
language plpgsql volatile
security definer
set search_path = ''
set campaignd.engine_batch = 'on'
as $$
declare
    v_unknown integer;
    v_unsent integer;
begin
    with r as (
        delete from sending.leases l
        using pg_catalog.jsonb_to_recordset(p_done)
              as x(id uuid, outcome text, provider_id text, sid text, segments integer,
                   cost numeric, body text, error text)
        where l.message_id = x.id and l.claim = p_claim and (l.in_flight or x.outcome = 'dropped')
        returning x.*, l.links),
    e as (
        update public.email_messages m set
            status = sending.settled_status('email', r.outcome, m.status, m.attempts + 1, p_max_attempts),
            attempts = m.attempts + 1,
            sent_at = case when r.outcome = 'accepted' then pg_catalog.now() else m.sent_at end,
            message_id = case when r.outcome = 'accepted' then nullif(r.provider_id, '') else m.message_id end,
            next_attempt_at = case when r.outcome = 'tempfail'
                then sending.retry_at(m.attempts + 1, p_backoff_seconds) else m.next_attempt_at end,
            last_error = nullif(pg_catalog.left(r.error, 500), ''),
            links = coalesce(r.links, m.links)
        from r where p_channel = 'email' and m.id = r.id
        returning r.outcome),
    s as (
        update public.sms_messages m set
            status = sending.settled_status('sms', r.outcome, m.status, m.attempts + 1, p_max_attempts),
            attempts = m.attempts + 1,
            sent_at = case when r.outcome = 'accepted' then pg_catalog.now() else m.sent_at end,
            failed_at = case when r.outcome = 'permfail' then pg_catalog.now() else m.failed_at end,
            message_sid = case when r.outcome = 'accepted' then nullif(r.sid, '') else m.message_sid end,
            segments = greatest(1, coalesce(r.segments, m.segments)),
            cost = coalesce(r.cost, m.cost),
            message = coalesce(nullif(r.body, ''), m.message),
            next_attempt_at = case when r.outcome = 'tempfail'
                then sending.retry_at(m.attempts + 1, p_backoff_seconds) else m.next_attempt_at end,
            last_error = nullif(pg_catalog.left(r.error, 500), '')
        from r where p_channel = 'sms' and m.id = r.id
        returning r.outcome)
    select count(*) filter (where o.outcome = 'unknown'),
           count(*) filter (where o.outcome not in ('accepted', 'unknown'))
    into v_unknown, v_unsent
    from (select outcome from e union all select outcome from s) o;
    if v_unsent > 0 then
        perform sending.release(p_channel, v_unsent);
    end if;
    if v_unknown > 0 then
        update public.campaigns set unknown_count = unknown_count + v_unknown where id = p_campaign;
    end if;
end
$$;

-- Gives up the leases of claim p_claim that are not in flight (given back
-- for another claim) and writes the batch's audit row: the claimed messages
-- of p_batch by status.
create function sending.end_batch(p_channel text, p_campaign uuid, p_claim uuid, p_batch uuid[])
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_left integer;
begin
    delete from sending.leases l where l.claim = p_claim and not l.in_flight;
    get diagnostics v_left = row_count;
    if v_left > 0 then
        perform sending.release(p_channel, v_left);
    end if;
    perform sending.audit_batch(p_channel, p_campaign, pg_catalog.jsonb_build_object(
        'event', 'sent_batch', 'claim', p_claim, 'returned', v_left,
        'messages', (select pg_catalog.jsonb_object_agg(x.status, x.ids) from (
            select m.status, pg_catalog.jsonb_agg(m.id order by m.id) as ids
            from public.email_messages m where p_channel = 'email' and m.id = any (p_batch)
            group by m.status
            union all
            select m.status, pg_catalog.jsonb_agg(m.id order by m.id)
            from public.sms_messages m where p_channel = 'sms' and m.id = any (p_batch)
            group by m.status) x)));
end
$$;

-- The engine's one statement per message: settles p_done (sending.settle),
-- then puts the messages of p_next (leased by claim p_claim) in flight for
-- p_lease_seconds, storing their tracked links (p_links: an array parallel
-- to p_next, or NULL), after checking once more, right before they leave,
-- that the campaign is still sending and that each recipient still consents
-- and is not suppressed (those who do not are dropped / canceled). go: the
-- ids the engine may hand over now. With p_batch (the claim's ids) the batch
-- ends: the rest of its leases are given back, the batch is audited, and the
-- campaign finishes when nothing is left. status: the campaign's status.
create function sending.step(p_channel text, p_campaign uuid, p_claim uuid, p_done jsonb,
                             p_next uuid[], p_links jsonb, p_batch uuid[], p_max_attempts integer,
                             p_backoff_seconds integer, p_lease_seconds integer,
                             out status text, out go uuid[])
language plpgsql volatile
security definer
set search_path = ''
set campaignd.engine_batch = 'on'
as $$
declare
    v_dropped uuid[];
begin
    if p_done is not null and pg_catalog.jsonb_array_length(p_done) > 0 then
        perform sending.settle(p_channel, p_campaign, p_claim, p_done, p_max_attempts,
                               p_backoff_seconds);
    end if;
    select c.status into step.status from public.campaigns c
    where c.id = p_campaign and c.deleted_at is null;
    if coalesce(pg_catalog.cardinality(p_next), 0) > 0 and step.status = 'sending' then
        with n as (
            select x.id, x.ord, l.message_id is not null as leased,
                   coalesce(e.recipient::text, s.recipient::text) as recipient,
                   coalesce(e.status, s.status) as mstatus, coalesce(e.lease_until, s.lease_until) as mlease
            from pg_catalog.unnest(p_next) with ordinality as x(id, ord)
            left join sending.leases l on l.message_id = x.id and l.claim = p_claim and not l.in_flight
            left join public.email_messages e on p_channel = 'email' and e.id = x.id
            left join public.sms_messages s on p_channel = 'sms' and s.id = x.id),
        ok as (
            select n.id, n.ord, n.recipient,
                   sending.allowed(p_channel, n.recipient) as allowed
            from n where n.leased
              and (n.mstatus = 'queued' or (n.mstatus = 'sending' and n.mlease is null))),
        flying as (
            update sending.leases l set in_flight = true,
                lease_until = pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds),
                links = nullif(p_links -> (ok.ord::integer - 1), 'null'::jsonb)
            from ok where ok.allowed and l.message_id = ok.id
            returning l.message_id)
        select (select pg_catalog.array_agg(f.message_id) from flying f),
               (select pg_catalog.array_agg(ok.id) from ok where not ok.allowed)
        into step.go, v_dropped;
        if v_dropped is not null then
            perform sending.settle(p_channel, p_campaign, p_claim,
                (select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('id', d, 'outcome', 'dropped',
                     'error', case p_channel when 'email' then 'unsubscribed or suppressed before sending'
                                             else 'opted out or suppressed before sending' end))
                 from pg_catalog.unnest(v_dropped) d),
                p_max_attempts, p_backoff_seconds);
        end if;
    end if;
    if p_batch is not null then
        perform sending.end_batch(p_channel, p_campaign, p_claim, p_batch);
        step.status := (select f.status from sending.finish_if_done(p_campaign) f);
    end if;
end
$$;

-- ---------------------------------------------------------------------------
-- Cancel: what a worker holds in flight settles, the rest is dropped
-- ---------------------------------------------------------------------------

create or replace function sending.cancel(p_campaign uuid)
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
set campaignd.engine_batch = 'on'
as $$
declare
    c public.campaigns%rowtype;
    n integer;
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
    update public.email_messages m set status = 'dropped', last_error = 'campaign cancelled'
    where m.campaign_id = p_campaign
      and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
      and not exists (select 1 from sending.leases l where l.message_id = m.id and l.in_flight);
    get diagnostics n = row_count;
    update public.sms_messages m set status = 'canceled', last_error = 'campaign cancelled'
    where m.campaign_id = p_campaign
      and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
      and not exists (select 1 from sending.leases l where l.message_id = m.id and l.in_flight);
    perform sending.audit_batch(case c.type when 'sms' then 'sms' else 'email' end, p_campaign,
        pg_catalog.jsonb_build_object('event', 'cancelled', 'dropped', n + (select count(*) from
            public.sms_messages m where m.campaign_id = p_campaign and m.status = 'canceled'
              and m.last_error = 'campaign cancelled')));
    return pg_catalog.to_jsonb(c);
end
$$;

-- ---------------------------------------------------------------------------
-- The near-copies go
-- ---------------------------------------------------------------------------

drop function sending.claim_email(uuid, integer, integer);
drop function sending.claim_sms(uuid, integer, integer);
drop function sending.settle_email(uuid, jsonb, integer, integer);
drop function sending.settle_sms(uuid, jsonb, integer, integer);
drop function sending.store_links(jsonb);
drop function sending.email_allowed(text);
drop function sending.sms_allowed(text);

revoke all on function
    sending.audit_batch(text, uuid, jsonb), sending.allowed(text, text),
    sending.settled_status(text, text, text, integer, integer), sending.retry_at(integer, integer),
    sending.claim(text, uuid, uuid, integer, integer),
    sending.settle(text, uuid, uuid, jsonb, integer, integer),
    sending.end_batch(text, uuid, uuid, uuid[]),
    sending.step(text, uuid, uuid, jsonb, uuid[], jsonb, uuid[], integer, integer, integer)
from public;
grant execute on function
    sending.allowed(text, text),
    sending.claim(text, uuid, uuid, integer, integer),
    sending.step(text, uuid, uuid, jsonb, uuid[], jsonb, uuid[], integer, integer, integer)
to service_role;
