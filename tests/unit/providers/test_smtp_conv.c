/* Unit tests for the send engine's SMTP conversation (providers/smtp.c):
 * the reply parser, dot-stuffing, and the conversation against a scripted
 * server in a thread: RFC 2920 pipelining when advertised (one write for a
 * message's envelope and the previous message's data), one command at a
 * time when not, refusals, a connection broken before and after the
 * server's 354, a connection the server closed while it waited. */
#include <arpa/inet.h>
#include <netinet/in.h>
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
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "providers/curlconn.h"
#include "providers/provider.h"
#include "providers/smtp.h"

static void test_reply_parse(void **state)
{
    (void)state;
    int code = 0;
    assert_int_equal(smtp_reply_parse("250 OK\r\n", 8, &code), 8);
    assert_int_equal(code, 250);
    assert_int_equal(smtp_reply_parse("354\r\n", 5, &code), 5);
    assert_int_equal(code, 354);
    const char *multi = "250-a\r\n250-PIPELINING\r\n250 HELP\r\n550 next\r\n";
    assert_int_equal(smtp_reply_parse(multi, strlen(multi), &code), 33);
    assert_int_equal(code, 250);
    assert_int_equal(smtp_reply_parse("250 OK\n", 7, &code), 7); /* bare LF */
    assert_int_equal(smtp_reply_parse("250 O", 5, &code), 0);
    assert_int_equal(smtp_reply_parse("250-a\r\n250 b", 12, &code), 0);
    assert_int_equal(smtp_reply_parse("", 0, &code), 0);
    assert_int_equal(smtp_reply_parse("HTTP/1.1 200\r\n", 14, &code), -1);
    assert_int_equal(smtp_reply_parse("199 x\r\n", 7, &code), -1);
    assert_int_equal(smtp_reply_parse("25\r\n", 4, &code), -1);
    assert_int_equal(smtp_reply_parse("250xOK\r\n", 8, &code), -1);
    assert_int_equal(smtp_reply_parse("250-a\r\n354 b\r\n", 14, &code), -1);
    char big[SMTP_REPLY_LINE_MAX + 10];
    memset(big, 'a', sizeof(big));
    memcpy(big, "250 ", 4);
    assert_int_equal(smtp_reply_parse(big, sizeof(big), &code), -1);
}

static void stuffed(const char *in, const char *want)
{
    cd_buf_t out;
    cd_buf_init(&out, 1024);
    assert_true(smtp_dot_stuff(&out, in, strlen(in)));
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);
    cd_buf_free(&out);
}

static void test_dot_stuff(void **state)
{
    (void)state;
    stuffed("a\r\nb\r\n", "a\r\nb\r\n.\r\n");
    stuffed(".a\r\n..b\r\nc.\r\n.\r\n", "..a\r\n...b\r\nc.\r\n..\r\n.\r\n");
    stuffed("no end", "no end\r\n.\r\n");
    stuffed("", ".\r\n");
}

/* ------------------------------------------------ the scripted server */

typedef struct fake {
    int lfd, port;
    bool pipelining;
    pthread_t th;
    pthread_mutex_t mu;
    int cfd;             /* the current connection, -1 none */
    int connections;     /* accepted so far */
    int accepted;        /* messages taken */
    int pipelined_reads; /* reads that held MAIL FROM and DATA together */
    SSL_CTX *tls;        /* offers STARTTLS when set */
    bool implicit;       /* with tls: TLS from the start (smtps://) */
    bool auth;           /* offers AUTH PLAIN (user "user", password "pass") and requires it */
    int logins;          /* AUTH PLAIN accepted */
    int tls_sessions;    /* STARTTLS handshakes done */
    bool refuse;         /* greets every connection with 421 and closes it */
    char last_data[8192];
} fake_t;

typedef struct io {
    int fd;
    SSL *ssl;
} io_t;

static ssize_t io_recv(io_t *io, char *p, size_t n)
{
    return io->ssl ? SSL_read(io->ssl, p, (int)n) : recv(io->fd, p, n, 0);
}

static bool sendall(io_t *io, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = io->ssl ? SSL_write(io->ssl, s, (int)n) : send(io->fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        s += w;
        n -= (size_t)w;
    }
    return true;
}

