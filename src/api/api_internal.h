/*
 * Internals shared by the /api handlers (src/api/) and their unit tests:
 * the per-request context (caller + database), error replies in PostgREST's
 * shape, input validation, pagination, the campaign status transition table,
 * and the CSV writer of report exports. Not a public interface: use api.h.
 */
#ifndef CD_API_INTERNAL_H
#define CD_API_INTERNAL_H

#include <jansson.h>
#include <libpq-fe.h>

#include "auth/auth.h"
#include "core/buf.h"
#include "core/common.h"
#include "db/db.h"
#include "http/http.h"

/* Input limits (characters are Unicode code points, as varchar(n) counts). */
#define API_MAX_NAME_CHARS        255 /* campaigns.name is varchar(255) */
#define API_MAX_REPORT_NAME_CHARS 200
#define API_MAX_METRIC_CHARS      100 /* analytics_data.metric_type is varchar(100) */
#define API_MAX_CONTENT_BYTES     (256 * 1024)
#define API_DEFAULT_PER_PAGE      50
#define API_MAX_PER_PAGE          1000
#define API_MAX_PAGE              1000000
/* Analytics: most periods in one series and most metrics in one answer. */
#define API_MAX_PERIODS 1000
#define API_MAX_METRICS 50
/* A report export is built in memory up to this size (then 500). */
#define API_EXPORT_MAX_BYTES (32 * 1024 * 1024)
#define API_FILENAME_MAX     96

/* ------------------------------------------------------------ requests */

/* One request's caller and its database identity. */
typedef struct api_ctx {
    auth_caller_t caller;
    db_caller_t who;
    bool anon; /* no user token: a refused privilege is 401, not 403 */
} api_ctx_t;

/* Identifies the caller (an apikey is required, as for /rest/v1) and fills
 * ctx for a read-only or read-write transaction. On failure it has answered
 * (401) and returns false; ctx needs no cleanup then. On success the caller
 * must call api__end(ctx). */
CD_MUSTCHECK bool api__begin(http_request_t *req, bool read_only, api_ctx_t *ctx);
/* Frees what api__begin allocated. */
void api__end(api_ctx_t *ctx);
/* Runs the statements in one transaction as the caller. On success results
 * hold one PGresult per statement (the caller PQclear()s them). On failure it
 * has answered (503 when the database is down, else the SQLSTATE's status
 * with PostgreSQL's message) and returns false with every result NULL. */
CD_MUSTCHECK bool api__run(http_request_t *req, const api_ctx_t *ctx, const db_stmt_t *stmts,
                           size_t n, PGresult **results);
/* api__run on connection c (NULL: the thread's own). */
CD_MUSTCHECK bool api__run_on(http_request_t *req, const api_ctx_t *ctx, db_conn_t *c,
                              const db_stmt_t *stmts, size_t n, PGresult **results);
/* The route's :id (params[0]), which must be a UUID; false after answering
 * 400 "the <what> id in the path must be a UUID". */
CD_MUSTCHECK bool api__path_id(http_request_t *req, const char *what);
/* A whole "GET one by id" handler: identifies the caller, checks the id,
 * runs sql ($1 = the id) read-only as the caller and answers its first cell
 * with 200, or 404 "<what> not found" when there is no row. */
void api__reply_by_id(http_request_t *req, const char *sql, const char *what);

/* Answers status with {code, message, details, hint}; details and hint may
 * be NULL (JSON null). */
void api__reply_error(http_request_t *req, int status, const char *code, const char *message,
                      const char *details, const char *hint);
/* 400 naming the offending input: code "invalid_parameter" for the query
 * string, "invalid_body" for the JSON body; details is "field: <field>". */
void api__reply_invalid(http_request_t *req, const char *code, const char *field, const char *fmt,
                        ...) CD_PRINTF(4, 5);
/* 404 "<what> not found" (code "not_found"). */
void api__reply_not_found(http_request_t *req, const char *what);
/* Answers 201 with the JSON row in res (row 0, column col) and a Location
 * header of base/<the row's "id">. */
