/*
 * The import.sync job: one run of a file data source into its destination.
 *
 *   1. public.import_begin_run() decides which sync_logs row the run reports
 *      to (closing the row of an earlier attempt that died as "interrupted");
 *   2. the bytes are opened (fetch.c), parsed (parse.h) and mapped and cleaned
 *      (clean.h) one row at a time;
 *   3. on a second connection, ONE transaction creates the import table if
 *      needed, a staging table without index or trigger, streams the rows
 *      into it with COPY FROM STDIN (ids made here, not by gen_random_uuid()),
 *      then public.import_finish_staging() deduplicates, indexes once and
 *      swaps (full sync) or merges (incremental), and the sync_logs row is
 *      closed as 'success' — in the same transaction, so the row says
 *      success exactly when the data is there;
 *   4. meanwhile the job's own connection reports progress about once a
 *      second (public.import_progress, which also answers whether a cancel
 *      was asked) and renews the job's lease.
 * A cancel, a failure or a kill -9 rolls the data transaction back: the
 * destination stays as it was before the run.
 */
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "core/log.h"
#include "importer/clean.h"
#include "importer/connectors.h"
#include "importer/copy_pipe.h"
#include "importer/dbconn.h"
#include "importer/importer_internal.h"
#include "importer/parse.h"
#include "jobs/queue.h"

#define SYNC_COPY_CHUNK         (256 * 1024) /* bytes handed to PQputCopyData at once */
#define SYNC_COPY_BUF_MAX       (64 * 1024 * 1024)
#define SYNC_PIPE_BUFFERS       4    /* COPY buffers between the parse and the writer thread */
#define SYNC_CHECK_ROWS         1024 /* rows between clock reads */
#define SYNC_PROGRESS_MS        500  /* progress (and cancel checks) at least this often */
#define SYNC_UUID_BATCH         256
#define SYNC_UUID_SEQ_MAX       (1u << 26) /* ids per millisecond of a version 7 id */
#define SYNC_MAX_SQL            (64 * 1024)
#define SYNC_METRICS_BATCH      5000  /* metric rows per import_metrics_upsert call */
#define SYNC_FINISH_REPORT_ROWS 50000 /* loads that report the phase "finishing" at once */

static const db_caller_t SERVICE = {
    .role = "service_role",
    .claims_json = "{\"role\":\"service_role\"}",
    .method = "JOB",
    .path = "import.sync",
    .headers_json = "{}",
};

typedef struct run {
    const app_t *app;
    job_ctx_t *ctx;
    db_conn_t *c;
    char log_id[CD_UUID_LEN + 1];
    import_source_t src;
    json_t *source_row;
    PGconn *copy;
    imp_reader_t *reader;
    imp_plan_t *plan;
    import_input_t in;
    import_db_t *db; /* database sources (dbconn.h), else NULL */
    bool db_partial; /* read only the rows past last_sync_value */
    const char *phase;
    /* counters */
    long long rows_read;
    long long imported;
    long long skipped;
    long long copied; /* rows the COPY loaded into the staging table */
    long long skip_counts[IMP_SKIP_REASON_COUNT];
    json_t *errors;   /* the first IMPORT_MAX_ROW_ERRORS row errors */
    json_t *warnings; /* strings */
    long long last_progress_ms;
    bool cancelled;
    bool lost;    /* the lease was lost or the process stops */
    bool refused; /* import_succeed_run refused the success (57014): a cancel? */
    /* uuids */
    unsigned char rnd[6 * SYNC_UUID_BATCH];
    size_t rnd_used;
    uint64_t id_ms; /* the ids' time: the load's start (next_uuid) */
    uint32_t id_seq;
    /* outcome */
    char error[512];
    bool retryable;
} run_t;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void uuid_hex(const unsigned char v[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[v[i] >> 4];
        out[o++] = hex[v[i] & 15];
    }
    out[o] = '\0';
}

