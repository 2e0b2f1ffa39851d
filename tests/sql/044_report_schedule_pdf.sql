-- tests/sql/044_report_schedule_pdf.sql: a scheduled report's attachment
-- format (migrations/044_report_schedule_pdf.sql): csv by default, pdf on
-- request, nothing else; the owner writes it, another user cannot.
BEGIN;
SELECT plan(7);

SELECT tests.create_user('alice@example.test', 'user') AS alice \gset
SELECT tests.create_user('bob@example.test', 'user') AS bob \gset

SELECT ok(has_column_privilege('authenticated', 'public.report_schedules', 'attachment_format', 'INSERT')
          AND has_column_privilege('authenticated', 'public.report_schedules', 'attachment_format', 'UPDATE'),
          'API roles write attachment_format (RLS decides whose rows)');

SELECT tests.authenticate_as(:'alice');
INSERT INTO public.report_schedules (name, report_type, frequency, recipients)
VALUES ('Plain', 'audience', 'weekly', ARRAY[:'alice'::uuid]);
INSERT INTO public.report_schedules (name, report_type, frequency, recipients, attachment_format)
VALUES ('Printed', 'period_summary', 'monthly', ARRAY[:'alice'::uuid], 'pdf');
SELECT is((SELECT attachment_format FROM public.report_schedules WHERE name = 'Plain'), 'csv', 'csv by default');
SELECT is((SELECT attachment_format FROM public.report_schedules WHERE name = 'Printed'), 'pdf', 'pdf on request');
SELECT throws_ok($$INSERT INTO public.report_schedules (name, report_type, frequency, recipients, attachment_format)
                   VALUES ('x', 'audience', 'weekly', ARRAY[auth.uid()], 'xlsx')$$,
                 '23514', NULL, 'only csv or pdf');
SELECT lives_ok($$UPDATE public.report_schedules SET attachment_format = 'pdf' WHERE name = 'Plain'$$,
                'the owner switches to pdf');
SELECT is((SELECT attachment_format FROM public.report_schedules WHERE name = 'Plain'), 'pdf', 'switched');

SELECT tests.authenticate_as(:'bob');
UPDATE public.report_schedules SET attachment_format = 'csv' WHERE name = 'Printed';
SELECT tests.authenticate_as(:'alice');
SELECT is((SELECT attachment_format FROM public.report_schedules WHERE name = 'Printed'), 'pdf',
          'another user cannot change it');

SELECT * FROM finish();
ROLLBACK;
