-- tests/sql/007_messages.sql: public.sms_messages, public.email_messages and
-- public.email_clicks (migrations/007_messages.sql): schema, grants, RLS for
-- every role x command (reached through the owning campaign), and that delivery
-- history survives soft and hard deletes.
BEGIN;
SELECT plan(96);

CREATE FUNCTION pg_temp.fk_action(tbl regclass, ref regclass) RETURNS text LANGUAGE sql AS $$
    SELECT confdeltype::text FROM pg_constraint WHERE conrelid = tbl AND confrelid = ref AND contype = 'f'
$$;

-- ---------------------------------------------------------------------------
-- Schema
-- ---------------------------------------------------------------------------
SELECT ok((SELECT bool_and(relrowsecurity) FROM pg_class
           WHERE oid IN ('public.sms_messages'::regclass, 'public.email_messages'::regclass,
                         'public.email_clicks'::regclass)),
          'RLS on sms_messages, email_messages and email_clicks');
SELECT col_type_is('public', 'sms_messages', 'sent_at', 'timestamp with time zone', 'sms sent_at is timestamptz');
SELECT col_type_is('public', 'sms_messages', 'cost', 'numeric(10,4)', 'sms cost is DECIMAL(10,4)');
SELECT col_type_is('public', 'email_messages', 'bounced_at', 'timestamp with time zone', 'email bounced_at is timestamptz');
SELECT col_type_is('public', 'email_clicks', 'clicked_at', 'timestamp with time zone', 'clicked_at is timestamptz');
SELECT is(pg_temp.fk_action('public.sms_messages', 'public.campaigns'), 'r', 'sms_messages.campaign_id ON DELETE RESTRICT');
SELECT is(pg_temp.fk_action('public.email_messages', 'public.campaigns'), 'r', 'email_messages.campaign_id ON DELETE RESTRICT');
SELECT is(pg_temp.fk_action('public.email_clicks', 'public.email_messages'), 'r', 'email_clicks.message_id ON DELETE RESTRICT');
SELECT is(pg_temp.fk_action('public.sms_messages', 'public.contacts'), 'n', 'sms_messages.contact_id ON DELETE SET NULL');
-- 072 dropped (campaign_id) and (status): a campaign's messages are found by
-- 026's unique (campaign_id, recipient) index, also by the foreign key's check
SELECT hasnt_index('public', 'sms_messages', 'idx_sms_messages_campaign', 'no idx_sms_messages_campaign (072)');
SELECT hasnt_index('public', 'sms_messages', 'idx_sms_messages_status', 'no idx_sms_messages_status (072)');
SELECT hasnt_index('public', 'email_messages', 'idx_email_messages_campaign', 'no idx_email_messages_campaign (072)');
SELECT hasnt_index('public', 'email_messages', 'idx_email_messages_status', 'no idx_email_messages_status (072)');
CREATE FUNCTION pg_temp.plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text; o text := '';
BEGIN
    FOR r IN EXECUTE 'EXPLAIN ' || q LOOP o := o || r || ' '; END LOOP;
    RETURN o;
END $$;
SET LOCAL enable_seqscan = off;
PREPARE by_campaign_sms(uuid) AS SELECT 1 FROM ONLY public.sms_messages x WHERE campaign_id = $1 FOR KEY SHARE OF x;
PREPARE by_campaign_email(uuid) AS SELECT 1 FROM ONLY public.email_messages x WHERE campaign_id = $1 FOR KEY SHARE OF x;
SET LOCAL plan_cache_mode = force_generic_plan;
SELECT ok(pg_temp.plan_of('EXECUTE by_campaign_sms(NULL)') ~ 'sms_messages_one_per_recipient',
          'an SMS campaign''s messages (foreign key check, generic plan) are read by the one-per-recipient index');
SELECT ok(pg_temp.plan_of('EXECUTE by_campaign_email(NULL)') ~ 'email_messages_one_per_recipient',
          'an e-mail campaign''s messages (foreign key check, generic plan) are read by the one-per-recipient index');
-- 072: the provider's ids unique among the messages that have one (NULLs
-- never conflicted), found by the webhooks' lookup
SELECT ok((SELECT indisunique AND indpred IS NOT NULL FROM pg_index
           WHERE indexrelid = 'public.sms_messages_message_sid_key'::regclass),
          'message_sid: a unique index of the non-null ids (072)');