void import__uuid_format(const unsigned char b[16], char out[37])
{
    unsigned char v[16];
    memcpy(v, b, 16);
    v[6] = (unsigned char)((v[6] & 0x0f) | 0x40); /* version 4 */
    v[8] = (unsigned char)((v[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    uuid_hex(v, out);
}

void import__uuid7_format(uint64_t ms, uint32_t seq, const unsigned char rnd[6], char out[37])
{
    unsigned char v[16];
    for (int i = 0; i < 6; i++)
        v[i] = (unsigned char)(ms >> (40 - 8 * i));
    v[6] = (unsigned char)(0x70 | ((seq >> 22) & 0x0f)); /* version 7, seq bits 25-22 */
    v[7] = (unsigned char)(seq >> 14);
    v[8] = (unsigned char)(0x80 | ((seq >> 8) & 0x3f)); /* variant, seq bits 13-8 */
    v[9] = (unsigned char)seq;
    memcpy(v + 10, rnd, 6);
    uuid_hex(v, out);
}

void import__slug(const char *name, char *out, size_t outlen)
{
    size_t o = 0, max = outlen - 1 < 40 ? outlen - 1 : 40;
    bool sep = false;
    for (const char *p = name ? name : ""; *p && o < max; p++) {
        char ch = *p;
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) {
            if (sep && o > 0 && o < max - 1)
                out[o++] = '_';
            sep = false;
            if (o == 0 && ch >= '0' && ch <= '9')
                out[o++] = 's';
            if (o < max)
                out[o++] = ch;
        } else {
            sep = true;
        }
    }
    out[o] = '\0';
    if (o == 0)
        snprintf(out, outlen, "source");
}

bool import__source_from_json(const json_t *row, import_source_t *src)
{
    memset(src, 0, sizeof(*src));
    src->id = json_string_value(json_object_get(row, "id"));
    src->user_id = json_string_value(json_object_get(row, "user_id"));
    src->type = json_string_value(json_object_get(row, "type"));
    src->name = json_string_value(json_object_get(row, "name"));
    src->config = json_object_get(row, "config");
    src->column_config = json_object_get(row, "column_config");
    src->schedule_config = json_object_get(row, "schedule_config");
    if (!json_is_object(src->config))
        src->config = NULL;
    if (!json_is_object(src->schedule_config))
        src->schedule_config = NULL;
    return src->id && src->type && cd_is_uuid(src->id) &&
           (!src->user_id || cd_is_uuid(src->user_id));
}

/* ------------------------------------------------------------ reporting */

static void run_fail(run_t *r, bool retryable, const char *fmt, ...) CD_PRINTF(3, 4);
static void run_fail(run_t *r, bool retryable, const char *fmt, ...)
{
    if (r->error[0])
        return; /* the first reason wins */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof(r->error), fmt, ap);
    va_end(ap);
    r->retryable = retryable;
}

/* The metadata the run reports: progress, counts per reason, errors. */
static json_t *run_metadata(run_t *r, bool final)
{
    imp_reader_stats_t st = {0};
    if (r->reader)
        imp_reader_stats(r->reader, &st);
    json_t *reasons = json_object();
    for (int i = 1; i < IMP_SKIP_REASON_COUNT; i++)
        if (r->skip_counts[i])
            json_object_set_new(reasons, imp_skip_reason_name((imp_skip_reason_t)i),
                                json_integer(r->skip_counts[i]));
    json_t *m = json_pack(
        "{s:s, s:{s:I, s:I, s:I, s:I, s:I}, s:o}", "phase", r->phase, "progress", "rows_read",
        (json_int_t)r->rows_read, "bytes_read", (json_int_t)st.bytes_read, "bytes_total",
        (json_int_t)(st.bytes_total ? st.bytes_total : r->in.size), "imported",
        (json_int_t)r->imported, "skipped", (json_int_t)r->skipped, "skipped_by_reason", reasons);
    if (m && final) {
        json_object_set(m, "errors", r->errors);
        json_object_set(m, "warnings", r->warnings);
        if (r->reader) {
            json_object_set_new(m, "format", json_string(imp_format_name(st.format)));
            if (st.format == IMP_FORMAT_CSV) {
                json_object_set_new(m, "encoding", json_string(imp_encoding_name(st.encoding)));
                char d[2] = {st.delimiter, '\0'};
                json_object_set_new(m, "delimiter", json_string(d));
            }
            json_object_set_new(m, "ragged_rows", json_integer(st.ragged_rows));
        }
    }
    return m;
}

/* Reports progress and reads the cancel flag; also renews the lease. Runs at
 * most about every SYNC_PROGRESS_MS unless force. Returns false when the run
 * must stop (r->cancelled or r->lost say why). */
static bool run_tick(run_t *r, bool force)
{
    long long now = now_ms();
    if (!force && now - r->last_progress_ms < SYNC_PROGRESS_MS)
        return !r->cancelled && !r->lost;
    r->last_progress_ms = now;
    if (!job_heartbeat(r->ctx)) {
        r->lost = true;
        return false;
    }
    json_t *m = run_metadata(r, false);
    char *txt = m ? json_dumps(m, JSON_COMPACT) : NULL;
    json_decref(m);
    if (!txt)
        return true;
    const char *params[2] = {r->log_id, txt};
    PGresult *res = NULL;
    db_error_t err;
    db_status_t st = db_run1(r->c, &SERVICE, "select public.import_progress($1, $2::jsonb)", 2,
                             params, &res, &err);
    free(txt);
    if (st == DB_OK && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0)
        r->cancelled = true;
    if (st == DB_SQL_ERROR)
        log_warn("import %s: progress report failed: %s", r->log_id, err.message);
    PQclear(res);
    return !r->cancelled;
}

static bool fetch_cancel(void *arg)
{
    return !run_tick(arg, false);
}

static void add_row_error(run_t *r, const imp_result_t *res)
{
    if (json_array_size(r->errors) >= IMPORT_MAX_ROW_ERRORS)
        return;
    json_array_append_new(r->errors, json_pack("{s:I, s:s, s:s}", "line", (json_int_t)res->line,
                                               "reason", imp_skip_reason_name(res->reason),
                                               "message", res->message ? res->message : ""));
}

/* ------------------------------------------------------------ data connection */

static bool copy_exec(run_t *r, const char *sql, int n, const char *const *params, PGresult **out)
{
    PGresult *res = PQexecParams(r->copy, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (out)
            *out = res;
        else
            PQclear(res);
        return true;
    }
    if (PQstatus(r->copy) != CONNECTION_OK) {
        run_fail(r, true, "the database connection was lost during the import");
    } else {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
        bool transient = state && (strncmp(state, "40", 2) == 0 || strncmp(state, "53", 2) == 0 ||
                                   strncmp(state, "08", 2) == 0 || strcmp(state, "55P03") == 0);
        run_fail(r, transient, "%s%s%s", msg ? msg : "the database refused the import",
                 hint ? " — " : "", hint ? hint : "");
        r->refused = r->refused || (state && strcmp(state, "57014") == 0);
        log_warn("import %s: SQL failed (%s): %s", r->log_id, state ? state : "?",
                 PQresultErrorMessage(res));
    }
    PQclear(res);
    return false;
}

static char *copy_scalar(run_t *r, const char *sql, int n, const char *const *params)
{
    PGresult *res = NULL;
    if (!copy_exec(r, sql, n, params, &res))
        return NULL;
    char *v =
        PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) ? strdup(PQgetvalue(res, 0, 0)) : strdup("");
    PQclear(res);
    if (!v)
        run_fail(r, false, "out of memory");
    return v;
}

/* The data connections kept from runs that committed (copy_close): the next
 * run, on whichever job thread, starts its transaction on one instead of
 * starting a backend — which, new, would also have to load the catalog
 * entries and compile the PL/pgSQL functions of the merge again (100-250 ms
 * of the destination's CPU in a loaded re-sync). Shared by the job threads,
 * not one per thread: a source's re-sync that lands on another thread than
 * its last sync still finds a warm one. The last one kept is taken first (the
 * warmest); at most KEPT_COPY_MAX; closed at shutdown (importer_close_kept).
 * Everything a run sets on one is transaction-local (set_config(..., true)). */
#define KEPT_COPY_MAX 8
static pthread_mutex_t kept_copy_mu = PTHREAD_MUTEX_INITIALIZER;
static PGconn *kept_copy[KEPT_COPY_MAX];
static size_t kept_copy_n;

static PGconn *kept_copy_take(const app_t *app)
{
    pthread_mutex_lock(&kept_copy_mu);
    PGconn *conn = kept_copy_n > 0 ? kept_copy[--kept_copy_n] : NULL;
    pthread_mutex_unlock(&kept_copy_mu);
    /* PQconsumeInput reads what came meanwhile: a connection the server
     * closed (a restart, idle_session_timeout) shows up as broken here */
    if (conn && PQconsumeInput(conn) == 1 && PQstatus(conn) == CONNECTION_OK &&
        PQtransactionStatus(conn) == PQTRANS_IDLE)
        return conn;
    PQfinish(conn);
    return PQconnectdb(app->worker_conninfo);
}

/* Keeps conn for the next run; false when KEPT_COPY_MAX are kept already. */
static bool kept_copy_put(PGconn *conn)
{
    pthread_mutex_lock(&kept_copy_mu);
    bool kept = kept_copy_n < KEPT_COPY_MAX;
    if (kept)
        kept_copy[kept_copy_n++] = conn;
    pthread_mutex_unlock(&kept_copy_mu);
    return kept;
}

/* The sync request's warm connection (importer.h); request_conn_busy while a
 * request runs on it. */
static pthread_mutex_t request_conn_mu = PTHREAD_MUTEX_INITIALIZER;
static db_conn_t *request_conn;
static bool request_conn_busy;

db_conn_t *importer_request_conn_take(void)
{
    pthread_mutex_lock(&request_conn_mu);
    db_conn_t *c = NULL;
    if (!request_conn_busy) {
        if (!request_conn)
            request_conn = db_conn_new();
        c = request_conn;
        request_conn_busy = c != NULL;
    }
    pthread_mutex_unlock(&request_conn_mu);
    if (c && !db_conn_ready(c)) {
        importer_request_conn_put(c);
        return NULL;
    }
    return c;
}

void importer_request_conn_put(db_conn_t *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&request_conn_mu);
    if (c == request_conn)
        request_conn_busy = false;
    pthread_mutex_unlock(&request_conn_mu);
}

