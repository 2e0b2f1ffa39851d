-- 047_import_row_counts.sql: import_tables.row_count without counting the
-- table (issues 10 and 11, speed).
--
-- Until now import_finish_staging() ended every append / upsert with a
-- count(*) of the whole import table, and every sync with a count(*) of the
-- staging table: O(rows in the table) for a re-sync that changed 1,000 rows.
-- Now:
--   1. public.import_count_rows(): statement triggers (with transition tables)
--      on every import table keep import_tables.row_count right when rows are
--      inserted or deleted outside a sync (through /rest/v1, by an admin...).
--      public.import_count_triggers() puts them on a table (idempotent); the
--      swap of a full sync and this migration (for the tables that exist) do.
--   2. public.import_finish_staging(..., p_copied bigint): the number of rows
--      the job's COPY loaded comes from the job (the COPY's own count) instead
--      of a count(*) of the staging table; an append / upsert adds the rows it
--      inserted and subtracts those it deleted (its own trigger-free load keeps
--      the count triggers off, like the audit trigger, and does the sum once).
--      The 7-argument form of migration 021 stays, for callers that do not
--      know the count (it counts the staging table as before).
--   3. public.import_analyze(): statistics for an import table that a full
--      sync just made and incremental syncs will merge into, so that their
--      `delete ... using` the staging table finds the replaced rows through the
--      key index instead of a hash join over the whole table (a new table has
--      no statistics until autovacuum gets to it).
-- Applied once, inside one transaction, by the database owner.

-- ---------------------------------------------------------------------------
-- 1. the count triggers
-- ---------------------------------------------------------------------------

-- Statement trigger of import tables: adds the inserted rows to, or subtracts
-- the deleted rows from, the table's import_tables.row_count. TRUNCATE sets 0.
create or replace function public.import_count_rows()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_delta bigint;
begin
    if tg_level <> 'STATEMENT' then
        raise exception 'public.import_count_rows() must be attached FOR EACH STATEMENT';
    end if;
    if tg_op = 'TRUNCATE' then
        update public.import_tables it set row_count = 0 where it.table_name = tg_table_name;
        return null;
    elsif tg_op = 'INSERT' then
        select pg_catalog.count(*) into v_delta from import_count_new;
    elsif tg_op = 'DELETE' then
        select -pg_catalog.count(*) into v_delta from import_count_old;
    else
        raise exception 'public.import_count_rows() counts INSERT, DELETE and TRUNCATE only';
    end if;
    if v_delta <> 0 then
        update public.import_tables it
        set row_count = least(greatest(it.row_count + v_delta, 0),
                                         2147483647)::integer
        where it.table_name = tg_table_name;
    end if;
    return null;
end
$$;
revoke all on function public.import_count_rows() from public, anon, authenticated, service_role;

-- Puts the count triggers on public.<p_table> (a registered import table) when
-- they are missing; returns true when it had to (the caller then counts the
-- table once). Internal.
create or replace function public.import_count_triggers(p_table text)
returns boolean
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_rel pg_catalog.regclass;
    v_have bigint;
begin
    if not exists (select 1 from public.import_tables it where it.table_name = p_table) then
        raise exception '% is not a registered import table', p_table using errcode = '22023';
    end if;
    v_rel := pg_catalog.format('public.%I', p_table)::pg_catalog.regclass;
    select pg_catalog.count(*) into v_have from pg_catalog.pg_trigger t
    where t.tgrelid = v_rel
      and t.tgname in ('import_count_insert', 'import_count_delete', 'import_count_truncate');
    if v_have = 3 then
        return false;
    end if;
    if v_have > 0 then
        execute pg_catalog.format('drop trigger if exists import_count_insert on public.%I', p_table);
        execute pg_catalog.format('drop trigger if exists import_count_delete on public.%I', p_table);
        execute pg_catalog.format('drop trigger if exists import_count_truncate on public.%I', p_table);
    end if;
    execute pg_catalog.format(
        'create trigger import_count_insert after insert on public.%I '
        'referencing new table as import_count_new '
        'for each statement execute function public.import_count_rows()', p_table);
    execute pg_catalog.format(
        'create trigger import_count_delete after delete on public.%I '
        'referencing old table as import_count_old '
        'for each statement execute function public.import_count_rows()', p_table);
    execute pg_catalog.format(
        'create trigger import_count_truncate after truncate on public.%I '
        'for each statement execute function public.import_count_rows()', p_table);
    return true;
