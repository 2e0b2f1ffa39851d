-- 017_app_roles.sql: one database role per application role, and every policy
-- written TO the role it is for (issue 9 §1).
--
-- Before: every policy was TO authenticated, and the SELECT policies of a table
-- OR'ed an owner test with a role test:
--     user_id = auth.uid() OR (select get_user_role()) in ('admin', 'viewer')
-- An initplan cannot be folded at plan time, so PostgreSQL could not use
-- (user_id, created_at desc) for a user's list and filtered thousands of rows.
--
-- After: app_admin, app_user and app_viewer are NOLOGIN INHERIT members of
-- authenticated (they inherit its table privileges and the policies still
-- written TO authenticated or TO anon, authenticated). Each request's prelude
-- (src/db/db.c) runs
--     set_config('role', case when $1 = 'authenticated'
--                             then auth.db_role_for(<claims>->>'sub') else $1 end, true)
-- so the member role comes from auth.users, the authoritative place, in the
-- same pipelined statement; a banned or deleted user becomes anon on the next
-- request. The JWT's role claim and supabase-js stay 'authenticated'. The
-- planner then applies only the policies of the caller's role: a user's list is
-- an index range scan on (user_id, created_at desc).
--
-- This migration drops and recreates the policies of every table whose policies
-- mixed owner and role tests (and the admin-only ones, for one rule: no policy
-- written TO authenticated calls get_user_role() any more). The consent tables'
-- policies change meaning and are rewritten by 018_domain_rules.sql.
-- Applied once, inside one transaction, by the database owner.

-- ---------------------------------------------------------------------------
-- Roles (cluster-wide: created only when missing)
-- ---------------------------------------------------------------------------

do $roles$
declare
    v_name text;
begin
    foreach v_name in array array['app_admin', 'app_user', 'app_viewer'] loop
        if not exists (select 1 from pg_catalog.pg_roles where rolname = v_name) then
            execute pg_catalog.format('create role %I nologin inherit', v_name);
        end if;
        if exists (select 1 from pg_catalog.pg_roles where rolname = v_name
                     and (rolsuper or rolbypassrls or rolcanlogin or rolcreatedb or rolcreaterole)) then
            raise exception 'role % must be NOSUPERUSER NOBYPASSRLS NOLOGIN NOCREATEDB NOCREATEROLE', v_name;
        end if;
        execute pg_catalog.format('alter role %I nologin inherit', v_name);
    end loop;
end
$roles$;

grant authenticated to app_admin, app_user, app_viewer;
grant app_admin, app_user, app_viewer to authenticator;

comment on role app_admin is 'Requests of users whose authoritative role is admin (member of authenticated).';
comment on role app_user is 'Requests of users whose authoritative role is user (member of authenticated).';
comment on role app_viewer is 'Requests of users whose authoritative role is viewer (member of authenticated).';

-- ---------------------------------------------------------------------------
-- The request's database role
-- ---------------------------------------------------------------------------

-- The database role a request with a verified 'authenticated' token for `sub`
-- runs as: app_admin | app_user | app_viewer from auth.users.raw_app_meta_data
-- (a user without a role is app_user), or anon when sub is not a UUID, names no
-- user, a deleted user (deleted_at) or a banned one (banned_until in the
-- future). SECURITY DEFINER: the caller (authenticator, before SET ROLE) cannot
-- read auth.users.
create or replace function auth.db_role_for(sub text)
returns text
language sql stable
security definer
set search_path = ''
as $$
    select coalesce(
        (select case coalesce(u.raw_app_meta_data ->> 'role', 'user')
                    when 'admin' then 'app_admin'
                    when 'viewer' then 'app_viewer'
                    else 'app_user'
                end
         from auth.users as u
         where db_role_for.sub ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
           and u.id = (case
                           when db_role_for.sub ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                               then db_role_for.sub
                       end)::uuid
           and u.deleted_at is null
           and (u.banned_until is null or u.banned_until <= pg_catalog.now())),
        'anon')
$$;

revoke all on function auth.db_role_for(text) from public, anon, authenticated;
-- The prelude calls it as authenticator, before SET ROLE: USAGE on the schema
-- reaches the function only (every auth table is revoked from PUBLIC).
grant usage on schema auth to authenticator;
grant execute on function auth.db_role_for(text) to authenticator, service_role;

-- ---------------------------------------------------------------------------
-- Rewrites the standard policy set of a table with an owner column:
--   app_user   reads, inserts, updates and deletes rows where <owner> holds;
--   app_admin  reads and manages every row;
--   app_viewer reads every row when viewer_reads, nothing otherwise.
-- `owner` is an SQL expression over the table's columns (trusted: only this
-- migration, 018 and import_table_role_policies() call it; nobody else may).
-- ---------------------------------------------------------------------------

create function public.apply_owner_role_policies(tbl regclass, owner text, viewer_reads boolean,
                                          user_writes boolean default true)
