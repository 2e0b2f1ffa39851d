/*
 * The HTTP server: libmicrohttpd with a thread pool on epoll. This file turns
 * MHD's callbacks into one http_request_t per request, enforces the request
 * limits (head size and count, body size, framing, slow clients), answers CORS
 * preflights, routes to handlers, adds the common response headers and writes
 * one access-log line per request.
 */
#include "http/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/text.h"

struct http_server {
    struct MHD_Daemon *daemon;
    http_server_opts_t opts;
    const http_route_t *routes;
    size_t nroutes;
    const http_stream_route_t *stream_routes;
    size_t nstream_routes;
    void *ctx;
    atomic_int in_flight;
    int port;
};

/* What every browser client needs to read from our responses (wire reference 0.4). */
static const char CORS_EXPOSE[] =
    "Content-Range, Content-Location, Location, Range-Unit, Preference-Applied, X-Total-Count, "
    "Link, X-Supabase-Api-Version, Content-Type, Content-Length, ETag, Content-Disposition, "
    "Last-Modified, Cache-Control, X-Request-Id, Retry-After";
static const char CORS_ALLOW_HEADERS[] =
    "apikey, authorization, x-client-info, content-type, accept, accept-profile, "
    "content-profile, prefer, range, range-unit, x-supabase-api-version, x-upsert, "
    "cache-control, x-metadata, x-retry-count, x-request-id";
static const char CORS_METHODS[] = "GET, POST, PUT, PATCH, DELETE, OPTIONS, HEAD";

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---------------------------------------------------------------- helpers */

bool http_url_decode(char *s, bool form)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r == '%') {
            int hi = cd_hex_value((unsigned char)r[1]);
            int lo = hi < 0 ? -1 : cd_hex_value((unsigned char)r[2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return false;
            *w++ = (char)(hi * 16 + lo);
            r += 2;
        } else if (form && *r == '+') {
            *w++ = ' ';
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return true;
}

bool http_route_match(const char *pattern, const char *path, const char **params, size_t *nparams,
                      char *scratch, size_t scratch_len)
{
    size_t np = 0, used = 0;
    const char *p = pattern, *s = path;
    while (*p) {
        if (*p == '*' && p[1] == '\0') {
            size_t n = strlen(s);
            if (np >= HTTP_MAX_ROUTE_PARAMS || used + n + 1 > scratch_len)
                return false;
            memcpy(scratch + used, s, n + 1);
            params[np++] = scratch + used;
            used += n + 1;
            *nparams = np;
            return true;
        }
        if (*p == ':') {
            const char *pe = strchr(p, '/');
            if (!pe)
                pe = p + strlen(p);
            const char *se = strchr(s, '/');
            if (!se)
                se = s + strlen(s);
            size_t n = (size_t)(se - s);
            if (n == 0 || np >= HTTP_MAX_ROUTE_PARAMS || used + n + 1 > scratch_len)
                return false;
            memcpy(scratch + used, s, n);
            scratch[used + n] = '\0';
            params[np++] = scratch + used;
            used += n + 1;
            p = pe;
            s = se;
            continue;
        }
        if (*p != *s)
            return false;
        p++;
        s++;
    }
    if (*s != '\0')
        return false;
    *nparams = np;
    return true;
}

bool http_cors_origin_allowed(const char *list, const char *origin)
{
    if (!origin || !*origin)
        return false;
    if (strcmp(list, "*") == 0)
        return true;
    size_t olen = strlen(origin);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && t[-1] == ' ')
            t--;
        if ((size_t)(t - p) == olen && strncmp(p, origin, olen) == 0)
            return true;
        p = e;
    }
    return false;
}

/* Is addr listed in the comma-separated proxies list? */
static bool address_listed(const char *list, const char *addr)
{
    return *list && strcmp(list, "*") != 0 && http_cors_origin_allowed(list, addr);
}

const char *http_header(const http_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_cookie(const http_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, name);
}

struct each_ctx {
    void (*fn)(void *, const char *, const char *);
    void *arg;
};

static enum MHD_Result each_header_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    struct each_ctx *c = cls;
    c->fn(c->arg, key, value ? value : "");
    return MHD_YES;
}

void http_each_header(const http_request_t *req,
                      void (*fn)(void *arg, const char *name, const char *value), void *arg)
{
    struct each_ctx c = {fn, arg};
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, each_header_cb, &c);
}

