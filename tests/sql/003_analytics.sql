-- tests/sql/003_analytics.sql: public.set_updated_at() and public.analytics_data
-- (migrations/003_analytics.sql): schema, grants, and RLS for every role x command.
BEGIN;
SELECT plan(47);

-- ---------------------------------------------------------------------------
-- Schema
-- ---------------------------------------------------------------------------
SELECT has_table('public', 'analytics_data', 'analytics_data exists');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'public.analytics_data'::regclass),
          'RLS is enabled on analytics_data');
SELECT col_type_is('public', 'analytics_data', 'created_at', 'timestamp with time zone', 'created_at is timestamptz');
SELECT col_type_is('public', 'analytics_data', 'updated_at', 'timestamp with time zone', 'updated_at is timestamptz');
SELECT col_not_null('public', 'analytics_data', 'metric_type', 'metric_type is NOT NULL');
SELECT is((SELECT confdeltype::text FROM pg_constraint
           WHERE conrelid = 'public.analytics_data'::regclass AND contype = 'f'),
          'n', 'user_id references auth.users ON DELETE SET NULL (rows survive their owner)');
SELECT has_index('public', 'analytics_data', 'idx_analytics_data_user_date', 'index on (user_id, date)');
SELECT has_trigger('public', 'analytics_data', 'set_updated_at', 'updated_at trigger attached');
SELECT has_trigger('public', 'analytics_data', 'audit', 'audit trigger attached');
SELECT is(tests.privs('anon', 'public.analytics_data'), '', 'anon has no privilege on analytics_data');
SELECT is(tests.privs('authenticated', 'public.analytics_data'), 'DELETE,INSERT,SELECT,UPDATE',
          'authenticated has exactly SELECT/INSERT/UPDATE/DELETE');
SELECT is(tests.privs('service_role', 'public.analytics_data'),
          'DELETE,INSERT,REFERENCES,SELECT,TRIGGER,TRUNCATE,UPDATE', 'service_role has all');

-- ---------------------------------------------------------------------------
-- Fixture: alice and bob (users) own one row each
-- ---------------------------------------------------------------------------
SELECT tests.create_user('admin@example.test', 'admin') AS admin \gset
SELECT tests.create_user('viewer@example.test', 'viewer') AS viewer \gset
SELECT tests.create_user('alice@example.test', 'user') AS alice \gset
SELECT tests.create_user('bob@example.test', 'user') AS bob \gset

INSERT INTO public.analytics_data (id, user_id, metric_type, value, date, updated_at) VALUES
    ('a0000000-0000-0000-0000-00000000000a', :'alice', 'page_views', 10, '2024-01-01', '2000-01-01'),
    ('a0000000-0000-0000-0000-00000000000b', :'bob', 'page_views', 20, '2024-01-01', '2000-01-01');

-- ---------------------------------------------------------------------------
-- anon: no privilege at all
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as_anon();
SELECT throws_ok($$SELECT * FROM public.analytics_data$$, '42501', NULL, 'anon cannot SELECT');
SELECT throws_ok($$INSERT INTO public.analytics_data (metric_type) VALUES ('x')$$, '42501', NULL, 'anon cannot INSERT');
SELECT throws_ok($$UPDATE public.analytics_data SET value = 0$$, '42501', NULL, 'anon cannot UPDATE');
SELECT throws_ok($$DELETE FROM public.analytics_data$$, '42501', NULL, 'anon cannot DELETE');

-- ---------------------------------------------------------------------------
-- viewer: reads every row, writes nothing
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'viewer');
SELECT is((SELECT count(*) FROM public.analytics_data), 2::bigint, 'viewer reads all analytics rows');
SELECT throws_ok(format($$INSERT INTO public.analytics_data (user_id, metric_type) VALUES (%L, 'x')$$, :'viewer'),
                 '42501', NULL, 'viewer cannot INSERT even a row of their own');
SELECT is(tests.affected($$UPDATE public.analytics_data SET value = 0$$), 0::bigint, 'viewer UPDATE touches 0 rows');
SELECT is(tests.affected($$DELETE FROM public.analytics_data$$), 0::bigint, 'viewer DELETE touches 0 rows');

-- ---------------------------------------------------------------------------
-- alice (owner)
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'alice');
SELECT results_eq($$SELECT id FROM public.analytics_data$$,
                  $$VALUES ('a0000000-0000-0000-0000-00000000000a'::uuid)$$, 'alice reads only her row');
SELECT lives_ok($$INSERT INTO public.analytics_data (id, metric_type, value)
                  VALUES ('a0000000-0000-0000-0000-0000000000a2', 'clicks', 1)$$, 'alice can INSERT');
SELECT is((SELECT user_id FROM public.analytics_data WHERE id = 'a0000000-0000-0000-0000-0000000000a2'),
          :'alice'::uuid, 'user_id defaults to the caller');
SELECT throws_ok(format($$INSERT INTO public.analytics_data (user_id, metric_type) VALUES (%L, 'x')$$, :'bob'),
                 '42501', NULL, 'alice cannot INSERT a row owned by bob');
SELECT is(tests.affected($$UPDATE public.analytics_data SET value = 11 WHERE id = 'a0000000-0000-0000-0000-00000000000a'$$),
          1::bigint, 'alice can UPDATE her row');
SELECT throws_ok(format($$UPDATE public.analytics_data SET user_id = %L WHERE id = 'a0000000-0000-0000-0000-00000000000a'$$, :'bob'),
                 '42501', NULL, 'alice cannot move her row to bob');
