-- tests/sql/024_login_throttle.sql: a growing delay per (e-mail, address), a high
-- cap per e-mail, a cap per address (migrations/024_login_throttle.sql).
BEGIN;
SELECT plan(16);

SELECT has_function('auth', 'login_wait', ARRAY['text', 'inet', 'integer', 'integer', 'integer', 'integer'],
                    'auth.login_wait exists');

-- Failures with explicit times are written as the session user.
SELECT tests.clear_authentication();
INSERT INTO auth.login_attempts (email, ip, succeeded, attempted_at) VALUES
    ('owner@example.test', '198.51.100.66', false, now() - interval '30 seconds'),
    ('owner@example.test', '198.51.100.66', false, now() - interval '20 seconds'),
    ('owner@example.test', '198.51.100.66', false, now() - interval '10 seconds');
SELECT tests.authenticate_as_service();

-- Limits: 3 per pair, 100 per e-mail, 1000 per address, window 900 s.
SELECT ok(auth.login_wait('owner@example.test', '198.51.100.66', 3, 100, 1000, 900) BETWEEN 1 AND 50,
          'three failures from one address: that address waits 60 s after the latest');
SELECT is(auth.login_wait('Owner@Example.test ', '192.0.2.10', 3, 100, 1000, 900), 0,
          'the owner signs in from another address: a stranger cannot lock the e-mail');
SELECT is(auth.login_wait('owner@example.test', NULL, 3, 100, 1000, 900), 0,
          'nor from an unknown address');

SELECT tests.clear_authentication();
INSERT INTO auth.login_attempts (email, ip, succeeded, attempted_at) VALUES
    ('owner@example.test', '198.51.100.66', false, now() - interval '5 seconds');
SELECT tests.authenticate_as_service();
SELECT ok(auth.login_wait('owner@example.test', '198.51.100.66', 3, 100, 1000, 900) BETWEEN 61 AND 115,
          'a fourth failure (after waiting) doubles the delay to 120 s');

SELECT tests.clear_authentication();
INSERT INTO auth.login_attempts (email, ip, succeeded, attempted_at)
SELECT 'owner@example.test', '198.51.100.66', false, now() - interval '4 seconds'
FROM generate_series(1, 2);
SELECT tests.authenticate_as_service();
SELECT ok(auth.login_wait('owner@example.test', '198.51.100.66', 3, 100, 1000, 900) BETWEEN 241 AND 476,
          'six failures: 480 s');
SELECT ok(auth.login_wait('owner@example.test', '198.51.100.66', 3, 100, 1000, 300) BETWEEN 241 AND 296,
          'the delay never outlasts the window');
SELECT is(auth.login_wait('owner@example.test', '198.51.100.66', 3, 100, 1000, 3), 0,
          'failures that left the window do not count');

-- A success from the address ends its streak.
SELECT auth.record_login_attempt('owner@example.test', '198.51.100.66', true);
SELECT is(auth.login_wait('owner@example.test', '198.51.100.66', 3, 100, 1000, 900), 0,
          'after a success from the address, it may try again at once');

-- The cap per e-mail over all addresses: 3 addresses x 3 failures, cap 9.
SELECT tests.clear_authentication();
INSERT INTO auth.login_attempts (email, ip, succeeded, attempted_at)
SELECT 'admin@example.test', ('203.0.113.' || a)::inet, false, now() - interval '1 second'
FROM generate_series(1, 3) AS a, generate_series(1, 3) AS n;
SELECT tests.authenticate_as_service();
SELECT is(auth.login_wait('admin@example.test', '203.0.113.99', 3, 10, 1000, 900), 0,
          'nine failures from three addresses, cap ten: a fourth address is allowed');
SELECT cmp_ok(auth.login_wait('admin@example.test', '203.0.113.99', 3, 9, 1000, 900), '>', 0,
              'at the cap per e-mail every address waits');

-- The cap per address over all e-mails.
SELECT cmp_ok(auth.login_wait('someone@example.test', '203.0.113.1', 3, 100, 3, 900), '>', 0,
              'three failures from an address (any e-mail), cap three: the address waits');
SELECT is(auth.login_wait('someone@example.test', '203.0.113.1', 3, 100, 4, 900), 0,
          'below the cap per address: allowed');

SELECT throws_ok($$SELECT auth.login_wait('x@example.test', NULL, 0, 3, 3, 60)$$,
                 '22023', NULL, 'a non-positive limit is rejected');

SELECT tests.authenticate_as_anon();
SELECT throws_ok($$SELECT auth.login_wait('a@example.test', NULL, 3, 3, 3, 60)$$,
                 '42501', NULL, 'anon cannot execute login_wait');
SELECT tests.authenticate_as(tests.create_user('lw@example.test', 'admin'));
SELECT throws_ok($$SELECT auth.login_wait('a@example.test', NULL, 3, 3, 3, 60)$$,
                 '42501', NULL, 'authenticated (even admin) cannot execute login_wait');

SELECT tests.clear_authentication();
SELECT * FROM finish();
ROLLBACK;
