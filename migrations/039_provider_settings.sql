-- 039_provider_settings.sql: an admin's provider settings (issue 12,
-- "Configuration": an admin's values in the encrypted app settings take
-- precedence over the environment at run time).
--
-- The secret ones are application secrets (009): SMTP_URL (it carries the
-- password) joins twilio_account_sid, twilio_auth_token and sendgrid_api_key,
-- written with public.set_app_secret('smtp_url', value) and shown masked in
-- app_settings.smtp_url. The others are plain admin columns of app_settings:
-- email_provider, email_from, sendgrid_api_base, twilio_from, twilio_api_base
-- (NULL: the environment's value). The server reads all of them for every
-- campaign run, test message and webhook (src/api/provider_settings.c).
-- Applied once, inside one transaction, by the database owner.

-- The names set_app_secret() / get_app_secret() and app_secrets accept.
create function public.app_secret_name_valid(name text)
returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
    select coalesce(name in ('twilio_account_sid', 'twilio_auth_token', 'sendgrid_api_key', 'smtp_url'),
                    false)
$$;
revoke all on function public.app_secret_name_valid(text) from public, anon;
grant execute on function public.app_secret_name_valid(text) to authenticated, service_role;

alter table public.app_secrets drop constraint app_secrets_name_valid;
alter table public.app_secrets add constraint app_secrets_name_valid
    check (public.app_secret_name_valid(name));

alter table public.app_settings
    add column smtp_url text
        constraint app_settings_smtp_url_masked check (smtp_url ~ '^\*{4}.{0,4}$'),
    add column email_provider text
        constraint app_settings_email_provider_valid check (email_provider in ('smtp', 'sendgrid')),
    add column email_from text
        constraint app_settings_email_from_valid
        check (length(email_from) <= 320 and email_from ~ '^[^[:space:][:cntrl:]<>@",;]+@[^[:space:][:cntrl:]<>@",;]+$'),
    add column sendgrid_api_base text
        constraint app_settings_sendgrid_api_base_valid
        check (length(sendgrid_api_base) <= 500 and sendgrid_api_base ~ '^https?://[^[:space:][:cntrl:]]+$'),
    add column twilio_from text
        constraint app_settings_twilio_from_valid
        check (length(twilio_from) <= 64 and twilio_from ~ '^[^[:space:][:cntrl:]]+$'),
    add column twilio_api_base text
        constraint app_settings_twilio_api_base_valid
        check (length(twilio_api_base) <= 500 and twilio_api_base ~ '^https?://[^[:space:][:cntrl:]]+$');
comment on column public.app_settings.smtp_url is
    'Masked ("****" + last 4). Set with public.set_app_secret(''smtp_url'', value); wins over SMTP_URL.';
comment on column public.app_settings.email_provider is 'smtp | sendgrid; wins over EMAIL_PROVIDER (NULL: the environment).';
comment on column public.app_settings.email_from is 'Sender address; wins over EMAIL_FROM (NULL: the environment).';
comment on column public.app_settings.sendgrid_api_base is 'Wins over SENDGRID_API_BASE (NULL: the environment).';
comment on column public.app_settings.twilio_from is 'SMS sender; wins over TWILIO_FROM (NULL: the environment).';
comment on column public.app_settings.twilio_api_base is 'Wins over TWILIO_API_BASE (NULL: the environment).';

-- Admins update the plain ones (RLS of 017: app_admin only); smtp_url only
-- through set_app_secret().
grant update (email_provider, email_from, sendgrid_api_base, twilio_from, twilio_api_base)
    on public.app_settings to authenticated;

-- 009's set_app_secret() with smtp_url among the names (same contract).
create or replace function public.set_app_secret(name text, value text)
returns text
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_mask text;
    v_cipher bytea;
begin
    if not (auth.role() = 'service_role' or public.get_user_role() = 'admin') then
        raise exception 'only admins may change application secrets' using errcode = '42501';
    end if;
    if not public.app_secret_name_valid(set_app_secret.name) then
        raise exception 'unknown application secret %',
            pg_catalog.quote_literal(pg_catalog.left(set_app_secret.name, 80))
            using errcode = '22023';
    end if;

    if set_app_secret.value is null or set_app_secret.value = '' then
        delete from public.app_secrets s where s.name = set_app_secret.name;
        v_mask := null;
    else
        if pg_catalog.octet_length(set_app_secret.value) > 4096 then
            raise exception 'secret is longer than 4096 bytes' using errcode = '22023';
        end if;
        v_cipher := public.campaignd_encrypt(set_app_secret.value);
        v_mask := public.mask_secret(set_app_secret.value);
        insert into public.app_secrets as s (name, value_encrypted, updated_by)
        values (set_app_secret.name, v_cipher, auth.uid())
        on conflict on constraint app_secrets_pkey
        do update set value_encrypted = excluded.value_encrypted, updated_by = excluded.updated_by;
    end if;

    update public.app_settings st
    set twilio_account_sid = case when set_app_secret.name = 'twilio_account_sid'
                                  then v_mask else st.twilio_account_sid end,
        twilio_auth_token = case when set_app_secret.name = 'twilio_auth_token'
                                 then v_mask else st.twilio_auth_token end,
        sendgrid_api_key = case when set_app_secret.name = 'sendgrid_api_key'
                                then v_mask else st.sendgrid_api_key end,
        smtp_url = case when set_app_secret.name = 'smtp_url' then v_mask else st.smtp_url end;
    return v_mask;
end
$$;

-- 009's get_app_secret() with smtp_url among the names (same contract).
create or replace function public.get_app_secret(name text)
returns text
language plpgsql stable
security definer
set search_path = ''
as $$
declare
    v_key text := public.campaignd_encryption_key();  -- 22023 first when there is no key
    v_cipher bytea;
begin
    if not public.app_secret_name_valid(get_app_secret.name) then
        raise exception 'unknown application secret %',
            pg_catalog.quote_literal(pg_catalog.left(get_app_secret.name, 80))
            using errcode = '22023';
    end if;
    select s.value_encrypted into v_cipher from public.app_secrets s where s.name = get_app_secret.name;
    if v_cipher is null then
        return null;
    end if;
    return public.campaignd_decrypt(v_cipher);
end
$$;

-- The provider settings an admin stored, in clear, for the server (one
-- round trip per campaign run or webhook): service_role only. Columns are
-- NULL where the admin set nothing. Needs the encryption key only when a
-- secret is stored (22023 otherwise, like get_app_secret()).
create function public.provider_settings()
returns table (
    email_provider text,
    smtp_url text,
    email_from text,
    sendgrid_api_key text,
    sendgrid_api_base text,
    twilio_account_sid text,
    twilio_auth_token text,
    twilio_from text,
    twilio_api_base text)
language sql stable
security definer
set search_path = ''
as $$
    select a.email_provider,
           case when exists (select 1 from public.app_secrets s where s.name = 'smtp_url')
                then public.get_app_secret('smtp_url') end,
           a.email_from,
           case when exists (select 1 from public.app_secrets s where s.name = 'sendgrid_api_key')
                then public.get_app_secret('sendgrid_api_key') end,
           a.sendgrid_api_base,
           case when exists (select 1 from public.app_secrets s where s.name = 'twilio_account_sid')
                then public.get_app_secret('twilio_account_sid') end,
           case when exists (select 1 from public.app_secrets s where s.name = 'twilio_auth_token')
                then public.get_app_secret('twilio_auth_token') end,
           a.twilio_from,
           a.twilio_api_base
    from public.app_settings a
    limit 1
$$;
revoke all on function public.provider_settings() from public, anon, authenticated;
grant execute on function public.provider_settings() to service_role;
