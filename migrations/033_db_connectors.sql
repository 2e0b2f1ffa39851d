-- 033_db_connectors.sql: database connectors and incremental syncs (issue 11).
--
-- 1. request_data_source_sync() accepts the database source types (postgres,
--    redshift, mysql, mssql, custom_database), read by src/importer/dbconn*.c.
--    (Migration 034 of the HTTP connectors drops the list altogether.)
-- 2. data_sources.schedule_config's incremental keys are checked where they are
--    written: incremental_column a column name (1-63 characters, no control
--    characters), incremental_strategy one of full, incremental, append.
-- 3. public.import_key_index(): an index on an import table's duplicate key, so
--    the upsert of an incremental sync finds the rows it replaces by index
--    instead of reading the whole table.
-- data_sources.last_sync_value is written by the sync job in the transaction
-- that loads the rows (service_role; no API role can write it: migration 008's
-- column privileges), so a failed run leaves it unchanged.
-- Applied once, inside one transaction, by the database owner.

-- ---------------------------------------------------------------------------
-- 1. the database types can be synced
-- ---------------------------------------------------------------------------

-- As in migration 021, with the database types in the list.
create or replace function public.request_data_source_sync(p_data_source_id uuid)
returns uuid
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_type text := public.import_check_caller(p_data_source_id);
    v_log uuid := gen_random_uuid();
    v_sched jsonb;
begin
    if v_type not in ('csv_upload', 'csv_url', 'google_sheets', 'excel',
                      'postgres', 'redshift', 'mysql', 'mssql', 'custom_database') then
        raise exception 'sources of type % cannot be synced by campaignd yet', v_type
            using errcode = '22023',
                  hint = 'supported: csv_upload, csv_url, google_sheets, excel, postgres, '
                         'redshift, mysql, mssql, custom_database';
    end if;
    -- checked before the row lock too: a running first sync holds the source's
    -- row (it records the new table_name) until it commits
    if exists (select 1 from public.sync_logs sl
               where sl.data_source_id = p_data_source_id and sl.status = 'running') then
        raise exception 'a sync of this data source is already running' using errcode = 'PT409',
            hint = 'Wait for it to finish, or cancel it with POST /api/sync-logs/:id/cancel.';
    end if;
    select ds.schedule_config into v_sched
    from public.data_sources ds where ds.id = p_data_source_id for update;
    if exists (select 1 from public.sync_logs sl
               where sl.data_source_id = p_data_source_id and sl.status = 'running') then
        raise exception 'a sync of this data source is already running' using errcode = 'PT409',
            hint = 'Wait for it to finish, or cancel it with POST /api/sync-logs/:id/cancel.';
    end if;
    insert into public.sync_logs (id, data_source_id, status, metadata)
    values (v_log, p_data_source_id, 'running',
            pg_catalog.jsonb_build_object('trigger', 'manual', 'phase', 'queued',
                                          'requested_by', auth.uid()));
    update public.data_sources ds set sync_status = 'syncing' where ds.id = p_data_source_id;
    perform jobs.enqueue('import.sync',
        pg_catalog.jsonb_build_object('data_source_id', p_data_source_id, 'sync_log_id', v_log,
                                      'trigger', 'manual'),
        pg_catalog.now(), 'import.sync:' || p_data_source_id::text,
        case when coalesce((v_sched ->> 'retry_on_failure')::boolean, true)
             then least(greatest(coalesce((v_sched ->> 'max_retries')::integer, 3), 0), 10) + 1
             else 1 end,
        pg_catalog.make_interval(mins => least(greatest(
            coalesce((v_sched ->> 'retry_delay_minutes')::integer, 1), 0), 1440)));
    return v_log;
end
$$;
revoke all on function public.request_data_source_sync(uuid) from public, anon;
grant execute on function public.request_data_source_sync(uuid) to authenticated;

-- ---------------------------------------------------------------------------
-- 2. schedule_config's incremental keys
-- ---------------------------------------------------------------------------

