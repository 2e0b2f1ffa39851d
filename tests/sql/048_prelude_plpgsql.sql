-- tests/sql/048_prelude_plpgsql.sql: the prelude's role lookup in PL/pgSQL
-- (migrations/048_prelude_plpgsql.sql). The functions keep their privileges
-- and answers (017_app_roles.sql and 035_mfa.sql test those too); here: they
-- are PL/pgSQL (plans kept per backend, no parse per request), still SECURITY
-- DEFINER with an empty search_path, and a kept plan never keeps an answer:
-- a role change, a ban or an MFA setting counts on the next call in the same
-- session.
BEGIN;
SELECT plan(27);

SELECT is((SELECT l.lanname::text FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
           WHERE p.oid = f::regprocedure), 'plpgsql', f || ' is PL/pgSQL')
FROM unnest(ARRAY['auth.db_role_for(text)', 'auth.db_role_for_claims(jsonb)',
                  'auth.mfa_required_for_admin()']) AS f ORDER BY f;
SELECT ok((SELECT p.prosecdef AND p.provolatile = 's' AND p.proconfig = ARRAY['search_path=""']
           FROM pg_proc p WHERE p.oid = f::regprocedure),
          f || ' is STABLE SECURITY DEFINER with an empty search_path')
FROM unnest(ARRAY['auth.db_role_for(text)', 'auth.db_role_for_claims(jsonb)',
                  'auth.mfa_required_for_admin()']) AS f ORDER BY f;
SELECT ok(has_function_privilege('authenticator', f, 'EXECUTE')
          AND NOT has_function_privilege('authenticated', f, 'EXECUTE')
          AND NOT has_function_privilege('anon', f, 'EXECUTE')
          AND NOT has_function_privilege('public', f, 'EXECUTE'),
          f || ': authenticator may call it, API roles may not')
FROM unnest(ARRAY['auth.db_role_for(text)', 'auth.db_role_for_claims(jsonb)']) AS f ORDER BY f;

SELECT tests.create_user('ada048@example.test', 'admin') AS ada \gset
SELECT tests.create_user('bob048@example.test', 'user') AS bob \gset
SELECT gen_random_uuid() AS s_ada \gset
SELECT gen_random_uuid() AS s_bob \gset
INSERT INTO auth.sessions (id, user_id) VALUES (:'s_ada', :'ada'), (:'s_bob', :'bob');

-- the same session, one call after another: each answers from the current rows
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', :'bob')), 'app_user', 'a user -> app_user');
UPDATE auth.users SET raw_app_meta_data = raw_app_meta_data || '{"role":"viewer"}' WHERE id = :'bob';
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', :'bob')), 'app_viewer',
          'a role change counts on the next call');
UPDATE auth.users SET banned_until = now() + interval '1 hour' WHERE id = :'bob';
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', :'bob')), 'anon', 'a ban counts on the next call');
UPDATE auth.users SET banned_until = NULL, deleted_at = now() WHERE id = :'bob';
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', :'bob')), 'anon', 'so does a deletion');
UPDATE auth.users SET deleted_at = NULL WHERE id = :'bob';
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', upper(:'bob'))), 'app_viewer',
          'an upper-case UUID names the same user');
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', :'bob' || 'x')), 'anon', 'a longer sub -> anon');
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', ' ' || :'bob')), 'anon', 'a padded sub -> anon');
SELECT is(auth.db_role_for_claims('{}'), 'anon', 'claims without sub -> anon');
SELECT is(auth.db_role_for_claims('[1, 2]'), 'anon', 'claims that are not an object -> anon');
SELECT is(auth.db_role_for_claims(NULL), 'anon', 'no claims -> anon');
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', 42)), 'anon', 'a number as sub -> anon');

-- admins and the MFA setting, in the same session
UPDATE public.app_settings SET mfa_required_for_admin = false;
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', :'ada', 'session_id', :'s_ada')), 'app_admin',
          'setting off: an aal1 admin is app_admin');
SELECT is(auth.mfa_required_for_admin(), false, 'mfa_required_for_admin reads the setting (off)');
UPDATE public.app_settings SET mfa_required_for_admin = true;
SELECT is(auth.mfa_required_for_admin(), true, 'mfa_required_for_admin reads the setting (on)');
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', :'ada', 'session_id', :'s_ada')), 'authenticated',
          'setting on, the next call: an aal1 admin is only authenticated');
UPDATE auth.sessions SET aal = 'aal2' WHERE id = :'s_ada';
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', :'ada', 'session_id', upper(:'s_ada'))), 'app_admin',
          'an aal2 session (its id in any case) makes the admin app_admin again');
UPDATE auth.sessions SET aal = 'aal2' WHERE id = :'s_bob';
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', :'ada', 'session_id', :'s_bob')), 'authenticated',
          'another user''s aal2 session does not count');
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', :'ada', 'session_id', 'x'' or true --')), 'authenticated',
          'a session_id that is not a UUID does not count');
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', :'ada')), 'authenticated',
          'no session_id does not count');

SELECT * FROM finish();
ROLLBACK;
