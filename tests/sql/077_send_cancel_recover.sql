-- tests/sql/077_send_cancel_recover.sql: migrations/077_send_cancel_recover.sql
-- in one session — a cancel gives back the reservations (ids cancelled,
-- monthly reservations returned) and has a worker look at its groups in
-- flight when their lease runs out (then unknown and counted, never
-- dropped); the finish deletes the empty reservations; a result that comes
-- after a recovery took its group (a relay slower than the lease) is
-- applied instead of lost; a temporary failure of a group a cancel left in
-- flight ends dropped, not queued for good; the upgrade looks at the holds
-- 075 stranded. The races with a second session are in
-- 077_send_cancel_race.sql.
BEGIN;
SELECT plan(39);

SELECT tests.create_user('cara@example.test', 'user') AS cara \gset
SELECT tests.clear_authentication();
UPDATE public.app_settings SET postal_address = '1 Main St', monthly_email_limit = 1000000;
INSERT INTO public.contacts (user_id, email, first_name)
    SELECT :'cara', 'c' || g || '@cancel.test', 'C' || g FROM generate_series(1, 16) g;
INSERT INTO public.campaigns (id, user_id, name, type, subject, content) VALUES
    ('c7700000-0000-0000-0000-000000000001', :'cara', 'Cancel', 'email', 'Hi', '<p>x</p>'),
    ('c7700000-0000-0000-0000-000000000002', :'cara', 'Finish', 'email', 'Hi', '<p>x</p>'),
    ('c7700000-0000-0000-0000-000000000003', :'cara', 'Late', 'email', 'Hi', '<p>x</p>'),
    ('c7700000-0000-0000-0000-000000000004', :'cara', 'Tempfail', 'email', 'Hi', '<p>x</p>');
-- the contacts of campaign 2 and 3: a segment each would do; simpler, the
-- messages of 2 and 3 are cut down after materialising (below)
SELECT tests.authenticate_as_service();
SELECT sending.start('c7700000-0000-0000-0000-000000000001', 1);
SELECT sending.ensure_materialised('c7700000-0000-0000-0000-000000000001');
SELECT coalesce((SELECT used FROM sending.monthly_usage WHERE month = sending.current_month() AND channel = 'email'), 0)
    AS used0 \gset

-- ---------------------------------------------------------------- cancel
CREATE TEMP TABLE k1 AS SELECT * FROM sending.claim('email', 'c7700000-0000-0000-0000-000000000001',
    'a7700000-0000-0000-0000-000000000001', 6, 60);
CREATE TEMP TABLE k2 AS SELECT * FROM sending.claim('email', 'c7700000-0000-0000-0000-000000000001',
    'a7700000-0000-0000-0000-000000000002', 4, 60);
-- claim 1 puts two in flight (its worker then dies: nobody settles them)
SELECT is((SELECT cardinality(go) FROM sending.step('email', 'c7700000-0000-0000-0000-000000000001',
    'a7700000-0000-0000-0000-000000000001', NULL, ARRAY(SELECT id FROM k1 ORDER BY id LIMIT 2), NULL, NULL,
    3, 60, 60)), 2, 'two in flight');
SELECT is((SELECT used FROM sending.monthly_usage WHERE month = sending.current_month() AND channel = 'email'),
    :used0 + 10, 'ten reserved');
SELECT tests.clear_authentication();
DELETE FROM jobs.jobs WHERE payload ->> 'campaign_id' = 'c7700000-0000-0000-0000-000000000001';
SELECT tests.authenticate_as_service();
SELECT sending.cancel('c7700000-0000-0000-0000-000000000001');
SELECT tests.clear_authentication();
SELECT is((SELECT count(*)::int FROM sending.holds WHERE campaign_id = 'c7700000-0000-0000-0000-000000000001'
           AND NOT in_flight), 0, 'the cancel deletes the reservations');
SELECT is((SELECT used FROM sending.monthly_usage WHERE month = sending.current_month() AND channel = 'email'),
    :used0 + 2, 'and gives back their monthly reservations (the two in flight stay counted)');
SELECT is((SELECT count(*)::int FROM public.email_messages WHERE id IN (SELECT id FROM k1 UNION SELECT id FROM k2)
           AND status = 'dropped'), 8, 'their messages are dropped');
SELECT is((SELECT count(*)::int FROM public.email_messages WHERE id IN (SELECT id FROM k1 ORDER BY id LIMIT 2)
           AND status = 'queued'), 2, 'what is in flight is left to its settle');
SELECT is((SELECT (new_value ->> 'returned')::int FROM public.audit_logs
           WHERE resource_id = 'c7700000-0000-0000-0000-000000000001' AND new_value ->> 'event' = 'cancelled'),
    8, 'the cancel''s audit says how many reservations went back');
