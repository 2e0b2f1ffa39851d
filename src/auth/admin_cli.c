/*
 * User management outside HTTP: the `campaignd user ...` commands and the
 * bootstrap admin from CAMPAIGND_ADMIN_EMAIL/CAMPAIGND_ADMIN_PASSWORD. These
 * run over the database owner's connection and call the same SQL functions
 * as the Auth endpoints.
 */
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/password.h"
#include "core/log.h"

static bool role_valid(const char *role)
{
    return strcmp(role, "admin") == 0 || strcmp(role, "user") == 0 || strcmp(role, "viewer") == 0;
}

bool auth_cli_add_user(const app_t *app, PGconn *c, const char *email, const char *password,
                       const char *role, char *msg, size_t msglen)
{
    if (!auth_email_valid(email)) {
        snprintf(msg, msglen, "'%s' is not a valid e-mail address", email);
        return false;
    }
    if (!role_valid(role)) {
        snprintf(msg, msglen, "--role must be admin, user or viewer");
        return false;
    }
    switch (
        password_check_policy(password, strlen(password), (size_t)app->cfg.password_min_length)) {
    case PASSWORD_OK:
        break;
    case PASSWORD_TOO_SHORT:
        snprintf(msg, msglen, "the password must be at least %ld bytes (PASSWORD_MIN_LENGTH)",
                 app->cfg.password_min_length);
        return false;
    default:
        snprintf(msg, msglen, "the password must be at most 72 bytes");
        return false;
    }
    char hash[PASSWORD_HASH_BYTES];
    if (!password_hash(password, (int)app->cfg.bcrypt_cost, hash, sizeof(hash))) {
        snprintf(msg, msglen, "could not hash the password");
        return false;
    }
    const char *p[3] = {email, hash, role};
    PGresult *r = PQexecParams(c,
                               "select (auth.create_user($1, $2, $3, '{}'::jsonb, '{}'::jsonb, "
                               "true)).id, auth.audit('user_signedup', null, $1, 'cli', "
                               "jsonb_build_object('role', $3::text, 'via', 'cli'))",
                               3, NULL, p, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (ok) {
        snprintf(msg, msglen, "created %s user %s (id %s)", role, email, PQgetvalue(r, 0, 0));
    } else {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (db_error_http(state, false).kind == DB_ERR_UNIQUE)
            snprintf(msg, msglen,
                     "a user with e-mail %s already exists (use `user set-role` to "
                     "change their role)",
                     email);
        else
            snprintf(msg, msglen, "%s", PQresultErrorMessage(r));
    }
    PQclear(r);
    return ok;
}

bool auth_cli_set_role(PGconn *c, const char *email, const char *role, char *msg, size_t msglen)
{
    if (!role_valid(role)) {
        snprintf(msg, msglen, "--role must be admin, user or viewer");
        return false;
    }
    const char *p[2] = {email, role};
    PGresult *r = PQexecParams(
        c,
        "with u as (select id, auth.user_role(x) as old from auth.users x "
        "  where lower(x.email) = lower(btrim($1)) and x.deleted_at is null), "
        "upd as (update auth.users x set raw_app_meta_data = x.raw_app_meta_data || "
        "  jsonb_build_object('role', $2::text), updated_at = now() from u where x.id = u.id "
        "  returning x.id) "
        "select u.id, u.old, auth.audit('user_role_changed', null, $1, 'cli', "
        "  jsonb_build_object('user_id', u.id, 'from', u.old, 'to', $2::text)) from u",
        2, NULL, p, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    if (ok)
        snprintf(msg, msglen, "%s: role %s -> %s (effective from their next token refresh)", email,
                 PQgetvalue(r, 0, 1), role);
    else if (PQresultStatus(r) == PGRES_TUPLES_OK)
        snprintf(msg, msglen, "no user with e-mail %s", email);
    else
        snprintf(msg, msglen, "%s", PQresultErrorMessage(r));
    PQclear(r);
    return ok;
}

bool auth_cli_list_users(PGconn *c, char *msg, size_t msglen)
{
    PGresult *r = PQexec(c, "select u.id, coalesce(u.email, ''), auth.user_role(u), "
                            "coalesce(to_char(u.last_sign_in_at, 'YYYY-MM-DD HH24:MI'), 'never') "
                            "from auth.users u where u.deleted_at is null order by u.created_at");
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (ok) {
        printf("%-36s  %-7s  %-16s  %s\n", "id", "role", "last sign-in", "email");
        for (int i = 0; i < PQntuples(r); i++)
            printf("%-36s  %-7s  %-16s  %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 2),
                   PQgetvalue(r, i, 3), PQgetvalue(r, i, 1));
        snprintf(msg, msglen, "%d user(s)", PQntuples(r));
    } else {
        snprintf(msg, msglen, "%s", PQresultErrorMessage(r));
    }
    PQclear(r);
    return ok;
}

bool auth_bootstrap_admin(app_t *app)
{
    if (!*app->cfg.admin_email && !*app->cfg.admin_password)
        return true;
    if (!*app->cfg.admin_email || !*app->cfg.admin_password) {
        log_error("set both CAMPAIGND_ADMIN_EMAIL and CAMPAIGND_ADMIN_PASSWORD, or neither");
        return false;
    }
    PGconn *c = app_owner_connect(app);
    if (!c)
        return false;
    PGresult *r = PQexec(c, "select exists (select 1 from auth.users u where "
                            "auth.user_role(u) = 'admin' and u.deleted_at is null)");
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    bool have_admin = ok && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (ok && !have_admin) {
        char msg[512];
        ok = auth_cli_add_user(app, c, app->cfg.admin_email, app->cfg.admin_password, "admin", msg,
                               sizeof(msg));
        if (ok)
            log_info("bootstrap admin: %s", msg);
        else
            log_error("cannot create the bootstrap admin %s: %s", app->cfg.admin_email, msg);
    }
    PQfinish(c);
    return ok;
}
