-- tests/sql/032_report_schedules.sql: scheduled reports
-- (migrations/032_report_schedules.sql): the owner manages its own schedules,
-- admins read all, viewers nothing; recipients are live users; the server's
-- columns are the server's; next_run_at follows the schedule in the
-- application's zone; the scheduler's pass enqueues a due run once; a run's
-- facts (period, recipients) and its once-per-slot guard.
BEGIN;
SELECT plan(27);

SELECT tests.create_user('admin@example.test', 'admin') AS admin \gset
SELECT tests.create_user('alice@example.test', 'user') AS alice \gset
SELECT tests.create_user('bob@example.test', 'user') AS bob \gset
SELECT tests.create_user('vera@example.test', 'viewer') AS vera \gset
UPDATE public.app_settings SET timezone = 'Europe/Paris';

SELECT ok(NOT has_table_privilege('anon', 'public.report_schedules', 'SELECT'), 'anon reads no schedule');
SELECT ok(NOT has_column_privilege('authenticated', 'public.report_schedules', 'next_run_at', 'UPDATE')
          AND NOT has_column_privilege('authenticated', 'public.report_schedules', 'user_id', 'INSERT')
          AND NOT has_column_privilege('authenticated', 'public.report_schedules', 'last_run_at', 'UPDATE'),
          'user_id, next_run_at and last_* are the server''s');
SELECT ok(NOT has_function_privilege('authenticated', 'jobs.enqueue_due_reports(integer)', 'EXECUTE')
          AND NOT has_function_privilege('authenticated', 'jobs.report_run_info(uuid, timestamptz)', 'EXECUTE'),
          'API roles cannot run the scheduler');

SELECT tests.authenticate_as(:'alice');
INSERT INTO public.report_schedules (name, report_type, frequency, schedule_config, recipients)
VALUES ('Weekly', 'period_summary', 'weekly', '{"day_of_week": 3, "time": "07:30"}', ARRAY[:'alice'::uuid, :'bob'::uuid]);
SELECT id AS s1 FROM public.report_schedules WHERE name = 'Weekly' \gset
SELECT is((SELECT user_id FROM public.report_schedules WHERE id = :'s1'), :'alice'::uuid, 'the owner is the caller');
SELECT ok((SELECT next_run_at > now() FROM public.report_schedules WHERE id = :'s1'), 'next_run_at is computed');
SELECT is((SELECT to_char(next_run_at AT TIME ZONE 'Europe/Paris', 'D HH24:MI') FROM public.report_schedules WHERE id = :'s1'),
          '4 07:30', 'on Wednesday 07:30 in the application''s zone');
SELECT throws_ok(format($$INSERT INTO public.report_schedules (name, report_type, frequency, recipients)
                          VALUES ('x', 'audience', 'weekly', ARRAY[%L::uuid])$$, '00000000-0000-4000-8000-00000000dead'),
                 '23503', NULL, 'recipients must be users of the instance');
SELECT throws_ok(format($$INSERT INTO public.report_schedules (name, report_type, frequency, recipients)
                          VALUES ('x', 'audience', 'weekly', ARRAY[%L::uuid, %L::uuid])$$, :'bob', :'bob'),
                 '23514', NULL, 'recipients are distinct');
SELECT throws_ok($$INSERT INTO public.report_schedules (name, report_type, frequency, recipients)
                   VALUES ('x', 'audience', 'weekly', '{}')$$, '23514', NULL, 'at least one recipient');
SELECT throws_ok(format($$INSERT INTO public.report_schedules (name, report_type, frequency, recipients)
                          VALUES ('x', 'audience', 'daily', ARRAY[%L::uuid])$$, :'bob'),
                 '23514', NULL, 'weekly or monthly only');
SELECT throws_ok(format($$INSERT INTO public.report_schedules (name, report_type, frequency, recipients)
                          VALUES ('x', 'campaign_performance', 'weekly', ARRAY[%L::uuid])$$, :'bob'),
                 '23514', NULL, 'only the reports beyond one campaign');