SELECT is(tests.affected($$UPDATE public.analytics_data SET value = 0 WHERE id = 'a0000000-0000-0000-0000-00000000000b'$$),
          0::bigint, 'alice UPDATE of bob''s row touches 0 rows');
SELECT is(tests.affected($$DELETE FROM public.analytics_data WHERE id = 'a0000000-0000-0000-0000-00000000000b'$$),
          0::bigint, 'alice DELETE of bob''s row touches 0 rows');
SELECT is(tests.affected($$DELETE FROM public.analytics_data WHERE id = 'a0000000-0000-0000-0000-0000000000a2'$$),
          1::bigint, 'alice can DELETE her row');

-- ---------------------------------------------------------------------------
-- bob (another user) does not see alice's row
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'bob');
SELECT is((SELECT count(*) FROM public.analytics_data WHERE id = 'a0000000-0000-0000-0000-00000000000a'),
          0::bigint, 'bob does not see alice''s row');

-- ---------------------------------------------------------------------------
-- admin: reads and manages all
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'admin');
SELECT is((SELECT count(*) FROM public.analytics_data), 2::bigint, 'admin reads all rows');
SELECT lives_ok(format($$INSERT INTO public.analytics_data (id, user_id, metric_type)
                         VALUES ('a0000000-0000-0000-0000-0000000000c1', %L, 'x')$$, :'bob'),
                'admin can INSERT a row for another user');
SELECT is(tests.affected(format($$UPDATE public.analytics_data SET user_id = %L
                                    WHERE id = 'a0000000-0000-0000-0000-0000000000c1'$$, :'alice')),
          1::bigint, 'admin can UPDATE (and reassign) any row');
SELECT is(tests.affected($$DELETE FROM public.analytics_data WHERE id = 'a0000000-0000-0000-0000-0000000000c1'$$),
          1::bigint, 'admin can DELETE any row');

-- ---------------------------------------------------------------------------
-- service_role: everything, past RLS
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as_service();
SELECT is((SELECT count(*) FROM public.analytics_data), 2::bigint, 'service_role reads all rows');
SELECT lives_ok(format($$INSERT INTO public.analytics_data (id, user_id, metric_type)
                         VALUES ('a0000000-0000-0000-0000-0000000000d1', %L, 'x')$$, :'alice'),
                'service_role can INSERT');
SELECT is(tests.affected($$UPDATE public.analytics_data SET value = 5 WHERE id = 'a0000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can UPDATE');
SELECT is(tests.affected($$DELETE FROM public.analytics_data WHERE id = 'a0000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can DELETE');

-- ---------------------------------------------------------------------------
-- A role demoted to viewer keeps reading but can no longer write its own rows
-- ---------------------------------------------------------------------------
SELECT tests.clear_authentication();
UPDATE auth.users SET raw_app_meta_data = raw_app_meta_data || '{"role":"viewer"}' WHERE id = :'alice';
SELECT tests.authenticate_as(:'alice');
SELECT is(tests.affected($$UPDATE public.analytics_data SET value = 1 WHERE id = 'a0000000-0000-0000-0000-00000000000a'$$),
          0::bigint, 'a viewer cannot UPDATE even their own old row');
SELECT tests.clear_authentication();
UPDATE auth.users SET raw_app_meta_data = raw_app_meta_data || '{"role":"user"}' WHERE id = :'alice';

-- ---------------------------------------------------------------------------
-- updated_at trigger, audit trigger, CHECKs, owner deletion
-- ---------------------------------------------------------------------------
SELECT is((SELECT updated_at FROM public.analytics_data WHERE id = 'a0000000-0000-0000-0000-00000000000a'),
          now(), 'updated_at was set to now() by the UPDATE (fixture had 2000-01-01)');
SELECT is((SELECT updated_at FROM public.analytics_data WHERE id = 'a0000000-0000-0000-0000-00000000000b'),
          '2000-01-01'::timestamptz, 'a row nobody updated keeps its updated_at');
SELECT tests.authenticate_as_service();
UPDATE public.analytics_data SET updated_at = '1999-01-01' WHERE id = 'a0000000-0000-0000-0000-00000000000b';
SELECT tests.clear_authentication();
SELECT is((SELECT updated_at FROM public.analytics_data WHERE id = 'a0000000-0000-0000-0000-00000000000b'),
          now(), 'an explicit updated_at is overwritten with now()');
SELECT is((SELECT count(*) FROM public.audit_logs
           WHERE resource_type = 'analytics_data' AND resource_id = 'a0000000-0000-0000-0000-00000000000a'
             AND action = 'update' AND user_id = :'alice'),
          1::bigint, 'alice''s UPDATE was audited with her user id');
SELECT is((SELECT count(*) FROM public.audit_logs
           WHERE resource_type = 'analytics_data' AND resource_id = 'a0000000-0000-0000-0000-0000000000a2'),
          2::bigint, 'insert and delete of a row were audited');
SELECT throws_ok($$INSERT INTO public.analytics_data (metric_type) VALUES ('  ')$$, '23514', NULL,
                 'a blank metric_type is refused');
DELETE FROM auth.users WHERE id = :'bob';
SELECT is((SELECT user_id FROM public.analytics_data WHERE id = 'a0000000-0000-0000-0000-00000000000b'),
          NULL::uuid, 'deleting the owner keeps the row, owner NULL');
SELECT tests.authenticate_as(:'alice');
SELECT is((SELECT count(*) FROM public.analytics_data WHERE user_id IS NULL), 0::bigint,
          'an orphaned row is invisible to users');
SELECT tests.clear_authentication();

SELECT * FROM finish();
ROLLBACK;
