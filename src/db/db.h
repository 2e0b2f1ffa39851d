/*
 * Database access. Each HTTP worker thread owns one connection to PostgreSQL
 * (as the `authenticator` login role), made lazily and remade with back-off
 * after a failure. A request runs as one pipelined round trip:
 *   BEGIN; set role + request.jwt.claims + request.* settings; statements; COMMIT
 * so row-level security decides, under the caller's role, what it may see.
 */
#ifndef CD_DB_H
#define CD_DB_H

#include <libpq-fe.h>

#include "core/common.h"

typedef struct db_conn db_conn_t;

typedef enum {
    DB_OK = 0,
    DB_SQL_ERROR,   /* PostgreSQL refused a statement: see db_error_t */
    DB_UNAVAILABLE, /* no connection, or it broke: answer 503 */
} db_status_t;

typedef struct db_error {
    char sqlstate[6];
    char message[512];
    char detail[512];
    char hint[512];
    int failed_stmt; /* index of the statement that failed, -1 for BEGIN/prelude/COMMIT */
} db_error_t;

/* Who is asking: becomes SET LOCAL ROLE and the request.* settings. */
typedef struct db_caller {
    const char *role;         /* "anon", "authenticated" (becomes app_admin, app_user,
                               * app_viewer or anon: auth.db_role_for) or "service_role" */
    const char *claims_json;  /* the verified JWT payload, with "role" in it */
    const char *method;       /* request.method */
    const char *path;         /* request.path */
    const char *headers_json; /* request.headers: lower-cased names, with x-real-ip */
    bool read_only;           /* BEGIN READ ONLY */
    bool with_secrets;        /* this transaction may use the encryption key */
} db_caller_t;

typedef struct db_stmt {
    const char *sql;
    int nparams;
    const char *const *params; /* text values; NULL entries are SQL NULL */
} db_stmt_t;

/* Sets what worker connections use: the libpq connection string of the
 * authenticator role, the statement timeout (ms) and the encryption key that
 * with_secrets transactions may use (each connection receives it once, at
 * connect time, never in a statement: see migration 023). Call once before
 * serving. */
void db_configure(const char *conninfo, long statement_timeout_ms, const char *encryption_key);

/* The calling thread's connection, connecting if needed: also when the
 * server closed it while it sat between transactions (a restart, a terminated
 * backend), so the first request after a database restart is answered. NULL
 * when the database is unreachable (then db_retry_after() says when to try
 * again). */
db_conn_t *db_thread_conn(void);
/* Seconds until this thread tries to reconnect (at least 1). */
int db_retry_after(void);
/* Closes the calling thread's connection (at thread exit or in tests). */
void db_thread_close(void);
/* The raw libpq connection, for callers that need more than db_run_as. */
PGconn *db_pg(db_conn_t *c);

/* Runs the statements in one transaction as `who`, pipelined in one round trip.
 * On DB_OK, results[i] holds the result of stmts[i] (the caller PQclear()s
 * each). On DB_SQL_ERROR nothing was committed, err says why, and results are
 * NULL. On DB_UNAVAILABLE the connection was dropped for a later reconnect. */
CD_MUSTCHECK db_status_t db_run_as(db_conn_t *c, const db_caller_t *who, const db_stmt_t *stmts,
                                   size_t nstmts, PGresult **results, db_error_t *err);

/* Runs the statements in one pipelined transaction like db_run_as, but
 * without the per-transaction prelude: the connection's session was given
 * who's role and settings once (at session level, again after a reconnect).
 * Only for a connection of its own (db_conn_new) that runs nothing but one
 * trusted internal writer's statements (the send engine's, sending/engine.c),
 * where the prelude's set_config calls per transaction are pure overhead;
 * never for one that serves several callers. */
CD_MUSTCHECK db_status_t db_run_session(db_conn_t *c, const db_caller_t *who,
                                        const db_stmt_t *stmts, size_t nstmts, PGresult **results,
                                        db_error_t *err);

/* db_run_session in two halves, so that the caller works while the server
 * runs the transaction (the send engine hands a group of messages over while
 * the step of the next group commits). db_session_send sends the whole
 * pipelined transaction and returns at once with *pending set (DB_OK), or
 * fails like db_run_session (nothing pending then). db_session_finish reads
 * the results of *pending and frees it, answering what db_run_session would
 * have. Until then: nothing else may run on c, and stmts (their SQL and the
 * array itself) must stay valid; the parameter values are copied when sent.
 * Every send that returned DB_OK must be finished. */
typedef struct db_pending db_pending_t;
CD_MUSTCHECK db_status_t db_session_send(db_conn_t *c, const db_caller_t *who,
                                         const db_stmt_t *stmts, size_t nstmts,
                                         db_pending_t **pending, db_error_t *err);
CD_MUSTCHECK db_status_t db_session_finish(db_pending_t *pending, PGresult **results,
                                           db_error_t *err);

/* Convenience for one statement: returns its result in *res. */
CD_MUSTCHECK db_status_t db_run1(db_conn_t *c, const db_caller_t *who, const char *sql, int nparams,
                                 const char *const *params, PGresult **res, db_error_t *err);

/* One transaction of a batch (db_batch_send): who runs it, its statements,
 * and, after db_batch_finish, its outcome. results has room for nstmts. */
