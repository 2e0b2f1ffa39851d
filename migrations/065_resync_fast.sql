-- 065_resync_fast.sql: an incremental re-sync writes what changed, and the
-- bookkeeping around it once (issue 11, speed: a re-sync of 1,000 changed rows
-- of a 1M-row table in < 2 % of the full sync's time).
--
--   1. import_finish_staging (8 arguments), upserts: a staging row whose key is
--      in the import table UPDATEs that row in place (same id; imported_at set
--      to now()), and only when its content differs (compared as text); a
--      staging row with a new key is inserted. Before, every staging row
--      deleted its table row and was inserted anew: two heap writes and two
--      index insertions per row, and an UPDATE of import_tables by each count
--      trigger (DELETE and INSERT statements), each audited. Now an unchanged
--      row costs one index probe, a changed one a heap update (HOT when its
--      page has room: no index insertion), and a merge with no new key fires
--      no count update. This needs keys that are unique among the staging rows:
--      import_dedupe_staging makes them so for duplicate_handling keep_first,
--      keep_last and skip_all; with 'none' (the default) one pass over the
--      staging table checks it, and a load that holds a key twice keeps the
--      delete + insert (the table then holds both rows, as before).
--      The result and the audit row say how many rows were updated, inserted
--      and unchanged.
--   2. import_begin_run does not set data_sources.sync_status = 'syncing' again
--      when the request already did (request_data_source_sync): that update
--      wrote a new version of the row, an audit row and a realtime change that
--      said nothing new.
--   3. import_succeed_run with a fifth argument, the new last_sync_value: an
--      incremental sync's position is written by the same UPDATE of
--      data_sources that records the success (one row version, one audit row,
--      one realtime change instead of two), still in the transaction of the
--      rows. The 4-argument form stays.
--   4. import_create_staging: the table of a source with incremental_strategy
--      'incremental' is made with fillfactor 90, so that the first update of a
--      row finds room on its page (a HOT update: no index insertion, no row
--      lock record, one page written) instead of moving to another page. The
--      cost: about 11 % more pages for that table.
-- Applied once, inside one transaction, by the database owner.

-- ---------------------------------------------------------------------------
-- 1. the merge: update in place what changed, insert what is new
-- ---------------------------------------------------------------------------

-- As in migration 050, but an upsert whose staging keys are unique updates in
-- place (see 1. above).
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


-- ---------------------------------------------------------------------------
-- 2. the run's start: no second 'syncing'
-- ---------------------------------------------------------------------------

-- As in migration 021, but data_sources.sync_status is written only when it is
-- not 'syncing' already.
create or replace function public.import_begin_run(p_data_source_id uuid, p_sync_log_id uuid,
                                                   p_trigger text, p_attempt integer,
                                                   p_job_id bigint)
returns uuid
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_row public.sync_logs;
    v_ok boolean;
    v_new uuid := gen_random_uuid();
    v_stale uuid;
begin
    select (ds.deleted_at is null) into v_ok
    from public.data_sources ds where ds.id = p_data_source_id for update;
    if not found then
        return null;
    end if;
    if p_sync_log_id is not null then
        select * into v_row from public.sync_logs sl
        where sl.id = p_sync_log_id and sl.data_source_id = p_data_source_id for update;
        if not found or v_row.status in ('success', 'cancelled') then
            return null;
        end if;
        if v_row.status = 'running' and v_row.cancel_requested_at is not null then
            update public.sync_logs sl
            set status = 'cancelled', completed_at = pg_catalog.now(),
                metadata = sl.metadata || '{"phase": "cancelled"}'
            where sl.id = v_row.id;
            update public.data_sources ds set sync_status = 'idle'
            where ds.id = p_data_source_id and ds.sync_status = 'syncing';
            return null;
        end if;
        if not v_ok then
            update public.sync_logs sl
            set status = 'failed', completed_at = pg_catalog.now(),
                error_message = 'the data source was deleted before the sync started'
            where sl.id = v_row.id and sl.status = 'running';
            return null;
        end if;
        if v_row.status = 'running' and coalesce(v_row.metadata ->> 'phase', 'queued') = 'queued' then
            update public.sync_logs sl
            set started_at = pg_catalog.now(),
                metadata = sl.metadata || pg_catalog.jsonb_build_object(
                    'phase', 'starting', 'job_id', p_job_id, 'attempt', p_attempt)
            where sl.id = v_row.id;
            update public.data_sources ds set sync_status = 'syncing'
            where ds.id = p_data_source_id and ds.sync_status is distinct from 'syncing';
            return v_row.id;
        end if;
        if v_row.status = 'failed' and p_attempt <= 1 then
            return null;
        end if;
        v_stale := v_row.id;
    else
        if not v_ok then
            return null;
        end if;
        select * into v_row from public.sync_logs sl
        where sl.data_source_id = p_data_source_id and sl.status = 'running' for update;
        if found and coalesce(v_row.metadata ->> 'phase', 'queued') = 'queued' then
            -- a manual request whose enqueue was merged into this job (same
            -- dedupe key): this run reports to its row
            if v_row.cancel_requested_at is not null then
                update public.sync_logs sl
                set status = 'cancelled', completed_at = pg_catalog.now(),
                    metadata = sl.metadata || '{"phase": "cancelled"}'
                where sl.id = v_row.id;
                update public.data_sources ds set sync_status = 'idle'
                where ds.id = p_data_source_id and ds.sync_status = 'syncing';
                return null;
            end if;
            update public.sync_logs sl
            set started_at = pg_catalog.now(),
                metadata = sl.metadata || pg_catalog.jsonb_build_object(
                    'phase', 'starting', 'job_id', p_job_id, 'attempt', p_attempt)
            where sl.id = v_row.id;
            update public.data_sources ds set sync_status = 'syncing'
            where ds.id = p_data_source_id and ds.sync_status is distinct from 'syncing';
            return v_row.id;
        end if;
        if found and (v_row.metadata ->> 'job_id') = p_job_id::text then
            v_stale := v_row.id;
        end if;
    end if;
    -- an earlier attempt of this job that died mid-run
    update public.sync_logs sl
    set status = 'failed', completed_at = pg_catalog.now(),
        error_message = 'interrupted: the server running this sync stopped before it finished; '
                        'nothing of it was kept, and it is being retried',
        metadata = sl.metadata || '{"phase": "interrupted"}'
    where sl.id = v_stale and sl.status = 'running';
    if exists (select 1 from public.sync_logs sl
               where sl.data_source_id = p_data_source_id and sl.status = 'running') then
        return null;  -- another sync of this source is running: this one is not needed
    end if;
    insert into public.sync_logs (id, data_source_id, status, metadata)
    values (v_new, p_data_source_id, 'running',
            pg_catalog.jsonb_build_object('trigger', coalesce(p_trigger, 'schedule'),
                                          'phase', 'starting', 'job_id', p_job_id,
                                          'attempt', p_attempt, 'retry_of', v_stale));
    update public.data_sources ds set sync_status = 'syncing'
            where ds.id = p_data_source_id and ds.sync_status is distinct from 'syncing';
    return v_new;
end
$$;
revoke all on function public.import_begin_run(uuid, uuid, text, integer, bigint) from public, anon, authenticated;
grant execute on function public.import_begin_run(uuid, uuid, text, integer, bigint) to service_role;

-- ---------------------------------------------------------------------------
-- 3. the run's success with the new position
-- ---------------------------------------------------------------------------

-- As import_succeed_run(uuid, bigint, bigint, jsonb) of migration 021, and sets
-- data_sources.last_sync_value to p_last_sync_value when that is not null, in
-- the same UPDATE.
create or replace function public.import_succeed_run(p_sync_log_id uuid, p_imported bigint,
                                                     p_skipped bigint, p_metadata jsonb,
                                                     p_last_sync_value text)
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_source uuid;
begin
    update public.sync_logs sl
    set status = 'success', completed_at = pg_catalog.clock_timestamp(),  -- not the transaction's start
        records_imported = least(p_imported, 2147483647)::integer,
        records_skipped = least(p_skipped, 2147483647)::integer,
        metadata = sl.metadata || coalesce(p_metadata, '{}') || '{"phase": "done"}'
    where sl.id = p_sync_log_id and sl.status = 'running'
    returning sl.data_source_id into v_source;
    if v_source is null then
        raise exception 'the sync was cancelled' using errcode = '57014';
    end if;
    update public.data_sources ds
    set sync_status = 'success', last_sync_at = pg_catalog.now(),
        last_sync_value = coalesce(p_last_sync_value, ds.last_sync_value)
    where ds.id = v_source;
end
$$;
revoke all on function public.import_succeed_run(uuid, bigint, bigint, jsonb, text) from public, anon, authenticated;
grant execute on function public.import_succeed_run(uuid, bigint, bigint, jsonb, text) to service_role;

-- ---------------------------------------------------------------------------
-- 4. room for in-place updates in an incremental source's table
-- ---------------------------------------------------------------------------

-- As in migration 021, with fillfactor 90 for an incremental source (see 4.
-- above): the table a full sync loads into becomes the import table.
create or replace function public.import_create_staging(p_data_source_id uuid, p_columns jsonb)
returns text
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_table text := public.import_current_table(p_data_source_id);
    v_stg text := 'stg_' || pg_catalog.substr(pg_catalog.md5(gen_random_uuid()::text), 1, 12);
    v_defs text := '';
    v_col jsonb;
    v_sql_type text;
    v_with text := '';
begin
    if p_columns is null then
        if v_table is null then
            raise exception 'the data source has no import table' using errcode = '22023';
        end if;
        select pg_catalog.string_agg(pg_catalog.format('%I %s', a.attname,
                                     pg_catalog.format_type(a.atttypid, a.atttypmod)), ', '
                                     order by a.attnum)
        into v_defs
        from pg_catalog.pg_attribute a
        where a.attrelid = pg_catalog.format('public.%I', v_table)::pg_catalog.regclass
          and a.attnum > 0 and not a.attisdropped and a.attname not in ('id', 'imported_at');
    else
        if pg_catalog.jsonb_typeof(p_columns) is distinct from 'array' then
            raise exception 'the columns must be a JSON array' using errcode = '22023';
        end if;
        for v_col in select e.value from pg_catalog.jsonb_array_elements(p_columns) e loop
            if (v_col ->> 'target_name') !~ '^[a-z_][a-z0-9_]{0,62}$' then
                raise exception 'invalid column name %', v_col ->> 'target_name' using errcode = '22023';
            end if;
            v_sql_type := pg_catalog.lower(v_col ->> 'sql_type');
            if v_sql_type not in ('text', 'numeric', 'integer', 'bigint', 'boolean', 'date',
                                  'timestamptz', 'jsonb') then
                raise exception 'unsupported column type %', v_sql_type using errcode = '22023';
            end if;
            v_defs := v_defs || case when v_defs = '' then '' else ', ' end
                      || pg_catalog.format('%I %s', v_col ->> 'target_name', v_sql_type);
        end loop;
    end if;
    -- an incremental source's table is updated in place by its re-syncs: room
    -- on each page for the new versions (HOT updates: no index insertion)
    if exists (select 1 from public.data_sources ds
               where ds.id = p_data_source_id
                 and ds.schedule_config ->> 'incremental_strategy' = 'incremental') then
        v_with := ' with (fillfactor = 90)';
    end if;
    execute pg_catalog.format(
        'create table import_staging.%I (id uuid not null%s)%s',
        v_stg, case when coalesce(v_defs, '') = '' then '' else ', ' || v_defs end, v_with);
    execute pg_catalog.format('grant select, insert, delete on import_staging.%I to service_role', v_stg);
    return v_stg;
end
$$;
