/*
 * The Twilio provider (twilio.h): the create-Message call (webapi_exchange:
 * our HTTP/1.1 on a kept-alive connection libcurl opened), SMS segment
 * counting, webhook signatures and forms, inbound keywords and TwiML.
 * Hand-written parts and why: the GSM 03.38 table and the segment rules (no
 * Debian library counts SMS segments), the form decoder (the HTTP layer's
 * decoder is a layer above providers, and webhooks need the pairs in order
 * for the signature), and the signature itself (a documented composition of
 * OpenSSL's HMAC-SHA1 and base64).
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/text.h"
#include "providers/twilio.h"
#include "providers/webapi.h"

/* ------------------------------------------------------------ segments */

/* Code points of the GSM 03.38 basic character set beyond printable ASCII
 * (printable ASCII is basic except ` and the extension characters). */
static const unsigned gsm_basic_extra[] = {
    0x0A, 0x0D, 0xA1, 0xA3,  0xA4,  0xA5,  0xA7,  0xBF,  0xC4,  0xC5,  0xC6,  0xC7,  0xC9,  0xD1,
    0xD6, 0xD8, 0xDC, 0xDF,  0xE0,  0xE4,  0xE5,  0xE6,  0xE8,  0xE9,  0xEC,  0xF1,  0xF2,  0xF6,
    0xF8, 0xF9, 0xFC, 0x393, 0x394, 0x398, 0x39B, 0x39E, 0x3A0, 0x3A3, 0x3A6, 0x3A8, 0x3A9,
};

/* Septets of code point cp in GSM-7: 1 (basic), 2 (escape + extension), or 0
 * when it has no GSM-7 form. */
static int gsm_septets(unsigned cp)
{
    if (cp == 0x0C || cp == 0x20AC || (cp < 0x80 && strchr("^{}\\[]~|", (int)cp) && cp != 0))
        return 2;
    if (cp >= 0x20 && cp < 0x7F)
        return cp == 0x60 ? 0 : 1;
    for (size_t i = 0; i < CD_ARRAY_LEN(gsm_basic_extra); i++)
        if (gsm_basic_extra[i] == cp)
            return 1;
    return 0;
}

/* Decodes the code point at s (len bytes valid, checked by the caller). */
static unsigned utf8_code_point(const unsigned char *s, size_t len)
{
    if (len == 1)
        return s[0];
    unsigned cp = s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++)
        cp = (cp << 6) | (s[i] & 0x3F);
    return cp;
}

/* Segments of a body whose characters cost the given units, never splitting
 * a character: single when the total fits single, else greedy per part. */
static size_t split_segments(const unsigned char *s, size_t n, bool ucs2, size_t total)
{
    size_t single = ucs2 ? 70 : 160, part = ucs2 ? 67 : 153;
    if (total <= single)
        return 1;
    size_t segments = 1, used = 0;
    for (size_t i = 0; i < n;) {
        size_t len = cd_utf8_char_len(s + i, n - i);
        unsigned cp = utf8_code_point(s + i, len);
        size_t cost = ucs2 ? (cp > 0xFFFF ? 2 : 1) : (size_t)gsm_septets(cp);
        if (used + cost > part) {
            segments++;
            used = 0;
        }
        used += cost;
        i += len;
    }
    return segments;
}

bool twilio_count_segments(const char *body, twilio_segments_t *out)
{
    const unsigned char *s = (const unsigned char *)body;
    size_t n = strlen(body);
    if (!cd_utf8_valid(s, n))
        return false;
    size_t septets = 0, units = 0;
    bool ucs2 = false;
    for (size_t i = 0; i < n;) {
        size_t len = cd_utf8_char_len(s + i, n - i);
        unsigned cp = utf8_code_point(s + i, len);
        int g = gsm_septets(cp);
        if (g == 0)
            ucs2 = true;
        septets += (size_t)g;
        units += cp > 0xFFFF ? 2 : 1;
        i += len;
    }
    out->ucs2 = ucs2;
    out->units = ucs2 ? units : septets;
    out->segments = split_segments(s, n, ucs2, out->units);
    return true;
}

