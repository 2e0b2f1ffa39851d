-- tests/sql/063_send_sql_no_scans.sql: migrations/063_send_sql_no_scans.sql —
-- the claim without a temporary table still takes the earliest due messages
-- of its campaign only, never one another claim holds, and gives SMS in quiet
-- hours nothing; the settle and the batch end find their leases by id; a
-- batch end finishes the campaign exactly when nothing is left or in flight.
BEGIN;
SELECT plan(17);

SELECT tests.create_user('dora@example.test', 'user') AS dora \gset
SELECT tests.clear_authentication();
UPDATE public.app_settings SET postal_address = '1 Main St', monthly_email_limit = 1000000;
INSERT INTO public.contacts (user_id, email, first_name)
    SELECT :'dora', 'n' || g || '@scan.test', 'N' || g FROM generate_series(1, 5) g;
INSERT INTO public.campaigns (id, user_id, name, type, subject, content) VALUES
    ('c6300000-0000-0000-0000-000000000001', :'dora', 'Scan', 'email', 'Hi', '<p>x</p>'),
    ('c6300000-0000-0000-0000-000000000002', :'dora', 'Other', 'email', 'Hi', '<p>y</p>');

SELECT tests.authenticate_as_service();
SELECT sending.start('c6300000-0000-0000-0000-000000000001', 2);
SELECT sending.start('c6300000-0000-0000-0000-000000000002', 2);
SELECT sending.ensure_materialised('c6300000-0000-0000-0000-000000000001');
SELECT sending.ensure_materialised('c6300000-0000-0000-0000-000000000002');
SELECT tests.clear_authentication();
-- due times in a known order: n5 first ... n1 last; n3 not due yet
UPDATE public.email_messages SET next_attempt_at = now() - (substr(recipient, 2, 1)::int * interval '-1 minute') - interval '1 hour'
WHERE campaign_id = 'c6300000-0000-0000-0000-000000000001';
UPDATE public.email_messages SET next_attempt_at = now() + interval '1 hour'
WHERE campaign_id = 'c6300000-0000-0000-0000-000000000001' AND recipient = 'n3@scan.test';
SELECT is(sending.unfinished('c6300000-0000-0000-0000-000000000001'), true, 'queued messages: unfinished');
SELECT ok(NOT has_function_privilege('service_role', 'sending.unfinished(uuid)', 'EXECUTE')
          AND NOT has_function_privilege('service_role', 'sending.finish(uuid)', 'EXECUTE'),
    'the finishing helpers are the engine functions'' own');
SELECT tests.authenticate_as_service();

CREATE TEMP TABLE c1 AS SELECT * FROM sending.claim('email', 'c6300000-0000-0000-0000-000000000001',
    'a6300000-0000-0000-0000-000000000001', 2, 60);
SELECT is((SELECT string_agg(recipient, ',' ORDER BY recipient) FROM c1), 'n1@scan.test,n2@scan.test',
    'a claim takes the earliest due messages');
SELECT is(to_regclass('pg_temp.sending_due'), NULL, 'and creates no temporary table');
SELECT is((SELECT count(*)::int FROM sending.leases WHERE claim = 'a6300000-0000-0000-0000-000000000001'), 2,
    'it leases what it returns');
SELECT is((SELECT contact ->> 'first_name' FROM c1 WHERE recipient = 'n1@scan.test'), 'N1',
    'with each recipient''s contact');

CREATE TEMP TABLE c2 AS SELECT * FROM sending.claim('email', 'c6300000-0000-0000-0000-000000000001',
    'a6300000-0000-0000-0000-000000000002', 10, 60);
SELECT is((SELECT string_agg(recipient, ',' ORDER BY recipient) FROM c2), 'n4@scan.test,n5@scan.test',
    'a second claim gets the rest that is due, nothing leased, nothing not due, nothing of another campaign');

