-- tests/sql/028_tracking.sql: opens, clicks, one-click unsubscribe and the
-- analytics roll-up of migrations/028_tracking.sql.
BEGIN;
SELECT plan(14);

SELECT tests.create_user('alice@example.test', 'user') AS alice \gset

INSERT INTO public.campaigns (id, user_id, name, type, status)
    VALUES ('c0000000-0000-0000-0000-000000000001', :'alice', 'Spring', 'email', 'sent');
INSERT INTO public.email_messages (id, campaign_id, recipient, status, sent_at, links) VALUES
    ('e0000000-0000-0000-0000-000000000001', 'c0000000-0000-0000-0000-000000000001', 'a@example.test', 'sent', now(),
     '["https://shop.test/a", "https://shop.test/b"]'),
    ('e0000000-0000-0000-0000-000000000002', 'c0000000-0000-0000-0000-000000000001', 'b@example.test', 'sent', now(), NULL);

SELECT tests.authenticate_as(:'alice');
SELECT throws_ok($$SELECT sending.record_click('e0000000-0000-0000-0000-000000000001', 0)$$, '42501', NULL,
    'users cannot record clicks');
SELECT throws_ok($$SELECT sending.unsubscribe('e0000000-0000-0000-0000-000000000001')$$, '42501', NULL,
    'nor unsubscribe through the engine');

SELECT tests.authenticate_as_service();
SELECT ok(sending.record_open('e0000000-0000-0000-0000-000000000001'), 'an open is recorded');
SELECT is((SELECT status FROM public.email_messages WHERE id = 'e0000000-0000-0000-0000-000000000001'), 'opened',
    'the message is opened');
CREATE TEMP TABLE first_open AS SELECT opened_at FROM public.email_messages WHERE id = 'e0000000-0000-0000-0000-000000000001';
SELECT sending.record_open('e0000000-0000-0000-0000-000000000001');
SELECT is((SELECT opened_at FROM public.email_messages WHERE id = 'e0000000-0000-0000-0000-000000000001'),
    (SELECT opened_at FROM first_open), 'opened_at is set once');
SELECT is(sending.record_click('e0000000-0000-0000-0000-000000000001', 1), 'https://shop.test/b',
    'a click returns the message''s own URL');
SELECT is(sending.record_click('e0000000-0000-0000-0000-000000000001', 2), NULL,
    'an index past the message''s links is nothing');
SELECT is(sending.record_click('e0000000-0000-0000-0000-000000000002', 0), NULL,
    'a message without links redirects nowhere');
SELECT is((SELECT count(*)::int FROM public.email_clicks), 1, 'only the real click is recorded');
SELECT is((SELECT status FROM public.email_messages WHERE id = 'e0000000-0000-0000-0000-000000000001'), 'clicked',
    'the message is clicked');

SELECT ok(sending.unsubscribe('e0000000-0000-0000-0000-000000000001') AND
          sending.unsubscribe('e0000000-0000-0000-0000-000000000001'), 'unsubscribe is idempotent');
SELECT is((SELECT reason FROM public.suppressions WHERE address = 'a@example.test'), 'unsubscribe',
    'the address is suppressed');
SELECT is((SELECT count(*)::int FROM public.suppressions WHERE address = 'b@example.test'), 0,
    'and only that address');

SELECT sending.rollup_analytics(current_date - 1);
SELECT is((SELECT value FROM public.analytics_data WHERE metric_type = 'email_sent' AND user_id = :'alice'), 2::numeric,
    'sent messages roll up into analytics_data');

SELECT * FROM finish();
ROLLBACK;
