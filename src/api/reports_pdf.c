/*
 * GET|POST /api/reports/:id/export?format=pdf: a stored report as an A4 PDF
 * (src/pdf/report_pdf.c draws it). One SQL statement, run as the caller like
 * the CSV export (row-level security decides which reports exist for them;
 * audit_report_export records the download), turns the stored report of any
 * type into text cells: the columns, the per-day rows and the totals, with
 * numbers exactly as PostgreSQL wrote them. This file turns those cells into
 * the document: parameters, KPI table, chart of the main series, per-day
 * table. Rendering runs in the request: a report has at most API_PDF_MAX_ROWS
 * rows (a 366-day period summary has 1,101), so the document and its memory
 * are bounded; a larger one is refused with 422 and a pointer to the CSV.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "api/api_internal.h"
#include "api/reports_pdf.h"
#include "core/log.h"

/* The campaign report's metrics in display order; other keys of its totals
 * (added by later work) follow, by name. */
#define CAMPAIGN_METRICS                                                                           \
    "'{messages,sent,delivered,failed,bounced,opened,clicked,unique_opens,unique_clicks,"          \
    "clicked_messages,segments,cost,delivery_rate,open_rate,click_rate,bounce_rate}'::text[]"

/* $1 report id. One row: type, name, from, to, time zone, campaign name,
 * campaign type, generated (display), and {columns, rows, totals} with every
 * cell as text or null. */
static const char PDF_SQL[] =
    "with r as materialized (select r.* from public.reports r where r.id = $1::uuid), "
    "cc as materialized ("
    "  select k.key, coalesce(o.ord, 1000) as ord"
    "  from r, jsonb_object_keys(case when jsonb_typeof(r.data -> 'totals') = 'object'"
    "                            then r.data -> 'totals' else '{}'::jsonb end) k(key)"
    "  left join unnest(" CAMPAIGN_METRICS ") with ordinality o(key, ord) on o.key = k.key), "
    "fc as materialized ("
    "  select c.value as key, c.ord from r, jsonb_array_elements_text("
    "    case when jsonb_typeof(r.data -> 'columns') = 'array' then r.data -> 'columns'"
    "    else '[]'::jsonb end) with ordinality c(value, ord)) "
    "select r.report_type, coalesce(r.data ->> 'name', r.report_type),"
    "  r.data #>> '{period,from}', r.data #>> '{period,to}', r.data #>> '{period,timezone}',"
    "  r.data #>> '{campaign,name}', r.data #>> '{campaign,type}',"
    "  to_char(r.generated_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI \"UTC\"'),"
    "  case when r.report_type = 'campaign_performance' then jsonb_build_object("
    "    'columns', '[\"date\"]'::jsonb"
    "      || coalesce((select jsonb_agg(cc.key order by cc.ord, cc.key) from cc), '[]'),"
    "    'rows', coalesce((select jsonb_agg(jsonb_build_array(e.value ->> 'date')"
    "        || coalesce((select jsonb_agg(e.value ->> cc.key order by cc.ord, cc.key) from cc),"
    "                    '[]') order by e.ord)"
    "      from jsonb_array_elements(case when jsonb_typeof(r.data -> 'daily') = 'array'"
    "                                then r.data -> 'daily' else '[]'::jsonb end)"
    "        with ordinality e(value, ord)), '[]'),"
    "    'totals', jsonb_build_array(jsonb_build_array('total')"
    "      || coalesce((select jsonb_agg(r.data -> 'totals' ->> cc.key order by cc.ord, cc.key)"
    "                   from cc), '[]')))"
    "  else jsonb_build_object("
    "    'columns', coalesce((select jsonb_agg(fc.key order by fc.ord) from fc), '[]'),"
    "    'rows', coalesce((select jsonb_agg((select jsonb_agg(e.value ->> fc.key order by fc.ord)"
    "        from fc) order by e.ord)"
    "      from jsonb_array_elements(case when jsonb_typeof(r.data -> 'rows') = 'array'"
    "                                then r.data -> 'rows' else '[]'::jsonb end)"
    "        with ordinality e(value, ord)), '[]'),"
    "    'totals', coalesce((select jsonb_agg((select jsonb_agg(e.value ->> fc.key"
    "        order by fc.ord) from fc) order by e.ord)"
    "      from jsonb_array_elements(case when jsonb_typeof(r.data -> 'totals') = 'array'"
    "                                then r.data -> 'totals' else '[]'::jsonb end)"
    "        with ordinality e(value, ord)), '[]')) end::text "
    "from r";