SELECT ok((SELECT indisunique AND indpred IS NOT NULL FROM pg_index
           WHERE indexrelid = 'public.email_messages_message_id_key'::regclass),
          'email message_id: a unique index of the non-null ids (072)');
PREPARE by_sid(text) AS SELECT id FROM public.sms_messages m WHERE m.message_sid = $1 FOR UPDATE;
PREPARE by_provider_id(text) AS SELECT id FROM public.email_messages m WHERE m.message_id = $1;
SELECT ok(pg_temp.plan_of('EXECUTE by_sid(NULL)') ~ 'sms_messages_message_sid_key',
          'a status callback''s lookup by MessageSid (generic plan) reads the partial unique index');
SELECT ok(pg_temp.plan_of('EXECUTE by_provider_id(NULL)') ~ 'email_messages_message_id_key',
          'a lookup by the e-mail provider''s id (generic plan) reads the partial unique index');
-- 072: no (recipient) index on e-mail messages (no reader); the SMS one only
-- over messages with a sid, which the claim's first_to_number reads
SELECT hasnt_index('public', 'email_messages', 'idx_email_messages_recipient', 'no idx_email_messages_recipient (072)');
SELECT ok((SELECT indpred IS NOT NULL FROM pg_index
           WHERE indexrelid = 'public.idx_sms_messages_recipient'::regclass),
          'idx_sms_messages_recipient: messages with a sid only (072)');
PREPARE first_to(text, uuid) AS SELECT NOT EXISTS (SELECT 1 FROM public.sms_messages o
    WHERE o.recipient = $1 AND o.id <> $2 AND o.message_sid IS NOT NULL);
SELECT ok(pg_temp.plan_of('EXECUTE first_to(NULL, NULL)') ~ 'idx_sms_messages_recipient',
          'the claim''s first_to_number lookup (generic plan) reads the partial recipient index');
RESET plan_cache_mode;
RESET enable_seqscan;
SELECT is((SELECT array_agg(c.relname::text || ':' || array_to_string(c.reloptions, ',') ORDER BY c.relname)
           FROM pg_class c WHERE c.oid IN ('public.sms_messages'::regclass, 'public.email_messages'::regclass)),
          ARRAY['email_messages:fillfactor=50', 'sms_messages:fillfactor=50'],
          'message tables: fillfactor 50, room for the settle''s new version on its page (072)');
SELECT has_index('public', 'email_clicks', 'idx_email_clicks_message', 'idx_email_clicks_message');
SELECT is(tests.privs('anon', 'public.sms_messages') || tests.privs('anon', 'public.email_messages')
          || tests.privs('anon', 'public.email_clicks'), '', 'anon has no privilege on the three tables');
SELECT is(tests.privs('authenticated', 'public.sms_messages') || ';' || tests.privs('authenticated', 'public.email_messages')
          || ';' || tests.privs('authenticated', 'public.email_clicks'), 'DELETE,SELECT;DELETE,SELECT;DELETE,SELECT',
          'authenticated has only SELECT and DELETE (writes are the server''s)');

-- ---------------------------------------------------------------------------
-- Fixture: one campaign, contact, SMS, e-mail and click each for alice and bob
-- ---------------------------------------------------------------------------
SELECT tests.create_user('admin@example.test', 'admin') AS admin \gset
SELECT tests.create_user('viewer@example.test', 'viewer') AS viewer \gset
SELECT tests.create_user('alice@example.test', 'user') AS alice \gset
SELECT tests.create_user('bob@example.test', 'user') AS bob \gset
INSERT INTO public.campaigns (id, user_id, name, type, status) VALUES
    ('c0000000-0000-0000-0000-00000000000a', :'alice', 'Alice', 'email', 'sent'),
    ('c0000000-0000-0000-0000-00000000000b', :'bob', 'Bob', 'sms', 'sent');
INSERT INTO public.contacts (id, user_id, email, phone) VALUES
    ('c1000000-0000-0000-0000-00000000000a', :'alice', 'rcpt@example.com', '+15550000001');
