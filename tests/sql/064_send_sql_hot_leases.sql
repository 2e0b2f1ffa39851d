-- tests/sql/064_send_sql_hot_leases.sql: migrations/064_send_sql_hot_leases.sql
-- — the in-flight mark is a heap-only update of the lease (no indexed
-- column), recovery still finds a campaign's expired leases, and
-- email_messages' recipients are still normalised; forward_only is called
-- only when it has something to keep, and still keeps it.
BEGIN;
SELECT plan(12);
SET track_functions = 'all';

SELECT is((SELECT array_agg(a.attname::text ORDER BY k.n)
           FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
           WHERE i.indexrelid = 'sending.holds_campaign'::regclass), ARRAY['campaign_id', 'claim'],
    'holds_campaign (075, after leases_campaign) is on campaign_id and claim');
SELECT ok((SELECT reloptions FROM pg_class WHERE oid = 'sending.holds'::regclass) @> ARRAY['fillfactor=50'],
    'sending.holds (075) leaves room for a new version on the page');

SELECT tests.create_user('eve@example.test', 'user') AS eve \gset
SELECT tests.clear_authentication();
UPDATE public.app_settings SET postal_address = '1 Main St', monthly_email_limit = 1000000;
INSERT INTO public.contacts (user_id, email, first_name)
    SELECT :'eve', 'h' || g || '@hot.test', 'H' || g FROM generate_series(1, 3) g;
INSERT INTO public.campaigns (id, user_id, name, type, subject, content)
    VALUES ('c6400000-0000-0000-0000-000000000001', :'eve', 'Hot', 'email', 'Hi', '<p>x</p>');
SELECT tests.authenticate_as_service();
SELECT sending.start('c6400000-0000-0000-0000-000000000001', 1);
SELECT sending.ensure_materialised('c6400000-0000-0000-0000-000000000001');
CREATE TEMP TABLE h AS SELECT * FROM sending.claim('email', 'c6400000-0000-0000-0000-000000000001',
    'a6400000-0000-0000-0000-000000000001', 10, 60);
SELECT coalesce((SELECT n_tup_hot_upd FROM pg_stat_xact_all_tables WHERE relid = 'sending.holds'::regclass), 0)
    AS hot0 \gset
SELECT is((SELECT cardinality(go) FROM sending.step('email', 'c6400000-0000-0000-0000-000000000001',
    'a6400000-0000-0000-0000-000000000001', NULL, ARRAY(SELECT id FROM h ORDER BY id LIMIT 2),
    '[["https://example.com/a"], null]', NULL, 3, 60, 60)), 2, 'two messages go in flight');
SELECT is((SELECT n_tup_hot_upd FROM pg_stat_xact_all_tables WHERE relid = 'sending.holds'::regclass) - :hot0, 1::bigint,
    'taking them out of the reservation is one heap-only update (075: a hold per claim and group)');
SELECT is((SELECT links FROM sending.leases WHERE message_id = (SELECT id FROM h ORDER BY id LIMIT 1)),
    '["https://example.com/a"]'::jsonb, 'the mark keeps the tracked links');

-- kill -9: the leases run out; recovery finds them through the campaign index
SELECT tests.clear_authentication();
UPDATE sending.holds SET lease_until = now() - interval '1 second';
SELECT tests.authenticate_as_service();
SELECT is(sending.recover('c6400000-0000-0000-0000-000000000001'), 2, 'what was in flight is unknown');
SELECT is((SELECT count(*)::int FROM sending.leases), 0, 'the only-claimed lease is freed too');

-- normalize_email still lowers and trims, now only when there is something to do
SELECT tests.clear_authentication();
INSERT INTO public.email_messages (campaign_id, recipient, subject, status)
    VALUES ('c6400000-0000-0000-0000-000000000001', '  MiXed@Hot.TEST ', 'Hi', 'queued');
SELECT is((SELECT count(*)::int FROM public.email_messages WHERE recipient = 'mixed@hot.test'), 1,
    'a recipient is stored lowered and trimmed');

-- forward_only: the settle of a fresh message does not call it; a late
-- report of a lower status or another time still changes nothing
SELECT coalesce((SELECT calls FROM pg_stat_xact_user_functions
                 WHERE funcid = 'public.messages_forward_only'::regproc), 0) AS fo0 \gset
UPDATE public.email_messages SET status = 'sent', sent_at = '2026-01-01 00:00Z'
WHERE recipient = 'mixed@hot.test';
SELECT is(coalesce((SELECT calls FROM pg_stat_xact_user_functions
                    WHERE funcid = 'public.messages_forward_only'::regproc), 0) - :fo0, 0::bigint,
    'queued -> sent with no time set yet: forward_only is not called');
UPDATE public.email_messages SET status = 'delivered', delivered_at = '2026-01-01 00:01Z'
WHERE recipient = 'mixed@hot.test';
UPDATE public.email_messages SET status = 'sent', sent_at = '2026-01-02 00:00Z'
WHERE recipient = 'mixed@hot.test';
SELECT is((SELECT status || ' ' || (sent_at = '2026-01-01 00:00Z') FROM public.email_messages
           WHERE recipient = 'mixed@hot.test'), 'delivered true',
    'a late sent neither lowers the status nor moves the sent time');
SELECT ok(coalesce((SELECT calls FROM pg_stat_xact_user_functions
                    WHERE funcid = 'public.messages_forward_only'::regproc), 0) - :fo0 >= 1,
    'that update did call it');
UPDATE public.email_messages SET status = 'bounced' WHERE recipient = 'mixed@hot.test';
SELECT is((SELECT status FROM public.email_messages WHERE recipient = 'mixed@hot.test'), 'bounced',
    'delivered -> bounced still passes');

SELECT * FROM finish();
ROLLBACK;
