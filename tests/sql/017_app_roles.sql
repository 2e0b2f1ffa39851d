-- tests/sql/017_app_roles.sql: the member roles of migrations/017_app_roles.sql,
-- auth.db_role_for(), policies written TO the role they are for, and that the
-- planner can use the owner index for a user's list (no timing: the plan shape).
BEGIN;
SELECT plan(29);

-- ---------------------------------------------------------------------------
-- Roles
-- ---------------------------------------------------------------------------
SELECT has_role(r) FROM unnest(ARRAY['app_admin', 'app_user', 'app_viewer']) AS r ORDER BY r;
SELECT is(
    ARRAY(SELECT rolname::text FROM pg_roles
          WHERE rolname IN ('app_admin', 'app_user', 'app_viewer')
            AND rolinherit AND NOT (rolcanlogin OR rolsuper OR rolbypassrls OR rolcreatedb OR rolcreaterole)
          ORDER BY 1),
    ARRAY['app_admin', 'app_user', 'app_viewer'],
    'the member roles are NOLOGIN INHERIT, not superuser, no BYPASSRLS');
SELECT ok(pg_has_role(r, 'authenticated', 'USAGE'), r || ' inherits authenticated')
FROM unnest(ARRAY['app_admin', 'app_user', 'app_viewer']) AS r ORDER BY r;
SELECT ok(pg_has_role('authenticator', r, 'MEMBER'), 'authenticator may become ' || r)
FROM unnest(ARRAY['app_admin', 'app_user', 'app_viewer']) AS r ORDER BY r;
SELECT ok(NOT has_function_privilege('authenticated', 'auth.db_role_for(text)', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'auth.db_role_for(text)', 'EXECUTE'),
          'API roles cannot call auth.db_role_for (it reads auth.users)');

-- ---------------------------------------------------------------------------
-- auth.db_role_for
-- ---------------------------------------------------------------------------
SELECT tests.create_user('admin@example.test', 'admin') AS admin \gset
SELECT tests.create_user('viewer@example.test', 'viewer') AS viewer \gset
SELECT tests.create_user('alice@example.test', 'user') AS alice \gset
SELECT tests.create_user('norole@example.test', NULL) AS norole \gset
SELECT tests.create_user('banned@example.test', 'admin') AS banned \gset
SELECT tests.create_user('deleted@example.test', 'admin') AS deleted \gset
UPDATE auth.users SET banned_until = now() + interval '1 hour' WHERE id = :'banned';
UPDATE auth.users SET deleted_at = now() WHERE id = :'deleted';

SELECT is(auth.db_role_for(:'admin'), 'app_admin', 'admin -> app_admin');
SELECT is(auth.db_role_for(:'viewer'), 'app_viewer', 'viewer -> app_viewer');
SELECT is(auth.db_role_for(:'alice'), 'app_user', 'user -> app_user');
SELECT is(auth.db_role_for(:'norole'), 'app_user', 'no role -> app_user');
SELECT is(auth.db_role_for(:'banned'), 'anon', 'a banned user -> anon');
SELECT is(auth.db_role_for(:'deleted'), 'anon', 'a deleted user -> anon');
SELECT is(auth.db_role_for(gen_random_uuid()::text), 'anon', 'an unknown sub -> anon');
SELECT is(auth.db_role_for('not-a-uuid''; drop table x; --'), 'anon', 'a sub that is not a UUID -> anon');
SELECT is(auth.db_role_for(NULL), 'anon', 'no sub -> anon');
UPDATE auth.users SET banned_until = now() - interval '1 second' WHERE id = :'banned';
SELECT is(auth.db_role_for(:'banned'), 'app_admin', 'an expired ban no longer counts');
UPDATE auth.users SET raw_app_meta_data = raw_app_meta_data || '{"role":"viewer"}' WHERE id = :'admin';
SELECT is(auth.db_role_for(:'admin'), 'app_viewer', 'a role change counts at once');
UPDATE auth.users SET raw_app_meta_data = raw_app_meta_data || '{"role":"admin"}' WHERE id = :'admin';

-- A forged role in the claims changes nothing: the role comes from auth.users.
SELECT tests.set_request('authenticated',
    tests.claims_for(:'alice') || '{"app_metadata":{"role":"admin"},"user_metadata":{"role":"admin"}}');
SELECT is(current_user::text, 'app_user', 'forged admin claims still run as app_user');
SELECT tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Policies are written TO the role they are for
-- ---------------------------------------------------------------------------
SELECT is_empty($$
    SELECT p.schemaname || '.' || p.tablename || ': ' || p.policyname
    FROM pg_policies p
    WHERE p.schemaname IN ('public', 'storage')
      AND 'authenticated' = ANY (p.roles)
      AND (coalesce(p.qual, '') || coalesce(p.with_check, '')) LIKE '%get_user_role%'$$,
    'no policy TO authenticated tests get_user_role(): each role has its own policies');
SELECT is_empty($$
    SELECT p.tablename || ': ' || p.policyname
    FROM pg_policies p
    WHERE p.schemaname = 'public'
      AND p.tablename IN ('analytics_data', 'campaigns', 'reports', 'templates', 'contacts',
                          'data_sources', 'sms_messages', 'email_messages', 'email_clicks',
                          'sync_logs', 'import_tables', 'imported_data', 'audit_logs', 'app_settings')
      AND NOT (p.roles <@ ARRAY['app_admin', 'app_user', 'app_viewer']::name[])$$,
    'every policy of the owner/role tables is TO app_admin, app_user or app_viewer');

-- ---------------------------------------------------------------------------
-- The planner: a user's newest-first list reads the owner index
-- ---------------------------------------------------------------------------
-- 100 owners of 50 campaigns each (as bench/scenario.sql: few rows per owner).
CREATE TEMP TABLE owners AS
SELECT CASE WHEN i = 1 THEN :'alice'::uuid ELSE tests.create_user('owner' || i || '@example.test', 'user') END AS id,
       i
FROM generate_series(1, 100) AS i;
INSERT INTO public.campaigns (user_id, name, type, created_at)
SELECT o.id, 'c' || o.i || '-' || j, 'email', now() - (j * 100 + o.i) * interval '1 second'
FROM owners o, generate_series(1, 50) AS j;
ANALYZE public.campaigns;

CREATE FUNCTION pg_temp.plan_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE line text; out text := '';
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || sql LOOP
        out := out || line || E'\n';
    END LOOP;
    RETURN out;
END $$;

SELECT tests.authenticate_as(:'alice');
SELECT matches(pg_temp.plan_of('SELECT * FROM public.campaigns ORDER BY created_at DESC LIMIT 20'),
               'Index Scan using idx_campaigns_user_created_at',
               'app_user: the list is a range scan of (user_id, created_at desc)');
SELECT doesnt_match(pg_temp.plan_of('SELECT * FROM public.campaigns ORDER BY created_at DESC LIMIT 20'),
                    'get_user_role|Filter',
                    'app_user: no role test and no row filter left in the plan');
SELECT is((SELECT count(*) FROM public.campaigns), 50::bigint, 'app_user sees exactly its 50 campaigns');
SELECT tests.authenticate_as(:'viewer');
SELECT is((SELECT count(*) FROM public.campaigns), 5000::bigint, 'app_viewer sees all campaigns');
SELECT tests.clear_authentication();

SELECT * FROM finish();
ROLLBACK;
