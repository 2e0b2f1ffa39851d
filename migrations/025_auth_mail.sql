-- 025_auth_mail.sql: Auth's mailed one-time tokens, mail rate limits and the
-- mail templates an admin can change (issue 14).
--
-- auth.email_tokens: one row per live link/code. The link token and the
-- 6-digit code are never stored: token_hash is the SHA-256 of the link token,
-- code_hash an HMAC of the code under the server's secret (a 6-digit space is
-- too small for a plain hash). Bound to a purpose; one live token per user and
-- purpose (a new mail voids the old one); deleted when used, so single use is
-- the row's existence; expires_at bounds its life; attempts counts wrong codes.
-- auth.mail_sends: when Auth mailed whom, from which client address, for the
-- per-address and per-IP limits.
-- public.auth_mail_templates: subject, HTML and text of each mail, with
-- GoTrue's placeholders ({{ .ConfirmationURL }}, {{ .Token }}, ...). Admins
-- read and change them through /rest/v1; no API role inserts or deletes.
--
-- Functions (service_role only; the server runs Auth as service_role):
-- auth.mail_budget, auth.issue_email_token, auth.prepare_email_token,
-- auth.verify_email_token.
-- Applied once, inside one transaction, by the database owner.

create table auth.email_tokens (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references auth.users (id) on delete cascade,
    purpose text not null
        constraint email_tokens_purpose_valid check (purpose in (
            'signup', 'invite', 'magiclink', 'recovery', 'email_change_current',
            'email_change_new')),
    email text not null,
    token_hash text not null
        constraint email_tokens_token_hash_hex check (token_hash ~ '^[0-9a-f]{64}$'),
    code_hash text not null
        constraint email_tokens_code_hash_set check (pg_catalog.length(code_hash) between 16 and 128),
    redirect_to text not null default '',
    new_email text,
    attempts integer not null default 0 constraint email_tokens_attempts_range check (attempts >= 0),
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    constraint email_tokens_token_hash_unique unique (token_hash),
    constraint email_tokens_user_purpose_unique unique (user_id, purpose),
    constraint email_tokens_new_email_for_change check ((purpose like 'email_change%') = (new_email is not null))
);
create index email_tokens_email_idx on auth.email_tokens (pg_catalog.lower(email));
comment on table auth.email_tokens is
    'Mailed one-time links and codes: hashed, single-use (deleted when used), expiring, bound to a purpose.';

create table auth.mail_sends (
    id bigserial primary key,
    email text not null,
    ip text not null default '',
    sent_at timestamptz not null default now()
);
create index mail_sends_email_idx on auth.mail_sends (pg_catalog.lower(email), sent_at desc);
create index mail_sends_ip_idx on auth.mail_sends (ip, sent_at desc);

alter table auth.email_tokens enable row level security;
alter table auth.mail_sends enable row level security;
revoke all on auth.email_tokens, auth.mail_sends from public, anon, authenticated;
grant all on auth.email_tokens, auth.mail_sends to service_role;
grant usage on sequence auth.mail_sends_id_seq to service_role;

create table public.auth_mail_templates (
    kind text primary key
        constraint auth_mail_templates_kind_valid check (kind in (
            'confirmation', 'invite', 'magic_link', 'recovery', 'email_change')),
    subject text not null
        constraint auth_mail_templates_subject_length check (pg_catalog.length(subject) between 1 and 300)
        constraint auth_mail_templates_subject_one_line check (subject !~ '[\r\n]'),
    content_html text not null
        constraint auth_mail_templates_html_length check (pg_catalog.length(content_html) <= 100000),
    content_text text not null
        constraint auth_mail_templates_text_length check (pg_catalog.length(content_text) between 1 and 100000),
    updated_at timestamptz not null default now()
);
comment on table public.auth_mail_templates is
    'Auth''s mails (GoTrue placeholders: {{ .ConfirmationURL }}, {{ .Token }}, {{ .TokenHash }}, '
    '{{ .SiteURL }}, {{ .Email }}, {{ .NewEmail }}, {{ .RedirectTo }}). Admins read and update.';

