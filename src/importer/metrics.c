/*
 * The analytics connectors: each reads a report and produces metric rows
 * {"date", "metric", "value", "dimensions"} that sync.c upserts into
 * imported_data (one row per metric per day per dimension set) and rolls up
 * into analytics_data (migration 034).
 *
 *   google_analytics  GA4 Data API properties/{id}:runReport (limit/offset
 *                     paging), a service-account token
 *   meta_pixel        Marketing API {object}/insights with time_increment=1,
 *                     an access token, paging.next; action arrays (the
 *                     pixel's conversions) become "<field>.<action_type>"
 *   bigquery          jobs.query, then getQueryResults with pageToken (and
 *                     while jobComplete is false), a service-account token
 *   snowflake         SQL API v2 /api/v2/statements with a key-pair JWT,
 *                     202 polling and result partitions
 *
 * Service-account tokens: a JWT signed RS256 with the key's private_key
 * (iss client_email, aud token_uri, scope) exchanged at the token URI
 * (config.token_uri, else the key's token_uri) for an access token (the
 * JWT-bearer grant, RFC 7523). Every base URL is config.api_base, so tests
 * point the connectors at local servers; every request goes through
 * conn_http (SSRF rules, 429 handling).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "importer/connectors.h"

#define METRICS_PAGE_ROWS    10000
#define METRICS_MAX_ROWS     1000000
#define METRICS_POLLS        120
#define METRICS_DEFAULT_DAYS 30

typedef struct mrun {
    conn_client_t client;
    const import_source_t *src;
    const json_t *cfg;
    json_t *creds;
    json_t *rows;
    char start[11], end[11]; /* YYYY-MM-DD */
    char auth[4200];         /* "Authorization: Bearer …" */
} mrun_t;

static const char *cfg_str(const json_t *o, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && *s ? s : def;
}

/* The base URL without trailing slashes into out. */
static void base_url(const mrun_t *m, const char *def, char *out, size_t outlen)
{
    const char *b = cfg_str(m->cfg, "api_base", def);
    size_t n = strlen(b);
    while (n > 0 && b[n - 1] == '/')
        n--;
    snprintf(out, outlen, "%.*s", (int)n, b);
}

/* Whether s is exactly a real day YYYY-MM-DD (not 2024-02-30). */
static bool valid_date(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *e = s ? strptime(s, "%Y-%m-%d", &tm) : NULL;
    if (!e || *e != '\0' || strlen(s) != 10)
        return false;
    time_t t = timegm(&tm);
    char back[16];
    return gmtime_r(&t, &tm) && strftime(back, sizeof(back), "%Y-%m-%d", &tm) == 10 &&
           strcmp(back, s) == 0;
}

/* config.start_date / end_date (YYYY-MM-DD), else the last config.days
 * (default 30) days up to today (UTC). */
static bool date_range(mrun_t *m)
{
    const char *s = cfg_str(m->cfg, "start_date", NULL), *e = cfg_str(m->cfg, "end_date", NULL);
    time_t now = time(NULL);
    struct tm tm;
    if (e && !valid_date(e))
        goto bad;
    if (e)
        snprintf(m->end, sizeof(m->end), "%s", e);
    else
        strftime(m->end, sizeof(m->end), "%Y-%m-%d", gmtime_r(&now, &tm));
    if (s && !valid_date(s))
        goto bad;
    if (s) {
        snprintf(m->start, sizeof(m->start), "%s", s);
    } else {
        const json_t *d = json_object_get(m->cfg, "days");
        long long days = json_is_integer(d) ? json_integer_value(d) : METRICS_DEFAULT_DAYS;
        if (days < 1 || days > 3660)
            goto bad;
        memset(&tm, 0, sizeof(tm));
        (void)strptime(m->end, "%Y-%m-%d", &tm);
        time_t t = timegm(&tm) - (time_t)(days - 1) * 86400;
        strftime(m->start, sizeof(m->start), "%Y-%m-%d", gmtime_r(&t, &tm));
    }
    if (strcmp(m->start, m->end) > 0)
        goto bad;
    return true;
bad:
    conn_fail(&m->client, false,
              "config.start_date and config.end_date must be dates (YYYY-MM-DD), start first, "
              "or config.days a number of days (1 to 3660)");
    return false;
}

