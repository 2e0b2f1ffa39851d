-- 000_platform_auth.sql: what the server's Auth endpoints (/auth/v1) run.
--
-- The GoTrue-compatible endpoints execute as service_role and call these
-- functions, so that the JSON the client sees is built by PostgreSQL (one
-- place), and so that refresh-token rotation is decided under a row lock in
-- one statement (parallel refreshes cannot fork a token chain).
--
-- Refresh tokens are never stored in clear: auth.refresh_tokens.token holds
-- the hex SHA-256 of the token. A child token is derived by the server as
-- HMAC(JWT secret, parent token), so the server can hand the same child to a
-- second tab that presents the parent again, without storing any token.

-- GoTrue timestamps: RFC 3339 in UTC with microseconds ("2024-01-01T00:00:00.123456Z").
create or replace function auth.iso_time(t timestamptz)
returns text
language sql stable
set search_path = ''
as $$
    select pg_catalog.to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- The authoritative role of a user row: 'admin' | 'user' | 'viewer'.
create or replace function auth.user_role(u auth.users)
returns text
language sql stable
set search_path = ''
as $$
    select case when u.raw_app_meta_data ->> 'role' in ('admin', 'user', 'viewer')
                then u.raw_app_meta_data ->> 'role' else 'user' end
$$;

-- GoTrue's Identity JSON (note: "id" is the provider id, "identity_id" the row id).
create or replace function auth.identity_json(i auth.identities)
returns jsonb
language sql stable
set search_path = ''
as $$
    select pg_catalog.jsonb_build_object(
        'identity_id', i.id, 'id', i.provider_id, 'user_id', i.user_id,
        'identity_data', i.identity_data, 'provider', i.provider,
        'last_sign_in_at', auth.iso_time(i.last_sign_in_at),
        'created_at', auth.iso_time(i.created_at), 'updated_at', auth.iso_time(i.updated_at),
        'email', i.email)
$$;

-- GoTrue's User JSON. The role is copied into app_metadata.role and
-- user_metadata.role from raw_app_meta_data, overwriting whatever the user stored.
create or replace function auth.user_json(u auth.users)
returns jsonb
language sql stable
set search_path = ''
as $$
    select pg_catalog.jsonb_build_object(
            'id', u.id,
            'aud', coalesce(u.aud, 'authenticated'),
            'role', coalesce(u.role, 'authenticated'),
            'email', coalesce(u.email, ''),
            'phone', coalesce(u.phone, ''),
            'app_metadata', u.raw_app_meta_data
                || pg_catalog.jsonb_build_object('role', auth.user_role(u)),
            'user_metadata', u.raw_user_meta_data
                || pg_catalog.jsonb_build_object('role', auth.user_role(u)),
            'identities', coalesce((select pg_catalog.jsonb_agg(auth.identity_json(i) order by i.created_at)
                                    from auth.identities i where i.user_id = u.id), '[]'::jsonb),
            'created_at', auth.iso_time(u.created_at),
            'updated_at', auth.iso_time(u.updated_at),
            'is_anonymous', u.is_anonymous)
        || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'email_confirmed_at', auth.iso_time(u.email_confirmed_at),
            'phone_confirmed_at', auth.iso_time(u.phone_confirmed_at),
            'confirmed_at', auth.iso_time(u.confirmed_at),
            'invited_at', auth.iso_time(u.invited_at),
            'confirmation_sent_at', auth.iso_time(u.confirmation_sent_at),
            'recovery_sent_at', auth.iso_time(u.recovery_sent_at),
            'email_change_sent_at', auth.iso_time(u.email_change_sent_at),
            'new_email', nullif(u.email_change, ''),
            'new_phone', nullif(u.phone_change, ''),
            'last_sign_in_at', auth.iso_time(u.last_sign_in_at),
            'banned_until', auth.iso_time(u.banned_until),
            'deleted_at', auth.iso_time(u.deleted_at)))
$$;

