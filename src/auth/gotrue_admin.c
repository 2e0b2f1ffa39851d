/*
 * GoTrue's admin API, /auth/v1/admin/users: list, create, get, update and
 * delete users. Accepted from the service key and, beyond GoTrue, from
 * signed-in users whose authoritative role is admin (require_admin).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_internal.h"
#include "auth/password.h"
#include "core/crypto.h"
#include "core/log.h"

/* Admin endpoints accept the service key (as GoTrue does) and, beyond
 * GoTrue, signed-in users whose authoritative role is admin, so that the
 * dashboard's admins can manage users. */
static bool require_admin(http_request_t *req, auth_caller_t *caller)
{
    if (!auth__require_apikey(req, caller))
        return false;
    if (strcmp(caller->role, "service_role") == 0)
        return true;
    if (strcmp(caller->role, "authenticated") == 0 && cd_is_uuid(caller->user_id)) {
        /* The token alone is not enough: the admin must not be banned, and
         * the token's session must still exist (signed out, or ended by a
         * password change, means no admin API). */
        const char *p[2] = {caller->user_id,
                            cd_is_uuid(caller->session_id) ? caller->session_id : NULL};
        db_stmt_t stmt = {"select auth.user_role(u) = 'admin' from auth.users u "
                          "where u.id = $1::uuid and u.deleted_at is null "
                          "and coalesce(u.banned_until <= now(), true) "
                          "and exists (select 1 from auth.sessions s where s.id = $2::uuid "
                          "and s.user_id = u.id)",
                          2, p};
        PGresult *r = NULL;
        if (!auth__run(req, caller->headers_json, true, &stmt, 1, &r, NULL)) {
            auth_caller_free(caller);
            return false;
        }
        bool admin = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (admin)
            return true;
    }
    auth__error(req, 403, "not_admin", "User not allowed");
    auth_caller_free(caller);
    return false;
}

static long query_long(http_request_t *req, const char *name, long def, long min, long max)
{
    const char *v = http_query_arg(req, name);
    if (!v || !*v)
        return def;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < min)
        return def;
    return n > max ? max : n;
}

void auth__handle_admin_list(http_request_t *req)
{
    auth_caller_t caller;
    if (!require_admin(req, &caller))
        return;
    long page = query_long(req, "page", 1, 1, 1000000);
    long per_page = query_long(req, "per_page", 50, 1, AUTH_MAX_PER_PAGE);
    char off[24], lim[24];
    snprintf(off, sizeof(off), "%ld", (page - 1) * per_page);
    snprintf(lim, sizeof(lim), "%ld", per_page);
    const char *p[2] = {off, lim};
    db_stmt_t stmts[2] = {
        {"select json_build_object('users', coalesce(json_agg(x.j order by x.created_at, x.id), "
         "'[]'::json), 'aud', 'authenticated')::text from (select auth.user_json(u) j, "
         "u.created_at, "
         "u.id from auth.users u where u.deleted_at is null order by u.created_at, u.id "
         "offset $1::bigint limit $2::bigint) x",
         2, p},
        {"select count(*) from auth.users where deleted_at is null", 0, NULL},
    };
    PGresult *res[2] = {0};
    bool ok = auth__run(req, caller.headers_json, true, stmts, 2, res, NULL);
    auth_caller_free(&caller);
    if (!ok)
        return;
    long total = strtol(PQgetvalue(res[1], 0, 0), NULL, 10);
    long last = total ? (total + per_page - 1) / per_page : 1;
    char count[24], link[512];
    snprintf(count, sizeof(count), "%ld", total);
    http_add_header(req, "X-Total-Count", count);
    /* auth-js reads the page number right after the first '=' of each link. */
    if (page < last)
        snprintf(link, sizeof(link),
                 "</admin/users?page=%ld&per_page=%ld>; rel=\"next\", "
                 "</admin/users?page=%ld&per_page=%ld>; rel=\"last\"",
                 page + 1, per_page, last, per_page);
    else
        snprintf(link, sizeof(link), "</admin/users?page=%ld&per_page=%ld>; rel=\"last\"", last,
                 per_page);
    http_add_header(req, "Link", link);
    http_reply(req, 200, NULL, PQgetvalue(res[0], 0, 0), (size_t)PQgetlength(res[0], 0, 0));
    PQclear(res[0]);
    PQclear(res[1]);
}

