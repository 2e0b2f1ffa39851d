-- 075_send_group_holds.sql: one hold row per claim and per in-flight group
-- instead of one lease row per message (issue 12, speed; bench/RESULTS.md
-- "send-group").
--
-- Until now every message of a send wrote sending.leases three times: the
-- claim inserted its row (two index entries), the step marked it in flight
-- (a heap-only update), the settle deleted it; the claim's due scan probed
-- the lease's primary key for every candidate, the step and the settle once
-- per message. About 460 bytes of WAL and three row writes per message.
--
--   sending.holds (new) a row per claim and per group:
--       a claim's reservation (in_flight false): the ids it claimed that no
--           step has taken yet. Inserted by the claim, its ids shrunk by each
--           step (a heap-only update: nothing indexed changes), deleted by
--           the batch's end (what is left is given back).
--       a group (in_flight true): the ids one step put in flight, with their
--           tracked links (a jsonb array parallel to ids). Inserted by the
--           step in the transaction that commits the hand-off, deleted by
--           the settle of its results. If a settle brings the results of
--           only part of a group, the rest stays held (a new row with the
--           same lease), never claimable again.
--   Expiry (sending.recover): an expired group's ids become `unknown` (counted
--   on the campaign, never resent), an expired reservation's ids are free
--   again and their monthly reservation is given back: the same rules as the
--   per-message leases, applied per row.
--   sending.leases      now a view of the holds, one row per held message
--       (same columns), for the tests and whoever looks at a send by hand.
--   sending.claim       excludes what any hold of the campaign holds with
--       one hashed NOT IN over the held ids (read once per claim, under the
--       campaign's row lock that serialises claims), not a probe per
--       candidate; writes one reservation row.
--   sending.step        locks its claim's reservation row, takes the group's
--       ids out of it (what may go, and what is dropped before sending) and
--       inserts the group row; what the lock found is what may go, so a
--       reservation that a recovery took away meanwhile sends nothing.
--   sending.settle      deletes the groups its results belong to (one
--       statement with the messages' update, as before).
--   sending.end_batch, sending.unfinished, sending.finish_if_done,
--   sending.cancel      read or delete the holds instead of the leases.
-- Same guarantees: exactly once (a message is held from its claim to its
-- settle, in one row or another, every move inside one transaction), unknown
-- for what was in flight at a kill, consent checked in the step before each
-- group, monthly reservations given back for what never went.
-- Applied once, inside one transaction, by the database owner.

create table sending.holds (
    campaign_id uuid not null,
    claim uuid not null,
    channel text not null constraint holds_channel_valid check (channel in ('email', 'sms')),
    in_flight boolean not null,
    lease_until timestamptz not null,
    ids uuid[] not null,
    -- a group's tracked links, parallel to ids (null: none for any)
    links jsonb
);
comment on table sending.holds is
    'What a worker holds: per claim its reservation (in_flight false: the claimed ids no step has taken yet; the lease may simply run out) and per group the ids handed to the provider right now (in_flight true: unknown if the lease runs out).';
-- every reader selects a campaign's holds (at most a few live rows per
-- worker), the step, the settle and the batch's end those of one claim: with
-- the claim in the key they skip the other claims' rows, dead ones included
-- (a group row per step is inserted and deleted)
create index holds_campaign on sending.holds (campaign_id, claim);
-- room on the page for a reservation's new version (its ids shrink per step)
alter table sending.holds set (fillfactor = 50);
revoke all on sending.holds from public;
grant select on sending.holds to service_role;

-- Several processes may share the database (docs/operations.md): one that
-- starts with this migration while an older one sends. Its steps and settles
-- write sending.leases under row locks that the two reads below would not
-- wait for, each read with its own snapshot: a message marked in flight
-- between them was converted twice, one marked after them not at all (its
-- settle then matched no group and it was claimed again: sent twice). The
-- table's strongest lock waits for the older process's statements in
-- progress; its later ones fail on the dropped table and their messages run
-- out into `unknown`, as at a kill. (Review of 075.)
lock table sending.leases in access exclusive mode;

-- leases held when this migration runs (a send interrupted by the upgrade):
-- a claim's reserved ones one reservation (its earliest lease), each one in
-- flight a group of its own (its lease, its links)
insert into sending.holds (campaign_id, claim, channel, in_flight, lease_until, ids)
select l.campaign_id, l.claim, min(l.channel), false, min(l.lease_until), array_agg(l.message_id)
from sending.leases l where not l.in_flight
group by l.campaign_id, l.claim;
insert into sending.holds (campaign_id, claim, channel, in_flight, lease_until, ids, links)
select l.campaign_id, l.claim, l.channel, true, l.lease_until, array[l.message_id],
       case when l.links is not null then pg_catalog.jsonb_build_array(l.links) end
from sending.leases l where l.in_flight;
drop table sending.leases;

create view sending.leases as
select u.message_id, h.channel, h.campaign_id, h.claim, h.in_flight, h.lease_until,
       case when h.links is not null then nullif(h.links -> (u.ord::integer - 1), 'null'::jsonb) end as links
from sending.holds h
cross join lateral pg_catalog.unnest(h.ids) with ordinality as u(message_id, ord);
comment on view sending.leases is
    'The held messages one per row (sending.holds unnested): claimed (in_flight false) or in flight (true).';
revoke all on sending.leases from public;
grant select on sending.leases to service_role;

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
    -- only the expired rows no transaction holds: a locked one belongs to a
    -- live worker (its step or settle is running), and waiting for it while
    -- that step waits for a row this recovery deleted first, or for the
    -- campaign row the claim that called it holds, was a deadlock (review)
    with gone as (
        delete from sending.holds h
        where h.ctid = any (array(
            select k.ctid from sending.holds k
            where k.campaign_id = p_campaign and k.lease_until < pg_catalog.now()
            for update skip locked))
        returning h.channel, h.in_flight, h.ids, h.links),
    g as materialized (
        select gone.channel, gone.in_flight, u.id,
               case when gone.links is not null
                    then nullif(gone.links -> (u.ord::integer - 1), 'null'::jsonb) end as links
        from gone cross join lateral pg_catalog.unnest(gone.ids) with ordinality as u(id, ord)),
    e as (
        update public.email_messages m set status = 'unknown', attempts = m.attempts + 1,
            links = coalesce(g.links, m.links), last_error = v_why
        -- a message already settled (a stale hold) is neither changed nor counted
        from g where g.in_flight and g.channel = 'email' and m.id = g.id
          and m.status in ('queued', 'sending')
        returning m.id),
    s as (
        update public.sms_messages m set status = 'unknown', attempts = m.attempts + 1,
            last_error = v_why
        from g where g.in_flight and g.channel = 'sms' and m.id = g.id
          and m.status in ('queued', 'sending')
        returning m.id)
    select (select pg_catalog.array_agg(x.id) from (select e.id from e union all select s.id from s) x),
           (select count(*)::integer from g where not g.in_flight),
           (select min(g.channel) from g)
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
    v_contacts uuid[];
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
        select d.id, d.recipient, d.contact_id,
               case when p_channel <> 'sms' then null
                    when (select nullif(k.attributes ->> 'timezone', '') from public.contacts k
                          where k.id = d.contact_id) is null then v_app_opens
                    else sending.sms_window_opens(d.contact_id) end as opens
        -- each branch in the claim index's order with its own LIMIT: the
        -- first due rows, not all of them sorted (O(recipients) per claim)
        from ((select m.id, m.recipient::text, m.contact_id, m.next_attempt_at from public.email_messages m
              where p_channel = 'email' and m.campaign_id = p_campaign
                and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
                and m.next_attempt_at <= pg_catalog.now()
                and m.id not in (select pg_catalog.unnest(v_held))
              order by m.next_attempt_at limit p_limit)
              union all
              (select m.id, m.recipient::text, m.contact_id, m.next_attempt_at from public.sms_messages m
              where p_channel = 'sms' and m.campaign_id = p_campaign
                and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
                and m.next_attempt_at <= pg_catalog.now()
                and m.id not in (select pg_catalog.unnest(v_held))
              order by m.next_attempt_at limit p_limit)
              order by 4 limit p_limit) d),
    wait as (
        update public.sms_messages m set next_attempt_at = due.opens
        from due where due.opens is not null and m.id = due.id
        returning m.id)
    select pg_catalog.array_agg(due.id order by due.id),
           pg_catalog.array_agg(due.recipient order by due.id),
           pg_catalog.array_agg(due.contact_id order by due.id)
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
    select d.id, d.recipient, coalesce((
        select pg_catalog.jsonb_build_object(
            'first_name', k.first_name, 'last_name', k.last_name, 'email', k.email,
            'phone', k.phone, 'attributes', k.attributes)
        from public.contacts k where k.id = d.contact_id), '{}'::jsonb)
        || case when p_channel = 'sms' then pg_catalog.jsonb_build_object('first_to_number',
               not exists (select 1 from public.sms_messages o
                           where o.recipient = d.recipient and o.id <> d.id and o.message_sid is not null))
           else '{}'::jsonb end
    from rows from (pg_catalog.unnest(v_ids), pg_catalog.unnest(v_rcpt[1:v_grant]),
                   pg_catalog.unnest(v_contacts[1:v_grant])) as d(id, recipient, contact_id)
    order by d.id;
