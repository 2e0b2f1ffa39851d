/*
 * SQL Server sources (FreeTDS db-lib). NOT integration-tested: no SQL
 * Server runs on our machines; the type mapping and the query building
 * (dbconn.c) are unit-tested, this file is compiled and reviewed only
 * (docs/connectors.md says so).
 *
 * SQL Server has no read-only session: the query runs inside a transaction
 * that is rolled back at the end (whatever it might have written is
 * undone), under SET LOCK_TIMEOUT and the statement timeout of the settings
 * (dbsettime); the docs ask for a login that can only read (db_datareader).
 * Rows are read with dbnextrow, one at a time, and written out as CSV;
 * date-times in ISO form via dbanydatecrack.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* clang-format off */
#include <sybfront.h>
#include <sybdb.h>
/* clang-format on */

#include "importer/dbconn.h"

#define TDS_VALUE_MAX (1024 * 1024)

static pthread_once_t tds_once = PTHREAD_ONCE_INIT;
static bool tds_ready;
static _Thread_local char tds_error[256];

static int tds_err_handler(DBPROCESS *p, int severity, int dberr, int oserr, char *dberrstr,
                           char *oserrstr)
{
    (void)p;
    (void)severity;
    (void)dberr;
    (void)oserr;
    (void)oserrstr;
    snprintf(tds_error, sizeof(tds_error), "%s", dberrstr ? dberrstr : "error");
    return INT_CANCEL;
}

static int tds_msg_handler(DBPROCESS *p, DBINT msgno, int state, int severity, char *msgtext,
                           char *srvname, char *proc, int line)
{
    (void)p;
    (void)state;
    (void)srvname;
    (void)proc;
    (void)line;
    (void)msgno;
    if (severity > 10)
        snprintf(tds_error, sizeof(tds_error), "%s", msgtext ? msgtext : "error");
    return 0;
}

static void tds_init(void)
{
    tds_ready = dbinit() == SUCCEED;
    if (tds_ready) {
        dberrhandle(tds_err_handler);
        dbmsghandle(tds_msg_handler);
    }
}

typedef struct ms_state {
    DBPROCESS *proc;
    int ncols;
    bool header_sent;
    char *value; /* TDS_VALUE_MAX + 1 */
} ms_state_t;

static void ms_fail(import_db_t *db, bool retryable, const char *what)
{
    import__db_fail(db, retryable, "the source database %s: %s", what,
                    tds_error[0] ? tds_error : "no answer");
}

static bool ms_cmd(import_db_t *db, DBPROCESS *p, const char *sql, const char *what)
{
    tds_error[0] = '\0';
    if (dbcmd(p, sql) != SUCCEED || dbsqlexec(p) != SUCCEED) {
        ms_fail(db, false, what);
        return false;
    }
    RETCODE rc;
    while ((rc = dbresults(p)) == SUCCEED)
        while (dbnextrow(p) != NO_MORE_ROWS)
            ;
    if (rc == FAIL) {
        ms_fail(db, false, what);
        return false;
    }
    return true;
}

/* One value as text: ISO date-times, true/false, else dbconvert's text. */
static long ms_text(DBPROCESS *p, int type, BYTE *data, DBINT len, char *out)
{
    if (type == SYBBIT)
        return snprintf(out, 8, "%s", data[0] ? "true" : "false");
    if (type == SYBDATETIME || type == SYBDATETIME4 || type == SYBMSDATE ||
        type == SYBMSDATETIME2) {
        DBDATEREC2 d;
        if (dbanydatecrack(p, &d, type, data) != SUCCEED)
            return -1;
        if (type == SYBMSDATE)
            return snprintf(out, 32, "%04d-%02d-%02d", d.dateyear, d.datemonth + 1, d.datedmonth);
        return snprintf(out, 48, "%04d-%02d-%02d %02d:%02d:%02d.%06d", d.dateyear, d.datemonth + 1,
                        d.datedmonth, d.datehour, d.dateminute, d.datesecond, d.datensecond / 1000);
    }
    DBINT n = dbconvert(p, type, data, len, SYBCHAR, (BYTE *)out, TDS_VALUE_MAX);
    if (n >= 0) {
        while (n > 0 && out[n - 1] == ' ' && type != SYBCHAR && type != SYBVARCHAR)
            n--; /* dbconvert pads numbers */
    }
    return n;
}

