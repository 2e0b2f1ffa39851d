-- tests/sql/047_import_row_counts.sql: import_tables.row_count without a count(*)
-- (migrations/047_import_row_counts.sql): the count triggers follow inserts,
-- deletes and TRUNCATE made outside a sync; import_finish_staging's 8-argument
-- form takes the COPY's count, and an upsert adds the inserted rows and
-- subtracts the deleted ones (no count of the table: a row_count set wrong on
-- purpose stays off by the same amount); the 021 form still counts.
BEGIN;
SELECT plan(26);

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

-- ---------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------
SELECT ok(has_function_privilege('service_role',
              'public.import_finish_staging(uuid, text, text, text[], text[], text, uuid, bigint)', 'EXECUTE')
          AND NOT has_function_privilege('authenticated',
              'public.import_finish_staging(uuid, text, text, text[], text[], text, uuid, bigint)', 'EXECUTE')
          AND NOT has_function_privilege('anon',
              'public.import_finish_staging(uuid, text, text, text[], text[], text, uuid, bigint)', 'EXECUTE'),
          'import_finish_staging with the COPY count: service_role only');
SELECT ok(NOT bool_or(has_function_privilege(r, f, 'EXECUTE')), 'the count helpers: no API role')
FROM unnest(ARRAY['public.import_count_rows()', 'public.import_count_triggers(text)']) f,
     unnest(ARRAY['anon', 'authenticated', 'service_role']) r;
SELECT ok(bool_and(p.prosecdef AND p.proconfig @> ARRAY['search_path=""']), 'SECURITY DEFINER with a pinned search_path')
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace
  AND p.proname IN ('import_count_rows', 'import_count_triggers', 'import_finish_staging', 'import_analyze');

-- ---------------------------------------------------------------------------
-- A full sync: the COPY's count, and the count triggers on the swapped table
-- ---------------------------------------------------------------------------
SELECT tests.create_user('cora@counts.test', 'user') AS cora \gset
INSERT INTO public.data_sources (id, user_id, name, type, config)
VALUES ('77777777-7777-4777-8777-777777777777', :'cora', 'Counted', 'csv_upload', '{"storage_path":"x/y.csv"}');
INSERT INTO public.sync_logs (id, data_source_id, status)
VALUES ('77777777-0000-4000-8000-000000000001', '77777777-7777-4777-8777-777777777777', 'success');

SELECT tests.authenticate_as_service();
SELECT public.create_import_table(:'cora', 'counted',
    '[{"target_name":"email","type":"text"},{"target_name":"score","type":"integer"}]',
    '77777777-7777-4777-8777-777777777777') AS tbl \gset
SELECT public.import_create_staging('77777777-7777-4777-8777-777777777777', NULL) AS stg \gset
SELECT lives_ok(format($$INSERT INTO import_staging.%I
    SELECT gen_random_uuid(), 'u' || g || '@x.com', g FROM generate_series(1, 10) g$$, :'stg'), 'load 10 rows');
SELECT is(pg_temp.error_of(format($$SELECT public.import_finish_staging('77777777-7777-4777-8777-777777777777',
          %L, 'append', '{}', '{}', 'none', '77777777-0000-4000-8000-000000000001', -1)$$, :'stg')), '22023',
          'a negative count is refused');
-- the job says it copied 10 rows (the staging table is not counted)
SELECT is(public.import_finish_staging('77777777-7777-4777-8777-777777777777', :'stg', 'replace',
                                        '{email}', '{email}', 'keep_first', '77777777-0000-4000-8000-000000000001', 10),
          '{"rows": 10, "imported": 10, "duplicates": 0}'::jsonb, 'replace with the COPY''s count');
SELECT is((SELECT row_count FROM public.import_tables WHERE table_name = :'tbl'), 10, 'registry: 10 rows');
SELECT is((SELECT count(*)::int FROM pg_trigger WHERE tgrelid = ('public.' || :'tbl')::regclass
           AND tgname LIKE 'import_count_%'), 3, 'the swapped table has the three count triggers');

-- ---------------------------------------------------------------------------
-- Rows changed outside a sync (the owner through /rest/v1)
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'cora');
SELECT lives_ok(format($$INSERT INTO public.%I (email, score) VALUES ('new1@x.com', 100), ('new2@x.com', 101)$$, :'tbl'),
                'the owner inserts two rows');
