-- tests/sql/005_templates.sql: public.templates (migrations/005_templates.sql):
-- schema, grants, RLS for every role x command, soft delete, updated_at.
BEGIN;
SELECT plan(40);

-- Schema
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'public.templates'::regclass), 'RLS on templates');
SELECT col_type_is('public', 'templates', 'variables', 'text[]', 'variables is text[]');
SELECT col_type_is('public', 'templates', 'deleted_at', 'timestamp with time zone', 'templates has deleted_at');
SELECT col_type_is('public', 'templates', 'updated_at', 'timestamp with time zone', 'updated_at is timestamptz');
SELECT col_not_null('public', 'templates', 'content', 'content is NOT NULL');
SELECT has_index('public', 'templates', 'idx_templates_type', 'idx_templates_type');
SELECT has_index('public', 'templates', 'idx_templates_user', 'idx_templates_user');
SELECT has_trigger('public', 'templates', 'audit', 'audit trigger attached');
SELECT is(tests.privs('anon', 'public.templates'), '', 'anon has no privilege');
SELECT is(tests.privs('authenticated', 'public.templates'), 'DELETE,INSERT,SELECT,UPDATE',
          'authenticated: SELECT/INSERT/UPDATE/DELETE');

-- Fixture
SELECT tests.create_user('admin@example.test', 'admin') AS admin \gset
SELECT tests.create_user('viewer@example.test', 'viewer') AS viewer \gset
SELECT tests.create_user('alice@example.test', 'user') AS alice \gset
SELECT tests.create_user('bob@example.test', 'user') AS bob \gset
INSERT INTO public.templates (id, user_id, name, type, subject, content, variables, category, updated_at) VALUES
    ('70000000-0000-0000-0000-00000000000a', :'alice', 'Welcome', 'email', 'Hi {{first_name}}', 'Hello', '{first_name}', 'newsletter', '2000-01-01'),
    ('70000000-0000-0000-0000-00000000000b', :'bob', 'Promo', 'sms', NULL, 'Sale!', '{}', 'promotional', '2000-01-01');

-- anon
SELECT tests.authenticate_as_anon();
SELECT throws_ok($$SELECT * FROM public.templates$$, '42501', NULL, 'anon cannot SELECT');
SELECT throws_ok($$INSERT INTO public.templates (name, type, content) VALUES ('x', 'sms', 'x')$$, '42501', NULL, 'anon cannot INSERT');
SELECT throws_ok($$UPDATE public.templates SET name = 'x'$$, '42501', NULL, 'anon cannot UPDATE');
SELECT throws_ok($$DELETE FROM public.templates$$, '42501', NULL, 'anon cannot DELETE');

-- viewer: templates are not reports or analytics: no rows, no writes
SELECT tests.authenticate_as(:'viewer');
SELECT is((SELECT count(*) FROM public.templates), 0::bigint, 'viewer reads no templates');
SELECT throws_ok(format($$INSERT INTO public.templates (user_id, name, type, content) VALUES (%L, 'v', 'sms', 'v')$$, :'viewer'),
                 '42501', NULL, 'viewer cannot INSERT');
SELECT is(tests.affected($$UPDATE public.templates SET name = 'v'$$), 0::bigint, 'viewer UPDATE touches 0 rows');
SELECT is(tests.affected($$DELETE FROM public.templates$$), 0::bigint, 'viewer DELETE touches 0 rows');

-- alice (owner)
SELECT tests.authenticate_as(:'alice');
SELECT results_eq($$SELECT id FROM public.templates$$, $$VALUES ('70000000-0000-0000-0000-00000000000a'::uuid)$$,
                  'alice reads only her template');
SELECT lives_ok($$INSERT INTO public.templates (id, name, type, content) VALUES ('70000000-0000-0000-0000-0000000000a2', 'Reminder', 'sms', 'Soon')$$,
                'alice can INSERT a template');
SELECT throws_ok(format($$INSERT INTO public.templates (user_id, name, type, content) VALUES (%L, 'x', 'sms', 'x')$$, :'bob'),
                 '42501', NULL, 'alice cannot INSERT a template owned by bob');
