-- 000_platform_storage.sql: the Supabase-compatible Storage schema.
--
-- storage.buckets and storage.objects hold the metadata of the files that
-- /storage/v1 keeps on disk (src/storage/). Every request reaches these tables
-- as the caller's role with the caller's claims, so the policies below decide
-- who may read and write what, exactly as in Supabase Storage. The bytes of an
-- object live under CAMPAIGND_DATA_DIR/storage, keyed by objects.version.
--
-- Default policies (later migrations may add more):
--   * a signed-in user reads the objects under a top-level folder named by
--     their own user id; users and admins (not viewers) also write there;
--   * admins (public.get_user_role() = 'admin') read and write everything and
--     manage buckets;
--   * objects in public buckets are readable by everyone (anon included);
--   * signed-in users see every bucket, anon sees public buckets only;
--   * service_role bypasses RLS (server-side jobs such as report exports).

create schema if not exists storage;
grant usage on schema storage to anon, authenticated, service_role;

create table storage.buckets (
    id text primary key,
    name text not null,
    owner uuid,
    owner_id text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    public boolean not null default false,
    avif_autodetection boolean not null default false,
    file_size_limit bigint,
    allowed_mime_types text[],
    type text not null default 'STANDARD',
    constraint buckets_name_key unique (name),
    constraint buckets_id_is_name check (id = name),
    constraint buckets_id_valid check (id ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$'),
    constraint buckets_file_size_limit_positive check (file_size_limit is null or file_size_limit > 0),
    constraint buckets_type_valid check (type in ('STANDARD'))
);
comment on table storage.buckets is 'Storage buckets (Supabase shape); RLS decides who sees and manages them.';

create table storage.objects (
    id uuid primary key default gen_random_uuid(),
    bucket_id text not null references storage.buckets (id),
    name text not null,
    owner uuid,
    owner_id text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    last_accessed_at timestamptz not null default now(),
    metadata jsonb,
    user_metadata jsonb,
    -- the key of the bytes in the storage backend; a new one per upload, so
    -- an upsert never overwrites the file a concurrent download is reading
    version text not null,
    path_tokens text[] generated always as (pg_catalog.string_to_array(name, '/')) stored,
    level integer generated always as (pg_catalog.array_length(pg_catalog.string_to_array(name, '/'), 1)) stored,
    constraint objects_bucket_name_key unique (bucket_id, name),
    constraint objects_name_length check (pg_catalog.octet_length(name) between 1 and 1024)
);
comment on table storage.objects is 'Storage objects (Supabase shape): metadata of the files on disk.';
create index objects_bucket_name_pattern_idx on storage.objects (bucket_id, name text_pattern_ops);
create index objects_owner_idx on storage.objects (owner);

-- updated_at is maintained by a trigger (SEED-NOTES 7).
create or replace function storage.touch_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    new.updated_at := pg_catalog.now();
    return new;
end
$$;
create trigger buckets_touch_updated_at before update on storage.buckets
    for each row execute function storage.touch_updated_at();
create trigger objects_touch_updated_at before update on storage.objects
    for each row execute function storage.touch_updated_at();

-- ---------------------------------------------------------------------------
-- Path helpers (same names and results as Supabase's)
-- ---------------------------------------------------------------------------

-- All the folders of an object name: 'a/b/c.png' -> {a,b}.
create or replace function storage.foldername(name text)
returns text[]
language sql immutable
set search_path = ''
as $$
    select (pg_catalog.string_to_array(name, '/'))[1:pg_catalog.array_length(pg_catalog.string_to_array(name, '/'), 1) - 1]
$$;

-- The file part of an object name: 'a/b/c.png' -> 'c.png'.
create or replace function storage.filename(name text)
returns text
language sql immutable
set search_path = ''
as $$
    select (pg_catalog.string_to_array(name, '/'))[pg_catalog.array_length(pg_catalog.string_to_array(name, '/'), 1)]
$$;

-- The extension of an object name: 'a/b/c.png' -> 'png' ('' when none).
create or replace function storage.extension(name text)
returns text
language sql immutable
set search_path = ''
as $$
    select case when storage.filename(name) like '%.%'
                then pg_catalog.reverse(pg_catalog.split_part(pg_catalog.reverse(storage.filename(name)), '.', 1))
                else '' end
$$;

-- Escapes LIKE wildcards so a prefix or search text matches literally.
create or replace function storage.like_escape(s text)
returns text
language sql immutable
set search_path = ''
as $$
    select pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(s, '\', '\\'), '%', '\%'), '_', '\_')
$$;

-- The listing behind POST /object/list/{bucket}: the files directly under
-- prefix (which ends in '/' or is ''), and one row per sub-folder (id and
-- timestamps NULL), name relative to the prefix, folders first. Runs as the
-- caller, so RLS decides what is listed. levels = number of '/'-separated
-- parts of prefix plus one. search keeps the names that start with it
-- (case-insensitive, matched literally).
create or replace function storage.search(
    prefix text, bucketname text, limits integer default 100, levels integer default 1,
    offsets integer default 0, search text default '', sortcolumn text default 'name',
    sortorder text default 'asc')
returns table (name text, id uuid, updated_at timestamptz, created_at timestamptz,
               last_accessed_at timestamptz, metadata jsonb)
language plpgsql stable
set search_path = ''
as $$
declare
    v_col text := case when sortcolumn in ('name', 'updated_at', 'created_at', 'last_accessed_at')
                       then sortcolumn else 'name' end;
    v_dir text := case when pg_catalog.lower(sortorder) = 'desc' then 'desc' else 'asc' end;
begin
    return query execute pg_catalog.format(
        'with matching as (
             select o.path_tokens, o.id, o.updated_at, o.created_at, o.last_accessed_at,
                    o.metadata
             from storage.objects o
             where o.bucket_id = $1
               and o.name like storage.like_escape($2) || ''%%''
               and o.path_tokens[$3] ilike storage.like_escape($4) || ''%%''
         ),
         listed as (
             select distinct m.path_tokens[$3] as name, null::uuid as id,
                    null::timestamptz as updated_at, null::timestamptz as created_at,
                    null::timestamptz as last_accessed_at, null::jsonb as metadata, 0 as kind
             from matching m
             where pg_catalog.array_length(m.path_tokens, 1) > $3
             union all
             select m.path_tokens[$3], m.id, m.updated_at, m.created_at, m.last_accessed_at,
                    m.metadata, 1
             from matching m
             where pg_catalog.array_length(m.path_tokens, 1) = $3
         )
         select l.name, l.id, l.updated_at, l.created_at, l.last_accessed_at, l.metadata
         from listed l
         order by l.kind, l.%1$I %2$s, l.name %2$s
         limit $5 offset $6', v_col, v_dir)
    using bucketname, prefix, levels, coalesce(search, ''), limits, offsets;
end
$$;

-- ---------------------------------------------------------------------------
-- Helpers the server calls
-- ---------------------------------------------------------------------------

-- What an upload must respect: the bucket's public flag, size limit and
-- allowed MIME types, readable whatever the caller may see of the bucket
-- (Supabase reads these as the superuser too). No row: no such bucket.
create or replace function storage.bucket_limits(p_bucket text)
returns table (public boolean, file_size_limit bigint, allowed_mime_types text[])
language sql stable
security definer
set search_path = ''
as $$
    select b.public, b.file_size_limit, b.allowed_mime_types
    from storage.buckets b
    where b.id = p_bucket
$$;

-- Whether the caller's policies allow writing this object (INSERT, or with
-- p_upsert INSERT ... ON CONFLICT DO UPDATE), tried and rolled back, so an
-- upload is refused before its bytes are read. Raises 42501 when RLS refuses,
-- 23505 when the object exists and p_upsert is false, 23503 for a missing bucket.
create or replace function storage.can_insert_object(p_bucket text, p_name text, p_owner uuid,
                                                     p_upsert boolean)
returns boolean
language plpgsql
set search_path = ''
as $$
begin
    begin
        if p_upsert then
            insert into storage.objects (bucket_id, name, owner, owner_id, version)
            values (p_bucket, p_name, p_owner, p_owner::text, 'probe')
            on conflict (bucket_id, name) do update
                set owner = excluded.owner, owner_id = excluded.owner_id;
        else
            insert into storage.objects (bucket_id, name, owner, owner_id, version)
            values (p_bucket, p_name, p_owner, p_owner::text, 'probe');
        end if;
        raise sqlstate 'CDPRB';
    exception when sqlstate 'CDPRB' then
        null; -- the probe row is rolled back with the sub-transaction
    end;
    return true;
end
$$;

revoke all on function storage.bucket_limits(text) from public;
revoke all on function storage.can_insert_object(text, text, uuid, boolean) from public;
revoke all on function storage.search(text, text, integer, integer, integer, text, text, text) from public;
grant execute on function storage.bucket_limits(text),
    storage.can_insert_object(text, text, uuid, boolean),
    storage.search(text, text, integer, integer, integer, text, text, text)
    to anon, authenticated, service_role;
grant execute on function storage.foldername(text), storage.filename(text),
    storage.extension(text), storage.like_escape(text)
    to anon, authenticated, service_role;

-- Whether a bucket is public, for the read policy (SECURITY DEFINER so that the
-- policy does not depend on what the caller may see of storage.buckets).
create or replace function storage.bucket_is_public(p_bucket text)
returns boolean
language sql stable
security definer
set search_path = ''
as $$
    select coalesce((select b.public from storage.buckets b where b.id = p_bucket), false)
$$;
revoke all on function storage.bucket_is_public(text) from public;
grant execute on function storage.bucket_is_public(text) to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Privileges and row-level security
-- ---------------------------------------------------------------------------

alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;

revoke all on storage.buckets, storage.objects from public;
grant select, insert, update, delete on storage.buckets, storage.objects
    to anon, authenticated, service_role;

-- buckets
create policy buckets_select_public on storage.buckets for select to anon, authenticated
    using (public);
create policy buckets_select_signed_in on storage.buckets for select to authenticated
    using ((select public.get_user_role()) is not null);
create policy buckets_insert_admin on storage.buckets for insert to authenticated
    with check ((select public.get_user_role()) = 'admin');
create policy buckets_update_admin on storage.buckets for update to authenticated
    using ((select public.get_user_role()) = 'admin')
    with check ((select public.get_user_role()) = 'admin');
create policy buckets_delete_admin on storage.buckets for delete to authenticated
    using ((select public.get_user_role()) = 'admin');

-- objects: public buckets are readable by everyone
create policy objects_select_public_bucket on storage.objects for select to anon, authenticated
    using (storage.bucket_is_public(bucket_id));

-- objects: a signed-in user's own top-level folder
create policy objects_select_own_folder on storage.objects for select to authenticated
    using ((storage.foldername(name))[1] = (select auth.uid())::text
           and (select public.get_user_role()) is not null);
create policy objects_insert_own_folder on storage.objects for insert to authenticated
    with check ((storage.foldername(name))[1] = (select auth.uid())::text
                and (select public.get_user_role()) in ('admin', 'user'));
create policy objects_update_own_folder on storage.objects for update to authenticated
    using ((storage.foldername(name))[1] = (select auth.uid())::text
           and (select public.get_user_role()) in ('admin', 'user'))
    with check ((storage.foldername(name))[1] = (select auth.uid())::text
                and (select public.get_user_role()) in ('admin', 'user'));
create policy objects_delete_own_folder on storage.objects for delete to authenticated
    using ((storage.foldername(name))[1] = (select auth.uid())::text
           and (select public.get_user_role()) in ('admin', 'user'));

-- objects: admins reach everything
create policy objects_select_admin on storage.objects for select to authenticated
    using ((select public.get_user_role()) = 'admin');
create policy objects_insert_admin on storage.objects for insert to authenticated
    with check ((select public.get_user_role()) = 'admin');
create policy objects_update_admin on storage.objects for update to authenticated
    using ((select public.get_user_role()) = 'admin')
    with check ((select public.get_user_role()) = 'admin');
create policy objects_delete_admin on storage.objects for delete to authenticated
    using ((select public.get_user_role()) = 'admin');

-- A private bucket for files the server produces for users (report exports):
-- saved under <user id>/..., so the own-folder policies above apply, and
-- handed out as signed URLs.
insert into storage.buckets (id, name, public) values ('exports', 'exports', false)
    on conflict (id) do nothing;
