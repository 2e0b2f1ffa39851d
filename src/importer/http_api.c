/*
 * The HTTP client of the API connectors.
 *
 * Every request follows fetch.c's SSRF rules: the address of every connection
 * (after DNS) is checked when the socket opens, proxies from the environment
 * are ignored, only http/https, IMPORT_FETCH_TIMEOUT and IMPORT_MAX_BYTES
 * bound each answer. Unlike file downloads, API requests follow no
 * redirects, and the next pages of link pagination (rest_api, Meta's
 * paging.next) must stay on the origin of the first request
 * (conn_same_origin): requests carry the source's credentials, which must
 * not be sent to another host. A 429 answer is retried after its
 * Retry-After (at most CONN_MAX_429_RETRIES waits of CONN_MAX_RETRY_WAIT_S
 * seconds, cancel-aware).
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "importer/connectors.h"

#define CONN_CONNECT_TIMEOUT_S 15L
#define CONN_HEADER_MAX        8192

/* Reads the source's credentials and sync state: service_role, read-only,
 * with the encryption key. */
static const db_caller_t SECRETS = {
    .role = "service_role",
    .claims_json = "{\"role\":\"service_role\"}",
    .method = "JOB",
    .path = "import.sync",
    .headers_json = "{}",
    .read_only = true,
    .with_secrets = true,
};

/* ------------------------------------------------------------ the client */

typedef struct xfer {
    conn_client_t *c;
    conn_resp_t *resp;
    bool allow_private;
    bool refused_address;
    bool too_big;
} xfer_t;

static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
    xfer_t *x = arg;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    if (!x->allow_private && !import__address_public(&addr->addr)) {
        x->refused_address = true;
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    xfer_t *x = arg;
    size_t len = size * nmemb;
    if (!cd_buf_add(&x->resp->body, data, len)) {
        x->too_big = true;
        return 0;
    }
    return len;
}

/* Copies header value h[0..n) (after "Name:") trimmed into out. */
static void header_value(const char *h, size_t n, char *out, size_t outlen)
{
    while (n > 0 && (*h == ' ' || *h == '\t'))
        h++, n--;
    while (n > 0 && (h[n - 1] == '\r' || h[n - 1] == '\n' || h[n - 1] == ' '))
        n--;
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, h, n);
    out[n] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    xfer_t *x = arg;
    size_t len = size * nmemb;
    conn_resp_t *r = x->resp;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) { /* a new answer (redirect, retry) */
        cd_buf_reset(&r->link);
        r->content_type[0] = r->retry_after[0] = '\0';
    } else if (len > 5 && strncasecmp(data, "link:", 5) == 0) {
        char v[CONN_HEADER_MAX];
        header_value(data + 5, len - 5, v, sizeof(v));
        if ((r->link.len && !cd_buf_add(&r->link, ", ", 2)) || !cd_buf_adds(&r->link, v))
            cd_buf_reset(&r->link);
    } else if (len > 13 && strncasecmp(data, "content-type:", 13) == 0) {
        header_value(data + 13, len - 13, r->content_type, sizeof(r->content_type));
    } else if (len > 12 && strncasecmp(data, "retry-after:", 12) == 0) {
        header_value(data + 12, len - 12, r->retry_after, sizeof(r->retry_after));
    }
    return len;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c2, curl_off_t d)
{
    (void)a, (void)b, (void)c2, (void)d;
    xfer_t *x = arg;
    return x->c->cancel && x->c->cancel(x->c->cancel_arg) ? 1 : 0;
}

void conn_resp_free(conn_resp_t *resp)
{
    cd_buf_free(&resp->body);
    cd_buf_free(&resp->link);
}

void conn_fail(conn_client_t *c, bool retryable, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    c->retryable = retryable;
}

static CURL *make_handle(conn_client_t *c, xfer_t *x, const char *method, const char *url,
                         struct curl_slist *hl, const char *body, char *curl_err)
{
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    /* no redirects: the credentials' headers would follow them to any host */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONN_CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, c->app->cfg.import_fetch_timeout);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "campaignd-import/1");
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
    }
    return h;
}

