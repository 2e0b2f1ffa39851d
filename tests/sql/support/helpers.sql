-- tests/sql/support/helpers.sql: helpers for the pgTAP suite (test databases only).
--
-- Loaded once, committed, after all migrations and before pg_prove (see
-- scripts/pgtap-local.sh). Installs pgTAP and a `tests` schema that lets a test act
-- as the server does for a request: switch to anon / authenticated / service_role
-- and set request.jwt.claims and request.headers for the current transaction.
--
-- A test file looks like:
--   BEGIN;
--   SELECT plan(2);
--   SELECT tests.create_user('alice@example.test', 'viewer') AS alice \gset
--   SELECT tests.authenticate_as(:'alice');
--   SELECT is((SELECT count(*) FROM public.audit_logs), 0::bigint, 'viewer sees no audit');
--   SELECT tests.clear_authentication();
--   SELECT is(tests.affected($$DELETE FROM public.audit_logs$$), 0::bigint, 'no delete');
--   ...
--   SELECT * FROM finish();
--   ROLLBACK;
-- (The helpers switch role with set_config('role', ..., true), which is SET LOCAL
-- ROLE: it ends with the transaction, and they work only inside one.)
--
-- Everything here is granted to all roles: it exists only in test databases. Never
-- load it into a database that serves requests.

create extension if not exists pgtap with schema public;

create schema if not exists tests;
grant usage on schema tests to public;

-- Creates a confirmed e-mail user (password "password") with its e-mail identity
-- and returns its id. role goes into raw_app_meta_data, the authoritative place;
-- raw_user_meta_data is left empty. The e-mail is stored lower-cased.
create or replace function tests.create_user(email text, role text default 'user')
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_id uuid := gen_random_uuid();
    v_email text := pg_catalog.lower(create_user.email);
begin
    insert into auth.users (id, aud, role, email, encrypted_password, email_confirmed_at,
                            raw_app_meta_data, raw_user_meta_data)
    values (v_id, 'authenticated', 'authenticated', v_email,
            extensions.crypt('password', extensions.gen_salt('bf', 4)), pg_catalog.now(),
            pg_catalog.jsonb_build_object('provider', 'email',
                                          'providers', pg_catalog.jsonb_build_array('email'),
                                          'role', create_user.role),
            '{}'::jsonb);
    insert into auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at)
    values (v_id::text, v_id,
            pg_catalog.jsonb_build_object('sub', v_id::text, 'email', v_email,
                                          'email_verified', true, 'phone_verified', false),
            'email', pg_catalog.now());
    return v_id;
end
$$;

-- Returns the access-token claims the server would mint for the user: its
-- authoritative role copied into app_metadata.role and user_metadata.role.
-- Raises if the user does not exist. (SECURITY DEFINER: it reads auth.users,
-- which the API roles cannot.)
create or replace function tests.claims_for(user_id uuid)
returns jsonb
language plpgsql stable
security definer
set search_path = ''
as $$
declare
    v_user auth.users%rowtype;
    v_role text;
    v_now bigint := pg_catalog.floor(extract(epoch from pg_catalog.now()))::bigint;
begin
    select * into v_user from auth.users u where u.id = claims_for.user_id;
    if not found then
        raise exception 'tests.claims_for: no user %', claims_for.user_id;
    end if;
    v_role := coalesce(v_user.raw_app_meta_data ->> 'role', 'user');
    return pg_catalog.jsonb_build_object(
        'iss', 'http://localhost/auth/v1',
        'sub', v_user.id::text,
        'aud', 'authenticated',
        'exp', v_now + 3600,
        'iat', v_now,
        'email', v_user.email,
        'phone', '',
        'app_metadata', v_user.raw_app_meta_data || pg_catalog.jsonb_build_object('role', v_role),
        'user_metadata', v_user.raw_user_meta_data || pg_catalog.jsonb_build_object('role', v_role),
        'role', 'authenticated',
        'aal', 'aal1',
        'amr', pg_catalog.jsonb_build_array(
            pg_catalog.jsonb_build_object('method', 'password', 'timestamp', v_now)),
        'session_id', gen_random_uuid()::text,
        'is_anonymous', v_user.is_anonymous);
end
$$;

-- The request.headers value the server sets: lower-cased names, x-real-ip always.
create or replace function tests.request_headers()
returns jsonb
language sql immutable
set search_path = ''
as $$
    select '{"x-real-ip": "203.0.113.7", "user-agent": "pgtap/1.0 (campaignd tests)",
             "accept": "application/json"}'::jsonb
$$;

