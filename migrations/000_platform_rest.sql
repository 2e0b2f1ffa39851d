-- 000_platform_rest.sql: what the PostgREST-compatible data API (/rest/v1) needs in the
-- database.
--
--   * schema pgrst: helpers the generated SQL calls (never exposed through /rest/v1, which
--     serves only `public`):
--       - pgrst.check_result(n, singular, max_affected): raises the PostgREST errors
--         PGRST116 (Accept: application/vnd.pgrst.object+json with n <> 1 rows) and PGRST124
--         (more rows than Prefer: max-affected with handling=strict) INSIDE the request's
--         transaction, so a mutation that breaks them is rolled back. The error uses
--         PostgREST's `RAISE SQLSTATE 'PGRST'` convention (JSON message and detail), which
--         the server turns into the HTTP status and body.
--       - pgrst.csv_header(json) / pgrst.csv_row(json): RFC 4180 quoting for Accept: text/csv.
--   * the schema cache reload: an event trigger on ddl_command_end and sql_drop sends
--     NOTIFY pgrst, 'reload schema', so a table created at run time (data imports do this)
--     is usable through /rest/v1 at once. Creating an event trigger needs a superuser: when
--     this migration runs as one (the embedded database) the trigger is created; otherwise it
--     is skipped with a NOTICE and whoever changes the schema must run
--         NOTIFY pgrst, 'reload schema';
--     (campaignd also re-checks the catalog when a request names an unknown table or
--     function, so a missing trigger only delays changes to existing objects).
-- Applied once, inside one transaction, by the database owner.

create schema if not exists pgrst;
revoke all on schema pgrst from public;
grant usage on schema pgrst to anon, authenticated, service_role;

-- Returns n, or raises PGRST116 / PGRST124 (see above). max_affected NULL: no limit.
create or replace function pgrst.check_result(n bigint, singular boolean, max_affected bigint)
returns bigint
language plpgsql
set search_path = ''
as $$
begin
    if singular and n <> 1 then
        raise sqlstate 'PGRST' using
            message = pg_catalog.json_build_object(
                'code', 'PGRST116',
                'message', 'JSON object requested, multiple (or no) rows returned',
                'details', pg_catalog.format('The result contains %s rows', n),
                'hint', null)::text,
            detail = '{"status": 406, "headers": {}}';
    end if;
    if max_affected is not null and n > max_affected then
        raise sqlstate 'PGRST' using
            message = pg_catalog.json_build_object(
                'code', 'PGRST124',
                'message', 'Query result exceeds max-affected preference constraint',
                'details', pg_catalog.format('The query affects %s rows', n),
                'hint', null)::text,
            detail = '{"status": 400, "headers": {}}';
    end if;
    return n;
end
$$;

-- One CSV field: quoted when it holds a comma, quote, CR or LF (RFC 4180); NULL is empty.
create or replace function pgrst.csv_field(v text)
returns text
language sql immutable
set search_path = ''
as $$
    select case
        when v is null then ''
        when v ~ '[",\r\n]' then '"' || pg_catalog.replace(v, '"', '""') || '"'
        else v
    end
$$;

-- The header line of a CSV body: the keys of the first row, in column order.
create or replace function pgrst.csv_header(r json)
returns text
language sql immutable
set search_path = ''
as $$
    select pg_catalog.string_agg(pgrst.csv_field(k.key), ',' order by k.n)
    from pg_catalog.json_object_keys(r) with ordinality as k(key, n)
$$;

-- One CSV line: the values of a row (nested JSON as JSON text).
create or replace function pgrst.csv_row(r json)
returns text
language sql immutable
set search_path = ''
as $$
    select pg_catalog.string_agg(pgrst.csv_field(f.value), ',' order by f.n)
    from pg_catalog.json_each_text(r) with ordinality as f(key, value, n)
$$;

revoke all on function pgrst.check_result(bigint, boolean, bigint), pgrst.csv_field(text),
    pgrst.csv_header(json), pgrst.csv_row(json) from public;
grant execute on function pgrst.check_result(bigint, boolean, bigint), pgrst.csv_field(text),
    pgrst.csv_header(json), pgrst.csv_row(json) to anon, authenticated, service_role;

-- Tells every campaignd process to reload its schema cache, unless the DDL only touched
-- temporary objects (a function that creates a temp table on every call must not make
-- every process reload on every call).
create or replace function pgrst.notify_schema_change()
returns event_trigger
language plpgsql
set search_path = ''
as $$
begin
    if tg_event = 'sql_drop' then
        if not exists (select 1 from pg_catalog.pg_event_trigger_dropped_objects() o
                       where not o.is_temporary) then
            return;
        end if;
    elsif not exists (select 1 from pg_catalog.pg_event_trigger_ddl_commands() c
                      where c.schema_name is null or c.schema_name not like 'pg\_temp%') then
        return;
    end if;
    perform pg_catalog.pg_notify('pgrst', 'reload schema');
end
$$;

revoke all on function pgrst.notify_schema_change() from public;

do $watch$
begin
    if not (select r.rolsuper from pg_catalog.pg_roles r where r.rolname = current_user) then
        raise notice 'pgrst: not a superuser, so no event trigger reloads the /rest/v1 schema '
                     'cache after DDL; run NOTIFY pgrst, ''reload schema'' after changing the '
                     'schema (see docs/rest.md)';
        return;
    end if;
    if not exists (select 1 from pg_catalog.pg_event_trigger where evtname = 'pgrst_ddl_watch') then
        create event trigger pgrst_ddl_watch on ddl_command_end
            execute function pgrst.notify_schema_change();
    end if;
    if not exists (select 1 from pg_catalog.pg_event_trigger where evtname = 'pgrst_drop_watch') then
        create event trigger pgrst_drop_watch on sql_drop
            execute function pgrst.notify_schema_change();
    end if;
end
$watch$;
