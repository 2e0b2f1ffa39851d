/*
 * GoTrue's MFA endpoints, as supabase-js's auth.mfa calls them: TOTP factors
 * (POST /factors, POST /factors/{id}/challenge, POST /factors/{id}/verify,
 * DELETE /factors/{id}) and recovery codes (/factors/recovery-codes...,
 * auth.mfa.recoveryCodes behind experimental.recoveryCodes). The rules live in
 * migrations/035_mfa.sql: ownership, expiry, replay, attempt limits and the
 * aal checks are decided there under row locks, and its functions answer with a
 * status this file maps to GoTrue's errors. C does what SQL should not: the
 * TOTP arithmetic (core/totp), the QR code (core/qrsvg), random secrets and
 * codes, and signing the access token. See docs/auth.md, "MFA".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "auth/auth_internal.h"
#include "core/buf.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/qrsvg.h"
#include "core/text.h"
#include "core/totp.h"

#define MFA_MAX_FACTORS      10  /* GoTrue's MFA_MAX_ENROLLED_FACTORS */
#define MFA_CHALLENGE_EXPIRY 300 /* seconds, GoTrue's MFA_CHALLENGE_EXPIRY_DURATION */
#define MFA_NAME_MAX         255
#define RECOVERY_CODE_COUNT  10
#define RECOVERY_CODE_LEN    16 /* base32 characters: 80 random bits each */
#define RECOVERY_CODE_INPUT  64 /* longest code input accepted (spaces, dashes) */

/* ------------------------------------------------------------- statuses */

/* How a status of the SQL functions is answered. */
typedef struct mfa_answer {
    const char *status;
    int http;
    const char *code;
    const char *message;
} mfa_answer_t;

static const mfa_answer_t MFA_ANSWERS[] = {
    {"session_not_found", 403, "session_not_found",
     "Session from session_id claim in JWT does not exist"},
    {"not_found", 404, "mfa_factor_not_found", "Factor not found"},
    {"challenge_not_found", 422, "mfa_factor_not_found",
     "MFA factor with the provided challenge ID not found"},
    {"challenge_used", 422, "mfa_challenge_expired",
     "MFA challenge has already been used, create a new challenge."},
    {"expired", 422, "mfa_challenge_expired",
     "MFA challenge has expired, verify against another challenge or create a new challenge."},
    /* a replayed code gets the answer of a wrong one: no hint which it was */
    {"invalid", 422, "mfa_verification_failed", "Invalid TOTP code entered"},
    {"replay", 422, "mfa_verification_failed", "Invalid TOTP code entered"},
    {"too_many", 422, "too_many_enrolled_mfa_factors",
     "Maximum number of verified factors reached, unenroll to continue"},
    {"name_conflict", 422, "mfa_factor_name_conflict",
     "A factor with this friendly name for this user already exists"},
    {"sole_factor", 422, "mfa_recovery_codes_sole_factor",
     "Recovery codes cannot be the only verified factor. Enroll another factor first, or "
     "delete your recovery codes."},
    {"exists", 422, "mfa_verified_factor_exists",
     "Recovery codes are already enrolled for this user, use regenerate to rotate them"},
    {"recovery_code", 422, "validation_failed",
     "Recovery codes cannot be unenrolled with this endpoint, use DELETE /factors/recovery-codes"},
};

/* Answers a non-ok status; insufficient_aal gets aal_status (GoTrue answers
 * 422 for unenroll, 403 elsewhere) and its own message. */
static void reply_status(http_request_t *req, const char *status, int aal_status,
                         const char *aal_message)
{
    if (strcmp(status, "insufficient_aal") == 0) {
        auth__error(req, aal_status, "insufficient_aal", aal_message);
        return;
    }
    for (size_t i = 0; i < CD_ARRAY_LEN(MFA_ANSWERS); i++) {
        if (strcmp(status, MFA_ANSWERS[i].status) == 0) {
            auth__error(req, MFA_ANSWERS[i].http, MFA_ANSWERS[i].code, MFA_ANSWERS[i].message);
            return;
        }
    }
    log_error("MFA: unexpected status %s", status);
    auth__error(req, 500, "unexpected_failure", "Unexpected failure, please check server logs");
}

