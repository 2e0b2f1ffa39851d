-- tests/sql/043_sms_cost.sql: the price of an SMS (migrations/043_sms_cost.sql):
-- a final status callback queues one sms.price job per message (not for
-- sent, not twice, not when priced), public.record_sms_price() records cost
-- and currency once and refuses malformed values, and only the server may
-- call either.
BEGIN;
SELECT plan(22);

SELECT ok(NOT has_function_privilege('authenticated', 'public.record_sms_price(uuid, text, text, text)', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'public.record_sms_price(uuid, text, text, text)', 'EXECUTE')
          AND NOT has_function_privilege('authenticated', 'public.apply_twilio_status(uuid, text, text, text, integer)', 'EXECUTE')
          AND has_function_privilege('service_role', 'public.record_sms_price(uuid, text, text, text)', 'EXECUTE')
          AND has_function_privilege('service_role', 'public.apply_twilio_status(uuid, text, text, text, integer)', 'EXECUTE'),
          'only service_role records prices and applies callbacks');
SELECT is((SELECT count(*) FROM pg_proc p
           WHERE p.proname IN ('apply_twilio_status', 'record_sms_price')
             AND p.pronamespace = 'public'::regnamespace
             AND (NOT p.prosecdef OR NOT coalesce(p.proconfig @> ARRAY['search_path=""'], false))),
          0::bigint, 'SECURITY DEFINER with an empty search_path');
SELECT has_column('public', 'sms_messages', 'cost_currency', 'sms_messages.cost_currency exists');

SELECT tests.create_user('cost-alice@example.test', 'user') AS alice \gset
INSERT INTO public.campaigns (id, user_id, name, type) VALUES
    ('c0000000-0000-0000-0000-0000000043aa', :'alice', 'SMS priced', 'sms');
INSERT INTO public.sms_messages (id, campaign_id, recipient, message, status, message_sid, cost) VALUES
    ('a0000000-0000-0000-0000-000000004301', 'c0000000-0000-0000-0000-0000000043aa', '+15550004301', 'hi', 'sending', 'SM4301', NULL),
    ('a0000000-0000-0000-0000-000000004302', 'c0000000-0000-0000-0000-0000000043aa', '+15550004302', 'hi', 'sending', 'SM4302', 0),
    ('a0000000-0000-0000-0000-000000004303', 'c0000000-0000-0000-0000-0000000043aa', '+15550004303', 'hi', 'sending', 'SM4303', -0.0075);

SELECT tests.authenticate_as_service();

-- ---------------------------------------------------------------------------
-- A final status queues the price fetch
-- ---------------------------------------------------------------------------
SELECT is(public.apply_twilio_status('a0000000-0000-0000-0000-000000004301', 'SM4301', 'sent', NULL, 30),
          'applied', 'sent is applied');
SELECT tests.clear_authentication();
SELECT is((SELECT count(*) FROM jobs.jobs WHERE kind = 'sms.price'), 0::bigint, 'sent queues no price fetch');
SELECT tests.authenticate_as_service();
SELECT is(public.apply_twilio_status('a0000000-0000-0000-0000-000000004301', 'SM4301', 'delivered', NULL, 30),
          'applied', 'delivered is applied');
SELECT is(public.apply_twilio_status('a0000000-0000-0000-0000-000000004301', 'SM4301', 'delivered', NULL, 30),
          'ignored', 'a replayed delivered is ignored');
SELECT is(public.apply_twilio_status(NULL, 'SM4302', 'undelivered', '30003', 30),
          'applied', 'undelivered by sid alone is applied');
SELECT is(public.apply_twilio_status('a0000000-0000-0000-0000-000000004303', 'SM4303', 'delivered', NULL, 30),
          'applied', 'delivered of a message already priced');
SELECT tests.clear_authentication();
SELECT is((SELECT count(*) FROM jobs.jobs WHERE kind = 'sms.price'), 1::bigint,
          'one job per final message without a cost (NULL, 051): not for the replay, not for a free (0) or priced one');
SELECT is((SELECT payload ->> 'message_id' FROM jobs.jobs WHERE dedupe_key = 'sms.price:a0000000-0000-0000-0000-000000004301'),
          'a0000000-0000-0000-0000-000000004301', 'the job names its message');
SELECT ok((SELECT run_at > now() + interval '29 seconds' AND retry_delay = interval '30 seconds' AND max_attempts = 12
           FROM jobs.jobs WHERE dedupe_key = 'sms.price:a0000000-0000-0000-0000-000000004301'),
          'first run and back-off from price_retry_seconds, 12 tries');

-- ---------------------------------------------------------------------------
-- record_sms_price
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as_service();
SELECT is(public.record_sms_price('a0000000-0000-0000-0000-000000004301', 'SM4301', NULL, 'USD'), 'pending',
          'no price yet: pending');
SELECT is(public.record_sms_price('a0000000-0000-0000-0000-000000004301', 'SM4301', '', 'USD'), 'pending',
          'an empty price: pending');
SELECT is(public.record_sms_price('a0000000-0000-0000-0000-000000004301', 'SM9999', '-0.0079', 'USD'), 'unknown_message',
          'another sid names no message');
SELECT throws_ok($$SELECT public.record_sms_price('a0000000-0000-0000-0000-000000004301', 'SM4301', '1e9', 'USD')$$,
                 '22023', NULL, 'a price that is not a plain decimal is refused');
SELECT throws_ok($$SELECT public.record_sms_price('a0000000-0000-0000-0000-000000004301', 'SM4301', '-0.0079', 'US$')$$,
                 '22023', NULL, 'a unit that is not a currency code is refused');
SELECT is(public.record_sms_price('a0000000-0000-0000-0000-000000004301', 'SM4301', '-0.00790', 'usd'), 'recorded',
          'a price is recorded');
SELECT is(public.record_sms_price('a0000000-0000-0000-0000-000000004301', 'SM4301', '-1.00000', 'USD'), 'already_priced',
          'and only once');
SELECT tests.clear_authentication();
SELECT is((SELECT cost::text || ' ' || cost_currency FROM public.sms_messages
           WHERE id = 'a0000000-0000-0000-0000-000000004301'), '-0.0079 USD', 'cost and currency (upper case)');
SELECT ok(EXISTS (SELECT 1 FROM jobs.jobs WHERE kind = 'send.rollup' AND status = 'pending'),
          'a roll-up of analytics_data is queued');

SELECT tests.authenticate_as(:'alice');
SELECT throws_ok($$SELECT public.record_sms_price('a0000000-0000-0000-0000-000000004302', 'SM4302', '-5', 'USD')$$,
                 '42501', NULL, 'a user cannot set a price');

SELECT * FROM finish();
ROLLBACK;
