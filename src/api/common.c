/*
 * What every /api handler shares: identifying the caller and running its SQL
 * as that caller, error answers in PostgREST's {code, message, details, hint}
 * shape, validation of dates, numbers, names and text, pagination headers,
 * and the routing table of the module.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/api_internal.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/text.h"
#include "http/body.h"

/* ------------------------------------------------------------ requests */

bool api__begin(http_request_t *req, bool read_only, api_ctx_t *ctx)
{
    memset(ctx, 0, sizeof(*ctx));
    const char *why = NULL;
    auth_id_status_t st = auth_identify(req->ctx, req, true, &ctx->caller, &why);
    if (st != AUTH_ID_OK) {
        auth_reply_identify_error(req, st, why);
        auth_caller_free(&ctx->caller);
        return false;
    }
    auth_caller_db(&ctx->caller, req, read_only, &ctx->who);
    ctx->anon = strcmp(ctx->caller.role, "anon") == 0;
    return true;
}

void api__end(api_ctx_t *ctx)
{
    auth_caller_free(&ctx->caller);
}

void api__reply_error(http_request_t *req, int status, const char *code, const char *message,
                      const char *details, const char *hint)
{
    json_t *j = json_object();
    if (j) {
        json_object_set_new(j, "code", json_string(code));
        json_object_set_new(j, "message", json_string(message));
        json_object_set_new(j, "details", details ? json_string(details) : json_null());
        json_object_set_new(j, "hint", hint ? json_string(hint) : json_null());
    }
    http_reply_json(req, status, j);
}

bool api__run(http_request_t *req, const api_ctx_t *ctx, const db_stmt_t *stmts, size_t n,
              PGresult **results)
{
    return api__run_on(req, ctx, NULL, stmts, n, results);
}

bool api__run_on(http_request_t *req, const api_ctx_t *ctx, db_conn_t *c, const db_stmt_t *stmts,
                 size_t n, PGresult **results)
{
    db_error_t err;
    db_status_t st = c ? db_run_as(c, &ctx->who, stmts, n, results, &err)
                       : db_run(&ctx->who, stmts, n, results, &err);
    if (st == DB_OK)
        return true;
    if (st == DB_UNAVAILABLE) {
        http_reply_unavailable(req, db_retry_after());
        return false;
    }
    int status = db_sqlstate_http_status(err.sqlstate, ctx->anon);
    if (status >= 500)
        log_error("api %s %s: SQL failed: %s (SQLSTATE %s) %s", req->method, req->path, err.message,
                  err.sqlstate, err.detail);
    if (status == 401)
        http_add_header(req, "WWW-Authenticate", "Bearer");
    api__reply_error(req, status, err.sqlstate, err.message, *err.detail ? err.detail : NULL,
                     *err.hint ? err.hint : NULL);
    return false;
}

bool api__path_id(http_request_t *req, const char *what)
{
    if (req->nparams >= 1 && cd_is_uuid(req->params[0]))
        return true;
    api__reply_invalid(req, "invalid_parameter", "id", "the %s id in the path must be a UUID",
                       what);
    return false;
}

void api__reply_by_id(http_request_t *req, const char *sql, const char *what)
{
    api_ctx_t ctx;
    if (!api__begin(req, true, &ctx))
        return;
    const char *p[1] = {req->params[0]};
    db_stmt_t st = {sql, 1, p};
    PGresult *res = NULL;
    if (api__path_id(req, what) && api__run(req, &ctx, &st, 1, &res)) {
        if (PQntuples(res) == 1)
            api__reply_cell(req, 200, res, 0, 0);
        else
            api__reply_not_found(req, what);
        PQclear(res);
    }
    api__end(&ctx);
}

