/*
 * The GoTrue-compatible Auth endpoints (/auth/v1) that supabase-js's auth
 * client calls, and the specification's own /auth/sign-up, /auth/sign-in,
 * /auth/sign-out and /auth/user. Request and response shapes follow section 1
 * of the wire reference; the SQL they run lives in 000_platform_auth.sql and
 * executes as service_role.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "auth/jwt.h"
#include "auth/password.h"
#include "core/buf.h"
#include "core/crypto.h"
#include "core/log.h"
#include "http/body.h"

/* How many descendants of a presented refresh token the server derives: a
 * parallel tab may present a token this many rotations old within the reuse
 * interval and still get the live one. */
#define AUTH_CHAIN_DEPTH      5
#define AUTH_MAX_PER_PAGE     1000
#define AUTH_SESSION_JSON_MAX (1024 * 1024)

/* ------------------------------------------------------------ responses */

/* GoTrue's error shape, readable by both of auth-js's parsers (wire
 * reference 1.6): string code, legacy error_code, msg and message. */
static void gotrue_error(http_request_t *req, int status, const char *code, const char *message)
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

static void reply_db_failure(http_request_t *req, db_status_t st, const db_error_t *err)
{
    if (st == DB_UNAVAILABLE) {
        http_reply_unavailable(req, db_retry_after());
        return;
    }
    log_error("auth SQL failed: %s (SQLSTATE %s) %s", err->message, err->sqlstate, err->detail);
    gotrue_error(req, 500, "unexpected_failure", "Unexpected failure, please check server logs");
}

static void rate_limited(http_request_t *req, int wait, const char *message)
{
    char v[16];
    snprintf(v, sizeof(v), "%d", wait);
    http_add_header(req, "Retry-After", v);
    gotrue_error(req, 429, "over_request_rate_limit", message);
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
static const char *jstr(json_t *obj, const char *key)
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
static json_t *read_body(http_request_t *req)
{
    json_t *j = NULL;
    char err[256];
    if (!body_parse_json(cd_buf_str(&req->body), req->body.len, BODY_JSON_OBJECT | BODY_JSON_EMPTY,
                         &j, err, sizeof(err))) {
        gotrue_error(req, 400, "bad_json", err);
        return NULL;
    }
    const char *bad = field_with_nul(j);
    if (bad) {
        /* Refused, never cut short: "secret\u0000x" must not become "secret". */
        bool pw = strcmp(bad, "password") == 0;
        json_decref(j);
        gotrue_error(req, pw ? 422 : 400, "validation_failed",
                     pw ? "Password contains a NUL character."
                        : "A field of the request contains a NUL character.");
        return NULL;
    }
    return j;
}

static app_t *app_of(http_request_t *req)
{
    return req->ctx;
}

/* A service_role caller context for the auth SQL, carrying the client's
 * address and user agent for the audit trail. */
static void service_caller(http_request_t *req, char *headers_json, db_caller_t *who)
{
    memset(who, 0, sizeof(*who));
    who->role = "service_role";
    who->claims_json = "{\"role\":\"service_role\"}";
    who->headers_json = headers_json;
    who->method = req->method;
    who->path = req->path;
}

static bool require_apikey(http_request_t *req, auth_caller_t *caller)
{
    const char *why;
    auth_id_status_t st = auth_identify(app_of(req), req, true, caller, &why);
    if (st == AUTH_ID_OK)
        return true;
    if (st == AUTH_ID_BAD_JWT) {
        char msg[160];
        snprintf(msg, sizeof(msg), "invalid JWT: unable to parse or verify signature, %s", why);
        gotrue_error(req, 403, "bad_jwt", msg);
    } else {
        auth_reply_identify_error(req, st, why);
    }
    auth_caller_free(caller);
    return false;
}

/* For endpoints that need a signed-in user's token. */
static bool require_user(http_request_t *req, auth_caller_t *caller)
{
    if (!require_apikey(req, caller))
        return false;
    if (!caller->has_bearer) {
        gotrue_error(req, 401, "no_authorization", "This endpoint requires a valid Bearer token");
        auth_caller_free(caller);
        return false;
    }
    if (!cd_is_uuid(caller->user_id)) {
        gotrue_error(req, 403, "bad_jwt", "invalid claim: missing sub claim");
        auth_caller_free(caller);
        return false;
    }
    return true;
}

static bool check_limiter(http_request_t *req)
{
    app_t *app = app_of(req);
    int wait = auth_limiter_hit(app->limiter, req->client_ip, app->cfg.auth_rate_limit);
    if (wait) {
        rate_limited(req, wait, "Request rate limit reached");
        return false;
    }
    return true;
}

static bool check_password_policy(http_request_t *req, const char *pw)
{
    app_t *app = app_of(req);
    switch (password_check_policy(pw, strlen(pw), (size_t)app->cfg.password_min_length)) {
    case PASSWORD_OK:
        return true;
    case PASSWORD_TOO_SHORT:
        weak_password_error(req, app->cfg.password_min_length);
        return false;
    case PASSWORD_TOO_LONG:
        gotrue_error(
            req, 422, "validation_failed",
            "Password cannot be longer than 72 bytes (bcrypt's limit); choose a shorter one.");
        return false;
    case PASSWORD_HAS_NUL:
        break;
    }
    gotrue_error(req, 422, "validation_failed", "Password contains a NUL character.");
    return false;
}

/* The refresh token chain: child = HMAC(secret, "refresh:" + parent). */
static void refresh_child(const app_t *app, const char *parent, char out[CD_TOKEN_LEN + 1])
{
    char msg[CD_TOKEN_LEN + 16];
    int n = snprintf(msg, sizeof(msg), "refresh:%s", parent);
    cd_hmac_b64url(app->jwt_secret, app->jwt_secret_len, msg, (size_t)n, out);
}

/* Builds and sends the Session JSON from the claims and user JSON that
 * PostgreSQL produced. */
static void reply_session(http_request_t *req, const char *claims_text, const char *user_json,
                          const char *refresh_token)
{
    app_t *app = app_of(req);
    json_error_t je;
    json_t *claims = json_loads(claims_text, 0, &je);
    char *access = claims ? jwt_sign(claims, app->jwt_secret, app->jwt_secret_len) : NULL;
    long long exp = claims ? json_integer_value(json_object_get(claims, "exp")) : 0;
    json_decref(claims);
    if (!access) {
        gotrue_error(req, 500, "unexpected_failure", "could not sign the access token");
        return;
    }
    cd_buf_t b;
    cd_buf_init(&b, AUTH_SESSION_JSON_MAX);
    bool ok = cd_buf_printf(&b,
                            "{\"access_token\":\"%s\",\"token_type\":\"bearer\",\"expires_in\":%ld,"
                            "\"expires_at\":%lld,\"refresh_token\":\"%s\",\"user\":%s}",
                            access, app->cfg.jwt_exp, exp, refresh_token, user_json);
    free(access);
    if (!ok) {
        cd_buf_free(&b);
        gotrue_error(req, 500, "unexpected_failure", "session too large");
        return;
    }
    size_t len = b.len;
    http_reply_take(req, 200, NULL, cd_buf_take(&b), len);
}

/* Runs the statements that start a session for user_id and answers with the
 * Session JSON. extra/nextra run first in the same transaction (e.g. creating
 * the user). audit_action names the auth.audit_log_entries action. */
static void start_session(http_request_t *req, const char *user_id, const char *email,
                          const db_stmt_t *extra, size_t nextra, const char *audit_action)
{
    app_t *app = app_of(req);
    char sid[CD_UUID_LEN + 1], token[CD_TOKEN_LEN + 1], hash[CD_SHA256_HEX_LEN + 1];
    if (!cd_random_uuid(sid) || !cd_random_token(token)) {
        gotrue_error(req, 500, "unexpected_failure", "no randomness available");
        return;
    }
    cd_sha256_hex(token, strlen(token), hash);
    char iat[24], exp[24];
    long long now = (long long)time(NULL);
    snprintf(iat, sizeof(iat), "%lld", now);
    snprintf(exp, sizeof(exp), "%lld", now + app->cfg.jwt_exp);
    const char *ua = http_header(req, "User-Agent");

    const char *p_session[5] = {user_id, sid, hash, req->client_ip, ua ? ua : ""};
    const char *p_audit[4] = {audit_action, user_id, email, req->client_ip};
    const char *p_iss[5] = {user_id, sid, iat, exp, app->issuer};
    db_stmt_t stmts[8];
    size_t n = 0;
    for (size_t i = 0; i < nextra && n < 5; i++)
        stmts[n++] = extra[i];
    size_t first = n;
    stmts[n++] = (db_stmt_t){"select auth.start_session($1, $2, $3, "
                             "case when $4 ~ '^[0-9a-fA-F:.]+$' then $4::inet end, $5)",
                             5, p_session};
    stmts[n++] = (db_stmt_t){"select auth.audit($1, $2, $3, $4, '{}'::jsonb)", 4, p_audit};
    stmts[n++] = (db_stmt_t){"select auth.access_claims(u, $2, $3, $4, $5)::text, "
                             "auth.user_json(u)::text from auth.users u where u.id = $1",
                             5, p_iss};
    PGresult *res[8] = {0};
    db_error_t err;
    char *headers = auth_headers_json(req);
    db_caller_t who;
    service_caller(req, headers, &who);
    db_conn_t *c = db_thread_conn();
    db_status_t st = c ? db_run_as(c, &who, stmts, n, res, &err) : DB_UNAVAILABLE;
    free(headers);
    if (st == DB_SQL_ERROR && err.failed_stmt >= 0 && (size_t)err.failed_stmt < first &&
        strcmp(err.sqlstate, "23505") == 0) {
        gotrue_error(req, 422, "user_already_exists", "User already registered");
    } else if (st != DB_OK) {
        reply_db_failure(req, st, &err);
    } else {
        PGresult *r = res[n - 1];
        if (PQntuples(r) != 1)
            gotrue_error(req, 500, "unexpected_failure", "the user vanished while signing in");
        else
            reply_session(req, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), token);
    }
    for (size_t i = 0; i < n; i++)
        PQclear(res[i]);
}

