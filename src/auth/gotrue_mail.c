/*
 * GoTrue's mailed flows: sign-up with confirmation, POST /recover, POST /otp
 * (magic link and 6-digit code), POST /resend, POST and GET /verify, and the
 * redirect_to check shared by all of them. Every mail carries a link and a
 * 6-digit code, either of which works once (auth.email_tokens, migration
 * 025). Answers never say whether an address is registered: /recover, /otp and
 * /resend answer 200 {} alike, and the mail leaves through the durable mail
 * queue (mailer.c, jobs/mail.h), so the time taken does not tell either.
 */
#include <curl/curl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth_internal.h"
#include "core/crypto.h"
#include "core/log.h"

#define CODE_DIGITS 6

/* ------------------------------------------------------------ redirects */

/* GoTrue's globs: '*' matches within one path segment or host label (not
 * '.' or '/'), '**' matches anything, everything else itself. */
static bool glob_match(const char *g, const char *s)
{
    while (*g) {
        if (g[0] == '*' && g[1] == '*') {
            for (const char *t = s;; t++) {
                if (glob_match(g + 2, t))
                    return true;
                if (!*t)
                    return false;
            }
        }
        if (*g == '*') {
            for (const char *t = s;; t++) {
                if (glob_match(g + 1, t))
                    return true;
                if (!*t || *t == '.' || *t == '/')
                    return false;
            }
        }
        if (*g != *s)
            return false;
        g++;
        s++;
    }
    return *s == '\0';
}

/* The "scheme://authority" prefix length of an http(s) URL, or 0 when the URL
 * is not one we would redirect to (other schemes, user info, spaces,
 * backslashes, control characters). */
static size_t origin_len(const char *u)
{
    size_t start;
    if (strncasecmp(u, "https://", 8) == 0)
        start = 8;
    else if (strncasecmp(u, "http://", 7) == 0)
        start = 7;
    else
        return 0;
    for (const unsigned char *p = (const unsigned char *)u; *p; p++)
        if (*p <= ' ' || *p == '\\' || *p == 0x7f)
            return 0;
    size_t n = start + strcspn(u + start, "/?#");
    if (n == start || memchr(u + start, '@', n - start))
        return 0;
    return n;
}

bool auth__redirect_allowed(const app_t *app, const char *url)
{
    size_t n = origin_len(url);
    if (!n || strlen(url) > 2000)
        return false;
    const char *site = app->cfg.site_url;
    size_t sn = origin_len(site);
    if (sn == n && strncasecmp(site, url, n) == 0)
        return true;
    char list[CONFIG_MAX_VALUE];
    snprintf(list, sizeof(list), "%s", app->cfg.additional_redirect_urls);
    char *save = NULL;
    for (char *g = strtok_r(list, ",", &save); g; g = strtok_r(NULL, ",", &save)) {
        while (*g == ' ')
            g++;
        size_t gl = strlen(g);
        while (gl && g[gl - 1] == ' ')
            g[--gl] = '\0';
        if (*g && glob_match(g, url))
            return true;
    }
    return false;
}

/* The redirect to use: requested when allowed, else SITE_URL (as GoTrue: an
 * unknown redirect_to is replaced, never followed). */
static const char *pick_redirect(const app_t *app, const char *requested)
{
    if (requested && *requested && auth__redirect_allowed(app, requested))
        return requested;
    return app->cfg.site_url;
}

/* ------------------------------------------------------------- tokens */

/* A uniformly random 6-digit code. */
static bool random_code(char out[CODE_DIGITS + 1])
{
    uint32_t v;
    do {
        if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
            return false;
    } while (v >= 4294000000u); /* a multiple of 10^6: no modulo bias */
    snprintf(out, CODE_DIGITS + 1, "%06u", (unsigned)(v % 1000000u));
    return true;
}

/* The stored form of a code: HMAC under the JWT secret, so a copy of the
 * table does not give the codes away by trying all 10^6. */
static void code_hash(const app_t *app, const char *code, char out[CD_TOKEN_LEN + 1])
{
    char msg[32];
    int n = snprintf(msg, sizeof(msg), "otp:%s", code);
    cd_hmac_b64url(app->jwt_secret, app->jwt_secret_len, msg, (size_t)n, out);
}

