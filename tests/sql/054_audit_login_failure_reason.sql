-- tests/sql/054_audit_login_failure_reason.sql: a failed sign-in's reason in
-- public.audit_logs (migrations/054_audit_login_failure_reason.sql).
BEGIN;
SELECT plan(6);

SELECT tests.authenticate_as_service();
SELECT auth.audit('login_failed', NULL, 'pw54@example.test', '198.51.100.54', '{}');
SELECT auth.audit('login_failed', NULL, NULL, '198.51.100.55',
                  '{"provider": "google", "reason": "state cookie missing", "flow": "implicit"}');
SELECT auth.audit('login_failed', NULL, 'pkce54@example.test', '198.51.100.56',
                  '{"provider": "github", "reason": "code verifier does not match", "flow": "pkce"}');
SELECT tests.clear_authentication();

SELECT is((SELECT error_message FROM public.audit_logs WHERE metadata ->> 'email' = 'pw54@example.test'),
          'invalid credentials', 'a failed password sign-in is still "invalid credentials"');
SELECT is((SELECT metadata ? 'provider' FROM public.audit_logs WHERE metadata ->> 'email' = 'pw54@example.test'),
          false, 'and names no provider');
SELECT is((SELECT error_message FROM public.audit_logs WHERE host(ip_address) = '198.51.100.55'),
          'google sign-in failed: state cookie missing', 'an OAuth failure says which provider and why');
SELECT is((SELECT metadata ->> 'provider' || '/' || (metadata ->> 'flow') FROM public.audit_logs WHERE host(ip_address) = '198.51.100.55'),
          'google/implicit', 'with the provider and the flow in metadata');
SELECT is((SELECT action || ':' || status || ':' || error_message FROM public.audit_logs WHERE metadata ->> 'email' = 'pkce54@example.test'),
          'login:failure:github sign-in failed: code verifier does not match', 'a PKCE failure too, with the seed''s action name');
SELECT ok((SELECT metadata ? 'auth_event' AND metadata ? 'auth_audit_id' FROM public.audit_logs WHERE host(ip_address) = '198.51.100.56'),
          'the metadata keys of 018 are kept');

SELECT * FROM finish();
ROLLBACK;