/* One transfer; false when no HTTP answer came back. */
static bool perform(conn_client_t *c, const char *method, const char *url, struct curl_slist *hl,
                    const char *body, conn_resp_t *resp)
{
    xfer_t x = {.c = c, .resp = resp, .allow_private = c->app->cfg.import_allow_private_networks};
    char curl_err[CURL_ERROR_SIZE] = "";
    cd_buf_reset(&resp->body);
    cd_buf_reset(&resp->link);
    resp->content_type[0] = resp->retry_after[0] = '\0';
    resp->status = 0;
    CURL *h = make_handle(c, &x, method, url, hl, body, curl_err);
    if (!h) {
        conn_fail(c, true, "cannot start a request (out of memory)");
        return false;
    }
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_easy_cleanup(h);
    c->requests++;
    if (rc == CURLE_OK)
        return true;
    if (x.refused_address)
        conn_fail(c, false,
                  "the API's URL leads to a private or local network address, which imports may "
                  "not reach; use a public URL (an administrator can allow private networks with "
                  "IMPORT_ALLOW_PRIVATE_NETWORKS)");
    else if (x.too_big)
        conn_fail(c, false, "an answer of the API is larger than the import limit of %ld bytes",
                  c->app->cfg.import_max_bytes);
    else if (rc == CURLE_ABORTED_BY_CALLBACK)
        conn_fail(c, false, "the sync was cancelled");
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        conn_fail(c, true, "the API did not answer within %ld seconds",
                  c->app->cfg.import_fetch_timeout);
    else
        conn_fail(c, true, "cannot reach the API: %s",
                  *curl_err ? curl_err : curl_easy_strerror(rc));
    return false;
}

/* Waits secs seconds, polling the cancel callback; false when cancelled. */
static bool wait_cancellable(conn_client_t *c, long secs)
{
    for (long i = 0; i < secs * 10; i++) {
        if (c->cancel && c->cancel(c->cancel_arg))
            return false;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return true;
}

bool conn_http(conn_client_t *c, const char *method, const char *url, const char *const *headers,
               const char *body, const char *body_type, conn_resp_t *resp)
{
    cd_buf_init(&resp->body, (size_t)c->app->cfg.import_max_bytes);
    cd_buf_init(&resp->link, CONN_HEADER_MAX);
    struct curl_slist *hl = NULL, *t;
    char ct[160];
    snprintf(ct, sizeof(ct), "Content-Type: %s", body_type ? body_type : "application/json");
    bool ok = (t = curl_slist_append(hl, "Accept: application/json, application/x-ndjson")) &&
              (hl = t) && (!body || ((t = curl_slist_append(hl, ct)) && (hl = t)));
    for (size_t i = 0; ok && headers && headers[i]; i++)
        ok = (t = curl_slist_append(hl, headers[i])) && (hl = t);
    if (!ok) {
        curl_slist_free_all(hl);
        conn_fail(c, true, "out of memory");
        return false;
    }
    int waits = 0;
    for (;;) {
        ok = perform(c, method, url, hl, body, resp);
        if (!ok || resp->status != 429)
            break;
        long secs = conn_retry_after(resp->retry_after, time(NULL));
        if (secs < 0)
            secs = 1 << waits; /* no usable Retry-After: back off 1, 2, 4 … s */
        if (waits >= CONN_MAX_429_RETRIES || secs > CONN_MAX_RETRY_WAIT_S) {
            conn_fail(c, true,
                      "the API keeps answering 429 (too many requests; it asked to wait %ld s): "
                      "the sync will be retried later",
                      secs);
            ok = false;
            break;
        }
        log_info("import: the API answered 429, waiting %ld s as Retry-After asks", secs);
        waits++;
        if (!wait_cancellable(c, secs)) {
            conn_fail(c, false, "the sync was cancelled");
            ok = false;
            break;
        }
    }
    curl_slist_free_all(hl);
    if (!ok)
        conn_resp_free(resp);
    return ok;
}

bool conn_http_error(conn_client_t *c, const conn_resp_t *resp, const char *what)
{
    json_t *j = json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, NULL);
    const json_t *e = json_object_get(j, "error");
    const char *code = json_string_value(e); /* OAuth: {"error": "invalid_grant"} */
    const char *msg = json_string_value(json_object_get(j, "error_description"));
    if (!msg && json_is_object(e))
        msg = json_string_value(json_object_get(e, "message"));
    if (!msg)
        msg = json_string_value(json_object_get(j, "message"));
    bool revoked =
        resp->status == 401 || resp->status == 403 ||
        (code && (strcmp(code, "invalid_grant") == 0 || strcmp(code, "invalid_client") == 0 ||
                  strcmp(code, "unauthorized_client") == 0)) ||
        (json_is_object(e) && json_integer_value(json_object_get(e, "code")) == 190);
    if (revoked)
        conn_fail(c, false,
                  "%s: the API refused the credentials (HTTP %ld%s%.160s): they expired or were "
                  "revoked; %s",
                  what, resp->status, msg ? ", " : "", msg ? msg : "", CONN_RECONNECT);
    else
        conn_fail(c, resp->status >= 500, "%s: the API answered HTTP %ld%s%.200s", what,
                  resp->status, msg ? ": " : "", msg ? msg : "");
    json_decref(j);
    return false;
}

