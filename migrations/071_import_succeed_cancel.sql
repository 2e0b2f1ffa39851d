-- 071_import_succeed_cancel.sql: a requested cancel is refused by the success
-- itself, in the data transaction.
--
-- Before, the job read the cancel flag (public.import_progress, a transaction
-- and a flushed commit of its own on the job's connection) right before it
-- called import_succeed_run: one commit per run only to look. Now
-- import_succeed_run does not close a run whose cancel was requested: its
-- UPDATE of the sync_logs row matches only a running row without
-- cancel_requested_at, so it raises 57014 ('the sync was cancelled') as it
-- already did for a row no longer running, and the job rolls its data
-- transaction back and ends the run as cancelled (src/importer/sync.c).
--
-- The guarantee is the same or tighter: a cancel committed before the UPDATE
-- is seen (READ COMMITTED re-reads the row it waits for); a cancel that comes
-- after it waits for the row (cancel_data_source_sync locks it) and then finds
-- the run finished, as it did when it came after the last look.
-- last_sync_value still advances in the same UPDATE of data_sources, in the
-- same transaction as the rows (migration 065); a refused run leaves it.

create or replace function public.import_succeed_run(p_sync_log_id uuid, p_imported bigint,
                                                     p_skipped bigint, p_metadata jsonb,
                                                     p_last_sync_value text)
returns void
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_source uuid;
begin
    update public.sync_logs sl
    set status = 'success', completed_at = pg_catalog.clock_timestamp(),  -- not the transaction's start
        records_imported = least(p_imported, 2147483647)::integer,
        records_skipped = least(p_skipped, 2147483647)::integer,
        metadata = sl.metadata || coalesce(p_metadata, '{}') || '{"phase": "done"}'
    where sl.id = p_sync_log_id and sl.status = 'running' and sl.cancel_requested_at is null
    returning sl.data_source_id into v_source;
    if v_source is null then
        raise exception 'the sync was cancelled' using errcode = '57014';
    end if;
    update public.data_sources ds
    set sync_status = 'success', last_sync_at = pg_catalog.now(),
        last_sync_value = coalesce(p_last_sync_value, ds.last_sync_value)
    where ds.id = v_source;
end
$$;

-- The four-argument form (021: metrics sources): the same refusal.
create or replace function public.import_succeed_run(p_sync_log_id uuid, p_imported bigint,
                                                     p_skipped bigint, p_metadata jsonb)
returns void
language sql volatile
security definer
set search_path = ''
as $$
    select public.import_succeed_run(p_sync_log_id, p_imported, p_skipped, p_metadata, null::text)
$$;
