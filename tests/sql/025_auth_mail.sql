-- tests/sql/025_auth_mail.sql: Auth's mail tables and functions
-- (migrations/025_auth_mail.sql): who sees the templates and tokens, single
-- use, purpose binding, expiry, code attempts, the mail budget.
BEGIN;
SELECT plan(19);

SELECT tests.create_user('admin@example.test', 'admin') AS admin \gset
SELECT tests.create_user('alice@example.test', 'user') AS alice \gset

-- ---------------------------------------------------------------------------
-- Privileges and RLS
-- ---------------------------------------------------------------------------
SELECT ok(NOT has_table_privilege('authenticated', 'auth.email_tokens', 'SELECT')
          AND NOT has_table_privilege('anon', 'auth.email_tokens', 'SELECT')
          AND NOT has_table_privilege('authenticated', 'auth.mail_sends', 'SELECT'),
          'API roles cannot read tokens or the mail log');
SELECT ok(NOT has_function_privilege('authenticated', 'auth.verify_email_token(text, text, text, text[], integer)', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'auth.mail_budget(text, text, integer, integer)', 'EXECUTE'),
          'API roles cannot call the token functions');

SELECT tests.authenticate_as(:'alice');
SELECT is((SELECT count(*) FROM public.auth_mail_templates), 0::bigint, 'a user sees no template');
UPDATE public.auth_mail_templates SET subject = 'pwned' WHERE kind = 'recovery';
SELECT tests.authenticate_as_anon();
SELECT throws_ok($$SELECT * FROM public.auth_mail_templates$$, '42501', NULL, 'anon cannot read templates');
SELECT tests.authenticate_as(:'admin');
SELECT is((SELECT count(*) FROM public.auth_mail_templates), 5::bigint, 'an admin sees the five templates');
SELECT is((SELECT subject FROM public.auth_mail_templates WHERE kind = 'recovery'), 'Reset your password',
          'the user''s update changed nothing');
UPDATE public.auth_mail_templates SET subject = 'Nouveau mot de passe' WHERE kind = 'recovery';
SELECT is((SELECT subject FROM public.auth_mail_templates WHERE kind = 'recovery'), 'Nouveau mot de passe',
          'an admin changes a subject');
SELECT throws_ok($$UPDATE public.auth_mail_templates SET subject = E'a\r\nBcc: x@evil.test' WHERE kind = 'recovery'$$,
                 '23514', NULL, 'a subject is one line');
SELECT throws_ok($$INSERT INTO public.auth_mail_templates VALUES ('x', 's', 'h', 't')$$, '42501', NULL,
                 'admins cannot add templates');
SELECT tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Tokens
-- ---------------------------------------------------------------------------
SELECT auth.issue_email_token(:'alice', 'recovery', 'alice@example.test', repeat('a', 64), 'codehash-aaaaaaaaaaaa', 3600, '');
SELECT is((SELECT status FROM auth.verify_email_token(repeat('a', 64), NULL, NULL, '{magiclink}', 5)), 'invalid',
          'a recovery token is not a magic link');
SELECT is((SELECT status FROM auth.verify_email_token(repeat('a', 64), NULL, NULL, '{recovery}', 5)), 'ok',
          'the right purpose works');
SELECT is((SELECT status FROM auth.verify_email_token(repeat('a', 64), NULL, NULL, '{recovery}', 5)), 'invalid',
          'single use');

SELECT auth.issue_email_token(:'alice', 'magiclink', 'alice@example.test', repeat('b', 64), 'codehash-bbbbbbbbbbbb', 3600, '');
UPDATE auth.email_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = repeat('b', 64);
SELECT is((SELECT status FROM auth.verify_email_token(repeat('b', 64), NULL, NULL, '{magiclink}', 5)), 'invalid',
          'expired');

SELECT auth.issue_email_token(:'alice', 'magiclink', 'alice@example.test', repeat('c', 64), 'codehash-cccccccccccc', 3600, '');
SELECT is((SELECT status FROM auth.verify_email_token(NULL, 'ALICE@example.test', 'wrong-code-hash-xx', '{magiclink}', 2)),
          'invalid', 'a wrong code');
SELECT is((SELECT attempts FROM auth.email_tokens WHERE token_hash = repeat('c', 64)), 1, 'counts an attempt');
SELECT is((SELECT status FROM auth.verify_email_token(NULL, 'alice@example.test', 'wrong-code-hash-yy', '{magiclink}', 2)),
          'invalid', 'a second wrong code');
SELECT is((SELECT count(*) FROM auth.email_tokens WHERE token_hash = repeat('c', 64)), 0::bigint,
          'the code dies after the last attempt');

-- ---------------------------------------------------------------------------
-- Mail budget
-- ---------------------------------------------------------------------------
SELECT is(auth.mail_budget('Bob@example.test', '198.51.100.1', 60, 100), 0, 'the first mail goes');
SELECT ok(auth.mail_budget('bob@example.test', '198.51.100.2', 60, 100) > 0,
          'the next one to the same address (any case, any IP) waits');

SELECT * FROM finish();
ROLLBACK;