int importer_close_kept(void)
{
    int n = import__db_close_kept();
    pthread_mutex_lock(&kept_copy_mu);
    while (kept_copy_n > 0) {
        PQfinish(kept_copy[--kept_copy_n]);
        n++;
    }
    pthread_mutex_unlock(&kept_copy_mu);
    pthread_mutex_lock(&request_conn_mu);
    if (request_conn && !request_conn_busy) {
        db_conn_free(request_conn);
        request_conn = NULL;
        n++;
    }
    pthread_mutex_unlock(&request_conn_mu);
    return n;
}

/* Opens the data connection and its transaction as service_role, with the
 * schedule's (or app_settings') time zone for timestamps without one. */
static bool copy_open(run_t *r)
{
    r->copy = kept_copy_take(r->app);
    if (!r->copy || PQstatus(r->copy) != CONNECTION_OK) {
        run_fail(r, true, "cannot connect to the database");
        return false;
    }
    const char *tz = r->src.schedule_config
                         ? json_string_value(json_object_get(r->src.schedule_config, "timezone"))
                         : NULL;
    const char *p[1] = {tz ? tz : ""};
    if (!copy_exec(r, "begin isolation level read committed", 0, NULL, NULL) ||
        !copy_exec(r,
                   "select set_config('role', 'service_role', true), "
                   "set_config('request.jwt.claims', '{\"role\":\"service_role\"}', true), "
                   "set_config('search_path', 'public, extensions', true), "
                   "set_config('statement_timeout', '0', true), "
                   "set_config('lock_timeout', '60s', true)",
                   0, NULL, NULL))
        return false;
    PGresult *res =
        PQexecParams(r->copy,
                     "select set_config('TimeZone', coalesce(nullif($1, ''), "
                     "(select a.timezone from public.app_settings a limit 1), 'UTC'), true)",
                     1, NULL, p, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    if (!ok)
        run_fail(r, false,
                 "schedule_config.timezone \"%.60s\" is not a time zone PostgreSQL knows; use an "
                 "IANA name such as America/New_York",
                 p[0]);
    return ok;
}

/* Closes the data connection — an open transaction is rolled back — or, when
 * its transaction ended (committed), keeps it for the next run. */
static void copy_close(run_t *r)
{
    if (r->copy && PQstatus(r->copy) == CONNECTION_OK &&
        PQtransactionStatus(r->copy) == PQTRANS_IDLE && kept_copy_put(r->copy)) {
        r->copy = NULL;
        return;
    }
    if (r->copy)
        PQfinish(r->copy);
    r->copy = NULL;
}

/* The SQL type create_import_table gives a column of this type, as
 * format_type() spells it. */
static const char *pg_type_name(imp_type_t t)
{
    switch (t) {
    case IMP_TYPE_INTEGER:
        return "integer";
    case IMP_TYPE_NUMBER:
        return "numeric";
    case IMP_TYPE_BOOLEAN:
        return "boolean";
    case IMP_TYPE_DATE:
        return "date";
    case IMP_TYPE_TIMESTAMP:
        return "timestamp with time zone";
    case IMP_TYPE_TEXT:
    default:
        return "text";
    }
}

/* The plan's columns as JSON for create_import_table / import_create_staging,
 * and as the "name:type,..." signature the current table is compared with. */
static json_t *plan_columns_json(const imp_plan_t *plan, cd_buf_t *sig)
{
    size_t n = 0;
    const imp_plan_column_t *cols = imp_plan_columns(plan, &n);
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s}", "source_name",
                                           cols[i].source_name, "target_name", cols[i].target_name,
                                           "type", imp_type_name(cols[i].type), "sql_type",
                                           imp_type_sql(cols[i].type)));
        if (sig && !cd_buf_printf(sig, "%s%s:%s", i ? "," : "", cols[i].target_name,
                                  pg_type_name(cols[i].type)))
            return json_decref(a), NULL;
    }
    return a;
}

/* ------------------------------------------------------------ the run */

typedef enum { DEST_TABLE, DEST_CONTACTS } dest_t;

typedef struct load {
    dest_t dest;
    const char *mode; /* replace | append | upsert (table) */
    char *staging;
    char *table;
    bool recreated;
    bool delta; /* staging is the source's dlt_ table (migration 050), not a new one */
} load_t;

/* Creates (or recreates) the import table if the plan's columns differ from
 * the current table's, then the staging table. */
static bool prepare_destination(run_t *r, load_t *ld)
{
    cd_buf_t sig;
    cd_buf_init(&sig, SYNC_MAX_SQL);
    json_t *cols = plan_columns_json(r->plan, &sig);
    char *cols_txt = cols ? json_dumps(cols, JSON_COMPACT) : NULL;
    json_decref(cols);
    bool ok = false;
    if (!cols_txt) {
        run_fail(r, false, "out of memory");
        goto done;
    }
    if (ld->dest == DEST_CONTACTS) {
        const char *p[2] = {r->src.id, cols_txt};
        ld->staging = copy_scalar(r, "select public.import_create_staging($1, $2::jsonb)", 2, p);
        ok = ld->staging != NULL;
        goto done;
    }
    const char *pid[1] = {r->src.id};
    char *current = copy_scalar(r, "select public.import_current_table($1)", 1, pid);
    if (!current)
        goto done;
    char *current_sig = NULL;
    if (*current) {
        const char *p[1] = {current};
        current_sig = copy_scalar(
            r,
            "select coalesce(string_agg(a.attname || ':' || format_type(a.atttypid, a.atttypmod),"
            " ',' order by a.attnum), '') from pg_attribute a "
            "where a.attrelid = ('public.' || quote_ident($1))::regclass and a.attnum > 0 "
            "and not a.attisdropped and a.attname not in ('id', 'imported_at')",
            1, p);
        if (!current_sig) {
            free(current);
            goto done;
        }
    }
    if (!*current || strcmp(current_sig, cd_buf_str(&sig)) != 0) {
        if (!r->src.user_id) {
            run_fail(r, false, "the data source has no owner any more; an admin must assign it");
            free(current);
            free(current_sig);
            goto done;
        }
        char slug[48];
        import__slug(r->src.name, slug, sizeof(slug));
        const char *p[4] = {r->src.user_id, slug, cols_txt, r->src.id};
        char *created =
            copy_scalar(r, "select public.create_import_table($1, $2, $3::jsonb, $4)", 4, p);
        if (created && *current) {
            const char *pd[1] = {current};
            char *dropped = copy_scalar(r, "select public.drop_import_table($1)", 1, pd);
            if (!dropped) {
                free(created);
                created = NULL;
            }
            free(dropped);
            if (created)
                json_array_append_new(r->warnings,
                                      json_string("the columns changed since the last sync: a "
                                                  "new table replaced the old one"));
        }
        free(current);
        free(current_sig);
        if (!created)
            goto done;
        free(created);
        ld->recreated = true;
        ld->mode = "replace"; /* a new table is always filled in full */
    } else {
        free(current);
        free(current_sig);
    }
    /* Appends and upserts load into the source's lasting unlogged staging
     * table: no DDL per run (migration 050). A replace needs a table of its
     * own, which becomes the import table. */
    ld->delta = strcmp(ld->mode, "replace") != 0;
    ld->staging = copy_scalar(r,
                              ld->delta ? "select public.import_delta_staging($1)"
                                        : "select public.import_create_staging($1, null)",
                              1, pid);
    ok = ld->staging != NULL;
done:
    free(cols_txt);
    cd_buf_free(&sig);
    return ok;
}

