/*
 * The column types of imports (text, integer, number, boolean, date,
 * timestamp): converting cleaned text to what PostgreSQL's COPY reads for
 * each, inferring a column's type from a sample, and proposing column names
 * (snake_case, unique, not a reserved word) for the preview.
 */
#include "importer/clean_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const IMP_RESERVED_TARGETS[] = {
    "id",          "imported_at", "user_id",    "data_source_id",
    "sync_log_id", "created_at",  "updated_at", NULL,
};

static const struct {
    const char *name, *sql;
} type_names[] = {
    [IMP_TYPE_TEXT] = {"text", "TEXT"},        [IMP_TYPE_INTEGER] = {"integer", "INTEGER"},
    [IMP_TYPE_NUMBER] = {"number", "NUMERIC"}, [IMP_TYPE_BOOLEAN] = {"boolean", "BOOLEAN"},
    [IMP_TYPE_DATE] = {"date", "DATE"},        [IMP_TYPE_TIMESTAMP] = {"timestamp", "TIMESTAMPTZ"},
};

const char *imp_type_name(imp_type_t t)
{
    return (size_t)t < CD_ARRAY_LEN(type_names) ? type_names[t].name : "text";
}

const char *imp_type_sql(imp_type_t t)
{
    return (size_t)t < CD_ARRAY_LEN(type_names) ? type_names[t].sql : "TEXT";
}

bool imp_type_from_name(const char *name, imp_type_t *out)
{
    if (!name)
        return false;
    for (size_t i = 0; i < CD_ARRAY_LEN(type_names); i++) {
        if (strcmp(name, type_names[i].name) == 0) {
            *out = (imp_type_t)i;
            return true;
        }
    }
    return false;
}

/* -------------------------------------------------------------- helpers */

static char lower_ascii(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

bool clean__ieq(const char *a, size_t al, const char *b, size_t bl)
{
    if (al != bl)
        return false;
    for (size_t i = 0; i < al; i++) {
        if (lower_ascii(a[i]) != lower_ascii(b[i]))
            return false;
    }
    return true;
}

const char *clean__ifind(const char *hay, size_t hl, const char *needle, size_t nl)
{
    if (nl == 0)
        return hay;
    for (size_t i = 0; i + nl <= hl; i++) {
        if (lower_ascii(hay[i]) == lower_ascii(needle[0]) && clean__ieq(hay + i, nl, needle, nl))
            return hay + i;
    }
    return NULL;
}

static void trim_ascii(const char **s, size_t *len)
{
    while (*len && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* [+-]?digits, in PostgreSQL's INTEGER range */
static bool scan_integer(const char *s, size_t n)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i == n)
        return false;
    long long v = 0;
    for (; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
        if (v > 2147483648LL)
            return false;
    }
    return neg ? v <= 2147483648LL : v <= 2147483647LL;
}

/* [+-]?(d+(.d*)?|.d+)([eE][+-]?d{1,3})? — what NUMERIC reads, NaN and
 * Infinity excluded (a marketer's file never means them). */
static bool scan_number(const char *s, size_t n)
{
    size_t i = 0, digits = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    while (i < n && is_digit(s[i])) {
        i++;
        digits++;
    }
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && is_digit(s[i])) {
            i++;
            digits++;
        }
    }
    if (!digits)
        return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t e = 0;
        while (i < n && is_digit(s[i])) {
            i++;
            e++;
        }
        if (e == 0 || e > 3)
            return false;
    }
    return i == n;
}

bool clean__to_double(const char *s, size_t len, double *out)
{
    char tmp[64];
    trim_ascii(&s, &len);
    if (len == 0 || len >= sizeof(tmp) || !scan_number(s, len))
        return false;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    *out = strtod(tmp, NULL);
    return true;
}

static int scan_bool(const char *s, size_t n)
{
    static const char *const yes[] = {"true", "t", "yes", "y", "1", "on"};
    static const char *const no[] = {"false", "f", "no", "n", "0", "off"};
    for (size_t i = 0; i < CD_ARRAY_LEN(yes); i++) {
        if (clean__ieq(s, n, yes[i], strlen(yes[i])))
            return 1;
        if (clean__ieq(s, n, no[i], strlen(no[i])))
            return 0;
    }
    return -1;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool valid_ymd(int y, int m, int d)
{
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1)
        return false;
    return d <= (m == 2 && is_leap(y) ? 29 : dim[m - 1]);
}

