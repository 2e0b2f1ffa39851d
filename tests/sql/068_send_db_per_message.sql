-- tests/sql/068_send_db_per_message.sql: migrations/068_send_db_per_message.sql —
-- consent and suppression written into the materialise and the step (the
-- rule of sending.allowed, unchanged: suppressions matched trimmed and in
-- any case), the settle per channel with updated_at, set_updated_at still
-- stamping every other update, and a campaign's progress parts folded into
-- its row when it stops sending, with the exact counts unchanged.
BEGIN;
SELECT plan(20);

SELECT tests.create_user('dora@example.test', 'user') AS dora \gset
SELECT tests.clear_authentication();
UPDATE public.app_settings SET monthly_email_limit = 1000000;
INSERT INTO public.campaigns (id, user_id, name, type, subject, content)
    VALUES ('c6800000-0000-0000-0000-000000000001', :'dora', 'Fold', 'email', 'Hi', '<p>x</p>');
INSERT INTO public.contacts (user_id, email, first_name) VALUES
    (:'dora', 'd1@example.test', 'D1'), (:'dora', 'd2@example.test', 'D2'),
    (:'dora', 'd3@example.test', 'D3'), (:'dora', 'd4@example.test', 'D4'),
    (:'dora', 'out@example.test', 'O');
INSERT INTO public.email_subscriptions (email, subscribed) VALUES ('out@example.test', false)
    ON CONFLICT (email) DO UPDATE SET subscribed = false;

-- materialise: the unsubscribed address is skipped, as sending.allowed says
SELECT tests.authenticate_as_service();
SELECT sending.start('c6800000-0000-0000-0000-000000000001', 1);
SELECT sending.ensure_materialised('c6800000-0000-0000-0000-000000000001');
SELECT is((SELECT string_agg(recipient, ',' ORDER BY recipient) FROM public.email_messages
           WHERE campaign_id = 'c6800000-0000-0000-0000-000000000001'),
    'd1@example.test,d2@example.test,d3@example.test,d4@example.test',
    'materialised: the unsubscribed address is not');
SELECT is((SELECT count(*)::int FROM public.email_messages m
           WHERE m.campaign_id = 'c6800000-0000-0000-0000-000000000001'
             AND NOT sending.allowed('email', m.recipient)), 0,
    'every materialised recipient is one sending.allowed allows');

-- after materialising: d2 is suppressed (stored trimmed and lowered), d3 unsubscribes
SELECT public.suppress('email', '  D2@Example.TEST ', 'hard_bounce');
INSERT INTO public.email_subscriptions (email, subscribed) VALUES ('d3@example.test', false)
    ON CONFLICT (email) DO UPDATE SET subscribed = false;
CREATE TEMP TABLE c68 AS
    SELECT * FROM sending.claim('email', 'c6800000-0000-0000-0000-000000000001',
                                'a6800000-0000-0000-0000-000000000001', 10, 60);
SELECT is((SELECT count(*)::int FROM c68), 4, 'the four are claimed');
CREATE TEMP TABLE s68 AS SELECT * FROM sending.step('email', 'c6800000-0000-0000-0000-000000000001',
    'a6800000-0000-0000-0000-000000000001', NULL,
    (SELECT array_agg(id ORDER BY recipient) FROM c68), NULL, NULL, 3, 60, 60);
SELECT is((SELECT array_agg(g ORDER BY g) FROM s68, unnest(s68.go) g),
    (SELECT array_agg(id ORDER BY id) FROM c68 WHERE recipient IN ('d1@example.test', 'd4@example.test')),
    'right before sending: the suppressed and the unsubscribed addresses do not go');
SELECT is((SELECT string_agg(recipient || '=' || status, ',' ORDER BY recipient) FROM public.email_messages
           WHERE campaign_id = 'c6800000-0000-0000-0000-000000000001'),
    'd1@example.test=queued,d2@example.test=dropped,d3@example.test=dropped,d4@example.test=queued',
    'they are dropped, the others wait in flight');
SELECT is((SELECT string_agg(m.recipient || '=' || sending.allowed('email', m.recipient), ',' ORDER BY m.recipient)
           FROM public.email_messages m WHERE m.campaign_id = 'c6800000-0000-0000-0000-000000000001'),
    'd1@example.test=true,d2@example.test=false,d3@example.test=false,d4@example.test=true',
    'the same answers as sending.allowed');
SELECT is((SELECT count(*)::int FROM sending.leases WHERE claim = 'a6800000-0000-0000-0000-000000000001'
             AND in_flight), 2, 'two marked in flight');

