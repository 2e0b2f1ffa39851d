/*
 * HTTP API connectors (issue 11): rest_api sources, and the analytics sources
 * google_analytics (GA4 Data API), meta_pixel (Marketing API insights),
 * bigquery (jobs.query) and snowflake (SQL API v2).
 *
 *   - records.c: pure parsing of API answers (records_path, RFC 8288 Link,
 *     Retry-After, NDJSON, a record's values as text) — unit-tested, fuzzed;
 *   - sa_jwt.c: RS256 JSON Web Tokens signed with OpenSSL (Google service
 *     accounts, Snowflake key pairs);
 *   - http_api.c: the libcurl client every connector uses (the SSRF rules of
 *     fetch.c, bounded answers, 429 + Retry-After), and the rest_api
 *     connector, which spools the records as a CSV file that the file
 *     pipeline (parse → clean → staging → swap/upsert) then reads;
 *   - metrics.c: the four analytics connectors, which produce metric rows
 *     {date, metric, value, dimensions} for public.import_metrics_upsert()
 *     (migration 034: imported_data, upserted, and the analytics_data roll-up).
 * Not a public interface.
 */
#ifndef CD_IMPORTER_CONNECTORS_H
#define CD_IMPORTER_CONNECTORS_H

#include <jansson.h>
#include <stddef.h>
#include <time.h>

#include "core/buf.h"
#include "core/common.h"
#include "importer/importer_internal.h"

/* The sentence every expired, revoked or refused credential ends with. */
#define CONN_RECONNECT "reconnect the source"
/* Most pages one sync reads from an API (a loop guard, not a limit users hit). */
#define CONN_MAX_PAGES 100000
/* 429 answers: at most this many waits, each at most CONN_MAX_RETRY_WAIT_S. */
#define CONN_MAX_429_RETRIES  5
#define CONN_MAX_RETRY_WAIT_S 60
/* Longest URL a connector builds or follows. */
#define CONN_URL_MAX 4096

/* ------------------------------------------------------------ records.c */

/* The value at path in root: keys separated by dots ("data.items"); NULL or
 * "" is root itself. Borrowed; NULL when a key is missing or a step is not an
 * object. */
const json_t *conn_json_path(const json_t *root, const char *path);

/* Copies into out (outlen bytes) the target URI of the first link of an RFC
 * 8288 Link header value whose rel parameter contains the token "next"
 * (case-insensitive; quoted or not; several links separated by commas).
 * Returns false when there is none or it does not fit. */
CD_MUSTCHECK bool conn_link_next(const char *header, char *out, size_t outlen);

/* Seconds to wait from a Retry-After value: delta-seconds or an HTTP-date
 * (RFC 9110 IMF-fixdate) relative to now; -1 when neither. Never negative
 * otherwise (a date in the past is 0). */
long conn_retry_after(const char *value, time_t now);

/* Calls fn for each non-blank line of NDJSON data[0..len) parsed as JSON
 * (the value is borrowed for the call). Returns 0, fn's non-zero result, or
 * -1 with err filled for a line that is not JSON (naming the line). */
int conn_ndjson_each(const char *data, size_t len, int (*fn)(json_t *rec, void *arg), void *arg,
                     char *err, size_t errlen);

/* Flattens a record into out (a new object of strings): scalars as text
 * (null → absent), nested objects as "a.b" keys (up to 4 levels), arrays
 * and deeper objects as compact JSON. A record that is not an object becomes
 * {"value": text}. NULL when out of memory. */
json_t *conn_flatten_record(const json_t *rec);

/* The text of a JSON scalar (string as is, integer, real, true/false);
 * malloc'd, or NULL for null/arrays/objects. */
char *conn_scalar_text(const json_t *v);

/* ------------------------------------------------------------ sa_jwt.c */

/* Signs header.claims with RS256 using the PEM private key pem (PKCS#8 or
 * PKCS#1). Returns the compact token (malloc'd), or NULL with err filled. */
char *conn_jwt_rs256(const json_t *header, const json_t *claims, const char *pem, char *err,
                     size_t errlen);

