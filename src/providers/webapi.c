/*
 * Shared libcurl glue of the HTTP API providers (webapi.h), and the send
 * engine's own HTTP/1.1 exchange on a connection libcurl opened.
 */
#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "providers/curlconn.h"
#include "providers/webapi.h"

size_t webapi_write_buf(char *p, size_t size, size_t nmemb, void *userp)
{
    cd_buf_t *b = userp;
    return cd_buf_add(b, p, size * nmemb) ? size * nmemb : 0;
}

bool webapi_connect_failure(int curl_code)
{
    switch ((CURLcode)curl_code) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return true;
    default:
        return false;
    }
}

struct webapi_client *webapi_client_new(void)
{
    struct webapi_client *c = calloc(1, sizeof(*c));
    if (c && !(c->curl = curl_easy_init())) {
        free(c);
        return NULL;
    }
    return c;
}

static void conn_close(struct webapi_client *c);

void webapi_client_free(struct webapi_client *c)
{
    if (!c)
        return;
    conn_close(c);
    curl_easy_cleanup(c->curl);
    free(c);
}

webapi_status_t webapi_perform(struct webapi_client *c, const webapi_request_t *r, cd_buf_t *answer,
                               long *http_status, char *err, size_t errlen)
{
    CURL *h = c->curl;
    char curl_err[CURL_ERROR_SIZE] = "";
    *http_status = 0;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, r->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (r->user) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, r->user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, r->password ? r->password : "");
    }
    if (r->headers)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, (struct curl_slist *)r->headers);
    if (r->body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)r->body_len);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, webapi_write_buf);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, answer);
    if (r->header_cb) {
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, r->header_cb);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, r->header_data);
    }
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, r->timeout_seconds);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "%s", *curl_err ? curl_err : curl_easy_strerror(rc));
        return webapi_connect_failure((int)rc) ? WEBAPI_NOT_SENT : WEBAPI_LOST;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, http_status);
    return WEBAPI_ANSWERED;
}

bool webapi_account_open(webapi_account_t *a, const char *base, const char *default_base,
                         const char *base_name, const char *secret, const char *secret_name,
                         long timeout_seconds, char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    if (!base || !*base)
        base = default_base;
    if (!secret || !*secret) {
        snprintf(err, errlen, "%s is not set", secret_name);
        return false;
    }
    if (strlen(base) >= sizeof(a->api_base) || strlen(secret) >= sizeof(a->secret) ||
        (strncmp(base, "https://", 8) != 0 && strncmp(base, "http://", 7) != 0)) {
        snprintf(err, errlen, "%s must be an http(s) URL and the %s < %d bytes", base_name,
                 secret_name, WEBAPI_FIELD_MAX);
        return false;
    }
    if (!(a->client = webapi_client_new())) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    snprintf(a->api_base, sizeof(a->api_base), "%s", base);
    snprintf(a->secret, sizeof(a->secret), "%s", secret);
    a->timeout_seconds = timeout_seconds > 0 ? timeout_seconds : 30;
    return true;
}

void webapi_account_close(webapi_account_t *a)
{
    webapi_client_free(a->client);
    a->client = NULL;
    OPENSSL_cleanse(a->secret, sizeof(a->secret));
}

/* ------------------------------------------------- the answer's parser */

enum {
    ST_STATUS = 0, /* the status line */
    ST_HEADER,     /* a header line, or the empty line ending the head */
    ST_BODY,       /* left_ bytes of a body with a length */
    ST_CLOSE,      /* a body that ends at the close */
    ST_CHUNK_SIZE, /* a chunk's size line */
    ST_CHUNK_DATA, /* left_ bytes of a chunk */
    ST_CHUNK_END,  /* the CRLF after a chunk's data */
    ST_TRAILER,    /* a trailer line, or the empty line ending the body */
    ST_DONE,
};

/* Interim (1xx) answers skipped before the final one; more is not HTTP. */
#define WEBAPI_INTERIM_MAX 16

void webapi_parser_init(webapi_parser_t *p)
{
    memset(p, 0, sizeof(*p));
    p->keep_alive_timeout = -1;
}

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool parse_fail(webapi_parser_t *p, const char *why)
{
    p->error = why;
    return false;
}