bool conn_norm_date(const char *in, bool epoch, char out[11])
{
    if (!in)
        return false;
    size_t n = strlen(in);
    if (n >= 10 && in[4] == '-' && in[7] == '-') {
        snprintf(out, 11, "%.10s", in);
        return valid_date(out);
    }
    if (n == 8 && strspn(in, "0123456789") == 8) {
        snprintf(out, 11, "%.4s-%.2s-%.2s", in, in + 4, in + 6);
        return valid_date(out);
    }
    if (epoch && n > 0 && n < 24) {
        char *end;
        double v = strtod(in, &end);
        if (*end != '\0' && *end != ' ')
            return false;
        time_t t = strchr(in, '.') ? (time_t)v : (time_t)v * 86400;
        struct tm tm;
        if (!gmtime_r(&t, &tm))
            return false;
        strftime(out, 11, "%Y-%m-%d", &tm);
        return true;
    }
    return false;
}

/* Appends one metric row. value is text (NULL or not a number: null). */
static bool emit(mrun_t *m, const char *date, const char *metric, const char *value,
                 json_t *dims /* stolen */)
{
    if (json_array_size(m->rows) >= METRICS_MAX_ROWS) {
        json_decref(dims);
        conn_fail(&m->client, false, "the report has more than %d metric values; narrow it",
                  METRICS_MAX_ROWS);
        return false;
    }
    json_t *v = NULL;
    if (value && *value) {
        char *end;
        double d = strtod(value, &end);
        if (*end == '\0')
            v = strspn(value, "-0123456789") == strlen(value) && strlen(value) < 19
                    ? json_integer((json_int_t)strtoll(value, NULL, 10))
                    : json_real(d);
    }
    if (!v)
        v = json_null();
    json_t *row = json_pack("{s:s, s:s, s:o, s:o}", "date", date, "metric", metric, "value", v,
                            "dimensions", dims ? dims : json_object());
    if (!row || json_array_append_new(m->rows, row) != 0) {
        conn_fail(&m->client, false, "out of memory");
        return false;
    }
    return true;
}

/* ------------------------------------------------------------ tokens */

/* The service-account key: credentials.service_account_json (the key file
 * as text), or its fields as credentials. A new reference. */
static json_t *sa_key(mrun_t *m)
{
    const char *txt = json_string_value(json_object_get(m->creds, "service_account_json"));
    json_t *k = txt ? json_loads(txt, 0, NULL) : json_incref(m->creds);
    if (!json_is_object(k) || !json_string_value(json_object_get(k, "client_email")) ||
        !json_string_value(json_object_get(k, "private_key"))) {
        json_decref(k);
        conn_fail(&m->client, false,
                  "the credentials need the service account's key: service_account_json (the "
                  "key file's JSON) or client_email and private_key; %s",
                  CONN_RECONNECT);
        return NULL;
    }
    return k;
}

/* Exchanges a signed service-account JWT for an access token and sets
 * m->auth. */
static bool google_token(mrun_t *m, const char *scope)
{
    json_t *key = sa_key(m);
    if (!key)
        return false;
    const char *uri = cfg_str(m->cfg, "token_uri",
                              cfg_str(key, "token_uri", "https://oauth2.googleapis.com/token"));
    long long now = (long long)time(NULL);
    json_t *hdr = json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
    const char *kid = json_string_value(json_object_get(key, "private_key_id"));
    if (hdr && kid)
        json_object_set_new(hdr, "kid", json_string(kid));
    json_t *claims = json_pack(
        "{s:s, s:s, s:s, s:I, s:I}", "iss", json_string_value(json_object_get(key, "client_email")),
        "scope", scope, "aud", uri, "iat", (json_int_t)now, "exp", (json_int_t)(now + 3600));
    char *jwt =
        hdr && claims
            ? conn_jwt_rs256(hdr, claims, json_string_value(json_object_get(key, "private_key")),
                             m->client.err, m->client.errlen)
            : NULL;
    json_decref(hdr);
    json_decref(claims);
    bool ok = false;
    char *body = NULL;
    if (!jwt)
        goto out;
    char *esc = curl_easy_escape(NULL, jwt, 0);
    size_t blen = esc ? strlen(esc) + 128 : 0;
    body = esc ? malloc(blen) : NULL;
    if (body)
        snprintf(body, blen, "grant_type=%s&assertion=%s",
                 "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer", esc);
    curl_free(esc);
    conn_resp_t resp;
    if (!body ||
        !conn_http(&m->client, "POST", uri, NULL, body, "application/x-www-form-urlencoded", &resp))
        goto out;
    if (resp.status != 200) {
        conn_http_error(&m->client, &resp, "the token exchange");
    } else {
        json_t *j = json_loadb(resp.body.data, resp.body.len, 0, NULL);
        const char *tok = json_string_value(json_object_get(j, "access_token"));
        if (tok && !strpbrk(tok, "\r\n") && strlen(tok) < sizeof(m->auth) - 32) {
            snprintf(m->auth, sizeof(m->auth), "Authorization: Bearer %s", tok);
            ok = true;
        } else {
            conn_fail(&m->client, false, "the token exchange answered no access_token");
        }
        json_decref(j);
    }
    conn_resp_free(&resp);
out:
    free(body);
    free(jwt);
    json_decref(key);
    return ok;
}

