/*
 * The rest_api connector: a JSON (or NDJSON) HTTP API read page by page into
 * the file pipeline.
 *
 * Each page's records (config.records_path, e.g. "data.items") are flattened
 * (conn_flatten_record: nested objects become "a.b" columns) and appended to
 * a spool of JSON lines while the set of their keys is collected; at the end
 * the spool is rewritten as a CSV file whose header is that set (the
 * column_config's source names first), and sync.c reads it as it reads an
 * uploaded CSV: one page is in memory at a time, never the whole source.
 *
 * Pagination (config.pagination.type): page (page_param, start_page,
 * page_size_param, page_size), offset (offset_param, limit_param, limit),
 * cursor (cursor_path in the answer, cursor_param in the next request) or
 * link (RFC 8288 Link: <…>; rel="next", relative links resolved). Incremental
 * syncs (schedule_config.incremental_strategy "incremental" with
 * incremental_column) send data_sources.last_sync_value in the query
 * parameter config.incremental_param and compute the new value as the
 * largest incremental_column seen; sync.c stores it in the transaction that
 * commits the rows.
 */
#include <curl/curl.h>
#include <openssl/evp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "importer/connectors.h"

#define REST_MAX_KEYS   1024
#define REST_HEADER_MAX 32

typedef enum { PAGE_NONE, PAGE_PAGE, PAGE_OFFSET, PAGE_CURSOR, PAGE_LINK } page_type_t;

typedef struct rest {
    conn_client_t client;
    const app_t *app;
    const json_t *cfg;
    const char *method;
    const char *records_path;
    char *body;
    int format; /* 0 auto (Content-Type), 1 json, 2 ndjson */
    /* pagination */
    page_type_t ptype;
    const char *page_param, *size_param, *cursor_param, *cursor_path;
    long long page, size, offset, max_pages;
    char cursor[1024];
    char next_url[CONN_URL_MAX];
    /* incremental */
    const char *inc_param, *inc_field;
    char *since;
    char *max_value;
    /* headers */
    char *headers[REST_HEADER_MAX + 1];
    size_t nheaders;
    /* spool */
    FILE *spool;
    char spool_path[1200];
    json_t *keys; /* key → true, in first-seen order */
    long long records, page_records;
    uint64_t spooled;
    bool stop_error; /* advance() refused the next page: fail the sync */
} rest_t;

static bool add_header(rest_t *r, const char *name, const char *value)
{
    static const char token[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (!*name || strspn(name, token) != strlen(name) || strpbrk(value, "\r\n") ||
        r->nheaders >= REST_HEADER_MAX)
        return false;
    size_t n = strlen(name) + strlen(value) + 3;
    char *h = malloc(n);
    if (!h)
        return false;
    snprintf(h, n, "%s: %s", name, value);
    r->headers[r->nheaders++] = h;
    r->headers[r->nheaders] = NULL;
    return true;
}

/* config.headers, and the auth header from the credentials: token (or
 * api_key / access_token) → "<auth_header>: <auth_scheme> <token>"
 * (Authorization: Bearer by default), or username + password → Basic. */
static bool rest_headers(rest_t *r, const json_t *creds)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)json_object_get(r->cfg, "headers"), k, v)
    {
        if (!json_is_string(v) || !add_header(r, k, json_string_value(v))) {
            conn_fail(&r->client, false,
                      "config.headers.%.60s must be a string without line breaks, its name "
                      "letters, digits and '-' (at most %d headers)",
                      k, REST_HEADER_MAX);
            return false;
        }
    }
    const char *token = json_string_value(json_object_get(creds, "token"));
    if (!token)
        token = json_string_value(json_object_get(creds, "api_key"));
    if (!token)
        token = json_string_value(json_object_get(creds, "access_token"));
    const char *hname = json_string_value(json_object_get(r->cfg, "auth_header"));
    const char *scheme = json_string_value(json_object_get(r->cfg, "auth_scheme"));
    if (!hname)
        hname = "Authorization";
    if (!scheme)
        scheme = strcasecmp(hname, "Authorization") == 0 ? "Bearer" : "";
    const char *user = json_string_value(json_object_get(creds, "username"));
    const char *pass = json_string_value(json_object_get(creds, "password"));
    char value[4096];
    if (token) {
        snprintf(value, sizeof(value), "%s%s%s", scheme, *scheme ? " " : "", token);
    } else if (user && pass) {
        char raw[1024];
        unsigned char b64[1400];
        int n = snprintf(raw, sizeof(raw), "%s:%s", user, pass);
        if (n < 0 || (size_t)n >= sizeof(raw)) {
            conn_fail(&r->client, false, "the credentials are too long");
            return false;
        }
        EVP_EncodeBlock(b64, (const unsigned char *)raw, n);
        snprintf(value, sizeof(value), "Basic %s", (const char *)b64);
        hname = "Authorization";
    } else {
        return true;
    }
    if (!add_header(r, hname, value)) {
        conn_fail(&r->client, false,
                  "config.auth_header or the credentials contain a line break; fix them and %s",
                  CONN_RECONNECT);
        return false;
    }
    return true;
}

