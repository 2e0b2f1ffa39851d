-- tests/sql/084_analytics_rollup_due.sql: migrations/084_analytics_rollup_due.sql
-- — the roll-up into analytics_data recomputes whole campaigns, those a
-- write marked and those sending now, every day of each, and leaves the
-- others alone.
BEGIN;
SELECT plan(25);

SELECT tests.create_user('ria@example.test', 'user') AS ria \gset
SELECT tests.create_user('sol@example.test', 'user') AS sol \gset
SELECT tests.clear_authentication();
RESET ROLE;
INSERT INTO public.campaigns (id, user_id, name, type, content, status) VALUES
    ('c8400000-0000-0000-0000-00000000000a', :'ria', 'Last week', 'email', '<p>Hi</p>', 'sent'),
    ('c8400000-0000-0000-0000-00000000000b', :'ria', 'Now', 'sms', 'Hi', 'sending'),
    ('c8400000-0000-0000-0000-00000000000c', :'ria', 'Long ago', 'email', '<p>Hi</p>', 'sent');
-- the engine's own writes (its functions run with engine_batch on)
SELECT set_config('campaignd.engine_batch', 'on', true) IS NOT NULL AS engine \gset
INSERT INTO public.email_messages (id, campaign_id, recipient, subject, status, sent_at, created_at) VALUES
    ('e8400000-0000-0000-0000-000000000001', 'c8400000-0000-0000-0000-00000000000a', 'a@r084.test', 'Hi', 'sent',
     now() - interval '10 days', now() - interval '10 days'),
    ('e8400000-0000-0000-0000-000000000002', 'c8400000-0000-0000-0000-00000000000a', 'b@r084.test', 'Hi', 'sent',
     now() - interval '10 days', now() - interval '10 days'),
    ('e8400000-0000-0000-0000-000000000003', 'c8400000-0000-0000-0000-00000000000a', 'c@r084.test', 'Hi', 'queued',
     NULL, now() - interval '12 days'),
    ('e8400000-0000-0000-0000-000000000004', 'c8400000-0000-0000-0000-00000000000c', 'a@r084.test', 'Hi', 'sent',
     now() - interval '40 days', now() - interval '40 days');
-- (what the upgrade and the writes above marked: not what is tested here)
DELETE FROM sending.rollup_marks;
INSERT INTO public.sms_messages (id, campaign_id, recipient, message, status, sent_at, cost) VALUES
    ('58400000-0000-0000-0000-000000000001', 'c8400000-0000-0000-0000-00000000000b', '+15558400001', 'Hi', 'sent', now(), -0.0075),
    ('58400000-0000-0000-0000-000000000002', 'c8400000-0000-0000-0000-00000000000b', '+15558400002', 'Hi', 'delivered', now(), -0.0075);
UPDATE public.sms_messages SET segments = 1 WHERE campaign_id = 'c8400000-0000-0000-0000-00000000000b';
SELECT set_config('campaignd.engine_batch', '', true) IS NOT NULL AS engine_off \gset
UPDATE public.sms_messages SET segments = 1 WHERE campaign_id = 'c8400000-0000-0000-0000-00000000000b';
SELECT is((SELECT count(*)::int FROM sending.rollup_marks), 0,
    'writes to a campaign sending now mark nothing (every run rolls it up), the engine''s or others''');

-- a campaign's rows: metric@days ago=value, those not 0 and every email_sent
CREATE FUNCTION pg_temp.counts(p_campaign text) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(a.metric_type || '@' || ((now() AT TIME ZONE
                    coalesce((SELECT s.timezone::text FROM public.app_settings s LIMIT 1), 'UTC'))::date - a.date)
                    || '=' || a.value::float8, ',' ORDER BY a.metric_type, a.date DESC), '')
    FROM public.analytics_data a
    WHERE a.dimensions = jsonb_build_object('campaign_id', ('c8400000-0000-0000-0000-00000000000' || p_campaign)::uuid)
      AND (a.value <> 0 OR a.metric_type = 'email_sent')
$$;
CREATE FUNCTION pg_temp.marked() RETURNS uuid[] LANGUAGE sql AS $$
    SELECT coalesce(array_agg(DISTINCT campaign_id ORDER BY campaign_id), '{}') FROM sending.rollup_marks
$$;

-- the campaigns as rolled up when they went out
SELECT ok(sending.rollup_campaigns(ARRAY['c8400000-0000-0000-0000-00000000000a',
                                         'c8400000-0000-0000-0000-00000000000c']::uuid[]) > 0,
    'rollup_campaigns writes the campaigns'' rows');
SELECT is(pg_temp.counts('a'), 'email_sent@10=2,email_sent@12=0',
    'every day of the campaign, the one of the message not sent yet too');

-- a change outside the engine: an open, ten days after the send
SELECT tests.authenticate_as_service();
SELECT ok(sending.record_open('e8400000-0000-0000-0000-000000000001'), 'an open is recorded');
SELECT tests.clear_authentication();
RESET ROLE;
SELECT is(pg_temp.marked(), ARRAY['c8400000-0000-0000-0000-00000000000a']::uuid[], 'it marks its campaign');

