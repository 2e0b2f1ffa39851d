-- tests/sql/018_domain_rules.sql: the domain rules of migrations/018_domain_rules.sql,
-- as each API role meets them: campaign state machine and protected columns,
-- audited soft delete / restore, generated reports, consent as evidence, soft
-- delete of templates / contacts / data sources, enable_audit_log, analytics
-- upserts, list indexes, sign-in and export events, the auth audit purge.
BEGIN;
SELECT plan(78);

CREATE FUNCTION pg_temp.affected(sql text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    EXECUTE sql;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

SELECT tests.create_user('admin@example.test', 'admin') AS admin \gset
SELECT tests.create_user('viewer@example.test', 'viewer') AS viewer \gset
SELECT tests.create_user('alice@example.test', 'user') AS alice \gset
SELECT tests.create_user('bob@example.test', 'user') AS bob \gset

INSERT INTO public.campaigns (id, user_id, name, type, status, scheduled_date) VALUES
    ('c0000000-0000-0000-0000-000000000001', :'alice', 'Draft', 'email', 'draft', NULL),
    ('c0000000-0000-0000-0000-000000000002', :'alice', 'Sending', 'sms', 'sending', NULL),
    ('c0000000-0000-0000-0000-000000000003', :'alice', 'Sent', 'email', 'sent', NULL),
    ('c0000000-0000-0000-0000-000000000004', :'bob', 'Bob', 'email', 'draft', NULL);

-- ---------------------------------------------------------------------------
-- Campaign state machine (API roles)
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'alice');
SELECT throws_ok($$INSERT INTO public.campaigns (name, type, status) VALUES ('x', 'email', 'sent')$$,
                 '23514', 'a new campaign is draft or scheduled, not sent', 'a user cannot INSERT a sent campaign');
SELECT throws_ok($$INSERT INTO public.campaigns (name, type, status) VALUES ('x', 'email', 'sending')$$,
                 '23514', NULL, 'a user cannot INSERT a sending campaign');
SELECT throws_ok($$INSERT INTO public.campaigns (name, type, status, scheduled_date)
                   VALUES ('x', 'email', 'scheduled', now() - interval '1 minute')$$,
                 '23514', 'a scheduled campaign needs a scheduled_date in the future',
                 'scheduled needs a future scheduled_date on INSERT');
SELECT lives_ok($$INSERT INTO public.campaigns (name, type, status, scheduled_date)
                  VALUES ('x', 'email', 'scheduled', now() + interval '1 day')$$,
                'a user can INSERT a campaign scheduled in the future');
SELECT throws_ok($$UPDATE public.campaigns SET status = 'sent' WHERE id = 'c0000000-0000-0000-0000-000000000001'$$,
                 '23514', 'cannot change status from draft to sent', 'draft -> sent is refused');
SELECT throws_ok($$UPDATE public.campaigns SET status = 'sent' WHERE id = 'c0000000-0000-0000-0000-000000000002'$$,
                 '23514', 'cannot change status from sending to sent', 'sending -> sent is the delivery work''s');
SELECT throws_ok($$UPDATE public.campaigns SET status = 'completed' WHERE id = 'c0000000-0000-0000-0000-000000000002'$$,
                 '23514', NULL, 'a user cannot set completed');
SELECT throws_ok($$UPDATE public.campaigns SET status = 'failed' WHERE id = 'c0000000-0000-0000-0000-000000000002'$$,
                 '23514', NULL, 'a user cannot set failed');
SELECT throws_ok($$UPDATE public.campaigns SET status = 'draft' WHERE id = 'c0000000-0000-0000-0000-000000000003'$$,
                 '23514', NULL, 'sent is final');
SELECT throws_ok($$UPDATE public.campaigns SET status = 'scheduled' WHERE id = 'c0000000-0000-0000-0000-000000000001'$$,
                 '23514', 'a scheduled campaign needs a scheduled_date in the future',
                 'draft -> scheduled without a date is refused');
