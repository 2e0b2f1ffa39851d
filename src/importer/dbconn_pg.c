/*
 * PostgreSQL and Redshift sources (libpq). The session is read-only
 * (default_transaction_read_only, and a READ ONLY transaction that is never
 * committed), with the connect and statement timeouts of the settings. The
 * query is prepared first (one statement only: a second one cannot be
 * smuggled in) to learn the result's column types; then
 *   - PostgreSQL: COPY (query) TO STDOUT (FORMAT csv, HEADER): libpq hands
 *     over one CSV row at a time, passed on as it comes;
 *   - Redshift (no COPY TO STDOUT): DECLARE a cursor and FETCH
 *     IMPORT_DB_FETCH_ROWS rows at a time, written out as CSV.
 * A PostgreSQL session whose COPY ran to its end is kept for the source's
 * next sync (IMPORT_DB_KEEP_SECONDS, dbconn_keep.h): rolled back and
 * DISCARD ALL first (settings, advisory locks, prepared statements of the
 * run are gone), with the source's idle_session_timeout as the server-side
 * bound; the next run sets the read-only session up again.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "importer/dbconn.h"
#include "importer/dbconn_keep.h"

/* idle_session_timeout exists from PostgreSQL 14 on */
#define PG_KEEP_MIN_VERSION 140000

typedef struct pg_state {
    PGconn *conn;
    bool header_sent; /* cursor mode */
    bool done;
    bool copy_ended; /* the COPY's last row and its result were read */
} pg_state_t;

static long long keep_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void keep_finish(void *conn)
{
    PQfinish(conn);
}

int import__db_close_kept(void)
{
    return imp_db_keep_clear(keep_finish);
}

static bool keep_wanted(const import_db_t *db)
{
    return db->target.keep_s > 0 && !db->redshift && db->target.source_id[0];
}

static void pg_fail(import_db_t *db, PGconn *conn, PGresult *res, const char *what)
{
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!msg)
        msg = PQerrorMessage(conn);
    bool lost = PQstatus(conn) != CONNECTION_OK;
    bool transient =
        lost || (state && (strncmp(state, "40", 2) == 0 || strncmp(state, "53", 2) == 0 ||
                           strcmp(state, "57014") == 0));
    char clean[300];
    snprintf(clean, sizeof(clean), "%s", msg && *msg ? msg : "no answer");
    size_t n = strlen(clean);
    while (n && (clean[n - 1] == '\n' || clean[n - 1] == ' '))
        clean[--n] = '\0';
    import__db_fail(db, transient, "the source database %s: %s", what, clean);
}

static bool pg_cmd(import_db_t *db, PGconn *conn, const char *sql, const char *what)
{
    PGresult *res = PQexec(conn, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        pg_fail(db, conn, res, what);
    PQclear(res);
    return ok;
}

static PGconn *pg_connect(import_db_t *db)
{
    const import_db_target_t *t = &db->target;
    char port[16], timeout[16];
    snprintf(port, sizeof(port), "%d", t->port);
    snprintf(timeout, sizeof(timeout), "%ld", t->connect_timeout_s);
    const char *keys[] = {"host",
                          "hostaddr",
                          "port",
                          "dbname",
                          "user",
                          "password",
                          "sslmode",
                          "connect_timeout",
                          "application_name",
                          "client_encoding",
                          NULL};
    const char *vals[] = {t->host,
                          t->address,
                          port,
                          t->database[0] ? t->database : NULL,
                          t->user[0] ? t->user : NULL,
                          t->password[0] ? t->password : NULL,
                          t->sslmode[0] ? t->sslmode : "prefer",
                          timeout,
                          "campaignd-import",
                          "UTF8",
                          NULL};
    /* expand_dbname = 0: a database name is a name, never a conninfo string */
    PGconn *conn = PQconnectdbParams(keys, vals, 0);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        const char *m = conn ? PQerrorMessage(conn) : "out of memory";
        bool auth = m && (strstr(m, "password") || strstr(m, "authentication"));
        char clean[300];
        snprintf(clean, sizeof(clean), "%s", m);
        clean[strcspn(clean, "\n")] = '\0';
        import__db_fail(db, !auth, "cannot connect to the source database %s:%d: %s", t->host,
                        t->port, clean);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* Read-only session and transaction, timeouts, ISO dates in UTC. */
static bool pg_session(import_db_t *db, PGconn *conn)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "set default_transaction_read_only = on; set statement_timeout = %ld; "
             "set datestyle = 'ISO, YMD'; set timezone = 'UTC'; set extra_float_digits = 3",
             db->target.statement_timeout_s * 1000);
    return pg_cmd(db, conn, sql, "refused the session settings") &&
           pg_cmd(db, conn, "begin transaction isolation level repeatable read read only",
                  "refused a read-only transaction");
}