INSERT INTO public.sms_messages (id, campaign_id, contact_id, recipient, message, message_sid, status, updated_at) VALUES
    ('51000000-0000-0000-0000-00000000000a', 'c0000000-0000-0000-0000-00000000000a', 'c1000000-0000-0000-0000-00000000000a',
     '+15550000001', 'Hi', 'SM_a', 'delivered', '2000-01-01'),
    ('51000000-0000-0000-0000-00000000000b', 'c0000000-0000-0000-0000-00000000000b', NULL,
     '+15550000002', 'Yo', 'SM_b', 'sent', '2000-01-01');
INSERT INTO public.email_messages (id, campaign_id, contact_id, recipient, subject, message_id, status) VALUES
    ('e1000000-0000-0000-0000-00000000000a', 'c0000000-0000-0000-0000-00000000000a', 'c1000000-0000-0000-0000-00000000000a',
     'Rcpt@Example.com', 'Hello', '<a@mx>', 'clicked'),
    ('e1000000-0000-0000-0000-00000000000b', 'c0000000-0000-0000-0000-00000000000b', NULL,
     'other@example.com', 'Hello', '<b@mx>', 'opened');
INSERT INTO public.email_clicks (id, message_id, url) VALUES
    ('ec000000-0000-0000-0000-00000000000a', 'e1000000-0000-0000-0000-00000000000a', 'https://example.com/a'),
    ('ec000000-0000-0000-0000-00000000000b', 'e1000000-0000-0000-0000-00000000000b', 'https://example.com/b');

-- ---------------------------------------------------------------------------
-- anon
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as_anon();
SELECT throws_ok($$SELECT * FROM public.sms_messages$$, '42501', NULL, 'anon cannot SELECT sms_messages');
SELECT throws_ok($$INSERT INTO public.sms_messages (recipient, message) VALUES ('+15550000009', 'x')$$, '42501', NULL, 'anon cannot INSERT sms_messages');
SELECT throws_ok($$UPDATE public.sms_messages SET status = 'failed'$$, '42501', NULL, 'anon cannot UPDATE sms_messages');
SELECT throws_ok($$DELETE FROM public.sms_messages$$, '42501', NULL, 'anon cannot DELETE sms_messages');
SELECT throws_ok($$SELECT * FROM public.email_messages$$, '42501', NULL, 'anon cannot SELECT email_messages');
SELECT throws_ok($$INSERT INTO public.email_messages (recipient) VALUES ('x@example.com')$$, '42501', NULL, 'anon cannot INSERT email_messages');
SELECT throws_ok($$UPDATE public.email_messages SET status = 'opened'$$, '42501', NULL, 'anon cannot UPDATE email_messages');
SELECT throws_ok($$DELETE FROM public.email_messages$$, '42501', NULL, 'anon cannot DELETE email_messages');
SELECT throws_ok($$SELECT * FROM public.email_clicks$$, '42501', NULL, 'anon cannot SELECT email_clicks');
SELECT throws_ok($$INSERT INTO public.email_clicks (message_id, url) VALUES ('e1000000-0000-0000-0000-00000000000a', 'x')$$, '42501', NULL, 'anon cannot INSERT email_clicks');
SELECT throws_ok($$UPDATE public.email_clicks SET url = 'x'$$, '42501', NULL, 'anon cannot UPDATE email_clicks');
SELECT throws_ok($$DELETE FROM public.email_clicks$$, '42501', NULL, 'anon cannot DELETE email_clicks');

-- ---------------------------------------------------------------------------
-- viewer: message-level data is personal data, not analytics: nothing
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'viewer');
SELECT is((SELECT count(*) FROM public.sms_messages) + (SELECT count(*) FROM public.email_messages)
          + (SELECT count(*) FROM public.email_clicks), 0::bigint, 'viewer reads no messages or clicks');
SELECT throws_ok($$INSERT INTO public.sms_messages (recipient, message) VALUES ('+15550000009', 'x')$$, '42501', NULL, 'viewer cannot INSERT sms_messages');
SELECT throws_ok($$UPDATE public.email_messages SET status = 'opened'$$, '42501', NULL, 'viewer cannot UPDATE email_messages');
SELECT throws_ok($$INSERT INTO public.email_clicks (message_id, url) VALUES ('e1000000-0000-0000-0000-00000000000a', 'x')$$, '42501', NULL, 'viewer cannot INSERT email_clicks');
SELECT is(tests.affected($$DELETE FROM public.sms_messages$$) + tests.affected($$DELETE FROM public.email_clicks$$)
          + tests.affected($$DELETE FROM public.email_messages$$), 0::bigint, 'viewer DELETEs touch 0 rows');

