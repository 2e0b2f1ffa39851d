/*
 * The mail.send job (mail.h): one outbox row per job, delivered at most once
 * through the SMTP provider. The steps are three transactions on the
 * worker's connection, as service_role: jobs.mail_claim (mark 'sending',
 * commit), the SMTP conversation (no transaction open), jobs.mail_finish.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/text.h"
#include "jobs/mail.h"
#include "jobs/queue.h"
#include "providers/smtp.h"

#define MAIL_SMTP_TIMEOUT_S 30

static const char QUEUE_SQL[] =
    "select jobs.queue_mail($1, $2, $3, $4, $5, $6, $7, $8, $9::bytea, $10::int,"
    " make_interval(secs => $11::int))";

bool mail_queue_stmt(const app_t *app, const mail_item_t *m, const char *params[11],
                     char attempts_buf[16], char delay_buf[24], char **hex_out, db_stmt_t *out)
{
    *hex_out = NULL;
    if (m->attachment) {
        /* bytea's hex input form: "\x" and two digits a byte */
        char *hex = malloc(2 * m->attachment_len + 3);
        if (!hex)
            return false;
        memcpy(hex, "\\x", 2);
        cd_hex_encode((const unsigned char *)m->attachment, m->attachment_len, hex + 2);
        *hex_out = hex;
    }
    snprintf(attempts_buf, 16, "%ld", app->cfg.mail_max_attempts);
    snprintf(delay_buf, 24, "%ld", app->cfg.mail_retry_delay);
    const char *p[11] = {m->purpose,
                         m->kind,
                         m->to,
                         m->subject,
                         m->text,
                         m->html,
                         m->attachment ? m->attachment_name : NULL,
                         m->attachment ? m->attachment_type : NULL,
                         *hex_out,
                         attempts_buf,
                         delay_buf};
    memcpy(params, p, sizeof(p));
    *out = (db_stmt_t){QUEUE_SQL, 11, params};
    return true;
}

static const db_caller_t mail_caller = {
    .role = "service_role",
    .claims_json = "{\"role\":\"service_role\"}",
    .method = "JOB",
    .path = MAIL_JOB_KIND,
    .headers_json = "{}",
};