static long long cfg_int(const json_t *o, const char *key, long long def)
{
    const json_t *v = json_object_get(o, key);
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_string(v)) {
        char *end;
        long long x = strtoll(json_string_value(v), &end, 10);
        if (*end == '\0' && end != json_string_value(v))
            return x;
    }
    return def;
}

static const char *cfg_str(const json_t *o, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && *s ? s : def;
}

static bool parse_pagination(rest_t *r)
{
    const json_t *p = json_object_get(r->cfg, "pagination");
    const char *type = cfg_str(p, "type", "none");
    r->max_pages = cfg_int(p, "max_pages", CONN_MAX_PAGES);
    if (r->max_pages < 1 || r->max_pages > CONN_MAX_PAGES)
        r->max_pages = CONN_MAX_PAGES;
    if (strcmp(type, "none") == 0) {
        r->ptype = PAGE_NONE;
    } else if (strcmp(type, "page") == 0) {
        r->ptype = PAGE_PAGE;
        r->page_param = cfg_str(p, "page_param", "page");
        r->page = cfg_int(p, "start_page", 1);
        r->size_param = cfg_str(p, "page_size_param", NULL);
        r->size = cfg_int(p, "page_size", 0);
    } else if (strcmp(type, "offset") == 0) {
        r->ptype = PAGE_OFFSET;
        r->page_param = cfg_str(p, "offset_param", "offset");
        r->size_param = cfg_str(p, "limit_param", "limit");
        r->size = cfg_int(p, "limit", 100);
        if (r->size < 1) {
            conn_fail(&r->client, false, "config.pagination.limit must be at least 1");
            return false;
        }
    } else if (strcmp(type, "cursor") == 0) {
        r->ptype = PAGE_CURSOR;
        r->cursor_param = cfg_str(p, "cursor_param", "cursor");
        r->cursor_path = cfg_str(p, "cursor_path", NULL);
        if (!r->cursor_path) {
            conn_fail(&r->client, false,
                      "config.pagination.cursor_path must say where the next cursor is in the "
                      "answer (e.g. \"meta.next_cursor\")");
            return false;
        }
    } else if (strcmp(type, "link") == 0) {
        r->ptype = PAGE_LINK;
    } else {
        conn_fail(&r->client, false,
                  "config.pagination.type must be page, offset, cursor or link (or none)");
        return false;
    }
    return true;
}

