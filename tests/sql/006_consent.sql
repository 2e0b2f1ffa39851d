-- tests/sql/006_consent.sql: public.sms_consent, public.email_subscriptions and
-- public.contacts (migrations/006_consent.sql): schema, grants, RLS for every
-- role x command, e-mail normalisation, E.164, uniqueness, consent links.
BEGIN;
SELECT plan(114);

-- ---------------------------------------------------------------------------
-- Schema
-- ---------------------------------------------------------------------------
SELECT ok((SELECT bool_and(relrowsecurity) FROM pg_class
           WHERE oid IN ('public.sms_consent'::regclass, 'public.email_subscriptions'::regclass,
                         'public.contacts'::regclass)),
          'RLS on sms_consent, email_subscriptions and contacts');
SELECT col_type_is('public', 'sms_consent', 'consented_at', 'timestamp with time zone', 'consented_at is timestamptz');
SELECT col_type_is('public', 'email_subscriptions', 'subscription_types', 'jsonb', 'subscription_types is jsonb');
SELECT col_default_is('public', 'email_subscriptions', 'subscription_types', '["marketing", "newsletter"]'::jsonb::text,
                      'subscription_types defaults to marketing + newsletter');
SELECT has_index('public', 'sms_consent', 'idx_sms_consent_phone', 'unique phone index');
SELECT has_index('public', 'email_subscriptions', 'idx_email_subscriptions_email', 'unique email index');
SELECT has_index('public', 'contacts', 'idx_contacts_user_email', 'unique (owner, email) index');
SELECT has_index('public', 'contacts', 'idx_contacts_user_phone', 'unique (owner, phone) index');
SELECT has_column('public', 'contacts', 'attributes', 'contacts.attributes');
SELECT has_column('public', 'contacts', 'deleted_at', 'contacts.deleted_at (soft delete)');
SELECT has_trigger('public', 'contacts', 'audit', 'contacts audit trigger');
SELECT has_trigger('public', 'sms_consent', 'audit', 'sms_consent audit trigger');
SELECT has_trigger('public', 'email_subscriptions', 'audit', 'email_subscriptions audit trigger');
SELECT is(tests.privs('anon', 'public.sms_consent') || tests.privs('anon', 'public.email_subscriptions')
          || tests.privs('anon', 'public.contacts'), '', 'anon has no privilege on the three tables');
SELECT is(tests.privs('authenticated', 'public.sms_consent'), 'DELETE,INSERT,SELECT,UPDATE', 'authenticated on sms_consent');
SELECT is(tests.privs('authenticated', 'public.contacts'), 'DELETE,INSERT,SELECT,UPDATE', 'authenticated on contacts');

-- ---------------------------------------------------------------------------
-- Fixture
-- ---------------------------------------------------------------------------
SELECT tests.create_user('admin@example.test', 'admin') AS admin \gset
SELECT tests.create_user('viewer@example.test', 'viewer') AS viewer \gset
SELECT tests.create_user('alice@example.test', 'user') AS alice \gset
SELECT tests.create_user('bob@example.test', 'user') AS bob \gset
INSERT INTO public.sms_consent (id, phone_number, consent_given, consent_source, updated_at) VALUES
    ('50000000-0000-0000-0000-000000000001', '+15550000001', true, 'web_form', '2000-01-01');
INSERT INTO public.email_subscriptions (id, email, updated_at) VALUES
    ('5e000000-0000-0000-0000-000000000001', 'one@example.com', '2000-01-01');
INSERT INTO public.contacts (id, user_id, email, phone, first_name) VALUES
    ('c1000000-0000-0000-0000-00000000000a', :'alice', 'one@example.com', '+15550000001', 'One'),
    ('c1000000-0000-0000-0000-00000000000b', :'bob', 'two@example.com', '+15550000002', 'Two');

