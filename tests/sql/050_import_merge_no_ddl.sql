-- tests/sql/050_import_merge_no_ddl.sql: appends and upserts without DDL
-- (migrations/050_import_merge_no_ddl.sql): the source's lasting unlogged dlt_
-- staging table, made once and emptied by each merge; duplicates in it resolved
-- in file order by id (not by where the rows sit on disk); the merge's rows
-- skipped by the per-row audit trigger only when the merge itself marked its
-- transaction (the setting alone skips nothing); the count triggers count the
-- merge; no table made, dropped or altered by a merge.
BEGIN;
SELECT plan(28);

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
SELECT ok(has_function_privilege('service_role', 'public.import_delta_staging(uuid)', 'EXECUTE')
          AND NOT has_function_privilege('authenticated', 'public.import_delta_staging(uuid)', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'public.import_delta_staging(uuid)', 'EXECUTE'),
          'import_delta_staging: service_role only');
SELECT ok(NOT bool_or(has_function_privilege(r, f, 'EXECUTE')), 'the merge helpers: no API role')
FROM unnest(ARRAY['public.import_merge_audit(text)', 'public.import_column_defs(regclass)']) f,
     unnest(ARRAY['anon', 'authenticated', 'service_role']) r;
SELECT ok(NOT bool_or(has_table_privilege(r, 'import_staging.import_merges', p)),
          'nobody but the merge writes or reads the marker of a merge')
FROM unnest(ARRAY['anon', 'authenticated', 'service_role']) r,
     unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) p;
SELECT ok(bool_and(p.prosecdef AND p.proconfig @> ARRAY['search_path=""']), 'SECURITY DEFINER with a pinned search_path')
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace
  AND p.proname IN ('import_audit_wanted', 'import_merge_audit', 'import_column_defs', 'import_delta_staging',
                    'import_dedupe_staging', 'import_finish_staging');

-- ---------------------------------------------------------------------------
-- A full sync makes the table; its audit trigger skips merges
-- ---------------------------------------------------------------------------
SELECT tests.create_user('dora@delta.test', 'user') AS dora \gset
INSERT INTO public.data_sources (id, user_id, name, type, config)
VALUES ('55555555-5555-4555-8555-555555555555', :'dora', 'Delta', 'csv_upload', '{"storage_path":"x/y.csv"}'),
       ('55555555-5555-4555-8555-555555555556', :'dora', 'Other', 'csv_upload', '{"storage_path":"x/z.csv"}');
INSERT INTO public.sync_logs (id, data_source_id, status)
VALUES ('55555555-0000-4000-8000-000000000001', '55555555-5555-4555-8555-555555555555', 'success');

SELECT tests.authenticate_as_service();
SELECT public.create_import_table(:'dora', 'delta',
    '[{"target_name":"email","type":"text"},{"target_name":"score","type":"integer"}]',
    '55555555-5555-4555-8555-555555555555') AS tbl \gset
SELECT public.import_create_staging('55555555-5555-4555-8555-555555555555', NULL) AS stg \gset
SELECT lives_ok(format($$INSERT INTO import_staging.%I
    SELECT gen_random_uuid(), 'u' || g || '@x.com', g FROM generate_series(1, 10) g$$, :'stg'), 'load 10 rows');
SELECT is(public.import_finish_staging('55555555-5555-4555-8555-555555555555', :'stg', 'replace',
                                        '{email}', '{}', 'keep_last', '55555555-0000-4000-8000-000000000001', 10),
          '{"rows": 10, "imported": 10, "duplicates": 0}'::jsonb, 'a full sync swaps the table in');
SELECT ok((SELECT tgqual IS NOT NULL FROM pg_trigger
           WHERE tgrelid = ('public.' || :'tbl')::regclass AND tgname = 'audit'),
          'the swapped table''s audit trigger has the WHEN condition of merges');

-- ---------------------------------------------------------------------------
-- The lasting staging table
-- ---------------------------------------------------------------------------
SELECT public.import_delta_staging('55555555-5555-4555-8555-555555555555') AS dlt \gset
SELECT is(:'dlt', 'dlt_' || substr(md5('55555555-5555-4555-8555-555555555555'), 1, 12), 'named after the source');
SELECT is((SELECT relpersistence FROM pg_class WHERE oid = ('import_staging.' || :'dlt')::regclass), 'u'::"char",
          'unlogged');
SELECT (('import_staging.' || :'dlt')::regclass)::oid AS dlt_oid \gset
SELECT is(public.import_delta_staging('55555555-5555-4555-8555-555555555555'), :'dlt', 'asked again: the same table');
SELECT is((('import_staging.' || :'dlt')::regclass)::oid, :'dlt_oid'::oid, '... not made anew');

