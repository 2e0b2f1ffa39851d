-- 049_fanout_fast.sql: less database work per inserted row (issue 9, realtime
-- fan-out), and realtime.set_tables() safe when several servers start at once.
--
-- The profile of one `POST /rest/v1/campaigns` (pgbench replay of the server's
-- statements, track_functions = all; bench/RESULTS.md, "fanout-fast") showed
-- where a row's time goes: public.audit_redact() was called 25 times per row
-- (once per column of the row image: a SQL function with SET search_path is
-- never inlined, so every call is a function call with its own executor),
-- auth.db_role_for() twice per request, and four BEFORE triggers ran PL/pgSQL
-- for columns the row does not set. Every change below keeps what the
-- function or trigger did; only the work to get there is smaller.

-- ---------------------------------------------------------------------------
-- Hot functions in PL/pgSQL, whose plans a session keeps
-- ---------------------------------------------------------------------------
-- A LANGUAGE sql function with SET search_path or SECURITY DEFINER is never
-- inlined, and (PostgreSQL 15) a non-inlined SQL function parses and plans its
-- body again every time the statement that calls it starts: for
-- audit_redact() that was once per column of every audited row, for
-- db_role_for_claims() and db_role_for() once per API request. The same
-- bodies in PL/pgSQL are planned once per session. Results are unchanged
-- (tests/sql/002_audit_logs.sql, 018_domain_rules.sql, 035_mfa.sql).

-- audit_redact: also recurses only into objects and arrays, and returns a
-- value with nothing to redact as it is instead of rebuilding it.
create or replace function public.audit_redact(value jsonb)
returns jsonb
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
    if pg_catalog.jsonb_typeof(value) = 'object' then
        if not exists (select 1 from pg_catalog.jsonb_each(value) as e
                       where e.key ~* '(password|secret|token|api_key|apikey|credential|private_key|encrypted)'
                          or pg_catalog.jsonb_typeof(e.value) in ('object', 'array')) then
            return value;
        end if;
        return coalesce(
            (select pg_catalog.jsonb_object_agg(
                        e.key,
                        case when e.key ~* '(password|secret|token|api_key|apikey|credential|private_key|encrypted)'
                             then pg_catalog.to_jsonb('[REDACTED]'::text)
                             when pg_catalog.jsonb_typeof(e.value) in ('object', 'array')
                             then public.audit_redact(e.value)
                             else e.value
                        end)
             from pg_catalog.jsonb_each(value) as e),
            '{}'::jsonb);
    elsif pg_catalog.jsonb_typeof(value) = 'array' then
        if not exists (select 1 from pg_catalog.jsonb_array_elements(value) as a(elem)
                       where pg_catalog.jsonb_typeof(a.elem) in ('object', 'array')) then
            return value;
        end if;
        return coalesce(
            (select pg_catalog.jsonb_agg(public.audit_redact(a.elem) order by a.ord)
             from pg_catalog.jsonb_array_elements(value) with ordinality as a(elem, ord)),
            '[]'::jsonb);
    end if;
    return value;
end
$$;

create or replace function public.is_api_role()
returns boolean
language plpgsql stable
set search_path = ''
as $$
begin
    return current_user in ('anon', 'authenticated', 'app_admin', 'app_user', 'app_viewer');
end
$$;

create or replace function public.audit_enabled()
returns boolean
language plpgsql stable
security definer
set search_path = ''
as $$
begin
    return coalesce((select s.enable_audit_log from public.app_settings s limit 1), true);
end
$$;

create or replace function auth.db_role_for(sub text)
returns text
language plpgsql stable
security definer
set search_path = ''
as $$
begin
    return coalesce(
        (select case coalesce(u.raw_app_meta_data ->> 'role', 'user')
                    when 'admin' then 'app_admin'
                    when 'viewer' then 'app_viewer'
                    else 'app_user'
                end
         from auth.users as u
         where db_role_for.sub ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
           and u.id = (case
                           when db_role_for.sub ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                               then db_role_for.sub
                       end)::uuid
           and u.deleted_at is null
           and (u.banned_until is null or u.banned_until <= pg_catalog.now())),
        'anon');
end
$$;

-- As in 035_mfa.sql; the user is also looked up once (the SQL version's
-- subquery column was referenced twice and evaluated auth.db_role_for() twice).
create or replace function auth.db_role_for_claims(p_claims jsonb)
returns text
language plpgsql stable
security definer
set search_path = ''
as $$
declare
    v_role text := auth.db_role_for(p_claims ->> 'sub');
begin
    if v_role = 'app_admin' and auth.mfa_required_for_admin()
       and not exists (
           select 1 from auth.sessions s
           where (p_claims ->> 'session_id') ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
             and s.id = (case when (p_claims ->> 'session_id')
                                 ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                              then p_claims ->> 'session_id' end)::uuid
             and s.user_id::text = pg_catalog.lower(p_claims ->> 'sub')
             and s.aal = 'aal2') then
        return 'authenticated';
    end if;
    return v_role;
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

