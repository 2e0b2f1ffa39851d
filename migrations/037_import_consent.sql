-- 037_import_consent.sql: consent columns of an import become consent evidence
-- (issue 10: "consent is never implied by an import; only mapped consent
-- columns with a source create consent evidence").
--
-- A data source whose destination is `contacts` may declare, in its config,
--   "consent": {
--     "email": {"column": "newsletter", "evidence": "2026 webinar sign-up form",
--               "date_column": "signed_up_at"},
--     "sms":   {"column": "sms_ok", "evidence": "in-store opt-in cards"}
--   }
-- `column` and `date_column` name columns of the import (after mapping);
-- `evidence` (1 to 2000 characters) says where the consent was given and is
-- stored in the audit log with every run. A cell reading yes / y / true / t /
-- 1 / x / subscribed / opted_in / opt-in records consent (source `import`,
-- given at `date_column`'s time, or at the import's time without one); no / n /
-- false / f / 0 / unsubscribed / opted_out / opt-out records a withdrawal; an
-- empty or other cell changes nothing. Consent older than a recorded opt-out is
-- not applied (the opt-out stands); a date in the future or not a date leaves
-- the row's consent unapplied. A withdrawal always applies. Nothing else of
-- the import gives consent.
-- Applied once, inside one transaction, by the database owner.

-- 'in', 'out' or NULL for a consent cell.
create or replace function public.import_consent_value(p_cell text)
returns text
language sql immutable
set search_path = ''
as $$
    select case
        when p_cell is null then null
        when pg_catalog.lower(pg_catalog.btrim(p_cell)) in
             ('yes', 'y', 'true', 't', '1', 'x', 'subscribed', 'opted_in', 'opted in', 'opt-in', 'opt in')
            then 'in'
        when pg_catalog.lower(pg_catalog.btrim(p_cell)) in
             ('no', 'n', 'false', 'f', '0', 'unsubscribed', 'opted_out', 'opted out', 'opt-out', 'opt out')
            then 'out'
    end
$$;

-- When consent in a row was given: the date column's value (not in the future),
-- or now() when the configuration names no date column; NULL when unusable.
create or replace function public.import_consent_time(p_cell text, p_has_date_column boolean)
returns timestamptz
language plpgsql stable
set search_path = ''
as $$
declare
    v_at timestamptz;
begin
    if not p_has_date_column then
        return pg_catalog.now();
    end if;
    if p_cell is null or pg_catalog.btrim(p_cell) = '' then
        return null;
    end if;
    begin
        v_at := pg_catalog.btrim(p_cell)::timestamptz;
    exception when others then
        return null;
    end;
    return case when v_at <= pg_catalog.now() then v_at end;
end
$$;

-- The source's config.consent, checked against the staging table's columns
-- ('{}' when there is none). Errors (22023) name the key at fault.
create or replace function public.import_consent_config(p_data_source_id uuid, p_staging text)
returns jsonb
language plpgsql stable
security definer
set search_path = ''
as $$
declare
    v_cfg jsonb;
    v_channel text;
    v_entry jsonb;
    v_key text;
    v_cols text[];
begin
    select ds.config -> 'consent' into v_cfg from public.data_sources ds where ds.id = p_data_source_id;
    if v_cfg is null or v_cfg = 'null'::jsonb then
        return '{}'::jsonb;
    end if;
    if pg_catalog.jsonb_typeof(v_cfg) <> 'object' then
        raise exception 'config.consent must be an object with "email" and/or "sms"' using errcode = '22023';
    end if;
    select pg_catalog.array_agg(a.attname::text) into v_cols
    from pg_catalog.pg_attribute a
    where a.attrelid = pg_catalog.format('import_staging.%I', p_staging)::regclass
      and a.attnum > 0 and not a.attisdropped;
    for v_channel, v_entry in select * from pg_catalog.jsonb_each(v_cfg) loop
        if v_channel not in ('email', 'sms') then
            raise exception 'config.consent.%: unknown channel (use "email" or "sms")', v_channel
                using errcode = '22023';
        end if;
        if pg_catalog.jsonb_typeof(v_entry) <> 'object' then
            raise exception 'config.consent.% must be an object with "column" and "evidence"', v_channel
                using errcode = '22023';
        end if;
        for v_key in select k from pg_catalog.jsonb_object_keys(v_entry) k loop
            if v_key not in ('column', 'evidence', 'date_column') then
                raise exception 'config.consent.%.%: unknown key (use column, evidence, date_column)',
                    v_channel, v_key using errcode = '22023';
            end if;
        end loop;
        if pg_catalog.jsonb_typeof(v_entry -> 'evidence') is distinct from 'string'
           or pg_catalog.btrim(v_entry ->> 'evidence') = ''
           or pg_catalog.length(v_entry ->> 'evidence') > 2000 then
            raise exception 'config.consent.%.evidence: say where the consent was given (1 to 2000 characters)',
                v_channel using errcode = '22023';
        end if;
        foreach v_key in array array['column', 'date_column'] loop
            if v_entry ? v_key and (pg_catalog.jsonb_typeof(v_entry -> v_key) <> 'string'
                                    or not (v_entry ->> v_key = any (v_cols))) then
                raise exception 'config.consent.%.%: "%" is not a column of the import', v_channel, v_key,
                    v_entry ->> v_key
                    using errcode = '22023',
                          hint = 'name a column as it is mapped (target_name), e.g. one of: '
                                 || pg_catalog.array_to_string(v_cols, ', ');
            end if;
        end loop;
        if not v_entry ? 'column' then
            raise exception 'config.consent.%.column is required', v_channel using errcode = '22023';
        end if;
    end loop;
    return v_cfg;
end
$$;

-- Applies the e-mail consent cells of pg_temp.import_contact_rows (one value
-- per address; a withdrawal wins over a consent in the same file).
create or replace function public.import_apply_email_consent(p_cfg jsonb, p_sync_log_id uuid)
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_recognised bigint;
    v_in bigint;
    v_out bigint;
begin
    create temporary table import_email_consent on commit drop as
    select distinct on (r.email) r.email, r.email_consent as v,
           public.import_consent_time(r.email_consent_at, p_cfg ? 'date_column') as at
    from pg_temp.import_contact_rows r
    where r.email is not null and r.email_consent is not null
    order by r.email, (r.email_consent = 'out') desc;
    select count(*) into v_recognised from pg_temp.import_email_consent;

    insert into public.email_subscriptions as s (email, subscribed, consent_source, subscribed_at)
    select c.email, true, 'import', c.at from pg_temp.import_email_consent c
    where c.v = 'in' and c.at is not null
    on conflict (email) do update
    set subscribed = true, consent_source = 'import', subscribed_at = excluded.subscribed_at
    where not s.subscribed and (s.unsubscribed_at is null or excluded.subscribed_at > s.unsubscribed_at);
    get diagnostics v_in = row_count;

    insert into public.email_subscriptions as s (email, subscribed, unsubscribed_at, unsubscribe_reason)
    select c.email, false, pg_catalog.now(), 'import' from pg_temp.import_email_consent c where c.v = 'out'
    on conflict (email) do update
    set subscribed = false, unsubscribed_at = pg_catalog.now(), unsubscribe_reason = 'import'
    where s.subscribed;
    get diagnostics v_out = row_count;

    perform public.record_audit('consent', 'email_subscriptions', null, 'success',
        pg_catalog.jsonb_build_object('source', 'import', 'evidence', p_cfg ->> 'evidence',
                                      'column', p_cfg ->> 'column', 'sync_log_id', p_sync_log_id,
                                      'consented', v_in, 'opted_out', v_out),
        null, true);
    drop table pg_temp.import_email_consent;
    return pg_catalog.jsonb_build_object('consented', v_in, 'opted_out', v_out,
                                         'unchanged', v_recognised - v_in - v_out);
end
$$;

-- The same for phone numbers and sms_consent.
create or replace function public.import_apply_sms_consent(p_cfg jsonb, p_sync_log_id uuid)
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_recognised bigint;
    v_in bigint;
    v_out bigint;
begin
    create temporary table import_sms_consent on commit drop as
    select distinct on (r.phone) r.phone, r.sms_consent as v,
           public.import_consent_time(r.sms_consent_at, p_cfg ? 'date_column') as at
    from pg_temp.import_contact_rows r
    where r.phone is not null and r.sms_consent is not null
    order by r.phone, (r.sms_consent = 'out') desc;
    select count(*) into v_recognised from pg_temp.import_sms_consent;

    insert into public.sms_consent as s (phone_number, consent_given, consent_source, consented_at)
    select c.phone, true, 'import', c.at from pg_temp.import_sms_consent c
    where c.v = 'in' and c.at is not null
    on conflict (phone_number) do update
    set consent_given = true, consent_source = 'import', consented_at = excluded.consented_at
    where not s.consent_given and (s.opt_out_at is null or excluded.consented_at > s.opt_out_at);
    get diagnostics v_in = row_count;

    insert into public.sms_consent as s (phone_number, consent_given, opt_out_at, opt_out_reason)
    select c.phone, false, pg_catalog.now(), 'import' from pg_temp.import_sms_consent c where c.v = 'out'
    on conflict (phone_number) do update
    set consent_given = false, opt_out_at = pg_catalog.now(), opt_out_reason = 'import'
    where s.consent_given or s.opt_out_at is null;
    get diagnostics v_out = row_count;

    perform public.record_audit('consent', 'sms_consent', null, 'success',
        pg_catalog.jsonb_build_object('source', 'import', 'evidence', p_cfg ->> 'evidence',
                                      'column', p_cfg ->> 'column', 'sync_log_id', p_sync_log_id,
                                      'consented', v_in, 'opted_out', v_out),
        null, true);
    drop table pg_temp.import_sms_consent;
    return pg_catalog.jsonb_build_object('consented', v_in, 'opted_out', v_out,
                                         'unchanged', v_recognised - v_in - v_out);
end
$$;

revoke all on function public.import_consent_config(uuid, text),
                       public.import_apply_email_consent(jsonb, uuid),
                       public.import_apply_sms_consent(jsonb, uuid) from public, anon, authenticated;

-- The contacts destination, as in 021, plus the consent columns above: they
-- are read from the staging rows and kept out of the contacts' attributes.
create or replace function public.import_contacts_from_staging(p_data_source_id uuid,
                                                              p_staging text,
                                                              p_sync_log_id uuid)
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_owner uuid;
    v_total bigint;
    v_email bigint;
    v_phone bigint;
    c_email constant text := '^[^@[:space:]]+@[^@[:space:]]+$';
    c_phone constant text := '^\+[1-9][0-9]{1,14}$';
    v_consent jsonb;
    v_strip text[];
    v_evidence jsonb := '{}';
begin
    if p_staging !~ '^stg_[0-9a-f]{12}$'
       or pg_catalog.to_regclass(pg_catalog.format('import_staging.%I', p_staging)) is null then
        raise exception 'invalid staging table %', p_staging using errcode = '22023';
    end if;
    select ds.user_id into v_owner from public.data_sources ds where ds.id = p_data_source_id;
    if v_owner is null then
        raise exception 'the data source has no owner' using errcode = '22023';
    end if;
    v_consent := public.import_consent_config(p_data_source_id, p_staging);
    v_strip := array['id', 'email', 'phone', 'first_name', 'last_name']
               || coalesce((select pg_catalog.array_agg(c) from pg_catalog.jsonb_each(v_consent) e,
                                 lateral (values (e.value ->> 'column'), (e.value ->> 'date_column')) v(c)
                            where c is not null), '{}');
    execute pg_catalog.format(
        'create temporary table import_contact_rows on commit drop as '
        'select pg_catalog.lower(pg_catalog.btrim(j ->> ''email'')) as email, '
        '       pg_catalog.btrim(j ->> ''phone'') as phone, '
        '       pg_catalog.left(j ->> ''first_name'', 100) as first_name, '
        '       pg_catalog.left(j ->> ''last_name'', 100) as last_name, '
        '       pg_catalog.jsonb_strip_nulls(j - $1) as attributes, '
        '       public.import_consent_value(j ->> ($2 #>> ''{email,column}'')) as email_consent, '
        '       j ->> ($2 #>> ''{email,date_column}'') as email_consent_at, '
        '       public.import_consent_value(j ->> ($2 #>> ''{sms,column}'')) as sms_consent, '
        '       j ->> ($2 #>> ''{sms,date_column}'') as sms_consent_at '
        'from (select pg_catalog.to_jsonb(s) as j from import_staging.%I s) x', p_staging)
        using v_strip, v_consent;
    select count(*) into v_total from pg_temp.import_contact_rows;
    update pg_temp.import_contact_rows r set email = null where r.email = '' or r.email !~ c_email
        or pg_catalog.length(r.email) > 255;
    update pg_temp.import_contact_rows r set phone = null where r.phone = '' or r.phone !~ c_phone;

    insert into public.contacts as c (user_id, email, phone, first_name, last_name, attributes, source)
    select distinct on (r.email) v_owner, r.email,
           case when exists (select 1 from public.contacts o
                             where o.user_id = v_owner and o.phone = r.phone
                               and o.email is distinct from r.email) then null else r.phone end,
           r.first_name, r.last_name, r.attributes, 'import'
    from pg_temp.import_contact_rows r
    where r.email is not null
    order by r.email
    on conflict (user_id, email) do update
    set phone = coalesce(excluded.phone, c.phone),
        first_name = coalesce(excluded.first_name, c.first_name),
        last_name = coalesce(excluded.last_name, c.last_name),
        attributes = c.attributes || excluded.attributes,
        deleted_at = null;
    get diagnostics v_email = row_count;

    insert into public.contacts as c (user_id, phone, first_name, last_name, attributes, source)
    select distinct on (r.phone) v_owner, r.phone, r.first_name, r.last_name, r.attributes, 'import'
    from pg_temp.import_contact_rows r
    where r.email is null and r.phone is not null
    order by r.phone
    on conflict (user_id, phone) do update
    set first_name = coalesce(excluded.first_name, c.first_name),
        last_name = coalesce(excluded.last_name, c.last_name),
        attributes = c.attributes || excluded.attributes,
        deleted_at = null;
    get diagnostics v_phone = row_count;

    if v_consent ? 'email' then
        v_evidence := v_evidence || pg_catalog.jsonb_build_object(
            'email', public.import_apply_email_consent(v_consent -> 'email', p_sync_log_id));
    end if;
    if v_consent ? 'sms' then
        v_evidence := v_evidence || pg_catalog.jsonb_build_object(
            'sms', public.import_apply_sms_consent(v_consent -> 'sms', p_sync_log_id));
    end if;

    execute pg_catalog.format('drop table import_staging.%I', p_staging);
    insert into public.audit_logs (user_id, action, resource_type, resource_id, status, metadata)
    values (v_owner, 'import', 'contacts', p_data_source_id, 'success',
            pg_catalog.jsonb_build_object('sync_log_id', p_sync_log_id,
                                          'contacts_upserted', v_email + v_phone)
            || case when v_evidence = '{}' then '{}'::jsonb
                    else pg_catalog.jsonb_build_object('consent', v_evidence) end);
    return v_evidence || pg_catalog.jsonb_build_object(
        'imported', v_email + v_phone,
        'invalid', (select count(*) from pg_temp.import_contact_rows r
                    where r.email is null and r.phone is null),
        'merged', v_total - v_email - v_phone
                  - (select count(*) from pg_temp.import_contact_rows r
                     where r.email is null and r.phone is null));
end
$$;
revoke all on function public.import_contacts_from_staging(uuid, text, uuid) from public, anon, authenticated;
grant execute on function public.import_contacts_from_staging(uuid, text, uuid) to service_role;
