-- bench/send/sqlpath/drive.sql: the engine's SQL for a whole campaign (:cid):
-- claims of 100, steps of 4 (settle the previous group, mark the next), one
-- commit per step, every send accepted; prints the backend's CPU ticks.
\set ON_ERROR_STOP 1
create or replace procedure pg_temp.drive(c uuid)
language plpgsql as $$
declare
    v_claim uuid; ids uuid[]; grp uuid[]; prev jsonb; st text; g uuid[]; n int; i int;
begin
    loop
        v_claim := gen_random_uuid();
        select array_agg(x.id) into ids from sending.claim('sms', c, v_claim, 100, 300) x;
        commit;
        exit when ids is null;
        prev := null;
        n := cardinality(ids);
        i := 1;
        while i <= n loop
            grp := ids[i:i + 3];
            select s.status, s.go into st, g
            from sending.step('sms', c, v_claim, prev, grp, null, null, 3, 60, 300) s;
            prev := (select jsonb_agg(jsonb_build_object('id', x, 'outcome', 'accepted',
                                      'sid', 'SM' || replace(x::text, '-', ''), 'segments', 1))
                     from unnest(g) x);
            commit;
            i := i + 4;
        end loop;
        select s.status into st
        from sending.step('sms', c, v_claim, prev, null, null, ids, 3, 60, 300) s;
        commit;
    end loop;
end $$;
select pg_backend_pid() as pid \gset
\setenv PID :pid
select pg_current_wal_lsn() as lsn0 \gset
\! echo start $(cut -d' ' -f14,15 /proc/$PID/stat) $(date +%s.%N)
call pg_temp.drive(:'cid');
\! echo end $(cut -d' ' -f14,15 /proc/$PID/stat) $(date +%s.%N)
select pg_wal_lsn_diff(pg_current_wal_lsn(), :'lsn0') as wal,
       (select status from public.campaigns where id = :'cid') as status,
       (select count(*) from public.sms_messages where campaign_id = :'cid' and status = 'sent') as sent,
       (select count(*) from sending.progress_parts where campaign_id = :'cid') as parts;