/* 429 for a locked factor, with the seconds left. */
static void reply_locked(http_request_t *req, const char *wait, const char *code)
{
    int w = wait && *wait ? (int)strtol(wait, NULL, 10) : 1;
    char v[16];
    snprintf(v, sizeof(v), "%d", w > 0 ? w : 1);
    http_add_header(req, "Retry-After", v);
    auth__error(req, 429, code, "Too many failed verification attempts, try again later");
}

/* --------------------------------------------------------------- helpers */

/* The caller of an MFA endpoint: a signed-in user's token naming a session.
 * False after answering (caller freed). */
static bool mfa_caller(http_request_t *req, auth_caller_t *c)
{
    if (!auth__require_user(req, c))
        return false;
    if (!cd_is_uuid(c->session_id)) {
        auth__error(req, 403, "session_not_found",
                    "Session from session_id claim in JWT does not exist");
        auth_caller_free(c);
        return false;
    }
    return true;
}

/* The factor id of the path, or NULL after answering 404. */
static const char *path_factor(http_request_t *req)
{
    const char *id = req->nparams > 0 ? req->params[0] : NULL;
    if (id && cd_is_uuid(id))
        return id;
    auth__error(req, 404, "mfa_factor_not_found", "Factor not found");
    return NULL;
}

/* What an MFA handler does once its caller, factor and body are known. */
typedef void (*mfa_body_fn)(http_request_t *req, const auth_caller_t *c, const char *factor,
                            json_t *body);

/* Runs fn for a signed-in caller with a session (mfa_caller); with_factor,
 * with the path's factor id (else NULL); with_body, with the JSON body (else
 * NULL). Whatever is missing is answered here; all is freed after fn. */
static void with_mfa(http_request_t *req, bool with_factor, bool with_body, mfa_body_fn fn)
{
    auth_caller_t c;
    if (!mfa_caller(req, &c))
        return;
    const char *factor = with_factor ? path_factor(req) : NULL;
    json_t *body = with_body && (!with_factor || factor) ? auth__read_body(req) : NULL;
    if ((!with_factor || factor) && (!with_body || body))
        fn(req, &c, factor, body);
    json_decref(body);
    auth_caller_free(&c);
}

/* An optional string member of at most max bytes: *out gets it (or def).
 * False after answering 400. */
static bool optional_string(http_request_t *req, json_t *body, const char *key, size_t max,
                            const char *def, const char **out)
{
    json_t *v = json_object_get(body, key);
    *out = def;
    if (!v || json_is_null(v))
        return true;
    const char *s = auth__jstr(body, key);
    if (!s || strlen(s) > max) {
        char msg[96];
        snprintf(msg, sizeof(msg), "%s must be a string of at most %zu bytes", key, max);
        auth__error(req, 400, "validation_failed", msg);
        return false;
    }
    *out = s;
    return true;
}

/* A fresh refresh token and its hash, for a session raised to aal2. */
static bool new_refresh_token(http_request_t *req, char token[CD_TOKEN_LEN + 1],
                              char hash[CD_SHA256_HEX_LEN + 1])
{
    if (!cd_random_token(token)) {
        auth__error(req, 500, "unexpected_failure", "no randomness available");
        return false;
    }
    cd_sha256_hex(token, strlen(token), hash);
    return true;
}

/* Runs `raise` (a statement returning the status in column 0, with user_id as
 * $1 and session_id as $2 among its parameters) and, in the same transaction,
 * builds the session's new claims. On "ok" answers with the Session JSON
 * (refresh token `token`); otherwise copies the status (and column 1, a wait in
 * seconds or NULL) out for the caller to answer. False after answering. */
