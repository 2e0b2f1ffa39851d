/*
 * The retention job: every RETENTION_INTERVAL seconds, purges audit log rows
 * older than app_settings.data_retention_days (public.purge_audit_logs), old
 * sign-in attempts (auth.purge_login_attempts) and finished jobs older than
 * JOB_KEEP_DAYS (jobs.purge_finished), with the outbox rows of finished mail
 * (jobs.purge_mail_outbox, migration 031), and the PKCE flows nobody can
 * complete any more (auth.purge_flow_states, migration 040). It is a recurring kind of the job
 * queue, so one run happens at a time across every campaignd process and a
 * failed run is retried with back-off. One transaction per run, as
 * service_role, on the worker's connection; the transaction-scoped advisory
 * lock also keeps a run started by hand from overlapping the job.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "jobs/jobs.h"
#include "jobs/queue.h"

/* Sign-in attempts are kept as long as audit rows, but never less than the
 * lock-out window, and the count of seconds must fit purge_login_attempts'
 * integer argument. */
static const char RUN_SQL[] =
    "with lock as materialized (select pg_try_advisory_xact_lock($1::bigint) as got) "
    "select a.data_retention_days, public.purge_audit_logs(a.data_retention_days),"
    "  auth.purge_login_attempts(least(greatest(a.data_retention_days::bigint * 86400,"
    "    $2::bigint), 2147483647)::integer),"
    "  jobs.purge_finished(make_interval(days => $3::integer)),"
    "  jobs.purge_mail_outbox(make_interval(days => $3::integer)),"
    "  auth.purge_flow_states(least($4::bigint, 2147483647)::integer) "
    "from lock, public.app_settings a where lock.got";

db_status_t jobs_retention_run_once(long login_window_s, long job_keep_days, long flow_lifetime_s,
                                    jobs_retention_result_t *out, db_error_t *err)
{
    memset(out, 0, sizeof(*out));
    char key[32], window[32], keep[32], timeout[32], flows[32];
    snprintf(key, sizeof(key), "%lld", JOBS_RETENTION_LOCK_KEY);
    snprintf(window, sizeof(window), "%ld", login_window_s);
    snprintf(keep, sizeof(keep), "%ld", job_keep_days);
    snprintf(timeout, sizeof(timeout), "%ld", JOBS_RETENTION_TIMEOUT_MS);
    snprintf(flows, sizeof(flows), "%ld", flow_lifetime_s);
    const char *p_timeout[1] = {timeout};
    const char *p_run[4] = {key, window, keep, flows};
    db_stmt_t stmts[2] = {
        {"select set_config('statement_timeout', $1, true)", 1, p_timeout},
        {RUN_SQL, 4, p_run},
    };
    db_caller_t who = {
        .role = "service_role",
        .claims_json = "{\"role\":\"service_role\"}",
        .method = "JOB",
        .path = "retention",
        .headers_json = "{}",
    };
    PGresult *res[2] = {NULL, NULL};
    db_status_t st = db_run(&who, stmts, 2, res, err);
    if (st == DB_OK && PQntuples(res[1]) == 1) {
        out->ran = true;
        out->retention_days = strtol(PQgetvalue(res[1], 0, 0), NULL, 10);
        out->audit_removed = strtoll(PQgetvalue(res[1], 0, 1), NULL, 10);
        out->attempts_removed = strtoll(PQgetvalue(res[1], 0, 2), NULL, 10);
        out->jobs_removed = strtoll(PQgetvalue(res[1], 0, 3), NULL, 10);
        out->flows_removed = strtoll(PQgetvalue(res[1], 0, 5), NULL, 10);
    }
    PQclear(res[0]);
    PQclear(res[1]);
    return st;
}

/* The queue's handler: one purge; a failure is retried by the queue. */
static job_result_t retention_job(job_ctx_t *ctx, const job_t *job)
{
    const app_t *app = job_app(ctx);
    jobs_retention_result_t res;
    db_error_t err;
    db_status_t st = jobs_retention_run_once(app->cfg.login_window_seconds, app->cfg.job_keep_days,
                                             config_flow_lifetime_seconds(&app->cfg), &res, &err);
    if (st != DB_OK) {
        job_set_error(ctx, "purge failed: %s (SQLSTATE %s)", err.message, err.sqlstate);
        return JOB_RETRY;
    }
    if (!res.ran)
        log_debug("retention: a purge started by hand holds the retention lock; skipped");
    else if (res.audit_removed || res.attempts_removed || res.jobs_removed || res.flows_removed)
        log_info("retention: removed %lld audit log row(s) older than %ld day(s), %lld sign-in "
                 "attempt(s), %lld finished job(s) and %lld abandoned PKCE flow(s) (job %lld)",
                 res.audit_removed, res.retention_days, res.attempts_removed, res.jobs_removed,
                 res.flows_removed, job->id);
    else
        log_debug("retention: nothing older than %ld day(s) to remove", res.retention_days);
    return JOB_DONE;
}

bool jobs_retention_register(const app_t *app)
{
    if (app->cfg.retention_interval <= 0) {
        log_info("retention: disabled (RETENTION_INTERVAL=0)");
        return true;
    }
    return jobs_register_recurring(JOBS_RETENTION_KIND, retention_job, app->cfg.retention_interval);
}