-- ---------------------------------------------------------------------------
-- anon
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as_anon();
SELECT throws_ok($$SELECT * FROM public.sms_consent$$, '42501', NULL, 'anon cannot SELECT sms_consent');
SELECT throws_ok($$INSERT INTO public.sms_consent (phone_number) VALUES ('+15559999999')$$, '42501', NULL, 'anon cannot INSERT sms_consent');
SELECT throws_ok($$UPDATE public.sms_consent SET consent_given = true$$, '42501', NULL, 'anon cannot UPDATE sms_consent');
SELECT throws_ok($$DELETE FROM public.sms_consent$$, '42501', NULL, 'anon cannot DELETE sms_consent');
SELECT throws_ok($$SELECT * FROM public.email_subscriptions$$, '42501', NULL, 'anon cannot SELECT email_subscriptions');
SELECT throws_ok($$INSERT INTO public.email_subscriptions (email) VALUES ('a@b.c')$$, '42501', NULL, 'anon cannot INSERT email_subscriptions');
SELECT throws_ok($$UPDATE public.email_subscriptions SET subscribed = false$$, '42501', NULL, 'anon cannot UPDATE email_subscriptions');
SELECT throws_ok($$DELETE FROM public.email_subscriptions$$, '42501', NULL, 'anon cannot DELETE email_subscriptions');
SELECT throws_ok($$SELECT * FROM public.contacts$$, '42501', NULL, 'anon cannot SELECT contacts');
SELECT throws_ok($$INSERT INTO public.contacts (phone) VALUES ('+15559999999')$$, '42501', NULL, 'anon cannot INSERT contacts');
SELECT throws_ok($$UPDATE public.contacts SET first_name = 'x'$$, '42501', NULL, 'anon cannot UPDATE contacts');
SELECT throws_ok($$DELETE FROM public.contacts$$, '42501', NULL, 'anon cannot DELETE contacts');

-- ---------------------------------------------------------------------------
-- viewer: no consent rows and no contacts (personal data; counts come through
-- reports and analytics), writes nothing (018)
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'viewer');
SELECT is((SELECT count(*) FROM public.sms_consent), 0::bigint, 'viewer reads no sms_consent (phone numbers)');
SELECT throws_ok($$INSERT INTO public.sms_consent (phone_number) VALUES ('+15559999999')$$, '42501', NULL,
                 'viewer cannot INSERT sms_consent');
SELECT is(tests.affected($$UPDATE public.sms_consent SET consent_given = false$$), 0::bigint,
          'viewer UPDATE of sms_consent touches 0 rows');
SELECT is(tests.affected($$DELETE FROM public.sms_consent$$), 0::bigint, 'viewer DELETE of sms_consent touches 0 rows');
SELECT is((SELECT count(*) FROM public.email_subscriptions), 0::bigint, 'viewer reads no email_subscriptions (addresses)');
SELECT throws_ok($$INSERT INTO public.email_subscriptions (email) VALUES ('v@example.com')$$, '42501', NULL,
                 'viewer cannot INSERT email_subscriptions');
SELECT is(tests.affected($$UPDATE public.email_subscriptions SET subscribed = false$$), 0::bigint,
          'viewer UPDATE of email_subscriptions touches 0 rows');
SELECT is(tests.affected($$DELETE FROM public.email_subscriptions$$), 0::bigint,
          'viewer DELETE of email_subscriptions touches 0 rows');
SELECT is((SELECT count(*) FROM public.contacts), 0::bigint, 'viewer reads no contacts');
SELECT throws_ok(format($$INSERT INTO public.contacts (user_id, phone) VALUES (%L, '+15559999999')$$, :'viewer'),
                 '42501', NULL, 'viewer cannot INSERT contacts');
SELECT is(tests.affected($$UPDATE public.contacts SET first_name = 'v'$$), 0::bigint, 'viewer UPDATE of contacts touches 0 rows');
SELECT is(tests.affected($$DELETE FROM public.contacts$$), 0::bigint, 'viewer DELETE of contacts touches 0 rows');

-- ---------------------------------------------------------------------------
-- alice (user): consent of her contacts' numbers and addresses (read, insert,
-- update; no delete) (018)
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'alice');
-- alice (owner) on contacts
SELECT results_eq($$SELECT id FROM public.contacts$$, $$VALUES ('c1000000-0000-0000-0000-00000000000a'::uuid)$$,
                  'alice reads only her contact');
