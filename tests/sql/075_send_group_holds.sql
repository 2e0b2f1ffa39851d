-- tests/sql/075_send_group_holds.sql: migrations/075_send_group_holds.sql — a
-- hold row per claim (its reservation) and per group in flight: two claims
-- never share a message, a step takes its group out of the reservation (and
-- only from its own), a group's expiry makes its messages unknown, a
-- reservation's expiry makes them claimable again, a settle of part of a
-- group keeps the rest held, consent is checked by the step.
BEGIN;
SELECT plan(40);

SELECT tests.create_user('gina@example.test', 'user') AS gina \gset
SELECT tests.clear_authentication();
UPDATE public.app_settings SET postal_address = '1 Main St', monthly_email_limit = 1000000;
INSERT INTO public.contacts (user_id, email, first_name)
    SELECT :'gina', 'g' || g || '@group.test', 'G' || g FROM generate_series(1, 12) g;
INSERT INTO public.campaigns (id, user_id, name, type, subject, content)
    VALUES ('c7500000-0000-0000-0000-000000000001', :'gina', 'Groups', 'email', 'Hi', '<p>x</p>');
SELECT tests.authenticate_as_service();
SELECT sending.start('c7500000-0000-0000-0000-000000000001', 2);
SELECT sending.ensure_materialised('c7500000-0000-0000-0000-000000000001');
SELECT coalesce((SELECT used FROM sending.monthly_usage WHERE month = sending.current_month() AND channel = 'email'), 0)
    AS used0 \gset

-- two claims: one reservation row each, disjoint
CREATE TEMP TABLE c1 AS SELECT * FROM sending.claim('email', 'c7500000-0000-0000-0000-000000000001',
    'a7500000-0000-0000-0000-000000000001', 5, 60);
CREATE TEMP TABLE c2 AS SELECT * FROM sending.claim('email', 'c7500000-0000-0000-0000-000000000001',
    'a7500000-0000-0000-0000-000000000002', 5, 60);
SELECT is((SELECT count(*)::int FROM c1) || ' ' || (SELECT count(*)::int FROM c2), '5 5', 'two claims of 5');
SELECT is((SELECT count(*)::int FROM c1 JOIN c2 USING (id)), 0, 'two claims never share a message');
SELECT is((SELECT count(*)::int || ' ' || bool_or(in_flight)::text || ' ' || sum(cardinality(ids))::int
           FROM sending.holds WHERE campaign_id = 'c7500000-0000-0000-0000-000000000001'), '2 false 10',
    'a claim is one reservation row holding its ids');
SELECT is((SELECT count(*)::int FROM sending.leases WHERE campaign_id = 'c7500000-0000-0000-0000-000000000001'), 10,
    'the leases view shows one row per held message');

-- claim 2 cannot send claim 1's messages
SELECT is((SELECT go FROM sending.step('email', 'c7500000-0000-0000-0000-000000000001',
    'a7500000-0000-0000-0000-000000000002', NULL, ARRAY(SELECT id FROM c1 ORDER BY id LIMIT 2), NULL, NULL,
    3, 60, 60)), NULL, 'a step cannot send what another claim holds');
SELECT is((SELECT cardinality(ids) FROM sending.holds WHERE claim = 'a7500000-0000-0000-0000-000000000001'), 5,
    'and the other claim''s reservation is untouched');

-- claim 1: a group of three goes; one of them suppressed meanwhile is dropped by the step
SELECT tests.clear_authentication();
INSERT INTO public.suppressions (channel, address, reason)
    SELECT 'email', recipient, 'manual' FROM c1 ORDER BY id OFFSET 2 LIMIT 1;
SELECT tests.authenticate_as_service();
CREATE TEMP TABLE s1 AS SELECT * FROM sending.step('email', 'c7500000-0000-0000-0000-000000000001',
    'a7500000-0000-0000-0000-000000000001', NULL, ARRAY(SELECT id FROM c1 ORDER BY id LIMIT 3),
    '[["https://example.com/1"], null, ["https://example.com/3"]]', NULL, 3, 60, 60);
SELECT is((SELECT go FROM s1), ARRAY(SELECT id FROM c1 ORDER BY id LIMIT 2), 'the two allowed ones go');
SELECT is((SELECT status FROM public.email_messages WHERE id = (SELECT id FROM c1 ORDER BY id OFFSET 2 LIMIT 1)),
    'dropped', 'the suppressed one is dropped in the step');
