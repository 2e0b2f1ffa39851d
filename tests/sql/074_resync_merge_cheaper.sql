-- tests/sql/074_resync_merge_cheaper.sql: a re-sync's merge without a function
-- call per row and without a second probe per updated row
-- (migrations/074_resync_merge_cheaper.sql): the audit trigger of import tables
-- skips only the rows the owner's merge writes (a user or service_role with
-- campaignd.import_merge set is audited); import_merge_audit replaces a trigger
-- of migration 050; a small upsert into a large table (the path that takes the
-- updated rows' ids) gives the same results as before: unchanged rows not
-- rewritten, changed rows updated in place, new keys and keyless rows
-- inserted, a key held twice by the table updated in both rows and not inserted.
BEGIN;
SELECT plan(23);

SELECT ok(bool_and(p.prosecdef AND p.proconfig @> ARRAY['search_path=""']), 'SECURITY DEFINER with a pinned search_path')
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace AND p.proname IN ('import_finish_staging', 'import_merge_audit');
SELECT ok(NOT bool_or(has_function_privilege(r, 'public.import_merge_audit(text)', 'EXECUTE')),
          'import_merge_audit: no API role may call it')
FROM unnest(ARRAY['anon', 'authenticated', 'service_role']) r;

-- ---------------------------------------------------------------------------
-- A table of 300 rows with its key index
-- ---------------------------------------------------------------------------
SELECT tests.create_user('tess@resync.test', 'user') AS tess \gset
INSERT INTO public.data_sources (id, user_id, name, type, config, schedule_config)
VALUES ('74747474-7474-4474-8474-747474747474', :'tess', 'Resync 074', 'csv_upload', '{"storage_path":"x/y.csv"}',
        '{"incremental_strategy": "incremental"}');
INSERT INTO public.sync_logs (id, data_source_id, status)
VALUES ('74747474-0000-4000-8000-000000000001', '74747474-7474-4474-8474-747474747474', 'success');

SELECT tests.authenticate_as_service();
SELECT public.create_import_table(:'tess', 'resync074',
    '[{"target_name":"code","type":"integer"},{"target_name":"email","type":"text"},{"target_name":"amount","type":"number"}]',
    '74747474-7474-4474-8474-747474747474') AS tbl \gset
SELECT public.import_create_staging('74747474-7474-4474-8474-747474747474', NULL) AS stg \gset
SELECT lives_ok(format($$INSERT INTO import_staging.%I
    SELECT gen_random_uuid(), g, 'u' || g || '@x.com', g * 1.5 FROM generate_series(1, 300) g$$, :'stg'), 'load 300 rows');
SELECT is(public.import_finish_staging('74747474-7474-4474-8474-747474747474', :'stg', 'replace',
                                        '{code}', '{}', 'none', '74747474-0000-4000-8000-000000000001', 300),
          '{"rows": 300, "imported": 300, "duplicates": 0}'::jsonb, 'a full sync swaps the table in');
SELECT isnt(public.import_key_index('74747474-7474-4474-8474-747474747474', '{code}'), NULL, 'the key index');

RESET ROLE;
SELECT alike((SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = ('public.' || :'tbl')::regclass AND tgname = 'audit'),
            format('%%(CURRENT_USER <> %L::name)%%', current_user),
            'the audit trigger skips rows only for the owner, without a function call');
SELECT is(public.import_merge_audit(:'tbl'), false, 'and is left alone by the next merge');
-- a trigger of migration 050 is replaced
DROP TRIGGER audit ON public.:"tbl";
SELECT format('CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON public.%I FOR EACH ROW '
              'WHEN (pg_catalog.current_setting(''campaignd.import_merge'', true) IS DISTINCT FROM ''on'' '
              'OR public.import_audit_wanted()) EXECUTE FUNCTION public.audit_trigger()', :'tbl') \gexec
SELECT is(public.import_merge_audit(:'tbl'), true, 'a trigger of migration 050 is replaced');
SELECT unalike((SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = ('public.' || :'tbl')::regclass AND tgname = 'audit'),
              '%import_audit_wanted%', 'by this one');
CREATE TEMP TABLE before_rows AS SELECT code, id, xmin::text AS x, ctid::text AS c FROM public.:"tbl";
GRANT SELECT ON before_rows TO PUBLIC;
-- the table holds key 7 twice (an append made before the key mattered)
INSERT INTO public.:"tbl" (code, email, amount) VALUES (7, 'seven-b@x.com', 7);

-- ---------------------------------------------------------------------------
-- A small upsert: unchanged, changed, key held twice, new, without a key
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as_service();
SELECT public.import_delta_staging('74747474-7474-4474-8474-747474747474') AS dlt \gset
SELECT lives_ok(format($$INSERT INTO import_staging.%I VALUES
    ('01900000-0000-7000-8000-000000000001', 1, 'u1@x.com', 1.5),
    ('01900000-0000-7000-8000-000000000002', 2, 'changed@x.com', 3),
    ('01900000-0000-7000-8000-000000000003', 3, 'u3@x.com', 4.5),
    ('01900000-0000-7000-8000-000000000004', 7, 'seven@x.com', 70),
    ('01900000-0000-7000-8000-000000000005', 999, 'new@x.com', 9),
    ('01900000-0000-7000-8000-000000000006', NULL, 'nokey@x.com', 0)$$, :'dlt'), 'load the changes');
SELECT (SELECT count(*) FROM public.audit_logs WHERE resource_type = :'tbl') AS audits_before \gset
SELECT is(public.import_finish_staging('74747474-7474-4474-8474-747474747474', :'dlt', 'upsert',
                                        '{code}', '{}', 'none', '74747474-0000-4000-8000-000000000001', 6),
          '{"rows": 303, "imported": 6, "duplicates": 0, "updated": 3, "inserted": 2, "unchanged": 1}'::jsonb,
          'the small upsert: key 2 and both rows of key 7 updated, 999 and the keyless row inserted');
SELECT is((SELECT string_agg(coalesce(code::text, '-') || ':' || email || ':' || amount, ',' ORDER BY code NULLS LAST, email)
           FROM public.:"tbl" WHERE code IN (1, 2, 3, 7, 999) OR code IS NULL),
          '1:u1@x.com:1.5,2:changed@x.com:3,3:u3@x.com:4.5,7:seven@x.com:70,7:seven@x.com:70,999:new@x.com:9,-:nokey@x.com:0',
          'the table holds the new content');
SELECT is((SELECT count(*)::int FROM public.:"tbl" t JOIN before_rows b USING (code)
           WHERE t.code IN (1, 3) AND t.xmin::text = b.x AND t.ctid::text = b.c), 2,
          'the unchanged rows were not rewritten');
SELECT is((SELECT count(*)::int FROM public.:"tbl" t JOIN before_rows b USING (code)
           WHERE t.code = 2 AND t.id = b.id AND t.xmin::text <> b.x), 1, 'the changed row was updated in place');
SELECT is((SELECT count(*)::int FROM public.:"tbl" WHERE code = 7), 2, 'key 7 not inserted a third time');
SELECT is((SELECT row_count FROM public.import_tables WHERE table_name = :'tbl'),
          (SELECT count(*)::int FROM public.:"tbl"), 'the count follows the inserted rows');
SELECT is((SELECT count(*)::int FROM public.audit_logs WHERE resource_type = :'tbl') - :audits_before, 1,
          'one audit row for the merge, none per row');
SELECT is((SELECT count(*)::int FROM import_staging.:"dlt"), 0, 'the staging table is empty again');

-- ---------------------------------------------------------------------------
-- The setting does not switch the audit off for anybody but the owner's merge
-- ---------------------------------------------------------------------------
SELECT (SELECT count(*) FROM public.audit_logs WHERE resource_type = :'tbl') AS audits_before \gset
SELECT tests.authenticate_as(:'tess');
SELECT set_config('campaignd.import_merge', 'on', true);
SELECT lives_ok(format($$INSERT INTO public.%I (code, email) VALUES (5000, 'forged@x.com')$$, :'tbl'),
                'the source''s owner inserts a row with campaignd.import_merge set');
SELECT lives_ok(format($$UPDATE public.%I SET email = 'forged2@x.com' WHERE code = 5000$$, :'tbl'),
                'and updates it');
SELECT tests.authenticate_as_service();
SELECT set_config('campaignd.import_merge', 'on', true);
SELECT lives_ok(format($$DELETE FROM public.%I WHERE code = 5000$$, :'tbl'), 'service_role deletes it, the setting on');
SELECT set_config('campaignd.import_merge', 'off', true);
SELECT is((SELECT count(*)::int FROM public.audit_logs WHERE resource_type = :'tbl') - :audits_before, 3,
          'all three rows are audited');

-- The skip rests on current_user being the owner: only a SECURITY DEFINER
-- function of the owner runs as the owner for anyone else. Such a function
-- that turned campaignd.import_merge on around other writes of import tables
-- would write them unaudited; import_finish_staging must stay the only one
-- (docs/architecture.md). A new one fails here until it is reviewed.
RESET ROLE;
SELECT is((SELECT array_agg(p.oid::regprocedure::text ORDER BY 1)
           FROM pg_catalog.pg_proc p
           WHERE p.prosrc ~ $re$set_config\(\s*'campaignd\.import_merge'\s*,\s*'on'$re$),
          ARRAY['import_finish_staging(uuid,text,text,text[],text[],text,uuid,bigint)'],
          'import_finish_staging is the only function that turns campaignd.import_merge on');

SELECT * FROM finish();
ROLLBACK;
