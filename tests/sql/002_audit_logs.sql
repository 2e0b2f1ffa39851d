-- tests/sql/002_audit_logs.sql: the audit trigger, redaction, who may read and
-- write public.audit_logs, and the purge (migrations/002_audit_logs.sql).
BEGIN;
SELECT plan(50);

SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'public.audit_logs'::regclass),
          'RLS is enabled on public.audit_logs');
SELECT col_type_is('public', 'audit_logs', 'created_at', 'timestamp with time zone',
                   'created_at is timestamptz');
SELECT is(
    (SELECT confdeltype::text FROM pg_constraint
     WHERE conrelid = 'public.audit_logs'::regclass AND contype = 'f'),
    'n', 'audit_logs.user_id references auth.users ON DELETE SET NULL');

-- ---------------------------------------------------------------------------
-- public.audit_redact()
-- ---------------------------------------------------------------------------
SELECT is(public.audit_redact(
    '{"name":"n","Password":"p","nested":{"client_secret":"s","deep":[{"refresh_token":"t","keep":1}]},
      "apiKey":"k","api_key_encrypted":"e","credentials":{"a":1},"private_key":"pk","count":3}'::jsonb),
    '{"name":"n","Password":"[REDACTED]","nested":{"client_secret":"[REDACTED]",
      "deep":[{"refresh_token":"[REDACTED]","keep":1}]},"apiKey":"[REDACTED]",
      "api_key_encrypted":"[REDACTED]","credentials":"[REDACTED]","private_key":"[REDACTED]","count":3}'::jsonb,
    'audit_redact replaces secret keys at any depth, case-insensitively, and keeps the rest');
SELECT is(public.audit_redact('[1, "password", {"x": [{"secret": 1}]}]'::jsonb),
          '[1, "password", {"x": [{"secret": "[REDACTED]"}]}]'::jsonb,
          'audit_redact walks arrays and leaves string values alone');
SELECT is(public.audit_redact(NULL), NULL, 'audit_redact(NULL) is NULL');

-- ---------------------------------------------------------------------------
-- The trigger on a table with a uuid id
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE widgets (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL,
    settings jsonb,
    api_key text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
GRANT ALL ON widgets TO authenticated, service_role;
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON widgets
    FOR EACH ROW EXECUTE FUNCTION public.audit_trigger();

SELECT tests.create_user('admin@example.test', 'admin') AS admin_id \gset
SELECT tests.create_user('user@example.test', 'user') AS user_id \gset
SELECT tests.create_user('viewer@example.test', 'viewer') AS viewer_id \gset

SELECT tests.authenticate_as(:'user_id');
INSERT INTO widgets (name, settings, api_key)
VALUES ('w1', '{"smtp":{"host":"mx","password":"hunter2","tokens":["a"]},"limit":5}', 'sk-live-123')
RETURNING id AS widget_id \gset
UPDATE widgets SET name = 'w2' WHERE id = :'widget_id';
UPDATE widgets SET updated_at = updated_at + interval '1 second' WHERE id = :'widget_id';
DELETE FROM widgets WHERE id = :'widget_id';
SELECT tests.clear_authentication();

SELECT is((SELECT count(*) FROM public.audit_logs WHERE resource_id = :'widget_id'), 4::bigint,
          'insert, two updates and delete gave four audit rows');

SELECT is(
    (SELECT ARRAY[user_id::text, action, resource_type, resource_id::text, host(ip_address),
                  user_agent, status, coalesce(error_message, '<null>'),
                  coalesce(old_value::text, '<null>')]
     FROM public.audit_logs WHERE resource_id = :'widget_id' AND action = 'create'),
    ARRAY[:'user_id', 'create', 'widgets', :'widget_id', '203.0.113.7',
          'pgtap/1.0 (campaignd tests)', 'success', '<null>', '<null>'],
    'create row: user, action, resource, address, user agent, status, no old value');
SELECT is(
    (SELECT new_value - 'id' - 'updated_at'
     FROM public.audit_logs WHERE resource_id = :'widget_id' AND action = 'create'),
    '{"name":"w1","api_key":"[REDACTED]",
      "settings":{"smtp":{"host":"mx","password":"[REDACTED]","tokens":"[REDACTED]"},"limit":5}}'::jsonb,
    'create row: new value is the row with secrets redacted, nested ones too');
