-- Realtime change capture (postgres_changes), see docs/realtime.md.
--
-- Captured tables get an AFTER ROW trigger that appends the change to
-- realtime.changes (a durable queue) and sends one NOTIFY per transaction as a
-- wake-up. The server reads the queue in windows of finished transaction ids
-- ([previous snapshot xmin, current snapshot xmin)), so a row committed late
-- by a long transaction is never skipped, and every campaignd process keeps
-- its own cursor (no process consumes another's events). Which tables are
-- captured is configuration: the server calls realtime.set_tables() at start
-- with REALTIME_TABLES (this migration runs before the domain tables exist).
create schema if not exists realtime;
revoke all on schema realtime from public;

create table if not exists realtime.changes (
    id bigint generated always as identity primary key,
    xid xid8 not null default pg_catalog.pg_current_xact_id(),
    relid oid not null,
    schema_name name not null,
    table_name name not null,
    type text not null check (type in ('INSERT', 'UPDATE', 'DELETE')),
    record jsonb,
    old_record jsonb,
    rls boolean not null,
    commit_timestamp timestamptz not null default pg_catalog.now()
);
create index if not exists changes_xid_id on realtime.changes (xid, id);
create index if not exists changes_time on realtime.changes (commit_timestamp);
-- Only the database owner (the server's feed) reads the queue; the trigger
-- writes it as SECURITY DEFINER.
alter table realtime.changes enable row level security;
revoke all on realtime.changes from public;

-- The trigger. TG_ARGV holds the primary-key column names. old_record is the
-- whole old row only with REPLICA IDENTITY FULL (and never for DELETE on a
-- table with RLS), otherwise the primary key, as Supabase sends it.
create or replace function realtime.capture() returns trigger
language plpgsql security definer set search_path = pg_catalog as $$
declare
    v_ident "char";
    v_rls boolean;
    v_new jsonb;
    v_old jsonb;
begin
    select c.relreplident, c.relrowsecurity into v_ident, v_rls
      from pg_catalog.pg_class c where c.oid = TG_RELID;
    if TG_OP <> 'DELETE' then
        v_new := pg_catalog.to_jsonb(NEW);
    end if;
    if TG_OP <> 'INSERT' then
        v_old := pg_catalog.to_jsonb(OLD);
        if v_ident <> 'f' or (TG_OP = 'DELETE' and v_rls) then
            select coalesce(pg_catalog.jsonb_object_agg(k, v_old -> k), '{}'::jsonb) into v_old
              from pg_catalog.unnest(TG_ARGV) as k;
        end if;
    end if;
    insert into realtime.changes (relid, schema_name, table_name, type, record, old_record, rls)
    values (TG_RELID, TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP, v_new, v_old, v_rls);
    -- Identical notifications in one transaction are folded into one.
    perform pg_catalog.pg_notify('campaignd_realtime', '');
    return null;
end
$$;
revoke all on function realtime.capture() from public;

-- Starts capturing changes of a table (idempotent). The table must have a
-- primary key: events are checked against RLS by looking the row up by it.
create or replace function realtime.enable_table(p_table regclass) returns void
language plpgsql set search_path = pg_catalog as $$
declare
    v_args text;
begin
    select pg_catalog.string_agg(pg_catalog.quote_literal(a.attname), ', ' order by k.ord)
      into v_args
      from pg_catalog.pg_index i
      cross join lateral pg_catalog.unnest(i.indkey::int2[]) with ordinality as k(attnum, ord)
      join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
     where i.indrelid = p_table and i.indisprimary;
    if v_args is null then
        raise exception 'realtime: table % has no primary key', p_table
            using errcode = '55000';
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

-- Stops capturing changes of a table.
create or replace function realtime.disable_table(p_table regclass) returns void
language plpgsql set search_path = pg_catalog as $$
begin
    if exists (select 1 from pg_catalog.pg_trigger t
                where t.tgrelid = p_table and t.tgname = 'campaignd_realtime') then
        execute pg_catalog.format('drop trigger campaignd_realtime on %s', p_table);
    end if;
end
$$;

-- Makes exactly these tables (names, optionally schema-qualified; default
-- schema public) the captured ones. Returns the names that do not exist, so
-- the server can warn about them.
create or replace function realtime.set_tables(p_names text[]) returns text[]
language plpgsql set search_path = pg_catalog as $$
declare
    v_name text;
    v_rel regclass;
    v_missing text[] := '{}';
    v_keep oid[] := '{}';
    v_old record;
begin
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

-- What the server needs to deliver changes of a table: its columns as
-- Supabase lists them ([{"name","type"}] in attnum order, type = typname) and
-- the statement that, run as a subscriber with $1 = a JSON array of the
-- records the changes carry, returns the 1-based positions of the records
-- that subscriber may see (RLS applies because it runs under their role).
-- A record counts as visible only if the row with its primary key is visible
-- now AND still equals it (compared as jsonb after a round trip through the
-- row type, so both sides are rendered by the same session): a row written
-- while private and made visible before the feed ran is not delivered with
-- its old contents; the later change that made it visible carries the row as
-- it is visible.
create or replace function realtime.table_info(p_table regclass,
    out columns_json text, out visible_sql text)
language sql stable set search_path = pg_catalog as $$
    select
      (select coalesce(pg_catalog.json_agg(pg_catalog.json_build_object('name', a.attname,
                                                     'type', t.typname) order by a.attnum), '[]')::text
         from pg_catalog.pg_attribute a join pg_catalog.pg_type t on t.oid = a.atttypid
        where a.attrelid = p_table and a.attnum > 0 and not a.attisdropped),
      (select pg_catalog.format(
          'select k.ord::int from pg_catalog.jsonb_array_elements($1::jsonb) with ordinality as k(v, ord) '
          'where exists (select 1 from %s t where %s and pg_catalog.to_jsonb(t) operator(pg_catalog.=) '
          'pg_catalog.to_jsonb(pg_catalog.jsonb_populate_record(null::%s, k.v)))', p_table,
          pg_catalog.string_agg(pg_catalog.format('t.%I = (k.v ->> %L)::%s', a.attname, a.attname,
                                    pg_catalog.format_type(a.atttypid, a.atttypmod)), ' and '),
          p_table)
         from pg_catalog.pg_index i
         cross join lateral pg_catalog.unnest(i.indkey::int2[]) as k(attnum)
         join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
        where i.indrelid = p_table and i.indisprimary)
$$;

-- Removes queue rows older than the given age (the server calls it
-- periodically; every process has read them by then).
create or replace function realtime.purge(p_older_than interval) returns bigint
language sql set search_path = pg_catalog as $$
    with d as (delete from realtime.changes
                where commit_timestamp < pg_catalog.now() - p_older_than returning 1)
    select pg_catalog.count(*) from d
$$;
