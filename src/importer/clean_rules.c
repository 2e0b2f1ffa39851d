/*
 * The cleaning rules of column_config (trim, lowercase, uppercase,
 * title_case, collapse_whitespace, replace, default, validate_email,
 * normalize_phone, parse_date, parse_number, max_length): compiling a rule
 * object once, and applying it to one value many times without a malloc
 * (the per-row arena). Case mapping is ASCII in C and everything else ICU;
 * phone numbers are libphonenumber through phone.h.
 */
#include "importer/clean_internal.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <unicode/uchar.h>
#include <unicode/utf8.h>
#include <unicode/ustring.h>

#include "importer/phone.h"

/* ---------------------------------------------------------------- arena */

#define ARENA_BLOCK (64u * 1024u)

char *clean__arena_reserve(clean__arena_t *a, size_t n)
{
    clean__block_t *b = a->cur;
    if (b && b->cap - b->used >= n + 1)
        return b->data + b->used;
    /* the next kept block if it is big enough, else a new one after cur */
    if (b && b->next && b->next->cap >= n + 1) {
        a->cur = b->next;
        a->cur->used = 0;
        return a->cur->data;
    }
    size_t cap = n + 1 > ARENA_BLOCK ? n + 1 : ARENA_BLOCK;
    clean__block_t *nb = malloc(sizeof(*nb) + cap);
    if (!nb)
        return NULL;
    nb->cap = cap;
    nb->used = 0;
    if (!b) {
        nb->next = NULL;
        a->first = nb;
    } else {
        nb->next = b->next;
        b->next = nb;
    }
    a->cur = nb;
    return nb->data;
}

void clean__arena_commit(clean__arena_t *a, size_t used)
{
    a->cur->used += used + 1;
}

void clean__arena_reset(clean__arena_t *a)
{
    /* keep the first blocks; drop oversized ones so one huge row does not pin
     * its memory for the rest of the file */
    clean__block_t **pp = &a->first;
    while (*pp) {
        clean__block_t *b = *pp;
        if (b->cap > ARENA_BLOCK * 4) {
            *pp = b->next;
            free(b);
            continue;
        }
        b->used = 0;
        pp = &b->next;
    }
    a->cur = a->first;
}

void clean__arena_free(clean__arena_t *a)
{
    clean__block_t *b = a->first;
    while (b) {
        clean__block_t *n = b->next;
        free(b);
        b = n;
    }
    a->first = a->cur = NULL;
}

/* ----------------------------------------------------------- whitespace */

size_t clean__ws_at(const char *s, size_t len)
{
    unsigned char c = (unsigned char)s[0];
    if (c == ' ' || (c >= '\t' && c <= '\r'))
        return 1;
    if (c < 0xC2 || len < 2)
        return 0;
    unsigned char d = (unsigned char)s[1];
    if (c == 0xC2 && (d == 0xA0 || d == 0x85))
        return 2; /* NBSP, NEL */
    if (len < 3)
        return 0;
    unsigned char e = (unsigned char)s[2];
    if (c == 0xE2 && d == 0x80 && (e <= 0x8A || e == 0xA8 || e == 0xA9 || e == 0xAF))
        return 3; /* U+2000–200A, line/paragraph separators, narrow NBSP */
    if (c == 0xE2 && d == 0x81 && e == 0x9F)
        return 3; /* U+205F */
    if (c == 0xE3 && d == 0x80 && e == 0x80)
        return 3; /* U+3000 */
    if (c == 0xEF && d == 0xBB && e == 0xBF)
        return 3; /* U+FEFF, a stray BOM */
    return 0;
}

size_t clean__ws_before(const char *s, size_t len)
{
    if (!len)
        return 0;
    unsigned char c = (unsigned char)s[len - 1];
    if (c < 0x80)
        return clean__ws_at(s + len - 1, 1);
    for (size_t k = 2; k <= 3 && k <= len; k++) {
        if (clean__ws_at(s + len - k, k) == k)
            return k;
    }
    return 0;
}

/* ------------------------------------------------------------ case maps */

static bool is_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] & 0x80)
            return false;
    }
    return true;
}

