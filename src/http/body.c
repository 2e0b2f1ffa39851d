/*
 * JSON body reader. jansson does the parsing; this file adds the limits a
 * server needs on top (depth, duplicate keys, top-level shape) and turns
 * every failure into a message a client can act on.
 */
#include "http/body.h"

#include <stdio.h>
#include <string.h>

#include "core/text.h"

bool body_parse_json(const char *text, size_t len, int flags, json_t **out, char *err,
                     size_t errlen)
{
    *out = NULL;
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t'))
        i++;
    if (i == len) {
        if (flags & BODY_JSON_EMPTY) {
            *out = json_object();
            return *out != NULL;
        }
        snprintf(err, errlen, "the request body is empty; send a JSON %s",
                 (flags & BODY_JSON_OBJECT) ? "object" : "array");
        return false;
    }
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!j) {
        snprintf(err, errlen, "the request body is not valid JSON: %s at character %d", je.text,
                 je.position);
        return false;
    }
    /* jansson bounds nesting at 2048; we want far less to keep later recursive
     * walks over bodies cheap and bounded. */
    if (cd_json_depth(j, BODY_MAX_JSON_DEPTH) > BODY_MAX_JSON_DEPTH) {
        json_decref(j);
        snprintf(err, errlen, "the request body nests deeper than %d levels", BODY_MAX_JSON_DEPTH);
        return false;
    }
    if ((json_is_object(j) && !(flags & BODY_JSON_OBJECT)) ||
        (json_is_array(j) && !(flags & BODY_JSON_ARRAY)) ||
        (!json_is_object(j) && !json_is_array(j))) {
        json_decref(j);
        snprintf(err, errlen, "the request body must be a JSON %s",
                 (flags & BODY_JSON_OBJECT) && (flags & BODY_JSON_ARRAY) ? "object or array"
                 : (flags & BODY_JSON_OBJECT)                            ? "object"
                                                                         : "array");
        return false;
    }
    *out = j;
    return true;
}
