/*
 * The send engine's HTTP routes (sending.h). Under /api, a signed-in caller
 * acts on a campaign only when row-level security lets it update that
 * campaign (SELECT ... FOR UPDATE as the caller: owner with role user, or an
 * admin); the engine's functions then run as service_role. The tracking and
 * unsubscribe routes take no login: their signed token (track.h) names the
 * message, and nothing else can be reached through them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "core/crypto.h"
#include "core/log.h"
#include "providers/smtp.h"
#include "sending/compose.h"
#include "sending/engine_internal.h"
#include "sending/sending.h"

static const db_caller_t SERVICE = {
    .role = "service_role",
    .claims_json = "{\"role\":\"service_role\"}",
};

/* Runs one statement as service_role; on failure answers (503, or the
 * SQLSTATE's status) and returns NULL. */
static PGresult *run_service(http_request_t *req, const char *sql, int n, const char *const *p)
{
    PGresult *r = NULL;
    db_error_t err = {0};
    db_stmt_t st = {sql, n, p};
    db_status_t s = db_run(&SERVICE, &st, 1, &r, &err);
    if (s == DB_OK)
        return r;
    if (s == DB_UNAVAILABLE) {
        http_reply_unavailable(req, db_retry_after());
    } else if (strcmp(err.sqlstate, "55000") == 0) {
        api__reply_error(req, 409, "invalid_status", err.message, NULL,
                         err.hint[0] ? err.hint : NULL);
    } else {
        db_http_error_t h = db_error_http(err.sqlstate, false);
        if (h.status >= 500)
            log_error("sending: %s: %s", err.sqlstate, err.message);
        api__reply_error(req, h.status, err.sqlstate,
                         h.status >= 500 ? "the send engine failed" : err.message, NULL, NULL);
    }
    return NULL;
}

/* ------------------------------------------------------------- /api */

/* Whether the caller may act on the campaign req->params[0]; answers 404 or
 * 403 (or the failure) and returns false otherwise. */
static bool may_act(http_request_t *req, const api_ctx_t *ctx)
{
    const char *p[1] = {req->params[0]};
    db_stmt_t st[2] = {
        {"select count(*) from public.campaigns c where c.id = $1::uuid and c.deleted_at is null",
         1, p},
        {"select c.id from public.campaigns c where c.id = $1::uuid and c.deleted_at is null"
         " for update",
         1, p},
    };
    PGresult *r[2] = {NULL, NULL};
    if (!api__run(req, ctx, st, 2, r))
        return false;
    bool visible = strcmp(PQgetvalue(r[0], 0, 0), "0") != 0, writable = PQntuples(r[1]) == 1;
    PQclear(r[0]);
    PQclear(r[1]);
    if (!visible)
        api__reply_not_found(req, "campaign");
    else if (!writable)
        api__reply_error(req, 403, "forbidden", "you may not send this campaign", NULL,
                         "only its owner (role user) or an admin may");
    return visible && writable;
}

/* The conditions of sending that are configuration, not data: a provider,
 * the postal address, the external URL, something to send. Answers 409 and
 * returns false when one is missing. */
