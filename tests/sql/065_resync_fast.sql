-- tests/sql/065_resync_fast.sql: an incremental re-sync writes what changed
-- (migrations/065_resync_fast.sql): an upsert updates the rows whose key is in
-- the table in place (same id), leaves unchanged rows alone (not rewritten) and
-- inserts new keys, one audit row for the merge and none per row, the count
-- kept; a duplicate_handling that does not make keys unique keeps the delete +
-- insert; import_begin_run writes no second 'syncing'; the 5-argument
-- import_succeed_run writes the position in the UPDATE that records the success;
-- an incremental source's table is made with fillfactor 90.
BEGIN;
SELECT plan(32);

-- ---------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------
SELECT ok(has_function_privilege('service_role', 'public.import_succeed_run(uuid, bigint, bigint, jsonb, text)', 'EXECUTE')
          AND NOT has_function_privilege('authenticated', 'public.import_succeed_run(uuid, bigint, bigint, jsonb, text)', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'public.import_succeed_run(uuid, bigint, bigint, jsonb, text)', 'EXECUTE'),
          'import_succeed_run with the position: service_role only');
SELECT ok(bool_and(p.prosecdef AND p.proconfig @> ARRAY['search_path=""']), 'SECURITY DEFINER with a pinned search_path')
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace
  AND p.proname IN ('import_finish_staging', 'import_begin_run', 'import_succeed_run');

-- ---------------------------------------------------------------------------
-- A table of 10 rows, then an upsert: unchanged, changed, new
-- ---------------------------------------------------------------------------
SELECT tests.create_user('rhea@resync.test', 'user') AS rhea \gset
INSERT INTO public.data_sources (id, user_id, name, type, config)
VALUES ('65656565-6565-4565-8565-656565656565', :'rhea', 'Resync', 'csv_upload', '{"storage_path":"x/y.csv"}');
INSERT INTO public.sync_logs (id, data_source_id, status)
VALUES ('65656565-0000-4000-8000-000000000001', '65656565-6565-4565-8565-656565656565', 'success');

SELECT tests.authenticate_as_service();
SELECT public.create_import_table(:'rhea', 'resync',
    '[{"target_name":"email","type":"text"},{"target_name":"score","type":"integer"},{"target_name":"seen","type":"date"}]',
    '65656565-6565-4565-8565-656565656565') AS tbl \gset
SELECT public.import_create_staging('65656565-6565-4565-8565-656565656565', NULL) AS stg \gset
SELECT lives_ok(format($$INSERT INTO import_staging.%I
    SELECT gen_random_uuid(), 'u' || g || '@x.com', g, CASE WHEN g <> 3 THEN date '2024-01-01' + g END
    FROM generate_series(1, 10) g$$, :'stg'), 'load 10 rows');
SELECT is(public.import_finish_staging('65656565-6565-4565-8565-656565656565', :'stg', 'replace',
                                        '{email}', '{}', 'keep_last', '65656565-0000-4000-8000-000000000001', 10),
          '{"rows": 10, "imported": 10, "duplicates": 0}'::jsonb, 'a full sync swaps the table in');

RESET ROLE;
CREATE TEMP TABLE before_rows AS SELECT email, id, xmin::text AS x, ctid::text AS c FROM public.:"tbl";
GRANT SELECT ON before_rows TO PUBLIC;
SELECT tests.authenticate_as_service();

SELECT public.import_delta_staging('65656565-6565-4565-8565-656565656565') AS dlt \gset
-- u1 and u3 (a NULL date both sides) as they are, u2 with a new score, u4 with a
-- new date, u99 new, a row without a key (never matches: inserted)
SELECT lives_ok(format($$INSERT INTO import_staging.%I VALUES
    ('01900000-0000-7000-8000-000000000001', 'u1@x.com', 1, date '2024-01-02'),
    ('01900000-0000-7000-8000-000000000002', 'u2@x.com', 200, date '2024-01-03'),
    ('01900000-0000-7000-8000-000000000003', 'u3@x.com', 3, NULL),
    ('01900000-0000-7000-8000-000000000004', 'u4@x.com', 4, date '2030-01-01'),
    ('01900000-0000-7000-8000-000000000005', 'u99@x.com', 99, NULL),
    ('01900000-0000-7000-8000-000000000006', NULL, 700, NULL)$$, :'dlt'), 'load the changes');
SELECT (SELECT count(*) FROM public.audit_logs WHERE resource_type = :'tbl') AS audits_before \gset
SELECT (SELECT count(*) FROM public.audit_logs WHERE resource_type = 'import_tables') AS it_audits_before \gset
SELECT is(public.import_finish_staging('65656565-6565-4565-8565-656565656565', :'dlt', 'upsert',
                                        '{email}', '{}', 'keep_last', '65656565-0000-4000-8000-000000000001', 6),
          '{"rows": 12, "imported": 6, "duplicates": 0, "updated": 2, "inserted": 2, "unchanged": 2}'::jsonb,
          'upsert: 2 updated in place, 2 inserted, 2 unchanged');
