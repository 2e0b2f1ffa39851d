/* Unit tests for providers/webapi.c: which libcurl failures may be retried
 * (the request never left), the bounded response collector, the answer's
 * parser (lengths, chunks, interim answers, an answer that ends at the
 * close, limits, split at every byte) and webapi_exchange against a
 * scripted server in a thread: keep-alive, a connection the server closed
 * while it waited (a new one, nothing sent twice), one closed after the
 * request (lost), silence (lost at the deadline), no server (not sent),
 * TLS (HTTP/1.1 offered by ALPN, never h2). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/ssl.h>

#include "providers/curlconn.h"
#include "providers/webapi.h"

static void test_connect_failure(void **state)
{
    (void)state;
    assert_true(webapi_connect_failure(CURLE_COULDNT_CONNECT));
    assert_true(webapi_connect_failure(CURLE_COULDNT_RESOLVE_HOST));
    assert_true(webapi_connect_failure(CURLE_SSL_CONNECT_ERROR));
    /* after the request may have left: never retried */
    assert_false(webapi_connect_failure(CURLE_OPERATION_TIMEDOUT));
    assert_false(webapi_connect_failure(CURLE_RECV_ERROR));
    assert_false(webapi_connect_failure(CURLE_GOT_NOTHING));
    assert_false(webapi_connect_failure(CURLE_SEND_ERROR));
    assert_false(webapi_connect_failure(CURLE_PARTIAL_FILE));
}

static void test_write_buf(void **state)
{
    (void)state;
    cd_buf_t b;
    cd_buf_init(&b, 8);
    char data[] = "abcdef";
    assert_int_equal(webapi_write_buf(data, 1, 6, &b), 6);
    assert_int_equal(b.len, 6);
    /* past the maximum: 0 makes libcurl stop the transfer */
    assert_int_equal(webapi_write_buf(data, 1, 6, &b), 0);
    cd_buf_free(&b);
}

/* The account a provider value holds: the default base, http(s) only,
 * bounded fields, a secret required and cleansed on close. */
static void test_account_open(void **state)
{
    (void)state;
    webapi_account_t a;
    char err[256] = "";
    assert_false(webapi_account_open(&a, "", "https://api.example", "X_BASE", "", "X_KEY", 0, err,
                                     sizeof(err)));
    assert_string_equal(err, "X_KEY is not set");
    assert_false(webapi_account_open(&a, "file:///etc", "https://api.example", "X_BASE", "k",
                                     "X_KEY", 0, err, sizeof(err)));
    assert_non_null(strstr(err, "X_BASE must be an http(s) URL"));
    char big[WEBAPI_FIELD_MAX + 1];
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_false(webapi_account_open(&a, "", "https://api.example", "X_BASE", big, "X_KEY", 0, err,
                                     sizeof(err)));
    assert_true(webapi_account_open(&a, "", "https://api.example", "X_BASE", "key", "X_KEY", 0, err,
                                    sizeof(err)));
    assert_string_equal(a.api_base, "https://api.example");
    assert_string_equal(a.secret, "key");
    assert_int_equal(a.timeout_seconds, 30);
    assert_non_null(a.client);
    webapi_account_close(&a);
    assert_null(a.client);
    assert_int_equal(a.secret[0], 0);
    assert_true(webapi_account_open(&a, "http://127.0.0.1:9", "https://x", "B", "k", "K", 5, err,
                                    sizeof(err)));
    assert_int_equal(a.timeout_seconds, 5);
    webapi_account_close(&a);
}

/* A request that never reaches a server is NOT_SENT with libcurl's reason;
 * only http and https are spoken. */
static void test_perform(void **state)
{
    (void)state;
    struct webapi_client *c = webapi_client_new();
    assert_non_null(c);
    cd_buf_t answer;
    cd_buf_init(&answer, 1024);
    long status = -1;
    char err[256] = "";
    webapi_request_t r = {
        .url = "http://127.0.0.1:9/x", .user = "u", .password = "p", .timeout_seconds = 2};
    assert_int_equal(webapi_perform(c, &r, &answer, &status, err, sizeof(err)), WEBAPI_NOT_SENT);
    assert_int_equal(status, 0);
    assert_true(err[0] != '\0');
    r.url = "file:///etc/passwd";
    assert_int_equal(webapi_perform(c, &r, &answer, &status, err, sizeof(err)), WEBAPI_NOT_SENT);
    assert_int_equal(answer.len, 0);
    cd_buf_free(&answer);
    webapi_client_free(c);
}

/* ------------------------------------------------------ the parser */

typedef struct parsed {
    long rc; /* 1 done, 0 needs more (or the close), -1 error */
    long status;
    bool keep_alive;
    long keep_alive_timeout;
    char body[4096];
    size_t body_len;
} parsed_t;

/* Feeds text to a parser in pieces of at most step bytes (0: all at once),
 * keeping what it did not take as a connection would; eof: then the close. */