/* POST/GET with the auth header; the parsed JSON answer of a 2xx (new
 * reference), or NULL with the error filled. *status gets the HTTP status. */
static json_t *call_json(mrun_t *m, const char *method, const char *url, const char *body,
                         const char *extra, const char *what, long *status)
{
    const char *h[3] = {m->auth, extra, NULL};
    conn_resp_t resp;
    if (!conn_http(&m->client, method, url, h, body, "application/json", &resp))
        return NULL;
    if (status)
        *status = resp.status;
    json_t *j = NULL;
    if (resp.status < 200 || resp.status >= 300) {
        conn_http_error(&m->client, &resp, what);
    } else {
        j = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
        if (!json_is_object(j)) {
            json_decref(j);
            j = NULL;
            conn_fail(&m->client, false, "%s: the answer is not a JSON object", what);
        }
    }
    conn_resp_free(&resp);
    return j;
}

/* config[key]: a list of names (*out NULL when absent and not required). */
static bool cfg_list(mrun_t *m, const char *key, bool required, const json_t **out)
{
    const json_t *a = json_object_get(m->cfg, key);
    size_t i;
    json_t *v;
    bool ok = json_is_array(a) || (!a && !required);
    json_array_foreach(a, i, v)
    {
        ok = ok && json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < 200 &&
             !strpbrk(json_string_value(v), ",&=\"\\");
    }
    if (!ok || (required && json_array_size(a) == 0)) {
        conn_fail(&m->client, false, "config.%s must be a list of names%s", key,
                  required ? " (at least one)" : "");
        return false;
    }
    *out = a;
    return true;
}

/* Names of a list as a {name: true} JSON array of {"name": …} objects. */
static json_t *name_objects(const json_t *names, const char *first)
{
    json_t *a = json_array();
    if (a && first)
        json_array_append_new(a, json_pack("{s:s}", "name", first));
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v)
    {
        if (!first || strcmp(json_string_value(v), first) != 0)
            json_array_append_new(a, json_pack("{s:s}", "name", json_string_value(v)));
    }
    return a;
}

/* ------------------------------------------------------------ GA4 */

/* One runReport page's rows; false on a bad answer. *got gets the rows. */
static bool ga4_rows(mrun_t *m, const json_t *ans, size_t *got)
{
    const json_t *dh = json_object_get(ans, "dimensionHeaders");
    const json_t *mh = json_object_get(ans, "metricHeaders");
    const json_t *rows = json_object_get(ans, "rows");
    *got = json_array_size(rows);
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const json_t *dv = json_object_get(row, "dimensionValues");
        const json_t *mv = json_object_get(row, "metricValues");
        char day[11];
        if (!conn_norm_date(json_string_value(json_object_get(json_array_get(dv, 0), "value")),
                            false, day)) {
            conn_fail(&m->client, false,
                      "runReport: a row has no date (YYYYMMDD) as its first "
                      "dimension");
            return false;
        }
        for (size_t k = 0; k < json_array_size(mh); k++) {
            json_t *dims = json_object();
            for (size_t d = 1; d < json_array_size(dh); d++)
                json_object_set_new(
                    dims, json_string_value(json_object_get(json_array_get(dh, d), "name")),
                    json_string(
                        json_string_value(json_object_get(json_array_get(dv, d), "value"))));
            const char *name = json_string_value(json_object_get(json_array_get(mh, k), "name"));
            const char *val = json_string_value(json_object_get(json_array_get(mv, k), "value"));
            if (!name || !emit(m, day, name, val, dims))
                return name ? false
                            : (conn_fail(&m->client, false, "runReport: a metric has no name"),
                               false);
        }
    }
    return true;
}

