-- tests/sql/029_provider_webhooks.sql: what SendGrid and Twilio report back
-- (migrations/029_provider_webhooks.sql): privileges of the new tables and
-- functions, Twilio statuses forward only (a late `sent` never overwrites
-- `delivered`), a callback for another sid, inbound STOP / START / HELP with
-- their evidence and audit rows, once per MessageSid; SendGrid events once by
-- sg_event_id, opens and clicks once, hard bounces and spam reports
-- suppressing the address, events for another recipient ignored.
BEGIN;
SELECT plan(58);

-- ---------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------
SELECT is(tests.privs('anon', 'public.sendgrid_events') || tests.privs('anon', 'public.sms_inbound'), '',
          'anon: nothing on sendgrid_events and sms_inbound');
SELECT is(tests.privs('authenticated', 'public.sendgrid_events'), 'SELECT', 'authenticated: SELECT on sendgrid_events (RLS: admins)');
SELECT is(tests.privs('authenticated', 'public.sms_inbound'), 'SELECT', 'authenticated: SELECT on sms_inbound (RLS: admins)');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'public.sendgrid_events'::regclass)
          AND (SELECT relrowsecurity FROM pg_class WHERE oid = 'public.sms_inbound'::regclass), 'RLS is on');
SELECT ok(NOT has_function_privilege('authenticated', 'public.apply_sendgrid_events(jsonb)', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'public.apply_sendgrid_events(jsonb)', 'EXECUTE')
          AND NOT has_function_privilege('authenticated', 'public.apply_twilio_status(uuid, text, text, text)', 'EXECUTE')
          AND NOT has_function_privilege('authenticated', 'public.apply_twilio_inbound(text, text, text, text, text)', 'EXECUTE')
          AND NOT has_function_privilege('authenticated', 'public.email_suppress(text, text, text, uuid)', 'EXECUTE')
          AND NOT has_function_privilege('authenticated', 'public.sms_opt_out(text, text)', 'EXECUTE'),
          'the API roles may not call the webhook functions (a forged event needs the service key)');
SELECT ok(has_function_privilege('service_role', 'public.apply_sendgrid_events(jsonb)', 'EXECUTE')
          AND has_function_privilege('service_role', 'public.apply_twilio_status(uuid, text, text, text)', 'EXECUTE')
          AND has_function_privilege('service_role', 'public.apply_twilio_inbound(text, text, text, text, text)', 'EXECUTE'),
          'service_role calls them');
SELECT is((SELECT count(*) FROM pg_proc p
           WHERE p.proname IN ('apply_twilio_status', 'apply_twilio_inbound', 'sms_opt_out', 'email_suppress',
                               'email_advance', 'apply_sendgrid_event', 'apply_sendgrid_events')
             AND p.pronamespace = 'public'::regnamespace
             AND (NOT p.prosecdef OR NOT coalesce(p.proconfig @> ARRAY['search_path=""'], false))),
          0::bigint, 'every webhook function is SECURITY DEFINER with an empty search_path');

-- ---------------------------------------------------------------------------
-- Fixture
-- ---------------------------------------------------------------------------
SELECT tests.create_user('prov-admin@example.test', 'admin') AS admin \gset
SELECT tests.create_user('prov-alice@example.test', 'user') AS alice \gset
INSERT INTO public.campaigns (id, user_id, name, type) VALUES
    ('c0000000-0000-0000-0000-0000000029aa', :'alice', 'SMS spring', 'sms'),
    ('c0000000-0000-0000-0000-0000000029bb', :'alice', 'Mail spring', 'email');
INSERT INTO public.sms_messages (id, campaign_id, recipient, message, status) VALUES
    ('a0000000-0000-0000-0000-000000000001', 'c0000000-0000-0000-0000-0000000029aa', '+15550000001', 'hi', 'sending'),
    ('a0000000-0000-0000-0000-000000000002', 'c0000000-0000-0000-0000-0000000029aa', '+15550000002', 'hi', 'sending');