/* One connection: line by line from a buffer, so pipelined commands are
 * served in order. Recipients: "reject..." 550, "later..." 451,
 * "drop..." the connection closes at the end of its data (no reply). */
static void serve(fake_t *f, io_t *io)
{
    char buf[65536];
    size_t len = 0;
    bool data = false, drop = false, authed = false, auth_wait = false, silent = false;
    int rcpts = 0;
    size_t dlen = 0;
    char dbuf[8192];
    pthread_mutex_lock(&f->mu);
    bool refuse = f->refuse;
    pthread_mutex_unlock(&f->mu);
    if (refuse) {
        sendall(io, "421 4.3.2 service not available\r\n");
        return;
    }
    if (!sendall(io, "220 fake ESMTP\r\n"))
        return;
    for (;;) {
        ssize_t r = io_recv(io, buf + len, sizeof(buf) - len - 1);
        if (r <= 0)
            return;
        buf[len + (size_t)r] = '\0';
        if (strstr(buf + len, "MAIL FROM") && strstr(buf + len, "DATA\r\n")) {
            pthread_mutex_lock(&f->mu);
            f->pipelined_reads++;
            pthread_mutex_unlock(&f->mu);
        }
        len += (size_t)r;
        char *nl;
        while ((nl = memchr(buf, '\n', len))) {
            size_t ll = (size_t)(nl - buf) + 1;
            char line[65536];
            memcpy(line, buf, ll);
            line[ll] = '\0';
            memmove(buf, buf + ll, len - ll);
            len -= ll;
            buf[len] = '\0';
            const char *reply = NULL;
            if (silent) /* a server that stopped answering: reads, never replies */
                continue;
            if (auth_wait) {
                auth_wait = false;
                authed = strcmp(line, "AHVzZXIAcGFzcw==\r\n") == 0; /* "\0user\0pass" */
                if (authed) {
                    pthread_mutex_lock(&f->mu);
                    f->logins++;
                    pthread_mutex_unlock(&f->mu);
                }
                reply = authed ? "235 2.7.0 ok\r\n" : "535 5.7.8 bad credentials\r\n";
            } else if (strncmp(line, "AUTH PLAIN", 10) == 0 && f->auth) {
                if (strlen(line) > 12) { /* the initial response on the same line */
                    authed = strcmp(line + 11, "AHVzZXIAcGFzcw==\r\n") == 0;
                    pthread_mutex_lock(&f->mu);
                    f->logins += authed;
                    pthread_mutex_unlock(&f->mu);
                    reply = authed ? "235 2.7.0 ok\r\n" : "535 5.7.8 bad credentials\r\n";
                } else {
                    auth_wait = true;
                    reply = "334 \r\n";
                }
            } else if (f->auth && !authed && strncmp(line, "MAIL FROM:", 10) == 0) {
                reply = "530 5.7.0 authentication required\r\n";
            } else if (data) {
                if (strcmp(line, ".\r\n") == 0) {
                    data = false;
                    if (drop)
                        return;
                    pthread_mutex_lock(&f->mu);
                    f->accepted++;
                    memcpy(f->last_data, dbuf, dlen);
                    f->last_data[dlen] = '\0';
                    pthread_mutex_unlock(&f->mu);
                    reply = "250 accepted\r\n";
                } else {
                    const char *p = line[0] == '.' ? line + 1 : line; /* unstuff */
                    size_t pl = strlen(p);
                    if (dlen + pl < sizeof(dbuf) - 1) {
                        memcpy(dbuf + dlen, p, pl);
                        dlen += pl;
                    }
                    continue;
                }
            } else if (strncmp(line, "EHLO", 4) == 0) {
                if (f->tls && !io->ssl && !sendall(io, "250-STARTTLS\r\n"))
                    return;
                if (f->auth && !sendall(io, "250-AUTH PLAIN\r\n"))
                    return;
                reply = f->pipelining ? "250-fake\r\n250-PIPELINING\r\n250 HELP\r\n"
                                      : "250-fake\r\n250 HELP\r\n";
            } else if (strncmp(line, "STARTTLS", 8) == 0 && f->tls && !io->ssl) {
                if (!sendall(io, "220 go ahead\r\n"))
                    return;
                io->ssl = SSL_new(f->tls);
                SSL_set_fd(io->ssl, io->fd);
                if (SSL_accept(io->ssl) != 1)
                    return;
                pthread_mutex_lock(&f->mu);
                f->tls_sessions++;
                pthread_mutex_unlock(&f->mu);
                len = 0; /* RFC 3207: nothing from before the handshake counts */
                continue;
            } else if (strncmp(line, "MAIL FROM:", 10) == 0) {
                rcpts = 0;
                drop = false;
                reply = "250 OK\r\n";
            } else if (strncmp(line, "RCPT TO:<reject", 15) == 0) {
                reply = "550 5.1.1 no such user\r\n";
            } else if (strncmp(line, "RCPT TO:<multi", 14) == 0) {
                rcpts++;
                reply = "250-recipient\r\n250-accepted\r\n250 over lines\r\n";
            } else if (strncmp(line, "RCPT TO:<silent", 15) == 0) {
                silent = true;
                continue;
            } else if (strncmp(line, "RCPT TO:<latin1", 15) == 0) {
                reply = "550 5.1.1 Empf\xe4nger unbekannt\r\n"; /* Latin-1, not UTF-8 */
            } else if (strncmp(line, "RCPT TO:<later", 14) == 0) {
                reply = "451 4.3.0 try later\r\n";
            } else if (strncmp(line, "RCPT TO:", 8) == 0) {
                rcpts++;
                drop = strncmp(line, "RCPT TO:<drop", 13) == 0;
                reply = "250 OK\r\n";
            } else if (strncmp(line, "DATA", 4) == 0) {
                if (rcpts == 0) {
                    reply = "554 no valid recipients\r\n";
                } else {
                    data = true;
                    dlen = 0;
                    reply = "354 go ahead\r\n";
                }
            } else if (strncmp(line, "RSET", 4) == 0) {
                rcpts = 0;
                reply = "250 OK\r\n";
            } else if (strncmp(line, "QUIT", 4) == 0) {
                sendall(io, "221 bye\r\n");
                return;
            } else {
                reply = "500 what\r\n";
            }
            if (!sendall(io, reply))
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
        if (f->implicit) {
            io.ssl = SSL_new(f->tls);
            SSL_set_fd(io.ssl, fd);
            if (SSL_accept(io.ssl) == 1) {
                pthread_mutex_lock(&f->mu);
                f->tls_sessions++;
                pthread_mutex_unlock(&f->mu);
                serve(f, &io);
            }
        } else {
            serve(f, &io);
        }
        if (io.ssl)
            SSL_free(io.ssl);
        pthread_mutex_lock(&f->mu);
        if (f->cfd == fd)
            f->cfd = -1;
        pthread_mutex_unlock(&f->mu);
        close(fd);
    }
}

static fake_t *fake_start(bool pipelining)
{
    fake_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->pipelining = pipelining;
    f->cfd = -1;
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

/* The server closes the connection it holds (an idle timeout). */
static void fake_drop(fake_t *f)
{
    pthread_mutex_lock(&f->mu);
    if (f->cfd >= 0)
        shutdown(f->cfd, SHUT_RDWR);
    pthread_mutex_unlock(&f->mu);
    usleep(50 * 1000);
}

static void fake_stop(fake_t *f)
{
    shutdown(f->lfd, SHUT_RDWR);
    fake_drop(f);
    pthread_join(f->th, NULL);
    close(f->lfd);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static email_provider_t *open_provider_timeout(const fake_t *f, const char *login, int timeout)
{
    char url[128], err[256];
    snprintf(url, sizeof(url), "%s://%s127.0.0.1:%d", f->implicit ? "smtps" : "smtp", login,
             f->port);
    provider_settings_t s = {.smtp_url = url, .timeout_seconds = timeout};
    email_provider_t *p = smtp_provider_open(&s, err, sizeof(err));
    assert_non_null(p);
    return p;
}

/* A provider for smtp://<login><host>:<port>, host reaching f through
 * libcurl's CONNECT_TO (as if the server were elsewhere). */
static email_provider_t *open_provider_named(const fake_t *f, const char *login, const char *host,
                                             struct curl_slist **connect_to)
{
    char url[160], map[160], err[256];
    snprintf(map, sizeof(map), "%s:%d:127.0.0.1:%d", host, f->port, f->port);
    *connect_to = curl_slist_append(NULL, map);
    assert_non_null(*connect_to);
    smtp_test_set_connect_to(*connect_to);
    snprintf(url, sizeof(url), "smtp://%s%s:%d", login, host, f->port);
    provider_settings_t s = {.smtp_url = url, .timeout_seconds = 5};
    email_provider_t *p = smtp_provider_open(&s, err, sizeof(err));
    assert_non_null(p);
    return p;
}

/* Undoes open_provider_named's CONNECT_TO. */
static void connect_to_done(struct curl_slist *map)
{
    smtp_test_set_connect_to(NULL);
    curl_slist_free_all(map);
}

static email_provider_t *open_provider_as(const fake_t *f, const char *login)
{
    return open_provider_timeout(f, login, 5);
}

static email_provider_t *open_provider(const fake_t *f)
{
    return open_provider_as(f, "");
}

static void send_to(email_provider_t *p, const char *const *to, size_t n,
                    provider_email_result_t *res)
{
    provider_email_t m[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++)
        m[i] = (provider_email_t){.from = "news@example.org",
                                  .to = to[i],
                                  .subject = "Hello",
                                  .text = "Hi.\n.\nBye",
                                  .html = "<p>Hi</p>"};
    p->ops->send_batch(p, m, n, res);
}

static void refusals(bool pipelining)
{
    fake_t *f = fake_start(pipelining);
    email_provider_t *p = open_provider(f);
    const char *to[] = {"a@x.test",     "reject@x.test", "later@x.test", "no-at-sign",
                        "multi@x.test", "b@x.test",      "latin1@x.test"};
    provider_email_result_t res[7];
    send_to(p, to, 7, res);
    assert_int_equal(res[0].outcome, PROVIDER_ACCEPTED);
    assert_non_null(strchr(res[0].provider_id, '@'));
    assert_int_equal(res[1].outcome, PROVIDER_PERMFAIL);
    assert_non_null(strstr(res[1].error, "RCPT TO: 550 5.1.1 no such user"));
    assert_int_equal(res[2].outcome, PROVIDER_TEMPFAIL);
    assert_non_null(strstr(res[2].error, "451"));
    assert_int_equal(res[3].outcome, PROVIDER_PERMFAIL); /* never formatted */
    assert_int_equal(res[4].outcome, PROVIDER_ACCEPTED); /* a multi-line reply */
    assert_int_equal(res[5].outcome, PROVIDER_ACCEPTED);
    /* a reply's non-ASCII bytes become '?': the result's JSON must be UTF-8 */
    assert_int_equal(res[6].outcome, PROVIDER_PERMFAIL);
    assert_non_null(strstr(res[6].error, "RCPT TO: 550 5.1.1 Empf?nger unbekannt"));
    p->ops->close(p);
    assert_int_equal(f->accepted, 3);
    assert_int_equal(f->connections, 1);
    if (pipelining)
        assert_true(f->pipelined_reads >= 1);
    else
        assert_int_equal(f->pipelined_reads, 0);
    /* the body arrived as formatted: headers, base64 parts, unstuffed */
    assert_non_null(strstr(f->last_data, "\r\nTo: <b@x.test>\r\n"));
    assert_non_null(strstr(f->last_data, "Content-Type: text/html"));
    fake_stop(f);
}

static void test_pipelined(void **state)
{
    (void)state;
    refusals(true);
}

static void test_one_at_a_time(void **state)
{
    (void)state;
    refusals(false);
}

/* A server that stops answering mid-envelope: the message fails temporarily
 * at the deadline (nothing of its text was sent: it is retried later), the
 * worker is not held for ever, and the next message goes out once on a new
 * connection. */
static void silent(bool pipelining)
{
    fake_t *f = fake_start(pipelining);
    email_provider_t *p = open_provider_timeout(f, "", 1);
    const char *to[] = {"silent@x.test", "b@x.test"};
    provider_email_result_t res[2];
    send_to(p, to, 2, res);
    assert_int_equal(res[0].outcome, PROVIDER_TEMPFAIL);
    assert_int_equal(res[1].outcome, PROVIDER_ACCEPTED);
    p->ops->close(p);
    assert_int_equal(f->accepted, 1);
    assert_int_equal(f->connections, 2);
    fake_stop(f);
}

static void test_silent_pipelined(void **state)
{
    (void)state;
    silent(true);
}

static void test_silent_one_at_a_time(void **state)
{
    (void)state;
    silent(false);
}

/* A relay that refuses the connection refuses it for the whole group: the
 * rest of the group fails at once with the same temporary error instead of
 * each message waiting for its own refusal (or timeout) in turn. */
static void test_refused_group(void **state)
{
    (void)state;
    fake_t *f = fake_start(true);
    pthread_mutex_lock(&f->mu);
    f->refuse = true;
    pthread_mutex_unlock(&f->mu);
    email_provider_t *p = open_provider(f);
    const char *to[] = {"a@x.test", "b@x.test", "c@x.test"};
    provider_email_result_t res[3];
    send_to(p, to, 3, res);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(res[i].outcome, PROVIDER_TEMPFAIL);
        assert_string_equal(res[i].error, res[0].error);
    }
    assert_non_null(strstr(res[0].error, "SMTP delivery failed"));
    pthread_mutex_lock(&f->mu);
    int connections = f->connections;
    pthread_mutex_unlock(&f->mu);
    assert_int_equal(connections, 1);
    p->ops->close(p);
    fake_stop(f);
}

/* A connection broken after the server's 354 may have delivered: unknown,
 * and the next message goes on a new connection. */
static void test_broken_after_data(void **state)
{
    (void)state;
    for (int pl = 0; pl < 2; pl++) {
        fake_t *f = fake_start(pl == 1);
        email_provider_t *p = open_provider(f);
        const char *to[] = {"a@x.test", "drop@x.test", "b@x.test"};
        provider_email_result_t res[3];
        send_to(p, to, 3, res);
        assert_int_equal(res[0].outcome, PROVIDER_ACCEPTED);
        assert_int_equal(res[1].outcome, PROVIDER_UNKNOWN);
        assert_int_equal(res[2].outcome, PROVIDER_ACCEPTED);
        p->ops->close(p);
        assert_int_equal(f->accepted, 2);
        assert_int_equal(f->connections, 2);
        fake_stop(f);
    }
}

/* The server closed the connection while it waited between two batches:
 * nothing of the next message reached it, so it goes on a new one. */
static void test_idle_close(void **state)
{
    (void)state;
    fake_t *f = fake_start(true);
    email_provider_t *p = open_provider(f);
    const char *to[] = {"a@x.test", "b@x.test"};
    provider_email_result_t res[2];
    send_to(p, to, 2, res);
    assert_int_equal(res[1].outcome, PROVIDER_ACCEPTED);
    fake_drop(f);
    send_to(p, to, 2, res);
    assert_int_equal(res[0].outcome, PROVIDER_ACCEPTED);
    assert_int_equal(res[1].outcome, PROVIDER_ACCEPTED);
    p->ops->close(p);
    assert_int_equal(f->accepted, 4);
    assert_int_equal(f->connections, 2);
    fake_stop(f);
}

/* No server: a temporary failure for every message, nothing unknown. */
static void test_no_server(void **state)
{
    (void)state;
    fake_t *f = fake_start(true);
    email_provider_t *p = open_provider(f);
    fake_stop(f); /* the port is closed now */
    const char *to[] = {"a@x.test", "b@x.test"};
    provider_email_result_t res[2];
    send_to(p, to, 2, res);
    assert_int_equal(res[0].outcome, PROVIDER_TEMPFAIL);
    assert_int_equal(res[1].outcome, PROVIDER_TEMPFAIL);
    assert_non_null(strstr(res[0].error, "SMTP delivery failed"));
    p->ops->close(p);
}

/* A key and a certificate for 127.0.0.1 (openssl's command line), the
 * certificate being its own CA. */
static char tls_dir[64], tls_ca[128];

static SSL_CTX *tls_server_ctx(void)
{
    snprintf(tls_dir, sizeof(tls_dir), "/tmp/cd-smtp-tls-XXXXXX");
    assert_non_null(mkdtemp(tls_dir));
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1,DNS:mail.example.test -days 1 -keyout %s/key.pem "
             "-out %s/cert.pem "
             ">/dev/null 2>&1",
             tls_dir, tls_dir);
    assert_int_equal(system(cmd), 0);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(ctx);
    char path[128];
    snprintf(path, sizeof(path), "%s/cert.pem", tls_dir);
    assert_int_equal(SSL_CTX_use_certificate_file(ctx, path, SSL_FILETYPE_PEM), 1);
    snprintf(tls_ca, sizeof(tls_ca), "%s", path);
    curlconn_test_set_cainfo(tls_ca);
    snprintf(path, sizeof(path), "%s/key.pem", tls_dir);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM), 1);
    return ctx;
}

