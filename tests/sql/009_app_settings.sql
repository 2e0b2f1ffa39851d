-- tests/sql/009_app_settings.sql: public.app_settings (exactly one row),
-- public.app_secrets, public.app_settings_public and the secret functions
-- (migrations/009_app_settings.sql): grants, RLS for every role x command,
-- encryption at rest, masking, the server's key.
BEGIN;
SELECT plan(77);

-- ---------------------------------------------------------------------------
-- Schema and the one row
-- ---------------------------------------------------------------------------
SELECT ok((SELECT bool_and(relrowsecurity) FROM pg_class
           WHERE oid IN ('public.app_settings'::regclass, 'public.app_secrets'::regclass)),
          'RLS on app_settings and app_secrets');
SELECT is((SELECT count(*) FROM public.app_settings), 1::bigint, 'the migration created exactly one settings row');
SELECT results_eq($$SELECT timezone::text, date_format::text, monthly_sms_limit, monthly_email_limit, data_retention_days, enable_audit_log
                    FROM public.app_settings$$,
                  $$VALUES ('America/New_York', 'MM/DD/YYYY', 10000, 50000, 30, true)$$, 'the row has the spec''s defaults');
SELECT col_type_is('public', 'app_settings', 'updated_at', 'timestamp with time zone', 'updated_at is timestamptz');
SELECT col_type_is('public', 'app_secrets', 'value_encrypted', 'bytea', 'secrets are stored as bytea ciphertext');
SELECT is(tests.privs('anon', 'public.app_settings') || tests.privs('anon', 'public.app_secrets')
          || tests.privs('anon', 'public.app_settings_public'), '', 'anon has no privilege on the settings');
SELECT is(tests.privs('authenticated', 'public.app_settings'), 'SELECT', 'authenticated: SELECT at table level');
SELECT ok(has_column_privilege('authenticated', 'public.app_settings', 'timezone', 'UPDATE')
          AND NOT has_column_privilege('authenticated', 'public.app_settings', 'twilio_auth_token', 'UPDATE')
          AND NOT has_column_privilege('authenticated', 'public.app_settings', 'sendgrid_api_key', 'UPDATE'),
          'authenticated may UPDATE settings columns, never the masked secret columns');
SELECT is(tests.privs('authenticated', 'public.app_secrets'), '', 'authenticated has no privilege on app_secrets');
SELECT is(tests.privs('authenticated', 'public.app_settings_public'), 'SELECT', 'authenticated: SELECT on app_settings_public');
SELECT ok(NOT has_function_privilege('authenticated', 'public.get_app_secret(text)', 'EXECUTE')
          AND has_function_privilege('service_role', 'public.get_app_secret(text)', 'EXECUTE'),
          'get_app_secret: service_role only');
SELECT ok((SELECT reloptions @> ARRAY['security_invoker=true'] FROM pg_class WHERE oid = 'public.app_settings_public'::regclass),
          'app_settings_public is a security_invoker view');
SELECT throws_ok($$INSERT INTO public.app_settings DEFAULT VALUES$$, '23505', NULL, 'a second settings row is refused');
SELECT throws_ok($$DELETE FROM public.app_settings$$, '23514', NULL, 'the settings row cannot be deleted');
SELECT throws_ok($$TRUNCATE public.app_settings$$, '23514', NULL, 'the settings table cannot be truncated');

-- ---------------------------------------------------------------------------
-- Fixture
-- ---------------------------------------------------------------------------
SELECT tests.create_user('admin@example.test', 'admin') AS admin \gset
SELECT tests.create_user('viewer@example.test', 'viewer') AS viewer \gset
SELECT tests.create_user('alice@example.test', 'user') AS alice \gset
UPDATE public.app_settings SET updated_at = '2000-01-01';

-- ---------------------------------------------------------------------------
-- anon
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as_anon();
SELECT throws_ok($$SELECT * FROM public.app_settings$$, '42501', NULL, 'anon cannot SELECT app_settings');
SELECT throws_ok($$INSERT INTO public.app_settings DEFAULT VALUES$$, '42501', NULL, 'anon cannot INSERT app_settings');
SELECT throws_ok($$UPDATE public.app_settings SET timezone = 'UTC'$$, '42501', NULL, 'anon cannot UPDATE app_settings');
SELECT throws_ok($$DELETE FROM public.app_settings$$, '42501', NULL, 'anon cannot DELETE app_settings');
SELECT throws_ok($$SELECT * FROM public.app_secrets$$, '42501', NULL, 'anon cannot SELECT app_secrets');
SELECT throws_ok($$SELECT * FROM public.app_settings_public$$, '42501', NULL, 'anon cannot read app_settings_public');
SELECT throws_ok($$SELECT public.set_app_secret('sendgrid_api_key', 'x')$$, '42501', NULL, 'anon cannot execute set_app_secret');