static int digits_at(const char *s, size_t n, size_t i, size_t count)
{
    if (i + count > n)
        return -1;
    int v = 0;
    for (size_t k = 0; k < count; k++) {
        if (!is_digit(s[i + k]))
            return -1;
        v = v * 10 + (s[i + k] - '0');
    }
    return v;
}

typedef struct stamp {
    int y, mo, d, h, mi, se;
    size_t frac_off, frac_len; /* digits after the seconds' '.' */
    bool has_time;
    bool has_zone;
    int zone_min; /* offset east of UTC */
} stamp_t;

/* YYYY-MM-DD or YYYY/MM/DD, then optionally [T ]HH:MM[:SS[.f]] and a zone
 * (Z, UTC, ±HH, ±HHMM, ±HH:MM). Returns false unless all of s is read. */
static bool scan_stamp(const char *s, size_t n, stamp_t *t)
{
    memset(t, 0, sizeof(*t));
    t->y = digits_at(s, n, 0, 4);
    if (t->y < 0 || n < 10 || (s[4] != '-' && s[4] != '/') || s[7] != s[4])
        return false;
    t->mo = digits_at(s, n, 5, 2);
    t->d = digits_at(s, n, 8, 2);
    if (t->mo < 0 || t->d < 0 || !valid_ymd(t->y, t->mo, t->d))
        return false;
    size_t i = 10;
    if (i == n)
        return true;
    if (s[i] != 'T' && s[i] != ' ')
        return false;
    i++;
    t->h = digits_at(s, n, i, 2);
    if (t->h < 0 || i + 5 > n || s[i + 2] != ':')
        return false;
    t->mi = digits_at(s, n, i + 3, 2);
    if (t->mi < 0 || t->h > 23 || t->mi > 59)
        return false;
    t->has_time = true;
    i += 5;
    if (i < n && s[i] == ':') {
        t->se = digits_at(s, n, i + 1, 2);
        if (t->se < 0 || t->se > 59)
            return false;
        i += 3;
        if (i < n && s[i] == '.') {
            t->frac_off = ++i;
            while (i < n && is_digit(s[i]))
                i++;
            t->frac_len = i - t->frac_off;
            if (t->frac_len == 0 || t->frac_len > 9)
                return false;
        }
    }
    if (i < n && s[i] == ' ')
        i++;
    if (i == n)
        return true;
    if ((s[i] == 'Z' && i + 1 == n) || (n - i == 3 && clean__ieq(s + i, 3, "UTC", 3))) {
        t->has_zone = true;
        return true;
    }
    if (s[i] != '+' && s[i] != '-')
        return false;
    int sign = s[i] == '-' ? -1 : 1;
    int zh = digits_at(s, n, i + 1, 2), zm = 0;
    i += 3;
    if (zh < 0 || zh > 15)
        return false;
    if (i < n && s[i] == ':')
        i++;
    if (i < n) {
        zm = digits_at(s, n, i, 2);
        if (zm < 0 || zm > 59)
            return false;
        i += 2;
    }
    t->has_zone = true;
    t->zone_min = sign * (zh * 60 + zm);
    return i == n;
}