/* The next row's id: version 7, increasing through the run (the run's start
 * in ms, then a counter), so the primary key is built from presorted ids —
 * random version 4 ids made the sort of that build the largest cost after
 * the COPY — and rows merged later go to the index's right edge. */
static bool next_uuid(run_t *r, char out[37])
{
    if (r->rnd_used == SYNC_UUID_BATCH) {
        if (RAND_bytes(r->rnd, sizeof(r->rnd)) != 1)
            return false;
        r->rnd_used = 0;
    }
    if (r->id_seq == SYNC_UUID_SEQ_MAX) { /* 67 million ids: the next millisecond */
        r->id_ms++;
        r->id_seq = 0;
    }
    import__uuid7_format(r->id_ms, r->id_seq++, r->rnd + 6 * r->rnd_used++, out);
    return true;
}

/* The writer thread's sink (copy_pipe.h): the only user of the data
 * connection while the rows stream. */
static bool copy_sink(void *arg, const char *data, size_t len)
{
    PGconn *conn = arg;
    return PQputCopyData(conn, data, (int)len) == 1;
}

/* Starts the COPY into the load's staging table. */
static bool copy_begin(run_t *r, const load_t *ld)
{
    size_t n = 0;
    const imp_plan_column_t *cols = imp_plan_columns(r->plan, &n);
    cd_buf_t sql;
    cd_buf_init(&sql, SYNC_MAX_SQL);
    bool ok = cd_buf_printf(&sql, "copy import_staging.%s (id", ld->staging);
    for (size_t i = 0; ok && i < n; i++) {
        char *q = PQescapeIdentifier(r->copy, cols[i].target_name, strlen(cols[i].target_name));
        ok = q && cd_buf_printf(&sql, ", %s", q);
        PQfreemem(q);
    }
    /* FREEZE: a new staging table was made in this transaction, so its rows
     * are written frozen and all-visible; nothing rewrites their pages later.
     * The lasting dlt_ table of appends and upserts was not: its rows live for
     * this transaction only anyway. */
    ok = ok && cd_buf_adds(&sql, ld->delta ? ") from stdin" : ") from stdin with (freeze)");
    if (!ok) {
        cd_buf_free(&sql);
        run_fail(r, false, "too many columns");
        return false;
    }
    PGresult *res = PQexec(r->copy, cd_buf_str(&sql));
    cd_buf_free(&sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        run_fail(r, true, "the database refused the load: %s", PQresultErrorMessage(res));
        PQclear(res);
        return false;
    }
    PQclear(res);
    return true;
}

/* Cleans one row and adds it to the pipe's COPY buffer (or counts it as
 * skipped); the reason to abort the COPY, or NULL to go on. */
static const char *load_row(run_t *r, copy_pipe_t *pipe, const imp_row_t *row)
{
    r->rows_read++;
    if (r->db)
        import__db_note_row(r->db, row);
    imp_result_t out;
    if (!imp_plan_apply(r->plan, row, &out)) {
        run_fail(r, false, "out of memory while cleaning line %lld", row->line);
        return "out of memory";
    }
    if (out.outcome == IMP_ROW_FAIL) {
        run_fail(r, false, "%s", out.message ? out.message : "a rule failed the sync");
        return "a rule failed the sync";
    }
    if (out.outcome == IMP_ROW_SKIP) {
        r->skipped++;
        if (out.reason > 0 && out.reason < IMP_SKIP_REASON_COUNT)
            r->skip_counts[out.reason]++;
        add_row_error(r, &out);
    } else {
        char id[37];
        cd_buf_t *b = copy_pipe_buf(pipe);
        if (!next_uuid(r, id) || !cd_buf_add(b, id, 36) || !cd_buf_add(b, "\t", 1) ||
            !imp_copy_append_row(b, &out)) {
            run_fail(r, false, "line %lld is too large to load", row->line);
            return "a row is too large";
        }
        r->imported++;
        if (!copy_pipe_flush(pipe)) {
            run_fail(r, true, "the database connection was lost during the import (line %lld)",
                     row->line);
            return "connection lost";
        }
    }
    return NULL;
}

/* IMPORT_MAX_ROWS_PER_SECOND: sleeps until rows_read rows are due since the
 * load began (started_ms), in steps of at most SYNC_PROGRESS_MS so that
 * progress, the lease and a cancel are still looked at. False to stop. */
static bool load_pace(run_t *r, long long started_ms)
{
    long rate = r->app->cfg.import_max_rows_per_second;
    if (rate <= 0)
        return true;
    for (;;) {
        long long due_ms = started_ms + r->rows_read * 1000 / rate;
        long long wait_ms = due_ms - now_ms();
        if (wait_ms <= 0)
            return true;
        if (wait_ms > SYNC_PROGRESS_MS)
            wait_ms = SYNC_PROGRESS_MS;
        struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        if (!run_tick(r, false))
            return false;
    }
}

/* Parses and cleans on this thread while the pipe's writer thread streams
 * the COPY text to PostgreSQL (copy_pipe.h): SYNC_PIPE_BUFFERS buffers of
 * about SYNC_COPY_CHUNK bytes between them bound the memory. */
static const char *load_loop(run_t *r, copy_pipe_t *pipe)
{
    long long since_check = 0;
    long long started_ms = now_ms();
    for (;;) {
        imp_row_t row;
        imp_error_t perr = {0};
        int got = imp_reader_next(r->reader, &row, &perr);
        if (got < 0) {
            if (r->db && r->db->failed)
                run_fail(r, r->db->retryable, "%s", r->db->err);
            run_fail(r, false, "%s", perr.message);
            return "the file could not be read";
        }
        if (got == 0 && r->db && r->db->failed) { /* the stream's end was an error */
            run_fail(r, r->db->retryable, "%s", r->db->err);
            return "the source database failed";
        }
        if (got == 0)
            return NULL;
        const char *abort_msg = load_row(r, pipe, &row);
        if (abort_msg)
            return abort_msg;
        if (++since_check >= SYNC_CHECK_ROWS) {
            since_check = 0;
            if (!run_tick(r, false) || !load_pace(r, started_ms))
                return r->cancelled ? "cancelled by the user" : "the job stopped";
        }
    }
}

static bool load_rows(run_t *r, const load_t *ld)
{
    if (!copy_begin(r, ld))
        return false;
    r->phase = "loading";
    r->rnd_used = SYNC_UUID_BATCH;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    r->id_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
    r->id_seq = 0;
    const char *abort_msg = NULL;
    copy_pipe_t *pipe =
        copy_pipe_start(SYNC_PIPE_BUFFERS, SYNC_COPY_CHUNK, SYNC_COPY_BUF_MAX, copy_sink, r->copy);
    if (!pipe) {
        run_fail(r, true, "cannot start the import's writer thread");
        abort_msg = "no writer thread";
    } else {
        abort_msg = load_loop(r, pipe);
    }
    /* the writer is joined here: the data connection is this thread's again */
    if (!copy_pipe_finish(pipe, abort_msg == NULL) && !abort_msg) {
        run_fail(r, true, "the database connection was lost during the import");
        abort_msg = "connection lost";
    }
    if (PQputCopyEnd(r->copy, abort_msg) != 1) {
        run_fail(r, true, "the database connection was lost during the import");
        return false;
    }
    PGresult *res = PQgetResult(r->copy);
    bool copied = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (copied)
        r->copied = strtoll(PQcmdTuples(res), NULL, 10);
    if (!copied && !abort_msg) {
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        const char *ctx = PQresultErrorField(res, PG_DIAG_CONTEXT);
        run_fail(r, false, "the database refused a value: %s%s%.200s%s", msg ? msg : "?",
                 ctx ? " (" : "", ctx ? ctx : "", ctx ? ")" : "");
    }
    PQclear(res);
    while ((res = PQgetResult(r->copy)) != NULL)
        PQclear(res);
    return copied && !abort_msg;
}

