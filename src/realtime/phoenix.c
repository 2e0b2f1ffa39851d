/*
 * Phoenix channel messages as realtime-js sends and expects them: parsing
 * client frames (vsn 1.0.0 objects, vsn 2.0.0 arrays and binary kind 3 user
 * broadcasts) and serialising server frames. Payloads stay JSON text on the
 * way out so a change built once by PostgreSQL is copied, not re-encoded.
 */
#include "realtime/phoenix.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/text.h"

void phx_msg_free(phx_msg_t *m)
{
    if (!m)
        return;
    free(m->join_ref);
    free(m->ref);
    free(m->topic);
    free(m->event);
    json_decref(m->payload);
    free(m->raw);
    memset(m, 0, sizeof(*m));
}

/* A string field: NULL for null/absent when nullable; a number is accepted
 * for refs (some clients send integers). */
static bool take_field(const json_t *v, bool nullable, char **out, const char **why)
{
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (nullable)
            return true;
        *why = "missing topic or event";
        return false;
    }
    char tmp[32];
    const char *s;
    size_t n;
    if (json_is_string(v)) {
        s = json_string_value(v);
        n = json_string_length(v);
    } else if (nullable && json_is_integer(v)) {
        snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = tmp;
        n = strlen(tmp);
    } else {
        *why = "a field has the wrong type";
        return false;
    }
    if (n > PHX_MAX_FIELD || memchr(s, '\0', n)) {
        *why = "a field is too long or holds NUL";
        return false;
    }
    *out = strndup(s, n);
    if (!*out) {
        *why = "out of memory";
        return false;
    }
    return true;
}

bool phx_decode_text(phx_vsn_t vsn, const char *data, size_t len, phx_msg_t *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *jr, *r, *t, *e, *p;
    if (!root) {
        *why = "not valid JSON";
        return false;
    }
    if (cd_json_depth(root, PHX_MAX_JSON_DEPTH) > PHX_MAX_JSON_DEPTH) {
        *why = "JSON nested too deeply";
        goto fail;
    }
    if (vsn == PHX_VSN_2) {
        if (!json_is_array(root) || json_array_size(root) != 5) {
            *why = "expected [join_ref, ref, topic, event, payload]";
            goto fail;
        }
        jr = json_array_get(root, 0);
        r = json_array_get(root, 1);
        t = json_array_get(root, 2);
        e = json_array_get(root, 3);
        p = json_array_get(root, 4);
    } else {
        if (!json_is_object(root)) {
            *why = "expected an object";
            goto fail;
        }
        jr = json_object_get(root, "join_ref");
        r = json_object_get(root, "ref");
        t = json_object_get(root, "topic");
        e = json_object_get(root, "event");
        p = json_object_get(root, "payload");
    }
    if (!take_field(jr, true, &out->join_ref, why) || !take_field(r, true, &out->ref, why) ||
        !take_field(t, false, &out->topic, why) || !take_field(e, false, &out->event, why))
        goto fail;
    if (!p || json_is_null(p)) {
        out->payload = json_object();
    } else if (json_is_object(p)) {
        out->payload = json_incref(p);
    } else {
        *why = "payload must be an object";
        goto fail;
    }
    if (!out->payload) {
        *why = "out of memory";
        goto fail;
    }
    json_decref(root);
    return true;
fail:
    json_decref(root);
    phx_msg_free(out);
    return false;
}

static char *dup_bytes(const uint8_t *p, size_t n)
{
    if (memchr(p, '\0', n))
        return NULL;
    return strndup((const char *)p, n);
}