const char *http_query_arg(const http_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

bool http_add_header(http_request_t *req, const char *name, const char *value)
{
    if (req->nresp_headers >= HTTP_MAX_RESPONSE_HEADERS)
        return false;
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return false;
    }
    req->resp_headers[req->nresp_headers].name = n;
    req->resp_headers[req->nresp_headers].value = v;
    req->nresp_headers++;
    return true;
}

bool http_add_common_headers(http_request_t *req, unsigned which)
{
    static const struct {
        unsigned bit;
        const char *name, *value;
    } common[] = {
        {HTTP_HDR_NOSNIFF, "X-Content-Type-Options", "nosniff"},
        {HTTP_HDR_NO_STORE, "Cache-Control", "no-store, max-age=0"},
        {HTTP_HDR_NO_REFERRER, "Referrer-Policy", "no-referrer"},
        {HTTP_HDR_NO_INDEX, "X-Robots-Tag", "noindex"},
        {HTTP_HDR_COOP_SAME, "Cross-Origin-Opener-Policy", "same-origin"},
    };
    bool ok = true;
    for (size_t i = 0; i < CD_ARRAY_LEN(common); i++)
        if (which & common[i].bit)
            ok = http_add_header(req, common[i].name, common[i].value) && ok;
    return ok;
}

void http_reply_take(http_request_t *req, int status, const char *content_type, char *body,
                     size_t len)
{
    if (req->resp_fd >= 0) {
        close(req->resp_fd);
        req->resp_fd = -1;
    }
    free(req->resp_body);
    free(req->resp_type);
    req->status = status;
    req->resp_body = body;
    req->resp_len = body ? len : 0;
    req->resp_type = strdup(content_type ? content_type : "application/json; charset=utf-8");
    req->replied = true;
}

void http_reply_fd(http_request_t *req, int status, const char *content_type, int fd,
                   uint64_t offset, uint64_t size)
{
    http_reply_take(req, status, content_type, NULL, 0);
    if (req->resp_fd >= 0)
        close(req->resp_fd);
    req->resp_fd = fd;
    req->resp_fd_offset = offset;
    req->resp_len = (size_t)size;
}

void http_reply(http_request_t *req, int status, const char *content_type, const char *body,
                size_t len)
{
    char *copy = NULL;
    if (body && len) {
        copy = malloc(len);
        if (copy)
            memcpy(copy, body, len);
        else
            len = 0;
    }
    http_reply_take(req, status, content_type, copy, copy ? len : 0);
}

void http_reply_json(http_request_t *req, int status, json_t *json)
{
    if (!json) {
        http_reply_take(req, status, NULL, NULL, 0);
        return;
    }
    char *s = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(json);
    if (!s) {
        http_reply_error(req, 500, "internal_error", "could not encode the response", NULL);
        return;
    }
    http_reply_take(req, status, NULL, s, strlen(s));
}

void http_reply_error(http_request_t *req, int status, const char *code, const char *message,
                      const char *hint)
{
    json_t *j = json_pack("{s:s, s:s, s:n, s:s?}", "code", code, "message", message, "details",
                          "hint", hint);
    if (!hint && j)
        json_object_set_new(j, "hint", json_null());
    http_reply_json(req, status, j);
}

void http_reply_upgrade(http_request_t *req, http_upgrade_fn fn, void *cls)
{
    http_reply_take(req, 101, "text/plain", NULL, 0);
    req->upgrade_fn = fn;
    req->upgrade_cls = cls;
}

