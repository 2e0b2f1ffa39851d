-- 022_auth_admin_update.sql: the admin API's user update as one SQL function.
--
-- auth.merge_metadata(old, patch): GoTrue's metadata update: the patch's keys
-- replace the old ones, and a key set to JSON null is removed. A NULL patch
-- leaves the metadata as it is. Used by PUT /auth/v1/user and by the function
-- below, so the rule is written once.
-- auth.admin_update_user(...): PUT /auth/v1/admin/users/{id} in one call, as
-- auth.create_user is for creation: locks the user, applies e-mail, password
-- hash, user and app metadata, ban and confirmation, keeps the e-mail identity
-- in step, writes the audit entry, and ends every session when an admin set a
-- password. The keys a caller may not set are dropped here, not in C: "role"
-- from user metadata (the role lives in app metadata, SEED-NOTES 1) and
-- "provider"/"providers" from app metadata. Returns the user's JSON and its
-- role before and after, or no row when there is no such user.
--
-- Only service_role may execute them (the server runs Auth as service_role).
-- Applied once, inside one transaction, by the database owner.

create function auth.merge_metadata(p_old jsonb, p_patch jsonb)
returns jsonb
language sql
immutable
set search_path = ''
as $$
    select case when p_patch is null then p_old
                else coalesce((select pg_catalog.jsonb_object_agg(e.k, e.v)
                                 from pg_catalog.jsonb_each(p_old || p_patch) as e(k, v)
                                where e.v <> 'null'::jsonb), '{}'::jsonb) end
$$;

create function auth.admin_update_user(p_id uuid, p_email text, p_password_hash text,
                                       p_user_meta jsonb, p_app_meta jsonb,
                                       p_ban_seconds bigint, p_confirm boolean,
                                       p_actor uuid, p_actor_email text, p_ip text)
returns table (user_text text, role_before text, role_after text)
language plpgsql
set search_path = ''
as $$
declare
    u auth.users;
    v_before text;
begin
    select auth.user_role(x) into v_before from auth.users x where x.id = p_id for update;
    if not found then
        return;
    end if;
    update auth.users x set
        email = coalesce(pg_catalog.lower(pg_catalog.btrim(p_email)), x.email),
        encrypted_password = coalesce(p_password_hash, x.encrypted_password),
        raw_user_meta_data = auth.merge_metadata(x.raw_user_meta_data, p_user_meta - 'role'),
        raw_app_meta_data = auth.merge_metadata(x.raw_app_meta_data,
                                                p_app_meta - 'provider' - 'providers'),
        banned_until = case when p_ban_seconds is null then x.banned_until
                            when p_ban_seconds < 0 then null
                            else pg_catalog.now() + pg_catalog.make_interval(secs => p_ban_seconds)
                       end,
        email_confirmed_at = case when p_confirm then coalesce(x.email_confirmed_at, pg_catalog.now())
                                  else x.email_confirmed_at end,
        updated_at = pg_catalog.now()
     where x.id = p_id
    returning * into u;
    if p_email is not null then
        update auth.identities
           set identity_data = identity_data
                   || pg_catalog.jsonb_build_object('email', pg_catalog.lower(pg_catalog.btrim(p_email))),
               updated_at = pg_catalog.now()
         where user_id = p_id and provider = 'email';
    end if;
    perform auth.audit('user_modified', p_actor, p_actor_email, p_ip,
                       pg_catalog.jsonb_build_object('user_id', u.id, 'role', auth.user_role(u),
                                                     'banned', p_ban_seconds is not null));
    -- a password set by an admin ends every session of the user
    if p_password_hash is not null then
        delete from auth.sessions where user_id = p_id;
    end if;
    return query select auth.user_json(u)::text, v_before, auth.user_role(u);
end
$$;

revoke all on function auth.merge_metadata(jsonb, jsonb),
    auth.admin_update_user(uuid, text, text, jsonb, jsonb, bigint, boolean, uuid, text, text)
    from public, anon, authenticated;
grant execute on function auth.merge_metadata(jsonb, jsonb),
    auth.admin_update_user(uuid, text, text, jsonb, jsonb, bigint, boolean, uuid, text, text)
    to service_role;
