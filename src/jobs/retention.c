/*
 * The retention job: a thread that, every RETENTION_INTERVAL seconds, purges
 * audit log rows older than app_settings.data_retention_days
 * (public.purge_audit_logs) and old sign-in attempts
 * (auth.purge_login_attempts). One transaction per run, as service_role, on
 * the thread's own connection; a transaction-scoped advisory lock makes
 * concurrent runs from several campaignd processes skip instead of doing the
 * same work twice. A run that fails (database down, timeout) is logged and the
 * next round tries again with a fresh connection.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime, pthread_condattr_setclock */
#endif
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "jobs/jobs.h"

struct jobs_retention {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;    /* under mu */
    PGcancel *cancel; /* under mu: set while a run is in progress */
    long interval_s;
    long login_window_s;
};

/* Sign-in attempts are kept as long as audit rows, but never less than the
 * lock-out window, and the count of seconds must fit purge_login_attempts'
 * integer argument. */
static const char RUN_SQL[] =
    "with lock as materialized (select pg_try_advisory_xact_lock($1::bigint) as got) "
    "select a.data_retention_days, public.purge_audit_logs(a.data_retention_days),"
    "  auth.purge_login_attempts(least(greatest(a.data_retention_days::bigint * 86400,"
    "    $2::bigint), 2147483647)::integer) "
    "from lock, public.app_settings a where lock.got";

static db_status_t run_on(db_conn_t *c, long login_window_s, jobs_retention_result_t *out,
                          db_error_t *err)
{
    memset(out, 0, sizeof(*out));
    char key[32], window[32], timeout[32];
    snprintf(key, sizeof(key), "%lld", JOBS_RETENTION_LOCK_KEY);
    snprintf(window, sizeof(window), "%ld", login_window_s);
    snprintf(timeout, sizeof(timeout), "%ld", JOBS_RETENTION_TIMEOUT_MS);
    const char *p_timeout[1] = {timeout};
    const char *p_run[2] = {key, window};
    db_stmt_t stmts[2] = {
        {"select set_config('statement_timeout', $1, true)", 1, p_timeout},
        {RUN_SQL, 2, p_run},
    };
    db_caller_t who = {
        .role = "service_role",
        .claims_json = "{\"role\":\"service_role\"}",
        .method = "JOB",
        .path = "retention",
        .headers_json = "{}",
    };
    PGresult *res[2] = {NULL, NULL};
    db_status_t st = db_run_as(c, &who, stmts, 2, res, err);
    if (st == DB_OK && PQntuples(res[1]) == 1) {
        out->ran = true;
        out->retention_days = strtol(PQgetvalue(res[1], 0, 0), NULL, 10);
        out->audit_removed = strtoll(PQgetvalue(res[1], 0, 1), NULL, 10);
        out->attempts_removed = strtoll(PQgetvalue(res[1], 0, 2), NULL, 10);
    }
    PQclear(res[0]);
    PQclear(res[1]);
    return st;
}

db_status_t jobs_retention_run_once(long login_window_s, jobs_retention_result_t *out,
                                    db_error_t *err)
{
    db_conn_t *c = db_thread_conn();
    if (!c) {
        memset(out, 0, sizeof(*out));
        memset(err, 0, sizeof(*err));
        snprintf(err->sqlstate, sizeof(err->sqlstate), "08006");
        snprintf(err->message, sizeof(err->message), "the database cannot be reached");
        err->failed_stmt = -1;
        return DB_UNAVAILABLE;
    }
    return run_on(c, login_window_s, out, err);
}

static bool stopping(jobs_retention_t *r)
{
    pthread_mutex_lock(&r->mu);
    bool s = r->stopping;
    pthread_mutex_unlock(&r->mu);
    return s;
}

/* One round: connect if needed, expose a cancel handle to the stopper, run. */
static void run_round(jobs_retention_t *r)
{
    db_conn_t *c = db_thread_conn();
    if (!c) {
        log_warn("retention: the database cannot be reached; next try in %ld s", r->interval_s);
        return;
    }
    PGcancel *cancel = PQgetCancel(db_pg(c));
    pthread_mutex_lock(&r->mu);
    bool stop = r->stopping;
    if (!stop)
        r->cancel = cancel;
    pthread_mutex_unlock(&r->mu);
    if (stop) {
        PQfreeCancel(cancel);
        return;
    }
    jobs_retention_result_t res;
    db_error_t err;
    db_status_t st = run_on(c, r->login_window_s, &res, &err);
    pthread_mutex_lock(&r->mu);
    r->cancel = NULL;
    stop = r->stopping;
    pthread_mutex_unlock(&r->mu);
    PQfreeCancel(cancel);

    if (st != DB_OK) {
        if (stop)
            log_info("retention: purge interrupted by shutdown; it runs again at next start");
        else
            log_warn("retention: purge failed: %s (SQLSTATE %s); next try in %ld s", err.message,
                     err.sqlstate, r->interval_s);
    } else if (!res.ran) {
        log_debug("retention: another campaignd process holds the retention lock; skipped");
    } else if (res.audit_removed || res.attempts_removed) {
        log_info("retention: removed %lld audit log row(s) older than %ld day(s) and %lld "
                 "sign-in attempt(s)",
                 res.audit_removed, res.retention_days, res.attempts_removed);
    } else {
        log_debug("retention: nothing older than %ld day(s) to remove", res.retention_days);
    }
}

static void *retention_main(void *arg)
{
    jobs_retention_t *r = arg;
    while (!stopping(r)) {
        run_round(r);
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += r->interval_s;
        pthread_mutex_lock(&r->mu);
        while (!r->stopping) {
            if (pthread_cond_timedwait(&r->cv, &r->mu, &deadline) == ETIMEDOUT)
                break;
        }
        pthread_mutex_unlock(&r->mu);
    }
    db_thread_close();
    return NULL;
}

bool jobs_retention_start(const app_t *app, jobs_retention_t **out)
{
    *out = NULL;
    if (app->cfg.retention_interval <= 0) {
        log_info("retention: disabled (RETENTION_INTERVAL=0)");
        return true;
    }
    jobs_retention_t *r = calloc(1, sizeof(*r));
    if (!r)
        return false;
    r->interval_s = app->cfg.retention_interval;
    r->login_window_s = app->cfg.login_window_seconds;
    pthread_condattr_t ca;
    bool ca_ok = false, mu_ok = false, cv_ok = false;
    if (pthread_condattr_init(&ca) != 0)
        goto fail;
    ca_ok = true;
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0)
        goto fail;
    if (pthread_mutex_init(&r->mu, NULL) != 0)
        goto fail;
    mu_ok = true;
    if (pthread_cond_init(&r->cv, &ca) != 0)
        goto fail;
    cv_ok = true;
    if (pthread_create(&r->thread, NULL, retention_main, r) != 0)
        goto fail;
    pthread_condattr_destroy(&ca);
    *out = r;
    return true;
fail:
    log_error("retention: cannot start the job thread");
    if (cv_ok)
        pthread_cond_destroy(&r->cv);
    if (mu_ok)
        pthread_mutex_destroy(&r->mu);
    if (ca_ok)
        pthread_condattr_destroy(&ca);
    free(r);
    return false;
}

void jobs_retention_stop(jobs_retention_t *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    if (r->cancel) {
        char err[256];
        /* Best effort: if the cancel request cannot be sent, the run ends
         * at its statement timeout instead. */
        if (!PQcancel(r->cancel, err, sizeof(err)))
            log_warn("retention: could not cancel the running purge: %s", err);
    }
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
