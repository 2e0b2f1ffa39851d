-- tests/sql/084_analytics_rollup_due.sql: migrations/084_analytics_rollup_due.sql
-- — the roll-up into analytics_data recomputes whole campaigns, those a
-- change outside the engine marked and those sending now, every day of each,
-- and leaves the others alone.
BEGIN;
SELECT plan(16);

SELECT tests.create_user('ria@example.test', 'user') AS ria \gset
SELECT tests.clear_authentication();
RESET ROLE;
-- what a previous run or the upgrade left: nothing marked
DELETE FROM sending.rollup_marks;
INSERT INTO public.campaigns (id, user_id, name, type, content, status) VALUES
    ('c8400000-0000-0000-0000-00000000000a', :'ria', 'Last week', 'email', '<p>Hi</p>', 'sent'),
    ('c8400000-0000-0000-0000-00000000000b', :'ria', 'Now', 'sms', 'Hi', 'sending'),
    ('c8400000-0000-0000-0000-00000000000c', :'ria', 'Long ago', 'email', '<p>Hi</p>', 'sent');
-- the engine's own writes (its functions run with engine_batch on)
SELECT set_config('campaignd.engine_batch', 'on', true);
INSERT INTO public.email_messages (id, campaign_id, recipient, subject, status, sent_at, created_at) VALUES
    ('e8400000-0000-0000-0000-000000000001', 'c8400000-0000-0000-0000-00000000000a', 'a@r084.test', 'Hi', 'sent',
     now() - interval '10 days', now() - interval '10 days'),
    ('e8400000-0000-0000-0000-000000000002', 'c8400000-0000-0000-0000-00000000000a', 'b@r084.test', 'Hi', 'sent',
     now() - interval '10 days', now() - interval '10 days'),
    ('e8400000-0000-0000-0000-000000000003', 'c8400000-0000-0000-0000-00000000000a', 'c@r084.test', 'Hi', 'queued',
     NULL, now() - interval '12 days'),
    ('e8400000-0000-0000-0000-000000000004', 'c8400000-0000-0000-0000-00000000000c', 'a@r084.test', 'Hi', 'sent',
     now() - interval '40 days', now() - interval '40 days');
INSERT INTO public.sms_messages (campaign_id, recipient, message, status, sent_at, cost) VALUES
    ('c8400000-0000-0000-0000-00000000000b', '+15558400001', 'Hi', 'sent', now(), -0.0075),
    ('c8400000-0000-0000-0000-00000000000b', '+15558400002', 'Hi', 'delivered', now(), -0.0075);
SELECT set_config('campaignd.engine_batch', '', true);

SELECT is((SELECT count(*)::int FROM sending.rollup_marks), 0, 'the engine''s writes mark nothing');

-- a campaign's rows: metric@days ago=value, those not 0 and every email_sent
CREATE FUNCTION pg_temp.counts(p_campaign text) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(a.metric_type || '@' || ((now() AT TIME ZONE
                    coalesce((SELECT s.timezone::text FROM public.app_settings s LIMIT 1), 'UTC'))::date - a.date)
                    || '=' || a.value::float8, ',' ORDER BY a.metric_type, a.date DESC), '')
    FROM public.analytics_data a
    WHERE a.dimensions = jsonb_build_object('campaign_id', ('c8400000-0000-0000-0000-00000000000' || p_campaign)::uuid)
      AND (a.value <> 0 OR a.metric_type = 'email_sent')
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
SELECT is(ARRAY(SELECT DISTINCT campaign_id FROM sending.rollup_marks),
    ARRAY['c8400000-0000-0000-0000-00000000000a']::uuid[], 'it marks its campaign');

-- the other campaign's row, changed by hand: a run that read it would mend it
UPDATE public.analytics_data SET value = 99
WHERE dimensions = jsonb_build_object('campaign_id', 'c8400000-0000-0000-0000-00000000000c'::uuid)
  AND metric_type = 'email_sent';

SELECT ok(sending.rollup_due() > 0, 'the run writes');
SELECT is(pg_temp.counts('a'), 'email_delivered@10=1,email_opened@10=1,email_sent@10=2,email_sent@12=0',
    'the open counts on the day of its message, ten days ago');
SELECT is(pg_temp.counts('b'), 'sms_cost@0=0.015,sms_delivered@0=1,sms_sent@0=2',
    'a campaign sending now is rolled up without a mark');
SELECT is(pg_temp.counts('c'), 'email_sent@40=99', 'a campaign neither marked nor sending is not read');
SELECT is((SELECT count(*)::int FROM sending.rollup_marks), 0, 'the run took the marks');

-- a late result gives the message not sent yet its day: the day it was
-- written on has no message any more, and its rows go
UPDATE public.email_messages SET status = 'sent', sent_at = now() - interval '10 days'
WHERE id = 'e8400000-0000-0000-0000-000000000003';
SELECT sending.rollup_due();
SELECT is(pg_temp.counts('a'), 'email_delivered@10=1,email_opened@10=1,email_sent@10=3',
    'the count moves to the day it was sent; the other day''s rows are deleted');
SELECT is((SELECT count(*)::int FROM public.analytics_data
           WHERE dimensions = jsonb_build_object('campaign_id', 'c8400000-0000-0000-0000-00000000000a'::uuid)),
    8, 'one day of the eight e-mail metrics is left');

-- a campaign that stops sending is marked (its last counts)
UPDATE public.campaigns SET status = 'sent', send_finished_at = now()
WHERE id = 'c8400000-0000-0000-0000-00000000000b';
SELECT is(ARRAY(SELECT DISTINCT campaign_id FROM sending.rollup_marks),
    ARRAY['c8400000-0000-0000-0000-00000000000b']::uuid[], 'a campaign that stops sending is marked');
SELECT sending.rollup_due();
SELECT is((SELECT count(*)::int FROM sending.rollup_marks), 0, 'and rolled up');

-- only the engine's role runs it
SELECT tests.authenticate_as(:'ria');
SELECT throws_ok($$SELECT sending.rollup_due()$$, '42501', NULL, 'a user cannot run the roll-up');
SELECT throws_ok($$SELECT count(*) FROM sending.rollup_marks$$, '42501', NULL, 'nor read the marks');

SELECT * FROM finish();
ROLLBACK;
