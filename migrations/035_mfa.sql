-- 035_mfa.sql: multi-factor authentication, TOTP and recovery codes (issue 14;
-- the seed's module 015_mfa).
--
-- GoTrue's tables, in GoTrue's shape where supabase-js can see it:
--   auth.mfa_factors        a user's factors (totp, recovery_code); the TOTP
--                           secret is encrypted with the instance key
--                           (public.campaignd_encrypt, migration 008/023) and the
--                           last accepted time step is kept, so a code is never
--                           accepted twice;
--   auth.mfa_challenges     one challenge per verification attempt, expiring;
--   auth.mfa_amr_claims     how a session was authenticated: the source of the
--                           access token's amr claim (password when it has none);
--   auth.mfa_recovery_codes ten single-use codes per recovery_code factor, only
--                           their SHA-256 (the codes are 80 random bits: a slow
--                           hash adds nothing, see docs/auth.md).
-- Every decision (ownership, expiry, replay, attempt limits, aal checks) is made
-- here under a row lock, by functions that return a status instead of raising,
-- so that a failure's bookkeeping (attempt counters, audit rows) commits.
--
-- And MFA for admins: app_settings.mfa_required_for_admin (also forced on at
-- start by MFA_REQUIRED_FOR_ADMIN=true). While it is on, an admin whose session
-- is not aal2 runs as plain `authenticated`, not app_admin
-- (auth.db_role_for_claims, called by the server's prelude): no admin policy
-- applies to them until they verify a factor.
-- Applied once, inside one transaction, by the database owner.

do $types$
begin
    if not exists (select 1 from pg_catalog.pg_type t join pg_catalog.pg_namespace n
                   on n.oid = t.typnamespace where n.nspname = 'auth' and t.typname = 'factor_type') then
        create type auth.factor_type as enum ('totp', 'webauthn', 'phone', 'recovery_code');
    end if;
    if not exists (select 1 from pg_catalog.pg_type t join pg_catalog.pg_namespace n
                   on n.oid = t.typnamespace where n.nspname = 'auth' and t.typname = 'factor_status') then
        create type auth.factor_status as enum ('unverified', 'verified');
    end if;
end
$types$;

-- ---------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------

create table auth.mfa_factors (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references auth.users (id) on delete cascade,
    friendly_name text not null default ''
        constraint mfa_factors_friendly_name_length check (pg_catalog.length(friendly_name) <= 255),
    factor_type auth.factor_type not null,
    status auth.factor_status not null default 'unverified',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    secret_encrypted bytea,                 -- TOTP only: campaignd_encrypt(base32 secret)
    last_used_step bigint,                  -- TOTP: the latest accepted 30 s step (replay guard)
    failed_attempts integer not null default 0 check (failed_attempts >= 0),
    locked_until timestamptz,               -- wrong codes in a row lock the factor until then
    last_challenged_at timestamptz,
    constraint mfa_factors_totp_secret check ((factor_type = 'totp') = (secret_encrypted is not null)),
    constraint mfa_factors_recovery_verified check (factor_type <> 'recovery_code' or status = 'verified')
);
create index mfa_factors_user_id_idx on auth.mfa_factors (user_id, created_at);
-- GoTrue: friendly names are unique per user (empty names may repeat).
create unique index mfa_factors_user_friendly_name_unique on auth.mfa_factors (user_id, friendly_name)
    where friendly_name <> '';
-- One recovery-code factor per user.
create unique index mfa_factors_one_recovery_code on auth.mfa_factors (user_id)
    where factor_type = 'recovery_code';
comment on table auth.mfa_factors is
    'MFA factors (GoTrue shape). secret_encrypted: the TOTP secret under the instance key.';

create table auth.mfa_challenges (
    id uuid primary key default gen_random_uuid(),
    factor_id uuid not null references auth.mfa_factors (id) on delete cascade,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    verified_at timestamptz,
    ip_address inet,
    constraint mfa_challenges_expiry check (expires_at > created_at)
);
create index mfa_challenges_factor_id_idx on auth.mfa_challenges (factor_id, created_at);

create table auth.mfa_amr_claims (
    id uuid primary key default gen_random_uuid(),
    session_id uuid not null references auth.sessions (id) on delete cascade,
    authentication_method text not null
        constraint mfa_amr_claims_method check (authentication_method ~ '^[a-z0-9_/]{1,64}$'),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint mfa_amr_claims_session_id_authentication_method_pkey unique (session_id, authentication_method)
);

create table auth.mfa_recovery_codes (
    id uuid primary key default gen_random_uuid(),
    factor_id uuid not null references auth.mfa_factors (id) on delete cascade,
    code_hash text not null constraint mfa_recovery_codes_hash check (code_hash ~ '^[0-9a-f]{64}$'),
    created_at timestamptz not null default now(),
    used_at timestamptz,
    constraint mfa_recovery_codes_unique unique (factor_id, code_hash)
);

alter table auth.mfa_factors enable row level security;
alter table auth.mfa_challenges enable row level security;
alter table auth.mfa_amr_claims enable row level security;
alter table auth.mfa_recovery_codes enable row level security;
revoke all on auth.mfa_factors, auth.mfa_challenges, auth.mfa_amr_claims, auth.mfa_recovery_codes
    from public, anon, authenticated;
grant select, insert, update, delete on auth.mfa_factors, auth.mfa_challenges, auth.mfa_amr_claims,
    auth.mfa_recovery_codes to service_role;

-- ---------------------------------------------------------------------------
-- The admin setting
-- ---------------------------------------------------------------------------

alter table public.app_settings add column mfa_required_for_admin boolean not null default false;
comment on column public.app_settings.mfa_required_for_admin is
    'On: an admin without a verified second factor in the session (aal2) has no admin rights.';
grant update (mfa_required_for_admin) on public.app_settings to authenticated;

create or replace function auth.mfa_required_for_admin()
returns boolean
language sql stable
security definer
set search_path = ''
as $$
    select coalesce((select s.mfa_required_for_admin from public.app_settings s limit 1), false)
$$;

-- The database role of a request with verified 'authenticated' claims: as
-- auth.db_role_for(sub), except that an admin whose session (claim session_id,
-- read from auth.sessions, not from the token) is below aal2 runs as plain
-- authenticated while mfa_required_for_admin is on.
create or replace function auth.db_role_for_claims(p_claims jsonb)
returns text
language sql stable
security definer
set search_path = ''
as $$
    select case
        when r.role = 'app_admin' and auth.mfa_required_for_admin()
             and not exists (
                 select 1 from auth.sessions s
                 where (p_claims ->> 'session_id') ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                   and s.id = (case when (p_claims ->> 'session_id')
                                       ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                                    then p_claims ->> 'session_id' end)::uuid
                   and s.user_id::text = pg_catalog.lower(p_claims ->> 'sub')
                   and s.aal = 'aal2')
            then 'authenticated'
        else r.role end
    from (select auth.db_role_for(p_claims ->> 'sub') as role) r
$$;

revoke all on function auth.mfa_required_for_admin(), auth.db_role_for_claims(jsonb)
    from public, anon, authenticated;
grant execute on function auth.mfa_required_for_admin(), auth.db_role_for_claims(jsonb)
    to authenticator, service_role;

-- ---------------------------------------------------------------------------
-- JSON the client sees
-- ---------------------------------------------------------------------------

-- GoTrue's Factor JSON.
create or replace function auth.factor_json(f auth.mfa_factors)
returns jsonb
language sql stable
set search_path = ''
as $$
    select pg_catalog.jsonb_build_object(
        'id', f.id, 'friendly_name', f.friendly_name, 'factor_type', f.factor_type,
        'status', f.status, 'created_at', auth.iso_time(f.created_at),
        'updated_at', auth.iso_time(f.updated_at))
        || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'last_challenged_at', auth.iso_time(f.last_challenged_at)))
