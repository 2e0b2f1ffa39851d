-- tests/sql/004_campaigns.sql: public.campaigns and public.reports
-- (migrations/004_campaigns.sql): schema, grants, RLS for every role x command,
-- soft delete, and that a report can only name a campaign of its owner.
BEGIN;
SELECT plan(78);

-- ---------------------------------------------------------------------------
-- Schema
-- ---------------------------------------------------------------------------
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'public.campaigns'::regclass), 'RLS on campaigns');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'public.reports'::regclass), 'RLS on reports');
SELECT col_type_is('public', 'campaigns', 'scheduled_date', 'timestamp with time zone', 'scheduled_date is timestamptz');
SELECT col_type_is('public', 'campaigns', 'deleted_at', 'timestamp with time zone', 'campaigns has deleted_at (soft delete)');
SELECT col_default_is('public', 'campaigns', 'status', 'draft', 'status defaults to draft');
SELECT col_type_is('public', 'reports', 'generated_at', 'timestamp with time zone', 'generated_at is timestamptz');
SELECT is((SELECT confdeltype::text FROM pg_constraint
           WHERE conrelid = 'public.campaigns'::regclass AND contype = 'f'
             AND confrelid = 'auth.users'::regclass),
          'n', 'campaigns.user_id is ON DELETE SET NULL');
SELECT is((SELECT confdeltype::text FROM pg_constraint
           WHERE conrelid = 'public.reports'::regclass AND contype = 'f'
             AND confrelid = 'public.campaigns'::regclass),
          'n', 'reports.campaign_id is ON DELETE SET NULL (reports outlive campaigns)');
SELECT has_index('public', 'campaigns', 'idx_campaigns_scheduled', 'scheduler index on campaigns');
SELECT has_trigger('public', 'campaigns', 'set_updated_at', 'campaigns updated_at trigger');
SELECT has_trigger('public', 'campaigns', 'audit', 'campaigns audit trigger');
SELECT has_trigger('public', 'reports', 'audit', 'reports audit trigger');
SELECT is(tests.privs('anon', 'public.campaigns'), '', 'anon has no privilege on campaigns');
SELECT is(tests.privs('anon', 'public.reports'), '', 'anon has no privilege on reports');
SELECT is(tests.privs('authenticated', 'public.campaigns'), 'DELETE,SELECT',
          'authenticated: SELECT/DELETE on campaigns, INSERT/UPDATE by column (018)');
SELECT is(tests.privs('authenticated', 'public.reports'), 'DELETE,SELECT',
          'authenticated: SELECT/DELETE on reports: reports are generated (018)');

-- ---------------------------------------------------------------------------
-- Fixture
-- ---------------------------------------------------------------------------
SELECT tests.create_user('admin@example.test', 'admin') AS admin \gset
SELECT tests.create_user('viewer@example.test', 'viewer') AS viewer \gset
SELECT tests.create_user('alice@example.test', 'user') AS alice \gset
SELECT tests.create_user('bob@example.test', 'user') AS bob \gset

INSERT INTO public.campaigns (id, user_id, name, type, updated_at) VALUES
    ('c0000000-0000-0000-0000-00000000000a', :'alice', 'Alice spring', 'email', '2000-01-01'),
    ('c0000000-0000-0000-0000-00000000000b', :'bob', 'Bob spring', 'sms', '2000-01-01');
INSERT INTO public.reports (id, user_id, campaign_id, report_type, data) VALUES
    ('e0000000-0000-0000-0000-00000000000a', :'alice', 'c0000000-0000-0000-0000-00000000000a', 'summary', '{"sent": 1}'),
    ('e0000000-0000-0000-0000-00000000000b', :'bob', 'c0000000-0000-0000-0000-00000000000b', 'summary', '{"sent": 2}'),
    ('e0000000-0000-0000-0000-0000000000a3', :'alice', NULL, 'overall', '{"sent": 3}');

