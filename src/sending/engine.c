/*
 * The send engine's jobs (sending.h): send.worker claims one campaign's
 * messages in batches (leases) and hands them over one by one (one provider
 * request at a time), each with one statement that settles the previous and
 * puts the next in flight; send.scheduler starts scheduled campaigns whose
 * date has come; send.test sends one rendered test message. Every decision
 * about a message (consent again, the monthly limit, quiet hours, the
 * forward-only status, unknown after a crash) is a function of
 * migrations/027_sending.sql and 041_send_fast.sql, called in its own
 * transaction: this file only renders and talks to the provider between
 * those transactions. At most SEND_WORKERS workers send one campaign at a
 * time, across processes (a session advisory lock per slot), so a crash
 * leaves at most SEND_WORKERS provider requests unknown.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/text.h"
#include "jobs/queue.h"
#include "sending/compose.h"
#include "sending/engine_internal.h"
#include "sending/provider.h"
#include "sending/sending.h"

static const db_caller_t SERVICE = {
    .role = "service_role",
    .claims_json = "{\"role\":\"service_role\"}",
    .method = "JOB",
    .path = "send",
};

/* ---------------------------------------------------------------- pacing */

static pthread_mutex_t pace_lock = PTHREAD_MUTEX_INITIALIZER;
static double pace_next[2]; /* per channel: when the next message may go */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds since *mark; moves *mark to now. */
static double lap(double *mark)
{
    double now = now_seconds(), d = now - *mark;
    *mark = now;
    return d;
}

/* Takes the allowance of n more messages of the channel at rate per second
 * (0: no limit) and sets *at to when they may leave this process; with
 * only_now, takes it only when that is now (false: nothing taken). */
static bool pace_take(int channel, long rate, size_t n, bool only_now, double *at)
{
    *at = 0;
    if (rate <= 0)
        return true;
    pthread_mutex_lock(&pace_lock);
    double now = now_seconds();
    bool take = !only_now || pace_next[channel] <= now;
    if (take) {
        *at = pace_next[channel] > now ? pace_next[channel] : now;
        pace_next[channel] = *at + (double)n / (double)rate;
    }
    pthread_mutex_unlock(&pace_lock);
    return take;
}

/* Waits until at; false when the job must stop meanwhile. */
static bool wait_until(job_ctx_t *ctx, double at)
{
    while (now_seconds() < at) {
        if (!job_heartbeat(ctx))
            return false;
        double left = at - now_seconds();
        struct timespec ts = {0, 0};
        if (left > 0.25)
            left = 0.25;
        if (left > 0) {
            ts.tv_nsec = (long)(left * 1e9);
            nanosleep(&ts, NULL);
        }
    }
    return true;
}

size_t sending__claim_size(long batch, long rate)
{
    if (batch < 1)
        batch = 1;
    return (size_t)(rate > 0 && rate < batch ? rate : batch);
}

/* The run's channel's rate per second in this process (0: no limit). */
static long run_rate(const app_t *app, const sending_run_t *run)
{
    return run->sms ? app->cfg.sms_rate_per_second : app->cfg.email_rate_per_second;
}

/* The run's claims: SEND_BATCH_SIZE, at most a second of its channel's rate. */
static size_t claim_size(const app_t *app, const sending_run_t *run)
{
    return sending__claim_size(app->cfg.send_batch_size, run_rate(app, run));
}

/* Takes the allowance of the run's next claim at its channel's rate: waits
 * for it, so that leases are not held idle (false: the job must stop
 * meanwhile), or, with only_now, takes it only when it is due now (false:
 * not taken, the rate says wait). */
static bool pace_claim(job_ctx_t *ctx, const sending_run_t *run, bool only_now)
{
    const app_t *app = job_app(ctx);
    double at;
    return pace_take(run->sms ? 1 : 0, run_rate(app, run), claim_size(app, run), only_now, &at) &&
           (only_now || wait_until(ctx, at));
}

/* -------------------------------------------------------------- settings */

void sending__tracking_key(const app_t *app, unsigned char key[TRACK_KEY_LEN])
{
    track_derive_key(app->cfg.jwt_secret ? app->cfg.jwt_secret : "", key);
}

void sending__base_url(const app_t *app, char *out, size_t outlen)
{
    const char *b =
        app->cfg.api_external_url && *app->cfg.api_external_url ? app->cfg.api_external_url : "";
    snprintf(out, outlen, "%s", b);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
}

/* ------------------------------------------------------------ campaigns */

static const char CAMPAIGN_SQL[] =
    "select c.type, c.status, coalesce(nullif(c.subject, ''), t.subject, ''),"
    "  coalesce(t.content, c.content, ''), t.text_content,"
    "  coalesce(nullif(c.from_name, ''), ''), coalesce(nullif(c.from_email, ''), ''),"
    "  coalesce((select a.postal_address from public.app_settings a limit 1), ''),"
    "  coalesce(c.sms_sender, '')"
    " from public.campaigns c"
    " left join public.templates t on t.id = c.template_id and t.deleted_at is null"
    " where c.id = $1::uuid";

void sending__campaign_free(sending_campaign_t *c)
{
    for (size_t i = 0; i < CD_ARRAY_LEN(c->str); i++)
        free(c->str[i]);
    memset(c, 0, sizeof(*c));
}

db_status_t sending__campaign_load(db_conn_t *conn, const char *id, sending_campaign_t *c,
                                   db_error_t *err)
{
    memset(c, 0, sizeof(*c));
    PGresult *r = NULL;
    const char *p[1] = {id};
    db_status_t st = db_run1(conn, &SERVICE, CAMPAIGN_SQL, 1, p, &r, err);
    if (st != DB_OK)
        return st;
    if (PQntuples(r) != 1) {
        PQclear(r);
        snprintf(err->message, sizeof(err->message), "campaign not found");
        snprintf(err->sqlstate, sizeof(err->sqlstate), "P0002");
        return DB_SQL_ERROR;
    }
    for (int i = 0; i < SC_COUNT; i++)
        c->str[i] = PQgetisnull(r, 0, i) ? NULL : strdup(PQgetvalue(r, 0, i));
    PQclear(r);
    for (int i = 0; i < SC_COUNT; i++)
        if (i != SC_TEXT && !c->str[i]) {
            sending__campaign_free(c);
            snprintf(err->message, sizeof(err->message), "out of memory");
            return DB_UNAVAILABLE;
        }
    return DB_OK;
}

/* The sender of a campaign: its own, else EMAIL_FROM (the admin's or the
 * environment's), else SMTP_ADMIN_EMAIL. */
void sending__sender(const app_t *app, const provider_config_t *set, const sending_campaign_t *c,
                     const char **from, const char **name)
{
    const config_t *cfg = &app->cfg;
    *from = *c->str[SC_FROM_EMAIL] ? c->str[SC_FROM_EMAIL]
            : *set->email_from     ? set->email_from
                                   : cfg->smtp_admin_email;
    *name = *c->str[SC_FROM_NAME] ? c->str[SC_FROM_NAME] : cfg->smtp_sender_name;
}

/* ------------------------------------------------------------ one batch */