static bool is_alnum_ascii(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

typedef enum casemap { CASE_LOWER, CASE_UPPER, CASE_TITLE } casemap_t;

/* Non-ASCII text through ICU: UTF-8 → UTF-16 → mapped → UTF-8, all in the
 * arena, with full case mapping (ß → SS). Title case: title_icu. */
/* Title case without ICU's word break iterator (u_strToTitle opens one per
 * call, which made it the importer's slowest rule): a word starts after a
 * character that is neither a letter, a digit nor an apostrophe, as in the
 * ASCII path; each code point gets ICU's simple title/lower mapping. */
static clean__rc_t title_icu(clean__arena_t *a, const char **s, size_t *len)
{
    const uint8_t *in = (const uint8_t *)*s;
    int32_t n = (int32_t)*len, i = 0, k = 0;
    if (*len > CLEAN__MAX_VALUE_BYTES / 2)
        return CLEAN_TOO_BIG;
    /* a simple case mapping changes a character's UTF-8 length by at most
     * one byte (2 → 3), so twice the input is always enough */
    uint8_t *o = (uint8_t *)clean__arena_reserve(a, *len * 2 + 4);
    if (!o)
        return CLEAN_NOMEM;
    bool word_start = true;
    while (i < n) {
        UChar32 c;
        U8_NEXT(in, i, n, c);
        if (c < 0)
            return CLEAN_INVALID;
        UChar32 mapped = word_start ? u_totitle(c) : u_tolower(c);
        U8_APPEND_UNSAFE(o, k, mapped);
        word_start = !u_isalnum(c) && c != '\'' && c != 0x2019;
    }
    o[k] = '\0';
    clean__arena_commit(a, (size_t)k);
    *s = (const char *)o;
    *len = (size_t)k;
    return CLEAN_OK;
}

static clean__rc_t case_icu(casemap_t m, clean__arena_t *a, const char **s, size_t *len)
{
    if (m == CASE_TITLE)
        return title_icu(a, s, len);
    if (*len > CLEAN__MAX_VALUE_BYTES / 4)
        return CLEAN_TOO_BIG;
    /* UTF-16 needs at most as many units as UTF-8 has bytes; case mapping
     * grows UTF-16 at most threefold. */
    int32_t cap16 = (int32_t)*len + 1;
    size_t bytes16 = (size_t)cap16 * 4 * sizeof(UChar) + sizeof(UChar);
    char *raw = clean__arena_reserve(a, bytes16);
    if (!raw)
        return CLEAN_NOMEM;
    UChar *u = (UChar *)(void *)(raw + ((uintptr_t)raw & 1));
    UChar *v = u + cap16;
    int32_t vcap = cap16 * 3;
    UErrorCode ec = U_ZERO_ERROR;
    int32_t n16 = 0, nv = 0;
    u_strFromUTF8(u, cap16, &n16, *s, (int32_t)*len, &ec);
    if (U_FAILURE(ec))
        return CLEAN_INVALID;
    if (m == CASE_LOWER)
        nv = u_strToLower(v, vcap, u, n16, "", &ec);
    else
        nv = u_strToUpper(v, vcap, u, n16, "", &ec);
    if (U_FAILURE(ec))
        return CLEAN_INVALID;
    clean__arena_commit(a, bytes16);
    size_t cap8 = (size_t)nv * 3;
    char *o = clean__arena_reserve(a, cap8);
    if (!o)
        return CLEAN_NOMEM;
    int32_t n8 = 0;
    ec = U_ZERO_ERROR;
    u_strToUTF8(o, (int32_t)cap8 + 1, &n8, v, nv, &ec);
    if (U_FAILURE(ec))
        return CLEAN_INVALID;
    o[n8] = '\0';
    clean__arena_commit(a, (size_t)n8);
    *s = o;
    *len = (size_t)n8;
    return CLEAN_OK;
}

static clean__rc_t case_map(casemap_t m, clean__arena_t *a, const char **s, size_t *len)
{
    const char *in = *s;
    size_t n = *len;
    if (!is_ascii(in, n))
        return case_icu(m, a, s, len);
    /* nothing to change: no copy */
    size_t i = 0;
    if (m == CASE_LOWER) {
        while (i < n && !(in[i] >= 'A' && in[i] <= 'Z'))
            i++;
    } else if (m == CASE_UPPER) {
        while (i < n && !(in[i] >= 'a' && in[i] <= 'z'))
            i++;
    }
    if (i == n && m != CASE_TITLE)
        return CLEAN_OK;
    char *o = clean__arena_reserve(a, n);
    if (!o)
        return CLEAN_NOMEM;
    bool word_start = true;
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)in[k];
        bool up = m == CASE_UPPER || (m == CASE_TITLE && word_start);
        if (up && c >= 'a' && c <= 'z')
            c = (unsigned char)(c - 32);
        else if (!up && c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        o[k] = (char)c;
        /* a word starts after anything but a letter, a digit or an apostrophe
         * (o'neil → O'neil, as ICU's word breaks do) */
        word_start = !is_alnum_ascii(c) && c != '\'';
    }
    o[n] = '\0';
    clean__arena_commit(a, n);
    *s = o;
    return CLEAN_OK;
}