static parsed_t parse_in(const char *text, size_t len, size_t step, bool eof, size_t body_max)
{
    parsed_t out = {0};
    webapi_parser_t p;
    webapi_parser_init(&p);
    cd_buf_t body;
    cd_buf_init(&body, body_max);
    char held[WEBAPI_HEAD_MAX * 2];
    size_t hl = 0, fed = 0;
    while (!p.done) {
        size_t n = step ? step : len;
        if (n > len - fed)
            n = len - fed;
        if (n == 0 && hl == 0)
            break;
        assert_true(hl + n <= sizeof(held));
        memcpy(held + hl, text + fed, n);
        hl += n;
        fed += n;
        long used = webapi_parse(&p, held, hl, &body);
        if (used < 0) {
            out.rc = -1;
            cd_buf_free(&body);
            return out;
        }
        memmove(held, held + used, hl - (size_t)used);
        hl -= (size_t)used;
        if (n == 0)
            break;
    }
    if (!p.done && eof && fed == len)
        out.rc = webapi_parse_eof(&p) ? 1 : -1;
    else
        out.rc = p.done ? 1 : 0;
    out.status = p.status;
    out.keep_alive = p.keep_alive;
    out.keep_alive_timeout = p.keep_alive_timeout;
    out.body_len = body.len;
    if (body.len)
        memcpy(out.body, body.data, body.len < sizeof(out.body) ? body.len : sizeof(out.body));
    cd_buf_free(&body);
    return out;
}

/* text parsed at once and split at every byte gives the same answer. */
static parsed_t parse_all(const char *text, bool eof)
{
    size_t len = strlen(text);
    parsed_t whole = parse_in(text, len, 0, eof, 1024);
    for (size_t step = 1; step <= 7; step++) {
        parsed_t split = parse_in(text, len, step, eof, 1024);
        assert_int_equal(split.rc, whole.rc);
        if (whole.rc == 1) {
            assert_int_equal(split.status, whole.status);
            assert_int_equal(split.keep_alive, whole.keep_alive);
            assert_int_equal(split.body_len, whole.body_len);
            assert_memory_equal(split.body, whole.body, whole.body_len);
        }
    }
    /* every split point of two pieces */
    for (size_t cut = 1; cut < len; cut++) {
        webapi_parser_t p;
        webapi_parser_init(&p);
        cd_buf_t body;
        cd_buf_init(&body, 1024);
        char held[8192];
        assert_true(len < sizeof(held));
        memcpy(held, text, cut);
        long used = webapi_parse(&p, held, cut, &body);
        if (used < 0) {
            assert_int_equal(whole.rc, -1);
            cd_buf_free(&body);
            continue;
        }
        size_t hl = cut - (size_t)used;
        memmove(held, held + used, hl);
        memcpy(held + hl, text + cut, len - cut);
        hl += len - cut;
        long more = p.done ? 0 : webapi_parse(&p, held, hl, &body);
        long rc = more < 0 ? -1 : p.done ? 1 : eof ? (webapi_parse_eof(&p) ? 1 : -1) : 0;
        assert_int_equal(rc, whole.rc);
        if (rc == 1) {
            assert_int_equal(p.status, whole.status);
            assert_int_equal(body.len, whole.body_len);
            assert_memory_equal(body.data ? body.data : "", whole.body, whole.body_len);
        }
        cd_buf_free(&body);
    }
    return whole;
}