static bool ga4_fetch(mrun_t *m)
{
    const char *prop = cfg_str(m->cfg, "property_id", NULL);
    const json_t *metrics = NULL, *dims = NULL;
    if (!prop || strspn(prop, "0123456789") != strlen(prop) || strlen(prop) > 30) {
        conn_fail(&m->client, false, "config.property_id must be the GA4 property's number");
        return false;
    }
    if (!cfg_list(m, "metrics", true, &metrics) || !cfg_list(m, "dimensions", false, &dims) ||
        !google_token(m, "https://www.googleapis.com/auth/analytics.readonly"))
        return false;
    char base[1024], url[CONN_URL_MAX];
    base_url(m, "https://analyticsdata.googleapis.com", base, sizeof(base));
    snprintf(url, sizeof(url), "%s/v1beta/properties/%s:runReport", base, prop);
    long long offset = 0;
    for (int page = 0; page < CONN_MAX_PAGES; page++) {
        json_t *req =
            json_pack("{s:[{s:s, s:s}], s:o, s:o, s:I, s:I}", "dateRanges", "startDate", m->start,
                      "endDate", m->end, "dimensions", name_objects(dims, "date"), "metrics",
                      name_objects(metrics, NULL), "limit", (json_int_t)METRICS_PAGE_ROWS, "offset",
                      (json_int_t)offset);
        char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        json_t *ans = body ? call_json(m, "POST", url, body, NULL, "runReport", NULL) : NULL;
        free(body);
        if (!ans)
            return false;
        size_t got = 0;
        bool ok = ga4_rows(m, ans, &got);
        long long total = json_integer_value(json_object_get(ans, "rowCount"));
        json_decref(ans);
        if (!ok)
            return false;
        offset += (long long)got;
        if (got == 0 || offset >= total)
            return true;
    }
    return true;
}

/* ------------------------------------------------------------ Meta */

/* One insights row: every metric field; an array of {action_type, value}
 * (actions, conversions of the pixel) gives one metric per action type. */
static bool meta_row(mrun_t *m, const json_t *row, const json_t *metrics, const json_t *breakdowns)
{
    char day[11];
    if (!conn_norm_date(json_string_value(json_object_get(row, "date_start")), false, day)) {
        conn_fail(&m->client, false, "insights: a row has no date_start");
        return false;
    }
    size_t i, k;
    json_t *f, *a;
    json_array_foreach(metrics, i, f)
    {
        const char *name = json_string_value(f);
        const json_t *v = json_object_get(row, name);
        json_t *dims = json_object();
        json_t *b;
        json_array_foreach(breakdowns, k, b)
        {
            char *t = conn_scalar_text(json_object_get(row, json_string_value(b)));
            json_object_set_new(dims, json_string_value(b), json_string(t ? t : ""));
            free(t);
        }
        if (!v || json_is_null(v)) {
            json_decref(dims); /* the API leaves out fields without data */
            continue;
        }
        if (!json_is_array(v)) {
            char *t = conn_scalar_text(v);
            bool ok = emit(m, day, name, t, dims);
            free(t);
            if (!ok)
                return false;
            continue;
        }
        json_array_foreach(v, k, a)
        {
            const char *type = json_string_value(json_object_get(a, "action_type"));
            char *t = conn_scalar_text(json_object_get(a, "value"));
            char metric[300];
            snprintf(metric, sizeof(metric), "%s.%s", name, type ? type : "unknown");
            bool ok = emit(m, day, metric, t, json_deep_copy(dims));
            free(t);
            if (!ok) {
                json_decref(dims);
                return false;
            }
        }
        json_decref(dims);
    }
    return true;
}

static char *join_names(const json_t *a, const json_t *b)
{
    cd_buf_t buf;
    cd_buf_init(&buf, 8192);
    size_t i;
    json_t *v;
    bool ok = true;
    json_array_foreach(a, i, v)
    {
        ok = ok && (buf.len == 0 || cd_buf_add(&buf, ",", 1)) &&
             cd_buf_adds(&buf, json_string_value(v));
    }
    json_array_foreach(b, i, v)
    {
        ok = ok && (buf.len == 0 || cd_buf_add(&buf, ",", 1)) &&
             cd_buf_adds(&buf, json_string_value(v));
    }
    char *out = ok ? cd_buf_take(&buf) : NULL;
    cd_buf_free(&buf);
    return out;
}

