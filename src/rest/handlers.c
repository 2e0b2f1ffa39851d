/*
 * The /rest/v1 endpoints: tables and views (GET, HEAD, POST, PATCH, DELETE), functions
 * (/rpc/<fn>: GET, HEAD, POST) and the OpenAPI root. Each request: identify the caller, parse
 * the query string, Prefer, Range and Accept headers, check everything against the schema
 * cache, build one statement (sql.c), run it in one pipelined transaction as the caller
 * (db_run_as), and answer with the body PostgreSQL built plus the status and headers
 * PostgREST would send (Content-Range, Preference-Applied, Location).
 */
#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "core/jwt.h"
#include "core/log.h"
#include "core/text.h"
#include "db/db.h"
#include "http/body.h"
#include "rest/rest.h"
#include "rest/rest_internal.h"

#define REST_MAX_RESPONSE_HEADERS 16
#define REST_HEADER_VALUE_MAX     4096

/* ==========================================================================================
 * Per-request state
 */

struct out_header {
    char *name; /* both in the request's arena */
    char *value;
};

struct rest_ctx {
    http_request_t *req;
    app_t *app;
    auth_caller_t caller;
    bool have_caller;
    rest_schema_t *schema;
    cd_arena_t arena;
    struct rest_query query;
    struct rest_prefer prefer;
    rest_request_t r;
    json_t *body;
    char *args_text; /* malloc'd (GET rpc arguments) */
    struct out_header headers[REST_MAX_RESPONSE_HEADERS];
    size_t n_headers;
    const char *path; /* the path below /rest/v1, as PostgREST sees it */
};

/* Queues a response header (sent with the reply); names are cut at 64 bytes, values at
 * REST_HEADER_VALUE_MAX. */
static void add_out_header(struct rest_ctx *x, const char *name, const char *value)
{
    if (x->n_headers >= REST_MAX_RESPONSE_HEADERS)
        return;
    struct out_header *h = &x->headers[x->n_headers];
    h->name = cd_arena_strndup(&x->arena, name, 64);
    h->value = cd_arena_strndup(&x->arena, value, REST_HEADER_VALUE_MAX);
    if (h->name && h->value)
        x->n_headers++;
}

static void flush_headers(struct rest_ctx *x)
{
    for (size_t i = 0; i < x->n_headers; i++)
        http_add_header(x->req, x->headers[i].name, x->headers[i].value);
    x->n_headers = 0;
}

/* ==========================================================================================
 * Errors
 */

/* A JSON string of s; bytes that are not UTF-8 (a header echoed in a message) become '?'. */
static json_t *json_text(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t n = strlen(s);
    char *c = malloc(n + 1);
    if (!c)
        return json_string("");
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t len = cd_utf8_char_len(p + i, n - i);
        if (len > 0) {
            memcpy(c + i, s + i, len);
            i += len;
        } else {
            c[i++] = '?';
        }
    }
    c[n] = '\0';
    j = json_string(c);
    free(c);
    return j ? j : json_string("");
}

/* {"code", "message", "details", "hint"}; empty details/hint are null. */
static void reply_error(struct rest_ctx *x, const rest__err_t *e)
{
    json_t *details = NULL;
    if (e->details_json)
        details = json_loads(e->details, 0, NULL);
    if (!details)
        details = *e->details ? json_text(e->details) : json_null();
    json_t *j = json_object();
    json_object_set_new(j, "code", json_string(e->code));
    json_object_set_new(j, "details", details ? details : json_null());
    json_object_set_new(j, "hint", *e->hint ? json_text(e->hint) : json_null());
    json_object_set_new(j, "message", json_text(e->message));
    if (e->status == 401 && x->n_headers == 0)
        add_out_header(x, "WWW-Authenticate", "Bearer");
    flush_headers(x);
    http_reply_json(x->req, e->status, j);
}

static void fail(struct rest_ctx *x, int status, const char *code, const char *message,
                 const char *details, const char *hint)
{
    rest__err_t e;
    rest__fail(&e, status, code, message, details, hint);
    reply_error(x, &e);
}

static void reply_parse_error(struct rest_ctx *x, const struct rest_error *pe)
{
    fail(x, pe->http_status ? pe->http_status : 400, pe->code, pe->message,
         *pe->details ? pe->details : NULL, NULL);
}

static bool caller_is_anon(const struct rest_ctx *x)
{
    return !x->have_caller || strcmp(x->caller.role, "anon") == 0;
}

/* `RAISE SQLSTATE 'PGRST' USING message = '{"code":...}', detail = '{"status":...}'`:
 * the function chooses the whole error (PostgREST's feature). Returns false when the
 * message or detail is not the expected JSON. */
static bool reply_raised(struct rest_ctx *x, const db_error_t *err)
{
    json_t *m = json_loads(err->message, 0, NULL);
    json_t *d = *err->detail ? json_loads(err->detail, 0, NULL) : NULL;
    json_t *status = json_object_get(d, "status");
    bool ok = json_is_object(m) && json_is_string(json_object_get(m, "code")) &&
              json_is_string(json_object_get(m, "message")) && json_is_integer(status) &&
              json_integer_value(status) >= 100 && json_integer_value(status) <= 599;
    if (!ok) {
        json_decref(m);
        json_decref(d);
        return false;
    }
    json_t *hs = json_object_get(d, "headers");
    const char *k;
    json_t *v;
    if (json_is_object(hs)) {
        json_object_foreach(hs, k, v)
        {
            if (json_is_string(v))
                add_out_header(x, k, json_string_value(v));
        }
    }
    json_t *body =
        json_pack("{s:O, s:O, s:O, s:O}", "code", json_object_get(m, "code"), "details",
                  json_object_get(m, "details") ? json_object_get(m, "details") : json_null(),
                  "hint", json_object_get(m, "hint") ? json_object_get(m, "hint") : json_null(),
                  "message", json_object_get(m, "message"));
    flush_headers(x);
    http_reply_json(x->req, (int)json_integer_value(status), body);
    json_decref(m);
    json_decref(d);
    return true;
}