static void test_parse_lengths(void **state)
{
    (void)state;
    parsed_t r =
        parse_all("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                  "Content-Length: 11\r\nKeep-Alive: timeout=5, max=100\r\n\r\n{\"sid\":\"x\"}",
                  false);
    assert_int_equal(r.rc, 1);
    assert_int_equal(r.status, 201);
    assert_true(r.keep_alive);
    assert_int_equal(r.keep_alive_timeout, 5);
    assert_int_equal(r.body_len, 11);
    assert_memory_equal(r.body, "{\"sid\":\"x\"}", 11);
    /* a parameter after a tab */
    r = parse_all("HTTP/1.1 200 OK\r\nKeep-Alive: max=5,\ttimeout=3\r\nContent-Length: 0\r\n\r\n",
                  false);
    assert_int_equal(r.keep_alive_timeout, 3);
    /* none announced: -1, not 0 (timeout=0 keeps nothing idle) */
    r = parse_all("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false);
    assert_int_equal(r.keep_alive_timeout, -1);
    r = parse_all("HTTP/1.1 200 OK\r\nKeep-Alive: timeout=0\r\nContent-Length: 0\r\n\r\n", false);
    assert_int_equal(r.keep_alive_timeout, 0);
    /* bare LF, no reason, an empty body */
    r = parse_all("HTTP/1.1 200\nContent-Length: 0\n\n", false);
    assert_int_equal(r.rc, 1);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    /* 204 has no body whatever it says */
    r = parse_all("HTTP/1.1 204 No Content\r\n\r\n", false);
    assert_int_equal(r.rc, 1);
    assert_true(r.keep_alive);
    /* the same length twice is one length */
    r = parse_all("HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok", false);
    assert_int_equal(r.rc, 1);
    /* the bytes after the answer are not taken */
    webapi_parser_t p;
    webapi_parser_init(&p);
    cd_buf_t body;
    cd_buf_init(&body, 64);
    const char *two = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1";
    assert_int_equal(webapi_parse(&p, two, strlen(two), &body), (long)strlen(two) - 8);
    assert_true(p.done);
    cd_buf_free(&body);
}

static void test_parse_connection(void **state)
{
    (void)state;
    parsed_t r =
        parse_all("HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 1\r\n\r\nx", false);
    assert_int_equal(r.rc, 1);
    assert_false(r.keep_alive);
    r = parse_all("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", false);
    assert_int_equal(r.rc, 1);
    assert_false(r.keep_alive);
    r = parse_all("HTTP/1.0 200 OK\r\nConnection: foo, keep-alive\r\nContent-Length: 1\r\n\r\nx",
                  false);
    assert_int_equal(r.rc, 1);
    assert_true(r.keep_alive);
}

/* No length, not chunked: the body ends at the close. */
static void test_parse_close_delimited(void **state)
{
    (void)state;
    parsed_t r =
        parse_all("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}", true);
    assert_int_equal(r.rc, 1);
    assert_int_equal(r.status, 200);
    assert_false(r.keep_alive);
    assert_int_equal(r.body_len, 7);
    /* without the close it is not complete */
    r = parse_in("HTTP/1.1 200 OK\r\n\r\nabc", 22, 0, false, 1024);
    assert_int_equal(r.rc, 0);
    /* a body with a length cut by the close is not an answer */
    r = parse_all("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true);
    assert_int_equal(r.rc, -1);
    /* nor a head cut by it */
    r = parse_all("HTTP/1.1 200 OK\r\nContent-Le", true);
    assert_int_equal(r.rc, -1);
    r = parse_all("", true);
    assert_int_equal(r.rc, -1);
}

static void test_parse_chunked(void **state)
{
    (void)state;
    parsed_t r = parse_all("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "4\r\n{\"si\r\n"
                           "7;ext=\"v\"\r\nd\":\"x\"}\r\n"
                           "A \r\n0123456789\r\n"
                           "0\r\nX-Trailer: t\r\n\r\n",
                           false);
    assert_int_equal(r.rc, 1);
    assert_int_equal(r.status, 201);
    assert_true(r.keep_alive);
    assert_int_equal(r.body_len, 21);
    assert_memory_equal(r.body, "{\"sid\":\"x\"}0123456789", 21);
    /* chunked and a length: chunked counts, the connection is not kept */
    r = parse_all("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "2\r\nok\r\n0\r\n\r\n",
                  false);
    assert_int_equal(r.rc, 1);
    assert_false(r.keep_alive);
    assert_int_equal(r.body_len, 2);
    /* a chunk longer than its size, a bad size, a size that overflows */
    assert_int_equal(
        parse_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokk\r\n0\r\n\r\n",
                  false)
            .rc,
        -1);
    assert_int_equal(
        parse_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n", false).rc,
        -1);
    assert_int_equal(parse_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "ffffffffffffffffff\r\nok\r\n",
                               false)
                         .rc,
                     -1);
    /* cut before the last chunk: not an answer at the close */
    assert_int_equal(
        parse_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n", true).rc, -1);
    /* trailer fields are checked for form, never read: a length, a
     * coding, a Keep-Alive or a Connection there change nothing */
    r = parse_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n"
                  "2\r\nok\r\n0\r\nContent-Length: 7\r\nTransfer-Encoding: gzip\r\n\r\n",
                  false);
    assert_int_equal(r.rc, 1);
    assert_int_equal(r.body_len, 2);
    r = parse_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=9\r\n\r\n"
                  "0\r\nKeep-Alive: timeout=1\r\nConnection: close\r\n\r\n",
                  false);
    assert_int_equal(r.rc, 1);
    assert_true(r.keep_alive);
    assert_int_equal(r.keep_alive_timeout, 9);
    assert_int_equal(parse_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "0\r\nbad trailer\r\n\r\n",
                               false)
                         .rc,
                     -1);
    /* leading zeros do not count against a size's 15 digits */
    r = parse_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "00000000000000000002\r\nok\r\n0000000000000000000\r\n\r\n",
                  false);
    assert_int_equal(r.rc, 1);
    assert_int_equal(r.body_len, 2);
    /* a coding we never asked for */
    assert_int_equal(
        parse_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", false).rc,
        -1);
}

/* 100 Continue (and other interim answers) are skipped; 101 is refused. */
static void test_parse_interim(void **state)
{
    (void)state;
    parsed_t r = parse_all("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\n"
                           "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
                           false);
    assert_int_equal(r.rc, 1);
    assert_int_equal(r.status, 201);
    assert_int_equal(r.body_len, 2);
    assert_int_equal(parse_all("HTTP/1.1 101 Switching Protocols\r\n\r\n", false).rc, -1);
    /* only interim answers: not done */
    assert_int_equal(parse_all("HTTP/1.1 100 Continue\r\n\r\n", false).rc, 0);
}

static void test_parse_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "HTTP/2 200\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 600 Nope\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",
        "SMTP 220 hello\r\n",
        "HTTP/1.1 200OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
        "HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parse_all(bad[i], false).rc != -1)
            fail_msg("accepted: %s", bad[i]);
}