SELECT tests.authenticate_as_service();
SELECT is((SELECT row_count FROM public.import_tables WHERE table_name = :'tbl'), 12, 'an insert adds to the count');
SELECT tests.authenticate_as(:'cora');
SELECT lives_ok(format($$DELETE FROM public.%I WHERE score <= 3$$, :'tbl'), 'the owner deletes three rows');
SELECT lives_ok(format($$UPDATE public.%I SET score = score + 1 WHERE score = 4$$, :'tbl'), 'an update');
SELECT tests.authenticate_as_service();
SELECT is((SELECT row_count FROM public.import_tables WHERE table_name = :'tbl'), 9,
          'a delete subtracts, an update changes nothing');
SELECT is((SELECT row_count FROM public.import_tables WHERE table_name = :'tbl'),
          (SELECT count(*)::int FROM public.:"tbl"), 'the count matches the table');

-- ---------------------------------------------------------------------------
-- An incremental sync: inserted minus deleted, no count(*)
-- ---------------------------------------------------------------------------
SELECT public.import_create_staging('77777777-7777-4777-8777-777777777777', NULL) AS stg2 \gset
-- u5 and u6 exist (replaced), u50 is new
SELECT lives_ok(format($$INSERT INTO import_staging.%I VALUES
    (gen_random_uuid(), 'U5@x.com', 55), (gen_random_uuid(), 'u6@x.com', 66), (gen_random_uuid(), 'u50@x.com', 50)$$, :'stg2'),
    'second load');
SELECT is(public.import_finish_staging('77777777-7777-4777-8777-777777777777', :'stg2', 'upsert',
                                        '{email}', '{email}', 'keep_first', '77777777-0000-4000-8000-000000000001', 3),
          '{"rows": 10, "imported": 3, "duplicates": 0, "updated": 2, "inserted": 1, "unchanged": 0}'::jsonb,
          'upsert: 9 + 1 inserted, 2 updated in place (migration 065)');
SELECT is((SELECT count(*)::int FROM public.:"tbl"), 10, 'the table holds 10 rows');
SELECT is((SELECT (metadata->>'rows_updated')::int FROM public.audit_logs
           WHERE action = 'import' AND resource_type = :'tbl' AND metadata->>'mode' = 'upsert'), 2,
          'the one audit row of the sync says how many rows it replaced');
SELECT ok((SELECT bool_and(tgenabled = 'O') FROM pg_trigger WHERE tgrelid = ('public.' || :'tbl')::regclass
           AND tgname IN ('audit', 'import_count_insert', 'import_count_delete')),
          'the audit and count triggers are on again after the merge');

-- the merge does not count the table: a count set off by 100 on purpose stays off by 100
UPDATE public.import_tables SET row_count = row_count + 100 WHERE table_name = :'tbl';
SELECT public.import_create_staging('77777777-7777-4777-8777-777777777777', NULL) AS stg3 \gset
SELECT lives_ok(format($$INSERT INTO import_staging.%I VALUES (gen_random_uuid(), 'u51@x.com', 51)$$, :'stg3'),
                'third load');
SELECT is(public.import_finish_staging('77777777-7777-4777-8777-777777777777', :'stg3', 'append',
                                        '{}', '{}', 'none', '77777777-0000-4000-8000-000000000001', 1) -> 'rows',
          '111'::jsonb, 'append: the count before plus the rows inserted (no count of the table)');

-- statistics for the merges to come
SELECT ok(has_function_privilege('service_role', 'public.import_analyze(uuid)', 'EXECUTE')
          AND NOT has_function_privilege('authenticated', 'public.import_analyze(uuid)', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'public.import_analyze(uuid)', 'EXECUTE'),
          'import_analyze: service_role only');
SELECT is(public.import_analyze('77777777-7777-4777-8777-777777777777'), :'tbl', 'import_analyze names the table');
SELECT is((SELECT reltuples FROM pg_class WHERE oid = ('public.' || :'tbl')::regclass),
          (SELECT count(*)::real FROM public.:"tbl"), 'and gave it statistics (the planner knows its rows)');

-- the form of 021 (no COPY count) counts the staging table and still works
SELECT public.import_create_staging('77777777-7777-4777-8777-777777777777', NULL) AS stg4 \gset
SELECT lives_ok(format($$INSERT INTO import_staging.%I
    SELECT gen_random_uuid(), 'v' || g || '@x.com', g FROM generate_series(1, 4) g$$, :'stg4'), 'fourth load');
SELECT is(public.import_finish_staging('77777777-7777-4777-8777-777777777777', :'stg4', 'replace',
                                        '{}', '{}', 'none', '77777777-0000-4000-8000-000000000001'),
          '{"rows": 4, "imported": 4, "duplicates": 0}'::jsonb, 'the 7-argument form counts the staging table');

SELECT * FROM finish();
ROLLBACK;