static bool meta_fetch(mrun_t *m)
{
    const char *obj = cfg_str(m->cfg, "ad_account_id", cfg_str(m->cfg, "object_id", NULL));
    const char *ver = cfg_str(m->cfg, "api_version", "v19.0");
    const char *level = cfg_str(m->cfg, "level", NULL);
    const char *tok = json_string_value(json_object_get(m->creds, "access_token"));
    const json_t *metrics = NULL, *breakdowns = NULL;
    if (!obj || strspn(obj, "act_0123456789") != strlen(obj) || strlen(obj) > 64 ||
        strspn(ver, "v0123456789.") != strlen(ver) ||
        (level && strspn(level, "abcdefghijklmnopqrstuvwxyz_") != strlen(level))) {
        conn_fail(&m->client, false,
                  "config.ad_account_id must be the ad account (act_<number>) whose insights "
                  "report the pixel's events");
        return false;
    }
    if (!tok || !*tok || strpbrk(tok, "\r\n")) {
        conn_fail(&m->client, false, "the credentials need the access_token; %s", CONN_RECONNECT);
        return false;
    }
    snprintf(m->auth, sizeof(m->auth), "Authorization: Bearer %.4000s", tok);
    if (!cfg_list(m, "metrics", true, &metrics) || !cfg_list(m, "breakdowns", false, &breakdowns))
        return false;
    char base[1024], url[CONN_URL_MAX];
    base_url(m, "https://graph.facebook.com", base, sizeof(base));
    char *fields = join_names(metrics, NULL), *bd = join_names(breakdowns, NULL);
    char *ef = fields ? curl_easy_escape(NULL, fields, 0) : NULL;
    char range[128];
    snprintf(range, sizeof(range),
             "%%7B%%22since%%22%%3A%%22%s%%22%%2C%%22until%%22%%3A%%22%s%%22%%7D", m->start,
             m->end);
    int n = snprintf(url, sizeof(url),
                     "%s/%s/%s/insights?fields=%s&time_increment=1&time_range=%s&limit=500%s%s%s%s",
                     base, ver, obj, ef ? ef : "", range, bd && *bd ? "&breakdowns=" : "",
                     bd && *bd ? bd : "", level ? "&level=" : "", level ? level : "");
    curl_free(ef);
    free(fields);
    free(bd);
    if (n < 0 || (size_t)n >= sizeof(url)) {
        conn_fail(&m->client, false, "config.metrics makes the request too long");
        return false;
    }
    for (int page = 0; page < CONN_MAX_PAGES; page++) {
        json_t *ans = call_json(m, "GET", url, NULL, NULL, "insights", NULL);
        if (!ans)
            return false;
        size_t i;
        json_t *row;
        bool ok = true;
        json_array_foreach(json_object_get(ans, "data"), i, row)
        {
            ok = ok && meta_row(m, row, metrics, breakdowns);
        }
        const char *next =
            json_string_value(json_object_get(json_object_get(ans, "paging"), "next"));
        bool more = ok && next && strlen(next) < sizeof(url);
        if (more && !conn_same_origin(next, url)) {
            conn_fail(&m->client, false,
                      "insights: paging.next leads to another host than config.api_base; it is "
                      "not followed, so that the access token stays with the API");
            ok = more = false;
        }
        if (more)
            snprintf(url, sizeof(url), "%s", next);
        json_decref(ans);
        if (!ok)
            return false;
        if (!more)
            return true;
    }
    return true;
}

/* ------------------------------------------------------------ tables (BigQuery, Snowflake) */

/* Which result columns are the day, the metrics and the dimensions:
 * config.date_column (default "date"), config.metrics, config.dimensions,
 * matched case-insensitively (Snowflake upper-cases names). */
typedef struct tab {
    int date_col;
    int metric_col[64];
    int dim_col[64];
    size_t nmetrics, ndims;
    const json_t *metrics, *dims;
    bool epoch_dates;
} tab_t;

static int find_col(const char *const *names, size_t n, const char *want)
{
    for (size_t i = 0; i < n; i++)
        if (names[i] && strcasecmp(names[i], want) == 0)
            return (int)i;
    return -1;
}

static bool tab_map(mrun_t *m, tab_t *t, const char *const *names, size_t n)
{
    const char *dc = cfg_str(m->cfg, "date_column", "date");
    t->date_col = find_col(names, n, dc);
    if (t->date_col < 0) {
        conn_fail(&m->client, false,
                  "the query's result has no column \"%.60s\" (config.date_column)", dc);
        return false;
    }
    if (json_array_size(t->metrics) > 64 || json_array_size(t->dims) > 64) {
        conn_fail(&m->client, false, "at most 64 metrics and 64 dimensions");
        return false;
    }
    t->nmetrics = json_array_size(t->metrics);
    t->ndims = json_array_size(t->dims);
    for (size_t i = 0; i < t->nmetrics + t->ndims; i++) {
        bool metric = i < t->nmetrics;
        const char *want = json_string_value(
            json_array_get(metric ? t->metrics : t->dims, metric ? i : i - t->nmetrics));
        int c = find_col(names, n, want);
        if (c < 0) {
            conn_fail(&m->client, false, "the query's result has no column \"%.60s\" (config.%s)",
                      want, metric ? "metrics" : "dimensions");
            return false;
        }
        if (metric)
            t->metric_col[i] = c;
        else
            t->dim_col[i - t->nmetrics] = c;
    }
    return true;
}