/* ------------------------------------------------------------- the rules */

static clean__rc_t rule_trim(const char **s, size_t *len)
{
    const char *p = *s;
    size_t n = *len, w;
    while (n && (w = clean__ws_at(p, n)) > 0) {
        p += w;
        n -= w;
    }
    while (n && (w = clean__ws_before(p, n)) > 0)
        n -= w;
    *s = p;
    *len = n;
    return CLEAN_OK;
}

static clean__rc_t rule_collapse(clean__arena_t *a, const char **s, size_t *len)
{
    const char *in = *s;
    size_t n = *len;
    char *o = clean__arena_reserve(a, n);
    if (!o)
        return CLEAN_NOMEM;
    size_t k = 0;
    bool changed = false;
    for (size_t i = 0; i < n;) {
        size_t w = clean__ws_at(in + i, n - i);
        if (!w) {
            o[k++] = in[i++];
            continue;
        }
        size_t start = i;
        while (i < n && (w = clean__ws_at(in + i, n - i)) > 0)
            i += w;
        if (i - start != 1 || in[start] != ' ')
            changed = true;
        o[k++] = ' ';
    }
    if (!changed)
        return CLEAN_OK; /* nothing reserved is committed */
    o[k] = '\0';
    clean__arena_commit(a, k);
    *s = o;
    *len = k;
    return CLEAN_OK;
}

/* memmem is a GNU extension; the project builds as plain C11 + POSIX. */
static const char *find_bytes(const char *hay, size_t hl, const char *needle, size_t nl)
{
    while (hl >= nl) {
        const char *p = memchr(hay, needle[0], hl - nl + 1);
        if (!p)
            return NULL;
        if (memcmp(p, needle, nl) == 0)
            return p;
        hl -= (size_t)(p - hay) + 1;
        hay = p + 1;
    }
    return NULL;
}

static clean__rc_t rule_replace(const clean__rule_t *r, clean__arena_t *a, const char **s,
                                size_t *len)
{
    const char *in = *s;
    size_t n = *len;
    size_t count = 0;
    for (const char *p = in; (p = find_bytes(p, n - (size_t)(p - in), r->s1, r->l1)) != NULL;
         p += r->l1)
        count++;
    if (!count)
        return CLEAN_OK;
    size_t out = n - count * r->l1;
    if (r->l2 && count > (CLEAN__MAX_VALUE_BYTES - out) / r->l2)
        return CLEAN_TOO_BIG;
    out += count * r->l2;
    char *o = clean__arena_reserve(a, out);
    if (!o)
        return CLEAN_NOMEM;
    char *w = o;
    const char *p = in, *q;
    while ((q = find_bytes(p, n - (size_t)(p - in), r->s1, r->l1)) != NULL) {
        memcpy(w, p, (size_t)(q - p));
        w += q - p;
        memcpy(w, r->s2, r->l2);
        w += r->l2;
        p = q + r->l1;
    }
    memcpy(w, p, n - (size_t)(p - in));
    w += n - (size_t)(p - in);
    *w = '\0';
    clean__arena_commit(a, out);
    *s = o;
    *len = out;
    return CLEAN_OK;
}