/* Metrics drawn as the main series of a per-day chart, first found first. */
static const char *const main_series[] = {"sent",           "delivered",     "opened",
                                          "contacts_added", "email_opt_ins", "sms_opt_ins"};

/* ---------------------------------------------------------------- model */

static const char *cell_text(const json_t *v)
{
    return json_string_value(v); /* NULL for null */
}

/* Reads a JSON array of rows, each an array of ncols strings or nulls, into
 * a cell array (malloc'd into *cells). skip_first drops column 0. */
static bool read_rows(const json_t *rows, size_t ncols, bool skip_first, const char ***cells,
                      size_t *nrows)
{
    size_t n = json_array_size(rows), w = ncols - (skip_first ? 1 : 0);
    *nrows = n;
    *cells = calloc(n * w + 1, sizeof(char *));
    if (!*cells)
        return false;
    for (size_t r = 0; r < n; r++) {
        const json_t *row = json_array_get(rows, r);
        if (!json_is_array(row) || json_array_size(row) != ncols)
            return false;
        for (size_t c = skip_first ? 1 : 0; c < ncols; c++) {
            const json_t *v = json_array_get(row, c);
            if (!json_is_string(v) && !json_is_null(v))
                return false;
            (*cells)[r * w + c - (skip_first ? 1 : 0)] = cell_text(v);
        }
    }
    return true;
}

static long column_index(const api_pdf_model_t *m, const char *name)
{
    for (size_t c = 0; c < m->ncols; c++)
        if (strcmp(m->columns[c], name) == 0)
            return (long)c;
    return -1;
}

static double cell_number(const char *s)
{
    return s ? strtod(s, NULL) : 0;
}

/* The KPI table: one totals row is shown as "metric, value" lines; several
 * (one per channel) as a table without the date; no totals and no date
 * column (channel_comparison): the rows are the KPIs. */
static bool build_kpi(api_pdf_model_t *m, const json_t *rows, const json_t *totals, bool has_date)
{
    rpdf_table_t *k = &m->doc.kpi;
    k->caption = "Key figures";
    size_t nt = json_array_size(totals);
    if (nt == 1) {
        size_t first = has_date ? 1 : 0, n = m->ncols - first;
        m->kpi_cells = calloc(2 * n + 1, sizeof(char *));
        if (!m->kpi_cells)
            return false;
        const json_t *row = json_array_get(totals, 0);
        if (json_array_size(row) != m->ncols)
            return false;
        for (size_t i = 0; i < n; i++) {
            const json_t *v = json_array_get(row, first + i);
            if (!json_is_string(v) && !json_is_null(v))
                return false;
            m->kpi_cells[2 * i] = m->columns[first + i];
            m->kpi_cells[2 * i + 1] = cell_text(v);
        }
        static const char *const head[] = {"metric", "total"};
        *k = (rpdf_table_t){"Key figures", 2, n, head, m->kpi_cells};
        return true;
    }
    bool skip = has_date && nt > 1;
    const json_t *src = nt > 1 ? totals : rows;
    if (nt == 0 && has_date)
        return true; /* nothing to sum up: no KPI table */
    if (!read_rows(src, m->ncols, skip, &m->kpi_cells, &k->nrows))
        return false;
    k->ncols = m->ncols - (skip ? 1 : 0);
    k->head = m->columns + (skip ? 1 : 0);
    k->cells = m->kpi_cells;
    return true;
}

