/*
 * What the HTTP API providers (SendGrid, Twilio) share on top of libcurl:
 * the client (one kept-alive handle), the account every provider value
 * holds (API base, secret, timeout, client), one request performed with the
 * same options and the same failure rule, the response body collector and
 * the rule that decides whether a failed request may be retried. Kept apart
 * so both clients answer the same way.
 *
 * Two ways to perform a request: webapi_perform (libcurl's whole HTTP
 * client) and webapi_exchange (libcurl only connects, TLS included; the
 * HTTP/1.1 request and the answer's parsing are ours, on one kept-alive
 * connection per client: the send engine's path, see webapi.c for why).
 */
#ifndef CD_PROVIDERS_WEBAPI_H
#define CD_PROVIDERS_WEBAPI_H

#include <stddef.h>

#include "core/buf.h"
#include "core/common.h"

/* A client of one HTTP API (one per sending worker, not thread-safe): a
 * libcurl handle for webapi_perform, which keeps its connections from one
 * request to the next, and webapi_exchange's own kept connection. */
struct webapi_client {
    void *curl;               /* CURL * of webapi_perform */
    struct webapi_conn *conn; /* webapi_exchange's connection, NULL when none */
};
struct webapi_client *webapi_client_new(void);
void webapi_client_free(struct webapi_client *c);

/* A libcurl CURLOPT_WRITEFUNCTION that appends to the cd_buf_t given as
 * userp; a full buffer stops the transfer (CURLE_WRITE_ERROR). */
size_t webapi_write_buf(char *p, size_t size, size_t nmemb, void *userp);

/* Whether a libcurl error code (CURLcode) means the request never reached
 * the server (name resolution, connection refused, TLS handshake), so it is
 * safe to send it again. Every other failure may have happened after the
 * server got the request: retrying could deliver a message twice. */
bool webapi_connect_failure(int curl_code);

/* One request. Everything is borrowed for the call. */
typedef struct webapi_request {
    const char *url;
    const char *user;     /* HTTP basic auth user, or NULL */
    const char *password; /* with user */
    void *headers;        /* struct curl_slist * of extra headers, or NULL */
    const char *body;     /* POST this body; NULL: GET */
    size_t body_len;
    /* a CURLOPT_HEADERFUNCTION and its data, or NULL */
    size_t (*header_cb)(char *p, size_t size, size_t nmemb, void *userp);
    void *header_data;
    long timeout_seconds;
    /* webapi_exchange: the Content-Type of a body (NULL:
     * application/x-www-form-urlencoded, as libcurl's default) */
    const char *content_type;
} webapi_request_t;

/* What became of a request. */
typedef enum webapi_status {
    WEBAPI_ANSWERED = 0, /* an HTTP answer came (any status) */
    WEBAPI_NOT_SENT,     /* it never reached the server: safe to retry */
    WEBAPI_LOST,         /* it may have reached the server, no answer came */
} webapi_status_t;

/* Performs r on c (http and https only), the answer's body into answer and
 * its status into *http_status (0 without an answer). Otherwise err gets
 * libcurl's reason (never a credential). */
webapi_status_t webapi_perform(struct webapi_client *c, const webapi_request_t *r, cd_buf_t *answer,
                               long *http_status, char *err, size_t errlen);

/* Performs r as webapi_perform does, with the same answers and the same
 * failure rule, on c's own kept-alive connection (libcurl connects it, TLS
 * and certificate checks included; the HTTP/1.1 exchange is ours):
 *   - a connection that waited since its last answer is checked first
 *     (closed by the server, holding bytes nobody asked for, idle 30 s or
 *     more, or idle past the server's Keep-Alive timeout less a second: a
 *     new one);
 *   - WEBAPI_NOT_SENT when the request was not written whole (no
 *     connection; a reused one that failed at the first byte: tried once
 *     more on a new connection first; a connection that broke in the
 *     middle: the server has an incomplete request it cannot act on);
 *   - WEBAPI_LOST when all of it was written and no complete answer came
 *     (closed, timed out, an answer we cannot read, or larger than answer's
 *     maximum): it may have arrived, never send it again;
 *   - the connection is kept for the next request unless the server said
 *     close (Connection: close, HTTP/1.0 without keep-alive, an answer that
 *     ends at the close).
 * timeout_seconds bounds the whole exchange, connection included. A request
 * it does not handle (extra headers or a header callback, credentials in the
 * URL, a host or a path that is not printable ASCII, an http:// URL that an
 * environment proxy applies to) goes to webapi_perform. */