static bool email_local_char(unsigned char c)
{
    return is_alnum_ascii(c) || c >= 0x80 || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* A pragmatic address check (what a mail system will deliver to), not RFC
 * 5322's full grammar: quoted local parts and IP-literal domains are
 * refused, international (UTF-8) names are accepted. */
static bool email_valid(const char *s, size_t n)
{
    if (n < 3 || n > 254)
        return false;
    const char *at = memchr(s, '@', n);
    if (!at || memchr(at + 1, '@', n - (size_t)(at - s) - 1))
        return false;
    size_t ll = (size_t)(at - s), dl = n - ll - 1;
    if (ll == 0 || ll > 64 || dl < 3)
        return false;
    if (s[0] == '.' || s[ll - 1] == '.')
        return false;
    for (size_t i = 0; i < ll; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (s[i + 1] == '.')
                return false;
        } else if (!email_local_char(c)) {
            return false;
        }
    }
    const char *d = at + 1;
    size_t label = 0, labels = 0, last_start = 0;
    for (size_t i = 0; i <= dl; i++) {
        unsigned char c = i < dl ? (unsigned char)d[i] : '.';
        if (c == '.') {
            if (label == 0 || label > 63 || d[i - 1] == '-' || d[i - label] == '-')
                return false;
            labels++;
            last_start = i - label;
            label = 0;
        } else if (is_alnum_ascii(c) || c == '-' || c >= 0x80) {
            label++;
        } else {
            return false;
        }
    }
    if (labels < 2)
        return false;
    /* the top-level domain: two letters or more, no digits only */
    size_t tl = dl - last_start;
    bool letter = false;
    for (size_t i = last_start; i < dl; i++)
        letter |= !(d[i] >= '0' && d[i] <= '9') && d[i] != '-';
    return tl >= 2 && letter;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Reads 1..max digits (exactly max for the year). */
static bool read_num(const char **p, const char *end, int min_digits, int max_digits, int *out)
{
    int v = 0, k = 0;
    while (*p < end && k < max_digits && **p >= '0' && **p <= '9') {
        v = v * 10 + (**p - '0');
        (*p)++;
        k++;
    }
    if (k < min_digits)
        return false;
    *out = v;
    return true;
}

static clean__rc_t rule_parse_date(const clean__rule_t *r, clean__arena_t *a, const char **s,
                                   size_t *len)
{
    const char *p = *s, *end = *s + *len;
    while (p < end && *p == ' ')
        p++;
    while (end > p && end[-1] == ' ')
        end--;
    int y = -1, mo = -1, d = -1, h = 0, mi = 0, se = 0;
    for (int i = 0; i < CLEAN__MAX_DATE_TOKENS && r->dt_kind[i] != DT_END; i++) {
        bool ok = true;
        switch (r->dt_kind[i]) {
        case DT_YEAR:
            ok = read_num(&p, end, 4, 4, &y);
            break;
        case DT_MONTH:
            ok = read_num(&p, end, 1, 2, &mo);
            break;
        case DT_DAY:
            ok = read_num(&p, end, 1, 2, &d);
            break;
        case DT_HOUR:
            ok = read_num(&p, end, 1, 2, &h);
            break;
        case DT_MINUTE:
            ok = read_num(&p, end, 1, 2, &mi);
            break;
        case DT_SECOND:
            ok = read_num(&p, end, 1, 2, &se);
            break;
        default:
            ok = p < end && *p == r->dt_lit[i];
            p++;
            break;
        }
        if (!ok)
            return CLEAN_INVALID;
    }
    if (p != end || y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
        mi > 59 || se > 59)
        return CLEAN_INVALID;
    char *o = clean__arena_reserve(a, 20);
    if (!o)
        return CLEAN_NOMEM;
    int n = clean__format_stamp(o, y, mo, d, r->with_time ? h : -1, mi, se);
    clean__arena_commit(a, (size_t)n);
    *s = o;
    *len = (size_t)n;
    return CLEAN_OK;
}

/* "1.234,56 €" with decimal ',' → "1234.56"; "(12)" → "-12". Group
 * separators (the other of '.' and ',', apostrophes, spaces) are dropped,
 * currency signs around the number too. */
static clean__rc_t rule_parse_number(const clean__rule_t *r, clean__arena_t *a, const char **s,
                                     size_t *len)
{
    const char *in = *s;
    size_t n = *len;
    char *o = clean__arena_reserve(a, n + 1);
    if (!o)
        return CLEAN_NOMEM;
    size_t k = 0;
    bool neg = false, paren = false, digits = false, dot = false, sign_seen = false;
    char group = r->decimal == ',' ? '.' : ',';
    o[k++] = '-'; /* overwritten below if positive */
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)in[i];
        size_t w = clean__ws_at(in + i, n - i);
        if (w) {
            i += w;
            continue;
        }
        if (c >= '0' && c <= '9') {
            o[k++] = (char)c;
            digits = true;
        } else if (c == (unsigned char)r->decimal) {
            if (dot)
                return CLEAN_INVALID;
            dot = true;
            o[k++] = '.';
        } else if (c == (unsigned char)group || c == '\'') {
            if (!digits)
                return CLEAN_INVALID;
        } else if ((c == '-' || c == '+') && !digits && !dot && !sign_seen) {
            neg = c == '-';
            sign_seen = true;
        } else if (c == '(' && !digits && !paren && !sign_seen) {
            paren = true;
        } else if (c == ')' && paren && digits && i + 1 == n) {
            neg = true;
            paren = false;
        } else if (c == '$') {
            /* a currency sign around the number */
        } else if (c == 0xC2 && i + 1 < n &&
                   ((unsigned char)in[i + 1] == 0xA3 || (unsigned char)in[i + 1] == 0xA5)) {
            i += 2; /* £ ¥ */
            continue;
        } else if (c == 0xE2 && i + 2 < n && (unsigned char)in[i + 1] == 0x82 &&
                   (unsigned char)in[i + 2] == 0xAC) {
            i += 3; /* € */
            continue;
        } else {
            return CLEAN_INVALID;
        }
        i++;
    }
    if (!digits || paren)
        return CLEAN_INVALID;
    const char *start = neg ? o : o + 1;
    size_t outlen = neg ? k : k - 1;
    /* "12." → "12" */
    if (o[k - 1] == '.')
        outlen--;
    o[(size_t)(start - o) + outlen] = '\0';
    clean__arena_commit(a, k);
    *s = start;
    *len = outlen;
    return CLEAN_OK;
}