SELECT is((SELECT string_agg(coalesce(email, '-') || ':' || score || ':' || coalesce(seen::text, '-'), ',' ORDER BY score)
           FROM public.:"tbl" WHERE score IN (1, 3, 4, 99, 200, 700)),
          'u1@x.com:1:2024-01-02,u3@x.com:3:-,u4@x.com:4:2030-01-01,u99@x.com:99:-,u2@x.com:200:2024-01-03,-:700:-',
          'the table holds the new content');
SELECT is((SELECT count(*)::int FROM public.:"tbl" t JOIN before_rows b USING (email)
           WHERE t.email IN ('u1@x.com', 'u3@x.com') AND t.xmin::text = b.x AND t.ctid::text = b.c), 2,
          'the unchanged rows were not rewritten (same row version)');
SELECT is((SELECT count(*)::int FROM public.:"tbl" t JOIN before_rows b USING (email)
           WHERE t.email IN ('u2@x.com', 'u4@x.com') AND t.id = b.id AND t.xmin::text <> b.x), 2,
          'the changed rows were updated in place: same id, a new row version');
SELECT is((SELECT count(*)::int FROM public.:"tbl" WHERE email = 'u2@x.com'), 1, 'no key doubled');
SELECT is((SELECT row_count FROM public.import_tables WHERE table_name = :'tbl'),
          (SELECT count(*)::int FROM public.:"tbl"), 'the count follows the inserted rows');
SELECT is((SELECT count(*)::int FROM public.audit_logs WHERE resource_type = :'tbl') - :audits_before, 1,
          'one audit row for the merge, none per row');
SELECT is((SELECT count(*)::int FROM public.audit_logs WHERE resource_type = :'tbl' AND action = 'import'
           AND metadata @> '{"mode": "upsert", "rows_updated": 2, "rows_inserted": 2, "rows_unchanged": 2, "rows_deleted": 0}'),
          1, 'the audit row says what the merge wrote');
SELECT is((SELECT count(*)::int FROM public.audit_logs WHERE resource_type = 'import_tables') - :it_audits_before, 2,
          'import_tables written twice (the count of the insert, the merge''s time), not three times');
SELECT is((SELECT count(*)::int FROM import_staging.:"dlt"), 0, 'the staging table is empty again');

-- the same rows again: nothing to write
SELECT lives_ok(format($$INSERT INTO import_staging.%I VALUES
    ('01900000-0000-7000-8000-000000000011', 'u2@x.com', 200, date '2024-01-03'),
    ('01900000-0000-7000-8000-000000000012', 'u4@x.com', 4, date '2030-01-01')$$, :'dlt'), 'load the same rows');
SELECT (SELECT count(*) FROM public.audit_logs WHERE resource_type = 'import_tables') AS it_audits_before \gset
SELECT is(public.import_finish_staging('65656565-6565-4565-8565-656565656565', :'dlt', 'upsert',
                                        '{email}', '{}', 'keep_first', '65656565-0000-4000-8000-000000000001', 2),
          '{"rows": 12, "imported": 2, "duplicates": 0, "updated": 0, "inserted": 0, "unchanged": 2}'::jsonb,
          'a re-read of unchanged rows writes none of them');
SELECT is((SELECT count(*)::int FROM public.audit_logs WHERE resource_type = 'import_tables') - :it_audits_before, 1,
          'and writes import_tables once');

-- handling none (the default) with unique keys: in place too
SELECT lives_ok(format($$INSERT INTO import_staging.%I VALUES
    ('01900000-0000-7000-8000-000000000031', 'u6@x.com', 60, NULL),
    ('01900000-0000-7000-8000-000000000032', 'u8@x.com', 8, date '2024-01-09'),
    ('01900000-0000-7000-8000-000000000033', NULL, 701, NULL),
    ('01900000-0000-7000-8000-000000000034', NULL, 702, NULL)$$, :'dlt'), 'load unique keys (and two without a key)');
SELECT is(public.import_finish_staging('65656565-6565-4565-8565-656565656565', :'dlt', 'upsert',
                                        '{email}', '{}', 'none', '65656565-0000-4000-8000-000000000001', 4),
          '{"rows": 14, "imported": 4, "duplicates": 0, "updated": 1, "inserted": 2, "unchanged": 1}'::jsonb,
          'handling none, keys unique: u6 updated in place, u8 unchanged, the two rows without a key inserted');

-- handling none with a key twice in the load: delete + insert, as before
SELECT (SELECT id FROM public.:"tbl" WHERE email = 'u5@x.com') AS u5_id \gset
SELECT lives_ok(format($$INSERT INTO import_staging.%I VALUES
    ('01900000-0000-7000-8000-000000000021', 'u5@x.com', 51, NULL),
    ('01900000-0000-7000-8000-000000000022', 'u5@x.com', 52, NULL)$$, :'dlt'), 'load a key twice');