/* Key columns of duplicate handling, as JSON arrays of target names. */
static void dup_keys(const imp_plan_t *plan, const char **handling, char **keys, char **ci)
{
    const size_t *idx = NULL;
    const bool *key_ci = NULL;
    size_t nkeys = 0, ncols = 0;
    imp_dup_mode_t mode = imp_plan_duplicates(plan, &idx, &key_ci, &nkeys);
    const imp_plan_column_t *cols = imp_plan_columns(plan, &ncols);
    json_t *k = json_array(), *c = json_array();
    for (size_t i = 0; i < nkeys; i++) {
        if (idx[i] >= ncols)
            continue;
        json_array_append_new(k, json_string(cols[idx[i]].target_name));
        if (key_ci[i])
            json_array_append_new(c, json_string(cols[idx[i]].target_name));
    }
    *handling = mode == IMP_DUP_KEEP_FIRST  ? "keep_first"
                : mode == IMP_DUP_KEEP_LAST ? "keep_last"
                : mode == IMP_DUP_SKIP_ALL  ? "skip_all"
                                            : "none";
    *keys = json_dumps(k, JSON_COMPACT);
    *ci = json_dumps(c, JSON_COMPACT);
    json_decref(k);
    json_decref(c);
}

/* ------------------------------------------------------------ API connectors */

/* Advances data_sources.last_sync_value in the transaction of the rows (an
 * incremental API sync, connectors.h): a failed run leaves it. */
static bool store_sync_value(run_t *r)
{
    const char *p[2] = {r->src.id, r->in.sync_value};
    return copy_exec(r, "update public.data_sources set last_sync_value = $2 where id = $1", 2, p,
                     NULL);
}

/* Analytics sources: the report's metric rows upserted into imported_data
 * and rolled up into analytics_data (migration 034), in one transaction
 * that also closes the run as success. */
static bool run_metrics(run_t *r)
{
    r->phase = "downloading";
    (void)run_tick(r, true);
    json_t *rows = NULL;
    bool retry = false;
    if (!conn_metrics_fetch(r->app, r->c, &r->src, fetch_cancel, r, &rows, r->error,
                            sizeof(r->error), &retry)) {
        r->retryable = retry;
        return false;
    }
    r->phase = "loading";
    r->rows_read = (long long)json_array_size(rows);
    bool ok = copy_open(r);
    for (size_t i = 0; ok && i < json_array_size(rows); i += SYNC_METRICS_BATCH) {
        json_t *batch = json_array();
        for (size_t k = i; batch && k < i + SYNC_METRICS_BATCH && k < json_array_size(rows); k++)
            json_array_append(batch, json_array_get(rows, k));
        char *txt = batch ? json_dumps(batch, JSON_COMPACT) : NULL;
        json_decref(batch);
        const char *p[2] = {r->src.id, txt};
        ok = txt && copy_exec(r, "select public.import_metrics_upsert($1, $2::jsonb)", 2, p, NULL);
        free(txt);
        ok = ok && run_tick(r, false);
    }
    json_decref(rows);
    const char *pid[1] = {r->src.id};
    char *res = ok ? copy_scalar(r, "select public.import_metrics_finish($1)", 1, pid) : NULL;
    json_t *result = res ? json_loads(res, 0, NULL) : NULL;
    free(res);
    r->phase = "finishing";
    r->imported = json_integer_value(json_object_get(result, "values"));
    json_t *m = result ? run_metadata(r, true) : NULL;
    if (m) {
        json_object_set_new(m, "destination", json_string("imported_data"));
        json_object_set(m, "report", result);
    }
    json_decref(result);
    char *mtxt = m ? json_dumps(m, JSON_COMPACT) : NULL;
    json_decref(m);
    ok = mtxt != NULL;
    if (ok && !job_heartbeat(r->ctx)) { /* no last look: see finish() */
        r->lost = true;
        ok = false;
    }
    char imported[32];
    snprintf(imported, sizeof(imported), "%lld", r->imported);
    const char *ps[4] = {r->log_id, imported, "0", mtxt};
    ok = ok && copy_exec(r, "select public.import_succeed_run($1, $2, $3, $4::jsonb)", 4, ps, NULL);
    free(mtxt);
    ok = ok && copy_exec(r, "commit", 0, NULL, NULL);
    if (!ok && !r->error[0] && !r->cancelled && !r->lost)
        run_fail(r, true, "the metrics could not be stored");
    return ok;
}

/* The run's metadata once the rows are in (skip reasons, mode or destination, consent,
 * progress), as JSON text (malloc'd; NULL when out of memory). */
static char *finish_metadata(run_t *r, const load_t *ld, const json_t *result)
{
    json_t *m = run_metadata(r, true);
    json_t *reasons = json_object_get(m, "skipped_by_reason");
    if (ld->dest == DEST_TABLE) {
        long long d = json_integer_value(json_object_get(result, "duplicates"));
        if (d)
            json_object_set_new(reasons, "duplicate", json_integer(d));
        json_object_set_new(m, "mode", json_string(ld->mode));
        json_object_set_new(m, "rows_in_table",
                            json_integer(json_integer_value(json_object_get(result, "rows"))));
        /* an upsert merged in place (migration 065): what it wrote */
        const char *merged[] = {"updated", "inserted", "unchanged"};
        for (size_t i = 0; i < 3; i++) {
            json_t *v = json_object_get(result, merged[i]);
            if (json_is_integer(v))
                json_object_set(m, merged[i], v);
        }
    } else {
        long long inv = json_integer_value(json_object_get(result, "invalid"));
        long long mer = json_integer_value(json_object_get(result, "merged"));
        if (inv)
            json_object_set_new(reasons, "no_valid_email_or_phone", json_integer(inv));
        if (mer)
            json_object_set_new(reasons, "duplicate", json_integer(mer));
        json_object_set_new(m, "destination", json_string("contacts"));
        /* what the mapped consent columns recorded (migration 037) */
        json_t *consent = json_object();
        const char *channels[] = {"email", "sms"};
        for (size_t i = 0; consent && i < 2; i++) {
            json_t *c = json_object_get(result, channels[i]);
            if (json_is_object(c))
                json_object_set(consent, channels[i], c);
        }
        if (consent && json_object_size(consent))
            json_object_set(m, "consent", consent);
        json_decref(consent);
    }
    json_object_set_new(json_object_get(m, "progress"), "imported", json_integer(r->imported));
    json_object_set_new(json_object_get(m, "progress"), "skipped", json_integer(r->skipped));
    char *mtxt = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    return mtxt;
}