/* Bounded: a line, the head, the body (the buffer's maximum). */
static void test_parse_limits(void **state)
{
    (void)state;
    static char big[WEBAPI_HEAD_MAX + 512];
    size_t n = (size_t)snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nX: ");
    memset(big + n, 'a', WEBAPI_LINE_MAX);
    n += WEBAPI_LINE_MAX;
    memcpy(big + n, "\r\n\r\n", 5);
    n += 4;
    assert_int_equal(parse_in(big, n, 0, false, 1024).rc, -1);
    assert_int_equal(parse_in(big, n, 1000, false, 1024).rc, -1);
    /* a head of many short lines */
    n = (size_t)snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\n");
    while (n + 16 < sizeof(big) - 8)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "X-A: 0123456789\r\n");
    memcpy(big + n, "\r\n", 3);
    n += 2;
    assert_int_equal(parse_in(big, n, 0, false, 1024).rc, -1);
    /* the body past the buffer's maximum, with a length or chunked */
    const char *len = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
    assert_int_equal(parse_in(len, strlen(len), 0, false, 10).rc, 1);
    assert_int_equal(parse_in(len, strlen(len), 0, false, 9).rc, -1);
    assert_int_equal(parse_in(len, strlen(len), 3, false, 9).rc, -1);
    const char *ch = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n"
                     "5\r\n56789\r\n0\r\n\r\n";
    assert_int_equal(parse_in(ch, strlen(ch), 0, false, 9).rc, -1);
    assert_int_equal(parse_in(ch, strlen(ch), 0, false, 10).rc, 1);
    const char *cl = "HTTP/1.1 200 OK\r\n\r\n0123456789";
    assert_int_equal(parse_in(cl, strlen(cl), 0, true, 9).rc, -1);
    /* endless interim answers */
    n = 0;
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "HTTP/1.1 100 Continue\r\n\r\n");
    assert_int_equal(parse_in(big, n, 0, false, 1024).rc, -1);
}

/* ------------------------------------------------ the scripted server */

/* What the server does with a request (its index in the script). */
typedef enum act {
    ACT_ANSWER = 0, /* 201 with a length, kept alive */
    ACT_CLOSE,      /* 201 with Connection: close, then closes */
    ACT_IDLE_CLOSE, /* 201 kept alive, then closes the connection */
    ACT_DROP,       /* reads the request, closes without a word */
    ACT_PARTIAL,    /* half an answer, then closes */
    ACT_SILENT,     /* reads the request, never answers (until stopped) */
    ACT_CHUNKED,    /* 201 chunked, written a few bytes at a time, with a 100 first */
    ACT_HTTP10,     /* HTTP/1.0, no length: the body ends at the close */
    ACT_KEEP_1S,    /* 201 with Keep-Alive: timeout=1 */
    ACT_KEEP_0S,    /* 201 with Keep-Alive: timeout=0 (keeps nothing idle) */
} act_t;

typedef struct fake {
    int lfd, port;
    pthread_t th;
    pthread_mutex_t mu;
    SSL_CTX *tls;
    int cfd;
    int connections;
    int requests;
    act_t script[16]; /* per request, ACT_ANSWER past the end */
    bool stop;
    bool hold_on_eof;   /* the client shut its side: close only once a new
                           connection waits (its check must not see the close) */
    size_t reset_after; /* > 0: reset the connection once it read so many bytes */
    char last[4096];    /* the last request */
} fake_t;

typedef struct io {
    int fd;
    SSL *ssl;
} io_t;

static ssize_t io_recv(io_t *io, char *p, size_t n)
{
    return io->ssl ? SSL_read(io->ssl, p, (int)n) : recv(io->fd, p, n, 0);
}

static bool io_send(io_t *io, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = io->ssl ? SSL_write(io->ssl, s, (int)n) : send(io->fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        s += w;
        n -= (size_t)w;
    }
    return true;
}

static const char answer_body[] = "{\"sid\":\"SM0123\",\"status\":\"queued\"}";

/* needle in p[0..n), or NULL */
static char *find(char *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(p + i, needle, k) == 0)
            return p + i;
    return NULL;
}

/* The end of the client's side of a connection (recv said 0 or failed). */
static void client_gone(fake_t *f)
{
    if (f->hold_on_eof) {
        struct pollfd p = {.fd = f->lfd, .events = POLLIN};
        poll(&p, 1, 5000);
    }
}

/* Whether the connection must be reset now (reset_after reached): an abortive
 * close (SO_LINGER 0), so the client's next send fails. */