-- the other campaign's row, changed by hand: a run that read it would mend it
UPDATE public.analytics_data SET value = 99
WHERE dimensions = jsonb_build_object('campaign_id', 'c8400000-0000-0000-0000-00000000000c'::uuid)
  AND metric_type = 'email_sent';

SELECT is((SELECT row(written > 0, more)::text FROM sending.rollup_due(10, true)), '(t,f)',
    'the run writes, and nothing is left marked');
SELECT is(pg_temp.counts('a'), 'email_delivered@10=1,email_opened@10=1,email_sent@10=2,email_sent@12=0',
    'the open counts on the day of its message, ten days ago');
SELECT is(pg_temp.counts('b'), 'sms_cost@0=0.015,sms_delivered@0=1,sms_sent@0=2',
    'a campaign sending now is rolled up without a mark');
SELECT is(pg_temp.counts('c'), 'email_sent@40=99', 'a campaign neither marked nor sending is not read');
SELECT is((SELECT count(*)::int FROM sending.rollup_marks), 0, 'the run took the marks');

-- a job's further calls take only the marks left, not the campaigns sending
UPDATE public.analytics_data SET value = 77
WHERE dimensions = jsonb_build_object('campaign_id', 'c8400000-0000-0000-0000-00000000000b'::uuid)
  AND metric_type = 'sms_sent';
SELECT is((SELECT written FROM sending.rollup_due(10, false)), 0,
    'without p_sending, nothing marked: nothing is read or written');
SELECT is((SELECT written FROM sending.rollup_due(10, true)), 1, 'with it, the sending campaign is mended');

-- a late result gives the message not sent yet its day: the day it was
-- written on has no message any more, and its rows go
UPDATE public.email_messages SET status = 'sent', sent_at = now() - interval '10 days'
WHERE id = 'e8400000-0000-0000-0000-000000000003';
SELECT is((SELECT written FROM sending.rollup_due(10, true)), 9, 'one row changes, the 8 of the other day go');
SELECT is(pg_temp.counts('a'), 'email_delivered@10=1,email_opened@10=1,email_sent@10=3',
    'the count moves to the day it was sent');
SELECT is((SELECT count(*)::int FROM public.analytics_data
           WHERE dimensions = jsonb_build_object('campaign_id', 'c8400000-0000-0000-0000-00000000000a'::uuid)),
    8, 'one day of the eight e-mail metrics is left');

-- a campaign that stops sending is marked, and its last counts rolled up;
-- so are the engine's writes after that (a group in flight settling)
UPDATE public.sms_messages SET status = 'delivered' WHERE id = '58400000-0000-0000-0000-000000000001';
UPDATE public.campaigns SET status = 'paused' WHERE id = 'c8400000-0000-0000-0000-00000000000b';
SELECT is(pg_temp.marked(), ARRAY['c8400000-0000-0000-0000-00000000000b']::uuid[], 'a campaign that stops sending is marked');
SELECT sending.rollup_due(10, true) IS NOT NULL AS ran \gset
SELECT is(pg_temp.counts('b'), 'sms_cost@0=0.015,sms_delivered@0=2,sms_sent@0=2', 'and its last counts rolled up');
SELECT set_config('campaignd.engine_batch', 'on', true) IS NOT NULL AS engine \gset
UPDATE public.sms_messages SET cost = -0.01 WHERE id = '58400000-0000-0000-0000-000000000002';
SELECT set_config('campaignd.engine_batch', '', true) IS NOT NULL AS engine_off \gset
SELECT is(pg_temp.marked(), ARRAY['c8400000-0000-0000-0000-00000000000b']::uuid[],
    'the engine''s write to a campaign that no longer sends marks it');

-- a campaign given to another owner: the old owner's rows go, the new one's come
UPDATE public.campaigns SET user_id = :'sol' WHERE id = 'c8400000-0000-0000-0000-00000000000a';
SELECT is((SELECT count(*)::int FROM public.analytics_data
           WHERE dimensions = jsonb_build_object('campaign_id', 'c8400000-0000-0000-0000-00000000000a'::uuid)
             AND user_id = :'ria'), 0, 'a campaign''s rows leave its old owner');

-- a limit of one campaign a run: two runs
SELECT is((SELECT more FROM sending.rollup_due(1, true)), true, 'one campaign of two: more is left');
SELECT is((SELECT more FROM sending.rollup_due(1, true)), false, 'the second run takes the rest');
SELECT is((SELECT count(*)::int FROM public.analytics_data
           WHERE dimensions = jsonb_build_object('campaign_id', 'c8400000-0000-0000-0000-00000000000a'::uuid)
             AND user_id = :'sol'), 8, 'the new owner has them');
SELECT is(pg_temp.counts('b'), 'sms_cost@0=0.0175,sms_delivered@0=2,sms_sent@0=2',
    'the paused campaign''s settle is counted');

-- only the engine's role runs it
SELECT tests.authenticate_as(:'ria');
SELECT throws_ok($$SELECT sending.rollup_due(10, true)$$, '42501', NULL, 'a user cannot run the roll-up');
SELECT throws_ok($$SELECT sending.rollup_campaigns(ARRAY['c8400000-0000-0000-0000-00000000000a']::uuid[])$$,
    '42501', NULL, 'nor a campaign''s');

SELECT * FROM finish();
ROLLBACK;
