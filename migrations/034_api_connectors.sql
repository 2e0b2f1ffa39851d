-- 034_api_connectors.sql: the HTTP API connectors (issue 11, docs/connectors.md).
--
-- Analytics sources (google_analytics, meta_pixel, bigquery, snowflake) write
-- their reports into public.imported_data: one row per metric per day per
-- dimension set. A unique index makes that identity a rule, and
-- import_metrics_upsert() upserts by it, so re-running a day replaces the
-- day's values and never doubles them. import_metrics_finish() then removes
-- the values of the days the run reported that the report no longer has, and
-- rolls each (metric, day) of the source up into public.analytics_data (the
-- sum over the dimension sets, as the owner's row with dimensions
-- {"data_source_id": …}), so /api/analytics and the dashboard show imported
-- metrics. Both run in the sync's transaction (as service_role): a failed or
-- cancelled sync leaves imported_data and analytics_data as they were.
--
-- request_data_source_sync() no longer refuses the types that had no importer:
-- every type of the data_sources CHECK constraint syncs now.
-- Applied once, inside one transaction, by the database owner.

-- Earlier duplicates (written before the rule): the latest import wins.
delete from public.imported_data a
using public.imported_data b
where a.data_source_id = b.data_source_id and a.metric_name = b.metric_name
  and a.event_date = b.event_date and a.dimensions = b.dimensions
  and (a.imported_at, a.id) < (b.imported_at, b.id);

create unique index imported_data_source_metric_day_dims_key
    on public.imported_data (data_source_id, metric_name, event_date, dimensions);

-- Upserts a batch of metric rows [{date, metric, value, dimensions}] of a data
-- source. imported_at = now() marks the rows of this transaction (the run).
-- Returns the number of rows written. 22023 for a row without date or metric.
create or replace function public.import_metrics_upsert(p_data_source_id uuid, p_rows jsonb)
returns integer
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_n integer;
begin
    if pg_catalog.jsonb_typeof(p_rows) is distinct from 'array' then
        raise exception 'the metric rows must be an array' using errcode = '22023';
    end if;
    if exists (select 1 from pg_catalog.jsonb_array_elements(p_rows) e(r)
               where pg_catalog.jsonb_typeof(e.r) <> 'object'
                  or coalesce(e.r ->> 'date', '') = '' or coalesce(e.r ->> 'metric', '') = ''
                  or pg_catalog.jsonb_typeof(coalesce(e.r -> 'dimensions', '{}')) <> 'object') then
        raise exception 'a metric row has no date or metric name' using errcode = '22023';
    end if;
    insert into public.imported_data as d (data_source_id, metric_name, metric_value, dimensions,
                                           event_date, imported_at)
    select p_data_source_id, pg_catalog.left(x.r ->> 'metric', 255),
           case when pg_catalog.jsonb_typeof(x.r -> 'value') = 'number'
                then (x.r ->> 'value')::numeric end,
           coalesce(x.r -> 'dimensions', '{}'), (x.r ->> 'date')::date, pg_catalog.now()
    from (select distinct on (pg_catalog.left(e.r ->> 'metric', 255), (e.r ->> 'date')::date,
                              coalesce(e.r -> 'dimensions', '{}'))
                 e.r, e.o
          from pg_catalog.jsonb_array_elements(p_rows) with ordinality e(r, o)
          order by pg_catalog.left(e.r ->> 'metric', 255), (e.r ->> 'date')::date,
                   coalesce(e.r -> 'dimensions', '{}'), e.o desc) x
    on conflict (data_source_id, metric_name, event_date, dimensions) do update
        set metric_value = excluded.metric_value, imported_at = excluded.imported_at;
    get diagnostics v_n = row_count;
    return v_n;
end
$$;
revoke all on function public.import_metrics_upsert(uuid, jsonb) from public, anon, authenticated;
grant execute on function public.import_metrics_upsert(uuid, jsonb) to service_role;

-- Ends the metrics of a run: on the days this transaction wrote, the values the
-- report no longer has are deleted; then those days are rolled up into
-- analytics_data (sum per metric and day, the source owner's row with
-- dimensions {"data_source_id": …}); roll-up rows of those days for metrics
-- gone are deleted. Returns {"values", "days", "removed", "rolled_up"}.
create or replace function public.import_metrics_finish(p_data_source_id uuid)
returns jsonb
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_owner uuid;
    v_dims jsonb := pg_catalog.jsonb_build_object('data_source_id', p_data_source_id);
    v_values integer;
    v_days integer;
    v_removed integer;
    v_rolled integer;