end
$$;
revoke all on function public.import_count_triggers(text) from public, anon, authenticated, service_role;

-- The import tables that exist: triggers, and a count to start from.
do $$
declare
    v_table text;
    v_rows bigint;
begin
    for v_table in
        select it.table_name::text from public.import_tables it
        where pg_catalog.to_regclass(pg_catalog.format('public.%I', it.table_name)) is not null
    loop
        perform public.import_count_triggers(v_table);
        execute pg_catalog.format('select pg_catalog.count(*) from public.%I', v_table) into v_rows;
        update public.import_tables it
        set row_count = least(v_rows, 2147483647)::integer
        where it.table_name = v_table;
    end loop;
end
$$;

-- ---------------------------------------------------------------------------
-- 2. import_finish_staging with the COPY's count
-- ---------------------------------------------------------------------------

-- As in migration 021 (dedupe, then the swap of a full sync or the merge of
-- an incremental one, one audit row per sync), with p_copied: the rows the
-- job's COPY loaded into the staging table (NULL: counted here). The row
-- count of the registry is the loaded rows after a swap, and the count before
-- plus the rows inserted minus the rows deleted after a merge: no count(*) of
-- the import table.
create or replace function public.import_finish_staging(p_data_source_id uuid, p_staging text,
                                                       p_mode text, p_key_columns text[],
                                                       p_ci_columns text[], p_handling text,
                                                       p_sync_log_id uuid, p_copied bigint)
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_table text := public.import_current_table(p_data_source_id);
    v_dups bigint;
    v_loaded bigint;
    v_rows bigint;
    v_deleted bigint := 0;
    v_inserted bigint := 0;
    v_cols text;
    v_key text;
    v_owner uuid;