webapi_status_t webapi_exchange(struct webapi_client *c, const webapi_request_t *r,
                                cd_buf_t *answer, long *http_status, char *err, size_t errlen);

/* ------------------------------------------------- the answer's parser */

/* Limits on an answer's head: one line, and all the head's lines of one
 * exchange together (interim answers and a chunked body's framing and
 * trailers included). */
#define WEBAPI_LINE_MAX 8192
#define WEBAPI_HEAD_MAX (32 * 1024)

/* An HTTP/1.x answer read incrementally (webapi_parse). The fields before
 * the underscore ones may be read once it is done. */
typedef struct webapi_parser {
    long status;             /* the final answer's status (1xx ones are skipped) */
    bool done;               /* the answer is complete */
    bool keep_alive;         /* when done: the connection may carry another request */
    long keep_alive_timeout; /* a Keep-Alive: timeout=N header's N (seconds), -1 none */
    const char *error;       /* why webapi_parse failed (a static text) */
    /* internal */
    int state_;
    bool http11_, close_, keep_, chunked_, length_;
    int interim_;
    unsigned long long left_; /* bytes of the body or of the chunk still to come */
    size_t head_;             /* head bytes so far */
} webapi_parser_t;

void webapi_parser_init(webapi_parser_t *p);

/* Reads the answer's bytes at data[0..len): the body's bytes are appended to
 * body (its maximum bounds the answer). Returns the bytes taken, which may be
 * fewer than len when a line is not complete yet (call again with them and
 * more) or when the answer is done (what follows is not part of it), or -1
 * when the bytes are not an HTTP/1.x answer we can read (p->error says why:
 * a bad status line or header, a line over WEBAPI_LINE_MAX, a head over
 * WEBAPI_HEAD_MAX, a body over body's maximum, a bad chunk, an unsupported
 * Transfer-Encoding, conflicting lengths, 101). */
long webapi_parse(webapi_parser_t *p, const char *data, size_t len, cd_buf_t *body);

/* The connection closed after everything was given to webapi_parse: true
 * when that completes the answer (a body without a length ends at the
 * close), false when the answer was cut. */
bool webapi_parse_eof(webapi_parser_t *p);

/* (The CA file webapi_exchange's connections trust in a test:
 * curlconn_test_set_cainfo.) */

/* Tests only: the longest a kept connection may wait for its next request
 * (0: the default, 30 s; a server's Keep-Alive timeout may make it shorter). */
void webapi_test_set_idle_max_ms(long long ms);

/* Tests only: the socket of c's kept connection, -1 when none (a test may
 * shut it down to break the connection, or wait for the server's close). */
int webapi_test_conn_fd(const struct webapi_client *c);

/* The state of a provider value of an HTTP API, opened from the settings. */
#define WEBAPI_FIELD_MAX 512
typedef struct webapi_account {
    char api_base[WEBAPI_FIELD_MAX];
    char secret[WEBAPI_FIELD_MAX]; /* API key or auth token: cleansed on close */
    long timeout_seconds;
    struct webapi_client *client; /* one connection for the whole job */
} webapi_account_t;

/* Fills a: base (default_base when ""), which must be an http(s) URL,
 * secret (not empty), both shorter than WEBAPI_FIELD_MAX; timeout_seconds
 * (30 when <= 0) and a new client. False with err set, naming base_name and
 * secret_name, when a value is refused or memory is out (nothing to close). */
CD_MUSTCHECK bool webapi_account_open(webapi_account_t *a, const char *base,
                                      const char *default_base, const char *base_name,
                                      const char *secret, const char *secret_name,
                                      long timeout_seconds, char *err, size_t errlen);
/* Frees the client and cleanses the secret. */
void webapi_account_close(webapi_account_t *a);

#endif