SELECT is(
    (SELECT new_value ->> 'id' FROM public.audit_logs
     WHERE resource_id = :'widget_id' AND action = 'create'),
    :'widget_id', 'create row: new value carries the id');
SELECT is(
    (SELECT metadata ->> 'role' FROM public.audit_logs
     WHERE resource_id = :'widget_id' AND action = 'create'),
    'authenticated', 'metadata.role is the JWT role');
SELECT matches(
    (SELECT metadata ->> 'table' FROM public.audit_logs
     WHERE resource_id = :'widget_id' AND action = 'create'),
    '^pg_temp_[0-9]+\.widgets$', 'metadata.table is schema.table');

SELECT is(
    (SELECT ARRAY[old_value ->> 'name', new_value ->> 'name', old_value ->> 'api_key',
                  new_value ->> 'api_key', user_id::text]
     FROM public.audit_logs
     WHERE resource_id = :'widget_id' AND action = 'update' AND old_value ->> 'name' = 'w1'),
    ARRAY['w1', 'w2', '[REDACTED]', '[REDACTED]', :'user_id'],
    'update row: old and new values, both redacted');
SELECT is(
    (SELECT count(*) FROM public.audit_logs
     WHERE resource_id = :'widget_id' AND action = 'update'
       AND old_value - 'updated_at' = new_value - 'updated_at'
       AND old_value ->> 'updated_at' <> new_value ->> 'updated_at'),
    1::bigint, 'an update of only updated_at is recorded');
SELECT is(
    (SELECT ARRAY[old_value ->> 'name', coalesce(new_value::text, '<null>'), host(ip_address), user_id::text]
     FROM public.audit_logs WHERE resource_id = :'widget_id' AND action = 'delete'),
    ARRAY['w2', '<null>', '203.0.113.7', :'user_id'],
    'delete row: old value, no new value');

-- A bad or missing x-real-ip never fails the write.
SELECT tests.authenticate_as(:'user_id');
SELECT tests.set_headers('{"x-real-ip":"not-an-address","user-agent":"ua-bad-ip"}');
SELECT lives_ok($$INSERT INTO widgets (name) VALUES ('bad-ip')$$, 'an invalid x-real-ip does not fail the write');
SELECT tests.set_headers('{"x-real-ip":"2001:db8::5"}');
SELECT lives_ok($$INSERT INTO widgets (name) VALUES ('v6')$$, 'an IPv6 x-real-ip is accepted');
SELECT tests.set_headers('this is not json');
SELECT lives_ok($$INSERT INTO widgets (name) VALUES ('bad-headers')$$, 'malformed request.headers do not fail the write');
SELECT tests.set_headers('');
SELECT lives_ok($$INSERT INTO widgets (name) VALUES ('no-headers')$$, 'absent request.headers do not fail the write');
SELECT tests.clear_authentication();

SELECT is(
    (SELECT ARRAY[coalesce(host(ip_address), '<null>'), user_agent, user_id::text]
     FROM public.audit_logs WHERE action = 'create' AND new_value ->> 'name' = 'bad-ip'),
    ARRAY['<null>', 'ua-bad-ip', :'user_id'],
    'an invalid x-real-ip is recorded as NULL, the rest as usual');
SELECT is(
    (SELECT host(ip_address) FROM public.audit_logs WHERE action = 'create' AND new_value ->> 'name' = 'v6'),
    '2001:db8::5', 'an IPv6 address is recorded');
