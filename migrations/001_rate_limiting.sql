-- 001_rate_limiting.sql: login attempt tracking and lock-out (SEED-NOTES 12).
--
-- The server's password sign-in (running as service_role) asks
-- auth.login_throttle() before checking a password; a positive answer is the
-- number of seconds to wait (HTTP 429 with Retry-After). Every attempt is then
-- recorded with auth.record_login_attempt(). Failures are counted per e-mail
-- address (since that address last signed in successfully) and per client address
-- (x-real-ip, independent of the e-mail), within a sliding window.

create table auth.login_attempts (
    id bigint generated always as identity primary key,
    email text,                                   -- lower-cased, trimmed; NULL if none sent
    ip inet,                                      -- client address; NULL if unknown
    succeeded boolean not null,
    attempted_at timestamptz not null default pg_catalog.clock_timestamp(),
    constraint login_attempts_email_normalised check (
        email = pg_catalog.btrim(pg_catalog.left(pg_catalog.lower(pg_catalog.btrim(email)), 320))
        and email <> '')
);
comment on table auth.login_attempts is
    'Sign-in attempts for lock-out; written by auth.record_login_attempt() only.';

create index login_attempts_email_idx on auth.login_attempts (email, attempted_at desc);
create index login_attempts_ip_idx on auth.login_attempts (ip, attempted_at desc)
    where not succeeded;
create index login_attempts_attempted_at_idx on auth.login_attempts (attempted_at);

alter table auth.login_attempts enable row level security;
revoke all on auth.login_attempts from public, anon, authenticated;
grant select, insert, delete on auth.login_attempts to service_role;

-- The form in which an e-mail address is stored and compared: trimmed, lower-cased,
-- at most 320 characters; NULL for NULL or blank input.
create or replace function auth.login_email(email text)
returns text
language sql immutable
set search_path = ''
as $$
    select nullif(pg_catalog.btrim(pg_catalog.left(pg_catalog.lower(pg_catalog.btrim(email)), 320)), '')
$$;

-- Seconds until the given e-mail/address may try to sign in again; 0 = allowed now.
-- Blocked when the e-mail has max_per_email failures inside the last window_seconds
-- (counting only failures recorded after its latest success), or the address has max_per_ip
-- failures inside the window (any e-mail). The wait lasts until enough failures
-- leave the window to drop below the limit, so it is always >= 1 when blocked.
-- A NULL email/ip or a NULL limit skips that check; limits and window must be > 0.
create or replace function auth.login_throttle(
    email text, ip inet, max_per_email integer, max_per_ip integer, window_seconds integer)
returns integer
language plpgsql volatile
set search_path = ''
as $$
declare
    v_now timestamptz := pg_catalog.clock_timestamp();
    v_email text := auth.login_email(login_throttle.email);
    v_since timestamptz;
    v_last_success bigint;
    v_oldest_blocking timestamptz;
    v_wait double precision := 0;
begin
    if window_seconds is null or window_seconds <= 0 then
        raise exception 'window_seconds must be positive' using errcode = '22023';
    end if;
    if max_per_email <= 0 or max_per_ip <= 0 then
        raise exception 'login limits must be positive' using errcode = '22023';
    end if;
    v_since := v_now - pg_catalog.make_interval(secs => window_seconds);

    if v_email is not null and max_per_email is not null then
        select max(a.id) into v_last_success
        from auth.login_attempts a
        where a.email = v_email and a.succeeded;

        -- The max_per_email-th newest failure: once it leaves the window, the
        -- count drops below the limit.
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

    if login_throttle.ip is not null and max_per_ip is not null then
        v_oldest_blocking := null;
        select f.attempted_at into v_oldest_blocking
        from auth.login_attempts f
        where f.ip = login_throttle.ip
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

-- Records one sign-in attempt. A success ends that e-mail's failure streak: the
-- throttle counts only failures after the latest success. The per-address count
-- is unaffected. Old rows are removed by auth.purge_login_attempts().
create or replace function auth.record_login_attempt(email text, ip inet, succeeded boolean)
returns void
language plpgsql volatile
set search_path = ''
as $$
begin
    if record_login_attempt.succeeded is null then
        raise exception 'succeeded must not be NULL' using errcode = '22004';
    end if;
    insert into auth.login_attempts (email, ip, succeeded)
    values (auth.login_email(record_login_attempt.email), record_login_attempt.ip,
            record_login_attempt.succeeded);
end
$$;

-- Deletes attempts older than retention_seconds (>= 1); returns how many.
create or replace function auth.purge_login_attempts(retention_seconds integer)
returns bigint
language plpgsql volatile
set search_path = ''
as $$
declare
    v_count bigint;
begin
    if retention_seconds is null or retention_seconds < 1 then
        raise exception 'retention_seconds must be at least 1' using errcode = '22023';
    end if;
    delete from auth.login_attempts a
    where a.attempted_at < pg_catalog.now() - pg_catalog.make_interval(secs => retention_seconds);
    get diagnostics v_count = row_count;
    return v_count;
end
$$;

revoke all on function auth.login_email(text) from public, anon, authenticated;
grant execute on function auth.login_email(text) to service_role;
revoke all on function auth.login_throttle(text, inet, integer, integer, integer) from public, anon, authenticated;
revoke all on function auth.record_login_attempt(text, inet, boolean) from public, anon, authenticated;
revoke all on function auth.purge_login_attempts(integer) from public, anon, authenticated;
grant execute on function auth.login_throttle(text, inet, integer, integer, integer) to service_role;
grant execute on function auth.record_login_attempt(text, inet, boolean) to service_role;
grant execute on function auth.purge_login_attempts(integer) to service_role;
