/*
 * The SMS side of the send engine (issue 12): a send.worker job for an SMS
 * campaign claims due messages (sending.claim_sms of migration 029: consent
 * and suppression checked again, quiet hours 08:00-21:00 in the recipient's
 * time zone make a message wait, the monthly limit reserved), renders each
 * body (template values raw), appends "Reply STOP to opt out" to the first
 * message to a number, hands them to the SMS provider at SMS_RATE_PER_SECOND
 * and records the outcomes (sending.settle_sms). Like the e-mail side, every
 * decision is SQL; this file renders and talks to the provider between
 * transactions.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "sending/engine_internal.h"
#include "sending/template.h"

#define SMS_STOP_FOOTER "\nReply STOP to opt out"
#define SMS_BODY_MAX    (16 * 1024)

static const db_caller_t SMS_SERVICE = {
    .role = "service_role",
    .claims_json = "{\"role\":\"service_role\"}",
    .method = "JOB",
    .path = "send.sms",
};

/* What one job run needs besides the campaign. */
typedef struct sms_run {
    const char *campaign_id;
    sending_campaign_t c;
    char from[64];
    char callback[1100];
    char sid[128], token[256]; /* stored secrets, "" when not stored */
    sms_provider_t *provider;
} sms_run_t;

/* The sender (the campaign's sms_sender, else TWILIO_FROM) and an admin's
 * stored Twilio credentials, which win over the environment's. */
static db_status_t load_extras(job_ctx_t *ctx, sms_run_t *run, db_error_t *err)
{
    const app_t *app = job_app(ctx);
    db_caller_t who = SMS_SERVICE;
    who.with_secrets = true;
    const char *p[2] = {run->campaign_id, app->cfg.twilio_from ? app->cfg.twilio_from : ""};
    PGresult *r = NULL;
    db_status_t st = db_run1(job_conn(ctx), &who,
                             "select coalesce(nullif(c.sms_sender, ''), $2),"
                             " coalesce(public.get_app_secret('twilio_account_sid'), ''),"
                             " coalesce(public.get_app_secret('twilio_auth_token'), '')"
                             " from public.campaigns c where c.id = $1::uuid",
                             2, p, &r, err);
    if (st == DB_SQL_ERROR && strcmp(err->sqlstate, "22023") == 0) {
        /* no encryption key: nothing can be stored either; the environment's values apply */
        st = db_run1(job_conn(ctx), &SMS_SERVICE,
                     "select coalesce(nullif(c.sms_sender, ''), $2), '', ''"
                     " from public.campaigns c where c.id = $1::uuid",
                     2, p, &r, err);
    }
    if (st == DB_OK && PQntuples(r) == 1) {
        snprintf(run->from, sizeof(run->from), "%s", PQgetvalue(r, 0, 0));
        snprintf(run->sid, sizeof(run->sid), "%s", PQgetvalue(r, 0, 1));
        snprintf(run->token, sizeof(run->token), "%s", PQgetvalue(r, 0, 2));
    }
    PQclear(r);
    return st;
}

/* Renders one SMS body for a contact into out. */
static bool render(const sms_run_t *run, const json_t *k, bool first, cd_buf_t *out, char *err,
                   size_t errlen)
{
    const char *src = run->c.str[SC_BODY];
    tpl_contact_t contact = {
        json_string_value(json_object_get(k, "first_name")),
        json_string_value(json_object_get(k, "last_name")),
        json_string_value(json_object_get(k, "email")),
        json_string_value(json_object_get(k, "phone")),
        json_object_get(k, "attributes"),
    };
    if (!tpl_render(src, strlen(src), TPL_TEXT, &contact, out, err, errlen))
        return false;
    if (first && !cd_buf_adds(out, SMS_STOP_FOOTER)) {
        snprintf(err, errlen, "the message is longer than %d bytes", SMS_BODY_MAX);
        return false;
    }
    return true;
}

static const char *outcome_word(provider_outcome_t o)
{
    return o == PROVIDER_ACCEPTED   ? "accepted"
           : o == PROVIDER_TEMPFAIL ? "tempfail"
           : o == PROVIDER_PERMFAIL ? "permfail"
                                    : "unknown";
}

/* Sends one claimed message; returns its result object for settle_sms. */
static json_t *send_one(sms_run_t *run, const char *id, const char *to, const json_t *contact,
                        bool first)
{
    provider_sms_result_t r = {.outcome = PROVIDER_PERMFAIL};
    cd_buf_t body;
    cd_buf_init(&body, SMS_BODY_MAX);
    if (render(run, contact, first, &body, r.error, sizeof(r.error))) {
        provider_sms_t m = {id, to, run->from, cd_buf_str(&body), run->callback};
        run->provider->ops->send(run->provider, &m, &r);
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s?, s:i, s:I, s:s}", "id", id, "outcome",
                          outcome_word(r.outcome), "sid", r.sid, "body",
                          body.len ? cd_buf_str(&body) : NULL, "segments", r.segments,
                          "cost_micros", (json_int_t)r.cost_micros, "error", r.error);
    cd_buf_free(&body);
    return o;
}