static bool raise_session(http_request_t *req, const auth_caller_t *c, const db_stmt_t *raise,
                          const char *token, char *status, size_t status_len, char *extra,
                          size_t extra_len)
{
    app_t *app = auth__app(req);
    char iat[24], exp[24];
    long long now = (long long)time(NULL);
    snprintf(iat, sizeof(iat), "%lld", now);
    snprintf(exp, sizeof(exp), "%lld", now + app->cfg.jwt_exp);
    const char *p_claims[5] = {c->user_id, c->session_id, iat, exp, app->issuer};
    db_stmt_t stmts[2] = {
        *raise,
        {"select auth.access_claims(u, $2::uuid, $3::bigint, $4::bigint, $5)::text, "
         "auth.user_json(u)::text from auth.users u where u.id = $1::uuid",
         5, p_claims},
    };
    PGresult *res[2] = {0};
    if (!auth__run(req, c->headers_json, false, stmts, 2, res, NULL))
        return false;
    snprintf(status, status_len, "%s", PQgetvalue(res[0], 0, 0));
    if (extra)
        snprintf(extra, extra_len, "%s",
                 PQnfields(res[0]) > 1 && !PQgetisnull(res[0], 0, 1) ? PQgetvalue(res[0], 0, 1)
                                                                     : "");
    bool ok = strcmp(status, "ok") == 0;
    if (ok && PQntuples(res[1]) == 1)
        auth__reply_session(req, PQgetvalue(res[1], 0, 0), PQgetvalue(res[1], 0, 1), token);
    else if (ok)
        auth__error(req, 500, "unexpected_failure", "the user vanished while verifying");
    PQclear(res[0]);
    PQclear(res[1]);
    return !ok;
}

/* ---------------------------------------------------------------- enroll */

/* The otpauth:// URI of a secret (Google Authenticator's key URI format). */
static bool otpauth_uri(const char *issuer, const char *account, const char *secret, char *out,
                        size_t cap)
{
    char iss[3 * MFA_NAME_MAX + 1], acc[3 * 320 + 1];
    bool c1, c2;
    cd_percent_encode(iss, sizeof(iss), issuer, "-._~", &c1);
    cd_percent_encode(acc, sizeof(acc), account, "-._~", &c2);
    int n = snprintf(out, cap,
                     "otpauth://totp/%s:%s?secret=%s&issuer=%s&algorithm=SHA1&digits=%d&period=%d",
                     iss, acc, secret, iss, TOTP_DIGITS, TOTP_PERIOD);
    return c1 && c2 && n > 0 && (size_t)n < cap;
}

/* The issuer when the request names none: SITE_URL's host, as GoTrue. */
static void default_issuer(const app_t *app, char *out, size_t cap)
{
    const char *s = strstr(app->cfg.site_url, "://");
    s = s ? s + 3 : app->cfg.site_url;
    size_t n = strcspn(s, "/?#");
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), s);
    if (!*out)
        snprintf(out, cap, "campaignd");
}

/* Answers the enrolment: the factor, its secret, URI and QR code (SVG). */
static void reply_enrolled(http_request_t *req, const char *id, const char *name,
                           const char *secret, const char *uri)
{
    char *svg = qrsvg_render(uri, NULL);
    if (!svg) {
        auth__error(req, 500, "unexpected_failure", "Error generating QR Code");
        return;
    }
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s}}", "id", id, "type", "totp", "friendly_name",
                  name, "totp", "qr_code", svg, "secret", secret, "uri", uri);
    free(svg);
    http_reply_json(req, 200, j);
}

static void enroll_totp(http_request_t *req, const auth_caller_t *c, json_t *body)
{
    app_t *app = auth__app(req);
    const char *name, *issuer;
    char def_issuer[256];
    default_issuer(app, def_issuer, sizeof(def_issuer));
    if (!optional_string(req, body, "friendly_name", MFA_NAME_MAX, "", &name) ||
        !optional_string(req, body, "issuer", MFA_NAME_MAX, def_issuer, &issuer))
        return;
    const char *email = json_string_value(json_object_get(c->claims, "email"));
    char secret[TOTP_SECRET_BASE32 + 1], uri[2048], max[16];
    if (!totp_new_secret(secret)) {
        auth__error(req, 500, "unexpected_failure", "no randomness available");
        return;
    }
    if (!otpauth_uri(*issuer ? issuer : def_issuer, email && *email ? email : c->user_id, secret,
                     uri, sizeof(uri))) {
        auth__error(req, 400, "validation_failed", "issuer or account name too long");
        return;
    }
    snprintf(max, sizeof(max), "%d", MFA_MAX_FACTORS);
    const char *p[6] = {c->user_id, c->session_id, name, secret, max, req->client_ip};
    db_stmt_t stmt = {"select status, factor_id from auth.mfa_enroll_totp($1::uuid, $2::uuid, $3, "
                      "$4, $5::int, $6)",
                      6, p};
    PGresult *r = NULL;
    if (!auth__run_secrets(req, c->headers_json, &stmt, 1, &r))
        return;
    const char *status = PQgetvalue(r, 0, 0);
    if (strcmp(status, "ok") == 0)
        reply_enrolled(req, PQgetvalue(r, 0, 1), name, secret, uri);
    else
        reply_status(req, status, 403, "AAL2 required to enroll a new factor");
    PQclear(r);
    memset(secret, 0, sizeof(secret));
}

