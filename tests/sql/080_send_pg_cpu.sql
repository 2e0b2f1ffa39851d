-- tests/sql/080_send_pg_cpu.sql: migrations/080_send_pg_cpu.sql — the claim
-- reads each message's contact once and builds what the templates read in
-- one call: the same objects as before (the contact's fields, {} without a
-- contact, and for SMS first_to_number), the same time-zone rule; and
-- sending.holds keeps a size at which every plan of the engine's statements
-- reads it by index (or by ctid), also after a vacuum of the empty table.
BEGIN;
SELECT plan(22);

SELECT tests.create_user('hugo@example.test', 'user') AS hugo \gset
SELECT tests.clear_authentication();
UPDATE public.app_settings SET postal_address = '1 Main St', monthly_email_limit = 1000000,
    monthly_sms_limit = 1000000;
-- (what 075's claim returned for a message: its contact's fields, or {})
CREATE FUNCTION pg_temp.expected(p_channel text, p_id uuid) RETURNS jsonb LANGUAGE sql AS $$
    SELECT coalesce((SELECT jsonb_build_object('first_name', k.first_name, 'last_name', k.last_name,
                                               'email', k.email, 'phone', k.phone, 'attributes', k.attributes)
                     FROM public.contacts k
                     WHERE k.id = coalesce((SELECT e.contact_id FROM public.email_messages e WHERE e.id = p_id),
                                           (SELECT s.contact_id FROM public.sms_messages s WHERE s.id = p_id))),
                    '{}'::jsonb)
        || CASE WHEN p_channel = 'sms' THEN jsonb_build_object('first_to_number', NOT EXISTS (
               SELECT 1 FROM public.sms_messages o, public.sms_messages m
               WHERE m.id = p_id AND o.recipient = m.recipient AND o.id <> m.id AND o.message_sid IS NOT NULL))
           ELSE '{}'::jsonb END
$$;

-- e-mail: fields as they are (nulls included), no first_to_number
INSERT INTO public.contacts (user_id, email, first_name, last_name, attributes) VALUES
    (:'hugo', 'e1@c080.test', 'Eve', NULL, '{"plan": "gold"}'),
    (:'hugo', 'e2@c080.test', 'Ed', 'Two', '{}'),
    (:'hugo', 'e3@c080.test', NULL, NULL, '{"timezone": "Europe/Paris"}');
INSERT INTO public.campaigns (id, user_id, name, type, subject, content)
    VALUES ('c8000000-0000-0000-0000-000000000001', :'hugo', 'Mail', 'email', 'Hi', '<p>x</p>');
SELECT tests.authenticate_as_service();
SELECT sending.start('c8000000-0000-0000-0000-000000000001', 1);
SELECT sending.ensure_materialised('c8000000-0000-0000-0000-000000000001');
-- a contact deleted after materialising: its message has no contact any more
SELECT tests.clear_authentication();
DELETE FROM public.contacts WHERE email = 'e2@c080.test';
SELECT tests.authenticate_as_service();
CREATE TEMP TABLE ce AS SELECT * FROM sending.claim('email', 'c8000000-0000-0000-0000-000000000001',
    'a8000000-0000-0000-0000-000000000001', 10, 60);
SELECT is((SELECT count(*)::int FROM ce), 3, 'an e-mail claim of three (a time zone does not hold e-mail back)');
SELECT is((SELECT count(*)::int FROM ce WHERE contact IS DISTINCT FROM pg_temp.expected('email', id)), 0,
    'each e-mail''s object is what the claim built before');
SELECT is((SELECT contact FROM ce WHERE recipient = 'e2@c080.test'), '{}'::jsonb, 'no contact: {}');
SELECT is((SELECT contact FROM ce WHERE recipient = 'e1@c080.test'),
    '{"first_name": "Eve", "last_name": null, "email": "e1@c080.test", "phone": null, "attributes": {"plan": "gold"}}'::jsonb,
    'a contact''s fields, nulls kept');
SELECT is((SELECT array_agg(id) FROM ce), (SELECT array_agg(id ORDER BY id) FROM ce),
    'returned in id order');

-- SMS: first_to_number with and without a contact, a time zone in quiet hours waits
SELECT tests.clear_authentication();
-- (zones where it is 13:xx and 03:xx now)
SELECT tests.zone_at_hour(13) AS day_tz,
       tests.zone_at_hour(3) AS night_tz \gset
UPDATE public.app_settings SET timezone = :'day_tz';
INSERT INTO public.contacts (user_id, phone, first_name, attributes) VALUES
    (:'hugo', '+15558000001', 'Sam', '{}'),
    (:'hugo', '+15558000002', 'Known', '{"timezone": ""}'),
    (:'hugo', '+15558000003', 'Gone', '{}'),
    (:'hugo', '+15558000004', 'Night', jsonb_build_object('timezone', :'night_tz'));
INSERT INTO public.sms_consent (phone_number, consent_given, consent_source)
    SELECT p, true, 'manual' FROM unnest(ARRAY['+15558000001', '+15558000002', '+15558000003', '+15558000004']) p
    ON CONFLICT (phone_number) DO UPDATE SET consent_given = true;
INSERT INTO public.sms_messages (recipient, message, status, message_sid)
    VALUES ('+15558000002', 'earlier', 'sent', 'SMc080earlier');
INSERT INTO public.campaigns (id, user_id, name, type, content)
    VALUES ('c8000000-0000-0000-0000-000000000002', :'hugo', 'SMS', 'sms', 'Hi {{first_name}}');