SELECT throws_ok($$UPDATE public.campaigns SET status = 'scheduled', scheduled_date = now() - interval '1 day'
                   WHERE id = 'c0000000-0000-0000-0000-000000000001'$$,
                 '23514', 'a scheduled campaign needs a scheduled_date in the future',
                 'draft -> scheduled in the past is refused');
SELECT is(pg_temp.affected($$UPDATE public.campaigns SET type = 'sms' WHERE id = 'c0000000-0000-0000-0000-000000000001'$$),
          1::bigint, 'the type of a draft can change');
SELECT is(pg_temp.affected($$UPDATE public.campaigns SET status = 'scheduled', scheduled_date = now() + interval '1 day'
                             WHERE id = 'c0000000-0000-0000-0000-000000000001'$$),
          1::bigint, 'draft -> scheduled with a future date');
SELECT throws_ok($$UPDATE public.campaigns SET type = 'email' WHERE id = 'c0000000-0000-0000-0000-000000000001'$$,
                 '23514', 'the type of a campaign is fixed once it leaves draft (it is scheduled)',
                 'type is fixed after draft');
SELECT throws_ok($$UPDATE public.campaigns SET status = 'sending' WHERE id = 'c0000000-0000-0000-0000-000000000001'$$,
                 '23514', NULL, 'scheduled -> sending is the delivery work''s');
SELECT is(pg_temp.affected($$UPDATE public.campaigns SET status = 'paused' WHERE id = 'c0000000-0000-0000-0000-000000000002'$$),
          1::bigint, 'sending -> paused is allowed');
SELECT throws_ok($$UPDATE public.campaigns SET status = 'sending' WHERE id = 'c0000000-0000-0000-0000-000000000002'$$,
                 '23514', NULL, 'paused -> sending is the delivery work''s');
SELECT is(pg_temp.affected($$UPDATE public.campaigns SET status = 'cancelled' WHERE id = 'c0000000-0000-0000-0000-000000000002'$$),
          1::bigint, 'paused -> cancelled is allowed');
SELECT throws_ok($$UPDATE public.campaigns SET created_at = '2000-01-01' WHERE id = 'c0000000-0000-0000-0000-000000000001'$$,
                 '42501', NULL, 'created_at is not writable');
SELECT throws_ok($$UPDATE public.campaigns SET deleted_at = now() WHERE id = 'c0000000-0000-0000-0000-000000000001'$$,
                 '42501', NULL, 'deleted_at is not writable');
SELECT throws_ok($$INSERT INTO public.campaigns (name, type, created_at) VALUES ('x', 'email', '2000-01-01')$$,
                 '42501', NULL, 'created_at cannot be inserted');
SELECT throws_ok($$INSERT INTO public.campaigns (name, type, deleted_at) VALUES ('x', 'email', now())$$,
                 '42501', NULL, 'deleted_at cannot be inserted');

-- Soft delete and restore: dedicated, audited paths.
SELECT is((public.soft_delete_campaign('c0000000-0000-0000-0000-000000000004')).id, NULL::uuid,
          'alice cannot soft-delete bob''s campaign (not visible: NULL)');
SELECT isnt((public.soft_delete_campaign('c0000000-0000-0000-0000-000000000003')).deleted_at, NULL::timestamptz,
            'alice soft-deletes her campaign');
SELECT is((public.soft_delete_campaign('c0000000-0000-0000-0000-000000000003')).id, NULL::uuid,
          'a second soft delete finds no live campaign');
SELECT tests.authenticate_as(:'viewer');
SELECT throws_ok($$SELECT public.soft_delete_campaign('c0000000-0000-0000-0000-000000000004')$$,
                 '42501', NULL, 'a viewer sees but cannot soft-delete a campaign');
SELECT is((public.restore_campaign('c0000000-0000-0000-0000-000000000003')).id, NULL::uuid,
          'a viewer cannot restore');
