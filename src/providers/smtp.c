/*
 * The SMTP provider (smtp.h): RFC 5322 messages and their delivery. Auth's
 * mails (smtp_send) go through libcurl's SMTP client, which does the
 * protocol, STARTTLS, TLS and AUTH; the send engine's batches through our own
 * transactions on a connection libcurl opened (below: pipelined when the
 * server allows). The message text is hand-written: libcurl's MIME API builds
 * bodies but neither RFC 2047 display names nor Message-ID and Date in the
 * form we want, and the message must be testable without a server.
 */
#include <curl/curl.h>
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "providers/curlconn.h"
#include "providers/smtp.h"

bool smtp_address_ok(const char *s)
{
    if (!s)
        return false;
    size_t n = strlen(s);
    if (n < 3 || n > 254)
        return false;
    const char *at = strchr(s, '@');
    if (!at || at == s || !at[1] || strchr(at + 1, '@'))
        return false;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= ' ' || c >= 0x7f || strchr("<>\"(),;:\\[]", c))
            return false;
    }
    return true;
}

static bool is_plain_ascii(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < ' ' || *p >= 0x7f)
            return false;
    return true;
}

/* Appends base64 of n bytes, no line breaks. */
static bool add_b64(cd_buf_t *out, const unsigned char *p, size_t n)
{
    unsigned char tmp[4 * 48 / 3 + 1];
    while (n > 0) {
        size_t k = n > 48 ? 48 : n;
        int w = EVP_EncodeBlock(tmp, p, (int)k);
        if (w < 0 || !cd_buf_add(out, tmp, (size_t)w))
            return false;
        p += k;
        n -= k;
    }
    return true;
}

/* Appends s as encoded words, whatever it holds. */
static bool encode_words(cd_buf_t *out, const char *s)
{
    /* 45 bytes of text give 60 base64 characters: with "=?UTF-8?B?" and "?="
     * a word is 72 characters. Cut before a UTF-8 continuation byte. Control
     * characters (CR, LF) are replaced by spaces, never passed through. */
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    bool first = true;
    while (n > 0) {
        size_t k = n > 45 ? 45 : n;
        while (k < n && k > 1 && (p[k] & 0xC0) == 0x80)
            k--;
        unsigned char chunk[45];
        for (size_t i = 0; i < k; i++)
            chunk[i] = p[i] < ' ' ? ' ' : p[i];
        if (!cd_buf_adds(out, first ? "=?UTF-8?B?" : "\r\n =?UTF-8?B?") ||
            !add_b64(out, chunk, k) || !cd_buf_adds(out, "?="))
            return false;
        first = false;
        p += k;
        n -= k;
    }
    return true;
}

bool smtp_encode_header(cd_buf_t *out, const char *s)
{
    return is_plain_ascii(s) ? cd_buf_adds(out, s) : encode_words(out, s);
}

/* Appends n bytes as base64 in lines of 76 characters (57 bytes a line). */
static bool add_b64_lines(cd_buf_t *out, const unsigned char *p, size_t n)
{
    while (n > 0) {
        size_t k = n > 57 ? 57 : n;
        if (!add_b64(out, p, k) || !cd_buf_adds(out, "\r\n"))
            return false;
        p += k;
        n -= k;
    }
    return true;
}

/* A body part: base64 in lines of 76, so any UTF-8 and any line length pass.
 * boundary NULL: the message's only part (its headers end the message's). */
static bool add_part(cd_buf_t *out, const char *boundary, const char *type, const char *body)
{
    if (boundary && !cd_buf_printf(out, "--%s\r\n", boundary))
        return false;
    if (!cd_buf_printf(out,
                       "Content-Type: %s; charset=UTF-8\r\n"
                       "Content-Transfer-Encoding: base64\r\n\r\n",
                       type))
        return false;
    return add_b64_lines(out, (const unsigned char *)body, strlen(body));
}

/* The text (and HTML) body; with boundary it is a part of a multipart/mixed. */
static bool add_body(cd_buf_t *out, const smtp_message_t *m, const char *boundary,
                     const char *alt_boundary)
{
    if (!m->html)
        return add_part(out, boundary, "text/plain", m->text ? m->text : "");
    if (boundary && !cd_buf_printf(out, "--%s\r\n", boundary))
        return false;
    return cd_buf_printf(out, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n",
                         alt_boundary) &&
           (boundary || cd_buf_adds(out, "This is a message in MIME format.\r\n")) &&
           add_part(out, alt_boundary, "text/plain", m->text ? m->text : "") &&
           add_part(out, alt_boundary, "text/html", m->html) &&
           cd_buf_printf(out, "--%s--\r\n", alt_boundary);
}