/* Prepares sql (one statement) and records its result's column types. */
static bool pg_describe(import_db_t *db, PGconn *conn, const char *sql)
{
    PGresult *res = PQprepare(conn, "", sql, 0, NULL);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        pg_fail(db, conn, res, "refused the query");
    PQclear(res);
    if (!ok)
        return false;
    res = PQdescribePrepared(conn, "");
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        pg_fail(db, conn, res, "cannot describe the query");
    int n = ok ? PQnfields(res) : 0;
    if (ok && n == 0) {
        import__db_fail(db, false, "the query returns no columns");
        ok = false;
    }
    if (ok && import__db_set_columns(db, (size_t)n))
        for (int i = 0; i < n; i++)
            db->types[i] = imp_db_pg_type(PQftype(res, i));
    PQclear(res);
    return ok && !db->failed;
}

/* COPY: the next CSV row (libpq returns whole rows), or the end. */
static bool pg_more_copy(import_db_t *db, bool *eof)
{
    pg_state_t *st = db->impl;
    char *buf = NULL;
    int n = PQgetCopyData(st->conn, &buf, 0);
    if (n > 0) {
        bool ok = cd_buf_add(&db->out, buf, (size_t)n);
        PQfreemem(buf);
        if (!ok)
            import__db_fail(db, false, "a row of the source is too large");
        return ok;
    }
    if (n == -2) {
        pg_fail(db, st->conn, NULL, "stopped sending rows");
        return false;
    }
    PGresult *res = PQgetResult(st->conn);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        pg_fail(db, st->conn, res, "stopped the query");
    PQclear(res);
    while ((res = PQgetResult(st->conn)) != NULL)
        PQclear(res);
    *eof = ok;
    st->copy_ended = ok;
    return ok;
}

/* Cursor (Redshift): the header, then a batch of rows as CSV. */
static bool pg_more_cursor(import_db_t *db, bool *eof)
{
    pg_state_t *st = db->impl;
    char sql[64];
    snprintf(sql, sizeof(sql), "fetch %d from campaignd_import", IMPORT_DB_FETCH_ROWS);
    PGresult *res = PQexec(st->conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pg_fail(db, st->conn, res, "stopped sending rows");
        PQclear(res);
        return false;
    }
    int nf = PQnfields(res), nt = PQntuples(res);
    bool ok = true;
    for (int f = 0; ok && !st->header_sent && f < nf; f++)
        ok = imp_db_csv_field(&db->out, PQfname(res, f), strlen(PQfname(res, f)), f == nf - 1);
    st->header_sent = true;
    for (int t = 0; ok && t < nt; t++)
        for (int f = 0; ok && f < nf; f++)
            ok = imp_db_csv_field(&db->out, PQgetvalue(res, t, f), (size_t)PQgetlength(res, t, f),
                                  f == nf - 1);
    PQclear(res);
    if (!ok) {
        import__db_fail(db, false, "a batch of rows of the source is too large");
        return false;
    }
    if (nt == 0)
        *eof = true;
    return true;
}

