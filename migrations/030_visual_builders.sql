-- 030_visual_builders.sql: audience segment rules (issue 12 "Who a campaign goes
-- to", issue 13 segment builder): the rules format validated on write, the
-- compiler of rules into one parameterised predicate over contacts, the
-- membership function the send engine calls, the seed's calculate_segment_size
-- on auth.uid() only, and the builder's live preview.
--
-- Rules (docs/segments.md): a group {"all": [...]} or {"any": [...]} (nestable)
-- of conditions {"field": ..., "op": ..., "value": ...}. Fields: email, phone,
-- first_name, last_name, source, created_at, attributes.<key>, consent.email
-- (subscribed / unsubscribed / none), consent.sms (opted_in / opted_out / none).
-- Ops: eq neq contains starts_with ends_with gt gte lt lte in is_null not_null
-- within_days, each valid for some fields only.
--
-- Nothing a user wrote is ever part of SQL text. The compiler
-- (public.segment__compile) emits fixed fragments chosen by the (whitelisted)
-- field and op and by the JSON type of the value; every value, and the key of
-- attributes.<key>, is read at run time from the rules document itself, which is
-- the statement's parameter $1: e.g. lower(c.first_name) = lower(($1 #>>
-- '{all,2,value}'::text[])). The only other text in a path is "all" / "any" and
-- array positions, both produced by the compiler. EXECUTE ... USING passes $1
-- (the rules), $2 (the owner) and $3 (the app's time zone, for plain dates).
--
-- Limits: 64 KB of rules, 500 objects (groups + conditions), groups nested 5
-- deep, 100 items per group, 1000 values per "in", 1000 characters per string.
-- Applied once, inside one transaction, by the database owner.

-- ---------------------------------------------------------------------------
-- Helpers of the rules (pure)
-- ---------------------------------------------------------------------------

-- The path of a rules node for messages: {all,2,op} -> rules.all[2].op.
create or replace function public.segment__at(p_path text[])
returns text
language sql immutable
set search_path = ''
as $$
    select 'rules' || coalesce(pg_catalog.string_agg(
        case when e ~ '^[0-9]+$' then '[' || e || ']' else '.' || e end, '' order by i), '')
    from pg_catalog.unnest(p_path) with ordinality as t(e, i)
$$;

-- The kind of a field: text, source, time, attr, email_consent, sms_consent;
-- NULL for an unknown field.
create or replace function public.segment__kind(p_field text)
returns text
language sql immutable
set search_path = ''
as $$
    select case
        when p_field in ('email', 'phone', 'first_name', 'last_name') then 'text'
        when p_field = 'source' then 'source'
        when p_field = 'created_at' then 'time'
        when p_field = 'consent.email' then 'email_consent'
        when p_field = 'consent.sms' then 'sms_consent'
        when p_field like 'attributes.%' then 'attr'
    end
$$;

-- The operators a kind of field accepts, in the order the builder lists them.
create or replace function public.segment__ops(p_kind text)
returns text[]
language sql immutable
set search_path = ''
as $$
    select case p_kind
        when 'text' then array['eq', 'neq', 'contains', 'starts_with', 'ends_with', 'in', 'is_null', 'not_null']
        when 'source' then array['eq', 'neq', 'in']
        when 'time' then array['gt', 'gte', 'lt', 'lte', 'within_days']
        when 'attr' then array['eq', 'neq', 'contains', 'starts_with', 'ends_with', 'gt', 'gte', 'lt', 'lte',
                               'in', 'is_null', 'not_null', 'within_days']
        when 'email_consent' then array['eq', 'neq', 'in']
        when 'sms_consent' then array['eq', 'neq', 'in']
    end
$$;

-- The values a kind of field is limited to (NULL: any string).
create or replace function public.segment__choices(p_kind text)
returns text[]
language sql immutable
set search_path = ''
as $$
    select case p_kind
        when 'source' then array['manual', 'import', 'api', 'web_form']
        when 'email_consent' then array['subscribed', 'unsubscribed', 'none']
        when 'sms_consent' then array['opted_in', 'opted_out', 'none']
    end
$$;

-- A date (2026-01-31: midnight in p_tz) or a timestamp with an explicit zone
-- (2026-01-31T09:00:00Z, ...+02:00) as timestamptz; NULL when p_value is neither
-- (also for impossible dates such as 2026-02-30). Never depends on the session's
-- TimeZone.
create or replace function public.segment__timestamp(p_value text, p_tz text)
returns timestamptz
language plpgsql immutable
set search_path = ''
as $$
begin
    if p_value ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' then
        return pg_catalog.timezone(p_tz, p_value::date::timestamp);
    end if;
    if p_value ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)$' then
        return p_value::timestamptz;
    end if;
    return null;
