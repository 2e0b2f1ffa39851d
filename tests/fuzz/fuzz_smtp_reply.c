/*
 * libFuzzer target for the send engine's SMTP conversation (src/providers/smtp.c):
 * arbitrary bytes are a server's reply stream, consumed the way the conversation
 * does (smtp_reply_parse, reply after reply), and a message text, dot-stuffed.
 * Properties: a parsed reply is a prefix of what is left, ends with a line feed and
 * has a code of 200..599 that its first three bytes spell; a stream is consumed
 * or refused, never read past its end. Dot-stuffing ends with CRLF "." CRLF, holds
 * no line "." before it, and un-stuffed gives the input back (plus the CRLF it adds).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "providers/smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_replies(const char *p, size_t n)
{
    while (n > 0) {
        int code = 0;
        long used = smtp_reply_parse(p, n, &code);
        if (used <= 0)
            return;
        if ((size_t)used > n || p[used - 1] != '\n' || code < 200 || code > 599 ||
            code != (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0'))
            abort();
        p += used;
        n -= (size_t)used;
    }
}

static void check_stuffing(const char *p, size_t n)
{
    cd_buf_t out;
    cd_buf_init(&out, 2 * n + 16);
    if (!smtp_dot_stuff(&out, p, n))
        abort();
    const char *s = out.data;
    size_t len = out.len;
    if (len < 3 || memcmp(s + len - 3, ".\r\n", 3) != 0 || (len > 3 && s[len - 4] != '\n'))
        abort();
    /* un-stuff the data before the final "." line */
    char *back = malloc(len + 1);
    size_t k = 0;
    bool bol = true;
    for (size_t i = 0; i + 3 < len; i++) {
        if (bol && s[i] == '.') {
            if (i + 1 >= len - 3 || s[i + 1] != '.')
                abort(); /* a lone leading dot before the end */
            i++;
        }
        back[k++] = s[i];
        bol = s[i] == '\n';
    }
    /* back is the input, with CRLF added when it did not end with one */
    bool crlf = n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n';
    size_t want = n == 0 ? 0 : crlf ? n : n + 2;
    if (k != want || memcmp(back, p, n) != 0)
        abort();
    free(back);
    cd_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    check_replies((const char *)data, size);
    check_stuffing((const char *)data, size);
    return 0;
}
