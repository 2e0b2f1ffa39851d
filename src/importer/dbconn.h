/*
 * Database connectors (issue 11): postgres, redshift, mysql, mssql and
 * custom_database sources. Each connector reads the source's rows as a
 * stream and hands them to the file pipeline as CSV text (an fopencookie
 * stream the CSV reader of parse.h reads: UTF-8, comma, a header row), so
 * mapping, cleaning, staging and the swap or upsert are the ones files use.
 *
 *   - PostgreSQL (libpq): COPY (query) TO STDOUT (FORMAT csv, HEADER), whose
 *     CSV goes to the reader as it arrives; Redshift, which has no COPY TO
 *     STDOUT, reads through a cursor (FETCH in batches);
 *   - MySQL / MariaDB (libmariadb): mysql_use_result, one row at a time;
 *   - SQL Server (FreeTDS db-lib): dbnextrow, one row at a time.
 * Nothing holds a whole result set. Sessions are read-only where the
 * protocol allows it and run in a transaction that is never committed; the
 * host passes the SSRF rules of URL sources; credentials come from
 * public.get_data_source_credentials(). docs/connectors.md describes it.
 */
#ifndef CD_IMPORTER_DBCONN_H
#define CD_IMPORTER_DBCONN_H

#include <jansson.h>
#include <stdio.h>

#include "core/buf.h"
#include "importer/clean.h"
#include "importer/importer_internal.h"
#include "importer/parse.h"

/* Rows a preview (test connection) reads from a database. */
#define IMPORT_DB_PREVIEW_ROWS 200
/* Rows a Redshift cursor fetches at once. */
#define IMPORT_DB_FETCH_ROWS 10000

typedef enum imp_db_dialect {
    IMP_DB_POSTGRES = 0,
    IMP_DB_MYSQL,
    IMP_DB_MSSQL,
} imp_db_dialect_t;

/* What to read: a table (schema, table, optional columns) or a query, with
 * the incremental column and the last value read (both may be NULL). */
typedef struct imp_db_select {
    imp_db_dialect_t dialect;
    const char *schema;
    const char *table;
    const json_t *columns; /* array of column names, or NULL for all */
    const char *query;     /* instead of schema/table */
    const char *inc_column;
    const char *last_value; /* rows with inc_column >= last_value (ties re-read) */
    long limit;             /* 0: no limit */
} imp_db_select_t;

/* ------------------------------------------------------------ pure parts */

/* Whether a data source type is one of the database connectors. */
bool import__is_database(const char *type);

/* Appends name quoted as the dialect's identifier ("x", `x`, [x]) after
 * checking it: 1–63 bytes (128 for SQL Server), no control character.
 * False (err filled) otherwise. */
CD_MUSTCHECK bool imp_db_quote_ident(imp_db_dialect_t d, const char *name, cd_buf_t *out, char *err,
                                     size_t errlen);
/* Appends s as the dialect's string literal ('' doubled; MySQL also
 * doubles backslashes). False for a NUL-free check failure or no room. */
CD_MUSTCHECK bool imp_db_quote_literal(imp_db_dialect_t d, const char *s, cd_buf_t *out);

/* Builds the SELECT a sync runs from sel. The table form selects the
 * columns (or *) of schema.table; the query form wraps the query as a
 * derived table (one statement: a query with a ';' inside is refused, a
 * trailing one is dropped). With inc_column, rows are ordered by it and,
 * with last_value, limited to inc_column >= last_value. False with a
 * sentence in err for a bad config. */
CD_MUSTCHECK bool imp_db_build_select(const imp_db_select_t *sel, cd_buf_t *out, char *err,
                                      size_t errlen);

/* Type mapping of each driver's column types to the import's types. */
imp_type_t imp_db_pg_type(unsigned int oid);
imp_type_t imp_db_mysql_type(int type, unsigned long length, unsigned int flags);
imp_type_t imp_db_mssql_type(int type);