-- ---------------------------------------------------------------------------
-- alice: reads the history of her campaigns, writes none of it
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'alice');
SELECT results_eq($$SELECT id FROM public.sms_messages$$, $$VALUES ('51000000-0000-0000-0000-00000000000a'::uuid)$$,
                  'alice reads the SMS of her campaign only');
SELECT results_eq($$SELECT id FROM public.email_messages$$, $$VALUES ('e1000000-0000-0000-0000-00000000000a'::uuid)$$,
                  'alice reads the e-mails of her campaign only');
SELECT results_eq($$SELECT id FROM public.email_clicks$$, $$VALUES ('ec000000-0000-0000-0000-00000000000a'::uuid)$$,
                  'alice reads the clicks of her campaign only');
SELECT throws_ok($$INSERT INTO public.sms_messages (campaign_id, recipient, message)
                   VALUES ('c0000000-0000-0000-0000-00000000000a', '+15550000009', 'fake')$$,
                 '42501', NULL, 'alice cannot INSERT an SMS, even for her campaign');
SELECT throws_ok($$INSERT INTO public.email_messages (campaign_id, recipient)
                   VALUES ('c0000000-0000-0000-0000-00000000000a', 'fake@example.com')$$,
                 '42501', NULL, 'alice cannot INSERT an e-mail');
SELECT throws_ok($$INSERT INTO public.email_clicks (message_id, url) VALUES ('e1000000-0000-0000-0000-00000000000a', 'x')$$,
                 '42501', NULL, 'alice cannot INSERT a click');
SELECT throws_ok($$UPDATE public.sms_messages SET status = 'failed' WHERE id = '51000000-0000-0000-0000-00000000000a'$$,
                 '42501', NULL, 'alice cannot UPDATE her SMS');
SELECT throws_ok($$UPDATE public.email_messages SET status = 'opened' WHERE id = 'e1000000-0000-0000-0000-00000000000a'$$,
                 '42501', NULL, 'alice cannot UPDATE her e-mail');
SELECT throws_ok($$UPDATE public.email_clicks SET url = 'x' WHERE id = 'ec000000-0000-0000-0000-00000000000a'$$,
                 '42501', NULL, 'alice cannot UPDATE a click');
SELECT is(tests.affected($$DELETE FROM public.sms_messages WHERE id = '51000000-0000-0000-0000-00000000000a'$$),
          0::bigint, 'alice DELETE of her SMS touches 0 rows');
SELECT is(tests.affected($$DELETE FROM public.email_clicks WHERE id = 'ec000000-0000-0000-0000-00000000000a'$$),
          0::bigint, 'alice DELETE of her click touches 0 rows');
SELECT is(tests.affected($$DELETE FROM public.email_messages WHERE id = 'e1000000-0000-0000-0000-00000000000b'$$),
          0::bigint, 'alice DELETE of bob''s e-mail touches 0 rows');

-- Soft-deleting the campaign keeps the history, readable by its owner.
SELECT isnt((SELECT (public.soft_delete_campaign('c0000000-0000-0000-0000-00000000000a')).deleted_at), NULL::timestamptz,
            'alice soft-deletes her campaign (soft_delete_campaign, 018)');
SELECT is((SELECT count(*) FROM public.sms_messages) + (SELECT count(*) FROM public.email_messages)
          + (SELECT count(*) FROM public.email_clicks), 3::bigint,
          'after the soft delete alice still reads her SMS, e-mail and click');
SELECT throws_ok($$DELETE FROM public.campaigns WHERE id = 'c0000000-0000-0000-0000-00000000000a'$$, '23503', NULL,
                 'a hard DELETE of a campaign with history fails (RESTRICT), erasing nothing');

