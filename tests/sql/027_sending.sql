-- tests/sql/027_sending.sql: the send engine's rules of
-- migrations/027_sending.sql: the placeholder grammar at save time, the
-- engine-only campaign columns, the private schema, materialising with consent
-- and suppression, claiming under the monthly limit, settling, the lease
-- recovery to unknown, cancel and finish.
BEGIN;
SELECT plan(56);

SELECT tests.create_user('admin@example.test', 'admin') AS admin \gset
SELECT tests.create_user('alice@example.test', 'user') AS alice \gset
SELECT tests.create_user('bob@example.test', 'user') AS bob \gset

-- ---------------------------------------------------------------------------
-- placeholders
-- ---------------------------------------------------------------------------

SELECT lives_ok($$SELECT public.check_template_placeholders(
    'Hi {{first_name}} {{ contact.attributes.company | "ACME \"x\"" }} {{contact.email}} { x }', 't')$$,
    'valid placeholders pass');
SELECT throws_ok($$SELECT public.check_template_placeholders('Hi {{frist_name}}', 'content')$$,
    '22023', 'unknown variable or bad placeholder ''frist_name'' in content', 'an unknown variable is refused');
SELECT throws_ok($$SELECT public.check_template_placeholders('Hi {{first_name', 't')$$, '22023', NULL,
    'an unclosed placeholder is refused');
SELECT throws_ok($$SELECT public.check_template_placeholders('{{{first_name}}}', 't')$$, '22023', NULL,
    'a triple brace is refused, as the C scanner refuses it');
SELECT throws_ok($$SELECT public.check_template_placeholders('{{first_name | there}}', 't')$$, '22023', NULL,
    'an unquoted default is refused');
SELECT throws_ok($$SELECT public.check_template_placeholders('{{contact.attributes.a.b}}', 't')$$, '22023', NULL,
    'a nested attribute is refused');
SELECT throws_ok(format($$SELECT public.check_template_placeholders('{{first_name | "%s"}}', 't')$$, repeat('x', 513)),
    '22023', NULL, 'a default longer than 512 bytes is refused');

SELECT tests.authenticate_as(:'alice');
SELECT throws_ok($$INSERT INTO public.templates (name, type, content) VALUES ('t', 'email', '{{nope}}')$$,
    '22023', NULL, 'a user cannot save a template with an unknown variable');
SELECT lives_ok($$INSERT INTO public.templates (id, name, type, subject, content, variables)
    VALUES ('70000000-0000-0000-0000-000000000001', 'ok', 'email', 'Hi {{first_name}}',
            '<p>{{contact.attributes.company | "you"}}</p>', '{made,up}')$$, 'a valid template saves');
SELECT is((SELECT variables FROM public.templates WHERE id = '70000000-0000-0000-0000-000000000001'),
    '{contact.attributes.company,first_name}'::text[], 'variables are derived from the template');
SELECT throws_ok($$UPDATE public.templates SET text_content = '{{x}}'$$, '22023', NULL,
    'the text part is checked too');
SELECT throws_ok($$INSERT INTO public.campaigns (name, type, content) VALUES ('c', 'email', '{{nope}}')$$,
    '22023', NULL, 'a campaign''s own content is checked');

-- ---------------------------------------------------------------------------
-- engine-only columns, private schema, postal address
-- ---------------------------------------------------------------------------

INSERT INTO public.campaigns (id, name, type, subject, content)
    VALUES ('c0000000-0000-0000-0000-000000000001', 'Spring', 'email', 'Hi {{first_name}}', '<p>x</p>');
SELECT throws_ok($$UPDATE public.campaigns SET pause_reason = 'x'$$, '42501', NULL,
    'a user cannot set the pause reason');
SELECT throws_ok($$UPDATE public.campaigns SET unknown_count = 0, recipients_count = 5$$, '42501', NULL,
    'a user cannot set the delivery counts');
SELECT throws_ok($$INSERT INTO public.campaigns (name, type, unknown_count) VALUES ('c', 'email', 3)$$,
    '42501', NULL, 'nor on insert');
SELECT throws_ok($$SELECT sending.start('c0000000-0000-0000-0000-000000000001', 1)$$, '42501', NULL,
    'the engine''s functions are not the API''s');
SELECT throws_ok($$SELECT * FROM sending.monthly_usage$$, '42501', NULL, 'nor is its state');
SELECT is(tests.affected($$UPDATE public.app_settings SET postal_address = 'x'$$), 0::bigint,
    'a user cannot set the postal address');
SELECT tests.authenticate_as(:'admin');
SELECT is(tests.affected($$UPDATE public.app_settings SET postal_address = '1 Main St'$$), 1::bigint,
    'an admin sets the postal address');

-- ---------------------------------------------------------------------------
-- materialise, start
-- ---------------------------------------------------------------------------

