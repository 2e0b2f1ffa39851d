/*
 * The HTTP layer: a libmicrohttpd server with a thread pool, a routing table,
 * request limits, CORS, request ids and an access log. Handlers see a parsed
 * request and answer with http_reply*(); this layer knows nothing of auth,
 * REST or the database.
 */
#ifndef CD_HTTP_H
#define CD_HTTP_H

#include <jansson.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/common.h"

#define HTTP_MAX_ROUTE_PARAMS     4
#define HTTP_MAX_RESPONSE_HEADERS 24
#define HTTP_REQUEST_ID_LEN       32

struct MHD_Connection;
struct http_server;

typedef struct http_request http_request_t;
typedef void (*http_handler_fn)(http_request_t *req);

/* One row of a routing table. pattern: literal segments, ":name" segments
 * (one path segment each, URL-decoded) and an optional trailing "*" that
 * matches the rest of the path (possibly empty). method "*" matches any. */
typedef struct http_route {
    const char *method;
    const char *pattern;
    http_handler_fn handler;
    /* true: the handler runs for any body size up to the limit (default);
     * false: the route accepts no body */
    bool accepts_body;
} http_route_t;

typedef struct http_header {
    char *name;
    char *value;
} http_header_t;

struct http_request {
    void *ctx; /* the application context given to http_server_start */
    struct MHD_Connection *conn;
    const char *method;    /* "GET", "POST", ... */
    const char *path;      /* URL-decoded path, no query */
    char *raw_uri;         /* the request target as received */
    const char *raw_query; /* the raw (still encoded) query string, "" if none */
    const char *params[HTTP_MAX_ROUTE_PARAMS]; /* ":name" and "*" captures, in order */
    size_t nparams;
    char request_id[HTTP_REQUEST_ID_LEN + 1];
    char client_ip[64]; /* the socket peer, or the trusted proxy's client */
    cd_buf_t body;      /* the request body (NUL-terminated) */
    const http_route_t *route;
    /* response */
    int status;
    char *resp_body; /* malloc'd, owned by the request */
    size_t resp_len;
    char *resp_type;
    http_header_t resp_headers[HTTP_MAX_RESPONSE_HEADERS];
    size_t nresp_headers;
    bool replied;
    bool head_only; /* HEAD: send headers, no body */
    /* internal */
    bool started;
    bool failed_early;
    int64_t start_us;
    size_t bytes_out;
};

typedef struct http_server_opts {
    const char *bind;
    int port;
    int threads;
    int max_connections;
    size_t max_body_bytes;
    size_t max_header_bytes;
    size_t max_header_count;
    int client_timeout;
    const char *cors_origins;    /* "*" or comma list */
    const char *trusted_proxies; /* comma list of addresses, or "" */
} http_server_opts_t;

/* Starts listening and serving. routes must stay valid while the server runs.
 * Returns NULL and logs why if the socket cannot be bound. */
struct http_server *http_server_start(const http_server_opts_t *opts, const http_route_t *routes,
                                      size_t nroutes, void *ctx);
/* The port actually bound (useful with port 0). */
int http_server_port(const struct http_server *s);
/* Stops accepting, lets requests in flight finish for up to timeout_s seconds,
 * then stops and frees the server. */
void http_server_stop(struct http_server *s, int timeout_s);

/* A request header by case-insensitive name, or NULL. */
const char *http_header(const http_request_t *req, const char *name);
/* Calls fn for every request header (name as received). */
void http_each_header(const http_request_t *req,
                      void (*fn)(void *arg, const char *name, const char *value), void *arg);
/* The decoded query argument of that name (first occurrence), or NULL. */
const char *http_query_arg(const http_request_t *req, const char *name);

/* Answers with a body that is copied. content_type NULL means application/json. */
void http_reply(http_request_t *req, int status, const char *content_type, const char *body,
                size_t len);
/* Answers with a malloc'd body the request takes ownership of. */
void http_reply_take(http_request_t *req, int status, const char *content_type, char *body,
                     size_t len);
/* Answers with JSON; steals the reference to json (NULL gives an empty body). */
void http_reply_json(http_request_t *req, int status, json_t *json);
/* The generic error shape: {"code":code,"message":message,"details":null,"hint":hint}. */
void http_reply_error(http_request_t *req, int status, const char *code, const char *message,
                      const char *hint);
/* 503 with Retry-After, for when the database cannot be reached. */
void http_reply_unavailable(http_request_t *req, int retry_after_s);
/* Adds a response header (copied). Returns false when there are too many. */
bool http_add_header(http_request_t *req, const char *name, const char *value);

/* Matches path against a route pattern, filling params. Exposed for tests. */
CD_MUSTCHECK bool http_route_match(const char *pattern, const char *path, const char **params,
                                   size_t *nparams, char *scratch, size_t scratch_len);
/* Decodes %XX (and '+' as space when form) in place; returns false on a bad escape or %00. */
CD_MUSTCHECK bool http_url_decode(char *s, bool form);
/* Whether origin is allowed by the comma-separated list (or "*"). Exposed for tests. */
bool http_cors_origin_allowed(const char *list, const char *origin);

#endif