typedef struct batch {
    size_t n;
    bool claimed;                /* claimed ahead (during the previous batch's last group) */
    char claim[CD_UUID_LEN + 1]; /* this batch's claim id */
    bool go[PROVIDER_BATCH_MAX]; /* may leave now (sending.step said so) */
    char ids[PROVIDER_BATCH_MAX][37];
    char to[PROVIDER_BATCH_MAX][256];
    json_t *contacts[PROVIDER_BATCH_MAX];
    compose_output_t out[PROVIDER_BATCH_MAX];
    bool composed[PROVIDER_BATCH_MAX];
    provider_email_t msgs[PROVIDER_BATCH_MAX];
    provider_email_result_t results[PROVIDER_BATCH_MAX];
} batch_t;

static void batch_free(batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        json_decref(b->contacts[i]);
        compose_free(&b->out[i]);
    }
    b->n = 0;
    b->claimed = false;
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Renders message i; on failure its result is a permanent failure. */
static void compose_one(const sending_run_t *run, batch_t *b, size_t i)
{
    const json_t *k = b->contacts[i];
    tpl_contact_t contact = {jstr(k, "first_name"), jstr(k, "last_name"), jstr(k, "email"),
                             jstr(k, "phone"), json_object_get(k, "attributes")};
    compose_input_t in = {
        .message_id = b->ids[i],
        .subject_src = run->c.str[SC_SUBJECT],
        .body_src = run->c.str[SC_BODY],
        .text_src = run->c.str[SC_TEXT],
        .contact = &contact,
        .base_url = run->base_url,
        .key = run->key,
        .postal_address = run->c.str[SC_POSTAL],
    };
    compose_init(&b->out[i]);
    provider_email_result_t *r = &b->results[i];
    memset(r, 0, sizeof(*r));
    if (!b->out[i].links || !compose_email(&in, &b->out[i], r->error, sizeof(r->error))) {
        r->outcome = PROVIDER_PERMFAIL;
        if (!r->error[0])
            snprintf(r->error, sizeof(r->error), "out of memory");
        return;
    }
    b->composed[i] = true;
    compose_output_t *o = &b->out[i];
    b->msgs[i] = (provider_email_t){
        .message_uuid = b->ids[i],
        .from_name = run->from_name,
        .from = run->from,
        .to = b->to[i],
        .subject = cd_buf_str(&o->subject),
        .html = o->html.len ? cd_buf_str(&o->html) : NULL,
        .text = cd_buf_str(&o->text),
        .headers = o->headers,
        .nheaders = 2,
    };
}

static const char *outcome_name(provider_outcome_t o)
{
    switch (o) {
    case PROVIDER_ACCEPTED:
        return "accepted";
    case PROVIDER_TEMPFAIL:
        return "tempfail";
    case PROVIDER_PERMFAIL:
        return "permfail";
    default:
        return "unknown";
    }
}

/* The engine's hot path (claim, step) runs on its own connection, whose
 * session runs as service_role for good (db_session_send, like
 * db_run_session): per message only BEGIN, the step and COMMIT, no role
 * prelude. */

/* One call of sending.claim between its sending and its result. */
typedef struct claim_call {
    char limit[16], lease[16];
    const char *p[5];
    db_stmt_t stmt;
    db_pending_t *pending;
} claim_call_t;

static const char CLAIM_SQL[] = "select id::text, recipient, contact::text from "
                                "sending.claim($1, $2::uuid, $3::uuid, $4::int, $5::int)";

/* Sends the claim of a batch into b (leases, nothing in flight) without
 * waiting for it; claim_finish reads it. */
static db_status_t claim_send(job_ctx_t *ctx, const sending_run_t *run, batch_t *b, claim_call_t *c,
                              db_error_t *err)
{
    const app_t *app = job_app(ctx);
    memset(c, 0, sizeof(*c));
    snprintf(c->limit, sizeof(c->limit), "%zu", claim_size(app, run));
    snprintf(c->lease, sizeof(c->lease), "%ld", app->cfg.send_lease_seconds);
    if (!cd_random_uuid(b->claim)) {
        snprintf(err->message, sizeof(err->message), "no randomness");
        return DB_UNAVAILABLE;
    }
    const char *p[5] = {run->channel, run->campaign_id, b->claim, c->limit, c->lease};
    memcpy(c->p, p, sizeof(p));
    c->stmt = (db_stmt_t){CLAIM_SQL, 5, c->p};
    return db_session_send(run->eng, &SERVICE, &c->stmt, 1, &c->pending, err);
}

/* Reads a sent claim: fills b with the claimed messages. */
static db_status_t claim_finish(batch_t *b, claim_call_t *c, db_error_t *err)
{
    PGresult *r = NULL;
    db_status_t st = db_session_finish(c->pending, &r, err);
    c->pending = NULL;
    if (st != DB_OK)
        return st;
    int rows = PQntuples(r);
    for (int i = 0; i < rows && b->n < PROVIDER_BATCH_MAX; i++) {
        size_t k = b->n++;
        snprintf(b->ids[k], sizeof(b->ids[k]), "%s", PQgetvalue(r, i, 0));
        snprintf(b->to[k], sizeof(b->to[k]), "%s", PQgetvalue(r, i, 1));
        b->contacts[k] =
            PQgetisnull(r, i, 2) ? json_object() : json_loads(PQgetvalue(r, i, 2), 0, NULL);
        b->composed[k] = false;
    }
    PQclear(r);
    b->claimed = true;
    return DB_OK;
}

/* Claims a batch, waiting for it. */
static db_status_t claim(job_ctx_t *ctx, const sending_run_t *run, batch_t *b, db_error_t *err)
{
    claim_call_t c;
    db_status_t st = claim_send(ctx, run, b, &c, err);
    return st == DB_OK ? claim_finish(b, &c, err) : st;
}

/* "{id,id,...}" of ids[from, from + n): a uuid[] literal. */
static char *uuid_array(const batch_t *b, size_t from, size_t n)
{
    size_t len = 2 + n * 37 + 1;
    char *out = malloc(len), *w = out;
    if (!out)
        return NULL;
    *w++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *w++ = ',';
        memcpy(w, b->ids[from + i], 36);
        w += 36;
    }
    *w++ = '}';
    *w = '\0';
    return out;
}

/* The results of handed-over messages as sending.step's $4 reads them: the
 * elements of a JSON array, written as the messages come back. jansson
 * objects built per message (json_pack) and dumped per step (json_dumps)
 * were ~5 % of campaignd's CPU per SMS. */
typedef struct results {
    cd_buf_t text; /* "{...},{...}": the elements, without the brackets */
    size_t n;      /* elements in text */
} results_t;

/* A batch's results at most (its bodies escaped): far above any batch. */
#define RESULTS_MAX ((size_t)256 << 20)

static void results_init(results_t *r)
{
    cd_buf_init(&r->text, RESULTS_MAX);
    r->n = 0;
}

static void results_free(results_t *r)
{
    cd_buf_free(&r->text);
    r->n = 0;
}

static void results_reset(results_t *r)
{
    cd_buf_reset(&r->text);
    r->n = 0;
}

