/*
 * The SMTP provider: builds an RFC 5322 message (Message-ID, Date, RFC 2047
 * encoded UTF-8 headers, a multipart/alternative text + HTML body) and hands it
 * to an SMTP server through libcurl (smtp:// with STARTTLS when the server
 * offers it, smtps:// with TLS from the start, AUTH from the URL's user and
 * password). Used by Auth's mails and meant for the sending work (issue 12).
 * Blocking: call it from a worker thread, never from a request handler.
 */
#ifndef CD_PROVIDERS_SMTP_H
#define CD_PROVIDERS_SMTP_H

#include <stddef.h>

#include "core/buf.h"
#include "core/common.h"
#include "providers/provider.h"

/* Longest message smtp_format builds (headers and encoded body). */
#define SMTP_MESSAGE_MAX (4 * 1024 * 1024)

typedef struct smtp_message {
    const char *from_name; /* display name, UTF-8, may be NULL or "" */
    const char *from;      /* envelope and header sender address */
    const char *to;        /* one recipient address */
    const char *subject;   /* UTF-8 */
    const char *text;      /* UTF-8 plain-text body */
    const char *html;      /* UTF-8 HTML body, or NULL for text only */
    /* One attachment (mailjobs): with attachment set, the message is
     * multipart/mixed around the body (base64 in 76-character lines; the
     * file name RFC 2231-encoded in Content-Disposition and RFC 2047 in
     * Content-Type's name, for older readers). */
    const char *attachment_name; /* UTF-8 file name (NULL: "attachment") */
    const char *attachment_type; /* MIME type; unsafe or NULL: application/octet-stream */
    const char *attachment;      /* the bytes, or NULL for none */
    size_t attachment_len;
    /* Additions since Auth's mails, in one block (zero: none). The send
     * engine: extra headers (List-Unsubscribe, List-Unsubscribe-Post), names
     * tokens, values printable ASCII (anything else is refused). Attachments
     * (the mailjobs work) go here too. */
    const provider_header_t *headers;
    size_t nheaders;
} smtp_message_t;

/* Whether s is an address safe to put in a header and an SMTP envelope: no
 * control characters, spaces, angle brackets, quotes or commas, one '@'. */
bool smtp_address_ok(const char *s);

/* Appends s as an RFC 2047 "encoded-word" sequence (=?UTF-8?B?...?=) when it
 * holds anything but printable ASCII, else as it is. Encoded words stay under
 * 76 characters, never split a UTF-8 character, and are joined by folding
 * whitespace. False if out is full. */
CD_MUSTCHECK bool smtp_encode_header(cd_buf_t *out, const char *s);

/* Builds the whole message into out (initialised by the caller with a maximum
 * of at least SMTP_MESSAGE_MAX). now is the Date; message_id_out, when not
 * NULL, receives the Message-ID (with angle brackets). False with err set
 * when an address is unsafe or the message too large. */
CD_MUSTCHECK bool smtp_format(const smtp_message_t *m, long long now, cd_buf_t *out,
                              char *message_id_out, size_t idlen, char *err, size_t errlen);

/* Sends m through the server at url (smtp://user:pass@host:port or smtps://...).
 * Waits at most timeout_seconds. False with err set (never containing the
 * password) on any failure. */
CD_MUSTCHECK bool smtp_send(const char *url, const smtp_message_t *m, long timeout_seconds,
                            char *err, size_t errlen);

/* Appends name as an RFC 2231 extended value (UTF-8''percent-encoded), for
 * filename*= (mailjobs: attachments). False if out is full. */
CD_MUSTCHECK bool smtp_encode_filename_2231(cd_buf_t *out, const char *name);
/* How a delivery attempt ended, for the send engine: rc is libcurl's code,
 * reply_code the server's last SMTP reply (CURLINFO_RESPONSE_CODE), formatted
 * whether the message could be built at all. A conversation that broke after
 * the server's 354 (go ahead with DATA) is PROVIDER_UNKNOWN: it may have
 * arrived, so it must not be sent again. rc is a CURLcode, as int to keep
 * curl.h out of this header. */
provider_outcome_t smtp_classify(int rc, long reply_code, bool formatted);

/* Longest reply line the send engine's conversation accepts (RFC 5321: 512). */
#define SMTP_REPLY_LINE_MAX 1000

/* Parses one SMTP reply (lines "ddd-text", the last "ddd text" or "ddd",
 * CRLF or LF) at the start of buf[0..len). Returns its length in bytes with
 * *code set (200..599), 0 when it is not complete yet, -1 when it is not a
 * reply (a bad code, lines of different codes, a line over
 * SMTP_REPLY_LINE_MAX). */
long smtp_reply_parse(const char *buf, size_t len, int *code);

/* Appends msg as the data of an SMTP transaction: lines starting with "."
 * doubled (RFC 5321 4.5.2), then CRLF "." CRLF (a CRLF added first when msg
 * does not end with one). False if out is full. */
CD_MUSTCHECK bool smtp_dot_stuff(cd_buf_t *out, const char *msg, size_t len);

/* (The CA file those connections trust in a test: curlconn_test_set_cainfo.) */

struct curl_slist;

/* Tests only: libcurl's CURLOPT_CONNECT_TO for those connections (NULL:
 * none), so a URL naming another host reaches the test's own server. */
void smtp_test_set_connect_to(struct curl_slist *list);

/* What the connection to url requires (libcurl's CURLOPT_USE_SSL): with a
 * user or password in the URL, TLS (CURLUSESSL_ALL: a server that offers no
 * STARTTLS, or a man in the middle who strips it, gets no password), except
 * to this machine (localhost, 127.0.0.0/8, [::1]); without, STARTTLS when
 * offered (CURLUSESSL_TRY). smtps:// is TLS from the start either way. A URL
 * libcurl cannot read gets CURLUSESSL_ALL. */
long smtp_tls_policy(const char *url);

#endif