$$;

-- GoTrue's User JSON gains "factors" (omitted when there is none, as GoTrue
-- does). The function of 000_platform_auth.sql keeps its body under the name
-- user_json_base, and auth.user_json, which every endpoint and SQL function
-- calls, adds the factors. The recovery-code factor is not listed: auth-js's
-- listFactors() buckets factors by type and knows totp, phone and webauthn only;
-- GET /factors/recovery-codes reports it.
alter function auth.user_json(auth.users) rename to user_json_base;

create function auth.user_json(u auth.users)
returns jsonb
language sql stable
set search_path = ''
as $$
    select auth.user_json_base(u) || coalesce(
        (select pg_catalog.jsonb_build_object('factors',
                    pg_catalog.jsonb_agg(auth.factor_json(f) order by f.created_at))
         from auth.mfa_factors f where f.user_id = u.id and f.factor_type <> 'recovery_code'
         having pg_catalog.count(*) > 0),
        '{}'::jsonb)
$$;

-- The access-token claims (wire reference 1.5): as before, with amr from
-- auth.mfa_amr_claims (latest first, as GoTrue sorts them); a session without
-- rows there was started by a password.
create or replace function auth.access_claims(u auth.users, p_session uuid, p_iat bigint,
                                              p_exp bigint, p_iss text)