/* --------------------------------------------------------------- sign-up */

static void handle_signup(http_request_t *req)
{
    app_t *app = app_of(req);
    auth_caller_t caller;
    if (!require_apikey(req, &caller))
        return;
    auth_caller_free(&caller);
    json_t *body = read_body(req);
    if (!body)
        return;
    const char *email = jstr(body, "email");
    const char *password = jstr(body, "password");
    json_t *data = json_object_get(body, "data");
    char uid[CD_UUID_LEN + 1];
    char hash[PASSWORD_HASH_BYTES];
    if (app->cfg.disable_signup) {
        gotrue_error(req, 422, "signup_disabled", "Signups not allowed for this instance");
        goto done;
    }
    if (!check_limiter(req))
        goto done;
    if (!email && jstr(body, "phone")) {
        gotrue_error(req, 422, "phone_provider_disabled", "Phone signups are disabled");
        goto done;
    }
    if (!email || !auth_email_valid(email)) {
        gotrue_error(req, 400, "validation_failed",
                     "Unable to validate email address: invalid format");
        goto done;
    }
    if (!password || !*password) {
        gotrue_error(req, 400, "validation_failed", "Signup requires a valid password");
        goto done;
    }
    if (data && !json_is_object(data) && !json_is_null(data)) {
        gotrue_error(req, 400, "validation_failed", "data must be an object");
        goto done;
    }
    if (!check_password_policy(req, password))
        goto done;
    if (!password_hash(password, (int)app->cfg.bcrypt_cost, hash, sizeof(hash)) ||
        !cd_random_uuid(uid)) {
        gotrue_error(req, 500, "unexpected_failure", "could not hash the password");
        goto done;
    }
    /* The role is never taken from sign-up data (SEED-NOTES 1): the user gets
     * DEFAULT_USER_ROLE and create_user drops any "role" key. */
    char *meta = json_is_object(data) ? json_dumps(data, JSON_COMPACT) : strdup("{}");
    const char *params[5] = {email, hash, app->cfg.default_user_role, meta ? meta : "{}", uid};
    db_stmt_t create = {
        "select auth.create_user($1, $2, $3, $4::jsonb, '{}'::jsonb, true, $5::uuid)", 5, params};
    start_session(req, uid, email, &create, 1, "user_signedup");
    free(meta);
done:
    json_decref(body);
}