/* One result row given as its cells' text (NULL for SQL NULL). */
static bool tab_row(mrun_t *m, const tab_t *t, const char *const *cells, size_t n)
{
    char day[11];
    if ((size_t)t->date_col >= n || !conn_norm_date(cells[t->date_col], t->epoch_dates, day)) {
        conn_fail(&m->client, false, "a row's %s is not a date",
                  cfg_str(m->cfg, "date_column", "date"));
        return false;
    }
    for (size_t i = 0; i < t->nmetrics; i++) {
        json_t *dims = json_object();
        for (size_t d = 0; d < t->ndims; d++) {
            const char *v = (size_t)t->dim_col[d] < n ? cells[t->dim_col[d]] : NULL;
            json_object_set_new(dims, json_string_value(json_array_get(t->dims, d)),
                                json_string(v ? v : ""));
        }
        const char *v = (size_t)t->metric_col[i] < n ? cells[t->metric_col[i]] : NULL;
        if (!emit(m, day, json_string_value(json_array_get(t->metrics, i)), v, dims))
            return false;
    }
    return true;
}

/* The strings of a JSON array's elements (or of each element's key) as a
 * malloc'd array for tab_map / tab_row; NULL entries for non-strings. */
static const char **texts_of(mrun_t *m, const json_t *arr, const char *key, size_t *n)
{
    *n = json_array_size(arr);
    const char **out = calloc(*n ? *n : 1, sizeof(*out));
    if (!out) {
        conn_fail(&m->client, false, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < *n; i++) {
        const json_t *el = json_array_get(arr, i);
        out[i] = json_string_value(key ? json_object_get(el, key) : el);
    }
    return out;
}

static bool tab_map_json(mrun_t *m, tab_t *t, const json_t *columns, const char *key)
{
    size_t n;
    const char **names = texts_of(m, columns, key, &n);
    bool ok = names && tab_map(m, t, names, n);
    free(names);
    return ok;
}

static bool tab_row_json(mrun_t *m, const tab_t *t, const json_t *row, const char *key)
{
    size_t n;
    const char **cells = texts_of(m, row, key, &n);
    bool ok = cells && tab_row(m, t, cells, n);
    free(cells);
    return ok;
}

/* ------------------------------------------------------------ BigQuery */

/* Maps the schema (once) and emits the rows of a query answer. */
static bool bq_rows(mrun_t *m, tab_t *t, bool *mapped, const json_t *ans)
{
    const json_t *fields = json_object_get(json_object_get(ans, "schema"), "fields");
    if (!*mapped && json_array_size(fields) > 0) {
        if (!tab_map_json(m, t, fields, "name"))
            return false;
        *mapped = true;
    }
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(ans, "rows"), i, row)
    {
        if (!*mapped)
            return conn_fail(&m->client, false, "jobs.query: rows without a schema"), false;
        if (!tab_row_json(m, t, json_object_get(row, "f"), "v"))
            return false;
    }
    return true;
}

