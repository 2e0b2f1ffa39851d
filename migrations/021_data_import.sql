-- 021_data_import.sql: file imports end to end (issue 10).
--
-- What the server needs to run imports of csv_upload / excel / csv_url /
-- google_sheets sources as jobs (kind 'import.sync' on the queue of
-- 020_job_queue.sql), and what users may ask of it:
--
--   * the private storage bucket 'imports': users upload their files under their
--     own user id folder (the own-folder policies of storage.objects apply);
--   * sync_logs.cancel_requested_at: a cancel request the running job sees;
--   * public.request_data_source_sync(): the caller (owner or admin) asks for a
--     sync; opens its sync_logs row and enqueues the job (SECURITY DEFINER: the
--     job queue is private);
--   * public.cancel_data_source_sync(): asks a running sync to stop;
--   * public.record_data_source_preview(): stores a test-connection preview in a
--     sync_logs row (callers may not write sync_logs themselves);
--   * public.import_create_staging() / public.import_finish_staging(): service_role
--     only; a staging table in the private schema import_staging is loaded with
--     COPY, deduplicated in SQL, indexed once and swapped in (full sync) or merged
--     (incremental), all inside the job's transaction, so a cancelled, failed or
--     killed run leaves the destination exactly as it was;
--   * public.import_secure_table(): the RLS, policies, grants and audit trigger of
--     an import table (the same as create_import_table gives it), re-applied to a
--     swapped-in table;
--   * public.import_contacts_from_staging(): the contacts destination.
-- Applied once, inside one transaction, by the database owner.

-- ---------------------------------------------------------------------------
-- The imports bucket
-- ---------------------------------------------------------------------------

insert into storage.buckets (id, name, public) values ('imports', 'imports', false)
on conflict (id) do nothing;

-- ---------------------------------------------------------------------------
-- sync_logs: cancel requests
-- ---------------------------------------------------------------------------

alter table public.sync_logs add column cancel_requested_at timestamptz;
comment on column public.sync_logs.cancel_requested_at is
    'Set by cancel_data_source_sync(); the running job stops within a second and ends the run as cancelled.';

-- One running sync per source at a time (previews are stored as finished rows).
create unique index idx_sync_logs_one_running on public.sync_logs (data_source_id)
    where status = 'running';

-- ---------------------------------------------------------------------------
-- Requests from users
-- ---------------------------------------------------------------------------

-- Raises 42501 unless the caller may run syncs of the source (its owner with the
-- 'user' role, or an admin); "not found" (PT404) when the source is not visible
-- to the caller or deleted. Returns the source's type. Reveals nothing the
-- caller could not read through data_sources itself.
create or replace function public.import_check_caller(p_data_source_id uuid)
returns text
language plpgsql stable
security definer
set search_path = ''
as $$
declare
    v_role text := public.get_user_role();
    v_owner uuid;
    v_type text;
begin
    select ds.user_id, ds.type into v_owner, v_type
    from public.data_sources ds
    where ds.id = p_data_source_id and ds.deleted_at is null;
    if not found or (v_role is distinct from 'admin' and v_owner is distinct from auth.uid()) then
        raise exception 'data source not found' using errcode = 'PT404',
            hint = 'It does not exist, was deleted, or is not visible to you.';
    end if;
    if v_role is null or v_role not in ('admin', 'user') then
        raise exception 'your role may not run imports' using errcode = '42501';
    end if;
    return v_type;
end
$$;
revoke all on function public.import_check_caller(uuid) from public, anon;
grant execute on function public.import_check_caller(uuid) to authenticated;

-- Asks for a sync of a data source now: opens its sync_logs row ('running',
-- metadata.phase 'queued'), marks the source 'syncing' and enqueues the job
-- 'import.sync'. Returns the sync_logs id. 409 (PT409) while another sync of the
-- source is running; 400 (22023) for a type that has no importer yet.
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
    if v_type not in ('csv_upload', 'csv_url', 'google_sheets', 'excel') then
        raise exception 'sources of type % cannot be synced by campaignd yet', v_type
            using errcode = '22023', hint = 'supported: csv_upload, csv_url, google_sheets, excel';
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