/* A MIME type safe to copy into a header: type "/" subtype of token
 * characters (RFC 2045), at most 100 characters. */
static bool mime_type_ok(const char *t)
{
    if (!t || !*t || strlen(t) > 100)
        return false;
    int slashes = 0;
    for (const char *p = t; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '/')
            slashes++;
        else if (c <= ' ' || c >= 0x7f || strchr("()<>@,;:\\\"[]?=", c))
            return false;
    }
    return slashes == 1 && t[0] != '/' && t[strlen(t) - 1] != '/';
}

/* Whether a file name may go into a quoted-string as it is. */
static bool plain_filename(const char *s)
{
    return is_plain_ascii(s) && !strpbrk(s, "\"\\") && strlen(s) <= 60;
}

bool smtp_encode_filename_2231(cd_buf_t *out, const char *name)
{
    /* RFC 2231: charset''value, every byte outside attr-char percent-encoded */
    if (!cd_buf_adds(out, "UTF-8''"))
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        bool keep = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= '0' && *p <= '9') || strchr("!#$&+-.^_`|~", *p);
        if (!(keep ? cd_buf_add(out, p, 1) : cd_buf_printf(out, "%%%02X", *p)))
            return false;
    }
    return true;
}

/* The attachment part of a multipart/mixed message. */
static bool add_attachment(cd_buf_t *out, const smtp_message_t *m, const char *boundary)
{
    const char *name =
        m->attachment_name && *m->attachment_name ? m->attachment_name : "attachment";
    const char *type =
        mime_type_ok(m->attachment_type) ? m->attachment_type : "application/octet-stream";
    bool ok = cd_buf_printf(out, "--%s\r\nContent-Type: %s; name=\"", boundary, type);
    if (ok && plain_filename(name)) {
        ok = cd_buf_printf(out, "%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\n",
                           name, name);
    } else if (ok) {
        /* RFC 2047 words in name= for readers that predate RFC 2231 */
        ok = encode_words(out, name) &&
             cd_buf_adds(out, "\"\r\nContent-Disposition: attachment;\r\n filename*=") &&
             smtp_encode_filename_2231(out, name) && cd_buf_adds(out, "\r\n");
    }
    return ok && cd_buf_adds(out, "Content-Transfer-Encoding: base64\r\n\r\n") &&
           add_b64_lines(out, (const unsigned char *)m->attachment, m->attachment_len);
}

/* OpenSSL's random bytes, drawn RAND_POOL at a time per thread and each
 * handed out once: RAND_bytes per message (its generator lookup, fork check
 * and DRBG step for 32 bytes) was ~6 % of campaignd's CPU per e-mail (perf).
 * What they make (a Message-ID, a MIME boundary) must be unique, not secret.
 * A forked child never sends mail (campaignd forks only to exec). */
enum { RAND_POOL = 1024 };
static _Thread_local unsigned char rand_pool[RAND_POOL];
static _Thread_local size_t rand_left;

static bool pooled_random(unsigned char *out, size_t n)
{
    if (n > RAND_POOL)
        return RAND_bytes(out, (int)n) == 1;
    if (rand_left < n) {
        if (RAND_bytes(rand_pool, RAND_POOL) != 1)
            return false;
        rand_left = RAND_POOL;
    }
    memcpy(out, rand_pool + (RAND_POOL - rand_left), n);
    rand_left -= n;
    return true;
}

/* Two random hex strings of 32 digits each (pooled randomness and no
 * printf per digit: this runs for every campaign message). */