/* Ends the element begun at mark: counted, or, when it could not be
 * written (not UTF-8, out of memory), taken back and logged, as a result
 * json_pack refused was lost before (its message runs out into unknown). */
static void results_end(results_t *out, size_t mark, bool ok, const char *id)
{
    if (ok) {
        out->n++;
        return;
    }
    out->text.len = mark;
    if (out->text.data)
        out->text.data[mark] = '\0';
    log_error("send: the result of message %s could not be recorded (out of memory, or a text "
              "that is not UTF-8)",
              id);
}

/* Appends the elements of more to done. */
static void results_append(results_t *done, const results_t *more)
{
    if (!more->n)
        return;
    size_t mark = done->text.len;
    if ((done->n && !cd_buf_add(&done->text, ",", 1)) ||
        !cd_buf_add(&done->text, more->text.data, more->text.len)) {
        done->text.len = mark;
        if (done->text.data)
            done->text.data[mark] = '\0';
        log_error("send: the results of %zu messages could not be recorded (out of memory)",
                  more->n);
        return;
    }
    done->n += more->n;
}

/* The step's arguments: done (results of the previous group, NULL: none),
 * the next group [from, from + n) with its links (e-mail), and end: the
 * batch ends (its ids are passed). */
typedef struct step_args {
    const results_t *done;
    size_t from, n;
    json_t *links;
    bool end;
} step_args_t;

static const char STEP_SQL[] =
    "select status, go::text from sending.step($1, $2::uuid, $3::uuid, $4::jsonb,"
    " $5::uuid[], $6::jsonb, $7::uuid[], $8::int, $9::int, $10::int)";

/* One call of sending.step between its sending and its result (the
 * statement and its parameters stay valid until step_finish). */
typedef struct step_call {
    char maxa[16], backoff[16], lease[16];
    char claim[CD_UUID_LEN + 1]; /* the batch's claim (the batch may be gone when sent) */
    char *done, *next, *links, *all;
    const char *p[10];
    db_stmt_t stmt;
    db_pending_t *pending;
    size_t from, n; /* the group it puts in flight */
} step_call_t;

static void step_call_free(step_call_t *c)
{
    free(c->done);
    free(c->next);
    free(c->links);
    free(c->all);
    c->done = c->next = c->links = c->all = NULL;
}

/* Marks b->go[i] for the ids of [from, from + n) that the step's go list
 * ("{id,id,...}", uuid[] as text) names. */
static void mark_go(batch_t *b, size_t from, size_t n, const char *go)
{
    for (size_t i = from; i < from + n; i++)
        b->go[i] = false;
    for (const char *t = *go == '{' ? go + 1 : go; strlen(t) >= 36; t += 37) {
        for (size_t i = from; i < from + n; i++)
            if (!b->go[i] && memcmp(t, b->ids[i], 36) == 0) {
                b->go[i] = true;
                break;
            }
        if (t[36] != ',')
            break;
    }
}

/* Builds one call of sending.step (settles a->done, puts the next group in
 * flight) into c->stmt, not sent yet; c holds all it points to. */
static db_status_t step_prepare(job_ctx_t *ctx, const sending_run_t *run, const batch_t *b,
                                const step_args_t *a, step_call_t *c, db_error_t *err)
{
    const app_t *app = job_app(ctx);
    memset(c, 0, sizeof(*c));
    snprintf(c->maxa, sizeof(c->maxa), "%ld", app->cfg.send_max_attempts);
    snprintf(c->backoff, sizeof(c->backoff), "%ld", app->cfg.send_retry_seconds);
    snprintf(c->lease, sizeof(c->lease), "%ld", app->cfg.send_lease_seconds);
    bool has_done = a->done && a->done->n;
    c->done = has_done ? malloc(a->done->text.len + 3) : NULL;
    if (c->done) {
        c->done[0] = '[';
        memcpy(c->done + 1, a->done->text.data, a->done->text.len);
        memcpy(c->done + 1 + a->done->text.len, "]", 2);
    }
    c->next = a->n ? uuid_array(b, a->from, a->n) : NULL;
    c->links = a->links ? json_dumps(a->links, JSON_COMPACT) : NULL;
    c->all = a->end ? uuid_array(b, 0, b->n) : NULL;
    c->from = a->from;
    c->n = a->n;
    if ((has_done && !c->done) || (a->n && !c->next) || (a->links && !c->links) ||
        (a->end && !c->all)) {
        step_call_free(c);
        snprintf(err->message, sizeof(err->message), "out of memory");
        return DB_UNAVAILABLE;
    }
    snprintf(c->claim, sizeof(c->claim), "%s", b->claim);
    const char *p[10] = {run->channel, run->campaign_id, c->claim, c->done,    c->next,
                         c->links,     c->all,           c->maxa,  c->backoff, c->lease};
    memcpy(c->p, p, sizeof(p));
    c->stmt = (db_stmt_t){STEP_SQL, 10, c->p};
    return DB_OK;
}

/* Sends one call of sending.step without waiting for it; step_finish reads
 * its result. */
static db_status_t step_send(job_ctx_t *ctx, const sending_run_t *run, const batch_t *b,
                             const step_args_t *a, step_call_t *c, db_error_t *err)
{
    db_status_t st = step_prepare(ctx, run, b, a, c, err);
    if (st != DB_OK)
        return st;
    st = db_session_send(run->eng, &SERVICE, &c->stmt, 1, &c->pending, err);
    if (st != DB_OK)
        step_call_free(c);
    return st;
}

/* Reads the result of a sent step: marks b->go[i] for the messages of its
 * group that may leave now; *status receives the campaign's status. */
