-- 023_encryption_key_session.sql: the encryption key never travels in a statement
-- (issue 9 §3.7).
--
-- Until now the server passed CAMPAIGND_ENCRYPTION_KEY as a parameter of every
-- write or service-role transaction's prelude (set_config('campaignd.encryption_key',
-- $7, true)). With log_statement = all PostgreSQL logs the parameters of every
-- statement, so the key landed in the log; and while it was set any SQL running in
-- that transaction, an API role's included, could read it with current_setting().
--
-- Now each server connection receives the key once, when it is made, as COPY data
-- (which no log_statement setting records) into a temporary table,
-- pg_temp.campaignd_key. public.campaignd_key_table_open() makes it, owned by the
-- owner of these functions (the owner of the SECURITY DEFINER functions that encrypt
-- and decrypt), with INSERT for the login role only; after the COPY,
-- public.campaignd_key_table_seal() takes that back. From then on nobody in the
-- session but the owner's functions can read or change it: not the API roles the
-- connection switches to (anon, authenticated, service_role), not even the login role
-- (authenticator) itself. No setting holds the key, so current_setting() and
-- pg_settings show nothing. The key lives in the session's memory and its temporary
-- table, as before it lived in a setting; it is not stored in the database.
--
-- The server still decides per transaction whether the key may be used: its
-- prelude sets campaignd.secrets = 'on' for write and service-role transactions
-- only (as it set the key before), and public.campaignd_encryption_key() reads the
-- table only then. A key set explicitly in the GUC campaignd.encryption_key (psql
-- maintenance, the pgTAP tests) still takes precedence.
-- Applied once, inside one transaction, by the database owner.

create or replace function public.campaignd_encryption_key()
returns text
language plpgsql stable
set search_path = ''
as $$
declare
    v_key text := pg_catalog.current_setting('campaignd.encryption_key', true);
begin
    if (v_key is null or v_key = '')
       and pg_catalog.current_setting('campaignd.secrets', true) = 'on'
       and pg_catalog.to_regclass('pg_temp.campaignd_key') is not null then
        -- dynamic: the table exists only in the server's own sessions
        execute 'select pg_catalog.convert_from(pg_catalog.decode(k.key_hex, ''hex''), ''UTF8'')
                 from pg_temp.campaignd_key k limit 1'
            into v_key;
    end if;
    if v_key is null or v_key = '' then
        raise exception 'no encryption key is set for this transaction'
            using errcode = '22023', hint = 'set CAMPAIGND_ENCRYPTION_KEY';
    end if;
    if pg_catalog.length(v_key) < 16 then
        raise exception 'the encryption key is shorter than 16 characters'
            using errcode = '22023', hint = 'set CAMPAIGND_ENCRYPTION_KEY';
    end if;
    return v_key;
end
$$;

revoke all on function public.campaignd_encryption_key() from public, anon, authenticated, service_role;

comment on function public.campaignd_encryption_key() is
    'The key for campaignd_encrypt/decrypt: the GUC campaignd.encryption_key when set, else '
    '(when the server enabled secrets for the transaction with campaignd.secrets = on) the '
    'key the server gave its session at connect time in pg_temp.campaignd_key. Internal.';

-- Makes this session's pg_temp.campaignd_key (once per session: 42710 when it exists),
-- owned by this function's owner, into which the calling login role may only INSERT.
create or replace function public.campaignd_key_table_open()
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
begin
    if pg_catalog.to_regclass('pg_temp.campaignd_key') is not null then
        raise exception 'this session already has its encryption key' using errcode = '42710';
    end if;
    create temporary table campaignd_key (key_hex text not null);
    execute pg_catalog.format('grant insert on pg_temp.campaignd_key to %I', session_user);
end
$$;

-- Ends the hand-over: the login role loses INSERT, and the table must hold exactly
-- one key (22023 otherwise).
create or replace function public.campaignd_key_table_seal()
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_n bigint;
begin
    execute pg_catalog.format('revoke all on pg_temp.campaignd_key from %I', session_user);
    select count(*) into v_n from pg_temp.campaignd_key;
    if v_n <> 1 then
        raise exception 'the session''s encryption key table holds % rows, not 1', v_n
            using errcode = '22023';
    end if;
end
$$;

revoke all on function public.campaignd_key_table_open() from public, anon, authenticated, service_role;
revoke all on function public.campaignd_key_table_seal() from public, anon, authenticated, service_role;
grant execute on function public.campaignd_key_table_open(), public.campaignd_key_table_seal()
    to authenticator;