/* Whether s[0..n) equals the lower-case word w, in any case. */
static bool word_is(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

/* "HTTP/1.x ddd[ reason]" (CR and LF already cut). */
static bool parse_status(webapi_parser_t *p, const char *s, size_t n)
{
    if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || s[7] < '0' || s[7] > '9' || s[8] != ' ' ||
        s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9' ||
        (n > 12 && s[12] != ' '))
        return parse_fail(p, "not an HTTP/1.x status line");
    p->http11_ = s[7] != '0';
    p->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    p->close_ = p->keep_ = p->chunked_ = p->length_ = false;
    p->left_ = 0;
    p->keep_alive_timeout = -1;
    p->state_ = ST_HEADER;
    return true;
}

/* Connection's tokens: close, keep-alive. */
static void parse_connection(webapi_parser_t *p, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ',' || v[i] == ' ' || v[i] == '\t'))
            i++;
        size_t b = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (word_is(v + b, i - b, "close"))
            p->close_ = true;
        else if (word_is(v + b, i - b, "keep-alive"))
            p->keep_ = true;
    }
}

/* Keep-Alive: timeout=N[, max=M] */
static void parse_keep_alive(webapi_parser_t *p, const char *v, size_t n)
{
    for (size_t i = 0; i + 8 <= n; i++) {
        if ((i == 0 || v[i - 1] == ' ' || v[i - 1] == '\t' || v[i - 1] == ',') &&
            strncasecmp(v + i, "timeout=", 8) == 0) {
            long t = 0;
            for (size_t j = i + 8; j < n && v[j] >= '0' && v[j] <= '9' && t < 100000; j++)
                t = t * 10 + (v[j] - '0');
            p->keep_alive_timeout = t;
            return;
        }
    }
}

/* One header line "name: value" (CR and LF already cut). Only the headers
 * that frame the answer matter; the others are checked for form only, and
 * so is every trailer field (trailer: after a chunked body, where framing
 * and connection fields have no say, RFC 9110 6.5.1). */
static bool parse_header(webapi_parser_t *p, const char *s, size_t n, bool trailer)
{
    size_t k = 0;
    while (k < n && is_tchar((unsigned char)s[k]))
        k++;
    if (k == 0 || k == n || s[k] != ':')
        return parse_fail(p, "a bad header line"); /* obs-fold included (RFC 9112 5.2) */
    const char *v = s + k + 1;
    size_t vn = n - k - 1;
    while (vn && (*v == ' ' || *v == '\t'))
        v++, vn--;
    while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
        vn--;
    for (size_t i = 0; i < vn; i++)
        if ((unsigned char)v[i] < ' ' && v[i] != '\t')
            return parse_fail(p, "a control character in a header");
    if (trailer)
        return true;
    if (word_is(s, k, "content-length")) {
        unsigned long long len = 0;
        if (vn == 0 || vn > 15)
            return parse_fail(p, "a bad Content-Length");
        for (size_t i = 0; i < vn; i++) {
            if (v[i] < '0' || v[i] > '9')
                return parse_fail(p, "a bad Content-Length");
            len = len * 10 + (unsigned long long)(v[i] - '0');
        }
        if (p->length_ && len != p->left_)
            return parse_fail(p, "two different Content-Lengths");
        p->length_ = true;
        p->left_ = len;
    } else if (word_is(s, k, "transfer-encoding")) {
        /* we send no TE: chunked is the only coding a server may use */
        if (p->chunked_ || !word_is(v, vn, "chunked"))
            return parse_fail(p, "an unsupported Transfer-Encoding");
        p->chunked_ = true;
    } else if (word_is(s, k, "connection")) {
        parse_connection(p, v, vn);
    } else if (word_is(s, k, "keep-alive")) {
        parse_keep_alive(p, v, vn);
    }
    return true;
}

/* The head is over: what frames the body (RFC 9112 6.3). */
static bool head_end(webapi_parser_t *p)
{
    if (p->status < 200) {
        if (p->status == 101)
            return parse_fail(p, "101 Switching Protocols to a request that asked for none");
        if (++p->interim_ > WEBAPI_INTERIM_MAX)
            return parse_fail(p, "too many interim (1xx) answers");
        p->status = 0;
        p->state_ = ST_STATUS;
        return true;
    }
    p->keep_alive = !p->close_ && (p->http11_ || p->keep_);
    if (p->status == 204 || p->status == 304) {
        p->state_ = ST_DONE;
    } else if (p->chunked_) {
        /* both a length and chunked: chunked counts, the connection is
         * not trusted after it (RFC 9112 6.3, point 3) */
        if (p->length_)
            p->keep_alive = false;
        p->state_ = ST_CHUNK_SIZE;
    } else if (p->length_) {
        p->state_ = p->left_ ? ST_BODY : ST_DONE;
    } else {
        p->keep_alive = false;
        p->state_ = ST_CLOSE;
    }
    return true;
}

