/*
 * Sign-in with an OAuth/OIDC provider, GoTrue's way, and the PKCE flow:
 *
 *   GET /authorize?provider=&redirect_to=&scopes=[&code_challenge=&code_challenge_method=]
 *     -> 302 to the provider with a signed `state` (oauth_state.c) carrying
 *        the provider, the checked redirect_to and, for PKCE, the flow's id
 *        (auth.flow_state, migration 036);
 *   GET /callback?code=&state=
 *     -> code exchanged and user fetched at the provider (oauth_provider.c),
 *        user linked by verified e-mail or created with the default role
 *        (auth.oauth_sign_in); then the implicit flow redirects with the
 *        session in the fragment, the PKCE flow with ?code=<auth code>;
 *   POST /token?grant_type=pkce {auth_code, code_verifier}
 *     -> the session, once per code, when the verifier matches.
 *
 * Errors of the browser legs are redirects carrying error, error_code and
 * error_description (fragment for the implicit flow, query for PKCE), as
 * GoTrue's. The mailed flows use the same PKCE rows (auth__mail_flow).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/auth_internal.h"
#include "auth/oauth_provider.h"
#include "auth/oauth_state.h"
#include "core/buf.h"
#include "core/crypto.h"
#include "core/log.h"

#define OAUTH_STATE_TTL AUTH_OAUTH_STATE_TTL
#define OAUTH_CODE_TTL  AUTH_OAUTH_CODE_TTL
#define OAUTH_LOC_MAX   8192
/* The cookie that binds an implicit-flow state to the browser that started
 * it (login CSRF): a random nonce whose SHA-256 is in the signed state. */
#define OAUTH_COOKIE "cd-oauth-nonce"

/* ------------------------------------------------------------- helpers */

/* The state key: derived from the JWT secret, never the secret itself. */
static void state_key(const app_t *app, char key[CD_TOKEN_LEN + 1])
{
    static const char label[] = "campaignd:oauth-state";
    cd_hmac_b64url(app->jwt_secret, app->jwt_secret_len, label, sizeof(label) - 1, key);
}

static const char *checked_redirect(const app_t *app, const char *requested)
{
    if (requested && *requested && auth__redirect_allowed(app, requested))
        return requested;
    return app->cfg.site_url;
}

/* 303 to loc (the browser legs' answer). */
static void see_other(http_request_t *req, const char *loc)
{
    http_add_header(req, "Location", loc);
    http_reply(req, 303, "text/plain", "", 0);
}

/* Runs one statement of the auth SQL (auth__run) with the request's headers
 * for the audit trail. */
static bool run_one(http_request_t *req, const db_stmt_t *s, PGresult **r,
                    const auth_unique_t *unique)
{
    char *headers = auth_headers_json(req);
    bool ok = auth__run(req, headers, false, s, 1, r, unique);
    free(headers);
    return ok;
}

/* Writes the audit row of a sign-in that failed: auth.audit('login_failed')
 * with the provider, the flow (implicit or pkce) and why, and the client's
 * address; never the provider's code or tokens. uid and email when known.
 * An audit failure does not change the answer (it is logged). */
static void audit_failure(http_request_t *req, const char *provider, bool pkce, const char *reason,
                          const char *uid, const char *email)
{
    char *headers = auth_headers_json(req);
    const char *p[6] = {uid && *uid ? uid : NULL,
                        email && *email ? email : NULL,
                        req->client_ip,
                        provider ? provider : "",
                        reason,
                        pkce ? "pkce" : "implicit"};
    db_stmt_t s = {"select auth.audit('login_failed', $1::uuid, $2, $3, jsonb_build_object("
                   "'provider', $4::text, 'reason', $5::text, 'flow', $6::text))",
                   6, p};
    PGresult *r = NULL;
    db_caller_t who;
    db_error_t err;
    auth__service_who(req, headers, &who);
    if (db_run(&who, &s, 1, &r, &err) != DB_OK)
        log_warn("oauth: cannot audit a failed sign-in (%s): %s", reason, err.message);
    PQclear(r);
    free(headers);
}

