-- 018_domain_rules.sql: the rules that only /api knew, enforced where the data
-- lives (issue 9 §2), so /rest/v1, /api, realtime, jobs and psql as a member role
-- obey the same ones. docs/schema.md describes each rule.
--
--   * campaigns: the state machine of docs/api.md for the API roles (sending,
--     sent, active, completed and failed are the delivery work's, service_role);
--     scheduled needs a future scheduled_date; type is fixed after draft;
--     created_at, updated_at and deleted_at are not writable by API roles: soft
--     delete and restore go through public.soft_delete_campaign() and
--     public.restore_campaign(), which are audited.
--   * reports are generated: API roles cannot insert or update them (the server
--     stores what POST /api/reports computed); owners and admins may delete.
--   * consent is evidence: an opt-out cannot be reversed by an API role's UPDATE;
--     re-consent goes through public.record_sms_consent() /
--     public.record_email_consent() (admins recording evidence, or the server for
--     the recipient's own action) and is audited; users read and write consent
--     only for numbers and addresses of contacts they own, admins all, viewers
--     none (they get counts through reports and analytics).
--   * templates, contacts and data sources are soft-deleted: a hard DELETE by a
--     non-admin is refused with 42501 and a hint; deleting a data source with
--     imported data is refused (imported_data is ON DELETE RESTRICT now).
--   * app_settings.enable_audit_log = false stops the audit trail (changes of
--     app_settings itself are always recorded).
--   * analytics_data is unique per (user, metric, day, dimensions); upserts use it.
--   * composite indexes for the dashboard's lists.
--   * sign-in events (login, logout, failed sign-in) and report exports are
--     written to public.audit_logs; auth.audit_log_entries is purged with the rest.
-- Applied once, inside one transaction, by the database owner.

-- ---------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------

-- True when the current statement runs as an API role (a request of anon or a
-- signed-in user, or psql as one of those roles); false for service_role (the
-- server's own work), the database owner and SECURITY DEFINER functions.
create or replace function public.is_api_role()
returns boolean
language sql stable
set search_path = ''
as $$
    select current_user in ('anon', 'authenticated', 'app_admin', 'app_user', 'app_viewer')
$$;

-- app_settings.enable_audit_log (true when the row is missing).
create or replace function public.audit_enabled()
returns boolean
language sql stable
security definer
set search_path = ''
as $$
    select coalesce((select s.enable_audit_log from public.app_settings s limit 1), true)
$$;

grant execute on function public.is_api_role(), public.audit_enabled()
    to anon, authenticated, service_role;

-- Writes one public.audit_logs row for an event that is not a row change (a
-- sign-in, an export, a soft delete, recorded consent), with the request's
-- user, address and user agent as public.audit_trigger() takes them. Honours
-- enable_audit_log unless p_always (consent evidence is always kept). Not
-- callable by the API roles: the definer functions below and service_role use it.
create or replace function public.record_audit(p_action text, p_resource_type text,
                                               p_resource_id uuid, p_status text,
                                               p_metadata jsonb, p_user_id uuid default null,
                                               p_always boolean default false)
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_headers jsonb;
    v_ip inet;
    v_ua text;
    v_user uuid := coalesce(p_user_id, auth.uid());
begin
    if not p_always and not public.audit_enabled() then
        return;
    end if;
    begin
        v_headers := nullif(pg_catalog.current_setting('request.headers', true), '')::jsonb;
        if pg_catalog.jsonb_typeof(v_headers) <> 'object' then
            v_headers := null;
        end if;
    exception when others then
        v_headers := null;
    end;
    if v_headers is not null then
        v_ua := pg_catalog.left(v_headers ->> 'user-agent', 1024);
        begin
            v_ip := (v_headers ->> 'x-real-ip')::inet;
        exception when others then
            v_ip := null;
        end;
    end if;
    if v_user is not null and not exists (select 1 from auth.users u where u.id = v_user) then
        v_user := null;
    end if;
    insert into public.audit_logs
        (user_id, action, resource_type, resource_id, ip_address, user_agent, status, metadata)
    values
        (v_user, p_action, p_resource_type, p_resource_id, v_ip, v_ua, coalesce(p_status, 'success'),
         public.audit_redact(coalesce(p_metadata, '{}'::jsonb))
             || pg_catalog.jsonb_build_object('role', auth.role()));
end
$$;

revoke all on function public.record_audit(text, text, uuid, text, jsonb, uuid, boolean)
    from public, anon, authenticated;
grant execute on function public.record_audit(text, text, uuid, text, jsonb, uuid, boolean) to service_role;

-- ---------------------------------------------------------------------------
-- enable_audit_log: the row trigger honours it
-- ---------------------------------------------------------------------------

create or replace function public.audit_trigger()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_row jsonb;
    v_old jsonb;
    v_new jsonb;
    v_action text;
    v_uid uuid;
    v_user_id uuid;
    v_resource_id uuid;
    v_key jsonb;
    v_headers jsonb;
    v_ip inet;
    v_ua text;
    v_metadata jsonb;
begin
    if tg_level <> 'ROW' then
        raise exception 'public.audit_trigger() must be attached FOR EACH ROW';
    end if;
    -- app_settings.enable_audit_log = false turns the trail off, except for
    -- changes of app_settings itself (so turning it off is on record).
    if tg_table_name <> 'app_settings' and not public.audit_enabled() then
        return null;
    end if;
    if tg_op = 'INSERT' then
        v_action := 'create';
        v_new := pg_catalog.to_jsonb(new);
        v_row := v_new;
    elsif tg_op = 'UPDATE' then
        v_action := 'update';
        v_old := pg_catalog.to_jsonb(old);
        v_new := pg_catalog.to_jsonb(new);
        v_row := v_new;
    elsif tg_op = 'DELETE' then
        v_action := 'delete';
        v_old := pg_catalog.to_jsonb(old);
        v_row := v_old;
    else
        raise exception 'public.audit_trigger() must be a row trigger on INSERT, UPDATE or DELETE';
    end if;

    -- resource_id: the id column when it is a uuid; otherwise the key into metadata.
    if exists (select 1 from pg_catalog.pg_attribute a
               where a.attrelid = tg_relid and a.attname = 'id' and not a.attisdropped
                 and a.atttypid = 'pg_catalog.uuid'::pg_catalog.regtype) then
        v_resource_id := (v_row ->> 'id')::uuid;
    else
        select pg_catalog.jsonb_object_agg(a.attname, v_row -> a.attname::text)
        into v_key
        from pg_catalog.pg_index i
        join pg_catalog.pg_attribute a
          on a.attrelid = i.indrelid and a.attnum = any (i.indkey)
        where i.indrelid = tg_relid and i.indisprimary;
        if v_key is null and v_row ? 'id' then
            v_key := pg_catalog.jsonb_build_object('id', v_row -> 'id');
        end if;
    end if;

    -- Request context; the server always sets request.headers as a JSON object.
    begin
        v_headers := nullif(pg_catalog.current_setting('request.headers', true), '')::jsonb;
        if pg_catalog.jsonb_typeof(v_headers) <> 'object' then
            v_headers := null;
        end if;
    exception when others then
        v_headers := null;
    end;
    if v_headers is not null then
        v_ua := pg_catalog.left(v_headers ->> 'user-agent', 1024);
        if v_headers ->> 'x-real-ip' is not null then
            begin
                v_ip := (v_headers ->> 'x-real-ip')::inet;
            exception when others then
                v_ip := null;
            end;
        end if;
    end if;

    v_uid := auth.uid();
    if v_uid is not null then
        select u.id into v_user_id from auth.users u where u.id = v_uid;
    end if;

    v_metadata := pg_catalog.jsonb_build_object(
        'role', auth.role(),
        'table', tg_table_schema || '.' || tg_table_name);
    if v_key is not null then
        v_metadata := v_metadata || pg_catalog.jsonb_build_object('key', public.audit_redact(v_key));
    end if;
    if v_uid is not null and v_user_id is null then
        v_metadata := v_metadata || pg_catalog.jsonb_build_object('sub', v_uid);
    end if;

    insert into public.audit_logs
        (user_id, action, resource_type, resource_id, old_value, new_value,
         ip_address, user_agent, status, metadata)
    values
        (v_user_id, v_action, tg_table_name, v_resource_id,
         public.audit_redact(v_old), public.audit_redact(v_new),
         v_ip, v_ua, 'success', v_metadata);
    return null;
end
$$;

-- ---------------------------------------------------------------------------
-- campaigns: state machine, fixed type, protected timestamps, soft delete
-- ---------------------------------------------------------------------------

-- The status changes an API role may make (docs/api.md, "Status transitions").
-- sending, sent, active, completed and failed are set by the delivery work
-- (service_role) only; sent and cancelled are final.
create or replace function public.campaign_api_transition_allowed(p_from text, p_to text)
returns boolean
language sql immutable
set search_path = ''
as $$
    select (p_from, p_to) in (('draft', 'scheduled'), ('draft', 'cancelled'),
                              ('scheduled', 'paused'), ('scheduled', 'cancelled'),
                              ('sending', 'paused'), ('sending', 'cancelled'),
                              ('paused', 'scheduled'), ('paused', 'cancelled'))
$$;

grant execute on function public.campaign_api_transition_allowed(text, text)
    to anon, authenticated, service_role;

-- BEFORE INSERT OR UPDATE on campaigns, for the API roles only (the server's
-- delivery work runs as service_role and moves campaigns through sending, sent,
-- completed, failed). Errors are 23514 (400 through /rest/v1) with a message,
-- detail and hint naming the rule.
create or replace function public.campaigns_enforce_rules()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
    v_allowed text;
begin
    if not public.is_api_role() then
        return new;
    end if;
    if tg_op = 'INSERT' then
        if new.status not in ('draft', 'scheduled') then
            raise exception 'a new campaign is draft or scheduled, not %', new.status
                using errcode = '23514',
                      hint = 'sending, sent, active, completed and failed are set by the delivery work';
        end if;
    else
        if new.status is distinct from old.status
           and not public.campaign_api_transition_allowed(old.status, new.status) then
            select coalesce(pg_catalog.string_agg(t.s, ', ' order by t.o), 'none')
            into v_allowed
            from pg_catalog.unnest(array['draft', 'scheduled', 'active', 'sending', 'sent', 'paused',
                                         'completed', 'cancelled', 'failed'])
                 with ordinality as t(s, o)
            where public.campaign_api_transition_allowed(old.status, t.s);
            raise exception 'cannot change status from % to %', old.status, new.status
                using errcode = '23514',
                      detail = pg_catalog.format('allowed from %s: %s', old.status, v_allowed),
                      hint = 'draft -> scheduled -> (delivery) ; paused from scheduled or sending and '
                             'back to scheduled; cancelled from draft, scheduled, sending or paused. '
                             'sending, sent, active, completed and failed are set by the delivery work.';
        end if;
        if new.type is distinct from old.type and old.status <> 'draft' then
            raise exception 'the type of a campaign is fixed once it leaves draft (it is %)', old.status
                using errcode = '23514';
        end if;
    end if;
    if new.status = 'scheduled'
       and (tg_op = 'INSERT' or old.status is distinct from 'scheduled'
            or new.scheduled_date is distinct from old.scheduled_date)
       and (new.scheduled_date is null or new.scheduled_date <= pg_catalog.now()) then
        raise exception 'a scheduled campaign needs a scheduled_date in the future'
            using errcode = '23514';
    end if;
    return new;
end
$$;

revoke all on function public.campaigns_enforce_rules() from public, anon, authenticated;

-- Fires before set_updated_at (name order).
create trigger enforce_rules before insert or update on public.campaigns
    for each row execute function public.campaigns_enforce_rules();

-- Column privileges: created_at, updated_at and deleted_at are the database's.
revoke insert, update on public.campaigns from authenticated;
grant insert (id, user_id, name, type, status, content, scheduled_date) on public.campaigns to authenticated;
grant update (user_id, name, type, status, content, scheduled_date) on public.campaigns to authenticated;

-- Soft-deletes a live campaign the caller may change (its owner with role user,
-- an admin, or service_role) and returns it; NULL when the caller cannot see a
-- live campaign with that id; 42501 when the caller sees it but may not change
-- it (a viewer). Messages, reports and the audit trail stay. Audited as
-- action 'soft_delete' (besides the row's 'update').
create or replace function public.soft_delete_campaign(p_id uuid)
returns public.campaigns
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_row public.campaigns;
    v_role text := public.get_user_role();
begin
    select * into v_row from public.campaigns c where c.id = p_id and c.deleted_at is null for update;
    if not found
       or not (auth.role() = 'service_role' or v_role in ('admin', 'viewer')
               or (v_role = 'user' and v_row.user_id = auth.uid())) then
        return null;
    end if;
    if not (auth.role() = 'service_role' or v_role = 'admin'
            or (v_role = 'user' and v_row.user_id = auth.uid())) then
        raise exception 'permission denied to delete campaign %', p_id using errcode = '42501';
    end if;
    update public.campaigns c set deleted_at = pg_catalog.now() where c.id = p_id returning * into v_row;
    perform public.record_audit('soft_delete', 'campaigns', p_id, 'success',
                                pg_catalog.jsonb_build_object('table', 'public.campaigns'));
    return v_row;
end
$$;

-- Restores a soft-deleted campaign (its owner with role user, an admin, or
-- service_role) and returns it; NULL when there is no such deleted campaign
-- the caller may restore. Audited as action 'restore'.
create or replace function public.restore_campaign(p_id uuid)
returns public.campaigns
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_row public.campaigns;
    v_role text := public.get_user_role();
begin
    select * into v_row from public.campaigns c where c.id = p_id and c.deleted_at is not null for update;
    if not found
       or not (auth.role() = 'service_role' or v_role = 'admin'
               or (v_role = 'user' and v_row.user_id = auth.uid())) then
        return null;
    end if;
    update public.campaigns c set deleted_at = null where c.id = p_id returning * into v_row;
    perform public.record_audit('restore', 'campaigns', p_id, 'success',
                                pg_catalog.jsonb_build_object('table', 'public.campaigns'));
    return v_row;
end
$$;

revoke all on function public.soft_delete_campaign(uuid), public.restore_campaign(uuid) from public, anon;
grant execute on function public.soft_delete_campaign(uuid), public.restore_campaign(uuid)
    to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- reports: generated, not written
-- ---------------------------------------------------------------------------

-- Rows come from POST /api/reports, which computes the report as the caller
-- (RLS decides what it sees) and stores it as service_role. API roles read and
-- delete; they never insert or change data, report_type or generated_at.
revoke insert, update on public.reports from authenticated;
drop policy reports_insert_user on public.reports;
drop policy reports_update_user on public.reports;
drop policy reports_insert_admin on public.reports;
drop policy reports_update_admin on public.reports;

-- ---------------------------------------------------------------------------
-- Consent is evidence
-- ---------------------------------------------------------------------------

-- Where re-consent evidence came from, for e-mail as for SMS.
alter table public.email_subscriptions
    add column consent_source varchar(50)
        constraint email_subscriptions_source_valid
        check (consent_source in ('web_form', 'api', 'manual', 'import'));
comment on column public.email_subscriptions.consent_source is
    'Where the current subscription came from (web_form, api, manual, import).';

-- BEFORE UPDATE on sms_consent / email_subscriptions, for the API roles: an
-- opt-out (opt_out_at / unsubscribed_at) is evidence. It cannot be cleared or
-- moved, and consent cannot be given again by an UPDATE once withdrawn: that
-- needs new evidence through public.record_sms_consent() /
-- public.record_email_consent(). Withdrawing consent stays a plain UPDATE.
-- Fires before consent_stamp (name order), so it sees what the writer wrote.
create or replace function public.consent_guard()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
    v_old jsonb := pg_catalog.to_jsonb(old);
    v_new jsonb := pg_catalog.to_jsonb(new);
    v_flag text := case tg_table_name when 'sms_consent' then 'consent_given' else 'subscribed' end;
    v_out text := case tg_table_name when 'sms_consent' then 'opt_out_at' else 'unsubscribed_at' end;
    v_fn text := case tg_table_name when 'sms_consent' then 'public.record_sms_consent()'
                                    else 'public.record_email_consent()' end;
begin
    if not public.is_api_role() then
        return new;
    end if;
    if v_old ->> v_out is not null and (v_new ->> v_out) is distinct from (v_old ->> v_out) then
        raise exception '% is evidence of an opt-out and cannot be changed', v_out
            using errcode = '42501',
                  hint = 'record new consent with ' || v_fn;
    end if;
    if v_old ->> v_out is not null and not (v_old ->> v_flag)::boolean and (v_new ->> v_flag)::boolean then
        raise exception 'an opt-out cannot be reversed by an update'
            using errcode = '42501',
                  detail = pg_catalog.format('opted out at %s', v_old ->> v_out),
                  hint = 'an admin records the recipient''s new consent, with its source and time, with '
                         || v_fn;
    end if;
    return new;
end
$$;

revoke all on function public.consent_guard() from public, anon, authenticated;

create trigger consent_guard before update on public.sms_consent
    for each row execute function public.consent_guard();
create trigger consent_guard before update on public.email_subscriptions
    for each row execute function public.consent_guard();

-- Records new SMS consent for a phone number with its evidence: p_source
-- (web_form, api, manual, import), p_consented_at (not in the future, and after
-- the last opt-out) and p_evidence (what shows it, e.g. "START reply to +1…" or
-- a form submission id). Allowed to admins and to service_role (the server,
-- for the recipient's own action: the START keyword, the re-subscribe page).
-- Always written to the audit log as action 'consent' (evidence is not
-- optional), with who recorded it. Returns the consent row.
create or replace function public.record_sms_consent(p_phone text, p_source text,
                                                     p_consented_at timestamptz, p_evidence text)
returns public.sms_consent
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_row public.sms_consent;
begin
    if not (auth.role() = 'service_role' or public.get_user_role() = 'admin') then
        raise exception 'only an admin (or the recipient''s own action) records consent'
            using errcode = '42501';
    end if;
    if p_source is null or p_source not in ('web_form', 'api', 'manual', 'import') then
        raise exception 'consent source must be one of web_form, api, manual, import' using errcode = '22023';
    end if;
    if p_evidence is null or pg_catalog.btrim(p_evidence) = '' or pg_catalog.length(p_evidence) > 2000 then
        raise exception 'consent evidence (1 to 2000 characters) is required' using errcode = '22023';
    end if;
    if p_consented_at is null or p_consented_at > pg_catalog.now() then
        raise exception 'consented_at is required and cannot be in the future' using errcode = '22023';
    end if;
    select * into v_row from public.sms_consent c where c.phone_number = p_phone for update;
    if found and v_row.opt_out_at is not null and p_consented_at <= v_row.opt_out_at then
        raise exception 'new consent must be given after the opt-out of %', v_row.opt_out_at
            using errcode = '22023';
    end if;
    if found then
        update public.sms_consent c
        set consent_given = true, consent_source = p_source, consented_at = p_consented_at
        where c.id = v_row.id
        returning * into v_row;
    else
        insert into public.sms_consent (phone_number, consent_given, consent_source, consented_at)
        values (p_phone, true, p_source, p_consented_at)
        returning * into v_row;
    end if;
    perform public.record_audit('consent', 'sms_consent', v_row.id, 'success',
        pg_catalog.jsonb_build_object('source', p_source, 'consented_at', p_consented_at,
                                      'evidence', p_evidence,
                                      'recorded_by', coalesce(auth.uid()::text, 'recipient')),
        null, true);
    return v_row;
end
$$;

-- The same for an e-mail address (stored lower-case).
create or replace function public.record_email_consent(p_email text, p_source text,
                                                       p_subscribed_at timestamptz, p_evidence text)
returns public.email_subscriptions
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_row public.email_subscriptions;
    v_email text := pg_catalog.lower(pg_catalog.btrim(p_email));
begin
    if not (auth.role() = 'service_role' or public.get_user_role() = 'admin') then
        raise exception 'only an admin (or the recipient''s own action) records consent'
            using errcode = '42501';
    end if;
    if p_source is null or p_source not in ('web_form', 'api', 'manual', 'import') then
        raise exception 'consent source must be one of web_form, api, manual, import' using errcode = '22023';
    end if;
    if p_evidence is null or pg_catalog.btrim(p_evidence) = '' or pg_catalog.length(p_evidence) > 2000 then
        raise exception 'consent evidence (1 to 2000 characters) is required' using errcode = '22023';
    end if;
    if p_subscribed_at is null or p_subscribed_at > pg_catalog.now() then
        raise exception 'subscribed_at is required and cannot be in the future' using errcode = '22023';
    end if;
    select * into v_row from public.email_subscriptions s where s.email = v_email for update;
    if found and v_row.unsubscribed_at is not null and p_subscribed_at <= v_row.unsubscribed_at then
        raise exception 'new consent must be given after the unsubscription of %', v_row.unsubscribed_at
            using errcode = '22023';
    end if;
    if found then
        update public.email_subscriptions s
        set subscribed = true, consent_source = p_source, subscribed_at = p_subscribed_at
        where s.id = v_row.id
        returning * into v_row;
    else
        insert into public.email_subscriptions (email, subscribed, consent_source, subscribed_at)
        values (v_email, true, p_source, p_subscribed_at)
        returning * into v_row;
    end if;
    perform public.record_audit('consent', 'email_subscriptions', v_row.id, 'success',
        pg_catalog.jsonb_build_object('source', p_source, 'subscribed_at', p_subscribed_at,
                                      'evidence', p_evidence,
                                      'recorded_by', coalesce(auth.uid()::text, 'recipient')),
        null, true);
    return v_row;
end
$$;

revoke all on function public.record_sms_consent(text, text, timestamptz, text),
    public.record_email_consent(text, text, timestamptz, text) from public, anon;
grant execute on function public.record_sms_consent(text, text, timestamptz, text),
    public.record_email_consent(text, text, timestamptz, text) to authenticated, service_role;

-- Who reaches which consent row: users through the live contacts they own,
-- admins all, viewers none (phone numbers and addresses are personal data).
drop policy sms_consent_select on public.sms_consent;
drop policy sms_consent_insert on public.sms_consent;
drop policy sms_consent_update on public.sms_consent;
drop policy sms_consent_delete_admin on public.sms_consent;
create policy sms_consent_select_user on public.sms_consent for select to app_user
    using (exists (select 1 from public.contacts c
                   where c.phone = sms_consent.phone_number and c.user_id = (select auth.uid())
                     and c.deleted_at is null));
create policy sms_consent_insert_user on public.sms_consent for insert to app_user
    with check (exists (select 1 from public.contacts c
                        where c.phone = sms_consent.phone_number and c.user_id = (select auth.uid())
                          and c.deleted_at is null));
create policy sms_consent_update_user on public.sms_consent for update to app_user
    using (exists (select 1 from public.contacts c
                   where c.phone = sms_consent.phone_number and c.user_id = (select auth.uid())
                     and c.deleted_at is null))
    with check (exists (select 1 from public.contacts c
                        where c.phone = sms_consent.phone_number and c.user_id = (select auth.uid())
                          and c.deleted_at is null));
create policy sms_consent_select_admin on public.sms_consent for select to app_admin using (true);
create policy sms_consent_insert_admin on public.sms_consent for insert to app_admin with check (true);
create policy sms_consent_update_admin on public.sms_consent for update to app_admin using (true) with check (true);
create policy sms_consent_delete_admin on public.sms_consent for delete to app_admin using (true);

drop policy email_subscriptions_select on public.email_subscriptions;
drop policy email_subscriptions_insert on public.email_subscriptions;
drop policy email_subscriptions_update on public.email_subscriptions;
drop policy email_subscriptions_delete_admin on public.email_subscriptions;
create policy email_subscriptions_select_user on public.email_subscriptions for select to app_user
    using (exists (select 1 from public.contacts c
                   where c.email = email_subscriptions.email and c.user_id = (select auth.uid())
                     and c.deleted_at is null));
create policy email_subscriptions_insert_user on public.email_subscriptions for insert to app_user
    with check (exists (select 1 from public.contacts c
                        where c.email = email_subscriptions.email and c.user_id = (select auth.uid())
                          and c.deleted_at is null));
create policy email_subscriptions_update_user on public.email_subscriptions for update to app_user
    using (exists (select 1 from public.contacts c
                   where c.email = email_subscriptions.email and c.user_id = (select auth.uid())
                     and c.deleted_at is null))
    with check (exists (select 1 from public.contacts c
                        where c.email = email_subscriptions.email and c.user_id = (select auth.uid())
                          and c.deleted_at is null));
create policy email_subscriptions_select_admin on public.email_subscriptions for select to app_admin
    using (true);
create policy email_subscriptions_insert_admin on public.email_subscriptions for insert to app_admin
    with check (true);
create policy email_subscriptions_update_admin on public.email_subscriptions for update to app_admin
    using (true) with check (true);
create policy email_subscriptions_delete_admin on public.email_subscriptions for delete to app_admin
    using (true);

-- ---------------------------------------------------------------------------
-- Soft delete for templates, contacts and data sources
-- ---------------------------------------------------------------------------

-- BEFORE DELETE: a non-admin API role cannot hard-delete these rows (42501, with
-- the soft delete to use instead). Admins and service_role still can (e.g. to
-- erase personal data); history is protected by the foreign keys.
create or replace function public.refuse_hard_delete()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if public.is_api_role() and current_user <> 'app_admin' then
        raise exception '% are soft-deleted: a hard DELETE is not allowed', tg_table_name
            using errcode = '42501',
                  hint = pg_catalog.format('set deleted_at instead, e.g. PATCH /rest/v1/%s?id=eq.<id> '
                                           'with {"deleted_at": "now()"}', tg_table_name);
    end if;
    return old;
end
$$;

revoke all on function public.refuse_hard_delete() from public, anon, authenticated;

create trigger refuse_hard_delete before delete on public.templates
    for each row execute function public.refuse_hard_delete();
create trigger refuse_hard_delete before delete on public.contacts
    for each row execute function public.refuse_hard_delete();
create trigger refuse_hard_delete before delete on public.data_sources
    for each row execute function public.refuse_hard_delete();

-- Deleting a data source never silently drops its imported data: the rows
-- must be removed first (import_tables was RESTRICT already).
alter table public.imported_data drop constraint imported_data_data_source_id_fkey;
alter table public.imported_data add constraint imported_data_data_source_id_fkey
    foreign key (data_source_id) references public.data_sources (id) on delete restrict;

-- ---------------------------------------------------------------------------
-- analytics_data: one value per (user, metric, day, dimensions)
-- ---------------------------------------------------------------------------

alter table public.analytics_data
    add column dimensions jsonb not null default '{}'::jsonb
        constraint analytics_data_dimensions_object check (jsonb_typeof(dimensions) = 'object');
comment on column public.analytics_data.dimensions is
    'Breakdown of the value (e.g. {"channel": "sms"}); {} for the total. Part of the row''s identity.';

-- Earlier duplicates: the most recently written value wins, as an upsert would have.
delete from public.analytics_data a
using public.analytics_data b
where a.user_id is not distinct from b.user_id and a.metric_type = b.metric_type and a.date = b.date
  and a.dimensions = b.dimensions
  and (a.updated_at, a.id) < (b.updated_at, b.id);

-- NULLS NOT DISTINCT: rows of a deleted user (user_id NULL) stay unique too.
-- INSERT ... ON CONFLICT (user_id, metric_type, date, dimensions) DO UPDATE (or
-- supabase-js upsert with onConflict: 'user_id,metric_type,date,dimensions')
-- updates the day's value.
alter table public.analytics_data add constraint analytics_data_user_metric_day_key
    unique nulls not distinct (user_id, metric_type, date, dimensions);

-- ---------------------------------------------------------------------------
-- The dashboard's lists
-- ---------------------------------------------------------------------------

create index idx_reports_user_created_at on public.reports (user_id, created_at desc);
create index idx_sync_logs_source_started_at on public.sync_logs (data_source_id, started_at desc);
create index idx_imported_data_source_date on public.imported_data (data_source_id, event_date);

-- ---------------------------------------------------------------------------
-- Sign-in events and exports in public.audit_logs
-- ---------------------------------------------------------------------------

-- AFTER INSERT on auth.audit_log_entries: the sign-in events of the auth
-- endpoints also go to the application's trail with the seed's action names:
-- login (status success), login with status failure (a failed sign-in; the
-- e-mail tried is in metadata), logout.
create or replace function public.mirror_auth_event()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_action text := new.payload ->> 'action';
    v_actor uuid;
    v_ip inet;
begin
    if v_action not in ('login', 'login_failed', 'logout') or not public.audit_enabled() then
        return null;
    end if;
    if (new.payload ->> 'actor_id') ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
        v_actor := (new.payload ->> 'actor_id')::uuid;
        if not exists (select 1 from auth.users u where u.id = v_actor) then
            v_actor := null;
        end if;
    end if;
    begin
        v_ip := nullif(new.ip_address, '')::inet;
    exception when others then
        v_ip := null;
    end;
    insert into public.audit_logs (user_id, action, resource_type, resource_id, ip_address, user_agent,
                                   status, error_message, metadata)
    values (v_actor,
            case v_action when 'login_failed' then 'login' else v_action end,
            'user', v_actor, v_ip,
            pg_catalog.left(nullif(pg_catalog.current_setting('request.headers', true), '')::jsonb
                            ->> 'user-agent', 1024),
            case v_action when 'login_failed' then 'failure' else 'success' end,
            case v_action when 'login_failed' then 'invalid credentials' end,
            pg_catalog.jsonb_build_object('auth_event', v_action,
                                          'email', nullif(new.payload ->> 'actor_username', ''),
                                          'auth_audit_id', new.id));
    return null;
exception when invalid_text_representation then
    -- request.headers that is not JSON never fails a sign-in
    return null;
end
$$;

revoke all on function public.mirror_auth_event() from public, anon, authenticated;

create trigger mirror_to_audit_logs after insert on auth.audit_log_entries
    for each row execute function public.mirror_auth_event();

-- Records that the caller exported a report it can read (action 'export',
-- resource report). For GET /api/reports/:id/export. Returns false (and
-- records nothing) for a report the caller cannot read.
create or replace function public.audit_report_export(p_report_id uuid, p_format text)
returns boolean
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_owner uuid;
    v_role text := public.get_user_role();
begin
    select r.user_id into v_owner from public.reports r where r.id = p_report_id;
    if not found or not (auth.role() = 'service_role' or v_role in ('admin', 'viewer')
                         or (v_role is not null and v_owner = auth.uid())) then
        return false;
    end if;
    perform public.record_audit('export', 'report', p_report_id, 'success',
        pg_catalog.jsonb_build_object('format', pg_catalog.left(p_format, 16)));
    return true;
end
$$;

revoke all on function public.audit_report_export(uuid, text) from public, anon;
grant execute on function public.audit_report_export(uuid, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Retention: auth.audit_log_entries is purged with public.audit_logs
-- ---------------------------------------------------------------------------

-- Deletes public.audit_logs rows and auth.audit_log_entries rows older than
-- retention_days (>= 0) and returns how many rows it removed in all; for the
-- retention job (app_settings.data_retention_days), service_role only.
create or replace function public.purge_audit_logs(retention_days integer)
returns bigint
language plpgsql volatile
set search_path = ''
as $$
declare
    v_count bigint;
    v_auth bigint;
    v_cutoff timestamptz;
begin
    if retention_days is null or retention_days < 0 then
        raise exception 'retention_days must be zero or more' using errcode = '22023';
    end if;
    v_cutoff := pg_catalog.now() - pg_catalog.make_interval(days => retention_days);
    delete from public.audit_logs l where l.created_at < v_cutoff;
    get diagnostics v_count = row_count;
    delete from auth.audit_log_entries e where e.created_at < v_cutoff;
    get diagnostics v_auth = row_count;
    return v_count + v_auth;
end
$$;

revoke all on function public.purge_audit_logs(integer) from public, anon, authenticated;
grant execute on function public.purge_audit_logs(integer) to service_role;
