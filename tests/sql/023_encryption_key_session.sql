-- tests/sql/023_encryption_key_session.sql: the session's encryption key table
-- (migrations/023_encryption_key_session.sql).
BEGIN;
SELECT plan(12);

-- Nobody but the login role may make or seal the table, or read the key.
SELECT ok(NOT has_function_privilege(r, 'public.campaignd_key_table_open()', 'EXECUTE'),
          r || ' cannot open a key table')
FROM unnest(ARRAY['anon', 'authenticated', 'service_role']) AS r;
SELECT ok(has_function_privilege('authenticator', 'public.campaignd_key_table_seal()', 'EXECUTE'),
          'the login role may seal it');
SELECT ok(NOT has_function_privilege('service_role', 'public.campaignd_encryption_key()', 'EXECUTE'),
          'service_role cannot call campaignd_encryption_key()');

-- The hand-over, as the server does it (COPY is an INSERT here).
SELECT public.campaignd_key_table_open();
INSERT INTO pg_temp.campaignd_key (key_hex)
VALUES (encode(convert_to('session-key-0123456789abcdef', 'UTF8'), 'hex'));
SELECT public.campaignd_key_table_seal();
SELECT throws_ok($$SELECT public.campaignd_key_table_open()$$, '42710', NULL,
                 'a session gets its key once');

-- Secrets enabled for the transaction: the key comes from the table.
SELECT set_config('campaignd.encryption_key', '', true);
SELECT set_config('campaignd.secrets', 'on', true);
SELECT is(public.campaignd_encryption_key(), 'session-key-0123456789abcdef',
          'with campaignd.secrets on the key is the session''s');
SELECT is(public.campaignd_decrypt(public.campaignd_encrypt('x')), 'x', 'it encrypts and decrypts');
-- Not enabled (a read by an API role): no key.
SELECT set_config('campaignd.secrets', '', true);
SELECT throws_ok($$SELECT public.campaignd_encryption_key()$$, '22023', NULL,
                 'without campaignd.secrets there is no key');
-- An explicit key in the setting wins (psql maintenance).
SELECT set_config('campaignd.encryption_key', 'explicit-key-0123456789', true);
SELECT is(public.campaignd_encryption_key(), 'explicit-key-0123456789', 'the setting takes precedence');
SELECT set_config('campaignd.encryption_key', '', true);

-- API roles cannot touch the table, nor can they read the key from settings.
SELECT ok(NOT has_table_privilege(r, 'pg_temp.campaignd_key', 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE'),
          'no privilege on the key table for API roles')
FROM (VALUES ('authenticated')) AS v(r);
SELECT is(coalesce(current_setting('campaignd.encryption_key', true), ''), '', 'no setting holds the key');

SELECT * FROM finish();
ROLLBACK;