static bool random_hex2(char a[33], char b[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[32];
    if (!pooled_random(r, sizeof(r)))
        return false;
    for (size_t i = 0; i < 16; i++) {
        a[2 * i] = hex[r[i] >> 4];
        a[2 * i + 1] = hex[r[i] & 15];
        b[2 * i] = hex[r[16 + i] >> 4];
        b[2 * i + 1] = hex[r[16 + i] & 15];
    }
    a[32] = b[32] = '\0';
    return true;
}

/* Whether name is an RFC 5322 field name and value printable ASCII. */
static bool header_ok(const provider_header_t *h)
{
    if (!h->name || !h->value || !*h->name || strlen(h->name) > 76 || strlen(h->value) > 900)
        return false;
    for (const char *p = h->name; *p; p++)
        if (*p <= ' ' || *p >= 0x7f || *p == ':')
            return false;
    for (const char *p = h->value; *p; p++)
        if ((unsigned char)*p < ' ' || (unsigned char)*p >= 0x7f)
            return false;
    return true;
}

static bool add_extra_headers(cd_buf_t *out, const smtp_message_t *m, char *err, size_t errlen)
{
    if (m->nheaders > PROVIDER_HEADERS_MAX) {
        snprintf(err, errlen, "more than %d extra headers", PROVIDER_HEADERS_MAX);
        return false;
    }
    for (size_t i = 0; i < m->nheaders; i++) {
        if (!header_ok(&m->headers[i])) {
            snprintf(err, errlen, "unsafe extra header");
            return false;
        }
        if (!cd_buf_printf(out, "%s: %s\r\n", m->headers[i].name, m->headers[i].value)) {
            snprintf(err, errlen, "message too large");
            return false;
        }
    }
    return true;
}

bool smtp_format(const smtp_message_t *m, long long now, cd_buf_t *out, char *message_id_out,
                 size_t idlen, char *err, size_t errlen)
{
    if (!smtp_address_ok(m->from) || !smtp_address_ok(m->to)) {
        snprintf(err, errlen, "unsafe sender or recipient address");
        return false;
    }
    char rnd[33], boundary[40];
    if (!random_hex2(rnd, boundary + 3)) {
        snprintf(err, errlen, "no randomness available");
        return false;
    }
    memcpy(boundary, "=_b", 3);
    char date[64];
    time_t t = (time_t)now;
    struct tm tm;
    gmtime_r(&t, &tm);
    static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    snprintf(date, sizeof(date), "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7],
             tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
    char msgid[400];
    snprintf(msgid, sizeof(msgid), "<%s%s>", rnd, strchr(m->from, '@'));
    if (message_id_out)
        snprintf(message_id_out, idlen, "%s", msgid);

    bool ok = cd_buf_printf(out, "Date: %s\r\nMessage-ID: %s\r\nFrom: ", date, msgid);
    if (ok && m->from_name && *m->from_name) {
        /* A plain name is quoted (it may hold specials); others are encoded words. */
        if (is_plain_ascii(m->from_name) && !strpbrk(m->from_name, "\"\\")) {
            ok = cd_buf_printf(out, "\"%s\" ", m->from_name);
        } else {
            ok = encode_words(out, m->from_name) && cd_buf_adds(out, " ");
        }
    }
    ok = ok && cd_buf_printf(out, "<%s>\r\nTo: <%s>\r\nSubject: ", m->from, m->to) &&
         smtp_encode_header(out, m->subject ? m->subject : "") &&
         cd_buf_adds(out, "\r\nMIME-Version: 1.0\r\nAuto-Submitted: auto-generated\r\n");
    if (ok && !add_extra_headers(out, m, err, errlen))
        return false;
    if (ok && m->attachment) {
        char mixed[40];
        memcpy(mixed, boundary, sizeof(boundary));
        mixed[2] = 'm'; /* "=_m...": never equal to the inner "=_b..." */
        ok = cd_buf_printf(out,
                           "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n"
                           "This is a message in MIME format.\r\n",
                           mixed) &&
             add_body(out, m, mixed, boundary) && add_attachment(out, m, mixed) &&
             cd_buf_printf(out, "--%s--\r\n", mixed);
    } else if (ok) {
        ok = add_body(out, m, NULL, boundary);
    }
    if (!ok)
        snprintf(err, errlen, "message too large");
    return ok;
}

/* ------------------------------------------------------------- delivery */

/* A host name of this machine: "localhost", 127.0.0.0/8 or [::1] as written
 * in the URL (the name, not what it resolves to: what Go's net/smtp checks
 * before it sends a password in the clear). */
static bool loopback_host(const char *host)
{
    struct in_addr a4;
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)
        return true;
    return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

long smtp_tls_policy(const char *url)
{
    /* libcurl's URL parser, the one that will connect: the same reading of
     * user, password and host */
    CURLU *u = curl_url();
    char *user = NULL, *password = NULL, *host = NULL;
    long policy = CURLUSESSL_ALL; /* what cannot be read gets the strict answer */
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        bool login = curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
                     curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK;
        if (!login || loopback_host(host))
            policy = CURLUSESSL_TRY;
    }
    curl_free(user);
    curl_free(password);
    curl_free(host);
    curl_url_cleanup(u);
    return policy;
}

/* libcurl's answer when the server offered no STARTTLS and the policy
 * required it, in words that say what to do. */
static const char *tls_required_error(CURLcode rc)
{
    return rc == CURLE_USE_SSL_FAILED
               ? "the server does not offer STARTTLS, and campaignd sends the SMTP password "
                 "only over TLS (use smtps://, or a server that offers STARTTLS)"
               : NULL;
}

struct upload {
    const char *data;
    size_t len, pos;
};

static size_t read_cb(char *dst, size_t size, size_t nmemb, void *userp)
{
    struct upload *u = userp;
    size_t room = size * nmemb, left = u->len - u->pos;
    size_t n = left < room ? left : room;
    memcpy(dst, u->data + u->pos, n);
    u->pos += n;
    return n;
}

/* Sets the options of one transfer of msg (a formatted message) to rcpt on
 * c, which may hold a connection from an earlier transfer (libcurl's
 * connection cache reuses it when the URL names the same server). */
static void setup_transfer(CURL *c, const char *url, long timeout_seconds, const char *from,
                           struct curl_slist *rcpt, struct upload *up, char *curl_err)
{
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    /* STARTTLS when the server offers it, required with a password (but to
     * this machine); smtps:// is TLS regardless. */
    curl_easy_setopt(c, CURLOPT_USE_SSL, smtp_tls_policy(url));
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(c, CURLOPT_READDATA, up);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_seconds);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, timeout_seconds < 10 ? timeout_seconds : 10L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    curl_err[0] = '\0';
}

