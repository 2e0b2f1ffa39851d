-- tests/sql/055_campaign_send_counts.sql: migrations/055_campaign_send_counts.sql —
-- the engine counts what it settles (sent, failed, dropped) on the campaign's
-- progress row in the step's own transaction; the row is read under the
-- campaign's rules and written by nobody but the engine.
BEGIN;
SELECT plan(17);

SELECT tests.create_user('pia@example.test', 'user') AS pia \gset
SELECT tests.create_user('quinn@example.test', 'user') AS quinn \gset
SELECT tests.create_user('vic@example.test', 'viewer') AS vic \gset
SELECT tests.clear_authentication();
UPDATE public.app_settings SET postal_address = '1 Main St', monthly_email_limit = 1000000;
INSERT INTO public.contacts (user_id, email, first_name)
    SELECT :'pia', 'p' || g || '@count.test', 'P' || g FROM generate_series(1, 5) g;
INSERT INTO public.campaigns (id, user_id, name, type, subject, content)
    VALUES ('c5500000-0000-0000-0000-000000000001', :'pia', 'Counted', 'email', 'Hi', '<p>x</p>');

SELECT tests.authenticate_as_service();
SELECT sending.start('c5500000-0000-0000-0000-000000000001', 1);
SELECT sending.ensure_materialised('c5500000-0000-0000-0000-000000000001');
CREATE TEMP TABLE w AS SELECT * FROM sending.claim('email', 'c5500000-0000-0000-0000-000000000001',
    'a5500000-0000-0000-0000-000000000001', 5, 60);
SELECT is((SELECT count(*)::int FROM public.campaign_progress WHERE id = 'c5500000-0000-0000-0000-000000000001'), 0,
    'nothing settled, no counts yet');
-- three in flight in one step; then one accepted, one permanent failure, one temporary failure
SELECT sending.step('email', 'c5500000-0000-0000-0000-000000000001', 'a5500000-0000-0000-0000-000000000001',
    NULL, ARRAY(SELECT id FROM w ORDER BY id LIMIT 3), NULL, NULL, 3, 60, 60);
SELECT sending.step('email', 'c5500000-0000-0000-0000-000000000001', 'a5500000-0000-0000-0000-000000000001',
    jsonb_build_array(
        jsonb_build_object('id', (SELECT id FROM w ORDER BY id LIMIT 1), 'outcome', 'accepted', 'provider_id', '<1@x>'),
        jsonb_build_object('id', (SELECT id FROM w ORDER BY id OFFSET 1 LIMIT 1), 'outcome', 'permfail', 'error', '550'),
        jsonb_build_object('id', (SELECT id FROM w ORDER BY id OFFSET 2 LIMIT 1), 'outcome', 'tempfail', 'error', '451')),
    NULL, NULL, NULL, 3, 60, 60);
SELECT is((SELECT sent_count || ' ' || failed_count || ' ' || dropped_count FROM public.campaign_progress
           WHERE id = 'c5500000-0000-0000-0000-000000000001'), '1 1 0',
    'accepted counts as sent, a permanent failure as failed, a retry as nothing yet');
SELECT is((SELECT count(*)::int FROM public.email_messages WHERE campaign_id = 'c5500000-0000-0000-0000-000000000001'
           AND status = 'sent'), (SELECT sent_count FROM public.campaign_progress
           WHERE id = 'c5500000-0000-0000-0000-000000000001'), 'the count is the messages'' status');

-- consent withdrawn before the next one leaves: dropped, counted in the same step
SELECT tests.clear_authentication();
INSERT INTO public.suppressions (channel, address, reason)
    SELECT 'email', recipient, 'unsubscribe' FROM public.email_messages
    WHERE id = (SELECT id FROM w ORDER BY id OFFSET 3 LIMIT 1);
SELECT tests.authenticate_as_service();
SELECT is((SELECT go FROM sending.step('email', 'c5500000-0000-0000-0000-000000000001',
    'a5500000-0000-0000-0000-000000000001', NULL, ARRAY(SELECT id FROM w ORDER BY id OFFSET 3 LIMIT 1), NULL,
    NULL, 3, 60, 60)), NULL, 'a suppressed address does not leave');
