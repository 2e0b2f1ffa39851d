/*
 * Shared text routines (see text.h). Each existed two to four times before,
 * with slightly different rules; these are the strictest of those copies.
 */
#include "core/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"

int cd_hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void cd_hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

size_t cd_percent_encode(char *out, size_t cap, const char *s, const char *keep, bool *complete)
{
    static const char digits[] = "0123456789ABCDEF";
    size_t w = 0;
    const unsigned char *p = (const unsigned char *)s;

    for (; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || (keep && strchr(keep, *p));
        if (w + (plain ? 1 : 3) >= cap)
            break;
        if (plain) {
            out[w++] = (char)*p;
        } else {
            out[w++] = '%';
            out[w++] = digits[*p >> 4];
            out[w++] = digits[*p & 15];
        }
    }
    out[w] = '\0';
    if (complete)
        *complete = *p == '\0';
    return w;
}

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t cd_base64url_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0, i = 0;

    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = B64URL[(v >> 18) & 63];
        out[o++] = B64URL[(v >> 12) & 63];
        out[o++] = B64URL[(v >> 6) & 63];
        out[o++] = B64URL[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = B64URL[(v >> 18) & 63];
        out[o++] = B64URL[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = B64URL[(v >> 18) & 63];
        out[o++] = B64URL[(v >> 12) & 63];
        out[o++] = B64URL[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

/* Value of one base64url character, or -1 outside the URL-safe alphabet. */
static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

bool cd_base64url_decode(const char *in, size_t in_len, unsigned char *out, size_t out_cap,
                         size_t *out_len)
{
    size_t rem = in_len % 4;
    size_t need = (in_len / 4) * 3 + (rem == 0 ? 0 : rem - 1);
    size_t o = 0;
    unsigned long acc = 0;
    int bits = 0;

    if (rem == 1 || need > out_cap)
        return false;
    for (size_t i = 0; i < in_len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return false;
        acc = ((acc << 6) | (unsigned long)v) & 0xffffffUL;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)((acc >> bits) & 0xffU);
        }
    }
    /* Leftover bits (2 or 4) must be zero in a canonical encoding. */
    if (bits > 0 && (acc & ((1UL << bits) - 1)) != 0)
        return false;
    *out_len = o;
    return true;
}

size_t cd_utf8_char_len(const unsigned char *s, size_t n)
{
    static const unsigned long min_cp[] = {0, 0x80, 0x800, 0x10000};
    unsigned char c = s[0];
    size_t extra = c < 0x80 ? 0 : c < 0xc2 ? 9 : c < 0xe0 ? 1 : c < 0xf0 ? 2 : c < 0xf5 ? 3 : 9;
    unsigned long cp;

    if (extra > 3 || n <= extra)
        return 0;
    cp = extra == 0 ? c : (c & (0x7fu >> (extra + 1)));
    for (size_t k = 1; k <= extra; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3fu);
    }
    if (cp < min_cp[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return extra + 1;
}

bool cd_utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t len = cd_utf8_char_len(s + i, n - i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}

size_t cd_utf8_scrub(char *s)
{
    unsigned char *p = (unsigned char *)s;
    size_t n = strlen(s), replaced = 0;

    for (size_t i = 0; i < n;) {
        size_t len = cd_utf8_char_len(p + i, n - i);
        if (len == 0) {
            p[i++] = '?';
            replaced++;
        } else {
            i += len;
        }
    }
    return replaced;
}

bool cd_utf8_count(const char *s, size_t n, size_t *chars)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t count = 0;

    for (size_t i = 0; i < n; count++) {
        size_t len = p[i] == 0 ? 0 : cd_utf8_char_len(p + i, n - i);
        if (len == 0)
            return false;
        i += len;
    }
    if (chars != NULL)
        *chars = count;
    return true;
}

size_t cd_json_depth(const json_t *j, size_t limit)
{
    size_t best = 0;

    if (!json_is_object(j) && !json_is_array(j))
        return 0;
    if (limit == 0)
        return 1;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
        {
            size_t d = cd_json_depth(v, limit - 1);
            if (d > best)
                best = d;
        }
    } else {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            size_t d = cd_json_depth(v, limit - 1);
            if (d > best)
                best = d;
        }
    }
    return best + 1;
}

void cd_json_strings(const json_t *o, ...)
{
    va_list ap;
    const char *key;

    va_start(ap, o);
    while ((key = va_arg(ap, const char *)) != NULL) {
        const char **out = va_arg(ap, const char **);
        *out = json_string_value(json_object_get(o, key));
    }
    va_end(ap);
}

/* cd_buf_add_json_str: jansson's dump_string, byte for byte (test_text holds
 * them together), so that text written here reads as json_dumps wrote it. */
bool cd_buf_add_json_str(cd_buf_t *b, const char *s)
{
    size_t n = strlen(s);
    if (!cd_utf8_valid((const unsigned char *)s, n) || !cd_buf_add(b, "\"", 1))
        return false;
    const char *run = s;
    for (const char *p = s;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (!cd_buf_add(b, run, (size_t)(p - run)))
            return false;
        if (!c)
            break;
        char esc[8];
        const char *e = c == '"'    ? "\\\""
                        : c == '\\' ? "\\\\"
                        : c == '\b' ? "\\b"
                        : c == '\f' ? "\\f"
                        : c == '\n' ? "\\n"
                        : c == '\r' ? "\\r"
                        : c == '\t' ? "\\t"
                                    : NULL;
        if (!e) {
            snprintf(esc, sizeof(esc), "\\u%04X", c);
            e = esc;
        }
        if (!cd_buf_adds(b, e))
            return false;
        run = p + 1;
    }
    return cd_buf_add(b, "\"", 1);
}