exception
    when datetime_field_overflow or invalid_datetime_format or invalid_parameter_value then
        return null;
end
$$;

-- A decimal number (as JSON writes them) as numeric; NULL for anything else.
create or replace function public.segment__numeric(p_value text)
returns numeric
language sql immutable
set search_path = ''
as $$
    select case when p_value ~ '^\s*-?[0-9]{1,30}(\.[0-9]{1,30})?([eE][-+]?[0-9]{1,3})?\s*$'
                then p_value::numeric end
$$;

-- The elements of a JSON array of scalars as lower-cased text (for "in").
create or replace function public.segment__lower_texts(p_values jsonb)
returns text[]
language sql immutable
set search_path = ''
as $$
    select coalesce(pg_catalog.array_agg(pg_catalog.lower(e)), '{}')
    from pg_catalog.jsonb_array_elements_text(p_values) as t(e)
$$;

-- ---------------------------------------------------------------------------
-- Validation
-- ---------------------------------------------------------------------------

-- What is wrong with one scalar value of a condition (without its path), or NULL.
create or replace function public.segment__scalar_problem(p_kind text, p_op text, p_value jsonb)
returns text
language plpgsql immutable
set search_path = ''
as $$
declare
    v_type text := pg_catalog.jsonb_typeof(p_value);
    v_text text := p_value #>> '{}';
    v_choices text[] := public.segment__choices(p_kind);
begin
    if v_type = 'string' and pg_catalog.length(v_text) > 1000 then
        return 'a value has at most 1000 characters';
    end if;
    if v_choices is not null then
        if v_type is distinct from 'string' or not v_text = any (v_choices) then
            return 'must be one of: ' || pg_catalog.array_to_string(v_choices, ', ');
        end if;
        return null;
    end if;
    if p_op in ('contains', 'starts_with', 'ends_with') then
        if v_type is distinct from 'string' or v_text = '' then
            return 'must be a non-empty string';
        end if;
    elsif p_op in ('gt', 'gte', 'lt', 'lte') then
        if not ((p_kind = 'attr' and v_type = 'number')
                or (v_type = 'string' and public.segment__timestamp(v_text, 'UTC') is not null)) then
            return case when p_kind = 'attr'
                        then 'must be a number, a date (2026-01-31) or a timestamp with a time zone (2026-01-31T09:00:00Z)'
                        else 'must be a date (2026-01-31) or a timestamp with a time zone (2026-01-31T09:00:00Z)' end;
        end if;
    elsif p_kind = 'attr' then -- eq, neq, in
        if v_type is null or v_type not in ('string', 'number', 'boolean') then
            return 'must be a string, a number or a boolean';
        end if;
    elsif v_type is distinct from 'string' then -- text fields: eq, neq, in
        return 'must be a string';
    end if;
    return null;
end
$$;

-- What is wrong with the value of a condition (without its path), or NULL.
create or replace function public.segment__value_problem(p_kind text, p_op text, p_cond jsonb)
returns text
language plpgsql immutable
set search_path = ''
as $$
declare
    v_value jsonb := p_cond -> 'value';
    v_problem text;
    v_i integer;
