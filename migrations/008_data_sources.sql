-- 008_data_sources.sql: the data import framework, and the secret helpers.
--
-- public.data_sources: a user's connection to an external source (GA4, Meta Pixel,
-- databases, REST, CSV, sheets) with its column mapping and sync schedule.
-- Soft-deleted through the API (deleted_at). Its credentials are encrypted with
-- pgcrypto under the server's key (CAMPAIGND_ENCRYPTION_KEY, passed per
-- transaction in the GUC campaignd.encryption_key, never stored in the database)
-- into public.data_source_credentials, which no API role can read; the
-- data_sources.credentials column holds only the MASKED form ("****abcd" per key).
-- Write them with public.set_data_source_credentials(); the server reads them
-- with public.get_data_source_credentials() (service_role only).
-- public.import_tables: the registry of tables made by public.create_import_table().
-- public.imported_data: normalised analytics metrics (GA4, Meta Pixel).
-- public.sync_logs: the history of syncs.
--
-- public.create_import_table() (spec, hardened per SEED-NOTES item 3): SECURITY
-- DEFINER, search_path '', executable by service_role only; it validates every
-- identifier, takes column types from an allow-list, creates the table with RLS,
-- owner/admin policies and the audit trigger, and registers it.
--
-- Access (RLS, see docs/schema.md): owners read and write their data sources
-- (not the credentials / table_name / sync-state columns, which only the server
-- writes); owners read their import registry rows, imported data and sync logs;
-- admins read and manage all; viewers read imported_data (analytics metrics)
-- only; anon nothing; service_role all.
-- Applied once, inside one transaction, by the database owner.

-- ---------------------------------------------------------------------------
-- Secret helpers (also used by 009_app_settings)
-- ---------------------------------------------------------------------------

-- Returns the encryption key the server set for this transaction with
-- set_config('campaignd.encryption_key', key, true). Raises 22023 (with the hint
-- "set CAMPAIGND_ENCRYPTION_KEY") when it is unset, empty or shorter than 16
-- characters. Internal: no API role may execute it.
create or replace function public.campaignd_encryption_key()
returns text
language plpgsql stable
set search_path = ''
as $$
declare
    v_key text := pg_catalog.current_setting('campaignd.encryption_key', true);
begin
    if v_key is null or v_key = '' then
        raise exception 'no encryption key is set for this transaction'
            using errcode = '22023', hint = 'set CAMPAIGND_ENCRYPTION_KEY';
    end if;
    if pg_catalog.length(v_key) < 16 then
        raise exception 'the encryption key is shorter than 16 characters'
            using errcode = '22023', hint = 'set CAMPAIGND_ENCRYPTION_KEY';
    end if;
    return v_key;
end
$$;

-- Encrypts plaintext with the transaction's key (pgcrypto, OpenPGP symmetric,
-- AES-256). Raises 22023 without a key. Internal.
create or replace function public.campaignd_encrypt(plaintext text)
returns bytea
language sql volatile
set search_path = ''
as $$
    select extensions.pgp_sym_encrypt(plaintext, public.campaignd_encryption_key(), 'cipher-algo=aes256')
$$;

-- Decrypts what public.campaignd_encrypt() wrote. Raises 22023 without a key or
-- when the key is not the one the value was written with. NULL stays NULL. Internal.
create or replace function public.campaignd_decrypt(ciphertext bytea)
returns text
language plpgsql stable
set search_path = ''
as $$
declare
    v_key text := public.campaignd_encryption_key();  -- 22023 first when there is no key
begin
    if ciphertext is null then
        return null;
    end if;
    begin
        return extensions.pgp_sym_decrypt(ciphertext, v_key);
    exception when others then
        raise exception 'cannot decrypt a stored secret: wrong encryption key or corrupt data'
            using errcode = '22023',
                  hint = 'set CAMPAIGND_ENCRYPTION_KEY to the key the secret was written with';
    end;
