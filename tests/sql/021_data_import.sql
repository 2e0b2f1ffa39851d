-- tests/sql/021_data_import.sql: file imports (migrations/021_data_import.sql): the
-- imports bucket, who may call which function, sync requests and cancels, the
-- job's bookkeeping (begin / progress / end, interrupted runs), staging tables,
-- duplicate handling and the atomic swap, and the contacts destination.
BEGIN;
SELECT plan(66);

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
-- Schema and privileges
-- ---------------------------------------------------------------------------
SELECT ok(EXISTS (SELECT 1 FROM storage.buckets WHERE id = 'imports' AND NOT public), 'a private imports bucket');
SELECT has_column('public', 'sync_logs', 'cancel_requested_at', 'sync_logs.cancel_requested_at');
SELECT has_index('public', 'sync_logs', 'idx_sync_logs_one_running', 'one running sync per source');
SELECT ok(NOT has_schema_privilege('authenticated', 'import_staging', 'USAGE')
          AND NOT has_schema_privilege('anon', 'import_staging', 'USAGE')
          AND has_schema_privilege('service_role', 'import_staging', 'USAGE'),
          'staging tables: service_role only');

SELECT ok(bool_and(has_function_privilege('authenticated', f, 'EXECUTE'))
          AND NOT bool_or(has_function_privilege('anon', f, 'EXECUTE')),
          'request / cancel / preview / check: authenticated, not anon')
FROM unnest(ARRAY['public.request_data_source_sync(uuid)', 'public.cancel_data_source_sync(uuid)',
                  'public.record_data_source_preview(uuid, jsonb)', 'public.import_check_caller(uuid)']) f;
SELECT ok(bool_and(has_function_privilege('service_role', f, 'EXECUTE'))
          AND NOT bool_or(has_function_privilege('authenticated', f, 'EXECUTE'))
          AND NOT bool_or(has_function_privilege('anon', f, 'EXECUTE')),
          'the job''s functions: service_role only')
FROM unnest(ARRAY['public.import_begin_run(uuid, uuid, text, integer, bigint)',
                  'public.import_end_run(uuid, text, text, jsonb)',
                  'public.import_progress(uuid, jsonb)',
                  'public.import_succeed_run(uuid, bigint, bigint, jsonb)',
                  'public.import_current_table(uuid)',
                  'public.import_create_staging(uuid, jsonb)',
                  'public.import_finish_staging(uuid, text, text, text[], text[], text, uuid)',
                  'public.import_contacts_from_staging(uuid, text, uuid)']) f;
SELECT ok(NOT bool_or(has_function_privilege(r, f, 'EXECUTE')), 'internal helpers: no API role')
FROM unnest(ARRAY['public.import_secure_table(text)',
                  'public.import_dedupe_staging(text, text[], text[], text)']) f,
     unnest(ARRAY['anon', 'authenticated', 'service_role']) r;
SELECT ok(bool_and(p.prosecdef AND p.proconfig @> ARRAY['search_path=""']), 'every SECURITY DEFINER function pins search_path')
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace
  AND p.proname IN ('import_check_caller', 'request_data_source_sync', 'cancel_data_source_sync',
                    'record_data_source_preview', 'import_secure_table', 'import_current_table',
                    'import_create_staging', 'import_dedupe_staging', 'import_finish_staging',
                    'import_begin_run', 'import_end_run', 'import_progress', 'import_succeed_run',
                    'import_contacts_from_staging');

-- ---------------------------------------------------------------------------
-- Users and sources
-- ---------------------------------------------------------------------------
SELECT tests.create_user('alice@import.test', 'user') AS alice \gset
SELECT tests.create_user('bob@import.test', 'user') AS bob \gset
SELECT tests.create_user('vera@import.test', 'viewer') AS vera \gset
SELECT tests.create_user('adam@import.test', 'admin') AS adam \gset

INSERT INTO public.data_sources (id, user_id, name, type, config)
VALUES ('11111111-1111-4111-8111-111111111111', :'alice', 'Leads', 'csv_upload', '{"storage_path":"x/y.csv"}'),
       ('22222222-2222-4222-8222-222222222222', :'alice', 'Metrics', 'google_analytics', '{}'),
       ('33333333-3333-4333-8333-333333333333', :'alice', 'Gone', 'csv_url', '{}');
UPDATE public.data_sources SET deleted_at = now() WHERE id = '33333333-3333-4333-8333-333333333333';

