-- tests/sql/077_send_cancel_race.sql: migrations/077_send_cancel_recover.sql
-- with a second and a third session (dblink): a cancel racing a step never
-- marks a message the worker sends `dropped`, whichever comes first, and
-- never deadlocks with it. The fixture is committed (the other sessions
-- must see it) under random ids, and deleted at the end.
--   step first:   the step has put a group in flight, not committed; the
--                 cancel waits for its reservation, then sees the group
--                 (main: the cancel did not wait and dropped the group's
--                 messages, which the worker then sent: counted twice).
--   cancel first: the cancel has not committed; a step that settles an
--                 unknown result (it needs the campaign's row) waits for it,
--                 then finds its reservation gone and sends nothing (main:
--                 the step sent the next group the cancel had dropped).
--   batch edge:   a batch's end and the next batch's first step in one
--                 transaction (engine.c step_edge), not committed; the cancel
--                 waits, then leaves the new group in flight (no lock cycle
--                 between the end's progress and usage rows and the next
--                 reservation; main: the new group dropped and sent).
--   finish:       a batch's end finds everything settled while a cancel
--                 holds the campaign's row: it waits, and the campaign stays
--                 cancelled (main: the finish overwrote it with sent).
--   SendGrid:     an event batch locks its messages before it counts a
--                 delivery (main: message, progress, message: a cycle with
--                 a step).
-- Each wait is checked to be the one named (the blocking session, the
-- table of the row waited for). The cleanup runs even when a statement
-- errors (ON_ERROR_ROLLBACK; the test then fails at its end) and leaves
-- nothing: user, audit rows, the month's e-mail usage as it was.
BEGIN;
SELECT plan(25);

SELECT format('host=%s port=%s dbname=%s user=%s',
              split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
              current_database(), current_user) AS conn \gset
-- dblink installed and usable (CREATE EXTENSION and a passwordless
-- connection need a superuser): 'ok', or why not
CREATE FUNCTION pg_temp.dblink_usable(p_conn text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS dblink;
    PERFORM dblink_connect('probe', p_conn);
    PERFORM dblink_disconnect('probe');
    RETURN 'ok';
EXCEPTION WHEN others THEN
    RETURN SQLERRM;
END $$;
SELECT pg_temp.dblink_usable(:'conn') AS dblink_why \gset
SELECT :'dblink_why' = 'ok' AS have_dblink \gset
\if :have_dblink
CREATE EXTENSION IF NOT EXISTS dblink;
-- from here to the cleanup an error fails its statement only (and the
-- test at its end), so that the cleanup below always runs
\set ON_ERROR_STOP 0
\set ON_ERROR_ROLLBACK on
SELECT dblink_connect('s', :'conn') AS s, dblink_connect('b', :'conn') AS b, dblink_connect('c', :'conn') AS c;
SELECT coalesce((SELECT used FROM sending.monthly_usage WHERE month = sending.current_month() AND channel = 'email'),
                -1) AS used0 \gset
SELECT gen_random_uuid() AS x, gen_random_uuid() AS y, gen_random_uuid() AS z, gen_random_uuid() AS k1,
       gen_random_uuid() AS k2, gen_random_uuid() AS ka, gen_random_uuid() AS kb,
       gen_random_uuid() AS w, gen_random_uuid() AS kw,
       'r' || left(md5(random()::text), 10) AS tag \gset
SELECT pid AS bpid FROM dblink('b', 'select pg_backend_pid()') AS t(pid int) \gset
SELECT pid AS cpid FROM dblink('c', 'select pg_backend_pid()') AS t(pid int) \gset

-- waits (at most 10 s) until a session's query has ended ('done') or waits
-- for a lock: 'waiting' when it waits for p_blocker on a row of p_rel (the
-- first waiter for a row holds its tuple lock, a later one waits for it),
-- else what it waits for
CREATE FUNCTION pg_temp.wait_for(p_conn text, p_pid int, p_blocker int, p_rel regclass)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..1000 LOOP
        IF dblink_is_busy(p_conn) = 0 THEN
            RETURN 'done';
        END IF;
        IF EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = p_pid AND wait_event_type = 'Lock') THEN
            IF p_blocker = any (pg_blocking_pids(p_pid))
               AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = p_pid AND l.locktype = 'tuple'
                           AND l.relation = p_rel) THEN
                RETURN 'waiting';
            END IF;
            RETURN 'waiting for ' || pg_blocking_pids(p_pid)::text || ' on '
                || coalesce((SELECT string_agg(l.locktype || ' ' || coalesce(l.relation::regclass::text, '-'), ', ')
                             FROM pg_locks l WHERE l.pid = p_pid AND (NOT l.granted OR l.locktype = 'tuple')), '?');
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN 'busy';
END $$;