SELECT is(
    (SELECT count(*) FROM public.audit_logs
     WHERE action = 'create' AND new_value ->> 'name' IN ('bad-headers', 'no-headers')
       AND ip_address IS NULL AND user_agent IS NULL),
    2::bigint, 'without usable headers address and user agent are NULL');

-- ---------------------------------------------------------------------------
-- Tables without a uuid id; callers without a user
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE counters (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n integer);
GRANT ALL ON counters TO authenticated, service_role;
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON counters
    FOR EACH ROW EXECUTE FUNCTION public.audit_trigger();
CREATE TEMP TABLE pairs (a text, b integer, note text, PRIMARY KEY (a, b));
GRANT ALL ON pairs TO authenticated, service_role;
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON pairs
    FOR EACH ROW EXECUTE FUNCTION public.audit_trigger();

SELECT tests.authenticate_as(:'admin_id');
INSERT INTO counters (n) VALUES (7) RETURNING id AS counter_id \gset
INSERT INTO pairs VALUES ('x', 2, 'hello');
SELECT tests.authenticate_as_service();
UPDATE counters SET n = 8 WHERE id = :counter_id;
SELECT tests.clear_authentication();

SELECT is(
    (SELECT ARRAY[coalesce(resource_id::text, '<null>'), resource_type, metadata -> 'key' ->> 'id', user_id::text]
     FROM public.audit_logs WHERE resource_type = 'counters' AND action = 'create'),
    ARRAY['<null>', 'counters', :'counter_id', :'admin_id'],
    'a bigint id gives resource_id NULL and the key in metadata');
SELECT is(
    (SELECT metadata -> 'key' FROM public.audit_logs WHERE resource_type = 'pairs'),
    '{"a":"x","b":2}'::jsonb, 'a composite primary key goes to metadata.key');
SELECT is(
    (SELECT ARRAY[coalesce(user_id::text, '<null>'), metadata ->> 'role', old_value ->> 'n', new_value ->> 'n']
     FROM public.audit_logs WHERE resource_type = 'counters' AND action = 'update'),
    ARRAY['<null>', 'service_role', '7', '8'],
    'a service_role change has no user and role service_role');

-- A token whose user was deleted meanwhile: the write is kept, user_id is NULL.
SELECT tests.authenticate_as(:'user_id');
SELECT tests.set_claims(auth.jwt() || '{"sub":"00000000-0000-4000-8000-00000000dead"}');
SELECT lives_ok($$INSERT INTO counters (n) VALUES (99)$$,
                'a write with the token of a missing user is not failed by the audit');
SELECT tests.clear_authentication();
SELECT is(
    (SELECT ARRAY[coalesce(user_id::text, '<null>'), metadata ->> 'sub']
     FROM public.audit_logs WHERE resource_type = 'counters' AND new_value ->> 'n' = '99'),
    ARRAY['<null>', '00000000-0000-4000-8000-00000000dead'],
    'the missing user is recorded as NULL with the sub in metadata');

-- ON DELETE SET NULL keeps the trail when a user is deleted.
SELECT tests.create_user('gone@example.test', 'user') AS gone_id \gset
SELECT tests.authenticate_as(:'gone_id');
INSERT INTO widgets (name) VALUES ('by-gone');
SELECT tests.clear_authentication();
DELETE FROM auth.users WHERE id = :'gone_id';
SELECT is(
    (SELECT count(*) FROM public.audit_logs
     WHERE new_value ->> 'name' = 'by-gone' AND user_id IS NULL),
    1::bigint, 'deleting a user keeps its audit rows with user_id NULL');

-- ---------------------------------------------------------------------------
-- Who reads the trail
-- ---------------------------------------------------------------------------
SELECT count(*) AS total FROM public.audit_logs \gset
SELECT cmp_ok(:total::bigint, '>=', 12::bigint, 'the trail has the rows written above');

SELECT tests.authenticate_as(:'user_id');
SELECT is((SELECT count(*) FROM public.audit_logs), 0::bigint,
          'a user sees zero audit rows, not even their own');
