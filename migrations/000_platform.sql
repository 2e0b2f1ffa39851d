-- 000_platform.sql: the Supabase-compatible platform every later migration builds on.
--
-- Creates the schemas (extensions, auth), the API roles (anon, authenticated,
-- service_role, authenticator), the JWT helper functions auth.uid()/role()/email()/
-- jwt(), the authoritative role helper public.get_user_role(), and the GoTrue-shaped
-- auth tables. Applied once, inside one transaction, by the database owner.
--
-- Contract relied on by later migrations (see /work/shared/spec/SEED-NOTES.md):
--   * requests run as anon | authenticated | service_role with the verified JWT
--     payload in request.jwt.claims and lower-cased headers in request.headers;
--   * public.get_user_role() returns the AUTHORITATIVE role (auth.users.
--     raw_app_meta_data->>'role'): 'admin' | 'user' | 'viewer', or NULL when no
--     signed-in user; write it in policies as (select public.get_user_role());
--   * nothing in public is granted to anon/authenticated by default: each table
--     grants what its policies need; RLS is enabled on every table.

-- ---------------------------------------------------------------------------
-- Schemas and extensions
-- ---------------------------------------------------------------------------

create schema if not exists extensions;
create schema if not exists auth;

create extension if not exists pgcrypto with schema extensions;

-- PG15 already revokes CREATE on public from PUBLIC; say so explicitly so an older
-- or customised template cannot let API roles create objects there.
revoke create on schema public from public;

-- ---------------------------------------------------------------------------
-- Roles (cluster-wide, so created only when missing)
-- ---------------------------------------------------------------------------

do $roles$
declare
    v_is_super boolean := (select r.rolsuper from pg_catalog.pg_roles r
                           where r.rolname = current_user);
    v_extra record;
begin
    if not exists (select 1 from pg_catalog.pg_roles where rolname = 'anon') then
        create role anon nologin noinherit;
    end if;
    if not exists (select 1 from pg_catalog.pg_roles where rolname = 'authenticated') then
        create role authenticated nologin noinherit;
    end if;
    if not exists (select 1 from pg_catalog.pg_roles where rolname = 'service_role') then
        if not v_is_super then
            raise exception 'role service_role is missing and only a superuser can create a BYPASSRLS role'
                using hint = 'Create it once as a superuser: CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;';
        end if;
        create role service_role nologin noinherit bypassrls;
    end if;
    if not exists (select 1 from pg_catalog.pg_roles where rolname = 'authenticator') then
        -- The server sets the password when it starts.
        create role authenticator login noinherit nocreatedb nocreaterole;
    end if;

    -- Pre-existing roles (external server) must still have the contract's attributes.
    if exists (select 1 from pg_catalog.pg_roles
               where rolname in ('anon', 'authenticated', 'service_role')
                 and (rolcanlogin or rolinherit)) then
        alter role anon nologin noinherit;
        alter role authenticated nologin noinherit;
        alter role service_role nologin noinherit;
    end if;
    if exists (select 1 from pg_catalog.pg_roles
               where rolname in ('anon', 'authenticated', 'authenticator')
                 and (rolsuper or rolbypassrls)) then
        raise exception 'anon, authenticated and authenticator must be NOSUPERUSER NOBYPASSRLS';
    end if;
    if not (select rolbypassrls from pg_catalog.pg_roles where rolname = 'service_role') then
        if not v_is_super then
            raise exception 'role service_role exists without BYPASSRLS; a superuser must ALTER ROLE service_role BYPASSRLS';
        end if;
        alter role service_role bypassrls;
    end if;
    if exists (select 1 from pg_catalog.pg_roles where rolname = 'authenticator'
                 and (not rolcanlogin or rolinherit or rolcreatedb or rolcreaterole)) then
        alter role authenticator login noinherit nocreatedb nocreaterole;
    end if;

    -- authenticator may become exactly anon, authenticated or service_role.
    for v_extra in
        select g.rolname
        from pg_catalog.pg_auth_members m
        join pg_catalog.pg_roles g on g.oid = m.roleid
        join pg_catalog.pg_roles u on u.oid = m.member
        where u.rolname = 'authenticator'
          and g.rolname not in ('anon', 'authenticated', 'service_role')
    loop
        raise notice 'revoking membership of authenticator in %', v_extra.rolname;
        execute pg_catalog.format('revoke %I from authenticator', v_extra.rolname);
    end loop;
end
$roles$;

grant anon, authenticated, service_role to authenticator;

grant usage on schema public, auth, extensions to anon, authenticated, service_role;

