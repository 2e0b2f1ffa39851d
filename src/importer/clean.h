/*
 * Mapping and cleaning imported rows: a column_config (spec: "Column Config
 * JSONB Structure") is compiled once, against the file's header, into a plan;
 * the plan turns each parsed row into the destination's columns, already
 * converted to their types and formatted as PostgreSQL COPY text, or says why
 * the row is skipped or why the sync must fail. Also: type inference over a
 * sample and target-name proposals for the test-connection preview.
 * Pure C: no database, no HTTP; no JSON and no per-cell malloc on the row path.
 *
 * Order of work for one row (imp_plan_apply):
 *   1. each included column's cleaning_rules, in order;
 *   2. the row_filters (on the cleaned text of a mapped column, or on the raw
 *      cell of a source column that is not mapped); a filtered-out row is
 *      skipped with IMP_SKIP_FILTERED even if a rule tripped on it;
 *   3. a validator whose on_invalid is "fail" and that tripped fails the row
 *      (the sync must fail); one whose on_invalid is "skip" skips it;
 *   4. conversion to each column's type; empty text becomes NULL.
 *
 * Duplicate handling (duplicate_handling / duplicate_key_columns) is NOT done
 * here: the caller does it in SQL on the staging table. The compiled plan
 * only parses and checks those keys (imp_plan_duplicates).
 *
 * Destination columns: a dedicated import table (create_import_table) adds
 * `id` and `imported_at`; IMP_RESERVED_TARGETS lists those and the ones the
 * `import` branch may add (user_id, data_source_id, sync_log_id, created_at,
 * updated_at). A target_name equal to one of them is a config error, and
 * proposals avoid them. Tell the `import-parse` owner if the destination
 * adds another column.
 *
 * Thread safety: a compiled plan is used by one thread at a time (it owns the
 * scratch buffers the results point into); compile one plan per thread.
 */
#ifndef CD_IMPORTER_CLEAN_H
#define CD_IMPORTER_CLEAN_H

#include <jansson.h>

#include "core/buf.h"
#include "core/common.h"
#include "importer/parse.h"

/* Columns the import destinations add themselves, NULL-terminated. */
extern const char *const IMP_RESERVED_TARGETS[];

/* PostgreSQL's identifiers are at most 63 bytes. */
#define IMP_MAX_TARGET_NAME 63

typedef enum imp_type {
    IMP_TYPE_TEXT = 0,
    IMP_TYPE_INTEGER,   /* PostgreSQL INTEGER: -2147483648 … 2147483647 */
    IMP_TYPE_NUMBER,    /* NUMERIC */
    IMP_TYPE_BOOLEAN,   /* BOOLEAN */
    IMP_TYPE_DATE,      /* DATE */
    IMP_TYPE_TIMESTAMP, /* TIMESTAMPTZ: a value without a zone is in the COPY
                           session's TimeZone, so set it to the schedule's /
                           app_settings' time zone before COPY */
} imp_type_t;

/* "text", "integer", "number", "boolean", "date", "timestamp" (the spec's
 * column_config names) and back. imp_type_from_name returns false for others. */
const char *imp_type_name(imp_type_t t);
CD_MUSTCHECK bool imp_type_from_name(const char *name, imp_type_t *out);
/* The PostgreSQL type create_import_table uses: "TEXT", "INTEGER", "NUMERIC",
 * "BOOLEAN", "DATE", "TIMESTAMPTZ". */
const char *imp_type_sql(imp_type_t t);

/* ---------------------------------------------------------------- preview */

/* Type inference over a sample: feed rows, then ask each column's type.
 * A column's type is the narrowest of integer < number, boolean, date <
 * timestamp that every non-empty sampled value converts to, else text; a
 * column with no non-empty value is text. */
typedef struct imp_infer imp_infer_t;
/* ncols: the header's width. Returns NULL when out of memory. */
imp_infer_t *imp_infer_new(size_t ncols);
void imp_infer_add_row(imp_infer_t *inf, const imp_row_t *row);
imp_type_t imp_infer_type(const imp_infer_t *inf, size_t col);
void imp_infer_free(imp_infer_t *inf);
/* The narrowest type one value converts to (text for empty values). */
imp_type_t imp_infer_value(const char *s, size_t len);

/* Proposes a target_name for each header cell: snake_case ASCII ("First
 * Name" → first_name, "eMailAddress" → e_mail_address, "Prénom" → prenom),
 * at most IMP_MAX_TARGET_NAME bytes, starting with a letter or '_' ("2024
 * sales" → c_2024_sales), "column_N" when nothing is left, "<name>_col" for a
 * PostgreSQL reserved word or an IMP_RESERVED_TARGETS name (and for any
 * name in extra_reserved, NULL-terminated, may be NULL), and unique
 * ("email", "email_2", …). out[i] are malloc'd; the caller frees each.
 * Returns false when out of memory (then out holds nothing to free). */
CD_MUSTCHECK bool imp_propose_names(const imp_cell_t *header, size_t n,
                                    const char *const *extra_reserved, char **out);

/* True if s (NUL-terminated, any case) is a PostgreSQL reserved key word. */
bool imp_is_reserved_word(const char *s);

/* Builds the spec's column_config object for a file never configured:
 * {"columns":[{"source_name","target_name","type","included":true,
 * "cleaning_rules":[]}, …], "row_filters":[]} from the header, the proposed
 * names and the inferred types (inf may be NULL: all text). The caller owns
 * the result (json_decref). NULL when out of memory. */