-- two e-mail campaigns of six recipients each, sending (no worker job:
-- nobody but this test sends them), each claimed whole
SELECT dblink_exec('s', format($f$
    begin;
    select tests.create_user('%1$s@race.test', 'user');
    insert into public.contacts (user_id, email)
        select (select id from auth.users where email = '%1$s@race.test'), '%1$s-' || g || '@race.test'
        from generate_series(1, 6) g;
    insert into public.campaigns (id, user_id, name, type, subject, content)
        select c, (select id from auth.users where email = '%1$s@race.test'), 'Race', 'email', 'Hi', '<p>x</p>'
        from unnest(array['%2$s', '%3$s', '%6$s', '%9$s']::uuid[]) c;
    update public.campaigns set status = 'sending', send_started_at = now()
    where id in ('%2$s', '%3$s', '%6$s', '%9$s');
    select sending.ensure_materialised('%2$s');
    select sending.ensure_materialised('%3$s');
    select sending.ensure_materialised('%6$s');
    select sending.ensure_materialised('%9$s');
    select sending.claim('email', '%2$s', '%4$s', 10, 60);
    select sending.claim('email', '%3$s', '%5$s', 10, 60);
    select sending.claim('email', '%6$s', '%7$s', 3, 60);
    select sending.claim('email', '%6$s', '%8$s', 3, 60);
    select sending.claim('email', '%9$s', '%10$s', 10, 60);
    commit;
$f$, :'tag', :'x', :'y', :'k1', :'k2', :'z', :'ka', :'kb', :'w', :'kw'));
SELECT array_agg(id ORDER BY id) AS xids FROM public.email_messages WHERE campaign_id = :'x' \gset
SELECT array_agg(id ORDER BY id) AS yids FROM public.email_messages WHERE campaign_id = :'y' \gset
SELECT is(cardinality(:'xids'::uuid[]) || ' ' || cardinality(:'yids'::uuid[]), '6 6', 'campaigns of six, claimed');

-- ---------------------------------------------------------------- step first
SELECT dblink_exec('b', 'begin');
SELECT go AS xgo FROM dblink('b', format(
    'select go::text from sending.step(''email'', %L, %L, null, %L, null, null, 3, 60, 60)',
    :'x', :'k1', (:'xids'::uuid[])[1:2])) AS t(go text) \gset
SELECT dblink_send_query('c', format('select sending.cancel(%L)::text', :'x'));
SELECT is(pg_temp.wait_for('c', :cpid, :bpid, 'sending.holds'), 'waiting',
    'the cancel waits for the step that holds a reservation');
SELECT dblink_exec('b', 'commit');
SELECT is((SELECT count(*)::int FROM dblink_get_result('c') AS t(r text)), 1, 'the cancel ends once the step commits');
SELECT count(*) FROM dblink_get_result('c') AS t(r text);
SELECT is(:'xgo'::uuid[], (:'xids'::uuid[])[1:2], 'the step''s group goes');
SELECT is((SELECT string_agg(status, ',' ORDER BY id) FROM public.email_messages WHERE campaign_id = :'x'),
    'queued,queued,dropped,dropped,dropped,dropped', 'the cancel leaves the group in flight, drops the rest');
-- the worker settles its group
SELECT * FROM dblink('b', format(
    'select status from sending.step(''email'', %L, %L, %L, null, null, null, 3, 60, 60)', :'x', :'k1',
    (SELECT jsonb_agg(jsonb_build_object('id', i, 'outcome', 'accepted')) FROM unnest((:'xids'::uuid[])[1:2]) i)))
    AS t(status text);
SELECT is((SELECT string_agg(status, ',' ORDER BY id) FROM public.email_messages WHERE campaign_id = :'x'),
    'sent,sent,dropped,dropped,dropped,dropped', 'what went is sent');
SELECT is((SELECT sent || ' ' || dropped FROM sending.progress_counts WHERE campaign_id = :'x'), '2 4',
    'each message counted once');
