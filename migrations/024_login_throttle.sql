-- 024_login_throttle.sql: sign-in throttling that a stranger cannot turn into a
-- lock-out (issue 9 §3.4).
--
-- auth.login_throttle() (001) blocked an e-mail for everyone after max_per_email
-- failures from anywhere: five wrong passwords from any address locked the real
-- owner out for the whole window. auth.login_wait() counts instead:
--   * per (e-mail, client address): after max_per_pair failures of that e-mail from
--     that address (since its last success from there, inside the window), the
--     address waits 60 s after its latest failure, doubling with every further
--     failure (60, 120, 240, ... s), never longer than the window. Only that address
--     waits: the owner signs in from anywhere else.
--   * per e-mail, all addresses: max_per_email failures inside the window (since the
--     e-mail's last success) block it everywhere, as before, but this cap is meant to
--     be high (LOGIN_MAX_FAILURES_PER_EMAIL_GLOBAL, default 100): one address reaches
--     only max_per_pair + log2(window / 60) + 1 failures per window, so only many
--     addresses together can reach it.
--   * per address, all e-mails: max_per_ip failures inside the window, as before.
-- The answer is the number of seconds to wait (0: allowed now), at least 1 when
-- blocked: the 429 + Retry-After contract of the server stays.
-- Applied once, inside one transaction, by the database owner.

create or replace function auth.login_wait(
    email text, ip inet, max_per_pair integer, max_per_email integer, max_per_ip integer,
    window_seconds integer)
returns integer
language plpgsql volatile
set search_path = ''
as $$
declare
    v_now timestamptz := pg_catalog.clock_timestamp();
    v_email text := auth.login_email(login_wait.email);
    v_since timestamptz;
    v_last_success bigint;
    v_count integer;
    v_latest timestamptz;
    v_oldest_blocking timestamptz;
    v_wait double precision := 0;
begin
    if window_seconds is null or window_seconds <= 0 then
        raise exception 'window_seconds must be positive' using errcode = '22023';
    end if;
    if max_per_pair <= 0 or max_per_email <= 0 or max_per_ip <= 0 then
        raise exception 'login limits must be positive' using errcode = '22023';
    end if;
    v_since := v_now - pg_catalog.make_interval(secs => window_seconds);

    if v_email is not null and max_per_pair is not null then
        select max(a.id) into v_last_success
        from auth.login_attempts a
        where a.email = v_email and a.ip is not distinct from login_wait.ip and a.succeeded;

        -- bounded: past max_per_pair + 20 the delay is the window anyway
        select count(*), max(f.attempted_at) into v_count, v_latest
        from (select a.attempted_at
              from auth.login_attempts a
              where a.email = v_email
                and a.ip is not distinct from login_wait.ip
                and not a.succeeded
                and a.attempted_at > v_since
                and a.id > coalesce(v_last_success, 0)
              order by a.attempted_at desc
              limit max_per_pair + 20) f;

        if v_count >= max_per_pair then
            v_wait := greatest(v_wait, extract(epoch from
                v_latest + pg_catalog.make_interval(secs => least(window_seconds::double precision,
                    60 * pg_catalog.power(2::double precision, v_count - max_per_pair)))
                - v_now));
        end if;
    end if;

    if v_email is not null and max_per_email is not null then
        select max(a.id) into v_last_success
        from auth.login_attempts a
        where a.email = v_email and a.succeeded;

        -- the max_per_email-th newest failure: once it leaves the window, the count
        -- drops below the limit
        select f.attempted_at into v_oldest_blocking
        from auth.login_attempts f
        where f.email = v_email
          and not f.succeeded
          and f.attempted_at > v_since
          and f.id > coalesce(v_last_success, 0)
        order by f.attempted_at desc
        offset max_per_email - 1 limit 1;

        if v_oldest_blocking is not null then
            v_wait := greatest(v_wait, extract(epoch from
                v_oldest_blocking + pg_catalog.make_interval(secs => window_seconds) - v_now));
        end if;
    end if;

    if login_wait.ip is not null and max_per_ip is not null then
        v_oldest_blocking := null;
        select f.attempted_at into v_oldest_blocking
        from auth.login_attempts f
        where f.ip = login_wait.ip
          and not f.succeeded
          and f.attempted_at > v_since
        order by f.attempted_at desc
        offset max_per_ip - 1 limit 1;

        if v_oldest_blocking is not null then
            v_wait := greatest(v_wait, extract(epoch from
                v_oldest_blocking + pg_catalog.make_interval(secs => window_seconds) - v_now));
        end if;
    end if;

    if v_wait <= 0 then
        return 0;
    end if;
    return greatest(1, pg_catalog.ceil(v_wait)::integer);
end
$$;

comment on function auth.login_wait(text, inet, integer, integer, integer, integer) is
    'Seconds until email may try to sign in again from ip (0: now): a growing delay per '
    '(e-mail, address), a high cap per e-mail, a cap per address. See migration 024.';

revoke all on function auth.login_wait(text, inet, integer, integer, integer, integer)
    from public, anon, authenticated;
grant execute on function auth.login_wait(text, inet, integer, integer, integer, integer)
    to service_role;

-- The pair's streak is read by (email, ip): the e-mail index finds the rows, this
-- one keeps a popular e-mail's many addresses cheap.
create index login_attempts_email_ip_idx on auth.login_attempts (email, ip, attempted_at desc);