SELECT tests.authenticate_as(:'alice');
SELECT is((public.restore_campaign('c0000000-0000-0000-0000-000000000003')).deleted_at, NULL::timestamptz,
          'alice restores her campaign');
SELECT tests.clear_authentication();
SELECT is((SELECT array_agg(action::text ORDER BY created_at, action) FROM public.audit_logs
           WHERE resource_id = 'c0000000-0000-0000-0000-000000000003' AND action IN ('soft_delete', 'restore')),
          ARRAY['restore', 'soft_delete'], 'soft delete and restore are audited by name');
SELECT is((SELECT count(*) FROM public.audit_logs WHERE resource_id = 'c0000000-0000-0000-0000-000000000003'
           AND action = 'soft_delete' AND user_id = :'alice'), 1::bigint, 'the soft delete names who did it');

-- service_role (the delivery work) moves campaigns on.
SELECT tests.authenticate_as_service();
SELECT is(pg_temp.affected($$UPDATE public.campaigns SET status = 'sending' WHERE id = 'c0000000-0000-0000-0000-000000000001'$$),
          1::bigint, 'service_role: scheduled -> sending');
SELECT is(pg_temp.affected($$UPDATE public.campaigns SET status = 'sent' WHERE id = 'c0000000-0000-0000-0000-000000000001'$$),
          1::bigint, 'service_role: sending -> sent');
SELECT tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Reports are generated
-- ---------------------------------------------------------------------------
INSERT INTO public.reports (id, user_id, campaign_id, report_type, data) VALUES
    ('e0000000-0000-0000-0000-000000000001', :'alice', 'c0000000-0000-0000-0000-000000000001',
     'campaign_performance', '{"totals": {"sent": 3}}');
SELECT tests.authenticate_as(:'alice');
SELECT throws_ok($$UPDATE public.reports SET data = '{"totals": {"sent": 3000}}'$$, '42501', NULL,
                 'the owner cannot fake a report''s data');
SELECT throws_ok($$INSERT INTO public.reports (report_type, data) VALUES ('campaign_performance', '{}')$$, '42501', NULL,
                 'the owner cannot insert a report');
SELECT tests.authenticate_as(:'admin');
SELECT throws_ok($$UPDATE public.reports SET generated_at = now() - interval '1 year'$$, '42501', NULL,
                 'an admin cannot rewrite generated_at');
SELECT tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Consent is evidence
-- ---------------------------------------------------------------------------
INSERT INTO public.contacts (user_id, email, phone) VALUES
    (:'alice', 'ann@example.com', '+15550001001'),
    (:'bob', 'ben@example.com', '+15550001002');
INSERT INTO public.sms_consent (id, phone_number, consent_given, consent_source) VALUES
    ('50000000-0000-0000-0000-000000000001', '+15550001001', true, 'web_form'),
    ('50000000-0000-0000-0000-000000000002', '+15550001002', true, 'web_form');
INSERT INTO public.email_subscriptions (id, email) VALUES ('5e000000-0000-0000-0000-000000000001', 'ann@example.com');

SELECT tests.authenticate_as(:'alice');
SELECT is((SELECT array_agg(phone_number::text) FROM public.sms_consent), ARRAY['+15550001001'],
          'a user reads only the consent of her contacts'' numbers');
SELECT is(pg_temp.affected($$UPDATE public.sms_consent SET consent_given = false, opt_out_reason = 'STOP'
                             WHERE id = '50000000-0000-0000-0000-000000000001'$$),
          1::bigint, 'a user records an opt-out');
SELECT throws_ok($$UPDATE public.sms_consent SET consent_given = true WHERE id = '50000000-0000-0000-0000-000000000001'$$,
                 '42501', 'an opt-out cannot be reversed by an update', 'a user cannot reverse an SMS opt-out');