static void reply_db_error(struct rest_ctx *x, db_status_t st, const db_error_t *err)
{
    if (st == DB_UNAVAILABLE) {
        char v[16];
        snprintf(v, sizeof(v), "%d", db_retry_after());
        add_out_header(x, "Retry-After", v);
        /* libpq's message names socket paths and users: it goes to the log
         * (db.c logs it), not to the client */
        fail(x, 503, "PGRST001", "Database client error. Retrying the connection.", NULL, NULL);
        return;
    }
    if (strcmp(err->sqlstate, "PGRST") == 0) {
        if (reply_raised(x, err))
            return;
        fail(x, 500, "PGRST121", "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error",
             "Invalid JSON value for MESSAGE or DETAIL",
             "MESSAGE must be a JSON object with obligatory keys: 'code', 'message' and "
             "optional keys: 'details', 'hint'.");
        return;
    }
    int status = db_sqlstate_http_status(err->sqlstate, caller_is_anon(x));
    if (strcmp(err->sqlstate, "21000") == 0) {
        size_t n = strlen(err->message);
        static const char sfx[] = "requires a WHERE clause";
        if (n >= sizeof(sfx) - 1 && strcmp(err->message + n - (sizeof(sfx) - 1), sfx) == 0)
            status = 400; /* pg-safeupdate's refusal is the client's mistake */
    }
    if (status >= 500)
        log_error("rest: %s %s failed: %s (SQLSTATE %s)", x->req->method, x->req->path,
                  err->message, err->sqlstate);
    fail(x, status, err->sqlstate, err->message, *err->detail ? err->detail : NULL,
         *err->hint ? err->hint : NULL);
}

/* ==========================================================================================
 * Request headers: Prefer, Range, Accept, profiles
 */

struct prefer_values {
    const char *v[32];
    size_t len[32];
    size_t n;
};

static void collect_prefer(void *arg, const char *name, const char *value)
{
    struct prefer_values *p = arg;
    if (strcasecmp(name, "Prefer") == 0 && p->n < CD_ARRAY_LEN(p->v)) {
        p->v[p->n] = value;
        p->len[p->n] = strlen(value);
        p->n++;
    }
}