/* Formats m and sends it on c. Returns CURLE_OK, or the failure with err
 * set (never containing the password); *formatted tells whether the message
 * could be built at all. */
static CURLcode deliver(CURL *c, const char *url, const smtp_message_t *m, long timeout_seconds,
                        char *message_id, size_t idlen, bool *formatted, char *err, size_t errlen)
{
    cd_buf_t msg;
    cd_buf_init(&msg, SMTP_MESSAGE_MAX);
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    struct curl_slist *rcpt = NULL;
    *formatted = smtp_format(m, (long long)time(NULL), &msg, message_id, idlen, err, errlen);
    if (!*formatted) {
        rc = CURLE_SEND_ERROR;
        goto done;
    }
    char to[300], from[300];
    snprintf(to, sizeof(to), "<%s>", m->to);
    snprintf(from, sizeof(from), "<%s>", m->from);
    rcpt = curl_slist_append(NULL, to);
    if (!rcpt) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    struct upload up = {msg.data, msg.len, 0};
    char curl_err[CURL_ERROR_SIZE];
    setup_transfer(c, url, timeout_seconds, from, rcpt, &up, curl_err);
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK) /* curl's messages name the host and the step, never the password */
        snprintf(err, errlen, "SMTP delivery failed: %s",
                 tls_required_error(rc) ? tls_required_error(rc)
                 : *curl_err            ? curl_err
                                        : curl_easy_strerror(rc));
done:
    curl_slist_free_all(rcpt);
    cd_buf_free(&msg);
    return rc;
}

static bool url_ok(const char *url, char *err, size_t errlen)
{
    if (!url || (strncmp(url, "smtp://", 7) != 0 && strncmp(url, "smtps://", 8) != 0)) {
        snprintf(err, errlen, "SMTP_URL must start with smtp:// or smtps://");
        return false;
    }
    return true;
}

bool smtp_send(const char *url, const smtp_message_t *m, long timeout_seconds, char *err,
               size_t errlen)
{
    if (!url_ok(url, err, errlen))
        return false;
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    bool formatted;
    CURLcode rc = deliver(c, url, m, timeout_seconds, NULL, 0, &formatted, err, errlen);
    curl_easy_cleanup(c);
    return rc == CURLE_OK;
}

/* ------------------------------------------------- the e-mail provider */

typedef struct smtp_conn smtp_conn_t;

typedef struct smtp_provider {
    email_provider_t base; /* first: the seam's view */
    char url[1024];
    long timeout_seconds;
    smtp_conn_t *conn; /* the batch's connection, reused across batches */
} smtp_provider_t;

provider_outcome_t smtp_classify(int rc, long reply_code, bool formatted)
{
    if (rc == CURLE_OK)
        return PROVIDER_ACCEPTED;
    if (!formatted)
        return PROVIDER_PERMFAIL;
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_LOGIN_DENIED:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_OUT_OF_MEMORY:
        /* Nothing was handed over, and the fault is the connection or the
         * configuration, not this message: try again later. */
        return PROVIDER_TEMPFAIL;
    default:
        break;
    }
    /* The server said no: 5xx for good, 4xx for now (greylisting, full
     * mailbox, rate limit). A reply to the final "." counts too: the server
     * refused the message, so it did not take it. */
    if (reply_code >= 500 && reply_code < 600)
        return PROVIDER_PERMFAIL;
    if (reply_code >= 400 && reply_code < 500)
        return PROVIDER_TEMPFAIL;
    /* The conversation broke (timeout, reset) after the server's last
     * reply_code: if that was the go-ahead for DATA (354) the message may
     * have arrived; before it (greeting, EHLO, MAIL, RCPT) it cannot have. */
    return reply_code == 354 ? PROVIDER_UNKNOWN : PROVIDER_TEMPFAIL;
}