/* Frees tls_server_ctx's context and removes its key and certificate. */
static void tls_server_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tls_dir);
    assert_int_equal(system(cmd), 0);
}

/* The same conversation over libcurl's TLS (STARTTLS or smtps://),
 * pipelined, with a refusal, a break after the 354 and an idle close. */
static void tls_conversation(bool implicit)
{
    SSL_CTX *ctx = tls_server_ctx();
    fake_t *f = fake_start(true);
    f->tls = ctx;
    f->implicit = implicit;
    email_provider_t *p = open_provider(f);
    const char *to[] = {"a@x.test", "reject@x.test", "b@x.test", "drop@x.test", "c@x.test"};
    provider_email_result_t res[5];
    send_to(p, to, 5, res);
    assert_int_equal(res[0].outcome, PROVIDER_ACCEPTED);
    assert_int_equal(res[1].outcome, PROVIDER_PERMFAIL);
    assert_int_equal(res[2].outcome, PROVIDER_ACCEPTED);
    assert_int_equal(res[3].outcome, PROVIDER_UNKNOWN);
    assert_int_equal(res[4].outcome, PROVIDER_ACCEPTED);
    fake_drop(f);
    send_to(p, to, 1, res);
    assert_int_equal(res[0].outcome, PROVIDER_ACCEPTED);
    p->ops->close(p);
    assert_int_equal(f->accepted, 4);
    assert_int_equal(f->connections, 3);
    assert_int_equal(f->tls_sessions, 3);
    assert_true(f->pipelined_reads >= 1);
    assert_non_null(strstr(f->last_data, "\r\nTo: <a@x.test>\r\n"));
    fake_stop(f);
    tls_server_free(ctx);
}

