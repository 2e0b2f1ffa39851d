-- tests/sql/066_ddl_grant_no_reload.sql: privileges changes do not reload the
-- /rest/v1 schema cache; other DDL still does (migrations/066).
BEGIN;
SELECT plan(6);

SELECT is(nullif(current_setting('pgrst.reload_requested', true), ''), NULL, 'nothing asked at the start');

-- a new connection's key table: created, granted, revoked (023)
CREATE TEMPORARY TABLE t066_key (k text);
GRANT INSERT ON pg_temp.t066_key TO service_role;
REVOKE ALL ON pg_temp.t066_key FROM service_role;
SELECT is(nullif(current_setting('pgrst.reload_requested', true), ''), NULL,
          'a temporary table with a GRANT and a REVOKE asks for no reload');

-- a privileges change on a real table changes nothing the cache holds
CREATE TABLE public.t066_real (id int);
SELECT is(current_setting('pgrst.reload_requested', true), 'on', 'a new table asks for a reload');
SELECT set_config('pgrst.reload_requested', '', true);
GRANT SELECT ON public.t066_real TO authenticated;
REVOKE SELECT ON public.t066_real FROM authenticated;
SELECT is(current_setting('pgrst.reload_requested', true), '', 'GRANT and REVOKE on a table ask for none');

ALTER TABLE public.t066_real ADD COLUMN name text;
SELECT is(current_setting('pgrst.reload_requested', true), 'on', 'a new column asks for a reload');
SELECT set_config('pgrst.reload_requested', '', true);
DROP TABLE public.t066_real;
SELECT is(current_setting('pgrst.reload_requested', true), 'on', 'a dropped table asks for a reload');

SELECT * FROM finish();
ROLLBACK;
