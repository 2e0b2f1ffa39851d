/* Unit tests for providers/smtp.c: the RFC 5322 message (headers, RFC 2047
 * encoded words, the MIME body) and the address check that keeps header
 * injection out. Delivery is tested against a real SMTP server by
 * tests/integration/auth-mail.test.js. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include "providers/smtp.h"

static void test_address_ok(void **state)
{
    (void)state;
    assert_true(smtp_address_ok("a@example.com"));
    assert_false(smtp_address_ok(NULL));
    assert_false(smtp_address_ok("a@b@example.com"));
    assert_false(smtp_address_ok("a@example.com\r\nBcc: x@evil.test"));
    assert_false(smtp_address_ok("a b@example.com"));
    assert_false(smtp_address_ok("<a@example.com>"));
    assert_false(smtp_address_ok("a@example.com,b@example.com"));
    assert_false(smtp_address_ok("noat"));
    assert_false(smtp_address_ok("\xc3\xa9@example.com"));
}

/* Decodes one =?UTF-8?B?...?= word at p into out (NUL-terminated). */
static size_t decode_word(const char *p, char *out)
{
    assert_memory_equal(p, "=?UTF-8?B?", 10);
    const char *end = strstr(p + 10, "?=");
    assert_non_null(end);
    int n =
        EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)p + 10, (int)(end - p - 10));
    assert_true(n >= 0);
    /* EVP_DecodeBlock counts the padding as zero bytes */
    size_t len = (size_t)n;
    for (const char *q = end - 1; *q == '=' && len > 0; q--)
        len--;
    out[len] = '\0';
    assert_true(end + 2 - p <= 75); /* RFC 2047: a word is at most 75 characters */
    return (size_t)(end + 2 - p);
}

static void test_encode_header(void **state)
{
    (void)state;
    cd_buf_t b;
    cd_buf_init(&b, 4096);
    assert_true(smtp_encode_header(&b, "Confirm your signup"));
    assert_string_equal(cd_buf_str(&b), "Confirm your signup");
    cd_buf_reset(&b);

    /* 40 two-byte characters: more than one word, none split inside a character */
    char s[200] = "";
    for (int i = 0; i < 40; i++)
        memcpy(s + 2 * i, "\xc3\xa9", 3); /* é, and the NUL */
    assert_true(smtp_encode_header(&b, s));
    const char *p = cd_buf_str(&b);
    char joined[200] = "", word[100];
    size_t jl = 0;
    int words = 0;
    for (;;) {
        p += decode_word(p, word);
        /* every word on its own is valid UTF-8: starts on a lead byte */
        assert_true(((unsigned char)word[0] & 0xC0) != 0x80);
        size_t wl = strlen(word);
        assert_true(jl + wl < sizeof(joined));
        memcpy(joined + jl, word, wl + 1);
        jl += wl;
        words++;
        if (!*p)
            break;
        assert_memory_equal(p, "\r\n ", 3); /* folded */
        p += 3;
    }
    assert_true(words >= 2);
    assert_string_equal(joined, s);
    cd_buf_reset(&b);

    /* a CR/LF in a subject can never start a new header */
    assert_true(smtp_encode_header(&b, "Hi \xc3\xa9\r\nBcc: x@evil.test"));
    assert_null(strstr(cd_buf_str(&b), "\r\nBcc"));
    assert_null(strchr(cd_buf_str(&b), '\n'));
    cd_buf_free(&b);
}

