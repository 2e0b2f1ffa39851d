-- tests/sql/035_mfa.sql: MFA factors, challenges, replay and attempt limits,
-- recovery codes, the amr/aal claims, MFA required for admins, and policies
-- that require aal2 through auth.jwt()->>'aal' (migrations/035_mfa.sql).
BEGIN;
SELECT plan(60);

SELECT has_table('auth', 'mfa_factors', 'auth.mfa_factors exists');
SELECT has_table('auth', 'mfa_challenges', 'auth.mfa_challenges exists');
SELECT has_table('auth', 'mfa_amr_claims', 'auth.mfa_amr_claims exists');
SELECT has_table('auth', 'mfa_recovery_codes', 'auth.mfa_recovery_codes exists');
SELECT ok(NOT has_table_privilege('authenticated', 'auth.mfa_factors', 'SELECT')
          AND NOT has_table_privilege('anon', 'auth.mfa_recovery_codes', 'SELECT'),
          'the API roles cannot read factors or recovery codes');
SELECT ok(NOT has_function_privilege('authenticated', 'auth.mfa_totp_state(uuid, uuid, uuid)', 'EXECUTE'),
          'nor call the function that decrypts a secret');

SELECT set_config('campaignd.encryption_key', 'test-encryption-key-0123456789abcdef', true);
SELECT tests.create_user('ada@example.test', 'admin') AS ada \gset
SELECT tests.create_user('bob@example.test', 'user') AS bob \gset
SELECT gen_random_uuid() AS s_ada \gset
SELECT gen_random_uuid() AS s_ada2 \gset
SELECT gen_random_uuid() AS s_bob \gset
INSERT INTO auth.sessions (id, user_id) VALUES (:'s_ada', :'ada'), (:'s_ada2', :'ada'), (:'s_bob', :'bob');

SELECT tests.authenticate_as_service();