SELECT tests.authenticate_as_service();
SELECT sending.start('c8000000-0000-0000-0000-000000000002', 1);
SELECT sending.ensure_materialised('c8000000-0000-0000-0000-000000000002');
SELECT tests.clear_authentication();
DELETE FROM public.contacts WHERE phone = '+15558000003';
SELECT tests.authenticate_as_service();
CREATE TEMP TABLE cs AS SELECT * FROM sending.claim('sms', 'c8000000-0000-0000-0000-000000000002',
    'a8000000-0000-0000-0000-000000000002', 10, 60);
SELECT is((SELECT string_agg(recipient, ',' ORDER BY recipient) FROM cs), '+15558000001,+15558000002,+15558000003',
    'the number in its quiet hours is not claimed (an empty time zone is the application''s)');
SELECT ok((SELECT next_attempt_at > now() FROM public.sms_messages WHERE recipient = '+15558000004'
           AND campaign_id = 'c8000000-0000-0000-0000-000000000002'), 'it waits for the window there');
SELECT is((SELECT count(*)::int FROM cs WHERE contact IS DISTINCT FROM pg_temp.expected('sms', id)), 0,
    'each SMS''s object is what the claim built before');
SELECT is((SELECT contact FROM cs WHERE recipient = '+15558000003'), '{"first_to_number": true}'::jsonb,
    'no contact: first_to_number alone');
SELECT is((SELECT contact ->> 'first_to_number' FROM cs WHERE recipient = '+15558000002'), 'false',
    'a number sent to before is not a first');
SELECT is((SELECT contact - 'first_to_number' FROM cs WHERE recipient = '+15558000001'),
    '{"first_name": "Sam", "last_name": null, "email": null, "phone": "+15558000001", "attributes": {}}'::jsonb,
    'with the contact''s fields');
SELECT is((SELECT cardinality(ids) FROM sending.holds WHERE claim = 'a8000000-0000-0000-0000-000000000002'), 3,
    'the claim''s reservation holds what it returned');

-- sending.holds: never truncated, at least 64 pages; with the statistics a
-- vacuum of the empty table leaves (no rows, its pages), the engine's
-- generic plans read it by index or ctid, not whole
SELECT tests.clear_authentication();
RESET ROLE;
SELECT ok((SELECT 'vacuum_truncate=false' = ANY (reloptions) FROM pg_class WHERE oid = 'sending.holds'::regclass),
    'sending.holds is never truncated by a vacuum');
SELECT ok(pg_relation_size('sending.holds') >= 64 * 8192, 'sending.holds has at least 64 pages');
-- what an operator runs after a restore or a VACUUM FULL (here: a TRUNCATE,
-- rolled back with the test): the table padded again, no row of its own
-- left, a hold of the same campaign and claim untouched
TRUNCATE sending.holds;
SELECT is(pg_relation_size('sending.holds'), 0::bigint, 'a truncated sending.holds is empty');
INSERT INTO sending.holds (campaign_id, claim, channel, in_flight, lease_until, ids)
VALUES ('00000000-0000-0000-0000-000000000000', '00000000-0000-0000-0000-000000000000', 'sms', false,
        now(), '{}');
SELECT ok(sending.pad_holds() >= 64, 'sending.pad_holds answers 64 pages or more');
SELECT is((SELECT count(*)::int FROM sending.holds WHERE cardinality(ids) = 100), 0,
    'sending.pad_holds leaves none of its rows behind');
SELECT is((SELECT count(*)::int FROM sending.holds WHERE cardinality(ids) = 0), 1,
    'sending.pad_holds deletes only its own rows (not one of the same campaign and claim, older)');
UPDATE pg_class SET relpages = (pg_relation_size('sending.holds') / 8192)::int, reltuples = 0
WHERE oid = 'sending.holds'::regclass;
CREATE FUNCTION pg_temp.plan_of(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text; o text := '';
BEGIN
    FOR r IN EXECUTE 'EXPLAIN ' || p_sql LOOP o := o || r || E'\n'; END LOOP;
    RETURN o;
END $$;
SET plan_cache_mode = force_generic_plan;
PREPARE res(uuid, uuid) AS SELECT h.ids FROM sending.holds h
    WHERE h.campaign_id = $1 AND h.claim = $2 AND NOT h.in_flight FOR UPDATE SKIP LOCKED;
PREPARE settle_del(uuid, uuid, uuid[]) AS DELETE FROM sending.holds h
    WHERE h.campaign_id = $1 AND h.claim = $2 AND h.in_flight AND h.ids && $3 RETURNING h.ids;
PREPARE held(uuid) AS SELECT u.id FROM sending.holds h CROSS JOIN LATERAL unnest(h.ids) AS u(id)
    WHERE h.campaign_id = $1;
PREPARE batch_end(uuid, uuid) AS DELETE FROM sending.holds h WHERE h.ctid = ANY (ARRAY(
    SELECT k.ctid FROM sending.holds k WHERE k.campaign_id = $1 AND k.claim = $2 AND NOT k.in_flight
    FOR UPDATE SKIP LOCKED));
SELECT unalike(pg_temp.plan_of('EXECUTE res(NULL, NULL)'), '%Seq Scan on holds%',
    'the step''s reservation: by index');
SELECT unalike(pg_temp.plan_of('EXECUTE settle_del(NULL, NULL, NULL)'), '%Seq Scan on holds%',
    'the settle''s delete of its groups: by index');
SELECT unalike(pg_temp.plan_of('EXECUTE held(NULL)'), '%Seq Scan on holds%',
    'the claim''s held ids: by index');
SELECT unalike(pg_temp.plan_of('EXECUTE batch_end(NULL, NULL)'), '%Seq Scan on holds%',
    'the batch''s end: its reservation by index, deleted by ctid');
RESET plan_cache_mode;

SELECT * FROM finish();
ROLLBACK;