SELECT is(public.import_finish_staging('65656565-6565-4565-8565-656565656565', :'dlt', 'upsert',
                                        '{email}', '{}', 'none', '65656565-0000-4000-8000-000000000001', 2),
          '{"rows": 15, "imported": 2, "duplicates": 0}'::jsonb, 'handling none, a key twice: the key''s row replaced by both');
SELECT is((SELECT count(*)::int FROM public.:"tbl" WHERE email = 'u5@x.com' AND id <> :'u5_id'), 2,
          'new rows, new ids');

-- ---------------------------------------------------------------------------
-- import_begin_run: no second 'syncing'
-- ---------------------------------------------------------------------------
RESET ROLE;
UPDATE public.data_sources SET sync_status = 'syncing' WHERE id = '65656565-6565-4565-8565-656565656565';
INSERT INTO public.sync_logs (id, data_source_id, status, metadata)
VALUES ('65656565-0000-4000-8000-000000000002', '65656565-6565-4565-8565-656565656565', 'running', '{"phase": "queued"}');
SELECT (SELECT xmin::text FROM public.data_sources WHERE id = '65656565-6565-4565-8565-656565656565') AS ds_xmin \gset
-- a new transaction id for what follows: a row written below would show it
SAVEPOINT s1;
SELECT tests.authenticate_as_service();
SELECT is(public.import_begin_run('65656565-6565-4565-8565-656565656565', '65656565-0000-4000-8000-000000000002',
                                  'manual', 1, 42),
          '65656565-0000-4000-8000-000000000002'::uuid, 'the run starts');
SELECT is((SELECT xmin::text FROM public.data_sources WHERE id = '65656565-6565-4565-8565-656565656565'), :'ds_xmin',
          'data_sources was not written again: it said syncing already');
SELECT is((SELECT metadata->>'phase' FROM public.sync_logs WHERE id = '65656565-0000-4000-8000-000000000002'), 'starting',
          'the run''s row says it started');

-- ---------------------------------------------------------------------------
-- import_succeed_run with the position: one UPDATE of data_sources
-- ---------------------------------------------------------------------------
SELECT (SELECT count(*) FROM public.audit_logs WHERE resource_type = 'data_sources') AS ds_audits \gset
SELECT lives_ok($$SELECT public.import_succeed_run('65656565-0000-4000-8000-000000000002', 5, 0, '{}', '2024-03-01 06:00:00+00')$$,
                'the run succeeds with a position');
SELECT is((SELECT sync_status || ' ' || last_sync_value FROM public.data_sources
           WHERE id = '65656565-6565-4565-8565-656565656565'), 'success 2024-03-01 06:00:00+00',
          'status and position written');
SELECT is((SELECT count(*)::int FROM public.audit_logs WHERE resource_type = 'data_sources') - :ds_audits, 1,
          'by one UPDATE (one audit row)');
RESET ROLE;
UPDATE public.sync_logs SET status = 'running' WHERE id = '65656565-0000-4000-8000-000000000002';
SELECT tests.authenticate_as_service();
SELECT public.import_succeed_run('65656565-0000-4000-8000-000000000002', 5, 0, '{}', NULL);
SELECT is((SELECT last_sync_value FROM public.data_sources WHERE id = '65656565-6565-4565-8565-656565656565'),
          '2024-03-01 06:00:00+00', 'no position: the last one stays');

-- ---------------------------------------------------------------------------
-- import_create_staging: room on each page for an incremental source
-- ---------------------------------------------------------------------------
RESET ROLE;
INSERT INTO public.data_sources (id, user_id, name, type, config, schedule_config)
VALUES ('65656565-6565-4565-8565-656565656566', :'rhea', 'Incremental', 'csv_upload', '{"storage_path":"x/z.csv"}',
        '{"incremental_strategy": "incremental"}');
SELECT tests.authenticate_as_service();
SELECT public.import_create_staging('65656565-6565-4565-8565-656565656566',
    '[{"target_name":"email","sql_type":"text"}]') AS stg_inc \gset
SELECT public.import_create_staging('65656565-6565-4565-8565-656565656565',
    '[{"target_name":"email","sql_type":"text"}]') AS stg_full \gset
SELECT is((SELECT reloptions FROM pg_class WHERE oid = ('import_staging.' || :'stg_inc')::regclass),
          ARRAY['fillfactor=90'], 'an incremental source''s table leaves room on its pages');
SELECT is((SELECT reloptions FROM pg_class WHERE oid = ('import_staging.' || :'stg_full')::regclass),
          NULL, 'a full-sync source''s table is packed');

SELECT * FROM finish();
ROLLBACK;
