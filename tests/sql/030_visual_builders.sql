-- tests/sql/030_visual_builders.sql: segment rules (migrations/030_visual_builders.sql):
-- every field x op on a fixed set of contacts, nesting, empty groups, the owner
-- and soft delete, injection attempts through values and attribute keys,
-- validation on write with the bad path named, calculate_segment_size on the
-- caller's own segments only, preview_segment, and who may call what.
BEGIN;
SELECT plan(146);

SELECT tests.create_user('seg-alice@example.test', 'user') AS alice \gset
SELECT tests.create_user('seg-bob@example.test', 'user') AS bob \gset
SELECT tests.create_user('seg-admin@example.test', 'admin') AS admin \gset
SELECT tests.create_user('seg-viewer@example.test', 'viewer') AS viewer \gset

-- Consent: ann's e-mail subscribed, bob's unsubscribed; ann's phone opted in,
-- cy's opted out; dee has neither (none).
INSERT INTO public.email_subscriptions (email, subscribed) VALUES ('ann@shop.example', true), ('bob@mail.example', false);
INSERT INTO public.sms_consent (phone_number, consent_given, consent_source)
VALUES ('+15550000001', true, 'manual'), ('+15550000003', false, 'manual');

-- Alice's contacts Ann, Bob, Cy, Dee (live) and Eve (deleted); Bob's contact Fay.
-- The app's time zone is America/New_York: the plain date 2025-06-15 is
-- 2025-06-15T04:00:00Z, after Bob's creation at 03:00Z.
INSERT INTO public.contacts (user_id, email, phone, first_name, last_name, source, attributes, created_at, deleted_at) VALUES
 (:'alice', 'ann@shop.example', '+15550000001', 'Ann', 'Lee', 'import',
  jsonb_build_object('company', 'Acme Corp', 'score', 42, 'tags', jsonb_build_array('VIP', 'beta'), 'vip', true,
                     'last_order', to_char(now() - interval '3 days', 'YYYY-MM-DD"T"HH24:MI:SSOF'),
                     'it''s {odd}, "key"', 'yes'),
  now() - interval '2 days', NULL),
 (:'alice', 'bob@mail.example', NULL, 'Bob', 'Stone', 'manual',
  '{"company": "Beta LLC", "score": "7", "tags": "newsletter"}', '2025-06-15T03:00:00Z', NULL),
 (:'alice', NULL, '+15550000003', 'Cy', NULL, 'api',
  '{"score": 100.5, "last_order": "2020-01-01", "company": null}', '2025-07-01T12:00:00Z', NULL),
 (:'alice', 'dee@shop.example', '+15550000004', 'Dee', '', 'web_form', '{}', now() - interval '40 days', NULL),
 (:'alice', 'eve@shop.example', '+15550000005', 'Eve', 'Lee', 'import',
  '{"company": "Acme Corp", "score": 42, "tags": ["VIP"]}', now() - interval '1 day', now()),
 (:'bob', 'fay@shop.example', '+15550000006', 'Fay', 'Lee', 'import',
  '{"company": "Acme Corp", "score": 42, "tags": ["VIP"]}', now() - interval '1 day', NULL);

-- The first names of p_user's contacts matching p_rules, sorted: 'Ann,Dee'.
CREATE FUNCTION pg_temp.m(p_rules text, p_user uuid) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(c.first_name, ',' ORDER BY c.first_name), '')
    FROM public.segment_contact_ids(p_user, p_rules::jsonb) AS s(id) JOIN public.contacts c ON c.id = s.id
$$;
-- One condition of Alice's.
CREATE FUNCTION pg_temp.c(p_field text, p_op text, p_value jsonb) RETURNS text LANGUAGE sql AS $$
    SELECT pg_temp.m(jsonb_build_object('all', jsonb_build_array(
        jsonb_strip_nulls(jsonb_build_object('field', p_field, 'op', p_op, 'value', p_value))))::text,
        (SELECT id FROM auth.users WHERE email = 'seg-alice@example.test'))
