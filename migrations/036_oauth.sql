-- 036_oauth.sql: sign-in with an OAuth/OIDC provider (GitHub, Google, a
-- generic OIDC provider) and the PKCE flow, for OAuth and for the mailed
-- links (issue 14).
--
-- auth.flow_state (GoTrue's table): one row per PKCE flow. Created when the
-- flow starts (GET /authorize, or a mail requested with a code_challenge),
-- holding the client's code_challenge; when the user has proved who they are
-- (provider callback, mailed link) it gets the user and the hash of a
-- one-time auth code, which POST /token?grant_type=pkce redeems once with the
-- code_verifier (auth.redeem_flow_state deletes the row: single use). The auth
-- code itself is never stored.
-- auth.mfa_amr_claims (GoTrue's table): how each session was authenticated
-- ("oauth"; MFA adds its own methods); access tokens list them in amr.
-- auth.email_tokens.flow_state_id: a mailed link that belongs to a PKCE flow
-- redirects with ?code= instead of tokens in the fragment.
--
-- Functions (service_role only): auth.oauth_sign_in, auth.issue_flow_code,
-- auth.redeem_flow_state, auth.flow_state_of_token.
-- Applied once, inside one transaction, by the database owner.

create table auth.flow_state (
    id uuid primary key default gen_random_uuid(),
    user_id uuid references auth.users (id) on delete cascade,
    auth_code text
        constraint flow_state_auth_code_hex check (auth_code ~ '^[0-9a-f]{64}$'),
    code_challenge_method text not null
        constraint flow_state_method_valid check (code_challenge_method in ('s256', 'plain')),
    code_challenge text not null
        constraint flow_state_challenge_valid check (code_challenge ~ '^[A-Za-z0-9._~-]{43,128}$'),
    provider_type text not null
        constraint flow_state_provider_type_valid check (pg_catalog.length(provider_type) between 1 and 64),
    provider_access_token text,
    provider_refresh_token text,
    authentication_method text not null
        constraint flow_state_method_name_valid check (pg_catalog.length(authentication_method) between 1 and 64),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    auth_code_issued_at timestamptz,
    constraint flow_state_auth_code_unique unique (auth_code),
    constraint flow_state_code_has_user check (auth_code is null or (user_id is not null and auth_code_issued_at is not null))
);
create index flow_state_created_at_idx on auth.flow_state (created_at desc);
comment on table auth.flow_state is
    'PKCE flows: the client''s code_challenge, then the user and the hash of a one-time auth code.';

create table if not exists auth.mfa_amr_claims (
    session_id uuid not null references auth.sessions (id) on delete cascade,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    authentication_method text not null,
    id uuid primary key default gen_random_uuid(),
    constraint mfa_amr_claims_session_id_authentication_method_pkey unique (session_id, authentication_method)
);

alter table auth.email_tokens
    add column flow_state_id uuid references auth.flow_state (id) on delete set null;

alter table auth.flow_state enable row level security;
alter table auth.mfa_amr_claims enable row level security;
revoke all on auth.flow_state, auth.mfa_amr_claims from public, anon, authenticated;
grant select, insert, update, delete on auth.flow_state, auth.mfa_amr_claims to service_role;

-- The amr claim lists the session's recorded methods (newest first, as
-- GoTrue), or password when none is recorded. Replaced only when the
-- function does not read auth.mfa_amr_claims already (a migration of the MFA
-- work may have done so, with its own additions).
do $do$
begin
    if pg_catalog.pg_get_functiondef('auth.access_claims(auth.users, uuid, bigint, bigint, text)'::regprocedure)
       like '%mfa_amr_claims%' then
        return;
    end if;
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
                            'timestamp', pg_catalog.floor(extract(epoch from c.created_at))::bigint)
                        order by c.created_at desc)
                   from auth.mfa_amr_claims c where c.session_id = p_session),
                pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                    'method', 'password',
                    'timestamp', pg_catalog.floor(extract(epoch from coalesce(s.created_at, pg_catalog.now())))::bigint))),
            'session_id', p_session,
            'is_anonymous', u.is_anonymous)
        from (select 1) one
        left join auth.sessions s on s.id = p_session
    $$;