-- Asks a running sync to stop. Returns the sync_logs row as JSON. 409 (PT409)
-- when it is no longer running; 404 when not visible to the caller.
create or replace function public.cancel_data_source_sync(p_sync_log_id uuid)
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_source uuid;
    v_status text;
    v_row public.sync_logs;
begin
    select sl.data_source_id, sl.status into v_source, v_status
    from public.sync_logs sl where sl.id = p_sync_log_id for update;
    if not found or v_source is null then
        raise exception 'sync log not found' using errcode = 'PT404',
            hint = 'It does not exist, was deleted, or is not visible to you.';
    end if;
    perform public.import_check_caller(v_source);
    if v_status <> 'running' then
        raise exception 'this sync is no longer running (status %)', v_status
            using errcode = 'PT409';
    end if;
    update public.sync_logs sl
    set cancel_requested_at = coalesce(sl.cancel_requested_at, pg_catalog.now())
    where sl.id = p_sync_log_id
    returning * into v_row;
    return pg_catalog.to_jsonb(v_row);
end
$$;
revoke all on function public.cancel_data_source_sync(uuid) from public, anon;
grant execute on function public.cancel_data_source_sync(uuid) to authenticated;

-- Stores a test-connection preview ({columns, rows, warnings}) as a finished
-- sync_logs row (metadata.kind 'preview'). Returns the row's id.
create or replace function public.record_data_source_preview(p_data_source_id uuid,
                                                             p_preview jsonb)
returns uuid
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_log uuid;
begin
    perform public.import_check_caller(p_data_source_id);
    if pg_catalog.jsonb_typeof(p_preview) is distinct from 'object' then
        raise exception 'the preview must be a JSON object' using errcode = '22023';
    end if;
    insert into public.sync_logs (data_source_id, status, completed_at, preview_data, metadata)
    values (p_data_source_id, 'success', pg_catalog.now(), p_preview,
            pg_catalog.jsonb_build_object('kind', 'preview', 'requested_by', auth.uid()))
    returning id into v_log;
    return v_log;
end
$$;
revoke all on function public.record_data_source_preview(uuid, jsonb) from public, anon;
grant execute on function public.record_data_source_preview(uuid, jsonb) to authenticated;

-- ---------------------------------------------------------------------------
-- Import tables: security, staging, swap (service_role only)
-- ---------------------------------------------------------------------------

create schema import_staging;
comment on schema import_staging is
    'Staging tables of running imports (one per job transaction); never visible to API roles.';
revoke all on schema import_staging from public;
grant usage on schema import_staging to service_role;

-- Gives public.<p_table> what create_import_table gives an import table: RLS,
-- grants, owner ('user' role, through import_tables -> data_sources) and admin
-- policies per command, and the audit trigger. p_table must be registered in
-- import_tables. Internal.
create or replace function public.import_secure_table(p_table text)
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_owner_expr text;
    v_is_user text := '(select public.get_user_role()) = ''user''';
    v_is_admin text := '(select public.get_user_role()) = ''admin''';
begin
    if not exists (select 1 from public.import_tables it where it.table_name = p_table) then
        raise exception '% is not a registered import table', p_table using errcode = '22023';
    end if;
    execute pg_catalog.format('alter table public.%I enable row level security', p_table);
    execute pg_catalog.format('revoke all on table public.%I from public, anon, authenticated', p_table);
    execute pg_catalog.format('grant select, insert, update, delete on table public.%I to authenticated',
                              p_table);
    execute pg_catalog.format('grant all on table public.%I to service_role', p_table);
    v_owner_expr := pg_catalog.format(
        'exists (select 1 from public.import_tables it '
        'join public.data_sources ds on ds.id = it.data_source_id '
        'where it.table_name = %L and ds.user_id = (select auth.uid()))', p_table);
    execute pg_catalog.format(
        'create policy owner_select on public.%I for select to authenticated using (%s)',
        p_table, v_owner_expr);
    execute pg_catalog.format(
        'create policy owner_insert on public.%I for insert to authenticated with check (%s and %s)',
        p_table, v_owner_expr, v_is_user);
    execute pg_catalog.format(
        'create policy owner_update on public.%I for update to authenticated using (%s and %s) '
        'with check (%s and %s)',
        p_table, v_owner_expr, v_is_user, v_owner_expr, v_is_user);
    execute pg_catalog.format(
        'create policy owner_delete on public.%I for delete to authenticated using (%s and %s)',
        p_table, v_owner_expr, v_is_user);
    execute pg_catalog.format(
        'create policy admin_select on public.%I for select to authenticated using (%s)',
        p_table, v_is_admin);
    execute pg_catalog.format(
        'create policy admin_insert on public.%I for insert to authenticated with check (%s)',
        p_table, v_is_admin);
    execute pg_catalog.format(
        'create policy admin_update on public.%I for update to authenticated using (%s) with check (%s)',
        p_table, v_is_admin, v_is_admin);
    execute pg_catalog.format(
        'create policy admin_delete on public.%I for delete to authenticated using (%s)',
        p_table, v_is_admin);
    execute pg_catalog.format(
        'create trigger audit after insert or update or delete on public.%I '
        'for each row execute function public.audit_trigger()', p_table);
