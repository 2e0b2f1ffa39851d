-- tests/sql/070_job_claim_next.sql: the claim with a cached plan that says
-- whether more is due (migrations/070_job_claim_next.sql), and the success that
-- refuses a requested cancel (migrations/071_import_succeed_cancel.sql).
-- jobs.claim_next claims as jobs.claim did (oldest due job of the kinds, lease,
-- expired leases swept) and answers `more` only for another due, pending job of
-- the same kinds; jobs.claim keeps its result. import_succeed_run closes a
-- running run, but not one whose cancel was requested: 57014, the row still
-- running, last_sync_value where it was.
BEGIN;
SELECT plan(27);

CREATE FUNCTION pg_temp.error_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN '';
EXCEPTION WHEN query_canceled OR OTHERS THEN  -- OTHERS alone does not catch 57014
    RETURN SQLSTATE;
END $$;

-- ---------------------------------------------------------------------------
-- Privileges and shape
-- ---------------------------------------------------------------------------
SELECT ok(has_function_privilege('service_role', 'jobs.claim_next(text, text[], integer)', 'EXECUTE')
          AND NOT has_function_privilege('authenticated', 'jobs.claim_next(text, text[], integer)', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'jobs.claim_next(text, text[], integer)', 'EXECUTE'),
          'claim_next: service_role only');
SELECT ok(has_function_privilege('service_role', 'jobs.claim(text, text[], integer)', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'jobs.claim(text, text[], integer)', 'EXECUTE'),
          'claim keeps its privileges');
SELECT is((SELECT string_agg(p.proname || ':' || l.lanname || ':' || p.prosecdef::text
                             || ':' || (p.proconfig @> ARRAY['search_path=""'])::text, ',' ORDER BY p.proname)
           FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
           WHERE p.pronamespace = 'jobs'::regnamespace AND p.proname IN ('claim', 'claim_next')),
          'claim:plpgsql:true:true,claim_next:plpgsql:true:true',
          'both PL/pgSQL (plans kept per connection), SECURITY DEFINER, pinned search_path');
SET LOCAL ROLE anon;
SELECT is(pg_temp.error_of($$SELECT jobs.claim_next('w', '{retention}', 30)$$), '42501', 'anon cannot claim');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- more: another due, pending job of the same kinds
-- ---------------------------------------------------------------------------
DELETE FROM jobs.jobs;
SELECT jobs.enqueue('test.n', '{"n": 1}', now() - interval '2 seconds') AS n1 \gset
SELECT jobs.enqueue('test.n', '{"n": 2}', now() - interval '1 second') AS n2 \gset
SELECT jobs.enqueue('test.n', '{}', now() + interval '1 hour') AS later \gset
SELECT jobs.enqueue('test.other', '{}', now() - interval '5 seconds') AS other \gset

SELECT results_eq($$SELECT id, kind, payload, attempts, max_attempts, more FROM jobs.claim_next('w1', '{test.n}', 30)$$,
                  format($$VALUES (%s::bigint, 'test.n'::text, '{"n": 1}'::jsonb, 1, 3, true)$$, :n1),
                  'the oldest due job, and another is due');
SELECT is((SELECT status || ' ' || locked_by || ' ' || (leased_until = now() + interval '30 seconds')::text
           FROM jobs.jobs WHERE id = :n1), 'running w1 true', 'claimed with its lease');
SELECT results_eq($$SELECT id, more FROM jobs.claim_next('w2', '{test.n}', 30)$$,
                  format($$VALUES (%s::bigint, false)$$, :n2),
                  'the second: none left (the future job and another kind do not count)');
SELECT is((SELECT count(*) FROM jobs.claim_next('w3', '{test.n}', 30)), 0::bigint, 'then no row');
SELECT results_eq($$SELECT id, more FROM jobs.claim_next('w3', '{test.n,test.other}', 30)$$,
                  format($$VALUES (%s::bigint, false)$$, :other),
                  'a worker of several kinds takes the other kind');
SELECT is((SELECT status FROM jobs.jobs WHERE id = :later), 'pending', 'the future job waits');

-- a job another transaction holds is skipped by the claim; here, one the claim
-- took is not counted as more
DELETE FROM jobs.jobs;
SELECT jobs.enqueue('test.m', '{}') AS m1 \gset
SELECT is((SELECT more FROM jobs.claim_next('w1', '{test.m}', 30)), false, 'one due job: more is false');

