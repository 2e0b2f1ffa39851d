-- public.report_recipients() without its own cap.
--
-- 053 ended the query with `limit 1000`: on an instance with more live users
-- than that, the users after the 1,000th address could not be picked, and the
-- dashboard showed them as "a former user" in existing schedules — with
-- nothing saying the list was cut. A set-returning function called through
-- /rest/v1/rpc pages like a table: DB_MAX_ROWS bounds each answer, and the
-- caller asks for the next rows with Range / limit+offset (supabase-js
-- `.range()`), so the function itself returns every row and the caller pages.
-- Same checks and columns as 053.

create or replace function public.report_recipients()
returns table (id uuid, email text)
language plpgsql stable
security definer
set search_path = ''
as $$
begin
    if coalesce(auth.db_role_for(auth.uid()::text), 'anon') not in ('app_admin', 'app_user') then
        raise exception 'only users and admins schedule reports' using errcode = '42501';
    end if;
    return query
        select u.id, u.email::text
        from auth.users u
        where u.deleted_at is null and u.email is not null
          and (u.banned_until is null or u.banned_until <= pg_catalog.now())
        order by u.email;
end
$$;
revoke all on function public.report_recipients() from public, anon;
grant execute on function public.report_recipients() to authenticated, service_role;
