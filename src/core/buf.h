/*
 * Growable byte buffers with a hard maximum (curl's dynbuf). Going past the
 * maximum is a clean error that leaves the buffer as it was; nothing grows
 * without bound.
 */
#ifndef CD_BUF_H
#define CD_BUF_H

#include <stdarg.h>
#include "core/common.h"

typedef struct cd_buf {
    char *data; /* NUL-terminated when len > 0; owned by the buffer */
    size_t len; /* bytes in use, excluding the terminating NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* hard limit on len */
} cd_buf_t;

/* Prepares an empty buffer that will never hold more than max bytes. */
void cd_buf_init(cd_buf_t *b, size_t max);
/* Frees the storage; the buffer may be reused after cd_buf_init. */
void cd_buf_free(cd_buf_t *b);
/* Forgets the contents but keeps the allocation. */
void cd_buf_reset(cd_buf_t *b);
/* Makes room for extra more bytes at once (one allocation), so appends of
 * up to that many bytes move nothing (a secret built in the buffer leaves
 * no copy in a block a reallocation freed). False (buffer unchanged) when
 * the maximum would be passed or memory is out. */
CD_MUSTCHECK bool cd_buf_reserve(cd_buf_t *b, size_t extra);
/* Appends n bytes. Returns false (buffer unchanged) if the maximum would be passed. */
CD_MUSTCHECK bool cd_buf_add(cd_buf_t *b, const void *p, size_t n);
/* Appends a NUL-terminated string. */
CD_MUSTCHECK bool cd_buf_adds(cd_buf_t *b, const char *s);
/* Appends printf-formatted text. */
CD_MUSTCHECK bool cd_buf_printf(cd_buf_t *b, const char *fmt, ...) CD_PRINTF(2, 3);
CD_MUSTCHECK bool cd_buf_vprintf(cd_buf_t *b, const char *fmt, va_list ap) CD_PRINTF(2, 0);
/* Hands the storage to the caller (who frees it with free()) and empties the buffer.
 * Returns an empty malloc'd string for an empty buffer, NULL only when out of memory. */
char *cd_buf_take(cd_buf_t *b);
/* The contents as a C string ("" when empty); valid until the next change. */
const char *cd_buf_str(const cd_buf_t *b);

#endif