-- ---------------------------------------------------------------------------
-- Sync requests
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'bob');
SELECT is(pg_temp.error_of($$SELECT public.request_data_source_sync('11111111-1111-4111-8111-111111111111')$$),
          'PT404', 'another user: not found');
SELECT tests.authenticate_as(:'vera');
SELECT is(pg_temp.error_of($$SELECT public.request_data_source_sync('11111111-1111-4111-8111-111111111111')$$),
          'PT404', 'a viewer: not found');
SELECT tests.authenticate_as(:'alice');
SELECT is(pg_temp.error_of($$SELECT public.request_data_source_sync('33333333-3333-4333-8333-333333333333')$$),
          'PT404', 'a deleted source: not found');
-- (every type syncs since migration 034: tests/sql/034_api_connectors.sql)
SELECT public.request_data_source_sync('11111111-1111-4111-8111-111111111111') AS log1 \gset
SELECT ok(:'log1' IS NOT NULL, 'the owner gets a sync_logs id');
SELECT is(pg_temp.error_of($$SELECT public.request_data_source_sync('11111111-1111-4111-8111-111111111111')$$),
          'PT409', 'a second request while one runs: 409');
SELECT is((SELECT status FROM public.sync_logs WHERE id = :'log1'), 'running', 'the owner sees the running row');
SELECT is((SELECT metadata->>'phase' FROM public.sync_logs WHERE id = :'log1'), 'queued', 'phase queued');
SELECT is((SELECT sync_status FROM public.data_sources WHERE id = '11111111-1111-4111-8111-111111111111'),
          'syncing', 'the source is syncing');
SELECT is(pg_temp.error_of($$INSERT INTO public.sync_logs (data_source_id, status) VALUES ('11111111-1111-4111-8111-111111111111', 'success')$$),
          '42501', 'users still cannot write sync_logs');
SELECT tests.clear_authentication();
SELECT is((SELECT count(*) FROM jobs.jobs WHERE kind = 'import.sync'
           AND payload->>'sync_log_id' = :'log1' AND payload->>'data_source_id' = '11111111-1111-4111-8111-111111111111'),
          1::bigint, 'one import.sync job enqueued');

-- cancel
SELECT tests.authenticate_as(:'bob');
SELECT is(pg_temp.error_of(format('SELECT public.cancel_data_source_sync(%L)', :'log1')), 'PT404', 'bob cannot cancel');
SELECT tests.authenticate_as(:'alice');
SELECT ok((public.cancel_data_source_sync(:'log1') ->> 'cancel_requested_at') IS NOT NULL, 'alice cancels');
SELECT tests.authenticate_as_service();
SELECT is(public.import_begin_run('11111111-1111-4111-8111-111111111111', :'log1', 'manual', 1, 1), NULL,
          'a job whose run was cancelled before it started does nothing');
SELECT is((SELECT status FROM public.sync_logs WHERE id = :'log1'), 'cancelled', 'and the row is cancelled');
SELECT is((SELECT sync_status FROM public.data_sources WHERE id = '11111111-1111-4111-8111-111111111111'),
          'idle', 'the source is idle again');
SELECT tests.authenticate_as(:'alice');
SELECT is(pg_temp.error_of(format('SELECT public.cancel_data_source_sync(%L)', :'log1')), 'PT409', 'a finished sync cannot be cancelled');

-- previews
SELECT ok(public.record_data_source_preview('11111111-1111-4111-8111-111111111111', '{"rows":[]}') IS NOT NULL, 'alice stores a preview');
SELECT is(pg_temp.error_of($$SELECT public.record_data_source_preview('11111111-1111-4111-8111-111111111111', '[]')$$),
          '22023', 'a preview must be an object');
SELECT tests.authenticate_as(:'bob');
SELECT is(pg_temp.error_of($$SELECT public.record_data_source_preview('11111111-1111-4111-8111-111111111111', '{}')$$),
          'PT404', 'bob cannot store one');

-- ---------------------------------------------------------------------------
-- The job's bookkeeping
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'alice');
SELECT public.request_data_source_sync('11111111-1111-4111-8111-111111111111') AS log2 \gset
SELECT tests.authenticate_as_service();
SELECT is(public.import_begin_run('11111111-1111-4111-8111-111111111111', :'log2', 'manual', 1, 7), :'log2'::uuid,
          'the first attempt reports to the requested row');
