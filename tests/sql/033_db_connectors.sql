-- tests/sql/033_db_connectors.sql: database connectors (migrations/033_db_connectors.sql):
-- the database types can be synced, schedule_config's incremental keys are checked,
-- and import_key_index() (service_role only) indexes an import table's key once.
BEGIN;
SELECT plan(16);

CREATE FUNCTION pg_temp.error_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text;
BEGIN
    EXECUTE sql;
    RETURN '';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
    RETURN st;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.error_of(text) TO PUBLIC;

SELECT tests.create_user('dora@dbconn.test', 'user') AS dora \gset

INSERT INTO public.data_sources (id, user_id, name, type, config, schedule_config)
VALUES ('44444444-4444-4444-8444-444444444444', :'dora', 'CRM', 'postgres',
        '{"host":"db.example.com","table":"leads"}',
        '{"incremental_column":"updated_at","incremental_strategy":"incremental"}'),
       ('55555555-5555-4555-8555-555555555555', :'dora', 'Shop', 'mysql', '{}', '{}'),
       ('66666666-6666-4666-8666-666666666666', :'dora', 'Metrics', 'google_analytics', '{}', '{}');

-- ---------------------------------------------------------------------------
-- Sync requests for database types
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'dora');
SELECT ok(public.request_data_source_sync('44444444-4444-4444-8444-444444444444') IS NOT NULL,
          'a postgres source can be synced');
SELECT ok(public.request_data_source_sync('55555555-5555-4555-8555-555555555555') IS NOT NULL,
          'a mysql source can be synced');
-- (034, the API connectors, removes the list of types: every type syncs)
SELECT ok(public.request_data_source_sync('66666666-6666-4666-8666-666666666666') IS NOT NULL,
          'an analytics source can be synced too');

-- ---------------------------------------------------------------------------
-- schedule_config's incremental keys
-- ---------------------------------------------------------------------------
SELECT is(pg_temp.error_of($$UPDATE public.data_sources SET schedule_config = '{"incremental_column": 42}'
                             WHERE id = '44444444-4444-4444-8444-444444444444'$$),
          '23514', 'incremental_column must be a string');
SELECT is(pg_temp.error_of($$UPDATE public.data_sources SET schedule_config = '{"incremental_column": ""}'
                             WHERE id = '44444444-4444-4444-8444-444444444444'$$),
          '23514', 'incremental_column must not be empty');
SELECT is(pg_temp.error_of(format($f$UPDATE public.data_sources SET schedule_config = %L
                             WHERE id = '44444444-4444-4444-8444-444444444444'$f$,
                             jsonb_build_object('incremental_column', repeat('x', 64)))),
          '23514', 'incremental_column is at most 63 characters');
SELECT is(pg_temp.error_of($$UPDATE public.data_sources SET schedule_config = '{"incremental_column": "a\nb"}'
                             WHERE id = '44444444-4444-4444-8444-444444444444'$$),
          '23514', 'incremental_column has no control characters');
SELECT is(pg_temp.error_of($$UPDATE public.data_sources SET schedule_config = '{"incremental_strategy": "sometimes"}'
                             WHERE id = '44444444-4444-4444-8444-444444444444'$$),
          '23514', 'incremental_strategy is full, incremental or append');
SELECT is(pg_temp.error_of($$UPDATE public.data_sources
                             SET schedule_config = '{"incremental_column": "id", "incremental_strategy": "append", "time": "09:00"}'
                             WHERE id = '55555555-5555-4555-8555-555555555555'$$),
          '', 'valid keys (and the other schedule keys) pass');
SELECT is(pg_temp.error_of($$UPDATE public.data_sources SET last_sync_value = '42'
                             WHERE id = '55555555-5555-4555-8555-555555555555'$$),
          '42501', 'only the server writes last_sync_value');

-- ---------------------------------------------------------------------------
-- import_key_index
-- ---------------------------------------------------------------------------
SELECT ok(NOT has_function_privilege('authenticated', 'public.import_key_index(uuid, text[])', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'public.import_key_index(uuid, text[])', 'EXECUTE')
          AND has_function_privilege('service_role', 'public.import_key_index(uuid, text[])', 'EXECUTE'),
          'import_key_index: service_role only');
SELECT tests.authenticate_as_service();
SELECT public.create_import_table(:'dora', 'crm',
    '[{"target_name":"lead_id","type":"integer"},{"target_name":"email","type":"text"}]',
    '44444444-4444-4444-8444-444444444444') AS tbl \gset
SELECT public.import_key_index('44444444-4444-4444-8444-444444444444', ARRAY['lead_id']) AS idx \gset
SELECT is((SELECT indexrelid::regclass::text FROM pg_index
           WHERE indrelid = ('public.' || :'tbl')::regclass
             AND indkey::text = (SELECT attnum::text FROM pg_attribute
                                 WHERE attrelid = ('public.' || :'tbl')::regclass AND attname = 'lead_id')),
          :'idx', 'an index on the key column');
SELECT is(public.import_key_index('44444444-4444-4444-8444-444444444444', ARRAY['lead_id']), :'idx',
          'a second call keeps the index');
SELECT is((SELECT count(*) FROM pg_index WHERE indrelid = ('public.' || :'tbl')::regclass), 2::bigint,
          'the primary key and one key index');
SELECT is(pg_temp.error_of($$SELECT public.import_key_index('44444444-4444-4444-8444-444444444444',
                                                            ARRAY['lead_id); drop table x; --'])$$),
          '22023', 'a column that is not in the table is refused');
SELECT is(pg_temp.error_of($$SELECT public.import_key_index('55555555-5555-4555-8555-555555555555', ARRAY['id'])$$),
          '22023', 'a source without an import table is refused');

SELECT tests.clear_authentication();
SELECT * FROM finish();
ROLLBACK;