static void test_starttls(void **state)
{
    (void)state;
    tls_conversation(false);
}

/* smtps://: TLS from the start, the same conversation. */
static void test_implicit_tls(void **state)
{
    (void)state;
    tls_conversation(true);
}

/* AUTH from the URL's user and password: libcurl logs in before our
 * transactions; a wrong password is a temporary failure, nothing sent. */
static void test_auth(void **state)
{
    (void)state;
    fake_t *f = fake_start(true);
    f->auth = true;
    email_provider_t *p = open_provider_as(f, "user:pass@");
    const char *to[] = {"a@x.test", "b@x.test"};
    provider_email_result_t res[2];
    send_to(p, to, 2, res);
    assert_int_equal(res[0].outcome, PROVIDER_ACCEPTED);
    assert_int_equal(res[1].outcome, PROVIDER_ACCEPTED);
    p->ops->close(p);
    assert_int_equal(f->logins, 1);
    assert_int_equal(f->accepted, 2);
    p = open_provider_as(f, "user:wrong@");
    send_to(p, to, 1, res);
    assert_int_equal(res[0].outcome, PROVIDER_TEMPFAIL);
    assert_null(strstr(res[0].error, "wrong"));
    p->ops->close(p);
    assert_int_equal(f->accepted, 2);
    fake_stop(f);
}