UPDATE public.sms_messages SET message_sid = 'SM00000000000000000000000000000002'
WHERE id = 'a0000000-0000-0000-0000-000000000002';
INSERT INTO public.email_messages (id, campaign_id, recipient, subject, status) VALUES
    ('b0000000-0000-0000-0000-000000000001', 'c0000000-0000-0000-0000-0000000029bb', 'ann@example.test', 's', 'sent'),
    ('b0000000-0000-0000-0000-000000000002', 'c0000000-0000-0000-0000-0000000029bb', 'bob@example.test', 's', 'sent'),
    ('b0000000-0000-0000-0000-000000000003', 'c0000000-0000-0000-0000-0000000029bb', 'cid@example.test', 's', 'sent');

SELECT tests.authenticate_as_service();

-- ---------------------------------------------------------------------------
-- Twilio status callbacks
-- ---------------------------------------------------------------------------
SELECT is(public.apply_twilio_status('a0000000-0000-0000-0000-000000000001', 'SM00000000000000000000000000000001', 'sent', NULL),
          'applied', 'sending -> sent applies');
SELECT is((SELECT message_sid FROM public.sms_messages WHERE id = 'a0000000-0000-0000-0000-000000000001'),
          'SM00000000000000000000000000000001', 'the first callback records the sid');
SELECT is(public.apply_twilio_status('a0000000-0000-0000-0000-000000000001', 'SM00000000000000000000000000000001', 'delivered', NULL),
          'applied', 'sent -> delivered applies');
SELECT is(public.apply_twilio_status('a0000000-0000-0000-0000-000000000001', 'SM00000000000000000000000000000001', 'sent', NULL),
          'ignored', 'a late sent is ignored');
SELECT is(public.apply_twilio_status(NULL, 'SM00000000000000000000000000000001', 'undelivered', '30005'),
          'ignored', 'undelivered after delivered is ignored (same rank, final)');
SELECT is((SELECT status || ':' || (delivered_at IS NOT NULL)::text || ':' || (sent_at IS NOT NULL)::text
                  || ':' || coalesce(error_code, '-')
           FROM public.sms_messages WHERE id = 'a0000000-0000-0000-0000-000000000001'),
          'delivered:true:true:-', 'the message stays delivered, with its times, without the late error code');
SELECT is(public.apply_twilio_status(NULL, 'SM00000000000000000000000000000002', 'failed', '30003'),
          'applied', 'a callback without our id finds the message by sid');
SELECT is((SELECT status || ':' || error_code || ':' || (failed_at IS NOT NULL)::text
           FROM public.sms_messages WHERE id = 'a0000000-0000-0000-0000-000000000002'),
          'failed:30003:true', 'failed with its error code and time');
SELECT is(public.apply_twilio_status('a0000000-0000-0000-0000-000000000002', 'SM99999999999999999999999999999999', 'delivered', NULL),
          'sid_mismatch', 'a callback naming our message with another sid changes nothing');
SELECT is(public.apply_twilio_status(NULL, 'SM77777777777777777777777777777777', 'delivered', NULL),
          'unknown_message', 'an unknown sid is reported, not an error');
SELECT is(left(tests.error_of($$SELECT public.apply_twilio_status(NULL, 'SM1', 'exploded', NULL)$$), 5), '22023',
          'an unknown status is 22023');
SELECT is(left(tests.error_of($$SELECT public.apply_twilio_status(NULL, 'SM1''; drop table x; --', 'sent', NULL)$$), 5), '22023',
          'a malformed sid is 22023');

-- ---------------------------------------------------------------------------
-- Inbound SMS
-- ---------------------------------------------------------------------------
SELECT is(public.apply_twilio_inbound('SMin0001', '+15550000009', '+15559990000', 'Stop', 'stop'),
          'opted_out', 'STOP from an unknown number opts it out');
