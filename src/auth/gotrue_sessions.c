/*
 * GoTrue's session endpoints: sign-up, POST /token (password and refresh-token
 * grants), sign-out, and the specification's /auth/sign-up, /auth/sign-in and
 * /auth/sign-out. A session is started by one pipelined transaction
 * (start_session); refresh tokens form an HMAC chain rotated under a row lock
 * in SQL (auth.rotate_refresh_token), see docs/auth.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "auth/auth_internal.h"
#include "core/jwt.h"
#include "auth/password.h"
#include "core/buf.h"
#include "core/crypto.h"
#include "core/log.h"

/* How many descendants of a presented refresh token the server derives: a
 * parallel tab may present a token this many rotations old within the reuse
 * interval and still get the live one. */
#define AUTH_CHAIN_DEPTH      5
#define AUTH_SESSION_JSON_MAX (1024 * 1024)

/* The refresh token chain: child = HMAC(secret, "refresh:" + parent). */
static void refresh_child(const app_t *app, const char *parent, char out[CD_TOKEN_LEN + 1])
{
    char msg[CD_TOKEN_LEN + 16];
    int n = snprintf(msg, sizeof(msg), "refresh:%s", parent);
    cd_hmac_b64url(app->jwt_secret, app->jwt_secret_len, msg, (size_t)n, out);
}

/* Sends the session as a redirect to redirect_to with the tokens in the
 * fragment, as GoTrue's GET /verify and /callback do for the implicit flow;
 * o->provider_token and o->provider_refresh_token too when set. */
static void redirect_session(http_request_t *req, const auth_session_opts_t *o, const char *access,
                             long long exp, const char *refresh_token)
{
    app_t *app = auth__app(req);
    char *pt = o->provider_token ? curl_easy_escape(NULL, o->provider_token, 0) : NULL;
    char *prt =
        o->provider_refresh_token ? curl_easy_escape(NULL, o->provider_refresh_token, 0) : NULL;
    char loc[8192];
    int n = snprintf(loc, sizeof(loc),
                     "%s#access_token=%s&expires_at=%lld&expires_in=%ld%s%s%s%s&refresh_token=%s"
                     "&token_type=bearer%s%s",
                     o->redirect_to, access, exp, app->cfg.jwt_exp, pt ? "&provider_token=" : "",
                     pt ? pt : "", prt ? "&provider_refresh_token=" : "", prt ? prt : "",
                     refresh_token, o->type ? "&type=" : "", o->type ? o->type : "");
    curl_free(pt);
    curl_free(prt);
    if (n < 0 || (size_t)n >= sizeof(loc)) {
        auth__error(req, 500, "unexpected_failure", "redirect too long");
        return;
    }
    http_add_header(req, "Location", loc);
    http_reply(req, 303, "text/plain", "", 0);
}

/* The provider tokens as extra Session JSON members (",\"provider_token\":..."),
 * malloc'd; "" when there are none; NULL when out of memory. */
static char *provider_members(const auth_session_opts_t *o)
{
    json_t *j = json_object();
    if (j && o->provider_token)
        json_object_set_new(j, "provider_token", json_string(o->provider_token));
    if (j && o->provider_refresh_token)
        json_object_set_new(j, "provider_refresh_token", json_string(o->provider_refresh_token));
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s)
        return NULL;
    size_t n = strlen(s); /* "{...}" -> ",..." or "" */
    if (n <= 2) {
        s[0] = '\0';
        return s;
    }
    s[0] = ',';
    s[n - 1] = '\0';
    return s;
}

/* Builds and sends the Session JSON from the claims and user JSON that
 * PostgreSQL produced (or, with o->redirect_to, the redirect_session). */
