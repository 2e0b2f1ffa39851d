-- tests/sql/000_platform.sql: roles, JWT helpers, get_user_role() and the auth
-- tables of migrations/000_platform.sql.
BEGIN;
SELECT plan(61);

-- ---------------------------------------------------------------------------
-- Roles and their attributes
-- ---------------------------------------------------------------------------
SELECT has_role('anon');
SELECT has_role('authenticated');
SELECT has_role('service_role');
SELECT has_role('authenticator');

SELECT is(
    ARRAY(SELECT rolname::text FROM pg_roles
          WHERE rolname IN ('anon', 'authenticated', 'service_role', 'authenticator')
            AND rolbypassrls ORDER BY 1),
    ARRAY['service_role'],
    'of the API roles only service_role has BYPASSRLS');
SELECT is(
    ARRAY(SELECT rolname::text FROM pg_roles
          WHERE rolname IN ('anon', 'authenticated', 'service_role', 'authenticator')
            AND rolcanlogin ORDER BY 1),
    ARRAY['authenticator'],
    'only authenticator can log in');
SELECT is(
    ARRAY(SELECT rolname::text FROM pg_roles
          WHERE rolname IN ('anon', 'authenticated', 'service_role', 'authenticator')
            AND (rolinherit OR rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication)
          ORDER BY 1),
    '{}'::text[],
    'API roles are NOINHERIT, not superuser, cannot create databases, roles or replicate');
SELECT is(
    ARRAY(SELECT g.rolname::text
          FROM pg_auth_members m
          JOIN pg_roles g ON g.oid = m.roleid
          JOIN pg_roles u ON u.oid = m.member
          WHERE u.rolname = 'authenticator' ORDER BY 1),
    ARRAY['anon', 'app_admin', 'app_user', 'app_viewer', 'authenticated', 'service_role'],
    'authenticator is a member of exactly the API roles and the app_* member roles (017)');
SELECT is(
    ARRAY(SELECT u.rolname::text
          FROM pg_auth_members m
          JOIN pg_roles g ON g.oid = m.roleid
          JOIN pg_roles u ON u.oid = m.member
          WHERE g.rolname IN ('anon', 'authenticated', 'service_role') ORDER BY 1),
    ARRAY['app_admin', 'app_user', 'app_viewer', 'authenticator', 'authenticator', 'authenticator'],
    'nobody but authenticator (and, of authenticated, the app_* roles) is a member of the API roles');

SELECT ok(has_schema_privilege(r, s, 'USAGE'), r || ' has USAGE on ' || s)
FROM unnest(ARRAY['anon', 'authenticated', 'service_role']) AS r,
     unnest(ARRAY['public', 'auth', 'extensions']) AS s
ORDER BY r, s;
SELECT ok(NOT has_schema_privilege(r, s, 'CREATE'), r || ' cannot CREATE in ' || s)
FROM unnest(ARRAY['anon', 'authenticated']) AS r,
     unnest(ARRAY['public', 'auth']) AS s
ORDER BY r, s;

SELECT is_empty(
    $$SELECT d.defaclobjtype, a.grantee::regrole::text
      FROM pg_default_acl d
      JOIN pg_namespace n ON n.oid = d.defaclnamespace,
           aclexplode(d.defaclacl) a
      WHERE n.nspname = 'public'
        AND a.grantee IN ('anon'::regrole, 'authenticated'::regrole, 0)$$,
    'no default privileges in public for anon, authenticated or PUBLIC');

SELECT has_extension('extensions', 'pgcrypto', 'pgcrypto lives in schema extensions');

-- ---------------------------------------------------------------------------
-- auth.uid(), auth.role(), auth.email(), auth.jwt()
-- ---------------------------------------------------------------------------
SELECT ok(auth.uid() IS NULL AND auth.role() IS NULL AND auth.jwt() IS NULL,
          'without claims auth.uid(), auth.role() and auth.jwt() are NULL');

SELECT tests.set_claims('{"sub":"6f1d8c1e-2b4a-4c3e-9a57-0d3f6b2a1c11","role":"authenticated",
    "email":"claims@example.test","session_id":"s-1","app_metadata":{"role":"viewer"}}');
SELECT is(auth.uid(), '6f1d8c1e-2b4a-4c3e-9a57-0d3f6b2a1c11'::uuid, 'auth.uid() reads sub');
SELECT is(auth.role(), 'authenticated', 'auth.role() reads role');
SELECT is(auth.email(), 'claims@example.test', 'auth.email() reads email');
SELECT is(auth.jwt() -> 'app_metadata' ->> 'role', 'viewer', 'auth.jwt() returns the whole payload');
SELECT is(public.get_user_role(), NULL,
          'get_user_role() is NULL for a token whose user does not exist');
SELECT tests.set_claims(NULL);

-- ---------------------------------------------------------------------------
-- public.get_user_role(): the authoritative role
-- ---------------------------------------------------------------------------
SELECT tests.create_user('admin@example.test', 'admin') AS admin_id \gset
SELECT tests.create_user('user@example.test', 'user') AS user_id \gset
SELECT tests.create_user('viewer@example.test', 'viewer') AS viewer_id \gset
SELECT tests.create_user('norole@example.test', NULL) AS norole_id \gset