/* ------------------------------------------ the campaign conversation */

/* The send engine's conversation is our own, on a connection libcurl opens
 * (CURLOPT_CONNECT_ONLY: greeting, EHLO, AUTH) and then hands over through
 * curl_easy_send / curl_easy_recv. libcurl's SMTP client waits for every
 * reply (MAIL, RCPT, DATA, the body: four round trips per message) and
 * checks the connection with extra polls around each; with RFC 2920
 * PIPELINING advertised, MAIL, RCPT and DATA go in one write, and the next
 * message's three follow the previous body's final dot: one round trip per
 * message. Without PIPELINING the commands go one at a time, as libcurl's
 * would. Over TLS (smtps://, or STARTTLS when offered) the same: libcurl's
 * TLS layer carries our bytes (test_smtp_conv speaks both to its own
 * server). */

long smtp_reply_parse(const char *buf, size_t len, int *code)
{
    size_t pos = 0;
    for (;;) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t line = nl ? (size_t)(nl - (buf + pos)) : len - pos;
        if (line > SMTP_REPLY_LINE_MAX)
            return -1;
        if (!nl)
            return 0;
        const char *l = buf + pos;
        if (line > 0 && l[line - 1] == '\r')
            line--;
        if (line < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' || l[2] < '0' ||
            l[2] > '9' || (line > 3 && l[3] != '-' && l[3] != ' '))
            return -1;
        int c = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
        if (pos > 0 && c != *code)
            return -1; /* the lines of one reply share its code */
        *code = c;
        pos = (size_t)(nl - buf) + 1;
        if (line == 3 || l[3] == ' ')
            return (long)pos;
    }
}

bool smtp_dot_stuff(cd_buf_t *out, const char *msg, size_t len)
{
    /* RFC 5321 4.5.2: a line that starts with "." gets another; the data
     * ends with CRLF "." CRLF, a CRLF added when the message lacks one. */
    size_t from = 0;
    for (size_t i = 0; i < len; i++) {
        if (msg[i] == '.' && (i == 0 || msg[i - 1] == '\n')) {
            if (!cd_buf_add(out, msg + from, i - from) || !cd_buf_adds(out, "."))
                return false;
            from = i;
        }
    }
    if (!cd_buf_add(out, msg + from, len - from))
        return false;
    bool crlf = len >= 2 && msg[len - 2] == '\r' && msg[len - 1] == '\n';
    return cd_buf_adds(out, crlf || len == 0 ? ".\r\n" : "\r\n.\r\n");
}

static struct curl_slist *test_connect_to; /* smtp_test_set_connect_to */

void smtp_test_set_connect_to(struct curl_slist *list)
{
    test_connect_to = list;
}

typedef struct smtp_conn {
    curlconn_t io;   /* its tls is set when STARTTLS was sent */
    bool pipelining; /* the last EHLO reply advertised PIPELINING */
    bool used;       /* has carried a message */
    int code;        /* the last reply's code */
    const char *url; /* conn_open's, for conn_setup */
    long timeout_seconds;
    char text[PROVIDER_ERROR_MAX / 2]; /* its first line, printable */
} smtp_conn_t;

/* libcurl's view of the greeting and EHLO: an outgoing EHLO forgets what an
 * earlier one (before STARTTLS) advertised. */
static int conn_debug_cb(CURL *c, curl_infotype type, char *data, size_t size, void *userp)
{
    (void)c;
    smtp_conn_t *k = userp;
    if (type == CURLINFO_HEADER_OUT && size >= 5 && strncasecmp(data, "EHLO ", 5) == 0)
        k->pipelining = false;
    else if (type == CURLINFO_HEADER_OUT && size >= 8 && strncasecmp(data, "STARTTLS", 8) == 0)
        k->io.tls = true;
    else if (type == CURLINFO_HEADER_IN && size >= 14 &&
             (strncmp(data, "250-", 4) == 0 || strncmp(data, "250 ", 4) == 0) &&
             strncasecmp(data + 4, "PIPELINING", 10) == 0 &&
             (size == 14 || data[14] == '\r' || data[14] == '\n' || data[14] == ' '))
        k->pipelining = true;
    return 0;
}

static bool conn_write(smtp_conn_t *k, const char *p, size_t n, long long deadline)
{
    return curlconn_write(&k->io, p, n, NULL, deadline);
}

/* Reads the next reply into k->code and k->text. False when the connection
 * broke, timed out or spoke something that is not SMTP. */