json_t *conn_credentials(db_conn_t *db, const char *source_id, char *err, size_t errlen)
{
    const char *p[1] = {source_id};
    PGresult *res = NULL;
    db_error_t dberr;
    db_status_t st = db_run1(db, &SECRETS, "select public.get_data_source_credentials($1)::text", 1,
                             p, &res, &dberr);
    json_t *out = NULL;
    if (st != DB_OK) {
        snprintf(err, errlen, "cannot read the source's credentials: %s",
                 st == DB_UNAVAILABLE ? "the database is unavailable" : dberr.message);
    } else if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        out = json_object();
    } else {
        out = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
        if (!json_is_object(out)) {
            json_decref(out);
            out = NULL;
            snprintf(err, errlen, "the source's credentials are not readable");
        }
    }
    PQclear(res);
    return out;
}

bool conn_last_sync_value(db_conn_t *db, const char *source_id, char **out, char *err,
                          size_t errlen)
{
    const char *p[1] = {source_id};
    PGresult *res = NULL;
    db_error_t dberr;
    *out = NULL;
    db_status_t st =
        db_run1(db, &SECRETS, "select last_sync_value from public.data_sources where id = $1", 1, p,
                &res, &dberr);
    bool ok = st == DB_OK;
    if (!ok)
        snprintf(err, errlen, "cannot read the source's last_sync_value: %s",
                 st == DB_UNAVAILABLE ? "the database is unavailable" : dberr.message);
    else if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        ok = (*out = strdup(PQgetvalue(res, 0, 0))) != NULL;
    PQclear(res);
    return ok;
}

bool conn_same_origin(const char *a, const char *b)
{
    CURLU *ua = curl_url(), *ub = curl_url();
    bool same = ua && ub && curl_url_set(ua, CURLUPART_URL, a, 0) == CURLUE_OK &&
                curl_url_set(ub, CURLUPART_URL, b, 0) == CURLUE_OK;
    CURLUPart parts[] = {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT};
    for (size_t i = 0; same && i < CD_ARRAY_LEN(parts); i++) {
        char *x = NULL, *y = NULL;
        CURLUcode rx = curl_url_get(ua, parts[i], &x, CURLU_DEFAULT_PORT);
        CURLUcode ry = curl_url_get(ub, parts[i], &y, CURLU_DEFAULT_PORT);
        same = rx == CURLUE_OK && ry == CURLUE_OK && strcasecmp(x, y) == 0;
        curl_free(x);
        curl_free(y);
    }
    curl_url_cleanup(ua);
    curl_url_cleanup(ub);
    return same;
}
