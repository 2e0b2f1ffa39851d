-- 002_audit_logs.sql: the append-only audit trail of data changes.
--
-- public.audit_logs has the spec's columns (timestamps as timestamptz). Rows are
-- written only by public.audit_trigger(), which any table attaches with
--   CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON public.t
--       FOR EACH ROW EXECUTE FUNCTION public.audit_trigger();
-- and by the server as service_role (e.g. sign-in events). Admins may read the
-- trail; nobody but service_role may write, change or delete it. Secrets never
-- reach it in clear: row images pass through public.audit_redact(). Rows older
-- than app_settings.data_retention_days are removed by public.purge_audit_logs(),
-- called from a scheduled job.

create table public.audit_logs (
    id uuid primary key default gen_random_uuid(),
    user_id uuid references auth.users (id) on delete set null,
    action varchar(100) not null,             -- login, create, update, delete, export
    resource_type varchar(100),               -- user, campaign, report, or the table name
    resource_id uuid,
    old_value jsonb,
    new_value jsonb,
    ip_address inet,
    user_agent text,
    status varchar(50),                       -- success, failure
    error_message text,
    metadata jsonb,
    created_at timestamptz not null default now()
);
comment on table public.audit_logs is
    'Append-only audit trail; written by public.audit_trigger() and the server (service_role).';

create index idx_audit_logs_user_id on public.audit_logs (user_id);
create index idx_audit_logs_created_at on public.audit_logs (created_at desc);
create index idx_audit_logs_action on public.audit_logs (action);
create index idx_audit_logs_resource on public.audit_logs (resource_type, resource_id);

alter table public.audit_logs enable row level security;

revoke all on public.audit_logs from public, anon, authenticated;
grant select on public.audit_logs to authenticated;
grant all on public.audit_logs to service_role;

-- Only admins read the trail (the authoritative role, not user_metadata). There is
-- deliberately no INSERT/UPDATE/DELETE policy and no such privilege for anon or
-- authenticated: the trail is append-only through the trigger.
create policy "Admins can view audit logs"
    on public.audit_logs
    for select
    to authenticated
    using ((select public.get_user_role()) = 'admin');

-- Returns the JSON value with the value of every object key that names a secret
-- (password, secret, token, api_key, apikey, credential, private_key, encrypted;
-- case-insensitive, anywhere in the key) replaced by "[REDACTED]", at any depth,
-- inside objects and arrays. NULL stays NULL.
create or replace function public.audit_redact(value jsonb)
returns jsonb
language sql immutable parallel safe
set search_path = ''
as $$
    select case pg_catalog.jsonb_typeof(value)
        when 'object' then coalesce(
            (select pg_catalog.jsonb_object_agg(
                        e.key,
                        case when e.key ~* '(password|secret|token|api_key|apikey|credential|private_key|encrypted)'
                             then pg_catalog.to_jsonb('[REDACTED]'::text)
                             else public.audit_redact(e.value)
                        end)
             from pg_catalog.jsonb_each(value) as e),
            '{}'::jsonb)
        when 'array' then coalesce(
            (select pg_catalog.jsonb_agg(public.audit_redact(a.elem) order by a.ord)
             from pg_catalog.jsonb_array_elements(value) with ordinality as a(elem, ord)),
            '[]'::jsonb)
        else value
    end
$$;

-- Row trigger: records one audit_logs row per inserted, updated or deleted row.
--   user_id       auth.uid() when that user exists (else NULL; the sub goes to metadata)
--   action        'create' | 'update' | 'delete'
--   resource_type the table name; resource_id the row's id when the column is a uuid,
--                 otherwise NULL and the primary key (or id) goes to metadata.key
--   old_value / new_value  the row images, redacted by public.audit_redact()
--   ip_address    request.headers->>'x-real-ip' (set by the server; NULL if absent
--                 or not an address: a bad header never fails the write)
--   user_agent    request.headers->>'user-agent' (at most 1024 characters)
--   metadata      {"role": auth.role(), "table": "schema.table"}
-- Every UPDATE is recorded, even one that changes only updated_at.
create or replace function public.audit_trigger()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_row jsonb;
    v_old jsonb;
    v_new jsonb;
    v_action text;
    v_uid uuid;
    v_user_id uuid;
    v_resource_id uuid;
    v_key jsonb;
    v_headers jsonb;
    v_ip inet;
    v_ua text;
    v_metadata jsonb;
