/*
 * The GoTrue-compatible Auth endpoints (/auth/v1) that supabase-js's auth
 * client calls, and the specification's own /auth/sign-up, /auth/sign-in,
 * /auth/sign-out and /auth/user. Request and response shapes follow section 1
 * of the wire reference; the SQL they run lives in 000_platform_auth.sql (and
 * 022_auth_admin_update.sql) and executes as service_role, through auth__run.
 * This file holds what the endpoints share (errors, request checks, running
 * the SQL), the settings/health/JWKS endpoints and the route table; the
 * endpoints themselves are in gotrue_sessions.c, gotrue_users.c and
 * gotrue_admin.c (auth_internal.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth_internal.h"
#include "auth/oauth_provider.h"
#include "auth/password.h"
#include "core/crypto.h"
#include "core/log.h"
#include "http/body.h"

/* ------------------------------------------------------------ responses */

/* GoTrue's error shape, readable by both of auth-js's parsers (wire
 * reference 1.6): string code, legacy error_code, msg and message. */
void auth__error(http_request_t *req, int status, const char *code, const char *message)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "code", code, "error_code", code, "msg", message,
                          "message", message);
    http_add_header(req, "X-Supabase-Api-Version", "2024-01-01");
    http_add_header(req, "x-sb-error-code", code);
    http_reply_json(req, status, j);
}

static void weak_password_error(http_request_t *req, long min_len)
{
    char msg[128];
    snprintf(msg, sizeof(msg), "Password should be at least %ld characters.", min_len);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:{s:[s]}}", "code", "weak_password", "error_code",
                          "weak_password", "msg", msg, "message", msg, "weak_password", "reasons",
                          "length");
    http_add_header(req, "X-Supabase-Api-Version", "2024-01-01");
    http_add_header(req, "x-sb-error-code", "weak_password");
    http_reply_json(req, 422, j);
}

void auth__rate_limited(http_request_t *req, int wait, const char *message)
{
    char v[16];
    snprintf(v, sizeof(v), "%d", wait);
    http_add_header(req, "Retry-After", v);
    auth__error(req, 429, "over_request_rate_limit", message);
}

/* ------------------------------------------------------------- helpers */

bool auth_email_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > 254)
        return false;
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@') || !at[1])
        return false;
    const char *dot = strrchr(at + 1, '.');
    if (!dot || dot == at + 1 || !dot[1])
        return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == '"' || *p == ',' ||
            *p == ';' || *p == '\\' || *p == '(' || *p == ')')
            return false;
    return true;
}

/* A string member of obj, or NULL. A string with a NUL byte inside also
 * gives NULL (see has_nul): C code must never see it cut short. */
const char *auth__jstr(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    const char *s = json_string_value(v);
    if (s && strlen(s) != json_string_length(v))
        return NULL;
    return s;
}

/* The name of a string member of obj that contains a NUL byte ("\u0000"),
 * or NULL when there is none. */
static const char *field_with_nul(json_t *obj)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v))
            return k;
    }
    return NULL;
}

/* Reads the JSON object body or answers 400. */
json_t *auth__read_body(http_request_t *req)
{
    json_t *j = NULL;
    char err[256];
    if (!body_parse_json(cd_buf_str(&req->body), req->body.len, BODY_JSON_OBJECT | BODY_JSON_EMPTY,
                         &j, err, sizeof(err))) {
        auth__error(req, 400, "bad_json", err);
        return NULL;
    }
    const char *bad = field_with_nul(j);
    if (bad) {
        /* Refused, never cut short: "secret\u0000x" must not become "secret". */
        bool pw = strcmp(bad, "password") == 0;
        json_decref(j);
        auth__error(req, pw ? 422 : 400, "validation_failed",
                    pw ? "Password contains a NUL character."
                       : "A field of the request contains a NUL character.");
        return NULL;
    }
    return j;
}

/* A service_role caller context for the auth SQL, carrying the client's
 * address and user agent for the audit trail. */
void auth__service_who(http_request_t *req, const char *headers_json, db_caller_t *who)
{
    memset(who, 0, sizeof(*who));
    who->role = "service_role";
    who->claims_json = "{\"role\":\"service_role\"}";
    who->headers_json = headers_json;
    who->method = req->method;
    who->path = req->path;
}

bool auth__require_apikey(http_request_t *req, auth_caller_t *caller)
{
    const char *why;
    auth_id_status_t st = auth_identify(auth__app(req), req, true, caller, &why);
    if (st == AUTH_ID_OK)
        return true;
    if (st == AUTH_ID_BAD_JWT) {
        char msg[160];
        snprintf(msg, sizeof(msg), "invalid JWT: unable to parse or verify signature, %s", why);
        auth__error(req, 403, "bad_jwt", msg);
    } else {
        auth_reply_identify_error(req, st, why);
    }
    auth_caller_free(caller);
    return false;
}