insert into public.auth_mail_templates (kind, subject, content_html, content_text) values
('confirmation', 'Confirm your sign-up',
 '<h2>Confirm your sign-up</h2><p><a href="{{ .ConfirmationURL }}">Confirm your e-mail address</a></p><p>Or enter this code: <b>{{ .Token }}</b></p>',
 'Confirm your e-mail address: {{ .ConfirmationURL }}' || E'\n\n' || 'Or enter this code: {{ .Token }}'),
('invite', 'You have been invited',
 '<h2>You have been invited</h2><p>You have been invited to {{ .SiteURL }}.</p><p><a href="{{ .ConfirmationURL }}">Accept the invitation</a></p><p>Or enter this code: <b>{{ .Token }}</b></p>',
 'You have been invited to {{ .SiteURL }}. Accept: {{ .ConfirmationURL }}' || E'\n\n' || 'Or enter this code: {{ .Token }}'),
('magic_link', 'Your sign-in link',
 '<h2>Sign in</h2><p><a href="{{ .ConfirmationURL }}">Sign in</a></p><p>Or enter this code: <b>{{ .Token }}</b></p>',
 'Sign in: {{ .ConfirmationURL }}' || E'\n\n' || 'Or enter this code: {{ .Token }}'),
('recovery', 'Reset your password',
 '<h2>Reset your password</h2><p><a href="{{ .ConfirmationURL }}">Reset your password</a></p><p>Or enter this code: <b>{{ .Token }}</b></p>',
 'Reset your password: {{ .ConfirmationURL }}' || E'\n\n' || 'Or enter this code: {{ .Token }}'),
('email_change', 'Confirm your new e-mail address',
 '<h2>Confirm the change of e-mail address</h2><p>From {{ .Email }} to {{ .NewEmail }}.</p><p><a href="{{ .ConfirmationURL }}">Confirm the change</a></p><p>Or enter this code: <b>{{ .Token }}</b></p>',
 'Confirm the change of e-mail address from {{ .Email }} to {{ .NewEmail }}: {{ .ConfirmationURL }}' || E'\n\n' || 'Or enter this code: {{ .Token }}');

alter table public.auth_mail_templates enable row level security;
revoke all on public.auth_mail_templates from public, anon, authenticated;
grant select on public.auth_mail_templates to authenticated;
grant update (subject, content_html, content_text) on public.auth_mail_templates to authenticated;
grant all on public.auth_mail_templates to service_role;
-- written TO the admins' database role (017_app_roles.sql): app_admin inherits
-- authenticated's column privileges above
create policy auth_mail_templates_select_admin on public.auth_mail_templates
    for select to app_admin using (true);
create policy auth_mail_templates_update_admin on public.auth_mail_templates
    for update to app_admin using (true) with check (true);

create function auth.mail_templates_touch()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    new.updated_at := pg_catalog.now();
    return new;
end
$$;
create trigger auth_mail_templates_touch before update on public.auth_mail_templates
    for each row execute function auth.mail_templates_touch();

-- Whether Auth may mail p_email now, on behalf of client p_ip: 0 (and the
-- send is recorded) or the seconds to wait. At most one mail per address per
-- p_freq seconds, at most p_per_hour mails caused by one address per hour.
-- The answer does not depend on whether p_email is a user's, so a 429 tells an
-- attacker nothing. Serialised per address and per IP.
create function auth.mail_budget(p_email text, p_ip text, p_freq integer, p_per_hour integer)
returns integer
language plpgsql
set search_path = ''
as $$
declare
    addr text := pg_catalog.lower(pg_catalog.btrim(p_email));
    v_ip text := coalesce(p_ip, '');
    wait double precision;
    n integer;