SELECT is((SELECT dropped_count FROM public.campaign_progress WHERE id = 'c5500000-0000-0000-0000-000000000001'), 1,
    'and is counted as dropped');

-- cancel: what was not in flight is dropped and counted
SELECT sending.cancel('c5500000-0000-0000-0000-000000000001');
SELECT is((SELECT dropped_count FROM public.campaign_progress WHERE id = 'c5500000-0000-0000-0000-000000000001'),
    (SELECT count(*)::int FROM public.email_messages WHERE campaign_id = 'c5500000-0000-0000-0000-000000000001'
     AND status = 'dropped'), 'cancel counts the messages it drops');
SELECT is((SELECT (new_value ->> 'dropped')::int FROM public.audit_logs
           WHERE resource_id = 'c5500000-0000-0000-0000-000000000001' AND new_value ->> 'event' = 'cancelled'), 2,
    'and its audit row says how many (the retry and the one never claimed)');

-- who reads it: the owner and the viewer, not another user; nobody of the API writes it
SELECT tests.authenticate_as(:'pia');
SELECT is((SELECT sent_count FROM public.campaign_progress WHERE id = 'c5500000-0000-0000-0000-000000000001'), 1,
    'the owner reads the counts');
SELECT throws_ok($$UPDATE public.campaign_progress SET sent_count = 99$$, '42501', NULL,
    'the owner cannot write them');
SELECT throws_ok($$SELECT sending.count_progress('c5500000-0000-0000-0000-000000000001', 1, 0, 0)$$, '42501', NULL,
    'nor call the engine''s counter');
SELECT tests.authenticate_as(:'quinn');
SELECT is((SELECT count(*)::int FROM public.campaign_progress WHERE id = 'c5500000-0000-0000-0000-000000000001'), 0,
    'another user does not see them');
SELECT tests.authenticate_as(:'vic');
SELECT is((SELECT sent_count FROM public.campaign_progress WHERE id = 'c5500000-0000-0000-0000-000000000001'), 1,
    'a viewer sees them, as the campaign');

-- delivered: the webhook's write is counted and published at once
SELECT tests.clear_authentication();
UPDATE public.email_messages SET status = 'delivered' WHERE id = (SELECT id FROM w ORDER BY id LIMIT 1);
SELECT is((SELECT delivered_count FROM public.campaign_progress WHERE id = 'c5500000-0000-0000-0000-000000000001'), 1,
    'a delivered report is counted as it is written');
UPDATE public.email_messages SET status = 'opened' WHERE id = (SELECT id FROM w ORDER BY id LIMIT 1);
SELECT is((SELECT delivered_count FROM public.campaign_progress WHERE id = 'c5500000-0000-0000-0000-000000000001'), 1,
    'opened after delivered is still one delivered message');

-- a large campaign publishes per 1 % of its recipients, and always at a batch end
SELECT tests.clear_authentication();
UPDATE sending.progress SET recipients = 1000 WHERE campaign_id = 'c5500000-0000-0000-0000-000000000001';
SELECT sending.count_progress('c5500000-0000-0000-0000-000000000001', 9, 0, 0);
SELECT is((SELECT sent FROM sending.progress_counts WHERE campaign_id = 'c5500000-0000-0000-0000-000000000001'), 10,
    'the exact count grows at every step');
SELECT is((SELECT sent_count FROM public.campaign_progress WHERE id = 'c5500000-0000-0000-0000-000000000001'), 1,
    'its published copy waits for 1 % of the recipients');
SELECT sending.publish_progress('c5500000-0000-0000-0000-000000000001', true);
SELECT is((SELECT sent_count FROM public.campaign_progress WHERE id = 'c5500000-0000-0000-0000-000000000001'), 10,
    'and is exact after a batch end');

SELECT * FROM finish();
ROLLBACK;
