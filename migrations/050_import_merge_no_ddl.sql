-- 050_import_merge_no_ddl.sql: an incremental sync's merge without DDL
-- (issue 11, speed: a re-sync of 1,000 changed rows must cost little next to
-- the full sync).
--
-- Until now every append / upsert run made a staging table (CREATE TABLE +
-- GRANT), switched the audit and count triggers of the import table off and on
-- again (ALTER TABLE ... DISABLE / ENABLE TRIGGER) and dropped the staging table:
-- five DDL statements, each writing the catalogs, invalidating every session's
-- caches, firing the pgrst event trigger (one /rest/v1 schema reload per run in
-- every campaignd process) and, for ALTER TABLE, locking out writers of the
-- import table while the merge ran. Now:
--   1. public.import_delta_staging(): ONE unlogged staging table per data source,
--      import_staging.dlt_<12 hex of md5(source id)>, made when missing or when
--      its columns no longer match the import table's; a merge empties it again
--      (DELETE, in the run's transaction), so it is empty between runs. Unlogged:
--      its rows live for one transaction and need no WAL. Its rows are not in
--      file order on disk (freed space is reused), so import_dedupe_staging now
--      orders the rows of such a table by id (the job's version 7 ids increase
--      through the file).
--   2. The per-row audit trigger of import tables gets a WHEN condition that
--      skips the rows an import merge writes — that merge writes its one
--      audit_logs row instead, as before. The merge is recognised by a row of
--      import_staging.import_merges holding the transaction's id, which only the
--      security-definer merge can write (the transaction-local setting
--      campaignd.import_merge only makes the check cheap for everybody else: set
--      without the row, nothing is skipped). The count triggers of migration 047
--      stay on and count the merge's rows themselves.
--   3. import_finish_staging (8 arguments): the merge above; takes both staging
--      kinds; a small upsert into a large table is planned as an index nested
--      loop on the key index (no hash join over the whole table).
-- Applied once, inside one transaction, by the database owner.

-- ---------------------------------------------------------------------------
-- 1. the marker of a running merge
-- ---------------------------------------------------------------------------

-- A row per transaction that is inside an import merge (inserted and deleted in
-- that same transaction, so never seen committed). No API role can read or
-- write it.
create unlogged table import_staging.import_merges (
    xid pg_catalog.xid8 primary key
);
revoke all on table import_staging.import_merges from public, anon, authenticated, service_role;
comment on table import_staging.import_merges is
    'Transactions running an import merge (rows live inside that transaction only); '
    'the audit trigger of import tables skips their rows.';

-- True unless the current transaction is an import merge. The WHEN condition of
-- the audit trigger of import tables calls it only when campaignd.import_merge
-- is set, so ordinary writes pay one setting lookup.
create or replace function public.import_audit_wanted()
returns boolean
language sql stable
security definer
set search_path = ''
as $$
    select not exists (select 1 from import_staging.import_merges m
                       where m.xid = pg_catalog.pg_current_xact_id_if_assigned())
$$;
revoke all on function public.import_audit_wanted() from public, anon;
grant execute on function public.import_audit_wanted() to authenticated, service_role;

-- Makes the audit trigger of public.<p_table> (a registered import table) skip
-- the rows of import merges; returns true when it had to replace the trigger.
-- Internal.
create or replace function public.import_merge_audit(p_table text)
returns boolean
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_rel pg_catalog.regclass;
begin
    if not exists (select 1 from public.import_tables it where it.table_name = p_table) then
        raise exception '% is not a registered import table', p_table using errcode = '22023';
    end if;
    v_rel := pg_catalog.format('public.%I', p_table)::pg_catalog.regclass;
    if exists (select 1 from pg_catalog.pg_trigger t
               where t.tgrelid = v_rel and t.tgname = 'audit' and t.tgqual is not null) then
        return false;
    end if;
    execute pg_catalog.format('drop trigger if exists audit on public.%I', p_table);
    execute pg_catalog.format(
        'create trigger audit after insert or update or delete on public.%I for each row '
        'when (pg_catalog.current_setting(''campaignd.import_merge'', true) is distinct from ''on'' '
        'or public.import_audit_wanted()) '
        'execute function public.audit_trigger()', p_table);
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
-- 2. the staging table of appends and upserts
-- ---------------------------------------------------------------------------

-- The "name type, ..." list of a table's columns but id and imported_at.
create or replace function public.import_column_defs(p_rel pg_catalog.regclass)
returns text
language sql stable
security definer
set search_path = ''
as $$
    select pg_catalog.string_agg(pg_catalog.format('%I %s', a.attname,
                                 pg_catalog.format_type(a.atttypid, a.atttypmod)), ', '
                                 order by a.attnum)
    from pg_catalog.pg_attribute a
    where a.attrelid = p_rel and a.attnum > 0 and not a.attisdropped
      and a.attname not in ('id', 'imported_at')
$$;
revoke all on function public.import_column_defs(pg_catalog.regclass) from public, anon, authenticated, service_role;

-- The data source's staging table for appends and upserts (see 1. above):
-- import_staging.dlt_<12 hex>, with id uuid and the columns of its import table,
-- unlogged, empty; made (DDL) only when missing or when the import table's
-- columns changed. service_role may insert into it and read it. Returns its
-- name (without schema).
create or replace function public.import_delta_staging(p_data_source_id uuid)
returns text
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_table text := public.import_current_table(p_data_source_id);
    v_stg text := 'dlt_' || pg_catalog.substr(pg_catalog.md5(p_data_source_id::text), 1, 12);
    v_rel pg_catalog.regclass;
    v_want text;
begin
    if v_table is null then
        raise exception 'the data source has no import table' using errcode = '22023';
    end if;
    v_want := public.import_column_defs(pg_catalog.format('public.%I', v_table)::pg_catalog.regclass);
    v_rel := pg_catalog.to_regclass(pg_catalog.format('import_staging.%I', v_stg));
    if v_rel is not null then
        if public.import_column_defs(v_rel) is not distinct from v_want then
            return v_stg;
        end if;
        execute pg_catalog.format('drop table import_staging.%I', v_stg);
    end if;
    execute pg_catalog.format(
        'create unlogged table import_staging.%I (id uuid not null%s)',
        v_stg, case when coalesce(v_want, '') = '' then '' else ', ' || v_want end);
    execute pg_catalog.format('grant select, insert, delete on import_staging.%I to service_role', v_stg);
    return v_stg;
end
$$;
revoke all on function public.import_delta_staging(uuid) from public, anon, authenticated;
grant execute on function public.import_delta_staging(uuid) to service_role;

-- As in migration 021, but the rows of a dlt_ table are in file order by id
-- (version 7 ids made by the job), not by ctid.
create or replace function public.import_dedupe_staging(p_staging text, p_key_columns text[],
                                                       p_ci_columns text[], p_handling text)
returns bigint
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_key text;
    v_notnull text;
    v_removed bigint;
begin
    if p_handling not in ('keep_first', 'keep_last', 'skip_all')
       or coalesce(pg_catalog.cardinality(p_key_columns), 0) = 0 then
        return 0;
    end if;
    select pg_catalog.string_agg(case when k = any (coalesce(p_ci_columns, '{}'))
                                      then pg_catalog.format('pg_catalog.lower(%I::text)', k)
                                      else pg_catalog.format('%I', k) end, ', '),
           pg_catalog.string_agg(pg_catalog.format('%I is not null', k), ' and ')
    into v_key, v_notnull
    from pg_catalog.unnest(p_key_columns) k;
    execute pg_catalog.format(
        'delete from import_staging.%1$I s using ('
        '  select ctid, pg_catalog.row_number() over (partition by %2$s order by %6$s %3$s) rn, '
        '         pg_catalog.count(*) over (partition by %2$s) n '
        '  from import_staging.%1$I where %4$s'
        ') d where s.ctid = d.ctid and %5$s',
        p_staging, v_key, case when p_handling = 'keep_last' then 'desc' else 'asc' end,
        v_notnull, case when p_handling = 'skip_all' then 'd.n > 1' else 'd.rn > 1' end,
        case when p_staging like 'dlt\_%' then 'id' else 'ctid' end);
    get diagnostics v_removed = row_count;
    return v_removed;
end
$$;
revoke all on function public.import_dedupe_staging(text, text[], text[], text) from public, anon, authenticated;

-- ---------------------------------------------------------------------------
-- 3. import_finish_staging without DDL for appends and upserts
-- ---------------------------------------------------------------------------

-- As in migration 047 (dedupe, then the swap of a full sync or the merge of an
-- incremental one, one audit row per sync, no count(*) of the import table),
-- with these differences for appends and upserts: p_staging may be the source's
-- dlt_ table (import_delta_staging), which is emptied instead of dropped; the
-- audit trigger skips the merge's rows through import_staging.import_merges
-- instead of being switched off; the count triggers count the rows; a small
-- batch into a large table finds the rows it replaces through the key index.
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
        perform public.import_merge_audit(v_table); -- DDL once per table made before 050
        select it.row_count into v_rows
        from public.import_tables it where it.table_name = v_table for update;
        -- the load's rows are audited by the one row below, not one by one
        insert into import_staging.import_merges (xid) values (pg_catalog.pg_current_xact_id())
        on conflict do nothing;
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
            execute pg_catalog.format('delete from public.%I t using import_staging.%I s where %s',
                                      v_table, p_staging, v_key);
            get diagnostics v_deleted = row_count;
            if v_hashjoin is not null then
                perform pg_catalog.set_config('enable_hashjoin', v_hashjoin, true),
                        pg_catalog.set_config('enable_mergejoin', v_mergejoin, true);
            end if;
        end if;
        execute pg_catalog.format('insert into public.%I (%s) select %s from import_staging.%I',
                                  v_table, v_cols, v_cols, p_staging);
        get diagnostics v_loaded = row_count;
        perform pg_catalog.set_config('campaignd.import_merge', 'off', true);
        delete from import_staging.import_merges m where m.xid = pg_catalog.pg_current_xact_id();
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
                                          'rows_deleted', v_deleted, 'rows_in_table', v_rows));
    return pg_catalog.jsonb_build_object('rows', v_rows, 'imported', v_loaded, 'duplicates', v_dups);
end
$$;
