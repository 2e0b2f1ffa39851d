-- tests/sql/045_viewer_data_sources.sql: viewers read data sources and their
-- sync history (migrations/045_viewer_data_sources.sql) and write none of it.
BEGIN;
SELECT plan(8);

SELECT tests.create_user('owner45@example.test', 'user') AS owner \gset
SELECT tests.create_user('viewer45@example.test', 'viewer') AS viewer \gset
SELECT tests.create_user('other45@example.test', 'user') AS other \gset

SELECT tests.authenticate_as(:'owner');
INSERT INTO public.data_sources (id, name, type, config)
VALUES ('45000000-0000-4000-8000-000000000001', 'CRM', 'postgres', '{"host": "crm.example.com", "table": "leads"}'),
       ('45000000-0000-4000-8000-000000000002', 'Gone', 'rest_api', '{"url": "https://api.example.com/x"}');
SELECT set_config('campaignd.encryption_key', 'test-encryption-key-0123456789abcdef', true);
SELECT public.set_data_source_credentials('45000000-0000-4000-8000-000000000001', '{"user": "reader", "password": "a-long-secret-pw"}');
UPDATE public.data_sources SET deleted_at = now() WHERE id = '45000000-0000-4000-8000-000000000002';
SELECT tests.authenticate_as_service();
INSERT INTO public.sync_logs (data_source_id, status, records_imported)
VALUES ('45000000-0000-4000-8000-000000000001', 'success', 3),
       ('45000000-0000-4000-8000-000000000002', 'success', 1);

SELECT tests.authenticate_as(:'viewer');
SELECT is((SELECT array_agg(name) FROM public.data_sources), ARRAY['CRM']::varchar[],
          'a viewer reads the live data sources, not the deleted one');
SELECT is((SELECT credentials->>'password' FROM public.data_sources), '****t-pw',
          'the credentials a viewer reads are masked');
SELECT is((SELECT array_agg(records_imported) FROM public.sync_logs), ARRAY[3],
          'a viewer reads the sync history of live sources');
SELECT throws_ok($$SELECT * FROM public.data_source_credentials$$, '42501', NULL,
                 'a viewer cannot read the encrypted credentials');
SELECT throws_ok($$INSERT INTO public.data_sources (name, type) VALUES ('x', 'postgres')$$, '42501', NULL,
                 'a viewer cannot add a data source');
UPDATE public.data_sources SET name = 'renamed';
SELECT tests.authenticate_as(:'owner');
SELECT is((SELECT name FROM public.data_sources WHERE id = '45000000-0000-4000-8000-000000000001'), 'CRM',
          'a viewer''s update changes nothing');
SELECT tests.authenticate_as(:'viewer');
SELECT throws_ok($$SELECT public.request_data_source_sync('45000000-0000-4000-8000-000000000001')$$, NULL, NULL,
                 'a viewer cannot start a sync');

SELECT tests.authenticate_as(:'other');
SELECT is((SELECT count(*) FROM public.data_sources), 0::bigint, 'another user still sees none of them');

SELECT * FROM finish();
ROLLBACK;