/* The Snowflake public key fingerprint of pem's key: "SHA256:" + base64 of
 * the SHA-256 of the DER SubjectPublicKeyInfo. false with err filled. */
CD_MUSTCHECK bool conn_key_fingerprint(const char *pem, char *out, size_t outlen, char *err,
                                       size_t errlen);

/* ------------------------------------------------------------ http_api.c */

typedef struct conn_resp {
    long status;
    cd_buf_t body; /* at most IMPORT_MAX_BYTES */
    cd_buf_t link; /* every Link header value, comma-joined */
    char content_type[128];
    char retry_after[64];
} conn_resp_t;

typedef struct conn_client {
    const app_t *app;
    import_cancel_fn cancel;
    void *cancel_arg;
    char *err;
    size_t errlen;
    bool retryable; /* the last failure was temporary (network, 5xx, 429) */
    long long requests;
} conn_client_t;

/* One request: method (GET or POST), url, extra headers (NULL-terminated
 * array of "Name: value"), body (NULL for none) with its content type.
 * Answers 429 are retried after Retry-After (bounded). Returns true with
 * resp filled for any final HTTP status; false (c->err filled) when nothing
 * came back. resp must be freed with conn_resp_free. */
CD_MUSTCHECK bool conn_http(conn_client_t *c, const char *method, const char *url,
                            const char *const *headers, const char *body, const char *body_type,
                            conn_resp_t *resp);
void conn_resp_free(conn_resp_t *resp);

/* Whether two absolute URLs have the same scheme, host and port. */
bool conn_same_origin(const char *a, const char *b);

/* Fills c->err (and c->retryable). */
void conn_fail(conn_client_t *c, bool retryable, const char *fmt, ...) CD_PRINTF(3, 4);

/* Fills c->err for an answer that is not 2xx: 401/403 (and invalid_grant)
 * say CONN_RECONNECT; 5xx are retryable. what names the request. Returns
 * false always (for `return conn_http_error(...)`). */
bool conn_http_error(conn_client_t *c, const conn_resp_t *resp, const char *what);

/* The data source's decrypted credentials (a new reference; an empty object
 * when none are stored), read as service_role on c. NULL with err filled. */
json_t *conn_credentials(db_conn_t *db, const char *source_id, char *err, size_t errlen);

/* Compares incremental values: as numbers when both are numbers, else as
 * text (ISO 8601 timestamps in one format compare as text). */
int conn_value_cmp(const char *a, const char *b);

/* The data source's last_sync_value (*out malloc'd, NULL when unset). */
CD_MUSTCHECK bool conn_last_sync_value(db_conn_t *db, const char *source_id, char **out, char *err,
                                       size_t errlen);

/* rest_api: reads every page into a CSV file (in->path, temporary) the file
 * pipeline reads; with head_only, the first page only. in->sync_value gets
 * the new incremental value when config.incremental is set. */
CD_MUSTCHECK bool conn_rest_open(const app_t *app, db_conn_t *db, const import_source_t *src,
                                 bool head_only, import_cancel_fn cancel, void *cancel_arg,
                                 import_input_t *in, char *err, size_t errlen);

/* ------------------------------------------------------------ metrics.c */

/* Normalises a day into out (YYYY-MM-DD): YYYY-MM-DD (or the start of a
 * timestamp), YYYYMMDD (GA4), or with epoch a number of days since
 * 1970-01-01 (Snowflake DATE) or of seconds with a fraction (TIMESTAMP).
 * false when it is none of these or not a real date. */
CD_MUSTCHECK bool conn_norm_date(const char *in, bool epoch, char out[11]);

/* Whether type is one of the analytics connectors (metrics into imported_data). */
bool conn_is_metrics_type(const char *type);

/* Reads the source's metrics: *rows gets a new array of
 * {"date": "YYYY-MM-DD", "metric": name, "value": number|null,
 *  "dimensions": {name: text}}. false with err filled (*retryable set). */
CD_MUSTCHECK bool conn_metrics_fetch(const app_t *app, db_conn_t *db, const import_source_t *src,
                                     import_cancel_fn cancel, void *cancel_arg, json_t **rows,
                                     char *err, size_t errlen, bool *retryable);

#endif
