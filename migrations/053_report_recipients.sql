-- Who a scheduled report can be mailed to, for the dashboard's picker.
--
-- report_schedules.recipients holds user ids of live users of the instance
-- (032), but a user — not an admin — cannot list the instance's users: the
-- admin API is for admins and auth.users is not readable by API roles. So a
-- user scheduling a report for a colleague had no way to learn the
-- colleague's id. public.report_recipients() answers the live, not banned
-- users' ids and e-mail addresses, to the roles that may schedule reports
-- (admins and users, by the database's authoritative role: a viewer, or a
-- user banned or deleted since the token was issued, gets 42501). It reads
-- nothing else of auth.users (no metadata, no phone, no sign-in times).
-- Everyone who may schedule a report sees the team's addresses: they are the
-- people the report can be mailed to, as in a mail client's address book.

create function public.report_recipients()
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
        order by u.email
        limit 1000;
end
$$;
revoke all on function public.report_recipients() from public, anon;
grant execute on function public.report_recipients() to authenticated, service_role;