end
$$;
revoke all on function public.import_secure_table(text) from public, anon, authenticated, service_role;

-- The current import table of a source, checked against the registry; NULL when
-- the source has none. Internal.
create or replace function public.import_current_table(p_data_source_id uuid)
returns text
language sql stable
security definer
set search_path = ''
as $$
    select it.table_name::text
    from public.data_sources ds
    join public.import_tables it on it.table_name = ds.table_name and it.data_source_id = ds.id
    where ds.id = p_data_source_id
$$;
revoke all on function public.import_current_table(uuid) from public, anon, authenticated;
grant execute on function public.import_current_table(uuid) to service_role;

-- Creates the staging table of a run: import_staging.stg_<12 hex>, with the data
-- columns of the source's current import table when p_columns is NULL, else (the
-- contacts destination) with p_columns: a JSON array of {"target_name",
-- "sql_type"} from the allow-list of create_import_table; plus id uuid. No index, no trigger,
-- no constraint: loaded with COPY (one COPY into a new table appends its pages
-- in order, so ctid order is file order), indexed once at the end. service_role may insert
-- into it and read it. Returns its name (without schema).
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
    execute pg_catalog.format(
        'create table import_staging.%I (id uuid not null%s)',
        v_stg, case when coalesce(v_defs, '') = '' then '' else ', ' || v_defs end);
    execute pg_catalog.format('grant select, insert, delete on import_staging.%I to service_role', v_stg);
    return v_stg;
end
$$;
revoke all on function public.import_create_staging(uuid, jsonb) from public, anon, authenticated;
grant execute on function public.import_create_staging(uuid, jsonb) to service_role;

-- Removes duplicate rows from a staging table: p_handling 'keep_first' keeps the
-- first row of each key in file order (ctid order: the table was filled by one
-- COPY and never updated), 'keep_last' the last, 'skip_all'
-- drops every row whose key repeats; anything else (or no key columns) keeps
-- all. Key columns named in p_ci_columns compare case-insensitively (e-mail).
-- Rows with a NULL key part are never duplicates. Returns the rows removed.
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
    -- skip_all: every row of a repeated key; keep_first / keep_last: all but
    -- the first / last of each key in file order
    execute pg_catalog.format(
        'delete from import_staging.%1$I s using ('
        '  select ctid, pg_catalog.row_number() over (partition by %2$s order by ctid %3$s) rn, '
        '         pg_catalog.count(*) over (partition by %2$s) n '
        '  from import_staging.%1$I where %4$s'
        ') d where s.ctid = d.ctid and %5$s',
        p_staging, v_key, case when p_handling = 'keep_last' then 'desc' else 'asc' end,
        v_notnull, case when p_handling = 'skip_all' then 'd.n > 1' else 'd.rn > 1' end);
    get diagnostics v_removed = row_count;
    return v_removed;
end
$$;
revoke all on function public.import_dedupe_staging(text, text[], text[], text) from public, anon, authenticated;