/* ---------------------------------------------------------------- tokens */

static void grant_password(http_request_t *req, json_t *body)
{
    app_t *app = app_of(req);
    const char *email = jstr(body, "email");
    const char *password = jstr(body, "password");
    if (!email && jstr(body, "phone")) {
        gotrue_error(req, 400, "phone_provider_disabled", "Phone logins are disabled");
        return;
    }
    if (!email || !*email || !password) {
        gotrue_error(req, 400, "validation_failed", "missing email or phone");
        return;
    }
    if (!check_limiter(req))
        return;
    char lim_pair[16], lim_ip[16], window[16], lim_email[16];
    snprintf(lim_pair, sizeof(lim_pair), "%ld", app->cfg.login_max_failures_per_email);
    snprintf(lim_ip, sizeof(lim_ip), "%ld", app->cfg.login_max_failures_per_ip);
    snprintf(window, sizeof(window), "%ld", app->cfg.login_window_seconds);
    snprintf(lim_email, sizeof(lim_email), "%ld", app->cfg.login_max_failures_per_email_global);
    const char *p_throttle[6] = {email, req->client_ip, lim_pair, lim_ip, window, lim_email};
    const char *p_user[1] = {email};
    /* Check the lock-out and record this attempt as a failure in one step,
     * serialised per e-mail: parallel guesses each see the ones before them.
     * A right password later replaces the failure with a success. */
    db_stmt_t stmts[3] = {
        {"select pg_advisory_xact_lock(hashtext('campaignd.login:' || "
         "coalesce(auth.login_email($1), '')))",
         1, p_user},
        /* a growing delay per (e-mail, address), a high cap per e-mail, a cap per
         * address (migration 024): a stranger cannot lock the owner out */
        {"with t as (select auth.login_wait($1, case when $2 ~ '^[0-9a-fA-F:.]+$' then "
         "$2::inet end, $3::int, $6::int, $4::int, $5::int) as wait), "
         "ins as (insert into auth.login_attempts (email, ip, succeeded) "
         "select auth.login_email($1), case when $2 ~ '^[0-9a-fA-F:.]+$' then $2::inet end, false "
         "from t where t.wait = 0 returning id) "
         "select t.wait, (select id from ins) from t",
         6, p_throttle},
        {"select id, encrypted_password, coalesce(banned_until > now(), false), email "
         "from auth.users where lower(email) = lower(btrim($1)) and not is_sso_user "
         "and deleted_at is null",
         1, p_user},
    };
    PGresult *res[3] = {0};
    db_error_t err;
    char *headers = auth_headers_json(req);
    db_caller_t who;
    service_caller(req, headers, &who);
    db_conn_t *c = db_thread_conn();
    db_status_t st = c ? db_run_as(c, &who, stmts, 3, res, &err) : DB_UNAVAILABLE;
    if (st != DB_OK) {
        free(headers);
        reply_db_failure(req, st, &err);
        return;
    }
    PQclear(res[0]);
    res[0] = res[1];
    res[1] = res[2];
    int wait = (int)strtol(PQgetvalue(res[0], 0, 0), NULL, 10);
    char attempt_id[24];
    snprintf(attempt_id, sizeof(attempt_id), "%s", PQgetvalue(res[0], 0, 1));
    bool found = PQntuples(res[1]) == 1;
    char uid[CD_UUID_LEN + 1] = "", stored[PASSWORD_HASH_BYTES + 64] = "", canon[320] = "";
    bool banned = false;
    if (found) {
        snprintf(uid, sizeof(uid), "%s", PQgetvalue(res[1], 0, 0));
        snprintf(stored, sizeof(stored), "%s", PQgetvalue(res[1], 0, 1));
        banned = PQgetvalue(res[1], 0, 2)[0] == 't';
        snprintf(canon, sizeof(canon), "%s", PQgetvalue(res[1], 0, 3));
    }
    PQclear(res[0]);
    PQclear(res[1]);
    if (wait > 0) {
        free(headers);
        rate_limited(req, wait, "Too many failed sign-in attempts; wait before trying again.");
        return;
    }
    /* Unknown e-mail and wrong password take the same time and get the same answer. */
    bool ok = found && *stored ? password_verify(password, stored)
                               : password_verify_dummy(password, (int)app->cfg.bcrypt_cost);
    if (!ok) {
        /* the failure is already recorded; only the audit trail remains */
        const char *p_fail[3] = {email, req->client_ip, found ? uid : NULL};
        db_stmt_t f = {"select auth.audit('login_failed', $3::uuid, $1, $2, '{}'::jsonb)", 3,
                       p_fail};
        PGresult *fr = NULL;
        c = db_thread_conn();
        st = c ? db_run_as(c, &who, &f, 1, &fr, &err) : DB_UNAVAILABLE;
        PQclear(fr);
        free(headers);
        if (st == DB_UNAVAILABLE) {
            http_reply_unavailable(req, db_retry_after());
            return;
        }
        gotrue_error(req, 400, "invalid_credentials", "Invalid login credentials");
        return;
    }
    free(headers);
    if (banned) {
        gotrue_error(req, 400, "user_banned", "User is banned");
        return;
    }
    const char *p_ok[3] = {email, req->client_ip, *attempt_id ? attempt_id : NULL};
    db_stmt_t rec[2] = {
        {"delete from auth.login_attempts where id = $1::bigint", 1, p_ok + 2},
        {"select auth.record_login_attempt($1, case when $2 ~ '^[0-9a-fA-F:.]+$' "
         "then $2::inet end, true)",
         2, p_ok},
    };
    start_session(req, uid, canon, rec, 2, "login");
}

