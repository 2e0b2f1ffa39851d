-- 082_send_materialise_chunks.sql: a campaign's recipients are materialised
-- a slice at a time, the sending starting after the first (issue 12).
--
-- sending.ensure_materialised (027, 041, 068) wrote every message row of the
-- audience in one statement before the first message could leave, holding
-- the campaign's row lock all along: ~25-30 µs per recipient, so 0.25-0.4 s
-- for 10,000 recipients (a seventh of a 10,000-SMS send on the bench, with
-- one CPU of two idle meanwhile) and ~30 s for a million, during which a
-- pause or a cancel waited for the lock and the dashboard showed nothing.
--
-- Now the audience is walked in the order of its recipients (contacts are
-- unique per owner and address: 006's (user_id, phone) and (user_id, email)
-- indexes, which the walk reads in order), a slice at a time, each slice
-- written with the same consent and suppression rule as before:
--   - each worker's first look (ensure_materialised) writes a slice
--     (500 contacts), so the first claim finds messages at once;
--   - the campaign's other workers (SEND_WORKERS > 1) write the rest, a
--     slice of 1,000 per transaction (sending.materialise_more), before
--     they send: on their own connections and CPU while the first sends;
--   - a claim that finds nothing due in a campaign not wholly materialised
--     writes the next slice (twice the claim, at least 500), and more until
--     something is due or the audience ends; slices are written under the
--     campaign's row lock (a claim holds it anyway), so they never overlap;
--   - where the walk stands is a row of sending.materialising (the last
--     recipient written); the row goes when the audience ends, and then
--     materialised_at, skipped_count (the audience's contacts left out: no
--     address, no consent, suppressed) and the 'materialised' audit event
--     are written as before;
--   - recipients_count grows with each slice (the dashboard watches it);
--   - a campaign is never finished while its materialisation is not
--     (sending.unfinished), and sending.materialise still writes everything
--     left in one call.
-- A pause or a cancel now waits for one slice at most. Contacts added while
-- a campaign is materialised are in it when their address comes after where
-- the walk stands (before: a snapshot at the start); an address is written
-- once whatever happens (the one-per-recipient index, ON CONFLICT).
-- Applied once, inside one transaction, by the database owner.

create table sending.materialising (
    campaign_id uuid primary key references public.campaigns (id) on delete cascade,
    -- the last recipient written (phone or e-mail, the walk's order)
    after text not null
);
comment on table sending.materialising is
    'Campaigns whose recipients are being materialised a slice at a time: the last recipient written so far.';
revoke all on sending.materialising from public;
grant select on sending.materialising to service_role;

-- The recipients the progress rows count against (067: published every 1 %
-- of them), as the slices write them: set once when its row was made, it
-- said "1,000" for a campaign of 10,000 and published every 10 messages.
create function sending.progress_recipients(p_campaign uuid, p_recipients integer)
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
begin
    -- SKIP LOCKED, never a wait: the caller holds the campaign's row FOR
    -- UPDATE, and a step that holds this row (publishing) may wait for the
    -- campaign's row (the first publish inserts campaign_progress, whose
    -- foreign key takes it FOR KEY SHARE): waiting here was a deadlock (the
    -- bench found it). A later slice writes the number then (meanwhile the
    -- progress is published a little more often)
    update sending.progress p set recipients = p_recipients
    where p.ctid = any (array(
        select q.ctid from sending.progress q
        where q.campaign_id = p_campaign and q.recipients is distinct from p_recipients
        for update skip locked));
end
$$;
revoke all on function sending.progress_recipients(uuid, integer) from public;

-- Writes the next slice of at most p_limit audience contacts of a sending
-- campaign (the caller holds its row lock): their messages, as the rule of
-- 068's sending.materialise allows. True when the audience has ended (then
-- the campaign is materialised).
create function sending.materialise_slice(p_campaign uuid, p_limit integer)
returns boolean
language plpgsql volatile
security definer
set search_path = ''
set campaignd.engine_batch = 'on'
-- the walk reads the owner's address index in its order, never the rest of
-- the audience sorted for each slice (O(audience) per slice): a plan made
-- for a few rows (a generic plan, young statistics) preferred the latter
set enable_sort = off
as $$
declare
    c public.campaigns%rowtype;
    v_after text;
    v_rules jsonb;
    v_from text;
    v_ids uuid[];
    v_keys text[];
    v_added integer;
    v_audience integer;
    v_total integer;