/* Trims spaces of [*b, *e). */
static void trim(const char **b, const char **e)
{
    while (*b < *e && (**b == ' ' || **b == '\t'))
        (*b)++;
    while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

static bool token_is(const char *b, const char *e, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(e - b) == n && strncasecmp(b, word, n) == 0;
}

enum rest__accept rest__parse_accept(const char *h, bool root, bool *strip_nulls)
{
    *strip_nulls = false;
    if (!h || !*h)
        return REST__ACCEPT_JSON;
    const char *p = h;
    bool any_item = false;
    while (*p) {
        const char *e = strchr(p, ',');
        if (!e)
            e = p + strlen(p);
        const char *semi = memchr(p, ';', (size_t)(e - p));
        const char *tb = p, *te = semi ? semi : e;
        trim(&tb, &te);
        bool nulls = false;
        for (const char *q = semi; q && q < e;) {
            const char *pe = memchr(q + 1, ';', (size_t)(e - q - 1));
            if (!pe)
                pe = e;
            const char *pb = q + 1, *pend = pe;
            trim(&pb, &pend);
            if (token_is(pb, pend, "nulls=stripped"))
                nulls = true;
            q = pe < e ? pe : NULL;
        }
        if (te > tb)
            any_item = true;
        enum rest__accept k = REST__ACCEPT_NONE;
        if (token_is(tb, te, "*/*") || token_is(tb, te, "application/*") ||
            token_is(tb, te, "application/json") ||
            token_is(tb, te, "application/vnd.pgrst.array+json") ||
            token_is(tb, te, "application/vnd.pgrst.array"))
            k = root ? REST__ACCEPT_OPENAPI : REST__ACCEPT_JSON;
        else if (token_is(tb, te, "application/vnd.pgrst.object+json") ||
                 token_is(tb, te, "application/vnd.pgrst.object"))
            k = root ? REST__ACCEPT_NONE : REST__ACCEPT_SINGULAR;
        else if (token_is(tb, te, "text/csv"))
            k = root ? REST__ACCEPT_NONE : REST__ACCEPT_CSV;
        else if (token_is(tb, te, "application/openapi+json"))
            k = root ? REST__ACCEPT_OPENAPI : REST__ACCEPT_NONE;
        if (k != REST__ACCEPT_NONE) {
            *strip_nulls = nulls;
            return k;
        }
        p = *e ? e + 1 : e;
    }
    return any_item ? REST__ACCEPT_NONE : REST__ACCEPT_JSON;
}

static bool check_profile(struct rest_ctx *x, bool write)
{
    const char *h = http_header(x->req, write ? "Content-Profile" : "Accept-Profile");
    if (!h || strcmp(h, "public") == 0)
        return true;
    char msg[REST_ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof(msg), "Invalid schema: %.200s", h);
    fail(x, 406, "PGRST106", msg, NULL, "Only the following schemas are exposed: public");
    return false;
}

/* The raw query string without apikey=... (the gateway's key, never a filter). */
static char *query_without_apikey(struct rest_ctx *x, size_t *len)
{
    const char *q = x->req->raw_query ? x->req->raw_query : "";
    size_t n = strlen(q);
    char *outq = cd_arena_alloc(&x->arena, n + 1);
    if (!outq)
        return NULL;
    size_t w = 0;
    const char *p = q;
    while (*p) {
        const char *e = strchr(p, '&');
        if (!e)
            e = p + strlen(p);
        size_t klen = strcspn(p, "=&");
        bool skip = klen == 6 && strncmp(p, "apikey", 6) == 0;
        if (!skip && e > p) {
            if (w)
                outq[w++] = '&';
            memcpy(outq + w, p, (size_t)(e - p));
            w += (size_t)(e - p);
        }
        p = *e ? e + 1 : e;
    }
    outq[w] = '\0';
    *len = w;
    return outq;
}

/* ==========================================================================================
 * Responses
 */

static const char *media_type(const rest_request_t *r)
{
    switch (r->media) {
    case REST_MEDIA_SINGULAR:
        return "application/vnd.pgrst.object+json; charset=utf-8";
    case REST_MEDIA_CSV:
        return "text/csv; charset=utf-8";
    default:
        return "application/json; charset=utf-8";
    }
}

/* PostgREST's Preference-Applied, in its order. */
static void preference_applied(struct rest_ctx *x, bool resolution, bool missing, bool ret,
                               bool count, bool max_affected)
{
    const struct rest_prefer *p = &x->prefer;
    char v[256] = "";
    size_t w = 0;
#define APPEND(s)                                                                                  \
    do {                                                                                           \
        int k_ = snprintf(v + w, sizeof(v) - w, "%s%s", w ? ", " : "", (s));                       \
        if (k_ > 0 && (size_t)k_ < sizeof(v) - w)                                                  \
            w += (size_t)k_;                                                                       \
    } while (0)
    if (resolution && p->resolution == REST_RESOLUTION_MERGE_DUPLICATES)
        APPEND("resolution=merge-duplicates");
    if (resolution && p->resolution == REST_RESOLUTION_IGNORE_DUPLICATES)
        APPEND("resolution=ignore-duplicates");
    if (missing && p->missing == REST_MISSING_DEFAULT)
        APPEND("missing=default");
    if (missing && p->missing == REST_MISSING_NULL)
        APPEND("missing=null");
    if (ret && p->ret == REST_RETURN_REPRESENTATION)
        APPEND("return=representation");
    if (ret && p->ret == REST_RETURN_MINIMAL)
        APPEND("return=minimal");
    if (ret && p->ret == REST_RETURN_HEADERS_ONLY)
        APPEND("return=headers-only");
    if (count && p->count == REST_COUNT_EXACT)
        APPEND("count=exact");
    if (count && p->count == REST_COUNT_PLANNED)
        APPEND("count=planned");
    if (count && p->count == REST_COUNT_ESTIMATED)
        APPEND("count=estimated");
    if (p->handling == REST_HANDLING_STRICT)
        APPEND("handling=strict");
    if (p->handling == REST_HANDLING_LENIENT)
        APPEND("handling=lenient");
    if (max_affected && p->handling == REST_HANDLING_STRICT && p->has_max_affected) {
        char m[40];
        snprintf(m, sizeof(m), "max-affected=%" PRId64, p->max_affected);
        APPEND(m);
    }
#undef APPEND
    if (w)
        add_out_header(x, "Preference-Applied", v);
}

/* PostgREST's contentRangeH. total < 0: unknown. */
static void content_range(struct rest_ctx *x, int64_t lower, int64_t upper, int64_t total)
{
    char v[96];
    int w;
    if (total != 0 && lower <= upper)
        w = snprintf(v, sizeof(v), "%" PRId64 "-%" PRId64 "/", lower, upper);
    else
        w = snprintf(v, sizeof(v), "*/");
    if (total >= 0)
        snprintf(v + w, sizeof(v) - (size_t)w, "%" PRId64, total);
    else
        snprintf(v + w, sizeof(v) - (size_t)w, "*");
    add_out_header(x, "Content-Range", v);
}

static int64_t col_int(const PGresult *r, int col, int64_t dflt)
{
    if (PQnfields(r) <= col || PQgetisnull(r, 0, col))
        return dflt;
    char *end;
    long long v = strtoll(PQgetvalue(r, 0, col), &end, 10);
    return *end ? dflt : (int64_t)v;
}

/* response.status and response.headers set by the SQL (functions may set them). Returns
 * false after answering 500 when they are malformed. */
static bool apply_overrides(struct rest_ctx *x, const PGresult *r, int *status)
{
    if (!PQgetisnull(r, 0, REST_COL_RESP_STATUS)) {
        char *end;
        long v = strtol(PQgetvalue(r, 0, REST_COL_RESP_STATUS), &end, 10);
        if (*end || v < 100 || v > 599) {
            fail(x, 500, "PGRST112", "response.status guc must be a valid status code", NULL, NULL);
            return false;
        }
        *status = (int)v;
    }
    if (!PQgetisnull(r, 0, REST_COL_RESP_HEADERS)) {
        json_t *a = json_loads(PQgetvalue(r, 0, REST_COL_RESP_HEADERS), 0, NULL);
        bool ok = json_is_array(a);
        size_t i;
        json_t *o;
        json_array_foreach(a, i, o)
        {
            const char *k;
            json_t *v;
            if (!json_is_object(o) || json_object_size(o) != 1) {
                ok = false;
                break;
            }
            json_object_foreach(o, k, v)
            {
                if (!json_is_string(v)) {
                    ok = false;
                    break;
                }
                /* The function's header replaces ours of the same name. */
                for (size_t h = 0; h < x->n_headers; h++)
                    if (strcasecmp(x->headers[h].name, k) == 0) {
                        x->headers[h] = x->headers[x->n_headers - 1];
                        x->n_headers--;
                        break;
                    }
                add_out_header(x, k, json_string_value(v));
            }
        }
        json_decref(a);
        if (!ok) {
            x->n_headers = 0;
            fail(x, 500, "PGRST111",
                 "response.headers guc must be a JSON array composed of objects with a single "
                 "key and a string value",
                 NULL, NULL);
            return false;
        }
    }
    return true;
}

static void reply_body(struct rest_ctx *x, int status, const PGresult *r, bool with_body)
{
    flush_headers(x);
    if (!with_body || PQgetisnull(r, 0, REST_COL_BODY)) {
        http_reply_take(x->req, status, with_body ? media_type(&x->r) : NULL, NULL, 0);
        return;
    }
    size_t n = (size_t)PQgetlength(r, 0, REST_COL_BODY);
    char *b = malloc(n + 1);
    if (!b) {
        http_reply_error(x->req, 500, "PGRSTX00", "out of memory", NULL);
        return;
    }
    memcpy(b, PQgetvalue(r, 0, REST_COL_BODY), n);
    b[n] = '\0';
    http_reply_take(x->req, status, media_type(&x->r), b, n);
}

/* Appends s to v (at w, capacity cap), percent-encoding all but unreserved bytes; keeps three
 * bytes spare for the '?', '&' and '=' the caller adds, and always NUL-terminates. */
static size_t append_encoded(char *v, size_t w, size_t cap, const char *s)
{
    if (w + 4 >= cap) {
        v[w] = '\0';
        return w;
    }
    return w + cd_percent_encode(v + w, cap - w - 3, s, "-_.~", NULL);
}

/* "/table?id=eq.5" from the location column ([["id","eq.5"]]), percent-encoding values. */
static void location_header(struct rest_ctx *x, const PGresult *r)
{
    if (PQgetisnull(r, 0, REST_COL_LOCATION))
        return;
    json_t *a = json_loads(PQgetvalue(r, 0, REST_COL_LOCATION), 0, NULL);
    char v[REST_HEADER_VALUE_MAX];
    size_t w = 0;
    v[w++] = '/';
    w = append_encoded(v, w, sizeof(v), x->r.table->name);
    size_t i;
    json_t *pair;
    json_array_foreach(a, i, pair)
    {
        const char *k = json_string_value(json_array_get(pair, 0));
        const char *val = json_string_value(json_array_get(pair, 1));
        if (!k || !val || w + 4 >= sizeof(v))
            continue;
        v[w++] = i ? '&' : '?';
        w = append_encoded(v, w, sizeof(v), k);
        v[w++] = '=';
        w = append_encoded(v, w, sizeof(v), val);
    }
    json_decref(a);
    add_out_header(x, "Location", v);
}

/* ==========================================================================================
 * Running
 */

/* The calling thread's database connection, or NULL. */
static PGconn *db_pg_or_null(void)
{
    db_conn_t *c = db_thread_conn();
    return c ? db_pg(c) : NULL;
}

static void db_who(struct rest_ctx *x, bool read_only, db_caller_t *who)
{
    auth_caller_db(&x->caller, x->req, read_only, who);
    who->path = x->path;
}

/* The planned row count from EXPLAIN (FORMAT JSON), or -1. */
static int64_t plan_rows(const PGresult *r)
{
    if (!r || PQntuples(r) < 1)
        return -1;
    json_t *j = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
    json_t *rows = json_object_get(json_object_get(json_array_get(j, 0), "Plan"), "Plan Rows");
    int64_t v = json_is_number(rows) ? (int64_t)json_number_value(rows) : -1;
    json_decref(j);
    return v;
}

/* After "relation does not exist": reloads the cache and tells whether the request's table
 * is really gone (the cache was stale). */
static bool stale_table(struct rest_ctx *x)
{
    rest_schema_t *fresh = rest__schema_reload_now(db_pg_or_null(), x->schema);
    if (!fresh)
        return false;
    bool gone = rest__schema_table(fresh, x->r.table->name) == NULL;
    rest__schema_release(fresh);
    return gone;
}

/* Runs the statement(s) for x->r; answers errors itself. Returns the main result (caller
 * PQclear()s it) and the planned count (or -1) in *planned. */
static PGresult *run(struct rest_ctx *x, bool read_only, int64_t *planned)
{
    rest__err_t err;
    rest_stmt_t main_st, explain_st;
    memset(&explain_st, 0, sizeof(explain_st));
    cd_buf_init(&explain_st.sql, 1);
    *planned = -1;
    bool want_plan =
        (x->prefer.count == REST_COUNT_PLANNED || x->prefer.count == REST_COUNT_ESTIMATED) &&
        x->r.action == REST_ACT_READ;
    if (!rest__build(&x->arena, &x->r, &main_st, &err)) {
        cd_buf_free(&main_st.sql);
        reply_error(x, &err);
        return NULL;
    }
    if (want_plan && !rest__build_explain(&x->arena, &x->r, &explain_st, &err)) {
        cd_buf_free(&main_st.sql);
        cd_buf_free(&explain_st.sql);
        reply_error(x, &err);
        return NULL;
    }
    db_stmt_t stmts[2];
    size_t n = 0;
    if (want_plan)
        stmts[n++] =
            (db_stmt_t){cd_buf_str(&explain_st.sql), (int)explain_st.n_params, explain_st.params};
    stmts[n++] = (db_stmt_t){cd_buf_str(&main_st.sql), (int)main_st.n_params, main_st.params};
    PGresult *res[2] = {NULL, NULL};
    db_caller_t who;
    db_who(x, read_only, &who);
    db_error_t dberr;
    db_status_t st = db_run(&who, stmts, n, res, &dberr);
    cd_buf_free(&main_st.sql);
    cd_buf_free(&explain_st.sql);
    if (st == DB_SQL_ERROR && strcmp(dberr.sqlstate, "42P01") == 0 && x->r.table &&
        stale_table(x)) {
        char msg[REST_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg), "Could not find the table 'public.%s' in the schema cache",
                 x->r.table->name);
        fail(x, 404, "PGRST205", msg, NULL, NULL);
        return NULL;
    }
    if (st != DB_OK) {
        reply_db_error(x, st, &dberr);
        return NULL;
    }
    if (want_plan) {
        *planned = plan_rows(res[0]);
        PQclear(res[0]);
    }
    PGresult *r = res[n - 1];
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 ||
        PQnfields(r) <= REST_COL_LOCATION) {
        PQclear(r);
        fail(x, 500, "PGRSTX00", "The database answered in an unexpected shape", NULL, NULL);
        return NULL;
    }
    return r;
}

