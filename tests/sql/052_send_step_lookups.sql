-- tests/sql/052_send_step_lookups.sql: migrations/052_send_step_lookups.sql —
-- public.message_status_rank is inlined (no SET clause: not parsed and
-- planned per call) and still ranks as 026 says; the step and settle of 041
-- keep their results (tests/sql/041_send_fast.sql runs them against 052's
-- definitions).
BEGIN;
SELECT plan(4);

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

SELECT * FROM finish();
ROLLBACK;