-- ---------------------------------------------------------------------------
-- bob: sees only his own history
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'bob');
SELECT is((SELECT count(*) FROM public.sms_messages WHERE campaign_id = 'c0000000-0000-0000-0000-00000000000a')
          + (SELECT count(*) FROM public.email_messages WHERE campaign_id = 'c0000000-0000-0000-0000-00000000000a')
          + (SELECT count(*) FROM public.email_clicks WHERE message_id = 'e1000000-0000-0000-0000-00000000000a'),
          0::bigint, 'bob reads none of alice''s history');
SELECT is((SELECT count(*) FROM public.email_clicks), 1::bigint, 'bob reads the click of his own campaign');

-- ---------------------------------------------------------------------------
-- admin: reads all, may erase (DELETE), may not fabricate (INSERT/UPDATE)
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'admin');
SELECT is((SELECT count(*) FROM public.sms_messages), 2::bigint, 'admin reads all SMS');
SELECT is((SELECT count(*) FROM public.email_messages), 2::bigint, 'admin reads all e-mails');
SELECT is((SELECT count(*) FROM public.email_clicks), 2::bigint, 'admin reads all clicks');
SELECT throws_ok($$INSERT INTO public.sms_messages (recipient, message) VALUES ('+15550000009', 'x')$$, '42501', NULL,
                 'admin cannot INSERT an SMS');
SELECT throws_ok($$UPDATE public.email_messages SET status = 'bounced'$$, '42501', NULL, 'admin cannot UPDATE e-mails');
SELECT throws_ok($$INSERT INTO public.email_clicks (message_id, url) VALUES ('e1000000-0000-0000-0000-00000000000b', 'x')$$,
                 '42501', NULL, 'admin cannot INSERT a click');
SELECT throws_ok($$DELETE FROM public.email_messages WHERE id = 'e1000000-0000-0000-0000-00000000000b'$$, '23503', NULL,
                 'an e-mail with clicks cannot be deleted before its clicks (RESTRICT)');
SELECT is(tests.affected($$DELETE FROM public.email_clicks WHERE id = 'ec000000-0000-0000-0000-00000000000b'$$),
          1::bigint, 'admin can DELETE a click');
SELECT is(tests.affected($$DELETE FROM public.email_messages WHERE id = 'e1000000-0000-0000-0000-00000000000b'$$),
          1::bigint, 'admin can DELETE an e-mail (erasure)');
SELECT is(tests.affected($$DELETE FROM public.sms_messages WHERE id = '51000000-0000-0000-0000-00000000000b'$$),
          1::bigint, 'admin can DELETE an SMS (erasure)');

-- ---------------------------------------------------------------------------
-- service_role: the delivery pipeline
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as_service();
SELECT is((SELECT count(*) FROM public.sms_messages), 1::bigint, 'service_role reads all SMS');
SELECT lives_ok($$INSERT INTO public.sms_messages (id, campaign_id, recipient, message)
                  VALUES ('51000000-0000-0000-0000-0000000000d1', 'c0000000-0000-0000-0000-00000000000b', '+15550000003', 'Hi')$$,
                'service_role can INSERT an SMS');
SELECT is((SELECT status FROM public.sms_messages WHERE id = '51000000-0000-0000-0000-0000000000d1')::text, 'queued',
          'a new SMS is queued');
SELECT is(tests.affected($$UPDATE public.sms_messages SET status = 'delivered', delivered_at = now()
                             WHERE id = '51000000-0000-0000-0000-0000000000d1'$$), 1::bigint, 'service_role can UPDATE an SMS');
