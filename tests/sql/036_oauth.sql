-- tests/sql/036_oauth.sql: OAuth sign-in and PKCE flows
-- (migrations/036_oauth.sql): who sees the flows, linking by verified e-mail
-- only, the default role whatever the provider says, single-use auth codes,
-- the amr claim.
BEGIN;
SELECT plan(25);

SELECT tests.create_user('alice@example.test', 'user') AS alice \gset

-- ---------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------
SELECT ok(NOT has_table_privilege('authenticated', 'auth.flow_state', 'SELECT')
          AND NOT has_table_privilege('anon', 'auth.flow_state', 'SELECT')
          AND NOT has_table_privilege('authenticated', 'auth.mfa_amr_claims', 'SELECT'),
          'API roles cannot read flows or amr claims');
SELECT ok(NOT has_function_privilege('authenticated', 'auth.oauth_sign_in(text, text, jsonb, text, boolean, text, boolean, uuid)', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'auth.redeem_flow_state(text, integer)', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'auth.issue_flow_code(uuid, uuid, text, integer, text, text)', 'EXECUTE'),
          'API roles cannot call the OAuth functions');

-- ---------------------------------------------------------------------------
-- auth.oauth_sign_in
-- ---------------------------------------------------------------------------
SELECT is((SELECT status FROM auth.oauth_sign_in('github', '1', '{"name":"A"}', 'ALICE@example.test', false,
                                                 'user', true, gen_random_uuid())),
          'unverified', 'an unverified address is not linked to the existing account');
SELECT is((SELECT count(*) FROM auth.identities WHERE user_id = :'alice'), 1::bigint, 'nothing was linked');
SELECT is((SELECT status FROM auth.oauth_sign_in('github', '2', '{}', 'nobody@example.test', false,
                                                 'user', true, gen_random_uuid())),
          'unverified', 'nor does it create an account');
SELECT is((SELECT status FROM auth.oauth_sign_in('github', '3', '{}', '', true, 'user', true, gen_random_uuid())),
          'no_email', 'no address, no account');

UPDATE auth.users SET encrypted_password = 'x' WHERE id = :'alice';
SELECT is((SELECT user_id FROM auth.oauth_sign_in('github', '4', '{"name":"A"}', 'Alice@Example.test', true,
                                                  'user', false, gen_random_uuid())),
          :'alice'::uuid, 'a verified address links to its account (even with sign-up off)');
SELECT is((SELECT raw_app_meta_data->'providers' FROM auth.users WHERE id = :'alice'), '["email", "github"]'::jsonb,
          'the provider joins app_metadata.providers');
SELECT is((SELECT encrypted_password FROM auth.users WHERE id = :'alice'), 'x',
          'a confirmed owner keeps the password');
SELECT is((SELECT user_id FROM auth.oauth_sign_in('github', '4', '{}', 'changed@example.test', false,
                                                  'user', false, gen_random_uuid())),
          :'alice'::uuid, 'a known identity signs in whatever its address says now');

SELECT is((SELECT status FROM auth.oauth_sign_in('google', 'g1', '{}', 'new@example.test', true,
                                                 'user', false, gen_random_uuid())),
          'signup_disabled', 'nobody to link and sign-up off: refused');
SELECT is((SELECT count(*) FROM auth.users WHERE email = 'new@example.test'), 0::bigint, 'and nobody created');

SELECT '11111111-1111-4111-8111-111111111111' AS bob \gset
SELECT is((SELECT created FROM auth.oauth_sign_in('google', 'g2', '{"role":"admin","name":"Bob"}', 'bob@example.test',
                                                  true, 'user', true, :'bob')),
          true, 'a new verified user is created');
SELECT is((SELECT raw_app_meta_data->>'role' FROM auth.users WHERE id = :'bob'), 'user',
          'with the given role, never the provider''s');
SELECT ok(NOT (SELECT raw_user_meta_data ? 'role' FROM auth.users WHERE id = :'bob')
          AND NOT (SELECT identity_data ? 'role' FROM auth.identities WHERE user_id = :'bob'),
          'the provider''s role claim is not stored');
SELECT is((SELECT raw_app_meta_data->>'provider' FROM auth.users WHERE id = :'bob'), 'google',
          'app_metadata.provider names the provider');
UPDATE auth.users SET deleted_at = now() WHERE id = :'bob';
SELECT is((SELECT status FROM auth.oauth_sign_in('google', 'g2', '{}', 'bob@example.test', true, 'user', true, gen_random_uuid())),
          'deleted', 'a deleted user''s identity does not sign in');
SELECT throws_ok($$SELECT * FROM auth.oauth_sign_in('google', 'g3', '{}', 'eve@example.test', true, 'superuser', true, gen_random_uuid())$$,
                 '22023', NULL, 'the role must be one of ours');

-- an account registered by someone who never confirmed the address: linking
-- confirms it and drops the stranger's password
INSERT INTO auth.users (id, aud, role, email, encrypted_password, raw_app_meta_data)
VALUES ('22222222-2222-4222-8222-222222222222', 'authenticated', 'authenticated', 'carol@example.test', 'squatter',
        '{"provider":"email","providers":["email"],"role":"user"}');
SELECT is((SELECT status FROM auth.oauth_sign_in('github', '5', '{}', 'carol@example.test', true, 'user', true, gen_random_uuid())),
          'ok', 'the owner signs in with a verified address');
SELECT ok((SELECT encrypted_password IS NULL AND email_confirmed_at IS NOT NULL FROM auth.users
            WHERE id = '22222222-2222-4222-8222-222222222222'),
          'the unconfirmed password is gone, the address confirmed');

-- ---------------------------------------------------------------------------
-- Flows
-- ---------------------------------------------------------------------------
INSERT INTO auth.flow_state (id, code_challenge_method, code_challenge, provider_type, authentication_method)
VALUES ('33333333-3333-4333-8333-333333333333', 's256', repeat('c', 43), 'github', 'oauth');
SELECT throws_ok($$INSERT INTO auth.flow_state (code_challenge_method, code_challenge, provider_type, authentication_method)
                   VALUES ('md5', repeat('c', 43), 'github', 'oauth')$$, '23514', NULL, 'only s256 and plain');
SELECT is(auth.issue_flow_code('33333333-3333-4333-8333-333333333333', :'alice', repeat('d', 64), 600, 'pt', NULL), true,
          'a code is issued for a fresh flow');
SELECT is(auth.issue_flow_code('33333333-3333-4333-8333-333333333333', :'alice', repeat('e', 64), 600, 'pt', NULL), false,
          'only once');
SELECT is((SELECT provider_access_token FROM auth.redeem_flow_state(repeat('d', 64), 300)), 'pt',
          'the code redeems the flow');
SELECT is((SELECT count(*) FROM auth.redeem_flow_state(repeat('d', 64), 300)), 0::bigint, 'once');

SELECT * FROM finish();
ROLLBACK;
