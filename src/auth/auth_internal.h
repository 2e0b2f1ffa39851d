/*
 * What the files of the GoTrue-compatible endpoints share: gotrue.c (errors,
 * request checks, running the auth SQL, settings, the route table),
 * gotrue_sessions.c (sign-up, sign-in, refresh, sign-out), gotrue_users.c
 * (the signed-in user's own record) and gotrue_admin.c (the admin API). Not
 * for other modules: they use auth.h.
 */
#ifndef CD_AUTH_INTERNAL_H
#define CD_AUTH_INTERNAL_H

#include <jansson.h>

#include "auth/auth.h"
#include "auth/password.h"
#include "core/crypto.h"

#define AUTH_MAX_PER_PAGE 1000

/* The app a request belongs to. */
static inline app_t *auth__app(http_request_t *req)
{
    return req->ctx;
}

/* ------------------------------------------------------------ answers */

/* GoTrue's error shape, readable by both of auth-js's parsers (wire
 * reference 1.6): string code, legacy error_code, msg and message. */
void auth__error(http_request_t *req, int status, const char *code, const char *message);
/* 429 over_request_rate_limit with Retry-After: wait seconds. */
void auth__rate_limited(http_request_t *req, int wait, const char *message);

/* ------------------------------------------------------------ requests */

/* A string member of obj, or NULL. A string with a NUL byte inside also
 * gives NULL: C code must never see it cut short. */
const char *auth__jstr(json_t *obj, const char *key);
/* The JSON object body (empty allowed), or NULL after answering 400 (or 422
 * for a password with a NUL byte). The caller json_decref()s it. */
json_t *auth__read_body(http_request_t *req);
/* An object's compact JSON text (malloc'd), or NULL when v is not an object
 * (or memory ran out). How every metadata object reaches the SQL functions,
 * which drop the keys a caller may not set. */
char *auth__object_text(const json_t *v);
/* Requires a valid apikey (and a valid Bearer token, if one is sent). Returns
 * false after answering; on true, free caller with auth_caller_free. */
CD_MUSTCHECK bool auth__require_apikey(http_request_t *req, auth_caller_t *caller);
/* auth__require_apikey, and the token must be a signed-in user's. */
CD_MUSTCHECK bool auth__require_user(http_request_t *req, auth_caller_t *caller);
/* Counts the request against the per-address budget; false after 429. */
CD_MUSTCHECK bool auth__check_limiter(http_request_t *req);
/* Checks a new password against the policy; false after 422. */
CD_MUSTCHECK bool auth__check_password(http_request_t *req, const char *pw);
/* Hashes a new password with the configured bcrypt cost; false after 500. */
CD_MUSTCHECK bool auth__hash_password(http_request_t *req, const char *pw,
                                      char hash[PASSWORD_HASH_BYTES]);
/* Whether email is an address we accept; false (also for NULL) after 400. */
CD_MUSTCHECK bool auth__check_email(http_request_t *req, const char *email);

/* ------------------------------------------------------------ database */

/* The service_role context the auth SQL runs in, carrying the client's
 * address and user agent (headers_json, borrowed) for the audit trail. */
void auth__service_who(http_request_t *req, const char *headers_json, db_caller_t *who);

/* What a unique violation means for a statement (GoTrue's 422 answer). */
typedef struct auth_unique {
    const char *code; /* e.g. "email_exists" */
    const char *message;
    size_t before; /* only statements with an index below this count */
} auth_unique_t;
/* "A user with this email address has already been registered", for any statement. */
extern const auth_unique_t AUTH_UNIQUE_EMAIL;

/* Runs the auth SQL as service_role (auth__service_who). On DB_OK returns
 * true with res[0..n) filled (the caller PQclear()s them). Otherwise answers
 * and returns false: 503 when the database is unreachable, unique's 422 for a
 * unique violation it covers (NULL: none), else 500 with the error logged.
 * Every /auth/v1 handler's SQL goes through here. */
CD_MUSTCHECK bool auth__run(http_request_t *req, const char *headers_json, bool read_only,
                            const db_stmt_t *stmts, size_t n, PGresult **res,
                            const auth_unique_t *unique);

/* auth__run of one statement (sql with nparams params) and no unique
 * violation to map: the common case. */
CD_MUSTCHECK bool auth__query(http_request_t *req, const char *headers_json, bool read_only,
                              const char *sql, int nparams, const char *const *params,
                              PGresult **res);

/* auth__run for statements that encrypt or decrypt with the instance key
 * (the MFA secrets, migration 035): a write transaction with_secrets. */
CD_MUSTCHECK bool auth__run_secrets(http_request_t *req, const char *headers_json,
                                    const db_stmt_t *stmts, size_t n, PGresult **res);

/* ------------------------------------------------------------ mail */

/* The values of a mail template's placeholders ({{ .ConfirmationURL }}
 * etc., GoTrue's names); NULL renders as "". All borrowed. */
typedef struct auth_mail_vars {
    const char *confirmation_url;
    const char *token; /* the 6-digit code */
    const char *token_hash;
    const char *site_url;
    const char *email;
    const char *new_email;
    const char *redirect_to;
} auth_mail_vars_t;

/* Renders a template (HTML-escaping the values when html). Returns a malloc'd
 * string, or NULL when out of memory or too long. */
