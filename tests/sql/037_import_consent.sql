-- tests/sql/037_import_consent.sql: the consent cells of an import
-- (migrations/037_import_consent.sql): which values count, which times, and
-- that only the server's import may record consent this way. The whole path
-- (a sync with mapped consent columns) is in tests/integration/import.test.js.
BEGIN;
SELECT plan(12);

SELECT is(public.import_consent_value(' Yes '), 'in', 'Yes (any case, spaces) is consent');
SELECT is(public.import_consent_value('opt-in'), 'in', 'opt-in is consent');
SELECT is(public.import_consent_value('1'), 'in', '1 is consent');
SELECT is(public.import_consent_value('FALSE'), 'out', 'false is a withdrawal');
SELECT is(public.import_consent_value('unsubscribed'), 'out', 'unsubscribed is a withdrawal');
SELECT is(public.import_consent_value(''), NULL, 'an empty cell changes nothing');
SELECT is(public.import_consent_value('maybe'), NULL, 'an unknown value changes nothing');

SELECT is(public.import_consent_time('2026-01-15', true), '2026-01-15'::timestamptz, 'the date column gives the time');
SELECT is(public.import_consent_time('2999-01-01', true), NULL, 'a date in the future is not usable');
SELECT is(public.import_consent_time('soon', true), NULL, 'neither is a non-date');
SELECT ok(public.import_consent_time(NULL, false) = now(), 'without a date column: the import''s time');

SELECT tests.create_user('alice@example.test', 'user') AS alice \gset
SELECT tests.authenticate_as(:'alice');
SELECT throws_ok($$SELECT public.import_apply_email_consent('{"column": "x", "evidence": "y"}', NULL)$$,
                 '42501', NULL, 'a user cannot record consent through the import functions');

SELECT * FROM finish();
ROLLBACK;
