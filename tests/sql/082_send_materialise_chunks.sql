-- tests/sql/082_send_materialise_chunks.sql: migrations/082_send_materialise_chunks.sql
-- — a campaign's recipients are written a slice at a time (the first look:
-- 500; a claim that finds nothing due: the next slice; the other workers:
-- the rest, a slice per transaction), with the same rule as
-- the single statement before (the owner's live contacts with an address,
-- consent, not suppressed, each address once); the campaign is not finished
-- while its audience is not all written; the counts, the audit event and
-- the progress rows follow; a paused campaign resumes where it stood.
BEGIN;
SELECT plan(37);

SELECT tests.create_user('ivy@example.test', 'user') AS ivy \gset
SELECT tests.create_user('jon@example.test', 'user') AS jon \gset
SELECT tests.clear_authentication();
-- (a time zone where it is about 13:00 now: no quiet hours)
SELECT ((13 - extract(hour FROM now() AT TIME ZONE 'UTC')::int + 36) % 24) - 12 AS off \gset
UPDATE public.app_settings SET postal_address = '1 Main St', monthly_email_limit = 1000000,
    monthly_sms_limit = 1000000,
    timezone = CASE WHEN :off = 0 THEN 'UTC' WHEN :off > 0 THEN 'Etc/GMT-' || :off ELSE 'Etc/GMT+' || (0 - (:off)) END;

-- Ivy: 1,300 contacts with a phone (numbers out of order of creation), every
-- 10th without consent, one suppressed, 20 deleted; 40 with an e-mail only.
-- Jon: 100 numbers of his own, without consent.
INSERT INTO public.contacts (user_id, phone, email, first_name, deleted_at)
SELECT :'ivy', '+1555' || lpad(((g * 7919) % 10000)::text, 7, '0'), 'i' || g || '@example.test',
       CASE WHEN g % 2 = 0 THEN 'Ann' ELSE 'Bob' END,
       CASE WHEN g % 65 = 0 THEN now() END
FROM generate_series(1, 1300) g;
INSERT INTO public.contacts (user_id, email, first_name)
SELECT :'ivy', 'only' || g || '@example.test', 'Ann' FROM generate_series(1, 40) g;
INSERT INTO public.contacts (user_id, phone, first_name)
SELECT :'jon', '+1666' || lpad(g::text, 7, '0'), 'Jon' FROM generate_series(1, 100) g;
INSERT INTO public.sms_consent (phone_number, consent_given, consent_source)
SELECT '+1555' || lpad(((g * 7919) % 10000)::text, 7, '0'), g % 10 <> 0, 'import'
FROM generate_series(1, 1300) g;
INSERT INTO public.suppressions (channel, address, reason)
VALUES ('sms', '+1555' || lpad(((3 * 7919) % 10000)::text, 7, '0'), 'complaint');

-- the recipients the single statement (068) chose
CREATE TEMPORARY TABLE expected_sms AS
SELECT k.phone::text AS recipient, k.id AS contact_id
FROM public.contacts k
WHERE k.user_id = :'ivy' AND k.deleted_at IS NULL AND k.phone IS NOT NULL
  AND EXISTS (SELECT 1 FROM public.sms_consent s WHERE s.phone_number = k.phone AND s.consent_given)
  AND NOT EXISTS (SELECT 1 FROM public.suppressions x WHERE x.channel = 'sms' AND x.address = btrim(k.phone));
SELECT count(*)::int AS want FROM expected_sms \gset
SELECT count(*)::int AS live FROM public.contacts WHERE user_id = :'ivy' AND deleted_at IS NULL \gset

INSERT INTO public.campaigns (user_id, name, type, content)
VALUES (:'ivy', 'Slices', 'sms', 'Hi {{first_name}}') RETURNING id AS c1 \gset
SELECT sending.start(:'c1', 1) IS NOT NULL AS started \gset

-- the first look: one slice of 500 contacts
SELECT sending.ensure_materialised(:'c1');
SELECT is((SELECT count(*)::int FROM public.sms_messages WHERE campaign_id = :'c1'),
          (SELECT count(*)::int FROM expected_sms e
           WHERE e.recipient <= (SELECT m.after FROM sending.materialising m WHERE m.campaign_id = :'c1')),
          'the first look writes the allowed recipients of its slice');
SELECT is((SELECT count(*)::int FROM public.contacts k
           WHERE k.user_id = :'ivy' AND k.deleted_at IS NULL AND k.phone IS NOT NULL
             AND k.phone <= (SELECT m.after FROM sending.materialising m WHERE m.campaign_id = :'c1')),
          500, 'a slice is 500 of the audience''s contacts with a number, in the order of the numbers');
SELECT ok((SELECT materialised_at IS NULL FROM public.campaigns WHERE id = :'c1'),
          'the campaign is not materialised yet');