SELECT tests.clear_authentication();
INSERT INTO public.contacts (user_id, email, first_name) VALUES
    (:'alice', 'a1@example.test', 'A1'), (:'alice', 'a2@example.test', 'A2'),
    (:'alice', 'a3@example.test', 'A3'), (:'alice', 'gone@example.test', 'G'),
    (:'alice', 'bounced@example.test', 'B'), (:'bob', 'bob1@example.test', 'B1');
INSERT INTO public.contacts (user_id, email, deleted_at) VALUES (:'alice', 'deleted@example.test', now());
INSERT INTO public.contacts (user_id, phone) VALUES (:'alice', '+15550000009');
INSERT INTO public.email_subscriptions (email, subscribed) VALUES ('gone@example.test', false)
    ON CONFLICT (email) DO UPDATE SET subscribed = false;
SELECT public.suppress('email', 'bounced@example.test', 'hard_bounce');
UPDATE public.app_settings SET monthly_email_limit = 1000000;

SELECT tests.authenticate_as_service();
SELECT is((SELECT sending.start('c0000000-0000-0000-0000-000000000001', 2) ->> 'status'), 'sending',
    'start: the campaign is sending');
SELECT sending.ensure_materialised('c0000000-0000-0000-0000-000000000001');
SELECT is((SELECT string_agg(recipient, ',' ORDER BY recipient) FROM public.email_messages
           WHERE campaign_id = 'c0000000-0000-0000-0000-000000000001'),
    'a1@example.test,a2@example.test,a3@example.test',
    'only the owner''s live, subscribed, unsuppressed contacts with an e-mail');
SELECT is((SELECT skipped_count FROM public.campaigns WHERE id = 'c0000000-0000-0000-0000-000000000001'), 3,
    'the other live contacts (unsubscribed, suppressed, phone only) are counted as skipped');
SELECT tests.clear_authentication();
SELECT is((SELECT count(*)::int FROM jobs.jobs WHERE kind = 'send.worker'
           AND payload ->> 'campaign_id' = 'c0000000-0000-0000-0000-000000000001'), 2, 'two workers are queued');
SELECT tests.authenticate_as_service();
SELECT is((SELECT sending.start('c0000000-0000-0000-0000-000000000001', 2) ->> 'status'), 'sending',
    'start again is a no-op');
SELECT is((SELECT count(*)::int FROM public.email_messages
           WHERE campaign_id = 'c0000000-0000-0000-0000-000000000001'), 3, 'messages are materialised once');

-- ---------------------------------------------------------------------------
-- claim, settle, recover, the monthly limit
-- ---------------------------------------------------------------------------

-- a contact who unsubscribes after materialising is dropped right before sending
UPDATE public.email_subscriptions SET subscribed = false WHERE email = 'a3@example.test';
INSERT INTO public.email_subscriptions (email, subscribed) SELECT 'a3@example.test', false
    WHERE NOT EXISTS (SELECT 1 FROM public.email_subscriptions WHERE email = 'a3@example.test');
CREATE TEMP TABLE claimed AS
    SELECT * FROM sending.claim('email', 'c0000000-0000-0000-0000-000000000001',
                                'a0000000-0000-0000-0000-0000000000a1', 10, 60);
SELECT is((SELECT count(*)::int FROM claimed), 3, 'three messages are leased');
SELECT is((SELECT count(*)::int FROM public.email_messages
           WHERE campaign_id = 'c0000000-0000-0000-0000-000000000001' AND status = 'queued'), 3,
    'a claim leaves the rows queued: nothing is in flight yet');
SELECT is((SELECT contact ->> 'first_name' FROM claimed WHERE recipient = 'a1@example.test'), 'A1',
    'the claim brings the contact');
SELECT is((SELECT count(*)::int FROM sending.claim('email', 'c0000000-0000-0000-0000-000000000001',
                                                   'a0000000-0000-0000-0000-0000000000a2', 10, 60)), 0,
    'nothing is claimed twice');
CREATE TEMP TABLE ids AS SELECT recipient, id FROM claimed;

CREATE TEMP TABLE st1 AS SELECT * FROM sending.step('email', 'c0000000-0000-0000-0000-000000000001',
    'a0000000-0000-0000-0000-0000000000a1', NULL,
    ARRAY[(SELECT id FROM ids WHERE recipient = 'a1@example.test'), (SELECT id FROM ids WHERE recipient = 'a3@example.test')],
    '[["https://example.com/1"], null]', NULL, 3, 60, 60);
SELECT is((SELECT go FROM st1), ARRAY[(SELECT id FROM ids WHERE recipient = 'a1@example.test')],
    'consent is checked again right before sending: the unsubscribed one does not go');