$$;
CREATE FUNCTION pg_temp.problem(p_rules text) RETURNS text LANGUAGE sql AS $$
    SELECT public.segment_rules_problem(p_rules::jsonb)
$$;

-- ---------------------------------------------------------------------------
-- Every field x op (63)
-- ---------------------------------------------------------------------------
SELECT is(pg_temp.c(f, o, v::jsonb), want, f || ' ' || o || ' ' || coalesce(v, ''))
FROM (VALUES
    ('email', 'eq', '"ANN@shop.example"', 'Ann'),
    ('email', 'neq', '"ann@shop.example"', 'Bob,Cy,Dee'),
    ('email', 'contains', '"SHOP"', 'Ann,Dee'),
    ('email', 'starts_with', '"bob"', 'Bob'),
    ('email', 'ends_with', '".example"', 'Ann,Bob,Dee'),
    ('email', 'in', '["dee@shop.example", "nobody@x.example"]', 'Dee'),
    ('email', 'is_null', NULL, 'Cy'),
    ('email', 'not_null', NULL, 'Ann,Bob,Dee'),
    ('phone', 'eq', '"+15550000003"', 'Cy'),
    ('phone', 'neq', '"+15550000003"', 'Ann,Bob,Dee'),
    ('phone', 'contains', '"0000"', 'Ann,Cy,Dee'),
    ('phone', 'starts_with', '"+1555"', 'Ann,Cy,Dee'),
    ('phone', 'ends_with', '"04"', 'Dee'),
    ('phone', 'in', '["+15550000001", "+15550000004"]', 'Ann,Dee'),
    ('phone', 'is_null', NULL, 'Bob'),
    ('phone', 'not_null', NULL, 'Ann,Cy,Dee'),
    ('first_name', 'eq', '"ann"', 'Ann'),
    ('first_name', 'neq', '"Ann"', 'Bob,Cy,Dee'),
    ('first_name', 'contains', '"E"', 'Dee'),
    ('first_name', 'starts_with', '"c"', 'Cy'),
    ('first_name', 'ends_with', '"OB"', 'Bob'),
    ('first_name', 'in', '["cy", "BOB"]', 'Bob,Cy'),
    ('first_name', 'is_null', NULL, ''),
    ('first_name', 'not_null', NULL, 'Ann,Bob,Cy,Dee'),
    ('last_name', 'eq', '"stone"', 'Bob'),
    ('last_name', 'neq', '"Lee"', 'Bob,Cy,Dee'),
    ('last_name', 'contains', '"to"', 'Bob'),
    ('last_name', 'starts_with', '"L"', 'Ann'),
    ('last_name', 'ends_with', '"ONE"', 'Bob'),
    ('last_name', 'in', '["lee"]', 'Ann'),
    ('last_name', 'is_null', NULL, 'Cy,Dee'),
    ('last_name', 'not_null', NULL, 'Ann,Bob'),
    ('source', 'eq', '"import"', 'Ann'),
    ('source', 'neq', '"import"', 'Bob,Cy,Dee'),
    ('source', 'in', '["api", "web_form"]', 'Cy,Dee'),
    ('created_at', 'within_days', '7', 'Ann'),
    ('created_at', 'within_days', '60', 'Ann,Dee'),
    ('created_at', 'within_days', '60.0', 'Ann,Dee'),
    ('created_at', 'gt', '"2025-06-20"', 'Ann,Cy,Dee'),
    ('created_at', 'lt', '"2025-06-15"', 'Bob'),
    ('created_at', 'gte', '"2025-07-01T12:00:00Z"', 'Ann,Cy,Dee'),
    ('created_at', 'lte', '"2025-07-01T14:00:00+02:00"', 'Bob,Cy'),
    ('attributes.company', 'eq', '"acme corp"', 'Ann'),
    ('attributes.company', 'neq', '"Acme Corp"', 'Bob,Cy,Dee'),
    ('attributes.company', 'contains', '"llc"', 'Bob'),
    ('attributes.company', 'starts_with', '"AC"', 'Ann'),
    ('attributes.company', 'ends_with', '"corp"', 'Ann'),
    ('attributes.company', 'in', '["Beta LLC", "Other"]', 'Bob'),
    ('attributes.company', 'is_null', NULL, 'Cy,Dee'),
    ('attributes.company', 'not_null', NULL, 'Ann,Bob'),
    ('attributes.score', 'eq', '42', 'Ann'),
    ('attributes.score', 'eq', '"7"', 'Bob'),
    ('attributes.score', 'gt', '10', 'Ann,Cy'),
    ('attributes.score', 'gte', '100.5', 'Cy'),
    ('attributes.score', 'lt', '50', 'Ann,Bob'),
    ('attributes.score', 'lte', '7', 'Bob'),
    ('attributes.tags', 'contains', '"vip"', 'Ann'),
    ('attributes.tags', 'contains', '"NEWS"', 'Bob'),
    ('attributes.vip', 'eq', 'true', 'Ann'),
    ('attributes.last_order', 'within_days', '7', 'Ann'),
    ('attributes.last_order', 'within_days', '7.00', 'Ann'),
    ('attributes.last_order', 'lt', '"2021-01-01"', 'Cy'),
    ('attributes.last_order', 'gte', '"2021-01-01T00:00:00Z"', 'Ann')
) AS t(f, o, v, want);