/* ---------------------------------------------------------------- forms */

/* Decodes s in place ('+' is a space); false on a bad escape or %00. */
static bool form_decode(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r == '+') {
            *w++ = ' ';
        } else if (*r == '%') {
            int hi = cd_hex_value((unsigned char)r[1]);
            int lo = hi < 0 ? -1 : cd_hex_value((unsigned char)r[2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return false;
            *w++ = (char)(hi * 16 + lo);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return cd_utf8_valid((const unsigned char *)s, (size_t)(w - s));
}

bool twilio_form_parse(char *body, twilio_param_t *params, size_t max, size_t *n)
{
    *n = 0;
    char *p = body;
    while (*p) {
        char *amp = strchr(p, '&');
        if (amp)
            *amp = '\0';
        if (*p) {
            char *eq = strchr(p, '=');
            char *value = eq ? eq + 1 : p + strlen(p);
            if (eq)
                *eq = '\0';
            if (*n >= max || !*p || !form_decode(p) || !form_decode(value) || !*p)
                return false;
            params[*n].name = p;
            params[*n].value = value;
            (*n)++;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return true;
}

const char *twilio_form_get(const twilio_param_t *params, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(params[i].name, name) == 0)
            return params[i].value;
    return NULL;
}

/* ----------------------------------------------------------- signatures */

static int param_cmp(const void *a, const void *b)
{
    const twilio_param_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

bool twilio_signature(const char *auth_token, const char *url, const twilio_param_t *params,
                      size_t n, char out[TWILIO_SIGNATURE_LEN + 1])
{
    if (n > TWILIO_MAX_FORM_PARAMS)
        return false;
    twilio_param_t sorted[TWILIO_MAX_FORM_PARAMS];
    if (n)
        memcpy(sorted, params, n * sizeof(*params));
    qsort(sorted, n, sizeof(*sorted), param_cmp);
    EVP_MAC *alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *h = alg ? EVP_MAC_CTX_new(alg) : NULL;
    OSSL_PARAM md[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA1", 0),
                       OSSL_PARAM_construct_end()};
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    bool ok = h && EVP_MAC_init(h, (const unsigned char *)auth_token, strlen(auth_token), md) &&
              EVP_MAC_update(h, (const unsigned char *)url, strlen(url));
    for (size_t i = 0; ok && i < n; i++)
        ok = EVP_MAC_update(h, (const unsigned char *)sorted[i].name, strlen(sorted[i].name)) &&
             EVP_MAC_update(h, (const unsigned char *)sorted[i].value, strlen(sorted[i].value));
    ok = ok && EVP_MAC_final(h, mac, &maclen, sizeof(mac)) && maclen == 20;
    EVP_MAC_CTX_free(h);
    EVP_MAC_free(alg);
    if (!ok)
        return false;
    EVP_EncodeBlock((unsigned char *)out, mac, 20);
    out[TWILIO_SIGNATURE_LEN] = '\0';
    return true;
}

bool twilio_signature_ok(const char *auth_token, const char *url, const twilio_param_t *params,
                         size_t n, const char *header)
{
    char want[TWILIO_SIGNATURE_LEN + 1];
    if (!auth_token || !*auth_token || !header || !*header)
        return false;
    if (!twilio_signature(auth_token, url, params, n, want))
        return false;
    return cd_secure_equal(want, header);
}

/* ------------------------------------------------------------- keywords */

static const char *const stop_words[] = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END",
                                         "QUIT", "REVOKE",  "OPTOUT",      "OPT OUT"};
static const char *const start_words[] = {"START", "YES", "UNSTOP"};
static const char *const help_words[] = {"HELP", "INFO"};

static bool in_list(const char *w, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(w, list[i]) == 0)
            return true;
    return false;
}

static bool is_trim(unsigned char c)
{
    return isspace(c) || ispunct(c);
}

twilio_keyword_t twilio_classify_keyword(const char *body)
{
    if (!body)
        return TWILIO_KEYWORD_NONE;
    const unsigned char *b = (const unsigned char *)body, *e = b + strlen(body);
    while (b < e && is_trim(*b))
        b++;
    while (e > b && is_trim(e[-1]))
        e--;
    char word[16];
    size_t k = 0;
    for (const unsigned char *p = b; p < e; p++) {
        if (*p >= 0x80 || (ispunct(*p)))
            return TWILIO_KEYWORD_NONE;
        if (isspace(*p)) {
            if (k > 0 && word[k - 1] == ' ')
                continue;
            if (k + 1 >= sizeof(word))
                return TWILIO_KEYWORD_NONE;
            word[k++] = ' ';
            continue;
        }
        if (k + 1 >= sizeof(word))
            return TWILIO_KEYWORD_NONE;
        word[k++] = (char)toupper(*p);
    }
    word[k] = '\0';
    if (in_list(word, stop_words, CD_ARRAY_LEN(stop_words)))
        return TWILIO_KEYWORD_STOP;
    if (in_list(word, start_words, CD_ARRAY_LEN(start_words)))
        return TWILIO_KEYWORD_START;
    if (in_list(word, help_words, CD_ARRAY_LEN(help_words)))
        return TWILIO_KEYWORD_HELP;
    return TWILIO_KEYWORD_NONE;
}

bool twilio_twiml(cd_buf_t *out, const char *message)
{
    if (!cd_buf_adds(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"))
        return false;
    if (!message || !*message)
        return cd_buf_adds(out, "<Response/>");
    if (!cd_buf_adds(out, "<Response><Message>"))
        return false;
    for (const char *p = message; *p; p++) {
        const char *esc = *p == '&'    ? "&amp;"
                          : *p == '<'  ? "&lt;"
                          : *p == '>'  ? "&gt;"
                          : *p == '"'  ? "&quot;"
                          : *p == '\'' ? "&apos;"
                                       : NULL;
        if (!(esc ? cd_buf_adds(out, esc) : cd_buf_add(out, p, 1)))
            return false;
    }
    return cd_buf_adds(out, "</Message></Response>");
}

/* ----------------------------------------------------------------- send */

twilio_client_t *twilio_client_new(void)
{
    return webapi_client_new();
}

void twilio_client_free(twilio_client_t *c)
{
    webapi_client_free(c);
}

/* Appends &name=value (value percent-encoded as a form value, core/text's
 * cd_percent_encode: unreserved characters kept, no printf per escape). */
static bool form_add(cd_buf_t *out, const char *name, const char *value)
{
    if (out->len && !cd_buf_adds(out, "&"))
        return false;
    if (!cd_buf_adds(out, name) || !cd_buf_adds(out, "="))
        return false;
    size_t cap = 3 * strlen(value) + 1; /* every byte escaped, and the NUL */
    char small[1024];
    char *enc = cap <= sizeof(small) ? small : malloc(cap);
    if (!enc)
        return false;
    size_t n = cd_percent_encode(enc, cap, value, "-._~", NULL);
    bool ok = cd_buf_add(out, enc, n);
    if (enc != small)
        free(enc);
    return ok;
}

bool twilio_message_form(const twilio_config_t *cfg, const char *to, const char *body,
                         const char *status_callback, cd_buf_t *out)
{
    bool service = strncmp(cfg->from, "MG", 2) == 0;
    return form_add(out, "To", to) &&
           form_add(out, service ? "MessagingServiceSid" : "From", cfg->from) &&
           form_add(out, "Body", body) &&
           (!status_callback || form_add(out, "StatusCallback", status_callback));
}

static bool sid_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 2 || n >= TWILIO_SID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]))
            return false;
    return true;
}