-- Sets the request GUCs for the rest of the transaction, then switches role.
-- SECURITY INVOKER and without a SET clause on purpose: SET ROLE is not allowed in
-- a SECURITY DEFINER function, and a function's SET clause would undo SET LOCALs
-- made inside it when it returns. Every name in these bodies is schema-qualified.
create or replace function tests.set_request(role text, claims jsonb, headers jsonb default null)
returns void
language plpgsql
as $$
begin
    perform pg_catalog.set_config('request.jwt.claims', claims::text, true);
    perform pg_catalog.set_config('request.method', 'POST', true);
    perform pg_catalog.set_config('request.path', '/tests', true);
    perform pg_catalog.set_config('request.headers',
                                  coalesce(headers, tests.request_headers())::text, true);
    -- As the server's prelude (src/db/db.c): a verified 'authenticated' token
    -- runs as the member role of the user's authoritative role (017_app_roles),
    -- chosen, like the server does, before switching (as the session user).
    perform pg_catalog.set_config('role', 'none', true);
    perform pg_catalog.set_config('role',
        case when set_request.role = 'authenticated'
             then auth.db_role_for_claims(claims)
             else set_request.role end, true);
end
$$;

-- Replaces request.jwt.claims for the rest of the transaction without changing
-- the role (e.g. to present forged claims as the current user).
create or replace function tests.set_claims(claims jsonb)
returns void
language sql
as $$
    select pg_catalog.set_config('request.jwt.claims', coalesce(claims::text, ''), true);
    select null::void
$$;

-- Replaces request.headers for the rest of the transaction with the given text,
-- which need not be valid JSON (to test how SQL copes with bad input).
create or replace function tests.set_headers(headers text)
returns void
language sql
as $$
    select pg_catalog.set_config('request.headers', coalesce(headers, ''), true);
    select null::void
$$;

-- Acts as the signed-in user for the rest of the transaction (or until another
-- helper switches): role app_admin / app_user / app_viewer (anon when banned or
-- deleted), chosen like the server does, claims as the server mints them, headers
-- with x-real-ip 203.0.113.7 and a user-agent.
create or replace function tests.authenticate_as(user_id uuid)
returns void
language plpgsql
as $$
declare
    v_claims jsonb;
begin
    v_claims := tests.claims_for(authenticate_as.user_id);
    perform tests.set_request('authenticated', v_claims);
end
$$;

-- Acts as a caller with only the anon key: role anon, claims {"role":"anon"}.
create or replace function tests.authenticate_as_anon()
returns void
language sql
as $$
    select tests.set_request('anon', '{"role": "anon"}'::jsonb)
$$;

-- Acts as the service key: role service_role, claims {"role":"service_role"}.
create or replace function tests.authenticate_as_service()
returns void
language sql
as $$
    select tests.set_request('service_role', '{"role": "service_role"}'::jsonb)
$$;

-- Back to the session user (RESET ROLE) with no request GUCs.
create or replace function tests.clear_authentication()
returns void
language plpgsql
as $$
begin
    perform pg_catalog.set_config('role', 'none', true);
    perform pg_catalog.set_config('request.jwt.claims', '', true);
    perform pg_catalog.set_config('request.method', '', true);
    perform pg_catalog.set_config('request.path', '', true);
    perform pg_catalog.set_config('request.headers', '', true);
end
$$;

-- ---------------------------------------------------------------------------
-- Assertion helpers shared by the table test files (they were copied as
-- pg_temp functions into each). All run with the caller's role and
-- search_path (security invoker), so they see what that role sees.
-- ---------------------------------------------------------------------------

-- Runs one statement as the current role and returns how many rows it touched, so
-- that a write silently filtered out by a USING clause is asserted as 0.
create or replace function tests.affected(sql text)
returns bigint
language plpgsql
as $$
declare n bigint;
begin
    execute sql;
    get diagnostics n = row_count;
    return n;
end
$$;

-- The table privileges a role holds, as a sorted comma-separated list.
create or replace function tests.privs(role text, tbl text)
returns text
language sql
as $$
    select coalesce(string_agg(p, ',' order by p), '')
    from unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) as p
    where has_table_privilege(role, tbl, p)
$$;

-- SQLSTATE and HINT of the error a statement raises ('' when it succeeds).
create or replace function tests.error_of(sql text)
returns text
language plpgsql
as $$
declare st text; hint text;
begin
    execute sql;
    return '';
exception when others then
    get stacked diagnostics st = returned_sqlstate, hint = pg_exception_hint;
    return st || ' ' || hint;
end
$$;

-- A fixed-offset time zone (Etc/GMT±n) where the local hour is p_hour now:
-- the quiet-hours tests put a recipient or the application in the day (13)
-- or the night (3) whatever time the suite runs. The offsets -12..+14 cover
-- every hour of the day.
create or replace function tests.zone_at_hour(p_hour integer) returns text
language sql stable as $$
    select z.n
    from (select case when o > 0 then 'Etc/GMT-' || o when o < 0 then 'Etc/GMT+' || (-o)
                      else 'Etc/GMT' end as n
          from generate_series(-12, 14) o) z
    where extract(hour from now() at time zone z.n) = p_hour
    limit 1
$$;

grant execute on all functions in schema tests to public;