-- enrolment: the secret is stored encrypted, and read back in clear by the server only
CREATE TEMP TABLE f AS
SELECT * FROM auth.mfa_enroll_totp(:'ada', :'s_ada', 'phone app', 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP', 10, '203.0.113.7');
GRANT SELECT ON f TO service_role;
SELECT is((SELECT status FROM f), 'ok', 'a TOTP factor is enrolled');
SELECT factor_id AS fa FROM f \gset
SELECT is((SELECT status::text FROM auth.mfa_factors WHERE id = :'fa'), 'unverified', 'it starts unverified');
SELECT ok((SELECT position(convert_to('JBSWY3DP', 'UTF8') IN secret_encrypted) = 0 FROM auth.mfa_factors WHERE id = :'fa'),
          'the secret is not stored in clear');
SELECT is((SELECT status FROM auth.mfa_enroll_totp(:'ada', :'s_ada', 'phone app', 'JBSWY3DPEHPK3PXP', 10, NULL)),
          'name_conflict', 'friendly names are unique per user');
SELECT is((SELECT status FROM auth.mfa_enroll_totp(:'ada', gen_random_uuid(), 'x', 'JBSWY3DPEHPK3PXP', 10, NULL)),
          'session_not_found', 'enrolment needs a live session');

-- challenges: only for the owner's factor
SELECT is((SELECT status FROM auth.mfa_challenge(:'bob', :'s_bob', :'fa', '198.51.100.1', 300)),
          'not_found', 'another user cannot challenge the factor');
SELECT challenge_id AS c1 FROM auth.mfa_challenge(:'ada', :'s_ada', :'fa', '203.0.113.7', 300) \gset
SELECT is((SELECT status || ':' || secret || ':' || coalesce(last_used_step::text, '-')
           FROM auth.mfa_totp_state(:'ada', :'fa', :'c1')),
          'ok:JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP:-', 'the server reads the secret back for the owner');
SELECT is((SELECT status FROM auth.mfa_totp_state(:'bob', :'fa', :'c1')), 'not_found',
          'and for nobody else');

-- a wrong code counts; a right one raises the session
SELECT is(auth.mfa_verify_totp(:'ada', :'s_ada', :'fa', :'c1', NULL, repeat('a', 64), 3, 600, NULL),
          'invalid', 'a wrong code is refused');
SELECT is((SELECT failed_attempts FROM auth.mfa_factors WHERE id = :'fa'), 1, 'and counted');
SELECT is(auth.mfa_verify_totp(:'bob', :'s_bob', :'fa', :'c1', 1000, repeat('b', 64), 3, 600, NULL),
          'not_found', 'another user cannot verify the factor');
SELECT is(auth.mfa_verify_totp(:'ada', :'s_ada', :'fa', :'c1', 1000, repeat('c', 64), 3, 600, NULL),
          'ok', 'the right step verifies');
SELECT is((SELECT status::text || ':' || last_used_step || ':' || failed_attempts FROM auth.mfa_factors WHERE id = :'fa'),
          'verified:1000:0', 'the factor is verified, the step kept, the count reset');
SELECT is((SELECT aal::text FROM auth.sessions WHERE id = :'s_ada'), 'aal2', 'the session is aal2');
SELECT ok(NOT EXISTS (SELECT 1 FROM auth.sessions WHERE id = :'s_ada2'),
          'the user''s other aal1 sessions end');
SELECT is((SELECT count(*)::int FROM auth.refresh_tokens WHERE session_id = :'s_ada' AND NOT revoked
           AND token = repeat('c', 64)), 1, 'the session gets the new refresh token');
SELECT is((SELECT auth.access_claims(u, :'s_ada', 1, 2, 'iss') ->> 'aal' FROM auth.users u WHERE u.id = :'ada'),
          'aal2', 'the access token says aal2');
SELECT is((SELECT array_agg(m ->> 'method' ORDER BY m ->> 'method')
           FROM auth.users u, jsonb_array_elements(auth.access_claims(u, :'s_ada', 1, 2, 'iss') -> 'amr') m
           WHERE u.id = :'ada'),
          ARRAY['password', 'totp'], 'amr lists password and totp');
SELECT is((SELECT auth.access_claims(u, :'s_bob', 1, 2, 'iss') -> 'amr' -> 0 ->> 'method' FROM auth.users u WHERE u.id = :'bob'),
          'password', 'a session without MFA has amr password');
SELECT is((SELECT auth.user_json(u) -> 'factors' -> 0 ->> 'status' FROM auth.users u WHERE u.id = :'ada'),
          'verified', 'the user JSON lists the factor');
SELECT ok((SELECT NOT (auth.user_json(u) ? 'factors') FROM auth.users u WHERE u.id = :'bob'),
          'and omits factors when there is none');

-- replay: the same challenge, or the same step on a new challenge
SELECT is(auth.mfa_verify_totp(:'ada', :'s_ada', :'fa', :'c1', 1001, repeat('d', 64), 3, 600, NULL),
          'challenge_used', 'a challenge verifies once');
SELECT challenge_id AS c2 FROM auth.mfa_challenge(:'ada', :'s_ada', :'fa', NULL, 300) \gset
SELECT is(auth.mfa_verify_totp(:'ada', :'s_ada', :'fa', :'c2', 1000, repeat('d', 64), 3, 600, NULL),
          'replay', 'an accepted step is never accepted again');
SELECT is(auth.mfa_verify_totp(:'ada', :'s_ada', :'fa', :'c2', 999, repeat('d', 64), 3, 600, NULL),
          'replay', 'nor an earlier one');
SELECT is(auth.mfa_verify_totp(:'ada', :'s_ada', :'fa', :'c2', NULL, repeat('d', 64), 3, 600, NULL),
          'invalid', 'a third failure in a row');
SELECT ok((SELECT locked_until > now() FROM auth.mfa_factors WHERE id = :'fa'), 'locks the factor');
SELECT is((SELECT status FROM auth.mfa_totp_state(:'ada', :'fa', :'c2')), 'locked', 'the lock holds');
SELECT is(auth.mfa_verify_totp(:'ada', :'s_ada', :'fa', :'c2', 1001, repeat('d', 64), 3, 600, NULL),
          'locked', 'even the right code waits for the lock');
UPDATE auth.mfa_factors SET locked_until = now() - interval '1 second', failed_attempts = 0 WHERE id = :'fa';
UPDATE auth.mfa_challenges SET created_at = now() - interval '10 minutes', expires_at = now() - interval '5 minutes' WHERE id = :'c2';
SELECT is(auth.mfa_verify_totp(:'ada', :'s_ada', :'fa', :'c2', 1001, repeat('d', 64), 3, 600, NULL),
          'expired', 'an expired challenge is refused');

-- unenrol needs aal2
SELECT gen_random_uuid() AS s_ada3 \gset
INSERT INTO auth.sessions (id, user_id) VALUES (:'s_ada3', :'ada');
SELECT is(auth.mfa_unenroll(:'ada', :'s_ada3', :'fa', NULL), 'insufficient_aal',
          'an aal1 session cannot unenrol a verified factor');
SELECT is(auth.mfa_unenroll(:'bob', :'s_bob', :'fa', NULL), 'not_found',
          'another user cannot unenrol it');

-- recovery codes
SELECT is((SELECT status FROM auth.mfa_recovery_store(:'ada', :'s_ada3', '', ARRAY[repeat('1', 64)], false, NULL)),
          'insufficient_aal', 'generating recovery codes needs aal2');
SELECT is((SELECT status FROM auth.mfa_recovery_store(:'bob', :'s_bob', '', ARRAY[repeat('1', 64)], false, NULL)),
          'insufficient_aal', 'so a user without MFA cannot generate them');
SELECT is((SELECT status FROM auth.mfa_recovery_store(:'ada', :'s_ada', '',
           ARRAY(SELECT repeat(i::text, 64) FROM generate_series(0, 9) i), false, '203.0.113.7')),
          'ok', 'an aal2 session generates ten codes');
SELECT is((SELECT total || '/' || remaining FROM auth.mfa_recovery_status(:'ada')), '10/10', 'ten, none used');
SELECT is((SELECT status FROM auth.mfa_recovery_store(:'ada', :'s_ada', '', ARRAY[repeat('1', 64)], false, NULL)),
          'exists', 'a second set needs regenerate');
SELECT is((SELECT status || ':' || remaining FROM auth.mfa_recovery_verify(:'ada', :'s_ada3', repeat('3', 64), repeat('e', 64), 3, 600, NULL)),
          'ok:9', 'a code raises the aal1 session');
SELECT is((SELECT array_agg(m ->> 'method' ORDER BY m ->> 'method')
           FROM auth.users u, jsonb_array_elements(auth.access_claims(u, :'s_ada3', 1, 2, 'iss') -> 'amr') m
           WHERE u.id = :'ada'),
          ARRAY['mfa/recovery_code', 'password'], 'with amr mfa/recovery_code');
SELECT is((SELECT status FROM auth.mfa_recovery_verify(:'ada', :'s_ada3', repeat('3', 64), repeat('f', 64), 3, 600, NULL)),
          'invalid', 'a code works once');
SELECT is((SELECT count(*)::int FROM auth.audit_log_entries
           WHERE payload ->> 'action' IN ('recovery_code_verified', 'recovery_code_failed')
             AND payload ->> 'actor_id' = :'ada'), 2, 'every use is audited');
SELECT is(auth.mfa_unenroll(:'ada', :'s_ada', :'fa', NULL), 'sole_factor',
          'the TOTP factor cannot go while recovery codes would be left alone');
SELECT is((SELECT status FROM auth.mfa_recovery_store(:'ada', :'s_ada', '', ARRAY[repeat('a', 64)], true, NULL)),
          'ok', 'regenerate replaces the set');
SELECT is((SELECT total || '/' || remaining FROM auth.mfa_recovery_status(:'ada')), '1/1', 'the old codes are void');
SELECT is((SELECT status FROM auth.mfa_recovery_delete(:'ada', :'s_ada', NULL)), 'ok', 'an aal2 session deletes them');
SELECT is((SELECT aal::text FROM auth.sessions WHERE id = :'s_ada3'), 'aal1',
          'sessions raised by recovery codes drop back to aal1');
SELECT is(auth.mfa_unenroll(:'ada', :'s_ada', :'fa', NULL), 'ok', 'then the factor can be unenrolled');
SELECT is((SELECT aal::text FROM auth.sessions WHERE id = :'s_ada'), 'aal1', 'and its sessions are aal1 again');

-- MFA required for admins: an admin below aal2 runs as plain authenticated
SELECT tests.clear_authentication();
UPDATE auth.sessions SET aal = 'aal2' WHERE id = :'s_ada';
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', :'ada', 'session_id', :'s_ada3')), 'app_admin',
          'setting off: an aal1 admin is app_admin');