/* The role an admin request asks for: app_metadata.role, if any. Returns
 * false after replying 422 for a role that does not exist. */
static bool admin_role_param(http_request_t *req, json_t *body, const char **role)
{
    json_t *am = json_object_get(body, "app_metadata");
    json_t *r = json_is_object(am) ? json_object_get(am, "role") : NULL;
    *role = NULL;
    if (!r || json_is_null(r))
        return true;
    const char *s = json_string_value(r);
    if (!s || (strcmp(s, "admin") && strcmp(s, "user") && strcmp(s, "viewer"))) {
        auth__error(req, 422, "validation_failed",
                    "app_metadata.role must be admin, user or viewer");
        return false;
    }
    *role = s;
    return true;
}

/* An importable bcrypt hash: $2a$/$2b$/$2y$, a cost password_verify accepts
 * (04..15, so a planted huge cost cannot tie up a worker), 53 more characters. */
static bool bcrypt_hash_shape(const char *h)
{
    if (strlen(h) != 60 || h[0] != '$' || h[1] != '2' ||
        (h[2] != 'a' && h[2] != 'b' && h[2] != 'y') || h[3] != '$' || h[6] != '$')
        return false;
    if (h[4] < '0' || h[4] > '9' || h[5] < '0' || h[5] > '9')
        return false;
    int cost = (h[4] - '0') * 10 + (h[5] - '0');
    return cost >= 4 && cost <= 15;
}

/* An admin's create or update request, from the check of the caller to the
 * reply: the body and its metadata objects as JSON text (NULL when absent or
 * not an object). */
typedef struct admin_write {
    auth_caller_t caller;
    json_t *body;
    char *umeta, *ameta;
} admin_write_t;

/* Checks that the caller is an admin and reads the body; false when the reply
 * has been sent (and nothing is left to free). */
static bool admin_write_begin(http_request_t *req, admin_write_t *w)
{
    memset(w, 0, sizeof(*w));
    if (!require_admin(req, &w->caller))
        return false;
    w->body = auth__read_body(req);
    if (!w->body) {
        auth_caller_free(&w->caller);
        return false;
    }
    w->umeta = auth__object_text(json_object_get(w->body, "user_metadata"));
    w->ameta = auth__object_text(json_object_get(w->body, "app_metadata"));
    return true;
}

static void admin_write_end(admin_write_t *w)
{
    free(w->umeta);
    free(w->ameta);
    json_decref(w->body);
    if (w->caller.claims)
        auth_caller_free(&w->caller);
}

