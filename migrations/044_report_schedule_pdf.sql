-- 044_report_schedule_pdf.sql: a scheduled report may be mailed as PDF.
--
-- report_schedules.attachment_format says what the run attaches to its mail
-- and saves behind the signed download link: 'csv' (the default, as before)
-- or 'pdf' (the A4 document of GET /api/reports/:id/export?format=pdf,
-- docs/reports.md). The owner writes it like the other settings of the
-- schedule; row-level security (migration 032) is unchanged.
alter table public.report_schedules
    add column attachment_format text not null default 'csv'
        constraint report_schedules_attachment_format_valid
        check (attachment_format in ('csv', 'pdf'));
comment on column public.report_schedules.attachment_format is
    'csv or pdf: the file each run attaches to its mail and links to';

grant insert (attachment_format), update (attachment_format)
    on public.report_schedules to authenticated;