SELECT throws_ok($$UPDATE public.sms_consent SET opt_out_at = NULL WHERE id = '50000000-0000-0000-0000-000000000001'$$,
                 '42501', 'opt_out_at is evidence of an opt-out and cannot be changed', 'a user cannot clear opt_out_at');
SELECT throws_ok($$INSERT INTO public.sms_consent (phone_number, consent_given) VALUES ('+15550001001', true)
                   ON CONFLICT (phone_number) DO UPDATE SET consent_given = true$$,
                 '42501', NULL, 'an upsert cannot reverse an opt-out either');
SELECT is(pg_temp.affected($$UPDATE public.email_subscriptions SET subscribed = false WHERE email = 'ann@example.com'$$),
          1::bigint, 'a user records an unsubscription');
SELECT throws_ok($$UPDATE public.email_subscriptions SET subscribed = true WHERE email = 'ann@example.com'$$,
                 '42501', 'an opt-out cannot be reversed by an update', 'a user cannot re-subscribe an address');
SELECT throws_ok($$SELECT public.record_sms_consent('+15550001001', 'manual', now(), 'she said yes')$$,
                 '42501', NULL, 'a user cannot record re-consent');
SELECT is(pg_temp.affected($$UPDATE public.sms_consent SET opt_out_reason = 'x' WHERE id = '50000000-0000-0000-0000-000000000002'$$),
          0::bigint, 'a user cannot touch the consent of another user''s contact');

SELECT tests.authenticate_as(:'admin');
SELECT throws_ok($$UPDATE public.sms_consent SET consent_given = true WHERE id = '50000000-0000-0000-0000-000000000001'$$,
                 '42501', NULL, 'an admin cannot reverse an opt-out by a plain UPDATE');
SELECT throws_ok($$SELECT public.record_sms_consent('+15550001001', 'manual', now(), '')$$,
                 '22023', NULL, 're-consent needs evidence');
SELECT throws_ok($$SELECT public.record_sms_consent('+15550001001', 'carrier pigeon', now(), 'x')$$,
                 '22023', NULL, 're-consent needs a known source');
SELECT throws_ok($$SELECT public.record_sms_consent('+15550001001', 'manual', now() - interval '1 day', 'old form')$$,
                 '22023', NULL, 're-consent must be given after the opt-out');
SELECT throws_ok($$SELECT public.record_sms_consent('+15550001001', 'manual', now() + interval '1 day', 'x')$$,
                 '22023', NULL, 're-consent cannot be in the future');
SELECT tests.clear_authentication();
-- the opt-out happened at now(); new consent is a moment later
UPDATE public.sms_consent SET opt_out_at = now() - interval '1 minute' WHERE id = '50000000-0000-0000-0000-000000000001';
UPDATE public.email_subscriptions SET unsubscribed_at = now() - interval '1 minute' WHERE email = 'ann@example.com';
SELECT tests.authenticate_as(:'admin');
SELECT is((public.record_sms_consent('+15550001001', 'web_form', now(), 'signed form #42')).consent_given, true,
          'an admin records re-consent with evidence');
SELECT is((public.record_email_consent('ANN@example.com', 'web_form', now(), 're-subscribe page')).subscribed, true,
          'an admin records e-mail re-consent with evidence');
SELECT tests.clear_authentication();
SELECT is((SELECT metadata ->> 'evidence' FROM public.audit_logs WHERE action = 'consent'
           AND resource_id = '50000000-0000-0000-0000-000000000001'), 'signed form #42',
          're-consent is audited with its evidence');
SELECT is((SELECT user_id FROM public.audit_logs WHERE action = 'consent'
           AND resource_id = '50000000-0000-0000-0000-000000000001'), :'admin'::uuid,
          're-consent names who recorded it');
SELECT tests.authenticate_as_service();
UPDATE public.sms_consent SET consent_given = false WHERE id = '50000000-0000-0000-0000-000000000002';
UPDATE public.sms_consent SET opt_out_at = now() - interval '1 minute' WHERE id = '50000000-0000-0000-0000-000000000002';
SELECT is((public.record_sms_consent('+15550001002', 'api', now(), 'START keyword')).consent_given, true,
          'the server records the recipient''s own re-consent (START)');