returns jsonb
language sql stable
set search_path = ''
as $$
    select pg_catalog.jsonb_build_object(
        'iss', p_iss, 'sub', u.id, 'aud', coalesce(u.aud, 'authenticated'),
        'exp', p_exp, 'iat', p_iat,
        'email', coalesce(u.email, ''), 'phone', coalesce(u.phone, ''),
        'app_metadata', u.raw_app_meta_data || pg_catalog.jsonb_build_object('role', auth.user_role(u)),
        'user_metadata', u.raw_user_meta_data || pg_catalog.jsonb_build_object('role', auth.user_role(u)),
        'role', 'authenticated',
        'aal', coalesce(s.aal::text, 'aal1'),
        'amr', coalesce(
            (select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                        'method', c.authentication_method,
                        'timestamp', pg_catalog.floor(extract(epoch from c.updated_at))::bigint)
                    order by c.updated_at desc, c.authentication_method)
             from auth.mfa_amr_claims c where c.session_id = p_session),
            pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                'method', 'password',
                'timestamp', pg_catalog.floor(extract(epoch from coalesce(s.created_at, pg_catalog.now())))::bigint))),
        'session_id', p_session,
        'is_anonymous', u.is_anonymous)
    from (select 1) one
    left join auth.sessions s on s.id = p_session
$$;

-- ---------------------------------------------------------------------------
-- Sessions
-- ---------------------------------------------------------------------------

-- The session's aal when it belongs to the user, else NULL (signed out, or the
-- user is deleted or banned).
create or replace function auth.session_aal(p_user uuid, p_session uuid)
returns text
language sql stable
set search_path = ''
as $$
    select s.aal::text from auth.sessions s join auth.users u on u.id = s.user_id
     where s.id = p_session and s.user_id = p_user and u.deleted_at is null
       and coalesce(u.banned_until <= pg_catalog.now(), true)
$$;

-- Raises session p_session to aal2 after a second factor (p_method: totp or
-- mfa/recovery_code): records the method in amr (keeping the first factor's
-- entry), hands the session a new refresh token (p_token_hash; the old ones
-- die), and ends the user's other sessions below aal2, as GoTrue does.
create or replace function auth.mfa_raise_session(p_user uuid, p_session uuid, p_factor uuid,
                                                  p_method text, p_token_hash text)
returns void
language plpgsql
set search_path = ''
as $$
declare
    v_created timestamptz;
begin
    select s.created_at into v_created from auth.sessions s
     where s.id = p_session and s.user_id = p_user for update;
    if not found then
        raise exception 'session % of user % not found', p_session, p_user using errcode = 'P0002';
    end if;
    -- the first factor, if nothing recorded it yet
    insert into auth.mfa_amr_claims (session_id, authentication_method, created_at, updated_at)
    select p_session, 'password', v_created, v_created
    where not exists (select 1 from auth.mfa_amr_claims c where c.session_id = p_session);
    insert into auth.mfa_amr_claims (session_id, authentication_method)
    values (p_session, p_method)
    on conflict on constraint mfa_amr_claims_session_id_authentication_method_pkey
    do update set updated_at = pg_catalog.now();
    update auth.sessions set aal = 'aal2', factor_id = p_factor, updated_at = pg_catalog.now(),
           refreshed_at = pg_catalog.now()
     where id = p_session;
    update auth.refresh_tokens set revoked = true, updated_at = pg_catalog.now()
     where session_id = p_session and not revoked;
    insert into auth.refresh_tokens (token, user_id, session_id, revoked)
    values (p_token_hash, p_user::text, p_session, false);
    delete from auth.sessions s where s.user_id = p_user and s.id <> p_session and s.aal < 'aal2';
