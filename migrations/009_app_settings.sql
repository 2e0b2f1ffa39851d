-- 009_app_settings.sql: the application settings (exactly one row) and its secrets.
--
-- public.app_settings: time zone, date format, monthly limits, retention, audit
-- switch, and the MASKED forms of the integration secrets (twilio_account_sid,
-- twilio_auth_token, sendgrid_api_key: "****" + last 4 characters). Exactly one
-- row: created here, a unique index on a constant refuses a second, triggers
-- refuse DELETE and TRUNCATE.
-- public.app_secrets: the secrets themselves, encrypted with pgcrypto under the
-- server's key (GUC campaignd.encryption_key, set by the server per transaction
-- from CAMPAIGND_ENCRYPTION_KEY; never stored in the database). No API role can
-- read it. Write with public.set_app_secret(name, value) (admins, service_role);
-- the server reads clear values with public.get_app_secret(name) (service_role).
-- public.app_settings_public: the non-secret settings, readable by every
-- signed-in user (a security_invoker view over a SECURITY DEFINER function that
-- returns a fixed list of non-secret columns; docs/schema.md explains why).
--
-- Access (RLS): admins read and update app_settings (not the masked columns,
-- which only set_app_secret() writes); nobody inserts or deletes through the API;
-- users and viewers read app_settings_public only; anon nothing; service_role all.
-- Applied once, inside one transaction, by the database owner.