-- ---------------------------------------------------------------------------
-- viewer and user: the public settings only
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'viewer');
SELECT is((SELECT count(*) FROM public.app_settings), 0::bigint, 'viewer reads no app_settings row');
SELECT throws_ok($$INSERT INTO public.app_settings DEFAULT VALUES$$, '42501', NULL, 'viewer cannot INSERT app_settings');
SELECT is(tests.affected($$UPDATE public.app_settings SET timezone = 'UTC'$$), 0::bigint, 'viewer UPDATE of app_settings touches 0 rows');
SELECT throws_ok($$DELETE FROM public.app_settings$$, '42501', NULL, 'viewer cannot DELETE app_settings');
SELECT throws_ok($$SELECT * FROM public.app_secrets$$, '42501', NULL, 'viewer cannot read app_secrets');
SELECT results_eq($$SELECT timezone, data_retention_days FROM public.app_settings_public$$,
                  $$VALUES ('America/New_York'::text, 30)$$, 'viewer reads the public settings');
SELECT throws_ok($$SELECT public.set_app_secret('sendgrid_api_key', 'SG.abcdefghijklmnop')$$, '42501', NULL,
                 'viewer cannot set a secret');

SELECT tests.authenticate_as(:'alice');
SELECT is((SELECT count(*) FROM public.app_settings), 0::bigint, 'a user reads no app_settings row (no masked secrets either)');
SELECT throws_ok($$INSERT INTO public.app_settings DEFAULT VALUES$$, '42501', NULL, 'a user cannot INSERT app_settings');
SELECT is(tests.affected($$UPDATE public.app_settings SET monthly_sms_limit = 1$$), 0::bigint, 'a user UPDATE of app_settings touches 0 rows');
SELECT throws_ok($$DELETE FROM public.app_settings$$, '42501', NULL, 'a user cannot DELETE app_settings');
SELECT throws_ok($$SELECT * FROM public.app_secrets$$, '42501', NULL, 'a user cannot read app_secrets');
SELECT throws_ok($$INSERT INTO public.app_secrets (name, value_encrypted) VALUES ('sendgrid_api_key', '\x00')$$, '42501', NULL,
                 'a user cannot write app_secrets');
SELECT is((SELECT count(*) FROM public.app_settings_public), 1::bigint, 'a user reads the public settings');
SELECT throws_ok($$SELECT twilio_auth_token FROM public.app_settings_public$$, '42703', NULL,
                 'the public view has no secret column');
SELECT throws_ok($$SELECT public.set_app_secret('sendgrid_api_key', 'SG.abcdefghijklmnop')$$, '42501', NULL,
                 'a user cannot set a secret');
SELECT throws_ok($$SELECT public.get_app_secret('sendgrid_api_key')$$, '42501', NULL, 'a user cannot read a clear secret');

-- ---------------------------------------------------------------------------
-- admin
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'admin');
SELECT is((SELECT count(*) FROM public.app_settings), 1::bigint, 'admin reads app_settings');
SELECT is(tests.affected($$UPDATE public.app_settings SET timezone = 'Europe/Paris', date_format = 'DD/MM/YYYY', data_retention_days = 90$$),
          1::bigint, 'admin can UPDATE the settings');
SELECT throws_ok($$UPDATE public.app_settings SET twilio_auth_token = '****abcd'$$, '42501', NULL,
                 'admin cannot write a masked secret column directly');
SELECT throws_ok($$INSERT INTO public.app_settings DEFAULT VALUES$$, '42501', NULL, 'admin cannot INSERT app_settings');
SELECT throws_ok($$DELETE FROM public.app_settings$$, '42501', NULL, 'admin cannot DELETE app_settings');
SELECT throws_ok($$SELECT * FROM public.app_secrets$$, '42501', NULL, 'admin cannot read app_secrets');
SELECT throws_ok($$SELECT public.get_app_secret('twilio_auth_token')$$, '42501', NULL, 'admin cannot read a clear secret');
SELECT is(tests.error_of($$SELECT public.set_app_secret('twilio_auth_token', 'abcdef0123456789abcdef0123459876')$$),
          '22023 set CAMPAIGND_ENCRYPTION_KEY', 'setting a secret without a key gives 22023 and the hint');
SELECT set_config('campaignd.encryption_key', 'test-encryption-key-0123456789abcdef', true);
SELECT throws_ok($$SELECT public.set_app_secret('stripe_key', 'x')$$, '22023', NULL, 'an unknown secret name is refused');
SELECT is(public.set_app_secret('twilio_auth_token', 'abcdef0123456789abcdef0123459876'), '****9876',
          'admin sets a secret and gets the mask back');
SELECT is(public.set_app_secret('sendgrid_api_key', 'SG.0123456789.abcdefghijWXYZ'), '****WXYZ', 'and another');
SELECT results_eq($$SELECT twilio_auth_token, sendgrid_api_key, twilio_account_sid FROM public.app_settings$$,
                  $$VALUES ('****9876'::text, '****WXYZ'::text, NULL::text)$$,
                  'admin reads the secrets masked (last 4 characters at most)');