static char *put_digits(char *o, int v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        o[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return o + width;
}

int clean__format_stamp(char *out, int y, int mo, int d, int h, int mi, int se)
{
    char *o = put_digits(out, y, 4);
    *o++ = '-';
    o = put_digits(o, mo, 2);
    *o++ = '-';
    o = put_digits(o, d, 2);
    if (h >= 0) {
        *o++ = ' ';
        o = put_digits(o, h, 2);
        *o++ = ':';
        o = put_digits(o, mi, 2);
        *o++ = ':';
        o = put_digits(o, se, 2);
    }
    *o = '\0';
    return (int)(o - out);
}

clean__rc_t clean__convert(imp_type_t type, clean__arena_t *a, const char **s, size_t *len)
{
    const char *p = *s;
    size_t n = *len;
    switch (type) {
    case IMP_TYPE_TEXT:
        return CLEAN_OK;
    case IMP_TYPE_INTEGER:
        trim_ascii(&p, &n);
        if (!scan_integer(p, n))
            return CLEAN_INVALID;
        break;
    case IMP_TYPE_NUMBER:
        trim_ascii(&p, &n);
        if (!scan_number(p, n))
            return CLEAN_INVALID;
        break;
    case IMP_TYPE_BOOLEAN: {
        trim_ascii(&p, &n);
        int b = scan_bool(p, n);
        if (b < 0)
            return CLEAN_INVALID;
        p = b ? "t" : "f";
        n = 1;
        break;
    }
    case IMP_TYPE_DATE:
    case IMP_TYPE_TIMESTAMP: {
        trim_ascii(&p, &n);
        stamp_t t;
        if (!scan_stamp(p, n, &t))
            return CLEAN_INVALID;
        char *o = clean__arena_reserve(a, 48);
        if (!o)
            return CLEAN_NOMEM;
        int w;
        if (type == IMP_TYPE_DATE) {
            w = clean__format_stamp(o, t.y, t.mo, t.d, -1, 0, 0);
        } else {
            w = clean__format_stamp(o, t.y, t.mo, t.d, t.h, t.mi, t.se);
            if (t.frac_len) {
                o[w++] = '.';
                memcpy(o + w, p + t.frac_off, t.frac_len);
                w += (int)t.frac_len;
            }
            if (t.has_zone) {
                int z = t.zone_min < 0 ? -t.zone_min : t.zone_min;
                w += snprintf(o + w, (size_t)(49 - w), "%c%02d:%02d", t.zone_min < 0 ? '-' : '+',
                              z / 60, z % 60);
            }
            o[w] = '\0';
        }
        clean__arena_commit(a, (size_t)w);
        p = o;
        n = (size_t)w;
        break;
    }
    }
    *s = p;
    *len = n;
    return CLEAN_OK;
}

/* ------------------------------------------------------------ inference */

enum {
    CAN_INT = 1,
    CAN_NUM = 2,
    CAN_BOOL = 4,
    CAN_DATE = 8,
    CAN_TS = 16,
};

static unsigned value_can(const char *s, size_t n)
{
    trim_ascii(&s, &n);
    unsigned can = 0;
    if (scan_integer(s, n))
        can |= CAN_INT | CAN_NUM;
    else if (scan_number(s, n))
        can |= CAN_NUM;
    /* 1 and 0 are integers first; the words make booleans */
    if (!(can & CAN_INT) && scan_bool(s, n) >= 0)
        can |= CAN_BOOL;
    stamp_t t;
    if (n >= 10 && scan_stamp(s, n, &t))
        can |= t.has_time ? CAN_TS : CAN_DATE | CAN_TS;
    return can;
}

static imp_type_t type_of(unsigned can)
{
    if (can & CAN_INT)
        return IMP_TYPE_INTEGER;
    if (can & CAN_NUM)
        return IMP_TYPE_NUMBER;
    if (can & CAN_BOOL)
        return IMP_TYPE_BOOLEAN;
    if (can & CAN_DATE)
        return IMP_TYPE_DATE;
    if (can & CAN_TS)
        return IMP_TYPE_TIMESTAMP;
    return IMP_TYPE_TEXT;
}

imp_type_t imp_infer_value(const char *s, size_t len)
{
    return type_of(value_can(s, len));
}

struct imp_infer {
    size_t ncols;
    unsigned *can;
    long long *seen;
};

imp_infer_t *imp_infer_new(size_t ncols)
{
    imp_infer_t *inf = calloc(1, sizeof(*inf));
    if (!inf)
        return NULL;
    inf->ncols = ncols;
    inf->can = malloc((ncols ? ncols : 1) * sizeof(*inf->can));
    inf->seen = calloc(ncols ? ncols : 1, sizeof(*inf->seen));
    if (!inf->can || !inf->seen) {
        imp_infer_free(inf);
        return NULL;
    }
    for (size_t i = 0; i < ncols; i++)
        inf->can[i] = ~0u;
    return inf;
}

void imp_infer_add_row(imp_infer_t *inf, const imp_row_t *row)
{
    for (size_t i = 0; i < inf->ncols && i < row->ncells; i++) {
        const char *s = row->cells[i].data;
        size_t n = row->cells[i].len;
        trim_ascii(&s, &n);
        if (!n)
            continue;
        inf->can[i] &= value_can(s, n);
        inf->seen[i]++;
    }
}

imp_type_t imp_infer_type(const imp_infer_t *inf, size_t col)
{
    if (col >= inf->ncols || inf->seen[col] == 0)
        return IMP_TYPE_TEXT;
    return type_of(inf->can[col]);
}

void imp_infer_free(imp_infer_t *inf)
{
    if (!inf)
        return;
    free(inf->can);
    free(inf->seen);
    free(inf);
}

/* ---------------------------------------------------------------- names */

/* PostgreSQL's reserved key words, including those that "can be function or
 * type" names (Appendix C of the manual): none of them is a bare column name. */
static const char *const reserved_words[] = {
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "binary",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "similar",
    "some",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
};

bool imp_is_reserved_word(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < CD_ARRAY_LEN(reserved_words); i++) {
        if (clean__ieq(s, n, reserved_words[i], strlen(reserved_words[i])))
            return true;
    }
    return false;
}