SELECT is((SELECT (NOT consent_given)::text || ':' || (opt_out_at IS NOT NULL)::text
           FROM public.sms_consent WHERE phone_number = '+15550000009'),
          'true:true', 'a consent row records the opt-out');
SELECT is(public.apply_twilio_inbound('SMin0001', '+15550000009', '+15559990000', 'Stop', 'stop'),
          'duplicate', 'the same MessageSid again is a duplicate');
SELECT is((SELECT count(*) FROM public.audit_logs
           WHERE action = 'opt_out' AND resource_type = 'sms_consent'
             AND resource_id = (SELECT id FROM public.sms_consent WHERE phone_number = '+15550000009')),
          1::bigint, 'one audit row for the opt-out, not two');
-- (the STOP came a minute earlier: one test transaction has one now())
SELECT tests.clear_authentication();
UPDATE public.sms_consent SET opt_out_at = opt_out_at - interval '1 minute' WHERE phone_number = '+15550000009';
SELECT tests.authenticate_as_service();
SELECT is(public.apply_twilio_inbound('SMin0002', '+15550000009', '+15559990000', 'START', 'start'),
          'opted_in', 'START opts back in');
SELECT is((SELECT consent_given::text || ':' || consent_source FROM public.sms_consent WHERE phone_number = '+15550000009'),
          'true:api', 'new consent, source api');
SELECT ok((SELECT metadata ->> 'evidence' FROM public.audit_logs
           WHERE action = 'consent' AND resource_type = 'sms_consent'
             AND resource_id = (SELECT id FROM public.sms_consent WHERE phone_number = '+15550000009')
           ORDER BY created_at DESC LIMIT 1) LIKE 'START reply SMin0002 from +15550000009%',
          'the new consent is audited with the reply as evidence');
SELECT is(public.apply_twilio_inbound('SMin0003', '+15550000009', '+15559990000', 'help', 'help'),
          'help', 'HELP changes nothing');
SELECT is((SELECT consent_given FROM public.sms_consent WHERE phone_number = '+15550000009'), true,
          'still opted in after HELP');
SELECT is(public.apply_twilio_inbound('SMin0004', '+15550000009', '+15559990000', 'quit.', 'stop'),
          'opted_out', 'another STOP word opts out again');
SELECT is((SELECT count(*) FROM public.sms_inbound WHERE from_number = '+15550000009'), 4::bigint,
          'every inbound message is kept as evidence');
SELECT is(left(tests.error_of($$SELECT public.apply_twilio_inbound('SMin0005', 'nonsense', NULL, 'STOP', 'stop')$$), 5), '22023',
          'a From that is not E.164 is 22023');

-- ---------------------------------------------------------------------------
-- SendGrid events
-- ---------------------------------------------------------------------------
SELECT is(public.apply_sendgrid_events($$[
    {"sg_event_id": "e1", "event": "delivered", "email": "ann@example.test", "timestamp": 1700000000,
     "campaignd_message_id": "b0000000-0000-0000-0000-000000000001"},
    {"sg_event_id": "e2", "event": "open", "email": "ann@example.test", "timestamp": 1700000100,
     "campaignd_message_id": "b0000000-0000-0000-0000-000000000001"},
    {"sg_event_id": "e3", "event": "click", "email": "ann@example.test", "timestamp": 1700000200,
     "url": "https://example.test/offer", "campaignd_message_id": "b0000000-0000-0000-0000-000000000001"},
    {"sg_event_id": "e4", "event": "open", "email": "ann@example.test", "timestamp": 1700000300,
     "campaignd_message_id": "b0000000-0000-0000-0000-000000000001"}
  ]$$::jsonb), '{"applied": 4, "duplicates": 0}'::jsonb, 'four events applied');