/* ----------------------------------------------------------- the answer */

/* twilio_answer_scan: a recursive descent over the answer with jansson's
 * grammar and limits (json_loadb, flags 0), copying only the members asked
 * for. json_loadb built a tree of the ~25 values of a Message resource (a
 * malloc each, a hash table per object) to read five of them: ~14 % of
 * campaignd's CPU per SMS. tests/fuzz/fuzz_twilio_answer.c holds the two
 * readers to the same answers. */
typedef struct scan {
    const unsigned char *p, *end;
    int depth;
} scan_t;

#define SCAN_MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */

static bool scan_value(scan_t *s, char *dst, size_t cap);

static void scan_ws(scan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static bool scan_at(const scan_t *s, char c)
{
    return s->p < s->end && *s->p == (unsigned char)c;
}

static bool scan_digit(const scan_t *s)
{
    return s->p < s->end && *s->p >= '0' && *s->p <= '9';
}

/* Byte c of a decoded text: into dst while it fits with its NUL (cap), as
 * snprintf cuts; *n counts them all. */
static void scan_put(char *dst, size_t cap, size_t *n, unsigned c)
{
    if (dst && *n + 1 < cap)
        dst[*n] = (char)c;
    (*n)++;
}

/* The four hex digits at p (checked to be there), or -1. */
static long scan_hex4(const unsigned char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int d = cd_hex_value(p[i]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* The \u escape after "\u" at s->p: a code point (a surrogate pair joined),
 * 0 when malformed, unpaired or NUL (jansson refuses \u0000 without
 * JSON_ALLOW_NUL). */
static unsigned long scan_u_escape(scan_t *s)
{
    long hi = s->end - s->p >= 4 ? scan_hex4(s->p) : -1;
    if (hi <= 0 || (hi >= 0xDC00 && hi <= 0xDFFF))
        return 0;
    s->p += 4;
    if (hi < 0xD800 || hi > 0xDBFF)
        return (unsigned long)hi;
    if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u')
        return 0;
    long lo = scan_hex4(s->p + 2);
    if (lo < 0xDC00 || lo > 0xDFFF)
        return 0;
    s->p += 6;
    return 0x10000 + (((unsigned long)hi - 0xD800) << 10) + ((unsigned long)lo - 0xDC00);
}

/* The string at s->p (its opening quote): its decoded text into dst (cap
 * bytes with the NUL; NULL: nowhere), its length in *len. */
static bool scan_string(scan_t *s, char *dst, size_t cap, size_t *len)
{
    static const char unescape[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
    size_t n = 0;
    s->p++;
    for (;;) {
        if (s->p >= s->end)
            return false;
        unsigned char c = *s->p;
        if (c == '"')
            break;
        if (c < 0x20)
            return false;
        if (c >= 0x80) {
            size_t k = cd_utf8_char_len(s->p, (size_t)(s->end - s->p));
            if (!k)
                return false;
            for (size_t i = 0; i < k; i++)
                scan_put(dst, cap, &n, s->p[i]);
            s->p += k;
            continue;
        }
        s->p++;
        if (c != '\\') {
            scan_put(dst, cap, &n, c);
            continue;
        }
        if (s->p >= s->end)
            return false;
        unsigned char e = *s->p++;
        if (e != 'u') {
            const char *m = e ? strchr(unescape, e) : NULL;
            if (!m || (m - unescape) % 2)
                return false;
            scan_put(dst, cap, &n, (unsigned char)m[1]);
            continue;
        }
        unsigned long cp = scan_u_escape(s);
        if (!cp)
            return false;
        if (cp < 0x80) {
            scan_put(dst, cap, &n, (unsigned)cp);
        } else if (cp < 0x800) {
            scan_put(dst, cap, &n, 0xC0 | (unsigned)(cp >> 6));
            scan_put(dst, cap, &n, 0x80 | (unsigned)(cp & 0x3F));
        } else if (cp < 0x10000) {
            scan_put(dst, cap, &n, 0xE0 | (unsigned)(cp >> 12));
            scan_put(dst, cap, &n, 0x80 | (unsigned)((cp >> 6) & 0x3F));
            scan_put(dst, cap, &n, 0x80 | (unsigned)(cp & 0x3F));
        } else {
            scan_put(dst, cap, &n, 0xF0 | (unsigned)(cp >> 18));
            scan_put(dst, cap, &n, 0x80 | (unsigned)((cp >> 12) & 0x3F));
            scan_put(dst, cap, &n, 0x80 | (unsigned)((cp >> 6) & 0x3F));
            scan_put(dst, cap, &n, 0x80 | (unsigned)(cp & 0x3F));
        }
    }
    s->p++;
    if (dst && cap)
        dst[n < cap ? n : cap - 1] = '\0';
    *len = n;
    return true;
}

/* The number at s->p, jansson's: an integer must fit a long long (its text
 * "%lld" into dst), a real must be finite. */
static bool scan_number(scan_t *s, char *dst, size_t cap)
{
    const unsigned char *b = s->p;
    bool real = false;
    if (scan_at(s, '-'))
        s->p++;
    if (scan_at(s, '0')) {
        s->p++;
        if (scan_digit(s))
            return false;
    } else if (scan_digit(s)) {
        while (scan_digit(s))
            s->p++;
    } else {
        return false;
    }
    if (scan_at(s, '.')) {
        s->p++;
        if (!scan_digit(s))
            return false;
        while (scan_digit(s))
            s->p++;
        real = true;
    }
    if (scan_at(s, 'e') || scan_at(s, 'E')) {
        s->p++;
        if (scan_at(s, '+') || scan_at(s, '-'))
            s->p++;
        if (!scan_digit(s))
            return false;
        while (scan_digit(s))
            s->p++;
        real = true;
    }
    size_t n = (size_t)(s->p - b);
    char small[64];
    char *text = n < sizeof(small) ? small : malloc(n + 1);
    if (!text)
        return false;
    memcpy(text, b, n);
    text[n] = '\0';
    errno = 0;
    bool ok = true;
    if (real) {
        double d = strtod(text, NULL);
        ok = !((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE);
    } else {
        long long v = strtoll(text, NULL, 10);
        ok = errno != ERANGE;
        if (ok && dst)
            snprintf(dst, cap, "%lld", v);
    }
    if (text != small)
        free(text);
    return ok;
}

/* After a member or an element: the closing byte close (taken: 1), or a
 * comma and the space after it (taken: 0, another one follows); -1 for
 * anything else. */
static int scan_next(scan_t *s, char close)
{
    scan_ws(s);
    if (scan_at(s, close)) {
        s->p++;
        return 1;
    }
    if (!scan_at(s, ','))
        return -1;
    s->p++;
    scan_ws(s);
    return 0;
}

/* The object at s->p (its brace); members named in fields are copied. */
static bool scan_object(scan_t *s, twilio_answer_field_t *fields, size_t nfields)
{
    s->p++;
    scan_ws(s);
    if (scan_at(s, '}')) {
        s->p++;
        return true;
    }
    for (;;) {
        char key[32];
        size_t klen = 0;
        if (!scan_at(s, '"') || !scan_string(s, key, sizeof(key), &klen))
            return false;
        twilio_answer_field_t *hit = NULL;
        for (size_t i = 0; i < nfields && klen < sizeof(key); i++)
            if (strcmp(key, fields[i].name) == 0)
                hit = &fields[i];
        scan_ws(s);
        if (!scan_at(s, ':'))
            return false;
        s->p++;
        scan_ws(s);
        if (hit) /* the last of a repeated name counts, whatever it is */
            hit->dst[0] = '\0';
        if (!scan_value(s, hit ? hit->dst : NULL, hit ? hit->cap : 0))
            return false;
        int next = scan_next(s, '}');
        if (next)
            return next > 0;
    }
}

static bool scan_array(scan_t *s)
{
    s->p++;
    scan_ws(s);
    if (scan_at(s, ']')) {
        s->p++;
        return true;
    }
    for (;;) {
        if (!scan_value(s, NULL, 0))
            return false;
        int next = scan_next(s, ']');
        if (next)
            return next > 0;
    }
}

static bool scan_word(scan_t *s, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
        return false;
    s->p += n;
    return true;
}

/* One value at s->p (white space skipped); a string's or an integer's text
 * into dst when given. */
static bool scan_value(scan_t *s, char *dst, size_t cap)
{
    if (++s->depth > SCAN_MAX_DEPTH || s->p >= s->end)
        return false;
    const unsigned char *first = s->p;
    bool ok;
    size_t len;
    switch (*first) {
    case '{':
        ok = scan_object(s, NULL, 0);
        break;
    case '[':
        ok = scan_array(s);
        break;
    case '"':
        ok = scan_string(s, dst, cap, &len);
        break;
    case 't':
        ok = scan_word(s, "true");
        break;
    case 'f':
        ok = scan_word(s, "false");
        break;
    case 'n':
        ok = scan_word(s, "null");
        break;
    default:
        ok = scan_number(s, dst, cap);
        break;
    }
    /* jansson's lexer loses a NUL byte it reads past the end of a number or
     * a word (its unget of a NUL is a no-op): one there is skipped, as it is */
    if (ok && *first != '{' && *first != '[' && *first != '"' && scan_at(s, '\0'))
        s->p++;
    s->depth--;
    return ok;
}

bool twilio_answer_scan(const char *json, size_t len, twilio_answer_field_t *fields, size_t nfields)
{
    scan_t s = {(const unsigned char *)json, (const unsigned char *)json + len, 1};
    for (size_t i = 0; i < nfields; i++)
        fields[i].dst[0] = '\0';
    scan_ws(&s);
    bool ok = scan_at(&s, '{') && scan_object(&s, fields, nfields);
    scan_ws(&s);
    if (ok && s.p == s.end)
        return true;
    for (size_t i = 0; i < nfields; i++)
        fields[i].dst[0] = '\0';
    return false;
}

/* Reads Twilio's JSON answer into res (Message resource or error). */
static void read_answer(const cd_buf_t *body, twilio_result_t *res)
{
    const char *text = body->data ? body->data : "";
    if (res->outcome == TWILIO_ACCEPTED) {
        char segs[24];
        twilio_answer_field_t f[] = {
            {"sid", res->sid, sizeof(res->sid)},
            {"status", res->status, sizeof(res->status)},
            {"price", res->price, sizeof(res->price)},
            {"price_unit", res->price_unit, sizeof(res->price_unit)},
            {"num_segments", segs, sizeof(segs)},
        };
        if (twilio_answer_scan(text, body->len, f, CD_ARRAY_LEN(f)))
            res->num_segments = strtol(segs, NULL, 10);
        return;
    }
    char msg[400];
    twilio_answer_field_t f[] = {
        {"code", res->error_code, sizeof(res->error_code)},
        {"message", msg, sizeof(msg)},
    };
    if (twilio_answer_scan(text, body->len, f, CD_ARRAY_LEN(f)))
        snprintf(res->error, sizeof(res->error), "Twilio answered HTTP %ld: %s", res->http_status,
                 *msg ? msg : "no message");
    else
        snprintf(res->error, sizeof(res->error), "Twilio answered HTTP %ld", res->http_status);
}

twilio_outcome_t twilio_status_outcome(long s)
{
    /* 408: the server gave up waiting for the request (an idle connection's
     * close, a slow write), so it did not act on it: try again later */
    return s == 201 || s == 200               ? TWILIO_ACCEPTED
           : s == 408 || s == 429 || s >= 500 ? TWILIO_TEMPORARY
                                              : TWILIO_PERMANENT;
}

/* Sets the outcome from the HTTP status. */
static void classify(twilio_result_t *res)
{
    res->outcome = twilio_status_outcome(res->http_status);
}

/* Performs r, classifies the answer and reads it into res; false (res
 * filled) when no answer came. */
static bool perform(twilio_client_t *c, const webapi_request_t *r, cd_buf_t *answer,
                    twilio_result_t *res)
{
    char why[256] = "";
    webapi_status_t ws = webapi_exchange(c, r, answer, &res->http_status, why, sizeof(why));
    if (ws != WEBAPI_ANSWERED) {
        res->outcome = ws == WEBAPI_NOT_SENT ? TWILIO_TEMPORARY : TWILIO_UNKNOWN;
        snprintf(res->error, sizeof(res->error), "Twilio request failed: %s", why);
        return false;
    }
    classify(res);
    read_answer(answer, res);
    return true;
}

twilio_outcome_t twilio_send(twilio_client_t *c, const twilio_config_t *cfg, const char *to,
                             const char *body, const char *status_callback, twilio_result_t *res)
{
    memset(res, 0, sizeof(*res));
    res->outcome = TWILIO_PERMANENT;
    cd_buf_t form, answer;
    cd_buf_init(&form, 64 * 1024);
    cd_buf_init(&answer, 256 * 1024);
    char url[2048];
    if (!sid_ok(cfg->account_sid) || !cfg->auth_token || !*cfg->auth_token || !cfg->from ||
        !*cfg->from) {
        snprintf(res->error, sizeof(res->error),
                 "Twilio is not configured (account SID, auth "
                 "token and sender are required)");
        goto done;
    }
    if (!twilio_message_form(cfg, to, body, status_callback, &form) ||
        snprintf(url, sizeof(url), "%s/2010-04-01/Accounts/%s/Messages.json", cfg->api_base,
                 cfg->account_sid) >= (int)sizeof(url)) {
        snprintf(res->error, sizeof(res->error), "the message is too large");
        goto done;
    }
    webapi_request_t r = {.url = url,
                          .user = cfg->account_sid,
                          .password = cfg->auth_token,
                          .body = form.data ? form.data : "",
                          .body_len = form.len,
                          .timeout_seconds = cfg->timeout_seconds};
    if (!perform(c, &r, &answer, res))
        goto done;
    if (res->outcome == TWILIO_ACCEPTED && !*res->sid) {
        /* accepted without a SID: we cannot follow it, and resending could duplicate */
        res->outcome = TWILIO_PERMANENT;
        snprintf(res->error, sizeof(res->error), "Twilio accepted the message without a sid");
    }
done:
    cd_buf_free(&form);
    cd_buf_free(&answer);
    return res->outcome;
}

twilio_outcome_t twilio_fetch_message(twilio_client_t *c, const twilio_config_t *cfg,
                                      const char *message_sid, twilio_result_t *res)
{
    memset(res, 0, sizeof(*res));
    res->outcome = TWILIO_PERMANENT;
    cd_buf_t answer;
    cd_buf_init(&answer, 256 * 1024);
    char url[2048];
    if (!sid_ok(cfg->account_sid) || !cfg->auth_token || !*cfg->auth_token) {
        snprintf(res->error, sizeof(res->error),
                 "Twilio is not configured (account SID and auth token are required)");
    } else if (!sid_ok(message_sid) ||
               snprintf(url, sizeof(url), "%s/2010-04-01/Accounts/%s/Messages/%s.json",
                        cfg->api_base, cfg->account_sid, message_sid) >= (int)sizeof(url)) {
        snprintf(res->error, sizeof(res->error), "not a Twilio message sid");
    } else {
        webapi_request_t r = {.url = url,
                              .user = cfg->account_sid,
                              .password = cfg->auth_token,
                              .timeout_seconds = cfg->timeout_seconds};
        /* a GET changes nothing: a lost answer is only a temporary failure */
        if (!perform(c, &r, &answer, res) && res->outcome == TWILIO_UNKNOWN)
            res->outcome = TWILIO_TEMPORARY;
    }
    cd_buf_free(&answer);
    return res->outcome;
}

/* ---------------------------------------------------- the SMS provider */

typedef struct twilio_provider {
    sms_provider_t base;      /* first: the seam's view */
    webapi_account_t account; /* api_base, the auth token (secret), client */
    char account_sid[TWILIO_SID_MAX];
} twilio_provider_t;

/* Twilio's price ("-0.00750", negative for money spent) in millionths, its
 * sign kept: stored as Twilio writes it, as record_sms_price stores a
 * fetched one (the reports sum abs(cost)); false when there is none
 * (Twilio's create answer nearly always has "price": null: not priced yet,
 * not free). */
static bool price_micros(const char *price, long long *micros)
{
    char *end = NULL;
    *micros = 0;
    double v = *price ? strtod(price, &end) : 0.0;
    if (!end || *end || v != v)
        return false;
    if (v > 1e9 || v < -1e9)
        return false; /* no price of one message */
    *micros = (long long)(v * 1e6 + (v < 0 ? -0.5 : 0.5));
    return true;
}

static void twilio_provider_send(sms_provider_t *p, const provider_sms_t *m,
                                 provider_sms_result_t *r)
{
    twilio_provider_t *tp = (twilio_provider_t *)p;
    memset(r, 0, sizeof(*r));
    /* our message id rides in the callback URL (signed by Twilio with it), so
     * a callback that overtakes our own bookkeeping still finds its message */
    char cb[1024] = "";
    const char *url = m->status_callback_url;
    if (url && *url)
        snprintf(cb, sizeof(cb), "%s%sm=%s", url, strchr(url, '?') ? "&" : "?", m->message_uuid);
    const webapi_account_t *a = &tp->account;
    twilio_config_t cfg = {a->api_base, tp->account_sid, a->secret, m->from, a->timeout_seconds};
    twilio_result_t tr;
    twilio_outcome_t o = twilio_send(a->client, &cfg, m->to, m->body, *cb ? cb : NULL, &tr);
    r->outcome = o == TWILIO_ACCEPTED    ? PROVIDER_ACCEPTED
                 : o == TWILIO_TEMPORARY ? PROVIDER_TEMPFAIL
                 : o == TWILIO_UNKNOWN   ? PROVIDER_UNKNOWN
                                         : PROVIDER_PERMFAIL;
    snprintf(r->sid, sizeof(r->sid), "%s", tr.sid);
    snprintf(r->status, sizeof(r->status), "%.*s", (int)sizeof(r->status) - 1, tr.status);
    snprintf(r->error, sizeof(r->error), "%.*s", (int)sizeof(r->error) - 1, tr.error);
    /* Twilio's count when it gives one (a number past any body's 1,600
     * characters is none), else ours */
    twilio_segments_t seg = {.segments = 1};
    bool theirs = tr.num_segments > 0 && tr.num_segments <= 1600;
    if (!theirs && !twilio_count_segments(m->body, &seg))
        seg.segments = 1;
    r->segments = theirs ? (int)tr.num_segments : (int)seg.segments;
    r->priced = price_micros(tr.price, &r->cost_micros);
}

static void twilio_provider_close(sms_provider_t *p)
{
    twilio_provider_t *tp = (twilio_provider_t *)p;
    webapi_account_close(&tp->account);
    free(tp);
}

static const sms_provider_ops_t twilio_provider_ops = {
    .name = "twilio",
    .send = twilio_provider_send,
    .close = twilio_provider_close,
};

sms_provider_t *twilio_provider_open(const provider_settings_t *s, char *err, size_t errlen)
{
    if (!sid_ok(s->twilio_account_sid) || !*s->twilio_auth_token) {
        snprintf(err, errlen, "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are required");
        return NULL;
    }
    twilio_provider_t *tp = calloc(1, sizeof(*tp));
    if (!tp) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!webapi_account_open(&tp->account, s->twilio_api_base, "https://api.twilio.com",
                             "TWILIO_API_BASE", s->twilio_auth_token, "TWILIO_AUTH_TOKEN",
                             s->timeout_seconds, err, errlen)) {
        free(tp);
        return NULL;
    }
    tp->base.ops = &twilio_provider_ops;
    snprintf(tp->account_sid, sizeof(tp->account_sid), "%s", s->twilio_account_sid);
    return &tp->base;
}