SELECT is((SELECT status FROM public.email_messages WHERE recipient = 'a3@example.test'), 'dropped',
    'the message of the address that unsubscribed is dropped');
SELECT is((SELECT count(*)::int FROM sending.leases WHERE in_flight), 1,
    'only the message handed over is in flight');

SELECT is((SELECT go FROM sending.step('email', 'c0000000-0000-0000-0000-000000000001',
    'a0000000-0000-0000-0000-0000000000a1',
    jsonb_build_array(jsonb_build_object('id', (SELECT id FROM ids WHERE recipient = 'a1@example.test'),
                                         'outcome', 'accepted', 'provider_id', '<m1@x>')),
    ARRAY[(SELECT id FROM ids WHERE recipient = 'a2@example.test')], '[null]', NULL, 3, 60, 60)),
    ARRAY[(SELECT id FROM ids WHERE recipient = 'a2@example.test')],
    'one statement settles the previous message and puts the next in flight');
SELECT is((SELECT status || ' ' || message_id || ' ' || links::text FROM public.email_messages
           WHERE recipient = 'a1@example.test'),
    'sent <m1@x> ["https://example.com/1"]', 'accepted: sent, with the provider id and its tracked links');
UPDATE public.email_messages SET links = '["https://example.com/old"]' WHERE recipient = 'a2@example.test';
SELECT is((SELECT status FROM sending.step('email', 'c0000000-0000-0000-0000-000000000001',
    'a0000000-0000-0000-0000-0000000000a1',
    jsonb_build_array(jsonb_build_object('id', (SELECT id FROM ids WHERE recipient = 'a2@example.test'),
                                         'outcome', 'tempfail', 'error', '451 later')),
    NULL, NULL, ARRAY(SELECT id FROM ids), 3, 60, 60)),
    'sending', 'after a temporary failure the campaign is still sending');
SELECT ok((SELECT status = 'queued' AND attempts = 1 AND last_error = '451 later'
                  AND next_attempt_at > now() + interval '50 seconds'
           FROM public.email_messages WHERE recipient = 'a2@example.test'),
    'a temporary failure waits for its retry');
SELECT is((SELECT count(*)::int FROM sending.leases), 0, 'the end of the batch leaves no lease behind');
SELECT is((SELECT links::text FROM public.email_messages WHERE recipient = 'a2@example.test'),
    '["https://example.com/old"]', 'a message without tracked links keeps what it had');
SELECT is((SELECT count(*)::int FROM public.audit_logs
           WHERE resource_id = 'c0000000-0000-0000-0000-000000000001' AND new_value ->> 'event' = 'sent_batch'
             AND new_value -> 'messages' -> 'sent' = jsonb_build_array((SELECT id FROM ids WHERE recipient = 'a1@example.test'))),
    1, 'the batch is audited in one row that names what happened to each message');
SELECT is((SELECT count(*)::int FROM public.audit_logs WHERE resource_id IN (SELECT id FROM ids)
           AND (action = 'create' OR new_value ->> 'status' IS DISTINCT FROM old_value ->> 'status')), 0,
    'the engine''s writes (inserts, status moves) are not audited row by row');
UPDATE public.email_messages SET next_attempt_at = now() WHERE recipient = 'a2@example.test';
SELECT is((SELECT recipient FROM sending.claim('email', 'c0000000-0000-0000-0000-000000000001',
                                               'a0000000-0000-0000-0000-0000000000a3', 10, 60)),
    'a2@example.test', 'it is claimed again when due');
SELECT is((SELECT go FROM sending.step('email', 'c0000000-0000-0000-0000-000000000001',
    'a0000000-0000-0000-0000-0000000000a3', NULL, ARRAY[(SELECT id FROM ids WHERE recipient = 'a2@example.test')],
    NULL, NULL, 3, 60, 60)), ARRAY[(SELECT id FROM ids WHERE recipient = 'a2@example.test')], 'it goes again');
-- its worker dies: the lease runs out
SELECT tests.clear_authentication();
UPDATE sending.holds SET lease_until = now() - interval '1 second';
SELECT tests.authenticate_as_service();
SELECT is(sending.recover('c0000000-0000-0000-0000-000000000001'), 1, 'recover finds the lost message');
SELECT is((SELECT status FROM public.email_messages WHERE recipient = 'a2@example.test'), 'unknown',
    'a message whose worker died in flight is unknown, never queued again');
SELECT is((SELECT f.status || ' ' || c.unknown_count FROM sending.finish_if_done('c0000000-0000-0000-0000-000000000001') f,
           public.campaigns c WHERE c.id = 'c0000000-0000-0000-0000-000000000001'),
    'sent 1', 'the campaign is sent when the last message settles, and counts the unknown one');