/* The path the state cookie is sent to: external_url's path (when campaignd
 * is served under a prefix) and /auth/v1/callback. */
static void cookie_path(const app_t *app, char *out, size_t cap)
{
    const char *host = strstr(app->external_url, "://");
    const char *path = host ? strchr(host + 3, '/') : NULL;
    size_t n = path ? strcspn(path, "?#") : 0;
    while (n && path[n - 1] == '/')
        n--;
    snprintf(out, cap, "%.*s/auth/v1/callback", (int)n, path ? path : "");
}

/* Sets (value) or clears (NULL) the state cookie: HttpOnly, SameSite=Lax (it
 * must come along on the provider's top-level redirect back), Secure when
 * campaignd is served over https, only for the callback's path. */
static void set_state_cookie(http_request_t *req, const char *value)
{
    app_t *app = auth__app(req);
    char path[600], c[1024];
    cookie_path(app, path, sizeof(path));
    bool secure = strncasecmp(app->external_url, "https://", 8) == 0;
    snprintf(c, sizeof(c), "%s=%s; Path=%s; Max-Age=%d; HttpOnly; SameSite=Lax%s", OAUTH_COOKIE,
             value ? value : "", path, value ? OAUTH_STATE_TTL : 0, secure ? "; Secure" : "");
    http_add_header(req, "Set-Cookie", c);
}

/* Whether the request carries the state cookie whose hash the state names. */
static bool state_cookie_matches(http_request_t *req, const char *want_hash)
{
    const char *v = http_cookie(req, OAUTH_COOKIE);
    if (!v || !*v || !want_hash || strlen(v) > CD_TOKEN_LEN)
        return false;
    char hash[CD_SHA256_HEX_LEN + 1];
    cd_sha256_hex(v, strlen(v), hash);
    return cd_secure_equal(hash, want_hash);
}

/* Redirects to `to` with GoTrue's error triple: in the query for PKCE (the
 * client reads ?error=), else in the fragment. */
static void redirect_error(http_request_t *req, const char *to, bool pkce, const char *error,
                           const char *code, const char *description)
{
    char *e = curl_easy_escape(NULL, error, 0);
    char *d = curl_easy_escape(NULL, description, 0);
    char loc[OAUTH_LOC_MAX];
    const char *sep = pkce ? (strchr(to, '?') ? "&" : "?") : "#";
    int n = snprintf(loc, sizeof(loc), "%s%serror=%s&error_code=%s&error_description=%s", to, sep,
                     e ? e : "server_error", code, d ? d : "");
    curl_free(e);
    curl_free(d);
    if (n < 0 || (size_t)n >= sizeof(loc))
        auth__error(req, 400, code, description);
    else
        see_other(req, loc);
}

/* Checks a code_challenge and its method (s256 or plain, any case; GoTrue
 * wants the method named). False after answering 400. */
static bool check_challenge(http_request_t *req, const char *challenge, const char *method)
{
    if (!method || !*method) {
        auth__error(req, 400, "validation_failed", "code challenge method is required");
        return false;
    }
    if (strcasecmp(method, "s256") != 0 && strcasecmp(method, "plain") != 0) {
        auth__error(req, 400, "validation_failed", "code challenge method must be s256 or plain");
        return false;
    }
    if (!oauth_pkce_valid(challenge)) {
        auth__error(req, 400, "validation_failed",
                    "code challenge must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~");
        return false;
    }
    return true;
}

/* Stores a new PKCE flow; its id goes to flow. False after answering. */
static bool create_flow(http_request_t *req, const char *challenge, const char *method,
                        const char *provider, const char *auth_method, char flow[CD_UUID_LEN + 1])
{
    if (!cd_random_uuid(flow)) {
        auth__error(req, 500, "unexpected_failure", "no randomness available");
        return false;
    }
    char m[8];
    snprintf(m, sizeof(m), "%s", strcasecmp(method, "plain") == 0 ? "plain" : "s256");
    const char *p[5] = {flow, m, challenge, provider, auth_method};
    db_stmt_t s = {"insert into auth.flow_state (id, code_challenge_method, code_challenge, "
                   "provider_type, authentication_method) values ($1::uuid, $2, $3, $4, $5)",
                   5, p};
    PGresult *r = NULL;
    bool ok = run_one(req, &s, &r, NULL);
    PQclear(r);
    return ok;
}

