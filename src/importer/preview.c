/*
 * The test-connection preview: reads the head of a data source's file (the
 * first IMPORT_PREVIEW_SAMPLE rows at most, so a 1 GB upload answers as fast
 * as a small one; a URL source downloads at most IMPORT_HEAD_BYTES), infers
 * each column's type, proposes target names, and shows the first rows as the
 * sync would load them, cleaned by the source's column_config.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "importer/clean.h"
#include "importer/connectors.h"
#include "importer/dbconn.h"
#include "importer/importer_internal.h"
#include "importer/parse.h"

#define IMPORT_PREVIEW_SAMPLE 200 /* rows read for type inference */
#define IMPORT_MAX_WARNINGS   20

typedef struct sample_row {
    imp_cell_t *cells;
    size_t ncells;
    long long line;
    bool ragged;
} sample_row_t;

static void free_sample(sample_row_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < rows[i].ncells; j++)
            free((char *)rows[i].cells[j].data);
        free(rows[i].cells);
    }
    free(rows);
}

/* Copies a row out of the reader (whose cells are valid only until the next
 * row). */
static bool keep_row(sample_row_t *dst, const imp_row_t *row)
{
    dst->cells = calloc(row->ncells ? row->ncells : 1, sizeof(imp_cell_t));
    if (!dst->cells)
        return false;
    dst->ncells = row->ncells;
    dst->line = row->line;
    dst->ragged = row->ragged;
    for (size_t j = 0; j < row->ncells; j++) {
        char *d = malloc(row->cells[j].len + 1);
        if (!d)
            return false;
        memcpy(d, row->cells[j].data, row->cells[j].len);
        d[row->cells[j].len] = '\0';
        dst->cells[j].data = d;
        dst->cells[j].len = row->cells[j].len;
    }
    return true;
}

static void warn(json_t *warnings, const char *fmt, ...) CD_PRINTF(2, 3);
static void warn(json_t *warnings, const char *fmt, ...)
{
    if (json_array_size(warnings) >= IMPORT_MAX_WARNINGS)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_array_append_new(warnings, json_string(msg));
}

static json_t *value_json(const imp_value_t *v, imp_type_t t)
{
    if (v->is_null)
        return json_null();
    switch (t) {
    case IMP_TYPE_INTEGER:
    case IMP_TYPE_NUMBER: {
        json_t *n = json_loadb(v->data, v->len, JSON_DECODE_ANY, NULL);
        if (n && json_is_number(n))
            return n;
        json_decref(n);
        break;
    }
    case IMP_TYPE_BOOLEAN:
        return json_boolean(v->len > 0 && v->data[0] == 't');
    default:
        break;
    }
    return json_stringn(v->data, v->len);
}

static imp_reader_t *open_reader(const import_source_t *src, const char *path, imp_error_t *perr,
                                 char *message, size_t msglen)
{
    imp_parse_opts_t o;
    imp_parse_opts_init(&o);
    const json_t *cfg = src->config;
    const char *enc = cfg ? json_string_value(json_object_get(cfg, "encoding")) : NULL;
    if (enc && !imp_encoding_from_name(enc, &o.encoding)) {
        snprintf(message, msglen,
                 "config.encoding \"%.40s\" is not supported; use utf-8, utf-16, windows-1252, "
                 "latin1 or auto",
                 enc);
        return NULL;
    }
    const char *delim = cfg ? json_string_value(json_object_get(cfg, "delimiter")) : NULL;
    if (delim && *delim) {
        if (strcmp(delim, "tab") == 0 || strcmp(delim, "\\t") == 0)
            o.delimiter = '\t';
        else if (strlen(delim) == 1)
            o.delimiter = delim[0];
        else {
            snprintf(message, msglen, "config.delimiter must be one character (or \"tab\")");
            return NULL;
        }
    }
    o.sheet = cfg ? json_string_value(json_object_get(cfg, "sheet")) : NULL;
    json_t *hh = cfg ? json_object_get(cfg, "has_header") : NULL;
    if (json_is_boolean(hh))
        o.has_header = json_is_true(hh);
    imp_reader_t *r = imp_reader_open(path, IMP_FORMAT_DETECT, &o, perr);
    if (!r)
        snprintf(message, msglen, "%s",
                 perr->message[0] ? perr->message : "the file cannot be read");
    return r;
}