/* The top-level window of a read: limit/offset, else the Range header, capped by
 * DB_MAX_ROWS. */
static bool read_window(struct rest_ctx *x, bool cap)
{
    const struct rest_query *q = &x->query;
    const struct rest_range *top = NULL;
    for (size_t i = 0; i < q->n_ranges; i++)
        if (q->ranges[i].n_embed_path == 0)
            top = &q->ranges[i];
    int64_t offset = 0, limit = -1;
    struct rest_range_header rh;
    struct rest_error pe;
    const char *range = http_header(x->req, "Range");
    const char *unit = http_header(x->req, "Range-Unit");
    if (!rest_parse_range(range, range ? strlen(range) : 0, unit, unit ? strlen(unit) : 0, &rh,
                          &pe)) {
        reply_parse_error(x, &pe);
        return false;
    }
    if (rh.present && (x->r.action == REST_ACT_READ || x->r.action == REST_ACT_CALL)) {
        offset = rh.first;
        limit = rh.has_last ? rh.last - rh.first + 1 : -1;
    }
    if (top && top->has_offset)
        offset = top->offset;
    if (top && top->has_limit)
        limit = limit < 0 || top->limit < limit ? top->limit : limit;
    long max_rows = x->app->cfg.db_max_rows;
    if (cap && max_rows > 0 && (limit < 0 || limit > max_rows))
        limit = max_rows;
    x->r.offset = offset;
    x->r.limit = limit;
    return true;
}

/* Status and Content-Range of a read or a call (PostgREST's rangeStatusHeader). Returns
 * false after answering 416. */
static bool range_status(struct rest_ctx *x, int64_t page_total, int64_t total, int *status)
{
    int64_t lower = x->r.offset, upper = lower + page_total - 1;
    content_range(x, lower, upper, total);
    if (total < 0)
        *status = 200;
    else if (lower > total) {
        char det[160];
        snprintf(det, sizeof(det),
                 "An offset of %" PRId64 " was requested, but there are only %" PRId64 " rows.",
                 lower, total);
        fail(x, 416, "PGRST103", "Requested range not satisfiable", det, NULL);
        return false;
    } else if (1 + upper - lower < total)
        *status = 206;
    else
        *status = 200;
    return true;
}