end
$$;

-- Sessions that a factor raised go back to aal1 when the factor goes.
create or replace function auth.mfa_downgrade_sessions(p_factor uuid)
returns void
language sql
set search_path = ''
as $$
    delete from auth.mfa_amr_claims c using auth.sessions s
     where c.session_id = s.id and s.factor_id = p_factor
       and c.authentication_method in ('totp', 'mfa/recovery_code');
    update auth.sessions set aal = 'aal1', factor_id = null, updated_at = pg_catalog.now()
     where factor_id = p_factor;
$$;

-- ---------------------------------------------------------------------------
-- TOTP factors
-- ---------------------------------------------------------------------------

-- Enrolls a TOTP factor with secret p_secret (base32, encrypted here). Status:
-- 'ok' (with the factor id), 'insufficient_aal' (a verified factor exists and the
-- session is aal1), 'too_many' (p_max factors), 'name_conflict', 'session_not_found'.
-- Unverified factors older than a day are dropped first.
create or replace function auth.mfa_enroll_totp(p_user uuid, p_session uuid, p_name text,
                                                p_secret text, p_max integer, p_ip text)
returns table (status text, factor_id uuid)
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_aal text := auth.session_aal(p_user, p_session);
    v_id uuid;
begin
    if v_aal is null then
        return query select 'session_not_found'::text, null::uuid;
        return;
    end if;
    perform 1 from auth.users u where u.id = p_user for update;  -- one enrolment at a time
    delete from auth.mfa_factors f where f.user_id = p_user and f.status = 'unverified'
       and f.created_at < pg_catalog.now() - interval '1 day';
    if exists (select 1 from auth.mfa_factors f where f.user_id = p_user and f.status = 'verified')
       and v_aal <> 'aal2' then
        return query select 'insufficient_aal'::text, null::uuid;
        return;
    end if;
    if (select pg_catalog.count(*) from auth.mfa_factors f where f.user_id = p_user) >= p_max then
        return query select 'too_many'::text, null::uuid;
        return;
    end if;
    if coalesce(p_name, '') <> '' and exists (select 1 from auth.mfa_factors f
                                              where f.user_id = p_user and f.friendly_name = p_name) then
        return query select 'name_conflict'::text, null::uuid;
        return;
    end if;
    insert into auth.mfa_factors (user_id, friendly_name, factor_type, secret_encrypted)
    values (p_user, coalesce(p_name, ''), 'totp', public.campaignd_encrypt(p_secret))
    returning id into v_id;
    perform auth.audit('mfa_factor_enrolled', p_user,
                       (select u.email from auth.users u where u.id = p_user), p_ip,
                       pg_catalog.jsonb_build_object('factor_id', v_id, 'factor_type', 'totp'));
    return query select 'ok'::text, v_id;
end
$$;

-- Creates a challenge for the user's TOTP factor p_factor. Status 'ok' (id and
-- expiry in epoch seconds), 'not_found' (no such factor of this user) or
-- 'session_not_found'.
create or replace function auth.mfa_challenge(p_user uuid, p_session uuid, p_factor uuid,
                                              p_ip text, p_expiry_seconds integer)
returns table (status text, challenge_id uuid, factor_type text, expires_at bigint)
language plpgsql
set search_path = ''
as $$
declare
    v_type auth.factor_type;
    v_ch auth.mfa_challenges;
