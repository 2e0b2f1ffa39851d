/*
 * Schema migrations: numbered .sql files from migrations/, embedded in the
 * binary at build time, applied once each in filename order, each in its own
 * transaction, recorded with a SHA-256 checksum in campaignd.schema_migrations.
 */
#ifndef CD_MIGRATE_H
#define CD_MIGRATE_H

#include <libpq-fe.h>

#include "core/common.h"

typedef struct migration {
    const char *name; /* "001_rate_limiting" */
    const char *sql;
} migration_t;

extern const migration_t migrations_embedded[];
extern const size_t migrations_embedded_count;

/* Applies every pending migration over an owner connection. Several processes
 * may call this at once (an advisory lock serialises them). Refuses to go on
 * if an applied migration's checksum differs from the embedded one. Returns
 * false after logging the reason; *applied counts the migrations run now. */
CD_MUSTCHECK bool migrate_run(PGconn *owner, const migration_t *list, size_t n, int *applied);
/* Prints one line per migration: applied (with date) or pending. */
CD_MUSTCHECK bool migrate_status(PGconn *owner, const migration_t *list, size_t n);
/* Hex SHA-256 of sql into out (65 bytes). */
void migrate_checksum(const char *sql, char out[65]);

#endif
