/*
 * The PDF export of reports (reports_pdf.c): a stored report's text cells
 * turned into a document model for src/pdf/report_pdf.c, and the handler of
 * GET|POST /api/reports/:id/export?format=pdf. Internal to src/api/ and its
 * unit tests.
 */
#ifndef CD_API_REPORTS_PDF_H
#define CD_API_REPORTS_PDF_H

#include <jansson.h>

#include "api/api.h"
#include "db/db.h"
#include "http/http.h"
#include "pdf/report_pdf.h"

/* Most rows (per-day rows plus totals) a PDF is drawn for; a 366-day period
 * summary has 366 * 3 + 3. Larger reports: 422, use the CSV. */
#define API_PDF_MAX_ROWS 2000
/* Most pages of one PDF (2,000 rows of a wide table are about 60). */
#define API_PDF_MAX_PAGES 120

/* A stored report as PDF_SQL reads it; every field may be NULL except type.
 * tables_json is {"columns": [...], "rows": [[...]], "totals": [[...]]}
 * with text or null cells. */
typedef struct api_pdf_report {
    const char *type, *name, *from, *to, *timezone, *campaign, *channel, *generated;
    const char *tables_json;
    const char *created; /* the PDF's creation date, "YYYY-MM-DDThh:mm:ssZ" */
} api_pdf_report_t;

typedef enum api_pdf_status {
    API_PDF_OK = 0,
    API_PDF_MALFORMED,     /* no columns, rows of the wrong width, ... */
    API_PDF_TOO_MANY_ROWS, /* more than API_PDF_MAX_ROWS */
} api_pdf_status_t;

/* The document and what it points into (owned here). */
typedef struct api_pdf_model {
    rpdf_doc_t doc;
    json_t *tables;
    const char **columns;
    size_t ncols;
    const char **daily_cells, **kpi_cells, **labels;
    double *values;
    char period[64];
    char series_labels[RPDF_MAX_SERIES][48];
    const char *param_names[8], *param_values[8];
} api_pdf_model_t;

/* Builds the document of a report: title (its name), parameters (type,
 * campaign, channel, period, time zone, generated), the KPI table (the
 * totals), the chart of the main series and the per-day table. Borrows from
 * `in` (keep it alive while m->doc is used). Always call
 * api__report_pdf_model_free(m) afterwards, whatever the status. */
CD_MUSTCHECK api_pdf_status_t api__report_pdf_model(const api_pdf_report_t *in, api_pdf_model_t *m);
void api__report_pdf_model_free(api_pdf_model_t *m);

/* The PDF of stored report report_id read as `who` (read-only; row-level
 * security decides whether it exists), appended to out (whose maximum bounds
 * it): API_REPORT_OK, NOT_FOUND, TOO_LARGE (too many rows or pages, or out is
 * full), UNAVAILABLE, DB_ERROR (err says why). For scheduled reports. */
CD_MUSTCHECK api_report_status_t api__report_pdf(const db_caller_t *who, const char *report_id,
                                                 cd_buf_t *out, db_error_t *err);

/* The handler (reports.c dispatches format=pdf here); save: POST, store the
 * file in the exports bucket and answer its signed URL. */
void api__reports_export_pdf(http_request_t *req, bool save);

#endif