/* Ends the run's transaction and resets the session so that it can be kept:
 * nothing of the run (settings, prepared statements, advisory locks a query
 * took) survives into the next one. */
static bool pg_reset_for_keep(PGconn *conn, long keep_s)
{
    if (PQstatus(conn) != CONNECTION_OK || PQserverVersion(conn) < PG_KEEP_MIN_VERSION ||
        PQtransactionStatus(conn) != PQTRANS_INTRANS)
        return false;
    char idle[96];
    snprintf(idle, sizeof(idle), "set idle_session_timeout = %ld", keep_s * 1000 + 1000);
    PGresult *res = PQexec(conn, "rollback");
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    res = ok ? PQexec(conn, "discard all") : NULL; /* alone: not in a transaction block */
    ok = ok && PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    res = ok ? PQexec(conn, idle) : NULL;
    ok = ok && PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    return ok && PQtransactionStatus(conn) == PQTRANS_IDLE;
}

static void pg_close(import_db_t *db)
{
    pg_state_t *st = db->impl;
    if (st && st->conn && st->copy_ended && keep_wanted(db) &&
        pg_reset_for_keep(st->conn, db->target.keep_s)) {
        imp_db_keep_key_t key;
        imp_db_keep_key(&db->target, key);
        imp_db_keep_put(db->target.source_id, key, st->conn, keep_now_ms(), keep_finish);
        st->conn = NULL;
    }
    if (st)
        PQfinish(st->conn); /* the read-only transaction ends unfinished: rolled back */
    free(st);
    db->impl = NULL;
}

/* The session kept for this source and target, when it is still there. */
static PGconn *pg_kept(import_db_t *db)
{
    if (!keep_wanted(db))
        return NULL;
    imp_db_keep_key_t key;
    imp_db_keep_key(&db->target, key);
    PGconn *conn =
        imp_db_keep_take(db->target.source_id, key, db->target.keep_s, keep_now_ms(), keep_finish);
    /* PQconsumeInput reads what came meanwhile: a session the source ended
     * (idle_session_timeout, a restart) shows up as broken here */
    if (conn && PQconsumeInput(conn) == 1 && PQstatus(conn) == CONNECTION_OK &&
        PQtransactionStatus(conn) == PQTRANS_IDLE)
        return conn;
    PQfinish(conn);
    return NULL;
}

bool import__db_pg_start(import_db_t *db, const char *sql)
{
    pg_state_t *st = calloc(1, sizeof(*st));
    if (!st) {
        import__db_fail(db, true, "out of memory");
        return false;
    }
    db->impl = st;
    db->close = pg_close;
    st->conn = pg_kept(db);
    if (st->conn && !pg_session(db, st->conn)) {
        /* the kept session went away between the check and now: a new one */
        PQfinish(st->conn);
        st->conn = NULL;
        db->failed = false;
        db->err[0] = '\0';
    }
    if (!st->conn && (!(st->conn = pg_connect(db)) || !pg_session(db, st->conn)))
        return false;
    if (!pg_describe(db, st->conn, sql))
        return false;
    cd_buf_t q;
    cd_buf_init(&q, strlen(sql) + 256);
    bool ok = db->redshift
                  ? cd_buf_printf(&q, "declare campaignd_import cursor for %s", sql)
                  : cd_buf_printf(&q, "copy (%s) to stdout with (format csv, header true)", sql);
    /* PQexecParams runs exactly one statement */
    PGresult *res =
        ok ? PQexecParams(st->conn, cd_buf_str(&q), 0, NULL, NULL, NULL, NULL, 0) : NULL;
    cd_buf_free(&q);
    ExecStatusType want = db->redshift ? PGRES_COMMAND_OK : PGRES_COPY_OUT;
    ok = res && PQresultStatus(res) == want;
    if (!ok)
        pg_fail(db, st->conn, res, "refused the query");
    PQclear(res);
    db->more = db->redshift ? pg_more_cursor : pg_more_copy;
    return ok;
}