returns void
language plpgsql
set search_path = ''
as $$
declare
    v_pol record;
    v_name text := (select c.relname from pg_catalog.pg_class c where c.oid = tbl);
begin
    for v_pol in select p.polname from pg_catalog.pg_policy p where p.polrelid = tbl loop
        execute pg_catalog.format('drop policy %I on %s', v_pol.polname, tbl);
    end loop;
    execute pg_catalog.format('create policy %I on %s for select to app_user using (%s)',
                              v_name || '_select_user', tbl, owner);
    if user_writes then
        execute pg_catalog.format('create policy %I on %s for insert to app_user with check (%s)',
                                  v_name || '_insert_user', tbl, owner);
        execute pg_catalog.format('create policy %I on %s for update to app_user using (%s) with check (%s)',
                                  v_name || '_update_user', tbl, owner, owner);
        execute pg_catalog.format('create policy %I on %s for delete to app_user using (%s)',
                                  v_name || '_delete_user', tbl, owner);
    end if;
    execute pg_catalog.format('create policy %I on %s for select to app_admin using (true)',
                              v_name || '_select_admin', tbl);
    if user_writes then
        execute pg_catalog.format('create policy %I on %s for insert to app_admin with check (true)',
                                  v_name || '_insert_admin', tbl);
        execute pg_catalog.format('create policy %I on %s for update to app_admin using (true) with check (true)',
                                  v_name || '_update_admin', tbl);
    end if;
    execute pg_catalog.format('create policy %I on %s for delete to app_admin using (true)',
                              v_name || '_delete_admin', tbl);
    if viewer_reads then
        execute pg_catalog.format('create policy %I on %s for select to app_viewer using (true)',
                                  v_name || '_select_viewer', tbl);
    end if;
end
$$;

revoke all on function public.apply_owner_role_policies(regclass, text, boolean, boolean) from public;

-- Tables with a user_id owner column.
select public.apply_owner_role_policies('public.analytics_data', 'user_id = (select auth.uid())', true);
select public.apply_owner_role_policies('public.campaigns', 'user_id = (select auth.uid())', true);
select public.apply_owner_role_policies('public.templates', 'user_id = (select auth.uid())', false);
select public.apply_owner_role_policies('public.contacts', 'user_id = (select auth.uid())', false);
select public.apply_owner_role_policies('public.data_sources', 'user_id = (select auth.uid())', false);

-- reports: a user's report may name only a campaign the same user owns (the
-- report generator reads the campaign's data on the report owner's behalf).
-- 018 takes INSERT and UPDATE away from the API roles (reports are generated).
select public.apply_owner_role_policies('public.reports', 'user_id = (select auth.uid())', true);
drop policy reports_insert_user on public.reports;
drop policy reports_update_user on public.reports;
create policy reports_insert_user on public.reports for insert to app_user
    with check (user_id = (select auth.uid())
                and (campaign_id is null
                     or exists (select 1 from public.campaigns c
                                where c.id = reports.campaign_id and c.user_id = (select auth.uid()))));
create policy reports_update_user on public.reports for update to app_user
    using (user_id = (select auth.uid()))
    with check (user_id = (select auth.uid())
                and (campaign_id is null
                     or exists (select 1 from public.campaigns c
                                where c.id = reports.campaign_id and c.user_id = (select auth.uid()))));

-- Delivery history: read through the owning campaign; written by the server.
select public.apply_owner_role_policies('public.sms_messages',
    'exists (select 1 from public.campaigns c where c.id = sms_messages.campaign_id '
    'and c.user_id = (select auth.uid()))', false, false);
select public.apply_owner_role_policies('public.email_messages',
    'exists (select 1 from public.campaigns c where c.id = email_messages.campaign_id '
    'and c.user_id = (select auth.uid()))', false, false);
select public.apply_owner_role_policies('public.email_clicks',
    'exists (select 1 from public.email_messages m join public.campaigns c on c.id = m.campaign_id '
    'where m.id = email_clicks.message_id and c.user_id = (select auth.uid()))', false, false);

-- Data source satellites: read through the owning source.
select public.apply_owner_role_policies('public.sync_logs',
    'exists (select 1 from public.data_sources ds where ds.id = sync_logs.data_source_id '
    'and ds.user_id = (select auth.uid()))', false, false);
select public.apply_owner_role_policies('public.import_tables',
    'exists (select 1 from public.data_sources ds where ds.id = import_tables.data_source_id '
    'and ds.user_id = (select auth.uid()))', false, false);
drop policy import_tables_delete_admin on public.import_tables; -- no DELETE privilege: server-written
-- imported_data: owners of the source read; viewers read all; admins manage.
select public.apply_owner_role_policies('public.imported_data',
    'exists (select 1 from public.data_sources ds where ds.id = imported_data.data_source_id '
    'and ds.user_id = (select auth.uid()))', true, false);
