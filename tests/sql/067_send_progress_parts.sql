-- tests/sql/067_send_progress_parts.sql: migrations/067_send_progress_parts.sql —
-- each database session counts on its own part of a campaign's progress (no
-- session waits for another's commit); the exact counts are the parts summed
-- (sending.progress_counts); the published copy is made from that sum, per
-- 1 % and at a batch end, only grows, and nobody of the API reads the parts.
BEGIN;
SELECT plan(14);

SELECT tests.create_user('pat@example.test', 'user') AS pat \gset
SELECT tests.clear_authentication();
INSERT INTO public.campaigns (id, user_id, name, type, subject, content)
    VALUES ('c6700000-0000-0000-0000-000000000001', :'pat', 'Parts', 'email', 'Hi', '<p>x</p>');
UPDATE public.campaigns SET recipients_count = 1000 WHERE id = 'c6700000-0000-0000-0000-000000000001';

-- this session's counts go to its own part
SELECT sending.count_progress('c6700000-0000-0000-0000-000000000001', 3, 1, 0);
SELECT is((SELECT part FROM sending.progress_parts WHERE campaign_id = 'c6700000-0000-0000-0000-000000000001'),
    pg_backend_pid(), 'a session counts on the part named by its backend');
SELECT is((SELECT sent || ' ' || failed || ' ' || dropped FROM sending.progress
           WHERE campaign_id = 'c6700000-0000-0000-0000-000000000001'), '0 0 0',
    'the campaign''s row is not written by a step');
SELECT is((SELECT recipients FROM sending.progress WHERE campaign_id = 'c6700000-0000-0000-0000-000000000001'),
    1000, 'it holds the recipients, for the 1 % rule');
SELECT is((SELECT count(*)::int FROM public.campaign_progress WHERE id = 'c6700000-0000-0000-0000-000000000001'),
    0, 'below 1 % of the recipients nothing is published');

-- another session's part (as a second worker would write it): summed, not waited for
INSERT INTO sending.progress_parts (campaign_id, part, sent, failed, dropped)
    VALUES ('c6700000-0000-0000-0000-000000000001', -1, 2, 0, 1);
SELECT is((SELECT sent || ' ' || failed || ' ' || dropped FROM sending.progress_counts
           WHERE campaign_id = 'c6700000-0000-0000-0000-000000000001'), '5 1 1',
    'the exact counts are the parts summed');
SELECT sending.count_progress('c6700000-0000-0000-0000-000000000001', 1, 0, 0);
SELECT is((SELECT count(*)::int FROM sending.progress_parts WHERE campaign_id = 'c6700000-0000-0000-0000-000000000001'),
    2, 'a session adds to its own part, not a new one');
SELECT is((SELECT sent FROM sending.progress_counts WHERE campaign_id = 'c6700000-0000-0000-0000-000000000001'),
    6, 'and the sum grows at every step');
SELECT is((SELECT count(*)::int FROM public.campaign_progress WHERE id = 'c6700000-0000-0000-0000-000000000001'),
    0, 'the published copy waits for 1 % of the recipients, summed over the parts');
SELECT sending.count_progress('c6700000-0000-0000-0000-000000000001', 6, 0, 0);
SELECT is((SELECT sent_count || ' ' || dropped_count FROM public.campaign_progress
           WHERE id = 'c6700000-0000-0000-0000-000000000001'), '12 1',
    'at 1 % more the copy is the sum of all parts');
SELECT is((SELECT published FROM sending.progress WHERE campaign_id = 'c6700000-0000-0000-0000-000000000001'),
    14, 'and the mark says what was copied');

-- a batch end copies whatever there is; a copy never shrinks
UPDATE sending.progress_parts SET failed = failed + 1 WHERE campaign_id = 'c6700000-0000-0000-0000-000000000001' AND part = -1;
SELECT sending.publish_progress('c6700000-0000-0000-0000-000000000001', true);
SELECT is((SELECT failed_count FROM public.campaign_progress WHERE id = 'c6700000-0000-0000-0000-000000000001'),
    2, 'a batch end publishes the exact counts');
SELECT sending.publish_progress('c6700000-0000-0000-0000-000000000001', true);
SELECT is((SELECT published FROM sending.progress WHERE campaign_id = 'c6700000-0000-0000-0000-000000000001'),
    15, 'nothing new: nothing copied');

-- the parts and the sum are the engine's: the API's roles read neither
SELECT tests.authenticate_as(:'pat');
SELECT throws_ok($$SELECT * FROM sending.progress_parts$$, '42501', NULL, 'the owner cannot read the parts');
SELECT throws_ok($$SELECT * FROM sending.progress_counts$$, '42501', NULL, 'nor their sum');

SELECT * FROM finish();
ROLLBACK;