SELECT tests.authenticate_as(:'viewer');
SELECT is((SELECT count(*) FROM public.sms_consent) + (SELECT count(*) FROM public.email_subscriptions)
          + (SELECT count(*) FROM public.contacts), 0::bigint, 'a viewer reads no phone number or address');
SELECT tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Soft delete of templates, contacts, data sources
-- ---------------------------------------------------------------------------
INSERT INTO public.templates (id, user_id, name, type, content)
VALUES ('70000000-0000-0000-0000-000000000001', :'alice', 'T', 'sms', 'Hi');
INSERT INTO public.data_sources (id, user_id, name, type)
VALUES ('d0000000-0000-0000-0000-000000000001', :'alice', 'S', 'csv_upload');
INSERT INTO public.imported_data (data_source_id, metric_name, metric_value, event_date)
VALUES ('d0000000-0000-0000-0000-000000000001', 'visits', 3, current_date);
SELECT tests.authenticate_as(:'alice');
SELECT throws_ok($$DELETE FROM public.templates WHERE id = '70000000-0000-0000-0000-000000000001'$$,
                 '42501', 'templates are soft-deleted: a hard DELETE is not allowed', 'a user cannot hard-delete a template');
SELECT throws_ok($$DELETE FROM public.contacts WHERE email = 'ann@example.com'$$,
                 '42501', 'contacts are soft-deleted: a hard DELETE is not allowed', 'a user cannot hard-delete a contact');
SELECT throws_ok($$DELETE FROM public.data_sources WHERE id = 'd0000000-0000-0000-0000-000000000001'$$,
                 '42501', 'data_sources are soft-deleted: a hard DELETE is not allowed', 'a user cannot hard-delete a data source');
SELECT is(pg_temp.affected($$UPDATE public.templates SET deleted_at = now() WHERE id = '70000000-0000-0000-0000-000000000001'$$),
          1::bigint, 'a user soft-deletes a template by setting deleted_at');
SELECT tests.authenticate_as(:'admin');
SELECT throws_ok($$DELETE FROM public.data_sources WHERE id = 'd0000000-0000-0000-0000-000000000001'$$,
                 '23503', NULL, 'even an admin cannot drop a source''s imported data by deleting the source');
SELECT is(pg_temp.affected($$DELETE FROM public.templates WHERE id = '70000000-0000-0000-0000-000000000001'$$),
          1::bigint, 'an admin can hard-delete a template');
SELECT tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- enable_audit_log
-- ---------------------------------------------------------------------------
UPDATE public.app_settings SET enable_audit_log = false;
SELECT is((SELECT count(*) FROM public.audit_logs WHERE resource_type = 'app_settings'
           AND new_value ->> 'enable_audit_log' = 'false'), 1::bigint, 'turning the audit log off is itself audited');
INSERT INTO public.templates (id, user_id, name, type, content)
VALUES ('70000000-0000-0000-0000-000000000002', :'alice', 'Quiet', 'sms', 'x');
SELECT is((SELECT count(*) FROM public.audit_logs WHERE resource_id = '70000000-0000-0000-0000-000000000002'), 0::bigint,
          'with enable_audit_log off, changes are not audited');
UPDATE public.app_settings SET enable_audit_log = true;
UPDATE public.templates SET name = 'Loud' WHERE id = '70000000-0000-0000-0000-000000000002';
SELECT is((SELECT count(*) FROM public.audit_logs WHERE resource_id = '70000000-0000-0000-0000-000000000002'), 1::bigint,
          'with enable_audit_log on again, changes are audited');