/* Reads up to IMPORT_PREVIEW_SAMPLE rows into rows[], feeding the inference
 * and noting ragged lines. Returns IMPORT_PREVIEW_OK to go on. */
static import_preview_status_t read_sample(imp_reader_t *r, imp_infer_t *inf, size_t nh,
                                           bool truncated, sample_row_t *rows, size_t *nrows,
                                           json_t *warnings, char *message, size_t msglen)
{
    imp_error_t perr = {0};
    while (*nrows < IMPORT_PREVIEW_SAMPLE) {
        imp_row_t row;
        int got = imp_reader_next(r, &row, &perr);
        if (got < 0) {
            if (!truncated || *nrows == 0) {
                snprintf(message, msglen, "%s", perr.message);
                return IMPORT_PREVIEW_BAD_SOURCE;
            }
            break; /* the head ends mid-row: the sample is what came before */
        }
        if (got == 0)
            break;
        imp_infer_add_row(inf, &row);
        if (!keep_row(&rows[(*nrows)++], &row))
            return IMPORT_PREVIEW_INTERNAL;
        if (row.ragged)
            warn(warnings, "line %lld has %zu fields where the header has %zu", row.line,
                 row.ncells, nh);
    }
    return IMPORT_PREVIEW_OK;
}

/* The plan of the source's column_config when it compiles, else of the
 * proposed config; NULL (message set) when neither compiles. */
static imp_plan_t *choose_plan(const json_t *cc, const json_t *proposed, const imp_cell_t *header,
                               size_t nh, json_t *warnings, bool *configured, char *message,
                               size_t msglen)
{
    const json_t *cols = json_is_object(cc) ? json_object_get(cc, "columns") : cc;
    *configured = json_is_array(cols) && json_array_size(cols) > 0;
    imp_error_t cerr = {0};
    imp_plan_t *plan = NULL;
    if (*configured) {
        plan = imp_plan_compile(cc, header, nh, &cerr);
        if (!plan)
            warn(warnings, "column_config cannot be used: %s; showing the proposed mapping",
                 cerr.message);
    }
    if (!plan) {
        plan = imp_plan_compile(proposed, header, nh, &cerr);
        if (!plan)
            snprintf(message, msglen, "%s", cerr.message);
    }
    return plan;
}

/* columns: what each output column reads, is called, is, and looks like */
static json_t *preview_columns(const imp_plan_column_t *pc, size_t ncols, const sample_row_t *rows,
                               size_t nrows, const imp_infer_t *inf, const json_t *proposed)
{
    json_t *columns = json_array();
    json_t *prop_cols = json_object_get(proposed, "columns");
    for (size_t i = 0; i < ncols; i++) {
        const char *sample = NULL;
        size_t si = pc[i].source_index;
        for (size_t k = 0; k < nrows && !sample; k++)
            if (si < rows[k].ncells && rows[k].cells[si].len > 0)
                sample = rows[k].cells[si].data;
        json_t *prop = json_array_get(prop_cols, si);
        json_array_append_new(
            columns,
            json_pack("{s:s, s:s, s:s, s:s?, s:s, s:O?}", "source_name", pc[i].source_name,
                      "target_name", pc[i].target_name, "type", imp_type_name(pc[i].type), "sample",
                      sample, "inferred_type", imp_type_name(imp_infer_type(inf, si)),
                      "proposed_target_name", json_object_get(prop, "target_name")));
    }
    return columns;
}

/* rows: the first ones as the sync would load them; NULL when a row cannot
 * be planned */