SELECT tests.authenticate_as(:'viewer_id');
SELECT is((SELECT count(*) FROM public.audit_logs), 0::bigint, 'a viewer sees zero audit rows');
SELECT tests.authenticate_as(:'user_id');
SELECT tests.set_claims(auth.jwt() || '{"user_metadata":{"role":"admin"},"app_metadata":{"role":"admin"}}');
SELECT is((SELECT count(*) FROM public.audit_logs), 0::bigint,
          'a user with a forged admin claim sees zero audit rows');
SELECT tests.authenticate_as(:'admin_id');
SELECT is((SELECT count(*) FROM public.audit_logs), :total::bigint, 'an admin sees every audit row');
SELECT tests.authenticate_as_service();
SELECT is((SELECT count(*) FROM public.audit_logs), :total::bigint, 'service_role sees every audit row');
SELECT tests.authenticate_as_anon();
SELECT throws_ok('SELECT count(*) FROM public.audit_logs', '42501', NULL, 'anon cannot read audit_logs');

-- ---------------------------------------------------------------------------
-- Who writes the trail: only service_role
-- ---------------------------------------------------------------------------
SELECT throws_ok($$INSERT INTO public.audit_logs (action) VALUES ('forged')$$, '42501', NULL,
                 'anon cannot insert audit rows');
SELECT tests.authenticate_as(:'admin_id');
SELECT throws_ok($$INSERT INTO public.audit_logs (action) VALUES ('forged')$$, '42501', NULL,
                 'an admin cannot insert audit rows');
SELECT throws_ok($$UPDATE public.audit_logs SET status = 'failure'$$, '42501', NULL,
                 'an admin cannot update audit rows');
SELECT throws_ok($$DELETE FROM public.audit_logs$$, '42501', NULL,
                 'an admin cannot delete audit rows');
SELECT throws_ok($$SELECT public.purge_audit_logs(0)$$, '42501', NULL,
                 'an admin cannot execute purge_audit_logs');
SELECT tests.authenticate_as(:'user_id');
SELECT throws_ok($$INSERT INTO public.audit_logs (action, user_id) VALUES ('create', auth.uid())$$,
                 '42501', NULL, 'a user cannot insert audit rows');
SELECT throws_ok($$DELETE FROM public.audit_logs$$, '42501', NULL, 'a user cannot delete audit rows');

SELECT tests.authenticate_as_service();
SELECT lives_ok(
    $$INSERT INTO public.audit_logs (action, resource_type, status) VALUES ('login', 'user', 'failure')$$,
    'service_role inserts audit rows');
SELECT lives_ok($$UPDATE public.audit_logs SET error_message = 'bad password' WHERE action = 'login'$$,
                'service_role updates audit rows');
SELECT lives_ok($$DELETE FROM public.audit_logs WHERE action = 'login'$$,
                'service_role deletes audit rows');
SELECT is((SELECT count(*) FROM public.audit_logs), :total::bigint,
          'the service_role row came and went');

-- ---------------------------------------------------------------------------
-- Purge
-- ---------------------------------------------------------------------------
SELECT tests.clear_authentication();
INSERT INTO public.audit_logs (action, created_at)
SELECT 'old', now() - interval '31 days' FROM generate_series(1, 3);
INSERT INTO public.audit_logs (action, created_at) VALUES ('recent', now() - interval '29 days');

SELECT tests.authenticate_as_service();
SELECT is(public.purge_audit_logs(30), 3::bigint, 'purge deletes the three rows older than 30 days');
SELECT is((SELECT count(*) FROM public.audit_logs WHERE action = 'old'), 0::bigint, 'no old row is left');
SELECT is((SELECT count(*) FROM public.audit_logs), :total::bigint + 1,
          'rows inside the retention are kept');
SELECT throws_ok($$SELECT public.purge_audit_logs(-1)$$, '22023', NULL, 'a negative retention is rejected');

SELECT tests.clear_authentication();
SELECT * FROM finish();
ROLLBACK;