-- The claims of an access token for a user's session (wire reference 1.5).
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
        'amr', pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                   'method', 'password',
                   'timestamp', pg_catalog.floor(extract(epoch from coalesce(s.created_at, pg_catalog.now())))::bigint)),
        'session_id', p_session,
        'is_anonymous', u.is_anonymous)
    from (select 1) one
    left join auth.sessions s on s.id = p_session
$$;

-- Creates a user with an e-mail identity. The role always comes from p_role
-- (callers decide who may set it); a "role" key in p_user_meta is dropped.
create or replace function auth.create_user(p_email text, p_password_hash text, p_role text,
                                            p_user_meta jsonb, p_app_meta jsonb,
                                            p_confirmed boolean, p_id uuid default null)
returns auth.users
language plpgsql
set search_path = ''
as $$
declare
    u auth.users;
begin
    if p_role not in ('admin', 'user', 'viewer') then
        raise exception 'role must be admin, user or viewer' using errcode = '22023';
    end if;
    insert into auth.users (id, aud, role, email, encrypted_password, email_confirmed_at,
                            raw_app_meta_data, raw_user_meta_data)
    values (coalesce(p_id, pg_catalog.gen_random_uuid()), 'authenticated', 'authenticated',
            pg_catalog.lower(pg_catalog.btrim(p_email)), p_password_hash,
            case when p_confirmed then pg_catalog.now() end,
            pg_catalog.jsonb_build_object('provider', 'email', 'providers', pg_catalog.jsonb_build_array('email'))
                || (coalesce(p_app_meta, '{}'::jsonb) - 'provider' - 'providers')
                || pg_catalog.jsonb_build_object('role', p_role),
            coalesce(p_user_meta, '{}'::jsonb) - 'role')
    returning * into u;
    insert into auth.identities (provider_id, user_id, identity_data, provider)
    values (u.id::text, u.id,
            pg_catalog.jsonb_build_object('sub', u.id::text, 'email', u.email,
                                          'email_verified', p_confirmed, 'phone_verified', false),
            'email');
    return u;
end
$$;

-- Starts session p_session (an id the server chose, so that later statements of
-- the same pipelined request can name it) for a user who just proved who they
-- are; the first refresh token's hash is p_token_hash. Returns the session id.
create or replace function auth.start_session(p_user uuid, p_session uuid, p_token_hash text,
                                              p_ip inet, p_ua text)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
    sid uuid;
begin
    insert into auth.sessions (id, user_id, aal, ip, user_agent, refreshed_at)
    values (p_session, p_user, 'aal1', p_ip, pg_catalog.left(p_ua, 512), pg_catalog.now())
    returning id into sid;
    insert into auth.refresh_tokens (token, user_id, session_id, revoked)
    values (p_token_hash, p_user::text, sid, false);
    update auth.users set last_sign_in_at = pg_catalog.now(), updated_at = pg_catalog.now()
     where id = p_user;
    update auth.identities set last_sign_in_at = pg_catalog.now()
     where user_id = p_user and provider = 'email';
    return sid;
end
$$;

-- Rotates a refresh token. p_chain holds the hashes of the presented token's
-- next descendants (child first), which the server derives. Outcomes:
--   'ok'           the token was live: it is revoked and p_chain[1] becomes live (depth 1);
--   'reused'       it was already used, but within p_reuse_interval seconds and
--                  the live token is p_chain[depth]: hand that one out again;
--   'already_used' reuse outside the interval: the whole session is revoked;
--   'not_found'    unknown token, or its session or user is gone;
--   'banned'       the user is banned.
-- The row lock makes parallel refreshes of one token queue up: the second sees
-- the first's result and gets the same child, so the chain never forks.
create or replace function auth.rotate_refresh_token(p_hash text, p_chain text[],
                                                     p_reuse_interval integer)
returns table (status text, user_id uuid, session_id uuid, depth integer)
language plpgsql
set search_path = ''
as $$
declare
    rt auth.refresh_tokens;
    usr auth.users;
    live text;
    k integer;