-- worker 1: both in flight, then settled, the batch ends
SELECT is((SELECT cardinality(go) FROM sending.step('email', 'c6300000-0000-0000-0000-000000000001',
    'a6300000-0000-0000-0000-000000000001', NULL, ARRAY(SELECT id FROM c1 ORDER BY id), NULL, NULL, 3, 60, 60)), 2,
    'a step puts the group in flight');
SELECT is((SELECT count(*)::int FROM sending.leases WHERE claim = 'a6300000-0000-0000-0000-000000000001' AND in_flight), 2,
    'with a committed mark each');
SELECT is((SELECT status FROM sending.step('email', 'c6300000-0000-0000-0000-000000000001',
    'a6300000-0000-0000-0000-000000000001',
    (SELECT jsonb_agg(jsonb_build_object('id', id, 'outcome', 'accepted', 'provider_id', '<' || id || '>')) FROM c1),
    NULL, NULL, ARRAY(SELECT id FROM c1), 3, 60, 60)), 'sending',
    'a batch end while other messages wait leaves the campaign sending');
SELECT is((SELECT count(*)::int FROM public.email_messages m JOIN c1 USING (id) WHERE m.status = 'sent'), 2,
    'the settle found its leases by id');
SELECT is((SELECT count(*)::int FROM sending.leases WHERE claim = 'a6300000-0000-0000-0000-000000000001'), 0,
    'and the batch end left none');

-- worker 2: one in flight, one given back at its batch end
SELECT sending.step('email', 'c6300000-0000-0000-0000-000000000001', 'a6300000-0000-0000-0000-000000000002',
    NULL, ARRAY(SELECT id FROM c2 WHERE recipient = 'n4@scan.test'), NULL, NULL, 3, 60, 60);
SELECT is((SELECT status FROM sending.step('email', 'c6300000-0000-0000-0000-000000000001',
    'a6300000-0000-0000-0000-000000000002',
    (SELECT jsonb_agg(jsonb_build_object('id', id, 'outcome', 'accepted')) FROM c2 WHERE recipient = 'n4@scan.test'),
    NULL, NULL, ARRAY(SELECT id FROM c2), 3, 60, 60)), 'sending', 'not finished while n3 and n5 wait');
SELECT is((SELECT count(*)::int FROM sending.leases), 0, 'the unsent lease was given back by id');

-- the rest: n3 and n5 sent by a third claim; its batch end finishes the campaign
SELECT tests.clear_authentication();
UPDATE public.email_messages SET next_attempt_at = now() - interval '1 second'
WHERE campaign_id = 'c6300000-0000-0000-0000-000000000001' AND status = 'queued';
SELECT tests.authenticate_as_service();
CREATE TEMP TABLE c3 AS SELECT * FROM sending.claim('email', 'c6300000-0000-0000-0000-000000000001',
    'a6300000-0000-0000-0000-000000000003', 10, 60);
SELECT sending.step('email', 'c6300000-0000-0000-0000-000000000001', 'a6300000-0000-0000-0000-000000000003',
    NULL, ARRAY(SELECT id FROM c3), NULL, NULL, 3, 60, 60);
SELECT tests.clear_authentication();
SELECT is(sending.unfinished('c6300000-0000-0000-0000-000000000001'), true, 'in flight: unfinished');
SELECT tests.authenticate_as_service();
SELECT is((SELECT status FROM sending.step('email', 'c6300000-0000-0000-0000-000000000001',
    'a6300000-0000-0000-0000-000000000003',
    (SELECT jsonb_agg(jsonb_build_object('id', id, 'outcome', 'accepted')) FROM c3),
    NULL, NULL, ARRAY(SELECT id FROM c3), 3, 60, 60)), 'sent',
    'the batch end that settles the last messages finishes the campaign');
SELECT is((SELECT status FROM public.campaigns WHERE id = 'c6300000-0000-0000-0000-000000000002'), 'sending',
    'the other campaign goes on');

SELECT * FROM finish();
ROLLBACK;