static void grant_refresh(http_request_t *req, json_t *body)
{
    app_t *app = app_of(req);
    const char *token = jstr(body, "refresh_token");
    if (!token || !*token) {
        gotrue_error(req, 400, "validation_failed", "refresh_token required");
        return;
    }
    if (strlen(token) != CD_TOKEN_LEN) { /* every token we issue is exactly this long */
        gotrue_error(req, 400, "refresh_token_not_found",
                     "Invalid Refresh Token: Refresh Token Not Found");
        return;
    }
    if (!check_limiter(req))
        return;
    /* The presented token's hash and its next descendants' tokens and hashes. */
    char hash[CD_SHA256_HEX_LEN + 1];
    cd_sha256_hex(token, strlen(token), hash);
    char chain_tok[AUTH_CHAIN_DEPTH][CD_TOKEN_LEN + 1];
    char chain_arr[AUTH_CHAIN_DEPTH * (CD_SHA256_HEX_LEN + 1) + 4];
    size_t w = 0;
    chain_arr[w++] = '{';
    const char *parent = token;
    for (int i = 0; i < AUTH_CHAIN_DEPTH; i++) {
        refresh_child(app, parent, chain_tok[i]);
        char h[CD_SHA256_HEX_LEN + 1];
        cd_sha256_hex(chain_tok[i], strlen(chain_tok[i]), h);
        if (i)
            chain_arr[w++] = ',';
        memcpy(chain_arr + w, h, CD_SHA256_HEX_LEN);
        w += CD_SHA256_HEX_LEN;
        parent = chain_tok[i];
    }
    chain_arr[w++] = '}';
    chain_arr[w] = '\0';

    char reuse[16], iat[24], exp[24];
    long long now = (long long)time(NULL);
    snprintf(reuse, sizeof(reuse), "%ld", app->cfg.refresh_token_reuse_interval);
    snprintf(iat, sizeof(iat), "%lld", now);
    snprintf(exp, sizeof(exp), "%lld", now + app->cfg.jwt_exp);
    const char *p_rot[3] = {hash, chain_arr, reuse};
    const char *p_live[4] = {chain_arr, iat, exp, app->issuer};
    const char *p_audit[2] = {chain_arr, req->client_ip};
    db_stmt_t stmts[3] = {
        {"select status, depth from auth.rotate_refresh_token($1, $2::text[], $3::int)", 3, p_rot},
        {"select auth.access_claims(u, t.session_id, $2::bigint, $3::bigint, $4)::text, "
         "auth.user_json(u)::text from auth.refresh_tokens t join auth.users u "
         "on u.id = t.user_id::uuid where t.token = any($1::text[]) and not t.revoked",
         4, p_live},
        {"select auth.audit('token_refreshed', t.user_id::uuid, null, $2, '{}'::jsonb) "
         "from auth.refresh_tokens t where t.token = any($1::text[]) and not t.revoked",
         2, p_audit},
    };
    PGresult *res[3] = {0};
    db_error_t err;
    char *headers = auth_headers_json(req);
    db_caller_t who;
    service_caller(req, headers, &who);
    db_conn_t *c = db_thread_conn();
    db_status_t st = c ? db_run_as(c, &who, stmts, 3, res, &err) : DB_UNAVAILABLE;
    free(headers);
    if (st != DB_OK) {
        /* 5xx (never 4xx) for transient failures: the client keeps its session. */
        reply_db_failure(req, st, &err);
        return;
    }
    const char *status = PQgetvalue(res[0], 0, 0);
    int depth = PQgetisnull(res[0], 0, 1) ? 0 : (int)strtol(PQgetvalue(res[0], 0, 1), NULL, 10);
    if ((strcmp(status, "ok") == 0 || strcmp(status, "reused") == 0) && depth >= 1 &&
        depth <= AUTH_CHAIN_DEPTH && PQntuples(res[1]) == 1) {
        reply_session(req, PQgetvalue(res[1], 0, 0), PQgetvalue(res[1], 0, 1),
                      chain_tok[depth - 1]);
    } else if (strcmp(status, "already_used") == 0) {
        log_warn("refresh token reuse detected from %s: session revoked", req->client_ip);
        gotrue_error(req, 400, "refresh_token_already_used", "Invalid Refresh Token: Already Used");
    } else if (strcmp(status, "banned") == 0) {
        gotrue_error(req, 400, "user_banned", "User is banned");
    } else {
        gotrue_error(req, 400, "refresh_token_not_found",
                     "Invalid Refresh Token: Refresh Token Not Found");
    }
    for (size_t i = 0; i < 3; i++)
        PQclear(res[i]);
}

static void handle_token(http_request_t *req)
{
    auth_caller_t caller;
    if (!require_apikey(req, &caller))
        return;
    auth_caller_free(&caller);
    const char *grant = http_query_arg(req, "grant_type");
    json_t *body = read_body(req);
    if (!body)
        return;
    if (grant && strcmp(grant, "password") == 0)
        grant_password(req, body);
    else if (grant && strcmp(grant, "refresh_token") == 0)
        grant_refresh(req, body);
    else
        gotrue_error(req, 400, "invalid_credentials", "unsupported_grant_type");
    json_decref(body);
}

/* The specification's POST /auth/sign-in {email, password}. */
static void handle_spec_sign_in(http_request_t *req)
{
    auth_caller_t caller;
    if (!require_apikey(req, &caller))
        return;
    auth_caller_free(&caller);
    json_t *body = read_body(req);
    if (!body)
        return;
    grant_password(req, body);
    json_decref(body);
}