/* The table destination: dedupe, then swap or merge (import_finish_staging);
 * for incremental database sources, the key index and, after a swap,
 * statistics. Its JSON answer, or NULL (r->error says why). */
static json_t *finish_table(run_t *r, load_t *ld)
{
    const char *handling;
    char *keys = NULL, *ci = NULL;
    dup_keys(r->plan, &handling, &keys, &ci);
    if (strcmp(ld->mode, "upsert") == 0 && strcmp(keys ? keys : "[]", "[]") == 0)
        ld->mode = "append";
    char copied[32];
    snprintf(copied, sizeof(copied), "%lld", r->copied);
    const char *p[8] = {r->src.id,      ld->staging, ld->mode,  keys ? keys : "[]",
                        ci ? ci : "[]", handling,    r->log_id, copied};
    /* $8: the COPY's own count, so the staging table is not counted (047) */
    char *res = copy_scalar(r,
                            "select public.import_finish_staging($1, $2, $3, "
                            "array(select jsonb_array_elements_text($4::jsonb)), "
                            "array(select jsonb_array_elements_text($5::jsonb)), $6, $7, "
                            "$8::bigint)",
                            8, p);
    if (res && r->db && r->db->inc_column) { /* incremental upserts find rows by index */
        const char *pk[2] = {r->src.id, keys ? keys : "[]"};
        char *ix = copy_scalar(r,
                               "select public.import_key_index($1, "
                               "array(select jsonb_array_elements_text($2::jsonb)))",
                               2, pk);
        /* a new table has no statistics: the next merge's delete would plan
         * a hash join over the whole table (migration 047) */
        char *an = ix && strcmp(ld->mode, "replace") == 0
                       ? copy_scalar(r, "select public.import_analyze($1)", 1, pk)
                       : strdup("");
        /* and the staging table of the re-syncs (migration 050) is made now,
         * by this run's DDL and its schema reload, not by the first re-sync */
        char *dlt = an && strcmp(ld->mode, "replace") == 0
                        ? copy_scalar(r, "select public.import_delta_staging($1)", 1, pk)
                        : strdup("");
        if (!ix || !an || !dlt) {
            free(res);
            res = NULL;
        }
        free(ix);
        free(an);
        free(dlt);
    }
    free(keys);
    free(ci);
    json_t *result = res ? json_loads(res, 0, NULL) : NULL;
    if (res && !result)
        run_fail(r, false, "the database's answer could not be read");
    free(res);
    return result;
}

/* Dedupe, index, swap or merge; close the run as success; commit. */
static bool finish(run_t *r, load_t *ld)
{
    r->phase = "finishing";
    /* A large load's finish (index build, swap) takes long enough to show as
     * its own phase; a small one's report would be a transaction (and a
     * commit) of its own for a phase that lasts milliseconds. */
    (void)run_tick(r, r->copied >= SYNC_FINISH_REPORT_ROWS);
    if (r->cancelled || r->lost)
        return false;
    long long extra_skipped = 0;
    json_t *result = NULL;
    if (ld->dest == DEST_TABLE) {
        result = finish_table(r, ld);
        if (!result)
            return false;
        extra_skipped += json_integer_value(json_object_get(result, "duplicates"));
        r->imported = json_integer_value(json_object_get(result, "imported"));
    } else {
        const char *p[3] = {r->src.id, ld->staging, r->log_id};
        char *res = copy_scalar(r, "select public.import_contacts_from_staging($1, $2, $3)", 3, p);
        if (!res)
            return false;
        result = json_loads(res, 0, NULL);
        free(res);
        long long invalid = json_integer_value(json_object_get(result, "invalid"));
        long long merged = json_integer_value(json_object_get(result, "merged"));
        extra_skipped += invalid + merged;
        r->imported = json_integer_value(json_object_get(result, "imported"));
    }
    r->skipped += extra_skipped;
    char *mtxt = finish_metadata(r, ld, result);
    json_decref(result);
    /* No last look at the cancel flag here (a transaction and a commit of
     * its own): import_succeed_run refuses a run whose cancel was requested
     * (migration 071), in this transaction, and end_refused() reads why. */
    if (!job_heartbeat(r->ctx)) {
        r->lost = true;
        free(mtxt);
        return false;
    }
    if (r->in.sync_value && !store_sync_value(r)) {
        free(mtxt);
        return false;
    }
    /* an incremental database sync's new position: written by the UPDATE of
     * data_sources that records the success, so it commits with the rows
     * (migration 065); NULL leaves it */
    const char *position = r->db && r->db->inc_column ? r->db->max_value : NULL;
    char imported[32], skipped[32];
    snprintf(imported, sizeof(imported), "%lld", r->imported);
    snprintf(skipped, sizeof(skipped), "%lld", r->skipped);
    const char *p[5] = {r->log_id, imported, skipped, mtxt ? mtxt : "{}", position};
    bool ok =
        copy_exec(r, "select public.import_succeed_run($1, $2, $3, $4::jsonb, $5)", 5, p, NULL);
    free(mtxt);
    /* The schema cache of /rest/v1 also reloads without the DDL event trigger
     * (a DATABASE_URL without superuser) — when a table was made or swapped:
     * rows merged into the same table change no schema. */
    if (ld->dest != DEST_TABLE || ld->recreated || strcmp(ld->mode, "replace") == 0)
        ok = ok && copy_exec(r, "select pg_notify('pgrst', 'reload schema')", 0, NULL, NULL);
    return ok && copy_exec(r, "commit", 0, NULL, NULL);
}

static bool open_parser(run_t *r)
{
    imp_parse_opts_t o;
    imp_parse_opts_init(&o);
    const json_t *cfg = r->src.config;
    const char *enc = cfg ? json_string_value(json_object_get(cfg, "encoding")) : NULL;
    if (enc && !imp_encoding_from_name(enc, &o.encoding)) {
        run_fail(r, false,
                 "config.encoding \"%.40s\" is not supported; use utf-8, utf-16, windows-1252, "
                 "latin1 or auto",
                 enc);
        return false;
    }
    const char *delim = cfg ? json_string_value(json_object_get(cfg, "delimiter")) : NULL;
    if (delim && *delim) {
        if (strcmp(delim, "\\t") == 0 || strcmp(delim, "tab") == 0)
            o.delimiter = '\t';
        else if (strlen(delim) == 1)
            o.delimiter = delim[0];
        else {
            run_fail(r, false, "config.delimiter must be one character (or \"tab\")");
            return false;
        }
    }
    o.sheet = cfg ? json_string_value(json_object_get(cfg, "sheet")) : NULL;
    json_t *hh = cfg ? json_object_get(cfg, "has_header") : NULL;
    if (json_is_boolean(hh))
        o.has_header = json_is_true(hh);
    if (r->in.spooled_csv) { /* written by an API connector (connectors.h) */
        o.encoding = IMP_ENC_UTF8;
        o.delimiter = ',';
        o.has_header = true;
    }
    imp_error_t perr = {0};
    imp_format_t fmt = IMP_FORMAT_DETECT;
    if (strcmp(r->src.type, "csv_upload") == 0 || strcmp(r->src.type, "csv_url") == 0 ||
        strcmp(r->src.type, "google_sheets") == 0)
        fmt = IMP_FORMAT_DETECT; /* an .xlsx uploaded as "CSV" still reads */
    r->reader = imp_reader_open(r->in.path, fmt, &o, &perr);
    if (!r->reader) {
        run_fail(r, false, "%s", perr.message[0] ? perr.message : "the file cannot be read");
        return false;
    }
    return true;
}