SELECT is((SELECT count(*)::int FROM sending.holds WHERE campaign_id = :'x'), 0, 'nothing is held');

-- ---------------------------------------------------------------- cancel first
-- a group of two in flight, committed
SELECT * FROM dblink('b', format(
    'select go::text from sending.step(''email'', %L, %L, null, %L, null, null, 3, 60, 60)', :'y', :'k2',
    (:'yids'::uuid[])[1:2])) AS t(go text);
SELECT dblink_exec('c', 'begin');
SELECT count(*) FROM dblink('c', format('select sending.cancel(%L)::text', :'y')) AS t(r text);
-- a step without an unknown result needs no lock the cancel holds: it skips
-- the reservation the cancel is taking away (SKIP LOCKED), at once, and
-- sends nothing (main: it sent the group the cancel drops)
SELECT dblink_send_query('b', format(
    'select go::text from sending.step(''email'', %L, %L, null, %L, null, null, 3, 60, 60)', :'y', :'k2',
    (:'yids'::uuid[])[3:4]));
SELECT is(pg_temp.wait_for('b', :bpid, :cpid, 'sending.holds') || ' '
          || coalesce((SELECT go FROM dblink_get_result('b') AS t(go text)), 'nothing'), 'done nothing',
    'a step with no unknown result does not wait for the cancel and sends nothing');
SELECT count(*) FROM dblink_get_result('b') AS t(go text);
-- the worker's next step: the group's results (one unknown: the campaign's
-- row) and the next group
SELECT dblink_send_query('b', format(
    'select go::text from sending.step(''email'', %L, %L, %L, %L, null, null, 3, 60, 60)', :'y', :'k2',
    jsonb_build_array(jsonb_build_object('id', (:'yids'::uuid[])[1], 'outcome', 'accepted'),
                      jsonb_build_object('id', (:'yids'::uuid[])[2], 'outcome', 'unknown')),
    (:'yids'::uuid[])[3:4]));
SELECT is(pg_temp.wait_for('b', :bpid, :cpid, 'public.campaigns'), 'waiting',
    'the step waits for the cancel (the campaign''s row, for its unknown count)');
SELECT dblink_exec('c', 'commit');
SELECT is((SELECT go FROM dblink_get_result('b') AS t(go text)), NULL, 'then sends nothing: its reservation is gone');
SELECT count(*) FROM dblink_get_result('b') AS t(go text);
SELECT is((SELECT string_agg(status, ',' ORDER BY id) FROM public.email_messages WHERE campaign_id = :'y'),
    'sent,unknown,dropped,dropped,dropped,dropped', 'the dropped ones were not sent');
SELECT is((SELECT p.sent || ' ' || p.dropped || ' ' || c.unknown_count FROM sending.progress_counts p
           JOIN public.campaigns c ON c.id = p.campaign_id WHERE p.campaign_id = :'y'), '1 4 1',
    'each message counted once');

-- ---------------------------------------------------------------- batch edge
SELECT array_agg(message_id ORDER BY message_id) AS zaids FROM sending.leases WHERE claim = :'ka' \gset
SELECT array_agg(message_id ORDER BY message_id) AS zbids FROM sending.leases WHERE claim = :'kb' \gset
-- batch a's first group of two in flight, committed
SELECT * FROM dblink('b', format(
    'select go::text from sending.step(''email'', %L, %L, null, %L, null, null, 3, 60, 60)', :'z', :'ka',
    (:'zaids'::uuid[])[1:2])) AS t(go text);
SELECT dblink_exec('b', 'begin');
SELECT * FROM dblink('b', format(
    'select status from sending.step(''email'', %L, %L, %L, null, null, %L, 3, 60, 60)', :'z', :'ka',
    (SELECT jsonb_agg(jsonb_build_object('id', i, 'outcome', 'accepted')) FROM unnest((:'zaids'::uuid[])[1:2]) i),
    :'zaids')) AS t(status text);
SELECT go AS zgo FROM dblink('b', format(
    'select go::text from sending.step(''email'', %L, %L, null, %L, null, null, 3, 60, 60)',
    :'z', :'kb', (:'zbids'::uuid[])[1:2])) AS t(go text) \gset
SELECT dblink_send_query('c', format('select sending.cancel(%L)::text', :'z'));
SELECT is(pg_temp.wait_for('c', :cpid, :bpid, 'sending.holds'), 'waiting',
    'the cancel waits for a batch edge''s transaction (its reservation)');