-- Finishes a run into the source's import table:
--   p_mode 'replace': the staging rows become the table's rows. The staging table
--     gets its primary key (built once), the old table is dropped and the staging
--     table takes its name, security and registry row: readers see the old rows
--     until the job's transaction commits and the new ones after.
--   p_mode 'append': the rows are added. 'upsert': rows of the table whose key
--     (p_key_columns) matches a staging row are replaced.
-- Duplicates in the staging table are handled first (import_dedupe_staging).
-- Per-row audit is off for the load; one audit_logs row records the sync.
-- Returns {"rows": rows now in the table, "imported": rows loaded,
-- "duplicates": rows removed as duplicates}.
create or replace function public.import_finish_staging(p_data_source_id uuid, p_staging text,
                                                       p_mode text, p_key_columns text[],
                                                       p_ci_columns text[], p_handling text,
                                                       p_sync_log_id uuid)
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
    v_dups := public.import_dedupe_staging(p_staging, p_key_columns, p_ci_columns, p_handling);
    execute pg_catalog.format('select count(*) from import_staging.%I', p_staging) into v_loaded;

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
        v_rows := v_loaded;
    else
        execute pg_catalog.format('alter table public.%I disable trigger audit', v_table);
        if p_mode = 'upsert' and coalesce(pg_catalog.cardinality(p_key_columns), 0) > 0 then
            select pg_catalog.string_agg(
                       case when k = any (coalesce(p_ci_columns, '{}'))
                            then pg_catalog.format('pg_catalog.lower(t.%1$I::text) = pg_catalog.lower(s.%1$I::text)', k)
                            else pg_catalog.format('t.%1$I = s.%1$I', k) end, ' and ')
            into v_key
            from pg_catalog.unnest(p_key_columns) k;
            execute pg_catalog.format('delete from public.%I t using import_staging.%I s where %s',
                                      v_table, p_staging, v_key);
        end if;
        execute pg_catalog.format('insert into public.%I (%s) select %s from import_staging.%I',
                                  v_table, v_cols, v_cols, p_staging);
        execute pg_catalog.format('alter table public.%I enable trigger audit', v_table);
        execute pg_catalog.format('drop table import_staging.%I', p_staging);
        execute pg_catalog.format('select count(*) from public.%I', v_table) into v_rows;
    end if;

    update public.import_tables it
    set row_count = least(v_rows, 2147483647)::integer, last_updated_at = pg_catalog.now()
    where it.table_name = v_table;

    select ds.user_id into v_owner from public.data_sources ds where ds.id = p_data_source_id;
    insert into public.audit_logs (user_id, action, resource_type, resource_id, status, metadata)
    values (v_owner, 'import', v_table, p_data_source_id, 'success',
            pg_catalog.jsonb_build_object('sync_log_id', p_sync_log_id, 'mode', p_mode,
                                          'rows_loaded', v_loaded, 'duplicates_removed', v_dups,
                                          'rows_in_table', v_rows));
    return pg_catalog.jsonb_build_object('rows', v_rows, 'imported', v_loaded, 'duplicates', v_dups);
end
$$;
revoke all on function public.import_finish_staging(uuid, text, text, text[], text[], text, uuid)
    from public, anon, authenticated;
grant execute on function public.import_finish_staging(uuid, text, text, text[], text[], text, uuid)
    to service_role;

-- ---------------------------------------------------------------------------
-- The job's bookkeeping (service_role only)
-- ---------------------------------------------------------------------------

-- Starts a run of the job import.sync and returns the sync_logs id it reports
-- to, or NULL when there is nothing to do (cancelled before it started, already
-- finished, the source is gone, or another sync of the source is running).
--   p_sync_log_id: the row request_data_source_sync opened (NULL when the
--     scheduler enqueued the job: a row is opened here);
--   p_attempt, p_job_id: the queue's attempt number and job id. A row whose
--     phase is already 'running' belongs to an earlier attempt that died (kill -9,
--     lost lease): it is closed as failed "interrupted" and a new row is opened
--     for this attempt. A row an earlier attempt closed as failed (a temporary
--     error, retried) is followed by a new row too.
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
            update public.data_sources ds set sync_status = 'syncing' where ds.id = p_data_source_id;
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
            update public.data_sources ds set sync_status = 'syncing' where ds.id = p_data_source_id;
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
    update public.data_sources ds set sync_status = 'syncing' where ds.id = p_data_source_id;
    return v_new;