-- ---------------------------------------------------------------------------
-- anon
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as_anon();
SELECT throws_ok($$SELECT * FROM public.campaigns$$, '42501', NULL, 'anon cannot SELECT campaigns');
SELECT throws_ok($$INSERT INTO public.campaigns (name, type) VALUES ('x', 'email')$$, '42501', NULL, 'anon cannot INSERT campaigns');
SELECT throws_ok($$UPDATE public.campaigns SET name = 'x'$$, '42501', NULL, 'anon cannot UPDATE campaigns');
SELECT throws_ok($$DELETE FROM public.campaigns$$, '42501', NULL, 'anon cannot DELETE campaigns');
SELECT throws_ok($$SELECT * FROM public.reports$$, '42501', NULL, 'anon cannot SELECT reports');
SELECT throws_ok($$INSERT INTO public.reports (report_type) VALUES ('x')$$, '42501', NULL, 'anon cannot INSERT reports');
SELECT throws_ok($$UPDATE public.reports SET data = '{}'$$, '42501', NULL, 'anon cannot UPDATE reports');
SELECT throws_ok($$DELETE FROM public.reports$$, '42501', NULL, 'anon cannot DELETE reports');

-- ---------------------------------------------------------------------------
-- viewer: reads every campaign and report, writes nothing
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'viewer');
SELECT is((SELECT count(*) FROM public.campaigns), 2::bigint, 'viewer reads all campaigns');
SELECT throws_ok(format($$INSERT INTO public.campaigns (user_id, name, type) VALUES (%L, 'v', 'email')$$, :'viewer'),
                 '42501', NULL, 'viewer cannot INSERT a campaign');
SELECT is(tests.affected($$UPDATE public.campaigns SET name = 'v'$$), 0::bigint, 'viewer UPDATE of campaigns touches 0 rows');
SELECT is(tests.affected($$DELETE FROM public.campaigns$$), 0::bigint, 'viewer DELETE of campaigns touches 0 rows');
SELECT is((SELECT count(*) FROM public.reports), 3::bigint, 'viewer reads all reports');
SELECT throws_ok(format($$INSERT INTO public.reports (user_id, report_type) VALUES (%L, 'v')$$, :'viewer'),
                 '42501', NULL, 'viewer cannot INSERT a report');
SELECT throws_ok($$UPDATE public.reports SET data = '{}'$$, '42501', NULL, 'viewer cannot UPDATE reports');
SELECT is(tests.affected($$DELETE FROM public.reports$$), 0::bigint, 'viewer DELETE of reports touches 0 rows');

-- ---------------------------------------------------------------------------
-- alice (owner) on campaigns
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'alice');
SELECT results_eq($$SELECT id FROM public.campaigns$$, $$VALUES ('c0000000-0000-0000-0000-00000000000a'::uuid)$$,
                  'alice reads only her campaign');
SELECT lives_ok($$INSERT INTO public.campaigns (id, name, type) VALUES ('c0000000-0000-0000-0000-0000000000a2', 'Draft', 'sms')$$,
                'alice can INSERT a campaign (owner defaults to her)');
SELECT is((SELECT status FROM public.campaigns WHERE id = 'c0000000-0000-0000-0000-0000000000a2')::text, 'draft',
          'a new campaign is a draft');
SELECT throws_ok(format($$INSERT INTO public.campaigns (user_id, name, type) VALUES (%L, 'x', 'email')$$, :'bob'),
                 '42501', NULL, 'alice cannot INSERT a campaign owned by bob');
SELECT is(tests.affected($$UPDATE public.campaigns SET name = 'Alice summer' WHERE id = 'c0000000-0000-0000-0000-00000000000a'$$),
          1::bigint, 'alice can UPDATE her campaign');
SELECT throws_ok(format($$UPDATE public.campaigns SET user_id = %L WHERE id = 'c0000000-0000-0000-0000-00000000000a'$$, :'bob'),
                 '42501', NULL, 'alice cannot move her campaign to bob');
SELECT is(tests.affected($$UPDATE public.campaigns SET name = 'x' WHERE id = 'c0000000-0000-0000-0000-00000000000b'$$),
          0::bigint, 'alice UPDATE of bob''s campaign touches 0 rows');
SELECT is(tests.affected($$DELETE FROM public.campaigns WHERE id = 'c0000000-0000-0000-0000-00000000000b'$$),
          0::bigint, 'alice DELETE of bob''s campaign touches 0 rows');