bool phx_decode_binary(const uint8_t *data, size_t len, phx_msg_t *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    json_t *inner = NULL;
    if (len < 7 || data[0] != 3) {
        *why = "unsupported binary frame";
        return false;
    }
    size_t jl = data[1], rl = data[2], tl = data[3], el = data[4], ml = data[5];
    uint8_t enc = data[6];
    size_t off = 7;
    if (enc > 1 || len - off < jl + rl + tl + el + ml) {
        *why = "truncated binary frame";
        return false;
    }
    out->join_ref = jl ? dup_bytes(data + off, jl) : NULL;
    off += jl;
    out->ref = rl ? dup_bytes(data + off, rl) : NULL;
    off += rl;
    out->topic = dup_bytes(data + off, tl);
    off += tl;
    out->event = strdup("broadcast");
    char *user_event = dup_bytes(data + off, el);
    off += el;
    off += ml; /* metadata: not used by this server */
    if ((jl && !out->join_ref) || (rl && !out->ref) || !out->topic || !out->event || !user_event) {
        free(user_event);
        *why = "bad field in binary frame";
        goto fail;
    }
    size_t pl = len - off;
    out->binary = true;
    out->raw_is_json = enc == 1;
    if (pl) {
        out->raw = malloc(pl);
        if (!out->raw) {
            free(user_event);
            *why = "out of memory";
            goto fail;
        }
        memcpy(out->raw, data + off, pl);
        out->raw_len = pl;
    }
    if (enc == 1) {
        json_error_t jerr;
        inner = json_loadb((const char *)data + off, pl, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
                           &jerr);
        if (!inner || cd_json_depth(inner, PHX_MAX_JSON_DEPTH) > PHX_MAX_JSON_DEPTH) {
            free(user_event);
            *why = "broadcast payload is not valid JSON";
            goto fail;
        }
    } else {
        inner = json_null();
    }
    out->payload =
        json_pack("{s:s, s:s, s:o}", "type", "broadcast", "event", user_event, "payload", inner);
    inner = NULL;
    free(user_event);
    if (!out->payload) {
        *why = "bad broadcast event name";
        goto fail;
    }
    return true;
fail:
    json_decref(inner);
    phx_msg_free(out);
    return false;
}

/* Appends s as a JSON string, or null. */
static bool add_json_str(cd_buf_t *b, const char *s)
{
    if (!s)
        return cd_buf_adds(b, "null");
    json_t *j = json_string(s);
    if (!j)
        return false;
    char *txt = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(j);
    if (!txt)
        return false;
    bool ok = cd_buf_adds(b, txt);
    free(txt);
    return ok;
}

char *phx_encode(phx_vsn_t vsn, const char *join_ref, const char *ref, const char *topic,
                 const char *event, const char *payload_json, size_t max_len, size_t *len)
{
    cd_buf_t b;
    cd_buf_init(&b, max_len);
    bool ok;
    if (vsn == PHX_VSN_2) {
        ok = cd_buf_adds(&b, "[") && add_json_str(&b, join_ref) && cd_buf_adds(&b, ",") &&
             add_json_str(&b, ref) && cd_buf_adds(&b, ",") && add_json_str(&b, topic) &&
             cd_buf_adds(&b, ",") && add_json_str(&b, event) && cd_buf_adds(&b, ",") &&
             cd_buf_adds(&b, payload_json) && cd_buf_adds(&b, "]");
    } else {
        ok = cd_buf_adds(&b, "{\"topic\":") && add_json_str(&b, topic) &&
             cd_buf_adds(&b, ",\"event\":") && add_json_str(&b, event) &&
             cd_buf_adds(&b, ",\"payload\":") && cd_buf_adds(&b, payload_json) &&
             cd_buf_adds(&b, ",\"ref\":") && add_json_str(&b, ref) &&
             cd_buf_adds(&b, ",\"join_ref\":") && add_json_str(&b, join_ref) &&
             cd_buf_adds(&b, "}");
    }
    if (!ok) {
        cd_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return cd_buf_take(&b);
}

uint8_t *phx_encode_user_broadcast(const char *topic, const char *event, bool is_json,
                                   const uint8_t *payload, size_t payload_len, size_t *len)
{
    size_t tl = strlen(topic), el = strlen(event);
    if (tl > 255 || el > 255 || payload_len > SIZE_MAX - 5 - tl - el)
        return NULL;
    size_t n = 5 + tl + el + payload_len;
    uint8_t *o = malloc(n ? n : 1);
    if (!o)
        return NULL;
    o[0] = 4;
    o[1] = (uint8_t)tl;
    o[2] = (uint8_t)el;
    o[3] = 0; /* no metadata */
    o[4] = is_json ? 1 : 0;
    memcpy(o + 5, topic, tl);
    memcpy(o + 5 + tl, event, el);
    if (payload_len)
        memcpy(o + 5 + tl + el, payload, payload_len);
    *len = n;
    return o;
}
