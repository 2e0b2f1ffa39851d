-- A failed sign-in's reason in public.audit_logs.
--
-- 018's mirror of auth.audit_log_entries labelled every login_failed row
-- "invalid credentials". Since 040 the OAuth callback and grant_type=pkce
-- also write login_failed, with {provider, flow, reason} in the payload's
-- traits (e.g. reason "state cookie missing", a login-CSRF attempt), and an
-- admin reading the audit log saw them as wrong passwords. The mirror now
-- says which: "invalid credentials" for the password grant (no reason in the
-- traits), "<provider> sign-in failed: <reason>" otherwise, and copies the
-- provider and the flow into metadata. Everything else is as in 018.
create or replace function public.mirror_auth_event()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_action text := new.payload ->> 'action';
    v_traits jsonb := coalesce((new.payload -> 'traits')::jsonb, '{}'::jsonb);
    v_actor uuid;
    v_ip inet;
    v_error text;
begin
    if v_action not in ('login', 'login_failed', 'logout') or not public.audit_enabled() then
        return null;
    end if;
    if (new.payload ->> 'actor_id') ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
        v_actor := (new.payload ->> 'actor_id')::uuid;
        if not exists (select 1 from auth.users u where u.id = v_actor) then
            v_actor := null;
        end if;
    end if;
    begin
        v_ip := nullif(new.ip_address, '')::inet;
    exception when others then
        v_ip := null;
    end;
    if v_action = 'login_failed' then
        v_error := case when nullif(v_traits ->> 'reason', '') is null then 'invalid credentials'
                        else pg_catalog.left(coalesce(nullif(v_traits ->> 'provider', ''), 'external')
                                             || ' sign-in failed: ' || (v_traits ->> 'reason'), 500) end;
    end if;
    insert into public.audit_logs (user_id, action, resource_type, resource_id, ip_address, user_agent,
                                   status, error_message, metadata)
    values (v_actor,
            case v_action when 'login_failed' then 'login' else v_action end,
            'user', v_actor, v_ip,
            pg_catalog.left(nullif(pg_catalog.current_setting('request.headers', true), '')::jsonb
                            ->> 'user-agent', 1024),
            case v_action when 'login_failed' then 'failure' else 'success' end,
            v_error,
            pg_catalog.jsonb_build_object('auth_event', v_action,
                                          'email', nullif(new.payload ->> 'actor_username', ''),
                                          'auth_audit_id', new.id)
            || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                   'provider', nullif(v_traits ->> 'provider', ''),
                   'flow', nullif(v_traits ->> 'flow', ''))));
    return null;
exception when invalid_text_representation then
    -- request.headers that is not JSON never fails a sign-in
    return null;
end
$$;

revoke all on function public.mirror_auth_event() from public, anon, authenticated;