void api__reply_invalid(http_request_t *req, const char *code, const char *field, const char *fmt,
                        ...)
{
    char msg[512];
    char details[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(details, sizeof(details), "field: %s", field);
    api__reply_error(req, 400, code, msg, details, NULL);
}

void api__reply_not_found(http_request_t *req, const char *what)
{
    char msg[128];
    snprintf(msg, sizeof(msg), "%s not found", what);
    api__reply_error(req, 404, "not_found", msg, NULL,
                     "It does not exist, was deleted, or is not visible to you.");
}

void api__reply_cell(http_request_t *req, int status, const PGresult *res, int row, int col)
{
    http_reply(req, status, NULL, PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col));
}

json_t *api__read_body(http_request_t *req)
{
    json_t *j = NULL;
    char err[256];
    if (!body_parse_json(cd_buf_str(&req->body), req->body.len, BODY_JSON_OBJECT, &j, err,
                         sizeof(err))) {
        api__reply_error(req, 400, "invalid_body", err, NULL,
                         "Send a JSON object with Content-Type: application/json.");
        return NULL;
    }
    return j;
}

bool api__check_keys(http_request_t *req, json_t *body, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(allowed[i], key) == 0;
        if (!ok) {
            char known[256] = "";
            size_t used = 0;
            for (size_t i = 0; allowed[i]; i++) {
                int n =
                    snprintf(known + used, sizeof(known) - used, "%s%s", i ? ", " : "", allowed[i]);
                if (n < 0 || (size_t)n >= sizeof(known) - used)
                    break;
                used += (size_t)n;
            }
            /* The key is shown at most 64 bytes long, cut on a byte boundary
             * of valid UTF-8 or replaced when it is not printable. */
            size_t kl = strlen(key), chars;
            bool printable = kl <= 64 && cd_utf8_count(key, kl, &chars);
            for (size_t i = 0; printable && i < kl; i++)
                printable = (unsigned char)key[i] >= 0x20;
            api__reply_invalid(req, "invalid_body", printable ? key : "(unprintable)",
                               "unknown field \"%s\"; this endpoint accepts: %s",
                               printable ? key : "(unprintable)", known);
            return false;
        }
    }
    return true;
}

bool api__body_text(http_request_t *req, json_t *body, const char *key, size_t max_chars, int flags,
                    const char **out, bool *present)
{
    *out = NULL;
    json_t *v = json_object_get(body, key);
    *present = v != NULL;
    if (!v || json_is_null(v)) {
        if (flags & API_TEXT_REQUIRED) {
            api__reply_invalid(req, "invalid_body", key, "%s is required", key);
            return false;
        }
        if (v && !(flags & API_TEXT_NULLABLE)) {
            api__reply_invalid(req, "invalid_body", key, "%s cannot be null", key);
            return false;
        }
        return true;
    }
    if (!json_is_string(v)) {
        api__reply_invalid(req, "invalid_body", key, "%s must be a string", key);
        return false;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v), chars = 0;
    if (len > API_MAX_CONTENT_BYTES || !cd_utf8_count(s, len, &chars)) {
        api__reply_invalid(req, "invalid_body", key,
                           len > API_MAX_CONTENT_BYTES
                               ? "%s is longer than the limit"
                               : "%s contains a NUL character or invalid UTF-8",
                           key);
        return false;
    }
    if (chars > max_chars) {
        api__reply_invalid(req, "invalid_body", key, "%s is longer than %zu characters", key,
                           max_chars);
        return false;
    }
    bool blank = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool allowed_ctl = (flags & API_TEXT_MULTILINE) && (c == '\t' || c == '\n' || c == '\r');
        if ((c < 0x20 && !allowed_ctl) || c == 0x7f) {
            api__reply_invalid(req, "invalid_body", key, "%s contains a control character", key);
            return false;
        }
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            blank = false;
    }
    if ((flags & API_TEXT_NOT_BLANK) && blank) {
        api__reply_invalid(req, "invalid_body", key, "%s must not be blank", key);
        return false;
    }
    *out = s;
    return true;
}

/* ---------------------------------------------------------- validation */

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static int num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : d[m - 1];
}

