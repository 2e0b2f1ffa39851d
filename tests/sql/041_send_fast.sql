-- tests/sql/041_send_fast.sql: migrations/041_send_fast.sql — one claim and
-- one step for both channels, leases, what a crash leaves (only what was in
-- flight is unknown), the batch audit, quiet hours, the first-message flag,
-- the monthly limit, pause and cancel while a worker holds messages.
BEGIN;
SELECT plan(31);

SELECT tests.create_user('carol@example.test', 'user') AS carol \gset
SELECT tests.clear_authentication();
UPDATE public.app_settings SET postal_address = '1 Main St', monthly_email_limit = 1000000,
    monthly_sms_limit = 1000000;
INSERT INTO public.contacts (user_id, email, first_name)
    SELECT :'carol', 'm' || g || '@fast.test', 'M' || g FROM generate_series(1, 6) g;
INSERT INTO public.campaigns (id, user_id, name, type, subject, content)
    VALUES ('c4100000-0000-0000-0000-000000000001', :'carol', 'Fast', 'email', 'Hi', '<p>x</p>');

SELECT tests.authenticate_as_service();
SELECT sending.start('c4100000-0000-0000-0000-000000000001', 2);
SELECT sending.ensure_materialised('c4100000-0000-0000-0000-000000000001');
SELECT is((SELECT count(*)::int FROM public.audit_logs WHERE resource_type = 'email_messages'
           AND resource_id IN (SELECT id FROM public.email_messages
                               WHERE campaign_id = 'c4100000-0000-0000-0000-000000000001')), 0,
    'materialising is not audited row by row');
SELECT is((SELECT (new_value ->> 'recipients')::int FROM public.audit_logs
           WHERE resource_id = 'c4100000-0000-0000-0000-000000000001' AND new_value ->> 'event' = 'materialised'), 6,
    'but in one row for the campaign');

-- two workers claim: disjoint leases
SELECT coalesce((SELECT used FROM sending.monthly_usage WHERE month = sending.current_month() AND channel = 'email'), 0)
    AS used0 \gset
CREATE TEMP TABLE w1 AS SELECT * FROM sending.claim('email', 'c4100000-0000-0000-0000-000000000001',
    'a4100000-0000-0000-0000-000000000001', 3, 60);
CREATE TEMP TABLE w2 AS SELECT * FROM sending.claim('email', 'c4100000-0000-0000-0000-000000000001',
    'a4100000-0000-0000-0000-000000000002', 10, 60);
SELECT is((SELECT count(*)::int FROM w1) || ' ' || (SELECT count(*)::int FROM w2), '3 3',
    'the second claim gets what the first did not lease');
SELECT is((SELECT count(*)::int FROM w1 JOIN w2 USING (id)), 0, 'no message is leased twice');
SELECT is((SELECT used FROM sending.monthly_usage WHERE month = sending.current_month() AND channel = 'email'),
    :used0 + 6, 'the claims reserve the monthly limit');
SELECT is((SELECT go FROM sending.step('email', 'c4100000-0000-0000-0000-000000000001',
    'a4100000-0000-0000-0000-000000000002', NULL, ARRAY(SELECT id FROM w1 ORDER BY id LIMIT 1), NULL, NULL, 3, 60, 60)),
    NULL, 'a worker cannot send a message another claim holds');
SELECT tests.authenticate_as(:'carol');
SELECT throws_ok($$SELECT sending.claim('email', 'c4100000-0000-0000-0000-000000000001',
    'a4100000-0000-0000-0000-000000000009', 10, 60)$$, '42501', NULL, 'claiming is the engine''s only');
SELECT tests.authenticate_as_service();

-- worker 1 puts its first message in flight, settles it, puts the second in flight; worker 2 one in flight
SELECT sending.step('email', 'c4100000-0000-0000-0000-000000000001', 'a4100000-0000-0000-0000-000000000001',
    NULL, ARRAY(SELECT id FROM w1 ORDER BY id LIMIT 1), NULL, NULL, 3, 60, 60);
SELECT sending.step('email', 'c4100000-0000-0000-0000-000000000001', 'a4100000-0000-0000-0000-000000000001',
    jsonb_build_array(jsonb_build_object('id', (SELECT id FROM w1 ORDER BY id LIMIT 1), 'outcome', 'accepted',
                                         'provider_id', '<1@x>')),
    ARRAY(SELECT id FROM w1 ORDER BY id OFFSET 1 LIMIT 1), NULL, NULL, 3, 60, 60);
