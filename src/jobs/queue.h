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
    /* A kind registered with jobs_register_begin: whether its begin
     * expression ran in the claim's transaction (false when the claim fell
     * back to one without it), and its value (NULL for SQL NULL). */
    bool begun_run;
    const char *begun;
} job_t;

/* What a handler tells the queue. */
typedef enum job_result {
    JOB_DONE = 0, /* finished: the job row is marked done */
    JOB_RETRY,    /* temporary failure: run again after retry_delay (with
                     back-off), or fail once max_attempts is reached */
    JOB_FAIL,     /* permanent failure: marked failed now, never retried */
} job_result_t;

typedef struct job_ctx job_ctx_t;

/* A handler runs on a worker thread. It may take as long as it needs: the
 * process's keeper thread renews the leases of every job the process runs
 * (every lease / 3 seconds), so a handler blocked in one long statement keeps
 * its job. A handler should still call job_heartbeat() between steps and stop
 * (returning JOB_RETRY, without committing anything it would not want
 * committed twice) when it returns false: the lease was lost (the process
 * could not reach the database for a whole lease period, or the job was taken
 * over) or the process is shutting down. At shutdown, a running statement on
 * job_conn() is cancelled and a JOB_RETRY releases the job without counting
 * the attempt. */
typedef job_result_t (*job_handler_fn)(job_ctx_t *ctx, const job_t *job);

/* A lease lasts this long without renewal, by default (setting
 * JOB_LEASE_SECONDS). */
#define JOBS_LEASE_SECONDS 30

/* Registers the handler of a kind. Call before jobs_start(); registering a
 * kind twice, or more than the queue's fixed number of kinds, is a bug.
 * Kinds match ^[a-z][a-z0-9_.]{0,62}$. A process claims only the kinds it has
 * registered. */
CD_MUSTCHECK bool jobs_register(const char *kind, job_handler_fn fn);

/* Registers a recurring kind: the queue keeps exactly one pending or running
 * job of it (dedupe key = the kind), whatever the number of processes:
 * enqueued at start if missing, enqueued again interval_s seconds after each
 * success in the transaction that records it, and interval_s after the
 * keeper notices it missing (after a final failure). Payload {}. */
CD_MUSTCHECK bool jobs_register_recurring(const char *kind, job_handler_fn fn, long interval_s);

/* Registers a kind like jobs_register, with the first step of its handler
 * run in the claim's own transaction: begin_sql is an SQL expression over the
 * claimed row `c` (c.id, c.kind, c.payload, c.attempts, c.max_attempts), a
 * constant string of the caller's, evaluated as the worker's role. It commits
 * with the claim: one transaction (and one flushed commit) less per job. Its
 * value reaches the handler as job->begun. When it raises, the claim is
 * rolled back and made again without it (job->begun_run false): the handler
 * then runs its first step itself and reports the error as it would. */
CD_MUSTCHECK bool jobs_register_begin(const char *kind, job_handler_fn fn, const char *begin_sql);

/* Tests only: forgets every registration. */
void jobs__reset_registry(void);
/* Tests only: the claim with the registered begin steps (malloc'd), or NULL
 * when no kind has one. */
char *jobs__claim_begin_sql(void);

/* The worker thread's own database connection (db_run_as with any caller;
 * jobs usually run as service_role; each transaction gets DB_STATEMENT_TIMEOUT
 * unless it sets its own with set_config('statement_timeout', ..., true)). A
 * handler that needs a second connection (COPY streaming while the first
 * reports progress) opens its own; only this one is cancelled at shutdown. */
db_conn_t *job_conn(job_ctx_t *ctx);

/* The application (configuration, data directory) the worker belongs to. */
const app_t *job_app(const job_ctx_t *ctx);

/* Returns false when the lease was lost (not confirmed by the keeper for a
 * whole lease period, or taken over) or the process is shutting down: the
 * handler must stop soon. Cheap to call often (no database round trip). */
CD_MUSTCHECK bool job_heartbeat(job_ctx_t *ctx);

/* True once the process is shutting down (no database round trip). */
bool job_stopping(const job_ctx_t *ctx);

/* Records why the run failed (stored in jobs.jobs.last_error, shown in logs).
 * The last call before the handler returns wins. */
void job_set_error(job_ctx_t *ctx, const char *fmt, ...) CD_PRINTF(2, 3);

typedef struct jobs jobs_t;

/* Starts app->cfg.job_workers worker threads (0: one per CPU) and the keeper
 * thread (wake-ups, lease renewal, the scheduler's pass every
 * JOB_POLL_INTERVAL seconds). With JOBS_ENABLED=false or no kind registered
 * it starts nothing (*out = NULL). Returns false (and logs) when they cannot start. */
CD_MUSTCHECK bool jobs_start(const app_t *app, jobs_t **out);

/* Stops promptly: wakes the workers, cancels the statement running on each
 * busy worker's job_conn(), lets running handlers see job_heartbeat() ==
 * false, joins the threads and frees j. NULL is a no-op. */
void jobs_stop(jobs_t *j);

#endif
