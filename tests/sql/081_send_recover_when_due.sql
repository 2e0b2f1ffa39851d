-- tests/sql/081_send_recover_when_due.sql: migrations/081_send_recover_when_due.sql
-- — sending.recover runs the whole recovery (sending.recover_all) only when
-- there is something to recover or to set up, and answers 0 at once when
-- not; every case that has work still gets it done. Whether recover_all ran
-- is read from this transaction's function counters (track_functions).
BEGIN;
SELECT plan(31);
SET track_functions = 'all';

SELECT tests.create_user('rita@example.test', 'user') AS rita \gset
SELECT tests.clear_authentication();
UPDATE public.app_settings SET postal_address = '1 Main St', monthly_email_limit = 1000000,
    monthly_sms_limit = 1000000;
INSERT INTO public.contacts (user_id, email, first_name)
    SELECT :'rita', 'r' || g || '@due.test', 'R' || g FROM generate_series(1, 8) g;
INSERT INTO public.contacts (user_id, phone, first_name)
    SELECT :'rita', '+1555810000' || g, 'S' || g FROM generate_series(1, 3) g;
INSERT INTO public.sms_consent (phone_number, consent_given, consent_source)
    SELECT '+1555810000' || g, true, 'manual' FROM generate_series(1, 3) g
    ON CONFLICT (phone_number) DO UPDATE SET consent_given = true;
INSERT INTO public.campaigns (id, user_id, name, type, subject, content) VALUES
    ('c8100000-0000-0000-0000-000000000001', :'rita', 'Due', 'email', 'Hi', '<p>x</p>'),
    ('c8100000-0000-0000-0000-000000000002', :'rita', 'Due SMS', 'sms', NULL, 'Hi');
-- calls of recover_all in this transaction so far
CREATE FUNCTION pg_temp.full_runs() RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce(pg_stat_get_xact_function_calls('sending.recover_all(uuid)'::regprocedure), 0)
$$;
SELECT tests.authenticate_as_service();
SELECT sending.start('c8100000-0000-0000-0000-000000000001', 1);
SELECT sending.ensure_materialised('c8100000-0000-0000-0000-000000000001');

SELECT has_function('sending', 'recover_all', ARRAY['uuid'], '077''s recovery, renamed');
SELECT is((SELECT prosecdef FROM pg_proc WHERE oid = 'sending.recover(uuid)'::regprocedure), true,
    'the new recover is security definer');
SELECT ok(NOT has_function_privilege('authenticated', 'sending.recover(uuid)', 'execute')
          AND NOT has_function_privilege('authenticated', 'sending.recover_all(uuid)', 'execute')
          AND NOT has_function_privilege('anon', 'sending.recover_all(uuid)', 'execute'),
    'neither is callable by a user');
SELECT ok(has_function_privilege('service_role', 'sending.recover(uuid)', 'execute'),
    'the engine (service_role) may call recover');
SELECT ok(has_function_privilege('service_role', 'sending.recover_all(uuid)', 'execute'),
    'and recover_all (027''s grant, kept by the rename)');

-- another session's progress row is not this one's
SELECT tests.clear_authentication();
INSERT INTO sending.progress (campaign_id, recipients)
    VALUES ('c8100000-0000-0000-0000-000000000001', 8) ON CONFLICT DO NOTHING;
INSERT INTO sending.progress_parts (campaign_id, part)
    VALUES ('c8100000-0000-0000-0000-000000000001', pg_backend_pid() + 1000000);
SELECT tests.authenticate_as_service();

-- a session without its progress row: the whole recovery (it creates them)
SELECT is(sending.recover('c8100000-0000-0000-0000-000000000001'), 0, 'nothing lost');
SELECT is(pg_temp.full_runs(), 1::bigint,
    'no progress row of this session yet (another session''s is there): the whole recovery ran');
SELECT is((SELECT count(*)::int FROM sending.progress_parts
           WHERE campaign_id = 'c8100000-0000-0000-0000-000000000001' AND part = pg_backend_pid()), 1,
    'and created this session''s progress row');

-- nothing to do: answered at once, also in a claim
SELECT is(sending.recover('c8100000-0000-0000-0000-000000000001'), 0, 'nothing lost');
SELECT is(pg_temp.full_runs(), 1::bigint, 'nothing to do: the whole recovery did not run');
CREATE TEMP TABLE k1 AS SELECT * FROM sending.claim('email', 'c8100000-0000-0000-0000-000000000001',
    'a8100000-0000-0000-0000-000000000001', 4, 60);
SELECT is((SELECT count(*)::int FROM k1), 4, 'a claim of four');
SELECT is(pg_temp.full_runs(), 1::bigint, 'the claim''s look at dead workers did not run it either');