create or replace function public.schedule_config_incremental_valid(p_config jsonb)
returns boolean
language sql immutable
set search_path = ''
as $$
    select (not (p_config ? 'incremental_column')
            or pg_catalog.jsonb_typeof(p_config -> 'incremental_column') = 'null'
            or (pg_catalog.jsonb_typeof(p_config -> 'incremental_column') = 'string'
                and pg_catalog.length(p_config ->> 'incremental_column') between 1 and 63
                and (p_config ->> 'incremental_column') !~ '[[:cntrl:]]'))
       and (not (p_config ? 'incremental_strategy')
            or pg_catalog.jsonb_typeof(p_config -> 'incremental_strategy') = 'null'
            or (p_config ->> 'incremental_strategy') in ('full', 'incremental', 'append'))
$$;
revoke all on function public.schedule_config_incremental_valid(jsonb) from public, anon;
grant execute on function public.schedule_config_incremental_valid(jsonb)
    to authenticated, service_role;

alter table public.data_sources
    add constraint data_sources_schedule_incremental_valid
    check (public.schedule_config_incremental_valid(schedule_config));
comment on constraint data_sources_schedule_incremental_valid on public.data_sources is
    'schedule_config.incremental_column is a column name (1-63 characters); '
    'incremental_strategy is full, incremental or append.';

-- ---------------------------------------------------------------------------
-- 3. an index on the duplicate key of an import table
-- ---------------------------------------------------------------------------

-- Makes sure the data source's import table has a btree index on p_key_columns
-- (in that order), named <table>_key_idx (a hash of the columns when the name
-- would be too long). Idempotent: an index with these columns is kept. Every
-- column must be a column of the table (22023 otherwise). service_role only.
-- Returns the index's name.
create or replace function public.import_key_index(p_data_source_id uuid, p_key_columns text[])
returns text
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_table text := public.import_current_table(p_data_source_id);
    v_rel pg_catalog.regclass;
    v_cols text;
    v_keys pg_catalog.int2[];
    v_name text;
    k text;
begin
    if v_table is null then
        raise exception 'the data source has no import table' using errcode = '22023';
    end if;
    if coalesce(pg_catalog.cardinality(p_key_columns), 0) = 0
       or pg_catalog.cardinality(p_key_columns) > 8 then
        raise exception 'between 1 and 8 key columns' using errcode = '22023';
    end if;
    v_rel := pg_catalog.format('public.%I', v_table)::pg_catalog.regclass;
    foreach k in array p_key_columns loop
        if not exists (select 1 from pg_catalog.pg_attribute a
                       where a.attrelid = v_rel and a.attname = k and a.attnum > 0
                         and not a.attisdropped) then
            raise exception 'column % is not in the import table', k using errcode = '22023';
        end if;
    end loop;
    select pg_catalog.array_agg(a.attnum order by o.n)::pg_catalog.int2[]
    into v_keys
    from pg_catalog.unnest(p_key_columns) with ordinality as o(k, n)
    join pg_catalog.pg_attribute a on a.attrelid = v_rel and a.attname = o.k;
    select c.relname into v_name
    from pg_catalog.pg_index i join pg_catalog.pg_class c on c.oid = i.indexrelid
    where i.indrelid = v_rel
      and i.indkey::text = pg_catalog.array_to_string(v_keys, ' ') -- int2vector: "1 3"
    limit 1;
    if v_name is not null then
        return v_name;
    end if;
    v_name := v_table || '_key_idx';
    if pg_catalog.length(v_name) > 63 then
        v_name := 'import_key_' || pg_catalog.left(pg_catalog.md5(v_table), 16) || '_idx';
    end if;
    select pg_catalog.string_agg(pg_catalog.format('%I', x), ', ' order by n)
    into v_cols
    from pg_catalog.unnest(p_key_columns) with ordinality as u(x, n);
    execute pg_catalog.format('create index %I on public.%I (%s)', v_name, v_table, v_cols);
    return v_name;
end
$$;
revoke all on function public.import_key_index(uuid, text[]) from public, anon, authenticated;
grant execute on function public.import_key_index(uuid, text[]) to service_role;
