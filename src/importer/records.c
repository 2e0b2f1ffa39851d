/*
 * Parsing of HTTP API answers for the connectors (connectors.h): where the
 * records are in a JSON answer, the next page of an RFC 8288 Link header, a
 * Retry-After value, NDJSON lines, and a record's values as text cells. Pure
 * functions over outside input: unit-tested and fuzzed (fuzz_api_records).
 *
 * The Link header parser is hand-written: libcurl parses no Link headers and
 * Debian has no small C library for RFC 8288; the grammar needed (URI in
 * angle brackets, ;-separated parameters, quoted strings) is small.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "importer/connectors.h"

#define PATH_KEY_MAX    256
#define FLATTEN_DEPTH   4
#define NDJSON_LINE_MAX (16u << 20)

const json_t *conn_json_path(const json_t *root, const char *path)
{
    const json_t *cur = root;
    if (!path)
        return cur;
    const char *p = path;
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0 || n >= PATH_KEY_MAX || !json_is_object(cur))
            return NULL;
        char key[PATH_KEY_MAX];
        memcpy(key, p, n);
        key[n] = '\0';
        cur = json_object_get(cur, key);
        p += n;
        if (*p == '.')
            p++;
    }
    return cur;
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Whether the rel value v[0..n) holds the token "next" (rel="next prev"). */
static bool rel_has_next(const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        size_t s = i;
        while (i < n && v[i] != ' ' && v[i] != '\t')
            i++;
        if (i - s == 4 && strncasecmp(v + s, "next", 4) == 0)
            return true;
    }
    return false;
}

/* Parses the parameters after a link's '>' up to the next link; returns the
 * position after them and sets *next when rel holds "next". NULL on a
 * malformed parameter. */
static const char *link_params(const char *p, bool *next)
{
    for (;;) {
        p = skip_ws(p);
        if (*p == ',' || *p == '\0')
            return p;
        if (*p != ';')
            return NULL;
        p = skip_ws(p + 1);
        const char *name = p;
        while (*p && *p != '=' && *p != ';' && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        size_t nlen = (size_t)(p - name);
        p = skip_ws(p);
        const char *val = "";
        size_t vlen = 0;
        char qbuf[256];
        if (*p == '=') {
            p = skip_ws(p + 1);
            if (*p == '"') {
                size_t q = 0;
                for (p++; *p && *p != '"'; p++) {
                    if (*p == '\\' && p[1])
                        p++;
                    if (q < sizeof(qbuf) - 1)
                        qbuf[q++] = *p;
                }
                if (*p != '"')
                    return NULL;
                p++;
                qbuf[q] = '\0';
                val = qbuf;
                vlen = q;
            } else {
                val = p;
                while (*p && *p != ';' && *p != ',' && *p != ' ' && *p != '\t')
                    p++;
                vlen = (size_t)(p - val);
            }
        }
        if (nlen == 3 && strncasecmp(name, "rel", 3) == 0 && rel_has_next(val, vlen))
            *next = true;
    }
}

bool conn_link_next(const char *header, char *out, size_t outlen)
{
    if (!header || !out || outlen == 0)
        return false;
    const char *p = header;
    for (;;) {
        p = skip_ws(p);
        while (*p == ',')
            p = skip_ws(p + 1);
        if (*p != '<')
            return false;
        const char *uri = p + 1;
        const char *end = strchr(uri, '>');
        if (!end)
            return false;
        bool next = false;
        p = link_params(end + 1, &next);
        if (!p)
            return false;
        if (next) {
            size_t n = (size_t)(end - uri);
            if (n == 0 || n >= outlen)
                return false;
            memcpy(out, uri, n);
            out[n] = '\0';
            return true;
        }
        if (*p == '\0')
            return false;
    }
}

long conn_retry_after(const char *value, time_t now)
{
    if (!value)
        return -1;
    const char *p = skip_ws(value);
    if (*p >= '0' && *p <= '9') {
        long v = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (v > 100000000L)
                return -1;
            v = v * 10 + (*p - '0');
        }
        p = skip_ws(p);
        return *p == '\0' || *p == '\r' || *p == '\n' ? v : -1;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *e = strptime(p, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!e)
        return -1;
    time_t at = timegm(&tm);
    if (at == (time_t)-1)
        return -1;
    return at > now ? (long)(at - now) : 0;
}

int conn_ndjson_each(const char *data, size_t len, int (*fn)(json_t *rec, void *arg), void *arg,
                     char *err, size_t errlen)
{
    size_t pos = 0;
    long long line = 0;
    while (pos < len) {
        line++;
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        size_t s = pos, e = end;
        while (s < e && (data[s] == ' ' || data[s] == '\t' || data[s] == '\r'))
            s++;
        while (e > s && (data[e - 1] == ' ' || data[e - 1] == '\t' || data[e - 1] == '\r'))
            e--;
        pos = nl ? end + 1 : len;
        if (s == e)
            continue;
        if (e - s > NDJSON_LINE_MAX) {
            snprintf(err, errlen, "NDJSON line %lld is longer than %u bytes", line,
                     NDJSON_LINE_MAX);
            return -1;
        }
        json_error_t jerr;
        json_t *v = json_loadb(data + s, e - s, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
        if (!v) {
            snprintf(err, errlen, "NDJSON line %lld is not JSON: %.120s", line, jerr.text);
            return -1;
        }
        int rc = fn(v, arg);
        json_decref(v);
        if (rc != 0)
            return rc;
    }
    return 0;
}

char *conn_scalar_text(const json_t *v)
{
    char buf[64];
    switch (json_typeof(v)) {
    case JSON_STRING:
        return strndup(json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return strdup(buf);
    case JSON_REAL:
        snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
        return strdup(buf);
    case JSON_TRUE:
        return strdup("true");
    case JSON_FALSE:
        return strdup("false");
    default:
        return NULL;
    }
}

static bool flatten_into(json_t *out, const char *prefix, const json_t *obj, int depth)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        char key[PATH_KEY_MAX];
        int n = prefix ? snprintf(key, sizeof(key), "%s.%s", prefix, k)
                       : snprintf(key, sizeof(key), "%s", k);
        if (n < 0 || (size_t)n >= sizeof(key))
            continue; /* a key this long names no column anyone maps */
        if (json_is_null(v))
            continue;
        if (json_is_object(v) && depth < FLATTEN_DEPTH) {
            if (!flatten_into(out, key, v, depth + 1))
                return false;
            continue;
        }
        char *text = json_is_object(v) || json_is_array(v) ? json_dumps(v, JSON_COMPACT)
                                                           : conn_scalar_text(v);
        if (!text)
            return false;
        int rc = json_object_set_new(out, key, json_string(text));
        free(text);
        if (rc != 0)
            return false;
    }
    return true;
}

json_t *conn_flatten_record(const json_t *rec)
{
    json_t *out = json_object();
    if (!out)
        return NULL;
    if (json_is_object(rec)) {
        if (!flatten_into(out, NULL, rec, 1)) {
            json_decref(out);
            return NULL;
        }
        return out;
    }
    char *text = json_is_array(rec) ? json_dumps(rec, JSON_COMPACT) : conn_scalar_text(rec);
    if (text && json_object_set_new(out, "value", json_string(text)) != 0) {
        free(text);
        json_decref(out);
        return NULL;
    }
    free(text);
    return out;
}