SELECT is((SELECT status || ':' || extract(epoch FROM opened_at)::bigint || ':' || extract(epoch FROM clicked_at)::bigint
                  || ':' || extract(epoch FROM delivered_at)::bigint
           FROM public.email_messages WHERE id = 'b0000000-0000-0000-0000-000000000001'),
          'clicked:1700000100:1700000200:1700000000', 'clicked; opened_at is the first open, a later open does not move it');
SELECT is(public.apply_sendgrid_events($$[
    {"sg_event_id": "e3", "event": "click", "email": "ann@example.test", "timestamp": 1700000200,
     "url": "https://example.test/offer", "campaignd_message_id": "b0000000-0000-0000-0000-000000000001"},
    {"sg_event_id": "e1", "event": "delivered", "email": "ann@example.test", "timestamp": 1700000000,
     "campaignd_message_id": "b0000000-0000-0000-0000-000000000001"}
  ]$$::jsonb), '{"applied": 0, "duplicates": 2}'::jsonb, 'a replayed batch applies nothing');
SELECT is((SELECT count(*) FROM public.email_clicks WHERE message_id = 'b0000000-0000-0000-0000-000000000001'),
          1::bigint, 'the replayed click is not counted twice');
SELECT is(public.apply_sendgrid_events($$[
    {"sg_event_id": "e5", "event": "delivered", "email": "ann@example.test", "timestamp": 1700000400,
     "campaignd_message_id": "b0000000-0000-0000-0000-000000000001"}
  ]$$::jsonb) ->> 'applied', '1', 'a late delivered is recorded');
SELECT is((SELECT status FROM public.email_messages WHERE id = 'b0000000-0000-0000-0000-000000000001'),
          'clicked', 'but does not move clicked back');

SELECT is(public.apply_sendgrid_events($$[
    {"sg_event_id": "e6", "event": "bounce", "type": "bounce", "reason": "550 5.1.1 no such user",
     "email": "bob@example.test", "timestamp": 1700000500, "campaignd_message_id": "b0000000-0000-0000-0000-000000000002"}
  ]$$::jsonb) ->> 'applied', '1', 'a hard bounce');
SELECT is((SELECT status || ':' || bounce_type || ':' || bounce_reason FROM public.email_messages
           WHERE id = 'b0000000-0000-0000-0000-000000000002'),
          'bounced:hard:550 5.1.1 no such user', 'the message is bounced (hard) with the reason');
SELECT is((SELECT reason || ':' || campaign_id::text FROM public.suppressions WHERE channel = 'email' AND address = 'bob@example.test'),
          'hard_bounce:c0000000-0000-0000-0000-0000000029bb', 'a hard bounce suppresses the address');
SELECT ok(public.is_suppressed('email', 'Bob@Example.test'), 'is_suppressed sees it');

SELECT is(public.apply_sendgrid_events($$[
    {"sg_event_id": "e7", "event": "bounce", "type": "blocked", "reason": "421 try later",
     "email": "cid@example.test", "timestamp": 1700000600, "campaignd_message_id": "b0000000-0000-0000-0000-000000000003"}
  ]$$::jsonb) ->> 'applied', '1', 'a blocked (soft) bounce');
SELECT ok(NOT public.is_suppressed('email', 'cid@example.test'), 'a soft bounce suppresses nothing');
SELECT is((SELECT bounce_type FROM public.email_messages WHERE id = 'b0000000-0000-0000-0000-000000000003'),
          'soft', 'bounce_type soft');

SELECT is(public.apply_sendgrid_events($$[
    {"sg_event_id": "e8", "event": "spamreport", "email": "ann@example.test", "timestamp": 1700000700,
     "campaignd_message_id": "b0000000-0000-0000-0000-000000000001"}
  ]$$::jsonb) ->> 'applied', '1', 'a spam report');
SELECT is((SELECT status FROM public.email_messages WHERE id = 'b0000000-0000-0000-0000-000000000001'),
          'spam_reported', 'the message is spam_reported');