end
$$;

create or replace function sending.step(p_channel text, p_campaign uuid, p_claim uuid, p_done jsonb,
                             p_next uuid[], p_links jsonb, p_batch uuid[], p_max_attempts integer,
                             p_backoff_seconds integer, p_lease_seconds integer,
                             out status text, out go uuid[])
language plpgsql volatile
security definer
set search_path = ''
set campaignd.engine_batch = 'on'
-- one plan per statement and backend, kept (see 068's header)
set plan_cache_mode = 'force_generic_plan'
as $$
declare
    v_res uuid[];
    v_dropped uuid[];
begin
    select c.status into step.status from public.campaigns c
    where c.id = p_campaign and c.deleted_at is null;
    if coalesce(pg_catalog.cardinality(p_next), 0) > 0 and step.status = 'sending' then
        -- the claim's reservation, locked: what it still holds may go. A
        -- recovery that deleted it (expired) leaves nothing here; one that
        -- comes later waits for this transaction and finds the rest.
        v_res := array(
            select u.id
            from (select h.ids from sending.holds h
                  where h.campaign_id = p_campaign and h.claim = p_claim and not h.in_flight
                  for update) r
            cross join lateral pg_catalog.unnest(r.ids) as u(id));
        -- each id looked up by primary key (a lateral, correlated lookup).
        -- MATERIALIZED: ok's status test must not be pushed into the lookup,
        -- where it matches the claim index's predicate and a plan made while
        -- the table looked empty scanned that index for every id
        with n as materialized (
            select x.id, x.ord, m.recipient, m.mstatus, m.mlease
            from pg_catalog.unnest(p_next) with ordinality as x(id, ord)
            cross join lateral (
                select e.recipient::text as recipient, e.status as mstatus, e.lease_until as mlease
                from public.email_messages e where p_channel = 'email' and e.id = x.id
                union all
                select s.recipient::text, s.status, s.lease_until
                from public.sms_messages s where p_channel = 'sms' and s.id = x.id) m
            where x.id = any (v_res)),
        ok as materialized (
            -- sending.allowed's rule (041, 052) written into the statement
            select n.id, n.ord, n.recipient,
                   n.recipient is not null
                   and case p_channel
                       when 'email' then not exists (
                           select 1 from public.email_subscriptions s
                           where s.email = n.recipient and not s.subscribed)
                       else exists (
                           select 1 from public.sms_consent s
                           where s.phone_number = n.recipient and s.consent_given) end
                   and not exists (
                       select 1 from public.suppressions x
                       where x.channel = p_channel
                         and x.address = case p_channel
                             when 'email' then pg_catalog.lower(pg_catalog.btrim(n.recipient))
                             else pg_catalog.btrim(n.recipient) end) as allowed
            from n where n.mstatus = 'queued' or (n.mstatus = 'sending' and n.mlease is null)),
        -- out of the reservation (a heap-only update: ids is not indexed)
        taken as (
            update sending.holds h set ids = array(
                select u.id from pg_catalog.unnest(h.ids) as u(id)
                where not (u.id = any (array(select ok.id from ok))))
            where h.campaign_id = p_campaign and h.claim = p_claim and not h.in_flight
              and exists (select 1 from ok)
            returning 1),
        -- into a group: what goes, with its links
        flying as (
            insert into sending.holds (campaign_id, claim, channel, in_flight, lease_until, ids, links)
            select p_campaign, p_claim, p_channel, true,
                   pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds),
                   pg_catalog.array_agg(ok.id order by ok.ord),
                   case when p_links is not null then pg_catalog.jsonb_agg(
                       coalesce(p_links -> (ok.ord::integer - 1), 'null'::jsonb) order by ok.ord) end
            from ok where ok.allowed
            having count(*) > 0
            returning holds.ids)
        select (select f.ids from flying f),
               (select pg_catalog.array_agg(ok.id order by ok.ord) from ok where not ok.allowed)
        into step.go, v_dropped;
        -- what is dropped before sending (rare): a group of its own, settled
        -- as dropped right away; an INSERT of its own so that the step's
        -- statement above does not prepare one at every call
        if v_dropped is not null then
            insert into sending.holds (campaign_id, claim, channel, in_flight, lease_until, ids)
            values (p_campaign, p_claim, p_channel, true,
                    pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds), v_dropped);
            perform sending.settle(p_channel, p_campaign, p_claim,
                (select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('id', d, 'outcome', 'dropped',
                     'error', case p_channel when 'email' then 'unsubscribed or suppressed before sending'
                                             else 'opted out or suppressed before sending' end))
                 from pg_catalog.unnest(v_dropped) d),
                p_max_attempts, p_backoff_seconds);
        end if;
    end if;
    -- the previous group's results after the next group's mark (one
    -- transaction: the same outcome), so that the campaign's progress row,
    -- which every worker's settle updates, stays locked for the end of the
    -- step only, not for its lookups
    if p_done is not null and pg_catalog.jsonb_array_length(p_done) > 0 then
        perform sending.settle(p_channel, p_campaign, p_claim, p_done, p_max_attempts,
                               p_backoff_seconds);
    end if;
    if p_batch is not null then
        perform sending.publish_progress(p_campaign, true);
        perform sending.end_batch(p_channel, p_campaign, p_claim, p_batch);
        step.status := sending.finish(p_campaign);
    end if;
    -- a campaign that no longer sends (sent, cancelled, paused): what this
    -- session and idle ones counted on their parts goes into its row
    if step.status is distinct from 'sending' then
        perform sending.fold_progress(p_campaign);
    end if;
