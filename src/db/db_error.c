/*
 * The one table that turns a PostgreSQL SQLSTATE into an HTTP answer: the
 * status PostgREST gives it, and what kind of failure it is, so that each
 * module's adapter (rest, api, storage, auth) only chooses its own wording.
 */
#include <string.h>

#include "db/db.h"

/* SQLSTATE (or class) to HTTP status, from PostgREST's Error.hs, and kind.
 * Longest prefix wins: full codes first, then two-character classes.
 * 21000 is 400 in PostgREST only for pg-safeupdate's "requires a WHERE clause". */
static const struct {
    const char *code;
    int status;
    db_err_kind_t kind;
} sqlstate_map[] = {
    {"21000", 500, DB_ERR_INTERNAL},  {"23503", 409, DB_ERR_FOREIGN_KEY},
    {"23505", 409, DB_ERR_UNIQUE},    {"25006", 405, DB_ERR_READ_ONLY},
    {"P0001", 400, DB_ERR_RAISED},    {"42883", 404, DB_ERR_UNDEFINED},
    {"42P01", 404, DB_ERR_UNDEFINED}, {"42P17", 500, DB_ERR_INTERNAL},
    {"42501", 403, DB_ERR_PRIVILEGE}, {"40001", 409, DB_ERR_CONFLICT},
    {"40P01", 409, DB_ERR_CONFLICT},  {"53400", 500, DB_ERR_INTERNAL},
    {"57014", 504, DB_ERR_TIMEOUT},   {"PT", 0, DB_ERR_RAISED},
    {"08", 503, DB_ERR_UNAVAILABLE},  {"09", 500, DB_ERR_INTERNAL},
    {"0L", 403, DB_ERR_ROLE},         {"0P", 403, DB_ERR_ROLE},
    {"23", 400, DB_ERR_INVALID_DATA}, {"25", 500, DB_ERR_INTERNAL},
    {"28", 403, DB_ERR_ROLE},         {"2D", 500, DB_ERR_INTERNAL},
    {"38", 500, DB_ERR_INTERNAL},     {"39", 500, DB_ERR_INTERNAL},
    {"3B", 500, DB_ERR_INTERNAL},     {"40", 500, DB_ERR_INTERNAL},
    {"53", 503, DB_ERR_RESOURCES},    {"54", 500, DB_ERR_INTERNAL},
    {"55", 500, DB_ERR_INTERNAL},     {"57", 500, DB_ERR_INTERNAL},
    {"58", 500, DB_ERR_INTERNAL},     {"F0", 500, DB_ERR_INTERNAL},
    {"HV", 500, DB_ERR_INTERNAL},     {"P0", 500, DB_ERR_INTERNAL},
    {"XX", 500, DB_ERR_INTERNAL},     {"42", 400, DB_ERR_QUERY},
    {"22", 400, DB_ERR_INVALID_DATA},
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

db_http_error_t db_error_http(const char *sqlstate, bool anon)
{
    if (!sqlstate || strlen(sqlstate) != 5)
        return (db_http_error_t){500, DB_ERR_INTERNAL};
    if (strncmp(sqlstate, "PT", 2) == 0) {
        /* raise sqlstate 'PT404' picks the HTTP status itself */
        int n = pt_status(sqlstate + 2);
        return (db_http_error_t){n ? n : 500, n ? DB_ERR_RAISED : DB_ERR_INTERNAL};
    }
    for (int len = 5; len >= 2; len -= 3) {
        for (size_t i = 0; i < CD_ARRAY_LEN(sqlstate_map); i++) {
            if (strlen(sqlstate_map[i].code) != (size_t)len ||
                strncmp(sqlstate_map[i].code, sqlstate, (size_t)len) != 0)
                continue;
            db_http_error_t e = {sqlstate_map[i].status, sqlstate_map[i].kind};
            /* no user token: "permission denied" means "sign in" */
            if (strcmp(sqlstate, "42501") == 0 && anon)
                e.status = 401;
            return e;
        }
    }
    return (db_http_error_t){400, DB_ERR_QUERY};
}

int db_sqlstate_http_status(const char *sqlstate, bool anon)
{
    return db_error_http(sqlstate, anon).status;
}