/* Series per channel of "sent" over the distinct dates (period_summary). */
static bool chart_by_channel(api_pdf_model_t *m, long chan, long metric)
{
    rpdf_chart_t *ch = &m->doc.chart;
    const rpdf_table_t *d = &m->doc.daily;
    size_t nch = 0;
    const char *chans[RPDF_MAX_SERIES];
    for (size_t r = 0; r < d->nrows; r++) {
        const char *c = d->cells[r * d->ncols + (size_t)chan];
        size_t i = 0;
        while (c && i < nch && strcmp(chans[i], c) != 0)
            i++;
        if (c && i == nch && nch < RPDF_MAX_SERIES)
            chans[nch++] = c;
    }
    m->labels = calloc(d->nrows + 1, sizeof(char *));
    m->values = calloc(d->nrows * RPDF_MAX_SERIES + 1, sizeof(double));
    if (!m->labels || !m->values)
        return false;
    size_t np = 0;
    for (size_t r = 0; r < d->nrows; r++) {
        const char *day = d->cells[r * d->ncols];
        if (!day)
            continue;
        if (np == 0 || strcmp(m->labels[np - 1], day) != 0)
            m->labels[np++] = day;
        const char *c = d->cells[r * d->ncols + (size_t)chan];
        for (size_t s = 0; c && s < nch; s++)
            if (strcmp(chans[s], c) == 0)
                m->values[s * d->nrows + np - 1] +=
                    cell_number(d->cells[r * d->ncols + (size_t)metric]);
    }
    for (size_t s = 0; s < nch; s++) {
        snprintf(m->series_labels[s], sizeof(m->series_labels[s]), "%s %s", chans[s],
                 m->columns[metric]);
        ch->series[s] = (rpdf_series_t){m->series_labels[s], m->values + s * d->nrows};
    }
    ch->nseries = nch;
    ch->npoints = np;
    ch->caption = "Sent per day by channel";
    return true;
}

/* Series of the main metrics over the rows of t, labelled by column 0. */
static bool chart_by_row(api_pdf_model_t *m, const rpdf_table_t *t, const char *caption)
{
    rpdf_chart_t *ch = &m->doc.chart;
    m->labels = calloc(t->nrows + 1, sizeof(char *));
    m->values = calloc(t->nrows * RPDF_MAX_SERIES + 1, sizeof(double));
    if (!m->labels || !m->values)
        return false;
    for (size_t r = 0; r < t->nrows; r++)
        m->labels[r] = t->cells[r * t->ncols] ? t->cells[r * t->ncols] : "";
    for (size_t i = 0; i < CD_ARRAY_LEN(main_series) && ch->nseries < 3; i++) {
        long c = column_index(m, main_series[i]);
        if (c < 0)
            continue;
        double *v = m->values + ch->nseries * t->nrows;
        for (size_t r = 0; r < t->nrows; r++)
            v[r] = cell_number(t->cells[r * t->ncols + (size_t)c]);
        ch->series[ch->nseries++] = (rpdf_series_t){m->columns[c], v};
    }
    ch->npoints = t->nrows;
    ch->caption = caption;
    return true;
}

static bool build_chart(api_pdf_model_t *m, bool has_date)
{
    rpdf_chart_t *ch = &m->doc.chart;
    bool ok;
    if (!has_date) {
        ok = chart_by_row(m, &m->doc.kpi, "By channel");
    } else {
        long chan = column_index(m, "channel"), sent = column_index(m, "sent");
        ok = chan > 0 && sent > 0 ? chart_by_channel(m, chan, sent)
                                  : chart_by_row(m, &m->doc.daily, "Trend per day");
    }
    ch->labels = m->labels;
    ch->bars = ch->npoints <= 14;
    return ok;
}