SELECT is((SELECT recipients_count FROM public.campaigns WHERE id = :'c1'),
          (SELECT count(*)::int FROM public.sms_messages WHERE campaign_id = :'c1'),
          'recipients_count is what the slices wrote so far');
SELECT is((SELECT skipped_count FROM public.campaigns WHERE id = :'c1'), 0,
          'skipped is counted when the audience ends');

-- not finished while the audience is not all written, even with nothing queued
UPDATE public.sms_messages SET status = 'sent', sent_at = now(), attempts = 1
WHERE campaign_id = :'c1';
SELECT ok(sending.unfinished(:'c1'), 'unfinished while the materialisation is');
SELECT is(sending.finish(:'c1'), 'sending', 'so the batch''s end does not finish it');

-- a claim writes the next slice before it takes its batch
SELECT m.after AS after1 FROM sending.materialising m WHERE m.campaign_id = :'c1' \gset
SELECT count(*)::int AS messages1 FROM public.sms_messages WHERE campaign_id = :'c1' \gset
SELECT is((SELECT count(*)::int FROM sending.claim('sms', :'c1', gen_random_uuid(), 100, 300)), 100,
          'a claim with nothing due takes its batch from the next slice');
SELECT ok((SELECT m.after > :'after1' FROM sending.materialising m WHERE m.campaign_id = :'c1'),
          'the walk moved on');
SELECT is((SELECT count(*)::int FROM public.sms_messages WHERE campaign_id = :'c1'),
          (SELECT count(*)::int FROM expected_sms e
           WHERE e.recipient <= (SELECT m.after FROM sending.materialising m WHERE m.campaign_id = :'c1')),
          'the claim wrote the allowed recipients of its slice');
SELECT is((SELECT count(*)::int FROM public.contacts k
           WHERE k.user_id = :'ivy' AND k.deleted_at IS NULL AND k.phone IS NOT NULL
             AND k.phone > :'after1'
             AND k.phone <= (SELECT m.after FROM sending.materialising m WHERE m.campaign_id = :'c1')),
          500, 'its slice: twice the claim, at least 500');

-- the progress rows count against the recipients written so far
SELECT sending.count_progress(:'c1', 1, 0, 0);
SELECT is((SELECT recipients FROM sending.progress WHERE campaign_id = :'c1'),
          (SELECT recipients_count FROM public.campaigns WHERE id = :'c1'),
          'the progress row starts with the recipients so far');

-- a pause, then a resume: it goes on where it stood
SELECT send_started_at AS started_at FROM public.campaigns WHERE id = :'c1' \gset
UPDATE public.campaigns SET status = 'paused' WHERE id = :'c1';
SELECT is((SELECT count(*)::int FROM sending.claim('sms', :'c1', gen_random_uuid(), 100, 300)), 0,
          'a paused campaign''s claim writes and takes nothing');
SELECT is(sending.resume(:'c1', 1) ->> 'status', 'sending', 'a resumed campaign sends again');
SELECT is((SELECT send_started_at FROM public.campaigns WHERE id = :'c1'), :'started_at'::timestamptz,
          'it was not started anew');
SELECT ok((SELECT m.after > :'after1' FROM sending.materialising m WHERE m.campaign_id = :'c1'),
          'its walk stands where it stood');

-- the rest in one call: the same recipients as the single statement
SELECT is((SELECT recipients FROM sending.materialise(:'c1')), :want, 'sending.materialise writes the rest');
SELECT set_eq(format('SELECT recipient::text, contact_id FROM public.sms_messages WHERE campaign_id = %L', :'c1'),
              'SELECT recipient, contact_id FROM expected_sms',
              'the same recipients and contacts as one statement wrote');
SELECT is((SELECT count(DISTINCT recipient)::int FROM public.sms_messages WHERE campaign_id = :'c1'), :want,
          'each number once');
SELECT ok((SELECT materialised_at IS NOT NULL FROM public.campaigns WHERE id = :'c1'),
          'materialised when the audience ended');
SELECT is((SELECT count(*)::int FROM sending.materialising WHERE campaign_id = :'c1'), 0,
          'the walk''s row is gone');
SELECT is((SELECT recipients_count FROM public.campaigns WHERE id = :'c1'), :want, 'recipients_count');
SELECT is((SELECT skipped_count FROM public.campaigns WHERE id = :'c1'), :live - :want,
          'skipped: every live contact not written (no number, no consent, suppressed)');
SELECT is((SELECT recipients FROM sending.progress WHERE campaign_id = :'c1'), :want,
          'the progress row counts against every recipient');
SELECT results_eq(format($q$SELECT (new_value ->> 'recipients')::int, (new_value ->> 'skipped')::int
                          FROM public.audit_logs
                          WHERE resource_id = %L AND new_value ->> 'event' = 'materialised'$q$, :'c1'),
                  format('VALUES (%s, %s)', :want, :live - :want),
                  'one materialised event, with the totals');

