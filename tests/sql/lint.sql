-- tests/sql/lint.sql: schema-wide security rules, checked against the catalogue so
-- they also cover every table, view, function and policy added by later migrations.
--
-- Each rule is a query returning the offending objects (empty = pass). The second
-- half proves each rule can fail: inside a savepoint it creates one offending
-- object per rule and checks that the rule names it.
BEGIN;
SELECT plan(19);

-- Objects that belong to an extension (pgTAP, pgcrypto) are not ours to lint.
CREATE FUNCTION pg_temp.is_extension_member(cls regclass, obj oid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM pg_depend d
                   WHERE d.classid = cls AND d.objid = obj AND d.deptype = 'e')
$$;

-- 1. RLS is enabled on every table in public and auth.
CREATE FUNCTION pg_temp.lint_tables_without_rls() RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT c.oid::regclass::text
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname IN ('public', 'auth') AND c.relkind IN ('r', 'p')
      AND NOT c.relrowsecurity
      AND NOT pg_temp.is_extension_member('pg_class', c.oid)
    ORDER BY 1
$$;

-- 2. Every SECURITY DEFINER function in public and auth pins its search_path.
CREATE FUNCTION pg_temp.lint_definers_without_search_path() RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT p.oid::regprocedure::text
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname IN ('public', 'auth') AND p.prosecdef
      AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) AS cfg WHERE cfg LIKE 'search_path=%')
      AND NOT pg_temp.is_extension_member('pg_proc', p.oid)
    ORDER BY 1
$$;

-- 3. A view in public owned by a superuser or BYPASSRLS role would read its tables
-- past RLS, unless it is security_invoker.
CREATE FUNCTION pg_temp.lint_rls_bypassing_views() RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT c.oid::regclass::text
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_roles r ON r.oid = c.relowner
    WHERE n.nspname = 'public' AND c.relkind = 'v'
      AND (r.rolsuper OR r.rolbypassrls)
      AND NOT EXISTS (SELECT 1 FROM unnest(c.reloptions) AS o
                      WHERE o ~* '^security_invoker=(true|on|yes|1)$')
      AND NOT pg_temp.is_extension_member('pg_class', c.oid)
    ORDER BY 1
$$;

-- 4. Materialized views ignore RLS entirely: the API roles must not read them.
CREATE FUNCTION pg_temp.lint_readable_matviews() RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT c.oid::regclass::text || ' by ' || r.rolname
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace,
         (VALUES ('anon'), ('authenticated')) AS r(rolname)
    WHERE n.nspname = 'public' AND c.relkind = 'm'
      AND has_table_privilege(r.rolname, c.oid, 'SELECT')
    ORDER BY 1
$$;

-- 5. No policy trusts the user-writable metadata for anything.
CREATE FUNCTION pg_temp.lint_policies_reading_user_metadata() RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT p.schemaname || '.' || p.tablename || ': ' || p.policyname
    FROM pg_policies p
    WHERE coalesce(p.qual, '') ~* '(raw_)?user_meta(_)?data'
       OR coalesce(p.with_check, '') ~* '(raw_)?user_meta(_)?data'
    ORDER BY 1
$$;

-- 6. Policies call get_user_role() as (select public.get_user_role()), so it runs
-- once per statement: no bare call may remain once the wrapped ones are removed.
CREATE FUNCTION pg_temp.lint_policies_with_bare_get_user_role() RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT p.schemaname || '.' || p.tablename || ': ' || p.policyname
    FROM pg_policies p
    WHERE regexp_replace(coalesce(p.qual, '') || ' ' || coalesce(p.with_check, ''),
                         'SELECT (public\.)?get_user_role\(\)', '', 'gi')
          ~* 'get_user_role\('
    ORDER BY 1
$$;

-- 7. anon and authenticated hold no privilege on any auth table (the server's
-- auth endpoints run as service_role).
CREATE FUNCTION pg_temp.lint_auth_tables_open_to_api_roles() RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT c.oid::regclass::text || ' to ' || a.grantee::regrole::text || ': ' || a.privilege_type
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace,
         aclexplode(c.relacl) AS a
    WHERE n.nspname = 'auth' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
      AND a.grantee IN ('anon'::regrole, 'authenticated'::regrole, 0)
    ORDER BY 1
$$;

-- 8. TRUNCATE and TRIGGER are not subject to RLS: never granted to anon,
-- authenticated or PUBLIC on tables in public; nor is anything granted to PUBLIC.
CREATE FUNCTION pg_temp.lint_public_grants_beyond_rls() RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT c.oid::regclass::text || ' to ' ||
           CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END ||
           ': ' || a.privilege_type
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace,
         aclexplode(c.relacl) AS a
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND NOT pg_temp.is_extension_member('pg_class', c.oid)
      AND (a.grantee = 0
           OR (a.grantee IN ('anon'::regrole, 'authenticated'::regrole)
               AND a.privilege_type IN ('TRUNCATE', 'TRIGGER')))
    ORDER BY 1
$$;

-- ---------------------------------------------------------------------------
-- The schema as migrated passes every rule
-- ---------------------------------------------------------------------------
SELECT is(ARRAY(SELECT pg_temp.lint_tables_without_rls()), '{}'::text[],
          'RLS is enabled on every table in public and auth');
SELECT is(ARRAY(SELECT pg_temp.lint_definers_without_search_path()), '{}'::text[],
          'every SECURITY DEFINER function in public and auth sets search_path');
SELECT is(ARRAY(SELECT pg_temp.lint_rls_bypassing_views()), '{}'::text[],
          'no view in public bypasses RLS through a privileged owner');