SELECT is(public.import_progress(:'log2', '{"phase":"loading","progress":{"rows_read":5}}'), false, 'progress: no cancel');
SELECT is((SELECT metadata->'progress'->>'rows_read' FROM public.sync_logs WHERE id = :'log2'), '5', 'progress stored');
SELECT is((SELECT count(*) FROM public.audit_logs WHERE resource_id = :'log2'::uuid AND action = 'update'
           AND new_value->'metadata'->'progress' IS NOT NULL), 0::bigint, 'progress reports are not audited');
-- the process dies; the retry closes the dead run and opens a new row
SELECT public.import_begin_run('11111111-1111-4111-8111-111111111111', :'log2', 'manual', 2, 7) AS log3 \gset
SELECT isnt(:'log3'::uuid, :'log2'::uuid, 'a retry after a death reports to a new row');
SELECT is((SELECT status || ' ' || left(error_message, 11) FROM public.sync_logs WHERE id = :'log2'),
          'failed interrupted', 'the dead run is closed as failed "interrupted"');
SELECT is((SELECT metadata->>'retry_of' FROM public.sync_logs WHERE id = :'log3'), :'log2', 'retry_of links them');
SELECT is(public.import_begin_run('11111111-1111-4111-8111-111111111111', NULL, 'schedule', 1, 99), NULL,
          'a scheduled run while another runs does nothing');
SELECT public.import_end_run(:'log3', 'failed', 'the file is gone', '{"errors":[]}');
SELECT is((SELECT status || ': ' || error_message FROM public.sync_logs WHERE id = :'log3'), 'failed: the file is gone', 'end_run: failed');
SELECT is((SELECT sync_status FROM public.data_sources WHERE id = '11111111-1111-4111-8111-111111111111'), 'failed', 'source failed');
SELECT is(public.import_progress(:'log3', '{}'), true, 'progress on a closed row says stop');
SELECT public.import_begin_run('11111111-1111-4111-8111-111111111111', NULL, 'schedule', 1, 100) AS log4 \gset
SELECT is((SELECT metadata->>'trigger' FROM public.sync_logs WHERE id = :'log4'), 'schedule', 'a scheduled run opens its own row');

-- ---------------------------------------------------------------------------
-- Staging, duplicates, the swap
-- ---------------------------------------------------------------------------
SELECT public.create_import_table(:'alice', 'leads',
    '[{"target_name":"email","type":"text"},{"target_name":"score","type":"integer"}]',
    '11111111-1111-4111-8111-111111111111') AS tbl \gset
SELECT is(public.import_current_table('11111111-1111-4111-8111-111111111111'), :'tbl', 'current table');
SELECT public.import_create_staging('11111111-1111-4111-8111-111111111111', NULL) AS stg \gset
SELECT matches(:'stg'::text, '^stg_[0-9a-f]{12}$', 'staging name');
SELECT is((SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
           WHERE attrelid = ('import_staging.' || :'stg')::regclass AND attnum > 0),
          'id,email,score', 'staging has id and the data columns');
SELECT is((SELECT count(*) FROM pg_index WHERE indrelid = ('import_staging.' || :'stg')::regclass), 0::bigint,
          'staging has no index while it loads');
SELECT lives_ok(format($$INSERT INTO import_staging.%I VALUES
    (gen_random_uuid(), 'A@x.com', 1), (gen_random_uuid(), 'b@x.com', 2),
    (gen_random_uuid(), 'a@X.com', 3), (gen_random_uuid(), NULL, 4), (gen_random_uuid(), NULL, 5)$$, :'stg'),
    'service_role loads the staging table');
SELECT is(public.import_finish_staging('11111111-1111-4111-8111-111111111111', :'stg', 'replace',
                                        '{email}', '{email}', 'keep_first', :'log4'),
          '{"rows": 4, "imported": 4, "duplicates": 1}'::jsonb, 'replace with keep_first (case-insensitive)');
SELECT is((SELECT string_agg(coalesce(email, '-') || score, ',' ORDER BY score) FROM public.:"tbl"), 'A@x.com1,b@x.com2,-4,-5',
          'the first of each e-mail is kept; NULL keys are never duplicates');
