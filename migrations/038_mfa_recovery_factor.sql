-- 038_mfa_recovery_factor.sql: the recovery-code factor as supabase/auth shows
-- it to auth-js 2.119 (auth.mfa.recoveryCodes, experimental.recoveryCodes):
--
-- * it is listed in the user's `factors` (factor_type `recovery_code`, status
--   `verified`) like every other factor. 035 left it out because the auth-js
--   versions of the time had no `recovery_code` bucket in listFactors(); 2.119
--   has one, and older versions only put an unknown type into `all`.
-- * a set generated without a friendly_name is named `Recovery codes`, and a
--   name another factor of the user already has is refused (`name_conflict`,
--   422 mfa_factor_name_conflict) instead of failing on the unique index.
--   Regenerating keeps the factor's id and name.
-- Applied once, inside one transaction, by the database owner.

create or replace function auth.user_json(u auth.users)
returns jsonb
language sql stable
set search_path = ''
as $$
    select auth.user_json_base(u) || coalesce(
        (select pg_catalog.jsonb_build_object('factors',
                    pg_catalog.jsonb_agg(auth.factor_json(f) order by f.created_at))
         from auth.mfa_factors f where f.user_id = u.id
         having pg_catalog.count(*) > 0),
        '{}'::jsonb)
$$;

-- As in 035, plus the default name and the name check. Statuses: ok (factor
-- id and name), insufficient_aal, exists, not_found, sole_factor,
-- name_conflict, session_not_found.
create or replace function auth.mfa_recovery_store(p_user uuid, p_session uuid, p_name text,
                                                   p_hashes text[], p_regenerate boolean, p_ip text)
returns table (status text, factor_id uuid, friendly_name text)
language plpgsql
set search_path = ''
as $$
declare
    v_aal text := auth.session_aal(p_user, p_session);
    v_name text := coalesce(nullif(p_name, ''), 'Recovery codes');
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
    elsif f.id is null and exists (select 1 from auth.mfa_factors x where x.user_id = p_user
                                   and x.friendly_name = v_name) then
        return query select 'name_conflict'::text, null::uuid, null::text;
        return;
    end if;
    if f.id is null then
        insert into auth.mfa_factors (user_id, friendly_name, factor_type, status)
        values (p_user, v_name, 'recovery_code', 'verified')
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
