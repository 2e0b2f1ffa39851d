-- 004_campaigns.sql: campaigns and the reports generated from them.
--
-- public.campaigns: a user's e-mail / SMS / social campaign. Soft-deleted through
-- the API (deleted_at); a hard DELETE is allowed to the owner and admins but fails
-- (23503) once delivery history exists, because messages reference their campaign
-- ON DELETE RESTRICT (007). Delivery history is therefore never orphaned or erased
-- by deleting a campaign.
-- public.reports: generated report data, optionally about one campaign. A report
-- outlives a hard-deleted campaign (campaign_id ON DELETE SET NULL).
--
-- Access (RLS, see docs/schema.md): owners read and write their rows; admins read
-- and manage all; viewers read every campaign and report and write nothing; anon
-- has no privilege; service_role has all. A user can attach a report only to a
-- campaign they own.
-- Applied once, inside one transaction, by the database owner.

-- ---------------------------------------------------------------------------
-- campaigns
-- ---------------------------------------------------------------------------

create table public.campaigns (
    id uuid primary key default gen_random_uuid(),
    user_id uuid default auth.uid() references auth.users (id) on delete set null,
    name varchar(255) not null
        constraint campaigns_name_not_blank check (btrim(name) <> ''),
    type varchar(50) not null
        constraint campaigns_type_valid check (type in ('email', 'sms', 'social')),
    status varchar(50) not null default 'draft'
        constraint campaigns_status_valid check (status in (
            'draft', 'scheduled', 'active', 'sending', 'sent', 'paused',
            'completed', 'cancelled', 'failed')),
    content text,
    scheduled_date timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    deleted_at timestamptz,
    constraint campaigns_scheduled_has_date check (status <> 'scheduled' or scheduled_date is not null)
);
comment on table public.campaigns is
    'Marketing campaigns. Soft delete: set deleted_at. Owner writes; admins manage; viewers read all.';
comment on column public.campaigns.deleted_at is
    'Soft delete time; NULL = live. Lists filter deleted_at IS NULL; history stays.';

create index idx_campaigns_user on public.campaigns (user_id);
create index idx_campaigns_status on public.campaigns (status);
-- The dashboard's lists: newest first. With the owner-or-role policies OR'ed
-- together, an index on created_at lets "order by created_at desc limit n"
-- stop after n visible rows instead of sorting every visible campaign
-- (measured: bench/RESULTS.md, "List campaigns").
create index idx_campaigns_created_at on public.campaigns (created_at desc);
create index idx_campaigns_user_created_at on public.campaigns (user_id, created_at desc);
-- The scheduler's "due campaigns" query.
create index idx_campaigns_scheduled on public.campaigns (scheduled_date)
    where status = 'scheduled' and deleted_at is null;

create trigger set_updated_at before update on public.campaigns
    for each row execute function public.set_updated_at();
create trigger audit after insert or update or delete on public.campaigns
    for each row execute function public.audit_trigger();

alter table public.campaigns enable row level security;

revoke all on public.campaigns from public, anon, authenticated;
grant select, insert, update, delete on public.campaigns to authenticated;
grant all on public.campaigns to service_role;

create policy campaigns_select_own on public.campaigns
    for select to authenticated
    using (user_id = (select auth.uid()));
create policy campaigns_select_admin_viewer on public.campaigns
    for select to authenticated
    using ((select public.get_user_role()) in ('admin', 'viewer'));

create policy campaigns_insert_own on public.campaigns
    for insert to authenticated
    with check (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user');
create policy campaigns_update_own on public.campaigns
    for update to authenticated
    using (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user')
    with check (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user');
create policy campaigns_delete_own on public.campaigns
    for delete to authenticated
    using (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user');

create policy campaigns_insert_admin on public.campaigns
    for insert to authenticated
    with check ((select public.get_user_role()) = 'admin');
create policy campaigns_update_admin on public.campaigns
    for update to authenticated
    using ((select public.get_user_role()) = 'admin')
    with check ((select public.get_user_role()) = 'admin');
create policy campaigns_delete_admin on public.campaigns
    for delete to authenticated
    using ((select public.get_user_role()) = 'admin');

-- ---------------------------------------------------------------------------
-- reports
-- ---------------------------------------------------------------------------

create table public.reports (
    id uuid primary key default gen_random_uuid(),
    user_id uuid default auth.uid() references auth.users (id) on delete set null,
    campaign_id uuid references public.campaigns (id) on delete set null,
    report_type varchar(100) not null
        constraint reports_report_type_not_blank check (btrim(report_type) <> ''),
    data jsonb,
    generated_at timestamptz not null default now(),
    created_at timestamptz not null default now()
);
comment on table public.reports is
    'Generated reports (data as JSON). Owner writes; admins manage; viewers read all.';

create index idx_reports_user on public.reports (user_id);
create index idx_reports_campaign on public.reports (campaign_id);
create index idx_reports_type on public.reports (report_type);
create index idx_reports_created_at on public.reports (created_at desc);

create trigger audit after insert or update or delete on public.reports
    for each row execute function public.audit_trigger();

alter table public.reports enable row level security;

revoke all on public.reports from public, anon, authenticated;
grant select, insert, update, delete on public.reports to authenticated;
grant all on public.reports to service_role;

create policy reports_select_own on public.reports
    for select to authenticated
    using (user_id = (select auth.uid()));
create policy reports_select_admin_viewer on public.reports
    for select to authenticated
    using ((select public.get_user_role()) in ('admin', 'viewer'));

-- A user's report may name only a campaign the same user owns: the report
-- generator (server) reads the campaign's data on the report owner's behalf.
create policy reports_insert_own on public.reports
    for insert to authenticated
    with check (
        user_id = (select auth.uid())
        and (select public.get_user_role()) = 'user'
        and (reports.campaign_id is null
             or exists (select 1 from public.campaigns c
                        where c.id = reports.campaign_id and c.user_id = (select auth.uid()))));
create policy reports_update_own on public.reports
    for update to authenticated
    using (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user')
    with check (
        user_id = (select auth.uid())
        and (select public.get_user_role()) = 'user'
        and (reports.campaign_id is null
             or exists (select 1 from public.campaigns c
                        where c.id = reports.campaign_id and c.user_id = (select auth.uid()))));
create policy reports_delete_own on public.reports
    for delete to authenticated
    using (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user');

create policy reports_insert_admin on public.reports
    for insert to authenticated
    with check ((select public.get_user_role()) = 'admin');
create policy reports_update_admin on public.reports
    for update to authenticated
    using ((select public.get_user_role()) = 'admin')
    with check ((select public.get_user_role()) = 'admin');
create policy reports_delete_admin on public.reports
    for delete to authenticated
    using ((select public.get_user_role()) = 'admin');
