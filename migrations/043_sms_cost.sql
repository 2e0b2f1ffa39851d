-- 043_sms_cost.sql: the price of every SMS, as Twilio bills it (issue 12,
-- "segments and cost recorded").
--
-- Twilio's answer to the create-Message call nearly always has `price: null`;
-- the price appears later on the Message resource (GET .../Messages/{sid}.json:
-- `price`, `price_unit`), never in a status callback. So:
--
--   public.apply_twilio_status(message, sid, status, error_code, price_retry_seconds)
--       the status callback of 029, and when it moves the message to a final
--       status (delivered, undelivered, failed) without a cost yet (NULL, or
--       the 0 the engine of 027 stores while Twilio has no price), one
--       `sms.price` job on the queue (020) for that message, first run and
--       base back-off = price_retry_seconds (SMS_PRICE_RETRY_SECONDS), at most
--       12 attempts, deduplicated per message. The webhook request itself
--       never talks to Twilio.
--   public.record_sms_price(message, sid, price, price_unit)
--       what the job found: the cost (Twilio's signed price, kept as given:
--       negative for money spent) and its currency, set once; then a roll-up
--       of analytics_data (028's `sms_cost`) is queued.
--
-- Column: sms_messages.cost_currency (ISO 4217, upper case). The campaign
-- report, the analytics roll-up and the reports of 032 already sum
-- abs(cost). Applied once, inside one transaction, by the database owner.

alter table public.sms_messages
    add column cost_currency varchar(3)
        constraint sms_messages_cost_currency_valid check (cost_currency ~ '^[A-Z]{3}$');
comment on column public.sms_messages.cost_currency is
    'Currency of cost (Twilio''s price_unit, ISO 4217); set with cost by public.record_sms_price.';

-- The status callback of 029 plus the price follow-up (see the header).
-- Returns what 029's function returns.
create function public.apply_twilio_status(p_message_id uuid, p_sid text, p_status text,
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
    where m.message_sid = p_sid and coalesce(m.cost, 0) = 0;
    if v_id is not null then
        perform jobs.enqueue('sms.price', pg_catalog.jsonb_build_object('message_id', v_id),
                             pg_catalog.now() + v_delay, 'sms.price:' || v_id::text, 12, v_delay);
    end if;
    return v_result;
end
$$;

-- Records Twilio's price of a message once. p_price is Twilio's decimal
-- string ("-0.00750"); NULL or '' means not priced yet. Returns 'recorded',
-- 'pending' (no price yet: the job tries again later), 'already_priced' (a
-- cost other than the engine's placeholder 0 is there) or
-- 'unknown_message' (no message with that id and sid). A malformed price or
-- unit is 22023.
create function public.record_sms_price(p_message_id uuid, p_sid text, p_price text,
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
    if coalesce(v_row.cost, 0) <> 0 then
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

revoke all on function public.apply_twilio_status(uuid, text, text, text, integer),
    public.record_sms_price(uuid, text, text, text) from public, anon, authenticated;
grant execute on function public.apply_twilio_status(uuid, text, text, text, integer),
    public.record_sms_price(uuid, text, text, text) to service_role;
