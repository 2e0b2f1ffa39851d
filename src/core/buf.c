/*
 * Bounded growable buffers: every buffer has a maximum fixed at creation, so
 * hostile input can only ever produce a clean "too big" error.
 */
#include "core/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cd_buf_init(cd_buf_t *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void cd_buf_free(cd_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void cd_buf_reset(cd_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static bool buf_reserve(cd_buf_t *b, size_t extra)
{
    CD_ASSERT(b->len <= b->max); /* every append goes through here */
    if (extra > b->max - b->len)
        return false;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return false;
    b->data = p;
    b->cap = cap;
    return true;
}

bool cd_buf_reserve(cd_buf_t *b, size_t extra)
{
    if (extra > b->max - b->len)
        return false;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return true;
    char *p = realloc(b->data, need);
    if (!p)
        return false;
    if (!b->data)
        p[0] = '\0';
    b->data = p;
    b->cap = need;
    return true;
}

bool cd_buf_add(cd_buf_t *b, const void *p, size_t n)
{
    if (!buf_reserve(b, n))
        return false;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

bool cd_buf_adds(cd_buf_t *b, const char *s)
{
    return cd_buf_add(b, s, strlen(s));
}

bool cd_buf_vprintf(cd_buf_t *b, const char *fmt, va_list ap)
{
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n < 0 || !buf_reserve(b, (size_t)n))
        return false;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return true;
}

bool cd_buf_printf(cd_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool ok = cd_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return ok;
}

char *cd_buf_take(cd_buf_t *b)
{
    char *p = b->data;
    if (!p)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

const char *cd_buf_str(const cd_buf_t *b)
{
    return b->data ? b->data : "";
}