/* A chunk's size line: hex digits, then extensions (";...") to ignore. */
static bool parse_chunk_size(webapi_parser_t *p, const char *s, size_t n)
{
    size_t i = 0;
    unsigned long long size = 0;
    /* leading zeros do not count against the 15 digits a size may have */
    while (i + 1 < n && s[i] == '0' && isxdigit((unsigned char)s[i + 1]))
        i++;
    size_t first = i;
    for (; i < n && i - first < 16; i++) {
        int d = s[i] >= '0' && s[i] <= '9'   ? s[i] - '0'
                : s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10
                : s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 10
                                             : -1;
        if (d < 0)
            break;
        size = size * 16 + (unsigned long long)d;
    }
    if (i == first || i - first >= 16)
        return parse_fail(p, "a bad chunk size");
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i < n && s[i] != ';')
        return parse_fail(p, "a bad chunk size");
    for (; i < n; i++)
        if ((unsigned char)s[i] < ' ' && s[i] != '\t')
            return parse_fail(p, "a control character in a chunk extension");
    p->left_ = size;
    p->state_ = size ? ST_CHUNK_DATA : ST_TRAILER;
    return true;
}

/* One line of the head or of a chunk's framing (CR LF or LF cut). */
static bool parse_line(webapi_parser_t *p, const char *s, size_t n)
{
    switch (p->state_) {
    case ST_STATUS:
        return parse_status(p, s, n);
    case ST_HEADER:
        if (n == 0)
            return head_end(p);
        return parse_header(p, s, n, false);
    case ST_CHUNK_SIZE:
        return parse_chunk_size(p, s, n);
    case ST_CHUNK_END:
        if (n != 0)
            return parse_fail(p, "a chunk longer than its size");
        p->state_ = ST_CHUNK_SIZE;
        return true;
    default: /* ST_TRAILER: trailers are not read, only checked for form */
        if (n == 0) {
            p->state_ = ST_DONE;
            return true;
        }
        return parse_header(p, s, n, true);
    }
}

long webapi_parse(webapi_parser_t *p, const char *data, size_t len, cd_buf_t *body)
{
    size_t pos = 0;
    if (p->error)
        return -1;
    while (pos < len && p->state_ != ST_DONE) {
        size_t avail = len - pos;
        if (p->state_ == ST_BODY || p->state_ == ST_CHUNK_DATA || p->state_ == ST_CLOSE) {
            size_t take = avail;
            if (p->state_ != ST_CLOSE && p->left_ < take)
                take = (size_t)p->left_;
            if (!cd_buf_add(body, data + pos, take)) {
                p->error = "the answer's body is larger than its buffer";
                return -1;
            }
            pos += take;
            if (p->state_ != ST_CLOSE && (p->left_ -= take) == 0)
                p->state_ = p->state_ == ST_BODY ? ST_DONE : ST_CHUNK_END;
            continue;
        }
        const char *nl = memchr(data + pos, '\n', avail);
        size_t line = nl ? (size_t)(nl - (data + pos)) + 1 : avail;
        if (line > WEBAPI_LINE_MAX || p->head_ + line > WEBAPI_HEAD_MAX) {
            p->error = line > WEBAPI_LINE_MAX ? "a line of the answer is too long"
                                              : "the answer's head is too large";
            return -1;
        }
        if (!nl)
            break; /* the rest of the line is still to come */
        p->head_ += line;
        size_t n = line - 1;
        if (n && data[pos + n - 1] == '\r')
            n--;
        if (memchr(data + pos, '\r', n) || memchr(data + pos, '\0', n)) {
            p->error = "a bare CR or a NUL in the answer's head";
            return -1;
        }
        if (!parse_line(p, data + pos, n))
            return -1;
        pos += line;
    }
    p->done = p->state_ == ST_DONE;
    return (long)pos;
}

