-- tests/sql/040_auth_finish.sql: the factor limit counts recovery codes and
-- holds for every insert; abandoned PKCE flows are purged
-- (migrations/040_auth_finish.sql).
BEGIN;
SELECT plan(14);

SELECT set_config('campaignd.encryption_key', 'test-encryption-key-0123456789abcdef', true);
SELECT tests.create_user('cleo@example.test', 'user') AS cleo \gset
SELECT tests.create_user('dan@example.test', 'user') AS dan \gset
SELECT gen_random_uuid() AS s_cleo \gset
INSERT INTO auth.sessions (id, user_id, aal) VALUES (:'s_cleo', :'cleo', 'aal2');

SELECT is(auth.mfa_max_enrolled_factors(), 10, 'the limit is GoTrue''s MFA_MAX_ENROLLED_FACTORS default');
SELECT ok(NOT has_function_privilege('authenticated', 'auth.purge_flow_states(integer)', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'auth.mfa_recovery_store_rules(uuid, uuid, text, text[], boolean, text)', 'EXECUTE'),
          'API roles cannot purge flows nor call the inner recovery-code function');

SELECT tests.authenticate_as_service();

-- one verified TOTP factor and nine unverified ones: ten factors
INSERT INTO auth.mfa_factors (user_id, friendly_name, factor_type, status, secret_encrypted)
SELECT :'cleo', 'f' || i, 'totp', CASE WHEN i = 0 THEN 'verified' ELSE 'unverified' END::auth.factor_status,
       '\x00'::bytea
  FROM generate_series(0, 9) i;
SELECT is((SELECT count(*)::int FROM auth.mfa_factors WHERE user_id = :'cleo'), 10, 'ten factors');
SELECT is((SELECT status FROM auth.mfa_recovery_store(:'cleo', :'s_cleo', '',
           ARRAY(SELECT repeat(i::text, 64) FROM generate_series(0, 9) i), false, NULL)),
          'too_many', 'recovery codes are a factor: refused at the limit');
SELECT is((SELECT count(*)::int FROM auth.mfa_factors WHERE user_id = :'cleo' AND factor_type = 'recovery_code'),
          0, 'no recovery-code factor was added');
SELECT is((SELECT status FROM auth.mfa_enroll_totp(:'cleo', :'s_cleo', 'eleventh', 'JBSWY3DPEHPK3PXP', 10, NULL)),
          'too_many', 'nor is an eleventh TOTP factor');
SELECT is(tests.error_of($$INSERT INTO auth.mfa_factors (user_id, factor_type, status)
                           VALUES ('$$ || :'cleo' || $$', 'recovery_code', 'verified')$$),
          '23514 ', 'the database refuses an eleventh factor inserted directly');

-- one factor less: the recovery codes fit, and then fill the limit
DELETE FROM auth.mfa_factors WHERE user_id = :'cleo' AND friendly_name = 'f9';
SELECT is((SELECT status FROM auth.mfa_recovery_store(:'cleo', :'s_cleo', '',
           ARRAY(SELECT repeat(i::text, 64) FROM generate_series(0, 9) i), false, NULL)),
          'ok', 'below the limit the recovery codes are stored');
SELECT is((SELECT status FROM auth.mfa_enroll_totp(:'cleo', :'s_cleo', 'f9', 'JBSWY3DPEHPK3PXP', 10, NULL)),
          'too_many', 'and count: the next TOTP factor is refused');
SELECT is((SELECT status FROM auth.mfa_recovery_store(:'cleo', :'s_cleo', '', ARRAY[repeat('a', 64)], true, NULL)),
          'ok', 'regenerating at the limit still works (no new factor)');

-- abandoned PKCE flows
INSERT INTO auth.flow_state (code_challenge_method, code_challenge, provider_type, authentication_method, created_at)
VALUES ('s256', repeat('a', 43), 'github', 'oauth', now() - interval '2 hours'),
       ('s256', repeat('b', 43), 'email', 'magiclink', now() - interval '3 hours'),
       ('s256', repeat('c', 43), 'github', 'oauth', now() - interval '5 minutes');
INSERT INTO auth.flow_state (code_challenge_method, code_challenge, provider_type, authentication_method,
                             created_at, user_id, auth_code, auth_code_issued_at)
VALUES ('s256', repeat('d', 43), 'google', 'oauth', now() - interval '70 minutes', :'dan',
        repeat('e', 64), now() - interval '69 minutes');
SELECT is(auth.purge_flow_states(3900), 3::bigint,
          'the flows older than their lifetime go, with or without a code');
SELECT is((SELECT string_agg(code_challenge, ',') FROM auth.flow_state WHERE code_challenge IN
           (repeat('a', 43), repeat('b', 43), repeat('c', 43), repeat('d', 43))),
          repeat('c', 43), 'the young flow stays');
SELECT is(auth.purge_flow_states(3900), 0::bigint, 'a second run finds nothing');
SELECT is(auth.purge_flow_states(60), 1::bigint, 'a shorter lifetime takes the young one too');

SELECT * FROM finish();
ROLLBACK;