end
$$;

create or replace function sending.settle(p_channel text, p_campaign uuid, p_claim uuid, p_done jsonb,
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
    v_sent integer;
    v_failed integer;
    v_dropped integer;
    v_rest uuid[];
    v_rest_links jsonb;
    v_rest_until timestamptz;
begin
    -- one statement per channel: a statement naming both message tables
    -- opened and locked both, with their indexes, at every settle. Only
    -- results of this claim's groups in flight settle (deleting the group
    -- is what makes a result count: a recovery that came first made it
    -- unknown); what a group holds without a result here stays held (below).
    if p_channel = 'email' then
        with x as materialized (
            select * from pg_catalog.jsonb_to_recordset(p_done)
                as x(id uuid, outcome text, provider_id text, sid text, segments integer,
                     cost numeric, body text, error text)),
        gone as (
            delete from sending.holds h
            where h.campaign_id = p_campaign and h.claim = p_claim and h.in_flight
              and h.ids && array(select x.id from x)
            returning h.ids, h.links, h.lease_until),
        g as materialized (
            select u.id, gone.lease_until,
                   case when gone.links is not null
                        then nullif(gone.links -> (u.ord::integer - 1), 'null'::jsonb) end as links
            from gone cross join lateral pg_catalog.unnest(gone.ids) with ordinality as u(id, ord)),
        r as (
            select x.*, g.links from g join x on x.id = g.id),
        e as (
            update public.email_messages m set
                status = sending.settled_status('email', r.outcome, m.status, m.attempts + 1, p_max_attempts),
                updated_at = pg_catalog.now(),
                attempts = m.attempts + 1,
                sent_at = case when r.outcome = 'accepted' then pg_catalog.now() else m.sent_at end,
                message_id = case when r.outcome = 'accepted' then nullif(r.provider_id, '') else m.message_id end,
                next_attempt_at = case when r.outcome = 'tempfail'
                    then sending.retry_at(m.attempts + 1, p_backoff_seconds) else m.next_attempt_at end,
                last_error = nullif(pg_catalog.left(r.error, 500), ''),
                links = coalesce(r.links, m.links)
            from r where m.id = r.id
            returning r.outcome, m.status)
        select count(*) filter (where o.outcome = 'unknown'),
               count(*) filter (where o.outcome not in ('accepted', 'unknown')),
               -- accepted: handed over, whatever status a webhook that came
               -- first left (forward_only keeps a later status)
               count(*) filter (where o.outcome = 'accepted'),
               count(*) filter (where o.status = 'failed'),
               count(*) filter (where o.status in ('dropped', 'canceled')),
               -- what the deleted groups held without a result here
               (select pg_catalog.array_agg(g.id order by g.id) from g
                where not exists (select 1 from x where x.id = g.id)),
               (select pg_catalog.jsonb_agg(coalesce(g.links, 'null'::jsonb) order by g.id) from g
                where not exists (select 1 from x where x.id = g.id)),
               (select min(g.lease_until) from g)
        into v_unknown, v_unsent, v_sent, v_failed, v_dropped, v_rest, v_rest_links, v_rest_until
        from e o;
    else
        with x as materialized (
            select * from pg_catalog.jsonb_to_recordset(p_done)
                as x(id uuid, outcome text, provider_id text, sid text, segments integer,
                     cost numeric, body text, error text)),
        gone as (
            delete from sending.holds h
            where h.campaign_id = p_campaign and h.claim = p_claim and h.in_flight
              and h.ids && array(select x.id from x)
            returning h.ids, h.lease_until),
        g as materialized (
            select u.id, gone.lease_until
            from gone cross join lateral pg_catalog.unnest(gone.ids) as u(id)),
        r as (
            select x.* from g join x on x.id = g.id),
        s as (
            update public.sms_messages m set
                status = sending.settled_status('sms', r.outcome, m.status, m.attempts + 1, p_max_attempts),
                updated_at = pg_catalog.now(),
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
            from r where m.id = r.id
            returning r.outcome, m.status)
        select count(*) filter (where o.outcome = 'unknown'),
               count(*) filter (where o.outcome not in ('accepted', 'unknown')),
               -- accepted: handed over, whatever status a webhook that came
               -- first left (forward_only keeps a later status)
               count(*) filter (where o.outcome = 'accepted'),
               count(*) filter (where o.status = 'failed'),
               count(*) filter (where o.status in ('dropped', 'canceled')),
               (select pg_catalog.array_agg(g.id order by g.id) from g
                where not exists (select 1 from x where x.id = g.id)),
               (select min(g.lease_until) from g)
        into v_unknown, v_unsent, v_sent, v_failed, v_dropped, v_rest, v_rest_until
        from s o;
    end if;
    -- a group with results for part of its ids (rare): the rest stays held,
    -- in flight, with the group's lease (an INSERT of its own so that the
    -- settle's statement does not prepare one at every call)
    if v_rest is not null then
        insert into sending.holds (campaign_id, claim, channel, in_flight, lease_until, ids, links)
        values (p_campaign, p_claim, p_channel, true, v_rest_until, v_rest, v_rest_links);
    end if;
    if v_unsent > 0 then
        perform sending.release(p_channel, v_unsent);
    end if;
    if v_unknown > 0 then
        update public.campaigns set unknown_count = unknown_count + v_unknown where id = p_campaign;
    end if;
    if v_sent > 0 or v_failed > 0 or v_dropped > 0 then
        perform sending.count_progress(p_campaign, v_sent, v_failed, v_dropped);
    end if;