SELECT lives_ok($$INSERT INTO public.contacts (id, email, phone, first_name, last_name, attributes, source)
                  VALUES ('c1000000-0000-0000-0000-0000000000a2', ' New@Example.com', '+15550000003', 'New', 'Person',
                          '{"tier": "gold"}', 'import')$$,
                'alice can INSERT a contact');
SELECT is((SELECT email FROM public.contacts WHERE id = 'c1000000-0000-0000-0000-0000000000a2')::text, 'new@example.com',
          'the contact e-mail was normalised');
SELECT throws_ok($$INSERT INTO public.contacts (email) VALUES ('NEW@example.COM')$$, '23505', NULL,
                 'a second contact with the same e-mail (any case) for one owner is refused');
SELECT throws_ok($$INSERT INTO public.contacts (phone) VALUES ('+15550000003')$$, '23505', NULL,
                 'a second contact with the same phone for one owner is refused');
SELECT throws_ok(format($$INSERT INTO public.contacts (user_id, email) VALUES (%L, 'x@example.com')$$, :'bob'),
                 '42501', NULL, 'alice cannot INSERT a contact owned by bob');
SELECT is(tests.affected($$UPDATE public.contacts SET first_name = 'Uno' WHERE id = 'c1000000-0000-0000-0000-00000000000a'$$),
          1::bigint, 'alice can UPDATE her contact');
SELECT throws_ok(format($$UPDATE public.contacts SET user_id = %L WHERE id = 'c1000000-0000-0000-0000-00000000000a'$$, :'bob'),
                 '42501', NULL, 'alice cannot move her contact to bob');
SELECT is(tests.affected($$UPDATE public.contacts SET first_name = 'x' WHERE id = 'c1000000-0000-0000-0000-00000000000b'$$),
          0::bigint, 'alice UPDATE of bob''s contact touches 0 rows');
SELECT is(tests.affected($$DELETE FROM public.contacts WHERE id = 'c1000000-0000-0000-0000-00000000000b'$$),
          0::bigint, 'alice DELETE of bob''s contact touches 0 rows');
SELECT is(tests.affected($$UPDATE public.contacts SET deleted_at = now() WHERE id = 'c1000000-0000-0000-0000-0000000000a2'$$),
          1::bigint, 'alice can soft-delete her contact');
UPDATE public.contacts SET deleted_at = NULL WHERE id = 'c1000000-0000-0000-0000-0000000000a2';

SELECT is((SELECT count(*) FROM public.sms_consent), 1::bigint, 'a user reads the consent of her contact''s number');
SELECT throws_ok($$INSERT INTO public.sms_consent (phone_number, consent_given, consent_source)
                   VALUES ('+15550000004', true, 'api')$$,
                 '42501', NULL, 'a user cannot INSERT consent for a number none of her contacts has');
SELECT lives_ok($$INSERT INTO public.sms_consent (id, phone_number, consent_given, consent_source)
                  VALUES ('50000000-0000-0000-0000-000000000003', '+15550000003', true, 'api')$$,
                'a user can INSERT consent for her contact''s number');
SELECT is(tests.affected($$UPDATE public.sms_consent SET consent_given = false, opt_out_reason = 'STOP'
                             WHERE id = '50000000-0000-0000-0000-000000000001'$$),
          1::bigint, 'a user can UPDATE sms_consent (record an opt-out)');
SELECT is(tests.affected($$DELETE FROM public.sms_consent WHERE id = '50000000-0000-0000-0000-000000000003'$$),
          0::bigint, 'a user DELETE of sms_consent touches 0 rows (consent is evidence)');
SELECT is((SELECT count(*) FROM public.email_subscriptions), 1::bigint, 'a user reads the subscription of her contact''s address');
SELECT lives_ok($$INSERT INTO public.email_subscriptions (id, email) VALUES ('5e000000-0000-0000-0000-000000000003', '  New@Example.COM ')$$,
                'a user can INSERT the subscription of her contact''s address');
SELECT is((SELECT email FROM public.email_subscriptions WHERE id = '5e000000-0000-0000-0000-000000000003')::text,
          'new@example.com', 'the e-mail was trimmed and lower-cased');