SELECT is(to_regclass('import_staging.' || :'stg'), NULL, 'the staging table became the import table');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = ('public.' || :'tbl')::regclass), 'RLS on the swapped table');
SELECT is((SELECT count(*) FROM pg_policies WHERE schemaname = 'public' AND tablename = :'tbl'), 8::bigint, '8 policies');
SELECT ok(EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = ('public.' || :'tbl')::regclass AND tgname = 'audit'), 'audit trigger back');
SELECT ok(EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = ('public.' || :'tbl')::regclass AND contype = 'p'), 'primary key');
SELECT is((SELECT row_count FROM public.import_tables WHERE table_name = :'tbl'), 4, 'registry row count');
SELECT is((SELECT count(*) FROM public.audit_logs WHERE action = 'import' AND resource_type = :'tbl'), 1::bigint,
          'one audit row for the sync');
SELECT tests.authenticate_as(:'alice');
SELECT is((SELECT count(*) FROM public.:"tbl"), 4::bigint, 'the owner reads the new rows');
SELECT tests.authenticate_as(:'bob');
SELECT is((SELECT count(*) FROM public.:"tbl"), 0::bigint, 'another user reads nothing');
SELECT tests.authenticate_as_service();

-- skip_all and upsert
SELECT public.import_create_staging('11111111-1111-4111-8111-111111111111', NULL) AS stg2 \gset
SELECT lives_ok(format($$INSERT INTO import_staging.%I VALUES
    (gen_random_uuid(), 'b@x.com', 20), (gen_random_uuid(), 'c@x.com', 30), (gen_random_uuid(), 'c@x.com', 31)$$, :'stg2'),
    'second load');
SELECT is(public.import_finish_staging('11111111-1111-4111-8111-111111111111', :'stg2', 'upsert',
                                        '{email}', '{email}', 'skip_all', :'log4') - 'rows',
          '{"imported": 1, "duplicates": 2, "updated": 1, "inserted": 0, "unchanged": 0}'::jsonb,
          'skip_all drops every repeated key (b@x.com is updated in place: migration 065)');
SELECT is((SELECT string_agg(coalesce(email, '-') || score, ',' ORDER BY score) FROM public.:"tbl"), 'A@x.com1,-4,-5,b@x.com20',
          'upsert replaced b@x.com and kept the rest');
SELECT is((SELECT count(*) FROM public.audit_logs WHERE action = 'import' AND resource_type = :'tbl'), 2::bigint,
          'still one audit row per sync');

SELECT is(pg_temp.error_of(format($$SELECT public.import_finish_staging('11111111-1111-4111-8111-111111111111',
          'stg_000000000000; drop table x', 'replace', '{}', '{}', 'none', %L)$$, :'log4')), '22023',
          'a hostile staging name is refused');
SELECT is(pg_temp.error_of(format($$SELECT public.import_finish_staging('11111111-1111-4111-8111-111111111111',
          %L, 'truncate', '{}', '{}', 'none', %L)$$, :'stg2', :'log4')), '22023', 'an unknown mode is refused');

-- contacts
SELECT public.import_create_staging('11111111-1111-4111-8111-111111111111',
    '[{"target_name":"email","sql_type":"text"},{"target_name":"phone","sql_type":"text"},{"target_name":"city","sql_type":"text"}]') AS stg3 \gset
SELECT is(pg_temp.error_of($$SELECT public.import_create_staging('11111111-1111-4111-8111-111111111111',
    '[{"target_name":"x","sql_type":"text; drop table y"}]')$$), '22023', 'a hostile staging type is refused');
SELECT lives_ok(format($$INSERT INTO import_staging.%I (id, email, phone, city) VALUES
    (gen_random_uuid(), 'New@Example.com', '+14155550101', 'Oslo'), (gen_random_uuid(), 'bad', NULL, 'x'),
    (gen_random_uuid(), NULL, '+14155550102', 'Rome')$$, :'stg3'), 'contacts staging');
SELECT is(public.import_contacts_from_staging('11111111-1111-4111-8111-111111111111', :'stg3', :'log4') ->> 'imported',
          '2', 'two contacts upserted, the invalid row skipped');
SELECT is((SELECT attributes->>'city' FROM public.contacts WHERE user_id = :'alice' AND email = 'new@example.com'), 'Oslo',
          'unmapped columns go to attributes; e-mail lower-cased');
SELECT is((SELECT count(*) FROM public.sms_consent WHERE phone_number IN ('+14155550101', '+14155550102')), 0::bigint,
          'an import never implies consent');

SELECT tests.clear_authentication();
SELECT * FROM finish();
ROLLBACK;