begin
    select ds.user_id into v_owner from public.data_sources ds where ds.id = p_data_source_id;
    create temporary table if not exists pg_temp.import_metric_days (day date primary key)
        on commit drop;
    truncate pg_temp.import_metric_days;
    insert into pg_temp.import_metric_days
    select distinct d.event_date from public.imported_data d
    where d.data_source_id = p_data_source_id and d.imported_at = pg_catalog.now();
    get diagnostics v_days = row_count;
    select pg_catalog.count(*) into v_values from public.imported_data d
    where d.data_source_id = p_data_source_id and d.imported_at = pg_catalog.now();
    delete from public.imported_data d
    using pg_temp.import_metric_days t
    where d.data_source_id = p_data_source_id and d.event_date = t.day
      and d.imported_at <> pg_catalog.now();
    get diagnostics v_removed = row_count;
    delete from public.analytics_data a
    using pg_temp.import_metric_days t
    where a.date = t.day and a.dimensions = v_dims
      and a.user_id is not distinct from v_owner
      and not exists (select 1 from public.imported_data d
                      where d.data_source_id = p_data_source_id and d.event_date = t.day
                        and pg_catalog.left(d.metric_name, 100) = a.metric_type);
    insert into public.analytics_data as a (user_id, metric_type, value, date, dimensions)
    select v_owner, pg_catalog.left(d.metric_name, 100), pg_catalog.sum(d.metric_value),
           d.event_date, v_dims
    from public.imported_data d
    join pg_temp.import_metric_days t on t.day = d.event_date
    where d.data_source_id = p_data_source_id
    group by pg_catalog.left(d.metric_name, 100), d.event_date
    on conflict (user_id, metric_type, date, dimensions) do update set value = excluded.value;
    get diagnostics v_rolled = row_count;
    return pg_catalog.jsonb_build_object('values', v_values, 'days', v_days,
                                         'removed', v_removed, 'rolled_up', v_rolled);
end
$$;
revoke all on function public.import_metrics_finish(uuid) from public, anon, authenticated;
grant execute on function public.import_metrics_finish(uuid) to service_role;

-- As in migration 021, without the list of supported types: opens the sync_logs
-- row, marks the source 'syncing' and enqueues 'import.sync'. 409 (PT409) while
-- another sync of the source is running.
create or replace function public.request_data_source_sync(p_data_source_id uuid)
returns uuid
language plpgsql volatile
security definer
set search_path = ''
as $$
declare
    v_type text := public.import_check_caller(p_data_source_id);
    v_log uuid := gen_random_uuid();
    v_sched jsonb;
begin
    -- (migration 021 refused the types without an importer here; every type of
    -- the data_sources CHECK constraint has one now, issue 11)
    -- checked before the row lock too: a running first sync holds the source's
    -- row (it records the new table_name) until it commits
    if exists (select 1 from public.sync_logs sl
               where sl.data_source_id = p_data_source_id and sl.status = 'running') then
        raise exception 'a sync of this data source is already running' using errcode = 'PT409',
            hint = 'Wait for it to finish, or cancel it with POST /api/sync-logs/:id/cancel.';
    end if;
    select ds.schedule_config into v_sched
    from public.data_sources ds where ds.id = p_data_source_id for update;
    if exists (select 1 from public.sync_logs sl
               where sl.data_source_id = p_data_source_id and sl.status = 'running') then
        raise exception 'a sync of this data source is already running' using errcode = 'PT409',
            hint = 'Wait for it to finish, or cancel it with POST /api/sync-logs/:id/cancel.';
    end if;
    insert into public.sync_logs (id, data_source_id, status, metadata)
    values (v_log, p_data_source_id, 'running',
            pg_catalog.jsonb_build_object('trigger', 'manual', 'phase', 'queued',
                                          'requested_by', auth.uid()));
    update public.data_sources ds set sync_status = 'syncing' where ds.id = p_data_source_id;
    perform jobs.enqueue('import.sync',
        pg_catalog.jsonb_build_object('data_source_id', p_data_source_id, 'sync_log_id', v_log,
                                      'trigger', 'manual'),
        pg_catalog.now(), 'import.sync:' || p_data_source_id::text,
        case when coalesce((v_sched ->> 'retry_on_failure')::boolean, true)
             then least(greatest(coalesce((v_sched ->> 'max_retries')::integer, 3), 0), 10) + 1
             else 1 end,
        pg_catalog.make_interval(mins => least(greatest(
            coalesce((v_sched ->> 'retry_delay_minutes')::integer, 1), 0), 1440)));
    return v_log;
end
$$;
revoke all on function public.request_data_source_sync(uuid) from public, anon;
grant execute on function public.request_data_source_sync(uuid) to authenticated;