SELECT throws_ok($$INSERT INTO public.email_subscriptions (email) VALUES ('NEW@example.com')$$, '23505', NULL,
                 'e-mail addresses are unique case-insensitively');
SELECT lives_ok($$INSERT INTO public.email_subscriptions (email, subscribed) VALUES ('ONE@example.com', false)
                  ON CONFLICT (email) DO UPDATE SET subscribed = excluded.subscribed$$,
                'upsert ON CONFLICT (email) works (PostgREST on_conflict=email)');
SELECT is((SELECT subscribed FROM public.email_subscriptions WHERE id = '5e000000-0000-0000-0000-000000000001'),
          false, 'the upsert updated the existing row');
SELECT is(tests.affected($$DELETE FROM public.email_subscriptions WHERE id = '5e000000-0000-0000-0000-000000000003'$$),
          0::bigint, 'a user DELETE of email_subscriptions touches 0 rows');

-- bob: same e-mail as alice's contact is fine for another owner
SELECT tests.authenticate_as(:'bob');
SELECT is((SELECT count(*) FROM public.contacts WHERE user_id = :'alice'), 0::bigint, 'bob does not see alice''s contacts');
SELECT lives_ok($$INSERT INTO public.contacts (id, email) VALUES ('c1000000-0000-0000-0000-0000000000b2', 'one@example.com')$$,
                'bob can have a contact with the same e-mail as alice''s');
SELECT is(tests.affected($$UPDATE public.sms_consent SET opt_out_reason = 'STOP received'
                             WHERE id = '50000000-0000-0000-0000-000000000001'$$),
          0::bigint, 'bob cannot UPDATE the consent of a number none of his contacts has (018)');

-- admin
SELECT tests.authenticate_as(:'admin');
SELECT is((SELECT count(*) FROM public.sms_consent), 2::bigint, 'admin reads sms_consent');
SELECT lives_ok($$INSERT INTO public.sms_consent (id, phone_number) VALUES ('50000000-0000-0000-0000-0000000000c1', '+15550000099')$$,
                'admin can INSERT sms_consent');
SELECT is(tests.affected($$UPDATE public.sms_consent SET consent_source = 'manual' WHERE id = '50000000-0000-0000-0000-0000000000c1'$$),
          1::bigint, 'admin can UPDATE sms_consent');
SELECT is(tests.affected($$DELETE FROM public.sms_consent WHERE id = '50000000-0000-0000-0000-0000000000c1'$$),
          1::bigint, 'admin can DELETE sms_consent');
SELECT is((SELECT count(*) FROM public.email_subscriptions), 2::bigint, 'admin reads email_subscriptions');
SELECT lives_ok($$INSERT INTO public.email_subscriptions (id, email) VALUES ('5e000000-0000-0000-0000-0000000000c1', 'admin-made@example.com')$$,
                'admin can INSERT email_subscriptions');
SELECT is(tests.affected($$UPDATE public.email_subscriptions SET subscribed = false WHERE id = '5e000000-0000-0000-0000-0000000000c1'$$),
          1::bigint, 'admin can UPDATE email_subscriptions');
SELECT is(tests.affected($$DELETE FROM public.email_subscriptions WHERE id = '5e000000-0000-0000-0000-0000000000c1'$$),
          1::bigint, 'admin can DELETE email_subscriptions');
SELECT is((SELECT count(*) FROM public.contacts), 4::bigint, 'admin reads all contacts');
SELECT lives_ok(format($$INSERT INTO public.contacts (id, user_id, phone) VALUES ('c1000000-0000-0000-0000-0000000000c1', %L, '+15550000077')$$, :'bob'),
                'admin can INSERT a contact for another user');
SELECT is(tests.affected(format($$UPDATE public.contacts SET user_id = %L WHERE id = 'c1000000-0000-0000-0000-0000000000c1'$$, :'alice')),
          1::bigint, 'admin can UPDATE and reassign any contact');
SELECT is(tests.affected($$DELETE FROM public.contacts WHERE id = 'c1000000-0000-0000-0000-0000000000c1'$$),
          1::bigint, 'admin can DELETE any contact');

