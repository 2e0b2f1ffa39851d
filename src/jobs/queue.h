/*
 * The job queue: one durable queue in PostgreSQL (table jobs.jobs, migration
 * 020_job_queue.sql) for every background task of campaignd — imports,
 * sends, retention, scheduled reports. Any number of `campaignd serve`
 * processes on one database share it:
 *
 *   - a job is claimed with FOR UPDATE SKIP LOCKED and holds a lease
 *     (leased_until); a job runs at most once at a time;
 *   - a worker killed mid-job (kill -9) stops renewing its lease; when the
 *     lease expires the job is claimed again (attempt + 1), or failed after
 *     max_attempts — never lost, never run twice at once;
 *   - LISTEN/NOTIFY wakes idle workers when a job becomes due.
 *
 * Enqueueing is SQL, so that it commits with the rows that ask for it:
 *
 *   jobs.enqueue(kind text, payload jsonb,
 *                run_at timestamptz default now(),
 *                dedupe_key text default null,
 *                max_attempts int default 3,
 *                retry_delay interval default '1 minute') returns bigint
 *
 * (schema `jobs` is private: service_role and SECURITY DEFINER functions
 * owned by the database owner may call it; API roles may not). A dedupe_key
 * that names a job still pending or running returns that job's id instead of
 * adding a second one. C code running as service_role may call it through
 * db_run_as like any statement.
 *
 * This header is the contract between the queue (src/jobs/) and the engines
 * that put work on it (src/importer/, later src/messaging/).
 */
#ifndef CD_JOBS_QUEUE_H
#define CD_JOBS_QUEUE_H

#include <jansson.h>

#include "app.h"
#include "core/common.h"
#include "db/db.h"

/* One claimed job, as a handler sees it. Everything is borrowed for the
 * duration of the handler call. */
typedef struct job {
    long long id;
    const char *kind; /* e.g. "import.sync", "retention" */
    const json_t *payload;
    int attempt; /* 1 on the first run */
    int max_attempts;
} job_t;

/* What a handler tells the queue. */
typedef enum job_result {
    JOB_DONE = 0, /* finished: the job row is marked done */
    JOB_RETRY,    /* temporary failure: run again after retry_delay (with
                     back-off), or fail once max_attempts is reached */
    JOB_FAIL,     /* permanent failure: marked failed now, never retried */
} job_result_t;

typedef struct job_ctx job_ctx_t;

/* A handler runs on a worker thread. It may take as long as it needs, but
 * must call job_heartbeat() at least every JOBS_LEASE_SECONDS / 3 seconds
 * and stop (returning JOB_RETRY, without committing anything it would not
 * want committed twice) when job_heartbeat() returns false. */
typedef job_result_t (*job_handler_fn)(job_ctx_t *ctx, const job_t *job);

/* A lease lasts this long without a heartbeat. */
#define JOBS_LEASE_SECONDS 30

/* Registers the handler of a kind. Call before jobs_start(); registering a
 * kind twice, or more than the queue's fixed number of kinds, is a bug. */
CD_MUSTCHECK bool jobs_register(const char *kind, job_handler_fn fn);

/* The worker thread's own database connection (db_run_as with any caller;
 * jobs usually run as service_role). A handler that needs a second
 * connection (COPY streaming while the first reports progress) opens its own. */
db_conn_t *job_conn(job_ctx_t *ctx);

/* The application (configuration, data directory) the worker belongs to. */
const app_t *job_app(const job_ctx_t *ctx);

/* Renews the lease. Returns false when the lease was lost (the job was taken
 * over after a stall) or the process is shutting down: the handler must
 * stop soon. Cheap to call often (it talks to the database at most once a
 * second). */
CD_MUSTCHECK bool job_heartbeat(job_ctx_t *ctx);

/* True once the process is shutting down (no database round trip). */
bool job_stopping(const job_ctx_t *ctx);

/* Records why the run failed (stored in jobs.jobs.last_error, shown in logs).
 * The last call before the handler returns wins. */
void job_set_error(job_ctx_t *ctx, const char *fmt, ...) CD_PRINTF(2, 3);

typedef struct jobs jobs_t;

/* Starts app->cfg.job_workers worker threads and the scheduler. Returns
 * false (and logs) when they cannot start. */
CD_MUSTCHECK bool jobs_start(const app_t *app, jobs_t **out);
/* Stops promptly: wakes the workers, lets running handlers see
 * job_heartbeat() == false, joins the threads and frees j. NULL is a no-op. */
void jobs_stop(jobs_t *j);

#endif