static bool bq_fetch(mrun_t *m)
{
    const char *project = cfg_str(m->cfg, "project_id", NULL);
    const char *query = cfg_str(m->cfg, "query", NULL);
    tab_t t = {0};
    if (!project || strspn(project, "abcdefghijklmnopqrstuvwxyz0123456789-.:") != strlen(project) ||
        strlen(project) > 100 || !query) {
        conn_fail(&m->client, false,
                  "config.project_id (the Google Cloud project) and config.query (standard SQL) "
                  "are needed");
        return false;
    }
    if (!cfg_list(m, "metrics", true, &t.metrics) || !cfg_list(m, "dimensions", false, &t.dims) ||
        !google_token(m, "https://www.googleapis.com/auth/bigquery.readonly"))
        return false;
    char base[1024], url[CONN_URL_MAX];
    base_url(m, "https://bigquery.googleapis.com", base, sizeof(base));
    snprintf(url, sizeof(url), "%s/bigquery/v2/projects/%s/queries", base, project);
    json_t *req = json_pack("{s:s, s:b, s:I, s:I}", "query", query, "useLegacySql", 0, "maxResults",
                            (json_int_t)METRICS_PAGE_ROWS, "timeoutMs", (json_int_t)10000);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    json_t *ans = body ? call_json(m, "POST", url, body, NULL, "jobs.query", NULL) : NULL;
    free(body);
    bool mapped = false;
    for (int i = 0; ans && i < CONN_MAX_PAGES; i++) {
        bool complete = json_is_true(json_object_get(ans, "jobComplete"));
        if (complete && !bq_rows(m, &t, &mapped, ans)) {
            json_decref(ans);
            return false;
        }
        const char *tokn = json_string_value(json_object_get(ans, "pageToken"));
        const json_t *ref = json_object_get(ans, "jobReference");
        const char *job = json_string_value(json_object_get(ref, "jobId"));
        const char *loc = json_string_value(json_object_get(ref, "location"));
        if (complete && !tokn) {
            json_decref(ans);
            return true;
        }
        char *ej = job ? curl_easy_escape(NULL, job, 0) : NULL;
        char *et = tokn ? curl_easy_escape(NULL, tokn, 0) : NULL;
        char *el = loc ? curl_easy_escape(NULL, loc, 0) : NULL;
        int n = ej ? snprintf(url, sizeof(url),
                              "%s/bigquery/v2/projects/%s/queries/%s?maxResults=%d&timeoutMs=10000"
                              "%s%s%s%s",
                              base, project, ej, METRICS_PAGE_ROWS, et ? "&pageToken=" : "",
                              et ? et : "", el ? "&location=" : "", el ? el : "")
                   : -1;
        curl_free(ej);
        curl_free(et);
        curl_free(el);
        json_decref(ans);
        if (n < 0 || (size_t)n >= sizeof(url)) {
            conn_fail(&m->client, false, "jobs.query: the answer has no usable jobReference");
            return false;
        }
        ans = call_json(m, "GET", url, NULL, NULL, "getQueryResults", NULL);
    }
    json_decref(ans);
    if (!m->client.err[0])
        conn_fail(&m->client, true, "jobs.query did not complete");
    return false;
}

/* ------------------------------------------------------------ Snowflake */

