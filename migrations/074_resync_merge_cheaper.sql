-- 074_resync_merge_cheaper.sql: a re-sync's merge without a function call per
-- row and without a second index probe per updated row (issue 11, speed: a
-- re-sync of 1,000 changed rows of a 1M-row table in < 2 % of the full sync's
-- time).
--
-- Measured (bench/RESULTS.md, resync-fast5): of import_finish_staging's ~19 ms
-- of CPU for 1,000 changed rows, the UPDATE took ~11.7 ms, of which ~3.6 ms was
-- the WHEN condition of the import table's audit trigger calling
-- public.import_audit_wanted() once per row (a SQL function: an executor start
-- and an index look-up of import_staging.import_merges each time), and the
-- INSERT of new keys ~2.8 ms, probing the key index again for every row the
-- UPDATE had just updated.
--
--   1. The audit trigger of import tables skips a row when campaignd.import_merge
--      is 'on' AND the row is written by the database owner (current_user, the
--      owner's name written into the trigger), with no function call. Only a
--      SECURITY DEFINER function of the owner runs as the owner for an API role
--      or a user's session, and the only such function that writes the rows of
--      import tables is import_finish_staging, which sets the setting around its
--      merge: a user who sets campaignd.import_merge and writes rows himself is
--      audited as before (he is not the owner). The import_merges marker is no
--      longer written or read (table and function stay for triggers not yet
--      replaced; every existing import table is switched below).
--      A new SECURITY DEFINER function that writes rows of import tables must not
--      run with campaignd.import_merge on (docs/architecture.md).
--   2. import_finish_staging (8 arguments): a small upsert (with unique staging
--      keys) into a large table — an incremental re-sync — has its UPDATE return
--      the ids of the staging rows it used, and its INSERT probes the key index
--      only for the other staging rows (s.id <> all of that array: a hashed
--      look-up), not a second time for every updated row. Results, counts and
--      the audit row are unchanged.
-- Applied once, inside one transaction, by the database owner.

-- ---------------------------------------------------------------------------
-- 1. the audit trigger of import tables: no function call per row
-- ---------------------------------------------------------------------------

-- As in migration 050, with the condition of 1. above; a trigger with another
-- condition (050's, or none) is replaced. Returns true when it had to.
create or replace function public.import_merge_audit(p_table text)
returns boolean
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_rel pg_catalog.regclass;
    v_when text := pg_catalog.format(
        '(pg_catalog.current_setting(''campaignd.import_merge'', true) is distinct from ''on'' '
        'or current_user <> %L::name)', current_user);
    v_def text;
begin
    if not exists (select 1 from public.import_tables it where it.table_name = p_table) then
        raise exception '% is not a registered import table', p_table using errcode = '22023';
    end if;
    v_rel := pg_catalog.format('public.%I', p_table)::pg_catalog.regclass;
    select pg_catalog.pg_get_triggerdef(t.oid) into v_def
    from pg_catalog.pg_trigger t
    where t.tgrelid = v_rel and t.tgname = 'audit' and t.tgqual is not null;
    -- 074's condition, for this owner: "... OR (CURRENT_USER <> 'owner'::name))"
    if v_def is not null and pg_catalog.strpos(v_def, 'import_audit_wanted') = 0
       and pg_catalog.strpos(v_def, pg_catalog.format('(CURRENT_USER <> %L::name)', current_user)) > 0 then
        return false;
    end if;
    execute pg_catalog.format('drop trigger if exists audit on public.%I', p_table);
    execute pg_catalog.format(
        'create trigger audit after insert or update or delete on public.%I for each row '
        'when %s execute function public.audit_trigger()', p_table, v_when);
    return true;
end
$$;
revoke all on function public.import_merge_audit(text) from public, anon, authenticated, service_role;

-- The import tables that exist.
do $$
declare
    v_table text;
begin
    for v_table in
        select it.table_name::text from public.import_tables it
        where pg_catalog.to_regclass(pg_catalog.format('public.%I', it.table_name)) is not null
    loop
        perform public.import_merge_audit(v_table);
    end loop;
end
$$;

-- ---------------------------------------------------------------------------
-- 2. the merge: one statement for the update and the insert
-- ---------------------------------------------------------------------------

-- As in migration 065, with 1. and 2. above.
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
    v_cols text;
    v_key text;
    v_owner uuid;
    v_rel pg_catalog.regclass;
    v_delta boolean := p_staging ~ '^dlt_[0-9a-f]{12}$';
    v_hashjoin text;
    v_mergejoin text;
    v_set text;
    v_tcols text;
    v_scols text;
    v_updated bigint;
    v_inserted bigint;
    v_unique boolean;
    v_group text;
    v_notnull text;
    v_ids uuid[];
begin
    if v_table is null then
        raise exception 'the data source has no import table' using errcode = '22023';
    end if;
    if (p_staging !~ '^stg_[0-9a-f]{12}$' and not v_delta)
       or pg_catalog.to_regclass(pg_catalog.format('import_staging.%I', p_staging)) is null then
        raise exception 'invalid staging table %', p_staging using errcode = '22023';
    end if;
    if v_delta and p_staging <> 'dlt_' || pg_catalog.substr(pg_catalog.md5(p_data_source_id::text), 1, 12) then
        raise exception 'staging table % is not this data source''s', p_staging using errcode = '22023';
    end if;
    if p_mode not in ('replace', 'append', 'upsert') then
        raise exception 'invalid mode %', p_mode using errcode = '22023';
    end if;
    if v_delta and p_mode = 'replace' then
        raise exception 'a replace needs a staging table of its own (import_create_staging)'
            using errcode = '22023';
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
        perform public.import_merge_audit(v_table);
        v_rows := v_loaded;
    else
        v_rel := pg_catalog.format('public.%I', v_table)::pg_catalog.regclass;
        if public.import_count_triggers(v_table) then
            -- a table made before the count triggers: counted once, from here on kept
            execute pg_catalog.format('select pg_catalog.count(*) from public.%I', v_table)
            into v_rows;
            update public.import_tables it
            set row_count = least(v_rows, 2147483647)::integer
            where it.table_name = v_table;
        end if;
        perform public.import_merge_audit(v_table); -- DDL once per table made before 074
        select it.row_count into v_rows
        from public.import_tables it where it.table_name = v_table for update;
        -- the load's rows are audited by the one row below, not one by one: the
        -- audit trigger skips rows written by the owner while this is on
        perform pg_catalog.set_config('campaignd.import_merge', 'on', true);
        if p_mode = 'upsert' and coalesce(pg_catalog.cardinality(p_key_columns), 0) > 0 then
            select pg_catalog.string_agg(
                       case when k = any (coalesce(p_ci_columns, '{}'))
                            then pg_catalog.format('pg_catalog.lower(t.%1$I::text) = pg_catalog.lower(s.%1$I::text)', k)
                            else pg_catalog.format('t.%1$I = s.%1$I', k) end, ' and ')
            into v_key
            from pg_catalog.unnest(p_key_columns) k;
            -- A batch much smaller than the table, with an index led by the first key
            -- column: one index probe per staging row. The planner cannot know the
            -- staging table's size (it has no statistics) and may otherwise hash the
            -- whole import table.
            if v_loaded * 20 < coalesce(v_rows, 0)
               and not (p_key_columns[1] = any (coalesce(p_ci_columns, '{}')))
               and exists (select 1 from pg_catalog.pg_index i
                           join pg_catalog.pg_attribute a
                             on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
                           where i.indrelid = v_rel and a.attname = p_key_columns[1]) then
                v_hashjoin := pg_catalog.current_setting('enable_hashjoin');
                v_mergejoin := pg_catalog.current_setting('enable_mergejoin');
                perform pg_catalog.set_config('enable_hashjoin', 'off', true),
                        pg_catalog.set_config('enable_mergejoin', 'off', true);
            end if;
            -- Are the staging rows' keys unique? import_dedupe_staging made them
            -- so for keep_first, keep_last and skip_all; with 'none' one pass
            -- over the (small) staging table tells. Rows without a full key
            -- match nothing and do not count.
            if p_handling in ('keep_first', 'keep_last', 'skip_all') then
                v_unique := true;
            else
                select pg_catalog.string_agg(
                           case when k = any (coalesce(p_ci_columns, '{}'))
                                then pg_catalog.format('pg_catalog.lower(s.%I::text)', k)
                                else pg_catalog.format('s.%I', k) end, ', '),
                       pg_catalog.string_agg(pg_catalog.format('s.%I is not null', k), ' and ')
                into v_group, v_notnull
                from pg_catalog.unnest(p_key_columns) k;
                execute pg_catalog.format(
                    'select not exists (select from import_staging.%I s where %s '
                    'group by %s having pg_catalog.count(*) > 1)', p_staging, v_notnull, v_group)
                into v_unique;
            end if;
            if v_unique then
                -- A table row matches at most one staging row: rows whose key is
                -- in the table are updated in place, and only when their content
                -- changed (compared as text: a false "changed" only costs a
                -- rewrite); rows with a new key are inserted.
                select pg_catalog.string_agg(pg_catalog.format('%1$I = s.%1$I', a.attname), ', '
                                             order by a.attnum),
                       pg_catalog.string_agg(pg_catalog.format('t.%I::text', a.attname), ', '
                                             order by a.attnum),
                       pg_catalog.string_agg(pg_catalog.format('s.%I::text', a.attname), ', '
                                             order by a.attnum)
                into v_set, v_tcols, v_scols
                from pg_catalog.pg_attribute a
                where a.attrelid = pg_catalog.format('import_staging.%I', p_staging)::pg_catalog.regclass
                  and a.attnum > 0 and not a.attisdropped and a.attname <> 'id';
                if v_hashjoin is not null then
                    -- A small batch into a large table: the UPDATE returns the
                    -- staging rows it used, and the INSERT probes the key index
                    -- only for the others (s.id <> all of a constant array: a
                    -- hash look-up, whatever the plan's estimates), not again
                    -- for every row just updated.
                    execute pg_catalog.format(
                        'with u as (update public.%I t set %s, imported_at = pg_catalog.now() '
                        'from import_staging.%I s where %s and (%s, null) is distinct from (%s, null) '
                        'returning s.id) '
                        'select pg_catalog.count(*), coalesce(pg_catalog.array_agg(u.id), ''{}'') from u',
                        v_table, v_set, p_staging, v_key, v_tcols, v_scols)
                    into v_updated, v_ids;
                    execute pg_catalog.format(
                        'insert into public.%I (%s) select %s from import_staging.%I s '
                        'where s.id <> all ($1) and not exists (select from public.%I t where %s)',
                        v_table, v_cols, v_cols, p_staging, v_table, v_key)
                    using v_ids;
                    get diagnostics v_inserted = row_count;
                else
                    execute pg_catalog.format(
                        'update public.%I t set %s, imported_at = pg_catalog.now() '
                        'from import_staging.%I s where %s and (%s, null) is distinct from (%s, null)',
                        v_table, v_set, p_staging, v_key, v_tcols, v_scols);
                    get diagnostics v_updated = row_count;
                    execute pg_catalog.format(
                        'insert into public.%I (%s) select %s from import_staging.%I s '
                        'where not exists (select from public.%I t where %s)',
                        v_table, v_cols, v_cols, p_staging, v_table, v_key);
                    get diagnostics v_inserted = row_count;
                end if;
            else
                execute pg_catalog.format('delete from public.%I t using import_staging.%I s where %s',
                                          v_table, p_staging, v_key);
                get diagnostics v_deleted = row_count;
            end if;
            if v_hashjoin is not null then
                perform pg_catalog.set_config('enable_hashjoin', v_hashjoin, true),
                        pg_catalog.set_config('enable_mergejoin', v_mergejoin, true);
            end if;
        end if;
        if v_inserted is null then
            execute pg_catalog.format('insert into public.%I (%s) select %s from import_staging.%I',
                                      v_table, v_cols, v_cols, p_staging);
            get diagnostics v_loaded = row_count;
        end if;
        perform pg_catalog.set_config('campaignd.import_merge', 'off', true);
        if v_delta then
            execute pg_catalog.format('delete from import_staging.%I', p_staging);
        else
            execute pg_catalog.format('drop table import_staging.%I', p_staging);
        end if;
        -- the count triggers added the inserted rows and took off the deleted ones
        select it.row_count into v_rows from public.import_tables it where it.table_name = v_table;
    end if;

    update public.import_tables it
    set row_count = least(v_rows, 2147483647)::integer, last_updated_at = pg_catalog.now()
    where it.table_name = v_table;

    select ds.user_id into v_owner from public.data_sources ds where ds.id = p_data_source_id;
    insert into public.audit_logs (user_id, action, resource_type, resource_id, status, metadata)
    values (v_owner, 'import', v_table, p_data_source_id, 'success',
            pg_catalog.jsonb_build_object('sync_log_id', p_sync_log_id, 'mode', p_mode,
                                          'rows_loaded', v_loaded, 'duplicates_removed', v_dups,
                                          'rows_deleted', v_deleted, 'rows_in_table', v_rows)
            || case when v_inserted is null then '{}'::jsonb
                    else pg_catalog.jsonb_build_object('rows_updated', v_updated,
                                                       'rows_inserted', v_inserted,
                                                       'rows_unchanged', greatest(v_loaded - v_updated - v_inserted, 0)) end);
    return pg_catalog.jsonb_build_object('rows', v_rows, 'imported', v_loaded, 'duplicates', v_dups)
        || case when v_inserted is null then '{}'::jsonb
                else pg_catalog.jsonb_build_object('updated', v_updated, 'inserted', v_inserted,
                                                   'unchanged', greatest(v_loaded - v_updated - v_inserted, 0)) end;
end
$$;
