-- 040_auth_finish.sql: the last gaps of issue 14.
--
-- * The factor limit counts recovery codes. GoTrue's rule (validateFactors):
--   every factor row of the user counts towards MFA_MAX_ENROLLED_FACTORS (10),
--   whatever its type or status; the recovery-code set is one factor row
--   (038), so it counts too, and a user at the limit cannot add it.
--   auth.mfa_max_enrolled_factors() is the limit; a trigger on
--   auth.mfa_factors enforces it for every insert (under the user's row lock,
--   as the enrolment functions take it), and auth.mfa_recovery_store answers
--   'too_many' before reaching it, as auth.mfa_enroll_totp already did.
-- * Abandoned PKCE flows: auth.purge_flow_states(lifetime) deletes flow rows
--   older than a flow can live (called by the retention job), not only when
--   a later auth code happens to be issued.
-- Applied once, inside one transaction, by the database owner.

-- ---------------------------------------------------------------------------
-- The factor limit
-- ---------------------------------------------------------------------------

-- GoTrue's MFA_MAX_ENROLLED_FACTORS default; src/auth/gotrue_mfa.c passes the
-- same number (MFA_MAX_FACTORS) to the enrolment functions.
create function auth.mfa_max_enrolled_factors()
returns integer
language sql immutable
set search_path = ''
as $$ select 10 $$;

create function auth.mfa_factors_enforce_limit()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    -- the enrolment functions hold this lock already; a direct insert waits here
    perform 1 from auth.users u where u.id = new.user_id for update;
    if (select pg_catalog.count(*) from auth.mfa_factors f where f.user_id = new.user_id)
       >= auth.mfa_max_enrolled_factors() then
        raise exception 'too many MFA factors for user %: at most % (recovery codes count as one)',
            new.user_id, auth.mfa_max_enrolled_factors()
            using errcode = '23514', constraint = 'mfa_factors_max_enrolled';
    end if;
    return new;
end
$$;
create trigger mfa_factors_enforce_limit before insert on auth.mfa_factors
    for each row execute function auth.mfa_factors_enforce_limit();
revoke all on function auth.mfa_factors_enforce_limit() from public, anon, authenticated;

-- auth.mfa_recovery_store (038) keeps its rules; the new one puts the limit in
-- front of it: a first set of recovery codes is a new factor row, refused
-- with 'too_many' when the user is at the limit (regenerating replaces the
-- codes of the existing row and is never refused for the count).
alter function auth.mfa_recovery_store(uuid, uuid, text, text[], boolean, text)
    rename to mfa_recovery_store_rules;
revoke all on function auth.mfa_recovery_store_rules(uuid, uuid, text, text[], boolean, text)
    from public, anon, authenticated;

create function auth.mfa_recovery_store(p_user uuid, p_session uuid, p_name text,
                                        p_hashes text[], p_regenerate boolean, p_ip text)
returns table (status text, factor_id uuid, friendly_name text)
language plpgsql
set search_path = ''
as $$
begin
    perform 1 from auth.users u where u.id = p_user for update;
    if not p_regenerate
       and auth.session_aal(p_user, p_session) = 'aal2'
       and not exists (select 1 from auth.mfa_factors x
                       where x.user_id = p_user and x.factor_type = 'recovery_code')
       and (select pg_catalog.count(*) from auth.mfa_factors x where x.user_id = p_user)
           >= auth.mfa_max_enrolled_factors() then
        return query select 'too_many'::text, null::uuid, null::text;
        return;
    end if;
    return query select * from auth.mfa_recovery_store_rules(p_user, p_session, p_name, p_hashes,
                                                             p_regenerate, p_ip);
end
$$;
revoke all on function auth.mfa_recovery_store(uuid, uuid, text, text[], boolean, text),
    auth.mfa_max_enrolled_factors()
    from public, anon, authenticated;
grant execute on function auth.mfa_recovery_store(uuid, uuid, text, text[], boolean, text),
    auth.mfa_recovery_store_rules(uuid, uuid, text, text[], boolean, text),
    auth.mfa_max_enrolled_factors()
    to service_role;

-- ---------------------------------------------------------------------------
-- Abandoned PKCE flows
-- ---------------------------------------------------------------------------

-- Deletes the PKCE flows created more than p_lifetime_seconds ago: none of
-- them can still be completed (the server passes the longest a flow may wait
-- for its callback or mailed link plus the auth code's lifetime). Returns how
-- many went. Called by the retention job (src/jobs/retention.c).
create function auth.purge_flow_states(p_lifetime_seconds integer)
returns bigint
language sql
set search_path = ''
as $$
    with d as (
        delete from auth.flow_state f
         where f.created_at < pg_catalog.now() - pg_catalog.make_interval(secs => p_lifetime_seconds)
        returning 1)
    select pg_catalog.count(*) from d
$$;
revoke all on function auth.purge_flow_states(integer) from public, anon, authenticated;
grant execute on function auth.purge_flow_states(integer) to service_role;