static void enroll(http_request_t *req, const auth_caller_t *c, const char *factor, json_t *body)
{
    (void)factor;
    const char *type = auth__jstr(body, "factor_type");
    if (type && strcmp(type, "totp") == 0)
        enroll_totp(req, c, body);
    else if (type && strcmp(type, "phone") == 0)
        auth__error(req, 422, "mfa_phone_enroll_not_enabled", "MFA enroll is disabled for Phone");
    else if (type && strcmp(type, "webauthn") == 0)
        auth__error(req, 422, "mfa_webauthn_enroll_not_enabled",
                    "MFA enroll is disabled for WebAuthn");
    else
        auth__error(req, 400, "validation_failed",
                    "factor_type needs to be totp, phone, or webauthn");
}

void auth__handle_mfa_enroll(http_request_t *req)
{
    with_mfa(req, false, true, enroll);
}

/* ------------------------------------------------------------- challenge */

/* auth-js sends {factorId} as the body: ignored (the path names the factor) */
static void challenge(http_request_t *req, const auth_caller_t *c, const char *factor, json_t *body)
{
    (void)body;
    char expiry[16];
    snprintf(expiry, sizeof(expiry), "%d", MFA_CHALLENGE_EXPIRY);
    const char *p[5] = {c->user_id, c->session_id, factor, req->client_ip, expiry};
    db_stmt_t stmt = {"select status, challenge_id, factor_type, expires_at from "
                      "auth.mfa_challenge($1::uuid, $2::uuid, $3::uuid, $4, $5::int)",
                      5, p};
    PGresult *r = NULL;
    if (!auth__run(req, c->headers_json, false, &stmt, 1, &r, NULL))
        return;
    const char *status = PQgetvalue(r, 0, 0);
    if (strcmp(status, "ok") == 0)
        http_reply_json(req, 200,
                        json_pack("{s:s, s:s, s:I}", "id", PQgetvalue(r, 0, 1), "type",
                                  PQgetvalue(r, 0, 2), "expires_at",
                                  (json_int_t)strtoll(PQgetvalue(r, 0, 3), NULL, 10)));
    else
        reply_status(req, status, 403, "");
    PQclear(r);
}

void auth__handle_mfa_challenge(http_request_t *req)
{
    with_mfa(req, true, true, challenge);
}

/* ---------------------------------------------------------------- verify */

/* Reads the factor's secret and last accepted step for a challenge and checks
 * code against it. On true *step is the matched step, or -1 for a wrong code.
 * False after answering (not the user's factor, challenge unusable, locked). */
static bool check_totp(http_request_t *req, const auth_caller_t *c, const char *factor,
                       const char *challenge, const char *code, int64_t *step)
{
    const char *p[3] = {c->user_id, factor, challenge};
    db_stmt_t stmt = {"select status, secret, last_used_step, wait from "
                      "auth.mfa_totp_state($1::uuid, $2::uuid, $3::uuid)",
                      3, p};
    PGresult *r = NULL;
    if (!auth__run_secrets(req, c->headers_json, &stmt, 1, &r))
        return false;
    const char *status = PQgetvalue(r, 0, 0);
    bool ok = strcmp(status, "ok") == 0;
    if (!ok && strcmp(status, "locked") == 0)
        reply_locked(req, PQgetvalue(r, 0, 3), "over_request_rate_limit");
    else if (!ok)
        reply_status(req, status, 403, "");
    if (ok) {
        unsigned char key[64];
        long keylen = totp_base32_decode(PQgetvalue(r, 0, 1), key, sizeof(key));
        int64_t last = PQgetisnull(r, 0, 2) ? -1 : strtoll(PQgetvalue(r, 0, 2), NULL, 10);
        *step = -1;
        if (keylen <= 0) {
            log_error("MFA: factor %s has an undecodable secret", factor);
            auth__error(req, 500, "unexpected_failure", "Database error verifying MFA TOTP secret");
            ok = false;
        } else if (!totp_match(key, (size_t)keylen, code, (int64_t)time(NULL), last, step)) {
            *step = -1;
        }
        memset(key, 0, sizeof(key));
    }
    PQclear(r);
    return ok;
}