SELECT is(tests.affected($$UPDATE public.templates SET content = 'Hello again' WHERE id = '70000000-0000-0000-0000-00000000000a'$$),
          1::bigint, 'alice can UPDATE her template');
SELECT throws_ok(format($$UPDATE public.templates SET user_id = %L WHERE id = '70000000-0000-0000-0000-00000000000a'$$, :'bob'),
                 '42501', NULL, 'alice cannot move her template to bob');
SELECT is(tests.affected($$UPDATE public.templates SET name = 'x' WHERE id = '70000000-0000-0000-0000-00000000000b'$$),
          0::bigint, 'alice UPDATE of bob''s template touches 0 rows');
SELECT is(tests.affected($$DELETE FROM public.templates WHERE id = '70000000-0000-0000-0000-00000000000b'$$),
          0::bigint, 'alice DELETE of bob''s template touches 0 rows');
SELECT is(tests.affected($$UPDATE public.templates SET deleted_at = now() WHERE id = '70000000-0000-0000-0000-0000000000a2'$$),
          1::bigint, 'alice can soft-delete her template');
SELECT throws_ok($$DELETE FROM public.templates WHERE id = '70000000-0000-0000-0000-0000000000a2'$$,
                 '42501', 'templates are soft-deleted: a hard DELETE is not allowed',
                 'alice cannot hard-DELETE her template: templates are soft-deleted (018)');

-- bob
SELECT tests.authenticate_as(:'bob');
SELECT is((SELECT count(*) FROM public.templates WHERE id = '70000000-0000-0000-0000-00000000000a'), 0::bigint,
          'bob does not see alice''s template');

-- admin
SELECT tests.authenticate_as(:'admin');
SELECT is((SELECT count(*) FROM public.templates), 3::bigint, 'admin reads all templates (with alice''s soft-deleted one)');
SELECT lives_ok(format($$INSERT INTO public.templates (id, user_id, name, type, content)
                         VALUES ('70000000-0000-0000-0000-0000000000c1', %L, 'Shared', 'email', 'x')$$, :'bob'),
                'admin can INSERT a template for another user');
SELECT is(tests.affected($$UPDATE public.templates SET is_active = false WHERE id = '70000000-0000-0000-0000-00000000000b'$$),
          1::bigint, 'admin can UPDATE any template');
SELECT is(tests.affected($$DELETE FROM public.templates WHERE id = '70000000-0000-0000-0000-0000000000c1'$$),
          1::bigint, 'admin can DELETE any template');

-- service_role
SELECT tests.authenticate_as_service();
SELECT is((SELECT count(*) FROM public.templates), 3::bigint, 'service_role reads all templates');
SELECT lives_ok($$INSERT INTO public.templates (id, name, type, content) VALUES ('70000000-0000-0000-0000-0000000000d1', 'Sys', 'sms', 'x')$$,
                'service_role can INSERT');
SELECT is(tests.affected($$UPDATE public.templates SET name = 'Sys2' WHERE id = '70000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can UPDATE');
SELECT is(tests.affected($$DELETE FROM public.templates WHERE id = '70000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can DELETE');
SELECT tests.clear_authentication();

-- CHECKs and updated_at
SELECT throws_ok($$INSERT INTO public.templates (name, type, content) VALUES ('x', 'fax', 'x')$$, '23514', NULL,
                 'an unknown template type is refused');
SELECT throws_ok($$INSERT INTO public.templates (name, type, content, category) VALUES ('x', 'sms', 'x', 'spam')$$, '23514', NULL,
                 'an unknown category is refused');
SELECT is((SELECT updated_at FROM public.templates WHERE id = '70000000-0000-0000-0000-00000000000a'), now(),
          'updated_at changed on UPDATE');
SELECT is((SELECT updated_at FROM public.templates WHERE id = '70000000-0000-0000-0000-00000000000b'), now(),
          'updated_at changed on the admin''s UPDATE too');

SELECT * FROM finish();
ROLLBACK;