SELECT is((SELECT count(*)::int FROM jobs.jobs WHERE kind = 'send.worker' AND status = 'pending'
           AND payload = '{"channel": "email", "campaign_id": "c7700000-0000-0000-0000-000000000001"}'::jsonb
           AND run_at = (SELECT min(lease_until) + interval '1 second' FROM sending.holds
                         WHERE campaign_id = 'c7700000-0000-0000-0000-000000000001' AND in_flight)), 1,
    'a worker looks at the campaign when the group''s lease runs out');
SELECT tests.authenticate_as_service();
-- a step of the cancelled campaign's other claim sends nothing
SELECT is((SELECT go FROM sending.step('email', 'c7700000-0000-0000-0000-000000000001',
    'a7700000-0000-0000-0000-000000000002', NULL, ARRAY(SELECT id FROM k2 ORDER BY id LIMIT 2), NULL, NULL,
    3, 60, 60)), NULL, 'a step after the cancel sends nothing');
-- the group's worker is dead: its lease runs out, the look (a worker's job
-- starts with sending.recover) makes it unknown
SELECT tests.clear_authentication();
UPDATE sending.holds SET lease_until = now() - interval '1 second'
WHERE campaign_id = 'c7700000-0000-0000-0000-000000000001';
DELETE FROM jobs.jobs WHERE payload ->> 'campaign_id' = 'c7700000-0000-0000-0000-000000000001';
SELECT tests.authenticate_as_service();
SELECT is(sending.recover('c7700000-0000-0000-0000-000000000001'), 2,
    'a cancelled campaign''s expired group is recovered');
SELECT is((SELECT count(*)::int FROM public.email_messages WHERE id IN (SELECT id FROM k1 ORDER BY id LIMIT 2)
           AND status = 'unknown'), 2, 'its messages are unknown, never dropped');
SELECT is((SELECT unknown_count FROM public.campaigns WHERE id = 'c7700000-0000-0000-0000-000000000001'), 2,
    'and counted');
SELECT is((SELECT count(*)::int FROM sending.holds WHERE campaign_id = 'c7700000-0000-0000-0000-000000000001'), 0,
    'the cancelled campaign holds nothing any more');
SELECT tests.clear_authentication();
SELECT is((SELECT count(*)::int FROM jobs.jobs WHERE payload ->> 'campaign_id' = 'c7700000-0000-0000-0000-000000000001'),
    0, 'and nobody looks again');
SELECT tests.authenticate_as_service();
SELECT is((SELECT used FROM sending.monthly_usage WHERE month = sending.current_month() AND channel = 'email'),
    :used0 + 2, 'the unknown ones stay counted in the month');

-- ---------------------------------------------------------------- finish
SELECT tests.clear_authentication();
UPDATE public.campaigns SET status = 'sending', send_started_at = now()
WHERE id IN ('c7700000-0000-0000-0000-000000000002', 'c7700000-0000-0000-0000-000000000003');
SELECT tests.authenticate_as_service();
SELECT sending.ensure_materialised('c7700000-0000-0000-0000-000000000002');
SELECT sending.ensure_materialised('c7700000-0000-0000-0000-000000000003');
SELECT tests.clear_authentication();
DELETE FROM public.email_messages WHERE campaign_id IN ('c7700000-0000-0000-0000-000000000002',
    'c7700000-0000-0000-0000-000000000003') AND recipient NOT IN ('c1@cancel.test', 'c2@cancel.test', 'c3@cancel.test');
SELECT tests.authenticate_as_service();
CREATE TEMP TABLE f1 AS SELECT * FROM sending.claim('email', 'c7700000-0000-0000-0000-000000000002',
    'a7700000-0000-0000-0000-000000000003', 10, 60);
SELECT is((SELECT count(*)::int FROM f1), 3, 'three to send');
SELECT is((SELECT count(*)::int FROM sending.progress_parts
           WHERE campaign_id = 'c7700000-0000-0000-0000-000000000002' AND part = pg_backend_pid()
             AND sent + failed + dropped = 0), 1,
    'the claim creates its session''s progress part (a later count never inserts it)');
-- the worker sends all three and settles them, then dies before its batch's end
SELECT sending.step('email', 'c7700000-0000-0000-0000-000000000002', 'a7700000-0000-0000-0000-000000000003',
    NULL, ARRAY(SELECT id FROM f1 ORDER BY id), NULL, NULL, 3, 60, 60);
SELECT sending.step('email', 'c7700000-0000-0000-0000-000000000002', 'a7700000-0000-0000-0000-000000000003',
    (SELECT jsonb_agg(jsonb_build_object('id', id, 'outcome', 'accepted')) FROM f1), NULL, NULL, NULL, 3, 60, 60);