/* The YYYY-MM-DD prefix of s: checks it and fills the parts. */
static bool date_prefix(const char *s, int *y, int *m, int *d)
{
    if (strlen(s) < 10 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
        !digits(s + 8, 2))
        return false;
    *y = num(s, 4);
    *m = num(s + 5, 2);
    *d = num(s + 8, 2);
    return *y >= 1 && *m >= 1 && *m <= 12 && *d >= 1 && *d <= days_in_month(*y, *m);
}

bool api__parse_date(const char *s, int *year, int *month, int *day)
{
    return s && strlen(s) == 10 && date_prefix(s, year, month, day);
}

bool api__valid_timestamp(const char *s)
{
    int y, mo, d;
    if (!s || !date_prefix(s, &y, &mo, &d) || (s[10] != 'T' && s[10] != ' '))
        return false;
    const char *p = s + 11;
    if (!digits(p, 2) || p[2] != ':' || !digits(p + 3, 2) || num(p, 2) > 23 || num(p + 3, 2) > 59)
        return false;
    p += 5;
    if (*p == ':') {
        if (!digits(p + 1, 2) || num(p + 1, 2) > 59)
            return false;
        p += 3;
        if (*p == '.') {
            size_t n = strspn(p + 1, "0123456789");
            if (n < 1 || n > 9)
                return false;
            p += 1 + n;
        }
    }
    if (*p == 'Z' || *p == 'z')
        return p[1] == '\0';
    if (*p != '+' && *p != '-')
        return false;
    p++;
    if (!digits(p, 2) || num(p, 2) > 15)
        return false;
    p += 2;
    if (*p == ':')
        p++;
    if (*p == '\0')
        return p[-1] != ':';
    return digits(p, 2) && num(p, 2) <= 59 && p[2] == '\0';
}

bool api__parse_long(const char *s, long min, long max, long *out)
{
    if (!s || !*s)
        return false;
    size_t n = strlen(s);
    size_t start = s[0] == '-' ? 1 : 0;
    if (n - start < 1 || n - start > 18 || !digits(s + start, n - start))
        return false;
    long v = 0;
    for (size_t i = start; i < n; i++)
        v = v * 10 + (s[i] - '0');
    if (start)
        v = -v;
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool api__valid_metric_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > API_MAX_METRIC_CHARS)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != ':' && c != '-')))
            return false;
    }
    return true;
}