SELECT throws_ok(format($$INSERT INTO public.report_schedules (name, report_type, frequency, schedule_config, recipients)
                          VALUES ('x', 'audience', 'weekly', '{"timezone": "Asia/Tokyo"}', ARRAY[%L::uuid])$$, :'bob'),
                 '22023', NULL, 'the zone is the application''s');
SELECT throws_ok(format($$INSERT INTO public.report_schedules (user_id, name, report_type, frequency, recipients)
                          VALUES (%L, 'x', 'audience', 'weekly', ARRAY[%L::uuid])$$, :'bob', :'bob'),
                 '42501', NULL, 'no schedule in another user''s name');

SELECT tests.authenticate_as(:'bob');
SELECT is((SELECT count(*) FROM public.report_schedules), 0::bigint, 'another user sees no schedule of alice');
SELECT is(tests.affected(format('UPDATE public.report_schedules SET enabled = false WHERE id = %L', :'s1')), 0::bigint,
          'nor changes it');
SELECT throws_ok(format('SELECT public.run_report_schedule(%L)', :'s1'), '42501', NULL, 'nor runs it');
SELECT tests.authenticate_as(:'vera');
SELECT throws_ok(format($$INSERT INTO public.report_schedules (name, report_type, frequency, recipients)
                          VALUES ('x', 'audience', 'weekly', ARRAY[%L::uuid])$$, :'vera'),
                 '42501', NULL, 'a viewer cannot schedule');
SELECT tests.authenticate_as(:'admin');
SELECT is((SELECT count(*) FROM public.report_schedules WHERE id = :'s1'), 1::bigint, 'an admin reads every schedule');

SELECT tests.authenticate_as(:'alice');
UPDATE public.report_schedules SET enabled = false WHERE id = :'s1';
SELECT is((SELECT next_run_at FROM public.report_schedules WHERE id = :'s1'), NULL, 'disabled: not scheduled');
UPDATE public.report_schedules SET enabled = true, frequency = 'monthly', schedule_config = '{"day_of_month": 1}' WHERE id = :'s1';
SELECT is((SELECT to_char(next_run_at AT TIME ZONE 'Europe/Paris', 'DD HH24:MI') FROM public.report_schedules WHERE id = :'s1'),
          '01 00:00', 'monthly: the 1st at midnight, Paris time');
SELECT ok(public.run_report_schedule(:'s1') > 0, 'the owner runs it now');
SELECT tests.clear_authentication();

-- the zone follows app_settings; a recipient deleted later blocks nothing
UPDATE public.app_settings SET timezone = 'Asia/Tokyo';
SELECT is((SELECT to_char(next_run_at AT TIME ZONE 'Asia/Tokyo', 'DD HH24:MI') FROM public.report_schedules WHERE id = :'s1'),
          '01 00:00', 'a new application zone reschedules at once');
UPDATE auth.users SET deleted_at = now() WHERE id = :'bob';
SELECT lives_ok(format('UPDATE public.report_schedules SET last_error = %L WHERE id = %L', 'x', :'s1'),
                'the server updates a schedule whose recipient was deleted');
UPDATE auth.users SET deleted_at = null WHERE id = :'bob';

-- the scheduler's pass: a due schedule is enqueued once and moves on
UPDATE public.report_schedules SET next_run_at = now() - interval '1 minute' WHERE id = :'s1';
DELETE FROM jobs.jobs WHERE kind = 'report.scheduled';
SELECT is(jobs.enqueue_due_reports(), 1, 'a due schedule is enqueued');
SELECT is(jobs.enqueue_due_reports(), 0, 'once');

-- a run's facts: the previous calendar month, live recipients; once per slot
SELECT is((SELECT period_from || '..' || period_to || ' ' || array_to_string(emails, ',')
           FROM jobs.report_run_info(:'s1', '2026-03-01 00:00+01')),
          '2026-02-01..2026-02-28 alice@example.test,bob@example.test', 'monthly: the previous month, every recipient');
UPDATE public.report_schedules SET last_run_at = '2026-03-01 00:00+01' WHERE id = :'s1';
SELECT is((SELECT count(*) FROM jobs.report_run_info(:'s1', '2026-03-01 00:00+01')), 0::bigint,
          'a slot that ran does not run again');

SELECT * FROM finish();
ROLLBACK;