/* The key-pair JWT: iss ACCOUNT.USER.SHA256:<fingerprint>, sub ACCOUNT.USER. */
static bool snowflake_auth(mrun_t *m, const char *account, const char *user)
{
    const char *pem = json_string_value(json_object_get(m->creds, "private_key"));
    char fp[128], qual[300], iss[450];
    if (!conn_key_fingerprint(pem, fp, sizeof(fp), m->client.err, m->client.errlen))
        return false;
    snprintf(qual, sizeof(qual), "%s.%s", account, user);
    for (char *p = qual; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    snprintf(iss, sizeof(iss), "%s.%s", qual, fp);
    long long now = (long long)time(NULL);
    json_t *hdr = json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
    json_t *claims = json_pack("{s:s, s:s, s:I, s:I}", "iss", iss, "sub", qual, "iat",
                               (json_int_t)now, "exp", (json_int_t)(now + 3600));
    char *jwt =
        hdr && claims ? conn_jwt_rs256(hdr, claims, pem, m->client.err, m->client.errlen) : NULL;
    json_decref(hdr);
    json_decref(claims);
    if (!jwt)
        return false;
    snprintf(m->auth, sizeof(m->auth), "Authorization: Bearer %s", jwt);
    free(jwt);
    return true;
}

/* Emits the rows of one partition ("data": [[cell, …], …]). */
static bool sf_data(mrun_t *m, const tab_t *t, const json_t *data)
{
    size_t i;
    json_t *row;
    json_array_foreach(data, i, row)
    {
        if (!tab_row_json(m, t, row, NULL))
            return false;
    }
    return true;
}

static bool sf_map(mrun_t *m, tab_t *t, const json_t *meta)
{
    const json_t *types = json_object_get(meta, "rowType");
    if (!tab_map_json(m, t, types, "name"))
        return false;
    const char *ty =
        json_string_value(json_object_get(json_array_get(types, (size_t)t->date_col), "type"));
    /* jsonv2 sends DATE as days and TIMESTAMP_* as seconds since the epoch */
    t->epoch_dates = ty && (strcasecmp(ty, "date") == 0 || strncasecmp(ty, "timestamp", 9) == 0);
    return true;
}

static bool sf_fetch(mrun_t *m)
{
    const char *account = cfg_str(m->cfg, "account", NULL);
    const char *user = cfg_str(m->cfg, "user", cfg_str(m->creds, "user", NULL));
    const char *query = cfg_str(m->cfg, "query", NULL);
    const char *ident = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.";
    tab_t t = {0};
    if (!account || !user || !query || strspn(account, ident) != strlen(account) ||
        strspn(user, ident) != strlen(user) || strlen(account) > 100 || strlen(user) > 100) {
        conn_fail(&m->client, false,
                  "config.account (the account identifier), config.user and config.query are "
                  "needed");
        return false;
    }
    char base[1024], url[CONN_URL_MAX], def[300];
    snprintf(def, sizeof(def), "https://%s.snowflakecomputing.com", account);
    base_url(m, def, base, sizeof(base));
    if (!cfg_list(m, "metrics", true, &t.metrics) || !cfg_list(m, "dimensions", false, &t.dims) ||
        !snowflake_auth(m, account, user))
        return false;
    json_t *req = json_pack("{s:s, s:i}", "statement", query, "timeout", 600);
    const char *opt[] = {"database", "schema", "warehouse", "role"};
    for (size_t i = 0; req && i < CD_ARRAY_LEN(opt); i++)
        if (cfg_str(m->cfg, opt[i], NULL))
            json_object_set_new(req, opt[i], json_string(cfg_str(m->cfg, opt[i], NULL)));
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    snprintf(url, sizeof(url), "%s/api/v2/statements", base);
    const char *tt = "X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT";
    long status = 0;
    json_t *ans = body ? call_json(m, "POST", url, body, tt, "the statement", &status) : NULL;
    free(body);
    for (int poll = 0; ans && status == 202 && poll < METRICS_POLLS; poll++) {
        const char *h = json_string_value(json_object_get(ans, "statementHandle"));
        if (!h || strspn(h, "0123456789abcdefABCDEF-") != strlen(h) || strlen(h) > 64)
            break;
        snprintf(url, sizeof(url), "%s/api/v2/statements/%s", base, h);
        json_decref(ans);
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
        ans = call_json(m, "GET", url, NULL, tt, "the statement's status", &status);
    }
    const json_t *meta = json_object_get(ans, "resultSetMetaData");
    const char *h = json_string_value(json_object_get(ans, "statementHandle"));
    bool ok = ans && status == 200 && meta && h &&
              strspn(h, "0123456789abcdefABCDEF-") == strlen(h) && strlen(h) <= 64;
    if (ans && !ok)
        conn_fail(&m->client, true, "the statement did not finish with a result");
    ok = ok && sf_map(m, &t, meta) && sf_data(m, &t, json_object_get(ans, "data"));
    size_t parts = json_array_size(json_object_get(meta, "partitionInfo"));
    char handle[80];
    snprintf(handle, sizeof(handle), "%s", h ? h : "");
    json_decref(ans);
    for (size_t p = 1; ok && p < parts; p++) {
        snprintf(url, sizeof(url), "%s/api/v2/statements/%s?partition=%zu", base, handle, p);
        json_t *part = call_json(m, "GET", url, NULL, tt, "a result partition", NULL);
        ok = part && sf_data(m, &t, json_object_get(part, "data"));
        json_decref(part);
    }
    return ok;
}

/* ------------------------------------------------------------ entry */

bool conn_is_metrics_type(const char *type)
{
    return type && (strcmp(type, "google_analytics") == 0 || strcmp(type, "meta_pixel") == 0 ||
                    strcmp(type, "bigquery") == 0 || strcmp(type, "snowflake") == 0);
}

bool conn_metrics_fetch(const app_t *app, db_conn_t *db, const import_source_t *src,
                        import_cancel_fn cancel, void *cancel_arg, json_t **rows, char *err,
                        size_t errlen, bool *retryable)
{
    mrun_t m = {.client = {.app = app,
                           .cancel = cancel,
                           .cancel_arg = cancel_arg,
                           .err = err,
                           .errlen = errlen},
                .src = src,
                .cfg = src->config};
    *rows = NULL;
    *err = '\0';
    m.rows = json_array();
    m.creds = conn_credentials(db, src->id, err, errlen);
    bool ok = m.rows && m.creds && date_range(&m);
    if (ok && strcmp(src->type, "google_analytics") == 0)
        ok = ga4_fetch(&m);
    else if (ok && strcmp(src->type, "meta_pixel") == 0)
        ok = meta_fetch(&m);
    else if (ok && strcmp(src->type, "bigquery") == 0)
        ok = bq_fetch(&m);
    else if (ok && strcmp(src->type, "snowflake") == 0)
        ok = sf_fetch(&m);
    else if (ok)
        ok = (conn_fail(&m.client, false, "not an analytics source"), false);
    *retryable = m.client.retryable;
    json_decref(m.creds);
    if (!ok) {
        if (!*err)
            snprintf(err, errlen, "the report could not be read");
        json_decref(m.rows);
        return false;
    }
    log_info("import: %s source %s: %zu metric values in %lld requests", src->type, src->id,
             json_array_size(m.rows), m.client.requests);
    *rows = m.rows;
    return true;
}