-- ---------------------------------------------------------------------------
-- analytics_data upserts, indexes
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as(:'alice');
INSERT INTO public.analytics_data (metric_type, value, date) VALUES ('visits', 1, '2026-01-01');
SELECT throws_ok($$INSERT INTO public.analytics_data (metric_type, value, date) VALUES ('visits', 2, '2026-01-01')$$,
                 '23505', NULL, 'one value per (user, metric, day, dimensions)');
SELECT lives_ok($$INSERT INTO public.analytics_data (metric_type, value, date) VALUES ('visits', 5, '2026-01-01')
                  ON CONFLICT (user_id, metric_type, date, dimensions) DO UPDATE SET value = excluded.value$$,
                'an upsert on the identity works');
SELECT is((SELECT array_agg(value) FROM public.analytics_data WHERE metric_type = 'visits'), ARRAY[5::numeric],
          'the upsert updated the day''s value');
SELECT lives_ok($$INSERT INTO public.analytics_data (metric_type, value, date, dimensions)
                  VALUES ('visits', 2, '2026-01-01', '{"channel": "sms"}')$$,
                'another dimension is another row');
SELECT tests.clear_authentication();
SELECT has_index('public', 'reports', 'idx_reports_user_created_at', ARRAY['user_id', 'created_at'],
                 'reports(user_id, created_at desc)');
SELECT has_index('public', 'sync_logs', 'idx_sync_logs_source_started_at', ARRAY['data_source_id', 'started_at'],
                 'sync_logs(data_source_id, started_at desc)');
SELECT has_index('public', 'imported_data', 'idx_imported_data_source_date', ARRAY['data_source_id', 'event_date'],
                 'imported_data(data_source_id, event_date)');

-- ---------------------------------------------------------------------------
-- Sign-in events and exports in audit_logs; auth audit purge
-- ---------------------------------------------------------------------------
SELECT tests.authenticate_as_service();
SELECT auth.audit('login', :'alice', 'alice@example.test', '198.51.100.4', '{}');
SELECT auth.audit('login_failed', NULL, 'mallory@example.test', '198.51.100.5', '{}');
SELECT auth.audit('logout', :'alice', 'alice@example.test', '198.51.100.4', '{}');
SELECT auth.audit('token_refreshed', :'alice', NULL, '198.51.100.4', '{}');
SELECT tests.clear_authentication();
SELECT is((SELECT array_agg(action || ':' || status ORDER BY action, status) FROM public.audit_logs
           WHERE metadata ? 'auth_event'),
          ARRAY['login:failure', 'login:success', 'logout:success'],
          'login, failed sign-in and logout are in audit_logs with the seed''s action names');
SELECT is((SELECT host(ip_address) FROM public.audit_logs WHERE action = 'login' AND status = 'failure'),
          '198.51.100.5', 'a failed sign-in keeps the client address');
SELECT tests.authenticate_as(:'bob');
SELECT is(public.audit_report_export('e0000000-0000-0000-0000-000000000001', 'csv'), false,
          'an export of a report the caller cannot read is not recorded');
SELECT tests.authenticate_as(:'alice');
SELECT is(public.audit_report_export('e0000000-0000-0000-0000-000000000001', 'csv'), true,
          'the owner''s export is recorded');
SELECT tests.clear_authentication();
SELECT is((SELECT count(*) FROM public.audit_logs WHERE action = 'export' AND user_id = :'alice'
           AND resource_id = 'e0000000-0000-0000-0000-000000000001'), 1::bigint, 'export appears as action export');
INSERT INTO auth.audit_log_entries (payload, created_at) VALUES ('{"action":"old"}', now() - interval '90 days');
SELECT tests.authenticate_as_service();
SELECT cmp_ok(public.purge_audit_logs(30), '>=', 1::bigint, 'purge_audit_logs removes old rows');
SELECT tests.clear_authentication();
SELECT is((SELECT count(*) FROM auth.audit_log_entries WHERE created_at < now() - interval '30 days'), 0::bigint,
          'auth.audit_log_entries is purged with the rest');

SELECT * FROM finish();
ROLLBACK;