static bool ready_to_send(http_request_t *req, const app_t *app, const char *id)
{
    sending_campaign_t c;
    db_error_t err = {0};
    db_conn_t *conn = db_thread_conn();
    db_status_t st = conn ? sending__campaign_load(conn, id, &c, &err) : DB_UNAVAILABLE;
    if (st != DB_OK) {
        if (st == DB_UNAVAILABLE)
            http_reply_unavailable(req, db_retry_after());
        else
            api__reply_not_found(req, "campaign");
        return false;
    }
    provider_config_t set;
    st = provider_config_load(conn, &app->cfg, &set, &err);
    const provider_settings_t *ps = &set.ps;
    bool email = strcmp(c.str[SC_TYPE], "email") == 0, ok = false;
    if (st != DB_OK)
        http_reply_unavailable(req, db_retry_after());
    else if (strcmp(c.str[SC_TYPE], "email") != 0 && strcmp(c.str[SC_TYPE], "sms") != 0)
        api__reply_error(req, 400, "invalid_campaign_type",
                         "only e-mail and SMS campaigns are sent", NULL, NULL);
    else if (email ? !provider_email_configured(ps) : !provider_sms_configured(ps))
        api__reply_error(
            req, 409, "provider_not_configured",
            email ? "no e-mail provider is configured" : "no SMS provider is configured", NULL,
            email ? "set SMTP_URL (and EMAIL_PROVIDER), or an admin stores them in the app "
                    "settings, see docs/sending.md"
                  : "set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or an admin stores them in "
                    "the app settings");
    else if (email && !*c.str[SC_POSTAL])
        api__reply_error(req, 409, "postal_address_missing",
                         "marketing e-mail must carry the sender's postal address", NULL,
                         "an admin sets app_settings.postal_address");
    else if (email && (!app->cfg.api_external_url || !*app->cfg.api_external_url))
        api__reply_error(req, 409, "external_url_missing",
                         "API_EXTERNAL_URL is needed for unsubscribe and tracking links", NULL,
                         NULL);
    else if (!*c.str[SC_BODY])
        api__reply_error(req, 409, "no_content", "the campaign has no content and no template",
                         NULL, NULL);
    else if (email && !*c.str[SC_SUBJECT])
        api__reply_error(req, 409, "no_subject", "the campaign has no subject", NULL, NULL);
    else
        ok = true;
    provider_config_free(&set);
    sending__campaign_free(&c);
    return ok;
}

typedef enum { ACT_SEND, ACT_PAUSE, ACT_RESUME, ACT_CANCEL } action_t;

static void campaign_action(http_request_t *req, action_t act)
{
    const app_t *app = req->ctx;
    api_ctx_t ctx;
    if (!api__begin(req, false, &ctx))
        return;
    if (!api__path_id(req, "campaign") || !may_act(req, &ctx))
        goto done;
    if ((act == ACT_SEND || act == ACT_RESUME) && !ready_to_send(req, app, req->params[0]))
        goto done;
    char workers[16];
    snprintf(workers, sizeof(workers), "%ld", app->cfg.send_workers);
    const char *p[2] = {req->params[0], act == ACT_PAUSE ? NULL : workers};
    static const char *const sql[] = {
        [ACT_SEND] = "select sending.start($1::uuid, $2::int)::text",
        [ACT_PAUSE] = "select sending.pause($1::uuid, $2::text)::text",
        [ACT_RESUME] = "select sending.resume($1::uuid, $2::int)::text",
        [ACT_CANCEL] = "select sending.cancel($1::uuid)::text",
    };
    PGresult *r = run_service(req, sql[act], act == ACT_CANCEL ? 1 : 2, p);
    if (r) {
        api__reply_cell(req, 200, r, 0, 0);
        PQclear(r);
    }
done:
    api__end(&ctx);
}

static void handle_send(http_request_t *req)
{
    campaign_action(req, ACT_SEND);
}
static void handle_pause(http_request_t *req)
{
    campaign_action(req, ACT_PAUSE);
}
static void handle_resume(http_request_t *req)
{
    campaign_action(req, ACT_RESUME);
}
static void handle_cancel(http_request_t *req)
{
    campaign_action(req, ACT_CANCEL);
}

/* POST /api/campaigns/:id/test {"to": address}: 202 with the job that sends it. */
static void handle_test(http_request_t *req)
{
    const app_t *app = req->ctx;
    api_ctx_t ctx;
    json_t *body = NULL;
    if (!api__begin(req, false, &ctx))
        return;
    static const char *const keys[] = {"to", NULL};
    const char *to = NULL;
    bool present = false;
    if (!api__path_id(req, "campaign") || !(body = api__read_body(req)) ||
        !api__check_keys(req, body, keys) ||
        !api__body_text(req, body, "to", 254, API_TEXT_REQUIRED, &to, &present))
        goto done;
    if (!smtp_address_ok(to)) {
        api__reply_invalid(req, "invalid_body", "to", "to must be one e-mail address");
        goto done;
    }
    if (!may_act(req, &ctx) || !ready_to_send(req, app, req->params[0]))
        goto done;
    const char *p[2] = {req->params[0], to};
    PGresult *r = run_service(req,
                              "select json_build_object('job_id', jobs.enqueue('send.test',"
                              " jsonb_build_object('campaign_id', $1::uuid, 'to', $2::text),"
                              " now(), null, 3, '30 seconds'), 'to', $2::text)::text",
                              2, p);
    if (r) {
        api__reply_cell(req, 202, r, 0, 0);
        PQclear(r);
    }
done:
    json_decref(body);
    api__end(&ctx);
}