create policy imported_data_insert_admin on public.imported_data for insert to app_admin with check (true);
create policy imported_data_update_admin on public.imported_data for update to app_admin
    using (true) with check (true);

-- Admin-only tables.
drop policy "Admins can view audit logs" on public.audit_logs;
create policy audit_logs_select_admin on public.audit_logs for select to app_admin using (true);

drop policy app_settings_select_admin on public.app_settings;
drop policy app_settings_update_admin on public.app_settings;
create policy app_settings_select_admin on public.app_settings for select to app_admin using (true);
create policy app_settings_update_admin on public.app_settings for update to app_admin
    using (true) with check (true);

-- ---------------------------------------------------------------------------
-- Import tables made by create_import_table(): the same per-role policies.
-- ---------------------------------------------------------------------------

-- Rewrites the policies of one registered import table (owner through
-- import_tables -> data_sources). service_role / owner only.
create or replace function public.import_table_role_policies(p_table text)
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_owner text;
begin
    if p_table is null or p_table !~ '^import_[a-z0-9_]+$' or pg_catalog.length(p_table) > 63
       or not exists (select 1 from public.import_tables it where it.table_name = p_table) then
        raise exception '% is not a registered import table',
            pg_catalog.quote_literal(pg_catalog.left(p_table, 80)) using errcode = '22023';
    end if;
    v_owner := pg_catalog.format(
        'exists (select 1 from public.import_tables it '
        'join public.data_sources ds on ds.id = it.data_source_id '
        'where it.table_name = %L and ds.user_id = (select auth.uid()))', p_table);
    perform public.apply_owner_role_policies(pg_catalog.format('public.%I', p_table)::regclass, v_owner, false);
end
$$;

revoke all on function public.import_table_role_policies(text) from public, anon, authenticated;
grant execute on function public.import_table_role_policies(text) to service_role;

-- create_import_table() (008) writes TO authenticated policies; keep its body
-- (the import work may still change it) and rewrite the policies after it.
alter function public.create_import_table(uuid, text, jsonb, uuid)
    rename to create_import_table_base;
revoke all on function public.create_import_table_base(uuid, text, jsonb, uuid)
    from public, anon, authenticated, service_role;

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
    v_table text;
begin
    v_table := public.create_import_table_base(p_user_id, p_source_name, p_columns, p_data_source_id);
    perform public.import_table_role_policies(v_table);
    return v_table;
end
$$;

revoke all on function public.create_import_table(uuid, text, jsonb, uuid) from public, anon, authenticated;
grant execute on function public.create_import_table(uuid, text, jsonb, uuid) to service_role;

select public.import_table_role_policies(it.table_name) from public.import_tables it;

-- ---------------------------------------------------------------------------
-- storage
-- ---------------------------------------------------------------------------

drop policy buckets_select_signed_in on storage.buckets;
drop policy buckets_insert_admin on storage.buckets;
drop policy buckets_update_admin on storage.buckets;
drop policy buckets_delete_admin on storage.buckets;
create policy buckets_select_signed_in on storage.buckets for select
    to app_admin, app_user, app_viewer using (true);
create policy buckets_insert_admin on storage.buckets for insert to app_admin with check (true);
create policy buckets_update_admin on storage.buckets for update to app_admin using (true) with check (true);
create policy buckets_delete_admin on storage.buckets for delete to app_admin using (true);

drop policy objects_select_own_folder on storage.objects;
drop policy objects_insert_own_folder on storage.objects;
drop policy objects_update_own_folder on storage.objects;
drop policy objects_delete_own_folder on storage.objects;
drop policy objects_select_admin on storage.objects;
drop policy objects_insert_admin on storage.objects;
drop policy objects_update_admin on storage.objects;
drop policy objects_delete_admin on storage.objects;
-- A signed-in user's own top-level folder (viewers read theirs: exports).
create policy objects_select_own_folder on storage.objects for select to app_user, app_viewer
    using ((storage.foldername(name))[1] = (select auth.uid())::text);
create policy objects_insert_own_folder on storage.objects for insert to app_user
    with check ((storage.foldername(name))[1] = (select auth.uid())::text);
create policy objects_update_own_folder on storage.objects for update to app_user
    using ((storage.foldername(name))[1] = (select auth.uid())::text)
    with check ((storage.foldername(name))[1] = (select auth.uid())::text);
create policy objects_delete_own_folder on storage.objects for delete to app_user
    using ((storage.foldername(name))[1] = (select auth.uid())::text);
-- Admins reach everything.
create policy objects_select_admin on storage.objects for select to app_admin using (true);
create policy objects_insert_admin on storage.objects for insert to app_admin with check (true);
create policy objects_update_admin on storage.objects for update to app_admin using (true) with check (true);
create policy objects_delete_admin on storage.objects for delete to app_admin using (true);