SELECT is((SELECT count(*)::int || ' ' || sum(cardinality(ids))::int FROM sending.holds
           WHERE campaign_id = 'c7700000-0000-0000-0000-000000000002'), '1 0', 'an empty reservation is left');
SELECT is((SELECT status FROM sending.finish_if_done('c7700000-0000-0000-0000-000000000002')), 'sent',
    'the campaign is sent');
SELECT is((SELECT count(*)::int FROM sending.holds WHERE campaign_id = 'c7700000-0000-0000-0000-000000000002'), 0,
    'and its empty reservation is gone');

-- ---------------------------------------------------------------- a slow relay
CREATE TEMP TABLE l1 AS SELECT * FROM sending.claim('email', 'c7700000-0000-0000-0000-000000000003',
    'a7700000-0000-0000-0000-000000000004', 10, 60);
SELECT is((SELECT cardinality(go) FROM sending.step('email', 'c7700000-0000-0000-0000-000000000003',
    'a7700000-0000-0000-0000-000000000004', NULL, ARRAY(SELECT id FROM l1 ORDER BY id), '[["https://l/1"], null, null]',
    NULL, 3, 60, 60)), 3, 'a group of three in flight');
SELECT (SELECT used FROM sending.monthly_usage WHERE month = sending.current_month() AND channel = 'email')
    AS used1 \gset