SELECT tests.authenticate_as(:'admin_id');
SELECT is(public.get_user_role(), 'admin', 'an admin gets admin');
SELECT is(auth.uid(), :'admin_id'::uuid, 'authenticate_as sets sub');
SELECT is(current_user::text, 'app_admin', 'authenticate_as switches an admin to app_admin');
SELECT tests.authenticate_as(:'user_id');
SELECT is(public.get_user_role(), 'user', 'a user gets user');
SELECT tests.authenticate_as(:'viewer_id');
SELECT is(public.get_user_role(), 'viewer', 'a viewer gets viewer');
SELECT tests.authenticate_as(:'norole_id');
SELECT is(public.get_user_role(), 'user', 'a user without a role gets user');
SELECT tests.authenticate_as_anon();
SELECT is(public.get_user_role(), NULL, 'anon gets NULL');
SELECT tests.authenticate_as_service();
SELECT is(public.get_user_role(), NULL, 'service_role (no sub) gets NULL');
SELECT is(current_user::text, 'service_role', 'authenticate_as_service switches to service_role');

-- The forged-role attack: the user writes role admin into user_metadata (which
-- signUp/updateUser let anyone do), and even presents it in the claims.
SELECT tests.clear_authentication();
UPDATE auth.users SET raw_user_meta_data = '{"role":"admin","first_name":"Mallory"}'
WHERE id = :'user_id';
SELECT tests.authenticate_as(:'user_id');
SELECT tests.set_claims(auth.jwt() || '{"user_metadata":{"role":"admin"},"app_metadata":{"role":"admin"}}');
SELECT is(auth.jwt() -> 'user_metadata' ->> 'role', 'admin', 'the forged claim is present');
SELECT is(public.get_user_role(), 'user',
          'a user with role admin in user_metadata and in the claims still gets user');

SELECT tests.clear_authentication();
SELECT is(current_user::text, session_user::text, 'clear_authentication returns to the session user');
SELECT ok(auth.jwt() IS NULL, 'clear_authentication clears the claims');

UPDATE auth.users SET deleted_at = now() WHERE id = :'viewer_id';
SELECT tests.authenticate_as(:'viewer_id');
SELECT is(public.get_user_role(), NULL, 'a deleted user gets NULL');
SELECT tests.clear_authentication();

SELECT throws_ok(
    $$UPDATE auth.users SET raw_app_meta_data = '{"role":"superadmin"}' WHERE email = 'user@example.test'$$,
    '23514', NULL, 'raw_app_meta_data.role must be admin, user or viewer');
SELECT throws_ok(
    $$INSERT INTO auth.users (email) VALUES ('Admin@Example.TEST')$$,
    '23505', NULL, 'e-mail addresses are unique case-insensitively');

SELECT is(
    (SELECT array[p.prosecdef::text, array_to_string(p.proconfig, ',')]
     FROM pg_proc p WHERE p.oid = 'public.get_user_role()'::regprocedure),
    ARRAY['true', 'search_path=""'],
    'get_user_role() is SECURITY DEFINER with an empty search_path');

-- ---------------------------------------------------------------------------
-- auth tables: RLS on, closed to anon and authenticated, open to service_role
-- ---------------------------------------------------------------------------
SELECT is(
    ARRAY(SELECT c.relname::text FROM pg_class c
          WHERE c.oid IN ('auth.users'::regclass, 'auth.identities'::regclass,
                          'auth.sessions'::regclass, 'auth.refresh_tokens'::regclass,
                          'auth.audit_log_entries'::regclass)
            AND c.relrowsecurity ORDER BY 1),
    ARRAY['audit_log_entries', 'identities', 'refresh_tokens', 'sessions', 'users'],
    'RLS is enabled on the auth tables');

SELECT tests.authenticate_as_anon();
SELECT throws_ok('SELECT 1 FROM auth.users', '42501', NULL, 'anon cannot select auth.users');
SELECT throws_ok('SELECT 1 FROM auth.identities', '42501', NULL, 'anon cannot select auth.identities');
SELECT throws_ok('SELECT 1 FROM auth.sessions', '42501', NULL, 'anon cannot select auth.sessions');
SELECT throws_ok('SELECT 1 FROM auth.refresh_tokens', '42501', NULL, 'anon cannot select auth.refresh_tokens');
SELECT throws_ok('SELECT 1 FROM auth.audit_log_entries', '42501', NULL, 'anon cannot select auth.audit_log_entries');

SELECT tests.authenticate_as(:'admin_id');
SELECT throws_ok('SELECT 1 FROM auth.users', '42501', NULL, 'authenticated (even admin) cannot select auth.users');
SELECT throws_ok('SELECT 1 FROM auth.identities', '42501', NULL, 'authenticated cannot select auth.identities');
SELECT throws_ok('SELECT 1 FROM auth.sessions', '42501', NULL, 'authenticated cannot select auth.sessions');
SELECT throws_ok('SELECT 1 FROM auth.refresh_tokens', '42501', NULL, 'authenticated cannot select auth.refresh_tokens');
SELECT throws_ok('SELECT 1 FROM auth.audit_log_entries', '42501', NULL, 'authenticated cannot select auth.audit_log_entries');
SELECT throws_ok(
    format($$UPDATE auth.users SET raw_app_meta_data = '{"role":"admin"}' WHERE id = %L$$, :'admin_id'),
    '42501', NULL, 'authenticated cannot write auth.users');

SELECT tests.authenticate_as_service();
SELECT is((SELECT count(*) FROM auth.users WHERE email LIKE '%@example.test'), 4::bigint,
          'service_role reads auth.users');
SELECT lives_ok(
    $$WITH s AS (INSERT INTO auth.sessions (user_id) SELECT id FROM auth.users
                 WHERE email = 'user@example.test' RETURNING id)
      INSERT INTO auth.refresh_tokens (token, user_id, session_id)
      SELECT 'tok-000-test', 'x', id FROM s$$,
    'service_role writes sessions and refresh tokens');

SELECT tests.clear_authentication();
SELECT * FROM finish();
ROLLBACK;