/* A MySQL literal for a last value the pipeline saw: a date-time ending in
 * "+00" (a TIMESTAMP column read in UTC) loses the suffix. Writes to out. */
void imp_db_mysql_last_value(const char *v, char *out, size_t outlen);

/* Appends one CSV field (always quoted, quotes doubled) and a separator:
 * ',' or, when last, "\r\n". */
CD_MUSTCHECK bool imp_db_csv_field(cd_buf_t *out, const char *v, size_t len, bool last);

/* ------------------------------------------------------------ connections */

typedef struct import_db import_db_t;

/* The parts of a connection the drivers fill; see dbconn.c. */
typedef struct import_db_target {
    char host[256];   /* as configured (TLS name) */
    char address[64]; /* the checked numeric address to connect to */
    int port;
    char database[256];
    char user[256];
    char password[512];
    char sslmode[32];
    long connect_timeout_s;
    long statement_timeout_s;
    /* seconds an idle session may be kept for this source's next sync (0:
     * never; dbconn_keep.h), and that source */
    long keep_s;
    char source_id[40];
} import_db_target_t;

struct import_db {
    imp_db_dialect_t dialect;
    bool redshift;
    import_db_target_t target;
    /* driver state and its hooks */
    void *impl;
    /* Produces more CSV into out (at least one byte) or sets *eof; false on
     * an error (err filled). */
    bool (*more)(import_db_t *db, bool *eof);
    void (*close)(import_db_t *db);
    /* CSV not yet handed to the reader */
    cd_buf_t out;
    size_t out_pos;
    bool eof;
    /* the result's columns */
    size_t ncols;
    imp_type_t *types;
    /* the incremental column (owned) and its position in the result, or -1 */
    char *inc_column;
    long inc_index;
    char *max_value;
    bool failed;
    bool retryable;
    char err[512];
};

/* Opens a database source: checks the config, reads the credentials (on c,
 * as service_role), resolves and checks the host, connects read-only and
 * starts the query (last_value: data_sources.last_sync_value or NULL; a
 * preview reads IMPORT_DB_PREVIEW_ROWS rows). On failure returns NULL with
 * a sentence in err and *retryable set. */
import_db_t *import__db_open(const app_t *app, db_conn_t *c, const import_source_t *src,
                             const char *last_value, bool head_only, char *err, size_t errlen,
                             bool *retryable);

/* A CSV reader over the rows (the stream is the db's; close the reader
 * before the db). NULL with err filled on failure. */
imp_reader_t *import__db_reader(import_db_t *db, imp_error_t *err);

/* Notes a row the pipeline read: keeps the incremental column's value (the
 * last non-empty one: rows come ordered by it). */
void import__db_note_row(import_db_t *db, const imp_row_t *row);

/* The types of the result's columns, for a source without column_config:
 * sets each proposed column's "type" in proposed (imp_propose_config's). */
void import__db_type_proposal(const import_db_t *db, json_t *proposed);

/* The incremental column of src, or NULL. */
const char *import__db_inc_column(const import_source_t *src);

void import__db_close(import_db_t *db);

/* Closes the source sessions kept for the next sync (dbconn_keep.c) with the
 * driver's close; returns how many. For importer_close_kept (shutdown). */
int import__db_close_kept(void);

/* Driver entry points (dbconn_pg.c, dbconn_mysql.c, dbconn_mssql.c): start
 * the query sql on db->target. Fill db->err on failure. */
CD_MUSTCHECK bool import__db_pg_start(import_db_t *db, const char *sql);
CD_MUSTCHECK bool import__db_mysql_start(import_db_t *db, const char *sql);
CD_MUSTCHECK bool import__db_mssql_start(import_db_t *db, const char *sql);

/* For the drivers: sets the result's column types; fails the db when out of
 * memory. */
CD_MUSTCHECK bool import__db_set_columns(import_db_t *db, size_t n);
void import__db_fail(import_db_t *db, bool retryable, const char *fmt, ...) CD_PRINTF(3, 4);

#endif