SELECT is((SELECT ids FROM sending.holds WHERE claim = 'a7500000-0000-0000-0000-000000000001' AND in_flight),
    ARRAY(SELECT id FROM c1 ORDER BY id LIMIT 2), 'one group row holds what is in flight');
SELECT is((SELECT ids FROM sending.holds WHERE claim = 'a7500000-0000-0000-0000-000000000001' AND NOT in_flight),
    ARRAY(SELECT id FROM c1 ORDER BY id OFFSET 3), 'the reservation keeps what no step took');
SELECT is((SELECT links FROM sending.leases WHERE message_id = (SELECT id FROM c1 ORDER BY id LIMIT 1)),
    '["https://example.com/1"]'::jsonb, 'the group keeps each message''s links');
SELECT is((SELECT links FROM sending.leases WHERE message_id = (SELECT id FROM c1 ORDER BY id OFFSET 1 LIMIT 1)),
    NULL, 'and none where there are none');
SELECT is((SELECT go FROM sending.step('email', 'c7500000-0000-0000-0000-000000000001',
    'a7500000-0000-0000-0000-000000000001', NULL, ARRAY(SELECT id FROM c1 ORDER BY id LIMIT 1), NULL, NULL,
    3, 60, 60)), NULL, 'a message in flight cannot go again');

-- a settle with the result of one of the two: the other stays held, in flight
SELECT sending.step('email', 'c7500000-0000-0000-0000-000000000001', 'a7500000-0000-0000-0000-000000000001',
    jsonb_build_array(jsonb_build_object('id', (SELECT id FROM c1 ORDER BY id LIMIT 1), 'outcome', 'accepted',
                                         'provider_id', '<g1@x>')), NULL, NULL, NULL, 3, 60, 60);
SELECT is((SELECT status || ' ' || links::text FROM public.email_messages WHERE id = (SELECT id FROM c1 ORDER BY id LIMIT 1)),
    'sent ["https://example.com/1"]', 'the settled one is sent, with its links');
SELECT is((SELECT array_agg(message_id) FROM sending.leases
           WHERE claim = 'a7500000-0000-0000-0000-000000000001' AND in_flight),
    ARRAY(SELECT id FROM c1 ORDER BY id OFFSET 1 LIMIT 1), 'the one without a result stays in flight');
-- a result of another claim's settle changes nothing
SELECT sending.step('email', 'c7500000-0000-0000-0000-000000000001', 'a7500000-0000-0000-0000-000000000002',
    jsonb_build_array(jsonb_build_object('id', (SELECT id FROM c1 ORDER BY id OFFSET 1 LIMIT 1),
                                         'outcome', 'accepted')), NULL, NULL, NULL, 3, 60, 60);
SELECT is((SELECT status FROM public.email_messages WHERE id = (SELECT id FROM c1 ORDER BY id OFFSET 1 LIMIT 1)),
    'queued', 'another claim cannot settle it');

-- claim 2 puts two in flight, then the batch of claim 1 ends (two of its five never went)
SELECT sending.step('email', 'c7500000-0000-0000-0000-000000000001', 'a7500000-0000-0000-0000-000000000002',
    NULL, ARRAY(SELECT id FROM c2 ORDER BY id LIMIT 2), NULL, NULL, 3, 60, 60);
SELECT sending.step('email', 'c7500000-0000-0000-0000-000000000001', 'a7500000-0000-0000-0000-000000000001',
    NULL, NULL, NULL, ARRAY(SELECT id FROM c1), 3, 60, 60);
SELECT is((SELECT count(*)::int FROM sending.holds WHERE claim = 'a7500000-0000-0000-0000-000000000001'
           AND NOT in_flight), 0, 'the batch end deletes the reservation');
SELECT is((SELECT used FROM sending.monthly_usage WHERE month = sending.current_month() AND channel = 'email'),
    :used0 + 10 - 1 - 2, 'and gives back what never went (and the dropped one)');
SELECT is((SELECT (new_value ->> 'returned')::int FROM public.audit_logs
           WHERE new_value ->> 'claim' = 'a7500000-0000-0000-0000-000000000001'), 2,
    'the batch audit says how many were returned');

