/*
 * The provider webhooks (webhooks.h): Twilio's status callbacks and inbound
 * SMS, SendGrid's Event Webhook. Each handler proves the sender by its
 * signature (Twilio: HMAC-SHA1 with the auth token over the URL and the
 * sorted form; SendGrid: ECDSA P-256 over timestamp + body), parses, and
 * hands the facts to one SECURITY DEFINER function of migration 029, run as
 * service_role: the database decides what changes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "api/api_internal.h"
#include "api/provider_settings.h"
#include "api/webhooks.h"
#include "app.h"
#include "auth/auth.h"
#include "core/crypto.h"
#include "core/log.h"
#include "jobs/queue.h"
#include "providers/sendgrid.h"
#include "providers/twilio.h"

#define WEBHOOK_URL_MAX   4096
#define WEBHOOK_TOKEN_MAX 512

static const api_ctx_t service_ctx = {
    .who = {.role = "service_role",
            .claims_json = "{\"role\":\"service_role\"}",
            .method = "POST",
            .path = "/webhooks"},
};

bool webhooks_twilio_url(const char *external_url, const char *raw_uri, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s%s", external_url, raw_uri);
    return n >= 0 && (size_t)n < outlen;
}

/* The auth token: an admin's value in the encrypted app settings, else
 * TWILIO_AUTH_TOKEN (the send engine's lookup, api/provider_settings.h). False
 * after answering 503 when the database is down. */
static bool twilio_token(http_request_t *req, char *out, size_t cap)
{
    const app_t *app = req->ctx;
    provider_config_t set;
    db_error_t err;
    db_status_t s = provider_config_load(NULL, &app->cfg, &set, &err);
    if (s == DB_OK)
        snprintf(out, cap, "%s", set.ps.twilio_auth_token);
    provider_config_free(&set);
    if (s != DB_OK) {
        http_reply_unavailable(req, db_retry_after());
        return false;
    }
    return true;
}

/* The per-address budget of signed webhook requests (WEBHOOK_RATE_LIMIT in
 * 5-minute windows, the auth routes' limiter); false after answering 429.
 * Called after the signature check: a forged request is always 403. */
static bool within_rate(http_request_t *req)
{
    const app_t *app = req->ctx;
    int wait = auth_limiter_hit(app->webhook_limiter, req->client_ip, app->cfg.webhook_rate_limit);
    if (!wait)
        return true;
    char v[16];
    snprintf(v, sizeof(v), "%d", wait);
    http_add_header(req, "Retry-After", v);
    api__reply_error(req, 429, "over_request_rate_limit",
                     "too many webhook requests from this address", NULL,
                     "wait Retry-After seconds; raise WEBHOOK_RATE_LIMIT for a busy account");
    return false;
}

/* A verified Twilio form: params point into body (the caller frees body). */
typedef struct twilio_form {
    char *body;
    twilio_param_t params[TWILIO_MAX_FORM_PARAMS];
    size_t n;
} twilio_form_t;

/* Parses and verifies a Twilio webhook. False after answering (415, 400,
 * 403 or 503); the caller frees f->body either way. */
static bool twilio_verified(http_request_t *req, twilio_form_t *f)
{
    const char *type = http_header(req, "content-type");
    if (!type || strncasecmp(type, "application/x-www-form-urlencoded", 33) != 0) {
        api__reply_error(req, 415, "unsupported_media_type",
                         "Twilio webhooks are application/x-www-form-urlencoded", NULL, NULL);
        return false;
    }
    f->body = malloc(req->body.len + 1);
    if (!f->body) {
        api__reply_error(req, 500, "internal_error", "out of memory", NULL, NULL);
        return false;
    }
    memcpy(f->body, req->body.data ? req->body.data : "", req->body.len);
    f->body[req->body.len] = '\0';
    if (!twilio_form_parse(f->body, f->params, TWILIO_MAX_FORM_PARAMS, &f->n)) {
        api__reply_error(req, 400, "invalid_body", "the form body is malformed", NULL, NULL);
        return false;
    }
    const app_t *app = req->ctx;
    char url[WEBHOOK_URL_MAX], token[WEBHOOK_TOKEN_MAX];
    if (!twilio_token(req, token, sizeof(token)))
        return false;
    bool configured = *token != '\0';
    bool ok =
        configured && webhooks_twilio_url(app->external_url, req->raw_uri, url, sizeof(url)) &&
        twilio_signature_ok(token, url, f->params, f->n, http_header(req, "x-twilio-signature"));
    OPENSSL_cleanse(token, sizeof(token));
    if (!ok) {
        api__reply_error(req, 403, "invalid_signature",
                         configured ? "X-Twilio-Signature does not match this request"
                                    : "no Twilio auth token is configured: no signature can be "
                                      "verified",
                         NULL,
                         configured ? "Twilio signs API_EXTERNAL_URL + the path and query it "
                                      "requested, with the form parameters"
                                    : "set TWILIO_AUTH_TOKEN or store it in the app settings");
        return false;
    }
    return within_rate(req);
}

