/*
 * The job queue's runtime: worker threads that claim jobs from jobs.jobs
 * (migrations/020_job_queue.sql) and run the registered handlers, and one
 * keeper thread per process that
 *   - LISTENs on campaignd_jobs and wakes idle workers when a job is added,
 *   - renews the leases of the jobs this process runs (every lease / 3 s),
 *   - runs the scheduler's pass (jobs.enqueue_due_syncs and
 *     jobs.enqueue_due_reports) and keeps one job of every recurring kind in
 *     the queue, every JOB_POLL_INTERVAL seconds.
 *
 * Why the keeper renews leases rather than each handler: a lease says "the
 * process running this job is alive". A handler blocked in one long statement
 * (an index build over a million imported rows, a purge waiting for a lock)
 * cannot heartbeat, and a lease lost there would let a second process run the
 * same job at the same time. Renewed by the keeper, a lease is lost only when
 * the process dies or loses the database; job_heartbeat() then tells the
 * handler to stop. Worker connections also set client_connection_check_interval,
 * so the statements of a process killed mid-job are cancelled by PostgreSQL
 * instead of running on (and committing) after its lease expired.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime, pthread_condattr_setclock */
#endif
#include "jobs/queue.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/log.h"

#define JOBS_MAX_KINDS     32
#define JOBS_KIND_MAX      64
#define JOBS_MAX_WORKERS   256
#define JOBS_CHANNEL       "campaignd_jobs"
#define JOBS_ERROR_MAX     2000
#define JOBS_WORKER_ID_MAX 96
#define JOBS_IDLE_POLLS    5 /* an idle worker's own timer, in poll intervals */

/* The handlers, registered before jobs_start() (from main, single-threaded);
 * read-only while the queue runs. */
typedef struct job_kind {
    char name[JOBS_KIND_MAX];
    job_handler_fn fn;
    long recur_s;          /* > 0: a recurring kind, re-run this many seconds after success */
    const char *begin_sql; /* jobs_register_begin's expression, else NULL */
} job_kind_t;
static job_kind_t kinds[JOBS_MAX_KINDS];
static size_t nkinds;

struct job_ctx {
    jobs_t *q;
    char worker_id[JOBS_WORKER_ID_MAX];
    pthread_t thread;
    bool started;
    /* The fields below are under q->mu. */
    long long running_id;    /* 0 while idle */
    bool lost;               /* the keeper found the lease gone */
    struct timespec renewed; /* when the lease was last known good */
    PGcancel *cancel;        /* cancels the handler's statement at shutdown */
    /* The handler's own. */
    char error[JOBS_ERROR_MAX + 1];
    int pid_seen; /* the backend prepare_conn set up; the worker thread's */
};

struct jobs {
    const app_t *app;
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* workers wait here; CLOCK_MONOTONIC */
    pthread_cond_t keeper_cv; /* the keeper waits here when the database is down */
    bool stopping;            /* under mu */
    unsigned long wake_seq;   /* under mu: bumped by each wake-up */
    long lease_s;
    long poll_s;
    size_t nworkers;
    job_ctx_t *workers;
    pthread_t keeper;
    bool keeper_started;
    char kinds_literal[JOBS_MAX_KINDS * (JOBS_KIND_MAX + 3) + 3]; /* text[] of kinds */
    char workers_literal[JOBS_MAX_WORKERS * (JOBS_WORKER_ID_MAX + 3) + 3];
    char *claim_begin_sql; /* the claim with the kinds' begin steps; NULL: none */
};

static const db_caller_t service_caller = {
    .role = "service_role",
    .claims_json = "{\"role\":\"service_role\"}",
    .method = "JOB",
    .path = "jobs",
    .headers_json = "{}",
};

/* ---------------------------------------------------------------- registry */

static bool kind_name_valid(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n >= JOBS_KIND_MAX || k[0] < 'a' || k[0] > 'z')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = k[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.'))
            return false;
    }
    return true;
}

