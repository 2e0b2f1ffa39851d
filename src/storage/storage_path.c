/*
 * What an object name, a bucket id and a content type may be. Object names
 * come from the URL of every storage request and reach the database and the
 * response headers, so they are decoded once, strictly, and refused when they
 * could mean something else somewhere else: dot segments (also
 * percent-encoded), absolute paths, backslashes, NUL and control characters,
 * invalid UTF-8.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "core/text.h"
#include "storage/storage_internal.h"

/* Words of the /object/... route space that cannot be bucket ids. */
static const char *const RESERVED_BUCKETS[] = {
    "list",   "list-v2", "move",   "copy",          "sign",
    "upload", "info",    "public", "authenticated", "render",
};

storage_path_status_t storage__check_name(const char *name, size_t len)
{
    if (len == 0)
        return STORAGE_PATH_EMPTY;
    if (len > STORAGE_MAX_NAME_BYTES)
        return STORAGE_PATH_TOO_LONG;
    if (name[0] == '/')
        return STORAGE_PATH_ABSOLUTE;
    const unsigned char *s = (const unsigned char *)name;
    size_t seg_start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '/') {
            size_t seg = i - seg_start;
            if (seg == 0)
                return STORAGE_PATH_EMPTY_SEGMENT;
            if ((seg == 1 && s[seg_start] == '.') ||
                (seg == 2 && s[seg_start] == '.' && s[seg_start + 1] == '.'))
                return STORAGE_PATH_DOT_SEGMENT;
            seg_start = i + 1;
            continue;
        }
        if (s[i] < 0x20 || s[i] == 0x7F)
            return STORAGE_PATH_CONTROL;
        if (s[i] == '\\')
            return STORAGE_PATH_BACKSLASH;
        if (s[i] >= 0x80) {
            size_t n = cd_utf8_char_len(s + i, len - i);
            if (n == 0)
                return STORAGE_PATH_BAD_UTF8;
            /* C1 controls (U+0080..U+009F, C2 80..C2 9F) are control characters too. */
            if (s[i] == 0xC2 && s[i + 1] <= 0x9F)
                return STORAGE_PATH_CONTROL;
            i += n - 1;
        }
    }
    return STORAGE_PATH_OK;
}

const char *storage__path_message(storage_path_status_t st)
{
    switch (st) {
    case STORAGE_PATH_OK:
        return "ok";
    case STORAGE_PATH_EMPTY:
        return "the object name is empty";
    case STORAGE_PATH_TOO_LONG:
        return "the object name is longer than 1024 bytes";
    case STORAGE_PATH_BAD_ESCAPE:
        return "the path has a bad percent-escape or an encoded NUL";
    case STORAGE_PATH_CONTROL:
        return "the object name contains a control character";
    case STORAGE_PATH_DOT_SEGMENT:
        return "the object name contains a '.' or '..' segment";
    case STORAGE_PATH_EMPTY_SEGMENT:
        return "the object name contains an empty segment ('//' or a trailing '/')";
    case STORAGE_PATH_ABSOLUTE:
        return "the object name must not start with '/'";
    case STORAGE_PATH_BACKSLASH:
        return "the object name contains a backslash";
    case STORAGE_PATH_BAD_UTF8:
        return "the object name is not valid UTF-8";
    }
    return "invalid object name";
}

bool storage__check_bucket(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > STORAGE_MAX_BUCKET_BYTES || id[0] == '.' || id[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!isalnum(c) && c != '_' && c != '.' && c != '-')
            return false;
    }
    for (size_t i = 0; i < CD_ARRAY_LEN(RESERVED_BUCKETS); i++)
        if (strcmp(id, RESERVED_BUCKETS[i]) == 0)
            return false;
    return true;
}