SELECT is(tests.affected($$DELETE FROM public.sms_messages WHERE id = '51000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can DELETE an SMS');
SELECT is((SELECT count(*) FROM public.email_messages), 1::bigint, 'service_role reads all e-mails');
SELECT lives_ok($$INSERT INTO public.email_messages (id, campaign_id, recipient)
                  VALUES ('e1000000-0000-0000-0000-0000000000d1', 'c0000000-0000-0000-0000-00000000000b', 'NEW@Example.com')$$,
                'service_role can INSERT an e-mail');
SELECT is(tests.affected($$UPDATE public.email_messages SET status = 'bounced', bounce_type = 'hard'
                             WHERE id = 'e1000000-0000-0000-0000-0000000000d1'$$), 1::bigint, 'service_role can UPDATE an e-mail');
SELECT is((SELECT count(*) FROM public.email_clicks), 1::bigint, 'service_role reads all clicks');
SELECT lives_ok($$INSERT INTO public.email_clicks (id, message_id, url)
                  VALUES ('ec000000-0000-0000-0000-0000000000d1', 'e1000000-0000-0000-0000-0000000000d1', 'https://example.com/d')$$,
                'service_role can INSERT a click');
SELECT is(tests.affected($$UPDATE public.email_clicks SET url = 'https://example.com/e' WHERE id = 'ec000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can UPDATE a click');
SELECT is(tests.affected($$DELETE FROM public.email_clicks WHERE id = 'ec000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can DELETE a click');
SELECT is(tests.affected($$DELETE FROM public.email_messages WHERE id = 'e1000000-0000-0000-0000-0000000000d1'$$),
          1::bigint, 'service_role can DELETE an e-mail');
SELECT tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- CHECKs, normalisation, updated_at, history across deletes
-- ---------------------------------------------------------------------------
SELECT throws_ok($$INSERT INTO public.sms_messages (recipient, message) VALUES ('5550000001', 'x')$$, '23514', NULL,
                 'an SMS recipient must be E.164');
SELECT throws_ok($$INSERT INTO public.sms_messages (recipient, message, status) VALUES ('+15550000001', 'x', 'lost')$$, '23514', NULL,
                 'an unknown SMS status is refused');
SELECT throws_ok($$INSERT INTO public.sms_messages (recipient, message, segments) VALUES ('+15550000001', 'x', 0)$$, '23514', NULL,
                 'an SMS has at least one segment');
SELECT throws_ok($$INSERT INTO public.email_messages (recipient, status) VALUES ('a@example.com', 'lost')$$, '23514', NULL,
                 'an unknown e-mail status is refused');
SELECT throws_ok($$INSERT INTO public.email_messages (recipient, bounce_type) VALUES ('a@example.com', 'medium')$$, '23514', NULL,
                 'an unknown bounce type is refused');
SELECT throws_ok($$INSERT INTO public.sms_messages (recipient, message, message_sid) VALUES ('+15550000001', 'x', 'SM_a')$$, '23505', NULL,
                 'message_sid is unique');
SELECT is((SELECT recipient FROM public.email_messages WHERE id = 'e1000000-0000-0000-0000-00000000000a')::text,
          'rcpt@example.com', 'e-mail recipients are stored lower-case');
SELECT is((SELECT updated_at FROM public.sms_messages WHERE id = '51000000-0000-0000-0000-00000000000a'),
          '2000-01-01'::timestamptz, 'an SMS nobody updated keeps updated_at');
UPDATE public.sms_messages SET status = 'delivered' WHERE id = '51000000-0000-0000-0000-00000000000a';
SELECT is((SELECT updated_at FROM public.sms_messages WHERE id = '51000000-0000-0000-0000-00000000000a'), now(),
          'updated_at changed on UPDATE');
DELETE FROM public.contacts WHERE id = 'c1000000-0000-0000-0000-00000000000a';
SELECT results_eq($$SELECT contact_id, recipient::text FROM public.sms_messages WHERE id = '51000000-0000-0000-0000-00000000000a'$$,
                  $$VALUES (NULL::uuid, '+15550000001')$$,
                  'erasing a contact keeps its SMS history (contact_id NULL, recipient kept)');
DELETE FROM auth.users WHERE id = :'alice';
SELECT is((SELECT count(*) FROM public.sms_messages WHERE campaign_id = 'c0000000-0000-0000-0000-00000000000a')
          + (SELECT count(*) FROM public.email_messages WHERE campaign_id = 'c0000000-0000-0000-0000-00000000000a'),
          2::bigint, 'deleting the campaign owner keeps the campaign''s history');
SELECT tests.authenticate_as(:'admin');
SELECT is((SELECT count(*) FROM public.email_clicks WHERE id = 'ec000000-0000-0000-0000-00000000000a'), 1::bigint,
          'the orphaned history stays readable by admins');
SELECT tests.clear_authentication();
SELECT is((SELECT count(*) FROM public.audit_logs WHERE resource_type IN ('sms_messages', 'email_messages', 'email_clicks')
           AND action = 'delete'), 6::bigint, 'every message and click deletion was audited');

SELECT * FROM finish();
ROLLBACK;