end
$$;
revoke all on function public.import_begin_run(uuid, uuid, text, integer, bigint) from public, anon, authenticated;
grant execute on function public.import_begin_run(uuid, uuid, text, integer, bigint) to service_role;

-- Ends a run that did not succeed: status 'failed' (with a message for the user)
-- or 'cancelled'; the source's sync_status becomes 'failed' or 'idle'. p_metadata
-- is merged into the row's metadata. A row that is no longer running is left alone.
create or replace function public.import_end_run(p_sync_log_id uuid, p_status text,
                                                 p_error text, p_metadata jsonb)
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_source uuid;
begin
    if p_status not in ('failed', 'cancelled') then
        raise exception 'invalid status %', p_status using errcode = '22023';
    end if;
    update public.sync_logs sl
    set status = p_status, completed_at = pg_catalog.now(),
        error_message = case when p_status = 'failed' then p_error end,
        metadata = sl.metadata || coalesce(p_metadata, '{}') || pg_catalog.jsonb_build_object('phase', p_status)
    where sl.id = p_sync_log_id and sl.status = 'running'
    returning sl.data_source_id into v_source;
    update public.data_sources ds
    set sync_status = case when p_status = 'failed' then 'failed' else 'idle' end
    where ds.id = v_source;
end
$$;
revoke all on function public.import_end_run(uuid, text, text, jsonb) from public, anon, authenticated;
grant execute on function public.import_end_run(uuid, text, text, jsonb) to service_role;

-- Reports progress of a running sync (merged into metadata, at most about once a
-- second) and returns whether a cancel was requested (true also when the row is
-- no longer running).
create or replace function public.import_progress(p_sync_log_id uuid, p_metadata jsonb)
returns boolean
language sql volatile
security definer
set search_path = ''
as $$
    with u as (
        update public.sync_logs sl
        set metadata = sl.metadata || p_metadata
        where sl.id = p_sync_log_id and sl.status = 'running'
        returning sl.cancel_requested_at
    )
    select coalesce((select u.cancel_requested_at is not null from u), true)
$$;
revoke all on function public.import_progress(uuid, jsonb) from public, anon, authenticated;
grant execute on function public.import_progress(uuid, jsonb) to service_role;

-- Closes a successful run, in the job's transaction (so the row says 'success'
-- exactly when the data committed).
create or replace function public.import_succeed_run(p_sync_log_id uuid, p_imported bigint,
                                                     p_skipped bigint, p_metadata jsonb)
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
    set sync_status = 'success', last_sync_at = pg_catalog.now()
    where ds.id = v_source;
end
$$;
revoke all on function public.import_succeed_run(uuid, bigint, bigint, jsonb) from public, anon, authenticated;
grant execute on function public.import_succeed_run(uuid, bigint, bigint, jsonb) to service_role;

-- The contacts destination: upserts the source owner's contacts from a staging
-- table whose columns include email and/or phone (and optionally first_name,
-- last_name; every other column goes into attributes). E-mail is stored
-- lower-case; a row whose e-mail or phone the contacts table would refuse is
-- skipped and counted. An existing contact (by e-mail, else by phone) keeps what
-- the file leaves empty, and a soft-deleted one is revived. Consent is never
-- implied: no consent row is created or changed here (the contacts' triggers only
-- link existing consent rows). Returns {"imported", "invalid"}.
create or replace function public.import_contacts_from_staging(p_data_source_id uuid,
                                                              p_staging text,
                                                              p_sync_log_id uuid)
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_owner uuid;
    v_total bigint;
    v_email bigint;
    v_phone bigint;
    c_email constant text := '^[^@[:space:]]+@[^@[:space:]]+$';
    c_phone constant text := '^\+[1-9][0-9]{1,14}$';