-- consent (10)
SELECT is(pg_temp.c(f, o, v::jsonb), want, f || ' ' || o || ' ' || v)
FROM (VALUES
    ('consent.email', 'eq', '"subscribed"', 'Ann'),
    ('consent.email', 'eq', '"unsubscribed"', 'Bob'),
    ('consent.email', 'eq', '"none"', 'Cy,Dee'),
    ('consent.email', 'neq', '"subscribed"', 'Bob,Cy,Dee'),
    ('consent.email', 'in', '["subscribed", "unsubscribed"]', 'Ann,Bob'),
    ('consent.sms', 'eq', '"opted_in"', 'Ann'),
    ('consent.sms', 'eq', '"opted_out"', 'Cy'),
    ('consent.sms', 'eq', '"none"', 'Bob,Dee'),
    ('consent.sms', 'neq', '"opted_in"', 'Bob,Cy,Dee'),
    ('consent.sms', 'in', '["opted_out", "none"]', 'Bob,Cy,Dee')
) AS t(f, o, v, want);

-- ---------------------------------------------------------------------------
-- Groups, owners, deleted contacts (8)
-- ---------------------------------------------------------------------------
SELECT is(pg_temp.m('{"all": []}', :'alice'), 'Ann,Bob,Cy,Dee', 'an empty all: every live contact of the owner (not Eve, deleted; not Fay, Bob''s)');
SELECT is(pg_temp.m('{"all": []}', :'bob'), 'Fay', 'another owner: only their own contacts');
SELECT is(pg_temp.m('{"any": []}', :'alice'), '', 'an empty any matches nobody');
SELECT is(pg_temp.m('{"any": [{"all": [{"field": "email", "op": "contains", "value": "shop"}, {"field": "consent.email", "op": "eq", "value": "none"}]},
                              {"field": "source", "op": "eq", "value": "manual"}]}', :'alice'),
          'Bob,Dee', 'any of (all of e-mail and consent) or source');
SELECT is(pg_temp.m('{"all": [{"any": [{"field": "first_name", "op": "eq", "value": "Ann"}, {"field": "first_name", "op": "eq", "value": "Cy"}]},
                              {"any": [{"field": "consent.sms", "op": "eq", "value": "opted_out"}, {"field": "last_name", "op": "eq", "value": "Stone"}]}]}', :'alice'),
          'Cy', 'all of two any groups');