/* Renders the preview parts into a JSON object. */
static json_t *render_preview(const PGresult *t, const PGresult *k, char *err, size_t errlen)
{
    json_t *attrs = json_loads(PQgetvalue(k, 0, 4), 0, NULL);
    tpl_contact_t c = {
        PQgetisnull(k, 0, 0) ? NULL : PQgetvalue(k, 0, 0),
        PQgetisnull(k, 0, 1) ? NULL : PQgetvalue(k, 0, 1),
        PQgetisnull(k, 0, 2) ? NULL : PQgetvalue(k, 0, 2),
        PQgetisnull(k, 0, 3) ? NULL : PQgetvalue(k, 0, 3),
        attrs,
    };
    const char *subject = PQgetvalue(t, 0, 0), *content = PQgetvalue(t, 0, 1);
    const char *text = PQgetisnull(t, 0, 2) ? NULL : PQgetvalue(t, 0, 2);
    cd_buf_t s, h, x;
    cd_buf_init(&s, 16 * 1024);
    cd_buf_init(&h, COMPOSE_PART_MAX);
    cd_buf_init(&x, COMPOSE_PART_MAX);
    json_t *out = NULL;
    bool html = tpl_is_html(content);
    bool ok = tpl_render(subject, strlen(subject), TPL_TEXT, &c, &s, err, errlen);
    if (ok && html) {
        ok = tpl_render(content, strlen(content), TPL_HTML, &c, &h, err, errlen);
        if (ok && text)
            ok = tpl_render(text, strlen(text), TPL_TEXT, &c, &x, err, errlen);
        else if (ok && !tpl_html_to_text(cd_buf_str(&h), &x))
            ok = (snprintf(err, errlen, "preview is too large"), false);
    } else if (ok) {
        ok = tpl_render(content, strlen(content), TPL_TEXT, &c, &x, err, errlen);
    }
    if (ok)
        out = json_pack("{s:s, s:s?, s:s}", "subject", cd_buf_str(&s), "html",
                        html ? cd_buf_str(&h) : NULL, "text", cd_buf_str(&x));
    cd_buf_free(&s);
    cd_buf_free(&h);
    cd_buf_free(&x);
    json_decref(attrs);
    return out;
}

/* POST /api/templates/:id/preview {"contact_id": uuid}: the template rendered
 * for one of the caller's contacts (without the footer sending adds). */
static void handle_preview(http_request_t *req)
{
    api_ctx_t ctx;
    json_t *body = NULL;
    if (!api__begin(req, true, &ctx))
        return;
    static const char *const keys[] = {"contact_id", NULL};
    const char *contact = NULL;
    bool present = false;
    if (!api__path_id(req, "template") || !(body = api__read_body(req)) ||
        !api__check_keys(req, body, keys) ||
        !api__body_text(req, body, "contact_id", 36, API_TEXT_REQUIRED, &contact, &present))
        goto done;
    if (!cd_is_uuid(contact)) {
        api__reply_invalid(req, "invalid_body", "contact_id", "contact_id must be a UUID");
        goto done;
    }
    const char *p1[1] = {req->params[0]}, *p2[1] = {contact};
    db_stmt_t st[2] = {
        {"select coalesce(t.subject, ''), t.content, t.text_content from public.templates t"
         " where t.id = $1::uuid and t.deleted_at is null",
         1, p1},
        {"select k.first_name, k.last_name, k.email, k.phone, k.attributes::text"
         " from public.contacts k where k.id = $1::uuid and k.deleted_at is null",
         1, p2},
    };
    PGresult *r[2] = {NULL, NULL};
    if (!api__run(req, &ctx, st, 2, r))
        goto done;
    if (PQntuples(r[0]) != 1) {
        api__reply_not_found(req, "template");
    } else if (PQntuples(r[1]) != 1) {
        api__reply_not_found(req, "contact");
    } else {
        char err[256] = "";
        json_t *out = render_preview(r[0], r[1], err, sizeof(err));
        if (out)
            http_reply_json(req, 200, out);
        else
            api__reply_error(req, 422, "template_invalid", err[0] ? err : "cannot render", NULL,
                             NULL);
    }
    PQclear(r[0]);
    PQclear(r[1]);
done:
    json_decref(body);
    api__end(&ctx);
}

