-- 003_analytics.sql: per-user analytics metrics, and the shared updated_at trigger.
--
-- public.set_updated_at() is the one trigger function every domain table with an
-- updated_at column attaches (BEFORE UPDATE); it is defined here because this is
-- the first domain migration.
--
-- public.analytics_data holds one metric value per user, type and day. Access
-- (RLS, see docs/schema.md): the owner reads and writes their rows; admins read
-- and manage all rows; viewers read every row (they "view reports and analytics")
-- and write nothing; anon has no privilege; service_role has all.
-- Applied once, inside one transaction, by the database owner.

-- ---------------------------------------------------------------------------
-- Shared trigger: updated_at := now() on every UPDATE
-- ---------------------------------------------------------------------------

-- BEFORE UPDATE row trigger for any table with an updated_at timestamptz column:
-- sets it to the transaction time, whatever the UPDATE wrote there.
create or replace function public.set_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    new.updated_at := pg_catalog.now();
    return new;
end
$$;

revoke all on function public.set_updated_at() from public, anon, authenticated;

-- ---------------------------------------------------------------------------
-- analytics_data
-- ---------------------------------------------------------------------------

create table public.analytics_data (
    id uuid primary key default gen_random_uuid(),
    -- Owner. Defaults to the caller; a deleted user's rows survive as admin-only rows.
    user_id uuid default auth.uid() references auth.users (id) on delete set null,
    metric_type varchar(100) not null
        constraint analytics_data_metric_type_not_blank check (btrim(metric_type) <> ''),
    value numeric,
    date date not null default current_date,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
comment on table public.analytics_data is
    'Analytics metric values per user, metric type and day. Owner writes; admins manage; viewers read all.';

create index idx_analytics_data_user_date on public.analytics_data (user_id, date desc);
create index idx_analytics_data_metric_date on public.analytics_data (metric_type, date desc);

create trigger set_updated_at before update on public.analytics_data
    for each row execute function public.set_updated_at();
create trigger audit after insert or update or delete on public.analytics_data
    for each row execute function public.audit_trigger();

alter table public.analytics_data enable row level security;

revoke all on public.analytics_data from public, anon, authenticated;
grant select, insert, update, delete on public.analytics_data to authenticated;
grant all on public.analytics_data to service_role;

create policy analytics_data_select_own on public.analytics_data
    for select to authenticated
    using (user_id = (select auth.uid()));
create policy analytics_data_select_admin_viewer on public.analytics_data
    for select to authenticated
    using ((select public.get_user_role()) in ('admin', 'viewer'));

create policy analytics_data_insert_own on public.analytics_data
    for insert to authenticated
    with check (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user');
create policy analytics_data_update_own on public.analytics_data
    for update to authenticated
    using (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user')
    with check (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user');
create policy analytics_data_delete_own on public.analytics_data
    for delete to authenticated
    using (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user');

create policy analytics_data_insert_admin on public.analytics_data
    for insert to authenticated
    with check ((select public.get_user_role()) = 'admin');
create policy analytics_data_update_admin on public.analytics_data
    for update to authenticated
    using ((select public.get_user_role()) = 'admin')
    with check ((select public.get_user_role()) = 'admin');
create policy analytics_data_delete_admin on public.analytics_data
    for delete to authenticated
    using ((select public.get_user_role()) = 'admin');