/* ---------------------------------------------------------------- logout */

static void handle_logout(http_request_t *req)
{
    auth_caller_t caller;
    if (!require_user(req, &caller))
        return;
    const char *scope = http_query_arg(req, "scope");
    if (!scope || !*scope)
        scope = "global";
    if (strcmp(scope, "global") && strcmp(scope, "local") && strcmp(scope, "others")) {
        gotrue_error(req, 400, "validation_failed", "scope must be one of global, local, others");
        auth_caller_free(&caller);
        return;
    }
    const char *email = json_string_value(json_object_get(caller.claims, "email"));
    const char *p[5] = {caller.user_id, cd_is_uuid(caller.session_id) ? caller.session_id : NULL,
                        scope, email, req->client_ip};
    /* Each statement gets exactly the parameters it uses: PostgreSQL cannot
     * type a parameter that a statement never mentions. */
    const char *p_audit[4] = {caller.user_id, email, req->client_ip, scope};
    db_stmt_t stmts[2] = {
        {"select auth.end_sessions($1::uuid, $2::uuid, $3)", 3, p},
        {"select auth.audit('logout', $1::uuid, $2, $3, jsonb_build_object('scope', $4::text))", 4,
         p_audit},
    };
    PGresult *res[2] = {0};
    db_error_t err;
    db_caller_t who;
    service_caller(req, caller.headers_json, &who);
    db_conn_t *c = db_thread_conn();
    db_status_t st = c ? db_run_as(c, &who, stmts, 2, res, &err) : DB_UNAVAILABLE;
    PQclear(res[0]);
    PQclear(res[1]);
    auth_caller_free(&caller);
    if (st != DB_OK) {
        reply_db_failure(req, st, &err);
        return;
    }
    http_reply(req, 204, NULL, NULL, 0);
}

/* ------------------------------------------------------------------ user */

/* Looks up the caller's user row and session. Returns the result (1 row:
 * user_json, session_exists, encrypted_password, role) or NULL after replying. */
static PGresult *load_self(http_request_t *req, auth_caller_t *caller)
{
    const char *p[2] = {caller->user_id,
                        cd_is_uuid(caller->session_id) ? caller->session_id : NULL};
    db_caller_t who;
    service_caller(req, caller->headers_json, &who);
    who.read_only = true;
    PGresult *r = NULL;
    db_error_t err;
    db_conn_t *c = db_thread_conn();
    db_status_t st =
        c ? db_run1(
                c, &who,
                "select auth.user_json(u)::text, "
                "$2::uuid is null or exists (select 1 from auth.sessions s where s.id = $2::uuid "
                "and s.user_id = u.id), u.encrypted_password, auth.user_role(u), "
                "coalesce(u.banned_until > now(), false) "
                "from auth.users u where u.id = $1::uuid and u.deleted_at is null",
                2, p, &r, &err)
          : DB_UNAVAILABLE;
    if (st != DB_OK) {
        reply_db_failure(req, st, &err);
        return NULL;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        gotrue_error(req, 403, "user_not_found", "User from sub claim in JWT does not exist");
        return NULL;
    }
    if (PQgetvalue(r, 0, 1)[0] != 't') {
        PQclear(r);
        gotrue_error(req, 403, "session_not_found",
                     "Session from session_id claim in JWT does not exist");
        return NULL;
    }
    if (PQgetvalue(r, 0, 4)[0] == 't') {
        PQclear(r);
        gotrue_error(req, 403, "user_banned", "User is banned");
        return NULL;
    }
    return r;
}