static bool ms_more(import_db_t *db, bool *eof)
{
    ms_state_t *st = db->impl;
    bool ok = true;
    if (!st->header_sent) {
        for (int i = 1; ok && i <= st->ncols; i++) {
            const char *name = dbcolname(st->proc, i);
            ok = imp_db_csv_field(&db->out, name ? name : "", name ? strlen(name) : 0,
                                  i == st->ncols);
        }
        st->header_sent = true;
        return ok;
    }
    tds_error[0] = '\0';
    STATUS rs = dbnextrow(st->proc);
    if (rs == NO_MORE_ROWS) {
        *eof = true;
        return true;
    }
    if (rs != REG_ROW) {
        ms_fail(db, rs == FAIL, "stopped sending rows");
        return false;
    }
    for (int i = 1; ok && i <= st->ncols; i++) {
        BYTE *data = dbdata(st->proc, i);
        DBINT len = dbdatlen(st->proc, i);
        long n = 0;
        if (data && len > 0)
            n = ms_text(st->proc, dbcoltype(st->proc, i), data, len, st->value);
        if (n < 0) {
            import__db_fail(db, false, "column %d of the source cannot be read as text", i);
            return false;
        }
        ok = imp_db_csv_field(&db->out, st->value, (size_t)n, i == st->ncols);
    }
    if (!ok)
        import__db_fail(db, false, "a row of the source is too large");
    return ok;
}

static void ms_close(import_db_t *db)
{
    ms_state_t *st = db->impl;
    if (st && st->proc)
        dbclose(st->proc); /* the transaction was never committed: rolled back */
    if (st)
        free(st->value);
    free(st);
    db->impl = NULL;
}

static bool ms_connect(import_db_t *db, ms_state_t *st)
{
    const import_db_target_t *t = &db->target;
    LOGINREC *login = dblogin();
    if (!login) {
        import__db_fail(db, true, "out of memory");
        return false;
    }
    DBSETLUSER(login, t->user);
    DBSETLPWD(login, t->password);
    DBSETLAPP(login, "campaignd-import");
    DBSETLCHARSET(login, "UTF-8");
    dbsetlogintime((int)t->connect_timeout_s);
    dbsettime((int)t->statement_timeout_s);
    char server[128];
    snprintf(server, sizeof(server), "%s:%d", t->address, t->port);
    tds_error[0] = '\0';
    st->proc = dbopen(login, server);
    dbloginfree(login);
    if (!st->proc) {
        import__db_fail(db, true, "cannot connect to the source database %s:%d: %s", t->host,
                        t->port, tds_error[0] ? tds_error : "no answer");
        return false;
    }
    if (t->database[0] && dbuse(st->proc, t->database) != SUCCEED) {
        ms_fail(db, false, "refused the database");
        return false;
    }
    return true;
}

bool import__db_mssql_start(import_db_t *db, const char *sql)
{
    pthread_once(&tds_once, tds_init);
    if (!tds_ready) {
        import__db_fail(db, false, "the SQL Server client library cannot start");
        return false;
    }
    ms_state_t *st = calloc(1, sizeof(*st));
    if (st)
        st->value = malloc(TDS_VALUE_MAX + 1);
    if (!st || !st->value) {
        free(st);
        import__db_fail(db, true, "out of memory");
        return false;
    }
    db->impl = st;
    db->close = ms_close;
    db->more = ms_more;
    if (!ms_connect(db, st) ||
        !ms_cmd(db, st->proc, "set xact_abort on; set lock_timeout 60000; begin transaction",
                "refused the session settings"))
        return false;
    tds_error[0] = '\0';
    if (dbcmd(st->proc, sql) != SUCCEED || dbsqlexec(st->proc) != SUCCEED ||
        dbresults(st->proc) != SUCCEED) {
        ms_fail(db, false, "refused the query");
        return false;
    }
    st->ncols = dbnumcols(st->proc);
    if (st->ncols <= 0 || !import__db_set_columns(db, (size_t)st->ncols)) {
        import__db_fail(db, false, "the query returns no columns");
        return false;
    }
    for (int i = 1; i <= st->ncols; i++)
        db->types[i - 1] = imp_db_mssql_type(dbcoltype(st->proc, i));
    return true;
}
