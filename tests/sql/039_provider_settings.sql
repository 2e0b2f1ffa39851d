-- tests/sql/039_provider_settings.sql: an admin's provider settings
-- (migrations/039_provider_settings.sql): smtp_url as an encrypted, masked
-- application secret, the plain admin columns and their checks, who may
-- write and read them, and public.provider_settings() for the server.
BEGIN;
SELECT plan(30);

SELECT tests.create_user('admin@example.test', 'admin') AS admin \gset
SELECT tests.create_user('alice@example.test', 'user') AS alice \gset
SELECT tests.create_user('viewer@example.test', 'viewer') AS viewer \gset

SELECT ok(NOT has_column_privilege('authenticated', 'public.app_settings', 'smtp_url', 'UPDATE'),
          'nobody writes the masked smtp_url column directly');
SELECT ok(has_column_privilege('authenticated', 'public.app_settings', 'email_from', 'UPDATE')
          AND has_column_privilege('authenticated', 'public.app_settings', 'twilio_api_base', 'UPDATE'),
          'authenticated may UPDATE the plain provider columns (RLS: admins only)');
SELECT ok(NOT has_function_privilege('authenticated', 'public.provider_settings()', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'public.provider_settings()', 'EXECUTE')
          AND has_function_privilege('service_role', 'public.provider_settings()', 'EXECUTE'),
          'provider_settings(): service_role only');

-- ---------------------------------------------------------------------------
-- A user and a viewer: neither set nor read
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'alice');
SELECT set_config('campaignd.encryption_key', 'test-encryption-key-0123456789abcdef', true);
SELECT throws_ok($$SELECT public.set_app_secret('smtp_url', 'smtp://u:p@evil.example:25')$$, '42501', NULL,
                 'a user cannot set SMTP_URL');
SELECT is(tests.affected($$UPDATE public.app_settings SET email_from = 'evil@example.org'$$), 0::bigint,
          'a user UPDATE of email_from touches 0 rows');
SELECT throws_ok($$SELECT * FROM public.provider_settings()$$, '42501', NULL, 'a user cannot read the clear settings');
SELECT throws_ok($$SELECT public.get_app_secret('smtp_url')$$, '42501', NULL, 'a user cannot read SMTP_URL');
SELECT throws_ok($$SELECT smtp_url FROM public.app_settings_public$$, '42703', NULL,
                 'the public view has no smtp_url column');
SELECT tests.authenticate_as(:'viewer');
SELECT throws_ok($$SELECT public.set_app_secret('smtp_url', 'smtp://u:p@evil.example:25')$$, '42501', NULL,
                 'a viewer cannot set SMTP_URL');
SELECT is(tests.affected($$UPDATE public.app_settings SET twilio_from = '+15550000000'$$), 0::bigint,
          'a viewer UPDATE of twilio_from touches 0 rows');

-- ---------------------------------------------------------------------------
-- Admin
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'admin');
SELECT set_config('campaignd.encryption_key', 'test-encryption-key-0123456789abcdef', true);
SELECT is(public.set_app_secret('smtp_url', 'smtp://user:pass-word@mail.example.org:2525'), '****2525',
          'admin sets SMTP_URL and gets the mask back');
SELECT is((SELECT smtp_url FROM public.app_settings), '****2525', 'admin reads SMTP_URL masked only');
SELECT throws_ok($$UPDATE public.app_settings SET smtp_url = '****abcd'$$, '42501', NULL,
                 'admin cannot write the masked column directly');
SELECT throws_ok($$SELECT * FROM public.provider_settings()$$, '42501', NULL, 'admin cannot read the clear settings');
SELECT is(tests.affected($$UPDATE public.app_settings SET email_provider = 'smtp', email_from = 'news@example.org',
                               twilio_from = '+15551234567', twilio_api_base = 'http://127.0.0.1:9999',
                               sendgrid_api_base = 'https://api.sendgrid.com'$$),
          1::bigint, 'admin sets the plain provider settings');
SELECT throws_ok($$UPDATE public.app_settings SET email_provider = 'pigeon'$$, '23514', NULL, 'an unknown provider is refused');
SELECT throws_ok($$UPDATE public.app_settings SET email_provider = ''$$, '23514', NULL, 'an empty provider is refused (NULL unsets)');
SELECT throws_ok($$UPDATE public.app_settings SET email_from = E'a@example.org\r\nBcc: all@example.org'$$, '23514', NULL,
                 'a sender with a line break (header injection) is refused');
SELECT throws_ok($$UPDATE public.app_settings SET email_from = 'no-at-sign'$$, '23514', NULL, 'a sender without @ is refused');
SELECT throws_ok($$UPDATE public.app_settings SET twilio_api_base = 'file:///etc/passwd'$$, '23514', NULL,
                 'an API base that is not http(s) is refused');
SELECT throws_ok($$UPDATE public.app_settings SET sendgrid_api_base = 'https://x.example/ a'$$, '23514', NULL,
                 'an API base with a space is refused');
SELECT throws_ok($$UPDATE public.app_settings SET twilio_from = '+1 555'$$, '23514', NULL, 'an SMS sender with a space is refused');
SELECT throws_ok($$SELECT public.set_app_secret('smtp_url', repeat('x', 4097))$$, '22023', NULL,
                 'an SMTP_URL over 4096 bytes is refused');

-- ---------------------------------------------------------------------------
-- service_role: the server's view
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as_service();
SELECT set_config('campaignd.encryption_key', 'test-encryption-key-0123456789abcdef', true);
SELECT results_eq($$SELECT email_provider, smtp_url, email_from, sendgrid_api_key, twilio_from, twilio_api_base
                    FROM public.provider_settings()$$,
                  $$VALUES ('smtp'::text, 'smtp://user:pass-word@mail.example.org:2525'::text, 'news@example.org'::text,
                            NULL::text, '+15551234567'::text, 'http://127.0.0.1:9999'::text)$$,
                  'provider_settings() returns the admin''s values, SMTP_URL decrypted, NULL where unset');
SELECT is((SELECT encode(value_encrypted, 'escape') LIKE '%pass-word%' FROM public.app_secrets WHERE name = 'smtp_url'),
          false, 'SMTP_URL is stored encrypted');
SELECT throws_ok($$INSERT INTO public.app_secrets (name, value_encrypted) VALUES ('stripe_key', '\x00')$$, '23514', NULL,
                 'app_secrets still refuses an unknown name');
SELECT set_config('campaignd.encryption_key', '', true);
SELECT is(tests.error_of($$SELECT * FROM public.provider_settings()$$), '22023 set CAMPAIGND_ENCRYPTION_KEY',
          'with a stored secret and no key: 22023 (the server falls back to the environment)');
SELECT set_config('campaignd.encryption_key', 'test-encryption-key-0123456789abcdef', true);
SELECT is(public.set_app_secret('smtp_url', NULL), NULL, 'NULL removes the stored SMTP_URL');
SELECT is((SELECT smtp_url FROM public.app_settings), NULL, 'and its mask');
SELECT set_config('campaignd.encryption_key', '', true);
SELECT is((SELECT email_from FROM public.provider_settings()), 'news@example.org',
          'without stored secrets no key is needed');

SELECT * FROM finish();
ROLLBACK;