static void reply_session(http_request_t *req, const char *claims_text, const char *user_json,
                          const char *refresh_token, const auth_session_opts_t *o)
{
    app_t *app = auth__app(req);
    json_error_t je;
    json_t *claims = json_loads(claims_text, 0, &je);
    char *access = claims ? jwt_sign(claims, app->jwt_secret, app->jwt_secret_len) : NULL;
    long long exp = claims ? json_integer_value(json_object_get(claims, "exp")) : 0;
    json_decref(claims);
    char *extra = access ? provider_members(o) : NULL;
    if (!access || !extra) {
        free(access);
        auth__error(req, 500, "unexpected_failure", "could not sign the access token");
        return;
    }
    if (o->redirect_to) {
        redirect_session(req, o, access, exp, refresh_token);
        free(access);
        free(extra);
        return;
    }
    cd_buf_t b;
    cd_buf_init(&b, AUTH_SESSION_JSON_MAX);
    bool ok = cd_buf_printf(&b,
                            "{\"access_token\":\"%s\",\"token_type\":\"bearer\",\"expires_in\":%ld,"
                            "\"expires_at\":%lld,\"refresh_token\":\"%s\"%s,\"user\":%s}",
                            access, app->cfg.jwt_exp, exp, refresh_token, extra, user_json);
    free(access);
    free(extra);
    if (!ok) {
        cd_buf_free(&b);
        auth__error(req, 500, "unexpected_failure", "session too large");
        return;
    }
    size_t len = b.len;
    http_reply_take(req, 200, NULL, cd_buf_take(&b), len);
}

void auth__reply_session(http_request_t *req, const char *claims_text, const char *user_json,
                         const char *refresh_token)
{
    const auth_session_opts_t none = {0};
    reply_session(req, claims_text, user_json, refresh_token, &none);
}

/* Runs the statements that start a session for user_id and answers with the
 * Session JSON. extra/nextra run first in the same transaction (e.g. creating
 * the user). audit_action names the auth.audit_log_entries action. */
static void start_session(http_request_t *req, const char *user_id, const char *email,
                          const db_stmt_t *extra, size_t nextra, const char *audit_action)
{
    auth__start_session(req, user_id, email, extra, nextra, audit_action, NULL, NULL);
}

void auth__start_session(http_request_t *req, const char *user_id, const char *email,
                         const db_stmt_t *extra, size_t nextra, const char *audit_action,
                         const char *redirect_to, const char *type)
{
    auth_session_opts_t o = {.redirect_to = redirect_to, .type = type};
    auth__start_session_opts(req, user_id, email, extra, nextra, audit_action, &o);
}

void auth__start_session_opts(http_request_t *req, const char *user_id, const char *email,
                              const db_stmt_t *extra, size_t nextra, const char *audit_action,
                              const auth_session_opts_t *o)
{
    app_t *app = auth__app(req);
    char sid[CD_UUID_LEN + 1], token[CD_TOKEN_LEN + 1], hash[CD_SHA256_HEX_LEN + 1];
    if (!cd_random_uuid(sid) || !cd_random_token(token)) {
        auth__error(req, 500, "unexpected_failure", "no randomness available");
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
    /* a unique violation in the extra statements: the e-mail is taken */
    const auth_unique_t taken = {"user_already_exists", "User already registered", first};
    char *headers = auth_headers_json(req);
    bool ok = auth__run(req, headers, false, stmts, n, res, &taken);
    free(headers);
    if (ok) {
        PGresult *r = res[n - 1];
        if (PQntuples(r) != 1)
            auth__error(req, 500, "unexpected_failure", "the user vanished while signing in");
        else
            reply_session(req, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), token, o);
    }
    for (size_t i = 0; i < n; i++)
        PQclear(res[i]);
}

/* --------------------------------------------------------------- sign-up */

/* The session endpoints need an apikey but no user, then a JSON body: the
 * body, or NULL after answering. */
static json_t *apikey_body(http_request_t *req)
{
    auth_caller_t caller;
    if (!auth__require_apikey(req, &caller))
        return NULL;
    auth_caller_free(&caller);
    return auth__read_body(req);
}

