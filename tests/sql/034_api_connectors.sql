-- tests/sql/034_api_connectors.sql: the analytics connectors' metrics
-- (migrations/034_api_connectors.sql): imported_data is unique per source,
-- metric, day and dimension set; import_metrics_upsert() replaces a day's
-- values instead of doubling them; import_metrics_finish() drops the values a
-- re-read day no longer has and rolls each (metric, day) up into
-- analytics_data; who may call them; every source type may be synced.
BEGIN;
SELECT plan(19);

SELECT tests.create_user('ana@metrics.test', 'user') AS ana \gset
SELECT tests.create_user('ben@metrics.test', 'user') AS ben \gset

INSERT INTO public.data_sources (id, user_id, name, type, config)
VALUES ('44444444-4444-4444-8444-444444444444', :'ana', 'GA4', 'google_analytics', '{}'),
       ('55555555-5555-4555-8555-555555555555', :'ana', 'API', 'rest_api', '{}');

-- ---------------------------------------------------------------------------
-- Rules and privileges
-- ---------------------------------------------------------------------------
SELECT has_index('public', 'imported_data', 'imported_data_source_metric_day_dims_key',
                 'imported_data: a unique index on (source, metric, day, dimensions)');
SELECT is(tests.error_of($$INSERT INTO public.imported_data (data_source_id, metric_name, metric_value, dimensions, event_date)
    VALUES ('44444444-4444-4444-8444-444444444444', 'm', 1, '{"a":"1"}', '2024-01-01'),
           ('44444444-4444-4444-8444-444444444444', 'm', 2, '{"a":"1"}', '2024-01-01')$$),
          '23505 ', 'a second value for the same metric, day and dimensions is refused');
SELECT ok(bool_and(has_function_privilege('service_role', f, 'EXECUTE'))
          AND NOT bool_or(has_function_privilege('authenticated', f, 'EXECUTE'))
          AND NOT bool_or(has_function_privilege('anon', f, 'EXECUTE')),
          'the metrics functions: service_role only')
FROM unnest(ARRAY['public.import_metrics_upsert(uuid, jsonb)', 'public.import_metrics_finish(uuid)']) f;

-- every type of the CHECK constraint may be synced now
SELECT tests.authenticate_as(:'ana');
SELECT ok(public.request_data_source_sync('44444444-4444-4444-8444-444444444444') IS NOT NULL,
          'a google_analytics source can be synced');
SELECT ok(public.request_data_source_sync('55555555-5555-4555-8555-555555555555') IS NOT NULL,
          'a rest_api source can be synced');
SELECT is(tests.error_of($$SELECT public.request_data_source_sync('44444444-4444-4444-8444-444444444444')$$),
          'PT409 Wait for it to finish, or cancel it with POST /api/sync-logs/:id/cancel.',
          'still one sync at a time');
SELECT tests.authenticate_as(:'ben');
SELECT is(split_part(tests.error_of($$SELECT public.request_data_source_sync('44444444-4444-4444-8444-444444444444')$$), ' ', 1),
          'PT404', 'another user''s source: not found');
SELECT is(split_part(tests.error_of($$SELECT public.import_metrics_upsert('44444444-4444-4444-8444-444444444444', '[]')$$), ' ', 1),
          '42501', 'a user cannot write metrics directly');

-- ---------------------------------------------------------------------------
-- Upsert and finish (as the sync job: service_role)
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as_service();
SELECT is(split_part(tests.error_of($$SELECT public.import_metrics_upsert('44444444-4444-4444-8444-444444444444', '[{"metric":"x"}]')$$), ' ', 1),
          '22023', 'a row without a date is refused');
SELECT is(split_part(tests.error_of($$SELECT public.import_metrics_upsert('44444444-4444-4444-8444-444444444444', '{}')$$), ' ', 1),
          '22023', 'rows must be an array');

-- a first run: two days, two countries, one value that is not a number
SELECT is(public.import_metrics_upsert('44444444-4444-4444-8444-444444444444', $$[
  {"date":"2024-02-01","metric":"sessions","value":10,"dimensions":{"country":"FR"}},
  {"date":"2024-02-01","metric":"sessions","value":20,"dimensions":{"country":"US"}},
  {"date":"2024-02-01","metric":"bounce","value":null,"dimensions":{"country":"US"}},
  {"date":"2024-02-02","metric":"sessions","value":5,"dimensions":{"country":"FR"}},
  {"date":"2024-02-02","metric":"sessions","value":6,"dimensions":{"country":"FR"}}
]$$), 4, 'the rows are upserted (a repeated key in one batch: the last one wins)');
SELECT is((SELECT metric_value FROM public.imported_data WHERE event_date = '2024-02-02' AND metric_name = 'sessions'),
          6::numeric, 'the last value of a repeated key');
SELECT is(public.import_metrics_finish('44444444-4444-4444-8444-444444444444') - 'rolled_up',
          '{"values": 4, "days": 2, "removed": 0}'::jsonb, 'finish: 4 values on 2 days');
SELECT results_eq($$SELECT metric_type::text, value, date, user_id FROM public.analytics_data
                    WHERE dimensions = '{"data_source_id":"44444444-4444-4444-8444-444444444444"}' ORDER BY date, metric_type$$,
                  $$VALUES ('bounce', NULL::numeric, '2024-02-01'::date, '$$ || :'ana' || $$'::uuid),
                           ('sessions', 30, '2024-02-01', '$$ || :'ana' || $$'::uuid),
                           ('sessions', 6, '2024-02-02', '$$ || :'ana' || $$'::uuid)$$,
                  'the roll-up: the sum per metric and day, as the source owner''s rows');

-- a second run (an earlier run's rows carry an earlier imported_at) re-reads
-- 2024-02-01 only: new values replace, the bounce metric it no longer has goes
SELECT tests.clear_authentication();
UPDATE public.imported_data SET imported_at = now() - interval '1 hour'
WHERE data_source_id = '44444444-4444-4444-8444-444444444444';
SELECT tests.authenticate_as_service();
SELECT is(public.import_metrics_upsert('44444444-4444-4444-8444-444444444444', $$[
  {"date":"2024-02-01","metric":"sessions","value":11,"dimensions":{"country":"FR"}},
  {"date":"2024-02-01","metric":"sessions","value":22,"dimensions":{"country":"US"}}
]$$), 2, 'a re-run upserts');
SELECT is(public.import_metrics_finish('44444444-4444-4444-8444-444444444444') - 'rolled_up',
          '{"values": 2, "days": 1, "removed": 1}'::jsonb, 'finish: the value the day no longer has is removed');
SELECT is((SELECT count(*)::int FROM public.imported_data WHERE data_source_id = '44444444-4444-4444-8444-444444444444'),
          3, 'nothing doubled: 2 values on the re-read day, 1 on the other');
SELECT results_eq($$SELECT metric_type::text, value, date FROM public.analytics_data
                    WHERE dimensions = '{"data_source_id":"44444444-4444-4444-8444-444444444444"}' ORDER BY date, metric_type$$,
                  $$VALUES ('sessions', 33::numeric, '2024-02-01'::date), ('sessions', 6, '2024-02-02')$$,
                  'the roll-up follows: replaced, the gone metric removed, the other day kept');

-- the owner reads both through RLS; another user neither
SELECT tests.authenticate_as(:'ben');
SELECT is((SELECT count(*)::int FROM public.imported_data) + (SELECT count(*)::int FROM public.analytics_data
           WHERE dimensions ? 'data_source_id'), 0, 'another user sees neither the metrics nor the roll-up');

SELECT tests.clear_authentication();
SELECT * FROM finish();
ROLLBACK;