static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static size_t utf8_prefix_bytes(const char *s, size_t n, size_t chars)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (c == chars)
                return i;
            c++;
        }
    }
    return n;
}

static clean__rc_t rule_phone(const clean__rule_t *r, clean__arena_t *a, const char **s,
                              size_t *len)
{
    char *o = clean__arena_reserve(a, IMP_PHONE_MAX);
    if (!o)
        return CLEAN_NOMEM;
    size_t n = imp_phone_e164(*s, *len, r->region[0] ? r->region : NULL, o, IMP_PHONE_MAX + 1);
    if (!n)
        return CLEAN_INVALID;
    clean__arena_commit(a, n);
    *s = o;
    *len = n;
    return CLEAN_OK;
}

clean__rc_t clean__rule_apply(const clean__rule_t *r, clean__arena_t *a, const char **s,
                              size_t *len)
{
    switch (r->kind) {
    case RULE_TRIM:
        return rule_trim(s, len);
    case RULE_LOWERCASE:
        return case_map(CASE_LOWER, a, s, len);
    case RULE_UPPERCASE:
        return case_map(CASE_UPPER, a, s, len);
    case RULE_TITLE_CASE:
        return case_map(CASE_TITLE, a, s, len);
    case RULE_COLLAPSE_WHITESPACE:
        return rule_collapse(a, s, len);
    case RULE_REPLACE:
        return rule_replace(r, a, s, len);
    case RULE_DEFAULT:
        if (*len == 0) {
            *s = r->s1;
            *len = r->l1;
        }
        return CLEAN_OK;
    case RULE_VALIDATE_EMAIL:
        return email_valid(*s, *len) ? CLEAN_OK : CLEAN_INVALID;
    case RULE_NORMALIZE_PHONE:
        return rule_phone(r, a, s, len);
    case RULE_PARSE_DATE:
        return rule_parse_date(r, a, s, len);
    case RULE_PARSE_NUMBER:
        return rule_parse_number(r, a, s, len);
    case RULE_MAX_LENGTH:
        if (*len <= r->n || utf8_chars(*s, *len) <= r->n)
            return CLEAN_OK;
        if (r->on_invalid == ON_INVALID_TRUNCATE) {
            *len = utf8_prefix_bytes(*s, *len, r->n);
            return CLEAN_OK; /* a prefix: the caller NUL-terminates copies */
        }
        return CLEAN_INVALID;
    }
    return CLEAN_INVALID;
}

