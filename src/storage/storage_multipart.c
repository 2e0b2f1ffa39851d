/*
 * A streaming multipart/form-data parser (RFC 7578 over RFC 2046) for
 * uploads: the body is fed in whatever pieces the network delivers and each
 * part's bytes are handed on as they arrive, so a 100 MB file never sits in
 * memory. Fixed memory per parser; every limit is a clean error.
 *
 * Finding the delimiter: it is "\r\n--" + boundary, and a boundary cannot
 * contain CR, so the only prefix of the delimiter that can restart a match is
 * its first byte. On a mismatch the partly matched bytes (a prefix of the
 * delimiter, so known without buffering) are body data.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "storage/storage_internal.h"

bool storage__mp_boundary(const char *content_type, char *out, size_t outlen)
{
    if (!content_type)
        return false;
    const char *p = content_type;
    while (*p == ' ' || *p == '\t')
        p++;
    static const char TYPE[] = "multipart/form-data";
    if (strncasecmp(p, TYPE, sizeof(TYPE) - 1) != 0)
        return false;
    p += sizeof(TYPE) - 1;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        const char *name = p;
        while (*p && *p != '=' && *p != ';')
            p++;
        size_t nlen = (size_t)(p - name);
        while (nlen && (name[nlen - 1] == ' ' || name[nlen - 1] == '\t'))
            nlen--;
        if (*p != '=')
            continue;
        p++;
        char val[STORAGE_MP_MAX_BOUNDARY + 2];
        size_t vlen = 0;
        bool too_long = false;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                if (vlen < sizeof(val) - 1)
                    val[vlen++] = *p;
                else
                    too_long = true;
                p++;
            }
            if (*p != '"')
                return false;
            p++;
        } else {
            while (*p && *p != ';' && *p != ' ' && *p != '\t') {
                if (vlen < sizeof(val) - 1)
                    val[vlen++] = *p;
                else
                    too_long = true;
                p++;
            }
        }
        val[vlen] = '\0';
        if (nlen == 8 && strncasecmp(name, "boundary", 8) == 0) {
            if (too_long || vlen == 0 || vlen > STORAGE_MP_MAX_BOUNDARY || vlen + 1 > outlen)
                return false;
            for (size_t i = 0; i < vlen; i++)
                if (val[i] == '\r' || val[i] == '\n' || (unsigned char)val[i] < 0x20)
                    return false;
            memcpy(out, val, vlen + 1);
            return true;
        }
    }
    return false;
}

void storage__mp_init(storage_multipart_t *m, const char *boundary,
                      const storage_mp_callbacks_t *cb, void *arg)
{
    memset(m, 0, sizeof(*m));
    size_t n = strlen(boundary);
    if (n == 0 || n > STORAGE_MP_MAX_BOUNDARY) {
        m->state = STORAGE_MP_ERROR;
        m->error = "bad multipart boundary";
        return;
    }
    memcpy(m->delim, "\r\n--", 4);
    memcpy(m->delim + 4, boundary, n);
    m->delim_len = n + 4;
    /* The body may start with the delimiter without the leading CRLF:
     * pretend the CRLF was already seen. */
    m->match = 2;
    m->state = STORAGE_MP_PREAMBLE;
    m->cb = cb;
    m->arg = arg;
}

static bool fail(storage_multipart_t *m, const char *why)
{
    m->state = STORAGE_MP_ERROR;
    m->error = why;
    return false;
}

/* Reads one parameter value (quoted or a token) at p into out; returns the
 * position after it, or NULL if it is too long or unterminated. */
static const char *param_value(const char *p, const char *end, char *out, size_t outlen)
{
    size_t n = 0;
    if (p < end && *p == '"') {
        p++;
        while (p < end && *p != '"') {
            if (*p == '\\' && p + 1 < end)
                p++;
            if (n + 1 >= outlen)
                return NULL;
            out[n++] = *p++;
        }
        if (p >= end)
            return NULL;
        p++;
    } else {
        while (p < end && *p != ';' && *p != ' ' && *p != '\t') {
            if (n + 1 >= outlen)
                return NULL;
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    return p;
}

/* Parses the Content-Disposition value [p, end): form-data with name and
 * filename parameters. */
static bool parse_disposition(const char *p, const char *end, char *name, size_t nlen,
                              char *filename, size_t flen, bool *has_filename)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if ((size_t)(end - p) < 9 || strncasecmp(p, "form-data", 9) != 0)
        return false;
    p += 9;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ';'))
            p++;
        const char *k = p;
        while (p < end && *p != '=' && *p != ';')
            p++;
        size_t klen = (size_t)(p - k);
        while (klen && (k[klen - 1] == ' ' || k[klen - 1] == '\t'))
            klen--;
        if (p >= end || *p != '=')
            continue;
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        char val[STORAGE_MP_MAX_PARAM_BYTES];
        p = param_value(p, end, val, sizeof(val));
        if (!p)
            return false;
        if (klen == 4 && strncasecmp(k, "name", 4) == 0) {
            snprintf(name, nlen, "%s", val);
        } else if (klen == 8 && strncasecmp(k, "filename", 8) == 0) {
            snprintf(filename, flen, "%s", val);
            *has_filename = true;
        }
    }
    return true;
}