-- service_role gets everything the owner creates in public; anon and authenticated
-- get nothing by default (each table grants what its policies need).
alter default privileges in schema public grant all on tables to service_role;
alter default privileges in schema public grant all on sequences to service_role;

-- ---------------------------------------------------------------------------
-- JWT helpers (same definitions as Supabase: read request.jwt.claims, with the
-- pre-v9 PostgREST per-claim GUCs first)
-- ---------------------------------------------------------------------------

-- The verified JWT payload of the current request, or NULL outside a request.
create or replace function auth.jwt()
returns jsonb
language sql stable
as $$
    select coalesce(
        nullif(pg_catalog.current_setting('request.jwt.claim', true), ''),
        nullif(pg_catalog.current_setting('request.jwt.claims', true), '')
    )::jsonb
$$;

-- The signed-in user's id (claim "sub"), or NULL for anon / service_role.
create or replace function auth.uid()
returns uuid
language sql stable
as $$
    select coalesce(
        nullif(pg_catalog.current_setting('request.jwt.claim.sub', true), ''),
        (nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
$$;

-- The database role named by the JWT (claim "role"): anon | authenticated | service_role.
create or replace function auth.role()
returns text
language sql stable
as $$
    select coalesce(
        nullif(pg_catalog.current_setting('request.jwt.claim.role', true), ''),
        (nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
    )::text
$$;

-- The signed-in user's e-mail address (claim "email"), or NULL.
create or replace function auth.email()
returns text
language sql stable
as $$
    select coalesce(
        nullif(pg_catalog.current_setting('request.jwt.claim.email', true), ''),
        (nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
    )::text
$$;

grant execute on function auth.jwt(), auth.uid(), auth.role(), auth.email()
    to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------
-- auth tables (GoTrue shape; the server's auth endpoints run as service_role)
-- ---------------------------------------------------------------------------

do $types$
begin
    if not exists (select 1 from pg_catalog.pg_type t
                   join pg_catalog.pg_namespace n on n.oid = t.typnamespace
                   where n.nspname = 'auth' and t.typname = 'aal_level') then
        create type auth.aal_level as enum ('aal1', 'aal2', 'aal3');
    end if;
end
$types$;

create table auth.users (
    instance_id uuid,
    id uuid primary key default gen_random_uuid(),
    aud varchar(255),
    role varchar(255),
    email varchar(255),
    encrypted_password varchar(255),          -- bcrypt $2a$/$2b$
    email_confirmed_at timestamptz,
    invited_at timestamptz,
    confirmation_token varchar(255) not null default '',
    confirmation_sent_at timestamptz,
    recovery_token varchar(255) not null default '',
    recovery_sent_at timestamptz,
    email_change_token_new varchar(255) not null default '',
    email_change varchar(255) not null default '',
    email_change_sent_at timestamptz,
    email_change_token_current varchar(255) not null default '',
    email_change_confirm_status smallint not null default 0
        check (email_change_confirm_status between 0 and 2),
    last_sign_in_at timestamptz,
    raw_app_meta_data jsonb not null default '{}'::jsonb,   -- server-written; holds the role
    raw_user_meta_data jsonb not null default '{}'::jsonb,  -- user-writable; never trusted
    is_super_admin boolean,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    phone text unique default null,
    phone_confirmed_at timestamptz,
    phone_change text not null default '',
    phone_change_token varchar(255) not null default '',
    phone_change_sent_at timestamptz,
    confirmed_at timestamptz generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
    banned_until timestamptz,
    reauthentication_token varchar(255) not null default '',
    reauthentication_sent_at timestamptz,
    is_sso_user boolean not null default false,
    deleted_at timestamptz,
    is_anonymous boolean not null default false,
    constraint users_raw_app_meta_data_object check (pg_catalog.jsonb_typeof(raw_app_meta_data) = 'object'),
    constraint users_raw_user_meta_data_object check (pg_catalog.jsonb_typeof(raw_user_meta_data) = 'object'),
    constraint users_role_valid check (
        raw_app_meta_data ->> 'role' is null
        or raw_app_meta_data ->> 'role' in ('admin', 'user', 'viewer'))
);
comment on table auth.users is 'Users (GoTrue shape). raw_app_meta_data.role is the authoritative role.';

-- E-mail addresses are unique case-insensitively (SSO users may repeat an address).
create unique index users_email_key on auth.users (pg_catalog.lower(email))
    where is_sso_user = false;
create index users_instance_id_idx on auth.users (instance_id);
create index users_is_anonymous_idx on auth.users (is_anonymous);
create unique index users_confirmation_token_idx on auth.users (confirmation_token)
    where confirmation_token !~ '^[0-9 ]*$';
create unique index users_recovery_token_idx on auth.users (recovery_token)
    where recovery_token !~ '^[0-9 ]*$';
create unique index users_reauthentication_token_idx on auth.users (reauthentication_token)
    where reauthentication_token !~ '^[0-9 ]*$';

create table auth.identities (
    id uuid primary key default gen_random_uuid(),
    provider_id text not null,
    user_id uuid not null references auth.users (id) on delete cascade,
    identity_data jsonb not null,
    provider text not null,
    last_sign_in_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    email text generated always as (pg_catalog.lower(identity_data ->> 'email')) stored,
    constraint identities_provider_id_provider_unique unique (provider_id, provider)
);
create index identities_user_id_idx on auth.identities (user_id);
create index identities_email_idx on auth.identities (email text_pattern_ops);

create table auth.sessions (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references auth.users (id) on delete cascade,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    factor_id uuid,
    aal auth.aal_level not null default 'aal1',
    not_after timestamptz,
    refreshed_at timestamptz,
    user_agent text,
    ip inet,
    tag text,
    oauth_client_id uuid,
    refresh_token_hmac_key text,
    refresh_token_counter bigint,
    scopes text
);
create index sessions_user_id_idx on auth.sessions (user_id);
create index sessions_not_after_idx on auth.sessions (not_after desc);
create index sessions_user_id_created_at_idx on auth.sessions (user_id, created_at);

create table auth.refresh_tokens (
    instance_id uuid,
    id bigserial primary key,
    token varchar(255) not null,
    user_id varchar(255),
    revoked boolean not null default false,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    parent varchar(255),
    session_id uuid references auth.sessions (id) on delete cascade,
    constraint refresh_tokens_token_unique unique (token)
);
create index refresh_tokens_instance_id_user_id_idx on auth.refresh_tokens (instance_id, user_id);
create index refresh_tokens_parent_idx on auth.refresh_tokens (parent);
create index refresh_tokens_session_id_revoked_idx on auth.refresh_tokens (session_id, revoked);
create index refresh_tokens_updated_at_idx on auth.refresh_tokens (updated_at desc);

create table auth.audit_log_entries (
    instance_id uuid,
    id uuid primary key default gen_random_uuid(),
    payload json,
    created_at timestamptz not null default now(),
    ip_address varchar(64) not null default ''
);
create index audit_logs_instance_id_idx on auth.audit_log_entries (instance_id);
create index audit_log_entries_created_at_idx on auth.audit_log_entries (created_at);

-- RLS on, no policies: anon/authenticated get neither privileges nor rows;
-- service_role (BYPASSRLS) is what the server's auth endpoints run as.
alter table auth.users enable row level security;
alter table auth.identities enable row level security;
alter table auth.sessions enable row level security;
alter table auth.refresh_tokens enable row level security;
alter table auth.audit_log_entries enable row level security;

revoke all on auth.users, auth.identities, auth.sessions, auth.refresh_tokens,
    auth.audit_log_entries from public, anon, authenticated;
grant select, insert, update, delete on auth.users, auth.identities, auth.sessions,
    auth.refresh_tokens, auth.audit_log_entries to service_role;
revoke all on sequence auth.refresh_tokens_id_seq from public, anon, authenticated;
grant usage, select on sequence auth.refresh_tokens_id_seq to service_role;

-- ---------------------------------------------------------------------------
-- The authoritative role of the signed-in user
-- ---------------------------------------------------------------------------

-- Returns 'admin' | 'user' | 'viewer' for the signed-in user, read from
-- auth.users.raw_app_meta_data (written only by the server), never from the
-- user-writable user_metadata claim. A user without a role is 'user'. Returns
-- NULL with no signed-in user (anon, service_role) and for a token whose user no
-- longer exists or is deleted, so every role-based policy denies.
-- Use in policies as (select public.get_user_role()) to evaluate it once per statement.
create or replace function public.get_user_role()
returns text
language sql stable
security definer
set search_path = ''
as $$
    select case
        when coalesce(u.raw_app_meta_data ->> 'role', 'user') in ('admin', 'user', 'viewer')
            then coalesce(u.raw_app_meta_data ->> 'role', 'user')
        else 'user'
    end
    from auth.users as u
    where u.id = auth.uid()
      and u.deleted_at is null
$$;

revoke all on function public.get_user_role() from public;
grant execute on function public.get_user_role() to anon, authenticated, service_role;
