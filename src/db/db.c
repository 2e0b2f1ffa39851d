/*
 * Per-thread PostgreSQL connections and the pipelined "run as caller"
 * transaction that every data request goes through.
 */
#include "db/db.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"

struct db_conn {
    PGconn *pg;
};

static char *db_conninfo;
static char db_timeout_text[32] = "8000";
static char *db_encryption_key;

static _Thread_local db_conn_t thread_conn;
/* A key whose destructor closes a worker's connection when its thread exits
 * (the _Thread_local above is the fast path; the key only does cleanup). */
static pthread_key_t thread_conn_key;
static pthread_once_t thread_conn_once = PTHREAD_ONCE_INIT;
static _Thread_local time_t thread_next_attempt;
static _Thread_local int thread_backoff_ms;

static const char PRELUDE_NAME[] = "cd_prelude";
/* The request context, as PostgREST sets it (wire reference 2.9). All local
 * to the transaction, so nothing leaks into the next request. */
static const char PRELUDE_SQL[] =
    "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true), "
    "set_config('request.method', $3, true), set_config('request.path', $4, true), "
    "set_config('request.headers', $5, true), set_config('statement_timeout', $6, true), "
    "set_config('search_path', 'public, extensions', true), "
    "set_config('campaignd.encryption_key', $7, true)";

void db_configure(const char *conninfo, long statement_timeout_ms, const char *encryption_key)
{
    free(db_conninfo);
    db_conninfo = strdup(conninfo);
    snprintf(db_timeout_text, sizeof(db_timeout_text), "%ld", statement_timeout_ms);
    free(db_encryption_key);
    db_encryption_key = strdup(encryption_key ? encryption_key : "");
}

PGconn *db_pg(db_conn_t *c)
{
    return c->pg;
}

static void conn_key_destructor(void *p)
{
    (void)p;
    db_thread_close();
}

static void conn_key_init(void)
{
    pthread_key_create(&thread_conn_key, conn_key_destructor);
}

void db_thread_close(void)
{
    if (thread_conn.pg) {
        PQfinish(thread_conn.pg);
        thread_conn.pg = NULL;
    }
}

int db_retry_after(void)
{
    time_t now = time(NULL);
    int s = (int)(thread_next_attempt - now);
    return s < 1 ? 1 : s;
}

static void note_failure(const char *why)
{
    thread_backoff_ms = thread_backoff_ms ? thread_backoff_ms * 2 : 250;
    if (thread_backoff_ms > 5000)
        thread_backoff_ms = 5000;
    thread_next_attempt = time(NULL) + (thread_backoff_ms + 999) / 1000;
    log_warn("database unreachable (%s); retrying in %d ms", why, thread_backoff_ms);
}

db_conn_t *db_thread_conn(void)
{
    if (thread_conn.pg && PQstatus(thread_conn.pg) == CONNECTION_OK)
        return &thread_conn;
    db_thread_close();
    if (!db_conninfo)
        return NULL;
    if (thread_next_attempt && time(NULL) < thread_next_attempt)
        return NULL;
    PGconn *pg = PQconnectdb(db_conninfo);
    if (PQstatus(pg) != CONNECTION_OK) {
        char why[256];
        snprintf(why, sizeof(why), "%s", PQerrorMessage(pg));
        why[strcspn(why, "\n")] = '\0';
        PQfinish(pg);
        note_failure(why);
        return NULL;
    }
    PGresult *r = PQprepare(pg, PRELUDE_NAME, PRELUDE_SQL, 7, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        char why[256];
        snprintf(why, sizeof(why), "prepare: %s", PQresultErrorMessage(r));
        why[strcspn(why, "\n")] = '\0';
        PQclear(r);
        PQfinish(pg);
        note_failure(why);
        return NULL;
    }
    PQclear(r);
    thread_backoff_ms = 0;
    thread_next_attempt = 0;
    thread_conn.pg = pg;
    pthread_once(&thread_conn_once, conn_key_init);
    pthread_setspecific(thread_conn_key, &thread_conn);
    return &thread_conn;
}

static void copy_field(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

void db_error_from_result(const PGresult *res, db_error_t *err)
{
    copy_field(err->sqlstate, sizeof(err->sqlstate),
               res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : "08006");
    copy_field(err->message, sizeof(err->message),
               res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : "no result");
    copy_field(err->detail, sizeof(err->detail),
               res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL);
    copy_field(err->hint, sizeof(err->hint),
               res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL);
}

bool db_exec(PGconn *pg, const char *sql, db_error_t *err)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
    if (!ok && err)
        db_error_from_result(r, err);
    PQclear(r);
    return ok;
}

void db_exec_ignore(PGconn *pg, const char *sql)
{
    PQclear(PQexec(pg, sql));
}

/* Drops a connection that broke, so the next request reconnects. */
static db_status_t lost(db_conn_t *c, db_error_t *err)
{
    copy_field(err->sqlstate, sizeof(err->sqlstate), "08006");
    copy_field(err->message, sizeof(err->message), PQerrorMessage(c->pg));
    err->message[strcspn(err->message, "\n")] = '\0';
    log_warn("database connection lost: %s", err->message);
    db_thread_close();
    note_failure("connection lost");
    return DB_UNAVAILABLE;
}