long api__days_from_civil(int year, int month, int day)
{
    /* Howard Hinnant's days_from_civil. */
    long y = (long)year - (month <= 2);
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long mp = (month + 9) % 12;
    long doy = (153 * mp + 2) / 5 + day - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* ---------------------------------------------------------- pagination */

bool api__parse_page(http_request_t *req, api_page_t *p)
{
    p->page = 1;
    p->per_page = API_DEFAULT_PER_PAGE;
    const char *v = http_query_arg(req, "page");
    if (v && !api__parse_long(v, 1, API_MAX_PAGE, &p->page)) {
        api__reply_invalid(req, "invalid_parameter", "page",
                           "page must be a whole number from 1 to %d", API_MAX_PAGE);
        return false;
    }
    v = http_query_arg(req, "per_page");
    if (v && !api__parse_long(v, 1, API_MAX_PER_PAGE, &p->per_page)) {
        api__reply_invalid(req, "invalid_parameter", "per_page",
                           "per_page must be a whole number from 1 to %d", API_MAX_PER_PAGE);
        return false;
    }
    return true;
}

bool api__query_append(cd_buf_t *b, const char *name, const char *value)
{
    size_t cap = 3 * strlen(value) + 1; /* every byte encoded, and the NUL */
    char *enc = malloc(cap);
    bool ok = enc && cd_buf_printf(b, "&%s=", name);
    if (ok) {
        size_t n = cd_percent_encode(enc, cap, value, "-._~", NULL);
        ok = cd_buf_add(b, enc, n);
    }
    free(enc);
    return ok;
}

static bool link(cd_buf_t *b, bool *first, const char *path, long page, long per_page,
                 const char *extra, const char *rel)
{
    bool ok = cd_buf_printf(b, "%s<%s?page=%ld&per_page=%ld%s>; rel=\"%s\"", *first ? "" : ", ",
                            path, page, per_page, extra, rel);
    *first = false;
    return ok;
}

bool api__link_header(cd_buf_t *b, const char *path, const char *extra, const api_page_t *p,
                      long long total)
{
    long long last = total > 0 ? (total + p->per_page - 1) / p->per_page : 1;
    bool first = true;
    if (!link(b, &first, path, 1, p->per_page, extra, "first"))
        return false;
    if (p->page > 1 && !link(b, &first, path, p->page - 1 <= last ? p->page - 1 : (long)last,
                             p->per_page, extra, "prev"))
        return false;
    if (p->page < last && !link(b, &first, path, p->page + 1, p->per_page, extra, "next"))
        return false;
    return link(b, &first, path, (long)last, p->per_page, extra, "last");
}

void api__add_paging_headers(http_request_t *req, const char *path, const char *extra,
                             const api_page_t *p, long long total)
{
    char count[32];
    snprintf(count, sizeof(count), "%lld", total);
    http_add_header(req, "X-Total-Count", count);
    cd_buf_t b;
    cd_buf_init(&b, 4096);
    if (api__link_header(&b, path, extra, p, total))
        http_add_header(req, "Link", cd_buf_str(&b));
    cd_buf_free(&b);
}

void api__page_params(const api_page_t *p, char limit[24], char offset[32])
{
    snprintf(limit, 24, "%ld", p->per_page);
    snprintf(offset, 32, "%lld", (long long)(p->page - 1) * p->per_page);
}

void api__reply_page(http_request_t *req, const PGresult *res, const char *path, const char *extra,
                     const api_page_t *p)
{
    api__add_paging_headers(req, path, extra, p, strtoll(PQgetvalue(res, 0, 0), NULL, 10));
    api__reply_cell(req, 200, res, 0, 1);
}

/* ---------------------------------------------------------------- table */

const http_route_t api_routes[] = {
    {"GET", "/api/campaigns", api__campaigns_list, false},
    {"POST", "/api/campaigns", api__campaigns_create, true},
    {"GET", "/api/campaigns/:id", api__campaigns_get, false},
    {"PUT", "/api/campaigns/:id", api__campaigns_update, true},
    {"PATCH", "/api/campaigns/:id", api__campaigns_update, true},
    {"DELETE", "/api/campaigns/:id", api__campaigns_delete, true},
    {"GET", "/api/analytics", api__analytics_get, false},
    {"POST", "/api/analytics", api__analytics_create, true},
    {"GET", "/api/reports", api__reports_list, false},
    {"POST", "/api/reports", api__reports_create, true},
    {"GET", "/api/reports/:id", api__reports_get, false},
    {"GET", "/api/reports/:id/export", api__reports_export, false},
    {"POST", "/api/reports/:id/export", api__reports_export, true},
    {"POST", "/api/data-sources/:id/test", api__data_sources_test, true},
    {"POST", "/api/data-sources/:id/sync", api__data_sources_sync, true},
    {"PUT", "/api/data-sources/:id/credentials", api__data_sources_credentials, true},
    {"POST", "/api/sync-logs/:id/cancel", api__sync_logs_cancel, true},
};
const size_t api_routes_len = CD_ARRAY_LEN(api_routes);

void api__reply_created(http_request_t *req, const PGresult *res, int col, const char *base)
{
    json_t *row = json_loads(PQgetvalue(res, 0, col), 0, NULL);
    const char *id = json_string_value(json_object_get(row, "id"));
    char loc[128];
    if (id) {
        snprintf(loc, sizeof(loc), "%s/%s", base, id);
        http_add_header(req, "Location", loc);
    }
    json_decref(row);
    api__reply_cell(req, 201, res, 0, col);
}