bool auth__mail_flow(http_request_t *req, json_t *body, const char *method_name,
                     char flow[CD_UUID_LEN + 1])
{
    const char *challenge = auth__jstr(body, "code_challenge");
    const char *method = auth__jstr(body, "code_challenge_method");
    flow[0] = '\0';
    if (!challenge || !*challenge)
        return false;
    return check_challenge(req, challenge, method) &&
           create_flow(req, challenge, method, "email", method_name, flow);
}

/* Whether scopes (from the query) are printable ASCII and short. */
static bool scopes_ok(const char *s)
{
    size_t n = strlen(s);
    if (n > 512)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

/* ----------------------------------------------------------- authorize */

/* The provider's authorization URL for this sign-in, malloc'd, or NULL. */
static char *provider_location(const app_t *app, const oauth_provider_t *p, const char *scopes,
                               const char *state, const char *nonce)
{
    char redirect_uri[1200], scope[1100];
    snprintf(redirect_uri, sizeof(redirect_uri), "%s/auth/v1/callback", app->external_url);
    snprintf(scope, sizeof(scope), "%s%s%s", p->scopes, scopes && *scopes ? " " : "",
             scopes ? scopes : "");
    char *e_id = curl_easy_escape(NULL, p->client_id, 0);
    char *e_uri = curl_easy_escape(NULL, redirect_uri, 0);
    char *e_scope = curl_easy_escape(NULL, scope, 0);
    char *e_state = curl_easy_escape(NULL, state, 0);
    cd_buf_t b;
    cd_buf_init(&b, OAUTH_LOC_MAX);
    bool ok = e_id && e_uri && e_scope && e_state &&
              cd_buf_printf(&b,
                            "%s%cclient_id=%s&redirect_uri=%s&response_type=code&scope=%s"
                            "&state=%s",
                            p->authorize_url, strchr(p->authorize_url, '?') ? '&' : '?', e_id,
                            e_uri, e_scope, e_state) &&
              (p->kind != OAUTH_KIND_OIDC || cd_buf_printf(&b, "&nonce=%s", nonce));
    curl_free(e_id);
    curl_free(e_uri);
    curl_free(e_scope);
    curl_free(e_state);
    if (!ok) {
        cd_buf_free(&b);
        return NULL;
    }
    return cd_buf_take(&b);
}

void auth__handle_authorize(http_request_t *req)
{
    app_t *app = auth__app(req);
    const char *name = http_query_arg(req, "provider");
    const char *scopes = http_query_arg(req, "scopes");
    const char *challenge = http_query_arg(req, "code_challenge");
    oauth_provider_t p;
    if (!oauth_provider_get(&app->cfg, name, &p)) {
        auth__error(req, 400, "validation_failed", "Unsupported provider: provider is not enabled");
        return;
    }
    if (scopes && !scopes_ok(scopes)) {
        auth__error(req, 400, "validation_failed", "scopes must be printable ASCII");
        return;
    }
    if (!auth__check_limiter(req))
        return;
    char flow[CD_UUID_LEN + 1] = "";
    if (challenge && *challenge) {
        const char *method = http_query_arg(req, "code_challenge_method");
        if (!check_challenge(req, challenge, method) ||
            !create_flow(req, challenge, method, p.name, "oauth", flow))
            return;
    }
    /* nonce: the OIDC nonce (and what makes every state unique); browser:
     * the implicit flow's cookie, whose hash the state carries (a PKCE flow
     * is bound to its client by the code verifier instead) */
    char nonce[CD_TOKEN_LEN + 1], browser[CD_TOKEN_LEN + 1], key[CD_TOKEN_LEN + 1];
    char browser_hash[CD_SHA256_HEX_LEN + 1];
    if (!cd_random_token(nonce) || !cd_random_token(browser)) {
        auth__error(req, 500, "unexpected_failure", "no randomness available");
        return;
    }
    cd_sha256_hex(browser, strlen(browser), browser_hash);
    state_key(app, key);
    json_t *claims =
        json_pack("{s:I, s:s, s:s, s:s?, s:s, s:s?}", "exp",
                  (json_int_t)time(NULL) + OAUTH_STATE_TTL, "provider", p.name, "redirect_to",
                  checked_redirect(app, http_query_arg(req, "redirect_to")), "flow",
                  *flow ? flow : NULL, "nonce", nonce, "browser", *flow ? NULL : browser_hash);
    char *state =
        claims ? oauth_state_sign(claims, (const unsigned char *)key, CD_TOKEN_LEN) : NULL;
    json_decref(claims);
    char *loc = state ? provider_location(app, &p, scopes, state, nonce) : NULL;
    free(state);
    if (!loc) {
        auth__error(req, 500, "unexpected_failure", "could not build the provider's URL");
        return;
    }
    if (!*flow)
        set_state_cookie(req, browser);
    http_add_header(req, "Location", loc);
    free(loc);
    http_reply(req, 302, "text/plain", "", 0);
}

/* ------------------------------------------------------------ callback */

/* Where a callback stands once its state is checked. */
typedef struct callback {
    json_t *claims;
    const char *provider; /* borrowed from claims */
    const char *to;       /* checked redirect_to */
    const char *flow;     /* PKCE flow id, or NULL (implicit) */
    char *access;         /* the provider's tokens */
    char *refresh;
    char *id_token;
    oauth_user_t user;
} callback_t;

/* Audits a failed callback (reason) and answers with GoTrue's error redirect
 * to the sign-in's redirect_to (SITE_URL while the state is unknown). */
static void callback_fail(http_request_t *req, const callback_t *c, const char *reason,
                          const char *error, const char *code, const char *description)
{
    bool pkce = c->flow != NULL;
    audit_failure(req, c->provider, pkce, reason, NULL, NULL);
    redirect_error(req, c->to ? c->to : auth__app(req)->cfg.site_url, pkce, error, code,
                   description);
}

/* Checks the state: signature, expiry and, for the implicit flow, the
 * browser cookie. False after answering with a redirect. */
static bool callback_state(http_request_t *req, callback_t *c)
{
    app_t *app = auth__app(req);
    char key[CD_TOKEN_LEN + 1];
    state_key(app, key);
    oauth_state_status_t st =
        oauth_state_verify(http_query_arg(req, "state"), (const unsigned char *)key, CD_TOKEN_LEN,
                           (long long)time(NULL), &c->claims);
    if (st != OAUTH_STATE_OK) {
        bool expired = st == OAUTH_STATE_EXPIRED;
        callback_fail(req, c, expired ? "state_expired" : "bad_state", "invalid_request",
                      "bad_oauth_state",
                      expired ? "OAuth state has expired" : "OAuth callback with invalid state");
        return false;
    }
    c->provider = json_string_value(json_object_get(c->claims, "provider"));
    c->flow = json_string_value(json_object_get(c->claims, "flow"));
    c->to = checked_redirect(app, json_string_value(json_object_get(c->claims, "redirect_to")));
    if (!c->flow &&
        !state_cookie_matches(req, json_string_value(json_object_get(c->claims, "browser")))) {
        callback_fail(req, c, "state_not_bound_to_browser", "invalid_request", "bad_oauth_state",
                      "OAuth state does not belong to this browser: start the sign-in again");
        return false;
    }
    return true;
}

/* Checks the state and the provider's answer; exchanges the code and fetches
 * the user. False after answering with a redirect. */
static bool callback_begin(http_request_t *req, callback_t *c)
{
    app_t *app = auth__app(req);
    if (!callback_state(req, c))
        return false;
    oauth_provider_t p;
    const char *perr = http_query_arg(req, "error");
    const char *code = http_query_arg(req, "code");
    if (!oauth_provider_get(&app->cfg, c->provider, &p)) {
        callback_fail(req, c, "provider_disabled", "invalid_request", "provider_disabled",
                      "Unsupported provider: provider is not enabled");
        return false;
    }
    if (perr && *perr) {
        const char *desc = http_query_arg(req, "error_description");
        callback_fail(req, c, "provider_error", perr, "oauth_provider_error",
                      desc && *desc ? desc : "The provider refused the sign-in");
        return false;
    }
    if (!code || !*code || strlen(code) > 2048) {
        callback_fail(req, c, "missing_code", "invalid_request", "bad_oauth_callback",
                      "OAuth callback with missing authorization code");
        return false;
    }
    char redirect_uri[1200], err[256];
    snprintf(redirect_uri, sizeof(redirect_uri), "%s/auth/v1/callback", app->external_url);
    if (!oauth_exchange_code(&p, code, redirect_uri, &c->access, &c->refresh, &c->id_token, err,
                             sizeof(err))) {
        log_warn("oauth %s: code exchange failed: %s", p.name, err);
        callback_fail(req, c, "code_exchange_failed", "server_error", "unexpected_failure",
                      "Unable to exchange external code");
        return false;
    }
    if (p.kind == OAUTH_KIND_OIDC && *p.issuer && c->id_token) {
        /* the id_token says who signed in; userinfo is for providers without one */
        const char *nonce = json_string_value(json_object_get(c->claims, "nonce"));
        if (!oauth_verify_id_token(&p, c->id_token, nonce, &c->user, err, sizeof(err))) {
            log_warn("oauth %s: id_token refused: %s", p.name, err);
            callback_fail(req, c, "id_token_invalid", "server_error", "bad_id_token",
                          "The provider's id_token could not be verified");
            return false;
        }
        return true;
    }
    if (!oauth_fetch_user(&p, c->access, &c->user, err, sizeof(err))) {
        log_warn("oauth %s: user lookup failed: %s", p.name, err);
        callback_fail(req, c, "user_lookup_failed", "server_error", "unexpected_failure",
                      "Error getting user profile from external provider");
        return false;
    }
    return true;
}

/* The user behind the provider's identity (auth.oauth_sign_in). */
typedef struct signed_in {
    char status[24];
    char uid[CD_UUID_LEN + 1];
    char email[320];
    bool created, banned;
} signed_in_t;

static bool callback_user(http_request_t *req, callback_t *c, signed_in_t *out)
{
    app_t *app = auth__app(req);
    char new_id[CD_UUID_LEN + 1];
    char *data = json_dumps(c->user.data, JSON_COMPACT);
    if (!data || !cd_random_uuid(new_id)) {
        free(data);
        auth__error(req, 500, "unexpected_failure", "out of memory");
        return false;
    }
    const char *p[8] = {c->provider,
                        c->user.id,
                        data,
                        c->user.email,
                        c->user.email_verified ? "t" : "f",
                        app->cfg.default_user_role,
                        app->cfg.disable_signup ? "f" : "t",
                        new_id};
    db_stmt_t s = {"select s.status, s.user_id, s.email, s.created, "
                   "coalesce(x.banned_until > now(), false) "
                   "from auth.oauth_sign_in($1, $2, $3::jsonb, $4, $5::boolean, $6, $7::boolean, "
                   "$8::uuid) s left join auth.users x on x.id = s.user_id",
                   8, p};
    PGresult *r = NULL;
    bool ok = run_one(req, &s, &r, &AUTH_UNIQUE_EMAIL);
    free(data);
    if (!ok)
        return false;
    memset(out, 0, sizeof(*out));
    snprintf(out->status, sizeof(out->status), "%s", PQgetvalue(r, 0, 0));
    snprintf(out->uid, sizeof(out->uid), "%s", PQgetvalue(r, 0, 1));
    snprintf(out->email, sizeof(out->email), "%s", PQgetvalue(r, 0, 2));
    out->created = PQgetvalue(r, 0, 3)[0] == 't';
    out->banned = PQgetvalue(r, 0, 4)[0] == 't';
    PQclear(r);
    return true;
}

/* Answers a sign-in that did not lead to a user, with a redirect. */
static void callback_refused(http_request_t *req, const callback_t *c, const signed_in_t *s)
{
    bool pkce = c->flow != NULL;
    char msg[160];
    /* the audit reason of each outcome of auth.oauth_sign_in ("ok": banned) */
    static const char *const reasons[][2] = {{"ok", "user_banned"},
                                             {"unverified", "email_not_verified"},
                                             {"no_email", "email_not_provided"},
                                             {"deleted", "user_deleted"},
                                             {"signup_disabled", "signup_disabled"}};
    const char *reason = s->status;
    for (size_t i = 0; i < CD_ARRAY_LEN(reasons); i++)
        if (strcmp(s->status, reasons[i][0]) == 0)
            reason = reasons[i][1];
    audit_failure(req, c->provider, pkce, reason, s->uid, s->email);
    if (strcmp(s->status, "unverified") == 0) {
        snprintf(msg, sizeof(msg),
                 "Unverified email with %s: verify the address at the provider first", c->provider);
        redirect_error(req, c->to, pkce, "access_denied", "provider_email_needs_verification", msg);
    } else if (strcmp(s->status, "no_email") == 0) {
        redirect_error(req, c->to, pkce, "server_error", "email_address_not_provided",
                       "Error getting user email from external provider");
    } else if (strcmp(s->status, "deleted") == 0) {
        redirect_error(req, c->to, pkce, "access_denied", "user_not_found", "User not found");
    } else if (strcmp(s->status, "signup_disabled") == 0) {
        redirect_error(req, c->to, pkce, "access_denied", "signup_disabled",
                       "Signups not allowed for this instance");
    } else {
        redirect_error(req, c->to, pkce, "access_denied", "user_banned", "User is banned");
    }
}

void auth__redirect_with_code(http_request_t *req, const char *flow, const char *uid,
                              const char *to, long flow_ttl, const char *provider_token,
                              const char *provider_refresh_token)
{
    char code[CD_TOKEN_LEN + 1], hash[CD_SHA256_HEX_LEN + 1], ttl[24];
    if (!cd_random_token(code)) {
        auth__error(req, 500, "unexpected_failure", "no randomness available");
        return;
    }
    cd_sha256_hex(code, strlen(code), hash);
    snprintf(ttl, sizeof(ttl), "%ld", flow_ttl);
    const char *p[6] = {flow, uid, hash, ttl, provider_token, provider_refresh_token};
    db_stmt_t s = {"select auth.issue_flow_code($1::uuid, $2::uuid, $3, $4::int, $5, $6)", 6, p};
    PGresult *r = NULL;
    bool ok = run_one(req, &s, &r, NULL);
    if (!ok)
        return;
    bool issued = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!issued) {
        redirect_error(req, to, true, "invalid_request", "flow_state_expired",
                       "The sign-in took too long or was already completed; start again");
        return;
    }
    char loc[OAUTH_LOC_MAX];
    snprintf(loc, sizeof(loc), "%s%scode=%s", to, strchr(to, '?') ? "&" : "?", code);
    see_other(req, loc);
}