SELECT sending.step('email', 'c4100000-0000-0000-0000-000000000001', 'a4100000-0000-0000-0000-000000000002',
    NULL, ARRAY(SELECT id FROM w2 ORDER BY id LIMIT 1), NULL, NULL, 3, 60, 60);
SELECT is((SELECT count(*)::int FROM sending.leases WHERE in_flight), 2, 'one message in flight per worker');
SELECT is((SELECT string_agg(DISTINCT status, ',') FROM public.email_messages
           WHERE campaign_id = 'c4100000-0000-0000-0000-000000000001' AND status <> 'sent'), 'queued',
    'in flight or only leased, the rows stay queued until settled');
SELECT is((SELECT count(*)::int FROM public.email_messages WHERE status = 'sent'
           AND campaign_id = 'c4100000-0000-0000-0000-000000000001'), 1, 'the settled one is sent');

-- kill -9: both workers' leases run out
SELECT tests.clear_authentication();
UPDATE sending.holds SET lease_until = now() - interval '1 second';
SELECT tests.authenticate_as_service();
SELECT is(sending.recover('c4100000-0000-0000-0000-000000000001'), 2,
    'after a crash only the messages in flight are unknown');
SELECT is((SELECT count(*)::int FROM public.email_messages WHERE status = 'queued'
           AND campaign_id = 'c4100000-0000-0000-0000-000000000001'), 3,
    'the leased ones that never left are queued again');
SELECT is((SELECT used FROM sending.monthly_usage WHERE month = sending.current_month() AND channel = 'email'),
    :used0 + 3, 'their reservations are given back');
CREATE TEMP TABLE w3 AS SELECT * FROM sending.claim('email', 'c4100000-0000-0000-0000-000000000001',
    'a4100000-0000-0000-0000-000000000003', 10, 60);
SELECT is((SELECT count(*)::int FROM w3), 3, 'and another worker claims them');
SELECT is((SELECT unknown_count FROM public.campaigns WHERE id = 'c4100000-0000-0000-0000-000000000001'), 2,
    'the campaign counts its unknown messages');
SELECT is((SELECT jsonb_array_length(new_value -> 'unknown') FROM public.audit_logs
           WHERE resource_id = 'c4100000-0000-0000-0000-000000000001' AND new_value ->> 'event' = 'recovered'), 2,
    'the recovery is audited, naming the unknown messages');

-- pause: the next step sends nothing and the batch end gives the leases back
SELECT sending.step('email', 'c4100000-0000-0000-0000-000000000001', 'a4100000-0000-0000-0000-000000000003',
    NULL, ARRAY(SELECT id FROM w3 ORDER BY id LIMIT 1), NULL, NULL, 3, 60, 60);
SELECT sending.pause('c4100000-0000-0000-0000-000000000001', NULL);
SELECT is((SELECT go FROM sending.step('email', 'c4100000-0000-0000-0000-000000000001',
    'a4100000-0000-0000-0000-000000000003', NULL, ARRAY(SELECT id FROM w3 ORDER BY id OFFSET 1 LIMIT 1), NULL,
    NULL, 3, 60, 60)), NULL, 'a paused campaign sends nothing more');
SELECT is((SELECT status FROM sending.step('email', 'c4100000-0000-0000-0000-000000000001',
    'a4100000-0000-0000-0000-000000000003', NULL, NULL, NULL, ARRAY(SELECT id FROM w3), 3, 60, 60)), 'paused',
    'the batch ends with the campaign paused');
SELECT is((SELECT count(*)::int FROM sending.leases WHERE claim = 'a4100000-0000-0000-0000-000000000003'), 1,
    'only the message in flight stays leased');
SELECT is((SELECT used FROM sending.monthly_usage WHERE month = sending.current_month() AND channel = 'email'),
    :used0 + 4, 'the reservations of the messages given back are released');

-- cancel while one is in flight: it settles, the rest is dropped
SELECT sending.cancel('c4100000-0000-0000-0000-000000000001');
SELECT is((SELECT count(*)::int FROM public.email_messages WHERE status = 'dropped'
           AND campaign_id = 'c4100000-0000-0000-0000-000000000001'), 2,
    'cancel drops what is not in flight');