imp_skip_reason_t clean__rule_reason(const clean__rule_t *r)
{
    switch (r->kind) {
    case RULE_VALIDATE_EMAIL:
        return IMP_SKIP_INVALID_EMAIL;
    case RULE_NORMALIZE_PHONE:
        return IMP_SKIP_INVALID_PHONE;
    case RULE_PARSE_DATE:
        return IMP_SKIP_INVALID_DATE;
    case RULE_PARSE_NUMBER:
        return IMP_SKIP_INVALID_NUMBER;
    case RULE_MAX_LENGTH:
        return IMP_SKIP_TOO_LONG;
    default:
        return IMP_SKIP_INVALID_VALUE;
    }
}

const char *clean__rule_problem(const clean__rule_t *r)
{
    switch (r->kind) {
    case RULE_VALIDATE_EMAIL:
        return "is not a valid e-mail address";
    case RULE_NORMALIZE_PHONE:
        return "is not a valid phone number";
    case RULE_PARSE_DATE:
        return "does not match the date format";
    case RULE_PARSE_NUMBER:
        return "is not a number";
    case RULE_MAX_LENGTH:
        return "is longer than the maximum length";
    default:
        return "cannot be cleaned";
    }
}

/* ------------------------------------------------------------ compiling */

static const struct {
    const char *name;
    clean__rule_kind_t kind;
    bool validator;
} rule_names[] = {
    {"trim", RULE_TRIM, false},
    {"lowercase", RULE_LOWERCASE, false},
    {"uppercase", RULE_UPPERCASE, false},
    {"title_case", RULE_TITLE_CASE, false},
    {"collapse_whitespace", RULE_COLLAPSE_WHITESPACE, false},
    {"replace", RULE_REPLACE, false},
    {"default", RULE_DEFAULT, false},
    {"validate_email", RULE_VALIDATE_EMAIL, true},
    {"normalize_phone", RULE_NORMALIZE_PHONE, true},
    {"parse_date", RULE_PARSE_DATE, true},
    {"parse_number", RULE_PARSE_NUMBER, true},
    {"max_length", RULE_MAX_LENGTH, true},
};

bool clean__name_lookup(const char *name, const clean__name_t *t, size_t n, int *value)
{
    for (size_t i = 0; name && i < n; i++) {
        if (strcmp(name, t[i].name) == 0) {
            *value = t[i].value;
            return true;
        }
    }
    return false;
}

void clean__nomem_error(imp_error_t *err)
{
    clean__config_error(err, "out of memory");
    err->code = IMP_ERR_NOMEM;
}