/* ------------------------------------------------ tracking, unsubscribe */

/* A 1x1 transparent GIF. */
static const unsigned char PIXEL_GIF[] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};

/* Verifies the route's token of kind; answers 404 and returns false when it
 * is not one of ours. suffix (may be NULL) is stripped first (".gif"). */
static bool route_token(http_request_t *req, track_kind_t kind, const char *suffix, char id[37],
                        unsigned *link)
{
    const app_t *app = req->ctx;
    char tok[TRACK_TOKEN_LEN + 8];
    const char *raw = req->params[0] ? req->params[0] : "";
    size_t n = strlen(raw), sl = suffix ? strlen(suffix) : 0;
    bool ok = n < sizeof(tok) && n >= sl && (sl == 0 || strcmp(raw + n - sl, suffix) == 0);
    if (ok) {
        memcpy(tok, raw, n - sl);
        tok[n - sl] = '\0';
        unsigned char key[TRACK_KEY_LEN];
        sending__tracking_key(app, key);
        ok = track_verify(key, kind, tok, id, link);
    }
    if (!ok)
        http_reply_error(req, 404, "not_found", "unknown link", NULL);
    return ok;
}

/* Tracking answers are per recipient: not cached, not indexed, no Referer onwards. */
#define TRACK_HEADERS (HTTP_HDR_NO_STORE | HTTP_HDR_NO_REFERRER | HTTP_HDR_NO_INDEX)

/* GET /t/o/<token>.gif: records the first open, answers the pixel. */
static void handle_open(http_request_t *req)
{
    char id[37];
    unsigned link;
    if (!route_token(req, TRACK_OPEN, ".gif", id, &link))
        return;
    const char *p[1] = {id};
    PGresult *r = run_service(req, "select sending.record_open($1::uuid)", 1, p);
    if (!r)
        return;
    PQclear(r);
    http_add_common_headers(req, TRACK_HEADERS);
    http_reply(req, 200, "image/gif", (const char *)PIXEL_GIF, sizeof(PIXEL_GIF));
}

/* Whether a stored URL may go into a Location header: http(s), printable. */
static bool redirect_ok(const char *url)
{
    if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)
        return false;
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return false;
    return strlen(url) < TRACK_MAX_URL;
}

/* GET /t/c/<token>: records the click and redirects to the link's URL in
 * that message, and only there. */
static void handle_click(http_request_t *req)
{
    char id[37], idx[16];
    unsigned link;
    if (!route_token(req, TRACK_CLICK, NULL, id, &link))
        return;
    snprintf(idx, sizeof(idx), "%u", link);
    const char *p[2] = {id, idx};
    PGresult *r = run_service(req, "select sending.record_click($1::uuid, $2::int)", 2, p);
    if (!r)
        return;
    const char *url = PQgetisnull(r, 0, 0) ? NULL : PQgetvalue(r, 0, 0);
    if (!url || !redirect_ok(url)) {
        http_reply_error(req, 404, "not_found", "unknown link", NULL);
    } else {
        http_add_common_headers(req, TRACK_HEADERS);
        http_add_header(req, "Location", url);
        http_reply(req, 302, "text/plain; charset=utf-8", "", 0);
    }
    PQclear(r);
}

