-- tests/sql/052_send_step_lookups.sql: migrations/052_send_step_lookups.sql —
-- public.message_status_rank is inlined (no SET clause: not parsed and
-- planned per call) and still ranks as 026 says; the step and settle of 041
-- keep their results (tests/sql/041_send_fast.sql runs them against 052's
-- definitions).
BEGIN;
SELECT plan(6);

SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'public.message_status_rank(text, text)'::regprocedure),
          NULL, 'message_status_rank has no SET clause');
SELECT is((SELECT provolatile::text || prosecdef::text FROM pg_proc
           WHERE oid = 'public.message_status_rank(text, text)'::regprocedure),
          'ifalse', 'immutable, not SECURITY DEFINER: inlinable');

CREATE TEMPORARY TABLE rank_probe (s text);
CREATE FUNCTION pg_temp.plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text; acc text := '';
BEGIN
    FOR r IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || q LOOP acc := acc || r || E'\n'; END LOOP;
    RETURN acc;
END $$;
SELECT ok(position('message_status_rank' IN
              pg_temp.plan_of('SELECT public.message_status_rank(''email'', s) FROM rank_probe')) = 0,
          'a call is inlined into the caller''s plan');
SELECT is(ARRAY[public.message_status_rank('email', 'queued'), public.message_status_rank('email', 'sent'),
                public.message_status_rank('sms', 'delivered'), public.message_status_rank('email', 'clicked')],
          ARRAY[0, 3, 4, 6], 'the ranks of 026');

-- sending.allowed, now PL/pgSQL: the answers of 041
INSERT INTO public.email_subscriptions (email, subscribed) VALUES ('gone@allowed.test', false),
    ('stays@allowed.test', true);
INSERT INTO public.suppressions (channel, address, reason) VALUES ('email', 'bounced@allowed.test', 'hard_bounce'),
    ('sms', '+15550005203', 'manual');
INSERT INTO public.sms_consent (phone_number, consent_given, consent_source) VALUES
    ('+15550005201', true, 'manual'), ('+15550005202', false, 'manual'), ('+15550005203', true, 'manual');
SELECT is(ARRAY[sending.allowed('email', 'new@allowed.test'), sending.allowed('email', 'stays@allowed.test'),
                sending.allowed('email', 'gone@allowed.test'), sending.allowed('email', ' Bounced@Allowed.test '),
                sending.allowed('email', NULL)],
          ARRAY[true, true, false, false, false],
          'e-mail: allowed unless unsubscribed or suppressed (trimmed, any case); NULL never');
SELECT is(ARRAY[sending.allowed('sms', '+15550005201'), sending.allowed('sms', '+15550005202'),
                sending.allowed('sms', '+15550005203'), sending.allowed('sms', '+15550005204')],
          ARRAY[true, false, false, false], 'SMS: only with consent and not suppressed');

SELECT * FROM finish();
ROLLBACK;