static bool register_kind(const char *kind, job_handler_fn fn, long recur_s, const char *begin)
{
    if (!kind || !fn || !kind_name_valid(kind)) {
        log_error("jobs: invalid job kind registration");
        return false;
    }
    for (size_t i = 0; i < nkinds; i++)
        if (strcmp(kinds[i].name, kind) == 0) {
            log_error("jobs: kind %s registered twice", kind);
            return false;
        }
    if (nkinds == JOBS_MAX_KINDS) {
        log_error("jobs: too many job kinds (at most %d)", JOBS_MAX_KINDS);
        return false;
    }
    snprintf(kinds[nkinds].name, sizeof(kinds[nkinds].name), "%s", kind);
    kinds[nkinds].fn = fn;
    kinds[nkinds].recur_s = recur_s;
    kinds[nkinds].begin_sql = begin;
    nkinds++;
    return true;
}

bool jobs_register(const char *kind, job_handler_fn fn)
{
    return register_kind(kind, fn, 0, NULL);
}

bool jobs_register_begin(const char *kind, job_handler_fn fn, const char *begin_sql)
{
    if (!begin_sql || !*begin_sql) {
        log_error("jobs: kind %s registered with an empty begin expression", kind ? kind : "?");
        return false;
    }
    return register_kind(kind, fn, 0, begin_sql);
}

bool jobs_register_recurring(const char *kind, job_handler_fn fn, long interval_s)
{
    if (interval_s <= 0) {
        log_error("jobs: recurring kind %s needs an interval", kind ? kind : "(null)");
        return false;
    }
    return register_kind(kind, fn, interval_s, NULL);
}

void jobs__reset_registry(void)
{
    memset(kinds, 0, sizeof(kinds));
    nkinds = 0;
}

static const job_kind_t *find_kind(const char *kind)
{
    for (size_t i = 0; i < nkinds; i++)
        if (strcmp(kinds[i].name, kind) == 0)
            return &kinds[i];
    return NULL;
}

/* --------------------------------------------------------------- handler API */

static bool prepare_conn(db_conn_t *c, const char *worker_id, int *pid_seen);

db_conn_t *job_conn(job_ctx_t *ctx)
{
    db_conn_t *c = db_thread_conn(); /* the worker thread's own connection */
    /* A connection the server closed while the handler waited (a provider's
     * answer, a back-off) is replaced by db_thread_conn: the new session gets
     * the worker's settings, and a stop cancels its statements, not the old
     * backend's. */
    if (c && prepare_conn(c, ctx->worker_id, &ctx->pid_seen)) {
        PGcancel *fresh = PQgetCancel(db_pg(c));
        pthread_mutex_lock(&ctx->q->mu);
        PGcancel *old = NULL;
        if (ctx->running_id != 0) {
            old = ctx->cancel;
            ctx->cancel = fresh;
            fresh = NULL;
        }
        pthread_mutex_unlock(&ctx->q->mu);
        PQfreeCancel(old);
        PQfreeCancel(fresh);
    }
    return c;
}

const app_t *job_app(const job_ctx_t *ctx)
{
    return ctx->q->app;
}