begin
    if auth.session_aal(p_user, p_session) is null then
        return query select 'session_not_found'::text, null::uuid, null::text, null::bigint;
        return;
    end if;
    update auth.mfa_factors f set last_challenged_at = pg_catalog.now()
     where f.id = p_factor and f.user_id = p_user and f.factor_type = 'totp'
     returning f.factor_type into v_type;
    if not found then
        return query select 'not_found'::text, null::uuid, null::text, null::bigint;
        return;
    end if;
    delete from auth.mfa_challenges c where c.factor_id = p_factor
       and c.expires_at < pg_catalog.now() - interval '1 hour';
    insert into auth.mfa_challenges (factor_id, expires_at, ip_address)
    values (p_factor, pg_catalog.now() + pg_catalog.make_interval(secs => p_expiry_seconds),
            case when p_ip ~ '^[0-9a-fA-F:.]+$' then p_ip::inet end)
    returning * into v_ch;
    perform auth.audit('mfa_challenge_created', p_user,
                       (select u.email from auth.users u where u.id = p_user), p_ip,
                       pg_catalog.jsonb_build_object('factor_id', p_factor, 'challenge_id', v_ch.id));
    return query select 'ok'::text, v_ch.id, v_type::text,
                        pg_catalog.floor(extract(epoch from v_ch.expires_at))::bigint;
end
$$;