create table public.app_settings (
    id uuid primary key default gen_random_uuid(),

    -- Integration credentials: MASKED display values only (set_app_secret()).
    twilio_account_sid text
        constraint app_settings_twilio_account_sid_masked check (twilio_account_sid ~ '^\*{4}.{0,4}$'),
    twilio_auth_token text
        constraint app_settings_twilio_auth_token_masked check (twilio_auth_token ~ '^\*{4}.{0,4}$'),
    sendgrid_api_key text
        constraint app_settings_sendgrid_api_key_masked check (sendgrid_api_key ~ '^\*{4}.{0,4}$'),

    -- Settings
    timezone varchar(50) not null default 'America/New_York',
    date_format varchar(20) not null default 'MM/DD/YYYY'
        constraint app_settings_date_format_valid
        check (date_format in ('MM/DD/YYYY', 'DD/MM/YYYY', 'YYYY-MM-DD', 'DD.MM.YYYY')),

    -- Limits
    monthly_sms_limit integer not null default 10000
        constraint app_settings_monthly_sms_limit_not_negative check (monthly_sms_limit >= 0),
    monthly_email_limit integer not null default 50000
        constraint app_settings_monthly_email_limit_not_negative check (monthly_email_limit >= 0),

    -- Compliance
    data_retention_days integer not null default 30
        constraint app_settings_data_retention_days_range check (data_retention_days between 1 and 36500),
    enable_audit_log boolean not null default true,

    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
comment on table public.app_settings is
    'Application settings: exactly one row. Admins read and update; everyone signed in reads app_settings_public.';
comment on column public.app_settings.twilio_auth_token is
    'Masked ("****" + last 4). Set with public.set_app_secret(''twilio_auth_token'', value).';

-- At most one row: every row has the same key (true).
create unique index app_settings_one_row on public.app_settings ((true));

insert into public.app_settings default values;

-- BEFORE INSERT/UPDATE OF timezone: the time zone must be one PostgreSQL knows.
create or replace function public.app_settings_check_timezone()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if not exists (select 1 from pg_catalog.pg_timezone_names z where z.name = new.timezone) then
        raise exception 'unknown time zone %', pg_catalog.quote_literal(pg_catalog.left(new.timezone, 80))
            using errcode = '22023', hint = 'use an IANA name such as America/New_York or UTC';
    end if;
    return new;
end
$$;

-- BEFORE DELETE (row) and BEFORE TRUNCATE (statement): the one row stays.
create or replace function public.app_settings_keep_row()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    raise exception 'app_settings must keep exactly one row; update it instead'
        using errcode = '23514';
end
$$;

revoke all on function public.app_settings_check_timezone() from public, anon, authenticated;
revoke all on function public.app_settings_keep_row() from public, anon, authenticated;

create trigger check_timezone before insert or update of timezone on public.app_settings
    for each row execute function public.app_settings_check_timezone();
create trigger keep_row before delete on public.app_settings
    for each row execute function public.app_settings_keep_row();
create trigger keep_row_truncate before truncate on public.app_settings
    for each statement execute function public.app_settings_keep_row();
create trigger set_updated_at before update on public.app_settings
    for each row execute function public.set_updated_at();
create trigger audit after insert or update or delete on public.app_settings
    for each row execute function public.audit_trigger();

alter table public.app_settings enable row level security;

revoke all on public.app_settings from public, anon, authenticated;
grant select on public.app_settings to authenticated;
grant update (timezone, date_format, monthly_sms_limit, monthly_email_limit, data_retention_days,
              enable_audit_log)
    on public.app_settings to authenticated;
grant all on public.app_settings to service_role;

create policy app_settings_select_admin on public.app_settings
    for select to authenticated
    using ((select public.get_user_role()) = 'admin');
create policy app_settings_update_admin on public.app_settings
    for update to authenticated
    using ((select public.get_user_role()) = 'admin')
    with check ((select public.get_user_role()) = 'admin');

-- ---------------------------------------------------------------------------
-- app_secrets: the encrypted integration secrets, no API access at all
-- ---------------------------------------------------------------------------

create table public.app_secrets (
    name text primary key
        constraint app_secrets_name_valid
        check (name in ('twilio_account_sid', 'twilio_auth_token', 'sendgrid_api_key')),
    value_encrypted bytea not null,             -- pgp_sym_encrypt(value, key)
    updated_by uuid default auth.uid() references auth.users (id) on delete set null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
comment on table public.app_secrets is
    'Encrypted integration secrets. No policies: only service_role and the definer functions read or write it.';

create trigger set_updated_at before update on public.app_secrets
    for each row execute function public.set_updated_at();
create trigger audit after insert or update or delete on public.app_secrets
    for each row execute function public.audit_trigger();

alter table public.app_secrets enable row level security;
revoke all on public.app_secrets from public, anon, authenticated;
grant all on public.app_secrets to service_role;

-- Encrypts and stores an integration secret (twilio_account_sid,
-- twilio_auth_token or sendgrid_api_key; at most 4096 bytes; NULL or '' removes
-- it), puts its masked form into app_settings and returns that mask. Admins and
-- service_role only (42501 otherwise); an unknown name is 22023; storing needs the
-- encryption key (22023 with the hint "set CAMPAIGND_ENCRYPTION_KEY").
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
    if set_app_secret.name is null
       or set_app_secret.name not in ('twilio_account_sid', 'twilio_auth_token', 'sendgrid_api_key') then
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
                                then v_mask else st.sendgrid_api_key end;
    return v_mask;
end
$$;

-- Returns an integration secret in clear (NULL when not set) for the server's
-- providers: service_role only. Raises 22023 for an unknown name or without the
-- right encryption key.
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
    if get_app_secret.name is null
       or get_app_secret.name not in ('twilio_account_sid', 'twilio_auth_token', 'sendgrid_api_key') then
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

revoke all on function public.set_app_secret(text, text) from public, anon;
grant execute on function public.set_app_secret(text, text) to authenticated, service_role;
revoke all on function public.get_app_secret(text) from public, anon, authenticated;
grant execute on function public.get_app_secret(text) to service_role;

-- ---------------------------------------------------------------------------
-- app_settings_public: the non-secret settings for every signed-in user
-- ---------------------------------------------------------------------------

-- The non-secret settings row, for a signed-in user (any role) or service_role;
-- no row for anyone else. SECURITY DEFINER with a fixed column list: app_settings
-- itself stays admin-only, and a column added to it later is not exposed here
-- unless this function is changed.
create or replace function public.app_settings_public_row()
returns table (
    timezone text,
    date_format text,
    monthly_sms_limit integer,
    monthly_email_limit integer,
    data_retention_days integer,
    enable_audit_log boolean,
    updated_at timestamptz)
language sql stable
security definer
set search_path = ''
as $$
    select s.timezone::text, s.date_format::text, s.monthly_sms_limit, s.monthly_email_limit,
           s.data_retention_days, s.enable_audit_log, s.updated_at
    from public.app_settings s
    where public.get_user_role() is not null or auth.role() = 'service_role'
$$;

revoke all on function public.app_settings_public_row() from public, anon;
grant execute on function public.app_settings_public_row() to authenticated, service_role;

create view public.app_settings_public with (security_invoker = true) as
    select r.timezone, r.date_format, r.monthly_sms_limit, r.monthly_email_limit,
           r.data_retention_days, r.enable_audit_log, r.updated_at
    from public.app_settings_public_row() as r;
comment on view public.app_settings_public is
    'Non-secret application settings, readable by every signed-in user.';

revoke all on public.app_settings_public from public, anon, authenticated;
grant select on public.app_settings_public to authenticated, service_role;