-- a third claim gets only what nobody holds
CREATE TEMP TABLE c3 AS SELECT * FROM sending.claim('email', 'c7500000-0000-0000-0000-000000000001',
    'a7500000-0000-0000-0000-000000000003', 10, 60);
SELECT is((SELECT count(*)::int FROM c3), 4, 'a claim takes the two returned and the two never claimed');
SELECT is((SELECT count(*)::int FROM c3 WHERE id IN (SELECT message_id FROM sending.leases
           WHERE claim <> 'a7500000-0000-0000-0000-000000000003')), 0,
    'nothing another hold holds (in flight or reserved)');

-- kill -9 of claim 2's worker: its group (two in flight) and its reservation (three) run out
SELECT tests.clear_authentication();
UPDATE sending.holds SET lease_until = now() - interval '1 second'
WHERE claim = 'a7500000-0000-0000-0000-000000000002';
SELECT tests.authenticate_as_service();
SELECT is(sending.recover('c7500000-0000-0000-0000-000000000001'), 2, 'the expired group''s two are unknown');
SELECT is((SELECT count(*)::int FROM public.email_messages WHERE id IN (SELECT id FROM c2) AND status = 'unknown'), 2,
    'and marked so');
SELECT is((SELECT count(*)::int FROM sending.holds WHERE claim = 'a7500000-0000-0000-0000-000000000002'), 0,
    'nothing of claim 2 is held any more');
SELECT is((SELECT unknown_count FROM public.campaigns WHERE id = 'c7500000-0000-0000-0000-000000000001'), 2,
    'the campaign counts them');
-- the worker was only slow, not dead: its reservation was taken away, so its next step sends nothing
SELECT is((SELECT go FROM sending.step('email', 'c7500000-0000-0000-0000-000000000001',
    'a7500000-0000-0000-0000-000000000002', NULL, ARRAY(SELECT id FROM c2 ORDER BY id OFFSET 2 LIMIT 2), NULL, NULL,
    3, 60, 60)), NULL, 'a step after its reservation expired sends nothing');
SELECT is((SELECT count(*)::int FROM sending.holds WHERE claim = 'a7500000-0000-0000-0000-000000000002'), 0,
    'and holds nothing');
CREATE TEMP TABLE c4 AS SELECT * FROM sending.claim('email', 'c7500000-0000-0000-0000-000000000001',
    'a7500000-0000-0000-0000-000000000004', 10, 60);
SELECT is((SELECT count(*)::int FROM c4), 3, 'the expired reservation''s three are claimable again');
SELECT is((SELECT count(*)::int FROM c4 JOIN c2 USING (id)), 3, 'exactly those');

-- claim 1's remaining group runs out too: unknown, with its links
SELECT tests.clear_authentication();
UPDATE sending.holds SET lease_until = now() - interval '1 second'
WHERE claim = 'a7500000-0000-0000-0000-000000000001';
SELECT tests.authenticate_as_service();
SELECT is(sending.recover('c7500000-0000-0000-0000-000000000001'), 1, 'a partly settled group''s rest is unknown');
SELECT is((SELECT status FROM public.email_messages WHERE id = (SELECT id FROM c1 ORDER BY id OFFSET 1 LIMIT 1)),
    'unknown', 'never resent');

-- cancel: what is only reserved is dropped, what is in flight settles later
SELECT sending.step('email', 'c7500000-0000-0000-0000-000000000001', 'a7500000-0000-0000-0000-000000000004',
    NULL, ARRAY(SELECT id FROM c4 ORDER BY id LIMIT 1), NULL, NULL, 3, 60, 60);
SELECT sending.cancel('c7500000-0000-0000-0000-000000000001');
SELECT is((SELECT status FROM public.email_messages WHERE id = (SELECT id FROM c4 ORDER BY id LIMIT 1)),
    'queued', 'the message in flight is left to its settle');
SELECT is((SELECT count(*)::int FROM public.email_messages WHERE id IN (SELECT id FROM c4) AND status = 'dropped'), 2,
    'the reserved ones are dropped');

