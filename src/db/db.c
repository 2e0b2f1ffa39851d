/*
 * Per-thread PostgreSQL connections and the pipelined "run as caller"
 * transaction that every data request goes through.
 */
#include "db/db.h"
#include "db/db_internal.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "core/log.h"

static char *db_conninfo;
static char db_timeout_text[32] = "8000";
static char *db_encryption_key;

static _Thread_local db_conn_t thread_conn;
/* A key whose destructor closes a worker's connection when its thread exits
 * (the _Thread_local above is the fast path; the key only does cleanup). */
static pthread_key_t thread_conn_key;
static pthread_once_t thread_conn_once = PTHREAD_ONCE_INIT;
static _Thread_local long long thread_next_attempt_ms; /* monotonic ms; 0 = now */
static _Thread_local int thread_backoff_ms;

static const char PRELUDE_NAME[] = "cd_prelude";
/* The request context, as PostgREST sets it (wire reference 2.9). All local
 * to the transaction, so nothing leaks into the next request. A verified
 * 'authenticated' token runs as the member role of the user's authoritative
 * role (app_admin, app_user, app_viewer; anon when banned or deleted), read
 * from auth.users by auth.db_role_for() in this same statement, so the planner
 * applies only that role's policies (migrations/017_app_roles.sql; an admin
 * below aal2 while MFA is required for admins runs as authenticated, 035). The
 * function runs before SET ROLE takes effect, as authenticator. */
/* The caller prelude; LOCAL "true": for one transaction, "false": for the
 * session (db_run_session). campaignd.encryption_key: the key itself is in
 * the session (give_key); campaignd.secrets says whether this transaction may
 * use it. The legacy per-claim settings auth.uid() and friends still read
 * first are emptied, so only request.jwt.claims (from a verified token)
 * counts. */
#define PRELUDE_SQL_AS(L)                                                                          \
    "select set_config('role', case when $1::text = 'authenticated' "                              \
    "then auth.db_role_for_claims($2::text::jsonb) else $1::text end, " L "), "                    \
    "set_config('request.jwt.claims', $2, " L "), set_config('request.method', $3, " L "), "       \
    "set_config('request.path', $4, " L "), set_config('request.headers', $5, " L "), "            \
    "set_config('statement_timeout', $6, " L "), "                                                 \
    "set_config('search_path', 'public, extensions', " L "), "                                     \
    "set_config('campaignd.encryption_key', '', " L "), set_config('campaignd.secrets', $7, " L    \
    "), set_config('request.jwt.claim.sub', '', " L "), "                                          \
    "set_config('request.jwt.claim.role', '', " L "), "                                            \
    "set_config('request.jwt.claim.email', '', " L "), set_config('request.jwt.claim', '', " L ")"
static const char PRELUDE_SQL[] = PRELUDE_SQL_AS("true");
static const char SESSION_PRELUDE_SQL[] = PRELUDE_SQL_AS("false");

/* The transaction's own statements, prepared once per connection like the
 * prelude: sent unnamed, each request made PostgreSQL parse and analyse BEGIN
 * and COMMIT again (pgbench -M prepared, the bench's reference, does not). */
static const struct {
    const char *name, *sql;
    int nparams;
} FIXED_STMTS[] = {
    {PRELUDE_NAME, PRELUDE_SQL, 7},
    {"cd_begin_ro", "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY", 0},
    {"cd_begin_rw", "BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE", 0},
    {"cd_commit", "COMMIT", 0},
};

/* Prepares FIXED_STMTS on a connection (new, or after DEALLOCATE ALL); false
 * with the reason in why. */
static bool prepare_fixed(PGconn *pg, char *why, size_t whylen)
{
    for (size_t i = 0; i < CD_ARRAY_LEN(FIXED_STMTS); i++) {
        PGresult *r =
            PQprepare(pg, FIXED_STMTS[i].name, FIXED_STMTS[i].sql, FIXED_STMTS[i].nparams, NULL);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) {
            snprintf(why, whylen, "prepare: %s", PQresultErrorMessage(r));
            why[strcspn(why, "\n")] = '\0';
        }
        PQclear(r);
        if (!ok)
            return false;
    }
    return true;
}

void db_configure(const char *conninfo, long statement_timeout_ms, const char *encryption_key)
{
    free(db_conninfo);
    db_conninfo = strdup(conninfo);
    snprintf(db_timeout_text, sizeof(db_timeout_text), "%ld", statement_timeout_ms);
    free(db_encryption_key);
    db_encryption_key = strdup(encryption_key ? encryption_key : "");
}

PGconn *db_pg(db_conn_t *c)
{
    return c->pg;
}

static void conn_key_destructor(void *p)
{
    (void)p;
    db_thread_close();
}

static void conn_key_init(void)
{
    pthread_key_create(&thread_conn_key, conn_key_destructor);
}

void db__cache_clear(db_conn_t *c)
{
    for (size_t i = 0; i < DB_STMT_CACHE_SLOTS; i++) {
        free(c->cache[i].sql);
        c->cache[i].sql = NULL;
    }
}