bool mail_queue(const app_t *app, const mail_item_t *m)
{
    const char *params[11];
    char attempts[16], delay[24];
    char *hex = NULL;
    db_stmt_t st;
    if (!mail_queue_stmt(app, m, params, attempts, delay, &hex, &st)) {
        log_error("mail (%s) not queued: out of memory", m->kind);
        return false;
    }
    PGresult *res = NULL;
    db_error_t err;
    db_status_t rc = db_run(&mail_caller, &st, 1, &res, &err);
    free(hex);
    PQclear(res);
    if (rc != DB_OK) {
        /* the message itself is never logged: it may hold a live token */
        log_error("mail (%s) not queued: %s (SQLSTATE %s)", m->kind, err.message, err.sqlstate);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------- the job */

/* Decodes bytea's hex output ("\x...") in place; returns the length. */
static size_t unhex_in_place(char *s)
{
    if (s[0] != '\\' || s[1] != 'x')
        return 0;
    size_t n = 0;
    for (const char *p = s + 2; p[0] && p[1]; p += 2) {
        int hi = cd_hex_value((unsigned char)p[0]), lo = cd_hex_value((unsigned char)p[1]);
        if (hi < 0 || lo < 0)
            break;
        s[n++] = (char)(hi * 16 + lo);
    }
    return n;
}

static const char *cell(const PGresult *r, int col)
{
    return PQgetisnull(r, 0, col) ? NULL : PQgetvalue(r, 0, col);
}

/* Ends the attempt on the row; false when the database did not take it. */
static bool finish(job_ctx_t *ctx, const char *id, const char *outcome, const char *error)
{
    const char *p[3] = {id, outcome, error};
    PGresult *res = NULL;
    db_error_t err;
    db_status_t rc = db_run1(job_conn(ctx), &mail_caller,
                             "select jobs.mail_finish($1::bigint, $2, $3)", 3, p, &res, &err);
    PQclear(res);
    if (rc != DB_OK)
        job_set_error(ctx, "mail %s: outcome %s not recorded: %s", id, outcome, err.message);
    return rc == DB_OK;
}

/* Sends the claimed row r (mail_claim's columns); returns the job's result. */
static job_result_t deliver(job_ctx_t *ctx, const job_t *job, const char *id, PGresult *r)
{
    const app_t *app = job_app(ctx);
    char *att = PQgetisnull(r, 0, 7) ? NULL : PQgetvalue(r, 0, 7);
    size_t att_len = att ? unhex_in_place(att) : 0;
    smtp_message_t msg = {.from_name = app->cfg.smtp_sender_name,
                          .from = app->cfg.smtp_admin_email,
                          .to = cell(r, 1),
                          .subject = cell(r, 2),
                          .text = cell(r, 3),
                          .html = cell(r, 4),
                          .attachment_name = cell(r, 5),
                          .attachment_type = cell(r, 6),
                          .attachment = att,
                          .attachment_len = att_len};
    char err[512] = "";
    if (!app->cfg.smtp_url[0]) {
        snprintf(err, sizeof(err), "SMTP_URL is not set");
    } else if (!smtp_address_ok(msg.to) || !smtp_address_ok(msg.from)) {
        snprintf(err, sizeof(err), "unsafe sender or recipient address");
    } else if (smtp_send(app->cfg.smtp_url, &msg, MAIL_SMTP_TIMEOUT_S, err, sizeof(err))) {
        log_info("mail %s sent (job %lld, attempt %d)", id, job->id, job->attempt);
        /* not recorded: the row stays 'sending' and the next attempt records
         * it as unknown without sending it again */
        return finish(ctx, id, "sent", NULL) ? JOB_DONE : JOB_RETRY;
    } else {
        /* The provider does not tell a 4xx from a 5xx reply yet: every
         * delivery failure is retried with back-off until the last attempt. */
        bool last = job->attempt >= job->max_attempts;
        log_warn("mail %s not sent (attempt %d of %d): %s", id, job->attempt, job->max_attempts,
                 err);
        job_set_error(ctx, "mail %s: %s", id, err);
        if (!finish(ctx, id, last ? "failed" : "retry", err))
            return JOB_RETRY; /* the row stays 'sending': a new claim calls it unknown */
        return last ? JOB_FAIL : JOB_RETRY;
    }
    /* not sendable at all: a permanent failure */
    log_warn("mail %s not sent: %s", id, err);
    job_set_error(ctx, "mail %s: %s", id, err);
    (void)finish(ctx, id, "failed", err);
    return JOB_FAIL;
}

static job_result_t mail_job(job_ctx_t *ctx, const job_t *job)
{
    json_t *v = json_object_get(job->payload, "mail_id");
    if (!json_is_integer(v) || json_integer_value(v) <= 0) {
        job_set_error(ctx, "payload has no mail_id");
        return JOB_FAIL;
    }
    char id[32];
    snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(v));
    const char *p[1] = {id};
    PGresult *res = NULL;
    db_error_t err;
    db_status_t rc = db_run1(job_conn(ctx), &mail_caller,
                             "select outcome, recipient, subject, body_text, body_html,"
                             " attachment_name, attachment_type, attachment, attempts"
                             " from jobs.mail_claim($1::bigint)",
                             1, p, &res, &err);
    if (rc != DB_OK) {
        job_set_error(ctx, "mail %s: claim failed: %s", id, err.message);
        return JOB_RETRY;
    }
    job_result_t out = JOB_DONE;
    const char *outcome = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "gone";
    if (strcmp(outcome, "send") == 0) {
        out = deliver(ctx, job, id, res);
    } else if (strcmp(outcome, "unknown") == 0) {
        log_warn("mail %s: its sender stopped mid-delivery; not sent again (at most once)", id);
        job_set_error(ctx, "mail %s: delivery state unknown, not sent again", id);
        out = JOB_FAIL;
    }
    PQclear(res);
    return out;
}

bool mail_register_jobs(void)
{
    return jobs_register(MAIL_JOB_KIND, mail_job);
}