/* Runs one statement as service_role; false after answering the error. */
static bool run_service(http_request_t *req, const char *sql, int n, const char *const *params,
                        PGresult **res)
{
    db_stmt_t st = {sql, n, params};
    return api__run(req, &service_ctx, &st, 1, res);
}

/* POST /webhooks/twilio/status[?m=<message uuid>] */
static void handle_twilio_status(http_request_t *req)
{
    twilio_form_t f = {0};
    PGresult *res = NULL;
    if (!twilio_verified(req, &f))
        goto done;
    const char *m = http_query_arg(req, "m");
    const char *sid = twilio_form_get(f.params, f.n, "MessageSid");
    const char *status = twilio_form_get(f.params, f.n, "MessageStatus");
    if (!sid)
        sid = twilio_form_get(f.params, f.n, "SmsSid");
    if (!status)
        status = twilio_form_get(f.params, f.n, "SmsStatus");
    if (m && !cd_is_uuid(m)) {
        api__reply_invalid(req, "invalid_parameter", "m", "m must be a message id (UUID)");
        goto done;
    }
    if (!sid || !status) {
        api__reply_invalid(req, "invalid_body", sid ? "MessageStatus" : "MessageSid",
                           "MessageSid and MessageStatus are required");
        goto done;
    }
    const app_t *app = req->ctx;
    char retry[24];
    snprintf(retry, sizeof(retry), "%ld", app->cfg.sms_price_retry_seconds);
    const char *p[5] = {m, sid, status, twilio_form_get(f.params, f.n, "ErrorCode"), retry};
    /* a final status also queues the price fetch (migration 043) */
    if (run_service(req, "select public.apply_twilio_status($1::uuid, $2, $3, $4, $5::int)", 5, p,
                    &res))
        http_reply_json(req, 200, json_pack("{s:s}", "result", PQgetvalue(res, 0, 0)));
done:
    PQclear(res);
    free(f.body);
}

static const char *keyword_name(twilio_keyword_t k)
{
    return k == TWILIO_KEYWORD_STOP    ? "stop"
           : k == TWILIO_KEYWORD_START ? "start"
           : k == TWILIO_KEYWORD_HELP  ? "help"
                                       : "none";
}

/* The TwiML answer to an inbound keyword (also to a repeat of it). */
static void reply_twiml(http_request_t *req, twilio_keyword_t k)
{
    const app_t *app = req->ctx;
    const char *text =
        k == TWILIO_KEYWORD_STOP ? "You are unsubscribed and will receive no more messages. Reply "
                                   "START to resubscribe."
        : k == TWILIO_KEYWORD_START ? "You are subscribed again. Reply STOP to opt out."
        : k == TWILIO_KEYWORD_HELP  ? app->cfg.sms_help_text
                                    : NULL;
    cd_buf_t out;
    cd_buf_init(&out, 8192);
    if (twilio_twiml(&out, text))
        http_reply(req, 200, "text/xml; charset=utf-8", out.data, out.len);
    else
        api__reply_error(req, 500, "internal_error", "the answer does not fit", NULL, NULL);
    cd_buf_free(&out);
}

/* POST /webhooks/twilio/inbound */
static void handle_twilio_inbound(http_request_t *req)
{
    twilio_form_t f = {0};
    PGresult *res = NULL;
    if (!twilio_verified(req, &f))
        goto done;
    const char *sid = twilio_form_get(f.params, f.n, "MessageSid");
    const char *from = twilio_form_get(f.params, f.n, "From");
    const char *body = twilio_form_get(f.params, f.n, "Body");
    if (!sid)
        sid = twilio_form_get(f.params, f.n, "SmsSid");
    if (!sid || !from || !body) {
        api__reply_invalid(req, "invalid_body",
                           !sid    ? "MessageSid"
                           : !from ? "From"
                                   : "Body",
                           "MessageSid, From and Body are required");
        goto done;
    }
    twilio_keyword_t k = twilio_classify_keyword(body);
    const char *p[5] = {sid, from, twilio_form_get(f.params, f.n, "To"), body, keyword_name(k)};
    if (run_service(req, "select public.apply_twilio_inbound($1, $2, $3, left($4, 1600), $5)", 5, p,
                    &res))
        reply_twiml(req, k);
done:
    PQclear(res);
    free(f.body);
}