/* The last_sync_value of an incremental source, and what to compare. */
static bool parse_incremental(rest_t *r, db_conn_t *db, const import_source_t *src)
{
    const json_t *sc = src->schedule_config;
    const char *strategy = cfg_str(sc, "incremental_strategy", "full");
    if (strcmp(strategy, "incremental") != 0 && strcmp(strategy, "append") != 0)
        return true;
    r->inc_field = cfg_str(sc, "incremental_column", NULL);
    r->inc_param = cfg_str(r->cfg, "incremental_param", NULL);
    if (!r->inc_field || !r->inc_param)
        return true; /* an upsert of everything the API answers */
    if (!conn_last_sync_value(db, src->id, &r->since, r->client.err, r->client.errlen)) {
        r->client.retryable = true;
        return false;
    }
    return true;
}

static bool parse_config(rest_t *r, const import_source_t *src)
{
    const char *url = cfg_str(r->cfg, "url", NULL);
    if (!url || strlen(url) >= CONN_URL_MAX ||
        (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)) {
        conn_fail(&r->client, false, "config.url must be the API's http:// or https:// URL");
        return false;
    }
    snprintf(r->next_url, sizeof(r->next_url), "%s", url);
    r->method = cfg_str(r->cfg, "method", "GET");
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "POST") != 0) {
        conn_fail(&r->client, false, "config.method must be GET or POST");
        return false;
    }
    const json_t *body = json_object_get(r->cfg, "body");
    if (body && strcmp(r->method, "POST") == 0)
        r->body =
            json_is_string(body) ? strdup(json_string_value(body)) : json_dumps(body, JSON_COMPACT);
    r->records_path = cfg_str(r->cfg, "records_path", NULL);
    const char *fmt = cfg_str(r->cfg, "format", "auto");
    r->format = strcmp(fmt, "json") == 0 ? 1 : strcmp(fmt, "ndjson") == 0 ? 2 : 0;
    /* column_config's source names come first in the header */
    r->keys = json_object();
    const json_t *cc = src->column_config;
    const json_t *cols = json_is_object(cc) ? json_object_get(cc, "columns") : NULL;
    size_t i;
    json_t *c;
    json_array_foreach(cols, i, c)
    {
        const char *s = json_string_value(json_object_get(c, "source_name"));
        if (s && r->keys)
            json_object_set_new(r->keys, s, json_true());
    }
    return r->keys && parse_pagination(r);
}

static bool make_spool(rest_t *r, char *path, size_t pathlen, FILE **f)
{
    char dir[1024];
    int n = snprintf(dir, sizeof(dir), "%s/tmp", r->app->cfg.data_dir);
    if (n < 0 || (size_t)n >= sizeof(dir) || (mkdir(dir, 0700) != 0 && errno != EEXIST))
        return false;
    n = snprintf(path, pathlen, "%s/api-XXXXXX", dir);
    if (n < 0 || (size_t)n >= pathlen)
        return false;
    int fd = mkstemp(path);
    if (fd < 0)
        return false;
    *f = fdopen(fd, "w+");
    if (!*f) {
        close(fd);
        unlink(path);
        return false;
    }
    return true;
}

/* Compares incremental values: as numbers when both are, else as text
 * (ISO 8601 timestamps in one format compare as text). */
int conn_value_cmp(const char *a, const char *b)
{
    char *ea, *eb;
    double x = strtod(a, &ea), y = strtod(b, &eb);
    if (*a && *b && *ea == '\0' && *eb == '\0')
        return x < y ? -1 : x > y ? 1 : 0;
    return strcmp(a, b);
}

