/*
 * The signed-in user's own record: GET and PUT /auth/v1/user (and the
 * specification's GET /auth/user). A user may change their e-mail, password
 * and user metadata, never their role or app metadata (SEED-NOTES 1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/auth_internal.h"
#include "core/jwt.h"
#include "auth/password.h"
#include "core/buf.h"
#include "core/crypto.h"
#include "core/log.h"
/* ------------------------------------------------------------------ user */

/* Looks up the caller's user row and session. Returns the result (1 row:
 * user_json, session_exists, encrypted_password, role) or NULL after replying. */
static PGresult *load_self(http_request_t *req, auth_caller_t *caller)
{
    const char *p[2] = {caller->user_id,
                        cd_is_uuid(caller->session_id) ? caller->session_id : NULL};
    db_stmt_t stmt = {
        "select auth.user_json(u)::text, "
        "$2::uuid is null or exists (select 1 from auth.sessions s where s.id = $2::uuid "
        "and s.user_id = u.id), u.encrypted_password, auth.user_role(u), "
        "coalesce(u.banned_until > now(), false) "
        "from auth.users u where u.id = $1::uuid and u.deleted_at is null",
        2, p};
    PGresult *r = NULL;
    if (!auth__run(req, caller->headers_json, true, &stmt, 1, &r, NULL))
        return NULL;
    if (PQntuples(r) != 1) {
        PQclear(r);
        auth__error(req, 403, "user_not_found", "User from sub claim in JWT does not exist");
        return NULL;
    }
    if (PQgetvalue(r, 0, 1)[0] != 't') {
        PQclear(r);
        auth__error(req, 403, "session_not_found",
                    "Session from session_id claim in JWT does not exist");
        return NULL;
    }
    if (PQgetvalue(r, 0, 4)[0] == 't') {
        PQclear(r);
        auth__error(req, 403, "user_banned", "User is banned");
        return NULL;
    }
    return r;
}

void auth__handle_get_user(http_request_t *req)
{
    auth_caller_t caller;
    if (!auth__require_user(req, &caller))
        return;
    PGresult *r = load_self(req, &caller);
    auth_caller_free(&caller);
    if (!r)
        return;
    http_reply(req, 200, NULL, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
    PQclear(r);
}

/* Checks a new password against the rules and the current one (self: load_self's row) and
 * hashes it into hash (PASSWORD_HASH_BYTES). False once an error is answered. */
static bool hash_new_password(http_request_t *req, const PGresult *self, const char *password,
                              char *hash)
{
    if (!auth__check_password(req, password))
        return false;
    const char *stored = PQgetvalue(self, 0, 2);
    if (*stored && password_verify(password, stored)) {
        auth__error(req, 422, "same_password",
                    "New password should be different from the old password.");
        return false;
    }
    return auth__hash_password(req, password, hash);
}

void auth__handle_put_user(http_request_t *req)
{
    auth_caller_t caller;
    if (!auth__require_user(req, &caller))
        return;
    json_t *body = auth__read_body(req);
    PGresult *self = NULL;
    char *meta = NULL;
    char hash[PASSWORD_HASH_BYTES] = "";
    if (!body)
        goto done;
    const char *email = auth__jstr(body, "email");
    const char *password = auth__jstr(body, "password");
    json_t *data = json_object_get(body, "data");
    if (data && !json_is_object(data) && !json_is_null(data)) {
        auth__error(req, 400, "validation_failed", "data must be an object");
        goto done;
    }
    if (json_object_get(body, "app_metadata")) {
        auth__error(req, 403, "not_admin",
                    "app_metadata can only be changed by an admin (use the admin API)");
        goto done;
    }
    if (email && !auth__check_email(req, email))
        goto done;
    self = load_self(req, &caller);
    if (!self)
        goto done;
    const char *current_role = PQgetvalue(self, 0, 3);
    json_t *role = json_is_object(data) ? json_object_get(data, "role") : NULL;
    if (role && !json_is_null(role) &&
        (!json_is_string(role) || strcmp(json_string_value(role), current_role) != 0)) {
        /* SEED-NOTES 1: the role is not the user's to set. */
        auth__error(req, 403, "not_admin",
                    "Only an admin can change a user's role (campaignd user set-role, or the "
                    "admin API).");
        goto done;
    }
    if (password && !hash_new_password(req, self, password, hash))
        goto done;
    if (email && !auth__app(req)->mailer_autoconfirm) {
        /* Secure change: the address changes once the links (or codes)
         * mailed to both the current and the new address are used. */
        json_t *me = json_loads(PQgetvalue(self, 0, 0), 0, NULL);
        const char *cur = me ? json_string_value(json_object_get(me, "email")) : NULL;
        bool ok = true, has_email = cur && *cur;
        if (has_email && strcasecmp(cur, email) != 0)
            ok = auth__request_email_change(req, caller.headers_json, caller.user_id, cur, email);
        json_decref(me);
        if (!ok)
            goto done;
        if (has_email)
            email = NULL; /* nothing changes now */
    }
    meta = auth__object_text(data); /* "role" is dropped in SQL */
    const char *email_claim = json_string_value(json_object_get(caller.claims, "email"));
    const char *p[6] = {caller.user_id, email,       *hash ? hash : NULL,
                        meta,           email_claim, req->client_ip};
    /* A new password ends the user's other sessions, as GoTrue does. */
    const char *p_sess[3] = {caller.user_id, *hash ? hash : NULL,
                             cd_is_uuid(caller.session_id) ? caller.session_id : NULL};
    db_stmt_t stmts[4] = {
        {"update auth.users u set "
         "email = coalesce(lower(btrim($2::text)), u.email), "
         "encrypted_password = coalesce($3::text, u.encrypted_password), "
         "raw_user_meta_data = auth.merge_metadata(u.raw_user_meta_data, $4::jsonb - 'role'), "
         "updated_at = now() where u.id = $1::uuid",
         4, p},
        {"update auth.identities set identity_data = identity_data || "
         "jsonb_build_object('email', lower(btrim($2::text))), updated_at = now() "
         "where user_id = $1::uuid and provider = 'email' and $2::text is not null",
         2, p},
        {"select auth.audit('user_modified', $1::uuid, $5, $6, "
         "jsonb_build_object('email_changed', $2::text is not null, 'password_changed', $3::text "
         "is not "
         "null, 'metadata_changed', $4::jsonb is not null)), "
         "(select auth.user_json(u)::text from auth.users u where u.id = $1::uuid)",
         6, p},
        {"delete from auth.sessions where user_id = $1::uuid and $2::text is not null "
         "and id is distinct from $3::uuid",
         3, p_sess},
    };
    PGresult *res[4] = {0};
    if (auth__run(req, caller.headers_json, false, stmts, 4, res, &AUTH_UNIQUE_EMAIL))
        http_reply(req, 200, NULL, PQgetvalue(res[2], 0, 1), (size_t)PQgetlength(res[2], 0, 1));
    for (size_t i = 0; i < 4; i++)
        PQclear(res[i]);
done:
    PQclear(self);
    free(meta);
    json_decref(body);
    auth_caller_free(&caller);
}
