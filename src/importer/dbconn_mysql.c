/*
 * MySQL and MariaDB sources (libmariadb). The session is read-only (SET
 * SESSION TRANSACTION READ ONLY, then a READ ONLY transaction that is never
 * committed), utf8mb4, time_zone UTC, with the statement timeout of the
 * settings (max_statement_time on MariaDB, max_execution_time on MySQL) and
 * connect/read timeouts. mysql_real_query runs one statement (the client
 * never enables multi-statements); mysql_use_result streams the rows, which
 * are written out as CSV one at a time. TIMESTAMP values (stored in UTC)
 * get a "+00" so the pipeline reads them as such; DATETIME has no zone and
 * is read in the schedule's time zone.
 */
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "importer/dbconn.h"

typedef struct my_state {
    MYSQL *conn;
    MYSQL_RES *res;
    unsigned int nfields;
    bool *utc; /* TIMESTAMP columns */
    bool header_sent;
} my_state_t;

static void my_fail(import_db_t *db, MYSQL *conn, const char *what)
{
    unsigned int e = mysql_errno(conn);
    /* 2006 gone away, 2013 lost, 1205 lock wait, 1213 deadlock, 1969/3024 timeout */
    bool transient = e == 2006 || e == 2013 || e == 1205 || e == 1213 || e == 2002 || e == 2003;
    import__db_fail(db, transient, "the source database %s: %s", what, mysql_error(conn));
}

static bool my_cmd(import_db_t *db, MYSQL *conn, const char *sql, const char *what)
{
    if (mysql_real_query(conn, sql, strlen(sql)) != 0) {
        my_fail(db, conn, what);
        return false;
    }
    MYSQL_RES *r = mysql_store_result(conn);
    mysql_free_result(r);
    return true;
}

static bool my_connect(import_db_t *db, my_state_t *st)
{
    const import_db_target_t *t = &db->target;
    st->conn = mysql_init(NULL);
    if (!st->conn) {
        import__db_fail(db, true, "out of memory");
        return false;
    }
    unsigned int ct = (unsigned int)t->connect_timeout_s;
    unsigned int rt = (unsigned int)t->statement_timeout_s;
    mysql_options(st->conn, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
    mysql_options(st->conn, MYSQL_OPT_READ_TIMEOUT, &rt);
    mysql_options(st->conn, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_options(st->conn, MYSQL_OPT_LOCAL_INFILE, &(unsigned int){0});
    if (strcmp(t->sslmode, "require") == 0 || strcmp(t->sslmode, "verify-full") == 0) {
        my_bool on = 1;
        mysql_options(st->conn, MYSQL_OPT_SSL_ENFORCE, &on);
        if (strcmp(t->sslmode, "verify-full") == 0)
            mysql_options(st->conn, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &on);
    }
    if (!mysql_real_connect(st->conn, t->address, t->user, t->password,
                            t->database[0] ? t->database : NULL, (unsigned int)t->port, NULL, 0)) {
        unsigned int e = mysql_errno(st->conn);
        import__db_fail(db, e != 1045 && e != 1044 && e != 1049,
                        "cannot connect to the source database %s:%d: %s", t->host, t->port,
                        mysql_error(st->conn));
        return false;
    }
    return true;
}

static bool my_session(import_db_t *db, MYSQL *conn)
{
    char sql[128];
    if (!my_cmd(db, conn, "set session transaction read only", "refused a read-only session") ||
        !my_cmd(db, conn, "set time_zone = '+00:00'", "refused the session settings") ||
        !my_cmd(db, conn, "set session sql_mode = 'STRICT_ALL_TABLES'",
                "refused the session settings"))
        return false;
    /* MariaDB: seconds; MySQL: milliseconds. One of the two exists. */
    snprintf(sql, sizeof(sql), "set session max_statement_time = %ld",
             db->target.statement_timeout_s);
    if (mysql_real_query(conn, sql, strlen(sql)) != 0) {
        snprintf(sql, sizeof(sql), "set session max_execution_time = %ld",
                 db->target.statement_timeout_s * 1000);
        if (!my_cmd(db, conn, sql, "refused the statement timeout"))
            return false;
    }
    return my_cmd(db, conn, "start transaction read only", "refused a read-only transaction");
}

static bool my_more(import_db_t *db, bool *eof)
{
    my_state_t *st = db->impl;
    bool ok = true;
    if (!st->header_sent) {
        MYSQL_FIELD *f = mysql_fetch_fields(st->res);
        for (unsigned int i = 0; ok && i < st->nfields; i++)
            ok = imp_db_csv_field(&db->out, f[i].name, strlen(f[i].name), i + 1 == st->nfields);
        st->header_sent = true;
        if (!ok)
            import__db_fail(db, false, "the column names are too long");
        return ok;
    }
    MYSQL_ROW row = mysql_fetch_row(st->res);
    if (!row) {
        if (mysql_errno(st->conn)) {
            my_fail(db, st->conn, "stopped sending rows");
            return false;
        }
        *eof = true;
        return true;
    }
    unsigned long *len = mysql_fetch_lengths(st->res);
    for (unsigned int i = 0; ok && i < st->nfields; i++) {
        bool last = i + 1 == st->nfields;
        if (row[i] && st->utc[i] && len[i]) {
            ok = cd_buf_add(&db->out, "\"", 1) && cd_buf_add(&db->out, row[i], len[i]) &&
                 cd_buf_adds(&db->out, last ? "+00\"\r\n" : "+00\",");
        } else {
            ok = imp_db_csv_field(&db->out, row[i] ? row[i] : "", row[i] ? len[i] : 0, last);
        }
    }
    if (!ok)
        import__db_fail(db, false, "a row of the source is too large");
    return ok;
}

static void my_close(import_db_t *db)
{
    my_state_t *st = db->impl;
    if (st) {
        if (st->res)
            mysql_free_result(st->res); /* reads what is left of the result */
        if (st->conn)
            mysql_close(st->conn); /* the transaction was never committed */
        free(st->utc);
    }
    free(st);
    db->impl = NULL;
}

bool import__db_mysql_start(import_db_t *db, const char *sql)
{
    my_state_t *st = calloc(1, sizeof(*st));
    if (!st) {
        import__db_fail(db, true, "out of memory");
        return false;
    }
    db->impl = st;
    db->close = my_close;
    db->more = my_more;
    if (!my_connect(db, st) || !my_session(db, st->conn))
        return false;
    if (mysql_real_query(st->conn, sql, strlen(sql)) != 0) {
        my_fail(db, st->conn, "refused the query");
        return false;
    }
    st->res = mysql_use_result(st->conn);
    if (!st->res) {
        my_fail(db, st->conn, "returned no rows for the query");
        return false;
    }
    st->nfields = mysql_num_fields(st->res);
    st->utc = calloc(st->nfields ? st->nfields : 1, sizeof(*st->utc));
    if (!st->utc || !import__db_set_columns(db, st->nfields)) {
        import__db_fail(db, true, "out of memory");
        return false;
    }
    MYSQL_FIELD *f = mysql_fetch_fields(st->res);
    for (unsigned int i = 0; i < st->nfields; i++) {
        db->types[i] = imp_db_mysql_type((int)f[i].type, f[i].length, f[i].flags);
        st->utc[i] = f[i].type == MYSQL_TYPE_TIMESTAMP;
    }
    return true;
}