static void build_params(api_pdf_model_t *m, const api_pdf_report_t *in)
{
    bool campaign = strcmp(in->type, "campaign_performance") == 0;
    const char *title = campaign ? "Campaign performance" : api_report_type_title(in->type);
    if (in->from || in->to)
        snprintf(m->period, sizeof(m->period), "%s to %s", in->from ? in->from : "start",
                 in->to ? in->to : "today");
    else
        snprintf(m->period, sizeof(m->period), "all time");
    size_t n = 0;
    m->param_names[n] = "Report";
    m->param_values[n++] = title ? title : in->type;
    if (campaign) {
        m->param_names[n] = "Campaign";
        m->param_values[n++] = in->campaign;
    }
    m->param_names[n] = "Channel";
    m->param_values[n++] = campaign ? in->channel : "email, sms, social";
    m->param_names[n] = "Period";
    m->param_values[n++] = m->period;
    m->param_names[n] = "Time zone";
    m->param_values[n++] = in->timezone;
    m->param_names[n] = "Generated";
    m->param_values[n++] = in->generated;
    m->doc.nparams = n;
    m->doc.param_names = m->param_names;
    m->doc.param_values = m->param_values;
    m->doc.subtitle = title;
}

api_pdf_status_t api__report_pdf_model(const api_pdf_report_t *in, api_pdf_model_t *m)
{
    memset(m, 0, sizeof(*m));
    json_t *t = json_loads(in->tables_json ? in->tables_json : "", 0, NULL);
    m->tables = t;
    const json_t *cols = json_object_get(t, "columns"), *rows = json_object_get(t, "rows"),
                 *totals = json_object_get(t, "totals");
    if (!json_is_array(cols) || json_array_size(cols) == 0 || !json_is_array(rows) ||
        !json_is_array(totals))
        return API_PDF_MALFORMED;
    if (json_array_size(rows) + json_array_size(totals) > API_PDF_MAX_ROWS)
        return API_PDF_TOO_MANY_ROWS;
    m->ncols = json_array_size(cols);
    m->columns = calloc(m->ncols, sizeof(char *));
    if (!m->columns)
        return API_PDF_MALFORMED;
    for (size_t c = 0; c < m->ncols; c++)
        if (!(m->columns[c] = json_string_value(json_array_get(cols, c))))
            return API_PDF_MALFORMED;
    bool has_date = strcmp(m->columns[0], "date") == 0;
    m->doc.title = in->name;
    m->doc.created = in->created;
    build_params(m, in);
    if (has_date) {
        rpdf_table_t *d = &m->doc.daily;
        if (!read_rows(rows, m->ncols, false, &m->daily_cells, &d->nrows))
            return API_PDF_MALFORMED;
        *d = (rpdf_table_t){"Per day", m->ncols, d->nrows, m->columns, m->daily_cells};
    }
    if (!build_kpi(m, rows, totals, has_date) || !build_chart(m, has_date))
        return API_PDF_MALFORMED;
    return API_PDF_OK;
}

void api__report_pdf_model_free(api_pdf_model_t *m)
{
    free(m->columns);
    free(m->daily_cells);
    free(m->kpi_cells);
    free(m->labels);
    free(m->values);
    json_decref(m->tables);
    memset(m, 0, sizeof(*m));
}

/* -------------------------------------------------------------- handler */

static void reply_pdf(http_request_t *req, const api_ctx_t *ctx, bool save, const PGresult *res,
                      cd_buf_t *out)
{
    const char *name = PQgetvalue(res, 0, 1);
    if (save) {
        api__report_save_export(req, ctx, "pdf", "application/pdf", out->data, out->len);
        return;
    }
    char day[11];
    snprintf(day, sizeof(day), "%.10s", PQgetvalue(res, 0, 7));
    api__report_disposition(req, name, day, "pdf");
    size_t len = out->len;
    char *pdf = cd_buf_take(out);
    if (!pdf) {
        api__reply_error(req, 500, "internal_error", "out of memory", NULL, NULL);
        return;
    }
    http_reply_take(req, 200, "application/pdf", pdf, len);
}

static void reply_render_error(http_request_t *req, rpdf_status_t st)
{
    if (st == RPDF_TOO_MANY_PAGES)
        api__reply_error(req, 422, "report_too_large_for_pdf",
                         "the report does not fit the PDF page limit", "field: format",
                         "Export it as CSV (format=csv).");
    else if (st == RPDF_TOO_LARGE)
        api__reply_error(req, 500, "export_too_large", "the report is too large to export", NULL,
                         NULL);
    else
        api__reply_error(req, 500, "internal_error", "the PDF could not be drawn", NULL, NULL);
}