void auth__handle_admin_create(http_request_t *req)
{
    admin_write_t w;
    if (!admin_write_begin(req, &w))
        return;
    json_t *body = w.body;
    char hash[PASSWORD_HASH_BYTES] = "", uid[CD_UUID_LEN + 1];
    const char *email = auth__jstr(body, "email");
    const char *password = auth__jstr(body, "password");
    const char *password_hash_in = auth__jstr(body, "password_hash");
    const char *id = auth__jstr(body, "id");
    const char *role = NULL;
    if (!auth__check_email(req, email))
        goto done;
    if (!admin_role_param(req, body, &role))
        goto done;
    if (id && !cd_is_uuid(id)) {
        auth__error(req, 400, "validation_failed", "id must be a UUID");
        goto done;
    }
    if (password_hash_in) {
        if (!bcrypt_hash_shape(password_hash_in)) {
            auth__error(req, 422, "validation_failed",
                        "password_hash must be a bcrypt hash ($2a$, $2b$ or $2y$)");
            goto done;
        }
        snprintf(hash, sizeof(hash), "%s", password_hash_in);
    } else if (password) {
        if (!auth__check_password(req, password) || !auth__hash_password(req, password, hash))
            goto done;
    }
    if (id)
        snprintf(uid, sizeof(uid), "%s", id);
    else if (!cd_random_uuid(uid))
        goto done;
    bool confirm = json_is_true(json_object_get(body, "email_confirm"));
    const char *actor_email = json_string_value(json_object_get(w.caller.claims, "email"));
    const char *p[10] = {email,
                         *hash ? hash : NULL,
                         role ? role : "user",
                         w.umeta ? w.umeta : "{}",
                         w.ameta ? w.ameta : "{}",
                         confirm ? "true" : "false",
                         uid,
                         w.caller.user_id[0] ? w.caller.user_id : NULL,
                         actor_email,
                         req->client_ip};
    const char *p_audit[6] = {p[7], actor_email, req->client_ip, uid, email, p[2]};
    db_stmt_t stmts[2] = {
        {"select auth.user_json(auth.create_user($1, $2, $3, $4::jsonb, $5::jsonb, $6::bool, "
         "$7::uuid))::text",
         7, p},
        {"select auth.audit('user_signedup', $1::uuid, $2, $3, "
         "jsonb_build_object('user_id', $4::text, 'user_email', $5::text, 'role', $6::text, "
         "'by_admin', true))",
         6, p_audit},
    };
    PGresult *res[2] = {0};
    if (auth__run(req, w.caller.headers_json, false, stmts, 2, res, &AUTH_UNIQUE_EMAIL))
        http_reply(req, 200, NULL, PQgetvalue(res[0], 0, 0), (size_t)PQgetlength(res[0], 0, 0));
    PQclear(res[0]);
    PQclear(res[1]);
done:
    admin_write_end(&w);
}