void auth__handle_signup(http_request_t *req)
{
    app_t *app = auth__app(req);
    json_t *body = apikey_body(req);
    if (!body)
        return;
    const char *email = auth__jstr(body, "email");
    const char *password = auth__jstr(body, "password");
    json_t *data = json_object_get(body, "data");
    char uid[CD_UUID_LEN + 1];
    char hash[PASSWORD_HASH_BYTES];
    if (app->cfg.disable_signup) {
        auth__error(req, 422, "signup_disabled", "Signups not allowed for this instance");
        goto done;
    }
    if (!auth__check_limiter(req))
        goto done;
    if (!email && auth__jstr(body, "phone")) {
        auth__error(req, 422, "phone_provider_disabled", "Phone signups are disabled");
        goto done;
    }
    if (!auth__check_email(req, email))
        goto done;
    if (!password || !*password) {
        auth__error(req, 400, "validation_failed", "Signup requires a valid password");
        goto done;
    }
    if (data && !json_is_object(data) && !json_is_null(data)) {
        auth__error(req, 400, "validation_failed", "data must be an object");
        goto done;
    }
    if (!auth__check_password(req, password) || !auth__hash_password(req, password, hash))
        goto done;
    if (!cd_random_uuid(uid)) {
        auth__error(req, 500, "unexpected_failure", "no randomness available");
        goto done;
    }
    /* The role is never taken from sign-up data (SEED-NOTES 1): the user gets
     * DEFAULT_USER_ROLE and create_user drops any "role" key. */
    char *meta = json_is_object(data) ? json_dumps(data, JSON_COMPACT) : strdup("{}");
    if (!app->mailer_autoconfirm) {
        char flow[CD_UUID_LEN + 1];
        if (!auth__mail_flow(req, body, "email/signup", flow) && req->replied) {
            free(meta);
            goto done;
        }
        auth__signup_unconfirmed(req, email, hash, meta ? meta : "{}", uid, flow);
        free(meta);
        goto done;
    }
    const char *params[5] = {email, hash, app->cfg.default_user_role, meta ? meta : "{}", uid};
    db_stmt_t create = {
        "select auth.create_user($1, $2, $3, $4::jsonb, '{}'::jsonb, true, $5::uuid)", 5, params};
    start_session(req, uid, email, &create, 1, "user_signedup");
    free(meta);
done:
    json_decref(body);
}

/* ---------------------------------------------------------------- tokens */

/* A wrong password (or an unknown e-mail, answered the same): the failure
 * is already recorded by the lock-out check, only the audit trail remains. */
static void reply_login_failed(http_request_t *req, const char *headers, const char *email,
                               const char *uid)
{
    const char *p_fail[3] = {email, req->client_ip, uid};
    db_stmt_t f = {"select auth.audit('login_failed', $3::uuid, $1, $2, '{}'::jsonb)", 3, p_fail};
    PGresult *fr = NULL;
    db_caller_t who;
    db_error_t err;
    auth__service_who(req, headers, &who);
    /* an audit failure does not change the answer; an outage does */
    db_status_t st = db_run(&who, &f, 1, &fr, &err);
    PQclear(fr);
    if (st == DB_UNAVAILABLE)
        http_reply_unavailable(req, db_retry_after());
    else
        auth__error(req, 400, "invalid_credentials", "Invalid login credentials");
}