/* For endpoints that need a signed-in user's token. */
bool auth__require_user(http_request_t *req, auth_caller_t *caller)
{
    if (!auth__require_apikey(req, caller))
        return false;
    if (!caller->has_bearer) {
        auth__error(req, 401, "no_authorization", "This endpoint requires a valid Bearer token");
        auth_caller_free(caller);
        return false;
    }
    if (!cd_is_uuid(caller->user_id)) {
        auth__error(req, 403, "bad_jwt", "invalid claim: missing sub claim");
        auth_caller_free(caller);
        return false;
    }
    return true;
}

bool auth__check_limiter(http_request_t *req)
{
    app_t *app = auth__app(req);
    int wait = auth_limiter_hit(app->limiter, req->client_ip, app->cfg.auth_rate_limit);
    if (wait) {
        auth__rate_limited(req, wait, "Request rate limit reached");
        return false;
    }
    return true;
}

bool auth__check_password(http_request_t *req, const char *pw)
{
    app_t *app = auth__app(req);
    switch (password_check_policy(pw, strlen(pw), (size_t)app->cfg.password_min_length)) {
    case PASSWORD_OK:
        return true;
    case PASSWORD_TOO_SHORT:
        weak_password_error(req, app->cfg.password_min_length);
        return false;
    case PASSWORD_TOO_LONG:
        auth__error(
            req, 422, "validation_failed",
            "Password cannot be longer than 72 bytes (bcrypt's limit); choose a shorter one.");
        return false;
    case PASSWORD_HAS_NUL:
        break;
    }
    auth__error(req, 422, "validation_failed", "Password contains a NUL character.");
    return false;
}

bool auth__hash_password(http_request_t *req, const char *pw, char hash[PASSWORD_HASH_BYTES])
{
    if (password_hash(pw, (int)auth__app(req)->cfg.bcrypt_cost, hash, PASSWORD_HASH_BYTES))
        return true;
    auth__error(req, 500, "unexpected_failure", "could not hash the password");
    return false;
}

bool auth__check_email(http_request_t *req, const char *email)
{
    if (email && auth_email_valid(email))
        return true;
    auth__error(req, 400, "validation_failed", "Unable to validate email address: invalid format");
    return false;
}

/* ------------------------------------------------------------ database */

const auth_unique_t AUTH_UNIQUE_EMAIL = {
    "email_exists", "A user with this email address has already been registered", SIZE_MAX};

static bool run_auth_sql(http_request_t *req, const char *headers_json, bool read_only,
                         bool with_secrets, const db_stmt_t *stmts, size_t n, PGresult **res,
                         const auth_unique_t *unique)
{
    db_caller_t who;
    auth__service_who(req, headers_json, &who);
    who.read_only = read_only;
    who.with_secrets = with_secrets;
    db_error_t err;
    db_status_t st = db_run(&who, stmts, n, res, &err);
    if (st == DB_OK)
        return true;
    if (st == DB_UNAVAILABLE) {
        http_reply_unavailable(req, db_retry_after());
        return false;
    }
    if (unique && db_error_http(err.sqlstate, false).kind == DB_ERR_UNIQUE &&
        err.failed_stmt >= 0 && (size_t)err.failed_stmt < unique->before) {
        auth__error(req, 422, unique->code, unique->message);
        return false;
    }
    log_error("auth SQL failed: %s (SQLSTATE %s) %s", err.message, err.sqlstate, err.detail);
    auth__error(req, 500, "unexpected_failure", "Unexpected failure, please check server logs");
    return false;
}

bool auth__run(http_request_t *req, const char *headers_json, bool read_only,
               const db_stmt_t *stmts, size_t n, PGresult **res, const auth_unique_t *unique)
{
    return run_auth_sql(req, headers_json, read_only, false, stmts, n, res, unique);
}

bool auth__query(http_request_t *req, const char *headers_json, bool read_only, const char *sql,
                 int nparams, const char *const *params, PGresult **res)
{
    db_stmt_t s = {sql, nparams, params};
    return auth__run(req, headers_json, read_only, &s, 1, res, NULL);
}

bool auth__run_secrets(http_request_t *req, const char *headers_json, const db_stmt_t *stmts,
                       size_t n, PGresult **res)
{
    return run_auth_sql(req, headers_json, false, true, stmts, n, res, NULL);
}

char *auth__object_text(const json_t *v)
{
    return json_is_object(v) ? json_dumps(v, JSON_COMPACT) : NULL;
}

/* -------------------------------------------------------------- settings */