SELECT is((SELECT status FROM sending.step('email', 'c4100000-0000-0000-0000-000000000001',
    'a4100000-0000-0000-0000-000000000003',
    jsonb_build_array(jsonb_build_object('id', (SELECT id FROM w3 ORDER BY id LIMIT 1), 'outcome', 'accepted',
                                         'provider_id', '<3@x>')),
    NULL, NULL, ARRAY(SELECT id FROM w3), 3, 60, 60)), 'cancelled', 'the campaign stays cancelled');
SELECT is((SELECT status FROM public.email_messages WHERE id = (SELECT id FROM w3 ORDER BY id LIMIT 1)), 'sent',
    'the message in flight at the cancel settles as sent');

-- other writers are still audited row by row
SELECT tests.clear_authentication();
UPDATE public.email_messages SET status = 'delivered'
    WHERE id = (SELECT id FROM w1 ORDER BY id LIMIT 1);
SELECT is((SELECT count(*)::int FROM public.audit_logs WHERE resource_type = 'email_messages'
           AND resource_id = (SELECT id FROM w1 ORDER BY id LIMIT 1)), 1,
    'a write outside the engine is audited per row as before');
SELECT ok(coalesce(current_setting('campaignd.engine_batch', true), '') <> 'on',
    'the engine''s setting does not outlive its functions');

-- SMS: quiet hours, the first-message flag, the same claim
SELECT tests.zone_at_hour(13) AS day_tz,
       tests.zone_at_hour(3) AS night_tz \gset
UPDATE public.app_settings SET timezone = :'day_tz';
INSERT INTO public.contacts (user_id, phone, first_name, attributes) VALUES
    (:'carol', '+15554100001', 'Day', '{}'),
    (:'carol', '+15554100002', 'Night', jsonb_build_object('timezone', :'night_tz')),
    (:'carol', '+15554100003', 'Known', '{}');
INSERT INTO public.sms_consent (phone_number, consent_given, consent_source)
    SELECT p, true, 'manual' FROM unnest(ARRAY['+15554100001', '+15554100002', '+15554100003']) p
    ON CONFLICT (phone_number) DO UPDATE SET consent_given = true;
INSERT INTO public.sms_messages (recipient, message, status, message_sid)
    VALUES ('+15554100003', 'earlier', 'sent', 'SMearlier');
INSERT INTO public.campaigns (id, user_id, name, type, content)
    VALUES ('c4100000-0000-0000-0000-000000000002', :'carol', 'SMS', 'sms', 'Hi {{first_name}}');
SELECT tests.authenticate_as_service();
SELECT sending.start('c4100000-0000-0000-0000-000000000002', 1);
SELECT sending.ensure_materialised('c4100000-0000-0000-0000-000000000002');
CREATE TEMP TABLE s1 AS SELECT * FROM sending.claim('sms', 'c4100000-0000-0000-0000-000000000002',
    'a4100000-0000-0000-0000-000000000004', 10, 60);
SELECT is((SELECT string_agg(recipient, ',' ORDER BY recipient) FROM s1), '+15554100001,+15554100003',
    'a number in its quiet hours is not claimed');
SELECT ok((SELECT next_attempt_at > now() FROM public.sms_messages WHERE recipient = '+15554100002'
           AND campaign_id = 'c4100000-0000-0000-0000-000000000002'), 'it waits for 08:00 there');
SELECT is((SELECT string_agg(recipient || '=' || (contact ->> 'first_to_number'), ',' ORDER BY recipient) FROM s1),
    '+15554100001=true,+15554100003=false', 'the first message to a number is flagged (for "Reply STOP")');
SELECT is((SELECT count(*)::int FROM sending.claim('email', 'c4100000-0000-0000-0000-000000000002',
    'a4100000-0000-0000-0000-000000000005', 10, 60)), 0, 'a claim names the campaign''s own channel');
UPDATE public.sms_consent SET consent_given = false WHERE phone_number = '+15554100003';
SELECT is((SELECT go FROM sending.step('sms', 'c4100000-0000-0000-0000-000000000002',
    'a4100000-0000-0000-0000-000000000004', NULL, ARRAY(SELECT id FROM s1 ORDER BY recipient), NULL, NULL,
    3, 60, 60)), ARRAY(SELECT id FROM s1 WHERE recipient = '+15554100001'),
    'an SMS opt-out before sending stops that message');
SELECT is((SELECT status FROM public.sms_messages WHERE recipient = '+15554100003'
           AND campaign_id = 'c4100000-0000-0000-0000-000000000002'), 'canceled', 'it is canceled');

SELECT * FROM finish();
ROLLBACK;
