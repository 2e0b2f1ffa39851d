-- 005_templates.sql: reusable SMS and e-mail message templates.
--
-- public.templates: a user's template (content with {{variables}}, a subject for
-- e-mail). Soft-deleted through the API (deleted_at); nothing references a
-- template, so a hard DELETE (owner or admin) loses no history.
--
-- Access (RLS, see docs/schema.md): owners read and write their rows; admins read
-- and manage all; viewers have no access (templates are neither reports nor
-- analytics); anon has no privilege; service_role has all.
-- Applied once, inside one transaction, by the database owner.

create table public.templates (
    id uuid primary key default gen_random_uuid(),
    user_id uuid default auth.uid() references auth.users (id) on delete set null,
    name varchar(255) not null
        constraint templates_name_not_blank check (btrim(name) <> ''),
    type varchar(50) not null
        constraint templates_type_valid check (type in ('sms', 'email')),
    subject text,                              -- e-mail templates
    content text not null,
    variables text[] default '{}',             -- names of the {{variables}} in content
    category varchar(50)
        constraint templates_category_valid
        check (category in ('promotional', 'transactional', 'newsletter')),
    is_active boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    deleted_at timestamptz
);
comment on table public.templates is
    'SMS / e-mail templates. Soft delete: set deleted_at. Owner writes; admins manage; viewers: no access.';
comment on column public.templates.deleted_at is 'Soft delete time; NULL = live.';

create index idx_templates_type on public.templates (type);
create index idx_templates_user on public.templates (user_id);

create trigger set_updated_at before update on public.templates
    for each row execute function public.set_updated_at();
create trigger audit after insert or update or delete on public.templates
    for each row execute function public.audit_trigger();

alter table public.templates enable row level security;

revoke all on public.templates from public, anon, authenticated;
grant select, insert, update, delete on public.templates to authenticated;
grant all on public.templates to service_role;

create policy templates_select_own on public.templates
    for select to authenticated
    using (user_id = (select auth.uid()));
create policy templates_select_admin on public.templates
    for select to authenticated
    using ((select public.get_user_role()) = 'admin');

create policy templates_insert_own on public.templates
    for insert to authenticated
    with check (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user');
create policy templates_update_own on public.templates
    for update to authenticated
    using (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user')
    with check (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user');
create policy templates_delete_own on public.templates
    for delete to authenticated
    using (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user');

create policy templates_insert_admin on public.templates
    for insert to authenticated
    with check ((select public.get_user_role()) = 'admin');
create policy templates_update_admin on public.templates
    for update to authenticated
    using ((select public.get_user_role()) = 'admin')
    with check ((select public.get_user_role()) = 'admin');
create policy templates_delete_admin on public.templates
    for delete to authenticated
    using ((select public.get_user_role()) = 'admin');