/* U+00C0–U+00FF and U+0100–U+017F without their accents; '_' for the
 * signs (×, ÷). Two-letter ligatures are shortened to their first letter
 * except those below. */
static const char latin1_base[] =
    "AAAAAAACEEEEIIIIDNOOOOO_OUUUUYTsaaaaaaaceeeeiiiidnooooo_ouuuuyty";
static const char latin_ext_a[] =
    "AaAaAaCcCcCcCcDdDdEeEeEeEeEeGgGgGgGgHhHhIiIiIiIiIiIiJjKkkLlLlLlL"
    "lLlNnNnNnnNnOoOoOoOoRrRrRrSsSsSsSsTtTtTtUuUuUuUuUuUuWwYyYZzZzZzs";

/* Decodes the UTF-8 character at s (n bytes left) into *cp; returns its
 * length (1 for a broken byte). */
static size_t utf8_decode(const unsigned char *s, size_t n, unsigned *cp)
{
    if (s[0] < 0x80 || n < 2) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xE0) == 0xC0) {
        *cp = ((unsigned)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    size_t len = (s[0] & 0xF0) == 0xE0 ? 3 : 4;
    if (len > n) {
        *cp = 0xFFFD;
        return n;
    }
    *cp = 0xFFFD;
    return len;
}

/* The snake_case base name of one header cell into out (cap ≥ 64). */
static void snake_case(const char *s, size_t n, char *out, size_t cap)
{
    /* letters after transliteration, with their case, then split */
    char tmp[256];
    size_t t = 0;
    for (size_t i = 0; i < n && t < sizeof(tmp) - 3;) {
        unsigned cp;
        i += utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (cp < 0x80) {
            tmp[t++] =
                is_digit((char)cp) || ((cp | 32) >= 'a' && (cp | 32) <= 'z') ? (char)cp : '_';
        } else if (cp == 0xC6 || cp == 0xE6) {
            tmp[t++] = cp == 0xC6 ? 'A' : 'a';
            tmp[t++] = cp == 0xC6 ? 'E' : 'e';
        } else if (cp == 0xDF) {
            tmp[t++] = 's';
            tmp[t++] = 's';
        } else if (cp >= 0xC0 && cp <= 0xFF) {
            tmp[t++] = latin1_base[cp - 0xC0];
        } else if (cp >= 0x100 && cp <= 0x17F) {
            tmp[t++] = latin_ext_a[cp - 0x100];
        } else {
            tmp[t++] = '_';
        }
    }
    size_t o = 0;
    for (size_t i = 0; i < t && o < cap - 1; i++) {
        char c = tmp[i];
        bool upper = c >= 'A' && c <= 'Z';
        if (upper && i > 0 && o > 0 && out[o - 1] != '_') {
            char prev = tmp[i - 1];
            char next = i + 1 < t ? tmp[i + 1] : '\0';
            bool prev_lower = (prev >= 'a' && prev <= 'z') || is_digit(prev);
            bool prev_upper = prev >= 'A' && prev <= 'Z';
            /* eMailAddress → e_mail_address, HTMLParser → html_parser */
            if (prev_lower || (prev_upper && next >= 'a' && next <= 'z'))
                out[o++] = '_';
            if (o >= cap - 1)
                break;
        }
        if (c == '_' && (o == 0 || out[o - 1] == '_'))
            continue;
        out[o++] = lower_ascii(c);
    }
    while (o > 0 && out[o - 1] == '_')
        o--;
    out[o] = '\0';
}

static bool in_list(const char *s, const char *const *list)
{
    for (size_t i = 0; list && list[i]; i++) {
        if (strcasecmp(s, list[i]) == 0)
            return true;
    }
    return false;
}

static bool taken(const char *s, char **out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(s, out[i]) == 0)
            return true;
    }
    return false;
}

