-- tests/sql/020_job_queue.sql: the job queue and the scheduler
-- (migrations/020_job_queue.sql): privileges of the private schema jobs, the
-- queue's life cycle (enqueue, dedupe, claim, leases, retries with back-off,
-- release, recurring jobs, purge), schedules (hourly, daily, weekly, monthly,
-- every cron form) across DST in America/New_York and Europe/London, 29
-- February and 30-day months, the data_sources trigger and the due-sync pass.
BEGIN;
SELECT plan(182);

-- SQLSTATE of the error a statement raises ('' when it succeeds).
CREATE FUNCTION pg_temp.error_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN '';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;
CREATE FUNCTION pg_temp.privs(role text, tbl text) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(p, ',' ORDER BY p), '')
    FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS p
    WHERE has_table_privilege(role, tbl, p)
$$;
CREATE FUNCTION pg_temp.job(p_id bigint) RETURNS jobs.jobs LANGUAGE sql AS $$
    SELECT * FROM jobs.jobs WHERE id = p_id
$$;
-- next_run in a zone, as text in UTC for readable comparisons.
CREATE FUNCTION pg_temp.nx(sched text, config jsonb, after timestamptz, tz text DEFAULT 'UTC') RETURNS text
LANGUAGE sql AS $$
    SELECT to_char(jobs.next_run(sched, config, after, tz) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI"Z"')
$$;
CREATE FUNCTION pg_temp.cron(expr text, after timestamptz, tz text DEFAULT 'UTC') RETURNS text
LANGUAGE sql AS $$
    SELECT pg_temp.nx('cron', jsonb_build_object('cron_expression', expr, 'timezone', tz), after)
$$;

-- ---------------------------------------------------------------------------
-- Privileges: a private schema
-- ---------------------------------------------------------------------------
SELECT has_table('jobs', 'jobs', 'jobs.jobs exists');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'jobs.jobs'::regclass), 'RLS is on for jobs.jobs');
SELECT is(pg_temp.privs('anon', 'jobs.jobs') || pg_temp.privs('authenticated', 'jobs.jobs')
          || pg_temp.privs('service_role', 'jobs.jobs'), '',
          'no API role (anon, authenticated, service_role) holds any privilege on jobs.jobs');
SELECT ok(NOT has_schema_privilege('anon', 'jobs', 'USAGE') AND NOT has_schema_privilege('authenticated', 'jobs', 'USAGE'),
          'anon and authenticated cannot even use schema jobs');
SELECT ok(has_schema_privilege('service_role', 'jobs', 'USAGE'), 'service_role uses schema jobs (its functions)');
SELECT ok(has_function_privilege('service_role', 'jobs.enqueue(text, jsonb, timestamptz, text, integer, interval)', 'EXECUTE')
          AND has_function_privilege('service_role', 'jobs.claim(text, text[], integer)', 'EXECUTE')
          AND has_function_privilege('service_role', 'jobs.finish(bigint, text, integer, text, text, double precision)', 'EXECUTE')
          AND has_function_privilege('service_role', 'jobs.renew_leases(text[], integer)', 'EXECUTE')
          AND has_function_privilege('service_role', 'jobs.enqueue_due_syncs(integer)', 'EXECUTE'),
          'service_role may call the queue functions');
SELECT is((SELECT count(*) FROM pg_proc p
           WHERE p.pronamespace = 'jobs'::regnamespace
             AND (has_function_privilege('anon', p.oid, 'EXECUTE')
                  OR has_function_privilege('authenticated', p.oid, 'EXECUTE'))), 0::bigint,
          'anon and authenticated may execute no function in schema jobs');