static int spool_record(json_t *rec, void *arg)
{
    rest_t *r = arg;
    json_t *flat = conn_flatten_record(rec);
    if (!flat) {
        conn_fail(&r->client, false, "out of memory");
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(flat, k, v)
    {
        if (!json_object_get(r->keys, k)) {
            if (json_object_size(r->keys) >= REST_MAX_KEYS) {
                json_decref(flat);
                conn_fail(&r->client, false, "the records have more than %d different fields",
                          REST_MAX_KEYS);
                return -1;
            }
            json_object_set_new(r->keys, k, json_true());
        }
    }
    const char *iv = r->inc_field ? json_string_value(json_object_get(flat, r->inc_field)) : NULL;
    if (iv && *iv && (!r->max_value || conn_value_cmp(iv, r->max_value) > 0)) {
        free(r->max_value);
        r->max_value = strdup(iv);
    }
    char *line = json_dumps(flat, JSON_COMPACT);
    json_decref(flat);
    size_t n = line ? strlen(line) : 0;
    r->spooled += n + 1;
    bool ok = line && r->spooled <= (uint64_t)r->app->cfg.import_max_bytes &&
              fwrite(line, 1, n, r->spool) == n && fputc('\n', r->spool) != EOF;
    free(line);
    if (!ok) {
        conn_fail(&r->client, false,
                  "the API's records are larger than the import limit of %ld bytes",
                  r->app->cfg.import_max_bytes);
        return -1;
    }
    r->records++;
    r->page_records++;
    return 0;
}

/* Spools the records of one answer; *root_out gets the parsed JSON answer
 * (NULL for NDJSON) for the cursor. */
static bool spool_answer(rest_t *r, const conn_resp_t *resp, bool first, json_t **root_out)
{
    *root_out = NULL;
    r->page_records = 0;
    bool ndjson = r->format == 2 || (r->format == 0 && (strstr(resp->content_type, "ndjson") ||
                                                        strstr(resp->content_type, "jsonl") ||
                                                        strstr(resp->content_type, "json-seq")));
    const char *data = resp->body.data ? resp->body.data : "";
    if (ndjson)
        return conn_ndjson_each(data, resp->body.len, spool_record, r, r->client.err,
                                r->client.errlen) == 0;
    json_error_t jerr;
    json_t *root = json_loadb(data, resp->body.len, JSON_DECODE_ANY, &jerr);
    if (!root) {
        conn_fail(&r->client, false,
                  "the API's answer is not JSON (%.100s); set config.format to \"ndjson\" for "
                  "newline-delimited JSON",
                  jerr.text);
        return false;
    }
    *root_out = root;
    const json_t *recs = conn_json_path(root, r->records_path);
    if (!recs || json_is_null(recs)) {
        if (first && r->records_path) {
            conn_fail(&r->client, false,
                      "config.records_path \"%.80s\" is not in the API's answer: name the "
                      "path of the records' array, e.g. \"data.items\"",
                      r->records_path);
            return false;
        }
        return true;
    }
    if (!json_is_array(recs))
        return spool_record((json_t *)recs, r) == 0;
    size_t i;
    json_t *rec;
    json_array_foreach(recs, i, rec)
    {
        if (spool_record(rec, r) != 0)
            return false;
    }
    return true;
}

/* The URL of the next request: the base URL with the page, size, cursor
 * and incremental parameters (link pagination: the link itself). */
static bool build_url(rest_t *r, char **out)
{
    CURLU *u = curl_url();
    if (!u || curl_url_set(u, CURLUPART_URL, r->next_url, 0) != CURLUE_OK) {
        curl_url_cleanup(u);
        conn_fail(&r->client, false, "config.url is not a valid URL");
        return false;
    }
    char q[1400];
    bool ok = true;
#define ADDQ(name, fmt, val)                                                                       \
    do {                                                                                           \
        snprintf(q, sizeof(q), "%s=" fmt, name, val);                                              \
        ok = ok && curl_url_set(u, CURLUPART_QUERY, q, CURLU_APPENDQUERY | CURLU_URLENCODE) ==     \
                       CURLUE_OK;                                                                  \
    } while (0)
    if (r->ptype == PAGE_PAGE || r->ptype == PAGE_OFFSET)
        ADDQ(r->page_param, "%lld", r->ptype == PAGE_PAGE ? r->page : r->offset);
    if ((r->ptype == PAGE_PAGE || r->ptype == PAGE_OFFSET) && r->size_param && r->size > 0)
        ADDQ(r->size_param, "%lld", r->size);
    if (r->ptype == PAGE_CURSOR && r->cursor[0])
        ADDQ(r->cursor_param, "%s", r->cursor);
    if (r->since && r->inc_param && (r->ptype != PAGE_LINK || r->client.requests == 0))
        ADDQ(r->inc_param, "%s", r->since);
#undef ADDQ
    ok = ok && curl_url_get(u, CURLUPART_URL, out, 0) == CURLUE_OK;
    curl_url_cleanup(u);
    if (!ok)
        conn_fail(&r->client, false, "cannot build the API's URL from config.url");
    return ok;
}

/* Decides the next page from this answer; false when the last one was read. */
static bool advance(rest_t *r, const conn_resp_t *resp, const json_t *root)
{
    switch (r->ptype) {
    case PAGE_PAGE:
        if (r->page_records == 0 || (r->size > 0 && r->page_records < r->size))
            return false;
        r->page++;
        return true;
    case PAGE_OFFSET:
        if (r->page_records == 0 || r->page_records < r->size)
            return false;
        r->offset += r->page_records;
        return true;
    case PAGE_CURSOR: {
        char *c = conn_scalar_text(conn_json_path(root, r->cursor_path));
        bool more = c && *c && strlen(c) < sizeof(r->cursor) && strcmp(c, r->cursor) != 0 &&
                    r->page_records > 0;
        if (more)
            snprintf(r->cursor, sizeof(r->cursor), "%s", c);
        free(c);
        return more;
    }
    case PAGE_LINK: {
        char next[CONN_URL_MAX];
        if (!conn_link_next(resp->link.data, next, sizeof(next)))
            return false;
        CURLU *u = curl_url();
        char *abs = NULL;
        bool ok = u && curl_url_set(u, CURLUPART_URL, r->next_url, 0) == CURLUE_OK &&
                  curl_url_set(u, CURLUPART_URL, next, 0) == CURLUE_OK &&
                  curl_url_get(u, CURLUPART_URL, &abs, 0) == CURLUE_OK &&
                  strlen(abs) < sizeof(r->next_url);
        if (ok && !conn_same_origin(abs, r->next_url)) {
            conn_fail(&r->client, false,
                      "the API's next page (Link rel=\"next\") is on another host than "
                      "config.url; it is not followed, so that the credentials stay with the API");
            r->stop_error = true;
            ok = false;
        }
        if (ok)
            snprintf(r->next_url, sizeof(r->next_url), "%s", abs);
        curl_free(abs);
        curl_url_cleanup(u);
        return ok;
    }
    case PAGE_NONE:
    default:
        return false;
    }
}

static bool read_pages(rest_t *r, bool head_only)
{
    for (long long n = 0;; n++) {
        if (n >= r->max_pages) {
            log_warn("import: rest_api stopped after %lld pages (config.pagination.max_pages)", n);
            return true;
        }
        char *url = NULL;
        if (!build_url(r, &url))
            return false;
        conn_resp_t resp;
        bool ok = conn_http(&r->client, r->method, url, (const char *const *)r->headers, r->body,
                            "application/json", &resp);
        curl_free(url);
        if (!ok)
            return false;
        if (resp.status < 200 || resp.status >= 300) {
            conn_http_error(&r->client, &resp, "the API");
            conn_resp_free(&resp);
            return false;
        }
        json_t *root = NULL;
        ok = spool_answer(r, &resp, n == 0, &root);
        bool more = ok && !head_only && advance(r, &resp, root);
        json_decref(root);
        conn_resp_free(&resp);
        if (!ok || r->stop_error)
            return false;
        if (!more)
            return true;
    }
}

static bool csv_field(FILE *f, const char *s)
{
    if (fputc('"', f) == EOF)
        return false;
    for (const char *p = s; *p; p++) {
        if (*p == '"' && fputc('"', f) == EOF)
            return false;
        if (fputc(*p, f) == EOF)
            return false;
    }
    return fputc('"', f) != EOF;
}

/* Rewrites the spool as the CSV file at in->path. */
static bool write_csv(rest_t *r, import_input_t *in)
{
    if (json_object_size(r->keys) == 0) {
        conn_fail(&r->client, false,
                  "the API answered no records, so there are no columns: name the columns in "
                  "column_config (their source_name) to sync an empty answer");
        return false;
    }
    FILE *out = NULL;
    if (!make_spool(r, in->path, sizeof(in->path), &out)) {
        conn_fail(&r->client, true, "cannot create a temporary file for the API's records");
        return false;
    }
    in->temp = true;
    bool ok = fflush(r->spool) == 0 && fseek(r->spool, 0, SEEK_SET) == 0;
    const char *k;
    json_t *v;
    size_t i = 0;
    json_object_foreach(r->keys, k, v)
    {
        ok = ok && (i++ == 0 || fputc(',', out) != EOF) && csv_field(out, k);
    }
    ok = ok && fputs("\r\n", out) != EOF;
    char *line = NULL;
    size_t cap = 0;
    while (ok && getline(&line, &cap, r->spool) > 0) {
        json_t *rec = json_loads(line, 0, NULL);
        ok = rec != NULL;
        i = 0;
        json_object_foreach(r->keys, k, v)
        {
            const char *s = json_string_value(json_object_get(rec, k));
            ok = ok && (i++ == 0 || fputc(',', out) != EOF) && csv_field(out, s ? s : "");
        }
        ok = ok && fputs("\r\n", out) != EOF;
        json_decref(rec);
    }
    free(line);
    struct stat stt;
    if (fflush(out) != 0 || fstat(fileno(out), &stt) != 0)
        ok = false;
    else
        in->size = (uint64_t)stt.st_size;
    if (fclose(out) != 0)
        ok = false;
    if (!ok)
        conn_fail(&r->client, true, "cannot write the API's records to a temporary file");
    return ok;
}

static void rest_free(rest_t *r)
{
    if (r->spool)
        fclose(r->spool);
    if (r->spool_path[0])
        unlink(r->spool_path);
    for (size_t i = 0; i < r->nheaders; i++)
        free(r->headers[i]);
    free(r->body);
    free(r->since);
    free(r->max_value);
    json_decref(r->keys);
}

bool conn_rest_open(const app_t *app, db_conn_t *db, const import_source_t *src, bool head_only,
                    import_cancel_fn cancel, void *cancel_arg, import_input_t *in, char *err,
                    size_t errlen)
{
    rest_t *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        in->retryable = true;
        return false;
    }
    *err = '\0';
    r->client = (conn_client_t){
        .app = app, .cancel = cancel, .cancel_arg = cancel_arg, .err = err, .errlen = errlen};
    r->app = app;
    r->cfg = src->config;
    json_t *creds = NULL;
    bool ok = parse_config(r, src) && (head_only || parse_incremental(r, db, src)) &&
              (creds = conn_credentials(db, src->id, err, errlen)) != NULL &&
              rest_headers(r, creds);
    json_decref(creds);
    if (ok && !make_spool(r, r->spool_path, sizeof(r->spool_path), &r->spool)) {
        conn_fail(&r->client, true, "cannot create a temporary file for the API's records");
        ok = false;
    }
    ok = ok && read_pages(r, head_only) && write_csv(r, in);
    if (ok) {
        in->spooled_csv = true;
        in->sync_value = r->max_value; /* NULL: no record carried the column */
        r->max_value = NULL;
        log_info("import: rest_api source %s: %lld records in %lld requests", src->id, r->records,
                 r->client.requests);
    } else {
        if (!*err)
            snprintf(err, errlen, "cannot read the API");
        in->retryable = r->client.retryable;
        import__input_close(in);
    }
    rest_free(r);
    free(r);
    return ok;
}