begin
    if p_staging !~ '^stg_[0-9a-f]{12}$'
       or pg_catalog.to_regclass(pg_catalog.format('import_staging.%I', p_staging)) is null then
        raise exception 'invalid staging table %', p_staging using errcode = '22023';
    end if;
    select ds.user_id into v_owner from public.data_sources ds where ds.id = p_data_source_id;
    if v_owner is null then
        raise exception 'the data source has no owner' using errcode = '22023';
    end if;
    execute pg_catalog.format(
        'create temporary table import_contact_rows on commit drop as '
        'select pg_catalog.lower(pg_catalog.btrim(j ->> ''email'')) as email, '
        '       pg_catalog.btrim(j ->> ''phone'') as phone, '
        '       pg_catalog.left(j ->> ''first_name'', 100) as first_name, '
        '       pg_catalog.left(j ->> ''last_name'', 100) as last_name, '
        '       pg_catalog.jsonb_strip_nulls(j - ''id'' - ''email'' - ''phone'' - ''first_name'' - ''last_name'') as attributes '
        'from (select pg_catalog.to_jsonb(s) as j from import_staging.%I s) x', p_staging);
    select count(*) into v_total from pg_temp.import_contact_rows;
    update pg_temp.import_contact_rows r set email = null where r.email = '' or r.email !~ c_email
        or pg_catalog.length(r.email) > 255;
    update pg_temp.import_contact_rows r set phone = null where r.phone = '' or r.phone !~ c_phone;

    insert into public.contacts as c (user_id, email, phone, first_name, last_name, attributes, source)
    select distinct on (r.email) v_owner, r.email,
           case when exists (select 1 from public.contacts o
                             where o.user_id = v_owner and o.phone = r.phone
                               and o.email is distinct from r.email) then null else r.phone end,
           r.first_name, r.last_name, r.attributes, 'import'
    from pg_temp.import_contact_rows r
    where r.email is not null
    order by r.email
    on conflict (user_id, email) do update
    set phone = coalesce(excluded.phone, c.phone),
        first_name = coalesce(excluded.first_name, c.first_name),
        last_name = coalesce(excluded.last_name, c.last_name),
        attributes = c.attributes || excluded.attributes,
        deleted_at = null;
    get diagnostics v_email = row_count;

    insert into public.contacts as c (user_id, phone, first_name, last_name, attributes, source)
    select distinct on (r.phone) v_owner, r.phone, r.first_name, r.last_name, r.attributes, 'import'
    from pg_temp.import_contact_rows r
    where r.email is null and r.phone is not null
    order by r.phone
    on conflict (user_id, phone) do update
    set first_name = coalesce(excluded.first_name, c.first_name),
        last_name = coalesce(excluded.last_name, c.last_name),
        attributes = c.attributes || excluded.attributes,
        deleted_at = null;
    get diagnostics v_phone = row_count;

    execute pg_catalog.format('drop table import_staging.%I', p_staging);
    insert into public.audit_logs (user_id, action, resource_type, resource_id, status, metadata)
    values (v_owner, 'import', 'contacts', p_data_source_id, 'success',
            pg_catalog.jsonb_build_object('sync_log_id', p_sync_log_id,
                                          'contacts_upserted', v_email + v_phone));
    return pg_catalog.jsonb_build_object(
        'imported', v_email + v_phone,
        'invalid', (select count(*) from pg_temp.import_contact_rows r
                    where r.email is null and r.phone is null),
        'merged', v_total - v_email - v_phone
                  - (select count(*) from pg_temp.import_contact_rows r
                     where r.email is null and r.phone is null));
end
$$;
revoke all on function public.import_contacts_from_staging(uuid, text, uuid) from public, anon, authenticated;
grant execute on function public.import_contacts_from_staging(uuid, text, uuid) to service_role;

-- ---------------------------------------------------------------------------
-- Audit of sync_logs: the state changes, not the progress reports
-- ---------------------------------------------------------------------------

-- A running sync reports its progress about twice a second; each report is an
-- UPDATE of its sync_logs row. The audit trail keeps the row's creation, its
-- deletion and the changes of status or cancel request, not every progress
-- report (one audit row per sync, not per imported row or per second).
drop trigger audit on public.sync_logs;
create trigger audit after insert or delete on public.sync_logs
    for each row execute function public.audit_trigger();
create trigger audit_status after update on public.sync_logs
    for each row
    when (old.status is distinct from new.status
          or old.cancel_requested_at is distinct from new.cancel_requested_at
          or old.data_source_id is distinct from new.data_source_id
          or old.preview_data is distinct from new.preview_data)
    execute function public.audit_trigger();