-- the settle (its own e-mail statement) stamps updated_at and counts the sends
UPDATE public.email_messages SET updated_at = '2000-01-01'
WHERE campaign_id = 'c6800000-0000-0000-0000-000000000001' AND status = 'queued';
SELECT is((SELECT count(*)::int FROM public.email_messages
           WHERE campaign_id = 'c6800000-0000-0000-0000-000000000001' AND updated_at = now()), 4,
    'set_updated_at still stamps an update that sets another time');
CREATE TEMP TABLE s68b AS SELECT * FROM sending.step('email', 'c6800000-0000-0000-0000-000000000001',
    'a6800000-0000-0000-0000-000000000001',
    (SELECT jsonb_agg(jsonb_build_object('id', id, 'outcome', 'accepted', 'provider_id', '<' || recipient || '>'))
     FROM c68 WHERE recipient IN ('d1@example.test', 'd4@example.test')),
    NULL, NULL, (SELECT array_agg(id) FROM c68), 3, 60, 60);
SELECT is((SELECT string_agg(recipient || '=' || status || '=' || (updated_at = now()), ',' ORDER BY recipient)
           FROM public.email_messages WHERE campaign_id = 'c6800000-0000-0000-0000-000000000001'),
    'd1@example.test=sent=true,d2@example.test=dropped=true,d3@example.test=dropped=true,d4@example.test=sent=true',
    'settled: sent, with updated_at now');
SELECT is((SELECT status FROM s68b), 'sent', 'the last batch end finishes the campaign');

-- finished: its parts are folded into its row, the exact counts unchanged
SELECT is((SELECT count(*)::int FROM sending.progress_parts
           WHERE campaign_id = 'c6800000-0000-0000-0000-000000000001'), 0,
    'a sent campaign keeps no progress parts');
SELECT is((SELECT sent || ' ' || failed || ' ' || dropped FROM sending.progress
           WHERE campaign_id = 'c6800000-0000-0000-0000-000000000001'), '2 0 2',
    'they were added to its row');
SELECT is((SELECT sent || ' ' || failed || ' ' || dropped FROM sending.progress_counts
           WHERE campaign_id = 'c6800000-0000-0000-0000-000000000001'), '2 0 2',
    'the exact counts are those of the messages');
SELECT is((SELECT sent_count || ' ' || dropped_count FROM public.campaign_progress
           WHERE id = 'c6800000-0000-0000-0000-000000000001'), '2 2', 'and published');

-- fold_progress itself: adds every part's counts, deletes the parts; later counts go to a new part
SELECT tests.clear_authentication();
INSERT INTO sending.progress_parts (campaign_id, part, sent, failed, dropped) VALUES
    ('c6800000-0000-0000-0000-000000000001', -1, 5, 1, 0),
    ('c6800000-0000-0000-0000-000000000001', -2, 2, 0, 3);
SELECT is((SELECT sent || ' ' || failed || ' ' || dropped FROM sending.progress_counts
           WHERE campaign_id = 'c6800000-0000-0000-0000-000000000001'), '9 1 5', 'two parts more');
SELECT sending.fold_progress('c6800000-0000-0000-0000-000000000001');
SELECT is((SELECT count(*)::int FROM sending.progress_parts
           WHERE campaign_id = 'c6800000-0000-0000-0000-000000000001'), 0, 'a fold deletes the parts');
SELECT is((SELECT sent || ' ' || failed || ' ' || dropped FROM sending.progress_counts
           WHERE campaign_id = 'c6800000-0000-0000-0000-000000000001'), '9 1 5',
    'and the exact counts do not move');
SELECT sending.count_progress('c6800000-0000-0000-0000-000000000001', 1, 0, 0);
SELECT is((SELECT sent FROM sending.progress_counts WHERE campaign_id = 'c6800000-0000-0000-0000-000000000001'),
    10, 'a count after the fold adds to them');

-- a cancel folds too
INSERT INTO public.campaigns (id, user_id, name, type, subject, content)
    VALUES ('c6800000-0000-0000-0000-000000000002', :'dora', 'Cancel', 'email', 'Hi', '<p>x</p>');
SELECT sending.count_progress('c6800000-0000-0000-0000-000000000002', 3, 0, 1);
SELECT sending.cancel('c6800000-0000-0000-0000-000000000002');
SELECT is((SELECT count(*)::int FROM sending.progress_parts
           WHERE campaign_id = 'c6800000-0000-0000-0000-000000000002'), 0, 'a cancelled campaign keeps no parts');
SELECT is((SELECT sent || ' ' || dropped FROM sending.progress_counts
           WHERE campaign_id = 'c6800000-0000-0000-0000-000000000002'), '3 1', 'with the same counts');

SELECT * FROM finish();
ROLLBACK;