SELECT is((SELECT reason FROM public.suppressions WHERE channel = 'email' AND address = 'ann@example.test'),
          'complaint', 'a complaint suppresses the address');
SELECT is((SELECT (NOT subscribed)::text || ':' || (unsubscribed_at IS NOT NULL)::text
           FROM public.email_subscriptions WHERE email = 'ann@example.test'),
          'true:true', 'and withdraws the subscription');

-- an event whose message id names another recipient's message changes no message
SELECT is(public.apply_sendgrid_events($$[
    {"sg_event_id": "e9", "event": "unsubscribe", "email": "eve@example.test", "timestamp": 1700000800,
     "campaignd_message_id": "b0000000-0000-0000-0000-000000000003"}
  ]$$::jsonb) ->> 'applied', '1', 'an unsubscribe of an address that is not the message''s');
SELECT is((SELECT status FROM public.email_messages WHERE id = 'b0000000-0000-0000-0000-000000000003'), 'bounced',
          'the named message is untouched (still bounced, not unsubscribed)');
SELECT is((SELECT email_message_id FROM public.sendgrid_events WHERE sg_event_id = 'e9'), NULL,
          'the event is recorded without a message');

-- ---------------------------------------------------------------------------
-- Quiet hours of the SMS path
-- ---------------------------------------------------------------------------
SELECT tests.clear_authentication();
-- zones where it is now 13:xx and 03:xx
SELECT tests.zone_at_hour(13) AS day_tz,
       tests.zone_at_hour(3) AS night_tz \gset
INSERT INTO public.contacts (id, user_id, phone, attributes) VALUES
    ('d0000000-0000-0000-0000-000000000001', :'alice', '+15550000101', jsonb_build_object('timezone', :'day_tz')),
    ('d0000000-0000-0000-0000-000000000002', :'alice', '+15550000102', jsonb_build_object('timezone', :'night_tz')),
    ('d0000000-0000-0000-0000-000000000003', :'alice', '+15550000103', '{"timezone": "Not/AZone"}'),
    ('d0000000-0000-0000-0000-000000000004', :'alice', '+15550000104', '{}');
UPDATE public.app_settings SET timezone = :'day_tz';
SELECT is(sending.sms_window_opens('d0000000-0000-0000-0000-000000000001'), NULL, 'at 13:00 in the contact''s zone an SMS goes now');
SELECT is(sending.sms_window_opens('d0000000-0000-0000-0000-000000000002'),
          ((now() AT TIME ZONE :'night_tz')::date + time '08:00') AT TIME ZONE :'night_tz',
          'at 03:00 in the contact''s zone it waits for 08:00 there');
SELECT is(sending.sms_window_opens('d0000000-0000-0000-0000-000000000003'), NULL,
          'a time zone PostgreSQL does not know falls back to the application''s (13:00 now)');
SELECT is(sending.sms_window_opens('d0000000-0000-0000-0000-000000000004'), NULL, 'no zone: the application''s');
UPDATE public.app_settings SET timezone = :'night_tz';
SELECT ok(sending.sms_window_opens('d0000000-0000-0000-0000-000000000004') > now(),
          'no zone, the application at 03:00: it waits');
SELECT is(sending.sms_window_opens('d0000000-0000-0000-0000-000000000001'), NULL,
          'the contact''s own zone wins over the application''s');
SELECT ok(NOT has_function_privilege('authenticated', 'sending.claim(text, uuid, uuid, integer, integer)', 'EXECUTE')
          AND NOT has_function_privilege('authenticated',
                  'sending.step(text, uuid, uuid, jsonb, uuid[], jsonb, uuid[], integer, integer, integer)', 'EXECUTE')
          AND has_function_privilege('service_role', 'sending.claim(text, uuid, uuid, integer, integer)', 'EXECUTE'),
          'only the server claims and settles SMS');

SELECT * FROM finish();
ROLLBACK;