bool webapi_parse_eof(webapi_parser_t *p)
{
    if (p->error)
        return false;
    if (p->state_ == ST_CLOSE)
        p->state_ = ST_DONE;
    p->done = p->state_ == ST_DONE;
    if (!p->done)
        p->error = "the connection closed before the answer was complete";
    return p->done;
}

/* ------------------------------------------------------- the exchange */

/*
 * Why our own HTTP/1.1 exchange: perf of the send engine put ~71 % of
 * campaignd's CPU per SMS in libcurl's exchange (bench/RESULTS.md,
 * "send-cpu"): its state machine, the URL parsed again after each
 * curl_easy_reset, the request built and the answer's head parsed through
 * its generic layers, its timers, and ~3 polls, a sendto and a recvfrom per
 * request. The send engine's requests are all alike (one origin, a POST of
 * a form, a JSON answer), so here libcurl only opens the connection (TCP,
 * TLS with its certificate checks, a proxy's CONNECT) and the exchange is
 * one write of the whole request and reads until the answer is complete,
 * framed by webapi_parse. The figures are in bench/RESULTS.md, "send-http".
 * webapi_perform stays for what needs more (SendGrid's extra headers).
 */

/* How long a kept connection may wait for its next request. A server that
 * announces no Keep-Alive timeout (Twilio's front announces none) still
 * closes an idle connection some time, and a NAT or a firewall on the way
 * may forget it without a word: such a connection passes conn_alive's poll,
 * and the request written on it is lost (unknown, never retried), though it
 * never arrived. libcurl never reused a connection idle for more than 118 s
 * (CURLOPT_MAXAGE_CONN); ours go after 30 s, or a second before the
 * server's announced timeout when that is sooner. */
#define WEBAPI_IDLE_MAX_MS 30000

static long long test_idle_max_ms; /* webapi_test_set_idle_max_ms */

void webapi_test_set_idle_max_ms(long long ms)
{
    test_idle_max_ms = ms;
}

/* The idle limit of a connection after an answer that announced a
 * Keep-Alive timeout of ka seconds (-1: none); 0: not kept at all. */
static long long idle_limit_ms(long ka)
{
    long long max = test_idle_max_ms > 0 ? test_idle_max_ms : WEBAPI_IDLE_MAX_MS;
    if (ka < 0)
        return max;
    if (ka == 0) /* the server keeps nothing idle */
        return 0;
    /* the server closes an idle connection after its timeout: a second
     * before, ours goes (a request crossing its close would be lost) */
    long long l = ka == 1 ? 500 : (long long)ka * 1000 - 1000;
    return l < max ? l : max;
}

struct webapi_conn {
    curlconn_t io;
    long long idle_since;    /* cd_mono_ms of its last answer */
    long long idle_limit_ms; /* idle_limit_ms() of its last answer (> 0) */
    char origin[WEBAPI_FIELD_MAX + 16];
};

int webapi_test_conn_fd(const struct webapi_client *c)
{
    return c->conn ? (int)c->conn->io.fd : -1;
}

static void conn_close(struct webapi_client *c)
{
    if (c->conn) {
        curl_easy_cleanup(c->conn->io.curl);
        free(c->conn);
        c->conn = NULL;
    }
}

/* Whether a connection that waited since its last answer can carry a
 * request: nothing may be readable on it (a close, a reset, bytes nobody
 * asked for all say no). Over TLS a readable socket may hold only a record
 * OpenSSL reads for itself (a session ticket): libcurl says "again" then. */
static bool conn_alive(struct webapi_conn *k)
{
    if (cd_mono_ms() - k->idle_since >= k->idle_limit_ms)
        return false;
    /* a few rounds: a partial TLS record would stay readable for ever */
    for (int round = 0; round < 4; round++) {
        struct pollfd p = {.fd = k->io.fd, .events = POLLIN};
        int r = poll(&p, 1, 0);
        if (r == 0)
            return true;
        if (r < 0 || (p.revents & (POLLERR | POLLHUP | POLLNVAL)))
            return false;
        char b[256];
        size_t got = 0;
        CURLcode rc = curl_easy_recv(k->io.curl, b, sizeof(b), &got);
        if (rc != CURLE_AGAIN)
            return false;
    }
    return false;
}