void auth__handle_callback(http_request_t *req)
{
    callback_t c = {0};
    signed_in_t s;
    set_state_cookie(req, NULL); /* used once, whatever happens next */
    if (!auth__check_limiter(req) || !callback_begin(req, &c) || !callback_user(req, &c, &s))
        goto done;
    if (strcmp(s.status, "ok") != 0 || s.banned) {
        callback_refused(req, &c, &s);
        goto done;
    }
    if (c.flow) { /* PKCE: the flow gets the user and an auth code */
        auth__redirect_with_code(req, c.flow, s.uid, c.to, OAUTH_STATE_TTL, c.access, c.refresh);
        goto done;
    }
    /* the implicit flow: the session in the fragment, amr "oauth" (036) */
    db_stmt_t amr = {"select set_config('campaignd.amr_method', 'oauth', true)", 0, NULL};
    auth_session_opts_t o = {
        .redirect_to = c.to, .provider_token = c.access, .provider_refresh_token = c.refresh};
    auth__start_session_opts(req, s.uid, s.email, &amr, 1, s.created ? "user_signedup" : "login",
                             &o);
done:
    oauth_user_free(&c.user);
    free(c.access);
    free(c.refresh);
    free(c.id_token);
    json_decref(c.claims);
}

/* ---------------------------------------------------------- PKCE grant */