static void handle_settings(http_request_t *req)
{
    app_t *app = auth__app(req);
    oauth_provider_t p;
    bool google = oauth_provider_get(&app->cfg, "google", &p);
    bool github = oauth_provider_get(&app->cfg, "github", &p);
    bool oidc = oauth_provider_get(&app->cfg, "oidc", &p);
    json_t *j = json_pack(
        "{s:{s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b}, s:b, s:b, s:b, s:s, s:b, s:b}", "external",
        "email", 1, "phone", 0, "anonymous_users", 0, "google", google, "github", github, "oidc",
        oidc, "apple", 0, "azure", 0, "disable_signup", app->cfg.disable_signup,
        "mailer_autoconfirm", app->mailer_autoconfirm, "phone_autoconfirm", 0, "sms_provider", "",
        "saml_enabled", 0, "passkeys_enabled", 0);
    /* MFA (issue 14): TOTP and recovery codes; phone and WebAuthn factors are not offered */
    json_object_set_new(j, "mfa_enabled", json_true());
    json_object_set_new(j, "mfa",
                        json_pack("{s:{s:b, s:b}, s:{s:b, s:b}, s:{s:b, s:b}, s:b}", "totp",
                                  "enroll_enabled", 1, "verify_enabled", 1, "recovery_codes",
                                  "enroll_enabled", 1, "verify_enabled", 1, "phone",
                                  "enroll_enabled", 0, "verify_enabled", 0, "required_for_admin",
                                  app->cfg.mfa_required_for_admin));
    http_reply_json(req, 200, j);
}

static void handle_health(http_request_t *req)
{
    json_t *j = json_pack("{s:s, s:s, s:s}", "version", CAMPAIGND_VERSION, "name", "campaignd",
                          "description", "campaignd Auth, compatible with Supabase Auth (GoTrue)");
    http_reply_json(req, 200, j);
}

static void handle_jwks(http_request_t *req)
{
    /* HS256 only: symmetric keys are never published. */
    http_add_header(req, "Cache-Control", "public, max-age=600");
    http_reply_json(req, 200, json_pack("{s:[]}", "keys"));
}

/* ----------------------------------------------------------------- table */

const http_route_t auth_routes[] = {
    {"POST", "/auth/v1/signup", auth__handle_signup, true},
    {"POST", "/auth/v1/token", auth__handle_token, true},
    {"POST", "/auth/v1/logout", auth__handle_logout, true},
    {"GET", "/auth/v1/user", auth__handle_get_user, false},
    {"POST", "/auth/v1/recover", auth__handle_recover, true},
    {"POST", "/auth/v1/otp", auth__handle_otp, true},
    {"POST", "/auth/v1/magiclink", auth__handle_otp, true},
    {"POST", "/auth/v1/resend", auth__handle_resend, true},
    {"POST", "/auth/v1/verify", auth__handle_verify_post, true},
    {"GET", "/auth/v1/verify", auth__handle_verify_get, false},
    {"POST", "/auth/v1/invite", auth__handle_invite, true},
    {"POST", "/auth/v1/admin/generate_link", auth__handle_generate_link, true},
    {"PUT", "/auth/v1/user", auth__handle_put_user, true},
    /* OAuth and PKCE (gotrue_oauth.c) */
    {"GET", "/auth/v1/authorize", auth__handle_authorize, false},
    {"GET", "/auth/v1/callback", auth__handle_callback, false},
    {"GET", "/auth/v1/settings", handle_settings, false},
    {"GET", "/auth/v1/health", handle_health, false},
    {"GET", "/auth/v1/.well-known/jwks.json", handle_jwks, false},
    /* MFA (gotrue_mfa.c): the recovery-codes paths before /factors/:id */
    {"POST", "/auth/v1/factors", auth__handle_mfa_enroll, true},
    {"GET", "/auth/v1/factors/recovery-codes", auth__handle_recovery_status, false},
    {"POST", "/auth/v1/factors/recovery-codes", auth__handle_recovery_generate, true},
    {"POST", "/auth/v1/factors/recovery-codes/verify", auth__handle_recovery_verify, true},
    {"POST", "/auth/v1/factors/recovery-codes/regenerate", auth__handle_recovery_regenerate, true},
    {"DELETE", "/auth/v1/factors/recovery-codes", auth__handle_recovery_delete, true},
    {"POST", "/auth/v1/factors/:id/challenge", auth__handle_mfa_challenge, true},
    {"POST", "/auth/v1/factors/:id/verify", auth__handle_mfa_verify, true},
    {"DELETE", "/auth/v1/factors/:id", auth__handle_mfa_unenroll, true},
    {"GET", "/auth/v1/admin/users", auth__handle_admin_list, false},
    {"POST", "/auth/v1/admin/users", auth__handle_admin_create, true},
    {"GET", "/auth/v1/admin/users/:id", auth__handle_admin_get, false},
    {"PUT", "/auth/v1/admin/users/:id", auth__handle_admin_update, true},
    {"DELETE", "/auth/v1/admin/users/:id", auth__handle_admin_delete, true},
    /* the specification's endpoints (database-implementation.md, "API Endpoints") */
    {"POST", "/auth/sign-up", auth__handle_signup, true},
    {"POST", "/auth/sign-in", auth__handle_spec_sign_in, true},
    {"POST", "/auth/sign-out", auth__handle_logout, true},
    {"GET", "/auth/user", auth__handle_get_user, false},
};
const size_t auth_routes_len = CD_ARRAY_LEN(auth_routes);