json_t *imp_propose_config(const imp_cell_t *header, size_t n, const imp_infer_t *inf);

/* ------------------------------------------------------------------- plan */

typedef struct imp_plan imp_plan_t;

/* One destination column of a compiled plan, in output order. */
typedef struct imp_plan_column {
    const char *source_name; /* the header cell it reads */
    size_t source_index;     /* 0-based position in the header */
    const char *target_name; /* destination column (checked: 1–63 bytes, no
                                control characters, not reserved, unique) */
    imp_type_t type;
} imp_plan_column_t;

/* Compiles column_config against the file's header. Accepts the spec's
 * object ({"columns":[…], "row_filters":[…], "duplicate_handling":…,
 * "duplicate_key_columns":[…]}) or a bare array of columns. Columns with
 * "included": false are read (filters may name them) but not output. A
 * source_name that occurs k times in the header maps the k-th column entry
 * naming it to its k-th occurrence. A column entry without target_name gets
 * the proposed one; without type, text.
 * Returns NULL and fills err (IMP_ERR_CONFIG, message naming the column and
 * rule, e.g. "column 'Email' named in the mapping is not in the file") on a
 * bad config; the caller frees the plan with imp_plan_free. */
imp_plan_t *imp_plan_compile(const json_t *column_config, const imp_cell_t *header, size_t n,
                             imp_error_t *err);
void imp_plan_free(imp_plan_t *p);

/* The output columns, in COPY order. Valid until imp_plan_free. */
const imp_plan_column_t *imp_plan_columns(const imp_plan_t *p, size_t *n);

typedef enum imp_dup_mode {
    IMP_DUP_NONE = 0, /* no duplicate handling (absent or "none") */
    IMP_DUP_KEEP_FIRST,
    IMP_DUP_KEEP_LAST,
    IMP_DUP_SKIP_ALL,
} imp_dup_mode_t;

/* The duplicate handling the config asked for and its key columns, as
 * indexes into imp_plan_columns (duplicate_key_columns may name a target or
 * a source name of an included column; compile fails otherwise). *keys is
 * valid until imp_plan_free. A key column whose type is text and that has a
 * validate_email rule, or whose target_name contains "email", is to be
 * compared case-insensitively: *key_ci[i] says so. */
imp_dup_mode_t imp_plan_duplicates(const imp_plan_t *p, const size_t **keys, const bool **key_ci,
                                   size_t *nkeys);

typedef enum imp_outcome {
    IMP_ROW_OK = 0, /* values hold the output row */
    IMP_ROW_SKIP,   /* the row is not imported: reason, message */
    IMP_ROW_FAIL,   /* a rule with on_invalid "fail" tripped: fail the sync with message */
} imp_outcome_t;

/* Why a row was skipped: one counter each in sync_logs.metadata. */
typedef enum imp_skip_reason {
    IMP_SKIP_NONE = 0,
    IMP_SKIP_FILTERED,       /* "filtered": a row filter excluded it */
    IMP_SKIP_INVALID_EMAIL,  /* "invalid_email" */
    IMP_SKIP_INVALID_PHONE,  /* "invalid_phone" */
    IMP_SKIP_INVALID_DATE,   /* "invalid_date" (parse_date) */
    IMP_SKIP_INVALID_NUMBER, /* "invalid_number" (parse_number) */
    IMP_SKIP_TOO_LONG,       /* "too_long" (max_length with on_invalid skip) */
    IMP_SKIP_INVALID_VALUE,  /* "invalid_value": not convertible to the column's type */
    IMP_SKIP_REASON_COUNT
} imp_skip_reason_t;

/* "filtered", "invalid_email", … as above ("" for IMP_SKIP_NONE). */
const char *imp_skip_reason_name(imp_skip_reason_t r);

/* One output value: the text PostgreSQL reads for the column's type
 * (integer "-12", number "1234.5", boolean "t"/"f", date "2024-01-31",
 * timestamp "2024-01-31 09:00:00[+01:00]", text as is), or NULL. */
typedef struct imp_value {
    const char *data;
    size_t len;
    bool is_null;
} imp_value_t;

typedef struct imp_result {
    imp_outcome_t outcome;
    imp_skip_reason_t reason;  /* IMP_ROW_SKIP (and for IMP_ROW_FAIL, the rule's kind) */
    const imp_value_t *values; /* IMP_ROW_OK: one per imp_plan_columns entry */
    size_t nvalues;
    const char *message; /* SKIP/FAIL: "line 12: column 'Email': 'bob@' is not a valid
                            e-mail address" (values shortened); NULL for OK */
    long long line;      /* the row's source line */
} imp_result_t;

/* Applies the plan to one row. Everything *res points to belongs to the plan
 * and stays valid until the next imp_plan_apply on it or imp_plan_free; the
 * row is only read. Missing cells of a ragged row read as empty; extra cells
 * are ignored. Returns false only when out of memory. */
CD_MUSTCHECK bool imp_plan_apply(imp_plan_t *p, const imp_row_t *row, imp_result_t *res);

/* Appends an IMP_ROW_OK result as one line of COPY text format (values
 * separated by TAB, NULL as \N, backslash, TAB, LF and CR escaped, ending with
 * LF) to out. Returns false, out unchanged, if out's maximum would be passed. */
CD_MUSTCHECK bool imp_copy_append_row(cd_buf_t *out, const imp_result_t *res);

/* Appends one value escaped for COPY text format (no separator). */
CD_MUSTCHECK bool imp_copy_append_value(cd_buf_t *out, const imp_value_t *v);

#endif