UPDATE public.app_settings SET mfa_required_for_admin = true;
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', :'ada', 'session_id', :'s_ada3')), 'authenticated',
          'setting on: an aal1 admin is only authenticated');
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', :'ada', 'session_id', :'s_ada', 'aal', 'aal1')), 'app_admin',
          'an admin whose session is aal2 is app_admin');
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', :'ada', 'session_id', :'s_bob', 'aal', 'aal2')), 'authenticated',
          'a claimed aal2 or another user''s session does not count');
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', :'bob', 'session_id', :'s_bob')), 'app_user',
          'other roles are unaffected');

-- policies can require aal2 through auth.jwt()->>'aal'
CREATE TABLE public.mfa_only (id int);
ALTER TABLE public.mfa_only ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON public.mfa_only TO authenticated;
CREATE POLICY mfa_only_aal2 ON public.mfa_only FOR SELECT TO authenticated
    USING ((SELECT auth.jwt() ->> 'aal') = 'aal2');
INSERT INTO public.mfa_only VALUES (1);
SELECT tests.set_request('authenticated', tests.claims_for(:'bob'));
SELECT is((SELECT count(*)::int FROM public.mfa_only), 0, 'an aal1 token sees nothing');
SELECT tests.set_request('authenticated', tests.claims_for(:'bob') || '{"aal": "aal2"}');
SELECT is((SELECT count(*)::int FROM public.mfa_only), 1, 'an aal2 token sees the row');

SELECT * FROM finish();
ROLLBACK;