-- an upsert: u5 and u6 replaced, u50 new; u50 twice, in file order by id
-- (inserted in reverse order, so ctid order is the opposite of file order)
SELECT lives_ok(format($$INSERT INTO import_staging.%I VALUES
    ('01900000-0000-7000-8000-000000000004', 'u50@x.com', 502),
    ('01900000-0000-7000-8000-000000000003', 'u50@x.com', 501),
    ('01900000-0000-7000-8000-000000000002', 'u6@x.com', 66),
    ('01900000-0000-7000-8000-000000000001', 'u5@x.com', 55)$$, :'dlt'), 'load the changes');
SELECT (SELECT count(*) FROM public.audit_logs WHERE resource_type = :'tbl') AS audits_before \gset
SELECT (SELECT relfilenode FROM pg_class WHERE oid = ('public.' || :'tbl')::regclass) AS node_before \gset
SELECT is(public.import_finish_staging('55555555-5555-4555-8555-555555555555', :'dlt', 'upsert',
                                        '{email}', '{}', 'keep_last', '55555555-0000-4000-8000-000000000001', 4),
          '{"rows": 11, "imported": 3, "duplicates": 1, "updated": 2, "inserted": 1, "unchanged": 0}'::jsonb,
          'upsert: 10 + 1 inserted, 2 updated in place (migration 065)');
SELECT is((SELECT score FROM public.:"tbl" WHERE email = 'u50@x.com'), 502, 'keep_last keeps the last row of the file (by id)');
SELECT is((SELECT array_agg(score ORDER BY score) FROM public.:"tbl" WHERE email IN ('u5@x.com', 'u6@x.com')),
          ARRAY[55, 66], 'the rows of the key were replaced');
SELECT is((SELECT row_count FROM public.import_tables WHERE table_name = :'tbl'),
          (SELECT count(*)::int FROM public.:"tbl"), 'the count triggers counted the merge');
SELECT is((SELECT count(*)::int FROM public.audit_logs WHERE resource_type = :'tbl') - :audits_before, 1,
          'one audit row for the merge, none per row');
SELECT is((SELECT count(*)::int FROM import_staging.:"dlt"), 0, 'the staging table is empty again');
SELECT is((('import_staging.' || :'dlt')::regclass)::oid, :'dlt_oid'::oid, 'and was not dropped');
SELECT is((SELECT relfilenode FROM pg_class WHERE oid = ('public.' || :'tbl')::regclass), :'node_before'::oid,
          'the import table is the same table');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM import_staging.import_merges), 0, 'no merge marker is left');

-- ---------------------------------------------------------------------------
-- The setting alone does not switch the audit off
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'dora');
SELECT set_config('campaignd.import_merge', 'on', true);
SELECT lives_ok(format($$INSERT INTO public.%I (email, score) VALUES ('forged@x.com', 1)$$, :'tbl'),
                'the owner inserts a row with campaignd.import_merge set');
SELECT tests.authenticate_as_service();
SELECT is((SELECT count(*)::int FROM public.audit_logs WHERE resource_type = :'tbl' AND action = 'create'), 1,
          'the row is audited all the same');

-- ---------------------------------------------------------------------------
-- Refusals, and new columns
-- ---------------------------------------------------------------------------
SELECT is(pg_temp.error_of(format($$SELECT public.import_finish_staging('55555555-5555-4555-8555-555555555556',
          %L, 'append', '{}', '{}', 'none', '55555555-0000-4000-8000-000000000001', 0)$$, :'dlt')), '22023',
          'the staging table of another source is refused');
SELECT is(pg_temp.error_of(format($$SELECT public.import_finish_staging('55555555-5555-4555-8555-555555555555',
          %L, 'replace', '{}', '{}', 'none', '55555555-0000-4000-8000-000000000001', 0)$$, :'dlt')), '22023',
          'a replace from the lasting staging table is refused');
RESET ROLE;
SELECT lives_ok(format('ALTER TABLE public.%I ADD COLUMN city text', :'tbl'), 'the import table gets a column');
SELECT tests.authenticate_as_service();
SELECT is(public.import_delta_staging('55555555-5555-4555-8555-555555555555'), :'dlt', 'the same name');
SELECT ok(EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = ('import_staging.' || :'dlt')::regclass
                  AND attname = 'city' AND NOT attisdropped), 'remade with the new column');

SELECT * FROM finish();
ROLLBACK;
