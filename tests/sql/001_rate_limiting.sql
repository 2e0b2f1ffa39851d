-- tests/sql/001_rate_limiting.sql: login attempt tracking and lock-out
-- (migrations/001_rate_limiting.sql).
BEGIN;
SELECT plan(27);

SELECT has_table('auth', 'login_attempts', 'auth.login_attempts exists');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'auth.login_attempts'::regclass),
          'RLS is enabled on auth.login_attempts');

-- The server runs sign-in as service_role.
SELECT tests.authenticate_as_service();

-- Per e-mail: limit 3 failures in 60 s.
SELECT is(auth.login_throttle('alice@example.test', '198.51.100.1', 3, 100, 60), 0,
          'no attempts: allowed');
SELECT auth.record_login_attempt('alice@example.test', '198.51.100.1', false);
SELECT auth.record_login_attempt('alice@example.test', '198.51.100.1', false);
SELECT is(auth.login_throttle('alice@example.test', '198.51.100.1', 3, 100, 60), 0,
          'two failures, limit three: still allowed');
SELECT auth.record_login_attempt('ALICE@example.test ', '198.51.100.1', false);
SELECT cmp_ok(auth.login_throttle('alice@example.test', '198.51.100.1', 3, 100, 60), '>', 0,
              'third failure (e-mail case and spaces ignored): blocked with a positive wait');
SELECT cmp_ok(auth.login_throttle('alice@example.test', '198.51.100.1', 3, 100, 60), '<=', 60,
              'the wait is at most the window');
SELECT cmp_ok(auth.login_throttle(' Alice@Example.TEST', '192.0.2.99', 3, 100, 60), '>', 0,
              'the e-mail stays blocked from another address');
SELECT is(auth.login_throttle('bob@example.test', '192.0.2.99', 3, 100, 60), 0,
          'another e-mail from another address is not affected');
SELECT is(auth.login_throttle('alice@example.test', NULL, NULL, 100, 60), 0,
          'a NULL e-mail limit disables the e-mail check');

-- Per address: limit 4 failures in 60 s, across different e-mails.
SELECT auth.record_login_attempt(e, '198.51.100.2', false)
FROM unnest(ARRAY['c1@example.test', 'c2@example.test', 'c3@example.test']) AS e;
SELECT is(auth.login_throttle('fresh@example.test', '198.51.100.2', 3, 4, 60), 0,
          'three failures from one address, limit four: allowed');
SELECT auth.record_login_attempt('c4@example.test', '198.51.100.2', false);
SELECT cmp_ok(auth.login_throttle('fresh@example.test', '198.51.100.2', 3, 4, 60), '>', 0,
              'fourth failure from the address: a fresh e-mail is blocked from it');
SELECT is(auth.login_throttle('fresh@example.test', '198.51.100.3', 3, 4, 60), 0,
          'the same e-mail from another address is allowed');
SELECT is(auth.login_throttle('c1@example.test', '198.51.100.3', 3, 4, 60), 0,
          'one failure of c1 is below its e-mail limit');

-- A success clears the e-mail's streak, not the address's.
SELECT auth.record_login_attempt('alice@example.test', '192.0.2.50', true);
SELECT is(auth.login_throttle('alice@example.test', '192.0.2.51', 3, 100, 60), 0,
          'after a success the e-mail is allowed again');
SELECT auth.record_login_attempt('alice@example.test', '192.0.2.51', false);
SELECT auth.record_login_attempt('alice@example.test', '192.0.2.51', false);
SELECT is(auth.login_throttle('alice@example.test', '192.0.2.51', 3, 100, 60), 0,
          'two new failures after the success: still allowed');
SELECT auth.record_login_attempt('alice@example.test', '192.0.2.51', false);
SELECT cmp_ok(auth.login_throttle('alice@example.test', '192.0.2.51', 3, 100, 60), '>', 0,
              'a third new failure blocks again');
SELECT auth.record_login_attempt('c1@example.test', '198.51.100.2', true);
SELECT cmp_ok(auth.login_throttle('fresh@example.test', '198.51.100.2', 3, 4, 60), '>', 0,
              'a success does not clear the address count');

-- The window: failures leave it. Rows with explicit times are written as the
-- session user (the functions only ever record "now").
SELECT tests.clear_authentication();
INSERT INTO auth.login_attempts (email, ip, succeeded, attempted_at)
SELECT 'old@example.test', '203.0.113.200', false, now() - interval '2 hours'
FROM generate_series(1, 5);
INSERT INTO auth.login_attempts (email, ip, succeeded, attempted_at) VALUES
    ('wait@example.test', NULL, false, now() - interval '100 seconds'),
    ('wait@example.test', NULL, false, now() - interval '50 seconds'),
    ('wait@example.test', NULL, false, now() - interval '10 seconds'),
    ('wait@example.test', NULL, false, now() - interval '5 seconds');
SELECT tests.authenticate_as_service();
SELECT is(auth.login_throttle('old@example.test', '203.0.113.200', 3, 3, 3600), 0,
          'failures older than the window do not count');
SELECT cmp_ok(auth.login_throttle('old@example.test', '203.0.113.200', 3, 3, 3 * 3600), '>', 0,
              'the same failures count inside a longer window');
-- Four failures, limit three: the third newest (50 s ago) decides the wait,
-- 3600 - 50 = 3550 s (less whatever time this test has taken so far).
SELECT ok(auth.login_throttle('wait@example.test', NULL, 3, NULL, 3600) BETWEEN 3501 AND 3550,
          'the wait lasts until the blocking failure leaves the window');

SELECT throws_ok($$SELECT auth.login_throttle('x@example.test', NULL, 3, 3, 0)$$,
                 '22023', NULL, 'a non-positive window is rejected');
SELECT is(auth.purge_login_attempts(3600), 5::bigint, 'purge removes only attempts older than the retention');

-- Nobody but service_role may call them or read the table.
SELECT tests.authenticate_as_anon();
SELECT throws_ok($$SELECT auth.login_throttle('a@example.test', NULL, 3, 3, 60)$$,
                 '42501', NULL, 'anon cannot execute login_throttle');
SELECT throws_ok($$SELECT auth.record_login_attempt('a@example.test', NULL, true)$$,
                 '42501', NULL, 'anon cannot execute record_login_attempt');
SELECT tests.authenticate_as(tests.create_user('rl@example.test', 'admin'));
SELECT throws_ok($$SELECT auth.login_throttle('a@example.test', NULL, 3, 3, 60)$$,
                 '42501', NULL, 'authenticated (even admin) cannot execute login_throttle');
SELECT throws_ok($$SELECT auth.record_login_attempt('rl@example.test', NULL, true)$$,
                 '42501', NULL, 'authenticated cannot execute record_login_attempt');
SELECT throws_ok($$SELECT 1 FROM auth.login_attempts$$,
                 '42501', NULL, 'authenticated cannot read auth.login_attempts');

SELECT tests.clear_authentication();
SELECT * FROM finish();
ROLLBACK;