-- the monthly limit pauses a campaign with a reason
INSERT INTO public.campaigns (id, user_id, name, type, subject, content)
    VALUES ('c0000000-0000-0000-0000-000000000002', :'bob', 'Bob''s', 'email', 's', 'c');
SELECT sending.start('c0000000-0000-0000-0000-000000000002', 1);
SELECT sending.ensure_materialised('c0000000-0000-0000-0000-000000000002');
UPDATE public.app_settings SET monthly_email_limit =
    (SELECT used FROM sending.monthly_usage WHERE month = sending.current_month() AND channel = 'email');
SELECT is((SELECT count(*)::int FROM sending.claim('email', 'c0000000-0000-0000-0000-000000000002',
                                                   'a0000000-0000-0000-0000-0000000000b1', 10, 60)), 0,
    'nothing is claimed past the monthly limit');
SELECT matches((SELECT status || ': ' || pause_reason FROM public.campaigns WHERE id = 'c0000000-0000-0000-0000-000000000002'),
    '^paused: monthly e-mail limit', 'the campaign pauses with a reason');
SELECT is((SELECT sending.cancel('c0000000-0000-0000-0000-000000000002') ->> 'status'), 'cancelled', 'cancel');
SELECT is((SELECT string_agg(DISTINCT status, ',') FROM public.email_messages
           WHERE campaign_id = 'c0000000-0000-0000-0000-000000000002'), 'dropped', 'unsent messages are dropped');
SELECT throws_ok($$SELECT sending.resume('c0000000-0000-0000-0000-000000000002', 1)$$, '55000', NULL,
    'a cancelled campaign cannot be resumed');

-- SMS: consent is required, the claim and the settle mirror e-mail's
INSERT INTO public.contacts (user_id, phone, first_name) VALUES
    (:'alice', '+15550000101', 'S1'), (:'alice', '+15550000102', 'S2');
INSERT INTO public.sms_consent (phone_number, consent_given, consent_source) VALUES ('+15550000101', true, 'manual')
    ON CONFLICT (phone_number) DO UPDATE SET consent_given = true;
UPDATE public.app_settings SET monthly_sms_limit = 1000000;
-- daytime in the application's zone, whatever the clock: 029's quiet hours
-- (08:00-21:00 there) would hold the SMS back otherwise
UPDATE public.app_settings SET timezone = tests.zone_at_hour(13);
INSERT INTO public.campaigns (id, user_id, name, type, content)
    VALUES ('c0000000-0000-0000-0000-000000000003', :'alice', 'SMS', 'sms', 'Hi {{first_name}}');
SELECT sending.start('c0000000-0000-0000-0000-000000000003', 1);
SELECT sending.ensure_materialised('c0000000-0000-0000-0000-000000000003');
SELECT is((SELECT string_agg(recipient, ',') FROM public.sms_messages
           WHERE campaign_id = 'c0000000-0000-0000-0000-000000000003'), '+15550000101',
    'SMS goes only to numbers with recorded consent');
CREATE TEMP TABLE sms_claimed AS
    SELECT * FROM sending.claim('sms', 'c0000000-0000-0000-0000-000000000003',
                                'a0000000-0000-0000-0000-0000000000c1', 10, 60);
SELECT is((SELECT count(*)::int FROM sms_claimed), 1, 'the SMS is claimed');
SELECT is((SELECT go FROM sending.step('sms', 'c0000000-0000-0000-0000-000000000003',
    'a0000000-0000-0000-0000-0000000000c1', NULL, ARRAY[(SELECT id FROM sms_claimed)], NULL, NULL, 3, 60, 60)),
    ARRAY[(SELECT id FROM sms_claimed)], 'the SMS goes: consent recorded');
SELECT is((SELECT status FROM sending.step('sms', 'c0000000-0000-0000-0000-000000000003',
    'a0000000-0000-0000-0000-0000000000c1',
    jsonb_build_array(jsonb_build_object('id', (SELECT id FROM sms_claimed), 'outcome', 'accepted',
        'sid', 'SM123', 'segments', 2, 'cost', 0.0158, 'body', 'Hi S1', 'error', '')),
    NULL, NULL, ARRAY[(SELECT id FROM sms_claimed)], 3, 60, 60)),
    'sent', 'the campaign is sent when its only SMS is accepted');
SELECT is((SELECT status || ' ' || message_sid || ' ' || segments || ' ' || cost || ' ' || message
           FROM public.sms_messages WHERE campaign_id = 'c0000000-0000-0000-0000-000000000003'),
    'sent SM123 2 0.0158 Hi S1', 'sid, segments, cost and the body sent are recorded');
SELECT is((SELECT used FROM sending.monthly_usage WHERE month = sending.current_month() AND channel = 'sms'), 1,
    'the SMS counts against the monthly SMS limit');

SELECT * FROM finish();
ROLLBACK;