begin
    if v_table is null then
        raise exception 'the data source has no import table' using errcode = '22023';
    end if;
    if p_staging !~ '^stg_[0-9a-f]{12}$'
       or pg_catalog.to_regclass(pg_catalog.format('import_staging.%I', p_staging)) is null then
        raise exception 'invalid staging table %', p_staging using errcode = '22023';
    end if;
    if p_mode not in ('replace', 'append', 'upsert') then
        raise exception 'invalid mode %', p_mode using errcode = '22023';
    end if;
    if p_copied is not null and p_copied < 0 then
        raise exception 'invalid row count %', p_copied using errcode = '22023';
    end if;
    v_dups := public.import_dedupe_staging(p_staging, p_key_columns, p_ci_columns, p_handling);
    if p_copied is null then
        execute pg_catalog.format('select count(*) from import_staging.%I', p_staging) into v_loaded;
    else
        v_loaded := greatest(p_copied - v_dups, 0);
    end if;

    select pg_catalog.string_agg(pg_catalog.format('%I', a.attname), ', ' order by a.attnum)
    into v_cols
    from pg_catalog.pg_attribute a
    where a.attrelid = pg_catalog.format('import_staging.%I', p_staging)::pg_catalog.regclass
      and a.attnum > 0 and not a.attisdropped;

    if p_mode = 'replace' then
        execute pg_catalog.format(
            'alter table import_staging.%I add column imported_at timestamptz not null '
            'default pg_catalog.now()', p_staging);
        execute pg_catalog.format('alter table import_staging.%I add constraint %I primary key (id)',
                                  p_staging, p_staging || '_pkey');
        execute pg_catalog.format('drop table public.%I', v_table);
        execute pg_catalog.format('alter table import_staging.%I set schema public', p_staging);
        execute pg_catalog.format('alter table public.%I rename to %I', p_staging, v_table);
        execute pg_catalog.format('alter table public.%I rename constraint %I to %I',
                                  v_table, p_staging || '_pkey', v_table || '_pkey');
        execute pg_catalog.format('alter table public.%I alter column id set default '
                                  'pg_catalog.gen_random_uuid()', v_table);
        execute pg_catalog.format('comment on table public.%I is %L', v_table,
            'Import table of data source ' || p_data_source_id::text
            || ' (made by create_import_table).');
        perform public.import_secure_table(v_table);
        perform public.import_count_triggers(v_table);
        v_rows := v_loaded;
    else
        if public.import_count_triggers(v_table) then
            -- a table made before the count triggers: counted once, from here on kept
            execute pg_catalog.format('select pg_catalog.count(*) from public.%I', v_table)
            into v_rows;
            update public.import_tables it
            set row_count = least(v_rows, 2147483647)::integer
            where it.table_name = v_table;
        end if;
        select it.row_count into v_rows
        from public.import_tables it where it.table_name = v_table for update;
        -- the load's rows are audited by the one row below, and counted here
        execute pg_catalog.format('alter table public.%I disable trigger audit, '
                                  'disable trigger import_count_insert, '
                                  'disable trigger import_count_delete', v_table);
        if p_mode = 'upsert' and coalesce(pg_catalog.cardinality(p_key_columns), 0) > 0 then
            select pg_catalog.string_agg(
                       case when k = any (coalesce(p_ci_columns, '{}'))
                            then pg_catalog.format('pg_catalog.lower(t.%1$I::text) = pg_catalog.lower(s.%1$I::text)', k)
                            else pg_catalog.format('t.%1$I = s.%1$I', k) end, ' and ')
            into v_key
            from pg_catalog.unnest(p_key_columns) k;
            execute pg_catalog.format('delete from public.%I t using import_staging.%I s where %s',
                                      v_table, p_staging, v_key);
            get diagnostics v_deleted = row_count;
        end if;
        execute pg_catalog.format('insert into public.%I (%s) select %s from import_staging.%I',
                                  v_table, v_cols, v_cols, p_staging);
        get diagnostics v_inserted = row_count;
        execute pg_catalog.format('alter table public.%I enable trigger audit, '
                                  'enable trigger import_count_insert, '
                                  'enable trigger import_count_delete', v_table);
        execute pg_catalog.format('drop table import_staging.%I', p_staging);
        v_rows := greatest(coalesce(v_rows, 0) + v_inserted - v_deleted, 0);
        v_loaded := v_inserted;
    end if;

    update public.import_tables it
    set row_count = least(v_rows, 2147483647)::integer, last_updated_at = pg_catalog.now()
    where it.table_name = v_table;

    select ds.user_id into v_owner from public.data_sources ds where ds.id = p_data_source_id;
    insert into public.audit_logs (user_id, action, resource_type, resource_id, status, metadata)
    values (v_owner, 'import', v_table, p_data_source_id, 'success',
            pg_catalog.jsonb_build_object('sync_log_id', p_sync_log_id, 'mode', p_mode,
                                          'rows_loaded', v_loaded, 'duplicates_removed', v_dups,
                                          'rows_deleted', v_deleted, 'rows_in_table', v_rows));
    return pg_catalog.jsonb_build_object('rows', v_rows, 'imported', v_loaded, 'duplicates', v_dups);
end
$$;
revoke all on function public.import_finish_staging(uuid, text, text, text[], text[], text, uuid, bigint)
    from public, anon, authenticated;
grant execute on function public.import_finish_staging(uuid, text, text, text[], text[], text, uuid, bigint)
    to service_role;

-- The form of migration 021: the staging table is counted.
create or replace function public.import_finish_staging(p_data_source_id uuid, p_staging text,
                                                       p_mode text, p_key_columns text[],
                                                       p_ci_columns text[], p_handling text,
                                                       p_sync_log_id uuid)
returns jsonb
language sql volatile
security definer
set search_path = ''
as $$
    select public.import_finish_staging(p_data_source_id, p_staging, p_mode, p_key_columns,
                                        p_ci_columns, p_handling, p_sync_log_id, null::bigint)
$$;

-- ---------------------------------------------------------------------------
-- 3. statistics for the merges to come
-- ---------------------------------------------------------------------------

-- ANALYZE of the data source's import table (service_role may not: it does
-- not own the table). Returns the table's name.
create or replace function public.import_analyze(p_data_source_id uuid)
returns text
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_table text := public.import_current_table(p_data_source_id);
begin
    if v_table is null then
        raise exception 'the data source has no import table' using errcode = '22023';
    end if;
    execute pg_catalog.format('analyze public.%I', v_table);
    return v_table;
end
$$;
revoke all on function public.import_analyze(uuid) from public, anon, authenticated;
grant execute on function public.import_analyze(uuid) to service_role;