static bool conn_reply(smtp_conn_t *k, long long deadline)
{
    for (;;) {
        int code = 0;
        char *in = k->io.in;
        long used = smtp_reply_parse(in, k->io.inlen, &code);
        if (used < 0)
            return false;
        if (used > 0) {
            size_t t = 0;
            for (size_t i = 4;
                 i < (size_t)used && in[i] != '\r' && in[i] != '\n' && t + 1 < sizeof(k->text); i++)
                /* RFC 5321 replies are ASCII; a relay's Latin-1 text must not
                 * reach the result's JSON as invalid UTF-8 */
                k->text[t++] = (unsigned char)in[i] < ' '     ? ' '
                               : (unsigned char)in[i] >= 0x7f ? '?'
                                                              : in[i];
            k->text[t] = '\0';
            k->code = code;
            memmove(in, in + used, k->io.inlen - (size_t)used);
            k->io.inlen -= (size_t)used;
            return true;
        }
        if (k->io.inlen == sizeof(k->io.in) || curlconn_fill(&k->io, deadline, NULL) <= 0)
            return false;
    }
}

/* Closes the connection: libcurl says QUIT and waits for the answer, a
 * second at most when the conversation broke. */
static void conn_close(smtp_conn_t **kp, bool broke)
{
    if (*kp) {
        if (broke)
            curl_easy_setopt((*kp)->io.curl, CURLOPT_SERVER_RESPONSE_TIMEOUT, 1L);
        curl_easy_cleanup((*kp)->io.curl);
        free(*kp);
        *kp = NULL;
    }
}

/* The SMTP options of the connect phase (curlconn_open's setup). */
static void conn_setup(CURL *c, void *arg)
{
    smtp_conn_t *k = arg;
    curl_easy_setopt(c, CURLOPT_USE_SSL, smtp_tls_policy(k->url)); /* as setup_transfer */
    if (test_connect_to)
        curl_easy_setopt(c, CURLOPT_CONNECT_TO, test_connect_to);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, k->timeout_seconds < 10 ? k->timeout_seconds : 10L);
    /* bounds libcurl's wait for the reply to its QUIT at the close */
    curl_easy_setopt(c, CURLOPT_SERVER_RESPONSE_TIMEOUT, k->timeout_seconds);
    curl_easy_setopt(c, CURLOPT_VERBOSE, 1L); /* the debug callback sees the EHLO reply */
    curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, conn_debug_cb);
    curl_easy_setopt(c, CURLOPT_DEBUGDATA, k);
}

/* Opens a connection (libcurl: connect, greeting, EHLO, STARTTLS when
 * offered, AUTH). NULL with err set (no password in it) on failure; *rc is
 * libcurl's code. */
static smtp_conn_t *conn_open(const char *url, long timeout_seconds, CURLcode *rc, char *err,
                              size_t errlen)
{
    smtp_conn_t *k = calloc(1, sizeof(*k));
    *rc = CURLE_OUT_OF_MEMORY;
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    char curl_err[CURL_ERROR_SIZE];
    curl_err[0] = '\0';
    k->url = url;
    k->timeout_seconds = timeout_seconds;
    *rc = curlconn_open(&k->io, url, "smtp,smtps", timeout_seconds * 1000, conn_setup, k, curl_err);
    if (*rc == CURLE_OK)
        return k;
    snprintf(err, errlen, "SMTP delivery failed: %s",
             tls_required_error(*rc) ? tls_required_error(*rc)
             : *curl_err             ? curl_err
                                     : curl_easy_strerror(*rc));
    conn_close(&k, true);
    return NULL;
}

static void reply_error(provider_email_result_t *r, const char *step, const smtp_conn_t *k)
{
    r->outcome = k->code >= 500 ? PROVIDER_PERMFAIL : PROVIDER_TEMPFAIL;
    snprintf(r->error, sizeof(r->error), "SMTP delivery failed: %s: %d %s", step, k->code, k->text);
}

static void broken(provider_email_result_t *r, provider_outcome_t o, const char *step)
{
    r->outcome = o;
    snprintf(r->error, sizeof(r->error), "SMTP delivery failed: %s: connection broken or timed out",
             step);
}

static bool add_envelope(cd_buf_t *out, const char *from, const char *to)
{
    return cd_buf_printf(out, "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n", from, to);
}

/* Ends a refused envelope: the data of a non-conforming 354 (an empty
 * message the server must refuse: it has no recipient) and RSET when the
 * server took MAIL FROM. False when the connection is no longer usable. */
static bool reset_refused(smtp_conn_t *k, bool mail_ok, bool data_open, long long deadline)
{
    if (data_open && (!conn_write(k, ".\r\n", 3, deadline) || !conn_reply(k, deadline)))
        return false;
    if (mail_ok &&
        (!conn_write(k, "RSET\r\n", 6, deadline) || !conn_reply(k, deadline) || k->code / 100 != 2))
        return false;
    return true;
}

