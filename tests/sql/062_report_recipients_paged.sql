-- tests/sql/062_report_recipients_paged.sql: report_recipients() answers every
-- live user, past the 1,000 that 053 cut it to (migrations/062).
BEGIN;
SELECT plan(3);

SELECT tests.create_user('a62@example.test', 'user') AS alice \gset
INSERT INTO auth.users (id, email, aud, role, raw_app_meta_data)
SELECT gen_random_uuid(), format('zz%s-62@example.test', lpad(i::text, 4, '0')), 'authenticated', 'authenticated',
       '{"role": "user"}'::jsonb
FROM generate_series(1, 1001) AS i;

SELECT tests.authenticate_as(:'alice');
SELECT is((SELECT count(*) FROM public.report_recipients() WHERE email LIKE 'zz%-62@example.test'), 1001::bigint,
          'more than 1,000 live users are all answered (the caller pages, not the function)');
SELECT is((SELECT email FROM public.report_recipients() WHERE email LIKE 'zz%-62@example.test' OFFSET 1000 LIMIT 1),
          'zz1001-62@example.test', 'the last one by address is there too');
SELECT is((SELECT count(*) FROM (SELECT email FROM public.report_recipients() WHERE email LIKE 'zz%-62@example.test') s
          WHERE email < 'zz0002'), 1::bigint, 'in address order');

SELECT * FROM finish();
ROLLBACK;