static int64_t chosen_total(struct rest_ctx *x, const PGresult *r, int64_t planned)
{
    int64_t exact = col_int(r, REST_COL_TOTAL, -1);
    switch (x->prefer.count) {
    case REST_COUNT_EXACT:
        return exact;
    case REST_COUNT_PLANNED:
        return x->r.action == REST_ACT_READ ? planned : exact;
    case REST_COUNT_ESTIMATED:
        /* exact was counted only up to DB_MAX_ROWS + 1: past that, the planner's guess */
        if (x->r.count_cap > 0 && exact >= x->r.count_cap && planned >= 0)
            return planned > exact ? planned : exact;
        return exact;
    default:
        return -1;
    }
}

static void do_read(struct rest_ctx *x)
{
    if (!read_window(x, true))
        return;
    x->r.count_exact =
        x->prefer.count == REST_COUNT_EXACT || x->prefer.count == REST_COUNT_ESTIMATED;
    if (x->prefer.count == REST_COUNT_ESTIMATED && x->app->cfg.db_max_rows > 0)
        x->r.count_cap = x->app->cfg.db_max_rows + 1;
    int64_t planned;
    PGresult *r = run(x, true, &planned);
    if (!r)
        return;
    int status;
    int64_t page = col_int(r, REST_COL_PAGE_TOTAL, 0);
    if (range_status(x, page, chosen_total(x, r, planned), &status)) {
        preference_applied(x, false, false, false, true, false);
        if (apply_overrides(x, r, &status))
            reply_body(x, status, r, !x->r.head);
    }
    PQclear(r);
}

/* Parses the JSON body (flags: body_parse_json's). rows: an array must hold objects (rows to
 * insert). */
static bool parse_body(struct rest_ctx *x, int flags, bool rows)
{
    char why[256];
    if (!body_parse_json(cd_buf_str(&x->req->body), x->req->body.len, flags, &x->body, why,
                         sizeof(why))) {
        fail(x, 400, "PGRST102", "Empty or invalid json", why, NULL);
        return false;
    }
    if (rows && json_is_array(x->body)) {
        size_t i;
        json_t *el;
        json_array_foreach(x->body, i, el)
        {
            if (!json_is_object(el)) {
                fail(x, 400, "PGRST102", "All object keys must match",
                     "Every element of the array must be an object.", NULL);
                return false;
            }
        }
    }
    x->r.body_json = x->body;
    x->r.body_text = cd_buf_str(&x->req->body);
    return true;
}

static void do_mutation(struct rest_ctx *x)
{
    const char *m = x->req->method;
    x->r.action = strcmp(m, "POST") == 0    ? REST_ACT_INSERT
                  : strcmp(m, "PATCH") == 0 ? REST_ACT_UPDATE
                                            : REST_ACT_DELETE;
    if (x->r.action != REST_ACT_DELETE &&
        !parse_body(x,
                    x->r.action == REST_ACT_INSERT ? BODY_JSON_OBJECT | BODY_JSON_ARRAY
                                                   : BODY_JSON_OBJECT,
                    true))
        return;
    if (!read_window(x, false))
        return;
    if (x->r.action == REST_ACT_INSERT) {
        x->r.offset = 0;
        x->r.limit = -1;
    }
    bool repr = x->prefer.ret == REST_RETURN_REPRESENTATION;
    x->r.head = !repr;
    x->r.count_exact = false;
    int64_t planned;
    PGresult *r = run(x, false, &planned);
    if (!r)
        return;
    int64_t page = col_int(r, REST_COL_PAGE_TOTAL, 0);
    bool count = x->prefer.count == REST_COUNT_EXACT || x->prefer.count == REST_COUNT_ESTIMATED;
    int status;
    if (x->r.action == REST_ACT_INSERT) {
        location_header(x, r);
        content_range(x, 1, 0, count ? page : -1);
        bool keyed = x->r.table->pk.n || x->query.has_on_conflict;
        preference_applied(x, keyed, true, true, true, false);
        status = 201;
    } else if (x->r.action == REST_ACT_UPDATE) {
        content_range(x, 0, page - 1, count ? page : -1);
        preference_applied(x, false, true, true, true, true);
        status = repr ? 200 : 204;
    } else {
        content_range(x, 1, 0, count ? page : -1);
        preference_applied(x, false, false, true, true, true);
        status = repr ? 200 : 204;
    }
    if (apply_overrides(x, r, &status))
        reply_body(x, status, r, repr);
    PQclear(r);
}

/* ==========================================================================================
 * Functions
 */

static bool func_has_arg(const rest_func_t *f, const char *name)
{
    for (size_t i = 0; i < f->n_args; i++)
        if (strcmp(f->args[i].name, name) == 0)
            return true;
    return false;
}

/* Does f take exactly these named arguments (all required ones present, none unknown)? */
static bool func_matches(const rest_func_t *f, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!func_has_arg(f, keys[i]))
            return false;
    for (size_t i = 0; i < f->n_args; i++) {
        if (f->args[i].has_default)
            continue;
        bool given = false;
        for (size_t k = 0; k < n && !given; k++)
            given = strcmp(keys[k], f->args[i].name) == 0;
        if (!given)
            return false;
    }
    return true;
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "a, b, c": names sorted (PostgREST lists argument names as a set). */
static void sorted_list(const char *const *names, size_t n, char *out, size_t len)
{
    const char *v[256];
    size_t m = n < CD_ARRAY_LEN(v) ? n : CD_ARRAY_LEN(v);
    memcpy(v, names, m * sizeof(char *));
    qsort(v, m, sizeof(char *), cmp_cstr);
    size_t w = 0;
    out[0] = '\0';
    for (size_t i = 0; i < m && w < len; i++) {
        int k = snprintf(out + w, len - w, "%s%s", i ? ", " : "", v[i]);
        if (k < 0)
            break;
        w += (size_t)k;
    }
}

/* 404 PGRST202, with PostgREST's hint: a function of a similar name, or when the name exists,
 * the parameter list of the closest overload. */