static bool reset_now(fake_t *f, io_t *io, size_t len)
{
    if (!f->reset_after || len < f->reset_after)
        return false;
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(io->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    return true;
}

/* One connection: request after request (head, then Content-Length bytes). */
static void serve(fake_t *f, io_t *io)
{
    char buf[16384];
    size_t len = 0;
    for (;;) {
        char *end;
        while (!(end = find(buf, len, "\r\n\r\n"))) {
            ssize_t r = io_recv(io, buf + len, sizeof(buf) - len);
            if (r <= 0) {
                client_gone(f);
                return;
            }
            len += (size_t)r;
            if (reset_now(f, io, len))
                return;
        }
        size_t head = (size_t)(end - buf) + 4;
        const char *cl = find(buf, len, "Content-Length: ");
        size_t body = cl && cl < end ? (size_t)strtoul(cl + 16, NULL, 10) : 0;
        while (len < head + body) {
            ssize_t r = io_recv(io, buf + len, sizeof(buf) - len);
            if (r <= 0)
                return;
            len += (size_t)r;
            if (reset_now(f, io, len))
                return;
        }
        pthread_mutex_lock(&f->mu);
        int i = f->requests++;
        size_t keep = head + body < sizeof(f->last) - 1 ? head + body : sizeof(f->last) - 1;
        memcpy(f->last, buf, keep);
        f->last[keep] = '\0';
        act_t act = i < 16 ? f->script[i] : ACT_ANSWER;
        pthread_mutex_unlock(&f->mu);
        memmove(buf, buf + head + body, len - head - body);
        len -= head + body;
        char out[1024];
        int n;
        switch (act) {
        case ACT_ANSWER:
        case ACT_CLOSE:
        case ACT_IDLE_CLOSE:
        case ACT_KEEP_1S:
        case ACT_KEEP_0S:
            n = snprintf(out, sizeof(out),
                         "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n%s"
                         "Content-Length: %zu\r\n\r\n%s",
                         act == ACT_CLOSE     ? "Connection: close\r\n"
                         : act == ACT_KEEP_1S ? "Keep-Alive: timeout=1\r\n"
                         : act == ACT_KEEP_0S ? "Keep-Alive: timeout=0\r\n"
                                              : "",
                         strlen(answer_body), answer_body);
            if (!io_send(io, out, (size_t)n) || act == ACT_CLOSE || act == ACT_IDLE_CLOSE)
                return;
            break;
        case ACT_DROP:
            return;
        case ACT_PARTIAL:
            n = snprintf(out, sizeof(out),
                         "HTTP/1.1 201 Created\r\nContent-Length: %zu\r\n\r\n%.5s",
                         strlen(answer_body), answer_body);
            io_send(io, out, (size_t)n);
            return;
        case ACT_SILENT:
            for (;;) {
                pthread_mutex_lock(&f->mu);
                bool stop = f->stop;
                pthread_mutex_unlock(&f->mu);
                if (stop)
                    return;
                usleep(10 * 1000);
            }
        case ACT_CHUNKED:
            n = snprintf(out, sizeof(out),
                         "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n%zx;x=y\r\n%s\r\n0\r\nT: 1\r\n\r\n",
                         strlen(answer_body), answer_body);
            for (int k = 0; k < n; k += 7) {
                if (!io_send(io, out + k, (size_t)(n - k < 7 ? n - k : 7)))
                    return;
                usleep(1000);
            }
            break;
        case ACT_HTTP10:
            n = snprintf(out, sizeof(out), "HTTP/1.0 201 Created\r\n\r\n%s", answer_body);
            io_send(io, out, (size_t)n);
            return;
        }
    }
}

static void *fake_main(void *arg)
{
    fake_t *f = arg;
    for (;;) {
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        pthread_mutex_lock(&f->mu);
        f->cfd = fd;
        f->connections++;
        pthread_mutex_unlock(&f->mu);
        io_t io = {.fd = fd};
        if (f->tls) {
            io.ssl = SSL_new(f->tls);
            SSL_set_fd(io.ssl, fd);
            if (SSL_accept(io.ssl) == 1)
                serve(f, &io);
            SSL_shutdown(io.ssl);
            SSL_free(io.ssl);
        } else {
            serve(f, &io);
        }
        pthread_mutex_lock(&f->mu);
        if (f->cfd == fd)
            f->cfd = -1;
        close(fd);
        pthread_mutex_unlock(&f->mu);
    }
}

static fake_t *fake_start(SSL_CTX *tls)
{
    fake_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->cfd = -1;
    f->tls = tls;
    pthread_mutex_init(&f->mu, NULL);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->lfd, 8), 0);
    socklen_t al = sizeof(a);
    getsockname(f->lfd, (struct sockaddr *)&a, &al);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
    return f;
}

static void fake_stop(fake_t *f)
{
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    if (f->cfd >= 0)
        shutdown(f->cfd, SHUT_RDWR);
    pthread_mutex_unlock(&f->mu);
    shutdown(f->lfd, SHUT_RDWR);
    pthread_join(f->th, NULL);
    close(f->lfd);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static int fake_count(fake_t *f, const int *field)
{
    pthread_mutex_lock(&f->mu);
    int v = *field;
    pthread_mutex_unlock(&f->mu);
    return v;
}

typedef struct ex {
    webapi_status_t st;
    long status;
    char body[512];
    char err[256];
} ex_t;

/* One request of url as AC1:token (body NULL: a GET) through webapi_exchange. */
static ex_t exchange_at(struct webapi_client *c, const char *url, const char *body, size_t body_len,
                        long timeout)
{
    webapi_request_t r = {.url = url,
                          .user = "AC1",
                          .password = "token",
                          .body = body,
                          .body_len = body_len,
                          .timeout_seconds = timeout};
    ex_t e = {0};
    cd_buf_t answer;
    cd_buf_init(&answer, 256 * 1024);
    e.st = webapi_exchange(c, &r, &answer, &e.status, e.err, sizeof(e.err));
    snprintf(e.body, sizeof(e.body), "%s", cd_buf_str(&answer));
    cd_buf_free(&answer);
    return e;
}

/* One POST of a form (or a GET) through webapi_exchange. */
static ex_t exchange(struct webapi_client *c, const fake_t *f, bool post, long timeout)
{
    char url[128];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d/2010-04-01/Accounts/AC1/Messages.json",
             f->tls ? "https" : "http", f->port);
    return exchange_at(c, url, post ? "To=%2B15550001111&Body=hi" : NULL, post ? 25 : 0, timeout);
}

/* Waits until the server's close of c's kept connection reached it (its
 * socket readable): the close happened while the connection waited. */
static void wait_server_close(const struct webapi_client *c)
{
    struct pollfd p = {.fd = webapi_test_conn_fd(c), .events = POLLIN};
    assert_true(p.fd >= 0);
    assert_int_equal(poll(&p, 1, 10000), 1);
}

