/*
 * The Phoenix channel wire format that realtime-js speaks: vsn 1.0.0 (JSON
 * objects), vsn 2.0.0 (JSON arrays, plus binary frames for user broadcasts:
 * kind 3 from the client, kind 4 to the client). Pure functions, no I/O, so
 * they can be unit-tested and fuzzed.
 */
#ifndef CD_REALTIME_PHOENIX_H
#define CD_REALTIME_PHOENIX_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/common.h"

/* Longest topic, event or ref accepted, in bytes (binary frames cap them at 255). */
#define PHX_MAX_FIELD 255
/* Deepest JSON nesting accepted in a client message. */
#define PHX_MAX_JSON_DEPTH 32

typedef enum { PHX_VSN_1 = 1, PHX_VSN_2 = 2 } phx_vsn_t;

/* A client message. Strings are owned, NUL-terminated, at most PHX_MAX_FIELD
 * bytes; join_ref and ref are NULL when the client sent null or nothing. */
typedef struct phx_msg {
    char *join_ref;
    char *ref;
    char *topic;
    char *event;
    json_t *payload; /* always an object (owned reference) */
    /* A binary (kind 3) user broadcast: payload is
     * {"type":"broadcast","event":E,"payload":...}; when the inner payload was
     * binary (encoding 0), raw/raw_len hold it and the inner "payload" is null. */
    bool binary;
    bool raw_is_json;
    uint8_t *raw; /* owned, may be NULL */
    size_t raw_len;
} phx_msg_t;

/* Parses a text frame in the given serialisation. On success fills out (free
 * with phx_msg_free) and returns true; on failure returns false with a short
 * static reason in *why, and out holds nothing to free. A missing or null
 * payload becomes {}; a payload that is not an object is an error. */
CD_MUSTCHECK bool phx_decode_text(phx_vsn_t vsn, const char *data, size_t len, phx_msg_t *out,
                                  const char **why);
/* Parses a vsn 2.0.0 binary frame; only kind 3 (user broadcast push) is
 * accepted. Same contract as phx_decode_text. */
CD_MUSTCHECK bool phx_decode_binary(const uint8_t *data, size_t len, phx_msg_t *out,
                                    const char **why);
/* Frees what a successful decode put in m (safe on a zeroed struct). */
void phx_msg_free(phx_msg_t *m);

/* Serialises a server message as a text frame. join_ref/ref may be NULL
 * (null on the wire); payload_json is the payload's JSON text (an object),
 * copied as is. Returns a malloc'd NUL-terminated string (caller frees) and
 * its length in *len, or NULL when out of memory or max_len would be passed. */
char *phx_encode(phx_vsn_t vsn, const char *join_ref, const char *ref, const char *topic,
                 const char *event, const char *payload_json, size_t max_len, size_t *len);
/* Serialises a kind 4 binary user broadcast (server to client, vsn 2.0.0):
 * payload is JSON text when is_json, raw bytes otherwise. Returns a malloc'd
 * buffer (caller frees) and its length, or NULL when a field is longer than
 * 255 bytes or memory runs out. */
uint8_t *phx_encode_user_broadcast(const char *topic, const char *event, bool is_json,
                                   const uint8_t *payload, size_t payload_len, size_t *len);

#endif