begin
    if p_op in ('is_null', 'not_null') then
        if v_value is not null and v_value <> 'null'::jsonb then
            return 'must be left out: ' || p_op || ' takes no value';
        end if;
        return null;
    end if;
    if v_value is null then
        return 'is required for ' || p_op;
    end if;
    if p_op = 'within_days' then
        if pg_catalog.jsonb_typeof(v_value) is distinct from 'number'
           or (v_value #>> '{}')::numeric not between 0 and 36500
           or (v_value #>> '{}')::numeric <> pg_catalog.trunc((v_value #>> '{}')::numeric) then
            return 'must be a whole number of days from 0 to 36500';
        end if;
        return null;
    end if;
    if p_op = 'in' then
        if pg_catalog.jsonb_typeof(v_value) is distinct from 'array'
           or pg_catalog.jsonb_array_length(v_value) not between 1 and 1000 then
            return 'must be an array of 1 to 1000 values';
        end if;
        for v_i in 0 .. pg_catalog.jsonb_array_length(v_value) - 1 loop
            v_problem := public.segment__scalar_problem(p_kind, 'eq', v_value -> v_i);
            if v_problem is not null then
                return 'item ' || v_i || ' ' || v_problem;
            end if;
        end loop;
        return null;
    end if;
    return public.segment__scalar_problem(p_kind, p_op, v_value);
end
$$;

-- What is wrong with one condition at p_path, as "rules.<path>.<key>: problem", or NULL.
create or replace function public.segment__condition_problem(p_cond jsonb, p_path text[])
returns text
language plpgsql immutable
set search_path = ''
as $$
declare
    v_key text;
    v_field text := p_cond ->> 'field';
    v_op text := p_cond ->> 'op';
    v_kind text;
    v_problem text;
begin
    for v_key in select k from pg_catalog.jsonb_object_keys(p_cond) as t(k) order by k loop
        if v_key not in ('field', 'op', 'value') then
            return public.segment__at(p_path) || ': unknown key ' || pg_catalog.to_jsonb(v_key)::text
                || ' (a condition has "field", "op" and "value"; a group has one key, "all" or "any")';
        end if;
    end loop;
    if pg_catalog.jsonb_typeof(p_cond -> 'field') is distinct from 'string' then
        return public.segment__at(p_path || '{field}'::text[]) || ': is required (a string)';
    end if;
    v_kind := public.segment__kind(v_field);
    if v_kind is null then
        return public.segment__at(p_path || '{field}'::text[]) || ': unknown field ' || pg_catalog.to_jsonb(v_field)::text
            || ' (fields: email, phone, first_name, last_name, source, created_at, attributes.<key>, consent.email, consent.sms)';
    end if;
    if v_kind = 'attr' and pg_catalog.length(v_field) not between 12 and 111 then
        return public.segment__at(p_path || '{field}'::text[]) || ': an attribute name has 1 to 100 characters';
    end if;
    if pg_catalog.jsonb_typeof(p_cond -> 'op') is distinct from 'string' then
        return public.segment__at(p_path || '{op}'::text[]) || ': is required (a string)';
    end if;
    if not v_op = any (public.segment__ops('attr')) then
        return public.segment__at(p_path || '{op}'::text[]) || ': unknown operator ' || pg_catalog.to_jsonb(v_op)::text;
    end if;
    if not v_op = any (public.segment__ops(v_kind)) then
        return public.segment__at(p_path || '{op}'::text[]) || ': operator ' || pg_catalog.to_jsonb(v_op)::text
            || ' does not apply to field ' || pg_catalog.to_jsonb(v_field)::text
            || ' (use one of: ' || pg_catalog.array_to_string(public.segment__ops(v_kind), ', ') || ')';
    end if;
    v_problem := public.segment__value_problem(v_kind, v_op, p_cond);
    if v_problem is not null then
        return public.segment__at(p_path || '{value}'::text[]) || ': ' || v_problem;
    end if;
    return null;
end
$$;

-- What is wrong with the node (group or condition) at p_path, p_depth groups
-- deep, or NULL.
create or replace function public.segment__node_problem(p_node jsonb, p_path text[], p_depth integer)
returns text
language plpgsql immutable
set search_path = ''
as $$
declare
    v_key text;
    v_items jsonb;
    v_problem text;
    v_i integer;
begin
    if pg_catalog.jsonb_typeof(p_node) is distinct from 'object' or (p_depth = 0 and not (p_node ? 'all' or p_node ? 'any')) then
        if p_depth = 0 then
            return 'rules: must be a group {"all": [...]} or {"any": [...]}';
        end if;
        return public.segment__at(p_path)
            || ': must be a group {"all": [...]} or {"any": [...]}, or a condition {"field": ..., "op": ..., "value": ...}';
    end if;
    if not (p_node ? 'all' or p_node ? 'any') then
        return public.segment__condition_problem(p_node, p_path);
    end if;
    if (select pg_catalog.count(*) from pg_catalog.jsonb_object_keys(p_node)) <> 1 then
        return public.segment__at(p_path) || ': a group has exactly one key, "all" or "any"';
    end if;
    v_key := case when p_node ? 'all' then 'all' else 'any' end;
    v_items := p_node -> v_key;
    if pg_catalog.jsonb_typeof(v_items) is distinct from 'array' then
        return public.segment__at(p_path || v_key) || ': must be an array of conditions and groups';
    end if;
    if p_depth >= 5 then
        return public.segment__at(p_path) || ': groups nest at most 5 deep';
    end if;
    if pg_catalog.jsonb_array_length(v_items) > 100 then
        return public.segment__at(p_path || v_key) || ': a group has at most 100 items';
    end if;
    for v_i in 0 .. pg_catalog.jsonb_array_length(v_items) - 1 loop
        v_problem := public.segment__node_problem(v_items -> v_i, p_path || array[v_key, v_i::text], p_depth + 1);
        if v_problem is not null then
            return v_problem;
        end if;
    end loop;
    return null;
end
$$;

-- What is wrong with a rules document, as "rules.all[2].op: unknown operator
-- \"like\"", or NULL when it is valid.
create or replace function public.segment_rules_problem(p_rules jsonb)
returns text
language plpgsql immutable
set search_path = ''
as $$
begin
    if p_rules is null then
        return 'rules: is required';
    end if;
    if pg_catalog.octet_length(p_rules::text) > 65536 then
        return 'rules: at most 64 KB';
    end if;
    if (select pg_catalog.count(*) from pg_catalog.jsonb_path_query(p_rules, 'strict $.** ? (@.type() == "object")')) > 500 then
        return 'rules: at most 500 groups and conditions';
    end if;
    return public.segment__node_problem(p_rules, '{}'::text[], 0);
end
$$;

-- Raises 22023 with the problem of p_rules as the message; nothing when valid.
create or replace function public.segment__check(p_rules jsonb)
returns void
language plpgsql immutable
set search_path = ''
as $$
declare
    v_problem text := public.segment_rules_problem(p_rules);
begin
    if v_problem is not null then
        raise exception '%', v_problem using errcode = '22023', hint = 'The rules format is in docs/segments.md.';
    end if;
end
$$;

-- ---------------------------------------------------------------------------
-- The compiler
-- ---------------------------------------------------------------------------

-- The predicate of one condition at p_path (valid: checked by the caller).
-- Every fragment is fixed text; values are ($1 #>> '<path>'), paths made of
-- "all" / "any" / positions only.
create or replace function public.segment__condition_sql(p_cond jsonb, p_path text[])
returns text
language plpgsql immutable
set search_path = ''
as $$
declare
    v_field text := p_cond ->> 'field';
    v_op text := p_cond ->> 'op';
    v_kind text := public.segment__kind(v_field);
    v_num boolean := pg_catalog.jsonb_typeof(p_cond -> 'value') = 'number';
    -- the value as text, the value as jsonb
    v text := pg_catalog.format('($1 #>> %L::text[])', p_path || '{value}'::text[]);
    j text := pg_catalog.format('($1 #> %L::text[])', p_path || '{value}'::text[]);
    x text; -- the field as text
    lx text; -- the field, lower-cased
    cmp text := case v_op when 'gt' then '>' when 'gte' then '>=' when 'lt' then '<' when 'lte' then '<=' end;
begin
    if v_kind = 'email_consent' then
        x := '(case when es.id is null then ''none'' when es.subscribed then ''subscribed'' else ''unsubscribed'' end)';
    elsif v_kind = 'sms_consent' then
        x := '(case when sc.id is null then ''none'' when sc.consent_given then ''opted_in'' else ''opted_out'' end)';
    elsif v_kind = 'attr' then
        x := pg_catalog.format('(c.attributes ->> pg_catalog.substr(($1 #>> %L::text[]), 12))', p_path || '{field}'::text[]);
    else
        x := case v_field
            when 'email' then 'c.email' when 'phone' then 'c.phone' when 'first_name' then 'c.first_name'
            when 'last_name' then 'c.last_name' when 'source' then 'c.source' when 'created_at' then 'c.created_at' end;
    end if;
    -- e-mail addresses are stored lower-case (a CHECK): compare the column as is, so its index serves
    lx := case when v_field = 'email' then x else 'pg_catalog.lower(' || x || ')' end;

    if v_kind in ('source', 'email_consent', 'sms_consent') then
        return case v_op
            when 'eq' then x || ' = ' || v
            when 'neq' then x || ' <> ' || v
            when 'in' then x || ' = any (public.segment__lower_texts(' || j || '))' end;
    end if;
    if v_kind = 'time' then
        if v_op = 'within_days' then
            return x || ' >= pg_catalog.now() - pg_catalog.make_interval(days => ' || v || '::numeric::integer)';
        end if;
        return x || ' ' || cmp || ' public.segment__timestamp(' || v || ', $3)';
    end if;
    -- text and attr
    if v_op = 'eq' or v_op = 'neq' then
        return case when v_op = 'neq' then 'not ' else '' end || 'coalesce('
            || case when v_num then 'public.segment__numeric(' || x || ') = ' || v || '::numeric'
                    else lx || ' = pg_catalog.lower(' || v || ')' end
            || ', false)';
    end if;
    if v_op = 'contains' then
        if v_kind = 'attr' then
            return pg_catalog.format(
                '(case pg_catalog.jsonb_typeof(c.attributes -> pg_catalog.substr(($1 #>> %L::text[]), 12))'
                ' when ''array'' then exists (select 1 from pg_catalog.jsonb_array_elements_text('
                'c.attributes -> pg_catalog.substr(($1 #>> %L::text[]), 12)) as e(t) where pg_catalog.lower(e.t) = pg_catalog.lower(%s))'
                ' when ''string'' then pg_catalog.strpos(%s, pg_catalog.lower(%s)) > 0 else false end)',
                p_path || '{field}'::text[], p_path || '{field}'::text[], v, lx, v);
        end if;
        return 'coalesce(pg_catalog.strpos(' || lx || ', pg_catalog.lower(' || v || ')) > 0, false)';
    end if;
    if v_op = 'starts_with' then
        return 'coalesce(pg_catalog.starts_with(' || lx || ', pg_catalog.lower(' || v || ')), false)';
    end if;
    if v_op = 'ends_with' then
        return 'coalesce(pg_catalog.right(' || lx || ', pg_catalog.length(pg_catalog.lower(' || v || '))) = pg_catalog.lower('
            || v || '), false)';
    end if;
    if v_op = 'in' then
        return 'coalesce(' || lx || ' = any (public.segment__lower_texts(' || j || ')), false)';
    end if;
    if v_op = 'is_null' then
        return 'nullif(pg_catalog.btrim(' || x || '), '''') is null';
    end if;
    if v_op = 'not_null' then
        return 'nullif(pg_catalog.btrim(' || x || '), '''') is not null';
    end if;
    -- attr only from here: gt gte lt lte within_days
    if v_op = 'within_days' then
        return 'coalesce(public.segment__timestamp(' || x || ', $3) between pg_catalog.now() - pg_catalog.make_interval(days => '
            || v || '::numeric::integer) and pg_catalog.now(), false)';
    end if;
    if v_num then
        return 'coalesce(public.segment__numeric(' || x || ') ' || cmp || ' ' || v || '::numeric, false)';
    end if;
    return 'coalesce(public.segment__timestamp(' || x || ', $3) ' || cmp || ' public.segment__timestamp(' || v || ', $3), false)';
end
$$;

-- The predicate of a valid node at p_path: groups become (a and b ...) / (a or b ...);
-- an empty "all" is true, an empty "any" false.
create or replace function public.segment__node_sql(p_node jsonb, p_path text[])
returns text
language plpgsql immutable
set search_path = ''
as $$
declare
    v_key text;
    v_parts text[] := '{}';
    v_i integer;
begin
    if not (p_node ? 'all' or p_node ? 'any') then
        return public.segment__condition_sql(p_node, p_path);
    end if;
    v_key := case when p_node ? 'all' then 'all' else 'any' end;
    for v_i in 0 .. pg_catalog.jsonb_array_length(p_node -> v_key) - 1 loop
        v_parts := v_parts || public.segment__node_sql(p_node -> v_key -> v_i, p_path || array[v_key, v_i::text]);
    end loop;
    if pg_catalog.cardinality(v_parts) = 0 then
        return case v_key when 'all' then 'true' else 'false' end;
    end if;
    return '(' || pg_catalog.array_to_string(v_parts, case v_key when 'all' then ' and ' else ' or ' end) || ')';
end
$$;

-- The statement text "from ... where <owner's live contacts> and <predicate>"
-- for p_rules; raises 22023 naming the problem when p_rules is not valid.
-- Parameters of the statement: $1 the rules, $2 the owner, $3 the time zone.
create or replace function public.segment__from(p_rules jsonb)
returns text
language plpgsql immutable
set search_path = ''
as $$
begin
    perform public.segment__check(p_rules);
    return ' from public.contacts c'
        || ' left join public.email_subscriptions es on es.id = c.email_subscription_id'
        || ' left join public.sms_consent sc on sc.id = c.sms_consent_id'
        || ' where c.user_id = $2 and c.deleted_at is null and ' || public.segment__node_sql(p_rules, '{}'::text[]);
end
$$;

-- The app's time zone (plain dates in rules are midnight there).
create or replace function public.segment__tz()
returns text
language sql stable
security definer
set search_path = ''
as $$
    select coalesce((select s.timezone::text from public.app_settings s limit 1), 'UTC')
$$;

revoke all on function public.segment__at(text[]), public.segment__kind(text), public.segment__ops(text),
    public.segment__choices(text), public.segment__timestamp(text, text), public.segment__numeric(text),
    public.segment__lower_texts(jsonb), public.segment__scalar_problem(text, text, jsonb),
    public.segment__value_problem(text, text, jsonb), public.segment__condition_problem(jsonb, text[]),
    public.segment__node_problem(jsonb, text[], integer), public.segment__condition_sql(jsonb, text[]),
    public.segment__node_sql(jsonb, text[]), public.segment__check(jsonb), public.segment__from(jsonb),
    public.segment__tz()
    from public, anon, authenticated;

-- segment_rules_problem is pure and reveals nothing: the builder may check rules with it.
revoke all on function public.segment_rules_problem(jsonb) from public, anon;
grant execute on function public.segment_rules_problem(jsonb) to app_admin, app_user;

-- ---------------------------------------------------------------------------
-- Membership, size and preview
-- ---------------------------------------------------------------------------

-- The live (not deleted) contacts of p_user matching p_rules: the contract of
-- the send engine. Raises 22023 when the rules are not valid. service_role only.
create or replace function public.segment_contact_ids(p_user uuid, p_rules jsonb)
returns setof uuid
language plpgsql stable
security definer
set search_path = ''
as $$
begin
    return query execute 'select c.id' || public.segment__from(p_rules)
        using p_rules, p_user, public.segment__tz();
end
$$;

revoke all on function public.segment_contact_ids(uuid, jsonb) from public, anon, authenticated;
grant execute on function public.segment_contact_ids(uuid, jsonb) to service_role;

-- The caller's id, or 42501 without one.
create or replace function public.segment__caller()
returns uuid
language plpgsql stable
set search_path = ''
as $$
begin
    if auth.uid() is null then
        raise exception 'sign in to use segments' using errcode = '42501';
    end if;
    return auth.uid();
end
$$;
revoke all on function public.segment__caller() from public, anon, authenticated;

-- The seed's calculate_segment_size, on real contacts: counts the caller's own
-- live contacts matching the caller's own segment and records the count in
-- estimated_size / last_calculated_at. Another user's segment (also an admin
-- asking for one) is "not found" (PT404).
create or replace function public.calculate_segment_size(p_segment_id uuid)
returns integer
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_user uuid := public.segment__caller();
    v_rules jsonb;
    v_count integer;
begin
    select s.rules into v_rules from public.audience_segments s
    where s.id = p_segment_id and s.user_id = v_user
    for update;
    if not found then
        raise exception 'segment not found' using errcode = 'PT404',
            hint = 'It does not exist or is not yours: a segment counts its owner''s contacts only.';
    end if;
    execute 'select pg_catalog.count(*)::integer' || public.segment__from(v_rules)
        into v_count using v_rules, v_user, public.segment__tz();
    update public.audience_segments
    set estimated_size = v_count, last_calculated_at = pg_catalog.now()
    where id = p_segment_id;
    return v_count;
end
$$;

revoke all on function public.calculate_segment_size(uuid) from public, anon, authenticated;
grant execute on function public.calculate_segment_size(uuid) to app_admin, app_user;

-- The builder's live size: {"count": n, "sample": [up to 10 contacts, newest
-- first]} of the caller's own live contacts matching p_rules (not saved).
-- Invalid rules raise 22023 naming the bad path.
create or replace function public.preview_segment(p_rules jsonb)
returns jsonb
language plpgsql stable
security definer
set search_path = ''
as $$
declare
    v_user uuid := public.segment__caller();
    v_from text := public.segment__from(p_rules);
    v_tz text := public.segment__tz();
    v_count bigint;
    v_sample jsonb;
