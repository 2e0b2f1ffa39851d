/*
 * The retention job, which runs on the job queue (queue.h) as the recurring
 * kind "retention": it purges audit log rows older than
 * app_settings.data_retention_days, old sign-in attempts (SEED-NOTES item 13),
 * abandoned PKCE flows and finished jobs older than JOB_KEEP_DAYS, every RETENTION_INTERVAL
 * seconds. The queue runs it once at a time whatever the number of campaignd
 * processes; each run also takes a transaction-scoped advisory lock, so a run
 * started by hand (jobs_retention_run_once) never overlaps it.
 */
#ifndef CD_JOBS_H
#define CD_JOBS_H

#include "app.h"
#include "core/common.h"
#include "db/db.h"

/* The advisory lock key of the retention job (pg_try_advisory_xact_lock). */
#define JOBS_RETENTION_LOCK_KEY 7163429801264001LL
/* Statement timeout of one retention run, in milliseconds: purges of a large
 * backlog may take longer than a request may. */
#define JOBS_RETENTION_TIMEOUT_MS 600000L
/* The job kind. */
#define JOBS_RETENTION_KIND "retention"

/* What one run did. */
typedef struct jobs_retention_result {
    bool ran;                   /* false: another run held the lock */
    long retention_days;        /* app_settings.data_retention_days */
    long long audit_removed;    /* rows deleted from public.audit_logs */
    long long attempts_removed; /* rows deleted from auth.login_attempts */
    long long jobs_removed;     /* finished jobs deleted from jobs.jobs */
    long long flows_removed;    /* abandoned PKCE flows deleted from auth.flow_state */
} jobs_retention_result_t;

/* Runs the purge once on the calling thread's database connection
 * (db_thread_conn) as service_role. Sign-in attempts are kept for
 * data_retention_days but never less than login_window_s (the lock-out
 * window needs them); finished jobs for job_keep_days; PKCE flows (they
 * cannot be completed any more) for flow_lifetime_s. Returns DB_OK with
 * *out filled, or the failure (err says why). db_configure must have been
 * called. */
CD_MUSTCHECK db_status_t jobs_retention_run_once(long login_window_s, long job_keep_days,
                                                 long flow_lifetime_s, jobs_retention_result_t *out,
                                                 db_error_t *err);

/* Registers the recurring retention job with the queue (every
 * app->cfg.retention_interval seconds; 0 disables it and registers nothing).
 * Call before jobs_start(). */
CD_MUSTCHECK bool jobs_retention_register(const app_t *app);

#endif