void api__reply_created(http_request_t *req, const PGresult *res, int col, const char *base);
/* Answers with the JSON text of one result cell (copied), with status. */
void api__reply_cell(http_request_t *req, int status, const PGresult *res, int row, int col);

/* Parses the body as a JSON object, or answers 400 and returns NULL. */
json_t *api__read_body(http_request_t *req);
/* Checks that every key of body is in allowed (NULL-terminated); otherwise
 * answers 400 naming the first unknown key and returns false. */
CD_MUSTCHECK bool api__check_keys(http_request_t *req, json_t *body, const char *const *allowed);

/* How api__body_text treats a key. */
enum {
    API_TEXT_REQUIRED = 1,  /* absent or null is an error */
    API_TEXT_NULLABLE = 2,  /* null is accepted (*out = NULL, *present = true) */
    API_TEXT_MULTILINE = 4, /* tab, CR and LF are allowed (other controls never) */
    API_TEXT_NOT_BLANK = 8, /* must contain a non-space character */
};
/* Reads body[key] as text of at most max_chars characters (and
 * API_MAX_CONTENT_BYTES bytes): valid UTF-8, no NUL, no control characters
 * (see flags). *present says whether the key was given; *out points into
 * body (NULL when absent or null). On a bad value answers 400 naming the key
 * and returns false. */
CD_MUSTCHECK bool api__body_text(http_request_t *req, json_t *body, const char *key,
                                 size_t max_chars, int flags, const char **out, bool *present);

/* ---------------------------------------------------------- validation */

/* Parses a calendar date YYYY-MM-DD (year 0001..9999, real day of month). */
bool api__parse_date(const char *s, int *year, int *month, int *day);
/* Whether s is an ISO 8601 timestamp with an explicit offset:
 * YYYY-MM-DD[T ]HH:MM[:SS[.fraction(1-9 digits)]](Z|±HH[:MM]|±HHMM). */
bool api__valid_timestamp(const char *s);
/* Parses a decimal integer in [min, max]; no sign for positives, no spaces. */
bool api__parse_long(const char *s, long min, long max, long *out);
/* Whether s is an acceptable metric name: 1..100 characters from
 * [A-Za-z0-9_.:-], starting with a letter or digit. */
bool api__valid_metric_name(const char *s);
/* Days since 1970-01-01 of a valid calendar date (proleptic Gregorian). */
long api__days_from_civil(int year, int month, int day);

/* ---------------------------------------------------------- pagination */

typedef struct api_page {
    long page;     /* 1-based */
    long per_page; /* 1..API_MAX_PER_PAGE */
} api_page_t;

/* Reads ?page= and ?per_page= (defaults 1 and API_DEFAULT_PER_PAGE), or
 * answers 400 and returns false. */
CD_MUSTCHECK bool api__parse_page(http_request_t *req, api_page_t *p);
/* Appends the RFC 8288 Link header value for a page of a list at path:
 * rel="first", "prev" (when page > 1), "next" (when a later page exists) and
 * "last"; extra is appended to each URL's query (e.g. "&status=draft", may
 * be ""). The last page is at least 1. Returns false if b is full. */
CD_MUSTCHECK bool api__link_header(cd_buf_t *b, const char *path, const char *extra,
                                   const api_page_t *p, long long total);
/* Adds X-Total-Count and Link to the response. */
void api__add_paging_headers(http_request_t *req, const char *path, const char *extra,
                             const api_page_t *p, long long total);
/* The LIMIT and OFFSET of a page as statement parameters. */
void api__page_params(const api_page_t *p, char limit[24], char offset[32]);
/* Answers 200 with a page of a list: res has one row of (total count, JSON array); the
 * paging headers link to path with extra (see api__link_header). */
void api__reply_page(http_request_t *req, const PGresult *res, const char *path, const char *extra,
                     const api_page_t *p);

/* Appends "&name=value" with value percent-encoded (RFC 3986 unreserved
 * characters kept). Returns false if b is full. */
CD_MUSTCHECK bool api__query_append(cd_buf_t *b, const char *name, const char *value);

/* ----------------------------------------------------------- campaigns */