static double elapsed_s(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

bool job_heartbeat(job_ctx_t *ctx)
{
    jobs_t *q = ctx->q;
    pthread_mutex_lock(&q->mu);
    /* A lease not confirmed for a whole lease period may have been taken
     * over (the keeper lost the database): stop rather than risk a double run. */
    bool ok = !q->stopping && !ctx->lost && elapsed_s(&ctx->renewed) < (double)q->lease_s;
    pthread_mutex_unlock(&q->mu);
    return ok;
}

bool job_stopping(const job_ctx_t *ctx)
{
    jobs_t *q = ctx->q;
    pthread_mutex_lock(&q->mu);
    bool s = q->stopping;
    pthread_mutex_unlock(&q->mu);
    return s;
}

void job_set_error(job_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->error, sizeof(ctx->error), fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ workers */

/* Waits until woken, stopping, or timeout_s seconds passed. Called with mu
 * held; returns with it held. */
static void wait_locked(jobs_t *q, pthread_cond_t *cv, double timeout_s, unsigned long seen_seq)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    long ms = (long)(timeout_s * 1000.0);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    while (!q->stopping && q->wake_seq == seen_seq) {
        if (pthread_cond_timedwait(cv, &q->mu, &deadline) == ETIMEDOUT)
            break;
    }
}

/* Wakes one idle worker: it claims, and passes the wake-up on to another one
 * only when the claim said more jobs were due (claim_next's `more`). Waking
 * every idle worker made each of them run a claim for a job only one could
 * take. A worker that is claiming at this moment sees wake_seq moved and
 * claims again (or passes it on) rather than sleeping; a busy one claims again
 * when its job is done. */
static void wake_one(jobs_t *q)
{
    pthread_mutex_lock(&q->mu);
    q->wake_seq++;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* Sets the session settings of a worker connection once per connection:
 * PostgreSQL checks every 2 s that the client is still there, so that the
 * statements of a killed process are cancelled rather than committed later;
 * application_name names the worker in pg_stat_activity. True when c is a
 * session it had not set up yet. */
static bool prepare_conn(db_conn_t *c, const char *worker_id, int *pid_seen)
{
    PGconn *pg = db_pg(c);
    int pid = PQbackendPID(pg);
    if (pid == *pid_seen)
        return false;
    char name[JOBS_WORKER_ID_MAX + 32];
    snprintf(name, sizeof(name), "campaignd job %s", worker_id);
    const char *params[1] = {name};
    PGresult *r = PQexecParams(pg,
                               "select set_config('client_connection_check_interval', '2s', false),"
                               " set_config('application_name', $1, false)",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        log_warn("jobs: cannot set up the worker connection: %s", PQerrorMessage(pg));
    PQclear(r);
    *pid_seen = pid;
    return true;
}

#define CLAIM_SELECT "select c.id, c.kind, c.payload::text, c.attempts, c.max_attempts, c.more, "
#define CLAIM_FROM   " from jobs.claim_next($1, $2::text[], $3::integer) c"

/* The claim with the begin steps of the kinds registered with one (column 6:
 * the claimed kind's, as text); NULL when no kind has one. */
static char *claim_begin_sql(void)
{
    size_t n = 0;
    for (size_t i = 0; i < nkinds; i++)
        if (kinds[i].begin_sql)
            n += strlen(kinds[i].begin_sql) + 2 * JOBS_KIND_MAX + 32;
    if (n == 0)
        return NULL;
    n += sizeof(CLAIM_SELECT) + sizeof(CLAIM_FROM) + 32;
    char *sql = malloc(n);
    if (!sql)
        return NULL;
    size_t len = (size_t)snprintf(sql, n, "%scase c.kind", CLAIM_SELECT);
    for (size_t i = 0; i < nkinds; i++)
        if (kinds[i].begin_sql) /* kind names are [a-z0-9_.]: no quoting needed */
            len += (size_t)snprintf(sql + len, n - len, " when '%s' then (%s)::text", kinds[i].name,
                                    kinds[i].begin_sql);
    snprintf(sql + len, n - len, " end%s", CLAIM_FROM);
    return sql;
}

char *jobs__claim_begin_sql(void)
{
    return claim_begin_sql();
}

/* Claims one job (jobs.claim_next, migration 070), with the kinds' begin
 * steps in the same transaction when with_begin. Returns DB_OK with *res
 * holding 0 or 1 rows; column 5 says whether another job was due, column 6
 * is the begin step's value. */
static db_status_t claim(job_ctx_t *w, db_conn_t *c, bool with_begin, PGresult **res,
                         db_error_t *err)
{
    char lease[24];
    snprintf(lease, sizeof(lease), "%ld", w->q->lease_s);
    const char *params[3] = {w->worker_id, w->q->kinds_literal, lease};
    const char *sql = with_begin ? w->q->claim_begin_sql : CLAIM_SELECT "null::text" CLAIM_FROM;
    return db_run1(c, &service_caller, sql, 3, params, res, err);
}

static const char *outcome_name(job_result_t r, bool release)
{
    if (release)
        return "release";
    switch (r) {
    case JOB_DONE:
        return "done";
    case JOB_FAIL:
        return "fail";
    case JOB_RETRY:
    default:
        return "retry";
    }
}

/* Records the outcome; tries a few times when the database is briefly away
 * (if it never answers, the lease expires and the job runs again). */
static void finish(job_ctx_t *w, long long id, int attempt, const job_kind_t *k, job_result_t r)
{
    jobs_t *q = w->q;
    bool release = r == JOB_RETRY && job_stopping(w);
    char sid[24], sattempt[16], recur[24];
    snprintf(sid, sizeof(sid), "%lld", id);
    snprintf(sattempt, sizeof(sattempt), "%d", attempt);
    snprintf(recur, sizeof(recur), "%ld", k ? k->recur_s : 0L);
    const char *params[6] = {
        sid,
        w->worker_id,
        sattempt,
        outcome_name(r, release),
        r == JOB_DONE ? NULL : w->error,
        (r == JOB_DONE && k && k->recur_s > 0) ? recur : NULL,
    };
    for (int tries = 0; tries < 5; tries++) {
        db_conn_t *c = db_thread_conn();
        if (c) {
            PGresult *res = NULL;
            db_error_t err;
            db_status_t st = db_run1(c, &service_caller,
                                     "select jobs.finish($1::bigint, $2, $3::integer, $4, $5, "
                                     "$6::double precision)",
                                     6, params, &res, &err);
            if (st == DB_OK) {
                const char *status = PQgetisnull(res, 0, 0) ? NULL : PQgetvalue(res, 0, 0);
                if (!status)
                    log_warn("jobs: job %lld (%s) was taken over before it finished; its outcome "
                             "is not recorded",
                             id, k ? k->name : "?");
                else if (strcmp(status, "failed") == 0)
                    log_warn("jobs: job %lld (%s) failed after attempt %d: %s", id,
                             k ? k->name : "?", attempt, w->error);
                else if (strcmp(status, "pending") == 0 && !release)
                    log_info("jobs: job %lld (%s) attempt %d failed, will retry: %s", id,
                             k ? k->name : "?", attempt, w->error);
                else
                    log_debug("jobs: job %lld (%s) is %s", id, k ? k->name : "?", status);
                PQclear(res);
                return;
            }
            if (st == DB_SQL_ERROR) {
                log_error("jobs: cannot record the outcome of job %lld: %s (SQLSTATE %s)", id,
                          err.message, err.sqlstate);
                return;
            }
        }
        pthread_mutex_lock(&q->mu);
        wait_locked(q, &q->keeper_cv, 1.0, q->wake_seq);
        pthread_mutex_unlock(&q->mu);
    }
    log_warn("jobs: the database is unreachable; job %lld runs again once its lease expires", id);
}

static void run_one(job_ctx_t *w, db_conn_t *c, PGresult *row, bool with_begin)
{
    jobs_t *q = w->q;
    long long id = strtoll(PQgetvalue(row, 0, 0), NULL, 10);
    const char *kind = PQgetvalue(row, 0, 1);
    int attempt = (int)strtol(PQgetvalue(row, 0, 3), NULL, 10);
    int max_attempts = (int)strtol(PQgetvalue(row, 0, 4), NULL, 10);
    const job_kind_t *k = find_kind(kind);
    json_error_t jerr;
    json_t *payload = json_loads(PQgetvalue(row, 0, 2), 0, &jerr);

    pthread_mutex_lock(&q->mu);
    w->running_id = id;
    w->lost = false;
    clock_gettime(CLOCK_MONOTONIC, &w->renewed);
    w->cancel = PQgetCancel(db_pg(c));
    pthread_mutex_unlock(&q->mu);

    w->error[0] = '\0';
    job_result_t r;
    if (!k) {
        job_set_error(w, "no handler for job kind %s in this process", kind);
        r = JOB_RETRY;
    } else if (!payload) {
        job_set_error(w, "the payload is not JSON: %s", jerr.text);
        r = JOB_FAIL;
    } else {
        log_debug("jobs: running job %lld (%s), attempt %d of %d", id, kind, attempt, max_attempts);
        job_t job = {
            .id = id,
            .kind = k->name,
            .payload = payload,
            .attempt = attempt,
            .max_attempts = max_attempts,
            .begun_run = with_begin && k->begin_sql != NULL,
            .begun = PQgetisnull(row, 0, 6) ? NULL : PQgetvalue(row, 0, 6),
        };
        r = k->fn(w, &job);
        if (r != JOB_DONE && w->error[0] == '\0')
            job_set_error(w, "the %s handler gave up without saying why", k->name);
    }

    pthread_mutex_lock(&q->mu);
    PGcancel *cancel = w->cancel;
    w->cancel = NULL;
    w->running_id = 0;
    pthread_mutex_unlock(&q->mu);
    PQfreeCancel(cancel);
    json_decref(payload);
    finish(w, id, attempt, k, r);
}

static void *worker_main(void *arg)
{
    job_ctx_t *w = arg;
    jobs_t *q = w->q;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        bool stop = q->stopping;
        unsigned long seq = q->wake_seq;
        pthread_mutex_unlock(&q->mu);
        if (stop)
            break;
        db_conn_t *c = db_thread_conn();
        /* The keeper wakes one idle worker every poll interval (due run_at
         * times) and on every notification; a worker's own timer is only a
         * safety net. At one poll interval, every idle worker claimed once
         * per interval on its own besides the keeper's wake-up. */
        double wait_s = (double)q->poll_s * JOBS_IDLE_POLLS;
        if (c) {
            prepare_conn(c, w->worker_id, &w->pid_seen);
            PGresult *res = NULL;
            db_error_t err;
            bool with_begin = q->claim_begin_sql != NULL;
            db_status_t st = claim(w, c, with_begin, &res, &err);
            if (st == DB_SQL_ERROR && with_begin) {
                /* A begin step that raises rolls its claim back: claim
                 * again without it, and the handler meets the error itself
                 * (a retry with back-off rather than a claim in a loop). */
                log_warn("jobs: a claim with a begin step failed: %s (SQLSTATE %s); claiming "
                         "without it",
                         err.message, err.sqlstate);
                PQclear(res);
                res = NULL;
                with_begin = false;
                st = claim(w, c, false, &res, &err);
            }
            if (st == DB_OK && PQntuples(res) == 1) {
                /* More due jobs, or a wake-up during the claim (a job this
                 * claim's snapshot may not have seen): one more worker claims. */
                pthread_mutex_lock(&q->mu);
                bool pass_on = strcmp(PQgetvalue(res, 0, 5), "t") == 0 || q->wake_seq != seq;
                pthread_mutex_unlock(&q->mu);
                if (pass_on)
                    wake_one(q);
                run_one(w, c, res, with_begin);
                /* No claim after the job unless something was announced
                 * meanwhile (or passed on above): the wait below returns at
                 * once when wake_seq moved since this claim began. */
            } else if (st == DB_SQL_ERROR) {
                log_warn("jobs: claiming a job failed: %s (SQLSTATE %s)", err.message,
                         err.sqlstate);
            }
            PQclear(res);
        } else {
            wait_s = (double)db_retry_after();
        }
        pthread_mutex_lock(&q->mu);
        wait_locked(q, &q->cv, wait_s, seq);
        pthread_mutex_unlock(&q->mu);
    }
    db_thread_close();
    return NULL;
}

/* ------------------------------------------------------------------- keeper */

/* Renews the leases of the jobs this process runs; marks lost ones. */
static void renew_leases(jobs_t *q, db_conn_t *c)
{
    long long running[JOBS_MAX_WORKERS];
    size_t n = 0;
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < q->nworkers; i++)
        running[i] = q->workers[i].running_id;
    n = q->nworkers;
    pthread_mutex_unlock(&q->mu);
    bool any = false;
    for (size_t i = 0; i < n; i++)
        any = any || running[i] != 0;
    if (!any)
        return;

    char lease[24];
    snprintf(lease, sizeof(lease), "%ld", q->lease_s);
    const char *params[2] = {q->workers_literal, lease};
    PGresult *res = NULL;
    db_error_t err;
    db_status_t st =
        db_run1(c, &service_caller, "select jobs.renew_leases($1::text[], $2::integer)", 2, params,
                &res, &err);
    if (st != DB_OK) {
        log_warn("jobs: renewing leases failed: %s (SQLSTATE %s)", err.message, err.sqlstate);
        return;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < q->nworkers; i++) {
        job_ctx_t *w = &q->workers[i];
        /* Only a job that was running before the query started can be judged. */
        if (w->running_id == 0 || w->running_id != running[i])
            continue;
        bool held = false;
        for (int r = 0; r < PQntuples(res) && !held; r++)
            held = strtoll(PQgetvalue(res, r, 0), NULL, 10) == w->running_id;
        if (held) {
            w->renewed = now;
        } else if (!w->lost) {
            w->lost = true;
            log_warn("jobs: worker %s lost the lease of job %lld", w->worker_id, w->running_id);
        }
    }
    pthread_mutex_unlock(&q->mu);
    PQclear(res);
}

/* The scheduler's pass, and one job of each recurring kind kept in the queue
 * (run_at: now at start, else one interval from now: after a failure). */
static void tick(db_conn_t *c, bool first)
{
    PGresult *res = NULL;
    db_error_t err;
    /* due syncs (020) and due scheduled reports (032_report_schedules.sql) */
    db_status_t st =
        db_run1(c, &service_caller, "select jobs.enqueue_due_syncs(), jobs.enqueue_due_reports()",
                0, NULL, &res, &err);
    if (st == DB_OK) {
        long n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
        long reports = strtol(PQgetvalue(res, 0, 1), NULL, 10);
        if (n > 0)
            log_info("jobs: scheduler enqueued %ld due sync(s)", n);
        if (reports > 0)
            log_info("jobs: scheduler enqueued %ld scheduled report(s)", reports);
    } else {
        log_warn("jobs: the scheduler's pass failed: %s (SQLSTATE %s)", err.message, err.sqlstate);
    }
    PQclear(res);
    for (size_t i = 0; i < nkinds; i++) {
        if (kinds[i].recur_s <= 0)
            continue;
        char delay[24];
        snprintf(delay, sizeof(delay), "%ld", first ? 0L : kinds[i].recur_s);
        const char *params[2] = {kinds[i].name, delay};
        res = NULL;
        st = db_run1(c, &service_caller,
                     "select jobs.enqueue($1, '{}'::jsonb, "
                     "now() + make_interval(secs => $2::double precision), $1)",
                     2, params, &res, &err);
        if (st != DB_OK)
            log_warn("jobs: cannot enqueue the recurring %s job: %s (SQLSTATE %s)", kinds[i].name,
                     err.message, err.sqlstate);
        PQclear(res);
    }
}

static double mono_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* How many notifications libpq holds for pg; frees them. */
static int drain_notifies(PGconn *pg)
{
    int n = 0;
    PGnotify *e;
    while ((e = PQnotifies(pg)) != NULL) {
        n++;
        PQfreemem(e);
    }
    return n;
}

static void *keeper_main(void *arg)
{
    jobs_t *q = arg;
    PGconn *listening = NULL;
    int listening_pid = 0;
    bool first = true;
    double next_renew = 0, next_tick = 0;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        bool stop = q->stopping;
        pthread_mutex_unlock(&q->mu);
        if (stop)
            break;
        db_conn_t *c = db_thread_conn();
        if (!c) {
            listening = NULL;
            pthread_mutex_lock(&q->mu);
            wait_locked(q, &q->keeper_cv, (double)db_retry_after(), q->wake_seq);
            pthread_mutex_unlock(&q->mu);
            continue;
        }
        PGconn *pg = db_pg(c);
        if (pg != listening || PQbackendPID(pg) != listening_pid) {
            db_error_t err;
            if (!db_exec(pg, "LISTEN " JOBS_CHANNEL, &err)) {
                log_warn("jobs: LISTEN failed: %s", err.message);
            } else {
                listening = pg;
                listening_pid = PQbackendPID(pg);
                wake_one(q); /* jobs added while nobody listened */
            }
        }
        double now = mono_now();
        if (now >= next_renew) {
            renew_leases(q, c);
            next_renew = now + (double)q->lease_s / 3.0;
        }
        if (now >= next_tick) {
            tick(c, first);
            first = false;
            next_tick = now + (double)q->poll_s;
            wake_one(q); /* due run_at times, lost notifications */
        }
        /* A statement above may have found the connection broken: db_run1
         * then closed it, and pg is gone. */
        pg = db_pg(c);
        if (!pg || PQstatus(pg) != CONNECTION_OK) {
            listening = NULL;
            continue;
        }
        /* Notifications that arrived during the statements above, or now.
         * Those libpq read already (db_thread_conn reads what waits on an
         * idle connection) are not on the socket: no wait for more then. */
        int woke = drain_notifies(pg);
        double until = (next_renew < next_tick ? next_renew : next_tick) - mono_now();
        int timeout_ms = woke || until <= 0 ? 0 : until > 0.5 ? 500 : (int)(until * 1000.0);
        struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN};
        if (p.fd >= 0 && poll(&p, 1, timeout_ms) > 0) {
            if (!PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK) {
                /* Let the next statement find the break (db_run1 drops the
                 * connection) instead of polling a dead socket in a loop. */
                log_debug("jobs: the notification connection broke: %s", PQerrorMessage(pg));
                next_tick = 0;
            }
        }
        woke += drain_notifies(pg);
        if (woke)
            wake_one(q); /* one job or several (enqueue_due_syncs): `more` chains */
    }
    db_thread_close();
    return NULL;
}