static void test_format(void **state)
{
    (void)state;
    cd_buf_t b;
    cd_buf_init(&b, SMTP_MESSAGE_MAX);
    smtp_message_t m = {.from_name = "Caf\xc3\xa9 Team",
                        .from = "noreply@example.com",
                        .to = "user@example.org",
                        .subject = "R\xc3\xa9initialiser",
                        .text = "Code: 123456",
                        .html = "<p>Code: <b>123456</b></p>"};
    char id[128], err[128];
    assert_true(smtp_format(&m, 1700000000LL, &b, id, sizeof(id), err, sizeof(err)));
    const char *t = cd_buf_str(&b);
    assert_non_null(strstr(t, "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
    assert_true(id[0] == '<' && strstr(id, "@example.com>"));
    assert_non_null(strstr(t, "Message-ID: "));
    assert_non_null(strstr(t, id));
    assert_non_null(strstr(t, "From: =?UTF-8?B?"));
    assert_non_null(strstr(t, " <noreply@example.com>\r\n"));
    assert_non_null(strstr(t, "To: <user@example.org>\r\n"));
    assert_non_null(strstr(t, "Subject: =?UTF-8?B?UsOpaW5pdGlhbGlzZXI=?=\r\n"));
    assert_non_null(strstr(t, "MIME-Version: 1.0\r\n"));
    assert_non_null(strstr(t, "multipart/alternative"));
    assert_non_null(strstr(t, "Content-Type: text/plain; charset=UTF-8"));
    assert_non_null(strstr(t, "Content-Type: text/html; charset=UTF-8"));
    /* "Code: 123456" in base64 */
    assert_non_null(strstr(t, "Q29kZTogMTIzNDU2"));
    /* no bare LF and no line over 998 characters (RFC 5322 2.1.1) */
    size_t line = 0;
    for (const char *p = t; *p; p++) {
        if (*p == '\n') {
            assert_true(p > t && p[-1] == '\r');
            line = 0;
        } else {
            assert_true(++line <= 998);
        }
    }
    /* two messages never share a Message-ID */
    char id2[128];
    cd_buf_reset(&b);
    assert_true(smtp_format(&m, 1700000000LL, &b, id2, sizeof(id2), err, sizeof(err)));
    assert_string_not_equal(id, id2);
    /* ... nor a boundary, across the refills of the per-thread random pool
     * (1,024 bytes: 32 messages each) */
    enum { MANY = 100 };
    static char ids[MANY][128], bounds[MANY][64];
    for (size_t i = 0; i < MANY; i++) {
        cd_buf_reset(&b);
        assert_true(smtp_format(&m, 1700000000LL, &b, ids[i], sizeof(ids[i]), err, sizeof(err)));
        const char *bd = strstr(cd_buf_str(&b), "boundary=\"");
        assert_non_null(bd);
        snprintf(bounds[i], sizeof(bounds[i]), "%.*s", (int)strcspn(bd + 10, "\""), bd + 10);
        assert_true(strlen(bounds[i]) == 35);
        for (size_t k = 0; k < i; k++) {
            assert_string_not_equal(ids[i], ids[k]);
            assert_string_not_equal(bounds[i], bounds[k]);
        }
    }

    /* an injected recipient is refused, not written */
    m.to = "user@example.org>\r\nBcc: <x@evil.test";
    cd_buf_reset(&b);
    assert_false(smtp_format(&m, 1700000000LL, &b, NULL, 0, err, sizeof(err)));

    /* text only: a single part, and a plain ASCII sender name is quoted */
    m.to = "user@example.org";
    m.html = NULL;
    m.from_name = "Team";
    cd_buf_reset(&b);
    assert_true(smtp_format(&m, 1700000000LL, &b, NULL, 0, err, sizeof(err)));
    assert_null(strstr(cd_buf_str(&b), "multipart"));
    assert_non_null(strstr(cd_buf_str(&b), "From: \"Team\" <noreply@example.com>\r\n"));
    cd_buf_free(&b);
}

/* Decodes base64 lines (CRLF between them) from p up to the line "--end". */
static size_t decode_lines(const char *p, const char *end, unsigned char *out)
{
    size_t n = 0;
    while (p < end) {
        const char *eol = strstr(p, "\r\n");
        assert_non_null(eol);
        assert_true(eol - p <= 76); /* RFC 2045: lines of at most 76 characters */
        if (eol == p)
            break;
        int w = EVP_DecodeBlock(out + n, (const unsigned char *)p, (int)(eol - p));
        assert_true(w >= 0);
        size_t len = (size_t)w;
        for (const char *q = eol - 1; *q == '=' && len > 0; q--)
            len--;
        n += len;
        p = eol + 2;
    }
    return n;
}

static void test_format_attachment(void **state)
{
    (void)state;
    /* 1000 bytes with every byte value, NUL included */
    static char data[1000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i * 7);
    smtp_message_t m = {.from = "a@campaignd.test",
                        .to = "b@example.com",
                        .subject = "Weekly report",
                        .text = "see attached",
                        .html = "<p>see attached</p>",
                        .attachment_name = "report-2026-12.csv",
                        .attachment_type = "text/csv",
                        .attachment = data,
                        .attachment_len = sizeof(data)};
    cd_buf_t b;
    cd_buf_init(&b, SMTP_MESSAGE_MAX);
    char err[128];
    assert_true(smtp_format(&m, 0, &b, NULL, 0, err, sizeof(err)));
    const char *msg = cd_buf_str(&b);
    const char *mixed = strstr(msg, "Content-Type: multipart/mixed; boundary=\"");
    assert_non_null(mixed);
    char bnd[64];
    assert_int_equal(sscanf(mixed, "Content-Type: multipart/mixed; boundary=\"%63[^\"]", bnd), 1);
    /* the alternative body nests inside the mixed message, then the file */
    const char *alt = strstr(msg, "Content-Type: multipart/alternative;");
    const char *att = strstr(msg, "Content-Type: text/csv; name=\"report-2026-12.csv\"\r\n"
                                  "Content-Disposition: attachment; "
                                  "filename=\"report-2026-12.csv\"\r\n"
                                  "Content-Transfer-Encoding: base64\r\n\r\n");
    assert_non_null(alt);
    assert_non_null(att);
    assert_true(mixed < alt && alt < att);
    char closing[80];
    snprintf(closing, sizeof(closing), "\r\n--%s--\r\n", bnd);
    const char *end = strstr(att, closing);
    assert_non_null(end);
    const char *body = strstr(att, "\r\n\r\n") + 4;
    unsigned char out[1100];
    assert_int_equal(decode_lines(body, end + 2, out), sizeof(data));
    assert_memory_equal(out, data, sizeof(data));
    cd_buf_free(&b);
}

static void test_attachment_names_and_types(void **state)
{
    (void)state;
    smtp_message_t m = {.from = "a@campaignd.test",
                        .to = "b@example.com",
                        .subject = "x",
                        .text = "x",
                        .attachment_name = "Rapport \xc3\xa9t\xc3\xa9 \"Q3\".csv",
                        .attachment_type = "text/csv\r\nBcc: evil@example.com",
                        .attachment = "a,b\r\n",
                        .attachment_len = 5};
    cd_buf_t b;
    cd_buf_init(&b, SMTP_MESSAGE_MAX);
    char err[128];
    assert_true(smtp_format(&m, 0, &b, NULL, 0, err, sizeof(err)));
    const char *msg = cd_buf_str(&b);
    /* an unsafe type never reaches the headers */
    assert_null(strstr(msg, "Bcc:"));
    assert_non_null(strstr(msg, "Content-Type: application/octet-stream; name=\"=?UTF-8?B?"));
    /* RFC 2231 for the disposition: quotes, spaces and UTF-8 percent-encoded */
    assert_non_null(strstr(msg, "filename*=UTF-8''Rapport%20%C3%A9t%C3%A9%20%22Q3%22.csv\r\n"));
    /* text only body: a text/plain part inside the mixed message */
    assert_non_null(strstr(msg, "Content-Type: text/plain; charset=UTF-8\r\n"));
    cd_buf_reset(&b);
    assert_true(smtp_encode_filename_2231(&b, "a b;c"));
    assert_string_equal(cd_buf_str(&b), "UTF-8''a%20b%3Bc");
    cd_buf_free(&b);
}

static void test_send_refuses_other_schemes(void **state)
{
    (void)state;
    smtp_message_t m = {
        .from = "a@example.com", .to = "b@example.com", .subject = "x", .text = "y"};
    char err[256];
    assert_false(smtp_send("file:///etc/passwd", &m, 5, err, sizeof(err)));
    assert_non_null(strstr(err, "smtp://"));
    assert_false(smtp_send("http://127.0.0.1/", &m, 5, err, sizeof(err)));
}

/* How a delivery attempt ends for the send engine: a conversation broken
 * after the server's 354 may have delivered the message (unknown, never
 * retried); a refusal is permanent or temporary by its reply class. */
static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(smtp_classify(CURLE_OK, 250, true), PROVIDER_ACCEPTED);
    assert_int_equal(smtp_classify(CURLE_SEND_ERROR, 0, false), PROVIDER_PERMFAIL);
    assert_int_equal(smtp_classify(CURLE_SEND_ERROR, 550, true), PROVIDER_PERMFAIL);
    assert_int_equal(smtp_classify(CURLE_RECV_ERROR, 451, true), PROVIDER_TEMPFAIL);
    assert_int_equal(smtp_classify(CURLE_COULDNT_CONNECT, 0, true), PROVIDER_TEMPFAIL);
    assert_int_equal(smtp_classify(CURLE_LOGIN_DENIED, 535, true), PROVIDER_TEMPFAIL);
    assert_int_equal(smtp_classify(CURLE_OPERATION_TIMEDOUT, 354, true), PROVIDER_UNKNOWN);
    assert_int_equal(smtp_classify(CURLE_RECV_ERROR, 354, true), PROVIDER_UNKNOWN);
    assert_int_equal(smtp_classify(CURLE_RECV_ERROR, 250, true), PROVIDER_TEMPFAIL);
}

/* Extra headers go into the message; CR/LF in one is refused. */
static void test_extra_headers(void **state)
{
    (void)state;
    provider_header_t h[2] = {{"List-Unsubscribe", "<https://x.test/u/abc>"},
                              {"List-Unsubscribe-Post", "List-Unsubscribe=One-Click"}};
    smtp_message_t m = {.from = "a@example.com",
                        .to = "b@example.com",
                        .subject = "s",
                        .text = "t",
                        .headers = h,
                        .nheaders = 2};
    cd_buf_t out;
    cd_buf_init(&out, SMTP_MESSAGE_MAX);
    char err[128];
    assert_true(smtp_format(&m, 0, &out, NULL, 0, err, sizeof(err)));
    assert_non_null(strstr(cd_buf_str(&out), "\r\nList-Unsubscribe: <https://x.test/u/abc>\r\n"));
    assert_non_null(
        strstr(cd_buf_str(&out), "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
    cd_buf_reset(&out);
    h[0].value = "<https://x.test>\r\nBcc: c@example.com";
    assert_false(smtp_format(&m, 0, &out, NULL, 0, err, sizeof(err)));
    h[0].value = "ok";
    h[0].name = "Bad Name";
    assert_false(smtp_format(&m, 0, &out, NULL, 0, err, sizeof(err)));
    cd_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_address_ok),
        cmocka_unit_test(test_encode_header),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_attachment),
        cmocka_unit_test(test_attachment_names_and_types),
        cmocka_unit_test(test_send_refuses_other_schemes),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_extra_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