/* The HTTP options of the connect phase (curlconn_open's setup). */
static void conn_setup(CURL *h, void *arg)
{
    const char *origin = arg;
    if (strncmp(origin, "https://", 8) == 0) {
        /* through a proxy (the environment's), a tunnel: our request is in
         * origin form, for the server itself, inside TLS */
        curl_easy_setopt(h, CURLOPT_HTTPPROXYTUNNEL, 1L);
    } else {
        /* http://: webapi_exchange found no proxy for it (one that applies
         * sends the request to webapi_perform), so none: the connection is
         * the server's own, in the clear (its tls false is then true) */
        curl_easy_setopt(h, CURLOPT_PROXY, "");
    }
    /* TLS's ALPN offers http/1.1 alone: a server that may pick h2 (libcurl
     * offers it by default) would not understand our requests */
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
}

/* Opens a connection to origin (libcurl: connect, a proxy's CONNECT, TLS)
 * within what is left until the deadline. NULL with err set on failure. */
static struct webapi_conn *conn_open(const char *origin, long long deadline, char *err,
                                     size_t errlen)
{
    struct webapi_conn *k = calloc(1, sizeof(*k));
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    char curl_err[CURL_ERROR_SIZE];
    long long left = deadline - cd_mono_ms();
    CURLcode rc = curlconn_open(&k->io, origin, "http,https",
                                left < 1          ? 1L
                                : left > LONG_MAX ? LONG_MAX
                                                  : (long)left,
                                conn_setup, (void *)origin, curl_err);
    if (rc == CURLE_OK) {
        snprintf(k->origin, sizeof(k->origin), "%s", origin);
        return k;
    }
    snprintf(err, errlen, "%s",
             *curl_err                                  ? curl_err
             : rc == CURLE_OUT_OF_MEMORY && !k->io.curl ? "out of memory"
                                                        : curl_easy_strerror(rc));
    curl_easy_cleanup(k->io.curl);
    free(k);
    return NULL;
}

/* Reads the answer into answer. 1: complete; 0: cut or timed out (why in
 * err); -1: not readable (why in err). */
static int conn_read(struct webapi_conn *k, webapi_parser_t *ps, cd_buf_t *answer,
                     long long deadline, char *err, size_t errlen)
{
    curlconn_t *io = &k->io;
    for (;;) {
        if (io->inlen) {
            long used = webapi_parse(ps, io->in, io->inlen, answer);
            if (used < 0) {
                snprintf(err, errlen, "unreadable answer: %s", ps->error);
                return -1;
            }
            memmove(io->in, io->in + used, io->inlen - (size_t)used);
            io->inlen -= (size_t)used;
            if (ps->done)
                return 1;
        }
        if (io->inlen == sizeof(io->in)) { /* cannot happen: a line is shorter */
            snprintf(err, errlen, "unreadable answer: a line is too long");
            return -1;
        }
        CURLcode rc;
        long got = curlconn_fill(io, deadline, &rc);
        if (got < 0 && rc == CURLE_OPERATION_TIMEDOUT) {
            snprintf(err, errlen, "no complete answer within the timeout");
            return 0;
        }
        if (got < 0) {
            snprintf(err, errlen, "the connection broke before the answer: %s",
                     curl_easy_strerror(rc));
            return 0;
        }
        if (got == 0) {
            if (webapi_parse_eof(ps))
                return 1;
            snprintf(err, errlen, "%s", ps->error);
            return 0;
        }
    }
}

/* Whether a proxy of the environment applies to an http:// URL's authority
 * (libcurl reads http_proxy or all_proxy, and no_proxy's exclusions). An
 * http:// request through a proxy is sent in absolute form, not through a
 * CONNECT tunnel to port 80 (which proxies commonly refuse): webapi_perform
 * does that. A case in doubt says yes (webapi_perform then does exactly
 * what libcurl does); no only when no proxy is set, or when no_proxy is "*"
 * or names the host exactly or as a domain of it (a name, not an address,
 * for the latter), which libcurl reads the same way. */
