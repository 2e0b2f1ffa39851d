-- 006_consent.sql: SMS consent, e-mail subscriptions (TCPA / CAN-SPAM / GDPR) and
-- the contacts that campaigns send to.
--
-- public.sms_consent: one row per phone number (E.164), organisation-wide: whether
-- the number may receive SMS, since when, from what source, and any opt-out.
-- public.email_subscriptions: one row per e-mail address (stored lower-cased), the
-- same for e-mail.
-- public.contacts (SEED-NOTES item 9): a user's recipients: e-mail and/or E.164
-- phone, names, free attributes, source, soft delete, unique per owner by e-mail
-- and by phone. Each contact links to the consent rows of its phone and e-mail
-- (sms_consent_id, email_subscription_id); the links are derived by triggers from
-- the phone / e-mail on both sides, so they cannot point at someone else's consent.
--
-- E-mail addresses are normalised to lower(btrim()) by public.normalize_email() and
-- CHECKed lower-case, so equality and unique indexes are case-insensitive without
-- citext (docs/schema.md explains the choice).
--
-- Access (RLS, see docs/schema.md): consent is by role: admins and users read,
-- insert and update; only admins delete (consent records are compliance evidence);
-- viewers read; anon nothing. Contacts: owners read and write their rows; admins
-- read and manage all; viewers have no access (personal data); anon nothing.
-- service_role has all on every table.
-- Applied once, inside one transaction, by the database owner.

-- ---------------------------------------------------------------------------
-- Shared trigger: lower-case and trim an e-mail column
-- ---------------------------------------------------------------------------

-- BEFORE INSERT/UPDATE row trigger; TG_ARGV[0] names a text column holding an
-- e-mail address, which is replaced by lower(btrim(value)). NULL stays NULL.
create or replace function public.normalize_email()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
    v_value text;
begin
    if tg_nargs <> 1 then
        raise exception 'public.normalize_email() needs the column name as its one argument';
    end if;
    v_value := pg_catalog.to_jsonb(new) ->> tg_argv[0];
    if v_value is not null then
        new := pg_catalog.jsonb_populate_record(
            new, pg_catalog.jsonb_build_object(tg_argv[0], pg_catalog.lower(pg_catalog.btrim(v_value))));
    end if;
    return new;
end
$$;

revoke all on function public.normalize_email() from public, anon, authenticated;

-- ---------------------------------------------------------------------------
-- sms_consent
-- ---------------------------------------------------------------------------