/* The envelope of m on k, up to the server's go-ahead for its data. sent:
 * its commands went out already (behind the previous message's data).
 * Returns 1 at the go-ahead (354); 0 when the server refused (r filled);
 * -1 when the connection broke or must close (r filled when the server had
 * refused first), *replies counting the replies read. */
static int envelope(smtp_conn_t *k, const smtp_message_t *m, bool sent, cd_buf_t *out,
                    long long deadline, provider_email_result_t *r, int *replies)
{
    static const char *const step[] = {"MAIL FROM", "RCPT TO", "DATA"};
    int codes[3] = {0, 0, 0};
    int failed = -1; /* the first step refused */
    if (k->pipelining && !sent) {
        cd_buf_reset(out);
        if (!add_envelope(out, m->from, m->to) || !conn_write(k, out->data, out->len, deadline))
            return -1;
    }
    for (int s = 0; s < 3 && (k->pipelining || failed < 0); s++) {
        if (!k->pipelining) {
            cd_buf_reset(out);
            bool ok = s == 0   ? cd_buf_printf(out, "MAIL FROM:<%s>\r\n", m->from)
                      : s == 1 ? cd_buf_printf(out, "RCPT TO:<%s>\r\n", m->to)
                               : cd_buf_adds(out, "DATA\r\n");
            if (!ok || !conn_write(k, out->data, out->len, deadline))
                return -1;
        }
        if (!conn_reply(k, deadline))
            return -1;
        (*replies)++;
        codes[s] = k->code;
        if (failed < 0 && (s < 2 ? k->code / 100 != 2 : k->code != 354)) {
            failed = s;
            reply_error(r, step[s], k);
        }
    }
    if (failed < 0)
        return 1;
    return reset_refused(k, codes[0] / 100 == 2, codes[2] == 354, deadline) ? 0 : -1;
}

/* A batch's messages, formatted when the conversation first needs them: at
 * most two at a time (the one being sent and the next, whose envelope rides
 * behind it), not the whole group. */
typedef struct {
    const smtp_message_t *ms;
    provider_email_result_t *results;
    long long now;
    signed char st[PROVIDER_BATCH_MAX]; /* 0 not yet, 1 formatted, -1 refused, 2 done */
    cd_buf_t bodies[PROVIDER_BATCH_MAX];
} batch_fmt_t;

/* Whether message i is formatted (formats it on first call; a refusal is in
 * its result). */
static bool fmt_ready(batch_fmt_t *f, size_t i)
{
    if (f->st[i] == 0) {
        provider_email_result_t *r = &f->results[i];
        cd_buf_init(&f->bodies[i], SMTP_MESSAGE_MAX);
        f->st[i] = smtp_format(&f->ms[i], f->now, &f->bodies[i], r->provider_id,
                               sizeof(r->provider_id), r->error, sizeof(r->error))
                       ? 1
                       : -1;
        if (f->st[i] < 0)
            cd_buf_free(&f->bodies[i]);
    }
    return f->st[i] == 1;
}

static void fmt_done(batch_fmt_t *f, size_t i)
{
    if (f->st[i] == 1) {
        cd_buf_free(&f->bodies[i]);
        f->st[i] = 2;
    }
}