-- ---------------------------------------------------------------------------
-- campaigns: BEFORE triggers that have nothing to do skip their function
-- (a WHEN clause is evaluated without calling PL/pgSQL). Same names, so the
-- firing order (alphabetical) is unchanged.
-- ---------------------------------------------------------------------------

-- from_email is normalised (lower(btrim())) when set; NULL stays NULL.
create or replace function public.campaigns_normalize_from_email()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    new.from_email := pg_catalog.lower(pg_catalog.btrim(new.from_email));
    return new;
end
$$;
revoke all on function public.campaigns_normalize_from_email() from public, anon, authenticated;

drop trigger normalize_from_email on public.campaigns;
create trigger normalize_from_email before insert or update of from_email on public.campaigns
    for each row when (new.from_email is not null)
    execute function public.campaigns_normalize_from_email();

-- The references are checked only when the row names a template or segment.
drop trigger check_references on public.campaigns;
create trigger check_references before insert or update on public.campaigns
    for each row when (new.template_id is not null or new.segment_id is not null)
    execute function public.campaigns_check_references();

-- ---------------------------------------------------------------------------
-- realtime.set_tables: serialised, and a no-op for a table already captured
-- ---------------------------------------------------------------------------

-- Starts capturing changes of a table (idempotent). A table whose capture
-- trigger is already the one wanted keeps it: no DROP/CREATE TRIGGER, so no
-- ACCESS EXCLUSIVE lock on a table that the application is writing.
create or replace function realtime.enable_table(p_table regclass) returns void
language plpgsql set search_path = pg_catalog as $$
declare
    v_args text;
    v_argv bytea;
begin
    select pg_catalog.string_agg(pg_catalog.quote_literal(a.attname), ', ' order by k.ord),
           pg_catalog.string_agg(pg_catalog.convert_to(a.attname::text, 'UTF8') || '\x00'::bytea,
                                 ''::bytea order by k.ord)
      into v_args, v_argv
      from pg_catalog.pg_index i
      cross join lateral pg_catalog.unnest(i.indkey::int2[]) with ordinality as k(attnum, ord)
      join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
     where i.indrelid = p_table and i.indisprimary;
    if v_args is null then
        raise exception 'realtime: table % has no primary key', p_table
            using errcode = '55000';
    end if;
    -- tgtype 29 = ROW | INSERT | DELETE | UPDATE, AFTER
    if exists (select 1 from pg_catalog.pg_trigger t
                where t.tgrelid = p_table and t.tgname = 'campaignd_realtime'
                  and t.tgfoid = 'realtime.capture()'::regprocedure and t.tgtype = 29
                  and t.tgenabled = 'O' and t.tgargs = v_argv and t.tgattr = ''::int2vector
                  and t.tgqual is null) then
        return;
    end if;
    if exists (select 1 from pg_catalog.pg_trigger t
                where t.tgrelid = p_table and t.tgname = 'campaignd_realtime') then
        execute pg_catalog.format('drop trigger campaignd_realtime on %s', p_table);
    end if;
    execute pg_catalog.format(
        'create trigger campaignd_realtime after insert or update or delete on %s '
        'for each row execute function realtime.capture(%s)', p_table, v_args);
end
$$;

-- Makes exactly these tables the captured ones (see 000_platform_realtime.sql).
-- Two servers starting at once on one database used to deadlock here (each
-- dropping and creating capture triggers, locking the tables in its own
-- order): a transaction-level advisory lock makes the second wait for the
-- first, and then find nothing to change.
create or replace function realtime.set_tables(p_names text[]) returns text[]
language plpgsql set search_path = pg_catalog as $$
declare
    v_name text;
    v_rel regclass;
    v_missing text[] := '{}';
    v_keep oid[] := '{}';
    v_old record;
begin
    -- the key: hashtext('campaignd realtime.set_tables'), fixed
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('campaignd realtime.set_tables'));
    foreach v_name in array coalesce(p_names, '{}') loop
        v_name := pg_catalog.btrim(v_name);
        continue when v_name = '';
        v_rel := pg_catalog.to_regclass(case when v_name like '%.%' then v_name
                                             else 'public.' || v_name end);
        if v_rel is null then
            v_missing := v_missing || v_name;
        else
            perform realtime.enable_table(v_rel);
            v_keep := v_keep || v_rel::oid;
        end if;
    end loop;
    for v_old in select t.tgrelid from pg_catalog.pg_trigger t
                  where t.tgname = 'campaignd_realtime' and not (t.tgrelid = any (v_keep)) loop
        perform realtime.disable_table(v_old.tgrelid::regclass);
    end loop;
    return v_missing;
end
$$;