-- service_role
SELECT tests.authenticate_as_service();
SELECT is((SELECT count(*) FROM public.sms_consent), 2::bigint, 'service_role reads sms_consent');
SELECT lives_ok($$INSERT INTO public.sms_consent (id, phone_number) VALUES ('50000000-0000-0000-0000-0000000000d1', '+15550000088')$$,
                'service_role can INSERT sms_consent');
SELECT is(tests.affected($$UPDATE public.sms_consent SET consent_given = true WHERE id = '50000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can UPDATE sms_consent');
SELECT is(tests.affected($$DELETE FROM public.sms_consent WHERE id = '50000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can DELETE sms_consent');
SELECT is((SELECT count(*) FROM public.email_subscriptions), 2::bigint, 'service_role reads email_subscriptions');
SELECT lives_ok($$INSERT INTO public.email_subscriptions (id, email) VALUES ('5e000000-0000-0000-0000-0000000000d1', 'svc@example.com')$$,
                'service_role can INSERT email_subscriptions');
SELECT is(tests.affected($$UPDATE public.email_subscriptions SET subscribed = false WHERE id = '5e000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can UPDATE email_subscriptions');
SELECT is(tests.affected($$DELETE FROM public.email_subscriptions WHERE id = '5e000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can DELETE email_subscriptions');
SELECT is((SELECT count(*) FROM public.contacts), 4::bigint, 'service_role reads all contacts');
SELECT lives_ok($$INSERT INTO public.contacts (id, phone) VALUES ('c1000000-0000-0000-0000-0000000000d1', '+15550000066')$$,
                'service_role can INSERT a contact');
SELECT is(tests.affected($$UPDATE public.contacts SET first_name = 'S' WHERE id = 'c1000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can UPDATE a contact');
SELECT is(tests.affected($$DELETE FROM public.contacts WHERE id = 'c1000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can DELETE a contact');
SELECT tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- CHECKs
-- ---------------------------------------------------------------------------
SELECT throws_ok($$INSERT INTO public.sms_consent (phone_number) VALUES ('555-123-4567')$$, '23514', NULL,
                 'sms_consent refuses a phone number that is not E.164');
SELECT throws_ok($$INSERT INTO public.sms_consent (phone_number) VALUES ('+05551234567')$$, '23514', NULL,
                 'E.164 has no leading zero country code');
SELECT throws_ok($$INSERT INTO public.sms_consent (phone_number) VALUES ('+1234567890123456')$$, '23514', NULL,
                 'E.164 has at most 15 digits');
SELECT throws_ok($$INSERT INTO public.contacts (phone) VALUES ('+1 555 0000')$$, '23514', NULL,
                 'contacts refuse a phone number that is not E.164');
SELECT throws_ok($$INSERT INTO public.contacts (email) VALUES ('not-an-address')$$, '23514', NULL,
                 'contacts refuse an e-mail without @');
SELECT throws_ok($$INSERT INTO public.contacts (first_name) VALUES ('Nobody')$$, '23514', NULL,
                 'a contact needs an e-mail or a phone');
SELECT throws_ok($$INSERT INTO public.contacts (phone, attributes) VALUES ('+15551112222', '[1]')$$, '23514', NULL,
                 'contact attributes must be an object');
SELECT throws_ok($$INSERT INTO public.email_subscriptions (email, subscription_types) VALUES ('t@example.com', '"x"')$$, '23514', NULL,
                 'subscription_types must be an array');

-- ---------------------------------------------------------------------------
-- Consent timestamps and links
-- ---------------------------------------------------------------------------
SELECT is((SELECT opt_out_at FROM public.sms_consent WHERE id = '50000000-0000-0000-0000-000000000001'), now(),
          'withdrawing SMS consent stamped opt_out_at');
SELECT is((SELECT consented_at FROM public.sms_consent WHERE id = '50000000-0000-0000-0000-000000000003'), now(),
          'giving SMS consent stamped consented_at');
SELECT is((SELECT unsubscribed_at FROM public.email_subscriptions WHERE id = '5e000000-0000-0000-0000-000000000001'), now(),
          'unsubscribing stamped unsubscribed_at');
SELECT is((SELECT updated_at FROM public.sms_consent WHERE id = '50000000-0000-0000-0000-000000000001'), now(),
          'sms_consent.updated_at changed on UPDATE');
SELECT is((SELECT sms_consent_id FROM public.contacts WHERE id = 'c1000000-0000-0000-0000-00000000000a'),
          '50000000-0000-0000-0000-000000000001'::uuid, 'a contact links to the consent row of its phone');
SELECT is((SELECT email_subscription_id FROM public.contacts WHERE id = 'c1000000-0000-0000-0000-00000000000a'),
          '5e000000-0000-0000-0000-000000000001'::uuid, 'a contact links to the subscription row of its e-mail');
SELECT is((SELECT email_subscription_id FROM public.contacts WHERE id = 'c1000000-0000-0000-0000-0000000000b2'),
          '5e000000-0000-0000-0000-000000000001'::uuid, 'contacts of another owner link to the same subscription row');
SELECT is((SELECT sms_consent_id FROM public.contacts WHERE id = 'c1000000-0000-0000-0000-0000000000a2'),
          '50000000-0000-0000-0000-000000000003'::uuid, 'a consent row inserted after its contact links it');
SELECT is((SELECT sms_consent_id FROM public.contacts WHERE id = 'c1000000-0000-0000-0000-00000000000b'), NULL::uuid,
          'a contact without a consent row has no link');
INSERT INTO public.sms_consent (id, phone_number, consent_given) VALUES ('50000000-0000-0000-0000-000000000002', '+15550000002', true);
SELECT is((SELECT sms_consent_id FROM public.contacts WHERE id = 'c1000000-0000-0000-0000-00000000000b'),
          '50000000-0000-0000-0000-000000000002'::uuid, 'a consent row created later links the existing contact');
SELECT tests.authenticate_as(:'alice');
UPDATE public.contacts SET sms_consent_id = '50000000-0000-0000-0000-000000000002'
WHERE id = 'c1000000-0000-0000-0000-00000000000a';
SELECT tests.clear_authentication();
SELECT is((SELECT sms_consent_id FROM public.contacts WHERE id = 'c1000000-0000-0000-0000-00000000000a'),
          '50000000-0000-0000-0000-000000000001'::uuid, 'a writer cannot point a contact at another number''s consent');
UPDATE public.contacts SET phone = '+15550000002' WHERE id = 'c1000000-0000-0000-0000-00000000000a';
SELECT is((SELECT sms_consent_id FROM public.contacts WHERE id = 'c1000000-0000-0000-0000-00000000000a'),
          '50000000-0000-0000-0000-000000000002'::uuid, 'changing a contact''s phone relinks it');
UPDATE public.sms_consent SET phone_number = '+15550000055' WHERE id = '50000000-0000-0000-0000-000000000002';
SELECT is((SELECT count(*) FROM public.contacts WHERE sms_consent_id = '50000000-0000-0000-0000-000000000002'), 0::bigint,
          'changing a consent row''s number unlinks the contacts of the old number');
DELETE FROM public.email_subscriptions WHERE id = '5e000000-0000-0000-0000-000000000001';
SELECT is((SELECT count(*) FROM public.contacts WHERE email_subscription_id IS NOT NULL
           AND id IN ('c1000000-0000-0000-0000-00000000000a', 'c1000000-0000-0000-0000-0000000000b2')), 0::bigint,
          'deleting a subscription row unlinks its contacts and keeps them');
SELECT is((SELECT count(*) FROM public.audit_logs WHERE resource_type = 'contacts'
           AND resource_id = 'c1000000-0000-0000-0000-0000000000a2' AND action = 'create'), 1::bigint,
          'contact creation was audited');
DELETE FROM auth.users WHERE id = :'alice';
SELECT is((SELECT count(*) FROM public.contacts WHERE user_id IS NULL), 2::bigint,
          'deleting a user keeps their contacts, owner NULL');

SELECT * FROM finish();
ROLLBACK;