static void no_function(struct rest_ctx *x, const char *name, const char *const *keys, size_t n,
                        bool post, const rest_func_t *over, size_t n_over)
{
    char list[1024];
    sorted_list(keys, n, list, sizeof(list));
    char msg[REST_ERROR_MESSAGE_MAX], det[REST_ERR_DETAILS_MAX], hint[REST_ERR_HINT_MAX] = "";
    if (n)
        snprintf(msg, sizeof(msg),
                 "Could not find the function public.%.200s(%.380s) in the schema cache", name,
                 list);
    else
        snprintf(msg, sizeof(msg),
                 "Could not find the function public.%.200s without parameters in the schema cache",
                 name);
    char prms[1100];
    if (n)
        snprintf(prms, sizeof(prms), " with parameter%s %s", n > 1 ? "s" : "", list);
    else
        snprintf(prms, sizeof(prms), " without parameters");
    snprintf(det, sizeof(det),
             "Searched for the function public.%.200s%.1100s%s, but no matches were "
             "found in the schema cache.",
             name, prms, post ? " or with a single unnamed json/jsonb parameter" : "");
    double best = -1.0;
    if (n_over) {
        char pick[1024] = "";
        for (size_t i = 0; i < n_over; i++) {
            const char *names[256];
            size_t m = 0;
            for (size_t k = 0; k < over[i].n_args && m < CD_ARRAY_LEN(names); k++)
                names[m++] = over[i].args[k].name;
            char cand[1024];
            sorted_list(names, m, cand, sizeof(cand));
            double d = rest__similarity(list, cand);
            if (d > best) {
                best = d;
                snprintf(pick, sizeof(pick), "%s", cand);
            }
        }
        snprintf(hint, sizeof(hint), "Perhaps you meant to call the function public.%.200s(%.250s)",
                 name, pick);
    } else {
        const char *pick = NULL;
        for (size_t i = 0; x->schema && i < x->schema->n_funcs; i++) {
            double d = rest__similarity(name, x->schema->funcs[i].name);
            if (d > best) {
                best = d;
                pick = x->schema->funcs[i].name;
            }
        }
        if (pick && best >= 0.75)
            snprintf(hint, sizeof(hint), "Perhaps you meant to call the function public.%s", pick);
    }
    fail(x, 404, "PGRST202", msg, det, *hint ? hint : NULL);
}

/* GET arguments as a JSON object text: repeated names (and variadic parameters) become
 * arrays. */
static char *get_args_json(const struct rest_query *q, const rest_func_t *f)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < q->n_rpc_args; i++) {
        const char *name = q->rpc_args[i].name;
        json_t *cur = json_object_get(o, name);
        bool variadic = false;
        for (size_t k = 0; f && k < f->n_args; k++)
            if (strcmp(f->args[k].name, name) == 0)
                variadic = f->args[k].variadic;
        json_t *v = json_string(q->rpc_args[i].value);
        if (!v)
            continue;
        if (json_is_array(cur)) {
            json_array_append_new(cur, v);
        } else if (cur) {
            json_t *arr = json_pack("[O, o]", cur, v);
            json_object_set_new(o, name, arr);
        } else if (variadic) {
            json_object_set_new(o, name, json_pack("[o]", v));
        } else {
            json_object_set_new(o, name, v);
        }
    }
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* The overloads of fname in the schema cache, refreshed once for a name it does not know. */
static const rest_func_t *find_functions(struct rest_ctx *x, const char *fname, size_t *n_over)
{
    const rest_func_t *over = rest__schema_funcs(x->schema, fname, n_over);
    if (!over) {
        rest_schema_t *fresh = rest__schema_refresh_for(db_pg_or_null(), x->schema, fname, true);
        if (fresh) {
            rest__schema_release(x->schema);
            x->schema = fresh;
            x->r.schema = fresh;
            over = rest__schema_funcs(fresh, fname, n_over);
        }
    }
    return over;
}

/* The argument names the request gives (the body's keys for POST, the query's arguments
 * otherwise, at most cap); false when the body was refused (already answered). */
static bool call_arg_names(struct rest_ctx *x, bool post, const char **keys, size_t cap,
                           size_t *n_keys)
{
    *n_keys = 0;
    if (post) {
        if (!parse_body(x, BODY_JSON_OBJECT | BODY_JSON_ARRAY | BODY_JSON_EMPTY, false))
            return false;
        if (json_is_object(x->body)) {
            const char *k;
            json_t *v;
            json_object_foreach(x->body, k, v)
            {
                (void)v;
                if (*n_keys < cap)
                    keys[(*n_keys)++] = k;
            }
        }
        return true;
    }
    for (size_t i = 0; i < x->query.n_rpc_args; i++) {
        bool dup = false;
        for (size_t k = 0; k < *n_keys && !dup; k++)
            dup = strcmp(keys[k], x->query.rpc_args[i].name) == 0;
        if (!dup && *n_keys < cap)
            keys[(*n_keys)++] = x->query.rpc_args[i].name;
    }
    return true;
}

/* Overload resolution as PostgREST does it: the one function whose parameters match the
 * argument names, else (POST) one taking the whole body as its single json parameter.
 * Answers 404 PGRST202 or 300 PGRST203 and returns NULL when there is no single match. */
static const rest_func_t *choose_function(struct rest_ctx *x, const char *fname,
                                          const rest_func_t *over, size_t n_over, const char **keys,
                                          size_t n_keys, bool post, bool *whole_body)
{
    const rest_func_t *match = NULL;
    size_t n_match = 0;
    bool single_object = x->prefer.params_single_object;
    *whole_body = false;
    for (size_t i = 0; i < n_over && !single_object; i++) {
        if ((json_is_object(x->body) || !post) && func_matches(&over[i], keys, n_keys)) {
            if (!match)
                match = &over[i];
            n_match++;
        }
    }
    for (size_t i = 0; !match && post && i < n_over; i++) {
        const rest_func_t *f = &over[i];
        if (f->n_args == 1 && f->args[0].is_json && (single_object || f->args[0].name[0] == '\0')) {
            match = f;
            n_match = 1;
            *whole_body = true;
        }
    }
    if (!match) {
        no_function(x, fname, keys, n_keys, post, over, n_over);
        return NULL;
    }
    if (n_match > 1) {
        char msg[REST_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg),
                 "Could not choose the best candidate function between: public.%s (%zu "
                 "overloads)",
                 fname, n_match);
        fail(x, 300, "PGRST203", msg, NULL,
             "Try renaming the parameters or the function itself in the database so function "
             "overloading can be resolved");
        return NULL;
    }
    return match;
}

