-- tests/sql/038_mfa_recovery_factor.sql: the recovery-code factor is listed in
-- the user's factors, gets GoTrue's default name and cannot take another
-- factor's name (migrations/038_mfa_recovery_factor.sql).
BEGIN;
SELECT plan(8);

SELECT set_config('campaignd.encryption_key', 'test-encryption-key-0123456789abcdef', true);
SELECT tests.create_user('cy@example.test', 'user') AS cy \gset
SELECT tests.create_user('di@example.test', 'user') AS di \gset
SELECT gen_random_uuid() AS s_cy \gset
SELECT gen_random_uuid() AS s_di \gset
INSERT INTO auth.sessions (id, user_id, aal) VALUES (:'s_cy', :'cy', 'aal2'), (:'s_di', :'di', 'aal2');
-- a verified TOTP factor each; di's is named like the default recovery set
INSERT INTO auth.mfa_factors (user_id, friendly_name, factor_type, status, secret_encrypted)
VALUES (:'cy', 'phone', 'totp', 'verified', '\x00'), (:'di', 'Recovery codes', 'totp', 'verified', '\x00');

SELECT tests.authenticate_as_service();

CREATE TEMP TABLE g AS
SELECT * FROM auth.mfa_recovery_store(:'cy', :'s_cy', '', ARRAY[repeat('1', 64), repeat('2', 64)], false, NULL);
GRANT SELECT ON g TO service_role;
SELECT is((SELECT status || ':' || friendly_name FROM g), 'ok:Recovery codes',
          'a set generated without a name is called Recovery codes');
SELECT factor_id AS rc FROM g \gset
SELECT is((SELECT jsonb_array_length(auth.user_json(u) -> 'factors') FROM auth.users u WHERE u.id = :'cy'), 2,
          'the user lists both factors');
SELECT is((SELECT f ->> 'factor_type' || ':' || (f ->> 'status') || ':' || (f ->> 'friendly_name')
           FROM auth.users u, jsonb_array_elements(auth.user_json(u) -> 'factors') f
           WHERE u.id = :'cy' AND f ->> 'id' = :'rc'),
          'recovery_code:verified:Recovery codes', 'the recovery-code factor as GoTrue shows it');
SELECT is((SELECT status || ':' || factor_id || ':' || friendly_name
           FROM auth.mfa_recovery_store(:'cy', :'s_cy', 'ignored', ARRAY[repeat('3', 64)], true, NULL)),
          'ok:' || :'rc' || ':Recovery codes', 'regenerating keeps the id and the name');
SELECT is((SELECT total FROM auth.mfa_recovery_status(:'cy')), 1, 'with the new set only');

SELECT is((SELECT status FROM auth.mfa_recovery_store(:'di', :'s_di', '', ARRAY[repeat('1', 64)], false, NULL)),
          'name_conflict', 'the default name cannot take another factor''s name');
SELECT is((SELECT status FROM auth.mfa_recovery_store(:'di', :'s_di', 'phone', ARRAY[repeat('1', 64)], false, NULL)),
          'ok', 'another name can');
SELECT is((SELECT status FROM auth.mfa_enroll_totp(:'di', :'s_di', 'phone', 'JBSWY3DPEHPK3PXP', 10, NULL)),
          'name_conflict', 'nor can a new TOTP factor take the recovery set''s name');

SELECT * FROM finish();
ROLLBACK;