/* One batch on our own conversation. */
static void conv_batch(smtp_provider_t *sp, batch_fmt_t *f, size_t n)
{
    const smtp_message_t *ms = f->ms;
    cd_buf_t out;
    cd_buf_init(&out, 2 * SMTP_MESSAGE_MAX + 1024);
    bool sent = false; /* the envelope of message i went out behind i - 1 */
    /* A connection this batch could not open: the relay is down or refusing,
     * and each of the rest would wait for the same refusal (or time-out) in
     * turn, holding the group past its lease. They fail the same way at once
     * (temporary: retried with backoff). */
    const provider_email_result_t *unreachable = NULL;
    for (size_t i = 0; i < n; fmt_done(f, i), i++) {
        provider_email_result_t *r = &f->results[i];
        if (!fmt_ready(f, i)) {
            r->outcome = PROVIDER_PERMFAIL; /* smtp_format said why */
            continue;
        }
        if (unreachable) {
            r->outcome = unreachable->outcome;
            snprintf(r->error, sizeof(r->error), "%s", unreachable->error);
            continue;
        }
        long long deadline = cd_mono_ms() + (long long)sp->timeout_seconds * 1000;
        for (int attempt = 0;; attempt++) {
            if (!sp->conn) {
                CURLcode rc;
                sp->conn = conn_open(sp->url, sp->timeout_seconds, &rc, r->error, sizeof(r->error));
                if (!sp->conn) {
                    r->outcome = smtp_classify(rc, 0, true);
                    unreachable = r;
                    break;
                }
            }
            smtp_conn_t *k = sp->conn;
            /* a connection that waited since its last message may have been
             * closed by the server: nothing of this message reached it */
            bool reused = k->used && !sent;
            int replies = 0;
            int e = envelope(k, &ms[i], sent, &out, deadline, r, &replies);
            sent = false;
            if (e < 0) {
                conn_close(&sp->conn, true);
                /* once more on a new connection, only when the old one
                 * failed at once (closed while idle), not by the deadline */
                if (reused && replies == 0 && attempt == 0 && cd_mono_ms() < deadline)
                    continue;
                if (replies == 0 || !r->error[0])
                    broken(r, PROVIDER_TEMPFAIL, "MAIL FROM");
                break;
            }
            if (e == 0)
                break;
            /* 354: the data, and the next message's envelope behind it */
            cd_buf_reset(&out);
            bool ok = smtp_dot_stuff(&out, f->bodies[i].data, f->bodies[i].len);
            fmt_done(f, i); /* its text is in out now */
            bool next = ok && k->pipelining && i + 1 < n && fmt_ready(f, i + 1) &&
                        add_envelope(&out, ms[i + 1].from, ms[i + 1].to);
            if (!ok) { /* nothing of the text left: the server never saw an end */
                conn_close(&sp->conn, true);
                r->outcome = PROVIDER_TEMPFAIL;
                snprintf(r->error, sizeof(r->error),
                         "SMTP delivery failed: DATA: the message did not fit the send buffer");
                break;
            }
            if (!conn_write(k, out.data, out.len, deadline) || !conn_reply(k, deadline)) {
                conn_close(&sp->conn, true);
                broken(r, PROVIDER_UNKNOWN, "end of data");
                break;
            }
            k->used = true;
            sent = next;
            if (k->code / 100 == 2)
                r->outcome = PROVIDER_ACCEPTED;
            else
                reply_error(r, "end of data", k);
            break;
        }
    }
    cd_buf_free(&out);
}

static smtp_message_t to_message(const provider_email_t *e)
{
    return (smtp_message_t){.from_name = e->from_name,
                            .from = e->from,
                            .to = e->to,
                            .subject = e->subject,
                            .text = e->text,
                            .html = e->html,
                            .headers = e->headers,
                            .nheaders = e->nheaders};
}

static void smtp_provider_send_batch(email_provider_t *p, const provider_email_t *msgs, size_t n,
                                     provider_email_result_t *results)
{
    smtp_provider_t *sp = (smtp_provider_t *)p;
    smtp_message_t ms[PROVIDER_BATCH_MAX];
    batch_fmt_t *f = calloc(1, sizeof(*f)); /* 100 buffers: off the worker's stack */
    for (size_t i = 0; i < n; i++) {
        memset(&results[i], 0, sizeof(results[i]));
        ms[i] = to_message(&msgs[i]);
    }
    if (!f) {
        for (size_t i = 0; i < n; i++) {
            results[i].outcome = PROVIDER_TEMPFAIL;
            snprintf(results[i].error, sizeof(results[i].error), "SMTP: out of memory");
        }
        return;
    }
    f->ms = ms;
    f->results = results;
    f->now = (long long)time(NULL);
    conv_batch(sp, f, n);
    for (size_t i = 0; i < n; i++)
        fmt_done(f, i);
    free(f);
}

static void smtp_provider_close(email_provider_t *p)
{
    smtp_provider_t *sp = (smtp_provider_t *)p;
    conn_close(&sp->conn, false);
    free(sp);
}

static const email_provider_ops_t smtp_provider_ops = {
    .name = "smtp",
    .send_batch = smtp_provider_send_batch,
    .close = smtp_provider_close,
};

email_provider_t *smtp_provider_open(const provider_settings_t *s, char *err, size_t errlen)
{
    if (!s->smtp_url || !*s->smtp_url) {
        snprintf(err, errlen, "SMTP_URL is not set");
        return NULL;
    }
    if (!url_ok(s->smtp_url, err, errlen))
        return NULL;
    if (strlen(s->smtp_url) >= sizeof(((smtp_provider_t *)0)->url)) {
        snprintf(err, errlen, "SMTP_URL is too long");
        return NULL;
    }
    smtp_provider_t *sp = calloc(1, sizeof(*sp));
    if (!sp) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    sp->base.ops = &smtp_provider_ops;
    snprintf(sp->url, sizeof(sp->url), "%s", s->smtp_url);
    sp->timeout_seconds = s->timeout_seconds > 0 ? s->timeout_seconds : 30;
    return &sp->base;
}