/* Runs the chosen function and answers: 204 for void, else the body with its range. */
static void run_call(struct rest_ctx *x, const rest_func_t *match, bool post)
{
    if (!read_window(x, true))
        return;
    x->r.count_exact = x->prefer.count != REST_COUNT_UNSET;
    bool read_only = !post || match->volatility != 'v';
    int64_t planned;
    PGresult *r = run(x, read_only, &planned);
    if (!r)
        return;
    int status;
    if (match->ret_kind == REST_RET_VOID) {
        status = 204;
        preference_applied(x, false, false, false, true, true);
        if (apply_overrides(x, r, &status))
            reply_body(x, status, r, false);
        PQclear(r);
        return;
    }
    int64_t page = col_int(r, REST_COL_PAGE_TOTAL, 0);
    if (range_status(x, page, chosen_total(x, r, planned), &status)) {
        preference_applied(x, false, false, false, true, true);
        if (apply_overrides(x, r, &status))
            reply_body(x, status, r, !x->r.head);
    }
    PQclear(r);
}

/* POST or GET /rest/v1/rpc/<fname>. */
static void do_call(struct rest_ctx *x, const char *fname)
{
    bool post = strcmp(x->req->method, "POST") == 0;
    size_t n_over = 0;
    const rest_func_t *over = find_functions(x, fname, &n_over);
    const char *keys[256];
    size_t n_keys = 0;
    if (!call_arg_names(x, post, keys, CD_ARRAY_LEN(keys), &n_keys))
        return;
    bool whole_body = false;
    const rest_func_t *match =
        choose_function(x, fname, over, n_over, keys, n_keys, post, &whole_body);
    if (!match)
        return;
    x->r.action = REST_ACT_CALL;
    x->r.func = match;
    x->r.args_whole_body = whole_body;
    if (post) {
        x->r.args_text = n_keys || whole_body ? cd_buf_str(&x->req->body) : NULL;
        if (whole_body && x->req->body.len == 0)
            x->r.args_text = "{}";
    } else if (n_keys) {
        x->args_text = get_args_json(&x->query, match);
        if (!x->args_text) {
            fail(x, 500, "PGRSTX00", "out of memory", NULL, NULL);
            return;
        }
        x->r.args_text = x->args_text;
    }
    run_call(x, match, post);
}

/* ==========================================================================================
 * The handler
 */

static bool identify(struct rest_ctx *x)
{
    const char *why = NULL;
    auth_id_status_t st = auth_identify(x->app, x->req, true, &x->caller, &why);
    if (st == AUTH_ID_OK) {
        x->have_caller = true;
        return true;
    }
    jwt_status_t jst = x->caller.jwt_status;
    auth_caller_free(&x->caller);
    if (st != AUTH_ID_BAD_JWT) {
        auth_reply_identify_error(x->req, st, why);
        return false;
    }
    /* PostgREST's JWT errors: PGRST303 for claims (expired, not yet valid), PGRST301 for a
     * token that cannot be decoded or verified. */
    const char *code = "PGRST301", *msg = "JWT cannot be decoded";
    switch (jst) {
    case JWT_ERR_EXPIRED:
        code = "PGRST303";
        msg = "JWT expired";
        break;
    case JWT_ERR_NOT_YET_VALID:
        code = "PGRST303";
        msg = "JWT not yet valid";
        break;
    case JWT_ERR_SIGNATURE:
        msg = "JWT cryptographic operation failed";
        break;
    case JWT_ERR_ALG:
        msg = "Wrong or unsupported encoding algorithm";
        break;
    case JWT_ERR_ROLE:
        code = "PGRST303";
        msg = "Parsing claims failed";
        break;
    case JWT_OK:
    case JWT_ERR_MALFORMED:
        break;
    }
    char h[200];
    snprintf(h, sizeof(h), "Bearer error=\"invalid_token\", error_description=\"%s\"", msg);
    add_out_header(x, "WWW-Authenticate", h);
    fail(x, 401, code, msg, NULL, NULL);
    return false;
}

static void do_openapi(struct rest_ctx *x)
{
    if (strcmp(x->caller.role, "service_role") != 0) {
        fail(x, 403, "42501", "permission denied for the OpenAPI description",
             "Only the service role may read the API description.",
             "Use the service key (SERVICE_ROLE_KEY from `campaignd keys`).");
        return;
    }
    char *doc = rest__openapi(x->schema, x->app->external_url);
    if (!doc) {
        fail(x, 500, "PGRSTX00", "out of memory", NULL, NULL);
        return;
    }
    http_reply_take(x->req, 200, "application/openapi+json; charset=utf-8", doc, strlen(doc));
}

/* OPTIONS without a CORS preflight: the methods the resource allows. */
static void do_options(struct rest_ctx *x, const rest_table_t *t, const rest_func_t *f)
{
    char allow[96];
    if (t)
        snprintf(allow, sizeof(allow), "OPTIONS,GET,HEAD%s%s%s", t->insertable ? ",POST" : "",
                 t->updatable ? ",PATCH" : "", t->deletable ? ",DELETE" : "");
    else if (f)
        snprintf(allow, sizeof(allow), "%s",
                 f->volatility == 'v' ? "OPTIONS,POST" : "OPTIONS,GET,HEAD,POST");
    else
        snprintf(allow, sizeof(allow), "OPTIONS,GET,HEAD");
    add_out_header(x, "Allow", allow);
    flush_headers(x);
    http_reply(x->req, 200, "text/plain", NULL, 0);
}

/* What a /rest/v1 URL names: the root (OpenAPI), a table or view, or rpc/<function>. */
struct rest_target {
    enum { REST_TARGET_ROOT, REST_TARGET_TABLE, REST_TARGET_RPC } kind;
    const char *name; /* table or function; NULL at the root */
    bool is_get;      /* GET or HEAD */
    bool is_options;
};

/* Classify: which resource the path names and whether the method suits it (PGRST125,
 * PGRST101, PGRST117 otherwise). */
static bool classify(struct rest_ctx *x, struct rest_target *t)
{
    const char *method = x->req->method;
    /* NULL rather than "" when absent: gcc's -Wstringop-overread (ASan, -O2)
     * otherwise assumes sub may be the one-byte literal below. */
    const char *sub = x->req->nparams ? x->req->params[0] : NULL;

    memset(t, 0, sizeof(*t));
    if (!sub || *sub == '\0') {
        t->kind = REST_TARGET_ROOT;
    } else if (strncmp(sub, "rpc/", 4) == 0 && sub[4] && !strchr(sub + 4, '/')) {
        t->kind = REST_TARGET_RPC;
        t->name = sub + 4;
    } else if (!strchr(sub, '/')) {
        t->kind = REST_TARGET_TABLE;
        t->name = sub;
    } else {
        fail(x, 404, "PGRST125", "Invalid path specified in request URL", NULL, NULL);
        return false;
    }
    t->is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    t->is_options = strcmp(method, "OPTIONS") == 0;
    bool read_only = t->is_get || t->is_options;
    char msg[128];
    if (t->kind == REST_TARGET_RPC && !read_only && strcmp(method, "POST") != 0) {
        snprintf(msg, sizeof(msg), "Cannot use the %.20s method on RPC", method);
        fail(x, 405, "PGRST101", msg, NULL, NULL);
        return false;
    }
    if ((t->kind == REST_TARGET_TABLE && !read_only && strcmp(method, "POST") != 0 &&
         strcmp(method, "PATCH") != 0 && strcmp(method, "DELETE") != 0) ||
        (t->kind == REST_TARGET_ROOT && !read_only)) {
        snprintf(msg, sizeof(msg), "Unsupported HTTP method: %.20s", method);
        fail(x, 405, "PGRST117", msg, NULL, NULL);
        return false;
    }
    return true;
}