/* Whether s is one of the statuses the schema allows. */
bool api__campaign_status_known(const char *s);
/* Whether s is email, sms or social. */
bool api__campaign_type_valid(const char *s);
/* Whether the API lets a campaign go from status `from` to `to` (from != to;
 * see the table in campaigns.c and docs/api.md). */
bool api__campaign_transition_allowed(const char *from, const char *to);
/* Writes the statuses reachable from `from` as "scheduled, cancelled", or
 * "none". Truncates safely. */
void api__campaign_allowed_targets(const char *from, char *out, size_t outlen);
/* Writes the PostgreSQL array literal of the statuses from which `to` can
 * be reached, e.g. "{draft,paused}" or "{}". Truncates safely. */
void api__campaign_sources_literal(const char *to, char *out, size_t outlen);

/* ----------------------------------------------------------------- CSV */

/* Whether a cell is a plain decimal number ([+-]digits[.digits]), which a
 * spreadsheet reads as a number, never as a formula. */
bool api__csv_is_number(const char *s, size_t len);
/* Appends one CSV field (RFC 4180): the value is quoted when it contains a
 * comma, a semicolon, a double quote, CR or LF (quotes doubled). A spreadsheet
 * may split a field at ',', ';', tab or a line break (locales with a decimal
 * comma use ';'), so every such stretch that starts with '=', '+', '-', '@',
 * tab or CR and is not a plain number gets a leading apostrophe, at the
 * field's start and after each separator, so that it shows as text instead of
 * running as a formula. NULL is written as an empty field. Returns false if b
 * is full. */
CD_MUSTCHECK bool api__csv_append_field(cd_buf_t *b, const char *s, size_t len);
/* Writes a download file name "<prefix>-<slug>.<ext>" where slug is name
 * reduced to [a-z0-9-] (runs of anything else become one '-', at most 48
 * characters, "report" when empty). The result is safe inside a quoted
 * Content-Disposition filename. */
void api__safe_filename(const char *prefix, const char *name, const char *ext, char *out,
                        size_t outlen);

/* The CSV of a report beyond campaign_performance: header_json is a JSON
 * array of column names, rows_json a JSON array of rows, each an array of
 * as many strings or nulls (api__flat_csv_sql's answer). Every field goes
 * through api__csv_append_field. False if malformed or out is full. */
CD_MUSTCHECK bool api__csv_write_flat(const char *header_json, const char *rows_json,
                                      cd_buf_t *out);
/* Adds Content-Disposition: attachment with the file name
 * "report-<day>-<slug of name>.<ext>" and Cache-Control: no-store. */
void api__report_disposition(http_request_t *req, const char *name, const char *day,
                             const char *ext);
/* Stores an export as the caller in the exports bucket at
 * <user id>/reports/<report id>.<ext> and answers 201 with its signed URL. */
void api__report_save_export(http_request_t *req, const api_ctx_t *ctx, const char *ext,
                             const char *content_type, const char *data, size_t len);

/* The statement ($1 = report id) whose one row is (header_json, rows_json). */
const char *api__flat_csv_sql(void);

/* The text of a scheduled report's mail (report_schedules.c): the name, the
 * type's title, the period, the attachment's format ("CSV", "PDF") and the
 * download link. malloc'd; NULL for an
 * unknown type or when out of memory. */
char *api__report_mail_text(const char *name, const char *type, const char *from, const char *to,
                            const char *format, const char *url);

/* ------------------------------------------------------------ handlers */

void api__campaigns_list(http_request_t *req);
void api__campaigns_create(http_request_t *req);
void api__campaigns_get(http_request_t *req);
void api__campaigns_update(http_request_t *req);
void api__campaigns_delete(http_request_t *req);
void api__analytics_get(http_request_t *req);
void api__analytics_create(http_request_t *req);
void api__reports_list(http_request_t *req);
void api__reports_create(http_request_t *req);
void api__reports_get(http_request_t *req);
void api__reports_export(http_request_t *req);
void api__data_sources_test(http_request_t *req);
void api__data_sources_sync(http_request_t *req);
void api__data_sources_credentials(http_request_t *req);
void api__sync_logs_cancel(http_request_t *req);

#endif
