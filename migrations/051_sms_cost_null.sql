-- 051_sms_cost_null.sql: an SMS Twilio has not priced yet has no cost
-- (NULL), a free one costs 0 (issue 12, "segments and cost recorded"; see
-- docs/sending.md).
--
-- Until now the engine wrote 0 for a message whose create answer had no price
-- (Twilio's answer nearly always has "price": null) and 043 treated 0 as "not
-- priced yet": a free message could not be told from an unpriced one. From
-- now on the engine writes NULL (src/sending/engine.c sends "cost": null;
-- 041's sending.settle keeps coalesce(r.cost, m.cost)), and:
--
--   public.apply_twilio_status(..., price_retry_seconds)  (043)
--       queues the sms.price job for a final message whose cost IS NULL;
--   public.record_sms_price(...)  (043)
--       records a price once, over a NULL cost only: 0 is a price ('already_priced').
--
-- The 0s written before this migration were all "not priced yet" (043 could
-- not record anything else as 0 that it would not have fetched again): they
-- become NULL. Sums of cost (reports, the analytics roll-up) skip NULLs as
-- they did the 0s. Applied once, inside one transaction, by the database owner.

-- the engine's old placeholder: audited as one batch, not per row
set local campaignd.engine_batch = 'on';
update public.sms_messages set cost = null where cost = 0;
insert into public.audit_logs (action, resource_type, new_value, status, metadata)
values ('update', 'sms_messages', '{"event": "unpriced_cost_0_to_null"}', 'success',
        '{"role": "migration", "batch": true, "table": "public.sms_messages"}');
reset campaignd.engine_batch;

-- The status callback of 029 plus the price follow-up (043): a final status
-- of a message without a price (NULL) queues the price fetch.
create or replace function public.apply_twilio_status(p_message_id uuid, p_sid text, p_status text,
                                           p_error_code text, p_price_retry_seconds integer)
returns text
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_result text := public.apply_twilio_status(p_message_id, p_sid, p_status, p_error_code);
    v_id uuid;
    v_delay interval := pg_catalog.make_interval(
        secs => greatest(1, least(coalesce(p_price_retry_seconds, 60), 86400)));
begin
    if v_result <> 'applied' or p_status not in ('delivered', 'undelivered', 'failed') then
        return v_result;
    end if;
    select m.id into v_id from public.sms_messages m
    where m.message_sid = p_sid and m.cost is null;
    if v_id is not null then
        perform jobs.enqueue('sms.price', pg_catalog.jsonb_build_object('message_id', v_id),
                             pg_catalog.now() + v_delay, 'sms.price:' || v_id::text, 12, v_delay);
    end if;
    return v_result;
end
$$;

-- Records Twilio's price of a message once (043). p_price is Twilio's
-- decimal string ("-0.00750"); NULL or '' means not priced yet. Returns
-- 'recorded', 'pending' (no price yet: the job tries again later),
-- 'already_priced' (a cost is there, 0 included: a free message) or
-- 'unknown_message' (no message with that id and sid). A malformed price or
-- unit is 22023.
create or replace function public.record_sms_price(p_message_id uuid, p_sid text, p_price text,
                                        p_price_unit text)
returns text
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_row public.sms_messages;
begin
    select * into v_row from public.sms_messages m
    where m.id = p_message_id and m.message_sid = p_sid for update;
    if not found then
        return 'unknown_message';
    end if;
    if v_row.cost is not null then
        return 'already_priced';
    end if;
    if coalesce(p_price, '') = '' then
        return 'pending';
    end if;
    if p_price !~ '^-?[0-9]{1,6}(\.[0-9]{1,10})?$' then
        raise exception 'price % is not a decimal number',
            pg_catalog.quote_literal(pg_catalog.left(p_price, 40)) using errcode = '22023';
    end if;
    if p_price_unit is not null and p_price_unit !~ '^[A-Za-z]{3}$' then
        raise exception 'price_unit % is not a currency code',
            pg_catalog.quote_literal(pg_catalog.left(p_price_unit, 40)) using errcode = '22023';
    end if;
    update public.sms_messages m
    set cost = p_price::numeric, cost_currency = pg_catalog.upper(p_price_unit)
    where m.id = v_row.id;
    -- the analytics roll-up (028) counts it now, not at the next periodic one
    perform jobs.enqueue('send.rollup', '{}'::jsonb, pg_catalog.now(), 'send.rollup', 3,
                         '30 seconds');
    return 'recorded';
end
$$;

