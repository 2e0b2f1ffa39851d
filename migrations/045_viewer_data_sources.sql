-- Viewers see the data sources and their sync history, read-only (issue 13:
-- "viewers see everything read-only"; the dashboard's Data sources pages and
-- the import wizard's progress). What they read is what owners see through
-- /rest/v1: data_sources.credentials is masked by its CHECK constraint (the
-- clear values live in data_source_credentials, which no API role reads), and
-- the rows imported (import tables) stay with the owners and admins. Viewers
-- write nothing: only SELECT policies are added, and the import functions
-- already refuse them (public.import_check_caller).

create policy data_sources_select_viewer on public.data_sources
    for select to app_viewer using (deleted_at is null);
create policy sync_logs_select_viewer on public.sync_logs
    for select to app_viewer
    using (exists (select 1 from public.data_sources ds
                   where ds.id = sync_logs.data_source_id and ds.deleted_at is null));