create table public.sms_consent (
    id uuid primary key default gen_random_uuid(),
    phone_number varchar(20) not null
        constraint sms_consent_phone_e164 check (phone_number ~ '^\+[1-9][0-9]{1,14}$'),
    consent_given boolean not null default false,
    consent_source varchar(50)
        constraint sms_consent_source_valid check (consent_source in ('web_form', 'api', 'manual', 'import')),
    consented_at timestamptz,
    opt_out_at timestamptz,
    opt_out_reason text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
comment on table public.sms_consent is
    'SMS consent per E.164 phone number (organisation-wide). Admins/users write, only admins delete; viewers read.';

-- The spec's UNIQUE(phone_number) and idx_sms_consent_phone are one index.
create unique index idx_sms_consent_phone on public.sms_consent (phone_number);

-- BEFORE INSERT/UPDATE: stamps consented_at when consent is given (unless the
-- writer supplied a new time) and opt_out_at when it is withdrawn.
create or replace function public.sms_consent_stamp()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if new.consent_given then
        if tg_op = 'INSERT' then
            new.consented_at := coalesce(new.consented_at, pg_catalog.now());
        elsif not old.consent_given and new.consented_at is not distinct from old.consented_at then
            new.consented_at := pg_catalog.now();
        end if;
    elsif tg_op = 'UPDATE' and old.consent_given
          and new.opt_out_at is not distinct from old.opt_out_at then
        new.opt_out_at := pg_catalog.now();
    end if;
    return new;
end
$$;

revoke all on function public.sms_consent_stamp() from public, anon, authenticated;

create trigger consent_stamp before insert or update on public.sms_consent
    for each row execute function public.sms_consent_stamp();
create trigger set_updated_at before update on public.sms_consent
    for each row execute function public.set_updated_at();
create trigger audit after insert or update or delete on public.sms_consent
    for each row execute function public.audit_trigger();

alter table public.sms_consent enable row level security;

revoke all on public.sms_consent from public, anon, authenticated;
grant select, insert, update, delete on public.sms_consent to authenticated;
grant all on public.sms_consent to service_role;

create policy sms_consent_select on public.sms_consent
    for select to authenticated
    using ((select public.get_user_role()) in ('admin', 'user', 'viewer'));
create policy sms_consent_insert on public.sms_consent
    for insert to authenticated
    with check ((select public.get_user_role()) in ('admin', 'user'));
create policy sms_consent_update on public.sms_consent
    for update to authenticated
    using ((select public.get_user_role()) in ('admin', 'user'))
    with check ((select public.get_user_role()) in ('admin', 'user'));
create policy sms_consent_delete_admin on public.sms_consent
    for delete to authenticated
    using ((select public.get_user_role()) = 'admin');

-- ---------------------------------------------------------------------------
-- email_subscriptions
-- ---------------------------------------------------------------------------

create table public.email_subscriptions (
    id uuid primary key default gen_random_uuid(),
    email varchar(255) not null
        constraint email_subscriptions_email_valid
        check (email = lower(email) and email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    subscribed boolean not null default true,
    subscription_types jsonb not null default '["marketing", "newsletter"]'::jsonb
        constraint email_subscriptions_types_array check (jsonb_typeof(subscription_types) = 'array'),
    subscribed_at timestamptz,
    unsubscribed_at timestamptz,
    unsubscribe_reason text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
comment on table public.email_subscriptions is
    'E-mail subscription state per address (stored lower-case, organisation-wide). Admins/users write, only admins delete; viewers read.';

-- The spec's UNIQUE(email) and idx_email_subscriptions_email are one index; the
-- column is lower-case by CHECK, so it is unique case-insensitively, and
-- INSERT ... ON CONFLICT (email) (PostgREST upsert on_conflict=email) can use it.
create unique index idx_email_subscriptions_email on public.email_subscriptions (email);

-- BEFORE INSERT/UPDATE: stamps subscribed_at / unsubscribed_at like sms_consent_stamp.
create or replace function public.email_subscriptions_stamp()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if new.subscribed then
        if tg_op = 'INSERT' then
            new.subscribed_at := coalesce(new.subscribed_at, pg_catalog.now());
        elsif not old.subscribed and new.subscribed_at is not distinct from old.subscribed_at then
            new.subscribed_at := pg_catalog.now();
        end if;
    elsif tg_op = 'UPDATE' and old.subscribed
          and new.unsubscribed_at is not distinct from old.unsubscribed_at then
        new.unsubscribed_at := pg_catalog.now();
    end if;
    return new;
end
$$;

revoke all on function public.email_subscriptions_stamp() from public, anon, authenticated;

create trigger consent_stamp before insert or update on public.email_subscriptions
    for each row execute function public.email_subscriptions_stamp();
create trigger normalize_email before insert or update of email on public.email_subscriptions
    for each row execute function public.normalize_email('email');
create trigger set_updated_at before update on public.email_subscriptions
    for each row execute function public.set_updated_at();
create trigger audit after insert or update or delete on public.email_subscriptions
    for each row execute function public.audit_trigger();

alter table public.email_subscriptions enable row level security;

revoke all on public.email_subscriptions from public, anon, authenticated;
grant select, insert, update, delete on public.email_subscriptions to authenticated;
grant all on public.email_subscriptions to service_role;

create policy email_subscriptions_select on public.email_subscriptions
    for select to authenticated
    using ((select public.get_user_role()) in ('admin', 'user', 'viewer'));
create policy email_subscriptions_insert on public.email_subscriptions
    for insert to authenticated
    with check ((select public.get_user_role()) in ('admin', 'user'));
create policy email_subscriptions_update on public.email_subscriptions
    for update to authenticated
    using ((select public.get_user_role()) in ('admin', 'user'))
    with check ((select public.get_user_role()) in ('admin', 'user'));
create policy email_subscriptions_delete_admin on public.email_subscriptions
    for delete to authenticated
    using ((select public.get_user_role()) = 'admin');

-- ---------------------------------------------------------------------------
-- contacts
-- ---------------------------------------------------------------------------

create table public.contacts (
    id uuid primary key default gen_random_uuid(),
    user_id uuid default auth.uid() references auth.users (id) on delete set null,
    email varchar(255)
        constraint contacts_email_valid
        check (email = lower(email) and email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    phone varchar(16)
        constraint contacts_phone_e164 check (phone ~ '^\+[1-9][0-9]{1,14}$'),
    first_name varchar(100),
    last_name varchar(100),
    attributes jsonb not null default '{}'::jsonb
        constraint contacts_attributes_object check (jsonb_typeof(attributes) = 'object'),
    source varchar(50) not null default 'manual'
        constraint contacts_source_valid check (source in ('manual', 'import', 'api', 'web_form')),
    -- Derived from phone / email by triggers (public.contacts_link_consent and the
    -- consent tables' public.*_link_contacts); whatever a writer puts here is replaced.
    sms_consent_id uuid references public.sms_consent (id) on delete set null,
    email_subscription_id uuid references public.email_subscriptions (id) on delete set null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    deleted_at timestamptz,
    constraint contacts_reachable check (email is not null or phone is not null)
);
comment on table public.contacts is
    'Recipients owned by a user (e-mail lower-case, phone E.164). Soft delete: set deleted_at. Owner writes; admins manage; viewers: no access.';
comment on column public.contacts.sms_consent_id is 'The sms_consent row of this phone (maintained by triggers).';
comment on column public.contacts.email_subscription_id is
    'The email_subscriptions row of this e-mail (maintained by triggers).';

-- Unique per owner by e-mail (lower-case by CHECK, so case-insensitive) and by
-- phone; plain column indexes so ON CONFLICT (user_id, email) works for imports.
-- Soft-deleted contacts keep their slot: re-importing one revives it.
create unique index idx_contacts_user_email on public.contacts (user_id, email);
create unique index idx_contacts_user_phone on public.contacts (user_id, phone);
create index idx_contacts_email on public.contacts (email);
create index idx_contacts_phone on public.contacts (phone);
create index idx_contacts_sms_consent on public.contacts (sms_consent_id);
create index idx_contacts_email_subscription on public.contacts (email_subscription_id);

-- BEFORE INSERT/UPDATE OF email, phone or a link column: sets both consent links
-- from the (normalised) e-mail and phone. SECURITY DEFINER so that the link does
-- not depend on what the writer may read; it reveals only consent row ids, which
-- every signed-in role can read anyway.
create or replace function public.contacts_link_consent()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    new.sms_consent_id := (select c.id from public.sms_consent c where c.phone_number = new.phone);
    new.email_subscription_id := (select s.id from public.email_subscriptions s where s.email = new.email);
    return new;
end
$$;

revoke all on function public.contacts_link_consent() from public, anon, authenticated;

-- Trigger names fire in alphabetical order: normalize_email before sync_consent_links.
create trigger normalize_email before insert or update of email on public.contacts
    for each row execute function public.normalize_email('email');
create trigger set_updated_at before update on public.contacts
    for each row execute function public.set_updated_at();
create trigger sync_consent_links
    before insert or update of email, phone, sms_consent_id, email_subscription_id on public.contacts
    for each row execute function public.contacts_link_consent();
create trigger audit after insert or update or delete on public.contacts
    for each row execute function public.audit_trigger();

-- AFTER INSERT/UPDATE OF phone_number on sms_consent: (re)links the contacts of
-- every owner whose phone matches, and unlinks those of a changed number.
-- SECURITY DEFINER: a consent row serves contacts of all owners.
create or replace function public.sms_consent_link_contacts()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    if tg_op = 'UPDATE' and new.phone_number is distinct from old.phone_number then
        update public.contacts set sms_consent_id = null where sms_consent_id = new.id;
    end if;
    update public.contacts set sms_consent_id = new.id
    where phone = new.phone_number and sms_consent_id is distinct from new.id;
    return null;
end
$$;

-- The same for email_subscriptions and contacts.email.
create or replace function public.email_subscriptions_link_contacts()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    if tg_op = 'UPDATE' and new.email is distinct from old.email then
        update public.contacts set email_subscription_id = null where email_subscription_id = new.id;
    end if;
    update public.contacts set email_subscription_id = new.id
    where email = new.email and email_subscription_id is distinct from new.id;
    return null;
end
$$;

revoke all on function public.sms_consent_link_contacts() from public, anon, authenticated;
revoke all on function public.email_subscriptions_link_contacts() from public, anon, authenticated;

create trigger link_contacts after insert or update of phone_number on public.sms_consent
    for each row execute function public.sms_consent_link_contacts();
create trigger link_contacts after insert or update of email on public.email_subscriptions
    for each row execute function public.email_subscriptions_link_contacts();

alter table public.contacts enable row level security;

revoke all on public.contacts from public, anon, authenticated;
grant select, insert, update, delete on public.contacts to authenticated;
grant all on public.contacts to service_role;

create policy contacts_select_own on public.contacts
    for select to authenticated
    using (user_id = (select auth.uid()));
create policy contacts_select_admin on public.contacts
    for select to authenticated
    using ((select public.get_user_role()) = 'admin');

create policy contacts_insert_own on public.contacts
    for insert to authenticated
    with check (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user');
create policy contacts_update_own on public.contacts
    for update to authenticated
    using (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user')
    with check (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user');
create policy contacts_delete_own on public.contacts
    for delete to authenticated
    using (user_id = (select auth.uid()) and (select public.get_user_role()) = 'user');

create policy contacts_insert_admin on public.contacts
    for insert to authenticated
    with check ((select public.get_user_role()) = 'admin');
create policy contacts_update_admin on public.contacts
    for update to authenticated
    using ((select public.get_user_role()) = 'admin')
    with check ((select public.get_user_role()) = 'admin');
create policy contacts_delete_admin on public.contacts
    for delete to authenticated
    using ((select public.get_user_role()) = 'admin');