end
$do$;

-- Signs in through a provider. p_identity is the provider's user (without a
-- role: the server drops it, and so does this function); p_email and
-- p_email_verified what the provider says of the address. Outcomes:
--   'ok'           the identity was known, or the verified address was linked
--                  to its user, or a new user was created (p_new_id) with
--                  p_role: the role never comes from the provider;
--   'unverified'   the provider does not vouch for the address: nothing is
--                  linked or created (an unverified address must not take over
--                  an account, nor block its owner's sign-up later);
--   'no_email'     the provider gave no address;
--   'signup_disabled' nobody to link to and sign-up is off;
--   'deleted'      the identity's user was deleted.
-- Linking to a user whose own address was never confirmed confirms it and
-- drops that user's password: whoever registered the address without owning
-- it cannot keep a way in (pre-account takeover).
create function auth.oauth_sign_in(p_provider text, p_provider_id text, p_identity jsonb,
                                   p_email text, p_email_verified boolean, p_role text,
                                   p_allow_signup boolean, p_new_id uuid)
returns table (status text, user_id uuid, email text, created boolean)
language plpgsql
set search_path = ''
as $$
declare
    addr text := pg_catalog.lower(pg_catalog.btrim(coalesce(p_email, '')));
    data jsonb := (coalesce(p_identity, '{}'::jsonb) - 'role')
                  || pg_catalog.jsonb_build_object('sub', p_provider_id, 'provider_id', p_provider_id,
                                                   'email', addr, 'email_verified', coalesce(p_email_verified, false));
    uid uuid;
    u auth.users;
begin
    if p_role not in ('admin', 'user', 'viewer') then
        raise exception 'role must be admin, user or viewer' using errcode = '22023';
    end if;
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('campaignd.oauth:' || p_provider || ':' || p_provider_id));
    select i.user_id into uid from auth.identities i
     where i.provider = p_provider and i.provider_id = p_provider_id;
    if uid is not null then
        update auth.identities i set identity_data = data, last_sign_in_at = pg_catalog.now(),
               updated_at = pg_catalog.now()
         where i.provider = p_provider and i.provider_id = p_provider_id;
        if not exists (select 1 from auth.users x where x.id = uid and x.deleted_at is null) then
            return query select 'deleted'::text, null::uuid, null::text, false;
            return;
        end if;
        return query select 'ok'::text, x.id, x.email::text, false from auth.users x where x.id = uid;
        return;
    end if;
    if addr = '' then
        return query select 'no_email'::text, null::uuid, null::text, false;
        return;
    end if;
    if not coalesce(p_email_verified, false) then
        return query select 'unverified'::text, null::uuid, null::text, false;
        return;
    end if;
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('campaignd.login:' || addr));
    select * into u from auth.users x
     where pg_catalog.lower(x.email) = addr and not x.is_sso_user and x.deleted_at is null;
    if found then
        update auth.users x set
            raw_app_meta_data = x.raw_app_meta_data || pg_catalog.jsonb_build_object('providers',
                (select pg_catalog.jsonb_agg(distinct p) from (
                    select pg_catalog.jsonb_array_elements_text(coalesce(x.raw_app_meta_data -> 'providers', '[]'::jsonb)) p
                    union select p_provider) ps)),
            encrypted_password = case when x.email_confirmed_at is null then null else x.encrypted_password end,
            email_confirmed_at = coalesce(x.email_confirmed_at, pg_catalog.now()),
            updated_at = pg_catalog.now()
         where x.id = u.id;
        insert into auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at)
        values (p_provider_id, u.id, data, p_provider, pg_catalog.now());
        return query select 'ok'::text, u.id, u.email::text, false;
        return;
    end if;
    if not p_allow_signup then
        return query select 'signup_disabled'::text, null::uuid, null::text, false;
        return;
    end if;
    insert into auth.users (id, aud, role, email, encrypted_password, email_confirmed_at,
                            raw_app_meta_data, raw_user_meta_data)
    values (p_new_id, 'authenticated', 'authenticated', addr, null, pg_catalog.now(),
            pg_catalog.jsonb_build_object('provider', p_provider,
                                          'providers', pg_catalog.jsonb_build_array(p_provider),
                                          'role', p_role),
            data - 'sub' - 'provider_id')
    returning * into u;
    insert into auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at)
    values (p_provider_id, u.id, data, p_provider, pg_catalog.now());
    return query select 'ok'::text, u.id, u.email::text, true;
