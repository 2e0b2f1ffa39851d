-- tests/sql/083_send_end_batch_probes.sql: migrations/083_send_end_batch_probes.sql
-- — a batch's end audits its messages' statuses (the same 'sent_batch'
-- event as 077's) read by the primary key: under the engine's generic plans
-- and with the statistics of a message table never analysed (a new
-- installation's first campaign), it never scans the table.
BEGIN;
SELECT plan(10);

SELECT tests.create_user('kim@example.test', 'user') AS kim \gset
SELECT tests.clear_authentication();
RESET ROLE;
INSERT INTO public.campaigns (id, user_id, name, type, content) VALUES
    ('c8300000-0000-0000-0000-000000000001', :'kim', 'Texts', 'sms', 'Hi'),
    ('c8300000-0000-0000-0000-000000000002', :'kim', 'Mails', 'email', '<p>Hi</p>');
-- 300 messages of each channel, in four statuses; a batch is 12 of them
INSERT INTO public.sms_messages (campaign_id, recipient, message, status)
SELECT 'c8300000-0000-0000-0000-000000000001', '+1555830' || lpad(g::text, 4, '0'), '',
       (ARRAY['sent', 'failed', 'queued', 'unknown'])[1 + g % 4]
FROM generate_series(1, 300) g;
INSERT INTO public.email_messages (campaign_id, recipient, subject, status)
SELECT 'c8300000-0000-0000-0000-000000000002', 'm' || g || '@c083.test', 'Hi',
       (ARRAY['sent', 'failed', 'queued', 'unknown'])[1 + g % 4]
FROM generate_series(1, 300) g;
CREATE TEMPORARY TABLE batch AS
SELECT 'sms' AS channel, id, status FROM public.sms_messages
WHERE campaign_id = 'c8300000-0000-0000-0000-000000000001' AND recipient <= '+15558300012'
UNION ALL
SELECT 'email', id, status FROM public.email_messages
WHERE campaign_id = 'c8300000-0000-0000-0000-000000000002' AND recipient IN (
    SELECT 'm' || g || '@c083.test' FROM generate_series(1, 12) g);
-- what the event names: each status with its messages' ids in id order
CREATE FUNCTION pg_temp.expected(p_channel text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_object_agg(x.status, x.ids) FROM (
        SELECT status, jsonb_agg(id ORDER BY id) AS ids FROM batch WHERE channel = p_channel
        GROUP BY status) x
$$;
CREATE FUNCTION pg_temp.event(p_campaign uuid) RETURNS jsonb LANGUAGE sql AS $$
    SELECT new_value FROM public.audit_logs
    WHERE resource_id = p_campaign AND new_value ->> 'event' = 'sent_batch'
$$;
-- the message tables as a new installation has them: never analysed (the
-- planner assumes ten pages), rolled back with the test
UPDATE pg_class SET relpages = 0, reltuples = -1
WHERE oid IN ('public.sms_messages'::regclass, 'public.email_messages'::regclass);
CREATE FUNCTION pg_temp.seq_scans(p_rel regclass) RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce(seq_scan, 0) FROM pg_stat_xact_all_tables WHERE relid = p_rel
$$;
-- the engine's statements keep one generic plan each (the step sets this
-- for what it calls)
SET plan_cache_mode = force_generic_plan;

SELECT pg_temp.seq_scans('public.sms_messages') AS sms_scans,
       pg_temp.seq_scans('public.email_messages') AS email_scans \gset
-- each id once, as `= any` matched them: one twice, one of no message
SELECT sending.end_batch('sms', 'c8300000-0000-0000-0000-000000000001', 'a8300000-0000-0000-0000-000000000001',
    ARRAY(SELECT id FROM batch WHERE channel = 'sms')
    || (SELECT id FROM batch WHERE channel = 'sms' ORDER BY id LIMIT 1)
    || 'f8300000-0000-0000-0000-000000000009'::uuid);
SELECT is(pg_temp.event('c8300000-0000-0000-0000-000000000001') -> 'messages', pg_temp.expected('sms'),
    'SMS: the event names each status with its messages, each once, in id order');
SELECT is(pg_temp.event('c8300000-0000-0000-0000-000000000001') - 'messages',
    jsonb_build_object('event', 'sent_batch', 'claim', 'a8300000-0000-0000-0000-000000000001', 'returned', 0),
    'SMS: the rest of the event as before');
SELECT is(pg_temp.seq_scans('public.sms_messages'), :sms_scans::bigint,
    'SMS: the batch''s messages are read by the primary key, not by scanning the table');

SELECT sending.end_batch('email', 'c8300000-0000-0000-0000-000000000002', 'a8300000-0000-0000-0000-000000000002',
    ARRAY(SELECT id FROM batch WHERE channel = 'email'));
SELECT is(pg_temp.event('c8300000-0000-0000-0000-000000000002') -> 'messages', pg_temp.expected('email'),
    'e-mail: the event names each status with its messages, in id order');
SELECT is(pg_temp.seq_scans('public.email_messages'), :email_scans::bigint,
    'e-mail: the batch''s messages are read by the primary key, not by scanning the table');
SELECT is(pg_temp.seq_scans('public.sms_messages'), :sms_scans::bigint,
    'e-mail: the SMS table is not read at all');

-- a second batch end in the same session (the plan kept): the same
SELECT sending.end_batch('sms', 'c8300000-0000-0000-0000-000000000001', 'a8300000-0000-0000-0000-000000000003',
    ARRAY(SELECT id FROM batch WHERE channel = 'sms'));
SELECT is((SELECT new_value -> 'messages' FROM public.audit_logs
           WHERE resource_id = 'c8300000-0000-0000-0000-000000000001' AND new_value ->> 'event' = 'sent_batch'
             AND new_value ->> 'claim' = 'a8300000-0000-0000-0000-000000000003'),
    pg_temp.expected('sms'), 'a second batch end is audited the same');
SELECT is(pg_temp.seq_scans('public.sms_messages'), :sms_scans::bigint,
    'the kept plan still reads by the primary key');
RESET plan_cache_mode;

-- the statuses by id are the engine's (SECURITY DEFINER): nobody else's
SELECT ok(NOT has_function_privilege('authenticated', 'sending.batch_statuses(text, uuid[])', 'execute'),
    'a signed-in user cannot call sending.batch_statuses');
SELECT ok(NOT has_function_privilege('anon', 'sending.batch_statuses(text, uuid[])', 'execute'),
    'anon cannot call sending.batch_statuses');

SELECT * FROM finish();
ROLLBACK;