/* The head of a part is complete in m->head (without the final CRLFCRLF). */
static bool part_head_done(storage_multipart_t *m)
{
    char name[STORAGE_MP_MAX_PARAM_BYTES] = "";
    char filename[STORAGE_MP_MAX_PARAM_BYTES] = "";
    char ctype[256] = "";
    bool has_filename = false, has_disposition = false, has_ctype = false;
    const char *p = m->head, *end = m->head + m->head_len;
    while (p < end) {
        const char *eol = p;
        while (eol + 1 < end && !(eol[0] == '\r' && eol[1] == '\n'))
            eol++;
        if (eol + 1 >= end)
            eol = end;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon)
            return fail(m, "a part header line has no colon");
        size_t klen = (size_t)(colon - p);
        const char *v = colon + 1;
        if (klen == 19 && strncasecmp(p, "content-disposition", 19) == 0) {
            if (has_disposition || !parse_disposition(v, eol, name, sizeof(name), filename,
                                                      sizeof(filename), &has_filename))
                return fail(m, "bad Content-Disposition in a part");
            has_disposition = true;
        } else if (klen == 12 && strncasecmp(p, "content-type", 12) == 0) {
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            size_t n = (size_t)(eol - v);
            while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--;
            if (n >= sizeof(ctype))
                return fail(m, "a part's Content-Type is too long");
            memcpy(ctype, v, n);
            ctype[n] = '\0';
            has_ctype = true;
        }
        p = eol + 2;
    }
    if (!has_disposition)
        return fail(m, "a part has no Content-Disposition");
    if (++m->parts > STORAGE_MP_MAX_PARTS)
        return fail(m, "too many parts");
    if (m->cb->part_begin &&
        !m->cb->part_begin(m->arg, name, has_filename ? filename : NULL, has_ctype ? ctype : NULL))
        return fail(m, "part refused");
    return true;
}

static bool emit(storage_multipart_t *m, const char *data, size_t len)
{
    if (len == 0 || m->state != STORAGE_MP_BODY)
        return true;
    if (m->cb->part_data && !m->cb->part_data(m->arg, data, len))
        return fail(m, "part data refused");
    return true;
}

bool storage__mp_feed(storage_multipart_t *m, const char *data, size_t len)
{
    size_t i = 0;
    while (i < len) {
        char c = data[i];
        switch (m->state) {
        case STORAGE_MP_ERROR:
            return false;
        case STORAGE_MP_DONE:
            return true; /* the epilogue is ignored */
        case STORAGE_MP_PREAMBLE:
        case STORAGE_MP_BODY: {
            /* data[run..i) is data not yet handed on; the bytes matching the
             * delimiter so far are never in it (they equal delim[0..match)). */
            size_t run = i;
            bool delimited = false;
            while (i < len) {
                c = data[i];
                CD_ASSERT(m->match < m->delim_len);
                if (c == m->delim[m->match]) {
                    if (m->match == 0 && !emit(m, data + run, i - run))
                        return false;
                    m->match++;
                    run = ++i;
                    if (m->match == m->delim_len) {
                        if (m->state == STORAGE_MP_BODY && m->cb->part_end &&
                            !m->cb->part_end(m->arg))
                            return fail(m, "part end refused");
                        m->match = 0;
                        m->state = STORAGE_MP_AFTER_DELIM;
                        delimited = true;
                        break;
                    }
                } else if (m->match > 0) {
                    /* a false start: the matched bytes were data; c is
                     * examined again as a possible new start */
                    if (!emit(m, m->delim, m->match))
                        return false;
                    m->match = 0;
                    run = i;
                } else {
                    i++;
                }
            }
            if (!delimited && !emit(m, data + run, i - run))
                return false;
            break;
        }
        case STORAGE_MP_AFTER_DELIM:
            if (c == '-') {
                m->state = STORAGE_MP_AFTER_DELIM_DASH;
            } else if (c == '\r') {
                m->state = STORAGE_MP_AFTER_DELIM_CR;
            } else if (c == ' ' || c == '\t') {
                /* transport padding (RFC 2046) */
            } else {
                return fail(m, "garbage after a multipart delimiter");
            }
            i++;
            break;
        case STORAGE_MP_AFTER_DELIM_DASH:
            if (c != '-')
                return fail(m, "garbage after a multipart delimiter");
            m->state = STORAGE_MP_DONE;
            i++;
            return true;
        case STORAGE_MP_AFTER_DELIM_CR:
            if (c != '\n')
                return fail(m, "a multipart delimiter is not followed by CRLF");
            CD_ASSERT(m->match == 0); /* a part's head starts only after a whole delimiter */
            m->state = STORAGE_MP_HEAD;
            m->head_len = 0;
            i++;
            break;
        case STORAGE_MP_HEAD:
            if (m->head_len >= sizeof(m->head))
                return fail(m, "a part's headers are too long");
            m->head[m->head_len++] = c;
            i++;
            if (m->head_len == 2 && memcmp(m->head, "\r\n", 2) == 0) {
                /* no headers at all */
                return fail(m, "a part has no Content-Disposition");
            }
            if (m->head_len >= 4 && memcmp(m->head + m->head_len - 4, "\r\n\r\n", 4) == 0) {
                m->head_len -= 4;
                if (!part_head_done(m))
                    return false;
                m->state = STORAGE_MP_BODY;
                m->match = 0;
            }
            break;
        }
    }
    return m->state != STORAGE_MP_ERROR;
}

bool storage__mp_done(const storage_multipart_t *m)
{
    return m->state == STORAGE_MP_DONE;
}
