-- 080_send_pg_cpu.sql: PostgreSQL's CPU per message of a send (issue 12,
-- speed; bench/RESULTS.md "send-pg").
--
-- Where the database's CPU per SMS goes (the SQL path alone, one backend,
-- claims of 100, groups of 16; perf and pg_stat_statements, RESULTS.md):
-- about 30 µs per message is the step's fixed cost (~475 µs per step: the
-- executor's start of its statements, the commit's WAL flush, plan cache
-- checks, the CHECK constraints and trigger WHEN clauses read again by every
-- statement that writes a message row), the settle's UPDATE of the message
-- row about 20 µs, the claim about 16-20 µs, the rest the step's lookups
-- (message, consent, suppression) and the batch's end. The settle's update
-- not being heap-only is not where the time goes: the same update made
-- heap-only (status and the provider id out of the message table's indexes,
-- with a narrow queue table and a provider-id table written instead)
-- measured 17-20 µs per row against 20-22.
--
-- sending.claim built what the templates read with two lookups of the
-- contact per message (its time zone in the due scan, its fields in the
-- result) and two JSON objects joined per SMS (the contact's fields, then
-- first_to_number). Now the contact's row is read once, in the due scan, and
-- the object is built there in one call: the same objects (jsonb orders
-- keys itself), the same time-zone rule, one index probe and two JSON
-- operations fewer per message.
--
-- And sending.holds keeps its size (at the end: why).
-- Applied once, inside one transaction, by the database owner.

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
begin
    perform 1 from public.campaigns k
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
    select pg_catalog.array_agg(due.id order by due.id),
           pg_catalog.array_agg(due.recipient order by due.id),
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
               end order by due.id)
    into v_ids, v_rcpt, v_contacts
    from due where due.opens is null;
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

-- sending.holds stays at its largest size. Its rows come and go with every
-- step (a group inserted, then deleted by its settle), so between sends it
-- is empty, and a vacuum then truncated it to nothing. The engine's
-- statements keep one generic plan per connection (068), and a plan made
-- while the table is empty, or a few pages long, scans it whole: every step
-- then read all of the pages the send had grown it to (a page per ~20
-- messages until the next autovacuum made the plans again, up to a minute
-- later), three or four times (the reservation, the settle's delete, the
-- step's update, the batch's end). On the SQL path, 40,000 SMS after a send:
-- 99 buffers per message instead of 48, 110-126 µs of CPU instead of 92-93.
-- Kept at its size (never truncated) and at least 64 pages long, the table
-- costs a scan more than its index's probe, or than fetching the rows a
-- statement names by ctid (the batch's end, the finish, a recovery),
-- whatever it holds, so every plan takes the index or the ctids. 64 empty
-- pages are 512 kB.
alter table sending.holds set (vacuum_truncate = false);

-- Idempotent: the migration calls it once; after a restore into a new
-- cluster, a VACUUM FULL or a CLUSTER of sending.holds (which leave it small
-- again) an operator calls it once more (docs/operations.md).
create function sending.pad_holds()
returns integer
language plpgsql volatile
set search_path = ''
as $$
declare
    v_rows tid[] := '{}';
begin
    -- rows of no campaign, never visible outside this transaction, until the
    -- table has 64 pages (free space in it is used first)
    while pg_catalog.pg_relation_size('sending.holds') < 64 * 8192 loop
        with ins as (
            insert into sending.holds (campaign_id, claim, channel, in_flight, lease_until, ids)
            select '00000000-0000-0000-0000-000000000000', '00000000-0000-0000-0000-000000000000', 'sms',
                   false, pg_catalog.now(),
                   array(select '00000000-0000-0000-0000-000000000000'::uuid
                         from pg_catalog.generate_series(1, 100))
            from pg_catalog.generate_series(1, 8)
            returning ctid)
        select v_rows || pg_catalog.array_agg(ins.ctid) into v_rows from ins;
    end loop;
    -- exactly the rows inserted above (by their place: no one else sees
    -- them, so no one moves them; a real hold is never touched)
    delete from sending.holds h where h.ctid = any (v_rows);
    -- its statistics now (no live rows, 64 pages or more), as a vacuum would
    -- leave them: plans made before the first vacuum also probe the index (a
    -- table never analysed is estimated from its pages and rows' width: a
    -- bitmap scan for the campaign's holds, which never marks dead entries)
    analyze sending.holds;
    return (pg_catalog.pg_relation_size('sending.holds') / 8192)::integer;
end
$$;
revoke all on function sending.pad_holds() from public;
comment on function sending.pad_holds() is
    'Grows sending.holds back to 64 empty pages and analyses it, so the send engine''s cached plans read it by index (migration 080). Returns its pages. Run by the database owner after a restore or a VACUUM FULL of the table.';
select sending.pad_holds();