/* One batch: claim, render and send, settle. *claimed: messages claimed. */
static job_result_t run_batch(job_ctx_t *ctx, sms_run_t *run, size_t *claimed)
{
    const app_t *app = job_app(ctx);
    char limit[16], lease[16], maxa[16], backoff[16];
    snprintf(limit, sizeof(limit), "%ld", app->cfg.send_batch_size);
    snprintf(lease, sizeof(lease), "%ld", app->cfg.send_lease_seconds);
    snprintf(maxa, sizeof(maxa), "%ld", app->cfg.send_max_attempts);
    snprintf(backoff, sizeof(backoff), "%ld", app->cfg.send_retry_seconds);
    *claimed = 0;
    if (!sending__pace(ctx, 1, app->cfg.sms_rate_per_second, (size_t)app->cfg.send_batch_size))
        return JOB_RETRY;
    db_error_t err = {0};
    PGresult *r = NULL;
    const char *p[4] = {run->campaign_id, limit, lease, NULL};
    if (db_run1(job_conn(ctx), &SMS_SERVICE,
                "select id::text, recipient, contact::text, first_to_number"
                " from sending.claim_sms($1::uuid, $2::int, $3::int)",
                3, p, &r, &err) != DB_OK) {
        job_set_error(ctx, "claim sms: %s", err.message);
        return JOB_RETRY;
    }
    json_t *results = json_array();
    int rows = PQntuples(r);
    *claimed = (size_t)rows;
    for (int i = 0; results && i < rows; i++) {
        json_t *contact =
            PQgetisnull(r, i, 2) ? json_object() : json_loads(PQgetvalue(r, i, 2), 0, NULL);
        json_array_append_new(results, send_one(run, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                                                contact, PQgetvalue(r, i, 3)[0] == 't'));
        json_decref(contact);
    }
    PQclear(r);
    r = NULL;
    char *text = rows > 0 && results ? json_dumps(results, JSON_COMPACT) : NULL;
    json_decref(results);
    if (rows == 0)
        return JOB_DONE;
    p[1] = text;
    p[2] = maxa;
    p[3] = backoff;
    /* Without the text the messages stay `sending` and become unknown after
     * their lease: never sent twice. */
    db_status_t st =
        text ? db_run1(job_conn(ctx), &SMS_SERVICE,
                       "select sending.settle_sms($1::uuid, $2::jsonb, $3::int, $4::int)", 4, p, &r,
                       &err)
             : DB_UNAVAILABLE;
    PQclear(r);
    free(text);
    if (st != DB_OK) {
        job_set_error(ctx, "settle sms: %s", text ? err.message : "out of memory");
        return JOB_RETRY;
    }
    return JOB_DONE;
}

static job_result_t sms_loop(job_ctx_t *ctx, sms_run_t *run)
{
    for (;;) {
        if (!job_heartbeat(ctx))
            return JOB_RETRY;
        size_t claimed = 0;
        job_result_t res = run_batch(ctx, run, &claimed);
        if (res != JOB_DONE)
            return res;
        if (claimed == 0)
            break;
    }
    db_error_t err = {0};
    PGresult *r = NULL;
    const char *p[1] = {run->campaign_id};
    db_status_t st = db_run1(job_conn(ctx), &SMS_SERVICE,
                             "select sending.sms_after_batches($1::uuid)", 1, p, &r, &err);
    PQclear(r);
    if (st != DB_OK) {
        job_set_error(ctx, "finish sms: %s", err.message);
        return JOB_RETRY;
    }
    return JOB_DONE;
}

job_result_t sending__sms_run(job_ctx_t *ctx, const char *campaign_id)
{
    const app_t *app = job_app(ctx);
    sms_run_t run = {.campaign_id = campaign_id};
    db_error_t err = {0};
    job_result_t res = JOB_RETRY;
    if (sending__campaign_load(job_conn(ctx), campaign_id, &run.c, &err) != DB_OK) {
        job_set_error(ctx, "load campaign: %s", err.message);
        return err.sqlstate[0] == 'P' ? JOB_FAIL : JOB_RETRY;
    }
    if (strcmp(run.c.str[SC_STATUS], "sending") != 0) {
        res = JOB_DONE; /* paused, cancelled or finished meanwhile */
        goto done;
    }
    if (load_extras(ctx, &run, &err) != DB_OK) {
        job_set_error(ctx, "load sender: %s", err.message);
        goto done;
    }
    provider_settings_t ps;
    sending__provider_settings(app, &ps);
    if (*run.sid)
        ps.twilio_account_sid = run.sid;
    if (*run.token)
        ps.twilio_auth_token = run.token;
    bool configured = false;
    char perr[PROVIDER_ERROR_MAX];
    run.provider = provider_sms_open(&ps, &configured, perr, sizeof(perr));
    if (!run.provider) {
        job_set_error(ctx, "%s", perr);
        goto done;
    }
    /* the URL Twilio signs: the webhook handler checks it against the same base */
    snprintf(run.callback, sizeof(run.callback), "%s/webhooks/twilio/status", app->external_url);
    res = sms_loop(ctx, &run);
done:
    provider_sms_close(run.provider);
    sending__campaign_free(&run.c);
    memset(run.token, 0, sizeof(run.token));
    return res;
}