/* Compiles the column_config against the file's header; a source without a
 * configuration imports every column as text under proposed names. */
static bool compile_plan(run_t *r)
{
    size_t n = 0;
    const imp_cell_t *header = imp_reader_header(r->reader, &n);
    const json_t *cc = r->src.column_config;
    json_t *proposed = NULL;
    const json_t *cols = json_is_object(cc) ? json_object_get(cc, "columns") : cc;
    if (!json_is_array(cols) || json_array_size(cols) == 0) {
        proposed = imp_propose_config(header, n, NULL);
        if (!proposed) {
            run_fail(r, false, "out of memory");
            return false;
        }
        /* keep the filters and duplicate handling the user configured */
        if (json_is_object(cc)) {
            const char *k;
            json_t *v;
            json_object_foreach((json_t *)cc, k, v)
            {
                if (strcmp(k, "columns") != 0)
                    json_object_set(proposed, k, v);
            }
        }
        if (r->db)
            import__db_type_proposal(r->db, proposed); /* the source's column types */
        cc = proposed;
    }
    imp_error_t perr = {0};
    r->plan = imp_plan_compile(cc, header, n, &perr);
    json_decref(proposed);
    if (!r->plan) {
        run_fail(r, false, "%s", perr.message[0] ? perr.message : "the column mapping is invalid");
        return false;
    }
    size_t ncols = 0;
    (void)imp_plan_columns(r->plan, &ncols);
    if (ncols == 0) {
        run_fail(r, false, "no column is included: include at least one in column_config");
        return false;
    }
    return true;
}

/* Closes the run's row as failed or cancelled (on the job's connection). */
static void end_run(run_t *r, const char *status)
{
    json_t *m = run_metadata(r, true);
    char *mtxt = m ? json_dumps(m, JSON_COMPACT) : NULL;
    json_decref(m);
    const char *p[4] = {r->log_id, status, r->error[0] ? r->error : "the sync failed",
                        mtxt ? mtxt : "{}"};
    PGresult *res = NULL;
    db_error_t err;
    if (db_run1(r->c, &SERVICE, "select public.import_end_run($1, $2, $3, $4::jsonb)", 4, p, &res,
                &err) != DB_OK)
        log_warn("import %s: cannot record the outcome: %s", r->log_id, err.message);
    PQclear(res);
    free(mtxt);
}

/* Database sources: opens the connection and its reader. An incremental
 * sync (schedule_config.incremental_column with incremental_strategy
 * "incremental") reads the rows with the column >= last_sync_value (the rows
 * of the last value again: ties are never skipped) and upserts them by the
 * duplicate key, so a row read twice replaces itself; the first run (no
 * last_sync_value yet), and any run with another strategy, reads everything
 * and replaces the table. */
static bool open_database(run_t *r, load_t *ld)
{
    const char *last = json_string_value(json_object_get(r->source_row, "last_sync_value"));
    const char *inc = import__db_inc_column(&r->src);
    if (inc && strcmp(ld->mode, "upsert") != 0)
        inc = NULL; /* a full sync: reads everything, replaces, records the position */
    if (inc) {
        const json_t *keys = json_is_object(r->src.column_config)
                                 ? json_object_get(r->src.column_config, "duplicate_key_columns")
                                 : NULL;
        if (json_array_size(keys) == 0) {
            run_fail(r, false,
                     "an incremental sync needs column_config.duplicate_key_columns: "
                     "rows are upserted by that key");
            return false;
        }
        if (!last)
            ld->mode = "replace"; /* the first run reads the whole source */
        r->db_partial = last != NULL;
    }
    bool retryable = false;
    r->db = import__db_open(r->app, r->c, &r->src, inc ? last : NULL, false, r->error,
                            sizeof(r->error), &retryable);
    if (!r->db) {
        r->retryable = retryable;
        return false;
    }
    imp_error_t perr = {0};
    r->reader = import__db_reader(r->db, &perr);
    if (!r->reader)
        run_fail(r, r->db->failed && r->db->retryable, "%s",
                 r->db->failed ? r->db->err : perr.message);
    return r->reader != NULL;
}

/* An incremental database read into a table that had to be made anew (the
 * columns changed) would leave only the new rows: forget the position and
 * let the retry read everything. */
static bool db_recreated_check(run_t *r, const load_t *ld)
{
    if (!r->db || !ld->recreated || !r->db_partial)
        return true;
    copy_close(r); /* its transaction holds the data source's row */
    const char *p[1] = {r->src.id};
    PGresult *res = NULL;
    db_error_t err;
    if (db_run1(r->c, &SERVICE,
                "update public.data_sources set last_sync_value = null where id = $1", 1, p, &res,
                &err) != DB_OK)
        log_warn("import %s: cannot reset last_sync_value: %s", r->log_id, err.message);
    PQclear(res);
    run_fail(r, true, "the columns changed: the next attempt reads the whole source again");
    return false;
}

/* Marks the run as waiting again (phase "queued", with a note the dashboard
 * shows): public.import_begin_run() then gives the retry this same row. */
static void requeue_run(run_t *r)
{
    const char *p[1] = {r->log_id};
    PGresult *res = NULL;
    db_error_t err;
    if (db_run1(r->c, &SERVICE,
                "update public.sync_logs set metadata = metadata || jsonb_build_object("
                "'phase', 'queued', 'note', 'the server stopped during this sync; it starts again "
                "from the beginning when the server is back') "
                "where id = $1 and status = 'running'",
                1, p, &res, &err) != DB_OK)
        log_warn("import %s: cannot put the run back in the queue: %s", r->log_id, err.message);
    PQclear(res);
}