end
$$;

revoke all on function public.campaignd_encryption_key() from public, anon, authenticated, service_role;
revoke all on function public.campaignd_encrypt(text) from public, anon, authenticated, service_role;
revoke all on function public.campaignd_decrypt(bytea) from public, anon, authenticated, service_role;

-- The masked form of a secret: "****" followed by its last 4 characters when it is
-- at least 12 characters long, else just "****" (so at most a third is shown).
-- NULL stays NULL.
create or replace function public.mask_secret(secret text)
returns text
language sql immutable parallel safe
set search_path = ''
as $$
    select case
        when secret is null then null
        when pg_catalog.length(secret) >= 12 then '****' || pg_catalog.right(secret, 4)
        else '****'
    end
$$;

-- The masked form of a credentials object: same keys, every string value passed
-- through public.mask_secret(), every other non-null value replaced by "****".
create or replace function public.mask_credentials(credentials jsonb)
returns jsonb
language sql immutable parallel safe
set search_path = ''
as $$
    select case
        when credentials is null then null
        else coalesce(
            (select pg_catalog.jsonb_object_agg(e.key,
                        case pg_catalog.jsonb_typeof(e.value)
                            when 'null' then 'null'::jsonb
                            when 'string' then pg_catalog.to_jsonb(public.mask_secret(e.value #>> '{}'))
                            else pg_catalog.to_jsonb('****'::text)
                        end)
             from pg_catalog.jsonb_each(credentials) as e),
            '{}'::jsonb)
    end
$$;

-- True when the value is NULL or an object whose values are all null or masked
-- strings ("****" plus at most 4 characters). Used as a CHECK so that no writer,
-- not even service_role, can put clear credentials into data_sources.credentials.
create or replace function public.credentials_are_masked(credentials jsonb)
returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
    select credentials is null
        or (pg_catalog.jsonb_typeof(credentials) = 'object'
            and not exists (
                select 1 from pg_catalog.jsonb_each(credentials) as e
                where not (pg_catalog.jsonb_typeof(e.value) = 'null'
                           or (pg_catalog.jsonb_typeof(e.value) = 'string'
                               and (e.value #>> '{}') ~ '^\*{4}.{0,4}$'))))
$$;

revoke all on function public.mask_secret(text) from public, anon;
revoke all on function public.mask_credentials(jsonb) from public, anon;
revoke all on function public.credentials_are_masked(jsonb) from public, anon;
grant execute on function public.mask_secret(text), public.mask_credentials(jsonb),
    public.credentials_are_masked(jsonb) to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- data_sources
-- ---------------------------------------------------------------------------

create table public.data_sources (
    id uuid primary key default gen_random_uuid(),
    user_id uuid default auth.uid() references auth.users (id) on delete set null,
    name varchar(255) not null
        constraint data_sources_name_not_blank check (btrim(name) <> ''),
    type varchar(50) not null
        constraint data_sources_type_valid check (type in (
            'google_analytics', 'meta_pixel', 'custom_database', 'rest_api', 'csv_upload',
            'postgres', 'mysql', 'mssql', 'redshift', 'bigquery', 'snowflake',
            'csv_url', 'google_sheets', 'excel')),
    -- MASKED credentials only; the encrypted ones are in data_source_credentials.
    credentials jsonb
        constraint data_sources_credentials_masked check (public.credentials_are_masked(credentials)),
    config jsonb not null default '{}'::jsonb
        constraint data_sources_config_object check (jsonb_typeof(config) = 'object'),
    column_config jsonb not null default '{}'::jsonb
        constraint data_sources_column_config_object check (jsonb_typeof(column_config) = 'object'),
    schedule_config jsonb not null default '{}'::jsonb
        constraint data_sources_schedule_config_object check (jsonb_typeof(schedule_config) = 'object'),
    sync_schedule varchar(50) not null default 'manual'
        constraint data_sources_sync_schedule_valid
        check (sync_schedule in ('manual', 'hourly', 'daily', 'weekly', 'monthly', 'cron')),
    last_sync_at timestamptz,
    next_sync_at timestamptz,                  -- for the scheduler's "due syncs" query
    last_sync_value text,                      -- incremental syncs: last id or timestamp
    sync_status varchar(50) not null default 'idle'
        constraint data_sources_sync_status_valid
        check (sync_status in ('idle', 'syncing', 'success', 'failed')),
    table_name varchar(255)                    -- the current import table, set by create_import_table
        constraint data_sources_table_name_valid
        check (table_name ~ '^import_[a-z0-9_]+$' and length(table_name) <= 63),
    is_active boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    deleted_at timestamptz,
    constraint data_sources_cron_has_expression
        check (sync_schedule <> 'cron' or schedule_config ? 'cron_expression')
);
comment on table public.data_sources is
    'External data sources. credentials is masked; write it with set_data_source_credentials(). Soft delete: set deleted_at.';
comment on column public.data_sources.credentials is
    'Masked credentials ("****" + last 4 characters per key). Clear values are never readable.';

create index idx_data_sources_user on public.data_sources (user_id);
create index idx_data_sources_type on public.data_sources (type);
create index idx_data_sources_status on public.data_sources (sync_status);
create index idx_data_sources_next_sync on public.data_sources (next_sync_at)
    where is_active = true and sync_schedule <> 'manual' and deleted_at is null;

create trigger set_updated_at before update on public.data_sources
    for each row execute function public.set_updated_at();
create trigger audit after insert or update or delete on public.data_sources
    for each row execute function public.audit_trigger();

alter table public.data_sources enable row level security;

-- Column privileges: the API roles never write credentials (masked, via the
-- function), table_name (names a physical table) or the sync state (the server's).
revoke all on public.data_sources from public, anon, authenticated;
grant select, delete on public.data_sources to authenticated;
grant insert (id, user_id, name, type, config, column_config, schedule_config, sync_schedule, is_active)
    on public.data_sources to authenticated;
grant update (user_id, name, type, config, column_config, schedule_config, sync_schedule, is_active,
              deleted_at)
    on public.data_sources to authenticated;
grant all on public.data_sources to service_role;

create policy data_sources_select_own on public.data_sources
    for select to authenticated
    using (user_id = (select auth.uid()));
create policy data_sources_select_admin on public.data_sources
    for select to authenticated
    using ((select public.get_user_role()) = 'admin');

create policy data_sources_insert_own on public.data_sources
    for insert to authenticated
    with check (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user');
create policy data_sources_update_own on public.data_sources
    for update to authenticated
    using (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user')
    with check (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user');
create policy data_sources_delete_own on public.data_sources
    for delete to authenticated
    using (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user');

create policy data_sources_insert_admin on public.data_sources
    for insert to authenticated
    with check ((select public.get_user_role()) = 'admin');
create policy data_sources_update_admin on public.data_sources
    for update to authenticated
    using ((select public.get_user_role()) = 'admin')
    with check ((select public.get_user_role()) = 'admin');
create policy data_sources_delete_admin on public.data_sources
    for delete to authenticated
    using ((select public.get_user_role()) = 'admin');

-- ---------------------------------------------------------------------------
-- data_source_credentials: the encrypted credentials, no API access at all
-- ---------------------------------------------------------------------------

create table public.data_source_credentials (
    data_source_id uuid primary key references public.data_sources (id) on delete cascade,
    credentials_encrypted bytea not null,      -- pgp_sym_encrypt(credentials::text, key)
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
comment on table public.data_source_credentials is
    'Encrypted data source credentials. No policies: only service_role and the definer functions read or write it.';

create trigger set_updated_at before update on public.data_source_credentials
    for each row execute function public.set_updated_at();
create trigger audit after insert or update or delete on public.data_source_credentials
    for each row execute function public.audit_trigger();

alter table public.data_source_credentials enable row level security;
revoke all on public.data_source_credentials from public, anon, authenticated;
grant all on public.data_source_credentials to service_role;

-- Encrypts and stores a data source's credentials (a JSON object of at most 64 KiB;
-- NULL removes them) and sets data_sources.credentials to the masked form, which
-- it returns. Allowed to service_role, admins, and a 'user' who owns the source;
-- anyone else gets 42501 (also for a source that does not exist, so ids cannot be
-- probed). Needs the encryption key (22023 otherwise) unless removing.
create or replace function public.set_data_source_credentials(data_source_id uuid, credentials jsonb)
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_owner uuid;
    v_role text := public.get_user_role();
    v_cipher bytea;
    v_masked jsonb;
begin
    select ds.user_id into v_owner
    from public.data_sources ds
    where ds.id = set_data_source_credentials.data_source_id
    for update;
    if not found
       or not (auth.role() = 'service_role'
               or v_role = 'admin'
               or (v_role = 'user' and v_owner = auth.uid())) then
        raise exception 'permission denied for data source %', set_data_source_credentials.data_source_id
            using errcode = '42501';
    end if;

    if credentials is null then
        delete from public.data_source_credentials c
        where c.data_source_id = set_data_source_credentials.data_source_id;
        v_masked := null;
    else
        if pg_catalog.jsonb_typeof(credentials) <> 'object' then
            raise exception 'credentials must be a JSON object' using errcode = '22023';
        end if;
        if pg_catalog.octet_length(credentials::text) > 65536 then
            raise exception 'credentials are larger than 64 KiB' using errcode = '22023';
        end if;
        v_cipher := public.campaignd_encrypt(credentials::text);
        v_masked := public.mask_credentials(credentials);
        insert into public.data_source_credentials as c (data_source_id, credentials_encrypted)
        values (set_data_source_credentials.data_source_id, v_cipher)
        on conflict on constraint data_source_credentials_pkey
        do update set credentials_encrypted = excluded.credentials_encrypted;
    end if;

    update public.data_sources ds
    set credentials = v_masked
    where ds.id = set_data_source_credentials.data_source_id;
    return v_masked;
end
$$;

-- Returns a data source's credentials in clear (NULL when none are stored), for
-- the server's sync workers: service_role only. Raises 22023 without the right key.
create or replace function public.get_data_source_credentials(data_source_id uuid)
returns jsonb
language plpgsql stable
security definer
set search_path = ''
as $$
declare
    v_key text := public.campaignd_encryption_key();  -- 22023 first when there is no key
    v_cipher bytea;
begin
    select c.credentials_encrypted into v_cipher
    from public.data_source_credentials c
    where c.data_source_id = get_data_source_credentials.data_source_id;
    if v_cipher is null then
        return null;
    end if;
    return public.campaignd_decrypt(v_cipher)::jsonb;
end
$$;

revoke all on function public.set_data_source_credentials(uuid, jsonb) from public, anon;
grant execute on function public.set_data_source_credentials(uuid, jsonb) to authenticated, service_role;
revoke all on function public.get_data_source_credentials(uuid) from public, anon, authenticated;
grant execute on function public.get_data_source_credentials(uuid) to service_role;

-- ---------------------------------------------------------------------------
-- import_tables: registry of the tables create_import_table() made
-- ---------------------------------------------------------------------------

create table public.import_tables (
    id uuid primary key default gen_random_uuid(),
    -- RESTRICT: a source's physical import tables are dropped with
    -- public.drop_import_table() before the source can be hard-deleted.
    data_source_id uuid not null references public.data_sources (id) on delete restrict,
    table_name varchar(255) not null unique
        constraint import_tables_table_name_valid
        check (table_name ~ '^import_[a-z0-9_]+$' and length(table_name) <= 63),
    column_definitions jsonb not null
        constraint import_tables_column_definitions_array check (jsonb_typeof(column_definitions) = 'array'),
    row_count integer not null default 0
        constraint import_tables_row_count_not_negative check (row_count >= 0),
    created_at timestamptz not null default now(),
    last_updated_at timestamptz not null default now()
);
comment on table public.import_tables is
    'Registry of import tables made by create_import_table(). Written by the server only; owners and admins read.';

create index idx_import_tables_source on public.import_tables (data_source_id);

create trigger audit after insert or update or delete on public.import_tables
    for each row execute function public.audit_trigger();

alter table public.import_tables enable row level security;

revoke all on public.import_tables from public, anon, authenticated;
grant select on public.import_tables to authenticated;
grant all on public.import_tables to service_role;

create policy import_tables_select_own on public.import_tables
    for select to authenticated
    using (exists (select 1 from public.data_sources ds
                   where ds.id = import_tables.data_source_id and ds.user_id = (select auth.uid())));
create policy import_tables_select_admin on public.import_tables
    for select to authenticated
    using ((select public.get_user_role()) = 'admin');

-- ---------------------------------------------------------------------------
-- imported_data: normalised analytics metrics
-- ---------------------------------------------------------------------------

create table public.imported_data (
    id uuid primary key default gen_random_uuid(),
    data_source_id uuid not null references public.data_sources (id) on delete cascade,
    metric_name varchar(255) not null,
    metric_value numeric,
    dimensions jsonb not null default '{}'::jsonb
        constraint imported_data_dimensions_object check (jsonb_typeof(dimensions) = 'object'),
    event_date date not null,
    imported_at timestamptz not null default now()
);
comment on table public.imported_data is
    'Imported analytics metrics. Owners of the source read; viewers read all; admins manage; the server writes.';

create index idx_imported_data_source on public.imported_data (data_source_id);
create index idx_imported_data_date on public.imported_data (event_date);
create index idx_imported_data_metric on public.imported_data (metric_name);

create trigger audit after insert or update or delete on public.imported_data
    for each row execute function public.audit_trigger();

alter table public.imported_data enable row level security;

revoke all on public.imported_data from public, anon, authenticated;
grant select, insert, update, delete on public.imported_data to authenticated;
grant all on public.imported_data to service_role;

create policy imported_data_select_own on public.imported_data
    for select to authenticated
    using (exists (select 1 from public.data_sources ds
                   where ds.id = imported_data.data_source_id and ds.user_id = (select auth.uid())));
create policy imported_data_select_admin_viewer on public.imported_data
    for select to authenticated
    using ((select public.get_user_role()) in ('admin', 'viewer'));
create policy imported_data_insert_admin on public.imported_data
    for insert to authenticated
    with check ((select public.get_user_role()) = 'admin');
create policy imported_data_update_admin on public.imported_data
    for update to authenticated
    using ((select public.get_user_role()) = 'admin')
    with check ((select public.get_user_role()) = 'admin');
create policy imported_data_delete_admin on public.imported_data
    for delete to authenticated
    using ((select public.get_user_role()) = 'admin');

-- ---------------------------------------------------------------------------
-- sync_logs
-- ---------------------------------------------------------------------------

create table public.sync_logs (
    id uuid primary key default gen_random_uuid(),
    -- SET NULL: the sync history outlives a hard-deleted source (then admin-only).
    data_source_id uuid references public.data_sources (id) on delete set null,
    started_at timestamptz not null default now(),
    completed_at timestamptz,
    status varchar(50) not null
        constraint sync_logs_status_valid check (status in ('running', 'success', 'failed', 'cancelled')),
    records_imported integer not null default 0
        constraint sync_logs_records_imported_not_negative check (records_imported >= 0),
    records_skipped integer not null default 0  -- rows skipped by cleaning / filter rules
        constraint sync_logs_records_skipped_not_negative check (records_skipped >= 0),
    error_message text,
    preview_data jsonb,                         -- top 10 rows of a test-connection preview
    metadata jsonb not null default '{}'::jsonb
);
comment on table public.sync_logs is
    'Sync history. Owners of the source read; admins read and delete; the server writes.';

create index idx_sync_logs_source on public.sync_logs (data_source_id);
create index idx_sync_logs_status on public.sync_logs (status);
create index idx_sync_logs_started on public.sync_logs (started_at desc);

create trigger audit after insert or update or delete on public.sync_logs
    for each row execute function public.audit_trigger();

alter table public.sync_logs enable row level security;

revoke all on public.sync_logs from public, anon, authenticated;
grant select, delete on public.sync_logs to authenticated;
grant all on public.sync_logs to service_role;

create policy sync_logs_select_own on public.sync_logs
    for select to authenticated
    using (exists (select 1 from public.data_sources ds
                   where ds.id = sync_logs.data_source_id and ds.user_id = (select auth.uid())));
create policy sync_logs_select_admin on public.sync_logs
    for select to authenticated
    using ((select public.get_user_role()) = 'admin');
create policy sync_logs_delete_admin on public.sync_logs
    for delete to authenticated
    using ((select public.get_user_role()) = 'admin');

-- ---------------------------------------------------------------------------
-- create_import_table / drop_import_table
-- ---------------------------------------------------------------------------

-- Creates the import table for a data source and returns its name
-- "import_<p_source_name>_<8 hex>". service_role only.
--   p_user_id         must be the data source's owner (22023 otherwise);
--   p_source_name     must match ^[a-z_][a-z0-9_]{0,46}$ (the server slugifies labels);
--   p_columns         a JSON array of column objects, or a column_config object with a
--                     "columns" array; each {"target_name", "type", "included", ...}.
--                     Columns with "included": false are skipped (absent = included).
--                     target_name must match ^[a-z_][a-z0-9_]{0,62}$, must not be id,
--                     imported_at or a system column name, and must not repeat; type
--                     is one of text (default), number, integer, bigint, boolean, date,
--                     timestamp, json. At most 500 columns, at least 1 included.
--   p_data_source_id  the source (live, not soft-deleted).
-- Anything else raises 22023 before any DDL. The table gets id uuid and
-- imported_at columns, RLS with per-command owner ('user' role, through
-- import_tables -> data_sources) and admin policies, the audit trigger, grants
-- (authenticated: SELECT/INSERT/UPDATE/DELETE; service_role: all); it is recorded
-- in import_tables and in data_sources.table_name.
create or replace function public.create_import_table(
    p_user_id uuid,
    p_source_name text,
    p_columns jsonb,
    p_data_source_id uuid)
returns text
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    c_ident constant text := '^[a-z_][a-z0-9_]{0,62}$';
    c_max_columns constant integer := 500;
    v_owner uuid;
    v_deleted_at timestamptz;
    v_cols jsonb;
    v_col jsonb;
    v_name text;
    v_type text;
    v_sql_type text;
    v_names text[] := '{}';
    v_defs text := '';
    v_kept jsonb := '[]'::jsonb;
    v_table text;
    v_owner_expr text;
    v_is_user text := '(select public.get_user_role()) = ''user''';
    v_is_admin text := '(select public.get_user_role()) = ''admin''';
begin
    if p_user_id is null or p_data_source_id is null then
        raise exception 'user_id and data_source_id are required' using errcode = '22023';
    end if;
    select ds.user_id, ds.deleted_at into v_owner, v_deleted_at
    from public.data_sources ds
    where ds.id = p_data_source_id
    for update;
    if not found then
        raise exception 'data source % does not exist', p_data_source_id
            using errcode = '22023';
    end if;
    if v_owner is distinct from p_user_id then
        raise exception 'data source % is not owned by user %',
            p_data_source_id, p_user_id using errcode = '22023';
    end if;
    if v_deleted_at is not null then
        raise exception 'data source % is deleted', p_data_source_id
            using errcode = '22023';
    end if;

    if p_source_name is null or p_source_name !~ '^[a-z_][a-z0-9_]{0,46}$' then
        raise exception 'invalid source name %', pg_catalog.quote_literal(pg_catalog.left(p_source_name, 80))
            using errcode = '22023',
                  hint = 'use 1 to 47 characters of a-z, 0-9 and _, not starting with a digit';
    end if;

    v_cols := case pg_catalog.jsonb_typeof(p_columns)
                  when 'array' then p_columns
                  when 'object' then p_columns -> 'columns'
              end;
    if v_cols is null or pg_catalog.jsonb_typeof(v_cols) <> 'array' then
        raise exception 'columns must be a JSON array of column objects (or an object with "columns")'
            using errcode = '22023';
    end if;
    if pg_catalog.jsonb_array_length(v_cols) > c_max_columns then
        raise exception 'more than % columns', c_max_columns using errcode = '22023';
    end if;

    for v_col in select e.value from pg_catalog.jsonb_array_elements(v_cols) as e
    loop
        if pg_catalog.jsonb_typeof(v_col) <> 'object' then
            raise exception 'each column must be a JSON object' using errcode = '22023';
        end if;
        if pg_catalog.jsonb_typeof(v_col -> 'included') not in ('boolean', 'null') then
            raise exception '"included" must be true or false' using errcode = '22023';
        end if;
        if not coalesce((v_col ->> 'included')::boolean, true) then
            continue;
        end if;
        v_name := v_col ->> 'target_name';
        if v_name is null or v_name !~ c_ident then
            raise exception 'invalid column name %', pg_catalog.quote_literal(pg_catalog.left(v_name, 80))
                using errcode = '22023',
                      hint = 'use 1 to 63 characters of a-z, 0-9 and _, not starting with a digit';
        end if;
        if v_name in ('id', 'imported_at', 'tableoid', 'xmin', 'cmin', 'xmax', 'cmax', 'ctid', 'oid') then
            raise exception 'column name % is reserved', v_name using errcode = '22023';
        end if;
        if v_name = any (v_names) then
            raise exception 'column name % appears twice', v_name using errcode = '22023';
        end if;
        v_type := coalesce(v_col ->> 'type', 'text');
        v_sql_type := case v_type
                          when 'text' then 'text'
                          when 'number' then 'numeric'
                          when 'integer' then 'integer'
                          when 'bigint' then 'bigint'
                          when 'boolean' then 'boolean'
                          when 'date' then 'date'
                          when 'timestamp' then 'timestamptz'
                          when 'json' then 'jsonb'
                      end;
        if v_sql_type is null then
            raise exception 'unsupported column type %', pg_catalog.quote_literal(pg_catalog.left(v_type, 80))
                using errcode = '22023',
                      hint = 'use text, number, integer, bigint, boolean, date, timestamp or json';
        end if;
        v_defs := v_defs || pg_catalog.format('%I %s, ', v_name, v_sql_type);
        v_names := v_names || v_name;
        v_kept := v_kept || pg_catalog.jsonb_build_array(
            v_col || pg_catalog.jsonb_build_object('target_name', v_name, 'type', v_type,
                                                   'sql_type', v_sql_type));
    end loop;
    if pg_catalog.cardinality(v_names) = 0 then
        raise exception 'no included columns' using errcode = '22023';
    end if;

    v_table := 'import_' || p_source_name || '_'
               || pg_catalog.substr(pg_catalog.md5(gen_random_uuid()::text), 1, 8);
    if v_table !~ c_ident then
        raise exception 'internal error: bad table name %', v_table;
    end if;

    execute pg_catalog.format(
        'create table public.%I (id uuid primary key default pg_catalog.gen_random_uuid(), '
        '%s imported_at timestamptz not null default pg_catalog.now())',
        v_table, v_defs);
    execute pg_catalog.format('comment on table public.%I is %L', v_table,
        'Import table of data source ' || p_data_source_id::text
        || ' (made by create_import_table).');
    execute pg_catalog.format('alter table public.%I enable row level security', v_table);
    execute pg_catalog.format('revoke all on table public.%I from public, anon, authenticated', v_table);
    execute pg_catalog.format('grant select, insert, update, delete on table public.%I to authenticated',
                              v_table);
    execute pg_catalog.format('grant all on table public.%I to service_role', v_table);

    v_owner_expr := pg_catalog.format(
        'exists (select 1 from public.import_tables it '
        'join public.data_sources ds on ds.id = it.data_source_id '
        'where it.table_name = %L and ds.user_id = (select auth.uid()))', v_table);
    execute pg_catalog.format(
        'create policy owner_select on public.%I for select to authenticated using (%s)',
        v_table, v_owner_expr);
    execute pg_catalog.format(
        'create policy owner_insert on public.%I for insert to authenticated with check (%s and %s)',
        v_table, v_owner_expr, v_is_user);
    execute pg_catalog.format(
        'create policy owner_update on public.%I for update to authenticated using (%s and %s) '
        'with check (%s and %s)',
        v_table, v_owner_expr, v_is_user, v_owner_expr, v_is_user);
    execute pg_catalog.format(
        'create policy owner_delete on public.%I for delete to authenticated using (%s and %s)',
        v_table, v_owner_expr, v_is_user);
    execute pg_catalog.format(
        'create policy admin_select on public.%I for select to authenticated using (%s)',
        v_table, v_is_admin);
    execute pg_catalog.format(
        'create policy admin_insert on public.%I for insert to authenticated with check (%s)',
        v_table, v_is_admin);
    execute pg_catalog.format(
        'create policy admin_update on public.%I for update to authenticated using (%s) with check (%s)',
        v_table, v_is_admin, v_is_admin);
    execute pg_catalog.format(
        'create policy admin_delete on public.%I for delete to authenticated using (%s)',
        v_table, v_is_admin);
    execute pg_catalog.format(
        'create trigger audit after insert or update or delete on public.%I '
        'for each row execute function public.audit_trigger()', v_table);

    insert into public.import_tables (data_source_id, table_name, column_definitions)
    values (p_data_source_id, v_table, v_kept);
    update public.data_sources ds
    set table_name = v_table
    where ds.id = p_data_source_id;
    return v_table;
end
$$;

-- Drops an import table registered in import_tables, removes its registry row and
-- clears data_sources.table_name if it named it. Raises 22023 for a name that is
-- not a registered import table. service_role only.
create or replace function public.drop_import_table(table_name text)
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_id uuid;
    v_source uuid;
begin
    if drop_import_table.table_name is null
       or drop_import_table.table_name !~ '^import_[a-z0-9_]+$'
       or pg_catalog.length(drop_import_table.table_name) > 63 then
        raise exception 'invalid import table name %',
            pg_catalog.quote_literal(pg_catalog.left(drop_import_table.table_name, 80))
            using errcode = '22023';
    end if;
    select it.id, it.data_source_id into v_id, v_source
    from public.import_tables it
    where it.table_name = drop_import_table.table_name
    for update;
    if not found then
        raise exception '% is not a registered import table', drop_import_table.table_name
            using errcode = '22023';
    end if;
    execute pg_catalog.format('drop table if exists public.%I', drop_import_table.table_name);
    delete from public.import_tables it where it.id = v_id;
    update public.data_sources ds
    set table_name = null
    where ds.id = v_source and ds.table_name = drop_import_table.table_name;
end
$$;

revoke all on function public.create_import_table(uuid, text, jsonb, uuid) from public, anon, authenticated;
grant execute on function public.create_import_table(uuid, text, jsonb, uuid) to service_role;
revoke all on function public.drop_import_table(text) from public, anon, authenticated;
grant execute on function public.drop_import_table(text) to service_role;