begin
    select * into rt from auth.refresh_tokens t where t.token = p_hash for update;
    if not found or rt.session_id is null then
        return query select 'not_found'::text, null::uuid, null::uuid, null::integer;
        return;
    end if;
    select * into usr from auth.users x where x.id = rt.user_id::uuid;
    if not found or usr.deleted_at is not null
       or not exists (select 1 from auth.sessions s where s.id = rt.session_id) then
        return query select 'not_found'::text, null::uuid, null::uuid, null::integer;
        return;
    end if;
    if usr.banned_until is not null and usr.banned_until > pg_catalog.now() then
        return query select 'banned'::text, usr.id, rt.session_id, null::integer;
        return;
    end if;
    if not rt.revoked then
        update auth.refresh_tokens set revoked = true, updated_at = pg_catalog.now() where id = rt.id;
        insert into auth.refresh_tokens (token, user_id, session_id, parent, revoked)
        values (p_chain[1], rt.user_id, rt.session_id, rt.token, false);
        update auth.sessions set refreshed_at = pg_catalog.now(), updated_at = pg_catalog.now()
         where id = rt.session_id;
        return query select 'ok'::text, usr.id, rt.session_id, 1;
        return;
    end if;
    select t.token into live from auth.refresh_tokens t
     where t.session_id = rt.session_id and not t.revoked order by t.id desc limit 1;
    k := pg_catalog.array_position(p_chain, live);
    if k is not null
       and rt.updated_at >= pg_catalog.now() - pg_catalog.make_interval(secs => p_reuse_interval) then
        return query select 'reused'::text, usr.id, rt.session_id, k;
        return;
    end if;
    delete from auth.sessions s where s.id = rt.session_id;
    return query select 'already_used'::text, usr.id, rt.session_id, null::integer;
end
$$;

-- Ends sessions: 'global' all of the user's, 'local' this one, 'others' all but this one.
create or replace function auth.end_sessions(p_user uuid, p_session uuid, p_scope text)
returns integer
language plpgsql
set search_path = ''
as $$
declare
    n integer;
begin
    if p_scope = 'local' then
        delete from auth.sessions where id = p_session and user_id = p_user;
    elsif p_scope = 'others' then
        delete from auth.sessions where user_id = p_user and id is distinct from p_session;
    else
        delete from auth.sessions where user_id = p_user;
    end if;
    get diagnostics n = row_count;
    return n;
end
$$;

-- One row of auth.audit_log_entries, in GoTrue's payload shape.
create or replace function auth.audit(p_action text, p_actor uuid, p_actor_email text,
                                      p_ip text, p_traits jsonb default '{}'::jsonb)
returns void
language sql
set search_path = ''
as $$
    insert into auth.audit_log_entries (payload, ip_address)
    values (pg_catalog.json_build_object(
                'action', p_action,
                'actor_id', coalesce(p_actor::text, ''),
                'actor_username', coalesce(p_actor_email, ''),
                'actor_via_sso', false,
                'log_type', case when p_action like 'token%' then 'token'
                                 when p_action like 'user_%' then 'user'
                                 else 'account' end,
                'traits', coalesce(p_traits, '{}'::jsonb)),
            coalesce(pg_catalog.left(p_ip, 64), ''))
$$;

revoke all on function auth.iso_time(timestamptz), auth.user_role(auth.users),
    auth.identity_json(auth.identities), auth.user_json(auth.users),
    auth.access_claims(auth.users, uuid, bigint, bigint, text),
    auth.create_user(text, text, text, jsonb, jsonb, boolean, uuid),
    auth.start_session(uuid, uuid, text, inet, text),
    auth.rotate_refresh_token(text, text[], integer),
    auth.end_sessions(uuid, uuid, text),
    auth.audit(text, uuid, text, text, jsonb)
    from public, anon, authenticated;
grant execute on function auth.iso_time(timestamptz), auth.user_role(auth.users),
    auth.identity_json(auth.identities), auth.user_json(auth.users),
    auth.access_claims(auth.users, uuid, bigint, bigint, text),
    auth.create_user(text, text, text, jsonb, jsonb, boolean, uuid),
    auth.start_session(uuid, uuid, text, inet, text),
    auth.rotate_refresh_token(text, text[], integer),
    auth.end_sessions(uuid, uuid, text),
    auth.audit(text, uuid, text, text, jsonb)
    to service_role;