SELECT is((SELECT timezone FROM public.app_settings_public), 'Europe/Paris', 'the public view shows the admin''s change');

-- ---------------------------------------------------------------------------
-- service_role
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as_service();
SELECT is((SELECT count(*) FROM public.app_settings), 1::bigint, 'service_role reads app_settings');
SELECT is(tests.affected($$UPDATE public.app_settings SET monthly_email_limit = 60000$$), 1::bigint,
          'service_role can UPDATE app_settings');
SELECT throws_ok($$INSERT INTO public.app_settings DEFAULT VALUES$$, '23505', NULL, 'service_role cannot add a second row');
SELECT throws_ok($$DELETE FROM public.app_settings$$, '23514', NULL, 'service_role cannot delete the row');
SELECT is((SELECT count(*) FROM public.app_secrets), 2::bigint, 'service_role reads app_secrets');
SELECT is((SELECT count(*) FROM public.app_settings_public), 1::bigint, 'service_role reads app_settings_public');
SELECT is(public.get_app_secret('twilio_auth_token'), 'abcdef0123456789abcdef0123459876', 'service_role decrypts a secret');
SELECT is(public.get_app_secret('twilio_account_sid'), NULL, 'an unset secret is NULL');
SELECT is(public.set_app_secret('twilio_account_sid', 'AC0123456789abcdef0123456789ab1234'), '****1234',
          'service_role can set a secret');
SELECT set_config('campaignd.encryption_key', 'a-different-key-of-enough-length', true);
SELECT is(tests.error_of($$SELECT public.get_app_secret('twilio_auth_token')$$),
          '22023 set CAMPAIGND_ENCRYPTION_KEY to the key the secret was written with', 'a wrong key gives 22023');
SELECT set_config('campaignd.encryption_key', '', true);
SELECT is(tests.error_of($$SELECT public.get_app_secret('twilio_auth_token')$$), '22023 set CAMPAIGND_ENCRYPTION_KEY',
          'reading without a key gives 22023 and the hint');
SELECT is(public.set_app_secret('sendgrid_api_key', ''), NULL, 'an empty value removes a secret');
SELECT tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- At rest and in the audit trail
-- ---------------------------------------------------------------------------
SELECT is((SELECT position(convert_to('abcdef0123456789abcdef0123459876', 'UTF8') IN value_encrypted)
           FROM public.app_secrets WHERE name = 'twilio_auth_token'), 0, 'the ciphertext does not contain the secret');
SELECT is((SELECT sendgrid_api_key FROM public.app_settings), NULL, 'the removed secret''s mask is gone');
SELECT is((SELECT count(*) FROM public.app_secrets WHERE name = 'sendgrid_api_key'), 0::bigint, 'and so is its ciphertext');
SELECT is((SELECT count(*) FROM public.audit_logs
           WHERE coalesce(old_value::text, '') || coalesce(new_value::text, '')
                 ~ '(abcdef0123456789abcdef0123459876|SG\.0123456789|AC0123456789abcdef)'), 0::bigint,
          'no audit row contains a clear secret');
SELECT cmp_ok((SELECT count(*) FROM public.audit_logs WHERE resource_type = 'app_settings' AND action = 'update'), '>=', 4::bigint,
              'settings changes were audited');
SELECT throws_ok($$UPDATE public.app_settings SET twilio_auth_token = 'abcdef0123456789'$$, '23514', NULL,
                 'not even the owner can put a clear secret into a masked column');

-- ---------------------------------------------------------------------------
-- CHECKs and updated_at
-- ---------------------------------------------------------------------------
SELECT is(tests.error_of($$UPDATE public.app_settings SET timezone = 'Mars/Olympus_Mons'$$),
          '22023 use an IANA name such as America/New_York or UTC', 'an unknown time zone is refused');
SELECT throws_ok($$UPDATE public.app_settings SET date_format = 'YY'$$, '23514', NULL, 'an unknown date format is refused');
SELECT throws_ok($$UPDATE public.app_settings SET data_retention_days = 0$$, '23514', NULL, 'retention must be at least a day');
SELECT throws_ok($$UPDATE public.app_settings SET monthly_sms_limit = -1$$, '23514', NULL, 'limits cannot be negative');
SELECT is((SELECT updated_at FROM public.app_settings), now(), 'updated_at changed on UPDATE (fixture had 2000-01-01)');
SELECT tests.authenticate_as(:'viewer');
SELECT is((SELECT data_retention_days FROM public.app_settings_public), 90, 'data_retention_days is public');
SELECT tests.clear_authentication();
SELECT is((SELECT count(*) FROM public.app_settings_public), 0::bigint,
          'without a signed-in user or service_role the view returns no row');

SELECT * FROM finish();
ROLLBACK;