-- SMS: a partial settle keeps the rest in flight, its expiry makes it unknown
SELECT tests.clear_authentication();
SELECT tests.zone_at_hour(13) AS day_tz \gset
UPDATE public.app_settings SET timezone = :'day_tz', monthly_sms_limit = 1000000;
INSERT INTO public.contacts (user_id, phone, first_name)
    SELECT :'gina', '+1555750000' || g, 'S' || g FROM generate_series(1, 3) g;
INSERT INTO public.sms_consent (phone_number, consent_given, consent_source)
    SELECT '+1555750000' || g, true, 'manual' FROM generate_series(1, 3) g
    ON CONFLICT (phone_number) DO UPDATE SET consent_given = true;
INSERT INTO public.campaigns (id, user_id, name, type, content)
    VALUES ('c7500000-0000-0000-0000-000000000002', :'gina', 'SMS groups', 'sms', 'Hi');
SELECT tests.authenticate_as_service();
SELECT sending.start('c7500000-0000-0000-0000-000000000002', 1);
SELECT sending.ensure_materialised('c7500000-0000-0000-0000-000000000002');
CREATE TEMP TABLE t1 AS SELECT * FROM sending.claim('sms', 'c7500000-0000-0000-0000-000000000002',
    'a7500000-0000-0000-0000-000000000005', 10, 60);
SELECT is((SELECT cardinality(go) FROM sending.step('sms', 'c7500000-0000-0000-0000-000000000002',
    'a7500000-0000-0000-0000-000000000005', NULL, ARRAY(SELECT id FROM t1 ORDER BY id), NULL, NULL, 3, 60, 60)), 3,
    'three SMS go as one group');
SELECT sending.step('sms', 'c7500000-0000-0000-0000-000000000002', 'a7500000-0000-0000-0000-000000000005',
    (SELECT jsonb_agg(jsonb_build_object('id', id, 'outcome', 'accepted', 'sid', 'SM75' || left(id::text, 8),
                                         'segments', 1))
     FROM (SELECT id FROM t1 ORDER BY id LIMIT 2) x), NULL, NULL, NULL, 3, 60, 60);
SELECT is((SELECT array_agg(message_id) FROM sending.leases WHERE claim = 'a7500000-0000-0000-0000-000000000005'
           AND in_flight), ARRAY(SELECT id FROM t1 ORDER BY id OFFSET 2), 'the SMS without a result stays in flight');
SELECT tests.clear_authentication();
UPDATE sending.holds SET lease_until = now() - interval '1 second'
WHERE claim = 'a7500000-0000-0000-0000-000000000005';
SELECT tests.authenticate_as_service();
SELECT is(sending.recover('c7500000-0000-0000-0000-000000000002'), 1, 'and is unknown when its lease runs out');
SELECT is((SELECT string_agg(status, ',' ORDER BY id) FROM public.sms_messages
           WHERE campaign_id = 'c7500000-0000-0000-0000-000000000002'), 'sent,sent,unknown',
    'the two settled are sent, never touched again');

-- a stale group (its message settled already, as a hold the upgrade's
-- conversion could leave) runs out: the message is neither changed nor counted
SELECT tests.clear_authentication();
SELECT unknown_count AS before_stale FROM public.campaigns WHERE id = 'c7500000-0000-0000-0000-000000000002' \gset
INSERT INTO sending.holds (campaign_id, claim, channel, in_flight, lease_until, ids)
SELECT 'c7500000-0000-0000-0000-000000000002', 'a7500000-0000-0000-0000-0000000000ff', 'sms', true,
       now() - interval '1 second',
       ARRAY(SELECT id FROM public.sms_messages WHERE campaign_id = 'c7500000-0000-0000-0000-000000000002'
             AND status = 'sent' ORDER BY id LIMIT 1);
SELECT tests.authenticate_as_service();
SELECT is(sending.recover('c7500000-0000-0000-0000-000000000002'), 0,
    'a stale group of a settled message: nothing becomes unknown');
SELECT is((SELECT string_agg(status, ',' ORDER BY id) FROM public.sms_messages
           WHERE campaign_id = 'c7500000-0000-0000-0000-000000000002'), 'sent,sent,unknown',
    'the sent message stays sent');
SELECT is((SELECT unknown_count FROM public.campaigns WHERE id = 'c7500000-0000-0000-0000-000000000002'),
    :before_stale, 'and the campaign does not count it');

SELECT * FROM finish();
ROLLBACK;