-- a group in flight whose lease ran out (its worker died): the whole recovery
SELECT is((SELECT cardinality(go) FROM sending.step('email', 'c8100000-0000-0000-0000-000000000001',
    'a8100000-0000-0000-0000-000000000001', NULL, ARRAY(SELECT id FROM k1 ORDER BY id LIMIT 2), NULL, NULL,
    3, 60, 60)), 2, 'two in flight');
SELECT is(sending.recover('c8100000-0000-0000-0000-000000000001'), 0, 'a live lease: nothing lost');
SELECT is(pg_temp.full_runs(), 1::bigint, 'and nothing run');
SELECT tests.clear_authentication();
UPDATE sending.holds SET lease_until = now() - interval '1 second'
WHERE campaign_id = 'c8100000-0000-0000-0000-000000000001';
SELECT tests.authenticate_as_service();
SELECT is(sending.recover('c8100000-0000-0000-0000-000000000001'), 2, 'an expired group: its two are unknown');
SELECT is((SELECT count(*)::int FROM public.email_messages
           WHERE campaign_id = 'c8100000-0000-0000-0000-000000000001' AND status = 'unknown'), 2,
    'marked so');
SELECT is((SELECT count(*)::int FROM sending.holds WHERE campaign_id = 'c8100000-0000-0000-0000-000000000001'), 0,
    'the expired holds are gone (the two only claimed went back)');
SELECT is(pg_temp.full_runs(), 2::bigint, 'by the whole recovery');

-- an expired reservation alone (claimed, nothing in flight): given back
SELECT coalesce((SELECT used FROM sending.monthly_usage WHERE month = sending.current_month() AND channel = 'email'), 0)
    AS used0 \gset
CREATE TEMP TABLE k2 AS SELECT * FROM sending.claim('email', 'c8100000-0000-0000-0000-000000000001',
    'a8100000-0000-0000-0000-000000000002', 2, 60);
SELECT is((SELECT used FROM sending.monthly_usage WHERE month = sending.current_month() AND channel = 'email'),
    :used0 + 2, 'two reserved');
SELECT tests.clear_authentication();
UPDATE sending.holds SET lease_until = now() - interval '1 second'
WHERE campaign_id = 'c8100000-0000-0000-0000-000000000001';
SELECT tests.authenticate_as_service();
SELECT is(sending.recover('c8100000-0000-0000-0000-000000000001'), 0, 'an expired reservation: nothing lost');
SELECT is((SELECT used FROM sending.monthly_usage WHERE month = sending.current_month() AND channel = 'email'),
    :used0, 'its monthly reservation went back');
SELECT is(pg_temp.full_runs(), 3::bigint, 'by the whole recovery');

-- a message whose own lease ran out (a lease on the row, not in a hold)
SELECT tests.clear_authentication();
UPDATE public.email_messages SET status = 'sending', lease_until = now() - interval '1 second'
WHERE id = (SELECT id FROM public.email_messages WHERE campaign_id = 'c8100000-0000-0000-0000-000000000001'
            AND status = 'queued' ORDER BY id LIMIT 1);
SELECT tests.authenticate_as_service();
SELECT is(sending.recover('c8100000-0000-0000-0000-000000000001'), 1, 'an expired lease on a message: unknown');
SELECT is(pg_temp.full_runs(), 4::bigint, 'by the whole recovery');

-- an SMS campaign's message whose lease ran out
SELECT sending.start('c8100000-0000-0000-0000-000000000002', 1);
SELECT sending.ensure_materialised('c8100000-0000-0000-0000-000000000002');
SELECT is(sending.recover('c8100000-0000-0000-0000-000000000002'), 0, 'SMS: nothing lost');
SELECT is(pg_temp.full_runs(), 5::bigint, 'its first look in this session sets up the progress rows');
SELECT tests.clear_authentication();
UPDATE public.sms_messages SET status = 'sending', lease_until = now() - interval '1 second'
WHERE id = (SELECT id FROM public.sms_messages WHERE campaign_id = 'c8100000-0000-0000-0000-000000000002'
            ORDER BY id LIMIT 1);
SELECT tests.authenticate_as_service();
SELECT is(sending.recover('c8100000-0000-0000-0000-000000000002'), 1, 'an expired lease on an SMS: unknown');
SELECT is(pg_temp.full_runs(), 6::bigint, 'by the whole recovery');

-- a campaign that is not sending always gets the whole recovery (the next
-- look, a cancelled campaign's drop)
SELECT sending.pause('c8100000-0000-0000-0000-000000000001', 'test');
SELECT is(sending.recover('c8100000-0000-0000-0000-000000000001'), 0, 'paused: nothing lost');
SELECT is(pg_temp.full_runs(), 7::bigint, 'but the whole recovery ran');

SELECT * FROM finish();
ROLLBACK;