static db_status_t step_finish(batch_t *b, step_call_t *c, char *status, size_t statuslen,
                               db_error_t *err)
{
    PGresult *r = NULL;
    db_status_t st = db_session_finish(c->pending, &r, err);
    c->pending = NULL;
    if (st == DB_OK) {
        snprintf(status, statuslen, "%s", PQgetvalue(r, 0, 0));
        mark_go(b, c->from, c->n, PQgetisnull(r, 0, 1) ? "" : PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    step_call_free(c);
    return st;
}

/* One call of sending.step, waiting for its result. */
static db_status_t step(job_ctx_t *ctx, const sending_run_t *run, batch_t *b, const step_args_t *a,
                        char *status, size_t statuslen, db_error_t *err)
{
    step_call_t c;
    db_status_t st = step_send(ctx, run, b, a, &c, err);
    return st == DB_OK ? step_finish(b, &c, status, statuslen, err) : st;
}

/* The batch edge (with overlap): the end of a batch (the results of its
 * last two groups, settled by nobody yet, and its leftover leases) waits to
 * go in one transaction with the first step of the batch claimed ahead,
 * instead of two transactions waited for one after the other. */
typedef struct edge {
    bool pending;
    step_call_t end; /* sending.step(done, end) of the batch before, prepared */
} edge_t;

/* Sends the pending end of a batch on its own (no first step to join it). */
static db_status_t edge_flush(sending_run_t *run, edge_t *e, db_error_t *err)
{
    if (!e->pending)
        return DB_OK;
    e->pending = false;
    double t = now_seconds();
    PGresult *r = NULL;
    db_status_t st = db_session_send(run->eng, &SERVICE, &e->end.stmt, 1, &e->end.pending, err);
    if (st == DB_OK)
        st = db_session_finish(e->end.pending, &r, err);
    if (st == DB_OK)
        snprintf(run->status, sizeof(run->status), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    step_call_free(&e->end);
    run->clock.db += lap(&t);
    return st;
}

/* The first step of batch b (a: its first group) joined with the pending
 * end of the batch before, in one transaction: that batch's last results
 * are settled and its leftover leases go back in the commit that puts b's
 * first group in flight, so a worker still never has more than two groups
 * in flight. A failure loses both, as a failed step does: what was in
 * flight runs out into unknown, nothing of b leaves. */
static db_status_t step_edge(job_ctx_t *ctx, sending_run_t *run, batch_t *b, const step_args_t *a,
                             edge_t *e, char *status, size_t statuslen, db_error_t *err)
{
    step_call_t c;
    db_status_t st = step_prepare(ctx, run, b, a, &c, err);
    if (st != DB_OK)
        return st; /* e stays pending: send_loop sends it on its own */
    e->pending = false;
    db_stmt_t stmts[2] = {e->end.stmt, c.stmt};
    db_pending_t *pending = NULL;
    PGresult *r[2] = {NULL, NULL};
    st = db_session_send(run->eng, &SERVICE, stmts, 2, &pending, err);
    if (st == DB_OK)
        st = db_session_finish(pending, r, err);
    if (st == DB_OK) {
        snprintf(run->status, sizeof(run->status), "%s", PQgetvalue(r[0], 0, 0));
        snprintf(status, statuslen, "%s", PQgetvalue(r[1], 0, 0));
        mark_go(b, c.from, c.n, PQgetisnull(r[1], 0, 1) ? "" : PQgetvalue(r[1], 0, 1));
    }
    PQclear(r[0]);
    PQclear(r[1]);
    step_call_free(&c);
    step_call_free(&e->end);
    return st;
}

/* The result of e-mail i as sending.step records it. The provider's texts
 * come from a peer (an SMTP server's reply may be Latin-1, a truncating copy
 * may cut a character) and jansson refuses what is not UTF-8: scrubbed, so
 * that a result is never lost (a lost result would leave the message in
 * flight until its lease ran out, then `unknown`). */
static void email_result(const batch_t *b, size_t i, results_t *out)
{
    provider_email_result_t r = b->results[i];
    cd_utf8_scrub(r.provider_id);
    cd_utf8_scrub(r.error);
    cd_buf_t *t = &out->text;
    size_t mark = t->len;
    bool ok = (!out->n || cd_buf_add(t, ",", 1)) && cd_buf_adds(t, "{\"id\":") &&
              cd_buf_add_json_str(t, b->ids[i]) && cd_buf_adds(t, ",\"outcome\":\"") &&
              cd_buf_adds(t, outcome_name(r.outcome)) && cd_buf_adds(t, "\",\"provider_id\":") &&
              cd_buf_add_json_str(t, r.provider_id) && cd_buf_adds(t, ",\"error\":") &&
              cd_buf_add_json_str(t, r.error) && cd_buf_add(t, "}", 1);
    results_end(out, mark, ok, b->ids[i]);
}

/* Composes the e-mails of the group [from, from + n) and returns their
 * tracked links, an array parallel to the group (null where none). */
static json_t *compose_group(const sending_run_t *run, batch_t *b, size_t from, size_t n)
{
    json_t *links = json_array();
    for (size_t i = from; i < from + n; i++) {
        compose_one(run, b, i);
        json_t *l = b->composed[i] && json_array_size(b->out[i].links) > 0
                        ? json_incref(b->out[i].links)
                        : json_null();
        if (links)
            json_array_append_new(links, l);
        else
            json_decref(l);
    }
    return links;
}

/* Hands over the messages of the group that may go; appends their results
 * to done. */
static void send_email_group(const sending_run_t *run, batch_t *b, size_t from, size_t n,
                             results_t *done)
{
    provider_email_t send[PROVIDER_BATCH_MAX];
    size_t map[PROVIDER_BATCH_MAX], k = 0;
    for (size_t i = from; i < from + n; i++)
        if (b->go[i] && b->composed[i]) {
            send[k] = b->msgs[i];
            map[k++] = i;
        }
    if (k > 0) {
        provider_email_result_t res[PROVIDER_BATCH_MAX];
        run->provider->ops->send_batch(run->provider, send, k, res);
        for (size_t j = 0; j < k; j++)
            b->results[map[j]] = res[j];
    }
    for (size_t i = from; i < from + n; i++)
        if (b->go[i]) /* not composed: its permanent failure */
            email_result(b, i, done);
}

/* ------------------------------------------------------------- the jobs */

/* After the last batch: a campaign still sending gets a worker at the
 * earliest time something can change: a waiting message's retry, or the end
 * of the lease of a message another worker holds (if that worker died, the
 * message becomes unknown then and the campaign can finish). */
static job_result_t after_last_batch(job_ctx_t *ctx, const sending_run_t *run, const char *channel)
{
    const app_t *app = job_app(ctx);
    char workers[16];
    snprintf(workers, sizeof(workers), "%ld", app->cfg.send_workers);
    const char *p[3] = {run->campaign_id, workers, channel};
    PGresult *r = NULL;
    db_error_t err = {0};
    /* A retry slot named by its time, so that it never collides with the
     * running worker's own dedupe key. */
    db_status_t st =
        db_run1(job_conn(ctx), &SERVICE,
                "select jobs.enqueue('send.worker',"
                "  jsonb_build_object('campaign_id', $1::uuid, 'channel', $3::text), f.next_retry,"
                "  'send.retry:' || $1 || ':' || extract(epoch from f.next_retry)::bigint, 100,"
                "  '5 seconds')"
                " from sending.finish_if_done($1::uuid) f"
                " where f.status = 'sending' and f.next_retry is not null and $2::int > 0",
                3, p, &r, &err);
    PQclear(r);
    if (st != DB_OK) {
        job_set_error(ctx, "finish: %s", err.message);
        return JOB_RETRY;
    }
    return JOB_DONE;
}

/* ------------------------------------------------------------- SMS */

/* Renders and hands over message i of a claimed SMS batch; appends its
 * result to done for sending.step. */
static void send_one_sms(const sending_run_t *run, const batch_t *b, size_t i, results_t *done)
{
    const json_t *k = b->contacts[i];
    tpl_contact_t contact = {jstr(k, "first_name"), jstr(k, "last_name"), jstr(k, "email"),
                             jstr(k, "phone"), json_object_get(k, "attributes")};
    provider_sms_result_t r;
    memset(&r, 0, sizeof(r));
    cd_buf_t body;
    cd_buf_init(&body, 64 * 1024);
    const char *src = run->c.str[SC_BODY];
    /* the first message to a number says how to opt out (the claim tells) */
    if (!tpl_render(src, strlen(src), TPL_TEXT, &contact, &body, r.error, sizeof(r.error)) ||
        (json_is_true(json_object_get(k, "first_to_number")) &&
         !cd_buf_adds(&body, "\nReply STOP to opt out"))) {
        r.outcome = PROVIDER_PERMFAIL;
    } else {
        char callback[640];
        snprintf(callback, sizeof(callback), "%s/webhooks/twilio/status", run->base_url);
        provider_sms_t m = {b->ids[i], b->to[i], run->c.str[SC_SMS_SENDER], cd_buf_str(&body),
                            callback};
        run->sms->ops->send(run->sms, &m, &r);
    }
    /* the provider's texts as for e-mail (email_result), and the body the
     * template rendered (UTF-8 from jsonb today; scrubbed so that the result
     * of an accepted message is never lost to it) */
    cd_utf8_scrub(r.sid);
    cd_utf8_scrub(r.error);
    if (body.len)
        cd_utf8_scrub(body.data);
    /* no price yet: NULL ("not priced", the sms.price job asks later), not 0 (free) */
    char num[48] = "null", segs[24];
    if (r.priced) { /* exact: the millionths as a decimal, never a double's %.17g */
        long long m = r.cost_micros < 0 ? -r.cost_micros : r.cost_micros;
        snprintf(num, sizeof(num), "%s%lld.%06lld", r.cost_micros < 0 ? "-" : "", m / 1000000,
                 m % 1000000);
    }
    snprintf(segs, sizeof(segs), "%d", r.segments);
    cd_buf_t *t = &done->text;
    size_t mark = t->len;
    bool ok =
        (!done->n || cd_buf_add(t, ",", 1)) && cd_buf_adds(t, "{\"id\":") &&
        cd_buf_add_json_str(t, b->ids[i]) && cd_buf_adds(t, ",\"outcome\":\"") &&
        cd_buf_adds(t, outcome_name(r.outcome)) && cd_buf_adds(t, "\",\"sid\":") &&
        cd_buf_add_json_str(t, r.sid) && cd_buf_adds(t, ",\"segments\":") && cd_buf_adds(t, segs) &&
        cd_buf_adds(t, ",\"cost\":") && cd_buf_adds(t, num) && cd_buf_adds(t, ",\"body\":") &&
        cd_buf_add_json_str(t, body.len ? cd_buf_str(&body) : "") &&
        cd_buf_adds(t, ",\"error\":") && cd_buf_add_json_str(t, r.error) && cd_buf_add(t, "}", 1);
    results_end(done, mark, ok, b->ids[i]);
    cd_buf_free(&body);
}

/* How many messages one step puts in flight together: what one provider
 * call carries (SendGrid: its requests' personalizations, up to
 * SEND_IN_FLIGHT, so that its crash bound is the others'; no overlap), else
 * the group of SEND_IN_FLIGHT messages, handed over one after the other on
 * the worker's connection (SMTP: one send_batch call). With overlap
 * (SEND_IN_FLIGHT >= 2, SMTP and SMS), a worker holds two groups in flight
 * at once (one being handed over, the next waiting for it), so a group is
 * at most SEND_IN_FLIGHT / 2 (sending__balanced_group evens a batch's
 * groups out): a worker never has more than SEND_IN_FLIGHT messages in
 * flight. */
static size_t group_size(const sending_run_t *run, long in_flight, bool *overlap)
{
    *overlap = false;
    size_t g = 1;
    if (!run->sms && run->provider->ops->max_in_flight) {
        g = run->provider->ops->max_in_flight;
        if (in_flight >= 1 && (size_t)in_flight < g)
            g = (size_t)in_flight;
    } else if (in_flight >= 2) {
        *overlap = true;
        g = (size_t)in_flight / 2;
    }
    return g > PROVIDER_BATCH_MAX ? PROVIDER_BATCH_MAX : g;
}

/* Hands over the messages of the group [from, from + n) that may go;
 * appends their results to done and counts the time in the provider. */
static void send_group(sending_run_t *run, batch_t *b, size_t from, size_t n, results_t *done)
{
    double t = now_seconds();
    if (run->sms) {
        for (size_t k = from; k < from + n; k++)
            if (b->go[k])
                send_one_sms(run, b, k, done);
    } else {
        send_email_group(run, b, from, n, done);
    }
    run->clock.provider += lap(&t);
    for (size_t k = from; k < from + n; k++)
        run->clock.handed += b->go[k];
}

/* Settles the last group and ends the batch (its leftover leases go back). */
static db_status_t end_batch(job_ctx_t *ctx, sending_run_t *run, batch_t *b, const results_t *done,
                             db_error_t *err)
{
    step_args_t a = {.done = done, .end = true};
    char status[32] = "";
    db_status_t st = step(ctx, run, b, &a, status, sizeof(status), err);
    if (st == DB_OK)
        snprintf(run->status, sizeof(run->status), "%s", status);
    return st;
}

/* The groups of a claimed batch one after the other: per group one
 * sending.step that settles the previous group's messages and puts this
 * one's in flight, then its provider conversations. done (empty) receives
 * the results not settled yet (for end_batch); false after a failed step
 * (err says why). */
static bool run_groups_serial(job_ctx_t *ctx, sending_run_t *run, batch_t *b, size_t g,
                              char *status, size_t statuslen, results_t *done, db_error_t *err)
{
    for (size_t i = 0; i < b->n && strcmp(status, "sending") == 0; i += g) {
        step_args_t a = {.done = done, .from = i, .n = b->n - i < g ? b->n - i : g};
        a.links = run->sms ? NULL : compose_group(run, b, a.from, a.n);
        double t = now_seconds();
        db_status_t st = step(ctx, run, b, &a, status, statuslen, err);
        run->clock.db += lap(&t);
        json_decref(a.links);
        results_reset(done);
        if (st != DB_OK)
            return false;
        send_group(run, b, a.from, a.n, done);
    }
    return true;
}

/* Sends the claim of the next batch into nb, to be read after the current
 * batch's last group, when the rate lets that batch go now; false when it
 * is not sent: the rate says wait, or the database refused. The next batch
 * then claims as usual, after the last group: the wait for the rate never
 * comes between a group's step, which marks it in flight, and its hand-over
 * (a crash then would leave messages `unknown` that never left). */
static bool claim_ahead(job_ctx_t *ctx, sending_run_t *run, batch_t *nb, claim_call_t *cc)
{
    db_error_t err = {0};
    return pace_claim(ctx, run, true) && claim_send(ctx, run, nb, cc, &err) == DB_OK;
}

/* The claim of the next batch runs while a batch's last group is handed
 * over: a last group of 2 hid almost none of it. */
size_t sending__balanced_group(size_t n, size_t g)
{
    if (n == 0 || g == 0)
        return g;
    size_t groups = (n + g - 1) / g;
    return (n + groups - 1) / groups;
}

/* The groups overlapped with the database: while group k is handed over,
 * the step that settles group k-1 and puts group k+1 in flight runs on the
 * engine's connection; group k+1 leaves only once that step's result (its
 * go flags, the campaign's status) is read. A worker thus holds at most two
 * groups in flight. A failed step leaves what was in flight to run out into
 * unknown: nothing of group k+1 leaves. The last group's results and the
 * one before it are settled together by end_batch; while the last group is
 * handed over, the next batch is claimed into next_batch (NULL: not). */
static bool run_groups_overlap(job_ctx_t *ctx, sending_run_t *run, batch_t *b, size_t g,
                               batch_t *next_batch, edge_t *e, char *status, size_t statuslen,
                               results_t *done, db_error_t *err)
{
    g = sending__balanced_group(b->n, g);
    step_args_t a = {.n = b->n < g ? b->n : g};
    a.links = run->sms ? NULL : compose_group(run, b, 0, a.n);
    double t = now_seconds();
    db_status_t st = e->pending ? step_edge(ctx, run, b, &a, e, status, statuslen, err)
                                : step(ctx, run, b, &a, status, statuslen, err);
    run->clock.db += lap(&t);
    json_decref(a.links);
    if (st != DB_OK)
        return false;
    /* done: the results of the group before, not settled yet */
    results_t cur;
    results_init(&cur);
    for (size_t i = 0; i < b->n && strcmp(status, "sending") == 0;) {
        size_t n = b->n - i < g ? b->n - i : g, next = i + n;
        step_call_t call = {0};
        bool ahead = next < b->n;
        if (ahead) {
            step_args_t na = {.done = done, .from = next, .n = b->n - next < g ? b->n - next : g};
            na.links = run->sms ? NULL : compose_group(run, b, na.from, na.n);
            st = step_send(ctx, run, b, &na, &call, err);
            json_decref(na.links);
            if (st != DB_OK)
                break; /* group i is in flight and stays there: it runs out into unknown */
        }
        /* The last group: the next batch is claimed meanwhile (no step runs). */
        claim_call_t cc;
        bool claiming = !ahead && next_batch && claim_ahead(ctx, run, next_batch, &cc);
        results_reset(&cur);
        send_group(run, b, i, n, &cur);
        t = now_seconds();
        if (ahead) {
            st = step_finish(b, &call, status, statuslen, err);
            run->clock.db_overlapped += lap(&t);
        }
        if (claiming) {
            db_error_t cerr = {0};
            /* a failed claim is merely not ahead: the next batch claims again */
            if (claim_finish(next_batch, &cc, &cerr) != DB_OK)
                batch_free(next_batch);
            run->clock.db_overlapped += lap(&t);
        }
        if (st != DB_OK)
            break;
        if (ahead) { /* done was settled by that step: cur takes its place */
            results_t settled = *done;
            *done = cur;
            cur = settled;
        } else {
            results_append(done, &cur);
        }
        i = next;
    }
    results_free(&cur);
    return st == DB_OK;
}

/* Ends batch b: at once (end_batch), or, when the next batch was claimed
 * ahead with messages, prepared into e to go with that batch's first step
 * (step_edge). */
static db_status_t end_or_defer(job_ctx_t *ctx, sending_run_t *run, batch_t *b,
                                const results_t *done, const batch_t *next, edge_t *e,
                                db_error_t *err)
{
    step_args_t a = {.done = done, .end = true};
    if (next && next->claimed && next->n > 0 && strcmp(run->status, "sending") == 0 &&
        step_prepare(ctx, run, b, &a, &e->end, err) == DB_OK) {
        e->pending = true;
        return DB_OK;
    }
    double t = now_seconds();
    db_status_t st = end_batch(ctx, run, b, done, err);
    run->clock.db += lap(&t);
    return st;
}

/* One batch: claim (leases; unless claimed ahead into b), then its groups
 * (run_groups_serial or run_groups_overlap, which claims the next batch into
 * next); a last step settles and ends the batch (end_or_defer: with
 * overlap, together with the next batch's first step). A failed step
 * leaves what was in flight to run out into unknown (never resent).
 * *claimed is the number of messages claimed (0: nothing due). */
static job_result_t run_batch(job_ctx_t *ctx, sending_run_t *run, batch_t *b, batch_t *next,
                              edge_t *e, size_t *claimed)
{
    const app_t *app = job_app(ctx);
    db_error_t err = {0};
    *claimed = 0;
    bool overlap;
    size_t g = group_size(run, app->cfg.send_in_flight, &overlap);
    if (e->pending && !(overlap && b->claimed && b->n > 0) && edge_flush(run, e, &err) != DB_OK) {
        job_set_error(ctx, "settle: %s", err.message);
        return JOB_RETRY;
    }
    if (!b->claimed) { /* not claimed ahead: wait for the rate, then claim */
        if (!pace_claim(ctx, run, false))
            return JOB_RETRY;
        double t = now_seconds();
        db_status_t st = claim(ctx, run, b, &err);
        run->clock.db += lap(&t);
        if (st != DB_OK) {
            job_set_error(ctx, "claim: %s", err.message);
            return JOB_RETRY;
        }
    }
    *claimed = b->n;
    if (b->n == 0)
        return JOB_DONE;
    char status[32] = "sending";
    results_t done;
    results_init(&done);
    bool ok = overlap
                  ? run_groups_overlap(ctx, run, b, g, next, e, status, sizeof(status), &done, &err)
                  : run_groups_serial(ctx, run, b, g, status, sizeof(status), &done, &err);
    if (!ok) {
        results_free(&done);
        job_set_error(ctx, "step: %s", err.message);
        return JOB_RETRY;
    }
    snprintf(run->status, sizeof(run->status), "%s", status);
    db_status_t st;
    if (overlap) {
        st = end_or_defer(ctx, run, b, &done, next, e, &err);
    } else {
        double t = now_seconds();
        st = end_batch(ctx, run, b, &done, &err);
        run->clock.db += lap(&t);
    }
    results_free(&done);
    if (st != DB_OK) {
        job_set_error(ctx, "settle: %s", err.message);
        return JOB_RETRY;
    }
    return JOB_DONE;
}

/* Runs batches until nothing is due, then arranges the next look
 * (after_last_batch). */
static job_result_t send_loop(job_ctx_t *ctx, sending_run_t *run)
{
    batch_t *pair = calloc(2, sizeof(*pair)), *b = pair, *next = pair ? pair + 1 : NULL;
    if (!pair) {
        job_set_error(ctx, "out of memory");
        return JOB_RETRY;
    }
    job_result_t res = JOB_DONE;
    double started = now_seconds();
    edge_t edge = {0};
    for (;;) {
        if (!job_heartbeat(ctx)) {
            batch_free(b); /* claimed ahead: its leases run out, as below */
            res = JOB_RETRY;
            break;
        }
        size_t claimed = 0;
        res = run_batch(ctx, run, b, next, &edge, &claimed);
        batch_free(b);
        if (res != JOB_DONE || claimed == 0) {
            /* a batch claimed ahead is let go: its leases run out (nothing
             * of it is in flight), and it is claimed again */
            batch_free(next);
            if (res == JOB_DONE)
                res = after_last_batch(ctx, run, run->channel);
            break;
        }
        batch_t *tmp = b; /* the batch claimed ahead (if any) is next */
        b = next;
        next = tmp;
    }
    db_error_t err = {0};
    if (edge_flush(run, &edge, &err) != DB_OK) { /* the job stopped between two batches */
        job_set_error(ctx, "settle: %s", err.message);
        res = JOB_RETRY;
    }
    free(pair);
    double wall = now_seconds() - started;
    const sending_clock_t *k = &run->clock;
    if (k->handed > 0 && wall > 0)
        log_info("send worker %s %s: %zu messages in %.3f s: provider busy %.1f %%, "
                 "waiting for the database %.1f %% (%.1f %% for steps overlapped with a group), "
                 "the rest (composing, pacing, job) %.1f %%",
                 run->campaign_id, run->channel, k->handed, wall, 100 * k->provider / wall,
                 100 * (k->db + k->db_overlapped) / wall, 100 * k->db_overlapped / wall,
                 100 * (wall - k->provider - k->db - k->db_overlapped) / wall);
    return res;
}

/* Takes one of the campaign's SEND_WORKERS slots: a session advisory lock on
 * the job's connection, so that at most SEND_WORKERS workers hand over one
 * campaign's messages at a time, in all processes together (a process that
 * dies lets go of its slots with its connections). Returns the slot, 0 when
 * all are taken (the workers holding them go on), -1 on a database error. */
static int take_slot(job_ctx_t *ctx, const char *campaign_id, db_error_t *err)
{
    long workers = job_app(ctx)->cfg.send_workers;
    for (long k = 1; k <= workers && k <= 64; k++) {
        char slot[16];
        snprintf(slot, sizeof(slot), "%ld", k);
        const char *p[2] = {campaign_id, slot};
        PGresult *r = NULL;
        if (db_run1(job_conn(ctx), &SERVICE,
                    "select pg_try_advisory_lock(hashtext('send:' || $1), $2::int)", 2, p, &r,
                    err) != DB_OK)
            return -1;
        bool got = PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (got)
            return (int)k;
    }
    return 0;
}

static void give_slot(job_ctx_t *ctx, const char *campaign_id, int slot)
{
    char s[16];
    snprintf(s, sizeof(s), "%d", slot);
    const char *p[2] = {campaign_id, s};
    PGresult *r = NULL;
    db_error_t err = {0};
    /* A failure here means the connection is gone, and the lock with it. */
    if (db_run1(job_conn(ctx), &SERVICE,
                "select pg_advisory_unlock(hashtext('send:' || $1), $2::int)", 2, p, &r,
                &err) == DB_OK)
        PQclear(r);
}

/* A campaign's workers after its first write the rest of its audience
 * before they send, a slice per transaction (migration 082), on their own
 * connection while the first worker sends on its; the claims then rarely
 * write a slice themselves. On a database error the claims write the rest. */
static void materialise_rest(job_ctx_t *ctx, const char *campaign_id)
{
    const char *p[1] = {campaign_id};
    for (bool done = false; !done && job_heartbeat(ctx);) {
        PGresult *r = NULL;
        db_error_t err = {0};
        if (db_run1(job_conn(ctx), &SERVICE, "select sending.materialise_more($1::uuid, 1000)", 1,
                    p, &r, &err) != DB_OK)
            return;
        done = PQntuples(r) != 1 || PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
    }
}

/* The worker's first look: a slice of the audience's recipients while it
 * is not all written (migration 082; without the request statement
 * timeout), then messages whose worker died turned into unknown. */
static db_status_t recover(job_ctx_t *ctx, const char *campaign_id, db_error_t *err)
{
    const char *p[1] = {campaign_id};
    PGresult *r[3] = {NULL, NULL, NULL};
    db_stmt_t st[3] = {
        {"select set_config('statement_timeout', '0', true)", 0, NULL},
        {"select sending.ensure_materialised($1::uuid)", 1, p},
        {"select sending.recover($1::uuid)", 1, p},
    };
    db_status_t s = db_run_as(job_conn(ctx), &SERVICE, st, 3, r, err);
    for (int i = 0; i < 3; i++)
        PQclear(r[i]);
    return s;
}

/* The engine's connection of this job thread (NULL: out of memory), kept from
 * one send job to the next and closed when the thread ends: a new backend's
 * first claim plans the engine's statements and loads their catalog entries,
 * 50-100 ms of PostgreSQL's CPU, and every send job (a campaign's workers, a
 * resume, the look after the last batch) began with one (bench/RESULTS.md
 * "Session 18"). A job that lost the connection leaves it closed; the next
 * one's first statement opens it again. */
static pthread_key_t eng_key;
static pthread_once_t eng_once = PTHREAD_ONCE_INIT;
static bool eng_key_ok;

static void eng_conn_free(void *c)
{
    db_conn_free(c);
}

static void eng_key_make(void)
{
    eng_key_ok = pthread_key_create(&eng_key, eng_conn_free) == 0;
}

static db_conn_t *engine_conn(void)
{
    if (pthread_once(&eng_once, eng_key_make) != 0 || !eng_key_ok)
        return NULL;
    db_conn_t *c = pthread_getspecific(eng_key);
    if (c) {
        /* one the server closed while it was idle would fail the job's
         * first claim, and the job into its back-off */
        db_conn_drop_if_closed(c);
        return c;
    }
    if ((c = db_conn_new()) != NULL && pthread_setspecific(eng_key, c) != 0) {
        db_conn_free(c);
        c = NULL;
    }
    return c;
}

static job_result_t handle_worker(job_ctx_t *ctx, const job_t *job)
{
    const app_t *app = job_app(ctx);
    const char *id = json_string_value(json_object_get(job->payload, "campaign_id"));
    const char *channel = json_string_value(json_object_get(job->payload, "channel"));
    if (!id || !cd_is_uuid(id) || !channel) {
        job_set_error(ctx, "payload needs campaign_id and channel");
        return JOB_FAIL;
    }
    db_error_t err = {0};
    if (recover(ctx, id, &err) != DB_OK) {
        job_set_error(ctx, "recover: %s", err.message);
        return JOB_RETRY;
    }
    bool sms = strcmp(channel, "sms") == 0;
    sending_run_t run = {.campaign_id = id, .channel = sms ? "sms" : "email"};
    if (sending__campaign_load(job_conn(ctx), id, &run.c, &err) != DB_OK) {
        job_set_error(ctx, "load campaign: %s", err.message);
        return err.sqlstate[0] == 'P' ? JOB_FAIL : JOB_RETRY;
    }
    job_result_t res = JOB_DONE;
    if (strcmp(run.c.str[SC_STATUS], "sending") != 0)
        goto done; /* paused, cancelled or finished meanwhile */
    /* The admin's settings are read again for every run. */
    if (provider_config_load(job_conn(ctx), &app->cfg, &run.set, &err) != DB_OK) {
        job_set_error(ctx, "provider settings: %s", err.message);
        res = JOB_RETRY;
        goto done;
    }
    if (!*run.c.str[SC_SMS_SENDER] && *run.set.twilio_from) {
        /* no sender on the campaign: TWILIO_FROM */
        char *from = strdup(run.set.twilio_from);
        if (from) {
            free(run.c.str[SC_SMS_SENDER]);
            run.c.str[SC_SMS_SENDER] = from;
        }
    }
    bool configured = false;
    char perr[PROVIDER_ERROR_MAX];
    if (sms)
        run.sms = provider_sms_open(&run.set.ps, &configured, perr, sizeof(perr));
    else
        run.provider = provider_email_open(&run.set.ps, &configured, perr, sizeof(perr));
    if (!run.provider && !run.sms) {
        /* No provider (any more): the messages wait; /send answered 409 before. */
        job_set_error(ctx, "%s", perr);
        res = JOB_RETRY;
        goto done;
    }
    sending__sender(app, &run.set, &run.c, &run.from, &run.from_name);
    sending__base_url(app, run.base_url, sizeof(run.base_url));
    sending__tracking_key(app, run.key);
    int slot = take_slot(ctx, id, &err);
    if (slot < 0) {
        job_set_error(ctx, "worker slot: %s", err.message);
        res = JOB_RETRY;
    } else if (slot > 0) {
        if (slot > 1)
            materialise_rest(ctx, id);
        run.eng = engine_conn();
        res = run.eng ? send_loop(ctx, &run) : JOB_RETRY;
        if (!run.eng)
            job_set_error(ctx, "out of memory");
        give_slot(ctx, id, slot);
    } /* else SEND_WORKERS workers are sending it: they look again when done */
done:
    provider_sms_close(run.sms);
    provider_email_close(run.provider);
    provider_config_free(&run.set);
    sending__campaign_free(&run.c);
    return res;
}

static job_result_t handle_scheduler(job_ctx_t *ctx, const job_t *job)
{
    (void)job;
    char workers[16];
    snprintf(workers, sizeof(workers), "%ld", job_app(ctx)->cfg.send_workers);
    const char *p[1] = {workers};
    PGresult *r = NULL;
    db_error_t err = {0};
    db_status_t st =
        db_run1(job_conn(ctx), &SERVICE, "select sending.start_due($1::int)", 1, p, &r, &err);
    PQclear(r);
    if (st != DB_OK) {
        job_set_error(ctx, "start due campaigns: %s", err.message);
        return JOB_RETRY;
    }
    return JOB_DONE;
}

/* One rendered test message of a campaign to payload.to, for a contact
 * without data (every placeholder shows its default). Not recorded as a
 * message: its tracking links lead nowhere. */
static job_result_t handle_test(job_ctx_t *ctx, const job_t *job)
{
    const app_t *app = job_app(ctx);
    const char *id = json_string_value(json_object_get(job->payload, "campaign_id"));
    const char *to = json_string_value(json_object_get(job->payload, "to"));
    if (!id || !cd_is_uuid(id) || !to) {
        job_set_error(ctx, "payload needs campaign_id and to");
        return JOB_FAIL;
    }
    sending_run_t run = {.campaign_id = id};
    db_error_t err = {0};
    if (sending__campaign_load(job_conn(ctx), id, &run.c, &err) != DB_OK) {
        job_set_error(ctx, "load campaign: %s", err.message);
        return JOB_FAIL;
    }
    job_result_t res = JOB_FAIL;
    char msgid[CD_UUID_LEN + 1], subject[1024];
    bool configured;
    char perr[PROVIDER_ERROR_MAX] = "";
    if (provider_config_load(job_conn(ctx), &app->cfg, &run.set, &err) != DB_OK) {
        job_set_error(ctx, "provider settings: %s", err.message);
        res = JOB_RETRY;
        goto done;
    }
    run.provider = provider_email_open(&run.set.ps, &configured, perr, sizeof(perr));
    if (!run.provider || !cd_random_uuid(msgid)) {
        job_set_error(ctx, "%s", perr[0] ? perr : "no randomness");
        goto done;
    }
    sending__sender(app, &run.set, &run.c, &run.from, &run.from_name);
    sending__base_url(app, run.base_url, sizeof(run.base_url));
    sending__tracking_key(app, run.key);
    tpl_contact_t nobody = {0};
    compose_input_t in = {msgid,
                          run.c.str[SC_SUBJECT],
                          run.c.str[SC_BODY],
                          run.c.str[SC_TEXT],
                          &nobody,
                          run.base_url,
                          run.key,
                          run.c.str[SC_POSTAL]};
    compose_output_t out;
    compose_init(&out);
    if (!compose_email(&in, &out, perr, sizeof(perr))) {
        job_set_error(ctx, "compose: %s", perr);
    } else {
        snprintf(subject, sizeof(subject), "[Test] %s", cd_buf_str(&out.subject));
        provider_email_t m = {msgid,
                              run.from_name,
                              run.from,
                              to,
                              subject,
                              out.html.len ? cd_buf_str(&out.html) : NULL,
                              cd_buf_str(&out.text),
                              out.headers,
                              2};
        provider_email_result_t r;
        run.provider->ops->send_batch(run.provider, &m, 1, &r);
        if (r.outcome == PROVIDER_ACCEPTED)
            res = JOB_DONE;
        else
            job_set_error(ctx, "test message: %s", r.error);
        if (r.outcome == PROVIDER_TEMPFAIL)
            res = JOB_RETRY;
    }
    compose_free(&out);
done:
    provider_email_close(run.provider);
    provider_config_free(&run.set);
    sending__campaign_free(&run.c);
    return res;
}

/* Rolls the delivery counts of the campaigns that changed since the last run
 * (a webhook, an open, a price, a campaign that stopped sending) and of those
 * sending now up into analytics_data, every day of each (migration 084): a
 * transaction per ROLLUP_CAMPAIGNS marked campaigns, until none is left (the
 * first run after the upgrade has every campaign marked). Without the
 * request statement timeout: a campaign of millions of messages takes longer. */
#define ROLLUP_CAMPAIGNS "50"
#define ROLLUP_ROUNDS    1000 /* then the next run goes on */

static job_result_t handle_rollup(job_ctx_t *ctx, const job_t *job)
{
    (void)job;
    for (int round = 0; round < ROLLUP_ROUNDS; round++) {
        /* the campaigns sending now in the first round only */
        const char *p[2] = {ROLLUP_CAMPAIGNS, round == 0 ? "true" : "false"};
        PGresult *r[2] = {NULL, NULL};
        db_stmt_t st[2] = {
            {"select set_config('statement_timeout', '0', true)", 0, NULL},
            {"select more from sending.rollup_due($1::integer, $2::boolean)", 2, p},
        };
        db_error_t err = {0};
        db_status_t s = db_run_as(job_conn(ctx), &SERVICE, st, 2, r, &err);
        bool more = s == DB_OK && PQntuples(r[1]) == 1 && strcmp(PQgetvalue(r[1], 0, 0), "t") == 0;
        PQclear(r[0]);
        PQclear(r[1]);
        if (s != DB_OK) {
            job_set_error(ctx, "roll-up: %s", err.message);
            return JOB_RETRY;
        }
        if (!more)
            break;
    }
    return JOB_DONE;
}

bool sending_register_jobs(const app_t *app)
{
    return jobs_register(SENDING_WORKER_KIND, handle_worker) &&
           jobs_register(SENDING_TEST_KIND, handle_test) &&
           jobs_register(SENDING_ROLLUP_KIND, handle_rollup) &&
           jobs_register_recurring(SENDING_SCHEDULER_KIND, handle_scheduler,
                                   app->cfg.send_scheduler_interval) &&
           (app->cfg.send_rollup_interval == 0 ||
            jobs_register_recurring(SENDING_ROLLUP_RECURRING_KIND, handle_rollup,
                                    app->cfg.send_rollup_interval));
}