static void reply_page(http_request_t *req, int status, const char *title, const char *text,
                       const char *form_action)
{
    cd_buf_t b;
    cd_buf_init(&b, 16 * 1024);
    bool ok = cd_buf_adds(&b, "<!doctype html><html><head><meta charset=\"utf-8\">"
                              "<meta name=\"viewport\" content=\"width=device-width\"><title>") &&
              tpl_html_escape(&b, title, strlen(title)) &&
              cd_buf_adds(&b, "</title></head><body style=\"font-family:sans-serif;"
                              "max-width:32em;margin:3em auto\"><h1>") &&
              tpl_html_escape(&b, title, strlen(title)) && cd_buf_adds(&b, "</h1><p>") &&
              tpl_html_escape(&b, text, strlen(text)) && cd_buf_adds(&b, "</p>");
    if (ok && form_action)
        ok = cd_buf_adds(&b, "<form method=\"post\" action=\"") &&
             tpl_html_escape(&b, form_action, strlen(form_action)) &&
             cd_buf_adds(&b, "\"><button type=\"submit\">Unsubscribe</button></form>");
    ok = ok && cd_buf_adds(&b, "</body></html>\n");
    http_add_common_headers(req, TRACK_HEADERS);
    http_add_header(req, "Content-Security-Policy",
                    "default-src 'none'; style-src 'unsafe-inline'; "
                    "form-action 'self'");
    if (ok)
        http_reply_take(req, status, "text/html; charset=utf-8", cd_buf_take(&b), b.len);
    else
        http_reply_error(req, 500, "internal", "page too large", NULL);
    cd_buf_free(&b);
}

/* GET /u/<token>: a page that confirms with a POST (a GET never
 * unsubscribes: mail scanners follow links). */
static void handle_unsubscribe_page(http_request_t *req)
{
    char id[37];
    unsigned link;
    if (!route_token(req, TRACK_UNSUBSCRIBE, NULL, id, &link))
        return;
    const char *p[1] = {id};
    PGresult *r = run_service(req, "select sending.unsubscribe_state($1::uuid)", 1, p);
    if (!r)
        return;
    const char *state = PQgetisnull(r, 0, 0) ? NULL : PQgetvalue(r, 0, 0);
    char action[128];
    snprintf(action, sizeof(action), "/u/%s", req->params[0]);
    if (!state)
        http_reply_error(req, 404, "not_found", "unknown link", NULL);
    else if (strcmp(state, "unsubscribed") == 0)
        reply_page(req, 200, "You are unsubscribed",
                   "This address no longer receives these e-mails.", NULL);
    else
        reply_page(req, 200, "Unsubscribe",
                   "Stop receiving marketing e-mail from this sender at this address?", action);
    PQclear(r);
}

/* POST /u/<token>: one-click unsubscribe (RFC 8058), idempotent. */
static void handle_unsubscribe(http_request_t *req)
{
    char id[37];
    unsigned link;
    if (!route_token(req, TRACK_UNSUBSCRIBE, NULL, id, &link))
        return;
    const char *p[1] = {id};
    PGresult *r = run_service(req, "select sending.unsubscribe($1::uuid)", 1, p);
    if (!r)
        return;
    bool found = !PQgetisnull(r, 0, 0) && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!found)
        http_reply_error(req, 404, "not_found", "unknown link", NULL);
    else
        reply_page(req, 200, "You are unsubscribed",
                   "This address no longer receives these e-mails.", NULL);
}

const http_route_t sending_routes[] = {
    {"POST", "/api/campaigns/:id/send", handle_send, false},
    {"POST", "/api/campaigns/:id/pause", handle_pause, false},
    {"POST", "/api/campaigns/:id/resume", handle_resume, false},
    {"POST", "/api/campaigns/:id/cancel", handle_cancel, false},
    {"POST", "/api/campaigns/:id/test", handle_test, true},
    {"POST", "/api/templates/:id/preview", handle_preview, true},
    {"GET", "/t/o/:token", handle_open, false},
    {"GET", "/t/c/:token", handle_click, false},
    {"GET", "/u/:token", handle_unsubscribe_page, false},
    {"POST", "/u/:token", handle_unsubscribe, true},
};
const size_t sending_routes_len = CD_ARRAY_LEN(sending_routes);