SELECT is(ARRAY(SELECT pg_temp.lint_readable_matviews()), '{}'::text[],
          'no materialized view in public is readable by anon or authenticated');
SELECT is(ARRAY(SELECT pg_temp.lint_policies_reading_user_metadata()), '{}'::text[],
          'no policy reads user_metadata or raw_user_meta_data');
SELECT is(ARRAY(SELECT pg_temp.lint_policies_with_bare_get_user_role()), '{}'::text[],
          'every policy calls get_user_role() as (select public.get_user_role())');
SELECT is(ARRAY(SELECT pg_temp.lint_auth_tables_open_to_api_roles()), '{}'::text[],
          'anon and authenticated have no privileges on auth tables');
SELECT is(ARRAY(SELECT pg_temp.lint_public_grants_beyond_rls()), '{}'::text[],
          'no TRUNCATE/TRIGGER for API roles and no PUBLIC grants on public tables');
SELECT cmp_ok((SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname IN ('public', 'auth') AND c.relkind = 'r'),
              '>=', 7::bigint, 'the rules looked at the migrated tables');

-- ---------------------------------------------------------------------------
-- Each rule catches an offender
-- ---------------------------------------------------------------------------
SAVEPOINT offenders;
CREATE TABLE public.lint_probe_no_rls (id integer);
CREATE TABLE auth.lint_probe_no_rls (id integer);
CREATE FUNCTION public.lint_probe_definer() RETURNS integer
    LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
CREATE VIEW public.lint_probe_view AS SELECT id FROM public.audit_logs;
CREATE VIEW public.lint_probe_invoker_view WITH (security_invoker = true) AS
    SELECT id FROM public.audit_logs;
CREATE MATERIALIZED VIEW public.lint_probe_matview AS SELECT id FROM public.audit_logs;
GRANT SELECT ON public.lint_probe_matview TO authenticated;
CREATE POLICY lint_probe_metadata ON public.audit_logs FOR SELECT TO authenticated
    USING ((auth.jwt() -> 'user_metadata' ->> 'role') = 'admin');
CREATE POLICY lint_probe_bare_role ON public.audit_logs FOR SELECT TO authenticated
    USING (public.get_user_role() = 'admin');
GRANT SELECT ON auth.sessions TO authenticated;
GRANT TRUNCATE ON public.audit_logs TO authenticated;

-- pgTAP records results in tables that a ROLLBACK TO SAVEPOINT would undo, so the
-- rules' answers are captured into psql variables and asserted after the rollback.
SELECT ARRAY(SELECT pg_temp.lint_tables_without_rls())::text AS r1,
       ARRAY(SELECT pg_temp.lint_definers_without_search_path())::text AS r2,
       ARRAY(SELECT pg_temp.lint_rls_bypassing_views())::text AS r3,
       ARRAY(SELECT pg_temp.lint_readable_matviews())::text AS r4,
       ARRAY(SELECT pg_temp.lint_policies_reading_user_metadata())::text AS r5,
       ARRAY(SELECT pg_temp.lint_policies_with_bare_get_user_role())::text AS r6,
       ARRAY(SELECT pg_temp.lint_auth_tables_open_to_api_roles())::text AS r7,
       ARRAY(SELECT pg_temp.lint_public_grants_beyond_rls())::text AS r8
\gset
ROLLBACK TO SAVEPOINT offenders;

SAVEPOINT public_grant;
CREATE TABLE public.lint_probe_public_grant (id integer);
ALTER TABLE public.lint_probe_public_grant ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON public.lint_probe_public_grant TO PUBLIC;
SELECT ARRAY(SELECT pg_temp.lint_public_grants_beyond_rls())::text AS r8_public,
       ARRAY(SELECT pg_temp.lint_tables_without_rls())::text AS r1_with_rls
\gset
ROLLBACK TO SAVEPOINT public_grant;

SELECT is(:'r1'::text[], ARRAY['auth.lint_probe_no_rls', 'lint_probe_no_rls'],
          'rule 1 names tables without RLS in public and auth');
SELECT is(:'r2'::text[], ARRAY['lint_probe_definer()'],
          'rule 2 names a SECURITY DEFINER function without search_path');
SELECT is(:'r3'::text[], ARRAY['lint_probe_view'],
          'rule 3 names a superuser-owned view, not the security_invoker one');
SELECT is(:'r4'::text[], ARRAY['lint_probe_matview by authenticated'],
          'rule 4 names a materialized view readable by authenticated');
SELECT is(:'r5'::text[], ARRAY['public.audit_logs: lint_probe_metadata'],
          'rule 5 names a policy reading user_metadata');
SELECT is(:'r6'::text[], ARRAY['public.audit_logs: lint_probe_bare_role'],
          'rule 6 names a policy with a bare get_user_role() call, not the wrapped one');
SELECT is(:'r7'::text[], ARRAY['auth.sessions to authenticated: SELECT'],
          'rule 7 names an auth table granted to authenticated');
SELECT is(:'r8'::text[], ARRAY['audit_logs to authenticated: TRUNCATE'],
          'rule 8 names TRUNCATE granted to authenticated');
SELECT is(:'r8_public'::text[], ARRAY['lint_probe_public_grant to PUBLIC: SELECT'],
          'rule 8 names a grant to PUBLIC');
SELECT is(:'r1_with_rls'::text[], '{}'::text[], 'rule 1 accepts a table with RLS enabled');

SELECT * FROM finish();
ROLLBACK;
