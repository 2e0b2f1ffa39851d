/*
 * The migrations runner. Each migration runs in its own transaction together
 * with the row that records it, so a crash leaves it either applied and
 * recorded or not applied at all.
 */
#include "db/migrate.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "db/db.h"

/* Any constant: the key of the advisory lock that serialises migrations. */
#define MIGRATE_LOCK_KEY "4242001"

void migrate_checksum(const char *sql, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(sql, strlen(sql), md, &len, EVP_sha256(), NULL);
    for (unsigned i = 0; i < len && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[64] = '\0';
}

static const char SETUP_SQL[] = "create schema if not exists campaignd;"
                                "revoke all on schema campaignd from public;"
                                "create table if not exists campaignd.schema_migrations ("
                                "  name text primary key,"
                                "  checksum text not null,"
                                "  applied_at timestamptz not null default now())";

/* Looks up an applied migration: 1 = applied (checksum into sum), 0 = not, -1 = error. */
static int applied_checksum(PGconn *c, const char *name, char sum[65])
{
    const char *p[1] = {name};
    PGresult *r =
        PQexecParams(c, "select checksum from campaignd.schema_migrations where name = $1", 1, NULL,
                     p, NULL, NULL, 0);
    int ret = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        ret = PQntuples(r) == 1;
        if (ret)
            snprintf(sum, 65, "%s", PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    return ret;
}

static bool apply_one(PGconn *c, const migration_t *m, const char *sum)
{
    db_error_t err;
    if (!db_exec(c, "BEGIN", &err))
        goto fail;
    if (!db_exec(c, m->sql, &err))
        goto fail_rollback;
    const char *p[2] = {m->name, sum};
    PGresult *r =
        PQexecParams(c, "insert into campaignd.schema_migrations(name, checksum) values ($1, $2)",
                     2, NULL, p, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        db_error_from_result(r, &err);
    PQclear(r);
    if (!ok || !db_exec(c, "COMMIT", &err))
        goto fail_rollback;
    return true;
fail_rollback:
    db_exec_ignore(c, "ROLLBACK");
fail:
    log_error("migration %s failed: %s (SQLSTATE %s)%s%s", m->name, err.message, err.sqlstate,
              *err.detail ? "; " : "", err.detail);
    return false;
}

bool migrate_run(PGconn *c, const migration_t *list, size_t n, int *applied)
{
    db_error_t err;
    *applied = 0;
    if (!db_exec(c, "select pg_advisory_lock(" MIGRATE_LOCK_KEY ")", &err)) {
        log_error("cannot lock for migrations: %s", err.message);
        return false;
    }
    bool ok = db_exec(c, SETUP_SQL, &err);
    if (!ok)
        log_error("cannot create the migrations table: %s", err.message);
    for (size_t i = 0; ok && i < n; i++) {
        char want[65], have[65];
        migrate_checksum(list[i].sql, want);
        int st = applied_checksum(c, list[i].name, have);
        if (st < 0) {
            log_error("cannot read campaignd.schema_migrations: %s", PQerrorMessage(c));
            ok = false;
        } else if (st == 1) {
            if (strcmp(want, have) != 0) {
                log_error("migration %s was changed after it was applied (checksum %.12s in the "
                          "database, %.12s in this binary). Restore the original file and put "
                          "the change in a new migration.",
                          list[i].name, have, want);
                ok = false;
            }
        } else {
            log_info("applying migration %s", list[i].name);
            ok = apply_one(c, &list[i], want);
            if (ok)
                (*applied)++;
        }
    }
    db_exec_ignore(c, "select pg_advisory_unlock(" MIGRATE_LOCK_KEY ")");
    return ok;
}

bool migrate_status(PGconn *c, const migration_t *list, size_t n)
{
    db_error_t err;
    if (!db_exec(c, SETUP_SQL, &err)) {
        log_error("cannot read the migrations table: %s", err.message);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const char *p[1] = {list[i].name};
        PGresult *r = PQexecParams(c,
                                   "select to_char(applied_at, 'YYYY-MM-DD HH24:MI:SS TZ') from "
                                   "campaignd.schema_migrations where name = $1",
                                   1, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            PQclear(r);
            return false;
        }
        if (PQntuples(r))
            printf("applied  %s  (%s)\n", list[i].name, PQgetvalue(r, 0, 0));
        else
            printf("pending  %s\n", list[i].name);
        PQclear(r);
    }
    return true;
}