begin
    select * into c from public.campaigns where id = p_campaign;
    if not found or c.materialised_at is not null then
        return true;
    end if;
    select m.after into v_after from sending.materialising m where m.campaign_id = p_campaign;
    if c.segment_id is not null then
        select s.rules into v_rules from public.audience_segments s where s.id = c.segment_id;
        if v_rules is null then
            raise exception 'the campaign''s segment does not exist' using errcode = '22023';
        end if;
    end if;
    -- the audience's statement: the segment's (030: fixed fragments, the
    -- user's values as parameters $1-$3), or all the owner's live contacts
    v_from := case when v_rules is null
                   then ' from public.contacts c where c.user_id = $2 and c.deleted_at is null'
                   else public.segment__from(v_rules) end;
    -- the slice: the audience's next contacts with an address, in the order
    -- of their addresses (the owner's (user_id, phone|email) index; every
    -- address sorts after '', 006's checks: an index condition in any plan)
    execute pg_catalog.format(
        'select pg_catalog.array_agg(x.id order by x.k), pg_catalog.array_agg(x.k order by x.k)'
        || ' from (select c.id, c.%1$I::text as k %2$s and c.%1$I is not null'
        || ' and c.%1$I > coalesce($4::text, '''') order by c.%1$I limit $5) x',
        case c.type when 'email' then 'email' else 'phone' end, v_from)
    into v_ids, v_keys
    using v_rules, c.user_id, public.segment__tz(), v_after, p_limit;
    v_added := 0;
    if v_ids is not null then
        -- sending.allowed's rule (041, 052, 068), probed per recipient
        -- (OFFSET 0 keeps each a subplan of its index: as joins they hashed
        -- the whole consent table for every slice)
        if c.type = 'email' then
            insert into public.email_messages (campaign_id, contact_id, recipient, subject, status)
            select c.id, a.id, a.k, c.subject, 'queued'
            from rows from (pg_catalog.unnest(v_ids), pg_catalog.unnest(v_keys)) as a(id, k)
            where not exists (select 1 from public.email_subscriptions s
                              where s.email = a.k and not s.subscribed offset 0)
              and not exists (select 1 from public.suppressions x
                              where x.channel = 'email'
                                and x.address = pg_catalog.lower(pg_catalog.btrim(a.k)) offset 0)
            on conflict do nothing;
        else
            insert into public.sms_messages (campaign_id, contact_id, recipient, message, status)
            select c.id, a.id, a.k, '', 'queued'
            from rows from (pg_catalog.unnest(v_ids), pg_catalog.unnest(v_keys)) as a(id, k)
            where exists (select 1 from public.sms_consent s
                          where s.phone_number = a.k and s.consent_given offset 0)
              and not exists (select 1 from public.suppressions x
                              where x.channel = 'sms' and x.address = pg_catalog.btrim(a.k) offset 0)
            on conflict do nothing;
        end if;
        get diagnostics v_added = row_count;
    end if;
    if coalesce(pg_catalog.cardinality(v_ids), 0) = p_limit then
        -- more may follow: where the walk stands, what it wrote
        insert into sending.materialising (campaign_id, after)
        values (p_campaign, v_keys[p_limit])
        on conflict (campaign_id) do update set after = excluded.after;
        if v_added > 0 then
            update public.campaigns set recipients_count = recipients_count + v_added
            where id = p_campaign;
            perform sending.progress_recipients(p_campaign, c.recipients_count + v_added);
        end if;
        return false;
    end if;
    -- the audience has ended: skipped is every contact of it not written
    -- (as 068 counted: no address, no consent, suppressed)
    execute 'select count(*)::integer' || v_from
    into v_audience using v_rules, c.user_id, public.segment__tz();
    delete from sending.materialising m where m.campaign_id = p_campaign;
    v_total := c.recipients_count + v_added;
    update public.campaigns set materialised_at = pg_catalog.now(),
        recipients_count = v_total, skipped_count = greatest(0, v_audience - v_total)
    where id = p_campaign;
    perform sending.progress_recipients(p_campaign, v_total);
    perform sending.audit_batch(case when c.type = 'email' then 'email' else 'sms' end, p_campaign,
        pg_catalog.jsonb_build_object('event', 'materialised', 'recipients', v_total,
                                      'skipped', greatest(0, v_audience - v_total)));
    return true;
end
$$;
revoke all on function sending.materialise_slice(uuid, integer) from public;

-- Everything not materialised yet, in one call (a caller that cannot wait
-- for claims, and tests); (recipients, skipped) of the whole campaign.
create or replace function sending.materialise(p_campaign uuid, out recipients integer, out skipped integer)
language plpgsql volatile
security definer
set search_path = ''
set campaignd.engine_batch = 'on'
as $$
begin
    perform 1 from public.campaigns where id = p_campaign for update;
    while not sending.materialise_slice(p_campaign, 5000) loop
    end loop;
    select c.recipients_count, c.skipped_count into recipients, skipped
    from public.campaigns c where c.id = p_campaign;
end
$$;

-- One slice of a sending campaign's audience in a transaction of its own:
-- a worker that is not the campaign's first (its slot, engine.c) writes
-- the audience this way before it sends, while the first sends, on the
-- other connection and CPU; the claims write a slice only when all that is
-- written is taken. True when nothing is left to write (or the campaign no
-- longer sends); a campaign with nobody (else) to send to is finished here.
create function sending.materialise_more(p_campaign uuid, p_limit integer)
returns boolean
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    c public.campaigns%rowtype;
begin
    select * into c from public.campaigns where id = p_campaign for update;
    if not found or c.materialised_at is not null or c.status <> 'sending' then
        return true;
    end if;
    if sending.materialise_slice(p_campaign, greatest(1, least(p_limit, 100000))) then
        perform sending.finish_if_done(p_campaign);
        return true;
    end if;
    return false;
end
$$;
revoke all on function sending.materialise_more(uuid, integer) from public;
grant execute on function sending.materialise_more(uuid, integer) to service_role;

-- A worker's first look: the first slice, so that the first claim finds
-- messages at once; a campaign with nobody (else) to send to is finished
-- here, as before.
create or replace function sending.ensure_materialised(p_campaign uuid)
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
begin
    perform sending.materialise_more(p_campaign, 500);
end
$$;

-- Unfinished while its materialisation is (075's rule otherwise).
create or replace function sending.unfinished(p_campaign uuid)
returns boolean
language plpgsql stable
security definer
set search_path = ''
as $$
begin
    return exists (select 1 from public.email_messages m where m.campaign_id = p_campaign
                   and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null)))
        or exists (select 1 from public.email_messages m where m.campaign_id = p_campaign
                   and m.status = 'sending')
        or exists (select 1 from public.sms_messages m where m.campaign_id = p_campaign
                   and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null)))
        or exists (select 1 from public.sms_messages m where m.campaign_id = p_campaign
                   and m.status = 'sending')
        or exists (select 1 from sending.holds h where h.campaign_id = p_campaign
                   and pg_catalog.cardinality(h.ids) > 0)
        or exists (select 1 from public.campaigns c where c.id = p_campaign
                   and c.materialised_at is null);
end
$$;

-- The claim (080's) writes the next slice of a campaign not wholly
-- materialised before it looks for due messages, and more while none is due.
create or replace function sending.claim(p_channel text, p_campaign uuid, p_claim uuid, p_limit integer,
                                         p_lease_seconds integer)
returns table (id uuid, recipient text, contact jsonb)
language plpgsql volatile
security definer
set search_path = ''
set campaignd.engine_batch = 'on'
-- one plan per statement and backend, kept (see 068's header)
set plan_cache_mode = 'force_generic_plan'
as $$
declare
    v_ids uuid[];
    v_rcpt text[];
    v_contacts jsonb[];
    v_grant integer;
    v_app_opens timestamptz;
    v_held uuid[];
    v_partial boolean;
    v_seen bigint;
begin
    select k.materialised_at is null into v_partial from public.campaigns k
    where k.id = p_campaign and k.status = 'sending' and k.deleted_at is null
      and k.type = p_channel
    for update;
    if not found then
        return;
    end if;
    perform sending.recover(p_campaign);
    -- what the campaign's holds hold (claimed, in flight), read once: claims
    -- of a campaign wait for each other (its row lock above), and a step or
    -- a settle moves an id between holds or out of them together with its
    -- message's status, in one transaction
    v_held := array(select u.id from sending.holds h cross join lateral pg_catalog.unnest(h.ids) as u(id)
                    where h.campaign_id = p_campaign);
    -- when the window opens in the application's time zone (null: open now),
    -- once per claim: sending.sms_window_opens of a contact without a time
    -- zone of its own (or of no contact) answers exactly this
    if p_channel = 'sms' then
        v_app_opens := sending.sms_window_opens(null);
    end if;
    -- a campaign not wholly materialised whose written messages are all
    -- taken: the next slice of its audience (082), until something is due
    loop
        -- the due messages; SMS in the recipient's quiet hours wait for the
        -- window, as a temporary failure does (wait runs whether read or not).
        -- The held ones are skipped by a hashed NOT IN (one hash per claim).
        with due as materialized (
            select d.id, d.recipient, k.found, k.first_name, k.last_name, k.email, k.phone, k.attributes,
                   case when p_channel <> 'sms' then null
                        when k.tz is null then v_app_opens
                        else sending.sms_window_opens(d.contact_id) end as opens
            -- each branch in the claim index's order with its own LIMIT: the
            -- first due rows, not all of them sorted (O(recipients) per claim)
            from ((select m.id, m.recipient::text, m.contact_id, m.next_attempt_at
                   from public.email_messages m
                   where p_channel = 'email' and m.campaign_id = p_campaign
                     and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
                     and m.next_attempt_at <= pg_catalog.now()
                     and m.id not in (select pg_catalog.unnest(v_held))
                   order by m.next_attempt_at limit p_limit)
                  union all
                  (select m.id, m.recipient::text, m.contact_id, m.next_attempt_at
                   from public.sms_messages m
                   where p_channel = 'sms' and m.campaign_id = p_campaign
                     and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
                     and m.next_attempt_at <= pg_catalog.now()
                     and m.id not in (select pg_catalog.unnest(v_held))
                   order by m.next_attempt_at limit p_limit)
                  order by 4 limit p_limit) d
            -- the contact's row, read once per message (its time zone here, what
            -- the templates use below); OFFSET 0: a probe of the primary key per
            -- message, as before, whatever the plan thinks of the table's size
            left join lateral (
                select true as found, k.first_name, k.last_name, k.email, k.phone, k.attributes,
                       nullif(k.attributes ->> 'timezone', '') as tz
                from public.contacts k where k.id = d.contact_id
                offset 0) k on true),
        wait as (
            update public.sms_messages m set next_attempt_at = due.opens
            from due where due.opens is not null and m.id = due.id
            returning m.id)
        -- what the templates read, built here (one object per message): the
        -- contact's fields ({} without a contact) and, for SMS, whether anything
        -- was sent to the number before (for "Reply STOP")
        select pg_catalog.array_agg(due.id order by due.id) filter (where due.opens is null),
               pg_catalog.array_agg(due.recipient order by due.id) filter (where due.opens is null),
               pg_catalog.array_agg(case
                   when p_channel = 'sms' and due.found is null then pg_catalog.jsonb_build_object(
                       'first_to_number', not exists (
                           select 1 from public.sms_messages o
                           where o.recipient = due.recipient and o.id <> due.id and o.message_sid is not null))
                   when p_channel = 'sms' then pg_catalog.jsonb_build_object(
                       'first_name', due.first_name, 'last_name', due.last_name,
                       'email', due.email, 'phone', due.phone, 'attributes', due.attributes,
                       'first_to_number', not exists (
                           select 1 from public.sms_messages o
                           where o.recipient = due.recipient and o.id <> due.id and o.message_sid is not null))
                   when due.found is null then '{}'::jsonb
                   else pg_catalog.jsonb_build_object(
                       'first_name', due.first_name, 'last_name', due.last_name,
                       'email', due.email, 'phone', due.phone, 'attributes', due.attributes)
                   end order by due.id) filter (where due.opens is null),
               count(*)
        into v_ids, v_rcpt, v_contacts, v_seen
        from due;
        -- (due but waiting for the window, quiet hours: the rest of the
        -- audience waits too, for the claims after it)
        exit when v_ids is not null or v_seen > 0 or not v_partial;
        v_partial := not sending.materialise_slice(p_campaign, greatest(p_limit * 2, 500));
    end loop;
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
    insert into sending.holds (campaign_id, claim, channel, in_flight, lease_until, ids)
    values (p_campaign, p_claim, p_channel, false,
            pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds), v_ids);
    return query
    select d.id, d.recipient, d.contact
    from rows from (pg_catalog.unnest(v_ids), pg_catalog.unnest(v_rcpt[1:v_grant]),
                   pg_catalog.unnest(v_contacts[1:v_grant])) as d(id, recipient, contact)
    order by d.id;
end
$$;

-- Resumes a paused campaign (027's): one whose materialisation had begun
-- goes on sending (its claims write the rest of its audience), as a
-- materialised one does; only one that never began starts again.
create or replace function sending.resume(p_campaign uuid, p_workers integer)
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    c public.campaigns%rowtype;
    v_begun boolean;
begin
    select * into c from public.campaigns where id = p_campaign and deleted_at is null for update;
    if not found then
        raise exception 'campaign not found' using errcode = 'P0002';
    end if;
    if c.status <> 'paused' then
        raise exception 'a % campaign cannot be resumed', c.status using errcode = '55000';
    end if;
    v_begun := c.materialised_at is not null
               or exists (select 1 from sending.materialising m where m.campaign_id = p_campaign);
    if not v_begun and c.scheduled_date > pg_catalog.now() then
        update public.campaigns set status = 'scheduled', pause_reason = null where id = p_campaign;
    elsif not v_begun then
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