static json_t *preview_rows(imp_plan_t *plan, const imp_plan_column_t *pc, size_t ncols,
                            const sample_row_t *rows, size_t nrows, json_t *warnings)
{
    json_t *out_rows = json_array();
    for (size_t k = 0; k < nrows && json_array_size(out_rows) < IMPORT_PREVIEW_ROWS; k++) {
        imp_row_t row = {.cells = rows[k].cells,
                         .ncells = rows[k].ncells,
                         .line = rows[k].line,
                         .ragged = rows[k].ragged};
        imp_result_t res;
        if (!imp_plan_apply(plan, &row, &res)) {
            json_decref(out_rows);
            return NULL;
        }
        if (res.outcome == IMP_ROW_OK) {
            json_t *o = json_object();
            for (size_t i = 0; i < res.nvalues && i < ncols; i++)
                json_object_set_new(o, pc[i].target_name, value_json(&res.values[i], pc[i].type));
            json_array_append_new(out_rows, o);
        } else {
            warn(warnings, "%s%s",
                 res.outcome == IMP_ROW_FAIL ? "the sync would fail: " : "skipped: ",
                 res.message ? res.message : "");
        }
    }
    return out_rows;
}

/* Opens the source's reader; a spreadsheet cannot be read from its head (the
 * zip directory is at the end), so on a format error of a head-only fetch the
 * whole file is fetched. NULL with *ret set on failure. */
static imp_reader_t *open_preview_reader(const app_t *app, db_conn_t *c, const import_source_t *src,
                                         import_input_t *in, import_preview_status_t *ret,
                                         char *message, size_t msglen)
{
    imp_error_t perr = {0};
    imp_reader_t *r = open_reader(src, in->path, &perr, message, msglen);
    if (!r && in->temp && in->size >= IMPORT_HEAD_BYTES && perr.code == IMP_ERR_FORMAT) {
        import__input_close(in);
        message[0] = '\0';
        if (!import__input_open(app, c, src, false, NULL, NULL, in, message, msglen)) {
            *ret = in->retryable ? IMPORT_PREVIEW_UNAVAILABLE : IMPORT_PREVIEW_BAD_SOURCE;
            return NULL;
        }
        r = open_reader(src, in->path, &perr, message, msglen);
    }
    if (!r)
        *ret = IMPORT_PREVIEW_BAD_SOURCE;
    return r;
}

static imp_reader_t *open_db_reader(import_db_t *db, import_preview_status_t *ret, char *message,
                                    size_t msglen)
{
    imp_error_t perr = {0};
    imp_reader_t *r = import__db_reader(db, &perr);
    if (!r) {
        snprintf(message, msglen, "%s",
                 db->failed        ? db->err
                 : perr.message[0] ? perr.message
                                   : "the source cannot be read");
        *ret = IMPORT_PREVIEW_BAD_SOURCE;
    }
    return r;
}

/* Assembles the preview answer; takes columns, out_rows and warnings. */
static json_t *preview_answer(imp_reader_t *r, json_t *columns, json_t *out_rows, json_t *warnings,
                              json_t *proposed, bool configured)
{
    imp_reader_stats_t st;
    imp_reader_stats(r, &st);
    json_t *out = json_pack("{s:o, s:o, s:o, s:O, s:s, s:b}", "columns", columns, "rows", out_rows,
                            "warnings", warnings, "proposed_column_config", proposed, "format",
                            imp_format_name(st.format), "column_config_used", configured);
    if (out && st.format == IMP_FORMAT_CSV) {
        char d[2] = {st.delimiter, '\0'};
        json_object_set_new(out, "encoding", json_string(imp_encoding_name(st.encoding)));
        json_object_set_new(out, "delimiter", json_string(d));
    }
    return out;
}

/* An analytics source's preview: the report is read as a sync reads it, and
 * the first IMPORT_PREVIEW_ROWS metric values are shown. */
static import_preview_status_t metrics_preview(const app_t *app, db_conn_t *c,
                                               const import_source_t *src, json_t **out,
                                               char *message, size_t msglen)
{
    json_t *rows = NULL;
    bool retryable = false;
    if (!conn_metrics_fetch(app, c, src, NULL, NULL, &rows, message, msglen, &retryable))
        return retryable ? IMPORT_PREVIEW_UNAVAILABLE : IMPORT_PREVIEW_BAD_SOURCE;
    size_t total = json_array_size(rows);
    while (json_array_size(rows) > IMPORT_PREVIEW_ROWS)
        json_array_remove(rows, json_array_size(rows) - 1);
    *out = json_pack("{s:[s,s,s,s], s:o, s:[], s:s, s:s, s:I}", "columns", "date", "metric",
                     "value", "dimensions", "rows", rows, "warnings", "destination",
                     "imported_data", "format", "metrics", "values", (json_int_t)total);
    return *out ? IMPORT_PREVIEW_OK : IMPORT_PREVIEW_INTERNAL;
}

