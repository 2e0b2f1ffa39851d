-- tests/sql/053_report_recipients.sql: the recipients a scheduled report can
-- be mailed to (migrations/053_report_recipients.sql): live, not banned users'
-- ids and e-mails, for users and admins only.
BEGIN;
SELECT plan(8);

SELECT tests.create_user('a53@example.test', 'user') AS alice \gset
SELECT tests.create_user('b53@example.test', 'admin') AS bob \gset
SELECT tests.create_user('v53@example.test', 'viewer') AS viewer \gset
SELECT tests.create_user('gone53@example.test', 'user') AS gone \gset
SELECT tests.create_user('banned53@example.test', 'user') AS banned \gset
SELECT tests.create_user('wasbanned53@example.test', 'user') AS wasbanned \gset
UPDATE auth.users SET deleted_at = now() WHERE id = :'gone';
UPDATE auth.users SET banned_until = now() + interval '1 hour' WHERE id = :'banned';
UPDATE auth.users SET banned_until = now() - interval '1 minute' WHERE id = :'wasbanned';

SELECT tests.authenticate_as(:'alice');
SELECT set_eq($$SELECT email FROM public.report_recipients() WHERE email LIKE '%53@example.test'$$,
              ARRAY['a53@example.test', 'b53@example.test', 'v53@example.test', 'wasbanned53@example.test'],
              'a user sees the live, not banned users (a past ban does not count)');
SELECT is((SELECT id FROM public.report_recipients() WHERE email = 'b53@example.test'), :'bob'::uuid,
          'with their ids, which report_schedules.recipients takes');
SELECT is((SELECT proargnames FROM pg_catalog.pg_proc WHERE oid = 'public.report_recipients'::regproc),
          ARRAY['id', 'email']::text[], 'it answers an id and an e-mail, nothing else of auth.users');
INSERT INTO public.report_schedules (name, report_type, frequency, recipients)
SELECT 'Weekly', 'audience', 'weekly', array_agg(id) FROM public.report_recipients() WHERE email IN ('a53@example.test', 'b53@example.test');
SELECT is((SELECT cardinality(recipients) FROM public.report_schedules WHERE name = 'Weekly'), 2,
          'the ids it answers are accepted as recipients');

SELECT tests.authenticate_as(:'bob');
SELECT ok((SELECT count(*) FROM public.report_recipients() WHERE email LIKE '%53@example.test') = 4, 'an admin sees them too');

SELECT tests.authenticate_as(:'viewer');
SELECT throws_ok($$SELECT * FROM public.report_recipients()$$, '42501', NULL, 'a viewer (who cannot schedule reports) is refused');

SELECT tests.authenticate_as(:'banned');
SELECT throws_ok($$SELECT * FROM public.report_recipients()$$, '42501', NULL, 'a banned user is refused');

SELECT tests.authenticate_as_anon();
SELECT throws_ok($$SELECT * FROM public.report_recipients()$$, '42501', NULL, 'the anon key is refused');

SELECT * FROM finish();
ROLLBACK;