static void verify(http_request_t *req, const auth_caller_t *c, const char *factor, json_t *body)
{
    app_t *app = auth__app(req);
    const char *challenge = auth__jstr(body, "challenge_id");
    const char *code = auth__jstr(body, "code");
    int64_t step;
    char token[CD_TOKEN_LEN + 1], hash[CD_SHA256_HEX_LEN + 1];
    if (!code || !*code) {
        auth__error(req, 400, "validation_failed", "Code needs to be non-empty");
    } else if (!challenge || !cd_is_uuid(challenge)) {
        auth__error(req, 400, "validation_failed", "challenge_id must be a UUID");
    } else if (auth__check_limiter(req) && check_totp(req, c, factor, challenge, code, &step) &&
               new_refresh_token(req, token, hash)) {
        char s_step[24], s_max[16], s_lock[16], status[32];
        snprintf(s_step, sizeof(s_step), "%lld", (long long)step);
        snprintf(s_max, sizeof(s_max), "%ld", app->cfg.mfa_max_verify_attempts);
        snprintf(s_lock, sizeof(s_lock), "%ld", app->cfg.mfa_lockout_seconds);
        const char *p[9] = {
            c->user_id, c->session_id, factor, challenge,     step >= 0 ? s_step : NULL,
            hash,       s_max,         s_lock, req->client_ip};
        db_stmt_t raise = {"select auth.mfa_verify_totp($1::uuid, $2::uuid, $3::uuid, $4::uuid, "
                           "$5::bigint, $6, $7::int, $8::int, $9)",
                           9, p};
        if (raise_session(req, c, &raise, token, status, sizeof(status), NULL, 0)) {
            if (strcmp(status, "locked") == 0)
                reply_locked(req, NULL, "over_request_rate_limit");
            else
                reply_status(req, status, 403, "");
        }
    }
}

void auth__handle_mfa_verify(http_request_t *req)
{
    with_mfa(req, true, true, verify);
}

/* -------------------------------------------------------------- unenroll */

/* Runs stmt (the status in column 0, a factor id in column 1) and answers
 * {id} on "ok"; "not_found" gets 404 with not_found_message, any other status
 * reply_status with the aal answer. */
static void reply_removed(http_request_t *req, const auth_caller_t *c, const db_stmt_t *stmt,
                          const char *not_found_message, int aal_status, const char *aal_message)
{
    PGresult *r = NULL;
    if (!auth__run(req, c->headers_json, false, stmt, 1, &r, NULL))
        return;
    const char *status = PQgetvalue(r, 0, 0);
    if (strcmp(status, "ok") == 0)
        http_reply_json(req, 200, json_pack("{s:s}", "id", PQgetvalue(r, 0, 1)));
    else if (strcmp(status, "not_found") == 0)
        auth__error(req, 404, "mfa_factor_not_found", not_found_message);
    else
        reply_status(req, status, aal_status, aal_message);
    PQclear(r);
}

static void unenroll(http_request_t *req, const auth_caller_t *c, const char *factor, json_t *body)
{
    (void)body;
    const char *p[4] = {c->user_id, c->session_id, factor, req->client_ip};
    db_stmt_t stmt = {"select auth.mfa_unenroll($1::uuid, $2::uuid, $3::uuid, $4), $3::uuid::text",
                      4, p};
    reply_removed(req, c, &stmt, "Factor not found", 422,
                  "AAL2 required to unenroll verified factor");
}

void auth__handle_mfa_unenroll(http_request_t *req)
{
    with_mfa(req, true, false, unenroll);
}

/* ---------------------------------------------------------- recovery codes */

void auth__handle_recovery_status(http_request_t *req)
{
    auth_caller_t c;
    if (!mfa_caller(req, &c))
        return;
    const char *p[1] = {c.user_id};
    db_stmt_t stmt = {"select factor_id, total, remaining from auth.mfa_recovery_status($1::uuid)",
                      1, p};
    PGresult *r = NULL;
    if (!auth__run(req, c.headers_json, true, &stmt, 1, &r, NULL))
        goto done;
    if (PQntuples(r) != 1)
        auth__error(req, 404, "mfa_factor_not_found", "The user has not enrolled recovery codes");
    else
        http_reply_json(req, 200,
                        json_pack("{s:s, s:s, s:i, s:i}", "id", PQgetvalue(r, 0, 0), "type",
                                  "recovery_code", "total",
                                  (int)strtol(PQgetvalue(r, 0, 1), NULL, 10), "remaining",
                                  (int)strtol(PQgetvalue(r, 0, 2), NULL, 10)));
    PQclear(r);
done:
    auth_caller_free(&c);
}

