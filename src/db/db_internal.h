/*
 * What db.c's files share and its unit tests look into: the per-connection
 * cache of prepared statements and the planning step that decides, for each
 * statement of a request, how it is sent. Not for other modules.
 */
#ifndef CD_DB_INTERNAL_H
#define CD_DB_INTERNAL_H

#include "db/db.h"

/* A direct-mapped cache of prepared statements per connection, keyed by SQL
 * text: the SQL of a request is parsed and planned by PostgreSQL once per
 * connection, not once per request (pgbench -M prepared does the same). A
 * slot taken by other SQL is freed with DEALLOCATE in the same pipeline. */
#define DB_STMT_CACHE_SLOTS    256
#define DB_STMT_MAX_CACHED_SQL (64 * 1024)

struct db_cached_stmt {
    char *sql;             /* owned; NULL when the slot is free */
    unsigned long long id; /* the statement is named "cd_s<id>" */
};

struct db_conn {
    PGconn *pg;
    struct db_cached_stmt cache[DB_STMT_CACHE_SLOTS];
    unsigned long long next_id;
    bool session_set; /* db_run_session's prelude ran on this connection */
};

/* How one statement of a request is sent. */
struct db_stmt_plan {
    enum { DB_PLAN_UNNAMED, DB_PLAN_CACHED, DB_PLAN_PREPARE } how;
    size_t slot;           /* cache slot for CACHED / PREPARE */
    unsigned long long id; /* statement name cd_s<id> */
};

/* The cache slot of a SQL text (FNV-1a of its bytes). */
size_t db__sql_slot(const char *sql);

/* Decides, for each of the n statements, whether it runs from the cache, is
 * prepared into it, or runs unnamed, writing plan[0..n). Statements evicted
 * from their slot are listed in evict (room for n) for DEALLOCATE, and their
 * slot is emptied until db__cache_store fills it. */
void db__plan_stmts(db_conn_t *c, const db_stmt_t *stmts, size_t n, struct db_stmt_plan *plan,
                    unsigned long long *evict, size_t *nevict);

/* Records that sql was prepared into cache slot `slot` (after the server
 * accepted the PREPARE). Out of memory merely leaves it uncached. */
void db__cache_store(db_conn_t *c, size_t slot, const char *sql);

/* Empties every cache slot (the server-side statements are not touched). */
void db__cache_clear(db_conn_t *c);

#endif