void http_upgrade_close(struct MHD_UpgradeResponseHandle *urh)
{
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

void http_reply_unavailable(http_request_t *req, int retry_after_s)
{
    char v[16];
    snprintf(v, sizeof(v), "%d", retry_after_s);
    http_add_header(req, "Retry-After", v);
    http_reply_error(req, 503, "database_unavailable",
                     "The database cannot be reached right now; try again shortly.",
                     "campaignd reconnects by itself; see the server log for the cause.");
}

/* ------------------------------------------------------------ MHD glue */

/* Request ids. An id only has to be unique: it correlates the X-Request-Id
 * header with the access log, and a client may choose its own (access_cb),
 * so nothing relies on it being unpredictable. RAND_bytes per request was ~7 %
 * of the server's CPU on the list bench (OpenSSL 3's DRBG: a getpid(2), a
 * lock and AES-CTR for 16 bytes), so the randomness is drawn once per process:
 * an id is a random 64-bit process prefix and a 64-bit sequence number from
 * one atomic counter, scrambled by a keyed bijection (splitmix64's finaliser:
 * xor-shifts and odd multiplications are invertible), so no two requests of a
 * process share an id, and another run of the server starts elsewhere. */
static uint64_t rid_prefix, rid_key;
static atomic_uint_fast64_t rid_counter;
static pthread_once_t rid_once = PTHREAD_ONCE_INIT;

static void rid_init(void)
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        /* no randomness: ids stay unique within the process (the counter);
         * the clock and the pid keep runs apart */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t t = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        memcpy(raw, &t, 8);
        t ^= (uint64_t)getpid() << 32;
        memcpy(raw + 8, &t, 8);
    }
    memcpy(&rid_prefix, raw, 8);
    memcpy(&rid_key, raw + 8, 8);
}

/* A bijection of the 64-bit integers (each step is invertible). */
static uint64_t rid_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    x ^= x >> 31;
    return x;
}

void http_make_request_id(char out[HTTP_REQUEST_ID_LEN + 1])
{
    pthread_once(&rid_once, rid_init);
    uint64_t n = atomic_fetch_add_explicit(&rid_counter, 1, memory_order_relaxed);
    uint64_t v[2] = {rid_prefix, rid_mix(n + rid_key)};
    unsigned char raw[HTTP_REQUEST_ID_LEN / 2];
    for (size_t i = 0; i < 8; i++) {
        raw[i] = (unsigned char)(v[0] >> (56 - 8 * i));
        raw[8 + i] = (unsigned char)(v[1] >> (56 - 8 * i));
    }
    cd_hex_encode(raw, sizeof(raw), out);
}

static void *uri_log_cb(void *cls, const char *uri, struct MHD_Connection *con)
{
    struct http_server *s = cls;
    (void)con; /* MHD_Connection is passed to the access handler again */
    http_request_t *req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->ctx = s->ctx;
    req->start_us = now_us();
    req->raw_uri = strdup(uri ? uri : "");
    const char *q = req->raw_uri ? strchr(req->raw_uri, '?') : NULL;
    req->raw_query = q ? q + 1 : "";
    cd_buf_init(&req->body, s->opts.max_body_bytes);
    req->resp_fd = -1;
    http_make_request_id(req->request_id);
    return req;
}

static void request_free(http_request_t *req)
{
    if (req->resp_fd >= 0)
        close(req->resp_fd);
    cd_buf_free(&req->body);
    free(req->raw_uri);
    free(req->stream_scratch);
    free(req->resp_body);
    free(req->resp_type);
    for (size_t i = 0; i < req->nresp_headers; i++) {
        free(req->resp_headers[i].name);
        free(req->resp_headers[i].value);
    }
    free(req);
}

static void completed_cb(void *cls, struct MHD_Connection *con, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)con;
    struct http_server *s = cls;
    http_request_t *req = *con_cls;
    if (!req)
        return;
    if (req->method) {
        double ms = (double)(now_us() - req->start_us) / 1000.0;
        log_info("%s %s %d %zu %.1fms ip=%s id=%s%s", req->method, req->path ? req->path : "?",
                 req->status, req->bytes_out, ms, req->client_ip, req->request_id,
                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
    }
    if (req->stream && !req->stream_ended && req->stream->cleanup)
        req->stream->cleanup(req);
    if (req->started)
        atomic_fetch_sub(&s->in_flight, 1);
    request_free(req);
    *con_cls = NULL;
}

static void resolve_client_ip(struct http_server *s, http_request_t *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(req->client_ip, sizeof(req->client_ip), "unknown");
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, req->client_ip,
                      sizeof(req->client_ip));
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, req->client_ip,
                      sizeof(req->client_ip));
    }
    /* Believe X-Forwarded-For only from a configured proxy, and then take the
     * right-most address the proxy added, never a client-supplied one. */
    if (!address_listed(s->opts.trusted_proxies, req->client_ip))
        return;
    const char *xff = http_header(req, "X-Forwarded-For");
    if (!xff)
        return;
    const char *last = strrchr(xff, ',');
    last = last ? last + 1 : xff;
    while (*last == ' ')
        last++;
    char tmp[64];
    size_t n = strcspn(last, " ");
    if (n == 0 || n >= sizeof(tmp))
        return;
    memcpy(tmp, last, n);
    tmp[n] = '\0';
    unsigned char bin[16];
    if (inet_pton(AF_INET, tmp, bin) == 1 || inet_pton(AF_INET6, tmp, bin) == 1)
        snprintf(req->client_ip, sizeof(req->client_ip), "%s", tmp);
}