/* Ten random codes (lower-case base32) and the SQL array of their SHA-256. */
static bool new_recovery_codes(char codes[RECOVERY_CODE_COUNT][RECOVERY_CODE_LEN + 1], char *array,
                               size_t cap)
{
    size_t w = 0;
    array[w++] = '{';
    for (int i = 0; i < RECOVERY_CODE_COUNT; i++) {
        unsigned char raw[RECOVERY_CODE_LEN * 5 / 8];
        char b32[RECOVERY_CODE_LEN + 2];
        if (RAND_bytes(raw, sizeof(raw)) != 1)
            return false;
        totp_base32_encode(raw, sizeof(raw), b32);
        for (int k = 0; k < RECOVERY_CODE_LEN; k++)
            codes[i][k] = (char)(b32[k] >= 'A' && b32[k] <= 'Z' ? b32[k] + 32 : b32[k]);
        codes[i][RECOVERY_CODE_LEN] = '\0';
        if (w + CD_SHA256_HEX_LEN + 3 > cap)
            return false;
        if (i)
            array[w++] = ',';
        cd_sha256_hex(codes[i], RECOVERY_CODE_LEN, array + w);
        w += CD_SHA256_HEX_LEN;
    }
    array[w++] = '}';
    array[w] = '\0';
    return true;
}

/* body: optional {friendly_name} */
static void store_recovery_codes(http_request_t *req, const auth_caller_t *c, json_t *body,
                                 bool regenerate)
{
    const char *name;
    char codes[RECOVERY_CODE_COUNT][RECOVERY_CODE_LEN + 1];
    char array[RECOVERY_CODE_COUNT * (CD_SHA256_HEX_LEN + 1) + 4];
    if (!optional_string(req, body, "friendly_name", MFA_NAME_MAX, "", &name))
        return;
    if (!new_recovery_codes(codes, array, sizeof(array))) {
        auth__error(req, 500, "unexpected_failure", "no randomness available");
        goto done;
    }
    const char *p[6] = {c->user_id,    c->session_id, name, array, regenerate ? "true" : "false",
                        req->client_ip};
    db_stmt_t stmt = {"select status, factor_id, friendly_name from auth.mfa_recovery_store("
                      "$1::uuid, $2::uuid, $3, $4::text[], $5::bool, $6)",
                      6, p};
    PGresult *r = NULL;
    if (!auth__run(req, c->headers_json, false, &stmt, 1, &r, NULL))
        goto done;
    const char *status = PQgetvalue(r, 0, 0);
    if (strcmp(status, "ok") == 0) {
        json_t *list = json_array();
        for (int i = 0; i < RECOVERY_CODE_COUNT; i++)
            json_array_append_new(list, json_string(codes[i]));
        json_t *j = json_pack("{s:s, s:s, s:i, s:o}", "id", PQgetvalue(r, 0, 1), "type",
                              "recovery_code", "total", RECOVERY_CODE_COUNT, "codes", list);
        if (j && *PQgetvalue(r, 0, 2))
            json_object_set_new(j, "friendly_name", json_string(PQgetvalue(r, 0, 2)));
        http_add_header(req, "Cache-Control", "no-store");
        http_reply_json(req, 200, j);
    } else if (strcmp(status, "not_found") == 0) {
        auth__error(req, 404, "mfa_factor_not_found", "The user has not enrolled recovery codes");
    } else {
        reply_status(req, status, 403,
                     regenerate ? "AAL2 required to regenerate recovery codes"
                                : "AAL2 required to generate recovery codes");
    }
    PQclear(r);
done:
    memset(codes, 0, sizeof(codes));
}

static void generate_codes(http_request_t *req, const auth_caller_t *c, const char *factor,
                           json_t *body)
{
    (void)factor;
    store_recovery_codes(req, c, body, false);
}

static void regenerate_codes(http_request_t *req, const auth_caller_t *c, const char *factor,
                             json_t *body)
{
    (void)factor;
    store_recovery_codes(req, c, body, true);
}