/* Requests on one kept connection; what the server got is what was meant. */
static void test_exchange_keep_alive(void **state)
{
    (void)state;
    fake_t *f = fake_start(NULL);
    f->script[2] = ACT_CHUNKED;
    struct webapi_client *c = webapi_client_new();
    for (int i = 0; i < 4; i++) {
        ex_t e = exchange(c, f, i != 1, 5);
        assert_int_equal(e.st, WEBAPI_ANSWERED);
        assert_int_equal(e.status, 201);
        assert_string_equal(e.body, answer_body);
    }
    assert_int_equal(fake_count(f, &f->connections), 1);
    assert_int_equal(fake_count(f, &f->requests), 4);
    pthread_mutex_lock(&f->mu);
    assert_non_null(strstr(f->last, "POST /2010-04-01/Accounts/AC1/Messages.json HTTP/1.1\r\n"));
    assert_non_null(strstr(f->last, "\r\nHost: 127.0.0.1:"));
    assert_non_null(strstr(f->last, "\r\nAuthorization: Basic QUMxOnRva2Vu\r\n")); /* AC1:token */
    assert_non_null(strstr(f->last, "\r\nContent-Type: application/x-www-form-urlencoded\r\n"));
    assert_non_null(strstr(f->last, "\r\nContent-Length: 25\r\n\r\nTo=%2B15550001111&Body=hi"));
    pthread_mutex_unlock(&f->mu);
    webapi_client_free(c);
    fake_stop(f);
}

/* The server closes: with Connection: close, after a while idle, with
 * HTTP/1.0. The next request goes on a new connection, each once. */
static void test_exchange_server_closes(void **state)
{
    (void)state;
    fake_t *f = fake_start(NULL);
    f->script[0] = ACT_CLOSE;
    f->script[1] = ACT_IDLE_CLOSE;
    f->script[2] = ACT_HTTP10;
    struct webapi_client *c = webapi_client_new();
    for (int i = 0; i < 4; i++) {
        ex_t e = exchange(c, f, true, 5);
        assert_int_equal(e.st, WEBAPI_ANSWERED);
        assert_int_equal(e.status, 201);
        assert_string_equal(e.body, answer_body);
        if (i == 1)
            wait_server_close(c); /* it closes while the connection waits */
    }
    assert_int_equal(fake_count(f, &f->requests), 4);
    assert_int_equal(fake_count(f, &f->connections), 4);
    webapi_client_free(c);
    fake_stop(f);
}

/* Keep-Alive: timeout=1: a connection idle past it is not used again. */
static void test_exchange_keep_alive_timeout(void **state)
{
    (void)state;
    fake_t *f = fake_start(NULL);
    f->script[0] = ACT_KEEP_1S;
    f->script[1] = ACT_KEEP_1S;
    struct webapi_client *c = webapi_client_new();
    assert_int_equal(exchange(c, f, true, 5).st, WEBAPI_ANSWERED);
    assert_int_equal(exchange(c, f, true, 5).st, WEBAPI_ANSWERED); /* at once: kept */
    assert_int_equal(fake_count(f, &f->connections), 1);
    usleep(600 * 1000);
    assert_int_equal(exchange(c, f, true, 5).st, WEBAPI_ANSWERED);
    assert_int_equal(fake_count(f, &f->connections), 2);
    assert_int_equal(fake_count(f, &f->requests), 3);
    webapi_client_free(c);
    fake_stop(f);
}

/* A server that announces no Keep-Alive timeout (as Twilio's) still has an
 * idle limit, and so may a NAT on the way, silently: a connection idle past
 * ours is not used again (the test sets it to 200 ms instead of 30 s). A
 * server's timeout=0 keeps nothing. */
static void test_exchange_idle_limit(void **state)
{
    (void)state;
    fake_t *f = fake_start(NULL);
    f->script[3] = ACT_KEEP_0S;
    webapi_test_set_idle_max_ms(200);
    struct webapi_client *c = webapi_client_new();
    assert_int_equal(exchange(c, f, true, 5).st, WEBAPI_ANSWERED);
    assert_int_equal(exchange(c, f, true, 5).st, WEBAPI_ANSWERED); /* at once: kept */
    assert_int_equal(fake_count(f, &f->connections), 1);
    usleep(300 * 1000);
    assert_int_equal(exchange(c, f, true, 5).st, WEBAPI_ANSWERED);
    assert_int_equal(fake_count(f, &f->connections), 2);
    assert_int_equal(exchange(c, f, true, 5).st, WEBAPI_ANSWERED); /* timeout=0 */
    assert_int_equal(exchange(c, f, true, 5).st, WEBAPI_ANSWERED);
    assert_int_equal(fake_count(f, &f->connections), 3);
    assert_int_equal(fake_count(f, &f->requests), 5);
    webapi_test_set_idle_max_ms(0);
    webapi_client_free(c);
    fake_stop(f);
}

/* A kept connection that passes the check but fails at the first byte
 * (shut down on our side; the server says nothing until a new connection
 * comes): nothing of the request reached the server, so it goes once more
 * on a new connection, and arrives once. */
static void test_exchange_retry_once(void **state)
{
    (void)state;
    fake_t *f = fake_start(NULL);
    f->hold_on_eof = true;
    struct webapi_client *c = webapi_client_new();
    assert_int_equal(exchange(c, f, true, 5).st, WEBAPI_ANSWERED);
    assert_int_equal(shutdown(webapi_test_conn_fd(c), SHUT_WR), 0);
    ex_t e = exchange(c, f, true, 5);
    assert_int_equal(e.st, WEBAPI_ANSWERED);
    assert_int_equal(e.status, 201);
    assert_int_equal(fake_count(f, &f->requests), 2);
    assert_int_equal(fake_count(f, &f->connections), 2);
    webapi_client_free(c);
    fake_stop(f);
}

