/*
 * Reading JSON request bodies: content type, size (already bounded by the
 * server), nesting depth, duplicate keys and the expected top-level shape.
 */
#ifndef CD_HTTP_BODY_H
#define CD_HTTP_BODY_H

#include <jansson.h>

#include "core/common.h"

#define BODY_MAX_JSON_DEPTH 32

typedef enum {
    BODY_JSON_OBJECT = 1, /* accept {...} */
    BODY_JSON_ARRAY = 2,  /* accept [...] */
    BODY_JSON_EMPTY = 4,  /* an empty body gives an empty object */
} body_json_flags_t;

/* Parses len bytes of text as JSON. On success stores a new reference in
 * *out. On failure writes a one-line message (e.g. "body is not valid JSON:
 * unexpected token near 'x' at character 12") into err and returns false. */
CD_MUSTCHECK bool body_parse_json(const char *text, size_t len, int flags, json_t **out, char *err,
                                  size_t errlen);

#endif