begin
    execute 'select pg_catalog.count(*)' || v_from into v_count using p_rules, v_user, v_tz;
    execute 'select coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(x)), ''[]'') from ('
        || 'select c.id, c.email, c.phone, c.first_name, c.last_name' || v_from
        || ' order by c.created_at desc, c.id limit 10) x'
        into v_sample using p_rules, v_user, v_tz;
    return pg_catalog.jsonb_build_object('count', v_count, 'sample', v_sample);
end
$$;

revoke all on function public.preview_segment(jsonb) from public, anon, authenticated;
grant execute on function public.preview_segment(jsonb) to app_admin, app_user;

-- ---------------------------------------------------------------------------
-- Validation on write
-- ---------------------------------------------------------------------------

-- BEFORE INSERT / UPDATE OF rules: rejects invalid rules with 22023 and the bad
-- path. The size is only ever computed by calculate_segment_size: a new
-- segment has none, and a change of the rules forgets the old one.
-- SECURITY DEFINER: the validator's helpers are not granted to API roles.
create or replace function public.audience_segments_check_rules()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    perform public.segment__check(new.rules);
    if tg_op = 'INSERT' or new.rules is distinct from old.rules then
        new.estimated_size := null;
        new.last_calculated_at := null;
    end if;
    return new;
end
$$;

revoke all on function public.audience_segments_check_rules() from public, anon, authenticated;

create trigger check_rules before insert or update of rules on public.audience_segments
    for each row execute function public.audience_segments_check_rules();