/* The connection breaks while the request is being written (the server
 * reset it after a few KiB of a 16 MiB body: more than the sockets' buffers
 * hold): the server has an incomplete request it cannot act on, so it is
 * not sent (the caller may retry), not lost. */
static void test_exchange_partial_write(void **state)
{
    (void)state;
    fake_t *f = fake_start(NULL);
    f->reset_after = 4096;
    struct webapi_client *c = webapi_client_new();
    size_t big = 16u << 20;
    char *body = malloc(big);
    assert_non_null(body);
    memset(body, 'a', big);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", f->port);
    ex_t e = exchange_at(c, url, body, big, 10);
    assert_int_equal(e.st, WEBAPI_NOT_SENT);
    assert_int_equal(e.status, 0);
    assert_non_null(strstr(e.err, "broke while the request was sent"));
    assert_int_equal(fake_count(f, &f->requests), 0);
    assert_int_equal(fake_count(f, &f->connections), 1); /* not tried again in the call */
    assert_int_equal(webapi_test_conn_fd(c), -1);
    free(body);
    webapi_client_free(c);
    fake_stop(f);
}

/* The server had the request and no (complete) answer came: lost, never
 * sent again; the next request goes on a new connection. */
static void test_exchange_lost(void **state)
{
    (void)state;
    fake_t *f = fake_start(NULL);
    f->script[1] = ACT_DROP;
    f->script[2] = ACT_PARTIAL;
    f->script[3] = ACT_SILENT;
    struct webapi_client *c = webapi_client_new();
    assert_int_equal(exchange(c, f, true, 5).st, WEBAPI_ANSWERED);
    ex_t e = exchange(c, f, true, 5);
    assert_int_equal(e.st, WEBAPI_LOST);
    assert_int_equal(e.status, 0);
    assert_int_equal(fake_count(f, &f->requests), 2);
    e = exchange(c, f, true, 5);
    assert_int_equal(e.st, WEBAPI_LOST);
    assert_non_null(strstr(e.err, "closed before the answer was complete"));
    assert_int_equal(fake_count(f, &f->requests), 3);
    e = exchange(c, f, true, 1); /* silence: lost at the deadline */
    assert_int_equal(e.st, WEBAPI_LOST);
    assert_non_null(strstr(e.err, "timeout"));
    assert_int_equal(fake_count(f, &f->requests), 4);
    pthread_mutex_lock(&f->mu);
    f->stop = true; /* the silent one lets go */
    pthread_mutex_unlock(&f->mu);
    usleep(50 * 1000);
    pthread_mutex_lock(&f->mu);
    f->stop = false;
    pthread_mutex_unlock(&f->mu);
    e = exchange(c, f, true, 5);
    assert_int_equal(e.st, WEBAPI_ANSWERED);
    assert_int_equal(fake_count(f, &f->requests), 5);
    assert_int_equal(fake_count(f, &f->connections), 4);
    webapi_client_free(c);
    fake_stop(f);
}

/* The environment's proxies, as libcurl reads them. */
static const char *const proxy_vars[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                                         "all_proxy",  "ALL_PROXY",  "no_proxy",    "NO_PROXY"};

static void proxies_unset(void)
{
    for (size_t i = 0; i < sizeof(proxy_vars) / sizeof(proxy_vars[0]); i++)
        unsetenv(proxy_vars[i]);
}

/* An http:// URL through an HTTP proxy: the request goes to the proxy in
 * absolute form (as libcurl's own client sends it), not through a CONNECT
 * tunnel to port 80, which proxies commonly refuse; a host no_proxy names
 * is reached directly, with our exchange. The fake server plays the proxy. */
static void test_exchange_http_proxy(void **state)
{
    (void)state;
    fake_t *f = fake_start(NULL);
    struct webapi_client *c = webapi_client_new();
    char proxy[64], url[128];
    snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", f->port);
    const char *names[] = {"http_proxy", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        proxies_unset();
        setenv(names[i], proxy, 1);
        ex_t e = exchange_at(c, "http://api.example.test/2010-04-01/Messages.json", "To=1", 4, 5);
        assert_int_equal(e.st, WEBAPI_ANSWERED);
        assert_int_equal(e.status, 201);
        pthread_mutex_lock(&f->mu);
        if (strncmp(f->last, "POST http://api.example.test/2010-04-01/Messages.json HTTP/1.1\r\n",
                    60) != 0)
            fail_msg("%s: the proxy got: %.80s", names[i], f->last);
        pthread_mutex_unlock(&f->mu);
    }
    assert_int_equal(fake_count(f, &f->requests), 3);
    /* the fake serves one connection at a time: libcurl's kept one goes */
    webapi_client_free(c);
    c = webapi_client_new();
    /* no_proxy names the host (exactly, or as a domain for a name): direct */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/direct", f->port);
    const char *excluded[] = {"127.0.0.1", "example.test, 127.0.0.1", "*"};
    for (size_t i = 0; i < sizeof(excluded) / sizeof(excluded[0]); i++) {
        setenv("no_proxy", excluded[i], 1);
        assert_int_equal(exchange_at(c, url, "x", 1, 5).st, WEBAPI_ANSWERED);
        assert_true(webapi_test_conn_fd(c) >= 0); /* our exchange's connection */
        pthread_mutex_lock(&f->mu);
        if (strncmp(f->last, "POST /direct HTTP/1.1\r\n", 23) != 0)
            fail_msg("no_proxy=%s: the server got: %.80s", excluded[i], f->last);
        pthread_mutex_unlock(&f->mu);
    }
    proxies_unset();
    webapi_client_free(c);
    fake_stop(f);
}

