-- 081_send_recover_when_due.sql: sending.recover does its work only when
-- there is some (issue 12, speed; bench/RESULTS.md "Session 13").
--
-- Every claim of a batch starts with sending.recover (075's claim, kept by
-- 080): the look at what a dead worker left. In a send where no worker
-- died, that look finds nothing every time, yet ran its seven statements
-- each time — two speculative inserts of the progress rows, a DELETE of the
-- campaign's expired holds, an UPDATE of each message table's expired
-- leases, and the counting around them: 0.3–0.7 ms per claim, 5.7 µs per
-- SMS of a 10,000-SMS send at claims of 100 and 13.7 µs per e-mail at
-- claims of 50 (track_functions, loaded machine).
--
-- Now the function of that name first asks whether anything is there to do,
-- with three probes of indexes that exist already (the campaign's holds by
-- holds_campaign, each message table's expired leases by 027's in-flight
-- index) and one of this session's progress row, and answers 0 when not.
-- Anything else runs 077's recovery as it was, renamed
-- sending.recover_all (the body, its settings and its owner unchanged: a
-- rename, no copy). The probes cover everything recover_all does for a
-- campaign that is sending:
--   - an expired hold (deleted, its messages unknown or released, a
--     webhook's earlier hand-over counted): the holds probe;
--   - an expired lease on a message still `sending`: the messages' probes;
--   - this session's progress rows, which 077 creates up front so that a
--     step's count never inserts one later (a lock cycle, see 077): the
--     progress_parts probe (both rows are inserted together, by 077's
--     recovery and by 067's count, and sending.progress is deleted only
--     with its campaign: a part implies the progress row). A fold
--     (sending.fold_progress, a pause) deleting the part and not committed
--     yet is not waited for, as 077's insert did; a later count then
--     inserts the part itself, the rare cycle 077 describes, which a claim
--     after a fold that committed meets as before;
-- and a campaign that is not sending (paused, cancelled: the next look, the
-- cancelled campaign's drop) always takes the whole recovery. The campaign's
-- row is locked first, as recover_all does (the lock order: in a claim the
-- row is held already). Callers are unchanged: the claim and a worker's
-- job start call sending.recover by name.

alter function sending.recover(uuid) rename to recover_all;

create function sending.recover(p_campaign uuid)
returns integer
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_status text;
begin
    select c.status into v_status from public.campaigns c where c.id = p_campaign for no key update;
    if v_status = 'sending'
       and exists (select 1 from sending.progress_parts q
                   where q.campaign_id = p_campaign and q.part = pg_catalog.pg_backend_pid())
       and not exists (select 1 from sending.holds h
                       where h.campaign_id = p_campaign and h.lease_until < pg_catalog.now())
       and not exists (select 1 from public.email_messages m
                       where m.campaign_id = p_campaign and m.status = 'sending'
                         and m.lease_until < pg_catalog.now())
       and not exists (select 1 from public.sms_messages m
                       where m.campaign_id = p_campaign and m.status = 'sending'
                         and m.lease_until < pg_catalog.now()) then
        return 0;
    end if;
    return sending.recover_all(p_campaign);
end
$$;
comment on function sending.recover(uuid) is
    'What a dead worker left of a campaign (expired holds and leases: unknown, released, counted), '
    'by sending.recover_all when there is any; 0 at once when there is none.';

revoke all on function sending.recover(uuid), sending.recover_all(uuid) from public;
grant execute on function sending.recover(uuid) to service_role;