/* Takes a reference to the schema cache for the request (503 PGRST002 while it cannot be
 * loaded). */
static bool acquire_schema(struct rest_ctx *x)
{
    x->schema = rest__schema_acquire();
    if (!x->schema) {
        add_out_header(x, "Retry-After", "1");
        fail(x, 503, "PGRST002", "Could not query the database for the schema cache. Retrying.",
             NULL, NULL);
        return false;
    }
    x->r.schema = x->schema;
    return true;
}

/* Negotiate: the media type of the answer from Accept (406 PGRST107 when none fits). */
static bool negotiate(struct rest_ctx *x, const struct rest_target *t)
{
    bool strip = false;
    const char *accept = http_header(x->req, "Accept");
    enum rest__accept ak = rest__parse_accept(accept, t->kind == REST_TARGET_ROOT, &strip);
    if (ak == REST__ACCEPT_NONE && !t->is_options) {
        char msg[REST_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg), "None of these media types are available: %.500s", accept);
        fail(x, 406, "PGRST107", msg, NULL, NULL);
        return false;
    }
    x->r.media = ak == REST__ACCEPT_SINGULAR ? REST_MEDIA_SINGULAR
                 : ak == REST__ACCEPT_CSV    ? REST_MEDIA_CSV
                                             : REST_MEDIA_JSON;
    x->r.strip_nulls = strip;
    x->r.head = x->req->head_only;
    return true;
}

/* Parses the Prefer headers and the query string (without apikey) into the request. */
static bool parse_request(struct rest_ctx *x, const struct rest_target *t)
{
    struct prefer_values pv = {.n = 0};
    http_each_header(x->req, collect_prefer, &pv);
    struct rest_error pe;
    if (!rest_parse_prefer(&x->arena, pv.v, pv.len, pv.n, &x->prefer, &pe)) {
        reply_parse_error(x, &pe);
        return false;
    }
    x->r.prefer = &x->prefer;
    size_t qlen = 0;
    char *q = query_without_apikey(x, &qlen);
    if (!q) {
        fail(x, 400, "PGRST100", "failed to parse query string", "out of memory", NULL);
        return false;
    }
    bool parsed = t->kind == REST_TARGET_RPC
                      ? rest_parse_query_rpc(&x->arena, q, qlen, &x->query, &pe)
                      : rest_parse_query(&x->arena, q, qlen, &x->query, &pe);
    if (!parsed) {
        reply_parse_error(x, &pe);
        return false;
    }
    x->r.query = &x->query;
    return true;
}

/* Resolve: the table or view in the schema cache, which is refreshed once for a name it
 * does not know (a table created since it was loaded); 404 PGRST205 with a hint if absent. */
static const rest_table_t *resolve_table(struct rest_ctx *x, const char *name)
{
    const rest_table_t *t = rest__schema_table(x->schema, name);
    if (!t) {
        rest_schema_t *fresh = rest__schema_refresh_for(db_pg_or_null(), x->schema, name, false);
        if (fresh) {
            rest__schema_release(x->schema);
            x->schema = fresh;
            x->r.schema = fresh;
            t = rest__schema_table(fresh, name);
        }
    }
    if (!t) {
        char msg[REST_ERROR_MESSAGE_MAX], hint[REST_ERR_HINT_MAX];
        snprintf(msg, sizeof(msg), "Could not find the table 'public.%s' in the schema cache",
                 name);
        rest__table_hint(x->schema, name, hint, sizeof(hint));
        fail(x, 404, "PGRST205", msg, NULL, *hint ? hint : NULL);
    }
    return t;
}

/* Every /rest/v1 request: classify the URL and method, identify the caller, negotiate the
 * media type, parse Prefer and the query string, resolve the table, then read, write, call
 * or describe. Each step answers the request itself when it fails. */
static void handle_rest(http_request_t *req)
{
    struct rest_ctx *x = calloc(1, sizeof(*x));
    if (!x) {
        http_reply_error(req, 500, "PGRSTX00", "out of memory", NULL);
        return;
    }
    x->req = req;
    x->app = req->ctx;
    cd_arena_init(&x->arena, REST_ARENA_MAX_BYTES);
    x->path = req->path + strlen("/rest/v1");
    if (!*x->path)
        x->path = "/";

    struct rest_target t;
    if (!classify(x, &t) || !identify(x) || !check_profile(x, !t.is_get && !t.is_options) ||
        !acquire_schema(x) || !negotiate(x, &t))
        goto done;
    if (t.kind == REST_TARGET_ROOT) {
        if (t.is_options)
            do_options(x, NULL, NULL);
        else
            do_openapi(x);
        goto done;
    }
    if (!parse_request(x, &t))
        goto done;
    if (t.kind == REST_TARGET_RPC) {
        size_t n;
        if (t.is_options)
            do_options(x, NULL, rest__schema_funcs(x->schema, t.name, &n));
        else
            do_call(x, t.name);
        goto done;
    }
    const rest_table_t *table = resolve_table(x, t.name);
    if (!table)
        goto done;
    x->r.table = table;
    if (t.is_options) {
        do_options(x, table, NULL);
    } else if (t.is_get) {
        x->r.action = REST_ACT_READ;
        do_read(x);
    } else {
        do_mutation(x);
    }
done:
    json_decref(x->body);
    free(x->args_text);
    rest__schema_release(x->schema);
    if (x->have_caller)
        auth_caller_free(&x->caller);
    cd_arena_free(&x->arena);
    free(x);
}

const http_route_t rest_routes[] = {
    {"*", "/rest/v1", handle_rest, true},
    {"*", "/rest/v1/*", handle_rest, true},
};
const size_t rest_routes_len = CD_ARRAY_LEN(rest_routes);