begin
    if tg_level <> 'ROW' then
        raise exception 'public.audit_trigger() must be attached FOR EACH ROW';
    end if;
    if tg_op = 'INSERT' then
        v_action := 'create';
        v_new := pg_catalog.to_jsonb(new);
        v_row := v_new;
    elsif tg_op = 'UPDATE' then
        v_action := 'update';
        v_old := pg_catalog.to_jsonb(old);
        v_new := pg_catalog.to_jsonb(new);
        v_row := v_new;
    elsif tg_op = 'DELETE' then
        v_action := 'delete';
        v_old := pg_catalog.to_jsonb(old);
        v_row := v_old;
    else
        raise exception 'public.audit_trigger() must be a row trigger on INSERT, UPDATE or DELETE';
    end if;

    -- resource_id: the id column when it is a uuid; otherwise the key into metadata.
    if exists (select 1 from pg_catalog.pg_attribute a
               where a.attrelid = tg_relid and a.attname = 'id' and not a.attisdropped
                 and a.atttypid = 'pg_catalog.uuid'::pg_catalog.regtype) then
        v_resource_id := (v_row ->> 'id')::uuid;
    else
        select pg_catalog.jsonb_object_agg(a.attname, v_row -> a.attname::text)
        into v_key
        from pg_catalog.pg_index i
        join pg_catalog.pg_attribute a
          on a.attrelid = i.indrelid and a.attnum = any (i.indkey)
        where i.indrelid = tg_relid and i.indisprimary;
        if v_key is null and v_row ? 'id' then
            v_key := pg_catalog.jsonb_build_object('id', v_row -> 'id');
        end if;
    end if;

    -- Request context; the server always sets request.headers as a JSON object.
    begin
        v_headers := nullif(pg_catalog.current_setting('request.headers', true), '')::jsonb;
        if pg_catalog.jsonb_typeof(v_headers) <> 'object' then
            v_headers := null;
        end if;
    exception when others then
        v_headers := null;
    end;
    if v_headers is not null then
        v_ua := pg_catalog.left(v_headers ->> 'user-agent', 1024);
        if v_headers ->> 'x-real-ip' is not null then
            begin
                v_ip := (v_headers ->> 'x-real-ip')::inet;
            exception when others then
                v_ip := null;
            end;
        end if;
    end if;

    v_uid := auth.uid();
    if v_uid is not null then
        select u.id into v_user_id from auth.users u where u.id = v_uid;
    end if;

    v_metadata := pg_catalog.jsonb_build_object(
        'role', auth.role(),
        'table', tg_table_schema || '.' || tg_table_name);
    if v_key is not null then
        v_metadata := v_metadata || pg_catalog.jsonb_build_object('key', public.audit_redact(v_key));
    end if;
    if v_uid is not null and v_user_id is null then
        v_metadata := v_metadata || pg_catalog.jsonb_build_object('sub', v_uid);
    end if;

    insert into public.audit_logs
        (user_id, action, resource_type, resource_id, old_value, new_value,
         ip_address, user_agent, status, metadata)
    values
        (v_user_id, v_action, tg_table_name, v_resource_id,
         public.audit_redact(v_old), public.audit_redact(v_new),
         v_ip, v_ua, 'success', v_metadata);
    return null;
end
$$;

-- Deletes audit rows older than retention_days (>= 0) and returns how many; for
-- the retention job (app_settings.data_retention_days), service_role only.
create or replace function public.purge_audit_logs(retention_days integer)
returns bigint
language plpgsql volatile
set search_path = ''
as $$
declare
    v_count bigint;
begin
    if retention_days is null or retention_days < 0 then
        raise exception 'retention_days must be zero or more' using errcode = '22023';
    end if;
    delete from public.audit_logs l
    where l.created_at < pg_catalog.now() - pg_catalog.make_interval(days => retention_days);
    get diagnostics v_count = row_count;
    return v_count;
end
$$;

revoke all on function public.audit_redact(jsonb) from public;
grant execute on function public.audit_redact(jsonb) to authenticated, service_role;
revoke all on function public.audit_trigger() from public, anon, authenticated;
revoke all on function public.purge_audit_logs(integer) from public, anon, authenticated;
grant execute on function public.purge_audit_logs(integer) to service_role;
