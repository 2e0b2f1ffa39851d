/*
 * Background jobs that run inside `campaignd serve`. Today: the retention
 * job, which purges audit log rows older than app_settings.data_retention_days
 * and old sign-in attempts (SEED-NOTES item 13), every RETENTION_INTERVAL
 * seconds, on its own database connection as service_role. Several campaignd
 * processes may share one database: each run takes a transaction-scoped
 * advisory lock and skips when another process holds it.
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

typedef struct jobs_retention jobs_retention_t;

/* What one run did. */
typedef struct jobs_retention_result {
    bool ran;                   /* false: another process held the lock */
    long retention_days;        /* app_settings.data_retention_days */
    long long audit_removed;    /* rows deleted from public.audit_logs */
    long long attempts_removed; /* rows deleted from auth.login_attempts */
} jobs_retention_result_t;

/* Runs the purge once on the calling thread's database connection
 * (db_thread_conn) as service_role. Sign-in attempts are kept for
 * data_retention_days but never less than login_window_s (the lock-out
 * window needs them). Returns DB_OK with *out filled, or the failure (err
 * says why). db_configure must have been called. */
CD_MUSTCHECK db_status_t jobs_retention_run_once(long login_window_s, jobs_retention_result_t *out,
                                                 db_error_t *err);

/* Starts the retention thread: a first run right away, then one every
 * app->cfg.retention_interval seconds (0 disables the job: *out = NULL and
 * true). A failed run (database down, any error) is logged and retried at
 * the next round. Returns false (and logs) when the thread cannot start. */
CD_MUSTCHECK bool jobs_retention_start(const app_t *app, jobs_retention_t **out);
/* Stops the thread promptly: wakes it, cancels a purge in progress (its
 * transaction rolls back; the next run redoes it), joins it and frees r.
 * NULL is a no-op. */
void jobs_retention_stop(jobs_retention_t *r);

#endif
