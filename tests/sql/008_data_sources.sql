-- tests/sql/008_data_sources.sql: the data import framework
-- (migrations/008_data_sources.sql): data_sources and its encrypted credentials,
-- import_tables, imported_data, sync_logs (schema, grants, RLS for every role x
-- command), the secret helpers, and create_import_table / drop_import_table
-- (who may call them, hostile identifiers, the tables they make).
BEGIN;
SELECT plan(186);

-- ---------------------------------------------------------------------------
-- Schema
-- ---------------------------------------------------------------------------
SELECT ok((SELECT bool_and(relrowsecurity) FROM pg_class
           WHERE oid IN ('public.data_sources'::regclass, 'public.data_source_credentials'::regclass,
                         'public.import_tables'::regclass, 'public.imported_data'::regclass,
                         'public.sync_logs'::regclass)),
          'RLS on all five tables');
SELECT col_type_is('public', 'data_sources', 'credentials', 'jsonb', 'data_sources.credentials is jsonb (masked)');
SELECT col_type_is('public', 'data_source_credentials', 'credentials_encrypted', 'bytea', 'credentials_encrypted is bytea');
SELECT col_type_is('public', 'data_sources', 'deleted_at', 'timestamp with time zone', 'data_sources has deleted_at');
SELECT col_default_is('public', 'data_sources', 'sync_schedule', 'manual', 'sync_schedule defaults to manual');
SELECT col_default_is('public', 'data_sources', 'sync_status', 'idle', 'sync_status defaults to idle');
SELECT has_index('public', 'data_sources', 'idx_data_sources_next_sync', 'scheduler index');
SELECT has_index('public', 'imported_data', 'idx_imported_data_date', 'idx_imported_data_date');
SELECT has_index('public', 'sync_logs', 'idx_sync_logs_started', 'idx_sync_logs_started');
SELECT is(tests.privs('anon', 'public.data_sources') || tests.privs('anon', 'public.data_source_credentials')
          || tests.privs('anon', 'public.import_tables') || tests.privs('anon', 'public.imported_data')
          || tests.privs('anon', 'public.sync_logs'), '', 'anon has no privilege on the five tables');
SELECT is(tests.privs('authenticated', 'public.data_source_credentials'), '',
          'authenticated has no privilege on data_source_credentials');
SELECT is(tests.privs('authenticated', 'public.data_sources'), 'DELETE,SELECT',
          'authenticated: SELECT and DELETE on data_sources at table level');
SELECT ok(has_column_privilege('authenticated', 'public.data_sources', 'name', 'INSERT')
          AND has_column_privilege('authenticated', 'public.data_sources', 'config', 'UPDATE'),
          'authenticated may INSERT/UPDATE the ordinary columns of data_sources');
SELECT ok(NOT has_column_privilege('authenticated', 'public.data_sources', 'credentials', 'INSERT')
          AND NOT has_column_privilege('authenticated', 'public.data_sources', 'credentials', 'UPDATE')
          AND NOT has_column_privilege('authenticated', 'public.data_sources', 'table_name', 'UPDATE')
          AND NOT has_column_privilege('authenticated', 'public.data_sources', 'sync_status', 'UPDATE'),
          'authenticated may not write credentials, table_name or sync state');
SELECT is(tests.privs('authenticated', 'public.import_tables'), 'SELECT', 'authenticated: SELECT on import_tables');
SELECT is(tests.privs('authenticated', 'public.imported_data'), 'DELETE,INSERT,SELECT,UPDATE', 'authenticated on imported_data');
SELECT is(tests.privs('authenticated', 'public.sync_logs'), 'DELETE,SELECT', 'authenticated: SELECT and DELETE on sync_logs');
SELECT ok(NOT has_function_privilege('authenticated', 'public.create_import_table(uuid, text, jsonb, uuid)', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'public.create_import_table(uuid, text, jsonb, uuid)', 'EXECUTE')
          AND has_function_privilege('service_role', 'public.create_import_table(uuid, text, jsonb, uuid)', 'EXECUTE'),
          'create_import_table: service_role only');
SELECT ok(NOT has_function_privilege('authenticated', 'public.drop_import_table(text)', 'EXECUTE')
          AND NOT has_function_privilege('authenticated', 'public.get_data_source_credentials(uuid)', 'EXECUTE')
          AND NOT has_function_privilege('authenticated', 'public.campaignd_encryption_key()', 'EXECUTE')
          AND NOT has_function_privilege('authenticated', 'public.campaignd_decrypt(bytea)', 'EXECUTE')
          AND NOT has_function_privilege('service_role', 'public.campaignd_decrypt(bytea)', 'EXECUTE'),
          'drop_import_table, get_data_source_credentials and the key/decrypt helpers are not open to API roles');