-- What the server needs to check a code against the user's factor and challenge:
-- status 'ok' with the decrypted secret and the last accepted step, or
-- 'not_found' (factor not the user's), 'challenge_not_found', 'challenge_used',
-- 'expired', 'locked' (with seconds to wait).
create or replace function auth.mfa_totp_state(p_user uuid, p_factor uuid, p_challenge uuid)
returns table (status text, secret text, last_used_step bigint, wait integer)
language plpgsql
security definer
set search_path = ''
as $$
declare
    f auth.mfa_factors;
    c auth.mfa_challenges;
begin
    select * into f from auth.mfa_factors x where x.id = p_factor and x.user_id = p_user
       and x.factor_type = 'totp';
    if not found then
        return query select 'not_found'::text, null::text, null::bigint, null::integer;
        return;
    end if;
    if f.locked_until is not null and f.locked_until > pg_catalog.now() then
        return query select 'locked'::text, null::text, null::bigint,
            pg_catalog.ceil(extract(epoch from f.locked_until - pg_catalog.now()))::integer;
        return;
    end if;
    select * into c from auth.mfa_challenges x where x.id = p_challenge and x.factor_id = p_factor;
    if not found then
        return query select 'challenge_not_found'::text, null::text, null::bigint, null::integer;
    elsif c.verified_at is not null then
        return query select 'challenge_used'::text, null::text, null::bigint, null::integer;
    elsif c.expires_at <= pg_catalog.now() then
        return query select 'expired'::text, null::text, null::bigint, null::integer;
    else
        return query select 'ok'::text, public.campaignd_decrypt(f.secret_encrypted),
                            f.last_used_step, null::integer;
    end if;
end
$$;

-- Records a verification of challenge p_challenge. p_step is the time step the
-- server matched the code to, NULL for a wrong code. Under the factor's row lock:
-- a step not after the last accepted one is a replay (refused like a wrong code);
-- a wrong code counts towards p_max_attempts, after which the factor is locked
-- for p_lock_seconds. On 'ok' the factor is verified, the challenge used, other
-- unverified TOTP factors dropped and the session raised (auth.mfa_raise_session).
-- Statuses: ok, invalid, replay, locked, not_found, challenge_not_found,
-- challenge_used, expired, session_not_found. Every outcome is audited.
create or replace function auth.mfa_verify_totp(p_user uuid, p_session uuid, p_factor uuid,
                                                p_challenge uuid, p_step bigint, p_token_hash text,
                                                p_max_attempts integer, p_lock_seconds integer,
                                                p_ip text)
returns text
language plpgsql
set search_path = ''
as $$
declare
    f auth.mfa_factors;
    c auth.mfa_challenges;
    v_status text;
    v_email text;
begin
    select u.email into v_email from auth.users u where u.id = p_user;
    select * into f from auth.mfa_factors x where x.id = p_factor and x.user_id = p_user
       and x.factor_type = 'totp' for update;
    if not found then
        return 'not_found';
    end if;
    select * into c from auth.mfa_challenges x where x.id = p_challenge and x.factor_id = p_factor
       for update;
    if auth.session_aal(p_user, p_session) is null then
        v_status := 'session_not_found';
    elsif f.locked_until is not null and f.locked_until > pg_catalog.now() then
        v_status := 'locked';
    elsif c.id is null then
        v_status := 'challenge_not_found';
    elsif c.verified_at is not null then
        v_status := 'challenge_used';
    elsif c.expires_at <= pg_catalog.now() then
        v_status := 'expired';
    elsif p_step is null then
        v_status := 'invalid';
    elsif f.last_used_step is not null and p_step <= f.last_used_step then
        v_status := 'replay';
    else
        v_status := 'ok';
    end if;

    if v_status in ('invalid', 'replay') then
        update auth.mfa_factors x
           set failed_attempts = x.failed_attempts + 1,
               locked_until = case when x.failed_attempts + 1 >= p_max_attempts
                                   then pg_catalog.now() + pg_catalog.make_interval(secs => p_lock_seconds)
                              end,
               updated_at = pg_catalog.now()
         where x.id = p_factor;
    elsif v_status = 'ok' then
        update auth.mfa_factors x
           set last_used_step = p_step, status = 'verified', failed_attempts = 0,
               locked_until = null, updated_at = pg_catalog.now()
         where x.id = p_factor;
        update auth.mfa_challenges x set verified_at = pg_catalog.now() where x.id = p_challenge;
        delete from auth.mfa_factors x where x.user_id = p_user and x.factor_type = 'totp'
           and x.status = 'unverified' and x.id <> p_factor;
        perform auth.mfa_raise_session(p_user, p_session, p_factor, 'totp', p_token_hash);
    end if;
    perform auth.audit(case when v_status = 'ok' then 'mfa_factor_verified' else 'mfa_verify_failed' end,
                       p_user, v_email, p_ip,
                       pg_catalog.jsonb_build_object('factor_id', p_factor, 'challenge_id', p_challenge,
                                                     'factor_type', 'totp', 'outcome', v_status));
    return v_status;
end
$$;

-- Unenrolls a TOTP factor. Statuses: ok, not_found, insufficient_aal (a verified
-- factor needs an aal2 session), sole_factor (recovery codes would be left as the
-- only second factor), session_not_found.
create or replace function auth.mfa_unenroll(p_user uuid, p_session uuid, p_factor uuid, p_ip text)
returns text
language plpgsql
set search_path = ''
as $$
declare
    f auth.mfa_factors;
    v_aal text := auth.session_aal(p_user, p_session);
begin
    if v_aal is null then
        return 'session_not_found';
    end if;
    select * into f from auth.mfa_factors x where x.id = p_factor and x.user_id = p_user for update;
    if not found then
        return 'not_found';
    end if;
    if f.factor_type = 'recovery_code' then
        return 'recovery_code';
    end if;
    if f.status = 'verified' and v_aal <> 'aal2' then
        return 'insufficient_aal';
    end if;
    if f.status = 'verified'
       and exists (select 1 from auth.mfa_factors x where x.user_id = p_user
                   and x.factor_type = 'recovery_code')
       and not exists (select 1 from auth.mfa_factors x where x.user_id = p_user and x.id <> p_factor
                       and x.status = 'verified' and x.factor_type <> 'recovery_code') then
        return 'sole_factor';
    end if;
    perform auth.mfa_downgrade_sessions(p_factor);
    delete from auth.mfa_factors x where x.id = p_factor;
    perform auth.audit('mfa_factor_unenrolled', p_user,
                       (select u.email from auth.users u where u.id = p_user), p_ip,
                       pg_catalog.jsonb_build_object('factor_id', p_factor, 'factor_status', f.status,
                                                     'session_id', p_session));
    return 'ok';
end
$$;

-- ---------------------------------------------------------------------------
-- Recovery codes
-- ---------------------------------------------------------------------------

-- The user's recovery-code factor: id, friendly name, codes in the set, unused codes.
create or replace function auth.mfa_recovery_status(p_user uuid)
returns table (factor_id uuid, friendly_name text, total integer, remaining integer)
language sql stable
set search_path = ''
as $$
    select f.id, f.friendly_name,
           (select pg_catalog.count(*)::integer from auth.mfa_recovery_codes r where r.factor_id = f.id),
           (select pg_catalog.count(*)::integer from auth.mfa_recovery_codes r
             where r.factor_id = f.id and r.used_at is null)
    from auth.mfa_factors f where f.user_id = p_user and f.factor_type = 'recovery_code'
$$;

-- Stores a new set of recovery codes (their SHA-256 hex in p_hashes). With
-- p_regenerate the existing set is replaced (and its lock cleared), else a new
-- factor is made. Both need an aal2 session; a first set also needs another
-- verified factor (recovery codes are never the only second factor). Statuses:
-- ok (factor id and name), insufficient_aal, exists, not_found, sole_factor,
-- session_not_found.
create or replace function auth.mfa_recovery_store(p_user uuid, p_session uuid, p_name text,
                                                   p_hashes text[], p_regenerate boolean, p_ip text)
returns table (status text, factor_id uuid, friendly_name text)
language plpgsql
set search_path = ''
as $$
declare
    v_aal text := auth.session_aal(p_user, p_session);
    f auth.mfa_factors;
begin
    if v_aal is null then
        return query select 'session_not_found'::text, null::uuid, null::text;
        return;
    end if;
    perform 1 from auth.users u where u.id = p_user for update;
    select * into f from auth.mfa_factors x where x.user_id = p_user and x.factor_type = 'recovery_code';
    if v_aal <> 'aal2' then
        return query select 'insufficient_aal'::text, null::uuid, null::text;
        return;
    elsif p_regenerate and f.id is null then
        return query select 'not_found'::text, null::uuid, null::text;
        return;
    elsif not p_regenerate and f.id is not null then
        return query select 'exists'::text, null::uuid, null::text;
        return;
    elsif not exists (select 1 from auth.mfa_factors x where x.user_id = p_user
                      and x.status = 'verified' and x.factor_type <> 'recovery_code') then
        return query select 'sole_factor'::text, null::uuid, null::text;
        return;
    end if;
    if f.id is null then
        insert into auth.mfa_factors (user_id, friendly_name, factor_type, status)
        values (p_user, coalesce(p_name, ''), 'recovery_code', 'verified')
        returning * into f;
    else
        delete from auth.mfa_recovery_codes r where r.factor_id = f.id;
        update auth.mfa_factors x set failed_attempts = 0, locked_until = null,
               updated_at = pg_catalog.now() where x.id = f.id;
    end if;
    insert into auth.mfa_recovery_codes (factor_id, code_hash)
    select f.id, h from pg_catalog.unnest(p_hashes) h;
    perform auth.audit(case when p_regenerate then 'recovery_codes_regenerated'
                            else 'recovery_codes_generated' end,
                       p_user, (select u.email from auth.users u where u.id = p_user), p_ip,
                       pg_catalog.jsonb_build_object('factor_id', f.id,
                                                     'count', pg_catalog.cardinality(p_hashes)));
    return query select 'ok'::text, f.id, f.friendly_name;
end
$$;

-- Redeems one recovery code (its SHA-256 hex) under the factor's row lock: an
-- unused match is marked used and raises the session to aal2 with amr
-- mfa/recovery_code; anything else counts towards p_max_attempts, after which
-- the set is locked for p_lock_seconds. Statuses: ok (with the codes left),
-- invalid, locked (with seconds to wait), session_not_found. Always audited.
create or replace function auth.mfa_recovery_verify(p_user uuid, p_session uuid, p_hash text,
                                                    p_token_hash text, p_max_attempts integer,
                                                    p_lock_seconds integer, p_ip text)
returns table (status text, remaining integer, wait integer)
language plpgsql
set search_path = ''
as $$
declare
    f auth.mfa_factors;
    v_code uuid;
    v_status text;
    v_left integer;
begin
    select * into f from auth.mfa_factors x where x.user_id = p_user
       and x.factor_type = 'recovery_code' for update;
    if auth.session_aal(p_user, p_session) is null then
        return query select 'session_not_found'::text, null::integer, null::integer;
        return;
    end if;
    if f.id is null then
        v_status := 'invalid';
    elsif f.locked_until is not null and f.locked_until > pg_catalog.now() then
        return query select 'locked'::text, null::integer,
            pg_catalog.ceil(extract(epoch from f.locked_until - pg_catalog.now()))::integer;
        return;
    else
        update auth.mfa_recovery_codes r set used_at = pg_catalog.now()
         where r.factor_id = f.id and r.code_hash = p_hash and r.used_at is null
         returning r.id into v_code;
        v_status := case when v_code is null then 'invalid' else 'ok' end;
    end if;
    if v_status = 'ok' then
        update auth.mfa_factors x set failed_attempts = 0, locked_until = null,
               updated_at = pg_catalog.now() where x.id = f.id;
        perform auth.mfa_raise_session(p_user, p_session, f.id, 'mfa/recovery_code', p_token_hash);
    elsif f.id is not null then
        update auth.mfa_factors x
           set failed_attempts = x.failed_attempts + 1,
               locked_until = case when x.failed_attempts + 1 >= p_max_attempts
                                   then pg_catalog.now() + pg_catalog.make_interval(secs => p_lock_seconds)
                              end,
               updated_at = pg_catalog.now()
         where x.id = f.id;
    end if;
    select s.remaining into v_left from auth.mfa_recovery_status(p_user) s;
    perform auth.audit(case when v_status = 'ok' then 'recovery_code_verified'
                            else 'recovery_code_failed' end,
                       p_user, (select u.email from auth.users u where u.id = p_user), p_ip,
                       pg_catalog.jsonb_build_object('factor_id', f.id, 'remaining', v_left));
    return query select v_status, v_left, null::integer;
end
$$;

-- Deletes the recovery-code factor (aal2 only). Statuses: ok (with its id),
-- insufficient_aal, not_found, session_not_found.
create or replace function auth.mfa_recovery_delete(p_user uuid, p_session uuid, p_ip text)
returns table (status text, factor_id uuid)
language plpgsql
set search_path = ''
as $$
declare
    v_aal text := auth.session_aal(p_user, p_session);
    v_id uuid;
begin
    if v_aal is null then
        return query select 'session_not_found'::text, null::uuid;
        return;
    elsif v_aal <> 'aal2' then
        return query select 'insufficient_aal'::text, null::uuid;
        return;
    end if;
    select x.id into v_id from auth.mfa_factors x where x.user_id = p_user
       and x.factor_type = 'recovery_code' for update;
    if v_id is null then
        return query select 'not_found'::text, null::uuid;
        return;
    end if;
    perform auth.mfa_downgrade_sessions(v_id);
    delete from auth.mfa_factors x where x.id = v_id;
    perform auth.audit('recovery_codes_deleted', p_user,
                       (select u.email from auth.users u where u.id = p_user), p_ip,
                       pg_catalog.jsonb_build_object('factor_id', v_id));
    return query select 'ok'::text, v_id;
end
$$;

-- ---------------------------------------------------------------------------
-- Privileges: the server's auth endpoints (service_role) only
-- ---------------------------------------------------------------------------

do $grants$
declare
    v_fn text;
begin
    foreach v_fn in array array[
        'auth.factor_json(auth.mfa_factors)',
        'auth.user_json(auth.users)',
        'auth.access_claims(auth.users, uuid, bigint, bigint, text)',
        'auth.session_aal(uuid, uuid)',
        'auth.mfa_raise_session(uuid, uuid, uuid, text, text)',
        'auth.mfa_downgrade_sessions(uuid)',
        'auth.mfa_enroll_totp(uuid, uuid, text, text, integer, text)',
        'auth.mfa_challenge(uuid, uuid, uuid, text, integer)',
        'auth.mfa_totp_state(uuid, uuid, uuid)',
        'auth.mfa_verify_totp(uuid, uuid, uuid, uuid, bigint, text, integer, integer, text)',
        'auth.mfa_unenroll(uuid, uuid, uuid, text)',
        'auth.mfa_recovery_status(uuid)',
        'auth.mfa_recovery_store(uuid, uuid, text, text[], boolean, text)',
        'auth.mfa_recovery_verify(uuid, uuid, text, text, integer, integer, text)',
        'auth.mfa_recovery_delete(uuid, uuid, text)'
    ] loop
        execute pg_catalog.format('revoke all on function %s from public, anon, authenticated', v_fn::regprocedure);
        execute pg_catalog.format('grant execute on function %s to service_role', v_fn::regprocedure);
    end loop;
end
$grants$;