typedef struct db_txn {
    const db_caller_t *who;
    const db_stmt_t *stmts;
    size_t nstmts;
    PGresult **results; /* on DB_OK, the caller PQclear()s each */
    db_status_t status;
    db_error_t err;
} db_txn_t;

typedef struct db_batch db_batch_t;

/* Sends n independent read-only transactions in one pipeline, one round trip
 * for all: the statements new to the connection's cache are prepared first,
 * then each transaction runs as its caller in its own implicit transaction
 * that ends at its own sync point, so one that fails (its status and err say
 * why) neither stops nor sees the others. Returns what db_batch_finish needs,
 * or NULL when nothing could be sent (every txns[i].status is then
 * DB_UNAVAILABLE). Sending on several connections before finishing any lets
 * the server work on them at once. */
db_batch_t *db_batch_send(db_conn_t *c, db_txn_t *txns, size_t n);
/* Reads the results of a sent batch into its transactions and frees it.
 * Returns DB_UNAVAILABLE when the connection broke (it is then closed; every
 * unfinished transaction is DB_UNAVAILABLE), else DB_OK. */
db_status_t db_batch_finish(db_batch_t *b);

/* A connection of its own, for a thread that needs more than its
 * db_thread_conn (the realtime feed's checking connections). NULL when out of
 * memory; connects lazily in db_conn_ready. */
db_conn_t *db_conn_new(void);
/* Connects c when it is not connected; false when the database is unreachable. */
bool db_conn_ready(db_conn_t *c);
/* Closes c when its server closed it while it sat between transactions (a
 * restart, an idle timeout: its goodbye waits unread, and libpq learns of it
 * only when the next statement fails), as db_thread_conn does for the
 * thread's. Its next use connects again. */
void db_conn_drop_if_closed(db_conn_t *c);
void db_conn_free(db_conn_t *c);

/* Runs plain SQL (no parameters, possibly several statements) on a connection
 * outside any caller context, e.g. for migrations. Returns false and fills err. */
CD_MUSTCHECK bool db_exec(PGconn *pg, const char *sql, db_error_t *err);
/* Runs best-effort SQL whose failure changes nothing for the caller (unlock,
 * rollback after an error): the outcome is deliberately ignored. */
void db_exec_ignore(PGconn *pg, const char *sql);
/* Fills err from a failed result. */
void db_error_from_result(const PGresult *res, db_error_t *err);

/* Runs the statements as `who` on the calling thread's connection: what
 * db_run_as does, for callers that do not hold a connection. Without one
 * (the database is unreachable) it returns DB_UNAVAILABLE with err->sqlstate
 * "08006" and every results[i] NULL. Every module's "run as caller" adapter
 * (api__run, storage__query, auth__run, rest's handlers) goes through here. */
CD_MUSTCHECK db_status_t db_run(const db_caller_t *who, const db_stmt_t *stmts, size_t nstmts,
                                PGresult **results, db_error_t *err);

/* What kind of failure a SQLSTATE is, for modules whose answers have their
 * own error codes (Storage's, GoTrue's): they choose the words, the table in
 * db_error.c chooses the meaning. */
typedef enum {
    DB_ERR_INTERNAL,     /* a server-side fault: log it, answer a generic 5xx */
    DB_ERR_UNAVAILABLE,  /* class 08: the connection broke (503) */
    DB_ERR_RESOURCES,    /* class 53: out of memory, disk or connections (503) */
    DB_ERR_TIMEOUT,      /* 57014: statement_timeout (504) */
    DB_ERR_PRIVILEGE,    /* 42501: permission denied or row-level security (401/403) */
    DB_ERR_ROLE,         /* classes 0L, 0P, 28: invalid grantor, role or authorization */
    DB_ERR_UNIQUE,       /* 23505: the row already exists (409) */
    DB_ERR_FOREIGN_KEY,  /* 23503: a referenced row is missing or still referenced (409) */
    DB_ERR_INVALID_DATA, /* classes 22 and 23: the input broke a type or a constraint (400) */
    DB_ERR_RAISED,       /* P0001 or PTnnn: a function raised it on purpose */
    DB_ERR_CONFLICT,     /* 40001, 40P01: serialization failure or deadlock (409) */
    DB_ERR_READ_ONLY,    /* 25006: a write in a read-only transaction (405) */
    DB_ERR_UNDEFINED,    /* 42883, 42P01: no such function or table (404) */
    DB_ERR_QUERY,        /* the rest of class 42, and unknown classes: a bad query (400) */
} db_err_kind_t;

/* How a SQLSTATE is answered over HTTP. */
typedef struct db_http_error {
    int status;         /* PostgREST's status for it; 5xx means "do not show the message" */
    db_err_kind_t kind; /* what went wrong */
} db_http_error_t;

/* Looks a SQLSTATE up in the one table for the whole server (PostgREST's
 * Error.hs). anon: the caller had no user token (42501 is 401 then). A
 * malformed SQLSTATE (NULL, not 5 characters) is {500, DB_ERR_INTERNAL}. */
db_http_error_t db_error_http(const char *sqlstate, bool anon);

/* db_error_http(sqlstate, anon).status. */
int db_sqlstate_http_status(const char *sqlstate, bool anon);

#endif