SELECT throws_ok($$UPDATE public.campaigns SET deleted_at = now() WHERE id = 'c0000000-0000-0000-0000-0000000000a2'$$,
                 '42501', NULL, 'alice cannot write deleted_at directly (018)');
SELECT is((SELECT (public.soft_delete_campaign('c0000000-0000-0000-0000-0000000000a2')).deleted_at IS NOT NULL),
          true, 'alice can soft-delete her campaign through soft_delete_campaign()');
SELECT is((SELECT count(*) FROM public.campaigns WHERE deleted_at IS NOT NULL), 1::bigint,
          'the soft-deleted campaign stays readable by its owner');
SELECT is((SELECT (public.restore_campaign('c0000000-0000-0000-0000-0000000000a2')).deleted_at), NULL::timestamptz,
          'alice can restore her soft-deleted campaign through restore_campaign()');
SELECT is(tests.affected($$DELETE FROM public.campaigns WHERE id = 'c0000000-0000-0000-0000-0000000000a2'$$),
          1::bigint, 'alice can hard-DELETE her draft without history');

-- alice on reports
SELECT results_eq($$SELECT id FROM public.reports ORDER BY id$$,
                  $$VALUES ('e0000000-0000-0000-0000-00000000000a'::uuid), ('e0000000-0000-0000-0000-0000000000a3'::uuid)$$,
                  'alice reads only her reports');
SELECT throws_ok($$INSERT INTO public.reports (campaign_id, report_type, data)
                   VALUES ('c0000000-0000-0000-0000-00000000000a', 'campaign_performance', '{"sent": 1000000}')$$,
                 '42501', NULL, 'alice cannot INSERT a report, even on her campaign: reports are generated');
SELECT throws_ok($$INSERT INTO public.reports (report_type, campaign_id) VALUES ('spy', 'c0000000-0000-0000-0000-00000000000b')$$,
                 '42501', NULL, 'alice cannot INSERT a report on bob''s campaign');
SELECT throws_ok($$UPDATE public.reports SET data = '{"sent": 1000000}' WHERE id = 'e0000000-0000-0000-0000-00000000000a'$$,
                 '42501', NULL, 'alice cannot UPDATE the data of her report');
SELECT throws_ok($$UPDATE public.reports SET generated_at = now() - interval '1 year', report_type = 'x'
                   WHERE id = 'e0000000-0000-0000-0000-00000000000a'$$,
                 '42501', NULL, 'alice cannot UPDATE report_type or generated_at');
SELECT is(tests.affected($$DELETE FROM public.reports WHERE id = 'e0000000-0000-0000-0000-00000000000b'$$),
          0::bigint, 'alice DELETE of bob''s report touches 0 rows');
SELECT is(tests.affected($$DELETE FROM public.reports WHERE id = 'e0000000-0000-0000-0000-0000000000a3'$$),
          1::bigint, 'alice can DELETE her report');

-- ---------------------------------------------------------------------------
-- bob (another user)
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'bob');
SELECT is((SELECT count(*) FROM public.campaigns WHERE user_id = :'alice'), 0::bigint, 'bob sees none of alice''s campaigns');
SELECT is((SELECT count(*) FROM public.reports WHERE user_id = :'alice'), 0::bigint, 'bob sees none of alice''s reports');

-- ---------------------------------------------------------------------------
-- admin
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'admin');
SELECT is((SELECT count(*) FROM public.campaigns), 2::bigint, 'admin reads all campaigns');
SELECT lives_ok(format($$INSERT INTO public.campaigns (id, user_id, name, type)
                         VALUES ('c0000000-0000-0000-0000-0000000000c1', %L, 'For bob', 'email')$$, :'bob'),
                'admin can INSERT a campaign for another user');
SELECT is(tests.affected(format($$UPDATE public.campaigns SET user_id = %L WHERE id = 'c0000000-0000-0000-0000-0000000000c1'$$, :'alice')),
          1::bigint, 'admin can UPDATE and reassign any campaign');
SELECT is(tests.affected($$DELETE FROM public.campaigns WHERE id = 'c0000000-0000-0000-0000-0000000000c1'$$),
          1::bigint, 'admin can DELETE any campaign');