static bool is_code(const char *s)
{
    if (strlen(s) != CODE_DIGITS)
        return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

/* One mail to send. */
typedef struct mail_job {
    const char *uid;       /* the user, or NULL: see lookup */
    bool lookup;           /* uid NULL: find the user by address (else: nobody) */
    const char *purpose;   /* auth.email_tokens.purpose */
    const char *kind;      /* public.auth_mail_templates.kind */
    const char *link_type; /* the type=... of the link */
    const char *to;
    const char *email; /* the user's address, for the template */
    const char *new_email;
    const char *redirect_to; /* already checked */
    const char *flow;        /* the PKCE flow the link completes (auth__mail_flow), or NULL */
} mail_job_t;

/* The template kind and link type of each token purpose. */
static const struct {
    const char *purpose, *kind, *link_type;
} MAIL_PURPOSES[] = {
    {"signup", "confirmation", "signup"},
    {"recovery", "recovery", "recovery"},
    {"magiclink", "magic_link", "magiclink"},
    {"invite", "invite", "invite"},
    {"email_change_current", "email_change", "email_change"},
    {"email_change_new", "email_change", "email_change"},
};

/* A mail job of purpose (one of MAIL_PURPOSES) to address to, whose link
 * leads to redirect_to (already checked); the caller adds the rest. Not
 * inlined: inlined with a literal purpose, GCC -O3's -Wstring-compare flags
 * the table's longer names as "always different" (true, and harmless), which
 * -Werror turns into a failed release build. */
__attribute__((noinline)) static mail_job_t mail_job(const char *purpose, const char *to,
                                                     const char *redirect_to)
{
    mail_job_t j = {.purpose = purpose, .to = to, .redirect_to = redirect_to};
    for (size_t i = 0; i < CD_ARRAY_LEN(MAIL_PURPOSES); i++) {
        if (strcmp(purpose, MAIL_PURPOSES[i].purpose) == 0) {
            j.kind = MAIL_PURPOSES[i].kind;
            j.link_type = MAIL_PURPOSES[i].link_type;
        }
    }
    return j;
}

static void reply_send_limited(http_request_t *req, int wait)
{
    char msg[128];
    snprintf(msg, sizeof(msg), "For security purposes, you can only request this after %d seconds.",
             wait);
    char v[16];
    snprintf(v, sizeof(v), "%d", wait);
    http_add_header(req, "Retry-After", v);
    auth__error(req, 429, "over_email_send_rate_limit", msg);
}

/* Renders the template row tpl (subject, html, text) for job and queues it. */
static void queue_mail(app_t *app, const mail_job_t *j, PGresult *tpl, const char *token,
                       const char *code)
{
    if (PQntuples(tpl) != 1) {
        log_error("auth mail template %s is missing", j->kind);
        return;
    }
    char *enc = curl_easy_escape(NULL, j->redirect_to, 0);
    char url[4096];
    snprintf(url, sizeof(url), "%s/auth/v1/verify?token=%s&type=%s&redirect_to=%s",
             app->external_url, token, j->link_type, enc ? enc : "");
    curl_free(enc);
    auth_mail_vars_t v = {.confirmation_url = url,
                          .token = code,
                          .token_hash = token,
                          .site_url = app->cfg.site_url,
                          .email = j->email ? j->email : j->to,
                          .new_email = j->new_email,
                          .redirect_to = j->redirect_to};
    char *subject = auth__mail_render(PQgetvalue(tpl, 0, 0), &v, false);
    char *html = auth__mail_render(PQgetvalue(tpl, 0, 1), &v, true);
    char *text = auth__mail_render(PQgetvalue(tpl, 0, 2), &v, false);
    if (subject && html && text)
        (void)auth__mail_enqueue(app, j->kind, j->to, subject, text, *html ? html : NULL);
    else
        log_error("auth mail %s could not be rendered", j->kind);
    free(subject);
    free(html);
    free(text);
}

/* Runs pre/npre, then reserves the mail budget and stores the token for
 * job j (one transaction), then queues the mail when there is a user. With
 * post, runs it last and hands its result to *post_res (caller PQclear()s).
 * *uid_out (may be NULL) receives the user's id or "". Returns false after
 * answering (429 when the address or client mailed too much). */
static bool send_token(http_request_t *req, const char *headers, const mail_job_t *j,
                       const db_stmt_t *pre, size_t npre, const db_stmt_t *post,
                       PGresult **post_res, char *uid_out, const auth_unique_t *unique)
{
    app_t *app = auth__app(req);
    char token[CD_TOKEN_LEN + 1], hash[CD_SHA256_HEX_LEN + 1], code[CODE_DIGITS + 1];
    char chash[CD_TOKEN_LEN + 1];
    if (!cd_random_token(token) || !random_code(code)) {
        auth__error(req, 500, "unexpected_failure", "no randomness available");
        return false;
    }
    cd_sha256_hex(token, strlen(token), hash);
    code_hash(app, code, chash);
    char freq[16], per_hour[16], ttl[16];
    snprintf(freq, sizeof(freq), "%ld", app->cfg.smtp_max_frequency);
    snprintf(per_hour, sizeof(per_hour), "%ld", app->cfg.rate_limit_email_sent);
    snprintf(ttl, sizeof(ttl), "%ld", app->cfg.mailer_otp_exp);
    const char *p[12] = {j->to,  req->client_ip, freq,         per_hour,
                         j->uid, j->purpose,     hash,         chash,
                         ttl,    j->redirect_to, j->new_email, j->lookup ? "t" : "f"};
    const char *p_kind[1] = {j->kind};
    db_stmt_t stmts[8];
    size_t n = 0;
    for (size_t i = 0; i < npre && n < 5; i++)
        stmts[n++] = pre[i];
    size_t first = n;
    stmts[n++] = (db_stmt_t){
        "with u as (select coalesce($5::uuid, (select x.id from auth.users x "
        "where $12::boolean and lower(x.email) = lower(btrim($1)) and x.deleted_at is null "
        "and not x.is_sso_user)) as id) "
        "select auth.prepare_email_token($1, $2, $3::int, $4::int, u.id, $6, $7, $8, $9::int, "
        "$10, $11), u.id from u",
        12, p};
    stmts[n++] = (db_stmt_t){"select subject, content_html, content_text "
                             "from public.auth_mail_templates where kind = $1",
                             1, p_kind};
    const char *p_flow[2] = {hash, j->flow};
    if (j->flow && *j->flow) /* the link of a PKCE flow ends with ?code= (036) */
        stmts[n++] = (db_stmt_t){
            "update auth.email_tokens set flow_state_id = $2::uuid where token_hash = $1", 2,
            p_flow};
    if (post)
        stmts[n++] = *post;
    PGresult *res[8] = {0};
    bool ok = auth__run(req, headers, false, stmts, n, res, unique);
    if (ok) {
        int wait = (int)strtol(PQgetvalue(res[first], 0, 0), NULL, 10);
        const char *uid = PQgetisnull(res[first], 0, 1) ? "" : PQgetvalue(res[first], 0, 1);
        if (uid_out)
            snprintf(uid_out, CD_UUID_LEN + 1, "%s", uid);
        if (wait > 0) {
            reply_send_limited(req, wait);
            ok = false;
        } else if (*uid) {
            queue_mail(app, j, res[first + 1], token, code);
        }
        if (ok && post && post_res) {
            *post_res = res[n - 1];
            res[n - 1] = NULL;
        }
    }
    for (size_t i = 0; i < n; i++)
        PQclear(res[i]);
    return ok;
}

/* ------------------------------------------------------------- sign-up */

void auth__signup_unconfirmed(http_request_t *req, const char *email, const char *password_hash,
                              const char *meta, const char *uid, const char *flow)
{
    app_t *app = auth__app(req);
    const char *p[5] = {email, password_hash, app->cfg.default_user_role, meta, uid};
    db_stmt_t create = {
        "select auth.create_user($1, $2, $3, $4::jsonb, '{}'::jsonb, false, $5::uuid)", 5, p};
    const char *p_audit[3] = {uid, email, req->client_ip};
    db_stmt_t audit = {"select auth.audit('user_confirmation_requested', $1::uuid, $2, $3)", 3,
                       p_audit};
    const char *p_user[1] = {uid};
    db_stmt_t user = {"select auth.user_json(u)::text from auth.users u where u.id = $1::uuid", 1,
                      p_user};
    db_stmt_t pre[2] = {create, audit};
    mail_job_t j =
        mail_job("signup", email, pick_redirect(app, http_query_arg(req, "redirect_to")));
    j.uid = uid;
    j.flow = flow;
    PGresult *r = NULL;
    const auth_unique_t taken = {"user_already_exists", "User already registered", 1};
    char *headers = auth_headers_json(req);
    bool ok = send_token(req, headers, &j, pre, 2, &user, &r, NULL, &taken);
    free(headers);
    if (!ok)
        return;
    if (PQntuples(r) == 1)
        http_reply(req, 200, NULL, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
    else
        auth__error(req, 500, "unexpected_failure", "the new user vanished");
    PQclear(r);
}

/* ------------------------------------------------- recover, otp, resend */

/* The prologue of the mail-requesting endpoints: apikey, body, limiter, a
 * valid e-mail. Returns the body (caller json_decref()s) or NULL after
 * answering. */
static json_t *mail_request(http_request_t *req, const char **email)
{
    auth_caller_t caller;
    if (!auth__require_apikey(req, &caller))
        return NULL;
    auth_caller_free(&caller);
    json_t *body = auth__read_body(req);
    if (!body)
        return NULL;
    *email = auth__jstr(body, "email");
    if (!auth__check_limiter(req) || !auth__check_email(req, *email)) {
        json_decref(body);
        return NULL;
    }
    return body;
}

static void reply_empty_ok(http_request_t *req)
{
    http_reply(req, 200, NULL, "{}", 2);
}

void auth__handle_recover(http_request_t *req)
{
    app_t *app = auth__app(req);
    const char *email;
    json_t *body = mail_request(req, &email);
    if (!body)
        return;
    char flow[CD_UUID_LEN + 1];
    if (!auth__mail_flow(req, body, "recovery", flow) && req->replied) {
        json_decref(body);
        return;
    }
    mail_job_t j =
        mail_job("recovery", email, pick_redirect(app, http_query_arg(req, "redirect_to")));
    j.lookup = true;
    j.flow = flow;
    const char *p_audit[2] = {email, req->client_ip};
    db_stmt_t audit = {"select auth.audit('user_recovery_requested', (select id from auth.users "
                       "where lower(email) = lower(btrim($1)) and deleted_at is null), $1, $2)",
                       2, p_audit};
    char *headers = auth_headers_json(req);
    if (send_token(req, headers, &j, &audit, 1, NULL, NULL, NULL, NULL))
        reply_empty_ok(req); /* the same for unknown addresses */
    free(headers);
    json_decref(body);
}

/* The user behind an address: id and whether confirmed, or "" (nobody).
 * False after answering (503/500). */
static bool find_user(http_request_t *req, const char *headers, const char *email,
                      char uid[CD_UUID_LEN + 1], bool *confirmed)
{
    PGresult *r = NULL;
    if (!auth__query(req, headers, true,
                     "select id, email_confirmed_at is not null from auth.users "
                     "where lower(email) = lower(btrim($1)) and deleted_at is null "
                     "and not is_sso_user",
                     1, &email, &r))
        return false;
    uid[0] = '\0';
    *confirmed = false;
    if (PQntuples(r) == 1) {
        snprintf(uid, CD_UUID_LEN + 1, "%s", PQgetvalue(r, 0, 0));
        *confirmed = PQgetvalue(r, 0, 1)[0] == 't';
    }
    PQclear(r);
    return true;
}

void auth__handle_otp(http_request_t *req)
{
    app_t *app = auth__app(req);
    const char *email;
    json_t *body = mail_request(req, &email);
    if (!body)
        return;
    json_t *create = json_object_get(body, "create_user");
    bool may_create = !json_is_false(create);
    json_t *data = json_object_get(body, "data");
    char uid[CD_UUID_LEN + 1];
    bool confirmed;
    char *headers = auth_headers_json(req);
    const char *redirect = pick_redirect(app, http_query_arg(req, "redirect_to"));
    char flow[CD_UUID_LEN + 1];
    if (!auth__mail_flow(req, body, "magiclink", flow) && req->replied)
        goto done;
    if (!find_user(req, headers, email, uid, &confirmed))
        goto done;
    if (*uid) {
        mail_job_t j = mail_job(confirmed ? "magiclink" : "signup", email, redirect);
        j.uid = uid;
        j.flow = flow;
        if (send_token(req, headers, &j, NULL, 0, NULL, NULL, NULL, NULL))
            reply_empty_ok(req);
    } else if (may_create && !app->cfg.disable_signup) {
        /* a new user without a password, confirmed by the code or link */
        char nid[CD_UUID_LEN + 1];
        if (!cd_random_uuid(nid)) {
            auth__error(req, 500, "unexpected_failure", "no randomness available");
            goto done;
        }
        char *meta = json_is_object(data) ? json_dumps(data, JSON_COMPACT) : NULL;
        const char *p[4] = {email, app->cfg.default_user_role, meta ? meta : "{}", nid};
        db_stmt_t mk = {
            "select auth.create_user($1, null, $2, $3::jsonb, '{}'::jsonb, false, $4::uuid)", 4, p};
        mail_job_t j = mail_job("signup", email, redirect);
        j.uid = nid;
        j.flow = flow;
        /* a parallel sign-up of the same address: answer as for any other */
        const auth_unique_t taken = {"user_already_exists", "User already registered", 1};
        if (send_token(req, headers, &j, &mk, 1, NULL, NULL, NULL, &taken))
            reply_empty_ok(req);
        free(meta);
    } else {
        /* Nobody to mail and nobody to create: GoTrue answers otp_disabled
         * here, which tells who is registered; campaignd answers as if sent,
         * still spending the address's budget so the 429s match too. */
        mail_job_t j = mail_job("magiclink", email, redirect);
        if (send_token(req, headers, &j, NULL, 0, NULL, NULL, NULL, NULL))
            reply_empty_ok(req);
    }
done:
    free(headers);
    json_decref(body);
}

/* POST /resend {type: email_change}: the pending change's two mails again
 * (to the current and to the new address), given either address. Nobody with
 * a pending change: the same answer and budget, nothing sent. */
static void resend_email_change(http_request_t *req, const char *headers, const char *email)
{
    app_t *app = auth__app(req);
    const char *p[1] = {email};
    db_stmt_t s = {
        "select id, email, email_change from auth.users "
        "where coalesce(email_change, '') <> '' and deleted_at is null "
        "and (lower(email) = lower(btrim($1)) or lower(email_change) = lower(btrim($1)))",
        1, p};
    PGresult *r = NULL;
    if (!auth__run(req, headers, true, &s, 1, &r, NULL))
        return;
    if (PQntuples(r) != 1) {
        PQclear(r);
        mail_job_t j = mail_job("email_change_current", email,
                                pick_redirect(app, http_query_arg(req, "redirect_to")));
        if (send_token(req, headers, &j, NULL, 0, NULL, NULL, NULL, NULL))
            reply_empty_ok(req);
        return;
    }
    char uid[CD_UUID_LEN + 1], current[320], next[320];
    snprintf(uid, sizeof(uid), "%s", PQgetvalue(r, 0, 0));
    snprintf(current, sizeof(current), "%s", PQgetvalue(r, 0, 1));
    snprintf(next, sizeof(next), "%s", PQgetvalue(r, 0, 2));
    PQclear(r);
    if (auth__request_email_change(req, headers, uid, current, next))
        reply_empty_ok(req);
}

void auth__handle_resend(http_request_t *req)
{
    app_t *app = auth__app(req);
    const char *email;
    json_t *body = mail_request(req, &email);
    if (!body)
        return;
    const char *type = auth__jstr(body, "type");
    char *headers = auth_headers_json(req);
    char uid[CD_UUID_LEN + 1];
    bool confirmed;
    char flow[CD_UUID_LEN + 1] = "";
    if (type && strcmp(type, "email_change") == 0) {
        resend_email_change(req, headers, email);
        goto done;
    }
    if (!type || strcmp(type, "signup") != 0) {
        auth__error(req, 400, "validation_failed",
                    "Missing one of these types: signup, email_change");
        goto done;
    }
    if ((!auth__mail_flow(req, body, "email/signup", flow) && req->replied) ||
        !find_user(req, headers, email, uid, &confirmed))
        goto done;
    /* confirmed or unknown: nothing is sent, but the answer and the budget
     * spent are the same */
    mail_job_t j =
        mail_job("signup", email, pick_redirect(app, http_query_arg(req, "redirect_to")));
    j.uid = (*uid && !confirmed) ? uid : NULL;
    j.flow = flow;
    if (send_token(req, headers, &j, NULL, 0, NULL, NULL, NULL, NULL))
        reply_empty_ok(req);
done:
    free(headers);
    json_decref(body);
}

/* --------------------------------------------------------------- verify */

/* The token purposes a verify type accepts, as a PostgreSQL array, or NULL. */
static const char *purposes_of(const char *type)
{
    static const struct {
        const char *type, *purposes;
    } map[] = {
        {"signup", "{signup}"},
        {"invite", "{invite}"},
        {"magiclink", "{magiclink}"},
        {"recovery", "{recovery}"},
        {"email_change", "{email_change_current,email_change_new}"},
        {"email", "{signup,magiclink}"},
    };
    for (size_t i = 0; type && i < CD_ARRAY_LEN(map); i++)
        if (strcmp(type, map[i].type) == 0)
            return map[i].purposes;
    return NULL;
}

/* The audit action for a used token of this purpose. */
static const char *verify_action(const char *purpose)
{
    if (strcmp(purpose, "signup") == 0)
        return "user_signedup";
    if (strcmp(purpose, "invite") == 0)
        return "invite_accepted";
    if (strncmp(purpose, "email_change", 12) == 0)
        return "user_modified";
    return "login";
}

typedef struct verified {
    char status[16]; /* ok, partial, invalid, banned */
    char uid[CD_UUID_LEN + 1];
    char purpose[32];
    char email[320];
    char redirect_to[2048];
    char flow[CD_UUID_LEN + 1]; /* the link's PKCE flow (036), or "" */
} verified_t;

/* Uses a token (by link token, or by address and code). False after
 * answering (503/500). */
static bool use_token(http_request_t *req, const char *headers, const char *link_token,
                      const char *email, const char *code, const char *purposes, verified_t *out)
{
    app_t *app = auth__app(req);
    char hash[CD_SHA256_HEX_LEN + 1], chash[CD_TOKEN_LEN + 1], max[16];
    if (link_token)
        cd_sha256_hex(link_token, strlen(link_token), hash);
    if (code)
        code_hash(app, code, chash);
    snprintf(max, sizeof(max), "%ld", app->cfg.mailer_otp_max_attempts);
    const char *p[5] = {link_token ? hash : NULL, email, code ? chash : NULL, purposes, max};
    /* the flow is read first: using the token deletes its row */
    db_stmt_t s[2] = {
        {"select auth.flow_state_of_token($1)", 1, p},
        {"select v.status, v.user_id, v.purpose, v.email, v.redirect_to, "
         "coalesce(u.banned_until > now(), false) "
         "from auth.verify_email_token($1, $2, $3, $4::text[], $5::int) v "
         "left join auth.users u on u.id = v.user_id",
         5, p},
    };
    PGresult *res[2] = {0};
    if (!auth__run(req, headers, false, s, 2, res, &AUTH_UNIQUE_EMAIL))
        return false;
    PGresult *r = res[1];
    memset(out, 0, sizeof(*out));
    if (PQntuples(res[0]) == 1 && !PQgetisnull(res[0], 0, 0))
        snprintf(out->flow, sizeof(out->flow), "%s", PQgetvalue(res[0], 0, 0));
    PQclear(res[0]);
    snprintf(out->status, sizeof(out->status), "%s", PQgetvalue(r, 0, 0));
    snprintf(out->uid, sizeof(out->uid), "%s", PQgetvalue(r, 0, 1));
    snprintf(out->purpose, sizeof(out->purpose), "%s", PQgetvalue(r, 0, 2));
    snprintf(out->email, sizeof(out->email), "%s", PQgetvalue(r, 0, 3));
    snprintf(out->redirect_to, sizeof(out->redirect_to), "%s", PQgetvalue(r, 0, 4));
    if (strcmp(out->status, "ok") == 0 && PQgetvalue(r, 0, 5)[0] == 't')
        snprintf(out->status, sizeof(out->status), "banned");
    PQclear(r);
    return true;
}

#define PARTIAL_MSG                                                                                \
    "Confirmation link accepted. Please proceed to confirm link sent to the other email"

void auth__handle_verify_post(http_request_t *req)
{
    auth_caller_t caller;
    if (!auth__require_apikey(req, &caller))
        return;
    auth_caller_free(&caller);
    json_t *body = auth__read_body(req);
    if (!body)
        return;
    char *headers = NULL;
    const char *type = auth__jstr(body, "type");
    const char *token = auth__jstr(body, "token");
    const char *token_hash = auth__jstr(body, "token_hash");
    const char *email = auth__jstr(body, "email");
    const char *purposes = purposes_of(type);
    if (!purposes) {
        auth__error(req, 400, "validation_failed", "Verify requires a verification type");
        goto done;
    }
    if (!auth__check_limiter(req))
        goto done;
    if (!(token_hash && *token_hash) && !(token && email)) {
        auth__error(req, 400, "validation_failed",
                    "Verify requires either a token and an email or a token_hash");
        goto done;
    }
    headers = auth_headers_json(req);
    verified_t v;
    /* a malformed code is a wrong code: it still counts as an attempt */
    const char *code = token_hash && *token_hash ? NULL : (is_code(token) ? token : "-");
    if (!use_token(req, headers, token_hash && *token_hash ? token_hash : NULL, code ? email : NULL,
                   code, purposes, &v))
        goto done;
    if (strcmp(v.status, "partial") == 0) {
        json_t *j = json_pack("{s:s, s:i}", "msg", PARTIAL_MSG, "code", 200);
        http_reply_json(req, 200, j);
    } else if (strcmp(v.status, "banned") == 0) {
        auth__error(req, 400, "user_banned", "User is banned");
    } else if (strcmp(v.status, "ok") == 0) {
        auth__start_session(req, v.uid, v.email, NULL, 0, verify_action(v.purpose), NULL, NULL);
    } else {
        auth__error(req, 403, "otp_expired", "Token has expired or is invalid");
    }
done:
    free(headers);
    json_decref(body);
}

/* GET /verify: the link in the mail, opened by a browser (no apikey, as
 * behind Supabase's gateway). Answers with a redirect in every case: the
 * session, or the error, in the fragment. */
void auth__handle_verify_get(http_request_t *req)
{
    app_t *app = auth__app(req);
    const char *token = http_query_arg(req, "token");
    const char *type = http_query_arg(req, "type");
    const char *purposes = purposes_of(type);
    const char *fallback = pick_redirect(app, http_query_arg(req, "redirect_to"));
    char loc[2600];
    if (!purposes || !token || !*token || strlen(token) > 128 || !auth__check_limiter(req)) {
        if (req->replied)
            return;
        snprintf(loc, sizeof(loc),
                 "%s#error=access_denied&error_code=otp_expired"
                 "&error_description=Email+link+is+invalid+or+has+expired",
                 fallback);
        http_add_header(req, "Location", loc);
        http_reply(req, 303, "text/plain", "", 0);
        return;
    }
    char *headers = auth_headers_json(req);
    verified_t v;
    bool ok = use_token(req, headers, token, NULL, NULL, purposes, &v);
    free(headers);
    if (!ok)
        return;
    const char *to =
        *v.redirect_to && auth__redirect_allowed(app, v.redirect_to) ? v.redirect_to : fallback;
    if (strcmp(v.status, "ok") == 0 && *v.flow) { /* PKCE: ?code= for exchangeCodeForSession */
        auth__redirect_with_code(req, v.flow, v.uid, to, app->cfg.mailer_otp_exp, NULL, NULL);
        return;
    }
    if (strcmp(v.status, "ok") == 0) {
        auth__start_session(req, v.uid, v.email, NULL, 0, verify_action(v.purpose), to, type);
        return;
    }
    if (strcmp(v.status, "partial") == 0)
        snprintf(loc, sizeof(loc), "%s#message=%s", to,
                 "Confirmation+link+accepted.+Please+proceed+to+confirm+link+sent+to+the+other+"
                 "email");
    else if (strcmp(v.status, "banned") == 0)
        snprintf(loc, sizeof(loc),
                 "%s#error=access_denied&error_code=user_banned&error_description=User+is+banned",
                 to);
    else
        snprintf(loc, sizeof(loc),
                 "%s#error=access_denied&error_code=otp_expired"
                 "&error_description=Email+link+is+invalid+or+has+expired",
                 to);
    http_add_header(req, "Location", loc);
    http_reply(req, 303, "text/plain", "", 0);
}

/* --------------------------------------------------------------- invite */

/* What an admin endpoint that mails or makes a link does once it has an
 * admin caller, the JSON body and its `data` (user metadata) as compact text
 * when it is an object (else NULL). */
typedef void (*admin_body_fn)(http_request_t *req, const auth_caller_t *caller, json_t *body,
                              const char *meta);

/* Runs fn for an admin caller with the request's JSON body; whatever is
 * missing is answered here, and all is freed after fn. */
static void with_admin_body(http_request_t *req, admin_body_fn fn)
{
    auth_caller_t caller;
    if (!auth__require_admin(req, &caller))
        return;
    json_t *body = auth__read_body(req);
    char *meta = body ? auth__object_text(json_object_get(body, "data")) : NULL;
    if (body)
        fn(req, &caller, body, meta);
    free(meta);
    json_decref(body);
    auth_caller_free(&caller);
}

/* The user of address email into uid, or, when there is none, a new random
 * id (*create). A user is refused with 422 email_exists when confirmed and
 * refuse_confirmed, or unconfirmed and refuse_unconfirmed; nobody with 404
 * unless may_create. False after answering. */
static bool user_id_for(http_request_t *req, const char *headers, const char *email,
                        bool refuse_confirmed, bool refuse_unconfirmed, bool may_create,
                        char uid[CD_UUID_LEN + 1], bool *create)
{
    bool confirmed;
    if (!find_user(req, headers, email, uid, &confirmed))
        return false;
    if (*uid && (confirmed ? refuse_confirmed : refuse_unconfirmed)) {
        auth__error(req, 422, "email_exists",
                    "A user with this email address has already been registered");
        return false;
    }
    if (!*uid && !may_create) {
        auth__error(req, 404, "user_not_found", "User with this email not found");
        return false;
    }
    *create = !*uid;
    if (*create && !cd_random_uuid(uid)) {
        auth__error(req, 500, "unexpected_failure", "no randomness available");
        return false;
    }
    return true;
}

static void invite(http_request_t *req, const auth_caller_t *caller, json_t *body, const char *meta)
{
    app_t *app = auth__app(req);
    const char *email = auth__jstr(body, "email");
    json_t *data = json_object_get(body, "data");
    if (!auth__check_email(req, email))
        return;
    if (data && !json_is_object(data) && !json_is_null(data)) {
        auth__error(req, 400, "validation_failed", "data must be an object");
        return;
    }
    char uid[CD_UUID_LEN + 1];
    bool create;
    if (!user_id_for(req, caller->headers_json, email, true, false, true, uid, &create))
        return;
    const char *p[4] = {email, app->cfg.default_user_role, meta ? meta : "{}", uid};
    const char *actor = cd_is_uuid(caller->user_id) ? caller->user_id : NULL;
    const char *p_audit[4] = {actor, email, req->client_ip, uid};
    db_stmt_t pre[2] = {
        {"select auth.create_user($1, null, $2, $3::jsonb, '{}'::jsonb, false, $4::uuid)", 4, p},
        {"select auth.audit('user_invited', $1::uuid, $2, $3, "
         "jsonb_build_object('user_id', $4::text, 'user_email', $2::text))",
         4, p_audit},
    };
    mail_job_t j =
        mail_job("invite", email, pick_redirect(app, http_query_arg(req, "redirect_to")));
    j.uid = uid;
    const auth_unique_t taken = {"email_exists",
                                 "A user with this email address has already been registered", 1};
    PGresult *r = NULL;
    const char *p_user[1] = {uid};
    db_stmt_t user = {"select auth.user_json(u)::text from auth.users u where u.id = $1::uuid", 1,
                      p_user};
    if (send_token(req, caller->headers_json, &j, create ? pre : pre + 1, create ? 2 : 1, &user, &r,
                   NULL, &taken)) {
        http_reply(req, 200, NULL, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
        PQclear(r);
    }
}

void auth__handle_invite(http_request_t *req)
{
    with_admin_body(req, invite);
}

/* -------------------------------------------------------- generate_link */

/* POST /admin/generate_link: the link and code an invite, sign-up, magic
 * link or recovery mail would carry, for the admin to deliver; nothing is
 * mailed and no mail budget is spent. */
static void generate_link(http_request_t *req, const auth_caller_t *caller, json_t *body,
                          const char *meta)
{
    app_t *app = auth__app(req);
    const char *type = auth__jstr(body, "type");
    const char *email = auth__jstr(body, "email");
    const char *password = auth__jstr(body, "password");
    const char *want = http_query_arg(req, "redirect_to"); /* supabase-js sends it here */
    const char *redirect = pick_redirect(app, want ? want : auth__jstr(body, "redirect_to"));
    bool is_signup = type && strcmp(type, "signup") == 0;
    bool is_invite = type && strcmp(type, "invite") == 0;
    if (!type || !(is_signup || is_invite || strcmp(type, "magiclink") == 0 ||
                   strcmp(type, "recovery") == 0)) {
        auth__error(req, 400, "validation_failed",
                    "Invalid type: signup, invite, magiclink or recovery");
        return;
    }
    if (!auth__check_email(req, email))
        return;
    char hash[PASSWORD_HASH_BYTES] = "";
    if (is_signup) {
        if (!password || !auth__check_password(req, password) ||
            !auth__hash_password(req, password, hash)) {
            if (!req->replied)
                auth__error(req, 422, "validation_failed", "Signup requires a valid password");
            return;
        }
    }
    char uid[CD_UUID_LEN + 1];
    bool create, new_user = is_signup || is_invite;
    if (!user_id_for(req, caller->headers_json, email, new_user, new_user, new_user, uid, &create))
        return;
    char token[CD_TOKEN_LEN + 1], thash[CD_SHA256_HEX_LEN + 1], code[CODE_DIGITS + 1];
    char chash[CD_TOKEN_LEN + 1], ttl[16];
    if (!cd_random_token(token) || !random_code(code)) {
        auth__error(req, 500, "unexpected_failure", "no randomness available");
        return;
    }
    cd_sha256_hex(token, strlen(token), thash);
    code_hash(app, code, chash);
    snprintf(ttl, sizeof(ttl), "%ld", app->cfg.mailer_otp_exp);
    const char *p_new[5] = {email, *hash ? hash : NULL, app->cfg.default_user_role,
                            meta ? meta : "{}", uid};
    const char *p_tok[7] = {uid, type, email, thash, chash, ttl, redirect};
    db_stmt_t stmts[3] = {
        {"select auth.create_user($1, $2, $3, $4::jsonb, '{}'::jsonb, false, $5::uuid)", 5, p_new},
        {"select auth.issue_email_token($1::uuid, $2, $3, $4, $5, $6::int, $7)", 7, p_tok},
        {"select auth.user_json(u)::text from auth.users u where u.id = $1::uuid", 1, p_tok},
    };
    const auth_unique_t taken = {"email_exists",
                                 "A user with this email address has already been registered", 1};
    PGresult *res[3] = {0};
    size_t first = create ? 0 : 1, n = 3 - first;
    if (!auth__run(req, caller->headers_json, false, stmts + first, n, res, &taken))
        return;
    json_error_t je;
    json_t *user = json_loads(PQgetvalue(res[n - 1], 0, 0), 0, &je);
    for (size_t i = 0; i < n; i++)
        PQclear(res[i]);
    char *enc = curl_easy_escape(NULL, redirect, 0);
    char link[4096];
    snprintf(link, sizeof(link), "%s/auth/v1/verify?token=%s&type=%s&redirect_to=%s",
             app->external_url, token, type, enc ? enc : "");
    curl_free(enc);
    if (!user) {
        auth__error(req, 500, "unexpected_failure", "could not read the user");
        return;
    }
    /* supabase-js splits these five keys off as `properties`, the rest is the user */
    json_object_set_new(user, "action_link", json_string(link));
    json_object_set_new(user, "email_otp", json_string(code));
    json_object_set_new(user, "hashed_token", json_string(token));
    json_object_set_new(user, "verification_type", json_string(type));
    json_object_set_new(user, "redirect_to", json_string(redirect));
    http_reply_json(req, 200, user);
}

void auth__handle_generate_link(http_request_t *req)
{
    with_admin_body(req, generate_link);
}

/* ---------------------------------------------------------- e-mail change */

bool auth__request_email_change(http_request_t *req, const char *headers, const char *uid,
                                const char *current, const char *new_email)
{
    app_t *app = auth__app(req);
    char other[CD_UUID_LEN + 1];
    bool confirmed;
    if (!find_user(req, headers, new_email, other, &confirmed))
        return false;
    if (*other) {
        auth__error(req, 422, "email_exists",
                    "A user with this email address has already been registered");
        return false;
    }
    const char *redirect = pick_redirect(app, http_query_arg(req, "redirect_to"));
    mail_job_t cur = mail_job("email_change_current", current, redirect);
    cur.uid = uid;
    cur.email = current;
    cur.new_email = new_email;
    mail_job_t nxt = cur;
    nxt.purpose = "email_change_new";
    nxt.to = new_email;
    return send_token(req, headers, &cur, NULL, 0, NULL, NULL, NULL, NULL) &&
           send_token(req, headers, &nxt, NULL, 0, NULL, NULL, NULL, NULL);
}