/* When the password needs TLS: libcurl's reading of the URL, the host as
 * written (a name that only looks local is not). */
static void test_tls_policy(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        long policy;
    } cases[] = {
        {"smtp://user:pass@mail.example.org:587", CURLUSESSL_ALL},
        {"smtp://user@mail.example.org", CURLUSESSL_ALL},
        {"smtp://:pass@mail.example.org", CURLUSESSL_ALL},
        {"smtps://user:pass@mail.example.org:465", CURLUSESSL_ALL},
        {"smtp://user:pass@128.0.0.1:25", CURLUSESSL_ALL},
        {"smtp://user:pass@localhost.evil.example:25", CURLUSESSL_ALL},
        {"smtp://user:pass@127.0.0.1.evil.example:25", CURLUSESSL_ALL},
        {"smtp://user:pass@[::2]:25", CURLUSESSL_ALL},
        {"not a url", CURLUSESSL_ALL},
        {"smtp://mail.example.org:25", CURLUSESSL_TRY},
        {"smtp://user:pass@127.0.0.1:2525", CURLUSESSL_TRY},
        {"smtp://user:pass@127.5.6.7:2525", CURLUSESSL_TRY},
        {"smtp://user:pass@localhost:25", CURLUSESSL_TRY},
        {"smtp://user:pass@LOCALHOST:25", CURLUSESSL_TRY},
        {"smtp://user:pass@[::1]:25", CURLUSESSL_TRY},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (smtp_tls_policy(cases[i].url) != cases[i].policy)
            fail_msg("%s: expected %ld", cases[i].url, cases[i].policy);
    }
}