SELECT is((SELECT count(*) FROM public.reports), 2::bigint, 'admin reads all reports');
SELECT throws_ok($$INSERT INTO public.reports (id, campaign_id, report_type)
                   VALUES ('e0000000-0000-0000-0000-0000000000c1', 'c0000000-0000-0000-0000-00000000000b', 'audit')$$,
                 '42501', NULL, 'admin cannot INSERT a report either: reports are generated');
SELECT throws_ok($$UPDATE public.reports SET data = '{}' WHERE id = 'e0000000-0000-0000-0000-00000000000b'$$,
                 '42501', NULL, 'admin cannot UPDATE a report');
SELECT is(tests.affected($$DELETE FROM public.reports WHERE id = 'e0000000-0000-0000-0000-00000000000b'$$),
          1::bigint, 'admin can DELETE any report');

-- ---------------------------------------------------------------------------
-- service_role
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as_service();
SELECT is((SELECT count(*) FROM public.campaigns), 2::bigint, 'service_role reads all campaigns');
SELECT lives_ok(format($$INSERT INTO public.campaigns (id, user_id, name, type, status, scheduled_date)
                         VALUES ('c0000000-0000-0000-0000-0000000000d1', %L, 'Sched', 'email', 'scheduled', now() + interval '1 day')$$, :'alice'),
                'service_role can INSERT a campaign');
SELECT is(tests.affected($$UPDATE public.campaigns SET status = 'sending' WHERE id = 'c0000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can UPDATE a campaign');
SELECT is(tests.affected($$DELETE FROM public.campaigns WHERE id = 'c0000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can DELETE a campaign');
SELECT is((SELECT count(*) FROM public.reports), 1::bigint, 'service_role reads all reports');
SELECT lives_ok($$INSERT INTO public.reports (id, report_type) VALUES ('e0000000-0000-0000-0000-0000000000d1', 'sys')$$,
                'service_role can INSERT a report');
SELECT is(tests.affected($$UPDATE public.reports SET data = '{}' WHERE id = 'e0000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can UPDATE a report');
SELECT is(tests.affected($$DELETE FROM public.reports WHERE id = 'e0000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can DELETE a report');
SELECT tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- CHECKs, updated_at, deletes
-- ---------------------------------------------------------------------------
SELECT throws_ok($$INSERT INTO public.campaigns (name, type) VALUES ('x', 'fax')$$, '23514', NULL,
                 'an unknown campaign type is refused');
SELECT throws_ok($$INSERT INTO public.campaigns (name, type, status) VALUES ('x', 'email', 'bogus')$$, '23514', NULL,
                 'an unknown campaign status is refused');
SELECT throws_ok($$INSERT INTO public.campaigns (name, type, status) VALUES ('x', 'email', 'scheduled')$$, '23514', NULL,
                 'a scheduled campaign needs a scheduled_date');
SELECT is((SELECT updated_at FROM public.campaigns WHERE id = 'c0000000-0000-0000-0000-00000000000a'), now(),
          'updated_at changed on UPDATE');
SELECT is((SELECT updated_at FROM public.campaigns WHERE id = 'c0000000-0000-0000-0000-00000000000b'),
          '2000-01-01'::timestamptz, 'updated_at unchanged without UPDATE');
SELECT is((SELECT count(*) FROM public.audit_logs WHERE resource_type = 'campaigns'
           AND resource_id = 'c0000000-0000-0000-0000-0000000000a2'), 6::bigint,
          'create, soft delete (row update + soft_delete), restore (update + restore) and delete were audited');
DELETE FROM public.campaigns WHERE id = 'c0000000-0000-0000-0000-00000000000a';
SELECT is((SELECT campaign_id FROM public.reports WHERE id = 'e0000000-0000-0000-0000-00000000000a'), NULL::uuid,
          'a hard-deleted campaign leaves its reports, campaign_id NULL');
DELETE FROM auth.users WHERE id = :'bob';
SELECT is((SELECT user_id FROM public.campaigns WHERE id = 'c0000000-0000-0000-0000-00000000000b'), NULL::uuid,
          'deleting a user keeps their campaigns, owner NULL');

SELECT * FROM finish();
ROLLBACK;