begin
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('campaignd.mail-ip:' || v_ip));
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('campaignd.mail:' || addr));
    select extract(epoch from (max(s.sent_at) + pg_catalog.make_interval(secs => p_freq) - pg_catalog.now()))
      into wait
      from auth.mail_sends s where pg_catalog.lower(s.email) = addr;
    if wait > 0 then
        return pg_catalog.ceil(wait)::integer;
    end if;
    select count(*), extract(epoch from (min(s.sent_at) + interval '1 hour' - pg_catalog.now()))
      into n, wait
      from auth.mail_sends s where s.ip = v_ip and s.sent_at > pg_catalog.now() - interval '1 hour';
    if n >= p_per_hour then
        return greatest(1, pg_catalog.ceil(wait)::integer);
    end if;
    delete from auth.mail_sends s where s.sent_at < pg_catalog.now() - interval '1 day';
    insert into auth.mail_sends (email, ip) values (addr, v_ip);
    return 0;
end
$$;

-- Stores a new token for p_user and p_purpose (voiding the previous one of
-- that purpose) and notes when it was sent on the user, as GoTrue does.
create function auth.issue_email_token(p_user uuid, p_purpose text, p_email text,
                                       p_token_hash text, p_code_hash text, p_ttl integer,
                                       p_redirect text, p_new_email text default null)
returns void
language plpgsql
set search_path = ''
as $$
begin
    delete from auth.email_tokens t where t.user_id = p_user and t.purpose = p_purpose;
    insert into auth.email_tokens (user_id, purpose, email, token_hash, code_hash, redirect_to,
                                   new_email, expires_at)
    values (p_user, p_purpose, p_email, p_token_hash, p_code_hash, coalesce(p_redirect, ''),
            p_new_email, pg_catalog.now() + pg_catalog.make_interval(secs => p_ttl));
    update auth.users u set
        confirmation_sent_at = case when p_purpose = 'signup' then pg_catalog.now() else u.confirmation_sent_at end,
        invited_at = case when p_purpose = 'invite' then pg_catalog.now() else u.invited_at end,
        recovery_sent_at = case when p_purpose in ('recovery', 'magiclink') then pg_catalog.now() else u.recovery_sent_at end,
        email_change_sent_at = case when p_purpose like 'email_change%' then pg_catalog.now() else u.email_change_sent_at end,
        email_change = case when p_purpose like 'email_change%' then p_new_email else u.email_change end
     where u.id = p_user;
end
$$;

-- mail_budget, then (when allowed and p_user is a user) issue_email_token, in
-- one call: no token is stored for a mail that is not sent. Returns the wait.
create function auth.prepare_email_token(p_to text, p_ip text, p_freq integer, p_per_hour integer,
                                         p_user uuid, p_purpose text, p_token_hash text,
                                         p_code_hash text, p_ttl integer, p_redirect text,
                                         p_new_email text default null)
returns integer
language plpgsql
set search_path = ''
as $$
declare
    wait integer := auth.mail_budget(p_to, p_ip, p_freq, p_per_hour);
begin
    if wait = 0 and p_user is not null then
        perform auth.issue_email_token(p_user, p_purpose, p_to, p_token_hash, p_code_hash, p_ttl,
                                       p_redirect, p_new_email);
    end if;
    return wait;
end
$$;

-- Uses a token: by its link token's hash (p_token_hash), or by e-mail address
-- and code (p_email, p_code_hash). Only tokens of the purposes p_purposes
-- count. A matching live token is deleted (single use) and its effect applied:
-- the address is confirmed; for an e-mail change, once both halves (or the
-- only one) are used the new address replaces the old. A wrong code counts an
-- attempt against every live code of that address and purposes; past
-- p_max_attempts they are deleted. Returns one row: status 'ok' (with the
-- user, purpose, redirect and, for a half-done change, 'partial'), or status
-- 'invalid' with nothing else (expired, used, unknown, wrong purpose: the
-- same answer).
create function auth.verify_email_token(p_token_hash text, p_email text, p_code_hash text,
                                        p_purposes text[], p_max_attempts integer)
