-- 048_prelude_plpgsql.sql: the request prelude's role lookup without a parse
-- and a plan per request (issue 9 §1, speed).
--
-- Every request's prelude (src/db/db.c) calls auth.db_role_for_claims(claims),
-- which called auth.db_role_for(sub) (017, 035). Both were SECURITY DEFINER
-- LANGUAGE sql functions: PostgreSQL never inlines those, and a non-inlined
-- SQL function is parsed, analysed and planned again on every call (its
-- cache lives only as long as the calling query's executor state; the
-- prelude is a new execution per request). A perf profile of a backend
-- replaying the prelude alone put 74 % of its CPU in fmgr_sql, most of it
-- raw_parser, parse analysis and the planner (bench/RESULTS.md, "list-fast").
--
-- The same functions in PL/pgSQL: the statements are prepared once per
-- backend and their plans kept, so a request pays one index lookup on
-- auth.users. Same signatures, same answers, same privileges (CREATE OR
-- REPLACE keeps the grants of 017 and 035):
--   auth.db_role_for(sub)         app_admin | app_user | app_viewer from
--                                 auth.users.raw_app_meta_data ->> 'role'
--                                 (none: app_user); anon when sub is not a
--                                 UUID, names no user, a deleted or a banned one;
--   auth.db_role_for_claims(c)    as above, but an admin whose session
--                                 (claim session_id, looked up in auth.sessions)
--                                 is below aal2 runs as plain authenticated
--                                 while mfa_required_for_admin is on;
--   auth.mfa_required_for_admin() app_settings.mfa_required_for_admin.
-- Applied once, inside one transaction, by the database owner.

create or replace function auth.db_role_for(sub text)
returns text
language plpgsql stable
security definer
set search_path = ''
as $$
declare
    v_role text;
begin
    if sub is null
       or sub !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
        return 'anon';
    end if;
    select case coalesce(u.raw_app_meta_data ->> 'role', 'user')
               when 'admin' then 'app_admin'
               when 'viewer' then 'app_viewer'
               else 'app_user'
           end
      into v_role
      from auth.users as u
     where u.id = sub::uuid
       and u.deleted_at is null
       and (u.banned_until is null or u.banned_until <= pg_catalog.now());
    return coalesce(v_role, 'anon');
end
$$;

create or replace function auth.mfa_required_for_admin()
returns boolean
language plpgsql stable
security definer
set search_path = ''
as $$
begin
    return coalesce((select s.mfa_required_for_admin from public.app_settings s limit 1), false);
end
$$;

create or replace function auth.db_role_for_claims(p_claims jsonb)
returns text
language plpgsql stable
security definer
set search_path = ''
as $$
declare
    v_role text := auth.db_role_for(p_claims ->> 'sub');
    v_session text;
begin
    if v_role <> 'app_admin' or not auth.mfa_required_for_admin() then
        return v_role;
    end if;
    v_session := p_claims ->> 'session_id';
    if v_session is not null
       and v_session ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
       and exists (select 1 from auth.sessions s
                   where s.id = v_session::uuid
                     and s.user_id::text = pg_catalog.lower(p_claims ->> 'sub')
                     and s.aal = 'aal2') then
        return v_role;
    end if;
    return 'authenticated';
end
$$;