static bool env_proxy_applies(const char *authority)
{
    static const char *const vars[] = {"http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"};
    bool set = false;
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        const char *v = getenv(vars[i]);
        set = set || (v && *v);
    }
    if (!set)
        return false;
    const char *np = getenv("no_proxy");
    if (!np || !*np)
        np = getenv("NO_PROXY");
    if (!np || !*np)
        return true;
    if (strcmp(np, "*") == 0)
        return false;
    const char *host = authority;
    size_t hl = strcspn(authority, ":");
    if (authority[0] == '[') {
        const char *e = strchr(authority, ']');
        if (!e)
            return true;
        host = authority + 1;
        hl = (size_t)(e - host);
    }
    if (hl == 0)
        return true;
    bool address = memchr(host, ':', hl) || strspn(host, "0123456789.") == hl;
    while (*np) {
        np += strspn(np, ", \t");
        size_t n = strcspn(np, ", \t");
        const char *e = np;
        np += n;
        if (n && *e == '.' && !address)
            e++, n--;
        if (n == 0)
            continue;
        if (n == hl && strncasecmp(host, e, n) == 0)
            return false;
        if (!address && hl > n && host[hl - n - 1] == '.' && strncasecmp(host + hl - n, e, n) == 0)
            return false;
    }
    return true;
}

/* The origin ("http(s)://authority") and the request target of url, when
 * the exchange can send it: no credentials in it, a printable ASCII target. */
static bool split_url(const char *url, char *origin, size_t cap, const char **target,
                      size_t *target_len)
{
    size_t scheme = strncmp(url, "https://", 8) == 0 ? 8 : strncmp(url, "http://", 7) == 0 ? 7 : 0;
    if (!scheme)
        return false;
    size_t a = scheme + strcspn(url + scheme, "/?#");
    if (a == scheme || a >= cap || memchr(url + scheme, '@', a - scheme))
        return false;
    /* the authority goes into Host: as it is, printable ASCII only (a host
     * in another script is libcurl's: it sends its punycode form) */
    for (size_t i = scheme; i < a; i++)
        if ((unsigned char)url[i] <= ' ' || (unsigned char)url[i] >= 0x7f)
            return false;
    memcpy(origin, url, a);
    origin[a] = '\0';
    const char *t = url + a;
    size_t n = strcspn(t, "#");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] <= ' ' || (unsigned char)t[i] >= 0x7f)
            return false;
    *target = t;
    *target_len = n;
    return true;
}

/* The request's text into out: appended piece by piece, no printf (the
 * request is built for every message; glibc's vsnprintf was ~2 % of
 * campaignd's CPU per SMS here). user and password are < WEBAPI_FIELD_MAX
 * (checked by the caller). */
static bool build_request(cd_buf_t *out, const webapi_request_t *r, const char *origin,
                          const char *target, size_t target_len)
{
    const char *host = strstr(origin, "://") + 3;
    bool ok = cd_buf_adds(out, r->body ? "POST " : "GET ") &&
              (target_len && target[0] == '/' ? true : cd_buf_adds(out, "/")) &&
              cd_buf_add(out, target, target_len) && cd_buf_adds(out, " HTTP/1.1\r\nHost: ") &&
              cd_buf_adds(out, host) && cd_buf_adds(out, "\r\n");
    if (ok && r->user) {
        /* HTTP basic auth: base64 of user:password */
        unsigned char cred[2 * WEBAPI_FIELD_MAX];
        unsigned char b64[4 * ((sizeof(cred) + 2) / 3) + 1];
        const char *pw = r->password ? r->password : "";
        size_t ul = strlen(r->user), pl = strlen(pw);
        memcpy(cred, r->user, ul);
        cred[ul] = ':';
        memcpy(cred + ul + 1, pw, pl);
        int n = EVP_EncodeBlock(b64, cred, (int)(ul + 1 + pl));
        ok = n >= 0 && cd_buf_adds(out, "Authorization: Basic ") &&
             cd_buf_add(out, b64, (size_t)n) && cd_buf_adds(out, "\r\n");
        OPENSSL_cleanse(cred, sizeof(cred));
        OPENSSL_cleanse(b64, sizeof(b64));
    }
    ok = ok && cd_buf_adds(out, "Accept: */*\r\n");
    if (ok && r->body) {
        char digits[24];
        size_t d = sizeof(digits), v = r->body_len;
        do
            digits[--d] = (char)('0' + v % 10);
        while ((v /= 10) && d > 0);
        ok = cd_buf_adds(out, "Content-Type: ") &&
             cd_buf_adds(out,
                         r->content_type ? r->content_type : "application/x-www-form-urlencoded") &&
             cd_buf_adds(out, "\r\nContent-Length: ") &&
             cd_buf_add(out, digits + d, sizeof(digits) - d) && cd_buf_adds(out, "\r\n\r\n") &&
             cd_buf_add(out, r->body, r->body_len);
    } else if (ok) {
        ok = cd_buf_adds(out, "\r\n");
    }
    return ok;
}