void auth__grant_pkce(http_request_t *req, json_t *body)
{
    const char *code = auth__jstr(body, "auth_code");
    const char *verifier = auth__jstr(body, "code_verifier");
    if (!code || !*code || !verifier || !*verifier) {
        auth__error(req, 400, "validation_failed",
                    "invalid request: both auth code and code verifier should be non-empty");
        return;
    }
    if (!auth__check_limiter(req))
        return;
    char hash[CD_SHA256_HEX_LEN + 1], ttl[16];
    cd_sha256_hex(code, strlen(code), hash);
    snprintf(ttl, sizeof(ttl), "%d", OAUTH_CODE_TTL);
    const char *p[2] = {hash, ttl};
    /* the provider first (for the audit trail): redeeming deletes the flow */
    db_stmt_t s[2] = {
        {"select provider_type from auth.flow_state where auth_code = $1", 1, p},
        {"select r.user_id, r.code_challenge_method, r.code_challenge, "
         "r.authentication_method, r.provider_access_token, r.provider_refresh_token, "
         "u.email, coalesce(u.banned_until > now(), false) "
         "from auth.redeem_flow_state($1, $2::int) r join auth.users u on u.id = r.user_id",
         2, p}};
    PGresult *r[2] = {NULL, NULL};
    char *headers = auth_headers_json(req);
    bool ok = auth__run(req, headers, false, s, 2, r, NULL);
    free(headers);
    if (!ok)
        return;
    const char *provider = PQntuples(r[0]) == 1 ? PQgetvalue(r[0], 0, 0) : "";
    bool found = PQntuples(r[1]) == 1;
    const char *uid = found ? PQgetvalue(r[1], 0, 0) : NULL;
    const char *email = found ? PQgetvalue(r[1], 0, 6) : NULL;
    if (!found) {
        audit_failure(req, provider, true, "flow_state_not_found", NULL, NULL);
        auth__error(req, 404, "flow_state_not_found",
                    "invalid flow state, no valid flow state found");
    } else if (!oauth_pkce_matches(PQgetvalue(r[1], 0, 1), PQgetvalue(r[1], 0, 2), verifier)) {
        audit_failure(req, provider, true, "bad_code_verifier", uid, email);
        auth__error(req, 403, "bad_code_verifier",
                    "code challenge does not match previously saved code verifier");
    } else if (PQgetvalue(r[1], 0, 7)[0] == 't') {
        audit_failure(req, provider, true, "user_banned", uid, email);
        auth__error(req, 400, "user_banned", "User is banned");
    } else {
        const char *p_amr[1] = {PQgetvalue(r[1], 0, 3)};
        db_stmt_t amr = {"select set_config('campaignd.amr_method', $1, true)", 1, p_amr};
        auth_session_opts_t o = {
            .provider_token = PQgetisnull(r[1], 0, 4) ? NULL : PQgetvalue(r[1], 0, 4),
            .provider_refresh_token = PQgetisnull(r[1], 0, 5) ? NULL : PQgetvalue(r[1], 0, 5)};
        auth__start_session_opts(req, uid, email, &amr, 1, "login", &o);
    }
    PQclear(r[0]);
    PQclear(r[1]);
}
