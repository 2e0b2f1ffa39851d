/*
 * Scheduled reports (migration 032). The queue's scheduler pass (queue.c,
 * every JOB_POLL_INTERVAL seconds) turns due schedules into jobs
 * (jobs.enqueue_due_reports); this is their handler:
 *   report.scheduled ({schedule_id, slot}): generates the report AS THE
 *     OWNER (claims {sub: owner}: row-level security and the owner's current
 *     role apply, as in POST /api/reports), saves the CSV in the private
 *     "exports" bucket under the owner's folder (storage RLS applies too),
 *     signs a download link (storage's signed URLs: HMAC, expiring, a
 *     tampered token is refused by /storage/v1) and, in ONE transaction,
 *     queues one mail.send per recipient with the CSV attached and records
 *     the slot as run — so a retried job never mails twice. A schedule with
 *     attachment_format 'pdf' (migration 044) saves, links and attaches the
 *     PDF of the report instead (reports_pdf.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/api_internal.h"
#include "api/reports_pdf.h"
#include "core/crypto.h"
#include "core/log.h"
#include "jobs/mail.h"
#include "jobs/queue.h"
#include "storage/storage.h"

#define SCHEDULED_KIND "report.scheduled"
/* The mailed download link lasts a week. */
#define REPORT_LINK_SECONDS   (7L * 24 * 3600)
#define REPORT_MAX_RECIPIENTS 20

static const db_caller_t service = {
    .role = "service_role",
    .claims_json = "{\"role\":\"service_role\"}",
    .method = "JOB",
    .path = SCHEDULED_KIND,
    .headers_json = "{}",
};

/* One run's facts (jobs.report_run_info). */
typedef struct run {
    const char *schedule_id, *slot;
    char owner[CD_UUID_LEN + 1];
    char *name, *type, *from, *to;
    json_t *emails; /* array of strings */
    bool pdf;       /* attachment_format 'pdf' */
    char claims[128];
    db_caller_t who; /* the owner */
} run_t;

static void run_free(run_t *r)
{
    free(r->name);
    free(r->type);
    free(r->from);
    free(r->to);
    json_decref(r->emails);
}

/* Loads the run; JOB_DONE with *skip when there is nothing to do. */
static job_result_t load_run(job_ctx_t *ctx, run_t *r, bool *skip)
{
    const char *p[2] = {r->schedule_id, r->slot};
    PGresult *res = NULL;
    db_error_t err;
    *skip = false;
    if (db_run1(job_conn(ctx), &service,
                "select user_id::text, name, report_type, period_from::text, period_to::text,"
                " to_json(emails)::text, (select s.attachment_format = 'pdf' from"
                " public.report_schedules s where s.id = $1::uuid)"
                " from jobs.report_run_info($1::uuid, $2::timestamptz)",
                2, p, &res, &err) != DB_OK) {
        job_set_error(ctx, "schedule %s: %s", r->schedule_id, err.message);
        return err.sqlstate[0] == '2' ? JOB_FAIL : JOB_RETRY; /* 22xxx: a bad payload */
    }
    if (PQntuples(res) != 1) {
        *skip = true; /* gone, disabled, or this slot already ran */
        PQclear(res);
        return JOB_DONE;
    }
    snprintf(r->owner, sizeof(r->owner), "%s", PQgetvalue(res, 0, 0));
    r->name = strdup(PQgetvalue(res, 0, 1));
    r->type = strdup(PQgetvalue(res, 0, 2));
    r->from = strdup(PQgetvalue(res, 0, 3));
    r->to = strdup(PQgetvalue(res, 0, 4));
    r->emails = json_loads(PQgetvalue(res, 0, 5), 0, NULL);
    r->pdf = strcmp(PQgetvalue(res, 0, 6), "t") == 0;
    PQclear(res);
    if (!r->name || !r->type || !r->from || !r->to || !json_is_array(r->emails))
        return JOB_RETRY;
    snprintf(r->claims, sizeof(r->claims), "{\"sub\":\"%s\",\"role\":\"authenticated\"}", r->owner);
    r->who = (db_caller_t){.role = "authenticated",
                           .claims_json = r->claims,
                           .method = "JOB",
                           .path = SCHEDULED_KIND,
                           .headers_json = "{}"};
    return JOB_DONE;
}

/* Records a failure on the schedule (best effort) and returns result. */
static job_result_t fail_run(job_ctx_t *ctx, const run_t *r, job_result_t result, const char *why)
{
    const char *p[2] = {r->schedule_id, why};
    PGresult *res = NULL;
    db_error_t err;
    if (db_run1(
            job_conn(ctx), &service,
            "update public.report_schedules set last_error = left($2, 2000) where id = $1::uuid", 2,
            p, &res, &err) != DB_OK)
        log_warn("schedule %s: failure not recorded: %s", r->schedule_id, err.message);
    PQclear(res);
    job_set_error(ctx, "schedule %s: %s", r->schedule_id, why);
    return result;
}

char *api__report_mail_text(const char *name, const char *type, const char *from, const char *to,
                            const char *format, const char *url)
{
    const char *title = api_report_type_title(type);
    cd_buf_t b;
    cd_buf_init(&b, 16384);
    bool ok = title && cd_buf_printf(&b,
                                     "%s\r\n\r\n%s, %s to %s.\r\n\r\nThe report is attached "
                                     "as %s. Download it (the link is valid for 7 days):\r\n"
                                     "%s\r\n",
                                     name, title, from, to, format, url);
    if (!ok) {
        cd_buf_free(&b);
        return NULL;
    }
    return cd_buf_take(&b);
}