/* No server: not sent (safe to retry). */
static void test_exchange_no_server(void **state)
{
    (void)state;
    fake_t *f = fake_start(NULL);
    struct webapi_client *c = webapi_client_new();
    assert_int_equal(exchange(c, f, true, 5).st, WEBAPI_ANSWERED);
    fake_t copy = *f;
    fake_stop(f); /* the port is closed now, and so is the kept connection */
    usleep(50 * 1000);
    ex_t e = exchange(c, &copy, true, 5);
    assert_int_equal(e.st, WEBAPI_NOT_SENT);
    assert_true(e.err[0] != '\0');
    webapi_client_free(c);
}

/* A key and a certificate for 127.0.0.1, the certificate its own CA. */
static char tls_dir[64];

/* The server's ALPN choice: h2 whenever the client offers it (as a real API
 * front does), else http/1.1; what it chose, for the test to read. */
static char alpn_chosen[16] = "";

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    static const char *const prefs[] = {"h2", "http/1.1"};
    for (size_t k = 0; k < 2; k++)
        for (unsigned i = 0; i < inlen; i += 1u + in[i])
            if (in[i] == strlen(prefs[k]) && i + 1u + in[i] <= inlen &&
                memcmp(in + i + 1, prefs[k], in[i]) == 0) {
                *out = in + i + 1;
                *outlen = in[i];
                snprintf(alpn_chosen, sizeof(alpn_chosen), "%s", prefs[k]);
                return SSL_TLSEXT_ERR_OK;
            }
    snprintf(alpn_chosen, sizeof(alpn_chosen), "none");
    return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *tls_server_ctx(void)
{
    snprintf(tls_dir, sizeof(tls_dir), "/tmp/cd-webapi-tls-XXXXXX");
    assert_non_null(mkdtemp(tls_dir));
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 -days 1 -keyout %s/key.pem -out %s/cert.pem "
             ">/dev/null 2>&1",
             tls_dir, tls_dir);
    assert_int_equal(system(cmd), 0);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(ctx);
    char path[128];
    snprintf(path, sizeof(path), "%s/cert.pem", tls_dir);
    assert_int_equal(SSL_CTX_use_certificate_file(ctx, path, SSL_FILETYPE_PEM), 1);
    snprintf(path, sizeof(path), "%s/key.pem", tls_dir);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM), 1);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    return ctx;
}

/* https: libcurl's TLS with its certificate check, our exchange on it
 * (kept alive, a chunked answer, a server that closes, a lost answer). */
static void test_exchange_tls(void **state)
{
    (void)state;
    SSL_CTX *ctx = tls_server_ctx();
    fake_t *f = fake_start(ctx);
    f->script[1] = ACT_CHUNKED;
    f->script[2] = ACT_IDLE_CLOSE;
    f->script[4] = ACT_DROP;
    struct webapi_client *c = webapi_client_new();
    /* not trusted yet: no connection, nothing sent */
    ex_t e = exchange(c, f, true, 5);
    assert_int_equal(e.st, WEBAPI_NOT_SENT);
    assert_int_equal(fake_count(f, &f->requests), 0);
    char ca[128];
    snprintf(ca, sizeof(ca), "%s/cert.pem", tls_dir);
    curlconn_test_set_cainfo(ca);
    for (int i = 0; i < 4; i++) {
        e = exchange(c, f, i != 1, 5);
        assert_int_equal(e.st, WEBAPI_ANSWERED);
        assert_int_equal(e.status, 201);
        assert_string_equal(e.body, answer_body);
        /* our exchange speaks HTTP/1.1: never let the server pick h2 */
        assert_string_not_equal(alpn_chosen, "h2");
        if (i == 2)
            wait_server_close(c);
    }
    e = exchange(c, f, true, 5);
    assert_int_equal(e.st, WEBAPI_LOST);
    assert_int_equal(fake_count(f, &f->requests), 5);
    /* first (refused) + 0..2 + 3 (after the idle close) + 4 */
    assert_int_equal(fake_count(f, &f->connections), 3);
    curlconn_test_set_cainfo(NULL);
    webapi_client_free(c);
    fake_stop(f);
    SSL_CTX_free(ctx);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tls_dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* the server's writes to a closed peer */
    proxies_unset();          /* the exchanges here go to 127.0.0.1 directly */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_failure),
        cmocka_unit_test(test_write_buf),
        cmocka_unit_test(test_account_open),
        cmocka_unit_test(test_perform),
        cmocka_unit_test(test_parse_lengths),
        cmocka_unit_test(test_parse_connection),
        cmocka_unit_test(test_parse_close_delimited),
        cmocka_unit_test(test_parse_chunked),
        cmocka_unit_test(test_parse_interim),
        cmocka_unit_test(test_parse_refused),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_exchange_keep_alive),
        cmocka_unit_test(test_exchange_server_closes),
        cmocka_unit_test(test_exchange_keep_alive_timeout),
        cmocka_unit_test(test_exchange_idle_limit),
        cmocka_unit_test(test_exchange_retry_once),
        cmocka_unit_test(test_exchange_partial_write),
        cmocka_unit_test(test_exchange_http_proxy),
        cmocka_unit_test(test_exchange_lost),
        cmocka_unit_test(test_exchange_no_server),
        cmocka_unit_test(test_exchange_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