/* Builds the model of PDF_SQL's row and renders it into out. */
static void render_row(const PGresult *res, cd_buf_t *out, api_pdf_status_t *ms, rpdf_status_t *rs)
{
    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *v[9];
    for (int i = 0; i < 9; i++)
        v[i] = PQgetisnull(res, 0, i) ? NULL : PQgetvalue(res, 0, i);
    api_pdf_report_t in = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], created};
    api_pdf_model_t m;
    *rs = RPDF_ERROR;
    *ms = api__report_pdf_model(&in, &m);
    if (*ms == API_PDF_OK)
        *rs = rpdf_render(&m.doc, API_PDF_MAX_PAGES, out, NULL);
    api__report_pdf_model_free(&m);
}

static void render_and_reply(http_request_t *req, const api_ctx_t *ctx, bool save,
                             const PGresult *res)
{
    cd_buf_t out;
    cd_buf_init(&out, API_EXPORT_MAX_BYTES);
    api_pdf_status_t ms;
    rpdf_status_t rs;
    render_row(res, &out, &ms, &rs);
    if (ms == API_PDF_TOO_MANY_ROWS)
        api__reply_error(req, 422, "report_too_large_for_pdf",
                         "the report has too many rows for a PDF", "field: format",
                         "Export it as CSV (format=csv).");
    else if (ms != API_PDF_OK)
        api__reply_error(req, 422, "unsupported_report_type", "this report has no table to print",
                         "field: format", "Use format=json.");
    else if (rs != RPDF_OK)
        reply_render_error(req, rs);
    else
        reply_pdf(req, ctx, save, res, &out);
    if (ms == API_PDF_OK && rs != RPDF_OK)
        log_error("report %s: PDF not drawn (%d)", req->params[0], (int)rs);
    cd_buf_free(&out);
}

api_report_status_t api__report_pdf(const db_caller_t *who, const char *report_id, cd_buf_t *out,
                                    db_error_t *err)
{
    const char *p[1] = {report_id};
    db_caller_t reader = *who;
    reader.read_only = true;
    PGresult *res = NULL;
    db_status_t st = db_run(&reader, &(db_stmt_t){PDF_SQL, 1, p}, 1, &res, err);
    if (st != DB_OK)
        return st == DB_UNAVAILABLE ? API_REPORT_UNAVAILABLE : API_REPORT_DB_ERROR;
    api_report_status_t rc = API_REPORT_NOT_FOUND;
    if (PQntuples(res) == 1) {
        api_pdf_status_t ms;
        rpdf_status_t rs;
        render_row(res, out, &ms, &rs);
        rc = ms == API_PDF_OK && rs == RPDF_OK ? API_REPORT_OK
             : ms == API_PDF_TOO_MANY_ROWS || rs == RPDF_TOO_MANY_PAGES || rs == RPDF_TOO_LARGE
                 ? API_REPORT_TOO_LARGE
                 : API_REPORT_NOT_FOUND;
    }
    PQclear(res);
    return rc;
}

void api__reports_export_pdf(http_request_t *req, bool save)
{
    api_ctx_t ctx;
    /* read-write: the export is recorded in the audit log (action export) */
    if (!api__begin(req, false, &ctx))
        return;
    PGresult *res[2] = {NULL, NULL};
    if (!api__path_id(req, "report"))
        goto done;
    const char *p[1] = {req->params[0]};
    const char *pa[2] = {req->params[0], "pdf"};
    db_stmt_t st[2] = {{PDF_SQL, 1, p},
                       {"select public.audit_report_export($1::uuid, $2::text)", 2, pa}};
    if (!api__run(req, &ctx, st, 2, res))
        goto done;
    if (PQntuples(res[0]) != 1)
        api__reply_not_found(req, "report");
    else
        render_and_reply(req, &ctx, save, res[0]);
done:
    PQclear(res[0]);
    PQclear(res[1]);
    api__end(&ctx);
}