static void handle_get_user(http_request_t *req)
{
    auth_caller_t caller;
    if (!require_user(req, &caller))
        return;
    PGresult *r = load_self(req, &caller);
    auth_caller_free(&caller);
    if (!r)
        return;
    http_reply(req, 200, NULL, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
    PQclear(r);
}

static void handle_put_user(http_request_t *req)
{
    app_t *app = app_of(req);
    auth_caller_t caller;
    if (!require_user(req, &caller))
        return;
    json_t *body = read_body(req);
    PGresult *self = NULL;
    char *meta = NULL;
    char hash[PASSWORD_HASH_BYTES] = "";
    if (!body)
        goto done;
    const char *email = jstr(body, "email");
    const char *password = jstr(body, "password");
    json_t *data = json_object_get(body, "data");
    if (data && !json_is_object(data) && !json_is_null(data)) {
        gotrue_error(req, 400, "validation_failed", "data must be an object");
        goto done;
    }
    if (json_object_get(body, "app_metadata")) {
        gotrue_error(req, 403, "not_admin",
                     "app_metadata can only be changed by an admin (use the admin API)");
        goto done;
    }
    if (email && !auth_email_valid(email)) {
        gotrue_error(req, 400, "validation_failed",
                     "Unable to validate email address: invalid format");
        goto done;
    }
    self = load_self(req, &caller);
    if (!self)
        goto done;
    const char *current_role = PQgetvalue(self, 0, 3);
    json_t *role = json_is_object(data) ? json_object_get(data, "role") : NULL;
    if (role && !json_is_null(role) &&
        (!json_is_string(role) || strcmp(json_string_value(role), current_role) != 0)) {
        /* SEED-NOTES 1: the role is not the user's to set. */
        gotrue_error(req, 403, "not_admin",
                     "Only an admin can change a user's role (campaignd user set-role, or the "
                     "admin API).");
        goto done;
    }
    if (password) {
        if (!check_password_policy(req, password))
            goto done;
        const char *stored = PQgetvalue(self, 0, 2);
        if (*stored && password_verify(password, stored)) {
            gotrue_error(req, 422, "same_password",
                         "New password should be different from the old password.");
            goto done;
        }
        if (!password_hash(password, (int)app->cfg.bcrypt_cost, hash, sizeof(hash))) {
            gotrue_error(req, 500, "unexpected_failure", "could not hash the password");
            goto done;
        }
    }
    if (json_is_object(data)) {
        json_t *copy = json_deep_copy(data);
        json_object_del(copy, "role");
        meta = json_dumps(copy, JSON_COMPACT);
        json_decref(copy);
    }
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
         "raw_user_meta_data = case when $4::jsonb is null then u.raw_user_meta_data else "
         "  coalesce((select jsonb_object_agg(k, v) from jsonb_each(u.raw_user_meta_data || "
         "$4::jsonb) "
         "            as e(k, v) where v <> 'null'::jsonb), '{}'::jsonb) end, "
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
    db_error_t err;
    db_caller_t who;
    service_caller(req, caller.headers_json, &who);
    db_conn_t *c = db_thread_conn();
    db_status_t st = c ? db_run_as(c, &who, stmts, 4, res, &err) : DB_UNAVAILABLE;
    if (st == DB_SQL_ERROR && strcmp(err.sqlstate, "23505") == 0)
        gotrue_error(req, 422, "email_exists",
                     "A user with this email address has already been registered");
    else if (st != DB_OK)
        reply_db_failure(req, st, &err);
    else
        http_reply(req, 200, NULL, PQgetvalue(res[2], 0, 1), (size_t)PQgetlength(res[2], 0, 1));
    for (size_t i = 0; i < 4; i++)
        PQclear(res[i]);
done:
    PQclear(self);
    free(meta);
    json_decref(body);
    auth_caller_free(&caller);
}

/* -------------------------------------------------------------- settings */

static void handle_settings(http_request_t *req)
{
    app_t *app = app_of(req);
    json_t *j = json_pack("{s:{s:b, s:b, s:b, s:b, s:b, s:b, s:b}, s:b, s:b, s:b, s:s, s:b, s:b}",
                          "external", "email", 1, "phone", 0, "anonymous_users", 0, "google", 0,
                          "github", 0, "apple", 0, "azure", 0, "disable_signup",
                          app->cfg.disable_signup, "mailer_autoconfirm", 1, "phone_autoconfirm", 0,
                          "sms_provider", "", "saml_enabled", 0, "passkeys_enabled", 0);
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

/* ----------------------------------------------------------------- admin */

/* Admin endpoints accept the service key (as GoTrue does) and, beyond
 * GoTrue, signed-in users whose authoritative role is admin, so that the
 * dashboard's admins can manage users. */
static bool require_admin(http_request_t *req, auth_caller_t *caller)
{
    if (!require_apikey(req, caller))
        return false;
    if (strcmp(caller->role, "service_role") == 0)
        return true;
    if (strcmp(caller->role, "authenticated") == 0 && cd_is_uuid(caller->user_id)) {
        /* The token alone is not enough: the admin must not be banned, and
         * the token's session must still exist (signed out, or ended by a
         * password change, means no admin API). */
        const char *p[2] = {caller->user_id,
                            cd_is_uuid(caller->session_id) ? caller->session_id : NULL};
        db_caller_t who;
        service_caller(req, caller->headers_json, &who);
        who.read_only = true;
        PGresult *r = NULL;
        db_error_t err;
        db_conn_t *c = db_thread_conn();
        db_status_t st =
            c ? db_run1(c, &who,
                        "select auth.user_role(u) = 'admin' from auth.users u "
                        "where u.id = $1::uuid and u.deleted_at is null "
                        "and coalesce(u.banned_until <= now(), true) "
                        "and exists (select 1 from auth.sessions s where s.id = $2::uuid "
                        "and s.user_id = u.id)",
                        2, p, &r, &err)
              : DB_UNAVAILABLE;
        if (st != DB_OK) {
            reply_db_failure(req, st, &err);
            auth_caller_free(caller);
            return false;
        }
        bool admin = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (admin)
            return true;
    }
    gotrue_error(req, 403, "not_admin", "User not allowed");
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

static void handle_admin_list(http_request_t *req)
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
    db_error_t err;
    db_caller_t who;
    service_caller(req, caller.headers_json, &who);
    who.read_only = true;
    db_conn_t *c = db_thread_conn();
    db_status_t st = c ? db_run_as(c, &who, stmts, 2, res, &err) : DB_UNAVAILABLE;
    auth_caller_free(&caller);
    if (st != DB_OK) {
        reply_db_failure(req, st, &err);
        return;
    }
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
        gotrue_error(req, 422, "validation_failed",
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

static void handle_admin_create(http_request_t *req)
{
    app_t *app = app_of(req);
    auth_caller_t caller;
    if (!require_admin(req, &caller))
        return;
    json_t *body = read_body(req);
    char *umeta = NULL, *ameta = NULL;
    char hash[PASSWORD_HASH_BYTES] = "", uid[CD_UUID_LEN + 1];
    if (!body)
        goto done;
    const char *email = jstr(body, "email");
    const char *password = jstr(body, "password");
    const char *password_hash_in = jstr(body, "password_hash");
    const char *id = jstr(body, "id");
    const char *role = NULL;
    if (!email || !auth_email_valid(email)) {
        gotrue_error(req, 400, "validation_failed",
                     "Unable to validate email address: invalid format");
        goto done;
    }
    if (!admin_role_param(req, body, &role))
        goto done;
    if (id && !cd_is_uuid(id)) {
        gotrue_error(req, 400, "validation_failed", "id must be a UUID");
        goto done;
    }
    if (password_hash_in) {
        if (!bcrypt_hash_shape(password_hash_in)) {
            gotrue_error(req, 422, "validation_failed",
                         "password_hash must be a bcrypt hash ($2a$, $2b$ or $2y$)");
            goto done;
        }
        snprintf(hash, sizeof(hash), "%s", password_hash_in);
    } else if (password) {
        if (!check_password_policy(req, password))
            goto done;
        if (!password_hash(password, (int)app->cfg.bcrypt_cost, hash, sizeof(hash))) {
            gotrue_error(req, 500, "unexpected_failure", "could not hash the password");
            goto done;
        }
    }
    json_t *um = json_object_get(body, "user_metadata");
    json_t *am = json_object_get(body, "app_metadata");
    umeta = json_is_object(um) ? json_dumps(um, JSON_COMPACT) : strdup("{}");
    ameta = json_is_object(am) ? json_dumps(am, JSON_COMPACT) : strdup("{}");
    if (id)
        snprintf(uid, sizeof(uid), "%s", id);
    else if (!cd_random_uuid(uid))
        goto done;
    bool confirm = json_is_true(json_object_get(body, "email_confirm"));
    const char *actor_email = json_string_value(json_object_get(caller.claims, "email"));
    const char *p[10] = {email,
                         *hash ? hash : NULL,
                         role ? role : "user",
                         umeta,
                         ameta,
                         confirm ? "true" : "false",
                         uid,
                         caller.user_id[0] ? caller.user_id : NULL,
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
    db_error_t err;
    db_caller_t who;
    service_caller(req, caller.headers_json, &who);
    db_conn_t *c = db_thread_conn();
    db_status_t st = c ? db_run_as(c, &who, stmts, 2, res, &err) : DB_UNAVAILABLE;
    if (st == DB_SQL_ERROR && strcmp(err.sqlstate, "23505") == 0)
        gotrue_error(req, 422, "email_exists",
                     "A user with this email address has already been registered");
    else if (st != DB_OK)
        reply_db_failure(req, st, &err);
    else
        http_reply(req, 200, NULL, PQgetvalue(res[0], 0, 0), (size_t)PQgetlength(res[0], 0, 0));
    PQclear(res[0]);
    PQclear(res[1]);
done:
    free(umeta);
    free(ameta);
    json_decref(body);
    if (caller.claims)
        auth_caller_free(&caller);
}

static void handle_admin_get(http_request_t *req)
{
    auth_caller_t caller;
    if (!require_admin(req, &caller))
        return;
    const char *id = req->params[0];
    if (!cd_is_uuid(id)) {
        auth_caller_free(&caller);
        gotrue_error(req, 404, "user_not_found", "User not found");
        return;
    }
    const char *p[1] = {id};
    db_caller_t who;
    service_caller(req, caller.headers_json, &who);
    who.read_only = true;
    PGresult *r = NULL;
    db_error_t err;
    db_conn_t *c = db_thread_conn();
    db_status_t st = c ? db_run1(c, &who,
                                 "select auth.user_json(u)::text from auth.users u "
                                 "where u.id = $1::uuid",
                                 1, p, &r, &err)
                       : DB_UNAVAILABLE;
    auth_caller_free(&caller);
    if (st != DB_OK) {
        reply_db_failure(req, st, &err);
        return;
    }
    if (PQntuples(r) == 1)
        http_reply(req, 200, NULL, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
    else
        gotrue_error(req, 404, "user_not_found", "User not found");
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

static void handle_admin_update(http_request_t *req)
{
    app_t *app = app_of(req);
    auth_caller_t caller;
    if (!require_admin(req, &caller))
        return;
    json_t *body = read_body(req);
    char *umeta = NULL, *ameta = NULL;
    char hash[PASSWORD_HASH_BYTES] = "", ban[24] = "";
    const char *id = req->params[0];
    if (!body)
        goto done;
    if (!cd_is_uuid(id)) {
        gotrue_error(req, 404, "user_not_found", "User not found");
        goto done;
    }
    const char *email = jstr(body, "email");
    const char *password = jstr(body, "password");
    const char *ban_duration = jstr(body, "ban_duration");
    const char *role = NULL;
    if (email && !auth_email_valid(email)) {
        gotrue_error(req, 400, "validation_failed",
                     "Unable to validate email address: invalid format");
        goto done;
    }
    if (!admin_role_param(req, body, &role))
        goto done;
    if (ban_duration) {
        long secs;
        if (!parse_ban_duration(ban_duration, &secs)) {
            gotrue_error(req, 400, "validation_failed",
                         "ban_duration must be like 24h, 30m or none");
            goto done;
        }
        snprintf(ban, sizeof(ban), "%ld", secs);
    }
    if (password) {
        if (!check_password_policy(req, password))
            goto done;
        if (!password_hash(password, (int)app->cfg.bcrypt_cost, hash, sizeof(hash))) {
            gotrue_error(req, 500, "unexpected_failure", "could not hash the password");
            goto done;
        }
    }
    json_t *um = json_object_get(body, "user_metadata");
    json_t *am = json_object_get(body, "app_metadata");
    if (json_is_object(um)) {
        json_t *copy = json_deep_copy(um);
        json_object_del(copy, "role");
        umeta = json_dumps(copy, JSON_COMPACT);
        json_decref(copy);
    }
    if (json_is_object(am)) {
        json_t *copy = json_deep_copy(am);
        json_object_del(copy, "provider");
        json_object_del(copy, "providers");
        ameta = json_dumps(copy, JSON_COMPACT);
        json_decref(copy);
    }
    json_t *confirm = json_object_get(body, "email_confirm");
    const char *actor_email = json_string_value(json_object_get(caller.claims, "email"));
    const char *p[10] = {id,
                         email,
                         *hash ? hash : NULL,
                         umeta,
                         ameta,
                         *ban ? ban : NULL,
                         json_is_true(confirm) ? "true" : NULL,
                         caller.user_id[0] ? caller.user_id : NULL,
                         actor_email,
                         req->client_ip};
    const char *p_audit[5] = {id, p[7], actor_email, req->client_ip, p[5]};
    /* A password set by an admin ends every session of the user. */
    const char *p_sess[2] = {id, *hash ? hash : NULL};
    db_stmt_t stmts[5] = {
        /* the role before the change, for the audit trail */
        {"select auth.user_role(u) from auth.users u where u.id = $1::uuid for update", 1, p},
        {"update auth.users u set "
         "email = coalesce(lower(btrim($2::text)), u.email), "
         "encrypted_password = coalesce($3::text, u.encrypted_password), "
         "raw_user_meta_data = case when $4::jsonb is null then u.raw_user_meta_data else "
         "  coalesce((select jsonb_object_agg(k, v) from jsonb_each(u.raw_user_meta_data || "
         "$4::jsonb) "
         "            as e(k, v) where v <> 'null'::jsonb), '{}'::jsonb) end, "
         "raw_app_meta_data = case when $5::jsonb is null then u.raw_app_meta_data else "
         "  coalesce((select jsonb_object_agg(k, v) from jsonb_each(u.raw_app_meta_data || "
         "$5::jsonb) "
         "            as e(k, v) where v <> 'null'::jsonb), '{}'::jsonb) end, "
         "banned_until = case when $6::bigint is null then u.banned_until "
         "  when $6::bigint < 0 then null else now() + make_interval(secs => $6::bigint) end, "
         "email_confirmed_at = case when $7::bool then coalesce(u.email_confirmed_at, now()) "
         "  else u.email_confirmed_at end, "
         "updated_at = now() where u.id = $1::uuid",
         7, p},
        {"update auth.identities set identity_data = identity_data || "
         "jsonb_build_object('email', lower(btrim($2::text))), updated_at = now() "
         "where user_id = $1::uuid and provider = 'email' and $2::text is not null",
         2, p},
        {"select auth.user_json(u)::text, auth.user_role(u), "
         "auth.audit('user_modified', $2::uuid, $3, $4, jsonb_build_object('user_id', u.id, "
         "'role', auth.user_role(u), 'banned', $5::bigint is not null)) "
         "from auth.users u where u.id = $1::uuid",
         5, p_audit},
        {"delete from auth.sessions where user_id = $1::uuid and $2::text is not null", 2, p_sess},
    };
    PGresult *res[5] = {0};
    db_error_t err;
    db_caller_t who;
    service_caller(req, caller.headers_json, &who);
    db_conn_t *c = db_thread_conn();
    db_status_t st = c ? db_run_as(c, &who, stmts, 5, res, &err) : DB_UNAVAILABLE;
    if (st == DB_SQL_ERROR && strcmp(err.sqlstate, "23505") == 0) {
        gotrue_error(req, 422, "email_exists",
                     "A user with this email address has already been registered");
    } else if (st != DB_OK) {
        reply_db_failure(req, st, &err);
    } else if (PQntuples(res[3]) != 1) {
        gotrue_error(req, 404, "user_not_found", "User not found");
    } else {
        const char *before = PQntuples(res[0]) ? PQgetvalue(res[0], 0, 0) : "";
        const char *after = PQgetvalue(res[3], 0, 1);
        if (strcmp(before, after) != 0)
            log_info("role of user %s changed from %s to %s by %s", id, before, after,
                     caller.user_id[0] ? caller.user_id : "service_role");
        http_reply(req, 200, NULL, PQgetvalue(res[3], 0, 0), (size_t)PQgetlength(res[3], 0, 0));
    }
    for (size_t i = 0; i < 5; i++)
        PQclear(res[i]);
done:
    free(umeta);
    free(ameta);
    json_decref(body);
    if (caller.claims)
        auth_caller_free(&caller);
}

static void handle_admin_delete(http_request_t *req)
{
    auth_caller_t caller;
    if (!require_admin(req, &caller))
        return;
    json_t *body = read_body(req);
    const char *id = req->params[0];
    if (!body)
        goto done;
    if (!cd_is_uuid(id)) {
        gotrue_error(req, 404, "user_not_found", "User not found");
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
    db_error_t err;
    db_caller_t who;
    service_caller(req, caller.headers_json, &who);
    db_conn_t *c = db_thread_conn();
    db_status_t st = c ? db_run_as(c, &who, stmts, 2, res, &err) : DB_UNAVAILABLE;
    if (st != DB_OK)
        reply_db_failure(req, st, &err);
    else if (strcmp(PQgetvalue(res[0], 0, 0), "0") == 0)
        gotrue_error(req, 404, "user_not_found", "User not found");
    else
        http_reply(req, 200, NULL, "{}", 2);
    PQclear(res[0]);
    PQclear(res[1]);
done:
    json_decref(body);
    auth_caller_free(&caller);
}

/* ----------------------------------------------------------------- table */

const http_route_t auth_routes[] = {
    {"POST", "/auth/v1/signup", handle_signup, true},
    {"POST", "/auth/v1/token", handle_token, true},
    {"POST", "/auth/v1/logout", handle_logout, true},
    {"GET", "/auth/v1/user", handle_get_user, false},
    {"PUT", "/auth/v1/user", handle_put_user, true},
    {"GET", "/auth/v1/settings", handle_settings, false},
    {"GET", "/auth/v1/health", handle_health, false},
    {"GET", "/auth/v1/.well-known/jwks.json", handle_jwks, false},
    {"GET", "/auth/v1/admin/users", handle_admin_list, false},
    {"POST", "/auth/v1/admin/users", handle_admin_create, true},
    {"GET", "/auth/v1/admin/users/:id", handle_admin_get, false},
    {"PUT", "/auth/v1/admin/users/:id", handle_admin_update, true},
    {"DELETE", "/auth/v1/admin/users/:id", handle_admin_delete, true},
    /* the specification's endpoints (database-implementation.md, "API Endpoints") */
    {"POST", "/auth/sign-up", handle_signup, true},
    {"POST", "/auth/sign-in", handle_spec_sign_in, true},
    {"POST", "/auth/sign-out", handle_logout, true},
    {"GET", "/auth/user", handle_get_user, false},
};
const size_t auth_routes_len = CD_ARRAY_LEN(auth_routes);