void auth__handle_admin_get(http_request_t *req)
{
    auth_caller_t caller;
    if (!require_admin(req, &caller))
        return;
    const char *id = req->params[0];
    if (!cd_is_uuid(id)) {
        auth_caller_free(&caller);
        auth__error(req, 404, "user_not_found", "User not found");
        return;
    }
    const char *p[1] = {id};
    db_stmt_t stmt = {"select auth.user_json(u)::text from auth.users u where u.id = $1::uuid", 1,
                      p};
    PGresult *r = NULL;
    bool ok = auth__run(req, caller.headers_json, true, &stmt, 1, &r, NULL);
    auth_caller_free(&caller);
    if (!ok)
        return;
    if (PQntuples(r) == 1)
        http_reply(req, 200, NULL, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
    else
        auth__error(req, 404, "user_not_found", "User not found");
    PQclear(r);
}

/* Parses GoTrue's ban_duration ("24h", "30m", "1h30m", "none"): seconds into
 * *secs, -1 for none. Returns false on anything else. */
static bool parse_ban_duration(const char *s, long *secs)
{
    if (strcmp(s, "none") == 0) {
        *secs = -1;
        return true;
    }
    long total = 0;
    const char *p = s;
    if (!*p)
        return false;
    while (*p) {
        char *end;
        long n = strtol(p, &end, 10);
        if (end == p || n < 0 || n > 1000000)
            return false;
        long mult = *end == 'h' ? 3600 : *end == 'm' ? 60 : *end == 's' ? 1 : 0;
        if (!mult)
            return false;
        total += n * mult;
        p = end + 1;
    }
    *secs = total;
    return true;
}

void auth__handle_admin_update(http_request_t *req)
{
    admin_write_t w;
    if (!admin_write_begin(req, &w))
        return;
    json_t *body = w.body;
    char hash[PASSWORD_HASH_BYTES] = "", ban[24] = "";
    const char *id = req->params[0];
    if (!cd_is_uuid(id)) {
        auth__error(req, 404, "user_not_found", "User not found");
        goto done;
    }
    const char *email = auth__jstr(body, "email");
    const char *password = auth__jstr(body, "password");
    const char *ban_duration = auth__jstr(body, "ban_duration");
    const char *role = NULL;
    if (email && !auth__check_email(req, email))
        goto done;
    if (!admin_role_param(req, body, &role))
        goto done;
    if (ban_duration) {
        long secs;
        if (!parse_ban_duration(ban_duration, &secs)) {
            auth__error(req, 400, "validation_failed",
                        "ban_duration must be like 24h, 30m or none");
            goto done;
        }
        snprintf(ban, sizeof(ban), "%ld", secs);
    }
    if (password) {
        if (!auth__check_password(req, password) || !auth__hash_password(req, password, hash))
            goto done;
    }
    /* the keys a caller may not set are dropped in SQL (auth.admin_update_user) */
    bool confirm = json_is_true(json_object_get(body, "email_confirm"));
    const char *actor = w.caller.user_id[0] ? w.caller.user_id : NULL;
    const char *p[10] = {id,
                         email,
                         *hash ? hash : NULL,
                         w.umeta,
                         w.ameta,
                         *ban ? ban : NULL,
                         confirm ? "true" : NULL,
                         actor,
                         json_string_value(json_object_get(w.caller.claims, "email")),
                         req->client_ip};
    db_stmt_t stmt = {"select user_text, role_before, role_after from auth.admin_update_user("
                      "$1::uuid, $2, $3, $4::jsonb, $5::jsonb, $6::bigint, $7::boolean, $8::uuid, "
                      "$9, $10)",
                      10, p};
    PGresult *r = NULL;
    if (!auth__run(req, w.caller.headers_json, false, &stmt, 1, &r, &AUTH_UNIQUE_EMAIL))
        goto done;
    if (PQntuples(r) != 1) {
        auth__error(req, 404, "user_not_found", "User not found");
    } else {
        const char *before = PQgetvalue(r, 0, 1), *after = PQgetvalue(r, 0, 2);
        if (strcmp(before, after) != 0)
            log_info("role of user %s changed from %s to %s by %s", id, before, after,
                     actor ? actor : "service_role");
        http_reply(req, 200, NULL, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
    }
    PQclear(r);
done:
    admin_write_end(&w);
}

void auth__handle_admin_delete(http_request_t *req)
{
    auth_caller_t caller;
    if (!require_admin(req, &caller))
        return;
    json_t *body = auth__read_body(req);
    const char *id = req->params[0];
    if (!body)
        goto done;
    if (!cd_is_uuid(id)) {
        auth__error(req, 404, "user_not_found", "User not found");
        goto done;
    }
    bool soft = json_is_true(json_object_get(body, "should_soft_delete"));
    const char *actor_email = json_string_value(json_object_get(caller.claims, "email"));
    const char *p[4] = {id, caller.user_id[0] ? caller.user_id : NULL, actor_email, req->client_ip};
    db_stmt_t stmts[2] = {
        {soft
             ? "with d as (update auth.users set deleted_at = now(), updated_at = now(), "
               "email = null, encrypted_password = null where id = $1::uuid and deleted_at is null "
               "returning id), s as (delete from auth.sessions where user_id in (select id from "
               "d)) "
               "select count(*) from d"
             : "with d as (delete from auth.users where id = $1::uuid returning id) "
               "select count(*) from d",
         1, p},
        {"select auth.audit('user_deleted', $2::uuid, $3, $4, jsonb_build_object('user_id', "
         "$1::text))",
         4, p},
    };
    PGresult *res[2] = {0};
    if (auth__run(req, caller.headers_json, false, stmts, 2, res, NULL)) {
        if (strcmp(PQgetvalue(res[0], 0, 0), "0") == 0)
            auth__error(req, 404, "user_not_found", "User not found");
        else
            http_reply(req, 200, NULL, "{}", 2);
    }
    PQclear(res[0]);
    PQclear(res[1]);
done:
    json_decref(body);
    auth_caller_free(&caller);
}

bool auth__require_admin(http_request_t *req, auth_caller_t *caller)
{
    return require_admin(req, caller);
}