SELECT is((SELECT count(*) FROM pg_proc p
           WHERE p.pronamespace = 'jobs'::regnamespace AND p.prosecdef
             AND NOT coalesce(p.proconfig @> ARRAY['search_path=""'], false)), 0::bigint,
          'every SECURITY DEFINER function in jobs pins search_path to ''''');
SELECT ok(NOT has_function_privilege('service_role', 'jobs.local_instant(timestamp, text)', 'EXECUTE')
          AND NOT has_function_privilege('service_role', 'jobs.data_sources_next_sync()', 'EXECUTE'),
          'internal helpers are not callable by service_role');

SET LOCAL ROLE authenticated;
SELECT is(pg_temp.error_of($$SELECT jobs.enqueue('retention', '{}')$$), '42501', 'authenticated cannot enqueue');
SELECT is(pg_temp.error_of($$SELECT count(*) FROM jobs.jobs$$), '42501', 'authenticated cannot read jobs.jobs');
RESET ROLE;
SET LOCAL ROLE anon;
SELECT is(pg_temp.error_of($$SELECT jobs.claim('w', '{retention}', 30)$$), '42501', 'anon cannot claim');
RESET ROLE;
SET LOCAL ROLE service_role;
SELECT is(pg_temp.error_of($$SELECT count(*) FROM jobs.jobs$$), '42501', 'service_role cannot read the table directly');
SELECT is(pg_temp.error_of($$DELETE FROM jobs.jobs$$), '42501', 'service_role cannot delete jobs directly');
SELECT is(pg_temp.error_of($$SELECT jobs.local_instant('2026-01-01', 'UTC')$$), '42501',
          'service_role cannot call the internal helpers');
SELECT ok(jobs.enqueue('test.kind', '{"a": 1}') > 0, 'service_role enqueues through jobs.enqueue');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- Enqueue and dedupe
-- ---------------------------------------------------------------------------
DELETE FROM jobs.jobs;
SELECT jobs.enqueue('test.kind', '{"n": 1}', now(), 'k1', 3, '1 minute') AS j1 \gset
SELECT is((pg_temp.job(:j1)).status, 'pending', 'a new job is pending');
SELECT is((pg_temp.job(:j1)).attempts, 0, 'with no attempt made');
SELECT is(jobs.enqueue('test.kind', '{"n": 2}', now(), 'k1'), :j1::bigint,
          'the same dedupe key while pending returns the existing job');
SELECT is((SELECT count(*) FROM jobs.jobs WHERE dedupe_key = 'k1'), 1::bigint, 'and adds no row');
SELECT isnt(jobs.enqueue('test.kind', '{}', now(), 'k2'), :j1::bigint, 'another key adds another job');
SELECT isnt(jobs.enqueue('test.kind', '{}'), jobs.enqueue('test.kind', '{}'), 'jobs without a key are never merged');
SELECT is(pg_temp.error_of($$SELECT jobs.enqueue('Bad Kind', '{}')$$), '22023', 'an invalid kind is refused');
SELECT is(pg_temp.error_of($$SELECT jobs.enqueue('test.kind', '[1]')$$), '23514', 'a payload must be an object');
SELECT is(pg_temp.error_of($$SELECT jobs.enqueue('test.kind', '{}', now(), null, 0)$$), '23514', 'max_attempts >= 1');
SELECT is(pg_temp.error_of($$SELECT jobs.enqueue('test.kind', '{}', now(), null, 3, '-1 minute')$$), '23514',
          'a negative retry delay is refused');
SELECT is(pg_temp.error_of($$INSERT INTO jobs.jobs (kind, status) VALUES ('test.kind', 'running')$$), '23514',
          'a running job must have a lease and a worker');

-- ---------------------------------------------------------------------------
-- Claim, finish, retries with back-off
-- ---------------------------------------------------------------------------
DELETE FROM jobs.jobs;
SELECT jobs.enqueue('test.a', '{"x": "y"}', now(), 'a1', 3, '1 minute') AS a1 \gset
SELECT jobs.enqueue('test.a', '{}', now() + interval '1 hour') AS later \gset
SELECT is((SELECT count(*) FROM jobs.claim('w1', '{test.other}', 30)), 0::bigint,
          'a worker only claims the kinds it knows');
SELECT is((SELECT id FROM jobs.claim('w1', '{test.a}', 30)), :a1::bigint, 'the due job is claimed');
SELECT is((pg_temp.job(:a1)).status, 'running', 'it is running');
SELECT is((pg_temp.job(:a1)).attempts, 1, 'attempt 1');
SELECT is((pg_temp.job(:a1)).locked_by, 'w1', 'held by w1');
SELECT is((pg_temp.job(:a1)).leased_until, now() + interval '30 seconds', 'leased for 30 s');
SELECT is((SELECT count(*) FROM jobs.claim('w2', '{test.a}', 30)), 0::bigint,
          'a running job is not claimed again, and a future job not yet');
SELECT is(jobs.enqueue('test.a', '{}', now(), 'a1'), :a1::bigint, 'dedupe also covers running jobs');
SELECT is(jobs.finish(:a1, 'w2', 1, 'done'), NULL, 'another worker cannot finish it');
SELECT is(jobs.finish(:a1, 'w1', 2, 'done'), NULL, 'nor can the holder with a wrong attempt number');
SELECT is(jobs.finish(:a1, 'w1', 1, 'retry', 'boom'), 'pending', 'a retry makes it pending again');
SELECT is((pg_temp.job(:a1)).run_at, now() + interval '1 minute', 'after retry_delay');
SELECT is((pg_temp.job(:a1)).last_error, 'boom', 'with the error recorded');
SELECT ok((pg_temp.job(:a1)).leased_until IS NULL AND (pg_temp.job(:a1)).locked_by = 'w1',
          'and no lease (locked_by names the last worker)');
UPDATE jobs.jobs SET run_at = now() WHERE id = :a1;
SELECT is((SELECT attempts FROM jobs.claim('w1', '{test.a}', 30)), 2, 'claimed again: attempt 2');
SELECT is(jobs.finish(:a1, 'w1', 2, 'retry', 'boom 2'), 'pending', 'second failure');
SELECT is((pg_temp.job(:a1)).run_at, now() + interval '2 minutes', 'back-off doubles the delay');
UPDATE jobs.jobs SET run_at = now() WHERE id = :a1;
SELECT is((SELECT attempts FROM jobs.claim('w1', '{test.a}', 30)), 3, 'attempt 3 of 3');
SELECT is(jobs.finish(:a1, 'w1', 3, 'retry', 'boom 3'), 'failed', 'the last attempt failing fails the job');
SELECT ok((pg_temp.job(:a1)).finished_at IS NOT NULL, 'with finished_at');
SELECT is(pg_temp.error_of(format('UPDATE jobs.jobs SET status = %L WHERE id = %s', 'pending', :a1)), '23514',
          'failed is final');
SELECT isnt(jobs.enqueue('test.a', '{}', now(), 'a1'), :a1::bigint, 'a finished job frees its dedupe key');

SELECT jobs.enqueue('test.b', '{}', now(), null, 5) AS b1 \gset
SELECT is((SELECT id FROM jobs.claim('w1', '{test.b}', 30)), :b1::bigint, 'claim b1');
SELECT is(jobs.finish(:b1, 'w1', 1, 'fail', 'bad payload'), 'failed', 'fail is permanent, whatever attempts remain');
SELECT jobs.enqueue('test.b', '{}') AS b2 \gset
SELECT is((SELECT id FROM jobs.claim('w1', '{test.b}', 30)), :b2::bigint, 'claim b2');
SELECT is(jobs.finish(:b2, 'w1', 1, 'release'), 'pending', 'release (shutdown) returns it');
SELECT is((pg_temp.job(:b2)).attempts, 0, 'without counting the attempt');
SELECT is((SELECT id FROM jobs.claim('w2', '{test.b}', 30)), :b2::bigint, 'and it can be claimed at once');
SELECT is(jobs.finish(:b2, 'w2', 1, 'done'), 'done', 'done');
SELECT is(pg_temp.error_of(format('UPDATE jobs.jobs SET status = %L WHERE id = %s', 'running', :b2)), '23514',
          'done is final');
SELECT is(pg_temp.error_of($$SELECT jobs.finish(1, 'w', 1, 'maybe')$$), '22023', 'an unknown outcome is refused');

-- Back-off values.
SELECT is(jobs.backoff('1 minute', 1), interval '1 minute', 'back-off after attempt 1: the delay');
SELECT is(jobs.backoff('1 minute', 4), interval '8 minutes', 'after attempt 4: 8 times');
SELECT is(jobs.backoff('1 hour', 12), interval '1 day', 'capped at one day');
SELECT is(jobs.backoff('0', 3), interval '0', 'no delay stays no delay');

-- ---------------------------------------------------------------------------
-- Leases: renewal and expiry (a worker that died)
-- ---------------------------------------------------------------------------
DELETE FROM jobs.jobs;
SELECT jobs.enqueue('test.l', '{}', now(), null, 2, '0') AS l1 \gset
SELECT is((SELECT id FROM jobs.claim('dead#1', '{test.l}', 30)), :l1::bigint, 'dead#1 claims l1');
UPDATE jobs.jobs SET leased_until = now() - interval '1 second' WHERE id = :l1;
SELECT is(ARRAY(SELECT jobs.renew_leases('{alive#1}', 30)), '{}'::bigint[], 'another process renews nothing of it');
SELECT is((SELECT id FROM jobs.claim('alive#1', '{test.other}', 30)), NULL,
          'any claim reaps expired leases, whatever kinds it asks for');
SELECT is((pg_temp.job(:l1)).status, 'pending', 'the expired job is pending again');
SELECT matches((pg_temp.job(:l1)).last_error, '^lease expired: worker dead#1', 'naming the worker that lost it');
SELECT is((SELECT attempts FROM jobs.claim('alive#1', '{test.l}', 30)), 2, 'another worker takes it: attempt 2');
SELECT is(jobs.finish(:l1, 'dead#1', 1, 'done'), NULL, 'the dead worker''s late outcome is ignored');
SELECT is(ARRAY(SELECT jobs.renew_leases('{alive#1,alive#2}', 60)), ARRAY[:l1::bigint], 'the holder renews it');
SELECT is((pg_temp.job(:l1)).leased_until, now() + interval '60 seconds', 'for the given lease');
UPDATE jobs.jobs SET leased_until = now() - interval '1 second' WHERE id = :l1;
SELECT is((SELECT count(*) FROM jobs.claim('w3', '{test.l}', 30)), 0::bigint, 'an expired last attempt is not run again');
SELECT is((pg_temp.job(:l1)).status, 'failed', 'it is failed');
SELECT matches((pg_temp.job(:l1)).last_error, 'lease expired', 'because its lease expired');

-- ---------------------------------------------------------------------------
-- Recurring jobs and the purge
-- ---------------------------------------------------------------------------
DELETE FROM jobs.jobs;
SELECT jobs.enqueue('retention', '{}', now(), 'retention') AS r1 \gset
SELECT is((SELECT id FROM jobs.claim('w1', '{retention}', 30)), :r1::bigint, 'claim the recurring job');
SELECT is(jobs.finish(:r1, 'w1', 1, 'done', null, 3600), 'done', 'done with a reschedule');
SELECT is((SELECT run_at FROM jobs.jobs WHERE kind = 'retention' AND status = 'pending'), now() + interval '1 hour',
          'the next run is queued an interval later');
SELECT is((SELECT count(*) FROM jobs.jobs WHERE dedupe_key = 'retention' AND status = 'pending'), 1::bigint,
          'exactly one pending recurring job');
SELECT jobs.enqueue('retention', '{}') AS adhoc \gset
SELECT is((SELECT id FROM jobs.claim('w1', '{retention}', 30)), :adhoc::bigint, 'claim an ad-hoc run (no key)');
SELECT is(jobs.finish(:adhoc, 'w1', 1, 'done', null, 3600), 'done', 'its reschedule');
SELECT is((SELECT count(*) FROM jobs.jobs WHERE kind = 'retention' AND status = 'pending'), 1::bigint,
          'joins the existing recurring job instead of starting a second chain');
UPDATE jobs.jobs SET finished_at = now() - interval '10 days' WHERE id = :r1;
SELECT is(jobs.purge_finished('7 days'), 1::bigint, 'purge_finished deletes finished jobs older than the limit');
SELECT is((SELECT count(*) FROM jobs.jobs), 2::bigint, 'and keeps recent and pending ones');

-- ---------------------------------------------------------------------------
-- Local times across DST
-- ---------------------------------------------------------------------------
SELECT is(jobs.local_instant('2026-03-08 02:30', 'America/New_York'), '2026-03-08 07:00+00'::timestamptz,
          'New York, spring forward: 02:30 does not exist; it runs when the clocks jump (03:00 EDT)');
SELECT is(jobs.local_instant('2026-11-01 01:30', 'America/New_York'), '2026-11-01 05:30+00'::timestamptz,
          'New York, fall back: 01:30 happens twice; the first (EDT) is meant');
SELECT is(jobs.local_instant('2026-03-29 01:30', 'Europe/London'), '2026-03-29 01:00+00'::timestamptz,
          'London, spring forward: 01:30 runs at 02:00 BST');
SELECT is(jobs.local_instant('2026-10-25 01:30', 'Europe/London'), '2026-10-25 00:30+00'::timestamptz,
          'London, fall back: the first 01:30 (BST)');
SELECT is(jobs.local_instant('2026-07-01 09:00', 'Europe/London'), '2026-07-01 08:00+00'::timestamptz,
          'an ordinary summer time');

-- daily
SELECT is(pg_temp.nx('daily', '{"time": "02:30", "timezone": "America/New_York"}', '2026-03-07 08:00Z'),
          '2026-03-08 07:00Z', 'daily 02:30 New York on the spring-forward day: at 03:00 EDT');
SELECT is(pg_temp.nx('daily', '{"time": "02:30", "timezone": "America/New_York"}', '2026-03-08 07:00Z'),
          '2026-03-09 06:30Z', 'and the next day at 02:30 EDT');
SELECT is(pg_temp.nx('daily', '{"time": "01:30", "timezone": "America/New_York"}', '2026-11-01 05:00Z'),
          '2026-11-01 05:30Z', 'daily 01:30 New York on the fall-back day: the first 01:30');
SELECT is(pg_temp.nx('daily', '{"time": "01:30", "timezone": "America/New_York"}', '2026-11-01 05:30Z'),
          '2026-11-02 06:30Z', 'the repeated 01:30 does not run again');
SELECT is(pg_temp.nx('daily', '{"time": "01:30", "timezone": "Europe/London"}', '2026-03-28 12:00Z'),
          '2026-03-29 01:00Z', 'daily 01:30 London on the spring-forward day: at 02:00 BST');
SELECT is(pg_temp.nx('daily', '{"time": "01:30", "timezone": "Europe/London"}', '2026-10-25 00:30Z'),
          '2026-10-26 01:30Z', 'London fall back: runs once, then 01:30 GMT the next day');
SELECT is(pg_temp.nx('daily', '{"time": "09:00"}', '2026-12-05 12:00Z', 'America/New_York'),
          '2026-12-05 14:00Z', 'without a timezone key the default zone applies');
SELECT is(pg_temp.nx('daily', '{}', '2026-12-05 12:00Z', NULL), '2026-12-06 00:00Z',
          'no time and no zone: midnight UTC');

-- hourly
SELECT is(pg_temp.nx('hourly', '{"timezone": "America/New_York"}', '2026-11-01 05:00Z'), '2026-11-01 06:00Z',
          'hourly runs every elapsed hour: the repeated 01:00 (EST) too');
SELECT is(pg_temp.nx('hourly', '{"timezone": "America/New_York"}', '2026-03-08 06:59Z'), '2026-03-08 07:00Z',
          'hourly across the spring-forward gap: one hour later is 03:00 EDT');
SELECT is(pg_temp.nx('hourly', '{"timezone": "Asia/Kathmandu"}', '2026-11-01 05:30Z'), '2026-11-01 06:15Z',
          'hourly at minute 0 of a +05:45 zone');

-- weekly
SELECT is(pg_temp.nx('weekly', '{"day_of_week": 1, "time": "09:00", "timezone": "America/New_York"}', '2026-12-05 12:00Z'),
          '2026-12-07 14:00Z', 'weekly: Monday 9:00 New York');
SELECT is(pg_temp.nx('weekly', '{"day_of_week": 0, "time": "09:00", "timezone": "America/New_York"}', '2026-12-05 12:00Z'),
          '2026-12-06 14:00Z', 'weekly: day 0 is Sunday');
SELECT is(pg_temp.nx('weekly', '{"day_of_week": 7, "time": "09:00", "timezone": "America/New_York"}', '2026-12-05 12:00Z'),
          '2026-12-06 14:00Z', 'weekly: day 7 is Sunday too');
SELECT is(pg_temp.nx('weekly', '{"day_of_week": 6, "time": "07:00", "timezone": "America/New_York"}', '2026-12-05 11:00Z'),
          '2026-12-05 12:00Z', 'weekly: later today when the time has not passed');
SELECT is(pg_temp.nx('weekly', '{"day_of_week": 6, "time": "06:00", "timezone": "America/New_York"}', '2026-12-05 11:00Z'),
          '2026-12-12 11:00Z', 'weekly: next week when it has');
SELECT is(pg_temp.nx('weekly', '{"day_of_week": 0, "time": "02:30", "timezone": "America/New_York"}', '2026-03-02 00:00Z'),
          '2026-03-08 07:00Z', 'weekly on the spring-forward Sunday at a missing time');

-- monthly
SELECT is(pg_temp.nx('monthly', '{"day_of_month": 31, "time": "08:00"}', '2026-04-01 00:00Z'), '2026-04-30 08:00Z',
          'monthly on the 31st runs on the 30th in a 30-day month');
SELECT is(pg_temp.nx('monthly', '{"day_of_month": 31, "time": "08:00"}', '2026-04-30 08:00Z'), '2026-05-31 08:00Z',
          'and on the 31st when the month has one');
SELECT is(pg_temp.nx('monthly', '{"day_of_month": 30}', '2026-02-01 00:00Z'), '2026-02-28 00:00Z',
          'February of a common year: the 28th');
SELECT is(pg_temp.nx('monthly', '{"day_of_month": 31}', '2028-02-01 00:00Z'), '2028-02-29 00:00Z',
          'February of a leap year: the 29th');
SELECT is(pg_temp.nx('monthly', '{"day_of_month": 29}', '2027-02-01 00:00Z'), '2027-02-28 00:00Z',
          'the 29th in February 2027: the 28th');
SELECT is(pg_temp.nx('monthly', '{"day_of_month": 29, "time": "01:30", "timezone": "Europe/London"}', '2026-03-01 00:00Z'),
          '2026-03-29 01:00Z', 'monthly at a time London skips');
SELECT is(pg_temp.nx('monthly', '{"day_of_month": "15"}', '2026-12-05 00:00Z'), '2026-12-15 00:00Z',
          'a numeric string is accepted');

-- ---------------------------------------------------------------------------
-- Cron: every form
-- ---------------------------------------------------------------------------
SELECT is(pg_temp.cron('* * * * *', '2026-12-05 10:07:30Z'), '2026-12-05 10:08Z', '* * * * *: the next minute');
SELECT is(pg_temp.cron('*/15 * * * *', '2026-12-05 10:07Z'), '2026-12-05 10:15Z', 'step over *');
SELECT is(pg_temp.cron('5,35 * * * *', '2026-12-05 10:07Z'), '2026-12-05 10:35Z', 'list');
SELECT is(pg_temp.cron('0 9-17 * * *', '2026-12-05 17:30Z'), '2026-12-06 09:00Z', 'range');
SELECT is(pg_temp.cron('0 9-17/4 * * *', '2026-12-05 13:30Z'), '2026-12-05 17:00Z', 'range with a step (9, 13, 17)');
SELECT is(pg_temp.cron('10/20 * * * *', '2026-12-05 10:31Z'), '2026-12-05 10:50Z', 'N/step means N-max/step');
SELECT is(pg_temp.cron('0 0 1,15 * *', '2026-12-05 00:00Z'), '2026-12-15 00:00Z', 'days of the month');
SELECT is(pg_temp.cron('0 12 * jun-aug *', '2026-12-05 00:00Z'), '2027-06-01 12:00Z', 'month names in a range');
SELECT is(pg_temp.cron('0 12 1 JAN,Jul *', '2026-12-05 00:00Z'), '2027-01-01 12:00Z', 'month names, any case');
SELECT is(pg_temp.cron('0 9 * * mon-fri', '2026-12-05 00:00Z', 'America/New_York'), '2026-12-07 14:00Z',
          'day names in a range, in New York');
SELECT is(pg_temp.cron('0 9 * * 1-5', '2026-12-05 00:00Z', 'America/New_York'), '2026-12-07 14:00Z',
          'the seed''s 0 9 * * 1-5 on a Saturday: Monday 9:00 EST');
SELECT is(pg_temp.cron('0 0 * * 7', '2026-12-05 00:00Z'), '2026-12-06 00:00Z', 'day of week 7 is Sunday');
SELECT is(pg_temp.cron('0 0 * * 5-7', '2026-12-05 01:00Z'), '2026-12-06 00:00Z', 'a range ending at 7 includes Sunday');
SELECT is(pg_temp.cron('0 0 13 * 5', '2026-12-05 12:00Z'), '2026-12-11 00:00Z',
          'both day fields restricted: the 13th OR a Friday (Vixie), the Friday comes first');
SELECT is(pg_temp.cron('0 0 13 * 5', '2026-12-11 12:00Z'), '2026-12-13 00:00Z', 'then the 13th, a Sunday');
SELECT is(pg_temp.cron('0 0 */2 * 4', '2026-12-05 12:00Z'), '2026-12-17 00:00Z',
          'a day-of-month starting with * is not restricted: odd days AND Thursdays');
SELECT is(pg_temp.cron('0 0 * * *', '2026-12-05 12:00Z'), '2026-12-06 00:00Z', 'both unrestricted: every day');
SELECT is(pg_temp.cron('0 12 29 2 *', '2026-12-05 00:00Z'), '2028-02-29 12:00Z', '29 February waits for a leap year');
SELECT is(pg_temp.cron('0 0 31 * *', '2026-04-01 00:00Z'), '2026-05-31 00:00Z', 'the 31st skips 30-day months');
SELECT is(pg_temp.cron('@hourly', '2026-12-05 10:07Z'), '2026-12-05 11:00Z', '@hourly');
SELECT is(pg_temp.cron('@daily', '2026-12-05 10:07Z'), '2026-12-06 00:00Z', '@daily');
SELECT is(pg_temp.cron('@midnight', '2026-12-05 10:07Z'), '2026-12-06 00:00Z', '@midnight');
SELECT is(pg_temp.cron('@weekly', '2026-12-05 10:07Z'), '2026-12-06 00:00Z', '@weekly (Sunday midnight)');
SELECT is(pg_temp.cron('@monthly', '2026-12-05 10:07Z'), '2027-01-01 00:00Z', '@monthly');
SELECT is(pg_temp.cron('@yearly', '2026-12-05 10:07Z'), '2027-01-01 00:00Z', '@yearly');
SELECT is(pg_temp.cron('@annually', '2026-12-05 10:07Z'), '2027-01-01 00:00Z', '@annually');
SELECT is(pg_temp.cron('  0   9  *  *  1  ', '2026-12-05 00:00Z'), '2026-12-07 09:00Z', 'extra blanks are fine');
-- cron across DST
SELECT is(pg_temp.cron('30 2 * * *', '2026-03-08 06:00Z', 'America/New_York'), '2026-03-08 07:00Z',
          'cron 30 2 * * * on the New York spring-forward day: at 03:00 EDT');
SELECT is(pg_temp.cron('*/20 2 * * *', '2026-03-08 07:00Z', 'America/New_York'), '2026-03-09 06:00Z',
          'the skipped 02:xx times run once, at the jump; the next run is the next day');
SELECT is(pg_temp.cron('30 1 * * *', '2026-11-01 05:30Z', 'America/New_York'), '2026-11-02 06:30Z',
          'cron 30 1 * * * on the New York fall-back day runs once');
SELECT is(pg_temp.cron('0 * * * *', '2026-11-01 05:00Z', 'America/New_York'), '2026-11-01 07:00Z',
          'cron 0 * * * * runs the repeated 01:00 once (02:00 EST next)');
SELECT is(pg_temp.cron('30 1 * * *', '2026-03-28 12:00Z', 'Europe/London'), '2026-03-29 01:00Z',
          'cron 30 1 * * * on the London spring-forward day: at 02:00 BST');
SELECT is(pg_temp.cron('30 1 * * *', '2026-10-25 00:30Z', 'Europe/London'), '2026-10-26 01:30Z',
          'cron 30 1 * * * on the London fall-back day runs once');
-- invalid expressions
SELECT is(pg_temp.error_of($$SELECT pg_temp.cron('60 * * * *', now())$$), '22023', 'minute 60 is refused');
SELECT is(pg_temp.error_of($$SELECT pg_temp.cron('* * * *', now())$$), '22023', 'four fields are refused');
SELECT is(pg_temp.error_of($$SELECT pg_temp.cron('* * * * * *', now())$$), '22023', 'six fields are refused');
SELECT is(pg_temp.error_of($$SELECT pg_temp.cron('5-1 * * * *', now())$$), '22023', 'a backwards range is refused');
SELECT is(pg_temp.error_of($$SELECT pg_temp.cron('*/0 * * * *', now())$$), '22023', 'step 0 is refused');
SELECT is(pg_temp.error_of($$SELECT pg_temp.cron('0 0 * * funday', now())$$), '22023', 'an unknown name is refused');
SELECT is(pg_temp.error_of($$SELECT pg_temp.cron('0 0 1 mon *', now())$$), '22023', 'a day name in the month field is refused');
SELECT is(pg_temp.error_of($$SELECT pg_temp.cron('0 0 30 2 *', now())$$), '22023', '30 February never fires: refused');
SELECT is(pg_temp.error_of($$SELECT pg_temp.cron('@reboot', now())$$), '22023', '@reboot means nothing here');
SELECT is(pg_temp.error_of($$SELECT pg_temp.cron('0 0 1,,2 * *', now())$$), '22023', 'an empty list item is refused');
SELECT is(pg_temp.error_of(format('SELECT pg_temp.cron(%L, now())', repeat('1,', 20000) || '1 * * * *')), '22023',
          'an expression longer than 200 characters is refused before any work');
-- invalid schedules
SELECT is(pg_temp.error_of($$SELECT jobs.next_run('daily', '{"timezone": "Mars/Olympus"}', now(), null)$$), '22023',
          'an unknown time zone is refused');
SELECT is(pg_temp.error_of($$SELECT jobs.next_run('daily', '{"time": "24:00"}', now(), null)$$), '22023',
          'time 24:00 is refused');
SELECT is(pg_temp.error_of($$SELECT jobs.next_run('daily', '{"time": 9}', now(), null)$$), '22023',
          'a time must be a string');
SELECT is(pg_temp.error_of($$SELECT jobs.next_run('weekly', '{"day_of_week": 8}', now(), null)$$), '22023',
          'day_of_week 8 is refused');
SELECT is(pg_temp.error_of($$SELECT jobs.next_run('monthly', '{"day_of_month": 0}', now(), null)$$), '22023',
          'day_of_month 0 is refused');
SELECT is(pg_temp.error_of($$SELECT jobs.next_run('cron', '{"cron_expression": 5}', now(), null)$$), '22023',
          'a cron expression must be a string');
SELECT is(jobs.next_run('manual', '{}', now(), null), NULL, 'manual sources have no next run');

-- ---------------------------------------------------------------------------
-- data_sources.next_sync_at, and the scheduler's pass
-- ---------------------------------------------------------------------------
SELECT tests.create_user('sched-owner@example.test', 'user') AS owner \gset
SELECT tests.authenticate_as(:'owner');
INSERT INTO public.data_sources (id, name, type, sync_schedule, schedule_config)
VALUES ('5c000000-0000-0000-0000-000000000001', 'Trade show list', 'csv_url', 'weekly',
        '{"day_of_week": 1, "time": "09:00", "timezone": "America/New_York", "retry_on_failure": true,
          "max_retries": 2, "retry_delay_minutes": 5}');
SELECT is(pg_temp.error_of($$INSERT INTO public.data_sources (name, type, sync_schedule, schedule_config)
                             VALUES ('bad', 'csv_url', 'daily', '{"timezone": "Nowhere/Land"}')$$), '22023',
          'a user''s invalid schedule is refused when the source is saved');
RESET ROLE;
SELECT tests.clear_authentication();
SELECT is((SELECT next_sync_at FROM public.data_sources WHERE id = '5c000000-0000-0000-0000-000000000001'),
          jobs.next_run('weekly', '{"day_of_week": 1, "time": "09:00", "timezone": "America/New_York"}', now(), null),
          'a user''s new source gets next_sync_at (which the user may not write) from its schedule');
UPDATE public.data_sources SET next_sync_at = '2000-01-01Z' WHERE id = '5c000000-0000-0000-0000-000000000001';
UPDATE public.data_sources SET name = 'Trade show list (2026)' WHERE id = '5c000000-0000-0000-0000-000000000001';
SELECT is((SELECT next_sync_at FROM public.data_sources WHERE id = '5c000000-0000-0000-0000-000000000001'),
          '2000-01-01Z'::timestamptz, 'an update that leaves the schedule alone keeps next_sync_at');
UPDATE public.data_sources SET sync_schedule = 'manual' WHERE id = '5c000000-0000-0000-0000-000000000001';
SELECT is((SELECT next_sync_at FROM public.data_sources WHERE id = '5c000000-0000-0000-0000-000000000001'),
          NULL, 'manual: no next sync');
UPDATE public.data_sources SET sync_schedule = 'daily', is_active = false WHERE id = '5c000000-0000-0000-0000-000000000001';
SELECT is((SELECT next_sync_at FROM public.data_sources WHERE id = '5c000000-0000-0000-0000-000000000001'),
          NULL, 'inactive: no next sync');
UPDATE public.data_sources SET is_active = true, sync_schedule = 'weekly' WHERE id = '5c000000-0000-0000-0000-000000000001';
SELECT ok((SELECT next_sync_at > now() FROM public.data_sources WHERE id = '5c000000-0000-0000-0000-000000000001'),
          'active again: scheduled in the future');

DELETE FROM jobs.jobs;
INSERT INTO public.data_sources (id, name, type, sync_schedule, schedule_config)
VALUES ('5c000000-0000-0000-0000-000000000002', 'Manual', 'csv_url', 'manual', '{}'),
       ('5c000000-0000-0000-0000-000000000003', 'Deleted', 'csv_url', 'hourly', '{}');
UPDATE public.data_sources SET deleted_at = now() WHERE id = '5c000000-0000-0000-0000-000000000003';
UPDATE public.data_sources SET next_sync_at = now() - interval '1 minute'
WHERE id IN ('5c000000-0000-0000-0000-000000000001', '5c000000-0000-0000-0000-000000000002',
             '5c000000-0000-0000-0000-000000000003');
SET LOCAL ROLE service_role;
SELECT is(jobs.enqueue_due_syncs(), 1, 'the pass enqueues the one due active source (not manual, not deleted)');
SELECT is(jobs.enqueue_due_syncs(), 0, 'a second pass finds nothing due');
RESET ROLE;
SELECT is((SELECT payload FROM jobs.jobs WHERE kind = 'import.sync'),
          '{"data_source_id": "5c000000-0000-0000-0000-000000000001", "trigger": "schedule"}'::jsonb,
          'kind import.sync with the source and the trigger');
SELECT is((SELECT dedupe_key FROM jobs.jobs WHERE kind = 'import.sync'),
          'import.sync:5c000000-0000-0000-0000-000000000001', 'deduplicated per source');
SELECT is((SELECT max_attempts FROM jobs.jobs WHERE kind = 'import.sync'), 3, 'retry_on_failure: 1 + max_retries attempts');
SELECT is((SELECT retry_delay FROM jobs.jobs WHERE kind = 'import.sync'), interval '5 minutes', 'retry_delay_minutes');
SELECT is((SELECT next_sync_at FROM public.data_sources WHERE id = '5c000000-0000-0000-0000-000000000001'),
          jobs.next_run('weekly', '{"day_of_week": 1, "time": "09:00", "timezone": "America/New_York"}', now(), null),
          'next_sync_at advanced in the same transaction');
UPDATE public.data_sources SET next_sync_at = now() - interval '1 minute' WHERE id = '5c000000-0000-0000-0000-000000000001';
SELECT is(jobs.enqueue_due_syncs(), 1, 'due again while its sync is still pending');
SELECT is((SELECT count(*) FROM jobs.jobs WHERE kind = 'import.sync'), 1::bigint, 'no second job for the same source');
UPDATE public.data_sources SET schedule_config = '{"time": "09:00"}', sync_schedule = 'daily'
WHERE id = '5c000000-0000-0000-0000-000000000001';
DELETE FROM jobs.jobs;
UPDATE public.data_sources SET next_sync_at = now() - interval '1 minute' WHERE id = '5c000000-0000-0000-0000-000000000001';
SELECT is(jobs.enqueue_due_syncs(), 1, 'a source without retry settings');
SELECT is((SELECT max_attempts FROM jobs.jobs WHERE kind = 'import.sync'), 1, 'runs once (no retry unless asked)');

-- The default zone changing moves the sources that follow it, not the others.
UPDATE public.data_sources SET next_sync_at = '2000-01-01Z' WHERE id = '5c000000-0000-0000-0000-000000000001';
INSERT INTO public.data_sources (id, name, type, sync_schedule, schedule_config)
VALUES ('5c000000-0000-0000-0000-000000000004', 'Own zone', 'csv_url', 'daily', '{"time": "09:00", "timezone": "Asia/Tokyo"}');
UPDATE public.data_sources SET next_sync_at = '2000-01-01Z' WHERE id = '5c000000-0000-0000-0000-000000000004';
UPDATE public.app_settings SET timezone = CASE WHEN timezone = 'Europe/London' THEN 'America/Chicago' ELSE 'Europe/London' END;
SELECT is((SELECT next_sync_at FROM public.data_sources WHERE id = '5c000000-0000-0000-0000-000000000001'),
          jobs.next_run('daily', '{"time": "09:00"}', now(), (SELECT timezone FROM public.app_settings)),
          'a new app_settings.timezone reschedules the sources without a zone of their own');
SELECT is((SELECT next_sync_at FROM public.data_sources WHERE id = '5c000000-0000-0000-0000-000000000004'),
          '2000-01-01Z'::timestamptz, 'and leaves the others alone');

SELECT * FROM finish();
ROLLBACK;