SELECT ok((SELECT prosecdef AND proconfig @> ARRAY['search_path=""']
           FROM pg_proc WHERE oid = 'public.create_import_table(uuid, text, jsonb, uuid)'::regprocedure),
          'create_import_table is SECURITY DEFINER with search_path ''''');

-- ---------------------------------------------------------------------------
-- Fixture
-- ---------------------------------------------------------------------------
SELECT tests.create_user('admin@example.test', 'admin') AS admin \gset
SELECT tests.create_user('viewer@example.test', 'viewer') AS viewer \gset
SELECT tests.create_user('alice@example.test', 'user') AS alice \gset
SELECT tests.create_user('bob@example.test', 'user') AS bob \gset
INSERT INTO public.data_sources (id, user_id, name, type, updated_at) VALUES
    ('d0000000-0000-0000-0000-00000000000a', :'alice', 'Alice GA4', 'google_analytics', '2000-01-01'),
    ('d0000000-0000-0000-0000-00000000000b', :'bob', 'Bob CSV', 'csv_upload', '2000-01-01');
INSERT INTO public.imported_data (id, data_source_id, metric_name, metric_value, event_date) VALUES
    ('1d000000-0000-0000-0000-00000000000a', 'd0000000-0000-0000-0000-00000000000a', 'sessions', 10, '2024-01-01'),
    ('1d000000-0000-0000-0000-00000000000b', 'd0000000-0000-0000-0000-00000000000b', 'sessions', 20, '2024-01-01');
INSERT INTO public.sync_logs (id, data_source_id, status) VALUES
    ('5d000000-0000-0000-0000-00000000000a', 'd0000000-0000-0000-0000-00000000000a', 'success'),
    ('5d000000-0000-0000-0000-00000000000b', 'd0000000-0000-0000-0000-00000000000b', 'failed');

-- ---------------------------------------------------------------------------
-- create_import_table: callers and hostile input
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'alice');
SELECT throws_ok(format($$SELECT public.create_import_table(%L, 'sales', '[{"target_name":"a"}]', 'd0000000-0000-0000-0000-00000000000a')$$, :'alice'),
                 '42501', NULL, 'authenticated cannot execute create_import_table');
SELECT throws_ok($$SELECT public.drop_import_table('import_x')$$, '42501', NULL, 'authenticated cannot execute drop_import_table');
SELECT tests.authenticate_as_anon();
SELECT throws_ok(format($$SELECT public.create_import_table(%L, 'sales', '[{"target_name":"a"}]', 'd0000000-0000-0000-0000-00000000000a')$$, :'alice'),
                 '42501', NULL, 'anon cannot execute create_import_table');

SELECT tests.authenticate_as_service();
CREATE TEMP TABLE hostile (name text);
GRANT SELECT ON hostile TO service_role;
INSERT INTO hostile VALUES ('x; drop table campaigns'), ('"quoted"'), (repeat('a', 64)), ('pg_catalog.x'),
    ('Upper'), ('1abc'), (''), ('a b'), ('é');
SELECT is((SELECT count(*) FROM hostile h
           WHERE tests.error_of(format($$SELECT public.create_import_table(%L, %L, '[{"target_name":"a"}]',
                                          'd0000000-0000-0000-0000-00000000000a')$$, :'alice', h.name)) LIKE '22023 %'),
          9::bigint, 'every hostile source name is refused with 22023');
SELECT is((SELECT count(*) FROM hostile h
           WHERE tests.error_of(format($$SELECT public.create_import_table(%L, 'sales', %L,
                                          'd0000000-0000-0000-0000-00000000000a')$$, :'alice',
                                         jsonb_build_array(jsonb_build_object('target_name', h.name)))) LIKE '22023 %'),
          9::bigint, 'every hostile column name is refused with 22023');
SELECT throws_ok(format($$SELECT public.create_import_table(%L, 'sales', '[{"target_name":"a", "type":"money"}]', 'd0000000-0000-0000-0000-00000000000a')$$, :'alice'),
                 '22023', NULL, 'a column type outside the allow-list is refused');
SELECT throws_ok(format($$SELECT public.create_import_table(%L, 'sales', '[{"target_name":"a", "type":"text; drop table campaigns"}]', 'd0000000-0000-0000-0000-00000000000a')$$, :'alice'),
                 '22023', NULL, 'a hostile column type is refused');
SELECT throws_ok(format($$SELECT public.create_import_table(%L, 'sales', '[{"target_name":"a"},{"target_name":"a"}]', 'd0000000-0000-0000-0000-00000000000a')$$, :'alice'),
                 '22023', NULL, 'a repeated column name is refused');
SELECT throws_ok(format($$SELECT public.create_import_table(%L, 'sales', '[{"target_name":"id"}]', 'd0000000-0000-0000-0000-00000000000a')$$, :'alice'),
                 '22023', NULL, 'a reserved column name (id) is refused');
SELECT throws_ok(format($$SELECT public.create_import_table(%L, 'sales', '[{"target_name":"ctid"}]', 'd0000000-0000-0000-0000-00000000000a')$$, :'alice'),
                 '22023', NULL, 'a system column name is refused');
SELECT throws_ok(format($$SELECT public.create_import_table(%L, 'sales', '[{"target_name":"a", "included": false}]', 'd0000000-0000-0000-0000-00000000000a')$$, :'alice'),
                 '22023', NULL, 'no included column is refused');
SELECT throws_ok(format($$SELECT public.create_import_table(%L, 'sales', '"a"', 'd0000000-0000-0000-0000-00000000000a')$$, :'alice'),
                 '22023', NULL, 'columns that are not an array are refused');
SELECT throws_ok(format($$SELECT public.create_import_table(%L, 'sales', '[{"target_name":"a"}]', 'd0000000-0000-0000-0000-00000000000a')$$, :'bob'),
                 '22023', NULL, 'a user id that does not own the source is refused');
SELECT throws_ok(format($$SELECT public.create_import_table(%L, 'sales', '[{"target_name":"a"}]', 'd0000000-0000-0000-0000-0000000000ff')$$, :'alice'),
                 '22023', NULL, 'an unknown data source is refused');
SELECT is((SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname LIKE 'import\_%'
             AND c.relname <> 'import_tables'), 0::bigint,
          'no refused call created a table');
SELECT has_table('public', 'campaigns', 'campaigns survived the hostile names');

SELECT public.create_import_table(:'alice', 'sales',
    '{"columns": [{"source_name": "First Name", "target_name": "first_name", "type": "text", "included": true},
                  {"source_name": "Amount", "target_name": "amount", "type": "number", "included": true},
                  {"source_name": "When", "target_name": "sold_at", "type": "timestamp"},
                  {"source_name": "Secret", "target_name": "internal", "type": "text", "included": false}]}',
    'd0000000-0000-0000-0000-00000000000a') AS import_table \gset
SELECT tests.clear_authentication();
SELECT matches(:'import_table'::text, '^import_sales_[0-9a-f]{8}$', 'create_import_table returns import_sales_<8 hex>');
SELECT has_table('public', :'import_table', 'the import table exists');
SELECT columns_are('public', :'import_table', ARRAY['id', 'first_name', 'amount', 'sold_at', 'imported_at'],
                   'it has id, the included columns and imported_at');
SELECT col_type_is('public', :'import_table', 'amount', 'numeric', 'number maps to numeric');
SELECT col_type_is('public', :'import_table', 'sold_at', 'timestamp with time zone', 'timestamp maps to timestamptz');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = ('public.' || :'import_table')::regclass),
          'RLS is enabled on the import table');
SELECT is((SELECT count(*) FROM pg_policies WHERE schemaname = 'public' AND tablename = :'import_table'), 8::bigint,
          'the import table has 8 per-command policies');
SELECT has_trigger('public', :'import_table', 'audit', 'the import table has the audit trigger');
SELECT is(tests.privs('anon', 'public.' || :'import_table'), '', 'anon has no privilege on the import table');
SELECT is(tests.privs('authenticated', 'public.' || :'import_table'), 'DELETE,INSERT,SELECT,UPDATE',
          'authenticated: SELECT/INSERT/UPDATE/DELETE on the import table');
SELECT is((SELECT data_source_id FROM public.import_tables WHERE table_name = :'import_table'),
          'd0000000-0000-0000-0000-00000000000a'::uuid, 'the import table is registered for its source');
SELECT is((SELECT table_name FROM public.data_sources WHERE id = 'd0000000-0000-0000-0000-00000000000a')::text,
          :'import_table', 'data_sources.table_name names it');

-- ---------------------------------------------------------------------------
-- anon on the tables
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as_anon();
SELECT throws_ok($$SELECT * FROM public.data_sources$$, '42501', NULL, 'anon cannot SELECT data_sources');
SELECT throws_ok($$INSERT INTO public.data_sources (name, type) VALUES ('x', 'rest_api')$$, '42501', NULL, 'anon cannot INSERT data_sources');
SELECT throws_ok($$UPDATE public.data_sources SET name = 'x'$$, '42501', NULL, 'anon cannot UPDATE data_sources');
SELECT throws_ok($$DELETE FROM public.data_sources$$, '42501', NULL, 'anon cannot DELETE data_sources');
SELECT throws_ok($$SELECT * FROM public.data_source_credentials$$, '42501', NULL, 'anon cannot SELECT data_source_credentials');
SELECT throws_ok($$SELECT * FROM public.import_tables$$, '42501', NULL, 'anon cannot SELECT import_tables');
SELECT throws_ok($$INSERT INTO public.import_tables (data_source_id, table_name, column_definitions)
                   VALUES ('d0000000-0000-0000-0000-00000000000a', 'import_x', '[]')$$, '42501', NULL, 'anon cannot INSERT import_tables');
SELECT throws_ok($$UPDATE public.import_tables SET row_count = 1$$, '42501', NULL, 'anon cannot UPDATE import_tables');
SELECT throws_ok($$DELETE FROM public.import_tables$$, '42501', NULL, 'anon cannot DELETE import_tables');
SELECT throws_ok($$SELECT * FROM public.imported_data$$, '42501', NULL, 'anon cannot SELECT imported_data');
SELECT throws_ok($$INSERT INTO public.imported_data (data_source_id, metric_name, event_date)
                   VALUES ('d0000000-0000-0000-0000-00000000000a', 'x', '2024-01-01')$$, '42501', NULL, 'anon cannot INSERT imported_data');
SELECT throws_ok($$UPDATE public.imported_data SET metric_value = 0$$, '42501', NULL, 'anon cannot UPDATE imported_data');
SELECT throws_ok($$DELETE FROM public.imported_data$$, '42501', NULL, 'anon cannot DELETE imported_data');
SELECT throws_ok($$SELECT * FROM public.sync_logs$$, '42501', NULL, 'anon cannot SELECT sync_logs');
SELECT throws_ok($$INSERT INTO public.sync_logs (status) VALUES ('running')$$, '42501', NULL, 'anon cannot INSERT sync_logs');
SELECT throws_ok($$UPDATE public.sync_logs SET status = 'failed'$$, '42501', NULL, 'anon cannot UPDATE sync_logs');
SELECT throws_ok($$DELETE FROM public.sync_logs$$, '42501', NULL, 'anon cannot DELETE sync_logs');
SELECT throws_ok(format('SELECT * FROM public.%I', :'import_table'), '42501', NULL, 'anon cannot SELECT the import table');
SELECT throws_ok(format('INSERT INTO public.%I (first_name) VALUES (''x'')', :'import_table'), '42501', NULL,
                 'anon cannot INSERT into the import table');

-- ---------------------------------------------------------------------------
-- viewer: reads imported analytics metrics, and (migration 045) the live data
-- sources and their sync logs; never the import tables
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'viewer');
SELECT ok((SELECT count(*) FROM public.data_sources) > 0
          AND NOT EXISTS (SELECT 1 FROM public.data_sources WHERE deleted_at IS NOT NULL),
          'viewer reads the live data sources (migration 045)');
SELECT throws_ok(format($$INSERT INTO public.data_sources (user_id, name, type) VALUES (%L, 'v', 'rest_api')$$, :'viewer'),
                 '42501', NULL, 'viewer cannot INSERT a data source');
SELECT is(tests.affected($$UPDATE public.data_sources SET name = 'v'$$), 0::bigint, 'viewer UPDATE of data_sources touches 0 rows');
SELECT is(tests.affected($$DELETE FROM public.data_sources$$), 0::bigint, 'viewer DELETE of data_sources touches 0 rows');
SELECT throws_ok($$SELECT * FROM public.data_source_credentials$$, '42501', NULL, 'viewer cannot read data_source_credentials');
SELECT is((SELECT count(*) FROM public.import_tables), 0::bigint, 'viewer reads no import registry rows');
SELECT is((SELECT count(*) FROM public.imported_data), 2::bigint, 'viewer reads all imported metrics');
SELECT throws_ok($$INSERT INTO public.imported_data (data_source_id, metric_name, event_date)
                   VALUES ('d0000000-0000-0000-0000-00000000000a', 'x', '2024-01-01')$$, '42501', NULL, 'viewer cannot INSERT imported_data');
SELECT is(tests.affected($$UPDATE public.imported_data SET metric_value = 0$$), 0::bigint, 'viewer UPDATE of imported_data touches 0 rows');
SELECT is(tests.affected($$DELETE FROM public.imported_data$$), 0::bigint, 'viewer DELETE of imported_data touches 0 rows');
SELECT ok((SELECT count(*) FROM public.sync_logs) > 0, 'viewer reads the sync logs (migration 045)');
SELECT throws_ok($$INSERT INTO public.sync_logs (status) VALUES ('running')$$, '42501', NULL, 'viewer cannot INSERT sync_logs');
SELECT is(tests.affected($$DELETE FROM public.sync_logs$$), 0::bigint, 'viewer DELETE of sync_logs touches 0 rows');
SELECT is(tests.affected(format('SELECT * FROM public.%I', :'import_table')), 0::bigint, 'viewer reads no import table rows');
SELECT throws_ok(format('INSERT INTO public.%I (first_name) VALUES (''v'')', :'import_table'), '42501', NULL,
                 'viewer cannot INSERT into the import table');
SELECT throws_ok($$SELECT public.set_data_source_credentials('d0000000-0000-0000-0000-00000000000a', '{"k":"v"}')$$,
                 '42501', NULL, 'viewer cannot set credentials');

-- ---------------------------------------------------------------------------
-- alice (owner)
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'alice');
SELECT results_eq($$SELECT id FROM public.data_sources$$, $$VALUES ('d0000000-0000-0000-0000-00000000000a'::uuid)$$,
                  'alice reads only her data source');
SELECT lives_ok($$INSERT INTO public.data_sources (id, name, type, config) VALUES ('d0000000-0000-0000-0000-0000000000a2', 'API', 'rest_api', '{"url":"https://api.example.com"}')$$,
                'alice can INSERT a data source');
SELECT throws_ok($$INSERT INTO public.data_sources (name, type, credentials) VALUES ('x', 'rest_api', '{"k":"****"}')$$,
                 '42501', NULL, 'alice cannot INSERT the credentials column');
SELECT throws_ok(format($$INSERT INTO public.data_sources (user_id, name, type) VALUES (%L, 'x', 'rest_api')$$, :'bob'),
                 '42501', NULL, 'alice cannot INSERT a data source owned by bob');
SELECT is(tests.affected($$UPDATE public.data_sources SET name = 'Alice GA4 (web)', sync_schedule = 'daily' WHERE id = 'd0000000-0000-0000-0000-00000000000a'$$),
          1::bigint, 'alice can UPDATE her data source');
SELECT throws_ok(format($$UPDATE public.data_sources SET user_id = %L WHERE id = 'd0000000-0000-0000-0000-00000000000a'$$, :'bob'),
                 '42501', NULL, 'alice cannot move her data source to bob');
SELECT throws_ok($$UPDATE public.data_sources SET table_name = 'import_campaigns' WHERE id = 'd0000000-0000-0000-0000-00000000000a'$$,
                 '42501', NULL, 'alice cannot point table_name elsewhere');
SELECT throws_ok($$UPDATE public.data_sources SET credentials = NULL WHERE id = 'd0000000-0000-0000-0000-00000000000a'$$,
                 '42501', NULL, 'alice cannot write the credentials column directly');
SELECT is(tests.affected($$UPDATE public.data_sources SET name = 'x' WHERE id = 'd0000000-0000-0000-0000-00000000000b'$$),
          0::bigint, 'alice UPDATE of bob''s data source touches 0 rows');
SELECT is(tests.affected($$DELETE FROM public.data_sources WHERE id = 'd0000000-0000-0000-0000-00000000000b'$$),
          0::bigint, 'alice DELETE of bob''s data source touches 0 rows');
SELECT throws_ok($$SELECT * FROM public.data_source_credentials$$, '42501', NULL, 'alice cannot read data_source_credentials');
SELECT throws_ok($$INSERT INTO public.data_source_credentials (data_source_id, credentials_encrypted)
                   VALUES ('d0000000-0000-0000-0000-00000000000a', '\x00')$$, '42501', NULL, 'alice cannot write data_source_credentials');
SELECT results_eq($$SELECT table_name::text FROM public.import_tables$$, format('VALUES (%L)', :'import_table'),
                  'alice reads the registry row of her import table');
SELECT throws_ok($$INSERT INTO public.import_tables (data_source_id, table_name, column_definitions)
                   VALUES ('d0000000-0000-0000-0000-00000000000a', 'import_campaigns', '[]')$$, '42501', NULL,
                 'alice cannot INSERT into import_tables');
SELECT throws_ok($$UPDATE public.import_tables SET row_count = 5$$, '42501', NULL, 'alice cannot UPDATE import_tables');
SELECT throws_ok($$DELETE FROM public.import_tables$$, '42501', NULL, 'alice cannot DELETE import_tables');
SELECT results_eq($$SELECT id FROM public.imported_data$$, $$VALUES ('1d000000-0000-0000-0000-00000000000a'::uuid)$$,
                  'alice reads the imported metrics of her source only');
SELECT throws_ok($$INSERT INTO public.imported_data (data_source_id, metric_name, event_date)
                   VALUES ('d0000000-0000-0000-0000-00000000000a', 'fake', '2024-01-01')$$, '42501', NULL,
                 'alice cannot INSERT imported_data (the server imports)');
SELECT is(tests.affected($$UPDATE public.imported_data SET metric_value = 0 WHERE id = '1d000000-0000-0000-0000-00000000000a'$$),
          0::bigint, 'alice UPDATE of imported_data touches 0 rows');
SELECT is(tests.affected($$DELETE FROM public.imported_data WHERE id = '1d000000-0000-0000-0000-00000000000a'$$),
          0::bigint, 'alice DELETE of imported_data touches 0 rows');
SELECT results_eq($$SELECT id FROM public.sync_logs$$, $$VALUES ('5d000000-0000-0000-0000-00000000000a'::uuid)$$,
                  'alice reads the sync logs of her source only');
SELECT throws_ok($$INSERT INTO public.sync_logs (data_source_id, status) VALUES ('d0000000-0000-0000-0000-00000000000a', 'success')$$,
                 '42501', NULL, 'alice cannot INSERT sync_logs');
SELECT throws_ok($$UPDATE public.sync_logs SET status = 'success'$$, '42501', NULL, 'alice cannot UPDATE sync_logs');
SELECT is(tests.affected($$DELETE FROM public.sync_logs WHERE id = '5d000000-0000-0000-0000-00000000000a'$$),
          0::bigint, 'alice DELETE of her sync log touches 0 rows');
-- her import table
SELECT is(tests.affected(format($$INSERT INTO public.%I (first_name, amount) VALUES ('Ann', 12.5)$$, :'import_table')),
          1::bigint, 'alice can INSERT into her import table');
SELECT is(tests.affected(format('SELECT * FROM public.%I', :'import_table')), 1::bigint, 'alice reads her import table');
SELECT is(tests.affected(format($$UPDATE public.%I SET amount = 13$$, :'import_table')), 1::bigint,
          'alice can UPDATE her import table');
SELECT is(tests.affected(format($$DELETE FROM public.%I WHERE first_name = 'nobody'$$, :'import_table')), 0::bigint,
          'alice DELETE with no match touches 0 rows');
-- soft delete, and hard delete of a source without import tables
SELECT is(tests.affected($$UPDATE public.data_sources SET deleted_at = now() WHERE id = 'd0000000-0000-0000-0000-0000000000a2'$$),
          1::bigint, 'alice can soft-delete her data source');
SELECT throws_ok($$DELETE FROM public.data_sources WHERE id = 'd0000000-0000-0000-0000-0000000000a2'$$,
                 '42501', 'data_sources are soft-deleted: a hard DELETE is not allowed',
                 'alice cannot hard-DELETE a data source: data sources are soft-deleted (018)');

-- ---------------------------------------------------------------------------
-- bob (another user)
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'bob');
SELECT is((SELECT count(*) FROM public.data_sources WHERE user_id = :'alice'), 0::bigint, 'bob sees none of alice''s data sources');
SELECT is((SELECT count(*) FROM public.import_tables), 0::bigint, 'bob sees no registry row of alice''s');
SELECT is((SELECT count(*) FROM public.imported_data WHERE data_source_id = 'd0000000-0000-0000-0000-00000000000a'), 0::bigint,
          'bob sees none of alice''s imported metrics');
SELECT is((SELECT count(*) FROM public.sync_logs WHERE data_source_id = 'd0000000-0000-0000-0000-00000000000a'), 0::bigint,
          'bob sees none of alice''s sync logs');
SELECT is(tests.affected(format('SELECT * FROM public.%I', :'import_table')), 0::bigint, 'bob reads no rows of alice''s import table');
SELECT throws_ok(format($$INSERT INTO public.%I (first_name) VALUES ('Bob')$$, :'import_table'), '42501', NULL,
                 'bob cannot INSERT into alice''s import table');
SELECT is(tests.affected(format($$UPDATE public.%I SET amount = 0$$, :'import_table')), 0::bigint,
          'bob UPDATE of alice''s import table touches 0 rows');
SELECT is(tests.affected(format($$DELETE FROM public.%I$$, :'import_table')), 0::bigint,
          'bob DELETE of alice''s import table touches 0 rows');
SELECT throws_ok($$SELECT public.set_data_source_credentials('d0000000-0000-0000-0000-00000000000a', '{"k":"v"}')$$,
                 '42501', NULL, 'bob cannot set the credentials of alice''s data source');

-- ---------------------------------------------------------------------------
-- admin
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'admin');
SELECT is((SELECT count(*) FROM public.data_sources), 3::bigint, 'admin reads all data sources (with alice''s soft-deleted one)');
SELECT lives_ok(format($$INSERT INTO public.data_sources (id, user_id, name, type) VALUES ('d0000000-0000-0000-0000-0000000000c1', %L, 'For bob', 'postgres')$$, :'bob'),
                'admin can INSERT a data source for another user');
SELECT is(tests.affected(format($$UPDATE public.data_sources SET user_id = %L WHERE id = 'd0000000-0000-0000-0000-0000000000c1'$$, :'alice')),
          1::bigint, 'admin can UPDATE and reassign any data source');
SELECT is(tests.affected($$DELETE FROM public.data_sources WHERE id = 'd0000000-0000-0000-0000-0000000000c1'$$),
          1::bigint, 'admin can DELETE any data source');
SELECT throws_ok($$SELECT * FROM public.data_source_credentials$$, '42501', NULL, 'admin cannot read data_source_credentials');
SELECT is((SELECT count(*) FROM public.import_tables), 1::bigint, 'admin reads all import registry rows');
SELECT throws_ok($$DELETE FROM public.import_tables$$, '42501', NULL, 'admin cannot DELETE registry rows (drop_import_table does)');
SELECT is((SELECT count(*) FROM public.imported_data), 2::bigint, 'admin reads all imported metrics');
SELECT lives_ok($$INSERT INTO public.imported_data (id, data_source_id, metric_name, event_date)
                  VALUES ('1d000000-0000-0000-0000-0000000000c1', 'd0000000-0000-0000-0000-00000000000b', 'fix', '2024-01-02')$$,
                'admin can INSERT imported_data');
SELECT is(tests.affected($$UPDATE public.imported_data SET metric_value = 1 WHERE id = '1d000000-0000-0000-0000-0000000000c1'$$),
          1::bigint, 'admin can UPDATE imported_data');
SELECT is(tests.affected($$DELETE FROM public.imported_data WHERE id = '1d000000-0000-0000-0000-0000000000c1'$$),
          1::bigint, 'admin can DELETE imported_data');
SELECT is((SELECT count(*) FROM public.sync_logs), 2::bigint, 'admin reads all sync logs');
SELECT throws_ok($$INSERT INTO public.sync_logs (status) VALUES ('running')$$, '42501', NULL, 'admin cannot INSERT sync_logs');
SELECT is(tests.affected($$DELETE FROM public.sync_logs WHERE id = '5d000000-0000-0000-0000-00000000000b'$$),
          1::bigint, 'admin can DELETE a sync log');
SELECT is(tests.affected(format('SELECT * FROM public.%I', :'import_table')), 1::bigint, 'admin reads alice''s import table');
SELECT is(tests.affected(format($$INSERT INTO public.%I (first_name) VALUES ('Adm')$$, :'import_table')), 1::bigint,
          'admin can INSERT into any import table');
SELECT is(tests.affected(format($$UPDATE public.%I SET amount = 1 WHERE first_name = 'Adm'$$, :'import_table')), 1::bigint,
          'admin can UPDATE any import table');
SELECT is(tests.affected(format($$DELETE FROM public.%I WHERE first_name = 'Adm'$$, :'import_table')), 1::bigint,
          'admin can DELETE from any import table');

-- ---------------------------------------------------------------------------
-- service_role
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as_service();
SELECT is((SELECT count(*) FROM public.data_sources), 3::bigint, 'service_role reads all data sources');
SELECT lives_ok($$INSERT INTO public.data_sources (id, name, type) VALUES ('d0000000-0000-0000-0000-0000000000d1', 'Sys', 'csv_url')$$,
                'service_role can INSERT a data source');
SELECT is(tests.affected($$UPDATE public.data_sources SET sync_status = 'syncing', last_sync_at = now() WHERE id = 'd0000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can UPDATE the sync state');
SELECT throws_ok($$UPDATE public.data_sources SET credentials = '{"password":"hunter2hunter2"}' WHERE id = 'd0000000-0000-0000-0000-0000000000d1'$$,
                 '23514', NULL, 'not even service_role can put clear credentials into data_sources.credentials');
SELECT is(tests.affected($$DELETE FROM public.data_sources WHERE id = 'd0000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can DELETE a data source');
SELECT is((SELECT count(*) FROM public.import_tables), 1::bigint, 'service_role reads import_tables');
SELECT is(tests.affected($$UPDATE public.import_tables SET row_count = 1, last_updated_at = now()$$), 1::bigint,
          'service_role can UPDATE import_tables');
SELECT lives_ok($$INSERT INTO public.imported_data (id, data_source_id, metric_name, event_date)
                  VALUES ('1d000000-0000-0000-0000-0000000000d1', 'd0000000-0000-0000-0000-00000000000a', 'users', '2024-01-03')$$,
                'service_role can INSERT imported_data');
SELECT is(tests.affected($$UPDATE public.imported_data SET metric_value = 3 WHERE id = '1d000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can UPDATE imported_data');
SELECT is(tests.affected($$DELETE FROM public.imported_data WHERE id = '1d000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can DELETE imported_data');
SELECT lives_ok($$INSERT INTO public.sync_logs (id, data_source_id, status) VALUES ('5d000000-0000-0000-0000-0000000000d1', 'd0000000-0000-0000-0000-00000000000a', 'running')$$,
                'service_role can INSERT sync_logs');
SELECT is(tests.affected($$UPDATE public.sync_logs SET status = 'success', completed_at = now(), records_imported = 5 WHERE id = '5d000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can UPDATE sync_logs');
SELECT is(tests.affected($$DELETE FROM public.sync_logs WHERE id = '5d000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can DELETE sync_logs');
SELECT tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Credentials: encrypted at rest, masked when read, the key from the server
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'alice');
SELECT is(tests.error_of($$SELECT public.set_data_source_credentials('d0000000-0000-0000-0000-00000000000a', '{"api_key":"sk_live_1234567890abcd"}')$$),
          '22023 set CAMPAIGND_ENCRYPTION_KEY', 'without a key, setting credentials fails with 22023 and the hint');
SELECT set_config('campaignd.encryption_key', 'short', true);
SELECT throws_ok($$SELECT public.set_data_source_credentials('d0000000-0000-0000-0000-00000000000a', '{"api_key":"x"}')$$,
                 '22023', NULL, 'a key shorter than 16 characters is refused');
SELECT set_config('campaignd.encryption_key', 'test-encryption-key-0123456789abcdef', true);
SELECT throws_ok($$SELECT public.set_data_source_credentials('d0000000-0000-0000-0000-00000000000a', '["not", "an", "object"]')$$,
                 '22023', NULL, 'credentials must be an object');
SELECT is(public.set_data_source_credentials('d0000000-0000-0000-0000-00000000000a',
              '{"api_key":"sk_live_1234567890abcd","user":"bob","port":5432,"password":null}'),
          '{"api_key":"****abcd","user":"****","port":"****","password":null}'::jsonb,
          'the owner sets credentials and gets the masked form back');
SELECT is((SELECT credentials FROM public.data_sources WHERE id = 'd0000000-0000-0000-0000-00000000000a'),
          '{"api_key":"****abcd","user":"****","port":"****","password":null}'::jsonb,
          'data_sources.credentials holds only the masked form');
SELECT tests.authenticate_as(:'admin');
SELECT is(public.set_data_source_credentials('d0000000-0000-0000-0000-00000000000b', '{"token":"tok_abcdefghijkl9876"}'),
          '{"token":"****9876"}'::jsonb, 'an admin may set the credentials of any source');
SELECT tests.authenticate_as(:'alice');
SELECT throws_ok($$SELECT public.get_data_source_credentials('d0000000-0000-0000-0000-00000000000a')$$, '42501', NULL,
                 'a user cannot read clear credentials, not even her own');
SELECT tests.authenticate_as_anon();
SELECT throws_ok($$SELECT public.set_data_source_credentials('d0000000-0000-0000-0000-00000000000a', '{"k":"v"}')$$, '42501', NULL,
                 'anon cannot execute set_data_source_credentials');
SELECT tests.clear_authentication();
SELECT is((SELECT position(convert_to('sk_live_1234567890abcd', 'UTF8') IN credentials_encrypted)
           FROM public.data_source_credentials WHERE data_source_id = 'd0000000-0000-0000-0000-00000000000a'),
          0, 'the stored ciphertext does not contain the clear secret');
SELECT is((SELECT count(*) FROM public.audit_logs
           WHERE coalesce(old_value::text, '') || coalesce(new_value::text, '') || coalesce(metadata::text, '')
                 ~ '(sk_live_1234567890abcd|tok_abcdefghijkl9876)'), 0::bigint,
          'no audit row contains a clear secret');
SELECT tests.authenticate_as_service();
SELECT is(public.get_data_source_credentials('d0000000-0000-0000-0000-00000000000a'),
          '{"api_key":"sk_live_1234567890abcd","user":"bob","port":5432,"password":null}'::jsonb,
          'service_role decrypts the credentials with the key');
SELECT is(public.get_data_source_credentials('d0000000-0000-0000-0000-00000000000b'), '{"token":"tok_abcdefghijkl9876"}'::jsonb,
          'and the admin-set ones');
SELECT set_config('campaignd.encryption_key', 'another-key-that-is-long-enough', true);
SELECT is(tests.error_of($$SELECT public.get_data_source_credentials('d0000000-0000-0000-0000-00000000000a')$$),
          '22023 set CAMPAIGND_ENCRYPTION_KEY to the key the secret was written with', 'a wrong key gives 22023, not garbage');
SELECT set_config('campaignd.encryption_key', '', true);
SELECT throws_ok($$SELECT public.get_data_source_credentials('d0000000-0000-0000-0000-00000000000a')$$, '22023', NULL,
                 'reading without a key gives 22023');
SELECT is(public.set_data_source_credentials('d0000000-0000-0000-0000-00000000000b', NULL), NULL::jsonb,
          'credentials can be removed (no key needed)');
SELECT tests.clear_authentication();
SELECT is((SELECT count(*) FROM public.data_source_credentials WHERE data_source_id = 'd0000000-0000-0000-0000-00000000000b'),
          0::bigint, 'removing deletes the encrypted row');
SELECT is(public.mask_secret('abc'), '****', 'a short secret is masked entirely');
SELECT is(public.mask_secret('0123456789abcdef'), '****cdef', 'a long secret shows its last 4 characters only');

-- ---------------------------------------------------------------------------
-- Deletes, drop_import_table, updated_at, CHECKs
-- ---------------------------------------------------------------------------
SELECT throws_ok($$DELETE FROM public.data_sources WHERE id = 'd0000000-0000-0000-0000-00000000000a'$$, '23503', NULL,
                 'a data source with an import table cannot be hard-deleted');
SELECT tests.authenticate_as_service();
SELECT throws_ok($$SELECT public.drop_import_table('campaigns')$$, '22023', NULL, 'drop_import_table refuses a non-import name');
SELECT throws_ok($$SELECT public.drop_import_table('import_tables')$$, '22023', NULL,
                 'drop_import_table refuses an unregistered import_ name');
SELECT lives_ok(format('SELECT public.drop_import_table(%L)', :'import_table'), 'service_role drops the import table');
SELECT tests.clear_authentication();
SELECT hasnt_table('public', :'import_table', 'the import table is gone');
SELECT is((SELECT table_name FROM public.data_sources WHERE id = 'd0000000-0000-0000-0000-00000000000a'), NULL,
          'data_sources.table_name was cleared');
SELECT is((SELECT updated_at FROM public.data_sources WHERE id = 'd0000000-0000-0000-0000-00000000000a'), now(),
          'updated_at changed on UPDATE');
SELECT throws_ok($$DELETE FROM public.data_sources WHERE id = 'd0000000-0000-0000-0000-00000000000a'$$, '23503', NULL,
                 'a data source with imported data cannot be hard-deleted: its data is never dropped silently (018)');
SELECT is((SELECT count(*) FROM public.imported_data WHERE id = '1d000000-0000-0000-0000-00000000000a'), 1::bigint,
          'the imported metrics are still there');
DELETE FROM public.imported_data WHERE data_source_id = 'd0000000-0000-0000-0000-00000000000a';
DELETE FROM public.data_sources WHERE id = 'd0000000-0000-0000-0000-00000000000a';
SELECT is((SELECT count(*) FROM public.sync_logs WHERE id = '5d000000-0000-0000-0000-00000000000a' AND data_source_id IS NULL),
          1::bigint, 'a hard-deleted source keeps its sync history (data_source_id NULL)');
SELECT is((SELECT count(*) FROM public.imported_data WHERE id = '1d000000-0000-0000-0000-00000000000a'), 0::bigint,
          'its imported metrics were removed first, explicitly');
SELECT is((SELECT count(*) FROM public.data_source_credentials WHERE data_source_id = 'd0000000-0000-0000-0000-00000000000a'),
          0::bigint, 'and its encrypted credentials');
SELECT throws_ok($$INSERT INTO public.data_sources (name, type) VALUES ('x', 'ftp')$$, '23514', NULL, 'an unknown source type is refused');
SELECT throws_ok($$INSERT INTO public.data_sources (name, type, sync_schedule) VALUES ('x', 'csv_url', 'cron')$$, '23514', NULL,
                 'a cron schedule needs schedule_config.cron_expression');
SELECT throws_ok($$INSERT INTO public.sync_logs (status) VALUES ('paused')$$, '23514', NULL, 'an unknown sync status is refused');

SELECT * FROM finish();
ROLLBACK;