/* Queues one mail per recipient and marks the slot as run: one transaction. */
static job_result_t queue_mails(job_ctx_t *ctx, const run_t *r, const char *report_id,
                                const cd_buf_t *file_data, const char *url)
{
    const app_t *app = job_app(ctx);
    size_t n = json_array_size(r->emails);
    if (n > REPORT_MAX_RECIPIENTS)
        n = REPORT_MAX_RECIPIENTS;
    char subject[300], file[API_FILENAME_MAX], prefix[32];
    snprintf(subject, sizeof(subject), "%s (%s to %s)", r->name, r->from, r->to);
    snprintf(prefix, sizeof(prefix), "report-%.10s", r->to);
    api__safe_filename(prefix, r->name, r->pdf ? "pdf" : "csv", file, sizeof(file));
    char *text =
        api__report_mail_text(r->name, r->type, r->from, r->to, r->pdf ? "PDF" : "CSV", url);
    if (!text)
        return JOB_RETRY;
    db_stmt_t st[REPORT_MAX_RECIPIENTS + 1];
    const char *params[REPORT_MAX_RECIPIENTS][11];
    char attempts[REPORT_MAX_RECIPIENTS][16], delay[REPORT_MAX_RECIPIENTS][24];
    char *hex[REPORT_MAX_RECIPIENTS] = {0};
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        mail_item_t m = {.purpose = "report",
                         .kind = "report.scheduled",
                         .to = json_string_value(json_array_get(r->emails, i)),
                         .subject = subject,
                         .text = text,
                         .attachment_name = file,
                         .attachment_type = r->pdf ? "application/pdf" : "text/csv",
                         .attachment = file_data->data ? file_data->data : "",
                         .attachment_len = file_data->len};
        ok = m.to && mail_queue_stmt(app, &m, params[i], attempts[i], delay[i], &hex[i], &st[i]);
    }
    const char *pd[3] = {r->schedule_id, r->slot, report_id};
    st[n] = (db_stmt_t){"update public.report_schedules set last_run_at = $2::timestamptz,"
                        " last_report_id = $3::uuid, last_error = null where id = $1::uuid",
                        3, pd};
    PGresult *res[REPORT_MAX_RECIPIENTS + 1] = {0};
    db_error_t err;
    db_status_t rc = ok ? db_run_as(job_conn(ctx), &service, st, n + 1, res, &err) : DB_SQL_ERROR;
    for (size_t i = 0; i <= n; i++)
        PQclear(res[i]);
    for (size_t i = 0; i < n; i++)
        free(hex[i]);
    free(text);
    if (!ok)
        return JOB_RETRY;
    if (rc != DB_OK)
        return fail_run(ctx, r, JOB_RETRY, err.message);
    log_info("reports: schedule %s mailed report %s to %zu recipient(s)", r->schedule_id, report_id,
             n);
    return JOB_DONE;
}

/* Generates, saves and signs; then queue_mails. */
static job_result_t run_report(job_ctx_t *ctx, run_t *r)
{
    const app_t *app = job_app(ctx);
    char *row = NULL, *report_id = NULL;
    db_error_t err;
    api_report_status_t st =
        api_report_generate(&r->who, r->type, r->name, r->from, r->to, &row, &report_id, &err);
    free(row);
    if (st == API_REPORT_DENIED)
        return fail_run(ctx, r, JOB_FAIL, "the owner may no longer generate reports");
    if (st != API_REPORT_OK)
        return fail_run(ctx, r, st == API_REPORT_UNAVAILABLE ? JOB_RETRY : JOB_FAIL,
                        "the report could not be generated");
    cd_buf_t csv;
    cd_buf_init(&csv, API_EXPORT_MAX_BYTES);
    job_result_t out = JOB_RETRY;
    char path[160], url[2048];
    snprintf(path, sizeof(path), "%s/reports/%s.%s", r->owner, report_id, r->pdf ? "pdf" : "csv");
    st = r->pdf ? api__report_pdf(&r->who, report_id, &csv, &err)
                : api_report_csv(&r->who, report_id, &csv, &err);
    if (st != API_REPORT_OK) {
        out = fail_run(ctx, r, st == API_REPORT_TOO_LARGE ? JOB_FAIL : JOB_RETRY,
                       r->pdf ? "the report's PDF could not be drawn"
                              : "the report's CSV could not be written");
    } else if (storage_put_bytes(app, &r->who, r->owner, "exports", path,
                                 r->pdf ? "application/pdf" : "text/csv; charset=utf-8",
                                 csv.data ? csv.data : "", csv.len, true, NULL) != STORAGE_OK) {
        out = fail_run(ctx, r, JOB_RETRY, "the file could not be saved in the exports bucket");
    } else if (!storage_signed_url(app, "exports", path, REPORT_LINK_SECONDS, true, url,
                                   sizeof(url))) {
        out = fail_run(ctx, r, JOB_FAIL, "the download link could not be signed");
    } else {
        out = queue_mails(ctx, r, report_id, &csv, url);
    }
    cd_buf_free(&csv);
    free(report_id);
    return out;
}

static job_result_t scheduled_job(job_ctx_t *ctx, const job_t *job)
{
    run_t r = {0};
    r.schedule_id = json_string_value(json_object_get(job->payload, "schedule_id"));
    r.slot = json_string_value(json_object_get(job->payload, "slot"));
    if (!r.schedule_id || !cd_is_uuid(r.schedule_id) || !r.slot) {
        job_set_error(ctx, "payload needs schedule_id and slot");
        return JOB_FAIL;
    }
    bool skip;
    job_result_t out = load_run(ctx, &r, &skip);
    if (out == JOB_DONE && !skip)
        out = run_report(ctx, &r);
    run_free(&r);
    return out;
}

bool api_report_schedules_register(void)
{
    return jobs_register(SCHEDULED_KIND, scheduled_job);
}