returns table (status text, user_id uuid, purpose text, email text, redirect_to text)
language plpgsql
set search_path = ''
as $$
declare
    t auth.email_tokens;
    remaining integer;
begin
    if p_token_hash is not null then
        delete from auth.email_tokens x
         where x.token_hash = p_token_hash and x.purpose = any (p_purposes)
        returning * into t;
    else
        -- lock the address's live codes, so parallel guesses count one by one
        perform 1 from auth.email_tokens x
          where pg_catalog.lower(x.email) = pg_catalog.lower(pg_catalog.btrim(p_email))
            and x.purpose = any (p_purposes)
          for update;
        delete from auth.email_tokens x
         where x.id = (select y.id from auth.email_tokens y
                        where pg_catalog.lower(y.email) = pg_catalog.lower(pg_catalog.btrim(p_email))
                          and y.purpose = any (p_purposes) and y.code_hash = p_code_hash
                          and y.expires_at > pg_catalog.now()
                        order by y.created_at desc limit 1)
        returning * into t;
        if t.id is null then
            update auth.email_tokens x set attempts = x.attempts + 1
             where pg_catalog.lower(x.email) = pg_catalog.lower(pg_catalog.btrim(p_email))
               and x.purpose = any (p_purposes);
            delete from auth.email_tokens x
             where pg_catalog.lower(x.email) = pg_catalog.lower(pg_catalog.btrim(p_email))
               and x.purpose = any (p_purposes) and x.attempts >= p_max_attempts;
        end if;
    end if;
    if t.id is null or t.expires_at <= pg_catalog.now() or t.attempts >= p_max_attempts then
        return query select 'invalid'::text, null::uuid, null::text, null::text, null::text;
        return;
    end if;
    if t.purpose like 'email_change%' then
        select count(*) into remaining from auth.email_tokens x
         where x.user_id = t.user_id and x.purpose like 'email_change%'
           and x.expires_at > pg_catalog.now();
        if remaining > 0 then
            return query select 'partial'::text, t.user_id, t.purpose, t.email, t.redirect_to;
            return;
        end if;
        update auth.users u set email = pg_catalog.lower(pg_catalog.btrim(t.new_email)),
               email_change = '', email_change_sent_at = null,
               email_confirmed_at = coalesce(u.email_confirmed_at, pg_catalog.now()),
               updated_at = pg_catalog.now()
         where u.id = t.user_id;
        update auth.identities i
           set identity_data = i.identity_data
                   || pg_catalog.jsonb_build_object('email', pg_catalog.lower(pg_catalog.btrim(t.new_email)),
                                                    'email_verified', true),
               updated_at = pg_catalog.now()
         where i.user_id = t.user_id and i.provider = 'email';
    else
        update auth.users u
           set email_confirmed_at = coalesce(u.email_confirmed_at, pg_catalog.now()),
               updated_at = pg_catalog.now()
         where u.id = t.user_id;
        update auth.identities i
           set identity_data = i.identity_data || '{"email_verified": true}'::jsonb
         where i.user_id = t.user_id and i.provider = 'email';
    end if;
    return query select 'ok'::text, t.user_id, t.purpose, t.email, t.redirect_to;
end
$$;

revoke all on function auth.mail_budget(text, text, integer, integer),
    auth.issue_email_token(uuid, text, text, text, text, integer, text, text),
    auth.verify_email_token(text, text, text, text[], integer),
    auth.prepare_email_token(text, text, integer, integer, uuid, text, text, text, integer, text, text),
    auth.mail_templates_touch()
    from public, anon, authenticated;
grant execute on function auth.mail_budget(text, text, integer, integer),
    auth.issue_email_token(uuid, text, text, text, text, integer, text, text),
    auth.verify_email_token(text, text, text, text[], integer),
    auth.prepare_email_token(text, text, integer, integer, uuid, text, text, text, integer, text, text)
    to service_role;