void clean__config_error(imp_error_t *err, const char *fmt, ...)
{
    err->code = IMP_ERR_CONFIG;
    err->line = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

/* A JSON value as a string parameter: strings as they are, numbers and
 * booleans as their JSON text. NULL for anything else. */
static char *param_string(const json_t *v, size_t *len)
{
    char *s = NULL;
    if (json_is_string(v)) {
        *len = json_string_length(v);
        s = malloc(*len + 1);
        if (s) {
            memcpy(s, json_string_value(v), *len);
            s[*len] = '\0';
        }
        return s;
    }
    if (json_is_number(v) || json_is_boolean(v)) {
        s = json_dumps(v, JSON_ENCODE_ANY);
        if (s)
            *len = strlen(s);
    }
    return s;
}

static bool compile_date_format(clean__rule_t *r, const char *f)
{
    static const struct {
        const char *tok;
        clean__date_tok_t kind;
    } toks[] = {{"YYYY", DT_YEAR}, {"MM", DT_MONTH},  {"DD", DT_DAY},
                {"HH", DT_HOUR},   {"mm", DT_MINUTE}, {"ss", DT_SECOND}};
    int n = 0;
    bool seen[DT_LITERAL] = {false};
    while (*f) {
        if (n >= CLEAN__MAX_DATE_TOKENS - 1)
            return false;
        size_t k;
        for (k = 0; k < CD_ARRAY_LEN(toks); k++) {
            size_t l = strlen(toks[k].tok);
            if (strncmp(f, toks[k].tok, l) == 0) {
                if (seen[toks[k].kind])
                    return false;
                seen[toks[k].kind] = true;
                r->dt_kind[n++] = (unsigned char)toks[k].kind;
                f += l;
                break;
            }
        }
        if (k < CD_ARRAY_LEN(toks))
            continue;
        if ((*f >= 'A' && *f <= 'Z') || (*f >= 'a' && *f <= 'z') || (*f >= '0' && *f <= '9'))
            return false; /* an unknown token such as "YY" or "M" */
        r->dt_kind[n] = DT_LITERAL;
        r->dt_lit[n++] = *f++;
    }
    r->dt_kind[n] = DT_END;
    r->with_time = seen[DT_HOUR];
    /* a date needs all three; minutes and seconds need the hour */
    return seen[DT_YEAR] && seen[DT_MONTH] && seen[DT_DAY] &&
           (seen[DT_HOUR] || (!seen[DT_MINUTE] && !seen[DT_SECOND]));
}

/* Sets r->on_invalid from obj's "on_invalid" (or the kind's default). */
static bool compile_on_invalid(const json_t *obj, const char *col, const char *type, bool validator,
                               clean__rule_t *r, imp_error_t *err)
{
    const json_t *oi = json_object_get(obj, "on_invalid");
    r->on_invalid = r->kind == RULE_MAX_LENGTH ? ON_INVALID_TRUNCATE : ON_INVALID_SKIP;
    if (oi) {
        const char *v = json_string_value(oi);
        if (!validator)
            CLEAN_CFG_ERR("column '%s': rule '%s' is not a validator and takes no on_invalid", col,
                          type);
        static const clean__name_t names[] = {{"skip", ON_INVALID_SKIP},
                                              {"null", ON_INVALID_NULL},
                                              {"keep", ON_INVALID_KEEP},
                                              {"fail", ON_INVALID_FAIL},
                                              {"truncate", ON_INVALID_TRUNCATE}};
        int val;
        if (clean__name_lookup(v, names, CD_ARRAY_LEN(names), &val) &&
            (val != ON_INVALID_TRUNCATE || r->kind == RULE_MAX_LENGTH))
            r->on_invalid = (clean__on_invalid_t)val;
        else
            CLEAN_CFG_ERR("column '%s': rule '%s': on_invalid must be skip, null, keep or fail%s",
                          col, type, r->kind == RULE_MAX_LENGTH ? " (or truncate)" : "");
    }
    return true;
fail:
    return false;
}

/* Reads the parameters of r's kind from obj. */
static bool compile_params(const json_t *obj, const char *col, clean__rule_t *r, imp_error_t *err)
{
    switch (r->kind) {
    case RULE_REPLACE: {
        const json_t *f = json_object_get(obj, "find");
        if (!json_is_string(f) || json_string_length(f) == 0)
            CLEAN_CFG_ERR("column '%s': rule 'replace' needs a non-empty string \"find\"", col);
        r->s1 = param_string(f, &r->l1);
        const json_t *rep = json_object_get(obj, "replace");
        if (rep && !json_is_string(rep))
            CLEAN_CFG_ERR("column '%s': rule 'replace': \"replace\" must be a string", col);
        if (rep)
            r->s2 = param_string(rep, &r->l2);
        else
            r->s2 = strdup("");
        if (!r->s1 || !r->s2)
            goto nomem;
        break;
    }
    case RULE_DEFAULT:
        r->s1 = param_string(json_object_get(obj, "value"), &r->l1);
        if (!r->s1)
            CLEAN_CFG_ERR("column '%s': rule 'default' needs a \"value\" (a string or a number)",
                          col);
        break;
    case RULE_NORMALIZE_PHONE: {
        const json_t *c = json_object_get(obj, "default_country");
        if (c) {
            const char *v = json_string_value(c);
            if (!v || strlen(v) != 2 || !((v[0] | 32) >= 'a' && (v[0] | 32) <= 'z') ||
                !((v[1] | 32) >= 'a' && (v[1] | 32) <= 'z'))
                CLEAN_CFG_ERR("column '%s': rule 'normalize_phone': default_country must be a "
                              "two-letter country code such as \"US\"",
                              col);
            r->region[0] = (char)(v[0] & ~32);
            r->region[1] = (char)(v[1] & ~32);
            if (!imp_phone_region_known(r->region))
                CLEAN_CFG_ERR("column '%s': rule 'normalize_phone': '%s' is not a country code "
                              "libphonenumber knows",
                              col, v);
        }
        break;
    }
    case RULE_PARSE_DATE: {
        const json_t *f = json_object_get(obj, "format");
        const char *v = f ? json_string_value(f) : "YYYY-MM-DD";
        if (!v || !compile_date_format(r, v))
            CLEAN_CFG_ERR("column '%s': rule 'parse_date': format must use YYYY, MM and DD (and "
                          "optionally HH, mm, ss), e.g. \"DD/MM/YYYY\"",
                          col);
        break;
    }
    case RULE_PARSE_NUMBER: {
        const json_t *d = json_object_get(obj, "decimal_separator");
        const char *v = d ? json_string_value(d) : ".";
        if (!v || (strcmp(v, ".") != 0 && strcmp(v, ",") != 0))
            CLEAN_CFG_ERR(
                "column '%s': rule 'parse_number': decimal_separator must be \".\" or \",\"", col);
        r->decimal = v[0];
        break;
    }
    case RULE_MAX_LENGTH: {
        const json_t *l = json_object_get(obj, "length");
        if (!json_is_integer(l) || json_integer_value(l) < 1 ||
            json_integer_value(l) > 10 * 1000 * 1000)
            CLEAN_CFG_ERR("column '%s': rule 'max_length' needs a positive integer \"length\"",
                          col);
        r->n = (size_t)json_integer_value(l);
        break;
    }
    default:
        break;
    }
    return true;
nomem:
    clean__nomem_error(err);
fail:
    return false;
}

bool clean__rule_compile(const json_t *obj, const char *col, clean__rule_t *r, imp_error_t *err)
{
    memset(r, 0, sizeof(*r));
    const char *type = json_string_value(json_object_get(obj, "type"));
    if (!json_is_object(obj) || !type)
        CLEAN_CFG_ERR("column '%s': each cleaning rule must be an object with a \"type\"", col);
    size_t i;
    for (i = 0; i < CD_ARRAY_LEN(rule_names); i++) {
        if (strcmp(type, rule_names[i].name) == 0)
            break;
    }
    if (i == CD_ARRAY_LEN(rule_names))
        CLEAN_CFG_ERR("column '%s': unknown cleaning rule '%.60s'", col, type);
    r->kind = rule_names[i].kind;

    if (!compile_on_invalid(obj, col, type, rule_names[i].validator, r, err) ||
        !compile_params(obj, col, r, err))
        goto fail;
    return true;
fail:
    clean__rule_free(r);
    return false;
}

void clean__rule_free(clean__rule_t *r)
{
    free(r->s1);
    free(r->s2);
    r->s1 = r->s2 = NULL;
}