-- ---------------------------------------------------------------------------
-- expired leases: swept as before
-- ---------------------------------------------------------------------------
DELETE FROM jobs.jobs;
SELECT jobs.enqueue('test.l', '{}', now(), NULL, 2, '1 minute') AS l1 \gset
SELECT is((SELECT id FROM jobs.claim_next('dead#1', '{test.l}', 30)), :l1::bigint, 'dead#1 claims l1');
UPDATE jobs.jobs SET leased_until = now() - interval '1 second' WHERE id = :l1;
SELECT is((SELECT count(*) FROM jobs.claim_next('alive#1', '{test.other}', 30)), 0::bigint,
          'a claim of another kind finds nothing');
SELECT is((SELECT status || ' ' || (run_at = now() + interval '1 minute')::text || ' ' || (leased_until IS NULL)::text
           FROM jobs.jobs WHERE id = :l1), 'pending true true', '...but returns the expired job to pending, with back-off');
SELECT ok((SELECT last_error FROM jobs.jobs WHERE id = :l1) LIKE 'lease expired: worker dead#1 %', 'and says why');
UPDATE jobs.jobs SET run_at = now() WHERE id = :l1;
SELECT is((SELECT attempts FROM jobs.claim('alive#1', '{test.l}', 30)), 2, 'jobs.claim: attempt 2 of 2');
UPDATE jobs.jobs SET leased_until = now() - interval '1 second' WHERE id = :l1;
SELECT is((SELECT count(*) FROM jobs.claim_next('w9', '{test.l}', 30)), 0::bigint, 'an expired last attempt...');
SELECT is((SELECT status FROM jobs.jobs WHERE id = :l1), 'failed', '...fails');

-- ---------------------------------------------------------------------------
-- import_succeed_run (071): a requested cancel is refused in the transaction
-- ---------------------------------------------------------------------------
SELECT tests.create_user('cleo@claim.test', 'user') AS cleo \gset
INSERT INTO public.data_sources (id, user_id, name, type, config, last_sync_value) VALUES
    ('70707070-7070-4070-8070-707070707070', :'cleo', 'Claim', 'csv_upload', '{"storage_path":"x/y.csv"}', 'v1'),
    ('70707070-7070-4070-8070-707070707071', :'cleo', 'Claim 2', 'csv_upload', '{"storage_path":"x/z.csv"}', 'v1');
INSERT INTO public.sync_logs (id, data_source_id, status) VALUES
    ('70707070-0000-4000-8000-000000000001', '70707070-7070-4070-8070-707070707070', 'running'),
    ('70707070-0000-4000-8000-000000000002', '70707070-7070-4070-8070-707070707071', 'running');
UPDATE public.sync_logs SET cancel_requested_at = now() WHERE id = '70707070-0000-4000-8000-000000000001';

SELECT tests.authenticate_as_service();
SELECT is(pg_temp.error_of($$SELECT public.import_succeed_run('70707070-0000-4000-8000-000000000001', 5, 0, '{}', 'v2')$$),
          '57014', 'a run whose cancel was requested is not closed as success');
RESET ROLE;
SELECT is((SELECT status FROM public.sync_logs WHERE id = '70707070-0000-4000-8000-000000000001'), 'running',
          'the row is still running (the job ends it as cancelled)');
SELECT is((SELECT last_sync_value FROM public.data_sources WHERE id = '70707070-7070-4070-8070-707070707070'), 'v1',
          'the position did not move');
SELECT tests.authenticate_as_service();
SELECT is(pg_temp.error_of($$SELECT public.import_succeed_run('70707070-0000-4000-8000-000000000001', 5, 0, '{}')$$),
          '57014', 'the four-argument form refuses it too');
SELECT lives_ok($$SELECT public.import_succeed_run('70707070-0000-4000-8000-000000000002', 5, 1, '{"x": 1}', 'v2')$$,
                'a run without a cancel request succeeds');
RESET ROLE;
SELECT is((SELECT status || ' ' || records_imported || ' ' || records_skipped || ' ' || (metadata->>'phase')
           FROM public.sync_logs WHERE id = '70707070-0000-4000-8000-000000000002'), 'success 5 1 done',
          'closed as success with its counts');
SELECT is((SELECT sync_status || ' ' || last_sync_value FROM public.data_sources
           WHERE id = '70707070-7070-4070-8070-707070707071'), 'success v2', 'and the position advanced with it');
SELECT tests.authenticate_as_service();
SELECT is(pg_temp.error_of($$SELECT public.import_succeed_run('70707070-0000-4000-8000-000000000002', 5, 1, '{}', 'v3')$$),
          '57014', 'a run no longer running is refused as before');
RESET ROLE;
SELECT is((SELECT last_sync_value FROM public.data_sources WHERE id = '70707070-7070-4070-8070-707070707071'), 'v2',
          'and the position stays');

SELECT * FROM finish();
ROLLBACK;
