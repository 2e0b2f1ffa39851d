-- tests/sql/051_sms_cost_null.sql: migrations/051_sms_cost_null.sql — an SMS
-- Twilio has not priced yet has no cost (NULL), a free one costs 0: the
-- engine's settle keeps NULL, only NULL asks for a price, 0 is a price.
BEGIN;
SELECT plan(9);

SELECT tests.create_user('cost0-dave@example.test', 'user') AS dave \gset
INSERT INTO public.campaigns (id, user_id, name, type) VALUES
    ('c0000000-0000-0000-0000-0000000051aa', :'dave', 'SMS unpriced', 'sms');
INSERT INTO public.sms_messages (id, campaign_id, recipient, message, status) VALUES
    ('a0000000-0000-0000-0000-000000005101', 'c0000000-0000-0000-0000-0000000051aa', '+15550005101', '', 'queued'),
    ('a0000000-0000-0000-0000-000000005102', 'c0000000-0000-0000-0000-0000000051aa', '+15550005102', '', 'queued');
-- both handed over (in flight, one group) by claim k
INSERT INTO sending.holds (campaign_id, claim, channel, in_flight, lease_until, ids)
VALUES ('c0000000-0000-0000-0000-0000000051aa', 'b0000000-0000-0000-0000-0000000051bb', 'sms', true,
        now() + interval '1 minute',
        ARRAY['a0000000-0000-0000-0000-000000005101', 'a0000000-0000-0000-0000-000000005102']::uuid[]);

-- what the engine sends: Twilio's answer without a price (null), and a free message (0)
SELECT lives_ok($$SELECT sending.settle('sms', 'c0000000-0000-0000-0000-0000000051aa',
    'b0000000-0000-0000-0000-0000000051bb',
    '[{"id": "a0000000-0000-0000-0000-000000005101", "outcome": "accepted", "sid": "SM5101", "segments": 1, "cost": null, "body": "hi"},
      {"id": "a0000000-0000-0000-0000-000000005102", "outcome": "accepted", "sid": "SM5102", "segments": 1, "cost": 0, "body": "hi"}]',
    3, 60)$$, 'the engine settles an unpriced and a free message');
SELECT is((SELECT status || ' ' || coalesce(cost::text, 'NULL') FROM public.sms_messages
           WHERE id = 'a0000000-0000-0000-0000-000000005101'), 'sent NULL', 'not priced yet: NULL');
SELECT is((SELECT status || ' ' || coalesce(cost::text, 'NULL') FROM public.sms_messages
           WHERE id = 'a0000000-0000-0000-0000-000000005102'), 'sent 0.0000', 'free: 0');

SELECT tests.authenticate_as_service();
SELECT is(public.apply_twilio_status('a0000000-0000-0000-0000-000000005101', 'SM5101', 'delivered', NULL, 30),
          'applied', 'delivered (unpriced)');
SELECT is(public.apply_twilio_status('a0000000-0000-0000-0000-000000005102', 'SM5102', 'delivered', NULL, 30),
          'applied', 'delivered (free)');
SELECT tests.clear_authentication();
SELECT is((SELECT array_agg(payload ->> 'message_id') FROM jobs.jobs WHERE kind = 'sms.price'),
          ARRAY['a0000000-0000-0000-0000-000000005101'], 'only the unpriced message asks for its price');

SELECT tests.authenticate_as_service();
SELECT is(public.record_sms_price('a0000000-0000-0000-0000-000000005102', 'SM5102', '-0.0079', 'USD'),
          'already_priced', 'a free message is priced: 0 stays');
SELECT is(public.record_sms_price('a0000000-0000-0000-0000-000000005101', 'SM5101', '0.00000', 'USD'),
          'recorded', 'a price of 0 is recorded over NULL');
SELECT is(public.record_sms_price('a0000000-0000-0000-0000-000000005101', 'SM5101', '-0.0079', 'USD'),
          'already_priced', 'and is a price: recorded once');

SELECT * FROM finish();
ROLLBACK;