void db_thread_close(void)
{
    if (thread_conn.pg) {
        PQfinish(thread_conn.pg);
        thread_conn.pg = NULL;
    }
    db__cache_clear(&thread_conn);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int db_retry_after(void)
{
    long long wait = thread_next_attempt_ms - now_ms();
    return wait < 1000 ? 1 : (int)((wait + 999) / 1000);
}

/* After a failure the next request tries again at once (a restarted server is
 * usually back); further failures back off from 250 ms up to 5 s. */
static void note_failure(const char *why)
{
    int wait = thread_backoff_ms;
    thread_backoff_ms = thread_backoff_ms ? thread_backoff_ms * 2 : 250;
    if (thread_backoff_ms > 5000)
        thread_backoff_ms = 5000;
    thread_next_attempt_ms = now_ms() + wait;
    log_warn("database unreachable (%s); retrying in %d ms", why, wait);
}

/* Gives a new connection the encryption key, once, as COPY data: no statement
 * carries it, so log_statement = all cannot record it, and no setting holds it,
 * so current_setting() shows it to nobody. The table is the key functions'
 * owner's; this login role may only insert, and only until the seal (migration
 * 023 explains the rest). */
static bool give_key(PGconn *pg, char *why, size_t whylen)
{
    if (!db_encryption_key || !*db_encryption_key)
        return true;
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(db_encryption_key);
    char *line = malloc(2 * n + 2);
    if (!line) {
        snprintf(why, whylen, "encryption key: out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        line[2 * i] = hex[(unsigned char)db_encryption_key[i] >> 4];
        line[2 * i + 1] = hex[(unsigned char)db_encryption_key[i] & 15];
    }
    line[2 * n] = '\n';
    db_error_t err;
    bool ok = db_exec(pg, "select public.campaignd_key_table_open()", &err);
    if (!ok)
        snprintf(why, whylen, "encryption key table: %.200s", err.message);
    PGresult *r = ok ? PQexec(pg, "copy pg_temp.campaignd_key (key_hex) from stdin") : NULL;
    if (ok && PQresultStatus(r) != PGRES_COPY_IN) {
        snprintf(why, whylen, "encryption key: %s", PQresultErrorMessage(r));
        ok = false;
    }
    PQclear(r);
    if (ok) {
        ok = PQputCopyData(pg, line, (int)(2 * n + 1)) == 1 && PQputCopyEnd(pg, NULL) == 1;
        while ((r = PQgetResult(pg)) != NULL) {
            if (PQresultStatus(r) != PGRES_COMMAND_OK && ok) {
                snprintf(why, whylen, "encryption key: %s", PQresultErrorMessage(r));
                ok = false;
            }
            PQclear(r);
        }
    }
    if (ok && !db_exec(pg, "select public.campaignd_key_table_seal()", &err)) {
        snprintf(why, whylen, "encryption key seal: %.200s", err.message);
        ok = false;
    }
    OPENSSL_cleanse(line, 2 * n + 2);
    free(line);
    why[strcspn(why, "\n")] = '\0';
    return ok;
}

/* A new authenticator connection with the prelude prepared and the key
 * given; NULL (and the back-off noted) when the database is unreachable. */
static PGconn *connect_new(void)
{
    if (!db_conninfo)
        return NULL;
    if (thread_next_attempt_ms && now_ms() < thread_next_attempt_ms)
        return NULL;
    PGconn *pg = PQconnectdb(db_conninfo);
    char why[256] = "";
    if (PQstatus(pg) != CONNECTION_OK) {
        snprintf(why, sizeof(why), "%s", PQerrorMessage(pg));
        why[strcspn(why, "\n")] = '\0';
        goto fail;
    }
    if (!prepare_fixed(pg, why, sizeof(why)))
        goto fail;
    if (!give_key(pg, why, sizeof(why)))
        goto fail;
    thread_backoff_ms = 0;
    thread_next_attempt_ms = 0;
    return pg;
fail:
    PQfinish(pg);
    note_failure(why);
    return NULL;
}

/* Whether the server closed pg while it sat idle (a terminated backend, a
 * restart, an idle timeout): its goodbye waits unread, and libpq learns of it
 * only when the next statement fails, which a request would answer with a
 * 503 although the database is back. What waits is read into libpq's buffer,
 * so a LISTENing connection keeps its notifications for PQnotifies; the
 * goodbye is an error message and then the end of the stream, which a second
 * read finds (libpq returns after the read that brought data). Only between
 * transactions: a connection lost inside one must fail its next statement,
 * not go on in a new session. */
static bool closed_while_idle(PGconn *pg)
{
    if (PQtransactionStatus(pg) != PQTRANS_IDLE)
        return false;
    for (int i = 0; i < 4; i++) {
        struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN};
        if (p.fd < 0)
            return true;
        if (poll(&p, 1, 0) <= 0)
            return false;
        if (!PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK)
            return true;
    }
    return false;
}

db_conn_t *db_thread_conn(void)
{
    if (thread_conn.pg && PQstatus(thread_conn.pg) == CONNECTION_OK &&
        !closed_while_idle(thread_conn.pg))
        return &thread_conn;
    db_thread_close();
    PGconn *pg = connect_new();
    if (!pg)
        return NULL;
    thread_conn.pg = pg;
    pthread_once(&thread_conn_once, conn_key_init);
    pthread_setspecific(thread_conn_key, &thread_conn);
    return &thread_conn;
}

db_conn_t *db_conn_new(void)
{
    return calloc(1, sizeof(db_conn_t));
}

static void conn_close(db_conn_t *c)
{
    PQfinish(c->pg);
    c->pg = NULL;
    c->session_set = false;
    db__cache_clear(c);
}

bool db_conn_ready(db_conn_t *c)
{
    if (c->pg && PQstatus(c->pg) == CONNECTION_OK)
        return true;
    conn_close(c);
    c->pg = connect_new();
    return c->pg != NULL;
}

void db_conn_drop_if_closed(db_conn_t *c)
{
    if (c->pg && closed_while_idle(c->pg))
        conn_close(c);
}

void db_conn_free(db_conn_t *c)
{
    if (c) {
        conn_close(c);
        free(c);
    }
}

static void copy_field(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

void db_error_from_result(const PGresult *res, db_error_t *err)
{
    copy_field(err->sqlstate, sizeof(err->sqlstate),
               res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : "08006");
    copy_field(err->message, sizeof(err->message),
               res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : "no result");
    copy_field(err->detail, sizeof(err->detail),
               res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL);
    copy_field(err->hint, sizeof(err->hint),
               res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL);
}

bool db_exec(PGconn *pg, const char *sql, db_error_t *err)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
    if (!ok && err)
        db_error_from_result(r, err);
    PQclear(r);
    return ok;
}

void db_exec_ignore(PGconn *pg, const char *sql)
{
    PQclear(PQexec(pg, sql));
}

/* Drops a connection that broke, so the next request reconnects. */
static db_status_t lost(db_conn_t *c, db_error_t *err)
{
    copy_field(err->sqlstate, sizeof(err->sqlstate), "08006");
    copy_field(err->message, sizeof(err->message), PQerrorMessage(c->pg));
    err->message[strcspn(err->message, "\n")] = '\0';
    log_warn("database connection lost: %s", err->message);
    if (c == &thread_conn)
        db_thread_close();
    else
        conn_close(c); /* a connection of its own (db_conn_new): not the thread's */
    note_failure("connection lost");
    return DB_UNAVAILABLE;
}

size_t db__sql_slot(const char *sql)
{
    unsigned long long h = 1469598103934665603ULL;
    for (const char *p = sql; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return (size_t)(h % DB_STMT_CACHE_SLOTS);
}

/* What each query sent in the pipeline was, to match the results to it. */
enum slot_kind { SLOT_BEGIN, SLOT_PRELUDE, SLOT_DEALLOC, SLOT_PREPARE, SLOT_STMT, SLOT_COMMIT };

struct pipeline_slot {
    enum slot_kind kind;
    size_t stmt;      /* SLOT_STMT / SLOT_PREPARE: index into stmts */
    size_t cache_idx; /* SLOT_PREPARE: the cache slot to fill on success */
};

/* Evictions are sent before BEGIN (see send_pipeline) so that a failing
 * request can never skip them: a skipped DEALLOCATE would leave the statement
 * on the server, forgotten. */
void db__plan_stmts(db_conn_t *c, const db_stmt_t *stmts, size_t n, struct db_stmt_plan *plan,
                    unsigned long long *evict, size_t *nevict)
{
    bool claimed[DB_STMT_CACHE_SLOTS] = {false};
    *nevict = 0;
    for (size_t i = 0; i < n; i++) {
        plan[i].how = DB_PLAN_UNNAMED;
        if (strlen(stmts[i].sql) > DB_STMT_MAX_CACHED_SQL)
            continue;
        size_t k = db__sql_slot(stmts[i].sql);
        struct db_cached_stmt *e = &c->cache[k];
        if (claimed[k])
            continue; /* two statements of this request share a slot: second unnamed */
        claimed[k] = true;
        plan[i].slot = k;
        if (e->sql && strcmp(e->sql, stmts[i].sql) == 0) {
            plan[i].how = DB_PLAN_CACHED;
            plan[i].id = e->id;
            continue;
        }
        if (e->sql) {
            evict[(*nevict)++] = e->id;
            free(e->sql);
            e->sql = NULL;
        }
        e->id = ++c->next_id;
        plan[i].how = DB_PLAN_PREPARE;
        plan[i].id = e->id;
    }
}

void db__cache_store(db_conn_t *c, size_t slot, const char *sql)
{
    struct db_cached_stmt *e = &c->cache[slot];
    free(e->sql);
    e->sql = strdup(sql); /* NULL on OOM: merely not cached */
}

/* Sends one planned statement, appending the queries it sent to slots. */
static bool send_stmt(db_conn_t *c, const db_stmt_t *st, size_t i, const struct db_stmt_plan *plan,
                      struct pipeline_slot *slots, size_t *ns)
{
    PGconn *pg = c->pg;
    if (plan->how == DB_PLAN_UNNAMED) {
        slots[(*ns)++] = (struct pipeline_slot){SLOT_STMT, i, 0};
        return PQsendQueryParams(pg, st->sql, st->nparams, NULL, st->params, NULL, NULL, 0);
    }
    char name[32];
    snprintf(name, sizeof(name), "cd_s%llu", plan->id);
    if (plan->how == DB_PLAN_PREPARE) {
        slots[(*ns)++] = (struct pipeline_slot){SLOT_PREPARE, i, plan->slot};
        if (!PQsendPrepare(pg, name, st->sql, st->nparams, NULL))
            return false;
    }
    slots[(*ns)++] = (struct pipeline_slot){SLOT_STMT, i, 0};
    return PQsendQueryPrepared(pg, name, st->nparams, st->params, NULL, NULL, 0);
}

/* The seven parameters of both preludes: the caller's role, claims, method,
 * path, headers, the statement timeout and, when secrets is set and the caller
 * may read them, the secrets switch. */
#define PRELUDE_NPARAMS 7
static void prelude_params(const db_caller_t *who, bool secrets, const char *pre[PRELUDE_NPARAMS])
{
    pre[0] = who->role;
    pre[1] = who->claims_json ? who->claims_json : "{}";
    pre[2] = who->method ? who->method : "";
    pre[3] = who->path ? who->path : "";
    pre[4] = who->headers_json ? who->headers_json : "{}";
    pre[5] = db_timeout_text;
    pre[6] = secrets && who->with_secrets ? "on" : "";
}

/* Sends the prelude (the caller's role and request settings) as a query of
 * the pipeline. */
static bool send_prelude(PGconn *pg, const db_caller_t *who)
{
    const char *pre[PRELUDE_NPARAMS];
    prelude_params(who, true, pre);
    return PQsendQueryPrepared(pg, PRELUDE_NAME, PRELUDE_NPARAMS, pre, NULL, NULL, 0);
}

/* Sends the whole request in pipeline mode: the DEALLOCATEs of evicted
 * statements, BEGIN, the prelude, each statement, COMMIT and a sync. slots
 * (room for 3 * nstmts + 3) receives what each query was, *ns how many.
 * Returns false if the connection refused any of it. */
static bool send_pipeline(db_conn_t *c, const db_caller_t *who, const db_stmt_t *stmts,
                          size_t nstmts, const struct db_stmt_plan *plan,
                          const unsigned long long *evict, size_t nevict,
                          struct pipeline_slot *slots, size_t *ns)
{
    PGconn *pg = c->pg;
    if (PQenterPipelineMode(pg) != 1)
        return false;
    const char *begin = who && who->read_only ? "cd_begin_ro" : "cd_begin_rw";
    bool sent = true;
    for (size_t i = 0; sent && i < nevict; i++) {
        char dealloc[48];
        snprintf(dealloc, sizeof(dealloc), "DEALLOCATE cd_s%llu", evict[i]);
        slots[(*ns)++] = (struct pipeline_slot){SLOT_DEALLOC, 0, 0};
        sent = PQsendQueryParams(pg, dealloc, 0, NULL, NULL, NULL, NULL, 0);
    }
    slots[(*ns)++] = (struct pipeline_slot){SLOT_BEGIN, 0, 0};
    sent = sent && PQsendQueryPrepared(pg, begin, 0, NULL, NULL, NULL, 0);
    if (who) { /* NULL: the session's own role and settings (db_run_session) */
        slots[(*ns)++] = (struct pipeline_slot){SLOT_PRELUDE, 0, 0};
        sent = sent && send_prelude(pg, who);
    }
    for (size_t i = 0; sent && i < nstmts; i++)
        sent = send_stmt(c, &stmts[i], i, &plan[i], slots, ns);
    slots[(*ns)++] = (struct pipeline_slot){SLOT_COMMIT, 0, 0};
    return sent && PQsendQueryPrepared(pg, "cd_commit", 0, NULL, NULL, NULL, 0) &&
           PQpipelineSync(pg);
}

/* Reads the results in the order sent, up to the sync marker: keeps each
 * statement's result in results[], fills the prepared-statement cache, and
 * records the first error in err. Each query's results end with a NULL from
 * PQgetResult; idx counts them. */
static db_status_t read_pipeline(db_conn_t *c, const db_stmt_t *stmts,
                                 const struct pipeline_slot *slots, size_t ns, PGresult **results,
                                 db_error_t *err)
{
    PGconn *pg = c->pg;
    db_status_t status = DB_OK;
    size_t idx = 0;
    for (;;) {
        PGresult *r = PQgetResult(pg);
        if (!r) {
            if (PQstatus(pg) != CONNECTION_OK || ++idx > ns)
                return DB_UNAVAILABLE;
            continue;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            return status;
        }
        const struct pipeline_slot *sl = idx < ns ? &slots[idx] : NULL;
        if (st == PGRES_FATAL_ERROR) {
            if (status == DB_OK) {
                db_error_from_result(r, err);
                err->failed_stmt =
                    sl && (sl->kind == SLOT_STMT || sl->kind == SLOT_PREPARE) ? (int)sl->stmt : -1;
                status = DB_SQL_ERROR;
            }
            PQclear(r);
        } else if (sl && sl->kind == SLOT_PREPARE && st == PGRES_COMMAND_OK) {
            db__cache_store(c, sl->cache_idx, stmts[sl->stmt].sql);
            PQclear(r);
        } else if (sl && sl->kind == SLOT_STMT && status == DB_OK && !results[sl->stmt]) {
            results[sl->stmt] = r;
        } else {
            PQclear(r);
        }
    }
}

/* After the results: leaves pipeline mode and, since an error inside the
 * explicit transaction leaves it aborted, rolls back so the connection is
 * clean for the next request. Returns status, or DB_UNAVAILABLE when the
 * connection is no longer usable. */
static db_status_t finish_pipeline(db_conn_t *c, db_status_t status, const db_error_t *err)
{
    PGconn *pg = c->pg;
    if (status == DB_UNAVAILABLE || PQstatus(pg) != CONNECTION_OK)
        return DB_UNAVAILABLE;
    PQexitPipelineMode(pg);
    if (PQtransactionStatus(pg) != PQTRANS_IDLE) {
        db_exec_ignore(pg, "ROLLBACK");
        if (PQstatus(pg) != CONNECTION_OK)
            return DB_UNAVAILABLE;
    }
    if (status == DB_SQL_ERROR && strncmp(err->sqlstate, "08", 2) == 0)
        return DB_UNAVAILABLE;
    return status;
}

/* A transaction sent in pipeline mode whose results are not read yet: what
 * run_pipeline needs between sending and reading (db_session_send). */
struct db_pending {
    db_conn_t *c;
    const db_caller_t *who; /* db_session_send's, for a rerun after a stale plan */
    const db_stmt_t *stmts;
    size_t nstmts;
    struct pipeline_slot *slots;
    size_t ns;
};

static void pending_free(db_pending_t *p)
{
    if (p) {
        free(p->slots);
        free(p);
    }
}

/* Plans and sends one pipelined transaction (the first half of
 * run_pipeline). Returns what pipeline_read needs, or NULL when nothing could
 * be sent (out of memory, or the connection refused it: *status says which;
 * DB_UNAVAILABLE after a refusal). */
static db_pending_t *pipeline_send(db_conn_t *c, const db_caller_t *who, const db_stmt_t *stmts,
                                   size_t nstmts, db_status_t *status)
{
    size_t n1 = nstmts ? nstmts : 1;
    db_pending_t *p = calloc(1, sizeof(*p));
    struct db_stmt_plan *plan = malloc(n1 * sizeof(*plan));
    unsigned long long *evict = malloc(n1 * sizeof(*evict));
    size_t nevict = 0;
    *status = DB_UNAVAILABLE;
    if (p)
        p->slots = malloc((3 * nstmts + 3) * sizeof(*p->slots));
    bool ok = p && p->slots && plan && evict;
    if (ok) {
        *p = (db_pending_t){c, NULL, stmts, nstmts, p->slots, 0};
        db__plan_stmts(c, stmts, nstmts, plan, evict, &nevict);
        ok = send_pipeline(c, who, stmts, nstmts, plan, evict, nevict, p->slots, &p->ns);
    }
    free(evict);
    free(plan);
    if (!ok) {
        pending_free(p);
        return NULL;
    }
    *status = DB_OK;
    return p;
}

/* Reads a sent transaction's results (the second half of run_pipeline) and
 * frees p. On any failure no result is kept, and a connection that failed is
 * dropped by lost(). */
static db_status_t pipeline_read(db_pending_t *p, PGresult **results, db_error_t *err)
{
    db_conn_t *c = p->c;
    db_status_t status = read_pipeline(c, p->stmts, p->slots, p->ns, results, err);
    status = finish_pipeline(c, status, err);
    size_t nstmts = p->nstmts;
    pending_free(p);
    if (status != DB_OK) {
        for (size_t i = 0; i < nstmts; i++) {
            PQclear(results[i]);
            results[i] = NULL;
        }
    }
    return status == DB_UNAVAILABLE ? lost(c, err) : status;
}

/* One request as one pipelined transaction: sent, then read. */
static db_status_t run_pipeline(db_conn_t *c, const db_caller_t *who, const db_stmt_t *stmts,
                                size_t nstmts, PGresult **results, db_error_t *err)
{
    memset(err, 0, sizeof(*err));
    err->failed_stmt = -1;
    for (size_t i = 0; i < nstmts; i++)
        results[i] = NULL;
    db_status_t status;
    db_pending_t *p = pipeline_send(c, who, stmts, nstmts, &status);
    if (!p)
        return lost(c, err);
    return pipeline_read(p, results, err);
}

/* A cached statement whose tables changed shape ("cached plan must not
 * change result type"). */
static bool stale_plan(db_status_t st, const db_error_t *err)
{
    return st == DB_SQL_ERROR && strcmp(err->sqlstate, "0A000") == 0 &&
           strstr(err->message, "cached plan") != NULL;
}

/* Forgets every prepared statement of c, server and cache, after stale_plan. */
static void forget_prepared(db_conn_t *c)
{
    db__cache_clear(c);
    db_exec_ignore(c->pg, "DEALLOCATE ALL");
    char why[256];
    if (!prepare_fixed(c->pg, why, sizeof(why)))
        log_warn("database: %s", why); /* the request that follows fails and says so */
}

db_status_t db_run_as(db_conn_t *c, const db_caller_t *who, const db_stmt_t *stmts, size_t nstmts,
                      PGresult **results, db_error_t *err)
{
    db_status_t st = run_pipeline(c, who, stmts, nstmts, results, err);
    /* A stale cached plan: forget every prepared statement and run the
     * request once more; it failed as a whole, so nothing ran twice. */
    if (stale_plan(st, err)) {
        forget_prepared(c);
        st = run_pipeline(c, who, stmts, nstmts, results, err);
    }
    return st;
}

/* Gives the session of c the caller's role and settings for good. */
static db_status_t session_prelude(db_conn_t *c, const db_caller_t *who, db_error_t *err)
{
    if (!db_conn_ready(c)) {
        copy_field(err->sqlstate, sizeof(err->sqlstate), "08006");
        copy_field(err->message, sizeof(err->message), "database unavailable");
        return DB_UNAVAILABLE;
    }
    const char *pre[PRELUDE_NPARAMS];
    prelude_params(who, false, pre); /* a session kept for good never reads secrets */
    PGresult *r =
        PQexecParams(c->pg, SESSION_PRELUDE_SQL, PRELUDE_NPARAMS, NULL, pre, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        db_error_from_result(r, err);
    PQclear(r);
    if (!ok) {
        conn_close(c);
        return DB_UNAVAILABLE;
    }
    c->session_set = true;
    return DB_OK;
}

db_status_t db_run_session(db_conn_t *c, const db_caller_t *who, const db_stmt_t *stmts,
                           size_t nstmts, PGresult **results, db_error_t *err)
{
    memset(err, 0, sizeof(*err));
    err->failed_stmt = -1;
    if (!c->session_set || !c->pg || PQstatus(c->pg) != CONNECTION_OK) {
        for (size_t i = 0; i < nstmts; i++)
            results[i] = NULL;
        conn_close(c); /* a reconnect loses the session's settings */
        db_status_t st = session_prelude(c, who, err);
        if (st != DB_OK)
            return st;
    }
    return db_run_as(c, NULL, stmts, nstmts, results, err);
}

db_status_t db_session_send(db_conn_t *c, const db_caller_t *who, const db_stmt_t *stmts,
                            size_t nstmts, db_pending_t **pending, db_error_t *err)
{
    memset(err, 0, sizeof(*err));
    err->failed_stmt = -1;
    *pending = NULL;
    if (!c->session_set || !c->pg || PQstatus(c->pg) != CONNECTION_OK) {
        conn_close(c); /* a reconnect loses the session's settings */
        db_status_t st = session_prelude(c, who, err);
        if (st != DB_OK)
            return st;
    }
    db_status_t st;
    *pending = pipeline_send(c, NULL, stmts, nstmts, &st);
    if (!*pending)
        return lost(c, err);
    (*pending)->who = who;
    return DB_OK;
}

db_status_t db_session_finish(db_pending_t *pending, PGresult **results, db_error_t *err)
{
    memset(err, 0, sizeof(*err));
    err->failed_stmt = -1;
    db_conn_t *c = pending->c;
    const db_caller_t *who = pending->who;
    const db_stmt_t *stmts = pending->stmts;
    size_t nstmts = pending->nstmts;
    for (size_t i = 0; i < nstmts; i++)
        results[i] = NULL;
    db_status_t st = pipeline_read(pending, results, err);
    if (stale_plan(st, err)) { /* as db_run_as: nothing ran, run it once more now */
        forget_prepared(c);
        st = db_run_session(c, who, stmts, nstmts, results, err);
    }
    return st;
}

db_status_t db_run1(db_conn_t *c, const db_caller_t *who, const char *sql, int nparams,
                    const char *const *params, PGresult **res, db_error_t *err)
{
    db_stmt_t st = {sql, nparams, params};
    return db_run_as(c, who, &st, 1, res, err);
}

db_status_t db_run(const db_caller_t *who, const db_stmt_t *stmts, size_t nstmts,
                   PGresult **results, db_error_t *err)
{
    db_conn_t *c = db_thread_conn();
    if (c)
        return db_run_as(c, who, stmts, nstmts, results, err);
    memset(err, 0, sizeof(*err));
    err->failed_stmt = -1;
    copy_field(err->sqlstate, sizeof(err->sqlstate), "08006");
    copy_field(err->message, sizeof(err->message), "no database connection");
    for (size_t i = 0; i < nstmts; i++)
        results[i] = NULL;
    return DB_UNAVAILABLE;
}

/* ------------------------------------------- batches of transactions */

/* One pipeline of several callers' transactions (db_batch_send). Segment 0,
 * when there is one, prepares the batch's statements new to the cache; each
 * following segment is one transaction: prelude, [read only], statements,
 * each segment closed by a sync. */
struct db_batch {
    db_conn_t *c;
    db_txn_t *txns;
    size_t n;
    bool has_prep;         /* segment 0 was sent */
    size_t *prep_slot;     /* segment 0, per query: the cache slot a PREPARE fills */
    const char **prep_sql; /* ... and its SQL (NULL: a DEALLOCATE) */
    size_t nprep;          /* queries in segment 0 */
    size_t nqueries;       /* queries sent in all, to bound the wait for results */
};

static const char READ_ONLY_SQL[] =
    "select pg_catalog.set_config('transaction_read_only', 'on', true)";

static void batch_free(db_batch_t *b)
{
    if (b) {
        free(b->prep_slot);
        free(b->prep_sql);
        free(b);
    }
}

/* Plans the batch's distinct statements against the cache and sends segment
 * 0 (DEALLOCATE of evicted, PREPARE of new ones). names[k] gets how
 * stmt k of the flattened list is sent: its cache id, or 0 for unnamed. */
static bool batch_send_prepares(db_batch_t *b, const db_stmt_t **flat, size_t nflat,
                                unsigned long long *ids)
{
    db_conn_t *c = b->c;
    db_stmt_t *distinct = malloc((nflat ? nflat : 1) * sizeof(*distinct));
    size_t *which = malloc((nflat ? nflat : 1) * sizeof(*which));
    struct db_stmt_plan *plan = malloc((nflat ? nflat : 1) * sizeof(*plan));
    unsigned long long *evict = malloc((nflat ? nflat : 1) * sizeof(*evict));
    b->prep_slot = malloc((2 * nflat + 1) * sizeof(*b->prep_slot));
    b->prep_sql = malloc((2 * nflat + 1) * sizeof(*b->prep_sql));
    bool ok = distinct && which && plan && evict && b->prep_slot && b->prep_sql;
    size_t nd = 0, nevict = 0;
    for (size_t k = 0; ok && k < nflat; k++) {
        size_t d = 0;
        while (d < nd && strcmp(distinct[d].sql, flat[k]->sql) != 0)
            d++;
        if (d == nd)
            distinct[nd++] = *flat[k];
        which[k] = d;
    }
    if (ok)
        db__plan_stmts(c, distinct, nd, plan, evict, &nevict);
    for (size_t i = 0; ok && i < nevict; i++) {
        char dealloc[48];
        snprintf(dealloc, sizeof(dealloc), "DEALLOCATE cd_s%llu", evict[i]);
        b->prep_sql[b->nprep++] = NULL;
        ok = PQsendQueryParams(c->pg, dealloc, 0, NULL, NULL, NULL, NULL, 0);
    }
    for (size_t d = 0; ok && d < nd; d++) {
        if (plan[d].how != DB_PLAN_PREPARE)
            continue;
        char name[32];
        snprintf(name, sizeof(name), "cd_s%llu", plan[d].id);
        b->prep_slot[b->nprep] = plan[d].slot;
        b->prep_sql[b->nprep++] = distinct[d].sql;
        ok = PQsendPrepare(c->pg, name, distinct[d].sql, distinct[d].nparams, NULL);
    }
    if (ok && b->nprep) {
        b->has_prep = true;
        ok = PQpipelineSync(c->pg);
    }
    for (size_t k = 0; ok && k < nflat; k++)
        ids[k] = plan[which[k]].how == DB_PLAN_UNNAMED ? 0 : plan[which[k]].id;
    b->nqueries += b->nprep;
    free(distinct);
    free(which);
    free(plan);
    free(evict);
    return ok;
}

/* Sends one transaction of the batch as its own segment. */
static bool batch_send_txn(db_batch_t *b, const db_txn_t *t, const unsigned long long *ids)
{
    PGconn *pg = b->c->pg;
    const db_caller_t *who = t->who;
    bool ok = send_prelude(pg, who);
    b->nqueries++;
    if (ok && who->read_only) {
        ok = PQsendQueryParams(pg, READ_ONLY_SQL, 0, NULL, NULL, NULL, NULL, 0);
        b->nqueries++;
    }
    for (size_t i = 0; ok && i < t->nstmts; i++) {
        const db_stmt_t *st = &t->stmts[i];
        if (ids[i]) {
            char name[32];
            snprintf(name, sizeof(name), "cd_s%llu", ids[i]);
            ok = PQsendQueryPrepared(pg, name, st->nparams, st->params, NULL, NULL, 0);
        } else {
            ok = PQsendQueryParams(pg, st->sql, st->nparams, NULL, st->params, NULL, NULL, 0);
        }
        b->nqueries++;
    }
    return ok && PQpipelineSync(pg);
}

db_batch_t *db_batch_send(db_conn_t *c, db_txn_t *txns, size_t n)
{
    size_t nflat = 0;
    for (size_t i = 0; i < n; i++) {
        txns[i].status = DB_UNAVAILABLE;
        memset(&txns[i].err, 0, sizeof(txns[i].err));
        txns[i].err.failed_stmt = -1;
        for (size_t k = 0; k < txns[i].nstmts; k++)
            txns[i].results[k] = NULL;
        nflat += txns[i].nstmts;
    }
    db_batch_t *b = calloc(1, sizeof(*b));
    const db_stmt_t **flat = malloc((nflat ? nflat : 1) * sizeof(*flat));
    unsigned long long *ids = malloc((nflat ? nflat : 1) * sizeof(*ids));
    bool ok = b && flat && ids && c && c->pg && PQenterPipelineMode(c->pg) == 1;
    if (ok) {
        b->c = c;
        b->txns = txns;
        b->n = n;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < txns[i].nstmts; j++)
                flat[k++] = &txns[i].stmts[j];
        ok = batch_send_prepares(b, flat, nflat, ids);
        k = 0;
        for (size_t i = 0; ok && i < n; i++) {
            txns[i].status = DB_OK;
            ok = batch_send_txn(b, &txns[i], ids + k);
            k += txns[i].nstmts;
        }
    }
    free(flat);
    free(ids);
    if (!ok) {
        for (size_t i = 0; i < n; i++)
            txns[i].status = DB_UNAVAILABLE;
        if (c && c->pg) {
            log_warn("database: cannot send a batch: %s", PQerrorMessage(c->pg));
            conn_close(c);
        }
        batch_free(b);
        return NULL;
    }
    return b;
}

/* Takes one result of transaction t at query q of its segment (q counts the
 * prelude and the read-only switch first). */
static void batch_take(db_txn_t *t, size_t q, PGresult *r)
{
    size_t first = t->who->read_only ? 2 : 1;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_FATAL_ERROR) {
        if (t->status == DB_OK) {
            db_error_from_result(r, &t->err);
            t->err.failed_stmt = q >= first ? (int)(q - first) : -1;
            t->status = DB_SQL_ERROR;
        }
    } else if (q >= first && q - first < t->nstmts && t->status == DB_OK &&
               !t->results[q - first] && (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)) {
        t->results[q - first] = r;
        return;
    }
    PQclear(r);
}

db_status_t db_batch_finish(db_batch_t *b)
{
    PGconn *pg = b->c->pg;
    size_t seg = b->has_prep ? 0 : 1, q = 0, nulls = 0;
    bool broken = false;
    while (seg <= b->n) {
        PGresult *r = PQgetResult(pg);
        if (!r) {
            if (PQstatus(pg) != CONNECTION_OK || ++nulls > b->nqueries + b->n + 1) {
                broken = true;
                break;
            }
            continue;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            seg++;
            q = 0;
            continue;
        }
        if (seg == 0) {
            if (st == PGRES_COMMAND_OK && q < b->nprep && b->prep_sql[q])
                db__cache_store(b->c, b->prep_slot[q], b->prep_sql[q]);
            PQclear(r);
        } else {
            batch_take(&b->txns[seg - 1], q, r);
        }
        q++;
    }
    if (!broken && PQexitPipelineMode(pg) == 1 && PQtransactionStatus(pg) != PQTRANS_IDLE)
        db_exec_ignore(pg, "ROLLBACK");
    broken = broken || PQstatus(pg) != CONNECTION_OK;
    bool replan = false;
    for (size_t i = 0; i < b->n; i++) {
        db_txn_t *t = &b->txns[i];
        if (broken && i + 1 >= seg)
            t->status = DB_UNAVAILABLE;
        if (t->status == DB_SQL_ERROR && strcmp(t->err.sqlstate, "0A000") == 0)
            replan = true;
        if (t->status != DB_OK)
            for (size_t k = 0; k < t->nstmts; k++) {
                PQclear(t->results[k]);
                t->results[k] = NULL;
            }
    }
    if (broken) {
        log_warn("database connection lost: %s", PQerrorMessage(pg));
        conn_close(b->c);
    } else if (replan) {
        /* a table changed shape under a cached statement: the next batch
         * prepares afresh (see db_run_as) */
        db__cache_clear(b->c);
        db_exec_ignore(pg, "DEALLOCATE ALL");
        char why[256];
        if (!prepare_fixed(pg, why, sizeof(why)))
            log_warn("database: %s", why);
    }
    batch_free(b);
    return broken ? DB_UNAVAILABLE : DB_OK;
}