static void grant_password(http_request_t *req, json_t *body)
{
    app_t *app = auth__app(req);
    const char *email = auth__jstr(body, "email");
    const char *password = auth__jstr(body, "password");
    if (!email && auth__jstr(body, "phone")) {
        auth__error(req, 400, "phone_provider_disabled", "Phone logins are disabled");
        return;
    }
    if (!email || !*email || !password) {
        auth__error(req, 400, "validation_failed", "missing email or phone");
        return;
    }
    if (!auth__check_limiter(req))
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
        {"select id, encrypted_password, coalesce(banned_until > now(), false), email, "
         "email_confirmed_at is not null "
         "from auth.users where lower(email) = lower(btrim($1)) and not is_sso_user "
         "and deleted_at is null",
         1, p_user},
    };
    PGresult *res[3] = {0};
    char *headers = auth_headers_json(req);
    if (!auth__run(req, headers, false, stmts, 3, res, NULL)) {
        free(headers);
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
    bool banned = false, confirmed = false;
    if (found) {
        confirmed = PQgetvalue(res[1], 0, 4)[0] == 't';
        snprintf(uid, sizeof(uid), "%s", PQgetvalue(res[1], 0, 0));
        snprintf(stored, sizeof(stored), "%s", PQgetvalue(res[1], 0, 1));
        banned = PQgetvalue(res[1], 0, 2)[0] == 't';
        snprintf(canon, sizeof(canon), "%s", PQgetvalue(res[1], 0, 3));
    }
    PQclear(res[0]);
    PQclear(res[1]);
    if (wait > 0) {
        free(headers);
        auth__rate_limited(req, wait,
                           "Too many failed sign-in attempts; wait before trying again.");
        return;
    }
    /* Unknown e-mail and wrong password take the same time and get the same answer. */
    bool ok = found && *stored ? password_verify(password, stored)
                               : password_verify_dummy(password, (int)app->cfg.bcrypt_cost);
    if (!ok)
        reply_login_failed(req, headers, email, found ? uid : NULL);
    free(headers);
    if (!ok)
        return;
    if (banned) {
        auth__error(req, 400, "user_banned", "User is banned");
        return;
    }
    if (!confirmed) { /* only after the right password: no hint for guessers */
        auth__error(req, 400, "email_not_confirmed", "Email not confirmed");
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
    app_t *app = auth__app(req);
    const char *token = auth__jstr(body, "refresh_token");
    if (!token || !*token) {
        auth__error(req, 400, "validation_failed", "refresh_token required");
        return;
    }
    if (strlen(token) != CD_TOKEN_LEN) { /* every token we issue is exactly this long */
        auth__error(req, 400, "refresh_token_not_found",
                    "Invalid Refresh Token: Refresh Token Not Found");
        return;
    }
    if (!auth__check_limiter(req))
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
    char *headers = auth_headers_json(req);
    /* 5xx (never 4xx) for transient failures: the client keeps its session. */
    bool ok = auth__run(req, headers, false, stmts, 3, res, NULL);
    free(headers);
    if (!ok)
        return;
    const char *status = PQgetvalue(res[0], 0, 0);
    int depth = PQgetisnull(res[0], 0, 1) ? 0 : (int)strtol(PQgetvalue(res[0], 0, 1), NULL, 10);
    if ((strcmp(status, "ok") == 0 || strcmp(status, "reused") == 0) && depth >= 1 &&
        depth <= AUTH_CHAIN_DEPTH && PQntuples(res[1]) == 1) {
        const auth_session_opts_t none = {0};
        reply_session(req, PQgetvalue(res[1], 0, 0), PQgetvalue(res[1], 0, 1), chain_tok[depth - 1],
                      &none);
    } else if (strcmp(status, "already_used") == 0) {
        log_warn("refresh token reuse detected from %s: session revoked", req->client_ip);
        auth__error(req, 400, "refresh_token_already_used", "Invalid Refresh Token: Already Used");
    } else if (strcmp(status, "banned") == 0) {
        auth__error(req, 400, "user_banned", "User is banned");
    } else {
        auth__error(req, 400, "refresh_token_not_found",
                    "Invalid Refresh Token: Refresh Token Not Found");
    }
    for (size_t i = 0; i < 3; i++)
        PQclear(res[i]);
}

void auth__handle_token(http_request_t *req)
{
    const char *grant = http_query_arg(req, "grant_type");
    json_t *body = apikey_body(req);
    if (!body)
        return;
    if (grant && strcmp(grant, "password") == 0)
        grant_password(req, body);
    else if (grant && strcmp(grant, "refresh_token") == 0)
        grant_refresh(req, body);
    else if (grant && strcmp(grant, "pkce") == 0)
        auth__grant_pkce(req, body);
    else
        auth__error(req, 400, "invalid_credentials", "unsupported_grant_type");
    json_decref(body);
}

/* The specification's POST /auth/sign-in {email, password}. */
void auth__handle_spec_sign_in(http_request_t *req)
{
    json_t *body = apikey_body(req);
    if (!body)
        return;
    grant_password(req, body);
    json_decref(body);
}

/* ---------------------------------------------------------------- logout */

void auth__handle_logout(http_request_t *req)
{
    auth_caller_t caller;
    if (!auth__require_user(req, &caller))
        return;
    const char *scope = http_query_arg(req, "scope");
    if (!scope || !*scope)
        scope = "global";
    if (strcmp(scope, "global") && strcmp(scope, "local") && strcmp(scope, "others")) {
        auth__error(req, 400, "validation_failed", "scope must be one of global, local, others");
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
    if (auth__run(req, caller.headers_json, false, stmts, 2, res, NULL))
        http_reply(req, 204, NULL, NULL, 0);
    PQclear(res[0]);
    PQclear(res[1]);
    auth_caller_free(&caller);
}