void auth__handle_recovery_generate(http_request_t *req)
{
    with_mfa(req, false, true, generate_codes);
}

void auth__handle_recovery_regenerate(http_request_t *req)
{
    with_mfa(req, false, true, regenerate_codes);
}

/* A typed recovery code in its stored form: lower case, without the spaces
 * and dashes people add when copying. False when empty or malformed. */
static bool normalize_recovery_code(const char *in, char out[RECOVERY_CODE_LEN + 1])
{
    size_t n = 0;
    if (!in || strlen(in) > RECOVERY_CODE_INPUT)
        return false;
    for (const char *p = in; *p; p++) {
        char ch = *p;
        if (ch == ' ' || ch == '-')
            continue;
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch + 32);
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '2' && ch <= '7')) || n >= RECOVERY_CODE_LEN)
            return false;
        out[n++] = ch;
    }
    out[n] = '\0';
    return n == RECOVERY_CODE_LEN;
}

static void recovery_verify(http_request_t *req, const auth_caller_t *c, const char *factor,
                            json_t *body)
{
    (void)factor;
    app_t *app = auth__app(req);
    const char *code = auth__jstr(body, "code");
    char norm[RECOVERY_CODE_LEN + 1], token[CD_TOKEN_LEN + 1], hash[CD_SHA256_HEX_LEN + 1];
    char code_hash[CD_SHA256_HEX_LEN + 1];
    if (!code || !*code) {
        auth__error(req, 400, "validation_failed", "Code needs to be non-empty");
    } else if (auth__check_limiter(req) && new_refresh_token(req, token, hash)) {
        /* a malformed code is hashed as typed: it matches nothing and counts as a failure */
        const char *what = normalize_recovery_code(code, norm) ? norm : code;
        cd_sha256_hex(what, strlen(what), code_hash);
        char s_max[16], s_lock[16], status[32], wait[24];
        snprintf(s_max, sizeof(s_max), "%ld", app->cfg.mfa_max_verify_attempts);
        snprintf(s_lock, sizeof(s_lock), "%ld", app->cfg.mfa_lockout_seconds);
        const char *p[7] = {c->user_id, c->session_id, code_hash,     hash,
                            s_max,      s_lock,        req->client_ip};
        db_stmt_t raise = {"select status, wait from auth.mfa_recovery_verify($1::uuid, $2::uuid, "
                           "$3, $4, $5::int, $6::int, $7)",
                           7, p};
        if (raise_session(req, c, &raise, token, status, sizeof(status), wait, sizeof(wait))) {
            if (strcmp(status, "locked") == 0)
                reply_locked(req, wait, "mfa_recovery_codes_locked");
            else if (strcmp(status, "invalid") == 0)
                auth__error(req, 422, "mfa_verification_failed", "Invalid recovery code entered");
            else
                reply_status(req, status, 403, "");
        }
    }
}

void auth__handle_recovery_verify(http_request_t *req)
{
    with_mfa(req, false, true, recovery_verify);
}

static void delete_codes(http_request_t *req, const auth_caller_t *c, const char *factor,
                         json_t *body)
{
    (void)factor;
    (void)body;
    const char *p[3] = {c->user_id, c->session_id, req->client_ip};
    db_stmt_t stmt = {
        "select status, factor_id from auth.mfa_recovery_delete($1::uuid, $2::uuid, $3)", 3, p};
    reply_removed(req, c, &stmt, "The user has not enrolled recovery codes", 403,
                  "AAL2 required to delete recovery codes");
}

void auth__handle_recovery_delete(http_request_t *req)
{
    with_mfa(req, false, false, delete_codes);
}

/* ------------------------------------------------------------- at start */

bool auth_mfa_apply_setting(app_t *app)
{
    if (!app->cfg.mfa_required_for_admin)
        return true;
    PGconn *c = app_owner_connect(app);
    if (!c)
        return false;
    PGresult *r = PQexec(c, "update public.app_settings set mfa_required_for_admin = true "
                            "where not mfa_required_for_admin");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        log_error("cannot turn on app_settings.mfa_required_for_admin: %s",
                  PQresultErrorMessage(r));
    else
        log_info("MFA_REQUIRED_FOR_ADMIN: admins need a verified second factor (aal2)");
    PQclear(r);
    PQfinish(c);
    return ok;
}