-- e-mail through a segment: the segment's statement walked by address
INSERT INTO public.audience_segments (user_id, name, rules)
VALUES (:'ivy', 'Anns', '{"all":[{"field":"first_name","op":"eq","value":"Ann"}]}') RETURNING id AS seg \gset
INSERT INTO public.email_subscriptions (email, subscribed)
VALUES ('i2@example.test', false), ('only4@example.test', false);
CREATE TEMPORARY TABLE expected_email AS
SELECT k.email::text AS recipient
FROM public.segment_contact_ids(:'ivy', '{"all":[{"field":"first_name","op":"eq","value":"Ann"}]}') a
JOIN public.contacts k ON k.id = a
WHERE k.email IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM public.email_subscriptions s WHERE s.email = k.email AND NOT s.subscribed);
INSERT INTO public.campaigns (user_id, name, type, content, subject, segment_id)
VALUES (:'ivy', 'Anns', 'email', 'Hi {{first_name}}', 'Hello', :'seg') RETURNING id AS c2 \gset
SELECT sending.start(:'c2', 1) IS NOT NULL AS started \gset
SELECT sending.ensure_materialised(:'c2');
SELECT ok((SELECT materialised_at IS NULL FROM public.campaigns WHERE id = :'c2'),
          'a segment of more than 500 takes more than the first slice');
SELECT is((SELECT count(*)::int FROM sending.claim('email', :'c2', gen_random_uuid(), 50, 300)), 50,
          'its claim takes a batch');
SELECT (sending.materialise(:'c2')).recipients IS NOT NULL AS done2 \gset
SELECT set_eq(format('SELECT recipient::text FROM public.email_messages WHERE campaign_id = %L', :'c2'),
              'SELECT recipient FROM expected_email',
              'the segment''s subscribed addresses, each once');
SELECT ok((SELECT count(*) FROM expected_email) > 500, '(more than one slice of them)');

-- at night (quiet hours) a claim writes nothing more: what is written waits
-- for the window, and so does the rest of the audience (not one transaction
-- walking all of it)
INSERT INTO public.campaigns (user_id, name, type, content)
VALUES (:'ivy', 'Night', 'sms', 'Hi') RETURNING id AS c4 \gset
SELECT sending.start(:'c4', 1) IS NOT NULL AS started \gset
SELECT sending.ensure_materialised(:'c4');
-- (twelve hours from the day's zone: about 01:00 there)
SELECT CASE WHEN :off >= 0 THEN :off - 12 ELSE :off + 12 END AS night \gset
UPDATE public.app_settings
SET timezone = CASE WHEN :night > 0 THEN 'Etc/GMT-' || :night WHEN :night = 0 THEN 'UTC'
                    ELSE 'Etc/GMT+' || (0 - (:night)) END;
SELECT ok(sending.sms_window_opens(null) IS NOT NULL, '(it is night in the application''s time zone)');
SELECT m.after AS night0 FROM sending.materialising m WHERE m.campaign_id = :'c4' \gset
SELECT is((SELECT count(*)::int FROM sending.claim('sms', :'c4', gen_random_uuid(), 100, 300)), 0,
          'a claim at night takes nothing');
SELECT is((SELECT m.after FROM sending.materialising m WHERE m.campaign_id = :'c4'), :'night0',
          'and writes no slice: what is written waits for the window, and so does the rest');

-- a campaign's other workers write the rest a slice per call
SELECT is(sending.materialise_more(:'c4', 300), false, 'materialise_more: one slice, more to come');
SELECT is((SELECT count(*)::int FROM public.contacts k
           WHERE k.user_id = :'ivy' AND k.deleted_at IS NULL AND k.phone IS NOT NULL
             AND k.phone > :'night0'
             AND k.phone <= (SELECT m.after FROM sending.materialising m WHERE m.campaign_id = :'c4')),
          300, 'of the size asked');
SELECT is((SELECT count(*)::int FROM generate_series(1, 10) WHERE NOT sending.materialise_more(:'c4', 300)),
          1, 'until the audience ends (true then, and after)');
SELECT ok((SELECT materialised_at IS NOT NULL FROM public.campaigns WHERE id = :'c4'), 'and it is materialised');

-- a campaign whose audience ends in its first slice is finished there (no one to send to)
INSERT INTO public.campaigns (user_id, name, type, content)
VALUES (:'jon', 'Nobody', 'sms', 'Hi') RETURNING id AS c3 \gset
SELECT sending.start(:'c3', 1) IS NOT NULL AS started \gset
SELECT sending.ensure_materialised(:'c3');
SELECT is((SELECT status FROM public.campaigns WHERE id = :'c3'), 'sent',
          'a campaign with nobody allowed (no consent for Jon''s numbers) ends in its first look');

SELECT * FROM finish();
ROLLBACK;
