-- tests/sql/022_auth_admin_update.sql: auth.merge_metadata and
-- auth.admin_update_user (migrations/022_auth_admin_update.sql): what they
-- change, the keys they drop, and that only service_role may call them.
BEGIN;
SELECT plan(21);

-- ---------------------------------------------------------------------------
-- auth.merge_metadata
-- ---------------------------------------------------------------------------
SELECT is(auth.merge_metadata('{"a":1,"b":2}', '{"b":3,"c":4}'), '{"a":1,"b":3,"c":4}'::jsonb,
          'merge_metadata: the patch replaces and adds keys');
SELECT is(auth.merge_metadata('{"a":1,"b":2}', '{"a":null}'), '{"b":2}'::jsonb,
          'merge_metadata: a key set to null is removed');
SELECT is(auth.merge_metadata('{"a":1}', '{"a":null}'), '{}'::jsonb,
          'merge_metadata: removing the last key leaves an empty object, not NULL');
SELECT is(auth.merge_metadata('{"a":1}', NULL), '{"a":1}'::jsonb,
          'merge_metadata: a NULL patch changes nothing');

-- ---------------------------------------------------------------------------
-- auth.admin_update_user, as the server calls it (service_role)
-- ---------------------------------------------------------------------------
SELECT tests.create_user('target@example.test', 'viewer') AS target \gset
SELECT tests.create_user('admin@example.test', 'admin') AS admin \gset
SELECT tests.create_user('taken@example.test', 'user') AS taken \gset
INSERT INTO auth.sessions (id, user_id, aal) VALUES (gen_random_uuid(), :'target', 'aal1');
UPDATE auth.users SET raw_user_meta_data = '{"name":"T","keep":1}' WHERE id = :'target';

SELECT tests.authenticate_as_service();
SELECT is((SELECT count(*) FROM auth.admin_update_user(gen_random_uuid(), 'x@example.test', NULL,
           NULL, NULL, NULL, NULL, NULL, NULL, '127.0.0.1')), 0::bigint,
          'an unknown user gives no row and changes nothing');

SELECT results_eq(
    $$SELECT role_before, role_after FROM auth.admin_update_user(
        '$$ || :'target' || $$', ' New@Example.TEST ', NULL,
        '{"name":null,"role":"admin","city":"Oslo"}', '{"role":"user","provider":"evil","providers":["evil"]}',
        3600, true, '$$ || :'admin' || $$', 'admin@example.test', '10.0.0.1')$$,
    $$VALUES ('viewer'::text, 'user'::text)$$,
    'the role before and after are returned');
SELECT tests.clear_authentication();

SELECT is((SELECT email FROM auth.users WHERE id = :'target'), 'new@example.test',
          'the e-mail is trimmed and lower-cased');
SELECT is((SELECT identity_data->>'email' FROM auth.identities
            WHERE user_id = :'target' AND provider = 'email'), 'new@example.test',
          'the e-mail identity follows');
SELECT is((SELECT raw_user_meta_data FROM auth.users WHERE id = :'target'),
          '{"keep":1,"city":"Oslo"}'::jsonb,
          'user metadata is merged, null removes a key, and "role" is dropped');
SELECT is((SELECT raw_app_meta_data->>'role' FROM auth.users WHERE id = :'target'), 'user',
          'the role comes from app metadata');
SELECT is((SELECT raw_app_meta_data->>'provider' FROM auth.users WHERE id = :'target'), 'email',
          'provider cannot be overwritten');
SELECT is((SELECT raw_app_meta_data->'providers' FROM auth.users WHERE id = :'target'), '["email"]'::jsonb,
          'providers cannot be overwritten');
SELECT ok((SELECT banned_until > now() + interval '59 minutes' FROM auth.users WHERE id = :'target'),
          'the ban lasts the given seconds');
SELECT is((SELECT count(*) FROM auth.sessions WHERE user_id = :'target'), 1::bigint,
          'sessions survive an update without a password');
SELECT is((SELECT count(*) FROM auth.audit_log_entries
            WHERE payload->>'action' = 'user_modified' AND payload->>'actor_id' = :'admin'
              AND payload->'traits'->>'user_id' = :'target'
              AND (payload->'traits'->>'banned')::boolean), 1::bigint,
          'the update is audited with its actor');

SELECT tests.authenticate_as_service();
SELECT lives_ok($$SELECT * FROM auth.admin_update_user('$$ || :'target' || $$', NULL,
                  '$2b$04$abcdefghijklmnopqrstuu5yDbNbkLW5r3Vx4I6pGU0sZMJH7a2m', NULL, NULL, -1,
                  NULL, NULL, NULL, '')$$,
                'a password and an unban');
SELECT tests.clear_authentication();
SELECT is((SELECT count(*) FROM auth.sessions WHERE user_id = :'target'), 0::bigint,
          'a password set by an admin ends every session');
SELECT ok((SELECT banned_until IS NULL FROM auth.users WHERE id = :'target'),
          'a negative ban lifts the ban');

SELECT tests.authenticate_as_service();
SELECT throws_ok($$SELECT * FROM auth.admin_update_user('$$ || :'target' || $$', 'taken@example.test',
                   NULL, NULL, NULL, NULL, NULL, NULL, NULL, '')$$,
                 '23505', NULL, 'an e-mail already taken is a unique violation');
SELECT tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Only service_role may execute them
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'admin');
SELECT throws_ok($$SELECT * FROM auth.admin_update_user('$$ || :'target' || $$', NULL, NULL,
                   '{}', '{"role":"admin"}', NULL, NULL, NULL, NULL, '')$$,
                 '42501', NULL, 'an authenticated user (even an admin) cannot call admin_update_user');
SELECT tests.clear_authentication();
SELECT tests.authenticate_as_anon();
SELECT throws_ok($$SELECT auth.merge_metadata('{}', '{}')$$, '42501', NULL,
                 'anon cannot call merge_metadata');
SELECT tests.clear_authentication();

SELECT * FROM finish();
ROLLBACK;