/* --------------------------------------------------------------- start/stop */

static long default_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > JOBS_MAX_WORKERS ? JOBS_MAX_WORKERS : n;
}

/* Builds a text[] literal {"a","b"} of names that need no escaping (job
 * kinds and worker ids are [A-Za-z0-9_.:#-]); item NULL closes it. */
static bool append_literal(char *out, size_t cap, const char *item)
{
    size_t len = strlen(out);
    int n = item ? snprintf(out + len, cap - len, "%s\"%s\"", len > 1 ? "," : "", item)
                 : snprintf(out + len, cap - len, "}");
    return n > 0 && (size_t)n < cap - len;
}

bool jobs_start(const app_t *app, jobs_t **out)
{
    *out = NULL;
    if (!app->cfg.jobs_enabled) {
        log_info("jobs: disabled (JOBS_ENABLED=false); other processes run the jobs");
        return true;
    }
    if (nkinds == 0) {
        log_info("jobs: no job kinds registered; no workers started");
        return true;
    }
    jobs_t *q = calloc(1, sizeof(*q));
    if (!q)
        return false;
    q->app = app;
    q->lease_s = app->cfg.job_lease_seconds > 0 ? app->cfg.job_lease_seconds : JOBS_LEASE_SECONDS;
    q->poll_s = app->cfg.job_poll_interval > 0 ? app->cfg.job_poll_interval : 5;
    q->nworkers = (size_t)(app->cfg.job_workers > 0 ? app->cfg.job_workers : default_workers());
    if (q->nworkers > JOBS_MAX_WORKERS)
        q->nworkers = JOBS_MAX_WORKERS;

    /* A process token no other process (nor this pid after a restart) shares. */
    char uuid[CD_UUID_LEN + 1], token[13];
    if (!cd_random_uuid(uuid)) {
        free(q);
        return false;
    }
    snprintf(token, sizeof(token), "%.8s%.4s", uuid, uuid + 9);
    char host[40] = "host";
    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "host");
    host[sizeof(host) - 1] = '\0';
    for (char *h = host; *h; h++)
        if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9') ||
              *h == '-' || *h == '.'))
            *h = '_';

    q->kinds_literal[0] = '{';
    q->workers_literal[0] = '{';
    for (size_t i = 0; i < nkinds; i++)
        if (!append_literal(q->kinds_literal, sizeof(q->kinds_literal) - 1, kinds[i].name))
            goto fail_alloc;
    q->workers = calloc(q->nworkers, sizeof(*q->workers));
    if (!q->workers)
        goto fail_alloc;
    for (size_t i = 0; i < nkinds && !q->claim_begin_sql; i++)
        if (kinds[i].begin_sql && !(q->claim_begin_sql = claim_begin_sql()))
            goto fail_alloc;
    for (size_t i = 0; i < q->nworkers; i++) {
        job_ctx_t *w = &q->workers[i];
        w->q = q;
        snprintf(w->worker_id, sizeof(w->worker_id), "%s:%ld:%s#%zu", host, (long)getpid(), token,
                 i + 1);
        if (!append_literal(q->workers_literal, sizeof(q->workers_literal) - 1, w->worker_id))
            goto fail_alloc;
    }
    if (!append_literal(q->kinds_literal, sizeof(q->kinds_literal), NULL) ||
        !append_literal(q->workers_literal, sizeof(q->workers_literal), NULL))
        goto fail_alloc;

    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        goto fail_alloc;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, &ca);
    pthread_cond_init(&q->keeper_cv, &ca);
    pthread_condattr_destroy(&ca);

    if (pthread_create(&q->keeper, NULL, keeper_main, q) != 0)
        goto fail_threads;
    q->keeper_started = true;
    for (size_t i = 0; i < q->nworkers; i++) {
        if (pthread_create(&q->workers[i].thread, NULL, worker_main, &q->workers[i]) != 0)
            goto fail_threads;
        q->workers[i].started = true;
    }
    log_info("jobs: %zu worker(s) for %zu job kind(s), lease %ld s", q->nworkers, nkinds,
             q->lease_s);
    *out = q;
    return true;
fail_threads:
    log_error("jobs: cannot start the job threads");
    jobs_stop(q);
    return false;
fail_alloc:
    log_error("jobs: cannot set up the job queue");
    free(q->claim_begin_sql);
    free(q->workers);
    free(q);
    return false;
}

void jobs_stop(jobs_t *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    for (size_t i = 0; i < q->nworkers; i++) {
        job_ctx_t *w = &q->workers[i];
        if (w->cancel) {
            char err[256];
            /* Best effort: a statement that cannot be cancelled ends at its
             * own timeout; the job is released either way. */
            if (!PQcancel(w->cancel, err, sizeof(err)))
                log_warn("jobs: could not cancel job %lld: %s", w->running_id, err);
        }
    }
    pthread_cond_broadcast(&q->cv);
    pthread_cond_broadcast(&q->keeper_cv);
    pthread_mutex_unlock(&q->mu);
    for (size_t i = 0; i < q->nworkers; i++)
        if (q->workers[i].started)
            pthread_join(q->workers[i].thread, NULL);
    if (q->keeper_started)
        pthread_join(q->keeper, NULL);
    pthread_cond_destroy(&q->keeper_cv);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q->claim_begin_sql);
    free(q->workers);
    free(q);
}