static job_result_t run_sync(run_t *r)
{
    load_t ld = {.dest = DEST_TABLE, .mode = "replace"};
    const json_t *cfg = r->src.config;
    const char *dest = cfg ? json_string_value(json_object_get(cfg, "destination")) : NULL;
    if (dest && strcmp(dest, "contacts") == 0)
        ld.dest = DEST_CONTACTS;
    else if (dest && strcmp(dest, "table") != 0) {
        run_fail(r, false, "config.destination must be \"table\" or \"contacts\"");
        goto out;
    }
    const char *strategy =
        r->src.schedule_config
            ? json_string_value(json_object_get(r->src.schedule_config, "incremental_strategy"))
            : NULL;
    if (strategy && (strcmp(strategy, "incremental") == 0 || strcmp(strategy, "append") == 0))
        ld.mode = "upsert"; /* append when there are no key columns */

    if (conn_is_metrics_type(r->src.type)) { /* analytics APIs → imported_data */
        (void)run_metrics(r);
        goto out;
    }
    r->phase = "downloading";
    bool database = import__is_database(r->src.type);
    if (database)
        /* import_begin_run has just reported the run (phase "starting") and
         * checked for a cancel: the first report comes with the rows, after
         * SYNC_PROGRESS_MS — a re-sync of a few rows saves a transaction */
        r->last_progress_ms = now_ms();
    else
        (void)run_tick(r, true);
    if (database) { /* database connectors: dbconn.h */
        if (!open_database(r, &ld))
            goto out;
    } else if (!import__input_open(r->app, r->c, &r->src, false, fetch_cancel, r, &r->in, r->error,
                                   sizeof(r->error))) {
        r->retryable = r->in.retryable;
        goto out;
    }
    r->phase = "reading";
    if ((!r->db && !open_parser(r)) || !compile_plan(r))
        goto out;
    if (ld.dest == DEST_CONTACTS) {
        size_t n = 0;
        const imp_plan_column_t *cols = imp_plan_columns(r->plan, &n);
        bool reachable = false;
        for (size_t i = 0; i < n; i++)
            reachable |= strcmp(cols[i].target_name, "email") == 0 ||
                         strcmp(cols[i].target_name, "phone") == 0;
        if (!reachable) {
            run_fail(r, false,
                     "importing into contacts needs a column mapped to \"email\" or \"phone\"");
            goto out;
        }
    }
    if (!copy_open(r) || !prepare_destination(r, &ld) || !db_recreated_check(r, &ld) ||
        !load_rows(r, &ld) || !finish(r, &ld))
        goto out;
out:
    copy_close(r); /* rolls back whatever did not commit */
    if (r->refused && !r->lost && !r->cancelled)
        /* import_succeed_run refused the success and the data is rolled
         * back: read the cancel flag now (true too when the row was closed) */
        (void)run_tick(r, true);
    free(ld.staging);
    free(ld.table);
    if (r->lost) {
        /* A clean stop puts the row back in the queue, so the restart runs
         * the same sync again (nothing of this run was kept); a lost lease
         * (a kill -9 elsewhere, a stalled process) leaves it to the next
         * attempt, which closes it as interrupted. */
        if (job_stopping(r->ctx))
            requeue_run(r);
        return JOB_RETRY;
    }
    if (r->cancelled) {
        end_run(r, "cancelled");
        return JOB_DONE;
    }
    if (r->error[0]) {
        end_run(r, "failed");
        job_set_error(r->ctx, "%s", r->error);
        return r->retryable ? JOB_RETRY : JOB_FAIL;
    }
    return JOB_DONE;
}

static job_result_t handle_sync(job_ctx_t *ctx, const job_t *job)
{
    const char *source_id = json_string_value(json_object_get(job->payload, "data_source_id"));
    const char *log_id = json_string_value(json_object_get(job->payload, "sync_log_id"));
    const char *trigger = json_string_value(json_object_get(job->payload, "trigger"));
    if (!source_id || !cd_is_uuid(source_id) || (log_id && !cd_is_uuid(log_id))) {
        job_set_error(ctx, "import.sync: the payload needs a data_source_id (uuid)");
        return JOB_FAIL;
    }
    run_t *r = calloc(1, sizeof(*r));
    if (!r)
        return JOB_RETRY;
    r->app = job_app(ctx);
    r->ctx = ctx;
    r->c = job_conn(ctx);
    r->in.fd = -1;
    r->phase = "starting";
    r->errors = json_array();
    r->warnings = json_array();
    job_result_t result = JOB_RETRY;
    char attempt[16], jid[32];
    snprintf(attempt, sizeof(attempt), "%d", job->attempt);
    snprintf(jid, sizeof(jid), "%lld", job->id);
    const char *p[5] = {source_id, log_id, trigger ? trigger : "schedule", attempt, jid};
    PGresult *res = NULL;
    db_error_t err;
    db_status_t st = DB_OK;
    const char *begun = job->begun; /* import_begin_run, run with the claim */
    if (!job->begun_run) {
        st = db_run1(r->c, &SERVICE,
                     "select public.import_begin_run($1, $2, $3, $4::integer, $5::bigint)", 5, p,
                     &res, &err);
        begun = st == DB_OK && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : NULL;
    }
    if (st != DB_OK) {
        job_set_error(ctx, "import.sync: cannot start: %s",
                      st == DB_UNAVAILABLE ? "database unavailable" : err.message);
        goto done;
    }
    if (!begun || !cd_is_uuid(begun)) {
        result = JOB_DONE; /* nothing to do (cancelled, finished, another run) */
        goto done;
    }
    snprintf(r->log_id, sizeof(r->log_id), "%s", begun);
    PQclear(res);
    res = NULL;
    const char *ps[1] = {source_id};
    st = db_run1(r->c, &SERVICE, "select to_jsonb(ds) from public.data_sources ds where ds.id = $1",
                 1, ps, &res, &err);
    if (st != DB_OK || PQntuples(res) != 1) {
        job_set_error(ctx, "import.sync: cannot read the data source");
        goto done;
    }
    r->source_row = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    if (!r->source_row || !import__source_from_json(r->source_row, &r->src)) {
        snprintf(r->error, sizeof(r->error), "the data source row is not readable");
        end_run(r, "failed");
        result = JOB_FAIL;
        goto done;
    }
    log_info("import %s: %s sync of data source %s (attempt %d)", r->log_id,
             trigger ? trigger : "schedule", source_id, job->attempt);
    result = run_sync(r);
    log_info("import %s: %s, %lld rows read, %lld imported, %lld skipped%s%s", r->log_id,
             r->cancelled  ? "cancelled"
             : r->error[0] ? "failed"
             : r->lost     ? "stopped"
                           : "done",
             r->rows_read, r->imported, r->skipped, r->error[0] ? ": " : "", r->error);
done:
    PQclear(res);
    imp_plan_free(r->plan);
    imp_reader_close(r->reader);
    import__db_close(r->db);
    import__input_close(&r->in);
    json_decref(r->source_row);
    json_decref(r->errors);
    json_decref(r->warnings);
    free(r);
    return result;
}

/* import_begin_run in the claim's transaction (jobs_register_begin): the run's
 * start commits with the claim, one flushed commit less per sync. The payload's
 * fields as handle_sync reads them: the ids only in cd_is_uuid's spelling
 * (PostgreSQL's ::uuid also takes braces or no hyphens, which handle_sync
 * refuses; a run begun for a payload it then refuses would stay "running" and
 * block every later sync of the source). A payload it would refuse makes the
 * expression NULL (nothing written) or raise (the claim is made again without
 * it), and handle_sync refuses it. */
#define IMPORT_UUID_RE                                                                             \
    "'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'"
#define IMPORT_BEGIN_SQL                                                                           \
    "case when c.payload ->> 'data_source_id' ~ " IMPORT_UUID_RE                                   \
    " and coalesce(c.payload ->> 'sync_log_id', '00000000-0000-0000-0000-000000000000') "          \
    "~ " IMPORT_UUID_RE " then public.import_begin_run((c.payload ->> 'data_source_id')::uuid, "   \
    "(c.payload ->> 'sync_log_id')::uuid, coalesce(c.payload ->> 'trigger', 'schedule'), "         \
    "c.attempts, c.id) end"

bool importer_register_jobs(void)
{
    return jobs_register_begin(IMPORT_JOB_KIND, handle_sync, IMPORT_BEGIN_SQL);
}