end
$$;

create or replace function sending.end_batch(p_channel text, p_campaign uuid, p_claim uuid, p_batch uuid[])
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_left integer;
begin
    -- the claim's reservation: what no step took is given back
    with gone as (
        delete from sending.holds h
        where h.campaign_id = p_campaign and h.claim = p_claim and not h.in_flight
        returning pg_catalog.cardinality(h.ids) as n)
    select coalesce(sum(gone.n), 0)::integer into v_left from gone;
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
                   and pg_catalog.cardinality(h.ids) > 0);
end
$$;

create or replace function sending.finish_if_done(p_campaign uuid, out status text, out next_retry timestamptz)
language plpgsql volatile
security definer
set search_path = ''
as $$
begin
    finish_if_done.status := sending.finish(p_campaign);
    select min(x.at) into next_retry
    from (select min(h.lease_until) + interval '1 second' as at from sending.holds h
          where h.campaign_id = p_campaign and pg_catalog.cardinality(h.ids) > 0
          union all
          select min(coalesce(m.lease_until + interval '1 second', m.next_attempt_at))
          from public.email_messages m
          where m.campaign_id = p_campaign and (m.status = 'queued' or (m.status = 'sending'))
          union all
          select min(coalesce(m.lease_until + interval '1 second', m.next_attempt_at))
          from public.sms_messages m
          where m.campaign_id = p_campaign and (m.status = 'queued' or (m.status = 'sending'))) x;