char *auth__mail_render(const char *tmpl, const auth_mail_vars_t *v, bool html);
/* Queues a mail of template kind `kind` on the durable mail queue
 * (jobs/mail.h) in a transaction of its own. False, and logged, when no SMTP
 * is configured or the database did not take it. */
bool auth__mail_enqueue(app_t *app, const char *kind, const char *to, const char *subject,
                        const char *text, const char *html);

/* ------------------------------------------------------------ handlers */

/* gotrue_sessions.c */
/* Starts a session for user_id after extra/nextra (same transaction) and
 * answers with the Session JSON, or, with redirect_to, a 303 to it carrying
 * the tokens and type in the fragment (GoTrue's implicit flow). */
void auth__start_session(http_request_t *req, const char *user_id, const char *email,
                         const db_stmt_t *extra, size_t nextra, const char *audit_action,
                         const char *redirect_to, const char *type);
/* What a session start may add (gotrue_sessions.c): the implicit-flow
 * redirect and its type, and the provider's tokens (OAuth) for the fragment
 * or the Session JSON. */
typedef struct auth_session_opts {
    const char *redirect_to;
    const char *type;
    const char *provider_token;
    const char *provider_refresh_token;
} auth_session_opts_t;
void auth__start_session_opts(http_request_t *req, const char *user_id, const char *email,
                              const db_stmt_t *extra, size_t nextra, const char *audit_action,
                              const auth_session_opts_t *o);
/* Signs an access token from claims_text (auth.access_claims) and answers
 * with the Session JSON carrying user_json and refresh_token (200). */
void auth__reply_session(http_request_t *req, const char *claims_text, const char *user_json,
                         const char *refresh_token);
void auth__handle_signup(http_request_t *req);
void auth__handle_token(http_request_t *req);
void auth__handle_spec_sign_in(http_request_t *req);
void auth__handle_logout(http_request_t *req);
/* gotrue_mail.c */
/* Whether url may be a redirect target: SITE_URL's origin, or a match of an
 * ADDITIONAL_REDIRECT_URLS glob. */
bool auth__redirect_allowed(const app_t *app, const char *url);
/* Sign-up when MAILER_AUTOCONFIRM is off: creates the unconfirmed user, mails
 * the confirmation and answers with the user (no session). */
void auth__signup_unconfirmed(http_request_t *req, const char *email, const char *password_hash,
                              const char *meta, const char *uid, const char *flow);
void auth__handle_recover(http_request_t *req);
void auth__handle_otp(http_request_t *req);
void auth__handle_resend(http_request_t *req);
void auth__handle_verify_post(http_request_t *req);
void auth__handle_verify_get(http_request_t *req);
void auth__handle_invite(http_request_t *req);
void auth__handle_generate_link(http_request_t *req);
/* PUT /user with a new e-mail while confirmation is on: mails a link and code
 * to the current and the new address; the change happens once both are
 * used. False after answering (taken address, 429, outage). */
CD_MUSTCHECK bool auth__request_email_change(http_request_t *req, const char *headers,
                                             const char *uid, const char *current,
                                             const char *new_email);
/* gotrue_oauth.c: GET /authorize, GET /callback, POST /token?grant_type=pkce */
void auth__handle_authorize(http_request_t *req);
void auth__handle_callback(http_request_t *req);
void auth__grant_pkce(http_request_t *req, json_t *body);
/* Gives PKCE flow `flow` to uid with a new auth code (alive OAUTH_CODE_TTL
 * once issued; the flow itself must be younger than flow_ttl seconds) and
 * answers 303 to `to` with ?code=; an error redirect when the flow is gone. */
void auth__redirect_with_code(http_request_t *req, const char *flow, const char *uid,
                              const char *to, long flow_ttl, const char *provider_token,
                              const char *provider_refresh_token);
/* The PKCE flow of a mail request body's code_challenge: stores a new
 * auth.flow_state row (method_name becomes its amr method), puts its id into
 * flow and returns true. False with flow "" when there is no challenge;
 * false after answering (400 for a bad challenge or method, or the
 * database's error) when req->replied. */
CD_MUSTCHECK bool auth__mail_flow(http_request_t *req, json_t *body, const char *method_name,
                                  char flow[CD_UUID_LEN + 1]);
/* gotrue_mfa.c: MFA factors (TOTP) and recovery codes, /auth/v1/factors... */
void auth__handle_mfa_enroll(http_request_t *req);
void auth__handle_mfa_challenge(http_request_t *req);
void auth__handle_mfa_verify(http_request_t *req);
void auth__handle_mfa_unenroll(http_request_t *req);
void auth__handle_recovery_status(http_request_t *req);
void auth__handle_recovery_generate(http_request_t *req);
void auth__handle_recovery_regenerate(http_request_t *req);
void auth__handle_recovery_verify(http_request_t *req);
void auth__handle_recovery_delete(http_request_t *req);
/* gotrue_users.c */
void auth__handle_get_user(http_request_t *req);
void auth__handle_put_user(http_request_t *req);
/* gotrue_admin.c */
void auth__handle_admin_list(http_request_t *req);
void auth__handle_admin_create(http_request_t *req);
void auth__handle_admin_get(http_request_t *req);
void auth__handle_admin_update(http_request_t *req);
void auth__handle_admin_delete(http_request_t *req);
/* Requires the service key, or the token of a signed-in, unbanned admin
 * whose session still exists. False after answering (caller freed). */
CD_MUSTCHECK bool auth__require_admin(http_request_t *req, auth_caller_t *caller);

#endif