/* MHD hands over the upgraded socket; the request struct is still alive here. */
static void upgrade_cb(void *cls, struct MHD_Connection *con, void *con_cls, const char *extra,
                       size_t extra_len, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    (void)con;
    (void)con_cls;
    http_request_t *req = cls;
    req->upgrade_fn(req->upgrade_cls, (int)sock, extra, extra_len, urh);
}

static void add_cors(struct http_server *s, http_request_t *req, struct MHD_Response *r)
{
    const char *origin = http_header(req, "Origin");
    if (!origin || !http_cors_origin_allowed(s->opts.cors_origins, origin))
        return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin",
                            strcmp(s->opts.cors_origins, "*") == 0 ? "*" : origin);
    MHD_add_response_header(r, "Vary", "Origin");
    MHD_add_response_header(r, "Access-Control-Expose-Headers", CORS_EXPOSE);
}

/* Whether the handler added a response header name (case-insensitive). */
static bool has_resp_header(const http_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->nresp_headers; i++)
        if (strcasecmp(req->resp_headers[i].name, name) == 0)
            return true;
    return false;
}

static enum MHD_Result send_response(struct http_server *s, http_request_t *req)
{
    if (!req->replied)
        http_reply_error(req, 500, "internal_error", "the handler produced no response", NULL);
    size_t len = req->head_only ? 0 : req->resp_len;
    struct MHD_Response *r;
    if (req->upgrade_fn) {
        r = MHD_create_response_for_upgrade(upgrade_cb, req);
        len = 0;
    } else if (req->resp_fd >= 0) {
        /* MHD sends the file (sendfile where it can) and closes the fd; for
         * HEAD it sends the headers only. */
        r = MHD_create_response_from_fd_at_offset64(req->resp_len, req->resp_fd,
                                                    req->resp_fd_offset);
        if (r)
            req->resp_fd = -1;
        len = req->head_only ? 0 : req->resp_len;
    } else if (req->head_only) {
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else {
        r = MHD_create_response_from_buffer(len, req->resp_body ? req->resp_body : (void *)"",
                                            req->resp_body ? MHD_RESPMEM_MUST_FREE
                                                           : MHD_RESPMEM_PERSISTENT);
        if (r)
            req->resp_body = NULL; /* MHD frees it now */
    }
    if (!r)
        return MHD_NO;
    if (req->resp_len || req->status != 204)
        MHD_add_response_header(r, "Content-Type", req->resp_type);
    MHD_add_response_header(r, "X-Request-Id", req->request_id);
    /* An API answer is data, never a page: browsers must not guess another type
     * from the bytes, and a document opened from the API's origin (a stored
     * object above all) runs in a sandbox without script or same-origin access.
     * A handler that serves a real page (the dashboard) sets its own policy. */
    if (!has_resp_header(req, "X-Content-Type-Options"))
        MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (!req->upgrade_fn && !has_resp_header(req, "Content-Security-Policy"))
        MHD_add_response_header(r, "Content-Security-Policy", "sandbox");
    for (size_t i = 0; i < req->nresp_headers; i++)
        MHD_add_response_header(r, req->resp_headers[i].name, req->resp_headers[i].value);
    add_cors(s, req, r);
    if (req->failed_early)
        MHD_add_response_header(r, "Connection", "close");
    req->bytes_out = len;
    enum MHD_Result ret = MHD_queue_response(req->conn, (unsigned)req->status, r);
    MHD_destroy_response(r);
    return ret;
}

struct framing_scan {
    size_t head_bytes;     /* header names and values, with ": " and CRLF */
    int content_length;    /* how many Content-Length headers */
    int transfer_encoding; /* how many Transfer-Encoding headers */
    bool bad_name;         /* a header name with white space or control characters */
};

static enum MHD_Result framing_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    (void)value;
    struct framing_scan *f = cls;
    f->head_bytes += strlen(key) + (value ? strlen(value) : 0) + 4;
    if (strcasecmp(key, "Content-Length") == 0)
        f->content_length++;
    else if (strcasecmp(key, "Transfer-Encoding") == 0)
        f->transfer_encoding++;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        if (*p <= ' ' || *p == 127)
            f->bad_name = true;
    return MHD_YES;
}