end
$$;

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
    n_sms integer;
    v_flying uuid[];
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
    -- what is in flight now settles as its provider answers
    v_flying := array(select u.id from sending.holds h cross join lateral pg_catalog.unnest(h.ids) as u(id)
                      where h.campaign_id = p_campaign and h.in_flight);
    update public.email_messages m set status = 'dropped', last_error = 'campaign cancelled'
    where m.campaign_id = p_campaign
      and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
      and m.id not in (select pg_catalog.unnest(v_flying));
    get diagnostics n = row_count;
    update public.sms_messages m set status = 'canceled', last_error = 'campaign cancelled'
    where m.campaign_id = p_campaign
      and (m.status = 'queued' or (m.status = 'sending' and m.lease_until is null))
      and m.id not in (select pg_catalog.unnest(v_flying));
    get diagnostics n_sms = row_count;
    if n + n_sms > 0 then
        perform sending.count_progress(p_campaign, 0, 0, n + n_sms);
        perform sending.publish_progress(p_campaign, true);
    end if;
    perform sending.fold_progress(p_campaign);
    perform sending.audit_batch(case c.type when 'sms' then 'sms' else 'email' end, p_campaign,
        pg_catalog.jsonb_build_object('event', 'cancelled', 'dropped', n + n_sms));
    return pg_catalog.to_jsonb(c);
end
$$;