-- the relay takes longer than the lease: a recovery (another worker's claim) takes the group
SELECT tests.clear_authentication();
UPDATE sending.holds SET lease_until = now() - interval '1 second'
WHERE campaign_id = 'c7700000-0000-0000-0000-000000000003' AND in_flight;
SELECT tests.authenticate_as_service();
SELECT is(sending.recover('c7700000-0000-0000-0000-000000000003'), 3, 'the group is taken for lost');
SELECT is((SELECT unknown_count FROM public.campaigns WHERE id = 'c7700000-0000-0000-0000-000000000003'), 3,
    'three unknown');
-- then the worker brings the results: one accepted, one refused, one unknown
SELECT is((SELECT status FROM sending.step('email', 'c7700000-0000-0000-0000-000000000003',
    'a7700000-0000-0000-0000-000000000004',
    jsonb_build_array(
        jsonb_build_object('id', (SELECT id FROM l1 ORDER BY id LIMIT 1), 'outcome', 'accepted',
                           'provider_id', '<late-1@x>'),
        jsonb_build_object('id', (SELECT id FROM l1 ORDER BY id OFFSET 1 LIMIT 1), 'outcome', 'permfail',
                           'error', '550 no such user'),
        jsonb_build_object('id', (SELECT id FROM l1 ORDER BY id OFFSET 2 LIMIT 1), 'outcome', 'unknown',
                           'error', 'timeout')),
    NULL, NULL, NULL, 3, 60, 60)), 'sending', 'the late settle runs');
SELECT is((SELECT string_agg(status || ':' || coalesce(message_id, '-') || ':' || coalesce(last_error, '-'), ' '
                             ORDER BY id)
           FROM public.email_messages WHERE id IN (SELECT id FROM l1)),
    'sent:<late-1@x>:- failed:-:550 no such user unknown:-:in flight when its worker stopped: may or may not have been delivered',
    'the accepted one is sent, the refused one failed, the unknown one stays');
SELECT is((SELECT links::text FROM public.email_messages WHERE id = (SELECT id FROM l1 ORDER BY id LIMIT 1)),
    '["https://l/1"]', 'with its links (kept by the recovery)');
SELECT is((SELECT unknown_count FROM public.campaigns WHERE id = 'c7700000-0000-0000-0000-000000000003'), 1,
    'the campaign counts one unknown');
SELECT is((SELECT sent || ' ' || failed FROM sending.progress_counts
           WHERE campaign_id = 'c7700000-0000-0000-0000-000000000003'), '1 1', 'one sent, one failed');
SELECT is((SELECT used FROM sending.monthly_usage WHERE month = sending.current_month() AND channel = 'email'),
    :used1 - 1, 'the refused one''s monthly reservation goes back');
-- the same results again (never by the engine; a replay) change nothing
SELECT sending.step('email', 'c7700000-0000-0000-0000-000000000003', 'a7700000-0000-0000-0000-000000000004',
    jsonb_build_array(jsonb_build_object('id', (SELECT id FROM l1 ORDER BY id LIMIT 1), 'outcome', 'accepted')),
    NULL, NULL, NULL, 3, 60, 60);
SELECT is((SELECT unknown_count::text || ' ' || (SELECT sent FROM sending.progress_counts
           WHERE campaign_id = 'c7700000-0000-0000-0000-000000000003')::text
           FROM public.campaigns WHERE id = 'c7700000-0000-0000-0000-000000000003'), '1 1',
    'a result applied once is not counted twice');

-- ---------------------------------------------------------------- tempfail after a cancel
SELECT tests.clear_authentication();
UPDATE public.campaigns SET status = 'sending', send_started_at = now()
WHERE id = 'c7700000-0000-0000-0000-000000000004';
SELECT tests.authenticate_as_service();
SELECT sending.ensure_materialised('c7700000-0000-0000-0000-000000000004');
SELECT tests.clear_authentication();
DELETE FROM public.email_messages WHERE campaign_id = 'c7700000-0000-0000-0000-000000000004'
  AND recipient NOT IN ('c1@cancel.test', 'c2@cancel.test', 'c3@cancel.test');
SELECT tests.authenticate_as_service();
CREATE TEMP TABLE t1 AS SELECT * FROM sending.claim('email', 'c7700000-0000-0000-0000-000000000004',
    'a7700000-0000-0000-0000-000000000005', 10, 60);
SELECT is((SELECT cardinality(go) FROM sending.step('email', 'c7700000-0000-0000-0000-000000000004',
    'a7700000-0000-0000-0000-000000000005', NULL, ARRAY(SELECT id FROM t1 ORDER BY id LIMIT 2), NULL,
    NULL, 3, 60, 60)), 2, 'two of three in flight');
SELECT sending.cancel('c7700000-0000-0000-0000-000000000004');
-- the provider answers 421 for both: a temporary failure keeps them queued
SELECT is((SELECT status FROM sending.step('email', 'c7700000-0000-0000-0000-000000000004',
    'a7700000-0000-0000-0000-000000000005',
    (SELECT jsonb_agg(jsonb_build_object('id', id, 'outcome', 'tempfail', 'error', '421 try later'))
     FROM (SELECT id FROM t1 ORDER BY id LIMIT 2) x),
    NULL, NULL, NULL, 3, 60, 60)), 'cancelled', 'the settle of the cancelled campaign''s group runs');
SELECT is((SELECT count(*)::int FROM public.email_messages
           WHERE campaign_id = 'c7700000-0000-0000-0000-000000000004' AND status = 'queued'), 2,
    'the two are queued after the settle');
-- the look the cancel asked for (a worker's job starts with sending.recover)
SELECT tests.clear_authentication();
SELECT is((SELECT count(*)::int FROM jobs.jobs WHERE kind = 'send.worker' AND status = 'pending'
           AND payload ->> 'campaign_id' = 'c7700000-0000-0000-0000-000000000004'), 1,
    'the cancel asked for a look');
SELECT tests.authenticate_as_service();
SELECT is(sending.recover('c7700000-0000-0000-0000-000000000004'), 0, 'the look makes nothing unknown');
SELECT is((SELECT string_agg(status, ',') FROM public.email_messages
           WHERE campaign_id = 'c7700000-0000-0000-0000-000000000004'), 'dropped,dropped,dropped',
    'and drops what the settle left queued: nothing waits on a cancelled campaign');
SELECT is((SELECT sent || ' ' || failed || ' ' || dropped FROM sending.progress_counts
           WHERE campaign_id = 'c7700000-0000-0000-0000-000000000004'), '0 0 3', 'each counted once, dropped');

-- ---------------------------------------------------------------- holds 075 stranded
-- a campaign cancelled before 077 (075's cancel kept its holds and asked
-- for no look): the upgrade's one-off asks for one
SELECT tests.clear_authentication();
INSERT INTO sending.holds (campaign_id, claim, channel, in_flight, lease_until, ids)
VALUES ('c7700000-0000-0000-0000-000000000001', 'a7700000-0000-0000-0000-000000000009', 'email', false,
        now() + interval '30 seconds', ARRAY(SELECT id FROM k2 ORDER BY id LIMIT 1));
DELETE FROM jobs.jobs WHERE payload ->> 'campaign_id' = 'c7700000-0000-0000-0000-000000000001';
SELECT cmp_ok(sending.recover_stranded(), '>=', 1, 'the upgrade looks at the campaigns that hold without sending');
SELECT is((SELECT count(*)::int FROM jobs.jobs WHERE kind = 'send.worker' AND status = 'pending'
           AND payload ->> 'campaign_id' = 'c7700000-0000-0000-0000-000000000001'
           AND run_at = (SELECT min(lease_until) + interval '1 second' FROM sending.holds
                         WHERE campaign_id = 'c7700000-0000-0000-0000-000000000001')), 1,
    'a cancelled campaign''s stranded reservation is looked at when its lease runs out');

SELECT * FROM finish();
ROLLBACK;