/* An upper bound of build_request's text (see there). */
static size_t request_size(const webapi_request_t *r, const char *origin, size_t target_len)
{
    size_t n = 64 + target_len + strlen(origin) + 32; /* request line, Host, Accept */
    if (r->user)
        n += 32 + 4 * ((strlen(r->user) + 1 + (r->password ? strlen(r->password) : 0) + 2) / 3);
    if (r->body)
        n += 64 + (r->content_type ? strlen(r->content_type) : 40) + 24 + r->body_len;
    return n;
}

webapi_status_t webapi_exchange(struct webapi_client *c, const webapi_request_t *r,
                                cd_buf_t *answer, long *http_status, char *err, size_t errlen)
{
    char origin[WEBAPI_FIELD_MAX + 16];
    const char *target = NULL;
    size_t target_len = 0;
    *http_status = 0;
    if (r->headers || r->header_cb || (r->user && strlen(r->user) >= WEBAPI_FIELD_MAX) ||
        (r->password && strlen(r->password) >= WEBAPI_FIELD_MAX) ||
        !split_url(r->url, origin, sizeof(origin), &target, &target_len))
        return webapi_perform(c, r, answer, http_status, err, errlen);
    /* the environment's proxy is looked at when a connection is to be
     * opened, not for every request: a kept connection to this origin was
     * opened because none applied */
    bool kept = c->conn && strcmp(c->conn->origin, origin) == 0;
    if (!kept && strncmp(origin, "http://", 7) == 0 && env_proxy_applies(origin + 7))
        return webapi_perform(c, r, answer, http_status, err, errlen);
    long long deadline = cd_mono_ms() + (r->timeout_seconds > 0 ? r->timeout_seconds : 30) * 1000;
    /* the whole request in one allocation, cleansed at the end: appends that
     * grew it would leave copies of the Authorization line in freed blocks */
    size_t need = request_size(r, origin, target_len);
    cd_buf_t out;
    cd_buf_init(&out, need);
    webapi_status_t st = WEBAPI_NOT_SENT;
    if (!cd_buf_reserve(&out, need) || !build_request(&out, r, origin, target, target_len)) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (c->conn && (strcmp(c->conn->origin, origin) != 0 || !conn_alive(c->conn)))
        conn_close(c);
    for (int attempt = 0;; attempt++) {
        bool reused = c->conn != NULL;
        if (!c->conn && !(c->conn = conn_open(origin, deadline, err, errlen)))
            goto done; /* nothing of the request left */
        struct webapi_conn *k = c->conn;
        size_t written = 0;
        if (!curlconn_write(&k->io, out.data, out.len, &written, deadline)) {
            conn_close(c);
            if (written > 0) {
                /* part of it went: the server has a request whose end (its
                 * Content-Length, or the head's empty line) never came, and
                 * cannot act on it. Not sent, but not tried again in this
                 * call (the caller retries later, on a new connection). */
                snprintf(err, errlen,
                         "the connection broke while the request was sent (%zu of %zu bytes)",
                         written, out.len);
                goto done;
            }
            /* a kept connection that failed at once: nothing of the request
             * reached the server, once more on a new connection */
            if (reused && attempt == 0 && cd_mono_ms() < deadline)
                continue;
            snprintf(err, errlen, "the connection broke before the request was sent");
            goto done;
        }
        /* from here on the server may have the request: never sent again */
        st = WEBAPI_LOST;
        webapi_parser_t ps;
        webapi_parser_init(&ps);
        k->io.inlen = 0;
        if (conn_read(k, &ps, answer, deadline, err, errlen) <= 0) {
            conn_close(c);
            goto done;
        }
        st = WEBAPI_ANSWERED;
        *http_status = ps.status;
        /* bytes after the answer were asked for by nobody: not kept */
        k->idle_limit_ms = idle_limit_ms(ps.keep_alive_timeout);
        if (!ps.keep_alive || k->io.inlen || k->idle_limit_ms == 0) {
            conn_close(c);
        } else {
            k->idle_since = cd_mono_ms();
        }
        break;
    }
done:
    if (out.data)
        OPENSSL_cleanse(out.data, out.len);
    cd_buf_free(&out);
    return st;
}