storage_path_status_t storage__percent_decode(const char *raw, size_t len, char *out, size_t outlen)
{
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        char c = raw[i];
        if (c == '%') {
            if (len - i < 3)
                return STORAGE_PATH_BAD_ESCAPE;
            int h = cd_hex_value((unsigned char)raw[i + 1]);
            int l = cd_hex_value((unsigned char)raw[i + 2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0))
                return STORAGE_PATH_BAD_ESCAPE;
            c = (char)(h * 16 + l);
            i += 2;
        } else if (c == '\0') {
            return STORAGE_PATH_CONTROL;
        }
        if (w + 1 >= outlen)
            return STORAGE_PATH_TOO_LONG;
        out[w++] = c;
    }
    if (outlen == 0)
        return STORAGE_PATH_TOO_LONG;
    out[w] = '\0';
    return STORAGE_PATH_OK;
}

storage_path_status_t storage__split_target(const char *raw_uri, const char *prefix, char *bucket,
                                            size_t bucket_len, char *name, size_t name_len)
{
    size_t plen = strlen(prefix);
    if (!raw_uri || strncmp(raw_uri, prefix, plen) != 0)
        return STORAGE_PATH_EMPTY;
    const char *p = raw_uri + plen;
    size_t total = strcspn(p, "?#");
    const char *slash = memchr(p, '/', total);
    size_t blen = slash ? (size_t)(slash - p) : total;
    storage_path_status_t st = storage__percent_decode(p, blen, bucket, bucket_len);
    if (st != STORAGE_PATH_OK)
        return st;
    if (!storage__check_bucket(bucket))
        return STORAGE_PATH_EMPTY;
    if (!name)
        return slash ? STORAGE_PATH_EMPTY : STORAGE_PATH_OK;
    if (!slash)
        return STORAGE_PATH_EMPTY;
    const char *n = slash + 1;
    size_t nlen = total - blen - 1;
    st = storage__percent_decode(n, nlen, name, name_len);
    if (st != STORAGE_PATH_OK)
        return st;
    return storage__check_name(name, strlen(name));
}

/* ------------------------------------------------------------ MIME */

static bool is_token_char(unsigned char c)
{
    return isalnum(c) || strchr("!#$&^_.+-", c) != NULL;
}

bool storage__mime_valid(const char *mime)
{
    size_t n = mime ? strlen(mime) : 0;
    if (n == 0 || n > 255)
        return false;
    size_t i = 0;
    while (i < n && is_token_char((unsigned char)mime[i]))
        i++;
    if (i == 0 || i >= n || mime[i] != '/')
        return false;
    size_t sub = ++i;
    while (i < n && is_token_char((unsigned char)mime[i]))
        i++;
    if (i == sub)
        return false;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)mime[i];
        if (c < 0x20 || c >= 0x7F)
            return false;
    }
    return true;
}

/* The media type of mime without parameters, lower-cased, into out. */
static void media_type(const char *mime, char *out, size_t outlen)
{
    size_t n = strcspn(mime, "; \t");
    if (n >= outlen)
        n = outlen - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)mime[i]);
    out[n] = '\0';
}

bool storage__mime_allowed(const char *mime, const json_t *allowed)
{
    if (!json_is_array(allowed) || json_array_size(allowed) == 0)
        return true;
    char mt[256];
    media_type(mime ? mime : "", mt, sizeof(mt));
    size_t i;
    const json_t *v;
    json_array_foreach(allowed, i, v)
    {
        const char *pat = json_string_value(v);
        if (!pat)
            continue;
        char pt[256];
        media_type(pat, pt, sizeof(pt));
        size_t pl = strlen(pt);
        if (strcmp(pt, "*/*") == 0 || strcmp(pt, "*") == 0)
            return true;
        if (pl >= 2 && pt[pl - 1] == '*' && pt[pl - 2] == '/') {
            if (strncmp(mt, pt, pl - 1) == 0)
                return true;
        } else if (strcmp(mt, pt) == 0) {
            return true;
        }
    }
    return false;
}

bool storage__mime_is_active(const char *mime)
{
    char mt[256];
    media_type(mime ? mime : "", mt, sizeof(mt));
    return strstr(mt, "html") != NULL || strstr(mt, "svg") != NULL || strstr(mt, "xml") != NULL ||
           strstr(mt, "javascript") != NULL || strstr(mt, "ecmascript") != NULL;
}