/* POST /webhooks/sendgrid/events */
static void handle_sendgrid_events(http_request_t *req)
{
    const app_t *app = req->ctx;
    const char *key = app->cfg.sendgrid_webhook_public_key;
    const char *body = req->body.data ? req->body.data : "";
    PGresult *res = NULL;
    char err[256] = "";
    if (!*key) {
        api__reply_error(req, 403, "invalid_signature",
                         "no SendGrid verification key is configured: no signature can be verified",
                         NULL, "set SENDGRID_WEBHOOK_PUBLIC_KEY");
        return;
    }
    if (!sendgrid_signature_ok(key, http_header(req, "x-twilio-email-event-webhook-signature"),
                               http_header(req, "x-twilio-email-event-webhook-timestamp"), body,
                               req->body.len)) {
        api__reply_error(req, 403, "invalid_signature",
                         "X-Twilio-Email-Event-Webhook-Signature does not match this request", NULL,
                         "SendGrid signs the timestamp header followed by the raw body");
        return;
    }
    if (!within_rate(req))
        return;
    json_t *events = sendgrid_events_parse(body, req->body.len, err, sizeof(err));
    if (!events) {
        api__reply_error(req, 400, "invalid_body", err, NULL, NULL);
        return;
    }
    char *text = json_dumps(events, JSON_COMPACT);
    json_decref(events);
    const char *p[1] = {text};
    if (text &&
        run_service(req, "select public.apply_sendgrid_events($1::jsonb)::text", 1, p, &res))
        api__reply_cell(req, 200, res, 0, 0);
    else if (!text)
        api__reply_error(req, 500, "internal_error", "out of memory", NULL, NULL);
    PQclear(res);
    free(text);
}

const http_route_t webhook_routes[] = {
    {"POST", "/webhooks/twilio/status", handle_twilio_status, true},
    {"POST", "/webhooks/twilio/inbound", handle_twilio_inbound, true},
    {"POST", "/webhooks/sendgrid/events", handle_sendgrid_events, true},
};
const size_t webhook_routes_len = CD_ARRAY_LEN(webhook_routes);

/* ------------------------------------------------- the price follow-up */

static const db_caller_t price_caller = {
    .role = "service_role",
    .claims_json = "{\"role\":\"service_role\"}",
    .method = "JOB",
    .path = WEBHOOKS_PRICE_KIND,
    .headers_json = "{}",
};

/* Asks Twilio for the message's price and records it; JOB_RETRY while
 * Twilio has none yet or cannot be reached (the queue backs off). */
static job_result_t fetch_and_record(job_ctx_t *ctx, const char *id, const char *sid)
{
    provider_config_t set;
    db_error_t err;
    if (provider_config_load(job_conn(ctx), &job_app(ctx)->cfg, &set, &err) != DB_OK) {
        job_set_error(ctx, "sms %s: provider settings: %s", id, err.message);
        return JOB_RETRY;
    }
    const provider_settings_t *ps = &set.ps;
    twilio_config_t cfg = {ps->twilio_api_base, ps->twilio_account_sid, ps->twilio_auth_token,
                           set.twilio_from, ps->timeout_seconds};
    twilio_client_t *c = twilio_client_new();
    twilio_result_t tr = {.outcome = TWILIO_TEMPORARY, .error = "out of memory"};
    if (c)
        twilio_fetch_message(c, &cfg, sid, &tr);
    twilio_client_free(c);
    provider_config_free(&set);
    if (tr.outcome != TWILIO_ACCEPTED) {
        job_set_error(ctx, "sms %s: %s", id, tr.error);
        return tr.outcome == TWILIO_PERMANENT ? JOB_FAIL : JOB_RETRY;
    }
    const char *p[4] = {id, sid, tr.price, tr.price_unit};
    PGresult *res = NULL;
    db_status_t rc = db_run1(job_conn(ctx), &price_caller,
                             "select public.record_sms_price($1::uuid, $2, $3, nullif($4, ''))", 4,
                             p, &res, &err);
    const char *outcome = rc == DB_OK ? PQgetvalue(res, 0, 0) : "";
    job_result_t out = strcmp(outcome, "pending") == 0 ? JOB_RETRY : JOB_DONE;
    if (rc != DB_OK) {
        job_set_error(ctx, "sms %s: price %s not recorded: %s", id, tr.price, err.message);
        out = rc == DB_SQL_ERROR ? JOB_FAIL : JOB_RETRY;
    } else if (out == JOB_RETRY) {
        job_set_error(ctx, "sms %s: Twilio has not priced message %s yet", id, sid);
    }
    PQclear(res);
    return out;
}

/* sms.price {"message_id": uuid}: queued by a final status callback. */
static job_result_t price_job(job_ctx_t *ctx, const job_t *job)
{
    const char *id = json_string_value(json_object_get(job->payload, "message_id"));
    if (!id || !cd_is_uuid(id)) {
        job_set_error(ctx, "payload has no message_id");
        return JOB_FAIL;
    }
    const char *p[1] = {id};
    PGresult *res = NULL;
    db_error_t err;
    if (db_run1(job_conn(ctx), &price_caller,
                "select message_sid from public.sms_messages"
                " where id = $1::uuid and cost is null and message_sid is not null",
                1, p, &res, &err) != DB_OK) {
        job_set_error(ctx, "sms %s: %s", id, err.message);
        return JOB_RETRY;
    }
    /* gone or already priced (NULL is "not priced yet", 0 free: 051): nothing to do */
    job_result_t out = JOB_DONE;
    if (PQntuples(res) == 1)
        out = fetch_and_record(ctx, id, PQgetvalue(res, 0, 0));
    PQclear(res);
    return out;
}

bool webhooks_register_jobs(void)
{
    return jobs_register(WEBHOOKS_PRICE_KIND, price_job);
}
