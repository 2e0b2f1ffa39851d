-- 066_ddl_grant_no_reload.sql: a GRANT or REVOKE does not make every campaignd
-- process reload its /rest/v1 schema cache.
--
-- Every new database connection of campaignd grants and then revokes its login
-- role's rights on its own temporary key table (023,
-- campaignd_key_table_open/_seal). pg_event_trigger_ddl_commands() reports a
-- GRANT with no schema (it names no object), so 000's filter for temporary
-- objects let it through, and each new connection anywhere (a job thread, a
-- send worker's engine session, an import's data connection) made every
-- process reload its schema cache: 70-95 ms of CPU per process, measured by
-- resync-fast2 (bench/RESULTS.md) on the first re-sync after a full sync.
--
-- The schema cache (src/rest/schema.c) holds tables, columns, keys,
-- relationships and functions, never privileges: PostgreSQL checks those on
-- every statement. So a command that only changes privileges has nothing to
-- reload, whatever it grants. Anything else is judged as before: a reload
-- unless the command touched only temporary objects.
--
-- The function also marks the transaction (pgrst.reload_requested = 'on',
-- transaction-local) when it asks for a reload, so that tests can see the
-- decision before the NOTIFY is delivered at commit.
-- Applied once, inside one transaction, by the database owner.

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
                      where c.command_tag not in ('GRANT', 'REVOKE')
                        and (c.schema_name is null or c.schema_name not like 'pg\_temp%')) then
        return;
    end if;
    perform pg_catalog.set_config('pgrst.reload_requested', 'on', true);
    perform pg_catalog.pg_notify('pgrst', 'reload schema');
end
$$;