db_status_t db_run_as(db_conn_t *c, const db_caller_t *who, const db_stmt_t *stmts, size_t nstmts,
                      PGresult **results, db_error_t *err)
{
    memset(err, 0, sizeof(*err));
    err->failed_stmt = -1;
    for (size_t i = 0; i < nstmts; i++)
        results[i] = NULL;
    PGconn *pg = c->pg;
    if (PQenterPipelineMode(pg) != 1)
        return lost(c, err);

    const char *begin = who->read_only ? "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY"
                                       : "BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE";
    const char *pre[7] = {who->role,
                          who->claims_json ? who->claims_json : "{}",
                          who->method ? who->method : "",
                          who->path ? who->path : "",
                          who->headers_json ? who->headers_json : "{}",
                          db_timeout_text,
                          who->with_secrets && db_encryption_key ? db_encryption_key : ""};
    bool sent = PQsendQueryParams(pg, begin, 0, NULL, NULL, NULL, NULL, 0) &&
                PQsendQueryPrepared(pg, PRELUDE_NAME, 7, pre, NULL, NULL, 0);
    for (size_t i = 0; sent && i < nstmts; i++)
        sent = PQsendQueryParams(pg, stmts[i].sql, stmts[i].nparams, NULL, stmts[i].params, NULL,
                                 NULL, 0);
    sent =
        sent && PQsendQueryParams(pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) && PQpipelineSync(pg);
    if (!sent) {
        PQexitPipelineMode(pg);
        return lost(c, err);
    }

    /* Read: BEGIN, prelude, each statement, COMMIT, then the sync marker.
     * Each query's results end with a NULL from PQgetResult; idx counts them. */
    db_status_t status = DB_OK;
    size_t idx = 0;
    for (;;) {
        PGresult *r = PQgetResult(pg);
        if (!r) {
            if (PQstatus(pg) != CONNECTION_OK || ++idx > nstmts + 3) {
                status = DB_UNAVAILABLE;
                break;
            }
            continue;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            break;
        }
        bool is_stmt = idx >= 2 && idx < 2 + nstmts;
        if (st == PGRES_FATAL_ERROR) {
            if (status == DB_OK) {
                db_error_from_result(r, err);
                err->failed_stmt = is_stmt ? (int)(idx - 2) : -1;
                status = DB_SQL_ERROR;
            }
            PQclear(r);
        } else if (is_stmt && status == DB_OK && !results[idx - 2]) {
            results[idx - 2] = r;
        } else {
            PQclear(r);
        }
    }
    if (status == DB_UNAVAILABLE || PQstatus(pg) != CONNECTION_OK) {
        for (size_t i = 0; i < nstmts; i++) {
            PQclear(results[i]);
            results[i] = NULL;
        }
        return lost(c, err);
    }
    PQexitPipelineMode(pg);
    if (status != DB_OK) {
        for (size_t i = 0; i < nstmts; i++) {
            PQclear(results[i]);
            results[i] = NULL;
        }
    }
    /* An error inside the explicit transaction leaves it aborted: roll back so
     * the connection is clean for the next request. */
    if (PQtransactionStatus(pg) != PQTRANS_IDLE) {
        db_exec_ignore(pg, "ROLLBACK");
        if (PQstatus(pg) != CONNECTION_OK)
            return lost(c, err);
    }
    if (status == DB_SQL_ERROR && strncmp(err->sqlstate, "08", 2) == 0)
        return lost(c, err);
    return status;
}

db_status_t db_run1(db_conn_t *c, const db_caller_t *who, const char *sql, int nparams,
                    const char *const *params, PGresult **res, db_error_t *err)
{
    db_stmt_t st = {sql, nparams, params};
    return db_run_as(c, who, &st, 1, res, err);
}

/* SQLSTATE (or class) to HTTP status, from PostgREST's Error.hs. Longest
 * prefix wins: full codes first, then two-character classes. */
static const struct {
    const char *code;
    int status;
} sqlstate_map[] = {
    {"23503", 409}, {"23505", 409}, {"25006", 405}, {"P0001", 400}, {"42883", 404}, {"42P01", 404},
    {"42P17", 500}, {"42501", 403}, {"40001", 409}, {"40P01", 409}, {"53400", 500}, {"57014", 504},
    {"PT", 0},      {"08", 503},    {"09", 500},    {"0L", 403},    {"0P", 403},    {"23", 400},
    {"25", 500},    {"28", 403},    {"2D", 500},    {"38", 500},    {"39", 500},    {"3B", 500},
    {"40", 500},    {"53", 503},    {"54", 500},    {"55", 500},    {"57", 500},    {"58", 500},
    {"F0", 500},    {"HV", 500},    {"P0", 500},    {"XX", 500},    {"42", 400},    {"22", 400},
};

/* "404" from "PT404": three digits 100..599, else 0. */
static int pt_status(const char *digits)
{
    int n = 0;
    for (int i = 0; i < 3; i++) {
        if (digits[i] < '0' || digits[i] > '9')
            return 0;
        n = n * 10 + (digits[i] - '0');
    }
    return n >= 100 && n <= 599 ? n : 0;
}

int db_sqlstate_http_status(const char *sqlstate, bool anon)
{
    if (!sqlstate || strlen(sqlstate) != 5)
        return 500;
    if (strcmp(sqlstate, "42501") == 0)
        return anon ? 401 : 403;
    if (strncmp(sqlstate, "PT", 2) == 0) {
        /* raise sqlstate 'PT404' picks the HTTP status itself */
        int n = pt_status(sqlstate + 2);
        return n ? n : 500;
    }
    for (size_t i = 0; i < CD_ARRAY_LEN(sqlstate_map); i++)
        if (strlen(sqlstate_map[i].code) == 5 && strcmp(sqlstate_map[i].code, sqlstate) == 0)
            return sqlstate_map[i].status;
    for (size_t i = 0; i < CD_ARRAY_LEN(sqlstate_map); i++)
        if (strlen(sqlstate_map[i].code) == 2 && strncmp(sqlstate_map[i].code, sqlstate, 2) == 0)
            return sqlstate_map[i].status;
    return 400;
}
