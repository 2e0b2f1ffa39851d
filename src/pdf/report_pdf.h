/*
 * A report as an A4 PDF document: title, parameters, a KPI table, a chart of
 * the main series and the per-day table, laid out with pango and drawn on
 * cairo's PDF surface (docs/architecture.md says why these libraries). The
 * document model is plain text cells, so this module knows nothing of report
 * types or the database: src/api/reports_pdf.c builds the model.
 */
#ifndef CD_REPORT_PDF_H
#define CD_REPORT_PDF_H

#include <stddef.h>

#include "core/buf.h"
#include "core/common.h"

/* At most this many series in a chart (more are not drawn). */
#define RPDF_MAX_SERIES 4

/* A table of text cells; cells[r * ncols + c], NULL shows as empty. */
typedef struct rpdf_table {
    const char *caption;
    size_t ncols, nrows;
    const char *const *head;  /* ncols column names ('_' shows as a space) */
    const char *const *cells; /* nrows * ncols */
} rpdf_table_t;

typedef struct rpdf_series {
    const char *label;
    const double *values; /* one per point */
} rpdf_series_t;

/* Bars (few points) or lines over labelled points. */
typedef struct rpdf_chart {
    const char *caption;
    size_t npoints;
    const char *const *labels; /* npoints x-axis labels */
    size_t nseries;            /* 0..RPDF_MAX_SERIES; 0 or no points: no chart is drawn */
    rpdf_series_t series[RPDF_MAX_SERIES];
    bool bars;
} rpdf_chart_t;

/* One document. Every string is UTF-8 (invalid bytes show as U+FFFD) and is
 * drawn as text, never interpreted as markup. The model only borrows. */
typedef struct rpdf_doc {
    const char *title;
    const char *subtitle;            /* may be NULL */
    const char *created;             /* metadata CreationDate, "YYYY-MM-DDThh:mm:ssZ" */
    size_t nparams;                  /* the report's parameters, shown as a list */
    const char *const *param_names;  /* nparams */
    const char *const *param_values; /* nparams; NULL shows as a dash */
    rpdf_table_t kpi;                /* ncols 0: not shown */
    rpdf_chart_t chart;
    rpdf_table_t daily; /* ncols 0: not shown */
} rpdf_doc_t;

typedef enum rpdf_status {
    RPDF_OK = 0,
    RPDF_TOO_MANY_PAGES, /* the document would pass max_pages */
    RPDF_TOO_LARGE,      /* the PDF does not fit the output buffer */
    RPDF_ERROR,          /* cairo failed (out of memory, ...) */
} rpdf_status_t;

/* What rendering produced (for tests and logs). */
typedef struct rpdf_stats {
    int pages;
    size_t rows_drawn;     /* table rows drawn, headers not counted */
    int table_page_breaks; /* page breaks inside tables (the header is repeated after each) */
} rpdf_stats_t;

/* Renders doc as an A4 PDF (portrait; landscape when a table has more than
 * RPDF_PORTRAIT_MAX_COLS columns) appended to out, which bounds its size.
 * Stops with RPDF_TOO_MANY_PAGES before starting page max_pages + 1. On any
 * failure out is left as it was. stats may be NULL. */
#define RPDF_PORTRAIT_MAX_COLS 10
CD_MUSTCHECK rpdf_status_t rpdf_render(const rpdf_doc_t *doc, int max_pages, cd_buf_t *out,
                                       rpdf_stats_t *stats);

#endif