SELECT dblink_exec('b', 'commit');
SELECT is((SELECT count(*)::int FROM dblink_get_result('c') AS t(r text)), 1, 'and ends once it commits');
SELECT count(*) FROM dblink_get_result('c') AS t(r text);
SELECT is(:'zgo'::uuid[], (:'zbids'::uuid[])[1:2], 'the next batch''s first group goes');
SELECT * FROM dblink('b', format(
    'select status from sending.step(''email'', %L, %L, %L, null, null, %L, 3, 60, 60)', :'z', :'kb',
    (SELECT jsonb_agg(jsonb_build_object('id', i, 'outcome', 'accepted')) FROM unnest((:'zbids'::uuid[])[1:2]) i),
    :'zbids')) AS t(status text);
SELECT is((SELECT count(*) FILTER (WHERE status = 'sent') || ' ' || count(*) FILTER (WHERE status = 'dropped')
           FROM public.email_messages WHERE campaign_id = :'z'), '4 2', 'the four that went are sent, the two left dropped');
SELECT is((SELECT sent || ' ' || dropped FROM sending.progress_counts WHERE campaign_id = :'z'), '4 2',
    'each message counted once');

-- ---------------------------------------------------------------- finish
-- all six of w sent and settled; a batch's end (its finish) while a cancel
-- holds the campaign's row: the finish waits and keeps the cancel (main:
-- the finish's update overwrote 'cancelled' with 'sent')
SELECT array_agg(id ORDER BY id) AS wids FROM public.email_messages WHERE campaign_id = :'w' \gset
SELECT * FROM dblink('b', format(
    'select go::text from sending.step(''email'', %L, %L, null, %L, null, null, 3, 60, 60)', :'w', :'kw',
    :'wids')) AS t(go text);
SELECT * FROM dblink('b', format(
    'select status from sending.step(''email'', %L, %L, %L, null, null, null, 3, 60, 60)', :'w', :'kw',
    (SELECT jsonb_agg(jsonb_build_object('id', i, 'outcome', 'accepted')) FROM unnest(:'wids'::uuid[]) i)))
    AS t(status text);
SELECT dblink_exec('c', 'begin');
SELECT count(*) FROM dblink('c', format('select sending.cancel(%L)::text', :'w')) AS t(r text);
SELECT dblink_send_query('b', format(
    'select status from sending.step(''email'', %L, %L, null, null, null, %L, 3, 60, 60)', :'w', :'kw',
    :'wids'));
SELECT is(pg_temp.wait_for('b', :bpid, :cpid, 'public.campaigns'), 'waiting',
    'a batch''s finish waits for the cancel (the campaign''s row)');
SELECT dblink_exec('c', 'commit');
SELECT is((SELECT status FROM dblink_get_result('b') AS t(status text)) || ' '
          || (SELECT status FROM public.campaigns WHERE id = :'w'), 'cancelled cancelled',
    'then keeps the cancel: a campaign is sent only from sending');
SELECT count(*) FROM dblink_get_result('b') AS t(status text);

-- ---------------------------------------------------------------- SendGrid batch
-- a batch of two delivered events while a step holds the second message
-- (its settle, before it publishes the progress): the batch waits for that
-- message holding no progress row (main: it had counted the first delivery,
-- sending.progress locked, a cycle once the step publishes)
SELECT dblink_exec('c', 'begin');
SELECT count(*) FROM dblink('c', format('select id from public.email_messages where id = %L for update',
    (:'xids'::uuid[])[2])) AS t(id uuid);
SELECT dblink_send_query('b', format('select public.apply_sendgrid_events(%L)::text',
    (SELECT jsonb_agg(jsonb_build_object('event', 'delivered', 'email', m.recipient, 'timestamp', 1765000000,
                                         'sg_event_id', :'tag' || '-' || o, 'campaignd_message_id', m.id)
                      ORDER BY o)
     FROM unnest((:'xids'::uuid[])[1:2]) WITH ORDINALITY u(id, o) JOIN public.email_messages m ON m.id = u.id)));
SELECT is(pg_temp.wait_for('b', :bpid, :cpid, 'public.email_messages') || ' '
          || coalesce((SELECT r FROM dblink('s', format(
                 'select ''free'' from sending.progress where campaign_id = %L for update nowait', :'x'), false)
                 AS t(r text)), 'locked'),
    'waiting free', 'a SendGrid batch waits for a message before it counts a delivery (the lock order)');