bool imp_propose_names(const imp_cell_t *header, size_t n, const char *const *extra_reserved,
                       char **out)
{
    char base[IMP_MAX_TARGET_NAME + 1], name[IMP_MAX_TARGET_NAME + 1];
    for (size_t i = 0; i < n; i++) {
        snake_case(header[i].data, header[i].len, base, sizeof(base));
        if (base[0] == '\0') {
            snprintf(base, sizeof(base), "column_%zu", i + 1);
        } else if (is_digit(base[0])) {
            size_t bl = strlen(base);
            if (bl > IMP_MAX_TARGET_NAME - 2)
                bl = IMP_MAX_TARGET_NAME - 2;
            memmove(base + 2, base, bl);
            base[0] = 'c';
            base[1] = '_';
            base[bl + 2] = '\0';
        }
        if (imp_is_reserved_word(base) || in_list(base, IMP_RESERVED_TARGETS) ||
            in_list(base, extra_reserved)) {
            base[IMP_MAX_TARGET_NAME - 4] = '\0';
            strncat(base, "_col", sizeof(base) - strlen(base) - 1);
        }
        snprintf(name, sizeof(name), "%s", base);
        for (unsigned k = 2; taken(name, out, i); k++) {
            char suffix[16];
            int sl = snprintf(suffix, sizeof(suffix), "_%u", k);
            size_t keep = strlen(base);
            if (keep > IMP_MAX_TARGET_NAME - (size_t)sl)
                keep = IMP_MAX_TARGET_NAME - (size_t)sl;
            memcpy(name, base, keep);
            memcpy(name + keep, suffix, (size_t)sl + 1);
        }
        out[i] = strdup(name);
        if (!out[i]) {
            for (size_t k = 0; k < i; k++) {
                free(out[k]);
                out[k] = NULL;
            }
            return false;
        }
    }
    return true;
}

json_t *imp_propose_config(const imp_cell_t *header, size_t n, const imp_infer_t *inf)
{
    char **names = calloc(n ? n : 1, sizeof(*names));
    json_t *cfg = json_object(), *cols = json_array();
    if (!names || !cfg || !cols || !imp_propose_names(header, n, NULL, names))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_pack("{s:s%, s:s, s:s, s:b, s:[]}", "source_name", header[i].data,
                              header[i].len, "target_name", names[i], "type",
                              imp_type_name(inf ? imp_infer_type(inf, i) : IMP_TYPE_TEXT),
                              "included", 1, "cleaning_rules");
        if (!c || json_array_append_new(cols, c) != 0)
            goto fail;
    }
    if (json_object_set_new(cfg, "columns", cols) != 0)
        goto fail_cols_taken;
    if (json_object_set_new(cfg, "row_filters", json_array()) != 0)
        goto fail_cols_taken;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return cfg;
fail:
    json_decref(cols);
fail_cols_taken:
    json_decref(cfg);
    if (names) {
        for (size_t i = 0; i < n; i++)
            free(names[i]);
    }
    free(names);
    return NULL;
}