import_preview_status_t importer_preview(const app_t *app, db_conn_t *c, const json_t *source,
                                         json_t **out, char *message, size_t msglen)
{
    *out = NULL;
    message[0] = '\0';
    import_source_t src;
    if (!import__source_from_json(source, &src)) {
        snprintf(message, msglen, "the data source is incomplete");
        return IMPORT_PREVIEW_BAD_SOURCE;
    }
    if (conn_is_metrics_type(src.type)) /* analytics APIs (connectors.h) */
        return metrics_preview(app, c, &src, out, message, msglen);
    import_input_t in = {.fd = -1};
    import_db_t *db = NULL;
    if (import__is_database(src.type)) { /* database connectors: dbconn.h */
        bool retryable = false;
        db = import__db_open(app, c, &src, NULL, true, message, msglen, &retryable);
        if (!db)
            return IMPORT_PREVIEW_BAD_SOURCE;
    } else if (!import__input_open(app, c, &src, true, NULL, NULL, &in, message, msglen)) {
        return in.retryable ? IMPORT_PREVIEW_UNAVAILABLE : IMPORT_PREVIEW_BAD_SOURCE;
    }

    import_preview_status_t ret = IMPORT_PREVIEW_INTERNAL;
    json_t *warnings = json_array();
    imp_infer_t *inf = NULL;
    imp_plan_t *plan = NULL;
    json_t *proposed = NULL;
    sample_row_t *rows = calloc(IMPORT_PREVIEW_SAMPLE, sizeof(*rows));
    size_t nrows = 0;
    imp_reader_t *r = db ? open_db_reader(db, &ret, message, msglen)
                         : open_preview_reader(app, c, &src, &in, &ret, message, msglen);
    if (!r)
        goto done;
    ret = IMPORT_PREVIEW_INTERNAL;
    if (!rows || !warnings)
        goto done;
    size_t nh = 0;
    const imp_cell_t *header = imp_reader_header(r, &nh);
    inf = imp_infer_new(nh);
    if (!inf)
        goto done;
    bool truncated = in.temp && in.size >= IMPORT_HEAD_BYTES;
    ret = read_sample(r, inf, nh, truncated, rows, &nrows, warnings, message, msglen);
    if (db && db->failed) { /* the source's error, not the reader's */
        snprintf(message, msglen, "%s", db->err);
        ret = IMPORT_PREVIEW_BAD_SOURCE;
    }
    if (ret != IMPORT_PREVIEW_OK)
        goto done;
    ret = IMPORT_PREVIEW_INTERNAL;
    if (nh == 0) {
        snprintf(message, msglen, "the file is empty: it has no header row");
        ret = IMPORT_PREVIEW_BAD_SOURCE;
        goto done;
    }

    proposed = imp_propose_config(header, nh, inf);
    if (!proposed)
        goto done;
    bool configured = false;
    plan = choose_plan(src.column_config, proposed, header, nh, warnings, &configured, message,
                       msglen);
    if (!plan) {
        ret = IMPORT_PREVIEW_BAD_SOURCE;
        goto done;
    }

    size_t ncols = 0;
    const imp_plan_column_t *pc = imp_plan_columns(plan, &ncols);
    json_t *columns = preview_columns(pc, ncols, rows, nrows, inf, proposed);
    json_t *out_rows = preview_rows(plan, pc, ncols, rows, nrows, warnings);
    if (!out_rows) {
        json_decref(columns);
        goto done;
    }
    *out = preview_answer(r, columns, out_rows, warnings, proposed, configured);
    warnings = NULL; /* now owned by *out */
    ret = *out ? IMPORT_PREVIEW_OK : IMPORT_PREVIEW_INTERNAL;
done:
    json_decref(proposed);
    json_decref(warnings);
    imp_plan_free(plan);
    imp_infer_free(inf);
    if (rows)
        free_sample(rows, nrows);
    imp_reader_close(r);
    import__db_close(db);
    import__input_close(&in);
    return ret;
}