SELECT dblink_exec('c', 'rollback');
SELECT is((SELECT r FROM dblink_get_result('b') AS t(r text)), '{"applied": 2, "duplicates": 0}',
    'then applies both');
SELECT count(*) FROM dblink_get_result('b') AS t(r text);

-- the fixture goes, whatever happened above: the sessions' transactions
-- end first (a query still running is cancelled)
SELECT dblink_cancel_query(n) FROM unnest(array['s', 'b', 'c']) n WHERE dblink_is_busy(n) = 1;
SELECT dblink_exec(n, 'rollback') FROM unnest(array['s', 'b', 'c']) n;
SELECT dblink_exec('s', format($f$
    begin;
    set local lock_timeout = '10s';
    create temp table gone on commit drop as
        select id from public.campaigns where id in ('%1$s', '%2$s', '%4$s', '%6$s')
        union all select id from public.contacts where email like '%3$s-%%@race.test'
        union all select id from public.email_messages where campaign_id in ('%1$s', '%2$s', '%4$s', '%6$s')
        union all select id from auth.users where email = '%3$s@race.test';
    delete from jobs.jobs where payload ->> 'campaign_id' in ('%1$s', '%2$s', '%4$s', '%6$s');
    delete from public.sendgrid_events where sg_event_id like '%3$s-%%';
    delete from sending.holds where campaign_id in ('%1$s', '%2$s', '%4$s', '%6$s');
    delete from sending.progress_parts where campaign_id in ('%1$s', '%2$s', '%4$s', '%6$s');
    delete from sending.progress where campaign_id in ('%1$s', '%2$s', '%4$s', '%6$s');
    delete from public.campaign_progress where id in ('%1$s', '%2$s', '%4$s', '%6$s');
    delete from public.email_messages where campaign_id in ('%1$s', '%2$s', '%4$s', '%6$s');
    delete from public.campaigns where id in ('%1$s', '%2$s', '%4$s', '%6$s');
    delete from public.contacts where email like '%3$s-%%@race.test';
    delete from public.audit_logs where user_id in (select id from gone) or resource_id in (select id from gone);
    delete from auth.users where email = '%3$s@race.test';
    delete from public.audit_logs where resource_id in (select id from gone);
    -- the month's e-mail usage as it was before the fixture (make test's
    -- live server sends no e-mail on this database meanwhile)
    update sending.monthly_usage set used = %5$s
    where month = sending.current_month() and channel = 'email' and %5$s >= 0;
    delete from sending.monthly_usage
    where month = sending.current_month() and channel = 'email' and %5$s < 0;
    commit;
$f$, :'x', :'y', :'tag', :'z', :used0, :'w'));
SELECT is((SELECT count(*)::int FROM auth.users WHERE email LIKE :'tag' || '%')
          + (SELECT count(*)::int FROM public.audit_logs
             WHERE resource_id IN (:'x', :'y', :'z', :'w') OR new_value::text LIKE '%' || :'tag' || '%'
                OR old_value::text LIKE '%' || :'tag' || '%')
          + (SELECT count(*)::int FROM jobs.jobs WHERE payload ->> 'campaign_id' IN (:'x', :'y', :'z', :'w'))
          + (SELECT count(*)::int FROM public.campaigns WHERE id IN (:'x', :'y', :'z', :'w'))
          + (SELECT count(*)::int FROM public.contacts WHERE email LIKE :'tag' || '%'),
          0, 'the fixture leaves nothing behind');
SELECT is(coalesce((SELECT used FROM sending.monthly_usage
                    WHERE month = sending.current_month() AND channel = 'email'), -1), :used0,
    'and the month''s e-mail usage is as it was');
SELECT dblink_disconnect('s'), dblink_disconnect('b'), dblink_disconnect('c');
-- (an error above failed its statement only: it fails the test here)
SELECT is(:'LAST_ERROR_SQLSTATE'::text, '00000', 'no statement failed: ' || :'LAST_ERROR_MESSAGE'::text);
\set ON_ERROR_ROLLBACK off
\set ON_ERROR_STOP 1
\else
SELECT skip('dblink is not usable here (' || :'dblink_why' || ')', 25);
\endif

SELECT * FROM finish();
ROLLBACK;
