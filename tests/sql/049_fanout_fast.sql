-- tests/sql/049_fanout_fast.sql: migrations/049_fanout_fast.sql keeps what the
-- functions and triggers it rewrote did (less work per row, same results), and
-- realtime.set_tables() leaves a capture trigger that is already right alone.
BEGIN;
SELECT plan(19);

SELECT tests.create_user('alice@example.test', 'user') AS alice \gset
SELECT tests.create_user('bob@example.test', 'user') AS bob \gset
SELECT tests.create_user('ada@example.test', 'admin') AS ada \gset

INSERT INTO public.templates (id, user_id, name, type, subject, content) VALUES
    ('70000000-0000-0000-0000-0000000000b1', :'bob', 'Promo', 'email', 'Sale', 'Sale!');

-- ---------------------------------------------------------------------------
-- Hot functions in PL/pgSQL
-- ---------------------------------------------------------------------------

SELECT is((SELECT l.lanname::text FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
            WHERE p.oid = 'public.audit_redact(jsonb)'::regprocedure),
          'plpgsql', 'audit_redact is PL/pgSQL (its plans are kept per session)');
SELECT is(public.audit_redact('{"a": 1, "b": "x", "c": null}'::jsonb), '{"a": 1, "b": "x", "c": null}'::jsonb,
          'a flat object without secret keys comes back unchanged');
SELECT is(public.audit_redact('{"a": {"Api_Key": "k", "b": [{"PRIVATE_KEY": 1}, 2]}, "z": "token"}'::jsonb),
          '{"a": {"Api_Key": "[REDACTED]", "b": [{"PRIVATE_KEY": "[REDACTED]"}, 2]}, "z": "token"}'::jsonb,
          'secret keys are redacted at any depth, values named like secrets are kept');
SELECT is(public.audit_redact('{"my_password_hash": 1}'::jsonb), '{"my_password_hash": "[REDACTED]"}'::jsonb,
          'a key that contains a secret word is redacted');
SELECT is(public.audit_redact('[1, [2, {"secret": 3}], "password"]'::jsonb),
          '[1, [2, {"secret": "[REDACTED]"}], "password"]'::jsonb, 'arrays are walked, in order');
SELECT is(public.audit_redact('{}'::jsonb), '{}'::jsonb, 'an empty object stays empty');
SELECT is(public.audit_redact('[]'::jsonb), '[]'::jsonb, 'an empty array stays empty');
SELECT is(public.audit_redact('"secret"'::jsonb), '"secret"'::jsonb, 'a scalar is returned as it is');

SELECT is(auth.db_role_for(:'alice'::text), 'app_user', 'db_role_for: a user');
SELECT is(auth.db_role_for('not-a-uuid'), 'anon', 'db_role_for: a malformed sub is anon');
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', :'ada')), 'app_admin',
          'db_role_for_claims: an admin without the MFA requirement');
SELECT is(auth.db_role_for_claims(jsonb_build_object('sub', gen_random_uuid())), 'anon',
          'db_role_for_claims: an unknown user is anon');

-- ---------------------------------------------------------------------------
-- campaigns' BEFORE triggers with WHEN clauses
-- ---------------------------------------------------------------------------

SELECT tests.authenticate_as(:'alice');
INSERT INTO public.campaigns (id, name, type, from_email)
    VALUES ('c0000000-0000-0000-0000-0000000000e1', 'With sender', 'email', '  News@Acme.Example ');
INSERT INTO public.campaigns (id, name, type) VALUES ('c0000000-0000-0000-0000-0000000000e2', 'No sender', 'email');
SELECT is((SELECT from_email FROM public.campaigns WHERE id = 'c0000000-0000-0000-0000-0000000000e1'),
          'news@acme.example', 'from_email is trimmed and lower-cased on insert');
SELECT is((SELECT from_email FROM public.campaigns WHERE id = 'c0000000-0000-0000-0000-0000000000e2'),
          NULL, 'no from_email stays NULL');
UPDATE public.campaigns SET from_email = 'Sales@Acme.Example' WHERE id = 'c0000000-0000-0000-0000-0000000000e2';
SELECT is((SELECT from_email FROM public.campaigns WHERE id = 'c0000000-0000-0000-0000-0000000000e2'),
          'sales@acme.example', 'from_email is normalised on update');
SELECT throws_ok($$INSERT INTO public.campaigns (name, type, template_id)
                   VALUES ('Foreign', 'email', '70000000-0000-0000-0000-0000000000b1')$$,
                 '23503', NULL, 'a campaign cannot name another user''s template (check_references still fires)');
SELECT tests.clear_authentication();

SELECT is((SELECT count(*)::int FROM public.audit_logs
            WHERE resource_id = 'c0000000-0000-0000-0000-0000000000e1' AND action = 'create'
              AND new_value ->> 'from_email' = 'news@acme.example'),
          1, 'the insert is audited with the row as stored');

-- ---------------------------------------------------------------------------
-- realtime.set_tables
-- ---------------------------------------------------------------------------

SELECT realtime.set_tables(ARRAY['campaigns']);
SELECT oid AS trig FROM pg_trigger WHERE tgname = 'campaignd_realtime' AND tgrelid = 'public.campaigns'::regclass \gset
SELECT is(realtime.set_tables(ARRAY['campaigns', 'no_such_table']), ARRAY['no_such_table'],
          'set_tables still names the tables that do not exist');
SELECT is((SELECT oid FROM pg_trigger WHERE tgname = 'campaignd_realtime' AND tgrelid = 'public.campaigns'::regclass),
          :'trig'::oid, 'a capture trigger that is already right is kept (not dropped and created again)');

SELECT * FROM finish();
ROLLBACK;
