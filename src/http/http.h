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
struct MHD_UpgradeResponseHandle;
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
    /* true: the handler gets the body (up to MAX_BODY_BYTES); false: a request
     * with a body is refused with 400 before the handler runs */
    bool accepts_body;
} http_route_t;

/* A route whose request body is not buffered but handed to the handler as it
 * arrives (uploads). MAX_BODY_BYTES does not apply: the handler enforces its
 * own limit. Each callback runs on the connection's worker thread. */
typedef struct http_stream_ops {
    /* The head is in (limits and CORS already checked). Return false after
     * replying (e.g. 401) to refuse the body. */
    bool (*begin)(http_request_t *req);
    /* A piece of the body. Return false after replying an error (e.g. 413):
     * the rest is discarded and the connection closed. */
    bool (*data)(http_request_t *req, const char *buf, size_t len);
    /* The whole body has arrived: reply. */
    void (*end)(http_request_t *req);
    /* The request ends without end() having run (client went away, or begin
     * or data refused): release what begin allocated. May be NULL. */
    void (*cleanup)(http_request_t *req);
} http_stream_ops_t;

/* Stream routes are tried in order and the first match decides. A route with
 * ops NULL streams nothing: the requests it matches are buffered and routed
 * by the ordinary route table, so a buffered endpoint can be listed ahead of a
 * streaming catch-all that shares its path space. */
typedef struct http_stream_route {
    const char *method;
    const char *pattern;
    const http_stream_ops_t *ops; /* NULL: not streamed (see above) */
} http_stream_route_t;

/* Called on its own once a connection is upgraded (101 sent): sock belongs to
 * the callee, which must finish with http_upgrade_close(urh) (never close(sock)
 * itself). extra holds bytes the client sent after the head. */
typedef void (*http_upgrade_fn)(void *cls, int sock, const char *extra, size_t extra_len,
                                struct MHD_UpgradeResponseHandle *urh);

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
    bool head_only;   /* HEAD: send headers, no body */
    size_t discarded; /* body bytes read after a 413 was decided */
    int resp_fd;      /* http_reply_fd: the file to send, -1 for none */
    uint64_t resp_fd_offset;
    /* streaming uploads (http_stream_route_t) */
    const http_stream_ops_t *stream;
    void *stream_ctx;     /* the stream handler's state */
    char *stream_scratch; /* holds params[] for streaming routes */
    bool stream_ended;
    /* connection upgrade (WebSocket) */
    http_upgrade_fn upgrade_fn;
    void *upgrade_cls;
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
    int max_connections_per_ip; /* 0: unlimited */
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
                                      size_t nroutes, const http_stream_route_t *stream_routes,
                                      size_t nstream_routes, void *ctx);
/* The port actually bound (useful with port 0). */
int http_server_port(const struct http_server *s);
/* Stops accepting, lets requests in flight finish for up to timeout_s seconds,
 * then stops and frees the server. */
void http_server_stop(struct http_server *s, int timeout_s);

/* A request header by case-insensitive name, or NULL. */
const char *http_header(const http_request_t *req, const char *name);
/* A cookie of the request's Cookie header by name (libmicrohttpd parses
 * it), or NULL. */
const char *http_cookie(const http_request_t *req, const char *name);
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
/* Answers with size bytes of the open file fd from offset on, streamed from
 * the file by MHD (never read into memory). The request owns fd from now on
 * and closes it. */
#define HTTP_HAVE_REPLY_FD 1
void http_reply_fd(http_request_t *req, int status, const char *content_type, int fd,
                   uint64_t offset, uint64_t size);
/* Answers with JSON; steals the reference to json (NULL gives an empty body). */
void http_reply_json(http_request_t *req, int status, json_t *json);
/* The generic error shape: {"code":code,"message":message,"details":null,"hint":hint}. */
void http_reply_error(http_request_t *req, int status, const char *code, const char *message,
                      const char *hint);
/* 503 with Retry-After, for when the database cannot be reached. */
void http_reply_unavailable(http_request_t *req, int retry_after_s);
/* Answers 101 Switching Protocols (add Upgrade and protocol headers with
 * http_add_header first) and hands the connection to fn(cls, ...) afterwards. */
void http_reply_upgrade(http_request_t *req, http_upgrade_fn fn, void *cls);
/* Closes an upgraded connection (from any thread, once). */
void http_upgrade_close(struct MHD_UpgradeResponseHandle *urh);
/* Adds a response header (copied). Returns false when there are too many. */
bool http_add_header(http_request_t *req, const char *name, const char *value);

/* Common response headers, one spelling for every module: a handler names the ones it
 * needs, combined with |, and http_add_common_headers adds them in this order. (nosniff is
 * also added by the server to every response that does not set it.) */
enum {
    HTTP_HDR_NOSNIFF = 1u << 0,     /* X-Content-Type-Options: nosniff */
    HTTP_HDR_NO_STORE = 1u << 1,    /* Cache-Control: no-store, max-age=0 */
    HTTP_HDR_NO_REFERRER = 1u << 2, /* Referrer-Policy: no-referrer */
    HTTP_HDR_NO_INDEX = 1u << 3,    /* X-Robots-Tag: noindex */
    HTTP_HDR_COOP_SAME = 1u << 4    /* Cross-Origin-Opener-Policy: same-origin */
};
/* Adds the headers named in `which` (HTTP_HDR_*). Returns false when one did not fit. */
bool http_add_common_headers(http_request_t *req, unsigned which);

/* A new request id: 32 hex digits, unique within the process (see server.c).
 * Thread-safe. Exposed for tests. */
void http_make_request_id(char out[HTTP_REQUEST_ID_LEN + 1]);
/* Matches path against a route pattern, filling params. Exposed for tests. */
CD_MUSTCHECK bool http_route_match(const char *pattern, const char *path, const char **params,
                                   size_t *nparams, char *scratch, size_t scratch_len);
/* Decodes %XX (and '+' as space when form) in place; returns false on a bad escape or %00. */
CD_MUSTCHECK bool http_url_decode(char *s, bool form);
/* Whether origin is allowed by the comma-separated list (or "*"). Exposed for tests. */
bool http_cors_origin_allowed(const char *list, const char *origin);

#endif