static size_t header_count(struct MHD_Connection *c)
{
    int n = MHD_get_connection_values(c, MHD_HEADER_KIND, NULL, NULL);
    return n < 0 ? 0 : (size_t)n;
}

/* Checks done once the head is in, before any body is read. Returns false
 * after queueing an error. A streaming route enforces its own body limit. */
/* Whether the path of a raw request target (before any '?') holds %00. */
static bool path_has_encoded_nul(const char *raw)
{
    for (const char *p = raw ? raw : ""; *p && *p != '?'; p++) {
        if (p[0] == '%' && p[1] == '0' && p[2] == '0')
            return true;
    }
    return false;
}

static bool check_head(struct http_server *s, http_request_t *req, bool streaming)
{
    if (header_count(req->conn) > s->opts.max_header_count) {
        http_reply_error(req, 431, "too_many_headers", "The request has too many headers.", NULL);
        return false;
    }
    /* RFC 9112 6.3 and 5.1: repeated framing headers and header names with
     * white space are how requests get smuggled past a proxy; refuse them. */
    struct framing_scan f = {0, 0, 0, false};
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, framing_cb, &f);
    /* The head limit is ours to answer (JSON, request id); MHD's own buffer
     * is twice as large and only catches heads far past the limit. */
    if (f.head_bytes + strlen(req->raw_uri ? req->raw_uri : "") > s->opts.max_header_bytes) {
        http_reply_error(req, 431, "headers_too_large", "The request head is too large.",
                         "The limit is MAX_HEADER_BYTES.");
        return false;
    }
    if (path_has_encoded_nul(req->raw_uri)) {
        /* MHD decodes the path into a C string, so "/a%00b" would reach the
         * routes as "/a": refuse it rather than route a shortened path. */
        http_reply_error(req, 400, "bad_path", "The path contains an encoded NUL byte (%00).",
                         NULL);
        return false;
    }
    if (f.bad_name || f.content_length > 1 || f.transfer_encoding > 1) {
        http_reply_error(req, 400, "bad_framing",
                         f.bad_name ? "A header name contains white space."
                                    : "Repeated Content-Length or Transfer-Encoding headers are "
                                      "not accepted.",
                         NULL);
        return false;
    }
    const char *te = http_header(req, "Transfer-Encoding");
    const char *cl = http_header(req, "Content-Length");
    if (te && cl) {
        /* RFC 9112 6.3: a message with both is a smuggling attempt or a broken
         * proxy; refuse it and close the connection. */
        http_reply_error(req, 400, "bad_framing",
                         "Content-Length and Transfer-Encoding together are not accepted.", NULL);
        return false;
    }
    if (te && strcasecmp(te, "chunked") != 0) {
        http_reply_error(req, 501, "bad_framing", "Only chunked Transfer-Encoding is supported.",
                         NULL);
        return false;
    }
    if (cl) {
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (*cl < '0' || *cl > '9' || *end) {
            http_reply_error(req, 400, "bad_framing", "Content-Length is not a number.", NULL);
            return false;
        }
        if (n > s->opts.max_body_bytes && !streaming) {
            http_reply_error(req, 413, "request_too_large",
                             "The request body is larger than this server accepts.",
                             "The limit is MAX_BODY_BYTES.");
            return false;
        }
    }
    return true;
}