/* A server elsewhere that offers no STARTTLS (or a man in the middle who
 * strips it from the EHLO reply): the password is never sent, the message
 * is not sent, and the error says what to do. */
static void test_password_needs_tls(void **state)
{
    (void)state;
    fake_t *f = fake_start(true);
    f->auth = true;
    struct curl_slist *map;
    email_provider_t *p = open_provider_named(f, "user:pass@", "mail.example.test", &map);
    const char *to[] = {"a@x.test"};
    provider_email_result_t res[1];
    send_to(p, to, 1, res);
    assert_int_equal(res[0].outcome, PROVIDER_TEMPFAIL);
    assert_non_null(strstr(res[0].error, "does not offer STARTTLS"));
    assert_null(strstr(res[0].error, "user:pass"));
    p->ops->close(p);
    assert_true(f->connections >= 1); /* it did reach the server */
    assert_int_equal(f->logins, 0);
    assert_int_equal(f->accepted, 0);
    connect_to_done(map);
    fake_stop(f);
}

/* The same server with STARTTLS: the password goes, over TLS. */
static void test_password_over_starttls(void **state)
{
    (void)state;
    SSL_CTX *ctx = tls_server_ctx();
    fake_t *f = fake_start(true);
    f->tls = ctx;
    f->auth = true;
    struct curl_slist *map;
    email_provider_t *p = open_provider_named(f, "user:pass@", "mail.example.test", &map);
    const char *to[] = {"a@x.test"};
    provider_email_result_t res[1];
    send_to(p, to, 1, res);
    assert_int_equal(res[0].outcome, PROVIDER_ACCEPTED);
    p->ops->close(p);
    assert_int_equal(f->tls_sessions, 1);
    assert_int_equal(f->logins, 1);
    assert_int_equal(f->accepted, 1);
    connect_to_done(map);
    fake_stop(f);
    tls_server_free(ctx);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* the server's SSL_write to a closed peer */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_parse),
        cmocka_unit_test(test_dot_stuff),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_one_at_a_time),
        cmocka_unit_test(test_silent_pipelined),
        cmocka_unit_test(test_silent_one_at_a_time),
        cmocka_unit_test(test_refused_group),
        cmocka_unit_test(test_broken_after_data),
        cmocka_unit_test(test_idle_close),
        cmocka_unit_test(test_no_server),
        cmocka_unit_test(test_starttls),
        cmocka_unit_test(test_implicit_tls),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_tls_policy),
        cmocka_unit_test(test_password_needs_tls),
        cmocka_unit_test(test_password_over_starttls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
