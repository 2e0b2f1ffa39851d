-- 052_send_step_lookups.sql: the send engine's per-message database work,
-- cut (issue 12, speed; bench/RESULTS.md "send-fast2"). A perf profile of the
-- engine's backends during a 3,000-message send (after the role prelude went,
-- src/sending/engine.c) put
--   * ~14 % in fmgr_sql: LANGUAGE sql functions that PostgreSQL does not
--     inline, so it parses and plans them again on every call. One of them
--     is public.message_status_rank (026, immutable, but with SET
--     search_path), called twice per message-row update by the forward_only
--     trigger and by every webhook (pgTAP profile: ~10 us a call);
--   * ~13 % in hash builds inside sending.step (its InitPlans): the lookup
--     of the next message joined unnest(p_next) to a seq scan of
--     sending.leases (a small table, but with a dead tuple per update and
--     delete, i.e. per message) through a hash, once per message.
--
--   public.message_status_rank   its SET search_path goes (RESET ALL): the
--                                body names nothing (one CASE over its
--                                arguments), so no search_path can change
--                                what it does; immutable SQL without SET is
--                                inlined into its callers' expressions.
--   sending.step (041)           the same function, with the next messages
--                                looked up by primary key (a lateral,
--                                correlated lookup) instead of hash joins.
--                                Same rules, same results, same privileges
--                                (CREATE OR REPLACE keeps 041's grants).
--   sending.allowed (041)        consent and suppression, once per message
--                                in the step and per recipient when
--                                materialising: a LANGUAGE sql function with
--                                EXISTS sublinks, which PostgreSQL never
--                                inlines, so fmgr_sql parsed and planned it
--                                for every step. Now PL/pgSQL: its three
--                                lookups are planned once per backend. Same
--                                answers; still neither SECURITY DEFINER nor
--                                SET (every name qualified; it runs with its
--                                caller's rights, as before).
-- Applied once, inside one transaction, by the database owner.

alter function public.message_status_rank(text, text) reset all;

create or replace function sending.allowed(p_channel text, p_address text)
returns boolean
language plpgsql stable
as $$
begin
    if p_address is null then
        return false;
    end if;
    if p_channel = 'email' then
        if exists (select 1 from public.email_subscriptions s
                   where s.email = p_address and not s.subscribed) then
            return false;
        end if;
    elsif not exists (select 1 from public.sms_consent s
                      where s.phone_number = p_address and s.consent_given) then
        return false;
    end if;
    return not exists (
        select 1 from public.suppressions x
        where x.channel = p_channel
          and x.address = case p_channel when 'email' then pg_catalog.lower(pg_catalog.btrim(p_address))
                                         else pg_catalog.btrim(p_address) end);
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
        -- each id looked up by primary key (a lateral, correlated lookup), never
        -- a hash of a seq scan of sending.leases or of the message table
        with n as (
            select x.id, x.ord, m.recipient, m.mstatus, m.mlease
            from pg_catalog.unnest(p_next) with ordinality as x(id, ord)
            cross join lateral (
                select e.recipient::text as recipient, e.status as mstatus, e.lease_until as mlease
                from public.email_messages e where p_channel = 'email' and e.id = x.id
                union all
                select s.recipient::text, s.status, s.lease_until
                from public.sms_messages s where p_channel = 'sms' and s.id = x.id) m
            where exists (select 1 from sending.leases l
                          where l.message_id = x.id and l.claim = p_claim and not l.in_flight)),
        ok as (
            select n.id, n.ord, n.recipient,
                   sending.allowed(p_channel, n.recipient) as allowed
            from n where n.mstatus = 'queued' or (n.mstatus = 'sending' and n.mlease is null)),
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