static void route_request(struct http_server *s, http_request_t *req)
{
    bool path_matched = false;
    /* The captures live in scratch while the handler runs. One buffer for
     * all the routes tried, on the stack for any usual path: a malloc and a
     * free per route tried added up for the routes listed late (/rest/v1). */
    char local[1024];
    size_t sl = strlen(req->path) + 8;
    char *scratch = sl <= sizeof(local) ? local : malloc(sl);
    if (!scratch) {
        http_reply_error(req, 500, "internal_error", "out of memory", NULL);
        return;
    }
    for (size_t i = 0; i < s->nroutes; i++) {
        const http_route_t *rt = &s->routes[i];
        const char *params[HTTP_MAX_ROUTE_PARAMS];
        size_t np = 0;
        if (!http_route_match(rt->pattern, req->path, params, &np, scratch, sl))
            continue;
        path_matched = true;
        bool meth = strcmp(rt->method, "*") == 0 || strcmp(rt->method, req->method) == 0 ||
                    (strcmp(req->method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0);
        if (!meth)
            continue;
        req->route = rt;
        memcpy(req->params, params, sizeof(params));
        req->nparams = np;
        if (!rt->accepts_body && req->body.len > 0) {
            /* A body where none belongs (GET with a body) is ambiguous to
             * caches and proxies in front of us: refuse it rather than ignore it. */
            http_reply_error(req, 400, "unexpected_body", "This endpoint takes no request body.",
                             "Send the parameters in the query string.");
        } else {
            rt->handler(req);
        }
        if (scratch != local)
            free(scratch);
        return;
    }
    if (scratch != local)
        free(scratch);
    if (path_matched)
        http_reply_error(req, 405, "method_not_allowed", "This method is not allowed on this path.",
                         NULL);
    else
        http_reply_error(req, 404, "not_found", "No such endpoint.", NULL);
}

/* Whether a streaming route will take this request's body. */
static bool has_stream_route(struct http_server *s, http_request_t *req)
{
    for (size_t i = 0; i < s->nstream_routes; i++) {
        const http_stream_route_t *rt = &s->stream_routes[i];
        const char *params[HTTP_MAX_ROUTE_PARAMS];
        size_t np = 0;
        char scratch[2048];
        if (strcmp(rt->method, req->method) == 0 && strlen(req->path) + 8 <= sizeof(scratch) &&
            http_route_match(rt->pattern, req->path, params, &np, scratch, sizeof(scratch)))
            return rt->ops != NULL;
    }
    return false;
}

/* If a streaming route matches, starts it. Returns false after a reply that
 * ends the request (the stream's begin refused it). */
static bool match_stream_route(struct http_server *s, http_request_t *req)
{
    if (strcmp(req->method, "OPTIONS") == 0)
        return true;
    for (size_t i = 0; i < s->nstream_routes; i++) {
        const http_stream_route_t *rt = &s->stream_routes[i];
        if (strcmp(rt->method, req->method) != 0)
            continue;
        size_t sl = strlen(req->path) + 8;
        char *scratch = malloc(sl);
        const char *params[HTTP_MAX_ROUTE_PARAMS];
        size_t np = 0;
        if (!scratch)
            return true;
        bool m = http_route_match(rt->pattern, req->path, params, &np, scratch, sl);
        if (!m || !rt->ops) {
            free(scratch);
            if (!m)
                continue;
            return true; /* a buffered route listed ahead of a streaming one */
        }
        /* the captures must outlive this call: keep them in the request */
        req->stream_scratch = scratch;
        memcpy(req->params, params, sizeof(params));
        req->nparams = np;
        req->stream = rt->ops;
        if (!rt->ops->begin(req)) {
            if (!req->replied)
                http_reply_error(req, 400, "bad_request", "The upload was refused.", NULL);
            return false;
        }
        return true;
    }
    return true;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *con, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct http_server *s = cls;
    http_request_t *req = *con_cls;
    if (!req)
        return MHD_NO;
    if (!req->started) {
        req->started = true;
        req->conn = con;
        atomic_fetch_add(&s->in_flight, 1);
        req->method = method;
        req->path = url;
        req->head_only = strcmp(method, "HEAD") == 0;
        resolve_client_ip(s, req);
        const char *rid = http_header(req, "X-Request-Id");
        if (rid && strlen(rid) <= HTTP_REQUEST_ID_LEN && strlen(rid) >= 8 &&
            strspn(rid, "0123456789abcdefABCDEF-") == strlen(rid))
            snprintf(req->request_id, sizeof(req->request_id), "%s", rid);
        if (!check_head(s, req, has_stream_route(s, req))) {
            req->failed_early = true;
            return send_response(s, req);
        }
        if (!match_stream_route(s, req)) {
            req->failed_early = true;
            return send_response(s, req);
        }
        if (strcmp(method, "OPTIONS") == 0 && http_header(req, "Access-Control-Request-Method")) {
            const char *origin = http_header(req, "Origin");
            const char *want = http_header(req, "Access-Control-Request-Headers");
            http_reply(req, http_cors_origin_allowed(s->opts.cors_origins, origin) ? 204 : 403,
                       "text/plain", NULL, 0);
            if (req->status == 204) {
                http_add_header(req, "Access-Control-Allow-Methods", CORS_METHODS);
                http_add_header(req, "Access-Control-Allow-Headers",
                                want && strlen(want) < 2048 ? want : CORS_ALLOW_HEADERS);
                http_add_header(req, "Access-Control-Max-Age", "86400");
            }
            return MHD_YES; /* sent on the final call, after any body */
        }
        return MHD_YES;
    }
    if (req->stream) {
        if (*upload_data_size) {
            if (!req->replied && !req->stream->data(req, upload_data, *upload_data_size)) {
                req->failed_early = true;
                *upload_data_size = 0;
                return send_response(s, req);
            }
            *upload_data_size = 0;
            return MHD_YES;
        }
        if (!req->replied) {
            req->stream_ended = true;
            req->stream->end(req);
        }
        return send_response(s, req);
    }
    if (*upload_data_size) {
        /* A chunked body that outgrows the limit: MHD cannot answer while the
         * body is still arriving, so drop what follows (up to four times the
         * limit, then hang up) and answer 413 at the end. */
        if (!req->replied && !cd_buf_add(&req->body, upload_data, *upload_data_size)) {
            http_reply_error(req, 413, "request_too_large",
                             "The request body is larger than this server accepts.",
                             "The limit is MAX_BODY_BYTES.");
            req->failed_early = true;
            cd_buf_free(&req->body);
        }
        req->discarded += *upload_data_size;
        *upload_data_size = 0;
        if (req->replied && req->discarded / 4 > s->opts.max_body_bytes)
            return MHD_NO;
        return MHD_YES;
    }
    if (!req->replied)
        route_request(s, req);
    return send_response(s, req);
}

struct http_server *http_server_start(const http_server_opts_t *opts, const http_route_t *routes,
                                      size_t nroutes, const http_stream_route_t *stream_routes,
                                      size_t nstream_routes, void *ctx)
{
    struct http_server *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->opts = *opts;
    s->routes = routes;
    s->nroutes = nroutes;
    s->stream_routes = stream_routes;
    s->nstream_routes = nstream_routes;
    s->ctx = ctx;
    atomic_init(&s->in_flight, 0);

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    /* ALLOW_UPGRADE: Realtime takes over the socket after a 101 (WebSocket). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | MHD_ALLOW_UPGRADE;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, opts->bind, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)opts->port);
    } else if (inet_pton(AF_INET6, opts->bind, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)opts->port);
        flags |= MHD_USE_IPv6;
    } else {
        log_error("BIND=%s is not an IPv4 or IPv6 address", opts->bind);
        free(s);
        return NULL;
    }
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)opts->port, NULL, NULL, access_cb, s, MHD_OPTION_SOCK_ADDR, &ss,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)opts->threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)opts->max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)opts->max_header_bytes * 2 + 16384, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)opts->client_timeout, MHD_OPTION_URI_LOG_CALLBACK, uri_log_cb, s,
        MHD_OPTION_NOTIFY_COMPLETED, completed_cb, s, MHD_OPTION_STRICT_FOR_CLIENT, 1,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)opts->max_connections_per_ip, MHD_OPTION_END);
    if (!s->daemon) {
        log_error("cannot listen on %s:%d (is the port in use? set PORT or BIND)", opts->bind,
                  opts->port);
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : opts->port;
    return s;
}

int http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_stop(struct http_server *s, int timeout_s)
{
    if (!s)
        return;
    /* Stop accepting at once: new clients are refused rather than left hanging. */
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET) {
        close(fd);
        fd = MHD_INVALID_SOCKET;
    }
    int64_t deadline = now_us() + (int64_t)timeout_s * 1000000;
    while (atomic_load(&s->in_flight) > 0 && now_us() < deadline)
        usleep(10000);
    if (atomic_load(&s->in_flight) > 0)
        log_warn("shutdown: %d request(s) still running after %ds; stopping anyway",
                 atomic_load(&s->in_flight), timeout_s);
    MHD_stop_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    free(s);
}