SELECT is(pg_temp.m('{"all": [{"all": [{"all": [{"all": [{"any": [{"field": "first_name", "op": "eq", "value": "Dee"}]}]}]}]}]}', :'alice'),
          'Dee', 'five levels of groups');
SELECT is(pg_temp.m('{"all": [{"field": "email", "op": "contains", "value": "shop"}]}', :'bob'), 'Fay', 'the same rules for Bob count Bob''s contacts');
SELECT is(pg_temp.m('{"all": [{"field": "attributes.it''s {odd}, \"key\"", "op": "eq", "value": "YES"}]}', :'alice'),
          'Ann', 'an attribute key with quotes, braces and a comma is data');

-- ---------------------------------------------------------------------------
-- Injection attempts are inert (9)
-- ---------------------------------------------------------------------------
SELECT is(pg_temp.c('email', 'eq', to_jsonb($$'); drop table public.contacts; --$$::text)), '', 'a value closing a quote: no match, nothing run');
SELECT is(pg_temp.c('attributes.x''); drop table public.contacts; --', 'eq', '"a"'), '', 'an attribute key closing a quote');
SELECT is(pg_temp.c('attributes.x'' = '''' or true) or (''1', 'is_null', NULL), 'Ann,Bob,Cy,Dee',
          'an attribute key with an OR: just a missing attribute (is_null matches all)');
SELECT is(pg_temp.c('attributes.}', 'not_null', NULL), '', 'an attribute key "}" (a path delimiter)');
SELECT is(pg_temp.c('first_name', 'contains', '"%"'), '', 'contains "%": no LIKE wildcard');
SELECT is(pg_temp.c('first_name', 'starts_with', '"_"'), '', 'starts_with "_": no LIKE wildcard');
SELECT is(pg_temp.c('email', 'in', to_jsonb(ARRAY[$$x') or true or ('$$, $$"$$])), '', 'in: hostile strings are values');
SELECT is(tests.error_of($$SELECT pg_temp.c('attributes.score', 'gt', '"1'') or true or (''1"')$$), '22023 The rules format is in docs/segments.md.',
          'a hostile date is refused (22023) before it reaches SQL');
SELECT has_table('public', 'contacts', 'public.contacts still exists');

-- ---------------------------------------------------------------------------
-- Validation messages (22)
-- ---------------------------------------------------------------------------
SELECT is(pg_temp.problem(r), want, coalesce(want, 'valid: ' || r))
FROM (VALUES
    ('{"all": []}', NULL),
    ('[]', 'rules: must be a group {"all": [...]} or {"any": [...]}'),
    ('{"field": "email", "op": "eq", "value": "a"}', 'rules: must be a group {"all": [...]} or {"any": [...]}'),
    ('{"all": [], "any": []}', 'rules: a group has exactly one key, "all" or "any"'),
    ('{"all": {}}', 'rules.all: must be an array of conditions and groups'),
    ('{"all": [{"field": "email", "op": "eq", "value": "a"}, 3]}',
     'rules.all[1]: must be a group {"all": [...]} or {"any": [...]}, or a condition {"field": ..., "op": ..., "value": ...}'),
    ('{"all": [{"field": "email", "op": "eq", "value": "a"}, {"field": "email", "op": "eq", "value": "b"}, {"field": "email", "op": "like", "value": "%"}]}',
     'rules.all[2].op: unknown operator "like"'),
    ('{"any": [{"all": [{"field": "nope", "op": "eq", "value": "a"}]}]}',
     'rules.any[0].all[0].field: unknown field "nope" (fields: email, phone, first_name, last_name, source, created_at, attributes.<key>, consent.email, consent.sms)'),
    ('{"all": [{"op": "eq", "value": "a"}]}', 'rules.all[0].field: is required (a string)'),
    ('{"all": [{"field": "email", "value": "a"}]}', 'rules.all[0].op: is required (a string)'),
    ('{"all": [{"field": "email", "op": "eq"}]}', 'rules.all[0].value: is required for eq'),
    ('{"all": [{"field": "email", "op": "eq", "value": "a", "sql": "x"}]}',
     'rules.all[0]: unknown key "sql" (a condition has "field", "op" and "value"; a group has one key, "all" or "any")'),
    ('{"all": [{"field": "email", "op": "gt", "value": "a"}]}',
     'rules.all[0].op: operator "gt" does not apply to field "email" (use one of: eq, neq, contains, starts_with, ends_with, in, is_null, not_null)'),
    ('{"all": [{"field": "email", "op": "eq", "value": 3}]}', 'rules.all[0].value: must be a string'),
    ('{"all": [{"field": "email", "op": "contains", "value": ""}]}', 'rules.all[0].value: must be a non-empty string'),
    ('{"all": [{"field": "email", "op": "is_null", "value": "x"}]}', 'rules.all[0].value: must be left out: is_null takes no value'),
    ('{"all": [{"field": "source", "op": "eq", "value": "fax"}]}', 'rules.all[0].value: must be one of: manual, import, api, web_form'),
    ('{"all": [{"field": "consent.sms", "op": "in", "value": ["opted_in", "subscribed"]}]}',
     'rules.all[0].value: item 1 must be one of: opted_in, opted_out, none'),
    ('{"all": [{"field": "created_at", "op": "gt", "value": "2026-02-30"}]}',
     'rules.all[0].value: must be a date (2026-01-31) or a timestamp with a time zone (2026-01-31T09:00:00Z)'),
    ('{"all": [{"field": "created_at", "op": "within_days", "value": 1.5}]}', 'rules.all[0].value: must be a whole number of days from 0 to 36500'),
    ('{"all": [{"field": "attributes.", "op": "eq", "value": "a"}]}', 'rules.all[0].field: an attribute name has 1 to 100 characters'),
    ('{"all": [{"all": [{"all": [{"all": [{"all": [{"all": []}]}]}]}]}]}', 'rules.all[0].all[0].all[0].all[0].all[0]: groups nest at most 5 deep')
) AS t(r, want);

-- Limits (4)
SELECT is(pg_temp.problem(jsonb_build_object('all', (SELECT jsonb_agg('{"field": "email", "op": "eq", "value": "a"}'::jsonb) FROM generate_series(1, 101)))::text),
          'rules.all: a group has at most 100 items', 'at most 100 items per group');
SELECT is(pg_temp.problem(jsonb_build_object('all', (SELECT jsonb_agg(jsonb_build_object('any', (SELECT jsonb_agg('{"field": "email", "op": "eq", "value": "a"}'::jsonb) FROM generate_series(1, 100)))) FROM generate_series(1, 6)))::text),
          'rules: at most 500 groups and conditions', 'at most 500 groups and conditions in all');
SELECT is(pg_temp.problem(jsonb_build_object('all', jsonb_build_array(jsonb_build_object('field', 'email', 'op', 'in', 'value', (SELECT jsonb_agg(i) FROM generate_series(1, 20000) i))))::text),
          'rules: at most 64 KB', 'at most 64 KB');
SELECT is(pg_temp.problem(jsonb_build_object('all', jsonb_build_array(jsonb_build_object('field', 'email', 'op', 'eq', 'value', repeat('x', 1001))))::text),
          'rules.all[0].value: a value has at most 1000 characters', 'a string value has at most 1000 characters');

-- segment_contact_ids refuses invalid rules too (1)
SELECT is(tests.error_of($$SELECT public.segment_contact_ids(gen_random_uuid(), '{"all": [{"field": "email", "op": "like", "value": "x"}]}')$$),
          '22023 The rules format is in docs/segments.md.', 'segment_contact_ids: invalid rules raise 22023');

-- ---------------------------------------------------------------------------
-- Property (4): random documents, hostile parts included: every document the
-- validator accepts compiles and runs; every other one raises 22023 when run.
-- ---------------------------------------------------------------------------
CREATE FUNCTION pg_temp.pick(a text[]) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT a[1 + floor(random() * cardinality(a))::int]
$$;
CREATE FUNCTION pg_temp.rnd_cond() RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_field text := pg_temp.pick(ARRAY['email', 'phone', 'first_name', 'last_name', 'source', 'created_at', 'consent.email',
        'consent.sms', 'attributes.plan', 'attributes.score', 'attributes.x''); drop table public.contacts; --', 'nope', '']);
    v_kind text := public.segment__kind(v_field);
    v_op text := CASE WHEN v_kind IS NOT NULL AND random() < 0.8 THEN pg_temp.pick(public.segment__ops(v_kind))
                      ELSE pg_temp.pick(ARRAY['eq', 'gt', 'in', 'within_days', 'is_null', 'like', 'EQ']) END;
    -- a value that fits the field and op, most of the time
    v_good jsonb := CASE
        WHEN v_op IN ('is_null', 'not_null') THEN 'null'
        WHEN v_op = 'within_days' THEN '30'
        WHEN public.segment__choices(v_kind) IS NOT NULL AND v_op = 'in' THEN to_jsonb(public.segment__choices(v_kind))
        WHEN public.segment__choices(v_kind) IS NOT NULL THEN to_jsonb(pg_temp.pick(public.segment__choices(v_kind)))
        WHEN v_op = 'in' THEN '["a", 1]'
        WHEN v_op IN ('gt', 'gte', 'lt', 'lte') THEN to_jsonb(pg_temp.pick(ARRAY['2026-01-01', '2026-01-01T00:00:00Z']))
        ELSE '"a"' END;
BEGIN
    IF random() < 0.6 THEN
        RETURN jsonb_strip_nulls(jsonb_build_object('field', v_field, 'op', v_op, 'value', v_good));
    END IF;
    RETURN jsonb_strip_nulls(jsonb_build_object('field', v_field, 'op', v_op, 'value', pg_temp.pick(ARRAY[
        '"a"', '"SHOP"', '""', '1', '1.5', '30', '30.0', '1e2', '-3', 'true', 'null', 'null', 'null', '["a", 1]', '["opted_in", "none"]',
        '["import"]', '[]', '[{}]', '"2026-01-01"', '"2026-01-01T00:00:00Z"', '"2026-13-01"', '"opted_in"',
        '"subscribed"', '"import"', '{}', '"%"', '"x''); drop table public.contacts; --"'])::jsonb));
END $$;
CREATE FUNCTION pg_temp.rnd_node(p_depth int) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE v_items jsonb := '[]';
BEGIN
    FOR i IN 1 .. floor(random() * 4)::int LOOP
        v_items := v_items || jsonb_build_array(CASE WHEN p_depth < 3 AND random() < 0.25 THEN pg_temp.rnd_node(p_depth + 1)
                                                     ELSE pg_temp.rnd_cond() END);
    END LOOP;
    RETURN jsonb_build_object(CASE WHEN random() < 0.5 THEN 'all' ELSE 'any' END, v_items);
END $$;
CREATE FUNCTION pg_temp.outcome(p_rules jsonb, p_user uuid) RETURNS text LANGUAGE plpgsql AS $$
DECLARE v_refused boolean := public.segment_rules_problem(p_rules) IS NOT NULL;
BEGIN
    PERFORM count(*) FROM public.segment_contact_ids(p_user, p_rules);
    RETURN CASE WHEN v_refused THEN 'refused but ran' ELSE 'ran' END;
EXCEPTION WHEN OTHERS THEN
    RETURN CASE WHEN v_refused AND SQLSTATE = '22023' THEN 'refused' ELSE 'error ' || SQLSTATE || ': ' || SQLERRM END;
END $$;
SELECT setseed(0.3013);
CREATE TEMP TABLE fuzz AS SELECT r, pg_temp.outcome(r, :'alice') AS outcome
FROM (SELECT pg_temp.rnd_node(0) AS r FROM generate_series(1, 300)) t;
SELECT is((SELECT count(*) FROM fuzz WHERE outcome NOT IN ('ran', 'refused')), 0::bigint,
          'random documents: accepted ones run, refused ones raise 22023 '
          || coalesce((SELECT outcome || ' ' || r::text FROM fuzz WHERE outcome NOT IN ('ran', 'refused') LIMIT 1), ''));
SELECT cmp_ok((SELECT count(*) FROM fuzz WHERE outcome = 'ran' AND r::text LIKE '%"op"%'), '>=', 30::bigint,
              'random documents: at least 30 accepted ones with conditions');
SELECT cmp_ok((SELECT count(*) FROM fuzz WHERE outcome = 'refused'), '>=', 30::bigint, 'random documents: at least 30 refused');
SELECT has_table('public', 'contacts', 'public.contacts survived the random documents');

-- ---------------------------------------------------------------------------
-- Who may call what (6)
-- ---------------------------------------------------------------------------
SELECT ok(has_function_privilege('service_role', 'public.segment_contact_ids(uuid, jsonb)', 'EXECUTE')
          AND NOT has_function_privilege('authenticated', 'public.segment_contact_ids(uuid, jsonb)', 'EXECUTE')
          AND NOT has_function_privilege('app_user', 'public.segment_contact_ids(uuid, jsonb)', 'EXECUTE')
          AND NOT has_function_privilege('app_admin', 'public.segment_contact_ids(uuid, jsonb)', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'public.segment_contact_ids(uuid, jsonb)', 'EXECUTE'),
          'segment_contact_ids: service_role only');
SELECT ok(bool_and(has_function_privilege('app_user', f, 'EXECUTE') AND has_function_privilege('app_admin', f, 'EXECUTE')
                   AND NOT has_function_privilege('app_viewer', f, 'EXECUTE') AND NOT has_function_privilege('anon', f, 'EXECUTE')),
          'calculate_segment_size, preview_segment, segment_rules_problem: admins and users, not viewers or anon')
FROM unnest(ARRAY['public.calculate_segment_size(uuid)', 'public.preview_segment(jsonb)', 'public.segment_rules_problem(jsonb)']) f;
SELECT ok(NOT bool_or(has_function_privilege(r, p.oid, 'EXECUTE')), 'the compiler''s helpers: no API role')
FROM pg_proc p, unnest(ARRAY['anon', 'authenticated', 'app_user', 'app_admin', 'service_role']) r
WHERE p.pronamespace = 'public'::regnamespace AND (p.proname LIKE 'segment\_\_%' OR p.proname = 'audience_segments_check_rules');
SELECT ok(bool_and(p.proconfig @> ARRAY['search_path=""']), 'every function of 030 pins search_path')
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace
  AND (p.proname LIKE 'segment%' OR p.proname IN ('calculate_segment_size', 'preview_segment', 'audience_segments_check_rules'));
SELECT ok(bool_and(p.prosecdef), 'membership, size, preview and the trigger are SECURITY DEFINER')
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace
  AND p.proname IN ('segment_contact_ids', 'calculate_segment_size', 'preview_segment', 'audience_segments_check_rules');
SELECT has_trigger('public', 'audience_segments', 'check_rules', 'rules are checked on write');

-- ---------------------------------------------------------------------------
-- Validation on write, size and preview as users (18)
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'alice');
SELECT lives_ok($$INSERT INTO public.audience_segments (name, rules) VALUES ('shop', '{"all": [{"field": "email", "op": "contains", "value": "shop"}]}')$$,
                'a user saves a valid segment');
SELECT throws_ok($$INSERT INTO public.audience_segments (name, rules) VALUES ('bad', '{"all": [{"field": "email", "op": "eq", "value": "a"}, {"field": "email", "op": "eq", "value": "b"}, {"field": "email", "op": "like", "value": "x"}]}')$$,
                 '22023', 'rules.all[2].op: unknown operator "like"', 'an invalid segment is refused with the bad path');
SELECT throws_ok($$UPDATE public.audience_segments SET rules = '{"any": [{"field": "phone", "op": "within_days", "value": 3}]}' WHERE name = 'shop'$$,
                 '22023', 'rules.any[0].op: operator "within_days" does not apply to field "phone" (use one of: eq, neq, contains, starts_with, ends_with, in, is_null, not_null)',
                 'an update to invalid rules is refused');
SELECT throws_ok($$INSERT INTO public.audience_segments (name, rules) VALUES ('arr', '[]')$$, '22023',
                 'rules: must be a group {"all": [...]} or {"any": [...]}', 'the seed''s old default [] is not a rules document');
SELECT id AS shop FROM public.audience_segments WHERE name = 'shop' \gset
SELECT is(public.calculate_segment_size(:'shop'), 2, 'calculate_segment_size counts Ann and Dee (not Eve, deleted; not Fay, Bob''s)');
SELECT ok(estimated_size = 2 AND last_calculated_at IS NOT NULL, 'the size is recorded on the segment')
FROM public.audience_segments WHERE id = :'shop';
UPDATE public.audience_segments SET rules = '{"all": [{"field": "email", "op": "contains", "value": "bob"}]}' WHERE id = :'shop';
SELECT ok(estimated_size IS NULL AND last_calculated_at IS NULL, 'changed rules forget the old size')
FROM public.audience_segments WHERE id = :'shop';
SELECT is(public.calculate_segment_size(:'shop'), 1, 'the new rules: Bob');
SELECT is((public.preview_segment('{"all": []}') ->> 'count')::int, 4, 'preview_segment counts the caller''s live contacts');
SELECT is((SELECT string_agg(e ->> 'first_name', ',') FROM jsonb_array_elements(public.preview_segment('{"all": []}') -> 'sample') e),
          'Ann,Dee,Cy,Bob', 'preview_segment samples the newest first');
SELECT is(public.preview_segment('{"all": [{"field": "consent.sms", "op": "eq", "value": "opted_in"}]}') -> 'sample' -> 0 ->> 'email',
          'ann@shop.example', 'preview_segment: the sample has the contact''s e-mail');
SELECT throws_ok($$SELECT public.preview_segment('{"all": [{"field": "created_at", "op": "gt", "value": "yesterday"}]}')$$, '22023',
                 'rules.all[0].value: must be a date (2026-01-31) or a timestamp with a time zone (2026-01-31T09:00:00Z)',
                 'preview_segment names the bad value');

SELECT tests.authenticate_as(:'bob');
SELECT is(tests.error_of(format('SELECT public.calculate_segment_size(%L)', :'shop')),
          'PT404 It does not exist or is not yours: a segment counts its owner''s contacts only.', 'Bob cannot count Alice''s segment');
SELECT is((public.preview_segment('{"all": [{"field": "email", "op": "contains", "value": "shop"}]}') ->> 'count')::int, 1,
          'Bob''s preview counts only Bob''s contacts');

SELECT tests.authenticate_as(:'admin');
SELECT is(tests.error_of(format('SELECT public.calculate_segment_size(%L)', :'shop')),
          'PT404 It does not exist or is not yours: a segment counts its owner''s contacts only.', 'an admin cannot count Alice''s segment either');
SELECT is((public.preview_segment('{"all": []}') ->> 'count')::int, 0, 'an admin''s preview counts the admin''s own contacts (none)');

SELECT tests.authenticate_as(:'viewer');
SELECT is(left(tests.error_of($$SELECT public.preview_segment('{"all": []}')$$), 5), '42501', 'a viewer cannot preview');

SELECT tests.authenticate_as_anon();
SELECT is(left(tests.error_of(format('SELECT public.calculate_segment_size(%L)', :'shop')), 5), '42501', 'anon cannot count');

SELECT tests.clear_authentication();
SELECT is((SELECT estimated_size FROM public.audience_segments WHERE id = :'shop'), 1, 'the refused calls changed nothing');

SELECT * FROM finish();
ROLLBACK;