end
$$;

-- Gives flow p_flow (not older than p_ttl seconds, no code yet) to p_user
-- with the hash of a new auth code. Returns whether it did.
create function auth.issue_flow_code(p_flow uuid, p_user uuid, p_code_hash text, p_ttl integer,
                                     p_provider_token text, p_provider_refresh_token text)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
    n integer;
begin
    update auth.flow_state f set user_id = p_user, auth_code = p_code_hash,
           auth_code_issued_at = pg_catalog.now(), updated_at = pg_catalog.now(),
           provider_access_token = p_provider_token,
           provider_refresh_token = p_provider_refresh_token
     where f.id = p_flow and f.auth_code is null
       and f.created_at > pg_catalog.now() - pg_catalog.make_interval(secs => p_ttl);
    get diagnostics n = row_count;
    delete from auth.flow_state f
     where f.created_at < pg_catalog.now() - interval '1 day';
    return n = 1;
end
$$;

-- Redeems an auth code: the flow is deleted whatever happens next (single
-- use, one try per code); returns it when it was issued less than p_ttl
-- seconds ago, else no row. The server checks the verifier against the
-- challenge.
create function auth.redeem_flow_state(p_code_hash text, p_ttl integer)
returns table (user_id uuid, code_challenge_method text, code_challenge text,
               authentication_method text, provider_access_token text,
               provider_refresh_token text)
language sql
set search_path = ''
as $$
    with d as (
        delete from auth.flow_state f where f.auth_code = p_code_hash
        returning f.*)
    select d.user_id, d.code_challenge_method, d.code_challenge, d.authentication_method,
           d.provider_access_token, d.provider_refresh_token
      from d
     where d.auth_code_issued_at > pg_catalog.now() - pg_catalog.make_interval(secs => p_ttl)
$$;

-- The PKCE flow a mailed link token belongs to, read before the token is used.
create function auth.flow_state_of_token(p_token_hash text)
returns uuid
language sql stable
set search_path = ''
as $$
    select t.flow_state_id from auth.email_tokens t where t.token_hash = p_token_hash
$$;

revoke all on function auth.oauth_sign_in(text, text, jsonb, text, boolean, text, boolean, uuid),
    auth.issue_flow_code(uuid, uuid, text, integer, text, text),
    auth.redeem_flow_state(text, integer),
    auth.flow_state_of_token(text)
    from public, anon, authenticated;
grant execute on function auth.oauth_sign_in(text, text, jsonb, text, boolean, text, boolean, uuid),
    auth.issue_flow_code(uuid, uuid, text, integer, text, text),
    auth.redeem_flow_state(text, integer),
    auth.flow_state_of_token(text)
    to service_role;

-- Records how a new session was authenticated: the server sets
-- campaignd.amr_method (transaction-local) before starting an OAuth or PKCE
-- session; the row lands in auth.mfa_amr_claims and so in the amr claim.
create function auth.sessions_record_amr()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
    m text := pg_catalog.current_setting('campaignd.amr_method', true);
begin
    if m is not null and m <> '' then
        insert into auth.mfa_amr_claims (session_id, authentication_method)
        values (new.id, pg_catalog.left(m, 64))
        on conflict do nothing;
    end if;
    return new;
end
$$;
create trigger sessions_record_amr after insert on auth.sessions
    for each row execute function auth.sessions_record_amr();
revoke all on function auth.sessions_record_amr() from public, anon, authenticated;
